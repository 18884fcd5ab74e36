/*
 * handoff - give a screened client to the real MTA; see handoff.h.
 *
 * One event on the backend socket drives a small state machine:
 * CONNECTING, then per mode the dialogue states, then either a relay
 * (proxy, xclient) or the wait for the pass service to let go (pass).
 * Backend replies are read into a fixed buffer: a backend that sends more
 * than that without ending its reply is treated as broken.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "handoff/handoff.h"
#include "handoff/relay.h"
#include "handoff/tlsrelay.h"
#include "log/log.h"
#include "net/proxy.h"
#include "smtp/caps.h"
#include "tls/tls.h"
#include "util/mem.h"
#include "util/sbuf.h"

#define HANDOFF_INBUF 4096

enum hstate {
    HS_CONNECTING, /* waiting for connect(2) to finish */
    HS_WRITING,    /* sending out[] to the backend */
    HS_GREETING,   /* proxy: waiting for the backend's first byte */
    /* From HS_XC_BANNER to HS_RP_RCPT: reading one whole reply. */
    HS_XC_BANNER,    /* xclient: reading the initial greeting */
    HS_XC_EHLO,      /* xclient: reading the EHLO reply */
    HS_XC_XCLIENT,   /* xclient: reading the reply to XCLIENT */
    HS_RP_GREETING,  /* replay, probe: reading the greeting (proxy mode) */
    HS_RP_HELO,      /* replay, probe: reading the reply to EHLO or HELO */
    HS_RP_MAIL,      /* replay: reading the reply to MAIL */
    HS_RP_RCPT,      /* replay: reading the reply to RCPT */
    HS_RP_STARTTLS,  /* replay: reading the reply to STARTTLS (mxscreen_backend_tls) */
    HS_PASS_WAIT,    /* pass: waiting for smtpd to close the socket */
    HS_RP_REPLIED,   /* replay: the reply is the caller's; waiting for the join */
    HS_RP_JOIN,      /* replay: the client's unread bytes are sent: join */
    HS_RP_HANDSHAKE, /* replay: TLS handshake with the backend */
    HS_RELAY,        /* joined; the relay owns both sockets */
};

/* What the hand-off is for. */
enum hkind {
    HK_CLIENT, /* a client at connect time (handoff_start) */
    HK_REPLAY, /* a client after the deep tests (handoff_replay) */
    HK_PROBE,  /* no client: learn the backend's EHLO keywords */
};

struct handoff {
    struct event_base *base;
    const struct settings *st; /* the session holds the reference */
    enum hkind kind;
    enum hstate state;
    enum hstate after_write; /* state once out[] is sent */
    int cfd;                 /* client socket */
    int bfd;                 /* backend socket */
    struct endpoint client;  /* real client endpoint */
    struct endpoint server;  /* real server endpoint */
    struct event *ev;        /* the backend socket's event */
    struct event *cev;       /* the client hanging up before the join */
    struct event *deadline;  /* HK_REPLAY: the whole dialogue's time limit */
    struct relay *relay;     /* HS_RELAY */
    SSL *ssl;                /* HK_REPLAY: the client's TLS session, or NULL */
    SSL *bssl;               /* HK_REPLAY: TLS to the backend (mxscreen_backend_tls), or NULL */
    short bwant;             /* with bssl: the readiness the last SSL call waits for */
    char *out;               /* pending bytes for the backend */
    size_t outlen, outoff, outcap;
    char in[HANDOFF_INBUF]; /* backend reply being read */
    size_t inlen;
    char xattrs[256]; /* XCLIENT attributes the backend offers */
    struct {
        bool ehlo;
        char *helo, *mail, *rcpt, *tls_version, *tls_cipher;
    } rp;                    /* HK_REPLAY: what to replay (copies) */
    struct ehlo_caps *learn; /* HK_REPLAY, HK_PROBE: where to note the keywords */
    char *why;               /* HK_PROBE: the reason of a failure, not logged */
    size_t whylen;
    const char *what_refused; /* HK_REPLAY: "MAIL" when the backend refused it */
    handoff_fn fn;
    void *ctx;
};

/* A warning, or for a probe the reason it failed (its caller logs changes). */
static void __attribute__((format(printf, 2, 3))) hwarn(struct handoff *h, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    if (h->kind == HK_PROBE) {
        int saved = errno;
        vsnprintf(h->why, h->whylen, fmt, ap);
        errno = saved;
    } else {
        vmsg_warn(fmt, ap);
    }
    va_end(ap);
}

