#include "cluster/bridge.h"

#include <ctype.h>
#include <event2/util.h>
#include <hiredis/hiredis.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/base/dict.h"
#include "broker/base/log.h"
#include "broker/core/destination.h"
#include "broker/core/presence.h"
#include "broker/base/config.h"
#include "cluster/common.h"
#include "cluster/envelope.h"
#include "cluster/payload.h"
#include "cluster/cluster_map.h"
#include "cluster/redis.h"
#include "cluster/shard_sub.h"
#include "cluster/wildcards.h"

#define SUBSCRIBE_BATCH    1024                /* channels per (P)SUBSCRIBE / (P)UNSUBSCRIBE */
#define DEFAULT_BACKLOG    (64u * 1024 * 1024) /* unsent PUBLISH bytes before dropping */
#define PROBE_CHANNEL_PART "_probe:"
/* admin API (issue #15): requests on "<prefix>:_admin", answers on "<prefix>:_admin:<node id>" */
#define CONTROL_CHANNEL_PART "_admin"

/*
 * One subscription in Redis: an exact channel ("stompws:/topic/prices", SUBSCRIBE) or a glob
 * ("stompws:/topic/news*", PSUBSCRIBE). Several STOMP patterns can share one glob ("a.*" and
 * "a.*.#" both become "stompws:/topic/a.*"), so a channel lists the interests it serves.
 */
struct channel {
    struct channel *dirty_next; /* link in bridge.dirty while dirty (not owned) */
    struct interest *interests; /* not owned (bridge.*_names own them): linked by channel_next */
    bool pattern;               /* a glob, PSUBSCRIBEd */
    bool in_redis;              /* (P)SUBSCRIBE sent on the current subscribe link */
    bool confirmed;             /* and Redis answered it: messages published from now on come */
    bool dirty;                 /* compare wanted with in_redis at the next flush */
    bool sharded;               /* cluster mode: followed through b->shards, not b->sub */
    size_t key_len;
    char key[]; /* the Redis channel or glob, NUL-terminated */
};

/* Local interest in one exact topic name or one normalized STOMP pattern. */
struct interest {
    struct interest *channel_next;            /* in channel->interests */
    struct interest *grace_prev, *grace_next; /* in bridge.grace_* while waiting to be dropped */
    struct channel *channel;                  /* borrowed: the Redis subscription serving it */
    uint64_t grace_deadline_ms;
    bool pattern;
    bool wanted;   /* local subscribers exist */
    bool in_grace; /* on the grace list */
    size_t name_len;
    char name[]; /* "/topic/prices" or "/topic/news.#", NUL-terminated */
};

/* One (P)SUBSCRIBE or (P)UNSUBSCRIBE with up to SUBSCRIBE_BATCH channels. */
struct batch {
    const char *argv[SUBSCRIBE_BATCH + 1];
    size_t argvlen[SUBSCRIBE_BATCH + 1];
    int argc;
};

struct bridge {
    struct event_base *base; /* borrowed: the broker's loop */
    struct bridge_config cfg;
    struct bridge_ops ops;
    struct envelope_limits limits;
    struct redis_link *pub; /* owned: PUBLISH (envelopes, probes) */
    struct redis_link *sub; /* owned: SUBSCRIBE / PSUBSCRIBE only */
    /* Redis Cluster (cfg.cluster set): */
    struct shard_sub *shards;    /* owned: exact topic channels, SSUBSCRIBEd per shard */
    struct wildcards *wildcards; /* owned: which topics some node's glob wants broadcast */

    struct dict exact_names;    /* owned interests: topic name -> struct interest */
    struct dict pattern_names;  /* owned interests: STOMP pattern -> struct interest */
    struct dict exact_channels; /* owned channels: Redis channel -> struct channel */
    struct dict globs;          /* owned channels: Redis glob -> struct channel */
    struct channel *dirty;      /* channels to reconcile at the next flush (not owned) */
    struct interest *grace_head, *grace_tail; /* removals waiting, oldest first (not owned) */
    struct event *flush_event;                /* owned: activated when dirty becomes non-empty */
    struct event *grace_timer;                /* owned: fires at grace_head's deadline */
    struct event *probe_timer;                /* owned: persistent, every probe_interval_ms */

    char probe_channel[sizeof(((struct bridge_config *)0)->prefix) + sizeof(PROBE_CHANNEL_PART) +
                       BRIDGE_NODE_ID_MAX];
    size_t probe_channel_len;
    char instance[17];          /* random per process: tells our probes from another node's that
                                   wrongly uses the same node id */
    bool probe_subscribed;      /* the subscribe link confirmed the probe channel */
    bool probe_ok;              /* a probe came back since the subscribe link came up */
    unsigned probes_unanswered; /* probes Redis accepted that have not come back */
    uint64_t probe_seq;
    uint64_t probe_sent_us; /* when probe probe_seq was queued */
    uint64_t seq;           /* envelope sequence number of the last local publish */

    char *scratch; /* owned: RESP PUBLISH being built */
    size_t scratch_cap;
    char *channel_buf; /* owned: "<prefix>:<destination>" being built */
    size_t channel_buf_cap;
    struct stomp_header *decoded_headers; /* owned: limits.max_headers entries */
    struct batch *batches;                /* owned: 4 commands being built by a flush */

    uint64_t last_decode_warn_ms, last_drop_warn_ms, last_dup_warn_ms;
    struct bridge_stats stats;

    /* admin API (issue #15): the control channels, when ops.control is set */
    char control_all[sizeof(((struct bridge_config *)0)->prefix) + sizeof(CONTROL_CHANNEL_PART)];
    char control_mine[sizeof(((struct bridge_config *)0)->prefix) + sizeof(CONTROL_CHANNEL_PART) +
                      BRIDGE_NODE_ID_MAX];
    bool control_subscribed; /* the subscribe link confirmed control_all */
};

static void send_probe(struct bridge *b);

/* ---- configuration --------------------------------------------------------------------------- */

void bridge_config_defaults(struct bridge_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    strcpy(cfg->redis_host, "127.0.0.1");
    cfg->redis_port = 6379;
    strcpy(cfg->prefix, BRIDGE_DEFAULT_PREFIX);
    cfg->reconnect_min_ms = 100;
    cfg->reconnect_max_ms = 5000;
    cfg->unsubscribe_grace_ms = 1000;
    cfg->probe_interval_ms = 5000;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* Copies len bytes of s to out (cap bytes) with %XX decoded; -1 when malformed or too long. */
static int percent_decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)s[i];
        if (c == '%') {
            int hi = i + 2 < len ? hexval(s[i + 1]) : -1;
            int lo = i + 2 < len ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            c = hi * 16 + lo;
            i += 2;
        }
        if (n + 1 >= cap)
            return -1;
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return 0;
}

/* The message names the URL without its password: it goes to logs and terminals. */
static int url_error(char *err, size_t err_len, const char *url, const char *why)
{
    char shown[512];
    config_redact_url(shown, sizeof(shown), url);
    snprintf(err, err_len, "bad Redis URL \"%s\": %s (expected redis://[:password@]host:port[/db])",
             shown, why);
    return -1;
}

