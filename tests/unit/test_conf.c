/*
 * test_conf - main.cf syntax, $name expansion, typed values, legacy names,
 * error messages and conf_print_nondefault()
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "conf/conf.h"
#include "conf/params.h"
#include "util/sbuf.h"

#define CF "/etc/mxscreen/main.cf"

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        if (strstr((hay), (needle)) == NULL)                                                       \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));                           \
    } while (0)

/* Load TEXT with overrides, or fail the test with the error. */
static struct conf *load_o(const char *text, const char *const *ov, size_t nov)
{
    char err[1024] = "";
    struct conf *cf = conf_load_text(CF, text, ov, nov, err, sizeof(err));

    if (cf == NULL)
        fail_msg("conf_load_text(\"%s\"): %s", text, err);
    return cf;
}

static struct conf *load(const char *text)
{
    return load_o(text, NULL, 0);
}

/* Load TEXT expecting an error; returns it in ERR. */
static void load_err(const char *text, const char *const *ov, size_t nov, char *err, size_t len)
{
    err[0] = '\0';
    struct conf *cf = conf_load_text(CF, text, ov, nov, err, len);
    if (cf != NULL) {
        conf_free(cf);
        fail_msg("conf_load_text(\"%s\") succeeded", text);
    }
    assert_true(err[0] != '\0');
}

/* ---- syntax -------------------------------------------------------------- */

static void test_syntax(void **state)
{
    static const char text[] = "# a comment\n"
                               "\n"
                               "postscreen_greet_banner = hello\n"
                               "   # an indented comment inside a logical line\n"
                               "    world\n"
                               "# a comment does not end it either\n"
                               "\tagain\n"
                               "   \t \n"
                               "postscreen_dnsbl_sites=zen.example*2,\n"
                               "  bl.example\n"
                               "postscreen_reject_footer =   spaced  out   \n"
                               "postscreen_command_filter = a=b = c\n"
                               "postscreen_greet_wait = 3s\r\n"
                               "postscreen_dnsbl_reply_map =\n"
                               "postscreen_cache_map = no newline at the end";

    (void)state;
    struct conf *cf = load(text);
    assert_string_equal(conf_str(cf, P_PSC_GREET_BANNER), "hello    world\tagain");
    assert_string_equal(conf_str(cf, P_PSC_DNSBL_SITES), "zen.example*2,  bl.example");
    assert_string_equal(conf_str(cf, P_PSC_REJECT_FOOTER), "spaced  out");
    assert_string_equal(conf_str(cf, P_PSC_COMMAND_FILTER), "a=b = c");
    assert_int_equal(conf_num(cf, P_PSC_GREET_WAIT), 3);
    assert_string_equal(conf_str(cf, P_PSC_DNSBL_REPLY_MAP), "");
    assert_true(conf_is_set(cf, P_PSC_DNSBL_REPLY_MAP));
    assert_string_equal(conf_str(cf, P_PSC_CACHE_MAP), "no newline at the end");
    assert_false(conf_is_set(cf, P_PSC_DNSBL_TIMEOUT));
    assert_string_equal(conf_path(cf), CF);

    char where[256];
    assert_string_equal(conf_where(cf, P_PSC_GREET_BANNER, where, sizeof(where)), CF ", line 3");
    assert_string_equal(conf_where(cf, P_PSC_DNSBL_SITES, where, sizeof(where)), CF ", line 9");
    assert_string_equal(conf_where(cf, P_PSC_CACHE_MAP, where, sizeof(where)), CF ", line 15");
    assert_string_equal(conf_where(cf, P_PSC_DNSBL_TIMEOUT, where, sizeof(where)), CF);
    conf_free(cf);

    cf = load("");
    assert_false(conf_is_set(cf, P_PSC_GREET_WAIT));
    conf_free(cf);
}

static void test_last_definition_wins(void **state)
{
    char where[256], err[1024];

    (void)state;
    struct conf *cf = load("postscreen_greet_wait = 3s\n"
                           "postscreen_dnsbl_threshold = 2\n"
                           "postscreen_greet_wait = 4s\n");
    assert_int_equal(conf_num(cf, P_PSC_GREET_WAIT), 4);
    assert_string_equal(conf_where(cf, P_PSC_GREET_WAIT, where, sizeof(where)), CF ", line 3");
    conf_free(cf);

    /* an earlier bad value that is replaced is never checked */
    cf = load("postscreen_greet_wait = 6x\npostscreen_greet_wait = 7s\n");
    assert_int_equal(conf_num(cf, P_PSC_GREET_WAIT), 7);
    conf_free(cf);

    /* a later bad value is, with its own line */
    load_err("postscreen_greet_wait = 7s\npostscreen_greet_wait = 6x\n", NULL, 0, err, sizeof(err));
    assert_contains(err, CF ", line 2");
    assert_contains(err, "\"6x\"");
}

static void test_overrides(void **state)
{
    static const char *const ov[] = {
        "postscreen_greet_wait=9s",  "  postscreen_dnsbl_threshold =  3 ", "greeting = from -o",
        "postscreen_bogus_name = 1", "postscreen_greet_wait = 11s",
    };
    char where[256];

    (void)state;
    struct conf *cf = load_o("postscreen_greet_wait = 3s\n"
                             "postscreen_greet_banner = $greeting\n"
                             "greeting = from the file\n"
                             "postscreen_dnsbl_threshold = 2\n",
                             ov, sizeof(ov) / sizeof(ov[0]));
    assert_int_equal(conf_num(cf, P_PSC_GREET_WAIT), 11);
    assert_int_equal(conf_num_stress(cf, P_PSC_GREET_WAIT, true), 11);
    assert_int_equal(conf_num(cf, P_PSC_DNSBL_THRESHOLD), 3);
    assert_string_equal(conf_str(cf, P_PSC_GREET_BANNER), "from -o");
    assert_string_equal(conf_where(cf, P_PSC_GREET_WAIT, where, sizeof(where)), "command line -o");
    assert_true(conf_is_set(cf, P_PSC_GREET_WAIT));
    conf_free(cf);
}

