#include "cluster/streams.h"

#include <hiredis/hiredis.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/base/dict.h"
#include "broker/base/log.h"
#include "cluster/common.h"
#include "cluster/envelope.h"
#include "cluster/payload.h"
#include "cluster/redis.h"

#define READ_BLOCK_MS  2000 /* a blocked XREADGROUP returns this often even with nothing new */
#define READ_COUNT_MAX 256  /* entries per stream per XREADGROUP / XPENDING page */
#define IDS_PER_CLAIM  512  /* ids per renewing or taking-over XCLAIM */
#define RETRY_MS       1000 /* after an error reply to XREADGROUP */
#define PAYLOAD_FIELD  "m"  /* the entry field that holds the envelope (or a raw body) */

/*
 * A command Redis must confirm (an append, an ack, a release), kept in order until it does and
 * sent again, in the same order, when the command link comes back after a loss.
 */
struct pending {
    struct pending *prev, *next; /* owned by streams.pending_head, in order */
    struct streams *owner;       /* borrowed */
    void *waiter;                /* borrowed: an append's publisher; NULL when none or forgotten */
    bool is_append;
    bool sent; /* sent on the current link, reply not in yet */
    size_t len;
    /* sentinel: cluster.min_replicas_ack */
    uint64_t send_seq; /* streams.send_seq when it was last sent: which WAIT covers it */
    bool stored;       /* an append Redis stored, waiting for its WAIT to be answered */
    char resp[]; /* the command, in RESP */
};

/* Stream ids gathered during one loop turn for one XACK/XDEL or releasing XCLAIM. */
struct id_batch {
    char *text; /* owned: NUL-separated ids */
    size_t len, cap;
    size_t count;
};

/* A stream entry id "<ms>-<seq>" as numbers, for ordering. */
struct entry_id {
    uint64_t ms, seq;
};

/* One queue this node consumes from, or still holds entries of. */
struct squeue {
    struct streams *owner;     /* borrowed */
    struct squeue *dirty_next; /* in streams.dirty while it has acks or releases to send */
    struct dict held;          /* owned keys: stream ids this node holds (values unused) */
    struct id_batch acks;      /* owned: to XACK + XDEL at the end of this turn */
    struct id_batch releases;  /* owned: to hand back at the end of this turn */
    bool dirty;
    bool followed;        /* local consumers exist */
    bool group_asked;     /* XGROUP CREATE sent on the current command link */
    bool group_ready;     /* ... and answered OK or BUSYGROUP */
    bool probing;         /* an XPENDING looking for entries to take over is in flight */
    bool probe_more;      /* the last XPENDING filled its page: more may follow probe_after */
    bool in_read;         /* part of the XREADGROUP in flight */
    bool recover_due;     /* a read's reply was lost: its entries wait here unseen (recover) */
    unsigned replies_due; /* callbacks that still point here: not freed before they ran */
    size_t claiming;      /* ids in the XCLAIM in flight taking some of them over (0: none) */
    struct id_batch claimable; /* owned: ids idle past the visibility timeout (last XPENDING) */
    size_t claimable_at;       /* offset in claimable.text of the first id not taken yet */
    size_t claimable_taken;    /* ids of claimable already sent in an XCLAIM */
    char probe_after[STREAM_ID_MAX]; /* the last id the last XPENDING returned */
    struct entry_id newest_taken; /* the largest id this node took from the stream */
    struct entry_id recover_from; /* recovery reads this node's entries after this id */
    size_t name_len;
    size_t key_len;
    char key[]; /* "<prefix>:<name>", NUL-terminated; the name follows the ':' */
};

struct streams {
    struct event_base *base; /* borrowed */
    struct bridge_config cfg;
    struct streams_ops ops;
    unsigned visibility_ms;
    size_t buffer_bytes;
    struct envelope_limits limits;
    struct stomp_header *decoded_headers; /* owned: limits.max_headers entries */

    struct redis_link *cmd;     /* owned: XADD, XACK, XDEL, XCLAIM, XPENDING, XGROUP, UNBLOCK */
    struct redis_link *reader;  /* owned: the blocking XREADGROUP only */
    long long reader_client_id; /* CLIENT ID of the reader connection, 0 until known */
    bool reading;               /* an XREADGROUP is in flight */
    bool recovering;            /* ... and it is a recovery read (history, no BLOCK) */
    bool unblock_sent;          /* CLIENT UNBLOCK sent for the read in flight */

    struct dict queues; /* owned: queue name -> struct squeue */
    struct squeue *dirty;
    struct pending *pending_head, *pending_tail; /* owned */
    struct event *turn_event;  /* owned: end-of-turn flush of acks and releases, and reads */
    struct event *tick_timer;  /* owned: persistent: claims, renewals, group creation */
    struct event *retry_timer; /* owned: a read after an error reply */
    uint64_t last_renew_ms;

    char *scratch; /* owned: RESP being built */
    size_t scratch_len, scratch_cap;
    bool scratch_failed;
    uint64_t last_warn_ms, last_decode_warn_ms;
    struct streams_stats stats;
    /* sentinel: cluster.min_replicas_ack */
    uint64_t send_seq;        /* commands sent on the command link so far */
    bool wait_due;            /* appends were sent since the last WAIT */
    struct event *wait_event; /* owned: sends one WAIT for the appends of a loop turn */
};

/* ---- RESP building --------------------------------------------------------------------------- */

static void resp_begin(struct streams *s, size_t argc)
{
    s->scratch_len = 0;
    s->scratch_failed = false;
    char head[32];
    int n = snprintf(head, sizeof(head), "*%zu\r\n", argc);
    if (cluster_grow(&s->scratch, &s->scratch_cap, (size_t)n) != 0) {
        s->scratch_failed = true;
        return;
    }
    memcpy(s->scratch, head, (size_t)n);
    s->scratch_len = (size_t)n;
}

/* Reserves room for one bulk string of len bytes and returns where its bytes go (NULL: no
 * memory); the caller fills them. */
