/*
 * cache - the temporary allowlist in LMDB, or in memory; see cache.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <lmdb.h>

#include "cache/cache.h"
#include "cache/redis.h"
#include "log/log.h"
#include "stats/stats.h"
#include "session/verdict.h"
#include "util/mem.h"

#define CACHE_MAP_SIZE  ((size_t)1 << 30) /* address space; the file grows as used */
#define CACHE_STEP      256               /* records looked at per cleanup step */
#define CACHE_LAST_KEY  "_LAST_CACHE_CLEANUP_COMPLETED_"
#define PENDING_PREFIX  "_PENDING_ " /* + address: a write Redis has not taken */
#define CATCHUP_BATCH   32           /* pending records merged at a time */
#define CATCHUP_RETRY_S 30           /* a run while the link is up, for refused writes */
#define KEY_MAX         (512 + 256)  /* a Redis key: prefix and address */

struct entry {
    struct entry *next;
    char *addr;
    char record[VERDICT_RECORD_MAX];
};

struct cache {
    char *name;           /* "lmdb:/path" or "memory:", for log lines */
    MDB_env *env;         /* LMDB, or NULL: in memory */
    MDB_dbi dbi;          /* the main database */
    struct entry **slots; /* in memory: hash chains */
    size_t nslots;
    size_t count;
    time_t last_warning;   /* rate limit for error warnings */
    struct event *sync_ev; /* LMDB: writes reach the disk at most a second later */
    MDB_txn *rtxn;         /* LMDB: the read transaction of lookups, kept reset */
    /* cleanup */
    struct event *timer;
    time_t interval, retention;
    unsigned enabled;
    bool running;    /* a run is in progress */
    char *resume;    /* LMDB: the key where the next step starts */
    size_t retained; /* this run so far */
    size_t dropped;
    /* Redis (rt != NULL) */
    struct redis_target *rt;
    struct redis_opts ro;    /* password and user owned */
    char *prefix;            /* of every key */
    time_t cleanup_interval; /* caps a TTL, see record_ttl() */
    struct cache *local;     /* the fallback store, or NULL */
    redisContext *sync;      /* the control tool's connection */
    struct redis_link *link; /* the daemon's */
    struct event_base *base;
    bool outage;            /* "unavailable" logged and not yet back */
    bool connected;         /* "connected" logged once */
    bool catching;          /* a catch-up is running */
    size_t inflight;        /* its merges in flight */
    size_t caught;          /* records merged so far */
    char catch_resume[256]; /* the run goes on after this address */
    struct event *catch_timer;
    time_t last_redis_err; /* rate limit for error replies */
};

/* A lookup waiting for Redis. */
struct cache_req {
    struct cache *c;
    cache_done_fn *fn; /* NULL once cancelled */
    void *ctx;
    struct event *ev; /* delivers the answer from the loop */
    bool in_link;     /* the link still owes its reply */
    bool found;
    char addr[256];
    char record[VERDICT_RECORD_MAX];
};

/* One warning a minute at most for errors that can repeat per client. */
static void cache_warn(struct cache *c, const char *what, const char *addr, int rc)
{
    time_t now = time(NULL);

    if (now - c->last_warning < 60)
        return;
    c->last_warning = now;
    msg_warn("cache %s: %s error for %s: %s", c->name, what, addr, mdb_strerror(rc));
}

/* FNV-1a over the address text. */
static size_t hash(const char *s)
{
    size_t h = 2166136261u;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

/* Switch C to the in-memory store. */
static void use_memory(struct cache *c)
{
    c->nslots = 1024;
    c->slots = xcalloc(c->nslots, sizeof(*c->slots));
}

/* Open (creating it if needed) the LMDB file PATH; -1 with ERR on failure. */
static int open_lmdb(struct cache *c, const char *path, char *err, size_t errlen)
{
    MDB_txn *txn;
    int rc;

    if ((rc = mdb_env_create(&c->env)) != 0 ||
        (rc = mdb_env_set_mapsize(c->env, CACHE_MAP_SIZE)) != 0 ||
        (rc = mdb_env_open(c->env, path, MDB_NOSUBDIR | MDB_NOSYNC, 0600)) != 0) {
        snprintf(err, errlen, "%s", mdb_strerror(rc));
        goto fail;
    }
    int dead;
    mdb_reader_check(c->env, &dead);
    if ((rc = mdb_txn_begin(c->env, NULL, 0, &txn)) != 0) {
        snprintf(err, errlen, "%s", mdb_strerror(rc));
        goto fail;
    }
    if ((rc = mdb_dbi_open(txn, NULL, 0, &c->dbi)) != 0 || (rc = mdb_txn_commit(txn)) != 0) {
        if (rc != 0)
            snprintf(err, errlen, "%s", mdb_strerror(rc));
        goto fail;
    }
    return 0;
fail:
    if (c->env)
        mdb_env_close(c->env);
    c->env = NULL;
    return -1;
}

/* Create the directory that holds PATH when it is missing (one level). */
static void make_parent(const char *path)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');

    if (slash && slash != dir) {
        *slash = '\0';
        if (mkdir(dir, 0700) == 0)
            msg_info("created %s for the allowlist cache", dir);
    }
    free(dir);
}

/* MAP without its "proxy:" prefixes (proxymap's sharing is what LMDB and
 * Redis give anyway). */
static const char *strip_proxy(const char *map)
{
    while (strncasecmp(map, "proxy:", 6) == 0)
        map += 6;
    return map;
}

/*
 * Where postscreen_cache_map MAP is kept: PATH gets the LMDB file ("" for
 * memory:); NOTICE says when a postscreen map type was translated.
 * Returns -1 with ERR for a map type mxscreen cannot keep.
 */
