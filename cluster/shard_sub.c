/*
 * shard_sub.c - sharded pub/sub (SSUBSCRIBE) over one connection per master of a Redis Cluster.
 *
 * Each connection is a bufferevent of its own; what it reads goes through hiredis' reply parser
 * (redisReader) and nothing else of hiredis (see shard_sub.h for why). Commands are written as
 * RESP with redisFormatCommandArgv.
 *
 * Replies are matched to commands in order: each connection keeps a FIFO of what it sent
 * (AUTH: one reply; SSUBSCRIBE with k channels of one slot: k confirmations or one error;
 * SUNSUBSCRIBE of one channel: one sunsubscribe or one error), since an error does not name its
 * channel. Pushes (smessage, and sunsubscribe Redis sends unasked when a slot leaves the node)
 * come in between and are told apart by their kind and channel.
 *
 * Nothing here calls the owner from inside shard_sub_add / _remove / _remap / _free: SSUBSCRIBEs
 * are batched and written by an event made active for the end of the loop turn (flush_ev), the
 * stale report waits on stale_ev, and connections left without channels are freed by reap_ev,
 * never inside their own callbacks. Bufferevents defer their callbacks for the same reason.
 */
#include "cluster/shard_sub.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/util.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "broker/base/dict.h"
#include "broker/base/log.h"
#include "cluster/common.h"

#define BATCH_MAX             64 /* channels per SSUBSCRIBE */
#define DEFAULT_CONNECT_MS    5000
#define DEFAULT_RECONNECT_MIN 100
#define DEFAULT_RECONNECT_MAX 5000

enum conn_state { CONN_IDLE, CONN_CONNECTING, CONN_AUTHING, CONN_UP };

enum sent_kind { SENT_AUTH, SENT_SSUBSCRIBE, SENT_SUNSUBSCRIBE };

/* A command written on a connection whose replies have not all come. */
struct sent {
    struct sent *next; /* owned: the next command sent after this one */
    enum sent_kind kind;
    uint16_t slot;  /* SSUBSCRIBE / SUNSUBSCRIBE: the slot of its channels */
    size_t replies; /* confirmations still expected (SSUBSCRIBE: one per channel) */
    size_t name_len;
    char name[]; /* SUNSUBSCRIBE: its one channel (to tell its answer from an unasked push) */
};

struct conn {
    struct shard_sub *owner; /* borrowed: the object this connection belongs to */
    struct conn *next;       /* owned by the list s->conns (each node owned by the list) */
    struct slots_node node;  /* the master it connects to */
    struct bufferevent *bev; /* owned while not NULL (CONNECTING, AUTHING, UP) */
    redisReader *reader;     /* owned while not NULL: parses what bev reads */
    struct event *deadline;  /* owned: bounds connect + AUTH */
    struct event *retry;     /* owned: waits out the backoff */
    struct sent *sent_head;  /* owned: commands awaiting replies, oldest first */
    struct sent *sent_tail;  /* borrowed: the last of them */
    enum conn_state state;
    unsigned attempt;   /* failed attempts since it was last up: the backoff exponent */
    bool reported_down; /* this outage already has its warn line */
    size_t channels;    /* channels placed on this connection */
};

struct channel {
    struct conn *conn; /* borrowed: where it is placed; NULL waits for a remap */
    struct channel *pending_prev, *pending_next; /* borrowed: the list s->pending, when queued */
    uint16_t slot;
    bool queued;    /* in s->pending: SSUBSCRIBE to write at the end of the turn */
    bool sent;      /* SSUBSCRIBE written on conn's current session */
    bool confirmed; /* Redis confirmed it on conn's current session */
    size_t len;
    char name[]; /* the channel's bytes, NUL-terminated for logs */
};

struct shard_sub {
    struct event_base *base;     /* borrowed: the loop */
    struct shard_sub_config cfg; /* strings borrowed from the caller */
    struct shard_sub_ops ops;
    struct dict channels;         /* name -> struct channel, the values owned here */
    struct conn *conns;           /* owned list: one per master carrying channels */
    struct channel *pending;      /* borrowed: channels whose SSUBSCRIBE is still to write */
    struct event *flush_ev;       /* owned: writes the queued SSUBSCRIBEs */
    struct event *stale_ev;       /* owned: calls ops.stale outside the caller's call chain */
    struct event *reap_ev;        /* owned: frees connections left with no channel */
    uint64_t last_warn_ms;        /* cluster_warn_due clock for error replies */
    struct shard_sub_stats stats; /* counters; connections/channels/confirmed kept current */
};

