/*
 * fuzz_dns_answer - a DNSBL's DNS answer, as mxscreen reads it
 * (dnsbl_parse_answer() in src/dnsbl/dnsbl.c, then the score of
 * src/dnsbl/sites.c)
 *
 * Input: a DNS message as a list's server (or anyone who can spoof it)
 * sends it.  It is read as c-ares would hand it over with each status
 * that matters: success (A records), NXDOMAIN and NODATA (the negative
 * TTL from the SOA records), and a failure.  Checked (dnsbl_int.h):
 *   - LISTED exactly when there are addresses; at most DNSBL_MAX_ADDRS,
 *     each in 127.0.0.0/8 and none in 127.255.255.0/24
 *   - ERROR_CODE names an address that is an error code
 *   - a TTL is -1 (unknown) or a sane non-negative value; no addresses
 *     and no TTL with MALFORMED and FAILED
 *   - the answer folded into a score gives a verdict TTL within
 *     [min_ttl, max_ttl]
 */
#include <ares.h>
#include <string.h>

#include "dnsbl/dnsbl_int.h"
#include "dnsbl/sites.h"
#include "fuzz.h"

static struct dnsbl_sites *sites;

static bool is_error_code(const uint8_t a[4])
{
    return a[0] != 127 || (a[1] == 255 && a[2] == 255);
}

/* Classify ABUF with STATUS and check the result. */
static void check(int status, const uint8_t *abuf, size_t size)
{
    struct dnsbl_answer a;

    memset(&a, 0xa5, sizeof(a)); /* nothing may be left unset */
    dnsbl_parse_answer(status, size ? abuf : NULL, (int)size, &a);
    FUZZ_CHECK(a.naddrs <= DNSBL_MAX_ADDRS);
    FUZZ_CHECK(a.ttl >= -1);
    switch (a.kind) {
    case DNSBL_ANSWER_LISTED:
        FUZZ_CHECK(status == ARES_SUCCESS);
        FUZZ_CHECK(a.naddrs > 0 && a.ttl >= 0);
        for (size_t i = 0; i < a.naddrs; i++)
            FUZZ_CHECK(!is_error_code(a.addrs[i]));
        break;
    case DNSBL_ANSWER_NOT_LISTED:
        FUZZ_CHECK(status == ARES_SUCCESS || status == ARES_ENOTFOUND || status == ARES_ENODATA);
        FUZZ_CHECK(a.naddrs == 0);
        if (status == ARES_SUCCESS)
            FUZZ_CHECK(a.ttl == -1);
        break;
    case DNSBL_ANSWER_ERROR_CODE:
        FUZZ_CHECK(status == ARES_SUCCESS);
        FUZZ_CHECK(is_error_code((const uint8_t *)&a.error_addr.s_addr));
        FUZZ_CHECK(a.naddrs == 0 && a.ttl == -1);
        break;
    case DNSBL_ANSWER_MALFORMED:
        FUZZ_CHECK(status == ARES_SUCCESS);
        FUZZ_CHECK(a.naddrs == 0 && a.ttl == -1);
        break;
    case DNSBL_ANSWER_FAILED:
        FUZZ_CHECK(status != ARES_SUCCESS && status != ARES_ENOTFOUND && status != ARES_ENODATA);
        FUZZ_CHECK(a.naddrs == 0 && a.ttl == -1);
        break;
    default:
        FUZZ_CHECK(!"a known kind");
    }

    /* As on_answer() then complete(): fold it into a score, take the TTL. */
    struct dnsbl_score sc;
    dnsbl_score_init(&sc);
    for (size_t d = 0; d < sites->ndomains; d++)
        dnsbl_score_add(&sc, sites, d, (const uint8_t(*)[4])a.addrs, a.naddrs, a.ttl);
    int ttl = dnsbl_score_ttl(&sc, 60, 3600);
    FUZZ_CHECK(ttl >= 60 && ttl <= 3600);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int statuses[] = {ARES_SUCCESS, ARES_ENOTFOUND, ARES_ENODATA, ARES_ESERVFAIL,
                                   ARES_ETIMEOUT};

    if (sites == NULL) {
        char err[256];
        fuzz_init();
        sites = dnsbl_sites_parse("zen.example=127.0.0.[2..11]*3 zen.example*1 "
                                  "wl.example=127.0.[0..255].[2;3]*-2",
                                  NULL, err, sizeof(err));
        FUZZ_CHECK(sites != NULL);
    }
    if (size > 65535)
        return 0;
    /* libFuzzer's buffer has the input's exact size: a read past it is caught. */
    for (size_t i = 0; i < sizeof(statuses) / sizeof(statuses[0]); i++)
        check(statuses[i], data, size);
    return 0;
}
