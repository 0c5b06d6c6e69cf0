#include "server/threads.h"
#include "broker/core/broker.h"
#include "broker/http/routes.h"
#include "broker/base/log.h"
#include "broker/session/session.h"
#include "broker/threads/shared_queues.h"

#include <errno.h>
#include <event2/event.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/*
 * Topic copies one inbox may hold before more are dropped (counted in
 * stompws_messages_dropped_total{reason="loop_inbox"}): a loop that cannot keep up with the
 * others' publishers must not grow the process without bound. Its own slow clients drop at their
 * outbound high-water mark long before a healthy loop gets here.
 */
#define LOOPS_INBOX_MAX_TOPICS 65536

enum loop_item_kind {
    ITEM_TOPIC,    /* msg: a topic message published on another loop */
    ITEM_REPLY,    /* msg: for one of this loop's /reply-queue/ names */
    ITEM_KICK,     /* take from the queue store */
    ITEM_UNBLOCK,  /* name: publishers paused on this queue may go on */
    ITEM_SHUTDOWN, /* loop 0 got SIGTERM or SIGINT */
    ITEM_RELOAD,   /* loop 0 got SIGHUP */
};

struct loop_item {
    struct loop_item *next; /* owned by the inbox while queued, then by the consuming loop */
    enum loop_item_kind kind;
    struct message *msg; /* owned: a copy made for the receiving loop (TOPIC, REPLY) */
    char name[];         /* UNBLOCK: the queue's name, NUL-terminated */
};

/*
 * A lock-free multi-producer single-consumer list: producers push onto a stack with a CAS, the
 * loop takes the whole stack with one exchange and reverses it, which restores push order (so
 * one publisher's messages keep their order). A producer writes the eventfd only when it pushed
 * onto an empty stack: one wake-up per batch, not per item.
 */
struct loop_inbox {
    _Atomic(struct loop_item *) head; /* owned: pushed items, newest first */
    atomic_size_t topics;             /* ITEM_TOPIC items queued (LOOPS_INBOX_MAX_TOPICS) */
    atomic_bool kick_pending;         /* an ITEM_KICK is queued: one is enough */
    int efd;                          /* owned: eventfd, -1 before it is made */
    struct event *ev;                 /* owned: reads efd on the loop's base */
};

struct loop_slot {
    struct loops *group; /* borrowed: the group this slot belongs to */
    size_t index;
    struct broker *broker; /* owned: made by the main thread, run and freed by the loop's own */
    pthread_t thread;      /* loops 1..: valid while thread_started */
    bool thread_started;
    int exit_code; /* the loop's thread writes it before it ends */
    struct loop_inbox inbox;
    atomic_long topic_interest;  /* topic names and patterns the loop's clients follow */
    struct http_figures figures; /* guarded by loops.figures_lock */
};

struct loops {
    size_t count;
    struct loop_slot *slots;      /* owned: count of them */
    pthread_mutex_t figures_lock; /* guards every slot's figures */
    struct shared_queues *queues; /* owned: NULL when the loops are cluster nodes */
};

/* ---- inboxes -------------------------------------------------------------------------------- */

static struct loop_item *item_new(enum loop_item_kind kind, const char *name, size_t len)
{
    struct loop_item *item = calloc(1, sizeof(*item) + len + 1);
    if (item == NULL)
        return NULL;
    item->kind = kind;
    memcpy(item->name, name, len);
    return item;
}

static void item_free(struct loop_item *item)
{
    message_unref(item->msg);
    free(item);
}

