/*
 * dnsbl_int - what one DNSBL answer says, as a pure function; shared by
 * dnsbl.c, its unit test and its fuzzer only.
 *
 * dnsbl_parse_answer() takes what c-ares hands to a query's callback (the
 * status and the raw DNS message) and sorts it, without touching any
 * counter, log or lookup:
 *
 *   DNSBL_ANSWER_LISTED      A records, every one in 127.0.0.0/8 outside
 *                            127.255.255.0/24: addrs[0..naddrs), ttl the
 *                            smallest of their TTLs
 *   DNSBL_ANSWER_NOT_LISTED  NXDOMAIN or NODATA (ttl from the SOA records
 *                            of the authority section, as dnsblog takes
 *                            it, -1 when there is none), or a parsed
 *                            answer without A records
 *   DNSBL_ANSWER_ERROR_CODE  an A record in 127.255.255.0/24 or outside
 *                            127.0.0.0/8 (the first such: error_addr): the
 *                            list answered with an error code; not listed
 *   DNSBL_ANSWER_MALFORMED   success, but the message does not parse
 *   DNSBL_ANSWER_FAILED      any other status: a DNS failure
 *
 * naddrs is 0 and ttl -1 except where said above; a TTL is never below
 * -1 (an A record's TTL with its top bit set reads as 0, RFC 2181 section
 * 8; an SOA's such TTL is skipped).  At most DNSBL_MAX_ADDRS A records are
 * looked at.  ABUF may be NULL when ALEN is 0; nothing past ABUF + ALEN is
 * read.
 */
#ifndef MXS_DNSBL_INT_H
#define MXS_DNSBL_INT_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#define DNSBL_MAX_ADDRS 16 /* A records looked at per answer */

enum dnsbl_answer_kind {
    DNSBL_ANSWER_LISTED,
    DNSBL_ANSWER_NOT_LISTED,
    DNSBL_ANSWER_ERROR_CODE,
    DNSBL_ANSWER_MALFORMED,
    DNSBL_ANSWER_FAILED,
};

struct dnsbl_answer {
    enum dnsbl_answer_kind kind;
    uint8_t addrs[DNSBL_MAX_ADDRS][4]; /* LISTED: the A records, network order */
    size_t naddrs;                     /* entries in addrs */
    int ttl;                           /* seconds, -1 when unknown */
    struct in_addr error_addr;         /* ERROR_CODE: the error answer */
};

void dnsbl_parse_answer(int status, const unsigned char *abuf, int alen, struct dnsbl_answer *a);

#endif
