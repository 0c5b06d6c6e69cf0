#include "broker/core/router.h"
#include "broker/core/history.h"
#include "broker/core/queue.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Subscribers of one exact topic name. */
struct topic {
    struct subscription *subs; /* not owned: list */
    size_t name_len;
    char name[];
};

/* One segment of wildcard patterns: children by segment text ("*" and "#" included). */
struct trie_node {
    struct trie_node *parent;  /* NULL for the root */
    struct dict children;      /* owned: segment -> struct trie_node */
    struct subscription *subs; /* not owned: patterns ending here */
    size_t refs;               /* subscriptions in this subtree, to prune empty branches */
    size_t segment_len;
    char segment[];
};

void router_init(struct router *r, const struct delivery_ops *ops, size_t queue_max_messages)
{
    memset(r, 0, sizeof(*r));
    r->ops = *ops;
    dict_init(&r->topics);
    dict_init(&r->queues.by_name);
    r->queues.ops = &r->ops; /* the router is never copied once initialised */
    r->queues.stats = &r->stats;
    r->queues.max_messages = queue_max_messages;
}

static void free_trie(struct trie_node *node)
{
    if (node == NULL)
        return;
    size_t bucket;
    for (struct dict_entry *e = dict_first(&node->children, &bucket); e != NULL;
         e = dict_next(&node->children, &bucket, e))
        free_trie(e->value);
    dict_reset(&node->children);
    free(node);
}

void router_reset(struct router *r)
{
    size_t bucket;
    for (struct dict_entry *e = dict_first(&r->topics, &bucket); e != NULL;
         e = dict_next(&r->topics, &bucket, e))
        free(e->value);
    dict_reset(&r->topics);
    free_trie(r->wildcards);
    r->wildcards = NULL;
    struct dict_entry *e;
    while ((e = dict_first(&r->queues.by_name, &bucket)) != NULL) {
        struct queue *q = e->value;
        q->consumers = NULL;
        q->consumer_count = 0;
        queue_delete(&r->queues, q);
    }
    dict_reset(&r->queues.by_name);
}

static void list_push(struct subscription **head, struct subscription *sub)
{
    sub->prev = NULL;
    sub->next = *head;
    if (*head != NULL)
        (*head)->prev = sub;
    *head = sub;
}

static void list_remove(struct subscription **head, struct subscription *sub)
{
    if (sub->prev != NULL)
        sub->prev->next = sub->next;
    else
        *head = sub->next;
    if (sub->next != NULL)
        sub->next->prev = sub->prev;
    sub->prev = sub->next = NULL;
}

static void notify_interest(struct router *r, const char *name, size_t len, bool pattern,
                            bool added)
{
    if (r->ops.interest != NULL)
        r->ops.interest(r->ops.ctx, name, len, pattern, added);
}

/* The normalized pattern a trie node stands for: "/topic/" + segments from the root. */
static size_t trie_pattern(const struct trie_node *node, char *out, size_t cap)
{
    const struct trie_node *path[DESTINATION_MAX_SEGMENTS + 1];
    size_t depth = 0;
    for (; node != NULL && node->parent != NULL && depth <= DESTINATION_MAX_SEGMENTS;
         node = node->parent)
        path[depth++] = node;
    size_t n = (size_t)snprintf(out, cap, "%s", TOPIC_PREFIX);
    while (depth > 0 && n < cap) {
        const struct trie_node *seg = path[--depth];
        n += (size_t)snprintf(out + n, cap - n, "%.*s%s", (int)seg->segment_len, seg->segment,
                              depth > 0 ? "." : "");
    }
    return n < cap ? n : 0;
}

static void notify_pattern(struct router *r, const struct trie_node *node, bool added)
{
    char pattern[2048];
    size_t len = trie_pattern(node, pattern, sizeof(pattern));
    if (len > 0)
        notify_interest(r, pattern, len, true, added);
}

static struct trie_node *trie_node_new(struct trie_node *parent, const char *seg, size_t len)
{
    struct trie_node *node = calloc(1, sizeof(*node) + len + 1);
    if (node == NULL)
        return NULL;
    node->parent = parent;
    dict_init(&node->children);
    memcpy(node->segment, seg, len);
    node->segment_len = len;
    return node;
}

