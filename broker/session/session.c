#include "broker/session/session.h"
#include "broker/session/sse.h"
#include "broker/net/conn.h"
#include "broker/base/log.h"
#include "broker/base/message.h"
#include "broker/base/workpool.h"
#include "broker/core/history.h"
#include "broker/core/presence.h"
#include "broker/core/publish.h"
#include "broker/core/queue.h"
#include "broker/session/token_refresh.h"
#include "broker/session/txn.h"

#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "stomp/encode.h"
#include "stomp/parser.h"
#include "ws/utf8.h"

#define ALLOWED_PREFIXES "/topic/, /queue/, /temp-queue/, /reply-queue/, /user/"

struct session {
    struct conn *conn;           /* borrowed: owns this session */
    struct broker *broker;       /* borrowed */
    struct stomp_parser *parser; /* owned */
    int version_hint;            /* fixed by the WebSocket subprotocol, 0 if not */
    enum stomp_version version;
    bool connected;
    char id[48];                   /* the CONNECTED session header; also names reply queues */
    struct dict subs;              /* owned values: subscription id -> struct subscription */
    struct dict transactions;      /* owned values: name -> struct txn */
    struct dict temp_queues;       /* keys: reply-queue names this session owns (values unused) */
    unsigned hb_send_ms;           /* 0: we send no heart-beats */
    unsigned hb_expect_ms;         /* 0: we expect none */
    struct event *deadline;        /* owned: the CONNECT deadline, then a slowed-down login
                                      failure or the token's expiry (one at a time) */
    struct event *hb_timer;        /* owned: persistent while heart-beats run: ours and theirs */
    struct auth_identity identity; /* who the client is, once connected */
    bool auth_failed;              /* CONNECT refused: nothing more is read */
    struct token_bucket publish_tokens; /* limits.publish_rate */
    size_t consecutive_drops;           /* topic messages dropped since the last one delivered */
    size_t unacked;                     /* queue messages awaiting ACK, all subscriptions */
    uint64_t last_drop_log_ms;          /* when a slow-consumer drop was last logged */
    uint64_t unacked_limit_hits;        /* dispatches held back by limits.max_unacked */
    uint64_t dropped;

    /* Queue messages sent to a Redis stream (clustered queues) and confirmed so far: a RECEIPT
     * is only sent once every message published before it is stored. */
    uint64_t appends_sent, appends_confirmed;
    struct deferred_receipt *receipts_head, *receipts_tail; /* owned, in order */
    bool close_after_receipts; /* DISCONNECT seen: close once the receipts are out */

    /* Queue flow control (queue.overflow = block): not read while the queue it filled drains. */
    char *paused_on;     /* owned: that queue's name; NULL while reading */
    bool paused_counted; /* counted in the local queue's paused_publishers (not the store's) */
    struct session *paused_prev, *paused_next; /* broker.paused_publishers */

    /* limits.publish_rate_action = throttle: not read until the publish bucket has a token. */
    bool throttled;
    struct event *throttle_timer; /* owned: made at the first throttle, NULL before */

    /* Authenticating: a users-file CONNECT whose passcode hash runs on a worker (auth.workers).
     * Nothing more is parsed until it is done: TCP bytes wait in the connection's input, the
     * rest of a WebSocket message that held the CONNECT waits in held_bytes. */
    struct login_job *login; /* the pool's while it runs; cancelled by session_free */
    char *held_bytes;        /* owned: WebSocket bytes after the stop, NULL when none */
    size_t held_len;

    /* SUBSCRIBEs with a receipt whose replay a backend answers later (a cluster reads Redis):
     * nothing more is parsed until their RECEIPTs are out, so that no later frame's RECEIPT
     * comes first. Parsing starts again from resume_event, outside the replay's answer. */
    size_t replays_waited;
    struct event *resume_event; /* owned: made at the first such replay, NULL before */

    /* A GET /sse reader's session (sse.h): CONNECTED, RECEIPT and ERROR become the HTTP answer,
     * MESSAGE frames become events. Owned; NULL for every other client. */
    struct sse_stream *sse;

    /* admin API (issue #15): shown as connected_at by GET /api/connections */
    uint64_t started_wall_ms;

    /* Token refresh (issue #15, token_refresh.h): whether the current token's warning went out.
     * The deadline event above serves the warning and the expiry in turn. */
    struct token_refresh token_refresh;
};

/* A CONNECT waiting for its passcode hash, with what answering it needs (the frame is gone). */
struct login_job {
    struct workpool_job work;     /* first: the pool's handle */
    struct session *session;      /* NULL once the session is gone: done only frees the job */
    struct security_login *login; /* owned: the copies the hash needs */
    unsigned cx, cy;              /* the client's heart-beat header */
    size_t summary_len;
    char summary[1024]; /* the CONNECT, for the ERROR of a refusal */
    size_t receipt_len;
    char *receipt; /* owned: its receipt header's value, NULL when none */
};

/* A RECEIPT waiting for the queue messages published before its frame to be stored. */
struct deferred_receipt {
    struct deferred_receipt *next; /* owned by the session's list */
    uint64_t after;                /* send once appends_confirmed reaches this */
    size_t id_len;
    char id[]; /* receipt-id value, not NUL-terminated */
};

/* ---- building outbound frames ------------------------------------------------------------- */

/* A frame head being assembled; grows from a stack buffer to the heap when needed. */
struct head {
    char *p;
    size_t len, cap;
    bool failed;
    char stack[1024];
};

static void head_init(struct head *h)
{
    h->p = h->stack;
    h->len = 0;
    h->cap = sizeof(h->stack);
    h->failed = false;
}

static void head_release(struct head *h)
{
    if (h->p != h->stack)
        free(h->p);
}

static bool head_reserve(struct head *h, size_t more)
{
    if (h->len + more <= h->cap)
        return true;
    size_t cap = (h->len + more) * 2;
    char *p = h->p == h->stack ? malloc(cap) : realloc(h->p, cap);
    if (p == NULL) {
        h->failed = true;
        return false;
    }
    if (h->p == h->stack)
        memcpy(p, h->stack, h->len);
    h->p = p;
    h->cap = cap;
    return true;
}

static void head_raw(struct head *h, const char *s, size_t len)
{
    if (!head_reserve(h, len))
        return;
    memcpy(h->p + h->len, s, len);
    h->len += len;
}

static void head_header(struct head *h, enum stomp_version v, enum stomp_command cmd,
                        const char *name, const char *value, size_t value_len)
{
    size_t need = stomp_encode_header(NULL, 0, v, cmd, name, strlen(name), value, value_len);
    if (!head_reserve(h, need + 1))
        return;
    h->len += stomp_encode_header(h->p + h->len, h->cap - h->len, v, cmd, name, strlen(name), value,
                                  value_len);
}

static void head_header_str(struct head *h, enum stomp_version v, enum stomp_command cmd,
                            const char *name, const char *value)
{
    head_header(h, v, cmd, name, value, strlen(value));
}

static void head_command(struct head *h, enum stomp_command cmd)
{
    const char *name = stomp_command_name(cmd);
    head_raw(h, name, strlen(name));
    head_raw(h, "\n", 1);
}

/* Ends the head (content-length when there is a body, then the blank line) and sends it. */
static void send_head(struct session *s, struct head *h, enum stomp_command cmd, const char *body,
                      size_t body_len)
{
    if (body_len > 0) {
        char n[24];
        snprintf(n, sizeof(n), "%zu", body_len);
        head_header_str(h, s->version, cmd, "content-length", n);
    }
    head_raw(h, "\n", 1);
    if (h->failed) {
        log_error(s->conn->id, "out of memory building a %s frame", stomp_command_name(cmd));
        conn_close(s->conn);
    } else {
        bool utf8 = ws_utf8_valid((const uint8_t *)h->p, h->len) &&
                    ws_utf8_valid((const uint8_t *)body, body_len);
        conn_send_frame(s->conn, h->p, h->len, NULL, body, body_len, utf8);
    }
    head_release(h);
}

static const struct stomp_header *find(const struct stomp_frame *f, const char *name)
{
    return stomp_frame_header(f, name);
}

/* RECEIPT; recovered (NULL: none) adds x-stream-recovered for a SUBSCRIBE that asked for
 * history. */
static void write_receipt_with(struct session *s, const char *id, size_t id_len,
                               const bool *recovered)
{
    if (s->sse != NULL)
        return; /* a reader asks for none: an event stream has no place for one */
    struct head h;
    head_init(&h);
    head_command(&h, STOMP_CMD_RECEIPT);
    head_header(&h, s->version, STOMP_CMD_RECEIPT, "receipt-id", id, id_len);
    if (recovered != NULL)
        head_header_str(&h, s->version, STOMP_CMD_RECEIPT, "x-stream-recovered",
                        *recovered ? "true" : "false");
    send_head(s, &h, STOMP_CMD_RECEIPT, NULL, 0);
}

void session_replay_receipt(struct subscription *sub, const char *id, size_t id_len, bool recovered)
{
    struct session *s = sub->session;
    write_receipt_with(s, id, id_len, &recovered);
    /* The frames after the SUBSCRIBE are parsed once the replay's messages are out too: from
     * the loop, since the caller is still delivering them to sub. */
    if (s->replays_waited > 0 && --s->replays_waited == 0)
        event_active(s->resume_event, EV_TIMEOUT, 0);
}

static void write_receipt(struct session *s, const char *id, size_t id_len)
{
    write_receipt_with(s, id, id_len, NULL);
}

/* Queues a receipt behind the unconfirmed queue messages; false when out of memory. */
static bool defer_receipt(struct session *s, const struct stomp_header *receipt)
{
    struct deferred_receipt *d = malloc(sizeof(*d) + receipt->value_len);
    if (d == NULL)
        return false;
    d->next = NULL;
    d->after = s->appends_sent;
    d->id_len = receipt->value_len;
    memcpy(d->id, receipt->value, receipt->value_len);
    if (s->receipts_tail != NULL)
        s->receipts_tail->next = d;
    else
        s->receipts_head = d;
    s->receipts_tail = d;
    return true;
}

/* The frame's RECEIPT, at once or, while queue messages published before it are not stored
 * yet, once they are (receipts keep their order). */
static void send_receipt(struct session *s, const struct stomp_frame *f)
{
    const struct stomp_header *receipt = find(f, "receipt");
    if (receipt == NULL)
        return;
    bool wait = s->receipts_head != NULL || s->appends_confirmed != s->appends_sent;
    if (!wait || !defer_receipt(s, receipt)) /* out of memory: now rather than never */
        write_receipt(s, receipt->value, receipt->value_len);
}