static char *resp_reserve(struct streams *s, size_t len)
{
    char head[32];
    int n = snprintf(head, sizeof(head), "$%zu\r\n", len);
    if (s->scratch_failed ||
        cluster_grow(&s->scratch, &s->scratch_cap, s->scratch_len + (size_t)n + len + 2) != 0) {
        s->scratch_failed = true;
        return NULL;
    }
    memcpy(s->scratch + s->scratch_len, head, (size_t)n);
    char *at = s->scratch + s->scratch_len + (size_t)n;
    memcpy(at + len, "\r\n", 2);
    s->scratch_len += (size_t)n + len + 2;
    return at;
}

static void resp_arg(struct streams *s, const char *arg, size_t len)
{
    char *at = resp_reserve(s, len);
    if (at != NULL)
        memcpy(at, arg, len);
}

static void resp_str(struct streams *s, const char *arg)
{
    resp_arg(s, arg, strlen(arg));
}

static void resp_ids(struct streams *s, const struct id_batch *ids)
{
    const char *id = ids->text;
    for (size_t i = 0; i < ids->count; i++, id += strlen(id) + 1)
        resp_str(s, id);
}

static void batch_reset(struct id_batch *ids)
{
    ids->len = 0;
    ids->count = 0;
}

static int batch_add(struct id_batch *ids, const char *id)
{
    size_t n = strlen(id) + 1;
    if (cluster_grow(&ids->text, &ids->cap, ids->len + n) != 0)
        return -1;
    memcpy(ids->text + ids->len, id, n);
    ids->len += n;
    ids->count++;
    return 0;
}

/* ---- queues ---------------------------------------------------------------------------------- */

static const char *queue_name(const struct squeue *q)
{
    return q->key + q->key_len - q->name_len;
}

static struct squeue *queue_get(struct streams *s, const char *name, size_t len, bool create)
{
    struct squeue *q = dict_get(&s->queues, name, len);
    if (q != NULL || !create)
        return q;
    size_t prefix_len = strlen(s->cfg.prefix);
    q = calloc(1, sizeof(*q) + prefix_len + 1 + len + 1);
    if (q == NULL)
        return NULL;
    q->owner = s;
    dict_init(&q->held);
    memcpy(q->key, s->cfg.prefix, prefix_len);
    q->key[prefix_len] = ':';
    memcpy(q->key + prefix_len + 1, name, len);
    q->key_len = prefix_len + 1 + len;
    q->name_len = len;
    if (dict_set(&s->queues, name, len, q) != 0) {
        free(q);
        return NULL;
    }
    return q;
}

static void queue_destroy(struct squeue *q)
{
    dict_reset(&q->held);
    free(q->acks.text);
    free(q->releases.text);
    free(q->claimable.text);
    free(q);
}

/* A queue nobody here consumes, holding nothing, with nothing in flight, is forgotten. */
static void queue_maybe_free(struct streams *s, struct squeue *q)
{
    if (q->followed || q->held.count > 0 || q->replies_due > 0 || q->dirty || q->in_read)
        return;
    dict_remove(&s->queues, queue_name(q), q->name_len);
    queue_destroy(q);
}

static void mark_dirty(struct streams *s, struct squeue *q)
{
    if (!q->dirty) {
        q->dirty = true;
        q->dirty_next = s->dirty;
        s->dirty = q;
    }
    event_active(s->turn_event, 0, 0);
}

/* ---- confirmed commands ---------------------------------------------------------------------- */

static void pending_unlink(struct streams *s, struct pending *p)
{
    if (p->prev != NULL)
        p->prev->next = p->next;
    else
        s->pending_head = p->next;
    if (p->next != NULL)
        p->next->prev = p->prev;
    else
        s->pending_tail = p->prev;
    s->stats.buffered_bytes -= p->len;
}

static void warn(struct streams *s, const char *what, const redisReply *reply)
{
    if (cluster_warn_due(&s->last_warn_ms))
        log_warn(0, "cluster queues: Redis refused %s: %.*s", what, (int)reply->len, reply->str);
}

static void on_confirmed(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct pending *p = privdata;
    struct streams *s = p->owner;
    const redisReply *reply = r;
    if (reply == NULL) {
        p->sent = false; /* the link broke first: sent again when it is back */
        return;
    }
    bool refused = reply->type == REDIS_REPLY_ERROR;
    if (p->is_append && !refused && s->cfg.min_replicas_ack > 0) {
        s->stats.appended++;
        p->stored = true; /* the publisher hears when the WAIT after it is answered */
        return;
    }
    if (p->is_append) {
        if (refused)
            s->stats.append_errors++;
        else
            s->stats.appended++;
        if (p->waiter != NULL)
            s->ops.appended(s->ops.ctx, p->waiter, refused ? reply->str : NULL);
    } else if (refused) {
        warn(s, "an ack or release", reply);
    }
    pending_unlink(s, p);
    free(p);
}

static void pending_send(struct streams *s, struct pending *p)
{
    if (redis_link_command_resp(s->cmd, on_confirmed, p, p->resp, p->len) != 0)
        return;
    p->sent = true;
    p->stored = false;
    p->send_seq = ++s->send_seq;
    if (p->is_append && s->cfg.min_replicas_ack > 0) {
        s->wait_due = true;
        event_active(s->wait_event, EV_TIMEOUT, 1);
    }
}

static void pending_resend(struct streams *s);

/* ---- cluster.min_replicas_ack: WAIT after the appends ---------------------------------------- */

/*
 * Redis replicates asynchronously: a failover can lose an XADD the old master answered. With
 * min_replicas_ack = N, the appends sent during one loop turn are followed on the same link by one
 * `WAIT N timeout` (WAIT covers every write the connection made before it), and their publishers
 * hear only from its answer: a RECEIPT when at least N replicas have them, else an ERROR (the
 * message is in the master and may yet be delivered, but it is not acknowledged as safe).
 */
struct wait_call {
    struct streams *owner; /* borrowed */
    uint64_t covers;       /* appends with send_seq up to this one */
};

/* The link was lost before the WAIT was answered, or it could not be sent: the appends it was to
 * cover are sent again (to the new master after a failover): at least once, never unconfirmed. */
static void unwait(struct streams *s, uint64_t covers)
{
    for (struct pending *p = s->pending_head; p != NULL; p = p->next)
        if (p->stored && p->send_seq <= covers)
            p->sent = p->stored = false;
}

