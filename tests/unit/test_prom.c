/*
 * test_prom - the Prometheus text encoder (families, samples, label
 * escaping, floats, histograms), the stats renderings built on it, the
 * stats listener's routes and its address checks
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "stats/http.h"
#include "stats/prom.h"
#include "stats/stats.h"

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static void test_family_and_samples(void **state)
{
    struct sbuf b = SBUF_INIT;
    const char *lb[] = {"verdict", "pass_new", NULL};
    const char *two[] = {"test", "dnsbl", "action", "drop", NULL};

    (void)state;
    prom_family(&b, "mxscreen_verdicts_total", PROM_COUNTER, "How screening ended.");
    prom_u64(&b, "mxscreen_verdicts_total", lb, 42);
    prom_u64(&b, "mxscreen_test_failures_total", two, 0);
    prom_u64(&b, "mxscreen_connections_total", NULL, 18446744073709551615ull);
    prom_family(&b, "mxscreen_sessions", PROM_GAUGE, "Now.");
    prom_family(&b, "x_seconds", PROM_HISTOGRAM, "H.");
    assert_string_equal(sbuf_str(&b),
                        "# HELP mxscreen_verdicts_total How screening ended.\n"
                        "# TYPE mxscreen_verdicts_total counter\n"
                        "mxscreen_verdicts_total{verdict=\"pass_new\"} 42\n"
                        "mxscreen_test_failures_total{test=\"dnsbl\",action=\"drop\"} 0\n"
                        "mxscreen_connections_total 18446744073709551615\n"
                        "# HELP mxscreen_sessions Now.\n"
                        "# TYPE mxscreen_sessions gauge\n"
                        "# HELP x_seconds H.\n"
                        "# TYPE x_seconds histogram\n");
    sbuf_free(&b);
}

/* Label values escape backslash, double quote and newline; HELP text
 * escapes backslash and newline only. */
static void test_escaping(void **state)
{
    static const struct {
        const char *in, *label, *help;
    } rows[] = {
        {"plain.example", "plain.example", "plain.example"},
        {"a\"b", "a\\\"b", "a\"b"},
        {"a\\b", "a\\\\b", "a\\\\b"},
        {"line\nbreak", "line\\nbreak", "line\\nbreak"},
        {"\\\"\n", "\\\\\\\"\\n", "\\\\\"\\n"},
        {"", "", ""},
        {"ünï", "ünï", "ünï"}, /* UTF-8 passes through */
    };

    (void)state;
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct sbuf b = SBUF_INIT;
        prom_escape(&b, rows[i].in, false);
        assert_string_equal(sbuf_str(&b), rows[i].label);
        sbuf_reset(&b);
        prom_escape(&b, rows[i].in, true);
        assert_string_equal(sbuf_str(&b), rows[i].help);
        sbuf_free(&b);
    }
    struct sbuf b = SBUF_INIT;
    const char *lb[] = {"list", "evil\"}\n x 1", NULL};
    prom_u64(&b, "m", lb, 1);
    assert_string_equal(sbuf_str(&b), "m{list=\"evil\\\"}\\n x 1\"} 1\n");
    sbuf_free(&b);
}

static void test_floats(void **state)
{
    static const struct {
        double v;
        const char *want;
    } rows[] = {
        {0, "m 0\n"},
        {1.5, "m 1.5\n"},
        {0.1, "m 0.1\n"},
        {0.020323, "m 0.020323\n"},
        {1e-9, "m 1e-09\n"},
        {0.1 + 0.2, "m 0.30000000000000004\n"},
        {123456789012.0, "m 123456789012\n"},
        {INFINITY, "m +Inf\n"},
        {-INFINITY, "m -Inf\n"},
        {NAN, "m NaN\n"},
    };

    (void)state;
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct sbuf b = SBUF_INIT;
        prom_f64(&b, "m", NULL, rows[i].v);
        assert_string_equal(sbuf_str(&b), rows[i].want);
        sbuf_free(&b);
    }
}

