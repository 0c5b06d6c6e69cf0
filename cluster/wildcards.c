#include "cluster/wildcards.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/base/dict.h"
#include "broker/base/log.h"
#include "cluster/common.h"
#include "cluster/redis.h"

#define STALE_AFTER_REFRESHES 3

struct wildcards {
    struct event_base *base; /* borrowed */
    struct redis_link *link; /* borrowed: the bridge's routing publish link */
    char key[80];            /* "<prefix>:wildcards": the sorted set, and the notice channel */
    char node_id[64];
    unsigned refresh_ms;
    struct dict own;     /* owned keys: this node's globs (values: the object itself) */
    struct dict known;   /* owned keys: every node's globs as last read (values: the object) */
    bool reading;        /* a ZRANGEBYSCORE is in flight */
    bool read_again;     /* a notice came while it was */
    struct event *timer; /* owned: persistent, every refresh_ms */
    uint64_t last_warn_ms;
    struct wildcards_stats stats;
};

/* ---- glob matching ------------------------------------------------------------------------- */

/* One [set] at glob[*gi] (just past the '['): does it take c? Advances *gi past the ']'. */
static bool set_matches(const char *glob, size_t glob_len, size_t *gi, char c)
{
    size_t i = *gi;
    bool negate = i < glob_len && glob[i] == '^';
    bool hit = false;
    i += negate;
    for (; i < glob_len && glob[i] != ']'; i++) {
        if (glob[i] == '\\' && i + 1 < glob_len) {
            hit |= glob[++i] == c;
        } else if (i + 2 < glob_len && glob[i + 1] == '-' && glob[i + 2] != ']') {
            char lo = glob[i], hi = glob[i + 2];
            if (lo > hi) {
                char t = lo;
                lo = hi;
                hi = t;
            }
            hit |= c >= lo && c <= hi;
            i += 2;
        } else {
            hit |= glob[i] == c;
        }
    }
    *gi = i < glob_len ? i + 1 : i;
    return hit != negate;
}

/* Iterative, with one backtrack point (the last '*'): linear in practice, no recursion. */
bool wildcards_glob_match(const char *glob, size_t glob_len, const char *s, size_t len)
{
    size_t gi = 0, si = 0, star_gi = SIZE_MAX, star_si = 0;
    while (si < len) {
        if (gi < glob_len && glob[gi] == '*') {
            star_gi = ++gi;
            star_si = si;
            continue;
        }
        if (gi < glob_len) {
            size_t next = gi + 1;
            bool ok;
            if (glob[gi] == '?') {
                ok = true;
            } else if (glob[gi] == '[') {
                ok = set_matches(glob, glob_len, &next, s[si]);
            } else if (glob[gi] == '\\' && gi + 1 < glob_len) {
                ok = glob[gi + 1] == s[si];
                next = gi + 2;
            } else {
                ok = glob[gi] == s[si];
            }
            if (ok) {
                gi = next;
                si++;
                continue;
            }
        }
        if (star_gi == SIZE_MAX)
            return false;
        gi = star_gi; /* let the last '*' take one more byte */
        si = ++star_si;
    }
    while (gi < glob_len && glob[gi] == '*')
        gi++;
    return gi == glob_len;
}

/* ---- the registry ---------------------------------------------------------------------------- */

static void warn(struct wildcards *w, const char *what, const redisReply *reply)
{
    if (cluster_warn_due(&w->last_warn_ms))
        log_warn(0, "cluster: wildcard registry %s: %.*s", what,
                 reply != NULL && reply->type == REDIS_REPLY_ERROR ? (int)reply->len : 11,
                 reply != NULL && reply->type == REDIS_REPLY_ERROR ? reply->str : "link lost");
}

static void on_read(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct wildcards *w = privdata;
    const redisReply *reply = r;
    w->reading = false;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        warn(w, "read", reply);
        return;
    }
    dict_reset(&w->known);
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *m = reply->element[i];
        const char *nl = m->type == REDIS_REPLY_STRING ? memchr(m->str, '\n', m->len) : NULL;
        if (nl != NULL)
            (void)dict_set(&w->known, nl + 1, m->len - (size_t)(nl + 1 - m->str), w);
    }
    w->stats.reloads++;
    w->stats.globs = w->known.count;
    if (w->read_again) {
        w->read_again = false;
        wildcards_changed(w);
    }
}

static void on_written(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    const redisReply *reply = r;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        warn(privdata, "write", reply);
}

/* ZADD (present) or ZREM this node's glob; false when it is too long to register (its topics
 * then reach it only from this node). */
