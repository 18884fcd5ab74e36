/*
 * tls - the OpenSSL server context for STARTTLS; see tls.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "tls/tls.h"
#include "util/list.h"
#include "util/mem.h"

struct tls_server {
    SSL_CTX *ctx;
    int log_level; /* smtpd_tls_loglevel */
    int refs;      /* engine configurations sharing it (across a reload) */
};

static const struct {
    const char *name;
    int version;
    long no_option;
} protocols[] = {
    {"TLSv1", TLS1_VERSION, SSL_OP_NO_TLSv1},
    {"TLSv1.1", TLS1_1_VERSION, SSL_OP_NO_TLSv1_1},
    {"TLSv1.2", TLS1_2_VERSION, SSL_OP_NO_TLSv1_2},
    {"TLSv1.3", TLS1_3_VERSION, SSL_OP_NO_TLSv1_3},
};
#define NPROTO (sizeof(protocols) / sizeof(protocols[0]))

/* Index of protocol NAME[0..LEN), -2 for the long-gone SSLv2/SSLv3, -1 if unknown. */
static int proto_index(const char *name, size_t len)
{
    for (size_t i = 0; i < NPROTO; i++)
        if (strlen(protocols[i].name) == len && strncasecmp(name, protocols[i].name, len) == 0)
            return (int)i;
    if (len == 5 && (strncasecmp(name, "SSLv2", 5) == 0 || strncasecmp(name, "SSLv3", 5) == 0))
        return -2;
    return -1;
}

/*
 * Apply a Postfix protocol list to CTX: ">=V" and "<=V" bounds, "!V"
 * exclusions, or plain names that list what is allowed.
 */
static int set_protocols(SSL_CTX *ctx, const char *text, char *err, size_t errlen)
{
    bool allowed[NPROTO], named[NPROTO] = {false}, any_named = false;
    const char *cur = text, *el;
    size_t len;

    for (size_t i = 0; i < NPROTO; i++)
        allowed[i] = true;
    while ((el = list_next(&cur, &len)) != NULL) {
        /* list_next() splits at commas and white space; colons separate too. */
        while (len > 0) {
            size_t wl = 0;
            while (wl < len && el[wl] != ':')
                wl++;
            const char *w = el;
            size_t n = wl;
            int bound = 0;
            bool negate = false;
            if (n >= 2 && w[0] == '>' && w[1] == '=')
                bound = 1, w += 2, n -= 2;
            else if (n >= 2 && w[0] == '<' && w[1] == '=')
                bound = -1, w += 2, n -= 2;
            else if (n >= 1 && w[0] == '!')
                negate = true, w++, n--;
            int idx = proto_index(w, n);
            if (idx == -1) {
                snprintf(err, errlen, "unknown TLS protocol \"%.*s\"", (int)wl, el);
                return -1;
            }
            if (bound == 1) {
                for (int i = 0; i < (idx < 0 ? 0 : idx); i++)
                    allowed[i] = false;
            } else if (bound == -1) {
                if (idx == -2) {
                    snprintf(err, errlen, "no TLS protocol left by \"%.*s\"", (int)wl, el);
                    return -1;
                }
                for (size_t i = (size_t)idx + 1; i < NPROTO; i++)
                    allowed[i] = false;
            } else if (negate) {
                if (idx >= 0)
                    allowed[idx] = false;
            } else if (idx >= 0) {
                named[idx] = true;
                any_named = true;
            }
            el += wl < len ? wl + 1 : wl;
            len -= wl < len ? wl + 1 : wl;
        }
    }
    int lo = -1, hi = -1;
    long no = 0;
    for (size_t i = 0; i < NPROTO; i++) {
        bool ok = allowed[i] && (!any_named || named[i]);
        if (ok) {
            if (lo < 0)
                lo = (int)i;
            hi = (int)i;
        } else {
            no |= protocols[i].no_option;
        }
    }
    if (lo < 0) {
        snprintf(err, errlen, "\"%s\" leaves no TLS protocol", text);
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, protocols[lo].version);
    SSL_CTX_set_max_proto_version(ctx, protocols[hi].version);
    SSL_CTX_set_options(ctx, (uint64_t)no);
    return 0;
}

/* The OpenSSL cipher list of a Postfix cipher grade. */
static const char *grade_ciphers(const char *grade)
{
    if (strcasecmp(grade, "high") == 0)
        return "aNULL:-aNULL:HIGH:@STRENGTH";
    if (strcasecmp(grade, "medium") == 0)
        return "aNULL:-aNULL:HIGH:MEDIUM:+RC4:@STRENGTH";
    if (strcasecmp(grade, "low") == 0 || strcasecmp(grade, "export") == 0)
        return "aNULL:-aNULL:HIGH:MEDIUM:LOW:+RC4:@STRENGTH";
    if (strcasecmp(grade, "null") == 0)
        return "eNULL:!aNULL";
    return NULL;
}

/* The text of the last OpenSSL error, or of errno when OpenSSL has none. */
const char *tls_error_text(char *buf, size_t len)
{
    unsigned long e = ERR_get_error();

    if (e == 0) {
        snprintf(buf, len, "%s", errno ? strerror(errno) : "unknown error");
        return buf;
    }
    ERR_error_string_n(e, buf, len);
    ERR_clear_error();
    return buf;
}

/* Load one Postfix chain file: a private key followed by its certificate chain. */
static int load_chain_file(SSL_CTX *ctx, const char *path, char *err, size_t errlen)
{
    char ebuf[256];

    if (SSL_CTX_use_certificate_chain_file(ctx, path) != 1 ||
        SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM) != 1) {
        snprintf(err, errlen, "smtpd_tls_chain_files: cannot load %s: %s", path,
                 tls_error_text(ebuf, sizeof(ebuf)));
        return -1;
    }
    return 0;
}

