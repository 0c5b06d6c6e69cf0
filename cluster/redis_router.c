#include "cluster/redis_router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/base/log.h"
#include "cluster/cluster_map.h"
#include "cluster/common.h"
#include "cluster/slots.h"

#define REDIRECTS_MAX 5 /* MOVED/ASK hops one command may take */
#define ARGS_PARSED   4 /* leading arguments read to find a command's key */
#define SCRIPTS_MAX   8 /* scripts loaded on every master connection */

struct rnode;

/* One routed command: a copy of its RESP, kept until its reply (a MOVED sends it again). */
struct rcmd {
    struct rcmd *next;      /* in rnode.queue while waiting for the connection */
    struct redis_router *r; /* borrowed */
    redisCallbackFn *fn;    /* the owner's callback and its data */
    void *privdata;
    uint16_t slot;
    bool asking; /* send ASKING first (an ASK redirection) */
    unsigned redirects;
    size_t len;
    char resp[];
};

/* One master, and the plain link to it. */
struct rnode {
    struct redis_router *r;               /* borrowed */
    struct slots_node addr;               /* link's cfg.host points into it */
    struct redis_link *link;              /* owned */
    struct rcmd *queue_head, *queue_tail; /* owned: waiting for the link to come up */
    size_t queued_bytes;
    bool up;
};

struct redis_router {
    struct event_base *base;  /* borrowed */
    struct redis_link *shell; /* borrowed: what the owner holds */
    struct redis_link_config cfg;
    struct redis_link_ops ops;
    struct cluster_map *map; /* borrowed */
    uint16_t home_slot;
    struct rnode **nodes; /* owned array of owned nodes */
    size_t node_count, node_cap;
    struct rnode *home; /* borrowed from nodes: the master of home_slot, NULL: unknown */
    bool up;            /* the owner was told up() and not down() since */
    struct redis_link_stats stats;
    const char *scripts[SCRIPTS_MAX]; /* borrowed static text: SCRIPT LOADed on each node up */
    size_t script_count;
    uint64_t last_warn_ms;
};

/* ---- finding a command's key ---------------------------------------------------------------- */

struct span {
    const char *p;
    size_t len;
};

/* A RESP length after its type byte at p: digits up to "\r\n", within end. Returns the byte
 * after the '\n', or NULL when malformed or over 2^31. */
static const char *resp_length(const char *p, const char *end, size_t *out)
{
    size_t v = 0, digits = 0;
    for (; p < end && *p >= '0' && *p <= '9'; p++, digits++) {
        if (digits == 10)
            return NULL;
        v = v * 10 + (size_t)(*p - '0');
    }
    if (digits == 0 || end - p < 2 || p[0] != '\r' || p[1] != '\n' || v > 0x7FFFFFFF)
        return NULL;
    *out = v;
    return p + 2;
}

/* The first ARGS_PARSED bulk strings of a RESP command; returns how many were read. */
static size_t resp_args(const char *resp, size_t len, struct span *args)
{
    const char *p = resp, *end = resp + len;
    size_t argc, n = 0;
    if (p == end || *p != '*' || (p = resp_length(p + 1, end, &argc)) == NULL)
        return 0;
    while (n < ARGS_PARSED && n < argc && p < end && *p == '$') {
        size_t blen;
        p = resp_length(p + 1, end, &blen);
        if (p == NULL || (size_t)(end - p) < blen + 2)
            break;
        args[n++] = (struct span){p, blen};
        p += blen + 2;
    }
    return n;
}

static bool is_arg(const struct span *a, const char *word)
{
    return a->len == strlen(word) && strncasecmp(a->p, word, a->len) == 0;
}

bool redis_router_command_slot(const char *resp, size_t len, uint16_t *slot)
{
    struct span args[ARGS_PARSED];
    size_t n = resp_args(resp, len, args);
    if (n < 2)
        return false;
    const struct span *key = &args[1];
    if (is_arg(&args[0], "EVAL") || is_arg(&args[0], "EVALSHA")) {
        if (n < 4 || args[2].len != 1 || args[2].p[0] == '0')
            return false; /* no KEYS (or more than 9: not used here) */
        key = &args[3];
    } else if (is_arg(&args[0], "XREADGROUP") || is_arg(&args[0], "XREAD")) {
        return false; /* the owner keeps its streams on the home key's tag */
    } else if (is_arg(&args[0], "CLIENT") || is_arg(&args[0], "WAIT") ||
               is_arg(&args[0], "SCRIPT") || is_arg(&args[0], "PING") || is_arg(&args[0], "INFO")) {
        /* PUBLISH has no key, but Redis Cluster takes it on any node: routed by its channel,
         * the classic copies that wildcards need start from every master, not all from one. */
        return false;
    }
    *slot = slots_key_slot(key->p, key->len);
    return true;
}

