/*
 * redis - the allowlist's link to Redis; see redis.h.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <time.h>

#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>

#include "cache/redis.h"
#include "log/log.h"
#include "util/mem.h"

#define BACKOFF_FIRST_MS 500
#define BACKOFF_MAX_MS   30000
#define HANDSHAKE_MIN_MS 1000 /* connect, AUTH, SELECT, PING */
#define STABLE_S         10   /* up this long: the back-off starts again at its first step */

/* A number in [MIN, MAX] that is the whole of TEXT. */
static bool parse_int(const char *text, long min, long max, int *out)
{
    char *end;

    if (!isdigit((unsigned char)*text))
        return false;
    long v = strtol(text, &end, 10);
    if (*end != '\0' || v < min || v > max)
        return false;
    *out = (int)v;
    return true;
}

/* Parse what follows "redis:"; see redis.h. */
int redis_target_parse(const char *spec, struct redis_target *t, char *err, size_t errlen)
{
    char buf[512];

    memset(t, 0, sizeof(*t));
    t->port = 6379;
    if (strncasecmp(spec, "unix:", 5) == 0) {
        const char *path = spec + 5;
        if (path[0] != '/' || strlen(path) >= sizeof(t->path)) {
            snprintf(err, errlen, "\"redis:%s\": expected redis:unix:/PATH to a socket", spec);
            return -1;
        }
        snprintf(t->path, sizeof(t->path), "%s", path);
        snprintf(t->name, sizeof(t->name), "redis:unix:%s", path);
        return 0;
    }
    if (strlen(spec) >= sizeof(buf))
        goto bad;
    snprintf(buf, sizeof(buf), "%s", spec);
    char *slash = strchr(buf, '/');
    if (slash) {
        *slash = '\0';
        if (!parse_int(slash + 1, 0, 1000000, &t->db)) {
            snprintf(err, errlen, "\"redis:%s\": the database after / must be a number", spec);
            return -1;
        }
    }
    char *host = buf, *port = NULL;
    if (host[0] == '[') {
        char *close = strchr(host, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':'))
            goto bad;
        *close = '\0';
        host++;
        if (close[1] == ':')
            port = close + 2;
    } else if ((port = strchr(host, ':')) != NULL) {
        *port++ = '\0';
        if (strchr(port, ':'))
            goto bad; /* an IPv6 address needs brackets */
    }
    if (host[0] == '\0' || strlen(host) >= sizeof(t->host))
        goto bad;
    for (const char *p = host; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr(".-_:", *p))
            goto bad;
    if (port && !parse_int(port, 1, 65535, &t->port)) {
        snprintf(err, errlen, "\"redis:%s\": bad port \"%s\"", spec, port);
        return -1;
    }
    memcpy(t->host, host, strlen(host) + 1); /* fits: checked above */
    snprintf(t->name, sizeof(t->name), strchr(host, ':') ? "redis:[%s]:%d/%d" : "redis:%s:%d/%d",
             host, t->port, t->db);
    return 0;
bad:
    snprintf(err, errlen, "\"redis:%s\": expected redis:HOST:PORT[/DB] or redis:unix:/PATH", spec);
    return -1;
}

/* Resolve T's host name into T->addr, blocking (start-up only). */
int redis_target_resolve(struct redis_target *t, char *err, size_t errlen)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;

    if (t->path[0])
        return 0;
    int rc = getaddrinfo(t->host, NULL, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", t->host, gai_strerror(rc));
        return -1;
    }
    const void *a = res->ai_family == AF_INET6
                        ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                        : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
    inet_ntop(res->ai_family, a, t->addr, sizeof(t->addr));
    freeaddrinfo(res);
    return 0;
}

static bool set(const char *s)
{
    return s != NULL && *s != '\0';
}

