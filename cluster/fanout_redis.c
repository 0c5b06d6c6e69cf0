#include "cluster/fanout_redis.h"
#include "broker/http/admin.h"
#include "broker/base/log.h"
#include "broker/core/publish.h"
#include "broker/core/queue.h"
#include "cluster/bridge.h"
#include "cluster/history_redis.h"
#include "cluster/cluster_map.h"
#include "cluster/presence_redis.h"
#include "cluster/queue_groups.h"
#include "cluster/sentinel.h"
#include "cluster/streams.h"

#include <stdio.h>
#include <stdlib.h>

/* The backend of one loop: its two Redis links. */
struct fanout_redis {
    struct broker *b;        /* borrowed: the loop it serves */
    struct bridge *bridge;   /* owned: topics */
    struct queue_groups *queues;   /* owned: queues, in streams grouped by shard */
    struct history_redis *history; /* owned: the history of topics with a policy */
    struct presence_redis *presence; /* owned: presence across nodes; NULL while it is off */
    /* sentinel: */
    struct sentinel *sentinel; /* owned, NULL without cluster.redis_sentinel: where the master is */
    /* Redis Cluster: */
    struct cluster_map *map; /* owned, NULL without cluster.redis_cluster: the slot map */
};

/* The streams of the group queue name belongs to (queue_groups.h). */
static struct streams *streams_of(struct fanout_redis *fr, const char *name, size_t len)
{
    return queue_groups_of(fr->queues, name, len);
}

/* The router's interest transitions, followed in Redis. */
static void follow_interest(void *ctx, const char *name, size_t len, bool pattern, bool added)
{
    struct fanout_redis *fr = ctx;
    bridge_interest(fr->bridge, name, len, pattern, added);
}

/* A topic message: local subscribers, then Redis for the other nodes. */
static int publish_topic(void *ctx, struct message *msg, const char *route, size_t len)
{
    struct fanout_redis *fr = ctx;
    int rc = router_publish(&fr->b->router, msg, route, len, false);
    if (rc == 0)
        bridge_publish(fr->bridge, msg);
    return rc;
}

/* A topic message with a history policy: numbered and kept in Redis, delivered by the bridge. */
static int retain(void *ctx, struct message *msg, const struct history_policy *p,
                  struct offset_waiter *w)
{
    struct fanout_redis *fr = ctx;
    return history_redis_retain(fr->history, msg, p, w);
}

static int replay(void *ctx, struct subscription *sub, const char *name, size_t len, bool wildcard,
                  const struct history_request *req, const char *receipt, size_t receipt_len)
{
    struct fanout_redis *fr = ctx;
    return history_redis_replay(fr->history, sub, name, len, wildcard, req, receipt, receipt_len);
}

static void forget_replay(void *ctx, struct subscription *sub)
{
    struct fanout_redis *fr = ctx;
    history_redis_forget(fr->history, sub);
}

/* A /queue/ message goes to its stream; a waiting publisher hears once Redis confirms. */
static int publish_queue(void *ctx, struct message *msg, struct session *waiter)
{
    struct fanout_redis *fr = ctx;
    struct streams *s = streams_of(fr, msg->destination, msg->destination_len);
    if (s == NULL || streams_append(s, msg, waiter) != 0)
        return ROUTER_ERR_CLUSTER_FULL;
    fr->b->router.stats.published++;
    return waiter != NULL ? PUBLISH_PENDING : 0;
}

/* A message from another node: local subscribers only, never back to Redis. */
static void deliver_remote(void *ctx, struct message *msg, const char *pattern, size_t len)
{
    struct fanout_redis *fr = ctx;
    if (pattern == NULL)
        router_publish_exact(&fr->b->router, msg);
    else
        router_publish_pattern(&fr->b->router, msg, pattern, len);
}

/* Redis confirmed some interest: replays waiting for it may read their streams. */
static void confirmed(void *ctx)
{
    struct fanout_redis *fr = ctx;
    if (fr->history != NULL)
        history_redis_confirmed(fr->history);
    if (fr->presence != NULL)
        presence_redis_confirmed(fr->presence);
}

