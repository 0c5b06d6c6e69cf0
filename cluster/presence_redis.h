/*
 * presence_redis.h - presence across the nodes of a cluster (docs/PRESENCE.md, "Across nodes").
 *
 * Each node tells Redis its own edges (a user's first subscription to a tracked name on this
 * process, or its last one): per name a hash `<prefix>:presence:NAME` of user -> number of nodes
 * where the user is present, changed by a script that also PUBLISHes the cluster's join or leave
 * on the bridge's channel for /presence/topic/NAME when the number leaves or reaches 0. So a user
 * on two nodes joins once, and every node sees the events in the order Redis ran the scripts.
 * Each process lists what it added in `<prefix>:presence-node:ID` (ID: presence_process_id(), one
 * for all the loops of the process, new at each start) and keeps its entry in the sorted set
 * `<prefix>:presence-nodes` (ID -> expiry) up to date every presence.ttl_s / 3; the script that
 * refreshes it also takes the expired entries out and undoes those processes' contributions,
 * publishing their leaves: a node that dies is forgotten within presence.ttl_s.
 *
 * Snapshots and GET /api/presence read the hash (answered through fanout_ops.presence_query).
 * Event numbers come from `<prefix>:presence-seq`, shown as x-stream-offset (epoch 1).
 *
 * What it must not do: touch a session, or block. Edges sent while Redis is down are lost (the
 * node's table stays right; the cluster's catches up only as users come and go).
 */
#ifndef STOMPWS_PRESENCE_REDIS_H
#define STOMPWS_PRESENCE_REDIS_H

#ifdef STOMPWS_BROKER_LAYER
#error "a broker/ file includes a header of cluster/ or server/, the layers above it"
#endif

#include <stdbool.h>
#include <stddef.h>

#include "broker/core/broker.h"
#include "cluster/bridge.h"

struct presence_redis;
struct presence_waiter;

/* Uses the bridge's command link; NULL when out of memory. */
struct presence_redis *presence_redis_new(struct broker *b, struct bridge *bridge,
                                          const struct bridge_config *cfg);
/* Call before the bridge is freed: pending commands then find it gone. */
void presence_redis_detach(struct presence_redis *pr);
void presence_redis_free(struct presence_redis *pr);

/* fanout_ops.presence_edge, presence_query and presence_forget. */
void presence_redis_edge(struct presence_redis *pr, const char *dest, size_t len, const char *user,
                         bool joined);
int presence_redis_query(struct presence_redis *pr, const char *dest, size_t len, size_t max,
                         bool follow, struct presence_waiter *w);
void presence_redis_forget(struct presence_redis *pr, struct presence_waiter *w);
/* At shutdown: have the edges sent (the leaves of the sessions that closed) been run, or is the
 * link down (nothing more will be)? True for NULL (presence off). */
bool presence_redis_flushed(const struct presence_redis *pr);
/* Redis confirmed some interest: snapshots waiting for theirs may be read. */
void presence_redis_confirmed(struct presence_redis *pr);

#endif