/* "user:password" or ":password" (the part before '@'). */
static int parse_userinfo(const char *s, size_t len, struct bridge_config *cfg)
{
    const char *colon = memchr(s, ':', len);
    if (colon == NULL)
        return -1; /* a user without a password: AUTH needs one */
    size_t user_len = (size_t)(colon - s);
    if (percent_decode(s, user_len, cfg->redis_username, sizeof(cfg->redis_username)) != 0 ||
        percent_decode(colon + 1, len - user_len - 1, cfg->redis_password,
                       sizeof(cfg->redis_password)) != 0)
        return -1;
    return 0;
}

/* "host", "host:port", "[v6]" or "[v6]:port". */
static int parse_hostport(const char *s, size_t len, struct bridge_config *cfg)
{
    const char *host = s, *port = NULL;
    size_t host_len = len;
    if (len > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', len);
        if (close == NULL)
            return -1;
        host = s + 1;
        host_len = (size_t)(close - host);
        const char *after = close + 1;
        if (after < s + len && (*after != ':' || after + 1 == s + len))
            return -1;
        port = after < s + len ? after + 1 : NULL;
    } else {
        const char *colon = memchr(s, ':', len);
        if (colon != NULL) {
            host_len = (size_t)(colon - s);
            port = colon + 1;
        }
    }
    if (host_len == 0 || host_len >= sizeof(cfg->redis_host) || memchr(host, '@', host_len))
        return -1;
    memcpy(cfg->redis_host, host, host_len);
    cfg->redis_host[host_len] = '\0';
    cfg->redis_port = 6379;
    if (port != NULL) {
        size_t port_len = (size_t)(s + len - port);
        unsigned long v = 0;
        if (port_len == 0 || port_len > 5)
            return -1;
        for (size_t i = 0; i < port_len; i++) {
            if (!isdigit((unsigned char)port[i]))
                return -1;
            v = v * 10 + (unsigned long)(port[i] - '0');
        }
        if (v == 0 || v > 65535)
            return -1;
        cfg->redis_port = (unsigned short)v;
    }
    return 0;
}

static int parse_db(const char *s, struct bridge_config *cfg)
{
    long v = 0;
    if (*s == '\0') {
        cfg->redis_db = 0;
        return 0;
    }
    for (; *s != '\0'; s++) {
        if (!isdigit((unsigned char)*s) || v > (INT_MAX - 9) / 10)
            return -1;
        v = v * 10 + (*s - '0');
    }
    cfg->redis_db = (int)v;
    return 0;
}

int bridge_parse_url(const char *url, struct bridge_config *cfg, char *err, size_t err_len)
{
    static const char scheme[] = "redis://";
    if (strncasecmp(url, "rediss://", 9) == 0)
        return url_error(err, err_len, url,
                         "TLS (rediss://) is not supported by hiredis 0.14.1; use a private "
                         "network or a TLS tunnel such as stunnel");
    if (strncasecmp(url, scheme, sizeof(scheme) - 1) != 0)
        return url_error(err, err_len, url, "the scheme must be redis://");
    const char *rest = url + sizeof(scheme) - 1;
    if (strpbrk(rest, "?#") != NULL)
        return url_error(err, err_len, url, "query strings and fragments are not supported");
    const char *slash = strchr(rest, '/');
    size_t authority_len = slash != NULL ? (size_t)(slash - rest) : strlen(rest);
    const char *at = NULL;
    for (size_t i = 0; i < authority_len; i++)
        if (rest[i] == '@')
            at = rest + i; /* the last '@': host names have none */
    struct bridge_config parsed = *cfg;
    parsed.redis_username[0] = parsed.redis_password[0] = '\0';
    const char *hostport = rest;
    if (at != NULL) {
        if (parse_userinfo(rest, (size_t)(at - rest), &parsed) != 0)
            return url_error(err, err_len, url,
                             "bad user:password part (a username needs a password; "
                             "%-encode special characters)");
        hostport = at + 1;
    }
    if (parse_hostport(hostport, authority_len - (size_t)(hostport - rest), &parsed) != 0)
        return url_error(err, err_len, url, "bad host or port");
    if (parse_db(slash != NULL ? slash + 1 : "", &parsed) != 0)
        return url_error(err, err_len, url, "the database must be a number");
    *cfg = parsed;
    return 0;
}

/* ---- Redis names ----------------------------------------------------------------------------- */

/* Appends s with the Redis glob metacharacters escaped; out has room for 2 * len. */
static size_t glob_escape(char *out, const char *s, size_t len)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\0' && strchr("*?[]\\", s[i]) != NULL)
            out[n++] = '\\';
        out[n++] = s[i];
    }
    return n;
}

/*
 * A Redis glob matching at least every destination the STOMP pattern matches (the router then
 * filters exactly): literal segments are escaped, `*` becomes `*` (which also crosses dots in
 * Redis), and `#` becomes `*` together with one adjacent dot, so "a.#" -> "a*" matches "a"
 * itself and "#.b" -> "*b" matches "b". Consecutive stars fold into one.
 */
