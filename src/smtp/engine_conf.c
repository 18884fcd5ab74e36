/*
 * engine_conf - what the SMTP engine prepares once per configuration;
 * see engine.h.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log/log.h"
#include "session/settings.h"
#include "smtp/engine_int.h"
#include "util/list.h"
#include "util/mem.h"

/* postscreen's EHLO keyword names, in the order str_ehlo_mask() prints them. */
static const struct {
    const char *name;
    unsigned mask;
} ehlo_names[] = {
    {"8BITMIME", EHLO_8BITMIME},
    {"AUTH", EHLO_AUTH},
    {"ETRN", EHLO_ETRN},
    {"PIPELINING", EHLO_PIPELINING},
    {"SIZE", EHLO_SIZE},
    {"VERP", EHLO_VERP},
    {"VRFY", EHLO_VRFY},
    {"XCLIENT", EHLO_XCLIENT},
    {"XFORWARD", EHLO_XFORWARD},
    {"STARTTLS", EHLO_STARTTLS},
    {"ENHANCEDSTATUSCODES", EHLO_ENHANCEDSTATUSCODES},
    {"DSN", EHLO_DSN},
    {"EHLO_MASK_SMTPUTF8", EHLO_SMTPUTF8}, /* sic: Postfix prints this name */
    {"SMTPUTF8", EHLO_SMTPUTF8},
    {"CHUNKING", EHLO_CHUNKING},
    {"SILENT-DISCARD", EHLO_SILENT},
};
#define NEHLO (sizeof(ehlo_names) / sizeof(ehlo_names[0]))

/* The mask of a keyword list; unknown words are ignored, as in Postfix. */
unsigned ehlo_mask_parse(const char *text)
{
    const char *cur = text, *el;
    size_t len;
    unsigned mask = 0;

    while ((el = list_next(&cur, &len)) != NULL)
        for (size_t i = 0; i < NEHLO; i++)
            if (strlen(ehlo_names[i].name) == len && strncasecmp(el, ehlo_names[i].name, len) == 0)
                mask |= ehlo_names[i].mask;
    return mask;
}

/* The keyword names of MASK, space separated, as postscreen logs them. */
void ehlo_mask_str(char *buf, size_t len, unsigned mask)
{
    size_t used = 0;

    buf[0] = '\0';
    for (size_t i = 0; i < NEHLO && mask; i++) {
        if (mask & ehlo_names[i].mask) {
            mask &= ~ehlo_names[i].mask;
            int n = snprintf(buf + used, len - used, "%s%s", used ? " " : "", ehlo_names[i].name);
            if (n < 0 || (size_t)n >= len - used)
                break;
            used += (size_t)n;
        }
    }
}

/* Format the EHLO reply for the keywords not in MASK (spec §3.3 order),
 * with SIZE's limit SIZE (0: none). */
void ehlo_format(struct sbuf *out, const struct engine_conf *ec, unsigned mask, long long size)
{
    size_t last = out->len;

#define EHLO_ADD(...)                                                                              \
    do {                                                                                           \
        last = out->len;                                                                           \
        sbuf_printf(out, __VA_ARGS__);                                                             \
    } while (0)
    sbuf_printf(out, "250-%s\r\n", ec->myhostname);
    if (!(mask & EHLO_SIZE)) {
        if (size > 0)
            EHLO_ADD("250-SIZE %lld\r\n", size);
        else
            EHLO_ADD("250-SIZE\r\n");
    }
    if (!(mask & EHLO_VRFY) && !ec->ehlo_no_vrfy)
        EHLO_ADD("250-VRFY\r\n");
    if (!(mask & EHLO_ETRN))
        EHLO_ADD("250-ETRN\r\n");
    if (!(mask & EHLO_STARTTLS) && ec->use_tls)
        EHLO_ADD("250-STARTTLS\r\n");
    if (!(mask & EHLO_ENHANCEDSTATUSCODES))
        EHLO_ADD("250-ENHANCEDSTATUSCODES\r\n");
    if (!(mask & EHLO_8BITMIME))
        EHLO_ADD("250-8BITMIME\r\n");
    if (!(mask & EHLO_DSN))
        EHLO_ADD("250-DSN\r\n");
    if (ec->smtputf8 && !(mask & EHLO_SMTPUTF8))
        EHLO_ADD("250-SMTPUTF8\r\n");
    if (!(mask & EHLO_CHUNKING))
        EHLO_ADD("250-CHUNKING\r\n");
#undef EHLO_ADD
    out->s[last + 3] = ' ';
}

