#include "broker/net/conn.h"
#include "broker/base/log.h"
#include "broker/base/message.h"
#include "broker/net/conn_deflate.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/*
 * Bodies at least this long are shared by reference; shorter ones are copied next to their head.
 * A reference costs an evbuffer chain of its own and a fresh chain for the head after it, and
 * keeps the whole message alive while a slow client holds it: with bodies from 512 bytes to
 * 8 KiB a stalled client held up to 5x what outbound_high_water counts (docs/CONFIG.md). A copy
 * costs what it counts, and copying a few KiB is cheap next to the write that follows.
 */
#define SHARED_BODY_MIN 8192

/* How long a closing connection may take to flush and see the peer's FIN. */
#define CLOSING_DEADLINE_MS 2000

static void read_cb(struct bufferevent *bev, void *arg);
static void output_drained(struct conn *c);
static void write_cb(struct bufferevent *bev, void *arg);
static void event_cb(struct bufferevent *bev, short what, void *arg);
static void timer_cb(evutil_socket_t fd, short what, void *arg);

static void format_peer(const struct sockaddr *addr, char *out, size_t len)
{
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    if (addr->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)addr;
        inet_ntop(AF_INET, &in->sin_addr, host, sizeof(host));
        port = ntohs(in->sin_port);
        snprintf(out, len, "%s:%u", host, port);
    } else if (addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)addr;
        inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof(host));
        port = ntohs(in6->sin6_port);
        snprintf(out, len, "[%s]:%u", host, port);
    } else {
        snprintf(out, len, "unknown");
    }
}

static void arm_timer(struct conn *c, unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(c->timer, &tv);
}

/* Byte counters for /metrics: what arrives in the input buffer, what leaves the output one. */
static void count_in(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *broker)
{
    (void)buf;
    ((struct broker *)broker)->stats.bytes_in += info->n_added;
}

/* Counts what leaves the output, and puts a plain connection that got output on the flush list. */
static void count_out(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    struct conn *c = arg;
    struct broker *b = c->broker;
    (void)buf;
    b->stats.bytes_out += info->n_deleted;
    c->out_added += (uint32_t)info->n_added;
    c->out_taken += (uint32_t)info->n_deleted;
    if (info->n_added == 0 || !c->direct_write || c->flush_queued || c->write_armed)
        return;
    c->flush_queued = true;
    c->flush_prev = NULL;
    c->flush_next = b->flush_list;
    if (b->flush_list != NULL)
        b->flush_list->flush_prev = c;
    b->flush_list = c;
    event_active(b->flush_event, EV_TIMEOUT, 0);
}

static void flush_unlink(struct conn *c)
{
    if (!c->flush_queued)
        return;
    if (c->flush_prev != NULL)
        c->flush_prev->flush_next = c->flush_next;
    else
        c->broker->flush_list = c->flush_next;
    if (c->flush_next != NULL)
        c->flush_next->flush_prev = c->flush_prev;
    c->flush_queued = false;
}

static void set_write_watermark(struct conn *c)
{
    /* write_cb fires once output drains to half the high-water mark: queues resume there. */
    bufferevent_setwatermark(c->bev, EV_WRITE, c->broker->cfg.outbound_high_water / 2, 0);
}

