/*
 * report - postscreen log statistics, the counting; see report.h for the
 * contract, report_out.c for the output.
 *
 * Counting is O(1) per line: one hash lookup of the client address (open
 * addressing over an array of records, so that a record's index stays
 * valid while the array grows), and for the distinct counts per DNSBL
 * rank, list or verdict a bit in the address record or one insertion into
 * a hash set of (table, name, address) keys.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "stats/report_int.h"
#include "util/mem.h"

/* ---- hashing ------------------------------------------------------------ */

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

static uint64_t akey_hash(const struct akey *k)
{
    uint64_t a, b;

    memcpy(&a, k->bytes, 8);
    memcpy(&b, k->bytes + 8, 8);
    return mix64(a ^ mix64(b ^ k->family));
}

static bool akey_eq(const struct akey *a, const struct akey *b)
{
    return a->family == b->family && memcmp(a->bytes, b->bytes, 16) == 0;
}

/* Where key K is in IX, or the empty slot where it would go.  BASE and
 * STRIDE give the records; each starts with its struct akey. */
static size_t index_slot(const struct index *ix, const void *base, size_t stride,
                         const struct akey *k)
{
    size_t mask = ix->cap - 1;
    size_t i = (size_t)akey_hash(k) & mask;

    while (ix->slot[i] != 0) {
        const struct akey *have =
            (const struct akey *)((const char *)base + (size_t)(ix->slot[i] - 1) * stride);
        if (akey_eq(have, k))
            return i;
        i = (i + 1) & mask;
    }
    return i;
}

/* Double IX (or make it) so that it stays at most half full. */
static void index_grow(struct index *ix, const void *base, size_t stride)
{
    struct index old = *ix;

    ix->cap = old.cap ? old.cap * 2 : 1024;
    ix->slot = xcalloc(ix->cap, sizeof(*ix->slot));
    for (size_t i = 0; i < old.cap; i++) {
        if (old.slot[i] == 0)
            continue;
        const struct akey *k =
            (const struct akey *)((const char *)base + (size_t)(old.slot[i] - 1) * stride);
        ix->slot[index_slot(ix, base, stride, k)] = old.slot[i];
    }
    free(old.slot);
}

/* Add KEY to S; true when it was not there yet. */
static bool pairset_add(struct pairset *s, uint64_t key)
{
    if (2 * (s->used + 1) > s->cap) {
        struct pairset old = *s;
        s->cap = old.cap ? old.cap * 2 : 1024;
        s->slot = xcalloc(s->cap, sizeof(*s->slot));
        for (size_t i = 0; i < old.cap; i++) {
            if (old.slot[i] == 0)
                continue;
            size_t j = (size_t)mix64(old.slot[i]) & (s->cap - 1);
            while (s->slot[j] != 0)
                j = (j + 1) & (s->cap - 1);
            s->slot[j] = old.slot[i];
        }
        free(old.slot);
    }
    size_t i = (size_t)mix64(key) & (s->cap - 1);
    while (s->slot[i] != 0) {
        if (s->slot[i] == key)
            return false;
        i = (i + 1) & (s->cap - 1);
    }
    s->slot[i] = key;
    s->used++;
    return true;
}

