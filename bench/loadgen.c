/*
 * loadgen - an SMTP load generator for the benchmark (bench/run.py)
 *
 * Usage: loadgen -t ADDR:PORT -m MODE [-n SESSIONS] [-c CONCURRENCY]
 *                [-d SECONDS] [-s SOURCES] [-b FIRST_SOURCE] [-w MS]
 *
 * MODE is what each connection does:
 *   greet     wait for the final "220 " greeting line (skipping "220-"
 *             lines), say QUIT, read 221, close
 *   mail      greeting, EHLO, MAIL, RCPT, DATA, a small message, QUIT
 *   pregreet  send "EHLO" at once, before any greeting (a bot), then read
 *             until the server closes
 *   hold      connect CONCURRENCY clients and keep them open, reading
 *             whatever comes, for -d seconds
 *
 * -w MS paces the connections (any mode): the Nth opens no earlier than
 * (N-1) * MS milliseconds after the start; MS may be a fraction (0.5:
 * 2,000 a second); 0, the default, opens them as fast as possible.
 *
 * Connections come from SOURCES addresses of 127.0.0.0/8, starting at
 * FIRST_SOURCE (default 127.1.0.1), one after the other.  The run stops
 * after SESSIONS completed sessions or -d seconds, whichever comes first,
 * and never runs longer than -d (default 30 s).  It prints one JSON
 * object: completed sessions, errors, elapsed seconds, sessions/s, the
 * greeting latency (connect to the greeting) and session time
 * percentiles in microseconds, and the generator's own CPU time.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

enum mode { M_GREET, M_MAIL, M_PREGREET, M_HOLD };

/* The mail session's steps: what to send once the reply to the last came. */
static const char *const mail_steps[] = {
    NULL, /* the greeting */
    "EHLO loadgen.example\r\n",
    "MAIL FROM:<sender@loadgen.example>\r\n",
    "RCPT TO:<rcpt@ref.example>\r\n",
    "DATA\r\n",
    "Subject: bench\r\nFrom: sender@loadgen.example\r\n\r\nA small message.\r\n.\r\n",
    "QUIT\r\n",
};
#define MAIL_STEPS (sizeof(mail_steps) / sizeof(mail_steps[0]))

struct sess {
    int fd;
    int step; /* replies received so far */
    bool greeted;
    uint64_t t0;     /* connect started (ns) */
    uint64_t tgreet; /* greeting received */
    size_t len;
    char buf[2048];
};

static enum mode mode;
static struct sockaddr_in target;
static uint32_t first_source = 0x7F010001; /* 127.1.0.1 */
static uint32_t sources = 1;
static uint32_t next_source;
static int ep;
static uint64_t *greet_lat, *sess_lat;
static size_t nlat, cap_lat;
static size_t done, errors, started, open_now;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void record(struct sess *s)
{
    if (nlat == cap_lat) {
        cap_lat = cap_lat ? cap_lat * 2 : 65536;
        greet_lat = realloc(greet_lat, cap_lat * sizeof(*greet_lat));
        sess_lat = realloc(sess_lat, cap_lat * sizeof(*sess_lat));
        if (!greet_lat || !sess_lat) {
            fprintf(stderr, "loadgen: out of memory\n");
            exit(1);
        }
    }
    uint64_t end = now_ns();
    greet_lat[nlat] = ((s->tgreet ? s->tgreet : end) - s->t0) / 1000;
    sess_lat[nlat] = (end - s->t0) / 1000;
    nlat++;
}

static void finish(struct sess *s, bool ok)
{
    if (ok) {
        done++;
        record(s);
    } else {
        errors++;
    }
    epoll_ctl(ep, EPOLL_CTL_DEL, s->fd, NULL);
    close(s->fd);
    free(s);
    open_now--;
}

