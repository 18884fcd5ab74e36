/*
 * http - the stats listener; see http.h.
 */
#include <errno.h>
#include <event2/event_struct.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <strings.h>
#include <unistd.h>

#include "log/log.h"
#include "stats/dashboard.h"
#include "stats/http.h"
#include "util/mem.h"

/* One client of the listener. */
struct hconn {
    struct http *h;
    int fd;
    struct event io;    /* reading the request, writing the response, draining */
    struct event timer; /* the end of the exchange (HTTP_TIMEOUT) */
    enum { HC_READ, HC_WRITE, HC_DRAIN } state;
    size_t len;                /* request bytes in in[] */
    char in[HTTP_MAX_HEADERS]; /* the request head */
    struct sbuf out;           /* the response */
    size_t off;                /* ...bytes of it sent */
    struct hconn *prev, *next; /* the listener's connections */
};

struct http {
    struct event_base *base;
    int fd;              /* the listening socket, owned */
    struct event accept; /* ...readable */
    http_view_fn view;
    void *ctx;
    size_t nconns;
    struct hconn *conns;
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

/* RFC 9110 token characters (methods and header names). */
static bool tchar(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Does header line P (N bytes, no line end) name NAME, case aside?  Then
 * VAL and VLEN give its value without surrounding blanks. */
static bool header_is(const char *p, size_t n, const char *name, const char **val, size_t *vlen)
{
    size_t nl = strlen(name);

    if (n <= nl || p[nl] != ':' || strncasecmp(p, name, nl) != 0)
        return false;
    const char *v = p + nl + 1, *end = p + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    *val = v;
    *vlen = (size_t)(end - v);
    return true;
}

/* Parse one request head in BUF (LEN bytes); see http.h. */
int http_parse(const char *buf, size_t len, struct http_req *req)
{
    /* What lies beyond the server's buffer is never read: a head that
     * would end there is too long, whatever comes after. */
    if (len > HTTP_MAX_HEADERS)
        len = HTTP_MAX_HEADERS;
    const char *end = buf + len;
    const char *eol = memchr(buf, '\n', len);

    if (eol == NULL)
        return len >= HTTP_MAX_LINE ? 414 : HTTP_MORE;
    if ((size_t)(eol - buf) >= HTTP_MAX_LINE)
        return 414;
    /* The request line: METHOD SP request-target SP HTTP/1.x [CR] LF. */
    const char *le = eol > buf && eol[-1] == '\r' ? eol - 1 : eol;
    const char *p = buf, *sp = buf;
    while (sp < le && tchar((unsigned char)*sp))
        sp++;
    if (sp == p || sp == le || *sp != ' ')
        return 400;
    size_t mlen = (size_t)(sp - p);
    const char *target = sp + 1, *tend = target;
    while (tend < le && *tend != ' ')
        tend++;
    if (tend == target || tend == le || (size_t)(le - tend - 1) != 8 ||
        (memcmp(tend + 1, "HTTP/1.1", 8) != 0 && memcmp(tend + 1, "HTTP/1.0", 8) != 0))
        return 400;
    for (const char *c = target; c < tend; c++)
        if ((unsigned char)*c <= ' ' || (unsigned char)*c >= 0x7f)
            return 400;
    /* origin-form "/path?query", or absolute-form "http://host/path?query". */
    const char *path = target;
    if (tend - target >= 7 && strncasecmp(target, "http://", 7) == 0) {
        path = memchr(target + 7, '/', (size_t)(tend - target - 7));
        if (path == NULL)
            path = tend; /* "http://host": the root */
    } else if (*target != '/') {
        return 400;
    }
    const char *pend = path;
    while (pend < tend && *pend != '?' && *pend != '#')
        pend++;
    /* The header lines, up to an empty line. */
    bool body = false;
    for (p = eol + 1;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (nl == NULL)
            return len >= HTTP_MAX_HEADERS ? 431 : HTTP_MORE;
        const char *hend = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
        if (hend == p)
            break; /* the end of the head */
        const char *colon = p;
        while (colon < hend && tchar((unsigned char)*colon))
            colon++;
        if (colon == p || colon == hend || *colon != ':')
            return 400; /* no name, a blank before the colon, or obsolete folding */
        const char *v;
        size_t vl;
        if (header_is(p, (size_t)(hend - p), "Content-Length", &v, &vl) &&
            !(vl == 1 && v[0] == '0'))
            body = true;
        if (header_is(p, (size_t)(hend - p), "Transfer-Encoding", &v, &vl))
            body = true;
        p = nl + 1;
    }
    if (mlen == 3 && memcmp(buf, "GET", 3) == 0)
        req->method = HTTP_GET;
    else if (mlen == 4 && memcmp(buf, "HEAD", 4) == 0)
        req->method = HTTP_HEAD;
    else
        return 405;
    if (body)
        return 413;
    if (pend == path) {
        path = "/";
        pend = path + 1;
    }
    req->path = path;
    req->pathlen = (size_t)(pend - path);
    return HTTP_OK;
}

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 400:
        return "Bad Request";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 431:
        return "Request Header Fields Too Large";
    default:
        return "Error";
    }
}

static void hconn_free(struct hconn *c)
{
    struct http *h = c->h;

    event_del(&c->io);
    event_del(&c->timer);
    close(c->fd);
    sbuf_free(&c->out);
    if (c->prev)
        c->prev->next = c->next;
    else
        h->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    h->nconns--;
    free(c);
}