static void inbox_push(struct loop_inbox *in, struct loop_item *item)
{
    struct loop_item *old = atomic_load_explicit(&in->head, memory_order_relaxed);
    do
        item->next = old;
    while (!atomic_compare_exchange_weak_explicit(&in->head, &old, item, memory_order_release,
                                                  memory_order_relaxed));
    if (old != NULL)
        return; /* the consumer has a wake-up coming for the items below this one */
    uint64_t one = 1;
    if (write(in->efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
        log_error(0, "loop inbox: eventfd write failed: %s", strerror(errno));
}

/* Everything pushed so far, oldest first. */
static struct loop_item *inbox_take(struct loop_inbox *in)
{
    struct loop_item *stack = atomic_exchange_explicit(&in->head, NULL, memory_order_acquire);
    struct loop_item *ordered = NULL;
    while (stack != NULL) {
        struct loop_item *next = stack->next;
        stack->next = ordered;
        ordered = stack;
        stack = next;
    }
    return ordered;
}

static void handle_item(struct loop_slot *slot, struct loop_item *item)
{
    struct broker *b = slot->broker;
    switch (item->kind) {
    case ITEM_TOPIC:
        atomic_fetch_sub_explicit(&slot->inbox.topics, 1, memory_order_relaxed);
        broker_deliver_forwarded(b, item->msg);
        break;
    case ITEM_REPLY:
        broker_deliver_reply(b, item->msg);
        break;
    case ITEM_KICK:
        /* Cleared first: a kick pushed while taking must bring another pass. */
        atomic_store_explicit(&slot->inbox.kick_pending, false, memory_order_relaxed);
        broker_take_queues(b);
        break;
    case ITEM_UNBLOCK:
        session_queue_unblocked(b, item->name);
        break;
    case ITEM_SHUTDOWN:
        broker_shutdown(b, "broker shutting down");
        break;
    case ITEM_RELOAD:
        broker_reload(b);
        break;
    }
}

static void inbox_cb(evutil_socket_t fd, short what, void *arg)
{
    struct loop_slot *slot = arg;
    (void)what;
    uint64_t count;
    /* Read before taking: a push after the take writes again and wakes us once more. */
    if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        log_error(0, "loop %zu inbox: eventfd read failed: %s", slot->index, strerror(errno));
    struct loop_item *item = inbox_take(&slot->inbox);
    while (item != NULL) {
        struct loop_item *next = item->next;
        handle_item(slot, item);
        item_free(item);
        item = next;
    }
}

static void push_command(struct loops *g, size_t loop, enum loop_item_kind kind)
{
    struct loop_item *item = item_new(kind, "", 0);
    if (item == NULL) {
        log_error(0, "out of memory: loop %zu not told (item %d)", loop, (int)kind);
        return;
    }
    inbox_push(&g->slots[loop].inbox, item);
}

/* ---- what crosses loops --------------------------------------------------------------------- */

size_t loops_count(const struct loops *g)
{
    return g->count;
}

struct shared_queues *loops_queues(struct loops *g)
{
    return g->queues;
}

void loops_topic_interest(struct loops *g, size_t loop, int delta)
{
    atomic_fetch_add_explicit(&g->slots[loop].topic_interest, delta, memory_order_relaxed);
}

/* One copy to one loop; false when it was dropped (inbox full or out of memory). */
static bool forward_copy(struct loop_slot *slot, const struct message *msg)
{
    struct loop_inbox *in = &slot->inbox;
    if (atomic_load_explicit(&in->topics, memory_order_relaxed) >= LOOPS_INBOX_MAX_TOPICS)
        return false;
    struct loop_item *item = item_new(ITEM_TOPIC, "", 0);
    if (item == NULL || (item->msg = message_clone(msg)) == NULL) {
        free(item);
        return false;
    }
    atomic_fetch_add_explicit(&in->topics, 1, memory_order_relaxed);
    inbox_push(in, item);
    return true;
}

bool loops_forward_topic(struct loops *g, size_t from, const struct message *msg)
{
    bool sent = false;
    for (size_t i = 0; i < g->count; i++) {
        struct loop_slot *slot = &g->slots[i];
        /* Relaxed: a subscription made while this message is on its way may miss it, as one made
         * a moment later would. */
        if (i == from || atomic_load_explicit(&slot->topic_interest, memory_order_relaxed) <= 0)
            continue;
        sent = true;
        if (!forward_copy(slot, msg))
            g->slots[from].broker->stats.loop_inbox_drops++; /* from is the calling loop */
    }
    return sent;
}

int loops_forward_reply(struct loops *g, size_t to, const struct message *msg)
{
    struct loop_item *item = item_new(ITEM_REPLY, "", 0);
    if (item == NULL || (item->msg = message_clone(msg)) == NULL) {
        free(item);
        return -1;
    }
    inbox_push(&g->slots[to].inbox, item);
    return 0;
}

void loops_kick(struct loops *g, size_t loop)
{
    struct loop_inbox *in = &g->slots[loop].inbox;
    if (atomic_exchange_explicit(&in->kick_pending, true, memory_order_relaxed))
        return;
    push_command(g, loop, ITEM_KICK);
}

void loops_unblock(struct loops *g, size_t loop, const char *name, size_t len)
{
    struct loop_item *item = item_new(ITEM_UNBLOCK, name, len);
    if (item == NULL) {
        log_error(0, "out of memory: publishers of loop %zu on %.*s stay paused", loop, (int)len,
                  name);
        return;
    }
    inbox_push(&g->slots[loop].inbox, item);
}

void loops_shutdown_others(struct loops *g)
{
    for (size_t i = 1; i < g->count; i++)
        push_command(g, i, ITEM_SHUTDOWN);
}

void loops_reload_others(struct loops *g)
{
    for (size_t i = 1; i < g->count; i++)
        push_command(g, i, ITEM_RELOAD);
}

void loops_publish_figures(struct loops *g, size_t loop, const struct http_figures *f)
{
    pthread_mutex_lock(&g->figures_lock);
    g->slots[loop].figures = *f;
    pthread_mutex_unlock(&g->figures_lock);
}

void loops_collect_figures(struct loops *g, size_t self, const struct http_figures *own,
                           struct http_figures *each)
{
    pthread_mutex_lock(&g->figures_lock);
    for (size_t i = 0; i < g->count; i++)
        each[i] = i == self ? *own : g->slots[i].figures;
    pthread_mutex_unlock(&g->figures_lock);
}

/* ---- the group ------------------------------------------------------------------------------ */

static void loops_free(struct loops *g)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < g->count; i++) {
        struct loop_item *item = inbox_take(&g->slots[i].inbox);
        while (item != NULL) { /* pushed after the loop had ended */
            struct loop_item *next = item->next;
            item_free(item);
            item = next;
        }
        if (g->slots[i].inbox.efd >= 0)
            close(g->slots[i].inbox.efd);
    }
    shared_queues_free(g->queues);
    pthread_mutex_destroy(&g->figures_lock);
    free(g->slots);
    free(g);
}

