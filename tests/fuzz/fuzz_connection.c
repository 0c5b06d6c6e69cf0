/*
 * fuzz_connection.c - libFuzzer harness for whole connections: bytes in through the HTTP upgrade,
 * WebSocket frames and STOMP verbs, through the router to a second connection, bytes out.
 *
 * Each input gets a broker of its own (broker_new() with every listener off, broker_free() at the
 * end, so no state crosses inputs) and two clients, A and B, each on one end of an in-memory
 * bufferevent pair whose other end the broker runs as a connection (conn_attach()): the broker's
 * own wiring (server/loop.c) fills in the connection handler and the router's delivery ops, so
 * the bytes take the same seams as a socket's. Nothing
 * depends on the clock: limits.publish_rate and limits.connection_rate are 0, logins anonymous,
 * and every timer (handshake, CONNECT, heart-beats, closing) is seconds away.
 *
 * Input layout: byte 0 is the mode:
 *   bits 0-1  A's transport: 0 and 3 WebSocket, 1 STOMP over TCP, 2 plain HTTP (--http)
 *   bits 2-3  B's transport, the same way
 *   bit 4     server.outbound_frames = binary (else auto)
 *   bit 5     small limits (frame, header, body, subscription, transaction, unacked, queue and
 *             output limits a few bytes or items each, so inputs reach them), and
 *             auth.allow_origin set (an upgrade with another Origin gets 403)
 *   bit 6     broker_shutdown() before the clients leave
 *   bit 7     queue.overflow = reject (else block: a publisher that fills a queue is not read
 *             until it drains)
 * then chunks: ctl, len, [wsflags], payload[len]. len 255 is followed by a 16-bit big-endian
 * length; a payload cut short by the end of the input is sent as it is. ctl:
 *   bit 0     the client: A or B
 *   bit 1     hold: do not run the event loop after this chunk (the next one arrives with it)
 *   bits 2-3  0: write payload; 1: write payload as one WebSocket frame, masked with a fixed key,
 *             shaped by the wsflags byte (bits 0-3 opcode, bit 4 FIN clear, bit 5 RSV1 set, bit 6
 *             not masked); 2: write payload, then end of file (the client half-closes); 3: no
 *             payload, len is a read limit: 0 reads everything again, else the client stops
 *             reading once len * 16 bytes wait (a slow consumer)
 * In a payload, "$ID" stands for the message-id of the last MESSAGE that client got and "$RT"
 * for its reply-to: message ids count from the start of the process and reply queues are named
 * after random session ids, so an input could not spell them (the ACK/NACK and reply seeds do).
 *
 * The event loop runs (non-blocking, a few turns) after each chunk, and each reading client
 * checks what the broker sent as a real client would:
 * - WebSocket: an HTTP response head that ws_http_response_parse() reads; a 101 passes
 *   ws_client_response_check() against the key and subprotocols of the request the client wrote
 *   (and never on the plain HTTP transport); any other final answer has a Content-Length body
 *   and nothing follows it. After the 101, frames decode with ws/frame.c configured as a client
 *   (unmasked, RSV 0, known opcodes, control frames whole; text messages valid UTF-8); a text
 *   message is exactly a valid UTF-8 one in auto mode, none is in binary mode; no ping; a close
 *   frame carries a code and nothing follows it; the broker's end of file comes after a close.
 * - STOMP (in each WebSocket message, or the TCP stream): every frame parses with stomp/parser.c
 *   at the version the client negotiated, and each message is one frame or one heart-beat EOL.
 *   Only CONNECTED (once, before any MESSAGE or RECEIPT, naming the version the subprotocol
 *   fixed if one did), MESSAGE, RECEIPT and ERROR come, each with the headers
 *   stomp_frame_validate() asks for (MESSAGE: subscription and message-id in every version;
 *   ERROR: message); nothing follows an ERROR.
 * - GET /sse: a 200 without a Content-Length only answers a request for /sse, and is followed by
 *   lines of the fields the broker writes (data:, id:, retry:, comments, blank), never a CR.
 * - No byte arrives after the broker's end of file.
 * At the end the clients read everything and leave (end of file); every connection must be gone
 * within a bounded number of loop turns (conn_count 0), with no topic, wildcard, consumer or
 * temporary queue left in the router, and the session, subscription and unacked gauges of
 * /metrics are back to zero. broker_free() then frees the rest, and LeakSanitizer
 * reports any message, subscription or buffer still held. What does outlive an input is
 * process-wide by design: the message and subscription counters, the logger's peer table, and
 * the dict hash seed (set to a constant after broker_new(), so dict order is the same each run).
 */
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "broker/core/broker.h"
#include "server/loop.h"
#include "broker/base/config.h"
#include "broker/net/conn.h"
#include "broker/base/dict.h"
#include "broker/base/log.h"
#include "broker/core/queue.h"
#include "stomp/frame.h"
#include "stomp/parser.h"
#include "ws/deflate.h"
#include "ws/frame.h"
#include "ws/handshake.h"
#include "ws/utf8.h"
#include "tests/fuzz/fuzz.h"

