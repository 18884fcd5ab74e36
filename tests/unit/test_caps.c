/*
 * test_caps - the backend's EHLO keywords (parse), what MAIL and RCPT
 * parameters need, and the names in log lines
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "smtp/caps.h"
#include "smtp/engine_int.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static const struct parse_case {
    const char *reply;
    bool ok;
    unsigned mask;
    long long size;
} parse_cases[] = {
    /* Postfix 3.7's default reply. */
    {"250-mx.test\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-VRFY\r\n250-ETRN\r\n"
     "250-STARTTLS\r\n250-ENHANCEDSTATUSCODES\r\n250-8BITMIME\r\n250-DSN\r\n250-SMTPUTF8\r\n"
     "250 CHUNKING\r\n",
     true,
     EHLO_PIPELINING | EHLO_SIZE | EHLO_VRFY | EHLO_ETRN | EHLO_STARTTLS |
         EHLO_ENHANCEDSTATUSCODES | EHLO_8BITMIME | EHLO_DSN | EHLO_SMTPUTF8 | EHLO_CHUNKING,
     10240000},
    /* Only the name: no keywords at all. */
    {"250 mx.test\r\n", true, 0, 0},
    /* The name line is never a keyword, even when it looks like one. */
    {"250-SIZE\r\n250 DSN\r\n", true, EHLO_DSN, 0},
    /* SIZE without a number: no limit; lower case; LF only; AUTH=LOGIN form. */
    {"250-mx\n250-size\n250-AUTH=LOGIN PLAIN\n250 8bitmime\n", true,
     EHLO_SIZE | EHLO_AUTH | EHLO_8BITMIME, 0},
    /* Unknown keywords are ignored; Postfix's odd mask name is not a keyword. */
    {"250-mx\r\n250-XFOO bar\r\n250-EHLO_MASK_SMTPUTF8\r\n250-SILENT-DISCARD\r\n250 BINARYMIME\r\n",
     true, 0, 0},
    /* A negative or garbage SIZE is no limit. */
    {"250-mx\r\n250 SIZE -5\r\n", true, EHLO_SIZE, 0},
    {"250-mx\r\n250 SIZE abc\r\n", true, EHLO_SIZE, 0},
    /* Not a 250 reply. */
    {"502 5.5.2 Error: command not recognized\r\n", false, 0, 0},
    {"25", false, 0, 0},
    {"", false, 0, 0},
};

static void test_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(parse_cases); i++) {
        const struct parse_case *c = &parse_cases[i];
        struct ehlo_caps caps = {0};
        bool ok = caps_parse(&caps, c->reply, strlen(c->reply));
        if (ok != c->ok || (ok && (caps.mask != c->mask || caps.size != c->size || !caps.known)))
            fail_msg("case %zu: ok %d mask %#x size %lld, want ok %d mask %#x size %lld", i, ok,
                     caps.mask, caps.size, c->ok, c->mask, c->size);
        if (ok && caps_starttls(&caps) != ((c->mask & EHLO_STARTTLS) != 0))
            fail_msg("case %zu: caps_starttls() disagrees with the mask", i);
    }
}

static const struct need_case {
    const char *line;
    unsigned need;
} need_cases[] = {
    {"MAIL FROM:<a@b>", 0},
    {"MAIL FROM:<>", 0},
    {"MAIL FROM:<a@b> SIZE=1000", EHLO_SIZE},
    {"mail from:<a@b> size=1000 body=8bitmime", EHLO_SIZE | EHLO_8BITMIME},
    {"MAIL FROM:<a@b> BODY=7BIT", 0},
    {"MAIL FROM:<a@b> BODY=BINARYMIME", 0},
    {"MAIL FROM:<a@b> SMTPUTF8", EHLO_SMTPUTF8},
    {"MAIL FROM:<a@b> RET=HDRS ENVID=x", EHLO_DSN},
    {"RCPT TO:<c@d> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;c@d", EHLO_DSN},
    {"RCPT TO:<c@d>", 0},
    /* Spaces inside the address are not parameter separators. */
    {"MAIL FROM:<\"SIZE=1 x\"@b>", 0},
    {"MAIL FROM:<\"a > SMTPUTF8\"@b> BODY=8BITMIME", EHLO_8BITMIME},
    {"MAIL FROM: <a@b>  SIZE=5", EHLO_SIZE},
    /* An address without brackets ends at the first space. */
    {"MAIL FROM:a@b SMTPUTF8", EHLO_SMTPUTF8},
    /* A keyword that only starts like one is not it. */
    {"MAIL FROM:<a@b> SIZEX=1 RETX=2 SMTPUTF8X", 0},
    /* No colon: no address, no parameters. */
    {"MAIL", 0},
};

static void test_needed(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(need_cases); i++) {
        unsigned got = caps_needed(need_cases[i].line);
        if (got != need_cases[i].need)
            fail_msg("case %zu (%s): %#x, want %#x", i, need_cases[i].line, got,
                     need_cases[i].need);
    }
}

static void test_names(void **state)
{
    char buf[256];

    (void)state;
    caps_names(buf, sizeof(buf), EHLO_SMTPUTF8 | EHLO_DSN | EHLO_SIZE);
    assert_string_equal(buf, "SIZE DSN SMTPUTF8");
    caps_names(buf, sizeof(buf), 0);
    assert_string_equal(buf, "");
    /* A short buffer is cut at a whole name, never overrun. */
    caps_names(buf, 10, EHLO_SIZE | EHLO_ENHANCEDSTATUSCODES);
    assert_string_equal(buf, "SIZE");
}

static void test_same(void **state)
{
    struct ehlo_caps a = {true, EHLO_DSN, 10}, b = a;

    (void)state;
    assert_true(caps_same(&a, &b));
    b.size = 11;
    assert_false(caps_same(&a, &b));
    b = a;
    b.mask |= EHLO_SIZE;
    assert_false(caps_same(&a, &b));
    b = a;
    b.known = false;
    assert_false(caps_same(&a, &b));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_needed),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_same),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
