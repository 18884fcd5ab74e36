/*
 * stats - the daemon's counters and their renderings; see stats.h.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <unistd.h>

#include "session/settings.h"
#include "stats/prom.h"
#include "stats/stats.h"
#include "util/mem.h"

#define STATS_REJECTS     50  /* recent rejected clients kept */
#define STATS_SAMPLES     360 /* history samples kept (an hour) */
#define STATS_SAMPLE_SECS 10  /* seconds between samples */

struct stats stats;

/* Seconds in the greet wait: postscreen_greet_wait is 6s by default. */
static const double greet_bounds[] = {0.1, 0.25, 0.5, 1, 2, 3, 4, 5, 6, 8, 10, 15, 30};
/* DNS round trips. */
static const double rtt_bounds[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                    0.1,   0.25,   0.5,   1,    2.5,   5};

static const char *const verdict_names[SV__COUNT] = {
    "allowlisted", "denylisted", "allowlist_veto", "pass_old", "pass_new", "hangup",
};
static const char *const test_names[TEST__COUNT] = {
    "pregreet", "dnsbl", "pipelining", "non_smtp", "bare_newline",
};
static const char *const action_names[3] = {"ignore", "enforce", "drop"};
static const char *const limit_names[SL__COUNT] = {
    "client_connections", "post_queue",     "pre_queue",
    "command_count",      "command_length", "command_time",
};
static const char *const phase_names[SP__COUNT] = {
    "start", "upstream", "early", "engine", "handoff", "relay",
};
static const char *const cache_names[SC__COUNT] = {"hit", "stale", "miss"};
static const char *const dir_names[SD__COUNT] = {"to_backend", "to_client"};
static const char *const mode_names[3] = {"proxy", "xclient", "pass"};

/* A rejected client, for the dashboard. */
struct reject {
    time_t when;
    char addr[46];
    char port[8];
    char why[32];
    char action[8];
};

static struct reject rejects[STATS_REJECTS];
static size_t nrejects, next_reject; /* filled slots; the slot written next */

/* One history sample: cumulative counts at a time. */
enum { H_CONNECT, H_PASS_NEW, H_PASS_OLD, H_ALLOWLISTED, H_REJECTED, H_HANGUP, H__COUNT };
static const char *const history_names[H__COUNT] = {
    "connect", "pass_new", "pass_old", "allowlisted", "rejected", "hangup",
};

struct sample {
    time_t when;
    uint64_t v[H__COUNT];
};

static struct sample history[STATS_SAMPLES];
static size_t nsamples, next_sample;
static struct event *sample_timer;

void stats_hist_init(struct stats_hist *h, const double *bounds, size_t n)
{
    memset(h, 0, sizeof(*h));
    h->bounds = bounds;
    h->nbounds = n > STATS_HIST_MAX ? STATS_HIST_MAX : n;
}

void stats_hist_add(struct stats_hist *h, double v)
{
    size_t i = 0;

    while (i < h->nbounds && v > h->bounds[i])
        i++;
    h->bucket[i]++;
    h->count++;
    h->sum += v;
}

/* Reset every counter; the process start is now. */
void stats_init(void)
{
    struct stats_list *l = stats.lists;

    while (l) {
        struct stats_list *next = l->next;
        free(l->name);
        free(l);
        l = next;
    }
    memset(&stats, 0, sizeof(stats));
    stats.started = time(NULL);
    stats_hist_init(&stats.greet_wait, greet_bounds,
                    sizeof(greet_bounds) / sizeof(greet_bounds[0]));
    nrejects = next_reject = 0;
    nsamples = next_sample = 0;
}

struct stats_list *stats_list(const char *name)
{
    struct stats_list **pp = &stats.lists;

    for (; *pp; pp = &(*pp)->next)
        if (strcmp((*pp)->name, name) == 0)
            return *pp;
    struct stats_list *l = xcalloc(1, sizeof(*l));
    l->name = xstrdup(name);
    stats_hist_init(&l->rtt, rtt_bounds, sizeof(rtt_bounds) / sizeof(rtt_bounds[0]));
    *pp = l; /* in configuration order */
    return l;
}