static void test_override_errors(void **state)
{
    static const char *const missing_eq[] = {"postscreen_greet_wait"};
    static const char *const bad_value[] = {"postscreen_greet_wait=6x"};
    static const char *const bad_name[] = {"bad name=1"};
    char err[1024];

    (void)state;
    load_err("", missing_eq, 1, err, sizeof(err));
    assert_contains(err, "command line -o");
    assert_contains(err, "missing '='");
    assert_contains(err, "postscreen_greet_wait");

    load_err("postscreen_greet_wait = 3s\n", bad_value, 1, err, sizeof(err));
    assert_contains(err, "command line -o");
    assert_contains(err, "postscreen_greet_wait");
    assert_contains(err, "\"6x\"");
    assert_contains(err, "bad time value");

    load_err("", bad_name, 1, err, sizeof(err));
    assert_contains(err, "bad parameter name");
    assert_contains(err, "bad name");
}

/* ---- expansion ----------------------------------------------------------- */

struct expand_case {
    const char *expr;
    const char *want;
};

static const struct expand_case expand_cases[] = {
    /* plain references */
    {"$a", "A"},
    {"${a}", "A"},
    {"$(a)", "A"},
    {"x$a.y", "xA.y"},
    {"${a}b", "Ab"},
    {"$ab", ""}, /* the name is "ab" */
    {"$a_b", "AB"},
    {"$a-", "A-"},
    {"$$", "$"},
    {"$$a", "$a"},
    {"$$$a", "$A"},
    {"${a}${b}$(a)", "ABA"},
    {"$chain", "A"},
    {"$mail_name", "Postfix"},
    /* undefined names are empty */
    {"[$nosuch][${nosuch}][$(nosuch)]", "[][][]"},
    {"$postscreen_blacklist_action", ""},
    /* ${name?text} and ${name:text} */
    {"${a?yes}", "yes"},
    {"${empty?yes}", ""},
    {"${nosuch?yes}", ""},
    {"${a:no}", ""},
    {"${empty:no}", "no"},
    {"${nosuch:no}", "no"},
    {"${a?text with spaces}", "text with spaces"},
    {"${a?$a$b}", "AB"},
    {"${empty:$(b)}", "B"},
    /* ${name?{a}:{b}} and ${name?{a}:b} */
    {"${a?{x y}}", "x y"},
    {"${a?{x}:{y}}", "x"},
    {"${empty?{x}:{y}}", "y"},
    {"${nosuch?{x}:{y}}", "y"},
    {"${a? {x} : {y} }", "x"},
    {"${a?{x}:y}", "x"},
    {"${nosuch?{x}:y z}", "y z"},
    {"${empty?{$a}:{$b}}", "B"},
    {"${a?{${b?{nested}:{no}}}:{outer}}", "nested"},
    {"${a:{x}}", ""},
    {"${empty:{x}}", "x"},
    {"${a?{}:{y}}", ""},
    /* relational, numeric when both sides are all digits */
    {"${{1} == {1}?{eq}:{ne}}", "eq"},
    {"${{1}=={1}?{eq}:{ne}}", "eq"},
    {"${{1} == {01}?{eq}:{ne}}", "eq"},
    {"${{1} != {01}?{ne}:{eq}}", "eq"},
    {"${{a} == {A}?{eq}:{ne}}", "ne"},
    {"${{$a} == {A}?{eq}:{ne}}", "eq"},
    {"${{} == {}?{eq}:{ne}}", "eq"},
    {"${{$nosuch} == {}?{eq}:{ne}}", "eq"},
    {"${{5} != {6}?{ne}:{eq}}", "ne"},
    {"${{10} > {9}?{gt}:{le}}", "gt"},
    {"${{10} < {9}?{lt}:{ge}}", "ge"},
    {"${{9} < {10}?{lt}:{ge}}", "lt"},
    {"${{10a} > {9a}?{gt}:{le}}", "le"}, /* lexical */
    {"${{abc} < {abd}?{lt}:{ge}}", "lt"},
    {"${{5} <= {5}?{y}:{n}}", "y"},
    {"${{5} >= {6}?{y}:{n}}", "n"},
    {"${{6} >= {5}?{y}:{n}}", "y"},
    {"${{4} <= {5}?{y}:{n}}", "y"},
    {"${{1} == {1}?{$a}:{$b}}", "A"},
    {"${{1} == {2}?{$a}:{$b}}", "B"},
    /* compatibility levels compare part by part */
    {"${{3.6} <level {2}?{y}:{n}}", "n"},
    {"${{2} <level {3.6}?{y}:{n}}", "y"},
    {"${{3.6} <level {10}?{y}:{n}}", "y"},
    {"${{3.6} < {10}?{y}:{n}}", "n"}, /* lexical: "3.6" > "10" */
    {"${{10} >level {3.6}?{y}:{n}}", "y"},
    {"${{3.10} >level {3.9}?{y}:{n}}", "y"},
    {"${{3.6} <=level {3.6}?{y}:{n}}", "y"},
    {"${{3.6} <level {3.6}?{y}:{n}}", "n"},
    {"${{3.6} >=level {3.6.1}?{y}:{n}}", "n"},
    {"${{3.6.1} >level {3.6}?{y}:{n}}", "y"},
    {"${{$compatibility_level} <level {3.6} ? {no} : {yes}}", "yes"},
};

static void test_expand_table(void **state)
{
    int failures = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(expand_cases) / sizeof(expand_cases[0]); i++) {
        const struct expand_case *c = &expand_cases[i];
        struct sbuf text = SBUF_INIT;
        char err[1024] = "";
        sbuf_printf(&text,
                    "a = A\nb = B\na_b = AB\nempty =\nchain = ${b?$a}\n"
                    "postscreen_greet_banner = %s\n",
                    c->expr);
        /* d0 = $d1$d1, d1 = $d2$d2, ... d24 = (empty): after line 7. */
        for (int d = 0; d < 24; d++)
            sbuf_printf(&text, "d%d = $d%d$d%d\n", d, d + 1, d + 1);
        sbuf_printf(&text, "d24 =\n");
        struct conf *cf = conf_load_text(CF, sbuf_str(&text), NULL, 0, err, sizeof(err));
        if (cf == NULL) {
            print_error("case %zu \"%s\": %s\n", i, c->expr, err);
            failures++;
        } else if (strcmp(conf_str(cf, P_PSC_GREET_BANNER), c->want) != 0) {
            print_error("case %zu \"%s\": got \"%s\", want \"%s\"\n", i, c->expr,
                        conf_str(cf, P_PSC_GREET_BANNER), c->want);
            failures++;
        }
        conf_free(cf);
        sbuf_free(&text);
    }
    assert_int_equal(failures, 0);
}

struct expand_err {
    const char *expr;
    const char *what;
};