#define MODE_BINARY   0x10
#define MODE_SMALL    0x20
#define MODE_SHUTDOWN 0x40
#define MODE_REJECT   0x80

#define CTL_CLIENT  0x01
#define CTL_HOLD    0x02
#define CTL_ACTION  0x0C
#define ACT_RAW     0x00
#define ACT_FRAME   0x04
#define ACT_EOF     0x08
#define ACT_READING 0x0C

#define WSF_OPCODE   0x0F
#define WSF_NO_FIN   0x10
#define WSF_RSV1     0x20
#define WSF_UNMASKED 0x40

#define TURNS_PER_CHUNK 3
#define TURNS_AT_END    64
#define SENT_KEPT       (64 * 1024) /* of what a client wrote: its request head is at the start */

static const uint8_t mask_key[4] = {0x37, 0xfa, 0x21, 0x3d};

/* ---- byte buffers ------------------------------------------------------------------------- */

struct bytes {
    uint8_t *p; /* owned */
    size_t len, cap;
};

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
    if (n > b->cap - b->len) {
        size_t cap = (b->len + n) * 2;
        b->p = realloc(b->p, cap);
        CHECK(b->p != NULL);
        b->cap = cap;
    }
    if (n > 0)
        memcpy(b->p + b->len, p, n);
    b->len += n;
}

/* Drops the first n bytes. */
static void bytes_consume(struct bytes *b, size_t n)
{
    memmove(b->p, b->p + n, b->len - n);
    b->len -= n;
}

/* ---- a client ----------------------------------------------------------------------------- */

enum phase {
    PHASE_HTTP, /* waiting for the response head (WebSocket and plain HTTP transports) */
    PHASE_BODY, /* a final non-101 answer: its body, then nothing */
    PHASE_WS,   /* WebSocket frames carrying STOMP */
    PHASE_TCP,  /* a raw STOMP stream */
    PHASE_SSE,  /* a GET /sse event stream: lines, until the broker closes */
};

struct client {
    struct bufferevent *end; /* owned: the client's end of the pair */
    enum conn_transport transport;
    enum phase phase;
    bool binary_only;           /* server.outbound_frames = binary */
    struct bytes sent;          /* owned: the first SENT_KEPT bytes written */
    struct bytes http;          /* owned: response bytes not parsed yet */
    size_t body_left;           /* PHASE_BODY: bytes of the answer's body still due */
    struct ws_decoder ws;       /* PHASE_WS */
    struct bytes message;       /* owned: the WebSocket message being reassembled */
    bool message_text;          /* its opcode */
    bool message_compressed;    /* it came with RSV1 (permessage-deflate) */
    int version;                /* fixed by the subprotocol, then by CONNECTED; 0 before */
    struct stomp_parser *stomp; /* owned */
    bool connected;             /* CONNECTED seen */
    bool error_seen;            /* ERROR seen: nothing may follow */
    bool close_seen;            /* WebSocket close frame seen */
    bool eof_sent;              /* the client half-closed: it writes nothing more */
    bool eof_seen;              /* the broker's end of file */
    bool paused;                /* not reading (slow consumer) */
    char last_id[64];           /* message-id of the last MESSAGE, for "$ID" */
    char last_reply_to[256];    /* its reply-to, for "$RT" */
    size_t received, eof_mark;  /* bytes read; bytes there were when the end of file came */
    char sse_line[6];           /* PHASE_SSE: the start of the line being read */
    size_t sse_line_len;        /* and its length so far */
};

