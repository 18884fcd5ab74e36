/*
 * test_logparse - logparse_line(): every line of postscreen's vocabulary
 * (spec section 4.1, exact formats), legacy words, IPv6 and escaped peer
 * text, the syslog, RFC 3339 and journalctl prefixes, warnings by kind,
 * dnsblog lines, and garbage, truncated and unterminated input;
 * logparse_epoch(): offsets and the year of syslog stamps
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "stats/logparse.h"

#define P "Nov 21 18:45:18 mx postfix/postscreen[123]: "

struct line_case {
    const char *line;
    enum logparse_kind kind;
    const char *client; /* canonical address, or NULL for none */
    unsigned port;
    long number;
    const char *detail; /* NULL: not checked */
    const char *name;   /* NULL: not checked */
};

static const struct line_case cases[] = {
    {P "CONNECT from [203.0.113.5]:40122 to [198.51.100.25]:25", LP_CONNECT, "203.0.113.5", 40122,
     0, NULL, NULL},
    {P "PASS NEW [203.0.113.5]:40122", LP_PASS_NEW, "203.0.113.5", 40122, 0, NULL, NULL},
    {P "PASS OLD [203.0.113.5]:40199", LP_PASS_OLD, "203.0.113.5", 40199, 0, NULL, NULL},
    {P "ALLOWLISTED [192.0.2.1]:1", LP_ALLOWLISTED, "192.0.2.1", 1, 0, NULL, NULL},
    {P "WHITELISTED [192.0.2.1]:1", LP_ALLOWLISTED, "192.0.2.1", 1, 0, NULL, NULL},
    {P "DENYLISTED [192.0.2.2]:2", LP_DENYLISTED, "192.0.2.2", 2, 0, NULL, NULL},
    {P "BLACKLISTED [192.0.2.2]:2", LP_DENYLISTED, "192.0.2.2", 2, 0, NULL, NULL},
    {P "ALLOWLIST VETO [192.0.2.3]:3", LP_ALLOWLIST_VETO, "192.0.2.3", 3, 0, NULL, NULL},
    {P "WHITELIST VETO [192.0.2.3]:3", LP_ALLOWLIST_VETO, "192.0.2.3", 3, 0, NULL, NULL},
    {P "PREGREET 11 after 0.21 from [192.0.2.9]:51234: EHLO x\\r\\n", LP_PREGREET, "192.0.2.9",
     51234, 11, "EHLO x\\r\\n", NULL},
    /* Peer text that looks like another line, or holds escapes, stays peer text. */
    {P "PREGREET 40 after 6 from [192.0.2.9]:5: DISCONNECT [6.6.6.6]:1\\r\\n\\033[0m\\\\",
     LP_PREGREET, "192.0.2.9", 5, 40, "DISCONNECT [6.6.6.6]:1\\r\\n\\033[0m\\\\", NULL},
    {P "DNSBL rank 3 for [192.0.2.9]:51234", LP_DNSBL_RANK, "192.0.2.9", 51234, 3, NULL, NULL},
    {P "DNSBL rank -2 for [192.0.2.9]:51234", LP_DNSBL_RANK, "192.0.2.9", 51234, -2, NULL, NULL},
    {P "HANGUP after 0.14 from [192.0.2.10]:4 in tests before SMTP handshake", LP_HANGUP,
     "192.0.2.10", 4, 0, "tests before SMTP handshake", NULL},
    {P "HANGUP after 1.2 from [192.0.2.10]:4 in tests after SMTP handshake", LP_HANGUP,
     "192.0.2.10", 4, 0, "tests after SMTP handshake", NULL},
    {P "COMMAND PIPELINING from [192.0.2.11]:5 after EHLO: MAIL FROM:<a@b>\\r\\n", LP_PIPELINING,
     "192.0.2.11", 5, 0, "EHLO: MAIL FROM:<a@b>\\r\\n", NULL},
    {P "NON-SMTP COMMAND from [192.0.2.12]:6 after CONNECT: GET / HTTP/1.0", LP_NON_SMTP,
     "192.0.2.12", 6, 0, "CONNECT: GET / HTTP/1.0", NULL},
    {P "NON-SMTP COMMAND from [192.0.2.12]:6 after UNIMPLEMENTED: \\377\\376 x\\\\y", LP_NON_SMTP,
     "192.0.2.12", 6, 0, "UNIMPLEMENTED: \\377\\376 x\\\\y", NULL},
    {P "BARE NEWLINE from [192.0.2.13]:7 after EHLO x", LP_BARE_NEWLINE, "192.0.2.13", 7, 0,
     "EHLO x", NULL},
    {P "COMMAND TIME LIMIT from [192.0.2.14]:8 after CONNECT", LP_TIME_LIMIT, "192.0.2.14", 8, 0,
     "CONNECT", NULL},
    {P "COMMAND COUNT LIMIT from [192.0.2.15]:9 after NOOP", LP_COUNT_LIMIT, "192.0.2.15", 9, 0,
     "NOOP", NULL},
    {P "COMMAND LENGTH LIMIT from [192.0.2.16]:10 after UNIMPLEMENTED", LP_LENGTH_LIMIT,
     "192.0.2.16", 10, 0, "UNIMPLEMENTED", NULL},
    /* Before Postfix 2.10 there was no "after CMD". */
    {P "COMMAND COUNT LIMIT from [192.0.2.15]:9", LP_COUNT_LIMIT, "192.0.2.15", 9, 0, "", NULL},
    {P "NOQUEUE: reject: RCPT from [192.0.2.9]:51234: 550 5.7.1 Service unavailable; client "
       "[192.0.2.9] blocked using zen.spamhaus.org; from=<a@b.example>, to=<u@d.example>, "
       "proto=ESMTP, helo=<x>",
     LP_NOQUEUE_RCPT, "192.0.2.9", 51234, 0, NULL, "zen.spamhaus.org"},
    {P "NOQUEUE: reject: RCPT from [192.0.2.17]:11: 450 4.3.2 Service currently unavailable; "
       "from=<>, to=<c@d>, proto=SMTP, helo=<>",
     LP_NOQUEUE_RCPT, "192.0.2.17", 11, 0, NULL, ""},
    {P "DATA without valid RCPT from [192.0.2.18]:12", LP_DATA_NO_RCPT, "192.0.2.18", 12, 0, NULL,
     NULL},
    {P "BDAT without valid RCPT from [192.0.2.18]:12", LP_BDAT_NO_RCPT, "192.0.2.18", 12, 0, NULL,
     NULL},
    {P "DISCONNECT [192.0.2.9]:51234", LP_DISCONNECT, "192.0.2.9", 51234, 0, NULL, NULL},
    {P "NOQUEUE: reject: CONNECT from [192.0.2.19]:13: too many connections",
     LP_TOO_MANY_CONNECTIONS, "192.0.2.19", 13, 0, NULL, NULL},
    {P "NOQUEUE: reject: CONNECT from [192.0.2.19]:13: all server ports busy", LP_SERVER_PORTS_BUSY,
     "192.0.2.19", 13, 0, NULL, NULL},
    {P "reject: connect from [192.0.2.19]:13: all screening ports busy", LP_SCREENING_PORTS_BUSY,
     "192.0.2.19", 13, 0, NULL, NULL},
    /* The form POSTSCREEN_README documents (spec section 7). */
    {P "NOQUEUE: reject: CONNECT from [192.0.2.19]:13: all screening ports busy",
     LP_SCREENING_PORTS_BUSY, "192.0.2.19", 13, 0, NULL, NULL},
    {P "entering STRESS mode with 90 connections", LP_STRESS_ENTER, NULL, 0, 90, NULL, NULL},
    {P "leaving STRESS mode with 69 connections", LP_STRESS_LEAVE, NULL, 0, 69, NULL, NULL},
    {P "cache btree:/var/lib/postfix/postscreen_cache full cleanup: retained=12 dropped=3 entries",
     LP_CACHE_CLEANUP, NULL, 0, 12, "full", "btree:/var/lib/postfix/postscreen_cache"},
    {P "cache proxy:btree:/x partial cleanup: retained=0 dropped=0 entries", LP_CACHE_CLEANUP, NULL,
     0, 0, "partial", "proxy:btree:/x"},
    {P "table cidr:/etc/postfix/access.cidr has changed - finishing in the background",
     LP_TABLE_CHANGED, NULL, 0, 0, NULL, "cidr:/etc/postfix/access.cidr"},
    {P "[192.0.2.20]:14: replacing command \"EHLO\" with \"NOOP\"", LP_REPLACE_COMMAND,
     "192.0.2.20", 14, 0, NULL, NULL},
    {P "[192.0.2.20]14: discarding EHLO keywords: CHUNKING DSN", LP_DISCARD_EHLO, "192.0.2.20", 14,
     0, "CHUNKING DSN", NULL},
    {P "using backwards-compatible default setting respectful_logging=no for client "
       "[192.0.2.21]:15",
     LP_RESPECTFUL_NOTICE, "192.0.2.21", 15, 0, NULL, NULL},
    /* mxscreen's own line after a replay hand-off. */
    {P "REPLAY [192.0.2.22]:16 to 127.0.0.1:10025: RCPT 250 2.1.5 Ok", LP_REPLAY, "192.0.2.22", 16,
     0, "127.0.0.1:10025: RCPT 250 2.1.5 Ok", NULL},
    /* IPv6 clients, canonical form, IPv4-mapped as IPv4. */
    {P "CONNECT from [2001:db8::1]:4000 to [2001:db8::25]:25", LP_CONNECT, "2001:db8::1", 4000, 0,
     NULL, NULL},
    {P "PASS NEW [2001:DB8:0:0::1]:4000", LP_PASS_NEW, "2001:db8::1", 4000, 0, NULL, NULL},
    {P "PREGREET 6 after 0.5 from [2001:db8:1:2:3:4:5:6]:1: QUIT\\r\\n", LP_PREGREET,
     "2001:db8:1:2:3:4:5:6", 1, 6, "QUIT\\r\\n", NULL},
    {P "DISCONNECT [::ffff:192.0.2.1]:25", LP_DISCONNECT, "192.0.2.1", 25, 0, NULL, NULL},
    {P "NOQUEUE: reject: RCPT from [2001:db8::9]:2: 550 5.7.1 Service unavailable; client "
       "[2001:db8::9] blocked using bl.test; from=<a@b>, to=<c@d>, proto=ESMTP, helo=<[::1]>",
     LP_NOQUEUE_RCPT, "2001:db8::9", 2, 0, NULL, "bl.test"},
    /* dnsblog */
    {"Nov 21 18:45:19 mx postfix/dnsblog[124]: addr 192.0.2.9 listed by domain zen.spamhaus.org "
     "as 127.0.0.4",
     LP_DNSBLOG_LISTED, "192.0.2.9", 0, 0, "127.0.0.4", "zen.spamhaus.org"},
    {"Nov 21 18:45:19 mx postfix/dnsblog[124]: addr 2001:db8::9 listed by domain bl.test as "
     "127.0.0.2",
     LP_DNSBLOG_LISTED, "2001:db8::9", 0, 0, "127.0.0.2", "bl.test"},
    {"Nov 21 18:45:19 mx postfix/dnsblog[124]: addr 192.0.2.9 listed by domain zen", LP_UNKNOWN,
     NULL, 0, 0, NULL, NULL},
    {"Nov 21 18:45:19 mx postfix/dnsblog[124]: warning: dnsblog_query: lookup error for DNS query "
     "9.2.0.192.bl.test: Host or domain name not found",
     LP_WARNING, NULL, 0, 0, NULL, NULL},
    /* Not postscreen's: other programs, even with postscreen's words. */
    {"Nov 21 18:45:19 mx postfix/smtpd[5]: connect from unknown[192.0.2.9]", LP_OTHER, NULL, 0, 0,
     NULL, NULL},
    {"Nov 21 18:45:19 mx postfix/smtpd[5]: PASS NEW [192.0.2.9]:1", LP_OTHER, NULL, 0, 0, NULL,
     NULL},
    {"Nov 21 18:45:19 mx postscreenx[5]: PASS NEW [192.0.2.9]:1", LP_OTHER, NULL, 0, 0, NULL, NULL},
    {"Nov 21 18:45:19 mx not/postscreen/really/x[5]: PASS NEW [192.0.2.9]:1", LP_OTHER, NULL, 0, 0,
     NULL, NULL},
    /* Garbage and cut lines. */
    {"", LP_OTHER, NULL, 0, 0, NULL, NULL},
    {"\n", LP_OTHER, NULL, 0, 0, NULL, NULL},
    {"garbage", LP_OTHER, NULL, 0, 0, NULL, NULL},
    {"Nov 21", LP_OTHER, NULL, 0, 0, NULL, NULL},
    {"Nov 21 18:45:18 mx", LP_OTHER, NULL, 0, 0, NULL, NULL},
    {"Nov 21 18:45:18 mx postfix/postscreen[123]", LP_OTHER, NULL, 0, 0, NULL, NULL},
    {"Nov 21 18:45:18 mx postfix/postscreen[12x]: PASS NEW [192.0.2.1]:1", LP_OTHER, NULL, 0, 0,
     NULL, NULL},
    {"-- No entries --", LP_OTHER, NULL, 0, 0, NULL, NULL},
    {P, LP_UNKNOWN, NULL, 0, 0, NULL, NULL},
    {P "CONNECT from [203.0.113.5]:40122 to [198.51.100.25]", LP_UNKNOWN, NULL, 0, 0, NULL, NULL},
    {P "CONNECT from [203.0.113.5]:40122 to", LP_UNKNOWN, NULL, 0, 0, NULL, NULL},
    {P "CONNECT from [203.0.113.5", LP_UNKNOWN, NULL, 0, 0, NULL, NULL},
    {P "CONNECT from [203.0.113.500]:1 to [198.51.100.25]:25", LP_UNKNOWN, NULL, 0, 0, NULL, NULL},
    {P "CONNECT from [host.example]:1 to [198.51.100.25]:25", LP_UNKNOWN, NULL, 0, 0, NULL, NULL},
    {P "CONNECT from [2001:db8::1::2]:1 to [198.51.100.25]:25", LP_UNKNOWN, NULL, 0, 0, NULL, NULL},
    {P "PASS NEW [192.0.2.1]:65536", LP_UNKNOWN, NULL, 0, 0, NULL, NULL},
    {P "PASS NEW [192.0.2.1]:", LP_UNKNOWN, NULL, 0, 0, NULL, NULL},
    {P "PASS NEW [192.0.2.1]:25 and more", LP_UNKNOWN, NULL, 0, 0, NULL, NULL},
    {P "PASS NEWS [192.0.2.1]:25", LP_UNKNOWN, NULL, 0, 0, NULL, NULL},
    {P "PREGREET 11 after 0.21 from [192.0.2.9]:51234", LP_UNKNOWN, NULL, 0, 0, NULL, NULL},
    {P "PREGREET x after 0.21 from [192.0.2.9]:51234: EHLO", LP_UNKNOWN, NULL, 0, 0, NULL, NULL},
    {P "DNSBL rank for [192.0.2.9]:51234", LP_UNKNOWN, NULL, 0, 0, NULL, NULL},
    {P "HANGUP after 0.14 from [192.0.2.10]:4", LP_UNKNOWN, NULL, 0, 0, NULL, NULL},
    {P "HANGUP after 0.14. from [192.0.2.10]:4 in tests before SMTP handshake", LP_UNKNOWN, NULL, 0,
     0, NULL, NULL},
    {P "NOQUEUE: reject: RCPT from [192.0.2.9]:51234: 550 5.7.1 Service unavailable; client "
       "[192.0.2.9] blocked using zen.spamhaus.org; from=<a@b.example>, to=<u@d.ex",
     LP_UNKNOWN, NULL, 0, 0, NULL, NULL},
    {P "NOQUEUE: reject: RCPT from [192.0.2.9]:51234: 550 5.7.1 Service unavailable; client "
       "[192.0.2.9] blocked using zen.spamhaus.org; from=<a@b.example>, to=<u@d.example>, "
       "proto=ESMTP, helo=<x",
     LP_UNKNOWN, NULL, 0, 0, NULL, NULL},
    {P "NOQUEUE: reject: RCPT from [192.0.2.9]:51234: Service unavailable; from=<>, to=<>, "
       "proto=SMTP, helo=<>",
     LP_UNKNOWN, NULL, 0, 0, NULL, NULL},
    {P "NOQUEUE: reject: CONNECT from [192.0.2.19]:13: too many", LP_UNKNOWN, NULL, 0, 0, NULL,
     NULL},
    {P "DISCONNECT [192.0.2.9]:51234\r\n", LP_DISCONNECT, "192.0.2.9", 51234, 0, NULL, NULL},
    {P "starting mxscreen 0.1.0: hand-off by proxy to 127.0.0.1:10025", LP_UNKNOWN, NULL, 0, 0,
     NULL, NULL},
    {P "fatal: bad DNSBL filter syntax", LP_FATAL, NULL, 0, 0, "bad DNSBL filter syntax", NULL},
    {P "panic: out of memory", LP_FATAL, NULL, 0, 0, "out of memory", NULL},
};

