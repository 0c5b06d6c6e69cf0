/*
 * cluster_map.h - which master serves each hash slot of a Redis Cluster, for the links of a loop.
 *
 * What it is for: in cluster mode (cluster.redis_cluster) no link has a fixed address. This object
 * asks one node at a time (the seeds, then the masters it learnt) CLUSTER SLOTS, keeps the last
 * answer, asks again every refresh_ms and whenever a link reports a redirection or a lost node,
 * and tells its watchers when the map changed. The routers of redis.c and the sharded subscriber
 * (shard_sub.h) place every command and channel by it. It also keeps the counts /metrics and
 * /readyz show: refreshes, changes, MOVED and ASK seen, masters that went away (failovers).
 *
 * What it must not do: block the loop (its connection is a redis_link, every question is bounded
 * by timeout_ms), free a link inside that link's callbacks (a finished connection is freed from an
 * event of its own), or call a watcher from inside cluster_map_refresh() or cluster_map_note_*().
 */
#ifndef STOMPWS_CLUSTER_MAP_H
#define STOMPWS_CLUSTER_MAP_H

/* The layers' rule, enforced by the build: broker/ is compiled with STOMPWS_BROKER_LAYER. */
#ifdef STOMPWS_BROKER_LAYER
#error "a broker/ file includes a header of cluster/ or server/, the layers above it"
#endif

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster/sentinel.h"
#include "cluster/slots.h"

struct cluster_map_config {
    struct sentinel_addr seeds[SENTINEL_MAX_ADDRS]; /* cluster.redis_cluster, tried in order */
    size_t seed_count;
    char username[256]; /* AUTH for every node: the --redis URL's credentials ("" = none) */
    char password[256];
    unsigned refresh_ms;                         /* ask again this often; 0 = 5000 */
    unsigned timeout_ms;                         /* connect + answer, per node; 0 = 2000 */
    unsigned reconnect_min_ms, reconnect_max_ms; /* the links' backoff bounds */
};

struct cluster_map_stats {
    uint64_t refreshes; /* CLUSTER SLOTS answers taken */
    uint64_t changes;   /* ... that changed the map */
    uint64_t moved;     /* MOVED replies the links saw */
    uint64_t ask;       /* ASK replies the links followed */
    uint64_t failovers; /* changes in which a master of the old map serves no slot any more */
    uint64_t errors;    /* questions that failed (node down, error reply, malformed answer) */
};

/*
 * Parses cluster.redis_cluster ("HOST:PORT[,HOST:PORT...]") and the credentials of cluster.redis
 * (when set) into out. Returns 0, or -1 with a message in err.
 */
struct config;
int cluster_map_settings(const struct config *cfg, struct cluster_map_config *out, char *err,
                         size_t err_len);

struct cluster_map;

/* Starts asking at once. NULL when out of memory. */
struct cluster_map *cluster_map_new(struct event_base *base, const struct cluster_map_config *cfg);
/* After every watcher is gone. */
void cluster_map_free(struct cluster_map *m);

/* The map as last learnt, or NULL before the first answer. Borrowed until the next loop turn. */
const struct slots_map *cluster_map_slots(const struct cluster_map *m);
/* Increases with every change (0: no map yet). */
uint64_t cluster_map_version(const struct cluster_map *m);
/* The AUTH credentials every node takes (strings inside the object). */
const char *cluster_map_username(const struct cluster_map *m);
const char *cluster_map_password(const struct cluster_map *m);

/* The map may be stale: ask again soon (at most one question in flight, and at most one per
 * 100 ms). */
void cluster_map_refresh(struct cluster_map *m);
/* A link saw a redirection: counted, and a MOVED asks again. */
void cluster_map_note_redirect(struct cluster_map *m, bool ask);

/* changed(ctx) runs from an event of its own after every change of the map. 0, or -1 when out of
 * memory. */
int cluster_map_watch(struct cluster_map *m, void (*changed)(void *ctx), void *ctx);
void cluster_map_unwatch(struct cluster_map *m, void (*changed)(void *ctx), void *ctx);

const struct cluster_map_stats *cluster_map_stats(const struct cluster_map *m);

#endif