static int map_path(const char *map, char *path, size_t plen, bool *translated, char *err,
                    size_t errlen)
{
    const char *colon;

    *translated = false;
    map = strip_proxy(map);
    if ((colon = strchr(map, ':')) == NULL) {
        snprintf(err, errlen, "\"%s\": expected type:name, for example lmdb:/path", map);
        return -1;
    }
    size_t tl = (size_t)(colon - map);
    const char *name = colon + 1;
    if (tl == 6 && strncasecmp(map, "memory", 6) == 0) {
        path[0] = '\0';
        return 0;
    }
    if (tl == 4 && strncasecmp(map, "lmdb", 4) == 0) {
        snprintf(path, plen, "%s", name);
    } else if ((tl == 5 && strncasecmp(map, "btree", 5) == 0) ||
               (tl == 4 && strncasecmp(map, "hash", 4) == 0)) {
        snprintf(path, plen, "%s.lmdb", name);
        *translated = true;
    } else {
        snprintf(err, errlen,
                 "unsupported cache type \"%.*s\" (mxscreen keeps lmdb:, btree: and hash: maps "
                 "in LMDB, or memory:)",
                 (int)tl, map);
        return -1;
    }
    if (*name != '/') {
        snprintf(err, errlen, "\"%s\": the cache needs an absolute path", map);
        return -1;
    }
    return 0;
}

/* Is MAP a Redis map ("redis:...", proxy: prefixes allowed)? */
bool cache_map_is_redis(const char *map)
{
    return strncasecmp(strip_proxy(map), "redis:", 6) == 0;
}

/* Can MAP be kept?  For configuration checks; opens nothing. */
int cache_map_check(const char *map, char *err, size_t errlen)
{
    char path[4096];
    bool translated;

    if (cache_map_is_redis(map)) {
        struct redis_target t;
        return redis_target_parse(strip_proxy(map) + 6, &t, err, errlen);
    }
    return map_path(map, path, sizeof(path), &translated, err, errlen);
}

static const struct cache_opts default_opts = {
    .retention = 7 * 86400,
    .cleanup_interval = 12 * 3600,
    .enabled = (1u << TEST__COUNT) - 1,
    .redis_prefix = "mxscreen:",
    .redis_timeout_ms = 200,
};

static struct cache *open_map(const char *map, const struct cache_opts *o, bool strict, char *err,
                              size_t errlen);

