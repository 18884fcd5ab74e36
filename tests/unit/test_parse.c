/*
 * test_parse - the SMTP engine's small parsers: tokens, MAIL/RCPT addresses,
 * header lines, UTF-8, printable text and logged addresses, each against
 * what Postfix (postscreen, is_header(), valid_utf8_string(),
 * quote_822_local(), printable()) does with the same input
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

#include "smtp/parse.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

/* ---- smtp_next_token() --------------------------------------------------- */

struct token_case {
    const char *in;
    const char *tokens[5]; /* NULL-terminated */
};

static const struct token_case token_cases[] = {
    {"MAIL FROM:<a@b>", {"MAIL", "FROM:<a@b>", NULL}},
    {"EHLO", {"EHLO", NULL}},
    {"  leading", {"leading", NULL}},
    {"a  b   c ", {"a", "b", "c", NULL}},
    {"", {NULL}},
    {"    ", {NULL}},
    /* tabs are not separators (mystrtok(&p, " ")) */
    {"HELO\tx", {"HELO\tx", NULL}},
    {"\t", {"\t", NULL}},
    {"a\t b", {"a\t", "b", NULL}},
    {" \t ", {"\t", NULL}},
    /* CR and other bytes are data too */
    {"QUIT\r", {"QUIT\r", NULL}},
    {"x\xff y", {"x\xff", "y", NULL}},
};

static void test_next_token_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(token_cases); i++) {
        const struct token_case *c = &token_cases[i];
        char *copy = strdup(c->in);
        char *p = copy;
        size_t k;
        assert_non_null(copy);
        for (k = 0; c->tokens[k]; k++) {
            char *t = smtp_next_token(&p);
            if (t == NULL || strcmp(t, c->tokens[k]) != 0)
                fail_msg("case %zu \"%s\": token %zu is \"%s\", want \"%s\"", i, c->in, k,
                         t ? t : "(null)", c->tokens[k]);
        }
        if (smtp_next_token(&p) != NULL)
            fail_msg("case %zu \"%s\": more than %zu tokens", i, c->in, k);
        /* the end stays the end */
        assert_null(smtp_next_token(&p));
        assert_int_equal(*p, '\0');
        assert_true(p >= copy && p <= copy + strlen(c->in));
        free(copy);
    }
}

/* ---- smtp_extract_addr() (postscreen's psc_extract_addr()) --------------- */

struct addr_case {
    const char *in;
    const char *out;
};

static const struct addr_case addr_cases[] = {
    {"<a@b>", "a@b"},
    {" <a@b> SIZE=10", "a@b"},
    {"   <a@b>", "a@b"},
    {"a@b SIZE=1", "a@b"},
    {" a@b", "a@b"},
    {"a@b", "a@b"},
    {"<\"x y\"@b>", "x y@b"},
    {"\"x y\"@b SIZE=1", "x y@b"},
    /* a quoted '>' does not end the address */
    {"<\"a>b\"@c>", "a>b@c"},
    /* \\ is one backslash, then '>' ends the address */
    {"<a\\\\>b@c>", "a\\"},
    /* \> is an escaped '>' */
    {"<a\\>b@c>", "a>b@c"},
    {"<a\\\"b@c>", "a\"b@c"},
    /* a backslash at the very end is dropped */
    {"<a@b\\", "a@b"},
    {"a\\", "a"},
    /* source routes are dropped */
    {"<@r1,@r2:u@d>", "u@d"},
    {"<@r1:u@d>", "u@d"},
    {"@r1:u@d", "u@d"},
    {"<@r1:>", ""},
    /* only a leading '@' starts a route */
    {"<u@d:x>", "u@d:x"},
    {"<@nocolon>", "@nocolon"},
    {"<>", ""},
    {"<> SIZE=1", ""},
    {"<a@b", "a@b"},
    {"<", ""},
    {"", ""},
    {"   ", ""},
    /* inside <>, a space is data */
    {"<a b@c>", "a b@c"},
    /* an unterminated quote runs to the end */
    {"<\"a@b>", "a@b>"},
    {"\t<a@b>", "\t<a@b>"},
};