static void on_waited(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct wait_call *w = privdata;
    struct streams *s = w->owner;
    uint64_t covers = w->covers;
    free(w);
    const redisReply *reply = r;
    if (reply == NULL) {
        unwait(s, covers);
        return;
    }
    long long replicas = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
    bool enough = replicas >= (long long)s->cfg.min_replicas_ack;
    char why[200];
    snprintf(why, sizeof(why),
             "%lld of the %u replicas cluster.min_replicas_ack asks for confirmed it within %u ms",
             replicas < 0 ? 0 : replicas, s->cfg.min_replicas_ack, s->cfg.wait_timeout_ms);
    if (!enough) {
        s->stats.wait_timeouts++;
        if (cluster_warn_due(&s->last_warn_ms))
            log_warn(0, "cluster queues: WAIT: %s", why);
    }
    struct pending *next;
    for (struct pending *p = s->pending_head; p != NULL; p = next) {
        next = p->next; /* an answer may add pendings (at the tail), never remove one */
        if (!p->stored || p->send_seq > covers)
            continue;
        s->stats.unreplicated += !enough;
        if (p->waiter != NULL)
            s->ops.appended(s->ops.ctx, p->waiter, enough ? NULL : why);
        pending_unlink(s, p);
        free(p);
    }
}

static void on_wait_due(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct streams *s = arg;
    if (!s->wait_due)
        return;
    s->wait_due = false;
    struct wait_call *w = malloc(sizeof(*w));
    char replicas[16], timeout[16];
    snprintf(replicas, sizeof(replicas), "%u", s->cfg.min_replicas_ack);
    snprintf(timeout, sizeof(timeout), "%u", s->cfg.wait_timeout_ms);
    const char *argv[] = {"WAIT", replicas, timeout};
    const size_t lens[] = {4, strlen(replicas), strlen(timeout)};
    if (w != NULL) {
        *w = (struct wait_call){.owner = s, .covers = s->send_seq};
        if (redis_link_command_argv(s->cmd, on_waited, w, 3, argv, lens) == 0)
            return;
    }
    free(w);
    unwait(s, s->send_seq);
    pending_resend(s);
}

/* Queues the command in s->scratch to be confirmed. -1 when out of memory or over the buffer. */
static int pending_add(struct streams *s, void *waiter, bool is_append)
{
    if (s->scratch_failed)
        return -1;
    if (is_append && s->stats.buffered_bytes + s->scratch_len > s->buffer_bytes) {
        s->stats.buffer_full++;
        return -1;
    }
    struct pending *p = malloc(sizeof(*p) + s->scratch_len);
    if (p == NULL)
        return -1;
    *p = (struct pending){.owner = s,
                          .waiter = waiter,
                          .is_append = is_append,
                          .len = s->scratch_len,
                          .prev = s->pending_tail};
    memcpy(p->resp, s->scratch, s->scratch_len);
    if (s->pending_tail != NULL)
        s->pending_tail->next = p;
    else
        s->pending_head = p;
    s->pending_tail = p;
    s->stats.buffered_bytes += p->len;
    if (redis_link_is_up(s->cmd))
        pending_send(s, p);
    return 0;
}

int streams_append(struct streams *s, const struct message *msg, void *waiter)
{
    struct envelope env = payload_envelope(s->cfg.node_id, msg->seq, msg);
    size_t size = envelope_size(&env);
    if (size == 0)
        return -1;
    size_t prefix_len = strlen(s->cfg.prefix);
    resp_begin(s, 5);
    resp_str(s, "XADD");
    char *key = resp_reserve(s, prefix_len + 1 + msg->destination_len);
    if (key != NULL) {
        memcpy(key, s->cfg.prefix, prefix_len);
        key[prefix_len] = ':';
        memcpy(key + prefix_len + 1, msg->destination, msg->destination_len);
    }
    resp_str(s, "*");
    resp_str(s, PAYLOAD_FIELD);
    char *payload = resp_reserve(s, size); /* the envelope is encoded in place: one copy */
    if (payload != NULL && envelope_encode(&env, payload, size) != size)
        s->scratch_failed = true;
    return pending_add(s, waiter, true);
}

void streams_forget(struct streams *s, const void *waiter)
{
    for (struct pending *p = s->pending_head; p != NULL; p = p->next)
        if (p->waiter == waiter)
            p->waiter = NULL;
}

/* Sends every command not sent on the current link, in order. */
static void pending_resend(struct streams *s)
{
    for (struct pending *p = s->pending_head; p != NULL && redis_link_is_up(s->cmd); p = p->next)
        if (!p->sent) {
            s->stats.resent++;
            pending_send(s, p);
        }
}

/* ---- acks and releases ----------------------------------------------------------------------- */

/* The queue of an entry this node held, now no longer held; NULL when it was not held here. */
static struct squeue *held_queue(struct streams *s, const struct message *msg)
{
    if (msg->stream_id[0] == '\0')
        return NULL;
    struct squeue *q = queue_get(s, msg->destination, msg->destination_len, false);
    /* held values are the queue itself (never NULL), so a NULL from remove means absent */
    if (q == NULL || dict_remove(&q->held, msg->stream_id, strlen(msg->stream_id)) == NULL)
        return NULL;
    s->stats.held--;
    return q;
}

void streams_ack(struct streams *s, const struct message *msg)
{
    struct squeue *q = held_queue(s, msg);
    if (q == NULL)
        return;
    s->stats.acked++;
    if (batch_add(&q->acks, msg->stream_id) == 0)
        mark_dirty(s, q);
}

void streams_release(struct streams *s, const struct message *msg)
{
    struct squeue *q = held_queue(s, msg);
    if (q == NULL)
        return;
    s->stats.released++;
    if (batch_add(&q->releases, msg->stream_id) == 0)
        mark_dirty(s, q);
}