static bool write_own(struct wildcards *w, const char *glob, size_t len, bool present)
{
    char member[512];
    int n = snprintf(member, sizeof(member), "%s\n%.*s", w->node_id, (int)len, glob);
    if (n < 0 || (size_t)n >= sizeof(member))
        return false;
    char score[24];
    snprintf(score, sizeof(score), "%llu",
             (unsigned long long)(cluster_now_realtime_ms() +
                                  (uint64_t)STALE_AFTER_REFRESHES * w->refresh_ms));
    const char *argv[4] = {present ? "ZADD" : "ZREM", w->key};
    size_t lens[4] = {4, strlen(w->key)};
    int argc = 2;
    if (present) { /* ZADD key score member; ZREM key member */
        argv[argc] = score;
        lens[argc++] = strlen(score);
    }
    argv[argc] = member;
    lens[argc++] = (size_t)n;
    return redis_link_command_argv(w->link, on_written, w, argc, argv, lens) == 0;
}

/* One change of this node's globs, then the notice that makes every node read the set again. */
static void write_one(struct wildcards *w, const char *glob, size_t len, bool present)
{
    if (!write_own(w, glob, len, present))
        return;
    const char *notice[] = {"PUBLISH", w->key, "1"};
    const size_t notice_len[] = {7, strlen(w->key), 1};
    (void)redis_link_command_argv(w->link, on_written, w, 3, notice, notice_len);
}

/* Renews this node's globs, forgets the stale ones of any node, and reads the set. */
static void refresh(struct wildcards *w)
{
    if (!redis_link_is_up(w->link))
        return;
    size_t bucket;
    for (struct dict_entry *e = dict_first(&w->own, &bucket); e != NULL;
         e = dict_next(&w->own, &bucket, e))
        (void)write_own(w, e->key, e->key_len, true);
    char now[24];
    snprintf(now, sizeof(now), "%llu", (unsigned long long)cluster_now_realtime_ms());
    const char *trim[] = {"ZREMRANGEBYSCORE", w->key, "-inf", now};
    const size_t trim_len[] = {16, strlen(w->key), 4, strlen(now)};
    (void)redis_link_command_argv(w->link, on_written, w, 4, trim, trim_len);
    wildcards_changed(w);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    refresh(arg);
}

/* ---- interface ------------------------------------------------------------------------------- */

struct wildcards *wildcards_new(struct event_base *base, struct redis_link *link,
                                const char *prefix, const char *node_id, unsigned refresh_ms)
{
    struct wildcards *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    w->base = base;
    w->link = link;
    w->refresh_ms = refresh_ms != 0 ? refresh_ms : 5000;
    snprintf(w->key, sizeof(w->key), "%s:wildcards", prefix);
    snprintf(w->node_id, sizeof(w->node_id), "%s", node_id);
    dict_init(&w->own);
    dict_init(&w->known);
    w->timer = event_new(base, -1, EV_PERSIST, on_timer, w);
    struct timeval every = {.tv_sec = w->refresh_ms / 1000,
                            .tv_usec = (w->refresh_ms % 1000) * 1000};
    if (w->timer == NULL || event_add(w->timer, &every) != 0) {
        wildcards_free(w);
        return NULL;
    }
    return w;
}

void wildcards_free(struct wildcards *w)
{
    if (w == NULL)
        return;
    if (w->timer != NULL)
        event_free(w->timer);
    dict_reset(&w->own);
    dict_reset(&w->known);
    free(w);
}

void wildcards_own(struct wildcards *w, const char *glob, size_t len, bool present)
{
    bool had = dict_get(&w->own, glob, len) != NULL;
    if (present == had)
        return;
    if (present && dict_set(&w->own, glob, len, w) != 0)
        return;
    if (!present)
        dict_remove(&w->own, glob, len);
    w->stats.own = w->own.count;
    if (redis_link_is_up(w->link))
        write_one(w, glob, len, present); /* else the next refresh writes them all */
}

const char *wildcards_channel(const struct wildcards *w)
{
    return w->key;
}

void wildcards_changed(struct wildcards *w)
{
    if (w->reading) {
        w->read_again = true;
        return;
    }
    char now[24];
    snprintf(now, sizeof(now), "%llu", (unsigned long long)cluster_now_realtime_ms());
    const char *argv[] = {"ZRANGEBYSCORE", w->key, now, "+inf"};
    const size_t lens[] = {13, strlen(w->key), strlen(now), 4};
    if (redis_link_command_argv(w->link, on_read, w, 4, argv, lens) == 0)
        w->reading = true;
}

bool wildcards_match(struct wildcards *w, const char *channel, size_t len)
{
    size_t bucket;
    for (struct dict_entry *e = dict_first(&w->known, &bucket); e != NULL;
         e = dict_next(&w->known, &bucket, e))
        if (wildcards_glob_match(e->key, e->key_len, channel, len)) {
            w->stats.matched++;
            return true;
        }
    return false;
}

const struct wildcards_stats *wildcards_stats(const struct wildcards *w)
{
    return &w->stats;
}
