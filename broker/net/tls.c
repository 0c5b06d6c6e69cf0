#include "broker/net/tls.h"

#include <openssl/err.h>
#include <stdio.h>

/* The most recent OpenSSL error as text, for start-up and reload messages. */
static void openssl_error(char *err, size_t err_len, const char *what, const char *file)
{
    char reason[256] = "unknown error";
    unsigned long code = ERR_get_error();
    if (code != 0)
        ERR_error_string_n(code, reason, sizeof(reason));
    ERR_clear_error();
    snprintf(err, err_len, "%s %s: %s", what, file, reason);
}

SSL_CTX *tls_context_new(const struct config *cfg, bool with_client_ca, char *err, size_t err_len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL) {
        openssl_error(err, err_len, "cannot create", "TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION |
                                 SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* libevent may retry a write with a moved buffer after SSL_ERROR_WANT_WRITE. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
    if (SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1) {
        openssl_error(err, err_len, "invalid", "tls.ciphers");
        goto fail;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cfg->tls_cert) != 1) {
        openssl_error(err, err_len, "cannot load certificate", cfg->tls_cert);
        goto fail;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        openssl_error(err, err_len, "cannot load key (or it does not match the certificate)",
                      cfg->tls_key);
        goto fail;
    }
    if (with_client_ca) {
        if (SSL_CTX_load_verify_locations(ctx, cfg->tls_client_ca, NULL) != 1) {
            openssl_error(err, err_len, "cannot load client CA", cfg->tls_client_ca);
            goto fail;
        }
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    return NULL;
}
