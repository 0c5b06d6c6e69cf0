/*
 * shard_sub.h - sharded pub/sub (SSUBSCRIBE, Redis 7) across the masters of a Redis Cluster.
 *
 * What it is for: in cluster mode each topic channel lives on the shard of its hash slot, and a
 * node that has local subscribers for it must SSUBSCRIBE on that shard's master. This object
 * keeps one subscriber connection per master that carries channels (made lazily, when the first
 * channel of that master is added; closed when its last one goes), subscribes every channel on
 * the master its slot belongs to, and hands each `smessage` to its owner.
 *
 * hiredis 0.14.1's async API cannot carry these: it knows SUBSCRIBE and PSUBSCRIBE only, and an
 * `smessage` push with no pending callback trips an assertion in redisProcessCallbacks. So each
 * connection here is a libevent bufferevent of its own with hiredis' reply parser (redisReader)
 * on the bytes it reads; nothing else of hiredis.
 *
 * It follows the cluster: a MOVED reply to an SSUBSCRIBE, or an `sunsubscribe` Redis sends
 * unasked (the slot was migrated away, or the node became a replica), marks the map stale
 * (ops.stale); once the owner has a new map it calls shard_sub_remap() and every channel whose
 * slot now has another master is unsubscribed from the old one and subscribed on the new one. A
 * lost connection reconnects with capped exponential backoff and subscribes its channels again.
 *
 * What it must not do: block the loop (addresses are IP literals from the slot map, connects are
 * bounded by connect_timeout_ms), know about STOMP or the envelope, or call its owner back from
 * inside shard_sub_add / shard_sub_remove / shard_sub_remap / shard_sub_free.
 */
#ifndef STOMPWS_SHARD_SUB_H
#define STOMPWS_SHARD_SUB_H

/* The layers' rule, enforced by the build: broker/ is compiled with STOMPWS_BROKER_LAYER. */
#ifdef STOMPWS_BROKER_LAYER
#error "a broker/ file includes a header of cluster/ or server/, the layers above it"
#endif

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/slots.h"

/* Strings are borrowed and must outlive the object. */
struct shard_sub_config {
    const char *username; /* "" = AUTH password alone */
    const char *password; /* "" = no AUTH */
    unsigned connect_timeout_ms;                 /* TCP connect + AUTH; 0 = 5000 */
    unsigned reconnect_min_ms, reconnect_max_ms; /* backoff bounds (0 = 100 and 5000) */
};

struct shard_sub_ops {
    void *ctx;
    /* Where slot's master is now. false: the map does not know (the channel waits for a remap). */
    bool (*locate)(void *ctx, uint16_t slot, struct slots_node *out);
    /* The map looks stale: ask the cluster again, then call shard_sub_remap(). */
    void (*stale)(void *ctx);
    /* An smessage: payload of len bytes on channel. Borrowed for the call only. */
    void (*message)(void *ctx, const char *channel, size_t channel_len, const char *payload,
                    size_t len);
    /* Optional: Redis confirmed the SSUBSCRIBE of channel (messages published from now on come). */
    void (*subscribed)(void *ctx, const char *channel, size_t channel_len);
};

struct shard_sub_stats {
    uint64_t moved;       /* MOVED replies to SSUBSCRIBE */
    uint64_t unasked;     /* sunsubscribe pushes this object did not ask for */
    uint64_t reconnects;  /* connections made again after a loss or a failed attempt */
    uint64_t messages;    /* smessages handed to ops.message */
    size_t connections;   /* connections that exist (one per master carrying channels) */
    size_t connections_up;
    size_t channels;      /* channels added and not removed */
    size_t confirmed;     /* of those, the ones Redis confirmed on their current master */
};

struct shard_sub;

/* NULL when out of memory. Connects nothing until a channel is added. */
struct shard_sub *shard_sub_new(struct event_base *base, const struct shard_sub_config *cfg,
                                const struct shard_sub_ops *ops);
void shard_sub_free(struct shard_sub *s);

/* Follow channel (len bytes, any bytes): SSUBSCRIBE it on its slot's master (batched per slot at
 * the end of the loop turn: SSUBSCRIBE with several channels needs them in one slot). Adding a
 * channel already followed does nothing. Returns 0, or -1 when out of memory. */
int shard_sub_add(struct shard_sub *s, const char *channel, size_t len);
/* Stop following channel (SUNSUBSCRIBE); unknown channels are ignored. */
void shard_sub_remove(struct shard_sub *s, const char *channel, size_t len);
/* The slot map changed: move every channel whose master changed. */
void shard_sub_remap(struct shard_sub *s);
/* channel is followed and its SSUBSCRIBE was confirmed by its current master. */
bool shard_sub_confirmed(const struct shard_sub *s, const char *channel, size_t len);
void shard_sub_stats(const struct shard_sub *s, struct shard_sub_stats *out);

/* Per connection, for /readyz and /metrics: calls fn once per master connection. */
void shard_sub_each_node(const struct shard_sub *s,
                         void (*fn)(void *arg, const struct slots_node *node, bool up,
                                    size_t channels),
                         void *arg);

#endif
