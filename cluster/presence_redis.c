#include "cluster/presence_redis.h"
#include "broker/base/log.h"
#include "broker/core/presence.h"
#include "cluster/redis.h"

#include <event2/event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/*
 * What every script shares. change() adds delta (+1 or -1) to the number of nodes where user is
 * present on dest, keeps the node's list of contributions in step, and on the cluster's edge
 * (0 -> 1, 1 -> 0) publishes the event: an envelope (docs/CLUSTER.md) behind the "\0SWH
 * <seq>:<epoch>:" prefix that makes every node deliver it, its own included, numbered by seq.
 * Keys are named inside the scripts, under KP: the prefix with one Redis; in a Redis Cluster
 * KEYS[1] = "{<prefix>}", which puts every presence key in one slot (so one script may touch
 * them all) and routes the script there. Events go out by classic PUBLISH, which a Redis Cluster
 * broadcasts: the bridge subscribes presence channels on its classic subscribe link.
 */
#define LUA_KEY_PREFIX "local KP = KEYS[1] or ARGV[1]\n"
#define LUA_COMMON                                                                                 \
    LUA_KEY_PREFIX                                                                                 \
    "local function u32(n) return struct.pack('>I4', n) end\n"                                     \
    "local function now_ms()\n"                                                                    \
    "  local t = redis.call('TIME')\n"                                                             \
    "  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"                         \
    "end\n"                                                                                        \
    "local function event(prefix, origin, dest, what, user, hash)\n"                               \
    "  local seq = redis.call('INCR', KP .. ':presence-seq')\n"                                    \
    "  local count = tostring(redis.call('HLEN', hash))\n"                                         \
    "  local name = '/presence' .. dest\n"                                                         \
    "  local h = {{'x-presence-event', what}, {'x-presence-user', user},\n"                        \
    "             {'x-presence-count', count}}\n"                                                  \
    "  local env = '\\0SWS' .. string.char(1, 0, #origin) .. origin .. u32(0) .. u32(seq)\n"       \
    "    .. u32(#name) .. name .. u32(#h)\n"                                                       \
    "  for _, kv in ipairs(h) do env = env .. u32(#kv[1]) .. kv[1] .. u32(#kv[2]) .. kv[2] end\n"  \
    "  redis.call('PUBLISH', prefix .. ':' .. name, '\\0SWH' .. seq .. ':1:' .. env .. u32(0))\n"  \
    "end\n"                                                                                        \
    "local function change(prefix, origin, node, dest, user, delta)\n"                             \
    "  local hash = KP .. ':presence:' .. dest\n"                                                  \
    "  local nodeset = KP .. ':presence-node:' .. node\n"                                          \
    "  local member = dest .. '\\n' .. user\n"                                                     \
    "  local n = redis.call('HINCRBY', hash, user, delta)\n"                                       \
    "  if delta > 0 then redis.call('SADD', nodeset, member)\n"                                    \
    "  else redis.call('SREM', nodeset, member) end\n"                                             \
    "  if n <= 0 then redis.call('HDEL', hash, user) end\n"                                        \
    "  if delta > 0 and n == 1 then event(prefix, origin, dest, 'join', user, hash)\n"             \
    "  elseif delta < 0 and n == 0 then event(prefix, origin, dest, 'leave', user, hash) end\n"    \
    "end\n"                                                                                        \
    "local function forget_node(prefix, origin, node)\n"                                           \
    "  local set = KP .. ':presence-node:' .. node\n"                                              \
    "  for _, m in ipairs(redis.call('SMEMBERS', set)) do\n"                                       \
    "    local nl = string.find(m, '\\n', 1, true)\n"                                              \
    "    change(prefix, origin, node, string.sub(m, 1, nl - 1), string.sub(m, nl + 1), -1)\n"      \
    "  end\n"                                                                                      \
    "  redis.call('DEL', set)\n"                                                                   \
    "end\n"

/* Both scripts start with ARGV: prefix, this process's id (presence_process_id()), ttl_ms. */