static char *span_dup(struct logparse_span s)
{
    char *p = malloc(s.len + 1);
    assert_non_null(p);
    if (s.len > 0)
        memcpy(p, s.p, s.len);
    p[s.len] = '\0';
    return p;
}

static void check_span(size_t i, const char *what, struct logparse_span s, const char *want)
{
    if (want == NULL)
        return;
    char *got = span_dup(s);
    if (strcmp(got, want) != 0)
        fail_msg("case %zu: %s \"%s\", want \"%s\"", i, what, got, want);
    free(got);
}

/* Parse LINE from a heap copy of exactly its bytes (no NUL after it), so
 * that ASan catches any read past the end. */
static void parse_exact(const char *line, size_t len, struct logparse_event *ev)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, line, len);
    logparse_line(copy, len, NULL, ev);
    /* Spans point into the caller's line: check them before it goes. */
    if (ev->text.p != NULL)
        assert_true(ev->text.p >= copy && ev->text.p + ev->text.len <= copy + len);
    if (ev->detail.p != NULL)
        assert_true(ev->detail.p >= copy && ev->detail.p + ev->detail.len <= copy + len);
    free(copy);
}

static void test_line_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct line_case *c = &cases[i];
        struct logparse_event ev;
        logparse_line(c->line, strlen(c->line), NULL, &ev);
        if (ev.kind != c->kind)
            fail_msg("case %zu \"%s\": kind %s, want %s", i, c->line, logparse_kind_name(ev.kind),
                     logparse_kind_name(c->kind));
        if (c->client != NULL) {
            if (strcmp(ev.client.text, c->client) != 0)
                fail_msg("case %zu: client \"%s\", want \"%s\"", i, ev.client.text, c->client);
            assert_int_equal(ev.port, c->port);
        } else if (c->kind != LP_DNSBLOG_LISTED) {
            assert_int_equal(ev.client.family, 0);
        }
        if (c->number != 0 || c->kind == LP_STRESS_ENTER || c->kind == LP_CACHE_CLEANUP)
            assert_int_equal(ev.number, c->number);
        check_span(i, "detail", ev.detail, c->detail);
        check_span(i, "name", ev.name, c->name);
        /* The same bytes, not NUL-terminated. */
        struct logparse_event ev2;
        parse_exact(c->line, strlen(c->line), &ev2);
        assert_int_equal(ev2.kind, ev.kind);
    }
}

