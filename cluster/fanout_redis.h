/*
 * fanout_redis.h - the fan-out backend of a cluster node (cluster.redis): topics through Redis
 * pub/sub (bridge.h), /queue/ names through Redis Streams (streams.h).
 *
 * It implements broker/core/fanout.h and hands what arrives from Redis back down through the
 * router and the queues; sessions hear of their stored messages through delivery_ops.publish_done.
 * What it must not do: be named by anything under broker/: the wiring (server/) starts it.
 */
#ifndef STOMPWS_FANOUT_REDIS_H
#define STOMPWS_FANOUT_REDIS_H

/* The layers' rule, enforced by the build: broker/ is compiled with STOMPWS_BROKER_LAYER. */
#ifdef STOMPWS_BROKER_LAYER
#error "a broker/ file includes a header of cluster/ or server/, the layers above it"
#endif

#include <stddef.h>

#include "broker/core/broker.h"

/*
 * Joins the cluster when b->cfg.cluster_redis is set (and sets b->fanout); does nothing
 * otherwise. Returns 0, or -1 when the settings are unusable or out of memory (logged).
 */
int fanout_redis_start(struct broker *b);

/* --check-config: cluster.redis parses. 0, or -1 with the reason in err. */
int fanout_redis_check_config(const struct config *cfg, char *err, size_t err_len);

#endif
