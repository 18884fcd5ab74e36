/*
 * test_addr - cidr_parse/cidr_match, addr_parse, hostport_parse, endpoint_set
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "net/addr.h"

#define assert_contains(hay, needle)                                                               \
    do {                                                                                           \
        if (strstr((hay), (needle)) == NULL)                                                       \
            fail_msg("\"%s\" does not contain \"%s\"", (hay), (needle));                           \
    } while (0)

/* A sockaddr for a numeric address and port (test helper). */
static socklen_t make_sa(struct sockaddr_storage *ss, const char *addr, unsigned port)
{
    socklen_t len;

    assert_true(addr_parse(addr, ss, &len));
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    return len;
}

struct cidr_case {
    const char *text;
    int rc;
    int family;
    int bits;
    const char *net; /* the network, as inet_ntop prints it */
    const char *err; /* a substring of the error */
};

static const struct cidr_case cidr_cases[] = {
    {"1.2.3.4", 0, AF_INET, 32, "1.2.3.4", NULL},
    {"1.2.3.4/32", 0, AF_INET, 32, "1.2.3.4", NULL},
    {"0.0.0.0/0", 0, AF_INET, 0, "0.0.0.0", NULL},
    {"10.0.0.0/8", 0, AF_INET, 8, "10.0.0.0", NULL},
    {"192.168.1.2/31", 0, AF_INET, 31, "192.168.1.2", NULL},
    {"172.16.0.0/12", 0, AF_INET, 12, "172.16.0.0", NULL},
    {"192.168.0.128/25", 0, AF_INET, 25, "192.168.0.128", NULL},
    {"[::1]", 0, AF_INET6, 128, "::1", NULL},
    {"[::1]/128", 0, AF_INET6, 128, "::1", NULL},
    {"[::]/0", 0, AF_INET6, 0, "::", NULL},
    {"[2001:db8::]/32", 0, AF_INET6, 32, "2001:db8::", NULL},
    {"2001:db8::/32", 0, AF_INET6, 32, "2001:db8::", NULL},
    {"[2001:db8::]/33", 0, AF_INET6, 33, "2001:db8::", NULL},
    {"[2001:db8:8000::]/33", 0, AF_INET6, 33, "2001:db8:8000::", NULL},
    {"[::ffff:127.0.0.0]/104", 0, AF_INET6, 104, "::ffff:127.0.0.0", NULL},
    /* host bits set: Postfix's message with the network meant */
    {"1.2.3.4/24", -1, 0, 0, NULL, "perhaps you should use \"1.2.3.0/24\" instead"},
    {"192.168.1.3/31", -1, 0, 0, NULL, "perhaps you should use \"192.168.1.2/31\" instead"},
    {"1.2.3.4/0", -1, 0, 0, NULL, "perhaps you should use \"0.0.0.0/0\" instead"},
    {"127.0.0.1/8", -1, 0, 0, NULL, "non-null host address bits in \"127.0.0.1/8\""},
    {"[2001:db8::1]/64", -1, 0, 0, NULL, "perhaps you should use \"2001:db8::/64\" instead"},
    {"[2001:db8:c000::]/33", -1, 0, 0, NULL, "perhaps you should use \"2001:db8:8000::/33\""},
    /* bad masks */
    {"1.2.3.0/33", -1, 0, 0, NULL, "bad net/mask pattern: \"1.2.3.0/33\""},
    {"[::]/129", -1, 0, 0, NULL, "bad net/mask pattern"},
    {"1.2.3.0/", -1, 0, 0, NULL, "bad net/mask pattern"},
    {"1.2.3.0/-1", -1, 0, 0, NULL, "bad net/mask pattern"},
    {"1.2.3.0/+8", -1, 0, 0, NULL, "bad net/mask pattern"},
    {"1.2.3.0/8x", -1, 0, 0, NULL, "bad net/mask pattern"},
    {"1.2.3.0/ 8", -1, 0, 0, NULL, "bad net/mask pattern"},
    {"1.2.3.0/99999999999999999999", -1, 0, 0, NULL, "bad net/mask pattern"},
    /* bad addresses */
    {"", -1, 0, 0, NULL, "bad address pattern"},
    {"/24", -1, 0, 0, NULL, "bad address pattern"},
    {"1.2.3", -1, 0, 0, NULL, "bad address pattern"},
    {"1.2.3.256", -1, 0, 0, NULL, "bad address pattern"},
    {"example.com", -1, 0, 0, NULL, "bad address pattern: \"example.com\""},
    {"[1.2.3.4]", -1, 0, 0, NULL, "bad address pattern"},
    {"[::1", -1, 0, 0, NULL, "bad address pattern"},
    {"[]", -1, 0, 0, NULL, "bad address pattern"},
    {"[:::]", -1, 0, 0, NULL, "bad address pattern"},
    {"1.2.3.4 ", -1, 0, 0, NULL, "bad address pattern"},
};