static void test_extract_addr_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(addr_cases); i++) {
        char *got = smtp_extract_addr(addr_cases[i].in);
        assert_non_null(got);
        if (strcmp(got, addr_cases[i].out) != 0)
            fail_msg("case %zu \"%s\": got \"%s\", want \"%s\"", i, addr_cases[i].in, got,
                     addr_cases[i].out);
        free(got);
    }
}

/* ---- smtp_is_header() (Postfix's is_header()) ---------------------------- */

struct header_case {
    const char *in;
    bool want;
};

static const struct header_case header_cases[] = {
    {"Subject:", true}, {"Subject: hello", true},
    {"FOO :", true},    {"FOO\t:", true},
    {"FOO \t :", true}, {"X-Y_z!#:", true},
    {"a:b", true},      {"~:", true},
    {":", false},       {" :", false},
    {"FOO", false},     {"", false},
    {"a b:", false},    {" FOO:", false},
    {"\tFOO:", false},  {"F\x01O:", false},
    {"F\x7fO:", false}, {"a\r:", false},
    {"\x1b:", false},   {"F\xc3\xa9:", false},
    {"\xff:", false},   {"Subject", false},
    {"FOO \t", false},
};

static void test_is_header_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(header_cases); i++)
        if (smtp_is_header(header_cases[i].in) != header_cases[i].want)
            fail_msg("case %zu \"%s\": want %d", i, header_cases[i].in, header_cases[i].want);
}

/* ---- smtp_valid_utf8() (Postfix's valid_utf8_string()) ------------------- */

struct utf8_case {
    const char *name;
    const char *in;
    size_t len;
    bool want;
};

#define U(s) s, sizeof(s) - 1

static const struct utf8_case utf8_cases[] = {
    {"empty", U(""), true},
    {"ASCII", U("MAIL FROM:<a@b>"), true},
    {"ASCII controls and DEL", U("\x01\t\x7f"), true},
    {"NUL inside", U("a\0b"), true},
    {"2-byte U+00E9", U("\xc3\xa9"), true},
    {"2-byte lowest U+0080", U("\xc2\x80"), true},
    {"2-byte highest U+07FF", U("\xdf\xbf"), true},
    {"3-byte U+20AC", U("\xe2\x82\xac"), true},
    {"3-byte lowest U+0800", U("\xe0\xa0\x80"), true},
    {"3-byte U+D7FF", U("\xed\x9f\xbf"), true},
    {"3-byte U+E000", U("\xee\x80\x80"), true},
    {"3-byte U+FFFF", U("\xef\xbf\xbf"), true},
    {"4-byte U+1F600", U("\xf0\x9f\x98\x80"), true},
    {"4-byte lowest U+10000", U("\xf0\x90\x80\x80"), true},
    {"4-byte highest U+10FFFF", U("\xf4\x8f\xbf\xbf"), true},
    {"mixed", U("a\xc3\xa9z\xe2\x82\xac\xf0\x9f\x98\x80!"), true},
    {"overlong C0 80", U("\xc0\x80"), false},
    {"overlong C1 BF", U("\xc1\xbf"), false},
    {"overlong E0 80 80", U("\xe0\x80\x80"), false},
    {"overlong E0 9F BF", U("\xe0\x9f\xbf"), false},
    {"overlong F0 80 80 80", U("\xf0\x80\x80\x80"), false},
    {"overlong F0 8F BF BF", U("\xf0\x8f\xbf\xbf"), false},
    {"surrogate ED A0 80", U("\xed\xa0\x80"), false},
    {"surrogate ED BF BF", U("\xed\xbf\xbf"), false},
    {"above U+10FFFF: F4 90 80 80", U("\xf4\x90\x80\x80"), false},
    {"F5 lead", U("\xf5\x80\x80\x80"), false},
    {"FF", U("\xff"), false},
    {"FE", U("\xfe"), false},
    {"truncated 2-byte", U("\xc3"), false},
    {"truncated 2-byte after ASCII", U("abc\xc3"), false},
    {"truncated 3-byte", U("\xe2\x82"), false},
    {"truncated 4-byte", U("\xf0\x9f\x98"), false},
    {"lone continuation 80", U("\x80"), false},
    {"lone continuation BF", U("a\xbf"), false},
    {"extra continuation", U("\xc3\xa9\xa9"), false},
    {"bad tail in 2-byte", U("\xc3\x28"), false},
    {"bad tail in 3-byte", U("\xe2\x28\xa1"), false},
    {"bad last tail in 4-byte", U("\xf0\x9f\x98\x28"), false},
    /* the length counts, not the NUL */
    {"length cuts a sequence", "\xc3\xa9", 1, false},
    {"length stops before a bad byte", "ab\xff", 2, true},
};