static const struct expand_err expand_errs[] = {
    {"${a", "truncated macro reference"},
    {"x ${a?{y}", "truncated macro reference"},
    {"$(a", "truncated macro reference"},
    {"${{1} == {1}?{y}:{n}", "truncated macro reference"},
    {"$", "empty macro name"},
    {"x $ y", "empty macro name"},
    {"$-", "empty macro name"},
    {"${}", "attribute name syntax error"},
    {"${a!b}", "attribute name syntax error"},
    {"${a?{x}y}", "garbage after expression"},
    {"${a?{x}:{y}z}", "garbage after expression"},
    {"${a:{x}:{y}}", "garbage after expression"},
    {"${{1} = {1}?{y}:{n}}", "unknown operator"},
    {"${{1} <lvl {1}?{y}:{n}}", "syntax error"}, /* "<" then no {text} */
    {"${{1} == {1}}", "'?' expected"},
    {"${{1} == {1}?{y}}", "':' expected"},
    {"${{1} == {1}?{y}:n}", "syntax error"},
    {"${{1} == {1}?{y}:{n}x}", "garbage after expression"},
    {"${{1} == 1?{y}:{n}}", "syntax error"},
    {"${a?{${b}", "truncated macro reference"},
    {"$loop1", "unreasonable macro call nesting"},
    {"${a?{$loop2}}", "unreasonable macro call nesting"},
    {"${{$loop1} == {x}?{y}:{n}}", "unreasonable macro call nesting"},
    {"$self", "unreasonable macro call nesting"},
    /* fuzz_conf: 2^25 references to empty values ran for minutes */
    {"$d0", "more than 10000 macro expansions"},
    {"${{$d0} == {}?{y}:{n}}", "more than 10000 macro expansions"},
};

/* Every error names the file, the line, the parameter and the value. */
static void test_expand_errors(void **state)
{
    int failures = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(expand_errs) / sizeof(expand_errs[0]); i++) {
        const struct expand_err *c = &expand_errs[i];
        struct sbuf text = SBUF_INIT, value = SBUF_INIT;
        char err[1024] = "";
        sbuf_printf(&text,
                    "a = A\nb = B\nloop1 = $loop2\nloop2 = x$loop1\nself = ${self}\n"
                    "# line 6\n"
                    "postscreen_greet_banner = %s\n",
                    c->expr);
        /* d0 = $d1$d1, d1 = $d2$d2, ... d24 = (empty): after line 7. */
        for (int d = 0; d < 24; d++)
            sbuf_printf(&text, "d%d = $d%d$d%d\n", d, d + 1, d + 1);
        sbuf_printf(&text, "d24 =\n");
        sbuf_printf(&value, "\"%s\"", c->expr);
        struct conf *cf = conf_load_text(CF, sbuf_str(&text), NULL, 0, err, sizeof(err));
        if (cf != NULL) {
            print_error("case %zu \"%s\": loaded, banner \"%s\"\n", i, c->expr,
                        conf_str(cf, P_PSC_GREET_BANNER));
            failures++;
            conf_free(cf);
        } else if (strstr(err, CF ", line 7") == NULL ||
                   strstr(err, "postscreen_greet_banner") == NULL ||
                   strstr(err, sbuf_str(&value)) == NULL || strstr(err, c->what) == NULL) {
            print_error("case %zu \"%s\": error \"%s\" lacks the place, name, value or \"%s\"\n", i,
                        c->expr, err, c->what);
            failures++;
        }
        sbuf_free(&text);
        sbuf_free(&value);
    }
    assert_int_equal(failures, 0);
}

/* conf_expand(), the public entry, with and without stress. */
static void test_conf_expand(void **state)
{
    struct sbuf out = SBUF_INIT;
    char err[512] = "";

    (void)state;
    struct conf *cf = load("x = X\n");
    assert_int_equal(conf_expand(cf, "$postscreen_greet_wait/$x", false, &out, err, sizeof(err)),
                     0);
    assert_string_equal(sbuf_str(&out), "6s/X");
    sbuf_reset(&out);
    assert_int_equal(conf_expand(cf, "$postscreen_greet_wait/$x", true, &out, err, sizeof(err)), 0);
    assert_string_equal(sbuf_str(&out), "2s/X");
    sbuf_reset(&out);
    assert_int_equal(conf_expand(cf, "${stress?{busy}:{idle}}", true, &out, err, sizeof(err)), 0);
    assert_string_equal(sbuf_str(&out), "busy");
    sbuf_reset(&out);
    assert_int_equal(conf_expand(cf, "${stress?{busy}:{idle}}", false, &out, err, sizeof(err)), 0);
    assert_string_equal(sbuf_str(&out), "idle");
    sbuf_reset(&out);
    assert_int_equal(conf_expand(cf, "${x", false, &out, err, sizeof(err)), -1);
    assert_contains(err, "truncated macro reference");
    sbuf_free(&out);
    conf_free(cf);
}

/* A value that is used raw is never expanded. */
static void test_raw_parameter(void **state)
{
    (void)state;
    struct conf *cf = load("smtpd_expansion_filter = ab$cd${x\n");
    assert_string_equal(conf_str(cf, P_SMTPD_EXPANSION_FILTER), "ab$cd${x");
    assert_string_equal(conf_str(cf, P_PSC_EXPANSION_FILTER), "ab$cd${x");
    conf_free(cf);
    /* Footers keep their reply macros; "$name" alone takes name's value once. */
    cf = load("smtpd_reject_footer = Contact $server_name\n");
    assert_string_equal(conf_str(cf, P_PSC_REJECT_FOOTER), "Contact $server_name");
    conf_free(cf);
    cf = load("postscreen_reject_footer = for ${client_address}\n");
    assert_string_equal(conf_str(cf, P_PSC_REJECT_FOOTER), "for ${client_address}");
    conf_free(cf);
    cf = load("postscreen_reject_footer = $myhostname\nmyhostname = mx.test\n");
    assert_string_equal(conf_str(cf, P_PSC_REJECT_FOOTER), "mx.test");
    conf_free(cf);
}

/* ---- stress -------------------------------------------------------------- */

struct stress_case {
    const char *text;
    enum param_id id;
    long long normal, stress;
};