/* ---- nodes ---------------------------------------------------------------------------------- */

static void cmd_free(struct rcmd *c)
{
    free(c);
}

static void node_send(struct rnode *n, struct rcmd *c);

static void node_flush(struct rnode *n)
{
    struct rcmd *c = n->queue_head;
    n->queue_head = n->queue_tail = NULL;
    n->queued_bytes = 0;
    while (c != NULL) {
        struct rcmd *next = c->next;
        c->next = NULL;
        node_send(n, c);
        c = next;
    }
}

static void router_set_up(struct redis_router *r, bool up)
{
    if (r->up == up)
        return;
    r->up = up;
    if (up && r->ops.up != NULL)
        r->ops.up(r->ops.ctx, r->shell);
    else if (!up && r->ops.down != NULL)
        r->ops.down(r->ops.ctx, r->shell);
}

static void node_load_script(struct rnode *n, const char *script)
{
    const char *argv[] = {"SCRIPT", "LOAD", script};
    const size_t lens[] = {6, 4, strlen(script)};
    (void)redis_link_command_argv(n->link, NULL, NULL, 3, argv, lens);
}

static void on_node_up(void *ctx, struct redis_link *link)
{
    (void)link;
    struct rnode *n = ctx;
    n->up = true;
    n->r->stats.connects++;
    for (size_t i = 0; i < n->r->script_count; i++) /* ahead of what waits for this node */
        node_load_script(n, n->r->scripts[i]);
    node_flush(n);
    if (n == n->r->home)
        router_set_up(n->r, true);
}

static void on_node_down(void *ctx, struct redis_link *link)
{
    (void)link;
    struct rnode *n = ctx;
    n->up = false;
    n->r->stats.reconnects++;
    cluster_map_refresh(n->r->map); /* a failover, perhaps */
    if (n == n->r->home)
        router_set_up(n->r, false);
}

static bool node_in_map(const struct rnode *n)
{
    const struct slots_map *map = cluster_map_slots(n->r->map);
    return map != NULL && slots_map_has_node(map, &n->addr);
}

static void node_fail_queue(struct rnode *n);

/* A connect failed: ask the map again; what waits for a node the map does not name is lost. */
static void on_node_failed(void *ctx, struct redis_link *link)
{
    (void)link;
    struct rnode *n = ctx;
    cluster_map_refresh(n->r->map);
    if (!node_in_map(n))
        node_fail_queue(n);
}

static struct rnode *node_find(struct redis_router *r, const struct slots_node *addr)
{
    for (size_t i = 0; i < r->node_count; i++)
        if (slots_node_equal(&r->nodes[i]->addr, addr))
            return r->nodes[i];
    return NULL;
}

/* The node of addr, connecting to it on first use. NULL when out of memory. */
static struct rnode *node_get(struct redis_router *r, const struct slots_node *addr)
{
    struct rnode *n = node_find(r, addr);
    if (n != NULL)
        return n;
    if (r->node_count == r->node_cap) {
        size_t cap = r->node_cap != 0 ? 2 * r->node_cap : 4;
        struct rnode **nodes = realloc(r->nodes, cap * sizeof(*nodes));
        if (nodes == NULL)
            return NULL;
        r->nodes = nodes;
        r->node_cap = cap;
    }
    n = calloc(1, sizeof(*n));
    if (n == NULL)
        return NULL;
    n->r = r;
    n->addr = *addr;
    struct redis_link_config lc = r->cfg;
    lc.host = n->addr.host;
    lc.port = n->addr.port;
    lc.cluster = NULL;
    lc.sentinel = NULL;
    lc.db = 0;
    struct redis_link_ops ops = {
        .ctx = n, .up = on_node_up, .down = on_node_down, .failed = on_node_failed};
    n->link = redis_link_new(r->base, &lc, &ops);
    if (n->link == NULL) {
        free(n);
        return NULL;
    }
    r->nodes[r->node_count++] = n;
    return n;
}

