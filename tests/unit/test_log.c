/*
 * test_log - log_escape(): Postfix escape() rules, input limit, output bounds;
 * log_format_delay(): Postfix format_tv() with 2 significant digits
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "log/log.h"

struct escape_case {
    const char *in;
    size_t inlen;
    size_t maxin;
    const char *out;
};

#define IN(s) s, sizeof(s) - 1

static const struct escape_case escape_cases[] = {
    {IN(""), 100, ""},
    {IN("EHLO example.com"), 100, "EHLO example.com"},
    {IN(" !\"#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}~"), 100, " !\"#$%&'()*+,-./09:;<=>?@AZ[]^_`az{|}~"},
    {IN("a\\b"), 100, "a\\\\b"},
    {IN("\\\\"), 100, "\\\\\\\\"},
    {IN("QUIT\r\n"), 100, "QUIT\\r\\n"},
    {IN("\t"), 100, "\\t"},
    {IN("\a\b\f\v"), 100, "\\a\\b\\f\\v"},
    {IN("\x01"), 100, "\\001"},
    {IN("\xff"), 100, "\\377"},
    {IN("\x7f"), 100, "\\177"},
    {IN("\x1b[0m"), 100, "\\033[0m"},
    {IN("\x80\xc3\xa9"), 100, "\\200\\303\\251"},
    {IN("a\0b"), 100, "a\\000b"},
    {IN("\0"), 100, "\\000"},
    /* maxin cuts the input, not the output */
    {IN("abcdef"), 3, "abc"},
    {IN("abcdef"), 0, ""},
    {IN("\r\n\r\n"), 2, "\\r\\n"},
    {IN("\x01\x02\x03"), 1, "\\001"},
    {IN("ab"), 5, "ab"},
};

static void test_escape_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(escape_cases) / sizeof(escape_cases[0]); i++) {
        const struct escape_case *c = &escape_cases[i];
        char out[LOG_ESCAPE_BUFSZ];
        memset(out, 'X', sizeof(out));
        size_t n = log_escape(out, sizeof(out), c->in, c->inlen, c->maxin);
        if (strcmp(out, c->out) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, out, c->out);
        assert_int_equal(n, strlen(c->out));
    }
}

/* An independent statement of the rule, for every byte value. */
static void expected_byte(unsigned char ch, char *buf, size_t len)
{
    switch (ch) {
    case '\\':
        snprintf(buf, len, "\\\\");
        return;
    case '\a':
        snprintf(buf, len, "\\a");
        return;
    case '\b':
        snprintf(buf, len, "\\b");
        return;
    case '\f':
        snprintf(buf, len, "\\f");
        return;
    case '\n':
        snprintf(buf, len, "\\n");
        return;
    case '\r':
        snprintf(buf, len, "\\r");
        return;
    case '\t':
        snprintf(buf, len, "\\t");
        return;
    case '\v':
        snprintf(buf, len, "\\v");
        return;
    }
    if (ch >= 0x20 && ch <= 0x7e)
        snprintf(buf, len, "%c", ch);
    else
        snprintf(buf, len, "\\%o%o%o", ch >> 6, (ch >> 3) & 7, ch & 7);
}

static void test_escape_every_byte(void **state)
{
    (void)state;
    for (int b = 0; b < 256; b++) {
        unsigned char in = (unsigned char)b;
        char want[8], out[16];
        expected_byte(in, want, sizeof(want));
        size_t n = log_escape(out, sizeof(out), &in, 1, LOG_PEER_TEXT_MAX);
        if (strcmp(out, want) != 0)
            fail_msg("byte 0x%02x: got \"%s\", want \"%s\"", b, out, want);
        assert_int_equal(n, strlen(want));
    }
}

/* LOG_ESCAPE_BUFSZ holds the worst case of LOG_PEER_TEXT_MAX bytes. */
static void test_escape_worst_case_fits(void **state)
{
    unsigned char in[LOG_PEER_TEXT_MAX + 50];
    char out[LOG_ESCAPE_BUFSZ];

    (void)state;
    memset(in, 0xff, sizeof(in));
    size_t n = log_escape(out, sizeof(out), in, sizeof(in), LOG_PEER_TEXT_MAX);
    assert_int_equal(n, 4 * LOG_PEER_TEXT_MAX);
    assert_int_equal(strlen(out), 4 * LOG_PEER_TEXT_MAX);
    for (size_t i = 0; i < n; i += 4)
        assert_memory_equal(out + i, "\\377", 4);
}

/*
 * For every output size: nothing is written past dstlen, the result is
 * NUL-terminated, it is a prefix of the full escape made of whole escape
 * sequences, and the return value is its length.
 */
