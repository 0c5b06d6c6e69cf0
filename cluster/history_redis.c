#include "cluster/history_redis.h"
#include "broker/base/dict.h"
#include "broker/base/log.h"
#include "broker/core/destination.h"
#include "broker/core/publish.h"
#include "cluster/common.h"
#include "cluster/envelope.h"
#include "cluster/payload.h"
#include "cluster/redis.h"
#include "cluster/slots.h"

#include <event2/event.h>
#include <inttypes.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/*
 * KEYS: stream, seq, epoch [, index]. ARGV: channel, payload, SIZE, TTL in ms (0: none), the
 * epoch to start when the stream is missing [, destination [, publish commands...]]. Returns
 * {offset, epoch}. The broker SADDs to the index itself (another hash slot); a redis-cli user on
 * one Redis passes it as KEYS[4] (docs/CLUSTER.md shows this script: keep the two the same).
 * The message goes out with PUBLISH, or with each command ARGV[7...] names: in a Redis Cluster
 * SPUBLISH (the keys share the channel's slot), plus PUBLISH when a wildcard wants it.
 */
static const char RETAIN_SCRIPT[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local epoch = redis.call('GET', KEYS[3])\n"
    "if not epoch or redis.call('EXISTS', KEYS[1]) == 0 then\n"
    "  epoch = ARGV[5]\n"
    "  redis.call('SET', KEYS[3], epoch)\n"
    "  redis.call('SET', KEYS[2], 0)\n"
    "end\n"
    "local n = redis.call('INCR', KEYS[2])\n"
    "redis.call('XADD', KEYS[1], 'MAXLEN', ARGV[3], '*', 'o', n, 't', now, 'm', ARGV[2])\n"
    "if tonumber(ARGV[4]) > 0 then\n"
    "  redis.call('XTRIM', KEYS[1], 'MINID', now - tonumber(ARGV[4]))\n"
    "end\n"
    "if KEYS[4] then redis.call('SADD', KEYS[4], ARGV[6]) end\n"
    "local m = '\\0SWH' .. n .. ':' .. epoch .. ':' .. ARGV[2]\n"
    "if #ARGV < 7 then redis.call('PUBLISH', ARGV[1], m) end\n"
    "for i = 7, #ARGV do redis.call(ARGV[i], ARGV[1], m) end\n"
    "return {n, epoch}\n";

/* KEYS: stream, seq, epoch. Returns {epoch, last offset, entries}; a missing stream has none. */
static const char REPLAY_SCRIPT[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return {'', '0', {}} end\n"
    "return {redis.call('GET', KEYS[3]) or '', redis.call('GET', KEYS[2]) or '0',\n"
    "        redis.call('XRANGE', KEYS[1], '-', '+')}\n";

enum { SCRIPT_RETAIN, SCRIPT_REPLAY, SCRIPT_COUNT };

static const char *const SCRIPTS[SCRIPT_COUNT] = {RETAIN_SCRIPT, REPLAY_SCRIPT};

struct replay;

struct history_redis {
    struct broker *b;        /* borrowed: the loop it serves */
    struct bridge *bridge;   /* borrowed: tells when a subscription's interest is in Redis */
    struct redis_link *link; /* borrowed from the bridge; NULL once detached */
    char prefix[64];         /* the bridge's channel and key prefix */
    bool sharded;            /* Redis Cluster: keys in the channel's slot, SPUBLISH */
    char node_id[BRIDGE_NODE_ID_MAX];
    uint64_t seq; /* envelope sequence numbers of this node's retained messages */
    uint64_t rng; /* xorshift state: a fresh epoch for each stream that starts */
    char sha[SCRIPT_COUNT][41];
    uint64_t loaded_on; /* the link's connects count when SCRIPT LOAD was last sent */
    struct envelope_limits limits;
    struct stomp_header *headers; /* owned: decoder scratch, limits.max_headers entries */
    struct replay *replays;       /* owned: pending replays, a doubly linked list */
    /* Destinations this node put in the index (P:history) on the link's current connection:
     * SADD once per destination, not once per message. Keys only (values: hr). */
    struct dict indexed;
    uint64_t indexed_on; /* the link's connects count the set belongs to */
    uint64_t last_warn_ms;
    struct history_redis_stats stats;
};

/* One subscription's replay: one read per destination, answered when the last one is. */
struct replay {
    struct history_redis *hr;
    struct subscription *sub; /* borrowed; NULL once forgotten */
    struct history_request req;
    char *receipt; /* owned, NULL when none */
    size_t receipt_len;
    char *name; /* owned: what the subscription names */
    size_t name_len;
    char *pattern; /* owned: the wildcard, NULL for an exact name */
    size_t pattern_len;
    size_t outstanding; /* commands not answered yet */
    bool waiting;       /* for Redis to confirm the subscription's interest (later: a check) */
    uint64_t wait_deadline_ms; /* cluster_now_ms() past which the wait ends, not recovered */
    bool recovered;
    struct message **msgs; /* owned references, in the order they are to be delivered */
    size_t count, cap;
    struct event *later; /* owned: answers a replay without Redis on the next loop turn, or
                            bounds the wait for the interest's confirmation */
    struct replay *prev, *next;
};

/* One destination's read of a replay. */
struct replay_read {
    struct replay *r;
    const struct history_policy *policy; /* borrowed from the store (never changes) */
    bool eval; /* sent as EVAL: a node without the script (each Redis Cluster master loads it
                  on its first EVAL) */
    char name[];
};

/* One retained publish waiting for its script's answer. */
struct retain_call {
    struct history_redis *hr;
    struct message *msg; /* holds a reference: delivered here if the script fails */
    const struct history_policy *policy;
    struct offset_waiter *waiter; /* borrowed, NULL when none: told once, whatever happens */
    bool eval;    /* sent as EVAL already (no second fallback) */
    bool indexed; /* a SADD to the index went with it */
};

static void script_sha(const char *script, char out[41])
{
    unsigned char md[SHA_DIGEST_LENGTH];
    SHA1((const unsigned char *)script, strlen(script), md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

static bool link_up(const struct history_redis *hr)
{
    return hr->link != NULL && redis_link_is_up(hr->link);
}

/* Loads both scripts once per connection, ahead of the EVALSHAs pipelined behind it. */
static void load_scripts(struct history_redis *hr)
{
    uint64_t connects = redis_link_stats(hr->link)->connects;
    if (hr->loaded_on == connects)
        return;
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        const char *argv[] = {"SCRIPT", "LOAD", SCRIPTS[i]};
        const size_t lens[] = {6, 4, strlen(SCRIPTS[i])};
        if (redis_link_command_argv(hr->link, NULL, NULL, 3, argv, lens) != 0)
            return;
    }
    hr->loaded_on = connects;
}

/*
 * A key of name's history. With one Redis "<prefix>:{<name>}:<what>". In a Redis Cluster the
 * keys share the slot of the channel "<prefix>:<name>", so that the script may SPUBLISH on it:
 * "{<prefix>:<name>}:<what>", or "<prefix>:<name>:<what>" when the channel has a hash tag of its
 * own (which then decides the slot of both).
 */
static int key(char *out, size_t cap, const struct history_redis *hr, const char *name,
               const char *what)
{
    size_t at, len;
    int n;
    if (!hr->sharded)
        n = snprintf(out, cap, "%s:{%s}:%s", hr->prefix, name, what);
    else if (slots_hash_tag(name, strlen(name), &at, &len) ||
             slots_hash_tag(hr->prefix, strlen(hr->prefix), &at, &len))
        n = snprintf(out, cap, "%s:%s:%s", hr->prefix, name, what);
    else
        n = snprintf(out, cap, "{%s:%s}:%s", hr->prefix, name, what);
    return n > 0 && (size_t)n < cap ? n : -1;
}

/* ---- retain ---------------------------------------------------------------------------------- */

static bool is_noscript(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0;
}

static int send_retain(struct retain_call *call);

/* Destinations kept in `indexed` at most: past it the set starts again (more SADDs, no harm). */
#define INDEXED_MAX 65536

/* SADDs name to the index that wildcard replays read (adding a member already there changes
 * nothing). The reply is not waited for. */
static void send_index(struct history_redis *hr, const char *name, size_t len)
{
    char index[96];
    snprintf(index, sizeof(index), "%s:history", hr->prefix);
    const char *argv[] = {"SADD", index, name};
    const size_t lens[] = {4, strlen(index), len};
    (void)redis_link_command_argv(hr->link, NULL, NULL, 3, argv, lens);
}

/* Indexes name unless this node did on this connection already; true when it sent the SADD. */
static bool index_once(struct history_redis *hr, const char *name, size_t len)
{
    uint64_t connects = redis_link_stats(hr->link)->connects;
    if (hr->indexed_on != connects || hr->indexed.count >= INDEXED_MAX) {
        dict_reset(&hr->indexed); /* a new connection may lead to a Redis that lost its data */
        dict_init(&hr->indexed);
        hr->indexed_on = connects;
    }
    if (dict_get(&hr->indexed, name, len) != NULL)
        return false;
    send_index(hr, name, len);
    (void)dict_set(&hr->indexed, name, len, hr); /* out of memory: indexed again next time */
    return true;
}


static void deliver_unretained(struct history_redis *hr, struct message *msg, const char *why)
{
    hr->stats.not_retained++;
    if (cluster_warn_due(&hr->last_warn_ms))
        log_warn(0, "cluster: a message to %s was delivered on this node only, not kept: %s",
                 msg->destination, why);
    msg->stream_offset = 0;
    msg->stream_epoch = 0;
    router_publish(&hr->b->router, msg, msg->destination, msg->destination_len, false);
}

/* The script's {offset, epoch (hex digits)} into msg, for its publisher: the copies the
 * bridge delivers carry their own. */
static void take_offset(struct message *msg, const redisReply *reply)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER || reply->element[0]->integer <= 0 ||
        reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    char *end;
    unsigned long long epoch = strtoull(reply->element[1]->str, &end, 16);
    if (*end != '\0' || end == reply->element[1]->str)
        return;
    msg->stream_offset = (uint64_t)reply->element[0]->integer;
    msg->stream_epoch = epoch;
}

/* Did the script start the stream ({1, epoch})? */
static bool first_offset(const redisReply *reply)
{
    return reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
           reply->element[0]->type == REDIS_REPLY_INTEGER && reply->element[0]->integer == 1;
}

static void on_retained(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct retain_call *call = privdata;
    struct history_redis *hr = call->hr;
    const redisReply *reply = r;
    if (hr->link == NULL) {
        /* detached: the loop is going away */
    } else if (reply == NULL) {
        deliver_unretained(hr, call->msg, "the Redis link was lost");
    } else if (is_noscript(reply) && !call->eval) {
        hr->loaded_on = 0; /* Redis lost them (SCRIPT FLUSH): load them again */
        call->eval = true;
        if (send_retain(call) == 0)
            return; /* the call is the new command's now */
        deliver_unretained(hr, call->msg, "Redis did not take the script");
    } else if (reply->type == REDIS_REPLY_ERROR) {
        deliver_unretained(hr, call->msg, reply->str);
    } else {
        hr->stats.retained++; /* delivered here by the bridge, as on every node */
        if (first_offset(reply) && !call->indexed) /* a new stream: maybe a new index (FLUSHALL) */
            send_index(hr, call->msg->destination, call->msg->destination_len);
        if (call->waiter != NULL)
            take_offset(call->msg, reply);
    }
    if (call->waiter != NULL)
        call->waiter->assigned(call->waiter, call->msg);
    message_unref(call->msg);
    free(call);
}

/* The payload the bridge would PUBLISH for msg: an envelope from this node. */
static char *encode_payload(struct history_redis *hr, const struct message *msg, size_t *len)
{
    struct envelope env = payload_envelope(hr->node_id, ++hr->seq, msg);
    size_t n = envelope_size(&env);
    char *out = n > 0 ? malloc(n) : NULL;
    if (out == NULL || envelope_encode(&env, out, n) != n) {
        free(out);
        return NULL;
    }
    *len = n;
    return out;
}

/* The epoch the script starts if the stream is missing: random 32 bits (8 hex digits, as on
 * one node: history.c), never 0 (xorshift64). */
static void next_epoch(struct history_redis *hr, char out[17])
{
    uint64_t x = hr->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    hr->rng = x;
    uint32_t epoch = (uint32_t)(x >> 32) != 0 ? (uint32_t)(x >> 32) : 1;
    snprintf(out, 17, "%08" PRIx32, epoch);
}

static int send_retain(struct retain_call *call)
{
    struct history_redis *hr = call->hr;
    const struct message *msg = call->msg;
    char stream[512], seq[512], epoch[512], channel[512], size[24], ttl[24], start[17];
    next_epoch(hr, start);
    int channel_len = snprintf(channel, sizeof(channel), "%s:%s", hr->prefix, msg->destination);
    if (key(stream, sizeof(stream), hr, msg->destination, "stream") < 0 ||
        key(seq, sizeof(seq), hr, msg->destination, "seq") < 0 ||
        key(epoch, sizeof(epoch), hr, msg->destination, "epoch") < 0 || channel_len <= 0 ||
        (size_t)channel_len >= sizeof(channel))
        return -1;
    snprintf(size, sizeof(size), "%zu", call->policy->size);
    snprintf(ttl, sizeof(ttl), "%" PRIu64, call->policy->ttl_ms);
    size_t payload_len;
    char *payload = encode_payload(hr, msg, &payload_len);
    if (payload == NULL)
        return -1;
    if (!call->eval)
        load_scripts(hr);
    const char *argv[14] = {call->eval ? "EVAL" : "EVALSHA",
                            call->eval ? RETAIN_SCRIPT : hr->sha[SCRIPT_RETAIN],
                            "3",
                            stream,
                            seq,
                            epoch,
                            channel,
                            payload,
                            size,
                            ttl,
                            start};
    int argc = 11;
    if (hr->sharded) { /* ARGV[6] unused (no index key), then the publish commands */
        argv[argc++] = "";
        argv[argc++] = "SPUBLISH";
        if (bridge_broadcast_wanted(hr->bridge, channel, (size_t)channel_len))
            argv[argc++] = "PUBLISH";
    }
    size_t lens[14];
    for (int i = 0; i < argc; i++)
        lens[i] = argv[i] == payload ? payload_len : strlen(argv[i]);
    int rc = redis_link_command_argv(hr->link, on_retained, call, argc, argv, lens);
    free(payload); /* hiredis copied the command */
    if (rc != 0)
        return -1;
    call->indexed = index_once(hr, msg->destination, msg->destination_len) || call->indexed;
    return 0;
}

int history_redis_retain(struct history_redis *hr, struct message *msg,
                         const struct history_policy *p, struct offset_waiter *w)
{
    hr->b->router.stats.published++;
    if (!link_up(hr)) {
        deliver_unretained(hr, msg, "the Redis link is down");
        return 0;
    }
    struct retain_call *call = calloc(1, sizeof(*call));
    if (call == NULL)
        return ROUTER_ERR_NOMEM;
    *call = (struct retain_call){.hr = hr, .msg = message_ref(msg), .policy = p, .waiter = w};
    if (send_retain(call) != 0) {
        deliver_unretained(hr, msg, "the command could not be sent");
        message_unref(call->msg);
        free(call);
        return 0;
    }
    return w != NULL ? PUBLISH_PENDING : 0;
}

/* ---- replay ---------------------------------------------------------------------------------- */

static char *dup_bytes(const char *s, size_t len)
{
    char *out = malloc(len + 1);
    if (out != NULL) {
        memcpy(out, s, len);
        out[len] = '\0';
    }
    return out;
}

static void replay_free(struct replay *r)
{
    struct history_redis *hr = r->hr;
    if (r->prev != NULL)
        r->prev->next = r->next;
    else
        hr->replays = r->next;
    if (r->next != NULL)
        r->next->prev = r->prev;
    for (size_t i = 0; i < r->count; i++)
        message_unref(r->msgs[i]);
    free(r->msgs);
    if (r->later != NULL)
        event_free(r->later);
    free(r->receipt);
    free(r->name);
    free(r->pattern);
    free(r);
}

/* Every read is answered: the subscription gets it all, if it is still there. */
static void replay_finish(struct replay *r)
{
    struct history_redis *hr = r->hr;
    hr->stats.replays++;
    if (r->sub != NULL)
        publish_replay_done(hr->b, r->sub, r->receipt, r->receipt_len, r->recovered, r->msgs,
                            r->count);
    replay_free(r);
}

static void read_done(struct replay *r)
{
    if (--r->outstanding == 0)
        replay_finish(r);
}

static void on_waiting(evutil_socket_t fd, short what, void *arg);

static void on_later(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    replay_finish(arg);
}

/* Answers r on the next loop turn, never from inside fanout_ops.replay. */
static int finish_later(struct replay *r, bool lost)
{
    if (lost)
        r->hr->stats.replays_lost++;
    r->recovered = false;
    r->later = evtimer_new(r->hr->b->base, on_later, r);
    if (r->later == NULL)
        return -1;
    struct timeval now = {0, 0};
    return event_add(r->later, &now);
}

static int keep(struct replay *r, struct message *msg)
{
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        struct message **msgs = realloc(r->msgs, cap * sizeof(*msgs));
        if (msgs == NULL)
            return -1;
        r->msgs = msgs;
        r->cap = cap;
    }
    r->msgs[r->count++] = msg;
    return 0;
}

static const redisReply *field(const redisReply *fields, const char *name)
{
    for (size_t i = 0; i + 1 < fields->elements; i += 2)
        if (fields->element[i]->type == REDIS_REPLY_STRING &&
            strcmp(fields->element[i]->str, name) == 0 &&
            fields->element[i + 1]->type == REDIS_REPLY_STRING)
            return fields->element[i + 1];
    return NULL;
}

/* One kept entry, as the stream holds it. */
struct entry {
    uint64_t offset, time_ms;
    const redisReply *payload;
};

static bool read_entry(const redisReply *e, struct entry *out)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
        e->element[1]->type != REDIS_REPLY_ARRAY)
        return false;
    const redisReply *o = field(e->element[1], "o"), *t = field(e->element[1], "t");
    out->payload = field(e->element[1], "m");
    if (o == NULL || t == NULL || out->payload == NULL)
        return false;
    out->offset = strtoull(o->str, NULL, 10);
    out->time_ms = strtoull(t->str, NULL, 10);
    return out->offset > 0;
}

