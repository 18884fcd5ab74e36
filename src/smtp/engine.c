/*
 * engine - the built-in SMTP engine; see engine.h.
 *
 * One event per session watches the socket (read, write or both, as the
 * plaintext or TLS state needs) and one timer holds the command time
 * limit, which runs from the end of one command to the end of the next
 * command line, however slowly its bytes arrive.  Input is read into a
 * 4 KiB buffer only when the previous read has been consumed; each
 * complete line is executed before the next is looked at, so "more bytes
 * already in the buffer after a command" is exactly postscreen's
 * pipelining evidence.  Replies are queued and written when the socket
 * is ready; while more than ENGINE_OUT_PAUSE bytes wait, commands are not
 * executed, so a client that never reads cannot grow the queue.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "log/log.h"
#include "smtp/caps.h"
#include "smtp/engine_int.h"
#include "smtp/parse.h"
#include "smtp/reader.h"
#include "stats/stats.h"
#include "util/mem.h"

#define ENGINE_READ_SIZE  4096
#define ENGINE_OUT_PAUSE  4096
#define ENGINE_LINGER     10    /* seconds to flush the last reply */
#define ENGINE_DRAIN_TIME 2     /* seconds to read what follows the last reply */
#define ENGINE_DRAIN_MAX  65536 /* bytes to read then */

enum io_state {
    IO_PLAIN,         /* plaintext */
    IO_TLS_PENDING,   /* "220 Ready to start TLS" queued: flush it, then handshake */
    IO_TLS_HANDSHAKE, /* SSL_do_handshake() in progress */
    IO_TLS,           /* TLS established */
};

/* Where a replay to the backend stands (mxscreen_deep_test_handoff). */
enum replay_state {
    REPLAY_NONE,     /* no replay under way */
    REPLAY_WAIT,     /* paused at RCPT while the backend is asked */
    REPLAY_FALLBACK, /* the backend failed: answer RCPT as postscreen does */
    REPLAY_JOIN,     /* send the backend's reply, then hand the socket over */
};

/* Which socket readiness an SSL call is waiting for. */
enum want {
    WANT_NONE,
    WANT_READ,
    WANT_WRITE,
};

struct engine {
    struct event_base *base;         /* the event loop */
    const struct engine_conf *cf;    /* prepared configuration (the session holds it) */
    int fd;                          /* client socket */
    struct endpoint client;          /* client endpoint (copy) */
    struct verdict *v;               /* the session's verdict */
    time_t *stamps;                  /* the client's expiry stamps */
    const bool *stress;              /* the server's stress state */
    const struct ehlo_caps *backend; /* what the backend offers, or NULL */
    engine_fn fn;                    /* progress report */
    void *ctx;                       /* FN's context */
    struct event *ev;                /* socket readiness */
    struct event *timer;             /* command time limit, or the linger limit */
    struct timeval start;            /* start of the phase, for HANGUP times */
    enum io_state io;                /* plaintext or TLS */
    SSL *ssl;                        /* TLS session, or NULL */
    enum want read_want;             /* what the last SSL_read() waits for */
    enum want write_want;            /* what the last SSL_write() waits for */
    char in[ENGINE_READ_SIZE];       /* bytes read and not yet consumed */
    size_t in_off;                   /* first unconsumed byte */
    size_t in_len;                   /* bytes in the buffer */
    struct reader rd;                /* the command line being read */
    struct sbuf out;                 /* queued reply bytes */
    size_t out_off;                  /* first unsent byte of out */
    char *helo;                      /* HELO/EHLO argument, or NULL */
    char *sender;                    /* MAIL FROM address, or NULL */
    bool ehlo;                       /* the client said EHLO (not HELO) */
    const char *line;                /* the command line being executed */
    char *mail_line;                 /* the MAIL command line, for a replay */
    char *rcpt_line;                 /* the RCPT command line being replayed */
    enum replay_state replay;        /* a replay under way */
    bool replayed;                   /* a replay was tried in this session */
    struct engine_replay info;       /* ENGINE_REPLAY: what to replay */
    struct engine_handover handover; /* ENGINE_DETACHED: what the caller takes */
    const char *proto;               /* SMTP or ESMTP */
    const char *where;               /* last command name, for log lines */
    long long command_count;         /* commands seen */
    unsigned ehlo_discard_mask;      /* EHLO keywords hidden from this client */
    bool x21;                        /* answer the first command with the final reply */
    bool ended;                      /* ENGINE_END reported: flush and close */
    bool draining;                   /* last reply sent: discarding input before close */
    size_t drained;                  /* bytes discarded */
};

static void update_events(struct engine *e);
static void process(struct engine *e);
static void on_io(evutil_socket_t fd, short what, void *arg);

/* Append a reply (soft_bounce and footer applied) to the output queue. */
static void send_reply(struct engine *e, const char *text)
{
    struct reply_peer peer = {e->client.addr, e->client.port};

    reply_format(&e->out, &e->cf->rc, text, &peer);
}

/* Free the engine's memory (not its socket). */
static void engine_free(struct engine *e)
{
    reader_free(&e->rd);
    sbuf_free(&e->out);
    free(e->helo);
    free(e->sender);
    free(e->mail_line);
    free(e->rcpt_line);
    free(e);
}

