#include "broker/core/broker.h"
#include "cluster/bridge.h"
#include "cluster/streams.h"
#include "broker/http/api.h"
#include "broker/net/conn.h"
#include "broker/http/routes.h"
#include "broker/net/listener.h"
#include "broker/base/log.h"
#include "server/threads.h"
#include "broker/core/queue.h"
#include "broker/session/session.h"
#include "broker/threads/shared_queues.h"
#include "broker/net/tls.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

const char *limit_name(enum limit_kind kind)
{
    static const char *const names[LIMIT_COUNT] = {
        [LIMIT_CONNECTION_RATE] = "limits.connection_rate",
        [LIMIT_MAX_CONNECTIONS] = "limits.max_connections",
        [LIMIT_CONNECTIONS_PER_ADDRESS] = "limits.max_connections_per_address",
        [LIMIT_HANDSHAKE_TIMEOUT] = "limits.handshake_timeout_ms",
        [LIMIT_CONNECT_TIMEOUT] = "limits.connect_timeout_ms",
        [LIMIT_HTTP_HEADER_BYTES] = "limits.max_http_header_bytes",
        [LIMIT_WS_MESSAGE] = "limits.max_ws_message",
        [LIMIT_STOMP_FRAME] = "limits.max_frame_headers|max_header_line|max_header_bytes|max_body",
        [LIMIT_SUBSCRIPTIONS] = "limits.max_subscriptions",
        [LIMIT_TRANSACTIONS] = "limits.max_transactions",
        [LIMIT_TX_FRAMES] = "limits.max_tx_frames",
        [LIMIT_UNACKED] = "limits.max_unacked",
        [LIMIT_PUBLISH_RATE] = "limits.publish_rate",
        [LIMIT_QUEUE_MESSAGES] = "queue.max_messages",
        [LIMIT_SLOW_CONSUMER] = "limits.slow_consumer_max_drops",
        [LIMIT_HEARTBEAT] = "heartbeat",
        [LIMIT_CLUSTER_QUEUE_BUFFER] = "cluster.queue_buffer_bytes",
    };
    return names[kind];
}

const uint64_t broker_lag_bucket_us[BROKER_LAG_BUCKETS] = {
    1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000};