static void test_cidr_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cidr_cases) / sizeof(cidr_cases[0]); i++) {
        const struct cidr_case *c = &cidr_cases[i];
        struct cidr out;
        char err[256] = "";
        int rc = cidr_parse(c->text, &out, err, sizeof(err));
        if (rc != c->rc)
            fail_msg("\"%s\": rc %d, want %d (%s)", c->text, rc, c->rc, err);
        if (rc == 0) {
            char text[INET6_ADDRSTRLEN];
            assert_int_equal(out.family, c->family);
            assert_int_equal(out.bits, c->bits);
            assert_non_null(inet_ntop(out.family, out.net, text, sizeof(text)));
            if (strcmp(text, c->net) != 0)
                fail_msg("\"%s\": net %s, want %s", c->text, text, c->net);
        } else {
            assert_contains(err, c->err);
        }
    }
}

struct match_case {
    const char *pattern;
    const char *addr;
    bool match;
};

static const struct match_case match_cases[] = {
    {"0.0.0.0/0", "0.0.0.0", true},
    {"0.0.0.0/0", "255.255.255.255", true},
    {"0.0.0.0/0", "::1", false}, /* families never mix */
    {"[::]/0", "::1", true},
    {"[::]/0", "1.2.3.4", false},
    {"1.2.3.4", "1.2.3.4", true},
    {"1.2.3.4/32", "1.2.3.5", false},
    {"1.2.3.4/32", "1.2.3.3", false},
    {"192.168.1.2/31", "192.168.1.2", true},
    {"192.168.1.2/31", "192.168.1.3", true},
    {"192.168.1.2/31", "192.168.1.4", false},
    {"192.168.1.2/31", "192.168.1.1", false},
    {"10.0.0.0/8", "10.255.255.255", true},
    {"10.0.0.0/8", "11.0.0.0", false},
    {"10.0.0.0/8", "9.255.255.255", false},
    {"172.16.0.0/12", "172.31.255.255", true},
    {"172.16.0.0/12", "172.32.0.0", false},
    {"172.16.0.0/12", "172.15.255.255", false},
    {"192.168.0.128/25", "192.168.0.255", true},
    {"192.168.0.128/25", "192.168.0.127", false},
    {"1.2.2.0/23", "1.2.2.0", true}, /* odd bits: /23 */
    {"1.2.2.0/23", "1.2.3.255", true},
    {"1.2.2.0/23", "1.2.4.0", false},
    {"1.2.2.0/23", "1.2.1.255", false},
    {"128.0.0.0/1", "200.1.1.1", true},
    {"128.0.0.0/1", "127.255.255.255", false},
    {"[::1]", "::1", true},
    {"[::1]/128", "::2", false},
    {"[::1]/128", "::0", false},
    {"[2001:db8::]/32", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", true},
    {"[2001:db8::]/32", "2001:db9::", false},
    {"[2001:db8:8000::]/33", "2001:db8:ffff::1", true},
    {"[2001:db8:8000::]/33", "2001:db8:7fff::1", false},
    {"[2001:db8::]/127", "2001:db8::1", true},
    {"[2001:db8::]/127", "2001:db8::2", false},
    {"[fe80::]/10", "febf::1", true},
    {"[fe80::]/10", "fec0::1", false},
    {"[::ffff:127.0.0.0]/104", "::ffff:127.1.2.3", true},
    {"[::ffff:127.0.0.0]/104", "127.1.2.3", false},
};

static void test_cidr_match_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(match_cases) / sizeof(match_cases[0]); i++) {
        const struct match_case *c = &match_cases[i];
        struct cidr net;
        struct sockaddr_storage ss;
        char err[256];
        if (cidr_parse(c->pattern, &net, err, sizeof(err)) != 0)
            fail_msg("pattern %s: %s", c->pattern, err);
        make_sa(&ss, c->addr, 25);
        bool got = cidr_match(&net, (const struct sockaddr *)&ss);
        if (got != c->match)
            fail_msg("%s in %s: got %d, want %d", c->addr, c->pattern, got, c->match);
    }
}

struct addr_case {
    const char *text;
    bool ok;
    int family;
};

