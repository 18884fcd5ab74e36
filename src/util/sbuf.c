/*
 * sbuf - a growable, always NUL-terminated byte string; see sbuf.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/mem.h"
#include "util/sbuf.h"

/* Make room for N more bytes plus the NUL. */
static void sbuf_grow(struct sbuf *b, size_t n)
{
    size_t need = b->len + n + 1;

    if (need <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap *= 2;
    b->s = xrealloc(b->s, cap);
    b->cap = cap;
}

/* Append N bytes. */
void sbuf_addn(struct sbuf *b, const char *p, size_t n)
{
    sbuf_grow(b, n);
    memcpy(b->s + b->len, p, n);
    b->len += n;
    b->s[b->len] = '\0';
}

/* Append a NUL-terminated string. */
void sbuf_adds(struct sbuf *b, const char *s)
{
    sbuf_addn(b, s, strlen(s));
}

/* Append one byte. */
void sbuf_addc(struct sbuf *b, char c)
{
    sbuf_addn(b, &c, 1);
}

/* Append formatted text. */
void sbuf_vprintf(struct sbuf *b, const char *fmt, va_list ap)
{
    va_list ap2;

    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n <= 0)
        return;
    sbuf_grow(b, (size_t)n);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
}

/* Append formatted text. */
void sbuf_printf(struct sbuf *b, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    sbuf_vprintf(b, fmt, ap);
    va_end(ap);
}

/* Empty the buffer, keeping its storage. */
void sbuf_reset(struct sbuf *b)
{
    b->len = 0;
    if (b->s)
        b->s[0] = '\0';
}

/* The contents as a C string ("" when nothing was ever added). */
const char *sbuf_str(const struct sbuf *b)
{
    return b->s ? b->s : "";
}

/* Hand the storage to the caller (who frees it) and leave the buffer empty. */
char *sbuf_take(struct sbuf *b)
{
    char *s = b->s ? b->s : xstrdup("");

    b->s = NULL;
    b->len = b->cap = 0;
    return s;
}

/* Release the storage. */
void sbuf_free(struct sbuf *b)
{
    free(b->s);
    b->s = NULL;
    b->len = b->cap = 0;
}
