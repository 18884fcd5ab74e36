/*
 * session - one client connection; see session.h.
 *
 * States: UPSTREAM (reading a load balancer's PROXY header), EARLY (the
 * "220-" teaser is out and the greet wait runs), ENGINE (the SMTP engine
 * has the client; while it is paused at a RCPT for a replay, the session
 * also holds the replay's hand-off), HANDOFF (waiting for the backend to
 * take the client), RELAY (joined).  The session is freed when its last owner
 * lets go: immediately on a reject, when the engine reports
 * ENGINE_CLOSED, or when the hand-off reports HANDOFF_ENDED.
 */
#include <errno.h>
#include <event2/event_struct.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "handoff/handoff.h"
#include "log/log.h"
#include "net/proxy.h"
#include "dnsbl/dnsbl.h"
#include "session/session.h"
#include "session/verdict.h"
#include "smtp/engine.h"
#include "smtp/reply.h"
#include "stats/stats.h"
#include "util/sbuf.h"
#include "util/mem.h"

/* The states are the phases that /metrics counts (stats.h). */
enum sstate {
    SS_START = SP_START,       /* accepted: the flow's checks and the allowlist lookup */
    SS_UPSTREAM = SP_UPSTREAM, /* reading the upstream PROXY header */
    SS_EARLY = SP_EARLY,       /* before-220 tests: the teaser and the greet wait */
    SS_ENGINE = SP_ENGINE,     /* in the SMTP engine */
    SS_HANDOFF = SP_HANDOFF,   /* the backend has not taken the client yet */
    SS_RELAY = SP_RELAY,       /* the backend has the client */
};

struct session {
    struct server *srv;            /* shared state */
    struct settings *st;           /* settings this session started with (a reference) */
    struct endpoint client;        /* real client endpoint */
    const struct endpoint *server; /* real server endpoint (shared, see local_endpoint()) */
    struct ipstate *ip;            /* per-address record, once CONNECT is logged; its addr is
                                      the client as the allowlist and limits count it */
    struct event ev;               /* SS_UPSTREAM and SS_EARLY: the socket and the time
                                      limit (embedded: one allocation less per client) */
    struct handoff *ho;            /* SS_HANDOFF and SS_RELAY */
    struct engine *eng;            /* SS_ENGINE */
    struct verdict v;              /* tests due, passed and failed */
    int64_t mark_us;               /* SS_UPSTREAM: end of the time limit; SS_EARLY: when
                                      the teaser went out (microseconds, wall clock) */
    struct dnsbl_lookup *lookup;   /* SS_EARLY: the DNSBL lookup, until its score is taken */
    char *dnsbl_reply;             /* the DNSBL reject text (rcpt or final reply) */
    struct cache_req *cache_req;   /* the allowlist lookup Redis has not answered yet */
    int fd;                        /* client socket; -1 once handed over */
    int greet_wait;                /* SS_EARLY: postscreen_greet_wait, as stressed then */
    int dnsbl_total;               /* the DNSBL score, once taken */
    int dnsbl_ttl;                 /* ...its clamped TTL */
    /* The small fields last and together: a client held in the greet wait
     * costs its session, and every 16 bytes count (bench/README.md, W3). */
    enum sstate state : 8; /* where the session is */
    bool dnsbl_taken;      /* the DNSBL score is taken (complete or partial) */
    bool teaser_sent;      /* the "220-" teaser went out (pregreet test) */
    bool pregreet_done;    /* SS_EARLY: the pregreet test has its answer */
    bool in_check;         /* counted in srv->check_queue */
    bool in_post;          /* counted in srv->post_queue */
    bool replayed;         /* concluded at a replay: PASS and cache done */
};

/*
 * The server side of connections, shared: a host has few local addresses
 * and ports (an upstream proxy few destinations), so sessions hold a
 * reference to one copy each rather than a copy each (88 bytes less per
 * session).  An entry goes when its last session does.
 */
struct local_ep {
    struct local_ep *next;
    unsigned refs;
    socklen_t rawlen; /* the address as accept() or the PROXY header gave it */
    struct sockaddr_in6 raw;
    struct endpoint ep;
};

#define LOCAL_EP_SLOTS 64
static struct local_ep *local_eps[LOCAL_EP_SLOTS];

