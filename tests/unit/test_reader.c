/*
 * test_reader - the bounded SMTP line reader: line ends, bare LF and CR,
 * partial input, pipelined remainders, and the line_length_limit edges
 * (the buffer never grows past LIMIT + 2 bytes, whatever the input)
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "smtp/reader.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const char *status_name(enum reader_status s)
{
    switch (s) {
    case READER_MORE:
        return "READER_MORE";
    case READER_LINE:
        return "READER_LINE";
    case READER_TOOLONG:
        return "READER_TOOLONG";
    }
    return "?";
}

/*
 * Feed IN[0..N) in pieces of CHUNK bytes (0: all at once) until the reader
 * returns something other than READER_MORE or the input runs out.  Checks
 * after every call that *used is sane and the buffer stays within
 * LIMIT + 2 bytes; *TOTAL is the number of bytes consumed.
 */
static enum reader_status feed_chunks(const char *name, struct reader *r, const char *in, size_t n,
                                      size_t chunk, size_t *total)
{
    enum reader_status st = READER_MORE;
    size_t off = 0;

    if (chunk == 0)
        chunk = n ? n : 1;
    while (off < n) {
        size_t piece = n - off < chunk ? n - off : chunk;
        size_t used = (size_t)-1;
        st = reader_feed(r, in + off, piece, &used);
        if (used > piece)
            fail_msg("%s: used %zu of %zu bytes", name, used, piece);
        if (st == READER_MORE && used != piece)
            fail_msg("%s: READER_MORE after using %zu of %zu bytes", name, used, piece);
        if (r->cap > r->limit + 2)
            fail_msg("%s: cap %zu > limit %zu + 2", name, r->cap, r->limit);
        if (r->len > r->limit + 1)
            fail_msg("%s: len %zu > limit %zu + 1", name, r->len, r->limit);
        off += used;
        if (st != READER_MORE)
            break;
    }
    *total = off;
    return st;
}

/* ---- one line out of a byte stream --------------------------------------- */

struct line_case {
    const char *name;        /* for failure messages */
    size_t limit;            /* line_length_limit */
    char fill;               /* NFILL copies of FILL come first, */
    size_t nfill;            /* (0 for none) */
    const char *in;          /* then these bytes */
    size_t inlen;            /* of IN */
    size_t chunk;            /* bytes per reader_feed() call; 0 = all */
    enum reader_status want; /* what the last reader_feed() returns */
    size_t used;             /* bytes consumed in total */
    const char *line;        /* READER_LINE: the line is NFILL x FILL, then LINE */
    size_t linelen;          /* of LINE */
    bool bare_lf;            /* READER_LINE: the bare_lf flag */
};

#define B(s) s, sizeof(s) - 1

