/*
 * tlsrelay - join two sockets in user space, either or both under TLS;
 * see tlsrelay.h.
 *
 * One pump() runs after every event: it moves what can move in both
 * directions, then asks the loop for exactly the readiness that would let
 * more move.  OpenSSL may want a socket writable to read (and readable to
 * write), so each end's interest is computed from its last SSL_read() and
 * SSL_write() results.  A write OpenSSL could not finish is retried with
 * the same bytes, so a buffer is only compacted once it is empty.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "handoff/tlsrelay.h"
#include "stats/stats.h"
#include "util/mem.h"

enum want {
    WANT_NONE,
    WANT_READ,
    WANT_WRITE,
};

struct buf {
    char data[TLSRELAY_BUF];
    size_t off, len; /* unsent bytes are data[off..len) */
};

struct tlsrelay;

/* One side: its socket, its TLS session (or NULL) and the bytes going to it. */
struct end {
    struct tlsrelay *t;
    int fd;
    SSL *ssl;
    struct buf to;        /* bytes for this end, read from the other */
    bool eof;             /* this end has finished sending */
    bool shut;            /* our sending half to it is shut down (or it is gone) */
    enum want read_want;  /* what its last SSL_read() waits for */
    enum want write_want; /* what its last SSL_write() waits for */
    bool closing;         /* close_notify started, not yet out */
    struct event *ev;
};

struct tlsrelay {
    struct event_base *base;
    struct end e[2];     /* [0] the client, [1] the backend */
    struct event *timer; /* idle check */
    time_t idle;
    struct timeval last; /* last byte moved */
    unsigned long moved; /* chunks moved, to see progress within a pump */
    relay_done_fn fn;
    void *ctx;
};

/* Close everything, tell the owner, free. */
static void finish(struct tlsrelay *t, enum relay_end why)
{
    for (int i = 0; i < 2; i++) {
        struct end *e = &t->e[i];
        event_free(e->ev);
        if (e->ssl) {
            SSL_set_quiet_shutdown(e->ssl, why != RELAY_DONE);
            SSL_free(e->ssl);
        }
        close(e->fd);
    }
    event_free(t->timer);
    relay_done_fn fn = t->fn;
    void *ctx = t->ctx;
    OPENSSL_cleanse(t, sizeof(*t));
    free(t);
    fn(ctx, why);
}

static void touch(struct tlsrelay *t)
{
    event_base_gettimeofday_cached(t->base, &t->last);
    t->moved++;
}

/* The other end of E. */
static struct end *peer(struct end *e)
{
    return e == &e->t->e[0] ? &e->t->e[1] : &e->t->e[0];
}

/* An end whose connection broke: nothing more from it or to it. */
static void gone(struct end *e)
{
    ERR_clear_error();
    e->eof = true;
    e->shut = true;
    e->read_want = e->write_want = WANT_NONE;
    e->to.off = e->to.len = 0;
}

/* Writing to E failed: nothing more to it, but what it sent is still read. */
static void write_gone(struct end *e)
{
    ERR_clear_error();
    e->shut = true;
    e->write_want = WANT_NONE;
    e->to.off = e->to.len = 0;
}

/* Read from E into the other end's buffer. */
static void end_read(struct end *e)
{
    struct buf *b = &peer(e)->to;

    e->read_want = WANT_NONE;
    while (!e->eof && b->len < sizeof(b->data)) {
        size_t room = sizeof(b->data) - b->len;
        if (e->ssl) {
            ERR_clear_error();
            int n = SSL_read(e->ssl, b->data + b->len, (int)room);
            if (n > 0) {
                b->len += (size_t)n;
                touch(e->t);
                continue;
            }
            switch (SSL_get_error(e->ssl, n)) {
            case SSL_ERROR_WANT_READ:
                e->read_want = WANT_READ;
                return;
            case SSL_ERROR_WANT_WRITE:
                e->read_want = WANT_WRITE;
                return;
            case SSL_ERROR_ZERO_RETURN:
                e->eof = true;
                return;
            default:
                /* What it sent before still goes on to the other end. */
                gone(e);
                return;
            }
        }
        ssize_t n = recv(e->fd, b->data + b->len, room, 0);
        if (n > 0) {
            b->len += (size_t)n;
            touch(e->t);
        } else if (n == 0) {
            e->eof = true;
        } else if (errno == EAGAIN || errno == EINTR) {
            e->read_want = WANT_READ;
            return;
        } else {
            gone(e);
            return;
        }
    }
}

/* N bytes delivered to end E (e[0] is the client, e[1] the backend). */
static void count(const struct end *e, size_t n)
{
    stats.relay_bytes[e == &e->t->e[0] ? SD_TO_CLIENT : SD_TO_BACKEND] += n;
}

/* Write E's pending bytes to it; shut its sending half once the other end
 * has ended and everything is out. */
