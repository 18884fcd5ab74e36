/*
 * tlsrelay - TLS client to plaintext backend; see tlsrelay.h.
 *
 * One pump() runs after every event: it moves what can move in both
 * directions, then asks the loop for exactly the readiness that would let
 * more move.  OpenSSL may want the client socket writable to read (and
 * readable to write), so the client's interest is computed from the last
 * SSL_read()/SSL_write() result.  A write OpenSSL could not finish is
 * retried with the same bytes, so a buffer is only compacted once it is
 * empty.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "handoff/tlsrelay.h"
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

struct tlsrelay {
    struct event_base *base;
    SSL *ssl;
    int cfd, bfd;
    struct buf up;           /* client to backend (decrypted) */
    struct buf down;         /* backend to client (to encrypt) */
    bool client_eof;         /* the client's stream has ended */
    bool backend_eof;        /* the backend has ended */
    bool backend_shut;       /* backend's sending half shut down */
    bool client_shut;        /* close_notify sent, client's sending half shut down */
    enum want read_want;     /* what the last SSL_read() waits for */
    enum want write_want;    /* what the last SSL_write() waits for */
    struct event *cev, *bev; /* socket readiness */
    struct event *timer;     /* idle check */
    time_t idle;
    struct timeval last; /* last byte moved */
    relay_done_fn fn;
    void *ctx;
};

/* Close everything, tell the owner, free. */
static void finish(struct tlsrelay *t, enum relay_end why)
{
    event_free(t->cev);
    event_free(t->bev);
    event_free(t->timer);
    SSL_set_quiet_shutdown(t->ssl, why != RELAY_DONE);
    SSL_free(t->ssl);
    close(t->cfd);
    close(t->bfd);
    relay_done_fn fn = t->fn;
    void *ctx = t->ctx;
    OPENSSL_cleanse(t, sizeof(*t));
    free(t);
    fn(ctx, why);
}

static void touch(struct tlsrelay *t)
{
    event_base_gettimeofday_cached(t->base, &t->last);
}

/* Empty buffers start over at the front. */
static void settle(struct buf *b)
{
    if (b->off == b->len)
        b->off = b->len = 0;
}

/* The client's connection broke: nothing more from it or to it. */
static void client_gone(struct tlsrelay *t)
{
    ERR_clear_error();
    t->client_eof = true;
    t->client_shut = true;
    t->read_want = t->write_want = WANT_NONE;
    t->down.off = t->down.len = 0;
}

/* Decrypt client bytes into up; false on a TLS or socket error. */
static bool client_read(struct tlsrelay *t)
{
    while (!t->client_eof && t->up.len < sizeof(t->up.data)) {
        ERR_clear_error();
        int n = SSL_read(t->ssl, t->up.data + t->up.len, (int)(sizeof(t->up.data) - t->up.len));
        if (n > 0) {
            t->up.len += (size_t)n;
            t->read_want = WANT_NONE;
            touch(t);
            continue;
        }
        switch (SSL_get_error(t->ssl, n)) {
        case SSL_ERROR_WANT_READ:
            t->read_want = WANT_READ;
            return true;
        case SSL_ERROR_WANT_WRITE:
            t->read_want = WANT_WRITE;
            return true;
        case SSL_ERROR_ZERO_RETURN:
            t->client_eof = true;
            t->read_want = WANT_NONE;
            return true;
        default:
            /* The client is gone: what it sent still goes to the backend. */
            client_gone(t);
            return true;
        }
    }
    t->read_want = WANT_NONE;
    return true;
}