static uint64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t broker_now_ms(const struct broker *b)
{
    (void)b;
    /* Monotonic: wall-clock steps must not fire timeouts or fill buckets. Coarse (a few ms of
     * resolution, no syscall, far cheaper): it is read once per delivery, and every use here
     * (timeouts, heart-beats, rate buckets) is in milliseconds anyway. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/*
 * Shutdown, once the last client is gone: exit when the cluster queue link has confirmed every
 * message, ack and release it holds (looked at again every 20 ms; shutdown_timer bounds it).
 */
static void finish_shutdown(struct broker *b)
{
    if (b->streams != NULL && !streams_flushed(b->streams) && streams_link_up(b->streams)) {
        const struct timeval again = {.tv_sec = 0, .tv_usec = 20000};
        event_add(b->reap_event, &again);
        return;
    }
    event_base_loopexit(b->base, NULL);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_flush_all(arg);
}

/* Frees the connections closed during this loop turn; none is ever freed in its own callback. */
static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct broker *b = arg;
    (void)fd;
    (void)what;
    while (b->reap_list != NULL) {
        struct conn *c = b->reap_list;
        b->reap_list = c->reap_next;
        conn_free(c);
    }
    if (b->shutting_down && b->conn_count == 0)
        finish_shutdown(b);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct broker *b = arg;
    (void)what;
    if (sig == SIGHUP) {
        log_info(0, "received SIGHUP: reopening the log file, reloading certificates and auth "
                    "files");
        broker_reload(b);
        if (b->group != NULL)
            loops_reload_others(b->group);
        return;
    }
    log_info(0, "received %s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    broker_shutdown(b, "broker shutting down");
    if (b->group != NULL)
        loops_shutdown_others(b->group);
}

/* Both TLS contexts from cfg's files; -1 with err set (and nothing to free) on failure. */
static int tls_contexts_new(const struct config *cfg, SSL_CTX **ctx, SSL_CTX **client_ctx,
                            char *err, size_t err_len)
{
    *ctx = tls_context_new(cfg, false, err, err_len);
    *client_ctx = NULL;
    if (*ctx != NULL && cfg->tls_client_ca[0] != '\0')
        *client_ctx = tls_context_new(cfg, true, err, err_len);
    else if (*ctx != NULL && SSL_CTX_up_ref(*ctx) == 1)
        *client_ctx = *ctx; /* stomp-tls shares the wss context */
    if (*ctx == NULL || *client_ctx == NULL) {
        SSL_CTX_free(*ctx);
        *ctx = NULL;
        return -1;
    }
    return 0;
}

/* Builds both TLS contexts; on failure keeps the ones in use and returns -1 with err set. */
static int load_tls(struct broker *b, char *err, size_t err_len)
{
    const struct config *cfg = &b->cfg;
    if (!cfg->wss.enabled && !cfg->stomp_tls.enabled)
        return 0;
    SSL_CTX *ctx, *client_ctx;
    if (tls_contexts_new(cfg, &ctx, &client_ctx, err, err_len) != 0)
        return -1;
    SSL_CTX_free(b->tls_ctx); /* connections still using the old ones hold their own reference */
    SSL_CTX_free(b->tls_client_ctx);
    b->tls_ctx = ctx;
    b->tls_client_ctx = client_ctx;
    return 0;
}

static void reopen_log(void)
{
    char err[512];
    if (log_reopen(err, sizeof(err)) != 0)
        log_error(0, "log file not reopened (still writing to the old one): %s", err);
    else if (log_file_path() != NULL)
        log_info(0, "log file %s reopened", log_file_path());
}

void broker_reload(struct broker *b)
{
    char err[512];
    /* First, so the outcome of the rest lands in the new file; by loop 0 alone, which passes the
     * reload on to the other loops only afterwards. */
    if (b->loop_index == 0)
        reopen_log();
    if (load_tls(b, err, sizeof(err)) != 0)
        log_error(0, "TLS certificates not reloaded (keeping the current ones): %s", err);
    else if (b->tls_ctx != NULL)
        log_info(0, "TLS certificates reloaded from %s", b->cfg.tls_cert);
    if (security_load(&b->security, &b->cfg, err, sizeof(err)) != 0)
        log_error(0, "auth files not reloaded (keeping the previous ones): %s", err);
    else
        log_info(0, "auth files reloaded");
    api_reload(b);
}

static int open_listeners(struct broker *b)
{
    const struct config_addr *addrs[LISTENER_COUNT] = {[LISTENER_WS] = &b->cfg.ws,
                                                       [LISTENER_WSS] = &b->cfg.wss,
                                                       [LISTENER_TCP] = &b->cfg.tcp,
                                                       [LISTENER_STOMP_TLS] = &b->cfg.stomp_tls,
                                                       [LISTENER_HTTP] = &b->cfg.http};
    for (int kind = 0; kind < LISTENER_COUNT; kind++)
        if (addrs[kind]->enabled &&
            listener_open(&b->listeners[kind], b, (enum listener_kind)kind, addrs[kind]) != 0)
            return -1;
    return 0;
}

static void shutdown_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct broker *b = arg;
    (void)fd;
    (void)what;
    log_warn(0, "%zu connections still open after server.shutdown_timeout_ms: closing them",
             b->conn_count);
    event_base_loopexit(b->base, NULL);
}

static void make_node_token(struct broker *b)
{
    uint8_t rnd[8];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        uint64_t t = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)b;
        memcpy(rnd, &t, sizeof(rnd));
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(b->node_token + 2 * i, 3, "%02x", rnd[i]);
    if (b->loop_index != 0)
        return; /* one seed for the process: loop 0's dicts are in use already */
    uint64_t seed;
    memcpy(&seed, rnd, sizeof(seed));
    dict_seed(seed);
}

/* The router's interest transitions, followed in Redis by the bridge, or by the other loops of
 * the process when topics cross loops through their inboxes. */
static void follow_interest(void *ctx, const char *name, size_t len, bool pattern, bool added)
{
    struct broker *b = ctx;
    if (b->bridge != NULL)
        bridge_interest(b->bridge, name, len, pattern, added);
    else if (b->group != NULL)
        loops_topic_interest(b->group, b->loop_index, added ? 1 : -1);
}

