/*
 * dnsbl - DNSBL lookups with c-ares in the libevent loop; see dnsbl.h.
 *
 * c-ares tells us which sockets to watch (sock_state_cb); each gets one
 * persistent libevent event, and one timer follows ares_timeout().  A
 * lookup lives while a session holds it, while any of its queries is out
 * (c-ares owns each query's request until its callback), and, once
 * complete, until its result expires.
 */
#include <arpa/inet.h>
#include <arpa/nameser.h>
#include <ares.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>
#include <sys/random.h>
#include <sys/time.h>
#include <time.h>

#include "dnsbl/dnsbl.h"
#include "dnsbl/dnsbl_int.h"
#include "log/log.h"
#include "stats/stats.h"
#include "util/list.h"
#include "util/mem.h"

#define DNSBL_SLOTS        4096   /* hash chains of lookups, by address */
#define DNSBL_MAX_KEPT     100000 /* finished results kept for reuse, at most */
#define DNSBL_MAX_INFLIGHT 10000  /* lookups with queries out, at most */
#define DNSBL_WARN_EVERY   60

struct waiter {
    dnsbl_fn fn;
    void *ctx;
    struct waiter *next;
};

struct request {
    struct dnsbl_lookup *l; /* the lookup (alive while any request is out) */
    size_t domain;          /* index into the sites' domains */
    bool answered;
    char qname[300];      /* for messages */
    struct request *next; /* the lookup's requests */
};

struct dnsbl_lookup {
    struct dnsbl *d;
    const struct dnsbl_sites *sites; /* the settings' sites (outlive the lookup) */
    char addr[INET6_ADDRSTRLEN];     /* the client address */
    int refs;                        /* sessions holding it */
    size_t pending;                  /* queries out */
    bool done;                       /* every answer is in */
    time_t expires;                  /* when done: end of the result's validity */
    time_t timeout;                  /* postscreen_dnsbl_timeout */
    int min_ttl, max_ttl;            /* postscreen_dnsbl_min_ttl / max_ttl */
    struct dnsbl_score score;        /* the score so far */
    struct timespec sent;            /* when the queries went out (monotonic) */
    struct waiter *waiters;          /* sessions to call back when done */
    struct request *requests;        /* one per domain */
    struct event *timer;             /* reply timeout, then expiry */
    struct dnsbl_lookup *next;       /* its hash chain */
    bool inflight;                   /* counted in dnsbl.inflight */
};

struct fdev {
    int fd;
    struct event *ev;
    struct fdev *next;
};

/* Per-list health: error warnings once a minute, error answers counted. */
struct listinfo {
    char *name;
    time_t last_warning[2];    /* DNS failures, error-code answers */
    unsigned long errors;      /* DNS failures */
    unsigned long error_codes; /* answers in 127.255.255.0/24 or outside 127/8 */
    struct listinfo *next;
};

struct dnsbl {
    struct event_base *base;
    ares_channel ch;
    struct event *tmo;                       /* c-ares's own timeouts */
    struct fdev *fds;                        /* watched sockets */
    struct dnsbl_lookup *slots[DNSBL_SLOTS]; /* lookups, by address */
    size_t seed;                             /* random: chains an attacker can't aim at */
    size_t inflight;                         /* lookups with queries out */
    time_t last_busy_warning;
    size_t nlookups; /* lookups alive */
    struct listinfo *lists;
};

static void process_timeouts(struct dnsbl *d);

