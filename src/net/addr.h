/*
 * addr - socket endpoints, address text and CIDR patterns
 *
 * struct endpoint holds one side of a connection with its printable form,
 * made once at accept time (IPv4-mapped IPv6 is rewritten to plain IPv4, as
 * postscreen does).  struct cidr is an address/prefix pattern as used by
 * mynetworks, cidr: tables and the allowlist interfaces; cidr_parse() takes
 * Postfix's forms ("a.b.c.d", "a.b.c.d/n", "[v6]", "[v6]/n", bare "v6/n")
 * and refuses patterns with host bits set.
 *
 * hostport_parse() splits "host:port", "[v6]:port" and "/unix/path" as used
 * by mxscreen_listen and mxscreen_backend.
 *
 * endpoint_key() names the client as the allowlist and the per-client
 * connection limit count it: its address, or with a prefix shorter than
 * the address (mxscreen_cache_ipv4_prefix, mxscreen_cache_ipv6_prefix) its
 * network, as "192.0.2.0/24" or "2001:db8:1:2::/64".
 *
 * All functions are pure (no allocation, no I/O) and report errors through
 * a caller-supplied buffer.
 */
#ifndef MXS_ADDR_H
#define MXS_ADDR_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

/* An IPv4 or IPv6 socket address, no bigger than it must be (a session
 * holds two); ss_family aliases sin_family and sin6_family. */
union endpoint_sa {
    sa_family_t ss_family;
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
};

struct endpoint {
    union endpoint_sa sa;        /* address, IPv4-mapped rewritten to IPv4 */
    socklen_t salen;             /* length of sa */
    char addr[INET6_ADDRSTRLEN]; /* printable address, no brackets */
    char port[8];                /* printable port */
};

struct cidr {
    int family;            /* AF_INET or AF_INET6 */
    unsigned char net[16]; /* network bytes (4 or 16 used) */
    int bits;              /* prefix length */
};

/* A parsed "host:port" or UNIX socket path. */
struct hostport {
    struct sockaddr_storage sa; /* numeric address, or AF_UNIX path */
    socklen_t salen;
    bool wildcard; /* "*:port" or ":port": every address family */
};

int endpoint_set(struct endpoint *ep, const struct sockaddr *sa, socklen_t len);
int cidr_parse(const char *text, struct cidr *out, char *err, size_t errlen);
bool cidr_match(const struct cidr *c, const struct sockaddr *sa);
bool addr_parse(const char *text, struct sockaddr_storage *ss, socklen_t *len);
int hostport_parse(const char *text, struct hostport *out, char *err, size_t errlen);
void endpoint_key(const struct endpoint *ep, int v4bits, int v6bits, char *buf, size_t len);

/* The longest key endpoint_key() makes: an IPv6 network and "/nnn". */
#define ENDPOINT_KEY_MAX (INET6_ADDRSTRLEN + 4)

#endif