/* presence: edges, snapshots and queries go to Redis (presence_redis.h). */
static void presence_edge(void *ctx, const char *dest, size_t len, const char *user, bool joined)
{
    struct fanout_redis *fr = ctx;
    if (fr->presence != NULL)
        presence_redis_edge(fr->presence, dest, len, user, joined);
}

static int presence_query(void *ctx, const char *dest, size_t len, size_t max, bool follow,
                          struct presence_waiter *w)
{
    struct fanout_redis *fr = ctx;
    return fr->presence != NULL ? presence_redis_query(fr->presence, dest, len, max, follow, w)
                                : -1;
}

static void presence_forget(void *ctx, struct presence_waiter *w)
{
    struct fanout_redis *fr = ctx;
    if (fr->presence != NULL)
        presence_redis_forget(fr->presence, w);
}

/* What the router tells of clustered queues, passed on to the streams. */
static void follow_queue(void *ctx, struct queue *q, enum queue_event ev, struct message *msg)
{
    struct fanout_redis *fr = ctx;
    struct streams *s;
    switch (ev) {
    case QUEUE_EV_FOLLOW:
    case QUEUE_EV_UNFOLLOW:
        if ((s = streams_of(fr, q->name, q->name_len)) != NULL)
            streams_follow(s, q->name, q->name_len, ev == QUEUE_EV_FOLLOW);
        break;
    case QUEUE_EV_SETTLED:
        if ((s = streams_of(fr, msg->destination, msg->destination_len)) != NULL)
            streams_ack(s, msg);
        break;
    case QUEUE_EV_RELEASED:
    case QUEUE_EV_DECLINED:
        if ((s = streams_of(fr, msg->destination, msg->destination_len)) != NULL)
            streams_release(s, msg);
        break;
    case QUEUE_EV_ROOM:
        queue_groups_kick(fr->queues);
        break;
    case QUEUE_EV_UNBLOCK:
        break;
    }
}

/* A message from a queue's stream: to the local queue, or back when nobody here takes it. */
static void deliver_from_stream(void *ctx, struct message *msg, bool redelivered)
{
    struct fanout_redis *fr = ctx;
    struct queues *qs = &fr->b->router.queues;
    struct queue *q = queue_lookup(qs, msg->destination, msg->destination_len, false);
    struct streams *s;
    if ((q == NULL || q->consumer_count == 0 || queue_push(qs, q, msg, redelivered) != 0) &&
        (s = streams_of(fr, msg->destination, msg->destination_len)) != NULL)
        streams_release(s, msg);
}

static size_t stream_capacity(void *ctx, const char *name, size_t len)
{
    struct fanout_redis *fr = ctx;
    struct queue *q = queue_lookup(&fr->b->router.queues, name, len, false);
    return q != NULL ? queue_capacity(&fr->b->router.queues, q) : 0;
}

static void stream_appended(void *ctx, void *waiter, const char *error)
{
    struct fanout_redis *fr = ctx;
    fr->b->router.ops.publish_done(waiter, error);
}

static void forget_waiter(void *ctx, struct session *waiter)
{
    struct fanout_redis *fr = ctx;
    queue_groups_forget(fr->queues, waiter); /* the messages stay; nobody waits for them */
}

/* Ready: both Redis links carry messages. */
static const char *not_ready(void *ctx)
{
    struct fanout_redis *fr = ctx;
    const char *host;
    unsigned short port;
    if (fr->sentinel != NULL && !sentinel_master(fr->sentinel, &host, &port))
        return "no sentinel has told where the Redis master is";
    if (fr->map != NULL && cluster_map_slots(fr->map) == NULL)
        return "no Redis Cluster node has answered CLUSTER SLOTS yet";
    if (!bridge_link_up(fr->bridge))
        return "cluster link to Redis is down";
    const struct bridge_stats *bs = fr->map != NULL ? bridge_stats(fr->bridge) : NULL;
    if (bs != NULL && bs->shard_links_up < bs->shard_links)
        return "a Redis Cluster sharded pub/sub link is down";
    if (!queue_groups_link_up(fr->queues))
        return "cluster queue link to Redis is down";
    return NULL;
}

