#include "broker/core/publish.h"
#include "broker/core/history.h"
#include "broker/core/queue.h"

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
                            struct message *msg, const char *route, size_t len)
{
    const struct fanout_ops *ops = b->fanout.ops;
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

int publish_waiting(struct broker *b, struct message *msg, const char *route, size_t len,
                    bool create_queue, struct session *waiter)
{
    const struct fanout_ops *ops = b->fanout.ops;
    enum dest_kind kind = destination_kind(route, len);
    if (kind == DEST_TOPIC && b->history != NULL) {
        const struct history_policy *policy = history_policy_for(b->history, route, len);
        if (policy != NULL)
            return publish_retained(b, policy, msg, route, len);
    }
    if (ops != NULL && kind == DEST_QUEUE)
        return ops->publish_queue(b->fanout.ctx, msg, waiter);
    if (ops != NULL && kind == DEST_TOPIC)
        return ops->publish_topic(b->fanout.ctx, msg, route, len);
    int rc = router_publish(&b->router, msg, route, len, create_queue);
    if (rc == ROUTER_ERR_NO_QUEUE && kind == DEST_REPLY_QUEUE && b->forward_reply != NULL)
        return b->forward_reply(b, msg, route, len);
    return rc;
}

int publish(struct broker *b, struct message *msg, const char *route, size_t len, bool create_queue)
{
    return publish_waiting(b, msg, route, len, create_queue, NULL);
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