char *bridge_pattern_glob(const char *prefix, const char *pattern, size_t len, size_t *out_len)
{
    size_t prefix_len = strlen(prefix), skip = strlen(TOPIC_PREFIX);
    if (len < skip || memcmp(pattern, TOPIC_PREFIX, skip) != 0)
        skip = 0; /* not under /topic/ (never from the router): translate all of it */
    char *out = malloc(2 * (prefix_len + len) + 2);
    if (out == NULL)
        return NULL;
    size_t n = glob_escape(out, prefix, prefix_len);
    out[n++] = ':';
    n += glob_escape(out + n, pattern, skip);
    bool dot = false, star = false;
    const char *seg = pattern + skip, *end = pattern + len;
    for (;;) {
        const char *stop = memchr(seg, '.', (size_t)(end - seg));
        if (stop == NULL)
            stop = end;
        size_t seg_len = (size_t)(stop - seg);
        bool last = stop == end;
        bool hash = seg_len == 1 && seg[0] == '#';
        bool wild = hash || (seg_len == 1 && seg[0] == '*');
        if (hash && last)
            dot = false; /* "a.#": the dot before goes with the '#' */
        if (dot) {
            out[n++] = '.';
            star = false;
        }
        if (wild) {
            if (!star)
                out[n++] = '*';
            star = true;
        } else if (seg_len > 0) {
            n += glob_escape(out + n, seg, seg_len);
            star = false;
        }
        if (last)
            break;
        dot = !hash; /* "#.b": the dot after goes with the '#' */
        seg = stop + 1;
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

/* "<prefix>:<destination>" in b->channel_buf; NULL when out of memory. */
static const char *channel_name(struct bridge *b, const char *dest, size_t len, size_t *out_len)
{
    size_t prefix_len = strlen(b->cfg.prefix);
    if (cluster_grow(&b->channel_buf, &b->channel_buf_cap, prefix_len + 1 + len + 1) != 0)
        return NULL;
    memcpy(b->channel_buf, b->cfg.prefix, prefix_len);
    b->channel_buf[prefix_len] = ':';
    memcpy(b->channel_buf + prefix_len + 1, dest, len);
    b->channel_buf[prefix_len + 1 + len] = '\0';
    *out_len = prefix_len + 1 + len;
    return b->channel_buf;
}

/* ---- interest tracking ----------------------------------------------------------------------- */

static void mark_dirty(struct bridge *b, struct channel *ch)
{
    if (ch->dirty)
        return;
    ch->dirty = true;
    ch->dirty_next = b->dirty;
    b->dirty = ch;
    event_active(b->flush_event, EV_TIMEOUT, 0);
}

static struct channel *channel_get(struct bridge *b, const char *key, size_t len, bool pattern)
{
    struct dict *d = pattern ? &b->globs : &b->exact_channels;
    struct channel *ch = dict_get(d, key, len);
    if (ch != NULL)
        return ch;
    ch = calloc(1, sizeof(*ch) + len + 1);
    if (ch == NULL)
        return NULL;
    ch->pattern = pattern;
    ch->key_len = len;
    memcpy(ch->key, key, len);
    /* Presence events come from a script's classic PUBLISH: they stay on the subscribe link. */
    const char *dest = ch->key + strlen(b->cfg.prefix) + 1;
    ch->sharded = b->shards != NULL && !pattern &&
                  !presence_is_events_name(dest, len - strlen(b->cfg.prefix) - 1);
    if (dict_set(d, ch->key, len, ch) != 0) {
        free(ch);
        return NULL;
    }
    return ch;
}

static struct interest *interest_new(struct bridge *b, const char *name, size_t len, bool pattern)
{
    size_t key_len;
    char *glob = NULL;
    const char *key;
    if (pattern)
        key = glob = bridge_pattern_glob(b->cfg.prefix, name, len, &key_len);
    else
        key = channel_name(b, name, len, &key_len);
    struct interest *in = calloc(1, sizeof(*in) + len + 1);
    struct channel *ch = key != NULL && in != NULL ? channel_get(b, key, key_len, pattern) : NULL;
    free(glob);
    struct dict *names = pattern ? &b->pattern_names : &b->exact_names;
    if (ch == NULL || dict_set(names, name, len, in) != 0) {
        if (ch != NULL && ch->interests == NULL)
            mark_dirty(b, ch); /* the flush frees the unused channel */
        free(in);
        return NULL;
    }
    in->pattern = pattern;
    in->name_len = len;
    memcpy(in->name, name, len);
    in->channel = ch;
    in->channel_next = ch->interests;
    ch->interests = in;
    mark_dirty(b, ch);
    return in;
}

static void interest_free(struct bridge *b, struct interest *in)
{
    struct channel *ch = in->channel;
    for (struct interest **p = &ch->interests; *p != NULL; p = &(*p)->channel_next) {
        if (*p == in) {
            *p = in->channel_next;
            break;
        }
    }
    mark_dirty(b, ch);
    dict_remove(in->pattern ? &b->pattern_names : &b->exact_names, in->name, in->name_len);
    free(in);
}

static void grace_unlink(struct bridge *b, struct interest *in)
{
    if (in->grace_prev != NULL)
        in->grace_prev->grace_next = in->grace_next;
    else
        b->grace_head = in->grace_next;
    if (in->grace_next != NULL)
        in->grace_next->grace_prev = in->grace_prev;
    else
        b->grace_tail = in->grace_prev;
    in->grace_prev = in->grace_next = NULL;
    in->in_grace = false;
}

static void grace_arm(struct bridge *b)
{
    if (b->grace_head == NULL) {
        evtimer_del(b->grace_timer);
        return;
    }
    uint64_t now = cluster_now_ms(), at = b->grace_head->grace_deadline_ms;
    uint64_t wait = at > now ? at - now : 0;
    struct timeval tv = {.tv_sec = (time_t)(wait / 1000),
                         .tv_usec = (suseconds_t)(wait % 1000) * 1000};
    evtimer_add(b->grace_timer, &tv);
}

/* Deadlines only grow (one grace for all), so the list stays sorted by appending. */
static void grace_append(struct bridge *b, struct interest *in)
{
    in->grace_deadline_ms = cluster_now_ms() + b->cfg.unsubscribe_grace_ms;
    in->in_grace = true;
    in->grace_prev = b->grace_tail;
    in->grace_next = NULL;
    if (b->grace_tail != NULL)
        b->grace_tail->grace_next = in;
    else
        b->grace_head = in;
    b->grace_tail = in;
    if (b->grace_head == in)
        grace_arm(b);
}

/* Removals whose grace ran out: the interest goes, and its channel is reconciled. */
static void on_grace(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bridge *b = arg;
    uint64_t now = cluster_now_ms();
    while (b->grace_head != NULL && b->grace_head->grace_deadline_ms <= now) {
        struct interest *in = b->grace_head;
        grace_unlink(b, in);
        if (!in->wanted)
            interest_free(b, in);
    }
    grace_arm(b);
}

void bridge_interest(struct bridge *b, const char *dest, size_t len, bool pattern, bool added)
{
    struct dict *names = pattern ? &b->pattern_names : &b->exact_names;
    struct interest *in = dict_get(names, dest, len);
    if (added) {
        if (in == NULL && (in = interest_new(b, dest, len, pattern)) == NULL) {
            log_error(0, "cluster: out of memory following %.*s in Redis", (int)len, dest);
            return;
        }
        in->wanted = true;
        if (in->in_grace) {
            grace_unlink(b, in); /* resubscribed within the grace: Redis never hears of it */
            grace_arm(b);
        }
        return;
    }
    if (in == NULL || !in->wanted)
        return;
    in->wanted = false;
    grace_append(b, in);
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata);

static void batch_send(struct bridge *b, struct batch *batch)
{
    if (batch->argc <= 1)
        return;
    if (redis_link_command_argv(b->sub, on_sub_reply, b, batch->argc, batch->argv,
                                batch->argvlen) != 0) {
        log_error(0, "cluster: could not queue %s on the subscribe link; restarting it",
                  batch->argv[0]);
        redis_link_restart(b->sub); /* replays every subscription when it is back */
    }
    batch->argc = 1;
}

static void batch_add(struct bridge *b, struct batch *batch, const struct channel *ch)
{
    batch->argv[batch->argc] = ch->key;
    batch->argvlen[batch->argc] = ch->key_len;
    if (++batch->argc == SUBSCRIBE_BATCH + 1)
        batch_send(b, batch);
}

static void batch_init(struct batch *batch, const char *command)
{
    batch->argv[0] = command;
    batch->argvlen[0] = strlen(command);
    batch->argc = 1;
}

/* Cluster mode: an exact channel is followed on its shard, whatever the subscribe link does. */
static void follow_sharded(struct bridge *b, struct channel *ch, bool wanted, uint64_t *gauge)
{
    if (wanted && !ch->in_redis) {
        if (shard_sub_add(b->shards, ch->key, ch->key_len) != 0) {
            log_error(0, "cluster: out of memory following %s on its shard", ch->key);
            return;
        }
        ch->in_redis = true;
        ++*gauge;
    } else if (!wanted && ch->in_redis) {
        shard_sub_remove(b->shards, ch->key, ch->key_len);
        ch->in_redis = ch->confirmed = false;
        --*gauge;
    }
}

/*
 * Brings Redis in line with every dirty channel: one command per kind for all the changes of a
 * loop turn. While the subscribe link is down nothing is sent (it replays on up); channels
 * nobody wants any more are freed once they are out of Redis.
 */
static void flush_interest(struct bridge *b)
{
    struct batch *batches = b->batches;
    struct batch *sub = &batches[0], *psub = &batches[1], *unsub = &batches[2],
                 *punsub = &batches[3];
    batch_init(sub, "SUBSCRIBE");
    batch_init(psub, "PSUBSCRIBE");
    batch_init(unsub, "UNSUBSCRIBE");
    batch_init(punsub, "PUNSUBSCRIBE");
    bool up = redis_link_is_up(b->sub);
    struct channel *unused = NULL;
    while (b->dirty != NULL) {
        struct channel *ch = b->dirty;
        b->dirty = ch->dirty_next;
        ch->dirty = false;
        bool wanted = ch->interests != NULL;
        uint64_t *gauge = ch->pattern ? &b->stats.patterns : &b->stats.channels;
        if (ch->sharded) {
            follow_sharded(b, ch, wanted, gauge);
        } else if (up && wanted && !ch->in_redis) {
            batch_add(b, ch->pattern ? psub : sub, ch);
            ch->in_redis = true;
            ++*gauge;
        } else if (up && !wanted && ch->in_redis) {
            batch_add(b, ch->pattern ? punsub : unsub, ch);
            ch->in_redis = false;
            ch->confirmed = false;
            --*gauge;
        }
        if (ch->pattern && b->wildcards != NULL)
            wildcards_own(b->wildcards, ch->key, ch->key_len, wanted);
        if (!wanted && !ch->in_redis) {
            dict_remove(ch->pattern ? &b->globs : &b->exact_channels, ch->key, ch->key_len);
            ch->dirty_next = unused; /* freed after the commands copied the names */
            unused = ch;
        }
    }
    for (int i = 0; i < 4; i++)
        batch_send(b, &batches[i]);
    while (unused != NULL) {
        struct channel *next = unused->dirty_next;
        free(unused);
        unused = next;
    }
}

static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush_interest(arg);
}

/* ---- receiving ------------------------------------------------------------------------------- */

/* Channels carry topics and user destinations (exact topic names of their own, routed alike). */
static bool bridged_kind(enum dest_kind kind)
{
    return kind == DEST_TOPIC || kind == DEST_USER;
}

static void decode_error(struct bridge *b, const char *channel, size_t len, const char *why)
{
    b->stats.decode_errors++;
    if (cluster_warn_due(&b->last_decode_warn_ms))
        log_warn(0, "cluster: dropped a message on Redis channel %.*s: %s (%llu so far)",
                 (int)(len > 200 ? 200 : len), channel, why,
                 (unsigned long long)b->stats.decode_errors);
}

static void probe_received(struct bridge *b, const char *payload, size_t len)
{
    struct envelope env;
    int rc =
        envelope_decode(payload, len, &b->limits, b->decoded_headers, b->limits.max_headers, &env);
    if (rc != 0 || env.body_len != strlen(b->instance) ||
        memcmp(env.body, b->instance, env.body_len) != 0) {
        if (cluster_warn_due(&b->last_dup_warn_ms))
            log_error(0,
                      "cluster: a probe for node id \"%s\" came from another process: node "
                      "ids must be unique (nodes sharing one drop each other's messages)",
                      b->cfg.node_id);
        return;
    }
    if (!b->probe_ok)
        log_debug(0, "cluster: subscribe link verified by probe %llu", (unsigned long long)env.seq);
    b->probe_ok = true;
    b->probes_unanswered = 0;
    if (env.seq == b->probe_seq)
        b->stats.probe_round_trip_us = cluster_now_us() - b->probe_sent_us;
}

/*
 * A message the history script published (history_redis.h): BRIDGE_RETAINED_MAGIC, the offset
 * in decimal, ':', the epoch in hex, ':', then the payload as for a plain PUBLISH. Returns the
 * bytes before the payload and fills *offset and *epoch, or 0 when it is not one.
 */
static size_t retained_prefix(const char *p, size_t len, uint64_t *offset, uint64_t *epoch)
{
    size_t magic = sizeof(BRIDGE_RETAINED_MAGIC) - 1;
    if (len < magic || memcmp(p, BRIDGE_RETAINED_MAGIC, magic) != 0)
        return 0;
    size_t i = magic;
    uint64_t v[2] = {0, 0};
    for (int field = 0; field < 2; field++) {
        unsigned base = field == 0 ? 10 : 16, digits = 0;
        for (; i < len && p[i] != ':'; i++, digits++) {
            int d = field == 0 ? (p[i] >= '0' && p[i] <= '9' ? p[i] - '0' : -1) : hexval(p[i]);
            if (d < 0 || digits >= 16 || v[field] > (UINT64_MAX - (unsigned)d) / base)
                return 0;
            v[field] = v[field] * base + (unsigned)d;
        }
        if (i == len || digits == 0)
            return 0;
        i++; /* the ':' */
    }
    *offset = v[0];
    *epoch = v[1];
    return i;
}

/* Builds the message a payload stands for, or NULL (counted) when it is dropped. A retained
 * message comes back to its own node too: that node delivers it from here, in offset order. */
static struct message *payload_message(struct bridge *b, const char *channel, size_t channel_len,
                                       const char *dest, size_t dest_len, const char *payload,
                                       size_t len)
{
    uint64_t offset = 0, epoch = 0;
    size_t skip = retained_prefix(payload, len, &offset, &epoch);
    payload += skip;
    len -= skip;
    const struct payload_source src = {.destination = dest,
                                       .destination_len = dest_len,
                                       .own_origin = skip > 0 ? NULL : b->cfg.node_id,
                                       .limits = &b->limits,
                                       .headers = b->decoded_headers};
    struct message *msg;
    const char *error;
    switch (payload_decode(&src, payload, len, &msg, &error)) {
    case PAYLOAD_RAW:
        b->stats.received_raw++;
        msg->stream_offset = offset;
        msg->stream_epoch = epoch;
        return msg;
    case PAYLOAD_ENVELOPE:
        msg->stream_offset = offset;
        msg->stream_epoch = epoch;
        return msg;
    case PAYLOAD_OWN:
        b->stats.ignored_own++; /* the router delivered it locally already */
        return NULL;
    case PAYLOAD_REFUSED:
        decode_error(b, channel, channel_len, error);
        return NULL;
    default:
        return NULL; /* out of memory */
    }
}

/* Bytes of a reply element or of a sharded subscriber's message, borrowed. */
struct bytes {
    const char *p;
    size_t len;
};

static struct bytes reply_bytes(const redisReply *r)
{
    return (struct bytes){r->str, (size_t)r->len};
}

static bool bytes_are(struct bytes b, const char *text, size_t len)
{
    return b.len == len && memcmp(b.p, text, len) == 0;
}

/*
 * One message from Redis: glob == NULL for (S)SUBSCRIBE channels, else the PSUBSCRIBE glob it
 * matched. Hands it to the broker once per interest the channel serves that still has local
 * subscribers.
 */
static bool control_arrived(struct bridge *b, struct bytes channel, struct bytes payload);

static void message_arrived(struct bridge *b, const struct bytes *glob, struct bytes channel,
                            struct bytes payload)
{
    if (glob == NULL && control_arrived(b, channel, payload))
        return;
    if (glob == NULL && bytes_are(channel, b->probe_channel, b->probe_channel_len)) {
        probe_received(b, payload.p, payload.len);
        return;
    }
    if (glob == NULL && b->wildcards != NULL &&
        bytes_are(channel, wildcards_channel(b->wildcards),
                  strlen(wildcards_channel(b->wildcards)))) {
        wildcards_changed(b->wildcards);
        return;
    }
    size_t prefix_len = strlen(b->cfg.prefix), skip = prefix_len + 1;
    size_t len = channel.len;
    const char *dest = channel.p + skip;
    if (len <= skip || memcmp(channel.p, b->cfg.prefix, prefix_len) != 0 ||
        channel.p[prefix_len] != ':' ||
        (!bridged_kind(destination_kind(dest, len - skip)) &&
         !presence_is_events_name(dest, len - skip)) || /* presence: the cluster's events */
        memchr(dest, '\0', len - skip) ||
        len - skip > b->limits.max_destination) {
        decode_error(b, channel.p, len,
                     "not a /topic/, /user/ or /presence/ channel under the prefix");
        return;
    }
    struct channel *ch = glob != NULL ? dict_get(&b->globs, glob->p, glob->len)
                                      : dict_get(&b->exact_channels, channel.p, len);
    if (ch == NULL)
        return; /* unsubscribed meanwhile */
    struct message *msg =
        payload_message(b, channel.p, len, dest, len - skip, payload.p, payload.len);
    if (msg == NULL)
        return;
    b->stats.received++;
    for (struct interest *in = ch->interests; in != NULL; in = in->channel_next) {
        if (!in->wanted)
            continue;
        if (in->pattern)
            b->ops.deliver(b->ops.ctx, msg, in->name, in->name_len);
        else
            b->ops.deliver(b->ops.ctx, msg, NULL, 0);
    }
    message_unref(msg);
}

static bool is_string(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING;
}

static bool reply_kind(const redisReply *r, const char *kind)
{
    return is_string(r->element[0]) && strcasecmp(r->element[0]->str, kind) == 0;
}

/* A (P)SUBSCRIBE of a channel of interest was answered: from now on its messages come. Tells
 * ops.confirmed (history replays wait for it). False for a channel not followed (the probe's). */
static bool subscription_confirmed(struct bridge *b, const redisReply *reply)
{
    bool pattern = reply_kind(reply, "psubscribe");
    struct channel *ch = dict_get(pattern ? &b->globs : &b->exact_channels, reply->element[1]->str,
                                  (size_t)reply->element[1]->len);
    if (ch == NULL || !ch->in_redis)
        return false;
    ch->confirmed = true;
    if (b->ops.confirmed != NULL)
        b->ops.confirmed(b->ops.ctx);
    return true;
}

/* Every reply on the subscribe link: messages, pmessages and (un)subscribe confirmations. */
static void on_sub_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct bridge *b = privdata;
    const redisReply *reply = r;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return; /* NULL: the link is going away */
    if (reply->elements == 3 && reply_kind(reply, "message") && is_string(reply->element[1]) &&
        is_string(reply->element[2])) {
        message_arrived(b, NULL, reply_bytes(reply->element[1]), reply_bytes(reply->element[2]));
    } else if (reply->elements == 4 && reply_kind(reply, "pmessage") &&
               is_string(reply->element[1]) && is_string(reply->element[2]) &&
               is_string(reply->element[3])) {
        struct bytes glob = reply_bytes(reply->element[1]);
        message_arrived(b, &glob, reply_bytes(reply->element[2]), reply_bytes(reply->element[3]));
    } else if ((reply_kind(reply, "subscribe") || reply_kind(reply, "psubscribe")) &&
               is_string(reply->element[1]) && subscription_confirmed(b, reply)) {
        /* a channel of interest: confirmed */
    } else if (reply_kind(reply, "subscribe") && is_string(reply->element[1]) &&
               strcmp(reply->element[1]->str, b->control_all) == 0) {
        b->control_subscribed = true;
    } else if (reply_kind(reply, "subscribe") && is_string(reply->element[1]) &&
               (size_t)reply->element[1]->len == b->probe_channel_len &&
               memcmp(reply->element[1]->str, b->probe_channel, b->probe_channel_len) == 0) {
        b->probe_subscribed = true;
        b->probes_unanswered = 0;
        send_probe(b); /* verifies the new link within one round trip */
    }
}

