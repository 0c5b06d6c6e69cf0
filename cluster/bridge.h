/*
 * bridge.h - topics across broker nodes through Redis pub/sub.
 *
 * What it is for: every local publish to a /topic/ goes to Redis once (PUBLISH on the
 * `<prefix>:<destination>` channel, pipelined on one connection, so each publisher's messages
 * keep their order); every topic name or wildcard pattern with local subscribers is followed in
 * Redis (SUBSCRIBE for exact names, PSUBSCRIBE with a glob that is a superset of the STOMP
 * pattern), and what arrives is handed back to the broker through ops.deliver. The node's own
 * messages are recognised by origin id and ignored: the router delivered them locally already.
 * Payloads without the envelope magic are raw publishes from backends (`redis-cli PUBLISH`).
 *
 * What it must not do: block the loop, touch a connection or the router directly (the broker
 * does that in ops.deliver), or hold a message after ops.deliver returns. Redis being down never
 * stops local traffic: publishes are dropped (counted) and interest is replayed on reconnect.
 *
 * docs/CLUSTER.md describes the model, the guarantees and the envelope byte by byte.
 */
#ifndef STOMPWS_BRIDGE_H
#define STOMPWS_BRIDGE_H

/* The layers' rule, enforced by the build: broker/ is compiled with STOMPWS_BROKER_LAYER. */
#ifdef STOMPWS_BROKER_LAYER
#error "a broker/ file includes a header of cluster/ or server/, the layers above it"
#endif

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/base/message.h"

#define BRIDGE_DEFAULT_PREFIX "stompws"
#define BRIDGE_NODE_ID_MAX    64 /* bytes with the NUL */

struct bridge_config {
    char redis_host[256];
    unsigned short redis_port;
    char redis_username[256]; /* "" unless the URL has user:password@ (Redis 6 ACL users) */
    char redis_password[256]; /* "" = no AUTH */
    int redis_db;
    char node_id[BRIDGE_NODE_ID_MAX];            /* unique per node; "" = random at bridge_new */
    char prefix[64];                             /* channel prefix, default "stompws" */
    unsigned reconnect_min_ms, reconnect_max_ms; /* capped exponential backoff with jitter */
    unsigned unsubscribe_grace_ms; /* an unsubscribe waits this long (0: the next loop turn); a
                                      resubscribe within it cancels it */
    unsigned probe_interval_ms;    /* PUBLISH a probe to the node's own channel this often; if
                                      none has come back within 2 intervals on a connected
                                      subscribe link, restart that link */
    /* Optional (0 = default): */
    unsigned connect_timeout_ms; /* TCP connect + handshake bound, default 5000 */
    size_t max_publish_backlog;  /* bytes of PUBLISH queued and not yet written to Redis
                                    beyond which new publishes are dropped, default 64 MiB */
    size_t max_destination;      /* envelope limits: the broker's limits.max_header_line, */
    size_t max_headers;          /*   limits.max_frame_headers, */
    size_t max_header_bytes;     /*   limits.max_header_bytes */
    size_t max_body;             /*   and limits.max_body (defaults: the broker's defaults) */
    /* sentinel: */
    struct sentinel *sentinel; /* borrowed, NULL = redis_host:port; else every link finds the
                                  master through it (redis.h), redis_host/port unused */
    unsigned min_replicas_ack; /* queue SENDs: WAIT for this many replicas before the publisher
                                  hears (0 = no WAIT), streams.c */
    unsigned wait_timeout_ms;  /* WAIT's timeout (0 = 1000) */
    /* Redis Cluster: */
    struct cluster_map *cluster; /* borrowed, NULL = one Redis; else every link routes by slot
                                    (redis.h), exact topics use sharded pub/sub (shard_sub.h)
                                    and wildcards the interest registry (wildcards.h) */
};

/* Defaults: 127.0.0.1:6379, db 0, prefix "stompws", no node id (random at bridge_new),
 * backoff 100..5000 ms, grace 1000 ms, probe every 5000 ms, the optional fields 0. */
void bridge_config_defaults(struct bridge_config *cfg);

/*
 * Parses redis://[[user]:password@]host[:port][/db] into cfg's redis_* fields (port 6379 and db
 * 0 when absent; host may be [IPv6]; user and password may be %-encoded). Returns 0, or -1 with
 * a message in err. rediss:// (TLS) is refused: hiredis 0.14.1 has no TLS.
 */
int bridge_parse_url(const char *url, struct bridge_config *cfg, char *err, size_t err_len);

/*
 * The Redis glob a node PSUBSCRIBEs for a normalized STOMP pattern ("/topic/news.#" under prefix
 * "stompws" -> "stompws:/topic/news*"): a superset of the STOMP match (Redis `*` crosses dots;
 * the router filters exactly), with the glob metacharacters *?[]\ of names and prefix escaped.
 * Returns a malloc'd NUL-terminated string (its length in *out_len), or NULL when out of memory.
 */
char *bridge_pattern_glob(const char *prefix, const char *pattern, size_t len, size_t *out_len);

struct redis_link;
struct redis_link_config;
struct cluster_map;
struct envelope_limits;

/* The settings of a Redis link named `name` to cfg's server (strings borrowed from cfg). In
 * cluster mode its keyless commands go to the master of cfg->prefix's slot. */
void bridge_link_config(const struct bridge_config *cfg, const char *name, int db,
                        struct redis_link_config *out);
/* The envelope decoder limits cfg implies (its max_* fields, else the broker's defaults). */
void bridge_envelope_limits(const struct bridge_config *cfg, struct envelope_limits *lim);