void stats_reject(const char *addr, const char *port, const char *why, const char *action)
{
    struct reject *r = &rejects[next_reject];

    r->when = time(NULL);
    snprintf(r->addr, sizeof(r->addr), "%s", addr);
    snprintf(r->port, sizeof(r->port), "%s", port);
    snprintf(r->why, sizeof(r->why), "%s", why);
    snprintf(r->action, sizeof(r->action), "%s", action);
    next_reject = (next_reject + 1) % STATS_REJECTS;
    if (nrejects < STATS_REJECTS)
        nrejects++;
}

/* Clients turned away: failed tests with drop or enforce, denylisted, limits. */
static uint64_t rejected_total(void)
{
    uint64_t n = stats.verdicts[SV_DENYLISTED];

    for (int t = 0; t < TEST__COUNT; t++)
        n += stats.failures[t][ACTION_ENFORCE] + stats.failures[t][ACTION_DROP];
    for (int l = 0; l < SL__COUNT; l++)
        n += stats.limits[l];
    return n;
}

static void take_sample(struct sample *s)
{
    s->when = time(NULL);
    s->v[H_CONNECT] = stats.connections;
    s->v[H_PASS_NEW] = stats.verdicts[SV_PASS_NEW];
    s->v[H_PASS_OLD] = stats.verdicts[SV_PASS_OLD];
    s->v[H_ALLOWLISTED] = stats.verdicts[SV_ALLOWLISTED];
    s->v[H_REJECTED] = rejected_total();
    s->v[H_HANGUP] = stats.verdicts[SV_HANGUP];
}

static void on_sample(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    take_sample(&history[next_sample]);
    next_sample = (next_sample + 1) % STATS_SAMPLES;
    if (nsamples < STATS_SAMPLES)
        nsamples++;
}

/* Sample the history every STATS_SAMPLE_SECS seconds, starting now. */
void stats_start(struct event_base *base)
{
    struct timeval tv = {STATS_SAMPLE_SECS, 0};

    stats_stop();
    on_sample(-1, 0, NULL);
    sample_timer = event_new(base, -1, EV_PERSIST, on_sample, NULL);
    event_add(sample_timer, &tv);
}

void stats_stop(void)
{
    if (sample_timer)
        event_free(sample_timer);
    sample_timer = NULL;
}

