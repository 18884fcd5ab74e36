/*
 * report_out - postscreen log statistics, the output: a sorted view of the
 * counts (top lists, ranks, names), written as text, JSON or one
 * self-contained HTML page (inline CSS and SVG, nothing fetched); see
 * report.h for the contract.
 */
#include <arpa/inet.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "stats/report_int.h"
#include "util/mem.h"

static const struct {
    const char *key;   /* JSON */
    const char *label; /* text and HTML */
} rows[ROW__COUNT] = {
    {"connect", "CONNECT"},
    {"pass_new", "PASS NEW"},
    {"pass_old", "PASS OLD"},
    {"allowlisted", "ALLOWLISTED / WHITELISTED"},
    {"denylisted", "DENYLISTED / BLACKLISTED"},
    {"allowlist_veto", "ALLOWLIST VETO / WHITELIST VETO"},
    {"pregreet", "PREGREET"},
    {"dnsbl_rank", "DNSBL rank"},
    {"hangup_before_handshake", "HANGUP before SMTP handshake"},
    {"hangup_after_handshake", "HANGUP after SMTP handshake"},
    {"command_pipelining", "COMMAND PIPELINING"},
    {"non_smtp_command", "NON-SMTP COMMAND"},
    {"bare_newline", "BARE NEWLINE"},
    {"command_time_limit", "COMMAND TIME LIMIT"},
    {"command_count_limit", "COMMAND COUNT LIMIT"},
    {"command_length_limit", "COMMAND LENGTH LIMIT"},
    {"noqueue_reject_rcpt", "NOQUEUE: reject: RCPT"},
    {"data_without_valid_rcpt", "DATA without valid RCPT"},
    {"bdat_without_valid_rcpt", "BDAT without valid RCPT"},
    {"disconnect", "DISCONNECT"},
    {"too_many_connections", "reject: too many connections"},
    {"all_server_ports_busy", "reject: all server ports busy"},
    {"all_screening_ports_busy", "reject: all screening ports busy"},
    {"replay", "REPLAY (mxscreen)"},
};

/* The tests, as the rows that say a client failed them. */
static const struct {
    const char *key;
    enum row row;
} tests[] = {
    {"pregreet", ROW_PREGREET},         {"dnsbl", ROW_DNSBL},
    {"pipelining", ROW_PIPELINING},     {"non_smtp", ROW_NON_SMTP},
    {"bare_newline", ROW_BARE_NEWLINE},
};

/* Lines that name no client, counted by kind (JSON key: logparse_kind_name()). */
static const enum logparse_kind event_kinds[] = {
    LP_STRESS_ENTER,    LP_STRESS_LEAVE, LP_CACHE_CLEANUP,     LP_TABLE_CHANGED,
    LP_REPLACE_COMMAND, LP_DISCARD_EHLO, LP_RESPECTFUL_NOTICE, LP_DNSBLOG_LISTED,
};

/* ---- the sorted view that every output format prints ---------------------- */

struct item {
    const char *label; /* a name of the report's, or buf */
    char buf[64];
    uint64_t a, b; /* the item's two numbers (see each list) */
    long num;      /* the rank */
    struct akey key;
};

struct list {
    struct item *v;
    size_t n;
};

struct view {
    struct list addrs;   /* a: rejected connections, b: CONNECT lines */
    struct list nets;    /* a: rejected connections, b: addresses */
    struct list ranks;   /* a: lines (connections), b: addresses; all, by rank */
    struct list sites;   /* dnsblog: a: clients, b: lines */
    struct list blocked; /* a: lines, b: addresses */
    struct list replies; /* a: lines, b: addresses */
    uint64_t pass_new;   /* addresses with PASS NEW */
    uint64_t came_back;  /* ... that had PASS OLD later */
    uint64_t names_overflow;
};

static int cmp_key(const struct akey *x, const struct akey *y)
{
    if (x->family != y->family)
        return x->family < y->family ? -1 : 1;
    return memcmp(x->bytes, y->bytes, 16);
}