static const struct stress_case stress_cases[] = {
    {"", P_PSC_GREET_WAIT, 6, 2},
    {"", P_PSC_COMMAND_TIME_LIMIT, 300, 10},
    {"", P_PSC_GREET_TTL, 86400, 86400},
    {"postscreen_greet_wait = ${stress?{2}:{6}}s\n", P_PSC_GREET_WAIT, 6, 2},
    {"postscreen_greet_wait = ${stress?{3}:{9}}\n", P_PSC_GREET_WAIT, 9, 3},
    {"postscreen_greet_wait = ${stress?3}${stress:9}m\n", P_PSC_GREET_WAIT, 540, 180},
    {"postscreen_greet_wait = 4s\n", P_PSC_GREET_WAIT, 4, 4},
    {"postscreen_greet_wait = $w\nw = ${stress?{1}:{5}}\n", P_PSC_GREET_WAIT, 5, 1},
    {"postscreen_command_time_limit = ${stress?{1}:{2}}m\n", P_PSC_COMMAND_TIME_LIMIT, 120, 60},
    {"postscreen_dnsbl_threshold = ${stress?{5}:{1}}\n", P_PSC_DNSBL_THRESHOLD, 1, 5},
    {"postscreen_use_tls = ${stress?{no}:{yes}}\n", P_PSC_USE_TLS, 1, 0},
    {"stress = yes\npostscreen_greet_wait = ${stress?{2}:{6}}s\n", P_PSC_GREET_WAIT, 6, 2},
};

static void test_stress_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(stress_cases) / sizeof(stress_cases[0]); i++) {
        const struct stress_case *c = &stress_cases[i];
        struct conf *cf = load(c->text);
        long long n = conf_num_stress(cf, c->id, false), s = conf_num_stress(cf, c->id, true);
        if (n != c->normal || s != c->stress)
            fail_msg("case %zu \"%s\": %lld/%lld, want %lld/%lld", i, c->text, n, s, c->normal,
                     c->stress);
        assert_int_equal(conf_num(cf, c->id), c->normal);
        conf_free(cf);
    }
}

static void test_stress_in_both_states_is_checked(void **state)
{
    char err[1024];

    (void)state;
    load_err("postscreen_watchdog_timeout = ${stress?{5}:{10}}s\n", NULL, 0, err, sizeof(err));
    assert_contains(err, CF ", line 1");
    assert_contains(err, "postscreen_watchdog_timeout");
    assert_contains(err, "\"5s\"");
    assert_contains(err, "below the minimum 10s");
}

/* ---- typed values -------------------------------------------------------- */

struct value_case {
    const char *text;
    enum param_id id;
    long long num;
};

static const struct value_case value_cases[] = {
    /* time: every unit, and each parameter's default unit */
    {"postscreen_greet_ttl = 2", P_PSC_GREET_TTL, 172800},
    {"postscreen_greet_ttl = 2d", P_PSC_GREET_TTL, 172800},
    {"postscreen_greet_ttl = 1w", P_PSC_GREET_TTL, 604800},
    {"postscreen_greet_ttl = 3h", P_PSC_GREET_TTL, 10800},
    {"postscreen_greet_ttl = 5m", P_PSC_GREET_TTL, 300},
    {"postscreen_greet_ttl = 7s", P_PSC_GREET_TTL, 7},
    {"postscreen_greet_ttl = 2dx", P_PSC_GREET_TTL, 172800}, /* text after the unit ignored */
    {"postscreen_greet_ttl = 2147483647s", P_PSC_GREET_TTL, 2147483647LL},
    {"postscreen_cache_cleanup_interval = 2", P_PSC_CACHE_CLEANUP_INTERVAL, 7200},
    {"postscreen_cache_cleanup_interval = 0", P_PSC_CACHE_CLEANUP_INTERVAL, 0},
    {"postscreen_dnsbl_min_ttl = 90", P_PSC_DNSBL_MIN_TTL, 90},
    {"postscreen_dnsbl_max_ttl = 2", P_PSC_DNSBL_MAX_TTL, 7200},
    {"postscreen_watchdog_timeout = 10", P_PSC_WATCHDOG_TIMEOUT, 10},
    {"postscreen_watchdog_timeout = 1m", P_PSC_WATCHDOG_TIMEOUT, 60},
    {"mxscreen_relay_idle_timeout = 1h", P_MXS_RELAY_IDLE_TIMEOUT, 3600},
    {"dnsblog_reply_delay = 0", P_DNSBLOG_REPLY_DELAY, 0},
    /* booleans */
    {"postscreen_use_tls = yes", P_PSC_USE_TLS, 1},
    {"postscreen_use_tls = YES", P_PSC_USE_TLS, 1},
    {"postscreen_use_tls = No", P_PSC_USE_TLS, 0},
    {"postscreen_use_tls = no", P_PSC_USE_TLS, 0},
    {"smtpd_use_tls = yes", P_PSC_USE_TLS, 1}, /* through the default */
    /* integers */
    {"postscreen_command_count_limit = 1", P_PSC_COMMAND_COUNT_LIMIT, 1},
    {"postscreen_command_count_limit = +7", P_PSC_COMMAND_COUNT_LIMIT, 7},
    {"postscreen_dnsbl_allowlist_threshold = -5", P_PSC_DNSBL_ALLOWLIST_THRESHOLD, -5},
    {"postscreen_client_connection_count_limit = 0", P_PSC_CLIENT_CONNECTION_COUNT_LIMIT, 0},
    {"smtpd_client_connection_count_limit = 7", P_PSC_CLIENT_CONNECTION_COUNT_LIMIT, 7},
    {"default_process_limit = 200", P_PSC_PRE_QUEUE_LIMIT, 200},
    {"default_process_limit = 200", P_PSC_POST_QUEUE_LIMIT, 200},
    {"postscreen_pre_queue_limit = 10", P_PSC_PRE_QUEUE_LIMIT, 10},
    {"postscreen_post_queue_limit = 5", P_PSC_POST_QUEUE_LIMIT, 5},
    {"delay_logging_resolution_limit = 6", P_DELAY_LOGGING_RESOLUTION_LIMIT, 6},
    {"postscreen_greet_wait = ${w}s\nw = 3", P_PSC_GREET_WAIT, 3},
    /* enums and actions: the index of the word, any case */
    {"postscreen_greet_action = ignore", P_PSC_GREET_ACTION, 0},
    {"postscreen_greet_action = enforce", P_PSC_GREET_ACTION, 1},
    {"postscreen_greet_action = DROP", P_PSC_GREET_ACTION, 2},
    {"postscreen_greet_action = continue", P_PSC_GREET_ACTION, 3},
    {"postscreen_upstream_proxy_protocol =", P_PSC_UPSTREAM_PROXY_PROTOCOL, 0},
    {"postscreen_upstream_proxy_protocol = haproxy", P_PSC_UPSTREAM_PROXY_PROTOCOL, 1},
    {"postscreen_tls_security_level = may", P_PSC_TLS_SECURITY_LEVEL, 2},
    {"smtpd_tls_security_level = encrypt", P_PSC_TLS_SECURITY_LEVEL, 3},
    {"mxscreen_handoff = xclient", P_MXS_HANDOFF, 1},
    {"mxscreen_proxy_protocol = v1", P_MXS_PROXY_PROTOCOL, 1},
};

