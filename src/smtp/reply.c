/*
 * reply - soft_bounce and reject footers; see reply.h.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log/log.h"
#include "smtp/reply.h"

/* Length of a valid enhanced status code "c.sss.ddd" at P, or 0. */
static size_t dsn_len(const char *p)
{
    const char *s = p;

    if ((*p != '2' && *p != '4' && *p != '5') || p[1] != '.')
        return 0;
    p += 2;
    for (int field = 0; field < 2; field++) {
        size_t n = 0;
        while (isdigit((unsigned char)p[n]))
            n++;
        if (n == 0 || n > 3)
            return 0;
        p += n;
        if (field == 0) {
            if (*p != '.')
                return 0;
            p++;
        }
    }
    if (*p != ' ' && *p != '\0' && *p != '\r')
        return 0;
    return (size_t)(p - s);
}

/* Append VALUE, with characters outside FILTER replaced by '_'. */
static void add_filtered(struct sbuf *out, const char *value, const char *filter)
{
    for (; *value; value++)
        sbuf_addc(out, (filter && !strchr(filter, *value)) ? '_' : *value);
}

/*
 * Expand the macros of TMPL[0..LEN) into OUT, as Postfix's mac_expand()
 * does for footers; returns -1 on a syntax error.
 */
int reply_expand(struct sbuf *out, const char *tmpl, size_t len, const char *filter,
                 const char *(*lookup)(const char *name, void *ctx), void *ctx)
{
    const char *p = tmpl, *end = tmpl + len;

    while (p < end) {
        if (*p != '$') {
            sbuf_addc(out, *p++);
            continue;
        }
        p++;
        if (p < end && *p == '$') {
            sbuf_addc(out, '$');
            p++;
            continue;
        }
        char name[64];
        size_t nl = 0;
        const char *cond = NULL, *cend = NULL;
        char op = 0;
        if (p < end && (*p == '{' || *p == '(')) {
            /* Only the bracket kind that opened the reference nests (mac_parse). */
            char open = *p, close = *p == '{' ? '}' : ')';
            const char *s = ++p;
            int level = 1;
            while (p < end && level > 0) {
                if (*p == open)
                    level++;
                else if (*p == close)
                    level--;
                if (level > 0)
                    p++;
            }
            if (p >= end || *p != close)
                return -1;
            const char *e = p++;
            const char *q = s;
            while (q < e && (isalnum((unsigned char)*q) || *q == '_'))
                q++;
            nl = (size_t)(q - s);
            if (nl == 0 || nl >= sizeof(name))
                return -1;
            memcpy(name, s, nl);
            if (q < e) {
                if (*q != '?' && *q != ':')
                    return -1;
                op = *q;
                cond = q + 1;
                cend = e;
            }
        } else {
            const char *s = p;
            while (p < end && (isalnum((unsigned char)*p) || *p == '_'))
                p++;
            nl = (size_t)(p - s);
            if (nl == 0 || nl >= sizeof(name))
                return -1;
            memcpy(name, s, nl);
        }
        name[nl] = '\0';
        const char *value = lookup(name, ctx);
        bool defined = value && *value;
        if (op) {
            /* ${name?text}, ${name:text}, ${name?{text}} and ${name?{a}:{b}}. */
            const char *a = cond, *ae = cend, *b = NULL, *be = NULL;
            if (a < ae && *a == '{') {
                const char *q = a + 1;
                int level = 1;
                while (q < ae && level > 0) {
                    if (*q == '{')
                        level++;
                    else if (*q == '}')
                        level--;
                    q++;
                }
                if (level > 0)
                    return -1;
                const char *rest = q;
                ae = q - 1;
                a++;
                if (rest < cend) {
                    if (op != '?' || *rest != ':' || rest + 1 >= cend || rest[1] != '{' ||
                        cend[-1] != '}')
                        return -1;
                    b = rest + 2;
                    be = cend - 1;
                }
            }
            const char *t = NULL, *te = NULL;
            if (op == '?' ? defined : !defined)
                t = a, te = ae;
            else if (b)
                t = b, te = be;
            if (t && reply_expand(out, t, (size_t)(te - t), filter, lookup, ctx) < 0)
                return -1;
        } else if (value) {
            add_filtered(out, value, filter);
        }
    }
    return 0;
}

struct footer_ctx {
    const struct reply_conf *rc;
    const struct reply_peer *peer;
    char timebuf[32];
};