/* What of one destination's entries the request asks for: [*from, end) and whether that is
 * everything from the requested position on. */
static bool select_entries(const struct history_request *req, const struct entry *e, size_t n,
                           uint64_t last, bool epoch_ok, size_t *from)
{
    *from = 0;
    switch (req->from) {
    case HISTORY_LAST:
        *from = n > 0 ? n - 1 : 0;
        return epoch_ok && n > 0;
    case HISTORY_FIRST:
        return epoch_ok && (n > 0 ? e[0].offset == 1 : last == 0);
    case HISTORY_OFFSET:
        if (!epoch_ok)
            return false; /* every kept message is new to that client */
        while (*from < n && e[*from].offset < req->value)
            (*from)++;
        if (n == 0)
            return req->value == last + 1;
        return req->value >= e[0].offset && req->value <= e[n - 1].offset + 1;
    case HISTORY_TIMESTAMP: {
        uint64_t since = req->value * 1000;
        while (*from < n && e[*from].time_ms < since)
            (*from)++;
        return epoch_ok && (n > 0 ? e[0].offset == 1 || *from > 0 : last == 0);
    }
    case HISTORY_NEXT:
        break;
    }
    *from = n;
    return true;
}

/* One destination's answer: {epoch, last offset, entries}. */
static bool take_stream(struct replay_read *rd, const redisReply *reply)
{
    struct replay *r = rd->r;
    struct history_redis *hr = r->hr;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING ||
        reply->element[2]->type != REDIS_REPLY_ARRAY)
        return false;
    uint64_t epoch = strtoull(reply->element[0]->str, NULL, 16);
    uint64_t last = strtoull(reply->element[1]->str, NULL, 10);
    const redisReply *entries = reply->element[2];
    struct entry *e = calloc(entries->elements + 1, sizeof(*e));
    if (e == NULL)
        return false;
    uint64_t now = broker_wall_ms(), ttl = rd->policy->ttl_ms;
    size_t n = 0;
    for (size_t i = 0; i < entries->elements; i++)
        if (read_entry(entries->element[i], &e[n]) && (ttl == 0 || e[n].time_ms + ttl > now))
            n++;
    bool epoch_ok = !r->req.has_epoch || (epoch != 0 && r->req.epoch == epoch);
    size_t from;
    bool recovered = select_entries(&r->req, e, n, last, epoch_ok, &from);
    size_t name_len = strlen(rd->name);
    const struct payload_source src = {.destination = rd->name,
                                       .destination_len = name_len,
                                       .own_origin = NULL,
                                       .limits = &hr->limits,
                                       .headers = hr->headers};
    for (size_t i = from; i < n; i++) {
        struct message *msg;
        const char *error;
        enum payload_result pr =
            payload_decode(&src, e[i].payload->str, (size_t)e[i].payload->len, &msg, &error);
        if (pr != PAYLOAD_ENVELOPE && pr != PAYLOAD_RAW) {
            recovered = false;
            continue;
        }
        msg->stream_offset = e[i].offset;
        msg->stream_epoch = epoch;
        if (keep(r, msg) != 0) {
            message_unref(msg);
            recovered = false;
        }
    }
    free(e);
    r->recovered = r->recovered && recovered;
    return true;
}