static struct bufferevent *socket_bufferevent(struct broker *b, evutil_socket_t fd, SSL *ssl)
{
    if (ssl == NULL)
        return bufferevent_socket_new(b->base, fd, BEV_OPT_CLOSE_ON_FREE);
    struct bufferevent *bev = bufferevent_openssl_socket_new(
        b->base, fd, ssl, BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
    if (bev != NULL)
        bufferevent_openssl_set_allow_dirty_shutdown(bev, 1); /* peers that just close */
    return bev;
}

struct conn *conn_new(struct broker *b, evutil_socket_t fd, const struct sockaddr *sa,
                      const char *addr, enum conn_transport transport, SSL *ssl)
{
    struct bufferevent *bev = socket_bufferevent(b, fd, ssl);
    if (bev == NULL) {
        admit_leave(&b->admit, addr);
        SSL_free(ssl);
        evutil_closesocket(fd);
        return NULL;
    }
    return conn_attach(b, bev, sa, addr, transport, ssl != NULL);
}

struct conn *conn_attach(struct broker *b, struct bufferevent *bev, const struct sockaddr *sa,
                         const char *addr, enum conn_transport transport, bool tls)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        admit_leave(&b->admit, addr);
        bufferevent_free(bev);
        return NULL;
    }
    snprintf(c->addr, sizeof(c->addr), "%s", addr);
    c->tls = tls;
    c->broker = b;
    c->bev = bev;
    /* Unique in the process, and id % loops names the loop: a reply queue is named after its
     * session's connection id, which is how another loop finds its owner
     * (broker/threads/fanout_threads.c). */
    c->id = ++b->next_conn_id * b->conn_id_stride + b->loop_index;
    c->next = b->conns;
    if (b->conns != NULL)
        b->conns->prev = c;
    b->conns = c;
    b->conn_count++;
    c->transport = transport;
    c->state = transport == CONN_TCP ? CONN_OPEN : CONN_HTTP;
    format_peer(sa, c->peer, sizeof(c->peer));
    log_peer_set(c->id, c->peer); /* every log line about this connection names its peer */
    c->timer = evtimer_new(b->base, timer_cb, c);
    if (c->timer == NULL) {
        conn_free(c);
        return NULL;
    }
    c->last_read_ms = c->last_write_ms = broker_now_ms(b);
    bufferevent_setcb(c->bev, read_cb, write_cb, event_cb, c);
    evbuffer_add_cb(bufferevent_get_input(c->bev), count_in, b);
    evbuffer_add_cb(bufferevent_get_output(c->bev), count_out, c);
    /* A plain socket: the broker's flush writes it. TLS, and a bufferevent without a socket
     * (an in-memory pair), are written by libevent. */
    c->direct_write = !tls && bufferevent_getfd(bev) >= 0;
    set_write_watermark(c);
    b->stats.connections_accepted++;
    static const char *const names[] = {"ws", "tcp", "http"};
    log_debug(c->id, "%s%s connection from %s", names[transport], c->tls ? "+tls" : "", c->peer);

    if (transport == CONN_TCP) {
        c->session = c->broker->conn_handler->stomp_open(c, 0);
        if (c->session == NULL) {
            conn_close(c);
            return c;
        }
    } else {
        /* The decoder is unused on CONN_PLAIN_HTTP, and harmless. */
        struct ws_decoder_config wcfg = {.max_message_size = b->cfg.max_ws_message,
                                         .expect_masked = true};
        ws_decoder_init(&c->ws, &wcfg);
        arm_timer(c, b->cfg.handshake_timeout_ms);
    }
    bufferevent_enable(c->bev, EV_READ);
    if (c->direct_write)
        bufferevent_disable(c->bev, EV_WRITE); /* on by default in libevent */
    else
        bufferevent_enable(c->bev, EV_WRITE);
    return c;
}

void conn_free(struct conn *c)
{
    struct broker *b = c->broker;
    flush_unlink(c);
    if (c->session != NULL)
        c->broker->conn_handler->stomp_close(c->session);
    if (c->http_pending != NULL)
        c->broker->conn_handler->http_abandon(c);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        b->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    b->conn_count--;
    admit_leave(&b->admit, c->addr);
    if (c->timer != NULL)
        event_free(c->timer);
    free(c->bearer);
    conn_deflate_forget(c);
    if (c->bev != NULL)
        bufferevent_free(c->bev);
    log_debug(c->id, "connection closed");
    log_peer_clear(c->id);
    free(c);
}

void conn_close(struct conn *c)
{
    if (c->state == CONN_DEAD)
        return;
    c->state = CONN_DEAD;
    bufferevent_disable(c->bev, EV_READ | EV_WRITE);
    c->reap_next = c->broker->reap_list;
    c->broker->reap_list = c;
    event_active(c->broker->reap_event, EV_TIMEOUT, 0);
}

size_t conn_outbound(const struct conn *c)
{
    return evbuffer_get_length(bufferevent_get_output(c->bev));
}

void conn_release_message(const void *data, size_t len, void *msg)
{
    (void)data;
    (void)len;
    message_unref(msg);
}

static enum ws_opcode data_opcode(const struct conn *c, bool utf8)
{
    switch (c->broker->cfg.outbound_frames) {
    case OUTBOUND_FRAMES_TEXT:
        return WS_OP_TEXT;
    case OUTBOUND_FRAMES_BINARY:
        return WS_OP_BINARY;
    default:
        return utf8 ? WS_OP_TEXT : WS_OP_BINARY;
    }
}

/* Forgets the frame ends the front has passed (an end at the front itself still counts). */
static void forget_written_ends(struct conn *c)
{
    while (c->frame_ends_count > 0 &&
           (int32_t)(c->frame_ends[c->frame_ends_first] - c->out_taken) < 0) {
        c->frame_ends_first = (uint8_t)((c->frame_ends_first + 1) % CONN_FRAME_ENDS);
        c->frame_ends_count--;
    }
}

