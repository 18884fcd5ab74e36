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
 * ENGINE_CLOSED.  Nothing the client sends can grow memory past
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
    ENGINE_END,    /* the session is over: conclude it */
    ENGINE_CLOSED, /* the socket is closed and the engine freed */
};

typedef void (*engine_fn)(void *ctx, enum engine_event ev);

struct engine_conf;
struct engine;
struct reply_conf;

struct engine_args {
    struct event_base *base;
    const struct engine_conf *cf;
    int fd;                        /* the client socket, now the engine's */
    const struct endpoint *client; /* the client's real endpoint */
    struct verdict *v;             /* the session's verdict */
    time_t *stamps;                /* the client's expiry stamps */
    const bool *stress;            /* the server's stress state */
    bool x21;                      /* hand-off failed after the teaser */
    engine_fn fn;                  /* progress report */
    void *ctx;                     /* FN's context, owned by the caller */
};

struct engine_conf *engine_conf_build(const struct conf *cf, char *err, size_t errlen);
void engine_conf_free(struct engine_conf *ec);
void engine_conf_warnings(const struct engine_conf *ec);
struct engine *engine_start(const struct engine_args *a);
const struct reply_conf *engine_reply_conf(const struct engine_conf *ec);

#endif
