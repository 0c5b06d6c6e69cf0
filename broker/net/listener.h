/*
 * listener.h - the listening sockets: one evconnlistener per configured endpoint.
 *
 * Binds, prints "listening KIND HOST:PORT" (the real port when 0 was asked for, so tests and
 * scripts can find it) and hands each accepted socket to a new connection, wrapped in TLS for the
 * wss and stomp-tls kinds. With server.threads > 1 every loop binds each port with SO_REUSEPORT
 * and only loop 0 prints.
 */
#ifndef STOMPWS_LISTENER_H
#define STOMPWS_LISTENER_H

#include <event2/listener.h>
#include <stdbool.h>

#include "broker/base/config.h"

enum listener_kind {
    LISTENER_WS,
    LISTENER_WSS,
    LISTENER_TCP,
    LISTENER_STOMP_TLS,
    LISTENER_HTTP, /* /healthz, /readyz, /metrics only */
    LISTENER_COUNT
};

struct broker;

struct listener {
    struct evconnlistener *evl; /* owned, NULL when this kind is off */
    struct broker *broker;      /* borrowed */
    enum listener_kind kind;
};

/* "ws", "wss", "tcp", "stomp-tls", "http". */
const char *listener_kind_name(enum listener_kind kind);

/* Opens the listener for addr; -1 (with an error logged) when it cannot bind. */
int listener_open(struct listener *l, struct broker *b, enum listener_kind kind,
                  const struct config_addr *addr);
void listener_close(struct listener *l);
/* The port l is bound to (the real one when 0 was asked for); -1 when it is not open. */
int listener_port(const struct listener *l);

#endif
