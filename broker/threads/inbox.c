#include "broker/threads/inbox.h"
#include "broker/base/log.h"

#include <errno.h>
#include <event2/event.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

/*
 * Topic copies one inbox may hold before more are dropped (counted in
 * stompws_messages_dropped_total{reason="loop_inbox"}): a loop that cannot keep up with the
 * others' publishers must not grow the process without bound. Its own slow clients drop at their
 * outbound high-water mark long before a healthy loop gets here.
 */
#define INBOX_MAX_TOPICS 65536

/*
 * Producers push onto a stack with a CAS, the loop takes the whole stack with one exchange and
 * reverses it, which restores push order (so one publisher's messages keep their order). A
 * producer writes the eventfd only when it pushed onto an empty stack: one wake-up per batch,
 * not per item.
 */
struct inbox {
    _Atomic(struct inbox_item *) head; /* owned: pushed items, newest first */
    atomic_size_t topics;              /* INBOX_TOPIC items queued (INBOX_MAX_TOPICS) */
    atomic_bool kick_pending;          /* an INBOX_KICK is queued: one is enough */
    atomic_long topic_interest;        /* topic names and patterns the loop's clients follow */
    int efd;                           /* owned: eventfd, -1 before it is made */
    struct event *ev;                  /* owned: reads efd on the loop's base */
    struct inbox_ops ops;              /* the loop's receiver */
};

struct inboxes {
    size_t count;
    struct inbox *each; /* owned: count of them */
};

static struct inbox_item *item_new(enum inbox_item_kind kind, const char *name, size_t len)
{
    struct inbox_item *item = calloc(1, sizeof(*item) + len + 1);
    if (item == NULL)
        return NULL;
    item->kind = kind;
    memcpy(item->name, name, len);
    return item;
}

static void item_free(struct inbox_item *item)
{
    message_unref(item->msg);
    free(item);
}

static void push(struct inbox *in, struct inbox_item *item)
{
    struct inbox_item *old = atomic_load_explicit(&in->head, memory_order_relaxed);
    do
        item->next = old;
    while (!atomic_compare_exchange_weak_explicit(&in->head, &old, item, memory_order_release,
                                                  memory_order_relaxed));
    if (old != NULL)
        return; /* the consumer has a wake-up coming for the items below this one */
    uint64_t one = 1;
    if (write(in->efd, &one, sizeof(one)) != (ssize_t)sizeof(one))
        log_error(0, "loop inbox: eventfd write failed: %s", strerror(errno));
}

/* Everything pushed so far, oldest first. */
static struct inbox_item *take_all(struct inbox *in)
{
    struct inbox_item *stack = atomic_exchange_explicit(&in->head, NULL, memory_order_acquire);
    struct inbox_item *ordered = NULL;
    while (stack != NULL) {
        struct inbox_item *next = stack->next;
        stack->next = ordered;
        ordered = stack;
        stack = next;
    }
    return ordered;
}

/* The inbox's own bookkeeping for an item about to be received. */
static void account(struct inbox *in, const struct inbox_item *item)
{
    if (item->kind == INBOX_TOPIC)
        atomic_fetch_sub_explicit(&in->topics, 1, memory_order_relaxed);
    else if (item->kind == INBOX_KICK) /* cleared first: a kick pushed meanwhile brings a pass */
        atomic_store_explicit(&in->kick_pending, false, memory_order_relaxed);
}

static void inbox_cb(evutil_socket_t fd, short what, void *arg)
{
    struct inbox *in = arg;
    (void)what;
    uint64_t count;
    /* Read before taking: a push after the take writes again and wakes us once more. */
    if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        log_error(0, "loop inbox: eventfd read failed: %s", strerror(errno));
    struct inbox_item *item = take_all(in);
    while (item != NULL) {
        struct inbox_item *next = item->next;
        account(in, item);
        in->ops.receive(in->ops.ctx, item);
        item_free(item);
        item = next;
    }
}

static void free_items(struct inbox_item *item)
{
    while (item != NULL) {
        struct inbox_item *next = item->next;
        item_free(item);
        item = next;
    }
}

