/*
 * session - one client connection, from accept to hand-off or goodbye
 *
 * session_accept() takes a freshly accepted, non-blocking socket (with the
 * peer's address from accept(), and the local one when the listener's own
 * address says it, else NULL: it is asked for) and runs
 * postscreen's connection flow (spec §1.2): the upstream PROXY header when
 * configured, the CONNECT line, the stress check, the per-client
 * connection limit, the hand-off queue limit, the permanent access list,
 * the temporary allowlist (cache), the allowlist-interface veto, the
 * screening queue limit, then the SMTP engine (engine.h) when a deep test
 * is due or the client must not be handed off, and finally the
 * conclusion (spec §1.5: PASS NEW/OLD, the cache update) and hand-off
 * (handoff.h) or DISCONNECT.  With mxscreen_deep_test_handoff = replay, a
 * client that passes the deep tests in the engine is concluded at that
 * RCPT and replayed to the backend in the same connection.  Every way out logs postscreen's line
 * and, where postscreen does, sends its reply; nothing a client does can end the process.
 *
 * struct server is the state shared by all sessions of the process: the
 * event base, the current settings, the per-address table and the queue
 * counters.  It is owned by main.
 */
#ifndef MXS_SESSION_H
#define MXS_SESSION_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

#include "cache/cache.h"
#include "session/ipstate.h"
#include "session/settings.h"
#include "smtp/caps.h"

struct server {
    struct event_base *base;             /* the event loop */
    struct settings *st;                 /* settings for new sessions (a reference) */
    struct iptab *ips;                   /* per-address state */
    size_t sessions;                     /* sessions alive */
    size_t check_queue;                  /* sessions being screened or in hand-off */
    size_t post_queue;                   /* sessions in hand-off */
    size_t relays;                       /* sessions relayed to the backend */
    bool respectful_noticed;             /* the respectful_logging notice was logged */
    bool stress;                         /* in STRESS mode (spec §1.10) */
    struct cache *cache;                 /* the temporary allowlist */
    struct dnsbl *dnsbl;                 /* DNSBL lookups, or NULL */
    struct ehlo_caps backend_caps;       /* the backend's EHLO keywords (replay) */
    void (*on_idle)(struct server *srv); /* called when sessions drops to 0 */
};

void session_accept(struct server *srv, int fd, const struct sockaddr *peer, socklen_t peerlen,
                    const struct sockaddr *local, socklen_t locallen);

#endif
