/*
 * verdict - test bookkeeping shared by the flow, the engine and the cache;
 * see verdict.h.
 */
#include <stdio.h>
#include <stdlib.h>

#include "session/verdict.h"

/* A fresh session: nothing due, passed or failed; postscreen's default replies. */
void verdict_init(struct verdict *v)
{
    *v = (struct verdict){
        .rcpt_reply = "450 4.3.2 Service currently unavailable\r\n",
        .final_reply = "421 4.3.2 Service currently unavailable\r\n",
    };
}

/* Which enabled tests are due at NOW; a "new" stamp marks the client new. */
void verdict_todo(struct verdict *v, const time_t *stamps, time_t now, unsigned enabled)
{
    v->todo = 0;
    v->is_new = false;
    for (int t = 0; t < TEST__COUNT; t++) {
        if (stamps[t] == STAMP_NEW)
            v->is_new = true;
        if ((enabled & TEST_BIT(t)) && now > stamps[t])
            v->todo |= TEST_BIT(t);
    }
}

/* A client never seen: every stamp "new", every enabled test due. */
void verdict_new(struct verdict *v, time_t *stamps, unsigned enabled)
{
    for (int t = 0; t < TEST__COUNT; t++)
        stamps[t] = STAMP_NEW;
    verdict_todo(v, stamps, STAMP_NEW + 1, enabled);
}

/*
 * Parse a cache record leniently, as postscreen does: a missing or
 * garbled field (a record from a version with fewer tests) reads as
 * "disabled when written".
 */
void verdict_parse(const char *text, time_t *stamps)
{
    const char *p = text;

    /* Field by field as postscreen's strtoul() loop: a field without digits
     * reads as 0 ("new"), garbage after the digits as disabled, and after
     * garbage every later field is disabled too. */
    for (int t = 0; t < TEST__COUNT; t++) {
        const char *q = p, *end = p;
        unsigned long long v = 0;
        bool neg = false, overflow = false;

        while (*q == ' ' || (*q >= '\t' && *q <= '\r'))
            q++;
        if (*q == '+' || *q == '-')
            neg = *q++ == '-';
        if (*q >= '0' && *q <= '9') {
            while (*q >= '0' && *q <= '9') {
                unsigned d = (unsigned)(*q++ - '0');
                if (v > (0x7fffffffffffffffULL - d) / 10)
                    overflow = true;
                else
                    v = v * 10 + d;
            }
            end = q;
        }
        bool bad = *p == '\0' || (*end != '\0' && *end != ';') || overflow;
        stamps[t] = bad ? STAMP_DISABLED : neg ? -(time_t)v : (time_t)v;
        p = *end == ';' ? end + 1 : end;
    }
}

/* Format the record; tests still "new" but disabled are written as 1. */
size_t verdict_format(char *buf, size_t len, time_t *stamps, unsigned enabled)
{
    for (int t = 0; t < TEST__COUNT; t++)
        if (!(enabled & TEST_BIT(t)) && stamps[t] == STAMP_NEW)
            stamps[t] = STAMP_DISABLED;
    int n =
        snprintf(buf, len, "%lld;%lld;%lld;%lld;%lld", (long long)stamps[0], (long long)stamps[1],
                 (long long)stamps[2], (long long)stamps[3], (long long)stamps[4]);
    return n < 0 ? 0 : (size_t)n;
}

/* Did anything fail, a test or the lists? */
bool verdict_any_fail(const struct verdict *v)
{
    return v->fail != 0 || v->other_fail;
}

/* At least one test passed and every due test passed. */
bool verdict_all_passed(const struct verdict *v)
{
    return v->pass != 0 && v->pass == v->todo;
}