/* Postfix's unescape(): \a \b \f \n \r \t \v \\ and \ooo. */
static char *unescape(const char *s)
{
    struct sbuf b = SBUF_INIT;

    while (*s) {
        if (*s != '\\' || s[1] == '\0') {
            sbuf_addc(&b, *s++);
            continue;
        }
        s++;
        const char *names = "abfnrtv", *vals = "\a\b\f\n\r\t\v";
        const char *n = strchr(names, *s);
        if (n && *s) {
            sbuf_addc(&b, vals[n - names]);
            s++;
        } else if (*s >= '0' && *s <= '7') {
            int v = 0;
            for (int i = 0; i < 3 && *s >= '0' && *s <= '7'; i++)
                v = v * 8 + (*s++ - '0');
            sbuf_addc(&b, (char)v);
        } else {
            sbuf_addc(&b, *s++);
        }
    }
    if (b.s == NULL)
        sbuf_adds(&b, "");
    return sbuf_take(&b);
}

/* Open the tables of a "type:name, type:name" list. */
static int open_maps(const char *text, struct table ***out, size_t *n, char *err, size_t errlen)
{
    const char *cur = text, *el;
    size_t len;

    *out = NULL;
    *n = 0;
    while ((el = list_next(&cur, &len)) != NULL) {
        char *spec = xstrndup(el, len);
        struct table *t = table_open(spec, err, errlen);
        free(spec);
        if (t == NULL)
            return -1;
        *out = xrealloc(*out, (*n + 1) * sizeof(**out));
        (*out)[(*n)++] = t;
    }
    return 0;
}

/* Parse postscreen_forbidden_commands: words, "!word" and type:table. */
static int parse_forbidden(struct engine_conf *ec, const char *text, char *err, size_t errlen)
{
    const char *cur = text, *el;
    size_t len;

    while ((el = list_next(&cur, &len)) != NULL) {
        struct forbid f = {0};
        if (*el == '!') {
            f.negate = true;
            el++;
            len--;
        }
        char *word = xstrndup(el, len);
        if (strchr(word, ':') && word[0] != '[') {
            f.table = table_open(word, err, errlen);
            free(word);
            if (f.table == NULL)
                return -1;
        } else {
            for (char *p = word; *p; p++)
                *p = (char)tolower((unsigned char)*p);
            f.word = word;
        }
        ec->forbid = xrealloc(ec->forbid, (ec->nforbid + 1) * sizeof(*ec->forbid));
        ec->forbid[ec->nforbid++] = f;
    }
    return 0;
}

/* Fill ERR with where parameter ID was set, as settings.c does. */
static void where_err(const struct conf *cf, enum param_id id, const char *text, char *err,
                      size_t errlen)
{
    char where[512];

    snprintf(err, errlen, "%s: parameter %s: %s", conf_where(cf, id, where, sizeof(where)),
             param_table[id].name, text);
}