/* Most first (a, then b); then by address, or by label. */
static int cmp_items(const void *p, const void *q)
{
    const struct item *x = p, *y = q;

    if (x->a != y->a)
        return x->a > y->a ? -1 : 1;
    if (x->b != y->b)
        return x->b > y->b ? -1 : 1;
    if (x->key.family != 0 || y->key.family != 0)
        return cmp_key(&x->key, &y->key);
    return strcmp(x->label, y->label);
}

static int cmp_ranks(const void *p, const void *q)
{
    const struct item *x = p, *y = q;

    return x->num < y->num ? -1 : x->num > y->num;
}

static void key_text(char *buf, size_t len, const struct akey *k, int bits)
{
    char a[INET6_ADDRSTRLEN];

    if (inet_ntop(k->family == 4 ? AF_INET : AF_INET6, k->bytes, a, sizeof(a)) == NULL)
        snprintf(a, sizeof(a), "?");
    if (bits > 0)
        snprintf(buf, len, "%s/%d", a, bits);
    else
        snprintf(buf, len, "%s", a);
}

/* Sort L and keep its first TOP items (all when TOP is 0). */
static void keep_top(struct list *l, size_t top, int (*cmp)(const void *, const void *))
{
    if (l->n > 1)
        qsort(l->v, l->n, sizeof(*l->v), cmp);
    if (top > 0 && l->n > top)
        l->n = top;
}

/* A list of the names of T: a = lines, b = addresses (SWAP: the other way). */
static struct list names_list(const struct names *t, bool swap)
{
    struct list l = {xcalloc(t->n ? t->n : 1, sizeof(struct item)), t->n};

    for (size_t i = 0; i < t->n; i++) {
        l.v[i].label = t->v[i].text;
        l.v[i].a = swap ? t->v[i].addrs : t->v[i].lines;
        l.v[i].b = swap ? t->v[i].lines : t->v[i].addrs;
        l.v[i].num = t->v[i].num;
    }
    return l;
}

static void view_make(const struct report *r, struct view *v)
{
    size_t top = r->o.top;

    memset(v, 0, sizeof(*v));
    v->addrs.v = xcalloc(r->naddrs ? r->naddrs : 1, sizeof(struct item));
    for (size_t i = 0; i < r->naddrs; i++) {
        const struct addr_rec *a = &r->addrs[i];
        if ((a->flags & ADDR_NEW) != 0) {
            v->pass_new++;
            if ((a->flags & ADDR_OLD) && report_later(a->old_t, a->old_seq, a->new_t, a->new_seq))
                v->came_back++;
        }
        if (a->rejected == 0)
            continue;
        struct item *it = &v->addrs.v[v->addrs.n++];
        it->key = a->key;
        it->a = a->rejected;
        it->b = a->connects;
    }
    keep_top(&v->addrs, top, cmp_items);
    for (size_t i = 0; i < v->addrs.n; i++) {
        key_text(v->addrs.v[i].buf, sizeof(v->addrs.v[i].buf), &v->addrs.v[i].key, 0);
        v->addrs.v[i].label = v->addrs.v[i].buf;
    }

    v->nets.v = xcalloc(r->nnets ? r->nnets : 1, sizeof(struct item));
    for (size_t i = 0; i < r->nnets; i++) {
        struct item *it = &v->nets.v[v->nets.n++];
        it->key = r->nets[i].key;
        it->a = r->nets[i].rejected;
        it->b = r->nets[i].addresses;
    }
    keep_top(&v->nets, top, cmp_items);
    for (size_t i = 0; i < v->nets.n; i++) {
        struct item *it = &v->nets.v[i];
        key_text(it->buf, sizeof(it->buf), &it->key, it->key.family == 4 ? 24 : 64);
        it->label = it->buf;
    }

    v->ranks = names_list(&r->ranks, false);
    keep_top(&v->ranks, 0, cmp_ranks);
    v->sites = names_list(&r->sites, true);
    keep_top(&v->sites, top, cmp_items);
    v->blocked = names_list(&r->blocked, false);
    keep_top(&v->blocked, top, cmp_items);
    v->replies = names_list(&r->replies, false);
    keep_top(&v->replies, 0, cmp_items);
    v->names_overflow =
        r->ranks.overflow + r->sites.overflow + r->blocked.overflow + r->replies.overflow;
}

