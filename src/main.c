/*
 * mxscreen - an SMTP screening daemon in front of any MTA
 *
 * Usage: mxscreen -c FILE [-o name=value]... [-n | -t]
 *
 * Reads the configuration (main.cf syntax), opens the log, binds every
 * mxscreen_listen address, drops to mxscreen_user when started as root,
 * and runs the event loop in the foreground.  -n prints the settings that
 * differ from the defaults (like postconf -n); -t checks the configuration
 * and exits.  Exit status: 0 after a clean stop (SIGTERM, SIGINT), 1 on a
 * configuration or start-up error, with one line saying what is wrong.
 *
 * The order is OpenSMTPD's: configuration (tables, keys), log, listeners,
 * the allowlist store and the resolver, then the privilege drop (with
 * mxscreen_chroot, the chroot first; no new privileges ever, by
 * PR_SET_NO_NEW_PRIVS), then the loop; no client byte is read before the
 * drop.
 */
#include <ctype.h>
#include <errno.h>
#include <event2/event.h>
#include <grp.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "handoff/probe.h"
#include "log/log.h"
#include "net/listen.h"
#include "cache/cache.h"
#include "dnsbl/dnsbl.h"
#include "session/session.h"
#include "session/settings.h"
#include "session/verdict.h"
#include "smtp/engine.h"
#include "stats/http.h"
#include "stats/stats.h"
#include "util/list.h"
#include "util/mem.h"

#define MXSCREEN_VERSION "0.1.0"
#define MAX_LISTENERS    64
#define MAX_OVERRIDES    256
/* Connections taken per wake-up of a listener, so that one busy port
 * cannot starve the sessions already in progress. */
#define ACCEPT_BURST 64

struct listener {
    int fd;
    struct sockaddr_storage local; /* the address it is bound to, unless a wildcard */
    socklen_t locallen;            /* 0: a wildcard, ask each connection */
    struct event *ev;
    struct event *pause; /* re-enables accept after a descriptor shortage */
};

static struct server server;
static struct listener listeners[MAX_LISTENERS];
static size_t nlisteners;
static struct event *stop_timer;
static bool stopping;
static bool chrooted; /* mxscreen_chroot: the file system is out of reach */

/* What /metrics and /stats read at a request. */
static void fill_view(struct stats_view *v, void *ctx)
{
    static const char *const modes[] = {"proxy", "xclient", "pass"};

    (void)ctx;
    v->version = MXSCREEN_VERSION;
    v->mode = modes[server.st->mode];
    v->cache_name = server.cache ? cache_name(server.cache) : NULL;
    v->cache_entries = server.cache ? cache_entries(server.cache) : -1;
    v->cache_up = server.cache ? cache_up(server.cache) : -1;
    v->queue_check = server.check_queue;
    v->queue_post = server.post_queue;
}

/* Bind mxscreen_stats_listen, as root (a UNIX socket is given to USER). */
static int open_stats(const struct settings *st)
{
    const struct conf *cf = st->cf;
    char where[512], err[512];
    uid_t uid = 0;
    gid_t gid = 0;

    if (!st->stats_on)
        return -1;
    if (geteuid() == 0) {
        struct passwd *pw = getpwnam(conf_str(cf, P_MXS_USER));
        if (pw) {
            uid = pw->pw_uid;
            gid = pw->pw_gid;
        }
    }
    int fd = http_listen_open(&st->stats_listen, conf_str(cf, P_MXS_STATS_LISTEN), uid, gid, err,
                              sizeof(err));
    if (fd < 0)
        msg_fatal("%s: parameter mxscreen_stats_listen: %s",
                  conf_where(cf, P_MXS_STATS_LISTEN, where, sizeof(where)), err);
    return fd;
}

/* Print usage and exit 1. */
static void usage(void)
{
    fprintf(stderr, "usage: mxscreen -c FILE [-o name=value]... [-n | -t]\n");
    exit(1);
}

