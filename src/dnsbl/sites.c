/*
 * sites - DNSBL site syntax, reply filters and scoring; see sites.h.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsbl/sites.h"
#include "util/list.h"
#include "util/mem.h"

/* Postfix's valid_hostname(): labels of letters, digits, '_' and inner '-'. */
static bool valid_hostname(const char *name)
{
    size_t label = 0, total = 0;
    bool non_numeric = false;

    if (*name == '\0')
        return false;
    for (const char *p = name; *p; p++, total++) {
        unsigned char c = (unsigned char)*p;
        if (isalnum(c) || c == '_') {
            if (++label > 63)
                return false;
            if (!isdigit(c))
                non_numeric = true;
        } else if (c == '.') {
            if (label == 0 || p[1] == '\0')
                return false;
            label = 0;
        } else if (c == '-') {
            non_numeric = true;
            if (++label == 1 || p[1] == '\0' || p[1] == '.')
                return false;
        } else {
            return false;
        }
    }
    return total <= 255 && non_numeric;
}

/* Read a decimal octet at *P (0..255); -1 when there is none or it is too big. */
static int octet_value(const char **p)
{
    int v = 0;

    if (!isdigit((unsigned char)**p))
        return -1;
    while (isdigit((unsigned char)**p)) {
        v = v * 10 + (**p - '0');
        if (v > 255)
            v = 256;
        (*p)++;
    }
    return v > 255 ? -1 : v;
}

static void set_bit(uint8_t map[32], int v)
{
    map[v >> 3] |= (uint8_t)(1u << (v & 7));
}

/* Parse a reply filter; see sites.h.  Returns -1 with ERR on a syntax error. */
int dnsbl_filter_parse(const char *text, uint8_t octet[4][32], char *err, size_t errlen)
{
    size_t len = strlen(text);
    const char *p = text, *end = text + len;

    memset(octet, 0, 4 * 32);
    /* "[...]" around the whole pattern, when its bracket closes at the end. */
    if (*p == '[') {
        int level = 0;
        const char *q;
        for (q = p; *q; q++) {
            if (*q == '[')
                level++;
            if (*q == ']' && --level == 0)
                break;
        }
        if (*q == '\0') {
            snprintf(err, errlen, "bad DNSBL filter syntax: missing \"]\" character");
            return -1;
        }
        if (q[1] == '\0') {
            p++;
            end = q;
        }
    }
    if (p == end) {
        snprintf(err, errlen, "bad DNSBL filter syntax: empty address pattern");
        return -1;
    }
    for (int field = 0; field < 4; field++) {
        if (field > 0) {
            if (p >= end || *p != '.') {
                snprintf(err, errlen, "bad DNSBL filter syntax: need \".\" in \"%s\"", text);
                return -1;
            }
            p++;
        }
        if (p < end && *p == '[') {
            p++;
            for (;;) {
                int a = octet_value(&p);
                if (a < 0) {
                    snprintf(err, errlen,
                             "bad DNSBL filter syntax: need decimal number 0..255 in \"%s\"", text);
                    return -1;
                }
                int b = a;
                if (end - p >= 2 && p[0] == '.' && p[1] == '.') {
                    p += 2;
                    if ((b = octet_value(&p)) < 0 || b < a) {
                        snprintf(err, errlen,
                                 "bad DNSBL filter syntax: numeric range error in "
                                 "\"%s\"",
                                 text);
                        return -1;
                    }
                }
                for (int v = a; v <= b; v++)
                    set_bit(octet[field], v);
                if (p < end && *p == ';') {
                    p++;
                    continue;
                }
                if (p < end && *p == ']') {
                    p++;
                    break;
                }
                snprintf(err, errlen, "bad DNSBL filter syntax: need \";\" or \"]\" in \"%s\"",
                         text);
                return -1;
            }
        } else {
            int v = octet_value(&p);
            if (v < 0 || p > end) {
                snprintf(err, errlen,
                         "bad DNSBL filter syntax: need decimal number 0..255 or \"[\" in \"%s\"",
                         text);
                return -1;
            }
            set_bit(octet[field], v);
        }
    }
    if (p != end) {
        snprintf(err, errlen, "bad DNSBL filter syntax: garbage after pattern in \"%s\"", text);
        return -1;
    }
    return 0;
}

/* Does the IPv4 address ADDR pass the filter? */
bool dnsbl_filter_match(const uint8_t octet[4][32], const uint8_t addr[4])
{
    for (int i = 0; i < 4; i++)
        if (!(octet[i][addr[i] >> 3] & (1u << (addr[i] & 7))))
            return false;
    return true;
}

/* Index of DOMAIN in S, adding it (with its reply name) when new. */
static size_t domain_index(struct dnsbl_sites *s, const char *domain, const struct table *map)
{
    for (size_t i = 0; i < s->ndomains; i++)
        if (strcmp(s->domains[i].name, domain) == 0)
            return i;
    s->domains = xrealloc(s->domains, (s->ndomains + 1) * sizeof(*s->domains));
    struct dnsbl_domain *d = &s->domains[s->ndomains];
    const char *shown = map ? table_lookup(map, domain) : NULL;
    d->name = xstrdup(domain);
    d->reply_name = xstrdup(shown ? shown : domain);
    return s->ndomains++;
}

