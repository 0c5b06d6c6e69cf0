/*
 * broker.h - one event loop, its listeners, connections and router: the whole broker with
 * server.threads = 1, one of the loops of the process otherwise (loops.h).
 *
 * The broker owns everything: connections are created by the listeners and freed only by
 * broker_reap() (never inside their own callbacks, as Redis does with CLIENT_CLOSE_ASAP), the
 * router holds destinations, and shutdown walks every connection to say goodbye. Everything here
 * is touched by the loop's own thread only.
 */
#ifndef STOMPWS_BROKER_H
#define STOMPWS_BROKER_H

#include <event2/event.h>
#include <event2/listener.h>
#include <stdbool.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "broker/auth/admit.h"
#include "broker/base/config.h"
#include "broker/net/listener.h"
#include "broker/core/router.h"
#include "broker/auth/security.h"

#define STOMPWS_SERVER_NAME "stompws/" STOMPWS_VERSION

struct conn;
struct session;
struct bridge;
struct streams;
struct api;
struct conn_handler;

/* Every limit a client can hit; each hit is counted (and exported on /metrics). */
enum limit_kind {
    LIMIT_CONNECTION_RATE,
    LIMIT_MAX_CONNECTIONS,
    LIMIT_CONNECTIONS_PER_ADDRESS,
    LIMIT_HANDSHAKE_TIMEOUT,
    LIMIT_CONNECT_TIMEOUT,
    LIMIT_HTTP_HEADER_BYTES,
    LIMIT_WS_MESSAGE,
    LIMIT_STOMP_FRAME, /* header count, header line, header bytes or body */
    LIMIT_SUBSCRIPTIONS,
    LIMIT_TRANSACTIONS,
    LIMIT_TX_FRAMES,
    LIMIT_UNACKED,
    LIMIT_PUBLISH_RATE,
    LIMIT_QUEUE_MESSAGES,
    LIMIT_SLOW_CONSUMER,
    LIMIT_HEARTBEAT,
    LIMIT_CLUSTER_QUEUE_BUFFER,
    LIMIT_COUNT
};

/* The config key that names a limit ("limits.publish_rate", ...). */
const char *limit_name(enum limit_kind kind);

struct broker_stats {
    uint64_t limit_hits[LIMIT_COUNT];
    uint64_t connections_accepted;
    uint64_t frames_in;
    uint64_t messages_in;         /* SEND frames routed */
    uint64_t bytes_in, bytes_out; /* socket payload bytes (after TLS, before WebSocket framing) */
    uint64_t auth_failures;
    uint64_t permission_denials;
    uint64_t protocol_errors; /* ERROR frames and WebSocket protocol closes */
    uint64_t slow_consumer_disconnects;
    uint64_t slow_consumer_drops; /* topic messages not written to clients over the mark */
    uint64_t reply_queue_drops;   /* SENDs to a /reply-queue/ whose owner had gone */
    uint64_t loop_inbox_drops;    /* topic copies not handed to another loop: its inbox was full */
    uint64_t publishers_paused;   /* gauge: sessions not read until a full queue drains */
};

/*
 * Event-loop lag: a timer due every BROKER_LAG_TICK_MS measures how late it runs. A callback that
 * holds the loop (or a host that starves the process) shows here before clients notice.
 */
#define BROKER_LAG_TICK_MS 250
#define BROKER_LAG_BUCKETS 10

/* Upper bounds of the lag histogram's buckets in microseconds; one more bucket holds the rest. */
extern const uint64_t broker_lag_bucket_us[BROKER_LAG_BUCKETS];

struct broker_loop_lag {
    struct event *timer; /* owned: armed again by each tick */
    uint64_t due_us;     /* monotonic time the next tick is due */
    uint64_t last_us;    /* lag of the latest tick */
    uint64_t sum_us;
    uint64_t count;
    uint64_t buckets[BROKER_LAG_BUCKETS + 1]; /* ticks per bucket (not cumulative); last: over */
};