/* Build the engine's configuration; see engine.h. */
struct engine_conf *engine_conf_build(const struct conf *cf, const struct engine_conf *prev,
                                      char *err, size_t errlen)
{
    struct engine_conf *ec = xcalloc(1, sizeof(*ec));
    struct sbuf b = SBUF_INIT;
    char e[512];

    ec->myhostname = xstrdup(conf_str(cf, P_MYHOSTNAME));
    sbuf_printf(&b, "220 %s\r\n", conf_str(cf, P_SMTPD_BANNER));
    ec->greeting = sbuf_take(&b);
    sbuf_printf(&b, "250 %s\r\n", ec->myhostname);
    ec->helo_reply = sbuf_take(&b);
    sbuf_printf(&b, "421 4.4.2 %s Error: timeout exceeded\r\n", ec->myhostname);
    ec->timeout_reply = sbuf_take(&b);
    sbuf_printf(&b, "421 %s Service unavailable - try again later\r\n", ec->myhostname);
    ec->reply_421 = sbuf_take(&b);

    ec->message_size_limit = conf_num(cf, P_MESSAGE_SIZE_LIMIT);
    ec->ehlo_no_vrfy = conf_bool(cf, P_DISABLE_VRFY_COMMAND);
    ec->disable_vrfy = conf_bool(cf, P_PSC_DISABLE_VRFY_COMMAND);
    ec->smtputf8 = conf_bool(cf, P_SMTPUTF8_ENABLE);
    ec->helo_required = conf_bool(cf, P_PSC_HELO_REQUIRED);
    ec->command_count_limit = conf_num(cf, P_PSC_COMMAND_COUNT_LIMIT);
    ec->command_time[0] = (time_t)conf_num_stress(cf, P_PSC_COMMAND_TIME_LIMIT, false);
    ec->command_time[1] = (time_t)conf_num_stress(cf, P_PSC_COMMAND_TIME_LIMIT, true);
    ec->line_limit = (size_t)conf_num(cf, P_LINE_LENGTH_LIMIT);
    ec->discard_mask = ehlo_mask_parse(conf_str(cf, P_PSC_DISCARD_EHLO_KEYWORDS));

    static const enum param_id action_param[TEST__COUNT] = {P_PSC_GREET_ACTION, P_PSC_DNSBL_ACTION,
                                                            P_PSC_PIPEL_ACTION, P_PSC_NSMTP_ACTION,
                                                            P_PSC_BARLF_ACTION};
    static const enum param_id ttl_param[TEST__COUNT] = {
        P_PSC_GREET_TTL, P_PSC_DNSBL_MIN_TTL, P_PSC_PIPEL_TTL, P_PSC_NSMTP_TTL, P_PSC_BARLF_TTL};
    ec->min_ttl = 0;
    for (int t = 0; t < TEST__COUNT; t++) {
        ec->action[t] = settings_action(cf, action_param[t]);
        ec->ttl[t] = (time_t)conf_num(cf, ttl_param[t]);
        if (t == 0 || ec->ttl[t] < ec->min_ttl)
            ec->min_ttl = ec->ttl[t];
    }

    /* postscreen's legacy TLS switches, overridden by a non-empty level. */
    ec->use_tls = conf_bool(cf, P_PSC_USE_TLS);
    ec->enforce_tls = conf_bool(cf, P_PSC_ENFORCE_TLS);
    const char *level = conf_str(cf, P_PSC_TLS_SECURITY_LEVEL);
    if (*level) {
        if (strcmp(level, "none") == 0) {
            ec->use_tls = ec->enforce_tls = false;
        } else if (strcmp(level, "may") == 0) {
            ec->use_tls = true;
            ec->enforce_tls = false;
        } else if (strcmp(level, "encrypt") == 0) {
            ec->use_tls = ec->enforce_tls = true;
        } else {
            ec->tls_level_warning = xstrdup(level);
            ec->use_tls = ec->enforce_tls = true;
        }
    }
    ec->use_tls = ec->use_tls || ec->enforce_tls;
    if (ec->use_tls) {
        enum param_id bad = P_SMTPD_TLS_PROTOCOLS;
        switch (tls_server_new(cf, ec->enforce_tls, &ec->tls, &bad, e, sizeof(e))) {
        case TLS_OK:
            break;
        case TLS_BAD_CONFIG:
            where_err(cf, bad, e, err, errlen);
            goto fail;
        case TLS_NO_CERT:
            /* At a reload, mxscreen runs unprivileged and may no longer
             * read the key: keep the context loaded at start-up. */
            if (prev && prev->tls && prev->enforce_tls == ec->enforce_tls) {
                ec->tls = tls_server_ref(prev->tls);
                ec->tls_kept = xstrdup(e);
            } else {
                ec->tls_problem = xstrdup(e);
            }
            break;
        }
    }

    sbuf_reset(&b);
    ehlo_format(&b, ec, ec->discard_mask, ec->message_size_limit);
    ec->ehlo_plain = sbuf_take(&b);
    ehlo_format(&b, ec, ec->discard_mask | EHLO_STARTTLS, ec->message_size_limit);
    ec->ehlo_tls = sbuf_take(&b);

    if (open_maps(conf_str(cf, P_PSC_DISCARD_EHLO_KEYWORD_ADDRESS_MAPS), &ec->discard_maps,
                  &ec->ndiscard_maps, e, sizeof(e)) < 0) {
        where_err(cf, P_PSC_DISCARD_EHLO_KEYWORD_ADDRESS_MAPS, e, err, errlen);
        goto fail;
    }
    const char *filter = conf_str(cf, P_PSC_COMMAND_FILTER);
    if (*filter && (ec->command_filter = table_open(filter, e, sizeof(e))) == NULL) {
        where_err(cf, P_PSC_COMMAND_FILTER, e, err, errlen);
        goto fail;
    }
    if (parse_forbidden(ec, conf_str(cf, P_PSC_FORBIDDEN_COMMANDS), e, sizeof(e)) < 0) {
        where_err(cf, P_PSC_FORBIDDEN_COMMANDS, e, err, errlen);
        goto fail;
    }
    if (open_maps(conf_str(cf, P_PSC_REJECT_FOOTER_MAPS), &ec->footer_maps, &ec->nfooter_maps, e,
                  sizeof(e)) < 0) {
        where_err(cf, P_PSC_REJECT_FOOTER_MAPS, e, err, errlen);
        goto fail;
    }
    ec->footer = xstrdup(conf_str(cf, P_PSC_REJECT_FOOTER));
    ec->filter = unescape(conf_str(cf, P_PSC_EXPANSION_FILTER));
    ec->rc = (struct reply_conf){
        .soft_bounce = conf_bool(cf, P_SOFT_BOUNCE),
        .footer = ec->footer,
        .footer_maps = ec->footer_maps,
        .nfooter_maps = ec->nfooter_maps,
        .filter = ec->filter,
        .server_name = ec->myhostname,
    };
    ec->info_internal = conf_num(cf, P_INFO_LOG_ADDRESS_FORMAT) == 1;
    /* The pass service takes a fresh socket: no replay there (spec §6.1). */
    ec->replay = conf_num(cf, P_MXS_DEEP_TEST_HANDOFF) == 0 && conf_num(cf, P_MXS_HANDOFF) != 2;
    return ec;
fail:
    sbuf_free(&b);
    engine_conf_free(ec);
    return NULL;
}

