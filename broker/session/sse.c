/*
 * sse.c - GET /sse readers: the request, the session's CONNECT and SUBSCRIBEs built from it, and
 * the events written in place of MESSAGE frames (see sse.h for the shape of it).
 */
#include "broker/session/sse.h"
#include "broker/base/log.h"
#include "broker/core/destination.h"
#include "broker/core/history.h"
#include "broker/session/session.h"
#include "broker/session/sse_request.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "stomp/encode.h"
#include "ws/handshake.h"
#include "ws/utf8.h"

/* What the browser waits before it reconnects (EventSource's `retry:`): a dropped reader is back
 * within a second, which the history makes gapless. */
#define SSE_RETRY_MS 1000

/* Bytes of credentials taken from a Basic Authorization header. */
#define SSE_CREDENTIALS_MAX 1024

struct sse_stream {
    struct conn *conn;       /* borrowed: owns the session that owns this stream */
    struct sse_request *req; /* owned: the destinations, read again at CONNECTED */
    struct sse_token *token; /* owned: what the reader has had per destination */
    bool head_sent;          /* the 200 and its headers are out: errors end the stream */
    bool id_stale;           /* the token changed since id_line was made */
    size_t id_line_len;
    char id_line[SSE_TOKEN_MAX + 8]; /* "id: TOKEN\n", or empty while the token has no mark */
    char cors[512];                  /* CORS header lines for an allowed Origin, or "" */
    struct event *keepalive;         /* owned: a comment every sse.keepalive_s */
};

/* ---- answers -------------------------------------------------------------------------------- */

/* Appends s as a JSON string (quotes included). Bytes of a string that is not UTF-8 are taken
 * as Latin-1, so the JSON stays valid whatever the input. */
static void json_string(struct evbuffer *out, const char *s, size_t len)
{
    bool utf8 = ws_utf8_valid((const uint8_t *)s, len);
    evbuffer_add(out, "\"", 1);
    size_t run = 0; /* bytes copied as they are, added in one go */
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        bool plain = ch >= 0x20 && ch != '"' && ch != '\\' && (utf8 || ch < 0x80);
        if (plain) {
            run++;
            continue;
        }
        evbuffer_add(out, s + i - run, run);
        run = 0;
        if (ch == '"' || ch == '\\')
            evbuffer_add_printf(out, "\\%c", ch);
        else if (ch == '\n')
            evbuffer_add(out, "\\n", 2);
        else
            evbuffer_add_printf(out, "\\u%04x", ch);
    }
    evbuffer_add(out, s + len - run, run);
    evbuffer_add(out, "\"", 1);
}

/* A whole JSON error answer ({"error": message}), then the close. */
static void answer_error(struct conn *c, int status, const char *cors, const char *message)
{
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        conn_close(c);
        return;
    }
    evbuffer_add_printf(body, "{\"error\":");
    json_string(body, message, strlen(message));
    evbuffer_add_printf(body, "}\n");
    struct evbuffer *out = bufferevent_get_output(c->bev);
    evbuffer_add_printf(out,
                        "HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                        "Content-Length: %zu\r\nCache-Control: no-store\r\n%s%s%s"
                        "Connection: close\r\n\r\n",
                        status, ws_http_status_text(status), evbuffer_get_length(body), cors,
                        status == 401 ? "WWW-Authenticate: Bearer realm=\"stompws\"\r\n" : "",
                        status == 405 ? "Allow: GET\r\n" : "");
    evbuffer_add_buffer(out, body);
    evbuffer_free(body);
    log_info(c->id, "sse %d to %s: %s", status, c->peer, message);
    conn_close_gracefully(c, 0, message);
}

/* The CORS lines for an Origin the allow-list accepts (any, when the list is empty). */
static void cors_lines(const struct ws_http_request *req, char *out, size_t cap)
{
    out[0] = '\0';
    if (req->origin.ptr == NULL || req->origin.len > 256)
        return;
    snprintf(out, cap,
             "Access-Control-Allow-Origin: %.*s\r\nAccess-Control-Allow-Credentials: true\r\n"
             "Vary: Origin\r\n",
             (int)req->origin.len, req->origin.ptr);
}

static void write_head(struct sse_stream *st)
{
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\n"
                     "Cache-Control: no-store\r\nX-Accel-Buffering: no\r\n%s"
                     "Connection: close\r\n\r\nretry: %d\n\n",
                     st->cors, SSE_RETRY_MS);
    if (n > 0 && (size_t)n < sizeof(head))
        conn_send_bytes(st->conn, NULL, 0, head, (size_t)n);
    st->head_sent = true;
}