/* Free the hand-off's own memory. */
static void hfree(struct handoff *h)
{
    if (h->deadline)
        event_free(h->deadline);
    if (h->bssl) {
        SSL_set_quiet_shutdown(h->bssl, 1);
        SSL_free(h->bssl);
    }
    free(h->out);
    free(h->rp.helo);
    free(h->rp.mail);
    free(h->rp.rcpt);
    free(h->rp.tls_version);
    free(h->rp.tls_cipher);
    free(h);
}

/* Stop watching the backend socket. */
static void unwatch(struct handoff *h)
{
    if (h->ev) {
        event_free(h->ev);
        h->ev = NULL;
    }
}

/* Watch the backend socket for WHAT, with the time limit SECS. */
static void watch(struct handoff *h, short what, time_t secs, event_callback_fn cb)
{
    struct timeval tv = {secs, 0};

    unwatch(h);
    h->ev = event_new(h->base, h->bfd, what, cb, h);
    event_add(h->ev, &tv);
}

/* Stop watching the client (before the relay or smtpd takes it). */
static void unwatch_client(struct handoff *h)
{
    if (h->cev) {
        event_free(h->cev);
        h->cev = NULL;
    }
}

/* End the hand-off with a failure; the caller still owns the client. */
static void fail(struct handoff *h, enum handoff_event ev)
{
    unwatch(h);
    unwatch_client(h);
    if (h->bfd >= 0)
        close(h->bfd);
    handoff_fn fn = h->fn;
    void *ctx = h->ctx;
    hfree(h);
    fn(ctx, ev);
}

/*
 * The backend failed.  Before the join the client is still the caller's
 * (FAIL_PASS); while a joined replay's unread client bytes are being sent
 * on, it is the hand-off's, which closes it (ENDED).
 */
static void fail_handoff(struct handoff *h)
{
    if (h->after_write == HS_RP_JOIN && h->state == HS_WRITING) {
        if (h->ssl) {
            SSL_set_quiet_shutdown(h->ssl, 1);
            SSL_free(h->ssl);
        }
        close(h->cfd);
        fail(h, HANDOFF_ENDED);
        return;
    }
    fail(h, HANDOFF_FAIL_PASS);
}

/* The relay ended: the session is over. */
static void relay_done(void *ctx, enum relay_end why)
{
    struct handoff *h = ctx;
    handoff_fn fn = h->fn;
    void *fctx = h->ctx;

    (void)why;
    hfree(h);
    fn(fctx, HANDOFF_ENDED);
}

/* Join client and backend; report TAKEN. */
static void join(struct handoff *h, const char *pending, size_t npending)
{
    unwatch(h);
    unwatch_client(h);
    h->state = HS_RELAY;
    int failed = 0;
    if (h->ssl || h->bssl) {
        tlsrelay_start(h->base, h->cfd, h->ssl, h->bfd, h->bssl, pending, npending,
                       h->st->relay_idle_timeout, relay_done, h);
        h->bssl = NULL; /* the relay's now */
    } else {
        h->relay = relay_start(h->base, h->cfd, h->bfd, h->st->relay_idle_timeout, relay_done, h);
        failed = h->relay == NULL;
    }
    h->fn(h->ctx, HANDOFF_TAKEN);
    /* The relay owns both sockets now; without one they are closed. */
    if (failed) {
        handoff_fn fn = h->fn;
        void *ctx = h->ctx;
        hfree(h);
        fn(ctx, HANDOFF_ENDED);
    }
}

static void on_backend(evutil_socket_t fd, short what, void *arg);

/* Queue TEXT for the backend and go to NEXT once it is sent. */
static void send_backend(struct handoff *h, const void *text, size_t len, enum hstate next)
{
    if (len > h->outcap) {
        h->outcap = len;
        h->out = xrealloc(h->out, len);
    }
    memcpy(h->out, text, len);
    h->outlen = len;
    h->outoff = 0;
    h->state = HS_WRITING;
    h->after_write = next;
    watch(h, EV_WRITE | EV_PERSIST, h->st->backend_timeout, on_backend);
}