/* Parse one "domain[=filter][*weight]" entry into S. */
static int add_site(struct dnsbl_sites *s, const char *entry, const struct table *map, char *err,
                    size_t errlen)
{
    char *work = xstrdup(entry);
    char *star = strchr(work, '*');
    int weight = 1;

    if (star) {
        *star++ = '\0';
        char *endp;
        errno = 0;
        long w = strtol(star, &endp, 10);
        if (endp == star || *endp != '\0' || errno == ERANGE || w < INT_MIN || w > INT_MAX) {
            snprintf(err, errlen, "bad DNSBL weight factor \"%s\" in \"%s\"", star, entry);
            free(work);
            return -1;
        }
        weight = (int)w;
    }
    struct dnsbl_site site = {.weight = weight};
    char *eq = strchr(work, '=');
    if (eq) {
        *eq++ = '\0';
        if (dnsbl_filter_parse(eq, site.octet, err, errlen) < 0) {
            free(work);
            return -1;
        }
        site.has_filter = true;
    }
    if (!valid_hostname(work)) {
        snprintf(err, errlen, "bad DNSBL domain name \"%s\" in \"%s\"", work, entry);
        free(work);
        return -1;
    }
    site.domain = domain_index(s, work, map);
    site.text = xstrdup(entry);
    s->sites = xrealloc(s->sites, (s->nsites + 1) * sizeof(*s->sites));
    s->sites[s->nsites++] = site;
    free(work);
    return 0;
}

/* Parse postscreen_dnsbl_sites; see sites.h. */
struct dnsbl_sites *dnsbl_sites_parse(const char *text, const struct table *reply_map, char *err,
                                      size_t errlen)
{
    struct dnsbl_sites *s = xcalloc(1, sizeof(*s));
    const char *cur = text, *el;
    size_t len;

    while ((el = list_next(&cur, &len)) != NULL) {
        char *entry = xstrndup(el, len);
        int rc = add_site(s, entry, reply_map, err, errlen);
        free(entry);
        if (rc < 0) {
            dnsbl_sites_free(s);
            return NULL;
        }
    }
    return s;
}

/* Release everything. */
void dnsbl_sites_free(struct dnsbl_sites *s)
{
    if (s == NULL)
        return;
    for (size_t i = 0; i < s->ndomains; i++) {
        free(s->domains[i].name);
        free(s->domains[i].reply_name);
    }
    for (size_t i = 0; i < s->nsites; i++)
        free(s->sites[i].text);
    free(s->domains);
    free(s->sites);
    free(s);
}

/* An empty score: nothing matched, no TTL known. */
void dnsbl_score_init(struct dnsbl_score *sc)
{
    *sc = (struct dnsbl_score){.fail_ttl = -1, .pass_ttl = -1};
}

/* Lower *SLOT to TTL as postscreen does (a -1 slot takes any value). */
static void min_ttl(int *slot, int ttl)
{
    if (*slot < 0 || *slot > ttl)
        *slot = ttl;
}

/*
 * Add weight W to *TOTAL, saturating at INT_MIN and INT_MAX: a weight may
 * be any int, as in postscreen, and a plain sum of two large ones would
 * overflow (undefined behaviour; found by fuzz_dnsbl_sites).
 */
static void add_weight(int *total, int w)
{
    if (w > 0 && *total > INT_MAX - w)
        *total = INT_MAX;
    else if (w < 0 && *total < INT_MIN - w)
        *total = INT_MIN;
    else
        *total += w;
}

/*
 * Fold one domain's answer into SC.  postscreen walks a domain's entries
 * newest first, so that is the order here too: with equal weights, the
 * entry listed last names the list.
 */
void dnsbl_score_add(struct dnsbl_score *sc, const struct dnsbl_sites *s, size_t domain,
                     const uint8_t (*addrs)[4], size_t naddrs, int ttl)
{
    for (size_t i = s->nsites; i-- > 0;) {
        const struct dnsbl_site *site = &s->sites[i];
        if (site->domain != domain)
            continue;
        if (naddrs > 0) {
            bool match = !site->has_filter;
            for (size_t a = 0; a < naddrs && !match; a++)
                match = dnsbl_filter_match(site->octet, addrs[a]);
            if (match) {
                if (sc->name == NULL || sc->name_weight < site->weight) {
                    sc->name = s->domains[domain].reply_name;
                    sc->name_weight = site->weight;
                }
                add_weight(&sc->total, site->weight);
            }
            min_ttl(site->weight > 0 ? &sc->fail_ttl : &sc->pass_ttl, ttl);
        } else {
            min_ttl(site->weight > 0 ? &sc->pass_ttl : &sc->fail_ttl, ttl);
        }
    }
}

/* The TTL of the verdict: "listed" TTLs when the score is positive. */
int dnsbl_score_ttl(const struct dnsbl_score *sc, int min, int max)
{
    int ttl = sc->total > 0 ? sc->fail_ttl : sc->pass_ttl;

    if (ttl < min)
        ttl = min;
    if (ttl > max)
        ttl = max;
    return ttl;
}

/* The DNSBL query name of ADDR at DOMAIN; -1 for text that is no address. */
int dnsbl_query_name(char *buf, size_t len, const char *addr, const char *domain)
{
    unsigned char b[16];

    if (inet_pton(AF_INET, addr, b) == 1) {
        snprintf(buf, len, "%u.%u.%u.%u.%s", b[3], b[2], b[1], b[0], domain);
        return 0;
    }
    if (inet_pton(AF_INET6, addr, b) == 1) {
        static const char hex[] = "0123456789abcdef";
        size_t k = 0;
        for (int i = 15; i >= 0 && k + 4 < len; i--) {
            buf[k++] = hex[b[i] & 15];
            buf[k++] = '.';
            buf[k++] = hex[b[i] >> 4];
            buf[k++] = '.';
        }
        snprintf(buf + k, len - k, "%s", domain);
        return 0;
    }
    return -1;
}
