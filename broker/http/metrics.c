#include "broker/http/metrics.h"
#include "broker/base/log.h"
#include "broker/core/queue.h"
#include "broker/http/respond.h"
#include "broker/net/conn.h"
#include "broker/threads/shared_queues.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Every loop's latest figures (threads > 1): any loop answers /metrics for the process. */
struct metrics_board {
    size_t count;
    pthread_mutex_t lock;         /* guards each */
    struct metrics_figures *each; /* owned: count of them */
    struct shared_queues *store;  /* borrowed: the process's queue store, NULL without one */
};

struct metrics_board *metrics_board_new(size_t loops, struct shared_queues *store)
{
    struct metrics_board *board = calloc(1, sizeof(*board));
    if (board == NULL)
        return NULL;
    board->each = calloc(loops, sizeof(*board->each));
    if (board->each == NULL || pthread_mutex_init(&board->lock, NULL) != 0) {
        free(board->each);
        free(board);
        return NULL;
    }
    board->count = loops;
    board->store = store;
    return board;
}

void metrics_board_free(struct metrics_board *board)
{
    if (board == NULL)
        return;
    pthread_mutex_destroy(&board->lock);
    free(board->each);
    free(board);
}

void metrics_board_publish(struct metrics_board *board, size_t loop,
                           const struct metrics_figures *f)
{
    pthread_mutex_lock(&board->lock);
    board->each[loop] = *f;
    pthread_mutex_unlock(&board->lock);
}

/* each[i] for every loop: `own` (fresh) for loop `self`, the latest published of the others. */
static void board_collect(struct metrics_board *board, size_t self,
                          const struct metrics_figures *own, struct metrics_figures *each)
{
    pthread_mutex_lock(&board->lock);
    for (size_t i = 0; i < board->count; i++)
        each[i] = i == self ? *own : board->each[i];
    pthread_mutex_unlock(&board->lock);
}

/* Ready: accepting, and the fan-out backend's links (when it has any) carry messages. */
static const char *not_ready_reason(const struct broker *b)
{
    if (b->shutting_down)
        return "shutting down";
    const struct fanout_ops *ops = b->fanout.ops;
    return ops != NULL && ops->ready != NULL ? ops->ready(b->fanout.ctx) : NULL;
}

/* Local queues; those backed by the queue store (threads > 1) are the store's, counted apart. */
static void collect_queues(const struct broker *b, struct metrics_figures *f)
{
    bool store = b->board != NULL && b->board->store != NULL;
    size_t bucket;
    for (struct dict_entry *e = dict_first(&b->router.queues.by_name, &bucket); e != NULL;
         e = dict_next(&b->router.queues.by_name, &bucket, e)) {
        const struct queue *q = e->value;
        f->queue_depth += q->depth;
        f->queues += store && q->clustered ? 0 : 1;
    }
}