static void view_free(struct view *v)
{
    free(v->addrs.v);
    free(v->nets.v);
    free(v->ranks.v);
    free(v->sites.v);
    free(v->blocked.v);
    free(v->replies.v);
}

static uint64_t lines_total(const struct report *r)
{
    return r->lines_postscreen + r->lines_dnsblog + r->lines_other;
}

/* "52242" seconds as "14h 30m 42s". */
static void span_text(char *buf, size_t len, int64_t s)
{
    if (s >= 86400)
        snprintf(buf, len, "%lldd %lldh %lldm %llds", (long long)(s / 86400),
                 (long long)(s / 3600 % 24), (long long)(s / 60 % 60), (long long)(s % 60));
    else if (s >= 3600)
        snprintf(buf, len, "%lldh %lldm %llds", (long long)(s / 3600), (long long)(s / 60 % 60),
                 (long long)(s % 60));
    else if (s >= 60)
        snprintf(buf, len, "%lldm %llds", (long long)(s / 60), (long long)(s % 60));
    else
        snprintf(buf, len, "%llds", (long long)s);
}

/* ---- text ------------------------------------------------------------------ */

/* Names from the log as plain text: anything not printable becomes '?'. */
static void text_name(FILE *out, const char *s, int width)
{
    int n = 0;

    for (; *s; s++, n++)
        fputc(*s >= 0x20 && *s < 0x7f ? *s : '?', out);
    for (; n < width; n++)
        fputc(' ', out);
}

static void text_list(FILE *out, const char *title, const char *h1, const char *h2,
                      const struct list *l, const char *prefix)
{
    fprintf(out, "\n%-44s %12s %12s\n", title, h1, h2);
    if (l->n == 0)
        fprintf(out, "  (none)\n");
    for (size_t i = 0; i < l->n; i++) {
        fprintf(out, "  %s", prefix);
        text_name(out, l->v[i].label, 42 - (int)strlen(prefix));
        fprintf(out, " %12llu %12llu\n", (unsigned long long)l->v[i].a,
                (unsigned long long)l->v[i].b);
    }
}