static void client_event(struct bufferevent *end, short what, void *arg)
{
    struct client *cl = arg;
    if ((what & BEV_EVENT_EOF) && !cl->eof_seen) {
        cl->eof_seen = true;
        cl->eof_mark = cl->received + evbuffer_get_length(bufferevent_get_input(end));
    }
}

/* The version a CONNECTED frame names, 0 for none we know. */
static int connected_version(const struct stomp_frame *f)
{
    const struct stomp_header *h = stomp_frame_header(f, "version");
    return stomp_header_is(h, "1.0")   ? STOMP_V1_0
           : stomp_header_is(h, "1.1") ? STOMP_V1_1
           : stomp_header_is(h, "1.2") ? STOMP_V1_2
                                       : 0;
}

/* Copies a header value (cut to fit) into out; "" when there is no header. */
static void keep_value(const struct stomp_header *h, char *out, size_t cap)
{
    size_t n = h == NULL ? 0 : h->value_len < cap ? h->value_len : cap - 1;
    if (n > 0)
        memcpy(out, h->value, n);
    out[n] = '\0';
}

/* A STOMP frame from the broker, as a client checks it. */
static void check_frame(struct client *cl, const struct stomp_frame *f)
{
    CHECK(!cl->error_seen); /* an ERROR is the last frame */
    /* Before CONNECTED the broker speaks the subprotocol's version, or 1.2. */
    int v = cl->version != 0 ? cl->version : STOMP_V1_2;
    CHECK(stomp_frame_validate(f, (enum stomp_version)v, NULL) == 0);
    switch (f->command) {
    case STOMP_CMD_CONNECTED:
        CHECK(!cl->connected);
        v = connected_version(f);
        CHECK(v != 0 && (cl->version == 0 || v == cl->version));
        cl->version = v;
        stomp_parser_set_version(cl->stomp, (enum stomp_version)v);
        cl->connected = true;
        break;
    case STOMP_CMD_MESSAGE:
        CHECK(cl->connected);
        CHECK(stomp_frame_header(f, "subscription") != NULL);
        keep_value(stomp_frame_header(f, "message-id"), cl->last_id, sizeof(cl->last_id));
        keep_value(stomp_frame_header(f, "reply-to"), cl->last_reply_to, sizeof(cl->last_reply_to));
        CHECK(cl->last_id[0] != '\0');
        break;
    case STOMP_CMD_RECEIPT:
        CHECK(cl->connected);
        break;
    case STOMP_CMD_ERROR:
        CHECK(stomp_frame_header(f, "message") != NULL);
        cl->error_seen = true;
        break;
    default:
        abort(); /* not a server frame */
    }
}

/* Feeds STOMP bytes; with whole_message, they must be exactly one frame or one heart-beat. */
static void stomp_bytes(struct client *cl, const uint8_t *p, size_t n, bool whole_message)
{
    const char *data = (const char *)p;
    while (n > 0) {
        struct stomp_frame f;
        enum stomp_event ev;
        ssize_t used = stomp_parser_feed(cl->stomp, data, n, &f, &ev);
        CHECK(used >= 0);
        CHECK(!whole_message || ((size_t)used == n && ev != STOMP_EVENT_NONE));
        if (ev == STOMP_EVENT_FRAME)
            check_frame(cl, &f);
        data += used;
        n -= (size_t)used;
    }
}