/* Start-up warnings about the TLS setup, logged once by main. */
void engine_conf_warnings(const struct engine_conf *ec)
{
    if (ec->tls_level_warning)
        msg_warn("postscreen_tls_security_level: unsupported TLS level \"%s\", using \"encrypt\"",
                 ec->tls_level_warning);
    if (ec->tls_problem)
        msg_warn("STARTTLS is offered but TLS is not available: %s; clients that send STARTTLS "
                 "get \"454 4.7.0 TLS not available due to local problem\"",
                 ec->tls_problem);
    if (ec->tls_kept)
        msg_warn("reload: %s; STARTTLS keeps the certificate and key loaded before (restart "
                 "mxscreen to load new ones)",
                 ec->tls_kept);
}

/* Release everything engine_conf_build() made. */
void engine_conf_free(struct engine_conf *ec)
{
    if (ec == NULL)
        return;
    free(ec->myhostname);
    free(ec->greeting);
    free(ec->helo_reply);
    free(ec->timeout_reply);
    free(ec->reply_421);
    free(ec->ehlo_plain);
    free(ec->ehlo_tls);
    for (size_t i = 0; i < ec->ndiscard_maps; i++)
        table_free(ec->discard_maps[i]);
    free(ec->discard_maps);
    table_free(ec->command_filter);
    for (size_t i = 0; i < ec->nforbid; i++) {
        free(ec->forbid[i].word);
        table_free(ec->forbid[i].table);
    }
    free(ec->forbid);
    for (size_t i = 0; i < ec->nfooter_maps; i++)
        table_free(ec->footer_maps[i]);
    free(ec->footer_maps);
    free(ec->footer);
    free(ec->filter);
    free(ec->tls_level_warning);
    free(ec->tls_problem);
    free(ec->tls_kept);
    tls_server_free(ec->tls);
    free(ec);
}

/* soft_bounce and the footers, for replies sent outside the engine. */
const struct reply_conf *engine_reply_conf(const struct engine_conf *ec)
{
    return &ec->rc;
}