static void free_deferred_receipts(struct session *s)
{
    while (s->receipts_head != NULL) {
        struct deferred_receipt *d = s->receipts_head;
        s->receipts_head = d->next;
        free(d);
    }
    s->receipts_tail = NULL;
}

/* Appends "COMMAND\nname:value\n..." of the offending frame to the ERROR body, bounded. */
static size_t summarize_frame(const struct stomp_frame *f, char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "The offending frame:\n-----\n%s\n",
                                stomp_command_name(f->command));
    for (size_t i = 0; i < f->header_count && n < cap; i++) {
        const struct stomp_header *hd = &f->headers[i];
        /* Credentials never travel back, not even to their owner (proxies and logs see it):
         * a CONNECT's passcode, a token refresh's token. */
        bool secret = (hd->name_len == 8 && memcmp(hd->name, "passcode", 8) == 0) ||
                      (hd->name_len == 5 && memcmp(hd->name, "token", 5) == 0);
        int w = snprintf(out + n, cap - n, "%.*s:%.*s\n",
                         (int)(hd->name_len > 200 ? 200 : hd->name_len), hd->name,
                         secret ? 3 : (int)(hd->value_len > 200 ? 200 : hd->value_len),
                         secret ? "***" : hd->value);
        if (w < 0)
            break;
        n += (size_t)w;
    }
    if (n < cap)
        n += (size_t)snprintf(out + n, cap - n, "-----\n");
    return n < cap ? n : cap - 1;
}

/* ERROR (message, receipt-id when known, body), then a WebSocket close with ws_code. */
static void send_error(struct session *s, const struct stomp_header *receipt, const char *detail,
                       size_t detail_len, uint16_t ws_code, const char *message)
{
    if (!conn_is_open(s->conn))
        return;
    log_info(s->conn->id, "error to %s: %s", s->conn->peer, message);
    if (s->sse != NULL) {
        sse_fail(s->sse, s->connected, message);
        conn_close_gracefully(s->conn, ws_code, message);
        return;
    }
    struct head h;
    head_init(&h);
    head_command(&h, STOMP_CMD_ERROR);
    head_header_str(&h, s->version, STOMP_CMD_ERROR, "message", message);
    if (receipt != NULL)
        head_header(&h, s->version, STOMP_CMD_ERROR, "receipt-id", receipt->value,
                    receipt->value_len);
    head_header_str(&h, s->version, STOMP_CMD_ERROR, "content-type", "text/plain");
    char body[2048];
    size_t body_len = detail_len < sizeof(body) / 2 ? detail_len : sizeof(body) / 2;
    memcpy(body, detail, body_len);
    body_len += (size_t)snprintf(body + body_len, sizeof(body) - body_len, "%s\n", message);
    if (body_len >= sizeof(body))
        body_len = sizeof(body) - 1;
    send_head(s, &h, STOMP_CMD_ERROR, body, body_len);
    conn_close_gracefully(s->conn, ws_code, message);
}

/*
 * The end of a session on a protocol problem with a parsed frame (or none): ERROR with message,
 * the frame's receipt as receipt-id and a summary of the frame in the body, then the close.
 */
