/*
 * mem - allocation that never returns NULL
 *
 * xmalloc(), xcalloc(), xrealloc(), xstrdup() and xstrndup() behave like
 * their libc namesakes but panic() when memory is exhausted: a daemon that
 * cannot allocate a few bytes has no safe way to go on serving.  Callers own
 * the memory they get and release it with free().
 */
#ifndef MXS_MEM_H
#define MXS_MEM_H

#include <stddef.h>

void *xmalloc(size_t len);
void *xcalloc(size_t n, size_t len);
void *xrealloc(void *ptr, size_t len);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t len);

#endif
