/*
 * cli/transport.c - TCP, TLS and WebSocket connections for stompws-cli (see transport.h).
 *
 * States: CONNECTING (TCP, one resolved address after another) -> TLS (a filter bufferevent on
 * the connected socket, so a TLS failure is reported as such instead of being hidden by the
 * next address) -> UPGRADING (ws: request sent, waiting for the 101) -> OPEN -> CLOSING -> DONE.
 * A refused upgrade goes through REFUSED, where the error page's first bytes are collected for
 * the message.
 */
#include "cli/transport.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/util.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "ws/frame.h"
#include "ws/handshake.h"
#include "ws/utf8.h"

/* How long a polite close may wait for the broker to close its side. */
#define CLOSING_DEADLINE_MS 2000
/* Output drains to this before on_drain lets the caller produce again. */
#define LOW_WATER (TRANSPORT_HIGH_WATER / 4)
/* Bytes of a refused upgrade's error page quoted in the message. */
#define REFUSAL_BODY_MAX 300
/* Bytes handed to the decoders per step. */
#define READ_CHUNK 16384

enum transport_state {
    T_CONNECTING,
    T_TLS,
    T_UPGRADING,
    T_REFUSED,
    T_OPEN,
    T_CLOSING,
    T_DONE,
};

struct transport {
    struct event_base *base;           /* borrowed: the caller's loop */
    struct url url;                    /* copy */
    struct transport_options opts;     /* copy; its strings are borrowed from the caller */
    struct transport_callbacks cb;     /* copy */
    void *arg;                         /* borrowed: handed to every callback */
    enum transport_state state;        /* see the file comment */
    SSL_CTX *ssl_ctx;                  /* owned; NULL without TLS */
    struct evutil_addrinfo *addrs;     /* owned: every resolved address */
    struct evutil_addrinfo *next_addr; /* into addrs: the next one to try */
    struct bufferevent *bev;           /* owned: the connection (a TLS filter owns its socket's) */
    struct event *timer;               /* owned: the closing deadline */
    char key[WS_KEY_LEN + 1];          /* ws: the Sec-WebSocket-Key sent */
    struct ws_decoder ws;              /* ws: the broker's frames */
    char refusal[128];                 /* REFUSED: "HTTP 404 Not Found" */
    size_t refusal_body;               /* REFUSED: body bytes to wait for (bounded) */
    char error[256];                   /* why the last connection attempt failed */
};

static void read_cb(struct bufferevent *bev, void *arg);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);
static void try_next_address(struct transport *t);

/* Reports the end once; nothing is called back after it. */
static void finish(struct transport *t, const char *why)
{
    if (t->state == T_DONE)
        return;
    t->state = T_DONE;
    if (t->bev != NULL)
        bufferevent_disable(t->bev, EV_READ | EV_WRITE);
    evtimer_del(t->timer);
    t->cb.on_close(t->arg, why);
}

/* ---- TLS ---- */

static void tls_error(char *out, size_t len, const char *what, const char *file)
{
    unsigned long code = ERR_get_error();
    const char *reason = code != 0 ? ERR_reason_error_string(code) : NULL;
    snprintf(out, len, "%s %s: %s", what, file, reason != NULL ? reason : "unknown error");
    ERR_clear_error();
}

