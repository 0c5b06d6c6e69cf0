#include "server/loop.h"
#include "broker/base/log.h"
#include "broker/base/workpool.h"
#include "broker/core/publish.h"
#include "broker/http/admin.h"
#include "broker/http/api.h"
#include "broker/http/metrics.h"
#include "broker/http/routes.h"
#include "broker/net/conn.h"
#include "broker/net/listener.h"
#include "broker/net/tls.h"
#include "broker/session/session.h"
#include "broker/session/sse.h"
#include "broker/core/history.h"
#include "broker/core/presence.h"
#include "broker/threads/fanout_threads.h"
#include "broker/threads/inbox.h"
#include "cluster/fanout_redis.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

static uint64_t monotonic_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/* Loop 0 passes a signal on to the other loops of the process. */
static void tell_others(struct broker *b, enum inbox_item_kind kind)
{
    for (size_t i = 1; b->inboxes != NULL && i < inboxes_count(b->inboxes); i++)
        inboxes_command(b->inboxes, i, kind);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct broker *b = arg;
    (void)what;
    if (sig == SIGHUP) {
        log_info(0, "received SIGHUP: reopening the log file, reloading certificates and auth "
                    "files");
        broker_reload(b);
        tell_others(b, INBOX_RELOAD);
        return;
    }
    log_info(0, "received %s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    broker_shutdown(b, "broker shutting down");
    tell_others(b, INBOX_SHUTDOWN);
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
    admin_reload(b);
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
    if (b->board != NULL) {
        struct metrics_figures f;
        metrics_collect(b, &f);
        metrics_board_publish(b->board, b->loop_index, &f);
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
    return fanout_redis_check_config(cfg, err, err_len);
}

/* Finished passcode hashes of this loop's sessions: their done callbacks run here. */
static void auth_mailbox_cb(evutil_socket_t fd, short what, void *arg)
{
    struct broker *b = arg;
    (void)fd;
    (void)what;
    workpool_mailbox_drain(b->auth_mailbox);
}

/*
 * The workers that hash users-file passcodes: the process's (threads > 1) or this loop's own, and
 * this loop's mailbox for their results. None with auth.workers = 0: logins hash on the loop.
 */
static int start_auth_workers(struct broker *b, const struct loop_peers *peers)
{
    if (b->cfg.auth_workers == 0)
        return 0;
    if (peers != NULL) {
        b->auth_pool = peers->auth_pool;
    } else {
        b->auth_pool = workpool_new(b->cfg.auth_workers, AUTH_WORKERS_NICE);
        b->auth_pool_owned = true;
    }
    if (b->auth_pool == NULL || (b->auth_mailbox = workpool_mailbox_new()) == NULL)
        return -1;
    b->auth_event = event_new(b->base, workpool_mailbox_fd(b->auth_mailbox), EV_READ | EV_PERSIST,
                              auth_mailbox_cb, b);
    return b->auth_event != NULL && event_add(b->auth_event, NULL) == 0 ? 0 : -1;
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
    .http_abandon = http_abandon,
    .sse_open = sse_open,
};

/* Only loop 0 handles signals: the others' threads block them (threads.c). */
static int add_signals(struct broker *b)
{
    if (b->loop_index != 0)
        return 0;
    if (add_signal(b, 0, SIGINT) != 0 || add_signal(b, 1, SIGTERM) != 0 ||
        add_signal(b, 2, SIGHUP) != 0)
        return -1;
    return 0;
}

/* The router hands deliveries to sessions, and interest and queue events to the backend. */
static void start_router(struct broker *b)
{
    const struct config *cfg = &b->cfg;
    const struct delivery_ops ops = {.deliver = session_deliver,
                                     .writable = session_writable,
                                     .interest = publish_interest,
                                     .queue_event = publish_queue_event,
                                     .ctx = b,
                                     .publish_done = session_append_done,
                                     .replay_receipt = session_replay_receipt,
                                     .queue_unblocked = session_queue_unblocked};
    router_init(&b->router, &ops, cfg->queue_max_messages);
    b->router.queues.cluster_window = cfg->queue_prefetch != 0 ? cfg->queue_prefetch : 100;
    b->router.queues.block = strcmp(cfg->queue_overflow, "block") == 0;
}

/*
 * The fan-out backend: Redis for a cluster node (every loop is a node), else the process's
 * queue store and inboxes with several loops, else none. A /reply-queue/ crosses loops through
 * the inboxes in both multi-loop cases.
 */
static int start_fanout(struct broker *b, const struct loop_peers *peers)
{
    if (peers != NULL)
        b->forward_reply = fanout_threads_forward_reply;
    if (config_clustered(&b->cfg))
        return fanout_redis_start(b);
    if (peers != NULL && peers->store != NULL)
        return fanout_threads_start(b, peers->store);
    return 0;
}

/* The retained topic messages: the group's store with several loops, else the loop's own;
 * none without a policy. */
static int start_history(struct broker *b, const struct loop_peers *peers)
{
    if (peers != NULL) {
        b->history = peers->history;
        return 0;
    }
    if (b->cfg.history_count == 0)
        return 0;
    b->history = history_new(&b->cfg, false);
    b->history_owned = true;
    if (b->history == NULL)
        log_error(0, "history: out of memory");
    return b->history != NULL ? 0 : -1;
}

/* presence: the group's table with several loops, else the loop's own; none while it is off. */
static int start_presence(struct broker *b, const struct loop_peers *peers)
{
    if (peers != NULL) {
        b->presence = peers->presence;
        return 0;
    }
    if (b->cfg.presence_count == 0)
        return 0;
    b->presence_owned = (b->presence = presence_new(&b->cfg, false)) != NULL;
    if (b->presence == NULL)
        log_error(0, "presence: out of memory");
    return b->presence != NULL ? 0 : -1;
}

struct broker *broker_new_in(const struct config *cfg, const struct loop_peers *peers, size_t index)
{
    struct broker *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->cfg = *cfg;
    b->loop_index = index;
    b->conn_handler = &conn_handler;
    b->inboxes = peers != NULL ? peers->inboxes : NULL;
    b->board = peers != NULL ? peers->board : NULL;
    b->conn_id_stride = peers != NULL ? inboxes_count(peers->inboxes) : 1;
    b->base = event_base_new();
    b->listeners = calloc(LISTENER_COUNT, sizeof(*b->listeners));
    if (b->base == NULL || b->listeners == NULL)
        goto fail;
    make_node_token(b);
    admit_init(&b->admit, (double)cfg->connection_rate, (double)cfg->connection_burst,
               cfg->max_connections, cfg->max_connections_per_address, broker_now_ms(b));
    start_router(b);
    if (start_history(b, peers) != 0 || start_presence(b, peers) != 0)
        goto fail;
    b->shutdown_timer = evtimer_new(b->base, shutdown_timeout_cb, b);
    b->loop_lag.timer = evtimer_new(b->base, lag_tick_cb, b);
    if (conn_lists_init(b) != 0 || b->shutdown_timer == NULL || b->loop_lag.timer == NULL ||
        add_signals(b) != 0)
        goto fail;
    arm_lag_tick(b, monotonic_us());
    char err[512];
    if (security_load(&b->security, cfg, err, sizeof(err)) != 0) {
        log_error(0, "auth: %s", err);
        goto fail;
    }
    if (start_auth_workers(b, peers) != 0) {
        log_error(0, "auth: cannot start the passcode hashing workers (auth.workers = %zu)",
                  cfg->auth_workers);
        goto fail;
    }
    if (load_tls(b, err, sizeof(err)) != 0) {
        log_error(0, "TLS: %s", err);
        goto fail;
    }
    if (http_start(b) != 0 || start_fanout(b, peers) != 0 || open_listeners(b) != 0)
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
    for (int kind = 0; b->listeners != NULL && kind < LISTENER_COUNT; kind++)
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
        broker_finish_shutdown(b);
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
    conn_free_all(b); /* sessions give their queue messages back before the router goes */
    /* The sessions cancelled their queued hashes; wait for the ones a worker still runs. */
    if (b->auth_event != NULL)
        event_free(b->auth_event);
    workpool_mailbox_free(b->auth_mailbox);
    if (b->auth_pool_owned)
        workpool_free(b->auth_pool);
    router_reset(&b->router);
    admit_reset(&b->admit);
    security_reset(&b->security);
    api_free(b->api);
    admin_free(b->admin);
    b->admin = NULL;           /* the backend, freed below, may still report on a request */
    if (b->fanout.ops != NULL) /* after the sessions: their releases still reach it */
        b->fanout.ops->free(b->fanout.ctx);
    if (b->history_owned)
        history_free(b->history);
    if (b->presence_owned)
        presence_free(b->presence);
    for (int kind = 0; b->listeners != NULL && kind < LISTENER_COUNT; kind++)
        listener_close(&b->listeners[kind]);
    free(b->listeners);
    SSL_CTX_free(b->tls_ctx);
    SSL_CTX_free(b->tls_client_ctx);
    for (size_t i = 0; i < sizeof(b->signal_events) / sizeof(b->signal_events[0]); i++)
        if (b->signal_events[i] != NULL)
            event_free(b->signal_events[i]);
    if (b->shutdown_timer != NULL)
        event_free(b->shutdown_timer);
    if (b->loop_lag.timer != NULL)
        event_free(b->loop_lag.timer);
    if (b->base != NULL)
        event_base_free(b->base);
    free(b);
}
