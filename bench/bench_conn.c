/*
 * bench/bench_conn.c - one load-generator connection (see bench_conn.h).
 *
 * States: CONNECTING (non-blocking connect, waiting for the socket to become writable) ->
 * UPGRADING (ws: request sent, the 101 being read) -> STOMP (CONNECT sent, waiting for
 * CONNECTED) -> OPEN. A failure anywhere calls on_close once and the connection is gone.
 *
 * Redis-style freeing: every entry from the event loop counts itself in `busy`; a connection
 * closed or failed inside a callback is only marked `dead` and freed when the outermost entry
 * unwinds, so no code path touches freed memory.
 */
#include "bench/bench_conn.h"

#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "stomp/encode.h"
#include "stomp/parser.h"
#include "ws/deflate.h"
#include "ws/frame.h"
#include "ws/handshake.h"

/* One read() per wakeup, at most this much: every connection shares this buffer. */
#define READ_BUF_SIZE (256 * 1024)
/* An upgrade answer longer than this is not a broker we can talk to. */
#define HEAD_MAX WS_DEFAULT_MAX_HEADER_BYTES
/* Body bytes of an ERROR frame quoted in the close reason. */
#define ERROR_BODY_QUOTE 160

enum conn_state {
    CONN_CONNECTING,
    CONN_UPGRADING,
    CONN_STOMP,
    CONN_OPEN,
};

struct bench_conn {
    struct event_base *base;           /* borrowed: the worker's loop */
    const struct bench_target *target; /* borrowed: lives for the run */
    struct bench_conn_callbacks cb;    /* copy */
    void *arg;                         /* borrowed: handed to every callback */
    enum conn_state state;
    int fd;                         /* owned */
    struct event *read_ev;          /* owned: persistent, added once connected */
    struct event *write_ev;         /* owned: persistent, added while output waits or wanted */
    bool write_armed;               /* write_ev is added */
    struct evbuffer *out;           /* owned: bytes not yet taken by the kernel */
    struct evbuffer_iovec reserved; /* frame_begin's space until frame_end */
    uint8_t mask_key[4];            /* ws: the key of the frame being built */
    char *head;                     /* owned while UPGRADING: the answer's bytes so far */
    size_t head_len;
    char key[WS_KEY_LEN + 1];    /* ws: Sec-WebSocket-Key sent */
    struct ws_decoder ws;        /* ws: the broker's frames */
    struct stomp_parser *parser; /* owned */
    uint8_t *compressed;         /* owned: a compressed message's payload while it arrives */
    size_t compressed_len, compressed_cap;
    bool want_write;             /* call on_writable (see bench_conn_want_write) */
    size_t low_water;            /* ... while fewer bytes than this wait */
    unsigned busy;               /* entries from the loop under way */
    bool dead;                   /* failed or closed: free when busy drops to 0 */
};

static uint8_t read_buf[READ_BUF_SIZE];

/* This process's totals (bench_conn_bytes_read, bench_conn_compressed_messages). */
static uint64_t bytes_read, compressed_messages;

uint64_t bench_conn_bytes_read(void)
{
    return bytes_read;
}

uint64_t bench_conn_compressed_messages(void)
{
    return compressed_messages;
}

/* ---- masking keys and nonces: xorshift64*, seeded at first use ---- */

/* Zero until first use, which is always in a worker: the parent forks before any connection. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
    if (rng_state == 0) {
        if (getrandom(&rng_state, sizeof(rng_state), 0) != (ssize_t)sizeof(rng_state))
            rng_state = (uint64_t)getpid() * 0x9E3779B97F4A7C15u;
        rng_state |= 1;
    }
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545F4914F6CDD1Du;
}

/* ---- lifetime ---- */

static void conn_free(struct bench_conn *c)
{
    if (c->read_ev != NULL)
        event_free(c->read_ev);
    if (c->write_ev != NULL)
        event_free(c->write_ev);
    if (c->out != NULL)
        evbuffer_free(c->out);
    stomp_parser_free(c->parser);
    free(c->head);
    free(c->compressed);
    close(c->fd);
    free(c);
}