/* ---- publishing ------------------------------------------------------------------------------ */

static void on_published(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct bridge *b = privdata;
    const redisReply *reply = r;
    if (reply == NULL) {
        b->stats.dropped++; /* in flight when the link broke: it may or may not have arrived */
    } else if (reply->type == REDIS_REPLY_ERROR) {
        b->stats.publish_errors++;
        if (cluster_warn_due(&b->last_drop_warn_ms))
            log_warn(0, "cluster: Redis refused a PUBLISH: %.*s", (int)reply->len, reply->str);
    }
}

/*
 * Queues PUBLISH (sharded: SPUBLISH) channel <envelope> as one RESP command built in b->scratch:
 * the envelope is encoded in place, so the body is copied once here and once into hiredis'
 * output buffer.
 */
static int publish_envelope(struct bridge *b, bool sharded, const char *channel, size_t channel_len,
                            const struct envelope *env, redisCallbackFn *fn)
{
    size_t payload_len = envelope_size(env);
    size_t room = channel_len + 64; /* RESP framing around channel and payload */
    if (payload_len == 0 || payload_len > SIZE_MAX - room - REDIS_RESP_TRAILER_LEN ||
        cluster_grow(&b->scratch, &b->scratch_cap, room + payload_len + REDIS_RESP_TRAILER_LEN) !=
            0)
        return -1;
    size_t n =
        redis_resp_publish_prefix(b->scratch, room, sharded, channel, channel_len, payload_len);
    if (n == 0 || envelope_encode(env, b->scratch + n, payload_len) != payload_len)
        return -1;
    n += payload_len;
    memcpy(b->scratch + n, "\r\n", REDIS_RESP_TRAILER_LEN);
    n += REDIS_RESP_TRAILER_LEN;
    return redis_link_command_resp(b->pub, fn, b, b->scratch, n);
}