static int send_read(struct replay_read *rd, bool eval);

static void on_stream_read(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    struct replay_read *rd = privdata;
    struct replay *r = rd->r;
    if (reply != NULL && is_noscript(reply) && !rd->eval) {
        r->hr->loaded_on = 0; /* Redis lost the scripts (or this master never had them) */
        if (send_read(rd, true) == 0)
            return;
    }
    if (reply == NULL || !take_stream(rd, reply)) {
        if (reply == NULL)
            r->hr->stats.replays_lost++;
        r->recovered = false;
    }
    free(rd);
    read_done(r);
}

/* Reads one destination's stream for r. 0, or -1 when it could not be sent. */
static int read_stream(struct replay *r, const char *name, size_t len,
                       const struct history_policy *p)
{
    struct history_redis *hr = r->hr;
    if (!link_up(hr))
        return -1;
    struct replay_read *rd = malloc(sizeof(*rd) + len + 1);
    if (rd == NULL)
        return -1;
    rd->r = r;
    rd->policy = p;
    memcpy(rd->name, name, len);
    rd->name[len] = '\0';
    load_scripts(hr);
    if (send_read(rd, false) != 0) {
        free(rd);
        return -1;
    }
    r->outstanding++;
    return 0;
}

/* The replay script on rd's stream, by its SHA or (eval) in full. 0, or -1 when not sent. */
static int send_read(struct replay_read *rd, bool eval)
{
    struct history_redis *hr = rd->r->hr;
    char stream[512], seq[512], epoch[512];
    if (!link_up(hr) || key(stream, sizeof(stream), hr, rd->name, "stream") < 0 ||
        key(seq, sizeof(seq), hr, rd->name, "seq") < 0 ||
        key(epoch, sizeof(epoch), hr, rd->name, "epoch") < 0)
        return -1;
    rd->eval = eval;
    const char *argv[] = {eval ? "EVAL" : "EVALSHA",
                          eval ? REPLAY_SCRIPT : hr->sha[SCRIPT_REPLAY],
                          "3",
                          stream,
                          seq,
                          epoch};
    size_t lens[6];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    return redis_link_command_argv(hr->link, on_stream_read, rd, 6, argv, lens);
}

