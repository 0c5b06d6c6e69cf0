#include "broker/core/presence.h"
#include "broker/base/dict.h"
#include "broker/base/log.h"
#include "broker/base/message.h"
#include "broker/core/broker.h"
#include "broker/core/destination.h"
#include "broker/core/history.h"
#include "broker/core/router.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    dict_init(&p->dests);
    pthread_mutex_init(&p->lock, NULL);
    return p;
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

/* Adds "count", "users" and "truncated" of dest to doc, under the lock; *seq: the newest event
 * the answer includes. -1 when out of memory. */
static int add_users(struct presence *p, const char *dest, size_t len, json_t *doc, uint64_t *seq)
{
    size_t max = p->max_users;
    const char **names = max > 0 ? malloc(max * sizeof(*names)) : NULL;
    if (max > 0 && names == NULL)
        return -1;
    size_t count = presence_table_count(p, dest, len);
    size_t n = presence_table_users(p, dest, len, names, max, seq);
    json_t *users = json_array();
    bool ok = users != NULL;
    for (size_t i = 0; ok && i < n; i++)
        ok = json_array_append_new(users, json_string(names[i])) == 0;
    free(names);
    ok = ok && json_object_set_new(doc, "count", json_integer((json_int_t)count)) == 0 &&
         json_object_set(doc, "users", users) == 0 &&
         json_object_set_new(doc, "truncated", json_boolean(n < count)) == 0;
    json_decref(users);
    return ok ? 0 : -1;
}

/* The snapshot MESSAGE of route's destination, taken under the lock. */
static struct message *snapshot_message(struct presence *p, const char *route, size_t len)
{
    size_t prefix = strlen(PRESENCE_PREFIX);
    uint64_t seq = 0;
    json_t *doc = json_object();
    char *body = doc != NULL && add_users(p, route + prefix, len - prefix, doc, &seq) == 0
                     ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER)
                     : NULL;
    json_decref(doc);
    if (body == NULL)
        return NULL;
    char count[24];
    snprintf(count, sizeof(count), "%zu", presence_table_count(p, route + prefix, len - prefix));
    struct stomp_header headers[] = {
        {"x-presence-event", strlen("x-presence-event"), "snapshot", strlen("snapshot")},
        {"x-presence-count", strlen("x-presence-count"), count, strlen(count)},
        {"content-type", strlen("content-type"), "application/json", strlen("application/json")},
    };
    struct message *msg = message_new(route, len, headers, 3, body, strlen(body));
    free(body);
    if (msg != NULL) {
        msg->stream_offset = seq;
        msg->stream_epoch = p->epoch;
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

int presence_follow(struct broker *b, struct subscription *sub, const char *route, size_t len)
{
    struct presence *p = b->presence;
    size_t prefix = strlen(PRESENCE_PREFIX);
    if (!presence_is_events_name(route, len) || !presence_tracks(p, route + prefix, len - prefix))
        return PRESENCE_ERR_OFF;
    lock(p);
    struct message *snap = snapshot_message(p, route, len);
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
    if (b->router.ops.deliver(sub, snap, false) == 0)
        b->router.stats.delivered++;
    else
        b->router.stats.dropped++;
    message_unref(snap);
    return 0;
}

char *presence_query_json(struct broker *b, const char *dest, size_t len)
{
    struct presence *p = b->presence;
    uint64_t seq;
    json_t *doc = json_object();
    if (doc == NULL || json_object_set_new(doc, "destination", json_stringn(dest, len)) != 0) {
        json_decref(doc);
        return NULL;
    }
    lock(p);
    int rc = add_users(p, dest, len, doc, &seq);
    unlock(p);
    char *text = rc == 0 ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    return text;
}