/* Close the socket and free the engine; reports ENGINE_CLOSED. */
static void engine_close(struct engine *e)
{
    event_free(e->ev);
    event_free(e->timer);
    if (e->ssl) {
        SSL_set_quiet_shutdown(e->ssl, 1);
        SSL_free(e->ssl);
    }
    shutdown(e->fd, SHUT_WR);
    close(e->fd);
    engine_fn fn = e->fn;
    void *ctx = e->ctx;
    engine_free(e);
    fn(ctx, ENGINE_CLOSED);
}

/*
 * The backend has the client: give the socket, its TLS session and the
 * unread input to the caller, and free the engine without closing.
 */
static void detach(struct engine *e)
{
    event_free(e->ev);
    event_free(e->timer);
    /* Only an established TLS session goes on; RCPT never comes earlier. */
    if (e->ssl && e->io != IO_TLS) {
        SSL_free(e->ssl);
        e->ssl = NULL;
    }
    e->handover = (struct engine_handover){
        .fd = e->fd,
        .ssl = e->ssl,
        .pending = e->in + e->in_off,
        .npending = e->in_len - e->in_off,
    };
    engine_fn fn = e->fn;
    void *ctx = e->ctx;
    fn(ctx, ENGINE_DETACHED);
    engine_free(e);
}

/*
 * The session is over: REPLY (if not NULL) is the last thing the client
 * hears.  The caller concludes the verdict; the engine then flushes and
 * closes, within ENGINE_LINGER seconds.
 */
static void end_session(struct engine *e, const char *reply)
{
    e->v->noforward = true;
    if (reply) {
        e->v->final_reply = reply;
        send_reply(e, reply);
    }
    e->ended = true;
    e->in_off = e->in_len = 0;
    /* Close from the loop, never from under a caller. */
    struct timeval tv = {e->out_off < e->out.len ? ENGINE_LINGER : 0, 0};
    evtimer_add(e->timer, &tv);
    e->fn(e->ctx, ENGINE_END);
    update_events(e);
}

/* Seconds since the phase started, formatted as postscreen does. */
static void elapsed(struct engine *e, char *buf, size_t len)
{
    struct timeval now, d;

    gettimeofday(&now, NULL);
    timersub(&now, &e->start, &d);
    if (d.tv_sec < 0)
        d.tv_sec = d.tv_usec = 0;
    log_format_delay(buf, len, d.tv_sec, d.tv_usec);
}

/* The client went away (or the connection broke): HANGUP, no reply. */
static void hangup(struct engine *e)
{
    char t[32];

    elapsed(e, t, sizeof(t));
    msg_info("HANGUP after %s from [%s]:%s in tests after SMTP handshake", t, e->client.addr,
             e->client.port);
    stats.verdicts[SV_HANGUP]++;
    e->v->hangup = true;
    e->out.len = e->out_off = 0;
    end_session(e, NULL);
}

/* Write queued output; false when the connection is broken. */
static bool flush(struct engine *e)
{
    while (e->out_off < e->out.len) {
        size_t n = e->out.len - e->out_off;
        ssize_t w;
        if (e->ssl && e->io == IO_TLS) {
            ERR_clear_error();
            int r = SSL_write(e->ssl, e->out.s + e->out_off, (int)(n > 65536 ? 65536 : n));
            if (r <= 0) {
                switch (SSL_get_error(e->ssl, r)) {
                case SSL_ERROR_WANT_READ:
                    e->write_want = WANT_READ;
                    return true;
                case SSL_ERROR_WANT_WRITE:
                    e->write_want = WANT_WRITE;
                    return true;
                default:
                    ERR_clear_error();
                    return false;
                }
            }
            w = r;
        } else {
            w = send(e->fd, e->out.s + e->out_off, n, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w < 0) {
                if (errno == EAGAIN || errno == EINTR) {
                    e->write_want = WANT_WRITE;
                    return true;
                }
                if (errno != EPIPE && errno != ECONNRESET)
                    msg_warn("write [%s]:%s: %m", e->client.addr, e->client.port);
                return false;
            }
        }
        e->out_off += (size_t)w;
    }
    e->write_want = WANT_NONE;
    e->out.len = e->out_off = 0;
    if (e->out.s)
        e->out.s[0] = '\0';
    return true;
}

/* Ask the loop for the readiness the engine now needs. */
static void update_events(struct engine *e)
{
    short what = 0;

    if (e->out_off < e->out.len)
        what |= e->write_want == WANT_READ ? EV_READ : EV_WRITE;
    /* While the backend is asked, nothing moves; then only the reply. */
    if (e->replay == REPLAY_WAIT)
        what = 0;
    if (e->replay != REPLAY_NONE)
        goto done;
    /* Lines held back while output was paused: resume when it can flow. */
    if (!e->ended && e->in_off < e->in_len)
        what |= EV_WRITE;
    if (e->io == IO_TLS_HANDSHAKE)
        what |= e->read_want == WANT_WRITE ? EV_WRITE : EV_READ;
    else if (!e->ended && e->io != IO_TLS_PENDING && e->in_off == e->in_len &&
             e->out.len - e->out_off <= ENGINE_OUT_PAUSE)
        what |= e->read_want == WANT_WRITE ? EV_WRITE : EV_READ;
done:
    event_del(e->ev);
    if (what) {
        event_assign(e->ev, e->base, e->fd, what, on_io, e);
        event_add(e->ev, NULL);
    }
}