static void conn_connect(struct conn *c);
static void on_deadline(evutil_socket_t fd, short what, void *arg);
static void on_retry(evutil_socket_t fd, short what, void *arg);

/* ---- small helpers ------------------------------------------------------------------------- */

static void set_confirmed(struct shard_sub *s, struct channel *ch, bool confirmed)
{
    if (ch->confirmed == confirmed)
        return;
    ch->confirmed = confirmed;
    if (confirmed)
        s->stats.confirmed++;
    else
        s->stats.confirmed--;
}

static void report_stale(struct shard_sub *s)
{
    event_active(s->stale_ev, EV_TIMEOUT, 0);
}

/* ---- the SSUBSCRIBE queue ------------------------------------------------------------------ */

static void queue_channel(struct shard_sub *s, struct channel *ch)
{
    if (ch->queued)
        return;
    ch->queued = true;
    ch->pending_prev = NULL;
    ch->pending_next = s->pending;
    if (s->pending != NULL)
        s->pending->pending_prev = ch;
    s->pending = ch;
    event_active(s->flush_ev, EV_TIMEOUT, 0);
}

static void unqueue_channel(struct shard_sub *s, struct channel *ch)
{
    if (!ch->queued)
        return;
    if (ch->pending_prev != NULL)
        ch->pending_prev->pending_next = ch->pending_next;
    else
        s->pending = ch->pending_next;
    if (ch->pending_next != NULL)
        ch->pending_next->pending_prev = ch->pending_prev;
    ch->queued = false;
    ch->pending_prev = ch->pending_next = NULL;
}

/* ---- writing commands ---------------------------------------------------------------------- */

/* Remembers a command just written, for its replies. false when out of memory. */
static bool sent_push(struct conn *c, enum sent_kind kind, uint16_t slot, size_t replies,
                      const char *name, size_t name_len)
{
    struct sent *e = malloc(sizeof(*e) + name_len + 1);
    if (e == NULL)
        return false;
    e->next = NULL;
    e->kind = kind;
    e->slot = slot;
    e->replies = replies;
    e->name_len = name_len;
    if (name_len > 0)
        memcpy(e->name, name, name_len);
    e->name[name_len] = '\0';
    if (c->sent_tail != NULL)
        c->sent_tail->next = e;
    else
        c->sent_head = e;
    c->sent_tail = e;
    return true;
}

static void sent_pop(struct conn *c)
{
    struct sent *e = c->sent_head;
    if (e == NULL)
        return;
    c->sent_head = e->next;
    if (c->sent_head == NULL)
        c->sent_tail = NULL;
    free(e);
}

static void sent_clear(struct conn *c)
{
    while (c->sent_head != NULL)
        sent_pop(c);
}

/* Formats argv as RESP and writes it; false when out of memory (the command is not sent). */
static bool write_command(struct conn *c, int argc, const char **argv, const size_t *lens)
{
    char *cmd = NULL;
    int n = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (n < 0 || cmd == NULL)
        return false;
    int rc = bufferevent_write(c->bev, cmd, (size_t)n);
    free(cmd);
    return rc == 0;
}

/* SUNSUBSCRIBE one channel on c (only when c is up: a closed session unsubscribed it already). */
static void send_unsubscribe(struct conn *c, const struct channel *ch)
{
    if (c->state != CONN_UP)
        return;
    const char *argv[2] = {"SUNSUBSCRIBE", ch->name};
    size_t lens[2] = {12, ch->len};
    if (!sent_push(c, SENT_SUNSUBSCRIBE, ch->slot, 1, ch->name, ch->len))
        return;
    if (!write_command(c, 2, argv, lens)) {
        /* Not written: forget the entry again (it is the tail). */
        struct sent *e = c->sent_head;
        if (e == c->sent_tail) {
            sent_clear(c);
        } else {
            while (e->next != c->sent_tail)
                e = e->next;
            free(c->sent_tail);
            e->next = NULL;
            c->sent_tail = e;
        }
    }
}