static struct loops *loops_new(const struct config *cfg)
{
    struct loops *g = calloc(1, sizeof(*g));
    if (g == NULL || pthread_mutex_init(&g->figures_lock, NULL) != 0) {
        free(g);
        return NULL;
    }
    g->count = cfg->threads;
    g->slots = calloc(g->count, sizeof(*g->slots));
    for (size_t i = 0; g->slots != NULL && i < g->count; i++)
        g->slots[i].inbox.efd = -1;
    bool ok = g->slots != NULL;
    for (size_t i = 0; ok && i < g->count; i++) {
        g->slots[i].group = g;
        g->slots[i].index = i;
        g->slots[i].inbox.efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        ok = g->slots[i].inbox.efd >= 0;
    }
    /* With Redis every loop is a cluster node and queues live in Redis Streams. */
    if (ok && cfg->cluster_redis[0] == '\0')
        ok = (g->queues = shared_queues_new(g, cfg->queue_max_messages,
                                            strcmp(cfg->queue_overflow, "block") == 0)) != NULL;
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
    slot->broker = broker_new_in(&cfg, g, i);
    if (slot->broker == NULL)
        return -1;
    if (i == 0)
        take_bound_ports(slot->broker, process);
    slot->inbox.ev =
        event_new(slot->broker->base, slot->inbox.efd, EV_READ | EV_PERSIST, inbox_cb, slot);
    if (slot->inbox.ev == NULL || event_add(slot->inbox.ev, NULL) != 0) {
        log_error(0, "loop %zu: cannot watch its inbox", i);
        return -1;
    }
    /* Before any thread runs: /metrics answers for every loop from the start. */
    http_figures_collect(slot->broker, &slot->figures);
    return 0;
}

/* Frees a loop's broker on the thread that ran it (its connections' log peers are that thread's).
 */
static void end_broker(struct loop_slot *slot)
{
    if (slot->inbox.ev != NULL)
        event_free(slot->inbox.ev);
    slot->inbox.ev = NULL;
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
        loops_shutdown_others(g);
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