static const struct line_case line_cases[] = {
    {"CRLF line", 512, 0, 0, B("HELO x\r\n"), 0, READER_LINE, 8, B("HELO x"), false},
    {"bare LF line", 512, 0, 0, B("HELO x\n"), 0, READER_LINE, 7, B("HELO x"), true},
    {"empty CRLF line", 512, 0, 0, B("\r\n"), 0, READER_LINE, 2, B(""), false},
    {"empty bare LF line", 512, 0, 0, B("\n"), 0, READER_LINE, 1, B(""), true},
    {"bare CR inside is data", 512, 0, 0, B("a\rb\r\n"), 0, READER_LINE, 5, B("a\rb"), false},
    {"leading bare CR is data", 512, 0, 0, B("\rQUIT\r\n"), 0, READER_LINE, 7, B("\rQUIT"), false},
    {"CR CR LF keeps one CR", 512, 0, 0, B("X\r\r\n"), 0, READER_LINE, 4, B("X\r"), false},
    {"CR CR LF, 1 byte a time", 512, 0, 0, B("X\r\r\n"), 1, READER_LINE, 4, B("X\r"), false},
    {"CR then text then LF is bare", 512, 0, 0, B("a\rb\n"), 0, READER_LINE, 4, B("a\rb"), true},
    {"1 byte at a time", 512, 0, 0, B("EHLO example.com\r\n"), 1, READER_LINE, 18,
     B("EHLO example.com"), false},
    {"2 bytes at a time", 512, 0, 0, B("EHLO example.com\r\n"), 2, READER_LINE, 18,
     B("EHLO example.com"), false},
    {"CR and LF in separate feeds", 512, 0, 0, B("NOOP\r\n"), 5, READER_LINE, 6, B("NOOP"), false},
    {"bare LF, 1 byte at a time", 512, 0, 0, B("NOOP\n"), 1, READER_LINE, 5, B("NOOP"), true},
    {"two lines: only the first", 512, 0, 0, B("QUIT\r\nNOOP\r\n"), 0, READER_LINE, 6, B("QUIT"),
     false},
    {"bare LF then CRLF line", 512, 0, 0, B("QUIT\nNOOP\r\n"), 0, READER_LINE, 5, B("QUIT"), true},
    {"no line end", 512, 0, 0, B("HELO x"), 0, READER_MORE, 6, NULL, 0, false},
    {"pending CR", 512, 0, 0, B("HELO x\r"), 0, READER_MORE, 7, NULL, 0, false},
    {"NUL bytes are kept", 512, 0, 0, B("a\0b\0\r\n"), 0, READER_LINE, 6, B("a\0b\0"), false},
    {"only NUL", 512, 0, 0, B("\0\n"), 1, READER_LINE, 2, B("\0"), true},
    {"8-bit bytes are kept", 512, 0, 0, B("\xff\xc3\xa9\r\n"), 0, READER_LINE, 5, B("\xff\xc3\xa9"),
     false},

    /* line_length_limit 512 */
    {"L=512: L-1 + CRLF", 512, 'a', 511, B("\r\n"), 0, READER_LINE, 513, B(""), false},
    {"L=512: L-1 + CRLF, 1 byte a time", 512, 'a', 511, B("\r\n"), 1, READER_LINE, 513, B(""),
     false},
    {"L=512: L + CRLF", 512, 'a', 512, B("\r\n"), 0, READER_TOOLONG, 512, NULL, 0, false},
    {"L=512: L + CRLF, 1 byte a time", 512, 'a', 512, B("\r\n"), 1, READER_TOOLONG, 512, NULL, 0,
     false},
    {"L=512: L+1 + CRLF", 512, 'a', 513, B("\r\n"), 0, READER_TOOLONG, 512, NULL, 0, false},
    {"L=512: L-1 + LF", 512, 'a', 511, B("\n"), 0, READER_LINE, 512, B(""), true},
    {"L=512: L + LF", 512, 'a', 512, B("\n"), 0, READER_TOOLONG, 512, NULL, 0, false},
    {"L=512: L-2 + CR + CRLF", 512, 'a', 510, B("\r\r\n"), 0, READER_LINE, 513, B("\r"), false},
    {"L=512: L-1 + CR + CRLF", 512, 'a', 511, B("\r\r\n"), 0, READER_TOOLONG, 512, NULL, 0, false},
    {"L=512: 10*L CRs", 512, '\r', 5120, B(""), 0, READER_TOOLONG, 512, NULL, 0, false},
    {"L=512: 10*L CRs, 1 byte a time", 512, '\r', 5120, B(""), 1, READER_TOOLONG, 512, NULL, 0,
     false},
    {"L=512: 10*L CRs then LF", 512, '\r', 5120, B("\n"), 7, READER_TOOLONG, 512, NULL, 0, false},
    /* 511 CRs and a LF: the last CR and the LF end the line */
    {"L=512: L-1 CRs + LF", 512, '\r', 510, B("\r\n"), 0, READER_LINE, 512, B(""), false},

    /* line_length_limit 2048 */
    {"L=2048: L-1 + CRLF", 2048, 'b', 2047, B("\r\n"), 0, READER_LINE, 2049, B(""), false},
    {"L=2048: L-1 + CRLF, 1 byte a time", 2048, 'b', 2047, B("\r\n"), 1, READER_LINE, 2049, B(""),
     false},
    {"L=2048: L + CRLF", 2048, 'b', 2048, B("\r\n"), 0, READER_TOOLONG, 2048, NULL, 0, false},
    {"L=2048: L+1 + CRLF", 2048, 'b', 2049, B("\r\n"), 0, READER_TOOLONG, 2048, NULL, 0, false},
    {"L=2048: L-1 + LF", 2048, 'b', 2047, B("\n"), 0, READER_LINE, 2048, B(""), true},
    {"L=2048: L + LF", 2048, 'b', 2048, B("\n"), 0, READER_TOOLONG, 2048, NULL, 0, false},
    {"L=2048: L + LF, 3 bytes a time", 2048, 'b', 2048, B("\n"), 3, READER_TOOLONG, 2048, NULL, 0,
     false},
    {"L=2048: 10*L CRs", 2048, '\r', 20480, B(""), 0, READER_TOOLONG, 2048, NULL, 0, false},
    {"L=2048: 10*L CRs, 1 byte a time", 2048, '\r', 20480, B(""), 1, READER_TOOLONG, 2048, NULL, 0,
     false},
    {"L=2048: 1 MiB without newline", 2048, 'x', 1 << 20, B(""), 4096, READER_TOOLONG, 2048, NULL,
     0, false},
    {"L=2048: 1 MiB without newline, one feed", 2048, 'x', 1 << 20, B(""), 0, READER_TOOLONG, 2048,
     NULL, 0, false},
    {"L=512: 1 MiB without newline", 512, 'x', 1 << 20, B(""), 1000, READER_TOOLONG, 512, NULL, 0,
     false},
};