static void test_values_table(void **state)
{
    int failures = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(value_cases) / sizeof(value_cases[0]); i++) {
        const struct value_case *c = &value_cases[i];
        char err[1024] = "";
        struct conf *cf = conf_load_text(CF, c->text, NULL, 0, err, sizeof(err));
        if (cf == NULL) {
            print_error("case %zu \"%s\": %s\n", i, c->text, err);
            failures++;
            continue;
        }
        if (conf_num(cf, c->id) != c->num || conf_num_stress(cf, c->id, true) != c->num) {
            print_error("case %zu \"%s\": %lld, want %lld\n", i, c->text, conf_num(cf, c->id),
                        c->num);
            failures++;
        }
        conf_free(cf);
    }
    assert_int_equal(failures, 0);
}

struct error_case {
    const char *text;
    int line;
    const char *name;
    const char *value;
    const char *what;
};

static const struct error_case error_cases[] = {
    /* time */
    {"postscreen_greet_wait = 6x\n", 1, "postscreen_greet_wait", "6x", "bad time value"},
    {"postscreen_greet_ttl = 1.5h\n", 1, "postscreen_greet_ttl", "1.5h", "bad time value"},
    {"postscreen_greet_ttl = 2 d\n", 1, "postscreen_greet_ttl", "2 d", "bad time value"},
    {"postscreen_greet_ttl = 2D\n", 1, "postscreen_greet_ttl", "2D", "bad time value"},
    {"postscreen_greet_ttl = -1\n", 1, "postscreen_greet_ttl", "-1", "bad time value"},
    {"postscreen_greet_ttl = d\n", 1, "postscreen_greet_ttl", "d", "bad time value"},
    {"postscreen_greet_ttl =\n", 1, "postscreen_greet_ttl", "\"\"", "bad time value"},
    {"postscreen_greet_ttl = 2147483648s\n", 1, "postscreen_greet_ttl", "2147483648s",
     "bad time value"},
    {"postscreen_greet_ttl = 9999999w\n", 1, "postscreen_greet_ttl", "9999999w", "bad time value"},
    {"postscreen_greet_ttl = 0\n", 1, "postscreen_greet_ttl", "\"0\"", "below the minimum 1s"},
    {"\n# c\npostscreen_watchdog_timeout = 5s\n", 3, "postscreen_watchdog_timeout", "5s",
     "below the minimum 10s"},
    {"postscreen_watchdog_timeout = 9\n", 1, "postscreen_watchdog_timeout", "\"9\"",
     "below the minimum 10s"},
    /* booleans */
    {"a = b\npostscreen_use_tls = maybe\n", 2, "postscreen_use_tls", "maybe", "bad boolean value"},
    {"postscreen_use_tls = 1\n", 1, "postscreen_use_tls", "\"1\"", "bad boolean value"},
    {"postscreen_use_tls = true\n", 1, "postscreen_use_tls", "true", "bad boolean value"},
    {"postscreen_use_tls =\n", 1, "postscreen_use_tls", "\"\"", "bad boolean value"},
    /* integers */
    {"postscreen_command_count_limit = 0\n", 1, "postscreen_command_count_limit", "\"0\"",
     "below the minimum 1"},
    {"postscreen_command_count_limit = abc\n", 1, "postscreen_command_count_limit", "abc",
     "bad numerical value"},
    {"postscreen_command_count_limit = 5x\n", 1, "postscreen_command_count_limit", "5x",
     "bad numerical value"},
    {"postscreen_command_count_limit = 0x10\n", 1, "postscreen_command_count_limit", "0x10",
     "bad numerical value"},
    {"postscreen_command_count_limit = 99999999999999999999\n", 1, "postscreen_command_count_limit",
     "99999999999999999999", "bad numerical value"},
    {"postscreen_command_count_limit =\n", 1, "postscreen_command_count_limit", "\"\"",
     "bad numerical value"},
    {"postscreen_pre_queue_limit = 9\n", 1, "postscreen_pre_queue_limit", "\"9\"",
     "below the minimum 10"},
    {"\n\npostscreen_post_queue_limit = 2\n", 3, "postscreen_post_queue_limit", "\"2\"",
     "below the minimum 5"},
    {"postscreen_dnsbl_threshold = 0\n", 1, "postscreen_dnsbl_threshold", "\"0\"",
     "below the minimum 1"},
    {"delay_logging_resolution_limit = 7\n", 1, "delay_logging_resolution_limit", "\"7\"",
     "above the maximum 6"},
    {"line_length_limit = 511\n", 1, "line_length_limit", "511", "below the minimum 512"},
    /* enums and actions */
    {"postscreen_greet_action = reject\n", 1, "postscreen_greet_action", "reject",
     "bad postscreen_greet_action value: reject"},
    {"postscreen_dnsbl_action =\n", 1, "postscreen_dnsbl_action", "",
     "bad postscreen_dnsbl_action value"},
    {"postscreen_denylist_action = enforced\n", 1, "postscreen_denylist_action", "enforced",
     "bad postscreen_denylist_action value"},
    {"postscreen_blacklist_action = bogus\n", 1, "postscreen_blacklist_action", "bogus",
     "bad postscreen_blacklist_action value"},
    {"mxscreen_handoff = lmtp\n", 1, "mxscreen_handoff", "lmtp", "proxy|xclient|pass"},
    {"postscreen_upstream_proxy_protocol = nginx\n", 1, "postscreen_upstream_proxy_protocol",
     "nginx", "haproxy"},
    {"postscreen_tls_security_level = high\n", 1, "postscreen_tls_security_level", "high",
     "none|may|encrypt"},
    /* a continued value is reported at its first line */
    {"x = 1\npostscreen_greet_wait =\n  6x\n", 2, "postscreen_greet_wait", "6x", "bad time value"},
    /* syntax */
    {"postscreen_dnsbl_action\n", 1, "postscreen_dnsbl_action", "postscreen_dnsbl_action",
     "missing '='"},
    {"a = 1\n\npostscreen_greet_wait 6s\n", 3, "postscreen_greet_wait", "6s", "missing '='"},
    {"  postscreen_greet_wait = 6s\n", 1, "postscreen_greet_wait", "6s",
     "continuation line without a parameter"},
    {"# only a comment before\n\tpostscreen_greet_wait = 6s\n", 2, "postscreen_greet_wait", "6s",
     "continuation line"},
    {"postscreen greet wait = 6s\n", 1, "postscreen greet wait", "6s", "bad parameter name"},
    {"postscreen-greet-wait = 6s\n", 1, "postscreen-greet-wait", "6s", "bad parameter name"},
    {"a = 1\n= 6s\n", 2, "", "6s", "bad parameter name"},
    {"$x = 6s\n", 1, "$x", "6s", "bad parameter name"},
};