static void enter(struct bench_conn *c)
{
    c->busy++;
}

static void leave(struct bench_conn *c)
{
    if (--c->busy == 0 && c->dead)
        conn_free(c);
}

/* Reports why once; nothing is called back afterwards. */
static void fail(struct bench_conn *c, const char *why)
{
    if (c->dead)
        return;
    c->dead = true;
    event_del(c->read_ev);
    event_del(c->write_ev);
    enter(c);
    c->cb.on_close(c, why, c->arg);
    leave(c);
}

static void fail_errno(struct bench_conn *c, const char *what, int err)
{
    char why[160];
    snprintf(why, sizeof(why), "%s: %s", what, strerror(err));
    fail(c, why);
}

void bench_conn_close(struct bench_conn *c)
{
    if (c == NULL || c->dead)
        return;
    c->dead = true;
    event_del(c->read_ev);
    event_del(c->write_ev);
    enter(c);
    leave(c);
}

void bench_source_address(unsigned k, struct sockaddr_in *out)
{
    /* 254 usable host parts (1..254) per /24, so .0 and .255 never appear. */
    uint32_t block = (k / 254u) % (1u << 16);
    uint32_t host = 1 + k % 254u;
    memset(out, 0, sizeof(*out));
    out->sin_family = AF_INET;
    out->sin_addr.s_addr = htonl((127u << 24) | (block << 8) | host);
}