static void test_line_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(line_cases); i++) {
        const struct line_case *c = &line_cases[i];
        size_t n = c->nfill + c->inlen;
        char *in = malloc(n ? n : 1);
        assert_non_null(in);
        memset(in, c->fill, c->nfill);
        memcpy(in + c->nfill, c->in, c->inlen);

        struct reader r;
        reader_init(&r, c->limit);
        size_t used;
        enum reader_status st = feed_chunks(c->name, &r, in, n, c->chunk, &used);
        if (st != c->want)
            fail_msg("%s: got %s, want %s", c->name, status_name(st), status_name(c->want));
        if (used != c->used)
            fail_msg("%s: used %zu bytes, want %zu", c->name, used, c->used);
        if (c->want == READER_LINE) {
            size_t len = (size_t)-1;
            const char *line = reader_line(&r, &len);
            size_t wantlen = c->nfill + c->linelen;
            if (len != wantlen)
                fail_msg("%s: line length %zu, want %zu", c->name, len, wantlen);
            for (size_t k = 0; k < c->nfill; k++)
                if (line[k] != c->fill)
                    fail_msg("%s: line byte %zu is 0x%02x", c->name, k, (unsigned char)line[k]);
            if (memcmp(line + c->nfill, c->line, c->linelen) != 0)
                fail_msg("%s: line tail differs", c->name);
            if (line[len] != '\0')
                fail_msg("%s: line not NUL-terminated", c->name);
            if (r.bare_lf != c->bare_lf)
                fail_msg("%s: bare_lf %d, want %d", c->name, r.bare_lf, c->bare_lf);
        }
        if (c->want == READER_TOOLONG && r.len > c->limit)
            fail_msg("%s: %zu bytes stored past limit %zu", c->name, r.len, c->limit);
        reader_free(&r);
        free(in);
    }
}

/*
 * Every limit near the initial allocation and its doubling, every line
 * length around the limit, both line ends, whole and byte by byte: a line
 * of LIMIT - 1 bytes or less is a line, LIMIT bytes or more is too long.
 */
static void test_limit_sweep(void **state)
{
    static const size_t limits[] = {1, 2, 3, 127, 254, 255, 256, 257, 258, 511, 512, 513, 2048};
    static const char *const ends[] = {"\r\n", "\n"};
    static const size_t chunks[] = {0, 1, 7};

    (void)state;
    for (size_t li = 0; li < NELEM(limits); li++) {
        size_t limit = limits[li];
        for (size_t content = limit > 2 ? limit - 2 : 0; content <= limit + 2; content++) {
            for (size_t ei = 0; ei < NELEM(ends); ei++) {
                for (size_t ci = 0; ci < NELEM(chunks); ci++) {
                    size_t elen = strlen(ends[ei]);
                    size_t n = content + elen;
                    char *in = malloc(n);
                    char name[96];
                    assert_non_null(in);
                    memset(in, 'z', content);
                    memcpy(in + content, ends[ei], elen);
                    snprintf(name, sizeof(name), "limit %zu, %zu bytes + %s, chunk %zu", limit,
                             content, elen == 2 ? "CRLF" : "LF", chunks[ci]);

                    struct reader r;
                    reader_init(&r, limit);
                    size_t used;
                    enum reader_status st = feed_chunks(name, &r, in, n, chunks[ci], &used);
                    if (content < limit) {
                        if (st != READER_LINE || used != n)
                            fail_msg("%s: got %s after %zu bytes, want READER_LINE after %zu", name,
                                     status_name(st), used, n);
                        size_t len;
                        reader_line(&r, &len);
                        if (len != content || r.bare_lf != (elen == 1))
                            fail_msg("%s: line of %zu bytes, bare_lf %d", name, len, r.bare_lf);
                    } else if (st != READER_TOOLONG || used != limit) {
                        fail_msg("%s: got %s after %zu bytes, want READER_TOOLONG after %zu", name,
                                 status_name(st), used, limit);
                    }
                    reader_free(&r);
                    free(in);
                }
            }
        }
    }
}