/*
 * Remembers that a frame ends where the output ends now, when that is a stretch
 * (outbound_high_water / CONN_FRAME_ENDS) past the last end kept, or past the front when none
 * is: a connection that keeps up records nothing. Runs once per frame: counters only, no call
 * into the evbuffer (its length takes a lock).
 */
static void note_frame_end(struct conn *c)
{
    uint32_t stretch = (uint32_t)(c->broker->cfg.outbound_high_water / CONN_FRAME_ENDS);
    forget_written_ends(c);
    uint32_t since = c->out_taken;
    if (c->frame_ends_count > 0)
        since = c->frame_ends[(c->frame_ends_first + c->frame_ends_count - 1u) % CONN_FRAME_ENDS];
    if (c->out_added - since < stretch || c->frame_ends_count == CONN_FRAME_ENDS)
        return;
    c->frame_ends[(c->frame_ends_first + c->frame_ends_count) % CONN_FRAME_ENDS] = c->out_added;
    c->frame_ends_count++;
}

size_t conn_drop_queued(struct conn *c)
{
    forget_written_ends(c);
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t queued = evbuffer_get_length(out);
    if (c->state == CONN_DEAD || c->frame_ends_count == 0)
        return 0;
    size_t keep = (uint32_t)(c->frame_ends[c->frame_ends_first] - c->out_taken);
    struct evbuffer *front = keep < queued ? evbuffer_new() : NULL;
    if (front == NULL)
        return 0; /* nothing to drop, or out of memory: the output stays as it was */
    uint32_t taken = c->out_taken, added = c->out_added;
    uint64_t bytes_out = c->broker->stats.bytes_out;
    /* Move the front aside, drop the rest, put the front back: an evbuffer is not cut at its
     * end. Its front is frozen outside libevent's own write callback (see flush_one). */
    evbuffer_unfreeze(out, 1);
    evbuffer_remove_buffer(out, front, keep);
    evbuffer_drain(out, queued - keep);
    evbuffer_freeze(out, 1);
    evbuffer_add_buffer(out, front);
    evbuffer_free(front);
    /* Nothing was written and nothing new queued: the counters those moves changed go back. */
    c->out_taken = taken;
    c->out_added = added - (uint32_t)(queued - keep);
    c->broker->stats.bytes_out = bytes_out;
    c->frame_ends_count = 0;
    return queued - keep;
}

static void send_ws_header(struct conn *c, enum ws_opcode op, uint64_t len)
{
    uint8_t header[WS_FRAME_HEADER_MAX];
    size_t n = ws_frame_header_encode(header, op, true, len, NULL);
    evbuffer_add(bufferevent_get_output(c->bev), header, n);
}

/* A whole frame (WebSocket header, STOMP head, small body, NUL) copied into one evbuffer_add: each
 * add costs the evbuffer's callbacks and a write-event check, so one per delivery, not four. */
#define FRAME_STACK 2048

/* Copies len bytes to the reserved space *vec (at *at in it), moving on to the next vector. */
static void copy_into(struct evbuffer_iovec **vec, size_t *at, const void *data, size_t len)
{
    const char *from = data;
    while (len > 0) {
        size_t n = (*vec)->iov_len - *at < len ? (*vec)->iov_len - *at : len;
        memcpy((char *)(*vec)->iov_base + *at, from, n);
        from += n;
        len -= n;
        *at += n;
        if (*at == (*vec)->iov_len) {
            (*vec)++;
            *at = 0;
        }
    }
}

/*
 * A copied frame too long for the stack, written straight into space reserved at the output's
 * end: one copy and one evbuffer operation for the whole frame. Two vectors: the free end of the
 * last chain is filled before a new one is taken, so the output holds what it counts (one
 * vector would need the frame contiguous and leave most of a chain empty per frame).
 * -1 when no space could be had.
 */
