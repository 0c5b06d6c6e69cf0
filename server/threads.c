#include "server/threads.h"
#include "broker/base/log.h"
#include "broker/base/workpool.h"
#include "broker/core/history.h"
#include "broker/core/presence.h"
#include "broker/core/publish.h"
#include "broker/http/admin.h"
#include "broker/http/metrics.h"
#include "broker/net/listener.h"
#include "broker/threads/fanout_threads.h"
#include "broker/threads/inbox.h"
#include "broker/threads/shared_queues.h"
#include "server/loop.h"

#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One loop of the process. */
struct loop_slot {
    struct loops *group; /* borrowed: the group this slot belongs to */
    size_t index;
    struct broker *broker; /* owned: made by the main thread, run and freed by the loop's own */
    pthread_t thread;      /* loops 1..: valid while thread_started */
    bool thread_started;
    int exit_code; /* the loop's thread writes it before it ends */
};

struct loops {
    size_t count;
    struct loop_slot *slots; /* owned: count of them */
    struct loop_peers peers; /* owned: the inboxes, the queue store and the figures board */
};

/* ---- what arrives in a loop's inbox ---------------------------------------------------------- */

/* inbox_ops.receive of every loop: on that loop's thread, one item at a time. */
static void receive(void *ctx, const struct inbox_item *item)
{
    struct broker *b = ((struct loop_slot *)ctx)->broker;
    switch (item->kind) {
    case INBOX_TOPIC:
        fanout_threads_deliver_topic(b, item->msg);
        break;
    case INBOX_REPLY:
        fanout_threads_deliver_reply(b, item->msg);
        break;
    case INBOX_KICK:
        fanout_threads_take(b);
        break;
    case INBOX_UNBLOCK:
        publish_queue_unblocked(b, item->name);
        break;
    case INBOX_SHUTDOWN:
        broker_shutdown(b, "broker shutting down");
        break;
    case INBOX_RELOAD:
        broker_reload(b);
        break;
    case INBOX_ADMIN:
        admin_inbox_request(b, item->name);
        break;
    case INBOX_ADMIN_ANSWER:
        admin_take_answer(b, item->name, strlen(item->name));
        break;
    }
}

/* ---- the group ------------------------------------------------------------------------------ */

static void loops_free(struct loops *g)
{
    if (g == NULL)
        return;
    workpool_free(g->peers.auth_pool); /* after every loop: their mailboxes are gone */
    shared_queues_free(g->peers.store);
    history_free(g->peers.history);
    presence_free(g->peers.presence);
    metrics_board_free(g->peers.board);
    inboxes_free(g->peers.inboxes);
    free(g->slots);
    free(g);
}

static struct loops *loops_new(const struct config *cfg)
{
    struct loops *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    g->count = cfg->threads;
    g->slots = calloc(g->count, sizeof(*g->slots));
    for (size_t i = 0; g->slots != NULL && i < g->count; i++) {
        g->slots[i].group = g;
        g->slots[i].index = i;
    }
    g->peers.inboxes = inboxes_new(g->count);
    bool ok = g->slots != NULL && g->peers.inboxes != NULL;
    /* With Redis every loop is a cluster node and queues live in Redis Streams. */
    if (ok && !config_clustered(cfg))
        ok =
            (g->peers.store = shared_queues_new(g->peers.inboxes, cfg->queue_max_messages,
                                                strcmp(cfg->queue_overflow, "block") == 0)) != NULL;
    /* One offset sequence per destination for every loop: one store for the process. */
    if (ok && cfg->history_count > 0)
        ok = (g->peers.history = history_new(cfg, true)) != NULL;
    /* presence: one table for every loop, so a user on two loops joins once. */
    if (ok && cfg->presence_count > 0)
        ok = (g->peers.presence = presence_new(cfg, true)) != NULL;
    if (ok)
        ok = (g->peers.board = metrics_board_new(g->count, g->peers.store)) != NULL;
    /* One set of passcode hashing workers for every loop (started on the first login). */
    if (ok && cfg->auth_workers > 0)
        ok = (g->peers.auth_pool = workpool_new(cfg->auth_workers, AUTH_WORKERS_NICE)) != NULL;
    if (!ok) {
        loops_free(g);
        return NULL;
    }
    return g;
}

static size_t per_loop(size_t limit, size_t loops)
{
    return (limit + loops - 1) / loops;
}

/*
 * Loop i's configuration: the process's, with the connection limits shared out (rounded up), the
 * ports loop 0 bound, and as a cluster node the id "<node_id>.<i>" (loop 0 keeps node_id; an
 * empty one stays empty: each loop picks its own random id). -1 when the id gets too long.
 */
static int loop_config(const struct config *process, size_t loops, size_t i, struct config *out)
{
    *out = *process;
    out->max_connections = per_loop(process->max_connections, loops);
    out->max_connections_per_address = per_loop(process->max_connections_per_address, loops);
    out->connection_rate = per_loop(process->connection_rate, loops);
    out->connection_burst = per_loop(process->connection_burst, loops);
    if (i == 0 || process->cluster_node_id[0] == '\0')
        return 0;
    char id[sizeof(out->cluster_node_id) + 24];
    int n = snprintf(id, sizeof(id), "%s.%zu", process->cluster_node_id, i);
    if (n < 0 || (size_t)n >= sizeof(out->cluster_node_id)) {
        log_error(0, "cluster.node_id '%s' is too long for the per-loop suffix '.%zu'",
                  process->cluster_node_id, i);
        return -1;
    }
    memcpy(out->cluster_node_id, id, (size_t)n + 1);
    return 0;
}