/* ARGV 4..6: dest, user, delta. This node is alive, and one of its edges. */
static const char EDGE_SCRIPT[] = LUA_COMMON
    "redis.call('ZADD', KP .. ':presence-nodes', now_ms() + tonumber(ARGV[3]), ARGV[2])\n"
    "change(ARGV[1], ARGV[2], ARGV[2], ARGV[4], ARGV[5], tonumber(ARGV[6]))\n"
    "return 1\n";

/* This node is alive; the nodes whose entry expired leave, their users with them. */
static const char REFRESH_SCRIPT[] =
    LUA_COMMON "local nodes = KP .. ':presence-nodes'\n"
               "local now = now_ms()\n"
               "redis.call('ZADD', nodes, now + tonumber(ARGV[3]), ARGV[2])\n"
               "local dead = redis.call('ZRANGEBYSCORE', nodes, '-inf', now)\n"
               "for _, d in ipairs(dead) do\n"
               "  redis.call('ZREM', nodes, d)\n"
               "  forget_node(ARGV[1], ARGV[2], d)\n"
               "end\n"
               "return #dead\n";

/* ARGV: prefix, dest, max. Returns {seq, count, the first max users in byte order...}. */
static const char QUERY_SCRIPT[] = LUA_KEY_PREFIX
    "local names = redis.call('HKEYS', KP .. ':presence:' .. ARGV[2])\n"
    "table.sort(names)\n"
    "local out = {redis.call('GET', KP .. ':presence-seq') or '0', #names}\n"
    "for i = 1, math.min(#names, tonumber(ARGV[3])) do out[#out + 1] = names[i] end\n"
    "return out\n";

/* A snapshot or GET waiting for Redis. */
struct pending {
    struct presence_redis *pr;
    struct presence_waiter *w; /* borrowed; NULL once forgotten (the reply then only frees) */
    struct pending *prev, *next;
    bool waiting; /* a snapshot whose interest Redis has not confirmed yet: not sent */
    size_t max;
    size_t dest_len;
    char dest[]; /* NUL-terminated */
};

struct presence_redis {
    struct broker *b;        /* borrowed: the loop it serves */
    struct bridge *bridge;   /* borrowed */
    struct redis_link *link; /* borrowed from the bridge; NULL once detached */
    char prefix[64];
    char key_tag[68]; /* Redis Cluster: "{<prefix>}", KEYS[1] of every script; "" with one Redis */
    char node_id[CONFIG_ADDR_MAX + 24]; /* presence_process_id(): names this process's entries */
    unsigned ttl_ms;
    struct event *refresh;    /* owned: every ttl / 3 */
    size_t edges_in_flight;   /* edge scripts sent and not answered: waited for at shutdown */
    struct pending *pendings; /* owned: sent or waiting, until their reply */
    uint64_t last_warn_ms;
};

static bool link_up(const struct presence_redis *pr)
{
    return pr->link != NULL && redis_link_is_up(pr->link);
}

static int eval(struct presence_redis *pr, const char *script, redisCallbackFn *fn, void *arg,
                int argc, const char **args)
{
    const char *argv[13] = {"EVAL", script, "0"};
    size_t lens[13] = {4, strlen(script), 1};
    int first = 3;
    if (pr->key_tag[0] != '\0') { /* Redis Cluster: the slot every presence key lives in */
        argv[2] = "1";
        argv[first] = pr->key_tag;
        lens[first++] = strlen(pr->key_tag);
    }
    for (int i = 0; i < argc && i < 9; i++) {
        argv[first + i] = args[i];
        lens[first + i] = strlen(args[i]);
    }
    return link_up(pr) ? redis_link_command_argv(pr->link, fn, arg, first + argc, argv, lens) : -1;
}

