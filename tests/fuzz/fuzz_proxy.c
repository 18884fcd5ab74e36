/*
 * fuzz_proxy - the upstream PROXY protocol parser, v1 and v2, and the
 * writer's round trip (src/net/proxy.c)
 *
 * Input: the first bytes a load balancer sends.  Checked, over every
 * prefix of the input (as the bytes arrive one by one):
 *   - the answers are PROXY_MORE, ..., PROXY_MORE, then one PROXY_DONE or
 *     PROXY_FAIL that never changes again, with the same result: the
 *     parser never reads past the header it reports, and a verdict holds
 *   - PROXY_MORE only below PROXY_PEEK_MAX bytes (the session peeks no
 *     more: a longer "valid prefix" would stall the connection)
 *   - PROXY_DONE: 0 < len <= the bytes given, both endpoints of one
 *     family with the matching length (or LOCAL); PROXY_FAIL: a reason
 * Then the input's bytes are read as two endpoints and TLS texts,
 * written with proxy_write() (v1 and v2, any buffer size) and parsed back:
 * the same endpoints, the whole header consumed.
 */
#include <arpa/inet.h>
#include <string.h>

#include "fuzz.h"
#include "net/proxy.h"

/* The prefixes worth checking: every answer is final by PROXY_PEEK_MAX + 1. */
#define PREFIX_MAX (PROXY_PEEK_MAX + 2)

static bool same_result(enum proxy_status a, const struct proxy_result *ra, enum proxy_status b,
                        const struct proxy_result *rb)
{
    return a == b && memcmp(ra, rb, sizeof(*ra)) == 0;
}

/* Check one complete answer. */
static void check_final(enum proxy_status st, const struct proxy_result *r, size_t size)
{
    if (st == PROXY_FAIL) {
        FUZZ_CHECK(r->reason != NULL && r->reason[0] != '\0');
        return;
    }
    FUZZ_CHECK(st == PROXY_DONE);
    FUZZ_CHECK(r->len > 0 && r->len <= size && r->len <= PROXY_PEEK_MAX);
    if (r->local)
        return;
    int fam = r->src.ss_family;
    FUZZ_CHECK(fam == AF_INET || fam == AF_INET6);
    FUZZ_CHECK(r->dst.ss_family == fam);
    socklen_t want = fam == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    FUZZ_CHECK(r->srclen == want && r->dstlen == want);
}

/* Parse every prefix of the input; see the contract above. */
static void check_prefixes(const uint8_t *data, size_t size)
{
    struct proxy_result first, r;
    enum proxy_status first_st = PROXY_MORE;
    size_t top = size < PREFIX_MAX ? size : PREFIX_MAX;

    for (size_t k = 0; k <= top; k++) {
        enum proxy_status st = proxy_parse(data, k, &r);
        if (st == PROXY_MORE) {
            FUZZ_CHECK(first_st == PROXY_MORE);
            FUZZ_CHECK(k < PROXY_PEEK_MAX);
            continue;
        }
        if (first_st == PROXY_MORE) {
            check_final(st, &r, k);
            first = r;
            first_st = st;
        } else {
            FUZZ_CHECK(same_result(st, &r, first_st, &first));
        }
    }
    if (size > top) {
        enum proxy_status st = proxy_parse(data, size, &r);
        FUZZ_CHECK(first_st != PROXY_MORE);
        FUZZ_CHECK(same_result(st, &r, first_st, &first));
    }
}

/* Read an endpoint from 19 bytes: a family bit, 16 address bytes, a port. */
static void make_endpoint(const uint8_t *p, struct endpoint *ep)
{
    struct sockaddr_storage ss;
    socklen_t len;

    memset(&ss, 0, sizeof(ss));
    if (p[0] & 1) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, p + 1, 16);
        memcpy(&s6->sin6_port, p + 17, 2);
        len = sizeof(*s6);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, p + 1, 4);
        memcpy(&s4->sin_port, p + 17, 2);
        len = sizeof(*s4);
    }
    FUZZ_CHECK(endpoint_set(ep, (struct sockaddr *)&ss, len) == 0);
}

/* Does the parsed address SS name the endpoint EP? */
static bool same_endpoint(const struct sockaddr_storage *ss, socklen_t len,
                          const struct endpoint *ep)
{
    struct endpoint back;

    if (endpoint_set(&back, (const struct sockaddr *)ss, len) < 0)
        return false;
    return strcmp(back.addr, ep->addr) == 0 && strcmp(back.port, ep->port) == 0;
}

/* Write a header from the input's bytes and parse it back. */
static void check_round_trip(const uint8_t *data, size_t size)
{
    struct endpoint client, server;
    unsigned char buf[PROXY_WRITE_MAX + 64];
    char version[PROXY_TLS_TEXT_MAX + 8], cipher[PROXY_TLS_TEXT_MAX + 8];
    struct proxy_result r;

    if (size < 2 * 19 + 3)
        return;
    make_endpoint(data, &client);
    make_endpoint(data + 19, &server);
    size_t cap = data[38] % sizeof(buf) + 1;
    /* The TLS texts: the rest of the input, split at its middle. */
    size_t rest = size - 41, vlen = rest / 2, clen = rest - vlen;
    if (vlen >= sizeof(version))
        vlen = sizeof(version) - 1;
    if (clen >= sizeof(cipher))
        clen = sizeof(cipher) - 1;
    memcpy(version, data + 41, vlen);
    version[vlen] = '\0';
    memcpy(cipher, data + 41 + rest / 2, clen);
    cipher[clen] = '\0';
    struct proxy_tls tls = {version, cipher};

    for (int v = 1; v <= 2; v++) {
        const struct proxy_tls *t = (v == 2 && (data[39] & 1)) ? &tls : NULL;
        size_t n = proxy_write(buf, sizeof(buf), v, &client, &server, t);
        FUZZ_CHECK(n > 0 && n <= PROXY_WRITE_MAX && n <= sizeof(buf));
        FUZZ_CHECK(proxy_parse(buf, n, &r) == PROXY_DONE);
        FUZZ_CHECK(r.len == n && !r.local);
        FUZZ_CHECK(same_endpoint(&r.src, r.srclen, &client));
        FUZZ_CHECK(same_endpoint(&r.dst, r.dstlen, &server));
        /* A smaller buffer: the whole header or nothing. */
        unsigned char small[PROXY_WRITE_MAX + 64];
        size_t m = proxy_write(small, cap, v, &client, &server, t);
        FUZZ_CHECK(m == 0 || (m == n && memcmp(small, buf, n) == 0));

        size_t l = proxy_write_local(buf, cap, v);
        if (l > 0) {
            enum proxy_status st = proxy_parse(buf, l, &r);
            /* v2 LOCAL is a health check; v1 UNKNOWN is refused (proxy.h). */
            FUZZ_CHECK(v == 2 ? st == PROXY_DONE && r.local && r.len == l : st == PROXY_FAIL);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_prefixes(data, size);
    check_round_trip(data, size);
    return 0;
}
