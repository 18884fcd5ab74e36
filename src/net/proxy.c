/*
 * proxy - the PROXY protocol, versions 1 and 2; see proxy.h.
 *
 * Wire formats: https://www.haproxy.org/download/2.8/doc/proxy-protocol.txt
 * v1: "PROXY TCP4|TCP6 src dst sport dport\r\n", at most 107 bytes.
 * v2: 12-byte signature, version/command, family/protocol, 16-bit length,
 *     addresses and ports, then TLVs.
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "net/proxy.h"

static const unsigned char v2sig[12] = {0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d,
                                        0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a};

/* The v1 line is at most 107 bytes with its CRLF. */
#define PROXY_V1_MAX 107

/* Fail with REASON. */
static enum proxy_status fail(struct proxy_result *r, const char *reason)
{
    r->reason = reason;
    return PROXY_FAIL;
}

/*
 * Take the next space-separated field of [*p, end) into BUF; 0 or -1.  A NUL
 * byte makes the field bad: it would end the string early and hide junk.
 */
static int field(const char **p, const char *end, char *buf, size_t cap)
{
    const char *s = *p;

    while (*p < end && **p != ' ')
        (*p)++;
    size_t n = (size_t)(*p - s);
    if (n == 0 || n >= cap || memchr(s, '\0', n) != NULL)
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (*p < end)
        (*p)++; /* the space */
    return 0;
}

/*
 * Parse a decimal port 0..65535 with no sign, leading zero or junk, as
 * Postfix's valid_hostport() does.
 */
static int port_field(const char *s, uint16_t *port)
{
    unsigned long v = 0;

    if (*s == '\0' || strlen(s) > 5 || (s[0] == '0' && s[1] != '\0'))
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9')
            return -1;
        v = v * 10 + (unsigned long)(*s - '0');
    }
    if (v > 65535)
        return -1;
    *port = (uint16_t)v;
    return 0;
}

/* Fill SS from a numeric address of family AF and a port. */
static int make_addr(int af, const char *text, uint16_t port, struct sockaddr_storage *ss,
                     socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    if (af == AF_INET) {
        struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
        if (inet_pton(AF_INET, text, &s4->sin_addr) != 1)
            return -1;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        *len = sizeof(*s4);
    } else {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
        if (inet_pton(AF_INET6, text, &s6->sin6_addr) != 1)
            return -1;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        *len = sizeof(*s6);
    }
    return 0;
}

/* Version 1: a text line. */
static enum proxy_status parse_v1(const unsigned char *buf, size_t len, struct proxy_result *r)
{
    const unsigned char *nl = memchr(buf, '\n', len < PROXY_V1_MAX ? len : PROXY_V1_MAX);
    char proto[8], src[48], dst[48], sport[8], dport[8];
    uint16_t sp, dp;

    if (nl == NULL)
        return len >= PROXY_V1_MAX ? fail(r, "missing protocol header terminator") : PROXY_MORE;
    r->len = (size_t)(nl - buf) + 1;
    const char *p = (const char *)buf, *end = (const char *)nl;
    if (end > p && end[-1] == '\r')
        end--;
    if (end - p < 6 || memcmp(p, "PROXY ", 6) != 0)
        return fail(r, "bad or missing protocol header");
    p += 6;
    if (field(&p, end, proto, sizeof(proto)) < 0 ||
        (strcmp(proto, "TCP4") != 0 && strcmp(proto, "TCP6") != 0))
        return fail(r, "bad or missing protocol type");
    int af = proto[3] == '4' ? AF_INET : AF_INET6;
    if (field(&p, end, src, sizeof(src)) < 0)
        return fail(r, "bad or missing client address");
    if (field(&p, end, dst, sizeof(dst)) < 0)
        return fail(r, "bad or missing server address");
    if (field(&p, end, sport, sizeof(sport)) < 0 || port_field(sport, &sp) < 0)
        return fail(r, "bad or missing client port");
    if (field(&p, end, dport, sizeof(dport)) < 0 || port_field(dport, &dp) < 0 || p != end)
        return fail(r, "bad or missing server port");
    if (make_addr(af, src, sp, &r->src, &r->srclen) < 0)
        return fail(r, "bad or missing client address");
    if (make_addr(af, dst, dp, &r->dst, &r->dstlen) < 0)
        return fail(r, "bad or missing server address");
    return PROXY_DONE;
}