struct broker {
    struct event_base *base; /* owned */
    struct loops *group;     /* borrowed: the process's loops (threads > 1), NULL with one loop */
    size_t loop_index;       /* this loop's place in group (0: the main thread's, or the only) */
    struct config cfg;
    struct router router;
    struct listener listeners[LISTENER_COUNT]; /* owned: ws, wss, tcp, stomp-tls */
    struct bridge *bridge;                     /* owned: the cluster link, NULL for a single node */
    struct streams *streams; /* owned: queues across nodes, NULL for a single node */
    struct api *api;         /* owned: the HTTP publish API's keys, NULL while it is off */
    SSL_CTX *tls_ctx;        /* owned (a reference): wss, and stomp-tls without client CA */
    SSL_CTX *tls_client_ctx; /* owned (a reference): stomp-tls (requires client certs when
                                tls.client_ca is set) */
    const struct conn_handler *conn_handler; /* borrowed (static): what a connection calls once
                                                its transport is settled (net/conn.h) */
    struct conn *conns;      /* not owned here: each conn frees itself via reap */
    size_t conn_count;
    struct conn *reap_list;         /* connections to free before the loop sleeps */
    struct event *reap_event;       /* owned: activated when reap_list is non-empty */
    struct conn *flush_list;        /* plain connections with output to write this turn */
    struct event *flush_event;      /* owned: activated when flush_list becomes non-empty */
    struct event *signal_events[3]; /* owned: SIGINT, SIGTERM, SIGHUP */
    struct event *shutdown_timer;   /* owned: bounds the drain at shutdown */
    bool shutting_down;
    int exit_code;
    uint64_t next_conn_id;
    uint64_t conn_id_stride;  /* connection ids are n * stride + loop_index: unique in the process,
                                 and a reply queue names its loop (see broker_publish) */
    char node_token[17];      /* random hex: makes session ids and reply-queue names unguessable */
    struct admit admit;       /* connection admission limits */
    struct security security; /* users, ACL, JWT keys, failed-login throttle */
    struct broker_stats stats;
    struct broker_loop_lag loop_lag;
    struct session *paused_publishers; /* not owned: sessions paused on a full queue (session.c) */
};

/* Creates the loop, binds the listeners and prints "listening KIND HOST:PORT" lines. */
struct broker *broker_new(const struct config *cfg);
/*
 * Loop `index` of group (loops.c): listeners bound with SO_REUSEPORT, printed by loop 0 only;
 * signals handled by loop 0 only; topics, reply queues and /queue/ names cross loops.
 */
struct broker *broker_new_in(const struct config *cfg, struct loops *group, size_t index);
/* Runs until shutdown has drained; returns the process exit code. */
int broker_run(struct broker *b);
void broker_free(struct broker *b);

/* Stops accepting, tells every client why, and ends the loop once they are gone (or on timeout). */
void broker_shutdown(struct broker *b, const char *reason);

/*
 * Routes a message published by a local client: to local subscribers through the router and,
 * for topics on a clustered node, to the other nodes through Redis; on a clustered node a
 * /queue/ message goes to the queue's Redis stream instead. Returns the router's result (0 or
 * an enum router_error; ROUTER_ERR_CLUSTER_FULL when the cluster buffer is full).
 */
int broker_publish(struct broker *b, struct message *msg, const char *route, size_t len,
                   bool create_queue);

/*
 * The same for a publisher that waits for the message to be safely stored: returns
 * BROKER_PUBLISH_PENDING when it went to a Redis stream, and session_append_done(waiter) is
 * called once Redis has confirmed (or refused) it.
 */
#define BROKER_PUBLISH_PENDING 1
/* Taken by the process's queue store, which is now full (queue.overflow = block): the publisher
 * pauses until loops_unblock() says it drained. */
#define BROKER_PUBLISH_FULL 2
int broker_publish_waiting(struct broker *b, struct message *msg, const char *route, size_t len,
                           bool create_queue, struct session *waiter);

/* Inbox items of a loop (loops.c): a topic message published on another loop (to local
 * subscribers only), a message for one of this loop's reply queues, and "take from the queue
 * store" (entries appended or released, or consumers with room). */
void broker_deliver_forwarded(struct broker *b, struct message *msg);
void broker_deliver_reply(struct broker *b, struct message *msg);
void broker_take_queues(struct broker *b);

/* SIGHUP: rebuilds the TLS contexts from the certificate files (open connections keep theirs)
 * and reloads the users file, ACL and JWT keys; what fails to load keeps its old version. */
void broker_reload(struct broker *b);

/*
 * --check-config: loads what broker_new() would load from cfg (users file, ACL, JWT keys, TLS
 * certificates and keys, the Redis URL) and frees it again, without binding or connecting.
 * Returns 0, or -1 with err naming what failed.
 */
int broker_check_config(const struct config *cfg, char *err, size_t err_len);

/* Monotonic milliseconds, for timeouts, heart-beats and rate limits. */
uint64_t broker_now_ms(const struct broker *b);

#endif