static void end_write(struct end *e)
{
    struct buf *b = &e->to;

    e->write_want = WANT_NONE;
    while (!e->shut && b->off < b->len) {
        size_t n = b->len - b->off;
        if (e->ssl) {
            ERR_clear_error();
            int w = SSL_write(e->ssl, b->data + b->off, (int)n);
            if (w > 0) {
                b->off += (size_t)w;
                count(e, (size_t)w);
                touch(e->t);
                continue;
            }
            switch (SSL_get_error(e->ssl, w)) {
            case SSL_ERROR_WANT_READ:
                e->write_want = WANT_READ;
                return;
            case SSL_ERROR_WANT_WRITE:
                e->write_want = WANT_WRITE;
                return;
            default:
                write_gone(e);
                return;
            }
        }
        ssize_t w = send(e->fd, b->data + b->off, n, MSG_NOSIGNAL);
        if (w > 0) {
            b->off += (size_t)w;
            count(e, (size_t)w);
            touch(e->t);
        } else if (w < 0 && (errno == EAGAIN || errno == EINTR)) {
            e->write_want = WANT_WRITE;
            return;
        } else {
            write_gone(e);
            return;
        }
    }
    if (b->off == b->len)
        b->off = b->len = 0;
    if (peer(e)->eof && b->len == 0 && !e->shut) {
        if (e->ssl) {
            ERR_clear_error();
            int r = SSL_shutdown(e->ssl);
            if (r < 0) {
                switch (SSL_get_error(e->ssl, r)) {
                case SSL_ERROR_WANT_WRITE:
                    e->closing = true;
                    e->write_want = WANT_WRITE;
                    return;
                case SSL_ERROR_WANT_READ:
                    e->closing = true;
                    e->write_want = WANT_READ;
                    return;
                default:
                    ERR_clear_error();
                    break;
                }
            }
        }
        shutdown(e->fd, SHUT_WR);
        e->shut = true;
    }
}

/* Is E read from (not ended, and room on the other side)? */
static bool reading(struct end *e)
{
    return !e->eof && peer(e)->to.len < TLSRELAY_BUF;
}

/* The readiness E waits for. */
static short interest(struct end *e)
{
    short what = 0;

    if (reading(e))
        what |= e->read_want == WANT_WRITE ? EV_WRITE : EV_READ;
    if (!e->shut && (e->to.off < e->to.len || e->closing))
        what |= e->write_want == WANT_READ ? EV_READ : EV_WRITE;
    return what;
}

static void on_event(evutil_socket_t fd, short what, void *arg);

/* Move what can move, then wait for what would let more move. */
static void pump(struct tlsrelay *t)
{
    for (int round = 0; round < 4; round++) {
        unsigned long before = t->moved;
        for (int i = 0; i < 2; i++) {
            end_read(&t->e[i]);
            end_write(&t->e[1 - i]);
        }
        if (t->moved == before)
            break;
    }
    /* Done when each end has been shut, i.e. both have ended and all is out. */
    if (t->e[0].shut && t->e[1].shut) {
        finish(t, RELAY_DONE);
        return;
    }
    for (int i = 0; i < 2; i++) {
        struct end *e = &t->e[i];
        short what = interest(e);
        event_del(e->ev);
        if (what == 0)
            continue;
        event_assign(e->ev, t->base, e->fd, what, on_event, t);
        event_add(e->ev, NULL);
        /* Bytes OpenSSL has already decrypted wake no event: go on now,
         * when there is room for them. */
        if (e->ssl && reading(e) && e->read_want != WANT_WRITE && SSL_pending(e->ssl) > 0)
            event_active(e->ev, EV_READ, 0);
    }
}

static void on_event(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    pump(arg);
}

/* The idle timer. */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct tlsrelay *t = arg;
    struct timeval now;

    (void)fd;
    (void)what;
    event_base_gettimeofday_cached(t->base, &now);
    time_t quiet = now.tv_sec - t->last.tv_sec;
    if (quiet >= t->idle) {
        finish(t, RELAY_IDLE);
        return;
    }
    struct timeval left = {t->idle - quiet, 0};
    event_add(t->timer, &left);
}

/* Join the two ends; see tlsrelay.h. */
struct tlsrelay *tlsrelay_start(struct event_base *base, int cfd, SSL *cssl, int bfd, SSL *bssl,
                                const char *pending, size_t npending, time_t idle, relay_done_fn fn,
                                void *ctx)
{
    struct tlsrelay *t = xcalloc(1, sizeof(*t));

    t->base = base;
    t->idle = idle;
    t->fn = fn;
    t->ctx = ctx;
    t->e[0].fd = cfd;
    t->e[0].ssl = cssl;
    t->e[1].fd = bfd;
    t->e[1].ssl = bssl;
    if (npending > sizeof(t->e[1].to.data))
        npending = sizeof(t->e[1].to.data);
    if (npending)
        memcpy(t->e[1].to.data, pending, npending);
    t->e[1].to.len = npending;
    for (int i = 0; i < 2; i++) {
        struct end *e = &t->e[i];
        e->t = t;
        e->ev = event_new(base, e->fd, EV_READ, on_event, t);
        /* An end that closes without close_notify has ended all the same. */
        if (e->ssl)
            SSL_set_options(e->ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
    }
    t->timer = evtimer_new(base, on_timer, t);
    struct timeval tv = {idle, 0};
    event_add(t->timer, &tv);
    touch(t);
    /* Start from the loop: bytes OpenSSL holds wake no event. */
    event_active(t->e[0].ev, EV_READ, 0);
    return t;
}