static int inflated_add(void *out, const uint8_t *p, size_t n)
{
    bytes_add(out, p, n);
    return 0;
}

/* A compressed message inflated in place, as a client of RFC 7692 does: it must inflate. */
static void inflate_message(struct bytes *m)
{
    static z_stream zs;
    static bool ready;
    if (!ready) {
        CHECK(ws_inflate_init(&zs) == 0);
        ready = true;
    }
    struct bytes out = {0};
    CHECK(ws_inflate_message(&zs, m->p, m->len, 64u << 20, inflated_add, &out) >= 0);
    m->len = 0;
    bytes_add(m, out.p, out.len);
    free(out.p);
}

/* A whole WebSocket message: one STOMP frame (or heart-beat) in the right kind of frame. */
static void ws_message(struct client *cl)
{
    struct bytes *m = &cl->message;
    if (cl->message_compressed)
        inflate_message(m);
    CHECK(m->len > 0);
    if (cl->binary_only)
        CHECK(!cl->message_text);
    else
        CHECK(cl->message_text == ws_utf8_valid(m->p, m->len));
    stomp_bytes(cl, m->p, m->len, true);
    m->len = 0;
}

static void ws_bytes(struct client *cl, uint8_t *p, size_t n)
{
    while (n > 0) {
        struct ws_event ev;
        ssize_t used = ws_decoder_decode(&cl->ws, p, n, &ev);
        CHECK(used >= 0); /* a frame no client may accept, or bytes after the close */
        p += used;
        n -= (size_t)used;
        switch (ev.type) {
        case WS_EVENT_DATA:
            if (ev.message_start) {
                cl->message.len = 0;
                cl->message_text = ev.text;
                cl->message_compressed = ev.compressed;
            }
            bytes_add(&cl->message, ev.data, ev.len);
            if (ev.message_end)
                ws_message(cl);
            break;
        case WS_EVENT_PING:
            abort(); /* the broker never pings */
        case WS_EVENT_CLOSE:
            CHECK(ev.close_code != WS_CLOSE_NO_STATUS);
            cl->close_seen = true;
            break;
        default:
            break;
        }
    }
}

/*
 * The 101 named an extension: it must be permessage-deflate, answering an offer the request
 * made, with the answer ws/deflate.c gives that offer. The client's decoder then takes RSV1, and
 * plain is the response without the extension for ws_client_response_check().
 */
static void accept_deflate(struct client *cl, const struct ws_http_request *req,
                           const struct ws_http_response *resp, struct ws_http_response *plain)
{
    struct ws_deflate_params params;
    CHECK(ws_deflate_negotiate(req, &params) == 0);
    char want[160];
    int want_len = ws_deflate_response_value(want, sizeof(want), &params);
    CHECK(want_len > 0);
    bool found = false;
    for (size_t i = 0; i < resp->num_headers; i++) {
        const struct ws_http_header *h = &resp->headers[i];
        if (h->name.len != 24 || strncasecmp(h->name.ptr, "sec-websocket-extensions", 24) != 0)
            continue;
        CHECK(!found && h->value.len == (size_t)want_len);
        CHECK(memcmp(h->value.ptr, want, (size_t)want_len) == 0);
        found = true;
    }
    CHECK(found);
    plain->sec_websocket_extensions = false;
    struct ws_decoder_config cfg = cl->ws.config;
    cfg.allow_compressed = true;
    ws_decoder_init(&cl->ws, &cfg);
}

