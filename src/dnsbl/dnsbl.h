/*
 * dnsbl - DNSBL/DNSWL lookups inside the event loop (c-ares)
 *
 * dnsbl_new() makes the resolver: mxscreen_dns_servers ("host:port" or
 * "[ipv6]:port", comma or space separated) or, when empty, the system's.
 * dnsbl_lookup() asks every distinct domain of postscreen_dnsbl_sites about
 * one client address (reversed IPv4 octets or 32 reversed IPv6 nibbles,
 * then the domain; A records only) and calls FN(CTX) once all answers are
 * in.  Sessions from one address share one lookup (reference counted):
 * a second caller while it runs is called back with the first; one that
 * comes while a finished result is still valid (its TTL, listed results
 * included) is called back at once, without a query.
 *
 * Beyond postscreen, a list that answers with an address in
 * 127.255.255.0/24 or outside 127.0.0.0/8 has answered with an error code
 * (Spamhaus's "public resolver" and "rate limited" replies, say): that
 * answer counts as "not listed", is logged and counted per list.  DNS
 * failures count as "not listed" too (fail open), with one warning per
 * list per minute.
 *
 * dnsbl_score() gives the lookup's score so far (partial when some
 * answers are still out); dnsbl_valid_for() how long a finished result
 * still holds (a reused result does not get a fresh TTL).  At most
 * DNSBL_MAX_INFLIGHT lookups have queries out at once: beyond that a new
 * client is not looked up (it fails open, with a warning a minute).  dnsbl_release() drops the
 * caller's reference and cancels its callback; the lookup itself lives on while queries are out or
 * its result is valid.
 */
#ifndef MXS_DNSBL_H
#define MXS_DNSBL_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "dnsbl/sites.h"

struct dnsbl;
struct dnsbl_lookup;

typedef void (*dnsbl_fn)(void *ctx);

struct dnsbl *dnsbl_new(struct event_base *base, const char *servers, char *err, size_t errlen);
void dnsbl_free(struct dnsbl *d);
struct dnsbl_lookup *dnsbl_lookup(struct dnsbl *d, const struct dnsbl_sites *sites,
                                  const char *addr, time_t timeout, int min_ttl, int max_ttl,
                                  dnsbl_fn fn, void *ctx);
bool dnsbl_done(const struct dnsbl_lookup *l);
const struct dnsbl_score *dnsbl_score(const struct dnsbl_lookup *l);
int dnsbl_valid_for(const struct dnsbl_lookup *l);
void dnsbl_release(struct dnsbl_lookup *l, void *ctx);

#endif
