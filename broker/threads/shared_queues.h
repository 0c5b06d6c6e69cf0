/*
 * shared_queues.h - /queue/ destinations shared by the event loops of one process
 * (server.threads > 1 without cluster.redis).
 *
 * What it is for: a /queue/ name is one queue for the whole process, each message to exactly one
 * consumer whichever loop it is on. It has the shape cluster/streams.h has for nodes, so the
 * routers run with queues.clustered = true and a loop's local queue holds only what it took:
 *
 *   SEND     -> shared_queues_append(): a copy is stored (the RECEIPT may go at once)
 *   consume  -> shared_queues_take(): a loop whose consumers have room takes up to that many
 *   ACK      -> shared_queues_settle(): removed for good (auto-ack: when written)
 *   release  -> shared_queues_release(): back to the head, redelivered, for any loop to take
 *
 * Loops that follow a queue (have consumers) are kicked through their inboxes when entries are
 * appended or released. queue.max_messages counts the entries no loop has taken yet: past it a
 * SEND is refused (queue.overflow = reject) or taken with its publisher's loop told to pause it
 * (block) until the queue is below 90% of the limit again.
 *
 * Every function takes the store's mutex: queue operations cross loops here, topic deliveries
 * never do. It stores its own copies and hands out copies (message_clone): a message never
 * crosses loops. What it must not do: call into a loop other than through inboxes_kick() and
 * inboxes_unblock() (which only push onto inboxes), or hold the mutex while a loop delivers.
 */
#ifndef STOMPWS_SHARED_QUEUES_H
#define STOMPWS_SHARED_QUEUES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/base/message.h"

struct inboxes;
struct shared_queues;

/* A store for the loops that own `inboxes`; max_messages and block from queue.max_messages and
 * queue.overflow. */
struct shared_queues *shared_queues_new(struct inboxes *inboxes, size_t max_messages, bool block);
/* Frees every queue and entry; for after every loop has ended. */
void shared_queues_free(struct shared_queues *sq);

/*
 * Stores a copy of msg at the tail of its queue (msg->destination) and kicks the loops that
 * follow it. Returns 0, ROUTER_ERR_QUEUE_FULL (reject: not stored) or ROUTER_ERR_NOMEM. With
 * block, *full is set when the queue is now at or past its limit: loop `from` will be told
 * through inboxes_unblock() when it drains.
 */
int shared_queues_append(struct shared_queues *sq, size_t from, const struct message *msg,
                         bool *full);

/* Loop `loop` has consumers of queue `name` (follow) or has none left (!follow). */
void shared_queues_follow(struct shared_queues *sq, size_t loop, const char *name, size_t len,
                          bool follow);

/*
 * Takes up to max entries of queue `name` for loop `loop`: out[i] is a copy the caller owns (its
 * stream_id names the entry for settle/release), redelivered[i] whether it was handed out before.
 * An entry a loop released because its only consumer there gave it back is left for another
 * loop that follows the queue, if there is one. Returns how many were taken.
 */
size_t shared_queues_take(struct shared_queues *sq, size_t loop, const char *name, size_t len,
                          size_t max, struct message **out, bool *redelivered);

/* msg (taken) was acked or written to an auto-ack consumer: removed for good. */
void shared_queues_settle(struct shared_queues *sq, const struct message *msg);
/* msg (taken by `loop`) will not be consumed there: back to the head of its queue, redelivered,
 * and the followers are kicked. avoid: prefer another loop (its only consumer NACKed it). */
void shared_queues_release(struct shared_queues *sq, size_t loop, const struct message *msg,
                           bool avoid);

struct shared_queues_stats {
    uint64_t queues;    /* queues in the store */
    uint64_t waiting;   /* entries no loop has taken */
    uint64_t in_flight; /* entries taken, not yet settled */
};
void shared_queues_stats(struct shared_queues *sq, struct shared_queues_stats *out);

#endif