/* Write the report as text for people. */
void report_text(const struct report *r, FILE *out)
{
    struct view v;
    char span[64];

    view_make(r, &v);
    fprintf(out, "mxscreen-stats: %llu lines: %llu postscreen, %llu dnsblog, %llu other",
            (unsigned long long)lines_total(r), (unsigned long long)r->lines_postscreen,
            (unsigned long long)r->lines_dnsblog, (unsigned long long)r->lines_other);
    if (r->lines_unknown > 0)
        fprintf(out, " (%llu postscreen/dnsblog lines not understood)",
                (unsigned long long)r->lines_unknown);
    fputc('\n', out);
    if (r->have_time) {
        span_text(span, sizeof(span), r->last_t - r->first_t);
        fprintf(out, "time: %s to %s (%s)\n", r->first_text, r->last_text, span);
    } else {
        fprintf(out, "time: no time stamps\n");
    }
    fprintf(out, "client addresses: %zu", r->naddrs);
    if (r->untracked > 0)
        fprintf(out,
                " (limit %zu reached: %llu lines about further addresses not counted by "
                "address)",
                r->o.max_addresses, (unsigned long long)r->untracked);
    fputc('\n', out);

    fprintf(out, "\n%-44s %12s %12s\n", "Verdicts", "connections", "addresses");
    for (int i = 0; i < ROW__COUNT; i++)
        fprintf(out, "  %-42s %12llu %12llu\n", rows[i].label, (unsigned long long)r->row_lines[i],
                (unsigned long long)r->row_addrs[i]);
    if (r->legacy > 0)
        fprintf(out,
                "  (of these, %llu lines with the legacy words WHITELISTED, BLACKLISTED or "
                "WHITELIST VETO)\n",
                (unsigned long long)r->legacy);

    fprintf(out, "\n%-44s %12s %12s\n", "Tests failed", "connections", "addresses");
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
        fprintf(out, "  %-42s %12llu %12llu\n", tests[i].key,
                (unsigned long long)r->row_lines[tests[i].row],
                (unsigned long long)r->row_addrs[tests[i].row]);
    fprintf(out, "  %-42s %12llu %12llu\n", "any test", (unsigned long long)r->failed_conns,
            (unsigned long long)r->failed_addrs);
    fprintf(out, "  %-42s %12llu %12llu\n", "rejected (a failed test or denylisted)",
            (unsigned long long)r->rejected_conns, (unsigned long long)r->rejected_addrs);

    fprintf(out, "\nPASS NEW -> PASS OLD: %llu of %llu addresses with PASS NEW came back PASS OLD",
            (unsigned long long)v.came_back, (unsigned long long)v.pass_new);
    if (v.pass_new > 0)
        fprintf(out, " (%.1f%%)", 100.0 * (double)v.came_back / (double)v.pass_new);
    fputc('\n', out);

    text_list(out, "DNSBL ranks", "connections", "addresses", &v.ranks, "rank ");
    text_list(out, "DNSBL sites (dnsblog \"listed by\")", "clients", "lines", &v.sites, "");
    text_list(out, "DNSBL sites in RCPT rejects", "rejects", "addresses", &v.blocked, "");
    text_list(out, "NOQUEUE RCPT replies", "lines", "addresses", &v.replies, "");
    text_list(out, "Top rejected addresses", "rejected", "connections", &v.addrs, "");
    text_list(out, "Top rejected networks", "rejected", "addresses", &v.nets, "");

    fprintf(out, "\n%-44s %12s\n", "Warnings and other lines", "lines");
    for (int i = LP_WARN_NONE + 1; i < LP_WARN__COUNT; i++)
        fprintf(out, "  warning: %-33s %12llu\n", logparse_warning_name(i),
                (unsigned long long)r->warns[i]);
    fprintf(out, "  %-42s %12llu\n", "fatal, panic or error",
            (unsigned long long)r->kinds[LP_FATAL]);
    for (size_t i = 0; i < sizeof(event_kinds) / sizeof(event_kinds[0]); i++)
        fprintf(out, "  %-42s %12llu\n", logparse_kind_name(event_kinds[i]),
                (unsigned long long)r->kinds[event_kinds[i]]);
    fprintf(out, "  %-42s %12llu\n", "postscreen/dnsblog lines not understood",
            (unsigned long long)r->lines_unknown);
    fprintf(out, "  %-42s %12llu\n", "other lines (not postscreen's)",
            (unsigned long long)r->lines_other);
    view_free(&v);
}

/* ---- JSON ------------------------------------------------------------------ */

/* A JSON string; bytes outside printable ASCII are \u00XX escapes. */
static void json_str(FILE *out, const char *s)
{
    fputc('"', out);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(out, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            fprintf(out, "\\u%04x", *p);
        else
            fputc(*p, out);
    }
    fputc('"', out);
}

static void json_list(FILE *out, const char *key, const struct list *l, const char *label,
                      const char *ka, const char *kb, bool last)
{
    fprintf(out, "  \"%s\": [", key);
    for (size_t i = 0; i < l->n; i++) {
        fprintf(out, "%s\n    {\"%s\": ", i ? "," : "", label);
        if (strcmp(label, "rank") == 0)
            fprintf(out, "%ld", l->v[i].num);
        else
            json_str(out, l->v[i].label);
        fprintf(out, ", \"%s\": %llu, \"%s\": %llu}", ka, (unsigned long long)l->v[i].a, kb,
                (unsigned long long)l->v[i].b);
    }
    fprintf(out, "%s]%s\n", l->n ? "\n  " : "", last ? "" : ",");
}

