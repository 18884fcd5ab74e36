/*
 * refsrv - the smallest SMTP responder this machine can run: the reference
 * ("the physical limit") that the benchmark measures mxscreen against,
 * and a backend that takes mxscreen's hand-off.
 *
 * Usage: refsrv [-p] [-x] ADDR:PORT
 *        refsrv -u PATH
 *
 * One process, one epoll loop, edge-triggered.  It accepts, sends
 * "220 ref ESMTP", answers EHLO/HELO, MAIL, RCPT, RSET and NOOP with 250,
 * DATA with 354 and the message's end with 250, QUIT with 221 and closes.
 * With -p, a connection starts with a PROXY header (v1 or v2), which is
 * read and skipped first.  With -x, its EHLO reply offers XCLIENT (ADDR PORT
 * NAME DESTADDR DESTPORT) and an XCLIENT command is answered with a new
 * "220 ref ESMTP" greeting, as Postfix does: a backend for mxscreen's
 * xclient hand-off.  With -u, it is Postfix's smtpd pass service on the
 * UNIX socket PATH, for mxscreen's pass hand-off: it takes the client
 * socket sent with SCM_RIGHTS and the attributes after it (attr0 framing:
 * client_address, client_port, server_address, server_port, then a final
 * NUL), closes the pass connection (mxscreen's sign that the socket is
 * taken) and serves the client as above.  It prints "ready" on stdout once
 * it listens and runs until SIGTERM or SIGINT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define BUF 4096

struct conn {
    int fd;
    bool pass;  /* -u: a pass connection from mxscreen, not a client */
    int nuls;   /* pass: NUL bytes read (the dummy byte and the attributes') */
    bool proxy; /* a PROXY header is still to come */
    bool data;  /* inside DATA */
    size_t len; /* bytes in buf */
    char buf[BUF];
};

static volatile sig_atomic_t stop;
static bool xclient; /* -x: offer and answer XCLIENT */

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void say(struct conn *c, const char *text)
{
    (void)!send(c->fd, text, strlen(text), MSG_NOSIGNAL | MSG_DONTWAIT);
}

/* Skip a PROXY header at the start of BUF; false while it is incomplete. */
static bool skip_proxy(struct conn *c)
{
    static const unsigned char v2sig[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                            0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
    size_t n;

    if (c->len >= 16 && memcmp(c->buf, v2sig, 12) == 0) {
        n = 16 + (((unsigned char)c->buf[14] << 8) | (unsigned char)c->buf[15]);
        if (c->len < n)
            return false;
    } else if (c->len >= 6 && memcmp(c->buf, "PROXY ", 6) == 0) {
        char *nl = memchr(c->buf, '\n', c->len);
        if (nl == NULL)
            return false;
        n = (size_t)(nl - c->buf) + 1;
    } else if (c->len < 16) {
        return false;
    } else {
        n = 0; /* no header after all */
    }
    memmove(c->buf, c->buf + n, c->len - n);
    c->len -= n;
    c->proxy = false;
    say(c, "220 ref ESMTP\r\n");
    return true;
}

/* Answer every complete line; false when the connection is to close. */
static bool serve(struct conn *c)
{
    size_t start = 0;

    for (;;) {
        char *nl = memchr(c->buf + start, '\n', c->len - start);
        if (nl == NULL)
            break;
        char *line = c->buf + start;
        size_t ll = (size_t)(nl - line);
        start += ll + 1;
        if (c->data) {
            if (ll == 2 && line[0] == '.' && line[1] == '\r') {
                c->data = false;
                say(c, "250 2.0.0 queued\r\n");
            }
            continue;
        }
        if (ll >= 4 && strncasecmp(line, "QUIT", 4) == 0) {
            say(c, "221 2.0.0 bye\r\n");
            return false;
        }
        if (ll >= 4 && strncasecmp(line, "DATA", 4) == 0) {
            c->data = true;
            say(c, "354 go ahead\r\n");
        } else if (ll >= 4 && strncasecmp(line, "EHLO", 4) == 0) {
            say(c, xclient ? "250-ref\r\n250-XCLIENT ADDR PORT NAME DESTADDR DESTPORT\r\n"
                             "250 8BITMIME\r\n"
                           : "250-ref\r\n250 8BITMIME\r\n");
        } else if (xclient && ll >= 7 && strncasecmp(line, "XCLIENT", 7) == 0) {
            say(c, "220 ref ESMTP\r\n"); /* the new session's greeting */
        } else {
            say(c, "250 2.0.0 ok\r\n");
        }
    }
    memmove(c->buf, c->buf + start, c->len - start);
    c->len -= start;
    if (c->len == sizeof(c->buf))
        c->len = 0; /* an endless line: forget it */
    return true;
}

static void close_conn(int ep, struct conn *c)
{
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    free(c);
}

/* A new client connection on FD: watch it and greet it. */
static void add_client(int ep, int fd, bool proxy)
{
    int one = 1;
    struct conn *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        close(fd);
        return;
    }
    c->fd = fd;
    c->proxy = proxy;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct epoll_event cev = {.events = EPOLLIN | EPOLLET, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
    if (!proxy)
        say(c, "220 ref ESMTP\r\n");
}

/* The dummy byte, four attributes (name and value each end in NUL) and
 * the final NUL: then mxscreen has said everything. */
#define PASS_NULS (1 + 4 * 2 + 1)

/* Read from a pass connection: the client socket, then the attributes.
 * False when the pass connection is to close (done, or broken). */
static bool pass_read(int ep, struct conn *c)
{
    for (;;) {
        char buf[512];
        union {
            char b[CMSG_SPACE(sizeof(int))];
            struct cmsghdr align;
        } u;
        struct iovec iov = {buf, sizeof(buf)};
        struct msghdr msg = {.msg_iov = &iov, .msg_iovlen = 1};
        msg.msg_control = u.b;
        msg.msg_controllen = sizeof(u.b);
        ssize_t r = recvmsg(c->fd, &msg, MSG_CMSG_CLOEXEC);
        if (r < 0 && errno == EAGAIN)
            return true;
        if (r <= 0)
            return false;
        for (struct cmsghdr *cm = CMSG_FIRSTHDR(&msg); cm; cm = CMSG_NXTHDR(&msg, cm))
            if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
                int fd;
                memcpy(&fd, CMSG_DATA(cm), sizeof(fd));
                int fl = 1;
                ioctl(fd, FIONBIO, &fl);
                add_client(ep, fd, false);
            }
        for (ssize_t i = 0; i < r; i++)
            c->nuls += buf[i] == '\0';
        if (c->nuls >= PASS_NULS)
            return false; /* closing tells mxscreen the socket is taken */
    }
}

