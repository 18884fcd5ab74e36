/*
 * fuzz_verdict - the allowlist cache record codec (verdict_parse() and
 * verdict_format() in src/session/verdict.c)
 *
 * Input: a cache record as read back from LMDB or Redis (whoever can
 * write the store can write anything), cut at a NUL; its last byte also
 * picks the enabled tests.  Checked:
 *   - verdict_parse() agrees with a reference built on strtoll(), the
 *     strtoul() loop postscreen runs (a field without digits is 0, garbage
 *     after the digits or an overflow is "disabled", and so is every
 *     later field once the text stops advancing)
 *   - format(parse(x)) fits VERDICT_RECORD_MAX, and parses back to the
 *     same stamps; formatting again gives the same text
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "session/verdict.h"

/* The same record read with strtoll(); see the contract above. */
static void ref_parse(const char *text, time_t *stamps)
{
    const char *p = text;

    for (int t = 0; t < TEST__COUNT; t++) {
        char *end;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        /* -2^63 does not come back from "%lld" of any stamp mxscreen
         * writes; verdict_parse() reads it as an overflow. */
        bool overflow = errno == ERANGE || v == INT64_MIN;
        bool bad = *p == '\0' || (*end != '\0' && *end != ';') || overflow;
        stamps[t] = bad ? STAMP_DISABLED : (time_t)v;
        p = *end == ';' ? end + 1 : end;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    time_t got[TEST__COUNT], want[TEST__COUNT], again[TEST__COUNT];
    char buf[VERDICT_RECORD_MAX + 1], buf2[VERDICT_RECORD_MAX + 1];
    unsigned enabled = size ? data[size - 1] & (TEST_MASK_EARLY | TEST_MASK_DEEP) : 0;
    char *text = fuzz_str(data, size);

    verdict_parse(text, got);
    ref_parse(text, want);
    FUZZ_CHECK(memcmp(got, want, sizeof(got)) == 0);

    size_t n = verdict_format(buf, sizeof(buf), got, enabled);
    FUZZ_CHECK(n > 0 && n < sizeof(buf) && strlen(buf) == n);
    for (int t = 0; t < TEST__COUNT; t++)
        FUZZ_CHECK((enabled & TEST_BIT(t)) || got[t] != STAMP_NEW);
    verdict_parse(buf, again);
    FUZZ_CHECK(memcmp(got, again, sizeof(got)) == 0);
    size_t n2 = verdict_format(buf2, sizeof(buf2), again, enabled);
    FUZZ_CHECK(n2 == n && strcmp(buf, buf2) == 0);
    free(text);
    return 0;
}
