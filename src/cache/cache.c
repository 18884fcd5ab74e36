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
#include "log/log.h"
#include "session/verdict.h"
#include "util/mem.h"

#define CACHE_MAP_SIZE ((size_t)1 << 30) /* address space; the file grows as used */
#define CACHE_STEP     256               /* records looked at per cleanup step */
#define CACHE_LAST_KEY "_LAST_CACHE_CLEANUP_COMPLETED_"

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
    time_t last_warning; /* rate limit for error warnings */
    /* cleanup */
    struct event *timer;
    time_t interval, retention;
    unsigned enabled;
    bool running;    /* a run is in progress */
    char *resume;    /* LMDB: the key where the next step starts */
    size_t retained; /* this run so far */
    size_t dropped;
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
        (rc = mdb_env_open(c->env, path, MDB_NOSUBDIR | MDB_NOMETASYNC, 0600)) != 0) {
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
    while (strncasecmp(map, "proxy:", 6) == 0)
        map += 6; /* proxymap's sharing is what LMDB gives anyway */
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

/* Can MAP be kept?  For configuration checks; opens nothing. */
int cache_map_check(const char *map, char *err, size_t errlen)
{
    char path[4096];
    bool translated;

    return map_path(map, path, sizeof(path), &translated, err, errlen);
}

/* Open MAP; a STRICT open (the control tool) neither falls back to memory
 * nor accepts memory: (it creates the file, to load into). */
static struct cache *open_map(const char *map, bool strict, char *err, size_t errlen)
{
    char path[4096], why[512];
    bool translated;

    if (map_path(map, path, sizeof(path), &translated, err, errlen) < 0)
        return NULL;
    if (strict && path[0] == '\0') {
        snprintf(err, errlen, "\"%s\": a memory cache lives inside the daemon only", map);
        return NULL;
    }
    struct cache *c = xcalloc(1, sizeof(*c));
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
struct cache *cache_open(const char *map, char *err, size_t errlen)
{
    return open_map(map, false, err, errlen);
}

/* Open MAP's file for the control tool; see cache.h. */
struct cache *cache_open_store(const char *map, char *err, size_t errlen)
{
    return open_map(map, true, err, errlen);
}

/* Release the cache. */
void cache_free(struct cache *c)
{
    if (c == NULL)
        return;
    if (c->timer)
        event_free(c->timer);
    if (c->env)
        mdb_env_close(c->env);
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

/* Copy ADDR's record into BUF. */
bool cache_get(struct cache *c, const char *addr, char *buf, size_t len)
{
    if (len == 0)
        return false;
    if (c->env == NULL) {
        const struct entry *e = find(c, addr);
        if (e == NULL)
            return false;
        snprintf(buf, len, "%s", e->record);
        return true;
    }
    MDB_txn *txn;
    MDB_val k = {strlen(addr), (void *)addr}, v;
    int rc = mdb_txn_begin(c->env, NULL, MDB_RDONLY, &txn);
    if (rc == 0) {
        rc = mdb_get(txn, c->dbi, &k, &v);
        if (rc == 0)
            copy_value(buf, len, v.mv_data, v.mv_size);
        mdb_txn_abort(txn);
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

    if (c->env == NULL) {
        snprintf(err, errlen, "not an LMDB cache");
        return -1;
    }
    if ((rc = mdb_txn_begin(c->env, NULL, 0, &txn)) == 0) {
        rc = mdb_del(txn, c->dbi, &k, NULL);
        if (rc == 0)
            rc = mdb_txn_commit(txn);
        else
            mdb_txn_abort(txn);
    }
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
        if (strcmp(addr, CACHE_LAST_KEY) == 0)
            continue;
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
            if (keep(e->record, now, c->retention, c->enabled)) {
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
    c->running = false;
    free(c->resume);
    c->resume = NULL;
    tv.tv_sec = c->interval;
    evtimer_add(c->timer, &tv);
}

/* Schedule the cleanup runs; see cache.h. */
void cache_cleanup_start(struct cache *c, struct event_base *base, time_t interval,
                         time_t retention, unsigned enabled)
{
    time_t now = time(NULL);

    c->interval = interval;
    c->retention = retention;
    c->enabled = enabled;
    if (interval <= 0)
        return;
    time_t delay = last_cleanup(c) + interval - now;
    if (delay < 0)
        delay = 0;
    if (delay > interval)
        delay = interval;
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
