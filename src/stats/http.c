/*
 * http - the stats listener; see http.h.
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log/log.h"
#include "stats/dashboard.h"
#include "stats/http.h"
#include "util/mem.h"

struct http {
    struct evhttp *evh;
    http_view_fn view;
    void *ctx;
};

/* Is SA a loopback address (127.0.0.0/8, ::1, or ::ffff:127.0.0.0/104)? */
static bool loopback(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

int http_listen_parse(const char *text, struct hostport *out, char *err, size_t errlen)
{
    char e[256];

    if (hostport_parse(text, out, e, sizeof(e)) < 0) {
        snprintf(err, errlen, "%s", e);
        return -1;
    }
    if (out->sa.ss_family != AF_UNIX && (out->wildcard || !loopback(&out->sa))) {
        snprintf(err, errlen,
                 "\"%s\" is not a loopback address: the stats listener has no authentication "
                 "and shows client addresses; use 127.0.0.1:PORT, [::1]:PORT or a UNIX socket "
                 "path (and a reverse proxy for remote access)",
                 text);
        return -1;
    }
    return 0;
}

/* Bind and listen (as root, before the privilege drop); see http.h. */
int http_listen_open(const struct hostport *hp, const char *text, uid_t uid, gid_t gid, char *err,
                     size_t errlen)
{
    int fam = hp->sa.ss_family, on = 1;
    int fd = socket(fam, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return -1;
    }
    if (fam == AF_UNIX) {
        const char *path = ((const struct sockaddr_un *)&hp->sa)->sun_path;
        struct stat sb;
        /* A socket left by an earlier run goes; any other file stays. */
        if (lstat(path, &sb) == 0 && S_ISSOCK(sb.st_mode))
            unlink(path);
    } else {
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    }
    if (bind(fd, (const struct sockaddr *)&hp->sa, hp->salen) < 0 || listen(fd, 64) < 0) {
        snprintf(err, errlen, "listen %s: %s", text, strerror(errno));
        close(fd);
        return -1;
    }
    if (fam == AF_UNIX) {
        const char *path = ((const struct sockaddr_un *)&hp->sa)->sun_path;
        if (chmod(path, 0660) < 0 || (geteuid() == 0 && chown(path, uid, gid) < 0)) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            close(fd);
            return -1;
        }
    }
    return fd;
}

/* Which page PATH (the request's path, without the query) asks for. */
enum http_route http_route(const char *path, size_t len)
{
    static const struct {
        const char *path;
        enum http_route route;
    } routes[] = {
        {"/", HTTP_ROUTE_DASHBOARD},
        {"/index.html", HTTP_ROUTE_DASHBOARD},
        {"/metrics", HTTP_ROUTE_METRICS},
        {"/stats", HTTP_ROUTE_STATS},
    };

    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        if (len == strlen(routes[i].path) && memcmp(path, routes[i].path, len) == 0)
            return routes[i].route;
    return HTTP_ROUTE_NOT_FOUND;
}

static void on_request(struct evhttp_request *req, void *arg)
{
    struct http *h = arg;
    struct evkeyvalq *hdr = evhttp_request_get_output_headers(req);
    enum evhttp_cmd_type method = evhttp_request_get_command(req);

    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        /* Not evhttp_send_error(): it drops the headers set here. */
        struct evbuffer *buf = evbuffer_new();
        evbuffer_add_printf(buf, "405 Method Not Allowed: GET and HEAD only\n");
        evhttp_add_header(hdr, "Allow", "GET, HEAD");
        evhttp_add_header(hdr, "Content-Type", "text/plain; charset=utf-8");
        evhttp_add_header(hdr, "Connection", "close");
        evhttp_send_reply(req, 405, "Method Not Allowed", buf);
        evbuffer_free(buf);
        return;
    }
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
    const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
    if (path == NULL || *path == '\0')
        path = "/";
    enum http_route route = http_route(path, strlen(path));
    if (route == HTTP_ROUTE_NOT_FOUND) {
        evhttp_send_error(req, HTTP_NOTFOUND, NULL);
        return;
    }
    struct stats_view v;
    memset(&v, 0, sizeof(v));
    h->view(&v, h->ctx);
    struct sbuf body = SBUF_INIT;
    const char *type = NULL;
    switch (route) {
    case HTTP_ROUTE_DASHBOARD:
        type = "text/html; charset=utf-8";
        /* The page fetches /stats and nothing else, from nowhere else. */
        evhttp_add_header(hdr, "Content-Security-Policy",
                          "default-src 'none'; script-src 'unsafe-inline'; "
                          "style-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
                          "base-uri 'none'; form-action 'none'; frame-ancestors 'none'");
        sbuf_addn(&body, stats_dashboard_html, stats_dashboard_html_len);
        break;
    case HTTP_ROUTE_METRICS:
        type = "text/plain; version=0.0.4; charset=utf-8";
        stats_metrics(&body, &v);
        break;
    case HTTP_ROUTE_STATS:
        type = "application/json";
        stats_json(&body, &v);
        break;
    case HTTP_ROUTE_NOT_FOUND:
        break;
    }
    evhttp_add_header(hdr, "Content-Type", type);
    evhttp_add_header(hdr, "Cache-Control", "no-store");
    evhttp_add_header(hdr, "X-Content-Type-Options", "nosniff");
    struct evbuffer *buf = evbuffer_new();
    if (method == EVHTTP_REQ_HEAD) {
        /* The length GET would have; evhttp would send the body itself. */
        char len[32];
        snprintf(len, sizeof(len), "%zu", body.len);
        evhttp_add_header(hdr, "Content-Length", len);
    } else {
        evbuffer_add(buf, sbuf_str(&body), body.len);
    }
    evhttp_send_reply(req, HTTP_OK, "OK", buf);
    evbuffer_free(buf);
    sbuf_free(&body);
}

struct http *http_start(struct event_base *base, int fd, http_view_fn view, void *ctx)
{
    struct http *h = xcalloc(1, sizeof(*h));

    h->view = view;
    h->ctx = ctx;
    h->evh = evhttp_new(base);
    if (h->evh == NULL)
        msg_panic("evhttp_new failed");
    /* Every method reaches on_request, which answers 405 to all but GET
     * and HEAD (evhttp itself would answer 501). */
    evhttp_set_allowed_methods(h->evh, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_HEAD |
                                           EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                                           EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
                                           EVHTTP_REQ_PATCH);
    evhttp_set_max_headers_size(h->evh, HTTP_MAX_HEADERS);
    evhttp_set_max_body_size(h->evh, 0);
    evhttp_set_timeout(h->evh, HTTP_TIMEOUT);
    evhttp_set_gencb(h->evh, on_request, h);
    if (evhttp_accept_socket_with_handle(h->evh, fd) == NULL)
        msg_panic("evhttp_accept_socket_with_handle failed");
    return h;
}

void http_free(struct http *h)
{
    if (h == NULL)
        return;
    evhttp_free(h->evh);
    free(h);
}
