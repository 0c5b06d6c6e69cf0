#include "broker/threads/fanout_threads.h"
#include "broker/core/publish.h"
#include "broker/core/queue.h"
#include "broker/threads/inbox.h"
#include "broker/threads/shared_queues.h"

#include <stdlib.h>
#include <string.h>

/* The backend of one loop. */
struct fanout_threads {
    struct broker *b;            /* borrowed: the loop it serves */
    struct shared_queues *store; /* borrowed: the process's, freed after every loop ended */
};

static void follow_interest(void *ctx, const char *name, size_t len, bool pattern, bool added)
{
    struct fanout_threads *ft = ctx;
    (void)name;
    (void)len;
    (void)pattern;
    inboxes_topic_interest(ft->b->inboxes, ft->b->loop_index, added ? 1 : -1);
}

/*
 * A topic message: this loop's subscribers, then a copy for every other loop whose clients
 * follow topics. It found no subscriber only when no other loop was sent a copy either.
 */
static int publish_topic_across(void *ctx, struct message *msg, const char *route, size_t len)
{
    struct broker *b = ((struct fanout_threads *)ctx)->b;
    if (destination_is_wildcard(route, len))
        return ROUTER_ERR_BAD_DEST;
    size_t n = router_publish_topic(&b->router, msg, route, len);
    bool elsewhere =
        inboxes_forward_topic(b->inboxes, b->loop_index, msg, &b->stats.loop_inbox_drops);
    b->router.stats.published++;
    if (n == 0 && !elsewhere)
        b->router.stats.unroutable++;
    return 0;
}

/*
 * A topic message with a retention policy, under the history store's lock: a copy for every
 * loop whose clients follow topics, this one too, so each loop's inbox holds a destination's
 * offsets in order (a direct local delivery could overtake a lower offset another loop had
 * already pushed here). Pushing only appends to the inboxes: nothing is delivered under the lock.
 */
static void publish_ordered_across(void *ctx, struct message *msg)
{
    struct broker *b = ((struct fanout_threads *)ctx)->b;
    bool anywhere = inboxes_forward_topic(b->inboxes, SIZE_MAX, msg, &b->stats.loop_inbox_drops);
    b->router.stats.published++;
    if (!anywhere)
        b->router.stats.unroutable++;
}

void fanout_threads_deliver_topic(struct broker *b, struct message *msg)
{
    router_publish_topic(&b->router, msg, msg->destination, msg->destination_len);
}

/*
 * The loop that owns a /reply-queue/: its name is /reply-queue/sess-<conn id>-..., and a
 * connection id is n * loops + loop. SIZE_MAX when the name is not one the broker made.
 */
static size_t reply_queue_loop(const struct broker *b, const char *route, size_t len)
{
    static const char lead[] = REPLY_QUEUE_PREFIX "sess-";
    size_t i = sizeof(lead) - 1;
    if (len <= i || memcmp(route, lead, i) != 0 || route[i] < '0' || route[i] > '9')
        return SIZE_MAX;
    uint64_t id = 0;
    for (; i < len && route[i] >= '0' && route[i] <= '9' && id < UINT64_MAX / 10; i++)
        id = id * 10 + (uint64_t)(route[i] - '0');
    return i < len && route[i] == '-' ? (size_t)(id % b->conn_id_stride) : SIZE_MAX;
}

int fanout_threads_forward_reply(struct broker *b, struct message *msg, const char *route,
                                 size_t len)
{
    size_t owner = reply_queue_loop(b, route, len);
    if (owner == SIZE_MAX || owner == b->loop_index)
        return ROUTER_ERR_NO_QUEUE;
    if (inboxes_forward_reply(b->inboxes, owner, msg) != 0)
        return ROUTER_ERR_NOMEM;
    b->router.stats.published++;
    return 0;
}

/* At the owner: gone meanwhile counts as a drop here, as a SEND to a gone queue would. */
void fanout_threads_deliver_reply(struct broker *b, struct message *msg)
{
    struct queue *q =
        queue_lookup(&b->router.queues, msg->destination, msg->destination_len, false);
    if (q == NULL || queue_push(&b->router.queues, q, msg, false) != 0)
        b->stats.reply_queue_drops++;
}