static void test_escape_never_overflows(void **state)
{
    static const char in[] = "ab\\c\r\n\x01\xff"
                             "d";
    char full[64];
    size_t fulln = log_escape(full, sizeof(full), in, sizeof(in) - 1, 100);
    /* unit boundaries of "ab\\\\c\\r\\n\\001\\377d" */
    static const size_t cuts[] = {0, 1, 2, 4, 5, 7, 9, 13, 17, 18};

    (void)state;
    assert_string_equal(full, "ab\\\\c\\r\\n\\001\\377d");
    assert_int_equal(fulln, 18);
    for (size_t dstlen = 1; dstlen <= 24; dstlen++) {
        char out[32];
        memset(out, '#', sizeof(out));
        size_t n = log_escape(out, dstlen, in, sizeof(in) - 1, 100);
        for (size_t k = dstlen; k < sizeof(out); k++)
            if (out[k] != '#')
                fail_msg("dstlen %zu: byte %zu written", dstlen, k);
        assert_int_equal(out[n], '\0');
        assert_int_equal(strlen(out), n);
        assert_true(n < dstlen);
        assert_memory_equal(out, full, n);
        /* the longest whole-unit prefix that fits */
        size_t want = 0;
        for (size_t c = 0; c < sizeof(cuts) / sizeof(cuts[0]); c++)
            if (cuts[c] < dstlen)
                want = cuts[c];
        if (n != want)
            fail_msg("dstlen %zu: got %zu bytes \"%s\", want %zu", dstlen, n, out, want);
    }
}

static void test_escape_zero_dstlen(void **state)
{
    char out[4] = "abc";

    (void)state;
    assert_int_equal(log_escape(out, 0, "xyz", 3, 100), 0);
    assert_string_equal(out, "abc");
}

/* ---- log_format_delay() ------------------------------------------------- */

struct delay_case {
    long sec, usec;
    int max_dig; /* delay_logging_resolution_limit */
    const char *out;
};

/* Expected values are Postfix 3.7's format_tv(buf, sec, usec, 2, max_dig). */
static const struct delay_case delay_cases[] = {
    {0, 140000, 2, "0.14"},
    {1, 234000, 2, "1.2"},
    {6, 0, 2, "6"},
    {0, 5000, 2, "0.01"},
    {0, 4000, 2, "0"},
    {12, 600000, 2, "13"},
    {0, 999999, 2, "1"},
    {0, 0, 2, "0"},
    {0, 1, 2, "0"},
    {0, 10000, 2, "0.01"},
    {0, 14999, 2, "0.01"},
    {0, 15000, 2, "0.02"},
    /* trailing zeros are dropped */
    {0, 95000, 2, "0.1"},
    {0, 100000, 2, "0.1"},
    {0, 994999, 2, "0.99"},
    {0, 995000, 2, "1"},
    {1, 0, 2, "1"},
    {1, 50000, 2, "1.1"},
    {1, 949999, 2, "1.9"},
    {1, 950000, 2, "2"},
    {9, 949999, 2, "9.9"},
    {9, 950000, 2, "10"},
    {10, 0, 2, "10"},
    {10, 499999, 2, "10"},
    {10, 500000, 2, "11"},
    {99, 500000, 2, "100"},
    {100, 0, 2, "100"},
    {123456, 700000, 2, "123457"},
    {0, 1000000, 2, "1"},
    /* other delay_logging_resolution_limit values */
    {0, 140000, 0, "0"},
    {0, 499999, 0, "0"},
    {0, 500000, 0, "1"},
    {0, 140000, 1, "0.1"},
    {0, 50000, 1, "0.1"},
    {0, 12, 3, "0"},
    {0, 123456, 6, "0.12"},
    {0, 1234, 6, "0.0012"},
    {0, 1, 6, "0.000001"},
    {1, 234567, 6, "1.2"},
};

static void test_format_delay_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(delay_cases) / sizeof(delay_cases[0]); i++) {
        const struct delay_case *c = &delay_cases[i];
        char out[32];
        memset(out, 'X', sizeof(out));
        log_set_delay_resolution(c->max_dig);
        log_format_delay(out, sizeof(out), c->sec, c->usec);
        log_set_delay_resolution(2);
        if (strcmp(out, c->out) != 0)
            fail_msg("(%ld, %ld) max_dig %d: got \"%s\", want \"%s\"", c->sec, c->usec, c->max_dig,
                     out, c->out);
    }
}

/* A short buffer gets a NUL-terminated prefix and nothing past LEN. */
static void test_format_delay_short_buffer(void **state)
{
    static const struct {
        long sec, usec;
        const char *full;
    } cases[] = {{0, 140000, "0.14"}, {1, 234000, "1.2"}, {123456, 700000, "123457"}};

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        for (size_t len = 1; len <= 8; len++) {
            char out[16];
            memset(out, '#', sizeof(out));
            log_format_delay(out, len, cases[i].sec, cases[i].usec);
            for (size_t k = len; k < sizeof(out); k++)
                if (out[k] != '#')
                    fail_msg("(%ld, %ld) len %zu: byte %zu written", cases[i].sec, cases[i].usec,
                             len, k);
            assert_true(strlen(out) < len);
            assert_memory_equal(out, cases[i].full, strlen(out));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_escape_table),
        cmocka_unit_test(test_escape_every_byte),
        cmocka_unit_test(test_escape_worst_case_fits),
        cmocka_unit_test(test_escape_never_overflows),
        cmocka_unit_test(test_escape_zero_dstlen),
        cmocka_unit_test(test_format_delay_table),
        cmocka_unit_test(test_format_delay_short_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