/* The 101 for the request at the start of what the client wrote, as a WebSocket client checks. */
static void check_upgrade(struct client *cl, const struct ws_http_response *resp)
{
    CHECK(cl->transport == CONN_WS);
    struct ws_http_request req;
    CHECK(ws_http_parse(&req, (const char *)cl->sent.p, cl->sent.len, SENT_KEPT) > 0);
    CHECK(req.sec_websocket_key.len <= 64);
    char key[65];
    memcpy(key, req.sec_websocket_key.ptr, req.sec_websocket_key.len);
    key[req.sec_websocket_key.len] = '\0';
    struct ws_client_upgrade up;
    struct ws_http_response plain = *resp;
    if (resp->sec_websocket_extensions)
        accept_deflate(cl, &req, resp, &plain);
    CHECK(ws_client_response_check(&plain, key, req.subprotocols, &up) == 0);
    static const int versions[] = {[WS_SUBPROTOCOL_V12_STOMP] = STOMP_V1_2,
                                   [WS_SUBPROTOCOL_V11_STOMP] = STOMP_V1_1,
                                   [WS_SUBPROTOCOL_V10_STOMP] = STOMP_V1_0,
                                   [WS_SUBPROTOCOL_STOMP] = 0};
    cl->version = versions[up.subprotocol];
    if (cl->version != 0)
        stomp_parser_set_version(cl->stomp, (enum stomp_version)cl->version);
}

/* Whether the request the client wrote was a GET /sse (the event stream has no length). */
static bool asked_for_sse(const struct client *cl)
{
    struct ws_http_request req;
    return ws_http_parse(&req, (const char *)cl->sent.p, cl->sent.len, SENT_KEPT) > 0 &&
           req.path.len == 4 && memcmp(req.path.ptr, "/sse", 4) == 0;
}

/* An event stream, line by line (docs/SSE.md): only the fields the broker writes, never a CR
 * (it would end a line early in the reader), and a data: line of JSON is one object. */
static void sse_bytes(struct client *cl, uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        CHECK(p[i] != '\r');
        if (p[i] != '\n') {
            cl->sse_line_len++;
            if (cl->sse_line_len <= 6)
                cl->sse_line[cl->sse_line_len - 1] = (char)p[i];
            continue;
        }
        const char *l = cl->sse_line;
        size_t len = cl->sse_line_len;
        CHECK(len == 0 || l[0] == ':' || (len >= 6 && memcmp(l, "data: ", 6) == 0) ||
              (len >= 4 && memcmp(l, "id: ", 4) == 0) || (len >= 6 && memcmp(l, "retry:", 6) == 0));
        cl->sse_line_len = 0;
    }
}

/* Response bytes before the WebSocket starts; returns once a phase change used them up. */
static void http_bytes(struct client *cl, uint8_t *p, size_t n)
{
    bytes_add(&cl->http, p, n);
    while (cl->phase == PHASE_HTTP) {
        struct ws_http_response resp;
        int rc = ws_http_response_parse(&resp, (const char *)cl->http.p, cl->http.len, 16384);
        if (rc == WS_HTTP_INCOMPLETE)
            return;
        CHECK(rc > 0);
        if (resp.status == 101) {
            check_upgrade(cl, &resp);
            cl->phase = PHASE_WS;
        } else if (resp.status == 200 && resp.content_length < 0) {
            CHECK(asked_for_sse(cl)); /* the only answer without a length */
            cl->phase = PHASE_SSE;
        } else if (resp.status >= 200) {
            CHECK(resp.status < 600 && resp.content_length >= 0);
            cl->body_left = (size_t)resp.content_length;
            cl->phase = PHASE_BODY;
        } /* else 100 Continue: the final answer follows */
        bytes_consume(&cl->http, (size_t)rc);
    }
    size_t rest = cl->http.len;
    cl->http.len = 0;
    if (cl->phase == PHASE_WS) {
        ws_bytes(cl, cl->http.p, rest);
    } else if (cl->phase == PHASE_SSE) {
        sse_bytes(cl, cl->http.p, rest);
    } else {
        CHECK(rest <= cl->body_left); /* nothing after the answer */
        cl->body_left -= rest;
    }
}

static void client_bytes(struct client *cl, uint8_t *p, size_t n)
{
    switch (cl->phase) {
    case PHASE_HTTP:
        http_bytes(cl, p, n);
        break;
    case PHASE_BODY:
        CHECK(n <= cl->body_left);
        cl->body_left -= n;
        break;
    case PHASE_WS:
        ws_bytes(cl, p, n);
        break;
    case PHASE_TCP:
        stomp_bytes(cl, p, n, false);
        break;
    case PHASE_SSE:
        sse_bytes(cl, p, n);
        break;
    }
}