/* Every command waiting for a node gets its NULL reply (the owner counts it lost). */
static void node_fail_queue(struct rnode *n)
{
    struct rcmd *c = n->queue_head;
    n->queue_head = n->queue_tail = NULL;
    n->queued_bytes = 0;
    while (c != NULL) {
        struct rcmd *next = c->next;
        if (c->fn != NULL)
            c->fn(NULL, NULL, c->privdata);
        cmd_free(c);
        c = next;
    }
}

static void node_free(struct rnode *n)
{
    node_fail_queue(n);
    redis_link_free(n->link);
    free(n);
}

/* ---- sending, and following redirections ---------------------------------------------------- */

static void on_routed_reply(redisAsyncContext *ac, void *r, void *privdata);

static void node_queue(struct rnode *n, struct rcmd *c)
{
    if (n->queue_tail != NULL)
        n->queue_tail->next = c;
    else
        n->queue_head = c;
    n->queue_tail = c;
    n->queued_bytes += c->len;
}

static void node_send(struct rnode *n, struct rcmd *c)
{
    if (!n->up) {
        node_queue(n, c);
        return;
    }
    if (c->asking) {
        const char *argv[] = {"ASKING"};
        const size_t lens[] = {6};
        c->asking = false;
        (void)redis_link_command_argv(n->link, NULL, NULL, 1, argv, lens);
    }
    if (redis_link_command_resp(n->link, on_routed_reply, c, c->resp, c->len) != 0) {
        if (c->fn != NULL)
            c->fn(NULL, NULL, c->privdata);
        cmd_free(c);
    }
}

/* MOVED or ASK: true when the command went on to the node named (its reply comes later). */
static bool follow_redirect(struct rcmd *c, const redisReply *reply)
{
    struct slots_redirect to;
    if (reply->type != REDIS_REPLY_ERROR || c->redirects >= REDIRECTS_MAX ||
        !slots_parse_redirect(reply->str, reply->len, &to))
        return false;
    struct redis_router *r = c->r;
    cluster_map_note_redirect(r->map, to.ask);
    if (to.node.host[0] == '\0')
        return false; /* "the node that replied": not used by Redis 7 for masters */
    struct rnode *n = node_get(r, &to.node);
    if (n == NULL)
        return false;
    c->redirects++;
    c->asking = to.ask;
    node_send(n, c);
    return true;
}

static void on_routed_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    struct rcmd *c = privdata;
    const redisReply *reply = r;
    if (reply != NULL && follow_redirect(c, reply))
        return;
    if (c->fn != NULL)
        c->fn(ac, r, c->privdata);
    cmd_free(c);
}

/* ---- the map -------------------------------------------------------------------------------- */

/* The home master changed: the owner's state (subscriptions, blocked reads, pending appends)
 * belongs to the old one; it hears down() and builds it again on up(). */
static void rehome(struct redis_router *r)
{
    const struct slots_map *map = cluster_map_slots(r->map);
    const struct slots_node *addr = map != NULL ? slots_map_node(map, r->home_slot) : NULL;
    struct rnode *home = addr != NULL ? node_get(r, addr) : NULL;
    if (home == r->home)
        return;
    struct rnode *old = r->home;
    r->home = home;
    if (old != NULL)
        redis_link_restart(old->link); /* replies still due from it come back NULL, first */
    router_set_up(r, false);
    if (home != NULL && home->up)
        router_set_up(r, true);
}

/* Commands waiting for a master that no longer serves their slot go to the one that does. */
static void requeue(struct redis_router *r)
{
    const struct slots_map *map = cluster_map_slots(r->map);
    for (size_t i = 0; i < r->node_count; i++) {
        struct rnode *n = r->nodes[i];
        struct rcmd *c = n->queue_head, *keep_head = NULL, *keep_tail = NULL;
        n->queue_head = n->queue_tail = NULL;
        n->queued_bytes = 0;
        while (c != NULL) {
            struct rcmd *next = c->next;
            const struct slots_node *addr = slots_map_node(map, c->slot);
            struct rnode *to = addr != NULL ? node_get(r, addr) : NULL;
            c->next = NULL;
            if (to != NULL && to != n) {
                node_send(to, c);
            } else {
                if (keep_tail != NULL)
                    keep_tail->next = c;
                else
                    keep_head = c;
                keep_tail = c;
                n->queued_bytes += c->len;
            }
            c = next;
        }
        n->queue_head = keep_head;
        n->queue_tail = keep_tail;
    }
}

