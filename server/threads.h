/*
 * loops.h - several event loops in one process (server.threads > 1), one per thread.
 *
 * Each loop is a whole struct broker: its own event base, listeners (every loop binds the same
 * ports with SO_REUSEPORT and the kernel spreads new connections over them), connections,
 * sessions, router, security, API state and, with cluster.redis, its own cluster node. A
 * connection and everything it references belong to the loop that accepted it; nothing of one
 * loop is ever touched by another. What crosses loops goes through three doors only:
 *
 *   inbox    one per loop: a lock-free multi-producer single-consumer list (C11 atomics) and an
 *            eventfd registered in the loop's base. Items: a copy of a topic message published
 *            on another loop, a message for a /reply-queue/ this loop owns, "queues changed"
 *            (take from the queue store), "publishers on queue X may go on", shutdown, reload.
 *   queues   the in-process queue store (shared_queues.h): one logical /queue/ across loops,
 *            under its own mutex. Only queue operations take it, never topic deliveries.
 *   figures  each loop's /metrics figures, published under a mutex on its 250 ms lag tick, so
 *            any loop can answer /metrics and /readyz for the whole process.
 *
 * Loop 0 runs in the main thread and alone handles signals; loops 1..N-1 run in threads that
 * block SIGINT, SIGTERM and SIGHUP. With server.threads = 1 none of this exists: main.c runs one
 * broker exactly as before (no thread, no inbox, no atomics on the delivery path).
 *
 * What it must not do: hand a message (or anything refcounted) from one loop to another: items
 * carry copies (message_clone) owned by the item until the receiving loop takes them.
 */
#ifndef STOMPWS_LOOPS_H
#define STOMPWS_LOOPS_H

#include <stdbool.h>
#include <stddef.h>

#include "broker/base/config.h"
#include "broker/base/message.h"

struct loops;
struct http_figures;

/*
 * Runs server.threads (> 1) loops on cfg until they have all shut down; returns the worst of
 * their exit codes (1 when one of them could not start). Loop 0 binds first and prints the
 * "listening KIND HOST:PORT" lines; the others bind the ports it got.
 */
int loops_main(const struct config *cfg);

/* How many loops the group runs. */
size_t loops_count(const struct loops *g);

/*
 * A topic message published on loop `from`: a copy goes to the inbox of every other loop whose
 * clients follow any topic (they deliver it to their own subscribers and never forward it
 * again). Returns true when at least one other loop was sent a copy.
 */
bool loops_forward_topic(struct loops *g, size_t from, const struct message *msg);

/* Loop `loop`'s clients started (delta 1) or stopped (-1) following a topic name or pattern. */
void loops_topic_interest(struct loops *g, size_t loop, int delta);

/*
 * A message for a /reply-queue/ owned by loop `to` (named after one of its sessions): a copy goes
 * to its inbox. Returns 0, or -1 when out of memory.
 */
int loops_forward_reply(struct loops *g, size_t to, const struct message *msg);

/* Loop `loop` should take from the queue store: entries were appended or released, or its
 * consumers have room. At most one kick waits in an inbox at a time. */
void loops_kick(struct loops *g, size_t loop);

/* Publishers of loop `loop` paused on the full queue `name` may go on (it drained). */
void loops_unblock(struct loops *g, size_t loop, const char *name, size_t len);

/* SIGTERM/SIGINT and SIGHUP reach loop 0: it passes them on to the others. */
void loops_shutdown_others(struct loops *g);
void loops_reload_others(struct loops *g);

/* The queue store, NULL when the loops are cluster nodes (cluster.redis set). */
struct shared_queues *loops_queues(struct loops *g);

/* Loop `loop` publishes its figures for the others' /metrics and /readyz. */
void loops_publish_figures(struct loops *g, size_t loop, const struct http_figures *f);
/* Fills each[i] for every loop: `own` (fresh) for loop `self`, the latest published figures of
 * the others (at most one lag tick old). each has loops_count() slots. */
void loops_collect_figures(struct loops *g, size_t self, const struct http_figures *own,
                           struct http_figures *each);

#endif
