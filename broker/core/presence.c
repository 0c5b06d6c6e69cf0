#include "broker/core/presence.h"
#include "broker/base/dict.h"
#include "broker/base/log.h"
#include "broker/base/message.h"
#include "broker/core/broker.h"
#include "broker/core/destination.h"
#include "broker/core/history.h"
#include "broker/core/publish.h"
#include "broker/core/router.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* One tracked destination that has users: user -> number of its subscriptions. */
struct presence_dest {
    struct dict users; /* values: the count itself, (void *)(uintptr_t)n with n >= 1 */
};

struct presence {
    char patterns[CONFIG_PRESENCE_MAX][CONFIG_ADDR_MAX]; /* presence.pattern, as configured */
    size_t pattern_count;
    size_t max_users; /* presence.max_users */
    bool shared;      /* several loops: every use takes lock */
    uint64_t epoch;   /* x-stream-epoch of the events: this process's */
    pthread_mutex_t lock;
    struct dict dests; /* owned values (struct presence_dest *): destinations with users */
    uint64_t seq;      /* the newest event's number, across destinations */
    /* Names this process's entries in a cluster backend: one for all its loops (their node ids
     * differ), new at each start (an earlier process's entries expire on their own). */
    char process_id[CONFIG_ADDR_MAX + 24];
};

struct presence *presence_new(const struct config *cfg, bool shared)
{
    struct presence *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    memcpy(p->patterns, cfg->presence, sizeof(p->patterns));
    p->pattern_count = cfg->presence_count;
    p->max_users = cfg->presence_max_users;
    p->shared = shared;
    p->epoch = (broker_wall_ms() & 0xffffffffu) | 1u; /* any number that is not 0 */
    unsigned char random[8] = {0};
    if (getrandom(random, sizeof(random), 0) != (ssize_t)sizeof(random))
        memcpy(random, &p->epoch, sizeof(random) < sizeof(p->epoch) ? sizeof(random) : 4);
    char hex[17];
    for (size_t i = 0; i < sizeof(random); i++)
        snprintf(hex + 2 * i, 3, "%02x", random[i]);
    snprintf(p->process_id, sizeof(p->process_id), "%s%s%s", cfg->cluster_node_id,
             cfg->cluster_node_id[0] != '\0' ? "-" : "", hex);
    dict_init(&p->dests);
    pthread_mutex_init(&p->lock, NULL);
    return p;
}

const char *presence_process_id(const struct presence *p)
{
    return p->process_id;
}

static void dest_free(struct presence_dest *d)
{
    dict_reset(&d->users);
    free(d);
}