/* ---- the keepalive -------------------------------------------------------------------------- */

static void keepalive_cb(evutil_socket_t fd, short what, void *arg)
{
    struct sse_stream *st = arg;
    (void)fd;
    (void)what;
    struct conn *c = st->conn;
    uint64_t period_ms = (uint64_t)c->broker->cfg.sse_keepalive_s * 1000;
    /* A stream that carried an event lately needs no comment: proxies saw it alive. */
    if (broker_now_ms(c->broker) - c->last_write_ms + 50 >= period_ms)
        conn_send_bytes(c, NULL, 0, ":\n", 2);
}

static void start_keepalive(struct sse_stream *st)
{
    struct broker *b = st->conn->broker;
    st->keepalive = event_new(b->base, -1, EV_PERSIST, keepalive_cb, st);
    struct timeval tv = {.tv_sec = (time_t)b->cfg.sse_keepalive_s};
    if (st->keepalive != NULL)
        event_add(st->keepalive, &tv);
}

/* ---- events --------------------------------------------------------------------------------- */

/* "data: {"destination":...,"headers":{...},"body":...}" and the blank line. */
static void json_event(struct evbuffer *out, const struct message *msg)
{
    evbuffer_add_printf(out, "data: {\"destination\":");
    json_string(out, msg->destination, msg->destination_len);
    evbuffer_add_printf(out, ",\"headers\":{\"message-id\":");
    json_string(out, msg->id, strlen(msg->id));
    if (msg->stream_offset != 0)
        evbuffer_add_printf(
            out, ",\"x-stream-offset\":\"%" PRIu64 "\",\"x-stream-epoch\":\"%08" PRIx64 "\"",
            msg->stream_offset, msg->stream_epoch);
    for (size_t i = 0; i < msg->header_count; i++) {
        const struct stomp_header *h = &msg->headers[i];
        evbuffer_add(out, ",", 1);
        json_string(out, h->name, h->name_len);
        evbuffer_add(out, ":", 1);
        json_string(out, h->value, h->value_len);
    }
    evbuffer_add_printf(out, "},\"body\":");
    if (ws_utf8_valid((const uint8_t *)msg->body, msg->body_len)) {
        json_string(out, msg->body, msg->body_len);
    } else {
        /* Not UTF-8: base64, which EVP_EncodeBlock writes padded, unbroken, NUL-ended. */
        evbuffer_add(out, "\"", 1);
        struct evbuffer_iovec v;
        size_t room = (msg->body_len + 2) / 3 * 4 + 1;
        if (evbuffer_reserve_space(out, (ev_ssize_t)room, &v, 1) == 1) {
            int n =
                EVP_EncodeBlock(v.iov_base, (const unsigned char *)msg->body, (int)msg->body_len);
            v.iov_len = n > 0 ? (size_t)n : 0;
            evbuffer_commit_space(out, &v, 1);
        }
        evbuffer_add_printf(out, "\",\"encoding\":\"base64\"");
    }
    evbuffer_add_printf(out, "}\n\n");
}

/* The body itself, one data: line per line of it (CR LF, CR and LF all end a line in SSE). */
static void raw_event(struct evbuffer *out, const struct message *msg)
{
    const char *p = msg->body, *end = msg->body + msg->body_len;
    for (;;) {
        const char *eol = p;
        while (eol < end && *eol != '\n' && *eol != '\r')
            eol++;
        evbuffer_add(out, "data: ", 6);
        evbuffer_add(out, p, (size_t)(eol - p));
        evbuffer_add(out, "\n", 1);
        if (eol == end)
            break;
        p = eol + (eol + 1 < end && eol[0] == '\r' && eol[1] == '\n' ? 2 : 1);
    }
    evbuffer_add(out, "\n", 1);
}

/* The event's data lines for format, built once per message and shared by every reader. */
static const char *event_data(struct message *msg, enum sse_format format, size_t *len)
{
    if (msg->sse_data[format] != NULL) {
        *len = msg->sse_data_len[format];
        return msg->sse_data[format];
    }
    struct evbuffer *out = evbuffer_new();
    if (out == NULL)
        return NULL;
    if (format == SSE_FORMAT_RAW)
        raw_event(out, msg);
    else
        json_event(out, msg);
    size_t n = evbuffer_get_length(out);
    char *data = malloc(n > 0 ? n : 1);
    if (data != NULL)
        evbuffer_remove(out, data, n);
    evbuffer_free(out);
    msg->sse_data[format] = data;
    msg->sse_data_len[format] = n;
    *len = n;
    return data;
}

