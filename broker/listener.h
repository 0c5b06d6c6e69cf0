/*
 * listener.h - the listening sockets: one evconnlistener per configured endpoint.
 *
 * Binds, prints "listening KIND HOST:PORT" (the real port when 0 was asked for, so tests and
 * scripts can find it) and hands each accepted socket to a new connection.
 */
#ifndef STOMPWS_LISTENER_H
#define STOMPWS_LISTENER_H

#include "broker/broker.h"
#include "broker/conn.h"

/* Opens the listener for addr; NULL (with an error logged) when it cannot bind. */
struct evconnlistener *listener_open(struct broker *b, const struct config_addr *addr,
                                     enum conn_transport transport);

#endif