/* The details of the lines with more parts. */
static void test_line_details(void **state)
{
    struct logparse_event ev;
    const char *l;

    (void)state;
    l = P "CONNECT from [2001:db8::1]:4000 to [2001:db8::25]:25";
    logparse_line(l, strlen(l), NULL, &ev);
    assert_int_equal(ev.source, LP_SRC_POSTSCREEN);
    assert_int_equal(ev.client.family, AF_INET6);
    assert_string_equal(ev.server.text, "2001:db8::25");
    assert_int_equal(ev.server_port, 25);
    check_span(0, "tag", ev.tag, "postfix/postscreen");
    check_span(0, "host", ev.host, "mx");

    l = P "NOQUEUE: reject: RCPT from [192.0.2.9]:51234: 550 5.7.1 Service unavailable; client "
          "[192.0.2.9] blocked using zen.spamhaus.org; from=<a@b.example>, to=<u@d.example>, "
          "proto=ESMTP, helo=<x>";
    logparse_line(l, strlen(l), NULL, &ev);
    assert_int_equal(ev.kind, LP_NOQUEUE_RCPT);
    assert_int_equal(ev.reply_code, 550);
    check_span(1, "reply", ev.reply,
               "550 5.7.1 Service unavailable; client [192.0.2.9] blocked using zen.spamhaus.org");
    check_span(1, "sender", ev.sender, "a@b.example");
    check_span(1, "recipient", ev.recipient, "u@d.example");
    check_span(1, "proto", ev.proto, "ESMTP");
    check_span(1, "helo", ev.helo, "x");

    /* Peer text in the HELO name that looks like the fields' separators. */
    l = P "NOQUEUE: reject: RCPT from [192.0.2.9]:1: 550 5.5.1 Protocol error; from=<a@b>, "
          "to=<c@d>, proto=SMTP, helo=<x>, proto=ESMTP, helo=<y>";
    logparse_line(l, strlen(l), NULL, &ev);
    assert_int_equal(ev.kind, LP_NOQUEUE_RCPT);
    check_span(2, "reply", ev.reply, "550 5.5.1 Protocol error");
    check_span(2, "helo", ev.helo, "x>, proto=ESMTP, helo=<y");

    l = P "HANGUP after 0.14 from [192.0.2.10]:4 in tests before SMTP handshake";
    logparse_line(l, strlen(l), NULL, &ev);
    assert_false(ev.after_handshake);
    check_span(3, "secs", ev.secs, "0.14");
    l = P "HANGUP after 12 from [192.0.2.10]:4 in tests after SMTP handshake";
    logparse_line(l, strlen(l), NULL, &ev);
    assert_true(ev.after_handshake);
    check_span(4, "secs", ev.secs, "12");

    l = P "WHITELIST VETO [192.0.2.3]:3";
    logparse_line(l, strlen(l), NULL, &ev);
    assert_true(ev.legacy);
    l = P "ALLOWLIST VETO [192.0.2.3]:3";
    logparse_line(l, strlen(l), NULL, &ev);
    assert_false(ev.legacy);
    l = P "BLACKLISTED [192.0.2.3]:3";
    logparse_line(l, strlen(l), NULL, &ev);
    assert_true(ev.legacy);

    l = P "cache btree:/x full cleanup: retained=12 dropped=3 entries";
    logparse_line(l, strlen(l), NULL, &ev);
    assert_int_equal(ev.number2, 3);
}