void metrics_collect(const struct broker *b, struct metrics_figures *f)
{
    memset(f, 0, sizeof(*f));
    /* Sessions, subscriptions and unacked messages are gauges in the stats, kept as they come and
     * go: a scrape costs the same with a hundred connections or a hundred thousand. */
    f->stats = b->stats;
    f->router = b->router.stats;
    collect_queues(b, f);
    const struct fanout_ops *ops = b->fanout.ops;
    if (ops != NULL && ops->figure_count > 0) {
        f->fanout = ops;
        ops->figures(b->fanout.ctx, &f->fanout_figures);
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

/* The backend's figures of f added to sum's, each as its kind says. */
static void add_fanout(struct metrics_figures *sum, const struct metrics_figures *f)
{
    const struct fanout_ops *ops = sum->fanout;
    uint64_t *v = sum->fanout_figures.v;
    const uint64_t *o = f->fanout_figures.v;
    for (size_t i = 0; i < ops->figure_count; i++) {
        switch (ops->figure_names[i].kind) {
        case FANOUT_LINK_UP:
            v[i] = v[i] && o[i];
            break;
        case FANOUT_LATENCY:
            v[i] = max_u64(v[i], o[i]);
            break;
        case FANOUT_COUNTER:
        case FANOUT_GAUGE:
        case FANOUT_DROPPED:
            v[i] += o[i];
            break;
        }
    }
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
    for (int i = 0; i < BROKER_TRANSPORTS; i++)
        sum->clients[i] += s->clients[i];
    sum->subscriptions += s->subscriptions;
    sum->admin_kicks += s->admin_kicks; /* admin API (issue #15) */
}

/* Adds f to sum: counters and gauges add up; the latest lag is the worst loop's. */
static void add_figures(struct metrics_figures *sum, const struct metrics_figures *f)
{
    sum->queues += f->queues;
    sum->queue_depth += f->queue_depth;
    add_stats(&sum->stats, &f->stats);
    sum->router.published += f->router.published;
    sum->router.delivered += f->router.delivered;
    sum->router.dropped += f->router.dropped;
    sum->router.unroutable += f->router.unroutable;
    sum->router.unacked += f->router.unacked;
    if (sum->fanout != NULL && sum->fanout == f->fanout)
        add_fanout(sum, f);
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
static struct metrics_figures *collect_all(const struct broker *b, size_t *count)
{
    *count = b->board != NULL ? b->board->count : 1;
    struct metrics_figures *each = calloc(*count, sizeof(*each));
    if (each == NULL)
        return NULL;
    struct metrics_figures own;
    metrics_collect(b, &own);
    if (b->board != NULL)
        board_collect(b->board, b->loop_index, &own, each);
    else
        each[0] = own;
    return each;
}

/* The whole process: every loop's figures added up, and the queue store's once. */
static void process_figures(const struct broker *b, const struct metrics_figures *each, size_t n,
                            struct metrics_figures *sum)
{
    *sum = each[0];
    for (size_t i = 1; i < n; i++)
        add_figures(sum, &each[i]);
    struct shared_queues *store = b->board != NULL ? b->board->store : NULL;
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

static void render_connections(struct evbuffer *m, const struct metrics_figures *f)
{
    static const char *const kinds[BROKER_TRANSPORTS] = {"ws",        "wss", "tcp",
                                                         "stomp-tls", "sse", "sse-tls"};
    metric(m, "stompws_connections", "gauge",
           "Open client connections (past the handshake) by transport.");
    for (int i = 0; i < BROKER_TRANSPORTS; i++)
        evbuffer_add_printf(m, "stompws_connections{transport=\"%s\"} %" PRIu64 "\n", kinds[i],
                            f->stats.clients[i]);
    metric(m, "stompws_connections_accepted_total", "counter", "Connections accepted.");
    evbuffer_add_printf(m, "stompws_connections_accepted_total %" PRIu64 "\n",
                        f->stats.connections_accepted);
}

/* Per event loop (server.threads): how the kernel spread the clients over the loops. */
static void render_loops(struct evbuffer *m, const struct metrics_figures *each, size_t n)
{
    metric(m, "stompws_loop_connections", "gauge",
           "Open client connections (past the handshake) per event loop (server.threads).");
    for (size_t i = 0; i < n; i++) {
        uint64_t sum = 0;
        for (int t = 0; t < BROKER_TRANSPORTS; t++)
            sum += each[i].stats.clients[t];
        evbuffer_add_printf(m, "stompws_loop_connections{loop=\"%zu\"} %" PRIu64 "\n", i, sum);
    }
}

static void render_sessions(struct evbuffer *m, const struct metrics_figures *f)
{
    metric(m, "stompws_subscriptions", "gauge", "Active subscriptions.");
    evbuffer_add_printf(m, "stompws_subscriptions %" PRIu64 "\n", f->stats.subscriptions);
    metric(m, "stompws_unacked_messages", "gauge", "Queue messages delivered, awaiting ACK.");
    evbuffer_add_printf(m, "stompws_unacked_messages %" PRIu64 "\n", f->router.unacked);
}

static void render_queues(struct evbuffer *m, const struct metrics_figures *f)
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

static void render_traffic(struct evbuffer *m, const struct metrics_figures *f, bool loops)
{
    const struct delivery_stats *r = &f->router;
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
    for (size_t i = 0; f->fanout != NULL && i < f->fanout->figure_count; i++)
        if (f->fanout->figure_names[i].kind == FANOUT_DROPPED)
            evbuffer_add_printf(m, "stompws_messages_dropped_total{reason=\"%s\"} %" PRIu64 "\n",
                                f->fanout->figure_names[i].name, f->fanout_figures.v[i]);
}

static void render_errors(struct evbuffer *m, const struct metrics_figures *f)
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
    /* admin API (issue #15) */
    counter(m, "stompws_admin_disconnects_total",
            "Sessions ended by the admin API (DELETE /api/connections/ID, a user's disconnect).",
            f->stats.admin_kicks);
}

/* The fan-out backend's own figures, in its table's order (the cluster's stompws_cluster_*). */
static void render_fanout(struct evbuffer *m, const struct metrics_figures *f)
{
    for (size_t i = 0; f->fanout != NULL && i < f->fanout->figure_count; i++) {
        const struct fanout_figure *fig = &f->fanout->figure_names[i];
        uint64_t v = f->fanout_figures.v[i];
        switch (fig->kind) {
        case FANOUT_COUNTER:
            counter(m, fig->name, fig->help, v);
            break;
        case FANOUT_GAUGE:
            metric(m, fig->name, "gauge", fig->help);
            evbuffer_add_printf(m, "%s %" PRIu64 "\n", fig->name, v);
            break;
        case FANOUT_LINK_UP:
            metric(m, fig->name, "gauge", fig->help);
            evbuffer_add_printf(m, "%s %d\n", fig->name, v != 0 ? 1 : 0);
            break;
        case FANOUT_LATENCY:
            metric(m, fig->name, "gauge", fig->help);
            evbuffer_add_printf(m, "%s %.6f\n", fig->name, (double)v / 1e6);
            break;
        case FANOUT_DROPPED:
            break; /* among stompws_messages_dropped_total (render_traffic) */
        }
    }
}

/* The backend's labelled series, each loop's (they name their loop). */
static void render_fanout_detail(struct evbuffer *m, const struct metrics_figures *each, size_t n)
{
    bool any = false;
    for (size_t i = 0; i < n; i++)
        any = any || each[i].fanout_figures.detail[0] != '\0';
    if (!any)
        return;
    if (each[0].fanout != NULL && each[0].fanout->detail_help != NULL)
        evbuffer_add_printf(m, "%s", each[0].fanout->detail_help);
    for (size_t i = 0; i < n; i++)
        evbuffer_add_printf(m, "%s", each[i].fanout_figures.detail);
}

/* The broker itself: event-loop lag (see broker_loop_lag; with several loops the histogram
 * counts every loop's ticks and the gauge is the worst loop's) and log lines lost. */
static void render_process(struct evbuffer *m, const struct metrics_figures *f)
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

void metrics_serve(struct conn *c)
{
    struct evbuffer *m = evbuffer_new();
    size_t n;
    struct metrics_figures *each = m != NULL ? collect_all(c->broker, &n) : NULL;
    if (each == NULL) {
        if (m != NULL)
            evbuffer_free(m);
        conn_close(c);
        return;
    }
    struct metrics_figures f;
    process_figures(c->broker, each, n, &f);
    render_connections(m, &f);
    render_loops(m, each, n);
    render_sessions(m, &f);
    render_queues(m, &f);
    render_traffic(m, &f, c->broker->board != NULL);
    render_errors(m, &f);
    render_fanout(m, &f);
    render_fanout_detail(m, each, n);
    render_process(m, &f);
    http_respond(c, 200, NULL, "text/plain; version=0.0.4; charset=utf-8", m);
    evbuffer_free(m);
    free(each);
}

/* Any loop answers for all: not ready while one of them is not. */
void metrics_ready_detail(const struct broker *b, struct evbuffer *out)
{
    size_t n;
    struct metrics_figures *each = collect_all(b, &n);
    for (size_t i = 0; each != NULL && i < n; i++)
        evbuffer_add_printf(out, "%s", each[i].fanout_figures.detail);
    free(each);
}

const char *metrics_not_ready(const struct broker *b)
{
    if (b->board == NULL)
        return not_ready_reason(b);
    size_t n;
    struct metrics_figures *each = collect_all(b, &n);
    if (each == NULL)
        return "out of memory";
    const char *reason = NULL;
    for (size_t i = 0; i < n && reason == NULL; i++)
        reason = each[i].not_ready;
    free(each);
    return reason;
}
