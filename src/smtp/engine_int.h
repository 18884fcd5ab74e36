/*
 * engine_int - the SMTP engine's prepared configuration, shared by
 * engine.c and engine_conf.c only.
 */
#ifndef MXS_ENGINE_INT_H
#define MXS_ENGINE_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "conf/table.h"
#include "session/settings.h"
#include "smtp/engine.h"
#include "smtp/reply.h"
#include "tls/tls.h"
#include "util/sbuf.h"

/* EHLO keywords, as Postfix's ehlo_mask(3). */
enum {
    EHLO_8BITMIME = 1 << 0,
    EHLO_AUTH = 1 << 1,
    EHLO_ETRN = 1 << 2,
    EHLO_PIPELINING = 1 << 3,
    EHLO_SIZE = 1 << 4,
    EHLO_VERP = 1 << 5,
    EHLO_VRFY = 1 << 6,
    EHLO_XCLIENT = 1 << 7,
    EHLO_XFORWARD = 1 << 8,
    EHLO_STARTTLS = 1 << 9,
    EHLO_ENHANCEDSTATUSCODES = 1 << 10,
    EHLO_DSN = 1 << 11,
    EHLO_SMTPUTF8 = 1 << 12,
    EHLO_CHUNKING = 1 << 13,
    EHLO_SILENT = 1 << 14,
};

/* What a replayed client may use only when the backend offers it too. */
#define EHLO_BACKEND_DEPENDENT                                                                     \
    (EHLO_SIZE | EHLO_VRFY | EHLO_ETRN | EHLO_ENHANCEDSTATUSCODES | EHLO_8BITMIME | EHLO_DSN |     \
     EHLO_SMTPUTF8 | EHLO_CHUNKING)

/* One element of postscreen_forbidden_commands. */
struct forbid {
    bool negate;         /* "!word" */
    char *word;          /* lower-cased word, or NULL */
    struct table *table; /* type:table, or NULL */
};

struct engine_conf {
    char *myhostname;    /* $myhostname */
    char *greeting;      /* "220 $smtpd_banner" */
    char *helo_reply;    /* "250 $myhostname" */
    char *timeout_reply; /* command time limit */
    char *reply_421;     /* length and count limits */
    char *ehlo_plain;    /* EHLO reply before TLS */
    char *ehlo_tls;      /* EHLO reply in TLS */
    long long message_size_limit;
    bool ehlo_no_vrfy;  /* disable_vrfy_command: EHLO omits VRFY */
    bool disable_vrfy;  /* postscreen_disable_vrfy_command */
    bool smtputf8;      /* smtputf8_enable */
    bool helo_required; /* postscreen_helo_required */
    long long command_count_limit;
    time_t command_time[2];      /* postscreen_command_time_limit, normal and stress */
    size_t line_limit;           /* line_length_limit */
    unsigned discard_mask;       /* postscreen_discard_ehlo_keywords */
    struct table **discard_maps; /* postscreen_discard_ehlo_keyword_address_maps */
    size_t ndiscard_maps;
    struct table *command_filter; /* postscreen_command_filter */
    struct forbid *forbid;        /* postscreen_forbidden_commands */
    size_t nforbid;
    enum psc_action action[TEST__COUNT]; /* postscreen_*_action */
    time_t ttl[TEST__COUNT];             /* postscreen_*_ttl */
    time_t min_ttl;                      /* the shortest of all TTLs (the "ignore" pass) */
    bool use_tls;                        /* offer STARTTLS */
    bool enforce_tls;                    /* require it */
    struct tls_server *tls;              /* NULL when TLS is unavailable (shared) */
    char *tls_kept;                      /* reload: why the earlier keys were kept */
    char *tls_level_warning;             /* an unsupported level that became "encrypt" */
    char *tls_problem;                   /* why TLS is unavailable */
    char *footer;                        /* postscreen_reject_footer */
    struct table **footer_maps;          /* postscreen_reject_footer_maps */
    size_t nfooter_maps;
    char *filter;         /* postscreen_expansion_filter, unescaped */
    struct reply_conf rc; /* soft_bounce and footers */
    bool info_internal;   /* info_log_address_format = internal */
    bool replay;          /* hand off after the deep tests (mxscreen_deep_test_handoff) */
};

unsigned ehlo_mask_parse(const char *text);
void ehlo_mask_str(char *buf, size_t len, unsigned mask);
void ehlo_format(struct sbuf *out, const struct engine_conf *ec, unsigned mask, long long size);

#endif
