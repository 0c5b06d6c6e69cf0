/*
 * conn.h - one client connection: bytes in and out, and the transport around STOMP.
 *
 * A WebSocket connection goes HTTP (upgrade request) -> WebSocket (frames) -> STOMP session; a
 * TCP connection carries STOMP directly. conn owns the socket (bufferevent), the WebSocket
 * decoder and the session; it wraps each outbound STOMP frame in one WebSocket message, handles
 * control frames, timeouts for the handshake, and the orderly close. A conn is never freed inside
 * its own callbacks: conn_close() marks it and the broker frees it before the loop sleeps.
 */
#ifndef STOMPWS_CONN_H
#define STOMPWS_CONN_H

#include <event2/bufferevent.h>
#include <openssl/ssl.h>
#include <event2/util.h>
#include <stdbool.h>
#include <stdint.h>

#include "broker/core/broker.h"
#include "stomp/frame.h"
#include "ws/frame.h"
#include "ws/handshake.h"

/* CONN_PLAIN_HTTP: the --http listener, plain HTTP routes only (never upgraded). CONN_SSE: a
 * GET /sse reader (on the WebSocket or HTTP port) once its request was taken: nothing more is
 * read from it, events are written as they are. */
enum conn_transport { CONN_WS, CONN_TCP, CONN_PLAIN_HTTP, CONN_SSE };

/* The Server-Sent Events endpoint (broker/session/sse.h), on the WebSocket and HTTP ports. */
#define CONN_SSE_PATH "/sse"

enum conn_state {
    CONN_HTTP,    /* WebSocket: waiting for the upgrade request */
    CONN_OPEN,    /* frames flow */
    CONN_CLOSING, /* goodbye queued: flushing, then the socket is shut */
    CONN_DEAD,    /* waiting to be freed by the broker */
};

struct session;
struct message;
struct conn;

/*
 * What a connection hands its bytes to once the transport is settled: a STOMP session (after
 * the WebSocket upgrade, or at once on TCP) or an HTTP route. The wiring (server/loop.c) fills
 * one in per loop (broker.conn_handler); conn.c calls up only through it, so net/ never names
 * the session or the HTTP routes. Every callback runs on the connection's own loop.
 */
struct conn_handler {
    /* A new STOMP session for c; version_hint: the STOMP version the WebSocket subprotocol
     * fixed, 0 when none did. NULL when out of memory. */
    struct session *(*stomp_open)(struct conn *c, int version_hint);
    /* STOMP bytes; returns how many were taken (see session_feed). */
    size_t (*stomp_feed)(struct session *s, const char *data, size_t len);
    /* The output drained below its high-water mark. */
    void (*stomp_drained)(struct session *s);
    /* The connection is being freed: the session goes with it. */
    void (*stomp_close)(struct session *s);
    /* Bytes of request body the route for req reads before http_serve() (0: none). */
    size_t (*http_body_wanted)(struct conn *c, const struct ws_http_request *req);
    /* Answers req and closes c gracefully, or leaves c->http_pending set: answered later. */
    void (*http_serve)(struct conn *c, const struct ws_http_request *req, const char *body,
                       size_t body_len);
    /* c goes away before the answer its http_pending waits for: nobody may answer on it. */
    void (*http_abandon)(struct conn *c);
    /* A request for CONN_SSE_PATH: answers it with an error, or makes c a CONN_SSE reader with
     * a session. NULL: the path goes to http_serve like any other. */
    void (*sse_open)(struct conn *c, const struct ws_http_request *req);
};

/* Frame ends a connection remembers; the output's front is at most outbound_high_water /
 * CONN_FRAME_ENDS (plus one frame) from the nearest one, or the backlog is shorter than that. */
#define CONN_FRAME_ENDS 8

struct conn {
    uint64_t id;
    struct broker *broker;   /* borrowed */
    struct bufferevent *bev; /* owned (closes the socket) */
    enum conn_transport transport;
    bool tls;
    bool tls_ready; /* the TLS handshake has completed: frames can be written */
    enum conn_state state;
    char peer[64];        /* "address:port" for logs */
    char addr[64];        /* address alone: the key of the per-address connection limit */
    struct ws_decoder ws; /* CONN_WS: inbound frame state */
    enum ws_subprotocol subprotocol;
    struct session *session; /* owned: created once STOMP bytes may flow */
    char *bearer;            /* owned: token from the handshake (Authorization or access_token) */
    void *http_pending;      /* the HTTP layer's while an answer waits; see http_abandon */
    size_t bearer_len;
    struct event *timer;      /* owned: handshake / CONNECT / closing deadline */
    uint64_t last_write_ms;   /* for heart-beats: when we last queued bytes */
    uint64_t last_read_ms;    /* for heart-beats: when bytes last arrived */
    struct conn *prev, *next; /* broker's list of connections */
    struct conn *reap_next;   /* broker's reap list */
    /* Plain sockets write directly (see flush_all in conn.c): no write event while all is out. */
    bool direct_write;                    /* not TLS: the broker's flush writes the output */
    bool write_armed;                     /* EV_WRITE on: libevent writes the rest (EAGAIN) */
    struct conn *flush_prev, *flush_next; /* broker's flush list while output waits */
    bool flush_queued;
    bool read_paused; /* producer flow control: input is left unread (conn_pause_reading) */
    /*
     * Where queued frames end, so that conn_drop_queued() cuts the output between two frames.
     * Positions count bytes since the connection began, modulo 2^32 (an output never holds
     * 2 GiB): out_added were ever queued, out_taken ever taken off the front. A few ends,
     * spaced out, oldest (nearest the front) first.
     */
    uint32_t out_added, out_taken;
    uint32_t frame_ends[CONN_FRAME_ENDS];
    uint8_t frame_ends_first, frame_ends_count;
    /* permessage-deflate (conn_deflate.c); zlib state is the loop's, never the connection's */
    bool deflate;              /* negotiated at the upgrade */
    bool deflate_small_window; /* the client asked for a server window under 2^15 */
    uint8_t *inflate_pending;  /* owned: a compressed message's payload while its frames arrive,
                                  NULL between messages */
    size_t inflate_pending_len, inflate_pending_cap;
};

