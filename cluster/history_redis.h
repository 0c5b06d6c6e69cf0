/*
 * history_redis.h - the history of /topic/ destinations with a policy, kept in Redis for the
 * whole cluster (the fan-out backend's fanout_ops.retain and fanout_ops.replay).
 *
 * Each destination D with a policy has, under the node's prefix P, the keys P:{D}:stream (a
 * Stream: one entry per message, fields o = offset, t = publish time in ms, m = the payload as
 * the bridge publishes it), P:{D}:seq (the last offset given) and P:{D}:epoch (8 hex digits);
 * the braces make the three one hash slot. P:history is a SET of the destinations that have
 * history (wildcard replays read it: never KEYS). A Lua script (RETAIN_SCRIPT in the .c) gives
 * the offset, appends, trims by SIZE and TTL and PUBLISHes on the bridge's channel in one step,
 * so two nodes publishing at once cannot interleave offsets; when the stream is missing (first
 * publish, FLUSHALL, a Redis that lost its data) it starts a new epoch at offset 1.
 *
 * A retained message reaches this node's subscribers as it reaches the others': through the
 * bridge's subscribe link, so every node sees a destination in offset order. When Redis is down
 * (or the script fails), the message is delivered here at once, without offset, and not kept.
 * A publisher that reports the offset (the HTTP API) hears it when the script answers: the
 * script's {offset, epoch} is written into its message (struct offset_waiter).
 *
 * A replay reads the stream on the bridge's publish link (a read-only script: epoch, last
 * offset, entries) and answers through publish_replay_done(); meanwhile the subscription holds
 * its live messages (subscription.held). Redis down: the answer is an empty replay, recovered
 * false, on the next loop turn.
 *
 * What it must not do: block the loop, or tell a subscription that went away (forget_replay).
 */
#ifndef STOMPWS_HISTORY_REDIS_H
#define STOMPWS_HISTORY_REDIS_H

/* The layers' rule, enforced by the build: broker/ is compiled with STOMPWS_BROKER_LAYER. */
#ifdef STOMPWS_BROKER_LAYER
#error "a broker/ file includes a header of cluster/ or server/, the layers above it"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/core/broker.h"
#include "broker/core/history.h"
#include "broker/core/publish.h"
#include "cluster/bridge.h"

struct history_redis;

struct history_redis_stats {
    uint64_t retained;     /* messages Redis numbered and kept */
    uint64_t not_retained; /* delivered here without offset: Redis down or the script failed */
    uint64_t replays;      /* replays answered */
    uint64_t replays_lost; /* of those, answered recovered:false because Redis was unreachable */
};

/* Uses the bridge's publish link (borrowed: the bridge outlives it). NULL when out of memory. */
struct history_redis *history_redis_new(struct broker *b, struct bridge *bridge,
                                        const struct bridge_config *cfg);
/* Call before the bridge is freed: pending commands then find it gone. */
void history_redis_detach(struct history_redis *hr);
void history_redis_free(struct history_redis *hr);

/* fanout_ops.retain, fanout_ops.replay and fanout_ops.forget_replay. */
int history_redis_retain(struct history_redis *hr, struct message *msg,
                         const struct history_policy *p, struct offset_waiter *w);
int history_redis_replay(struct history_redis *hr, struct subscription *sub, const char *name,
                         size_t len, bool wildcard, const struct history_request *req,
                         const char *receipt, size_t receipt_len);
void history_redis_forget(struct history_redis *hr, struct subscription *sub);

/* bridge_ops.confirmed: replays waiting for their interest to be in Redis may read now. */
void history_redis_confirmed(struct history_redis *hr);

const struct history_redis_stats *history_redis_stats(const struct history_redis *hr);

#endif
