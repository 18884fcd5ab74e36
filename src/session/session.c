/*
 * session - one client connection; see session.h.
 *
 * States: UPSTREAM (reading a load balancer's PROXY header), HANDOFF
 * (waiting for the backend to take the client), RELAY (joined).  The
 * session is freed when its last owner lets go: immediately on a reject,
 * or when the hand-off reports HANDOFF_ENDED.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "handoff/handoff.h"
#include "log/log.h"
#include "net/proxy.h"
#include "session/session.h"
#include "util/mem.h"

enum sstate {
    SS_UPSTREAM, /* reading the upstream PROXY header */
    SS_HANDOFF,  /* the backend has not taken the client yet */
    SS_RELAY,    /* the backend has the client */
};

struct session {
    struct server *srv;      /* shared state */
    struct settings *st;     /* settings this session started with (a reference) */
    enum sstate state;       /* where the session is */
    int fd;                  /* client socket; -1 once handed over */
    struct endpoint client;  /* real client endpoint */
    struct endpoint server;  /* real server endpoint */
    struct ipstate *ip;      /* per-address record, once CONNECT is logged */
    struct event *ev;        /* SS_UPSTREAM read and time limit */
    struct handoff *ho;      /* SS_HANDOFF and SS_RELAY */
    struct timeval deadline; /* SS_UPSTREAM: end of the time limit */
    bool in_check;           /* counted in srv->check_queue */
    bool in_post;            /* counted in srv->post_queue */
};

/* Send a reply, best effort: the socket is fresh and the reply small. */
static void reply(struct session *s, const char *text)
{
    ssize_t n = send(s->fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);

    if (n < 0 && errno != EPIPE && errno != ECONNRESET && errno != EAGAIN)
        msg_warn("write [%s]:%s: %m", s->client.addr, s->client.port);
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

/* Free the session and everything it counts. */
static void session_free(struct session *s)
{
    struct server *srv = s->srv;

    if (s->ev)
        event_free(s->ev);
    if (s->fd >= 0)
        close_client(s->fd);
    if (s->in_check)
        srv->check_queue--;
    if (s->in_post)
        srv->post_queue--;
    if (s->state == SS_RELAY)
        srv->relays--;
    if (s->ip)
        ipstate_release(srv->ips, s->ip);
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

/* The hand-off reports progress. */
static void on_handoff(void *ctx, enum handoff_event ev)
{
    struct session *s = ctx;
    struct server *srv = s->srv;

    switch (ev) {
    case HANDOFF_FAIL_CONNECT:
        s->ho = NULL;
        reply(s, "421 4.3.2 All server ports are busy\r\n");
        session_free(s);
        return;
    case HANDOFF_FAIL_PASS:
        s->ho = NULL;
        reply(s, "421 4.3.2 No system resources\r\n");
        session_free(s);
        return;
    case HANDOFF_TAKEN:
        /* The client socket belongs to the hand-off (or smtpd) now. */
        s->fd = -1;
        s->state = SS_RELAY;
        srv->relays++;
        srv->post_queue--;
        s->in_post = false;
        srv->check_queue--;
        s->in_check = false;
        return;
    case HANDOFF_ENDED:
        /* The hand-off has closed the client socket. */
        s->ho = NULL;
        s->fd = -1;
        session_free(s);
        return;
    }
}

/* Hand the client to the backend. */
static void hand_off(struct session *s)
{
    s->state = SS_HANDOFF;
    s->srv->post_queue++;
    s->in_post = true;
    s->ho = handoff_start(s->srv->base, s->st, s->fd, &s->client, &s->server, on_handoff, s);
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

/* The endpoints are known: run the connection flow (spec §1.2 steps 2-6). */
static void session_start(struct session *s)
{
    struct server *srv = s->srv;
    const struct settings *st = s->st;

    msg_info("CONNECT from [%s]:%s to [%s]:%s", s->client.addr, s->client.port, s->server.addr,
             s->server.port);
    s->ip = ipstate_hold(srv->ips, s->client.addr);
    srv->check_queue++;
    s->in_check = true;
    if (st->client_limit > 0 && s->ip->count > (unsigned long long)st->client_limit) {
        msg_info("NOQUEUE: reject: CONNECT from [%s]:%s: too many connections", s->client.addr,
                 s->client.port);
        reply(s, "421 4.7.0 Error: too many connections\r\n");
        disconnect(s);
        return;
    }
    if (st->post_queue_limit > 0 && srv->post_queue >= (size_t)st->post_queue_limit) {
        msg_info("NOQUEUE: reject: CONNECT from [%s]:%s: all server ports busy", s->client.addr,
                 s->client.port);
        reply(s, "421 4.3.2 All server ports are busy\r\n");
        disconnect(s);
        return;
    }
    switch (acl_eval(st->access, &s->client)) {
    case ACL_PERMIT:
        msg_info("%s [%s]:%s", word(s, "ALLOWLISTED", "WHITELISTED"), s->client.addr,
                 s->client.port);
        hand_off(s);
        return;
    case ACL_REJECT:
        msg_info("%s [%s]:%s", word(s, "DENYLISTED", "BLACKLISTED"), s->client.addr,
                 s->client.port);
        switch (st->denylist_action) {
        case ACTION_DROP:
            reply(s, "521 5.3.2 Service currently unavailable\r\n");
            disconnect(s);
            return;
        case ACTION_ENFORCE: /* refused at start-up until the SMTP engine exists */
        case ACTION_IGNORE:
            break;
        }
        break;
    case ACL_DUNNO:
        break;
    }
    /* No test is implemented yet: undecided clients go to the backend, as
     * postscreen does when no test is enabled. */
    hand_off(s);
}

/* The upstream PROXY header could not be read: 421 and close, no CONNECT. */
static void upstream_fail(struct session *s)
{
    reply(s, "421 4.3.2 No system resources\r\n");
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
        struct timeval now, left;
        event_base_gettimeofday_cached(s->srv->base, &now);
        timersub(&s->deadline, &now, &left);
        if (left.tv_sec < 0)
            left.tv_sec = left.tv_usec = 0;
        event_add(s->ev, &left);
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
    event_free(s->ev);
    s->ev = NULL;
    if (!r.local) {
        endpoint_set(&s->client, (struct sockaddr *)&r.src, r.srclen);
        endpoint_set(&s->server, (struct sockaddr *)&r.dst, r.dstlen);
    }
    session_start(s);
}

/* Take a freshly accepted, non-blocking client socket. */
void session_accept(struct server *srv, int fd)
{
    struct session *s = xcalloc(1, sizeof(*s));
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    s->srv = srv;
    s->st = settings_ref(srv->st);
    s->fd = fd;
    srv->sessions++;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0 ||
        endpoint_set(&s->client, (struct sockaddr *)&ss, len) < 0) {
        msg_warn("getpeername: %m -- dropping this connection");
        upstream_fail(s);
        return;
    }
    len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0 ||
        endpoint_set(&s->server, (struct sockaddr *)&ss, len) < 0) {
        msg_warn("getsockname: %m -- dropping this connection");
        upstream_fail(s);
        return;
    }
    if (s->st->upstream_proxy) {
        struct timeval tv = {s->st->upstream_timeout, 0};
        s->state = SS_UPSTREAM;
        s->ev = event_new(srv->base, fd, EV_READ | EV_PERSIST | EV_ET, on_upstream, s);
        event_base_gettimeofday_cached(srv->base, &s->deadline);
        s->deadline.tv_sec += tv.tv_sec;
        event_add(s->ev, &tv);
        return;
    }
    session_start(s);
}