/* A Redis map: the target, a check that the server takes us, the fallback. */
static struct cache *open_redis(const char *map, const struct cache_opts *o, bool strict, char *err,
                                size_t errlen)
{
    struct cache *c = xcalloc(1, sizeof(*c));
    char why[512];
    bool refused;

    map = strip_proxy(map);
    c->rt = xmalloc(sizeof(*c->rt));
    if (redis_target_parse(map + 6, c->rt, err, errlen) < 0) {
        cache_free(c);
        return NULL;
    }
    c->name = xstrdup(c->rt->name);
    c->ro.password = xstrdup(o->redis_password ? o->redis_password : "");
    c->ro.user = xstrdup(o->redis_user ? o->redis_user : "");
    c->ro.timeout_ms = o->redis_timeout_ms > 0 ? o->redis_timeout_ms : 200;
    c->prefix = xstrdup(o->redis_prefix ? o->redis_prefix : "mxscreen:");
    c->retention = o->retention;
    c->enabled = o->enabled;
    c->cleanup_interval = o->cleanup_interval;
    redisContext *rc = redis_sync_open(c->rt, &c->ro, &refused, why, sizeof(why));
    if (rc == NULL && (refused || strict)) {
        snprintf(err, errlen, "%s: %s", c->name, why);
        cache_free(c);
        return NULL;
    }
    if (strict) {
        c->sync = rc;
        return c;
    }
    if (rc)
        redisFree(rc); /* the daemon's link connects from the event loop */
    if (redis_target_resolve(c->rt, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s (use an address, or a name in /etc/hosts)", c->name, why);
        cache_free(c);
        return NULL;
    }
    if (o->fallback_map && *o->fallback_map) {
        if (cache_map_is_redis(o->fallback_map)) {
            snprintf(err, errlen, "%s: the fallback must be a local map, not %s", c->name,
                     o->fallback_map);
            cache_free(c);
            return NULL;
        }
        if ((c->local = open_map(o->fallback_map, o, false, err, errlen)) == NULL) {
            cache_free(c);
            return NULL;
        }
    }
    return c;
}

/* Open MAP; a STRICT open (the control tool) neither falls back to memory
 * nor accepts memory: (it creates the file, to load into). */
static struct cache *open_map(const char *map, const struct cache_opts *o, bool strict, char *err,
                              size_t errlen)
{
    char path[4096], why[512];
    bool translated;

    if (o == NULL)
        o = &default_opts;
    if (cache_map_is_redis(map))
        return open_redis(map, o, strict, err, errlen);
    if (map_path(map, path, sizeof(path), &translated, err, errlen) < 0)
        return NULL;
    if (strict && path[0] == '\0') {
        snprintf(err, errlen, "\"%s\": a memory cache lives inside the daemon only", map);
        return NULL;
    }
    struct cache *c = xcalloc(1, sizeof(*c));
    c->interval = o->cleanup_interval;
    c->retention = o->retention;
    c->enabled = o->enabled;
    if (strict) {
        c->name = xmalloc(strlen(path) + 6);
        snprintf(c->name, strlen(path) + 6, "lmdb:%s", path);
        if (open_lmdb(c, path, why, sizeof(why)) < 0) {
            snprintf(err, errlen, "cannot open %s: %s", c->name, why);
            cache_free(c);
            return NULL;
        }
        return c;
    }
    if (path[0] == '\0') {
        c->name = xstrdup("memory:");
        use_memory(c);
        return c;
    }
    if (translated)
        msg_info("postscreen_cache_map: %s is kept as lmdb:%s", map, path);
    size_t pl = strlen(path);
    c->name = xmalloc(pl + 6);
    snprintf(c->name, pl + 6, "lmdb:%s", path);
    make_parent(path);
    if (open_lmdb(c, path, why, sizeof(why)) < 0) {
        msg_warn("cannot open the allowlist cache %s: %s; clients are remembered in memory "
                 "until mxscreen stops",
                 c->name, why);
        free(c->name);
        c->name = xstrdup("memory:");
        use_memory(c);
    }
    return c;
}

/* Open postscreen_cache_map; NULL with ERR only for a map type mxscreen cannot keep. */
struct cache *cache_open(const char *map, const struct cache_opts *o, char *err, size_t errlen)
{
    return open_map(map, o, false, err, errlen);
}

/* Open MAP's file for the control tool; see cache.h. */
struct cache *cache_open_store(const char *map, const struct cache_opts *o, char *err,
                               size_t errlen)
{
    return open_map(map, o, true, err, errlen);
}

/* Release the cache. */
void cache_free(struct cache *c)
{
    if (c == NULL)
        return;
    /* Writes still in flight are marked pending in the local store. */
    redis_link_free(c->link);
    if (c->catch_timer)
        event_free(c->catch_timer);
    cache_free(c->local);
    if (c->sync)
        redisFree(c->sync);
    free(c->rt);
    free((char *)c->ro.password);
    free((char *)c->ro.user);
    free(c->prefix);
    if (c->timer)
        event_free(c->timer);
    if (c->sync_ev)
        event_free(c->sync_ev);
    if (c->rtxn)
        mdb_txn_abort(c->rtxn);
    if (c->env) {
        mdb_env_sync(c->env, 1);
        mdb_env_close(c->env);
    }
    for (size_t i = 0; i < c->nslots; i++) {
        struct entry *e = c->slots[i], *next;
        for (; e; e = next) {
            next = e->next;
            free(e->addr);
            free(e);
        }
    }
    free(c->slots);
    free(c->resume);
    free(c->name);
    free(c);
}

/* The map's name for log lines ("lmdb:/path" or "memory:"). */
const char *cache_name(const struct cache *c)
{
    return c->name;
}

/*
 * Client records in the local store (LMDB or memory): every key but the
 * bookkeeping ones, which start with '_' (the last cleanup time and the
 * pending marks); -1 for Redis, whose count is the fleet's, not ours.
 */
long long cache_entries(struct cache *c)
{
    long long n = 0;

    if (c->rt)
        return -1;
    if (c->env == NULL) {
        for (size_t i = 0; i < c->nslots; i++)
            for (const struct entry *e = c->slots[i]; e; e = e->next)
                n += e->addr[0] != '_';
        return n;
    }
    /* The lookups' read transaction: one per thread (no MDB_NOTLS). */
    MDB_cursor *cur;
    MDB_stat st;
    MDB_val k = {1, (void *)"_"}, v;
    int rc = c->rtxn ? mdb_txn_renew(c->rtxn) : mdb_txn_begin(c->env, NULL, MDB_RDONLY, &c->rtxn);
    if (rc != 0)
        return -1;
    if (mdb_stat(c->rtxn, c->dbi, &st) != 0 || mdb_cursor_open(c->rtxn, c->dbi, &cur) != 0) {
        mdb_txn_reset(c->rtxn);
        return -1;
    }
    n = (long long)st.ms_entries;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == 0 && k.mv_size > 0 && *(const char *)k.mv_data == '_';
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        n--;
    mdb_cursor_close(cur);
    mdb_txn_reset(c->rtxn);
    return n;
}

/* The enabled tests changed (a reload): cleanup and TTLs follow them. */
void cache_set_enabled(struct cache *c, unsigned enabled)
{
    c->enabled = enabled;
    if (c->local)
        c->local->enabled = enabled;
}

/* 1 while the store answers; 0 while Redis is unavailable. */
int cache_up(const struct cache *c)
{
    if (c->rt == NULL)
        return 1;
    return c->link && redis_link_up(c->link) ? 1 : 0;
}

static struct entry *find(const struct cache *c, const char *addr)
{
    for (struct entry *e = c->slots[hash(addr) & (c->nslots - 1)]; e; e = e->next)
        if (strcmp(e->addr, addr) == 0)
            return e;
    return NULL;
}

/* Copy a value of LEN bytes into BUF as a string, cut to fit. */
static void copy_value(char *buf, size_t len, const void *data, size_t dlen)
{
    if (dlen >= len)
        dlen = len - 1;
    memcpy(buf, data, dlen);
    buf[dlen] = '\0';
}

/*
 * LMDB is opened with MDB_NOSYNC: a commit is written to the file (so a
 * killed process loses nothing) but not flushed to the disk each time,
 * which would stall the event loop once per new client.  A timer flushes
 * at most a second after a write; a power loss can lose that second of
 * allowlist entries (clients are then tested again), never the file's
 * consistency (LMDB's copy-on-write pages, written in order).
 */
static void on_sync(evutil_socket_t fd, short what, void *arg)
{
    struct cache *c = arg;

    (void)fd;
    (void)what;
    int rc = mdb_env_sync(c->env, 1);
    if (rc != 0)
        cache_warn(c, "sync", "the file", rc);
}

static void written(struct cache *c)
{
    if (c->sync_ev && !evtimer_pending(c->sync_ev, NULL)) {
        struct timeval tv = {1, 0};
        evtimer_add(c->sync_ev, &tv);
    }
}

static bool redis_get(struct cache *c, const char *addr, char *buf, size_t len);
static int redis_put(struct cache *c, const char *addr, const char *record);
static int redis_del(struct cache *c, const char *addr, char *err, size_t errlen);
static int redis_each(struct cache *c, int (*fn)(void *, const char *, const char *), void *ctx,
                      char *err, size_t errlen);

/* Copy ADDR's record into BUF. */
bool cache_get(struct cache *c, const char *addr, char *buf, size_t len)
{
    if (len == 0)
        return false;
    if (c->rt)
        return redis_get(c, addr, buf, len);
    if (c->env == NULL) {
        const struct entry *e = find(c, addr);
        if (e == NULL)
            return false;
        snprintf(buf, len, "%s", e->record);
        return true;
    }
    /* One read transaction, reset after each lookup and renewed for the
     * next: no allocation per lookup, and the reader slot is kept. */
    MDB_val k = {strlen(addr), (void *)addr}, v;
    int rc = c->rtxn ? mdb_txn_renew(c->rtxn) : mdb_txn_begin(c->env, NULL, MDB_RDONLY, &c->rtxn);
    if (rc == 0) {
        rc = mdb_get(c->rtxn, c->dbi, &k, &v);
        if (rc == 0)
            copy_value(buf, len, v.mv_data, v.mv_size);
        mdb_txn_reset(c->rtxn);
    } else if (c->rtxn) {
        mdb_txn_abort(c->rtxn);
        c->rtxn = NULL;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        cache_warn(c, "lookup", addr, rc);
    return rc == 0;
}

/* Double the in-memory slots when the chains grow long. */
static void grow(struct cache *c)
{
    size_t n = c->nslots * 2;
    struct entry **slots = xcalloc(n, sizeof(*slots));

    for (size_t i = 0; i < c->nslots; i++) {
        struct entry *e = c->slots[i], *next;
        for (; e; e = next) {
            next = e->next;
            size_t h = hash(e->addr) & (n - 1);
            e->next = slots[h];
            slots[h] = e;
        }
    }
    free(c->slots);
    c->slots = slots;
    c->nslots = n;
}

/* Record (or replace) ADDR's record; -1 on an error (logged). */
int cache_put(struct cache *c, const char *addr, const char *record)
{
    if (c->rt)
        return redis_put(c, addr, record);
    if (c->env) {
        MDB_txn *txn;
        MDB_val k = {strlen(addr), (void *)addr}, v = {strlen(record), (void *)record};
        int rc = mdb_txn_begin(c->env, NULL, 0, &txn);
        if (rc == 0) {
            if ((rc = mdb_put(txn, c->dbi, &k, &v, 0)) == 0)
                rc = mdb_txn_commit(txn);
            else
                mdb_txn_abort(txn);
        }
        if (rc != 0)
            cache_warn(c, "update", addr, rc);
        else
            written(c);
        return rc == 0 ? 0 : -1;
    }
    struct entry *e = find(c, addr);
    if (e == NULL) {
        if (c->count >= CACHE_MAX_ENTRIES) {
            time_t now = time(NULL);
            if (now - c->last_warning >= 60) {
                c->last_warning = now;
                msg_warn("cache %s: full (%d entries): %s and other new clients are not "
                         "remembered",
                         c->name, CACHE_MAX_ENTRIES, addr);
            }
            return -1;
        }
        if (c->count >= c->nslots)
            grow(c);
        e = xcalloc(1, sizeof(*e));
        e->addr = xstrdup(addr);
        size_t h = hash(addr) & (c->nslots - 1);
        e->next = c->slots[h];
        c->slots[h] = e;
        c->count++;
    }
    snprintf(e->record, sizeof(e->record), "%s", record);
    return 0;
}

/* Forget ADDR; 1 when it was there, 0 when not, -1 on an error (in ERR). */
int cache_del(struct cache *c, const char *addr, char *err, size_t errlen)
{
    MDB_txn *txn;
    MDB_val k = {strlen(addr), (void *)addr};
    int rc;

    if (c->rt)
        return redis_del(c, addr, err, errlen);
    if (c->env == NULL) {
        struct entry **pp = &c->slots[hash(addr) & (c->nslots - 1)];
        for (; *pp; pp = &(*pp)->next) {
            struct entry *e = *pp;
            if (strcmp(e->addr, addr) == 0) {
                *pp = e->next;
                free(e->addr);
                free(e);
                c->count--;
                return 1;
            }
        }
        return 0;
    }
    if ((rc = mdb_txn_begin(c->env, NULL, 0, &txn)) == 0) {
        rc = mdb_del(txn, c->dbi, &k, NULL);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
    if (rc == 0)
        written(c);
    if (rc == MDB_NOTFOUND)
        return 0;
    if (rc != 0) {
        snprintf(err, errlen, "%s", mdb_strerror(rc));
        return -1;
    }
    return 1;
}

/* Call FN for every record, in key order; see cache.h. */
int cache_each(struct cache *c, int (*fn)(void *ctx, const char *addr, const char *record),
               void *ctx, char *err, size_t errlen)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, stop = 0;

    if (c->rt)
        return redis_each(c, fn, ctx, err, errlen);
    if (c->env == NULL) {
        snprintf(err, errlen, "not an LMDB cache");
        return -1;
    }
    if ((rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn)) != 0) {
        snprintf(err, errlen, "%s", mdb_strerror(rc));
        return -1;
    }
    if ((rc = mdb_cursor_open(txn, c->dbi, &cur)) != 0) {
        mdb_txn_abort(txn);
        snprintf(err, errlen, "%s", mdb_strerror(rc));
        return -1;
    }
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && stop == 0;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        char addr[256], rec[VERDICT_RECORD_MAX];
        copy_value(addr, sizeof(addr), k.mv_data, k.mv_size);
        if (addr[0] == '_')
            continue; /* the last-cleanup stamp, pending marks */
        copy_value(rec, sizeof(rec), v.mv_data, v.mv_size);
        stop = fn(ctx, addr, rec);
    }
    mdb_cursor_close(cur);
    mdb_txn_abort(txn);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        snprintf(err, errlen, "%s", mdb_strerror(rc));
        return -1;
    }
    return stop;
}