static int add_long_frame(struct evbuffer *out, const uint8_t *ws_header, size_t ws_len,
                          const char *head, size_t head_len, const char *body, size_t body_len)
{
    size_t total = ws_len + head_len + body_len + 1;
    struct evbuffer_iovec vecs[2];
    int n = total > EV_SSIZE_MAX ? -1 : evbuffer_reserve_space(out, (ev_ssize_t)total, vecs, 2);
    if (n < 1)
        return -1;
    size_t room = vecs[0].iov_len + (n > 1 ? vecs[1].iov_len : 0);
    if (room < total)
        return -1;
    /* Commit exactly the frame: the first vector whole (or less), the rest in the second. */
    if (vecs[0].iov_len >= total) {
        vecs[0].iov_len = total;
        n = 1;
    } else {
        vecs[1].iov_len = total - vecs[0].iov_len;
    }
    struct evbuffer_iovec *vec = vecs;
    size_t at = 0;
    copy_into(&vec, &at, ws_header, ws_len);
    copy_into(&vec, &at, head, head_len);
    copy_into(&vec, &at, body, body_len);
    copy_into(&vec, &at, "", 1);
    return evbuffer_commit_space(out, vecs, n);
}

/* A compressed frame was queued: the bookkeeping every frame gets. */
static void sent_deflated(struct conn *c)
{
    note_frame_end(c);
    c->last_write_ms = broker_now_ms(c->broker);
}

void conn_send_frame(struct conn *c, const char *head, size_t head_len, struct message *msg,
                     const char *body, size_t body_len, bool utf8)
{
    if (c->state != CONN_OPEN)
        return;
    /* permessage-deflate, for frames of their own: deliveries come through conn_send_message() */
    if (c->deflate && msg == NULL &&
        conn_deflate_frame(c, data_opcode(c, utf8), head, head_len, body, body_len)) {
        sent_deflated(c);
        return;
    }
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (msg != NULL) {
        body = msg->body;
        body_len = msg->body_len;
    }
    bool shared = msg != NULL && body_len >= SHARED_BODY_MIN;
    uint8_t frame[FRAME_STACK];
    size_t n = 0;
    if (c->transport == CONN_WS)
        n = ws_frame_header_encode(frame, data_opcode(c, utf8), true, head_len + body_len + 1,
                                   NULL);
    /* After a shared body the output ends in a reference: libevent would give the next head a
     * chain twice the body's size. Asking for the head's size makes it 1 KiB. */
    if (shared)
        evbuffer_expand(out, n + head_len);
    if (n + head_len + (shared ? 0 : body_len + 1) <= sizeof(frame)) {
        memcpy(frame + n, head, head_len);
        n += head_len;
        if (!shared) {
            if (body_len > 0)
                memcpy(frame + n, body, body_len);
            frame[n + body_len] = '\0';
            n += body_len + 1;
        }
        evbuffer_add(out, frame, n);
    } else if (shared || add_long_frame(out, frame, n, head, head_len, body, body_len) != 0) {
        evbuffer_add(out, frame, n); /* the WebSocket header alone (n may be 0) */
        evbuffer_add(out, head, head_len);
        if (!shared) {
            evbuffer_add(out, body, body_len);
            evbuffer_add(out, "", 1);
        }
    }
    /* msg->body is followed by a NUL in the same allocation: it ends the frame too. */
    if (shared)
        evbuffer_add_reference(out, msg->body, msg->body_len + 1, conn_release_message,
                               message_ref(msg));
    note_frame_end(c);
    c->last_write_ms = broker_now_ms(c->broker);
}

void conn_send_message(struct conn *c, const char *head, size_t head_len, size_t common_len,
                       struct message *msg, enum stomp_version v, bool utf8)
{
    if (c->state == CONN_OPEN && c->deflate &&
        conn_deflate_message(c, data_opcode(c, utf8), head, head_len, common_len, msg, v)) {
        sent_deflated(c);
        return;
    }
    conn_send_frame(c, head, head_len, msg, NULL, 0, utf8);
}

void conn_send_bytes(struct conn *c, const char *prefix, size_t prefix_len, const char *data,
                     size_t len)
{
    if (c->state != CONN_OPEN)
        return;
    struct evbuffer *out = bufferevent_get_output(c->bev);
    if (prefix_len > 0) /* an empty add can still cost libevent a chain */
        evbuffer_add(out, prefix, prefix_len);
    evbuffer_add(out, data, len);
    note_frame_end(c);
    c->last_write_ms = broker_now_ms(c->broker);
}

void conn_send_heartbeat(struct conn *c)
{
    if (c->state != CONN_OPEN)
        return;
    if (c->transport == CONN_WS)
        send_ws_header(c, WS_OP_TEXT, 1);
    evbuffer_add(bufferevent_get_output(c->bev), "\n", 1);
    note_frame_end(c);
    c->last_write_ms = broker_now_ms(c->broker);
}

