/*
 * sites - postscreen_dnsbl_sites: the lists, their filters and weights,
 * and the score of one client's answers (spec §1.7, §2.2)
 *
 * dnsbl_sites_parse() reads "domain[=filter][*weight]" entries separated
 * by commas and white space, as postscreen does: the text after the first
 * '*' is the weight (a signed integer; default 1; negative for allowlists),
 * the text after the first '=' is the reply filter, the rest must be a
 * valid host name.  A filter is "d.d.d.d" where each field is a number
 * 0..255 or a "[a;b..c;...]" set, and the whole pattern may be in "[]".
 * The same domain may be listed several times: it is queried once, and
 * every entry is judged against the same answer.  REPLY_MAP (may be NULL)
 * gives the name shown in reject texts (postscreen_dnsbl_reply_map).
 * Errors fill ERR with postscreen's wording and return NULL.
 *
 * dnsbl_score_add() folds one domain's answer (its IPv4 A records, empty
 * when not listed or on error, and its TTL, -1 when unknown) into a
 * client's score exactly as postscreen's psc_dnsbl_receive(): each entry
 * whose filter matches any address adds its weight once; the matching
 * entry with the largest weight names the list; TTLs go to the "fail" or
 * "pass" minimum by the entry's sign and whether the answer was empty.
 * The sum saturates at INT_MIN and INT_MAX instead of overflowing.
 * dnsbl_score_ttl() gives the TTL of the verdict, clamped to
 * [min_ttl, max_ttl].  dnsbl_query_name() makes the name to ask: the
 * IPv4 octets reversed, or the 32 nibbles of an IPv6 address reversed,
 * then the domain.
 */
#ifndef MXS_DNSBL_SITES_H
#define MXS_DNSBL_SITES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "conf/table.h"

struct dnsbl_site {
    size_t domain;        /* index into dnsbl_sites.domains */
    bool has_filter;      /* a reply filter was given */
    uint8_t octet[4][32]; /* per field, a bitmap of the accepted values */
    int weight;           /* the score added on a match */
    char *text;           /* the entry as written, for messages */
};

struct dnsbl_domain {
    char *name;       /* the DNS domain queried */
    char *reply_name; /* the name in reject texts */
};

struct dnsbl_sites {
    struct dnsbl_domain *domains; /* distinct domains, in first-seen order */
    size_t ndomains;
    struct dnsbl_site *sites; /* entries, in configuration order */
    size_t nsites;
};

struct dnsbl_score {
    int total;        /* sum of the matching entries' weights */
    const char *name; /* reply name of the heaviest match, or NULL */
    int name_weight;  /* its weight */
    int fail_ttl;     /* minimum TTL supporting "listed" (-1: none yet) */
    int pass_ttl;     /* minimum TTL supporting "not listed" (-1: none yet) */
};

struct dnsbl_sites *dnsbl_sites_parse(const char *text, const struct table *reply_map, char *err,
                                      size_t errlen);
void dnsbl_sites_free(struct dnsbl_sites *s);
int dnsbl_filter_parse(const char *text, uint8_t octet[4][32], char *err, size_t errlen);
bool dnsbl_filter_match(const uint8_t octet[4][32], const uint8_t addr[4]);
void dnsbl_score_init(struct dnsbl_score *sc);
void dnsbl_score_add(struct dnsbl_score *sc, const struct dnsbl_sites *s, size_t domain,
                     const uint8_t (*addrs)[4], size_t naddrs, int ttl);
int dnsbl_score_ttl(const struct dnsbl_score *sc, int min_ttl, int max_ttl);
int dnsbl_query_name(char *buf, size_t len, const char *addr, const char *domain);

#endif
