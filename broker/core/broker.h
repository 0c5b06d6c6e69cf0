/*
 * broker.h - one event loop's state: the whole broker with server.threads = 1, one of the loops
 * of the process otherwise.
 *
 * Data, and the few helpers every layer needs (the clock, limit names). The objects of the
 * layers above (connections, listeners, sessions, the fan-out backend, the API's keys, the
 * metrics board) appear here only as pointers to declared structs or as ops tables those layers
 * fill in; server/loop.c builds, runs and frees a broker. Connections are created by the
 * listeners and freed only by the reap step before the loop sleeps (never inside their own
 * callbacks, as Redis does with CLIENT_CLOSE_ASAP). Everything here is touched by the loop's
 * own thread only.
 *
 * What it must not do: include a header of a layer above core.
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
#include "broker/core/fanout.h"
#include "broker/core/router.h"
#include "broker/auth/security.h"

#define STOMPWS_SERVER_NAME "stompws/" STOMPWS_VERSION

struct conn;
struct session;
struct listener;
struct inboxes;
struct metrics_board;
struct api;
struct admin;
struct conn_handler;
struct workpool;
struct conn_deflate_loop;
struct workpool_mailbox;
struct history;
struct presence;

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
    LIMIT_HISTORY_BYTES,
    LIMIT_COUNT
};

/* The config key that names a limit ("limits.publish_rate", ...). */
const char *limit_name(enum limit_kind kind);

/* Transports /metrics counts sessions of (broker_stats.clients). */
#define BROKER_TRANSPORTS 6

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
    /* Gauges kept as sessions come and go, so /metrics walks no connection: */
    /* STOMP sessions by transport: ws, wss, tcp, stomp-tls, sse, sse-tls (GET /sse readers) */
    uint64_t clients[BROKER_TRANSPORTS];
    uint64_t subscriptions; /* subscriptions of those sessions */
    /* admin API (issue #15) */
    uint64_t admin_kicks; /* sessions ended by DELETE /api/connections/ID or a user's disconnect */
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
    size_t loop_index; /* this loop's place in the process (0: the main thread's, or the only) */
    struct inboxes *inboxes;     /* borrowed: every loop's inbox (threads > 1), else NULL */
    struct metrics_board *board; /* borrowed: every loop's /metrics figures (threads > 1) */
    struct config cfg;
    struct router router;
    struct fanout fanout; /* beyond this loop: ops NULL for one loop of one node (fanout.h) */
    /* The retained messages of /topic/ destinations with a policy (history.h): the process's,
     * shared by every loop; NULL when no policy is configured. Owned when history_owned (one
     * loop), else borrowed from the group of loops. */
    struct history *history;
    bool history_owned;
    /* A /reply-queue/ this loop does not have, for the loop that owns it (threads > 1; NULL
     * otherwise): 0, or an enum router_error. */
    int (*forward_reply)(struct broker *b, struct message *msg, const char *route, size_t len);
    struct listener *listeners; /* owned by server/loop.c: LISTENER_COUNT of them */
    struct api *api;            /* owned: the HTTP publish API's keys, NULL while it is off */
    SSL_CTX *tls_ctx;           /* owned (a reference): wss, and stomp-tls without client CA */
    SSL_CTX *tls_client_ctx;    /* owned (a reference): stomp-tls (requires client certs when
                                   tls.client_ca is set) */
    const struct conn_handler *conn_handler; /* borrowed (static): what a connection calls once
                                                its transport is settled (net/conn.h) */
    struct conn *conns;                      /* not owned here: each conn frees itself via reap */
    size_t conn_count;
    struct conn *reap_list;         /* connections to free before the loop sleeps */
    struct event *reap_event;       /* owned: activated when reap_list is non-empty */
    struct conn *flush_list;        /* plain connections with output to write this turn */
    struct event *flush_event;      /* owned: activated when flush_list becomes non-empty */
    /* owned by net/conn_deflate.c: the loop's zlib streams for permessage-deflate, made on first
     * use; NULL until then */
    struct conn_deflate_loop *deflate_loop;
    struct event *signal_events[3]; /* owned: SIGINT, SIGTERM, SIGHUP */
    struct event *shutdown_timer;   /* owned: bounds the drain at shutdown */
    bool shutting_down;
    int exit_code;
    uint64_t next_conn_id;
    uint64_t conn_id_stride;  /* connection ids are n * stride + loop_index: unique in the process,
                                 and a reply queue names its loop (see fanout_threads.c) */
    char node_token[17];      /* random hex: makes session ids and reply-queue names unguessable */
    struct admit admit;       /* connection admission limits */
    struct security security; /* users, ACL, JWT keys, failed-login throttle */
    /* Users-file logins hash their passcodes on these workers (auth.workers), not on the loop;
     * NULL pool: on the loop (auth.workers = 0). */
    struct workpool *auth_pool; /* borrowed from the process (threads > 1), else owned */
    bool auth_pool_owned;
    struct workpool_mailbox *auth_mailbox; /* owned: this loop's finished hashes */
    struct event *auth_event;              /* owned: reads auth_mailbox's eventfd */
    struct broker_stats stats;
    struct broker_loop_lag loop_lag;
    struct session *paused_publishers; /* not owned: sessions paused on a full queue (session.c) */
    /* admin API (issue #15) */
    struct admin *admin; /* owned: its keys and waiting requests (http/admin.h); NULL while off */

    /* presence (presence.h): who is subscribed to the tracked destinations, the process's table;
     * NULL while presence.pattern is unset. Owned when presence_owned (one loop), else borrowed
     * from the group of loops. */
    struct presence *presence;
    bool presence_owned;
};

/*
 * Shutdown, once the last client is gone: ends the loop when the fan-out backend has nothing left
 * to confirm (a clustered queue link's appends, acks and releases), else looks again in 20 ms
 * through the reap event (shutdown_timer bounds the wait).
 */
void broker_finish_shutdown(struct broker *b);

/* Monotonic milliseconds, for timeouts, heart-beats and rate limits. */
uint64_t broker_now_ms(const struct broker *b);
/* Wall-clock milliseconds since the Unix epoch (coarse): when a retained message was published. */
uint64_t broker_wall_ms(void);

#endif