/* postscreen's retention rule: keep iff no enabled test is due at NOW - RETENTION. */
static bool keep(const char *record, time_t now, time_t retention, unsigned enabled)
{
    time_t stamps[TEST__COUNT];

    verdict_parse(record, stamps);
    for (int t = 0; t < TEST__COUNT; t++)
        if ((enabled & TEST_BIT(t)) && now - retention > stamps[t])
            return false;
    return true;
}

/* The in-memory store in one pass. */
static void cleanup_memory(struct cache *c, time_t now)
{
    for (size_t i = 0; i < c->nslots; i++) {
        struct entry **pp = &c->slots[i];
        while (*pp) {
            struct entry *e = *pp;
            if (e->addr[0] == '_') {
                pp = &e->next; /* pending marks */
            } else if (keep(e->record, now, c->retention, c->enabled)) {
                c->retained++;
                pp = &e->next;
            } else {
                *pp = e->next;
                free(e->addr);
                free(e);
                c->count--;
                c->dropped++;
            }
        }
    }
}

/*
 * One LMDB step: at most CACHE_STEP records from the resume key on, in
 * one short write transaction, so other processes and this loop keep
 * going.  Returns 1 when the run is complete, 0 for more, -1 on error.
 */
static int cleanup_step(struct cache *c, time_t now)
{
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k, v;
    int rc, op;

    if ((rc = mdb_txn_begin(c->env, NULL, 0, &txn)) != 0)
        goto error;
    if ((rc = mdb_cursor_open(txn, c->dbi, &cur)) != 0) {
        mdb_txn_abort(txn);
        goto error;
    }
    if (c->resume) {
        k.mv_size = strlen(c->resume);
        k.mv_data = c->resume;
        op = MDB_SET_RANGE;
    } else {
        op = MDB_FIRST;
    }
    int n = 0;
    for (rc = mdb_cursor_get(cur, &k, &v, op); rc == 0 && n < CACHE_STEP;
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT), n++) {
        if (k.mv_size > 0 && ((const char *)k.mv_data)[0] == '_')
            continue; /* the last-cleanup stamp */
        char rec[VERDICT_RECORD_MAX];
        copy_value(rec, sizeof(rec), v.mv_data, v.mv_size);
        if (keep(rec, now, c->retention, c->enabled)) {
            c->retained++;
        } else if ((rc = mdb_cursor_del(cur, 0)) == 0) {
            c->dropped++;
        } else {
            break;
        }
    }
    free(c->resume);
    c->resume = NULL;
    if (rc == 0) {
        /* Where the next step starts (the key is copied: the txn ends). */
        c->resume = xmalloc(k.mv_size + 1);
        memcpy(c->resume, k.mv_data, k.mv_size);
        c->resume[k.mv_size] = '\0';
    }
    mdb_cursor_close(cur);
    if (rc != 0 && rc != MDB_NOTFOUND) {
        mdb_txn_abort(txn);
        goto error;
    }
    bool done = rc == MDB_NOTFOUND;
    if (done) {
        char stamp[32];
        snprintf(stamp, sizeof(stamp), "%lld", (long long)now);
        MDB_val lk = {strlen(CACHE_LAST_KEY), CACHE_LAST_KEY}, lv = {strlen(stamp), stamp};
        if ((rc = mdb_put(txn, c->dbi, &lk, &lv, 0)) != 0) {
            mdb_txn_abort(txn);
            goto error;
        }
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        goto error;
    written(c);
    return done ? 1 : 0;
error:
    msg_warn("%s: cache cleanup scan terminated due to error: %s", c->name, mdb_strerror(rc));
    return -1;
}