/* A message from another node: local subscribers only, never back to Redis. */
static void deliver_remote(void *ctx, struct message *msg, const char *pattern, size_t len)
{
    struct broker *b = ctx;
    if (pattern == NULL)
        router_publish_exact(&b->router, msg);
    else
        router_publish_pattern(&b->router, msg, pattern, len);
}

static bool goes_to_stream(const struct broker *b, const char *route, size_t len)
{
    return b->streams != NULL && router_dest_kind(route, len) == DEST_QUEUE;
}

/* ---- across the loops of the process (threads > 1) ----------------------------------------- */

static struct shared_queues *store_of(const struct broker *b)
{
    return b->group != NULL ? loops_queues(b->group) : NULL;
}

/*
 * A topic message: this loop's subscribers, then a copy for every other loop whose clients
 * follow topics (none when the loops are cluster nodes: Redis carries topics between them). It
 * found no subscriber only when no other loop was sent a copy either.
 */
static int publish_topic_across(struct broker *b, struct message *msg, const char *route,
                                size_t len)
{
    if (router_is_wildcard(route, len))
        return ROUTER_ERR_BAD_DEST;
    size_t n = router_publish_topic(&b->router, msg, route, len);
    bool elsewhere = loops_forward_topic(b->group, b->loop_index, msg);
    b->router.stats.published++;
    if (n == 0 && !elsewhere)
        b->router.stats.unroutable++;
    return 0;
}

void broker_deliver_forwarded(struct broker *b, struct message *msg)
{
    router_publish_topic(&b->router, msg, msg->destination, msg->destination_len);
}

/*
 * The loop that owns a /reply-queue/: its name is /reply-queue/sess-<conn id>-..., and a
 * connection id is n * loops + loop. SIZE_MAX when the name is not one the broker made.
 */
static size_t reply_queue_loop(const struct broker *b, const char *route, size_t len)
{
    static const char lead[] = REPLY_QUEUE_PREFIX "sess-";
    size_t i = sizeof(lead) - 1;
    if (len <= i || memcmp(route, lead, i) != 0 || route[i] < '0' || route[i] > '9')
        return SIZE_MAX;
    uint64_t id = 0;
    for (; i < len && route[i] >= '0' && route[i] <= '9' && id < UINT64_MAX / 10; i++)
        id = id * 10 + (uint64_t)(route[i] - '0');
    return i < len && route[i] == '-' ? (size_t)(id % b->conn_id_stride) : SIZE_MAX;
}

/* A /reply-queue/ this loop does not have: its owner's inbox, when it is another loop. */
static int publish_reply_across(struct broker *b, struct message *msg, const char *route,
                                size_t len)
{
    size_t owner = reply_queue_loop(b, route, len);
    if (owner == SIZE_MAX || owner == b->loop_index)
        return ROUTER_ERR_NO_QUEUE;
    if (loops_forward_reply(b->group, owner, msg) != 0)
        return ROUTER_ERR_NOMEM;
    b->router.stats.published++;
    return 0;
}

/* At the owner: gone meanwhile counts as a drop here, as a SEND to a gone queue would. */
void broker_deliver_reply(struct broker *b, struct message *msg)
{
    struct queue *q = queue_lookup(&b->router, msg->destination, msg->destination_len, false);
    if (q == NULL || queue_push(&b->router, q, msg, false) != 0)
        b->stats.reply_queue_drops++;
}

/* A /queue/ message goes to the process's store; a publisher that waits (a session) may be
 * paused by it, an API request is refused at the limit instead. */
static int publish_to_store(struct broker *b, struct message *msg, struct session *waiter)
{
    bool full = false;
    int rc = shared_queues_append(store_of(b), b->loop_index, msg, waiter != NULL ? &full : NULL);
    if (rc != 0)
        return rc;
    b->router.stats.published++;
    return full ? BROKER_PUBLISH_FULL : 0;
}

/* The most entries taken from the store at once (on the stack); a loop takes again while its
 * consumers still have room. */
#define TAKE_BATCH 64

