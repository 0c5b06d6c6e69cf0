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
#include <stdint.h>

#include "broker/core/router.h"

struct broker;
struct conn;

/* The longest destination (bytes) a SEND or SUBSCRIBE may name, /presence/ prefix included,
 * whatever limits.max_header_line allows: it is resolved into a stack buffer of this size plus
 * its NUL. Longer ones get an ERROR that names this limit. */
#define SESSION_DESTINATION_MAX 1023

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

/* ---- admin API (issue #15) ---- */

/* What GET /api/connections shows of a session. user: borrowed, valid while s is. */
struct session_admin_view {
    bool connected; /* CONNECTED was sent: only these are listed and kicked */
    const char *user;
    uint64_t started_wall_ms; /* when the session began (upgrade, TCP accept or GET /sse) */
    size_t subscriptions;
};
void session_admin_view(const struct session *s, struct session_admin_view *out);
/* Calls fn with each subscription's destination, as the client wrote it. */
void session_admin_each_destination(const struct session *s,
                                    void (*fn)(void *ctx, const char *dest, size_t len), void *ctx);
/* ERROR message:disconnected by administrator, then the close (1008 on WebSocket; TCP closes
 * once the ERROR is written; an SSE reader gets an ": error:" comment line, then the end). */
void session_admin_kick(struct session *s);

#endif