/* XACK + XDEL: the entry is done (one group per stream, so nobody else needs it). */
static void flush_acks(struct streams *s, struct squeue *q)
{
    if (q->acks.count == 0)
        return;
    resp_begin(s, 3 + q->acks.count);
    resp_str(s, "XACK");
    resp_arg(s, q->key, q->key_len);
    resp_str(s, s->cfg.prefix);
    resp_ids(s, &q->acks);
    pending_add(s, NULL, false);
    resp_begin(s, 2 + q->acks.count);
    resp_str(s, "XDEL");
    resp_arg(s, q->key, q->key_len);
    resp_ids(s, &q->acks);
    pending_add(s, NULL, false);
    batch_reset(&q->acks);
}

/* Sets the entries' idle time to the visibility timeout: any node's next claim takes them. */
static void flush_releases(struct streams *s, struct squeue *q)
{
    if (q->releases.count == 0)
        return;
    char idle[24];
    snprintf(idle, sizeof(idle), "%u", s->visibility_ms);
    resp_begin(s, 5 + q->releases.count + 3);
    resp_str(s, "XCLAIM");
    resp_arg(s, q->key, q->key_len);
    resp_str(s, s->cfg.prefix);
    resp_str(s, s->cfg.node_id);
    resp_str(s, "0");
    resp_ids(s, &q->releases);
    resp_str(s, "IDLE");
    resp_str(s, idle);
    resp_str(s, "JUSTID");
    pending_add(s, NULL, false);
    batch_reset(&q->releases);
}

/* ---- taking entries -------------------------------------------------------------------------- */

static const redisReply *entry_payload(const redisReply *fields)
{
    if (fields == NULL || fields->type != REDIS_REPLY_ARRAY)
        return NULL;
    for (size_t i = 0; i + 1 < fields->elements; i += 2) {
        const redisReply *name = fields->element[i], *value = fields->element[i + 1];
        if (name->type == REDIS_REPLY_STRING && value->type == REDIS_REPLY_STRING &&
            strcmp(name->str, PAYLOAD_FIELD) == 0)
            return value;
    }
    return NULL;
}

/* An entry nobody can read is acked away, so it does not come back forever. */
static void drop_entry(struct streams *s, struct squeue *q, const char *id, const char *why)
{
    s->stats.decode_errors++;
    if (cluster_warn_due(&s->last_decode_warn_ms))
        log_warn(0, "cluster queues: dropped entry %s of %s: %s (%" PRIu64 " so far)", id, q->key,
                 why, s->stats.decode_errors);
    if (batch_add(&q->acks, id) == 0)
        mark_dirty(s, q);
}

static bool entry_id_parse(const char *text, struct entry_id *id)
{
    char *end;
    id->ms = strtoull(text, &end, 10);
    if (end == text || *end != '-')
        return false;
    const char *seq = end + 1;
    id->seq = strtoull(seq, &end, 10);
    return end != seq && *end == '\0';
}

static bool entry_id_less(struct entry_id a, struct entry_id b)
{
    return a.ms < b.ms || (a.ms == b.ms && a.seq < b.seq);
}

static void note_taken(struct squeue *q, const char *id)
{
    struct entry_id taken;
    if (entry_id_parse(id, &taken) && entry_id_less(q->newest_taken, taken))
        q->newest_taken = taken;
}

/* One [id, [field, value, ...]] entry from XREADGROUP or XCLAIM. */
static void take_entry(struct streams *s, struct squeue *q, const redisReply *entry,
                       bool redelivered)
{
    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 ||
        entry->element[0]->type != REDIS_REPLY_STRING)
        return;
    const char *id = entry->element[0]->str;
    size_t id_len = (size_t)entry->element[0]->len;
    if (entry->element[1]->type != REDIS_REPLY_ARRAY || id_len >= STREAM_ID_MAX)
        return; /* deleted meanwhile (Redis 6.2 shows those as nil) */
    if (dict_get(&q->held, id, id_len) != NULL)
        return; /* already here: a renewal came late and this node claimed its own entry */
    const redisReply *payload = entry_payload(entry->element[1]);
    if (payload == NULL) {
        drop_entry(s, q, id, "no \"" PAYLOAD_FIELD "\" field");
        return;
    }
    const struct payload_source src = {.destination = queue_name(q),
                                       .destination_len = q->name_len,
                                       .limits = &s->limits,
                                       .headers = s->decoded_headers};
    struct message *msg;
    const char *error;
    enum payload_result rc = payload_decode(&src, payload->str, (size_t)payload->len, &msg, &error);
    if (rc == PAYLOAD_REFUSED) {
        drop_entry(s, q, id, error);
        return;
    }
    if (msg == NULL || dict_set(&q->held, id, id_len, q) != 0) {
        if (msg != NULL)
            message_unref(msg);
        return; /* out of memory: left pending, claimed again after the visibility timeout */
    }
    memcpy(msg->stream_id, id, id_len + 1);
    note_taken(q, id);
    s->stats.held++;
    if (redelivered)
        s->stats.claimed++;
    else
        s->stats.read++;
    s->ops.deliver(s->ops.ctx, msg, redelivered);
    message_unref(msg);
}

/* ---- reading --------------------------------------------------------------------------------- */

static void read_next(struct streams *s);

/*
 * Entries idle past the visibility timeout are known to wait (a dead node's, released ones), or
 * a full XPENDING page says more may: the room of the consumers here goes to taking those over
 * (claim_some), and no new entries are read for the queue until none are left. Without this a
 * stream that always has new entries would fill every free slot with them, and the older ones
 * would wait as long as the load lasts.
 */
static bool claims_first(const struct squeue *q)
{
    return q->claimable_taken < q->claimable.count || q->probe_more;
}

/* The queue is followed here and its consumers have room for new entries. */
static size_t read_room(struct streams *s, const struct squeue *q)
{
    if (!q->followed || !q->group_ready || claims_first(q))
        return 0;
    return s->ops.capacity(s->ops.ctx, queue_name(q), q->name_len);
}

static void clear_in_read(struct streams *s)
{
    size_t bucket;
    for (struct dict_entry *e = dict_first(&s->queues, &bucket); e != NULL;
         e = dict_next(&s->queues, &bucket, e))
        ((struct squeue *)e->value)->in_read = false;
}

static void ask_groups(struct streams *s);