/*
 * Write the report as JSON.  Keys (stable; format "mxscreen-stats/1"):
 *   format, top, lines {total, postscreen, dnsblog, other, unknown},
 *   time {first, last, seconds} (null without time stamps),
 *   addresses {distinct, limit, untracked_lines},
 *   verdicts {ROW: {connections, addresses}} (rows[] above), legacy_words,
 *   tests_failed {pregreet, dnsbl, pipelining, non_smtp, bare_newline, any:
 *   {connections, addresses}}, rejected {connections, addresses},
 *   pass_new_to_old {pass_new_addresses, came_back_pass_old, percent},
 *   dnsbl_ranks [{rank, connections, addresses}],
 *   dnsbl_sites [{site, clients, lines}] (dnsblog),
 *   blocked_using [{site, rejects, addresses}],
 *   noqueue_replies [{reply, lines, addresses}],
 *   top_rejected_addresses [{address, rejected, connections}],
 *   top_rejected_networks [{network, rejected, addresses}],
 *   warnings {total, KIND: n}, events {fatal, stress_enter, ...: n},
 *   names_overflow.
 */
void report_json(const struct report *r, FILE *out)
{
    struct view v;
    uint64_t nwarn = 0;

    view_make(r, &v);
    fprintf(out, "{\n  \"format\": \"mxscreen-stats/1\",\n  \"top\": %zu,\n", r->o.top);
    fprintf(out,
            "  \"lines\": {\"total\": %llu, \"postscreen\": %llu, \"dnsblog\": %llu, "
            "\"other\": %llu, \"unknown\": %llu},\n",
            (unsigned long long)lines_total(r), (unsigned long long)r->lines_postscreen,
            (unsigned long long)r->lines_dnsblog, (unsigned long long)r->lines_other,
            (unsigned long long)r->lines_unknown);
    if (r->have_time) {
        fprintf(out, "  \"time\": {\"first\": ");
        json_str(out, r->first_text);
        fprintf(out, ", \"last\": ");
        json_str(out, r->last_text);
        fprintf(out, ", \"seconds\": %lld},\n", (long long)(r->last_t - r->first_t));
    } else {
        fprintf(out, "  \"time\": {\"first\": null, \"last\": null, \"seconds\": null},\n");
    }
    fprintf(out,
            "  \"addresses\": {\"distinct\": %zu, \"limit\": %zu, \"untracked_lines\": %llu},\n",
            r->naddrs, r->o.max_addresses, (unsigned long long)r->untracked);
    fprintf(out, "  \"verdicts\": {");
    for (int i = 0; i < ROW__COUNT; i++)
        fprintf(out, "%s\n    \"%s\": {\"connections\": %llu, \"addresses\": %llu}", i ? "," : "",
                rows[i].key, (unsigned long long)r->row_lines[i],
                (unsigned long long)r->row_addrs[i]);
    fprintf(out, "\n  },\n  \"legacy_words\": %llu,\n", (unsigned long long)r->legacy);
    fprintf(out, "  \"tests_failed\": {");
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
        fprintf(out, "%s\n    \"%s\": {\"connections\": %llu, \"addresses\": %llu}", i ? "," : "",
                tests[i].key, (unsigned long long)r->row_lines[tests[i].row],
                (unsigned long long)r->row_addrs[tests[i].row]);
    fprintf(out, ",\n    \"any\": {\"connections\": %llu, \"addresses\": %llu}\n  },\n",
            (unsigned long long)r->failed_conns, (unsigned long long)r->failed_addrs);
    fprintf(out, "  \"rejected\": {\"connections\": %llu, \"addresses\": %llu},\n",
            (unsigned long long)r->rejected_conns, (unsigned long long)r->rejected_addrs);
    fprintf(out,
            "  \"pass_new_to_old\": {\"pass_new_addresses\": %llu, \"came_back_pass_old\": %llu, "
            "\"percent\": ",
            (unsigned long long)v.pass_new, (unsigned long long)v.came_back);
    if (v.pass_new > 0)
        fprintf(out, "%.1f},\n", 100.0 * (double)v.came_back / (double)v.pass_new);
    else
        fprintf(out, "null},\n");
    json_list(out, "dnsbl_ranks", &v.ranks, "rank", "connections", "addresses", false);
    json_list(out, "dnsbl_sites", &v.sites, "site", "clients", "lines", false);
    json_list(out, "blocked_using", &v.blocked, "site", "rejects", "addresses", false);
    json_list(out, "noqueue_replies", &v.replies, "reply", "lines", "addresses", false);
    json_list(out, "top_rejected_addresses", &v.addrs, "address", "rejected", "connections", false);
    json_list(out, "top_rejected_networks", &v.nets, "network", "rejected", "addresses", false);
    for (int i = LP_WARN_NONE + 1; i < LP_WARN__COUNT; i++)
        nwarn += r->warns[i];
    fprintf(out, "  \"warnings\": {\"total\": %llu", (unsigned long long)nwarn);
    for (int i = LP_WARN_NONE + 1; i < LP_WARN__COUNT; i++)
        fprintf(out, ", \"%s\": %llu", logparse_warning_name(i), (unsigned long long)r->warns[i]);
    fprintf(out, "},\n  \"events\": {\"fatal\": %llu", (unsigned long long)r->kinds[LP_FATAL]);
    for (size_t i = 0; i < sizeof(event_kinds) / sizeof(event_kinds[0]); i++)
        fprintf(out, ", \"%s\": %llu", logparse_kind_name(event_kinds[i]),
                (unsigned long long)r->kinds[event_kinds[i]]);
    fprintf(out, "},\n  \"names_overflow\": %llu\n}\n", (unsigned long long)v.names_overflow);
    view_free(&v);
}

