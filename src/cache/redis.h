/*
 * redis - the allowlist's link to Redis, through hiredis
 *
 * redis_target_parse() reads what follows "redis:" in postscreen_cache_map:
 * "HOST:PORT[/DB]", "[IPV6]:PORT[/DB]", "HOST" (port 6379) or
 * "unix:/PATH"; the target's name ("redis:127.0.0.1:6379/0") is what log
 * lines show.  redis_target_resolve() turns a host name into an address,
 * blocking, at start-up: the link never resolves (hiredis would block).
 *
 * redis_sync_open() connects with blocking calls (start-up, the control
 * tool): connect, AUTH, SELECT, PING, each within the timeout.  It returns
 * NULL with ERR; *REFUSED then tells a refusal by the server (a wrong
 * password, a bad database: a configuration error) from a server that
 * could not be reached (redis_refusal() tells which error replies refuse:
 * NOAUTH, WRONGPASS, NOPERM, and any error to AUTH or SELECT; BUSY,
 * LOADING, MASTERDOWN and the like only mean "not now").
 *
 * The link (redis_link_new()) runs on the event loop with hiredis's async
 * API and its libevent adapter; nothing blocks.  Every command has the
 * deadline TIMEOUT_MS: a command that misses it, or a connection that
 * breaks, takes the link down; it comes back by itself with back-off
 * (0.5 s doubling up to 30 s), saying AUTH, SELECT and PING again.
 * STATE_FN(CTX, up, reason) is called at each change, once per change.
 * redis_command() sends ARGV while the link is up and calls FN(ARG, reply)
 * exactly once, later: reply NULL when there was none (deadline, broken
 * connection, redis_link_free()); it returns -1, and FN is never called,
 * when the link is not up.
 */
#ifndef MXS_REDIS_H
#define MXS_REDIS_H

#include <event2/event.h>
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#define REDIS_NAME_MAX 512

struct redis_target {
    char host[256]; /* host name or address; "" for a UNIX socket */
    char addr[64];  /* the address the link connects to (redis_target_resolve()) */
    int port;
    char path[256]; /* UNIX socket */
    int db;
    char name[REDIS_NAME_MAX]; /* "redis:HOST:PORT/DB" or "redis:unix:/PATH" */
};

struct redis_opts {
    const char *password; /* "" or NULL: no AUTH */
    const char *user;     /* "" or NULL: AUTH with the password only */
    int timeout_ms;
};

int redis_target_parse(const char *spec, struct redis_target *t, char *err, size_t errlen);
int redis_target_resolve(struct redis_target *t, char *err, size_t errlen);
bool redis_refusal(const char *command, const char *text);
redisContext *redis_sync_open(const struct redis_target *t, const struct redis_opts *o,
                              bool *refused, char *err, size_t errlen);

struct redis_link;
typedef void redis_state_fn(void *ctx, bool up, const char *reason);
typedef void redis_reply_fn(void *arg, const redisReply *reply);

struct redis_link *redis_link_new(struct event_base *base, const struct redis_target *t,
                                  const struct redis_opts *o, redis_state_fn *fn, void *ctx);
void redis_link_free(struct redis_link *l);
bool redis_link_up(const struct redis_link *l);
int redis_command(struct redis_link *l, redis_reply_fn *fn, void *arg, int argc, const char **argv,
                  const size_t *argvlen);

#endif