/* The index answered: read every member the wildcard matches that has a policy. */
static void on_index(redisAsyncContext *ac, void *r_, void *privdata)
{
    (void)ac;
    struct replay *r = privdata;
    const redisReply *reply = r_;
    struct history *store = r->hr->b->history;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        if (reply == NULL)
            r->hr->stats.replays_lost++;
        r->recovered = false;
    } else {
        for (size_t i = 0; i < reply->elements; i++) {
            const redisReply *m = reply->element[i];
            if (m->type != REDIS_REPLY_STRING ||
                !destination_matches(r->pattern, r->pattern_len, m->str, (size_t)m->len))
                continue;
            const struct history_policy *p = history_policy_for(store, m->str, (size_t)m->len);
            if (p != NULL && read_stream(r, m->str, (size_t)m->len, p) != 0)
                r->recovered = false;
        }
    }
    read_done(r);
}

static int start_reads(struct replay *r, const char *name, size_t len)
{
    struct history_redis *hr = r->hr;
    if (hr->b->history == NULL)
        return finish_later(r, false); /* no policy at all: nothing is kept anywhere */
    if (r->pattern == NULL) {
        const struct history_policy *p = history_policy_for(hr->b->history, name, len);
        if (p == NULL)
            return finish_later(r, false); /* nothing kept: an empty replay, not recovered */
        return read_stream(r, name, len, p) == 0 ? 0 : finish_later(r, true);
    }
    char index[96];
    snprintf(index, sizeof(index), "%s:history", hr->prefix);
    const char *argv[] = {"SMEMBERS", index};
    const size_t lens[] = {8, strlen(index)};
    if (redis_link_command_argv(hr->link, on_index, r, 2, argv, lens) != 0)
        return finish_later(r, true);
    r->outstanding++;
    return 0;
}

