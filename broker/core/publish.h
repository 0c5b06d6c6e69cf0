/*
 * publish.h - the publish policy of one event loop: where a message published here goes.
 *
 * A message goes to this loop's router, and, through the loop's fan-out backend (fanout.h), to
 * the other loops of the process or the other nodes of the cluster: /topic/ messages to every
 * subscriber, /queue/ messages to the store every loop or node takes from. A /reply-queue/ this
 * loop does not own goes to the loop that does (broker.forward_reply). The router's interest
 * and queue events reach the backend from here too.
 *
 * What it must not do: name a backend or a session function: it calls up only through
 * broker.fanout, broker.forward_reply and router.ops.
 */
#ifndef STOMPWS_PUBLISH_H
#define STOMPWS_PUBLISH_H

#include <stdbool.h>
#include <stddef.h>

#include "broker/core/broker.h"

struct history_request;

/*
 * Who wants to hear a retained message's offset when a backend assigns it later (a cluster:
 * Redis numbers it). assigned() is called once per message handed to publish_for_offset() that
 * answered PUBLISH_PENDING, always, even when the message could not be kept (its stream_offset
 * is then 0) or the loop is going away; the waiter must live until then.
 */
struct offset_waiter {
    void (*assigned)(struct offset_waiter *w, struct message *msg);
};

/* publish_waiting(): the message went to a store that confirms later; delivery_ops.publish_done
 * tells the waiter once it has (or has refused it). */
#define PUBLISH_PENDING 1
/* Taken by a queue store that is now full (queue.overflow = block): the publisher pauses until
 * delivery_ops.queue_unblocked says the queue drained. */
#define PUBLISH_FULL 2

/*
 * Routes a message published by a local client. Returns the router's result: 0 or an enum
 * router_error (ROUTER_ERR_CLUSTER_FULL when the cluster buffer is full).
 */
int publish(struct broker *b, struct message *msg, const char *route, size_t len,
            bool create_queue);

/* The same for a publisher that waits for its message to be safely stored: may also return
 * PUBLISH_PENDING or PUBLISH_FULL. */
int publish_waiting(struct broker *b, struct message *msg, const char *route, size_t len,
                    bool create_queue, struct session *waiter);

/* publish() for a publisher that reports the offset (the HTTP API): PUBLISH_PENDING when w
 * hears it later through w->assigned; otherwise msg->stream_offset holds it already (0 when the
 * destination keeps no history). */
int publish_for_offset(struct broker *b, struct message *msg, const char *route, size_t len,
                       bool create_queue, struct offset_waiter *w);

/* waiter is going away: the backend must not tell it anything any more. */
void publish_forget_waiter(struct broker *b, struct session *waiter);

/* Publishers paused on queue `name` may go on (delivery_ops.queue_unblocked). */
void publish_queue_unblocked(struct broker *b, const char *name);

/*
 * A backend's replay of sub (fanout_ops.replay) is answered: the RECEIPT (receipt NULL: none)
 * with x-stream-recovered, then msgs (borrowed, per destination oldest first), then the live
 * messages held meanwhile that are newer than the replayed ones of their destination.
 */
void publish_replay_done(struct broker *b, struct subscription *sub, const char *receipt,
                         size_t receipt_len, bool recovered, struct message **msgs, size_t count);
/* Starts the backend's replay of sub (fanout_ops.replay): 0, answered later through
 * publish_replay_done(); 1 when the backend keeps no history (replay from the process's store);
 * -1 when out of memory. */
int publish_replay(struct broker *b, struct subscription *sub, const char *name, size_t len,
                   bool wildcard, const struct history_request *req, const char *receipt,
                   size_t receipt_len);
/* sub is going away: its pending replay (if any) is forgotten and its held messages freed. */
void publish_forget_replay(struct broker *b, struct subscription *sub);

/* delivery_ops.interest and delivery_ops.queue_event of every loop (ctx: the broker): handed to
 * the backend, or to the paused publishers for QUEUE_EV_UNBLOCK. */
void publish_interest(void *ctx, const char *name, size_t len, bool pattern, bool added);
void publish_queue_event(void *ctx, struct queue *q, enum queue_event ev, struct message *msg);

#endif