static size_t local_slot(const struct sockaddr *sa, socklen_t len)
{
    const unsigned char *p = (const unsigned char *)sa;
    size_t h = 2166136261u;

    for (socklen_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 16777619u;
    return h % LOCAL_EP_SLOTS;
}

/* A reference to the shared endpoint for SA; NULL when SA is not IPv4 or IPv6. */
static const struct endpoint *local_endpoint(const struct sockaddr *sa, socklen_t len)
{
    if (len > (socklen_t)sizeof(struct sockaddr_in6))
        return NULL;
    size_t slot = local_slot(sa, len);
    for (struct local_ep *l = local_eps[slot]; l; l = l->next)
        if (l->rawlen == len && memcmp(&l->raw, sa, len) == 0) {
            l->refs++;
            return &l->ep;
        }
    struct local_ep *l = xcalloc(1, sizeof(*l));
    if (endpoint_set(&l->ep, sa, len) < 0) {
        free(l);
        return NULL;
    }
    memcpy(&l->raw, sa, len);
    l->rawlen = len;
    l->refs = 1;
    l->next = local_eps[slot];
    local_eps[slot] = l;
    return &l->ep;
}

static void local_release(const struct endpoint *ep)
{
    struct local_ep *l = (struct local_ep *)((char *)ep - offsetof(struct local_ep, ep));

    if (--l->refs > 0)
        return;
    for (struct local_ep **pp = &local_eps[local_slot((struct sockaddr *)&l->raw, l->rawlen)]; *pp;
         pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    free(l);
}

/* Send a reply, best effort: the socket is fresh and the reply small. */
static void reply_raw(struct session *s, const char *text, size_t len)
{
    ssize_t n = send(s->fd, text, len, MSG_NOSIGNAL | MSG_DONTWAIT);

    if (n < 0 && errno != EPIPE && errno != ECONNRESET && errno != EAGAIN)
        msg_warn("write [%s]:%s: %m", s->client.addr, s->client.port);
}

/* Send a reply with soft_bounce and the reject footer applied, as every
 * postscreen reply is (the socket is fresh and the reply small). */
static void reply(struct session *s, const char *text)
{
    struct sbuf out = SBUF_INIT;
    struct reply_peer peer = {s->client.addr, s->client.port};

    reply_format(&out, engine_reply_conf(s->st->engine), text, &peer);
    reply_raw(s, out.s, out.len);
    sbuf_free(&out);
}

/*
 * Close the client socket so that a reply just sent is not lost to a
 * reset: shut down our sending side and drain what the client sent.
 */
static void close_client(int fd)
{
    char buf[4096];

    shutdown(fd, SHUT_WR);
    for (int i = 0; i < 4 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0; i++)
        continue;
    close(fd);
}

/* One session fewer being screened; maybe leave STRESS mode. */
static void check_queue_done(struct server *srv, const struct settings *st)
{
    srv->check_queue--;
    if (srv->stress && srv->check_queue <= (size_t)(0.7 * (double)st->pre_queue_limit)) {
        srv->stress = false;
        stats.stress = false;
        msg_info("leaving STRESS mode with %zu connections", srv->check_queue);
    }
}

/* Point the session's event at FD, WHAT and CB (not yet added). */
static void ev_set(struct session *s, evutil_socket_t fd, short what, event_callback_fn cb)
{
    if (event_initialized(&s->ev))
        event_del(&s->ev);
    event_assign(&s->ev, s->srv->base, fd, what, cb, s);
}

/* Stop the session's event, if it was ever set. */
static void ev_stop(struct session *s)
{
    if (event_initialized(&s->ev))
        event_del(&s->ev);
}

/* Seconds since the early phase began (for the greet-wait histogram). */
static double early_seconds(const struct session *s)
{
    struct timeval now;

    gettimeofday(&now, NULL);
    int64_t us = (int64_t)now.tv_sec * 1000000 + now.tv_usec - s->mark_us;
    return us < 0 ? 0 : (double)us / 1e6;
}

/* Move the session to state TO (SP__COUNT: gone), keeping the phase
 * gauges and the greet-wait histogram. */
static void set_state(struct session *s, unsigned to)
{
    if (s->state == SS_EARLY && to != SS_EARLY)
        stats_hist_add(&stats.greet_wait, early_seconds(s));
    stats_phase((enum stats_phase)s->state, (enum stats_phase)to);
    if (to != SP__COUNT)
        s->state = (enum sstate)to;
}

/* Count a test failure and, unless ignored, remember the client. */
static void count_failure(struct session *s, enum test_id t, enum psc_action a, const char *why)
{
    static const char *const actions[] = {"ignore", "enforce", "drop"};

    stats.failures[t][a]++;
    if (a != ACTION_IGNORE)
        stats_reject(s->client.addr, s->client.port, why, actions[a]);
}

/* Free the session and everything it counts. */
static void session_free(struct session *s)
{
    struct server *srv = s->srv;

    set_state(s, SP__COUNT);
    ev_stop(s);
    if (s->lookup)
        dnsbl_release(s->lookup, s);
    if (s->cache_req) {
        cache_cancel(s->cache_req);
        s->ip->lookups--;
    }
    free(s->dnsbl_reply);
    if (s->fd >= 0)
        close_client(s->fd);
    if (s->in_check)
        check_queue_done(srv, s->st);
    if (s->in_post)
        srv->post_queue--;
    if (s->state == SS_RELAY)
        srv->relays--;
    if (s->ip)
        ipstate_release(srv->ips, s->ip);
    if (s->server)
        local_release(s->server);
    settings_unref(s->st);
    free(s);
    if (--srv->sessions == 0 && srv->on_idle)
        srv->on_idle(srv);
}

/* End the session with postscreen's DISCONNECT line. */
static void disconnect(struct session *s)
{
    msg_info("DISCONNECT [%s]:%s", s->client.addr, s->client.port);
    session_free(s);
}

static void start_engine(struct session *s, bool x21);

/* The hand-off failed and freed itself: the client is the session's again. */
static void handoff_failed(struct session *s)
{
    s->ho = NULL;
    s->srv->post_queue--;
    s->in_post = false;
}

/* The hand-off reports progress. */
static void on_handoff(void *ctx, enum handoff_event ev)
{
    struct session *s = ctx;
    struct server *srv = s->srv;

    switch (ev) {
    case HANDOFF_FAIL_CONNECT:
    case HANDOFF_FAIL_PASS:
        handoff_failed(s);
        stats.handoff_failures[s->st->mode]++;
        if (s->teaser_sent) {
            /* A 421 now would break the multi-line greeting: the X21 path. */
            s->v.final_reply = "421 4.3.2 No system resources\r\n";
            start_engine(s, true);
            return;
        }
        reply(s, ev == HANDOFF_FAIL_CONNECT ? "421 4.3.2 All server ports are busy\r\n"
                                            : "421 4.3.2 No system resources\r\n");
        session_free(s);
        return;
    case HANDOFF_TAKEN:
        /* The client socket belongs to the hand-off (or smtpd) now. */
        s->fd = -1;
        set_state(s, SS_RELAY);
        stats.handoffs[s->st->mode]++;
        srv->relays++;
        /* The address keeps counting this session while it is relayed
         * (postscreen_client_connection_count_limit, README "How mxscreen
         * counts"); its record is let go when the relay ends. */
        srv->post_queue--;
        s->in_post = false;
        check_queue_done(srv, s->st);
        s->in_check = false;
        return;
    case HANDOFF_ENDED:
        /* The hand-off has closed the client socket. */
        s->ho = NULL;
        s->fd = -1;
        session_free(s);
        return;
    case HANDOFF_REPLIED:
        break;
    }
    msg_panic("session: hand-off event %d out of place", (int)ev);
}

/* Hand the client to the backend. */
static void hand_off(struct session *s)
{
    set_state(s, SS_HANDOFF);
    s->srv->post_queue++;
    s->in_post = true;
    s->ho = handoff_start(s->srv->base, s->st, s->fd, &s->client, s->server, on_handoff, s);
}

/* The verdict words in postscreen's respectful or legacy form. */
static const char *word(struct session *s, const char *respectful, const char *legacy)
{
    if (s->st->respectful)
        return respectful;
    if (s->st->respectful_implicit && !s->srv->respectful_noticed) {
        s->srv->respectful_noticed = true;
        msg_info("using backwards-compatible default setting respectful_logging=no for client "
                 "[%s]:%s",
                 s->client.addr, s->client.port);
    }
    return legacy;
}

/*
 * The verdict (spec §1.5): PASS NEW or OLD when every due test passed,
 * the cache update when any test passed and none failed.
 */
static void log_verdict(struct session *s)
{
    struct verdict *v = &s->v;

    /* Concluded at the replay; what follows a failed one is retry talk.
     * (Otherwise postscreen concludes again at the end, X21 included.) */
    if (s->replayed)
        return;
    if (verdict_any_fail(v))
        v->pass = 0;
    if (verdict_all_passed(v)) {
        bool old = !v->is_new || s->ip->pass_new_logged;
        if (!old)
            s->ip->pass_new_logged = 1;
        msg_info("PASS %s [%s]:%s", old ? "OLD" : "NEW", s->client.addr, s->client.port);
        stats.verdicts[old ? SV_PASS_OLD : SV_PASS_NEW]++;
    }
    if (v->pass && s->st->cache_enabled && s->srv->cache) {
        char rec[VERDICT_RECORD_MAX];
        verdict_format(rec, sizeof(rec), s->ip->stamps, s->st->enabled);
        if (cache_put(s->srv->cache, s->ip->addr, rec) < 0)
            stats.cache_write_errors++;
        else
            stats.cache_writes++;
    }
}

/* Conclude a session that never reached the engine: hand off or say goodbye. */
static void conclude(struct session *s)
{
    log_verdict(s);
    if (!s->v.noforward) {
        hand_off(s);
        return;
    }
    if (!s->v.hangup)
        reply(s, s->v.final_reply);
    disconnect(s);
}

/* First line of the backend's reply TEXT (TLEN bytes), escaped for the log. */
static void first_line(char *buf, size_t len, const char *text, size_t tlen)
{
    const char *end = memchr(text, '\n', tlen);
    size_t n = end ? (size_t)(end - text) : tlen;

    if (n > 0 && text[n - 1] == '\r')
        n--;
    log_escape(buf, len, text, n, LOG_PEER_TEXT_MAX);
}

/* The replay to the backend reports progress. */
static void on_replay(void *ctx, enum handoff_event ev)
{
    struct session *s = ctx;

    switch (ev) {
    case HANDOFF_FAIL_CONNECT:
    case HANDOFF_FAIL_PASS:
        /* postscreen's way: the RCPT reply says "come back"; the client
         * is allowlisted by now, so its retry goes straight through. */
        handoff_failed(s);
        stats.handoff_failures[s->st->mode]++;
        stats.replay_failures++;
        msg_warn("replay of [%s]:%s to %s failed: the client is told to try again", s->client.addr,
                 s->client.port, s->st->backend_name);
        engine_replay_done(s->eng, NULL, 0);
        return;
    case HANDOFF_REPLIED: {
        size_t len;
        const char *refused;
        const char *text = handoff_reply(s->ho, &len, &refused);
        char esc[LOG_ESCAPE_BUFSZ];
        first_line(esc, sizeof(esc), text, len);
        msg_info("REPLAY [%s]:%s to %s: %s %s", s->client.addr, s->client.port, s->st->backend_name,
                 refused ? "MAIL refused:" : "RCPT", esc);
        stats.replays++;
        engine_replay_done(s->eng, text, len);
        return;
    }
    case HANDOFF_TAKEN:
    case HANDOFF_ENDED:
        on_handoff(ctx, ev);
        return;
    }
}

/* A session that is over: DISCONNECT now, free when the engine has closed. */
static void on_engine(void *ctx, enum engine_event ev)
{
    struct session *s = ctx;

    switch (ev) {
    case ENGINE_REPLAY: {
        /* Every due test passed at RCPT: PASS NEW and the cache, then the
         * backend hears the client's EHLO, MAIL and RCPT. */
        const struct engine_replay *r = engine_replay_info(s->eng);
        struct handoff_replay hr = {r->ehlo, r->helo,        r->mail,
                                    r->rcpt, r->tls_version, r->tls_cipher};
        log_verdict(s);
        s->replayed = true;
        s->srv->post_queue++;
        s->in_post = true;
        s->ho = handoff_replay(s->srv->base, s->st, &s->client, s->server, &hr,
                               &s->srv->backend_caps, on_replay, s);
        return;
    }
    case ENGINE_DETACHED: {
        /* The backend's reply is out: the relay takes the client. */
        const struct engine_handover *ho = engine_handover(s->eng);
        s->eng = NULL;
        handoff_join(s->ho, ho->fd, ho->ssl, ho->pending, ho->npending);
        return;
    }
    case ENGINE_END:
        log_verdict(s);
        msg_info("DISCONNECT [%s]:%s", s->client.addr, s->client.port);
        /* The session is over for its address and the queues now, while
         * the engine still flushes its last reply and drains. */
        ipstate_release(s->srv->ips, s->ip);
        s->ip = NULL;
        check_queue_done(s->srv, s->st);
        s->in_check = false;
        return;
    case ENGINE_CLOSED:
        s->eng = NULL;
        session_free(s);
        return;
    }
}

/* Give the client to the SMTP engine (X21: only to say 421 politely). */
static void start_engine(struct session *s, bool x21)
{
    struct engine_args a = {
        .base = s->srv->base,
        .cf = s->st->engine,
        .fd = s->fd,
        .client = &s->client,
        .v = &s->v,
        .stamps = s->ip->stamps,
        .stress = &s->srv->stress,
        .backend = &s->srv->backend_caps,
        .x21 = x21,
        .fn = on_engine,
        .ctx = s,
    };

    set_state(s, SS_ENGINE);
    s->fd = -1; /* the engine's now, whatever happens */
    s->eng = engine_start(&a);
}

/* End the session before any test with postscreen's reply and DISCONNECT. */
static void drop(struct session *s, const char *text)
{
    s->v.noforward = true;
    s->v.final_reply = text;
    conclude(s);
}

/* TV in microseconds. */
static int64_t tv_us(const struct timeval *tv)
{
    return (int64_t)tv->tv_sec * 1000000 + tv->tv_usec;
}

/* Seconds since the early phase began, as postscreen formats them. */
static void early_elapsed(struct session *s, char *buf, size_t len, struct timeval *d)
{
    struct timeval now;

    gettimeofday(&now, NULL);
    int64_t us = tv_us(&now) - s->mark_us;
    if (us < 0)
        us = 0;
    d->tv_sec = (time_t)(us / 1000000);
    d->tv_usec = (suseconds_t)(us % 1000000);
    log_format_delay(buf, len, d->tv_sec, d->tv_usec);
}

/*
 * Take the DNSBL score (partial when answers are still out) and apply the
 * DNSBL allowlist threshold (spec §1.3): a client with no failure whose
 * score is at most that (negative) threshold skips every other test, and
 * every other test's expiry is raised to at least the DNSBL TTL.
 */
static void take_dnsbl_score(struct session *s)
{
    const struct settings *st = s->st;
    struct verdict *v = &s->v;

    if (s->dnsbl_taken || s->lookup == NULL)
        return;
    const struct dnsbl_score *sc = dnsbl_score(s->lookup);
    s->dnsbl_total = sc->total;
    s->dnsbl_ttl = dnsbl_score_ttl(sc, st->dnsbl_min_ttl, st->dnsbl_max_ttl);
    /* A result reused from an earlier connection holds only what is left. */
    if (dnsbl_done(s->lookup) && dnsbl_valid_for(s->lookup) < s->dnsbl_ttl)
        s->dnsbl_ttl = dnsbl_valid_for(s->lookup);
    s->dnsbl_taken = true;
    if (!verdict_any_fail(v) && s->dnsbl_total < st->dnsbl_threshold &&
        st->dnsbl_allowlist_threshold < 0 && s->dnsbl_total <= st->dnsbl_allowlist_threshold) {
        time_t until = time(NULL) + s->dnsbl_ttl;
        for (int t = 0; t < TEST__COUNT; t++) {
            if (t == TEST_DNSBL)
                continue;
            if ((v->todo & TEST_BIT(t)) && !(v->pass & TEST_BIT(t))) {
                v->pass |= TEST_BIT(t);
                if (t == TEST_PREGREET)
                    s->pregreet_done = true;
            }
            if (s->ip->stamps[t] < until)
                s->ip->stamps[t] = until;
        }
    }
}

/* The reject text naming list NAME (copied: the lookup may go). */
static void dnsbl_reject(struct session *s, const char *code, const char *name)
{
    char buf[512];

    snprintf(buf, sizeof(buf), "%s 5.7.1 Service unavailable; client [%s] blocked using %s\r\n",
             code, s->client.addr, name ? name : "(unknown)");
    free(s->dnsbl_reply);
    s->dnsbl_reply = xstrdup(buf);
}

/*
 * The greet wait is over (or nothing is left to wait for): conclude the
 * pregreet and DNSBL tests (spec §1.3), then the engine or the hand-off.
 */
static void early_end(struct session *s)
{
    struct verdict *v = &s->v;
    const struct settings *st = s->st;
    unsigned bit = TEST_BIT(TEST_PREGREET);

    ev_stop(s);
    if ((v->todo & bit) && !(v->fail & bit) && !s->pregreet_done) {
        s->ip->stamps[TEST_PREGREET] = time(NULL) + st->greet_ttl;
        v->pass |= bit;
    }
    /* "ignore": forgotten, not passed; the test is repeated next time. */
    if ((v->fail & bit) && st->greet_action == ACTION_IGNORE)
        v->fail &= ~bit;
    if (v->todo & TEST_BIT(TEST_DNSBL)) {
        take_dnsbl_score(s);
        /* The score was taken when the last answer came or just now: the
         * name is the one that goes with s->dnsbl_total (it points into
         * the settings' sites, which outlive the lookup). */
        const char *listed_by = NULL;
        if (s->lookup) {
            listed_by = dnsbl_score(s->lookup)->name;
            dnsbl_release(s->lookup, s);
            s->lookup = NULL;
        }
        if (s->dnsbl_total < st->dnsbl_threshold) {
            s->ip->stamps[TEST_DNSBL] = time(NULL) + s->dnsbl_ttl;
            v->pass |= TEST_BIT(TEST_DNSBL);
        } else {
            msg_info("DNSBL rank %d for [%s]:%s", s->dnsbl_total, s->client.addr, s->client.port);
            v->fail |= TEST_BIT(TEST_DNSBL);
            count_failure(s, TEST_DNSBL, st->dnsbl_action, "DNSBL");
            switch (st->dnsbl_action) {
            case ACTION_DROP:
                dnsbl_reject(s, "521", listed_by);
                drop(s, s->dnsbl_reply);
                return;
            case ACTION_ENFORCE:
                dnsbl_reject(s, "550", listed_by);
                v->rcpt_reply = s->dnsbl_reply;
                v->noforward = true;
                break;
            case ACTION_IGNORE:
                /* Not a pass: the test is repeated next time. */
                v->fail &= ~TEST_BIT(TEST_DNSBL);
                break;
            }
        }
    }
    if (v->noforward || (v->pass & TEST_MASK_DEEP) != (v->todo & TEST_MASK_DEEP))
        start_engine(s, false);
    else
        conclude(s);
}

static void on_early(evutil_socket_t fd, short what, void *arg);

/* End the early phase from the loop (never from under a caller). */
static void early_end_soon(struct session *s)
{
    struct timeval now = {0, 0};

    ev_set(s, -1, 0, on_early);
    event_add(&s->ev, &now);
}

/* Every DNSBL answer is in. */
static void on_dnsbl(void *ctx)
{
    struct session *s = ctx;

    take_dnsbl_score(s);
    /* The wait ends now unless the pregreet test still needs its full wait. */
    if (!(s->v.todo & TEST_BIT(TEST_PREGREET)) || s->pregreet_done)
        early_end_soon(s);
}

/* Bytes, the end of the file, or the end of the greet wait. */
static void on_early(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    struct verdict *v = &s->v;
    char buf[1024], t[32], esc[LOG_ESCAPE_BUFSZ];
    struct timeval d;

    if (what & EV_TIMEOUT) {
        early_end(s);
        return;
    }
    /* Look without taking: the engine reads these bytes as commands. */
    ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_PEEK);
    early_elapsed(s, t, sizeof(t), &d);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
        /* A one-shot event: watch again for what is left of the wait. */
        struct timeval left = {s->greet_wait > d.tv_sec ? s->greet_wait - d.tv_sec : 0, 0};
        event_add(&s->ev, &left);
        return;
    }
    if (n <= 0) {
        msg_info("HANGUP after %s from [%s]:%s in tests before SMTP handshake", t, s->client.addr,
                 s->client.port);
        stats.verdicts[SV_HANGUP]++;
        v->hangup = true;
        v->noforward = true;
        conclude(s);
        return;
    }
    log_escape(esc, sizeof(esc), buf, (size_t)n, LOG_PEER_TEXT_MAX);
    msg_info("PREGREET %zd after %s from [%s]:%s: %s", n, t, s->client.addr, s->client.port, esc);
    v->fail |= TEST_BIT(TEST_PREGREET);
    count_failure(s, TEST_PREGREET, s->st->greet_action, "PREGREET");
    switch (s->st->greet_action) {
    case ACTION_DROP:
        ev_stop(s);
        drop(s, "521 5.5.1 Protocol error\r\n");
        return;
    case ACTION_ENFORCE:
        v->rcpt_reply = "550 5.5.1 Protocol error\r\n";
        v->noforward = true;
        break;
    case ACTION_IGNORE:
        break;
    }
    s->pregreet_done = true;
    /* Nothing else to wait for (no DNSBL answer still out)? */
    if (d.tv_sec >= s->greet_wait || !(v->todo & TEST_BIT(TEST_DNSBL)) || s->dnsbl_taken) {
        early_end(s);
        return;
    }
    struct timeval left = {s->greet_wait - d.tv_sec, 0};
    ev_set(s, -1, 0, on_early);
    event_add(&s->ev, &left);
}