static const struct addr_case addr_cases[] = {
    {"1.2.3.4", true, AF_INET},      {"::1", true, AF_INET6}, {"::ffff:1.2.3.4", true, AF_INET6},
    {"2001:DB8::1", true, AF_INET6}, {"", false, 0},          {"[::1]", false, 0},
    {"1.2.3.4/32", false, 0},        {"localhost", false, 0}, {"1.2.3.4.5", false, 0},
    {" 1.2.3.4", false, 0},
};

static void test_addr_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(addr_cases) / sizeof(addr_cases[0]); i++) {
        const struct addr_case *c = &addr_cases[i];
        struct sockaddr_storage ss;
        socklen_t len = 0;
        bool ok = addr_parse(c->text, &ss, &len);
        if (ok != c->ok)
            fail_msg("\"%s\": got %d, want %d", c->text, ok, c->ok);
        if (ok) {
            assert_int_equal(ss.ss_family, c->family);
            assert_int_equal(len, c->family == AF_INET ? sizeof(struct sockaddr_in)
                                                       : sizeof(struct sockaddr_in6));
        }
    }
}

struct hostport_case {
    const char *text;
    int rc;
    int family; /* AF_INET, AF_INET6 or AF_UNIX */
    const char *addr;
    unsigned port;
    bool wildcard;
    const char *err;
};

static const struct hostport_case hostport_cases[] = {
    {"1.2.3.4:25", 0, AF_INET, "1.2.3.4", 25, false, NULL},
    {"127.0.0.1:10025", 0, AF_INET, "127.0.0.1", 10025, false, NULL},
    {"0.0.0.0:1", 0, AF_INET, "0.0.0.0", 1, false, NULL},
    {"1.2.3.4:65535", 0, AF_INET, "1.2.3.4", 65535, false, NULL},
    {"[::1]:25", 0, AF_INET6, "::1", 25, false, NULL},
    {"[2001:db8::5]:587", 0, AF_INET6, "2001:db8::5", 587, false, NULL},
    {"*:25", 0, AF_INET6, "::", 25, true, NULL},
    {":25", 0, AF_INET6, "::", 25, true, NULL},
    {"/run/mxscreen/smtpd.sock", 0, AF_UNIX, "/run/mxscreen/smtpd.sock", 0, false, NULL},
    /* bad ports */
    {"1.2.3.4:0", -1, 0, NULL, 0, false, "bad port in \"1.2.3.4:0\""},
    {"1.2.3.4:65536", -1, 0, NULL, 0, false, "bad port in \"1.2.3.4:65536\""},
    {"1.2.3.4:x", -1, 0, NULL, 0, false, "bad port"},
    {"1.2.3.4:", -1, 0, NULL, 0, false, "bad port"},
    {"1.2.3.4:25x", -1, 0, NULL, 0, false, "bad port"},
    {"1.2.3.4:-25", -1, 0, NULL, 0, false, "bad port"},
    {"1.2.3.4:+25", -1, 0, NULL, 0, false, "bad port"},
    {"1.2.3.4: 25", -1, 0, NULL, 0, false, "bad port"},
    {"1.2.3.4:smtp", -1, 0, NULL, 0, false, "bad port"},
    {"[::1]:0", -1, 0, NULL, 0, false, "bad port"},
    {"*:99999999999999999999", -1, 0, NULL, 0, false, "bad port"},
    /* missing port */
    {"1.2.3.4", -1, 0, NULL, 0, false, "expected host:port"},
    {"[::1]", -1, 0, NULL, 0, false, "expected [ipv6]:port"},
    {"[::1]25", -1, 0, NULL, 0, false, "expected [ipv6]:port"},
    {"", -1, 0, NULL, 0, false, "bad address"},
    /* IPv6 needs brackets; brackets need IPv6 */
    {"::1:25", -1, 0, NULL, 0, false, "bad address"},
    {"[1.2.3.4]:25", -1, 0, NULL, 0, false, "expected [ipv6]:port"},
    {"[::1:25", -1, 0, NULL, 0, false, "expected [ipv6]:port"},
    /* host names are refused */
    {"localhost:25", -1, 0, NULL, 0, false, "numeric IPv4 or IPv6 address"},
    {"mail.example.com:25", -1, 0, NULL, 0, false, "numeric IPv4 or IPv6 address"},
    {"1.2.3.256:25", -1, 0, NULL, 0, false, "numeric IPv4 or IPv6 address"},
};

