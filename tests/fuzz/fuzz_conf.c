/*
 * fuzz_conf - main.cf text, -o overrides and $name expansion
 * (conf_load_text() and conf_expand() in src/conf/conf.c)
 *
 * Input: main.cf text (cut at a NUL, as conf_load() refuses NUL bytes);
 * after a byte 0x01, "-o name=value" overrides separated by 0x01.
 * Checked:
 *   - a failed load says why in one NUL-terminated line within its buffer
 *     (an -o value may hold a newline of its own)
 *   - a loaded configuration answers for every parameter: a value, a
 *     place, both stress variants; the non-default listing prints
 *   - the whole input, expanded as a value with the loaded (or the
 *     default) configuration, in both stress states: success with a
 *     string of the reported length, or an error message; the same twice
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "fuzz.h"
#include "util/sbuf.h"

#define MAX_OVERRIDES 8

static struct conf *defaults; /* an empty main.cf */
static FILE *devnull;

/* Expand TEXT twice with CF; both runs must agree. */
static void check_expand(const struct conf *cf, const char *text, bool stress)
{
    struct sbuf a = SBUF_INIT, b = SBUF_INIT;
    char ea[300], eb[300];

    ea[0] = eb[0] = '\0';
    int ra = conf_expand(cf, text, stress, &a, ea, sizeof(ea));
    int rb = conf_expand(cf, text, stress, &b, eb, sizeof(eb));
    FUZZ_CHECK(ra == rb && (ra == 0 || ra == -1));
    if (ra == 0) {
        FUZZ_CHECK(strlen(sbuf_str(&a)) == a.len);
        FUZZ_CHECK(a.len == b.len && strcmp(sbuf_str(&a), sbuf_str(&b)) == 0);
    } else {
        FUZZ_CHECK(ea[0] != '\0' && strlen(ea) < sizeof(ea));
        FUZZ_CHECK(strcmp(ea, eb) == 0);
    }
    sbuf_free(&a);
    sbuf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *overrides[MAX_OVERRIDES];
    size_t nover = 0;
    char err[512];

    if (defaults == NULL) {
        fuzz_init();
        defaults = conf_load_text("empty.cf", "", NULL, 0, err, sizeof(err));
        devnull = fopen("/dev/null", "w");
        FUZZ_CHECK(defaults != NULL && devnull != NULL);
    }
    char *text = fuzz_str(data, size);
    char *sep = strchr(text, '\x01');
    if (sep) {
        *sep = '\0';
        for (char *o = sep + 1; o && nover < MAX_OVERRIDES;) {
            overrides[nover++] = o;
            if ((o = strchr(o, '\x01')) != NULL)
                *o++ = '\0';
        }
    }

    memset(err, 'X', sizeof(err));
    struct conf *cf = conf_load_text("fuzz.cf", text, overrides, nover, err, sizeof(err));
    if (cf == NULL) {
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
        FUZZ_CHECK(err[0] != '\0');
        /* One line: main.cf values cannot hold a newline (an -o value can). */
        FUZZ_CHECK(nover > 0 || strchr(err, '\n') == NULL);
    } else {
        char where[512];
        for (int id = 0; id < P__COUNT; id++) {
            FUZZ_CHECK(conf_str(cf, (enum param_id)id) != NULL);
            FUZZ_CHECK(conf_where(cf, (enum param_id)id, where, sizeof(where)) == where);
            (void)conf_num_stress(cf, (enum param_id)id, true);
            (void)conf_is_set(cf, (enum param_id)id);
        }
        conf_print_nondefault(cf, devnull);
    }
    check_expand(cf ? cf : defaults, text, false);
    check_expand(cf ? cf : defaults, text, true);
    conf_free(cf);
    free(text);
    return 0;
}