static void test_valid_utf8_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(utf8_cases); i++)
        if (smtp_valid_utf8(utf8_cases[i].in, utf8_cases[i].len) != utf8_cases[i].want)
            fail_msg("%s: want %d", utf8_cases[i].name, utf8_cases[i].want);
}

/* Every 2-byte prefix: valid exactly when Postfix's rule says so. */
static void test_valid_utf8_two_bytes(void **state)
{
    (void)state;
    for (int a = 0x80; a < 0x100; a++) {
        for (int b = 0; b < 0x100; b++) {
            char s[2] = {(char)a, (char)b};
            bool want = a >= 0xc2 && a <= 0xdf && (b & 0xc0) == 0x80;
            if (smtp_valid_utf8(s, 2) != want)
                fail_msg("%02x %02x: want %d", a, b, want);
        }
    }
}

/* ---- smtp_printable() ---------------------------------------------------- */

struct printable_case {
    const char *in;
    const char *out;
};

static const struct printable_case printable_cases[] = {
    {"", ""},
    {"abc", "abc"},
    {" !\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~", " !\"#$%&'()*+,-./09:;<=>?@AZ[\\]^_`az{|}~"},
    {"a\x01"
     "b",
     "a?b"},
    {"\t\r\n", "???"},
    {"\x7f", "?"},
    {"\x80\xff", "??"},
    {"\xc3\xa9", "??"},
    {"\x1b[0m", "?[0m"},
};

static void test_printable_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(printable_cases); i++) {
        char buf[64];
        snprintf(buf, sizeof(buf), "%s", printable_cases[i].in);
        smtp_printable(buf);
        if (strcmp(buf, printable_cases[i].out) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, buf, printable_cases[i].out);
    }
}

/* ---- smtp_log_address() (info_log_address_format, quote_822_local()) ---- */

struct logaddr_case {
    const char *in;  /* the address as smtp_extract_addr() returns it */
    bool internal;   /* info_log_address_format = internal */
    const char *out; /* what is logged */
    const char *bug; /* non-NULL: a known divergence from Postfix */
};

/*
 * Expected values are what Postfix 3.7's info_log_addr_form_recipient()
 * produces (quote_822_local() with QUOTE_FLAG_8BITCLEAN), with msg(3)'s
 * printable(..., '?') applied to the result, as postscreen logs it.
 */