/* Takes from the store what the local consumers of q can take now. */
static void take_for_queue(struct broker *b, struct queue *q)
{
    struct message *msgs[TAKE_BATCH];
    bool redelivered[TAKE_BATCH];
    size_t room;
    while (q->consumer_count > 0 && (room = queue_capacity(&b->router, q)) > 0) {
        size_t want = room < TAKE_BATCH ? room : TAKE_BATCH;
        size_t n = shared_queues_take(store_of(b), b->loop_index, q->name, q->name_len, want, msgs,
                                      redelivered);
        for (size_t i = 0; i < n; i++) {
            if (q->consumer_count == 0 || queue_push(&b->router, q, msgs[i], redelivered[i]) != 0)
                shared_queues_release(store_of(b), b->loop_index, msgs[i], false);
            message_unref(msgs[i]);
        }
        if (n < want)
            return;
    }
}

void broker_take_queues(struct broker *b)
{
    size_t bucket;
    struct dict_entry *e = dict_first(&b->router.queues, &bucket);
    while (e != NULL) {
        struct queue *q = e->value;
        e = dict_next(&b->router.queues, &bucket, e); /* taking never frees a followed queue */
        if (q->clustered && q->consumer_count > 0)
            take_for_queue(b, q);
    }
}

int broker_publish_waiting(struct broker *b, struct message *msg, const char *route, size_t len,
                           bool create_queue, struct session *waiter)
{
    if (goes_to_stream(b, route, len)) {
        if (streams_append(b->streams, msg, waiter) != 0)
            return ROUTER_ERR_CLUSTER_FULL;
        b->router.stats.published++;
        return waiter != NULL ? BROKER_PUBLISH_PENDING : 0;
    }
    enum dest_kind kind = router_dest_kind(route, len);
    if (store_of(b) != NULL && kind == DEST_QUEUE)
        return publish_to_store(b, msg, waiter);
    if (b->group != NULL && b->bridge == NULL && kind == DEST_TOPIC)
        return publish_topic_across(b, msg, route, len);
    int rc = router_publish(&b->router, msg, route, len, create_queue);
    if (rc == ROUTER_ERR_NO_QUEUE && b->group != NULL && kind == DEST_REPLY_QUEUE)
        return publish_reply_across(b, msg, route, len);
    if (rc == 0 && b->bridge != NULL && kind == DEST_TOPIC)
        bridge_publish(b->bridge, msg);
    return rc;
}

int broker_publish(struct broker *b, struct message *msg, const char *route, size_t len,
                   bool create_queue)
{
    return broker_publish_waiting(b, msg, route, len, create_queue, NULL);
}

/* ---- queues across nodes ------------------------------------------------------------------- */

/* What the router tells of queues backed by the process's store (threads > 1). */
static void follow_store(struct broker *b, struct queue *q, enum queue_event ev,
                         struct message *msg)
{
    struct shared_queues *sq = store_of(b);
    switch (ev) {
    case QUEUE_EV_FOLLOW:
    case QUEUE_EV_UNFOLLOW:
        shared_queues_follow(sq, b->loop_index, q->name, q->name_len, ev == QUEUE_EV_FOLLOW);
        break;
    case QUEUE_EV_SETTLED:
        shared_queues_settle(sq, msg);
        break;
    case QUEUE_EV_RELEASED:
    case QUEUE_EV_DECLINED:
        shared_queues_release(sq, b->loop_index, msg, ev == QUEUE_EV_DECLINED);
        break;
    case QUEUE_EV_ROOM:
        loops_kick(b->group, b->loop_index); /* taken on a later turn, not inside a dispatch */
        break;
    case QUEUE_EV_UNBLOCK:
        break;
    }
}