/* When the last complete run ended (0: never), from the file. */
static time_t last_cleanup(struct cache *c)
{
    char buf[32];

    if (c->env == NULL || !cache_get(c, CACHE_LAST_KEY, buf, sizeof(buf)))
        return 0;
    return (time_t)strtoll(buf, NULL, 10);
}

/* A cleanup step is due: work a little, then yield to the loop. */
static void on_cleanup(evutil_socket_t fd, short what, void *arg)
{
    struct cache *c = arg;
    time_t now = time(NULL);
    struct timeval tv = {0, 0};

    (void)fd;
    (void)what;
    if (!c->running) {
        c->running = true;
        c->retained = c->dropped = 0;
        /* Readers left by processes that were killed would pin old pages. */
        int dead;
        if (c->env)
            mdb_reader_check(c->env, &dead);
    }
    int st = 1;
    if (c->env)
        st = cleanup_step(c, now);
    else
        cleanup_memory(c, now);
    if (st == 0) {
        evtimer_add(c->timer, &tv); /* more to do, after other events */
        return;
    }
    msg_info("cache %s %s cleanup: retained=%zu dropped=%zu entries", c->name,
             st == 1 ? "full" : "partial", c->retained, c->dropped);
    stats.cache_cleanups++;
    stats.cache_cleanup_dropped += c->dropped;
    c->running = false;
    free(c->resume);
    c->resume = NULL;
    tv.tv_sec = c->interval;
    evtimer_add(c->timer, &tv);
}

static void redis_start(struct cache *c);

/* Schedule the cleanup runs and start the Redis link; see cache.h. */
void cache_start(struct cache *c, struct event_base *base)
{
    time_t now = time(NULL);

    c->base = base;
    if (c->rt) {
        if (c->local)
            cache_start(c->local, base);
        redis_start(c);
        return;
    }
    if (c->env)
        c->sync_ev = evtimer_new(base, on_sync, c);
    if (c->interval <= 0)
        return;
    time_t delay = last_cleanup(c) + c->interval - now;
    if (delay < 0)
        delay = 0;
    if (delay > c->interval)
        delay = c->interval;
    struct timeval tv = {delay, 0};
    c->timer = evtimer_new(base, on_cleanup, c);
    evtimer_add(c->timer, &tv);
}

/* A whole run at once (for tests and tools); returns the records dropped. */
size_t cache_cleanup_now(struct cache *c, time_t now, time_t retention, unsigned enabled,
                         size_t *retained)
{
    c->retention = retention;
    c->enabled = enabled;
    c->retained = c->dropped = 0;
    if (c->env) {
        free(c->resume);
        c->resume = NULL;
        while (cleanup_step(c, now) == 0)
            continue;
    } else {
        cleanup_memory(c, now);
    }
    if (retained)
        *retained = c->retained;
    return c->dropped;
}

/* ---- Redis ---- */

/* Redis's key for ADDR. */
static void redis_key(const struct cache *c, const char *addr, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", c->prefix, addr);
}

/*
 * How long Redis keeps RECORD (seconds, at least 1): until postscreen's retention rule would drop
 * it, the earliest expiry of an enabled test plus the retention time.  A
 * record with an enabled test never passed would go at the next cleanup
 * run: at most postscreen_cache_cleanup_interval (or the retention time
 * when cleanup is off) from now.
 */
long cache_record_ttl(const struct cache_opts *o, const char *record, time_t now)
{
    time_t stamps[TEST__COUNT], until = 0;
    bool unpassed = false;

    verdict_parse(record, stamps);
    for (int t = 0; t < TEST__COUNT; t++) {
        if (!(o->enabled & TEST_BIT(t)))
            continue;
        if (stamps[t] <= STAMP_DISABLED)
            unpassed = true;
        else if (until == 0 || stamps[t] + o->retention < until)
            until = stamps[t] + o->retention;
    }
    long ttl = until ? (long)(until - now) : 0;
    long cap = o->cleanup_interval > 0 ? (long)o->cleanup_interval : (long)o->retention;
    if ((unpassed || until == 0) && (until == 0 || ttl > cap))
        ttl = cap;
    return ttl < 1 ? 1 : ttl;
}

