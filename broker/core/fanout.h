/*
 * fanout.h - where a message goes beyond this event loop: the seam every backend fills in.
 *
 * The core (publish.h) routes a message to this loop's subscribers and queues; when the loop is
 * one of several (server.threads > 1) or one node of a cluster (cluster.redis), a backend carries
 * topics, queues and interest to the others. There are three: none (broker.fanout.ops == NULL:
 * one loop, one node), broker/threads/fanout_threads.c (the loops of one process) and
 * cluster/fanout_redis.c (nodes through Redis). Only the wiring (server/) knows which one runs;
 * a backend hands messages back down through router.h, queue.h and publish.h.
 *
 * What it must not do: name a backend. Nothing below the backends includes their headers.
 */
#ifndef STOMPWS_FANOUT_H
#define STOMPWS_FANOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/core/subscription.h"

struct session;
struct history_policy;
struct history_request;
struct offset_waiter;
struct presence_waiter;

/* How /metrics adds a backend figure up over the loops, and how it prints it. */
enum fanout_figure_kind {
    FANOUT_COUNTER, /* a counter: summed */
    FANOUT_GAUGE,   /* a gauge: summed */
    FANOUT_LINK_UP, /* 1 when every loop's link is up, else 0 */
    FANOUT_LATENCY, /* microseconds, shown in seconds: the worst loop's */
    FANOUT_DROPPED, /* messages lost: stompws_messages_dropped_total{reason="<name>"} */
};

/* One figure a backend exports: its metric name (the reason label for FANOUT_DROPPED). */
struct fanout_figure {
    const char *name;
    const char *help;
    enum fanout_figure_kind kind;
};

#define FANOUT_FIGURES_MAX 48
#define FANOUT_DETAIL_MAX  4096

/* A backend's figures, in the order of its descriptor table (fanout_ops.figure_names). */
struct fanout_figures {
    uint64_t v[FANOUT_FIGURES_MAX];
    /* Optional: series with labels, one per line in Prometheus' text form ("name{labels} v"),
     * unique per loop (they carry a loop label): a Redis Cluster's link to each shard. /metrics
     * shows them after fanout_ops.detail_help, /readyz after its first line. NUL-terminated; lines
     * that do not fit are left out. */
    char detail[FANOUT_DETAIL_MAX];
};

struct fanout_ops {
    /* Local interest in a topic name or pattern appeared (added) or vanished: first subscriber
     * in, last one out (delivery_ops.interest). */
    void (*interest)(void *ctx, const char *name, size_t len, bool pattern, bool added);
    /* A topic message published here: this loop's subscribers and everyone else's. Returns the
     * router's result (0 or an enum router_error). */
    int (*publish_topic)(void *ctx, struct message *msg, const char *route, size_t len);
    /*
     * Optional: a topic message with a retention policy, whose offset was just assigned. It is
     * called while the history store holds its lock (history_append()), so it must only hand
     * copies on, to every loop that has topic subscribers, this one included: each loop then
     * receives a destination's messages in offset order. NULL: publish_topic is used after the
     * append.
     */
    void (*publish_ordered)(void *ctx, struct message *msg);
    /*
     * Optional: a backend that keeps history itself (a cluster: Redis) publishes a topic message
     * whose destination has policy p. It assigns the offset and epoch with the append and
     * delivers the message to this loop's subscribers once they are known, through its own
     * delivery path (or at once, without them, when it cannot keep it). w (NULL: nobody asks)
     * wants the offset: PUBLISH_PENDING promises one call of w->assigned. Returns 0,
     * PUBLISH_PENDING or an enum router_error. NULL: the process's store (history_append()).
     */
    int (*retain)(void *ctx, struct message *msg, const struct history_policy *p,
                  struct offset_waiter *w);
    /*
     * Optional, with retain: replays what req asks of name (an exact /topic/ name, or a pattern
     * when wildcard) to sub, which is in the router already and whose replay_pending is set.
     * Answered later, never from inside this call, through publish_replay_done(); receipt
     * (borrowed, NULL when none) is to be handed back there. Returns 0 or -1 when out of memory.
     */
    int (*replay)(void *ctx, struct subscription *sub, const char *name, size_t len, bool wildcard,
                  const struct history_request *req, const char *receipt, size_t receipt_len);
    /* sub, whose replay is pending, is going away: its answer must not reach it. */
    void (*forget_replay)(void *ctx, struct subscription *sub);
    /* A /queue/ message: stored where every loop or node takes from. waiter (NULL for the API)
     * is the publishing session. Returns 0, PUBLISH_PENDING (waiter hears through
     * delivery_ops.publish_done), PUBLISH_FULL, or an enum router_error. */
    int (*publish_queue)(void *ctx, struct message *msg, struct session *waiter);
    /* What happens to the backend's queues here (delivery_ops.queue_event; never QUEUE_EV_UNBLOCK,
     * which the core hands to the sessions itself). */
    void (*queue_event)(void *ctx, struct queue *q, enum queue_event ev, struct message *msg);
    /* waiter is going away: nothing may be told to it any more. Optional. */
    void (*forget_waiter)(void *ctx, struct session *waiter);
    /* NULL when ready; otherwise static text saying why not (/readyz). Optional. */
    const char *(*ready)(void *ctx);
    /* At shutdown, once the clients are gone: may the loop end (nothing left to confirm)? */
    bool (*flushed)(void *ctx);
    /* Fills out in the order of figure_names. Optional when figure_count is 0. */
    void (*figures)(void *ctx, struct fanout_figures *out);
    /* Frees the backend; after every session of the loop is gone. */
    void (*free)(void *ctx);
    const struct fanout_figure *figure_names; /* static: figure_count of them */
    size_t figure_count;
    const char *detail_help; /* static "# HELP/# TYPE" lines of fanout_figures.detail's series */

    /* ---- admin API (issue #15): optional, for a backend that reaches other nodes ---- */
    /*
     * Sends an admin request (JSON text, http/admin.h) to every other node. Returns 0 once it is
     * on its way: the backend then says through the wiring how many nodes heard request id
     * (admin_expect) and hands their answers in (admin_take_answer). -1 when it cannot go out.
     */
    int (*admin_request)(void *ctx, uint64_t id, const char *json, size_t len);
    /* This node's id in the cluster: the node part of connection ids. NULL: none. */
    const char *(*node_id)(void *ctx);

    /* ---- presence (core/presence.h), all optional: a backend that keeps presence for the whole
     * cluster (Redis). NULL: the process's table is the whole truth. */
    /* The process's first subscription of user to dest (joined) or its last one went: the
     * backend makes it the cluster's and publishes the cluster's event, which comes back to
     * every node through the backend's delivery. Called under the presence lock: only send. */
    void (*presence_edge)(void *ctx, const char *dest, size_t len, const char *user, bool joined);
    /* The users of dest, up to max: w->answered() is called once, later (with NULL when the
     * backend could not answer). follow: the snapshot of a subscription to /presence + dest
     * that is in the router already, read only once its interest is confirmed (no event may
     * fall between). Returns 0, or -1 when it cannot ask now (w is not called). */
    int (*presence_query)(void *ctx, const char *dest, size_t len, size_t max, bool follow,
                          struct presence_waiter *w);
    /* w goes away before its answer: it must not be called. */
    void (*presence_forget)(void *ctx, struct presence_waiter *w);
};

/* A loop's backend: ops NULL for none. */
struct fanout {
    const struct fanout_ops *ops; /* static */
    void *ctx;                    /* owned: freed by ops->free */
};

#endif