/* Reads and checks everything the broker wrote so far (unless the client is not reading). */
static void client_read(struct client *cl)
{
    struct evbuffer *in = bufferevent_get_input(cl->end);
    size_t n;
    while (!cl->paused && (n = evbuffer_get_length(in)) > 0) {
        uint8_t *p = malloc(n);
        CHECK(p != NULL);
        CHECK(evbuffer_remove(in, p, n) == (int)n);
        cl->received += n;
        CHECK(!cl->eof_seen || cl->received <= cl->eof_mark);
        client_bytes(cl, p, n);
        free(p);
    }
}

/*
 * What a client sends for a payload: "$ID" becomes the message-id of the last MESSAGE it got and
 * "$RT" its reply-to. Message ids count messages since the process started and reply queues are
 * named after random session ids, so an input could not name them otherwise.
 */
static void expand(const struct client *cl, const uint8_t *p, size_t n, struct bytes *out)
{
    out->len = 0;
    for (size_t i = 0; i < n; i++) {
        const char *with = NULL;
        if (p[i] == '$' && i + 3 <= n && memcmp(p + i, "$ID", 3) == 0)
            with = cl->last_id;
        else if (p[i] == '$' && i + 3 <= n && memcmp(p + i, "$RT", 3) == 0)
            with = cl->last_reply_to;
        if (with != NULL) {
            bytes_add(out, with, strlen(with));
            i += 2;
        } else {
            bytes_add(out, p + i, 1);
        }
    }
}

static void client_write(struct client *cl, const uint8_t *p, size_t n)
{
    if (cl->eof_sent || n == 0)
        return;
    size_t keep = cl->sent.len < SENT_KEPT ? SENT_KEPT - cl->sent.len : 0;
    bytes_add(&cl->sent, p, n < keep ? n : keep);
    bufferevent_write(cl->end, p, n);
}

/* The client half-closes: the broker sees end of file after what was written. */
static void client_eof(struct client *cl)
{
    if (cl->eof_sent)
        return;
    cl->eof_sent = true;
    bufferevent_flush(cl->end, EV_WRITE, BEV_FINISHED); /* -1 when the broker's end is gone */
}

static void client_reading(struct client *cl, size_t limit)
{
    cl->paused = limit != 0;
    bufferevent_setwatermark(cl->end, EV_READ, 0, limit);
}

/* A payload as one client WebSocket frame shaped by flags. */
static void client_frame(struct client *cl, uint8_t flags, const uint8_t *p, size_t n)
{
    uint8_t header[WS_FRAME_HEADER_MAX];
    bool masked = !(flags & WSF_UNMASKED);
    size_t h = ws_frame_header_encode(header, (enum ws_opcode)(flags & WSF_OPCODE),
                                      !(flags & WSF_NO_FIN), n, masked ? mask_key : NULL);
    if (flags & WSF_RSV1)
        header[0] |= 0x40;
    uint8_t *payload = malloc(n > 0 ? n : 1);
    CHECK(payload != NULL);
    if (n > 0)
        memcpy(payload, p, n);
    if (masked)
        ws_mask(payload, n, mask_key, 0);
    client_write(cl, header, h);
    client_write(cl, payload, n);
    free(payload);
}