/* ---- HTML ------------------------------------------------------------------ */

static void html_str(FILE *out, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        switch (*p) {
        case '&':
            fputs("&amp;", out);
            break;
        case '<':
            fputs("&lt;", out);
            break;
        case '>':
            fputs("&gt;", out);
            break;
        case '"':
            fputs("&quot;", out);
            break;
        case '\'':
            fputs("&#39;", out);
            break;
        default:
            if (*p < 0x20 || *p >= 0x7f)
                fprintf(out, "&#x%x;", *p);
            else
                fputc(*p, out);
        }
    }
}

/* A horizontal bar chart (inline SVG) of N labelled values. */
static void html_bars(FILE *out, const char *const *labels, const uint64_t *values, size_t n)
{
    const int label_w = 300, bar_w = 380, row_h = 22;
    uint64_t max = 0;

    for (size_t i = 0; i < n; i++)
        if (values[i] > max)
            max = values[i];
    if (n == 0 || max == 0)
        return;
    fprintf(out, "<svg class=\"bars\" width=\"%d\" height=\"%d\" role=\"img\">\n",
            label_w + bar_w + 90, (int)n * row_h + 4);
    for (size_t i = 0; i < n; i++) {
        int y = (int)i * row_h + 2;
        int w = (int)((double)values[i] * bar_w / (double)max);
        if (values[i] > 0 && w < 1)
            w = 1;
        fprintf(out, "<text x=\"%d\" y=\"%d\" text-anchor=\"end\">", label_w - 8, y + 15);
        html_str(out, labels[i]);
        fputs("</text>", out);
        if (w > 0)
            fprintf(out, "<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\"/>", label_w, y + 2, w,
                    row_h - 6);
        fprintf(out, "<text x=\"%d\" y=\"%d\">%llu</text>\n", label_w + w + 6, y + 15,
                (unsigned long long)values[i]);
    }
    fputs("</svg>\n", out);
}