/* One SSUBSCRIBE for count channels of one slot, all on c. */
static void send_subscribe(struct conn *c, struct channel **chs, size_t count)
{
    const char *argv[BATCH_MAX + 1];
    size_t lens[BATCH_MAX + 1];
    argv[0] = "SSUBSCRIBE";
    lens[0] = 10;
    for (size_t i = 0; i < count; i++) {
        argv[i + 1] = chs[i]->name;
        lens[i + 1] = chs[i]->len;
    }
    if (!sent_push(c, SENT_SSUBSCRIBE, chs[0]->slot, count, NULL, 0) ||
        !write_command(c, (int)count + 1, argv, lens)) {
        log_error(0, "cluster: out of memory subscribing %zu sharded channels on %s:%u", count,
                  c->node.host, c->node.port);
        return; /* they stay unsent; the next reconnect or remap subscribes them */
    }
    for (size_t i = 0; i < count; i++)
        chs[i]->sent = true;
}

/* Orders queued channels by connection, then slot: each run is one SSUBSCRIBE. */
static int by_conn_and_slot(const void *a, const void *b)
{
    const struct channel *x = *(struct channel *const *)a, *y = *(struct channel *const *)b;
    if (x->conn != y->conn)
        return (uintptr_t)x->conn < (uintptr_t)y->conn ? -1 : 1;
    return (int)x->slot - (int)y->slot;
}

/* End of the loop turn: the queued channels whose connection is up, in batches per slot.
 * Channels whose connection is not up leave the queue: going up subscribes them all. */
static void on_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct shard_sub *s = arg;
    size_t n = 0;
    for (struct channel *ch = s->pending; ch != NULL; ch = ch->pending_next)
        n++;
    struct channel **ready = n > 0 ? malloc(n * sizeof(*ready)) : NULL;
    size_t count = 0;
    while (s->pending != NULL) {
        struct channel *ch = s->pending;
        unqueue_channel(s, ch);
        if (ch->conn != NULL && ch->conn->state == CONN_UP && !ch->sent && ready != NULL)
            ready[count++] = ch;
    }
    if (n > 0 && ready == NULL) {
        log_error(0, "cluster: out of memory subscribing %zu sharded channels", n);
        return;
    }
    if (count == 0) {
        free(ready);
        return;
    }
    qsort(ready, count, sizeof(*ready), by_conn_and_slot);
    for (size_t i = 0; i < count;) {
        size_t run = 1;
        while (i + run < count && run < BATCH_MAX && ready[i + run]->conn == ready[i]->conn &&
               ready[i + run]->slot == ready[i]->slot)
            run++;
        send_subscribe(ready[i]->conn, ready + i, run);
        i += run;
    }
    free(ready);
}

static void on_stale(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct shard_sub *s = arg;
    if (s->ops.stale != NULL)
        s->ops.stale(s->ops.ctx);
}

/* ---- placing channels on connections ------------------------------------------------------- */

/* The channel leaves its connection (no SUNSUBSCRIBE: the caller sends one when needed). */
static void detach(struct shard_sub *s, struct channel *ch)
{
    struct conn *c = ch->conn;
    unqueue_channel(s, ch);
    set_confirmed(s, ch, false);
    ch->sent = false;
    ch->conn = NULL;
    if (c == NULL)
        return;
    if (--c->channels == 0)
        event_active(s->reap_ev, EV_TIMEOUT, 0);
}

static struct conn *conn_new(struct shard_sub *s, const struct slots_node *node)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->owner = s;
    c->node = *node;
    c->deadline = evtimer_new(s->base, on_deadline, c);
    c->retry = evtimer_new(s->base, on_retry, c);
    if (c->deadline == NULL || c->retry == NULL) {
        if (c->deadline != NULL)
            event_free(c->deadline);
        if (c->retry != NULL)
            event_free(c->retry);
        free(c);
        return NULL;
    }
    c->next = s->conns;
    s->conns = c;
    s->stats.connections++;
    conn_connect(c);
    return c;
}