struct inboxes *inboxes_new(size_t count)
{
    struct inboxes *in = calloc(1, sizeof(*in));
    if (in == NULL || (in->each = calloc(count, sizeof(*in->each))) == NULL) {
        free(in);
        return NULL;
    }
    in->count = count;
    for (size_t i = 0; i < count; i++)
        in->each[i].efd = -1;
    for (size_t i = 0; i < count; i++) {
        in->each[i].efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
        if (in->each[i].efd < 0) {
            inboxes_free(in);
            return NULL;
        }
    }
    return in;
}

void inboxes_free(struct inboxes *in)
{
    if (in == NULL)
        return;
    for (size_t i = 0; i < in->count; i++) {
        inboxes_detach(in, i);
        free_items(take_all(&in->each[i])); /* pushed after the loop had ended */
        if (in->each[i].efd >= 0)
            close(in->each[i].efd);
    }
    free(in->each);
    free(in);
}

size_t inboxes_count(const struct inboxes *in)
{
    return in->count;
}

int inboxes_attach(struct inboxes *in, size_t loop, struct event_base *base,
                   const struct inbox_ops *ops)
{
    struct inbox *box = &in->each[loop];
    box->ops = *ops;
    box->ev = event_new(base, box->efd, EV_READ | EV_PERSIST, inbox_cb, box);
    return box->ev != NULL && event_add(box->ev, NULL) == 0 ? 0 : -1;
}

void inboxes_detach(struct inboxes *in, size_t loop)
{
    struct inbox *box = &in->each[loop];
    if (box->ev != NULL)
        event_free(box->ev);
    box->ev = NULL;
}

void inboxes_topic_interest(struct inboxes *in, size_t loop, int delta)
{
    atomic_fetch_add_explicit(&in->each[loop].topic_interest, delta, memory_order_relaxed);
}

/* One copy to one loop; false when it was dropped (inbox full or out of memory). */
static bool forward_copy(struct inbox *box, const struct message *msg)
{
    if (atomic_load_explicit(&box->topics, memory_order_relaxed) >= INBOX_MAX_TOPICS)
        return false;
    struct inbox_item *item = item_new(INBOX_TOPIC, "", 0);
    if (item == NULL || (item->msg = message_clone(msg)) == NULL) {
        free(item);
        return false;
    }
    atomic_fetch_add_explicit(&box->topics, 1, memory_order_relaxed);
    push(box, item);
    return true;
}

bool inboxes_forward_topic(struct inboxes *in, size_t from, const struct message *msg,
                           uint64_t *dropped)
{
    bool sent = false;
    for (size_t i = 0; i < in->count; i++) {
        struct inbox *box = &in->each[i];
        /* Relaxed: a subscription made while this message is on its way may miss it, as one made
         * a moment later would. */
        if (i == from || atomic_load_explicit(&box->topic_interest, memory_order_relaxed) <= 0)
            continue;
        sent = true;
        if (!forward_copy(box, msg))
            (*dropped)++;
    }
    return sent;
}

int inboxes_forward_reply(struct inboxes *in, size_t to, const struct message *msg)
{
    struct inbox_item *item = item_new(INBOX_REPLY, "", 0);
    if (item == NULL || (item->msg = message_clone(msg)) == NULL) {
        free(item);
        return -1;
    }
    push(&in->each[to], item);
    return 0;
}

void inboxes_command(struct inboxes *in, size_t loop, enum inbox_item_kind kind)
{
    struct inbox_item *item = item_new(kind, "", 0);
    if (item == NULL) {
        log_error(0, "out of memory: loop %zu not told (item %d)", loop, (int)kind);
        return;
    }
    push(&in->each[loop], item);
}

void inboxes_kick(struct inboxes *in, size_t loop)
{
    struct inbox *box = &in->each[loop];
    if (atomic_exchange_explicit(&box->kick_pending, true, memory_order_relaxed))
        return;
    inboxes_command(in, loop, INBOX_KICK);
}

void inboxes_unblock(struct inboxes *in, size_t loop, const char *name, size_t len)
{
    struct inbox_item *item = item_new(INBOX_UNBLOCK, name, len);
    if (item == NULL) {
        log_error(0, "out of memory: publishers of loop %zu on %.*s stay paused", loop, (int)len,
                  name);
        return;
    }
    push(&in->each[loop], item);
}

int inboxes_text(struct inboxes *in, size_t loop, enum inbox_item_kind kind, const char *text,
                 size_t len)
{
    struct inbox_item *item = item_new(kind, text, len);
    if (item == NULL)
        return -1;
    push(&in->each[loop], item);
    return 0;
}
