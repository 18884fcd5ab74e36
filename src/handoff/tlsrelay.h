/*
 * tlsrelay - join a client's TLS session to a plaintext backend socket
 *
 * A client that negotiated STARTTLS with mxscreen's SMTP engine and is
 * then replayed to the backend keeps its TLS session: tlsrelay_start()
 * takes the client socket with its established SSL, the backend socket,
 * and the client bytes already decrypted but not yet executed (PENDING,
 * copied), and moves bytes both ways, decrypting and encrypting in user
 * space.  Each direction holds at most TLSRELAY_BUF bytes: a side that
 * does not read stops the other side's reading, never grows memory.
 *
 * The ends are as in relay.h: when the client's TLS stream ends (or its
 * socket is closed), the backend's sending half is shut down once the
 * buffer is drained; when the backend ends, mxscreen sends close_notify
 * and shuts down the client's sending half; when both directions have
 * ended, or on an error, or after IDLE seconds without a byte either way,
 * everything is closed and FN(CTX, why) is called, after which the relay
 * has freed itself.
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

struct tlsrelay *tlsrelay_start(struct event_base *base, SSL *ssl, int cfd, int bfd,
                                const char *pending, size_t npending, time_t idle, relay_done_fn fn,
                                void *ctx);

#endif
