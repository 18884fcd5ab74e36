/*
 * test_dnsbl_sites - postscreen_dnsbl_sites syntax, reply filters, and the
 * score and TTL rules of spec §1.7, case by case.
 */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "conf/table.h"
#include "dnsbl/sites.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

struct parse_case {
    const char *text;
    const char *error; /* substring of the error, or NULL: parses */
    size_t ndomains;   /* when it parses */
    size_t nsites;
};

static const struct parse_case parse_cases[] = {
    {"", NULL, 0, 0},
    {"zen.spamhaus.org", NULL, 1, 1},
    {"zen.spamhaus.org*2 bl.spamcop.net", NULL, 2, 2},
    {"zen.spamhaus.org=127.0.0.[2..11]*3", NULL, 1, 1},
    {"list.dnswl.org=127.0.[0..255].[2;3]*-4", NULL, 1, 1},
    {"example.com=127.0.0.4", NULL, 1, 1},
    {"a.example=127.0.0.2*2, a.example=127.0.0.3*3,a.example", NULL, 1, 3},
    {"b.example=[127.0.0.[2;4..6]]", NULL, 1, 1},
    {"b.example*+5", NULL, 1, 1},
    {"under_score.example", NULL, 1, 1},
    {"b.example*x", "bad DNSBL weight factor \"x\" in \"b.example*x\"", 0, 0},
    {"b.example*2x", "bad DNSBL weight factor \"2x\"", 0, 0},
    {"b.example*", "bad DNSBL weight factor \"\"", 0, 0},
    {"b.example*99999999999", "bad DNSBL weight factor", 0, 0},
    {"-bad.example", "bad DNSBL domain name \"-bad.example\"", 0, 0},
    {"bad-.example", "bad DNSBL domain name", 0, 0},
    {"a..example", "bad DNSBL domain name", 0, 0},
    {"a.example.", "bad DNSBL domain name", 0, 0},
    {"127.0.0.1", "bad DNSBL domain name", 0, 0},
    {"bad!.example", "bad DNSBL domain name", 0, 0},
    {"=127.0.0.2", "bad DNSBL domain name \"\"", 0, 0},
    {"c.example=127.0.0", "bad DNSBL filter syntax: need \".\"", 0, 0},
    {"c.example=127.0.0.2.5", "garbage after pattern", 0, 0},
    {"c.example=127.0.0.256", "need decimal number 0..255", 0, 0},
    {"c.example=127.0.0.[5..2]", "numeric range error", 0, 0},
    {"c.example=127.0.0.[2,3]", "need \";\" or \"]\"", 0, 0},
    {"c.example=127.0.0.[2", "need \";\" or \"]\"", 0, 0},
    {"c.example=[127.0.0.2", "missing \"]\" character", 0, 0},
    {"c.example=", "empty address pattern", 0, 0},
    {"c.example=[]", "empty address pattern", 0, 0},
    {"c.example=127.0.0.x", "need decimal number 0..255 or \"[\"", 0, 0},
};

static void test_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(parse_cases); i++) {
        const struct parse_case *c = &parse_cases[i];
        char err[256] = "";
        struct dnsbl_sites *s = dnsbl_sites_parse(c->text, NULL, err, sizeof(err));
        if (c->error) {
            if (s != NULL || strstr(err, c->error) == NULL)
                fail_msg("\"%s\": got \"%s\", want an error with \"%s\"", c->text, err, c->error);
            continue;
        }
        if (s == NULL)
            fail_msg("\"%s\": unexpected error \"%s\"", c->text, err);
        assert_int_equal(s->ndomains, c->ndomains);
        assert_int_equal(s->nsites, c->nsites);
        dnsbl_sites_free(s);
    }
}

static void test_parse_fields(void **state)
{
    char err[256];
    (void)state;
    struct dnsbl_sites *s = dnsbl_sites_parse(
        "zen.example=127.0.0.[2..11]*3 wl.example*-4 zen.example", NULL, err, sizeof(err));
    assert_non_null(s);
    assert_int_equal(s->ndomains, 2);
    assert_string_equal(s->domains[0].name, "zen.example");
    assert_string_equal(s->domains[1].name, "wl.example");
    assert_int_equal(s->sites[0].weight, 3);
    assert_true(s->sites[0].has_filter);
    assert_int_equal(s->sites[1].weight, -4);
    assert_int_equal(s->sites[1].domain, 1);
    assert_int_equal(s->sites[2].weight, 1);
    assert_false(s->sites[2].has_filter);
    assert_int_equal(s->sites[2].domain, 0);
    dnsbl_sites_free(s);
}