int sse_deliver(struct sse_stream *st, struct message *msg)
{
    if (msg->stream_offset != 0) {
        if (sse_token_seen(st->token, msg->destination, msg->destination_len, msg->stream_offset,
                           msg->stream_epoch))
            return 0; /* the reader had it before it reconnected */
        if (sse_token_note(st->token, msg->destination, msg->destination_len, msg->stream_offset,
                           msg->stream_epoch) != NULL)
            st->id_stale = true;
    }
    size_t len;
    const char *data = event_data(msg, st->req->format, &len);
    if (data == NULL)
        return -1;
    if (st->id_stale) {
        st->id_stale = false;
        memcpy(st->id_line, "id: ", 4);
        size_t n = sse_token_encode(st->token, st->id_line + 4, sizeof(st->id_line) - 5);
        st->id_line[4 + n] = '\n';
        st->id_line_len = n > 0 ? n + 5 : 0;
    }
    conn_send_bytes(st->conn, st->id_line, st->id_line_len, data, len);
    return 0;
}

/* ---- what the session says ------------------------------------------------------------------ */

void sse_fail(struct sse_stream *st, bool connected, const char *message)
{
    struct conn *c = st->conn;
    if (!st->head_sent) {
        answer_error(c, connected ? 403 : 401, st->cors, message);
        return;
    }
    /* A comment the reader's EventSource ignores but a person with curl reads, then the end:
     * the browser reconnects and resumes, or hears the reason as a 401/403. */
    char line[600];
    int n = snprintf(line, sizeof(line), ": error: %.500s\n\n", message);
    if (n <= 0 || (size_t)n >= sizeof(line))
        return;
    for (int i = 9; i < n - 2; i++) /* one comment line, whatever the message holds */
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    conn_send_bytes(c, NULL, 0, line, (size_t)n);
}

bool sse_connected(struct sse_stream *st, const struct security *sec,
                   const struct auth_identity *id)
{
    struct conn *c = st->conn;
    for (size_t i = 0; i < st->req->destination_count; i++) {
        struct sse_slice d = st->req->destinations[i];
        if (security_allows(sec, id, AUTH_READ, d.ptr, d.len))
            continue;
        c->broker->stats.permission_denials++;
        log_info(c->id, "user '%s' may not read %.*s", id->user, (int)d.len, d.ptr);
        char message[600];
        snprintf(message, sizeof(message), "permission denied: cannot read %.*s",
                 (int)(d.len > 200 ? 200 : d.len), d.ptr);
        answer_error(c, 403, st->cors, message);
        return false;
    }
    write_head(st);
    start_keepalive(st);
    log_debug(c->id, "sse reader of %zu destination(s), user '%s'", st->req->destination_count,
              id->user);
    return true;
}

void sse_stream_free(struct sse_stream *st)
{
    if (st == NULL)
        return;
    if (st->keepalive != NULL)
        event_free(st->keepalive);
    free(st->req);
    free(st->token);
    free(st);
}

/* ---- the request ---------------------------------------------------------------------------- */

/* What sse_open() puts together before the session exists. */
struct sse_open_args {
    bool resumed; /* Last-Event-ID was given and decoded into the token */
    struct sse_slice login, passcode;
    char credentials[SSE_CREDENTIALS_MAX];
};

/* Every destination is a /topic/ or /queue/ name; raw is for one exact destination; the
 * x-stream-offset value is one SUBSCRIBE takes. NULL, or what is wrong. */
static const char *check_request(const struct sse_request *r)
{
    bool any_wildcard = false;
    for (size_t i = 0; i < r->destination_count; i++) {
        struct sse_slice d = r->destinations[i];
        enum dest_kind kind = destination_kind(d.ptr, d.len);
        if (kind != DEST_TOPIC && kind != DEST_QUEUE)
            return "a destination must start with /topic/ or /queue/";
        any_wildcard = any_wildcard || destination_is_wildcard(d.ptr, d.len);
    }
    if (r->format == SSE_FORMAT_RAW && (r->destination_count != 1 || any_wildcard))
        return "format=raw needs exactly one destination, without wildcards";
    if (r->stream_offset.ptr == NULL)
        return NULL;
    struct history_request h;
    if (history_parse_request(r->stream_offset.ptr, r->stream_offset.len, NULL, 0, &h) != 0)
        return "x-stream-offset must be next, last, first, offset=N or timestamp=T";
    if (h.from == HISTORY_OFFSET && any_wildcard)
        return "x-stream-offset=offset=N needs exact destinations, not wildcards";
    return NULL;
}