/* Send the client socket and the attributes to the pass service. */
static void pass_send(struct handoff *h)
{
    char dummy = '\0';
    struct iovec iov = {&dummy, 1};
    union {
        char buf[CMSG_SPACE(sizeof(int))];
        struct cmsghdr align;
    } u;
    struct msghdr msg = {0};

    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof(u.buf);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&msg);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &h->cfd, sizeof(int));
    if (sendmsg(h->bfd, &msg, MSG_NOSIGNAL) != 1) {
        hwarn(h, "cannot pass connection to service %s: %m", h->st->backend_name);
        fail(h, HANDOFF_FAIL_PASS);
        return;
    }
    /* smtpd may be talking to the client already. */
    unwatch_client(h);
    /* Postfix attr0 framing: name\0value\0 ... and a final \0. */
    char attrs[256];
    int n = snprintf(attrs, sizeof(attrs),
                     "client_address%c%s%cclient_port%c%s%cserver_address%c%s%cserver_port%c%s%c",
                     0, h->client.addr, 0, 0, h->client.port, 0, 0, h->server.addr, 0, 0,
                     h->server.port, 0);
    attrs[n] = '\0';
    send_backend(h, attrs, (size_t)n + 1, HS_PASS_WAIT);
}

/*
 * Backend I/O, plain or under TLS (mxscreen_backend_tls).  -1 with EAGAIN
 * when it would block; under TLS h->bwant then says which readiness the
 * call waits for (rewatch() asks the loop for it).
 */
/* The result N of an SSL call that did not move bytes, as errno-style -1
 * (EAGAIN: wait for h->bwant), or 0 at the backend's close_notify. */
static ssize_t ssl_result(struct handoff *h, int n)
{
    switch (SSL_get_error(h->bssl, n)) {
    case SSL_ERROR_WANT_READ:
        h->bwant = EV_READ;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_WANT_WRITE:
        h->bwant = EV_WRITE;
        errno = EAGAIN;
        return -1;
    case SSL_ERROR_ZERO_RETURN:
        errno = ECONNRESET; /* for a write's warning */
        return 0;
    default:
        errno = EPROTO;
        return -1;
    }
}

static ssize_t bread(struct handoff *h, void *buf, size_t len)
{
    if (h->bssl == NULL)
        return recv(h->bfd, buf, len, 0);
    ERR_clear_error();
    int n = SSL_read(h->bssl, buf, (int)len);
    return n > 0 ? n : ssl_result(h, n);
}

static ssize_t bwrite(struct handoff *h, const void *buf, size_t len)
{
    if (h->bssl == NULL)
        return send(h->bfd, buf, len, MSG_NOSIGNAL);
    ERR_clear_error();
    int n = SSL_write(h->bssl, buf, (int)len);
    return n > 0 ? n : ssl_result(h, n);
}

/* Under TLS, wait for what the last SSL call wants (plain: as before). */
static void rewatch(struct handoff *h)
{
    if (h->bssl && h->bwant)
        watch(h, h->bwant | EV_PERSIST, h->st->backend_timeout, on_backend);
}

/* Read more of the backend's reply; 1 when a whole reply is in, 0 for more, -1 on error. */
static int read_reply(struct handoff *h)
{
    ssize_t n = bread(h, h->in + h->inlen, sizeof(h->in) - 1 - h->inlen);

    if (n == 0) {
        hwarn(h, "backend %s closed the connection during the hand-off", h->st->backend_name);
        return -1;
    }
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR) {
            rewatch(h);
            return 0;
        }
        hwarn(h, "backend %s: read: %m", h->st->backend_name);
        return -1;
    }
    h->inlen += (size_t)n;
    h->in[h->inlen] = '\0';
    /* A reply is complete when its last line has "ddd " or is "ddd". */
    const char *line = h->in, *end = h->in + h->inlen;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        if (nl == NULL)
            break;
        size_t len = (size_t)(nl - line);
        if (len < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
            !isdigit((unsigned char)line[2]) ||
            (len > 3 && line[3] != ' ' && line[3] != '-' && line[3] != '\r')) {
            char esc[LOG_ESCAPE_BUFSZ];
            log_escape(esc, sizeof(esc), line, len && line[len - 1] == '\r' ? len - 1 : len,
                       LOG_PEER_TEXT_MAX);
            hwarn(h, "backend %s: malformed reply: %s", h->st->backend_name, esc);
            return -1;
        }
        if (len == 3 || line[3] != '-') {
            h->inlen = (size_t)(nl + 1 - h->in);
            return 1;
        }
        line = nl + 1;
    }
    if (h->inlen >= sizeof(h->in) - 1) {
        hwarn(h, "backend %s: reply longer than %zu bytes", h->st->backend_name, sizeof(h->in) - 1);
        return -1;
    }
    /* Under TLS, bytes OpenSSL holds (a record longer than the room
     * left) would wake no event. */
    return h->bssl && SSL_pending(h->bssl) > 0 ? read_reply(h) : 0;
}

/* The reply code of the reply in h->in. */
static int reply_code(const struct handoff *h)
{
    return (h->in[0] - '0') * 100 + (h->in[1] - '0') * 10 + (h->in[2] - '0');
}

