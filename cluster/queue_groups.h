/*
 * queue_groups.h - the /queue/ streams of a node, grouped by the shard they live on.
 *
 * What it is for: streams.c reads every queue it follows with one blocking XREADGROUP, which in
 * a Redis Cluster must name keys of one slot only. So in cluster mode queues are grouped by hash
 * tag: `/queue/{eu}.orders` belongs to group "eu", a queue without a tag to the default group
 * "q", and each group is a streams object of its own whose keys are `<prefix>:{<tag>}:<name>`
 * (one slot, so one shard: the shard of the tag) and whose links follow that slot's master.
 * Groups are made on first use. With one Redis (or Sentinel) there is one group, keys stay
 * `<prefix>:<name>`, and this is a thin pass-through.
 *
 * What it must not do: know about sessions or the router (streams_ops reaches them), or free a
 * group while the node runs (a group lives as long as the node: tags are few by design).
 */
#ifndef STOMPWS_QUEUE_GROUPS_H
#define STOMPWS_QUEUE_GROUPS_H

#ifdef STOMPWS_BROKER_LAYER
#error "a broker/ file includes a header of cluster/ or server/, the layers above it"
#endif

#include <stdbool.h>
#include <stddef.h>

#include "cluster/streams.h"

#define QUEUE_GROUP_DEFAULT_TAG "q"  /* the group of queues whose name has no hash tag */
#define QUEUE_GROUPS_MAX        1024 /* distinct tags; the default group takes the others */

struct queue_groups;

/* cfg, ops: as streams_new (copied). NULL when out of memory or the first group fails. */
struct queue_groups *queue_groups_new(struct event_base *base, const struct bridge_config *cfg,
                                      unsigned visibility_ms, size_t buffer_bytes,
                                      const struct streams_ops *ops);
void queue_groups_free(struct queue_groups *g);

/* The streams of queue name's group, made now if it is the first of its tag. NULL when out of
 * memory. */
struct streams *queue_groups_of(struct queue_groups *g, const char *name, size_t len);

void queue_groups_kick(struct queue_groups *g);
void queue_groups_forget(struct queue_groups *g, const void *waiter);
/* Every group's links are up. */
bool queue_groups_link_up(const struct queue_groups *g);
/* Every group confirmed everything it holds (or cannot: its link is down). */
bool queue_groups_flushed(const struct queue_groups *g);
/* The sum of every group's figures. */
void queue_groups_stats(const struct queue_groups *g, struct streams_stats *out);
size_t queue_groups_count(const struct queue_groups *g);

#endif
