#include "broker/core/publish.h"
#include "broker/core/history.h"
#include "broker/core/queue.h"

#include <stdlib.h>

/* publish_ordered's shape for history_append()'s callback. */
static void hand_on_ordered(void *arg, struct message *msg)
{
    struct broker *b = arg;
    b->fanout.ops->publish_ordered(b->fanout.ctx, msg);
}

/*
 * A topic message whose destination has a retention policy: it gets its offset and a copy is
 * kept, then it goes where any topic message goes. A backend that hands copies to other loops
 * does it under the store's lock (publish_ordered), this loop's subscribers included, so that
 * offsets reach every loop in order. Out of memory for the copy: published without an offset.
 */
static int publish_retained(struct broker *b, const struct history_policy *policy,
                            struct message *msg, const char *route, size_t len,
                            struct offset_waiter *w)
{
    const struct fanout_ops *ops = b->fanout.ops;
    if (ops != NULL && ops->retain != NULL)
        return ops->retain(b->fanout.ctx, msg, policy, w);
    bool ordered = ops != NULL && ops->publish_ordered != NULL;
    size_t evicted;
    int rc = history_append(b->history, policy, msg, broker_wall_ms(),
                            ordered ? hand_on_ordered : NULL, b, &evicted);
    b->stats.limit_hits[LIMIT_HISTORY_BYTES] += evicted;
    if (rc == 0 && ordered)
        return 0;
    if (ordered || ops != NULL)
        return ops->publish_topic(b->fanout.ctx, msg, route, len);
    return router_publish(&b->router, msg, route, len, false);
}

static int publish_to(struct broker *b, struct message *msg, const char *route, size_t len,
                      bool create_queue, struct session *waiter, struct offset_waiter *w)
{
    const struct fanout_ops *ops = b->fanout.ops;
    enum dest_kind kind = destination_kind(route, len);
    if (kind == DEST_TOPIC && b->history != NULL) {
        const struct history_policy *policy = history_policy_for(b->history, route, len);
        if (policy != NULL)
            return publish_retained(b, policy, msg, route, len, w);
    }
    if (ops != NULL && kind == DEST_QUEUE)
        return ops->publish_queue(b->fanout.ctx, msg, waiter);
    /* A /user/ route is an exact topic name to the backends: to every loop and node. */
    if (ops != NULL && (kind == DEST_TOPIC || kind == DEST_USER))
        return ops->publish_topic(b->fanout.ctx, msg, route, len);
    int rc = router_publish(&b->router, msg, route, len, create_queue);
    if (rc == ROUTER_ERR_NO_QUEUE && kind == DEST_REPLY_QUEUE && b->forward_reply != NULL)
        return b->forward_reply(b, msg, route, len);
    return rc;
}

int publish_waiting(struct broker *b, struct message *msg, const char *route, size_t len,
                    bool create_queue, struct session *waiter)
{
    return publish_to(b, msg, route, len, create_queue, waiter, NULL);
}

int publish(struct broker *b, struct message *msg, const char *route, size_t len, bool create_queue)
{
    return publish_to(b, msg, route, len, create_queue, NULL, NULL);
}

int publish_for_offset(struct broker *b, struct message *msg, const char *route, size_t len,
                       bool create_queue, struct offset_waiter *w)
{
    return publish_to(b, msg, route, len, create_queue, NULL, w);
}

void publish_forget_waiter(struct broker *b, struct session *waiter)
{
    if (b->fanout.ops != NULL && b->fanout.ops->forget_waiter != NULL)
        b->fanout.ops->forget_waiter(b->fanout.ctx, waiter);
}

void publish_queue_unblocked(struct broker *b, const char *name)
{
    b->router.ops.queue_unblocked(b, name);
}

void publish_interest(void *ctx, const char *name, size_t len, bool pattern, bool added)
{
    struct broker *b = ctx;
    if (b->fanout.ops != NULL)
        b->fanout.ops->interest(b->fanout.ctx, name, len, pattern, added);
}

void publish_queue_event(void *ctx, struct queue *q, enum queue_event ev, struct message *msg)
{
    struct broker *b = ctx;
    if (ev == QUEUE_EV_UNBLOCK)
        publish_queue_unblocked(b, q->name);
    else if (b->fanout.ops != NULL)
        b->fanout.ops->queue_event(b->fanout.ctx, q, ev, msg);
}

/* Raises msg's destination's mark in *marks (created on first use; values owned, as
 * history_marks_pass() wants them). Out of memory: no mark, a live copy may come twice. */
static void raise_mark(struct dict **marks, const struct message *msg)
{
    if (*marks == NULL && (*marks = malloc(sizeof(**marks))) != NULL)
        dict_init(*marks);
    if (*marks == NULL)
        return;
    struct history_mark *mark = dict_get(*marks, msg->destination, msg->destination_len);
    if (mark == NULL) {
        if ((mark = malloc(sizeof(*mark))) == NULL)
            return;
        if (dict_set(*marks, msg->destination, msg->destination_len, mark) != 0) {
            free(mark);
            return;
        }
    }
    mark->offset = msg->stream_offset;
    mark->epoch = msg->stream_epoch;
}

static void deliver_counted(struct broker *b, struct subscription *sub, struct message *msg)
{
    if (b->router.ops.deliver(sub, msg, false) == 0)
        b->router.stats.delivered++;
    else
        b->router.stats.dropped++;
}

static void drop_held(struct subscription *sub)
{
    for (size_t i = 0; i < sub->held_count; i++)
        message_unref(sub->held[i]);
    free(sub->held);
    sub->held = NULL;
    sub->held_count = sub->held_cap = 0;
}

void publish_replay_done(struct broker *b, struct subscription *sub, const char *receipt,
                         size_t receipt_len, bool recovered, struct message **msgs, size_t count)
{
    sub->replay_pending = false;
    if (receipt != NULL && b->router.ops.replay_receipt != NULL)
        b->router.ops.replay_receipt(sub, receipt, receipt_len, recovered);
    /* Destination -> newest offset replayed. A live copy at or below it is skipped: held here,
     * or still on its way (the subscribe link may lag behind the read's answer), so the marks
     * stay with the subscription until a newer message of each destination arrives. */
    struct dict *marks = NULL;
    for (size_t i = 0; i < count; i++) {
        deliver_counted(b, sub, msgs[i]);
        raise_mark(&marks, msgs[i]);
    }
    for (size_t i = 0; i < sub->held_count; i++)
        if (history_marks_pass(&marks, sub->held[i]))
            deliver_counted(b, sub, sub->held[i]);
    history_marks_free(sub->stream_marks);
    sub->stream_marks = marks;
    drop_held(sub);
}

void publish_forget_replay(struct broker *b, struct subscription *sub)
{
    if (sub->replay_pending && b->fanout.ops != NULL && b->fanout.ops->forget_replay != NULL)
        b->fanout.ops->forget_replay(b->fanout.ctx, sub);
    sub->replay_pending = false;
    drop_held(sub);
}

int publish_replay(struct broker *b, struct subscription *sub, const char *name, size_t len,
                   bool wildcard, const struct history_request *req, const char *receipt,
                   size_t receipt_len)
{
    const struct fanout_ops *ops = b->fanout.ops;
    if (ops == NULL || ops->replay == NULL)
        return 1;
    sub->replay_pending = true;
    if (ops->replay(b->fanout.ctx, sub, name, len, wildcard, req, receipt, receipt_len) != 0) {
        sub->replay_pending = false;
        return -1;
    }
    return 0;
}
