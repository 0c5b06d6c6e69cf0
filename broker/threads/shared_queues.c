#include "broker/threads/shared_queues.h"
#include "broker/base/dict.h"
#include "broker/threads/inbox.h"
#include "broker/core/router.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One stored message: waiting in its queue's list, or in flight (taken by a loop). */
struct shared_entry {
    struct shared_entry *next; /* owned by the queue's waiting list; NULL while in flight */
    struct message *msg;       /* owned: the store's own copy (stream_id names the entry) */
    uint64_t id;               /* the entry id (stream_id in text): the order of the SENDs */
    bool redelivered;          /* handed out before */
    bool avoid;                /* released by avoid_loop's only consumer: another loop first */
    size_t avoid_loop;
};

struct shared_queue {
    struct shared_entry *head, *tail; /* owned: waiting entries, oldest first */
    size_t waiting;
    struct dict in_flight; /* owned values: stream id -> struct shared_entry taken by a loop */
    uint64_t followers;    /* bit i: loop i has consumers of this queue */
    uint64_t paused;       /* bit i: loop i paused publishers on this queue (overflow = block) */
    size_t name_len;
    char name[]; /* NUL-terminated */
};

struct shared_queues {
    pthread_mutex_t lock;    /* guards everything below */
    struct inboxes *inboxes; /* borrowed: kicks and unblocks go to the loops through them */
    struct dict queues;      /* owned values: name -> struct shared_queue */
    size_t max_messages;     /* queue.max_messages: waiting entries per queue */
    bool block;              /* queue.overflow = block */
    uint64_t next_entry;     /* entry ids, written into stream_id */
    uint64_t waiting, in_flight;
};

struct shared_queues *shared_queues_new(struct inboxes *inboxes, size_t max_messages, bool block)
{
    struct shared_queues *sq = calloc(1, sizeof(*sq));
    if (sq == NULL)
        return NULL;
    if (pthread_mutex_init(&sq->lock, NULL) != 0) {
        free(sq);
        return NULL;
    }
    sq->inboxes = inboxes;
    dict_init(&sq->queues);
    sq->max_messages = max_messages;
    sq->block = block;
    return sq;
}

static void free_entry(struct shared_entry *e)
{
    message_unref(e->msg);
    free(e);
}

static void free_queue(struct shared_queue *q)
{
    while (q->head != NULL) {
        struct shared_entry *e = q->head;
        q->head = e->next;
        free_entry(e);
    }
    size_t bucket;
    for (struct dict_entry *d = dict_first(&q->in_flight, &bucket); d != NULL;
         d = dict_next(&q->in_flight, &bucket, d))
        free_entry(d->value);
    dict_reset(&q->in_flight);
    free(q);
}

void shared_queues_free(struct shared_queues *sq)
{
    if (sq == NULL)
        return;
    size_t bucket;
    for (struct dict_entry *d = dict_first(&sq->queues, &bucket); d != NULL;
         d = dict_next(&sq->queues, &bucket, d))
        free_queue(d->value);
    dict_reset(&sq->queues);
    pthread_mutex_destroy(&sq->lock);
    free(sq);
}

static struct shared_queue *lookup(struct shared_queues *sq, const char *name, size_t len,
                                   bool create)
{
    struct shared_queue *q = dict_get(&sq->queues, name, len);
    if (q != NULL || !create)
        return q;
    q = calloc(1, sizeof(*q) + len + 1);
    if (q == NULL)
        return NULL;
    memcpy(q->name, name, len);
    q->name_len = len;
    dict_init(&q->in_flight);
    if (dict_set(&sq->queues, name, len, q) != 0) {
        free(q);
        return NULL;
    }
    return q;
}

/* A queue nobody follows, waits on or holds anything of is forgotten, as an idle local one. */
static void free_if_unused(struct shared_queues *sq, struct shared_queue *q)
{
    if (q->waiting != 0 || q->in_flight.count != 0 || q->followers != 0 || q->paused != 0)
        return;
    dict_remove(&sq->queues, q->name, q->name_len);
    free_queue(q);
}

