/*
 * prom - the Prometheus text exposition format; see prom.h.
 */
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

#include "stats/prom.h"

/* S escaped for a label value (backslash, quote, newline) or a HELP text
 * (backslash, newline). */
void prom_escape(struct sbuf *out, const char *s, bool help)
{
    for (; *s; s++) {
        if (*s == '\\')
            sbuf_adds(out, "\\\\");
        else if (*s == '\n')
            sbuf_adds(out, "\\n");
        else if (*s == '"' && !help)
            sbuf_adds(out, "\\\"");
        else
            sbuf_addc(out, *s);
    }
}

void prom_family(struct sbuf *out, const char *name, enum prom_type type, const char *help)
{
    static const char *const types[] = {"counter", "gauge", "histogram"};

    sbuf_printf(out, "# HELP %s ", name);
    prom_escape(out, help, true);
    sbuf_printf(out, "\n# TYPE %s %s\n", name, types[type]);
}

/* NAME{labels...,EXTRA="EXTRAV"} with the pairs in LABELS. */
static void sample_name(struct sbuf *out, const char *name, const char *const *labels,
                        const char *extra, const char *extrav)
{
    bool any = false;

    sbuf_adds(out, name);
    for (; labels && labels[0] && labels[1]; labels += 2) {
        sbuf_addc(out, any ? ',' : '{');
        sbuf_printf(out, "%s=\"", labels[0]);
        prom_escape(out, labels[1], false);
        sbuf_addc(out, '"');
        any = true;
    }
    if (extra) {
        sbuf_addc(out, any ? ',' : '{');
        sbuf_printf(out, "%s=\"%s\"", extra, extrav);
        any = true;
    }
    if (any)
        sbuf_addc(out, '}');
}

/* V as Prometheus writes floats: shortest round-trip text, +Inf, -Inf, NaN. */
static void put_f64(struct sbuf *out, double v)
{
    if (isnan(v))
        sbuf_adds(out, "NaN");
    else if (isinf(v))
        sbuf_adds(out, v > 0 ? "+Inf" : "-Inf");
    else {
        /* The shortest of 15 and 17 digits that reads back as V. */
        char buf[32];
        snprintf(buf, sizeof(buf), "%.15g", v);
        if (strtod(buf, NULL) != v)
            snprintf(buf, sizeof(buf), "%.17g", v);
        sbuf_adds(out, buf);
    }
}

void prom_u64(struct sbuf *out, const char *name, const char *const *labels, uint64_t v)
{
    sample_name(out, name, labels, NULL, NULL);
    sbuf_printf(out, " %llu\n", (unsigned long long)v);
}

void prom_f64(struct sbuf *out, const char *name, const char *const *labels, double v)
{
    sample_name(out, name, labels, NULL, NULL);
    sbuf_addc(out, ' ');
    put_f64(out, v);
    sbuf_addc(out, '\n');
}

void prom_hist(struct sbuf *out, const char *name, const char *const *labels,
               const struct stats_hist *h)
{
    struct sbuf n = SBUF_INIT;
    uint64_t cum = 0;
    char le[64];

    sbuf_printf(&n, "%s_bucket", name);
    for (size_t i = 0; i <= h->nbounds; i++) {
        cum += h->bucket[i];
        if (i < h->nbounds)
            snprintf(le, sizeof(le), "%g", h->bounds[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        sample_name(out, sbuf_str(&n), labels, "le", le);
        sbuf_printf(out, " %llu\n", (unsigned long long)cum);
    }
    sbuf_reset(&n);
    sbuf_printf(&n, "%s_sum", name);
    prom_f64(out, sbuf_str(&n), labels, h->sum);
    sbuf_reset(&n);
    sbuf_printf(&n, "%s_count", name);
    prom_u64(out, sbuf_str(&n), labels, h->count);
    sbuf_free(&n);
}