/* What the router tells of clustered queues, passed on to the streams. */
static void follow_queue(void *ctx, struct queue *q, enum queue_event ev, struct message *msg)
{
    struct broker *b = ctx;
    if (ev == QUEUE_EV_UNBLOCK) {
        session_queue_unblocked(b, q->name);
        return;
    }
    if (store_of(b) != NULL) {
        follow_store(b, q, ev, msg);
        return;
    }
    if (b->streams == NULL)
        return;
    switch (ev) {
    case QUEUE_EV_FOLLOW:
    case QUEUE_EV_UNFOLLOW:
        streams_follow(b->streams, q->name, q->name_len, ev == QUEUE_EV_FOLLOW);
        break;
    case QUEUE_EV_SETTLED:
        streams_ack(b->streams, msg);
        break;
    case QUEUE_EV_RELEASED:
    case QUEUE_EV_DECLINED:
        streams_release(b->streams, msg);
        break;
    case QUEUE_EV_ROOM:
        streams_kick(b->streams);
        break;
    case QUEUE_EV_UNBLOCK:
        break;
    }
}

/* A message from a queue's stream: to the local queue, or back when nobody here takes it. */
static void deliver_from_stream(void *ctx, struct message *msg, bool redelivered)
{
    struct broker *b = ctx;
    struct queue *q = queue_lookup(&b->router, msg->destination, msg->destination_len, false);
    if (q == NULL || q->consumer_count == 0 || queue_push(&b->router, q, msg, redelivered) != 0)
        streams_release(b->streams, msg);
}

static size_t stream_capacity(void *ctx, const char *name, size_t len)
{
    struct broker *b = ctx;
    struct queue *q = queue_lookup(&b->router, name, len, false);
    return q != NULL ? queue_capacity(&b->router, q) : 0;
}

static void stream_appended(void *ctx, void *waiter, const char *error)
{
    (void)ctx;
    session_append_done(waiter, error);
}

static int start_streams(struct broker *b, const struct bridge_config *bcfg)
{
    struct bridge_config scfg = *bcfg;
    snprintf(scfg.node_id, sizeof(scfg.node_id), "%s", bridge_node_id(b->bridge));
    const struct streams_ops ops = {.ctx = b,
                                    .deliver = deliver_from_stream,
                                    .capacity = stream_capacity,
                                    .appended = stream_appended};
    b->streams = streams_new(b->base, &scfg, b->cfg.cluster_queue_visibility_ms,
                             b->cfg.cluster_queue_buffer_bytes, &ops);
    if (b->streams == NULL)
        return -1;
    b->router.cluster_queues = true;
    return 0;
}

/* Joins the cluster when cluster.redis is set; -1 when the settings are unusable. */
static int start_bridge(struct broker *b)
{
    const struct config *cfg = &b->cfg;
    if (cfg->cluster_redis[0] == '\0')
        return 0;
    struct bridge_config bcfg;
    bridge_config_defaults(&bcfg);
    char err[256];
    if (bridge_parse_url(cfg->cluster_redis, &bcfg, err, sizeof(err)) != 0) {
        log_error(0, "cluster.redis: %s", err);
        return -1;
    }
    snprintf(bcfg.node_id, sizeof(bcfg.node_id), "%s", cfg->cluster_node_id);
    snprintf(bcfg.prefix, sizeof(bcfg.prefix), "%s", cfg->cluster_prefix);
    bcfg.unsubscribe_grace_ms = cfg->cluster_unsubscribe_grace_ms;
    bcfg.probe_interval_ms = cfg->cluster_probe_interval_ms;
    bcfg.reconnect_max_ms = cfg->cluster_reconnect_max_ms;
    if (bcfg.reconnect_min_ms > bcfg.reconnect_max_ms)
        bcfg.reconnect_min_ms = bcfg.reconnect_max_ms;
    bcfg.max_destination = cfg->max_header_line;
    bcfg.max_headers = cfg->max_frame_headers;
    bcfg.max_header_bytes = cfg->max_header_bytes;
    bcfg.max_body = cfg->max_body;
    const struct bridge_ops ops = {.ctx = b, .deliver = deliver_remote};
    b->bridge = bridge_new(b->base, &bcfg, &ops);
    if (b->bridge == NULL || start_streams(b, &bcfg) != 0)
        return -1;
    log_info(0, "cluster node %s through redis %s:%u", bridge_node_id(b->bridge), bcfg.redis_host,
             bcfg.redis_port);
    return 0;
}

/* Due again BROKER_LAG_TICK_MS from now; libevent's cached time is refreshed so that its
 * deadline and due_us count from the same instant. */