/* AUTH, SELECT and PING as argument vectors; returns how many. */
static int handshake(const struct redis_target *t, const struct redis_opts *o, char *dbtext,
                     size_t dblen, const char *argv[][3], int argc[])
{
    int n = 0;

    if (set(o->password)) {
        if (set(o->user)) {
            argv[n][0] = "AUTH";
            argv[n][1] = o->user;
            argv[n][2] = o->password;
            argc[n++] = 3;
        } else {
            argv[n][0] = "AUTH";
            argv[n][1] = o->password;
            argc[n++] = 2;
        }
    }
    if (t->db != 0) {
        snprintf(dbtext, dblen, "%d", t->db);
        argv[n][0] = "SELECT";
        argv[n][1] = dbtext;
        argc[n++] = 2;
    }
    argv[n][0] = "PING";
    argc[n++] = 1;
    return n;
}

static void mono_now(struct timeval *tv)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    tv->tv_sec = ts.tv_sec;
    tv->tv_usec = ts.tv_nsec / 1000;
}

static struct timeval ms_tv(int ms)
{
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    return tv;
}

/*
 * Does Redis's error TEXT to COMMAND say that our settings are wrong (the
 * password, the user, the database), rather than that it is busy
 * (BUSY, LOADING, MASTERDOWN, ...) and may take us later?
 */
bool redis_refusal(const char *command, const char *text)
{
    static const char *const codes[] = {"NOAUTH", "WRONGPASS", "NOPERM"};

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strncmp(text, codes[i], strlen(codes[i])) == 0)
            return true;
    /* "ERR AUTH <password> called without any password configured",
     * "ERR DB index is out of range", "ERR invalid DB index" */
    return strncmp(text, "ERR ", 4) == 0 &&
           (strcasecmp(command, "AUTH") == 0 || strcasecmp(command, "SELECT") == 0);
}