void presence_free(struct presence *p)
{
    if (p == NULL)
        return;
    size_t bucket;
    for (struct dict_entry *e = dict_first(&p->dests, &bucket); e != NULL;
         e = dict_next(&p->dests, &bucket, e))
        dest_free(e->value);
    dict_reset(&p->dests);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

bool presence_tracks(const struct presence *p, const char *dest, size_t len)
{
    if (p == NULL || destination_kind(dest, len) != DEST_TOPIC ||
        destination_is_wildcard(dest, len))
        return false;
    for (size_t i = 0; i < p->pattern_count; i++)
        if (destination_matches(p->patterns[i], strlen(p->patterns[i]), dest, len))
            return true;
    return false;
}

static void lock(struct presence *p)
{
    if (p->shared)
        pthread_mutex_lock(&p->lock);
}

static void unlock(struct presence *p)
{
    if (p->shared)
        pthread_mutex_unlock(&p->lock);
}

/* ---- the table ------------------------------------------------------------------------------- */

int presence_table_add(struct presence *p, const char *dest, size_t len, const char *user,
                       size_t user_len, struct presence_change *out)
{
    *out = (struct presence_change){PRESENCE_SAME, 0, 0};
    struct presence_dest *d = dict_get(&p->dests, dest, len);
    bool made = d == NULL;
    if (made) {
        if ((d = calloc(1, sizeof(*d))) == NULL)
            return -1;
        dict_init(&d->users);
        if (dict_set(&p->dests, dest, len, d) != 0) {
            dest_free(d);
            return -1;
        }
    }
    uintptr_t n = (uintptr_t)dict_get(&d->users, user, user_len);
    if (dict_set(&d->users, user, user_len, (void *)(n + 1)) != 0) {
        if (made)
            dest_free(dict_remove(&p->dests, dest, len));
        return -1;
    }
    out->count = d->users.count;
    if (n == 0) {
        out->edge = PRESENCE_JOIN;
        out->seq = ++p->seq;
    }
    return 0;
}

void presence_table_remove(struct presence *p, const char *dest, size_t len, const char *user,
                           size_t user_len, struct presence_change *out)
{
    *out = (struct presence_change){PRESENCE_SAME, 0, 0};
    struct presence_dest *d = dict_get(&p->dests, dest, len);
    uintptr_t n = d != NULL ? (uintptr_t)dict_get(&d->users, user, user_len) : 0;
    if (n == 0)
        return; /* never counted: nothing to undo */
    if (n > 1) {
        /* A replace; it fails only when the table could not grow (out of memory): the user
         * then stays counted once too many, which is logged. */
        if (dict_set(&d->users, user, user_len, (void *)(n - 1)) != 0)
            log_error(0, "presence: out of memory: '%.*s' on %.*s counted once too many",
                      (int)user_len, user, (int)len, dest);
        out->count = d->users.count;
        return;
    }
    dict_remove(&d->users, user, user_len);
    out->count = d->users.count;
    out->edge = PRESENCE_LEAVE;
    out->seq = ++p->seq;
    if (d->users.count == 0)
        dest_free(dict_remove(&p->dests, dest, len));
}

size_t presence_table_count(const struct presence *p, const char *dest, size_t len)
{
    const struct presence_dest *d = dict_get(&p->dests, dest, len);
    return d != NULL ? d->users.count : 0;
}

size_t presence_table_users(const struct presence *p, const char *dest, size_t len,
                            const char **names, size_t max, uint64_t *seq)
{
    *seq = p->seq;
    const struct presence_dest *d = dict_get(&p->dests, dest, len);
    if (d == NULL || max == 0)
        return 0;
    /* The first max in byte order: keep the max smallest seen so far, sorted (an insertion
     * into a bounded array: max is presence.max_users, small). */
    size_t n = 0, bucket;
    for (struct dict_entry *e = dict_first(&d->users, &bucket); e != NULL;
         e = dict_next(&d->users, &bucket, e)) {
        if (n == max && strcmp(e->key, names[n - 1]) >= 0)
            continue;
        size_t at = n < max ? n++ : n - 1;
        while (at > 0 && strcmp(e->key, names[at - 1]) < 0) {
            names[at] = names[at - 1];
            at--;
        }
        names[at] = e->key;
    }
    return n;
}

/* ---- events ---------------------------------------------------------------------------------- */

/* "/presence" + dest: the events' destination. NUL-terminated in out; 0 when it does not fit. */
static size_t events_name(const char *dest, size_t len, char *out, size_t cap)
{
    size_t prefix = strlen(PRESENCE_PREFIX);
    if (prefix + len >= cap)
        return 0;
    memcpy(out, PRESENCE_PREFIX, prefix);
    memcpy(out + prefix, dest, len);
    out[prefix + len] = '\0';
    return prefix + len;
}

/* A join or leave MESSAGE for the events of dest; NULL when out of memory. */
static struct message *event_message(const struct presence *p, const char *dest, size_t len,
                                     const char *user, const struct presence_change *ch)
{
    char name[CONFIG_ADDR_MAX + 1100], count[24];
    size_t name_len = events_name(dest, len, name, sizeof(name));
    if (name_len == 0)
        return NULL;
    snprintf(count, sizeof(count), "%zu", ch->count);
    const char *what = ch->edge == PRESENCE_JOIN ? "join" : "leave";
    struct stomp_header headers[] = {
        {"x-presence-event", strlen("x-presence-event"), what, strlen(what)},
        {"x-presence-user", strlen("x-presence-user"), user, strlen(user)},
        {"x-presence-count", strlen("x-presence-count"), count, strlen(count)},
    };
    struct message *msg = message_new(name, name_len, headers, 3, "", 0);
    if (msg != NULL) {
        msg->stream_offset = ch->seq;
        msg->stream_epoch = p->epoch;
    }
    return msg;
}

/*
 * Sends a join or leave to the /presence/ subscribers of every loop. Called under the lock: with
 * several loops the backend only hands copies to every loop's inbox, this one's too
 * (fanout_ops.publish_ordered), so each loop sees a destination's events in sequence order.
 * With one loop (or a backend without publish_ordered) *local is set: the caller delivers it here
 * once the lock is released.
 */
static void hand_on(struct broker *b, struct message *msg, struct message **local)
{
    *local = NULL;
    if (b->fanout.ops != NULL && b->fanout.ops->publish_ordered != NULL && b->inboxes != NULL) {
        b->fanout.ops->publish_ordered(b->fanout.ctx, msg);
        message_unref(msg);
        return;
    }
    *local = msg;
}

static void deliver_here(struct broker *b, struct message *local)
{
    if (local == NULL)
        return;
    if (router_publish_topic(&b->router, local, local->destination, local->destination_len) == 0)
        b->router.stats.unroutable++;
    b->router.stats.published++;
    message_unref(local);
}

static void publish_change(struct broker *b, const char *dest, size_t len, const char *user,
                           const struct presence_change *ch, struct message **local)
{
    *local = NULL;
    if (ch->edge == PRESENCE_SAME)
        return;
    if (b->fanout.ops != NULL && b->fanout.ops->presence_edge != NULL) {
        /* the cluster's edge and event are the backend's (this node's edge may not be one) */
        b->fanout.ops->presence_edge(b->fanout.ctx, dest, len, user, ch->edge == PRESENCE_JOIN);
        return;
    }
    struct message *msg = event_message(b->presence, dest, len, user, ch);
    if (msg == NULL) {
        log_error(0, "presence: out of memory: %s of '%s' on %.*s not sent",
                  ch->edge == PRESENCE_JOIN ? "join" : "leave", user, (int)len, dest);
        return;
    }
    hand_on(b, msg, local);
}

void presence_subscribed(struct broker *b, struct subscription *sub, const char *route, size_t len,
                         const char *user)
{
    struct presence *p = b->presence;
    if (user == NULL || user[0] == '\0' || !presence_tracks(p, route, len))
        return;
    if ((sub->presence_user = strdup(user)) == NULL) {
        log_error(0, "presence: out of memory: '%s' not counted on %.*s", user, (int)len, route);
        return;
    }
    struct presence_change ch;
    struct message *local = NULL;
    lock(p);
    int rc = presence_table_add(p, route, len, user, strlen(user), &ch);
    if (rc == 0)
        publish_change(b, route, len, user, &ch, &local);
    unlock(p);
    deliver_here(b, local);
    if (rc != 0) {
        log_error(0, "presence: out of memory: '%s' not counted on %.*s", user, (int)len, route);
        free(sub->presence_user);
        sub->presence_user = NULL;
    }
}

void presence_unsubscribed(struct broker *b, struct subscription *sub)
{
    if (sub->presence_snapshot != NULL) { /* its snapshot is still being read */
        b->fanout.ops->presence_forget(b->fanout.ctx, sub->presence_snapshot);
        free(sub->presence_snapshot); /* the first member of its struct snapshot_wait */
        sub->presence_snapshot = NULL;
    }
    char *user = sub->presence_user;
    if (user == NULL)
        return;
    sub->presence_user = NULL;
    struct presence *p = b->presence;
    struct presence_change ch;
    struct message *local = NULL;
    lock(p);
    presence_table_remove(p, sub->destination, sub->destination_len, user, strlen(user), &ch);
    publish_change(b, sub->destination, sub->destination_len, user, &ch, &local);
    unlock(p);
    deliver_here(b, local);
    free(user);
}

/* ---- snapshots and queries ------------------------------------------------------------------- */

bool presence_is_events_name(const char *dest, size_t len)
{
    size_t prefix = strlen(PRESENCE_PREFIX "/");
    return len >= prefix && memcmp(dest, PRESENCE_PREFIX "/", prefix) == 0;
}

/* The local table's answer for dest, under the lock: names (max of them) owned by the caller
 * (free(a->names)); -1 when out of memory. */
static int local_answer(struct presence *p, const char *dest, size_t len, struct presence_answer *a)
{
    size_t max = p->max_users;
    const char **names = max > 0 ? malloc(max * sizeof(*names)) : NULL;
    if (max > 0 && names == NULL)
        return -1;
    uint64_t seq;
    size_t n = presence_table_users(p, dest, len, names, max, &seq);
    *a = (struct presence_answer){.names = names,
                                  .name_count = n,
                                  .count = presence_table_count(p, dest, len),
                                  .seq = seq,
                                  .epoch = p->epoch};
    return 0;
}

/* Adds "count", "users" and "truncated" of an answer to doc: -1 when out of memory. */
static int add_answer(json_t *doc, const struct presence_answer *a)
{
    json_t *users = json_array();
    bool ok = users != NULL;
    for (size_t i = 0; ok && i < a->name_count; i++)
        ok = json_array_append_new(users, json_string(a->names[i])) == 0;
    ok = ok && json_object_set_new(doc, "count", json_integer((json_int_t)a->count)) == 0 &&
         json_object_set(doc, "users", users) == 0 &&
         json_object_set_new(doc, "truncated", json_boolean(a->name_count < a->count)) == 0;
    json_decref(users);
    return ok ? 0 : -1;
}

/* The snapshot MESSAGE of route (/presence/topic/NAME) for an answer; NULL when out of memory. */
static struct message *snapshot_message(const char *route, size_t len,
                                        const struct presence_answer *a)
{
    json_t *doc = json_object();
    char *body = doc != NULL && add_answer(doc, a) == 0
                     ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER)
                     : NULL;
    json_decref(doc);
    if (body == NULL)
        return NULL;
    char count[24];
    snprintf(count, sizeof(count), "%zu", a->count);
    struct stomp_header headers[] = {
        {"x-presence-event", strlen("x-presence-event"), "snapshot", strlen("snapshot")},
        {"x-presence-count", strlen("x-presence-count"), count, strlen(count)},
        {"content-type", strlen("content-type"), "application/json", strlen("application/json")},
    };
    struct message *msg = message_new(route, len, headers, 3, body, strlen(body));
    free(body);
    if (msg != NULL) {
        msg->stream_offset = a->seq;
        msg->stream_epoch = a->epoch;
    }
    return msg;
}

