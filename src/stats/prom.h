/*
 * prom - the Prometheus text exposition format (version 0.0.4), written
 *
 * prom_family() writes a metric family's "# HELP" and "# TYPE" lines;
 * prom_u64() and prom_f64() write one sample, with labels given as a
 * NULL-terminated list of name, value pairs (values are escaped: backslash,
 * double quote and newline); prom_hist() writes a histogram's cumulative
 * "_bucket" samples (with "le"), "_sum" and "_count".  Names are the
 * caller's constants and are not checked here; the unit tests and
 * `promtool check metrics` check them.
 */
#ifndef MXS_PROM_H
#define MXS_PROM_H

#include <stdbool.h>
#include <stdint.h>

#include "stats/stats.h"
#include "util/sbuf.h"

enum prom_type {
    PROM_COUNTER,
    PROM_GAUGE,
    PROM_HISTOGRAM,
};

void prom_family(struct sbuf *out, const char *name, enum prom_type type, const char *help);
void prom_u64(struct sbuf *out, const char *name, const char *const *labels, uint64_t v);
void prom_f64(struct sbuf *out, const char *name, const char *const *labels, double v);
void prom_hist(struct sbuf *out, const char *name, const char *const *labels,
               const struct stats_hist *h);
void prom_escape(struct sbuf *out, const char *s, bool help);

#endif
