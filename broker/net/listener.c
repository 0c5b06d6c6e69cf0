#include "broker/net/listener.h"
#include "broker/core/broker.h"
#include "broker/net/conn.h"
#include "broker/base/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "ws/handshake.h"

static const char *const kind_names[LISTENER_COUNT] = {"ws", "wss", "tcp", "stomp-tls", "http"};

const char *listener_kind_name(enum listener_kind kind)
{
    return kind_names[kind];
}

/* The address part of a peer, the key of the per-address limit. */
static void address_text(const struct sockaddr *sa, char *out, size_t len)
{
    const void *raw = sa->sa_family == AF_INET6
                          ? (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr
                          : (const void *)&((const struct sockaddr_in *)sa)->sin_addr;
    if (inet_ntop(sa->sa_family, raw, out, (socklen_t)len) == NULL)
        snprintf(out, len, "unknown");
}

/*
 * Answers a connection over a limit straight on the socket, before anything is allocated for it:
 * HTTP 503/429 on the WebSocket port, a STOMP ERROR on the TCP port. The reply is small enough
 * for an empty socket buffer; TLS listeners just close (no handshake is worth doing for it).
 */
static void refuse(const struct listener *l, evutil_socket_t fd, enum admit_verdict v)
{
    char message[160];
    snprintf(message, sizeof(message), "too many connections: over %s", admit_limit_name(v));
    char reply[512];
    int n = -1;
    if (l->kind == LISTENER_WS || l->kind == LISTENER_HTTP) {
        int status = v == ADMIT_PER_ADDR ? 429 : 503;
        n = ws_http_response(reply, sizeof(reply), status, "Retry-After: 1\r\n", "text/plain",
                             message, strlen(message));
    } else if (l->kind == LISTENER_TCP) {
        n = snprintf(reply, sizeof(reply), "ERROR\nmessage:%s\n\n%c", message, '\0');
        n = n > 0 ? n : -1;
    }
    if (n > 0 && send(fd, reply, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0)
        log_debug(0, "refused connection: %s", strerror(errno));
    evutil_closesocket(fd);
}

static void accept_cb(struct evconnlistener *evl, evutil_socket_t fd, struct sockaddr *sa,
                      int sa_len, void *arg)
{
    struct listener *l = arg;
    struct broker *b = l->broker;
    (void)evl;
    (void)sa_len;
    char addr[INET6_ADDRSTRLEN];
    address_text(sa, addr, sizeof(addr));
    enum admit_verdict v = admit_enter(&b->admit, addr, broker_now_ms(b));
    if (v != ADMIT_OK) {
        static const enum limit_kind kinds[] = {[ADMIT_RATE] = LIMIT_CONNECTION_RATE,
                                                [ADMIT_TOTAL] = LIMIT_MAX_CONNECTIONS,
                                                [ADMIT_PER_ADDR] = LIMIT_CONNECTIONS_PER_ADDRESS};
        b->stats.limit_hits[kinds[v]]++;
        if (b->admit.rejected[v] == 1 || b->admit.rejected[v] % 1000 == 0)
            log_warn(0, "refusing connections from %s and others: over %s (%llu so far)", addr,
                     admit_limit_name(v), (unsigned long long)b->admit.rejected[v]);
        refuse(l, fd, v);
        return;
    }
    enum conn_transport transport = l->kind == LISTENER_WS || l->kind == LISTENER_WSS ? CONN_WS
                                    : l->kind == LISTENER_HTTP ? CONN_PLAIN_HTTP
                                                               : CONN_TCP;
    SSL *ssl = NULL;
    SSL_CTX *ctx = l->kind == LISTENER_WSS         ? b->tls_ctx
                   : l->kind == LISTENER_STOMP_TLS ? b->tls_client_ctx
                                                   : NULL;
    if (ctx != NULL && (ssl = SSL_new(ctx)) == NULL) {
        log_error(0, "cannot create a TLS session: out of memory");
        admit_leave(&b->admit, addr);
        evutil_closesocket(fd);
        return;
    }
    if (conn_new(b, fd, sa, addr, transport, ssl) == NULL)
        log_error(0, "out of memory accepting a connection");
}

static void accept_error_cb(struct evconnlistener *listener, void *arg)
{
    (void)listener;
    (void)arg;
    /* EMFILE and friends: the listener retries on the next loop turn; say it once per event. */
    log_warn(0, "accept failed: %s", strerror(errno));
}

static int resolve(const struct config_addr *addr, struct sockaddr_storage *ss, socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    const char *host = strcmp(addr->host, "localhost") == 0 ? "127.0.0.1" : addr->host;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons(addr->port);
        *len = sizeof(*in);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(addr->port);
        *len = sizeof(*in6);
        return 0;
    }
    return -1;
}

/*
 * Options every accepted socket inherits from the listening one (Linux copies them at accept, so
 * they cost no system call per connection; libevent already accepts non-blocking):
 * - TCP_NODELAY: each frame is written whole at once; Nagle would only hold small MESSAGEs back.
 * - TCP keepalive: a client whose host vanished (power loss, a dropped network) sends no FIN and,
 *   without heart-beats, would stay for hours (libevent turns SO_KEEPALIVE on with the kernel's
 *   2-hour default). The kernel probes a connection idle for idle_ms and resets it after 3
 *   unanswered probes a third of that apart: about twice idle_ms in all. 0: no keepalive.
 */
static void set_inherited_options(evutil_socket_t fd, unsigned idle_ms)
{
    int one = 1, keepalive = idle_ms != 0, count = 3;
    int idle = idle_ms < 1000 ? 1 : (int)(idle_ms / 1000);
    int interval = idle / 3 > 0 ? idle / 3 : 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &keepalive, sizeof(keepalive)) != 0 ||
        (keepalive &&
         (setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle)) != 0 ||
          setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval, sizeof(interval)) != 0 ||
          setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count)) != 0)))
        log_warn(0, "listener socket options (TCP_NODELAY, keepalive): %s", strerror(errno));
}

