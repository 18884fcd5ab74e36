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
 * HANDOFF_ENDED; from then on the hand-off has it (and closes it).  After a FAIL_* or ENDED event
 * the hand-off has freed itself.  Sessions still open when
 * mxscreen_shutdown_timeout ends are closed by the process exit.
 */
#ifndef MXS_HANDOFF_H
#define MXS_HANDOFF_H

#include <event2/event.h>

#include "net/addr.h"
#include "session/settings.h"

enum handoff_event {
    HANDOFF_FAIL_CONNECT,
    HANDOFF_FAIL_PASS,
    HANDOFF_TAKEN,
    HANDOFF_ENDED,
};

typedef void (*handoff_fn)(void *ctx, enum handoff_event ev);

struct handoff;

struct handoff *handoff_start(struct event_base *base, const struct settings *st, int client_fd,
                              const struct endpoint *client, const struct endpoint *server,
                              handoff_fn fn, void *ctx);

#endif
