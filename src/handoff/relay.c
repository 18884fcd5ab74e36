/*
 * relay - join two sockets with splice(2); see relay.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "handoff/relay.h"
#include "stats/stats.h"
#include "log/log.h"
#include "util/mem.h"

/* The most one splice call moves: the default pipe capacity. */
#define RELAY_CHUNK 65536

/* Empty pipes kept for the next relays: two pipe2() and four close()
 * calls less per relayed session. */
#define POOL_MAX 64 /* 128 descriptors at most */

static int pool[POOL_MAX][2];
static size_t npool;

/* An empty pipe, from the pool or new; -1 when out of descriptors. */
static int pipe_get(int p[2])
{
    if (npool > 0) {
        npool--;
        p[0] = pool[npool][0];
        p[1] = pool[npool][1];
        return 0;
    }
    return pipe2(p, O_NONBLOCK | O_CLOEXEC);
}

/* Done with pipe P, which held PENDING bytes: keep it if empty. */
static void pipe_put(int p[2], size_t pending)
{
    if (p[0] < 0)
        return;
    if (pending == 0 && npool < POOL_MAX) {
        pool[npool][0] = p[0];
        pool[npool][1] = p[1];
        npool++;
        return;
    }
    close(p[0]);
    close(p[1]);
}

struct relay;

struct dir {
    struct relay *r;
    int src;          /* read side */
    int dst;          /* write side */
    int pipe[2];      /* [0] read end, [1] write end */
    size_t pending;   /* bytes in the pipe */
    bool eof;         /* src has ended */
    bool shut;        /* dst's sending half is shut down */
    struct event *rd; /* src readable */
    struct event *wr; /* dst writable (only while pending) */
};

struct relay {
    struct dir d[2];     /* [0]: a to b, [1]: b to a */
    int a, b;            /* the sockets, owned */
    struct event *timer; /* idle check */
    time_t idle;         /* idle limit in seconds */
    struct timeval last; /* last byte moved */
    struct event_base *base;
    relay_done_fn fn;
    void *ctx;
};

/* Close everything, tell the owner, free. */
static void relay_end(struct relay *r, enum relay_end why)
{
    for (int i = 0; i < 2; i++) {
        event_free(r->d[i].rd);
        event_free(r->d[i].wr);
        pipe_put(r->d[i].pipe, r->d[i].pending);
    }
    event_free(r->timer);
    close(r->a);
    close(r->b);
    relay_done_fn fn = r->fn;
    void *ctx = r->ctx;
    free(r);
    fn(ctx, why);
}

/* Note activity for the idle check. */
static void touch(struct relay *r)
{
    event_base_gettimeofday_cached(r->base, &r->last);
}

/* Both directions finished? */
static bool finished(const struct relay *r)
{
    return r->d[0].shut && r->d[1].shut;
}

/* Move pipe contents to dst; 0 when drained or blocked, -1 on error. */
static int flush(struct dir *d)
{
    while (d->pending > 0) {
        ssize_t n =
            splice(d->pipe[0], NULL, d->dst, NULL, d->pending, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
        if (n > 0) {
            d->pending -= (size_t)n;
            stats.relay_bytes[d == &d->r->d[0] ? SD_TO_BACKEND : SD_TO_CLIENT] += (uint64_t)n;
            touch(d->r);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return 0;
        return -1;
    }
    return 0;
}

/*
 * DST can no longer be written to: this direction is over (what is left
 * in its pipe is lost), but the other direction still reads DST to its
 * end, so that a reply sent just before a reset still gets through.
 */
static void broken(struct dir *d)
{
    event_del(d->rd);
    event_del(d->wr);
    d->eof = true;
    d->shut = true;
}

/* After a flush: wait for dst, or shut it down at EOF, or read again. */
static void settle(struct dir *d)
{
    if (d->pending > 0) {
        event_del(d->rd);
        event_add(d->wr, NULL);
        return;
    }
    event_del(d->wr);
    if (d->eof) {
        if (!d->shut) {
            shutdown(d->dst, SHUT_WR);
            d->shut = true;
        }
        return;
    }
    event_add(d->rd, NULL);
}

/* src readable: move one chunk into the pipe and on. */
static void on_read(evutil_socket_t fd, short what, void *arg)
{
    struct dir *d = arg;
    struct relay *r = d->r;

    (void)fd;
    (void)what;
    ssize_t n =
        splice(d->src, NULL, d->pipe[1], NULL, RELAY_CHUNK, SPLICE_F_NONBLOCK | SPLICE_F_MOVE);
    if (n > 0) {
        d->pending += (size_t)n;
        touch(r);
    } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        /* An end of file, or a broken connection: what it sent before
         * still goes on, then the other side hears the end. */
        d->eof = true;
        event_del(d->rd);
    } else {
        return;
    }
    if (flush(d) < 0) {
        broken(d);
        if (finished(r))
            relay_end(r, RELAY_ERROR);
        return;
    }
    settle(d);
    if (finished(r))
        relay_end(r, RELAY_DONE);
}

/* dst writable again: drain the pipe. */
static void on_write(evutil_socket_t fd, short what, void *arg)
{
    struct dir *d = arg;
    struct relay *r = d->r;

    (void)fd;
    (void)what;
    if (flush(d) < 0) {
        broken(d);
        if (finished(r))
            relay_end(r, RELAY_ERROR);
        return;
    }
    settle(d);
    if (finished(r))
        relay_end(r, RELAY_DONE);
}

/* The idle timer: end the relay when nothing moved for the idle time. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct relay *r = arg;
    struct timeval now, left;

    (void)fd;
    (void)what;
    event_base_gettimeofday_cached(r->base, &now);
    time_t quiet = now.tv_sec - r->last.tv_sec;
    if (quiet >= r->idle) {
        relay_end(r, RELAY_IDLE);
        return;
    }
    left.tv_sec = r->idle - quiet;
    left.tv_usec = 0;
    event_add(r->timer, &left);
}

/* Join sockets A and B; see relay.h.  NULL (fds closed) if out of pipes. */
struct relay *relay_start(struct event_base *base, int a, int b, time_t idle, relay_done_fn fn,
                          void *ctx)
{
    struct relay *r = xcalloc(1, sizeof(*r));

    r->a = a;
    r->b = b;
    r->base = base;
    r->idle = idle;
    r->fn = fn;
    r->ctx = ctx;
    for (int i = 0; i < 2; i++) {
        struct dir *d = &r->d[i];
        d->r = r;
        d->src = i == 0 ? a : b;
        d->dst = i == 0 ? b : a;
        d->pipe[0] = d->pipe[1] = -1;
    }
    for (int i = 0; i < 2; i++) {
        struct dir *d = &r->d[i];
        if (pipe_get(d->pipe) < 0) {
            msg_warn("relay: pipe: %m");
            for (int k = 0; k < 2; k++)
                pipe_put(r->d[k].pipe, 0);
            close(a);
            close(b);
            free(r);
            return NULL;
        }
    }
    for (int i = 0; i < 2; i++) {
        struct dir *d = &r->d[i];
        d->rd = event_new(base, d->src, EV_READ | EV_PERSIST, on_read, d);
        d->wr = event_new(base, d->dst, EV_WRITE | EV_PERSIST, on_write, d);
        event_add(d->rd, NULL);
    }
    r->timer = evtimer_new(base, on_timer, r);
    struct timeval tv = {idle, 0};
    event_add(r->timer, &tv);
    touch(r);
    return r;
}
