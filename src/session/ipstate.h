/*
 * ipstate - what mxscreen knows about one client address right now
 *
 * One record per client address with at least one connection held by
 * mxscreen (screening, in hand-off or relayed), found by hashing the
 * address text.  ipstate_hold() finds or creates the record and counts one
 * more connection; ipstate_release() counts one less and frees the record
 * with the last one.  The table grows with the number of addresses held,
 * which the accept path bounds.  Concurrent sessions from one address
 * share the record's test expiry times, as in postscreen; later features
 * (the DNSBL score) hang off this record too.
 */
#ifndef MXS_IPSTATE_H
#define MXS_IPSTATE_H

#include <arpa/inet.h>
#include <stddef.h>
#include <time.h>

#include "net/addr.h"
#include "session/verdict.h"

struct ipstate {
    struct ipstate *next;         /* hash chain */
    time_t stamps[TEST__COUNT];   /* test expiry times shared by its sessions */
    unsigned count;               /* connections held from this address */
    unsigned lookups : 31;        /* sessions waiting for the allowlist's answer */
    unsigned pass_new_logged : 1; /* a session logged PASS NEW */
    char addr[];                  /* key: the address, or its network (endpoint_key()),
                                     at most ENDPOINT_KEY_MAX - 1 characters; with the
                                     56 bytes above, an IPv4 record fits 72 bytes */
};

struct iptab;

struct iptab *iptab_new(void);
void iptab_free(struct iptab *t);
struct ipstate *ipstate_hold(struct iptab *t, const char *addr);
void ipstate_release(struct iptab *t, struct ipstate *ip);

#endif