static void session_fail(struct session *s, const struct stomp_frame *f, uint16_t ws_code,
                         const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void session_fail(struct session *s, const struct stomp_frame *f, uint16_t ws_code,
                         const char *fmt, ...)
{
    char message[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof(message), fmt, ap);
    va_end(ap);
    char summary[1024];
    size_t summary_len = f != NULL ? summarize_frame(f, summary, sizeof(summary)) : 0;
    send_error(s, f != NULL ? find(f, "receipt") : NULL, summary, summary_len, ws_code, message);
}

/*
 * A frame the parser rejected has no frame value: the ERROR quotes the raw bytes where it went
 * wrong (printable ASCII, bounded) and finds a receipt header among them when there is one.
 */
static void fail_on_bytes(struct session *s, const char *data, size_t len, uint16_t ws_code,
                          const char *message)
{
    size_t shown = len < 256 ? len : 256;
    char summary[512];
    size_t n = (size_t)snprintf(summary, sizeof(summary), "The offending bytes:\n-----\n");
    for (size_t i = 0; i < shown; i++) {
        unsigned char ch = (unsigned char)data[i];
        summary[n++] = (ch == '\n' || (ch >= 0x20 && ch < 0x7f)) ? (char)ch : '.';
    }
    n += (size_t)snprintf(summary + n, sizeof(summary) - n, "\n-----\n");

    struct stomp_header receipt = {0};
    const char *end = data + len;
    const char *at = memmem(data, len, "\nreceipt:", 9);
    if (at != NULL) {
        receipt.value = at + 9;
        /* To the line's end, or to a NUL: a header value never holds one (the encoder would
         * write it raw, and the client's parser would end the ERROR frame there). */
        while (receipt.value + receipt.value_len < end &&
               receipt.value[receipt.value_len] != '\n' && receipt.value[receipt.value_len] != '\0')
            receipt.value_len++;
        if (receipt.value_len > 0 && receipt.value[receipt.value_len - 1] == '\r')
            receipt.value_len--;
    }
    send_error(s, at != NULL ? &receipt : NULL, summary, n, ws_code, message);
}

/* ---- timers --------------------------------------------------------------------------------- */

static void arm(struct event *ev, unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

/* One tick serves both directions: it runs at the shorter of the two periods. */
static void hb_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    (void)fd;
    (void)what;
    /* Closing (up to CLOSING_DEADLINE_MS for a peer that never reads): the timeout, if that is
     * why, was counted and logged once; a silent peer must not be counted again every tick. */
    if (!conn_is_open(s->conn))
        return;
    uint64_t now = broker_now_ms(s->broker);
    /* Ours at half the interval, so a gap never exceeds the promised one. */
    if (s->hb_send_ms != 0 && now - s->conn->last_write_ms >= s->hb_send_ms / 2)
        conn_send_heartbeat(s->conn);
    uint64_t silent = now - s->conn->last_read_ms;
    /* Twice the promised interval: background browser tabs throttle their timers. */
    /* A publisher paused by flow control is not read: its heart-beats wait in the socket. */
    if (s->hb_expect_ms == 0 || s->conn->read_paused || silent <= 2ull * s->hb_expect_ms)
        return;
    s->broker->stats.limit_hits[LIMIT_HEARTBEAT]++;
    log_info(s->conn->id, "heart-beat timeout: %s silent for %" PRIu64 " ms (promised %u ms)",
             s->conn->peer, silent, s->hb_expect_ms);
    session_fail(s, NULL, WS_CLOSE_POLICY,
                 "heart-beat timeout: nothing received for %" PRIu64 " ms", silent);
}

static void watch_expiry(struct session *s);
static void token_deadline(struct session *s);

/* The session's one deadline: no CONNECT in time, a login failure answered late on purpose, or
 * the end of the token's validity. */
static void deadline_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    (void)fd;
    (void)what;
    if (!conn_is_open(s->conn))
        return; /* closing already: whatever ended it was counted once */
    if (s->auth_failed) {
        session_fail(s, NULL, WS_CLOSE_POLICY, "authentication failed");
    } else if (!s->connected) {
        s->broker->stats.limit_hits[LIMIT_CONNECT_TIMEOUT]++;
        session_fail(s, NULL, WS_CLOSE_POLICY,
                     "no CONNECT frame within limits.connect_timeout_ms (%u ms)",
                     s->broker->cfg.connect_timeout_ms);
    } else {
        token_deadline(s);
    }
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

static void make_session_id(struct session *s)
{
    uint8_t rnd[8] = {0};
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
        memcpy(rnd, &s, sizeof(rnd) < sizeof(s) ? sizeof(rnd) : sizeof(s));
    int n = snprintf(s->id, sizeof(s->id), "sess-%" PRIu64 "-", s->conn->id);
    for (size_t i = 0; i < sizeof(rnd) && (size_t)n + 2 < sizeof(s->id); i++)
        n += snprintf(s->id + n, sizeof(s->id) - (size_t)n, "%02x", rnd[i]);
}

/* The /metrics gauge of sessions on s's transport (stompws_connections{transport}). */
static uint64_t *clients_gauge(const struct session *s)
{
    const struct conn *c = s->conn;
    size_t first = c->transport == CONN_TCP ? 2 : c->transport == CONN_SSE ? 4 : 0;
    return &s->broker->stats.clients[first + (c->tls ? 1 : 0)];
}

struct session *session_new(struct conn *c, int version_hint)
{
    struct session *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->conn = c;
    s->broker = c->broker;
    (*clients_gauge(s))++; /* until session_free(), on every path */
    s->started_wall_ms = broker_wall_ms();
    s->version_hint = version_hint;
    s->version = version_hint != 0 ? (enum stomp_version)version_hint : STOMP_V1_2;
    const struct config *cfg = &c->broker->cfg;
    struct stomp_limits limits = {.max_headers = cfg->max_frame_headers,
                                  .max_header_line = cfg->max_header_line,
                                  .max_header_bytes = cfg->max_header_bytes,
                                  .max_body = cfg->max_body};
    s->parser = stomp_parser_new(&limits);
    s->deadline = evtimer_new(c->broker->base, deadline_cb, s);
    dict_init(&s->subs);
    dict_init(&s->transactions);
    dict_init(&s->temp_queues);
    if (s->parser == NULL || s->deadline == NULL) {
        session_free(s);
        return NULL;
    }
    make_session_id(s);
    token_bucket_init(&s->publish_tokens, (double)cfg->publish_rate, (double)cfg->publish_burst,
                      broker_now_ms(c->broker));
    arm(s->deadline, cfg->connect_timeout_ms);
    return s;
}

static void free_subscription(struct subscription *sub)
{
    sub->session->broker->stats.subscriptions--;
    presence_unsubscribed(sub->session->broker, sub);
    publish_forget_replay(sub->session->broker, sub);
    history_marks_free(sub->stream_marks);
    free(sub->id);
    free(sub->destination);
    free(sub->lines);
    free(sub);
}

/* Escapes the subscription's own MESSAGE header lines once, for every delivery to come. */
static bool encode_subscription_lines(struct subscription *sub, enum stomp_version v)
{
    size_t id_len = strlen(sub->id);
    sub->id_line_len =
        stomp_encode_header(NULL, 0, v, STOMP_CMD_MESSAGE, "subscription", 12, sub->id, id_len);
    size_t dest_len = stomp_encode_header(NULL, 0, v, STOMP_CMD_MESSAGE, "destination", 11,
                                          sub->destination, sub->destination_len);
    sub->lines = malloc(sub->id_line_len + dest_len + 1);
    if (sub->lines == NULL)
        return false;
    sub->lines_len = stomp_encode_header(sub->lines, sub->id_line_len + 1, v, STOMP_CMD_MESSAGE,
                                         "subscription", 12, sub->id, id_len);
    sub->lines_len +=
        stomp_encode_header(sub->lines + sub->lines_len, dest_len + 1, v, STOMP_CMD_MESSAGE,
                            "destination", 11, sub->destination, sub->destination_len);
    return true;
}

static void free_all_subscriptions(struct session *s)
{
    size_t bucket;
    struct dict_entry *e;
    while ((e = dict_first(&s->subs, &bucket)) != NULL) {
        struct subscription *sub = e->value;
        dict_remove(&s->subs, e->key, e->key_len);
        router_unsubscribe(&s->broker->router, sub);
        free_subscription(sub);
    }
    dict_reset(&s->subs);
}

static void free_all_transactions(struct session *s)
{
    size_t bucket;
    for (struct dict_entry *e = dict_first(&s->transactions, &bucket); e != NULL;
         e = dict_next(&s->transactions, &bucket, e)) {
        txn_free(e->value);
    }
    dict_reset(&s->transactions);
}

static void delete_temp_queues(struct session *s)
{
    size_t bucket;
    for (struct dict_entry *e = dict_first(&s->temp_queues, &bucket); e != NULL;
         e = dict_next(&s->temp_queues, &bucket, e)) {
        struct queue *q = queue_lookup(&s->broker->router.queues, e->key, e->key_len, false);
        if (q != NULL && q->consumer_count == 0)
            queue_delete(&s->broker->router.queues, q);
    }
    dict_reset(&s->temp_queues);
}

/* ---- queue flow control --------------------------------------------------------------------- */

/*
 * queue.overflow = block: a SEND that fills a queue is taken, and its publisher's connection is
 * not read until the queue drains (what it already sent waits in the socket: TCP pushes back),
 * instead of an ERROR that would make the client drop or resend. The frames of the chunk being
 * handled still go in, so a queue may pass its limit by at most one read per paused publisher.
 *
 * pause_on() stops reading s until queue `route` drains: q is the local queue that filled (it
 * counts its paused publishers), or NULL for a queue of the process's store (threads > 1), which
 * tells this loop through its inbox (session_queue_unblocked) instead.
 */
static void pause_on(struct session *s, struct queue *q, const char *route, size_t len)
{
    struct broker *b = s->broker;
    if (s->paused_on != NULL || (s->paused_on = strndup(route, len)) == NULL)
        return;
    s->paused_counted = q != NULL;
    if (q != NULL)
        q->paused_publishers++;
    s->paused_prev = NULL;
    s->paused_next = b->paused_publishers;
    if (b->paused_publishers != NULL)
        b->paused_publishers->paused_prev = s;
    b->paused_publishers = s;
    b->stats.limit_hits[LIMIT_QUEUE_MESSAGES]++;
    b->stats.publishers_paused++;
    log_debug(s->conn->id,
              "queue %s is full (queue.max_messages = %zu): not reading until it drains",
              s->paused_on, b->cfg.queue_max_messages);
    conn_pause_reading(s->conn);
}

static void pause_if_full(struct session *s, const char *route, size_t len)
{
    struct broker *b = s->broker;
    if (s->paused_on != NULL || !b->router.queues.block)
        return;
    struct queue *q = queue_lookup(&b->router.queues, route, len, false);
    if (q == NULL || q->clustered || !queue_full(&b->router.queues, q))
        return;
    pause_on(s, q, route, len);
}

static void unpause(struct session *s)
{
    struct broker *b = s->broker;
    struct queue *q = s->paused_counted ? queue_lookup(&b->router.queues, s->paused_on,
                                                       strlen(s->paused_on), false)
                                        : NULL;
    if (q != NULL)
        q->paused_publishers--;
    if (s->paused_prev != NULL)
        s->paused_prev->paused_next = s->paused_next;
    else
        b->paused_publishers = s->paused_next;
    if (s->paused_next != NULL)
        s->paused_next->paused_prev = s->paused_prev;
    b->stats.publishers_paused--;
    free(s->paused_on);
    s->paused_on = NULL;
}

/* Nothing more is parsed, not even the rest of a WebSocket message: the passcode hash of its
 * CONNECT runs (authenticating), or a replay's RECEIPT is still to come. */
static bool parsing_stopped(const struct session *s)
{
    return s->login != NULL || s->replays_waited > 0;
}

/* Reading s waits: for a full queue (queue.overflow = block), the publish rate (throttle) or
 * a stop of parsing. */
static bool reading_held(const struct session *s)
{
    return s->paused_on != NULL || s->throttled || parsing_stopped(s);
}

/* One hold of flow control ended: s is read again once no other holds it. */
static void resume_unless_held(struct session *s)
{
    if (!reading_held(s))
        conn_resume_reading(s->conn);
}

void session_queue_unblocked(struct broker *b, const char *queue)
{
    struct session *s = b->paused_publishers;
    while (s != NULL) {
        struct session *next = s->paused_next;
        if (strcmp(s->paused_on, queue) == 0) {
            unpause(s);
            resume_unless_held(s);
        }
        s = next;
    }
}

static void login_job_abandon(struct login_job *job);

void session_free(struct session *s)
{
    if (s == NULL)
        return;
    (*clients_gauge(s))--;
    if (s->appends_confirmed != s->appends_sent)
        publish_forget_waiter(s->broker, s); /* the messages stay; nobody waits for them */
    if (s->paused_on != NULL)
        unpause(s);
    if (s->login != NULL)
        login_job_abandon(s->login);
    free(s->held_bytes);
    free_deferred_receipts(s);
    free_all_transactions(s); /* aborted: nothing buffered takes effect */
    free_all_subscriptions(s);
    delete_temp_queues(s);
    if (s->deadline != NULL)
        event_free(s->deadline);
    if (s->hb_timer != NULL)
        event_free(s->hb_timer);
    if (s->throttle_timer != NULL)
        event_free(s->throttle_timer);
    if (s->resume_event != NULL)
        event_free(s->resume_event);
    sse_stream_free(s->sse);
    auth_identity_reset(&s->identity);
    stomp_parser_free(s->parser);
    free(s);
}

void session_shutdown(struct session *s, const char *reason)
{
    if (s->connected)
        session_fail(s, NULL, WS_CLOSE_GOING_AWAY, "%s", reason);
    else
        conn_close_gracefully(s->conn, WS_CLOSE_GOING_AWAY, reason);
}

/* ---- destinations --------------------------------------------------------------------------- */

/*
 * Resolves a destination a client wrote to the router's name for it: /temp-queue/NAME is this
 * session's private queue /reply-queue/<session-id>.NAME (created on first use). Writes into out
 * (cap bytes); returns its length, or 0 when it does not fit or the queue cannot be created.
 */
static size_t resolve_temp_queue(struct session *s, const char *name, size_t len, char *out,
                                 size_t cap)
{
    size_t skip = strlen(TEMP_QUEUE_PREFIX);
    int n =
        snprintf(out, cap, "%s%s.%.*s", REPLY_QUEUE_PREFIX, s->id, (int)(len - skip), name + skip);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    struct queue *q = queue_lookup(&s->broker->router.queues, out, (size_t)n, true);
    if (q == NULL)
        return 0;
    q->temporary = true;
    if (dict_get(&s->temp_queues, out, (size_t)n) == NULL &&
        dict_set(&s->temp_queues, out, (size_t)n, q) != 0)
        return 0;
    return (size_t)n;
}

/* ---- verbs ---------------------------------------------------------------------------------- */

static void start_heartbeats(struct session *s, unsigned cx, unsigned cy)
{
    const struct config *cfg = &s->broker->cfg;
    unsigned send_ms, expect_ms;
    stomp_heartbeat_negotiate(cx, cy, cfg->heartbeat_send_ms, cfg->heartbeat_receive_ms, &send_ms,
                              &expect_ms);
    if (send_ms != 0) {
        send_ms = send_ms < cfg->heartbeat_min_ms ? cfg->heartbeat_min_ms : send_ms;
        send_ms = send_ms > cfg->heartbeat_max_ms ? cfg->heartbeat_max_ms : send_ms;
    }
    if (expect_ms != 0) {
        expect_ms = expect_ms < cfg->heartbeat_min_ms ? cfg->heartbeat_min_ms : expect_ms;
        expect_ms = expect_ms > cfg->heartbeat_max_ms ? cfg->heartbeat_max_ms : expect_ms;
        expect_ms = expect_ms < cx ? cx : expect_ms; /* a client cannot beat faster than cx */
    }
    s->hb_send_ms = send_ms;
    s->hb_expect_ms = expect_ms;
    if (send_ms == 0 && expect_ms == 0)
        return; /* no timer at all: most idle connections of clients without heart-beats */
    unsigned tick = send_ms != 0 ? (send_ms / 2 > 0 ? send_ms / 2 : 1) : expect_ms;
    if (expect_ms != 0 && expect_ms < tick)
        tick = expect_ms;
    s->hb_timer = event_new(s->broker->base, -1, EV_PERSIST, hb_cb, s);
    if (s->hb_timer != NULL)
        arm(s->hb_timer, tick);
    else
        log_error(s->conn->id, "out of memory: heart-beats not started");
}

/* Settles the version from accept-version and the WebSocket subprotocol; -1 after an ERROR. */
static int negotiate_version(struct session *s, const struct stomp_frame *f)
{
    const struct stomp_header *accept = find(f, "accept-version");
    int v = stomp_negotiate_version(accept ? accept->value : NULL, accept ? accept->value_len : 0,
                                    STOMP_VERSIONS_ALL);
    if (s->version_hint != 0) {
        unsigned bit = STOMP_VERSION_BIT(s->version_hint);
        if (accept != NULL && stomp_negotiate_version(accept->value, accept->value_len, bit) < 0) {
            session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR,
                         "accept-version does not include %s, fixed by the WebSocket subprotocol",
                         stomp_version_name((enum stomp_version)s->version_hint));
            return -1;
        }
        return s->version_hint;
    }
    if (v < 0) {
        struct head h;
        head_init(&h);
        head_command(&h, STOMP_CMD_ERROR);
        head_header_str(&h, STOMP_V1_2, STOMP_CMD_ERROR, "message",
                        "no common STOMP version: supported versions are 1.0,1.1,1.2");
        head_header_str(&h, STOMP_V1_2, STOMP_CMD_ERROR, "version", "1.0,1.1,1.2");
        head_header_str(&h, STOMP_V1_2, STOMP_CMD_ERROR, "content-type", "text/plain");
        const char *body = "Supported protocol versions are 1.0, 1.1 and 1.2\n";
        send_head(s, &h, STOMP_CMD_ERROR, body, strlen(body));
        conn_close_gracefully(s->conn, WS_CLOSE_PROTOCOL_ERROR, "no common STOMP version");
        return -1;
    }
    return v;
}

