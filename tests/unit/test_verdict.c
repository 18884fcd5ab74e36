/*
 * test_verdict - cache records (parse, format, round trip), which tests are
 * due, and the pass/fail bookkeeping, as postscreen_tests.c does it
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "session/verdict.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

#define ALL   (TEST_MASK_EARLY | TEST_MASK_DEEP)
#define PREG  TEST_BIT(TEST_PREGREET)
#define DNSBL TEST_BIT(TEST_DNSBL)
#define PIPE  TEST_BIT(TEST_PIPELINING)
#define NSMTP TEST_BIT(TEST_NON_SMTP)
#define BARLF TEST_BIT(TEST_BARE_NEWLINE)

#define D STAMP_DISABLED
#define N STAMP_NEW

static void stamps_text(const time_t *s, char *buf, size_t len)
{
    snprintf(buf, len, "%lld,%lld,%lld,%lld,%lld", (long long)s[0], (long long)s[1],
             (long long)s[2], (long long)s[3], (long long)s[4]);
}

/* ---- verdict_parse() ----------------------------------------------------- */

struct parse_case {
    const char *in;
    time_t want[TEST__COUNT];
};

static const struct parse_case parse_cases[] = {
    {"100;200;300;400;500", {100, 200, 300, 400, 500}},
    {"0;0;0;0;0", {N, N, N, N, N}},
    {"1;1;1;1;1", {D, D, D, D, D}},
    {"0;1;1700000000;0;1", {N, D, 1700000000, N, D}},
    /* fewer fields (an older version): the missing ones were disabled */
    {"100;200;300", {100, 200, 300, D, D}},
    {"100;200;300;", {100, 200, 300, D, D}},
    {"100", {100, D, D, D, D}},
    {"", {D, D, D, D, D}},
    {";;;;", {0, 0, 0, 0, D}},
    /* a garbled field reads as disabled, and so does every later one
     * (postscreen's psc_parse_tests() stops advancing at the garbage) */
    {"abc;200;300;400;500", {D, D, D, D, D}},
    {"12x;200;300;400;500", {D, D, D, D, D}},
    /* strtoul() semantics, as postscreen: no digits is 0, signs are taken */
    {"100;;300;400;500", {100, 0, 300, 400, 500}},
    {"100;-5;300;400;500", {100, -5, 300, 400, 500}},
    {"100;+5;300;400;500", {100, 5, 300, 400, 500}},
    {"100;200;300;400;5 ", {100, 200, 300, 400, D}},
    {"100;200;300;400;0x10", {100, 200, 300, 400, D}},
    {"100,200,300,400,500", {D, D, D, D, D}},
    /* extra fields are ignored */
    {"1;2;3;4;5;6;7", {1, 2, 3, 4, 5}},
    /* overflow */
    {"9223372036854775807;1;1;1;1", {INT64_MAX, D, D, D, D}},
    {"9223372036854775808;200;300;400;500", {D, 200, 300, 400, 500}},
    {"99999999999999999999;200;300;400;500", {D, 200, 300, 400, 500}},
    {"100;200;300;400;184467440737095516160", {100, 200, 300, 400, D}},
    {"000000000000000000000000000042;1;1;1;1", {42, D, D, D, D}},
};

static void test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(parse_cases); i++) {
        time_t got[TEST__COUNT];
        char g[128], w[128];
        memset(got, 0x55, sizeof(got));
        verdict_parse(parse_cases[i].in, got);
        if (memcmp(got, parse_cases[i].want, sizeof(got)) != 0) {
            stamps_text(got, g, sizeof(g));
            stamps_text(parse_cases[i].want, w, sizeof(w));
            fail_msg("\"%s\": got %s, want %s", parse_cases[i].in, g, w);
        }
    }
}

/* ---- verdict_format() ---------------------------------------------------- */

struct format_case {
    time_t in[TEST__COUNT];
    unsigned enabled;
    const char *want;
    time_t after[TEST__COUNT]; /* the stamps afterwards */
};