/* Shutdown may end once the queue link has confirmed every message, ack and release it holds
 * (or cannot, its link being down). */
static bool flushed(void *ctx)
{
    struct fanout_redis *fr = ctx;
    bool queues = queue_groups_flushed(fr->queues);
    return queues && presence_redis_flushed(fr->presence); /* presence: the leaves of the end */
}

/* The figures /metrics shows, in this order (names and help as they always were). */
enum {
    FIG_LINK_UP,
    FIG_PUBLISHED,
    FIG_RECEIVED,
    FIG_RECONNECTS,
    FIG_LATENCY,
    FIG_DROPPED,
    FIG_QUEUE_LINK_UP,
    FIG_APPENDED,
    FIG_APPEND_ERRORS,
    FIG_READ,
    FIG_CLAIMED,
    FIG_ACKED,
    FIG_RELEASED,
    FIG_RESENT,
    FIG_DECODE_ERRORS,
    FIG_BUFFERED_BYTES,
    FIG_HELD,
    FIG_HISTORY_RETAINED,
    FIG_HISTORY_NOT_RETAINED,
    FIG_HISTORY_REPLAYS,
    FIG_HISTORY_REPLAYS_LOST,
    /* sentinel: */
    FIG_QUEUE_WAIT_TIMEOUTS,
    FIG_QUEUE_UNREPLICATED,
    FIG_SENTINEL_FAILOVERS,
    FIG_SENTINEL_SKIPPED,
    /* Redis Cluster: */
    FIG_CLUSTER_MASTERS,
    FIG_CLUSTER_MAP_CHANGES,
    FIG_CLUSTER_FAILOVERS,
    FIG_CLUSTER_MOVED,
    FIG_CLUSTER_ASK,
    FIG_CLUSTER_SHARD_LINKS,
    FIG_CLUSTER_SHARD_LINKS_UP,
    FIG_CLUSTER_SHARDED,
    FIG_CLUSTER_BROADCAST,
    FIG_CLUSTER_WILDCARD_GLOBS,
    FIG_CLUSTER_QUEUE_GROUPS,
    FIG_COUNT
};