/* A full page of a recovery read: more of this node's entries may follow the last one. */
static void recover_page_done(struct squeue *q, const redisReply *entries)
{
    const redisReply *last = entries->element[entries->elements - 1];
    if (entries->elements >= READ_COUNT_MAX && last->type == REDIS_REPLY_ARRAY &&
        last->elements == 2 && last->element[0]->type == REDIS_REPLY_STRING &&
        entry_id_parse(last->element[0]->str, &q->recover_from))
        q->recover_due = true;
}

/* Entries for several streams: [[key, [entry, ...]], ...]. */
static void take_read_reply(struct streams *s, const redisReply *reply, bool recovering)
{
    size_t skip = strlen(s->cfg.prefix) + 1;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *stream = reply->element[i];
        if (stream->type != REDIS_REPLY_ARRAY || stream->elements != 2 ||
            stream->element[0]->type != REDIS_REPLY_STRING ||
            stream->element[1]->type != REDIS_REPLY_ARRAY ||
            (size_t)stream->element[0]->len <= skip)
            continue;
        struct squeue *q = queue_get(s, stream->element[0]->str + skip,
                                     (size_t)stream->element[0]->len - skip, false);
        if (q == NULL)
            continue;
        const redisReply *entries = stream->element[1];
        for (size_t j = 0; j < entries->elements; j++)
            take_entry(s, q, entries->element[j], false);
        if (recovering && entries->elements > 0)
            recover_page_done(q, entries);
    }
}

/*
 * The reader link went down with a read in flight. Redis may have handed that read's entries
 * to this node (they are in its pending list) and the reply was lost with the link: nobody
 * would see them until the visibility timeout. Entries a ">" read hands out are newer than
 * every entry this node took before, so the next read on the link reads this node's pending
 * entries after the newest it took, instead of waiting.
 */
static void note_lost_read(struct streams *s)
{
    size_t bucket;
    for (struct dict_entry *e = dict_first(&s->queues, &bucket); e != NULL;
         e = dict_next(&s->queues, &bucket, e)) {
        struct squeue *q = e->value;
        if (q->in_read && !q->recover_due) {
            q->recover_due = true;
            q->recover_from = q->newest_taken;
        }
    }
}

static void retry_later(struct streams *s)
{
    struct timeval tv = {.tv_sec = RETRY_MS / 1000, .tv_usec = (RETRY_MS % 1000) * 1000};
    evtimer_add(s->retry_timer, &tv);
}

static void on_read(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct streams *s = privdata;
    const redisReply *reply = r;
    bool recovering = s->recovering;
    s->reading = s->recovering = false;
    s->unblock_sent = false;
    if (reply == NULL) {
        note_lost_read(s);
        clear_in_read(s);
        return; /* the reader link is going away */
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        warn(s, "XREADGROUP", reply);
        if (strncmp(reply->str, "NOGROUP", 7) == 0) {
            size_t bucket; /* Redis lost the groups (restarted without persistence) */
            for (struct dict_entry *e = dict_first(&s->queues, &bucket); e != NULL;
                 e = dict_next(&s->queues, &bucket, e))
                ((struct squeue *)e->value)->group_ready =
                    ((struct squeue *)e->value)->group_asked = false;
            ask_groups(s);
        }
        clear_in_read(s);
        retry_later(s);
        return;
    }
    if (recovering) { /* done unless a full page says more may follow */
        size_t bucket;
        for (struct dict_entry *e = dict_first(&s->queues, &bucket); e != NULL;
             e = dict_next(&s->queues, &bucket, e))
            if (((struct squeue *)e->value)->in_read)
                ((struct squeue *)e->value)->recover_due = false;
    }
    /* in_read keeps the queues read (queue_maybe_free) while their entries are handed over */
    if (reply->type == REDIS_REPLY_ARRAY)
        take_read_reply(s, reply, recovering);
    clear_in_read(s);
    read_next(s); /* nil: the block timed out or was cut short by CLIENT UNBLOCK */
}

/* Marks the queues to read: those with lost entries to recover first, else those with room
 * (and no older entries to take over first: claims_first). */
static size_t choose_queues(struct streams *s, bool *recovery, size_t *want)
{
    size_t count = 0, bucket;
    *want = 0;
    *recovery = false;
    for (struct dict_entry *e = dict_first(&s->queues, &bucket); e != NULL;
         e = dict_next(&s->queues, &bucket, e)) {
        struct squeue *q = e->value;
        q->in_read = q->recover_due && q->followed && q->group_ready;
        count += q->in_read;
    }
    if (count > 0) {
        *recovery = true;
        *want = READ_COUNT_MAX;
        return count;
    }
    for (struct dict_entry *e = dict_first(&s->queues, &bucket); e != NULL;
         e = dict_next(&s->queues, &bucket, e)) {
        struct squeue *q = e->value;
        size_t room = read_room(s, q);
        q->in_read = room > 0;
        if (room > 0) {
            count++;
            *want = room > *want ? room : *want;
        }
    }
    return count;
}

/*
 * One XREADGROUP over the queues chosen: a blocking read of new entries for every queue whose
 * consumers here have room, or a recovery read (history, no block) of entries a lost reply held.
 */