int main(int argc, char **argv)
{
    bool proxy = false, unix_pass = false;
    int opt, lfd, one = 1;

    while ((opt = getopt(argc, argv, "pxu")) != -1) {
        if (opt == 'p')
            proxy = true;
        else if (opt == 'x')
            xclient = true;
        else if (opt == 'u')
            unix_pass = true;
        else
            goto usage;
    }
    if (optind != argc - 1)
        goto usage;
    if (unix_pass) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        if (strlen(argv[optind]) >= sizeof(sun.sun_path))
            goto usage;
        strcpy(sun.sun_path, argv[optind]);
        unlink(sun.sun_path);
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
        if (bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(lfd, 4096) < 0 ||
            chmod(sun.sun_path, 0666) < 0) {
            perror("refsrv: bind/listen");
            return 1;
        }
        goto listening;
    }
    char host[64];
    char *colon = strrchr(argv[optind], ':');
    if (colon == NULL || (size_t)(colon - argv[optind]) >= sizeof(host))
        goto usage;
    memcpy(host, argv[optind], (size_t)(colon - argv[optind]));
    host[colon - argv[optind]] = '\0';
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sin.sin_addr) != 1)
        goto usage;

    lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) < 0 || listen(lfd, 4096) < 0) {
        perror("refsrv: bind/listen");
        return 1;
    }
listening:
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    printf("ready\n");
    fflush(stdout);

    struct epoll_event evs[256];
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 200);
        for (int i = 0; i < n; i++) {
            struct conn *c = evs[i].data.ptr;
            if (c == NULL) {
                int fd;
                while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    if (!unix_pass) {
                        add_client(ep, fd, proxy);
                        continue;
                    }
                    c = calloc(1, sizeof(*c));
                    if (c == NULL) {
                        close(fd);
                        continue;
                    }
                    c->fd = fd;
                    c->pass = true;
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLET, .data.ptr = c};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                }
                continue;
            }
            if (c->pass) {
                if (!pass_read(ep, c))
                    close_conn(ep, c);
                continue;
            }
            bool open = true;
            for (;;) {
                ssize_t r = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
                if (r < 0 && errno == EAGAIN)
                    break;
                if (r <= 0) {
                    open = false;
                    break;
                }
                c->len += (size_t)r;
                if (c->proxy && !skip_proxy(c))
                    continue;
                if (!(open = serve(c)))
                    break;
            }
            if (!open)
                close_conn(ep, c);
        }
    }
    return 0;
usage:
    fprintf(stderr, "usage: refsrv [-p] [-x] ADDR:PORT | refsrv -u PATH\n");
    return 1;
}