/* (Re)start the command time limit. */
static void arm_command_timer(struct engine *e)
{
    struct timeval tv = {e->cf->command_time[*e->stress ? 1 : 0], 0};

    evtimer_add(e->timer, &tv);
}

/* Does the (lower-cased) COMMAND match postscreen_forbidden_commands? */
static bool forbidden(const struct engine_conf *cf, const char *command)
{
    char lc[512];

    snprintf(lc, sizeof(lc), "%s", command);
    for (char *p = lc; *p; p++)
        *p = (char)((*p >= 'A' && *p <= 'Z') ? *p + 32 : *p);
    for (size_t i = 0; i < cf->nforbid; i++) {
        const struct forbid *f = &cf->forbid[i];
        bool match = f->table ? table_lookup(f->table, lc) != NULL : strcmp(f->word, lc) == 0;
        if (match)
            return !f->negate;
    }
    return false;
}

/*
 * A failed test: log line already written.  Applies the action; returns
 * false when the session was ended (drop).
 */
static bool fail_test(struct engine *e, enum test_id t, const char *drop_reply)
{
    struct verdict *v = e->v;
    unsigned bit = TEST_BIT(t);

    static const char *const why[TEST__COUNT] = {
        [TEST_PIPELINING] = "COMMAND PIPELINING",
        [TEST_NON_SMTP] = "NON-SMTP COMMAND",
        [TEST_BARE_NEWLINE] = "BARE NEWLINE",
    };
    static const char *const actions[] = {"ignore", "enforce", "drop"};

    v->fail |= bit;
    v->pass &= ~bit;
    e->stamps[t] = STAMP_DISABLED;
    v->skip |= bit;
    stats.failures[t][e->cf->action[t]]++;
    if (e->cf->action[t] != ACTION_IGNORE)
        stats_reject(e->client.addr, e->client.port, why[t] ? why[t] : "test",
                     actions[e->cf->action[t]]);
    switch (e->cf->action[t]) {
    case ACTION_DROP:
        end_session(e, drop_reply);
        return false;
    case ACTION_ENFORCE:
        v->rcpt_reply = "550 5.5.1 Protocol error\r\n";
        v->noforward = true;
        return true;
    case ACTION_IGNORE:
        /* Don't repeat the test until some other result expires. */
        v->fail &= ~bit;
        v->pass |= bit;
        e->stamps[t] = time(NULL) + e->cf->min_ttl;
        return true;
    }
    return true;
}

/* Is test T due and not yet failed in this session? */
static bool testing(const struct engine *e, enum test_id t)
{
    return (e->v->todo & TEST_BIT(t)) && !(e->v->skip & TEST_BIT(t));
}

/* Replace *FIELD with a copy of S (or NULL). */
static void set_str(char **field, const char *s)
{
    free(*field);
    *field = s ? xstrdup(s) : NULL;
}

/* Forget the mail transaction (HELO, EHLO, RSET, TLS). */
static void reset_mail(struct engine *e)
{
    set_str(&e->sender, NULL);
    set_str(&e->mail_line, NULL);
}

/* Command handlers: return false when the session ended. */

static bool cmd_helo(struct engine *e, char *args)
{
    char *name = smtp_next_token(&args);

    if (name == NULL) {
        send_reply(e, "501 Syntax: HELO hostname\r\n");
        return true;
    }
    set_str(&e->helo, name);
    reset_mail(e);
    e->ehlo = false;
    send_reply(e, e->cf->helo_reply);
    return true;
}

static bool cmd_ehlo(struct engine *e, char *args)
{
    const struct engine_conf *cf = e->cf;
    char *name = smtp_next_token(&args);
    const char *words = NULL;
    unsigned mask;

    if (name == NULL) {
        send_reply(e, "501 Syntax: EHLO hostname\r\n");
        return true;
    }
    set_str(&e->helo, name);
    reset_mail(e);
    e->ehlo = true;
    e->proto = "ESMTP";
    for (size_t i = 0; i < cf->ndiscard_maps && words == NULL; i++)
        words = table_lookup_addr(cf->discard_maps[i], &e->client);
    mask = words ? ehlo_mask_parse(words) : cf->discard_mask;
    if (words && mask != cf->discard_mask && mask && !(mask & EHLO_SILENT)) {
        char names[512];
        ehlo_mask_str(names, sizeof(names), mask);
        msg_info("[%s]%s: discarding EHLO keywords: %s", e->client.addr, e->client.port, names);
    }
    /* A client that may be replayed is promised only what the backend
     * offers too, and a SIZE it will accept. */
    long long size = cf->message_size_limit;
    if (cf->replay && e->backend && e->backend->known) {
        mask |= EHLO_BACKEND_DEPENDENT & ~e->backend->mask;
        if (e->backend->size > 0 && (size <= 0 || e->backend->size < size))
            size = e->backend->size;
    }
    if (mask != cf->discard_mask || size != cf->message_size_limit) {
        if (e->io == IO_TLS)
            mask |= EHLO_STARTTLS;
        struct sbuf b = SBUF_INIT;
        ehlo_format(&b, cf, mask, size);
        send_reply(e, b.s);
        sbuf_free(&b);
        e->ehlo_discard_mask = mask;
    } else if (e->io == IO_TLS) {
        send_reply(e, cf->ehlo_tls);
        e->ehlo_discard_mask = cf->discard_mask | EHLO_STARTTLS;
    } else {
        send_reply(e, cf->ehlo_plain);
        e->ehlo_discard_mask = cf->discard_mask;
    }
    return true;
}

