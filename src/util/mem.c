/*
 * mem - allocation that never returns NULL; see mem.h for the contract.
 */
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "util/mem.h"

/* Allocate LEN bytes or panic. */
void *xmalloc(size_t len)
{
    void *p = malloc(len ? len : 1);

    if (p == NULL)
        msg_panic("out of memory allocating %zu bytes", len);
    return p;
}

/* Allocate N zeroed objects of LEN bytes or panic. */
void *xcalloc(size_t n, size_t len)
{
    void *p = calloc(n ? n : 1, len ? len : 1);

    if (p == NULL)
        msg_panic("out of memory allocating %zu x %zu bytes", n, len);
    return p;
}

/* Resize PTR to LEN bytes or panic. */
void *xrealloc(void *ptr, size_t len)
{
    void *p = realloc(ptr, len ? len : 1);

    if (p == NULL)
        msg_panic("out of memory reallocating %zu bytes", len);
    return p;
}

/* Copy a NUL-terminated string or panic. */
char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

/* Copy LEN bytes of S plus a terminating NUL, or panic. */
char *xstrndup(const char *s, size_t len)
{
    char *p = xmalloc(len + 1);

    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}