/* Version 2: binary. */
static enum proxy_status parse_v2(const unsigned char *buf, size_t len, struct proxy_result *r)
{
    if (len < 16)
        return PROXY_MORE;
    if ((buf[12] & 0xf0) != 0x20)
        return fail(r, "unrecognized protocol version");
    size_t alen = (size_t)buf[14] << 8 | buf[15];
    if (16 + alen > PROXY_PEEK_MAX)
        return fail(r, "version 2 protocol header too long");
    if (len < 16 + alen)
        return PROXY_MORE;
    r->len = 16 + alen;
    switch (buf[12] & 0x0f) {
    case 0x0: /* LOCAL: a health check from the proxy itself */
        r->local = true;
        return PROXY_DONE;
    case 0x1: /* PROXY */
        break;
    default:
        return fail(r, "bad command in proxy header");
    }
    const unsigned char *a = buf + 16;
    struct sockaddr_in *s4 = (struct sockaddr_in *)&r->src, *d4 = (struct sockaddr_in *)&r->dst;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&r->src, *d6 = (struct sockaddr_in6 *)&r->dst;
    memset(&r->src, 0, sizeof(r->src));
    memset(&r->dst, 0, sizeof(r->dst));
    switch (buf[13]) {
    case 0x11: /* TCP over IPv4 */
        if (alen < 12)
            return fail(r, "short address field");
        s4->sin_family = d4->sin_family = AF_INET;
        memcpy(&s4->sin_addr, a, 4);
        memcpy(&d4->sin_addr, a + 4, 4);
        memcpy(&s4->sin_port, a + 8, 2);
        memcpy(&d4->sin_port, a + 10, 2);
        r->srclen = r->dstlen = sizeof(struct sockaddr_in);
        return PROXY_DONE;
    case 0x21: /* TCP over IPv6 */
        if (alen < 36)
            return fail(r, "short address field");
        s6->sin6_family = d6->sin6_family = AF_INET6;
        memcpy(&s6->sin6_addr, a, 16);
        memcpy(&d6->sin6_addr, a + 16, 16);
        memcpy(&s6->sin6_port, a + 32, 2);
        memcpy(&d6->sin6_port, a + 34, 2);
        r->srclen = r->dstlen = sizeof(struct sockaddr_in6);
        return PROXY_DONE;
    default:
        return fail(r, "unsupported network protocol");
    }
}

/* Parse an upstream header from the first LEN bytes of the connection. */
enum proxy_status proxy_parse(const unsigned char *buf, size_t len, struct proxy_result *r)
{
    memset(r, 0, sizeof(*r));
    if (len == 0)
        return PROXY_MORE;
    size_t n = len < sizeof(v2sig) ? len : sizeof(v2sig);
    if (memcmp(buf, v2sig, n) == 0)
        return n < sizeof(v2sig) ? PROXY_MORE : parse_v2(buf, len, r);
    /* Anything else is read as a v1 line, and judged once it is complete. */
    return parse_v1(buf, len, r);
}

/* The 16 address bytes of EP, IPv4 mapped into IPv6 when needed. */
static void addr16(const struct endpoint *ep, unsigned char out[16])
{
    if (ep->sa.ss_family == AF_INET6) {
        memcpy(out, ((const struct sockaddr_in6 *)&ep->sa)->sin6_addr.s6_addr, 16);
        return;
    }
    memset(out, 0, 10);
    out[10] = out[11] = 0xff;
    memcpy(out + 12, &((const struct sockaddr_in *)&ep->sa)->sin_addr, 4);
}

/* The port of EP in network byte order. */
static uint16_t port_of(const struct endpoint *ep)
{
    return ep->sa.ss_family == AF_INET ? ((const struct sockaddr_in *)&ep->sa)->sin_port
                                       : ((const struct sockaddr_in6 *)&ep->sa)->sin6_port;
}

/*
 * Write a v1 or v2 header for CLIENT talking to SERVER into BUF; returns its
 * length (0 if CAP is too small).  Mixed families are sent as IPv6.
 */
/* Append one TLV of TYPE with LEN bytes of VALUE at P; returns the end. */
static unsigned char *tlv(unsigned char *p, unsigned type, const void *value, size_t len)
{
    p[0] = (unsigned char)type;
    p[1] = (unsigned char)(len >> 8);
    p[2] = (unsigned char)len;
    memcpy(p + 3, value, len);
    return p + 3 + len;
}