/* Buckets are cumulative in the output, with +Inf equal to _count. */
static void test_histogram(void **state)
{
    static const double bounds[] = {0.5, 1, 2.5};
    struct stats_hist h;
    struct sbuf b = SBUF_INIT;
    const char *lb[] = {"list", "bl.test", NULL};

    (void)state;
    stats_hist_init(&h, bounds, NELEM(bounds));
    stats_hist_add(&h, 0.1);
    stats_hist_add(&h, 0.5); /* on a bound: in that bucket (le) */
    stats_hist_add(&h, 0.75);
    stats_hist_add(&h, 3);
    stats_hist_add(&h, 100);
    prom_hist(&b, "d_seconds", lb, &h);
    assert_string_equal(sbuf_str(&b), "d_seconds_bucket{list=\"bl.test\",le=\"0.5\"} 2\n"
                                      "d_seconds_bucket{list=\"bl.test\",le=\"1\"} 3\n"
                                      "d_seconds_bucket{list=\"bl.test\",le=\"2.5\"} 3\n"
                                      "d_seconds_bucket{list=\"bl.test\",le=\"+Inf\"} 5\n"
                                      "d_seconds_sum{list=\"bl.test\"} 104.35\n"
                                      "d_seconds_count{list=\"bl.test\"} 5\n");
    sbuf_reset(&b);
    struct stats_hist empty;
    stats_hist_init(&empty, bounds, NELEM(bounds));
    prom_hist(&b, "e", NULL, &empty);
    assert_string_equal(sbuf_str(&b), "e_bucket{le=\"0.5\"} 0\ne_bucket{le=\"1\"} 0\n"
                                      "e_bucket{le=\"2.5\"} 0\ne_bucket{le=\"+Inf\"} 0\n"
                                      "e_sum 0\ne_count 0\n");
    sbuf_free(&b);
}

/* The whole rendering: every sample belongs to a family announced before
 * it, with HELP and TYPE, counters end in _total, and the counts given
 * show up with their labels. */
static void test_stats_metrics(void **state)
{
    struct stats_view v = {"0.1.0", "proxy", "lmdb:/x", 7, 1, 3, 1};
    struct sbuf b = SBUF_INIT;

    (void)state;
    stats_init();
    stats.connections = 12;
    stats.verdicts[SV_PASS_NEW] = 4;
    stats.failures[TEST_PREGREET][2] = 3; /* drop */
    stats_list("zen.example")->queries = 9;
    stats_hist_add(&stats_list("zen.example")->rtt, 0.003);
    stats_metrics(&b, &v);
    const char *t = sbuf_str(&b);
    assert_non_null(strstr(t, "\nmxscreen_connections_total 12\n"));
    assert_non_null(strstr(t, "\nmxscreen_verdicts_total{verdict=\"pass_new\"} 4\n"));
    assert_non_null(
        strstr(t, "\nmxscreen_test_failures_total{test=\"pregreet\",action=\"drop\"} 3\n"));
    assert_non_null(strstr(t, "\nmxscreen_rejected_clients_total 3\n"));
    assert_non_null(strstr(t, "\nmxscreen_dnsbl_queries_total{list=\"zen.example\"} 9\n"));
    assert_non_null(strstr(
        t,
        "\nmxscreen_dnsbl_query_duration_seconds_bucket{list=\"zen.example\",le=\"0.005\"} 1\n"));
    assert_non_null(strstr(t, "\nmxscreen_cache_entries 7\n"));
    assert_non_null(strstr(t, "\nmxscreen_build_info{version=\"0.1.0\",mode=\"proxy\"} 1\n"));

    /* Structure: families before their samples, counters named _total. */
    char family[128] = "", type[32] = "";
    int nsamples = 0;
    for (const char *line = t; *line;) {
        const char *end = strchr(line, '\n');
        assert_non_null(end);
        char l[512];
        size_t n = (size_t)(end - line);
        assert_true(n < sizeof(l));
        memcpy(l, line, n);
        l[n] = '\0';
        if (strncmp(l, "# HELP ", 7) == 0) {
            assert_int_equal(sscanf(l, "# HELP %127s", family), 1);
        } else if (strncmp(l, "# TYPE ", 7) == 0) {
            char fam[128];
            assert_int_equal(sscanf(l, "# TYPE %127s %31s", fam, type), 2);
            assert_string_equal(fam, family);
            if (strcmp(type, "counter") == 0)
                assert_non_null(strstr(family, "_total"));
        } else {
            size_t fl = strlen(family);
            assert_true(strncmp(l, family, fl) == 0);
            const char *rest = l + fl;
            if (strcmp(type, "histogram") == 0 && *rest == '_')
                assert_true(strncmp(rest, "_bucket", 7) == 0 || strncmp(rest, "_sum", 4) == 0 ||
                            strncmp(rest, "_count", 6) == 0);
            else
                assert_true(*rest == '{' || *rest == ' ');
            nsamples++;
        }
        line = end + 1;
    }
    assert_true(nsamples > 60);
    sbuf_free(&b);
}

/* The JSON is one object with the counts given (a shallow check; the
 * integration test parses it). */