/* The four macros postscreen offers in footers. */
static const char *footer_lookup(const char *name, void *vctx)
{
    struct footer_ctx *c = vctx;

    if (strcmp(name, "server_name") == 0)
        return c->rc->server_name;
    if (strcmp(name, "client_address") == 0)
        return c->peer->addr;
    if (strcmp(name, "client_port") == 0)
        return c->peer->port;
    if (strcmp(name, "localtime") == 0) {
        time_t now = time(NULL);
        struct tm tm;
        localtime_r(&now, &tm);
        strftime(c->timebuf, sizeof(c->timebuf), "%b %d %H:%M:%S", &tm);
        return c->timebuf;
    }
    msg_warn("unknown macro name \"%s\" in expansion request", name);
    return NULL;
}

/* The footer template for the reply TEXT (without CRLF), or NULL. */
static const char *find_footer(const struct reply_conf *rc, const char *text, size_t len)
{
    char key[1024];

    if (rc->nfooter_maps && len < sizeof(key)) {
        memcpy(key, text, len);
        key[len] = '\0';
        for (size_t i = 0; i < rc->nfooter_maps; i++) {
            const char *f = table_lookup(rc->footer_maps[i], key);
            if (f)
                return f;
        }
    }
    return rc->footer && *rc->footer ? rc->footer : NULL;
}

/* Append the footer lines to OUT, whose reply starts at START; see reply.h. */
static void add_footer(struct sbuf *out, size_t start, const char *tmpl,
                       const struct reply_conf *rc, const struct reply_peer *peer)
{
    /* The last reply line's code and enhanced status code. */
    size_t last = start;
    for (size_t i = start; i + 1 < out->len; i++)
        if (out->s[i] == '\r' && out->s[i + 1] == '\n' && i + 2 < out->len)
            last = i + 2;
    if (out->len < start + 4)
        return;
    bool crlf = out->len >= 2 && out->s[out->len - 2] == '\r' && out->s[out->len - 1] == '\n';
    size_t undo = crlf ? out->len - 2 : out->len;
    char code[4];
    memcpy(code, out->s + last, 3);
    code[3] = '\0';
    char dsn[16] = "";
    size_t dl = dsn_len(out->s + last + 4);
    if (dl && dl < sizeof(dsn)) {
        memcpy(dsn, out->s + last + 4, dl);
        dsn[dl] = '\0';
    }
    out->len = undo;
    out->s[out->len] = '\0';

    struct footer_ctx ctx = {.rc = rc, .peer = peer};
    bool added = false;
    const char *p = tmpl;
    for (;;) {
        const char *nl = strstr(p, "\\n");
        const char *e = nl ? nl : p + strlen(p);
        if (p == tmpl && strncmp(p, "\\c", 2) == 0) {
            p += 2;
        } else {
            sbuf_printf(out, "\r\n%s%c", code, nl ? '-' : ' ');
            if (*dsn)
                sbuf_printf(out, "%s ", dsn);
            added = true;
        }
        if (reply_expand(out, p, (size_t)(e - p), rc->filter, footer_lookup, &ctx) < 0) {
            out->len = undo;
            out->s[out->len] = '\0';
            added = false;
            break;
        }
        if (!nl)
            break;
        p = nl + 2;
    }
    if (added)
        out->s[last + 3] = '-';
    if (crlf)
        sbuf_adds(out, "\r\n");
}

/* Append TEXT to OUT with soft_bounce and the footer applied. */
void reply_format(struct sbuf *out, const struct reply_conf *rc, const char *text,
                  const struct reply_peer *peer)
{
    size_t start = out->len;
    size_t tl = strlen(text);

    sbuf_adds(out, text);
    if (rc->soft_bounce && tl >= 5) {
        if (out->s[start] == '5')
            out->s[start] = '4';
        if (out->s[start + 4] == '5')
            out->s[start + 4] = '4';
    }
    if (*text != '4' && *text != '5')
        return;
    size_t kl = tl >= 2 && text[tl - 2] == '\r' ? tl - 2 : tl;
    const char *tmpl = find_footer(rc, text, kl);
    if (tmpl)
        add_footer(out, start, tmpl, rc, peer);
}

/* A copy of TEXT with soft_bounce applied and without CRLF, for logs. */
void reply_soften(char *buf, size_t len, const char *text, bool soft_bounce)
{
    size_t tl = strcspn(text, "\r\n");

    snprintf(buf, len, "%.*s", (int)tl, text);
    if (soft_bounce && tl >= 5) {
        if (len > 1 && buf[0] == '5')
            buf[0] = '4';
        if (len > 5 && buf[4] == '5')
            buf[4] = '4';
    }
}
