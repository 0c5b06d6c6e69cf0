/*
 * conn_deflate.c - permessage-deflate on a loop's connections (see conn_deflate.h).
 *
 * A compressed frame is the WebSocket header with RSV1, then the payload: for a MESSAGE, this
 * delivery's own lines as stored blocks followed by the message's shared part deflated once
 * (cached on the message); for other frames, the whole frame deflated on the spot. Incoming
 * compressed messages are inflated whole, once their last frame is in: a loop's one inflate
 * stream can then serve every connection, since no message is left half inflated between reads.
 */
#include "broker/net/conn_deflate.h"

#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "broker/base/log.h"
#include "broker/base/message.h"
#include "ws/deflate.h"

/* The loop's streams: [0] compresses with the 2^15 window, [1] with the 2^9 one. */
struct conn_deflate_loop {
    z_stream deflaters[2];
    bool deflater_ready[2];
    z_stream inflater;
    bool inflater_ready;
    struct evbuffer *inflated; /* owned: one message's inflated bytes, empty between messages */
};

/* Deflated parts at least this long are queued by reference to the message (as conn.c does with
 * bodies); shorter ones are copied next to the header. */
#define SHARED_DEFLATED_MIN 8192

/* A frame's header and stored prefix are built here when they fit. */
#define PREFIX_STACK 2048

static struct conn_deflate_loop *loop_state(struct broker *b)
{
    if (b->deflate_loop == NULL) {
        b->deflate_loop = calloc(1, sizeof(*b->deflate_loop));
        if (b->deflate_loop == NULL)
            return NULL;
        b->deflate_loop->inflated = evbuffer_new();
        if (b->deflate_loop->inflated == NULL) {
            free(b->deflate_loop);
            b->deflate_loop = NULL;
        }
    }
    return b->deflate_loop;
}

static z_stream *deflater(struct broker *b, bool small_window)
{
    struct conn_deflate_loop *l = loop_state(b);
    if (l == NULL)
        return NULL;
    int i = small_window ? 1 : 0;
    if (!l->deflater_ready[i]) {
        int bits = small_window ? WS_DEFLATE_SMALL_WINDOW_BITS : WS_DEFLATE_WINDOW_BITS;
        if (ws_deflate_init(&l->deflaters[i], (int)b->cfg.compression_level, bits) != 0)
            return NULL;
        l->deflater_ready[i] = true;
    }
    return &l->deflaters[i];
}

static z_stream *inflater(struct broker *b)
{
    struct conn_deflate_loop *l = loop_state(b);
    if (l == NULL)
        return NULL;
    if (!l->inflater_ready) {
        if (ws_inflate_init(&l->inflater) != 0)
            return NULL;
        l->inflater_ready = true;
    }
    return &l->inflater;
}

void conn_deflate_loop_free(struct broker *b)
{
    struct conn_deflate_loop *l = b->deflate_loop;
    if (l == NULL)
        return;
    for (int i = 0; i < 2; i++)
        if (l->deflater_ready[i])
            deflateEnd(&l->deflaters[i]);
    if (l->inflater_ready)
        inflateEnd(&l->inflater);
    evbuffer_free(l->inflated);
    free(l);
    b->deflate_loop = NULL;
}

bool conn_deflate_accept(struct conn *c, const struct ws_http_request *req, char *value, size_t cap)
{
    struct ws_deflate_params params;
    if (!c->broker->cfg.compression_enabled || ws_deflate_negotiate(req, &params) != 0)
        return false;
    if (ws_deflate_response_value(value, cap, &params) < 0)
        return false;
    c->deflate = true;
    c->deflate_small_window = params.small_window;
    struct ws_decoder_config cfg = c->ws.config;
    cfg.allow_compressed = true;
    ws_decoder_init(&c->ws, &cfg); /* nothing was decoded yet: the upgrade is being answered */
    return true;
}

/* ---- output ---- */

/* Deflates a..b (two pieces, one message) into a new allocation; *len its size. NULL on error. */
static uint8_t *deflate_pieces(z_stream *zs, const char *a, size_t a_len, const char *b,
                               size_t b_len, size_t *len)
{
    size_t in_len = a_len + b_len;
    uint8_t *in = malloc(in_len);
    size_t cap = ws_deflate_bound(in_len);
    uint8_t *out = malloc(cap);
    ssize_t n = -1;
    if (in != NULL && out != NULL) {
        memcpy(in, a, a_len);
        if (b_len > 0)
            memcpy(in + a_len, b, b_len);
        n = ws_deflate_message(zs, in, in_len, out, cap);
    }
    free(in);
    if (n < 0) {
        free(out);
        return NULL;
    }
    uint8_t *shrunk = realloc(out, n > 0 ? (size_t)n : 1);
    *len = (size_t)n;
    return shrunk != NULL ? shrunk : out;
}