/* Takes ownership of fd (accepted socket), of ssl (NULL for plain TCP; the TLS handshake runs
 * before the first read) and of the admission of `addr` (see admit.h), released when the
 * connection is freed. NULL when out of memory (fd closed, ssl freed, admission released). */
struct conn *conn_new(struct broker *b, evutil_socket_t fd, const struct sockaddr *sa,
                      const char *addr, enum conn_transport transport, SSL *ssl);

/*
 * conn_new() without the socket: the connection runs over bev, any bufferevent on the broker's
 * base (tests/fuzz/fuzz_connection.c attaches one end of bufferevent_pair_new()). Takes ownership
 * of bev and of the admission of `addr`; tls says bev is an OpenSSL one still in its handshake.
 * A bufferevent without a socket is written by libevent (no direct writes), and the closing FIN
 * becomes bufferevent_flush(BEV_FINISHED): end of file at the pair's other end. NULL when out
 * of memory (bev freed, admission released).
 */
struct conn *conn_attach(struct broker *b, struct bufferevent *bev, const struct sockaddr *sa,
                         const char *addr, enum conn_transport transport, bool tls);

/* Frees everything; only the reap step (and conn_free_all) calls this. */
void conn_free(struct conn *c);

/*
 * The loop's reap and flush lists: closed connections are freed by the reap event before the
 * loop sleeps (and, once the last is gone during a shutdown, broker_finish_shutdown() runs);
 * output queued during a turn is written by the flush event. conn_lists_init() makes both
 * events (-1 when out of memory); conn_free_all() frees every connection and both events.
 */
int conn_lists_init(struct broker *b);
void conn_free_all(struct broker *b);

/*
 * Queues one STOMP frame: head (command line, headers, blank line), then the body and the frame's
 * closing NUL. With msg, the body is msg's (shared by reference, never copied); otherwise body is
 * copied. utf8 says whether head and body are valid UTF-8 (picks text or binary WebSocket
 * frames in auto mode). With permessage-deflate a frame without msg is compressed on its own
 * (from compression.min_size on); MESSAGE deliveries take conn_send_message().
 */
void conn_send_frame(struct conn *c, const char *head, size_t head_len, struct message *msg,
                     const char *body, size_t body_len, bool utf8);

/*
 * Queues a MESSAGE frame for msg: head ends with the common_len bytes every delivery of msg in
 * version v ends with (from message_encoded_head()'s tail on); the rest of head is this
 * delivery's. With permessage-deflate that common part and the body are deflated once per
 * message; otherwise the same as conn_send_frame(c, head, head_len, msg, NULL, 0, utf8).
 */
void conn_send_message(struct conn *c, const char *head, size_t head_len, size_t common_len,
                       struct message *msg, enum stomp_version v, bool utf8);

/* Queues prefix (prefix_len 0: none) then data, as they are and as one unit: the cut
 * of a slow consumer's output (conn_drop_queued) never separates them (an event's id: and
 * data: lines). */
void conn_send_bytes(struct conn *c, const char *prefix, size_t prefix_len, const char *data,
                     size_t len);

/* Queues a heart-beat (an EOL; a one-byte text message on WebSocket). */
void conn_send_heartbeat(struct conn *c);

/* Bytes queued for the peer and not yet written to the socket. */
size_t conn_outbound(const struct conn *c);

/* An evbuffer_add_reference() cleanup: drops the message reference (msg) that kept the bytes
 * alive, once the output no longer needs them. */
void conn_release_message(const void *data, size_t len, void *msg);

/*
 * Ends the connection politely: for WebSocket a close frame with ws_code and reason, then flush
 * and shut the socket (the frames queued before go out first).
 */
void conn_close_gracefully(struct conn *c, uint16_t ws_code, const char *reason);

/*
 * Drops the frames queued for the peer but not yet written, up to the end of the one being
 * written (which must reach the peer whole), to make room for a last word before a close: a
 * slow consumer's ERROR. Returns the bytes dropped; 0 when no frame end is known.
 */
size_t conn_drop_queued(struct conn *c);

/* Drops the connection now (peer gone, or nothing more worth sending). */
void conn_close(struct conn *c);

/*
 * Producer flow control: stops reading the peer (input already buffered waits too, from the next
 * WebSocket message or, on TCP, the next STOMP frame on), and starts again; resuming handles the
 * buffered input on a later loop turn, never inside the caller's stack.
 */
void conn_pause_reading(struct conn *c);
void conn_resume_reading(struct conn *c);

static inline bool conn_is_open(const struct conn *c)
{
    return c->state == CONN_OPEN;
}

#endif
