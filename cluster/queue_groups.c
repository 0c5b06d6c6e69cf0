#include "cluster/queue_groups.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/base/dict.h"
#include "broker/base/log.h"
#include "cluster/slots.h"

struct queue_groups {
    struct event_base *base; /* borrowed */
    struct bridge_config cfg;
    unsigned visibility_ms;
    size_t buffer_bytes;
    struct streams_ops ops;
    struct streams *first; /* owned: the default group (the only one with one Redis) */
    struct dict tagged;    /* owned values: tag -> struct streams * (cluster mode) */
};

/* A group named by tag: its own key prefix and consumer group "<prefix>:{<tag>}". */
static struct streams *group_new(struct queue_groups *g, const char *tag, size_t tag_len)
{
    struct bridge_config scfg = g->cfg;
    if (g->cfg.cluster != NULL) {
        int n = snprintf(scfg.prefix, sizeof(scfg.prefix), "%s:{%.*s}", g->cfg.prefix, (int)tag_len,
                         tag);
        if (n < 0 || (size_t)n >= sizeof(scfg.prefix))
            return NULL;
    }
    return streams_new(g->base, &scfg, g->visibility_ms, g->buffer_bytes, &g->ops);
}

struct queue_groups *queue_groups_new(struct event_base *base, const struct bridge_config *cfg,
                                      unsigned visibility_ms, size_t buffer_bytes,
                                      const struct streams_ops *ops)
{
    struct queue_groups *g = calloc(1, sizeof(*g));
    if (g == NULL)
        return NULL;
    *g = (struct queue_groups){.base = base,
                               .cfg = *cfg,
                               .visibility_ms = visibility_ms,
                               .buffer_bytes = buffer_bytes,
                               .ops = *ops};
    dict_init(&g->tagged);
    g->first = group_new(g, QUEUE_GROUP_DEFAULT_TAG, strlen(QUEUE_GROUP_DEFAULT_TAG));
    if (g->first == NULL) {
        free(g);
        return NULL;
    }
    return g;
}

void queue_groups_free(struct queue_groups *g)
{
    if (g == NULL)
        return;
    size_t bucket;
    for (struct dict_entry *e = dict_first(&g->tagged, &bucket); e != NULL;
         e = dict_next(&g->tagged, &bucket, e))
        streams_free(e->value);
    dict_reset(&g->tagged);
    streams_free(g->first);
    free(g);
}

struct streams *queue_groups_of(struct queue_groups *g, const char *name, size_t len)
{
    size_t at, tag_len;
    if (g->cfg.cluster == NULL || !slots_hash_tag(name, len, &at, &tag_len))
        return g->first;
    const char *tag = name + at;
    if (tag_len == strlen(QUEUE_GROUP_DEFAULT_TAG) &&
        memcmp(tag, QUEUE_GROUP_DEFAULT_TAG, tag_len) == 0)
        return g->first;
    struct streams *s = dict_get(&g->tagged, tag, tag_len);
    if (s != NULL)
        return s;
    if (g->tagged.count >= QUEUE_GROUPS_MAX) {
        log_warn(0, "cluster: more than %d queue hash tags; %.*s goes with the untagged queues",
                 QUEUE_GROUPS_MAX, (int)len, name);
        return g->first;
    }
    s = group_new(g, tag, tag_len);
    if (s != NULL && dict_set(&g->tagged, tag, tag_len, s) != 0) {
        streams_free(s);
        s = NULL;
    }
    return s;
}

/* Walks the groups, the default one first: `struct group_iter it = {0};` then next_group() until
 * NULL. */
struct group_iter {
    bool started;
    size_t bucket;
    struct dict_entry *e;
};

static struct streams *next_group(const struct queue_groups *g, struct group_iter *it)
{
    if (!it->started) {
        it->started = true;
        it->e = dict_first(&g->tagged, &it->bucket);
        return g->first;
    }
    if (it->e == NULL)
        return NULL;
    struct streams *s = it->e->value;
    it->e = dict_next(&g->tagged, &it->bucket, it->e);
    return s;
}

void queue_groups_kick(struct queue_groups *g)
{
    struct group_iter it = {0};
    for (struct streams *s; (s = next_group(g, &it)) != NULL;)
        streams_kick(s);
}

void queue_groups_forget(struct queue_groups *g, const void *waiter)
{
    struct group_iter it = {0};
    for (struct streams *s; (s = next_group(g, &it)) != NULL;)
        streams_forget(s, waiter);
}

bool queue_groups_link_up(const struct queue_groups *g)
{
    struct group_iter it = {0};
    for (struct streams *s; (s = next_group(g, &it)) != NULL;)
        if (!streams_link_up(s))
            return false;
    return true;
}

bool queue_groups_flushed(const struct queue_groups *g)
{
    struct group_iter it = {0};
    for (struct streams *s; (s = next_group(g, &it)) != NULL;)
        if (!streams_flushed(s) && streams_link_up(s))
            return false;
    return true;
}

_Static_assert(sizeof(struct streams_stats) % sizeof(uint64_t) == 0,
               "streams_stats holds uint64_t figures only");

void queue_groups_stats(const struct queue_groups *g, struct streams_stats *out)
{
    memset(out, 0, sizeof(*out));
    uint64_t *sum = (uint64_t *)out;
    struct group_iter it = {0};
    for (struct streams *s; (s = next_group(g, &it)) != NULL;) {
        const uint64_t *v = (const uint64_t *)streams_stats(s);
        for (size_t i = 0; i < sizeof(*out) / sizeof(uint64_t); i++)
            sum[i] += v[i];
    }
}

size_t queue_groups_count(const struct queue_groups *g)
{
    return 1 + g->tagged.count;
}