static const struct fanout_figure figure_names[FIG_COUNT] = {
    [FIG_LINK_UP] = {"stompws_cluster_link_up", "1 when both Redis links are up and verified.",
                     FANOUT_LINK_UP},
    [FIG_PUBLISHED] = {"stompws_cluster_published_total", "Messages sent to Redis.",
                       FANOUT_COUNTER},
    [FIG_RECEIVED] = {"stompws_cluster_received_total", "Messages from Redis.", FANOUT_COUNTER},
    [FIG_RECONNECTS] = {"stompws_cluster_reconnects_total", "Redis links re-established.",
                        FANOUT_COUNTER},
    [FIG_LATENCY] = {"stompws_cluster_redis_latency_seconds",
                     "Round trip of the latest probe: PUBLISH to the node's own channel until it "
                     "came back.",
                     FANOUT_LATENCY},
    [FIG_DROPPED] = {"cluster_link", NULL, FANOUT_DROPPED},
    [FIG_QUEUE_LINK_UP] = {"stompws_cluster_queue_link_up", "1 when both Redis queue links are up.",
                           FANOUT_LINK_UP},
    [FIG_APPENDED] = {"stompws_cluster_queue_appended_total", "Queue messages Redis stored (XADD).",
                      FANOUT_COUNTER},
    [FIG_APPEND_ERRORS] = {"stompws_cluster_queue_append_errors_total",
                           "Queue messages Redis refused (the publisher got an ERROR).",
                           FANOUT_COUNTER},
    [FIG_READ] = {"stompws_cluster_queue_read_total", "Queue messages taken from streams.",
                  FANOUT_COUNTER},
    [FIG_CLAIMED] = {"stompws_cluster_queue_claimed_total",
                     "Queue messages taken over from another node or handed back (redelivered).",
                     FANOUT_COUNTER},
    [FIG_ACKED] = {"stompws_cluster_queue_acked_total", "Queue messages acked in Redis.",
                   FANOUT_COUNTER},
    [FIG_RELEASED] = {"stompws_cluster_queue_released_total",
                      "Queue messages handed back for other nodes (no consumer left here).",
                      FANOUT_COUNTER},
    [FIG_RESENT] = {"stompws_cluster_queue_resent_total",
                    "Commands sent again after a lost Redis link.", FANOUT_COUNTER},
    [FIG_DECODE_ERRORS] = {"stompws_cluster_queue_decode_errors_total",
                           "Stream entries dropped because they could not be decoded.",
                           FANOUT_COUNTER},
    [FIG_BUFFERED_BYTES] = {"stompws_cluster_queue_buffered_bytes",
                            "Bytes of queue commands Redis has not confirmed yet "
                            "(cluster.queue_buffer_bytes).",
                            FANOUT_GAUGE},
    [FIG_HELD] = {"stompws_cluster_queue_held",
                  "Stream entries this node holds for its consumers (waiting or unacked).",
                  FANOUT_GAUGE},
    [FIG_HISTORY_RETAINED] = {"stompws_cluster_history_retained_total",
                              "Messages with a history policy Redis numbered and kept.",
                              FANOUT_COUNTER},
    [FIG_HISTORY_NOT_RETAINED] = {"stompws_cluster_history_not_retained_total",
                                  "Messages with a history policy delivered on their node only, "
                                  "without offset (Redis down or the script failed).",
                                  FANOUT_COUNTER},
    [FIG_HISTORY_REPLAYS] = {"stompws_cluster_history_replays_total",
                             "Subscriptions answered with a replay from Redis.", FANOUT_COUNTER},
    [FIG_HISTORY_REPLAYS_LOST] = {"stompws_cluster_history_replays_unreachable_total",
                                  "Replays answered x-stream-recovered:false because Redis could "
                                  "not be read.",
                                  FANOUT_COUNTER},
    /* sentinel: */
    [FIG_QUEUE_WAIT_TIMEOUTS] = {"stompws_cluster_queue_wait_timeouts_total",
                                 "WAITs after queue appends answered with fewer replicas than "
                                 "cluster.min_replicas_ack.",
                                 FANOUT_COUNTER},
    [FIG_QUEUE_UNREPLICATED] = {"stompws_cluster_queue_unreplicated_total",
                                "Queue SENDs answered with an ERROR because too few replicas "
                                "confirmed them (cluster.min_replicas_ack).",
                                FANOUT_COUNTER},
    [FIG_SENTINEL_FAILOVERS] = {"stompws_cluster_sentinel_failovers_total",
                                "Moves of the Redis master this node followed (Sentinel).",
                                FANOUT_COUNTER},
    [FIG_SENTINEL_SKIPPED] = {"stompws_cluster_sentinel_skipped_total",
                              "Sentinels skipped: down, too slow, or not knowing the master.",
                              FANOUT_COUNTER},
    [FIG_CLUSTER_MASTERS] = {"stompws_cluster_redis_masters",
                             "Redis Cluster masters serving slots, as the slot map says "
                             "(summed over loops).",
                             FANOUT_GAUGE},
    [FIG_CLUSTER_MAP_CHANGES] = {"stompws_cluster_slot_map_changes_total",
                                 "Redis Cluster slot maps that differed from the one before.",
                                 FANOUT_COUNTER},
    [FIG_CLUSTER_FAILOVERS] = {"stompws_cluster_failovers_total",
                               "Redis Cluster masters that stopped serving slots (a failover "
                               "or a removal).",
                               FANOUT_COUNTER},
    [FIG_CLUSTER_MOVED] = {"stompws_cluster_moved_total",
                           "MOVED redirections from Redis Cluster (commands and SSUBSCRIBE).",
                           FANOUT_COUNTER},
    [FIG_CLUSTER_ASK] = {"stompws_cluster_ask_total",
                         "ASK redirections from Redis Cluster followed (a slot migrating).",
                         FANOUT_COUNTER},
    [FIG_CLUSTER_SHARD_LINKS] = {"stompws_cluster_shard_links",
                                 "Sharded pub/sub connections (one per master carrying "
                                 "channels).",
                                 FANOUT_GAUGE},
    [FIG_CLUSTER_SHARD_LINKS_UP] = {"stompws_cluster_shard_links_up",
                                    "Of those, the connections that are up.", FANOUT_GAUGE},
    [FIG_CLUSTER_SHARDED] = {"stompws_cluster_sharded_published_total",
                             "Messages sent with SPUBLISH (Redis Cluster).", FANOUT_COUNTER},
    [FIG_CLUSTER_BROADCAST] = {"stompws_cluster_wildcard_broadcasts_total",
                               "Messages also sent with a classic PUBLISH because some node's "
                               "wildcard subscription matches them.",
                               FANOUT_COUNTER},
    [FIG_CLUSTER_WILDCARD_GLOBS] = {"stompws_cluster_wildcard_globs",
                                    "Wildcard globs in the Redis Cluster interest registry "
                                    "(summed over loops).",
                                    FANOUT_GAUGE},
    [FIG_CLUSTER_QUEUE_GROUPS] = {"stompws_cluster_queue_groups",
                                  "Queue hash-tag groups, each with its own links (summed over "
                                  "loops).",
                                  FANOUT_GAUGE},
};