/* A /queue/ message goes to the process's store; a publisher that waits (a session) may be
 * paused by it, an API request is refused at the limit instead. */
static int publish_to_store(void *ctx, struct message *msg, struct session *waiter)
{
    struct fanout_threads *ft = ctx;
    struct broker *b = ft->b;
    bool full = false;
    int rc = shared_queues_append(ft->store, b->loop_index, msg, waiter != NULL ? &full : NULL);
    if (rc != 0)
        return rc;
    b->router.stats.published++;
    return full ? PUBLISH_FULL : 0;
}

/* The most entries taken from the store at once (on the stack); a loop takes again while its
 * consumers still have room. */
#define TAKE_BATCH 64

/* Takes from the store what the local consumers of q can take now. */
static void take_for_queue(struct fanout_threads *ft, struct queue *q)
{
    struct broker *b = ft->b;
    struct message *msgs[TAKE_BATCH];
    bool redelivered[TAKE_BATCH];
    size_t room;
    while (q->consumer_count > 0 && (room = queue_capacity(&b->router.queues, q)) > 0) {
        size_t want = room < TAKE_BATCH ? room : TAKE_BATCH;
        size_t n = shared_queues_take(ft->store, b->loop_index, q->name, q->name_len, want, msgs,
                                      redelivered);
        for (size_t i = 0; i < n; i++) {
            if (q->consumer_count == 0 ||
                queue_push(&b->router.queues, q, msgs[i], redelivered[i]) != 0)
                shared_queues_release(ft->store, b->loop_index, msgs[i], false);
            message_unref(msgs[i]);
        }
        if (n < want)
            return;
    }
}

void fanout_threads_take(struct broker *b)
{
    struct fanout_threads *ft = b->fanout.ctx;
    size_t bucket;
    struct dict_entry *e = dict_first(&b->router.queues.by_name, &bucket);
    while (e != NULL) {
        struct queue *q = e->value;
        e = dict_next(&b->router.queues.by_name, &bucket,
                      e); /* taking never frees a followed queue */
        if (q->clustered && q->consumer_count > 0)
            take_for_queue(ft, q);
    }
}

/* What the router tells of queues backed by the process's store. */
static void follow_store(void *ctx, struct queue *q, enum queue_event ev, struct message *msg)
{
    struct fanout_threads *ft = ctx;
    struct broker *b = ft->b;
    switch (ev) {
    case QUEUE_EV_FOLLOW:
    case QUEUE_EV_UNFOLLOW:
        shared_queues_follow(ft->store, b->loop_index, q->name, q->name_len, ev == QUEUE_EV_FOLLOW);
        break;
    case QUEUE_EV_SETTLED:
        shared_queues_settle(ft->store, msg);
        break;
    case QUEUE_EV_RELEASED:
    case QUEUE_EV_DECLINED:
        shared_queues_release(ft->store, b->loop_index, msg, ev == QUEUE_EV_DECLINED);
        break;
    case QUEUE_EV_ROOM:
        inboxes_kick(b->inboxes, b->loop_index); /* taken on a later turn, not inside a dispatch */
        break;
    case QUEUE_EV_UNBLOCK:
        break;
    }
}

static bool always_flushed(void *ctx)
{
    (void)ctx;
    return true; /* the store outlives the loop: nothing waits for a confirmation */
}

static const struct fanout_ops fanout_threads_ops = {
    .interest = follow_interest,
    .publish_topic = publish_topic_across,
    .publish_ordered = publish_ordered_across,
    .publish_queue = publish_to_store,
    .queue_event = follow_store,
    .flushed = always_flushed,
    .free = free,
};

int fanout_threads_start(struct broker *b, struct shared_queues *store)
{
    struct fanout_threads *ft = calloc(1, sizeof(*ft));
    if (ft == NULL)
        return -1;
    ft->b = b;
    ft->store = store;
    b->fanout = (struct fanout){.ops = &fanout_threads_ops, .ctx = ft};
    /* /queue/ names are the store's: a loop holds what it took. */
    b->router.queues.clustered = true;
    b->router.queues.release_declined = true;
    return 0;
}
