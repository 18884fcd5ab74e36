/*
 * cache - the in-memory temporary allowlist; see cache.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cache/cache.h"
#include "log/log.h"
#include "session/verdict.h"
#include "util/mem.h"

struct entry {
    struct entry *next;
    char *addr;
    char record[VERDICT_RECORD_MAX];
};

struct cache {
    struct entry **slots;
    size_t nslots;
    size_t count;
    size_t max;
    time_t last_full_warning;
};

/* FNV-1a over the address text. */
static size_t hash(const char *s)
{
    size_t h = 2166136261u;

    while (*s)
        h = (h ^ (unsigned char)*s++) * 16777619u;
    return h;
}

/* An empty cache holding at most MAX records. */
struct cache *cache_new(size_t max_entries)
{
    struct cache *c = xcalloc(1, sizeof(*c));

    c->nslots = 1024;
    c->slots = xcalloc(c->nslots, sizeof(*c->slots));
    c->max = max_entries;
    return c;
}

/* Release the cache and every record. */
void cache_free(struct cache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < c->nslots; i++) {
        struct entry *e = c->slots[i], *next;
        for (; e; e = next) {
            next = e->next;
            free(e->addr);
            free(e);
        }
    }
    free(c->slots);
    free(c);
}

static struct entry *find(const struct cache *c, const char *addr)
{
    for (struct entry *e = c->slots[hash(addr) & (c->nslots - 1)]; e; e = e->next)
        if (strcmp(e->addr, addr) == 0)
            return e;
    return NULL;
}

/* Copy ADDR's record into BUF. */
bool cache_get(const struct cache *c, const char *addr, char *buf, size_t len)
{
    const struct entry *e = find(c, addr);

    if (e == NULL || len == 0)
        return false;
    snprintf(buf, len, "%s", e->record);
    return true;
}

/* Double the slots when the chains grow long. */
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

/* Record (or replace) ADDR's record. */
void cache_put(struct cache *c, const char *addr, const char *record)
{
    struct entry *e = find(c, addr);

    if (e == NULL) {
        if (c->count >= c->max) {
            time_t now = time(NULL);
            if (now - c->last_full_warning >= 3600) {
                c->last_full_warning = now;
                msg_warn("allowlist cache full (%zu entries): new clients are not remembered",
                         c->count);
            }
            return;
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
}

/*
 * Drop records no longer worth keeping: postscreen's rule keeps a record
 * iff no enabled test would be due at NOW - RETENTION.
 */
size_t cache_cleanup(struct cache *c, time_t now, time_t retention, unsigned enabled)
{
    size_t dropped = 0;

    for (size_t i = 0; i < c->nslots; i++) {
        struct entry **pp = &c->slots[i];
        while (*pp) {
            struct entry *e = *pp;
            time_t stamps[TEST__COUNT];
            bool due = false;
            verdict_parse(e->record, stamps);
            for (int t = 0; t < TEST__COUNT; t++)
                if ((enabled & TEST_BIT(t)) && now - retention > stamps[t])
                    due = true;
            if (due) {
                *pp = e->next;
                free(e->addr);
                free(e);
                c->count--;
                dropped++;
            } else {
                pp = &e->next;
            }
        }
    }
    return dropped;
}

/* Records held. */
size_t cache_count(const struct cache *c)
{
    return c->count;
}
