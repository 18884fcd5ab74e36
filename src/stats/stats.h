/*
 * stats - the daemon's counters, and their Prometheus and JSON renderings
 *
 * One process, one event loop, one set of counters: the global `stats` is
 * plain integers that the hot path increments directly (no atomics, no
 * locks, no allocation).  Every counter matches a log line or a decision
 * that the log also records, so that /metrics, /stats, mxscreen-stats and
 * the log tell the same story.
 *
 * Per-list DNSBL counters are records created once per list name by
 * stats_list() and never freed (a list named in the configuration keeps
 * its numbers for the life of the process).
 *
 * stats_reject() keeps the most recent rejected clients (STATS_REJECTS of
 * them) for the dashboard.  stats_start() samples the verdict counters
 * every STATS_SAMPLE_SECS seconds into a ring of STATS_SAMPLES samples,
 * so that a freshly opened dashboard shows the last hour at once.
 *
 * stats_metrics() and stats_json() append the whole state to a buffer; the
 * caller passes the things stats does not own (the server, the cache, the
 * DNSBL module) through struct stats_view.
 */
#ifndef MXS_STATS_H
#define MXS_STATS_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "session/verdict.h"
#include "util/sbuf.h"

/* How each connection's screening ended, one per postscreen log line. */
enum stats_verdict {
    SV_ALLOWLISTED,    /* ALLOWLISTED (access list permit) */
    SV_DENYLISTED,     /* DENYLISTED */
    SV_ALLOWLIST_VETO, /* ALLOWLIST VETO */
    SV_PASS_OLD,       /* PASS OLD */
    SV_PASS_NEW,       /* PASS NEW */
    SV_HANGUP,         /* HANGUP, before or after the SMTP handshake */
    SV__COUNT
};

/* Limits that turn a client away, one per log line. */
enum stats_limit {
    SL_CLIENT_CONNECTIONS, /* NOQUEUE: reject: CONNECT ...: too many connections */
    SL_POST_QUEUE,         /* ...: all server ports busy */
    SL_PRE_QUEUE,          /* reject: connect ...: all screening ports busy */
    SL_COMMAND_COUNT,      /* COMMAND COUNT LIMIT */
    SL_COMMAND_LENGTH,     /* COMMAND LENGTH LIMIT */
    SL_COMMAND_TIME,       /* COMMAND TIME LIMIT */
    SL__COUNT
};

/* The session phases (sessions now in each is a gauge). */
enum stats_phase {
    SP_START,    /* accepted: access list and allowlist lookup */
    SP_UPSTREAM, /* reading a load balancer's PROXY header */
    SP_EARLY,    /* teaser and greet wait */
    SP_ENGINE,   /* in the SMTP engine */
    SP_HANDOFF,  /* waiting for the backend */
    SP_RELAY,    /* relayed to the backend */
    SP__COUNT
};

enum stats_cache_result {
    SC_HIT,   /* a record with every enabled test unexpired: PASS OLD */
    SC_STALE, /* a record with some test due again */
    SC_MISS,  /* no record */
    SC__COUNT
};

enum stats_dir {
    SD_TO_BACKEND, /* client bytes relayed to the backend */
    SD_TO_CLIENT,  /* backend bytes relayed to the client */
    SD__COUNT
};

#define STATS_HIST_MAX 16 /* buckets per histogram, at most, +Inf excluded */

/* A Prometheus-style histogram over fixed bounds (seconds). */
struct stats_hist {
    const double *bounds;                /* upper bounds, ascending */
    size_t nbounds;                      /* at most STATS_HIST_MAX */
    uint64_t bucket[STATS_HIST_MAX + 1]; /* per bucket (not cumulative); last: +Inf */
    uint64_t count;
    double sum;
};

/* One DNSBL/DNSWL domain's health. */
struct stats_list {
    char *name;            /* the domain as configured */
    uint64_t queries;      /* queries sent */
    uint64_t listed;       /* answers with a listing (A records, not error codes) */
    uint64_t not_listed;   /* NXDOMAIN or no data */
    uint64_t errors;       /* DNS failures (SERVFAIL, refused, no server...) */
    uint64_t error_codes;  /* answers that are a list's error code, not a listing */
    uint64_t timeouts;     /* no answer within postscreen_dnsbl_timeout */
    struct stats_hist rtt; /* time to answer */
    time_t last_error;     /* last DNS failure, error code or timeout (0: never) */
    struct stats_list *next;
};

struct stats {
    time_t started;                    /* when the process started */
    uint64_t connections;              /* CONNECT lines */
    uint64_t verdicts[SV__COUNT];      /* how screening ended */
    uint64_t failures[TEST__COUNT][3]; /* test failures by action (ACTION_*) */
    uint64_t limits[SL__COUNT];        /* limits hit */
    uint64_t rcpt_rejects;             /* NOQUEUE: reject: RCPT lines */
    uint64_t replays;                  /* REPLAY lines (replayed to the backend) */
    uint64_t replay_failures;          /* replays that failed */
    uint64_t handoffs[3];              /* clients given to the backend, by mode */
    uint64_t handoff_failures[3];      /* ...that the backend did not take */
    uint64_t relay_bytes[SD__COUNT];   /* bytes relayed */
    uint64_t stress_entered;           /* entering STRESS mode lines */
    bool stress;                       /* in STRESS mode now */
    int64_t sessions[SP__COUNT];       /* sessions now in each phase */
    uint64_t cache_lookups[SC__COUNT]; /* allowlist lookups by result */
    uint64_t cache_writes;             /* records written */
    uint64_t cache_write_errors;       /* writes that failed */
    uint64_t cache_cleanups;           /* cleanup runs completed */
    uint64_t cache_cleanup_dropped;    /* records dropped by them */
    uint64_t dnsbl_reused;             /* DNSBL results reused from a recent lookup */
    uint64_t reloads;                  /* configurations reloaded (SIGHUP) */
    uint64_t reloads_failed;           /* ...refused */
    struct stats_hist greet_wait;      /* time in the greet wait */
    struct stats_list *lists;          /* per DNSBL domain */
};

extern struct stats stats;

/* Things the renderings read that stats does not own. */
struct stats_view {
    const char *version;     /* mxscreen's version */
    const char *mode;        /* hand-off mode name */
    const char *cache_name;  /* the allowlist map as configured, or NULL */
    long long cache_entries; /* records in the local store, or -1: unknown */
    int cache_up;            /* 1: the store answers, 0: down (Redis), -1: no cache */
    size_t queue_check;      /* sessions screened or in hand-off */
    size_t queue_post;       /* sessions in hand-off */
};

void stats_init(void);
void stats_start(struct event_base *base);
void stats_stop(void);

/* Histogram helpers. */
void stats_hist_init(struct stats_hist *h, const double *bounds, size_t n);
void stats_hist_add(struct stats_hist *h, double v);

/* The per-list record for domain NAME (created on first use). */
struct stats_list *stats_list(const char *name);

/* Phase gauge: a session moves from FROM to TO (SP__COUNT: none). */
static inline void stats_phase(enum stats_phase from, enum stats_phase to)
{
    if (from != SP__COUNT)
        stats.sessions[from]--;
    if (to != SP__COUNT)
        stats.sessions[to]++;
}

/* Remember a rejected client for the dashboard; WHY is a log word. */
void stats_reject(const char *addr, const char *port, const char *why, const char *action);

/* Renderings, appended to OUT. */
void stats_metrics(struct sbuf *out, const struct stats_view *v);
void stats_json(struct sbuf *out, const struct stats_view *v);

#endif