/* Accept failed for lack of descriptors: pause this listener for a second. */
static void pause_listener(struct listener *l)
{
    static time_t last_warning;
    time_t now = time(NULL);
    struct timeval one = {1, 0};

    if (now - last_warning >= 60) {
        msg_warn("accept: %m -- pausing new connections for 1s");
        last_warning = now;
    }
    event_del(l->ev);
    event_add(l->pause, &one);
}

/* The pause is over. */
static void on_pause_end(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;

    (void)fd;
    (void)what;
    if (!stopping)
        event_add(l->ev, NULL);
}

/* A listener is readable: take up to ACCEPT_BURST connections. */
static void on_accept(evutil_socket_t fd, short what, void *arg)
{
    struct listener *l = arg;

    (void)what;
    for (int i = 0; i < ACCEPT_BURST; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        int cfd = accept4(fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd >= 0) {
            session_accept(&server, cfd, (struct sockaddr *)&peer, plen,
                           l->locallen ? (struct sockaddr *)&l->local : NULL, l->locallen);
            continue;
        }
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
            pause_listener(l);
        else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED && errno != EPROTO)
            msg_warn("accept: %m");
        return;
    }
}

static struct event *log_ev; /* flushes the log buffer at the end of a round */

static void on_log_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    log_flush();
}

static void log_wake(void)
{
    event_active(log_ev, EV_TIMEOUT, 1);
}

/* Last session gone while stopping: exit. */
static void on_idle(struct server *srv)
{
    if (stopping)
        event_base_loopexit(srv->base, NULL);
}

/* The drain time is over: exit with what is left. */
static void on_stop_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    msg_info("stopping: shutdown time limit reached with %zu sessions left", server.sessions);
    event_base_loopexit(server.base, NULL);
}

/* SIGTERM or SIGINT: stop accepting, let sessions finish, then exit. */
static void on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    if (stopping)
        return;
    stopping = true;
    for (size_t i = 0; i < nlisteners; i++) {
        event_del(listeners[i].ev);
        event_del(listeners[i].pause);
        close(listeners[i].fd);
    }
    msg_info("stopping on signal %d: %zu sessions in progress", (int)sig, server.sessions);
    if (server.sessions == 0) {
        event_base_loopexit(server.base, NULL);
        return;
    }
    struct timeval tv = {
        server.st->cf ? (time_t)conf_num(server.st->cf, P_MXS_SHUTDOWN_TIMEOUT) : 30, 0};
    stop_timer = evtimer_new(server.base, on_stop_timer, NULL);
    event_add(stop_timer, &tv);
}

/* The command line's configuration, read again at a reload. */
static const char *conf_file;
static const char *const *conf_overrides;
static size_t conf_noverrides;

/*
 * What a running process keeps from its start: its ports and user (the
 * privileges are gone), the allowlist store it opened, the stats
 * listener, the log, and the DNS servers of the DNSBL resolver.
 */
static const enum param_id restart_only[] = {
    P_MXS_LISTEN,
    P_MXS_REUSEPORT,
    P_MXS_USER,
    P_PSC_CACHE_MAP,
    P_PSC_CACHE_RETENTION_TIME,
    P_PSC_CACHE_CLEANUP_INTERVAL,
    P_MXS_REDIS_PASSWORD,
    P_MXS_REDIS_USER,
    P_MXS_REDIS_PREFIX,
    P_MXS_REDIS_TIMEOUT_MS,
    P_MXS_CACHE_FALLBACK,
    P_MXS_CACHE_FALLBACK_MAP,
    P_MXS_STATS_LISTEN,
    P_MAILLOG_FILE,
    P_SYSLOG_NAME,
    P_SYSLOG_FACILITY,
    P_MXS_LOG_TARGET,
    P_MXS_DNS_SERVERS,
};

/*
 * SIGHUP: read the configuration again and use it for new connections.
 * A configuration that does not load is refused with its error and the
 * running one stays; sessions in progress finish under the settings they
 * started with (each holds a reference).  Nothing is closed or re-bound,
 * so no connection is refused or reset by a reload.
 */
