/*
 * fuzz_logparse - one log line in, one event out (logparse_line() and
 * logparse_epoch() in src/stats/logparse.c, the parser of mxscreen-stats)
 *
 * Input: one line of a log (peer text is in every log line, so anyone
 * who can connect writes part of it).  Checked:
 *   - it is read over (pointer, length): the input's exact bytes, no NUL
 *   - kind and warning are in range and have names; every span lies in
 *     the line; a line that is not postscreen's or dnsblog's is LP_OTHER
 *     with nothing else set
 *   - an address is set exactly for the kinds that carry one, and its text
 *     is canonical: it parses back to the same bytes; ports fit 16 bits
 *   - a valid time stamp has its fields in range, and logparse_epoch()
 *     gives a result with the syslog year rule
 *   - the same line ending in CR LF parses to the same event
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "stats/logparse.h"

static void check_span(struct logparse_span s, const char *line, size_t len)
{
    if (s.p == NULL) {
        FUZZ_CHECK(s.len == 0);
        return;
    }
    FUZZ_CHECK(s.p >= line && s.len <= len && (size_t)(s.p - line) <= len - s.len);
}

static void check_addr(const struct logparse_addr *a)
{
    unsigned char back[16];

    if (a->family == 0)
        return;
    FUZZ_CHECK(a->family == AF_INET || a->family == AF_INET6);
    FUZZ_CHECK(memchr(a->text, '\0', sizeof(a->text)) != NULL);
    FUZZ_CHECK(inet_pton(a->family, a->text, back) == 1);
    FUZZ_CHECK(memcmp(back, a->bytes, a->family == AF_INET ? 4 : 16) == 0);
}

/* The kinds that name the client's address. */
static bool has_client(enum logparse_kind k)
{
    return k != LP_OTHER && k != LP_UNKNOWN && k != LP_STRESS_ENTER && k != LP_STRESS_LEAVE &&
           k != LP_CACHE_CLEANUP && k != LP_TABLE_CHANGED && k != LP_WARNING && k != LP_FATAL;
}

/* Offset of span S in LINE, or -1 when absent. */
static long off(struct logparse_span s, const char *line)
{
    return s.p ? (long)(s.p - line) : -1;
}

/* Do two events of the same line (in two buffers) say the same? */
static bool same_event(const struct logparse_event *a, const char *la,
                       const struct logparse_event *b, const char *lb)
{
    const struct logparse_span *sa[] = {&a->time.text, &a->host,      &a->tag,   &a->text,
                                        &a->secs,      &a->reply,     &a->name,  &a->detail,
                                        &a->sender,    &a->recipient, &a->proto, &a->helo};
    const struct logparse_span *sb[] = {&b->time.text, &b->host,      &b->tag,   &b->text,
                                        &b->secs,      &b->reply,     &b->name,  &b->detail,
                                        &b->sender,    &b->recipient, &b->proto, &b->helo};

    for (size_t i = 0; i < sizeof(sa) / sizeof(sa[0]); i++)
        if (off(*sa[i], la) != off(*sb[i], lb) || sa[i]->len != sb[i]->len)
            return false;
    return a->source == b->source && a->kind == b->kind && a->warn == b->warn &&
           a->port == b->port && a->server_port == b->server_port &&
           memcmp(&a->client, &b->client, sizeof(a->client)) == 0 &&
           memcmp(&a->server, &b->server, sizeof(a->server)) == 0 && a->number == b->number &&
           a->number2 == b->number2 && a->reply_code == b->reply_code && a->legacy == b->legacy &&
           a->after_handshake == b->after_handshake;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *line = (const char *)data;
    struct logparse_opts opts = {.extra_tag = "custom/screen"};
    struct logparse_event ev, ev2;

    logparse_line(line, size, &opts, &ev);
    FUZZ_CHECK(ev.kind >= LP_OTHER && ev.kind < LP__COUNT);
    FUZZ_CHECK(ev.warn >= LP_WARN_NONE && ev.warn < LP_WARN__COUNT);
    FUZZ_CHECK(strcmp(logparse_kind_name(ev.kind), "?") != 0);
    FUZZ_CHECK(strcmp(logparse_warning_name(ev.warn), "?") != 0);
    FUZZ_CHECK((ev.warn != LP_WARN_NONE) == (ev.kind == LP_WARNING));
    const struct logparse_span spans[] = {ev.time.text, ev.host,      ev.tag,   ev.text,
                                          ev.secs,      ev.reply,     ev.name,  ev.detail,
                                          ev.sender,    ev.recipient, ev.proto, ev.helo};
    for (size_t i = 0; i < sizeof(spans) / sizeof(spans[0]); i++)
        check_span(spans[i], line, size);
    if (ev.source == LP_SRC_NONE)
        FUZZ_CHECK(ev.kind == LP_OTHER && ev.client.family == 0);
    else
        FUZZ_CHECK(ev.kind != LP_OTHER && ev.tag.len > 0);
    check_addr(&ev.client);
    check_addr(&ev.server);
    FUZZ_CHECK((ev.client.family != 0) == has_client(ev.kind));
    FUZZ_CHECK((ev.server.family != 0) == (ev.kind == LP_CONNECT));
    FUZZ_CHECK(ev.port <= 65535 && ev.server_port <= 65535);

    if (ev.time.valid) {
        const struct logparse_time *t = &ev.time;
        FUZZ_CHECK(t->mon >= 1 && t->mon <= 12 && t->mday >= 1 && t->mday <= 31);
        FUZZ_CHECK(t->hour <= 23 && t->min <= 59 && t->sec <= 60);
        FUZZ_CHECK(t->usec >= 0 && t->usec <= 999999);
        FUZZ_CHECK(t->offset_min > -24 * 60 && t->offset_min < 24 * 60);
        /* Any clock from 1970 to the year 4000. */
        int64_t now = size >= 8 ? (int64_t)((uint64_t)data[size - 1] << 27 |
                                            (uint64_t)data[size - 2] << 19 | data[size - 3])
                                : 1700000000;
        int64_t e = logparse_epoch(t, now);
        if (t->year == 0)
            FUZZ_CHECK(e <= now + 86400 + 86400 && e > now - 367 * 86400 - 86400);
    }

    /* The same line with CR LF after it, in a buffer of its own. */
    char *copy = malloc(size + 2);
    if (size)
        memcpy(copy, data, size);
    memcpy(copy + size, "\r\n", 2);
    logparse_line(copy, size + 2, &opts, &ev2);
    FUZZ_CHECK(same_event(&ev, line, &ev2, copy));
    free(copy);
    return 0;
}