/* Basic credentials into args (login and passcode point into args->credentials). */
static bool basic_credentials(const struct ws_slice *auth, struct sse_open_args *args)
{
    if (auth->len < 7 || strncasecmp(auth->ptr, "Basic ", 6) != 0)
        return true; /* none given: fine */
    const char *b64 = auth->ptr + 6;
    size_t len = auth->len - 6;
    if (len % 4 != 0 || len / 4 * 3 >= sizeof(args->credentials))
        return false;
    unsigned char *out = (unsigned char *)args->credentials;
    int n = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)len);
    if (n < 0)
        return false;
    for (size_t pad = len; pad > 0 && b64[pad - 1] == '='; pad--)
        n--; /* EVP_DecodeBlock counts the padding as zero bytes */
    const char *colon = memchr(args->credentials, ':', (size_t)n);
    if (colon == NULL)
        return false;
    for (int i = 0; i < n; i++) /* they become CONNECT header lines */
        if (args->credentials[i] == '\n' || args->credentials[i] == '\r' ||
            args->credentials[i] == '\0')
            return false;
    args->login = (struct sse_slice){args->credentials, (size_t)(colon - args->credentials)};
    args->passcode = (struct sse_slice){colon + 1, (size_t)n - args->login.len - 1};
    return true;
}

/* A bearer token from Authorization or access_token, for the session's CONNECT. */
static void keep_bearer(struct conn *c, const struct ws_http_request *req,
                        const struct sse_request *r)
{
    struct sse_slice token = r->access_token;
    const struct ws_slice *auth = &req->authorization;
    if (auth->ptr != NULL && auth->len > 7 && strncasecmp(auth->ptr, "Bearer ", 7) == 0)
        token = (struct sse_slice){auth->ptr + 7, auth->len - 7};
    if (token.ptr == NULL || token.len == 0)
        return;
    c->bearer = strndup(token.ptr, token.len);
    c->bearer_len = c->bearer != NULL ? token.len : 0;
}

/* The x-stream-offset (and epoch) lines of destination i's SUBSCRIBE. */
static void history_lines(const struct sse_stream *st, size_t i, bool resumed, struct evbuffer *out)
{
    struct sse_slice d = st->req->destinations[i];
    struct sse_slice asked = st->req->stream_offset;
    if (!resumed) {
        if (asked.ptr != NULL)
            evbuffer_add_printf(out, "x-stream-offset:%.*s\n", (int)asked.len, asked.ptr);
        return;
    }
    struct sse_mark *m =
        destination_is_wildcard(d.ptr, d.len) ? NULL : sse_token_find(st->token, d.ptr, d.len);
    if (m != NULL) {
        evbuffer_add_printf(out, "x-stream-offset:offset=%" PRIu64 "\nx-stream-epoch:%" PRIx64 "\n",
                            m->offset + 1, m->epoch);
        return;
    }
    /* No mark to start from: what was asked if it reaches further back, else everything since
     * the stream began. The marks skip what the reader already had. */
    struct history_request h;
    if (asked.ptr != NULL && history_parse_request(asked.ptr, asked.len, NULL, 0, &h) == 0 &&
        (h.from == HISTORY_FIRST || h.from == HISTORY_OFFSET ||
         (h.from == HISTORY_TIMESTAMP && h.value <= st->token->start_s)))
        evbuffer_add_printf(out, "x-stream-offset:%.*s\n", (int)asked.len, asked.ptr);
    else
        evbuffer_add_printf(out, "x-stream-offset:timestamp=%" PRIu64 "\n", st->token->start_s);
}

