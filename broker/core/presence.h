/*
 * presence.h - who is subscribed to the /topic/ destinations that presence.pattern tracks, and
 * the join/leave events of /presence/topic/NAME.
 *
 * Per tracked destination the table holds each logged-in user's number of subscriptions to it:
 * the user joins when that number leaves 0 and leaves when it comes back to 0, so a user with
 * several sessions (or several subscriptions) joins once and leaves once. Only exact
 * subscriptions count: a wildcard one does not make its subscriber present on every name it
 * matches. Anonymous sessions have no user to show: they are not counted.
 *
 * The table is the process's, as the history store: one loop owns it, or several loops share it
 * under its mutex, so a user with sessions on two loops joins once and the events of a destination
 * have one order. Each event takes a number from one process-wide sequence (shown as
 * x-stream-offset): a /presence/ subscriber's snapshot records the number it includes, and the
 * router skips the older events still on their way to its loop (history_marks_pass()).
 *
 * The presence_table_* part needs no broker and does no I/O (unit-tested); the rest publishes
 * through the router and the fan-out backend. docs/PRESENCE.md is the user's view.
 *
 * What it must not do: name a backend, a session or a connection.
 */
#ifndef STOMPWS_PRESENCE_H
#define STOMPWS_PRESENCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/base/config.h"

struct broker;
struct subscription;

/* /presence/topic/NAME carries the events of /topic/NAME. */
#define PRESENCE_PREFIX "/presence"

struct presence;

/* A table for cfg's patterns; shared: several loops use it (locked). NULL when out of memory. */
struct presence *presence_new(const struct config *cfg, bool shared);
void presence_free(struct presence *p);

/* What names this process in a cluster backend's presence entries: the process's node id
 * (cluster.node_id, when set) and random hex, new at each start. */
const char *presence_process_id(const struct presence *p);

/* Does a pattern match this exact /topic/ name (never a wildcard, never another prefix)? */
bool presence_tracks(const struct presence *p, const char *dest, size_t len);

/* ---- the table (the caller holds the lock when it is shared) -------------------------------- */

enum presence_edge { PRESENCE_SAME, PRESENCE_JOIN, PRESENCE_LEAVE };

/* What one change did: a join or leave takes the next sequence number. */
struct presence_change {
    enum presence_edge edge;
    size_t count; /* users present on the destination afterwards */
    uint64_t seq; /* the event's number (0 for PRESENCE_SAME) */
};

/* One more subscription of user to dest. Returns 0, or -1 when out of memory (nothing changed). */
int presence_table_add(struct presence *p, const char *dest, size_t len, const char *user,
                       size_t user_len, struct presence_change *out);
/* One subscription fewer (one that presence_table_add() counted). */
void presence_table_remove(struct presence *p, const char *dest, size_t len, const char *user,
                           size_t user_len, struct presence_change *out);
/* Users present on dest. */
size_t presence_table_count(const struct presence *p, const char *dest, size_t len);
/*
 * Up to max of dest's users in byte order, into names (borrowed: valid until the table changes);
 * returns how many. *seq: the number of the newest event the answer includes.
 */
size_t presence_table_users(const struct presence *p, const char *dest, size_t len,
                            const char **names, size_t max, uint64_t *seq);

/* ---- the broker's side ---------------------------------------------------------------------- */

/*
 * sub, just in the router under route, counts for user (its session's login; "" or NULL:
 * anonymous, not counted) when route is tracked; a join publishes its event. Copies user into
 * sub->presence_user. Out of memory: not counted (logged).
 */
void presence_subscribed(struct broker *b, struct subscription *sub, const char *route, size_t len,
                         const char *user);
/* sub goes away: if it was counted, it no longer is (a leave publishes its event). */
void presence_unsubscribed(struct broker *b, struct subscription *sub);

/* Is dest a /presence/ name, /presence/topic/NAME? (Its NAME is checked by presence_follow().) */
bool presence_is_events_name(const char *dest, size_t len);

enum presence_follow_error {
    PRESENCE_ERR_OFF = -1, /* no presence.pattern matches /topic/NAME */
    PRESENCE_ERR_NOMEM = -2,
};

/*
 * Subscribes sub to route (/presence/topic/NAME) in the router and delivers the snapshot: a
 * MESSAGE with x-presence-event: snapshot and the JSON body {"count":N,"users":[...],
 * "truncated":bool}. Returns 0 or an enum presence_follow_error (sub is not in the router then).
 */
int presence_follow(struct broker *b, struct subscription *sub, const char *route, size_t len);

/* Who is on a destination, as a table or a backend answers: the names are borrowed for the call. */
struct presence_answer {
    const char *const *names; /* at most presence.max_users, in byte order */
    size_t name_count;
    size_t count;        /* every user present */
    uint64_t seq, epoch; /* the newest event the answer includes, and the events' epoch */
};

/* Waits for a backend's answer (fanout_ops.presence_query); a NULL answer: none came. */
struct presence_waiter {
    void (*answered)(struct presence_waiter *w, const struct presence_answer *a);
};

/*
 * The answer of GET /api/presence for an exact /topic/ name: a JSON object text (malloc'd,
 * the caller frees) {"destination":D,"count":N,"users":[...],"truncated":bool} with
 * "partial":true when asked (a cluster node answering alone); NULL when out of memory.
 */
char *presence_answer_json(const char *dest, size_t len, const struct presence_answer *a,
                           bool partial);
/* The same from the process's table. */
char *presence_query_json(struct broker *b, const char *dest, size_t len, bool partial);

#endif