static void test_stats_json(void **state)
{
    struct stats_view v = {"0.1.0", "xclient", NULL, -1, -1, 0, 0};
    struct sbuf b = SBUF_INIT;

    (void)state;
    stats_init();
    stats.connections = 5;
    stats.verdicts[SV_HANGUP] = 2;
    stats_reject("192.0.2.1", "25", "PREGREET \"x\"\n", "drop");
    stats_json(&b, &v);
    const char *t = sbuf_str(&b);
    assert_true(t[0] == '{');
    assert_non_null(strstr(t, "\"connections\":5,"));
    assert_non_null(strstr(t, "\"hangup\":2}"));
    assert_non_null(strstr(t, "\"map\":null"));
    assert_non_null(strstr(t, "\"entries\":null"));
    assert_non_null(strstr(t, "\"reason\":\"PREGREET \\\"x\\\"\\u000a\""));
    assert_non_null(strstr(t, "\"mode\":\"xclient\""));
    assert_string_equal(t + strlen(t) - 3, "}}\n");
    sbuf_free(&b);
}

/* The recent rejects keep the newest 50. */
static void test_rejects_ring(void **state)
{
    struct stats_view v = {"0.1.0", "proxy", NULL, -1, -1, 0, 0};
    struct sbuf b = SBUF_INIT;
    char addr[32];

    (void)state;
    stats_init();
    for (int i = 0; i < 120; i++) {
        snprintf(addr, sizeof(addr), "192.0.2.%d", i);
        stats_reject(addr, "25", "PREGREET", "drop");
    }
    stats_json(&b, &v);
    const char *t = strstr(sbuf_str(&b), "\"recent_rejects\":[");
    assert_non_null(t);
    assert_non_null(strstr(t, "{\"time\":"));
    /* Newest first: .119 down to .70. */
    const char *first = strstr(t, "\"client\":\"192.0.2.119\"");
    const char *last = strstr(t, "\"client\":\"192.0.2.70\"");
    assert_non_null(first);
    assert_non_null(last);
    assert_true(first < last);
    assert_null(strstr(t, "\"client\":\"192.0.2.69\""));
    sbuf_free(&b);
}

static void test_routes(void **state)
{
    static const struct {
        const char *path;
        enum http_route want;
    } rows[] = {
        {"/", HTTP_ROUTE_DASHBOARD},         {"/index.html", HTTP_ROUTE_DASHBOARD},
        {"/metrics", HTTP_ROUTE_METRICS},    {"/stats", HTTP_ROUTE_STATS},
        {"", HTTP_ROUTE_NOT_FOUND},          {"/metrics/", HTTP_ROUTE_NOT_FOUND},
        {"/metricsx", HTTP_ROUTE_NOT_FOUND}, {"/Stats", HTTP_ROUTE_NOT_FOUND},
        {"//", HTTP_ROUTE_NOT_FOUND},        {"/../stats", HTTP_ROUTE_NOT_FOUND},
        {"metrics", HTTP_ROUTE_NOT_FOUND},
    };

    (void)state;
    for (size_t i = 0; i < NELEM(rows); i++)
        assert_int_equal(http_route(rows[i].path, strlen(rows[i].path)), rows[i].want);
    /* Lengths, not NULs, bound the comparison. */
    assert_int_equal(http_route("/statsXYZ", 6), HTTP_ROUTE_STATS);
    assert_int_equal(http_route("/stats\0", 7), HTTP_ROUTE_NOT_FOUND);
}