/* Events up to the snapshot's number may still be in this loop's inbox: sub skips them. */
static int mark_snapshot(struct subscription *sub, const struct message *snap)
{
    struct history_mark *mark = malloc(sizeof(*mark));
    if (mark == NULL)
        return -1;
    *mark = (struct history_mark){.offset = snap->stream_offset, .epoch = snap->stream_epoch};
    if (sub->stream_marks == NULL && (sub->stream_marks = malloc(sizeof(struct dict))) != NULL)
        dict_init(sub->stream_marks);
    if (sub->stream_marks == NULL ||
        dict_set(sub->stream_marks, snap->destination, snap->destination_len, mark) != 0) {
        free(mark);
        return -1;
    }
    return 0;
}

static void deliver_snapshot(struct broker *b, struct subscription *sub, struct message *snap)
{
    if (b->router.ops.deliver(sub, snap, false) == 0)
        b->router.stats.delivered++;
    else
        b->router.stats.dropped++;
    message_unref(snap);
}

/* The snapshot of route from the process's table; the caller holds the lock. */
static struct message *local_snapshot(struct presence *p, const char *route, size_t len)
{
    size_t prefix = strlen(PRESENCE_PREFIX);
    struct presence_answer a;
    if (local_answer(p, route + prefix, len - prefix, &a) != 0)
        return NULL;
    struct message *snap = snapshot_message(route, len, &a);
    free((void *)a.names);
    return snap;
}