/* Log the backend's unexpected reply and fail the hand-off. */
static void unexpected(struct handoff *h, const char *when)
{
    char esc[LOG_ESCAPE_BUFSZ];
    size_t len = strcspn(h->in, "\r\n");

    log_escape(esc, sizeof(esc), h->in, len, LOG_PEER_TEXT_MAX);
    hwarn(h, "backend %s %s: %s", h->st->backend_name, when, esc);
    fail(h, HANDOFF_FAIL_PASS);
}

/* Note the attributes of the "250-XCLIENT ..." line, if any; true if found. */
static bool find_xclient(struct handoff *h)
{
    const char *line = h->in, *end = h->in + h->inlen;

    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
        if (len > 12 && strncasecmp(line + 4, "XCLIENT ", 8) == 0) {
            size_t alen = len - 12;
            if (alen && line[12 + alen - 1] == '\r')
                alen--;
            snprintf(h->xattrs, sizeof(h->xattrs), " %.*s ", (int)alen, line + 12);
            return true;
        }
        line = nl ? nl + 1 : end;
    }
    return false;
}

/* Does the backend offer XCLIENT attribute NAME? */
static bool offers(const struct handoff *h, const char *name)
{
    char key[40];

    snprintf(key, sizeof(key), " %s ", name);
    return strcasestr(h->xattrs, key) != NULL;
}

/* Build and send the XCLIENT command. */
static void send_xclient(struct handoff *h)
{
    char cmd[512];
    bool v6c = h->client.sa.ss_family == AF_INET6, v6s = h->server.sa.ss_family == AF_INET6;
    int n = snprintf(cmd, sizeof(cmd), "XCLIENT ADDR=%s%s", v6c ? "IPV6:" : "", h->client.addr);

    if (offers(h, "PORT"))
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " PORT=%s", h->client.port);
    /* No reverse lookup yet: tell the MTA the name is unknown rather than
     * let it keep mxscreen's own name. */
    if (offers(h, "NAME"))
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " NAME=[UNAVAILABLE]");
    if (offers(h, "DESTADDR"))
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " DESTADDR=%s%s", v6s ? "IPV6:" : "",
                      h->server.addr);
    if (offers(h, "DESTPORT"))
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " DESTPORT=%s", h->server.port);
    n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, "\r\n");
    h->inlen = 0;
    send_backend(h, cmd, (size_t)n, HS_XC_XCLIENT);
}

/* The XCLIENT reply is the backend's new greeting: give it to the client. */
static void xclient_done(struct handoff *h)
{
    size_t off = 0;

    while (off < h->inlen) {
        ssize_t n = send(h->cfd, h->in + off, h->inlen - off, MSG_NOSIGNAL);
        if (n > 0) {
            off += (size_t)n;
            continue;
        }
        /* A fresh socket takes a greeting at once; anything else is a
         * client that is already gone. */
        hwarn(h, "write [%s]:%s: %s", h->client.addr, h->client.port,
              n < 0 ? strerror(errno) : "short write");
        fail(h, HANDOFF_FAIL_PASS);
        return;
    }
    join(h, NULL, 0);
}

/* Send the PROXY header: the client's endpoints, or for a probe the
 * probe's own (a truthful header for a connection of mxscreen's own). */
static void send_proxy_header(struct handoff *h)
{
    unsigned char hdr[PROXY_WRITE_MAX];
    struct proxy_tls tls = {h->rp.tls_version, h->rp.tls_cipher};

    size_t n;
    if (h->kind == HK_PROBE) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (getsockname(h->bfd, (struct sockaddr *)&ss, &len) < 0 ||
            endpoint_set(&h->client, (struct sockaddr *)&ss, len) < 0 ||
            endpoint_set(&h->server, (const struct sockaddr *)&h->st->backend.sa,
                         h->st->backend.salen) < 0) {
            /* No TCP endpoints (a UNIX socket): a header without any. */
            n = proxy_write_local(hdr, sizeof(hdr), h->st->proxy_version);
            send_backend(h, hdr, n, HS_RP_GREETING);
            return;
        }
    }
    n = proxy_write(hdr, sizeof(hdr), h->st->proxy_version, &h->client, &h->server,
                    h->rp.tls_version ? &tls : NULL);
    send_backend(h, hdr, n, h->kind == HK_CLIENT ? HS_GREETING : HS_RP_GREETING);
}