static const struct logaddr_case logaddr_cases[] = {
    {"user@example.com", false, "user@example.com", NULL},
    {"a.b@c", false, "a.b@c", NULL},
    {"a+b=c@d", false, "a+b=c@d", NULL},
    {"a'b@c", false, "a'b@c", NULL},
    {"postmaster", false, "postmaster", NULL},
    {"", false, "", NULL},
    {"", true, "", NULL},
    {"a b@c", false, "\"a b\"@c", NULL},
    {"a b", false, "\"a b\"", NULL},
    {".a@b", false, "\".a\"@b", NULL},
    {"a..b@c", false, "\"a..b\"@c", NULL},
    {"a.@b", false, "\"a.\"@b", NULL},
    {"a\"b@c", false, "\"a\\\"b\"@c", NULL},
    {"a\\b@c", false, "\"a\\\\b\"@c", NULL},
    {"(a)@b", false, "\"(a)\"@b", NULL},
    {"a,b@c", false, "\"a,b\"@c", NULL},
    {"a;b@c", false, "\"a;b\"@c", NULL},
    {"[a]@b", false, "\"[a]\"@b", NULL},
    {"x@y@z", false, "\"x@y\"@z", NULL},
    {"a\x01"
     "b@c",
     false, "\"a?b\"@c", NULL},
    {"a\tb@c", false, "\"a?b\"@c", NULL},
    {"a\x7f@b", false, "\"a?\"@b", NULL},
    /* the domain is never quoted, only made printable */
    {"a@b\x01"
     "c",
     false, "a@b?c", NULL},
    {"a@b c", false, "a@b c", NULL},
    /* internal form: never quoted, still printable */
    {"a b@c", true, "a b@c", NULL},
    {".a@b", true, ".a@b", NULL},
    {"a\x01@b", true, "a?@b", NULL},
    {"a\xff@b", true, "a?@b", NULL},
    /*
     * As in Postfix: quote_822_local() is 8-bit clean by default (QUOTE_FLAG_DEFAULT
     * is QUOTE_FLAG_8BITCLEAN): a local part with 8-bit bytes is not quoted.
     */
    {"a\xff"
     "b@c",
     false, "a?b@c", "8-bit local part is quoted"},
    /* As in Postfix: Postfix quotes an empty local part: is_822_dot_string("") is NO */
    {"@example.com", false, "\"\"@example.com", "empty local part not quoted"},
    /* As in Postfix: make_822_quoted_string() escapes CR with a backslash */
    {"a\rb@c", false, "\"a\\?b\"@c", "CR in a quoted local part not escaped"},
};

static void test_log_address_table(void **state)
{
    size_t failed = 0;

    (void)state;
    for (size_t i = 0; i < NELEM(logaddr_cases); i++) {
        const struct logaddr_case *c = &logaddr_cases[i];
        char buf[256];
        smtp_log_address(buf, sizeof(buf), c->in, c->internal);
        if (strcmp(buf, c->out) != 0) {
            print_error("case %zu%s: got \"%s\", want \"%s\"%s%s\n", i,
                        c->internal ? " (internal)" : "", buf, c->out, c->bug ? " -- BUG: " : "",
                        c->bug ? c->bug : "");
            failed++;
        }
    }
    if (failed)
        fail_msg("%zu smtp_log_address() cases failed", failed);
}

/* A short buffer cuts the result, NUL-terminated, never past LEN. */
static void test_log_address_short_buffer(void **state)
{
    (void)state;
    for (size_t len = 1; len <= 12; len++) {
        char buf[16];
        memset(buf, '#', sizeof(buf));
        smtp_log_address(buf, len, "a b@example", false);
        for (size_t k = len; k < sizeof(buf); k++)
            if (buf[k] != '#')
                fail_msg("len %zu: byte %zu written", len, k);
        assert_true(strlen(buf) < len);
        assert_memory_equal(buf, "\"a b\"@example", strlen(buf));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_token_table),
        cmocka_unit_test(test_extract_addr_table),
        cmocka_unit_test(test_is_header_table),
        cmocka_unit_test(test_valid_utf8_table),
        cmocka_unit_test(test_valid_utf8_two_bytes),
        cmocka_unit_test(test_printable_table),
        cmocka_unit_test(test_log_address_table),
        cmocka_unit_test(test_log_address_short_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
