/*
 * tls.h - OpenSSL server contexts for wss:// and STOMP over TLS.
 *
 * TLS 1.2 and later only, a cipher list without legacy suites, the certificate chain and key from
 * files. With a client CA the context demands a client certificate signed by it (mutual TLS for
 * backends). Contexts are refcounted by OpenSSL: a reload builds new ones and connections already
 * open keep the one they started with.
 */
#ifndef STOMPWS_TLS_H
#define STOMPWS_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

#include "broker/base/config.h"

/*
 * A server context from cfg's tls.cert, tls.key and tls.ciphers; with_client_ca also loads
 * tls.client_ca and requires client certificates. NULL with a message in err on failure.
 */
SSL_CTX *tls_context_new(const struct config *cfg, bool with_client_ca, char *err, size_t err_len);

#endif
