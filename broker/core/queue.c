#include "broker/core/queue.h"

#include <stdlib.h>
#include <string.h>

struct queue *queue_lookup(struct queues *qs, const char *name, size_t len, bool create)
{
    struct queue *q = dict_get(&qs->by_name, name, len);
    if (q != NULL || !create)
        return q;
    q = calloc(1, sizeof(*q) + len + 1);
    if (q == NULL)
        return NULL;
    memcpy(q->name, name, len);
    q->name_len = len;
    q->clustered = qs->clustered && destination_kind(name, len) == DEST_QUEUE;
    if (dict_set(&qs->by_name, name, len, q) != 0) {
        free(q);
        return NULL;
    }
    return q;
}

static void free_queued_list(struct queued *item)
{
    while (item != NULL) {
        struct queued *next = item->next;
        message_unref(item->msg);
        free(item);
        item = next;
    }
}

/*
 * Publishers paused on a full queue go on once it is down to 90% of the limit (not at the first
 * free slot: they would pause again after one message each), or when it goes away.
 */
static void unblock_publishers(struct queues *qs, struct queue *q, bool going)
{
    if (q->paused_publishers == 0 || qs->ops->queue_event == NULL)
        return;
    if (going || q->depth < qs->max_messages - qs->max_messages / 10)
        qs->ops->queue_event(qs->ops->ctx, q, QUEUE_EV_UNBLOCK, NULL);
}

void queue_delete(struct queues *qs, struct queue *q)
{
    unblock_publishers(qs, q, true);
    dict_remove(&qs->by_name, q->name, q->name_len);
    free_queued_list(q->head);
    free(q);
}

/* An ordinary queue with no messages and no consumers holds nothing worth keeping. */
static void free_if_idle(struct queues *qs, struct queue *q)
{
    if (!q->temporary && q->depth == 0 && q->consumer_count == 0)
        queue_delete(qs, q);
}

static void notify(struct queues *qs, struct queue *q, enum queue_event ev, struct message *msg)
{
    if (q->clustered && qs->ops->queue_event != NULL)
        qs->ops->queue_event(qs->ops->ctx, q, ev, msg);
}

static void push_front(struct queue *q, struct queued *item)
{
    item->next = q->head;
    q->head = item;
    if (q->tail == NULL)
        q->tail = item;
    q->depth++;
}

static struct queued *pop_front(struct queue *q)
{
    struct queued *item = q->head;
    q->head = item->next;
    if (q->head == NULL)
        q->tail = NULL;
    q->depth--;
    return item;
}

int queue_push(struct queues *qs, struct queue *q, struct message *msg, bool redelivered)
{
    if (queue_full(qs, q) && !qs->block)
        return ROUTER_ERR_QUEUE_FULL;
    struct queued *item = calloc(1, sizeof(*item));
    if (item == NULL)
        return ROUTER_ERR_NOMEM;
    item->msg = message_ref(msg);
    item->redelivered = redelivered;
    if (q->tail != NULL)
        q->tail->next = item;
    else
        q->head = item;
    q->tail = item;
    q->depth++;
    queue_dispatch(qs, q);
    return 0;
}

bool queue_full(const struct queues *qs, const struct queue *q)
{
    return q->depth >= qs->max_messages;
}

static bool consumer_ready(const struct queues *qs, const struct subscription *sub)
{
    if (sub->prefetch != 0 && sub->ack != ACK_AUTO && sub->unacked_count >= sub->prefetch)
        return false;
    return qs->ops->writable(sub);
}

size_t queue_capacity(const struct queues *qs, const struct queue *q)
{
    size_t room = 0;
    for (const struct subscription *sub = q->consumers; sub != NULL; sub = sub->next) {
        if (!consumer_ready(qs, sub))
            continue;
        if (sub->ack == ACK_AUTO || sub->prefetch == 0)
            room += qs->cluster_window;
        else
            room += sub->prefetch - sub->unacked_count;
    }
    return room > q->depth ? room - q->depth : 0;
}