static void read_next(struct streams *s)
{
    if (s->reading || s->reader_client_id == 0 || !redis_link_is_up(s->reader))
        return;
    bool recovery;
    size_t want;
    size_t count = choose_queues(s, &recovery, &want);
    if (count == 0)
        return;
    char count_text[24], block_text[24];
    snprintf(count_text, sizeof(count_text), "%zu", want < READ_COUNT_MAX ? want : READ_COUNT_MAX);
    snprintf(block_text, sizeof(block_text), "%d", READ_BLOCK_MS);
    resp_begin(s, (recovery ? 7 : 9) + 2 * count);
    resp_str(s, "XREADGROUP");
    resp_str(s, "GROUP");
    resp_str(s, s->cfg.prefix);
    resp_str(s, s->cfg.node_id);
    resp_str(s, "COUNT");
    resp_str(s, count_text);
    if (!recovery) {
        resp_str(s, "BLOCK");
        resp_str(s, block_text);
    }
    resp_str(s, "STREAMS");
    size_t bucket;
    for (struct dict_entry *e = dict_first(&s->queues, &bucket); e != NULL;
         e = dict_next(&s->queues, &bucket, e))
        if (((struct squeue *)e->value)->in_read)
            resp_arg(s, ((struct squeue *)e->value)->key, ((struct squeue *)e->value)->key_len);
    for (struct dict_entry *e = dict_first(&s->queues, &bucket); e != NULL;
         e = dict_next(&s->queues, &bucket, e)) {
        const struct squeue *q = e->value;
        char from[STREAM_ID_MAX] = "";
        if (!q->in_read)
            continue;
        if (recovery)
            snprintf(from, sizeof(from), "%" PRIu64 "-%" PRIu64, q->recover_from.ms,
                     q->recover_from.seq);
        resp_str(s, recovery ? from : ">");
    }
    if (s->scratch_failed ||
        redis_link_command_resp(s->reader, on_read, s, s->scratch, s->scratch_len) != 0) {
        clear_in_read(s);
        return;
    }
    s->reading = true;
    s->recovering = recovery;
}

/* A queue outside the blocked read has room now: cut the block short to read it too. */
static void maybe_unblock(struct streams *s)
{
    if (!s->reading || s->unblock_sent || !redis_link_is_up(s->cmd))
        return;
    size_t bucket;
    for (struct dict_entry *e = dict_first(&s->queues, &bucket); e != NULL;
         e = dict_next(&s->queues, &bucket, e)) {
        struct squeue *q = e->value;
        if (!q->in_read && read_room(s, q) > 0) {
            char id[24];
            snprintf(id, sizeof(id), "%lld", s->reader_client_id);
            const char *argv[] = {"CLIENT", "UNBLOCK", id};
            const size_t argvlen[] = {6, 7, strlen(id)};
            if (redis_link_command_argv(s->cmd, NULL, NULL, 3, argv, argvlen) == 0)
                s->unblock_sent = true;
            return;
        }
    }
}

static void claim_some(struct streams *s, struct squeue *q);

/* Room may have come: entries waiting to be taken over get it before any new read. */
static void claim_waiting(struct streams *s)
{
    size_t bucket;
    for (struct dict_entry *e = dict_first(&s->queues, &bucket); e != NULL;
         e = dict_next(&s->queues, &bucket, e)) {
        struct squeue *q = e->value;
        if (q->claimable_taken < q->claimable.count)
            claim_some(s, q);
    }
}

/* End of a loop turn: send the acks and releases gathered, take over what waits for room, then
 * read what there is room for. */
static void on_turn(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct streams *s = arg;
    while (s->dirty != NULL) {
        struct squeue *q = s->dirty;
        s->dirty = q->dirty_next;
        q->dirty = false;
        flush_acks(s, q);
        flush_releases(s, q);
        queue_maybe_free(s, q);
    }
    claim_waiting(s);
    if (s->reading)
        maybe_unblock(s);
    else
        read_next(s);
}

void streams_kick(struct streams *s)
{
    event_active(s->turn_event, 0, 0);
}

/* ---- groups, claims, renewals ---------------------------------------------------------------- */

static void on_group(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct squeue *q = privdata;
    struct streams *s = q->owner;
    const redisReply *reply = r;
    q->replies_due--;
    if (reply == NULL || (reply->type == REDIS_REPLY_ERROR && !strstr(reply->str, "BUSYGROUP"))) {
        if (reply != NULL)
            warn(s, "XGROUP CREATE", reply);
        q->group_asked = false; /* asked again at the next tick */
    } else {
        q->group_ready = true;
        streams_kick(s);
    }
    queue_maybe_free(s, q);
}

/* The group starts at 0: entries appended before any consumer existed are read too. */
static void ask_group(struct streams *s, struct squeue *q)
{
    if (q->group_asked || !redis_link_is_up(s->cmd))
        return;
    const char *argv[] = {"XGROUP", "CREATE", q->key, s->cfg.prefix, "0", "MKSTREAM"};
    const size_t argvlen[] = {6, 6, q->key_len, strlen(s->cfg.prefix), 1, 8};
    if (redis_link_command_argv(s->cmd, on_group, q, 6, argv, argvlen) == 0) {
        q->group_asked = true;
        q->replies_due++;
    }
}

static void ask_groups(struct streams *s)
{
    size_t bucket;
    for (struct dict_entry *e = dict_first(&s->queues, &bucket); e != NULL;
         e = dict_next(&s->queues, &bucket, e))
        if (((struct squeue *)e->value)->followed)
            ask_group(s, e->value);
}

/* Done with taking over what the last XPENDING found (or the queue is no longer followed). */
static void forget_claimable(struct squeue *q)
{
    batch_reset(&q->claimable);
    q->claimable_at = 0;
    q->claimable_taken = 0;
    q->probe_more = false;
}

/* Nothing is left to take over first: the reads the queue went without may start again. */
static void claims_settled(struct streams *s, struct squeue *q, bool were_first)
{
    if (were_first && !claims_first(q))
        streams_kick(s);
}

/* [[id, consumer, idle-ms, deliveries], ...]: every one idle past the visibility timeout. */
static void note_claimable(struct squeue *q, const redisReply *reply)
{
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *e = reply->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 1 ||
            e->element[0]->type != REDIS_REPLY_STRING ||
            (size_t)e->element[0]->len >= STREAM_ID_MAX)
            continue;
        const char *id = e->element[0]->str;
        size_t id_len = (size_t)e->element[0]->len;
        memcpy(q->probe_after, id, id_len + 1);
        if (dict_get(&q->held, id, id_len) != NULL)
            continue; /* this node's own, renewed late: the next renewal keeps it */
        if (batch_add(&q->claimable, id) != 0)
            return; /* out of memory: the next tick looks again */
    }
    q->probe_more = reply->elements >= READ_COUNT_MAX;
}

static void on_probed(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct squeue *q = privdata;
    struct streams *s = q->owner;
    const redisReply *reply = r;
    bool were_first = claims_first(q);
    q->probing = false;
    forget_claimable(q);
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        warn(s, "XPENDING", reply);
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY)
        note_claimable(q, reply);
    q->replies_due--;
    claim_some(s, q);
    claims_settled(s, q, were_first);
    queue_maybe_free(s, q);
}