static void drop_publish(struct bridge *b, const struct message *msg, const char *why)
{
    b->stats.dropped++;
    if (cluster_warn_due(&b->last_drop_warn_ms))
        log_warn(0,
                 "cluster: a message to %s was not sent to other nodes: %s (%llu dropped so "
                 "far)",
                 msg->destination, why, (unsigned long long)b->stats.dropped);
}

void bridge_publish(struct bridge *b, struct message *msg)
{
    if (!bridged_kind(destination_kind(msg->destination, msg->destination_len)))
        return;
    bool sharded = b->shards != NULL;
    /* Cluster mode: the link is "up" while its home master is, but the SPUBLISH goes to the
     * master of the topic's own slot, which the router still reaches while the home master
     * fails over (it refuses the command when it cannot). */
    if (!sharded && !redis_link_is_up(b->pub)) {
        drop_publish(b, msg, "the Redis publish link is down");
        return;
    }
    if (redis_link_unsent_bytes(b->pub) > b->cfg.max_publish_backlog) {
        drop_publish(b, msg, "Redis is not keeping up (publish backlog full)");
        return;
    }
    size_t channel_len;
    const char *channel = channel_name(b, msg->destination, msg->destination_len, &channel_len);
    struct envelope env = payload_envelope(b->cfg.node_id, b->seq + 1, msg);
    if (channel == NULL ||
        publish_envelope(b, sharded, channel, channel_len, &env, on_published) != 0) {
        drop_publish(b, msg,
                     redis_link_is_up(b->pub) ? "out of memory or unencodable"
                                              : "the Redis publish link is down");
        return;
    }
    b->seq++;
    b->stats.published++;
    b->stats.sharded += sharded;
    /* Cluster mode: wildcard subscribers hear classic PUBLISH only (wildcards.h). It goes to the
     * master of the channel's slot, like the SPUBLISH, and is counted dropped if refused. */
    if (sharded && bridge_broadcast_wanted(b, channel, channel_len) &&
        publish_envelope(b, false, channel, channel_len, &env, on_published) != 0)
        drop_publish(b, msg, "its copy for wildcard subscribers could not be sent");
}

