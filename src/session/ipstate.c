/*
 * ipstate - per-address records in a chained hash table; see ipstate.h.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log/log.h"
#include "session/ipstate.h"
#include "util/mem.h"

struct iptab {
    struct ipstate **slots;
    size_t nslots; /* a power of two */
    size_t n;      /* records */
};

/* FNV-1a over the address text. */
static size_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return (size_t)h;
}

/* Make an empty table. */
struct iptab *iptab_new(void)
{
    struct iptab *t = xcalloc(1, sizeof(*t));

    t->nslots = 256;
    t->slots = xcalloc(t->nslots, sizeof(*t->slots));
    return t;
}

/* Free the table and any records left in it. */
void iptab_free(struct iptab *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->nslots; i++) {
        struct ipstate *ip = t->slots[i], *next;
        for (; ip; ip = next) {
            next = ip->next;
            free(ip);
        }
    }
    free(t->slots);
    free(t);
}

/* Double the number of slots when the load passes one record per slot. */
static void grow(struct iptab *t)
{
    size_t n = t->nslots * 2;
    struct ipstate **slots = xcalloc(n, sizeof(*slots));

    for (size_t i = 0; i < t->nslots; i++) {
        struct ipstate *ip = t->slots[i], *next;
        for (; ip; ip = next) {
            next = ip->next;
            size_t h = hash(ip->addr) & (n - 1);
            ip->next = slots[h];
            slots[h] = ip;
        }
    }
    free(t->slots);
    t->slots = slots;
    t->nslots = n;
}

/* Find or create the record for ADDR and count one more connection. */
struct ipstate *ipstate_hold(struct iptab *t, const char *addr)
{
    size_t h = hash(addr) & (t->nslots - 1);
    struct ipstate *ip;

    for (ip = t->slots[h]; ip; ip = ip->next)
        if (strcmp(ip->addr, addr) == 0) {
            ip->count++;
            return ip;
        }
    if (t->n >= t->nslots) {
        grow(t);
        h = hash(addr) & (t->nslots - 1);
    }
    size_t len = strnlen(addr, ENDPOINT_KEY_MAX - 1);
    /* The key's own length (one record per address), from the end of the
     * fields: sizeof would count the tail padding twice. */
    ip = xcalloc(1, offsetof(struct ipstate, addr) + len + 1);
    memcpy(ip->addr, addr, len);
    ip->count = 1;
    ip->next = t->slots[h];
    t->slots[h] = ip;
    t->n++;
    return ip;
}

/* Count one connection less; free the record with the last one. */
void ipstate_release(struct iptab *t, struct ipstate *ip)
{
    if (ip->count == 0)
        msg_panic("ipstate_release: %s has no connection", ip->addr);
    if (--ip->count > 0)
        return;
    size_t h = hash(ip->addr) & (t->nslots - 1);
    struct ipstate **pp = &t->slots[h];
    while (*pp && *pp != ip)
        pp = &(*pp)->next;
    if (*pp == NULL)
        msg_panic("ipstate_release: %s not in the table", ip->addr);
    *pp = ip->next;
    t->n--;
    free(ip);
}