/*
 * Next ready consumer in round-robin order, preferring one that is not `avoid` (the consumer
 * that gave the message back); falls back to it when it is the only one ready.
 */
static struct subscription *pick_consumer(const struct queues *qs, struct queue *q, uint64_t avoid)
{
    struct subscription *start = q->cursor != NULL ? q->cursor : q->consumers;
    struct subscription *fallback = NULL;
    struct subscription *sub = start;
    for (size_t i = 0; i < q->consumer_count; i++) {
        if (consumer_ready(qs, sub)) {
            if (sub->serial != avoid)
                return sub;
            fallback = sub;
        }
        sub = sub->next != NULL ? sub->next : q->consumers;
    }
    return fallback;
}

/* One more (delta 1) or one fewer (-1) unacked message on sub: its own count, its session's
 * (limits.max_unacked) and the loop's gauge (/metrics, kept here so a scrape walks nothing). */
static void count_unacked(struct queues *qs, struct subscription *sub, int delta)
{
    sub->unacked_count += (size_t)delta;
    if (sub->session_unacked != NULL)
        *sub->session_unacked += (size_t)delta;
    qs->stats->unacked += (uint64_t)(int64_t)delta;
}

static int track_unacked(struct queues *qs, struct subscription *sub, struct message *msg)
{
    struct unacked *u = calloc(1, sizeof(*u));
    if (u == NULL)
        return -1;
    u->msg = message_ref(msg);
    u->prev = sub->unacked_tail;
    if (sub->unacked_tail != NULL)
        sub->unacked_tail->next = u;
    else
        sub->unacked_head = u;
    sub->unacked_tail = u;
    count_unacked(qs, sub, 1);
    return 0;
}

/*
 * A clustered queue whose only ready consumer here is the one that gave the head back: with
 * router.release_declined the message goes back to the store for another loop's consumers
 * rather than straight back to the consumer that declined it.
 */
static bool decline_head(struct queues *qs, struct queue *q, const struct subscription *sub)
{
    if (!qs->release_declined || !q->clustered || q->head->avoid_serial == 0 ||
        sub->serial != q->head->avoid_serial)
        return false;
    struct queued *item = pop_front(q);
    qs->ops->queue_event(qs->ops->ctx, q, QUEUE_EV_DECLINED, item->msg);
    message_unref(item->msg);
    free(item);
    return true;
}

static void dispatch_waiting(struct queues *qs, struct queue *q)
{
    while (q->head != NULL) {
        struct subscription *sub = pick_consumer(qs, q, q->head->avoid_serial);
        if (sub == NULL)
            return;
        if (decline_head(qs, q, sub))
            continue;
        q->cursor = sub->next != NULL ? sub->next : q->consumers;
        struct queued *item = pop_front(q);
        if (sub->ack != ACK_AUTO && track_unacked(qs, sub, item->msg) != 0) {
            push_front(q, item);
            return;
        }
        if (qs->ops->deliver(sub, item->msg, item->redelivered) != 0) {
            /* The connection refused it (closing): keep the message for someone else. */
            if (sub->ack != ACK_AUTO) {
                struct unacked *u = sub->unacked_tail;
                sub->unacked_tail = u->prev;
                if (u->prev != NULL)
                    u->prev->next = NULL;
                else
                    sub->unacked_head = NULL;
                count_unacked(qs, sub, -1);
                message_unref(u->msg);
                free(u);
            }
            push_front(q, item);
            return;
        }
        qs->stats->delivered++;
        if (sub->ack == ACK_AUTO)
            notify(qs, q, QUEUE_EV_SETTLED, item->msg);
        message_unref(item->msg);
        free(item);
    }
}

void queue_dispatch(struct queues *qs, struct queue *q)
{
    dispatch_waiting(qs, q);
    unblock_publishers(qs, q, false);
}