static void on_hup(evutil_socket_t sig, short what, void *arg)
{
    char err[1024], where[512];

    (void)sig;
    (void)what;
    (void)arg;
    if (chrooted) {
        stats.reloads_failed++;
        msg_warn("reload: not available with mxscreen_chroot (the configuration is outside "
                 "the chroot) -- the running configuration stays; restart mxscreen to change it");
        return;
    }
    msg_info("reloading the configuration from %s", conf_file);
    struct conf *cf = conf_load(conf_file, conf_overrides, conf_noverrides, err, sizeof(err));
    struct settings *st = cf ? settings_build(cf, server.st, err, sizeof(err)) : NULL;
    if (st == NULL) {
        conf_free(cf);
        stats.reloads_failed++;
        msg_warn("reload failed: %s -- the running configuration stays", err);
        return;
    }
    const struct conf *old = server.st->cf;
    for (size_t i = 0; i < sizeof(restart_only) / sizeof(restart_only[0]); i++) {
        enum param_id id = restart_only[i];
        if (strcmp(conf_str(old, id), conf_str(cf, id)) != 0)
            msg_warn("%s: parameter %s changed: it takes effect when mxscreen restarts",
                     conf_where(cf, id, where, sizeof(where)), param_table[id].name);
    }
    /* DNSBLs named for the first time need the resolver (with the DNS
     * servers of the start). */
    if ((st->enabled & TEST_BIT(TEST_DNSBL)) && server.dnsbl == NULL &&
        (server.dnsbl =
             dnsbl_new(server.base, conf_str(old, P_MXS_DNS_SERVERS), err, sizeof(err))) == NULL)
        msg_warn("reload: mxscreen_dns_servers: %s; the DNSBL test does not run", err);
    if (server.cache)
        cache_set_enabled(server.cache, st->enabled);
    log_set_delay_resolution((int)conf_num(cf, P_DELAY_LOGGING_RESOLUTION_LIMIT));
    engine_conf_warnings(st->engine);
    settings_unref(server.st);
    server.st = st;
    stats.reloads++;
    msg_info("configuration reloaded: new connections use it; %zu in progress finish under "
             "the one they started with",
             server.sessions);
}

/* Open the log named by the configuration. */
static void open_log(const struct conf *cf)
{
    char err[512];
    const char *file = conf_str(cf, P_MAILLOG_FILE);
    enum log_target t = *file                                 ? LOG_TARGET_FILE
                        : conf_num(cf, P_MXS_LOG_TARGET) == 1 ? LOG_TARGET_SYSLOG
                                                              : LOG_TARGET_STDERR;

    /* Postfix logs as "$syslog_name/postscreen": a main.cf that sets
     * syslog_name = postfix (or postfix-in) gets postscreen's very tag.  A
     * name with a slash is the whole tag; unset, the tag is "mxscreen". */
    const char *name = conf_str(cf, P_SYSLOG_NAME);
    char tag[256];
    if (conf_is_set(cf, P_SYSLOG_NAME) && *name && strchr(name, '/') == NULL) {
        snprintf(tag, sizeof(tag), "%s/postscreen", name);
        name = tag;
    }
    if (log_open(t, name, conf_str(cf, P_MYHOSTNAME), file, conf_str(cf, P_SYSLOG_FACILITY), err,
                 sizeof(err)) < 0)
        msg_fatal("%s: %s", conf_path(cf), err);
}

/* Bind every address of mxscreen_listen. */
/* Is SA the any-address (the local address differs per connection)? */
static bool wildcard(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_UNSPECIFIED(a) || IN6_IS_ADDR_V4MAPPED(a);
    }
    return true;
}