/* The snapshot from the process's table: taken, and sub put in the router, under the lock. */
static int follow_locally(struct broker *b, struct subscription *sub, const char *route, size_t len)
{
    struct presence *p = b->presence;
    lock(p);
    struct message *snap = local_snapshot(p, route, len);
    int rc = snap == NULL ? PRESENCE_ERR_NOMEM : 0;
    if (rc == 0 && b->inboxes != NULL && snap->stream_offset > 0 && mark_snapshot(sub, snap) != 0)
        rc = PRESENCE_ERR_NOMEM;
    /* In the router before the lock is released: no event after the snapshot can miss it. */
    if (rc == 0 && router_subscribe_exact(&b->router, sub, route, len) != 0)
        rc = PRESENCE_ERR_NOMEM;
    unlock(p);
    if (rc != 0) {
        message_unref(snap);
        return rc;
    }
    deliver_snapshot(b, sub, snap);
    return 0;
}

/* A snapshot the backend reads (the cluster's users, in Redis). */
struct snapshot_wait {
    struct presence_waiter waiter; /* first: the backend's handle */
    struct broker *b;
    struct subscription *sub; /* borrowed: it holds this wait in presence_snapshot */
};

static void snapshot_answered(struct presence_waiter *w, const struct presence_answer *a)
{
    struct snapshot_wait *sw = (struct snapshot_wait *)w;
    struct subscription *sub = sw->sub;
    struct broker *b = sw->b;
    sub->presence_snapshot = NULL;
    free(sw);
    struct message *snap = NULL;
    if (a != NULL) {
        snap = snapshot_message(sub->destination, sub->destination_len, a);
    } else { /* no answer from the backend: this node's own users, as a fallback */
        log_warn(0, "presence: no cluster snapshot for %s: this node's users only",
                 sub->destination);
        lock(b->presence);
        snap = local_snapshot(b->presence, sub->destination, sub->destination_len);
        unlock(b->presence);
    }
    /* The snapshot, then the events held meanwhile that it does not include. */
    publish_replay_done(b, sub, NULL, 0, false, &snap, snap != NULL ? 1 : 0);
    message_unref(snap);
}

