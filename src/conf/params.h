/*
 * params - the parameter table: every parameter mxscreen knows
 *
 * One row per parameter: its id, name, type, default (main.cf syntax, may
 * refer to other parameters), bounds, default time unit, allowed words and
 * flags.  It holds every postscreen_* parameter of Postfix 3.7 with
 * postscreen's defaults and bounds (legacy names included, without a
 * default so that "${old?{$old}:{new}}" chains work as in Postfix), the
 * non-postscreen parameters postscreen reads, and mxscreen's own
 * mxscreen_* parameters.  A Postfix main.cf therefore loads as is.
 *
 * X(ID, name, type, default, min, max, unit, words, flags)
 *   type:  CT_STR, CT_BOOL, CT_INT, CT_TIME, CT_ENUM
 *   min/max: bounds for CT_INT and CT_TIME (seconds); PF_NOMIN/PF_NOMAX
 *   unit:  default unit letter of a CT_TIME, 0 otherwise
 *   words: "a|b|c" for CT_ENUM ("|a|b" also allows the empty value)
 */
#ifndef MXS_PARAMS_H
#define MXS_PARAMS_H

#include <stdbool.h>

enum conf_type {
    CT_STR,  /* free text, expanded */
    CT_BOOL, /* yes or no */
    CT_INT,  /* decimal integer within bounds */
    CT_TIME, /* integer with an optional unit s, m, h, d or w */
    CT_ENUM, /* one of a fixed set of words */
};

/* Flags of a parameter. */
enum {
    PF_LEGACY = 1 << 0, /* an old name read through a new name's default */
    PF_RAW = 1 << 1,    /* value is used as written, never $-expanded */
    PF_NOMIN = 1 << 2,  /* no lower bound */
    PF_NOMAX = 1 << 3,  /* no upper bound */
    PF_ACTION = 1 << 4, /* an action: "bad NAME value: VALUE" errors */
};

#define ACTION_WORDS "ignore|enforce|drop|continue"

