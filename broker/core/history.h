/*
 * history.h - what a /topic/ destination with a retention policy keeps: last values, history and
 * resume after a reconnect (x-stream-offset subscriptions).
 *
 * A policy ("PATTERN=SIZE[/TTL]", config.h) names the destinations that keep their last SIZE
 * messages, each for at most TTL; the first policy that matches a destination wins. Each such
 * destination has a stream: every message published to it gets the next offset (1, 2, ...) and
 * the store's epoch, and a copy is kept in the destination's ring. limits.history_bytes caps the
 * copies of all rings together: past it the oldest copies of the process are evicted.
 *
 * This is the single-node store: one per process, shared by every event loop (server.threads),
 * every function takes its mutex. It keeps its own copies and hands out copies (message_clone):
 * a message never crosses loops. The epoch is random at each start, so offsets from before a
 * restart are never taken for today's. A cluster keeps its history in Redis instead, behind
 * the fan-out seam (fanout_ops.retain and replay, docs/ARCHITECTURE.md); nothing here names a
 * backend.
 *
 * Also here: the x-stream-offset and x-stream-epoch SUBSCRIBE header values, and the marks a
 * replaying subscription keeps so that a live copy of a message it already replayed is skipped.
 *
 * What it must not do: deliver, or call into a loop while it holds the mutex, other than through
 * the `locked` callback of history_append() (which only hands copies on).
 */
#ifndef STOMPWS_HISTORY_H
#define STOMPWS_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/base/config.h"
#include "broker/base/dict.h"
#include "broker/base/message.h"

struct history;

/* A policy as the store uses it: the config's, with the pattern checked once. */
struct history_policy {
    char pattern[CONFIG_ADDR_MAX]; /* a /topic/ name or wildcard pattern */
    size_t pattern_len;
    bool wildcard; /* the pattern has a `*` or `#` segment */
    size_t size;
    uint64_t ttl_ms; /* 0: no time limit */
};

/* A store for the policies of cfg (history, history_count, history_bytes); NULL when out of
 * memory. With no policy it retains nothing, and callers may skip it altogether. shared: used
 * by several loops (copies in and out), else by one (references to the published messages). */
struct history *history_new(const struct config *cfg, bool shared);
void history_free(struct history *h);

/* The epoch every offset of this store belongs to. */
uint64_t history_epoch(const struct history *h);

/* The first policy matching the /topic/ name, or NULL (no policy, or a wildcard name). No lock:
 * the policies never change after history_new(). */
const struct history_policy *history_policy_for(const struct history *h, const char *name,
                                                size_t len);

/* True when a topic pattern (or name) could match a destination some policy covers. */
bool history_has_policies(const struct history *h);

/*
 * Gives msg (a /topic/ message to msg->destination, policy p) the next offset of its
 * destination and the store's epoch, and keeps a copy (now_ms: wall-clock milliseconds). Then,
 * still under the mutex, calls locked(arg, msg) when not NULL: whoever hands copies to other
 * loops does it there, so that every loop receives a destination's messages in offset order.
 * Returns 0, or -1 when out of memory (msg then has no offset and nothing was kept). *evicted
 * counts copies evicted for limits.history_bytes.
 */
int history_append(struct history *h, const struct history_policy *p, struct message *msg,
                   uint64_t now_ms, void (*locked)(void *arg, struct message *msg), void *arg,
                   size_t *evicted);

/* ---- SUBSCRIBE: what a subscription asks for ---------------------------------------------- */

enum history_from {
    HISTORY_NEXT,      /* live only (the default) */
    HISTORY_LAST,      /* the newest retained message of each destination, then live */
    HISTORY_FIRST,     /* everything retained, oldest first, then live */
    HISTORY_OFFSET,    /* from offset `value` on, inclusive (exact destinations only) */
    HISTORY_TIMESTAMP, /* published at or after `value` seconds since the epoch */
};

struct history_request {
    enum history_from from;
    uint64_t value;
    bool has_epoch; /* x-stream-epoch was given: it must be the store's for a recovery */
    uint64_t epoch;
};

enum history_header_error {
    HISTORY_HEADER_OK = 0,
    HISTORY_HEADER_BAD_OFFSET = -1, /* x-stream-offset is not one of the values */
    HISTORY_HEADER_BAD_EPOCH = -2,  /* x-stream-epoch is not 1 to 16 hex digits */
};

/* Reads the header values (NULL: absent); no allocation, bytes need no NUL. */
int history_parse_request(const char *offset, size_t offset_len, const char *epoch,
                          size_t epoch_len, struct history_request *out);

/* ---- replay ------------------------------------------------------------------------------- */

/* A replayed destination's newest offset, and the epoch it belongs to. */
struct history_mark {
    uint64_t offset;
    uint64_t epoch;
};

/* What a subscription is replayed: copies the caller owns, per destination oldest first. */
struct history_replay {
    struct message **msgs; /* owned: count references, from history_replay_reset() freed */
    size_t count, cap;
    bool recovered;    /* every message from the requested position on was still retained, and the
                          epoch matched when one was given */
    struct dict marks; /* owned values (struct history_mark *): destination -> newest offset at the
                          snapshot, for history_marks_take(); moved to the subscription */
};

/*
 * Snapshot of what `req` asks of destination `name` (an exact /topic/ name, or a pattern when
 * wildcard). Take it after the subscription is in the router: a message published meanwhile is
 * then either in the snapshot or delivered live after it, and the marks tell which.
 * Returns 0 or -1 when out of memory; out is initialized either way (history_replay_reset()).
 */
int history_replay(struct history *h, const char *name, size_t len, bool wildcard,
                   const struct history_request *req, uint64_t now_ms, struct history_replay *out);
void history_replay_reset(struct history_replay *r);

/*
 * Live delivery of msg to a subscription with marks (*marks, owned, NULL when none): false when
 * msg is at or below its destination's mark in the same epoch (it was in the replay: skip it).
 * The first newer message of a destination, or one of another epoch (its history was lost and
 * numbering started again), drops its mark, and the last mark frees the dict.
 */
bool history_marks_pass(struct dict **marks, const struct message *msg);
/* Frees the marks (a subscription going away). */
void history_marks_free(struct dict *marks);

/* ---- figures ------------------------------------------------------------------------------ */

struct history_stats {
    uint64_t destinations; /* destinations with a stream */
    uint64_t messages;     /* copies retained */
    uint64_t bytes;        /* what they count against limits.history_bytes */
};
void history_stats(struct history *h, struct history_stats *out);

#endif