/*
 * The greet wait as a libevent "common timeout" for BASE: clients held for
 * the same number of seconds wait in one queue, in the order they came,
 * instead of in the timer heap (O(1) to add and remove, and no heap slot
 * per client).  Few distinct waits exist (the greet wait, stressed or not,
 * across reloads); beyond the table, a plain timeout is used.
 */
static const struct timeval *greet_timeout(struct event_base *base, int secs, struct timeval *tv)
{
    static struct {
        struct event_base *base;
        int secs;
        const struct timeval *tv;
    } tab[8];

    tv->tv_sec = secs;
    tv->tv_usec = 0;
    for (size_t i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
        if (tab[i].tv && tab[i].base == base && tab[i].secs == secs)
            return tab[i].tv;
        if (tab[i].tv == NULL || tab[i].base != base) {
            const struct timeval *c = event_base_init_common_timeout(base, tv);
            if (c == NULL)
                return tv;
            tab[i].base = base;
            tab[i].secs = secs;
            tab[i].tv = c;
            return c;
        }
    }
    return tv;
}

/*
 * The before-220 phase (spec §1.3): send the "220-" teaser and watch for a
 * client that talks before its turn, for the whole greet wait.
 */
static void early_start(struct session *s)
{
    struct verdict *v = &s->v;
    struct timeval tv;

    set_state(s, SS_EARLY);
    struct timeval start;
    gettimeofday(&start, NULL);
    s->mark_us = tv_us(&start);
    long long gw = conf_num_stress(s->st->cf, P_PSC_GREET_WAIT, s->srv->stress);
    s->greet_wait = gw > INT_MAX ? INT_MAX : (int)gw;
    const struct timeval *wait = greet_timeout(s->srv->base, s->greet_wait, &tv);
    if (v->todo & TEST_BIT(TEST_PREGREET)) {
        const char *teaser = s->st->teaser;
        ssize_t n = send(s->fd, teaser, strlen(teaser), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n != (ssize_t)strlen(teaser)) {
            char t[32];
            struct timeval d;
            early_elapsed(s, t, sizeof(t), &d);
            msg_info("HANGUP after %s from [%s]:%s in tests before SMTP handshake", t,
                     s->client.addr, s->client.port);
            stats.verdicts[SV_HANGUP]++;
            v->hangup = true;
            v->noforward = true;
            conclude(s);
            return;
        }
        s->teaser_sent = true;
        ev_set(s, s->fd, EV_READ, on_early);
    } else {
        ev_set(s, -1, 0, on_early);
    }
    event_add(&s->ev, wait);
    if ((v->todo & TEST_BIT(TEST_DNSBL)) && s->srv->dnsbl) {
        const struct settings *st = s->st;
        s->lookup = dnsbl_lookup(s->srv->dnsbl, st->dnsbl_sites, s->client.addr, st->dnsbl_timeout,
                                 st->dnsbl_min_ttl, st->dnsbl_max_ttl, on_dnsbl, s);
        /* A result still valid from an earlier connection: no wait for it. */
        if (dnsbl_done(s->lookup))
            on_dnsbl(s);
    }
}