/*
 * A refused login: logged with its reason, counted for the address's slow-down; the client only
 * learns "authentication failed" (ERROR quoting its CONNECT), at once or, for an address already
 * slowed down, once its delay has passed.
 */
static void refuse_login(struct session *s, const char *reason, int64_t delay, int64_t now_ms,
                         const struct stomp_header *receipt, const char *summary,
                         size_t summary_len)
{
    struct security *sec = &s->broker->security;
    s->broker->stats.auth_failures++;
    log_warn(s->conn->id, "authentication failed for %s: %s", s->conn->peer, reason);
    auth_throttle_failure(sec->throttle, s->conn->addr, now_ms);
    s->auth_failed = true;
    if (delay <= 0) {
        send_error(s, receipt, summary, summary_len, WS_CLOSE_POLICY, "authentication failed");
        return;
    }
    arm(s->deadline, delay > UINT32_MAX ? UINT32_MAX : (unsigned)delay);
}

static void login_job_free(struct login_job *job)
{
    security_login_free(job->login);
    free(job->receipt);
    free(job);
}

/* The session is going away: its hash is dropped if no worker has it yet, else ignored. */
static void login_job_abandon(struct login_job *job)
{
    if (workpool_cancel(&job->work))
        login_job_free(job);
    else
        job->session = NULL; /* done comes later and only frees it */
}

static void login_job_run(struct workpool_job *work)
{
    security_login_run(((struct login_job *)work)->login);
}

static void connected(struct session *s, unsigned cx, unsigned cy);
static void login_job_done(struct workpool_job *work);

/*
 * Hands the passcode hash of a users-file CONNECT to the workers: s is authenticating, and reads
 * nothing more until login_job_done. Returns -1 (pending untouched, still the caller's) when it
 * cannot: the hash then runs here.
 */
static int start_login_job(struct session *s, const struct stomp_frame *f,
                           struct security_login *pending, unsigned cx, unsigned cy)
{
    struct login_job *job = calloc(1, sizeof(*job));
    if (job == NULL)
        return -1;
    const struct stomp_header *receipt = find(f, "receipt");
    if (receipt != NULL && (job->receipt = malloc(receipt->value_len + 1)) == NULL) {
        free(job);
        return -1;
    }
    if (receipt != NULL) {
        memcpy(job->receipt, receipt->value, receipt->value_len);
        job->receipt[receipt->value_len] = '\0';
        job->receipt_len = receipt->value_len;
    }
    job->summary_len = summarize_frame(f, job->summary, sizeof(job->summary));
    job->work.run = login_job_run;
    job->work.done = login_job_done;
    job->session = s;
    job->login = pending;
    job->cx = cx;
    job->cy = cy;
    if (workpool_submit(s->broker->auth_pool, s->broker->auth_mailbox, &job->work) != 0) {
        job->login = NULL;
        login_job_free(job);
        return -1;
    }
    s->login = job;
    conn_pause_reading(s->conn);
    return 0;
}

/* The rest of a WebSocket message that stopped parsing, parsed now that the stop is over. */
static void feed_held_bytes(struct session *s)
{
    char *held = s->held_bytes;
    size_t len = s->held_len;
    s->held_bytes = NULL;
    s->held_len = 0;
    if (held != NULL && conn_is_open(s->conn) && !s->auth_failed)
        session_feed(s, held, len);
    free(held);
}

/*
 * The hash of s's CONNECT is done (on s's loop): CONNECTED and the frames that waited behind it,
 * in order, or the refusal that authenticate() would have made. The slow-down is looked up again:
 * an address whose other attempts failed meanwhile is refused unchecked, as it would have been
 * with the hashes run one after the other.
 */
static void login_job_done(struct workpool_job *work)
{
    struct login_job *job = (struct login_job *)work;
    struct session *s = job->session;
    if (s == NULL || work->cancelled) {
        login_job_free(job);
        return;
    }
    s->login = NULL;
    if (!conn_is_open(s->conn)) { /* closing meanwhile (shutdown): nothing to answer */
        login_job_free(job);
        return;
    }
    struct security *sec = &s->broker->security;
    int64_t now_ms = (int64_t)broker_now_ms(s->broker);
    int64_t delay = auth_throttle_delay_ms(sec->throttle, s->conn->addr, now_ms);
    char reason[256] = "unknown";
    if (delay > 0) {
        snprintf(reason, sizeof(reason), "too many failed logins from this address: slowed down");
    } else if (security_login_finish(job->login, &s->identity, reason, sizeof(reason)) == 0) {
        auth_throttle_success(sec->throttle, s->conn->addr);
        connected(s, job->cx, job->cy);
        login_job_free(job);
        feed_held_bytes(s);
        resume_unless_held(s);
        return;
    }
    struct stomp_header receipt = {.value = job->receipt, .value_len = job->receipt_len};
    refuse_login(s, reason, delay, now_ms, job->receipt != NULL ? &receipt : NULL, job->summary,
                 job->summary_len);
    login_job_free(job);
    free(s->held_bytes); /* a refused session reads nothing more */
    s->held_bytes = NULL;
    resume_unless_held(s); /* slowed down: the connection is read (and ignored) until the end */
}

/*
 * Establishes who the client is: 0 when it may connect, -1 when refused, 1 while its passcode is
 * being hashed on a worker (login_job_done finishes). A refusal is logged with its reason, but
 * the client only learns "authentication failed". An address with repeated failures is slowed
 * down: its next attempts wait (the connection reads nothing meanwhile) and are refused unchecked
 * until the delay has passed, so parallel guesses gain nothing.
 */
static int authenticate(struct session *s, const struct stomp_frame *f, unsigned cx, unsigned cy)
{
    struct security *sec = &s->broker->security;
    int64_t now_ms = (int64_t)broker_now_ms(s->broker);
    int64_t delay = auth_throttle_delay_ms(sec->throttle, s->conn->addr, now_ms);
    char reason[256] = "unknown";
    const struct stomp_header *login = find(f, "login");
    const struct stomp_header *pass = find(f, "passcode");
    if (delay > 0) {
        snprintf(reason, sizeof(reason), "too many failed logins from this address: slowed down");
    } else {
        struct security_login *pending = NULL;
        int rc = security_authenticate_start(
            sec, login ? login->value : NULL, login ? login->value_len : 0,
            pass ? pass->value : NULL, pass ? pass->value_len : 0, s->conn->bearer,
            s->conn->bearer_len, (int64_t)time(NULL), &s->identity, reason, sizeof(reason),
            &pending);
        if (rc == SECURITY_PENDING) {
            if (s->broker->auth_pool != NULL && start_login_job(s, f, pending, cx, cy) == 0)
                return 1;
            security_login_run(pending); /* auth.workers = 0: here, on the loop */
            rc = security_login_finish(pending, &s->identity, reason, sizeof(reason));
            security_login_free(pending);
        }
        if (rc == 0) {
            auth_throttle_success(sec->throttle, s->conn->addr);
            return 0;
        }
    }
    char summary[1024];
    size_t summary_len = summarize_frame(f, summary, sizeof(summary));
    refuse_login(s, reason, delay, now_ms, find(f, "receipt"), summary, summary_len);
    return -1;
}

/* A token's permissions end with it: the session closes when it expires, after a warning to
 * its /user/queue/stompws.token subscriptions refresh.warn_s before (token_refresh.h). */
static void watch_expiry(struct session *s)
{
    if (s->identity.expires_at == 0)
        return;
    uint64_t ms = token_refresh_next_ms(&s->token_refresh, s->identity.expires_at, broker_wall_ms(),
                                        (unsigned)s->broker->cfg.refresh_warn_s);
    arm(s->deadline, ms > UINT32_MAX ? UINT32_MAX : (unsigned)ms);
}

/* The deadline of a connected token session: the warning, or the end. */
static void token_deadline(struct session *s)
{
    uint64_t now = broker_wall_ms();
    switch (token_refresh_due(&s->token_refresh, s->identity.expires_at, now,
                              (unsigned)s->broker->cfg.refresh_warn_s)) {
    case TOKEN_REFRESH_EXPIRED:
        session_fail(s, NULL, WS_CLOSE_POLICY, "token expired");
        return;
    case TOKEN_REFRESH_WARN:
        s->token_refresh.warned = true;
        token_refresh_warn(&s->subs, NULL, s->identity.expires_at, now);
        break;
    case TOKEN_REFRESH_WAIT:
        break;
    }
    watch_expiry(s);
}

/* SEND to /user/queue/stompws.token: a new token for this session, never published. */
static void on_token_send(struct session *s, const struct stomp_frame *f)
{
    const struct stomp_header *token = find(f, "token");
    char reason[320];
    if (token_refresh_replace(&s->broker->security, &s->identity, token ? token->value : NULL,
                              token ? token->value_len : 0, broker_wall_ms(), reason,
                              sizeof(reason)) != 0) {
        s->broker->stats.permission_denials++;
        session_fail(s, f, WS_CLOSE_POLICY, "token refresh refused: %s", reason);
        return;
    }
    log_debug(s->conn->id, "token refreshed for user '%s': expires at %" PRId64, s->identity.user,
              s->identity.expires_at);
    s->token_refresh.warned = false;
    watch_expiry(s);
    send_receipt(s, f);
}

/* The client is in: heart-beats start and CONNECTED goes out. */
static void connected(struct session *s, unsigned cx, unsigned cy)
{
    watch_expiry(s);
    stomp_parser_set_version(s->parser, s->version);
    s->connected = true;
    if (s->version >= STOMP_V1_1)
        start_heartbeats(s, cx, cy);
    if (s->sse != NULL) { /* the HTTP head instead of CONNECTED, or a 403 */
        sse_connected(s->sse, &s->broker->security, &s->identity);
        return;
    }

    struct head h;
    head_init(&h);
    head_command(&h, STOMP_CMD_CONNECTED);
    head_header_str(&h, s->version, STOMP_CMD_CONNECTED, "version", stomp_version_name(s->version));
    head_header_str(&h, s->version, STOMP_CMD_CONNECTED, "server", STOMPWS_SERVER_NAME);
    head_header_str(&h, s->version, STOMP_CMD_CONNECTED, "session", s->id);
    if (s->version >= STOMP_V1_1) {
        char hbv[32];
        snprintf(hbv, sizeof(hbv), "%u,%u", s->hb_send_ms, s->hb_expect_ms);
        head_header_str(&h, s->version, STOMP_CMD_CONNECTED, "heart-beat", hbv);
    }
    send_head(s, &h, STOMP_CMD_CONNECTED, NULL, 0);
    log_debug(s->conn->id, "STOMP %s session %s user '%s'", stomp_version_name(s->version), s->id,
              s->identity.user);
}