static void warn_reply(struct presence_redis *pr, const char *what, const redisReply *r)
{
    uint64_t now = broker_now_ms(pr->b);
    if (now - pr->last_warn_ms < 10000 && pr->last_warn_ms != 0)
        return;
    pr->last_warn_ms = now;
    log_warn(0, "presence: %s: %s", what,
             r == NULL                      ? "Redis link lost"
             : r->type == REDIS_REPLY_ERROR ? r->str
                                            : "bad reply");
}

static void on_script(redisAsyncContext *ac, void *reply, void *arg)
{
    (void)ac;
    redisReply *r = reply;
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        warn_reply(arg, "script failed", r);
}

static void on_edge(redisAsyncContext *ac, void *reply, void *arg)
{
    struct presence_redis *pr = arg;
    pr->edges_in_flight--;
    on_script(ac, reply, arg);
}

bool presence_redis_flushed(const struct presence_redis *pr)
{
    return pr == NULL || pr->edges_in_flight == 0 || !link_up(pr);
}

/* Runs EDGE_SCRIPT or REFRESH_SCRIPT with the node's arguments, then extra ones. */
static int eval_node(struct presence_redis *pr, const char *script, redisCallbackFn *fn, int argc,
                     const char **extra)
{
    char ttl[24];
    snprintf(ttl, sizeof(ttl), "%u", pr->ttl_ms);
    const char *args[9] = {pr->prefix, pr->node_id, ttl};
    for (int i = 0; i < argc && i < 6; i++)
        args[3 + i] = extra[i];
    return eval(pr, script, fn, pr, 3 + argc, args);
}

void presence_redis_edge(struct presence_redis *pr, const char *dest, size_t len, const char *user,
                         bool joined)
{
    char name[CONFIG_ADDR_MAX + 1100];
    if (len >= sizeof(name))
        return;
    memcpy(name, dest, len);
    name[len] = '\0';
    const char *extra[] = {name, user, joined ? "1" : "-1"};
    if (eval_node(pr, EDGE_SCRIPT, on_edge, 3, extra) == 0)
        pr->edges_in_flight++;
    else
        log_warn(0, "presence: Redis down: the cluster misses %s's %s on %s", user,
                 joined ? "join" : "leave", name);
}

/* ---- queries --------------------------------------------------------------------------------- */

static void unlink_pending(struct pending *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        p->pr->pendings = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
}

/* Parses {seq, count, names...} into an answer for the waiter (NULL answer when malformed). */
static void answer(struct pending *p, const redisReply *r)
{
    bool ok = r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 2 &&
              r->element[0]->type == REDIS_REPLY_STRING &&
              r->element[1]->type == REDIS_REPLY_INTEGER;
    const char **names = ok && r->elements > 2 ? malloc((r->elements - 2) * sizeof(*names)) : NULL;
    for (size_t i = 2; ok && names != NULL && i < r->elements; i++) {
        ok = r->element[i]->type == REDIS_REPLY_STRING;
        names[i - 2] = r->element[i]->str;
    }
    if (ok && r->elements > 2 && names == NULL)
        ok = false;
    if (!ok)
        warn_reply(p->pr, "presence read failed", r);
    struct presence_answer a = {
        .names = names,
        .name_count = ok ? r->elements - 2 : 0,
        .count = ok ? (size_t)r->element[1]->integer : 0,
        .seq = ok ? strtoull(r->element[0]->str, NULL, 10) : 0,
        .epoch = 1,
    };
    p->w->answered(p->w, ok ? &a : NULL);
    free(names);
}

static void on_query(redisAsyncContext *ac, void *reply, void *arg)
{
    (void)ac;
    struct pending *p = arg;
    unlink_pending(p);
    if (p->w != NULL)
        answer(p, reply);
    free(p);
}

/* Sends p's read: 0, or -1 when the link is down. */
static int send_query(struct pending *p)
{
    char max[24];
    snprintf(max, sizeof(max), "%zu", p->max);
    const char *args[] = {p->pr->prefix, p->dest, max};
    return eval(p->pr, QUERY_SCRIPT, on_query, p, 3, args);
}

