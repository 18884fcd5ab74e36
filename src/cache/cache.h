/*
 * cache - the temporary allowlist: per client address, the record of
 * test expiry times (verdict.h's "t;t;t;t;t" text)
 *
 * cache_open() opens postscreen_cache_map with the options O (NULL:
 * defaults).  "lmdb:/path" is an LMDB file
 * (with "/path-lock" beside it); postscreen's "btree:/path" and
 * "hash:/path" are kept as the LMDB file "/path.lmdb", with a notice, so
 * that a postscreen configuration works unchanged.  LMDB lets several
 * mxscreen processes share one file, and a process killed at any instant
 * leaves it readable.  When the file cannot be opened, mxscreen warns and
 * keeps the records in memory instead (CACHE_MAX_ENTRIES at most): clients
 * are still remembered until a restart.  "memory:" asks for that directly.
 *
 * cache_get() copies ADDR's record into BUF and returns true when there is
 * one; cache_put() replaces it (-1 on an error).
 *
 * For the control tool (mxscreenctl): cache_open_store() opens the LMDB
 * file of a map and fails rather than fall back to memory; cache_each()
 * calls FN(CTX, addr, record) for every record in key order until FN
 * returns non-zero (that value is returned; -1 with ERR on an error);
 * cache_del() forgets one address (1 when it was there).  Lookup and update errors are logged (at
 * most once a minute) and read as "no record".
 *
 * "redis:HOST:PORT[/DB]" and "redis:unix:/PATH" keep the records in Redis
 * (key O->redis_prefix + address, the same record text) with a TTL that
 * drops a record when postscreen's retention rule would: a fleet of
 * mxscreen hosts shares one allowlist.  cache_open() checks, blocking, that
 * the server takes the password and the database (a refusal is an error:
 * the configuration is wrong); a server that cannot be reached is not an
 * error.  In the daemon, Redis never stops mail: cache_lookup() asks it
 * within O->redis_timeout_ms and otherwise answers from the local LMDB
 * store O->fallback_map, which every write also reaches; a write Redis did
 * not take is marked pending there and merged into Redis (each test's
 * later expiry wins) when the link is back.  The link's changes are
 * logged once each: "connected", "unavailable (WHY): ...", "available
 * again", "caught up N records ...".
 *
 * cache_lookup() answers CACHE_HIT (the record in BUF) or CACHE_MISS at
 * once, or CACHE_PENDING: then FN(CTX, found, record) is called later from
 * the event loop, unless cache_cancel(*REQ) is called first.
 *
 * cache_start() begins the event-loop work: the cleanup runs and, for
 * Redis, the link.  Cleanup (spec §5.3) runs in small steps:
 * the first run comes (after
 * postscreen_cache_cleanup_interval since the last completed one, which the
 * file remembers under _LAST_CACHE_CLEANUP_COMPLETED_) and the later ones;
 * a record is kept iff no enabled test would be due at now - retention.
 * Each run ends with postscreen's "cache NAME full cleanup: retained=R
 * dropped=D entries" line.
 *
 * For /metrics: cache_entries() counts the client records in the local
 * store (-1 for Redis); cache_up() is 0 while Redis is unavailable.
 * cache_set_enabled() follows a reload's enabled tests (the retention
 * rule and Redis TTLs depend on them).
 */
#ifndef MXS_CACHE_H
#define MXS_CACHE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define CACHE_MAX_ENTRIES 1000000

struct cache;
struct cache_req;

struct cache_opts {
    time_t retention;        /* postscreen_cache_retention_time */
    time_t cleanup_interval; /* postscreen_cache_cleanup_interval */
    unsigned enabled;        /* the enabled tests (verdict.h bits) */
    const char *redis_password, *redis_user, *redis_prefix;
    int redis_timeout_ms;
    const char *fallback_map; /* NULL or "": none */
};

enum cache_answer { CACHE_MISS, CACHE_HIT, CACHE_PENDING };
typedef void cache_done_fn(void *ctx, bool found, const char *record);

int cache_map_check(const char *map, char *err, size_t errlen);
bool cache_map_is_redis(const char *map);
struct cache *cache_open(const char *map, const struct cache_opts *o, char *err, size_t errlen);
void cache_start(struct cache *c, struct event_base *base);
enum cache_answer cache_lookup(struct cache *c, const char *addr, char *buf, size_t len,
                               cache_done_fn *fn, void *ctx, struct cache_req **req);
void cache_cancel(struct cache_req *req);
long cache_record_ttl(const struct cache_opts *o, const char *record, time_t now);
void cache_free(struct cache *c);
const char *cache_name(const struct cache *c);
long long cache_entries(struct cache *c);
int cache_up(const struct cache *c);
void cache_set_enabled(struct cache *c, unsigned enabled);
bool cache_get(struct cache *c, const char *addr, char *buf, size_t len);
int cache_put(struct cache *c, const char *addr, const char *record);
struct cache *cache_open_store(const char *map, const struct cache_opts *o, char *err,
                               size_t errlen);
int cache_del(struct cache *c, const char *addr, char *err, size_t errlen);
int cache_each(struct cache *c, int (*fn)(void *ctx, const char *addr, const char *record),
               void *ctx, char *err, size_t errlen);
size_t cache_cleanup_now(struct cache *c, time_t now, time_t retention, unsigned enabled,
                         size_t *retained);

#endif
