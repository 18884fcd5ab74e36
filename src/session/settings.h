/*
 * settings - the run-time form of a configuration
 *
 * settings_build() turns a checked struct conf into what the connection
 * path needs: parsed access list, mynetworks and allowlist interfaces,
 * the hand-off target and mode, limits and time-outs, which tests are
 * enabled, and the SMTP engine's prepared configuration.  A value it
 * cannot use stops start-up with one line naming the parameter and where
 * it was set.
 *
 * A settings object is reference counted: a session holds a reference for
 * its whole life, so that a reload can swap in new settings while older
 * sessions finish under the ones they started with.  It owns its conf.
 */
#ifndef MXS_SETTINGS_H
#define MXS_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "cache/cache.h"
#include "conf/acl.h"
#include "conf/addrlist.h"
#include "conf/conf.h"
#include "net/addr.h"

struct engine_conf;
struct dnsbl_sites;
struct table;
struct ssl_ctx_st;

enum handoff_mode {
    HANDOFF_PROXY,   /* PROXY header to the backend, then relay */
    HANDOFF_XCLIENT, /* Postfix XCLIENT dialogue, then relay */
    HANDOFF_PASS,    /* the socket itself to Postfix's smtpd pass service */
};

enum psc_action {
    ACTION_IGNORE,
    ACTION_ENFORCE,
    ACTION_DROP,
};

struct settings {
    int refs;                         /* references held by main and sessions */
    struct conf *cf;                  /* the configuration, owned */
    struct addrlist *mynetworks;      /* parsed $mynetworks */
    struct acl *access;               /* parsed postscreen_access_list */
    struct addrlist *allow_ifaces;    /* parsed postscreen_allowlist_interfaces */
    struct engine_conf *engine;       /* the SMTP engine's prepared configuration */
    unsigned enabled;                 /* enabled tests (verdict.h bits) */
    long long pre_queue_limit;        /* postscreen_pre_queue_limit */
    char *teaser;                     /* "220-$postscreen_greet_banner\r\n" */
    time_t greet_ttl;                 /* postscreen_greet_ttl */
    enum psc_action greet_action;     /* postscreen_greet_action */
    struct dnsbl_sites *dnsbl_sites;  /* parsed postscreen_dnsbl_sites, or NULL */
    struct table *dnsbl_reply_map;    /* postscreen_dnsbl_reply_map, or NULL */
    int dnsbl_threshold;              /* postscreen_dnsbl_threshold */
    int dnsbl_allowlist_threshold;    /* postscreen_dnsbl_allowlist_threshold */
    int dnsbl_min_ttl, dnsbl_max_ttl; /* postscreen_dnsbl_min_ttl / max_ttl */
    time_t dnsbl_timeout;             /* postscreen_dnsbl_timeout */
    enum psc_action dnsbl_action;     /* postscreen_dnsbl_action */
    bool cache_enabled;               /* postscreen_cache_map is not empty */
    time_t cache_retention;           /* postscreen_cache_retention_time */
    time_t cache_cleanup_interval;    /* postscreen_cache_cleanup_interval */
    struct cache_opts cache_opts;     /* for cache_open(): the above, Redis, fallback */
    enum handoff_mode mode;           /* mxscreen_handoff */
    struct hostport backend;          /* mxscreen_backend */
    bool stats_on;                    /* mxscreen_stats_listen is set */
    struct hostport stats_listen;     /* ...its address (loopback) or UNIX socket */
    const char *backend_name;         /* its text, for log lines */
    int proxy_version;                /* mxscreen_proxy_protocol: 1 or 2 */
    time_t connect_timeout;           /* mxscreen_backend_connect_timeout */
    time_t backend_timeout;           /* mxscreen_backend_timeout */
    time_t relay_idle_timeout;        /* mxscreen_relay_idle_timeout */
    bool replay;                      /* mxscreen_deep_test_handoff = replay, not in pass mode */
    time_t probe_interval;            /* mxscreen_backend_probe_interval */
    struct ssl_ctx_st *backend_tls;   /* mxscreen_backend_tls: OpenSSL's SSL_CTX, or NULL */
    long long client_limit;           /* postscreen_client_connection_count_limit */
    int v4prefix, v6prefix;           /* mxscreen_cache_ipv4_prefix / ipv6_prefix */
    long long post_queue_limit;       /* postscreen_post_queue_limit */
    enum psc_action denylist_action;  /* postscreen_denylist_action */
    bool respectful;                  /* respectful_logging */
    bool respectful_implicit;         /* ...by default, with compatibility_level < 3.6 */
    bool upstream_proxy;              /* postscreen_upstream_proxy_protocol = haproxy */
    time_t upstream_timeout;          /* postscreen_upstream_proxy_timeout */
    const char *myhostname;           /* $myhostname */
};

struct settings *settings_build(struct conf *cf, const struct settings *prev, char *err,
                                size_t errlen);
struct settings *settings_ref(struct settings *st);
void settings_unref(struct settings *st);
enum psc_action settings_action(const struct conf *cf, enum param_id id);

#endif
