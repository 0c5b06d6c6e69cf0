/*
 * sse.h - GET /sse: messages as Server-Sent Events, for clients that cannot use WebSocket.
 *
 * A reader's connection gets a STOMP session of its own in "sse" output mode: sse_open() checks
 * the request (method, Origin, query, Last-Event-ID), hands the session a CONNECT built from the
 * request's credentials and one SUBSCRIBE per destination (with the history request that resumes
 * it), and from there the session does what it does for any client (authentication, the ACL,
 * subscriptions, history replay, slow consumers). Only what goes out differs: instead of
 * CONNECTED the HTTP head, instead of MESSAGE frames `id:` and `data:` lines, instead of ERROR a
 * 401/403 JSON answer (before the head) or a comment and the end of the stream (after it).
 *
 * What it must not do: read the socket (conn.c hands the request over), or keep pointers into the
 * request past sse_open() (its bytes are drained once it returns).
 */
#ifndef STOMPWS_SSE_H
#define STOMPWS_SSE_H

#include <stdbool.h>

#include "broker/core/broker.h" /* struct security, struct auth_identity */
#include "broker/base/message.h"
#include "broker/net/conn.h"
#include "ws/handshake.h"

/* The path of the endpoint, on the WebSocket and plain HTTP ports. */
#define SSE_PATH "/sse"

struct sse_stream;

/* conn_handler.sse_open: answers the request with an error and closes c, or makes c a reader. */
void sse_open(struct conn *c, const struct ws_http_request *req);

/* The session going away frees its stream. */
void sse_stream_free(struct sse_stream *st);

/*
 * The session's CONNECT succeeded: every destination must be readable by id, or the answer is a
 * 403 (false, c closing); otherwise the 200 head goes out and the keepalive starts (true).
 */
bool sse_connected(struct sse_stream *st, const struct security *sec,
                   const struct auth_identity *id);

/* A delivery to the reader: one event, or nothing when the token says it was sent already.
 * 0, or -1 when out of memory. */
int sse_deliver(struct sse_stream *st, struct message *msg);

/* What the session would say in an ERROR: the JSON answer (before the head) or a comment. The
 * session closes the connection afterwards. */
void sse_fail(struct sse_stream *st, bool connected, const char *message);

#endif
