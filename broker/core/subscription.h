/*
 * subscription.h - what the router and the queues share: a subscription and its unacked
 * messages, the callbacks through which they reach the session layer (struct delivery_ops,
 * filled in by the wiring), their counters and their error codes.
 *
 * What it must not do: name a session or a connection function. Everything above the core is
 * reached through delivery_ops.
 */
#ifndef STOMPWS_SUBSCRIPTION_H
#define STOMPWS_SUBSCRIPTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/base/message.h"

struct queue;
struct broker;
struct dict;
struct session;
struct presence_waiter;

enum ack_mode { ACK_AUTO, ACK_CLIENT, ACK_CLIENT_INDIVIDUAL };

/* What a subscription is attached to (struct subscription.target_kind). */
enum sub_target { SUB_TARGET_NONE, SUB_TARGET_TOPIC, SUB_TARGET_WILDCARD, SUB_TARGET_QUEUE };

/* What happens to a clustered queue (struct queue.clustered), for delivery_ops.queue_event. */
enum queue_event {
    QUEUE_EV_FOLLOW,   /* the first local consumer arrived: start taking messages */
    QUEUE_EV_UNFOLLOW, /* the last local consumer left (its waiting messages were released) */
    QUEUE_EV_SETTLED,  /* msg is done for good: acked, or written to an auto-ack consumer */
    QUEUE_EV_RELEASED, /* msg was waiting when the last consumer left: hand it back */
    QUEUE_EV_ROOM,     /* consumers may take more (an ack, a new consumer, a drained socket) */
    QUEUE_EV_UNBLOCK,  /* publishers paused on q may go on: it drained (or is going away) */
    QUEUE_EV_DECLINED, /* router.release_declined: msg was given back (NACK, unsubscribe) and the
                          consumer that gave it back is the only one here: hand it back so that
                          another loop's consumer can take it */
};

enum router_error {
    ROUTER_ERR_NOMEM = -1,
    ROUTER_ERR_QUEUE_FULL = -2,   /* limit: queue.max_messages */
    ROUTER_ERR_NO_QUEUE = -3,     /* a /reply-queue/ whose owner is gone */
    ROUTER_ERR_BAD_DEST = -4,     /* empty name, or a wildcard where none is allowed */
    ROUTER_ERR_CLUSTER_FULL = -5, /* limit: cluster.queue_buffer_bytes (Redis not confirming) */
};

/* A queue message delivered to a consumer and not yet acknowledged. */
struct unacked {
    struct unacked *prev, *next; /* owned by the subscription's list, in delivery order */
    struct message *msg;         /* holds a reference */
};

struct subscription {
    struct session *session; /* borrowed: the owner, passed back to the ops */
    char *id;                /* owned: the client's subscription id */
    char *destination;       /* owned: as the client wrote it (shown in MESSAGE frames) */
    size_t destination_len;
    enum ack_mode ack;
    size_t prefetch; /* queue consumers: max unacked messages, 0 = no limit */
    bool id_utf8;
    /* A /user/ subscription: routed by /user/LOGIN/..., shown as the client wrote it, so every
     * MESSAGE takes its destination line from lines, as a queue consumer's does. */
    bool own_destination;
    uint64_t serial; /* broker-wide, never reused: identifies a consumer without a pointer */
    char *lines;     /* owned: "subscription:ID\ndestination:DEST\n", escaped once for the
                        session's version: every MESSAGE copies them (queue consumers and
                        /user/ subscribers both, topic subscribers the first, the message
                        carries the destination) */
    size_t lines_len, id_line_len;

    /* Set by the router while subscribed. */
    void *target;                     /* borrowed: struct topic, struct trie_node or struct queue */
    enum sub_target target_kind;      /* which of the three */
    struct subscription *prev, *next; /* links in the target's list (not owned) */
    uint64_t last_publish;            /* publish generation: one copy per message per sub */
    /* Owned, NULL unless it replayed history: destination -> newest offset replayed; a live copy
     * at or below it was in the replay and is skipped (history_marks_pass()). */
    struct dict *stream_marks;
    /* A backend's replay (fanout_ops.replay) is on its way: live messages wait in held (owned
     * references, in arrival order) until publish_replay_done() delivers them after it. */
    bool replay_pending;
    struct message **held;
    size_t held_count, held_cap;

    /* Queue consumers with client acks. */
    struct unacked *unacked_head, *unacked_tail; /* owned entries */
    size_t unacked_count;
    size_t *session_unacked; /* borrowed, may be NULL: the owner's total over its subscriptions */

    /* presence (presence.h): owned, the login this subscription counts for on its tracked
     * destination; NULL when it counts for nobody (presence off, untracked, anonymous) */
    char *presence_user;
    /* owned: the wait for a snapshot a backend reads (presence_follow()); NULL otherwise */
    struct presence_waiter *presence_snapshot;
};

struct delivery_ops {
    /* Writes msg to sub's connection. Returns 0, or -1 when it was not written (dropped). */
    int (*deliver)(struct subscription *sub, struct message *msg, bool redelivered);
    /* Queue flow control: may this consumer's connection take one more message now? */
    bool (*writable)(const struct subscription *sub);
    /*
     * Optional (NULL when single node): local interest in an exact topic name, or in a wildcard
     * pattern (normalized: "#.#" folded to "#"), appeared or vanished. Called on transitions
     * only: first subscriber in, last one out. The cluster bridge follows it in Redis.
     */
    void (*interest)(void *ctx, const char *name, size_t len, bool pattern, bool added);
    /* Optional (NULL when single node): events of clustered queues; msg for SETTLED and
     * RELEASED only (borrowed for the call). */
    void (*queue_event)(void *ctx, struct queue *q, enum queue_event ev, struct message *msg);
    void *ctx;
    /* A message the publishing session waited for was stored (error NULL) or refused. */
    void (*publish_done)(struct session *waiter, const char *error);
    /* Optional: the RECEIPT of a SUBSCRIBE whose replay a backend answered later. */
    void (*replay_receipt)(struct subscription *sub, const char *receipt, size_t len,
                           bool recovered);
    /* Publishers of the loop paused on queue `queue` may go on (it drained, or is going away). */
    void (*queue_unblocked)(struct broker *b, const char *queue);
};

struct delivery_stats {
    uint64_t published;  /* router_publish calls that succeeded */
    uint64_t delivered;  /* MESSAGE frames written */
    uint64_t dropped;    /* deliveries the connection refused (slow consumer) */
    uint64_t unroutable; /* messages no subscription or queue took */
    uint64_t unacked;    /* gauge: queue messages delivered to client-ack consumers, not acked */
};

#endif