static long record_ttl(const struct cache *c, const char *record, time_t now)
{
    struct cache_opts o = {
        .retention = c->retention, .cleanup_interval = c->cleanup_interval, .enabled = c->enabled};

    return cache_record_ttl(&o, record, now);
}

/* One warning a minute at most for error replies. */
static void redis_warn(struct cache *c, const char *what, const char *addr, const char *why)
{
    time_t now = time(NULL);

    if (now - c->last_redis_err < 60)
        return;
    c->last_redis_err = now;
    msg_warn("cache %s: %s error for %s: %s", c->name, what, addr, why);
}

/* The pending mark of ADDR in the local store. */
static void pending_key(const char *addr, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s", PENDING_PREFIX, addr);
}

static void mark_pending(struct cache *local, const char *addr)
{
    char k[300];

    pending_key(addr, k, sizeof(k));
    cache_put(local, k, "1");
}

static bool is_pending(struct cache *local, const char *addr)
{
    char k[300], v[4];

    pending_key(addr, k, sizeof(k));
    return cache_get(local, k, v, sizeof(v));
}

static int clear_pending(struct cache *local, const char *addr)
{
    char k[300], err[256];

    pending_key(addr, k, sizeof(k));
    return cache_del(local, k, err, sizeof(err)) < 0 ? -1 : 0;
}