/* One message behind every prefix that syslog, mxscreen and journalctl write. */
static void test_prefixes(void **state)
{
    static const struct {
        const char *prefix;
        bool has_time;
        int year, mon, mday, hour;
        long usec;
        bool has_offset;
        int offset_min;
        const char *host; /* NULL: none */
    } prefixes[] = {
        {"Nov 21 18:45:18 mx postfix/postscreen[123]: ", true, 0, 11, 21, 18, 0, false, 0, "mx"},
        {"Nov  1 08:45:18 mx postfix/postscreen[123]: ", true, 0, 11, 1, 8, 0, false, 0, "mx"},
        /* mxscreen's stderr and file log: "%b %d" pads the day with a zero. */
        {"Nov 01 08:45:18 localhost mxscreen[77]: ", true, 0, 11, 1, 8, 0, false, 0, "localhost"},
        {"Jan 02 00:00:00 mx.example.org postfix-in/postscreen[1]: ", true, 0, 1, 2, 0, 0, false, 0,
         "mx.example.org"},
        /* rsyslog RFC 3339 */
        {"2026-11-21T18:45:18.123456+00:00 mx postfix/postscreen[123]: ", true, 2026, 11, 21, 18,
         123456, true, 0, "mx"},
        {"2026-11-21T18:45:18.5-05:30 mx postfix/postscreen[123]: ", true, 2026, 11, 21, 18, 500000,
         true, -330, "mx"},
        /* journalctl -o short-iso, and short-iso-precise */
        {"2026-11-21T18:45:18+0100 mx postfix/postscreen[123]: ", true, 2026, 11, 21, 18, 0, true,
         60, "mx"},
        {"2026-11-21T18:45:18.000001+0000 mx mxscreen[9]: ", true, 2026, 11, 21, 18, 1, true, 0,
         "mx"},
        {"2026-11-21T18:45:18Z mx postfix/postscreen[123]: ", true, 2026, 11, 21, 18, 0, true, 0,
         "mx"},
        {"2026-11-21T18:45:18 mx postfix/postscreen[123]: ", true, 2026, 11, 21, 18, 0, false, 0,
         "mx"},
        /* no host, no pid, no time stamp */
        {"Nov 21 18:45:18 postfix/postscreen[123]: ", true, 0, 11, 21, 18, 0, false, 0, NULL},
        {"Nov 21 18:45:18 mx postfix/postscreen: ", true, 0, 11, 21, 18, 0, false, 0, "mx"},
        {"postfix/postscreen[123]: ", false, 0, 0, 0, 0, 0, false, 0, NULL},
        {"mxscreen[123]: ", false, 0, 0, 0, 0, 0, false, 0, NULL},
    };
    char line[256];

    (void)state;
    for (size_t i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++) {
        struct logparse_event ev;
        snprintf(line, sizeof(line), "%sPASS OLD [192.0.2.7]:2525", prefixes[i].prefix);
        logparse_line(line, strlen(line), NULL, &ev);
        if (ev.kind != LP_PASS_OLD)
            fail_msg("prefix %zu \"%s\": kind %s", i, prefixes[i].prefix,
                     logparse_kind_name(ev.kind));
        assert_string_equal(ev.client.text, "192.0.2.7");
        assert_int_equal(ev.port, 2525);
        assert_int_equal(ev.time.valid, prefixes[i].has_time);
        if (prefixes[i].has_time) {
            assert_int_equal(ev.time.year, prefixes[i].year);
            assert_int_equal(ev.time.mon, prefixes[i].mon);
            assert_int_equal(ev.time.mday, prefixes[i].mday);
            assert_int_equal(ev.time.hour, prefixes[i].hour);
            assert_int_equal(ev.time.usec, prefixes[i].usec);
            assert_int_equal(ev.time.has_offset, prefixes[i].has_offset);
            assert_int_equal(ev.time.offset_min, prefixes[i].offset_min);
            /* The stamp's text is the prefix up to the blank before the host. */
            size_t stamp_len = strcspn(prefixes[i].prefix, " ");
            if (prefixes[i].year == 0)
                stamp_len = 15; /* "Nov 21 18:45:18" */
            assert_int_equal(ev.time.text.len, stamp_len);
        }
        if (prefixes[i].host)
            check_span(i, "host", ev.host, prefixes[i].host);
        else
            assert_null(ev.host.p);
    }
}