/* Kicks only push onto inboxes (lock-free): safe under the store's mutex. */
static void kick_followers(struct shared_queues *sq, const struct shared_queue *q)
{
    for (size_t i = 0; i < inboxes_count(sq->inboxes); i++)
        if (q->followers & (UINT64_C(1) << i))
            inboxes_kick(sq->inboxes, i);
}

/* As queue.c does for a local queue: publishers go on below 90% of the limit, not at the first
 * free slot (they would pause again after one message each). */
static void maybe_unblock(struct shared_queues *sq, struct shared_queue *q)
{
    if (q->paused == 0 || q->waiting >= sq->max_messages - sq->max_messages / 10)
        return;
    for (size_t i = 0; i < inboxes_count(sq->inboxes); i++)
        if (q->paused & (UINT64_C(1) << i))
            inboxes_unblock(sq->inboxes, i, q->name, q->name_len);
    q->paused = 0;
}

static void push_tail(struct shared_queue *q, struct shared_entry *e)
{
    e->next = NULL;
    if (q->tail != NULL)
        q->tail->next = e;
    else
        q->head = e;
    q->tail = e;
    q->waiting++;
}

/*
 * Back among the waiting entries in the order they were first sent: at the head, unless entries
 * released before it are older (a consumer leaving hands several back, oldest first; each must
 * not overtake the ones before it).
 */
static void push_in_order(struct shared_queue *q, struct shared_entry *e)
{
    struct shared_entry *prev = NULL, *at = q->head;
    while (at != NULL && at->id < e->id) {
        prev = at;
        at = at->next;
    }
    e->next = at;
    if (prev != NULL)
        prev->next = e;
    else
        q->head = e;
    if (at == NULL)
        q->tail = e;
    q->waiting++;
}

/* Stores a copy of msg named by a new entry id; -1 when out of memory. */
static int store_copy(struct shared_queues *sq, struct shared_queue *q, const struct message *msg)
{
    struct shared_entry *e = calloc(1, sizeof(*e));
    struct message *copy = e != NULL ? message_clone(msg) : NULL;
    if (copy == NULL) {
        free(e);
        return -1;
    }
    e->id = ++sq->next_entry;
    snprintf(copy->stream_id, sizeof(copy->stream_id), "%" PRIu64, e->id);
    e->msg = copy;
    push_tail(q, e);
    sq->waiting++;
    return 0;
}

int shared_queues_append(struct shared_queues *sq, size_t from, const struct message *msg,
                         bool *full)
{
    pthread_mutex_lock(&sq->lock);
    int rc = 0;
    struct shared_queue *q = lookup(sq, msg->destination, msg->destination_len, true);
    if (q == NULL) {
        rc = ROUTER_ERR_NOMEM;
    } else if (q->waiting >= sq->max_messages && (!sq->block || full == NULL)) {
        rc = ROUTER_ERR_QUEUE_FULL;
        free_if_unused(sq, q);
    } else if (store_copy(sq, q, msg) != 0) {
        rc = ROUTER_ERR_NOMEM;
        free_if_unused(sq, q);
    } else {
        if (full != NULL && sq->block && q->waiting >= sq->max_messages) {
            q->paused |= UINT64_C(1) << from;
            *full = true;
        }
        kick_followers(sq, q);
    }
    pthread_mutex_unlock(&sq->lock);
    return rc;
}

