/*
 * fuzz_http - the stats listener's request parser, routing and listen
 * address (http_parse(), http_route() and http_listen_parse() in
 * src/stats/http.c)
 *
 * Input: a request head as a client sends it, or (after a first byte with
 * its top bit set) an mxscreen_stats_listen value.  Checked:
 *   - http_parse() over (pointer, length), the input's exact bytes: its
 *     answer is one of HTTP_MORE, HTTP_OK, 400, 405, 413, 414, 431; it
 *     asks for more only below HTTP_MAX_HEADERS bytes; a path it returns
 *     lies inside the input, starts with '/' and holds no '?', '#' or
 *     blank; and every prefix that already gets an answer gets the same
 *     answer as the whole input (later bytes never change a decision)
 *   - http_route() names a page exactly for "/", "/index.html",
 *     "/metrics" and "/stats"
 *   - http_listen_parse() accepts only a UNIX path or a loopback address,
 *     never a wildcard; whatever it accepts hostport_parse() accepts; a
 *     refusal says why within the buffer
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "stats/http.h"

/* The page PATH (LEN bytes) should give. */
static enum http_route ref_route(const char *path, size_t len)
{
    if ((len == 1 && path[0] == '/') || (len == 11 && memcmp(path, "/index.html", 11) == 0))
        return HTTP_ROUTE_DASHBOARD;
    if (len == 8 && memcmp(path, "/metrics", 8) == 0)
        return HTTP_ROUTE_METRICS;
    if (len == 6 && memcmp(path, "/stats", 6) == 0)
        return HTTP_ROUTE_STATS;
    return HTTP_ROUTE_NOT_FOUND;
}

static bool loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const unsigned char *)&((const struct sockaddr_in *)ss)->sin_addr)[0] == 127;
    if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return false;
}

static void check_listen(const char *text)
{
    struct hostport hp, hp2;
    char err[600], e2[256];

    memset(err, 'X', sizeof(err));
    if (http_listen_parse(text, &hp, err, sizeof(err)) < 0) {
        FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL && err[0] != '\0');
        return;
    }
    FUZZ_CHECK(hp.sa.ss_family == AF_UNIX || (!hp.wildcard && loopback(&hp.sa)));
    FUZZ_CHECK(hostport_parse(text, &hp2, e2, sizeof(e2)) == 0);
    FUZZ_CHECK(hp.salen == hp2.salen && memcmp(&hp.sa, &hp2.sa, hp.salen) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 0 && (data[0] & 0x80)) {
        char *text = fuzz_str(data + 1, size - 1);
        check_listen(text);
        free(text);
        return 0;
    }
    /* libFuzzer's buffer has the input's exact size: no NUL to lean on. */
    const char *buf = (const char *)data;
    FUZZ_CHECK(http_route(buf, size) == ref_route(buf, size));
    struct http_req req;
    int st = http_parse(buf, size, &req);
    FUZZ_CHECK(st == HTTP_MORE || st == HTTP_OK || st == 400 || st == 405 || st == 413 ||
               st == 414 || st == 431);
    if (st == HTTP_MORE)
        FUZZ_CHECK(size < HTTP_MAX_HEADERS);
    if (st == HTTP_OK) {
        FUZZ_CHECK(req.pathlen > 0 && req.path[0] == '/');
        FUZZ_CHECK(req.method == HTTP_GET || req.method == HTTP_HEAD);
        /* Inside the input, or the literal "/" of an empty path. */
        if (req.path >= buf && req.path < buf + size)
            FUZZ_CHECK(req.path + req.pathlen <= buf + size);
        else
            FUZZ_CHECK(req.pathlen == 1);
        for (size_t i = 0; i < req.pathlen; i++)
            FUZZ_CHECK(req.path[i] != '?' && req.path[i] != '#' && req.path[i] > ' ');
        FUZZ_CHECK(http_route(req.path, req.pathlen) == ref_route(req.path, req.pathlen));
    }
    /* The server reads a head in pieces: a prefix that is decided stays so. */
    for (size_t n = size > 64 ? size - 64 : 0; n < size; n++) {
        struct http_req r2;
        int p = http_parse(buf, n, &r2);
        if (p != HTTP_MORE)
            FUZZ_CHECK(p == st);
    }
    return 0;
}
