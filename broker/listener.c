#include "broker/listener.h"
#include "broker/log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

static void accept_cb(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *addr,
                      int addr_len, void *arg)
{
    struct broker *b = arg;
    (void)addr_len;
    enum conn_transport transport = listener == b->ws_listener ? CONN_WS : CONN_TCP;
    evutil_make_socket_nonblocking(fd);
    if (conn_new(b, fd, addr, transport) == NULL)
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

struct evconnlistener *listener_open(struct broker *b, const struct config_addr *addr,
                                     enum conn_transport transport)
{
    const char *kind = transport == CONN_WS ? "ws" : "tcp";
    struct sockaddr_storage ss;
    socklen_t len;
    if (resolve(addr, &ss, &len) != 0) {
        log_error(0, "%s listener: '%s' is not an IP address", kind, addr->host);
        return NULL;
    }
    struct evconnlistener *l = evconnlistener_new_bind(
        b->base, accept_cb, b, LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC,
        1024, (struct sockaddr *)&ss, (int)len);
    if (l == NULL) {
        log_error(0, "%s listener: cannot listen on %s:%u: %s", kind, addr->host, addr->port,
                  strerror(errno));
        return NULL;
    }
    evconnlistener_set_error_cb(l, accept_error_cb);
    print_bound(l, kind);
    return l;
}
