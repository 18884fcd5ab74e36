/*
 * handoff - give a screened client to the real MTA
 *
 * handoff_start() connects to mxscreen_backend and, by mxscreen_handoff:
 *   proxy:   sends a PROXY v2 (or v1) header with the client's real
 *            endpoints, waits for the backend's first byte (its greeting),
 *            then joins the sockets (relay.h);
 *   xclient: reads the backend's greeting, sends EHLO, checks that XCLIENT
 *            is offered, sends XCLIENT ADDR=... PORT=... (and the other
 *            attributes the backend lists), relays the backend's new 220
 *            greeting to the client and joins the sockets;
 *   pass:    sends the client socket (SCM_RIGHTS) and postscreen's four
 *            attributes to Postfix's smtpd pass service and waits, as
 *            postscreen does, for smtpd to close the connection.
 *
 * Each step has a time limit (mxscreen_backend_connect_timeout, then
 * mxscreen_backend_timeout).  FN(CTX, event) reports progress:
 *   HANDOFF_FAIL_CONNECT  no connection (reply "All server ports are busy")
 *   HANDOFF_FAIL_PASS     connected, but the hand-off failed ("No system
 *                         resources"); a warning says why
 *   HANDOFF_TAKEN         the backend has the client
 *   HANDOFF_ENDED         the relayed session is over (proxy, xclient), or
 *                         the pass service let go (pass)
 * The client socket stays the caller's until HANDOFF_TAKEN or
 * HANDOFF_ENDED; from then on the hand-off has it (and closes it).  After
 * a FAIL_* or ENDED event the hand-off has freed itself.  Sessions still
 * open when mxscreen_shutdown_timeout ends are closed by the process exit.
 *
 * handoff_replay() hands off a client that passed the deep tests inside
 * mxscreen's SMTP engine, in proxy or xclient mode: it connects, sends the
 * PROXY header (v2 carries the client's TLS version and cipher as SSL
 * TLVs) or does the XCLIENT dialogue, reads the greeting, replays the
 * client's EHLO or HELO (learning the backend's keywords into LEARN),
 * checks that the backend offers what the client's MAIL and RCPT
 * parameters use, replays MAIL and then RCPT, and reports:
 *   HANDOFF_REPLIED       the backend answered RCPT, or refused MAIL;
 *                         handoff_reply() gives that reply for the client
 *                         (and "MAIL" when it was MAIL that was refused).
 *                         The caller sends it, then hands the socket over
 *                         with handoff_join(): TAKEN, and later ENDED.
 *   HANDOFF_FAIL_CONNECT, HANDOFF_FAIL_PASS
 *                         no usable answer (down, slow, not 2xx at the
 *                         greeting or EHLO, broken, or a keyword missing);
 *                         a warning says why; the client is the caller's.
 * handoff_join() takes the client socket, its TLS session (or NULL) and
 * the client's bytes not yet sent on (copied): the relay is splice(2)
 * for plaintext, tlsrelay.h for TLS.
 *
 * handoff_probe() connects as mxscreen itself (a PROXY header of its own
 * endpoints, or before any XCLIENT), says EHLO, notes the keywords in
 * LEARN and QUITs: HANDOFF_ENDED when done, FAIL_* when not, with the
 * reason in WHY instead of a warning (the caller logs changes only).
 * handoff_cancel() abandons a probe (or any hand-off that does not own a
 * client socket) without a report.
 */
#ifndef MXS_HANDOFF_H
#define MXS_HANDOFF_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>

#include "net/addr.h"
#include "session/settings.h"

enum handoff_event {
    HANDOFF_FAIL_CONNECT,
    HANDOFF_FAIL_PASS,
    HANDOFF_TAKEN,
    HANDOFF_ENDED,
    HANDOFF_REPLIED,
};

/* What a replayed client said (copied by handoff_replay()). */
struct handoff_replay {
    bool ehlo;               /* EHLO, or HELO */
    const char *helo;        /* its argument, or NULL: neither was sent */
    const char *mail;        /* the MAIL command line */
    const char *rcpt;        /* the RCPT command line */
    const char *tls_version; /* the client's TLS version, or NULL */
    const char *tls_cipher;  /* ...and cipher */
};

struct ehlo_caps;
struct ssl_st;

typedef void (*handoff_fn)(void *ctx, enum handoff_event ev);

struct handoff;

struct handoff *handoff_start(struct event_base *base, const struct settings *st, int client_fd,
                              const struct endpoint *client, const struct endpoint *server,
                              handoff_fn fn, void *ctx);
struct handoff *handoff_replay(struct event_base *base, const struct settings *st,
                               const struct endpoint *client, const struct endpoint *server,
                               const struct handoff_replay *r, struct ehlo_caps *learn,
                               handoff_fn fn, void *ctx);
const char *handoff_reply(const struct handoff *h, size_t *len, const char **refused);
void handoff_join(struct handoff *h, int client_fd, struct ssl_st *ssl, const char *pending,
                  size_t npending);
struct handoff *handoff_probe(struct event_base *base, const struct settings *st,
                              struct ehlo_caps *learn, char *why, size_t whylen, handoff_fn fn,
                              void *ctx);
void handoff_cancel(struct handoff *h);

#endif
