/*
 * engine - postscreen's built-in SMTP engine and the deep protocol tests
 *
 * A client that still has a deep test due (pipelining, non-SMTP command,
 * bare newline), or that must not be handed off (a failed "enforce" test,
 * a denylist "enforce", an allowlist veto, the X21 path), talks to this
 * engine.  It answers every command as postscreen does (spec §3.3), never
 * accepts mail, and watches how the client behaves (spec §1.4):
 *
 *   engine_conf_build()  once per configuration: the prepared replies,
 *                        EHLO keyword lists, command filter, forbidden
 *                        commands, footers, limits, actions and TTLs, and
 *                        the TLS context for STARTTLS.  NULL with ERR set
 *                        (naming the parameter) when a value is wrong.
 *                        At a reload, PREV (the running configuration)
 *                        lends its TLS context when the key can no longer
 *                        be read (mxscreen runs unprivileged by then).
 *   engine_start()       takes over the client socket, sends the greeting
 *                        (none to a client that failed the pregreet test)
 *                        and runs until the session ends.
 *
 * The engine updates the session's struct verdict and the client's
 * expiry stamps as tests pass or fail.  FN(CTX, ENGINE_END) reports that
 * the session is over (the final reply, if any, is queued and the verdict
 * is complete: conclude it, log DISCONNECT); the engine then flushes what
 * it has queued, closes the socket, frees itself and reports
 * ENGINE_CLOSED.  The caller must not touch the engine after
 * ENGINE_CLOSED.
 *
 * Replay (mxscreen_deep_test_handoff = replay, not in pass mode): when a
 * client with no failure has passed every due test at a RCPT command, the
 * engine pauses (no reading, no writing, no time limit) and reports
 * ENGINE_REPLAY; engine_replay_info() says what the client said.  The
 * caller then calls engine_replay_done() exactly once, from the loop:
 * with the backend's reply, which goes to the client as is, after which
 * the engine reports ENGINE_DETACHED (engine_handover() gives the socket,
 * the TLS session and unread input to the caller) and frees itself
 * without closing anything; or with NULL when the backend failed, and
 * the engine answers that RCPT as postscreen does and goes on.  A client
 * that may be replayed is offered only the EHLO keywords the backend
 * offers too (struct ehlo_caps, when known).
 *
 * Nothing the client sends can grow memory past
 * line_length_limit + 2 bytes of line, a 4 KiB read buffer and about
 * 4 KiB of queued replies.
 */
#ifndef MXS_ENGINE_H
#define MXS_ENGINE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "conf/conf.h"
#include "net/addr.h"
#include "session/verdict.h"

enum engine_event {
    ENGINE_END,      /* the session is over: conclude it */
    ENGINE_CLOSED,   /* the socket is closed and the engine freed */
    ENGINE_REPLAY,   /* every due test passed at RCPT: ask the backend */
    ENGINE_DETACHED, /* the backend's reply is out: take the socket */
};

/* What the client said that the backend must hear (ENGINE_REPLAY). */
struct engine_replay {
    bool ehlo;               /* EHLO (true) or HELO */
    const char *helo;        /* its argument, or NULL when neither was sent */
    const char *mail;        /* the MAIL command line, parameters included */
    const char *rcpt;        /* the RCPT command line */
    const char *tls_version; /* "TLSv1.3" when the client uses TLS, else NULL */
    const char *tls_cipher;  /* the cipher's name, or NULL */
};

/* What the caller takes over at ENGINE_DETACHED. */
struct engine_handover {
    int fd;              /* the client socket */
    struct ssl_st *ssl;  /* its TLS session (OpenSSL's SSL), or NULL */
    const char *pending; /* client bytes read and not yet executed */
    size_t npending;     /* ...their length */
};

typedef void (*engine_fn)(void *ctx, enum engine_event ev);

struct engine_conf;
struct engine;
struct reply_conf;
struct ehlo_caps;
struct ssl_st;

struct engine_args {
    struct event_base *base;
    const struct engine_conf *cf;
    int fd;                          /* the client socket, now the engine's */
    const struct endpoint *client;   /* the client's real endpoint */
    struct verdict *v;               /* the session's verdict */
    time_t *stamps;                  /* the client's expiry stamps */
    const bool *stress;              /* the server's stress state */
    const struct ehlo_caps *backend; /* what the backend offers (caps.h), or NULL */
    bool x21;                        /* hand-off failed after the teaser */
    engine_fn fn;                    /* progress report */
    void *ctx;                       /* FN's context, owned by the caller */
};

struct engine_conf *engine_conf_build(const struct conf *cf, const struct engine_conf *prev,
                                      char *err, size_t errlen);
void engine_conf_free(struct engine_conf *ec);
void engine_conf_warnings(const struct engine_conf *ec);
struct engine *engine_start(const struct engine_args *a);
const struct engine_replay *engine_replay_info(const struct engine *e);
void engine_replay_done(struct engine *e, const char *reply, size_t len);
const struct engine_handover *engine_handover(const struct engine *e);
const struct reply_conf *engine_reply_conf(const struct engine_conf *ec);

#endif