/* Send up's bytes to the backend; false on error. */
static bool backend_write(struct tlsrelay *t)
{
    while (t->up.off < t->up.len) {
        ssize_t n = send(t->bfd, t->up.data + t->up.off, t->up.len - t->up.off, MSG_NOSIGNAL);
        if (n > 0) {
            t->up.off += (size_t)n;
            touch(t);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return true;
        return false;
    }
    settle(&t->up);
    if (t->client_eof && !t->backend_shut) {
        shutdown(t->bfd, SHUT_WR);
        t->backend_shut = true;
    }
    return true;
}

/* Read backend bytes into down; false on error. */
static bool backend_read(struct tlsrelay *t)
{
    while (!t->backend_eof && t->down.len < sizeof(t->down.data)) {
        ssize_t n = recv(t->bfd, t->down.data + t->down.len, sizeof(t->down.data) - t->down.len, 0);
        if (n > 0) {
            t->down.len += (size_t)n;
            touch(t);
            continue;
        }
        if (n == 0) {
            t->backend_eof = true;
            return true;
        }
        if (errno == EAGAIN || errno == EINTR)
            return true;
        return false;
    }
    return true;
}

/* Encrypt down's bytes to the client; false on error. */
static bool client_write(struct tlsrelay *t)
{
    while (t->down.off < t->down.len) {
        ERR_clear_error();
        int n = SSL_write(t->ssl, t->down.data + t->down.off, (int)(t->down.len - t->down.off));
        if (n > 0) {
            t->down.off += (size_t)n;
            t->write_want = WANT_NONE;
            touch(t);
            continue;
        }
        switch (SSL_get_error(t->ssl, n)) {
        case SSL_ERROR_WANT_READ:
            t->write_want = WANT_READ;
            return true;
        case SSL_ERROR_WANT_WRITE:
            t->write_want = WANT_WRITE;
            return true;
        default:
            client_gone(t);
            return true;
        }
    }
    t->write_want = WANT_NONE;
    settle(&t->down);
    if (t->backend_eof && !t->client_shut) {
        ERR_clear_error();
        SSL_shutdown(t->ssl); /* close_notify, best effort */
        shutdown(t->cfd, SHUT_WR);
        t->client_shut = true;
    }
    return true;
}

static void on_event(evutil_socket_t fd, short what, void *arg);

/* Move what can move, then wait for what would let more move. */
static void pump(struct tlsrelay *t)
{
    for (int round = 0; round < 4; round++) {
        size_t before = t->up.len + t->up.off + t->down.len + t->down.off;
        if (!client_read(t) || !backend_write(t) || !backend_read(t) || !client_write(t)) {
            finish(t, RELAY_ERROR);
            return;
        }
        /* Decrypted bytes OpenSSL still holds do not wake the loop. */
        size_t after = t->up.len + t->up.off + t->down.len + t->down.off;
        if (after == before && !(SSL_pending(t->ssl) > 0 && t->up.len < sizeof(t->up.data)))
            break;
    }
    if (t->backend_shut && t->client_shut) {
        finish(t, RELAY_DONE);
        return;
    }
    short cw = 0, bw = 0;
    /* Read the client to its end, even after our side is shut. */
    if (!t->client_eof && t->up.len < sizeof(t->up.data))
        cw |= t->read_want == WANT_WRITE ? EV_WRITE : EV_READ;
    if (!t->client_shut && t->down.off < t->down.len)
        cw |= t->write_want == WANT_READ ? EV_READ : EV_WRITE;
    if (!t->backend_eof && t->down.len < sizeof(t->down.data))
        bw |= EV_READ;
    if (t->up.off < t->up.len)
        bw |= EV_WRITE;
    event_del(t->cev);
    event_del(t->bev);
    if (cw) {
        event_assign(t->cev, t->base, t->cfd, cw, on_event, t);
        event_add(t->cev, NULL);
        /* Bytes OpenSSL has already decrypted wake no event: go on now. */
        if ((cw & EV_READ) && t->read_want != WANT_WRITE && SSL_pending(t->ssl) > 0)
            event_active(t->cev, EV_READ, 0);
    }
    if (bw) {
        event_assign(t->bev, t->base, t->bfd, bw, on_event, t);
        event_add(t->bev, NULL);
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

/* Join the TLS client and the backend; see tlsrelay.h. */
struct tlsrelay *tlsrelay_start(struct event_base *base, SSL *ssl, int cfd, int bfd,
                                const char *pending, size_t npending, time_t idle, relay_done_fn fn,
                                void *ctx)
{
    struct tlsrelay *t = xcalloc(1, sizeof(*t));

    t->base = base;
    t->ssl = ssl;
    t->cfd = cfd;
    t->bfd = bfd;
    t->idle = idle;
    t->fn = fn;
    t->ctx = ctx;
    if (npending > sizeof(t->up.data))
        npending = sizeof(t->up.data);
    if (npending)
        memcpy(t->up.data, pending, npending);
    t->up.len = npending;
    t->cev = event_new(base, cfd, EV_READ, on_event, t);
    t->bev = event_new(base, bfd, EV_READ, on_event, t);
    t->timer = evtimer_new(base, on_timer, t);
    struct timeval tv = {idle, 0};
    event_add(t->timer, &tv);
    touch(t);
    /* A client that ends without close_notify has ended all the same. */
    SSL_set_options(ssl, SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Start from the loop: bytes OpenSSL holds wake no event. */
    event_active(t->cev, EV_READ, 0);
    return t;
}
