/*
 * http - the stats listener: /metrics, /stats and the dashboard over HTTP
 *
 * mxscreen_stats_listen names one loopback address ("127.0.0.1:9325",
 * "[::1]:9325") or a UNIX socket path; empty turns the listener off.
 * http_listen_parse() checks the text (settings_build() calls it, so that
 * `mxscreen -t` refuses a non-loopback address: the listener has no
 * authentication and shows client addresses).  http_listen_open() binds
 * it before the privilege drop (a UNIX socket gets mode 0660 and the
 * unprivileged user as owner); http_start() serves it from the event loop
 * with libevent's evhttp.
 *
 * Requests are bounded: GET and HEAD only (405 otherwise), headers at most
 * HTTP_MAX_HEADERS bytes (413), no body (413), HTTP_TIMEOUT seconds to
 * send a request; a malformed request gets 400 from evhttp.  Paths:
 * "/" (the dashboard, one self-contained page), "/metrics" (Prometheus
 * text), "/stats" (JSON); anything else is 404.  http_route() maps a
 * request path to one of them (a pure function, unit-tested and fuzzed).
 */
#ifndef MXS_HTTP_H
#define MXS_HTTP_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "net/addr.h"
#include "stats/stats.h"

#define HTTP_MAX_HEADERS 8192
#define HTTP_TIMEOUT     5

enum http_route {
    HTTP_ROUTE_DASHBOARD,
    HTTP_ROUTE_METRICS,
    HTTP_ROUTE_STATS,
    HTTP_ROUTE_NOT_FOUND,
};

/* Fills in what the renderings need at the time of a request. */
typedef void (*http_view_fn)(struct stats_view *v, void *ctx);

int http_listen_parse(const char *text, struct hostport *out, char *err, size_t errlen);
int http_listen_open(const struct hostport *hp, const char *text, uid_t uid, gid_t gid, char *err,
                     size_t errlen);
enum http_route http_route(const char *path, size_t len);
struct http *http_start(struct event_base *base, int fd, http_view_fn view, void *ctx);
void http_free(struct http *h);

#endif
