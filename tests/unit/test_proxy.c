/*
 * test_proxy - PROXY protocol v1/v2 parser and writer
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
#include "net/proxy.h"

static const unsigned char v2sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                        0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* The printable address and port of SS. */
static void sa_text(const struct sockaddr_storage *ss, char *addr, size_t len, unsigned *port)
{
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        assert_non_null(inet_ntop(AF_INET, &s4->sin_addr, addr, (socklen_t)len));
        *port = ntohs(s4->sin_port);
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        assert_int_equal(ss->ss_family, AF_INET6);
        assert_non_null(inet_ntop(AF_INET6, &s6->sin6_addr, addr, (socklen_t)len));
        *port = ntohs(s6->sin6_port);
    }
}

/* Check one side of a parsed header. */
static void check_side(const struct sockaddr_storage *ss, socklen_t sslen, int family,
                       const char *addr, unsigned port)
{
    char text[INET6_ADDRSTRLEN];
    unsigned p;

    assert_int_equal(ss->ss_family, family);
    assert_int_equal(sslen,
                     family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    sa_text(ss, text, sizeof(text), &p);
    assert_string_equal(text, addr);
    assert_int_equal(p, port);
}

/* An endpoint for a numeric address and port. */
static void make_ep(struct endpoint *ep, const char *addr, unsigned port)
{
    struct sockaddr_storage ss;
    socklen_t len;

    assert_true(addr_parse(addr, &ss, &len));
    if (ss.ss_family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = htons((uint16_t)port);
    assert_int_equal(endpoint_set(ep, (const struct sockaddr *)&ss, len), 0);
}

/* ---- version 1 ---------------------------------------------------------- */

struct v1_good {
    const char *header;
    int family;
    const char *src, *dst;
    unsigned sport, dport;
};

static const struct v1_good v1_good_cases[] = {
    {"PROXY TCP4 192.0.2.1 198.51.100.2 51234 25\r\n", AF_INET, "192.0.2.1", "198.51.100.2", 51234,
     25},
    {"PROXY TCP4 0.0.0.0 255.255.255.255 0 65535\r\n", AF_INET, "0.0.0.0", "255.255.255.255", 0,
     65535},
    {"PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n", AF_INET6, "2001:db8::1", "2001:db8::2", 1,
     65535},
    {"PROXY TCP6 FC:00:00:00:1:2:3:4 fc::4:3:2:1 123 321\r\n", AF_INET6, "fc::1:2:3:4",
     "fc::4:3:2:1", 123, 321},
    /* IPv4 in IPv6 stays IPv6 here; endpoint_set() makes it IPv4 */
    {"PROXY TCP6 ::ffff:1.2.3.4 ::ffff:4.3.2.1 123 321\r\n", AF_INET6, "::ffff:1.2.3.4",
     "::ffff:4.3.2.1", 123, 321},
    /* a bare LF ends the line too, as in Postfix */
    {"PROXY TCP4 1.2.3.4 4.3.2.1 123 321\n", AF_INET, "1.2.3.4", "4.3.2.1", 123, 321},
};

static void test_v1_good(void **state)
{
    static const char smtp[] = "EHLO client.example\r\nMAIL FROM:<>\r\n";

    (void)state;
    for (size_t i = 0; i < sizeof(v1_good_cases) / sizeof(v1_good_cases[0]); i++) {
        const struct v1_good *c = &v1_good_cases[i];
        unsigned char buf[256];
        size_t hl = strlen(c->header);
        struct proxy_result r;

        memcpy(buf, c->header, hl);
        memcpy(buf + hl, smtp, sizeof(smtp) - 1);
        /* with and without the client's first bytes behind the header */
        for (int with_data = 0; with_data < 2; with_data++) {
            size_t len = hl + (with_data ? sizeof(smtp) - 1 : 0);
            enum proxy_status st = proxy_parse(buf, len, &r);
            if (st != PROXY_DONE)
                fail_msg("\"%s\": status %d (%s)", c->header, st, r.reason ? r.reason : "");
            assert_int_equal(r.len, hl);
            assert_false(r.local);
            check_side(&r.src, r.srclen, c->family, c->src, c->sport);
            check_side(&r.dst, r.dstlen, c->family, c->dst, c->dport);
        }
    }
}

/* A mapped address from a TCP6 header is the IPv4 client once in an endpoint. */
static void test_v1_mapped_to_ipv4(void **state)
{
    static const char h[] = "PROXY TCP6 ::ffff:1.2.3.4 ::ffff:4.3.2.1 123 321\r\n";
    struct proxy_result r;
    struct endpoint ep;

    (void)state;
    assert_int_equal(proxy_parse((const unsigned char *)h, sizeof(h) - 1, &r), PROXY_DONE);
    assert_int_equal(endpoint_set(&ep, (const struct sockaddr *)&r.src, r.srclen), 0);
    assert_int_equal(ep.sa.ss_family, AF_INET);
    assert_string_equal(ep.addr, "1.2.3.4");
    assert_string_equal(ep.port, "123");
}

struct v1_bad {
    const char *header;
    size_t len;
    const char *reason;
};

/* A literal and its length, NUL bytes included. */
#define B(s) s, sizeof(s) - 1

#define HDR_BAD   "bad or missing protocol header"
#define TYPE_BAD  "bad or missing protocol type"
#define CADDR_BAD "bad or missing client address"
#define SADDR_BAD "bad or missing server address"
#define CPORT_BAD "bad or missing client port"
#define SPORT_BAD "bad or missing server port"

static const struct v1_bad v1_bad_cases[] = {
    /* the header word */
    {B("PROXX TCP4 1.2.3.4 4.3.2.1 1 2\r\n"), HDR_BAD},
    {B("proxy TCP4 1.2.3.4 4.3.2.1 1 2\r\n"), HDR_BAD},
    {B("PROXYTCP4 1.2.3.4 4.3.2.1 1 2\r\n"), HDR_BAD},
    {B("EHLO client.example\r\n"), HDR_BAD},
    {B("PROXY\r\n"), HDR_BAD},
    {B("\n"), HDR_BAD},
    {B(" PROXY TCP4 1.2.3.4 4.3.2.1 1 2\r\n"), HDR_BAD},
    /* the protocol family; UNKNOWN is refused on purpose */
    {B("PROXY UNKNOWN\r\n"), TYPE_BAD},
    {B("PROXY UNKNOWN 1.2.3.4 4.3.2.1 1 2\r\n"), TYPE_BAD},
    {B("PROXY UNKNOWN ::1 ::1 1 2\r\n"), TYPE_BAD},
    {B("PROXY TCP5 1.2.3.4 4.3.2.1 1 2\r\n"), TYPE_BAD},
    {B("PROXY UDP4 1.2.3.4 4.3.2.1 1 2\r\n"), TYPE_BAD},
    {B("PROXY TCP44 1.2.3.4 4.3.2.1 1 2\r\n"), TYPE_BAD},
    {B("PROXY  TCP4 1.2.3.4 4.3.2.1 1 2\r\n"), TYPE_BAD},
    {B("PROXY \r\n"), TYPE_BAD},
    {B("PROXY TCP4\0 1.2.3.4 4.3.2.1 1 2\r\n"), TYPE_BAD},
    /* addresses */
    {B("PROXY TCP4\r\n"), CADDR_BAD},
    {B("PROXY TCP4 \r\n"), CADDR_BAD},
    {B("PROXY TCP4 1.2.3.4\r\n"), SADDR_BAD},
    {B("PROXY TCP4 1.2.3 4.3.2.1 1 2\r\n"), CADDR_BAD},
    {B("PROXY TCP4 1.2.3.256 4.3.2.1 1 2\r\n"), CADDR_BAD},
    {B("PROXY TCP4 client.example 4.3.2.1 1 2\r\n"), CADDR_BAD},
    {B("PROXY TCP4 1.2.3.4 4.3.2 1 2\r\n"), SADDR_BAD},
    {B("PROXY TCP4 1.2.3.4\0junk 4.3.2.1 1 2\r\n"), CADDR_BAD},
    /* family mismatch */
    {B("PROXY TCP4 ::1 4.3.2.1 1 2\r\n"), CADDR_BAD},
    {B("PROXY TCP4 1.2.3.4 ::1 1 2\r\n"), SADDR_BAD},
    {B("PROXY TCP4 ::ffff:1.2.3.4 ::ffff:4.3.2.1 123 321\r\n"), CADDR_BAD},
    {B("PROXY TCP6 1.2.3.4 4.3.2.1 1 2\r\n"), CADDR_BAD},
    {B("PROXY TCP6 2001:db8::1 4.3.2.1 1 2\r\n"), SADDR_BAD},
    {B("PROXY TCP6 [2001:db8::1] 2001:db8::2 1 2\r\n"), CADDR_BAD},
    {B("PROXY TCP6 2001:db8::1\r\n"), SADDR_BAD},
    /* ports */
    {B("PROXY TCP4 1.2.3.4 4.3.2.1\r\n"), CPORT_BAD},
    {B("PROXY TCP4 1.2.3.4 4.3.2.1 \r\n"), CPORT_BAD},
    {B("PROXY TCP4 1.2.3.4 4.3.2.1 123\r\n"), SPORT_BAD},
    {B("PROXY TCP4 1.2.3.4 4.3.2.1 123 \r\n"), SPORT_BAD},
    {B("PROXY TCP4 1.2.3.4 4.3.2.1 65536 25\r\n"), CPORT_BAD},
    {B("PROXY TCP4 1.2.3.4 4.3.2.1 25 65536\r\n"), SPORT_BAD},
    {B("PROXY TCP4 1.2.3.4 4.3.2.1 123456 321\r\n"), CPORT_BAD},
    {B("PROXY TCP4 1.2.3.4 4.3.2.1 123 654321\r\n"), SPORT_BAD},
    {B("PROXY TCP4 1.2.3.4 4.3.2.1 -1 25\r\n"), CPORT_BAD},
    {B("PROXY TCP4 1.2.3.4 4.3.2.1 +1 25\r\n"), CPORT_BAD},
    {B("PROXY TCP4 1.2.3.4 4.3.2.1 smtp 25\r\n"), CPORT_BAD},
    {B("PROXY TCP4 1.2.3.4 4.3.2.1 25 smtp\r\n"), SPORT_BAD},
    {B("PROXY TCP4 1.2.3.4 4.3.2.1 0x19 25\r\n"), CPORT_BAD},
    /* leading zeros are refused, as Postfix's valid_hostport() does */
    {B("PROXY TCP4 1.2.3.4 4.3.2.1 0123 321\r\n"), CPORT_BAD},
    {B("PROXY TCP4 1.2.3.4 4.3.2.1 123 0321\r\n"), SPORT_BAD},
    {B("PROXY TCP4 1.2.3.4 4.3.2.1 123 25\0\r\n"), SPORT_BAD},
    /* trailing garbage */
    {B("PROXY TCP4 1.2.3.4 4.3.2.1 123 321 extra\r\n"), SPORT_BAD},
    {B("PROXY TCP4 1.2.3.4 4.3.2.1 123 321x\r\n"), SPORT_BAD},
    {B("PROXY TCP4 1.2.3.4 4.3.2.1 123 321\r\r\n"), SPORT_BAD},
    {B("PROXY TCP6 ::1 ::2 123 321 0\r\n"), SPORT_BAD},
};

static void test_v1_bad(void **state)
{
    int failures = 0;

    (void)state;
    for (size_t i = 0; i < sizeof(v1_bad_cases) / sizeof(v1_bad_cases[0]); i++) {
        const struct v1_bad *c = &v1_bad_cases[i];
        struct proxy_result r;
        enum proxy_status st = proxy_parse((const unsigned char *)c->header, c->len, &r);
        if (st != PROXY_FAIL || r.reason == NULL || strcmp(r.reason, c->reason) != 0) {
            print_error("case %zu \"%.*s\": status %d reason \"%s\", want \"%s\"\n", i,
                        (int)strcspn(c->header, "\r\n"), c->header, st, r.reason ? r.reason : "",
                        c->reason);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* Every proper prefix of a valid header asks for more bytes. */
static void test_v1_every_prefix_is_more(void **state)
{
    static const char *const headers[] = {
        "PROXY TCP4 192.0.2.1 198.51.100.2 51234 25\r\n",
        "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n",
    };

    (void)state;
    for (size_t h = 0; h < sizeof(headers) / sizeof(headers[0]); h++) {
        size_t len = strlen(headers[h]);
        struct proxy_result r;
        for (size_t n = 0; n < len; n++) {
            enum proxy_status st = proxy_parse((const unsigned char *)headers[h], n, &r);
            if (st != PROXY_MORE)
                fail_msg("\"%s\" cut at %zu: status %d (%s)", headers[h], n, st,
                         r.reason ? r.reason : "");
        }
        assert_int_equal(proxy_parse((const unsigned char *)headers[h], len, &r), PROXY_DONE);
        assert_int_equal(r.len, len);
    }
}

/* The v1 line is at most 107 bytes with its CRLF. */
static void test_v1_length_limit(void **state)
{
    unsigned char buf[PROXY_PEEK_MAX];
    struct proxy_result r;
    char hdr[160];

    (void)state;
    /* a valid header of exactly 107 bytes */
    int n = snprintf(hdr, sizeof(hdr), "PROXY TCP6 %s %s 65535 65535\r\n",
                     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                     "0000:0000:0000:0000:0000:ffff:1.12.103.104");
    assert_int_equal(n, 107);
    assert_int_equal(proxy_parse((const unsigned char *)hdr, 107, &r), PROXY_DONE);
    assert_int_equal(r.len, 107);
    check_side(&r.dst, r.dstlen, AF_INET6, "::ffff:1.12.103.104", 65535);
    /* one byte longer: the terminator is out of reach */
    n = snprintf(hdr, sizeof(hdr), "PROXY TCP6 %s %s 65535 65535\r\n",
                 "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                 "0000:0000:0000:0000:0000:ffff:1.123.103.104");
    assert_int_equal(n, 108);
    assert_int_equal(proxy_parse((const unsigned char *)hdr, 107, &r), PROXY_FAIL);
    assert_string_equal(r.reason, "missing protocol header terminator");
    assert_int_equal(proxy_parse((const unsigned char *)hdr, 108, &r), PROXY_FAIL);
    assert_string_equal(r.reason, "missing protocol header terminator");

    /* junk without a newline: more until 107 bytes, then a failure */
    memset(buf, 'A', sizeof(buf));
    assert_int_equal(proxy_parse(buf, 106, &r), PROXY_MORE);
    assert_int_equal(proxy_parse(buf, 107, &r), PROXY_FAIL);
    assert_string_equal(r.reason, "missing protocol header terminator");
    assert_int_equal(proxy_parse(buf, sizeof(buf), &r), PROXY_FAIL);
    assert_string_equal(r.reason, "missing protocol header terminator");
    /* a newline as the 107th byte is within the limit */
    buf[106] = '\n';
    assert_int_equal(proxy_parse(buf, 107, &r), PROXY_FAIL);
    assert_string_equal(r.reason, HDR_BAD);
    /* a newline as the 108th byte is not */
    buf[106] = 'A';
    buf[107] = '\n';
    assert_int_equal(proxy_parse(buf, 108, &r), PROXY_FAIL);
    assert_string_equal(r.reason, "missing protocol header terminator");
}

/* ---- version 2 ---------------------------------------------------------- */

/* Build a v2 header: signature, VER_CMD, FAM, then BODY of BLEN bytes. */
static size_t v2_build(unsigned char *buf, unsigned char ver_cmd, unsigned char fam,
                       const unsigned char *body, size_t blen)
{
    memcpy(buf, v2sig, 12);
    buf[12] = ver_cmd;
    buf[13] = fam;
    buf[14] = (unsigned char)(blen >> 8);
    buf[15] = (unsigned char)blen;
    if (blen)
        memcpy(buf + 16, body, blen);
    return 16 + blen;
}

/* IPv4 address block: 192.0.2.1:51234 -> 198.51.100.2:25. */
static const unsigned char v4_body[12] = {192, 0, 2, 1, 198, 51, 100, 2, 0xc8, 0x22, 0, 25};

/* IPv6 address block: 2001:db8::1:1 -> 2001:db8::2:25. */
static size_t v6_body(unsigned char *b)
{
    memset(b, 0, 36);
    b[0] = 0x20, b[1] = 0x01, b[2] = 0x0d, b[3] = 0xb8, b[15] = 1;
    b[16] = 0x20, b[17] = 0x01, b[18] = 0x0d, b[19] = 0xb8, b[31] = 2;
    b[32] = 0, b[33] = 1;
    b[34] = 0, b[35] = 25;
    return 36;
}

static void test_v2_proxy_ipv4(void **state)
{
    unsigned char buf[128];
    struct proxy_result r;

    (void)state;
    size_t n = v2_build(buf, 0x21, 0x11, v4_body, sizeof(v4_body));
    assert_int_equal(n, 28);
    memcpy(buf + n, "EHLO x\r\n", 8);
    assert_int_equal(proxy_parse(buf, n + 8, &r), PROXY_DONE);
    assert_int_equal(r.len, 28);
    assert_false(r.local);
    check_side(&r.src, r.srclen, AF_INET, "192.0.2.1", 51234);
    check_side(&r.dst, r.dstlen, AF_INET, "198.51.100.2", 25);
}

static void test_v2_proxy_ipv6(void **state)
{
    unsigned char buf[128], body[36];
    struct proxy_result r;

    (void)state;
    size_t n = v2_build(buf, 0x21, 0x21, body, v6_body(body));
    assert_int_equal(n, 52);
    assert_int_equal(proxy_parse(buf, n, &r), PROXY_DONE);
    assert_int_equal(r.len, 52);
    assert_false(r.local);
    check_side(&r.src, r.srclen, AF_INET6, "2001:db8::1", 1);
    check_side(&r.dst, r.dstlen, AF_INET6, "2001:db8::2", 25);
}

static void test_v2_local(void **state)
{
    unsigned char buf[128], body[64];
    struct proxy_result r;

    (void)state;
    /* LOCAL with no address block */
    size_t n = v2_build(buf, 0x20, 0x00, NULL, 0);
    memcpy(buf + n, "QUIT\r\n", 6);
    assert_int_equal(proxy_parse(buf, n + 6, &r), PROXY_DONE);
    assert_true(r.local);
    assert_int_equal(r.len, 16);
    /* LOCAL with addresses and a TLV: all skipped, whatever the family */
    memcpy(body, v4_body, 12);
    memcpy(body + 12, "\x04\x00\x02xy", 5);
    n = v2_build(buf, 0x20, 0x11, body, 17);
    assert_int_equal(proxy_parse(buf, n, &r), PROXY_DONE);
    assert_true(r.local);
    assert_int_equal(r.len, 33);
    n = v2_build(buf, 0x20, 0x31, body, 17);
    assert_int_equal(proxy_parse(buf, n, &r), PROXY_DONE);
    assert_true(r.local);
}

static void test_v2_tlvs(void **state)
{
    unsigned char buf[PROXY_PEEK_MAX + 16], body[PROXY_PEEK_MAX];
    struct proxy_result r;

    (void)state;
    /* IPv4 + PP2_TYPE_ALPN "smtp" + PP2_TYPE_NOOP of 3 bytes */
    memcpy(body, v4_body, 12);
    memcpy(body + 12, "\x01\x00\x04smtp", 7);
    memcpy(body + 19, "\x04\x00\x03\x00\x00\x00", 6);
    size_t n = v2_build(buf, 0x21, 0x11, body, 25);
    assert_int_equal(n, 41);
    memcpy(buf + n, "EHLO", 4);
    assert_int_equal(proxy_parse(buf, n + 4, &r), PROXY_DONE);
    assert_int_equal(r.len, 41);
    check_side(&r.src, r.srclen, AF_INET, "192.0.2.1", 51234);
    check_side(&r.dst, r.dstlen, AF_INET, "198.51.100.2", 25);

    /* IPv6 + TLVs up to the peek limit: 16 + 520 = 536 */
    v6_body(body);
    memset(body + 36, 0, 520 - 36);
    body[36] = 0x04; /* NOOP */
    body[37] = (unsigned char)((520 - 36 - 3) >> 8);
    body[38] = (unsigned char)(520 - 36 - 3);
    n = v2_build(buf, 0x21, 0x21, body, 520);
    assert_int_equal(n, PROXY_PEEK_MAX);
    assert_int_equal(proxy_parse(buf, n - 1, &r), PROXY_MORE);
    assert_int_equal(proxy_parse(buf, n, &r), PROXY_DONE);
    assert_int_equal(r.len, PROXY_PEEK_MAX);
    check_side(&r.src, r.srclen, AF_INET6, "2001:db8::1", 1);
}

struct v2_bad {
    unsigned char ver_cmd, fam;
    size_t blen;
    const char *reason;
};

static const struct v2_bad v2_bad_cases[] = {
    /* version */
    {0x11, 0x11, 12, "unrecognized protocol version"},
    {0x01, 0x11, 12, "unrecognized protocol version"},
    {0x31, 0x11, 12, "unrecognized protocol version"},
    {0xf1, 0x11, 12, "unrecognized protocol version"},
    {0x10, 0x00, 0, "unrecognized protocol version"},
    /* command */
    {0x22, 0x11, 12, "bad command in proxy header"},
    {0x2f, 0x11, 12, "bad command in proxy header"},
    {0x22, 0x00, 0, "bad command in proxy header"},
    /* family and transport */
    {0x21, 0x00, 0, "unsupported network protocol"},
    {0x21, 0x12, 12, "unsupported network protocol"},  /* UDP over IPv4 */
    {0x21, 0x22, 36, "unsupported network protocol"},  /* UDP over IPv6 */
    {0x21, 0x31, 216, "unsupported network protocol"}, /* UNIX stream */
    {0x21, 0x10, 12, "unsupported network protocol"},
    {0x21, 0x41, 12, "unsupported network protocol"},
    /* short address blocks */
    {0x21, 0x11, 0, "short address field"},
    {0x21, 0x11, 11, "short address field"},
    {0x21, 0x21, 12, "short address field"},
    {0x21, 0x21, 35, "short address field"},
    /* too long for the peek buffer */
    {0x21, 0x11, PROXY_PEEK_MAX - 15, "version 2 protocol header too long"},
    {0x21, 0x21, 0xffff, "version 2 protocol header too long"},
    {0x20, 0x00, 0xffff, "version 2 protocol header too long"},
};

static void test_v2_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(v2_bad_cases) / sizeof(v2_bad_cases[0]); i++) {
        const struct v2_bad *c = &v2_bad_cases[i];
        unsigned char buf[PROXY_PEEK_MAX + 16], body[PROXY_PEEK_MAX];
        struct proxy_result r;

        memset(body, 0x5a, sizeof(body));
        memcpy(body, v4_body, sizeof(v4_body));
        size_t blen = c->blen > sizeof(body) ? sizeof(body) : c->blen;
        size_t n = v2_build(buf, c->ver_cmd, c->fam, body, blen);
        /* the real length field, even where the body is not all there */
        buf[14] = (unsigned char)(c->blen >> 8);
        buf[15] = (unsigned char)c->blen;
        enum proxy_status st = proxy_parse(buf, n, &r);
        if (st != PROXY_FAIL)
            fail_msg("case %zu: status %d, want PROXY_FAIL (%s)", i, st, c->reason);
        if (strcmp(r.reason, c->reason) != 0)
            fail_msg("case %zu: reason \"%s\", want \"%s\"", i, r.reason, c->reason);
    }
}

/* A signature that breaks off is a v1 line, judged as such. */
static void test_v2_broken_signature(void **state)
{
    unsigned char buf[64];
    struct proxy_result r;

    (void)state;
    size_t n = v2_build(buf, 0x21, 0x11, v4_body, sizeof(v4_body));
    buf[7] = 'X'; /* "\r\n\r\n\0\r\nX..." */
    assert_int_equal(proxy_parse(buf, n, &r), PROXY_FAIL);
    assert_string_equal(r.reason, HDR_BAD);
}

/* Every proper prefix of a valid v2 header asks for more bytes. */
static void test_v2_every_prefix_is_more(void **state)
{
    unsigned char bufs[3][128], body[64];
    size_t lens[3];

    (void)state;
    lens[0] = v2_build(bufs[0], 0x21, 0x11, v4_body, sizeof(v4_body));
    v6_body(body);
    memcpy(body + 36, "\x04\x00\x05hello", 8);
    lens[1] = v2_build(bufs[1], 0x21, 0x21, body, 44);
    lens[2] = v2_build(bufs[2], 0x20, 0x00, NULL, 0);
    for (size_t h = 0; h < 3; h++) {
        struct proxy_result r;
        for (size_t n = 0; n < lens[h]; n++) {
            enum proxy_status st = proxy_parse(bufs[h], n, &r);
            if (st != PROXY_MORE)
                fail_msg("header %zu cut at %zu: status %d (%s)", h, n, st,
                         r.reason ? r.reason : "");
        }
        assert_int_equal(proxy_parse(bufs[h], lens[h], &r), PROXY_DONE);
        assert_int_equal(r.len, lens[h]);
    }
}

/* ---- proxy_write -------------------------------------------------------- */

struct write_case {
    int version;
    const char *caddr;
    unsigned cport;
    const char *saddr;
    unsigned sport;
    const char *v1text; /* exact v1 header, or NULL for v2 */
    size_t len;
    int family;              /* as parsed back */
    const char *psrc, *pdst; /* as parsed back */
    const char *esrc;        /* the client once in an endpoint */
};

static const struct write_case write_cases[] = {
    {1, "192.0.2.1", 51234, "198.51.100.2", 25, "PROXY TCP4 192.0.2.1 198.51.100.2 51234 25\r\n",
     44, AF_INET, "192.0.2.1", "198.51.100.2", "192.0.2.1"},
    {1, "2001:db8::1", 1, "2001:db8::2", 65535, "PROXY TCP6 2001:db8::1 2001:db8::2 1 65535\r\n",
     44, AF_INET6, "2001:db8::1", "2001:db8::2", "2001:db8::1"},
    {1, "192.0.2.1", 1025, "2001:db8::2", 25, "PROXY TCP6 ::ffff:192.0.2.1 2001:db8::2 1025 25\r\n",
     49, AF_INET6, "::ffff:192.0.2.1", "2001:db8::2", "192.0.2.1"},
    {1, "2001:db8::1", 1025, "198.51.100.2", 25,
     "PROXY TCP6 2001:db8::1 ::ffff:198.51.100.2 1025 25\r\n", 52, AF_INET6, "2001:db8::1",
     "::ffff:198.51.100.2", "2001:db8::1"},
    {1, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
     65535,
     "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
     "65535 65535\r\n",
     104, AF_INET6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe",
     "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"},
    {2, "192.0.2.1", 51234, "198.51.100.2", 25, NULL, 28, AF_INET, "192.0.2.1", "198.51.100.2",
     "192.0.2.1"},
    {2, "2001:db8::1", 1, "2001:db8::2", 65535, NULL, 52, AF_INET6, "2001:db8::1", "2001:db8::2",
     "2001:db8::1"},
    {2, "192.0.2.1", 1025, "2001:db8::2", 25, NULL, 52, AF_INET6, "::ffff:192.0.2.1", "2001:db8::2",
     "192.0.2.1"},
    {2, "2001:db8::1", 1025, "198.51.100.2", 25, NULL, 52, AF_INET6, "2001:db8::1",
     "::ffff:198.51.100.2", "2001:db8::1"},
};

static void test_write_round_trip(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(write_cases) / sizeof(write_cases[0]); i++) {
        const struct write_case *c = &write_cases[i];
        struct endpoint client, server, ep;
        unsigned char buf[PROXY_WRITE_MAX];
        struct proxy_result r;

        make_ep(&client, c->caddr, c->cport);
        make_ep(&server, c->saddr, c->sport);
        memset(buf, 0xee, sizeof(buf));
        size_t n = proxy_write(buf, sizeof(buf), c->version, &client, &server, NULL);
        if (n != c->len)
            fail_msg("case %zu: length %zu, want %zu", i, n, c->len);
        if (c->v1text)
            assert_memory_equal(buf, c->v1text, n);
        else {
            assert_memory_equal(buf, v2sig, 12);
            assert_int_equal(buf[12], 0x21);
            assert_int_equal(buf[13], c->family == AF_INET ? 0x11 : 0x21);
            assert_int_equal((size_t)(buf[14] << 8 | buf[15]), n - 16);
        }
        assert_int_equal(proxy_parse(buf, n, &r), PROXY_DONE);
        assert_int_equal(r.len, n);
        assert_false(r.local);
        check_side(&r.src, r.srclen, c->family, c->psrc, c->cport);
        check_side(&r.dst, r.dstlen, c->family, c->pdst, c->sport);
        assert_int_equal(endpoint_set(&ep, (const struct sockaddr *)&r.src, r.srclen), 0);
        assert_string_equal(ep.addr, c->esrc);
    }
}

/* proxy_write() returns 0 rather than cut a header. */
static void test_write_small_buffer(void **state)
{
    struct endpoint c4, s4, c6, s6;
    unsigned char buf[PROXY_WRITE_MAX];

    (void)state;
    make_ep(&c4, "192.0.2.1", 51234);
    make_ep(&s4, "198.51.100.2", 25);
    make_ep(&c6, "2001:db8::1", 1);
    make_ep(&s6, "2001:db8::2", 25);
    /* v1 needs room for its NUL as well */
    assert_int_equal(proxy_write(buf, 44, 1, &c4, &s4, NULL), 0);
    assert_int_equal(proxy_write(buf, 45, 1, &c4, &s4, NULL), 44);
    assert_int_equal(proxy_write(buf, 0, 1, &c4, &s4, NULL), 0);
    assert_int_equal(proxy_write(buf, 27, 2, &c4, &s4, NULL), 0);
    assert_int_equal(proxy_write(buf, 28, 2, &c4, &s4, NULL), 28);
    assert_int_equal(proxy_write(buf, 51, 2, &c6, &s6, NULL), 0);
    assert_int_equal(proxy_write(buf, 52, 2, &c6, &s6, NULL), 52);
    assert_int_equal(proxy_write(buf, 51, 2, &c4, &s6, NULL), 0);
}

/* A v2 header with TLS facts: the SSL TLV, parsed back by our own reader. */
static void test_write_tls(void **state)
{
    struct endpoint client, server;
    unsigned char buf[PROXY_WRITE_MAX];
    struct proxy_result r;
    static const char *const ciphers[] = {
        "TLS_AES_256_GCM_SHA384", "",
        /* cut at PROXY_TLS_TEXT_MAX */
        "XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"};

    (void)state;
    make_ep(&client, "2001:db8::1", 1025);
    make_ep(&server, "2001:db8::2", 25);
    for (size_t i = 0; i < 3; i++) {
        struct proxy_tls tls = {"TLSv1.3", ciphers[i]};
        size_t clen =
            strlen(ciphers[i]) > PROXY_TLS_TEXT_MAX ? PROXY_TLS_TEXT_MAX : strlen(ciphers[i]);
        size_t want = 16 + 36 + 3 + 5 + 3 + 7 + (clen ? 3 + clen : 0);
        size_t n = proxy_write(buf, sizeof(buf), 2, &client, &server, &tls);
        assert_int_equal(n, want);
        assert_int_equal((size_t)(buf[14] << 8 | buf[15]), n - 16);
        const unsigned char *t = buf + 16 + 36;
        assert_int_equal(t[0], 0x20);
        assert_int_equal((size_t)(t[1] << 8 | t[2]), n - 16 - 36 - 3);
        assert_int_equal(t[3], 0x01);              /* PP2_CLIENT_SSL */
        assert_memory_equal(t + 4, "\0\0\0\1", 4); /* verify: no certificate */
        assert_int_equal(t[8], 0x21);              /* version */
        assert_int_equal(t[9] << 8 | t[10], 7);
        assert_memory_equal(t + 11, "TLSv1.3", 7);
        if (clen) {
            assert_int_equal(t[18], 0x23); /* cipher */
            assert_int_equal((size_t)(t[19] << 8 | t[20]), clen);
            assert_memory_equal(t + 21, ciphers[i], clen);
        }
        /* Any PROXY v2 reader skips the TLV: ours does. */
        assert_int_equal(proxy_parse(buf, n, &r), PROXY_DONE);
        assert_int_equal(r.len, n);
        /* One byte short of room: nothing written. */
        assert_int_equal(proxy_write(buf, want - 1, 2, &client, &server, &tls), 0);
    }
    /* v1 has no room for TLS facts: the same header as without. */
    struct proxy_tls tls = {"TLSv1.3", "X"};
    unsigned char plain[PROXY_WRITE_MAX];
    size_t n1 = proxy_write(buf, sizeof(buf), 1, &client, &server, &tls);
    size_t n2 = proxy_write(plain, sizeof(plain), 1, &client, &server, NULL);
    assert_int_equal(n1, n2);
    assert_memory_equal(buf, plain, n1);
}

/* A header without endpoints, for mxscreen's own probes over a UNIX socket. */
static void test_write_local(void **state)
{
    unsigned char buf[PROXY_WRITE_MAX];
    struct proxy_result r;

    (void)state;
    size_t n = proxy_write_local(buf, sizeof(buf), 2);
    assert_int_equal(n, 16);
    assert_memory_equal(buf, v2sig, 12);
    assert_int_equal(buf[12], 0x20);
    assert_int_equal(proxy_parse(buf, n, &r), PROXY_DONE);
    assert_true(r.local);
    assert_int_equal(r.len, 16);
    n = proxy_write_local(buf, sizeof(buf), 1);
    assert_int_equal(n, 15);
    assert_memory_equal(buf, "PROXY UNKNOWN\r\n", 15);
    assert_int_equal(proxy_write_local(buf, 15, 2), 0);
    assert_int_equal(proxy_write_local(buf, 14, 1), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_good),
        cmocka_unit_test(test_v1_mapped_to_ipv4),
        cmocka_unit_test(test_v1_bad),
        cmocka_unit_test(test_v1_every_prefix_is_more),
        cmocka_unit_test(test_v1_length_limit),
        cmocka_unit_test(test_v2_proxy_ipv4),
        cmocka_unit_test(test_v2_proxy_ipv6),
        cmocka_unit_test(test_v2_local),
        cmocka_unit_test(test_v2_tlvs),
        cmocka_unit_test(test_v2_bad),
        cmocka_unit_test(test_v2_broken_signature),
        cmocka_unit_test(test_v2_every_prefix_is_more),
        cmocka_unit_test(test_write_round_trip),
        cmocka_unit_test(test_write_tls),
        cmocka_unit_test(test_write_local),
        cmocka_unit_test(test_write_small_buffer),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