static struct conn *conn_for(struct shard_sub *s, const struct slots_node *node)
{
    for (struct conn *c = s->conns; c != NULL; c = c->next)
        if (slots_node_equal(&c->node, node))
            return c;
    return conn_new(s, node);
}

/* Places ch on the master of its slot, when the map knows it. */
static void place(struct shard_sub *s, struct channel *ch)
{
    struct slots_node where;
    if (s->ops.locate == NULL || !s->ops.locate(s->ops.ctx, ch->slot, &where))
        return;
    struct conn *c = conn_for(s, &where);
    if (c == NULL) {
        log_error(0, "cluster: out of memory connecting to %s:%u", where.host, where.port);
        return;
    }
    ch->conn = c;
    c->channels++;
    queue_channel(s, ch);
}

/* ---- connection life ----------------------------------------------------------------------- */

static void conn_close_session(struct conn *c)
{
    struct shard_sub *s = c->owner;
    if (c->bev != NULL) {
        bufferevent_free(c->bev);
        c->bev = NULL;
    }
    if (c->reader != NULL) {
        redisReaderFree(c->reader);
        c->reader = NULL;
    }
    sent_clear(c);
    evtimer_del(c->deadline);
    if (c->state == CONN_UP && s->stats.connections_up > 0)
        s->stats.connections_up--;
    c->state = CONN_IDLE;
    /* The session's subscriptions went with it. */
    size_t bucket;
    for (struct dict_entry *e = dict_first(&s->channels, &bucket); e != NULL;
         e = dict_next(&s->channels, &bucket, e)) {
        struct channel *ch = e->value;
        if (ch->conn == c) {
            ch->sent = false;
            set_confirmed(s, ch, false);
        }
    }
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct conn *c = arg;
    c->owner->stats.reconnects++;
    conn_connect(c);
}

/* Connecting failed or a live session ended: report once per outage, then wait and retry. */
static void conn_lost(struct conn *c, const char *why)
{
    struct shard_sub *s = c->owner;
    bool was_up = c->state == CONN_UP;
    conn_close_session(c);
    if (!c->reported_down) {
        log_warn(0, "cluster: sharded pub/sub link to %s:%u %s: %s", c->node.host, c->node.port,
                 was_up ? "lost" : "failed", why);
        c->reported_down = true;
    }
    unsigned wait =
        cluster_backoff_ms(s->cfg.reconnect_min_ms, s->cfg.reconnect_max_ms, c->attempt);
    c->attempt++;
    cluster_timer_after(c->retry, wait);
}

/* Connected (and authenticated): subscribe every channel placed here. */
static void conn_up(struct conn *c)
{
    struct shard_sub *s = c->owner;
    evtimer_del(c->deadline);
    c->state = CONN_UP;
    c->attempt = 0;
    s->stats.connections_up++;
    if (c->reported_down)
        log_info(0, "cluster: sharded pub/sub link to %s:%u up", c->node.host, c->node.port);
    else
        log_debug(0, "cluster: sharded pub/sub link to %s:%u up", c->node.host, c->node.port);
    c->reported_down = false;
    size_t bucket;
    for (struct dict_entry *e = dict_first(&s->channels, &bucket); e != NULL;
         e = dict_next(&s->channels, &bucket, e)) {
        struct channel *ch = e->value;
        if (ch->conn == c && !ch->sent)
            queue_channel(s, ch);
    }
}

static void send_auth(struct conn *c)
{
    const struct shard_sub_config *cfg = &c->owner->cfg;
    const char *argv[3] = {"AUTH", cfg->username, cfg->password};
    size_t lens[3] = {4, strlen(cfg->username), strlen(cfg->password)};
    bool with_user = cfg->username[0] != '\0';
    if (!with_user) {
        argv[1] = cfg->password;
        lens[1] = lens[2];
    }
    c->state = CONN_AUTHING;
    if (!sent_push(c, SENT_AUTH, 0, 1, NULL, 0) || !write_command(c, with_user ? 3 : 2, argv, lens))
        conn_lost(c, "out of memory");
}

/* ---- replies ------------------------------------------------------------------------------- */