static SSL_CTX *tls_context(const struct transport_options *o, char *err, size_t err_len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL) {
        tls_error(err, err_len, "cannot create", "a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    /* libevent may retry a write with a moved buffer after SSL_ERROR_WANT_WRITE. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_ENABLE_PARTIAL_WRITE);
    SSL_CTX_set_verify(ctx, o->insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER, NULL);
    FILE *readable = o->cafile != NULL ? fopen(o->cafile, "r") : NULL;
    if (o->cafile != NULL && readable == NULL) {
        snprintf(err, err_len, "cannot read %s: %s", o->cafile, strerror(errno));
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (readable != NULL)
        fclose(readable);
    int ok = o->cafile != NULL ? SSL_CTX_load_verify_locations(ctx, o->cafile, NULL)
                               : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        tls_error(err, err_len, "cannot load CA certificates from",
                  o->cafile != NULL ? o->cafile : "the system store");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* SNI for names (RFC 6066 forbids it for addresses) and the name or address to verify. */
static SSL *tls_session(struct transport *t)
{
    SSL *ssl = SSL_new(t->ssl_ctx);
    if (ssl == NULL)
        return NULL;
    if (!t->url.host_is_ip)
        SSL_set_tlsext_host_name(ssl, t->url.host);
    if (!t->opts.insecure) {
        X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = t->url.host_is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, t->url.host)
                                   : SSL_set1_host(ssl, t->url.host);
        if (ok != 1) {
            SSL_free(ssl);
            return NULL;
        }
    }
    return ssl;
}

/* Why a TLS handshake failed: the verification result says more than the OpenSSL error. */
static void describe_tls_failure(struct transport *t, char *out, size_t len)
{
    SSL *ssl = bufferevent_openssl_get_ssl(t->bev);
    long verify = ssl != NULL ? SSL_get_verify_result(ssl) : X509_V_OK;
    unsigned long code, first = 0;
    while ((code = bufferevent_get_openssl_error(t->bev)) != 0)
        if (first == 0)
            first = code;
    if (verify != X509_V_OK) {
        snprintf(out, len, "TLS: certificate verification failed: %s",
                 X509_verify_cert_error_string(verify));
        return;
    }
    const char *reason = first != 0 ? ERR_reason_error_string(first) : NULL;
    snprintf(out, len, "TLS handshake failed: %s",
             reason != NULL ? reason : "the connection was closed");
}

static void start_tls(struct transport *t)
{
    SSL *ssl = tls_session(t);
    struct bufferevent *filter =
        ssl != NULL ? bufferevent_openssl_filter_new(
                          t->base, t->bev, ssl, BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE)
                    : NULL;
    if (filter == NULL) {
        SSL_free(ssl);
        finish(t, "cannot start TLS (out of memory, or a host name OpenSSL refuses)");
        return;
    }
    t->bev = filter; /* it owns the socket bufferevent now */
    t->state = T_TLS;
    bufferevent_openssl_set_allow_dirty_shutdown(filter, 1); /* brokers that just close */
    bufferevent_setcb(filter, read_cb, write_cb, event_cb, t);
    bufferevent_setwatermark(filter, EV_WRITE, LOW_WATER, 0);
    bufferevent_enable(filter, EV_READ | EV_WRITE);
}

/* ---- WebSocket ---- */

struct part {
    const void *data;
    size_t len;
};

/* One masked WebSocket message from parts, copied once into the output buffer and masked there. */
static void send_ws(struct transport *t, enum ws_opcode op, const struct part *parts, size_t count)
{
    uint8_t key[4], header[WS_FRAME_HEADER_MAX];
    size_t len = 0;
    for (size_t i = 0; i < count; i++)
        len += parts[i].len;
    if (RAND_bytes(key, sizeof(key)) != 1) {
        finish(t, "no random bytes for the WebSocket masking key");
        return;
    }
    struct evbuffer *out = bufferevent_get_output(t->bev);
    evbuffer_add(out, header, ws_frame_header_encode(header, op, true, len, key));
    if (len == 0)
        return;
    struct evbuffer_iovec vec;
    if (evbuffer_reserve_space(out, (ev_ssize_t)len, &vec, 1) != 1) {
        finish(t, "out of memory for an outbound message");
        return;
    }
    uint8_t *p = vec.iov_base;
    for (size_t i = 0, at = 0; i < count; at += parts[i].len, i++)
        if (parts[i].len > 0) /* an empty body may be NULL */
            memcpy(p + at, parts[i].data, parts[i].len);
    ws_mask(p, len, key, 0);
    vec.iov_len = len;
    evbuffer_commit_space(out, &vec, 1);
}

static void send_ws_close(struct transport *t, uint16_t code, const char *reason)
{
    uint8_t payload[WS_CONTROL_PAYLOAD_MAX];
    struct part part = {payload, ws_close_payload_encode(payload, code, reason)};
    send_ws(t, WS_OP_CLOSE, &part, 1);
}

static int send_upgrade(struct transport *t)
{
    uint8_t nonce[WS_KEY_NONCE_LEN];
    char request[URL_MAX_TARGET + 2048];
    if (RAND_bytes(nonce, sizeof(nonce)) != 1)
        return -1;
    ws_client_key(nonce, t->key);
    struct ws_client_request req = {.host = t->url.host_header,
                                    .target = t->url.target,
                                    .key = t->key,
                                    .subprotocols = t->opts.subprotocols,
                                    .extra_headers = t->opts.extra_headers};
    int n = ws_client_request(request, sizeof(request), &req);
    if (n < 0)
        return -1;
    bufferevent_write(t->bev, request, (size_t)n);
    t->state = T_UPGRADING;
    return 0;
}

/* Printable text of an error page for a one-line message. */
static void quote_body(char *out, size_t cap, const char *body, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len && n + 1 < cap; i++)
        out[n++] = (unsigned char)body[i] < 0x20 || body[i] == 0x7F ? ' ' : body[i];
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}

/* REFUSED: waits for (the start of) the error page, then reports the refusal. */
static void read_refusal(struct transport *t, struct evbuffer *in, bool eof)
{
    size_t have = evbuffer_get_length(in);
    if (!eof && have < t->refusal_body)
        return;
    size_t n = have < REFUSAL_BODY_MAX ? have : REFUSAL_BODY_MAX;
    char body[REFUSAL_BODY_MAX + 1], why[512];
    quote_body(body, sizeof(body), (const char *)evbuffer_pullup(in, (ev_ssize_t)n), n);
    snprintf(why, sizeof(why), "the broker refused the WebSocket upgrade: %s%s%s", t->refusal,
             body[0] != '\0' ? ": " : "", body);
    finish(t, why);
}

static void refused(struct transport *t, struct evbuffer *in, const struct ws_http_response *r)
{
    snprintf(t->refusal, sizeof(t->refusal), "HTTP %d %.*s", r->status, (int)r->reason.len,
             r->reason.ptr);
    /* Without a Content-Length the page ends when the broker closes. */
    t->refusal_body = r->content_length >= 0 && r->content_length < REFUSAL_BODY_MAX
                          ? (size_t)r->content_length
                          : REFUSAL_BODY_MAX;
    evbuffer_drain(in, r->header_bytes);
    t->state = T_REFUSED;
    read_refusal(t, in, false);
}

/* UPGRADING: parses the answer to the upgrade request; 0 once the WebSocket is open. */
static int read_upgrade(struct transport *t, struct evbuffer *in)
{
    size_t len = evbuffer_get_length(in);
    size_t look = len < WS_DEFAULT_MAX_HEADER_BYTES + 1 ? len : WS_DEFAULT_MAX_HEADER_BYTES + 1;
    const char *buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
    struct ws_http_response resp;
    int rc = ws_http_response_parse(&resp, buf, look, WS_DEFAULT_MAX_HEADER_BYTES);
    if (rc == WS_HTTP_INCOMPLETE)
        return -1;
    if (rc < 0) {
        finish(t, rc == WS_HTTP_ERR_TOO_LARGE
                      ? "the answer to the WebSocket upgrade has a head over 8192 bytes"
                      : "the answer to the WebSocket upgrade is not HTTP/1.1");
        return -1;
    }
    if (resp.status != 101) {
        refused(t, in, &resp);
        return -1;
    }
    struct ws_client_upgrade up;
    if (ws_client_response_check(&resp, t->key, t->opts.subprotocols, &up) != 0) {
        char why[256];
        snprintf(why, sizeof(why), "invalid WebSocket handshake from the broker: %s", up.message);
        finish(t, why);
        return -1;
    }
    evbuffer_drain(in, (size_t)rc);
    t->state = T_OPEN;
    t->cb.on_open(t->arg);
    return 0;
}

static void on_ws_close(struct transport *t, const struct ws_event *ev)
{
    char why[256];
    if (t->state == T_CLOSING) {
        finish(t, NULL); /* the answer to our close */
        return;
    }
    send_ws_close(t, ev->close_code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : ev->close_code, NULL);
    snprintf(why, sizeof(why), "the broker closed the WebSocket (%u%s%.*s)", ev->close_code,
             ev->len > 0 ? " " : "", (int)ev->len, (const char *)ev->data);
    finish(t, why);
}

/* OPEN or CLOSING on a WebSocket: frames in, STOMP bytes out, pings answered. */
static void read_ws(struct transport *t, uint8_t *chunk, size_t len)
{
    size_t off = 0;
    while (off < len && (t->state == T_OPEN || t->state == T_CLOSING)) {
        struct ws_event ev;
        ssize_t n = ws_decoder_decode(&t->ws, chunk + off, len - off, &ev);
        if (n < 0) {
            char why[256];
            send_ws_close(t, ws_error_close_code((int)n), ws_error_message((int)n));
            snprintf(why, sizeof(why), "WebSocket protocol error from the broker: %s",
                     ws_error_message((int)n));
            finish(t, why);
            return;
        }
        off += (size_t)n;
        if (ev.type == WS_EVENT_DATA && ev.len > 0 && t->state == T_OPEN) {
            t->cb.on_data(t->arg, (const char *)ev.data, ev.len);
        } else if (ev.type == WS_EVENT_PING) {
            struct part pong = {ev.data, ev.len};
            send_ws(t, WS_OP_PONG, &pong, 1);
        } else if (ev.type == WS_EVENT_CLOSE) {
            on_ws_close(t, &ev);
        } else if (n == 0 && ev.type == WS_EVENT_NONE) {
            break;
        }
    }
}

/* ---- connection ---- */

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct transport *t = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    if (t->state == T_UPGRADING && read_upgrade(t, in) != 0)
        return;
    if (t->state == T_REFUSED) {
        read_refusal(t, in, false);
        return;
    }
    while (evbuffer_get_length(in) > 0 && (t->state == T_OPEN || t->state == T_CLOSING)) {
        uint8_t chunk[READ_CHUNK];
        int n = evbuffer_remove(in, chunk, sizeof(chunk));
        if (n <= 0)
            break;
        if (t->url.websocket)
            read_ws(t, chunk, (size_t)n);
        else if (t->state == T_OPEN)
            t->cb.on_data(t->arg, (const char *)chunk, (size_t)n);
    }
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct transport *t = arg;
    if (t->state == T_OPEN && t->cb.on_drain != NULL)
        t->cb.on_drain(t->arg);
}