static struct trie_node *trie_child(struct trie_node *node, const char *seg, size_t len,
                                    bool create)
{
    struct trie_node *child = dict_get(&node->children, seg, len);
    if (child != NULL || !create)
        return child;
    child = trie_node_new(node, seg, len);
    if (child == NULL)
        return NULL;
    if (dict_set(&node->children, seg, len, child) != 0) {
        free(child);
        return NULL;
    }
    return child;
}

/* Drops nodes with no subscriptions left below them, from node up towards the root. */
static void trie_prune(struct router *r, struct trie_node *node)
{
    while (node != NULL && node->refs == 0) {
        struct trie_node *parent = node->parent;
        if (parent != NULL)
            dict_remove(&parent->children, node->segment, node->segment_len);
        else
            r->wildcards = NULL;
        dict_reset(&node->children);
        free(node);
        node = parent;
    }
}

static int subscribe_wildcard(struct router *r, struct subscription *sub, const char *pattern,
                              size_t len)
{
    if (r->wildcards == NULL && (r->wildcards = trie_node_new(NULL, "", 0)) == NULL)
        return ROUTER_ERR_NOMEM;
    struct destination_segments s;
    if (destination_split(pattern, len, &s) != 0)
        return ROUTER_ERR_BAD_DEST;
    struct trie_node *node = r->wildcards;
    for (size_t i = 0; i < s.count; i++) {
        /* "#.#" matches what "#" does; folding them keeps matching polynomial in depth. */
        if (i > 0 && s.len[i] == 1 && s.ptr[i][0] == '#' && s.len[i - 1] == 1 &&
            s.ptr[i - 1][0] == '#')
            continue;
        struct trie_node *child = trie_child(node, s.ptr[i], s.len[i], true);
        if (child == NULL) {
            trie_prune(r, node);
            return ROUTER_ERR_NOMEM;
        }
        node = child;
    }
    bool first = node->subs == NULL;
    list_push(&node->subs, sub);
    for (struct trie_node *n = node; n != NULL; n = n->parent)
        n->refs++;
    if (first)
        notify_pattern(r, node, true);
    sub->target = node;
    sub->target_kind = SUB_TARGET_WILDCARD;
    return 0;
}

static int subscribe_topic(struct router *r, struct subscription *sub, const char *name, size_t len)
{
    struct topic *t = dict_get(&r->topics, name, len);
    if (t == NULL) {
        t = calloc(1, sizeof(*t) + len + 1);
        if (t == NULL)
            return ROUTER_ERR_NOMEM;
        memcpy(t->name, name, len);
        t->name_len = len;
        if (dict_set(&r->topics, name, len, t) != 0) {
            free(t);
            return ROUTER_ERR_NOMEM;
        }
        notify_interest(r, name, len, false, true);
    }
    list_push(&t->subs, sub);
    sub->target = t;
    sub->target_kind = SUB_TARGET_TOPIC;
    return 0;
}

int router_subscribe(struct router *r, struct subscription *sub, const char *name, size_t len)
{
    switch (destination_kind(name, len)) {
    case DEST_TOPIC: {
        size_t skip = strlen(TOPIC_PREFIX);
        if (destination_is_wildcard(name, len))
            return subscribe_wildcard(r, sub, name + skip, len - skip);
        return subscribe_topic(r, sub, name, len);
    }
    case DEST_USER: /* an exact topic name of its own: the trie never sees it */
        if (destination_user_parse(name, len, NULL) != 0)
            return ROUTER_ERR_BAD_DEST;
        return subscribe_topic(r, sub, name, len);
    case DEST_QUEUE:
    case DEST_REPLY_QUEUE: {
        struct queue *q = queue_lookup(&r->queues, name, len, true);
        if (q == NULL)
            return ROUTER_ERR_NOMEM;
        sub->target_kind = SUB_TARGET_QUEUE;
        queue_add_consumer(&r->queues, q, sub);
        return 0;
    }
    default:
        return ROUTER_ERR_BAD_DEST;
    }
}

