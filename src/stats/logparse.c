/*
 * logparse - postscreen's log vocabulary, read back; see logparse.h for the
 * contract.
 *
 * Every match runs over a cursor (pointer, end) through the helpers below:
 * no sscanf, no strtok, no reliance on a NUL at the end of the line.  A
 * line is first split into time stamp, host, tag and text; the text is then
 * matched from its start against the fixed parts of each known format.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "stats/logparse.h"

/* A read position in the line. */
struct cur {
    const char *p;
    const char *end;
};

/* Bytes left. */
static size_t left(const struct cur *c)
{
    return (size_t)(c->end - c->p);
}

/* Take the literal S if the input continues with it. */
static bool lit(struct cur *c, const char *s)
{
    size_t n = strlen(s);

    if (left(c) < n || memcmp(c->p, s, n) != 0)
        return false;
    c->p += n;
    return true;
}

/* Does the input continue with S?  (Nothing is taken.) */
static bool starts(const struct cur *c, const char *s)
{
    size_t n = strlen(s);

    return left(c) >= n && memcmp(c->p, s, n) == 0;
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

/* Take MIN to MAX decimal digits whose value is at most LIMIT; a field of
 * varying width (MIN < MAX) must not be followed by one more digit. */
static bool number(struct cur *c, size_t min, size_t max, long limit, long *out)
{
    long v = 0;
    size_t n = 0;

    while (n < max && c->p + n < c->end && is_digit(c->p[n])) {
        v = v * 10 + (c->p[n] - '0');
        n++;
    }
    if (n < min || v > limit || (min < max && c->p + n < c->end && is_digit(c->p[n])))
        return false;
    c->p += n;
    *out = v;
    return true;
}

/* Where S next occurs at or after the cursor, or NULL. */
static const char *find(const struct cur *c, const char *s)
{
    return memmem(c->p, left(c), s, strlen(s));
}

/* Everything up to the end of the line. */
static struct logparse_span rest(struct cur *c)
{
    struct logparse_span s = {c->p, left(c)};

    c->p = c->end;
    return s;
}

/* Take everything up to the next SEP (SPAN gets it) and SEP itself. */
static bool until(struct cur *c, const char *sep, struct logparse_span *span)
{
    const char *at = find(c, sep);

    if (at == NULL)
        return false;
    span->p = c->p;
    span->len = (size_t)(at - c->p);
    c->p = at + strlen(sep);
    return true;
}

/* A delay as postscreen formats it: "6", "0.14", "1.2". */
static bool secs(struct cur *c, struct logparse_span *span)
{
    const char *start = c->p;
    long ignored;

    if (!number(c, 1, 12, 999999999999L, &ignored))
        return false;
    if (lit(c, ".") && !number(c, 1, 9, 999999999L, &ignored))
        return false;
    span->p = start;
    span->len = (size_t)(c->p - start);
    return true;
}

/* Check address text (LEN bytes) and put it in canonical form. */
static bool addr_text(const char *p, size_t len, struct logparse_addr *a)
{
    char buf[64];

    if (len == 0 || len >= sizeof(buf))
        return false;
    memcpy(buf, p, len);
    buf[len] = '\0';
    if (memchr(p, ':', len) == NULL) {
        if (inet_pton(AF_INET, buf, a->bytes) != 1)
            return false;
        a->family = AF_INET;
    } else {
        struct in6_addr in6;
        if (inet_pton(AF_INET6, buf, &in6) != 1)
            return false;
        if (IN6_IS_ADDR_V4MAPPED(&in6)) {
            memcpy(a->bytes, in6.s6_addr + 12, 4);
            a->family = AF_INET;
        } else {
            memcpy(a->bytes, in6.s6_addr, 16);
            a->family = AF_INET6;
        }
    }
    return inet_ntop(a->family, a->bytes, a->text, sizeof(a->text)) != NULL;
}

/* "[ADDR]:PORT" (or "[ADDR]PORT" without COLON, as the EHLO discard line has it). */
static bool endpoint(struct cur *c, struct logparse_addr *a, unsigned *port, bool colon)
{
    struct cur save = *c;
    struct logparse_span text;
    long v;

    if (!lit(c, "[") || !until(c, "]", &text) || !addr_text(text.p, text.len, a) ||
        (colon && !lit(c, ":")) || !number(c, 1, 5, 65535, &v)) {
        *c = save;
        return false;
    }
    *port = (unsigned)v;
    return true;
}

static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* "HH:MM:SS" */
static bool clock_time(struct cur *c, struct logparse_time *t)
{
    long h, m, s;

    if (!number(c, 2, 2, 23, &h) || !lit(c, ":") || !number(c, 2, 2, 59, &m) || !lit(c, ":") ||
        !number(c, 2, 2, 60, &s))
        return false;
    t->hour = (int)h;
    t->min = (int)m;
    t->sec = (int)s;
    return true;
}

/* "Nov 21 18:45:18", "Nov  1 18:45:18" or "Nov 01 18:45:18" (syslog, mxscreen). */
static bool syslog_stamp(struct cur *c, struct logparse_time *t)
{
    long d;
    int mon = 0;

    for (int i = 0; i < 12; i++)
        if (starts(c, months[i]))
            mon = i + 1;
    if (mon == 0)
        return false;
    c->p += 3;
    if (!lit(c, " "))
        return false;
    (void)lit(c, " ");
    if (!number(c, 1, 2, 31, &d) || d < 1 || !lit(c, " ") || !clock_time(c, t))
        return false;
    t->year = 0;
    t->mon = mon;
    t->mday = (int)d;
    return true;
}

/* "2026-11-21T18:45:18[.123456][Z|+00:00|+0000]" (RFC 3339, journalctl -o short-iso). */
static bool iso_stamp(struct cur *c, struct logparse_time *t)
{
    long y, mo, d, v;

    if (!number(c, 4, 4, 9999, &y) || !lit(c, "-") || !number(c, 2, 2, 12, &mo) || mo < 1 ||
        !lit(c, "-") || !number(c, 2, 2, 31, &d) || d < 1 || !lit(c, "T") || !clock_time(c, t))
        return false;
    t->year = (int)y;
    t->mon = (int)mo;
    t->mday = (int)d;
    t->usec = 0;
    if (lit(c, ".")) {
        const char *start = c->p;
        if (!number(c, 1, 9, 999999999L, &v))
            return false;
        size_t n = (size_t)(c->p - start);
        for (; n < 6; n++)
            v *= 10;
        for (; n > 6; n--)
            v /= 10;
        t->usec = v;
    }
    if (lit(c, "Z")) {
        t->has_offset = true;
        t->offset_min = 0;
    } else if (starts(c, "+") || starts(c, "-")) {
        int sign = *c->p == '-' ? -1 : 1;
        long oh, om;
        c->p++;
        if (!number(c, 2, 2, 23, &oh))
            return false;
        (void)lit(c, ":");
        if (!number(c, 2, 2, 59, &om))
            return false;
        t->has_offset = true;
        t->offset_min = sign * (int)(oh * 60 + om);
    }
    return true;
}

/* A syslog tag with optional "[pid]", then ":" and a space (or the end). */
static bool tag_field(struct cur *c, struct logparse_span *tag)
{
    const char *start = c->p;
    long pid;

    while (c->p < c->end && *c->p != '[' && *c->p != ':' && *c->p != ' ')
        c->p++;
    tag->p = start;
    tag->len = (size_t)(c->p - start);
    if (tag->len == 0)
        return false;
    if (lit(c, "[") && (!number(c, 1, 10, 9999999999L, &pid) || !lit(c, "]")))
        return false;
    if (!lit(c, ":"))
        return false;
    return lit(c, " ") || c->p == c->end;
}

static bool span_eq(struct logparse_span s, const char *lit_text)
{
    size_t n = strlen(lit_text);

    return s.len == n && memcmp(s.p, lit_text, n) == 0;
}

/* Does S end with "/" + NAME, or equal NAME? */
static bool tag_is(struct logparse_span s, const char *name)
{
    size_t n = strlen(name);

    if (span_eq(s, name))
        return true;
    return s.len > n && s.p[s.len - n - 1] == '/' && memcmp(s.p + s.len - n, name, n) == 0;
}

static enum logparse_source source_of(struct logparse_span tag, const struct logparse_opts *opts)
{
    if (tag_is(tag, "postscreen") || tag_is(tag, "mxscreen"))
        return LP_SRC_POSTSCREEN;
    if (opts != NULL && opts->extra_tag != NULL && opts->extra_tag[0] != '\0' &&
        span_eq(tag, opts->extra_tag))
        return LP_SRC_POSTSCREEN;
    if (tag_is(tag, "dnsblog"))
        return LP_SRC_DNSBLOG;
    return LP_SRC_NONE;
}

/* Split the line into stamp, host, tag and text; false when it has no tag. */
static bool header(struct cur *c, struct logparse_event *ev)
{
    const struct cur start = *c;
    struct cur save;

    ev->time = (struct logparse_time){0};
    if (!syslog_stamp(c, &ev->time)) {
        *c = start;
        ev->time = (struct logparse_time){0};
        if (!iso_stamp(c, &ev->time)) {
            *c = start;
            ev->time = (struct logparse_time){0};
        }
    }
    if (c->p != start.p) {
        ev->time.valid = true;
        ev->time.text.p = start.p;
        ev->time.text.len = (size_t)(c->p - start.p);
        if (!lit(c, " "))
            return false;
    }
    save = *c;
    if (tag_field(c, &ev->tag))
        return true;
    /* "host tag[pid]: " */
    *c = save;
    while (c->p < c->end && *c->p != ' ')
        c->p++;
    ev->host.p = save.p;
    ev->host.len = (size_t)(c->p - save.p);
    if (ev->host.len == 0 || !lit(c, " "))
        return false;
    return tag_field(c, &ev->tag);
}

/* Lines of the form "WORD [A]:P". */
static const struct {
    const char *prefix;
    enum logparse_kind kind;
    bool legacy;
} word_lines[] = {
    {"PASS NEW ", LP_PASS_NEW, false},
    {"PASS OLD ", LP_PASS_OLD, false},
    {"ALLOWLIST VETO ", LP_ALLOWLIST_VETO, false},
    {"WHITELIST VETO ", LP_ALLOWLIST_VETO, true},
    {"ALLOWLISTED ", LP_ALLOWLISTED, false},
    {"WHITELISTED ", LP_ALLOWLISTED, true},
    {"DENYLISTED ", LP_DENYLISTED, false},
    {"BLACKLISTED ", LP_DENYLISTED, true},
    {"DISCONNECT ", LP_DISCONNECT, false},
};

/* Lines of the form "WHAT from [A]:P[ after TEXT]". */
static const struct {
    const char *prefix;
    enum logparse_kind kind;
    bool after; /* " after TEXT" follows (optional before Postfix 2.10) */
} from_lines[] = {
    {"COMMAND PIPELINING from ", LP_PIPELINING, true},
    {"NON-SMTP COMMAND from ", LP_NON_SMTP, true},
    {"BARE NEWLINE from ", LP_BARE_NEWLINE, true},
    {"COMMAND TIME LIMIT from ", LP_TIME_LIMIT, true},
    {"COMMAND COUNT LIMIT from ", LP_COUNT_LIMIT, true},
    {"COMMAND LENGTH LIMIT from ", LP_LENGTH_LIMIT, true},
    {"DATA without valid RCPT from ", LP_DATA_NO_RCPT, false},
    {"BDAT without valid RCPT from ", LP_BDAT_NO_RCPT, false},
};

/* "NOQUEUE: reject: RCPT from [A]:P: REPLY; from=<S>, to=<R>, proto=P, helo=<H>" */
static enum logparse_kind noqueue_rcpt(struct cur *c, struct logparse_event *ev)
{
    long code;
    struct cur r;
    const char *b;

    if (!endpoint(c, &ev->client, &ev->port, true) || !lit(c, ": "))
        return LP_UNKNOWN;
    r = *c;
    if (!number(&r, 3, 3, 599, &code) || code < 200 || !lit(&r, " "))
        return LP_UNKNOWN;
    ev->reply_code = (unsigned)code;
    /* The reply is the server's own text: its first "; from=<" ends it. */
    if (!until(c, "; from=<", &ev->reply) || !until(c, ">, to=<", &ev->sender) ||
        !until(c, ">, proto=", &ev->recipient) || !until(c, ", helo=<", &ev->proto))
        return LP_UNKNOWN;
    ev->helo = rest(c);
    if (ev->helo.len == 0 || ev->helo.p[ev->helo.len - 1] != '>')
        return LP_UNKNOWN;
    ev->helo.len--;
    r = (struct cur){ev->reply.p, ev->reply.p + ev->reply.len};
    if ((b = find(&r, "blocked using ")) != NULL) {
        ev->name.p = b + strlen("blocked using ");
        ev->name.len = (size_t)(r.end - ev->name.p);
    }
    return LP_NOQUEUE_RCPT;
}

/* The kinds of warnings, by their text (spec section 4.2, and mxscreen's). */
static enum logparse_warning warning_kind(const struct cur *c)
{
    static const struct {
        const char *text;
        bool prefix; /* at the start, or anywhere */
        enum logparse_warning kind;
    } kinds[] = {
        {"dnsblog reply timeout ", true, LP_WARN_DNSBL_TIMEOUT},
        {"psc_dnsbl_request: ", true, LP_WARN_DNSBL_REQUEST},
        {"dnsblog_query: lookup error ", true, LP_WARN_DNSBL_LOOKUP},
        {"DNSBL lookup error ", true, LP_WARN_DNSBL_LOOKUP},
        {"DNSBL lookups: ", true, LP_WARN_DNSBL_LOOKUP},
        {": an error code, not a listing", false, LP_WARN_DNSBL_ERROR_ANSWER},
        {"address conversion error ", true, LP_WARN_ADDRESS_CONVERSION},
        {"cannot connect to service ", true, LP_WARN_HANDOFF},
        {"cannot pass connection to service ", true, LP_WARN_HANDOFF},
        {"timeout sending connection to service ", true, LP_WARN_HANDOFF},
        {"write [", true, LP_WARN_WRITE},
        {"getpeername: ", true, LP_WARN_ENDPOINT},
        {"getsockname: ", true, LP_WARN_ENDPOINT},
        {"cannot convert client ", true, LP_WARN_ENDPOINT},
        {"cannot convert server ", true, LP_WARN_ENDPOINT},
        {"-- dropping this connection", false, LP_WARN_ENDPOINT},
        {"haproxy read", true, LP_WARN_HAPROXY},
        {"private/tlsproxy service", false, LP_WARN_TLS},
        {"TLS handshake failed ", true, LP_WARN_TLS},
        {" average delay is ", false, LP_WARN_TABLE_DELAY},
        {"unknown macro name ", true, LP_WARN_FOOTER_MACRO},
        {"cache cleanup scan terminated", false, LP_WARN_CACHE},
        {"cache ", true, LP_WARN_CACHE},
    };

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (kinds[i].prefix ? starts(c, kinds[i].text) : find(c, kinds[i].text) != NULL)
            return kinds[i].kind;
    return LP_WARN_OTHER;
}

/* "cache NAME full|partial cleanup: retained=R dropped=D entries" */
static enum logparse_kind cache_cleanup(struct cur *c, struct logparse_event *ev)
{
    const char *at = find(c, " cleanup: retained=");
    const char *p;

    if (at == NULL)
        return LP_UNKNOWN;
    /* NAME ends at the last blank before " cleanup:"; it may hold blanks. */
    for (p = at; p > c->p && p[-1] != ' '; p--)
        continue;
    if (p - 1 <= c->p)
        return LP_UNKNOWN;
    struct logparse_span how = {p, (size_t)(at - p)};
    if (!span_eq(how, "full") && !span_eq(how, "partial"))
        return LP_UNKNOWN;
    ev->name.p = c->p;
    ev->name.len = (size_t)(p - 1 - c->p);
    ev->detail = how;
    c->p = at + strlen(" cleanup: retained=");
    if (!number(c, 1, 18, 999999999999999999L, &ev->number) || !lit(c, " dropped=") ||
        !number(c, 1, 18, 999999999999999999L, &ev->number2) || !lit(c, " entries") ||
        c->p != c->end)
        return LP_UNKNOWN;
    return LP_CACHE_CLEANUP;
}

/* "N connections" after "entering/leaving STRESS mode with ". */
static enum logparse_kind stress(struct cur *c, struct logparse_event *ev, enum logparse_kind kind)
{
    if (!number(c, 1, 18, 999999999999999999L, &ev->number) || !lit(c, " connections") ||
        c->p != c->end)
        return LP_UNKNOWN;
    return kind;
}

/* Classify the text of a postscreen (or mxscreen) line. */
static enum logparse_kind postscreen_text(struct cur *c, struct logparse_event *ev)
{
    for (size_t i = 0; i < sizeof(word_lines) / sizeof(word_lines[0]); i++) {
        if (lit(c, word_lines[i].prefix)) {
            if (!endpoint(c, &ev->client, &ev->port, true) || c->p != c->end)
                return LP_UNKNOWN;
            ev->legacy = word_lines[i].legacy;
            return word_lines[i].kind;
        }
    }
    for (size_t i = 0; i < sizeof(from_lines) / sizeof(from_lines[0]); i++) {
        if (lit(c, from_lines[i].prefix)) {
            if (!endpoint(c, &ev->client, &ev->port, true))
                return LP_UNKNOWN;
            if (from_lines[i].after && lit(c, " after "))
                ev->detail = rest(c);
            return c->p == c->end ? from_lines[i].kind : LP_UNKNOWN;
        }
    }
    if (lit(c, "CONNECT from ")) {
        if (!endpoint(c, &ev->client, &ev->port, true) || !lit(c, " to ") ||
            !endpoint(c, &ev->server, &ev->server_port, true) || c->p != c->end)
            return LP_UNKNOWN;
        return LP_CONNECT;
    }
    if (lit(c, "PREGREET ")) {
        if (!number(c, 1, 18, 999999999999999999L, &ev->number) || !lit(c, " after ") ||
            !secs(c, &ev->secs) || !lit(c, " from ") ||
            !endpoint(c, &ev->client, &ev->port, true) || !lit(c, ": "))
            return LP_UNKNOWN;
        ev->detail = rest(c);
        return LP_PREGREET;
    }
    if (lit(c, "DNSBL rank ")) {
        bool neg = lit(c, "-");
        if (!number(c, 1, 9, 999999999L, &ev->number) || !lit(c, " for ") ||
            !endpoint(c, &ev->client, &ev->port, true) || c->p != c->end)
            return LP_UNKNOWN;
        if (neg)
            ev->number = -ev->number;
        return LP_DNSBL_RANK;
    }
    if (lit(c, "HANGUP after ")) {
        if (!secs(c, &ev->secs) || !lit(c, " from ") ||
            !endpoint(c, &ev->client, &ev->port, true) || !lit(c, " in ") || c->p == c->end)
            return LP_UNKNOWN;
        ev->detail = rest(c);
        ev->after_handshake = span_eq(ev->detail, "tests after SMTP handshake");
        return LP_HANGUP;
    }
    if (lit(c, "NOQUEUE: reject: RCPT from "))
        return noqueue_rcpt(c, ev);
    if (lit(c, "NOQUEUE: reject: CONNECT from ") || lit(c, "reject: connect from ")) {
        if (!endpoint(c, &ev->client, &ev->port, true) || !lit(c, ": "))
            return LP_UNKNOWN;
        ev->detail = rest(c);
        if (span_eq(ev->detail, "too many connections"))
            return LP_TOO_MANY_CONNECTIONS;
        if (span_eq(ev->detail, "all server ports busy"))
            return LP_SERVER_PORTS_BUSY;
        if (span_eq(ev->detail, "all screening ports busy"))
            return LP_SCREENING_PORTS_BUSY;
        return LP_UNKNOWN;
    }
    if (lit(c, "REPLAY ")) {
        if (!endpoint(c, &ev->client, &ev->port, true) || !lit(c, " to "))
            return LP_UNKNOWN;
        ev->detail = rest(c);
        return LP_REPLAY;
    }
    if (lit(c, "entering STRESS mode with "))
        return stress(c, ev, LP_STRESS_ENTER);
    if (lit(c, "leaving STRESS mode with "))
        return stress(c, ev, LP_STRESS_LEAVE);
    if (lit(c, "cache "))
        return cache_cleanup(c, ev);
    if (lit(c, "table ")) {
        if (!until(c, " has changed - finishing in the background", &ev->name) || c->p != c->end)
            return LP_UNKNOWN;
        return LP_TABLE_CHANGED;
    }
    if (starts(c, "[")) {
        const struct cur save = *c;
        if (endpoint(c, &ev->client, &ev->port, true) && lit(c, ": replacing command \"")) {
            ev->detail = rest(c);
            return LP_REPLACE_COMMAND;
        }
        *c = save;
        if (endpoint(c, &ev->client, &ev->port, false) && lit(c, ": discarding EHLO keywords: ")) {
            ev->detail = rest(c);
            return LP_DISCARD_EHLO;
        }
        return LP_UNKNOWN;
    }
    if (lit(c, "using backwards-compatible default setting respectful_logging=no for client ") ||
        lit(c, "Using backwards-compatible default setting respectful_logging=no for client ")) {
        if (!endpoint(c, &ev->client, &ev->port, true) || c->p != c->end)
            return LP_UNKNOWN;
        return LP_RESPECTFUL_NOTICE;
    }
    return LP_UNKNOWN;
}

/* Classify the text of a dnsblog line. */
static enum logparse_kind dnsblog_text(struct cur *c, struct logparse_event *ev)
{
    struct logparse_span a;

    if (!lit(c, "addr ") || !until(c, " listed by domain ", &a) ||
        !addr_text(a.p, a.len, &ev->client) || !until(c, " as ", &ev->name) || ev->name.len == 0 ||
        c->p == c->end)
        return LP_UNKNOWN;
    ev->detail = rest(c);
    return LP_DNSBLOG_LISTED;
}

/* Parse one log line (LEN bytes at LINE, no newline needed) into EV. */
void logparse_line(const char *line, size_t len, const struct logparse_opts *opts,
                   struct logparse_event *ev)
{
    struct cur c = {line, line + len};

    memset(ev, 0, sizeof(*ev));
    ev->kind = LP_OTHER;
    while (c.end > c.p && (c.end[-1] == '\n' || c.end[-1] == '\r'))
        c.end--;
    if (!header(&c, ev)) {
        memset(ev, 0, sizeof(*ev));
        ev->kind = LP_OTHER;
        return;
    }
    ev->source = source_of(ev->tag, opts);
    ev->text.p = c.p;
    ev->text.len = left(&c);
    if (ev->source == LP_SRC_NONE)
        return;
    if (lit(&c, "warning: ")) {
        ev->warn = warning_kind(&c);
        ev->detail = rest(&c);
        ev->kind = LP_WARNING;
        return;
    }
    if (lit(&c, "fatal: ") || lit(&c, "panic: ") || lit(&c, "error: ")) {
        ev->detail = rest(&c);
        ev->kind = LP_FATAL;
        return;
    }
    if (ev->source == LP_SRC_DNSBLOG) {
        ev->kind = dnsblog_text(&c, ev);
    } else {
        ev->kind = postscreen_text(&c, ev);
    }
    if (ev->kind == LP_OTHER || ev->kind == LP_UNKNOWN) {
        /* Keep the source and text; forget half-parsed fields. */
        struct logparse_event keep = *ev;
        memset(ev, 0, sizeof(*ev));
        ev->source = keep.source;
        ev->kind = keep.kind;
        ev->time = keep.time;
        ev->host = keep.host;
        ev->tag = keep.tag;
        ev->text = keep.text;
    }
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* The year of NOW (seconds since the epoch). */
static int64_t year_of(int64_t now)
{
    int64_t z = (now >= 0 ? now : now - 86399) / 86400 + 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    int64_t m = mp < 10 ? mp + 3 : mp - 9;
    return yoe + era * 400 + (m <= 2);
}

static int64_t stamp_seconds(const struct logparse_time *t, int64_t year)
{
    int64_t s =
        days_from_civil(year, t->mon, t->mday) * 86400 + t->hour * 3600 + t->min * 60 + t->sec;
    return t->has_offset ? s - (int64_t)t->offset_min * 60 : s;
}

/* Seconds since the epoch of stamp T; a syslog stamp gets NOW's year (see logparse.h). */
int64_t logparse_epoch(const struct logparse_time *t, int64_t now)
{
    if (!t->valid)
        return 0;
    if (t->year != 0)
        return stamp_seconds(t, t->year);
    int64_t year = year_of(now);
    int64_t s = stamp_seconds(t, year);
    return s > now + 86400 ? stamp_seconds(t, year - 1) : s;
}

/* A short stable name of each kind (the JSON keys of mxscreen-stats). */
const char *logparse_kind_name(enum logparse_kind kind)
{
    switch (kind) {
    case LP_OTHER:
        return "other";
    case LP_UNKNOWN:
        return "unknown";
    case LP_CONNECT:
        return "connect";
    case LP_PASS_NEW:
        return "pass_new";
    case LP_PASS_OLD:
        return "pass_old";
    case LP_ALLOWLISTED:
        return "allowlisted";
    case LP_DENYLISTED:
        return "denylisted";
    case LP_ALLOWLIST_VETO:
        return "allowlist_veto";
    case LP_PREGREET:
        return "pregreet";
    case LP_DNSBL_RANK:
        return "dnsbl_rank";
    case LP_HANGUP:
        return "hangup";
    case LP_PIPELINING:
        return "command_pipelining";
    case LP_NON_SMTP:
        return "non_smtp_command";
    case LP_BARE_NEWLINE:
        return "bare_newline";
    case LP_TIME_LIMIT:
        return "command_time_limit";
    case LP_COUNT_LIMIT:
        return "command_count_limit";
    case LP_LENGTH_LIMIT:
        return "command_length_limit";
    case LP_NOQUEUE_RCPT:
        return "noqueue_rcpt";
    case LP_DATA_NO_RCPT:
        return "data_without_rcpt";
    case LP_BDAT_NO_RCPT:
        return "bdat_without_rcpt";
    case LP_DISCONNECT:
        return "disconnect";
    case LP_TOO_MANY_CONNECTIONS:
        return "too_many_connections";
    case LP_SERVER_PORTS_BUSY:
        return "all_server_ports_busy";
    case LP_SCREENING_PORTS_BUSY:
        return "all_screening_ports_busy";
    case LP_REPLAY:
        return "replay";
    case LP_STRESS_ENTER:
        return "stress_enter";
    case LP_STRESS_LEAVE:
        return "stress_leave";
    case LP_CACHE_CLEANUP:
        return "cache_cleanup";
    case LP_TABLE_CHANGED:
        return "table_changed";
    case LP_REPLACE_COMMAND:
        return "replacing_command";
    case LP_DISCARD_EHLO:
        return "discarding_ehlo_keywords";
    case LP_RESPECTFUL_NOTICE:
        return "respectful_logging_notice";
    case LP_WARNING:
        return "warning";
    case LP_FATAL:
        return "fatal";
    case LP_DNSBLOG_LISTED:
        return "dnsblog_listed";
    case LP__COUNT:
        break;
    }
    return "?";
}

/* A short stable name of each kind of warning. */
const char *logparse_warning_name(enum logparse_warning warn)
{
    switch (warn) {
    case LP_WARN_NONE:
        return "none";
    case LP_WARN_DNSBL_TIMEOUT:
        return "dnsblog_reply_timeout";
    case LP_WARN_DNSBL_REQUEST:
        return "dnsblog_request";
    case LP_WARN_DNSBL_LOOKUP:
        return "dnsbl_lookup_error";
    case LP_WARN_DNSBL_ERROR_ANSWER:
        return "dnsbl_error_answer";
    case LP_WARN_ADDRESS_CONVERSION:
        return "address_conversion";
    case LP_WARN_HANDOFF:
        return "handoff";
    case LP_WARN_WRITE:
        return "write";
    case LP_WARN_ENDPOINT:
        return "endpoint";
    case LP_WARN_HAPROXY:
        return "haproxy";
    case LP_WARN_TLS:
        return "tls";
    case LP_WARN_TABLE_DELAY:
        return "table_delay";
    case LP_WARN_FOOTER_MACRO:
        return "footer_macro";
    case LP_WARN_CACHE:
        return "cache";
    case LP_WARN_OTHER:
        return "other";
    case LP_WARN__COUNT:
        break;
    }
    return "?";
}