/* The ports loop 0 got (port 0 asks for any): the other loops bind the same ones. */
static void take_bound_ports(const struct broker *b, struct config *process)
{
    struct config_addr *addrs[LISTENER_COUNT] = {[LISTENER_WS] = &process->ws,
                                                 [LISTENER_WSS] = &process->wss,
                                                 [LISTENER_TCP] = &process->tcp,
                                                 [LISTENER_STOMP_TLS] = &process->stomp_tls,
                                                 [LISTENER_HTTP] = &process->http};
    for (int kind = 0; kind < LISTENER_COUNT; kind++) {
        int port = listener_port(&b->listeners[kind]);
        if (port > 0)
            addrs[kind]->port = (uint16_t)port;
    }
}

/* Creates loop i's broker and registers its inbox on its base; -1 on failure (logged). */
static int start_broker(struct loops *g, size_t i, struct config *process)
{
    struct loop_slot *slot = &g->slots[i];
    struct config cfg;
    if (loop_config(process, g->count, i, &cfg) != 0)
        return -1;
    slot->broker = broker_new_in(&cfg, &g->peers, i);
    if (slot->broker == NULL)
        return -1;
    if (i == 0)
        take_bound_ports(slot->broker, process);
    const struct inbox_ops ops = {.receive = receive, .ctx = slot};
    if (inboxes_attach(g->peers.inboxes, i, slot->broker->base, &ops) != 0) {
        log_error(0, "loop %zu: cannot watch its inbox", i);
        return -1;
    }
    /* Before any thread runs: /metrics answers for every loop from the start. */
    struct metrics_figures f;
    metrics_collect(slot->broker, &f);
    metrics_board_publish(g->peers.board, i, &f);
    return 0;
}

/* Frees a loop's broker on the thread that ran it (its connections' log peers are that thread's).
 */
static void end_broker(struct loop_slot *slot)
{
    inboxes_detach(slot->group->peers.inboxes, slot->index);
    broker_free(slot->broker);
    slot->broker = NULL;
}

static void *loop_thread(void *arg)
{
    struct loop_slot *slot = arg;
    slot->exit_code = broker_run(slot->broker);
    end_broker(slot);
    log_thread_end();
    return NULL;
}

/* Loops 1..N-1 in threads that never take SIGINT, SIGTERM or SIGHUP: loop 0's libevent signal
 * events get them all. Returns how many threads started. */
static size_t start_threads(struct loops *g)
{
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old); /* inherited by the threads created below */
    size_t started = 0;
    for (size_t i = 1; i < g->count; i++) {
        int rc = pthread_create(&g->slots[i].thread, NULL, loop_thread, &g->slots[i]);
        if (rc != 0) {
            log_error(0, "cannot start the thread of loop %zu: %s", i, strerror(rc));
            break;
        }
        g->slots[i].thread_started = true;
        started++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return started;
}

/* Waits for every loop thread; the worst exit code of all loops (0 = all clean). */
static int join_threads(struct loops *g, int code)
{
    for (size_t i = 1; i < g->count; i++) {
        struct loop_slot *slot = &g->slots[i];
        if (slot->thread_started) {
            pthread_join(slot->thread, NULL);
            code = slot->exit_code > code ? slot->exit_code : code;
        } else {
            end_broker(slot); /* never ran: nothing of it touched another thread */
            code = code != 0 ? code : 1;
        }
    }
    return code;
}

/* Runs the loops until they have all ended; 1 when not all of them could start. */
static int run_loops(struct loops *g)
{
    size_t started = start_threads(g);
    log_info(0, "stompws %s ready (%zu event loops)", STOMPWS_VERSION, started + 1);
    if (started + 1 < g->count) {
        for (size_t i = 1; i < g->count; i++)
            inboxes_command(g->peers.inboxes, i, INBOX_SHUTDOWN);
        broker_shutdown(g->slots[0].broker, "broker could not start");
    }
    int code = broker_run(g->slots[0].broker);
    end_broker(&g->slots[0]);
    return join_threads(g, code);
}

int loops_main(const struct config *cfg)
{
    /* jansson seeds its hash on first use, racily: once here, before any loop parses JSON. */
    json_object_seed(0);
    struct loops *g = loops_new(cfg);
    if (g == NULL) {
        log_error(0, "cannot set up %zu event loops: out of memory or file descriptors",
                  cfg->threads);
        return 1;
    }
    struct config process = *cfg;
    int code = 0;
    for (size_t i = 0; i < g->count && code == 0; i++)
        code = start_broker(g, i, &process) != 0 ? 1 : 0;
    if (code == 0) {
        code = run_loops(g);
    } else {
        for (size_t i = 0; i < g->count; i++) /* no thread runs yet: freed right here */
            end_broker(&g->slots[i]);
    }
    loops_free(g);
    return code;
}
