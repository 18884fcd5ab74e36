/*
 * addr - socket endpoints, address text and CIDR patterns; see addr.h.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "net/addr.h"

/* Fill EP from SA, rewriting IPv4-mapped IPv6 to IPv4; 0 or -1. */
int endpoint_set(struct endpoint *ep, const struct sockaddr *sa, socklen_t len)
{
    memset(ep, 0, sizeof(*ep));
    if (sa->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)sa;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            struct sockaddr_in *s4 = (struct sockaddr_in *)&ep->sa;
            s4->sin_family = AF_INET;
            s4->sin_port = s6->sin6_port;
            memcpy(&s4->sin_addr, s6->sin6_addr.s6_addr + 12, 4);
            ep->salen = sizeof(*s4);
        } else {
            memcpy(&ep->sa, s6, sizeof(*s6));
            ep->salen = sizeof(*s6);
        }
    } else if (sa->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        memcpy(&ep->sa, sa, sizeof(struct sockaddr_in));
        ep->salen = sizeof(struct sockaddr_in);
    } else {
        return -1;
    }
    if (ep->sa.ss_family == AF_INET) {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)&ep->sa;
        inet_ntop(AF_INET, &s4->sin_addr, ep->addr, sizeof(ep->addr));
        snprintf(ep->port, sizeof(ep->port), "%u", ntohs(s4->sin_port));
    } else {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)&ep->sa;
        inet_ntop(AF_INET6, &s6->sin6_addr, ep->addr, sizeof(ep->addr));
        snprintf(ep->port, sizeof(ep->port), "%u", ntohs(s6->sin6_port));
    }
    return 0;
}

/* Parse a numeric IPv4 or IPv6 address (no brackets) into SS. */
bool addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *s4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, text, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        *len = sizeof(*s4);
        return true;
    }
    if (inet_pton(AF_INET6, text, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        *len = sizeof(*s6);
        return true;
    }
    return false;
}

/*
 * Parse a CIDR pattern.  Brackets around IPv6 are optional; a missing
 * prefix length means a single host.  Host bits must be zero, as Postfix
 * requires, so that a typo cannot silently widen a pattern.
 */
int cidr_parse(const char *text, struct cidr *out, char *err, size_t errlen)
{
    char buf[INET6_ADDRSTRLEN + 8];
    const char *slash = strchr(text, '/');
    size_t alen = slash ? (size_t)(slash - text) : strlen(text);

    memset(out, 0, sizeof(*out));
    if (alen >= sizeof(buf) || alen == 0) {
        snprintf(err, errlen, "bad address pattern: \"%s\"", text);
        return -1;
    }
    memcpy(buf, text, alen);
    buf[alen] = '\0';
    char *a = buf;
    if (a[0] == '[') {
        if (alen < 3 || a[alen - 1] != ']') {
            snprintf(err, errlen, "bad address pattern: \"%s\"", text);
            return -1;
        }
        a[alen - 1] = '\0';
        a++;
        if (strchr(a, ':') == NULL) {
            snprintf(err, errlen, "bad address pattern: \"%s\"", text);
            return -1;
        }
    }
    if (inet_pton(AF_INET, a, out->net) == 1) {
        out->family = AF_INET;
        out->bits = 32;
    } else if (inet_pton(AF_INET6, a, out->net) == 1) {
        out->family = AF_INET6;
        out->bits = 128;
    } else {
        snprintf(err, errlen, "bad address pattern: \"%s\"", text);
        return -1;
    }
    if (slash) {
        char *end;
        errno = 0;
        long bits = strtol(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || errno || bits < 0 ||
            bits > out->bits) {
            snprintf(err, errlen, "bad net/mask pattern: \"%s\"", text);
            return -1;
        }
        out->bits = (int)bits;
    }
    int nbytes = out->family == AF_INET ? 4 : 16;
    bool hostbits = false;
    for (int i = 0; i < nbytes; i++) {
        int keep = out->bits - i * 8;
        unsigned char mask = keep >= 8 ? 0xff : keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
        hostbits |= (out->net[i] & ~mask) != 0;
        out->net[i] &= mask;
    }
    if (hostbits) {
        /* Tell the caller the network the user probably meant. */
        char net[INET6_ADDRSTRLEN];
        inet_ntop(out->family, out->net, net, sizeof(net));
        snprintf(err, errlen,
                 "non-null host address bits in \"%s\", perhaps you should use \"%s/%d\" "
                 "instead",
                 text, net, out->bits);
        return -1;
    }
    return 0;
}