static void print_bound(struct evconnlistener *l, const char *kind)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(evconnlistener_get_fd(l), (struct sockaddr *)&ss, &len) != 0)
        return;
    char host[INET6_ADDRSTRLEN];
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        printf("listening %s [%s]:%u\n", kind, host, ntohs(in6->sin6_port));
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        printf("listening %s %s:%u\n", kind, host, ntohs(in->sin_port));
    }
    fflush(stdout);
}

int listener_open(struct listener *l, struct broker *b, enum listener_kind kind,
                  const struct config_addr *addr)
{
    const char *kind_name = kind_names[kind];
    l->broker = b;
    l->kind = kind;
    struct sockaddr_storage ss;
    socklen_t len;
    if (resolve(addr, &ss, &len) != 0) {
        log_error(0, "%s listener: '%s' is not an IP address", kind_name, addr->host);
        return -1;
    }
    unsigned flags = LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
    /* Several loops (server.threads) bind the same port; the kernel spreads connections. */
    if (b->inboxes != NULL)
        flags |= LEV_OPT_REUSEABLE_PORT;
    l->evl = evconnlistener_new_bind(b->base, accept_cb, l, flags, 1024, (struct sockaddr *)&ss,
                                     (int)len);
    if (l->evl == NULL) {
        log_error(0, "%s listener: cannot listen on %s:%u: %s", kind_name, addr->host, addr->port,
                  strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(l->evl, accept_error_cb);
    set_inherited_options(evconnlistener_get_fd(l->evl), b->cfg.tcp_keepalive_ms);
    if (b->loop_index == 0) /* the other loops bind the very ports loop 0 printed */
        print_bound(l->evl, kind_name);
    return 0;
}

int listener_port(const struct listener *l)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (l->evl == NULL ||
        getsockname(evconnlistener_get_fd(l->evl), (struct sockaddr *)&ss, &len) != 0)
        return -1;
    return ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                          : ((struct sockaddr_in *)&ss)->sin_port);
}

void listener_close(struct listener *l)
{
    if (l->evl != NULL)
        evconnlistener_free(l->evl);
    l->evl = NULL;
}
