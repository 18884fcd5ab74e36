/*
 * report_int - what report.c (counting) and report_out.c (the text, JSON
 * and HTML output) share: the report's records and tables.  Not for use
 * outside src/stats/.
 */
#ifndef MXS_REPORT_INT_H
#define MXS_REPORT_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "stats/logparse.h"
#include "stats/report.h"

/* The rows of the verdict table, in the order of spec section 4.1. */
enum row {
    ROW_CONNECT,
    ROW_PASS_NEW,
    ROW_PASS_OLD,
    ROW_ALLOWLISTED,
    ROW_DENYLISTED,
    ROW_ALLOWLIST_VETO,
    ROW_PREGREET,
    ROW_DNSBL,
    ROW_HANGUP_BEFORE,
    ROW_HANGUP_AFTER,
    ROW_PIPELINING,
    ROW_NON_SMTP,
    ROW_BARE_NEWLINE,
    ROW_TIME_LIMIT,
    ROW_COUNT_LIMIT,
    ROW_LENGTH_LIMIT,
    ROW_NOQUEUE_RCPT,
    ROW_DATA,
    ROW_BDAT,
    ROW_DISCONNECT,
    ROW_TOO_MANY,
    ROW_SERVER_BUSY,
    ROW_SCREENING_BUSY,
    ROW_REPLAY,
    ROW__COUNT
};

#define NAMES_MAX    4096 /* distinct names kept per table */
#define NAME_LEN_MAX 255  /* longer names are cut */
#define CONN_SLOTS   4    /* connections per address told apart at once */

/* An address, or a network (bytes masked), as a hash key. */
struct akey {
    uint8_t family; /* 4 or 6 */
    uint8_t bytes[16];
};

/* Flags of one connection (by port) of an address. */
enum {
    CONN_USED = 1,   /* the slot holds a connection */
    CONN_FAILED = 2, /* counted as failing a test */
    CONN_REJECTED = 4,
    CONN_NOQUEUE = 8, /* counted in ROW_NOQUEUE_RCPT */
};

/* Flags of an address. */
enum {
    ADDR_NEW = 1,    /* had PASS NEW; new_t/new_seq: the first */
    ADDR_OLD = 2,    /* had PASS OLD; old_t/old_seq: the last */
    ADDR_FAILED = 4, /* failed a test at least once */
};

struct addr_rec {
    struct akey key;
    uint8_t flags;                  /* ADDR_* */
    uint8_t conn_next;              /* the conn slot to reuse next */
    uint8_t conn_flags[CONN_SLOTS]; /* CONN_* */
    uint16_t conn_port[CONN_SLOTS];
    uint32_t rows;     /* bit per row: seen for this address */
    uint32_t connects; /* CONNECT lines */
    uint32_t rejected; /* rejected connections */
    int64_t new_t, old_t;
    uint64_t new_seq, old_seq;
};

struct net_rec {
    struct akey key;    /* masked to /24 or /64 */
    uint32_t rejected;  /* rejected connections */
    uint32_t addresses; /* addresses with a rejected connection */
};

/* Open addressing over record indices (index + 1; 0: empty). */
struct index {
    uint32_t *slot;
    size_t cap; /* a power of two, or 0 */
    size_t used;
};

/* A set of 64-bit keys (0 is never a key). */
struct pairset {
    uint64_t *slot;
    size_t cap;
    size_t used;
};

struct name_rec {
    char *text;
    long num;       /* the rank, for the rank table */
    uint64_t lines; /* lines that named it */
    uint64_t addrs; /* distinct addresses */
};

/* Interned names: DNSBL domains, reply texts, ranks. */
struct names {
    int tag; /* this table's part of a pairset key, 1..15 */
    struct name_rec *v;
    size_t n;
    size_t cap;
    uint32_t *slot; /* open addressing, index + 1 */
    size_t slots;
    uint64_t overflow; /* lines whose name did not fit in NAMES_MAX */
};

struct report {
    struct report_opts o;
    uint64_t seq; /* lines seen */
    uint64_t lines_postscreen, lines_dnsblog, lines_other, lines_unknown;
    uint64_t row_lines[ROW__COUNT];
    uint64_t row_addrs[ROW__COUNT];
    uint64_t legacy; /* WHITELISTED, BLACKLISTED, WHITELIST VETO lines */
    uint64_t failed_conns, failed_addrs;
    uint64_t rejected_conns, rejected_addrs;
    uint64_t kinds[LP__COUNT];
    uint64_t warns[LP_WARN__COUNT];
    uint64_t untracked; /* lines about addresses beyond max_addresses */

    struct addr_rec *addrs;
    size_t naddrs, addrs_cap;
    struct index aix;
    struct net_rec *nets;
    size_t nnets, nets_cap;
    struct index nix;
    struct pairset pairs;
    struct names ranks, sites, blocked, replies;

    bool have_time;
    int64_t first_t, last_t;
    char first_text[64], last_text[64];
};

/* Is (T1, S1) later than (T2, S2)?  Time first, the line number breaks ties. */
static inline bool report_later(int64_t t1, uint64_t s1, int64_t t2, uint64_t s2)
{
    return t1 > t2 || (t1 == t2 && s1 > s2);
}

#endif