static void send_ws_control(struct conn *c, enum ws_opcode op, const uint8_t *payload, size_t len)
{
    send_ws_header(c, op, len);
    evbuffer_add(bufferevent_get_output(c->bev), payload, len);
    note_frame_end(c);
}

void conn_close_gracefully(struct conn *c, uint16_t ws_code, const char *reason)
{
    if (c->state == CONN_CLOSING || c->state == CONN_DEAD)
        return;
    if (c->tls && !c->tls_ready) {
        conn_close(c); /* nothing can be said before the handshake: no point waiting */
        return;
    }
    if (c->transport == CONN_WS && c->state == CONN_OPEN) {
        uint8_t payload[WS_CONTROL_PAYLOAD_MAX];
        size_t n = ws_close_payload_encode(payload, ws_code, reason);
        send_ws_control(c, WS_OP_CLOSE, payload, n);
    }
    c->state = CONN_CLOSING;
    log_debug(c->id, "closing (%u %s)", ws_code, reason);
    /* Keep reading (and discarding) so the peer's close and FIN are seen; write_cb finishes.
     * A connection paused by flow control or a login's hash is read again for that. */
    if (c->read_paused) {
        c->read_paused = false;
        bufferevent_enable(c->bev, EV_READ);
    }
    bufferevent_setwatermark(c->bev, EV_WRITE, 0, 0);
    arm_timer(c, CLOSING_DEADLINE_MS);
    if (conn_outbound(c) == 0)
        output_drained(c);
}

/* Answers an HTTP request that will not become a WebSocket, then closes. */
static void http_reply(struct conn *c, int status, const char *message)
{
    char response[1024];
    int n = ws_http_error_response(response, sizeof(response), status, message);
    if (n > 0)
        evbuffer_add(bufferevent_get_output(c->bev), response, (size_t)n);
    log_info(c->id, "http %d from %s: %s", status, c->peer, message);
    conn_close_gracefully(c, 0, message);
}

static bool path_is(const struct ws_slice *path, const char *want)
{
    return path->len == strlen(want) && memcmp(path->ptr, want, path->len) == 0;
}

static int version_of_subprotocol(enum ws_subprotocol p)
{
    switch (p) {
    case WS_SUBPROTOCOL_V12_STOMP:
        return 12;
    case WS_SUBPROTOCOL_V11_STOMP:
        return 11;
    case WS_SUBPROTOCOL_V10_STOMP:
        return 10;
    default:
        return 0;
    }
}

/* The access_token query parameter's value, or a zero slice. */
static struct ws_slice query_token(const struct ws_slice *query)
{
    static const char key[] = "access_token=";
    const size_t key_len = sizeof(key) - 1;
    struct ws_slice none = {NULL, 0};
    if (query->ptr == NULL)
        return none;
    const char *p = query->ptr, *end = query->ptr + query->len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        if ((size_t)(stop - p) > key_len && memcmp(p, key, key_len) == 0)
            return (struct ws_slice){p + key_len, (size_t)(stop - p) - key_len};
        p = stop + 1;
    }
    return none;
}

/* Keeps a bearer token offered at the handshake for the session's CONNECT. */
static void keep_bearer(struct conn *c, const struct ws_http_request *req)
{
    struct ws_slice token = query_token(&req->query);
    const struct ws_slice *auth = &req->authorization;
    if (auth->ptr != NULL && auth->len > 7 && strncasecmp(auth->ptr, "Bearer ", 7) == 0)
        token = (struct ws_slice){auth->ptr + 7, auth->len - 7};
    if (token.ptr == NULL || token.len == 0)
        return;
    c->bearer = strndup(token.ptr, token.len);
    c->bearer_len = c->bearer != NULL ? token.len : 0;
}

static void upgrade(struct conn *c, const struct ws_http_request *req)
{
    struct ws_upgrade up;
    if (ws_upgrade_check(req, &up) != 0) {
        http_reply(c, up.status, up.message);
        return;
    }
    if (!security_origin_allowed(&c->broker->cfg, req->origin.ptr, req->origin.len)) {
        log_info(c->id, "origin '%.*s' not allowed",
                 (int)(req->origin.len > 200 ? 200 : req->origin.len), req->origin.ptr);
        http_reply(c, 403, "origin not allowed (auth.allow_origin)");
        return;
    }
    keep_bearer(c, req);
    char extensions[128];
    if (conn_deflate_accept(c, req, extensions, sizeof(extensions)))
        up.extensions = extensions;
    char response[512];
    int n = ws_upgrade_response(response, sizeof(response), &up);
    if (n < 0) {
        http_reply(c, 500, "cannot build the upgrade response");
        return;
    }
    evbuffer_add(bufferevent_get_output(c->bev), response, (size_t)n);
    c->subprotocol = up.subprotocol;
    c->state = CONN_OPEN;
    evtimer_del(c->timer);
    c->session = c->broker->conn_handler->stomp_open(c, version_of_subprotocol(up.subprotocol));
    if (c->session == NULL) {
        conn_close(c);
        return;
    }
    log_debug(c->id, "websocket open, subprotocol %s%s", ws_subprotocol_name(up.subprotocol),
              c->deflate ? ", permessage-deflate" : "");
}