static void test_hostport_parse_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(hostport_cases) / sizeof(hostport_cases[0]); i++) {
        const struct hostport_case *c = &hostport_cases[i];
        struct hostport hp;
        char err[256] = "";
        int rc = hostport_parse(c->text, &hp, err, sizeof(err));
        if (rc != c->rc)
            fail_msg("\"%s\": rc %d, want %d (%s)", c->text, rc, c->rc, err);
        if (rc < 0) {
            assert_contains(err, c->err);
            continue;
        }
        assert_int_equal(hp.sa.ss_family, c->family);
        if (hp.wildcard != c->wildcard)
            fail_msg("\"%s\": wildcard %d", c->text, hp.wildcard);
        if (c->family == AF_UNIX) {
            const struct sockaddr_un *su = (const struct sockaddr_un *)&hp.sa;
            assert_string_equal(su->sun_path, c->addr);
            continue;
        }
        struct endpoint ep;
        assert_int_equal(endpoint_set(&ep, (const struct sockaddr *)&hp.sa, hp.salen), 0);
        assert_string_equal(ep.addr, c->addr);
        char port[8];
        snprintf(port, sizeof(port), "%u", c->port);
        assert_string_equal(ep.port, port);
    }
}

static void test_hostport_unix_path_too_long(void **state)
{
    char path[200], err[512] = "";
    struct hostport hp;

    (void)state;
    memset(path, 'a', sizeof(path) - 1);
    path[0] = '/';
    path[sizeof(path) - 1] = '\0';
    assert_int_equal(hostport_parse(path, &hp, err, sizeof(err)), -1);
    assert_contains(err, "UNIX socket path too long");
}

struct endpoint_case {
    const char *addr;
    unsigned port;
    int family; /* after the rewrite */
    const char *text;
};

static const struct endpoint_case endpoint_cases[] = {
    {"1.2.3.4", 25, AF_INET, "1.2.3.4"},
    {"::ffff:1.2.3.4", 2525, AF_INET, "1.2.3.4"},
    {"::ffff:127.0.0.1", 65535, AF_INET, "127.0.0.1"},
    {"::ffff:0.0.0.0", 0, AF_INET, "0.0.0.0"},
    {"2001:db8::1", 587, AF_INET6, "2001:db8::1"},
    {"::1", 1, AF_INET6, "::1"},
    {"::", 25, AF_INET6, "::"},
    /* not mapped: IPv4-compatible and NAT64 stay IPv6 */
    {"64:ff9b::1.2.3.4", 25, AF_INET6, "64:ff9b::102:304"},
};

static void test_endpoint_set_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(endpoint_cases) / sizeof(endpoint_cases[0]); i++) {
        const struct endpoint_case *c = &endpoint_cases[i];
        struct sockaddr_storage ss;
        struct endpoint ep;
        socklen_t len = make_sa(&ss, c->addr, c->port);
        assert_int_equal(endpoint_set(&ep, (const struct sockaddr *)&ss, len), 0);
        assert_int_equal(ep.sa.ss_family, c->family);
        assert_string_equal(ep.addr, c->text);
        char port[8];
        snprintf(port, sizeof(port), "%u", c->port);
        assert_string_equal(ep.port, port);
        if (c->family == AF_INET) {
            const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ep.sa;
            assert_int_equal(ep.salen, sizeof(struct sockaddr_in));
            assert_int_equal(ntohs(s4->sin_port), c->port);
            char buf[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, &s4->sin_addr, buf, sizeof(buf));
            assert_string_equal(buf, c->text);
        } else {
            assert_int_equal(ep.salen, sizeof(struct sockaddr_in6));
            assert_int_equal(ntohs(((const struct sockaddr_in6 *)&ep.sa)->sin6_port), c->port);
        }
    }
}

static void test_endpoint_set_bad(void **state)
{
    struct sockaddr_storage ss;
    struct endpoint ep;
    struct sockaddr_un su;

    (void)state;
    make_sa(&ss, "2001:db8::1", 25);
    assert_int_equal(endpoint_set(&ep, (const struct sockaddr *)&ss, sizeof(struct sockaddr_in)),
                     -1);
    make_sa(&ss, "1.2.3.4", 25);
    assert_int_equal(
        endpoint_set(&ep, (const struct sockaddr *)&ss, sizeof(struct sockaddr_in) - 1), -1);
    memset(&su, 0, sizeof(su));
    su.sun_family = AF_UNIX;
    strcpy(su.sun_path, "/tmp/x");
    assert_int_equal(endpoint_set(&ep, (const struct sockaddr *)&su, sizeof(su)), -1);
}