static bool is_kind(const redisReply *r, const char *kind)
{
    size_t n = strlen(kind);
    return r->type == REDIS_REPLY_STRING && r->len == n && strncasecmp(r->str, kind, n) == 0;
}

static struct channel *channel_on(struct shard_sub *s, struct conn *c, const redisReply *name)
{
    struct channel *ch = dict_get(&s->channels, name->str, name->len);
    return ch != NULL && ch->conn == c ? ch : NULL;
}

static void on_confirm(struct conn *c, const redisReply *name)
{
    struct shard_sub *s = c->owner;
    struct sent *head = c->sent_head;
    if (head != NULL && head->kind == SENT_SSUBSCRIBE && --head->replies == 0)
        sent_pop(c);
    struct channel *ch = channel_on(s, c, name);
    if (ch == NULL || !ch->sent || ch->confirmed)
        return;
    set_confirmed(s, ch, true);
    if (s->ops.subscribed != NULL)
        s->ops.subscribed(s->ops.ctx, ch->name, ch->len);
}

/* An sunsubscribe: the answer to ours, or Redis dropping a channel whose slot left the node. */
static void on_unsubscribed(struct conn *c, const redisReply *name)
{
    struct shard_sub *s = c->owner;
    struct sent *head = c->sent_head;
    if (head != NULL && head->kind == SENT_SUNSUBSCRIBE && head->name_len == name->len &&
        memcmp(head->name, name->str, name->len) == 0) {
        sent_pop(c);
        return;
    }
    struct channel *ch = channel_on(s, c, name);
    if (ch == NULL || !ch->confirmed)
        return; /* not ours, or its confirmation is still to come */
    s->stats.unasked++;
    log_info(0, "cluster: %s:%u dropped sharded channel %s (slot %u moved)", c->node.host,
             c->node.port, ch->name, ch->slot);
    detach(s, ch);
    report_stale(s);
}

static void on_message(struct conn *c, const redisReply *name, const redisReply *payload)
{
    struct shard_sub *s = c->owner;
    if (payload->type != REDIS_REPLY_STRING || channel_on(s, c, name) == NULL)
        return;
    s->stats.messages++;
    if (s->ops.message != NULL)
        s->ops.message(s->ops.ctx, name->str, name->len, payload->str, payload->len);
}

/* An error answers the oldest command. To an SSUBSCRIBE: its slot's channels here that are not
 * confirmed leave this connection and wait for a remap (MOVED, ASK, CLUSTERDOWN alike). */
static bool on_error(struct conn *c, const redisReply *r)
{
    struct shard_sub *s = c->owner;
    struct sent *head = c->sent_head;
    struct slots_redirect redirect;
    bool moved = slots_parse_redirect(r->str, r->len, &redirect);
    if (head == NULL || head->kind == SENT_AUTH) {
        if (head != NULL)
            sent_pop(c);
        log_warn(0, "cluster: %s:%u refused %s: %.*s", c->node.host, c->node.port,
                 head != NULL ? "AUTH" : "a command", (int)r->len, r->str);
        conn_lost(c, "refused");
        return false;
    }
    enum sent_kind kind = head->kind;
    uint16_t slot = head->slot;
    sent_pop(c);
    if (moved)
        s->stats.moved += kind == SENT_SSUBSCRIBE;
    else if (cluster_warn_due(&s->last_warn_ms))
        log_warn(0, "cluster: %s:%u refused %s of slot %u: %.*s", c->node.host, c->node.port,
                 kind == SENT_SSUBSCRIBE ? "SSUBSCRIBE" : "SUNSUBSCRIBE", slot, (int)r->len,
                 r->str);
    if (kind != SENT_SSUBSCRIBE)
        return true;
    size_t bucket;
    for (struct dict_entry *e = dict_first(&s->channels, &bucket); e != NULL;
         e = dict_next(&s->channels, &bucket, e)) {
        struct channel *ch = e->value;
        if (ch->conn == c && ch->slot == slot && ch->sent && !ch->confirmed)
            detach(s, ch);
    }
    report_stale(s);
    return true;
}