/* Send LINE and CRLF to the backend; go to NEXT once it is sent. */
static void send_line(struct handoff *h, const char *line, enum hstate next)
{
    size_t len = strlen(line);
    char *buf = xmalloc(len + 2);

    memcpy(buf, line, len);
    memcpy(buf + len, "\r\n", 2);
    send_backend(h, buf, len + 2, next);
    free(buf);
}

static void mail_step(struct handoff *h, bool ehlo, const struct ehlo_caps *caps);

/*
 * Must the replay go under TLS first (mxscreen_backend_tls and a client
 * that came under TLS)?  Then mxscreen says its own EHLO, STARTTLS, and
 * replays the client's HELO or EHLO (or neither) under TLS only.
 */
static bool backend_tls_due(const struct handoff *h)
{
    return h->kind == HK_REPLAY && h->rp.tls_version && h->st->backend_tls && h->bssl == NULL;
}

/* Replay the client's EHLO or HELO (a probe's own EHLO); then MAIL. */
static void send_helo(struct handoff *h)
{
    struct sbuf line = SBUF_INIT;

    h->inlen = 0;
    if (h->kind == HK_PROBE || backend_tls_due(h)) {
        sbuf_printf(&line, "EHLO %.250s", h->st->myhostname);
    } else if (h->rp.helo) {
        sbuf_printf(&line, "%s %s", h->rp.ehlo ? "EHLO" : "HELO", h->rp.helo);
    } else {
        /* The client sent neither: nor does the backend hear one, and no
         * extension may be used (as after HELO). */
        mail_step(h, false, NULL);
        return;
    }
    send_line(h, line.s, HS_RP_HELO);
    sbuf_free(&line);
}

/*
 * Note what the backend offers; log when that changed.  The list comes
 * from probes, which speak as mxscreen itself: a replay speaks as the
 * client, and a backend may tailor its answer to a client (Postfix's
 * smtpd_discard_ehlo_keyword_address_maps), so a replay's answer serves
 * its own check, and the list only until a probe has answered.
 */
static void learn_caps(struct handoff *h, const struct ehlo_caps *caps)
{
    if (h->learn == NULL || caps_same(h->learn, caps))
        return;
    if (h->kind == HK_REPLAY && h->learn->known)
        return;
    char names[512];
    caps_names(names, sizeof(names), caps->mask);
    if (caps->size > 0)
        msg_info("backend %s offers EHLO keywords: %s (SIZE %lld)", h->st->backend_name, names,
                 caps->size);
    else
        msg_info("backend %s offers EHLO keywords: %s", h->st->backend_name, names);
    *h->learn = *caps;
}

/* The reply to EHLO or HELO is in: learn, check, go on to MAIL. */
static void helo_done(struct handoff *h)
{
    bool own = h->kind == HK_PROBE || backend_tls_due(h); /* mxscreen's own EHLO */
    bool ehlo = own || h->rp.ehlo;
    struct ehlo_caps caps = {0};

    if (reply_code(h) != 250) {
        unexpected(h, ehlo ? "refused EHLO" : "refused HELO");
        return;
    }
    if (ehlo && caps_parse(&caps, h->in, h->inlen))
        learn_caps(h, &caps);
    if (h->kind == HK_PROBE) {
        /* Done: say goodbye without waiting for the answer. */
        (void)send(h->bfd, "QUIT\r\n", 6, MSG_NOSIGNAL | MSG_DONTWAIT);
        fail(h, HANDOFF_ENDED);
        return;
    }
    /* A TLS client's session goes to the backend under TLS when asked. */
    if (own) {
        if (!caps_starttls(&caps)) {
            hwarn(h, "backend %s does not offer STARTTLS (mxscreen_backend_tls) for [%s]:%s",
                  h->st->backend_name, h->client.addr, h->client.port);
            fail(h, HANDOFF_FAIL_PASS);
            return;
        }
        h->inlen = 0;
        send_line(h, "STARTTLS", HS_RP_STARTTLS);
        return;
    }
    mail_step(h, ehlo, &caps);
}

/* Drive the TLS handshake with the backend; then EHLO again, under TLS. */
static void backend_handshake(struct handoff *h)
{
    ERR_clear_error();
    int r = SSL_do_handshake(h->bssl);
    if (r == 1) {
        send_helo(h);
        return;
    }
    switch (SSL_get_error(h->bssl, r)) {
    case SSL_ERROR_WANT_READ:
        watch(h, EV_READ | EV_PERSIST, h->st->backend_timeout, on_backend);
        return;
    case SSL_ERROR_WANT_WRITE:
        watch(h, EV_WRITE | EV_PERSIST, h->st->backend_timeout, on_backend);
        return;
    default: {
        char ebuf[256];
        hwarn(h, "backend %s: TLS handshake failed: %s", h->st->backend_name,
              tls_error_text(ebuf, sizeof(ebuf)));
        fail(h, HANDOFF_FAIL_PASS);
        return;
    }
    }
}