/* Redis Cluster: one line per master connection, for /metrics and /readyz (fanout_figures). */
struct detail_writer {
    char *out;
    size_t len, cap;
    size_t loop;
};

static void detail_line(void *arg, const char *role, const char *host, unsigned short port, bool up)
{
    struct detail_writer *w = arg;
    int n = snprintf(w->out + w->len, w->cap - w->len,
                     "stompws_cluster_shard_link_up{loop=\"%zu\",role=\"%s\",node=\"%s:%u\"} %d\n",
                     w->loop, role, host, port, up ? 1 : 0);
    if (n > 0 && (size_t)n < w->cap - w->len)
        w->len += (size_t)n;
    else
        w->out[w->len] = '\0'; /* a line that does not fit is left out */
}

static void cluster_figures(struct fanout_redis *fr, struct fanout_figures *out)
{
    const struct cluster_map_stats *m = cluster_map_stats(fr->map);
    const struct slots_map *map = cluster_map_slots(fr->map);
    const struct bridge_stats *b = bridge_stats(fr->bridge);
    uint64_t *v = out->v;
    v[FIG_CLUSTER_MASTERS] = map != NULL ? map->node_count : 0;
    v[FIG_CLUSTER_MAP_CHANGES] = m->changes;
    v[FIG_CLUSTER_FAILOVERS] = m->failovers;
    v[FIG_CLUSTER_MOVED] = m->moved + b->shard_moved;
    v[FIG_CLUSTER_ASK] = m->ask;
    v[FIG_CLUSTER_SHARD_LINKS] = b->shard_links;
    v[FIG_CLUSTER_SHARD_LINKS_UP] = b->shard_links_up;
    v[FIG_CLUSTER_SHARDED] = b->sharded;
    v[FIG_CLUSTER_BROADCAST] = b->broadcast;
    v[FIG_CLUSTER_WILDCARD_GLOBS] = b->wildcard_globs;
    v[FIG_CLUSTER_QUEUE_GROUPS] = queue_groups_count(fr->queues);
    struct detail_writer w = {
        .out = out->detail, .cap = sizeof(out->detail), .loop = fr->b->loop_index};
    bridge_each_shard_link(fr->bridge, detail_line, &w);
}

