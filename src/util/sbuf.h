/*
 * sbuf - a growable, always NUL-terminated byte string
 *
 * Used for configuration text and log formatting, never for network input
 * (network buffers have fixed caps, see smtp/ and net/).  An sbuf owns its
 * storage; sbuf_free() releases it and leaves an empty, reusable buffer.
 * Allocation failure panics (see mem.h).
 */
#ifndef MXS_SBUF_H
#define MXS_SBUF_H

#include <stdarg.h>
#include <stddef.h>

struct sbuf {
    char *s;    /* NUL-terminated contents, or NULL while empty */
    size_t len; /* bytes used, excluding the NUL */
    size_t cap; /* bytes allocated */
};

#define SBUF_INIT                                                                                  \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

void sbuf_addn(struct sbuf *b, const char *p, size_t n);
void sbuf_adds(struct sbuf *b, const char *s);
void sbuf_addc(struct sbuf *b, char c);
void sbuf_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sbuf_vprintf(struct sbuf *b, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));
void sbuf_reset(struct sbuf *b);
const char *sbuf_str(const struct sbuf *b);
char *sbuf_take(struct sbuf *b);
void sbuf_free(struct sbuf *b);

#endif