/*
 * Looks for entries idle past the visibility timeout (a dead node's, or released ones) without
 * taking any: XPENDING key g IDLE visibility - + 256 (from the start, or after the last page).
 * It does not need room here: what it finds is taken over as room comes (claims_first), before
 * any new entry, however busy the consumers are with new ones.
 */
static void probe(struct streams *s, struct squeue *q, bool from_start)
{
    if (q->probing || q->claiming || !q->followed || !q->group_ready || !redis_link_is_up(s->cmd))
        return;
    char idle[24], count[24], start[STREAM_ID_MAX + 1];
    snprintf(idle, sizeof(idle), "%u", s->visibility_ms);
    snprintf(count, sizeof(count), "%d", READ_COUNT_MAX);
    if (from_start)
        strcpy(start, "-");
    else /* "(": exclusive, from after the last page */
        snprintf(start, sizeof(start), "(%s", q->probe_after);
    const char *argv[] = {"XPENDING", q->key, s->cfg.prefix, "IDLE", idle, start, "+", count};
    size_t argvlen[8];
    for (int i = 0; i < 8; i++)
        argvlen[i] = i == 1 ? q->key_len : strlen(argv[i]);
    if (redis_link_command_argv(s->cmd, on_probed, q, 8, argv, argvlen) == 0) {
        q->probing = true;
        q->replies_due++;
    }
}

/* [[id, [field, value, ...]], ...]: the entries taken over; one another node took first, or
 * one deleted meanwhile, is not there. */
static void on_claimed(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct squeue *q = privdata;
    struct streams *s = q->owner;
    const redisReply *reply = r;
    bool were_first = claims_first(q);
    size_t asked = q->claiming;
    q->claiming = 0;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR)
        warn(s, "XCLAIM", reply);
    /* The broker releases what its consumers no longer want (they left meanwhile). */
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < reply->elements; i++)
            take_entry(s, q, reply->element[i], true);
    q->replies_due--; /* only now: q must outlive the hand-over above */
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements < asked) {
        /* Another node took some first: the rest of the list is likely gone too. Look again
         * rather than spend this node's room on ids that are no longer there. */
        forget_claimable(q);
        q->probe_more = true; /* claims stay first while it looks */
        probe(s, q, true);
    }
    claim_some(s, q);
    claims_settled(s, q, were_first);
    queue_maybe_free(s, q);
}

/*
 * Takes over as many of the entries the last XPENDING found as the consumers here can take now:
 * XCLAIM key g node visibility ids... The min-idle of visibility makes it safe against other
 * nodes doing the same: an entry one of them took first is no longer idle and stays theirs.
 * Asking only for what there is room for keeps a node from hoarding what another node's
 * consumers could take; one XCLAIM at a time per queue, so a room is not claimed twice.
 */
static void claim_some(struct streams *s, struct squeue *q)
{
    if (q->claiming || q->probing || !redis_link_is_up(s->cmd))
        return;
    if (!q->followed || !q->group_ready) {
        forget_claimable(q);
        return;
    }
    size_t left = q->claimable.count - q->claimable_taken;
    if (left == 0) {
        if (q->probe_more)
            probe(s, q, false);
        return;
    }
    size_t room = s->ops.capacity(s->ops.ctx, queue_name(q), q->name_len);
    size_t n = room < left ? room : left;
    n = n < IDS_PER_CLAIM ? n : IDS_PER_CLAIM;
    if (n == 0)
        return;
    char idle[24];
    snprintf(idle, sizeof(idle), "%u", s->visibility_ms);
    resp_begin(s, 5 + n);
    resp_str(s, "XCLAIM");
    resp_arg(s, q->key, q->key_len);
    resp_str(s, s->cfg.prefix);
    resp_str(s, s->cfg.node_id);
    resp_str(s, idle);
    const char *id = q->claimable.text + q->claimable_at;
    for (size_t i = 0; i < n; i++, id += strlen(id) + 1)
        resp_str(s, id);
    if (s->scratch_failed ||
        redis_link_command_resp(s->cmd, on_claimed, q, s->scratch, s->scratch_len) != 0)
        return;
    q->claimable_at = (size_t)(id - q->claimable.text);
    q->claimable_taken += n;
    q->claiming = n;
    q->replies_due++;
}

/* Each claim period: a queue not busy taking over entries looks for more. */
static void claim_tick(struct streams *s, struct squeue *q)
{
    if (q->claimable_taken < q->claimable.count)
        claim_some(s, q);
    else
        probe(s, q, true);
}

/* XCLAIM to itself with min-idle 0 resets the idle time: "still mine" for everything held. */
static void renew(struct streams *s, struct squeue *q)
{
    size_t bucket, in_batch = 0;
    struct dict_entry *e = dict_first(&q->held, &bucket);
    while (e != NULL) {
        size_t n =
            q->held.count - in_batch < IDS_PER_CLAIM ? q->held.count - in_batch : IDS_PER_CLAIM;
        resp_begin(s, 6 + n);
        resp_str(s, "XCLAIM");
        resp_arg(s, q->key, q->key_len);
        resp_str(s, s->cfg.prefix);
        resp_str(s, s->cfg.node_id);
        resp_str(s, "0");
        for (size_t i = 0; i < n && e != NULL; i++, e = dict_next(&q->held, &bucket, e))
            resp_arg(s, e->key, e->key_len);
        resp_str(s, "JUSTID");
        in_batch += n;
        if (s->scratch_failed ||
            redis_link_command_resp(s->cmd, NULL, NULL, s->scratch, s->scratch_len) != 0)
            return;
    }
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct streams *s = arg;
    uint64_t now = cluster_now_ms();
    bool renew_due = now - s->last_renew_ms >= s->visibility_ms / 3;
    if (renew_due)
        s->last_renew_ms = now;
    size_t bucket;
    for (struct dict_entry *e = dict_first(&s->queues, &bucket); e != NULL;
         e = dict_next(&s->queues, &bucket, e)) {
        struct squeue *q = e->value;
        if (q->followed && !q->group_ready)
            ask_group(s, q);
        claim_tick(s, q);
        if (renew_due && q->held.count > 0 && redis_link_is_up(s->cmd))
            renew(s, q);
    }
    read_next(s);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    read_next(arg);
}