/* Connect and say hello, blocking; see redis.h. */
redisContext *redis_sync_open(const struct redis_target *t, const struct redis_opts *o,
                              bool *refused, char *err, size_t errlen)
{
    int ms = o->timeout_ms < HANDSHAKE_MIN_MS ? HANDSHAKE_MIN_MS : o->timeout_ms;
    struct timeval tv = ms_tv(ms);
    redisContext *c = t->path[0] ? redisConnectUnixWithTimeout(t->path, tv)
                                 : redisConnectWithTimeout(t->host, t->port, tv);

    *refused = false;
    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (c->err) {
        snprintf(err, errlen, "%s", c->errstr);
        redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    const char *argv[3][3];
    int argc[3];
    char db[16];
    int n = handshake(t, o, db, sizeof(db), argv, argc);
    for (int i = 0; i < n; i++) {
        redisReply *r = redisCommandArgv(c, argc[i], argv[i], NULL);
        if (r == NULL) {
            snprintf(err, errlen, "%s", c->err ? c->errstr : "no reply");
            redisFree(c);
            return NULL;
        }
        if (r->type == REDIS_REPLY_ERROR) {
            snprintf(err, errlen, "%s: %s", argv[i][0], r->str);
            *refused = redis_refusal(argv[i][0], r->str);
            freeReplyObject(r);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    return c;
}

/* ---- the link ---- */

enum link_state { LINK_DOWN, LINK_CONNECTING, LINK_UP };

/* A command in flight; Redis answers in order, so the list is in order. */
struct rcmd {
    struct rcmd *next;
    struct redis_link *l;
    redis_reply_fn *fn;
    void *arg;
    struct timeval deadline;
};

struct redis_link {
    struct event_base *base;
    struct redis_target t;
    char *password, *user;
    int timeout_ms;
    redisAsyncContext *ac;
    enum link_state state;
    struct rcmd *head, *tail;
    struct event *deadline; /* the oldest command's */
    struct event *retry;
    int backoff_ms;
    struct timeval up_since; /* monotonic */
    bool freeing;
    redis_state_fn *state_fn;
    void *ctx;
};

static void link_connect(struct redis_link *l);

/*
 * The link is down (the first reason wins); try again later.  A link that
 * had been up for a while starts the back-off again; one that fails soon
 * after coming up goes on doubling it, so a flapping Redis is not hammered.
 * QUIET: Redis closed an idle link (its "timeout" setting): reconnect at
 * once and say nothing unless that fails.
 */
static void link_down(struct redis_link *l, const char *reason, bool quiet)
{
    if (l->state == LINK_DOWN)
        return;
    if (l->state == LINK_UP) {
        struct timeval now;
        mono_now(&now);
        if (now.tv_sec - l->up_since.tv_sec >= STABLE_S)
            l->backoff_ms = BACKOFF_FIRST_MS;
    }
    l->state = LINK_DOWN;
    evtimer_del(l->deadline);
    if (l->ac) {
        /* Commands still in flight get their NULL replies from here. */
        redisAsyncContext *ac = l->ac;
        l->ac = NULL;
        redisAsyncFree(ac);
    }
    if (l->freeing)
        return;
    if (quiet) {
        struct timeval zero = {0, 0};
        evtimer_add(l->retry, &zero);
        return;
    }
    struct timeval tv = ms_tv(l->backoff_ms);
    evtimer_add(l->retry, &tv);
    l->backoff_ms = l->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : l->backoff_ms * 2;
    l->state_fn(l->ctx, false, reason);
}

static void link_fail(struct redis_link *l, const char *reason)
{
    link_down(l, reason, false);
}

/* Arm the deadline timer for the oldest command in flight. */
static void arm_deadline(struct redis_link *l)
{
    if (l->head == NULL) {
        evtimer_del(l->deadline);
        return;
    }
    struct timeval now, left;
    mono_now(&now);
    if (timercmp(&l->head->deadline, &now, >))
        timersub(&l->head->deadline, &now, &left);
    else
        timerclear(&left);
    evtimer_add(l->deadline, &left);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct redis_link *l = arg;

    (void)fd;
    (void)what;
    link_fail(l, "timed out");
}

/* hiredis's answer to one command (NULL while the context is freed). */
static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct rcmd *cmd = priv;
    struct redis_link *l = cmd->l;

    /* Unlink it: normally the head. */
    struct rcmd **pp = &l->head, *prev = NULL;
    while (*pp && *pp != cmd) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp) {
        *pp = cmd->next;
        if (l->tail == cmd)
            l->tail = prev;
    }
    if (reply == NULL && l->ac == ac) {
        /* hiredis is freeing the context after a broken connection. */
        l->ac = NULL;
        link_fail(l, ac->err ? ac->errstr : "connection lost");
    } else if (l->state != LINK_DOWN) {
        arm_deadline(l);
    }
    cmd->fn(cmd->arg, reply);
    free(cmd);
}

/* Queue ARGV on the context with its deadline. */
static int send_cmd(struct redis_link *l, int ms, redis_reply_fn *fn, void *arg, int argc,
                    const char **argv, const size_t *argvlen)
{
    struct rcmd *cmd = xcalloc(1, sizeof(*cmd));
    struct timeval now, add = ms_tv(ms);

    cmd->l = l;
    cmd->fn = fn;
    cmd->arg = arg;
    mono_now(&now);
    timeradd(&now, &add, &cmd->deadline);
    if (redisAsyncCommandArgv(l->ac, on_reply, cmd, argc, argv, argvlen) != REDIS_OK) {
        free(cmd);
        return -1;
    }
    if (l->tail)
        l->tail->next = cmd;
    else
        l->head = cmd;
    l->tail = cmd;
    if (l->head == cmd)
        arm_deadline(l);
    return 0;
}

/* A reply to AUTH or SELECT. */
static void on_hello(void *arg, const redisReply *r)
{
    struct redis_link *l = arg;
    char reason[300];

    if (r == NULL || l->state != LINK_CONNECTING)
        return; /* the link is already down */
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(reason, sizeof(reason), "%s", r->str);
        link_fail(l, reason);
        return;
    }
}

