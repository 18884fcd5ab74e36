/*
 * http - the stats listener: /metrics, /stats and the dashboard over HTTP
 *
 * mxscreen_stats_listen names one loopback address ("127.0.0.1:9325",
 * "[::1]:9325") or a UNIX socket path; empty turns the listener off.
 * http_listen_parse() checks the text (settings_build() calls it, so that
 * `mxscreen -t` refuses a non-loopback address: the listener has no
 * authentication and shows client addresses).  http_listen_open() binds
 * it before the privilege drop (a UNIX socket gets mode 0660 and the
 * unprivileged user as owner); http_start() serves it from the event loop.
 *
 * A small HTTP/1.x server of its own, not libevent's evhttp: evhttp 2.1
 * has a time limit per read but none per request (a request trickled in a
 * byte at a time stays open for ever) and no cap on connections, and the
 * listener shares the descriptors and the loop of the SMTP service.  Here
 * everything is bounded: at most HTTP_MAX_CONNS connections (more are
 * closed at once), HTTP_TIMEOUT seconds for the whole exchange (the
 * request read, the response written), HTTP_MAX_HEADERS bytes of request,
 * one request per connection ("Connection: close").
 *
 * http_parse() reads one request head over (pointer, length): HTTP_MORE
 * while it is incomplete, HTTP_OK with the method and the path, or the
 * 4xx status that answers it: 400 malformed, 405 a method other than GET
 * or HEAD, 413 a body (Content-Length other than 0, Transfer-Encoding),
 * 414 a request line longer than HTTP_MAX_LINE, 431 a head longer than
 * HTTP_MAX_HEADERS.  http_route() maps the path: "/" (the dashboard, one
 * self-contained page), "/metrics" (Prometheus text), "/stats" (JSON);
 * anything else is 404.  Both are pure functions, unit-tested and fuzzed.
 */
#ifndef MXS_HTTP_H
#define MXS_HTTP_H

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "net/addr.h"
#include "stats/stats.h"

#define HTTP_MAX_HEADERS 8192 /* bytes of request head */
#define HTTP_MAX_LINE    2048 /* bytes of request line */
#define HTTP_TIMEOUT     5    /* seconds for a whole exchange */
#define HTTP_MAX_CONNS   32   /* connections at once */

enum http_method {
    HTTP_GET,
    HTTP_HEAD,
};

/* A parsed request head; PATH points into the parsed bytes. */
struct http_req {
    enum http_method method;
    const char *path; /* without the query */
    size_t pathlen;
};

#define HTTP_MORE 0   /* http_parse(): the head is not complete yet */
#define HTTP_OK   200 /* ...it is, and it is good */

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
int http_parse(const char *buf, size_t len, struct http_req *req);
enum http_route http_route(const char *path, size_t len);
struct http *http_start(struct event_base *base, int fd, http_view_fn view, void *ctx);
void http_free(struct http *h);

#endif
