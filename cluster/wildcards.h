/*
 * wildcards.h - the Redis Cluster interest registry of wildcard subscriptions.
 *
 * Why it exists: in cluster mode exact topics travel by sharded pub/sub (SPUBLISH reaches only
 * the shard of its channel), and SSUBSCRIBE has no pattern form. A wildcard subscription keeps
 * using classic PSUBSCRIBE, which works because Redis Cluster broadcasts a classic PUBLISH to
 * every node; but broadcasting every message would give up what sharding buys. So a publisher
 * adds a classic PUBLISH only for a topic some node's wildcard glob matches, and this object
 * says which ones do.
 *
 * How: every node writes its globs to one sorted set, `<prefix>:wildcards`, member
 * "<node id>\n<glob>", score = the time (ms) after which it is stale; it renews them every
 * refresh_ms (3 refreshes make them stale, so a dead node's globs fade) and drops them when its
 * last local wildcard subscriber leaves. After each change it PUBLISHes on the classic channel
 * `<prefix>:wildcards` so that every node reads the set again at once; every node also reads it
 * on each refresh. The bridge feeds that channel's messages to wildcards_changed().
 *
 * What a wildcard costs, and the window: docs/CLUSTER.md ("Wildcards in a Redis Cluster").
 * What it must not do: block, or hold a reference to a message.
 */
#ifndef STOMPWS_WILDCARDS_H
#define STOMPWS_WILDCARDS_H

#ifdef STOMPWS_BROKER_LAYER
#error "a broker/ file includes a header of cluster/ or server/, the layers above it"
#endif

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct redis_link;

struct wildcards_stats {
    uint64_t reloads; /* reads of the registry answered */
    uint64_t matched; /* publishes a registered glob matched (sent twice) */
    size_t globs;     /* distinct globs registered, all nodes */
    size_t own;       /* of those, this node's */
};

struct wildcards;

/* link: borrowed, a routing link (redis.h); prefix and node_id are copied. NULL when out of
 * memory. */
struct wildcards *wildcards_new(struct event_base *base, struct redis_link *link,
                                const char *prefix, const char *node_id, unsigned refresh_ms);
void wildcards_free(struct wildcards *w);

/* This node's glob (a PSUBSCRIBEd Redis glob) appeared or went away. */
void wildcards_own(struct wildcards *w, const char *glob, size_t len, bool present);
/* The classic channel change notices come on: SUBSCRIBE it on the subscribe link. */
const char *wildcards_channel(const struct wildcards *w);
/* A notice arrived, or the link came back: read the registry again (and renew ours). */
void wildcards_changed(struct wildcards *w);
/* Some registered glob matches channel ("<prefix>:/topic/..."): publish it classically too. */
bool wildcards_match(struct wildcards *w, const char *channel, size_t len);
const struct wildcards_stats *wildcards_stats(const struct wildcards *w);

/* Redis' glob matching (stringmatchlen): * ? [set] [^set] [a-z] and \ escapes. */
bool wildcards_glob_match(const char *glob, size_t glob_len, const char *s, size_t len);

#endif