static int open_socket(const struct bench_target *t, const struct sockaddr_in *source, char *err,
                       size_t err_len)
{
    int fd = socket(t->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, err_len, "socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (source != NULL) {
        /* The port is picked at connect() for the whole 4-tuple, not per source address. */
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof(one));
        if (bind(fd, (const struct sockaddr *)source, sizeof(*source)) != 0) {
            snprintf(err, err_len, "bind to a loopback source address: %s", strerror(errno));
            close(fd);
            return -1;
        }
    }
    if (connect(fd, (const struct sockaddr *)&t->addr, t->addr_len) != 0 && errno != EINPROGRESS) {
        snprintf(err, err_len, "connect: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static void read_cb(evutil_socket_t fd, short what, void *arg);
static void write_cb(evutil_socket_t fd, short what, void *arg);

struct bench_conn *bench_conn_open(struct event_base *base, const struct bench_target *target,
                                   const struct sockaddr_in *source,
                                   const struct bench_conn_callbacks *cb, void *arg, char *err,
                                   size_t err_len)
{
    struct stomp_limits limits;
    stomp_limits_default(&limits);
    if (target->max_message > limits.max_body)
        limits.max_body = target->max_message;
    struct bench_conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        snprintf(err, err_len, "out of memory for a connection");
        return NULL;
    }
    c->fd = open_socket(target, source, err, err_len);
    if (c->fd < 0) {
        free(c);
        return NULL;
    }
    c->base = base;
    c->target = target;
    c->cb = *cb;
    c->arg = arg;
    c->read_ev = event_new(base, c->fd, EV_READ | EV_PERSIST, read_cb, c);
    c->write_ev = event_new(base, c->fd, EV_WRITE | EV_PERSIST, write_cb, c);
    c->out = evbuffer_new();
    c->parser = stomp_parser_new(&limits);
    struct ws_decoder_config wcfg = {.max_message_size = target->max_message,
                                     .expect_masked = false};
    ws_decoder_init(&c->ws, &wcfg);
    if (c->read_ev == NULL || c->write_ev == NULL || c->out == NULL || c->parser == NULL ||
        event_add(c->write_ev, NULL) != 0) {
        snprintf(err, err_len, "out of memory for a connection");
        c->dead = true;
        enter(c);
        leave(c);
        return NULL;
    }
    c->write_armed = true;
    return c;
}

/* ---- output ---- */

char *bench_conn_frame_begin(struct bench_conn *c, size_t len)
{
    if (c->target->websocket && c->state != CONN_UPGRADING) {
        uint8_t header[WS_FRAME_HEADER_MAX];
        uint64_t r = rng_next();
        memcpy(c->mask_key, &r, sizeof(c->mask_key));
        evbuffer_add(c->out, header,
                     ws_frame_header_encode(header, WS_OP_TEXT, true, len, c->mask_key));
    }
    if (evbuffer_reserve_space(c->out, (ev_ssize_t)len, &c->reserved, 1) != 1)
        return NULL;
    return c->reserved.iov_base;
}

void bench_conn_frame_end(struct bench_conn *c, char *payload, size_t len)
{
    if (c->target->websocket && c->state != CONN_UPGRADING)
        ws_mask((uint8_t *)payload, len, c->mask_key, 0);
    c->reserved.iov_len = len;
    evbuffer_commit_space(c->out, &c->reserved, 1);
}

void bench_conn_send_frame(struct bench_conn *c, const struct stomp_frame *f)
{
    size_t len = stomp_encode_frame(NULL, 0, STOMP_V1_2, f);
    char *p = bench_conn_frame_begin(c, len);
    if (p == NULL) {
        fail(c, "out of memory for an outbound frame");
        return;
    }
    stomp_encode_frame(p, len, STOMP_V1_2, f);
    bench_conn_frame_end(c, p, len);
}

/* A ws control frame (pong, close) with a payload of at most 125 bytes. */
static void send_control(struct bench_conn *c, enum ws_opcode op, const uint8_t *data, size_t len)
{
    uint8_t header[WS_FRAME_HEADER_MAX], payload[WS_CONTROL_PAYLOAD_MAX];
    uint64_t r = rng_next();
    memcpy(c->mask_key, &r, sizeof(c->mask_key));
    memcpy(payload, data, len);
    ws_mask(payload, len, c->mask_key, 0);
    evbuffer_add(c->out, header, ws_frame_header_encode(header, op, true, len, c->mask_key));
    evbuffer_add(c->out, payload, len);
}

static void update_write_event(struct bench_conn *c)
{
    bool need = evbuffer_get_length(c->out) > 0 || c->want_write;
    if (need == c->write_armed || c->dead)
        return;
    if (need)
        event_add(c->write_ev, NULL);
    else
        event_del(c->write_ev);
    c->write_armed = need;
}

/* One writev of what is queued; false (and failed) on a socket error. */
static bool write_some(struct bench_conn *c)
{
    if (evbuffer_get_length(c->out) == 0)
        return true;
    if (evbuffer_write(c->out, c->fd) < 0 && errno != EAGAIN && errno != EINTR) {
        fail_errno(c, "write", errno);
        return false;
    }
    return true;
}

void bench_conn_flush(struct bench_conn *c)
{
    if (c->dead || c->state == CONN_CONNECTING)
        return;
    enter(c);
    if (write_some(c))
        update_write_event(c);
    leave(c);
}

size_t bench_conn_pending(const struct bench_conn *c)
{
    return evbuffer_get_length(c->out);
}

void bench_conn_limit_sndbuf(struct bench_conn *c, size_t bytes)
{
    int size = bytes > INT_MAX / 2 ? INT_MAX / 2 : (int)bytes;
    setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

void bench_conn_want_write(struct bench_conn *c, bool on, size_t low_water)
{
    c->want_write = on;
    c->low_water = low_water;
    if (c->state != CONN_CONNECTING)
        update_write_event(c);
}

/* ---- STOMP ---- */

static void send_connect(struct bench_conn *c)
{
    const struct bench_target *t = c->target;
    struct stomp_header h[5];
    size_t n = 0;
    h[n++] = (struct stomp_header){"accept-version", 14, "1.2", 3};
    h[n++] = (struct stomp_header){"host", 4, t->stomp_host, strlen(t->stomp_host)};
    if (t->login != NULL)
        h[n++] = (struct stomp_header){"login", 5, t->login, strlen(t->login)};
    if (t->passcode != NULL)
        h[n++] = (struct stomp_header){"passcode", 8, t->passcode, strlen(t->passcode)};
    /* No heart-beats: an idle run of many minutes must not depend on our timers. */
    h[n++] = (struct stomp_header){"heart-beat", 10, "0,0", 3};
    struct stomp_frame f = {.command = STOMP_CMD_CONNECT, .headers = h, .header_count = n};
    c->state = CONN_STOMP;
    bench_conn_send_frame(c, &f);
}

/* "ERROR frame: <message header>: <start of the body>" */
static void on_error_frame(struct bench_conn *c, const struct stomp_frame *f)
{
    char why[400];
    const struct stomp_header *m = stomp_frame_header(f, "message");
    size_t body = f->body_len < ERROR_BODY_QUOTE ? f->body_len : ERROR_BODY_QUOTE;
    snprintf(why, sizeof(why), "ERROR frame: %.*s%s%.*s", m != NULL ? (int)m->value_len : 0,
             m != NULL ? m->value : "", body > 0 ? ": " : "", (int)body, f->body);
    for (char *p = why; *p != '\0'; p++)
        if ((unsigned char)*p < 0x20)
            *p = ' ';
    fail(c, why);
}

static void on_stomp_frame(struct bench_conn *c, const struct stomp_frame *f)
{
    if (f->command == STOMP_CMD_ERROR) {
        on_error_frame(c, f);
        return;
    }
    if (c->state == CONN_STOMP) {
        if (f->command != STOMP_CMD_CONNECTED) {
            fail(c, "the broker answered CONNECT with something other than CONNECTED");
            return;
        }
        const struct stomp_header *v = stomp_frame_header(f, "version");
        int version = v != NULL
                          ? stomp_negotiate_version(v->value, v->value_len, STOMP_VERSIONS_ALL)
                          : STOMP_V1_0;
        stomp_parser_set_version(c->parser, version > 0 ? (enum stomp_version)version : STOMP_V1_2);
        c->state = CONN_OPEN;
        c->cb.on_connected(c, c->arg);
        return;
    }
    c->cb.on_frame(c, f, c->arg);
}

static void feed_stomp(struct bench_conn *c, const char *data, size_t len)
{
    while (len > 0 && !c->dead) {
        struct stomp_frame f;
        enum stomp_event ev;
        ssize_t n = stomp_parser_feed(c->parser, data, len, &f, &ev);
        if (n < 0) {
            char why[160];
            snprintf(why, sizeof(why), "bad STOMP from the broker: %s",
                     stomp_parser_error_message(c->parser));
            fail(c, why);
            return;
        }
        data += n;
        len -= (size_t)n;
        if (ev == STOMP_EVENT_FRAME)
            on_stomp_frame(c, &f);
    }
}

/* ---- WebSocket ---- */

static void send_upgrade(struct bench_conn *c)
{
    uint8_t nonce[WS_KEY_NONCE_LEN];
    char request[BENCH_TARGET_MAX + BENCH_HOST_MAX + 512];
    for (size_t i = 0; i < sizeof(nonce); i += 8) {
        uint64_t r = rng_next();
        memcpy(nonce + i, &r, 8);
    }
    ws_client_key(nonce, c->key);
    struct ws_client_request req = {
        .host = c->target->host_header,
        .target = c->target->target,
        .key = c->key,
        .subprotocols = WS_SUBPROTOCOL_BIT(WS_SUBPROTOCOL_V12_STOMP),
        .extra_headers = c->target->deflate ? "Sec-WebSocket-Extensions: permessage-deflate; "
                                              "client_max_window_bits\r\n"
                                            : NULL};
    int n = ws_client_request(request, sizeof(request), &req);
    if (n < 0) {
        fail(c, "cannot build the WebSocket upgrade request (host or path not visible ASCII?)");
        return;
    }
    evbuffer_add(c->out, request, (size_t)n);
    c->state = CONN_UPGRADING;
}

static void on_ws_close(struct bench_conn *c, const struct ws_event *ev)
{
    char why[200];
    uint8_t payload[WS_CONTROL_PAYLOAD_MAX];
    size_t len = ws_close_payload_encode(payload, WS_CLOSE_NORMAL, NULL);
    send_control(c, WS_OP_CLOSE, payload, len);
    write_some(c);
    snprintf(why, sizeof(why), "the broker closed the WebSocket (%u%s%.*s)", ev->close_code,
             ev->len > 0 ? " " : "", (int)ev->len, (const char *)ev->data);
    fail(c, why);
}

/* The process's one inflate stream: the broker keeps no context between messages. */
static z_stream *inflater(void)
{
    static z_stream zs;
    static bool ready;
    if (!ready && ws_inflate_init(&zs) == 0)
        ready = true;
    return ready ? &zs : NULL;
}

static int inflated_to_stomp(void *arg, const uint8_t *data, size_t len)
{
    feed_stomp(arg, (const char *)data, len);
    return 0;
}

/*
 * One generator process stands for many clients, and a broker that compresses a fan-out once
 * sends each of them the same deflated bytes behind a few stored (uncompressed) blocks of their
 * own (docs/COMPRESSION.md). Each real client inflates its copy on its own machine; here the
 * copies would share two CPUs with the broker. So the part after the leading stored blocks is
 * inflated once and kept: it is reused when a later message carries the same bytes. A few parts
 * are kept (SHARED_PARTS, by a hash of their bytes), since a connection's backlog is read whole
 * before the next connection's and the same messages come round again. Sound for any sender: a
 * part is only kept when it inflates on its own (a reference into the stored prefix would fail
 * that), and the same bytes inflate to the same output.
 */
#define SHARED_PARTS 256
struct shared_part {
    uint8_t *deflated; /* owned: the bytes after the stored blocks, as received */
    size_t deflated_len;
    uint8_t *inflated; /* owned: what they inflate to */
    size_t inflated_len, inflated_cap;
    bool valid;
};

static struct shared_part shared_parts[SHARED_PARTS];

/* FNV-1a over the length and up to 32 bytes at each end (a message id, a stamp near the start
 * or the end of the body make two messages differ there). */
static size_t shared_slot(const uint8_t *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325u ^ len;
    for (size_t i = 0; i < len && i < 32; i++)
        h = (h ^ s[i]) * 0x100000001b3u;
    for (size_t i = len > 32 ? len - 32 : 0; i < len; i++)
        h = (h ^ s[i]) * 0x100000001b3u;
    return (size_t)(h % SHARED_PARTS);
}

static int keep_inflated(void *arg, const uint8_t *data, size_t len)
{
    struct shared_part *sp = arg;
    if (sp->inflated_cap - sp->inflated_len < len) {
        size_t cap = (sp->inflated_len + len) * 2;
        uint8_t *grown = realloc(sp->inflated, cap);
        if (grown == NULL)
            return -1;
        sp->inflated = grown;
        sp->inflated_cap = cap;
    }
    memcpy(sp->inflated + sp->inflated_len, data, len);
    sp->inflated_len += len;
    return 0;
}

/* Where the leading stored blocks of p end (0: none, or not well formed). */
static size_t stored_blocks_end(const uint8_t *p, size_t len)
{
    size_t pos = 0;
    while (len - pos >= 5 && p[pos] == 0x00) {
        size_t block = (size_t)p[pos + 1] | (size_t)p[pos + 2] << 8;
        size_t nblock = (size_t)p[pos + 3] | (size_t)p[pos + 4] << 8;
        if ((block ^ 0xFFFF) != nblock || len - pos - 5 < block)
            return 0;
        pos += 5 + block;
    }
    return pos;
}

/* The shared part s[0..len) inflated, from shared_parts or freshly; NULL if it does not stand
 * alone. */
static const struct shared_part *shared_inflated(const uint8_t *s, size_t len, size_t max,
                                                 z_stream *zs)
{
    struct shared_part *sp = &shared_parts[shared_slot(s, len)];
    if (sp->valid && sp->deflated_len == len && memcmp(sp->deflated, s, len) == 0)
        return sp;
    sp->valid = false;
    sp->inflated_len = 0;
    uint8_t *copy = realloc(sp->deflated, len > 0 ? len : 1);
    if (copy == NULL)
        return NULL;
    sp->deflated = copy;
    memcpy(sp->deflated, s, len);
    sp->deflated_len = len;
    if (ws_inflate_message(zs, s, len, max, keep_inflated, sp) < 0)
        return NULL;
    sp->valid = true;
    return sp;
}

/* A whole compressed message: the stored prefix as it is, then the shared part inflated. */
static void inflate_message(struct bench_conn *c, const uint8_t *p, size_t len)
{
    z_stream *zs = inflater();
    size_t prefix_end = stored_blocks_end(p, len);
    const struct shared_part *sp =
        zs != NULL ? shared_inflated(p + prefix_end, len - prefix_end, c->target->max_message, zs)
                   : NULL;
    if (sp != NULL) {
        for (size_t pos = 0; pos < prefix_end && !c->dead;) {
            size_t block = (size_t)p[pos + 1] | (size_t)p[pos + 2] << 8;
            feed_stomp(c, (const char *)p + pos + 5, block);
            pos += 5 + block;
        }
        if (!c->dead)
            feed_stomp(c, (const char *)sp->inflated, sp->inflated_len);
        return;
    }
    if (zs == NULL ||
        ws_inflate_message(zs, p, len, c->target->max_message, inflated_to_stomp, c) < 0)
        fail(c, "a compressed message from the broker does not inflate");
}

/* A chunk of a compressed message: kept until the message is whole, then inflated. */
static void feed_compressed(struct bench_conn *c, const struct ws_event *ev)
{
    compressed_messages += ev->message_end;
    if (ev->message_start && ev->message_end) { /* the common case: nothing to keep */
        inflate_message(c, ev->data, ev->len);
        return;
    }
    if (c->compressed_cap - c->compressed_len < ev->len) {
        size_t cap = c->compressed_len + ev->len + 4096;
        uint8_t *grown = realloc(c->compressed, cap);
        if (grown == NULL) {
            fail(c, "out of memory for a compressed message");
            return;
        }
        c->compressed = grown;
        c->compressed_cap = cap;
    }
    memcpy(c->compressed + c->compressed_len, ev->data, ev->len);
    c->compressed_len += ev->len;
    if (!ev->message_end)
        return;
    inflate_message(c, c->compressed, c->compressed_len);
    c->compressed_len = 0;
}

static void feed_ws(struct bench_conn *c, uint8_t *data, size_t len)
{
    while (len > 0 && !c->dead) {
        struct ws_event ev;
        ssize_t n = ws_decoder_decode(&c->ws, data, len, &ev);
        if (n < 0) {
            char why[160];
            snprintf(why, sizeof(why), "bad WebSocket frame from the broker: %s",
                     ws_error_message((int)n));
            fail(c, why);
            return;
        }
        data += n;
        len -= (size_t)n;
        if (ev.type == WS_EVENT_DATA && ev.compressed)
            feed_compressed(c, &ev);
        else if (ev.type == WS_EVENT_DATA)
            feed_stomp(c, (const char *)ev.data, ev.len);
        else if (ev.type == WS_EVENT_PING)
            send_control(c, WS_OP_PONG, ev.data, ev.len);
        else if (ev.type == WS_EVENT_CLOSE)
            on_ws_close(c, &ev);
    }
}

static void feed_open(struct bench_conn *c, uint8_t *data, size_t len)
{
    if (c->target->websocket)
        feed_ws(c, data, len);
    else
        feed_stomp(c, (const char *)data, len);
}

static void refused(struct bench_conn *c, const struct ws_http_response *r)
{
    char why[200];
    snprintf(why, sizeof(why), "the broker refused the WebSocket upgrade: HTTP %d %.*s", r->status,
             (int)r->reason.len, r->reason.ptr);
    fail(c, why);
}

/* The answer names permessage-deflate (the one extension --deflate offers). */
static bool answers_deflate(const struct ws_http_response *resp)
{
    for (size_t i = 0; i < resp->num_headers; i++) {
        const struct ws_http_header *h = &resp->headers[i];
        if (h->name.len == 24 && strncasecmp(h->name.ptr, "sec-websocket-extensions", 24) == 0)
            return h->value.len >= 18 && strncmp(h->value.ptr, "permessage-deflate", 18) == 0;
    }
    return false;
}

/* UPGRADING: gathers the answer's head; on a valid 101 feeds what followed it as frames. */
static void feed_upgrade(struct bench_conn *c, uint8_t *data, size_t len)
{
    if (c->head == NULL && (c->head = malloc(HEAD_MAX + 1)) == NULL) {
        fail(c, "out of memory for the upgrade answer");
        return;
    }
    size_t take = HEAD_MAX + 1 - c->head_len < len ? HEAD_MAX + 1 - c->head_len : len;
    memcpy(c->head + c->head_len, data, take);
    c->head_len += take;
    struct ws_http_response resp;
    int rc = ws_http_response_parse(&resp, c->head, c->head_len, HEAD_MAX);
    if (rc == WS_HTTP_INCOMPLETE)
        return;
    if (rc < 0) {
        fail(c, "the answer to the WebSocket upgrade is not an HTTP/1.1 head of at most 8 KiB");
        return;
    }
    if (resp.status != 101) {
        refused(c, &resp);
        return;
    }
    struct ws_client_upgrade up;
    /* With --deflate the broker may answer with the extension ws_client_response_check() does
     * not know: permessage-deflate, and then its frames may carry RSV1. */
    if (c->target->deflate && answers_deflate(&resp)) {
        resp.sec_websocket_extensions = false;
        struct ws_decoder_config cfg = c->ws.config;
        cfg.allow_compressed = true;
        ws_decoder_init(&c->ws, &cfg); /* nothing decoded yet: the frames follow the head */
    }
    if (ws_client_response_check(&resp, c->key, WS_SUBPROTOCOL_BIT(WS_SUBPROTOCOL_V12_STOMP),
                                 &up) != 0) {
        char why[200];
        snprintf(why, sizeof(why), "invalid WebSocket handshake: %s", up.message);
        fail(c, why);
        return;
    }
    send_connect(c);
    /* Frames may follow the head at once, in the head buffer and in the rest of data. */
    feed_open(c, (uint8_t *)c->head + rc, c->head_len - (size_t)rc);
    free(c->head);
    c->head = NULL;
    if (!c->dead)
        feed_open(c, data + take, len - take);
}

/* ---- event callbacks ---- */

static void consume(struct bench_conn *c, uint8_t *data, size_t len)
{
    if (c->state == CONN_UPGRADING)
        feed_upgrade(c, data, len);
    else
        feed_open(c, data, len);
}

static void read_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_conn *c = arg;
    enter(c);
    ssize_t n = read(fd, read_buf, sizeof(read_buf));
    if (n > 0)
        bytes_read += (uint64_t)n;
    if (n > 0)
        consume(c, read_buf, (size_t)n);
    else if (n == 0)
        fail(c, "the broker closed the connection");
    else if (errno != EAGAIN && errno != EINTR)
        fail_errno(c, "read", errno);
    if (!c->dead && write_some(c))
        update_write_event(c);
    leave(c);
}

/* CONNECTING: the socket became writable; the connect worked or failed. */
static void connected(struct bench_conn *c)
{
    int err = 0;
    socklen_t len = sizeof(err);
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0)
        err = errno;
    if (err != 0) {
        fail_errno(c, "connect", err);
        return;
    }
    if (event_add(c->read_ev, NULL) != 0) {
        fail(c, "cannot watch the socket for reading");
        return;
    }
    if (c->target->websocket)
        send_upgrade(c);
    else
        send_connect(c);
}

static void write_cb(evutil_socket_t fd, short what, void *arg)
{
    struct bench_conn *c = arg;
    enter(c);
    if (c->state == CONN_CONNECTING)
        connected(c);
    if (!c->dead && write_some(c) && c->want_write && c->state == CONN_OPEN &&
        evbuffer_get_length(c->out) < c->low_water) {
        c->cb.on_writable(c, c->arg);
        if (!c->dead)
            write_some(c);
    }
    if (!c->dead)
        update_write_event(c);
    leave(c);
}