/* c-ares's socket or the timer is ready. */
static void on_ares(evutil_socket_t fd, short what, void *arg)
{
    struct dnsbl *d = arg;

    if (what & EV_TIMEOUT) {
        ares_process_fd(d->ch, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    } else {
        ares_process_fd(d->ch, (what & EV_READ) ? fd : ARES_SOCKET_BAD,
                        (what & EV_WRITE) ? fd : ARES_SOCKET_BAD);
    }
    process_timeouts(d);
}

/* Follow c-ares's next timeout. */
static void process_timeouts(struct dnsbl *d)
{
    struct timeval buf, *tv = ares_timeout(d->ch, NULL, &buf);

    if (tv)
        evtimer_add(d->tmo, tv);
    else
        evtimer_del(d->tmo);
}

/* c-ares opens, closes or changes what it wants from a socket. */
static void on_sock_state(void *data, ares_socket_t fd, int readable, int writable)
{
    struct dnsbl *d = data;
    struct fdev **pp, *f;

    for (pp = &d->fds; (f = *pp) != NULL; pp = &f->next)
        if (f->fd == fd)
            break;
    if (!readable && !writable) {
        if (f) {
            event_free(f->ev);
            *pp = f->next;
            free(f);
        }
        return;
    }
    if (f == NULL) {
        f = xcalloc(1, sizeof(*f));
        f->fd = fd;
        f->next = d->fds;
        d->fds = f;
    } else {
        event_free(f->ev);
    }
    short what = EV_PERSIST | (readable ? EV_READ : 0) | (writable ? EV_WRITE : 0);
    f->ev = event_new(d->base, fd, what, on_ares, d);
    event_add(f->ev, NULL);
}

/* The resolver; see dnsbl.h. */
struct dnsbl *dnsbl_new(struct event_base *base, const char *servers, char *err, size_t errlen)
{
    struct dnsbl *d = xcalloc(1, sizeof(*d));
    struct ares_options o;
    int rc;

    if ((rc = ares_library_init(ARES_LIB_INIT_ALL)) != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
        free(d);
        return NULL;
    }
    memset(&o, 0, sizeof(o));
    o.sock_state_cb = on_sock_state;
    o.sock_state_cb_data = d;
    o.timeout = 2000;
    o.tries = 2;
    rc =
        ares_init_options(&d->ch, &o, ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (rc != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares: %s", ares_strerror(rc));
        free(d);
        return NULL;
    }
    if (*servers) {
        /* c-ares wants a comma-separated list. */
        char csv[1024] = "";
        const char *cur = servers, *el;
        size_t len;
        while ((el = list_next(&cur, &len)) != NULL) {
            size_t used = strlen(csv);
            snprintf(csv + used, sizeof(csv) - used, "%s%.*s", used ? "," : "", (int)len, el);
        }
        if ((rc = ares_set_servers_ports_csv(d->ch, csv)) != ARES_SUCCESS) {
            snprintf(err, errlen, "bad DNS server list \"%s\": %s", servers, ares_strerror(rc));
            ares_destroy(d->ch);
            free(d);
            return NULL;
        }
    }
    d->base = base;
    d->tmo = evtimer_new(base, on_ares, d);
    if (getrandom(&d->seed, sizeof(d->seed), 0) != sizeof(d->seed))
        d->seed = (size_t)time(NULL) ^ (size_t)(uintptr_t)d;
    d->seed ^= 0xcbf29ce484222325ULL;
    return d;
}

/* The health record of list NAME. */
static struct listinfo *list_info(struct dnsbl *d, const char *name)
{
    struct listinfo *li;

    for (li = d->lists; li; li = li->next)
        if (strcmp(li->name, name) == 0)
            return li;
    li = xcalloc(1, sizeof(*li));
    li->name = xstrdup(name);
    li->next = d->lists;
    d->lists = li;
    return li;
}

/* May this list warn now about KIND (0: failures, 1: error codes)?  Once a minute each. */
static bool may_warn(struct listinfo *li, int kind)
{
    time_t now = time(NULL);

    if (now - li->last_warning[kind] < DNSBL_WARN_EVERY)
        return false;
    li->last_warning[kind] = now;
    return true;
}

/* The hash chain of ADDR. */
static struct dnsbl_lookup **slot(struct dnsbl *d, const char *addr)
{
    size_t h = d->seed;

    for (const char *p = addr; *p; p++)
        h = (h ^ (unsigned char)*p) * 0x100000001b3ULL;
    h ^= h >> 29;
    return &d->slots[(h * 0x9e3779b97f4a7c15ULL >> 40) & (DNSBL_SLOTS - 1)];
}

/* Free a lookup no one needs: no holder, no query out, result expired. */
static void lookup_free(struct dnsbl_lookup *l)
{
    struct dnsbl *d = l->d;

    for (struct dnsbl_lookup **pp = slot(d, l->addr); *pp; pp = &(*pp)->next)
        if (*pp == l) {
            *pp = l->next;
            break;
        }
    d->nlookups--;
    if (l->inflight)
        d->inflight--;
    while (l->waiters) {
        struct waiter *w = l->waiters;
        l->waiters = w->next;
        free(w);
    }
    while (l->requests) {
        struct request *r = l->requests;
        l->requests = r->next;
        free(r);
    }
    event_free(l->timer);
    free(l);
}

/*
 * Free L if nothing keeps it.  Finished results are kept for reuse until
 * they expire, unless DNSBL_MAX_KEPT lookups are alive already.
 */
static void lookup_maybe_free(struct dnsbl_lookup *l)
{
    if (l->refs == 0 && l->pending == 0 &&
        (!l->done || time(NULL) >= l->expires || l->d->nlookups > DNSBL_MAX_KEPT))
        lookup_free(l);
}

/* The reply timeout (postscreen's warning), then the end of validity. */
static void on_lookup_timer(evutil_socket_t fd, short what, void *arg)
{
    struct dnsbl_lookup *l = arg;

    (void)fd;
    (void)what;
    if (!l->done) {
        for (struct request *r = l->requests; r; r = r->next)
            if (!r->answered) {
                struct stats_list *sl = stats_list(l->sites->domains[r->domain].name);
                sl->timeouts++;
                sl->last_error = time(NULL);
                msg_warn("dnsblog reply timeout %llds for %s", (long long)l->timeout,
                         l->sites->domains[r->domain].name);
            }
        return;
    }
    lookup_maybe_free(l);
}

/* Is A (network order) an answer a list gives for its own errors? */
static bool error_code(const struct in_addr *a)
{
    const unsigned char *b = (const unsigned char *)&a->s_addr;

    return b[0] != 127 || (b[1] == 255 && b[2] == 255);
}

/* Skip a (possibly compressed) domain name at *P; false when it runs past END. */
static bool skip_name(const unsigned char **p, const unsigned char *end)
{
    for (int hops = 0; hops < 128; hops++) {
        if (*p >= end)
            return false;
        unsigned len = **p;
        if (len == 0) {
            (*p)++;
            return true;
        }
        if ((len & 0xc0) == 0xc0) {
            if (end - *p < 2)
                return false;
            *p += 2; /* a pointer ends the name */
            return true;
        }
        if ((len & 0xc0) != 0 || (size_t)(end - *p) < len + 1u)
            return false;
        *p += len + 1;
    }
    return false;
}

/*
 * The TTL of a negative answer (NXDOMAIN, NODATA), as dnsblog takes it:
 * the smallest TTL of the SOA records in the authority section (RFC 2308);
 * -1 when there is none or the message is malformed.
 */
static int negative_ttl(const unsigned char *abuf, int alen)
{
    int ttl = -1;

    /* c-ares may call back without a message: check before any pointer
     * arithmetic, as NULL + 0 is undefined in C (found by fuzz_dns_answer). */
    if (abuf == NULL || alen < 12)
        return -1;
    const unsigned char *p = abuf, *end = abuf + alen;
    unsigned qd = (p[4] << 8) | p[5], an = (p[6] << 8) | p[7], ns = (p[8] << 8) | p[9];
    p += 12;
    for (unsigned i = 0; i < qd; i++) {
        if (!skip_name(&p, end) || end - p < 4)
            return -1;
        p += 4;
    }
    for (unsigned i = 0; i < an + ns; i++) {
        if (!skip_name(&p, end) || end - p < 10)
            return -1;
        unsigned type = (p[0] << 8) | p[1];
        unsigned long rr_ttl = ((unsigned long)p[4] << 24) | (p[5] << 16) | (p[6] << 8) | p[7];
        unsigned rdlen = (p[8] << 8) | p[9];
        p += 10;
        if ((unsigned)(end - p) < rdlen)
            return -1;
        p += rdlen;
        if (i >= an && type == 6 /* SOA */ && rr_ttl <= 0x7fffffffUL &&
            (ttl < 0 || (int)rr_ttl < ttl))
            ttl = (int)rr_ttl;
    }
    return ttl;
}

/* Every answer is in: valid for the verdict's TTL; tell the sessions waiting. */
static void complete(struct dnsbl_lookup *l)
{
    /* Only the score is kept for reuse; the queries are over. */
    while (l->requests) {
        struct request *r = l->requests;
        l->requests = r->next;
        free(r);
    }
    l->done = true;
    if (l->inflight) {
        l->inflight = false;
        l->d->inflight--;
    }
    int valid = dnsbl_score_ttl(&l->score, l->min_ttl, l->max_ttl);
    l->expires = time(NULL) + valid;
    struct timeval tv = {valid, 0};
    evtimer_add(l->timer, &tv);
    struct waiter *w = l->waiters;
    l->waiters = NULL;
    l->refs++; /* callbacks may release */
    while (w) {
        struct waiter *next = w->next;
        w->fn(w->ctx);
        free(w);
        w = next;
    }
    l->refs--;
    lookup_maybe_free(l);
}

/* Sort one answer; see dnsbl_int.h.  Pure: no counter, no log. */
void dnsbl_parse_answer(int status, const unsigned char *abuf, int alen, struct dnsbl_answer *a)
{
    memset(a, 0, sizeof(*a));
    a->ttl = -1;
    if (status == ARES_SUCCESS) {
        struct ares_addrttl at[DNSBL_MAX_ADDRS];
        int na = DNSBL_MAX_ADDRS;
        if (abuf == NULL || ares_parse_a_reply(abuf, alen, NULL, at, &na) != ARES_SUCCESS) {
            /* An answer that does not parse: a failure, as c-ares would
             * have reported it. */
            a->kind = DNSBL_ANSWER_MALFORMED;
            return;
        }
        for (int i = 0; i < na; i++) {
            if (error_code(&at[i].ipaddr)) {
                a->kind = DNSBL_ANSWER_ERROR_CODE;
                a->error_addr = at[i].ipaddr;
                a->naddrs = 0;
                a->ttl = -1;
                return;
            }
            memcpy(a->addrs[a->naddrs++], &at[i].ipaddr.s_addr, 4);
            /* c-ares keeps the 32-bit TTL in an int: one with its top bit
             * set comes out negative, which the score would take for "no
             * TTL".  RFC 2181 section 8: read it as 0. */
            int ttl = at[i].ttl < 0 ? 0 : at[i].ttl;
            if (a->ttl < 0 || ttl < a->ttl)
                a->ttl = ttl;
        }
        a->kind = a->naddrs > 0 ? DNSBL_ANSWER_LISTED : DNSBL_ANSWER_NOT_LISTED;
    } else if (status == ARES_ENOTFOUND || status == ARES_ENODATA) {
        a->kind = DNSBL_ANSWER_NOT_LISTED;
        a->ttl = negative_ttl(abuf, alen);
    } else {
        a->kind = DNSBL_ANSWER_FAILED;
    }
}

/* One domain's answer. */
static void on_answer(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    struct request *r = arg;
    struct dnsbl_lookup *l = r->l;
    struct dnsbl *d = l->d;
    const char *domain = l->sites->domains[r->domain].name;
    struct dnsbl_answer ans;
    struct listinfo *li;

    (void)timeouts;
    if (status == ARES_EDESTRUCTION || status == ARES_ECANCELLED)
        return; /* shutting down: dnsbl_free() frees the lookups */
    r->answered = true;
    struct stats_list *sl = stats_list(domain);
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    stats_hist_add(&sl->rtt, (double)(now.tv_sec - l->sent.tv_sec) +
                                 (double)(now.tv_nsec - l->sent.tv_nsec) / 1e9);
    dnsbl_parse_answer(status, abuf, alen, &ans);
    switch (ans.kind) {
    case DNSBL_ANSWER_LISTED:
        sl->listed++;
        break;
    case DNSBL_ANSWER_NOT_LISTED:
        sl->not_listed++;
        break;
    case DNSBL_ANSWER_ERROR_CODE: {
        sl->error_codes++;
        sl->last_error = time(NULL);
        li = list_info(d, domain);
        li->error_codes++;
        char text[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &ans.error_addr, text, sizeof(text));
        if (may_warn(li, 1))
            msg_warn("DNSBL %s answered %s for %s: an error code, not a listing; "
                     "counted as not listed (%lu error answers so far)",
                     domain, text, r->qname, li->error_codes);
        break;
    }
    case DNSBL_ANSWER_MALFORMED:
        sl->errors++;
        sl->last_error = time(NULL);
        break;
    case DNSBL_ANSWER_FAILED:
        li = list_info(d, domain);
        li->errors++;
        sl->errors++;
        sl->last_error = time(NULL);
        if (may_warn(li, 0))
            msg_warn("DNSBL lookup error for DNS query %s: %s; counted as not listed (%lu "
                     "errors so far)",
                     r->qname, ares_strerror(status), li->errors);
        break;
    }
    dnsbl_score_add(&l->score, l->sites, r->domain, (const uint8_t(*)[4])ans.addrs, ans.naddrs,
                    ans.ttl);
    if (--l->pending == 0)
        complete(l);
}

/* Start (or join) the lookup of ADDR; see dnsbl.h. */
struct dnsbl_lookup *dnsbl_lookup(struct dnsbl *d, const struct dnsbl_sites *sites,
                                  const char *addr, time_t timeout, int min_ttl, int max_ttl,
                                  dnsbl_fn fn, void *ctx)
{
    struct dnsbl_lookup *l;
    time_t now = time(NULL);

    struct dnsbl_lookup **chain = slot(d, addr);
    for (l = *chain; l; l = l->next)
        if (strcmp(l->addr, addr) == 0 && l->sites == sites && (!l->done || now < l->expires))
            break;
    if (l == NULL) {
        l = xcalloc(1, sizeof(*l));
        l->d = d;
        l->sites = sites;
        snprintf(l->addr, sizeof(l->addr), "%s", addr);
        l->timeout = timeout;
        l->min_ttl = min_ttl;
        l->max_ttl = max_ttl;
        dnsbl_score_init(&l->score);
        l->timer = evtimer_new(d->base, on_lookup_timer, l);
        l->next = *chain;
        *chain = l;
        d->nlookups++;
        /* c-ares may answer inside ares_query() (a bad name, no server):
         * one pending count for the loop itself keeps the lookup from
         * completing, or being freed, before every query is out. */
        /* Bounded: over DNSBL_MAX_INFLIGHT lookups with queries out, a new
         * client is not looked up (fails open, warned once a minute). */
        if (d->inflight >= DNSBL_MAX_INFLIGHT) {
            if (now - d->last_busy_warning >= DNSBL_WARN_EVERY) {
                d->last_busy_warning = now;
                msg_warn("DNSBL lookups: %zu in progress, the limit; new clients are not "
                         "looked up until some finish",
                         d->inflight);
            }
            sites = NULL;
        }
        l->inflight = true;
        d->inflight++;
        l->pending = 1;
        clock_gettime(CLOCK_MONOTONIC, &l->sent);
        struct timeval tv = {timeout, 0};
        evtimer_add(l->timer, &tv);
        for (size_t i = 0; sites && i < sites->ndomains; i++) {
            struct request *r = xcalloc(1, sizeof(*r));
            r->l = l;
            r->domain = i;
            r->next = l->requests;
            l->requests = r;
            if (dnsbl_query_name(r->qname, sizeof(r->qname), addr, sites->domains[i].name) < 0) {
                r->answered = true;
                continue;
            }
            l->pending++;
            stats_list(sites->domains[i].name)->queries++;
            ares_query(d->ch, r->qname, ns_c_in, ns_t_a, on_answer, r);
        }
        if (!evtimer_pending(d->tmo, NULL))
            process_timeouts(d);
        l->refs++; /* the caller's reference, before completion can free */
        if (--l->pending == 0)
            complete(l);
        l->refs--;
    } else {
        stats.dnsbl_reused++; /* no query: a lookup done or under way for the address */
    }
    l->refs++;
    if (!l->done) {
        struct waiter *w = xcalloc(1, sizeof(*w));
        w->fn = fn;
        w->ctx = ctx;
        w->next = l->waiters;
        l->waiters = w;
    }
    return l;
}

/* Every answer is in. */
bool dnsbl_done(const struct dnsbl_lookup *l)
{
    return l->done;
}

/* Seconds the finished result stays valid (0 when not finished). */
int dnsbl_valid_for(const struct dnsbl_lookup *l)
{
    time_t left = l->done ? l->expires - time(NULL) : 0;

    return left > 0 ? (int)left : 0;
}

/* The score so far. */
const struct dnsbl_score *dnsbl_score(const struct dnsbl_lookup *l)
{
    return &l->score;
}

/* A session lets go: no callback for CTX any more. */
void dnsbl_release(struct dnsbl_lookup *l, void *ctx)
{
    for (struct waiter **pp = &l->waiters; *pp; pp = &(*pp)->next)
        if ((*pp)->ctx == ctx) {
            struct waiter *w = *pp;
            *pp = w->next;
            free(w);
            break;
        }
    l->refs--;
    lookup_maybe_free(l);
}

/* Stop: cancel every query and free everything. */
void dnsbl_free(struct dnsbl *d)
{
    if (d == NULL)
        return;
    ares_destroy(d->ch);
    for (size_t i = 0; i < DNSBL_SLOTS; i++)
        while (d->slots[i])
            lookup_free(d->slots[i]);
    while (d->fds) {
        struct fdev *f = d->fds;
        d->fds = f->next;
        event_free(f->ev);
        free(f);
    }
    while (d->lists) {
        struct listinfo *li = d->lists;
        d->lists = li->next;
        free(li->name);
        free(li);
    }
    event_free(d->tmo);
    free(d);
    ares_library_cleanup();
}
