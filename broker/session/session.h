/*
 * session.h - one STOMP session: the verbs of STOMP 1.0, 1.1 and 1.2 for one connection.
 *
 * The session parses the STOMP byte stream its connection hands it (WebSocket payload chunks or
 * TCP bytes: a frame may span chunks, a chunk may hold several frames), answers CONNECT,
 * subscribes and publishes through the router, tracks acks and transactions, keeps heart-beats,
 * and turns every protocol problem into an ERROR frame followed by a close.
 */
#ifndef STOMPWS_SESSION_H
#define STOMPWS_SESSION_H

#include <stdbool.h>
#include <stddef.h>

#include "broker/core/router.h"

struct broker;
struct conn;

/* version_hint: the STOMP version fixed by the WebSocket subprotocol, or 0 when none was. */
struct session *session_new(struct conn *c, int version_hint);

/* Unsubscribes everything (unacked queue messages go back), aborts transactions, deletes the
 * session's temporary queues, frees it. */
void session_free(struct session *s);

/*
 * Feeds STOMP bytes; returns how many were taken: all, unless queue flow control paused a TCP
 * connection, which keeps the frames after the one that filled the queue for later (WebSocket
 * payloads are taken whole: their frames were already decoded).
 */
size_t session_feed(struct session *s, const char *data, size_t len);

/* The connection's output drained below its high-water mark: resume queue dispatch. */
void session_drained(struct session *s);

/* Broker shutdown: an ERROR saying why (when connected), then close with 1001. */
void session_shutdown(struct session *s, const char *reason);

/* A queue message this session published to a Redis stream was stored (error NULL) or refused:
 * sends the RECEIPTs that waited for it, or an ERROR. */
void session_append_done(struct session *s, const char *error);

/* delivery_ops.replay_receipt: the RECEIPT of a SUBSCRIBE whose replay a backend answered. */
void session_replay_receipt(struct subscription *sub, const char *id, size_t id_len,
                            bool recovered);

/* Queue flow control: publishers paused on queue `queue` go on reading (it drained, or is going
 * away). */
void session_queue_unblocked(struct broker *b, const char *queue);

/* Makes s a GET /sse reader's session (takes st, freed with s): see sse.h. Before its first
 * bytes are fed. */
struct sse_stream;
void session_set_sse(struct session *s, struct sse_stream *st);

/* The router's delivery callbacks. */
int session_deliver(struct subscription *sub, struct message *msg, bool redelivered);
bool session_writable(const struct subscription *sub);

#endif