/*
 * Replay MAIL, once the backend is known to offer what the client's MAIL
 * and RCPT parameters use (CAPS after EHLO; nothing after HELO or none).
 */
static void mail_step(struct handoff *h, bool ehlo, const struct ehlo_caps *caps)
{
    unsigned missing = caps_needed(h->rp.mail) | caps_needed(h->rp.rcpt);

    if (ehlo)
        missing &= ~caps->mask;
    if (missing) {
        char names[256];
        caps_names(names, sizeof(names), missing);
        hwarn(h, "backend %s does not offer %s, which [%s]:%s uses", h->st->backend_name, names,
              h->client.addr, h->client.port);
        fail(h, HANDOFF_FAIL_PASS);
        return;
    }
    h->inlen = 0;
    send_line(h, h->rp.mail, HS_RP_MAIL);
}

/* The backend's answer for the client is in h->in: the caller's turn. */
static void replied(struct handoff *h)
{
    unwatch(h);
    event_del(h->deadline);
    h->state = HS_RP_REPLIED;
    h->fn(h->ctx, HANDOFF_REPLIED);
}

/* The backend socket is ready, or its time limit passed. */
static void on_backend(evutil_socket_t fd, short what, void *arg)
{
    struct handoff *h = arg;

    (void)fd;
    if (what & EV_TIMEOUT) {
        if (h->state == HS_CONNECTING) {
            hwarn(h, "cannot connect to service %s: Connection timed out", h->st->backend_name);
            fail(h, HANDOFF_FAIL_CONNECT);
        } else if (h->state == HS_PASS_WAIT) {
            hwarn(h, "timeout sending connection to service %s", h->st->backend_name);
            close(h->cfd);
            fail(h, HANDOFF_ENDED);
        } else {
            hwarn(h, "backend %s: timeout during the hand-off of [%s]:%s", h->st->backend_name,
                  h->client.addr, h->client.port);
            fail_handoff(h);
        }
        return;
    }
    /* The dialogue states wait for one whole reply. */
    if (h->state >= HS_XC_BANNER && h->state <= HS_RP_STARTTLS) {
        int rc = read_reply(h);
        if (rc <= 0) {
            if (rc < 0)
                fail(h, HANDOFF_FAIL_PASS);
            return;
        }
    }
    switch (h->state) {
    case HS_CONNECTING: {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(h->bfd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err != 0) {
            hwarn(h, "cannot connect to service %s: %s", h->st->backend_name, strerror(err));
            fail(h, HANDOFF_FAIL_CONNECT);
            return;
        }
        if (h->st->mode == HANDOFF_PASS) {
            pass_send(h);
        } else if (h->st->mode == HANDOFF_PROXY) {
            send_proxy_header(h);
        } else {
            h->state = HS_XC_BANNER;
            watch(h, EV_READ | EV_PERSIST, h->st->backend_timeout, on_backend);
        }
        return;
    }
    case HS_WRITING: {
        ssize_t n = bwrite(h, h->out + h->outoff, h->outlen - h->outoff);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            rewatch(h);
            return;
        }
        if (n <= 0) {
            hwarn(h, "%s service %s: %m",
                  h->st->mode == HANDOFF_PASS ? "cannot pass connection to" : "write to backend",
                  h->st->backend_name);
            fail_handoff(h);
            return;
        }
        h->outoff += (size_t)n;
        if (h->outoff < h->outlen)
            return;
        h->state = h->after_write;
        if (h->state == HS_RP_JOIN) {
            join(h, NULL, 0);
            return;
        }
        watch(h, EV_READ | EV_PERSIST, h->st->backend_timeout, on_backend);
        return;
    }
    case HS_GREETING: {
        char c;
        ssize_t n = recv(h->bfd, &c, 1, MSG_PEEK);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            hwarn(h, "backend %s closed the connection before its greeting%s%s",
                  h->st->backend_name, n < 0 ? ": " : "", n < 0 ? strerror(errno) : "");
            fail(h, HANDOFF_FAIL_PASS);
            return;
        }
        join(h, NULL, 0);
        return;
    }
    case HS_XC_BANNER:
        if (reply_code(h) != 220) {
            unexpected(h, "greeted with");
            return;
        }
        char ehlo[300];
        int elen = snprintf(ehlo, sizeof(ehlo), "EHLO %.250s\r\n", h->st->myhostname);
        h->inlen = 0;
        /* A probe learns from this EHLO, before any XCLIENT. */
        send_backend(h, ehlo, (size_t)elen, h->kind == HK_PROBE ? HS_RP_HELO : HS_XC_EHLO);
        return;
    case HS_XC_EHLO:
        if (reply_code(h) != 250) {
            unexpected(h, "refused EHLO");
            return;
        }
        if (!find_xclient(h)) {
            hwarn(h,
                  "backend %s does not offer XCLIENT to mxscreen (Postfix: list mxscreen's "
                  "address in smtpd_authorized_xclient_hosts)",
                  h->st->backend_name);
            fail(h, HANDOFF_FAIL_PASS);
            return;
        }
        send_xclient(h);
        return;
    case HS_XC_XCLIENT:
        if (reply_code(h) != 220) {
            unexpected(h, "refused XCLIENT");
            return;
        }
        if (h->kind == HK_REPLAY)
            send_helo(h);
        else
            xclient_done(h);
        return;
    case HS_RP_GREETING:
        if (reply_code(h) != 220) {
            unexpected(h, "greeted with");
            return;
        }
        send_helo(h);
        return;
    case HS_RP_HELO:
        helo_done(h);
        return;
    case HS_RP_MAIL:
        if (h->in[0] != '2') {
            /* The client hears the refusal as is, then talks to the backend. */
            h->what_refused = "MAIL";
            replied(h);
            return;
        }
        h->inlen = 0;
        send_line(h, h->rp.rcpt, HS_RP_RCPT);
        return;
    case HS_RP_RCPT:
        replied(h);
        return;
    case HS_RP_STARTTLS:
        if (reply_code(h) != 220) {
            unexpected(h, "refused STARTTLS");
            return;
        }
        if ((h->bssl = SSL_new(h->st->backend_tls)) == NULL || !SSL_set_fd(h->bssl, h->bfd)) {
            char ebuf[256];
            hwarn(h, "backend %s: TLS: %s", h->st->backend_name,
                  tls_error_text(ebuf, sizeof(ebuf)));
            fail(h, HANDOFF_FAIL_PASS);
            return;
        }
        SSL_set_connect_state(h->bssl);
        h->state = HS_RP_HANDSHAKE;
        backend_handshake(h);
        return;
    case HS_RP_HANDSHAKE:
        backend_handshake(h);
        return;
    case HS_RP_REPLIED:
    case HS_RP_JOIN:
        break;
    case HS_PASS_WAIT: {
        char buf[64];
        ssize_t n = recv(h->bfd, buf, sizeof(buf), 0);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n > 0)
            return; /* smtpd says nothing here; ignore stray bytes */
        /* smtpd has the socket: drop our copy, as postscreen does. */
        unwatch_client(h);
        close(h->cfd);
        unwatch(h);
        close(h->bfd);
        h->bfd = -1;
        handoff_fn fn = h->fn;
        void *ctx = h->ctx;
        hfree(h);
        fn(ctx, HANDOFF_TAKEN);
        fn(ctx, HANDOFF_ENDED);
        return;
    }
    case HS_RELAY:
        break;
    }
    msg_panic("handoff: event in state %d", (int)h->state);
}