static const struct format_case format_cases[] = {
    {{N, N, N, N, N}, ALL, "0;0;0;0;0", {N, N, N, N, N}},
    {{N, N, N, N, N}, 0, "1;1;1;1;1", {D, D, D, D, D}},
    {{N, N, N, N, N}, TEST_MASK_DEEP, "1;1;0;0;0", {D, D, N, N, N}},
    {{N, N, N, N, N}, TEST_MASK_EARLY, "0;0;1;1;1", {N, N, D, D, D}},
    /* only "new" stamps change; passed and disabled ones stay */
    {{100, N, D, N, 500}, PREG | DNSBL, "100;0;1;1;500", {100, N, D, D, 500}},
    {{100, 200, 300, 400, 500}, 0, "100;200;300;400;500", {100, 200, 300, 400, 500}},
    {{D, D, D, D, D}, ALL, "1;1;1;1;1", {D, D, D, D, D}},
    {{INT64_MAX, 2, 3, 4, 5}, ALL, "9223372036854775807;2;3;4;5", {INT64_MAX, 2, 3, 4, 5}},
};

static void test_format_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(format_cases); i++) {
        const struct format_case *c = &format_cases[i];
        time_t s[TEST__COUNT];
        char buf[VERDICT_RECORD_MAX];
        memcpy(s, c->in, sizeof(s));
        size_t n = verdict_format(buf, sizeof(buf), s, c->enabled);
        if (strcmp(buf, c->want) != 0)
            fail_msg("case %zu: got \"%s\", want \"%s\"", i, buf, c->want);
        assert_int_equal(n, strlen(c->want));
        if (memcmp(s, c->after, sizeof(s)) != 0)
            fail_msg("case %zu: stamps changed wrongly", i);
    }
}

/* VERDICT_RECORD_MAX holds the longest record, and a short buffer is cut safely. */
static void test_format_bounds(void **state)
{
    time_t big[TEST__COUNT] = {INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX, INT64_MAX};
    time_t neg[TEST__COUNT] = {INT64_MIN, INT64_MIN, INT64_MIN, INT64_MIN, INT64_MIN};
    char buf[VERDICT_RECORD_MAX];

    (void)state;
    size_t n = verdict_format(buf, sizeof(buf), big, ALL);
    assert_int_equal(n, 5 * 19 + 4);
    assert_int_equal(strlen(buf), n);
    n = verdict_format(buf, sizeof(buf), neg, ALL);
    assert_int_equal(n, 5 * 20 + 4);
    assert_int_equal(strlen(buf), n);

    char small[16];
    memset(small, '#', sizeof(small));
    time_t s[TEST__COUNT] = {100, 200, 300, 400, 500};
    verdict_format(small, 8, s, ALL);
    assert_string_equal(small, "100;200");
    for (size_t k = 8; k < sizeof(small); k++)
        assert_int_equal(small[k], '#');
}

/* Whatever is formatted parses back to the same stamps. */
static void test_round_trip(void **state)
{
    static const time_t values[] = {N, D, 2, 59, 1700000000, 4102444800, INT64_MAX};

    (void)state;
    for (size_t a = 0; a < NELEM(values); a++) {
        for (size_t b = 0; b < NELEM(values); b++) {
            time_t s[TEST__COUNT] = {values[a], values[b], values[(a + b) % NELEM(values)],
                                     values[(a * 3 + 1) % NELEM(values)], values[b]};
            time_t back[TEST__COUNT];
            char buf[VERDICT_RECORD_MAX];
            verdict_format(buf, sizeof(buf), s, ALL);
            verdict_parse(buf, back);
            if (memcmp(s, back, sizeof(s)) != 0)
                fail_msg("\"%s\" does not parse back", buf);
        }
    }

    /* new-but-disabled comes back as disabled */
    time_t s[TEST__COUNT] = {N, N, N, N, N}, back[TEST__COUNT];
    char buf[VERDICT_RECORD_MAX];
    verdict_format(buf, sizeof(buf), s, PIPE);
    verdict_parse(buf, back);
    time_t want[TEST__COUNT] = {D, D, N, D, D};
    assert_memory_equal(back, want, sizeof(want));
}

/* ---- verdict_todo(), verdict_new() --------------------------------------- */

struct todo_case {
    const char *name;
    time_t stamps[TEST__COUNT];
    time_t now;
    unsigned enabled;
    unsigned todo;
    bool is_new;
};

