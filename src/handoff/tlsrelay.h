/*
 * tlsrelay - join two sockets in user space, either or both under TLS
 *
 * A client that negotiated STARTTLS with mxscreen's SMTP engine and is
 * then replayed to the backend keeps its TLS session; with
 * mxscreen_backend_tls the backend connection is under TLS too.
 * tlsrelay_start() takes the client socket with its established SSL (or
 * NULL), the backend socket with its SSL (or NULL), and the client bytes
 * not yet sent on (PENDING, copied), and moves bytes both ways, decrypting
 * and encrypting in user space.  Each direction holds at most
 * TLSRELAY_BUF bytes: a side that does not read stops the other side's
 * reading, never grows memory.
 *
 * The ends are as in relay.h: when one side's stream ends (close_notify,
 * or its socket's end of file), the other side gets close_notify and its
 * sending half is shut down once everything is out; a side that can no
 * longer be written to is still read to its end (a reply sent just
 * before a reset still reaches the other side), and a side whose reading
 * breaks counts as ended, what it sent before still going on.  When both directions have ended, or
 * after IDLE seconds without a byte either way, everything is closed and FN(CTX, why) is called,
 * after which the relay has freed itself.
 */
#ifndef MXS_TLSRELAY_H
#define MXS_TLSRELAY_H

#include <event2/event.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <time.h>

#include "handoff/relay.h"

#define TLSRELAY_BUF 16384

struct tlsrelay;

struct tlsrelay *tlsrelay_start(struct event_base *base, int cfd, SSL *cssl, int bfd, SSL *bssl,
                                const char *pending, size_t npending, time_t idle, relay_done_fn fn,
                                void *ctx);

#endif