/* The response head for STATUS, with TYPE and LEN bytes of body to come. */
static void head(struct sbuf *out, int status, const char *type, size_t len)
{
    sbuf_printf(out,
                "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
                "Connection: close\r\n",
                status, reason(status), type, len);
    if (status == 405)
        sbuf_adds(out, "Allow: GET, HEAD\r\n");
}

/* Build the answer to the request in c->in (STATUS from http_parse()). */
static void respond(struct hconn *c, int status, const struct http_req *req)
{
    struct sbuf body = SBUF_INIT;
    const char *type = "text/plain; charset=utf-8";
    enum http_route route = HTTP_ROUTE_NOT_FOUND;

    if (status == HTTP_OK && (route = http_route(req->path, req->pathlen)) == HTTP_ROUTE_NOT_FOUND)
        status = 404;
    if (status != HTTP_OK) {
        sbuf_printf(&body, "%d %s\n", status, reason(status));
        head(&c->out, status, type, body.len);
    } else {
        struct stats_view v;
        memset(&v, 0, sizeof(v));
        c->h->view(&v, c->h->ctx);
        switch (route) {
        case HTTP_ROUTE_DASHBOARD:
            type = "text/html; charset=utf-8";
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
        head(&c->out, status, type, body.len);
        if (route == HTTP_ROUTE_DASHBOARD)
            /* The page fetches /stats and nothing else, from nowhere else. */
            sbuf_adds(&c->out, "Content-Security-Policy: default-src 'none'; "
                               "script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                               "connect-src 'self'; img-src data:; base-uri 'none'; "
                               "form-action 'none'; frame-ancestors 'none'\r\n");
    }
    sbuf_adds(&c->out, "\r\n");
    if (!(status == HTTP_OK && req->method == HTTP_HEAD))
        sbuf_addn(&c->out, sbuf_str(&body), body.len);
    sbuf_free(&body);
}

static void on_io(evutil_socket_t fd, short what, void *arg);

/* Watch C's socket for WHAT (EV_READ or EV_WRITE). */
static void watch(struct hconn *c, short what)
{
    event_del(&c->io);
    event_assign(&c->io, c->h->base, c->fd, what | EV_PERSIST, on_io, c);
    event_add(&c->io, NULL);
}

/* Send what is left of the response; then stop sending and drain what the
 * client still sends (so that closing does not reset the connection under
 * the response, a 413 to a client still sending its body for one). */
static void flush(struct hconn *c)
{
    while (c->off < c->out.len) {
        ssize_t n = send(c->fd, sbuf_str(&c->out) + c->off, c->out.len - c->off, MSG_NOSIGNAL);
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        if (n <= 0) {
            hconn_free(c);
            return;
        }
        c->off += (size_t)n;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = HC_DRAIN;
    watch(c, EV_READ);
}

static void on_io(evutil_socket_t fd, short what, void *arg)
{
    struct hconn *c = arg;

    (void)what;
    if (c->state == HC_WRITE) {
        flush(c);
        return;
    }
    char sink[4096];
    char *to = c->state == HC_READ ? c->in + c->len : sink;
    size_t room = c->state == HC_READ ? sizeof(c->in) - c->len : sizeof(sink);
    ssize_t n = recv(fd, to, room, 0);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 || c->state == HC_DRAIN) {
        if (n <= 0)
            hconn_free(c);
        return;
    }
    c->len += (size_t)n;
    struct http_req req;
    int status = http_parse(c->in, c->len, &req);
    if (status == HTTP_MORE)
        return; /* http_parse() says 431 once in[] is full */
    respond(c, status, &req);
    c->state = HC_WRITE;
    watch(c, EV_WRITE);
    flush(c);
}

/* The exchange took too long: close, whatever it was doing. */
static void on_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    hconn_free(arg);
}

static void on_accept(evutil_socket_t lfd, short what, void *arg)
{
    struct http *h = arg;

    (void)what;
    for (int i = 0; i < HTTP_MAX_CONNS; i++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or descriptors short: the SMTP side comes first */
        if (h->nconns >= HTTP_MAX_CONNS) {
            close(fd);
            continue;
        }
        struct hconn *c = xcalloc(1, sizeof(*c));
        struct timeval tv = {HTTP_TIMEOUT, 0};
        c->h = h;
        c->fd = fd;
        c->state = HC_READ;
        c->next = h->conns;
        if (h->conns)
            h->conns->prev = c;
        h->conns = c;
        h->nconns++;
        event_assign(&c->io, h->base, fd, EV_READ | EV_PERSIST, on_io, c);
        event_add(&c->io, NULL);
        evtimer_assign(&c->timer, h->base, on_timeout, c);
        evtimer_add(&c->timer, &tv);
    }
}

struct http *http_start(struct event_base *base, int fd, http_view_fn view, void *ctx)
{
    struct http *h = xcalloc(1, sizeof(*h));

    h->base = base;
    h->fd = fd;
    h->view = view;
    h->ctx = ctx;
    event_assign(&h->accept, base, fd, EV_READ | EV_PERSIST, on_accept, h);
    event_add(&h->accept, NULL);
    return h;
}

void http_free(struct http *h)
{
    if (h == NULL)
        return;
    while (h->conns)
        hconn_free(h->conns);
    event_del(&h->accept);
    close(h->fd);
    free(h);
}