/* clang-format off */
#define CONF_PARAMS(X) \
    /* postscreen(8) of Postfix 3.7: every live parameter */ \
    X(PSC_ACCESS_LIST, "postscreen_access_list", CT_STR, "permit_mynetworks", 0, 0, 0, 0, 0) \
    X(PSC_ALLOWLIST_INTERFACES, "postscreen_allowlist_interfaces", CT_STR, "${postscreen_whitelist_interfaces?{$postscreen_whitelist_interfaces}:{static:all}}", 0, 0, 0, 0, 0) \
    X(PSC_BARLF_ACTION, "postscreen_bare_newline_action", CT_ENUM, "ignore", 0, 0, 0, ACTION_WORDS, PF_ACTION) \
    X(PSC_BARLF_ENABLE, "postscreen_bare_newline_enable", CT_BOOL, "no", 0, 0, 0, 0, 0) \
    X(PSC_BARLF_TTL, "postscreen_bare_newline_ttl", CT_TIME, "30d", 1, 0, 'd', 0, PF_NOMAX) \
    X(PSC_CACHE_CLEANUP_INTERVAL, "postscreen_cache_cleanup_interval", CT_TIME, "12h", 0, 0, 'h', 0, PF_NOMAX) \
    X(PSC_CACHE_MAP, "postscreen_cache_map", CT_STR, "btree:$data_directory/postscreen_cache", 0, 0, 0, 0, 0) \
    X(PSC_CACHE_RETENTION_TIME, "postscreen_cache_retention_time", CT_TIME, "7d", 1, 0, 'd', 0, PF_NOMAX) \
    X(PSC_CLIENT_CONNECTION_COUNT_LIMIT, "postscreen_client_connection_count_limit", CT_INT, "$smtpd_client_connection_count_limit", 0, 0, 0, 0, PF_NOMAX) \
    X(PSC_COMMAND_COUNT_LIMIT, "postscreen_command_count_limit", CT_INT, "20", 1, 0, 0, 0, PF_NOMAX) \
    X(PSC_COMMAND_FILTER, "postscreen_command_filter", CT_STR, "", 0, 0, 0, 0, 0) \
    X(PSC_COMMAND_TIME_LIMIT, "postscreen_command_time_limit", CT_TIME, "${stress?{10}:{300}}s", 1, 0, 's', 0, PF_NOMAX) \
    X(PSC_DENYLIST_ACTION, "postscreen_denylist_action", CT_ENUM, "${postscreen_blacklist_action?{$postscreen_blacklist_action}:{ignore}}", 0, 0, 0, ACTION_WORDS, PF_ACTION) \
    X(PSC_DISABLE_VRFY_COMMAND, "postscreen_disable_vrfy_command", CT_BOOL, "$disable_vrfy_command", 0, 0, 0, 0, 0) \
    X(PSC_DISCARD_EHLO_KEYWORD_ADDRESS_MAPS, "postscreen_discard_ehlo_keyword_address_maps", CT_STR, "$smtpd_discard_ehlo_keyword_address_maps", 0, 0, 0, 0, 0) \
    X(PSC_DISCARD_EHLO_KEYWORDS, "postscreen_discard_ehlo_keywords", CT_STR, "$smtpd_discard_ehlo_keywords", 0, 0, 0, 0, 0) \
    X(PSC_DNSBL_ACTION, "postscreen_dnsbl_action", CT_ENUM, "ignore", 0, 0, 0, ACTION_WORDS, PF_ACTION) \
    X(PSC_DNSBL_ALLOWLIST_THRESHOLD, "postscreen_dnsbl_allowlist_threshold", CT_INT, "${postscreen_dnsbl_whitelist_threshold?{$postscreen_dnsbl_whitelist_threshold}:{0}}", 0, 0, 0, 0, PF_NOMIN | PF_NOMAX) \
    X(PSC_DNSBL_MAX_TTL, "postscreen_dnsbl_max_ttl", CT_TIME, "${postscreen_dnsbl_ttl?{$postscreen_dnsbl_ttl}:{1}}h", 1, 0, 'h', 0, PF_NOMAX) \
    X(PSC_DNSBL_MIN_TTL, "postscreen_dnsbl_min_ttl", CT_TIME, "60s", 1, 0, 's', 0, PF_NOMAX) \
    X(PSC_DNSBL_REPLY_MAP, "postscreen_dnsbl_reply_map", CT_STR, "", 0, 0, 0, 0, 0) \
    X(PSC_DNSBL_SITES, "postscreen_dnsbl_sites", CT_STR, "", 0, 0, 0, 0, 0) \
    X(PSC_DNSBL_THRESHOLD, "postscreen_dnsbl_threshold", CT_INT, "1", 1, 0, 0, 0, PF_NOMAX) \
    X(PSC_DNSBL_TIMEOUT, "postscreen_dnsbl_timeout", CT_TIME, "10s", 1, 0, 's', 0, PF_NOMAX) \
    X(PSC_ENFORCE_TLS, "postscreen_enforce_tls", CT_BOOL, "$smtpd_enforce_tls", 0, 0, 0, 0, 0) \
    X(PSC_EXPANSION_FILTER, "postscreen_expansion_filter", CT_STR, "$smtpd_expansion_filter", 0, 0, 0, 0, PF_RAW) \
    X(PSC_FORBIDDEN_COMMANDS, "postscreen_forbidden_commands", CT_STR, "$smtpd_forbidden_commands", 0, 0, 0, 0, 0) \
    X(PSC_GREET_ACTION, "postscreen_greet_action", CT_ENUM, "ignore", 0, 0, 0, ACTION_WORDS, PF_ACTION) \
    X(PSC_GREET_BANNER, "postscreen_greet_banner", CT_STR, "$smtpd_banner", 0, 0, 0, 0, 0) \
    X(PSC_GREET_TTL, "postscreen_greet_ttl", CT_TIME, "1d", 1, 0, 'd', 0, PF_NOMAX) \
    X(PSC_GREET_WAIT, "postscreen_greet_wait", CT_TIME, "${stress?{2}:{6}}s", 1, 0, 's', 0, PF_NOMAX) \
    X(PSC_HELO_REQUIRED, "postscreen_helo_required", CT_BOOL, "$smtpd_helo_required", 0, 0, 0, 0, 0) \
    X(PSC_NSMTP_ACTION, "postscreen_non_smtp_command_action", CT_ENUM, "drop", 0, 0, 0, ACTION_WORDS, PF_ACTION) \
    X(PSC_NSMTP_ENABLE, "postscreen_non_smtp_command_enable", CT_BOOL, "no", 0, 0, 0, 0, 0) \
    X(PSC_NSMTP_TTL, "postscreen_non_smtp_command_ttl", CT_TIME, "30d", 1, 0, 'd', 0, PF_NOMAX) \
    X(PSC_PIPEL_ACTION, "postscreen_pipelining_action", CT_ENUM, "enforce", 0, 0, 0, ACTION_WORDS, PF_ACTION) \
    X(PSC_PIPEL_ENABLE, "postscreen_pipelining_enable", CT_BOOL, "no", 0, 0, 0, 0, 0) \
    X(PSC_PIPEL_TTL, "postscreen_pipelining_ttl", CT_TIME, "30d", 1, 0, 'd', 0, PF_NOMAX) \
    X(PSC_POST_QUEUE_LIMIT, "postscreen_post_queue_limit", CT_INT, "$default_process_limit", 5, 0, 0, 0, PF_NOMAX) \
    X(PSC_PRE_QUEUE_LIMIT, "postscreen_pre_queue_limit", CT_INT, "$default_process_limit", 10, 0, 0, 0, PF_NOMAX) \
    X(PSC_REJECT_FOOTER, "postscreen_reject_footer", CT_STR, "$smtpd_reject_footer", 0, 0, 0, 0, PF_RAW) \
    X(PSC_REJECT_FOOTER_MAPS, "postscreen_reject_footer_maps", CT_STR, "$smtpd_reject_footer_maps", 0, 0, 0, 0, 0) \
    X(PSC_TLS_SECURITY_LEVEL, "postscreen_tls_security_level", CT_ENUM, "$smtpd_tls_security_level", 0, 0, 0, "|none|may|encrypt|verify|secure|fingerprint|dane|dane-only", 0) \
    X(PSC_UPSTREAM_PROXY_PROTOCOL, "postscreen_upstream_proxy_protocol", CT_ENUM, "", 0, 0, 0, "|haproxy", 0) \
    X(PSC_UPSTREAM_PROXY_TIMEOUT, "postscreen_upstream_proxy_timeout", CT_TIME, "5s", 1, 0, 's', 0, PF_NOMAX) \
    X(PSC_USE_TLS, "postscreen_use_tls", CT_BOOL, "$smtpd_use_tls", 0, 0, 0, 0, 0) \
    X(PSC_WATCHDOG_TIMEOUT, "postscreen_watchdog_timeout", CT_TIME, "10s", 10, 0, 's', 0, PF_NOMAX) \
    /* legacy names, read through the new names' defaults */ \
    X(PSC_BLACKLIST_ACTION, "postscreen_blacklist_action", CT_ENUM, NULL, 0, 0, 0, ACTION_WORDS, PF_LEGACY | PF_ACTION) \
    X(PSC_WHITELIST_INTERFACES, "postscreen_whitelist_interfaces", CT_STR, NULL, 0, 0, 0, 0, PF_LEGACY) \
    X(PSC_DNSBL_WHITELIST_THRESHOLD, "postscreen_dnsbl_whitelist_threshold", CT_INT, NULL, 0, 0, 0, 0, PF_LEGACY | PF_NOMIN | PF_NOMAX) \
    X(PSC_DNSBL_TTL, "postscreen_dnsbl_ttl", CT_TIME, NULL, 1, 0, 'h', 0, PF_LEGACY | PF_NOMAX) \
    /* what postscreen reads from outside its own namespace */ \
    X(SMTPD_SERVICE_NAME, "smtpd_service_name", CT_STR, "smtpd", 0, 0, 0, 0, 0) \
    X(DNSBLOG_SERVICE_NAME, "dnsblog_service_name", CT_STR, "dnsblog", 0, 0, 0, 0, 0) \
    X(TLSPROXY_SERVICE_NAME, "tlsproxy_service_name", CT_STR, "tlsproxy", 0, 0, 0, 0, 0) \
    X(DNSBLOG_REPLY_DELAY, "dnsblog_reply_delay", CT_TIME, "0s", 0, 0, 's', 0, PF_NOMAX) \
    X(COMPATIBILITY_LEVEL, "compatibility_level", CT_STR, "3.6", 0, 0, 0, 0, 0) \
    X(RESPECTFUL_LOGGING, "respectful_logging", CT_BOOL, "${{$compatibility_level} <level {3.6} ? {no} : {yes}}", 0, 0, 0, 0, 0) \
    X(SMTPD_BANNER, "smtpd_banner", CT_STR, "$myhostname ESMTP $mail_name", 0, 0, 0, 0, 0) \
    X(MAIL_NAME, "mail_name", CT_STR, "Postfix", 0, 0, 0, 0, 0) \
    X(MYHOSTNAME, "myhostname", CT_STR, "", 0, 0, 0, 0, 0) \
    X(MYDOMAIN, "mydomain", CT_STR, "", 0, 0, 0, 0, 0) \
    X(MYNETWORKS, "mynetworks", CT_STR, "", 0, 0, 0, 0, 0) \
    X(MYNETWORKS_STYLE, "mynetworks_style", CT_ENUM, "host", 0, 0, 0, "host|subnet|class", 0) \
    X(LINE_LENGTH_LIMIT, "line_length_limit", CT_INT, "2048", 512, 0, 0, 0, PF_NOMAX) \
    X(MESSAGE_SIZE_LIMIT, "message_size_limit", CT_INT, "10240000", 0, 0, 0, 0, PF_NOMAX) \
    X(SMTPUTF8_ENABLE, "smtputf8_enable", CT_BOOL, "yes", 0, 0, 0, 0, 0) \
    X(DISABLE_VRFY_COMMAND, "disable_vrfy_command", CT_BOOL, "no", 0, 0, 0, 0, 0) \
    X(SOFT_BOUNCE, "soft_bounce", CT_BOOL, "no", 0, 0, 0, 0, 0) \
    X(DELAY_LOGGING_RESOLUTION_LIMIT, "delay_logging_resolution_limit", CT_INT, "2", 0, 6, 0, 0, 0) \
    X(INFO_LOG_ADDRESS_FORMAT, "info_log_address_format", CT_ENUM, "external", 0, 0, 0, "external|internal", 0) \
    X(INET_PROTOCOLS, "inet_protocols", CT_STR, "all", 0, 0, 0, 0, 0) \
    X(DATA_DIRECTORY, "data_directory", CT_STR, "/var/lib/mxscreen", 0, 0, 0, 0, 0) \
    X(QUEUE_DIRECTORY, "queue_directory", CT_STR, "/var/spool/postfix", 0, 0, 0, 0, 0) \
    X(MAX_IDLE, "max_idle", CT_TIME, "100s", 1, 0, 's', 0, PF_NOMAX) \
    X(PARENT_DOMAIN_MATCHES_SUBDOMAINS, "parent_domain_matches_subdomains", CT_STR, "debug_peer_list,fast_flush_domains,mynetworks,permit_mx_backup_networks,qmqpd_authorized_clients,relay_domains,smtpd_access_maps", 0, 0, 0, 0, 0) \
    X(TLSPROXY_WATCHDOG_TIMEOUT, "tlsproxy_watchdog_timeout", CT_TIME, "10s", 10, 0, 's', 0, PF_NOMAX) \
    X(DNS_NCACHE_TTL_FIX_ENABLE, "dns_ncache_ttl_fix_enable", CT_BOOL, "no", 0, 0, 0, 0, 0) \
    X(DEFAULT_PROCESS_LIMIT, "default_process_limit", CT_INT, "100", 1, 0, 0, 0, PF_NOMAX) \
    X(SMTPD_CLIENT_CONNECTION_COUNT_LIMIT, "smtpd_client_connection_count_limit", CT_INT, "50", 0, 0, 0, 0, PF_NOMAX) \
    X(SMTPD_COMMAND_FILTER, "smtpd_command_filter", CT_STR, "", 0, 0, 0, 0, 0) \
    X(SMTPD_DISCARD_EHLO_KEYWORD_ADDRESS_MAPS, "smtpd_discard_ehlo_keyword_address_maps", CT_STR, "", 0, 0, 0, 0, 0) \
    X(SMTPD_DISCARD_EHLO_KEYWORDS, "smtpd_discard_ehlo_keywords", CT_STR, "", 0, 0, 0, 0, 0) \
    X(SMTPD_ENFORCE_TLS, "smtpd_enforce_tls", CT_BOOL, "no", 0, 0, 0, 0, 0) \
    X(SMTPD_USE_TLS, "smtpd_use_tls", CT_BOOL, "no", 0, 0, 0, 0, 0) \
    X(SMTPD_EXPANSION_FILTER, "smtpd_expansion_filter", CT_STR, "\t !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~", 0, 0, 0, 0, PF_RAW) \
    X(SMTPD_FORBIDDEN_COMMANDS, "smtpd_forbidden_commands", CT_STR, "CONNECT GET POST regexp:{{/^[^A-Z]/ Bogus}}", 0, 0, 0, 0, 0) \
    X(SMTPD_HELO_REQUIRED, "smtpd_helo_required", CT_BOOL, "no", 0, 0, 0, 0, 0) \
    X(SMTPD_REJECT_FOOTER, "smtpd_reject_footer", CT_STR, "", 0, 0, 0, 0, PF_RAW) \
    X(SMTPD_REJECT_FOOTER_MAPS, "smtpd_reject_footer_maps", CT_STR, "", 0, 0, 0, 0, 0) \
    X(SMTPD_TLS_SECURITY_LEVEL, "smtpd_tls_security_level", CT_STR, "", 0, 0, 0, 0, 0) \
    X(SMTPD_TLS_CERT_FILE, "smtpd_tls_cert_file", CT_STR, "", 0, 0, 0, 0, 0) \
    X(SMTPD_TLS_KEY_FILE, "smtpd_tls_key_file", CT_STR, "$smtpd_tls_cert_file", 0, 0, 0, 0, 0) \
    X(SMTPD_TLS_CHAIN_FILES, "smtpd_tls_chain_files", CT_STR, "", 0, 0, 0, 0, 0) \
    X(SMTPD_TLS_PROTOCOLS, "smtpd_tls_protocols", CT_STR, ">=TLSv1.2", 0, 0, 0, 0, 0) \
    X(SMTPD_TLS_MANDATORY_PROTOCOLS, "smtpd_tls_mandatory_protocols", CT_STR, ">=TLSv1.2", 0, 0, 0, 0, 0) \
    X(SMTPD_TLS_CIPHERS, "smtpd_tls_ciphers", CT_STR, "medium", 0, 0, 0, 0, 0) \
    X(SMTPD_TLS_MANDATORY_CIPHERS, "smtpd_tls_mandatory_ciphers", CT_STR, "medium", 0, 0, 0, 0, 0) \
    X(SMTPD_TLS_EXCLUDE_CIPHERS, "smtpd_tls_exclude_ciphers", CT_STR, "", 0, 0, 0, 0, 0) \
    X(SMTPD_TLS_LOGLEVEL, "smtpd_tls_loglevel", CT_INT, "0", 0, 0, 0, 0, PF_NOMAX) \
    X(SYSLOG_NAME, "syslog_name", CT_STR, "mxscreen", 0, 0, 0, 0, 0) \
    X(SYSLOG_FACILITY, "syslog_facility", CT_STR, "mail", 0, 0, 0, 0, 0) \
    X(MAILLOG_FILE, "maillog_file", CT_STR, "", 0, 0, 0, 0, 0) \
    /* mxscreen's own */ \
    X(MXS_LISTEN, "mxscreen_listen", CT_STR, "*:25", 0, 0, 0, 0, 0) \
    X(MXS_HANDOFF, "mxscreen_handoff", CT_ENUM, "proxy", 0, 0, 0, "proxy|xclient|pass", 0) \
    X(MXS_BACKEND, "mxscreen_backend", CT_STR, "127.0.0.1:10025", 0, 0, 0, 0, 0) \
    X(MXS_PROXY_PROTOCOL, "mxscreen_proxy_protocol", CT_ENUM, "v2", 0, 0, 0, "v2|v1", 0) \
    X(MXS_BACKEND_CONNECT_TIMEOUT, "mxscreen_backend_connect_timeout", CT_TIME, "5s", 1, 0, 's', 0, PF_NOMAX) \
    X(MXS_BACKEND_TIMEOUT, "mxscreen_backend_timeout", CT_TIME, "100s", 1, 0, 's', 0, PF_NOMAX) \
    X(MXS_RELAY_IDLE_TIMEOUT, "mxscreen_relay_idle_timeout", CT_TIME, "1h", 1, 0, 's', 0, PF_NOMAX) \
    X(MXS_SHUTDOWN_TIMEOUT, "mxscreen_shutdown_timeout", CT_TIME, "30s", 0, 0, 's', 0, PF_NOMAX) \
    X(MXS_DNS_SERVERS, "mxscreen_dns_servers", CT_STR, "", 0, 0, 0, 0, 0) \
    X(MXS_USER, "mxscreen_user", CT_STR, "mxscreen", 0, 0, 0, 0, 0) \
    X(MXS_CHROOT, "mxscreen_chroot", CT_STR, "", 0, 0, 0, 0, 0) \
    X(MXS_DEEP_TEST_HANDOFF, "mxscreen_deep_test_handoff", CT_ENUM, "replay", 0, 0, 0, "replay|reconnect", 0) \
    X(MXS_CACHE_IPV4_PREFIX, "mxscreen_cache_ipv4_prefix", CT_INT, "32", 1, 32, 0, 0, 0) \
    X(MXS_CACHE_IPV6_PREFIX, "mxscreen_cache_ipv6_prefix", CT_INT, "128", 1, 128, 0, 0, 0) \
    X(MXS_BACKEND_TLS, "mxscreen_backend_tls", CT_BOOL, "no", 0, 0, 0, 0, 0) \
    X(MXS_BACKEND_PROBE_INTERVAL, "mxscreen_backend_probe_interval", CT_TIME, "300s", 1, 0, 's', 0, PF_NOMAX) \
    X(MXS_REDIS_PASSWORD, "mxscreen_redis_password", CT_STR, "", 0, 0, 0, 0, 0) \
    X(MXS_REDIS_USER, "mxscreen_redis_user", CT_STR, "", 0, 0, 0, 0, 0) \
    X(MXS_REDIS_PREFIX, "mxscreen_redis_prefix", CT_STR, "mxscreen:", 0, 0, 0, 0, 0) \
    X(MXS_REDIS_TIMEOUT_MS, "mxscreen_redis_timeout_ms", CT_INT, "200", 1, 60000, 0, 0, 0) \
    X(MXS_CACHE_FALLBACK, "mxscreen_cache_fallback", CT_BOOL, "yes", 0, 0, 0, 0, 0) \
    X(MXS_CACHE_FALLBACK_MAP, "mxscreen_cache_fallback_map", CT_STR, "lmdb:$data_directory/mxscreen_fallback_cache", 0, 0, 0, 0, 0) \
    X(MXS_REUSEPORT, "mxscreen_reuseport", CT_BOOL, "no", 0, 0, 0, 0, 0) \
    X(MXS_STATS_LISTEN, "mxscreen_stats_listen", CT_STR, "", 0, 0, 0, 0, 0) \
    X(MXS_LOG_TARGET, "mxscreen_log_target", CT_ENUM, "stderr", 0, 0, 0, "stderr|syslog", 0)
/* clang-format on */

enum param_id {
#define PARAM_ENUM(id, name, type, def, min, max, unit, words, flags) P_##id,
    CONF_PARAMS(PARAM_ENUM)
#undef PARAM_ENUM
        P__COUNT
};

struct param_def {
    const char *name;
    enum conf_type type;
    const char *def; /* NULL: undefined unless set (legacy names) */
    long long min, max;
    char unit;
    const char *words;
    unsigned flags;
};

extern const struct param_def param_table[P__COUNT];

int param_lookup(const char *name);

#endif