static void arm_lag_tick(struct broker *b, uint64_t now_us)
{
    struct timeval tv = {.tv_sec = 0, .tv_usec = BROKER_LAG_TICK_MS * 1000};
    b->loop_lag.due_us = now_us + BROKER_LAG_TICK_MS * 1000;
    event_base_update_cache_time(b->base);
    evtimer_add(b->loop_lag.timer, &tv);
}

/* How late this tick runs is how long the loop was busy elsewhere (or the process starved). */
static void lag_tick_cb(evutil_socket_t fd, short what, void *arg)
{
    struct broker *b = arg;
    struct broker_loop_lag *lag = &b->loop_lag;
    (void)fd;
    (void)what;
    uint64_t now = monotonic_us();
    /* libevent may wake a little early by the finer clock: that is no lag. */
    uint64_t late = now > lag->due_us ? now - lag->due_us : 0;
    lag->last_us = late;
    lag->sum_us += late;
    lag->count++;
    size_t bucket = 0;
    while (bucket < BROKER_LAG_BUCKETS && late > broker_lag_bucket_us[bucket])
        bucket++;
    lag->buckets[bucket]++;
    arm_lag_tick(b, now);
    if (b->group != NULL) {
        struct http_figures f;
        http_figures_collect(b, &f);
        loops_publish_figures(b->group, b->loop_index, &f);
    }
}

int broker_check_config(const struct config *cfg, char *err, size_t err_len)
{
    char why[400];
    struct security sec = {0};
    int rc = security_load(&sec, cfg, why, sizeof(why));
    security_reset(&sec);
    if (rc != 0) {
        snprintf(err, err_len, "auth: %s", why);
        return -1;
    }
    SSL_CTX *ctx, *client_ctx;
    if (cfg->wss.enabled || cfg->stomp_tls.enabled) {
        if (tls_contexts_new(cfg, &ctx, &client_ctx, why, sizeof(why)) != 0) {
            snprintf(err, err_len, "TLS: %s", why);
            return -1;
        }
        SSL_CTX_free(ctx);
        SSL_CTX_free(client_ctx);
    }
    struct bridge_config bcfg;
    bridge_config_defaults(&bcfg);
    if (cfg->cluster_redis[0] != '\0' &&
        bridge_parse_url(cfg->cluster_redis, &bcfg, why, sizeof(why)) != 0) {
        snprintf(err, err_len, "cluster.redis: %s", why);
        return -1;
    }
    return 0;
}

static int add_signal(struct broker *b, int slot, int sig)
{
    b->signal_events[slot] = evsignal_new(b->base, sig, signal_cb, b);
    return b->signal_events[slot] != NULL ? evsignal_add(b->signal_events[slot], NULL) : -1;
}

struct broker *broker_new(const struct config *cfg)
{
    return broker_new_in(cfg, NULL, 0);
}

/* Connections hand STOMP bytes to sessions and requests to the HTTP routes. */
static const struct conn_handler conn_handler = {
    .stomp_open = session_new,
    .stomp_feed = session_feed,
    .stomp_drained = session_drained,
    .stomp_close = session_free,
    .http_body_wanted = http_body_wanted,
    .http_serve = http_serve,
};

/* Only loop 0 handles signals: the others' threads block them (loops.c). */
static int add_signals(struct broker *b)
{
    if (b->loop_index != 0)
        return 0;
    if (add_signal(b, 0, SIGINT) != 0 || add_signal(b, 1, SIGTERM) != 0 ||
        add_signal(b, 2, SIGHUP) != 0)
        return -1;
    return 0;
}