static int str_cmp(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

/* Up to MAX addresses with a pending mark after AFTER (in key order), into ADDRS. */
static size_t pending_batch(struct cache *l, const char *after, char (*addrs)[256], size_t max)
{
    size_t n = 0, pl = strlen(PENDING_PREFIX);

    if (l->env == NULL) {
        /* In memory (the LMDB file could not be opened): a scan, sorted. */
        char(*all)[256] = NULL;
        size_t na = 0, cap = 0;
        for (size_t i = 0; i < l->nslots; i++)
            for (const struct entry *e = l->slots[i]; e; e = e->next) {
                if (strncmp(e->addr, PENDING_PREFIX, pl) != 0 || strcmp(e->addr + pl, after) <= 0)
                    continue;
                if (na == cap) {
                    cap = cap ? cap * 2 : 64;
                    all = xrealloc(all, cap * sizeof(*all));
                }
                snprintf(all[na++], 256, "%s", e->addr + pl);
            }
        if (na > 0)
            qsort(all, na, sizeof(*all), str_cmp);
        for (; n < na && n < max; n++)
            memcpy(addrs[n], all[n], 256);
        free(all);
        return n;
    }
    char start[300];
    snprintf(start, sizeof(start), "%s%s", PENDING_PREFIX, after);
    MDB_txn *txn;
    MDB_cursor *cur;
    MDB_val k = {strlen(start), start}, v;
    if (mdb_txn_begin(l->env, NULL, MDB_RDONLY, &txn) != 0)
        return 0;
    if (mdb_cursor_open(txn, l->dbi, &cur) == 0) {
        for (int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
             rc == 0 && n < max && k.mv_size > pl && memcmp(k.mv_data, PENDING_PREFIX, pl) == 0;
             rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
            copy_value(addrs[n], 256, (const char *)k.mv_data + pl, k.mv_size - pl);
            if (strcmp(addrs[n], after) > 0)
                n++;
        }
        mdb_cursor_close(cur);
    }
    mdb_txn_abort(txn);
    return n;
}

/* A write in flight: which address, for the pending mark. */
struct wreq {
    struct cache *c;
    char addr[256];
};

static void catch_up(struct cache *c);

/*
 * Every write from the daemon goes through this script: each test's later
 * expiry wins (so two hosts, or a host that decided from a stale copy,
 * never undo each other's passes), and the TTL is computed from the merged
 * record as cache_record_ttl() does.  ARGV: the record, now, the retention
 * time, the cap for a record with an enabled test never passed, and the
 * enabled tests' bits.
 */
static const char merge_script[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "local rec = ARGV[1]\n"
    "if cur then\n"
    "  local a, b, out = {}, {}, {}\n"
    "  for x in string.gmatch(cur, '[^;]+') do a[#a + 1] = tonumber(x) or 0 end\n"
    "  for x in string.gmatch(rec, '[^;]+') do b[#b + 1] = tonumber(x) or 0 end\n"
    "  for i = 1, math.max(#a, #b) do\n"
    "    out[i] = string.format('%d', math.max(a[i] or 0, b[i] or 0))\n"
    "  end\n"
    "  rec = table.concat(out, ';')\n"
    "end\n"
    "local now, retention = tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local cap, enabled = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "local upto, unpassed, bit = 0, false, 1\n"
    "for x in string.gmatch(rec, '[^;]+') do\n"
    "  if math.floor(enabled / bit) % 2 == 1 then\n"
    "    local st = tonumber(x) or 0\n"
    "    if st <= 1 then unpassed = true\n"
    "    elseif upto == 0 or st + retention < upto then upto = st + retention end\n"
    "  end\n"
    "  bit = bit * 2\n"
    "end\n"
    "local ttl = 0\n"
    "if upto > 0 then ttl = upto - now end\n"
    "if (unpassed or upto == 0) and (upto == 0 or ttl > cap) then ttl = cap end\n"
    "if ttl < 1 then ttl = 1 end\n"
    "redis.call('SET', KEYS[1], rec, 'EX', math.floor(ttl))\n"
    "return math.floor(ttl)\n";

/* Send RECORD for ADDR through the merge script; -1 when it could not be sent. */
static int send_merge(struct cache *c, const char *addr, const char *record, redis_reply_fn *fn)
{
    char key[KEY_MAX], now[32], retention[32], cap[32], enabled[16];

    if (strlen(addr) >= sizeof(((struct wreq *)0)->addr))
        return -1;
    redis_key(c, addr, key, sizeof(key));
    snprintf(now, sizeof(now), "%lld", (long long)time(NULL));
    snprintf(retention, sizeof(retention), "%lld", (long long)c->retention);
    snprintf(cap, sizeof(cap), "%lld",
             (long long)(c->cleanup_interval > 0 ? c->cleanup_interval : c->retention));
    snprintf(enabled, sizeof(enabled), "%u", c->enabled);
    const char *argv[] = {"EVAL", merge_script, "1", key, record, now, retention, cap, enabled};
    struct wreq *w = xcalloc(1, sizeof(*w));
    w->c = c;
    snprintf(w->addr, sizeof(w->addr), "%s", addr);
    if (redis_command(c->link, fn, w, 9, argv, NULL) < 0) {
        free(w);
        return -1;
    }
    return 0;
}

/* Redis's answer to a write: on failure the local store keeps it pending. */
static void on_set(void *arg, const redisReply *r)
{
    struct wreq *w = arg;
    struct cache *c = w->c;

    if (r == NULL || r->type == REDIS_REPLY_ERROR) {
        if (r)
            redis_warn(c, "update", w->addr, r->str);
        if (c->local)
            mark_pending(c->local, w->addr);
    }
    free(w);
}

/* A merge of the catch-up is answered. */
static void on_merge(void *arg, const redisReply *r)
{
    struct wreq *w = arg;
    struct cache *c = w->c;

    c->inflight--;
    if (r == NULL) {
        c->catching = false; /* again when the link is back */
    } else if (r->type == REDIS_REPLY_ERROR) {
        /* Skipped in this run, tried again in the next. */
        redis_warn(c, "catch-up", w->addr, r->str);
    } else if (clear_pending(c->local, w->addr) == 0) {
        c->caught++;
    } else {
        c->catching = false;
    }
    free(w);
    if (c->catching && c->inflight == 0)
        catch_up(c);
}

/* Merge the next pending records into Redis, a batch at a time. */
static void catch_up(struct cache *c)
{
    char addrs[CATCHUP_BATCH][256];

    while (c->catching && c->inflight == 0) {
        size_t n = pending_batch(c->local, c->catch_resume, addrs, CATCHUP_BATCH);
        if (n == 0) {
            if (c->caught > 0)
                msg_info("cache %s: caught up %zu records written while it was unavailable",
                         c->name, c->caught);
            c->catching = false;
            return;
        }
        memcpy(c->catch_resume, addrs[n - 1], sizeof(c->catch_resume));
        for (size_t i = 0; i < n && c->catching; i++) {
            char rec[VERDICT_RECORD_MAX];
            if (!cache_get(c->local, addrs[i], rec, sizeof(rec))) {
                if (clear_pending(c->local, addrs[i]) < 0)
                    c->catching = false; /* dropped by the cleanup meanwhile */
                continue;
            }
            if (send_merge(c, addrs[i], rec, on_merge) < 0)
                c->catching = false;
            else
                c->inflight++;
        }
    }
}

/* Start a catch-up run unless one is going. */
static void catch_up_start(struct cache *c)
{
    if (c->local == NULL || c->catching || c->inflight > 0 || !redis_link_up(c->link))
        return;
    c->catching = true;
    c->caught = 0;
    c->catch_resume[0] = '\0';
    catch_up(c);
}

/* While the link is up, records Redis refused (an error reply) are tried
 * again from time to time. */
static void on_catch_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    catch_up_start(arg);
}

/* The link came up or went down: one log line per change. */
static void on_link_state(void *ctx, bool up, const char *reason)
{
    struct cache *c = ctx;

    if (!up) {
        c->catching = false;
        if (!c->outage) {
            c->outage = true;
            if (c->local)
                msg_warn("cache %s: unavailable (%s): deciding from %s until it returns", c->name,
                         reason, c->local->name);
            else
                msg_warn("cache %s: unavailable (%s): screening clients as new until it returns",
                         c->name, reason);
        }
        return;
    }
    if (c->outage)
        msg_info("cache %s: available again", c->name);
    else if (!c->connected)
        msg_info("cache %s: connected", c->name);
    c->outage = false;
    c->connected = true;
    catch_up_start(c);
}

static void redis_start(struct cache *c)
{
    if (c->sync || c->link)
        return;
    c->link = redis_link_new(c->base, c->rt, &c->ro, on_link_state, c);
    if (c->local) {
        struct timeval tv = {CATCHUP_RETRY_S, 0};
        c->catch_timer = event_new(c->base, -1, EV_PERSIST, on_catch_timer, c);
        evtimer_add(c->catch_timer, &tv);
    }
}

static void req_free(struct cache_req *r)
{
    event_free(r->ev);
    free(r);
}

/* Hand the answer to the waiting session, from the event loop. */
static void on_deliver(evutil_socket_t fd, short what, void *arg)
{
    struct cache_req *r = arg;
    cache_done_fn *fn = r->fn;

    (void)fd;
    (void)what;
    r->fn = NULL;
    if (fn)
        fn(r->ctx, r->found, r->record);
    req_free(r);
}

/* Redis's answer to a lookup; without one, the local store answers. */
static void on_get(void *arg, const redisReply *reply)
{
    struct cache_req *r = arg;
    struct cache *c = r->c;

    r->in_link = false;
    if (r->fn == NULL) {
        req_free(r);
        return;
    }
    if (reply && reply->type == REDIS_REPLY_STRING) {
        r->found = true;
        copy_value(r->record, sizeof(r->record), reply->str, reply->len);
    } else if (reply && reply->type == REDIS_REPLY_NIL) {
        /* Written here while Redis was away, and not merged yet? */
        r->found = c->local && is_pending(c->local, r->addr) &&
                   cache_get(c->local, r->addr, r->record, sizeof(r->record));
    } else {
        if (reply)
            redis_warn(c, "lookup", r->addr, reply->str);
        r->found = c->local && cache_get(c->local, r->addr, r->record, sizeof(r->record));
    }
    event_active(r->ev, EV_TIMEOUT, 1);
}

/* Look ADDR up; see cache.h. */
enum cache_answer cache_lookup(struct cache *c, const char *addr, char *buf, size_t len,
                               cache_done_fn *fn, void *ctx, struct cache_req **req)
{
    *req = NULL;
    if (c->rt == NULL || c->sync)
        return cache_get(c, addr, buf, len) ? CACHE_HIT : CACHE_MISS;
    if (c->link && redis_link_up(c->link) && strlen(addr) < sizeof(((struct cache_req *)0)->addr)) {
        struct cache_req *r = xcalloc(1, sizeof(*r));
        char key[KEY_MAX];
        r->c = c;
        r->fn = fn;
        r->ctx = ctx;
        snprintf(r->addr, sizeof(r->addr), "%s", addr);
        r->ev = evtimer_new(c->base, on_deliver, r);
        redis_key(c, addr, key, sizeof(key));
        const char *argv[] = {"GET", key};
        if (redis_command(c->link, on_get, r, 2, argv, NULL) == 0) {
            r->in_link = true;
            *req = r;
            return CACHE_PENDING;
        }
        req_free(r);
    }
    return c->local && cache_get(c->local, addr, buf, len) ? CACHE_HIT : CACHE_MISS;
}

/* The session no longer waits: the answer is dropped. */
void cache_cancel(struct cache_req *r)
{
    if (r == NULL)
        return;
    r->fn = NULL;
    if (!r->in_link)
        req_free(r);
}

/* A blocking command for the control tool; NULL with ERR on a failure. */
static redisReply *sync_cmd(struct cache *c, int argc, const char **argv, char *err, size_t errlen)
{
    redisReply *r = redisCommandArgv(c->sync, argc, argv, NULL);

    if (r == NULL) {
        snprintf(err, errlen, "%s", c->sync->err ? c->sync->errstr : "no reply");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%s", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static bool redis_get(struct cache *c, const char *addr, char *buf, size_t len)
{
    char key[KEY_MAX], err[512];

    if (c->sync == NULL)
        return c->local && cache_get(c->local, addr, buf, len);
    redis_key(c, addr, key, sizeof(key));
    const char *argv[] = {"GET", key};
    redisReply *r = sync_cmd(c, 2, argv, err, sizeof(err));
    if (r == NULL) {
        msg_warn("cache %s: lookup error for %s: %s", c->name, addr, err);
        return false;
    }
    bool found = r->type == REDIS_REPLY_STRING;
    if (found)
        copy_value(buf, len, r->str, r->len);
    freeReplyObject(r);
    return found;
}

static int redis_put(struct cache *c, const char *addr, const char *record)
{
    char key[KEY_MAX], ttl[32], err[512];

    redis_key(c, addr, key, sizeof(key));
    snprintf(ttl, sizeof(ttl), "%ld", record_ttl(c, record, time(NULL)));
    const char *argv[] = {"SET", key, record, "EX", ttl};
    if (c->sync) {
        redisReply *r = sync_cmd(c, 5, argv, err, sizeof(err));
        if (r == NULL) {
            msg_warn("cache %s: update error for %s: %s", c->name, addr, err);
            return -1;
        }
        freeReplyObject(r);
        return 0;
    }
    if (c->local)
        cache_put(c->local, addr, record);
    if (c->link && redis_link_up(c->link) && send_merge(c, addr, record, on_set) == 0)
        return 0;
    if (c->local)
        mark_pending(c->local, addr);
    return 0;
}

static int redis_del(struct cache *c, const char *addr, char *err, size_t errlen)
{
    char key[KEY_MAX];

    if (c->sync == NULL) {
        snprintf(err, errlen, "not open for the control tool");
        return -1;
    }
    redis_key(c, addr, key, sizeof(key));
    const char *argv[] = {"DEL", key};
    redisReply *r = sync_cmd(c, 2, argv, err, errlen);
    if (r == NULL)
        return -1;
    int gone = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    freeReplyObject(r);
    return gone;
}

struct pair {
    char *addr, *record;
};

static int pair_cmp(const void *a, const void *b)
{
    return strcmp(((const struct pair *)a)->addr, ((const struct pair *)b)->addr);
}

/* Every record under the prefix (SCAN, then MGET), in address order. */
static int redis_each(struct cache *c, int (*fn)(void *, const char *, const char *), void *ctx,
                      char *err, size_t errlen)
{
    char match[KEY_MAX * 2 + 2], cursor[32] = "0";
    size_t plen = strlen(c->prefix), n = 0, cap = 0;
    struct pair *pairs = NULL;
    int ret = 0;

    if (c->sync == NULL) {
        snprintf(err, errlen, "not open for the control tool");
        return -1;
    }
    /* The prefix, its glob characters escaped, then anything. */
    char *m = match;
    for (const char *p = c->prefix; *p && m < match + sizeof(match) - 3; p++) {
        if (strchr("*?[]\\", *p))
            *m++ = '\\';
        *m++ = *p;
    }
    *m++ = '*';
    *m = '\0';
    do {
        const char *argv[] = {"SCAN", cursor, "MATCH", match, "COUNT", "1000"};
        redisReply *r = sync_cmd(c, 6, argv, err, errlen);
        if (r == NULL) {
            ret = -1;
            break;
        }
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
            r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_ARRAY) {
            snprintf(err, errlen, "unexpected SCAN reply");
            freeReplyObject(r);
            ret = -1;
            break;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        redisReply *keys = r->element[1];
        if (keys->elements > 0) {
            const char **argv2 = xcalloc(keys->elements + 1, sizeof(*argv2));
            argv2[0] = "MGET";
            for (size_t i = 0; i < keys->elements; i++)
                argv2[i + 1] = keys->element[i]->str;
            redisReply *v = sync_cmd(c, (int)keys->elements + 1, argv2, err, errlen);
            free(argv2);
            if (v == NULL) {
                freeReplyObject(r);
                ret = -1;
                break;
            }
            for (size_t i = 0; i < v->elements && i < keys->elements; i++) {
                if (v->element[i]->type != REDIS_REPLY_STRING || keys->element[i]->len <= plen)
                    continue; /* expired meanwhile */
                if (n == cap) {
                    cap = cap ? cap * 2 : 256;
                    pairs = xrealloc(pairs, cap * sizeof(*pairs));
                }
                pairs[n].addr = xstrdup(keys->element[i]->str + plen);
                pairs[n].record = xstrdup(v->element[i]->str);
                n++;
            }
            freeReplyObject(v);
        }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    if (ret == 0) {
        qsort(pairs, n, sizeof(*pairs), pair_cmp);
        for (size_t i = 0; i < n && ret == 0; i++)
            if (i == 0 || strcmp(pairs[i].addr, pairs[i - 1].addr) != 0) /* SCAN may repeat */
                ret = fn(ctx, pairs[i].addr, pairs[i].record);
    }
    for (size_t i = 0; i < n; i++) {
        free(pairs[i].addr);
        free(pairs[i].record);
    }
    free(pairs);
    return ret;
}
