/*
 * probe - ask the backend for its EHLO keywords now and then; see probe.h.
 */
#include <stdbool.h>
#include <stdlib.h>

#include "handoff/handoff.h"
#include "handoff/probe.h"
#include "log/log.h"
#include "session/settings.h"
#include "util/mem.h"

#define PROBE_RETRY 30 /* seconds between probes while the backend fails them */

struct probe {
    struct event_base *base;
    struct settings *const *current;
    struct settings *st;    /* the settings of the probe in flight (a reference) */
    struct ehlo_caps *caps; /* where the keywords go */
    struct handoff *h;      /* the probe in flight, or NULL */
    struct event *timer;
    bool failing; /* the last probe failed (warned once) */
    char why[512];
};

static void on_timer(evutil_socket_t fd, short what, void *arg);

/* Run again in SECS seconds. */
static void again(struct probe *p, time_t secs)
{
    struct timeval tv = {secs, 0};

    evtimer_add(p->timer, &tv);
}

/* The probe in flight is over. */
static void on_probe(void *ctx, enum handoff_event ev)
{
    struct probe *p = ctx;
    time_t interval = p->st->probe_interval;

    p->h = NULL;
    if (ev == HANDOFF_ENDED) {
        if (p->failing)
            msg_info("backend %s answers EHLO again", p->st->backend_name);
        p->failing = false;
        again(p, interval);
    } else {
        time_t retry = interval < PROBE_RETRY ? interval : PROBE_RETRY;
        if (!p->failing)
            msg_warn("cannot learn the EHLO keywords of backend %s: %s (asking again every %llds)",
                     p->st->backend_name, p->why, (long long)retry);
        p->failing = true;
        again(p, retry);
    }
    settings_unref(p->st);
    p->st = NULL;
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    struct probe *p = arg;

    (void)fd;
    (void)what;
    if (p->h != NULL)
        return;
    p->st = settings_ref(*p->current);
    p->h = handoff_probe(p->base, p->st, p->caps, p->why, sizeof(p->why), on_probe, p);
}

/* Start probing; see probe.h. */
struct probe *probe_start(struct event_base *base, struct settings *const *current,
                          struct ehlo_caps *caps)
{
    struct probe *p = xcalloc(1, sizeof(*p));

    p->base = base;
    p->current = current;
    p->caps = caps;
    p->timer = evtimer_new(base, on_timer, p);
    again(p, 0);
    return p;
}

/* Stop probing; see probe.h. */
void probe_free(struct probe *p)
{
    if (p == NULL)
        return;
    if (p->h)
        handoff_cancel(p->h);
    if (p->st)
        settings_unref(p->st);
    event_free(p->timer);
    free(p);
}
