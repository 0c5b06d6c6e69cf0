/*
 * inbox.h - one inbox per event loop of the process (server.threads > 1): how anything crosses
 * from one loop to another.
 *
 * An inbox is a lock-free multi-producer single-consumer list (C11 atomics) and an eventfd
 * registered in its loop's event base. Any thread pushes items; the owning loop takes them all
 * at once, in push order, and hands each to the receiver registered for it (struct inbox_ops,
 * as h2o's multithread receivers do). The inbox knows what the items are called, never what they
 * mean: the receiver, filled in by the wiring (server/threads.c), decides that.
 *
 * What it must not do: call any loop's code itself, or hand a message (or anything refcounted)
 * from one loop to another: items carry copies (message_clone) owned by the item until the
 * receiver has been called. The receiver runs on the owning loop's thread only.
 */
#ifndef STOMPWS_INBOX_H
#define STOMPWS_INBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/base/message.h"

struct event_base;
struct inboxes;

enum inbox_item_kind {
    INBOX_TOPIC,    /* msg: a topic message published on another loop (local subscribers only) */
    INBOX_REPLY,    /* msg: for one of this loop's /reply-queue/ names */
    INBOX_KICK,     /* take from the queue store (shared_queues.h) */
    INBOX_UNBLOCK,  /* name: publishers paused on this queue may go on */
    INBOX_SHUTDOWN, /* loop 0 got SIGTERM or SIGINT */
    INBOX_RELOAD,   /* loop 0 got SIGHUP */
    /* admin API (issue #15): name holds JSON text (http/admin.h) */
    INBOX_ADMIN,        /* a request of another loop */
    INBOX_ADMIN_ANSWER, /* the answer to one of this loop's requests */
};

struct inbox_item {
    struct inbox_item *next; /* owned by the inbox while queued */
    enum inbox_item_kind kind;
    struct message *msg; /* owned: a copy made for the receiving loop (TOPIC, REPLY) */
    char name[];         /* UNBLOCK: the queue's name, NUL-terminated */
};

/* The receiver of one loop's items: called on that loop's thread, once per item, in push order.
 * The item (and its msg) is freed after the call; take a reference to keep msg. */
struct inbox_ops {
    void (*receive)(void *ctx, const struct inbox_item *item);
    void *ctx;
};

/* count inboxes, each with its eventfd; NULL when out of memory or file descriptors. */
struct inboxes *inboxes_new(size_t count);
/* Frees every inbox and the items still in them; for after every loop has ended. */
void inboxes_free(struct inboxes *in);
size_t inboxes_count(const struct inboxes *in);

/* Registers loop `loop`'s receiver and watches its eventfd on base; -1 on failure. */
int inboxes_attach(struct inboxes *in, size_t loop, struct event_base *base,
                   const struct inbox_ops *ops);
/* Stops watching (before base is freed); items pushed later wait for inboxes_free(). */
void inboxes_detach(struct inboxes *in, size_t loop);

/*
 * A topic message published on loop `from`: a copy goes to every other loop whose clients follow
 * any topic (from SIZE_MAX: to every such loop, the publisher's too). Returns true when at least
 * one other loop should have had it; *dropped counts the copies not sent (inbox full or out of
 * memory).
 */
bool inboxes_forward_topic(struct inboxes *in, size_t from, const struct message *msg,
                           uint64_t *dropped);
/* Loop `loop`'s clients started (delta 1) or stopped (-1) following a topic name or pattern. */
void inboxes_topic_interest(struct inboxes *in, size_t loop, int delta);
/* A copy of msg for loop `to`'s /reply-queue/; 0, or -1 when out of memory. */
int inboxes_forward_reply(struct inboxes *in, size_t to, const struct message *msg);
/* Loop `loop` should take from the queue store; at most one kick waits in an inbox at a time. */
void inboxes_kick(struct inboxes *in, size_t loop);
/* Publishers of loop `loop` paused on the full queue `name` may go on. */
void inboxes_unblock(struct inboxes *in, size_t loop, const char *name, size_t len);
/* An item without payload (INBOX_SHUTDOWN, INBOX_RELOAD) for loop `loop`. */
void inboxes_command(struct inboxes *in, size_t loop, enum inbox_item_kind kind);

/* An item carrying text (len bytes, NUL added) for loop `loop`: 0, or -1 when out of memory.
 * For the admin API's requests and answers (INBOX_ADMIN, INBOX_ADMIN_ANSWER). */
int inboxes_text(struct inboxes *in, size_t loop, enum inbox_item_kind kind, const char *text,
                 size_t len);

#endif
