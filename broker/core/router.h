/*
 * router.h - the destination registry: who is subscribed to what, and where a message goes.
 *
 * Topics (/topic/...): every matching subscription gets a copy; exact names live in a hash table,
 * subscriptions with wildcards (`*` one dot-separated segment, `#` zero or more, as RabbitMQ's
 * topic exchange) in a trie of segments. Queues (/queue/..., and the /reply-queue/... behind
 * temporary queues): see queue.h; the router holds them in a struct queues. The router never
 * touches a connection: it hands each delivery to the delivery_ops the wiring registered, so it is
 * unit-tested without sockets.
 */
#ifndef STOMPWS_ROUTER_H
#define STOMPWS_ROUTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/base/dict.h"
#include "broker/core/destination.h"
#include "broker/core/queue.h"
#include "broker/core/subscription.h"

struct trie_node;

struct router {
    struct delivery_ops ops;
    struct dict topics;          /* owned: exact destination -> struct topic */
    struct trie_node *wildcards; /* owned: root of the wildcard trie, NULL when empty */
    struct queues queues;        /* owned: every queue, and their settings (queue.h) */
    uint64_t publish_gen;
    struct delivery_stats stats;
};

void router_init(struct router *r, const struct delivery_ops *ops, size_t queue_max_messages);
/* Frees every topic, trie node and queue (with their waiting messages). Subscriptions are the
 * sessions' and must have been unsubscribed already. */
void router_reset(struct router *r);

/* Subscribes sub to `name` (a /topic/ pattern or a resolved queue name). */
int router_subscribe(struct router *r, struct subscription *sub, const char *name, size_t len);
/* Subscribes sub to an exact name outside /topic/ and /user/ (presence: /presence/topic/NAME),
 * which only router_publish_topic() and router_publish_exact() reach. */
int router_subscribe_exact(struct router *r, struct subscription *sub, const char *name,
                           size_t len);
/* Removes sub; its unacked queue messages go back to the queue, marked redelivered. */
void router_unsubscribe(struct router *r, struct subscription *sub);

/*
 * Routes msg to `name` (a /topic/ name or a resolved queue name). create_queue false: a queue that
 * does not exist is an error (ROUTER_ERR_NO_QUEUE) instead of being created. The router takes its
 * own references; the caller keeps its own.
 */
int router_publish(struct router *r, struct message *msg, const char *name, size_t len,
                   bool create_queue);

/*
 * Deliveries of a message that arrived from another node: to the exact subscribers of
 * msg->destination only, or to the subscribers of one normalized wildcard pattern (those whose
 * pattern really matches msg->destination). Splitting them this way means a node subscribed both
 * ways in Redis never delivers a message twice. Returns the number of deliveries attempted.
 */
size_t router_publish_exact(struct router *r, struct message *msg);

/*
 * Deliveries of a topic message to every local subscription of `name` (exact and wildcard, one
 * copy each), without counting it as published or unroutable: the caller counts, as it knows
 * whether other event loops of the process were handed the message too. Returns the number of
 * deliveries attempted.
 */
size_t router_publish_topic(struct router *r, struct message *msg, const char *name, size_t len);
size_t router_publish_pattern(struct router *r, struct message *msg, const char *pattern,
                              size_t pattern_len);

/* Queues whose consumers became writable again (their connection drained). */
void router_resume(struct router *r, struct subscription *sub);

#endif
