/*
 * reader - SMTP command lines out of a byte stream, bounded
 *
 * reader_feed() takes bytes from the network and stops at the end of one
 * command line, at the length limit, or when the bytes run out; the
 * caller keeps whatever it did not consume (the pipelining test looks at
 * it).  Lines end in CR LF or in a bare LF (flagged, for the bare newline
 * test); a bare CR is data, as in postscreen.
 *
 * The limit is postscreen's line_length_limit, checked before every byte
 * is stored, whatever the parser's state: the stored line never exceeds
 * LIMIT + 1 bytes (postscreen checked only outside a CR, so a stream of
 * CRs grew its buffer without bound).  A line of LIMIT - 1 bytes plus
 * CR LF is accepted; LIMIT bytes before the CR is too long.
 *
 * The line is handed out NUL-terminated and with its length; bytes after
 * a NUL inside the line are data the caller may ignore.
 */
#ifndef MXS_READER_H
#define MXS_READER_H

#include <stdbool.h>
#include <stddef.h>

enum reader_status {
    READER_MORE,    /* all input consumed, no complete line yet */
    READER_LINE,    /* a complete line: reader_line() */
    READER_TOOLONG, /* the line reached the limit */
};

struct reader {
    char *buf;    /* the line so far */
    size_t len;   /* bytes stored */
    size_t cap;   /* bytes allocated */
    size_t limit; /* line_length_limit */
    bool cr;      /* the last byte stored was a CR */
    bool bare_lf; /* the completed line ended in a bare LF */
};

void reader_init(struct reader *r, size_t limit);
void reader_free(struct reader *r);
enum reader_status reader_feed(struct reader *r, const char *in, size_t n, size_t *used);
const char *reader_line(const struct reader *r, size_t *len);
void reader_next(struct reader *r);

#endif