void streams_follow(struct streams *s, const char *name, size_t len, bool follow)
{
    struct squeue *q = queue_get(s, name, len, follow);
    if (q == NULL)
        return; /* out of memory: this node's consumers get nothing from the cluster */
    q->followed = follow;
    if (follow) {
        ask_group(s, q);
        streams_kick(s);
    } else {
        queue_maybe_free(s, q);
    }
}

/* ---- links ----------------------------------------------------------------------------------- */

static void on_cmd_up(void *ctx, struct redis_link *link)
{
    (void)link;
    struct streams *s = ctx;
    size_t bucket; /* Redis may have restarted: make sure every group exists again */
    for (struct dict_entry *e = dict_first(&s->queues, &bucket); e != NULL;
         e = dict_next(&s->queues, &bucket, e))
        ((struct squeue *)e->value)->group_ready = ((struct squeue *)e->value)->group_asked = false;
    pending_resend(s);
    ask_groups(s);
}

static void on_cmd_down(void *ctx, struct redis_link *link)
{
    (void)ctx;
    (void)link;
}

static void on_client_id(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct streams *s = privdata;
    const redisReply *reply = r;
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER) {
        s->reader_client_id = reply->integer;
        read_next(s);
    }
}

static void on_reader_up(void *ctx, struct redis_link *link)
{
    struct streams *s = ctx;
    const char *argv[] = {"CLIENT", "ID"};
    const size_t argvlen[] = {6, 2};
    redis_link_command_argv(link, on_client_id, s, 2, argv, argvlen);
}

static void on_reader_down(void *ctx, struct redis_link *link)
{
    (void)link;
    struct streams *s = ctx;
    s->reader_client_id = 0;
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

static struct redis_link *link_new(struct streams *s, const char *name,
                                   void (*up)(void *, struct redis_link *),
                                   void (*down)(void *, struct redis_link *))
{
    struct redis_link_config lc;
    bridge_link_config(&s->cfg, name, s->cfg.redis_db, &lc);
    struct redis_link_ops ops = {.ctx = s, .up = up, .down = down};
    return redis_link_new(s->base, &lc, &ops);
}

static int streams_init(struct streams *s)
{
    unsigned tick_ms = s->visibility_ms / 4 < 1000 ? s->visibility_ms / 4 : 1000;
    if (tick_ms < 50)
        tick_ms = 50;
    struct timeval tick = {.tv_sec = tick_ms / 1000, .tv_usec = (tick_ms % 1000) * 1000};
    s->decoded_headers = calloc(s->limits.max_headers, sizeof(*s->decoded_headers));
    s->turn_event = event_new(s->base, -1, 0, on_turn, s);
    s->wait_event = event_new(s->base, -1, 0, on_wait_due, s);
    s->tick_timer = event_new(s->base, -1, EV_PERSIST, on_tick, s);
    s->retry_timer = evtimer_new(s->base, on_retry, s);
    if (s->decoded_headers == NULL || s->turn_event == NULL || s->wait_event == NULL ||
        s->tick_timer == NULL || s->retry_timer == NULL || event_add(s->tick_timer, &tick) != 0)
        return -1;
    s->cmd = link_new(s, "queue", on_cmd_up, on_cmd_down);
    s->reader = link_new(s, "queue-reader", on_reader_up, on_reader_down);
    return s->cmd != NULL && s->reader != NULL ? 0 : -1;
}

struct streams *streams_new(struct event_base *base, const struct bridge_config *cfg,
                            unsigned visibility_ms, size_t buffer_bytes,
                            const struct streams_ops *ops)
{
    struct streams *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->base = base;
    s->cfg = *cfg;
    s->ops = *ops;
    s->visibility_ms = visibility_ms != 0 ? visibility_ms : STREAMS_DEFAULT_VISIBILITY_MS;
    s->buffer_bytes = buffer_bytes != 0 ? buffer_bytes : STREAMS_DEFAULT_BUFFER_BYTES;
    if (s->cfg.wait_timeout_ms == 0)
        s->cfg.wait_timeout_ms = 1000;
    s->last_renew_ms = cluster_now_ms();
    bridge_envelope_limits(&s->cfg, &s->limits);
    dict_init(&s->queues);
    if (streams_init(s) != 0) {
        log_error(0, "cluster queues: out of memory starting the Redis links");
        streams_free(s);
        return NULL;
    }
    return s;
}

void streams_free(struct streams *s)
{
    if (s == NULL)
        return;
    /* Links first: their pending callbacks run (with NULL replies) while s is whole. */
    redis_link_free(s->cmd);
    redis_link_free(s->reader);
    size_t unconfirmed = 0;
    while (s->pending_head != NULL) {
        struct pending *p = s->pending_head;
        unconfirmed += p->is_append;
        pending_unlink(s, p);
        free(p);
    }
    if (unconfirmed > 0)
        log_warn(0, "cluster queues: %zu queue messages were never confirmed by Redis",
                 unconfirmed);
    size_t bucket;
    for (struct dict_entry *e = dict_first(&s->queues, &bucket); e != NULL;
         e = dict_next(&s->queues, &bucket, e))
        queue_destroy(e->value);
    dict_reset(&s->queues);
    if (s->turn_event != NULL)
        event_free(s->turn_event);
    if (s->wait_event != NULL)
        event_free(s->wait_event);
    if (s->tick_timer != NULL)
        event_free(s->tick_timer);
    if (s->retry_timer != NULL)
        event_free(s->retry_timer);
    free(s->decoded_headers);
    free(s->scratch);
    free(s);
}

bool streams_link_up(const struct streams *s)
{
    return redis_link_is_up(s->cmd) && redis_link_is_up(s->reader);
}

bool streams_flushed(const struct streams *s)
{
    return s->pending_head == NULL && s->dirty == NULL;
}

const struct streams_stats *streams_stats(const struct streams *s)
{
    return &s->stats;
}