/*
 * Queues the frame: header with RSV1, prefix as stored blocks, then deflated (by reference to
 * msg when it is long and msg is given). Returns false when out of memory, with nothing queued.
 */
static bool queue_frame(struct conn *c, enum ws_opcode op, const char *prefix, size_t prefix_len,
                        const uint8_t *deflated, size_t deflated_len, struct message *msg)
{
    size_t stored_len = ws_deflate_stored_size(prefix_len);
    uint8_t stack[PREFIX_STACK];
    size_t need = WS_FRAME_HEADER_MAX + stored_len;
    uint8_t *frame = need <= sizeof(stack) ? stack : malloc(need);
    if (frame == NULL)
        return false;
    size_t n = ws_frame_header_encode(frame, op, true, stored_len + deflated_len, NULL);
    frame[0] |= 0x40; /* RSV1: a compressed message (RFC 7692 section 6) */
    n += ws_deflate_stored(frame + n, (const uint8_t *)prefix, prefix_len);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    bool by_reference = msg != NULL && deflated_len >= SHARED_DEFLATED_MIN;
    if (!by_reference && n + deflated_len <= sizeof(stack) && frame == stack) {
        memcpy(frame + n, deflated, deflated_len); /* one evbuffer_add for the whole frame */
        n += deflated_len;
        deflated_len = 0;
    }
    evbuffer_add(out, frame, n);
    if (frame != stack)
        free(frame);
    if (by_reference)
        evbuffer_add_reference(out, deflated, deflated_len, conn_release_message, message_ref(msg));
    else if (deflated_len > 0)
        evbuffer_add(out, deflated, deflated_len);
    return true;
}

/* msg's shared part for v and the window, deflated once; NULL when it goes uncompressed. */
static const uint8_t *shared_deflated(struct conn *c, const char *common, size_t common_len,
                                      struct message *msg, enum stomp_version v, size_t *len)
{
    int slot = (int)v - (int)STOMP_V1_0;
    int win = c->deflate_small_window ? 1 : 0;
    if (msg->deflated_len[slot][win] == MESSAGE_NOT_DEFLATED)
        return NULL;
    if (msg->deflated[slot][win] == NULL) {
        z_stream *zs = deflater(c->broker, c->deflate_small_window);
        size_t n = 0;
        /* msg->body is followed by the frame's NUL in the same allocation */
        uint8_t *d = zs != NULL
                         ? deflate_pieces(zs, common, common_len, msg->body, msg->body_len + 1, &n)
                         : NULL;
        if (d == NULL)
            return NULL;
        if (n >= common_len + msg->body_len + 1) { /* incompressible: say so once */
            free(d);
            msg->deflated_len[slot][win] = MESSAGE_NOT_DEFLATED;
            return NULL;
        }
        msg->deflated[slot][win] = d;
        msg->deflated_len[slot][win] = n;
    }
    *len = msg->deflated_len[slot][win];
    return msg->deflated[slot][win];
}

bool conn_deflate_message(struct conn *c, enum ws_opcode op, const char *head, size_t head_len,
                          size_t common_len, struct message *msg, enum stomp_version v)
{
    size_t plain_len = head_len + msg->body_len + 1;
    if (plain_len < c->broker->cfg.compression_min_size || common_len > head_len)
        return false;
    size_t prefix_len = head_len - common_len, deflated_len;
    const uint8_t *deflated =
        shared_deflated(c, head + prefix_len, common_len, msg, v, &deflated_len);
    if (deflated == NULL || ws_deflate_stored_size(prefix_len) + deflated_len >= plain_len)
        return false;
    return queue_frame(c, op, head, prefix_len, deflated, deflated_len, msg);
}

