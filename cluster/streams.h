/*
 * streams.h - queues across broker nodes through Redis Streams.
 *
 * What it is for: a /queue/ destination is one logical queue for the whole cluster. Its messages
 * live in the Redis stream `<prefix>:<destination>`, read through one consumer group (named
 * after the prefix) in which each node is a consumer named by its node id:
 *
 *   SEND     -> XADD key * m <envelope>           (the publisher's RECEIPT waits for the reply)
 *   consume  -> XREADGROUP GROUP g node ... >     (only while local consumers have room)
 *   ACK      -> XACK key g id + XDEL key id       (auto-ack: when written to the consumer)
 *   hold     -> XCLAIM key g node 0 ids JUSTID    (every visibility/3: "still mine")
 *   release  -> XCLAIM ... IDLE visibility JUSTID (last local consumer left: anyone may take it)
 *   find     -> XPENDING key g IDLE visibility - + 256  (every min(visibility/4, 1 s))
 *   take over-> XCLAIM key g node visibility ids     (entries a dead node held, or released ones)
 *
 * Each entry is delivered to one node at a time; it stays in that node's pending list until
 * acked, so a node that dies (SIGKILL) leaves its entries to be claimed by another node after
 * the visibility timeout, delivered again with redelivered:true. That is at-least-once: a node
 * cut off from Redis longer than the visibility timeout can see its messages taken over while its
 * consumers still hold them. docs/CLUSTER.md states the guarantee and its limits.
 *
 * Entries to take over go before new ones: while a queue has some, its consumers' room goes to
 * XCLAIM and nothing new is read for it, so a stream that always has new entries does not hold
 * a dead node's back past the visibility timeout plus one claim period.
 *
 * Appends, acks and releases are kept in order in a bounded local buffer until Redis confirms
 * them, and sent again after a reconnect: queue messages published while Redis is down wait on
 * the publishing node (their receipts wait too) instead of being lost.
 *
 * What it must not do: block the loop (the blocking XREADGROUP has its own connection), touch the
 * router or a connection (the broker does, through ops), or hold a message after ops.deliver.
 */
#ifndef STOMPWS_STREAMS_H
#define STOMPWS_STREAMS_H

/* The layers' rule, enforced by the build: broker/ is compiled with STOMPWS_BROKER_LAYER. */
#ifdef STOMPWS_BROKER_LAYER
#error "a broker/ file includes a header of cluster/ or server/, the layers above it"
#endif

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/base/message.h"
#include "cluster/bridge.h"

#define STREAMS_DEFAULT_VISIBILITY_MS 30000
#define STREAMS_DEFAULT_BUFFER_BYTES  (64u * 1024 * 1024)

struct streams_ops {
    void *ctx;
    /*
     * A message this node took from a queue's stream (msg->stream_id set; redelivered when it was
     * taken over from another node or released). The module unrefs msg after the call; the
     * broker takes its own reference, or calls streams_release() when it cannot keep it.
     */
    void (*deliver)(void *ctx, struct message *msg, bool redelivered);
    /* How many more messages of queue `name` the local consumers can take now (0: none). */
    size_t (*capacity)(void *ctx, const char *name, size_t len);
    /* The append made for `waiter` was stored in Redis (error == NULL) or refused (why). */
    void (*appended)(void *ctx, void *waiter, const char *error);
};

struct streams;

/*
 * Starts the queue links of a node (cfg: the bridge's settings with node_id filled in). Returns
 * NULL when out of memory. visibility_ms: how long an entry a node holds without renewing it
 * stays its own; buffer_bytes: appends kept while Redis does not confirm them.
 */
struct streams *streams_new(struct event_base *base, const struct bridge_config *cfg,
                            unsigned visibility_ms, size_t buffer_bytes,
                            const struct streams_ops *ops);
/* Frees everything; unconfirmed appends still buffered are lost (counted in the log). */
void streams_free(struct streams *s);

/*
 * Appends msg to its queue's stream. waiter (may be NULL) is handed back to ops.appended once
 * Redis answers. Returns 0, or -1 when the buffer is full (cluster.queue_buffer_bytes) or out of
 * memory: the message was not accepted.
 */
int streams_append(struct streams *s, const struct message *msg, void *waiter);
/* The waiter is going away: its appends stay, their confirmations are no longer reported. */
void streams_forget(struct streams *s, const void *waiter);

/* Local consumers of queue `name` appeared (true) or all left (false). */
void streams_follow(struct streams *s, const char *name, size_t len, bool follow);
/* msg (from ops.deliver) was acked or delivered to an auto-ack consumer: remove it. */
void streams_ack(struct streams *s, const struct message *msg);
/* msg (from ops.deliver) will not be consumed here: any node may take it now. */
void streams_release(struct streams *s, const struct message *msg);
/* Local consumers have room again: read more (at most once per loop turn). */
void streams_kick(struct streams *s);

/* Both queue links are up. */
bool streams_link_up(const struct streams *s);
/* Nothing is waiting for Redis: every append, ack and release was confirmed. */
bool streams_flushed(const struct streams *s);

struct streams_stats {
    uint64_t appended;       /* XADDs Redis confirmed */
    uint64_t append_errors;  /* XADDs Redis refused (reported to the publisher) */
    uint64_t buffer_full;    /* appends refused because the buffer was full */
    uint64_t resent;         /* commands sent again after a lost link */
    uint64_t read;           /* entries taken with XREADGROUP */
    uint64_t claimed;        /* entries taken over with XCLAIM (redelivered) */
    uint64_t acked;          /* entries acked (XACK + XDEL) */
    uint64_t released;       /* entries handed back for other nodes */
    uint64_t decode_errors;  /* entries dropped (acked) because they could not be decoded */
    uint64_t buffered_bytes; /* gauge: bytes of commands not yet confirmed */
    uint64_t held;           /* gauge: entries this node holds (waiting or unacked) */
    /* sentinel: cluster.min_replicas_ack */
    uint64_t wait_timeouts; /* WAITs answered with fewer replicas than asked */
    uint64_t unreplicated;  /* queue SENDs answered with an ERROR because of those */
};
const struct streams_stats *streams_stats(const struct streams *s);

#endif