static void on_cache(void *ctx, bool found, const char *rec);
static void screen(struct session *s);

/* The endpoints are known: run the connection flow (spec §1.2 steps 2-10). */
static void session_start(struct session *s)
{
    struct server *srv = s->srv;
    const struct settings *st = s->st;
    struct verdict *v = &s->v;
    time_t now = time(NULL);

    msg_info("CONNECT from [%s]:%s to [%s]:%s", s->client.addr, s->client.port, s->server->addr,
             s->server->port);
    stats.connections++;
    /* The address, or its network with prefix aggregation. */
    char key[ENDPOINT_KEY_MAX];
    endpoint_key(&s->client, st->v4prefix, st->v6prefix, key, sizeof(key));
    s->ip = ipstate_hold(srv->ips, key);
    srv->check_queue++;
    s->in_check = true;
    verdict_init(v);
    if (!srv->stress && srv->check_queue >= (size_t)(0.9 * (double)st->pre_queue_limit)) {
        srv->stress = true;
        stats.stress = true;
        stats.stress_entered++;
        msg_info("entering STRESS mode with %zu connections", srv->check_queue);
    }
    if (st->client_limit > 0 && s->ip->count > (unsigned long long)st->client_limit) {
        msg_info("NOQUEUE: reject: CONNECT from [%s]:%s: too many connections", s->client.addr,
                 s->client.port);
        stats.limits[SL_CLIENT_CONNECTIONS]++;
        stats_reject(s->client.addr, s->client.port, "too many connections", "421");
        drop(s, "421 4.7.0 Error: too many connections\r\n");
        return;
    }
    if (st->post_queue_limit > 0 && srv->post_queue >= (size_t)st->post_queue_limit) {
        msg_info("NOQUEUE: reject: CONNECT from [%s]:%s: all server ports busy", s->client.addr,
                 s->client.port);
        stats.limits[SL_POST_QUEUE]++;
        stats_reject(s->client.addr, s->client.port, "all server ports busy", "421");
        drop(s, "421 4.3.2 All server ports are busy\r\n");
        return;
    }
    switch (acl_eval(st->access, &s->client)) {
    case ACL_PERMIT:
        msg_info("%s [%s]:%s", word(s, "ALLOWLISTED", "WHITELISTED"), s->client.addr,
                 s->client.port);
        stats.verdicts[SV_ALLOWLISTED]++;
        conclude(s);
        return;
    case ACL_REJECT:
        msg_info("%s [%s]:%s", word(s, "DENYLISTED", "BLACKLISTED"), s->client.addr,
                 s->client.port);
        stats.verdicts[SV_DENYLISTED]++;
        if (st->denylist_action != ACTION_IGNORE)
            stats_reject(s->client.addr, s->client.port, "DENYLISTED",
                         st->denylist_action == ACTION_DROP ? "drop" : "enforce");
        v->other_fail = true;
        switch (st->denylist_action) {
        case ACTION_DROP:
            drop(s, "521 5.3.2 Service currently unavailable\r\n");
            return;
        case ACTION_ENFORCE:
            v->rcpt_reply = "550 5.3.2 Service currently unavailable\r\n";
            v->noforward = true;
            break;
        case ACTION_IGNORE:
            /* Not a pass: the list is consulted again next time. */
            v->other_fail = false;
            break;
        }
        break;
    case ACL_DUNNO:
        break;
    }

    /* The temporary allowlist: only for a sole session with no failure (or
     * one that came while the first still waits for Redis's answer, and so
     * would find no stamps to share yet). */
    char rec[VERDICT_RECORD_MAX];
    if (!verdict_any_fail(v) && (s->ip->count == 1 || s->ip->lookups > 0) && st->cache_enabled &&
        srv->cache) {
        switch (
            cache_lookup(srv->cache, s->ip->addr, rec, sizeof(rec), on_cache, s, &s->cache_req)) {
        case CACHE_PENDING:
            s->ip->lookups++;
            return; /* on_cache() goes on */
        case CACHE_HIT:
            on_cache(s, true, rec);
            return;
        case CACHE_MISS:
            stats.cache_lookups[SC_MISS]++;
            break;
        }
        verdict_new(v, s->ip->stamps, st->enabled);
    } else if (s->ip->count > 1) {
        /* Another session of the address holds its expiry times: nothing
         * due is PASS OLD, as with a cache hit (postscreen does the same
         * with its shared per-address record). */
        verdict_todo(v, s->ip->stamps, now, st->enabled);
        if (v->todo == 0 && !verdict_any_fail(v)) {
            msg_info("PASS OLD [%s]:%s", s->client.addr, s->client.port);
            stats.verdicts[SV_PASS_OLD]++;
            conclude(s);
            return;
        }
    } else {
        verdict_new(v, s->ip->stamps, st->enabled);
    }
    screen(s);
}