/*
 * The replay reads the stream only once Redis confirmed the subscription's interest: a message
 * published after the read is then sure to come live (and is held until the replay is done), so
 * there is no gap between the two. The wait is bounded (REPLAY_WAIT_MS): past it, the replay is
 * answered empty and not recovered.
 */
#define REPLAY_WAIT_MS  5000
#define REPLAY_CHECK_MS 100 /* how often a waiting replay looks at the link */

static int arm_check(struct replay *r)
{
    struct timeval tick = {0, REPLAY_CHECK_MS * 1000};
    return event_add(r->later, &tick);
}

static int wait_confirmation(struct replay *r)
{
    r->waiting = true;
    r->wait_deadline_ms = cluster_now_ms() + REPLAY_WAIT_MS;
    r->later = evtimer_new(r->hr->b->base, on_waiting, r);
    if (r->later == NULL)
        return -1;
    return arm_check(r);
}

/* A waiting replay's tick: the link went down, or the confirmation did not come in time: the
 * replay is answered empty and not recovered (it could have a gap). */
static void on_waiting(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct replay *r = arg;
    if (link_up(r->hr) && cluster_now_ms() < r->wait_deadline_ms && arm_check(r) == 0)
        return;
    r->hr->stats.replays_lost++;
    r->recovered = false;
    replay_finish(r);
}