static bool follow_confirmed(struct pending *p)
{
    char name[CONFIG_ADDR_MAX + 1200];
    int n = snprintf(name, sizeof(name), "%s%s", PRESENCE_PREFIX, p->dest);
    return n > 0 && (size_t)n < sizeof(name) &&
           bridge_confirmed(p->pr->bridge, name, (size_t)n, false);
}

int presence_redis_query(struct presence_redis *pr, const char *dest, size_t len, size_t max,
                         bool follow, struct presence_waiter *w)
{
    if (!link_up(pr))
        return -1;
    struct pending *p = calloc(1, sizeof(*p) + len + 1);
    if (p == NULL)
        return -1;
    *p = (struct pending){.pr = pr, .w = w, .max = max, .dest_len = len};
    memcpy(p->dest, dest, len);
    p->next = pr->pendings;
    if (pr->pendings != NULL)
        pr->pendings->prev = p;
    pr->pendings = p;
    p->waiting = follow && !follow_confirmed(p);
    if (!p->waiting && send_query(p) != 0) {
        unlink_pending(p);
        free(p);
        return -1;
    }
    return 0;
}

void presence_redis_forget(struct presence_redis *pr, struct presence_waiter *w)
{
    for (struct pending *p = pr->pendings; p != NULL; p = p->next) {
        if (p->w != w)
            continue;
        p->w = NULL;
        if (p->waiting) { /* never sent: no reply will free it */
            unlink_pending(p);
            free(p);
        }
        return;
    }
}

void presence_redis_confirmed(struct presence_redis *pr)
{
    struct pending *p = pr->pendings, *next;
    for (; p != NULL; p = next) {
        next = p->next;
        if (!p->waiting || p->w == NULL || !follow_confirmed(p))
            continue;
        p->waiting = false;
        if (send_query(p) != 0) { /* Redis went: the snapshot falls back to this node's */
            unlink_pending(p);
            p->w->answered(p->w, NULL);
            free(p);
        }
    }
}

/* ---- liveness -------------------------------------------------------------------------------- */

static void refresh_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct presence_redis *pr = arg;
    (void)eval_node(pr, REFRESH_SCRIPT, on_script, 0, NULL); /* down: the next tick tries again */
    struct timeval tv = {.tv_sec = pr->ttl_ms / 3000, .tv_usec = (pr->ttl_ms / 3 % 1000) * 1000};
    evtimer_add(pr->refresh, &tv);
}

struct presence_redis *presence_redis_new(struct broker *b, struct bridge *bridge,
                                          const struct bridge_config *cfg)
{
    struct presence_redis *pr = calloc(1, sizeof(*pr));
    if (pr == NULL)
        return NULL;
    pr->b = b;
    pr->bridge = bridge;
    pr->link = bridge_command_link(bridge);
    snprintf(pr->prefix, sizeof(pr->prefix), "%s", cfg->prefix);
    if (cfg->cluster != NULL)
        snprintf(pr->key_tag, sizeof(pr->key_tag), "{%s}", cfg->prefix);
    /* The process's id, not the loop's: a user's edges may come from any loop of it. */
    snprintf(pr->node_id, sizeof(pr->node_id), "%s", presence_process_id(b->presence));
    pr->ttl_ms = (unsigned)(b->cfg.presence_ttl_s * 1000);
    pr->refresh = evtimer_new(b->base, refresh_cb, pr);
    if (pr->refresh == NULL) {
        free(pr);
        return NULL;
    }
    struct timeval soon = {.tv_sec = 0, .tv_usec = 100000};
    evtimer_add(pr->refresh, &soon);
    return pr;
}

void presence_redis_detach(struct presence_redis *pr)
{
    if (pr != NULL)
        pr->link = NULL;
}

void presence_redis_free(struct presence_redis *pr)
{
    if (pr == NULL)
        return;
    while (pr->pendings != NULL) { /* only unsent ones are left once the bridge is gone */
        struct pending *p = pr->pendings;
        unlink_pending(p);
        free(p);
    }
    event_free(pr->refresh);
    free(pr);
}