static void open_listeners(const struct conf *cf)
{
    const char *cursor = conf_str(cf, P_MXS_LISTEN), *s;
    size_t len;
    char where[512], err[512];

    conf_where(cf, P_MXS_LISTEN, where, sizeof(where));
    while ((s = list_next(&cursor, &len)) != NULL) {
        char *one = xstrndup(s, len);
        if (nlisteners == MAX_LISTENERS)
            msg_fatal("%s: parameter mxscreen_listen: more than %d addresses", where,
                      MAX_LISTENERS);
        int fd = listen_open(one, conf_bool(cf, P_MXS_REUSEPORT), err, sizeof(err));
        if (fd < 0)
            msg_fatal("%s: parameter mxscreen_listen: %s", where, err);
        struct listener *l = &listeners[nlisteners++];
        l->fd = fd;
        l->locallen = sizeof(l->local);
        if (getsockname(fd, (struct sockaddr *)&l->local, &l->locallen) < 0 ||
            wildcard((struct sockaddr *)&l->local))
            l->locallen = 0;
        free(one);
    }
    if (nlisteners == 0)
        msg_fatal("%s: parameter mxscreen_listen: no address to listen on", where);
}

/* Started as root: become mxscreen_user for good. */
static void drop_privileges(const struct conf *cf)
{
    const char *user = conf_str(cf, P_MXS_USER);
    const char *jail = conf_str(cf, P_MXS_CHROOT);
    char where[512];

    /* Whatever happens below, no exec can ever gain privileges again. */
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
        msg_fatal("prctl(PR_SET_NO_NEW_PRIVS): %m");
    if (geteuid() != 0) {
        if (*jail)
            msg_fatal("%s: parameter mxscreen_chroot: mxscreen must start as root to chroot",
                      conf_where(cf, P_MXS_CHROOT, where, sizeof(where)));
        return;
    }
    conf_where(cf, P_MXS_USER, where, sizeof(where));
    struct passwd *pw = getpwnam(user);
    if (pw == NULL)
        msg_fatal("%s: parameter mxscreen_user: unknown user \"%s\"", where, user);
    if (pw->pw_uid == 0)
        msg_fatal("%s: parameter mxscreen_user: \"%s\" is root; mxscreen must not serve clients "
                  "as root",
                  where, user);
    if (*jail) {
        /* Everything from the file system is open or loaded by now: the
         * configuration, tables and keys, the log, the allowlist store,
         * the resolver's configuration, the time zone. */
        tzset();
        if (chroot(jail) < 0 || chdir("/") < 0)
            msg_fatal("%s: parameter mxscreen_chroot: cannot chroot to %s: %m",
                      conf_where(cf, P_MXS_CHROOT, where, sizeof(where)), jail);
        chrooted = true;
    }
    if (setgroups(1, &pw->pw_gid) < 0 || setgid(pw->pw_gid) < 0 || setuid(pw->pw_uid) < 0)
        msg_fatal("cannot become user %s: %m", user);
    if (setuid(0) == 0)
        msg_fatal("privilege drop to %s failed: still able to become root", user);
}

