/*
 * threads.h - several event loops in one process (server.threads > 1), one per thread.
 *
 * Each loop is a whole struct broker (loop.h): its own event base, listeners (every loop binds
 * the same ports with SO_REUSEPORT and the kernel spreads new connections over them),
 * connections, sessions, router, security, API state and, with cluster.redis, its own cluster
 * node. A connection and everything it references belong to the loop that accepted it; nothing
 * of one loop is ever touched by another. What crosses loops goes through three doors only:
 *
 *   inboxes  one per loop (broker/threads/inbox.h): topic copies, reply-queue messages, "take
 *            from the queue store", "publishers on queue X may go on", shutdown, reload. This
 *            file registers each loop's receiver and decides what each item means.
 *   queues   the in-process queue store (broker/threads/shared_queues.h): one logical /queue/
 *            across loops, under its own mutex. Only queue operations take it.
 *   figures  each loop's /metrics figures, published under a mutex on its 250 ms lag tick
 *            (broker/http/metrics.h), so any loop can answer /metrics and /readyz for all.
 *
 * Loop 0 runs in the main thread and alone handles signals; loops 1..N-1 run in threads that
 * block SIGINT, SIGTERM and SIGHUP. With server.threads = 1 none of this exists: main.c runs one
 * broker (no thread, no inbox, no atomics on the delivery path).
 */
#ifndef STOMPWS_THREADS_H
#define STOMPWS_THREADS_H

/* The layers' rule, enforced by the build: broker/ is compiled with STOMPWS_BROKER_LAYER. */
#ifdef STOMPWS_BROKER_LAYER
#error "a broker/ file includes a header of cluster/ or server/, the layers above it"
#endif

#include <stdbool.h>
#include <stddef.h>

#include "broker/base/config.h"

/*
 * Runs server.threads (> 1) loops on cfg until they have all shut down; returns the worst of
 * their exit codes (1 when one of them could not start). Loop 0 binds first and prints the
 * "listening KIND HOST:PORT" lines; the others bind the ports it got.
 */
int loops_main(const struct config *cfg);

#endif