struct broker *broker_new_in(const struct config *cfg, struct loops *group, size_t index)
{
    struct broker *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->cfg = *cfg;
    b->group = group;
    b->loop_index = index;
    b->conn_handler = &conn_handler;
    b->conn_id_stride = group != NULL ? loops_count(group) : 1;
    b->base = event_base_new();
    if (b->base == NULL)
        goto fail;
    make_node_token(b);
    admit_init(&b->admit, (double)cfg->connection_rate, (double)cfg->connection_burst,
               cfg->max_connections, cfg->max_connections_per_address, broker_now_ms(b));
    const struct router_ops ops = {.deliver = session_deliver,
                                   .writable = session_writable,
                                   .interest = follow_interest,
                                   .queue_event = follow_queue,
                                   .ctx = b};
    router_init(&b->router, &ops, cfg->queue_max_messages);
    b->router.cluster_window = cfg->queue_prefetch != 0 ? cfg->queue_prefetch : 100;
    b->router.queue_block = strcmp(cfg->queue_overflow, "block") == 0;
    if (store_of(b) != NULL) { /* /queue/ names are the store's: a loop holds what it took */
        b->router.cluster_queues = true;
        b->router.release_declined = true;
    }
    b->reap_event = event_new(b->base, -1, 0, reap_cb, b);
    b->flush_event = event_new(b->base, -1, 0, flush_cb, b);
    b->shutdown_timer = evtimer_new(b->base, shutdown_timeout_cb, b);
    b->loop_lag.timer = evtimer_new(b->base, lag_tick_cb, b);
    if (b->reap_event == NULL || b->flush_event == NULL || b->shutdown_timer == NULL ||
        b->loop_lag.timer == NULL || add_signals(b) != 0)
        goto fail;
    arm_lag_tick(b, monotonic_us());
    char err[512];
    if (security_load(&b->security, cfg, err, sizeof(err)) != 0) {
        log_error(0, "auth: %s", err);
        goto fail;
    }
    if (load_tls(b, err, sizeof(err)) != 0) {
        log_error(0, "TLS: %s", err);
        goto fail;
    }
    if (http_start(b) != 0 || start_bridge(b) != 0 || open_listeners(b) != 0)
        goto fail;
    return b;
fail:
    broker_free(b);
    return NULL;
}

void broker_shutdown(struct broker *b, const char *reason)
{
    if (b->shutting_down)
        return;
    b->shutting_down = true;
    /* The --http listener stays open while clients drain: probes hear /readyz 503 "shutting
     * down" (and /healthz 200) instead of hanging in the accept queue. */
    for (int kind = 0; kind < LISTENER_COUNT; kind++)
        if (b->listeners[kind].evl != NULL && kind != LISTENER_HTTP)
            evconnlistener_disable(b->listeners[kind].evl);
    for (struct conn *c = b->conns; c != NULL; c = c->next) {
        if (c->session != NULL && conn_is_open(c))
            session_shutdown(c->session, reason);
        else if (c->state == CONN_HTTP)
            conn_close(c);
    }
    struct timeval tv = {.tv_sec = b->cfg.shutdown_timeout_ms / 1000,
                         .tv_usec = (b->cfg.shutdown_timeout_ms % 1000) * 1000};
    evtimer_add(b->shutdown_timer, &tv);
    if (b->conn_count == 0)
        finish_shutdown(b);
}

int broker_run(struct broker *b)
{
    event_base_dispatch(b->base);
    return b->exit_code;
}

void broker_free(struct broker *b)
{
    if (b == NULL)
        return;
    while (b->conns != NULL)
        conn_free(b->conns); /* sessions give their queue messages back before the router goes */
    b->reap_list = NULL;
    router_reset(&b->router);
    admit_reset(&b->admit);
    security_reset(&b->security);
    api_free(b->api);
    streams_free(b->streams); /* after the sessions: their releases still reach it */
    bridge_free(b->bridge);   /* after the sessions: their unsubscribes still reach it */
    for (int kind = 0; kind < LISTENER_COUNT; kind++)
        listener_close(&b->listeners[kind]);
    SSL_CTX_free(b->tls_ctx);
    SSL_CTX_free(b->tls_client_ctx);
    for (size_t i = 0; i < sizeof(b->signal_events) / sizeof(b->signal_events[0]); i++)
        if (b->signal_events[i] != NULL)
            event_free(b->signal_events[i]);
    if (b->reap_event != NULL)
        event_free(b->reap_event);
    if (b->flush_event != NULL)
        event_free(b->flush_event);
    if (b->shutdown_timer != NULL)
        event_free(b->shutdown_timer);
    if (b->loop_lag.timer != NULL)
        event_free(b->loop_lag.timer);
    if (b->base != NULL)
        event_base_free(b->base);
    free(b);
}
