/*
 * logparse - one postscreen (or mxscreen, or dnsblog) log line in, one
 * parsed event out
 *
 * logparse_line() reads a single log line, given as (pointer, length) and
 * not necessarily NUL-terminated, and fills a struct logparse_event.  It
 * understands these line prefixes:
 *
 *     Nov 21 18:45:18 host postfix/postscreen[123]: TEXT      syslog, mxscreen's
 *     Nov  1 18:45:18 host ...                                stderr and file log,
 *                                                             journalctl -o short
 *     2026-11-21T18:45:18.123456+00:00 host tag[123]: TEXT   RFC 3339 (rsyslog)
 *     2026-11-21T18:45:18+0000 host tag[123]: TEXT           journalctl -o short-iso
 *     tag[123]: TEXT                                         no time stamp
 *
 * (the host may be missing; the "[pid]" too).  A line is postscreen's when
 * its tag is "postscreen", "mxscreen", ends in "/postscreen" or
 * "/mxscreen" (any syslog_name), or equals the caller's extra tag; it is
 * dnsblog's when its tag is "dnsblog" or ends in "/dnsblog".  Any other
 * line is LP_OTHER.  TEXT is matched against postscreen's vocabulary
 * (spec section 4.1; warnings are sorted into the kinds of section 4.2)
 * from its start, so that peer text, which always follows the client's
 * [ADDR]:PORT, cannot pass itself off as another line.  A postscreen or
 * dnsblog line whose TEXT is not in the vocabulary (or is cut short, or
 * names an address that is neither IPv4 nor IPv6) is LP_UNKNOWN.
 *
 * Addresses are checked and put in canonical form (inet_pton/inet_ntop;
 * an IPv4-mapped IPv6 address becomes IPv4, as postscreen logs it).
 *
 * The event's spans point into the caller's line: they are valid while the
 * line is.  Nothing is allocated, nothing is read or written, and no
 * global state is kept: the functions are pure and reentrant.
 *
 * logparse_epoch() turns a parsed time stamp into seconds since the epoch
 * (UTC when the stamp has an offset; the stamp's own local time otherwise,
 * which is good enough to order and subtract).  A syslog stamp has no year:
 * it gets the year of NOW (seconds since the epoch, the caller's clock),
 * or the year before when it would lie more than a day after NOW.
 */
#ifndef MXS_LOGPARSE_H
#define MXS_LOGPARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Where a line comes from. */
enum logparse_source {
    LP_SRC_NONE,       /* not postscreen's, not dnsblog's */
    LP_SRC_POSTSCREEN, /* postscreen or mxscreen */
    LP_SRC_DNSBLOG,    /* Postfix's dnsblog(8) */
};

/* What a line says.  The comments give the text after the prefix. */
enum logparse_kind {
    LP_OTHER,                /* not a postscreen or dnsblog line */
    LP_UNKNOWN,              /* postscreen's or dnsblog's, but not in the vocabulary below */
    LP_CONNECT,              /* CONNECT from [A]:P to [S]:SP */
    LP_PASS_NEW,             /* PASS NEW [A]:P */
    LP_PASS_OLD,             /* PASS OLD [A]:P */
    LP_ALLOWLISTED,          /* ALLOWLISTED [A]:P (legacy: WHITELISTED) */
    LP_DENYLISTED,           /* DENYLISTED [A]:P (legacy: BLACKLISTED) */
    LP_ALLOWLIST_VETO,       /* ALLOWLIST VETO [A]:P (legacy: WHITELIST VETO) */
    LP_PREGREET,             /* PREGREET N after T from [A]:P: TEXT */
    LP_DNSBL_RANK,           /* DNSBL rank N for [A]:P */
    LP_HANGUP,               /* HANGUP after T from [A]:P in tests before|after SMTP handshake */
    LP_PIPELINING,           /* COMMAND PIPELINING from [A]:P after CMD: TEXT */
    LP_NON_SMTP,             /* NON-SMTP COMMAND from [A]:P after PREV: CMD REST */
    LP_BARE_NEWLINE,         /* BARE NEWLINE from [A]:P after LINE */
    LP_TIME_LIMIT,           /* COMMAND TIME LIMIT from [A]:P after PREV */
    LP_COUNT_LIMIT,          /* COMMAND COUNT LIMIT from [A]:P after PREV */
    LP_LENGTH_LIMIT,         /* COMMAND LENGTH LIMIT from [A]:P after PREV */
    LP_NOQUEUE_RCPT,         /* NOQUEUE: reject: RCPT from [A]:P: REPLY; from=<>, to=<>, ... */
    LP_DATA_NO_RCPT,         /* DATA without valid RCPT from [A]:P */
    LP_BDAT_NO_RCPT,         /* BDAT without valid RCPT from [A]:P */
    LP_DISCONNECT,           /* DISCONNECT [A]:P */
    LP_TOO_MANY_CONNECTIONS, /* NOQUEUE: reject: CONNECT from [A]:P: too many connections */
    LP_SERVER_PORTS_BUSY,    /* NOQUEUE: reject: CONNECT from [A]:P: all server ports busy */
    LP_SCREENING_PORTS_BUSY, /* reject: connect from [A]:P: all screening ports busy */
    LP_REPLAY,               /* mxscreen: REPLAY [A]:P to BACKEND: TEXT */
    LP_STRESS_ENTER,         /* entering STRESS mode with N connections */
    LP_STRESS_LEAVE,         /* leaving STRESS mode with N connections */
    LP_CACHE_CLEANUP,        /* cache NAME full|partial cleanup: retained=R dropped=D entries */
    LP_TABLE_CHANGED,        /* table NAME has changed - finishing in the background */
    LP_REPLACE_COMMAND,      /* [A]:P: replacing command "OLD" with "NEW" */
    LP_DISCARD_EHLO,         /* [A]P: discarding EHLO keywords: LIST */
    LP_RESPECTFUL_NOTICE,    /* using backwards-compatible default setting ... [A]:P */
    LP_WARNING,              /* warning: TEXT (see warn) */
    LP_FATAL,                /* fatal: TEXT, panic: TEXT or error: TEXT */
    LP_DNSBLOG_LISTED,       /* dnsblog: addr A listed by domain D as X[ Y...] */
    LP__COUNT
};

