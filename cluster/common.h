/*
 * common.h - small helpers the cluster modules (bridge.c, streams.c) share. No I/O, no
 * dependencies beyond libc.
 */
#ifndef STOMPWS_CLUSTER_COMMON_H
#define STOMPWS_CLUSTER_COMMON_H

/* The layers' rule, enforced by the build: broker/ is compiled with STOMPWS_BROKER_LAYER. */
#ifdef STOMPWS_BROKER_LAYER
#error "a broker/ file includes a header of cluster/ or server/, the layers above it"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_WARN_INTERVAL_MS 10000 /* at most one warn line per kind per 10 s */

/* Monotonic microseconds, and milliseconds. */
uint64_t cluster_now_us(void);
uint64_t cluster_now_ms(void);
/* Wall-clock milliseconds since the epoch: for times other nodes read (the nodes' clocks are
 * assumed in step, as NTP keeps them). */
uint64_t cluster_now_realtime_ms(void);

/* True at most once per CLUSTER_WARN_INTERVAL_MS for the given clock: keeps floods out of the
 * log. */
bool cluster_warn_due(uint64_t *last);

struct event;

/* Arms the one-shot timer ev to fire in ms milliseconds. */
void cluster_timer_after(struct event *ev, unsigned ms);

/*
 * Capped exponential backoff with "equal jitter": the nth wait (attempt = n) is uniform in
 * [d/2, d] with d = min(max_ms, min_ms * 2^n). Half the delay is guaranteed (no reconnect storm
 * against a server that just came back), the other half spreads many nodes apart.
 */
unsigned cluster_backoff_ms(unsigned min_ms, unsigned max_ms, unsigned attempt);

/* Grows *buf (realloc, doubling from 4 KiB) to hold at least need bytes; -1 when out of memory. */
int cluster_grow(char **buf, size_t *cap, size_t need);

#endif