/* TCP is up (or TLS done): start TLS, the upgrade, or STOMP. */
static void on_connected(struct transport *t)
{
    if (t->state == T_CONNECTING) {
        int one = 1;
        setsockopt(bufferevent_getfd(t->bev), IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        if (t->ssl_ctx != NULL) {
            start_tls(t);
            return;
        }
    }
    if (t->url.websocket) {
        if (send_upgrade(t) != 0)
            finish(t, "cannot build the WebSocket upgrade request");
        return;
    }
    t->state = T_OPEN;
    t->cb.on_open(t->arg);
}

static void on_eof(struct transport *t)
{
    switch (t->state) {
    case T_CLOSING:
        finish(t, NULL);
        break;
    case T_REFUSED:
        read_refusal(t, bufferevent_get_input(t->bev), true);
        break;
    case T_UPGRADING:
        finish(t, "the broker closed the connection during the WebSocket upgrade");
        break;
    default:
        finish(t, "the broker closed the connection");
        break;
    }
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct transport *t = arg;
    int err = EVUTIL_SOCKET_ERROR();
    if (t->state == T_DONE)
        return;
    if (what & BEV_EVENT_CONNECTED) {
        on_connected(t);
    } else if (t->state == T_CONNECTING) {
        snprintf(t->error, sizeof(t->error), "%s", err != 0 ? strerror(err) : "connection failed");
        try_next_address(t);
    } else if (t->state == T_TLS) {
        char why[300];
        describe_tls_failure(t, why, sizeof(why));
        finish(t, why);
    } else if ((what & BEV_EVENT_EOF) || t->state == T_CLOSING) {
        if (t->state == T_OPEN || t->state == T_UPGRADING || t->state == T_REFUSED)
            read_cb(bev, t); /* bytes that came with the FIN */
        on_eof(t);
    } else {
        char why[300];
        snprintf(why, sizeof(why), "connection to the broker lost: %s",
                 err != 0 ? strerror(err) : "unknown error");
        finish(t, why);
    }
}

/* One attempt: 0 when the connect is under way, -1 (with t->error) when it failed at once. */
static int connect_to(struct transport *t, const struct evutil_addrinfo *ai)
{
    if (t->bev != NULL)
        bufferevent_free(t->bev);
    t->bev = bufferevent_socket_new(t->base, -1, BEV_OPT_CLOSE_ON_FREE);
    if (t->bev == NULL) {
        snprintf(t->error, sizeof(t->error), "out of memory");
        return -1;
    }
    bufferevent_setcb(t->bev, read_cb, write_cb, event_cb, t);
    bufferevent_setwatermark(t->bev, EV_WRITE, LOW_WATER, 0);
    bufferevent_enable(t->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(t->bev, ai->ai_addr, (int)ai->ai_addrlen) != 0) {
        snprintf(t->error, sizeof(t->error), "%s", strerror(errno));
        return -1;
    }
    return 0;
}

static void try_next_address(struct transport *t)
{
    while (t->next_addr != NULL) {
        const struct evutil_addrinfo *ai = t->next_addr;
        t->next_addr = ai->ai_next;
        if (connect_to(t, ai) == 0)
            return;
    }
    char why[sizeof(t->url.host) + sizeof(t->error) + 64];
    snprintf(why, sizeof(why), "cannot connect to %s port %u: %s", t->url.host, t->url.port,
             t->error);
    finish(t, why);
}

static int resolve(struct transport *t, char *err, size_t err_len)
{
    struct evutil_addrinfo hints = {.ai_family = AF_UNSPEC,
                                    .ai_socktype = SOCK_STREAM,
                                    .ai_protocol = IPPROTO_TCP,
                                    .ai_flags = EVUTIL_AI_ADDRCONFIG};
    char port[8];
    snprintf(port, sizeof(port), "%u", t->url.port);
    int rc = evutil_getaddrinfo(t->url.host, port, &hints, &t->addrs);
    if (rc != 0) {
        snprintf(err, err_len, "cannot resolve host '%s': %s", t->url.host,
                 evutil_gai_strerror(rc));
        return -1;
    }
    t->next_addr = t->addrs;
    return 0;
}

static void closing_timeout(evutil_socket_t fd, short what, void *arg)
{
    finish(arg, NULL); /* we said goodbye; the broker did not answer in time */
}

struct transport *transport_new(struct event_base *base, const struct url *url,
                                const struct transport_options *opts,
                                const struct transport_callbacks *cb, void *arg, char *err,
                                size_t err_len)
{
    struct transport *t = calloc(1, sizeof(*t));
    if (t == NULL) {
        snprintf(err, err_len, "out of memory");
        return NULL;
    }
    t->base = base;
    t->url = *url;
    t->opts = *opts;
    t->cb = *cb;
    t->arg = arg;
    t->state = T_CONNECTING;
    struct ws_decoder_config wcfg = {.max_message_size = opts->max_message, .expect_masked = false};
    ws_decoder_init(&t->ws, &wcfg);
    t->timer = evtimer_new(base, closing_timeout, t);
    if (t->timer == NULL) {
        snprintf(err, err_len, "out of memory");
        transport_free(t);
        return NULL;
    }
    if ((url->tls && (t->ssl_ctx = tls_context(opts, err, err_len)) == NULL) ||
        resolve(t, err, err_len) != 0) {
        transport_free(t);
        return NULL;
    }
    try_next_address(t);
    return t;
}

void transport_send_frame(struct transport *t, const char *head, size_t head_len, const char *body,
                          size_t body_len)
{
    if (t->state != T_OPEN)
        return;
    if (t->url.websocket) {
        /* Text when the whole frame is UTF-8, as browsers' STOMP clients send it. */
        bool text = ws_utf8_valid((const uint8_t *)head, head_len) &&
                    ws_utf8_valid((const uint8_t *)body, body_len);
        struct part parts[] = {{head, head_len}, {body, body_len}, {"", 1}};
        send_ws(t, text ? WS_OP_TEXT : WS_OP_BINARY, parts, 3);
        return;
    }
    struct evbuffer *out = bufferevent_get_output(t->bev);
    evbuffer_add(out, head, head_len);
    evbuffer_add(out, body, body_len);
    evbuffer_add(out, "", 1);
}

void transport_send_heartbeat(struct transport *t)
{
    if (t->state != T_OPEN)
        return;
    if (t->url.websocket) {
        struct part eol = {"\n", 1};
        send_ws(t, WS_OP_TEXT, &eol, 1);
        return;
    }
    bufferevent_write(t->bev, "\n", 1);
}

size_t transport_pending(const struct transport *t)
{
    return t->bev != NULL ? evbuffer_get_length(bufferevent_get_output(t->bev)) : 0;
}

void transport_shutdown(struct transport *t)
{
    if (t->state != T_OPEN) {
        finish(t, NULL);
        return;
    }
    if (t->url.websocket)
        send_ws_close(t, WS_CLOSE_NORMAL, NULL);
    t->state = T_CLOSING;
    struct timeval tv = {.tv_sec = CLOSING_DEADLINE_MS / 1000,
                         .tv_usec = (CLOSING_DEADLINE_MS % 1000) * 1000};
    evtimer_add(t->timer, &tv);
}

void transport_free(struct transport *t)
{
    if (t == NULL)
        return;
    if (t->bev != NULL)
        bufferevent_free(t->bev);
    if (t->timer != NULL)
        event_free(t->timer);
    if (t->addrs != NULL)
        evutil_freeaddrinfo(t->addrs);
    SSL_CTX_free(t->ssl_ctx);
    free(t);
}