/* "Expect: 100-continue" (curl sends it for larger bodies and waits a second without an answer). */
static bool expects_continue(const struct ws_http_request *req)
{
    const struct ws_http_header *h = ws_http_header_find(req, "expect");
    return h != NULL && req->minor_version >= 1 && h->value.len == 12 &&
           strncasecmp(h->value.ptr, "100-continue", 12) == 0;
}

/*
 * A request for the plain HTTP routes. One whose route reads the body (the publish API) is
 * served once the body's Content-Length bytes follow the head, the handshake timer still
 * running; every other request is answered from its head.
 */
static void serve_http(struct conn *c, struct evbuffer *in, struct ws_http_request *req,
                       size_t head_len)
{
    size_t body_len = c->broker->conn_handler->http_body_wanted(c, req);
    size_t have = evbuffer_get_length(in);
    if (body_len == 0) {
        c->broker->conn_handler->http_serve(c, req, NULL, 0);
        return;
    }
    if (have < head_len + body_len) {
        if (have == head_len && expects_continue(req)) /* only the head is here: once */
            evbuffer_add_printf(bufferevent_get_output(c->bev), "HTTP/1.1 100 Continue\r\n\r\n");
        return;
    }
    /* Making head and body contiguous may move the head: parse it again where it now lies. */
    const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)(head_len + body_len));
    if (data == NULL ||
        ws_http_parse(req, data, head_len, c->broker->cfg.max_http_header_bytes) != (int)head_len) {
        http_reply(c, 500, "cannot read the request body");
        return;
    }
    c->broker->conn_handler->http_serve(c, req, data + head_len, body_len);
}

/* Returns the bytes of the request head consumed, 0 when more are needed. */
static size_t handle_http(struct conn *c, struct evbuffer *in)
{
    if (c->http_pending != NULL)
        return 0; /* a request is being answered: what follows waits (and is never served) */
    size_t len = evbuffer_get_length(in);
    size_t limit = c->broker->cfg.max_http_header_bytes;
    size_t look = len < limit + 1 ? len : limit + 1;
    const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)look);
    struct ws_http_request req;
    int rc = ws_http_parse(&req, data, look, limit);
    if (rc == WS_HTTP_INCOMPLETE)
        return 0;
    if (rc == WS_HTTP_ERR_TOO_LARGE) {
        c->broker->stats.limit_hits[LIMIT_HTTP_HEADER_BYTES]++;
        http_reply(c, 431, "request header exceeds max_http_header_bytes");
        return 0;
    }
    if (rc < 0) {
        http_reply(c, 400, "malformed HTTP request");
        return 0;
    }
    if (c->broker->conn_handler->sse_open != NULL && path_is(&req.path, CONN_SSE_PATH)) {
        c->broker->conn_handler->sse_open(c, &req);
        return (size_t)rc; /* a reader sends nothing more: what follows is drained */
    }
    if (c->transport != CONN_WS || !path_is(&req.path, c->broker->cfg.ws_path)) {
        serve_http(c, in, &req, (size_t)rc);
        return 0;
    }
    upgrade(c, &req);
    return (size_t)rc;
}

static void protocol_failure(struct conn *c, int err)
{
    /* an inflated message is held to the same limit as a plain one: the close names the key */
    const char *reason = err == WS_ERR_INFLATED_TOO_BIG
                             ? "inflated message exceeds limits.max_ws_message"
                             : ws_error_message(err);
    if (err == WS_ERR_TOO_BIG || err == WS_ERR_INFLATED_TOO_BIG)
        c->broker->stats.limit_hits[LIMIT_WS_MESSAGE]++;
    else
        c->broker->stats.protocol_errors++;
    log_info(c->id, "websocket protocol error from %s: %s", c->peer, reason);
    conn_close_gracefully(c, ws_error_close_code(err), reason);
}

