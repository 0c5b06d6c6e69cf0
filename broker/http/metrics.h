/*
 * metrics.h - /metrics (Prometheus text format) and /readyz for the whole process.
 *
 * Each event loop's figures are taken from its own state; with server.threads > 1 every loop
 * publishes them on its lag tick to a board shared under a mutex, and the loop answering a
 * request adds them up (other loops' figures are at most one tick, 250 ms, old). The fan-out
 * backend's figures come as a table it describes itself (core/fanout.h), so this file prints the
 * cluster's metrics without knowing the cluster.
 *
 * What it must not do: touch another loop's state, or name a backend.
 */
#ifndef STOMPWS_METRICS_H
#define STOMPWS_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/core/broker.h"

struct conn;
struct shared_queues;

/* The figures of one event loop that /metrics and /readyz show. */
struct metrics_figures {
    uint64_t queues;      /* local queues (not those of the queue store: counted once, apart) */
    uint64_t queue_depth; /* messages waiting in them */
    struct broker_stats stats;
    struct delivery_stats router;
    const struct fanout_ops *fanout; /* static: the backend whose figures these are, or NULL */
    struct fanout_figures fanout_figures;
    uint64_t lag_last_us, lag_sum_us, lag_count;
    uint64_t lag_buckets[BROKER_LAG_BUCKETS + 1];
    const char *not_ready; /* static text: why /readyz says 503; NULL when ready */
};

/* Takes b's figures now: its gauges and counters, and a walk of its queues (never of its
 * connections: a scrape costs the same however many there are). */
void metrics_collect(const struct broker *b, struct metrics_figures *f);

/* The loops' figures board (threads > 1): `loops` slots, and the process's queue store (NULL
 * when there is none), whose figures are added once. NULL when out of memory. */
struct metrics_board *metrics_board_new(size_t loops, struct shared_queues *store);
void metrics_board_free(struct metrics_board *board);
/* Loop `loop` publishes its figures for the others' /metrics and /readyz. */
void metrics_board_publish(struct metrics_board *board, size_t loop,
                           const struct metrics_figures *f);

/* GET /metrics on c (closes c). */
void metrics_serve(struct conn *c);
/* NULL when the process is ready; otherwise why not. */
const char *metrics_not_ready(const struct broker *b);
/* Appends every loop's fan-out detail lines (fanout_figures.detail) to out, for /readyz. */
struct evbuffer;
void metrics_ready_detail(const struct broker *b, struct evbuffer *out);

#endif
