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
 * proxy_write() builds the header mxscreen sends to its backend.
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
/* The longest header proxy_write() makes (v2 over IPv6: 16 + 36). */
#define PROXY_WRITE_MAX 108

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
                   const struct endpoint *server);

#endif