static void on_connect(struct session *s, const struct stomp_frame *f)
{
    if (s->connected) {
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR, "already connected");
        return;
    }
    int v = negotiate_version(s, f);
    if (v < 0)
        return;
    s->version = (enum stomp_version)v;
    unsigned cx = 0, cy = 0;
    const struct stomp_header *hb = find(f, "heart-beat");
    if (hb != NULL && s->version >= STOMP_V1_1 &&
        stomp_heartbeat_parse(hb->value, hb->value_len, &cx, &cy) != 0) {
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR,
                     "malformed heart-beat header: expected \"cx,cy\"");
        return;
    }
    /* The CONNECT came in time: a wait for its passcode hash is the broker's, not the client's. */
    evtimer_del(s->deadline);
    if (authenticate(s, f, cx, cy) == 0)
        connected(s, cx, cy);
}

/* Copies a header value into a NUL-terminated string (for names used as C strings). */
static char *dup_value(const struct stomp_header *h)
{
    return strndup(h->value, h->value_len);
}

#define STRINGIFY_(x) #x
#define STRINGIFY(x)  STRINGIFY_(x)
/* SESSION_DESTINATION_MAX, as refusals name it. */
#define DESTINATION_LIMIT_TEXT                                                                     \
    "destinations are at most " STRINGIFY(SESSION_DESTINATION_MAX) " bytes"

/* Why a /user/ destination is refused, for its ERROR. */
static const char *user_dest_problem(int rc)
{
    switch (rc) {
    case DEST_USER_ERR_LOGIN:
        return "the login must be 1 to 127 bytes of UTF-8 without '/' or control characters";
    case DEST_USER_ERR_NAME:
        return "the name must be at least one byte of UTF-8 without control characters";
    case DEST_USER_ERR_SPACE:
        return "too long (" DESTINATION_LIMIT_TEXT ")";
    default:
        return "expected /user/LOGIN/queue/NAME or /user/LOGIN/topic/NAME to send, "
               "/user/queue/NAME or /user/topic/NAME to subscribe";
    }
}

/*
 * The route of a /user/ destination, in out. A SUBSCRIBE to /user/queue/NAME (or topic) is
 * rewritten with the session's login; one naming a login must name the session's own. A SEND
 * names its user. Returns the length, or 0 after an ERROR. (Anonymous sessions were refused by
 * permitted().)
 */
static size_t resolve_user_route(struct session *s, const struct stomp_frame *f,
                                 const struct stomp_header *dest, bool subscribing, char *out,
                                 size_t cap)
{
    int shown = (int)(dest->value_len > 200 ? 200 : dest->value_len);
    const char *login = s->identity.user;
    int rc;
    if (subscribing && destination_user_is_own(dest->value, dest->value_len)) {
        if (!destination_user_login_valid(login, strlen(login))) {
            session_fail(s, f, WS_CLOSE_POLICY,
                         "your login cannot be addressed by /user/ destinations: %s",
                         user_dest_problem(DEST_USER_ERR_LOGIN));
            return 0;
        }
        rc = destination_user_route(dest->value, dest->value_len, login, strlen(login), out, cap);
    } else {
        struct destination_user parts;
        rc = destination_user_parse(dest->value, dest->value_len, &parts);
        if (rc == 0 && subscribing &&
            (parts.login_len != strlen(login) || memcmp(parts.login, login, parts.login_len))) {
            s->broker->stats.permission_denials++;
            session_fail(s, f, WS_CLOSE_POLICY,
                         "permission denied: cannot SUBSCRIBE to another user's destination %.*s",
                         shown, dest->value);
            return 0;
        }
        if (rc == 0 && dest->value_len >= cap)
            rc = DEST_USER_ERR_SPACE;
        if (rc == 0) {
            memcpy(out, dest->value, dest->value_len);
            out[dest->value_len] = '\0';
            rc = (int)dest->value_len;
        }
    }
    if (rc > 0)
        return (size_t)rc;
    session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR, "invalid user destination '%.*s': %s", shown,
                 dest->value, user_dest_problem(rc));
    return 0;
}

/* Refuses a destination that does not fit the route buffer (SESSION_DESTINATION_MAX bytes and
 * its NUL), naming the limit. */
static void fail_destination_too_long(struct session *s, const struct stomp_frame *f,
                                      const struct stomp_header *dest)
{
    session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR,
                 "destination too long: %zu bytes (" DESTINATION_LIMIT_TEXT ")", dest->value_len);
}

/*
 * Resolves the destination of a SEND (subscribing false) or SUBSCRIBE to the router's name for it
 * in out, and whether a missing queue may be created. Returns the length, or 0 after an ERROR:
 * nobody SENDs to a wildcard, nobody but the owner reads a /reply-queue/ (through /temp-queue/)
 * or a /user/ destination.
 */
static size_t resolve_route(struct session *s, const struct stomp_frame *f,
                            const struct stomp_header *dest, bool subscribing, char *out,
                            size_t cap, bool *create)
{
    enum dest_kind kind = destination_kind(dest->value, dest->value_len);
    int shown = (int)(dest->value_len > 200 ? 200 : dest->value_len);
    *create = kind != DEST_REPLY_QUEUE;
    if (kind == DEST_TEMP_QUEUE) {
        size_t n = resolve_temp_queue(s, dest->value, dest->value_len, out, cap);
        if (n == 0)
            session_fail(s, f, WS_CLOSE_INTERNAL_ERROR, "cannot create temporary queue");
        return n;
    }
    if (kind == DEST_USER)
        return resolve_user_route(s, f, dest, subscribing, out, cap);
    if (kind == DEST_UNKNOWN) {
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR,
                     "unknown destination '%.*s': allowed prefixes are " ALLOWED_PREFIXES, shown,
                     dest->value);
        return 0;
    }
    if (!subscribing && kind == DEST_TOPIC &&
        destination_is_wildcard(dest->value, dest->value_len)) {
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR, "cannot SEND to a wildcard destination: %.*s",
                     shown, dest->value);
        return 0;
    }
    if (subscribing && kind == DEST_REPLY_QUEUE) {
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR,
                     "cannot SUBSCRIBE to a /reply-queue/ destination: subscribe to /temp-queue/");
        return 0;
    }
    if (dest->value_len >= cap) {
        fail_destination_too_long(s, f, dest);
        return 0;
    }
    memcpy(out, dest->value, dest->value_len);
    out[dest->value_len] = '\0';
    return dest->value_len;
}

/* Publishes; returns 0, or -1 after an ERROR. */
static int route_send(struct session *s, const struct stomp_frame *f, struct message *msg,
                      const char *route, size_t route_len, bool create)
{
    int rc = publish_waiting(s->broker, msg, route, route_len, create, s);
    switch (rc) {
    case PUBLISH_PENDING:
        s->appends_sent++;
        /* fall through */
    case 0:
        s->broker->stats.messages_in++;
        pause_if_full(s, route, route_len);
        return 0;
    case PUBLISH_FULL:
        s->broker->stats.messages_in++;
        pause_on(s, NULL, route, route_len);
        return 0;
    case ROUTER_ERR_CLUSTER_FULL:
        s->broker->stats.limit_hits[LIMIT_CLUSTER_QUEUE_BUFFER]++;
        session_fail(s, f, WS_CLOSE_TRY_AGAIN_LATER,
                     "queue message not accepted: Redis is not confirming queue messages and the "
                     "buffer is full (cluster.queue_buffer_bytes = %zu)",
                     s->broker->cfg.cluster_queue_buffer_bytes);
        return -1;
    case ROUTER_ERR_NO_QUEUE:
        s->broker->stats.reply_queue_drops++;
        log_debug(s->conn->id, "dropped message to %s: its temporary queue is gone", route);
        return 0;
    case ROUTER_ERR_QUEUE_FULL:
        s->broker->stats.limit_hits[LIMIT_QUEUE_MESSAGES]++;
        session_fail(s, f, WS_CLOSE_POLICY, "queue %s is full (queue.max_messages = %zu)", route,
                     s->broker->cfg.queue_max_messages);
        return -1;
    case ROUTER_ERR_BAD_DEST:
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR, "invalid destination %s", route);
        return -1;
    default:
        session_fail(s, f, WS_CLOSE_INTERNAL_ERROR, "out of memory");
        return -1;
    }
}

static struct txn *find_tx(struct session *s, const struct stomp_frame *f)
{
    const struct stomp_header *name = find(f, "transaction");
    if (name == NULL)
        return NULL;
    struct txn *tx = dict_get(&s->transactions, name->value, name->value_len);
    if (tx == NULL)
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR, "unknown transaction '%.*s'",
                     (int)(name->value_len > 200 ? 200 : name->value_len), name->value);
    return tx;
}

/* Reports a failed txn_add_*(); returns 0 when rc is. */
static int tx_check(struct session *s, const struct stomp_frame *f, int rc)
{
    if (rc == TXN_ERR_FULL) {
        s->broker->stats.limit_hits[LIMIT_TX_FRAMES]++;
        session_fail(s, f, WS_CLOSE_POLICY,
                     "transaction holds too many frames (limits.max_tx_frames = %zu)",
                     s->broker->cfg.max_tx_frames);
    } else if (rc != 0)
        session_fail(s, f, WS_CLOSE_INTERNAL_ERROR, "out of memory");
    return rc;
}

/*
 * May this client read (SUBSCRIBE) or write (SEND to) dest? Temporary queues are the client's
 * own, and a /reply-queue/ name is a capability handed out in reply-to: neither is checked.
 * /user/ destinations need a login; reading them is not checked (a session subscribes only to
 * its own: resolve_user_route()), writing them is. Sends an ERROR naming the destination and the
 * verb when not.
 */
static bool permitted(struct session *s, const struct stomp_frame *f, enum auth_verb verb,
                      const struct stomp_header *dest)
{
    enum dest_kind kind = destination_kind(dest->value, dest->value_len);
    if (kind == DEST_USER && s->identity.user[0] == '\0') {
        s->broker->stats.permission_denials++;
        session_fail(s, f, WS_CLOSE_POLICY,
                     "permission denied: anonymous sessions cannot use /user/ destinations "
                     "(CONNECT with a login or a token)");
        return false;
    }
    /* A malformed /user/ name is refused by resolve_route(), with the form it should have. */
    if (kind == DEST_TEMP_QUEUE || kind == DEST_REPLY_QUEUE ||
        (kind == DEST_USER &&
         (verb == AUTH_READ || destination_user_parse(dest->value, dest->value_len, NULL) != 0)) ||
        security_allows(&s->broker->security, &s->identity, verb, dest->value, dest->value_len))
        return true;
    s->broker->stats.permission_denials++;
    log_info(s->conn->id, "user '%s' may not %s %.*s", s->identity.user,
             verb == AUTH_READ ? "read" : "write", (int)dest->value_len, dest->value);
    session_fail(s, f, WS_CLOSE_POLICY, "permission denied: %s %.*s",
                 verb == AUTH_READ ? "cannot read (SUBSCRIBE to)" : "cannot write (SEND to)",
                 (int)(dest->value_len > 200 ? 200 : dest->value_len), dest->value);
    return false;
}