static void figures(void *ctx, struct fanout_figures *out)
{
    struct fanout_redis *fr = ctx;
    const struct bridge_stats *b = bridge_stats(fr->bridge);
    struct streams_stats sum;
    queue_groups_stats(fr->queues, &sum);
    const struct streams_stats *s = &sum;
    uint64_t *v = out->v;
    v[FIG_LINK_UP] = bridge_link_up(fr->bridge);
    v[FIG_PUBLISHED] = b->published;
    v[FIG_RECEIVED] = b->received;
    v[FIG_RECONNECTS] = b->reconnects;
    v[FIG_LATENCY] = b->probe_round_trip_us;
    v[FIG_DROPPED] = b->dropped;
    v[FIG_QUEUE_LINK_UP] = queue_groups_link_up(fr->queues);
    v[FIG_APPENDED] = s->appended;
    v[FIG_APPEND_ERRORS] = s->append_errors;
    v[FIG_READ] = s->read;
    v[FIG_CLAIMED] = s->claimed;
    v[FIG_ACKED] = s->acked;
    v[FIG_RELEASED] = s->released;
    v[FIG_RESENT] = s->resent;
    v[FIG_DECODE_ERRORS] = s->decode_errors;
    v[FIG_BUFFERED_BYTES] = s->buffered_bytes;
    v[FIG_HELD] = s->held;
    const struct history_redis_stats *h = history_redis_stats(fr->history);
    v[FIG_HISTORY_RETAINED] = h->retained;
    v[FIG_HISTORY_NOT_RETAINED] = h->not_retained;
    v[FIG_HISTORY_REPLAYS] = h->replays;
    v[FIG_HISTORY_REPLAYS_LOST] = h->replays_lost;
    v[FIG_QUEUE_WAIT_TIMEOUTS] = s->wait_timeouts;
    v[FIG_QUEUE_UNREPLICATED] = s->unreplicated;
    if (fr->sentinel != NULL) {
        v[FIG_SENTINEL_FAILOVERS] = sentinel_stats(fr->sentinel)->switches;
        v[FIG_SENTINEL_SKIPPED] = sentinel_stats(fr->sentinel)->sentinels_failed;
    }
    if (fr->map != NULL)
        cluster_figures(fr, out);
}

/* After the loop's sessions: their releases and unsubscribes still reach the links. */
static void fanout_redis_free(void *ctx)
{
    struct fanout_redis *fr = ctx;
    history_redis_detach(fr->history); /* the bridge's link answers its commands as it goes */
    presence_redis_detach(fr->presence);
    queue_groups_free(fr->queues);
    bridge_free(fr->bridge);
    history_redis_free(fr->history);
    presence_redis_free(fr->presence);
    sentinel_free(fr->sentinel); /* after every link that registered with it */
    cluster_map_free(fr->map);   /* likewise */
    free(fr);
}

/* ---- admin API (issue #15): requests and answers on the bridge's control channels ---------- */

static void admin_heard(void *ctx, uint64_t id, long others)
{
    struct fanout_redis *fr = ctx;
    admin_expect(fr->b, id, others);
}

static int admin_request(void *ctx, uint64_t id, const char *json, size_t len)
{
    struct fanout_redis *fr = ctx;
    return bridge_control_publish(fr->bridge, NULL, json, len, id, admin_heard);
}

/* A request from any node (this one's own are skipped) is answered on the asker's channel. */
static void admin_control(void *ctx, bool answer, const char *payload, size_t len)
{
    struct fanout_redis *fr = ctx;
    if (answer) {
        admin_take_answer(fr->b, payload, len);
        return;
    }
    char *from = NULL;
    char *text = admin_answer(fr->b, payload, len, bridge_node_id(fr->bridge), &from);
    if (text != NULL && bridge_control_publish(fr->bridge, from, text, strlen(text), 0, NULL) != 0)
        log_warn(0, "cluster: an admin answer to node %s was not sent: Redis is down", from);
    free(text);
    free(from);
}