/* In the router at once (its events are held until the snapshot), the snapshot read later. */
static int follow_through_backend(struct broker *b, struct subscription *sub, const char *route,
                                  size_t len)
{
    struct snapshot_wait *sw = calloc(1, sizeof(*sw));
    if (sw == NULL || router_subscribe_exact(&b->router, sub, route, len) != 0) {
        free(sw);
        return PRESENCE_ERR_NOMEM;
    }
    *sw = (struct snapshot_wait){.waiter.answered = snapshot_answered, .b = b, .sub = sub};
    sub->replay_pending = true;
    sub->presence_snapshot = &sw->waiter;
    size_t prefix = strlen(PRESENCE_PREFIX);
    if (b->fanout.ops->presence_query(b->fanout.ctx, route + prefix, len - prefix,
                                      b->presence->max_users, true, &sw->waiter) == 0)
        return 0;
    sub->presence_snapshot = NULL;
    free(sw);
    /* The backend cannot ask now (Redis down): this node's own users. */
    lock(b->presence);
    struct message *snap = local_snapshot(b->presence, route, len);
    unlock(b->presence);
    publish_replay_done(b, sub, NULL, 0, false, &snap, snap != NULL ? 1 : 0);
    message_unref(snap);
    return 0;
}

int presence_follow(struct broker *b, struct subscription *sub, const char *route, size_t len)
{
    struct presence *p = b->presence;
    size_t prefix = strlen(PRESENCE_PREFIX);
    if (!presence_is_events_name(route, len) || !presence_tracks(p, route + prefix, len - prefix))
        return PRESENCE_ERR_OFF;
    if (b->fanout.ops != NULL && b->fanout.ops->presence_query != NULL)
        return follow_through_backend(b, sub, route, len);
    return follow_locally(b, sub, route, len);
}

char *presence_answer_json(const char *dest, size_t len, const struct presence_answer *a,
                           bool partial)
{
    json_t *doc = json_object();
    char *text = NULL;
    if (doc != NULL && json_object_set_new(doc, "destination", json_stringn(dest, len)) == 0 &&
        add_answer(doc, a) == 0 &&
        (!partial || json_object_set_new(doc, "partial", json_true()) == 0))
        text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(doc);
    return text;
}

char *presence_query_json(struct broker *b, const char *dest, size_t len, bool partial)
{
    struct presence *p = b->presence;
    struct presence_answer a;
    lock(p);
    int rc = local_answer(p, dest, len, &a);
    char *text = rc == 0 ? presence_answer_json(dest, len, &a, partial) : NULL;
    unlock(p);
    if (rc == 0)
        free((void *)a.names);
    return text;
}
