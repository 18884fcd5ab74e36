/*
 * tls - STARTTLS for clients in the SMTP engine (OpenSSL)
 *
 * tls_server_new() builds the server context from the Postfix parameters
 * postscreen's TLS proxy uses: the certificate and key from
 * smtpd_tls_chain_files, or else smtpd_tls_cert_file and
 * smtpd_tls_key_file; protocols from smtpd_tls_protocols (or
 * smtpd_tls_mandatory_protocols when TLS is required), in either Postfix
 * syntax (">=TLSv1.2" or "!SSLv2, !SSLv3, !TLSv1"); the cipher grade from
 * smtpd_tls_ciphers (or smtpd_tls_mandatory_ciphers) and
 * smtpd_tls_exclude_ciphers.  It returns NULL with ERR set when the
 * certificate or key cannot be used; a protocol or cipher setting it
 * cannot parse is reported with TLS_BAD_CONFIG and the parameter in *BAD,
 * so that start-up can stop.
 *
 * A server context is reference counted: tls_server_ref() adds a holder
 * (a reloaded configuration that keeps the keys loaded at start-up, see
 * engine_conf_build()), tls_server_free() drops one.
 *
 * tls_session_new() makes a server-side SSL object for a socket; the
 * caller drives the handshake and the I/O without blocking.
 * tls_error_text() gives the text of the last OpenSSL error (or ERRNO's).
 *
 * tls_client_ctx_new() builds the context for mxscreen_backend_tls: TLS
 * 1.2 or later to the MTA behind, which is on loopback or a private link,
 * without certificate verification (it encrypts, it does not
 * authenticate).
 */
#ifndef MXS_TLS_H
#define MXS_TLS_H

#include <stdbool.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "conf/conf.h"

enum tls_status {
    TLS_OK,
    TLS_BAD_CONFIG, /* a parameter value is wrong: stop start-up */
    TLS_NO_CERT,    /* the certificate or key is unusable: 454 at STARTTLS */
};

struct tls_server;

enum tls_status tls_server_new(const struct conf *cf, bool mandatory, struct tls_server **out,
                               enum param_id *bad, char *err, size_t errlen);
struct tls_server *tls_server_ref(struct tls_server *ts);
void tls_server_free(struct tls_server *ts);
SSL *tls_session_new(struct tls_server *ts, int fd);
const char *tls_error_text(char *buf, size_t len);
SSL_CTX *tls_client_ctx_new(char *err, size_t errlen);
int tls_log_level(const struct tls_server *ts);

#endif