static bool cmd_starttls(struct engine *e, char *args)
{
    if (smtp_next_token(&args) != NULL) {
        send_reply(e, "501 Syntax: EHLO hostname\r\n"); /* sic, Postfix 3.7 */
        return true;
    }
    if (e->io == IO_TLS) {
        send_reply(e, "554 5.5.1 Error: TLS already active\r\n");
        return true;
    }
    if (!e->cf->use_tls || (e->ehlo_discard_mask & EHLO_STARTTLS)) {
        send_reply(e, "502 5.5.1 Error: command not implemented\r\n");
        return true;
    }
    if (e->cf->tls == NULL || (e->ssl = tls_session_new(e->cf->tls, e->fd)) == NULL) {
        send_reply(e, "454 4.7.0 TLS not available due to local problem\r\n");
        return true;
    }
    send_reply(e, "220 2.0.0 Ready to start TLS\r\n");
    /* Plaintext sent after STARTTLS must not count as sent under TLS. */
    e->in_off = e->in_len = 0;
    e->io = IO_TLS_PENDING;
    return true;
}

static bool cmd_mail(struct engine *e, char *args)
{
    char *colon;

    if (e->cf->helo_required && e->helo == NULL) {
        send_reply(e, "503 5.5.1 Error: send HELO/EHLO first\r\n");
        return true;
    }
    if (e->sender != NULL) {
        send_reply(e, "503 5.5.1 Error: nested MAIL command\r\n");
        return true;
    }
    if ((colon = strchr(args, ':')) == NULL) {
        send_reply(e, "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
        return true;
    }
    free(e->sender);
    e->sender = smtp_extract_addr(colon + 1);
    set_str(&e->mail_line, e->line);
    send_reply(e, "250 2.1.0 Ok\r\n");
    return true;
}

static bool replay_due(const struct engine *e);
static void pause_for_replay(struct engine *e);
static void rcpt_reject(struct engine *e, const char *addr);

static bool cmd_rcpt(struct engine *e, char *args)
{
    char *colon;

    if (e->sender == NULL) {
        send_reply(e, "503 5.5.1 Error: need MAIL command\r\n");
        return true;
    }
    if ((colon = strchr(args, ':')) == NULL) {
        send_reply(e, "501 5.5.4 Syntax: RCPT TO:<address>\r\n");
        return true;
    }
    /* Every due test has now passed: ask the backend (engine.h). */
    if (replay_due(e)) {
        pause_for_replay(e);
        return true;
    }
    rcpt_reject(e, colon + 1);
    return true;
}

/* Is this the moment to replay the client to the backend? */
static bool replay_due(const struct engine *e)
{
    const struct verdict *v = e->v;

    return e->cf->replay && !e->replayed && !e->x21 && !v->noforward && !verdict_any_fail(v) &&
           verdict_all_passed(v) && e->mail_line != NULL;
}

/* Stop reading and executing until engine_replay_done(). */
static void pause_for_replay(struct engine *e)
{
    e->replayed = true;
    e->replay = REPLAY_WAIT;
    set_str(&e->rcpt_line, e->line);
    evtimer_del(e->timer);
    e->info = (struct engine_replay){
        .ehlo = e->ehlo,
        .helo = e->helo,
        .mail = e->mail_line,
        .rcpt = e->rcpt_line,
        .tls_version = e->io == IO_TLS ? SSL_get_version(e->ssl) : NULL,
        .tls_cipher = e->io == IO_TLS ? SSL_get_cipher_name(e->ssl) : NULL,
    };
    e->fn(e->ctx, ENGINE_REPLAY);
}

/* Refuse the recipient ADDR as postscreen does, with its NOQUEUE line. */
static void rcpt_reject(struct engine *e, const char *addr)
{
    char *rcpt = smtp_extract_addr(addr);
    char reply[512], from[512], to[512], helo[512];
    reply_soften(reply, sizeof(reply), e->v->rcpt_reply, e->cf->rc.soft_bounce);
    smtp_log_address(from, sizeof(from), e->sender, e->cf->info_internal);
    smtp_log_address(to, sizeof(to), rcpt, e->cf->info_internal);
    snprintf(helo, sizeof(helo), "%s", e->helo ? e->helo : "");
    smtp_printable(helo);
    msg_info("NOQUEUE: reject: RCPT from [%s]:%s: %s; from=<%s>, to=<%s>, proto=%s, helo=<%s>",
             e->client.addr, e->client.port, reply, from, to, e->proto, helo);
    stats.rcpt_rejects++;
    free(rcpt);
    send_reply(e, e->v->rcpt_reply);
}

static bool cmd_data(struct engine *e, char *args)
{
    msg_info("DATA without valid RCPT from [%s]:%s", e->client.addr, e->client.port);
    if (smtp_next_token(&args) != NULL)
        end_session(e, "501 5.5.4 Syntax: DATA\r\n");
    else if (e->sender == NULL)
        end_session(e, "503 5.5.1 Error: need RCPT command\r\n");
    else
        end_session(e, "554 5.5.1 Error: no valid recipients\r\n");
    return false;
}

static bool cmd_bdat(struct engine *e, char *args)
{
    msg_info("BDAT without valid RCPT from [%s]:%s", e->client.addr, e->client.port);
    if (e->ehlo_discard_mask & EHLO_CHUNKING)
        end_session(e, "502 5.5.1 Error: command not implemented\r\n");
    else if (smtp_next_token(&args) == NULL)
        end_session(e, "501 5.5.4 Syntax: BDAT count [LAST]\r\n");
    else if (e->sender == NULL)
        end_session(e, "554 5.5.1 Error: need MAIL command\r\n");
    else
        end_session(e, "554 5.5.1 Error: no valid recipients\r\n");
    return false;
}

static bool cmd_rset(struct engine *e, char *args)
{
    (void)args;
    reset_mail(e);
    send_reply(e, "250 2.0.0 Ok\r\n");
    return true;
}

static bool cmd_noop(struct engine *e, char *args)
{
    (void)args;
    send_reply(e, "250 2.0.0 Ok\r\n");
    return true;
}

static bool cmd_vrfy(struct engine *e, char *args)
{
    if (smtp_next_token(&args) == NULL)
        send_reply(e, "501 5.5.4 Syntax: VRFY address\r\n");
    else if (e->cf->disable_vrfy)
        send_reply(e, "502 5.5.1 VRFY command is disabled\r\n");
    else
        send_reply(e, e->v->rcpt_reply);
    return true;
}

static bool cmd_etrn(struct engine *e, char *args)
{
    if (e->cf->helo_required && e->helo == NULL)
        send_reply(e, "503 5.5.1 Error: send HELO/EHLO first\r\n");
    else if (smtp_next_token(&args) == NULL)
        send_reply(e, "500 Syntax: ETRN domain\r\n");
    else
        send_reply(e, "458 Unable to queue messages\r\n");
    return true;
}

static bool cmd_quit(struct engine *e, char *args)
{
    (void)args;
    end_session(e, "221 2.0.0 Bye\r\n");
    return false;
}

enum {
    CMD_ENABLE = 1 << 0,  /* implemented (else "not recognized") */
    CMD_PRE_TLS = 1 << 1, /* allowed before STARTTLS when TLS is required */
    CMD_PAYLOAD = 1 << 2, /* followed by data: exempt from the pipelining test */
};

static const struct command {
    const char *name;
    bool (*action)(struct engine *e, char *args);
    unsigned flags;
} commands[] = {
    {"HELO", cmd_helo, CMD_ENABLE | CMD_PRE_TLS},
    {"EHLO", cmd_ehlo, CMD_ENABLE | CMD_PRE_TLS},
    {"STARTTLS", cmd_starttls, CMD_ENABLE | CMD_PRE_TLS},
    {"XCLIENT", cmd_noop, 0},
    {"XFORWARD", cmd_noop, 0},
    {"AUTH", cmd_noop, 0},
    {"MAIL", cmd_mail, CMD_ENABLE},
    {"RCPT", cmd_rcpt, CMD_ENABLE},
    {"DATA", cmd_data, CMD_ENABLE},
    {"BDAT", cmd_bdat, CMD_ENABLE | CMD_PAYLOAD},
    {"RSET", cmd_rset, CMD_ENABLE},
    {"NOOP", cmd_noop, CMD_ENABLE | CMD_PRE_TLS},
    {"VRFY", cmd_vrfy, CMD_ENABLE},
    {"ETRN", cmd_etrn, CMD_ENABLE},
    {"QUIT", cmd_quit, CMD_ENABLE | CMD_PRE_TLS},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

/*
 * Execute one command line (spec §3.3 order: command filter, X21,
 * non-SMTP test, pipelining test, RCPT pass, count limit, the command).
 * Returns false when the session ended.
 */
static bool execute(struct engine *e, const char *line, size_t len)
{
    const struct engine_conf *cf = e->cf;
    char esc[LOG_ESCAPE_BUFSZ];
    /* A NUL ends the command text, as it does in Postfix's C strings. */
    char *buf = xstrndup(line, strnlen(line, len));
    bool bad_utf8 = cf->smtputf8 && !smtp_valid_utf8(buf, strlen(buf));

    if (cf->command_filter && !bad_utf8) {
        const char *key = buf + strspn(buf, " \t");
        const char *repl = table_lookup(cf->command_filter, key);
        if (repl) {
            char olde[LOG_ESCAPE_BUFSZ], newe[LOG_ESCAPE_BUFSZ];
            log_escape(olde, sizeof(olde), buf, strlen(buf), LOG_PEER_TEXT_MAX);
            log_escape(newe, sizeof(newe), repl, strlen(repl), LOG_PEER_TEXT_MAX);
            msg_info("[%s]:%s: replacing command \"%s\" with \"%s\"", e->client.addr,
                     e->client.port, olde, newe);
            free(buf);
            buf = xstrdup(repl);
        }
    }

    /* The whole line, as a replay repeats it (tokens are cut in place). */
    char *whole = xstrdup(buf);
    char *args = buf;
    char *command = smtp_next_token(&args);
    if (command == NULL)
        command = args; /* "" */
    const struct command *cmd = NULL;
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcasecmp(command, commands[i].name) == 0)
            cmd = &commands[i];
    const char *saved_where = e->where;
    e->where = cmd ? cmd->name : "UNIMPLEMENTED";
    bool go_on = false;

    if (e->x21 && !(cmd && cmd->action == cmd_quit)) {
        end_session(e, e->v->final_reply);
        goto done;
    }
    if (testing(e, TEST_NON_SMTP) && cmd == NULL &&
        (smtp_is_header(command) || (cf->smtputf8 && !smtp_valid_utf8(command, strlen(command))) ||
         forbidden(cf, command))) {
        smtp_printable(command);
        log_escape(esc, sizeof(esc), args, strlen(args), LOG_PEER_TEXT_MAX);
        msg_info("NON-SMTP COMMAND from [%s]:%s after %s: %.100s %s", e->client.addr,
                 e->client.port, saved_where, command, esc);
        if (!fail_test(e, TEST_NON_SMTP, "521 5.7.0 Error: I can break rules, too. Goodbye.\r\n"))
            goto done;
    }
    if (!(cmd && (cmd->flags & CMD_PAYLOAD)) && testing(e, TEST_PIPELINING) &&
        e->in_off < e->in_len) {
        smtp_printable(command);
        log_escape(esc, sizeof(esc), e->in + e->in_off, e->in_len - e->in_off, LOG_PEER_TEXT_MAX);
        msg_info("COMMAND PIPELINING from [%s]:%s after %.100s: %s", e->client.addr, e->client.port,
                 command, esc);
        if (!fail_test(e, TEST_PIPELINING, "521 5.5.1 Protocol error\r\n"))
            goto done;
    }
    if (cmd && cmd->action == cmd_rcpt) {
        time_t now = time(NULL);
        for (int t = TEST_PIPELINING; t <= TEST_BARE_NEWLINE; t++) {
            unsigned bit = TEST_BIT(t);
            if ((e->v->todo & bit) && !(e->v->pass & bit) && !(e->v->fail & bit)) {
                e->v->pass |= bit;
                e->stamps[t] = now + cf->ttl[t];
            }
        }
    }
    if (++e->command_count > cf->command_count_limit && !(cmd && cmd->action == cmd_quit)) {
        msg_info("COMMAND COUNT LIMIT from [%s]:%s after %s", e->client.addr, e->client.port,
                 saved_where);
        stats.limits[SL_COMMAND_COUNT]++;
        stats_reject(e->client.addr, e->client.port, "COMMAND COUNT LIMIT", "421");
        end_session(e, cf->reply_421);
        goto done;
    }
    if (cmd == NULL || !(cmd->flags & CMD_ENABLE)) {
        send_reply(e, "502 5.5.2 Error: command not recognized\r\n");
    } else if (cf->enforce_tls && e->io != IO_TLS && !(cmd->flags & CMD_PRE_TLS)) {
        send_reply(e, "530 5.7.0 Must issue a STARTTLS command first\r\n");
    } else {
        e->line = whole;
        bool more = cmd->action(e, args);
        e->line = NULL;
        if (!more)
            goto done;
    }
    if (e->replay == REPLAY_NONE)
        arm_command_timer(e);
    go_on = true;
done:
    free(whole);
    free(buf);
    return go_on;
}

/* A line ended in a bare LF: the bare newline test. */
static bool bare_newline(struct engine *e, const char *line, size_t len)
{
    char esc[LOG_ESCAPE_BUFSZ];

    if (!testing(e, TEST_BARE_NEWLINE))
        return true;
    log_escape(esc, sizeof(esc), line, len, LOG_PEER_TEXT_MAX);
    msg_info("BARE NEWLINE from [%s]:%s after %s", e->client.addr, e->client.port, esc);
    return fail_test(e, TEST_BARE_NEWLINE, "521 5.5.1 Protocol error\r\n");
}

/* Execute the complete lines in the read buffer, as far as output allows. */
static void process(struct engine *e)
{
    while (!e->ended && e->replay == REPLAY_NONE && e->io != IO_TLS_PENDING &&
           e->in_off < e->in_len && e->out.len - e->out_off <= ENGINE_OUT_PAUSE) {
        size_t used;
        enum reader_status st =
            reader_feed(&e->rd, e->in + e->in_off, e->in_len - e->in_off, &used);
        e->in_off += used;
        if (st == READER_MORE)
            break;
        if (st == READER_TOOLONG) {
            msg_info("COMMAND LENGTH LIMIT from [%s]:%s after %s", e->client.addr, e->client.port,
                     e->where);
            stats.limits[SL_COMMAND_LENGTH]++;
            stats_reject(e->client.addr, e->client.port, "COMMAND LENGTH LIMIT", "421");
            end_session(e, e->cf->reply_421);
            break;
        }
        size_t len;
        const char *line = reader_line(&e->rd, &len);
        if (e->rd.bare_lf && !bare_newline(e, line, len))
            break;
        bool go_on = execute(e, line, len);
        reader_next(&e->rd);
        if (!go_on)
            break;
    }
    if (e->in_off == e->in_len && e->replay == REPLAY_NONE)
        e->in_off = e->in_len = 0;
}

/* Read more client bytes into the (empty) input buffer; false on EOF or error. */
static bool fill(struct engine *e)
{
    if (e->ssl && e->io == IO_TLS) {
        ERR_clear_error();
        int r = SSL_read(e->ssl, e->in, sizeof(e->in));
        if (r > 0) {
            e->in_off = 0;
            e->in_len = (size_t)r;
            e->read_want = WANT_NONE;
            return true;
        }
        switch (SSL_get_error(e->ssl, r)) {
        case SSL_ERROR_WANT_READ:
            e->read_want = WANT_READ;
            return true;
        case SSL_ERROR_WANT_WRITE:
            e->read_want = WANT_WRITE;
            return true;
        default:
            ERR_clear_error();
            return false;
        }
    }
    ssize_t n = recv(e->fd, e->in, sizeof(e->in), 0);
    if (n > 0) {
        e->in_off = 0;
        e->in_len = (size_t)n;
        return true;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return true;
    return false;
}

/* Drive the TLS handshake; false when it failed (logged). */
static bool handshake(struct engine *e)
{
    ERR_clear_error();
    int r = SSL_do_handshake(e->ssl);
    if (r == 1) {
        e->io = IO_TLS;
        e->read_want = WANT_NONE;
        /* A new session in TLS: forget HELO and MAIL, as postscreen does. */
        set_str(&e->helo, NULL);
        reset_mail(e);
        if (tls_log_level(e->cf->tls) >= 1) {
            int bits = SSL_get_cipher_bits(e->ssl, NULL);
            msg_info("Anonymous TLS connection established from [%s]:%s: %s with cipher %s "
                     "(%d/%d bits)",
                     e->client.addr, e->client.port, SSL_get_version(e->ssl),
                     SSL_get_cipher_name(e->ssl), bits, bits);
        }
        arm_command_timer(e);
        return true;
    }
    switch (SSL_get_error(e->ssl, r)) {
    case SSL_ERROR_WANT_READ:
        e->read_want = WANT_READ;
        return true;
    case SSL_ERROR_WANT_WRITE:
        e->read_want = WANT_WRITE;
        return true;
    default: {
        char ebuf[256];
        msg_warn("TLS handshake failed for [%s]:%s: %s", e->client.addr, e->client.port,
                 tls_error_text(ebuf, sizeof(ebuf)));
        return false;
    }
    }
}

/*
 * Everything is said: stop sending, then read and discard what the client
 * still sends (for at most ENGINE_DRAIN_TIME seconds and ENGINE_DRAIN_MAX
 * bytes), so that closing with unread input does not reset the
 * connection before the client has read the last reply.
 */
static void finish(struct engine *e)
{
    struct timeval tv = {ENGINE_DRAIN_TIME, 0};

    /* With TLS too: what is drained then is encrypted records, unread. */
    if (e->v->hangup) {
        engine_close(e);
        return;
    }
    shutdown(e->fd, SHUT_WR);
    e->draining = true;
    evtimer_add(e->timer, &tv);
    event_del(e->ev);
    event_assign(e->ev, e->base, e->fd, EV_READ, on_io, e);
    event_add(e->ev, NULL);
}

/* Discard client bytes after the last reply; close at EOF or the limit. */
static void drain(struct engine *e)
{
    char buf[4096];

    for (int i = 0; i < 16; i++) {
        ssize_t n = recv(e->fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n > 0) {
            e->drained += (size_t)n;
            if (e->drained < ENGINE_DRAIN_MAX)
                continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            break;
        }
        engine_close(e);
        return;
    }
    event_add(e->ev, NULL); /* one-shot: wait for more, or the EOF */
}

/* Start the TLS handshake once "220 Ready to start TLS" is out. */
static void maybe_start_tls(struct engine *e)
{
    if (e->io == IO_TLS_PENDING && e->out_off >= e->out.len) {
        e->io = IO_TLS_HANDSHAKE;
        arm_command_timer(e);
    }
}

/*
 * Write what is queued and, once the session has ended and everything is
 * out, finish.  False when this turn is over for the engine: it ended, or
 * the connection broke.
 */
static bool write_out(struct engine *e)
{
    if (e->replay == REPLAY_WAIT)
        return false;
    if (e->out_off < e->out.len && !flush(e)) {
        if (e->ended)
            engine_close(e);
        else
            hangup(e);
        return false;
    }
    if (e->ended) {
        if (e->out_off >= e->out.len)
            finish(e);
        else
            update_events(e);
        return false;
    }
    return true;
}

/*
 * The socket is ready: write what is queued, drive the TLS handshake,
 * read once and execute the complete lines.  With TLS, bytes OpenSSL has
 * already decrypted do not make the socket readable again, so they are
 * taken in the same turn.
 */
static void on_io(evutil_socket_t fd, short what, void *arg)
{
    struct engine *e = arg;

    (void)fd;
    (void)what;
    if (e->draining) {
        drain(e);
        return;
    }
    if (e->replay == REPLAY_FALLBACK) {
        e->replay = REPLAY_NONE;
        rcpt_reject(e, strchr(e->rcpt_line, ':') + 1);
        arm_command_timer(e);
    } else if (e->replay == REPLAY_JOIN) {
        /* A client gone by now is the relay's to notice. */
        if (e->out_off < e->out.len && flush(e) && e->out_off < e->out.len) {
            update_events(e);
            return;
        }
        evtimer_del(e->timer);
        detach(e);
        return;
    }
    for (;;) {
        if (!write_out(e))
            return;
        maybe_start_tls(e);
        if (e->io == IO_TLS_HANDSHAKE) {
            if (!handshake(e)) {
                SSL_free(e->ssl);
                e->ssl = NULL;
                hangup(e);
                return;
            }
            if (e->io != IO_TLS)
                break;
        }
        if (e->io == IO_TLS_PENDING || e->out.len - e->out_off > ENGINE_OUT_PAUSE)
            break;
        /* Lines left over when output was paused go first. */
        if (e->in_off == e->in_len && !fill(e)) {
            hangup(e);
            return;
        }
        process(e);
        if (e->ended ||
            !(e->ssl && e->io == IO_TLS && e->in_off == e->in_len && SSL_pending(e->ssl) > 0))
            break;
    }
    if (!write_out(e))
        return;
    maybe_start_tls(e);
    update_events(e);
}

/* The command time limit expired (or, at the end, the flush or drain limit). */
static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct engine *e = arg;

    (void)fd;
    (void)what;
    if (e->ended) {
        if (e->draining || e->out_off < e->out.len)
            engine_close(e);
        else
            finish(e);
        return;
    }
    if (e->replay == REPLAY_JOIN) {
        /* The backend's reply would not go out: end both sides (the relay
         * sees the broken socket at once). */
        shutdown(e->fd, SHUT_RDWR);
        detach(e);
        return;
    }
    if (e->io == IO_TLS_HANDSHAKE || e->io == IO_TLS_PENDING) {
        msg_warn("TLS handshake failed for [%s]:%s: timed out", e->client.addr, e->client.port);
        hangup(e);
        return;
    }
    msg_info("COMMAND TIME LIMIT from [%s]:%s after %s", e->client.addr, e->client.port, e->where);
    stats.limits[SL_COMMAND_TIME]++;
    stats_reject(e->client.addr, e->client.port, "COMMAND TIME LIMIT", "421");
    end_session(e, e->cf->timeout_reply);
    if (e->out_off < e->out.len && !flush(e)) {
        engine_close(e);
        return;
    }
    if (e->out_off >= e->out.len)
        finish(e);
    else
        update_events(e);
}

/* Take over the client; see engine.h. */
struct engine *engine_start(const struct engine_args *a)
{
    struct engine *e = xcalloc(1, sizeof(*e));
    struct verdict *v = a->v;

    e->base = a->base;
    e->cf = a->cf;
    e->fd = a->fd;
    e->client = *a->client;
    e->v = v;
    e->stamps = a->stamps;
    e->stress = a->stress;
    e->backend = a->backend;
    e->fn = a->fn;
    e->ctx = a->ctx;
    e->x21 = a->x21;
    e->proto = "SMTP";
    e->where = "CONNECT";
    e->io = IO_PLAIN;
    gettimeofday(&e->start, NULL);
    reader_init(&e->rd, e->cf->line_limit);
    e->ev = event_new(e->base, e->fd, EV_READ, on_io, e);
    e->timer = evtimer_new(e->base, on_timer, e);

    /* X21: no tests, just the 421 at the first command.  After any failure,
     * all deep tests run, to make the logging more informative. */
    if (e->x21)
        v->todo &= ~TEST_MASK_DEEP;
    else if (verdict_any_fail(v))
        v->todo |= TEST_MASK_DEEP;
    /* No greeting to a client that talked first: its bytes are commands. */
    if (!(v->fail & TEST_BIT(TEST_PREGREET)))
        send_reply(e, e->cf->greeting);
    arm_command_timer(e);
    if (!flush(e))
        hangup(e); /* closed from the loop, right away */
    else
        update_events(e);
    return e;
}

/* What to replay; valid from ENGINE_REPLAY to engine_replay_done(). */
const struct engine_replay *engine_replay_info(const struct engine *e)
{
    return &e->info;
}

/* The backend answered (REPLY, LEN bytes) or failed (NULL); see engine.h. */
void engine_replay_done(struct engine *e, const char *reply, size_t len)
{
    if (e->replay != REPLAY_WAIT)
        msg_panic("engine_replay_done: no replay under way");
    if (reply) {
        sbuf_addn(&e->out, reply, len);
        e->replay = REPLAY_JOIN;
        /* A client that does not take the reply in time loses the session. */
        struct timeval tv = {ENGINE_LINGER, 0};
        evtimer_add(e->timer, &tv);
    } else {
        e->replay = REPLAY_FALLBACK;
    }
    /* Carry on from the loop, never from under the caller. */
    event_del(e->ev);
    event_assign(e->ev, e->base, e->fd, EV_WRITE, on_io, e);
    event_active(e->ev, EV_WRITE, 0);
}

/* What the caller takes over; valid during ENGINE_DETACHED only. */
const struct engine_handover *engine_handover(const struct engine *e)
{
    return &e->handover;
}
