/*
 * queue.h - queue semantics: each message to exactly one consumer.
 *
 * Round-robin among the consumers whose connection can take more (delivery_ops.writable) and whose
 * prefetch window has room; messages wait, up to queue.max_messages, while nobody can take them.
 * Client acks: `client` is cumulative, `client-individual` acks one message. A NACK, an
 * unsubscribe or a disconnect puts unacked messages back at the head, marked redelivered, and the
 * next dispatch prefers a consumer other than the one that gave them back.
 *
 * A clustered queue (queues.clustered, /queue/ names only) holds just the messages this
 * node took from the queue's Redis stream; the cluster layer learns what happens to them through
 * delivery_ops.queue_event, and takes back the waiting ones when the last local consumer leaves.
 */
#ifndef STOMPWS_QUEUE_H
#define STOMPWS_QUEUE_H

#include "broker/base/dict.h"
#include "broker/core/destination.h"
#include "broker/core/subscription.h"

/* A message waiting in a queue. */
struct queued {
    struct queued *next; /* owned by the queue's list */
    struct message *msg; /* holds a reference */
    bool redelivered;
    uint64_t avoid_serial; /* consumer that gave it back (0: none) */
};

struct queue {
    struct queued *head, *tail; /* owned: waiting messages, oldest first */
    size_t depth;
    struct subscription *consumers; /* not owned: list of consumer subscriptions */
    struct subscription *cursor;    /* next consumer to try (round-robin) */
    size_t consumer_count;
    size_t paused_publishers; /* sessions paused until the queue drains (queue.overflow) */
    bool temporary;           /* backs a temp queue: lives until queue_delete(), even when idle */
    bool clustered; /* backed by a Redis stream: messages come from and settle in the cluster */
    size_t name_len;
    char name[]; /* NUL-terminated */
};

/*
 * Every queue of one loop and the settings they share. The router holds one (router.queues) and
 * points ops and stats at its own: a queue never sees the router.
 */
struct queues {
    struct dict by_name;            /* owned: name -> struct queue */
    const struct delivery_ops *ops; /* borrowed: deliver, writable, queue_event */
    struct delivery_stats *stats;   /* borrowed: deliveries are counted with the topics' */
    size_t max_messages;            /* limit per queue (queue.max_messages) */
    bool block;                     /* queue.overflow = block: past the limit publishers pause */
    bool clustered;                 /* /queue/ names are backed by a store beyond this loop */
    bool release_declined;          /* clustered queues report QUEUE_EV_DECLINED (threads > 1) */
    size_t cluster_window;          /* queue_capacity() per auto-ack or unlimited consumer */
};

/* The queue called name; created when absent and create is true. NULL if absent/no memory. */
struct queue *queue_lookup(struct queues *qs, const char *name, size_t len, bool create);

/*
 * Appends msg (taking a reference) and dispatches. Past queue.max_messages: ROUTER_ERR_QUEUE_FULL,
 * or, with queues.block, the message is taken and queue_full() tells the publisher to pause.
 */
int queue_push(struct queues *qs, struct queue *q, struct message *msg, bool redelivered);

/* At or past queue.max_messages. */
bool queue_full(const struct queues *qs, const struct queue *q);

/*
 * Messages the local consumers of q could take now beyond those already waiting: each ready
 * consumer's free prefetch window (queues.cluster_window for auto-ack or unlimited ones). What a
 * node asks the cluster for, so it never hoards messages other nodes' consumers could take.
 */
size_t queue_capacity(const struct queues *qs, const struct queue *q);

void queue_add_consumer(struct queues *qs, struct queue *q, struct subscription *sub);
/* Detaches sub and gives its unacked messages back (redelivered). May free an idle queue. */
void queue_remove_consumer(struct queues *qs, struct queue *q, struct subscription *sub);

/* Hands waiting messages to consumers that can take them. */
void queue_dispatch(struct queues *qs, struct queue *q);

/*
 * Acknowledges (or, with nack, gives back) the message `message_id` delivered to sub; cumulative
 * for ACK_CLIENT. Returns 0, or -1 when sub holds no such unacked message.
 */
int queue_ack(struct queues *qs, struct subscription *sub, const char *message_id, size_t len,
              bool nack);

/* Deletes a queue and its waiting messages (temporary queues when their owner leaves). The
 * queue must have no consumers left. */
void queue_delete(struct queues *qs, struct queue *q);

#endif