/* FNV-1a over LEN bytes. */
static uint64_t text_hash(const char *p, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ULL;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

/* The index of name (P, LEN) in T, added if new; -1 when T is full. */
static long names_get(struct names *t, const char *p, size_t len)
{
    if (len > NAME_LEN_MAX)
        len = NAME_LEN_MAX;
    if (t->slots == 0) {
        t->slots = 2 * NAMES_MAX;
        t->slot = xcalloc(t->slots, sizeof(*t->slot));
    }
    size_t i = (size_t)text_hash(p, len) & (t->slots - 1);
    while (t->slot[i] != 0) {
        const struct name_rec *n = &t->v[t->slot[i] - 1];
        if (strlen(n->text) == len && memcmp(n->text, p, len) == 0)
            return (long)t->slot[i] - 1;
        i = (i + 1) & (t->slots - 1);
    }
    if (t->n == NAMES_MAX) {
        t->overflow++;
        return -1;
    }
    if (t->n == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->v = xrealloc(t->v, t->cap * sizeof(*t->v));
    }
    t->v[t->n] = (struct name_rec){xstrndup(p, len), 0, 0, 0};
    t->slot[i] = (uint32_t)++t->n;
    return (long)t->n - 1;
}

static void names_free(struct names *t)
{
    for (size_t i = 0; i < t->n; i++)
        free(t->v[i].text);
    free(t->v);
    free(t->slot);
}

/* ---- counting ------------------------------------------------------------ */

/* Make an empty report. */
struct report *report_new(const struct report_opts *opts)
{
    struct report *r = xcalloc(1, sizeof(*r));

    r->o = *opts;
    r->ranks.tag = 1;
    r->sites.tag = 2;
    r->blocked.tag = 3;
    r->replies.tag = 4;
    return r;
}

/* Release R and all it holds. */
void report_free(struct report *r)
{
    if (r == NULL)
        return;
    free(r->addrs);
    free(r->aix.slot);
    free(r->nets);
    free(r->nix.slot);
    free(r->pairs.slot);
    names_free(&r->ranks);
    names_free(&r->sites);
    names_free(&r->blocked);
    names_free(&r->replies);
    free(r);
}

static struct akey key_of(const struct logparse_addr *a)
{
    struct akey k;

    memset(&k, 0, sizeof(k));
    k.family = a->family == AF_INET ? 4 : 6;
    memcpy(k.bytes, a->bytes, k.family == 4 ? 4 : 16);
    return k;
}

/* The record of address A, made if new; NULL beyond max_addresses. */
static struct addr_rec *addr_get(struct report *r, const struct logparse_addr *a, uint32_t *idx)
{
    struct akey k = key_of(a);

    if (r->aix.cap == 0)
        index_grow(&r->aix, r->addrs, sizeof(*r->addrs));
    size_t i = index_slot(&r->aix, r->addrs, sizeof(*r->addrs), &k);
    if (r->aix.slot[i] != 0) {
        *idx = r->aix.slot[i] - 1;
        return &r->addrs[*idx];
    }
    if (r->naddrs >= r->o.max_addresses || r->naddrs >= UINT32_MAX - 1) {
        r->untracked++;
        return NULL;
    }
    if (r->naddrs == r->addrs_cap) {
        r->addrs_cap = r->addrs_cap ? r->addrs_cap * 2 : 1024;
        r->addrs = xrealloc(r->addrs, r->addrs_cap * sizeof(*r->addrs));
    }
    memset(&r->addrs[r->naddrs], 0, sizeof(r->addrs[0]));
    r->addrs[r->naddrs].key = k;
    r->aix.slot[i] = (uint32_t)++r->naddrs;
    r->aix.used++;
    if (2 * r->aix.used > r->aix.cap)
        index_grow(&r->aix, r->addrs, sizeof(*r->addrs));
    *idx = (uint32_t)r->naddrs - 1;
    return &r->addrs[*idx];
}

/* The network (/24 or /64) of address record A, made if new. */
static struct net_rec *net_get(struct report *r, const struct akey *a)
{
    struct akey k = *a;

    memset(k.bytes + (k.family == 4 ? 3 : 8), 0, k.family == 4 ? 13 : 8);
    if (r->nix.cap == 0)
        index_grow(&r->nix, r->nets, sizeof(*r->nets));
    size_t i = index_slot(&r->nix, r->nets, sizeof(*r->nets), &k);
    if (r->nix.slot[i] != 0)
        return &r->nets[r->nix.slot[i] - 1];
    if (r->nnets == r->nets_cap) {
        r->nets_cap = r->nets_cap ? r->nets_cap * 2 : 256;
        r->nets = xrealloc(r->nets, r->nets_cap * sizeof(*r->nets));
    }
    r->nets[r->nnets] = (struct net_rec){k, 0, 0};
    r->nix.slot[i] = (uint32_t)++r->nnets;
    r->nix.used++;
    if (2 * r->nix.used > r->nix.cap)
        index_grow(&r->nix, r->nets, sizeof(*r->nets));
    return &r->nets[r->nnets - 1];
}

/* The flags of connection PORT of address A (a slot is taken if needed). */
static uint8_t *conn_flags(struct addr_rec *a, unsigned port, bool fresh)
{
    for (int i = 0; i < CONN_SLOTS; i++) {
        if ((a->conn_flags[i] & CONN_USED) && a->conn_port[i] == port) {
            if (fresh)
                a->conn_flags[i] = CONN_USED;
            return &a->conn_flags[i];
        }
    }
    int i = a->conn_next;
    a->conn_next = (uint8_t)((a->conn_next + 1) % CONN_SLOTS);
    a->conn_port[i] = (uint16_t)port;
    a->conn_flags[i] = CONN_USED;
    return &a->conn_flags[i];
}

/* The verdict row of EV, or -1. */
static int row_of(const struct logparse_event *ev)
{
    switch (ev->kind) {
    case LP_CONNECT:
        return ROW_CONNECT;
    case LP_PASS_NEW:
        return ROW_PASS_NEW;
    case LP_PASS_OLD:
        return ROW_PASS_OLD;
    case LP_ALLOWLISTED:
        return ROW_ALLOWLISTED;
    case LP_DENYLISTED:
        return ROW_DENYLISTED;
    case LP_ALLOWLIST_VETO:
        return ROW_ALLOWLIST_VETO;
    case LP_PREGREET:
        return ROW_PREGREET;
    case LP_DNSBL_RANK:
        return ROW_DNSBL;
    case LP_HANGUP:
        return ev->after_handshake ? ROW_HANGUP_AFTER : ROW_HANGUP_BEFORE;
    case LP_PIPELINING:
        return ROW_PIPELINING;
    case LP_NON_SMTP:
        return ROW_NON_SMTP;
    case LP_BARE_NEWLINE:
        return ROW_BARE_NEWLINE;
    case LP_TIME_LIMIT:
        return ROW_TIME_LIMIT;
    case LP_COUNT_LIMIT:
        return ROW_COUNT_LIMIT;
    case LP_LENGTH_LIMIT:
        return ROW_LENGTH_LIMIT;
    case LP_NOQUEUE_RCPT:
        return ROW_NOQUEUE_RCPT;
    case LP_DATA_NO_RCPT:
        return ROW_DATA;
    case LP_BDAT_NO_RCPT:
        return ROW_BDAT;
    case LP_DISCONNECT:
        return ROW_DISCONNECT;
    case LP_TOO_MANY_CONNECTIONS:
        return ROW_TOO_MANY;
    case LP_SERVER_PORTS_BUSY:
        return ROW_SERVER_BUSY;
    case LP_SCREENING_PORTS_BUSY:
        return ROW_SCREENING_BUSY;
    case LP_REPLAY:
        return ROW_REPLAY;
    case LP_OTHER:
    case LP_UNKNOWN:
    case LP_STRESS_ENTER:
    case LP_STRESS_LEAVE:
    case LP_CACHE_CLEANUP:
    case LP_TABLE_CHANGED:
    case LP_REPLACE_COMMAND:
    case LP_DISCARD_EHLO:
    case LP_RESPECTFUL_NOTICE:
    case LP_WARNING:
    case LP_FATAL:
    case LP_DNSBLOG_LISTED:
    case LP__COUNT:
        break;
    }
    return -1;
}

/* Count name (P, LEN) in table T for address record A (NULL: untracked);
 * its index in T, or -1 when T is full. */
static long count_name(struct report *r, struct names *t, const char *p, size_t len,
                       const struct addr_rec *a, uint32_t idx)
{
    long n = names_get(t, p, len);

    if (n < 0)
        return -1;
    t->v[n].lines++;
    if (a != NULL && pairset_add(&r->pairs, (uint64_t)t->tag << 60 | (uint64_t)n << 32 | idx))
        t->v[n].addrs++;
    return n;
}

/* A failed test or a denylisting on a connection of A (NULL: untracked). */
static void count_reject(struct report *r, struct addr_rec *a, unsigned port, bool test)
{
    if (a == NULL) {
        /* Untracked: every line counts as a connection of its own. */
        r->failed_conns += test;
        r->rejected_conns++;
        return;
    }
    uint8_t *cf = conn_flags(a, port, false);
    if (test && !(*cf & CONN_FAILED)) {
        *cf |= CONN_FAILED;
        r->failed_conns++;
        if (!(a->flags & ADDR_FAILED)) {
            a->flags |= ADDR_FAILED;
            r->failed_addrs++;
        }
    }
    if (!(*cf & CONN_REJECTED)) {
        *cf |= CONN_REJECTED;
        r->rejected_conns++;
        struct net_rec *net = net_get(r, &a->key);
        net->rejected++;
        if (a->rejected++ == 0) {
            net->addresses++;
            r->rejected_addrs++;
        }
    }
}

static void stamp_text(char *dst, size_t len, struct logparse_span s)
{
    size_t n = s.len < len - 1 ? s.len : len - 1;

    memcpy(dst, s.p, n);
    dst[n] = '\0';
}

/* Count one parsed line. */
void report_add(struct report *r, const struct logparse_event *ev)
{
    uint64_t seq = ++r->seq;
    int64_t t = 0;
    struct addr_rec *a = NULL;
    uint32_t idx = 0;

    switch (ev->source) {
    case LP_SRC_NONE:
        r->lines_other++;
        return;
    case LP_SRC_POSTSCREEN:
        r->lines_postscreen++;
        break;
    case LP_SRC_DNSBLOG:
        r->lines_dnsblog++;
        break;
    }
    if (ev->kind == LP_UNKNOWN)
        r->lines_unknown++;
    r->kinds[ev->kind]++;
    if (ev->time.valid) {
        t = logparse_epoch(&ev->time, r->o.now);
        if (!r->have_time || t < r->first_t) {
            r->first_t = t;
            stamp_text(r->first_text, sizeof(r->first_text), ev->time.text);
        }
        if (!r->have_time || t >= r->last_t) {
            r->last_t = t;
            stamp_text(r->last_text, sizeof(r->last_text), ev->time.text);
        }
        r->have_time = true;
    }
    if (ev->kind == LP_WARNING)
        r->warns[ev->warn]++;
    if (ev->legacy)
        r->legacy++;
    if (ev->client.family != 0)
        a = addr_get(r, &ev->client, &idx);

    int row = row_of(ev);
    if (row == ROW_NOQUEUE_RCPT && a != NULL) {
        /* One RCPT reject line per RCPT: the row counts connections. */
        uint8_t *cf = conn_flags(a, ev->port, false);
        if (*cf & CONN_NOQUEUE)
            row = -1;
        *cf |= CONN_NOQUEUE;
    }
    if (row >= 0) {
        r->row_lines[row]++;
        if (a != NULL && !(a->rows & (1u << row))) {
            a->rows |= 1u << row;
            r->row_addrs[row]++;
        }
    }
    switch (ev->kind) {
    case LP_CONNECT:
        if (a != NULL) {
            a->connects++;
            (void)conn_flags(a, ev->port, true);
        }
        break;
    case LP_PASS_NEW:
        if (a != NULL && (!(a->flags & ADDR_NEW) || report_later(a->new_t, a->new_seq, t, seq))) {
            a->flags |= ADDR_NEW;
            a->new_t = t;
            a->new_seq = seq;
        }
        break;
    case LP_PASS_OLD:
        if (a != NULL && (!(a->flags & ADDR_OLD) || report_later(t, seq, a->old_t, a->old_seq))) {
            a->flags |= ADDR_OLD;
            a->old_t = t;
            a->old_seq = seq;
        }
        break;
    case LP_DNSBL_RANK: {
        char num[24];
        int n = snprintf(num, sizeof(num), "%ld", ev->number);
        long i = count_name(r, &r->ranks, num, (size_t)n, a, idx);
        if (i >= 0)
            r->ranks.v[i].num = ev->number;
        count_reject(r, a, ev->port, true);
        break;
    }
    case LP_PREGREET:
    case LP_PIPELINING:
    case LP_NON_SMTP:
    case LP_BARE_NEWLINE:
        count_reject(r, a, ev->port, true);
        break;
    case LP_DENYLISTED:
        count_reject(r, a, ev->port, false);
        break;
    case LP_NOQUEUE_RCPT: {
        const char *semi = memchr(ev->reply.p, ';', ev->reply.len);
        size_t len = semi ? (size_t)(semi - ev->reply.p) : ev->reply.len;
        (void)count_name(r, &r->replies, ev->reply.p, len, a, idx);
        if (ev->name.len > 0)
            (void)count_name(r, &r->blocked, ev->name.p, ev->name.len, a, idx);
        break;
    }
    case LP_DNSBLOG_LISTED:
        (void)count_name(r, &r->sites, ev->name.p, ev->name.len, a, idx);
        break;
    case LP_OTHER:
    case LP_UNKNOWN:
    case LP_ALLOWLISTED:
    case LP_ALLOWLIST_VETO:
    case LP_HANGUP:
    case LP_TIME_LIMIT:
    case LP_COUNT_LIMIT:
    case LP_LENGTH_LIMIT:
    case LP_DATA_NO_RCPT:
    case LP_BDAT_NO_RCPT:
    case LP_DISCONNECT:
    case LP_TOO_MANY_CONNECTIONS:
    case LP_SERVER_PORTS_BUSY:
    case LP_SCREENING_PORTS_BUSY:
    case LP_REPLAY:
    case LP_STRESS_ENTER:
    case LP_STRESS_LEAVE:
    case LP_CACHE_CLEANUP:
    case LP_TABLE_CHANGED:
    case LP_REPLACE_COMMAND:
    case LP_DISCARD_EHLO:
    case LP_RESPECTFUL_NOTICE:
    case LP_WARNING:
    case LP_FATAL:
    case LP__COUNT:
        break;
    }
}