/* The reply to PING, the handshake's last command: the link is up. */
static void on_ping(void *arg, const redisReply *r)
{
    struct redis_link *l = arg;

    if (r == NULL || l->state != LINK_CONNECTING)
        return;
    if (r->type == REDIS_REPLY_ERROR) {
        char reason[300];
        snprintf(reason, sizeof(reason), "%s", r->str);
        link_fail(l, reason);
    } else if (r->type == REDIS_REPLY_STATUS && strcasecmp(r->str, "PONG") == 0) {
        l->state = LINK_UP;
        mono_now(&l->up_since);
        l->state_fn(l->ctx, true, NULL);
    } else {
        link_fail(l, "unexpected reply to PING");
    }
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_link *l = ac->data;

    if (status == REDIS_OK || l == NULL || l->ac != ac)
        return;
    /* hiredis frees the context when this returns. */
    l->ac = NULL;
    link_fail(l, ac->errstr[0] ? ac->errstr : "cannot connect");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_link *l = ac->data;

    (void)status;
    if (l == NULL || l->ac != ac)
        return;
    l->ac = NULL;
    /* An idle link that Redis closed (its "timeout"): no outage. */
    bool idle = l->state == LINK_UP && l->head == NULL && ac->err == REDIS_ERR_EOF;
    link_down(l, ac->err ? ac->errstr : "the server closed the connection", idle);
}

static void link_connect(struct redis_link *l)
{
    /* The address resolved at start-up: hiredis would resolve a name with
     * a blocking getaddrinfo() inside the loop. */
    redisAsyncContext *ac =
        l->t.path[0] ? redisAsyncConnectUnix(l->t.path) : redisAsyncConnect(l->t.addr, l->t.port);

    l->state = LINK_CONNECTING;
    if (ac == NULL) {
        link_fail(l, "out of memory");
        return;
    }
    if (ac->err) {
        char reason[300];
        snprintf(reason, sizeof(reason), "%s", ac->errstr);
        redisAsyncFree(ac);
        link_fail(l, reason);
        return;
    }
    ac->data = l;
    redisLibeventAttach(ac, l->base);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    l->ac = ac;

    struct redis_opts o = {l->password, l->user, l->timeout_ms};
    const char *argv[3][3];
    int argc[3];
    char db[16];
    int n = handshake(&l->t, &o, db, sizeof(db), argv, argc);
    int ms = l->timeout_ms < HANDSHAKE_MIN_MS ? HANDSHAKE_MIN_MS : l->timeout_ms;
    for (int i = 0; i < n && l->state == LINK_CONNECTING; i++) {
        if (send_cmd(l, ms, i == n - 1 ? on_ping : on_hello, l, argc[i], argv[i], NULL) < 0)
            link_fail(l, "cannot send");
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    link_connect(arg);
}

/* A link to T; it starts connecting at once.  See redis.h. */
struct redis_link *redis_link_new(struct event_base *base, const struct redis_target *t,
                                  const struct redis_opts *o, redis_state_fn *fn, void *ctx)
{
    struct redis_link *l = xcalloc(1, sizeof(*l));

    l->base = base;
    l->t = *t;
    l->password = xstrdup(o->password ? o->password : "");
    l->user = xstrdup(o->user ? o->user : "");
    l->timeout_ms = o->timeout_ms;
    l->backoff_ms = BACKOFF_FIRST_MS;
    l->state_fn = fn;
    l->ctx = ctx;
    l->deadline = evtimer_new(base, on_deadline, l);
    l->retry = evtimer_new(base, on_retry, l);
    l->state = LINK_DOWN;
    link_connect(l);
    return l;
}

/* Close the link; commands in flight get their NULL replies now. */
void redis_link_free(struct redis_link *l)
{
    if (l == NULL)
        return;
    l->freeing = true;
    link_fail(l, "closed");
    event_free(l->deadline);
    event_free(l->retry);
    free(l->password);
    free(l->user);
    free(l);
}

bool redis_link_up(const struct redis_link *l)
{
    return l->state == LINK_UP;
}

/* Send a command while the link is up; see redis.h. */
int redis_command(struct redis_link *l, redis_reply_fn *fn, void *arg, int argc, const char **argv,
                  const size_t *argvlen)
{
    if (l->state != LINK_UP || l->ac == NULL)
        return -1;
    return send_cmd(l, l->timeout_ms, fn, arg, argc, argv, argvlen);
}
