#include "broker/http/routes.h"
#include "broker/http/api.h"
#include "broker/base/log.h"
#include "server/threads.h"
#include "broker/core/queue.h"
#include "broker/session/session.h"
#include "broker/threads/shared_queues.h"
#include "cluster/bridge.h"
#include "cluster/streams.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Static files go out whole in one response (they are small: pages, scripts, icons); a file past
 * this is refused with a 500 and a log line rather than tying up a connection's output buffer.
 */
#define STATIC_FILE_MAX (16 * 1024 * 1024)

static bool path_is(const struct ws_slice *path, const char *want)
{
    return path->len == strlen(want) && memcmp(path->ptr, want, path->len) == 0;
}

/* ws_http_status_text() knows the handshake's codes; the API and static files need these too. */
static const char *status_text(int status)
{
    switch (status) {
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 501:
        return "Not Implemented";
    default:
        return ws_http_status_text(status);
    }
}

/* Status line and headers up to the empty line, for a body of length bytes. */
static void write_head(struct conn *c, int status, const char *content_type, size_t length,
                       const char *extra_headers)
{
    evbuffer_add_printf(bufferevent_get_output(c->bev),
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "%sConnection: close\r\n\r\n",
                        status, status_text(status), content_type, length,
                        extra_headers != NULL ? extra_headers : "");
}

void http_respond(struct conn *c, int status, const char *extra_headers, const char *content_type,
                  struct evbuffer *body)
{
    char extra[512];
    snprintf(extra, sizeof(extra), "Cache-Control: no-store\r\n%s",
             extra_headers != NULL ? extra_headers : "");
    write_head(c, status, content_type, evbuffer_get_length(body), extra);
    evbuffer_add_buffer(bufferevent_get_output(c->bev), body);
    conn_close_gracefully(c, 0, "http response sent");
}

/* Writes the head for a body already in `body`, then the body, then closes. */
static void respond(struct conn *c, int status, const char *content_type, struct evbuffer *body)
{
    http_respond(c, status, NULL, content_type, body);
}

static void respond_text(struct conn *c, int status, const char *extra_headers, const char *text)
{
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        conn_close(c);
        return;
    }
    evbuffer_add_printf(body, "%s\n", text);
    http_respond(c, status, extra_headers, "text/plain; charset=utf-8", body);
    evbuffer_free(body);
}

/* Ready: accepting, and the cluster link (when configured) carries messages. */
static const char *not_ready_reason(const struct broker *b)
{
    if (b->shutting_down)
        return "shutting down";
    if (b->bridge != NULL && !bridge_link_up(b->bridge))
        return "cluster link to Redis is down";
    if (b->streams != NULL && !streams_link_up(b->streams))
        return "cluster queue link to Redis is down";
    return NULL;
}

static void collect_sessions(const struct broker *b, struct http_figures *f)
{
    for (const struct conn *c = b->conns; c != NULL; c = c->next) {
        if (c->session == NULL)
            continue; /* clients, not scrapes, probes or unfinished handshakes */
        f->clients[(c->transport == CONN_TCP ? 2 : 0) + (c->tls ? 1 : 0)]++;
        f->subscriptions += session_subscription_count(c->session);
        f->unacked += session_unacked(c->session);
    }
}

/* Local queues; those backed by the queue store (threads > 1) are the store's, counted apart. */
static void collect_queues(const struct broker *b, struct http_figures *f)
{
    bool store = b->group != NULL && loops_queues(b->group) != NULL;
    size_t bucket;
    for (struct dict_entry *e = dict_first(&b->router.queues, &bucket); e != NULL;
         e = dict_next(&b->router.queues, &bucket, e)) {
        const struct queue *q = e->value;
        f->queue_depth += q->depth;
        f->queues += store && q->clustered ? 0 : 1;
    }
}

