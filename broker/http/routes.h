/*
 * http.h - plain HTTP routes served on the WebSocket port (any path but the WebSocket one) and
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
#include "cluster/bridge.h"
#include "cluster/streams.h"
#include "ws/handshake.h"

struct evbuffer;

/*
 * The figures of one event loop that /metrics and /readyz show. With server.threads > 1 each loop
 * publishes its own on its lag tick (loops.h) and the loop answering a request adds them up, so
 * the answer covers the whole process (other loops' figures are at most one tick, 250 ms, old).
 */
struct http_figures {
    uint64_t clients[4]; /* client connections past the handshake: ws, wss, tcp, stomp-tls */
    uint64_t subscriptions, unacked;
    uint64_t queues;      /* local queues (not those of the queue store: counted once, apart) */
    uint64_t queue_depth; /* messages waiting in them */
    struct broker_stats stats;
    struct router_stats router;
    bool clustered;             /* a cluster node: bridge and streams below are meaningful */
    bool bridge_up, streams_up; /* both Redis links of each kind up */
    struct bridge_stats bridge;
    struct streams_stats streams;
    uint64_t lag_last_us, lag_sum_us, lag_count;
    uint64_t lag_buckets[BROKER_LAG_BUCKETS + 1];
    const char *not_ready; /* static text: why /readyz says 503; NULL when ready */
};

/* Takes b's figures now (walks its connections and queues). */
void http_figures_collect(const struct broker *b, struct http_figures *f);

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

/* Answers req on c and closes c gracefully. body: the http_body_wanted() bytes (NULL if 0). */
void http_serve(struct conn *c, const struct ws_http_request *req, const char *body,
                size_t body_len);

/*
 * Writes a whole response: the head (extra_headers: lines each ending in CRLF, or NULL), then
 * body, drained. Closes c gracefully. For every route, the API's included.
 */
void http_respond(struct conn *c, int status, const char *extra_headers, const char *content_type,
                  struct evbuffer *body);

/*
 * Percent-decodes src[0..len) into out (cap bytes, no NUL added); plus_is_space for query
 * strings (form encoding). Returns the decoded length, or -1 for a bad escape or no room.
 */
ssize_t http_url_decode(const char *src, size_t len, bool plus_is_space, char *out, size_t cap);

#endif