/* The caller's extra tag; dnsblog under any syslog_name. */
static void test_tags(void **state)
{
    struct logparse_opts o = {"smtp-screen"};
    struct logparse_event ev;
    const char *l = "Nov 21 18:45:18 mx smtp-screen[1]: PASS OLD [192.0.2.7]:2525";

    (void)state;
    logparse_line(l, strlen(l), NULL, &ev);
    assert_int_equal(ev.kind, LP_OTHER);
    logparse_line(l, strlen(l), &o, &ev);
    assert_int_equal(ev.kind, LP_PASS_OLD);
    l = "Nov 21 18:45:18 mx postfix-out/dnsblog[1]: addr 192.0.2.1 listed by domain a.test as "
        "127.0.0.2";
    logparse_line(l, strlen(l), NULL, &ev);
    assert_int_equal(ev.source, LP_SRC_DNSBLOG);
    assert_int_equal(ev.kind, LP_DNSBLOG_LISTED);
    /* postscreen's words in a dnsblog line mean nothing. */
    l = "Nov 21 18:45:18 mx postfix/dnsblog[1]: PASS OLD [192.0.2.7]:2525";
    logparse_line(l, strlen(l), NULL, &ev);
    assert_int_equal(ev.kind, LP_UNKNOWN);
}

/* Warnings of spec section 4.2 (and mxscreen's own), by kind. */
static void test_warnings(void **state)
{
    static const struct {
        const char *text;
        enum logparse_warning kind;
    } w[] = {
        {"dnsblog reply timeout 10s for zen.spamhaus.org", LP_WARN_DNSBL_TIMEOUT},
        {"psc_dnsbl_request: connect to private/dnsblog service: Connection refused",
         LP_WARN_DNSBL_REQUEST},
        {"psc_dnsbl_request: error sending to private/dnsblog service: Broken pipe",
         LP_WARN_DNSBL_REQUEST},
        {"dnsblog_query: lookup error for DNS query 1.2.0.192.x.test: Host not found, try again",
         LP_WARN_DNSBL_LOOKUP},
        {"DNSBL lookup error for DNS query 1.2.0.192.x.test: timeout; counted as not listed (1 "
         "errors so far)",
         LP_WARN_DNSBL_LOOKUP},
        {"DNSBL bl.test answered 127.255.255.254 for 2.0.0.127.bl.test: an error code, not a "
         "listing; counted as not listed (1 error answers so far)",
         LP_WARN_DNSBL_ERROR_ANSWER},
        {"address conversion error for x -- ignoring this reply", LP_WARN_ADDRESS_CONVERSION},
        {"cannot connect to service private/smtpd: No such file or directory", LP_WARN_HANDOFF},
        {"cannot pass connection to service private/smtpd: Broken pipe", LP_WARN_HANDOFF},
        {"timeout sending connection to service private/smtpd", LP_WARN_HANDOFF},
        {"write [192.0.2.1]:25: Connection reset by peer", LP_WARN_WRITE},
        {"getpeername: Transport endpoint is not connected -- dropping this connection",
         LP_WARN_ENDPOINT},
        {"haproxy read: time limit exceeded", LP_WARN_HAPROXY},
        {"connect to private/tlsproxy service: No such file or directory", LP_WARN_TLS},
        {"TLS handshake failed for [192.0.2.1]:25: timed out", LP_WARN_TLS},
        {"psc_dnsbl_lookup: btree:/x lookup average delay is 120 ms", LP_WARN_TABLE_DELAY},
        {"unknown macro name \"foo\" in expansion request", LP_WARN_FOOTER_MACRO},
        {"btree:/x: cache cleanup scan terminated due to error", LP_WARN_CACHE},
        {"something else entirely", LP_WARN_OTHER},
    };
    char line[512];

    (void)state;
    for (size_t i = 0; i < sizeof(w) / sizeof(w[0]); i++) {
        struct logparse_event ev;
        snprintf(line, sizeof(line), P "warning: %s", w[i].text);
        logparse_line(line, strlen(line), NULL, &ev);
        assert_int_equal(ev.kind, LP_WARNING);
        if (ev.warn != w[i].kind)
            fail_msg("warning %zu \"%s\": %s, want %s", i, w[i].text,
                     logparse_warning_name(ev.warn), logparse_warning_name(w[i].kind));
        check_span(i, "detail", ev.detail, w[i].text);
    }
}

