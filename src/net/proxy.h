/*
 * proxy - the PROXY protocol, versions 1 and 2: parser and writer
 *
 * proxy_parse() reads an upstream header from the bytes a load balancer
 * sent first.  It never reads past the header: it reports the header's
 * length so that the caller consumes exactly that many bytes and leaves
 * the client's SMTP bytes in place (postscreen peeks; so do we).  The
 * result is PROXY_MORE while the bytes so far are a valid prefix,
 * PROXY_DONE with the endpoints (or "local" for a v2 LOCAL command, a
 * health check: use the socket's own endpoints), or PROXY_FAIL with one of
 * postscreen's reasons ("bad or missing protocol header", ...).  v1's
 * UNKNOWN family is refused, as postscreen does, so that address-based
 * access control cannot be bypassed.  v2 TLVs are skipped.
 *
 * proxy_write() builds the header mxscreen sends to its backend; with
 * TLS facts, a v2 header carries a PP2_TYPE_SSL TLV (client flag SSL,
 * verify 1: no client certificate) with the version and cipher sub-TLVs.
 * v1 has no room for them.  proxy_write_local() builds a header with no
 * endpoints (v2 LOCAL, v1 UNKNOWN), for a connection of mxscreen's own
 * over a UNIX socket: the receiver uses the socket's own endpoints.
 *
 * Pure functions over (pointer, length); no allocation, no I/O.
 */
#ifndef MXS_PROXY_H
#define MXS_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#include "net/addr.h"

/* postscreen peeks at most this many bytes for the header. */
#define PROXY_PEEK_MAX 536
/* The longest header proxy_write() makes: v2 over IPv6 (16 + 36) and the
 * SSL TLV (3 + 5, then 3 + PROXY_TLS_TEXT_MAX for each text). */
#define PROXY_WRITE_MAX    (16 + 36 + 8 + 2 * (3 + 64))
#define PROXY_TLS_TEXT_MAX 64

/* TLS facts for the v2 SSL TLV (longer texts are cut). */
struct proxy_tls {
    const char *version; /* e.g. "TLSv1.3" */
    const char *cipher;  /* e.g. "TLS_AES_256_GCM_SHA384" */
};

enum proxy_status {
    PROXY_MORE, /* a valid prefix: wait for more bytes */
    PROXY_DONE, /* a complete header */
    PROXY_FAIL, /* not a valid header; see reason */
};

struct proxy_result {
    size_t len;                  /* header length, to consume */
    bool local;                  /* v2 LOCAL: keep the socket's endpoints */
    struct sockaddr_storage src; /* client, when !local */
    socklen_t srclen;
    struct sockaddr_storage dst; /* server, when !local */
    socklen_t dstlen;
    const char *reason; /* why PROXY_FAIL */
};

enum proxy_status proxy_parse(const unsigned char *buf, size_t len, struct proxy_result *r);
size_t proxy_write(unsigned char *buf, size_t cap, int version, const struct endpoint *client,
                   const struct endpoint *server, const struct proxy_tls *tls);
size_t proxy_write_local(unsigned char *buf, size_t cap, int version);

#endif