/* A table and a chart (of column a) of list L. */
static void html_list(FILE *out, const char *title, const char *h0, const char *h1, const char *h2,
                      const struct list *l, const char *prefix)
{
    const char **labels = xcalloc(l->n ? l->n : 1, sizeof(*labels));
    uint64_t *values = xcalloc(l->n ? l->n : 1, sizeof(*values));
    char(*bufs)[NAME_LEN_MAX + 16] = xcalloc(l->n ? l->n : 1, sizeof(*bufs));

    fprintf(out, "<h2>");
    html_str(out, title);
    fprintf(out, "</h2>\n");
    if (l->n == 0) {
        fprintf(out, "<p class=\"none\">none</p>\n");
    } else {
        for (size_t i = 0; i < l->n; i++) {
            snprintf(bufs[i], sizeof(bufs[i]), "%s%s", prefix, l->v[i].label);
            labels[i] = bufs[i];
            values[i] = l->v[i].a;
        }
        html_bars(out, labels, values, l->n);
        fprintf(out, "<table><tr><th>%s</th><th>%s</th><th>%s</th></tr>\n", h0, h1, h2);
        for (size_t i = 0; i < l->n; i++) {
            fprintf(out, "<tr><td>");
            html_str(out, bufs[i]);
            fprintf(out, "</td><td>%llu</td><td>%llu</td></tr>\n", (unsigned long long)l->v[i].a,
                    (unsigned long long)l->v[i].b);
        }
        fprintf(out, "</table>\n");
    }
    free(labels);
    free(values);
    free(bufs);
}

static const char html_css[] =
    "body{font-family:system-ui,sans-serif;margin:2em auto;max-width:60em;color:#222;"
    "background:#fff}\n"
    "h1{font-size:1.5em}h2{font-size:1.15em;margin-top:2em;border-bottom:1px solid #ccc}\n"
    "table{border-collapse:collapse;margin:.5em 0}td,th{padding:.15em .8em;text-align:right}"
    "td:first-child,th:first-child{text-align:left}tr:nth-child(even){background:#f4f4f4}\n"
    "svg.bars{display:block;font-size:12px;margin:.5em 0}svg.bars rect{fill:#4a7ab5}\n"
    ".none{color:#777}.meta td{text-align:left}\n";