void queue_add_consumer(struct queues *qs, struct queue *q, struct subscription *sub)
{
    sub->prev = NULL;
    sub->next = q->consumers;
    if (q->consumers != NULL)
        q->consumers->prev = sub;
    q->consumers = sub;
    q->consumer_count++;
    sub->target = q;
    if (q->consumer_count == 1)
        notify(qs, q, QUEUE_EV_FOLLOW, NULL);
    queue_dispatch(qs, q);
    notify(qs, q, QUEUE_EV_ROOM, NULL);
}

static void unlink_unacked(struct queues *qs, struct subscription *sub, struct unacked *u)
{
    if (u->prev != NULL)
        u->prev->next = u->next;
    else
        sub->unacked_head = u->next;
    if (u->next != NULL)
        u->next->prev = u->prev;
    else
        sub->unacked_tail = u->prev;
    count_unacked(qs, sub, -1);
}

/*
 * Gives back the unacked messages from `first` to `last` (inclusive, delivery order) to the
 * queue's head, keeping their order, marked redelivered.
 */
static void give_back(struct queues *qs, struct queue *q, struct subscription *sub,
                      struct unacked *first, struct unacked *last)
{
    struct unacked *u = last;
    for (;;) {
        struct unacked *prev = u->prev;
        bool done = u == first;
        unlink_unacked(qs, sub, u);
        struct queued *item = calloc(1, sizeof(*item));
        if (item != NULL) {
            item->msg = u->msg; /* the reference moves to the queue */
            item->redelivered = true;
            item->avoid_serial = sub->serial;
            push_front(q, item);
        } else {
            message_unref(u->msg); /* out of memory: lost, as after a crash */
        }
        free(u);
        if (done)
            break;
        u = prev;
    }
}

/* The last local consumer of a clustered queue left: its waiting messages go back to the
 * cluster, where other nodes' consumers can take them. */
static void release_waiting(struct queues *qs, struct queue *q)
{
    while (q->head != NULL) {
        struct queued *item = pop_front(q);
        notify(qs, q, QUEUE_EV_RELEASED, item->msg);
        message_unref(item->msg);
        free(item);
    }
    notify(qs, q, QUEUE_EV_UNFOLLOW, NULL);
}

void queue_remove_consumer(struct queues *qs, struct queue *q, struct subscription *sub)
{
    if (q->cursor == sub)
        q->cursor = sub->next;
    if (sub->prev != NULL)
        sub->prev->next = sub->next;
    else
        q->consumers = sub->next;
    if (sub->next != NULL)
        sub->next->prev = sub->prev;
    q->consumer_count--;
    sub->prev = sub->next = NULL;
    sub->target = NULL;
    if (sub->unacked_head != NULL)
        give_back(qs, q, sub, sub->unacked_head, sub->unacked_tail);
    queue_dispatch(qs, q);
    if (q->clustered && q->consumer_count == 0)
        release_waiting(qs, q);
    free_if_idle(qs, q);
}

static void release_acked(struct queues *qs, struct subscription *sub, struct unacked *first,
                          struct unacked *last)
{
    struct unacked *u = first;
    for (;;) {
        struct unacked *next = u->next;
        bool done = u == last;
        unlink_unacked(qs, sub, u);
        notify(qs, sub->target, QUEUE_EV_SETTLED, u->msg);
        message_unref(u->msg);
        free(u);
        if (done)
            break;
        u = next;
    }
}

int queue_ack(struct queues *qs, struct subscription *sub, const char *message_id, size_t len,
              bool nack)
{
    struct unacked *found = sub->unacked_head;
    while (found != NULL &&
           (strlen(found->msg->id) != len || memcmp(found->msg->id, message_id, len) != 0))
        found = found->next;
    if (found == NULL)
        return -1;
    struct unacked *first = sub->ack == ACK_CLIENT ? sub->unacked_head : found;
    struct queue *q = sub->target;
    if (nack)
        give_back(qs, q, sub, first, found);
    else
        release_acked(qs, sub, first, found);
    queue_dispatch(qs, q);
    notify(qs, q, QUEUE_EV_ROOM, NULL);
    return 0;
}