static void test_errors_table(void **state)
{
    int failures = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(error_cases) / sizeof(error_cases[0]); i++) {
        const struct error_case *c = &error_cases[i];
        char err[1024] = "", where[128];
        snprintf(where, sizeof(where), CF ", line %d", c->line);
        struct conf *cf = conf_load_text(CF, c->text, NULL, 0, err, sizeof(err));
        if (cf != NULL) {
            print_error("case %zu \"%s\": loaded\n", i, c->text);
            failures++;
            conf_free(cf);
        } else if (strstr(err, where) == NULL || strstr(err, c->name) == NULL ||
                   strstr(err, c->value) == NULL || strstr(err, c->what) == NULL) {
            print_error("case %zu: \"%s\" should have \"%s\", \"%s\", \"%s\" and \"%s\"\n", i, err,
                        where, c->name, c->value, c->what);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* A default made invalid by what it refers to names the parameter and value. */
static void test_error_in_default(void **state)
{
    char err[1024];

    (void)state;
    load_err("default_process_limit = 3\n", NULL, 0, err, sizeof(err));
    assert_contains(err, CF);
    assert_contains(err, "postscreen_");
    assert_contains(err, "_queue_limit");
    assert_contains(err, "\"3\"");
    assert_contains(err, "below the minimum");
}

/* Unknown postscreen_* names draw a warning only; the rest is ignored. */
static void test_unknown_names(void **state)
{
    (void)state;
    struct conf *cf = load("postscreen_greet_enable = yes\n"
                           "mxscreen_bogus = 1\n"
                           "smtpd_recipient_restrictions = permit_mynetworks reject\n"
                           "relay_domains = $mydestination\n");
    assert_int_equal(conf_num(cf, P_PSC_GREET_WAIT), 6);
    conf_free(cf);
}

/* ---- legacy names -------------------------------------------------------- */

static void test_legacy_names(void **state)
{
    struct conf *cf;

    (void)state;
    cf = load("postscreen_blacklist_action = drop\n");
    assert_int_equal(conf_num(cf, P_PSC_DENYLIST_ACTION), 2);
    assert_string_equal(conf_str(cf, P_PSC_DENYLIST_ACTION), "drop");
    assert_false(conf_is_set(cf, P_PSC_DENYLIST_ACTION));
    assert_true(conf_is_set(cf, P_PSC_BLACKLIST_ACTION));
    conf_free(cf);

    /* the new name wins over the old one */
    cf = load("postscreen_denylist_action = enforce\npostscreen_blacklist_action = drop\n");
    assert_int_equal(conf_num(cf, P_PSC_DENYLIST_ACTION), 1);
    conf_free(cf);

    cf = load("postscreen_dnsbl_ttl = 2h\n");
    assert_int_equal(conf_num(cf, P_PSC_DNSBL_MAX_TTL), 7200);
    assert_int_equal(conf_num(cf, P_PSC_DNSBL_TTL), 7200);
    conf_free(cf);

    cf = load("postscreen_dnsbl_ttl = 3\n"); /* default unit h */
    assert_int_equal(conf_num(cf, P_PSC_DNSBL_MAX_TTL), 10800);
    conf_free(cf);

    cf = load("postscreen_dnsbl_ttl = 30m\n");
    assert_int_equal(conf_num(cf, P_PSC_DNSBL_MAX_TTL), 1800);
    conf_free(cf);

    cf = load("postscreen_whitelist_interfaces = !192.0.2.1 static:all\n");
    assert_string_equal(conf_str(cf, P_PSC_ALLOWLIST_INTERFACES), "!192.0.2.1 static:all");
    conf_free(cf);

    cf = load("postscreen_dnsbl_whitelist_threshold = -2\n");
    assert_int_equal(conf_num(cf, P_PSC_DNSBL_ALLOWLIST_THRESHOLD), -2);
    conf_free(cf);

    /* unset legacy names stay undefined and do not disturb the defaults */
    cf = load("");
    assert_string_equal(conf_str(cf, P_PSC_BLACKLIST_ACTION), "");
    assert_string_equal(conf_str(cf, P_PSC_WHITELIST_INTERFACES), "");
    assert_false(conf_is_set(cf, P_PSC_DNSBL_TTL));
    assert_int_equal(conf_num(cf, P_PSC_DENYLIST_ACTION), 0);
    assert_int_equal(conf_num(cf, P_PSC_DNSBL_MAX_TTL), 3600);
    assert_string_equal(conf_str(cf, P_PSC_ALLOWLIST_INTERFACES), "static:all");
    assert_int_equal(conf_num(cf, P_PSC_DNSBL_ALLOWLIST_THRESHOLD), 0);
    conf_free(cf);
}

static void test_respectful_logging(void **state)
{
    static const struct {
        const char *text;
        bool want;
    } cases[] = {
        {"", true},
        {"compatibility_level = 3.6\n", true},
        {"compatibility_level = 3.7\n", true},
        {"compatibility_level = 10\n", true},
        {"compatibility_level = 3.5\n", false},
        {"compatibility_level = 2\n", false},
        {"compatibility_level = 0\n", false},
        {"compatibility_level = 3.6\nrespectful_logging = no\n", false},
        {"compatibility_level = 2\nrespectful_logging = yes\n", true},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct conf *cf = load(cases[i].text);
        if (conf_bool(cf, P_RESPECTFUL_LOGGING) != cases[i].want)
            fail_msg("\"%s\": respectful_logging %d", cases[i].text,
                     conf_bool(cf, P_RESPECTFUL_LOGGING));
        conf_free(cf);
    }
}

/* ---- defaults ------------------------------------------------------------ */

struct default_case {
    enum param_id id;
    const char *str; /* NULL: the local banner */
    long long num;
};

/* postscreen's defaults (Postfix 3.7), as expanded. */
static const struct default_case default_cases[] = {
    {P_PSC_ACCESS_LIST, "permit_mynetworks", 0},
    {P_PSC_ALLOWLIST_INTERFACES, "static:all", 0},
    {P_PSC_BARLF_ACTION, "ignore", 0},
    {P_PSC_BARLF_ENABLE, "no", 0},
    {P_PSC_BARLF_TTL, "30d", 2592000},
    {P_PSC_CACHE_CLEANUP_INTERVAL, "12h", 43200},
    {P_PSC_CACHE_MAP, "btree:/var/lib/mxscreen/postscreen_cache", 0},
    {P_PSC_CACHE_RETENTION_TIME, "7d", 604800},
    {P_PSC_CLIENT_CONNECTION_COUNT_LIMIT, "50", 50},
    {P_PSC_COMMAND_COUNT_LIMIT, "20", 20},
    {P_PSC_COMMAND_FILTER, "", 0},
    {P_PSC_COMMAND_TIME_LIMIT, "300s", 300},
    {P_PSC_DENYLIST_ACTION, "ignore", 0},
    {P_PSC_DISABLE_VRFY_COMMAND, "no", 0},
    {P_PSC_DISCARD_EHLO_KEYWORD_ADDRESS_MAPS, "", 0},
    {P_PSC_DISCARD_EHLO_KEYWORDS, "", 0},
    {P_PSC_DNSBL_ACTION, "ignore", 0},
    {P_PSC_DNSBL_ALLOWLIST_THRESHOLD, "0", 0},
    {P_PSC_DNSBL_MAX_TTL, "1h", 3600},
    {P_PSC_DNSBL_MIN_TTL, "60s", 60},
    {P_PSC_DNSBL_REPLY_MAP, "", 0},
    {P_PSC_DNSBL_SITES, "", 0},
    {P_PSC_DNSBL_THRESHOLD, "1", 1},
    {P_PSC_DNSBL_TIMEOUT, "10s", 10},
    {P_PSC_ENFORCE_TLS, "no", 0},
    {P_PSC_EXPANSION_FILTER,
     "\t !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`"
     "abcdefghijklmnopqrstuvwxyz{|}~",
     0},
    {P_PSC_FORBIDDEN_COMMANDS, "CONNECT GET POST regexp:{{/^[^A-Z]/ Bogus}}", 0},
    {P_PSC_GREET_ACTION, "ignore", 0},
    {P_PSC_GREET_BANNER, NULL, 0},
    {P_PSC_GREET_TTL, "1d", 86400},
    {P_PSC_GREET_WAIT, "6s", 6},
    {P_PSC_HELO_REQUIRED, "no", 0},
    {P_PSC_NSMTP_ACTION, "drop", 2},
    {P_PSC_NSMTP_ENABLE, "no", 0},
    {P_PSC_NSMTP_TTL, "30d", 2592000},
    {P_PSC_PIPEL_ACTION, "enforce", 1},
    {P_PSC_PIPEL_ENABLE, "no", 0},
    {P_PSC_PIPEL_TTL, "30d", 2592000},
    {P_PSC_POST_QUEUE_LIMIT, "100", 100},
    {P_PSC_PRE_QUEUE_LIMIT, "100", 100},
    {P_PSC_REJECT_FOOTER, "", 0},
    {P_PSC_REJECT_FOOTER_MAPS, "", 0},
    {P_PSC_TLS_SECURITY_LEVEL, "", 0},
    {P_PSC_UPSTREAM_PROXY_PROTOCOL, "", 0},
    {P_PSC_UPSTREAM_PROXY_TIMEOUT, "5s", 5},
    {P_PSC_USE_TLS, "no", 0},
    {P_PSC_WATCHDOG_TIMEOUT, "10s", 10},
};

static void test_postscreen_defaults(void **state)
{
    char host[256] = "", banner[300];
    int live = 0, legacy = 0, failures = 0;

    (void)state;
    assert_int_equal(gethostname(host, sizeof(host) - 1), 0);
    snprintf(banner, sizeof(banner), "%s ESMTP Postfix", host);
    struct conf *cf = load("");
    for (int id = 0; id < P__COUNT; id++) {
        const struct param_def *d = &param_table[id];
        if (strncmp(d->name, "postscreen_", 11) != 0)
            continue;
        if (d->flags & PF_LEGACY) {
            legacy++;
            continue;
        }
        live++;
        const struct default_case *c = NULL;
        for (size_t k = 0; k < sizeof(default_cases) / sizeof(default_cases[0]); k++)
            if ((int)default_cases[k].id == id)
                c = &default_cases[k];
        if (c == NULL) {
            print_error("%s: no expected default in this test\n", d->name);
            failures++;
            continue;
        }
        const char *want = c->str ? c->str : banner;
        if (strcmp(conf_str(cf, (enum param_id)id), want) != 0 ||
            conf_num(cf, (enum param_id)id) != c->num) {
            print_error("%s: \"%s\" (%lld), want \"%s\" (%lld)\n", d->name,
                        conf_str(cf, (enum param_id)id), conf_num(cf, (enum param_id)id), want,
                        c->num);
            failures++;
        }
        /* only the two stress-dependent defaults change under stress */
        if (id != P_PSC_GREET_WAIT && id != P_PSC_COMMAND_TIME_LIMIT &&
            conf_num_stress(cf, (enum param_id)id, true) != c->num) {
            print_error("%s: %lld under stress\n", d->name,
                        conf_num_stress(cf, (enum param_id)id, true));
            failures++;
        }
    }
    assert_int_equal(failures, 0);
    assert_int_equal(live, 47);
    assert_int_equal(legacy, 4);
    assert_int_equal(sizeof(default_cases) / sizeof(default_cases[0]), 47);
    assert_int_equal(conf_num_stress(cf, P_PSC_GREET_WAIT, true), 2);
    assert_int_equal(conf_num_stress(cf, P_PSC_COMMAND_TIME_LIMIT, true), 10);
    assert_true(conf_bool(cf, P_RESPECTFUL_LOGGING));
    assert_string_equal(conf_str(cf, P_MYHOSTNAME), host);
    conf_free(cf);
}

/* Every parameter with a default evaluates to a value of its type. */
static void test_every_default_loads(void **state)
{
    (void)state;
    struct conf *cf = load("");
    for (int id = 0; id < P__COUNT; id++) {
        const struct param_def *d = &param_table[id];
        assert_true(param_lookup(d->name) == id);
        if (d->def == NULL) {
            assert_true(d->flags & PF_LEGACY);
            continue;
        }
        if (d->type == CT_BOOL) {
            const char *s = conf_str(cf, (enum param_id)id);
            if (strcmp(s, "yes") != 0 && strcmp(s, "no") != 0)
                fail_msg("%s = \"%s\"", d->name, s);
        }
    }
    assert_int_equal(param_lookup("postscreen_no_such_thing"), -1);
    conf_free(cf);
}

/* ---- parsers ------------------------------------------------------------- */

static void test_parse_time(void **state)
{
    static const struct {
        const char *text;
        char unit;
        int rc;
        long long secs;
    } cases[] = {
        {"10", 's', 0, 10},
        {"10", 'm', 0, 600},
        {"10", 'h', 0, 36000},
        {"10", 'd', 0, 864000},
        {"10", 'w', 0, 6048000},
        {"10s", 'd', 0, 10},
        {"0", 's', 0, 0},
        {"1m30s", 's', 0, 60},
        {"10", 0, -1, 0},
        {"10x", 's', -1, 0},
        {"", 's', -1, 0},
        {"s", 's', -1, 0},
        {" 10", 's', -1, 0},
        {"+10", 's', -1, 0},
        {"-10", 's', -1, 0},
        {"10 s", 's', -1, 0},
        {"2147483647", 's', 0, 2147483647LL},
        {"2147483648", 's', -1, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        long long secs = -12345;
        int rc = conf_parse_time(cases[i].text, cases[i].unit, &secs);
        if (rc != cases[i].rc || (rc == 0 && secs != cases[i].secs))
            fail_msg("\"%s\" unit %c: rc %d secs %lld", cases[i].text,
                     cases[i].unit ? cases[i].unit : '0', rc, secs);
    }
    long long secs = 0;
    /* 35791394 minutes fit in an int; 35791395 do not */
    assert_int_equal(conf_parse_time("35791394m", 's', &secs), 0);
    assert_int_equal(secs, 35791394LL * 60);
    assert_int_equal(conf_parse_time("35791395m", 's', &secs), -1);
    assert_int_equal(conf_parse_time("3550w", 's', &secs), 0);
    assert_int_equal(conf_parse_time("3551w", 's', &secs), -1);
}

static void test_parse_int_and_bool(void **state)
{
    static const struct {
        const char *text;
        int rc;
        long long val;
    } ints[] = {
        {"20", 0, 20},
        {"+5", 0, 5},
        {"-5", 0, -5},
        {"0", 0, 0},
        {"007", 0, 7},
        {"", -1, 0},
        {" 5", -1, 0},
        {"5 ", -1, 0},
        {"0x10", -1, 0},
        {"abc", -1, 0},
        {"1e3", -1, 0},
        {"-", -1, 0},
        {"9223372036854775807", 0, 9223372036854775807LL},
        {"9223372036854775808", -1, 0},
    };
    static const struct {
        const char *text;
        int rc;
        bool val;
    } bools[] = {
        {"yes", 0, true}, {"YES", 0, true}, {"Yes", 0, true}, {"no", 0, false},
        {"NO", 0, false}, {"maybe", -1, 0}, {"", -1, 0},      {"1", -1, 0},
        {"y", -1, 0},     {"yes ", -1, 0},  {"true", -1, 0},  {"noo", -1, 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
        long long v = -12345;
        int rc = conf_parse_int(ints[i].text, &v);
        if (rc != ints[i].rc || (rc == 0 && v != ints[i].val))
            fail_msg("int \"%s\": rc %d val %lld", ints[i].text, rc, v);
    }
    for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
        bool v = !bools[i].val;
        int rc = conf_parse_bool(bools[i].text, &v);
        if (rc != bools[i].rc || (rc == 0 && v != bools[i].val))
            fail_msg("bool \"%s\": rc %d val %d", bools[i].text, rc, v);
    }
}

/* ---- conf_print_nondefault ------------------------------------------------ */

static char *print_nondefault(const struct conf *cf)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *fp = open_memstream(&buf, &len);

    assert_non_null(fp);
    conf_print_nondefault(cf, fp);
    assert_int_equal(fclose(fp), 0);
    return buf;
}

static void test_print_nondefault(void **state)
{
    static const char *const ov[] = {"postscreen_dnsbl_threshold=2"};

    (void)state;
    struct conf *cf = load_o("# comment\n"
                             "postscreen_greet_wait = 6s\n"
                             "postscreen_dnsbl_action = ignore\n"
                             "postscreen_greet_action = enforce\n"
                             "mynetworks = 192.0.2.0/24\n"
                             "unknown_thing = x\n"
                             "postscreen_blacklist_action = drop\n"
                             "postscreen_greet_banner = $smtpd_banner\n"
                             "postscreen_dnsbl_sites = zen.example\n"
                             "  bl.example\n"
                             "postscreen_greet_action = drop\n",
                             ov, 1);
    char *out = print_nondefault(cf);
    assert_string_equal(out, "mynetworks = 192.0.2.0/24\n"
                             "postscreen_blacklist_action = drop\n"
                             "postscreen_dnsbl_sites = zen.example  bl.example\n"
                             "postscreen_dnsbl_threshold = 2\n"
                             "postscreen_greet_action = drop\n"
                             "postscreen_greet_wait = 6s\n");
    free(out);
    conf_free(cf);

    cf = load("unknown = 1\n");
    out = print_nondefault(cf);
    assert_string_equal(out, "");
    free(out);
    conf_free(cf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_syntax),
        cmocka_unit_test(test_last_definition_wins),
        cmocka_unit_test(test_overrides),
        cmocka_unit_test(test_override_errors),
        cmocka_unit_test(test_expand_table),
        cmocka_unit_test(test_expand_errors),
        cmocka_unit_test(test_conf_expand),
        cmocka_unit_test(test_raw_parameter),
        cmocka_unit_test(test_stress_table),
        cmocka_unit_test(test_stress_in_both_states_is_checked),
        cmocka_unit_test(test_values_table),
        cmocka_unit_test(test_errors_table),
        cmocka_unit_test(test_error_in_default),
        cmocka_unit_test(test_unknown_names),
        cmocka_unit_test(test_legacy_names),
        cmocka_unit_test(test_respectful_logging),
        cmocka_unit_test(test_postscreen_defaults),
        cmocka_unit_test(test_every_default_loads),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_parse_int_and_bool),
        cmocka_unit_test(test_print_nondefault),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