static int start_one(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0), one = 1;
    if (fd < 0)
        return -1;
    setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct sockaddr_in src = {.sin_family = AF_INET};
    src.sin_addr.s_addr = htonl(first_source + next_source);
    next_source = (next_source + 1) % sources;
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) < 0) {
        close(fd);
        return -1;
    }
    struct sess *s = calloc(1, sizeof(*s));
    s->fd = fd;
    s->t0 = now_ns();
    started++;
    open_now++;
    if (connect(fd, (struct sockaddr *)&target, sizeof(target)) < 0 && errno != EINPROGRESS) {
        free(s);
        close(fd);
        open_now--;
        errors++;
        return 0;
    }
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.ptr = s};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    return 0;
}

static void send_text(struct sess *s, const char *text)
{
    (void)!send(s->fd, text, strlen(text), MSG_NOSIGNAL);
}

/* A complete reply is in BUF (its last line has "NNN "): its code, or 0. */
static int take_reply(struct sess *s)
{
    size_t start = 0;
    int code = 0;

    for (;;) {
        char *nl = memchr(s->buf + start, '\n', s->len - start);
        if (nl == NULL)
            break;
        char *line = s->buf + start;
        size_t ll = (size_t)(nl - line) + 1;
        start += ll;
        if (ll >= 4 && line[3] == ' ') {
            code = atoi(line);
            break;
        }
    }
    memmove(s->buf, s->buf + start, s->len - start);
    s->len -= start;
    return code;
}

static void on_event(struct sess *s, uint32_t events)
{
    if (events & EPOLLOUT) {
        struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.ptr = s};
        epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &ev);
        int err = 0;
        socklen_t el = sizeof(err);
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) {
            finish(s, false);
            return;
        }
        if (mode == M_PREGREET)
            send_text(s, "EHLO bot.example\r\n");
    }
    if (!(events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)))
        return;
    for (;;) {
        ssize_t n = recv(s->fd, s->buf + s->len, sizeof(s->buf) - s->len, 0);
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            /* Closed: the end of a pregreet bot; an error otherwise. */
            finish(s, mode == M_PREGREET || (mode == M_GREET && s->step >= 2) ||
                          (mode == M_MAIL && s->step >= (int)MAIL_STEPS));
            return;
        }
        s->len += (size_t)n;
        if (s->len == sizeof(s->buf))
            s->len = 0;
        if (mode == M_PREGREET || mode == M_HOLD)
            continue;
        int code;
        while ((code = take_reply(s)) != 0) {
            if (!s->greeted) {
                if (code != 220) {
                    finish(s, false);
                    return;
                }
                s->greeted = true;
                s->tgreet = now_ns();
            }
            s->step++;
            if (mode == M_GREET) {
                if (s->step == 1) {
                    send_text(s, "QUIT\r\n");
                } else {
                    finish(s, code == 221);
                    return;
                }
            } else if (s->step < (int)MAIL_STEPS) {
                if (code >= 400) {
                    finish(s, false);
                    return;
                }
                send_text(s, mail_steps[s->step]);
            } else {
                finish(s, code == 221);
                return;
            }
        }
    }
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static uint64_t pct(const uint64_t *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(p / 100.0 * (double)(n - 1) + 0.5);
    return v[i];
}

