/*
 * refrelay - the smallest relay with a PROXY header this machine can run:
 * the reference ("the physical limit") for a screener that hands clients
 * to a backend in the same connection, as mxscreen's proxy mode does.
 *
 * Usage: refrelay LISTEN_ADDR:PORT BACKEND_ADDR:PORT
 *
 * One process, one epoll loop, edge-triggered.  For each client it
 * connects to the backend, sends a PROXY v2 header with the client's
 * endpoints, and then copies bytes both ways through a buffer on the
 * stack (recv, then send; a send that would block is treated as the end:
 * SMTP replies and commands are small).  When either side ends, both are
 * closed.  It decides nothing and logs nothing: everything mxscreen does
 * beyond this is mxscreen's own cost.  It prints "ready" once it listens
 * and runs until SIGTERM or SIGINT.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

struct pair;

struct end {
    int fd;
    struct end *peer;
    struct pair *p;
};

struct pair {
    struct end c, b;
    bool sent;   /* the PROXY header went out */
    bool closed; /* freed after this round of events */
    struct pair *next_dead;
    unsigned char hdr[28];
};

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static bool parse(const char *text, struct sockaddr_in *sin)
{
    char host[64];
    const char *colon = strrchr(text, ':');

    if (colon == NULL || (size_t)(colon - text) >= sizeof(host))
        return false;
    memcpy(host, text, (size_t)(colon - text));
    host[colon - text] = '\0';
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)atoi(colon + 1));
    return inet_pton(AF_INET, host, &sin->sin_addr) == 1;
}

static struct pair *dead; /* closed this round, freed after it */

static void close_pair(struct pair *p)
{
    close(p->c.fd);
    close(p->b.fd);
    p->closed = true;
    p->next_dead = dead;
    dead = p;
}

int main(int argc, char **argv)
{
    struct sockaddr_in lsin, bsin;

    if (argc != 3 || !parse(argv[1], &lsin) || !parse(argv[2], &bsin)) {
        fprintf(stderr, "usage: refrelay LISTEN_ADDR:PORT BACKEND_ADDR:PORT\n");
        return 1;
    }
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(lfd, (struct sockaddr *)&lsin, sizeof(lsin)) < 0 || listen(lfd, 4096) < 0) {
        perror("refrelay: bind/listen");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev);
    printf("ready\n");
    fflush(stdout);

    struct epoll_event evs[256];
    char buf[16384];
    while (!stop) {
        int n = epoll_wait(ep, evs, 256, 200);
        for (int i = 0; i < n; i++) {
            struct end *e = evs[i].data.ptr;
            if (e == NULL) {
                struct sockaddr_in peer;
                socklen_t plen = sizeof(peer);
                int fd;
                while ((fd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK)) >= 0) {
                    int bfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
                    setsockopt(bfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
                    if (connect(bfd, (struct sockaddr *)&bsin, sizeof(bsin)) < 0 &&
                        errno != EINPROGRESS) {
                        close(fd);
                        close(bfd);
                        continue;
                    }
                    struct pair *p = calloc(1, sizeof(*p));
                    /* PROXY v2: signature, PROXY/TCP4, 12 address bytes. */
                    static const unsigned char sig[16] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                                          0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A,
                                                          0x21, 0x11, 0,    12};
                    memcpy(p->hdr, sig, 16);
                    memcpy(p->hdr + 16, &peer.sin_addr, 4);
                    memcpy(p->hdr + 20, &lsin.sin_addr, 4);
                    memcpy(p->hdr + 24, &peer.sin_port, 2);
                    memcpy(p->hdr + 26, &lsin.sin_port, 2);
                    p->c.fd = fd;
                    p->b.fd = bfd;
                    p->c.peer = &p->b;
                    p->b.peer = &p->c;
                    p->c.p = p->b.p = p;
                    /* The header goes once the connection is up (its EPOLLOUT). */
                    struct epoll_event cev = {.events = EPOLLIN | EPOLLET, .data.ptr = &p->c};
                    struct epoll_event bev = {.events = EPOLLIN | EPOLLOUT | EPOLLET,
                                              .data.ptr = &p->b};
                    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &cev);
                    epoll_ctl(ep, EPOLL_CTL_ADD, bfd, &bev);
                    plen = sizeof(peer);
                }
                continue;
            }
            struct pair *p = e->p;
            if (p->closed)
                continue;
            bool end = (evs[i].events & (EPOLLERR | EPOLLHUP)) != 0;
            if (!end && e == &p->b && !p->sent && (evs[i].events & EPOLLOUT)) {
                p->sent = true;
                end = send(e->fd, p->hdr, sizeof(p->hdr), MSG_NOSIGNAL) != sizeof(p->hdr);
            }
            while (!end) {
                ssize_t r = recv(e->fd, buf, sizeof(buf), 0);
                if (r < 0 && errno == EAGAIN)
                    break;
                if (r <= 0 || send(e->peer->fd, buf, (size_t)r, MSG_NOSIGNAL) != r)
                    end = true;
            }
            if (end)
                close_pair(p);
        }
        while (dead) {
            struct pair *p = dead;
            dead = p->next_dead;
            free(p);
        }
    }
    return 0;
}