int router_subscribe_exact(struct router *r, struct subscription *sub, const char *name, size_t len)
{
    return len > 0 ? subscribe_topic(r, sub, name, len) : ROUTER_ERR_BAD_DEST;
}

void router_unsubscribe(struct router *r, struct subscription *sub)
{
    switch (sub->target_kind) {
    case SUB_TARGET_TOPIC: {
        struct topic *t = sub->target;
        list_remove(&t->subs, sub);
        if (t->subs == NULL) {
            notify_interest(r, t->name, t->name_len, false, false);
            dict_remove(&r->topics, t->name, t->name_len);
            free(t);
        }
        break;
    }
    case SUB_TARGET_WILDCARD: {
        struct trie_node *node = sub->target;
        list_remove(&node->subs, sub);
        if (node->subs == NULL)
            notify_pattern(r, node, false);
        for (struct trie_node *n = node; n != NULL; n = n->parent)
            n->refs--;
        trie_prune(r, node);
        break;
    }
    case SUB_TARGET_QUEUE:
        queue_remove_consumer(&r->queues, sub->target, sub);
        break;
    default:
        break;
    }
    sub->target = NULL;
    sub->target_kind = SUB_TARGET_NONE;
}

/* Live messages held for a subscription whose replay is pending: beyond this many the newest
 * are dropped (counted), so a replay that never answers cannot grow a subscription forever. */
#define HELD_MAX 65536

static int hold_message(struct subscription *sub, struct message *msg)
{
    if (sub->held_count == sub->held_cap) {
        size_t cap = sub->held_cap ? sub->held_cap * 2 : 16;
        if (cap > HELD_MAX)
            return -1;
        struct message **held = realloc(sub->held, cap * sizeof(*held));
        if (held == NULL)
            return -1;
        sub->held = held;
        sub->held_cap = cap;
    }
    sub->held[sub->held_count++] = message_ref(msg);
    return 0;
}

/* Delivers to each subscription of a list once per publish generation. */
static size_t deliver_list(struct router *r, struct subscription *sub, struct message *msg)
{
    size_t n = 0;
    while (sub != NULL) {
        struct subscription *next = sub->next; /* deliver may not unlink, but be safe */
        if (sub->last_publish != r->publish_gen) {
            sub->last_publish = r->publish_gen;
            if (sub->stream_marks != NULL && !history_marks_pass(&sub->stream_marks, msg)) {
                sub = next; /* it was replayed already */
                continue;
            }
            if (sub->replay_pending) {
                if (hold_message(sub, msg) != 0)
                    r->stats.dropped++;
            } else if (r->ops.deliver(sub, msg, false) == 0) {
                r->stats.delivered++;
            } else {
                r->stats.dropped++;
            }
            n++;
        }
        sub = next;
    }
    return n;
}

static size_t match_trie(struct router *r, struct trie_node *node,
                         const struct destination_segments *s, size_t i, struct message *msg)
{
    size_t n = 0;
    if (i == s->count) {
        n += deliver_list(r, node->subs, msg);
    } else {
        struct trie_node *lit = dict_get(&node->children, s->ptr[i], s->len[i]);
        if (lit != NULL)
            n += match_trie(r, lit, s, i + 1, msg);
        struct trie_node *star = dict_get(&node->children, "*", 1);
        if (star != NULL)
            n += match_trie(r, star, s, i + 1, msg);
    }
    struct trie_node *hash = dict_get(&node->children, "#", 1);
    if (hash != NULL)
        for (size_t j = i; j <= s->count; j++) /* '#' eats zero or more segments */
            n += match_trie(r, hash, s, j, msg);
    return n;
}

static size_t publish_topic(struct router *r, struct message *msg, const char *name, size_t len)
{
    size_t n = 0;
    struct topic *t = dict_get(&r->topics, name, len);
    if (t != NULL)
        n += deliver_list(r, t->subs, msg);
    /* /topic/ patterns match /topic/ names only: a /user/ route takes its exact subscribers. */
    if (r->wildcards == NULL || destination_kind(name, len) != DEST_TOPIC)
        return n;
    struct destination_segments s;
    size_t skip = strlen(TOPIC_PREFIX);
    if (destination_split(name + skip, len - skip, &s) != 0)
        return n; /* deeper than any pattern can be: exact subscribers only */
    return n + match_trie(r, r->wildcards, &s, 0, msg);
}