static void throttle_end_cb(evutil_socket_t fd, short what, void *arg)
{
    struct session *s = arg;
    (void)fd;
    (void)what;
    s->throttled = false;
    resume_unless_held(s); /* a full queue may still hold it */
}

/*
 * limits.publish_rate_action = throttle: the SEND that found the bucket empty goes in, and s is
 * not read again until the bucket holds a token (TCP pushes back on the client; the frames it
 * sent meanwhile wait in the socket and go in, in order, afterwards). Nothing is refused.
 */
static void throttle(struct session *s)
{
    if (s->throttled)
        return;
    if (s->throttle_timer == NULL &&
        (s->throttle_timer = evtimer_new(s->broker->base, throttle_end_cb, s)) == NULL) {
        log_error(s->conn->id, "out of memory: publisher not throttled");
        return;
    }
    uint64_t wait = token_bucket_wait_ms(&s->publish_tokens, broker_now_ms(s->broker));
    s->throttled = true;
    arm(s->throttle_timer, wait > 0 ? (unsigned)wait : 1);
    conn_pause_reading(s->conn);
}

/* A SEND past limits.publish_rate: true when it may go on (throttle), false after an ERROR. */
static bool over_publish_rate(struct session *s, const struct stomp_frame *f)
{
    const struct config *cfg = &s->broker->cfg;
    s->broker->stats.limit_hits[LIMIT_PUBLISH_RATE]++;
    if (strcmp(cfg->publish_rate_action, "throttle") == 0) {
        throttle(s);
        return true;
    }
    session_fail(s, f, WS_CLOSE_POLICY,
                 "publish rate exceeded (limits.publish_rate = %zu per second, "
                 "limits.publish_burst = %zu)",
                 cfg->publish_rate, cfg->publish_burst);
    return false;
}

static void on_send(struct session *s, const struct stomp_frame *f)
{
    if (!token_bucket_take(&s->publish_tokens, broker_now_ms(s->broker)) &&
        !over_publish_rate(s, f))
        return;
    const struct stomp_header *dest = find(f, "destination");
    if (token_refresh_is_reserved(dest->value, dest->value_len)) {
        if (token_refresh_is_destination(dest->value, dest->value_len))
            on_token_send(s, f);
        else
            session_fail(s, f, WS_CLOSE_POLICY, "only the broker sends to a token destination");
        return;
    }
    if (!permitted(s, f, AUTH_WRITE, dest))
        return;
    char route[SESSION_DESTINATION_MAX + 1];
    bool create;
    size_t route_len = resolve_route(s, f, dest, false, route, sizeof(route), &create);
    if (route_len == 0)
        return;

    /* reply-to:/temp-queue/NAME becomes the private queue others can answer to. */
    char reply_route[SESSION_DESTINATION_MAX + 1];
    const char *reply_to = NULL;
    const struct stomp_header *reply = find(f, "reply-to");
    if (reply != NULL && destination_kind(reply->value, reply->value_len) == DEST_TEMP_QUEUE) {
        if (resolve_temp_queue(s, reply->value, reply->value_len, reply_route,
                               sizeof(reply_route)) == 0) {
            session_fail(s, f, WS_CLOSE_INTERNAL_ERROR, "cannot create temporary queue");
            return;
        }
        reply_to = reply_route;
    }

    struct txn *tx = NULL;
    if (find(f, "transaction") != NULL && (tx = find_tx(s, f)) == NULL)
        return;
    struct message *msg = message_from_send(f, route, route_len, reply_to);
    if (msg == NULL) {
        session_fail(s, f, WS_CLOSE_INTERNAL_ERROR, "out of memory");
        return;
    }
    int rc = tx != NULL ? tx_check(s, f, txn_add_send(tx, msg, route, create))
                        : route_send(s, f, msg, route, route_len, create);
    message_unref(msg);
    if (rc == 0)
        send_receipt(s, f);
}

static int parse_ack_mode(const struct stomp_header *h, enum ack_mode *mode)
{
    *mode = ACK_AUTO;
    if (h == NULL || stomp_header_is(h, "auto"))
        return 0;
    if (stomp_header_is(h, "client")) {
        *mode = ACK_CLIENT;
        return 0;
    }
    if (stomp_header_is(h, "client-individual")) {
        *mode = ACK_CLIENT_INDIVIDUAL;
        return 0;
    }
    return -1;
}

/* prefetch-count header, else the configured default; -1 when malformed. */
static long parse_prefetch(struct session *s, const struct stomp_frame *f)
{
    const struct stomp_header *h = find(f, "prefetch-count");
    if (h == NULL)
        return (long)s->broker->cfg.queue_prefetch;
    char text[24];
    if (h->value_len == 0 || h->value_len >= sizeof(text))
        return -1;
    memcpy(text, h->value, h->value_len);
    text[h->value_len] = '\0';
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0)
        return -1;
    return v;
}

/* The subscription id: the id header, or in 1.0 the destination when there is none. */
static const struct stomp_header *subscription_id(const struct stomp_frame *f)
{
    const struct stomp_header *id = find(f, "id");
    return id != NULL ? id : find(f, "destination");
}

static struct subscription *new_subscription(struct session *s, const struct stomp_header *id,
                                             const struct stomp_header *dest, enum ack_mode ack,
                                             long prefetch)
{
    /* Process-wide (several event loops subscribe): atomic, relaxed as only uniqueness counts. */
    static _Atomic uint64_t next_serial = 1;
    struct subscription *sub = calloc(1, sizeof(*sub));
    if (sub == NULL)
        return NULL;
    sub->session = s;
    s->broker->stats.subscriptions++; /* until free_subscription(), on every path */
    sub->id = dup_value(id);
    sub->destination = dup_value(dest);
    sub->destination_len = dest->value_len;
    sub->ack = ack;
    sub->prefetch = (size_t)prefetch;
    sub->serial = atomic_fetch_add_explicit(&next_serial, 1, memory_order_relaxed);
    sub->session_unacked = &s->unacked;
    sub->id_utf8 = ws_utf8_valid((const uint8_t *)id->value, id->value_len) &&
                   ws_utf8_valid((const uint8_t *)dest->value, dest->value_len);
    if (sub->id == NULL || sub->destination == NULL ||
        !encode_subscription_lines(sub, s->version)) {
        free_subscription(sub);
        return NULL;
    }
    return sub;
}

/*
 * x-stream-offset and x-stream-epoch of a SUBSCRIBE to a /topic/ route: 1 when history is asked
 * for (req filled in), 0 when not, -1 after an ERROR naming the header.
 */
static int history_asked(struct session *s, const struct stomp_frame *f, const char *route,
                         size_t route_len, struct history_request *req)
{
    const struct stomp_header *offset = find(f, "x-stream-offset");
    const struct stomp_header *epoch = find(f, "x-stream-epoch");
    if ((offset == NULL && epoch == NULL) || destination_kind(route, route_len) != DEST_TOPIC)
        return 0; /* queues are untouched */
    int rc = history_parse_request(
        offset != NULL ? offset->value : NULL, offset != NULL ? offset->value_len : 0,
        epoch != NULL ? epoch->value : NULL, epoch != NULL ? epoch->value_len : 0, req);
    if (rc == HISTORY_HEADER_BAD_OFFSET) {
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR,
                     "invalid x-stream-offset header: expected next, last, first, offset=N or "
                     "timestamp=T");
        return -1;
    }
    if (rc == HISTORY_HEADER_BAD_EPOCH) {
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR,
                     "invalid x-stream-epoch header: expected the hex digits of a MESSAGE's "
                     "x-stream-epoch");
        return -1;
    }
    if (req->from == HISTORY_OFFSET && destination_is_wildcard(route, route_len)) {
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR,
                     "x-stream-offset: offset=N needs an exact destination, not a wildcard");
        return -1;
    }
    return req->from != HISTORY_NEXT ? 1 : 0;
}

/* The replay's RECEIPT is out and its messages are delivered: the frames after it go on. */
static void replay_receipt_sent_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct session *s = arg;
    if (s->replays_waited > 0 || !conn_is_open(s->conn))
        return;
    feed_held_bytes(s);
    resume_unless_held(s);
}

/* A replay answered later with a RECEIPT: stop parsing until session_replay_receipt(). */
static int wait_for_replay_receipt(struct session *s)
{
    if (s->resume_event == NULL &&
        (s->resume_event = event_new(s->broker->base, -1, 0, replay_receipt_sent_cb, s)) == NULL)
        return 0; /* out of memory: the RECEIPT may come after a later frame's, nothing worse */
    s->replays_waited++;
    conn_pause_reading(s->conn);
    return 0;
}

/*
 * The replay of a subscription already in the router: the snapshot, the RECEIPT with
 * x-stream-recovered, the retained messages, then live. With several loops a live copy of a
 * replayed message may still be on its way here: the marks make the subscription skip it. A
 * backend that keeps the history (a cluster: Redis) answers later instead, through
 * publish_replay_done(), and the subscription holds its live messages until then.
 * Returns 0, or -1 when out of memory.
 */
static int replay_history(struct session *s, const struct stomp_frame *f, struct subscription *sub,
                          const char *route, size_t route_len, const struct history_request *req)
{
    struct broker *b = s->broker;
    const struct stomp_header *receipt = find(f, "receipt");
    int started =
        publish_replay(b, sub, route, route_len, destination_is_wildcard(route, route_len), req,
                       receipt ? receipt->value : NULL, receipt ? receipt->value_len : 0);
    if (started == 0 && receipt != NULL)
        return wait_for_replay_receipt(s);
    if (started <= 0)
        return started; /* the backend answers later (publish_replay_done()) */
    struct history_replay replay;
    if (history_replay(b->history, route, route_len, destination_is_wildcard(route, route_len), req,
                       broker_wall_ms(), &replay) != 0) {
        history_replay_reset(&replay);
        return -1;
    }
    if (b->inboxes != NULL && replay.marks.count > 0) {
        sub->stream_marks = malloc(sizeof(*sub->stream_marks));
        if (sub->stream_marks == NULL) {
            history_replay_reset(&replay);
            return -1;
        }
        *sub->stream_marks = replay.marks; /* moved: the table is the subscription's now */
        dict_init(&replay.marks);
    }
    /* At once, not behind unconfirmed queue appends: those exist only on a cluster node, whose
     * backend keeps the history (publish_replay() above). */
    if (receipt != NULL)
        write_receipt_with(s, receipt->value, receipt->value_len, &replay.recovered);
    for (size_t i = 0; i < replay.count; i++) {
        if (b->router.ops.deliver(sub, replay.msgs[i], false) == 0)
            b->router.stats.delivered++;
        else
            b->router.stats.dropped++;
    }
    history_replay_reset(&replay);
    return 0;
}

