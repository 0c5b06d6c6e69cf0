/*
 * presence_api.h - GET /api/presence?destination=/topic/NAME: who is subscribed to a destination
 * that presence.pattern tracks, as {"destination":D,"count":N,"users":[...],"truncated":bool}.
 *
 * It takes the publish API's keys (server.api_key_file; the list names users). The query is
 * parsed by presence_query.h, the answer comes from the process's table (broker/core/presence.h).
 * docs/PRESENCE.md is the user's view.
 *
 * Must not: read the socket, or keep the request past its answer.
 */
#ifndef STOMPWS_PRESENCE_API_H
#define STOMPWS_PRESENCE_API_H

#include <stdbool.h>

#include "broker/net/conn.h"
#include "ws/handshake.h"

#define PRESENCE_API_PATH "/api/presence"

/* Is req for this route? */
bool presence_api_route(const struct ws_http_request *req);
/* Answers req (200, or a JSON error) and closes c gracefully; on a cluster the answer may wait
 * for Redis, held in c->http_pending. */
void presence_api_serve(struct conn *c, const struct ws_http_request *req);
/* c goes away while its answer waits: true when the wait was this route's (now forgotten). */
bool presence_api_abandon(struct conn *c);

#endif
