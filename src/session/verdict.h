/*
 * verdict - which tests a client must take, has passed or has failed
 *
 * postscreen keeps, per client address, one expiry time per test
 * (pregreet, DNSBL, pipelining, non-SMTP command, bare newline) and, per
 * session, which tests are due ("todo"), passed, failed or skipped for
 * the rest of the session.  This module holds those rules (spec §1.5,
 * §5.1, §5.2) so that the session flow, the SMTP engine and the cache
 * agree on them:
 *
 *   verdict_new()      all stamps "new" (never passed), then verdict_todo()
 *   verdict_todo()     which enabled tests are due at NOW
 *   verdict_parse()    a cache record "t;t;t;t;t" into stamps (lenient)
 *   verdict_format()   stamps into a record; new-but-disabled tests get 1
 *   verdict_all_passed()  every due test passed (and at least one)
 *
 * Stamps: 0 = never passed, 1 = never passed while disabled, else the
 * Unix time at which the pass expires.
 */
#ifndef MXS_VERDICT_H
#define MXS_VERDICT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

enum test_id {
    TEST_PREGREET,
    TEST_DNSBL,
    TEST_PIPELINING,
    TEST_NON_SMTP,
    TEST_BARE_NEWLINE,
    TEST__COUNT,
};

#define TEST_BIT(t) (1u << (t))
#define TEST_MASK_DEEP                                                                             \
    (TEST_BIT(TEST_PIPELINING) | TEST_BIT(TEST_NON_SMTP) | TEST_BIT(TEST_BARE_NEWLINE))
#define TEST_MASK_EARLY (TEST_BIT(TEST_PREGREET) | TEST_BIT(TEST_DNSBL))

#define STAMP_NEW          ((time_t)0)
#define STAMP_DISABLED     ((time_t)1)
#define VERDICT_RECORD_MAX (TEST__COUNT * 21)

struct verdict {
    unsigned todo;           /* tests due in this session */
    unsigned pass;           /* tests passed in this session */
    unsigned fail;           /* tests failed in this session */
    unsigned skip;           /* failed tests not repeated in this session */
    bool other_fail;         /* denylisted (enforce) or allowlist veto */
    bool is_new;             /* some test was never passed (PASS NEW) */
    bool noforward;          /* never hand this session to the backend */
    bool hangup;             /* the client went away: no final reply */
    const char *rcpt_reply;  /* reply to RCPT and VRFY (CRLF-terminated) */
    const char *final_reply; /* reply when mxscreen ends the session */
};

void verdict_init(struct verdict *v);
void verdict_new(struct verdict *v, time_t *stamps, unsigned enabled);
void verdict_todo(struct verdict *v, const time_t *stamps, time_t now, unsigned enabled);
void verdict_parse(const char *text, time_t *stamps);
size_t verdict_format(char *buf, size_t len, time_t *stamps, unsigned enabled);
bool verdict_any_fail(const struct verdict *v);
bool verdict_all_passed(const struct verdict *v);

#endif