/* Write the report as one self-contained HTML page (inline CSS and SVG). */
void report_html(const struct report *r, FILE *out)
{
    struct view v;
    const char *labels[ROW__COUNT];
    uint64_t values[ROW__COUNT];
    char span[64];

    view_make(r, &v);
    fprintf(out,
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            "<title>mxscreen-stats report</title>\n<style>\n%s</style>\n</head>\n<body>\n"
            "<h1>mxscreen-stats report</h1>\n<table class=\"meta\">\n",
            html_css);
    fprintf(out,
            "<tr><th>lines</th><td>%llu: %llu postscreen, %llu dnsblog, %llu other, %llu not "
            "understood</td></tr>\n",
            (unsigned long long)lines_total(r), (unsigned long long)r->lines_postscreen,
            (unsigned long long)r->lines_dnsblog, (unsigned long long)r->lines_other,
            (unsigned long long)r->lines_unknown);
    if (r->have_time) {
        span_text(span, sizeof(span), r->last_t - r->first_t);
        fprintf(out, "<tr><th>time</th><td>");
        html_str(out, r->first_text);
        fprintf(out, " to ");
        html_str(out, r->last_text);
        fprintf(out, " (%s)</td></tr>\n", span);
    }
    fprintf(out, "<tr><th>client addresses</th><td>%zu", r->naddrs);
    if (r->untracked > 0)
        fprintf(out, " (limit reached: %llu lines not counted by address)",
                (unsigned long long)r->untracked);
    fprintf(out, "</td></tr>\n<tr><th>PASS NEW &rarr; PASS OLD</th><td>%llu of %llu addresses",
            (unsigned long long)v.came_back, (unsigned long long)v.pass_new);
    if (v.pass_new > 0)
        fprintf(out, " (%.1f%%)", 100.0 * (double)v.came_back / (double)v.pass_new);
    fprintf(out, "</td></tr>\n</table>\n");

    fprintf(out, "<h2>Verdicts</h2>\n");
    for (int i = 0; i < ROW__COUNT; i++) {
        labels[i] = rows[i].label;
        values[i] = r->row_lines[i];
    }
    html_bars(out, labels, values, ROW__COUNT);
    fprintf(out, "<table><tr><th>verdict</th><th>connections</th><th>addresses</th></tr>\n");
    for (int i = 0; i < ROW__COUNT; i++) {
        fprintf(out, "<tr><td>");
        html_str(out, rows[i].label);
        fprintf(out, "</td><td>%llu</td><td>%llu</td></tr>\n", (unsigned long long)r->row_lines[i],
                (unsigned long long)r->row_addrs[i]);
    }
    fprintf(out, "</table>\n");
    if (r->legacy > 0)
        fprintf(out,
                "<p>%llu lines with the legacy words WHITELISTED, BLACKLISTED or WHITELIST "
                "VETO.</p>\n",
                (unsigned long long)r->legacy);

    fprintf(out, "<h2>Tests failed</h2>\n");
    size_t nt = sizeof(tests) / sizeof(tests[0]);
    for (size_t i = 0; i < nt; i++) {
        labels[i] = tests[i].key;
        values[i] = r->row_lines[tests[i].row];
    }
    html_bars(out, labels, values, nt);
    fprintf(out, "<table><tr><th>test</th><th>connections</th><th>addresses</th></tr>\n");
    for (size_t i = 0; i < nt; i++)
        fprintf(out, "<tr><td>%s</td><td>%llu</td><td>%llu</td></tr>\n", tests[i].key,
                (unsigned long long)r->row_lines[tests[i].row],
                (unsigned long long)r->row_addrs[tests[i].row]);
    fprintf(out, "<tr><td>any test</td><td>%llu</td><td>%llu</td></tr>\n",
            (unsigned long long)r->failed_conns, (unsigned long long)r->failed_addrs);
    fprintf(out,
            "<tr><td>rejected (a failed test or denylisted)</td><td>%llu</td><td>%llu</td>"
            "</tr>\n</table>\n",
            (unsigned long long)r->rejected_conns, (unsigned long long)r->rejected_addrs);

    html_list(out, "DNSBL ranks", "rank", "connections", "addresses", &v.ranks, "rank ");
    html_list(out, "DNSBL sites (dnsblog: addr listed by domain)", "site", "clients", "lines",
              &v.sites, "");
    html_list(out, "DNSBL sites in RCPT rejects (blocked using)", "site", "rejects", "addresses",
              &v.blocked, "");
    html_list(out, "NOQUEUE RCPT replies", "reply", "lines", "addresses", &v.replies, "");
    html_list(out, "Top rejected addresses", "address", "rejected", "connections", &v.addrs, "");
    html_list(out, "Top rejected networks", "network", "rejected", "addresses", &v.nets, "");

    fprintf(out,
            "<h2>Warnings and other lines</h2>\n<table><tr><th>kind</th><th>lines</th></tr>\n");
    for (int i = LP_WARN_NONE + 1; i < LP_WARN__COUNT; i++)
        fprintf(out, "<tr><td>warning: %s</td><td>%llu</td></tr>\n", logparse_warning_name(i),
                (unsigned long long)r->warns[i]);
    fprintf(out, "<tr><td>fatal, panic or error</td><td>%llu</td></tr>\n",
            (unsigned long long)r->kinds[LP_FATAL]);
    for (size_t i = 0; i < sizeof(event_kinds) / sizeof(event_kinds[0]); i++)
        fprintf(out, "<tr><td>%s</td><td>%llu</td></tr>\n", logparse_kind_name(event_kinds[i]),
                (unsigned long long)r->kinds[event_kinds[i]]);
    fprintf(out,
            "<tr><td>postscreen/dnsblog lines not understood</td><td>%llu</td></tr>\n"
            "<tr><td>other lines (not postscreen's)</td><td>%llu</td></tr>\n</table>\n"
            "</body>\n</html>\n",
            (unsigned long long)r->lines_unknown, (unsigned long long)r->lines_other);
    view_free(&v);
}
