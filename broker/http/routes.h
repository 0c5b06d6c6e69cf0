/*
 * routes.h - plain HTTP routes served on the WebSocket port (any path but the WebSocket one) and
 * on the optional --http listener: /healthz (alive), /readyz (listeners up and, when clustered,
 * the Redis link up), /metrics (Prometheus text format), the publish API under /api/ (api.h)
 * and, with server.static_dir, files from that directory on every other path (GET and HEAD).
 * Every response closes the connection.
 */
#ifndef STOMPWS_HTTP_H
#define STOMPWS_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "broker/net/conn.h"
#include "ws/handshake.h"

/*
 * Checks what the routes read from disk: server.static_dir is a directory and
 * server.api_key_file loads. Returns 0, or -1 with the key and the problem in err.
 */
int http_check_config(const struct config *cfg, char *err, size_t err_len);

/* Starts the routes' state (the publish API's keys, in b->api) for broker_new(). Returns 0, or
 * -1 with the reason logged. */
int http_start(struct broker *b);

/*
 * Bytes of request body the route for req reads: conn.c collects that many after the head
 * before calling http_serve(). 0 when the answer depends on the head alone.
 */
size_t http_body_wanted(struct conn *c, const struct ws_http_request *req);

/* Answers req on c and closes c gracefully; an API publish whose offsets a backend assigns later
 * is answered then (c->http_pending). body: the http_body_wanted() bytes (NULL if 0). */
void http_serve(struct conn *c, const struct ws_http_request *req, const char *body,
                size_t body_len);

/* conn_handler.http_abandon: c goes away before its pending answer. */
void http_abandon(struct conn *c);

#endif