/* The allowlist's answer for a sole session: PASS OLD, or the tests due. */
static void on_cache(void *ctx, bool found, const char *rec)
{
    struct session *s = ctx;
    struct verdict *v = &s->v;

    if (s->cache_req) {
        s->cache_req = NULL;
        s->ip->lookups--;
    }
    if (!found) {
        stats.cache_lookups[SC_MISS]++;
        verdict_new(v, s->ip->stamps, s->st->enabled);
    } else {
        verdict_parse(rec, s->ip->stamps);
        verdict_todo(v, s->ip->stamps, time(NULL), s->st->enabled);
        stats.cache_lookups[v->todo == 0 ? SC_HIT : SC_STALE]++;
        if (v->todo == 0) {
            msg_info("PASS OLD [%s]:%s", s->client.addr, s->client.port);
            stats.verdicts[SV_PASS_OLD]++;
            conclude(s);
            return;
        }
    }
    screen(s);
}

/* The tests due are known: the interface veto, the queue limit, the tests. */
static void screen(struct session *s)
{
    struct server *srv = s->srv;
    const struct settings *st = s->st;
    struct verdict *v = &s->v;

    /* No allowlisting through a backup MX address; fail closed. */
    if (!addrlist_match(st->allow_ifaces, s->server)) {
        v->other_fail = true;
        v->noforward = true;
        msg_info("%s [%s]:%s", word(s, "ALLOWLIST VETO", "WHITELIST VETO"), s->client.addr,
                 s->client.port);
        stats.verdicts[SV_ALLOWLIST_VETO]++;
    }
    if (st->pre_queue_limit > 0 &&
        srv->check_queue - srv->post_queue >= (size_t)st->pre_queue_limit) {
        msg_info("reject: connect from [%s]:%s: all screening ports busy", s->client.addr,
                 s->client.port);
        stats.limits[SL_PRE_QUEUE]++;
        stats_reject(s->client.addr, s->client.port, "all screening ports busy", "421");
        drop(s, "421 4.3.2 All screening ports are busy\r\n");
        return;
    }
    if (v->todo & TEST_MASK_EARLY)
        early_start(s);
    else if ((v->todo & TEST_MASK_DEEP) || v->noforward)
        start_engine(s, false);
    else
        conclude(s);
}

