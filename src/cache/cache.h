/*
 * cache - the temporary allowlist: per client address, the record of
 * test expiry times (verdict.h's "t;t;t;t;t" text)
 *
 * cache_open() opens postscreen_cache_map.  "lmdb:/path" is an LMDB file
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
 * Cleanup (spec §5.3) runs in small steps from the event loop:
 * cache_cleanup_start() schedules the first run (after
 * postscreen_cache_cleanup_interval since the last completed one, which the
 * file remembers under _LAST_CACHE_CLEANUP_COMPLETED_) and the later ones;
 * a record is kept iff no enabled test would be due at now - retention.
 * Each run ends with postscreen's "cache NAME full cleanup: retained=R
 * dropped=D entries" line.
 */
#ifndef MXS_CACHE_H
#define MXS_CACHE_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define CACHE_MAX_ENTRIES 1000000

struct cache;

int cache_map_check(const char *map, char *err, size_t errlen);
struct cache *cache_open(const char *map, char *err, size_t errlen);
void cache_free(struct cache *c);
const char *cache_name(const struct cache *c);
bool cache_get(struct cache *c, const char *addr, char *buf, size_t len);
int cache_put(struct cache *c, const char *addr, const char *record);
struct cache *cache_open_store(const char *map, char *err, size_t errlen);
int cache_del(struct cache *c, const char *addr, char *err, size_t errlen);
int cache_each(struct cache *c, int (*fn)(void *ctx, const char *addr, const char *record),
               void *ctx, char *err, size_t errlen);
void cache_cleanup_start(struct cache *c, struct event_base *base, time_t interval,
                         time_t retention, unsigned enabled);
size_t cache_cleanup_now(struct cache *c, time_t now, time_t retention, unsigned enabled,
                         size_t *retained);

#endif
