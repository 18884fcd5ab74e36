/*
 * reader - bounded SMTP line reader; see reader.h.
 */
#include <stdlib.h>
#include <string.h>

#include "smtp/reader.h"
#include "util/mem.h"

/* An empty reader for lines of at most LIMIT bytes. */
void reader_init(struct reader *r, size_t limit)
{
    memset(r, 0, sizeof(*r));
    r->limit = limit;
}

/* Release the line buffer. */
void reader_free(struct reader *r)
{
    free(r->buf);
    r->buf = NULL;
    r->len = r->cap = 0;
}

/* Store one byte; the buffer grows by doubling up to LIMIT + 2 bytes. */
static void store(struct reader *r, char ch)
{
    if (r->len + 2 > r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 256;
        if (cap > r->limit + 2)
            cap = r->limit + 2;
        r->buf = xrealloc(r->buf, cap);
        r->cap = cap;
    }
    r->buf[r->len++] = ch;
    r->buf[r->len] = '\0';
}

/*
 * Consume bytes from IN until a line is complete, the limit is reached or
 * IN runs out; *USED says how many bytes were taken.
 */
enum reader_status reader_feed(struct reader *r, const char *in, size_t n, size_t *used)
{
    for (size_t i = 0; i < n; i++) {
        char ch = in[i];

        /* Only the LF that completes a CR LF may go past the limit. */
        if (r->len >= r->limit && !(r->cr && ch == '\n')) {
            *used = i;
            return READER_TOOLONG;
        }
        store(r, ch);
        if (ch == '\n') {
            r->bare_lf = !r->cr;
            r->len -= r->cr ? 2 : 1;
            r->buf[r->len] = '\0';
            r->cr = false;
            *used = i + 1;
            return READER_LINE;
        }
        r->cr = (ch == '\r');
    }
    *used = n;
    return READER_MORE;
}

/* The completed line, without its terminator. */
const char *reader_line(const struct reader *r, size_t *len)
{
    if (len)
        *len = r->len;
    return r->buf ? r->buf : "";
}

/* Forget the completed line; the next one starts empty. */
void reader_next(struct reader *r)
{
    r->len = 0;
    r->cr = false;
    r->bare_lf = false;
    if (r->buf)
        r->buf[0] = '\0';
}