/* One reply; false when it ended the session (the reader is gone then). */
static bool on_reply(struct conn *c, const redisReply *r)
{
    if (r->type == REDIS_REPLY_ERROR)
        return on_error(c, r);
    if (c->state == CONN_AUTHING) {
        sent_pop(c);
        conn_up(c);
        return true;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3)
        return true;
    const redisReply *kind = r->element[0], *name = r->element[1], *third = r->element[2];
    if (name->type != REDIS_REPLY_STRING)
        return true;
    if (is_kind(kind, "smessage"))
        on_message(c, name, third);
    else if (is_kind(kind, "ssubscribe"))
        on_confirm(c, name);
    else if (is_kind(kind, "sunsubscribe"))
        on_unsubscribed(c, name);
    return true;
}

static void on_read(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    size_t len = evbuffer_get_length(in);
    if (len == 0)
        return;
    const char *bytes = (const char *)evbuffer_pullup(in, (ev_ssize_t)len);
    if (bytes == NULL || redisReaderFeed(c->reader, bytes, len) != REDIS_OK) {
        conn_lost(c, "out of memory");
        return;
    }
    evbuffer_drain(in, len);
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(c->reader, &reply) != REDIS_OK) {
            conn_lost(c, "protocol error");
            return;
        }
        if (reply == NULL)
            return;
        bool alive = on_reply(c, reply);
        freeReplyObject(reply);
        if (!alive)
            return;
    }
}

static void on_event(struct bufferevent *bev, short what, void *arg)
{
    (void)bev;
    struct conn *c = arg;
    if (what & BEV_EVENT_CONNECTED) {
        const char *password = c->owner->cfg.password;
        if (password[0] != '\0')
            send_auth(c);
        else
            conn_up(c);
        return;
    }
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        int err = EVUTIL_SOCKET_ERROR();
        conn_lost(c, (what & BEV_EVENT_EOF) || err == 0 ? "closed"
                                                        : evutil_socket_error_to_string(err));
    }
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    conn_lost(arg, "timed out");
}