static const char *node_id(void *ctx)
{
    return bridge_node_id(((struct fanout_redis *)ctx)->bridge);
}

static const struct fanout_ops fanout_redis_ops = {
    .interest = follow_interest,
    .publish_topic = publish_topic,
    .retain = retain,
    .replay = replay,
    .forget_replay = forget_replay,
    .publish_queue = publish_queue,
    .queue_event = follow_queue,
    .forget_waiter = forget_waiter,
    .ready = not_ready,
    .flushed = flushed,
    .figures = figures,
    .free = fanout_redis_free,
    .figure_names = figure_names,
    .figure_count = FIG_COUNT,
    .detail_help = "# HELP stompws_cluster_shard_link_up 1 when this loop's connection to a Redis "
                   "Cluster master is up, by role (publish: commands, subscribe: SSUBSCRIBE).\n"
                   "# TYPE stompws_cluster_shard_link_up gauge\n",
    .admin_request = admin_request, /* admin API (issue #15) */
    .node_id = node_id,
    .presence_edge = presence_edge,
    .presence_query = presence_query,
    .presence_forget = presence_forget,
};

_Static_assert(FIG_COUNT <= FANOUT_FIGURES_MAX, "fanout_figures has room for every figure");

static int start_streams(struct fanout_redis *fr, const struct bridge_config *bcfg)
{
    struct broker *b = fr->b;
    struct bridge_config scfg = *bcfg;
    snprintf(scfg.node_id, sizeof(scfg.node_id), "%s", bridge_node_id(fr->bridge));
    const struct streams_ops ops = {.ctx = fr,
                                    .deliver = deliver_from_stream,
                                    .capacity = stream_capacity,
                                    .appended = stream_appended};
    fr->queues = queue_groups_new(b->base, &scfg, b->cfg.cluster_queue_visibility_ms,
                                  b->cfg.cluster_queue_buffer_bytes, &ops);
    if (fr->queues == NULL)
        return -1;
    b->router.queues.clustered = true;
    return 0;
}

/* The bridge's settings from the broker's: -1 with the reason in err when cluster.redis does
 * not parse (what --check-config reports and a starting node logs). */
static int bridge_settings(const struct config *cfg, struct bridge_config *bcfg, char *err,
                           size_t err_len)
{
    bridge_config_defaults(bcfg);
    char why[256];
    /* With sentinels, cluster.redis is optional and only its credentials and db are used. */
    if (cfg->cluster_redis[0] != '\0' &&
        bridge_parse_url(cfg->cluster_redis, bcfg, why, sizeof(why)) != 0) {
        snprintf(err, err_len, "cluster.redis: %s", why);
        return -1;
    }
    snprintf(bcfg->node_id, sizeof(bcfg->node_id), "%s", cfg->cluster_node_id);
    snprintf(bcfg->prefix, sizeof(bcfg->prefix), "%s", cfg->cluster_prefix);
    bcfg->unsubscribe_grace_ms = cfg->cluster_unsubscribe_grace_ms;
    bcfg->probe_interval_ms = cfg->cluster_probe_interval_ms;
    bcfg->reconnect_max_ms = cfg->cluster_reconnect_max_ms;
    if (bcfg->reconnect_min_ms > bcfg->reconnect_max_ms)
        bcfg->reconnect_min_ms = bcfg->reconnect_max_ms;
    bcfg->max_destination = cfg->max_header_line;
    bcfg->max_headers = cfg->max_frame_headers;
    bcfg->max_header_bytes = cfg->max_header_bytes;
    bcfg->max_body = cfg->max_body;
    bcfg->min_replicas_ack = (unsigned)cfg->cluster_min_replicas_ack;
    bcfg->wait_timeout_ms = cfg->cluster_wait_timeout_ms;
    return 0;
}