/* ---- probes ---------------------------------------------------------------------------------- */

static void on_probe_published(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct bridge *b = privdata;
    const redisReply *reply = r;
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER && b->probe_subscribed)
        b->probes_unanswered++; /* Redis has it; the subscribe link owes it to us now */
}

static void send_probe(struct bridge *b)
{
    if (!redis_link_is_up(b->pub) || !b->probe_subscribed)
        return;
    const char *dest = b->probe_channel + strlen(b->cfg.prefix) + 1;
    struct envelope env = {
        .origin = b->cfg.node_id,
        .origin_len = strlen(b->cfg.node_id),
        .seq = ++b->probe_seq,
        .destination = dest,
        .destination_len = b->probe_channel_len - (size_t)(dest - b->probe_channel),
        .body = b->instance,
        .body_len = strlen(b->instance),
    };
    b->probe_sent_us = cluster_now_us();
    if (publish_envelope(b, false, b->probe_channel, b->probe_channel_len, &env,
                         on_probe_published) != 0)
        log_debug(0, "cluster: could not queue a probe");
}

/*
 * Every probe_interval_ms: a connected subscribe link that has not returned any of the last two
 * probes Redis accepted is silently broken (a half-open connection, a proxy that stalls): restart
 * it. Otherwise send the next probe.
 */
static void on_probe_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct bridge *b = arg;
    if (redis_link_is_up(b->sub) && b->probe_subscribed && b->probes_unanswered >= 2) {
        log_warn(0,
                 "cluster: no probe came back on the Redis subscribe link for %u ms; "
                 "restarting it",
                 2 * b->cfg.probe_interval_ms);
        b->stats.subscribe_link_restarts++;
        b->probe_ok = false;
        redis_link_restart(b->sub);
        return;
    }
    send_probe(b);
}

/* ---- links ----------------------------------------------------------------------------------- */

static void count_reconnects(struct bridge *b)
{
    b->stats.reconnects =
        redis_link_stats(b->pub)->reconnects + redis_link_stats(b->sub)->reconnects;
}

static void on_pub_up(void *ctx, struct redis_link *link)
{
    (void)link;
    struct bridge *b = ctx;
    count_reconnects(b);
    send_probe(b);
}

static void on_pub_down(void *ctx, struct redis_link *link)
{
    (void)ctx;
    (void)link;
}

/* The subscribe link's channels are not subscribed any more (sharded ones are not its own); with
 * resubscribe, they are marked for the next flush. */
static void forget_subscribed(struct bridge *b, bool resubscribe)
{
    struct dict *dicts[2] = {&b->exact_channels, &b->globs};
    for (int i = 0; i < 2; i++) {
        size_t bucket;
        for (struct dict_entry *e = dict_first(dicts[i], &bucket); e != NULL;
             e = dict_next(dicts[i], &bucket, e)) {
            struct channel *ch = e->value;
            if (ch->sharded)
                continue;
            if (ch->in_redis)
                --*(ch->pattern ? &b->stats.patterns : &b->stats.channels);
            ch->in_redis = ch->confirmed = false;
            if (resubscribe)
                mark_dirty(b, ch);
        }
    }
}

/* The subscribe link is (back) up: the probe channel first, then every channel of interest. */
static void on_sub_up(void *ctx, struct redis_link *link)
{
    struct bridge *b = ctx;
    b->probe_ok = false;
    b->probe_subscribed = false;
    b->probes_unanswered = 0;
    b->control_subscribed = false;
    const char *argv[5] = {"SUBSCRIBE", b->probe_channel};
    size_t argvlen[5] = {9, b->probe_channel_len};
    int argc = 2;
    if (b->ops.control != NULL) { /* the admin API's control channels */
        argv[argc] = b->control_all;
        argvlen[argc++] = strlen(b->control_all);
        argv[argc] = b->control_mine;
        argvlen[argc++] = strlen(b->control_mine);
    }
    if (b->wildcards != NULL) { /* cluster mode: the registry's change notices */
        argv[argc] = wildcards_channel(b->wildcards);
        argvlen[argc] = strlen(argv[argc]);
        argc++;
        wildcards_changed(b->wildcards);
    }
    if (redis_link_command_argv(link, on_sub_reply, b, argc, argv, argvlen) != 0) {
        redis_link_restart(link);
        return;
    }
    count_reconnects(b);
    forget_subscribed(b, true); /* a new connection holds no subscriptions */
    flush_interest(b);
}

