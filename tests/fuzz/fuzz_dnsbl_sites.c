/*
 * fuzz_dnsbl_sites - postscreen_dnsbl_sites, reply filters, the score and
 * the query names (src/dnsbl/sites.c)
 *
 * Input: sites text, a NUL, a reply filter text, a NUL, then answer
 * bytes: per domain, a count N (0..4), N IPv4 addresses and a 2-byte TTL.
 * Checked:
 *   - a parse failure says why; a parsed list has distinct domains, each
 *     a valid host name with a reply name, and every entry's domain index
 *     in range
 *   - the score of the answers equals the sum of the weights of the
 *     entries whose filter matches (saturating at INT_MIN and INT_MAX),
 *     and the verdict TTL is clamped
 *   - a parsed filter, written back as "[a;b;...].[...].[...].[...]",
 *     parses to the same bitmap; dnsbl_filter_match() reads that bitmap
 *   - query names are NUL-terminated within their buffer
 */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dnsbl/sites.h"
#include "fuzz.h"
#include "util/sbuf.h"

static struct table *reply_map;

/* Write an octet bitmap back as a filter text. */
static void filter_text(const uint8_t octet[4][32], struct sbuf *out)
{
    for (int f = 0; f < 4; f++) {
        const char *sep = "[";
        if (f)
            sbuf_addc(out, '.');
        for (int v = 0; v < 256; v++)
            if (octet[f][v >> 3] & (1u << (v & 7))) {
                sbuf_printf(out, "%s%d", sep, v);
                sep = ";";
            }
        sbuf_adds(out, "]");
    }
}

/* Parse a filter, write it back, parse again: the same bitmap. */
static void check_filter(const char *text, const uint8_t *addrs, size_t naddrs)
{
    uint8_t octet[4][32], again[4][32];
    char err[300];

    memset(err, 'X', sizeof(err));
    if (dnsbl_filter_parse(text, octet, err, sizeof(err)) < 0) {
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
        return;
    }
    for (int f = 0; f < 4; f++) {
        bool any = false;
        for (int i = 0; i < 32; i++)
            any |= octet[f][i] != 0;
        FUZZ_CHECK(any); /* every field accepts some value */
    }
    struct sbuf b = SBUF_INIT;
    filter_text(octet, &b);
    FUZZ_CHECK(dnsbl_filter_parse(sbuf_str(&b), again, err, sizeof(err)) == 0);
    FUZZ_CHECK(memcmp(octet, again, sizeof(octet)) == 0);
    sbuf_free(&b);
    for (size_t i = 0; i < naddrs; i++) {
        const uint8_t *a = addrs + 4 * i;
        bool want = true;
        for (int f = 0; f < 4; f++)
            want = want && (octet[f][a[f] >> 3] & (1u << (a[f] & 7)));
        FUZZ_CHECK(dnsbl_filter_match((const uint8_t(*)[32])octet, a) == want);
    }
}

/* Postfix's valid_hostname() alphabet, at least. */
static bool hostname_chars(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-' && *s != '.')
            return false;
    return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[300];

    if (reply_map == NULL) {
        fuzz_init();
        reply_map = table_open("inline:{zen.example=zen, {a.example=A list}}", err, sizeof(err));
        FUZZ_CHECK(reply_map != NULL);
    }
    const uint8_t *end = data + size, *p = data;
    const uint8_t *nul1 = memchr(p, '\0', size);
    const uint8_t *ftext = nul1 ? nul1 + 1 : end;
    const uint8_t *nul2 = nul1 ? memchr(ftext, '\0', (size_t)(end - ftext)) : NULL;
    const uint8_t *answers = nul2 ? nul2 + 1 : end;
    char *text = fuzz_str(data, size);
    char *filter = fuzz_str(ftext, (size_t)(end - ftext));

    check_filter(filter, answers, (size_t)(end - answers) / 4);

    memset(err, 'X', sizeof(err));
    struct dnsbl_sites *s =
        dnsbl_sites_parse(text, (data[0] & 1) ? reply_map : NULL, err, sizeof(err));
    if (s == NULL) {
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
        goto done;
    }
    FUZZ_CHECK(s->ndomains <= s->nsites);
    for (size_t i = 0; i < s->ndomains; i++) {
        FUZZ_CHECK(hostname_chars(s->domains[i].name) && s->domains[i].reply_name != NULL);
        for (size_t j = 0; j < i; j++)
            FUZZ_CHECK(strcmp(s->domains[i].name, s->domains[j].name) != 0);
    }
    for (size_t i = 0; i < s->nsites; i++)
        FUZZ_CHECK(s->sites[i].domain < s->ndomains && s->sites[i].text != NULL);

    /* Score the answers, and the same sum computed here in 64 bits. */
    struct dnsbl_score sc;
    long long want = 0;
    dnsbl_score_init(&sc);
    const uint8_t *q = answers;
    for (size_t d = 0; d < s->ndomains; d++) {
        uint8_t addrs[4][4];
        size_t n = 0;
        int ttl = -1;
        if (q < end) {
            n = *q++ % 5;
            if ((size_t)(end - q) < 4 * n + 2)
                n = 0;
            else {
                memcpy(addrs, q, 4 * n);
                q += 4 * n;
                ttl = (q[0] << 8 | q[1]) - 1;
                q += 2;
            }
        }
        dnsbl_score_add(&sc, s, d, (const uint8_t(*)[4])addrs, n, ttl);
        /* Newest entry first, as postscreen; the sum saturates (sites.h). */
        for (size_t i = s->nsites; i-- > 0 && n > 0;) {
            const struct dnsbl_site *site = &s->sites[i];
            bool match = site->domain == d && !site->has_filter;
            for (size_t k = 0; k < n && site->domain == d && !match; k++)
                match = dnsbl_filter_match(site->octet, addrs[k]);
            if (match) {
                want += site->weight;
                want = want > INT_MAX ? INT_MAX : want < INT_MIN ? INT_MIN : want;
            }
        }
        char name[300];
        char addr[64];
        snprintf(addr, sizeof(addr), "%u.2.0.192", (unsigned)(d & 0xff));
        size_t cap = (size_t)(end - p) % sizeof(name) + 1;
        if (dnsbl_query_name(name, cap, addr, s->domains[d].name) == 0)
            FUZZ_CHECK(strlen(name) < cap);
        if (dnsbl_query_name(name, sizeof(name), "2001:db8::1", s->domains[d].name) == 0)
            FUZZ_CHECK(strlen(name) < sizeof(name));
    }
    FUZZ_CHECK(sc.total == want);
    int ttl = dnsbl_score_ttl(&sc, 60, 86400);
    FUZZ_CHECK(ttl >= 60 && ttl <= 86400);
    dnsbl_sites_free(s);
done:
    free(text);
    free(filter);
    return 0;
}
