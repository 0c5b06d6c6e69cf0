/*
 * router.h - the destination registry: who is subscribed to what, and where a message goes.
 *
 * Topics (/topic/...): every matching subscription gets a copy; exact names live in a hash table,
 * subscriptions with wildcards (`*` one dot-separated segment, `#` zero or more, as RabbitMQ's
 * topic exchange) in a trie of segments. Queues (/queue/..., and the /reply-queue/... behind
 * temporary queues): see queue.h. The router never touches a connection: it hands each delivery
 * to the ops callbacks the broker registered, so it is unit-tested without sockets.
 */
#ifndef STOMPWS_ROUTER_H
#define STOMPWS_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/base/dict.h"
#include "broker/base/message.h"

#define TOPIC_PREFIX       "/topic/"
#define QUEUE_PREFIX       "/queue/"
#define TEMP_QUEUE_PREFIX  "/temp-queue/"
#define REPLY_QUEUE_PREFIX "/reply-queue/"

enum ack_mode { ACK_AUTO, ACK_CLIENT, ACK_CLIENT_INDIVIDUAL };

/* What a subscription is attached to (struct subscription.target_kind). */
enum sub_target { SUB_TARGET_NONE, SUB_TARGET_TOPIC, SUB_TARGET_WILDCARD, SUB_TARGET_QUEUE };

struct queue;
struct broker;
struct session;

/* What happens to a clustered queue (struct queue.clustered), for router_ops.queue_event. */
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

enum dest_kind { DEST_UNKNOWN, DEST_TOPIC, DEST_QUEUE, DEST_TEMP_QUEUE, DEST_REPLY_QUEUE };

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
    uint64_t serial; /* broker-wide, never reused: identifies a consumer without a pointer */
    char *lines;     /* owned: "subscription:ID\ndestination:DEST\n", escaped once for the
                        session's version: every MESSAGE copies them (queue consumers both,
                        topic subscribers the first, the message carries the destination) */
    size_t lines_len, id_line_len;

    /* Set by the router while subscribed. */
    void *target;                     /* borrowed: struct topic, struct trie_node or struct queue */
    enum sub_target target_kind;      /* which of the three */
    struct subscription *prev, *next; /* links in the target's list (not owned) */
    uint64_t last_publish;            /* publish generation: one copy per message per sub */

    /* Queue consumers with client acks. */
    struct unacked *unacked_head, *unacked_tail; /* owned entries */
    size_t unacked_count;
    size_t *session_unacked; /* borrowed, may be NULL: the owner's total over its subscriptions */
};

struct router_ops {
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
    /* Publishers of the loop paused on queue `queue` may go on (it drained, or is going away). */
    void (*queue_unblocked)(struct broker *b, const char *queue);
};

struct router_stats {
    uint64_t published;  /* router_publish calls that succeeded */
    uint64_t delivered;  /* MESSAGE frames written */
    uint64_t dropped;    /* deliveries the connection refused (slow consumer) */
    uint64_t unroutable; /* messages no subscription or queue took */
};

struct trie_node;

struct router {
    struct router_ops ops;
    struct dict topics;          /* owned: exact destination -> struct topic */
    struct trie_node *wildcards; /* owned: root of the wildcard trie, NULL when empty */
    struct dict queues;          /* owned: name -> struct queue */
    uint64_t publish_gen;
    size_t queue_max_messages; /* limit per queue (queue.max_messages) */
    bool queue_block;          /* queue.overflow = block: past the limit publishers pause */
    bool cluster_queues;       /* /queue/ names are backed by the cluster (set after init) */
    bool release_declined;     /* clustered queues report QUEUE_EV_DECLINED (threads > 1) */
    size_t cluster_window;     /* queue_capacity() per auto-ack or unlimited consumer */
    struct router_stats stats;
};

void router_init(struct router *r, const struct router_ops *ops, size_t queue_max_messages);
/* Frees every topic, trie node and queue (with their waiting messages). Subscriptions are the
 * sessions' and must have been unsubscribed already. */
void router_reset(struct router *r);

enum dest_kind router_dest_kind(const char *dest, size_t len);
/* True when a /topic/ name has a `*` or `#` segment. */
bool router_is_wildcard(const char *dest, size_t len);

/* Subscribes sub to `name` (a /topic/ pattern or a resolved queue name). */
int router_subscribe(struct router *r, struct subscription *sub, const char *name, size_t len);
/* Removes sub; its unacked queue messages go back to the queue, marked redelivered. */
void router_unsubscribe(struct router *r, struct subscription *sub);

/*
 * Routes msg to `name` (a /topic/ name or a resolved queue name). create_queue false: a queue that
 * does not exist is an error (ROUTER_ERR_NO_QUEUE) instead of being created. The router takes its
 * own references; the caller keeps its own.
 */
int router_publish(struct router *r, struct message *msg, const char *name, size_t len,
                   bool create_queue);

/*
 * Deliveries of a message that arrived from another node: to the exact subscribers of
 * msg->destination only, or to the subscribers of one normalized wildcard pattern (those whose
 * pattern really matches msg->destination). Splitting them this way means a node subscribed both
 * ways in Redis never delivers a message twice. Returns the number of deliveries attempted.
 */
size_t router_publish_exact(struct router *r, struct message *msg);

/*
 * Deliveries of a topic message to every local subscription of `name` (exact and wildcard, one
 * copy each), without counting it as published or unroutable: the caller counts, as it knows
 * whether other event loops of the process were handed the message too. Returns the number of
 * deliveries attempted.
 */
size_t router_publish_topic(struct router *r, struct message *msg, const char *name, size_t len);
size_t router_publish_pattern(struct router *r, struct message *msg, const char *pattern,
                              size_t pattern_len);

/* Queues whose consumers became writable again (their connection drained). */
void router_resume(struct router *r, struct subscription *sub);

#endif
