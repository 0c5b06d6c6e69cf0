/*
 * fanout_threads.h - the fan-out backend of the event loops of one process (server.threads > 1
 * without cluster.redis): topics are copied to the other loops' inboxes, /queue/ names live in
 * the process's queue store (shared_queues.h), and a /reply-queue/ goes to the loop that owns it.
 *
 * What it must not do: touch another loop's state. It reaches other loops through their inboxes
 * and the store only; what arrives in this loop's inbox is handed back in by the wiring
 * (server/threads.c) through the *_deliver and *_take functions below, on this loop's thread.
 */
#ifndef STOMPWS_FANOUT_THREADS_H
#define STOMPWS_FANOUT_THREADS_H

#include "broker/core/broker.h"

struct shared_queues;

/* Makes b's backend: the loops' inboxes (b->inboxes) and the process's queue store (borrowed).
 * Sets b->fanout and the router's queue flags; -1 when out of memory. */
int fanout_threads_start(struct broker *b, struct shared_queues *store);

/* broker.forward_reply with several loops (with or without Redis): a /reply-queue/ named after a
 * session of another loop goes to that loop's inbox. */
int fanout_threads_forward_reply(struct broker *b, struct message *msg, const char *route,
                                 size_t len);

/* Inbox items of loop b: a topic message from another loop (to local subscribers only), a
 * message for one of its reply queues, and "take from the queue store". */
void fanout_threads_deliver_topic(struct broker *b, struct message *msg);
void fanout_threads_deliver_reply(struct broker *b, struct message *msg);
void fanout_threads_take(struct broker *b);

#endif