static const struct todo_case todo_cases[] = {
    {"all new", {N, N, N, N, N}, N + 1, ALL, ALL, true},
    {"all new, deep only", {N, N, N, N, N}, N + 1, TEST_MASK_DEEP, TEST_MASK_DEEP, true},
    {"all new, none enabled", {N, N, N, N, N}, 1000, 0, 0, true},
    {"all disabled", {D, D, D, D, D}, 1000, ALL, ALL, false},
    {"all disabled, at D", {D, D, D, D, D}, D, ALL, 0, false},
    {"all passed, not expired", {500, 500, 500, 500, 500}, 100, ALL, 0, false},
    /* a stamp is the expiry time: due only when NOW is past it */
    {"all passed, expiring now", {100, 100, 100, 100, 100}, 100, ALL, 0, false},
    {"all passed, expired", {100, 100, 100, 100, 100}, 101, ALL, ALL, false},
    {"mixed", {N, 200, 50, D, 300}, 100, ALL, PREG | PIPE | NSMTP, true},
    {"mixed, deep only", {N, 200, 50, D, 300}, 100, TEST_MASK_DEEP, PIPE | NSMTP, true},
    {"mixed, early only", {N, 200, 50, D, 300}, 100, TEST_MASK_EARLY, PREG, true},
    /* "new" counts even for a test that is not enabled (as postscreen) */
    {"new but disabled test", {100, 100, 100, 100, N}, 50, PREG | DNSBL, 0, true},
    {"expired but disabled test", {100, 100, 10, 100, 100}, 50, PREG | DNSBL, 0, false},
    {"one enabled, expired", {100, 100, 10, 100, 100}, 50, PIPE, PIPE, false},
};

static void test_todo_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(todo_cases); i++) {
        const struct todo_case *c = &todo_cases[i];
        struct verdict v;
        verdict_init(&v);
        /* stale values must not survive */
        v.todo = ~0u;
        v.is_new = !c->is_new;
        verdict_todo(&v, c->stamps, c->now, c->enabled);
        if (v.todo != c->todo)
            fail_msg("%s: todo 0x%x, want 0x%x", c->name, v.todo, c->todo);
        if (v.is_new != c->is_new)
            fail_msg("%s: is_new %d, want %d", c->name, v.is_new, c->is_new);
    }
}

static void test_new(void **state)
{
    static const unsigned masks[] = {0, ALL, TEST_MASK_DEEP, TEST_MASK_EARLY, PIPE | BARLF};

    (void)state;
    for (size_t i = 0; i < NELEM(masks); i++) {
        struct verdict v;
        time_t s[TEST__COUNT];
        verdict_init(&v);
        memset(s, 0x55, sizeof(s));
        verdict_new(&v, s, masks[i]);
        for (int t = 0; t < TEST__COUNT; t++)
            assert_int_equal(s[t], STAMP_NEW);
        assert_int_equal(v.todo, masks[i]);
        assert_true(v.is_new);
    }
}

/* ---- pass/fail bookkeeping ----------------------------------------------- */

struct passed_case {
    unsigned todo, pass;
    bool all_passed;
};

static const struct passed_case passed_cases[] = {
    {0, 0, false},
    {ALL, 0, false},
    {PIPE, PIPE, true},
    {ALL, ALL, true},
    {PREG | DNSBL, PREG, false},
    {PREG | DNSBL, PREG | DNSBL, true},
    {TEST_MASK_DEEP, PIPE | NSMTP, false},
};

static void test_all_passed_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(passed_cases); i++) {
        struct verdict v;
        verdict_init(&v);
        v.todo = passed_cases[i].todo;
        v.pass = passed_cases[i].pass;
        if (verdict_all_passed(&v) != passed_cases[i].all_passed)
            fail_msg("case %zu: todo 0x%x pass 0x%x: want %d", i, v.todo, v.pass,
                     passed_cases[i].all_passed);
    }
}

static void test_init_and_fail(void **state)
{
    struct verdict v;

    (void)state;
    verdict_init(&v);
    assert_int_equal(v.todo | v.pass | v.fail | v.skip, 0);
    assert_false(v.other_fail || v.is_new || v.noforward || v.hangup);
    assert_string_equal(v.rcpt_reply, "450 4.3.2 Service currently unavailable\r\n");
    assert_string_equal(v.final_reply, "421 4.3.2 Service currently unavailable\r\n");
    assert_false(verdict_any_fail(&v));
    v.fail = NSMTP;
    assert_true(verdict_any_fail(&v));
    v.fail = 0;
    v.other_fail = true;
    assert_true(verdict_any_fail(&v));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),      cmocka_unit_test(test_format_table),
        cmocka_unit_test(test_format_bounds),    cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_todo_table),       cmocka_unit_test(test_new),
        cmocka_unit_test(test_all_passed_table), cmocka_unit_test(test_init_and_fail),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