/* sentinel: one per loop, made before the links that register with it. */
static int start_sentinel(struct fanout_redis *fr, struct bridge_config *bcfg)
{
    struct sentinel_config scfg;
    char err[500];
    if (sentinel_settings(&fr->b->cfg, &scfg, err, sizeof(err)) != 0) {
        log_error(0, "%s", err);
        return -1;
    }
    scfg.reconnect_min_ms = bcfg->reconnect_min_ms;
    fr->sentinel = sentinel_new(fr->b->base, &scfg);
    bcfg->sentinel = fr->sentinel;
    return fr->sentinel != NULL ? 0 : -1;
}

/* Redis Cluster: one slot map per loop, made before the links that route by it. */
static int start_cluster_map(struct fanout_redis *fr, struct bridge_config *bcfg)
{
    struct cluster_map_config mcfg;
    char err[500];
    if (cluster_map_settings(&fr->b->cfg, &mcfg, err, sizeof(err)) != 0) {
        log_error(0, "%s", err);
        return -1;
    }
    mcfg.reconnect_min_ms = bcfg->reconnect_min_ms;
    fr->map = cluster_map_new(fr->b->base, &mcfg);
    bcfg->cluster = fr->map;
    return fr->map != NULL ? 0 : -1;
}

int fanout_redis_start(struct broker *b)
{
    if (!config_clustered(&b->cfg))
        return 0;
    struct bridge_config bcfg;
    char err[300];
    if (bridge_settings(&b->cfg, &bcfg, err, sizeof(err)) != 0) {
        log_error(0, "%s", err);
        return -1;
    }
    struct fanout_redis *fr = calloc(1, sizeof(*fr));
    if (fr == NULL)
        return -1;
    fr->b = b;
    /* Set before the links exist: broker_free() frees a half-built backend the same way. */
    b->fanout = (struct fanout){.ops = &fanout_redis_ops, .ctx = fr};
    if (b->cfg.cluster_redis_cluster[0] != '\0') {
        if (b->cfg.cluster_redis_sentinel[0] != '\0')
            log_warn(0, "cluster.redis_cluster is set: cluster.redis_sentinel is ignored");
        if (start_cluster_map(fr, &bcfg) != 0)
            return -1;
    } else if (b->cfg.cluster_redis_sentinel[0] != '\0' && start_sentinel(fr, &bcfg) != 0) {
        return -1;
    }
    const struct bridge_ops ops = {
        .ctx = fr, .deliver = deliver_remote, .confirmed = confirmed, .control = admin_control};
    fr->bridge = bridge_new(b->base, &bcfg, &ops);
    if (fr->bridge == NULL || start_streams(fr, &bcfg) != 0)
        return -1;
    fr->history = history_redis_new(b, fr->bridge, &bcfg);
    if (fr->history == NULL)
        return -1;
    if (b->cfg.presence_count > 0 &&
        (fr->presence = presence_redis_new(b, fr->bridge, &bcfg)) == NULL)
        return -1;
    if (fr->sentinel != NULL)
        log_info(0, "cluster node %s through the redis master %s of %s", bridge_node_id(fr->bridge),
                 b->cfg.cluster_redis_master, b->cfg.cluster_redis_sentinel);
    else if (fr->map != NULL)
        log_info(0, "cluster node %s through the redis cluster of %s", bridge_node_id(fr->bridge),
                 b->cfg.cluster_redis_cluster);
    else
        log_info(0, "cluster node %s through redis %s:%u", bridge_node_id(fr->bridge),
                 bcfg.redis_host, bcfg.redis_port);
    return 0;
}

int fanout_redis_check_config(const struct config *cfg, char *err, size_t err_len)
{
    struct bridge_config bcfg;
    struct sentinel_config scfg;
    struct cluster_map_config mcfg;
    if (!config_clustered(cfg))
        return 0;
    if (bridge_settings(cfg, &bcfg, err, err_len) != 0)
        return -1;
    if (cfg->cluster_redis_cluster[0] != '\0' &&
        cluster_map_settings(cfg, &mcfg, err, err_len) != 0)
        return -1;
    return cfg->cluster_redis_sentinel[0] != '\0' ? sentinel_settings(cfg, &scfg, err, err_len) : 0;
}