static void client_open(struct broker *b, struct client *cl, unsigned transport_bits, bool binary)
{
    static const enum conn_transport transports[4] = {CONN_WS, CONN_TCP, CONN_PLAIN_HTTP, CONN_WS};
    struct bufferevent *pair[2];
    CHECK(bufferevent_pair_new(b->base, 0, pair) == 0);
    memset(cl, 0, sizeof(*cl));
    cl->end = pair[0];
    cl->transport = transports[transport_bits & 3];
    cl->phase = cl->transport == CONN_TCP ? PHASE_TCP : PHASE_HTTP;
    cl->binary_only = binary;
    struct ws_decoder_config wcfg = {.max_message_size = SIZE_MAX / 2, .expect_masked = false};
    ws_decoder_init(&cl->ws, &wcfg);
    struct stomp_limits limits = {.max_headers = 4096,
                                  .max_header_line = 1 << 20,
                                  .max_header_bytes = 4 << 20,
                                  .max_body = 16 << 20};
    cl->stomp = stomp_parser_new(&limits);
    CHECK(cl->stomp != NULL);
    bufferevent_setcb(cl->end, NULL, NULL, client_event, cl);
    bufferevent_enable(cl->end, EV_READ | EV_WRITE);

    /* What the listener does for an accepted socket: admission, then the connection. */
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_port = htons((uint16_t)(40000 + b->next_conn_id)),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    CHECK(admit_enter(&b->admit, "127.0.0.1", broker_now_ms(b)) == ADMIT_OK);
    CHECK(conn_attach(b, pair[1], (const struct sockaddr *)&sa, "127.0.0.1", cl->transport,
                      false) != NULL);
}

static void client_free(struct client *cl)
{
    bufferevent_free(cl->end);
    stomp_parser_free(cl->stomp);
    free(cl->sent.p);
    free(cl->http.p);
    free(cl->message.p);
}

/* ---- the broker --------------------------------------------------------------------------- */

static void make_config(struct config *cfg, uint8_t mode)
{
    config_defaults(cfg);
    char err[256];
    CHECK(config_set_dotted(cfg, "auth.anonymous", "on", err, sizeof(err)) == 0);
    cfg->outbound_frames = (mode & MODE_BINARY) ? OUTBOUND_FRAMES_BINARY : OUTBOUND_FRAMES_AUTO;
    cfg->connection_rate = 0;
    cfg->publish_rate = 0;
    cfg->heartbeat_min_ms = 10000; /* heart-beat timers stay seconds away */
    if (mode & MODE_REJECT)
        CHECK(config_set_dotted(cfg, "queue.overflow", "reject", err, sizeof(err)) == 0);
    if (mode & MODE_SMALL) {
        static const char *const small[][2] = {
            {"limits.max_http_header_bytes", "512"},
            {"limits.max_ws_message", "1024"},
            {"limits.max_frame_headers", "4"},
            {"limits.max_header_line", "96"},
            {"limits.max_header_bytes", "384"},
            {"limits.max_body", "256"},
            {"limits.max_subscriptions", "2"},
            {"limits.max_transactions", "1"},
            {"limits.max_tx_frames", "2"},
            {"limits.max_unacked", "2"},
            {"limits.outbound_high_water", "1024"},
            {"limits.slow_consumer_max_drops", "2"},
            {"queue.max_messages", "3"},
            {"queue.prefetch", "1"},
            {"auth.allow_origin", "https://app.example, http://localhost:8080"},
        };
        for (size_t i = 0; i < sizeof(small) / sizeof(small[0]); i++)
            CHECK(config_set_dotted(cfg, small[i][0], small[i][1], err, sizeof(err)) == 0);
    }
    CHECK(config_validate(cfg, err, sizeof(err)) == 0); /* with the default listeners */
    cfg->ws.enabled = cfg->tcp.enabled = false;
}

/* Runs the loop `turns` times without blocking, letting the clients read in between. */
static void run(struct broker *b, struct client clients[2], int turns)
{
    for (int i = 0; i < turns; i++) {
        event_base_loop(b->base, EVLOOP_NONBLOCK);
        client_read(&clients[0]);
        client_read(&clients[1]);
    }
}

/* Length of the chunk at data[*pos], advancing *pos past its length bytes. */
static size_t chunk_length(const uint8_t *data, size_t size, size_t *pos)
{
    size_t len = data[(*pos)++];
    if (len == 255 && *pos + 2 <= size) {
        len = (size_t)data[*pos] << 8 | data[*pos + 1];
        *pos += 2;
    }
    return len;
}

