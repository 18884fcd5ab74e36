/*
 * listen - listening sockets; see listen.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/listen.h"

/* The kernel caps this at net.core.somaxconn. */
#define LISTEN_BACKLOG 4096

/* Bind and listen on SA; the socket or -1 with ERR filled in. */
static int open_one(const char *text, const struct sockaddr *sa, socklen_t len, int v6only,
                    bool reuseport, char *err, size_t errlen)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int on = 1;

    if (fd < 0) {
        int saved = errno;
        snprintf(err, errlen, "listen %s: socket: %s", text, strerror(saved));
        errno = saved;
        return -1;
    }
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
    if (sa->sa_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof(v6only));
    if (bind(fd, sa, len) < 0 || listen(fd, LISTEN_BACKLOG) < 0) {
        int saved = errno;
        snprintf(err, errlen, "listen %s: %s", text, strerror(saved));
        close(fd);
        errno = saved;
        return -1;
    }
    return fd;
}

/* Open a listener for one mxscreen_listen entry. */
int listen_open(const char *text, bool reuseport, char *err, size_t errlen)
{
    struct hostport hp;

    if (hostport_parse(text, &hp, err, errlen) < 0)
        return -1;
    if (hp.sa.ss_family == AF_UNIX) {
        snprintf(err, errlen, "listen %s: mxscreen listens on TCP addresses only", text);
        return -1;
    }
    if (!hp.wildcard)
        return open_one(text, (struct sockaddr *)&hp.sa, hp.salen, 1, reuseport, err, errlen);
    int fd = open_one(text, (struct sockaddr *)&hp.sa, hp.salen, 0, reuseport, err, errlen);
    if (fd >= 0 || (errno != EAFNOSUPPORT && errno != EADDRNOTAVAIL))
        return fd;
    /* No IPv6 on this host: IPv4 only. */
    struct sockaddr_in s4 = {0};
    s4.sin_family = AF_INET;
    s4.sin_addr.s_addr = htonl(INADDR_ANY);
    s4.sin_port = ((struct sockaddr_in6 *)&hp.sa)->sin6_port;
    return open_one(text, (struct sockaddr *)&s4, sizeof(s4), 0, reuseport, err, errlen);
}