/* Every cut of every line parses without reading past the cut, and a
 * cut line is never taken for a longer kind's complete form. */
static void test_every_truncation(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i].line);
        for (size_t k = 0; k < len; k++) {
            struct logparse_event ev;
            parse_exact(cases[i].line, k, &ev);
            if (cases[i].kind == LP_NOQUEUE_RCPT)
                assert_int_not_equal(ev.kind, LP_NOQUEUE_RCPT);
            if (cases[i].kind == LP_CONNECT)
                /* a cut CONNECT line may still end in a (shorter) port */
                assert_true(ev.kind == LP_CONNECT || ev.kind == LP_UNKNOWN || ev.kind == LP_OTHER);
        }
    }
}

/* Bytes of every value in the text part do not upset the parser. */
static void test_binary_text(void **state)
{
    char line[512];
    size_t n = strlen(P "PREGREET 3 after 1 from [192.0.2.9]:1: ");

    (void)state;
    memcpy(line, P "PREGREET 3 after 1 from [192.0.2.9]:1: ", n);
    for (int b = 0; b < 256; b++) {
        struct logparse_event ev;
        line[n] = (char)b;
        line[n + 1] = 'x';
        logparse_line(line, n + 2, NULL, &ev);
        assert_int_equal(ev.kind, LP_PREGREET);
    }
}