/*
 * The client socket changed while the backend is being set up.  Bytes the
 * client sends early stay queued for the backend (edge-triggered: this
 * fires once per arrival, not while they wait); an end of file means the
 * client left, and the hand-off ends without a word to anyone.
 */
static void on_client(evutil_socket_t fd, short what, void *arg)
{
    struct handoff *h = arg;
    char c;

    (void)what;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK);
    if (n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR)))
        return;
    close(h->cfd);
    fail(h, HANDOFF_ENDED);
}

/* connect(2) failed at once: report it (from the loop). */
static void on_connect_failed(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    fail(arg, HANDOFF_FAIL_CONNECT);
}

/* A new hand-off of KIND: connect to the backend (failures are reported
 * from the loop). */
static struct handoff *hstart(struct event_base *base, const struct settings *st, enum hkind kind,
                              char *why, size_t whylen, handoff_fn fn, void *ctx)
{
    struct handoff *h = xcalloc(1, sizeof(*h));

    h->base = base;
    h->st = st;
    h->kind = kind;
    h->why = why;
    h->whylen = whylen;
    h->cfd = -1;
    h->fn = fn;
    h->ctx = ctx;
    h->state = HS_CONNECTING;
    h->bfd = socket(st->backend.sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (h->bfd < 0) {
        hwarn(h, "cannot connect to service %s: socket: %m", st->backend_name);
        goto later;
    }
    if (connect(h->bfd, (const struct sockaddr *)&st->backend.sa, st->backend.salen) < 0 &&
        errno != EINPROGRESS) {
        hwarn(h, "cannot connect to service %s: %m", st->backend_name);
        close(h->bfd);
        h->bfd = -1;
        goto later;
    }
    watch(h, EV_WRITE, st->connect_timeout, on_backend);
    return h;
later:
    /* Report the failure from the loop, not from inside the caller. */
    h->ev = evtimer_new(base, on_connect_failed, h);
    {
        struct timeval zero = {0, 0};
        event_add(h->ev, &zero);
    }
    return h;
}

/* Start handing off CLIENT_FD; see handoff.h. */
struct handoff *handoff_start(struct event_base *base, const struct settings *st, int client_fd,
                              const struct endpoint *client, const struct endpoint *server,
                              handoff_fn fn, void *ctx)
{
    struct handoff *h = hstart(base, st, HK_CLIENT, NULL, 0, fn, ctx);

    h->cfd = client_fd;
    h->client = *client;
    h->server = *server;
    if (h->bfd >= 0) {
        h->cev = event_new(base, client_fd, EV_READ | EV_PERSIST | EV_ET, on_client, h);
        event_add(h->cev, NULL);
    }
    return h;
}

static char *dup_or_null(const char *s)
{
    return s ? xstrdup(s) : NULL;
}

/* The replay as a whole took too long: the client is waiting for RCPT. */
static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    struct handoff *h = arg;

    (void)fd;
    (void)what;
    hwarn(h, "backend %s: timeout during the hand-off of [%s]:%s", h->st->backend_name,
          h->client.addr, h->client.port);
    fail(h, HANDOFF_FAIL_PASS);
}