/* postscreen_dnsbl_reply_map hides a secret domain in reject texts. */
static void test_reply_map(void **state)
{
    char err[256];
    (void)state;
    struct table *map = table_open("inline:{KEY.zen.dq.example=zen.example}", err, sizeof(err));
    assert_non_null(map);
    struct dnsbl_sites *s =
        dnsbl_sites_parse("KEY.zen.dq.example bl.example", map, err, sizeof(err));
    assert_non_null(s);
    assert_string_equal(s->domains[0].reply_name, "zen.example");
    assert_string_equal(s->domains[1].reply_name, "bl.example");
    dnsbl_sites_free(s);
    table_free(map);
}

struct match_case {
    const char *filter;
    uint8_t addr[4];
    bool match;
};

static const struct match_case match_cases[] = {
    {"127.0.0.2", {127, 0, 0, 2}, true},
    {"127.0.0.2", {127, 0, 0, 3}, false},
    {"127.0.0.[2..11]", {127, 0, 0, 2}, true},
    {"127.0.0.[2..11]", {127, 0, 0, 11}, true},
    {"127.0.0.[2..11]", {127, 0, 0, 12}, false},
    {"127.0.0.[2..11]", {127, 0, 0, 1}, false},
    {"127.0.[0..255].[2;3]", {127, 0, 200, 3}, true},
    {"127.0.[0..255].[2;3]", {127, 0, 200, 4}, false},
    {"[127.0.0.[2;4..6]]", {127, 0, 0, 5}, true},
    {"[127.0.0.[2;4..6]]", {127, 0, 0, 3}, false},
    {"[1;127].0.0.2", {1, 0, 0, 2}, true},
    {"127.0.0.[0..255]", {127, 0, 0, 255}, true},
    {"127.0.0.[0..255]", {127, 0, 1, 0}, false},
};

static void test_filter_match(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(match_cases); i++) {
        uint8_t oct[4][32];
        char err[256];
        assert_int_equal(dnsbl_filter_parse(match_cases[i].filter, oct, err, sizeof(err)), 0);
        if (dnsbl_filter_match(oct, match_cases[i].addr) != match_cases[i].match)
            fail_msg("%s vs %d.%d.%d.%d: want %d", match_cases[i].filter, match_cases[i].addr[0],
                     match_cases[i].addr[1], match_cases[i].addr[2], match_cases[i].addr[3],
                     match_cases[i].match);
    }
}

/* One domain's answer: the domain's index, its A records and TTL. */
struct answer {
    size_t domain;
    size_t naddrs;
    uint8_t addrs[3][4];
    int ttl;
};

struct score_case {
    const char *what;
    const char *sites;
    struct answer answers[3];
    size_t nanswers;
    int total;
    const char *name;
    int ttl; /* with min 60, max 3600 */
};