/* A mapped address from an IPv6 socket matches IPv4 patterns once rewritten. */
static void test_endpoint_mapped_matches_ipv4_cidr(void **state)
{
    struct sockaddr_storage ss;
    struct endpoint ep;
    struct cidr net;
    char err[256];

    (void)state;
    socklen_t len = make_sa(&ss, "::ffff:192.0.2.7", 25);
    assert_int_equal(endpoint_set(&ep, (const struct sockaddr *)&ss, len), 0);
    assert_int_equal(cidr_parse("192.0.2.0/24", &net, err, sizeof(err)), 0);
    assert_true(cidr_match(&net, (const struct sockaddr *)&ep.sa));
    assert_false(cidr_match(&net, (const struct sockaddr *)&ss));
}

/* The allowlist and connection-limit key, with and without prefix aggregation. */
static const struct key_case {
    const char *addr;
    int v4, v6;
    const char *key;
} key_cases[] = {
    /* Off (the defaults): the address itself. */
    {"192.0.2.77", 32, 128, "192.0.2.77"},
    {"2001:db8:1:2:3:4:5:6", 32, 128, "2001:db8:1:2:3:4:5:6"},
    /* A mapped address counts as IPv4. */
    {"::ffff:192.0.2.77", 24, 64, "192.0.2.0/24"},
    {"192.0.2.77", 24, 128, "192.0.2.0/24"},
    {"192.0.2.255", 24, 128, "192.0.2.0/24"},
    {"192.0.2.77", 25, 128, "192.0.2.0/25"},
    {"192.0.2.200", 25, 128, "192.0.2.128/25"},
    {"203.0.113.9", 1, 128, "128.0.0.0/1"},
    {"10.1.2.3", 12, 128, "10.0.0.0/12"},
    {"10.31.2.3", 12, 128, "10.16.0.0/12"},
    /* The IPv4 prefix does not touch IPv6 clients, and the other way round. */
    {"2001:db8:1:2:3:4:5:6", 24, 128, "2001:db8:1:2:3:4:5:6"},
    {"192.0.2.77", 32, 64, "192.0.2.77"},
    {"2001:db8:1:2:3:4:5:6", 32, 64, "2001:db8:1:2::/64"},
    {"2001:db8:1:2:ffff:ffff:ffff:ffff", 32, 64, "2001:db8:1:2::/64"},
    {"2001:db8:1:2:3:4:5:6", 32, 48, "2001:db8:1::/48"},
    {"2001:db8:1:2:3:4:5:6", 32, 56, "2001:db8:1::/56"},
    {"2001:db8:1:2ff:3:4:5:6", 32, 56, "2001:db8:1:200::/56"},
    {"2001:db8:1:2:3:4:5:6", 32, 127, "2001:db8:1:2:3:4:5:6/127"},
    {"2001:db8:1:2:3:4:5:7", 32, 127, "2001:db8:1:2:3:4:5:6/127"},
    {"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 32, 1, "8000::/1"},
};

static void test_endpoint_key_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(key_cases) / sizeof(key_cases[0]); i++) {
        const struct key_case *c = &key_cases[i];
        struct sockaddr_storage ss;
        struct endpoint ep;
        char key[ENDPOINT_KEY_MAX];
        socklen_t len = make_sa(&ss, c->addr, 25);
        assert_int_equal(endpoint_set(&ep, (const struct sockaddr *)&ss, len), 0);
        endpoint_key(&ep, c->v4, c->v6, key, sizeof(key));
        if (strcmp(key, c->key) != 0)
            fail_msg("case %zu (%s /%d /%d): %s, want %s", i, c->addr, c->v4, c->v6, key, c->key);
    }
    /* The longest key fits. */
    struct sockaddr_storage ss;
    struct endpoint ep;
    char key[ENDPOINT_KEY_MAX];
    socklen_t len = make_sa(&ss, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 25);
    assert_int_equal(endpoint_set(&ep, (const struct sockaddr *)&ss, len), 0);
    endpoint_key(&ep, 32, 127, key, sizeof(key));
    assert_string_equal(key, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr_parse_table),
        cmocka_unit_test(test_endpoint_key_table),
        cmocka_unit_test(test_cidr_match_table),
        cmocka_unit_test(test_addr_parse_table),
        cmocka_unit_test(test_hostport_parse_table),
        cmocka_unit_test(test_hostport_unix_path_too_long),
        cmocka_unit_test(test_endpoint_set_table),
        cmocka_unit_test(test_endpoint_set_bad),
        cmocka_unit_test(test_endpoint_mapped_matches_ipv4_cidr),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