/* ---- more than one line -------------------------------------------------- */

/* Read every line of a pipelined buffer; the remainder of each feed is kept by the caller. */
static void test_pipelined_lines(void **state)
{
    static const char in[] = "EHLO a\r\nMAIL FROM:<>\nRCPT TO:<b@c>\r\n\r\nDATA\r";
    static const struct {
        const char *line;
        size_t used;
        bool bare_lf;
    } want[] = {
        {"EHLO a", 8, false},
        {"MAIL FROM:<>", 13, true},
        {"RCPT TO:<b@c>", 15, false},
        {"", 2, false},
    };
    struct reader r;
    const char *p = in;
    size_t n = sizeof(in) - 1;

    (void)state;
    reader_init(&r, 512);
    for (size_t i = 0; i < NELEM(want); i++) {
        size_t used, len;
        assert_int_equal(reader_feed(&r, p, n, &used), READER_LINE);
        assert_int_equal(used, want[i].used);
        const char *line = reader_line(&r, &len);
        assert_int_equal(len, strlen(want[i].line));
        assert_string_equal(line, want[i].line);
        assert_int_equal(r.bare_lf, want[i].bare_lf);
        p += used;
        n -= used;
        reader_next(&r);
    }
    /* "DATA\r" is left: no line yet, everything consumed */
    size_t used;
    assert_int_equal(reader_feed(&r, p, n, &used), READER_MORE);
    assert_int_equal(used, 5);
    assert_int_equal(reader_feed(&r, "\n", 1, &used), READER_LINE);
    assert_int_equal(used, 1);
    assert_string_equal(reader_line(&r, NULL), "DATA");
    assert_false(r.bare_lf);
    reader_free(&r);
}

/* ---- reader_next() and the state it resets ------------------------------- */

static void test_next_resets_state(void **state)
{
    struct reader r;
    size_t used, len;

    (void)state;
    reader_init(&r, 512);

    /* nothing read yet: an empty line */
    assert_string_equal(reader_line(&r, &len), "");
    assert_int_equal(len, 0);

    /* a pending CR does not survive reader_next(): the LF after it is bare */
    assert_int_equal(reader_feed(&r, "abc\r", 4, &used), READER_MORE);
    assert_true(r.cr);
    reader_next(&r);
    assert_false(r.cr);
    assert_int_equal(r.len, 0);
    assert_int_equal(reader_feed(&r, "\n", 1, &used), READER_LINE);
    assert_string_equal(reader_line(&r, &len), "");
    assert_int_equal(len, 0);
    assert_true(r.bare_lf);

    /* bare_lf is cleared by reader_next() and set per line */
    reader_next(&r);
    assert_false(r.bare_lf);
    assert_string_equal(reader_line(&r, &len), "");
    assert_int_equal(len, 0);
    assert_int_equal(reader_feed(&r, "x\r\n", 3, &used), READER_LINE);
    assert_false(r.bare_lf);
    reader_next(&r);
    assert_int_equal(reader_feed(&r, "y\n", 2, &used), READER_LINE);
    assert_true(r.bare_lf);
    assert_string_equal(reader_line(&r, NULL), "y");
    reader_next(&r);
    assert_int_equal(reader_feed(&r, "z\r\n", 3, &used), READER_LINE);
    assert_false(r.bare_lf);
    assert_string_equal(reader_line(&r, NULL), "z");

    /* a line that ended in CR LF leaves no CR state behind */
    reader_next(&r);
    assert_false(r.cr);
    assert_int_equal(reader_feed(&r, "\n", 1, &used), READER_LINE);
    assert_true(r.bare_lf);

    /* the limit counts from the start of each line, not of the stream */
    reader_next(&r);
    char big[511];
    memset(big, 'q', sizeof(big));
    for (int i = 0; i < 3; i++) {
        assert_int_equal(reader_feed(&r, big, sizeof(big), &used), READER_MORE);
        assert_int_equal(reader_feed(&r, "\r\n", 2, &used), READER_LINE);
        reader_line(&r, &len);
        assert_int_equal(len, sizeof(big));
        reader_next(&r);
    }
    assert_true(r.cap <= 512 + 2);
    reader_free(&r);
    /* reader_free() twice is harmless */
    reader_free(&r);
    assert_null(r.buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_table),
        cmocka_unit_test(test_limit_sweep),
        cmocka_unit_test(test_pipelined_lines),
        cmocka_unit_test(test_next_resets_state),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