static void test_epoch(void **state)
{
    struct logparse_event ev;
    const char *l;
    /* 2026-01-02T00:00:00Z */
    const int64_t jan2 = 1767312000;

    (void)state;
    l = "2026-11-21T18:45:18Z mx postfix/postscreen[1]: PASS OLD [192.0.2.7]:1";
    logparse_line(l, strlen(l), NULL, &ev);
    assert_int_equal(logparse_epoch(&ev.time, 0), 1795286718);
    l = "2026-11-21T19:45:18+01:00 mx postfix/postscreen[1]: PASS OLD [192.0.2.7]:1";
    logparse_line(l, strlen(l), NULL, &ev);
    assert_int_equal(logparse_epoch(&ev.time, 0), 1795286718);
    l = "2026-11-21T13:15:18-0530 mx postfix/postscreen[1]: PASS OLD [192.0.2.7]:1";
    logparse_line(l, strlen(l), NULL, &ev);
    assert_int_equal(logparse_epoch(&ev.time, 0), 1795286718);
    /* A syslog stamp gets the clock's year ... */
    l = "Jan  1 23:00:00 mx postfix/postscreen[1]: PASS OLD [192.0.2.7]:1";
    logparse_line(l, strlen(l), NULL, &ev);
    assert_int_equal(logparse_epoch(&ev.time, jan2), jan2 - 3600);
    /* ... or the year before, when it would lie more than a day ahead. */
    l = "Dec 31 23:00:00 mx postfix/postscreen[1]: PASS OLD [192.0.2.7]:1";
    logparse_line(l, strlen(l), NULL, &ev);
    assert_int_equal(logparse_epoch(&ev.time, jan2), jan2 - 86400 - 3600);
    l = "Feb 29 12:00:00 mx postfix/postscreen[1]: PASS OLD [192.0.2.7]:1";
    logparse_line(l, strlen(l), NULL, &ev);
    /* 2024-02-29T12:00:00 with the clock at 2024-03-01 */
    assert_int_equal(logparse_epoch(&ev.time, 1709251200), 1709208000);
    l = "Nov 31 25:00:00 mx postfix/postscreen[1]: PASS OLD [192.0.2.7]:1";
    logparse_line(l, strlen(l), NULL, &ev);
    assert_false(ev.time.valid);
}

/* Names are distinct (they are JSON keys). */
static void test_names(void **state)
{
    (void)state;
    for (int i = 0; i < LP__COUNT; i++)
        for (int j = i + 1; j < LP__COUNT; j++)
            assert_string_not_equal(logparse_kind_name(i), logparse_kind_name(j));
    for (int i = 0; i < LP_WARN__COUNT; i++)
        for (int j = i + 1; j < LP_WARN__COUNT; j++)
            assert_string_not_equal(logparse_warning_name(i), logparse_warning_name(j));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_table),  cmocka_unit_test(test_line_details),
        cmocka_unit_test(test_prefixes),    cmocka_unit_test(test_tags),
        cmocka_unit_test(test_warnings),    cmocka_unit_test(test_every_truncation),
        cmocka_unit_test(test_binary_text), cmocka_unit_test(test_epoch),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