/* Warn about enabled tests that this version does not run yet. */
int main(int argc, char **argv)
{
    const char *path = NULL;
    const char *overrides[MAX_OVERRIDES];
    size_t noverrides = 0;
    bool print_nondefault = false, check_only = false;
    int c;
    char err[1024];

    while ((c = getopt(argc, argv, "c:o:nt")) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'o':
            if (noverrides == MAX_OVERRIDES)
                msg_fatal("too many -o options (at most %d)", MAX_OVERRIDES);
            overrides[noverrides++] = optarg;
            break;
        case 'n':
            print_nondefault = true;
            break;
        case 't':
            check_only = true;
            break;
        default:
            usage();
        }
    }
    if (path == NULL || optind != argc)
        usage();
    conf_file = path;
    conf_overrides = overrides;
    conf_noverrides = noverrides;
    struct conf *cf = conf_load(path, overrides, noverrides, err, sizeof(err));
    if (cf == NULL)
        msg_fatal("%s", err);
    if (print_nondefault) {
        conf_print_nondefault(cf, stdout);
        conf_free(cf);
        return 0;
    }
    struct settings *st = settings_build(cf, NULL, err, sizeof(err));
    if (st == NULL)
        msg_fatal("%s", err);
    if (check_only) {
        printf("%s: configuration OK\n", path);
        settings_unref(st);
        return 0;
    }
    open_log(cf);
    signal(SIGPIPE, SIG_IGN);
    stats_init();
    open_listeners(cf);
    int stats_fd = open_stats(st);
    /* The cache file is opened as root, before the privilege drop. */
    struct cache *cache = NULL;
    if (st->cache_enabled && (cache = cache_open(conf_str(cf, P_PSC_CACHE_MAP), &st->cache_opts,
                                                 err, sizeof(err))) == NULL)
        msg_fatal("postscreen_cache_map: %s", err);

    struct event_config *ecfg = event_config_new();
    event_config_require_features(ecfg, EV_FEATURE_ET);
    /* Changes to a descriptor's events within one loop iteration reach
     * epoll_ctl() once, merged (mxscreen never dup()s a descriptor it
     * watches, the changelist's one hazard). */
    event_config_set_flag(ecfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    server.base = event_base_new_with_config(ecfg);
    event_config_free(ecfg);
    if (server.base == NULL)
        msg_fatal("cannot create the event loop (edge-triggered events are required)");
    log_ev = event_new(server.base, -1, 0, on_log_flush, NULL);
    log_set_buffered(log_wake);
    server.st = st;
    server.ips = iptab_new();
    server.cache = cache;
    log_set_delay_resolution((int)conf_num(cf, P_DELAY_LOGGING_RESOLUTION_LIMIT));
    engine_conf_warnings(st->engine);
    if (st->enabled & TEST_BIT(TEST_DNSBL)) {
        server.dnsbl = dnsbl_new(server.base, conf_str(cf, P_MXS_DNS_SERVERS), err, sizeof(err));
        if (server.dnsbl == NULL)
            msg_fatal("mxscreen_dns_servers: %s", err);
    }
    struct probe *probe = NULL;
    if (st->replay)
        probe = probe_start(server.base, &server.st, &server.backend_caps);
    if (cache)
        cache_start(cache, server.base);
    server.on_idle = on_idle;
    stats_start(server.base);
    struct http *http = stats_fd >= 0 ? http_start(server.base, stats_fd, fill_view, NULL) : NULL;
    for (size_t i = 0; i < nlisteners; i++) {
        listeners[i].ev =
            event_new(server.base, listeners[i].fd, EV_READ | EV_PERSIST, on_accept, &listeners[i]);
        listeners[i].pause = evtimer_new(server.base, on_pause_end, &listeners[i]);
        event_add(listeners[i].ev, NULL);
    }
    struct event *sigterm = evsignal_new(server.base, SIGTERM, on_stop_signal, NULL);
    struct event *sigint = evsignal_new(server.base, SIGINT, on_stop_signal, NULL);
    struct event *sighup = evsignal_new(server.base, SIGHUP, on_hup, NULL);
    event_add(sigterm, NULL);
    event_add(sigint, NULL);
    event_add(sighup, NULL);

    /* The loop has not run: no client byte has been read yet. */
    drop_privileges(cf);
    static const char *const modes[] = {"proxy", "xclient", "pass"};
    msg_info("starting mxscreen %s: hand-off by %s to %s", MXSCREEN_VERSION, modes[st->mode],
             st->backend_name);
    event_base_dispatch(server.base);

    log_set_buffered(NULL); /* flushes; what follows is written at once */
    event_free(log_ev);
    msg_info("stopped");
    for (size_t i = 0; i < nlisteners; i++) {
        event_free(listeners[i].ev);
        event_free(listeners[i].pause);
    }
    if (stop_timer)
        event_free(stop_timer);
    event_free(sigterm);
    event_free(sigint);
    event_free(sighup);
    probe_free(probe);
    http_free(http);
    stats_stop();
    /* Sessions still open at a forced stop are closed by exit(). */
    if (server.sessions == 0) {
        iptab_free(server.ips);
        cache_free(server.cache);
        dnsbl_free(server.dnsbl);
        settings_unref(server.st);
        event_base_free(server.base);
    }
    log_close();
    return 0;
}