/* The upstream PROXY header could not be read: 421 and close, no CONNECT. */
static void upstream_fail(struct session *s)
{
    /* Before the CONNECT line postscreen writes this raw. */
    reply_raw(s, "421 4.3.2 No system resources\r\n", strlen("421 4.3.2 No system resources\r\n"));
    session_free(s);
}

/* Bytes (or the time limit) on a connection that must start with a PROXY header. */
static void on_upstream(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    unsigned char buf[PROXY_PEEK_MAX];
    struct proxy_result r;

    if (what & EV_TIMEOUT) {
        msg_warn("haproxy read: time limit exceeded");
        upstream_fail(s);
        return;
    }
    ssize_t n = recv(fd, buf, sizeof(buf), MSG_PEEK);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0) {
        if (n < 0)
            msg_warn("haproxy read: %m");
        else
            msg_warn("haproxy read: EOF");
        upstream_fail(s);
        return;
    }
    switch (proxy_parse(buf, (size_t)n, &r)) {
    case PROXY_MORE: {
        /* With MSG_PEEK an end of file hides behind the bytes already
         * queued: ask the kernel whether the client has finished sending. */
        struct pollfd pfd = {fd, POLLRDHUP, 0};
        if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLRDHUP | POLLHUP | POLLERR))) {
            msg_warn("haproxy read: EOF");
            upstream_fail(s);
            return;
        }
        /* Edge-triggered: woken again when more arrives, but never later
         * than the deadline, however slowly the bytes trickle in. */
        struct timeval now;
        event_base_gettimeofday_cached(s->srv->base, &now);
        int64_t us = s->mark_us - tv_us(&now);
        if (us < 0)
            us = 0;
        struct timeval left = {(time_t)(us / 1000000), (suseconds_t)(us % 1000000)};
        event_add(&s->ev, &left);
        return;
    }
    case PROXY_FAIL: {
        char esc[LOG_ESCAPE_BUFSZ];
        log_escape(esc, sizeof(esc), buf, (size_t)n, LOG_PEER_TEXT_MAX);
        msg_warn("haproxy read: %s: %s", r.reason, esc);
        upstream_fail(s);
        return;
    }
    case PROXY_DONE:
        break;
    }
    /* Consume exactly the header; the client's own bytes stay queued. */
    if (recv(fd, buf, r.len, 0) != (ssize_t)r.len) {
        msg_warn("haproxy read: %m");
        upstream_fail(s);
        return;
    }
    ev_stop(s);
    if (!r.local) {
        const struct endpoint *server = local_endpoint((struct sockaddr *)&r.dst, r.dstlen);
        if (server == NULL || endpoint_set(&s->client, (struct sockaddr *)&r.src, r.srclen) < 0) {
            if (server)
                local_release(server);
            msg_warn("haproxy read: unusable endpoints");
            upstream_fail(s);
            return;
        }
        local_release(s->server);
        s->server = server;
    }
    session_start(s);
}