/*
 * The route of a SUBSCRIBE to /presence/topic/NAME: the name itself, when presence.pattern
 * tracks /topic/NAME. Returns the length, or 0 after an ERROR naming why not.
 */
static size_t resolve_presence_route(struct session *s, const struct stomp_frame *f,
                                     const struct stomp_header *dest, char *out, size_t cap)
{
    size_t prefix = strlen(PRESENCE_PREFIX);
    int shown = (int)(dest->value_len > 200 ? 200 : dest->value_len);
    if (dest->value_len >= cap) { /* a length problem, whether or not the name is tracked */
        fail_destination_too_long(s, f, dest);
        return 0;
    }
    if (!presence_tracks(s->broker->presence, dest->value + prefix, dest->value_len - prefix)) {
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR,
                     "no presence events for '%.*s': /presence/topic/NAME needs an exact /topic/ "
                     "name that a presence.pattern (--presence) matches",
                     shown, dest->value);
        return 0;
    }
    memcpy(out, dest->value, dest->value_len);
    out[dest->value_len] = '\0';
    return dest->value_len;
}

static void on_subscribe(struct session *s, const struct stomp_frame *f)
{
    const struct stomp_header *dest = find(f, "destination");
    const struct stomp_header *id = subscription_id(f);
    /* presence: reading /presence/topic/NAME is reading /topic/NAME */
    bool presence_events = presence_is_events_name(dest->value, dest->value_len);
    struct stomp_header underlying = *dest;
    if (presence_events) {
        underlying.value += strlen(PRESENCE_PREFIX);
        underlying.value_len -= strlen(PRESENCE_PREFIX);
    }
    if (!permitted(s, f, AUTH_READ, &underlying))
        return;
    if (dict_get(&s->subs, id->value, id->value_len) != NULL) {
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR, "subscription id '%.*s' is already in use",
                     (int)(id->value_len > 200 ? 200 : id->value_len), id->value);
        return;
    }
    if (s->subs.count >= s->broker->cfg.max_subscriptions) {
        s->broker->stats.limit_hits[LIMIT_SUBSCRIPTIONS]++;
        session_fail(s, f, WS_CLOSE_POLICY,
                     "too many subscriptions (limits.max_subscriptions = %zu)",
                     s->broker->cfg.max_subscriptions);
        return;
    }
    enum ack_mode ack;
    if (parse_ack_mode(find(f, "ack"), &ack) != 0) {
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR,
                     "invalid ack header: expected auto, client or client-individual");
        return;
    }
    long prefetch = parse_prefetch(s, f);
    if (prefetch < 0) {
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR, "invalid prefetch-count header");
        return;
    }
    char route[SESSION_DESTINATION_MAX + 1];
    bool create;
    size_t route_len = presence_events
                           ? resolve_presence_route(s, f, dest, route, sizeof(route))
                           : resolve_route(s, f, dest, true, route, sizeof(route), &create);
    if (route_len == 0)
        return;
    struct history_request req;
    int history = history_asked(s, f, route, route_len, &req);
    if (history < 0)
        return;
    struct subscription *sub = new_subscription(s, id, dest, ack, prefetch);
    if (sub != NULL)
        sub->own_destination = destination_kind(route, route_len) == DEST_USER;
    if (sub == NULL || dict_set(&s->subs, id->value, id->value_len, sub) != 0) {
        if (sub != NULL)
            free_subscription(sub);
        session_fail(s, f, WS_CLOSE_INTERNAL_ERROR, "out of memory");
        return;
    }
    /* Receipt first: the subscribe may deliver waiting queue messages at once. A topic
     * replay's receipt says whether it recovered, so it comes after the snapshot. */
    if (history == 0)
        send_receipt(s, f);
    if ((presence_events ? presence_follow(s->broker, sub, route, route_len)
                         : router_subscribe(&s->broker->router, sub, route, route_len)) != 0) {
        dict_remove(&s->subs, id->value, id->value_len);
        free_subscription(sub);
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR, "cannot subscribe to %s", route);
        return;
    }
    if (s->broker->presence != NULL && !presence_events)
        presence_subscribed(s->broker, sub, route, route_len, s->identity.user);
    if (history > 0 && replay_history(s, f, sub, route, route_len, &req) != 0)
        session_fail(s, f, WS_CLOSE_INTERNAL_ERROR, "out of memory");
    /* Subscribed after its token's warning went out (and before the end): it comes at once. */
    if (s->token_refresh.warned && token_refresh_in_window(s->identity.expires_at, broker_wall_ms(),
                                                           (unsigned)s->broker->cfg.refresh_warn_s))
        token_refresh_warn(&s->subs, sub, s->identity.expires_at, broker_wall_ms());
}

static void on_unsubscribe(struct session *s, const struct stomp_frame *f)
{
    const struct stomp_header *id = subscription_id(f);
    struct subscription *sub = dict_remove(&s->subs, id->value, id->value_len);
    if (sub == NULL) {
        log_debug(s->conn->id, "UNSUBSCRIBE of unknown id '%.*s' ignored", (int)id->value_len,
                  id->value);
    } else {
        router_unsubscribe(&s->broker->router, sub);
        free_subscription(sub);
    }
    send_receipt(s, f);
}

/* Applies an ACK/NACK to whichever queue subscription holds the message. */
static void apply_ack(struct session *s, const char *msg_id, size_t id_len, const char *sub_id,
                      bool nack)
{
    struct queues *qs = &s->broker->router.queues;
    if (sub_id != NULL) {
        struct subscription *sub = dict_get(&s->subs, sub_id, strlen(sub_id));
        if (sub != NULL && sub->target_kind == SUB_TARGET_QUEUE)
            queue_ack(qs, sub, msg_id, id_len, nack);
        return;
    }
    size_t bucket;
    for (struct dict_entry *e = dict_first(&s->subs, &bucket); e != NULL;
         e = dict_next(&s->subs, &bucket, e)) {
        struct subscription *sub = e->value;
        if (sub->target_kind == SUB_TARGET_QUEUE && sub->unacked_count > 0 &&
            queue_ack(qs, sub, msg_id, id_len, nack) == 0)
            return;
    }
    /* Unknown ids (topic messages, double acks) are harmless: nothing to do. */
}

static void on_ack(struct session *s, const struct stomp_frame *f, bool nack)
{
    const struct stomp_header *id =
        s->version >= STOMP_V1_2 ? find(f, "id") : find(f, "message-id");
    const struct stomp_header *sub = s->version == STOMP_V1_1 ? find(f, "subscription") : NULL;
    struct txn *tx = NULL;
    if (find(f, "transaction") != NULL && (tx = find_tx(s, f)) == NULL)
        return;
    if (tx != NULL) {
        int rc = txn_add_ack(tx, id->value, id->value_len, sub ? sub->value : NULL,
                             sub ? sub->value_len : 0, nack);
        if (tx_check(s, f, rc) == 0)
            send_receipt(s, f);
        return;
    }
    char *sub_id = sub != NULL ? dup_value(sub) : NULL;
    apply_ack(s, id->value, id->value_len, sub_id, nack);
    free(sub_id);
    send_receipt(s, f);
}

static void on_begin(struct session *s, const struct stomp_frame *f)
{
    const struct stomp_header *name = find(f, "transaction");
    if (dict_get(&s->transactions, name->value, name->value_len) != NULL) {
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR, "transaction '%.*s' already begun",
                     (int)(name->value_len > 200 ? 200 : name->value_len), name->value);
        return;
    }
    if (s->transactions.count >= s->broker->cfg.max_transactions) {
        s->broker->stats.limit_hits[LIMIT_TRANSACTIONS]++;
        session_fail(s, f, WS_CLOSE_POLICY,
                     "too many open transactions (limits.max_transactions = %zu)",
                     s->broker->cfg.max_transactions);
        return;
    }
    struct txn *tx = txn_new(s->broker->cfg.max_tx_frames);
    if (tx == NULL || dict_set(&s->transactions, name->value, name->value_len, tx) != 0) {
        txn_free(tx);
        session_fail(s, f, WS_CLOSE_INTERNAL_ERROR, "out of memory");
        return;
    }
    send_receipt(s, f);
}

static void on_commit_or_abort(struct session *s, const struct stomp_frame *f, bool commit)
{
    struct txn *tx = find_tx(s, f);
    if (tx == NULL)
        return;
    const struct stomp_header *name = find(f, "transaction");
    dict_remove(&s->transactions, name->value, name->value_len);
    int rc = 0;
    for (struct txn_op *op = tx->head; commit && op != NULL && rc == 0; op = op->next) {
        if (op->msg != NULL)
            rc = route_send(s, f, op->msg, op->route, strlen(op->route), op->create_queue);
        else
            apply_ack(s, op->ack_id, strlen(op->ack_id), op->sub_id, op->nack);
    }
    txn_free(tx);
    if (rc == 0)
        send_receipt(s, f);
}

static void on_disconnect(struct session *s, const struct stomp_frame *f)
{
    send_receipt(s, f);
    if (s->receipts_head != NULL)
        s->close_after_receipts = true; /* once Redis has stored what the client sent */
    else
        conn_close_gracefully(s->conn, WS_CLOSE_NORMAL, "disconnect");
}

void session_append_done(struct session *s, const char *error)
{
    s->appends_confirmed++;
    if (error != NULL) {
        session_fail(s, NULL, WS_CLOSE_INTERNAL_ERROR, "a queue message was not stored: Redis: %s",
                     error);
        return;
    }
    while (s->receipts_head != NULL && s->receipts_head->after <= s->appends_confirmed) {
        struct deferred_receipt *d = s->receipts_head;
        s->receipts_head = d->next;
        if (s->receipts_head == NULL)
            s->receipts_tail = NULL;
        write_receipt(s, d->id, d->id_len);
        free(d);
    }
    if (s->close_after_receipts && s->receipts_head == NULL)
        conn_close_gracefully(s->conn, WS_CLOSE_NORMAL, "disconnect");
}

/* ---- dispatch ------------------------------------------------------------------------------- */