static const struct score_case score_cases[] = {
    {"not listed: pass TTL of the empty answer",
     "a.example",
     {{0, 0, {{0}}, 300}},
     1,
     0,
     NULL,
     300},
    {"listed: weight 1, fail TTL",
     "a.example",
     {{0, 1, {{127, 0, 0, 2}}, 900}},
     1,
     1,
     "a.example",
     900},
    {"filter not matched: no score, but the TTL is the fail TTL slot",
     "a.example=127.0.0.4",
     {{0, 1, {{127, 0, 0, 2}}, 900}},
     1,
     0,
     NULL,
     60},
    {"any address matching the filter counts, once",
     "a.example=127.0.0.[2;3]*2",
     {{0, 3, {{127, 0, 0, 9}, {127, 0, 0, 3}, {127, 0, 0, 2}}, 900}},
     1,
     2,
     "a.example",
     900},
    {"same domain, two filters, both judged",
     "a.example=127.0.0.2*2 a.example=127.0.0.[2..3]*3",
     {{0, 1, {{127, 0, 0, 2}}, 900}},
     1,
     5,
     "a.example",
     900},
    {"two lists add up",
     "a.example b.example",
     {{0, 1, {{127, 0, 0, 2}}, 500}, {1, 1, {{127, 0, 0, 2}}, 700}},
     2,
     2,
     "a.example",
     500},
    {"the heaviest match names the list",
     "a.example b.example*3",
     {{0, 1, {{127, 0, 0, 2}}, 500}, {1, 1, {{127, 0, 0, 2}}, 700}},
     2,
     4,
     "b.example",
     500},
    {"allowlist: negative weight",
     "a.example wl.example*-5",
     {{0, 1, {{127, 0, 0, 2}}, 500}, {1, 1, {{127, 0, 0, 2}}, 2000}},
     2,
     -4,
     "a.example",
     2000},
    {"allowlist only: listed in it gives the pass TTL",
     "wl.example*-5",
     {{0, 1, {{127, 0, 0, 2}}, 2000}},
     1,
     -5,
     "wl.example",
     2000},
    {"allowlist, not listed: its TTL supports 'listed'",
     "a.example wl.example*-5",
     {{0, 1, {{127, 0, 0, 2}}, 800}, {1, 0, {{0}}, 400}},
     2,
     1,
     "a.example",
     400},
    {"TTL clamped to the maximum",
     "a.example",
     {{0, 1, {{127, 0, 0, 2}}, 86400}},
     1,
     1,
     "a.example",
     3600},
    {"TTL clamped to the minimum", "a.example", {{0, 0, {{0}}, 5}}, 1, 0, NULL, 60},
    {"no TTL (-1) becomes the minimum", "a.example", {{0, 0, {{0}}, -1}}, 1, 0, NULL, 60},
    {"no answer at all: the minimum", "a.example", {{0}}, 0, 0, NULL, 60},
    {"a -1 then a real TTL: the later one replaces it",
     "a.example b.example",
     {{0, 0, {{0}}, -1}, {1, 0, {{0}}, 300}},
     2,
     0,
     NULL,
     300},
    /* fuzz_dnsbl_sites: the sum of two large weights overflowed an int */
    {"large weights saturate at INT_MAX",
     "a.example*2147483647 a.example*7 b.example*5",
     {{0, 1, {{127, 0, 0, 2}}, 900}, {1, 1, {{127, 0, 0, 2}}, 900}},
     2,
     INT_MAX,
     "a.example",
     900},
    {"and at INT_MIN",
     "wl.example*-2147483648 wl.example*-1",
     {{0, 1, {{127, 0, 0, 2}}, 900}},
     1,
     INT_MIN,
     "wl.example",
     900},
};

static void test_score_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < NELEM(score_cases); i++) {
        const struct score_case *c = &score_cases[i];
        char err[256];
        struct dnsbl_sites *s = dnsbl_sites_parse(c->sites, NULL, err, sizeof(err));
        assert_non_null(s);
        struct dnsbl_score sc;
        dnsbl_score_init(&sc);
        for (size_t a = 0; a < c->nanswers; a++)
            dnsbl_score_add(&sc, s, c->answers[a].domain, (const uint8_t(*)[4])c->answers[a].addrs,
                            c->answers[a].naddrs, c->answers[a].ttl);
        int ttl = dnsbl_score_ttl(&sc, 60, 3600);
        if (sc.total != c->total || ttl != c->ttl ||
            (c->name ? sc.name == NULL || strcmp(sc.name, c->name) != 0 : sc.name != NULL))
            fail_msg("%s: got total %d name %s ttl %d, want %d %s %d", c->what, sc.total,
                     sc.name ? sc.name : "(none)", ttl, c->total, c->name ? c->name : "(none)",
                     c->ttl);
        dnsbl_sites_free(s);
    }
}

/* The query names of spec §1.7: reversed octets, or 32 reversed nibbles. */
static void test_query_names(void **state)
{
    char buf[300];
    (void)state;
    assert_int_equal(dnsbl_query_name(buf, sizeof(buf), "192.0.2.1", "zen.example"), 0);
    assert_string_equal(buf, "1.2.0.192.zen.example");
    assert_int_equal(dnsbl_query_name(buf, sizeof(buf), "2001:db8::1", "zen.example"), 0);
    assert_string_equal(buf, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2."
                             "zen.example");
    assert_int_equal(dnsbl_query_name(buf, sizeof(buf), "not-an-address", "zen.example"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table), cmocka_unit_test(test_parse_fields),
        cmocka_unit_test(test_reply_map),   cmocka_unit_test(test_filter_match),
        cmocka_unit_test(test_score_table), cmocka_unit_test(test_query_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