/* Starts a session: TCP connect to the node's IP literal, bounded by connect_timeout_ms. */
static void conn_connect(struct conn *c)
{
    struct shard_sub *s = c->owner;
    char addr_text[CLUSTER_HOST_MAX + 16];
    bool v6 = strchr(c->node.host, ':') != NULL;
    snprintf(addr_text, sizeof(addr_text), "%s%s%s:%u", v6 ? "[" : "", c->node.host, v6 ? "]" : "",
             c->node.port);
    struct sockaddr_storage addr;
    int addr_len = (int)sizeof(addr);
    c->state = CONN_CONNECTING;
    cluster_timer_after(c->deadline, s->cfg.connect_timeout_ms);
    if (evutil_parse_sockaddr_port(addr_text, (struct sockaddr *)&addr, &addr_len) != 0) {
        conn_lost(c, "not an IP address");
        return;
    }
    c->reader = redisReaderCreate();
    c->bev = bufferevent_socket_new(s->base, -1, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (c->reader == NULL || c->bev == NULL) {
        conn_lost(c, "out of memory");
        return;
    }
    bufferevent_setcb(c->bev, on_read, NULL, on_event, c);
    bufferevent_enable(c->bev, EV_READ | EV_WRITE);
    if (bufferevent_socket_connect(c->bev, (struct sockaddr *)&addr, addr_len) != 0)
        conn_lost(c, "connect failed");
}

static void conn_free(struct conn *c)
{
    struct shard_sub *s = c->owner;
    conn_close_session(c);
    event_free(c->deadline);
    event_free(c->retry);
    s->stats.connections--;
    free(c);
}

/* Frees the connections left with no channel (never inside their own callbacks). */
static void on_reap(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct shard_sub *s = arg;
    struct conn **link = &s->conns;
    while (*link != NULL) {
        struct conn *c = *link;
        if (c->channels == 0) {
            *link = c->next;
            conn_free(c);
        } else {
            link = &c->next;
        }
    }
}

/* ---- the public interface ------------------------------------------------------------------ */

struct shard_sub *shard_sub_new(struct event_base *base, const struct shard_sub_config *cfg,
                                const struct shard_sub_ops *ops)
{
    struct shard_sub *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->base = base;
    s->cfg = *cfg;
    if (s->cfg.username == NULL)
        s->cfg.username = "";
    if (s->cfg.password == NULL)
        s->cfg.password = "";
    if (s->cfg.connect_timeout_ms == 0)
        s->cfg.connect_timeout_ms = DEFAULT_CONNECT_MS;
    if (s->cfg.reconnect_min_ms == 0)
        s->cfg.reconnect_min_ms = DEFAULT_RECONNECT_MIN;
    if (s->cfg.reconnect_max_ms == 0)
        s->cfg.reconnect_max_ms = DEFAULT_RECONNECT_MAX;
    if (s->cfg.reconnect_max_ms < s->cfg.reconnect_min_ms)
        s->cfg.reconnect_max_ms = s->cfg.reconnect_min_ms;
    s->ops = *ops;
    dict_init(&s->channels);
    s->flush_ev = event_new(base, -1, 0, on_flush, s);
    s->stale_ev = event_new(base, -1, 0, on_stale, s);
    s->reap_ev = event_new(base, -1, 0, on_reap, s);
    if (s->flush_ev == NULL || s->stale_ev == NULL || s->reap_ev == NULL) {
        shard_sub_free(s);
        return NULL;
    }
    return s;
}

void shard_sub_free(struct shard_sub *s)
{
    if (s == NULL)
        return;
    while (s->conns != NULL) {
        struct conn *c = s->conns;
        s->conns = c->next;
        conn_free(c);
    }
    size_t bucket;
    for (struct dict_entry *e = dict_first(&s->channels, &bucket); e != NULL;
         e = dict_next(&s->channels, &bucket, e))
        free(e->value);
    dict_reset(&s->channels);
    if (s->flush_ev != NULL)
        event_free(s->flush_ev);
    if (s->stale_ev != NULL)
        event_free(s->stale_ev);
    if (s->reap_ev != NULL)
        event_free(s->reap_ev);
    free(s);
}

int shard_sub_add(struct shard_sub *s, const char *channel, size_t len)
{
    if (dict_get(&s->channels, channel, len) != NULL)
        return 0;
    struct channel *ch = calloc(1, sizeof(*ch) + len + 1);
    if (ch == NULL)
        return -1;
    if (len > 0)
        memcpy(ch->name, channel, len);
    ch->len = len;
    ch->slot = slots_key_slot(channel, len);
    if (dict_set(&s->channels, ch->name, len, ch) != 0) {
        free(ch);
        return -1;
    }
    s->stats.channels++;
    place(s, ch);
    return 0;
}

void shard_sub_remove(struct shard_sub *s, const char *channel, size_t len)
{
    struct channel *ch = dict_remove(&s->channels, channel, len);
    if (ch == NULL)
        return;
    if (ch->conn != NULL && ch->sent)
        send_unsubscribe(ch->conn, ch);
    detach(s, ch);
    s->stats.channels--;
    free(ch);
}

void shard_sub_remap(struct shard_sub *s)
{
    size_t bucket;
    for (struct dict_entry *e = dict_first(&s->channels, &bucket); e != NULL;
         e = dict_next(&s->channels, &bucket, e)) {
        struct channel *ch = e->value;
        struct slots_node where;
        bool known = s->ops.locate != NULL && s->ops.locate(s->ops.ctx, ch->slot, &where);
        if (known && ch->conn != NULL && slots_node_equal(&ch->conn->node, &where))
            continue;
        if (ch->conn != NULL) {
            if (ch->sent)
                send_unsubscribe(ch->conn, ch);
            detach(s, ch);
        }
        if (known)
            place(s, ch);
    }
}

bool shard_sub_confirmed(const struct shard_sub *s, const char *channel, size_t len)
{
    const struct channel *ch = dict_get(&s->channels, channel, len);
    return ch != NULL && ch->confirmed;
}

void shard_sub_stats(const struct shard_sub *s, struct shard_sub_stats *out)
{
    *out = s->stats;
}

void shard_sub_each_node(const struct shard_sub *s,
                         void (*fn)(void *arg, const struct slots_node *node, bool up,
                                    size_t channels),
                         void *arg)
{
    for (const struct conn *c = s->conns; c != NULL; c = c->next)
        fn(arg, &c->node, c->state == CONN_UP, c->channels);
}