/* Does SA (AF_INET or AF_INET6) fall inside C? */
bool cidr_match(const struct cidr *c, const struct sockaddr *sa)
{
    const unsigned char *p;

    if (sa->sa_family != c->family)
        return false;
    if (sa->sa_family == AF_INET)
        p = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
    else
        p = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
    int full = c->bits / 8, rest = c->bits % 8;
    if (memcmp(p, c->net, (size_t)full) != 0)
        return false;
    if (rest == 0)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (p[full] & mask) == c->net[full];
}

/* Parse a port number 1..65535. */
static int port_parse(const char *s, unsigned *port)
{
    char *end;

    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s < '0' || *s > '9' || *end != '\0' || errno || v < 1 || v > 65535)
        return -1;
    *port = (unsigned)v;
    return 0;
}

/*
 * Parse "a.b.c.d:port", "[v6]:port", "*:port", ":port" or "/path" (a UNIX
 * socket).  Host names are not resolved: mxscreen must not depend on DNS
 * to start.
 */
int hostport_parse(const char *text, struct hostport *out, char *err, size_t errlen)
{
    char host[INET6_ADDRSTRLEN + 2];
    const char *colon;
    unsigned port;

    memset(out, 0, sizeof(*out));
    if (text[0] == '/') {
        struct sockaddr_un *su = (struct sockaddr_un *)&out->sa;
        if (strlen(text) >= sizeof(su->sun_path)) {
            snprintf(err, errlen, "UNIX socket path too long: \"%s\"", text);
            return -1;
        }
        su->sun_family = AF_UNIX;
        strcpy(su->sun_path, text);
        out->salen = sizeof(*su);
        return 0;
    }
    if (text[0] == '[') {
        const char *rb = strchr(text, ']');
        if (rb == NULL || rb[1] != ':' || (size_t)(rb - text - 1) >= sizeof(host)) {
            snprintf(err, errlen, "bad address: \"%s\" (expected [ipv6]:port)", text);
            return -1;
        }
        memcpy(host, text + 1, (size_t)(rb - text - 1));
        host[rb - text - 1] = '\0';
        colon = rb + 1;
        if (strchr(host, ':') == NULL) {
            snprintf(err, errlen, "bad address: \"%s\" (expected [ipv6]:port)", text);
            return -1;
        }
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL || (size_t)(colon - text) >= sizeof(host) ||
            memchr(text, ':', (size_t)(colon - text)) != NULL) {
            snprintf(err, errlen, "bad address: \"%s\" (expected host:port, [ipv6]:port or /path)",
                     text);
            return -1;
        }
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
    }
    if (port_parse(colon + 1, &port) < 0) {
        snprintf(err, errlen, "bad port in \"%s\"", text);
        return -1;
    }
    if (host[0] == '\0' || strcmp(host, "*") == 0) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&out->sa;
        s6->sin6_family = AF_INET6;
        s6->sin6_addr = in6addr_any;
        s6->sin6_port = htons((unsigned short)port);
        out->salen = sizeof(*s6);
        out->wildcard = true;
        return 0;
    }
    if (!addr_parse(host, &out->sa, &out->salen)) {
        snprintf(err, errlen, "bad address in \"%s\" (a numeric IPv4 or IPv6 address is needed)",
                 text);
        return -1;
    }
    if (out->sa.ss_family == AF_INET)
        ((struct sockaddr_in *)&out->sa)->sin_port = htons((unsigned short)port);
    else
        ((struct sockaddr_in6 *)&out->sa)->sin6_port = htons((unsigned short)port);
    return 0;
}

/* The key the allowlist and the connection limit use for EP; see addr.h. */
void endpoint_key(const struct endpoint *ep, int v4bits, int v6bits, char *buf, size_t len)
{
    unsigned char a[16];
    int family = ep->sa.ss_family, bits, size;

    if (family == AF_INET) {
        memcpy(a, &((const struct sockaddr_in *)&ep->sa)->sin_addr, 4);
        bits = v4bits;
        size = 32;
    } else {
        memcpy(a, &((const struct sockaddr_in6 *)&ep->sa)->sin6_addr, 16);
        bits = v6bits;
        size = 128;
    }
    if (bits <= 0 || bits >= size) {
        snprintf(buf, len, "%s", ep->addr);
        return;
    }
    for (int i = 0; i < size / 8; i++) {
        int keep = bits - i * 8;
        a[i] &= keep >= 8 ? 0xff : keep <= 0 ? 0 : (unsigned char)(0xff << (8 - keep));
    }
    char text[INET6_ADDRSTRLEN];
    inet_ntop(family, a, text, sizeof(text));
    snprintf(buf, len, "%s/%d", text, bits);
}