/* The kinds of warnings of spec section 4.2 (and mxscreen's own). */
enum logparse_warning {
    LP_WARN_NONE,
    LP_WARN_DNSBL_TIMEOUT,      /* dnsblog reply timeout Ns for DOMAIN */
    LP_WARN_DNSBL_REQUEST,      /* psc_dnsbl_request: ... private/dnsblog service */
    LP_WARN_DNSBL_LOOKUP,       /* dnsblog_query: lookup error ..., mxscreen's DNSBL lookup error */
    LP_WARN_DNSBL_ERROR_ANSWER, /* mxscreen: DNSBL D answered X for Q: an error code ... */
    LP_WARN_ADDRESS_CONVERSION, /* address conversion error for X -- ignoring this reply */
    LP_WARN_HANDOFF,            /* cannot connect/pass to service, timeout sending connection */
    LP_WARN_WRITE,              /* write [A]:P: ERR */
    LP_WARN_ENDPOINT,           /* getpeername/getsockname/cannot convert ... -- dropping */
    LP_WARN_HAPROXY,            /* haproxy read: ... */
    LP_WARN_TLS,                /* ... private/tlsproxy service ..., TLS handshake failed */
    LP_WARN_TABLE_DELAY,        /* FUNC: TABLE ACTION average delay is N ms */
    LP_WARN_FOOTER_MACRO,       /* unknown macro name "X" in expansion request */
    LP_WARN_CACHE,              /* cache cleanup scan error, mxscreen's cache warnings */
    LP_WARN_OTHER,              /* any other warning */
    LP_WARN__COUNT
};

/* A piece of the input line. */
struct logparse_span {
    const char *p; /* NULL when absent */
    size_t len;
};

/* A checked client or server address. */
struct logparse_addr {
    int family;              /* AF_INET or AF_INET6; 0 when absent */
    unsigned char bytes[16]; /* 4 or 16 used, network order */
    char text[46];           /* canonical form, no brackets (INET6_ADDRSTRLEN) */
};

/* A time stamp as written; fields are valid when "valid" is set. */
struct logparse_time {
    bool valid;
    int year;                  /* 0 for a syslog stamp (no year) */
    int mon, mday;             /* 1..12, 1..31 */
    int hour, min, sec;        /* 0..23, 0..59, 0..60 */
    long usec;                 /* 0 unless given */
    bool has_offset;           /* a UTC offset or "Z" was given */
    int offset_min;            /* minutes east of UTC */
    struct logparse_span text; /* the stamp as it appears in the line */
};

struct logparse_event {
    enum logparse_source source;
    enum logparse_kind kind;
    struct logparse_time time;
    struct logparse_span host; /* the host field, when present */
    struct logparse_span tag;  /* "postfix/postscreen" */
    struct logparse_span text; /* everything after "tag[pid]: " */

    struct logparse_addr client; /* the client ([A]:P; dnsblog: the listed A) */
    unsigned port;               /* the client's port */
    struct logparse_addr server; /* LP_CONNECT: the local address */
    unsigned server_port;

    bool legacy;                 /* WHITELISTED, BLACKLISTED, WHITELIST VETO */
    bool after_handshake;        /* LP_HANGUP: in tests after SMTP handshake */
    long number;                 /* PREGREET bytes, DNSBL rank, STRESS connections, retained */
    long number2;                /* LP_CACHE_CLEANUP: dropped */
    unsigned reply_code;         /* LP_NOQUEUE_RCPT: 450, 550, ... */
    struct logparse_span secs;   /* PREGREET and HANGUP: "0.21" */
    struct logparse_span reply;  /* LP_NOQUEUE_RCPT: the reply, e.g. "550 5.7.1 Service ..." */
    struct logparse_span name;   /* NOQUEUE "blocked using NAME"; dnsblog's domain;
                                    cache and table names */
    struct logparse_span detail; /* peer text: PREGREET TEXT, "after" text, dnsblog's answer,
                                    the warning's text */
    struct logparse_span sender, recipient, proto, helo; /* LP_NOQUEUE_RCPT */
    enum logparse_warning warn;                          /* LP_WARNING */
};

/* Options for logparse_line(). */
struct logparse_opts {
    const char *extra_tag; /* one more tag taken as postscreen's, or NULL */
};

void logparse_line(const char *line, size_t len, const struct logparse_opts *opts,
                   struct logparse_event *ev);
int64_t logparse_epoch(const struct logparse_time *t, int64_t now);
const char *logparse_kind_name(enum logparse_kind kind);
const char *logparse_warning_name(enum logparse_warning warn);

#endif