static void test_parse_requests(void **state)
{
    static const struct {
        const char *in;
        int want;
        const char *path; /* for HTTP_OK */
        bool head;
    } rows[] = {
        {"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", HTTP_OK, "/metrics", false},
        {"GET /stats?x=1 HTTP/1.0\r\n\r\n", HTTP_OK, "/stats", false},
        {"HEAD / HTTP/1.1\n\n", HTTP_OK, "/", true},
        {"GET http://127.0.0.1:9325/stats HTTP/1.1\r\n\r\n", HTTP_OK, "/stats", false},
        {"GET http://127.0.0.1:9325 HTTP/1.1\r\n\r\n", HTTP_OK, "/", false},
        {"GET /#frag HTTP/1.1\r\n\r\n", HTTP_OK, "/", false},
        {"GET /stats HTTP/1.1\r\nContent-Length: 0\r\n\r\n", HTTP_OK, "/stats", false},
        {"GET /stats HTTP/1.1\r\nX-A:\r\n\r\n", HTTP_OK, "/stats", false},
        /* Incomplete. */
        {"", HTTP_MORE, NULL, false},
        {"GET /stats HTTP/1.1", HTTP_MORE, NULL, false},
        {"GET /stats HTTP/1.1\r\nHost: x\r\n", HTTP_MORE, NULL, false},
        /* Refused. */
        {"POST /stats HTTP/1.1\r\n\r\n", 405, NULL, false},
        {"get /stats HTTP/1.1\r\n\r\n", 405, NULL, false},
        {"BREW / HTTP/1.1\r\n\r\n", 405, NULL, false},
        {"GET /stats HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 413, NULL, false},
        {"GET /stats HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n", 413, NULL, false},
        {"GET /stats HTTP/2.0\r\n\r\n", 400, NULL, false},
        {"GET /stats\r\n\r\n", 400, NULL, false},
        {"GET  /stats HTTP/1.1\r\n\r\n", 400, NULL, false},
        {"GET stats HTTP/1.1\r\n\r\n", 400, NULL, false},
        {"GET /st ats HTTP/1.1\r\n\r\n", 400, NULL, false},
        {" GET / HTTP/1.1\r\n\r\n", 400, NULL, false},
        {"G\x01T / HTTP/1.1\r\n\r\n", 400, NULL, false},
        {"GET /\x7f HTTP/1.1\r\n\r\n", 400, NULL, false},
        {"GET / HTTP/1.1\r\nNo colon here\r\n\r\n", 400, NULL, false},
        {"GET / HTTP/1.1\r\nX-A : b\r\n\r\n", 400, NULL, false},
        {"GET / HTTP/1.1\r\nX-A: b\r\n folded\r\n\r\n", 400, NULL, false},
        {"\x16\x03\x01\x02\x01\r\n\r\n", 400, NULL, false},
        {"\r\n", 400, NULL, false},
    };

    (void)state;
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct http_req r;
        int got = http_parse(rows[i].in, strlen(rows[i].in), &r);
        if (got != rows[i].want)
            fail_msg("row %zu (%s): %d, want %d", i, rows[i].in, got, rows[i].want);
        if (got == HTTP_OK) {
            assert_int_equal(r.pathlen, strlen(rows[i].path));
            assert_memory_equal(r.path, rows[i].path, r.pathlen);
            assert_int_equal(r.method, rows[i].head ? HTTP_HEAD : HTTP_GET);
        }
    }
    /* The limits: a request line, then a head, too long for the buffer. */
    static char big[HTTP_MAX_HEADERS + 100];
    memset(big, 'a', sizeof(big));
    memcpy(big, "GET /", 5);
    struct http_req r;
    assert_int_equal(http_parse(big, HTTP_MAX_LINE - 1, &r), HTTP_MORE);
    assert_int_equal(http_parse(big, HTTP_MAX_LINE, &r), 414);
    big[HTTP_MAX_LINE + 10] = '\n';
    assert_int_equal(http_parse(big, HTTP_MAX_LINE + 11, &r), 414);
    size_t n = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nX-Big: ");
    memset(big + n, 'b', sizeof(big) - n);
    assert_int_equal(http_parse(big, HTTP_MAX_HEADERS - 1, &r), HTTP_MORE);
    assert_int_equal(http_parse(big, HTTP_MAX_HEADERS, &r), 431);
    /* Bytes after the head (a pipelined request) are not looked at. */
    const char *two = "GET /stats HTTP/1.1\r\n\r\nPOST / HTTP/1.1\r\n\r\n";
    assert_int_equal(http_parse(two, strlen(two), &r), HTTP_OK);
}

static void test_listen_addresses(void **state)
{
    static const struct {
        const char *text;
        bool ok;
    } rows[] = {
        {"127.0.0.1:9325", true},
        {"127.255.0.9:1", true},
        {"[::1]:9325", true},
        {"[::ffff:127.0.0.1]:9325", true},
        {"/run/mxscreen/stats", true},
        {"0.0.0.0:9325", false},
        {"*:9325", false},
        {":9325", false},
        {"10.0.0.1:9325", false},
        {"[::]:9325", false},
        {"[2001:db8::1]:80", false},
        {"[::ffff:10.0.0.1]:9325", false},
        {"localhost:9325", false},
        {"127.0.0.1", false},
        {"127.0.0.1:0x10", false},
        {"", false},
    };

    (void)state;
    for (size_t i = 0; i < NELEM(rows); i++) {
        struct hostport hp;
        char err[512] = "";
        int rc = http_listen_parse(rows[i].text, &hp, err, sizeof(err));
        if (rows[i].ok != (rc == 0))
            fail_msg("%s: %d (%s)", rows[i].text, rc, err);
        if (rc < 0)
            assert_true(err[0] != '\0');
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_family_and_samples),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_floats),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_stats_metrics),
        cmocka_unit_test(test_stats_json),
        cmocka_unit_test(test_rejects_ring),
        cmocka_unit_test(test_routes),
        cmocka_unit_test(test_listen_addresses),
        cmocka_unit_test(test_parse_requests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