static void on_map_changed(void *ctx)
{
    struct redis_router *r = ctx;
    requeue(r);
    rehome(r);
}

/* ---- interface ------------------------------------------------------------------------------- */

struct redis_router *redis_router_new(struct event_base *base, const struct redis_link_config *cfg,
                                      const struct redis_link_ops *ops, struct redis_link *shell)
{
    struct redis_router *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return NULL;
    r->base = base;
    r->shell = shell;
    r->cfg = *cfg;
    r->ops = *ops;
    r->map = cfg->cluster;
    r->home_slot = slots_key_slot(cfg->home_key != NULL ? cfg->home_key : "",
                                  cfg->home_key != NULL ? strlen(cfg->home_key) : 0);
    if (cluster_map_watch(r->map, on_map_changed, r) != 0) {
        free(r);
        return NULL;
    }
    if (cluster_map_slots(r->map) != NULL)
        rehome(r); /* the map is known: connect to the home master now */
    return r;
}

void redis_router_free(struct redis_router *r)
{
    if (r == NULL)
        return;
    cluster_map_unwatch(r->map, on_map_changed, r);
    r->ops.up = r->ops.down = NULL;
    for (size_t i = 0; i < r->node_count; i++)
        node_free(r->nodes[i]);
    free(r->nodes);
    free(r);
}

bool redis_router_is_up(const struct redis_router *r)
{
    return r->up;
}

size_t redis_router_unsent_bytes(const struct redis_router *r)
{
    size_t bytes = 0;
    for (size_t i = 0; i < r->node_count; i++)
        bytes += redis_link_unsent_bytes(r->nodes[i]->link) + r->nodes[i]->queued_bytes;
    return bytes;
}

const struct redis_link_stats *redis_router_stats(const struct redis_router *r)
{
    return &r->stats;
}

int redis_router_command_resp(struct redis_router *r, redisCallbackFn *fn, void *privdata,
                              const char *resp, size_t len)
{
    if (!r->up && !r->cfg.keyed_without_home)
        return -1; /* the owner was told down(): it waits for up() */
    if (r->cfg.pinned)
        return r->up ? redis_link_command_resp(r->home->link, fn, privdata, resp, len) : -1;
    uint16_t slot = r->home_slot;
    struct rnode *n = r->home;
    bool keyed = redis_router_command_slot(resp, len, &slot);
    if (keyed) {
        const struct slots_map *map = cluster_map_slots(r->map);
        const struct slots_node *addr = map != NULL ? slots_map_node(map, slot) : NULL;
        n = addr != NULL ? node_get(r, addr) : NULL;
        if (n == NULL)
            return -1; /* a slot no master serves: the cluster is down for it */
    }
    /* keyed_without_home: while the home master is down, a keyed command to another master
     * whose connection is up still goes; it does not depend on the home master. */
    if (!r->up && !(keyed && n != r->home && n->up))
        return -1;
    struct rcmd *c = malloc(sizeof(*c) + len);
    if (c == NULL)
        return -1;
    *c = (struct rcmd){.r = r, .fn = fn, .privdata = privdata, .slot = slot, .len = len};
    memcpy(c->resp, resp, len);
    if (!n->up) {
        node_queue(n, c); /* sent when its connection is up */
        return 0;
    }
    if (redis_link_command_resp(n->link, on_routed_reply, c, c->resp, c->len) != 0) {
        cmd_free(c); /* refused now: the owner hears -1, never a callback */
        return -1;
    }
    return 0;
}

void redis_router_restart(struct redis_router *r)
{
    r->stats.restarts++;
    for (size_t i = 0; i < r->node_count; i++)
        redis_link_restart(r->nodes[i]->link);
}

int redis_router_preload_script(struct redis_router *r, const char *script)
{
    if (r->script_count == SCRIPTS_MAX)
        return -1;
    r->scripts[r->script_count++] = script;
    for (size_t i = 0; i < r->node_count; i++) /* the connections already up */
        if (r->nodes[i]->up)
            node_load_script(r->nodes[i], script);
    return 0;
}

void redis_router_each_node(const struct redis_router *r,
                            void (*fn)(void *arg, const char *host, unsigned short port, bool up),
                            void *arg)
{
    for (size_t i = 0; i < r->node_count; i++)
        fn(arg, r->nodes[i]->addr.host, r->nodes[i]->addr.port, r->nodes[i]->up);
}