int router_publish(struct router *r, struct message *msg, const char *name, size_t len,
                   bool create_queue)
{
    r->publish_gen++;
    switch (destination_kind(name, len)) {
    case DEST_TOPIC:
        if (destination_is_wildcard(name, len))
            return ROUTER_ERR_BAD_DEST;
        if (publish_topic(r, msg, name, len) == 0)
            r->stats.unroutable++;
        r->stats.published++;
        return 0;
    case DEST_USER:
        if (destination_user_parse(name, len, NULL) != 0)
            return ROUTER_ERR_BAD_DEST;
        if (publish_topic(r, msg, name, len) == 0)
            r->stats.unroutable++;
        r->stats.published++;
        return 0;
    case DEST_QUEUE:
    case DEST_REPLY_QUEUE: {
        struct queue *q = queue_lookup(&r->queues, name, len, create_queue);
        if (q == NULL)
            return create_queue ? ROUTER_ERR_NOMEM : ROUTER_ERR_NO_QUEUE;
        int rc = queue_push(&r->queues, q, msg, false);
        if (rc == 0)
            r->stats.published++;
        return rc;
    }
    default:
        return ROUTER_ERR_BAD_DEST;
    }
}

size_t router_publish_topic(struct router *r, struct message *msg, const char *name, size_t len)
{
    r->publish_gen++;
    return publish_topic(r, msg, name, len);
}

size_t router_publish_exact(struct router *r, struct message *msg)
{
    r->publish_gen++;
    struct topic *t = dict_get(&r->topics, msg->destination, msg->destination_len);
    return t != NULL ? deliver_list(r, t->subs, msg) : 0;
}

/* Does the name (segments from ni) match the pattern (segments from pi)? '#' eats 0 or more. */
static bool pattern_matches(const struct destination_segments *pat, size_t pi,
                            const struct destination_segments *name, size_t ni)
{
    if (pi == pat->count)
        return ni == name->count;
    if (pat->len[pi] == 1 && pat->ptr[pi][0] == '#') {
        for (size_t j = ni; j <= name->count; j++)
            if (pattern_matches(pat, pi + 1, name, j))
                return true;
        return false;
    }
    if (ni == name->count)
        return false;
    bool star = pat->len[pi] == 1 && pat->ptr[pi][0] == '*';
    if (!star &&
        (pat->len[pi] != name->len[ni] || memcmp(pat->ptr[pi], name->ptr[ni], name->len[ni]) != 0))
        return false;
    return pattern_matches(pat, pi + 1, name, ni + 1);
}

size_t router_publish_pattern(struct router *r, struct message *msg, const char *pattern,
                              size_t pattern_len)
{
    r->publish_gen++;
    size_t skip = strlen(TOPIC_PREFIX);
    struct destination_segments pat, name;
    if (r->wildcards == NULL || destination_kind(pattern, pattern_len) != DEST_TOPIC ||
        destination_kind(msg->destination, msg->destination_len) != DEST_TOPIC ||
        destination_split(pattern + skip, pattern_len - skip, &pat) != 0 ||
        destination_split(msg->destination + skip, msg->destination_len - skip, &name) != 0)
        return 0;
    struct trie_node *node = r->wildcards;
    for (size_t i = 0; i < pat.count && node != NULL; i++)
        node = dict_get(&node->children, pat.ptr[i], pat.len[i]);
    if (node == NULL || node->subs == NULL || !pattern_matches(&pat, 0, &name, 0))
        return 0;
    return deliver_list(r, node->subs, msg);
}

void router_resume(struct router *r, struct subscription *sub)
{
    if (sub->target_kind != SUB_TARGET_QUEUE)
        return;
    struct queue *q = sub->target;
    queue_dispatch(&r->queues, q);
    if (q->clustered && r->ops.queue_event != NULL)
        r->ops.queue_event(r->ops.ctx, q, QUEUE_EV_ROOM, NULL);
}