/* Replay a client after the deep tests; see handoff.h. */
struct handoff *handoff_replay(struct event_base *base, const struct settings *st,
                               const struct endpoint *client, const struct endpoint *server,
                               const struct handoff_replay *r, struct ehlo_caps *learn,
                               handoff_fn fn, void *ctx)
{
    struct handoff *h = hstart(base, st, HK_REPLAY, NULL, 0, fn, ctx);

    h->client = *client;
    h->server = *server;
    h->learn = learn;
    h->rp.ehlo = r->ehlo;
    h->rp.helo = dup_or_null(r->helo);
    h->rp.mail = xstrdup(r->mail);
    h->rp.rcpt = xstrdup(r->rcpt);
    h->rp.tls_version = dup_or_null(r->tls_version);
    h->rp.tls_cipher = dup_or_null(r->tls_cipher);
    /* Each step has mxscreen_backend_timeout; all of them together too,
     * well within the 5 minutes a client waits for its RCPT reply. */
    struct timeval tv = {st->connect_timeout + st->backend_timeout, 0};
    h->deadline = evtimer_new(base, on_deadline, h);
    event_add(h->deadline, &tv);
    return h;
}

/* Ask the backend for its EHLO keywords; see handoff.h. */
struct handoff *handoff_probe(struct event_base *base, const struct settings *st,
                              struct ehlo_caps *learn, char *why, size_t whylen, handoff_fn fn,
                              void *ctx)
{
    why[0] = '\0';
    struct handoff *h = hstart(base, st, HK_PROBE, why, whylen, fn, ctx);

    h->learn = learn;
    return h;
}

/* The backend's reply for the client (HANDOFF_REPLIED); see handoff.h. */
const char *handoff_reply(const struct handoff *h, size_t *len, const char **refused)
{
    *len = h->inlen;
    *refused = h->what_refused;
    return h->in;
}

/* Join the replayed client; see handoff.h. */
void handoff_join(struct handoff *h, int client_fd, SSL *ssl, const char *pending, size_t npending)
{
    if (h->state != HS_RP_REPLIED)
        msg_panic("handoff_join: not waiting for a join (state %d)", (int)h->state);
    h->cfd = client_fd;
    h->ssl = ssl;
    /* The splice relay starts empty: unread bytes go first.  The TLS
     * relay takes them in its buffer. */
    if (npending > 0 && !ssl && !h->bssl)
        send_backend(h, pending, npending, HS_RP_JOIN);
    else
        join(h, pending, npending);
}

/* Abandon a hand-off without a report (a probe at exit); see handoff.h. */
void handoff_cancel(struct handoff *h)
{
    unwatch(h);
    unwatch_client(h);
    if (h->bfd >= 0)
        close(h->bfd);
    hfree(h);
}
