/*
 * cache - the temporary allowlist: per client address, the record of
 * test expiry times (verdict.h's "t;t;t;t;t" text)
 *
 * This version keeps the records in memory, in a hash table bounded to
 * CACHE_MAX_ENTRIES records: they survive for the life of the process,
 * which is what lets a client that passed the deep tests be handed off
 * when it reconnects.  When the table is full, new addresses are not
 * recorded (one warning per hour) and are simply tested again.
 *
 * cache_get() copies the record into BUF and returns true when there is
 * one; cache_put() replaces it.  Records whose every stamp expired more
 * than RETENTION seconds ago are dropped by cache_cleanup().
 */
#ifndef MXS_CACHE_H
#define MXS_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define CACHE_MAX_ENTRIES 1000000

struct cache;

struct cache *cache_new(size_t max_entries);
void cache_free(struct cache *c);
bool cache_get(const struct cache *c, const char *addr, char *buf, size_t len);
void cache_put(struct cache *c, const char *addr, const char *record);
size_t cache_cleanup(struct cache *c, time_t now, time_t retention, unsigned enabled);
size_t cache_count(const struct cache *c);

#endif
