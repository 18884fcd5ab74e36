/*
 * report - postscreen log statistics: counting parsed lines (report.c), and
 * the report as text, JSON or one self-contained HTML page (report_out.c)
 *
 * report_new() makes an empty report; report_add() counts one parsed line
 * (every line, other lines too); report_text(), report_json() and
 * report_html() write the report; report_free() releases it (NULL is
 * harmless).  The report owns all its memory; the event given to
 * report_add() is not kept.
 *
 * Memory grows with the number of distinct client addresses, never with
 * the number of lines: one small record per address in a hash table, one
 * per /24 (IPv4) or /64 (IPv6) network with rejected clients, and sets of
 * (list, address) pairs for the distinct counts.  At most max_addresses
 * addresses are tracked; lines about further addresses are still counted
 * as lines, and the report says how many addresses it did not track.
 * Names from the log (DNSBL domains, reply texts) are kept up to a fixed
 * number each.  Allocation failure panics (util/mem.h).
 *
 * Each verdict line stands for one connection (a NOQUEUE RCPT line too:
 * the second reject of a connection is counted among the reply texts,
 * not again as a connection).  A connection is "rejected" when it failed
 * a test (PREGREET, DNSBL rank, COMMAND PIPELINING, NON-SMTP COMMAND,
 * BARE NEWLINE) or was DENYLISTED; a connection is told from another from
 * the same address by its port (the last few ports of each address are
 * remembered).
 * The JSON keys are listed in report_json()'s comment and in README.md.
 */
#ifndef MXS_REPORT_H
#define MXS_REPORT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "stats/logparse.h"

struct report_opts {
    size_t top;           /* entries in each top list (-n) */
    size_t max_addresses; /* addresses tracked at most (-m) */
    int64_t now;          /* the clock, for the year of syslog time stamps */
};

struct report;

struct report *report_new(const struct report_opts *opts);
void report_add(struct report *r, const struct logparse_event *ev);
void report_text(const struct report *r, FILE *out);
void report_json(const struct report *r, FILE *out);
void report_html(const struct report *r, FILE *out);
void report_free(struct report *r);

#endif