/* Build the server context; see tls.h. */
enum tls_status tls_server_new(const struct conf *cf, bool mandatory, struct tls_server **out,
                               enum param_id *bad, char *err, size_t errlen)
{
    char ebuf[256];
    const char *cipher_param = mandatory ? "smtpd_tls_mandatory_ciphers" : "smtpd_tls_ciphers";
    const char *grade =
        conf_str(cf, mandatory ? P_SMTPD_TLS_MANDATORY_CIPHERS : P_SMTPD_TLS_CIPHERS);
    const char *ciphers = grade_ciphers(grade);

    *out = NULL;
    if (ciphers == NULL) {
        *bad = mandatory ? P_SMTPD_TLS_MANDATORY_CIPHERS : P_SMTPD_TLS_CIPHERS;
        snprintf(err, errlen, "unknown cipher grade \"%s\"", grade);
        return TLS_BAD_CONFIG;
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        snprintf(err, errlen, "cannot create a TLS context: %s",
                 tls_error_text(ebuf, sizeof(ebuf)));
        return TLS_NO_CERT;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    enum param_id proto_id = mandatory ? P_SMTPD_TLS_MANDATORY_PROTOCOLS : P_SMTPD_TLS_PROTOCOLS;
    if (set_protocols(ctx, conf_str(cf, proto_id), err, errlen) < 0) {
        *bad = proto_id;
        SSL_CTX_free(ctx);
        return TLS_BAD_CONFIG;
    }
    char list[2048];
    snprintf(list, sizeof(list), "%s", ciphers);
    const char *cur = conf_str(cf, P_SMTPD_TLS_EXCLUDE_CIPHERS), *el;
    size_t len;
    while ((el = list_next(&cur, &len)) != NULL) {
        size_t used = strlen(list);
        snprintf(list + used, sizeof(list) - used, ":!%.*s", (int)len, el);
    }
    if (SSL_CTX_set_cipher_list(ctx, list) != 1) {
        *bad = P_SMTPD_TLS_EXCLUDE_CIPHERS;
        snprintf(err, errlen, "with %s = %s: bad cipher list \"%s\": %s", cipher_param, grade, list,
                 tls_error_text(ebuf, sizeof(ebuf)));
        SSL_CTX_free(ctx);
        return TLS_BAD_CONFIG;
    }

    const char *chain = conf_str(cf, P_SMTPD_TLS_CHAIN_FILES);
    const char *cert = conf_str(cf, P_SMTPD_TLS_CERT_FILE);
    const char *key = conf_str(cf, P_SMTPD_TLS_KEY_FILE);
    if (*chain) {
        cur = chain;
        while ((el = list_next(&cur, &len)) != NULL) {
            char *path = xstrndup(el, len);
            int rc = load_chain_file(ctx, path, err, errlen);
            free(path);
            if (rc < 0) {
                SSL_CTX_free(ctx);
                return TLS_NO_CERT;
            }
        }
    } else if (*cert) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
            snprintf(err, errlen, "smtpd_tls_cert_file: cannot load %s: %s", cert,
                     tls_error_text(ebuf, sizeof(ebuf)));
            SSL_CTX_free(ctx);
            return TLS_NO_CERT;
        }
        if (SSL_CTX_use_PrivateKey_file(ctx, *key ? key : cert, SSL_FILETYPE_PEM) != 1) {
            snprintf(err, errlen, "smtpd_tls_key_file: cannot load %s: %s", *key ? key : cert,
                     tls_error_text(ebuf, sizeof(ebuf)));
            SSL_CTX_free(ctx);
            return TLS_NO_CERT;
        }
    } else {
        snprintf(err, errlen,
                 "no server certificate: set smtpd_tls_chain_files or "
                 "smtpd_tls_cert_file");
        SSL_CTX_free(ctx);
        return TLS_NO_CERT;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        snprintf(err, errlen, "the TLS private key does not match the certificate: %s",
                 tls_error_text(ebuf, sizeof(ebuf)));
        SSL_CTX_free(ctx);
        return TLS_NO_CERT;
    }
    struct tls_server *ts = xcalloc(1, sizeof(*ts));
    ts->refs = 1;
    ts->ctx = ctx;
    ts->log_level = (int)conf_num(cf, P_SMTPD_TLS_LOGLEVEL);
    *out = ts;
    return TLS_OK;
}

/* Release the context. */
/* One more holder of TS (a reloaded configuration keeping the keys). */
struct tls_server *tls_server_ref(struct tls_server *ts)
{
    ts->refs++;
    return ts;
}

void tls_server_free(struct tls_server *ts)
{
    if (ts == NULL || --ts->refs > 0)
        return;
    SSL_CTX_free(ts->ctx);
    free(ts);
}

/* A server-side TLS session on FD, ready for SSL_do_handshake(). */
SSL *tls_session_new(struct tls_server *ts, int fd)
{
    SSL *ssl = SSL_new(ts->ctx);

    if (ssl == NULL)
        return NULL;
    if (SSL_set_fd(ssl, fd) != 1) {
        SSL_free(ssl);
        return NULL;
    }
    SSL_set_accept_state(ssl);
    return ssl;
}

/* smtpd_tls_loglevel. */
int tls_log_level(const struct tls_server *ts)
{
    return ts->log_level;
}

/* The client context for TLS to the backend; see tls.h. */
SSL_CTX *tls_client_ctx_new(char *err, size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());

    if (ctx == NULL) {
        tls_error_text(err, errlen);
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    return ctx;
}