static bool interest_confirmed(const struct replay *r, const char *name, size_t len)
{
    return r->pattern != NULL ? bridge_confirmed(r->hr->bridge, r->pattern, r->pattern_len, true)
                              : bridge_confirmed(r->hr->bridge, name, len, false);
}

void history_redis_confirmed(struct history_redis *hr)
{
    struct replay *r = hr->replays;
    while (r != NULL) {
        struct replay *next = r->next; /* start_reads may answer and free r */
        if (r->waiting && link_up(hr) && interest_confirmed(r, r->name, r->name_len)) {
            r->waiting = false;
            event_free(r->later);
            r->later = NULL;
            if (start_reads(r, r->name, r->name_len) != 0) {
                r->recovered = false;
                replay_finish(r);
            }
        }
        r = next;
    }
}

int history_redis_replay(struct history_redis *hr, struct subscription *sub, const char *name,
                         size_t len, bool wildcard, const struct history_request *req,
                         const char *receipt, size_t receipt_len)
{
    struct replay *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -1;
    *r = (struct replay){.hr = hr, .sub = sub, .req = *req, .recovered = true};
    r->next = hr->replays;
    if (hr->replays != NULL)
        hr->replays->prev = r;
    hr->replays = r;
    if ((receipt != NULL && (r->receipt = dup_bytes(receipt, receipt_len)) == NULL) ||
        (wildcard && (r->pattern = dup_bytes(name, len)) == NULL) ||
        (r->name = dup_bytes(name, len)) == NULL) {
        replay_free(r);
        return -1;
    }
    r->receipt_len = receipt_len;
    r->pattern_len = wildcard ? len : 0;
    r->name_len = len;
    int rc;
    if (!link_up(hr))
        rc = finish_later(r, true);
    else if (interest_confirmed(r, name, len))
        rc = start_reads(r, name, len);
    else
        rc = wait_confirmation(r);
    if (rc != 0) {
        replay_free(r);
        return -1;
    }
    return 0;
}

