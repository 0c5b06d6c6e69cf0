/*
 * http.h - plain HTTP routes served on the WebSocket port (any path but the WebSocket one) and
 * on the optional --http listener: /healthz (alive), /readyz (listeners up and, when clustered,
 * the Redis link up) and /metrics (Prometheus text format). Every response closes the connection.
 */
#ifndef STOMPWS_HTTP_H
#define STOMPWS_HTTP_H

#include "broker/conn.h"
#include "ws/handshake.h"

/* Answers req on c (200, 503, 404 or 405) and closes c gracefully. */
void http_serve(struct conn *c, const struct ws_http_request *req);

#endif