/* CONNECT with the credentials, then one SUBSCRIBE per destination, as a client would send. */
static int build_frames(const struct sse_stream *st, const struct sse_open_args *args,
                        struct evbuffer *out)
{
    evbuffer_add_printf(out, "CONNECT\naccept-version:1.2\nhost:stompws\nheart-beat:0,0\n");
    if (args->login.ptr != NULL)
        evbuffer_add_printf(out, "login:%.*s\npasscode:%.*s\n", (int)args->login.len,
                            args->login.ptr, (int)args->passcode.len, args->passcode.ptr);
    evbuffer_add(out, "\n", 2); /* the blank line and the NUL */
    for (size_t i = 0; i < st->req->destination_count; i++) {
        struct sse_slice d = st->req->destinations[i];
        char line[SSE_DESTINATION_MAX * 2 + 16];
        size_t n = stomp_encode_header(line, sizeof(line), STOMP_V1_2, STOMP_CMD_SUBSCRIBE,
                                       "destination", 11, d.ptr, d.len);
        if (n >= sizeof(line))
            return -1;
        evbuffer_add_printf(out, "SUBSCRIBE\nid:sse-%zu\nack:auto\n", i);
        evbuffer_add(out, line, n);
        history_lines(st, i, args->resumed, out);
        evbuffer_add(out, "\n", 2);
    }
    return 0;
}

/* The stream and what the request says; NULL after an error answer. */
static struct sse_stream *take_request(struct conn *c, const struct ws_http_request *req,
                                       struct sse_open_args *args)
{
    struct sse_stream *st = calloc(1, sizeof(*st));
    if (st != NULL) {
        st->req = malloc(sizeof(*st->req));
        st->token = calloc(1, sizeof(*st->token));
    }
    if (st == NULL || st->req == NULL || st->token == NULL) {
        sse_stream_free(st);
        answer_error(c, 500, "", "out of memory");
        return NULL;
    }
    st->conn = c;
    cors_lines(req, st->cors, sizeof(st->cors));
    const char *problem = NULL;
    int rc =
        sse_request_parse(st->req, req->query.ptr, req->query.ptr != NULL ? req->query.len : 0);
    if (rc != 0)
        problem = sse_request_error_message(rc);
    else
        problem = check_request(st->req);
    const struct ws_http_header *last = ws_http_header_find(req, "last-event-id");
    if (problem == NULL && last != NULL && last->value.len > 0) {
        rc = sse_token_decode(st->token, last->value.ptr, last->value.len);
        problem = rc != 0 ? sse_request_error_message(rc) : NULL;
        args->resumed = rc == 0;
    }
    if (problem != NULL) {
        answer_error(c, 400, st->cors, problem);
        sse_stream_free(st);
        return NULL;
    }
    if (!args->resumed)
        st->token->start_s = broker_wall_ms() / 1000;
    return st;
}

void sse_open(struct conn *c, const struct ws_http_request *req)
{
    bool origin_ok = security_origin_allowed(&c->broker->cfg, req->origin.ptr, req->origin.len);
    char cors[512] = "";
    if (origin_ok)
        cors_lines(req, cors, sizeof(cors));
    if (req->method.len != 3 || memcmp(req->method.ptr, "GET", 3) != 0) {
        answer_error(c, 405, cors, "only GET is served here");
        return;
    }
    if (!origin_ok) {
        answer_error(c, 403, "", "origin not allowed (auth.allow_origin)");
        return;
    }
    struct sse_open_args args = {0};
    if (!basic_credentials(&req->authorization, &args)) {
        c->broker->stats.auth_failures++;
        answer_error(c, 401, cors, "malformed Basic credentials");
        return;
    }
    struct sse_stream *st = take_request(c, req, &args);
    if (st == NULL)
        return;
    struct evbuffer *frames = evbuffer_new();
    if (frames == NULL) {
        sse_stream_free(st);
        answer_error(c, 500, cors, "out of memory");
        return;
    }
    if (build_frames(st, &args, frames) != 0) { /* cannot happen within the query's bounds */
        evbuffer_free(frames);
        sse_stream_free(st);
        answer_error(c, 400, cors, "destination too long");
        return;
    }
    keep_bearer(c, req, st->req);
    /* From here the connection is a reader: no handshake deadline, nothing more read. */
    c->transport = CONN_SSE;
    c->state = CONN_OPEN;
    evtimer_del(c->timer);
    struct session *s = session_new(c, 12);
    if (s == NULL) {
        evbuffer_free(frames);
        sse_stream_free(st);
        conn_close(c);
        return;
    }
    c->session = s;
    session_set_sse(s, st);
    size_t len = evbuffer_get_length(frames);
    session_feed(s, (const char *)evbuffer_pullup(frames, -1), len);
    evbuffer_free(frames);
}