/* The length of the SSL TLV for TLS (0 for none). */
static size_t ssl_tlv_len(const struct proxy_tls *tls)
{
    if (tls == NULL)
        return 0;
    size_t vlen = strnlen(tls->version ? tls->version : "", PROXY_TLS_TEXT_MAX);
    size_t clen = strnlen(tls->cipher ? tls->cipher : "", PROXY_TLS_TEXT_MAX);
    return 3 + 5 + (vlen ? 3 + vlen : 0) + (clen ? 3 + clen : 0);
}

/* The PP2_TYPE_SSL TLV for TLS at P; returns the end. */
static unsigned char *ssl_tlv(unsigned char *p, const struct proxy_tls *tls)
{
    unsigned char *start = p, *q = p + 3;
    size_t vlen = strnlen(tls->version ? tls->version : "", PROXY_TLS_TEXT_MAX);
    size_t clen = strnlen(tls->cipher ? tls->cipher : "", PROXY_TLS_TEXT_MAX);

    *q++ = 0x01;              /* PP2_CLIENT_SSL */
    memcpy(q, "\0\0\0\1", 4); /* verify: no client certificate */
    q += 4;
    if (vlen)
        q = tlv(q, 0x21, tls->version, vlen); /* PP2_SUBTYPE_SSL_VERSION */
    if (clen)
        q = tlv(q, 0x23, tls->cipher, clen); /* PP2_SUBTYPE_SSL_CIPHER */
    size_t len = (size_t)(q - start - 3);
    start[0] = 0x20; /* PP2_TYPE_SSL */
    start[1] = (unsigned char)(len >> 8);
    start[2] = (unsigned char)len;
    return q;
}

size_t proxy_write(unsigned char *buf, size_t cap, int version, const struct endpoint *client,
                   const struct endpoint *server, const struct proxy_tls *tls)
{
    bool v4 = client->sa.ss_family == AF_INET && server->sa.ss_family == AF_INET;
    unsigned char ca[16], sa[16];
    uint16_t cp = port_of(client), sp = port_of(server);

    addr16(client, ca);
    addr16(server, sa);
    if (version == 1) {
        char c[INET6_ADDRSTRLEN], s[INET6_ADDRSTRLEN];
        if (v4) {
            inet_ntop(AF_INET, ca + 12, c, sizeof(c));
            inet_ntop(AF_INET, sa + 12, s, sizeof(s));
        } else {
            inet_ntop(AF_INET6, ca, c, sizeof(c));
            inet_ntop(AF_INET6, sa, s, sizeof(s));
        }
        int n = snprintf((char *)buf, cap, "PROXY %s %s %s %u %u\r\n", v4 ? "TCP4" : "TCP6", c, s,
                         ntohs(cp), ntohs(sp));
        return n > 0 && (size_t)n < cap ? (size_t)n : 0;
    }
    size_t alen = v4 ? 12 : 36;
    if (cap < 16 + alen + ssl_tlv_len(tls))
        return 0;
    memcpy(buf, v2sig, 12);
    buf[12] = 0x21; /* version 2, PROXY */
    buf[13] = v4 ? 0x11 : 0x21;
    buf[14] = 0;
    buf[15] = (unsigned char)alen;
    unsigned char *a = buf + 16;
    if (v4) {
        memcpy(a, ca + 12, 4);
        memcpy(a + 4, sa + 12, 4);
        a += 8;
    } else {
        memcpy(a, ca, 16);
        memcpy(a + 16, sa, 16);
        a += 32;
    }
    memcpy(a, &cp, 2);
    memcpy(a + 2, &sp, 2);
    a += 4;
    if (tls)
        a = ssl_tlv(a, tls);
    size_t len = (size_t)(a - buf - 16);
    buf[14] = (unsigned char)(len >> 8);
    buf[15] = (unsigned char)len;
    return 16 + len;
}

/* A header without endpoints: v2 LOCAL, v1 UNKNOWN (see proxy.h). */
size_t proxy_write_local(unsigned char *buf, size_t cap, int version)
{
    static const char v1[] = "PROXY UNKNOWN\r\n";

    if (version == 1) {
        if (cap < sizeof(v1) - 1)
            return 0;
        memcpy(buf, v1, sizeof(v1) - 1);
        return sizeof(v1) - 1;
    }
    if (cap < 16)
        return 0;
    memcpy(buf, v2sig, 12);
    buf[12] = 0x20; /* version 2, LOCAL */
    buf[13] = 0x00; /* AF_UNSPEC */
    buf[14] = buf[15] = 0;
    return 16;
}