void shared_queues_follow(struct shared_queues *sq, size_t loop, const char *name, size_t len,
                          bool follow)
{
    pthread_mutex_lock(&sq->lock);
    struct shared_queue *q = lookup(sq, name, len, follow);
    if (q != NULL && follow) {
        q->followers |= UINT64_C(1) << loop;
        inboxes_kick(sq->inboxes, loop);
    } else if (q != NULL) {
        q->followers &= ~(UINT64_C(1) << loop);
        /* Entries left to the loop that went may now be the others' to take. */
        if (q->waiting > 0)
            kick_followers(sq, q);
        free_if_unused(sq, q);
    }
    pthread_mutex_unlock(&sq->lock);
}

/* Moves a waiting entry (after prev, or the head) into the in-flight table; false when out of
 * memory (it stays waiting). */
static bool hand_out(struct shared_queue *q, struct shared_entry *prev, struct shared_entry *e)
{
    if (dict_set(&q->in_flight, e->msg->stream_id, strlen(e->msg->stream_id), e) != 0)
        return false;
    if (prev != NULL)
        prev->next = e->next;
    else
        q->head = e->next;
    if (q->tail == e)
        q->tail = prev;
    e->next = NULL;
    e->avoid = false;
    q->waiting--;
    return true;
}

size_t shared_queues_take(struct shared_queues *sq, size_t loop, const char *name, size_t len,
                          size_t max, struct message **out, bool *redelivered)
{
    pthread_mutex_lock(&sq->lock);
    struct shared_queue *q = lookup(sq, name, len, false);
    size_t n = 0;
    if (q != NULL) {
        bool others = (q->followers & ~(UINT64_C(1) << loop)) != 0;
        struct shared_entry *prev = NULL, *e = q->head;
        while (e != NULL && n < max) {
            struct shared_entry *next = e->next;
            if (e->avoid && e->avoid_loop == loop && others) {
                prev = e; /* left for another loop's consumers */
            } else {
                struct message *copy = message_clone(e->msg);
                bool was_redelivered = e->redelivered;
                if (copy == NULL || !hand_out(q, prev, e)) {
                    message_unref(copy);
                    break;
                }
                out[n] = copy;
                redelivered[n++] = was_redelivered;
            }
            e = next;
        }
        sq->waiting -= n;
        sq->in_flight += n;
        maybe_unblock(sq, q);
    }
    pthread_mutex_unlock(&sq->lock);
    return n;
}

/* The in-flight entry msg was taken as, removed from the table; NULL when unknown. */
static struct shared_entry *take_back(struct shared_queues *sq, const struct message *msg,
                                      struct shared_queue **queue)
{
    struct shared_queue *q = lookup(sq, msg->destination, msg->destination_len, false);
    struct shared_entry *e =
        q != NULL ? dict_remove(&q->in_flight, msg->stream_id, strlen(msg->stream_id)) : NULL;
    if (e != NULL)
        sq->in_flight--;
    *queue = q;
    return e;
}

void shared_queues_settle(struct shared_queues *sq, const struct message *msg)
{
    pthread_mutex_lock(&sq->lock);
    struct shared_queue *q;
    struct shared_entry *e = take_back(sq, msg, &q);
    if (e != NULL) {
        free_entry(e);
        free_if_unused(sq, q);
    }
    pthread_mutex_unlock(&sq->lock);
}

void shared_queues_release(struct shared_queues *sq, size_t loop, const struct message *msg,
                           bool avoid)
{
    pthread_mutex_lock(&sq->lock);
    struct shared_queue *q;
    struct shared_entry *e = take_back(sq, msg, &q);
    if (e != NULL) {
        e->redelivered = true;
        e->avoid = avoid;
        e->avoid_loop = loop;
        push_in_order(q, e);
        sq->waiting++;
        kick_followers(sq, q);
    }
    pthread_mutex_unlock(&sq->lock);
}

void shared_queues_stats(struct shared_queues *sq, struct shared_queues_stats *out)
{
    pthread_mutex_lock(&sq->lock);
    out->queues = sq->queues.count;
    out->waiting = sq->waiting;
    out->in_flight = sq->in_flight;
    pthread_mutex_unlock(&sq->lock);
}