int main(int argc, char **argv)
{
    const char *t = NULL, *m = NULL;
    long total = 0, conc = 10;
    double wait_ms = 0;
    double duration = 30;
    int opt;

    while ((opt = getopt(argc, argv, "t:m:n:c:d:s:b:w:")) != -1) {
        switch (opt) {
        case 't':
            t = optarg;
            break;
        case 'm':
            m = optarg;
            break;
        case 'n':
            total = atol(optarg);
            break;
        case 'c':
            conc = atol(optarg);
            break;
        case 'd':
            duration = atof(optarg);
            break;
        case 's':
            sources = (uint32_t)atol(optarg);
            break;
        case 'b': {
            struct in_addr a;
            if (inet_pton(AF_INET, optarg, &a) != 1 || (ntohl(a.s_addr) >> 24) != 127)
                goto usage;
            first_source = ntohl(a.s_addr);
            break;
        }
        case 'w':
            wait_ms = atof(optarg);
            break;
        default:
            goto usage;
        }
    }
    if (t == NULL || m == NULL || conc < 1 || duration <= 0 || duration > 3600 || sources < 1)
        goto usage;
    if (strcmp(m, "greet") == 0)
        mode = M_GREET;
    else if (strcmp(m, "mail") == 0)
        mode = M_MAIL;
    else if (strcmp(m, "pregreet") == 0)
        mode = M_PREGREET;
    else if (strcmp(m, "hold") == 0)
        mode = M_HOLD;
    else
        goto usage;
    char host[64];
    const char *colon = strrchr(t, ':');
    if (colon == NULL || (size_t)(colon - t) >= sizeof(host))
        goto usage;
    memcpy(host, t, (size_t)(colon - t));
    host[colon - t] = '\0';
    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &target.sin_addr) != 1)
        goto usage;

    struct rlimit rl;
    getrlimit(RLIMIT_NOFILE, &rl);
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
    signal(SIGPIPE, SIG_IGN);
    ep = epoll_create1(0);

    uint64_t t0 = now_ns(), end = t0 + (uint64_t)(duration * 1e9);
    uint64_t wait_ns = (uint64_t)(wait_ms * 1e6);
    size_t peak = 0;
    struct epoll_event evs[512];
    for (;;) {
        uint64_t now = now_ns();
        if (now >= end)
            break;
        if (total > 0 && (long)(done + errors) >= total && mode != M_HOLD)
            break;
        /* Keep CONCURRENCY sessions going (hold: open them, then wait). */
        while ((long)open_now < conc && (total == 0 || (long)started < total)) {
            if (mode == M_HOLD && (long)started >= conc)
                break;
            /* -w: the Nth connection opens no earlier than (N-1) * MS after
             * the start; those that are due open together. */
            if (wait_ns > 0 && (uint64_t)started > (now - t0) / wait_ns)
                break;
            if (start_one() < 0) {
                errors++;
                break;
            }
        }
        if (open_now > peak)
            peak = open_now;
        int n = epoll_wait(ep, evs, 512, wait_ns > 0 ? (wait_ms < 1 ? 1 : (int)wait_ms) : 50);
        for (int i = 0; i < n; i++)
            on_event(evs[i].data.ptr, evs[i].events);
    }
    double elapsed = (double)(now_ns() - t0) / 1e9;
    size_t held = open_now;

    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    qsort(greet_lat, nlat, sizeof(*greet_lat), cmp_u64);
    qsort(sess_lat, nlat, sizeof(*sess_lat), cmp_u64);
    printf("{\"mode\": \"%s\", \"sessions\": %zu, \"errors\": %zu, \"elapsed\": %.3f, "
           "\"rate\": %.1f, \"held\": %zu, \"peak_open\": %zu, "
           "\"greet_us\": {\"p50\": %llu, \"p90\": %llu, \"p99\": %llu, \"max\": %llu}, "
           "\"session_us\": {\"p50\": %llu, \"p90\": %llu, \"p99\": %llu, \"max\": %llu}, "
           "\"cpu_s\": %.3f}\n",
           m, done, errors, elapsed, (double)done / elapsed, held, peak,
           (unsigned long long)pct(greet_lat, nlat, 50),
           (unsigned long long)pct(greet_lat, nlat, 90),
           (unsigned long long)pct(greet_lat, nlat, 99),
           (unsigned long long)(nlat ? greet_lat[nlat - 1] : 0),
           (unsigned long long)pct(sess_lat, nlat, 50), (unsigned long long)pct(sess_lat, nlat, 90),
           (unsigned long long)pct(sess_lat, nlat, 99),
           (unsigned long long)(nlat ? sess_lat[nlat - 1] : 0),
           (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
               (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6);
    return 0;
usage:
    fprintf(stderr, "usage: loadgen -t ADDR:PORT -m greet|mail|pregreet|hold [-n SESSIONS] "
                    "[-c CONCURRENCY] [-d SECONDS] [-s SOURCES] [-b FIRST_SOURCE] [-w MS]\n");
    return 1;
}