bool conn_deflate_frame(struct conn *c, enum ws_opcode op, const char *head, size_t head_len,
                        const char *body, size_t body_len)
{
    size_t plain_len = head_len + body_len + 1;
    if (plain_len < c->broker->cfg.compression_min_size)
        return false;
    z_stream *zs = deflater(c->broker, c->deflate_small_window);
    if (zs == NULL)
        return false;
    /* head, body and the NUL: the NUL goes with the head when there is no body to carry it */
    char *whole = malloc(plain_len);
    if (whole == NULL)
        return false;
    memcpy(whole, head, head_len);
    if (body_len > 0)
        memcpy(whole + head_len, body, body_len);
    whole[plain_len - 1] = '\0';
    size_t n = 0;
    uint8_t *d = deflate_pieces(zs, whole, plain_len, NULL, 0, &n);
    free(whole);
    bool sent = d != NULL && n < plain_len && queue_frame(c, op, NULL, 0, d, n, NULL);
    free(d);
    return sent;
}

/* ---- input ---- */

static int to_evbuffer(void *buf, const uint8_t *data, size_t len)
{
    return evbuffer_add(buf, data, len) == 0 ? 0 : WS_ERR_INFLATE;
}

/* Keeps a frame's part of a compressed message; the decoder bounds the total (max_ws_message). */
static int keep_pending(struct conn *c, const uint8_t *data, size_t len)
{
    if (c->inflate_pending_cap - c->inflate_pending_len < len) {
        size_t cap = c->inflate_pending_cap > 0 ? c->inflate_pending_cap : 4096;
        while (cap - c->inflate_pending_len < len)
            cap *= 2;
        uint8_t *grown = realloc(c->inflate_pending, cap);
        if (grown == NULL)
            return WS_ERR_TOO_BIG;
        c->inflate_pending = grown;
        c->inflate_pending_cap = cap;
    }
    memcpy(c->inflate_pending + c->inflate_pending_len, data, len);
    c->inflate_pending_len += len;
    return 0;
}

static bool utf8_valid_evbuffer(struct evbuffer *buf)
{
    struct ws_utf8 v;
    ws_utf8_init(&v);
    struct evbuffer_ptr at;
    struct evbuffer_iovec vec;
    evbuffer_ptr_set(buf, &at, 0, EVBUFFER_PTR_SET);
    while (evbuffer_peek(buf, -1, &at, &vec, 1) > 0) {
        if (ws_utf8_feed(&v, vec.iov_base, vec.iov_len) != 0)
            return false;
        if (evbuffer_ptr_set(buf, &at, vec.iov_len, EVBUFFER_PTR_ADD) != 0)
            break;
    }
    return ws_utf8_complete(&v);
}

/* Hands the inflated message to the session, piece by piece, and empties the buffer. */
static void feed_session(struct conn *c, struct evbuffer *buf)
{
    while (evbuffer_get_length(buf) > 0 && c->state == CONN_OPEN) {
        size_t chunk = evbuffer_get_contiguous_space(buf);
        const char *data = (const char *)evbuffer_pullup(buf, (ev_ssize_t)chunk);
        c->broker->conn_handler->stomp_feed(c->session, data, chunk);
        evbuffer_drain(buf, chunk);
    }
    evbuffer_drain(buf, evbuffer_get_length(buf));
}

static int inflate_whole(struct conn *c, const uint8_t *data, size_t len, bool text)
{
    z_stream *zs = inflater(c->broker);
    if (zs == NULL)
        return WS_ERR_INFLATE;
    struct evbuffer *buf = c->broker->deflate_loop->inflated;
    ssize_t n = ws_inflate_message(zs, data, len, c->broker->cfg.max_ws_message, to_evbuffer, buf);
    if (n >= 0 && text && !utf8_valid_evbuffer(buf))
        n = WS_ERR_INVALID_UTF8;
    if (n < 0) {
        evbuffer_drain(buf, evbuffer_get_length(buf));
        return (int)n;
    }
    feed_session(c, buf);
    return 0;
}

int conn_deflate_input(struct conn *c, const struct ws_event *ev)
{
    if (ev->message_start && ev->message_end) /* the common case: nothing to keep */
        return inflate_whole(c, ev->data, ev->len, ev->text);
    int err = keep_pending(c, ev->data, ev->len);
    if (err != 0 || !ev->message_end)
        return err;
    err = inflate_whole(c, c->inflate_pending, c->inflate_pending_len, ev->text);
    conn_deflate_forget(c);
    return err;
}

void conn_deflate_forget(struct conn *c)
{
    free(c->inflate_pending);
    c->inflate_pending = NULL;
    c->inflate_pending_len = c->inflate_pending_cap = 0;
}