static void handle_ws_event(struct conn *c, const struct ws_event *ev)
{
    switch (ev->type) {
    case WS_EVENT_DATA:
        if (ev->compressed) {
            int err = conn_deflate_input(c, ev);
            if (err < 0)
                protocol_failure(c, err);
        } else if (ev->len > 0) {
            c->broker->conn_handler->stomp_feed(c->session, (const char *)ev->data, ev->len);
        }
        break;
    case WS_EVENT_PING:
        send_ws_control(c, WS_OP_PONG, ev->data, ev->len);
        break;
    case WS_EVENT_CLOSE: {
        uint16_t code = ev->close_code == WS_CLOSE_NO_STATUS ? WS_CLOSE_NORMAL : ev->close_code;
        log_debug(c->id, "peer sent close %u", ev->close_code);
        conn_close_gracefully(c, code, "");
        break;
    }
    default:
        break;
    }
}

/* Decodes WebSocket frames from the input, chunk by chunk, unmasking in place. */
static void handle_ws(struct conn *c, struct evbuffer *in)
{
    while (c->state == CONN_OPEN && !c->read_paused && evbuffer_get_length(in) > 0) {
        size_t chunk = evbuffer_get_contiguous_space(in);
        uint8_t *data = evbuffer_pullup(in, (ev_ssize_t)chunk);
        size_t used = 0;
        while (c->state == CONN_OPEN && !c->read_paused && used < chunk) {
            struct ws_event ev;
            ssize_t n = ws_decoder_decode(&c->ws, data + used, chunk - used, &ev);
            if (n < 0) {
                protocol_failure(c, (int)n);
                break;
            }
            used += (size_t)n;
            handle_ws_event(c, &ev);
            if (n == 0 && ev.type == WS_EVENT_NONE)
                break;
        }
        evbuffer_drain(in, used);
        if (used < chunk && c->state == CONN_OPEN && !c->read_paused)
            break;
    }
}

static void handle_tcp(struct conn *c, struct evbuffer *in)
{
    while (c->state == CONN_OPEN && !c->read_paused && evbuffer_get_length(in) > 0) {
        size_t chunk = evbuffer_get_contiguous_space(in);
        const char *data = (const char *)evbuffer_pullup(in, (ev_ssize_t)chunk);
        evbuffer_drain(in, c->broker->conn_handler->stomp_feed(c->session, data, chunk));
    }
}

static void read_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    struct evbuffer *in = bufferevent_get_input(bev);
    c->last_read_ms = broker_now_ms(c->broker);
    if (c->state == CONN_HTTP) {
        size_t used = handle_http(c, in);
        if (used == 0)
            return;
        evbuffer_drain(in, used);
    }
    if (c->state != CONN_OPEN) {
        evbuffer_drain(in, evbuffer_get_length(in)); /* closing: input is no longer read */
        return;
    }
    if (c->transport == CONN_WS)
        handle_ws(c, in);
    else if (c->transport == CONN_SSE)
        evbuffer_drain(in, evbuffer_get_length(in)); /* an SSE reader has nothing to say */
    else
        handle_tcp(c, in);
    if (c->state != CONN_OPEN)
        evbuffer_drain(in, evbuffer_get_length(in));
}

/* The output went down to the low-water mark (or empty): resume queues, or finish a close. */
static void output_drained(struct conn *c)
{
    if (c->state == CONN_OPEN) {
        if (c->session != NULL)
            c->broker->conn_handler->stomp_drained(c->session);
        return;
    }
    if (c->state == CONN_CLOSING && conn_outbound(c) == 0) {
        if (c->tls) {
            conn_close(c); /* everything is out; a FIN under TLS would skip close_notify */
            return;
        }
        /* Everything is out: send FIN and wait (bounded by the timer) for the peer's. */
        evutil_socket_t fd = bufferevent_getfd(c->bev);
        if (fd >= 0) { /* a socket */
            shutdown(fd, SHUT_WR);
            return;
        }
        /* No socket (conn_attach): end of file at the other end instead, once; the flush
         * reports the output drained again, which must not flush again. */
        bufferevent_setcb(c->bev, read_cb, NULL, event_cb, c);
        bufferevent_flush(c->bev, EV_WRITE, BEV_FINISHED);
    }
}

static void write_cb(struct bufferevent *bev, void *arg)
{
    struct conn *c = arg;
    if (c->write_armed && evbuffer_get_length(bufferevent_get_output(bev)) == 0) {
        c->write_armed = false; /* all out: back to direct writes */
        bufferevent_disable(bev, EV_WRITE);
    }
    output_drained(c);
}