void http_figures_collect(const struct broker *b, struct http_figures *f)
{
    memset(f, 0, sizeof(*f));
    collect_sessions(b, f);
    collect_queues(b, f);
    f->stats = b->stats;
    f->router = b->router.stats;
    f->clustered = b->bridge != NULL;
    if (b->bridge != NULL) {
        f->bridge_up = bridge_link_up(b->bridge);
        f->bridge = *bridge_stats(b->bridge);
    }
    if (b->streams != NULL) {
        f->streams_up = streams_link_up(b->streams);
        f->streams = *streams_stats(b->streams);
    }
    f->lag_last_us = b->loop_lag.last_us;
    f->lag_sum_us = b->loop_lag.sum_us;
    f->lag_count = b->loop_lag.count;
    memcpy(f->lag_buckets, b->loop_lag.buckets, sizeof(f->lag_buckets));
    f->not_ready = not_ready_reason(b);
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static void add_cluster(struct http_figures *sum, const struct http_figures *f)
{
    struct bridge_stats *b = &sum->bridge;
    const struct bridge_stats *o = &f->bridge;
    sum->bridge_up = sum->bridge_up && f->bridge_up;
    b->published += o->published;
    b->dropped += o->dropped;
    b->received += o->received;
    b->reconnects += o->reconnects;
    b->probe_round_trip_us = max_u64(b->probe_round_trip_us, o->probe_round_trip_us);
    struct streams_stats *s = &sum->streams;
    const struct streams_stats *p = &f->streams;
    sum->streams_up = sum->streams_up && f->streams_up;
    s->appended += p->appended;
    s->append_errors += p->append_errors;
    s->read += p->read;
    s->claimed += p->claimed;
    s->acked += p->acked;
    s->released += p->released;
    s->resent += p->resent;
    s->decode_errors += p->decode_errors;
    s->buffered_bytes += p->buffered_bytes;
    s->held += p->held;
}

static void add_stats(struct broker_stats *sum, const struct broker_stats *s)
{
    for (int k = 0; k < LIMIT_COUNT; k++)
        sum->limit_hits[k] += s->limit_hits[k];
    sum->connections_accepted += s->connections_accepted;
    sum->frames_in += s->frames_in;
    sum->messages_in += s->messages_in;
    sum->bytes_in += s->bytes_in;
    sum->bytes_out += s->bytes_out;
    sum->auth_failures += s->auth_failures;
    sum->permission_denials += s->permission_denials;
    sum->protocol_errors += s->protocol_errors;
    sum->slow_consumer_disconnects += s->slow_consumer_disconnects;
    sum->slow_consumer_drops += s->slow_consumer_drops;
    sum->reply_queue_drops += s->reply_queue_drops;
    sum->loop_inbox_drops += s->loop_inbox_drops;
    sum->publishers_paused += s->publishers_paused;
}

/* Adds f to sum: counters and gauges add up; the latest lag is the worst loop's. */
static void add_figures(struct http_figures *sum, const struct http_figures *f)
{
    for (int i = 0; i < 4; i++)
        sum->clients[i] += f->clients[i];
    sum->subscriptions += f->subscriptions;
    sum->unacked += f->unacked;
    sum->queues += f->queues;
    sum->queue_depth += f->queue_depth;
    add_stats(&sum->stats, &f->stats);
    sum->router.published += f->router.published;
    sum->router.delivered += f->router.delivered;
    sum->router.dropped += f->router.dropped;
    sum->router.unroutable += f->router.unroutable;
    if (sum->clustered)
        add_cluster(sum, f);
    sum->lag_last_us = max_u64(sum->lag_last_us, f->lag_last_us);
    sum->lag_sum_us += f->lag_sum_us;
    sum->lag_count += f->lag_count;
    for (int i = 0; i <= BROKER_LAG_BUCKETS; i++)
        sum->lag_buckets[i] += f->lag_buckets[i];
    if (sum->not_ready == NULL)
        sum->not_ready = f->not_ready;
}

/* The figures of every loop of b's process: each[0..*count), with b's own taken now. NULL when
 * out of memory. The caller frees it. */
static struct http_figures *collect_all(const struct broker *b, size_t *count)
{
    *count = b->group != NULL ? loops_count(b->group) : 1;
    struct http_figures *each = calloc(*count, sizeof(*each));
    if (each == NULL)
        return NULL;
    struct http_figures own;
    http_figures_collect(b, &own);
    if (b->group != NULL)
        loops_collect_figures(b->group, b->loop_index, &own, each);
    else
        each[0] = own;
    return each;
}

/* The whole process: every loop's figures added up, and the queue store's once. */
static void process_figures(const struct broker *b, const struct http_figures *each, size_t n,
                            struct http_figures *sum)
{
    *sum = each[0];
    for (size_t i = 1; i < n; i++)
        add_figures(sum, &each[i]);
    struct shared_queues *store = b->group != NULL ? loops_queues(b->group) : NULL;
    if (store != NULL) {
        struct shared_queues_stats st;
        shared_queues_stats(store, &st);
        sum->queues += st.queues;
        sum->queue_depth += st.waiting;
    }
}

static void metric(struct evbuffer *m, const char *name, const char *type, const char *help)
{
    evbuffer_add_printf(m, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void render_connections(struct evbuffer *m, const struct http_figures *f)
{
    static const char *const kinds[4] = {"ws", "wss", "tcp", "stomp-tls"};
    metric(m, "stompws_connections", "gauge",
           "Open client connections (past the handshake) by transport.");
    for (int i = 0; i < 4; i++)
        evbuffer_add_printf(m, "stompws_connections{transport=\"%s\"} %" PRIu64 "\n", kinds[i],
                            f->clients[i]);
    metric(m, "stompws_connections_accepted_total", "counter", "Connections accepted.");
    evbuffer_add_printf(m, "stompws_connections_accepted_total %" PRIu64 "\n",
                        f->stats.connections_accepted);
}

/* Per event loop (server.threads): how the kernel spread the clients over the loops. */
static void render_loops(struct evbuffer *m, const struct http_figures *each, size_t n)
{
    metric(m, "stompws_loop_connections", "gauge",
           "Open client connections (past the handshake) per event loop (server.threads).");
    for (size_t i = 0; i < n; i++) {
        const uint64_t *c = each[i].clients;
        evbuffer_add_printf(m, "stompws_loop_connections{loop=\"%zu\"} %" PRIu64 "\n", i,
                            c[0] + c[1] + c[2] + c[3]);
    }
}

static void render_sessions(struct evbuffer *m, const struct http_figures *f)
{
    metric(m, "stompws_subscriptions", "gauge", "Active subscriptions.");
    evbuffer_add_printf(m, "stompws_subscriptions %" PRIu64 "\n", f->subscriptions);
    metric(m, "stompws_unacked_messages", "gauge", "Queue messages delivered, awaiting ACK.");
    evbuffer_add_printf(m, "stompws_unacked_messages %" PRIu64 "\n", f->unacked);
}

static void render_queues(struct evbuffer *m, const struct http_figures *f)
{
    metric(m, "stompws_queues", "gauge", "Queues (including temporary ones).");
    evbuffer_add_printf(m, "stompws_queues %" PRIu64 "\n", f->queues);
    metric(m, "stompws_queue_depth", "gauge", "Messages waiting in all queues.");
    evbuffer_add_printf(m, "stompws_queue_depth %" PRIu64 "\n", f->queue_depth);
    metric(m, "stompws_publishers_paused", "gauge",
           "Publishers not read until the full queue they sent to drains (queue.overflow).");
    evbuffer_add_printf(m, "stompws_publishers_paused %" PRIu64 "\n", f->stats.publishers_paused);
}

static void counter(struct evbuffer *m, const char *name, const char *help, uint64_t value)
{
    metric(m, name, "counter", help);
    evbuffer_add_printf(m, "%s %" PRIu64 "\n", name, value);
}

static void render_traffic(struct evbuffer *m, const struct http_figures *f, bool loops)
{
    const struct router_stats *r = &f->router;
    counter(m, "stompws_frames_in_total", "STOMP frames received.", f->stats.frames_in);
    counter(m, "stompws_messages_in_total", "Messages routed: SEND frames and API publishes.",
            f->stats.messages_in);
    counter(m, "stompws_messages_out_total", "MESSAGE frames written to clients.", r->delivered);
    counter(m, "stompws_bytes_in_total", "Bytes received from clients.", f->stats.bytes_in);
    counter(m, "stompws_bytes_out_total", "Bytes written to clients.", f->stats.bytes_out);
    metric(m, "stompws_messages_dropped_total", "counter", "Messages not delivered, by reason.");
    evbuffer_add_printf(m, "stompws_messages_dropped_total{reason=\"slow_consumer\"} %" PRIu64 "\n",
                        r->dropped);
    evbuffer_add_printf(m, "stompws_messages_dropped_total{reason=\"no_subscriber\"} %" PRIu64 "\n",
                        r->unroutable);
    evbuffer_add_printf(m,
                        "stompws_messages_dropped_total{reason=\"reply_queue_gone\"} %" PRIu64 "\n",
                        f->stats.reply_queue_drops);
    if (loops)
        evbuffer_add_printf(m,
                            "stompws_messages_dropped_total{reason=\"loop_inbox\"} %" PRIu64 "\n",
                            f->stats.loop_inbox_drops);
    if (f->clustered)
        evbuffer_add_printf(m,
                            "stompws_messages_dropped_total{reason=\"cluster_link\"} %" PRIu64 "\n",
                            f->bridge.dropped);
}

static void render_errors(struct evbuffer *m, const struct http_figures *f)
{
    metric(m, "stompws_limit_hits_total", "counter", "Times a client hit a limit, by config key.");
    for (int k = 0; k < LIMIT_COUNT; k++)
        evbuffer_add_printf(m, "stompws_limit_hits_total{limit=\"%s\"} %" PRIu64 "\n",
                            limit_name((enum limit_kind)k), f->stats.limit_hits[k]);
    metric(m, "stompws_errors_total", "counter", "Client errors by kind.");
    evbuffer_add_printf(m, "stompws_errors_total{kind=\"authentication\"} %" PRIu64 "\n",
                        f->stats.auth_failures);
    evbuffer_add_printf(m, "stompws_errors_total{kind=\"permission\"} %" PRIu64 "\n",
                        f->stats.permission_denials);
    evbuffer_add_printf(m, "stompws_errors_total{kind=\"protocol\"} %" PRIu64 "\n",
                        f->stats.protocol_errors);
}

static void render_cluster(struct evbuffer *m, const struct http_figures *f)
{
    if (!f->clustered)
        return;
    const struct bridge_stats *st = &f->bridge;
    metric(m, "stompws_cluster_link_up", "gauge", "1 when both Redis links are up and verified.");
    evbuffer_add_printf(m, "stompws_cluster_link_up %d\n", f->bridge_up ? 1 : 0);
    counter(m, "stompws_cluster_published_total", "Messages sent to Redis.", st->published);
    counter(m, "stompws_cluster_received_total", "Messages from Redis.", st->received);
    counter(m, "stompws_cluster_reconnects_total", "Redis links re-established.", st->reconnects);
    metric(m, "stompws_cluster_redis_latency_seconds", "gauge",
           "Round trip of the latest probe: PUBLISH to the node's own channel until it came back.");
    evbuffer_add_printf(m, "stompws_cluster_redis_latency_seconds %.6f\n",
                        (double)st->probe_round_trip_us / 1e6);
}

/* Queues across nodes (Redis Streams). */
static void render_cluster_queues(struct evbuffer *m, const struct http_figures *f)
{
    if (!f->clustered)
        return;
    const struct streams_stats *st = &f->streams;
    metric(m, "stompws_cluster_queue_link_up", "gauge", "1 when both Redis queue links are up.");
    evbuffer_add_printf(m, "stompws_cluster_queue_link_up %d\n", f->streams_up ? 1 : 0);
    counter(m, "stompws_cluster_queue_appended_total", "Queue messages Redis stored (XADD).",
            st->appended);
    counter(m, "stompws_cluster_queue_append_errors_total",
            "Queue messages Redis refused (the publisher got an ERROR).", st->append_errors);
    counter(m, "stompws_cluster_queue_read_total", "Queue messages taken from streams.", st->read);
    counter(m, "stompws_cluster_queue_claimed_total",
            "Queue messages taken over from another node or handed back (redelivered).",
            st->claimed);
    counter(m, "stompws_cluster_queue_acked_total", "Queue messages acked in Redis.", st->acked);
    counter(m, "stompws_cluster_queue_released_total",
            "Queue messages handed back for other nodes (no consumer left here).", st->released);
    counter(m, "stompws_cluster_queue_resent_total", "Commands sent again after a lost Redis link.",
            st->resent);
    counter(m, "stompws_cluster_queue_decode_errors_total",
            "Stream entries dropped because they could not be decoded.", st->decode_errors);
    metric(m, "stompws_cluster_queue_buffered_bytes", "gauge",
           "Bytes of queue commands Redis has not confirmed yet (cluster.queue_buffer_bytes).");
    evbuffer_add_printf(m, "stompws_cluster_queue_buffered_bytes %" PRIu64 "\n",
                        st->buffered_bytes);
    metric(m, "stompws_cluster_queue_held", "gauge",
           "Stream entries this node holds for its consumers (waiting or unacked).");
    evbuffer_add_printf(m, "stompws_cluster_queue_held %" PRIu64 "\n", st->held);
}

/* The broker itself: event-loop lag (see broker_loop_lag; with several loops the histogram
 * counts every loop's ticks and the gauge is the worst loop's) and log lines lost. */
static void render_process(struct evbuffer *m, const struct http_figures *f)
{
    metric(m, "stompws_event_loop_lag_seconds", "gauge",
           "How late the latest event-loop tick ran (ticks are due every 250 ms).");
    evbuffer_add_printf(m, "stompws_event_loop_lag_seconds %.6f\n", (double)f->lag_last_us / 1e6);
    const char *name = "stompws_event_loop_tick_lag_seconds";
    metric(m, name, "histogram", "How late each event-loop tick ran.");
    uint64_t ticks = 0;
    for (int i = 0; i < BROKER_LAG_BUCKETS; i++) {
        ticks += f->lag_buckets[i];
        evbuffer_add_printf(m, "%s_bucket{le=\"%g\"} %" PRIu64 "\n", name,
                            (double)broker_lag_bucket_us[i] / 1e6, ticks);
    }
    ticks += f->lag_buckets[BROKER_LAG_BUCKETS];
    evbuffer_add_printf(m, "%s_bucket{le=\"+Inf\"} %" PRIu64 "\n", name, ticks);
    evbuffer_add_printf(m, "%s_sum %.6f\n", name, (double)f->lag_sum_us / 1e6);
    evbuffer_add_printf(m, "%s_count %" PRIu64 "\n", name, f->lag_count);
    counter(m, "stompws_log_lines_dropped_total",
            "Log lines the log file did not take (disk full, I/O error).", log_lines_dropped());
}

static void serve_metrics(struct conn *c)
{
    struct evbuffer *m = evbuffer_new();
    size_t n;
    struct http_figures *each = m != NULL ? collect_all(c->broker, &n) : NULL;
    if (each == NULL) {
        if (m != NULL)
            evbuffer_free(m);
        conn_close(c);
        return;
    }
    struct http_figures f;
    process_figures(c->broker, each, n, &f);
    render_connections(m, &f);
    render_loops(m, each, n);
    render_sessions(m, &f);
    render_queues(m, &f);
    render_traffic(m, &f, c->broker->group != NULL);
    render_errors(m, &f);
    render_cluster(m, &f);
    render_cluster_queues(m, &f);
    render_process(m, &f);
    respond(c, 200, "text/plain; version=0.0.4; charset=utf-8", m);
    evbuffer_free(m);
    free(each);
}

/* Any loop answers for all: not ready while one of them is not. */
static const char *process_not_ready(const struct broker *b)
{
    if (b->group == NULL)
        return not_ready_reason(b);
    size_t n;
    struct http_figures *each = collect_all(b, &n);
    if (each == NULL)
        return "out of memory";
    const char *reason = NULL;
    for (size_t i = 0; i < n && reason == NULL; i++)
        reason = each[i].not_ready;
    free(each);
    return reason;
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
        return (ch | 0x20) - 'a' + 10;
    return -1;
}

ssize_t http_url_decode(const char *src, size_t len, bool plus_is_space, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++, n++) {
        char ch = src[i];
        if (n == cap)
            return -1;
        if (ch == '%') {
            int hi = i + 2 < len ? hex_value(src[i + 1]) : -1;
            int lo = hi >= 0 ? hex_value(src[i + 2]) : -1;
            if (lo < 0)
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        } else if (ch == '+' && plus_is_space) {
            ch = ' ';
        }
        out[n] = ch;
    }
    return (ssize_t)n;
}

/* ---- static files (server.static_dir) -------------------------------------------------------- */

/* Content-Type by extension; browsers load ES modules only as text/javascript. */
static const char *static_content_type(const char *file)
{
    static const char *const types[][2] = {
        {"html", "text/html; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"png", "image/png"},
        {"svg", "image/svg+xml"},
        {"ico", "image/x-icon"},
        {"txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(file, '.');
    if (dot != NULL && strchr(dot, '/') == NULL)
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcasecmp(dot + 1, types[i][0]) == 0)
                return types[i][1];
    return "application/octet-stream";
}

/* Segments starting with '.' ("..", ".", dotfiles such as .git) are never served. */
static bool has_dot_segment(const char *path)
{
    for (const char *p = strchr(path, '/'); p != NULL; p = strchr(p + 1, '/'))
        if (p[1] == '.')
            return true;
    return false;
}

/*
 * The file under root that the request path names, resolved (symlinks followed) into out;
 * false when there is none, or when it resolves outside root. "/" and "DIR/" mean index.html.
 */
static bool static_resolve(const char *root, const struct ws_slice *path, char out[PATH_MAX])
{
    static const char index_html[] = "index.html";
    char decoded[PATH_MAX], real_root[PATH_MAX], joined[PATH_MAX];
    ssize_t n =
        http_url_decode(path->ptr, path->len, false, decoded, sizeof(decoded) - sizeof(index_html));
    if (n <= 0 || decoded[0] != '/' || memchr(decoded, '\0', (size_t)n) != NULL)
        return false;
    decoded[n] = '\0';
    if (decoded[n - 1] == '/')
        memcpy(decoded + n, index_html, sizeof(index_html));
    if (has_dot_segment(decoded) || realpath(root, real_root) == NULL)
        return false;
    int len = snprintf(joined, sizeof(joined), "%s%s", real_root, decoded);
    if (len < 0 || (size_t)len >= sizeof(joined) || realpath(joined, out) == NULL)
        return false;
    size_t root_len = strlen(real_root);
    return strncmp(out, real_root, root_len) == 0 && (out[root_len] == '/' || root_len == 1);
}

static void serve_static(struct conn *c, const struct ws_http_request *req)
{
    bool head = path_is(&req->method, "HEAD");
    if (!head && !path_is(&req->method, "GET")) {
        respond_text(c, 405, "Allow: GET, HEAD\r\n", "only GET and HEAD are served here");
        return;
    }
    char file[PATH_MAX];
    struct stat st;
    int fd = static_resolve(c->broker->cfg.static_dir, &req->path, file)
                 ? open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
                 : -1;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        respond_text(c, 404, NULL, "not found");
        return;
    }
    if (st.st_size > STATIC_FILE_MAX) {
        close(fd);
        log_warn(c->id, "not serving %s: %lld bytes, over the %d-byte static file cap", file,
                 (long long)st.st_size, STATIC_FILE_MAX);
        respond_text(c, 500, NULL, "file too large to serve");
        return;
    }
    write_head(c, 200, static_content_type(file), (size_t)st.st_size,
               "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n");
    /* The evbuffer owns fd from here, and closes it once the file is written. */
    if (head || st.st_size == 0 ||
        evbuffer_add_file(bufferevent_get_output(c->bev), fd, 0, st.st_size) != 0)
        close(fd);
    conn_close_gracefully(c, 0, "http response sent");
}

/* ---- routing --------------------------------------------------------------------------------- */

static bool is_api(const struct ws_http_request *req)
{
    size_t n = strlen(API_PATH_PREFIX);
    return req->path.len >= n && memcmp(req->path.ptr, API_PATH_PREFIX, n) == 0;
}

int http_check_config(const struct config *cfg, char *err, size_t err_len)
{
    struct stat st;
    const char *dir = cfg->static_dir;
    if (dir[0] != '\0' && stat(dir, &st) != 0) {
        snprintf(err, err_len, "server.static_dir: %s: %s", dir, strerror(errno));
        return -1;
    }
    if (dir[0] != '\0' && !S_ISDIR(st.st_mode)) {
        snprintf(err, err_len, "server.static_dir: %s: not a directory", dir);
        return -1;
    }
    char why[512];
    if (api_check_config(cfg, why, sizeof(why)) != 0) {
        snprintf(err, err_len, "server.api_key_file: %s", why);
        return -1;
    }
    return 0;
}

int http_start(struct broker *b)
{
    char err[600];
    if (http_check_config(&b->cfg, err, sizeof(err)) != 0) {
        log_error(0, "%s", err);
        return -1;
    }
    if (b->cfg.static_dir[0] != '\0')
        log_info(0, "serving static files from %s", b->cfg.static_dir);
    return api_start(b);
}

size_t http_body_wanted(struct conn *c, const struct ws_http_request *req)
{
    return is_api(req) ? api_body_wanted(c->broker, req) : 0;
}

void http_serve(struct conn *c, const struct ws_http_request *req, const char *body,
                size_t body_len)
{
    log_debug(c->id, "http %.*s %.*s", (int)req->method.len, req->method.ptr, (int)req->path.len,
              req->path.ptr);
    if (is_api(req)) {
        api_serve(c, req, body, body_len);
        return;
    }
    bool known = path_is(&req->path, "/healthz") || path_is(&req->path, "/readyz") ||
                 path_is(&req->path, "/metrics");
    if (!known && c->broker->cfg.static_dir[0] != '\0') {
        serve_static(c, req);
        return;
    }
    if (!known) {
        respond_text(c, 404, NULL, "not found");
        return;
    }
    if (!path_is(&req->method, "GET")) {
        respond_text(c, 405, "Allow: GET\r\n", "only GET is served here");
        return;
    }
    if (path_is(&req->path, "/healthz")) {
        respond_text(c, 200, NULL, "ok");
    } else if (path_is(&req->path, "/readyz")) {
        const char *reason = process_not_ready(c->broker);
        respond_text(c, reason == NULL ? 200 : 503, NULL, reason == NULL ? "ready" : reason);
    } else {
        serve_metrics(c);
    }
}