/* Resident memory in bytes (/proc/self/statm), or -1. */
static long long rss_bytes(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long long size, resident = -1;

    if (f == NULL)
        return -1;
    if (fscanf(f, "%lld %lld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

/* Open descriptors (/proc/self/fd), or -1. */
static long long open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    long long n = 0;
    struct dirent *e;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

static double cpu_seconds(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) < 0)
        return 0;
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* A family of one unlabelled sample. */
static void single(struct sbuf *out, const char *name, enum prom_type type, const char *help,
                   uint64_t v)
{
    prom_family(out, name, type, help);
    prom_u64(out, name, NULL, v);
}

/* A counter family with one label, LABEL, over N values named NAMES. */
static void labelled(struct sbuf *out, const char *name, const char *help, const char *label,
                     const char *const *names, const uint64_t *v, size_t n)
{
    prom_family(out, name, PROM_COUNTER, help);
    for (size_t i = 0; i < n; i++) {
        const char *lb[] = {label, names[i], NULL};
        prom_u64(out, name, lb, v[i]);
    }
}

void stats_metrics(struct sbuf *out, const struct stats_view *v)
{
    const char *lb[7] = {NULL};

    prom_family(out, "mxscreen_build_info", PROM_GAUGE, "mxscreen's version and hand-off mode.");
    lb[0] = "version", lb[1] = v->version, lb[2] = "mode", lb[3] = v->mode, lb[4] = NULL;
    prom_u64(out, "mxscreen_build_info", lb, 1);
    lb[2] = NULL;

    single(out, "mxscreen_connections_total", PROM_COUNTER,
           "Client connections accepted and logged as CONNECT.", stats.connections);

    labelled(out, "mxscreen_verdicts_total",
             "How screening ended, one per log line: ALLOWLISTED, DENYLISTED, ALLOWLIST VETO, "
             "PASS OLD, PASS NEW, HANGUP.",
             "verdict", verdict_names, stats.verdicts, SV__COUNT);

    prom_family(out, "mxscreen_test_failures_total", PROM_COUNTER,
                "Tests failed, by test and by the action configured for it.");
    for (int t = 0; t < TEST__COUNT; t++)
        for (int a = 0; a < 3; a++) {
            lb[0] = "test", lb[1] = test_names[t], lb[2] = "action", lb[3] = action_names[a];
            prom_u64(out, "mxscreen_test_failures_total", lb, stats.failures[t][a]);
        }
    lb[2] = NULL;

    labelled(out, "mxscreen_limits_total", "Clients turned away or ended by a limit.", "limit",
             limit_names, stats.limits, SL__COUNT);

    single(out, "mxscreen_rcpt_rejects_total", PROM_COUNTER,
           "RCPT commands rejected by the SMTP engine (NOQUEUE: reject: RCPT).",
           stats.rcpt_rejects);

    single(out, "mxscreen_rejected_clients_total", PROM_COUNTER,
           "Rejections: failed tests with action drop or enforce, DENYLISTED, limits.",
           rejected_total());

    prom_family(out, "mxscreen_sessions", PROM_GAUGE, "Sessions now in each phase.");
    for (int i = 0; i < SP__COUNT; i++) {
        lb[0] = "phase", lb[1] = phase_names[i];
        prom_u64(out, "mxscreen_sessions", lb,
                 stats.sessions[i] < 0 ? 0 : (uint64_t)stats.sessions[i]);
    }

    prom_family(out, "mxscreen_reloads_total", PROM_COUNTER,
                "Configuration reloads (SIGHUP), by result.");
    lb[0] = "result", lb[1] = "ok";
    prom_u64(out, "mxscreen_reloads_total", lb, stats.reloads);
    lb[1] = "failed";
    prom_u64(out, "mxscreen_reloads_total", lb, stats.reloads_failed);

    single(out, "mxscreen_stress_mode", PROM_GAUGE,
           "1 while in STRESS mode (postscreen_pre_queue_limit nearly reached).", stats.stress);
    single(out, "mxscreen_stress_entered_total", PROM_COUNTER, "Times STRESS mode began.",
           stats.stress_entered);

    prom_family(out, "mxscreen_greet_wait_seconds", PROM_HISTOGRAM,
                "Time clients spent in the greet wait (until they talked, hung up, or it ended).");
    prom_hist(out, "mxscreen_greet_wait_seconds", NULL, &stats.greet_wait);

    labelled(out, "mxscreen_handoffs_total", "Clients given to the backend, by hand-off mode.",
             "mode", mode_names, stats.handoffs, 3);
    labelled(out, "mxscreen_handoff_failures_total",
             "Clients the backend did not take (down, slow, refused), by hand-off mode.", "mode",
             mode_names, stats.handoff_failures, 3);
    single(out, "mxscreen_replays_total", PROM_COUNTER,
           "Clients replayed to the backend after the deep tests (no reconnect).", stats.replays);
    single(out, "mxscreen_replay_failures_total", PROM_COUNTER,
           "Replays the backend did not accept (the client was told to try again).",
           stats.replay_failures);
    labelled(out, "mxscreen_relay_bytes_total", "Bytes relayed between clients and the backend.",
             "direction", dir_names, stats.relay_bytes, SD__COUNT);

    labelled(out, "mxscreen_cache_lookups_total",
             "Temporary allowlist lookups: hit (PASS OLD), stale (tests due), miss.", "result",
             cache_names, stats.cache_lookups, SC__COUNT);
    single(out, "mxscreen_cache_writes_total", PROM_COUNTER, "Allowlist records written.",
           stats.cache_writes);
    single(out, "mxscreen_cache_write_errors_total", PROM_COUNTER, "Allowlist writes that failed.",
           stats.cache_write_errors);
    single(out, "mxscreen_cache_cleanups_total", PROM_COUNTER, "Allowlist cleanup runs.",
           stats.cache_cleanups);
    single(out, "mxscreen_cache_cleanup_dropped_total", PROM_COUNTER,
           "Expired allowlist records dropped by cleanup.", stats.cache_cleanup_dropped);
    if (v->cache_entries >= 0) {
        single(out, "mxscreen_cache_entries", PROM_GAUGE, "Records in the local allowlist store.",
               (uint64_t)v->cache_entries);
    }
    if (v->cache_up >= 0) {
        single(out, "mxscreen_cache_up", PROM_GAUGE,
               "1 while the allowlist store answers (0: Redis unavailable).",
               (uint64_t)v->cache_up);
    }

    single(out, "mxscreen_dnsbl_results_reused_total", PROM_COUNTER,
           "DNSBL lookups answered from a recent result for the same address.", stats.dnsbl_reused);
    static const struct {
        const char *name, *help;
        size_t off;
    } lf[] = {
        {"mxscreen_dnsbl_queries_total", "DNS queries sent to a list.",
         offsetof(struct stats_list, queries)},
        {"mxscreen_dnsbl_listed_total", "Answers listing the client.",
         offsetof(struct stats_list, listed)},
        {"mxscreen_dnsbl_not_listed_total", "Answers not listing the client.",
         offsetof(struct stats_list, not_listed)},
        {"mxscreen_dnsbl_errors_total", "DNS failures (counted as not listed).",
         offsetof(struct stats_list, errors)},
        {"mxscreen_dnsbl_error_codes_total",
         "Answers that are the list's error code, not a listing (counted as not listed).",
         offsetof(struct stats_list, error_codes)},
        {"mxscreen_dnsbl_timeouts_total", "Queries not answered within postscreen_dnsbl_timeout.",
         offsetof(struct stats_list, timeouts)},
    };
    for (size_t i = 0; i < sizeof(lf) / sizeof(lf[0]); i++) {
        if (stats.lists == NULL)
            break;
        prom_family(out, lf[i].name, PROM_COUNTER, lf[i].help);
        for (const struct stats_list *l = stats.lists; l; l = l->next) {
            lb[0] = "list", lb[1] = l->name;
            prom_u64(out, lf[i].name, lb, *(const uint64_t *)((const char *)l + lf[i].off));
        }
    }
    if (stats.lists) {
        prom_family(out, "mxscreen_dnsbl_query_duration_seconds", PROM_HISTOGRAM,
                    "Time a list took to answer.");
        for (const struct stats_list *l = stats.lists; l; l = l->next) {
            lb[0] = "list", lb[1] = l->name;
            prom_hist(out, "mxscreen_dnsbl_query_duration_seconds", lb, &l->rtt);
        }
    }

    prom_family(out, "process_cpu_seconds_total", PROM_COUNTER,
                "Total user and system CPU time spent in seconds.");
    prom_f64(out, "process_cpu_seconds_total", NULL, cpu_seconds());
    long long rss = rss_bytes(), fds = open_fds();
    if (rss >= 0) {
        single(out, "process_resident_memory_bytes", PROM_GAUGE, "Resident memory size in bytes.",
               (uint64_t)rss);
    }
    if (fds >= 0) {
        single(out, "process_open_fds", PROM_GAUGE, "Number of open file descriptors.",
               (uint64_t)fds);
    }
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        single(out, "process_max_fds", PROM_GAUGE, "Maximum number of open file descriptors.",
               (uint64_t)rl.rlim_cur);
    }
    single(out, "process_start_time_seconds", PROM_GAUGE,
           "Start time of the process since unix epoch in seconds.", (uint64_t)stats.started);
}

/* S as a JSON string. */
static void json_str(struct sbuf *out, const char *s)
{
    sbuf_addc(out, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            sbuf_printf(out, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            sbuf_printf(out, "\\u%04x", *p);
        else
            sbuf_addc(out, (char)*p);
    }
    sbuf_addc(out, '"');
}

static void json_hist(struct sbuf *out, const struct stats_hist *h)
{
    sbuf_adds(out, "{\"le\":[");
    for (size_t i = 0; i < h->nbounds; i++)
        sbuf_printf(out, "%s%g", i ? "," : "", h->bounds[i]);
    sbuf_adds(out, "],\"counts\":[");
    for (size_t i = 0; i <= h->nbounds; i++)
        sbuf_printf(out, "%s%llu", i ? "," : "", (unsigned long long)h->bucket[i]);
    sbuf_printf(out, "],\"count\":%llu,\"sum\":%.6f}", (unsigned long long)h->count, h->sum);
}

/* "name":[names...] -> counts, as an object. */
static void json_counts(struct sbuf *out, const char *const *names, const uint64_t *v, size_t n)
{
    sbuf_addc(out, '{');
    for (size_t i = 0; i < n; i++)
        sbuf_printf(out, "%s\"%s\":%llu", i ? "," : "", names[i], (unsigned long long)v[i]);
    sbuf_addc(out, '}');
}

void stats_json(struct sbuf *out, const struct stats_view *v)
{
    time_t now = time(NULL);

    sbuf_adds(out, "{\"version\":");
    json_str(out, v->version);
    sbuf_adds(out, ",\"mode\":");
    json_str(out, v->mode);
    sbuf_printf(out, ",\"started\":%lld,\"now\":%lld,\"stress\":%s,\"stress_entered\":%llu",
                (long long)stats.started, (long long)now, stats.stress ? "true" : "false",
                (unsigned long long)stats.stress_entered);
    sbuf_printf(out, ",\"reloads\":%llu,\"reloads_failed\":%llu", (unsigned long long)stats.reloads,
                (unsigned long long)stats.reloads_failed);
    sbuf_printf(out, ",\"connections\":%llu,\"rejected\":%llu,\"rcpt_rejects\":%llu",
                (unsigned long long)stats.connections, (unsigned long long)rejected_total(),
                (unsigned long long)stats.rcpt_rejects);
    sbuf_adds(out, ",\"verdicts\":");
    json_counts(out, verdict_names, stats.verdicts, SV__COUNT);
    sbuf_adds(out, ",\"failures\":{");
    for (int t = 0; t < TEST__COUNT; t++) {
        sbuf_printf(out, "%s\"%s\":", t ? "," : "", test_names[t]);
        json_counts(out, action_names, stats.failures[t], 3);
    }
    sbuf_adds(out, "},\"limits\":");
    json_counts(out, limit_names, stats.limits, SL__COUNT);
    sbuf_adds(out, ",\"sessions\":{");
    for (int i = 0; i < SP__COUNT; i++)
        sbuf_printf(out, "%s\"%s\":%lld", i ? "," : "", phase_names[i],
                    (long long)(stats.sessions[i] < 0 ? 0 : stats.sessions[i]));
    sbuf_printf(out, "},\"queues\":{\"check\":%zu,\"post\":%zu}", v->queue_check, v->queue_post);
    sbuf_adds(out, ",\"greet_wait\":");
    json_hist(out, &stats.greet_wait);

    sbuf_adds(out, ",\"handoff\":{\"handoffs\":");
    json_counts(out, mode_names, stats.handoffs, 3);
    sbuf_adds(out, ",\"failures\":");
    json_counts(out, mode_names, stats.handoff_failures, 3);
    sbuf_printf(out, ",\"replays\":%llu,\"replay_failures\":%llu,\"relay_bytes\":",
                (unsigned long long)stats.replays, (unsigned long long)stats.replay_failures);
    json_counts(out, dir_names, stats.relay_bytes, SD__COUNT);
    sbuf_addc(out, '}');

    sbuf_adds(out, ",\"cache\":{\"map\":");
    if (v->cache_name)
        json_str(out, v->cache_name);
    else
        sbuf_adds(out, "null");
    sbuf_adds(out, ",\"lookups\":");
    json_counts(out, cache_names, stats.cache_lookups, SC__COUNT);
    sbuf_printf(
        out,
        ",\"writes\":%llu,\"write_errors\":%llu,\"cleanups\":%llu,"
        "\"cleanup_dropped\":%llu",
        (unsigned long long)stats.cache_writes, (unsigned long long)stats.cache_write_errors,
        (unsigned long long)stats.cache_cleanups, (unsigned long long)stats.cache_cleanup_dropped);
    if (v->cache_entries >= 0)
        sbuf_printf(out, ",\"entries\":%lld", v->cache_entries);
    else
        sbuf_adds(out, ",\"entries\":null");
    if (v->cache_up >= 0)
        sbuf_printf(out, ",\"up\":%s", v->cache_up ? "true" : "false");
    else
        sbuf_adds(out, ",\"up\":null");
    sbuf_addc(out, '}');

    sbuf_printf(out, ",\"dnsbl\":{\"reused\":%llu,\"lists\":[",
                (unsigned long long)stats.dnsbl_reused);
    for (const struct stats_list *l = stats.lists; l; l = l->next) {
        sbuf_adds(out, l == stats.lists ? "{\"name\":" : ",{\"name\":");
        json_str(out, l->name);
        sbuf_printf(out,
                    ",\"queries\":%llu,\"listed\":%llu,\"not_listed\":%llu,\"errors\":%llu,"
                    "\"error_codes\":%llu,\"timeouts\":%llu,\"last_error\":%lld,\"rtt\":",
                    (unsigned long long)l->queries, (unsigned long long)l->listed,
                    (unsigned long long)l->not_listed, (unsigned long long)l->errors,
                    (unsigned long long)l->error_codes, (unsigned long long)l->timeouts,
                    (long long)l->last_error);
        json_hist(out, &l->rtt);
        sbuf_addc(out, '}');
    }
    sbuf_adds(out, "]}");

    sbuf_adds(out, ",\"recent_rejects\":[");
    for (size_t i = 0; i < nrejects; i++) {
        /* Newest first. */
        const struct reject *r = &rejects[(next_reject + STATS_REJECTS - 1 - i) % STATS_REJECTS];
        sbuf_printf(out, "%s{\"time\":%lld,\"client\":", i ? "," : "", (long long)r->when);
        json_str(out, r->addr);
        sbuf_adds(out, ",\"port\":");
        json_str(out, r->port);
        sbuf_adds(out, ",\"reason\":");
        json_str(out, r->why);
        sbuf_adds(out, ",\"action\":");
        json_str(out, r->action);
        sbuf_addc(out, '}');
    }
    sbuf_adds(out, "]");

    /* The history, oldest first, and a sample of now. */
    sbuf_printf(out, ",\"history\":{\"interval\":%d,\"series\":[", STATS_SAMPLE_SECS);
    for (int i = 0; i < H__COUNT; i++)
        sbuf_printf(out, "%s\"%s\"", i ? "," : "", history_names[i]);
    sbuf_adds(out, "],\"samples\":[");
    struct sample cur;
    take_sample(&cur);
    for (size_t i = 0; i <= nsamples; i++) {
        const struct sample *s =
            i < nsamples ? &history[(next_sample + STATS_SAMPLES - nsamples + i) % STATS_SAMPLES]
                         : &cur;
        sbuf_printf(out, "%s[%lld", i ? "," : "", (long long)s->when);
        for (int k = 0; k < H__COUNT; k++)
            sbuf_printf(out, ",%llu", (unsigned long long)s->v[k]);
        sbuf_addc(out, ']');
    }
    sbuf_adds(out, "]}}\n");
}