/* One writev of what is queued; what the socket does not take is left to libevent's write event. */
static void flush_one(struct conn *c)
{
    struct evbuffer *out = bufferevent_get_output(c->bev);
    size_t before = evbuffer_get_length(out);
    if (c->state == CONN_DEAD || before == 0)
        return;
    /* bufferevents keep their output's front frozen outside their own write callback */
    evbuffer_unfreeze(out, 1);
    int written = evbuffer_write(out, bufferevent_getfd(c->bev));
    evbuffer_freeze(out, 1);
    size_t after = evbuffer_get_length(out);
    if (written < 0 || after > 0) {
        /* EAGAIN, or an error libevent will report through event_cb when it retries */
        c->write_armed = true;
        bufferevent_enable(c->bev, EV_WRITE);
    }
    /* as libevent's write watermark would: only when crossing it, or done */
    size_t low = c->state == CONN_OPEN ? c->broker->cfg.outbound_high_water / 2 : 0;
    if (after <= low && (before > low || c->state != CONN_OPEN))
        output_drained(c);
}

/*
 * Writes the output of every connection that got some during this loop turn: one writev each,
 * however many frames were queued, with no write event when the socket takes it all (the common
 * case: an event per delivery would cost two epoll_ctl calls and a wakeup). Run by the
 * flush event, after the turn's reads have queued their deliveries.
 */
static void flush_all(struct broker *b)
{
    while (b->flush_list != NULL) {
        struct conn *c = b->flush_list;
        flush_unlink(c);
        flush_one(c);
    }
}

/* Frees the connections closed during this loop turn; none is ever freed in its own callback. */
static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct broker *b = arg;
    (void)fd;
    (void)what;
    while (b->reap_list != NULL) {
        struct conn *c = b->reap_list;
        b->reap_list = c->reap_next;
        conn_free(c);
    }
    if (b->shutting_down && b->conn_count == 0)
        broker_finish_shutdown(b);
}

static void flush_cb(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    flush_all(arg);
}

int conn_lists_init(struct broker *b)
{
    b->reap_event = event_new(b->base, -1, 0, reap_cb, b);
    b->flush_event = event_new(b->base, -1, 0, flush_cb, b);
    return b->reap_event != NULL && b->flush_event != NULL ? 0 : -1;
}

void conn_free_all(struct broker *b)
{
    while (b->conns != NULL)
        conn_free(b->conns);
    b->reap_list = NULL;
    conn_deflate_loop_free(b);
    if (b->reap_event != NULL)
        event_free(b->reap_event);
    if (b->flush_event != NULL)
        event_free(b->flush_event);
    b->reap_event = b->flush_event = NULL;
}

static void event_cb(struct bufferevent *bev, short what, void *arg)
{
    struct conn *c = arg;
    (void)bev;
    if (what & BEV_EVENT_CONNECTED)
        c->tls_ready = true; /* bufferevent_openssl: the server-side handshake finished */
    if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR)) {
        if (c->state == CONN_OPEN || c->state == CONN_HTTP)
            log_debug(c->id, "peer %s %s", c->peer,
                      (what & BEV_EVENT_EOF) ? "closed the connection" : "connection error");
        conn_close(c);
    }
}

static void timer_cb(evutil_socket_t fd, short what, void *arg)
{
    struct conn *c = arg;
    (void)fd;
    (void)what;
    switch (c->state) {
    case CONN_HTTP:
        c->broker->stats.limit_hits[LIMIT_HANDSHAKE_TIMEOUT]++;
        if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0) {
            http_reply(c, 408, "handshake not completed within handshake_timeout_ms");
        } else {
            log_info(c->id, "no handshake from %s within handshake_timeout_ms", c->peer);
            conn_close(c);
        }
        break;
    case CONN_CLOSING:
        conn_close(c);
        break;
    default:
        break;
    }
}

void conn_pause_reading(struct conn *c)
{
    c->read_paused = true;
    bufferevent_disable(c->bev, EV_READ);
}

void conn_resume_reading(struct conn *c)
{
    if (!c->read_paused || c->state != CONN_OPEN)
        return;
    c->read_paused = false;
    c->last_read_ms = broker_now_ms(c->broker); /* its heart-beats were not read meanwhile */
    bufferevent_enable(c->bev, EV_READ);
    if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
        bufferevent_trigger(c->bev, EV_READ, BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}