static void run_chunks(struct broker *b, struct client clients[2], const uint8_t *data, size_t size,
                       struct bytes *payload)
{
    size_t pos = 1;
    while (pos + 2 <= size) {
        uint8_t ctl = data[pos++];
        struct client *cl = &clients[ctl & CTL_CLIENT];
        size_t len = chunk_length(data, size, &pos);
        uint8_t action = ctl & CTL_ACTION;
        if (action == ACT_READING) {
            client_reading(cl, len * 16);
        } else {
            uint8_t flags = action == ACT_FRAME && pos < size ? data[pos++] : 0;
            size_t n = len < size - pos ? len : size - pos;
            expand(cl, data + pos, n, payload);
            if (action == ACT_FRAME)
                client_frame(cl, flags, payload->p, payload->len);
            else
                client_write(cl, payload->p, payload->len);
            if (action == ACT_EOF)
                client_eof(cl);
            pos += n;
        }
        if (!(ctl & CTL_HOLD))
            run(b, clients, TURNS_PER_CHUNK);
    }
}

/* After every connection is gone: nothing of theirs is left in the router. */
static void check_router_empty(struct router *r)
{
    CHECK(r->topics.count == 0);
    CHECK(r->wildcards == NULL);
    size_t bucket;
    for (struct dict_entry *e = dict_first(&r->queues.by_name, &bucket); e != NULL;
         e = dict_next(&r->queues.by_name, &bucket, e)) {
        const struct queue *q = e->value;
        CHECK(q->consumer_count == 0 && q->consumers == NULL && !q->temporary);
    }
}

/* Everyone reads what is left and leaves; every connection must be gone within bounded turns. */
static void finish(struct broker *b, struct client clients[2], uint8_t mode)
{
    if (mode & MODE_SHUTDOWN) {
        broker_shutdown(b, "fuzzing over");
        run(b, clients, TURNS_PER_CHUNK);
    }
    for (int i = 0; i < 2; i++) {
        client_reading(&clients[i], 0);
        client_read(&clients[i]);
        client_eof(&clients[i]);
    }
    for (int i = 0; i < TURNS_AT_END && (b->conn_count > 0 || b->reap_list != NULL); i++)
        run(b, clients, 1);
    CHECK(b->conn_count == 0);
    for (int i = 0; i < 2; i++) {
        const struct client *cl = &clients[i];
        /* The broker ends a WebSocket with a close frame, an HTTP exchange with its answer. */
        CHECK(!cl->eof_seen || cl->phase != PHASE_WS || cl->close_seen);
        CHECK(!cl->eof_seen || cl->phase != PHASE_HTTP);
        CHECK(!cl->eof_seen || cl->phase != PHASE_BODY || cl->body_left == 0);
    }
    check_router_empty(&b->router);
    /* The /metrics gauges kept as sessions come and go are back to zero with them. */
    for (int i = 0; i < 4; i++)
        CHECK(b->stats.clients[i] == 0);
    CHECK(b->stats.subscriptions == 0 && b->router.stats.unacked == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool quiet;
    if (!quiet) {
        log_set_level(LOG_ERROR); /* errors only: out of memory */
        quiet = true;
    }
    if (size < 1)
        return 0;
    struct config cfg;
    make_config(&cfg, data[0]);
    struct broker *b = broker_new(&cfg);
    CHECK(b != NULL);
    dict_seed(1); /* the same dict iteration order (acks, drains) for the same input */
    struct client clients[2];
    client_open(b, &clients[0], data[0], (data[0] & MODE_BINARY) != 0);
    client_open(b, &clients[1], data[0] >> 2, (data[0] & MODE_BINARY) != 0);
    run(b, clients, 1);
    struct bytes payload = {0};
    run_chunks(b, clients, data, size, &payload);
    free(payload.p);
    finish(b, clients, data[0]);
    client_free(&clients[0]);
    client_free(&clients[1]);
    broker_free(b);
    return 0;
}