static void on_sub_down(void *ctx, struct redis_link *link)
{
    (void)link;
    struct bridge *b = ctx;
    b->probe_ok = false;
    b->probe_subscribed = false;
    b->probes_unanswered = 0;
    b->control_subscribed = false;
    forget_subscribed(b, false);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

static void random_hex(char *out, size_t bytes)
{
    unsigned char raw[32];
    if (bytes > sizeof(raw))
        bytes = sizeof(raw);
    evutil_secure_rng_get_bytes(raw, bytes);
    for (size_t i = 0; i < bytes; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

/* Node ids name channels and appear in logs: printable ASCII without spaces. */
static bool node_id_valid(const char *id)
{
    size_t len = strlen(id);
    if (len == 0 || len >= BRIDGE_NODE_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (id[i] <= ' ' || id[i] > '~')
            return false;
    return true;
}

static void apply_defaults(struct bridge_config *cfg)
{
    struct bridge_config def;
    bridge_config_defaults(&def);
    if (cfg->redis_port == 0)
        cfg->redis_port = def.redis_port;
    if (cfg->prefix[0] == '\0')
        strcpy(cfg->prefix, def.prefix);
    if (cfg->reconnect_min_ms == 0)
        cfg->reconnect_min_ms = def.reconnect_min_ms;
    if (cfg->reconnect_max_ms == 0)
        cfg->reconnect_max_ms = def.reconnect_max_ms;
    if (cfg->probe_interval_ms == 0)
        cfg->probe_interval_ms = def.probe_interval_ms;
    if (cfg->max_publish_backlog == 0)
        cfg->max_publish_backlog = DEFAULT_BACKLOG;
    if (cfg->node_id[0] == '\0')
        random_hex(cfg->node_id, 8);
}

void bridge_envelope_limits(const struct bridge_config *cfg, struct envelope_limits *lim)
{
    envelope_limits_default(lim);
    if (cfg->max_destination != 0)
        lim->max_destination = cfg->max_destination;
    if (cfg->max_headers != 0)
        lim->max_headers = cfg->max_headers;
    if (cfg->max_header_bytes != 0)
        lim->max_header_bytes = cfg->max_header_bytes;
    if (cfg->max_body != 0)
        lim->max_body = cfg->max_body;
}

void bridge_link_config(const struct bridge_config *cfg, const char *name, int db,
                        struct redis_link_config *out)
{
    *out = (struct redis_link_config){
        .name = name,
        .host = cfg->redis_host,
        .port = cfg->redis_port,
        .username = cfg->redis_username,
        .password = cfg->redis_password,
        .db = db,
        .reconnect_min_ms = cfg->reconnect_min_ms,
        .reconnect_max_ms = cfg->reconnect_max_ms,
        .connect_timeout_ms = cfg->connect_timeout_ms != 0 ? cfg->connect_timeout_ms : 5000,
        .sentinel = cfg->sentinel,
        .cluster = cfg->cluster,
        .home_key = cfg->prefix,
    };
}

static struct redis_link *link_new(struct bridge *b, const char *name, int db,
                                   void (*up)(void *, struct redis_link *),
                                   void (*down)(void *, struct redis_link *))
{
    struct redis_link_config lc;
    bridge_link_config(&b->cfg, name, db, &lc);
    lc.pinned = up == on_sub_up; /* cluster mode: SUBSCRIBE callbacks run once per message */
    /* cluster mode: a topic's SPUBLISH goes on while the home master (keyless PUBLISH) fails */
    lc.keyed_without_home = up == on_pub_up;
    struct redis_link_ops ops = {.ctx = b, .up = up, .down = down};
    return redis_link_new(b->base, &lc, &ops);
}

/* ---- Redis Cluster: sharded pub/sub --------------------------------------------------------- */

static bool shard_locate(void *ctx, uint16_t slot, struct slots_node *out)
{
    struct bridge *b = ctx;
    const struct slots_map *map = cluster_map_slots(b->cfg.cluster);
    const struct slots_node *node = map != NULL ? slots_map_node(map, slot) : NULL;
    if (node != NULL)
        *out = *node;
    return node != NULL;
}

static void shard_stale(void *ctx)
{
    struct bridge *b = ctx;
    cluster_map_refresh(b->cfg.cluster);
}

static void shard_message(void *ctx, const char *channel, size_t channel_len, const char *payload,
                          size_t len)
{
    message_arrived(ctx, NULL, (struct bytes){channel, channel_len}, (struct bytes){payload, len});
}

static void shard_subscribed(void *ctx, const char *channel, size_t len)
{
    struct bridge *b = ctx;
    struct channel *ch = dict_get(&b->exact_channels, channel, len);
    if (ch == NULL || !ch->in_redis || !ch->sharded)
        return;
    ch->confirmed = true;
    if (b->ops.confirmed != NULL)
        b->ops.confirmed(b->ops.ctx);
}

static void on_map_changed(void *ctx)
{
    struct bridge *b = ctx;
    shard_sub_remap(b->shards);
}

static int start_sharding(struct bridge *b)
{
    struct shard_sub_config scfg = {
        .username = b->cfg.redis_username,
        .password = b->cfg.redis_password,
        .connect_timeout_ms = b->cfg.connect_timeout_ms,
        .reconnect_min_ms = b->cfg.reconnect_min_ms,
        .reconnect_max_ms = b->cfg.reconnect_max_ms,
    };
    struct shard_sub_ops sops = {.ctx = b,
                                 .locate = shard_locate,
                                 .stale = shard_stale,
                                 .message = shard_message,
                                 .subscribed = shard_subscribed};
    b->shards = shard_sub_new(b->base, &scfg, &sops);
    b->wildcards =
        wildcards_new(b->base, b->pub, b->cfg.prefix, b->cfg.node_id, b->cfg.probe_interval_ms);
    if (b->shards == NULL || b->wildcards == NULL ||
        cluster_map_watch(b->cfg.cluster, on_map_changed, b) != 0)
        return -1;
    return 0;
}

static int bridge_init(struct bridge *b)
{
    struct timeval probe_every = {.tv_sec = b->cfg.probe_interval_ms / 1000,
                                  .tv_usec = (b->cfg.probe_interval_ms % 1000) * 1000};
    b->decoded_headers = calloc(b->limits.max_headers, sizeof(*b->decoded_headers));
    b->batches = calloc(4, sizeof(*b->batches));
    b->flush_event = event_new(b->base, -1, 0, on_flush, b);
    b->grace_timer = evtimer_new(b->base, on_grace, b);
    b->probe_timer = event_new(b->base, -1, EV_PERSIST, on_probe_timer, b);
    if (b->decoded_headers == NULL || b->batches == NULL || b->flush_event == NULL ||
        b->grace_timer == NULL || b->probe_timer == NULL ||
        event_add(b->probe_timer, &probe_every) != 0)
        return -1;
    /* SELECT only matters to the publish link (pub/sub channels ignore the database). */
    b->pub = link_new(b, "publish", b->cfg.redis_db, on_pub_up, on_pub_down);
    if (b->pub != NULL && b->cfg.cluster != NULL && start_sharding(b) != 0)
        return -1;
    b->sub = link_new(b, "subscribe", 0, on_sub_up, on_sub_down);
    return b->pub != NULL && b->sub != NULL ? 0 : -1;
}

struct bridge *bridge_new(struct event_base *base, const struct bridge_config *cfg,
                          const struct bridge_ops *ops)
{
    struct bridge *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->base = base;
    b->cfg = *cfg;
    b->ops = *ops;
    apply_defaults(&b->cfg);
    if (b->cfg.redis_host[0] == '\0') {
        log_error(0, "cluster: no Redis host");
        free(b);
        return NULL;
    }
    if (!node_id_valid(b->cfg.node_id)) {
        log_error(0,
                  "cluster: node id \"%s\" must be 1-%d printable ASCII characters without "
                  "spaces",
                  b->cfg.node_id, BRIDGE_NODE_ID_MAX - 1);
        free(b);
        return NULL;
    }
    bridge_envelope_limits(&b->cfg, &b->limits);
    random_hex(b->instance, 8);
    b->probe_channel_len = (size_t)snprintf(b->probe_channel, sizeof(b->probe_channel), "%s:%s%s",
                                            b->cfg.prefix, PROBE_CHANNEL_PART, b->cfg.node_id);
    snprintf(b->control_all, sizeof(b->control_all), "%s:%s", b->cfg.prefix, CONTROL_CHANNEL_PART);
    snprintf(b->control_mine, sizeof(b->control_mine), "%s:%s:%s", b->cfg.prefix,
             CONTROL_CHANNEL_PART, b->cfg.node_id);
    dict_init(&b->exact_names);
    dict_init(&b->pattern_names);
    dict_init(&b->exact_channels);
    dict_init(&b->globs);
    if (bridge_init(b) != 0) {
        log_error(0, "cluster: out of memory starting the Redis bridge");
        bridge_free(b);
        return NULL;
    }
    return b;
}

static void free_values(struct dict *d)
{
    size_t bucket;
    for (struct dict_entry *e = dict_first(d, &bucket); e != NULL; e = dict_next(d, &bucket, e))
        free(e->value);
    dict_reset(d);
}

void bridge_free(struct bridge *b)
{
    if (b == NULL)
        return;
    /* Links first: their pending callbacks run (with NULL replies) while b is whole. */
    redis_link_free(b->pub);
    b->pub = NULL;
    redis_link_free(b->sub);
    b->sub = NULL;
    if (b->shards != NULL) {
        cluster_map_unwatch(b->cfg.cluster, on_map_changed, b);
        shard_sub_free(b->shards);
    }
    wildcards_free(b->wildcards);
    if (b->flush_event != NULL)
        event_free(b->flush_event);
    if (b->grace_timer != NULL)
        event_free(b->grace_timer);
    if (b->probe_timer != NULL)
        event_free(b->probe_timer);
    free_values(&b->exact_names);
    free_values(&b->pattern_names);
    free_values(&b->exact_channels);
    free_values(&b->globs);
    free(b->decoded_headers);
    free(b->batches);
    free(b->scratch);
    free(b->channel_buf);
    free(b);
}

bool bridge_broadcast_wanted(struct bridge *b, const char *channel, size_t len)
{
    if (b->wildcards == NULL || !wildcards_match(b->wildcards, channel, len))
        return false;
    b->stats.broadcast++;
    return true;
}

bool bridge_link_up(const struct bridge *b)
{
    return redis_link_is_up(b->pub) && redis_link_is_up(b->sub) && b->probe_ok;
}

bool bridge_confirmed(struct bridge *b, const char *name, size_t len, bool pattern)
{
    struct interest *in = dict_get(pattern ? &b->pattern_names : &b->exact_names, name, len);
    return in != NULL && in->wanted && in->channel != NULL && in->channel->confirmed;
}

struct redis_link *bridge_command_link(struct bridge *b)
{
    return b->pub;
}

const char *bridge_node_id(const struct bridge *b)
{
    return b->cfg.node_id;
}

const struct bridge_stats *bridge_stats(const struct bridge *b)
{
    struct bridge_stats *stats = (struct bridge_stats *)&b->stats; /* gauges read now */
    if (b->shards != NULL) {
        struct shard_sub_stats ss;
        shard_sub_stats(b->shards, &ss);
        stats->shard_moved = ss.moved;
        stats->shard_unasked = ss.unasked;
        stats->shard_links = ss.connections;
        stats->shard_links_up = ss.connections_up;
    }
    if (b->wildcards != NULL)
        stats->wildcard_globs = wildcards_stats(b->wildcards)->globs;
    return &b->stats;
}

struct shard_visit {
    void (*fn)(void *arg, const char *role, const char *host, unsigned short port, bool up);
    void *arg;
    const char *role;
};

static void visit_sub_node(void *arg, const struct slots_node *node, bool up, size_t channels)
{
    (void)channels;
    const struct shard_visit *v = arg;
    v->fn(v->arg, v->role, node->host, node->port, up);
}

static void visit_pub_node(void *arg, const char *host, unsigned short port, bool up)
{
    const struct shard_visit *v = arg;
    v->fn(v->arg, v->role, host, port, up);
}

void bridge_each_shard_link(const struct bridge *b,
                            void (*fn)(void *arg, const char *role, const char *host,
                                       unsigned short port, bool up),
                            void *arg)
{
    struct shard_visit v = {.fn = fn, .arg = arg, .role = "publish"};
    redis_link_each_node(b->pub, visit_pub_node, &v);
    if (b->shards != NULL) {
        v.role = "subscribe";
        shard_sub_each_node(b->shards, visit_sub_node, &v);
    }
}

/* ---- admin API (issue #15): the control channels -------------------------------------------- */

/* A message on a control channel goes to ops.control; true when channel was one of them. */
static bool control_arrived(struct bridge *b, struct bytes channel, struct bytes payload)
{
    bool all = bytes_are(channel, b->control_all, strlen(b->control_all));
    bool mine = bytes_are(channel, b->control_mine, strlen(b->control_mine));
    if (b->ops.control == NULL || (!all && !mine))
        return false;
    b->ops.control(b->ops.ctx, !all, payload.p, payload.len);
    return true;
}

/* What a request's PUBLISH is waiting for: how many nodes heard it. */
struct control_publish {
    struct bridge *b;
    uint64_t id;
    void (*heard)(void *ctx, uint64_t id, long others);
};

static void on_control_published(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct control_publish *p = privdata;
    const redisReply *reply = r;
    long others = -1; /* an error reply: nobody heard it */
    /* Redis counts every subscriber of the channel, this node's own link among them. */
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
        others = (long)reply->integer - (p->b->control_subscribed ? 1 : 0);
        others = others < 0 ? 0 : others;
    }
    /* NULL: the link broke or the bridge is going away; the asker's timeout answers then. */
    if (p->heard != NULL && reply != NULL)
        p->heard(p->b->ops.ctx, p->id, others);
    free(p);
}

int bridge_control_publish(struct bridge *b, const char *node, const char *payload, size_t len,
                           uint64_t id, void (*heard)(void *ctx, uint64_t id, long others))
{
    char channel[sizeof(b->control_mine)];
    int n = node == NULL ? snprintf(channel, sizeof(channel), "%s", b->control_all)
                         : snprintf(channel, sizeof(channel), "%s:%s:%s", b->cfg.prefix,
                                    CONTROL_CHANNEL_PART, node);
    struct control_publish *p = calloc(1, sizeof(*p));
    if (n < 0 || (size_t)n >= sizeof(channel) || p == NULL || !redis_link_is_up(b->pub)) {
        free(p);
        return -1;
    }
    *p = (struct control_publish){.b = b, .id = id, .heard = heard};
    const char *argv[3] = {"PUBLISH", channel, payload};
    size_t argvlen[3] = {7, (size_t)n, len};
    if (redis_link_command_argv(b->pub, on_control_published, p, 3, argv, argvlen) != 0) {
        free(p);
        return -1;
    }
    return 0;
}