void history_redis_forget(struct history_redis *hr, struct subscription *sub)
{
    for (struct replay *r = hr->replays; r != NULL; r = r->next)
        if (r->sub == sub)
            r->sub = NULL;
}

/* ---- life ------------------------------------------------------------------------------------ */

struct history_redis *history_redis_new(struct broker *b, struct bridge *bridge,
                                        const struct bridge_config *cfg)
{
    struct history_redis *hr = calloc(1, sizeof(*hr));
    if (hr == NULL)
        return NULL;
    hr->b = b;
    hr->bridge = bridge;
    hr->link = bridge_command_link(bridge);
    dict_init(&hr->indexed);
    snprintf(hr->prefix, sizeof(hr->prefix), "%s", cfg->prefix);
    hr->sharded = cfg->cluster != NULL;
    snprintf(hr->node_id, sizeof(hr->node_id), "%s", bridge_node_id(bridge));
    bridge_envelope_limits(cfg, &hr->limits);
    hr->headers = calloc(hr->limits.max_headers + 1, sizeof(*hr->headers));
    if (hr->headers == NULL) {
        free(hr);
        return NULL;
    }
    for (int i = 0; i < SCRIPT_COUNT; i++) {
        script_sha(SCRIPTS[i], hr->sha[i]);
        /* Redis Cluster: on every master, ahead of the first EVALSHA that reaches it. */
        if (redis_link_preload_script(hr->link, SCRIPTS[i]) != 0) {
            history_redis_free(hr);
            return NULL;
        }
    }
    if (getrandom(&hr->rng, sizeof(hr->rng), 0) != (ssize_t)sizeof(hr->rng) || hr->rng == 0)
        hr->rng = cluster_now_us() | 1;
    return hr;
}

void history_redis_detach(struct history_redis *hr)
{
    if (hr != NULL)
        hr->link = NULL;
}

void history_redis_free(struct history_redis *hr)
{
    if (hr == NULL)
        return;
    while (hr->replays != NULL)
        replay_free(hr->replays); /* answered later without Redis: nobody is left to tell */
    dict_reset(&hr->indexed);
    free(hr->headers);
    free(hr);
}

const struct history_redis_stats *history_redis_stats(const struct history_redis *hr)
{
    return &hr->stats;
}
