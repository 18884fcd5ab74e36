/*
 * settings - the run-time form of a configuration; see settings.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache/cache.h"
#include "conf/table.h"
#include "dnsbl/sites.h"
#include "log/log.h"
#include "session/settings.h"
#include "stats/http.h"
#include "session/verdict.h"
#include "smtp/engine.h"
#include "tls/tls.h"
#include "util/mem.h"
#include "util/sbuf.h"

/* The action word of ID ("continue" is postscreen's old name of "ignore"). */
enum psc_action settings_action(const struct conf *cf, enum param_id id)
{
    /* Index into ACTION_WORDS: ignore, enforce, drop, continue. */
    switch (conf_num(cf, id)) {
    case 1:
        return ACTION_ENFORCE;
    case 2:
        return ACTION_DROP;
    default:
        return ACTION_IGNORE;
    }
}

/* Prefix ERR with where parameter ID was set. */
static void where_err(const struct conf *cf, enum param_id id, const char *what, char *err,
                      size_t errlen)
{
    char where[512];

    snprintf(err, errlen, "%s: parameter %s: %s", conf_where(cf, id, where, sizeof(where)),
             param_table[id].name, what);
}

/* Build run-time settings from CF (taking ownership of it on success). */
struct settings *settings_build(struct conf *cf, const struct settings *prev, char *err,
                                size_t errlen)
{
    struct settings *st = xcalloc(1, sizeof(*st));
    char e[512];

    st->refs = 1;
    st->mynetworks = addrlist_parse(conf_str(cf, P_MYNETWORKS), e, sizeof(e));
    if (st->mynetworks == NULL) {
        where_err(cf, P_MYNETWORKS, e, err, errlen);
        goto fail;
    }
    st->access = acl_parse(conf_str(cf, P_PSC_ACCESS_LIST), st->mynetworks, e, sizeof(e));
    if (st->access == NULL) {
        where_err(cf, P_PSC_ACCESS_LIST, e, err, errlen);
        goto fail;
    }
    st->mode = (enum handoff_mode)conf_num(cf, P_MXS_HANDOFF);
    const char *stats_listen = conf_str(cf, P_MXS_STATS_LISTEN);
    if (*stats_listen) {
        if (http_listen_parse(stats_listen, &st->stats_listen, e, sizeof(e)) < 0) {
            where_err(cf, P_MXS_STATS_LISTEN, e, err, errlen);
            goto fail;
        }
        st->stats_on = true;
    }
    st->backend_name = conf_str(cf, P_MXS_BACKEND);
    if (hostport_parse(st->backend_name, &st->backend, e, sizeof(e)) < 0) {
        where_err(cf, P_MXS_BACKEND, e, err, errlen);
        goto fail;
    }
    if (st->backend.wildcard) {
        where_err(cf, P_MXS_BACKEND, "the backend needs an address, not a wildcard", err, errlen);
        goto fail;
    }
    if (st->mode == HANDOFF_PASS && st->backend.sa.ss_family != AF_UNIX) {
        where_err(cf, P_MXS_BACKEND,
                  "mxscreen_handoff = pass needs the path of Postfix's smtpd pass socket "
                  "(for example /var/spool/postfix/private/smtpd)",
                  err, errlen);
        goto fail;
    }
    st->proxy_version = conf_num(cf, P_MXS_PROXY_PROTOCOL) == 0 ? 2 : 1;
    st->connect_timeout = (time_t)conf_num(cf, P_MXS_BACKEND_CONNECT_TIMEOUT);
    st->backend_timeout = (time_t)conf_num(cf, P_MXS_BACKEND_TIMEOUT);
    st->relay_idle_timeout = (time_t)conf_num(cf, P_MXS_RELAY_IDLE_TIMEOUT);
    /* The pass service takes a fresh socket: nothing to replay into. */
    st->replay = conf_num(cf, P_MXS_DEEP_TEST_HANDOFF) == 0 && st->mode != HANDOFF_PASS;
    st->probe_interval = (time_t)conf_num(cf, P_MXS_BACKEND_PROBE_INTERVAL);
    if (conf_bool(cf, P_MXS_BACKEND_TLS) &&
        (st->backend_tls = tls_client_ctx_new(e, sizeof(e))) == NULL) {
        where_err(cf, P_MXS_BACKEND_TLS, e, err, errlen);
        goto fail;
    }
    st->client_limit = conf_num(cf, P_PSC_CLIENT_CONNECTION_COUNT_LIMIT);
    st->v4prefix = (int)conf_num(cf, P_MXS_CACHE_IPV4_PREFIX);
    st->v6prefix = (int)conf_num(cf, P_MXS_CACHE_IPV6_PREFIX);
    st->post_queue_limit = conf_num(cf, P_PSC_POST_QUEUE_LIMIT);
    st->denylist_action = settings_action(cf, P_PSC_DENYLIST_ACTION);
    st->allow_ifaces = addrlist_parse(conf_str(cf, P_PSC_ALLOWLIST_INTERFACES), e, sizeof(e));
    if (st->allow_ifaces == NULL) {
        where_err(cf, P_PSC_ALLOWLIST_INTERFACES, e, err, errlen);
        goto fail;
    }
    st->pre_queue_limit = conf_num(cf, P_PSC_PRE_QUEUE_LIMIT);
    st->enabled = 0;
    const char *banner = conf_str(cf, P_PSC_GREET_BANNER);
    if (*banner) {
        struct sbuf b = SBUF_INIT;
        sbuf_printf(&b, "220-%s\r\n", banner);
        st->teaser = sbuf_take(&b);
        st->enabled |= TEST_BIT(TEST_PREGREET);
    }
    st->greet_ttl = (time_t)conf_num(cf, P_PSC_GREET_TTL);
    const char *rmap = conf_str(cf, P_PSC_DNSBL_REPLY_MAP);
    if (*rmap && (st->dnsbl_reply_map = table_open(rmap, e, sizeof(e))) == NULL) {
        where_err(cf, P_PSC_DNSBL_REPLY_MAP, e, err, errlen);
        goto fail;
    }
    const char *sites = conf_str(cf, P_PSC_DNSBL_SITES);
    if (*sites) {
        st->dnsbl_sites = dnsbl_sites_parse(sites, st->dnsbl_reply_map, e, sizeof(e));
        if (st->dnsbl_sites == NULL) {
            where_err(cf, P_PSC_DNSBL_SITES, e, err, errlen);
            goto fail;
        }
        if (st->dnsbl_sites->nsites > 0)
            st->enabled |= TEST_BIT(TEST_DNSBL);
    }
    st->dnsbl_threshold = (int)conf_num(cf, P_PSC_DNSBL_THRESHOLD);
    st->dnsbl_allowlist_threshold = (int)conf_num(cf, P_PSC_DNSBL_ALLOWLIST_THRESHOLD);
    st->dnsbl_min_ttl = (int)conf_num(cf, P_PSC_DNSBL_MIN_TTL);
    st->dnsbl_max_ttl = (int)conf_num(cf, P_PSC_DNSBL_MAX_TTL);
    st->dnsbl_timeout = (time_t)conf_num(cf, P_PSC_DNSBL_TIMEOUT);
    st->dnsbl_action = settings_action(cf, P_PSC_DNSBL_ACTION);
    st->greet_action = settings_action(cf, P_PSC_GREET_ACTION);
    if (conf_bool(cf, P_PSC_PIPEL_ENABLE))
        st->enabled |= TEST_BIT(TEST_PIPELINING);
    if (conf_bool(cf, P_PSC_NSMTP_ENABLE))
        st->enabled |= TEST_BIT(TEST_NON_SMTP);
    if (conf_bool(cf, P_PSC_BARLF_ENABLE))
        st->enabled |= TEST_BIT(TEST_BARE_NEWLINE);
    st->cache_enabled = *conf_str(cf, P_PSC_CACHE_MAP) != '\0';
    if (st->cache_enabled && cache_map_check(conf_str(cf, P_PSC_CACHE_MAP), e, sizeof(e)) < 0) {
        where_err(cf, P_PSC_CACHE_MAP, e, err, errlen);
        goto fail;
    }
    st->cache_retention = (time_t)conf_num(cf, P_PSC_CACHE_RETENTION_TIME);
    st->cache_cleanup_interval = (time_t)conf_num(cf, P_PSC_CACHE_CLEANUP_INTERVAL);
    struct cache_opts *co = &st->cache_opts;
    co->retention = st->cache_retention;
    co->cleanup_interval = st->cache_cleanup_interval;
    co->enabled = st->enabled;
    co->redis_password = conf_str(cf, P_MXS_REDIS_PASSWORD);
    co->redis_user = conf_str(cf, P_MXS_REDIS_USER);
    co->redis_prefix = conf_str(cf, P_MXS_REDIS_PREFIX);
    co->redis_timeout_ms = (int)conf_num(cf, P_MXS_REDIS_TIMEOUT_MS);
    co->fallback_map =
        conf_bool(cf, P_MXS_CACHE_FALLBACK) ? conf_str(cf, P_MXS_CACHE_FALLBACK_MAP) : NULL;
    if (strlen(co->redis_prefix) > 200) {
        where_err(cf, P_MXS_REDIS_PREFIX, "longer than 200 characters", err, errlen);
        goto fail;
    }
    if (st->cache_enabled && cache_map_is_redis(conf_str(cf, P_PSC_CACHE_MAP)) &&
        co->fallback_map) {
        if (*co->fallback_map == '\0') {
            co->fallback_map = NULL;
        } else if (cache_map_is_redis(co->fallback_map)) {
            where_err(cf, P_MXS_CACHE_FALLBACK_MAP, "the fallback must be a local map (lmdb:)", err,
                      errlen);
            goto fail;
        } else if (cache_map_check(co->fallback_map, e, sizeof(e)) < 0) {
            where_err(cf, P_MXS_CACHE_FALLBACK_MAP, e, err, errlen);
            goto fail;
        }
    }
    st->engine = engine_conf_build(cf, prev ? prev->engine : NULL, err, errlen);
    if (st->engine == NULL)
        goto fail;
    st->respectful = conf_bool(cf, P_RESPECTFUL_LOGGING);
    st->respectful_implicit = !st->respectful && !conf_is_set(cf, P_RESPECTFUL_LOGGING);
    st->upstream_proxy = conf_num(cf, P_PSC_UPSTREAM_PROXY_PROTOCOL) == 1;
    st->upstream_timeout = (time_t)conf_num(cf, P_PSC_UPSTREAM_PROXY_TIMEOUT);
    st->myhostname = conf_str(cf, P_MYHOSTNAME);
    st->cf = cf;
    return st;
fail:
    dnsbl_sites_free(st->dnsbl_sites);
    table_free(st->dnsbl_reply_map);
    free(st->teaser);
    addrlist_free(st->allow_ifaces);
    addrlist_free(st->mynetworks);
    acl_free(st->access);
    free(st);
    return NULL;
}

/* Take a reference. */
struct settings *settings_ref(struct settings *st)
{
    st->refs++;
    return st;
}

/* Drop a reference; the last one frees everything. */
void settings_unref(struct settings *st)
{
    if (st == NULL || --st->refs > 0)
        return;
    acl_free(st->access);
    addrlist_free(st->mynetworks);
    addrlist_free(st->allow_ifaces);
    engine_conf_free(st->engine);
    SSL_CTX_free(st->backend_tls);
    dnsbl_sites_free(st->dnsbl_sites);
    table_free(st->dnsbl_reply_map);
    free(st->teaser);
    conf_free(st->cf);
    free(st);
}