struct bridge_ops {
    void *ctx;
    /*
     * A message from another node or a raw PUBLISH. pattern == NULL: it came for the exact
     * channel (deliver to the exact-topic subscribers of msg->destination only); else it came
     * through the PSUBSCRIBE of that normalized STOMP pattern (e.g. "/topic/stocks.*.price"):
     * deliver to the wildcard subscribers of exactly that pattern. A node subscribed both exactly
     * and by pattern thus never delivers a message twice. The bridge owns msg's reference and
     * unrefs it after the call (take a ref to keep it). Must not call bridge_free.
     */
    void (*deliver)(void *ctx, struct message *msg, const char *pattern, size_t pattern_len);
    /* Optional: Redis confirmed a (P)SUBSCRIBE of some interest (see bridge_confirmed()). */
    void (*confirmed)(void *ctx);
    /* admin API (issue #15), optional: a message on a control channel, a request to every node
     * (answer false) or an answer to this node (answer true). Set: the node subscribes to them. */
    void (*control)(void *ctx, bool answer, const char *payload, size_t len);
};

struct bridge;

/* Connects both links at once (in the background). Returns NULL when out of memory or the
 * config is unusable (logged). */
struct bridge *bridge_new(struct event_base *base, const struct bridge_config *cfg,
                          const struct bridge_ops *ops);
void bridge_free(struct bridge *b);

/*
 * Local interest in a topic name (pattern=false, e.g. "/topic/prices") or a normalized wildcard
 * pattern (pattern=true, e.g. "/topic/news.#") appeared (added=true) or disappeared. Called
 * only on transitions. Changes made during one loop turn go to Redis as one command each
 * ((P)SUBSCRIBE / (P)UNSUBSCRIBE with many channels); removals wait unsubscribe_grace_ms.
 */
void bridge_interest(struct bridge *b, const char *dest, size_t len, bool pattern, bool added);

/* A local client published to a /topic/ destination: send it to Redis once (pipelined). Dropped
 * and counted when the publish link is down or its backlog is full. */
void bridge_publish(struct bridge *b, struct message *msg);

/* Redis Cluster: a message on channel must also go out by classic PUBLISH, because some node's
 * wildcard subscription matches it (wildcards.h). Always false with one Redis. */
bool bridge_broadcast_wanted(struct bridge *b, const char *channel, size_t len);

/* Both Redis links connected and the subscribe link verified by a probe since it came up. */
bool bridge_link_up(const struct bridge *b);

/* Local interest in name (a topic name, or a normalized pattern) is subscribed in Redis and
 * Redis confirmed it: a message published from now on reaches this node. */
bool bridge_confirmed(struct bridge *b, const char *name, size_t len, bool pattern);

/* The publish link, for commands that must stay in order with this node's publishes (the
 * history script, history_redis.h). Borrowed: it lives as long as the bridge. */
struct redis_link *bridge_command_link(struct bridge *b);

/* What starts a payload the history script published: see retained_prefix() in bridge.c. */
#define BRIDGE_RETAINED_MAGIC "\0SWH"

/* The node id in use (the configured one, or the random one bridge_new made). */
const char *bridge_node_id(const struct bridge *b);

struct bridge_stats {
    uint64_t published;     /* envelopes sent to Redis */
    uint64_t dropped;       /* local publishes not sent (link down, backlog full, too large) or
                               lost in flight when the publish link broke */
    uint64_t received;      /* messages from Redis handed to deliver (envelopes and raw) */
    uint64_t received_raw;  /* of those, raw payloads (no envelope) */
    uint64_t ignored_own;   /* this node's own messages coming back */
    uint64_t decode_errors; /* payloads dropped: bad envelope, bad channel, over the limits */
    uint64_t reconnects;    /* links re-established after a loss or a failed attempt */
    uint64_t subscribe_link_restarts; /* restarts because probes stopped coming back */
    uint64_t publish_errors;          /* error replies to PUBLISH */
    uint64_t channels;                /* gauge: exact channels subscribed in Redis now */
    uint64_t patterns;                /* gauge: glob patterns subscribed in Redis now */
    uint64_t probe_round_trip_us;     /* gauge: the latest probe's PUBLISH -> message time, the
                                         Redis latency this node sees (0 before the first) */
    /* Redis Cluster: */
    uint64_t sharded;        /* of published, the SPUBLISHes */
    uint64_t broadcast;      /* extra classic PUBLISHes for topics a wildcard glob matches */
    uint64_t shard_moved;    /* MOVED replies to SSUBSCRIBE */
    uint64_t shard_unasked;  /* sunsubscribes Redis sent unasked (a slot moved) */
    uint64_t shard_links;    /* gauge: sharded subscriber connections, and */
    uint64_t shard_links_up; /*   of those, the ones up */
    uint64_t wildcard_globs; /* gauge: wildcard globs registered by all nodes */
};
const struct bridge_stats *bridge_stats(const struct bridge *b);

/* Redis Cluster, for /readyz: fn once per master connection of the sharded subscriber and of
 * the publish link (nothing with one Redis). */
void bridge_each_shard_link(const struct bridge *b,
                            void (*fn)(void *arg, const char *role, const char *host,
                                       unsigned short port, bool up),
                            void *arg);

/*
 * admin API (issue #15): PUBLISHes payload on the control channel of every node (node NULL:
 * "<prefix>:_admin") or of one ("<prefix>:_admin:<node>"). heard (NULL: none) then gets how many
 * other nodes Redis handed it to (-1: Redis refused it; not called when the link broke first).
 * 0, or -1 when the publish link is down or out of memory.
 */
int bridge_control_publish(struct bridge *b, const char *node, const char *payload, size_t len,
                           uint64_t id, void (*heard)(void *ctx, uint64_t id, long others));

#endif