static void handle_frame(struct session *s, const struct stomp_frame *f)
{
    s->broker->stats.frames_in++;
    if (s->close_after_receipts)
        return; /* after DISCONNECT: nothing more is read */
    if (f->command == STOMP_CMD_CONNECT || f->command == STOMP_CMD_STOMP) {
        on_connect(s, f);
        return;
    }
    if (!s->connected) {
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR, "expected CONNECT or STOMP, got %s",
                     stomp_command_name(f->command));
        return;
    }
    const char *problem = NULL;
    if (stomp_frame_validate(f, s->version, &problem) != 0) {
        s->broker->stats.protocol_errors++;
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR, "%s", problem ? problem : "invalid frame");
        return;
    }
    switch (f->command) {
    case STOMP_CMD_SEND:
        on_send(s, f);
        break;
    case STOMP_CMD_SUBSCRIBE:
        on_subscribe(s, f);
        break;
    case STOMP_CMD_UNSUBSCRIBE:
        on_unsubscribe(s, f);
        break;
    case STOMP_CMD_ACK:
        on_ack(s, f, false);
        break;
    case STOMP_CMD_NACK:
        on_ack(s, f, true);
        break;
    case STOMP_CMD_BEGIN:
        on_begin(s, f);
        break;
    case STOMP_CMD_COMMIT:
        on_commit_or_abort(s, f, true);
        break;
    case STOMP_CMD_ABORT:
        on_commit_or_abort(s, f, false);
        break;
    case STOMP_CMD_DISCONNECT:
        on_disconnect(s, f);
        break;
    default:
        session_fail(s, f, WS_CLOSE_PROTOCOL_ERROR, "%s is a server frame",
                     stomp_command_name(f->command));
        break;
    }
}

static uint16_t close_code_for_parse_error(int err)
{
    switch (err) {
    case STOMP_ERR_TOO_MANY_HEADERS:
    case STOMP_ERR_HEADER_LINE_TOO_LONG:
    case STOMP_ERR_HEADERS_TOO_LARGE:
    case STOMP_ERR_BODY_TOO_LARGE:
        return WS_CLOSE_TOO_BIG;
    case STOMP_ERR_NOMEM:
        return WS_CLOSE_INTERNAL_ERROR;
    default:
        return WS_CLOSE_PROTOCOL_ERROR;
    }
}

/* Authenticating over WebSocket: the rest of the message that held the CONNECT waits here (the
 * connection's input holds only the messages after it). -1 after an ERROR. */
static int hold_bytes(struct session *s, const char *data, size_t len)
{
    char *held = realloc(s->held_bytes, s->held_len + len);
    if (held == NULL) {
        session_fail(s, NULL, WS_CLOSE_INTERNAL_ERROR, "out of memory");
        return -1;
    }
    memcpy(held + s->held_len, data, len);
    s->held_bytes = held;
    s->held_len += len;
    return 0;
}

size_t session_feed(struct session *s, const char *data, size_t len)
{
    size_t total = len;
    bool may_stop = s->conn->transport == CONN_TCP;
    while (len > 0 && conn_is_open(s->conn) && !s->auth_failed && !parsing_stopped(s) &&
           !(may_stop && reading_held(s))) {
        struct stomp_frame frame;
        enum stomp_event ev;
        ssize_t n = stomp_parser_feed(s->parser, data, len, &frame, &ev);
        if (n < 0) {
            uint16_t code = close_code_for_parse_error((int)n);
            if (code == WS_CLOSE_TOO_BIG)
                s->broker->stats.limit_hits[LIMIT_STOMP_FRAME]++;
            else
                s->broker->stats.protocol_errors++;
            fail_on_bytes(s, data, len, code, stomp_parser_error_message(s->parser));
            return total;
        }
        data += n;
        len -= (size_t)n;
        if (ev == STOMP_EVENT_FRAME)
            handle_frame(s, &frame);
        else if (ev == STOMP_EVENT_NONE && n == 0)
            break;
    }
    /* Most connections sit idle between frames: they should not hold a frame's buffers. */
    stomp_parser_shrink(s->parser);
    if (parsing_stopped(s) && !may_stop && len > 0 && hold_bytes(s, data, len) != 0)
        return total;
    return may_stop && reading_held(s) ? total - len : total; /* the rest waits its turn */
}

/* ---- delivery ------------------------------------------------------------------------------- */

/*
 * Queue flow control: a consumer takes more only while its connection drains and, for client
 * acks, while the connection holds fewer than limits.max_unacked messages (past it, dispatch to
 * the connection waits for ACKs, as a prefetch window over all its subscriptions would).
 */
bool session_writable(const struct subscription *sub)
{
    struct session *s = sub->session;
    const struct conn *c = s->conn;
    if (!conn_is_open(c) || conn_outbound(c) >= c->broker->cfg.outbound_high_water)
        return false;
    if (sub->ack != ACK_AUTO && s->unacked >= c->broker->cfg.max_unacked) {
        if (s->unacked_limit_hits++ == 0) {
            c->broker->stats.limit_hits[LIMIT_UNACKED]++;
            log_info(c->id, "%zu unacked messages: dispatch waits for ACKs (limits.max_unacked)",
                     s->unacked);
        }
        return false;
    }
    return true;
}

/* Whether a queue message given to this session would be lost with its unwritten output: an
 * auto-ack delivery is settled once queued (a client-ack one goes back to its queue at close). */
static bool holds_settled_queue_messages(struct session *s)
{
    size_t bucket;
    for (struct dict_entry *e = dict_first(&s->subs, &bucket); e != NULL;
         e = dict_next(&s->subs, &bucket, e)) {
        const struct subscription *sub = e->value;
        if (sub->target_kind == SUB_TARGET_QUEUE && sub->ack == ACK_AUTO)
            return true;
    }
    return false;
}

/*
 * A slow consumer's output is full: its ERROR would wait behind a buffer it may never read
 * before the close deadline. The queued topic messages were going to be lost with the
 * connection anyway, so they go first and the ERROR is next in line.
 */
static void make_room_for_error(struct session *s)
{
    if (holds_settled_queue_messages(s))
        return; /* never lose an accepted message: the ERROR waits its turn */
    size_t dropped = conn_drop_queued(s->conn);
    if (dropped > 0)
        log_info(s->conn->id, "slow consumer: %zu queued bytes dropped to send the ERROR", dropped);
}

/* Topic deliveries past the high-water mark are dropped; too many in a row ends the session. */
static int drop_for_slow_consumer(struct session *s)
{
    s->dropped++;
    s->broker->stats.slow_consumer_drops++;
    s->consecutive_drops++;
    /* A consumer hovering at the mark drops and recovers all the time: one line per 10 s. */
    uint64_t now = broker_now_ms(s->broker);
    if (s->last_drop_log_ms == 0 || now - s->last_drop_log_ms >= 10000) {
        s->last_drop_log_ms = now;
        log_warn(s->conn->id,
                 "slow consumer %s: output over limits.outbound_high_water (%zu bytes), dropping "
                 "topic messages (%" PRIu64 " so far)",
                 s->conn->peer, s->broker->cfg.outbound_high_water, s->dropped);
    }
    if (s->consecutive_drops > s->broker->cfg.slow_consumer_max_drops) {
        s->broker->stats.slow_consumer_disconnects++;
        s->broker->stats.limit_hits[LIMIT_SLOW_CONSUMER]++;
        make_room_for_error(s);
        session_fail(s, NULL, WS_CLOSE_POLICY,
                     "slow consumer: %zu messages dropped in a row over "
                     "limits.outbound_high_water (limits.slow_consumer_max_drops = %zu)",
                     s->consecutive_drops, s->broker->cfg.slow_consumer_max_drops);
    }
    return -1;
}

int session_deliver(struct subscription *sub, struct message *msg, bool redelivered)
{
    struct session *s = sub->session;
    struct conn *c = s->conn;
    if (!conn_is_open(c))
        return -1;
    bool queue = sub->target_kind == SUB_TARGET_QUEUE;
    if (!queue && conn_outbound(c) >= s->broker->cfg.outbound_high_water)
        return drop_for_slow_consumer(s);
    s->consecutive_drops = 0;
    if (s->sse != NULL)
        return sse_deliver(s->sse, msg);

    /* Only copies here: the escaped lines were made once per subscription and per message. */
    size_t shared_len, tail;
    const char *shared = message_encoded_head(msg, s->version, &shared_len, &tail);
    if (shared == NULL)
        return -1;
    size_t common_len = shared_len - tail; /* what every delivery ends with (conn_send_message) */
    struct head h;
    head_init(&h);
    head_raw(&h, "MESSAGE\n", 8);
    /* A queue consumer's or /user/ subscriber's destination is its own: a /temp-queue/ or
     * /user/queue/ name stays as it wrote it. */
    if (queue || sub->own_destination) {
        head_raw(&h, sub->lines, sub->lines_len);
        shared += tail;
        shared_len -= tail;
    } else {
        head_raw(&h, sub->lines, sub->id_line_len);
    }
    if (s->version >= STOMP_V1_2 && sub->ack != ACK_AUTO) {
        head_raw(&h, "ack:", 4);
        head_raw(&h, msg->id, strlen(msg->id));
        head_raw(&h, "\n", 1);
    }
    if (redelivered)
        head_raw(&h, "redelivered:true\n", 17);
    head_raw(&h, shared, shared_len);
    if (h.failed) {
        head_release(&h);
        return -1;
    }
    conn_send_message(c, h.p, h.len, common_len, msg, s->version, msg->utf8 && sub->id_utf8);
    head_release(&h);
    return 0;
}

void session_set_sse(struct session *s, struct sse_stream *st)
{
    s->sse = st;
}

void session_drained(struct session *s)
{
    size_t bucket;
    for (struct dict_entry *e = dict_first(&s->subs, &bucket); e != NULL;
         e = dict_next(&s->subs, &bucket, e)) {
        struct subscription *sub = e->value;
        if (sub->target_kind == SUB_TARGET_QUEUE)
            router_resume(&s->broker->router, sub);
    }
}

/* ---- admin API (issue #15): what GET /api/connections shows, what DELETE ends ------------- */

void session_admin_view(const struct session *s, struct session_admin_view *out)
{
    *out = (struct session_admin_view){.connected = s->connected && !s->auth_failed,
                                       .user = s->identity.user,
                                       .started_wall_ms = s->started_wall_ms,
                                       .subscriptions = s->subs.count};
}

void session_admin_each_destination(const struct session *s,
                                    void (*fn)(void *ctx, const char *dest, size_t len), void *ctx)
{
    size_t bucket;
    struct dict_entry *e;
    for (e = dict_first(&s->subs, &bucket); e != NULL; e = dict_next(&s->subs, &bucket, e)) {
        const struct subscription *sub = e->value;
        fn(ctx, sub->destination, sub->destination_len);
    }
}

void session_admin_kick(struct session *s)
{
    send_error(s, NULL, "", 0, WS_CLOSE_POLICY, "disconnected by administrator");
}