/* Take a freshly accepted, non-blocking client socket; see session.h. */
void session_accept(struct server *srv, int fd, const struct sockaddr *peer, socklen_t peerlen,
                    const struct sockaddr *local, socklen_t locallen)
{
    struct session *s = xcalloc(1, sizeof(*s));
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    s->srv = srv;
    s->st = settings_ref(srv->st);
    s->fd = fd;
    srv->sessions++;
    stats_phase(SP__COUNT, SP_START);
    if (endpoint_set(&s->client, peer, peerlen) < 0) {
        msg_warn("accept: unexpected peer address -- dropping this connection");
        upstream_fail(s);
        return;
    }
    if (local == NULL) {
        local = (struct sockaddr *)&ss;
        if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
            len = 0;
        locallen = len;
    }
    if (locallen == 0 || (s->server = local_endpoint(local, locallen)) == NULL) {
        msg_warn("getsockname: %m -- dropping this connection");
        upstream_fail(s);
        return;
    }
    if (s->st->upstream_proxy) {
        struct timeval tv = {s->st->upstream_timeout, 0};
        set_state(s, SS_UPSTREAM);
        ev_set(s, fd, EV_READ | EV_PERSIST | EV_ET, on_upstream);
        struct timeval now;
        event_base_gettimeofday_cached(srv->base, &now);
        s->mark_us = tv_us(&now) + (int64_t)tv.tv_sec * 1000000;
        event_add(&s->ev, &tv);
        return;
    }
    session_start(s);
}
