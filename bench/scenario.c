/*
 * bench/scenario.c - one worker's share of a run: its connections, its clock, its figures.
 *
 * Phases: SETUP opens the connections (at most --concurrency handshakes at once, at most
 * --connect-rate per second) and subscribes; when every connection is up or failed, or the
 * set-up timed out, the worker tells the parent (struct bench_ready) and waits in WAIT_GO for the
 * start instant (struct bench_go). RUN: publishers send from the start instant; the window
 * [start + warm-up, start + warm-up + duration) is what the figures count, by the time stamped in
 * each body, so a message belongs to the window whenever it arrives. DRAIN: publishers have
 * stopped; the worker waits for what is in flight until every expected delivery arrived (one
 * worker), nothing arrived for QUIET_NS, or --drain passed. Then it closes everything and
 * reports.
 *
 * Publishers either follow a schedule (--rate per publisher: each message is stamped with the
 * time it was due, so a publisher that falls behind shows as latency, not as a lower rate
 * hidden from the figures) or saturate: they refill their output queue to --outstanding bytes
 * each time the socket drains below it, which measures what the broker sustains rather than what
 * the buffers absorb.
 *
 * Idle runs may broadcast: paced publishers to the topic every connection holds, sending only
 * inside the window, so the warm-up is a quiet time in which a driver can measure the brokers
 * with every connection up and nothing delivered yet (bench/idle_rss.sh).
 *
 * With several --url (the nodes of a cluster), subscriber i and publisher i connect to URL i
 * modulo their count: connections are spread evenly and publisher 0 is on the first node.
 * --publisher-urls K keeps publishers on the first K URLs and subscribers on the others.
 */
#include "bench/bench.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <event2/event.h>

#include "bench/stamp.h"
#include "stomp/encode.h"

/* Set-up pacing: new connections are opened at most every this many ms (and on each answer). */
#define SETUP_TICK_MS 10
/* Drain: stop waiting after this long without a delivery. */
#define QUIET_NS      (500 * 1000000ull)
#define DRAIN_TICK_MS 20
/* A paced publisher that is behind sends at most this many messages per timer turn. */
#define RATE_BATCH_MAX 1000
/* Destination names: the option plus ".N". */
#define DEST_MAX 256
/* SEND head: command, destination, content-length. */
#define SEND_HEAD_MAX (DEST_MAX + 64)

enum phase {
    PHASE_SETUP,
    PHASE_WAIT_GO,
    PHASE_RUN,
    PHASE_DRAIN,
    PHASE_DONE,
};

enum role_kind {
    ROLE_PUB,   /* publisher / producer */
    ROLE_SUB,   /* subscriber / consumer; idle connections too */
    ROLE_STORM, /* one connect-storm slot: cycles one after the other */
};

struct worker;

/* One connection's job. */
struct role {
    enum role_kind kind;
    struct worker *w;        /* borrowed: the worker it belongs to */
    struct bench_conn *conn; /* owned; NULL before it opens and after it closes */
    unsigned id;             /* run-wide: publisher id, or subscriber index */
    bool up;                 /* pub: CONNECTED; sub: SUBSCRIBE receipted */
    bool settled;            /* set-up: up or failed */
    uint64_t opened_ns;      /* when its connect (or storm cycle) started */
    char dest[DEST_MAX];
    /* publisher */
    struct event *timer;      /* owned: paced sending; storm: retry after a failed open */
    uint64_t seq;             /* next sequence number */
    uint64_t first_due_ns;    /* paced: when message 0 is due */
    uint64_t copies;          /* deliveries each message should make */
    char head[SEND_HEAD_MAX]; /* SEND head for bodies of --size bytes */
    size_t head_len;
    bool stopped;
    /* connect storm */
    bool disconnecting; /* DISCONNECT sent in this cycle */
    /* subscriber */
    unsigned track_first; /* publisher ids it hears from: [track_first, +track_count) */
    unsigned track_count;
    struct seq_track *tracks; /* owned: track_count entries */
};

struct worker {
    const struct bench_options *o;   /* borrowed */
    const struct bench_share *share; /* borrowed */
    struct bench_result *r;          /* borrowed: filled as the run goes */
    struct event_base *base;         /* owned */
    struct role *roles;              /* owned: role_count entries */
    size_t role_count;
    enum phase phase;
    char *body;                /* owned: size_max bytes of body filler */
    int ready_fd, go_fd;       /* borrowed: pipes to the parent */
    struct event *go_ev;       /* owned */
    struct event *tick;        /* owned: set-up pacing, then drain checks */
    struct event *phase_timer; /* owned: start, window start, window end */
    /* set-up */
    size_t next_to_open;
    unsigned inflight;
    size_t settled;
    double tokens; /* --connect-rate bucket */
    uint64_t last_tick_ns;
    uint64_t began_ns;
    /* run */
    struct bench_go go;
    unsigned step; /* phase_timer: 0 start, 1 window start, 2 window end */
    uint64_t window_start, window_end, drain_deadline;
    uint64_t last_delivery_ns;
    double cpu_at_window_start;
    unsigned storm_source; /* next source address index for a storm cycle */
    uint64_t rng;
};

/* ---- small helpers ---- */

static double cpu_seconds(double *user, double *sys)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double u = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6;
    double s = (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    if (user != NULL)
        *user = u;
    if (sys != NULL)
        *sys = s;
    return u + s;
}

static struct timeval ns_to_tv(uint64_t ns)
{
    struct timeval tv = {(time_t)(ns / 1000000000u), (suseconds_t)(ns % 1000000000u / 1000u)};
    return tv;
}

/* Arms ev to fire at the monotonic instant at_ns (at once if it passed). */
static void fire_at(struct event *ev, uint64_t at_ns)
{
    uint64_t now = stamp_now_ns();
    struct timeval tv = ns_to_tv(at_ns > now ? at_ns - now : 0);
    evtimer_add(ev, &tv);
}

static void fire_in_ms(struct event *ev, unsigned ms)
{
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

static uint64_t worker_rand(struct worker *w)
{
    w->rng ^= w->rng >> 12;
    w->rng ^= w->rng << 25;
    w->rng ^= w->rng >> 27;
    return w->rng * 0x2545F4914F6CDD1Du;
}

static bool in_window(const struct worker *w, uint64_t t)
{
    return t >= w->window_start && t < w->window_end;
}

static bool is_topic_scenario(enum bench_scenario s)
{
    return s == SCENARIO_FANOUT || s == SCENARIO_LARGE || s == SCENARIO_MANY_TO_MANY ||
           s == SCENARIO_IDLE;
}

static void note_error(struct worker *w, const char *why)
{
    bench_errors_add(&w->r->errors, why, 1);
}

const char *scenario_name(enum bench_scenario s)
{
    switch (s) {
    case SCENARIO_FANOUT:
        return "fanout";
    case SCENARIO_MANY_TO_MANY:
        return "many-to-many";
    case SCENARIO_QUEUE:
        return "queue";
    case SCENARIO_IDLE:
        return "idle";
    case SCENARIO_CONNECT_STORM:
        return "connect-storm";
    case SCENARIO_LARGE:
        return "large";
    }
    return "?";
}

static unsigned ceil_div(unsigned a, unsigned b)
{
    return (a + b - 1) / b;
}

unsigned scenario_conns_per_worker(const struct bench_options *o, unsigned procs)
{
    switch (o->scenario) {
    case SCENARIO_MANY_TO_MANY:
        return 2 * ceil_div(o->pairs, procs);
    case SCENARIO_IDLE:
        return ceil_div(o->connections, procs) + ceil_div(o->publishers, procs);
    case SCENARIO_CONNECT_STORM:
        return ceil_div(o->concurrency, procs);
    default:
        return ceil_div(o->publishers, procs) + ceil_div(o->subscribers, procs);
    }
}

/* ---- run control ---- */

static void storm_next(struct role *s);
static void open_more(struct worker *w);

static void finish_run(struct worker *w)
{
    if (w->phase == PHASE_DONE)
        return;
    w->phase = PHASE_DONE;
    event_base_loopbreak(w->base);
}

/* ---- publishers ---- */

/* The SEND head for a body of size bytes into out (at most SEND_HEAD_MAX); its length. */
static size_t send_head(const struct role *p, size_t size, char *out)
{
    char len_text[24];
    int len_len = snprintf(len_text, sizeof(len_text), "%zu", size);
    struct stomp_header h[2] = {
        {"destination", 11, p->dest, strlen(p->dest)},
        {"content-length", 14, len_text, (size_t)len_len},
    };
    struct stomp_frame f = {.command = STOMP_CMD_SEND, .headers = h, .header_count = 2};
    return stomp_encode_head(out, SEND_HEAD_MAX, STOMP_V1_2, &f, false);
}

/* Queues one SEND stamped stamp_ns; false when the connection cannot take it. */
static bool send_one(struct role *p, uint64_t stamp_ns)
{
    struct worker *w = p->w;
    const struct bench_options *o = w->o;
    size_t size = o->size;
    char varying_head[SEND_HEAD_MAX];
    const char *head = p->head;
    size_t head_len = p->head_len;
    if (o->size_max > o->size) {
        size += (size_t)(worker_rand(w) % (o->size_max - o->size + 1));
        head_len = send_head(p, size, varying_head);
        head = varying_head;
    }
    size_t total = head_len + size + 1;
    char *buf = bench_conn_frame_begin(p->conn, total);
    if (buf == NULL) {
        note_error(w, "out of memory queueing a SEND");
        return false;
    }
    memcpy(buf, head, head_len);
    memcpy(buf + head_len, w->body, size);
    struct stamp st = {stamp_ns, p->id, p->seq++};
    stamp_write(buf + head_len, &st);
    buf[total - 1] = '\0';
    bench_conn_frame_end(p->conn, buf, total);
    if (in_window(w, stamp_ns)) {
        w->r->sent++;
        w->r->expected += p->copies;
    }
    return true;
}

static void pub_stop(struct role *p)
{
    p->stopped = true;
    if (p->timer != NULL)
        evtimer_del(p->timer);
    if (p->conn != NULL)
        bench_conn_want_write(p->conn, false, 0);
}

/* Saturating: refill the output queue up to --outstanding bytes. */
static void pub_fill(struct role *p)
{
    struct worker *w = p->w;
    while (p->conn != NULL && bench_conn_pending(p->conn) < w->o->outstanding) {
        uint64_t now = stamp_now_ns();
        if (now >= w->window_end) {
            pub_stop(p);
            return;
        }
        if (!send_one(p, now))
            return;
    }
}

/* Paced: sends what is due (stamped with when it was due), then sleeps until the next one. */
static void pub_tick(evutil_socket_t fd, short what, void *arg)
{
    struct role *p = arg;
    struct worker *w = p->w;
    double interval_ns = 1e9 / w->o->rate;
    uint64_t now = stamp_now_ns();
    unsigned batch = 0;
    if (p->conn == NULL || p->stopped)
        return;
    for (;;) {
        uint64_t due = p->first_due_ns + (uint64_t)((double)p->seq * interval_ns);
        if (due >= w->window_end) {
            bench_conn_flush(p->conn);
            pub_stop(p);
            return;
        }
        if (due > now) {
            fire_at(p->timer, due);
            break;
        }
        if (batch == RATE_BATCH_MAX || bench_conn_pending(p->conn) >= w->o->outstanding) {
            fire_in_ms(p->timer, 1); /* behind: let the socket and the other connections run */
            break;
        }
        if (!send_one(p, due))
            break;
        batch++;
    }
    bench_conn_flush(p->conn); /* may close it: p->conn is re-read by the next tick */
}

static void pub_start(struct role *p)
{
    struct worker *w = p->w;
    const struct bench_options *o = w->o;
    if (p->conn == NULL)
        return;
    bench_conn_limit_sndbuf(p->conn, o->outstanding);
    if (o->rate <= 0) {
        bench_conn_want_write(p->conn, true, o->outstanding);
        return;
    }
    /* Publishers are spread over one interval so they do not all send at the same instant. */
    unsigned total = o->scenario == SCENARIO_MANY_TO_MANY ? o->pairs : o->publishers;
    double phase_ns = 1e9 / o->rate * (double)p->id / (double)total;
    /* Idle broadcasts keep the warm-up quiet (see the top of this file). */
    uint64_t from_ns = o->scenario == SCENARIO_IDLE ? w->window_start : w->go.start_ns;
    p->first_due_ns = from_ns + (uint64_t)phase_ns;
    fire_at(p->timer, p->first_due_ns);
}

/* ---- subscribers ---- */

static void send_subscribe(struct role *s)
{
    const char *ack = s->w->o->scenario == SCENARIO_QUEUE ? s->w->o->ack : "auto";
    struct stomp_header h[4] = {
        {"destination", 11, s->dest, strlen(s->dest)},
        {"id", 2, "0", 1},
        {"ack", 3, ack, strlen(ack)},
        {"receipt", 7, "subscribed", 10},
    };
    struct stomp_frame f = {.command = STOMP_CMD_SUBSCRIBE, .headers = h, .header_count = 4};
    bench_conn_send_frame(s->conn, &f);
    bench_conn_flush(s->conn);
}

static void send_ack(struct role *s, const struct stomp_frame *msg)
{
    const struct stomp_header *id = stomp_frame_header(msg, "ack");
    if (id == NULL) {
        note_error(s->w, "MESSAGE on a client-ack subscription has no ack header");
        return;
    }
    struct stomp_header h[1] = {{"id", 2, id->value, id->value_len}};
    struct stomp_frame f = {.command = STOMP_CMD_ACK, .headers = h, .header_count = 1};
    bench_conn_send_frame(s->conn, &f);
}

/* Records sequence seq of one publisher; false if it is a duplicate. */
static bool track_seq(struct worker *w, struct seq_track *t, uint64_t seq)
{
    uint64_t skipped;
    /* On a queue each consumer sees only part of a producer's sequence: gaps mean nothing. */
    bool topic = is_topic_scenario(w->o->scenario);
    switch (seq_track_add(t, seq, &skipped)) {
    case SEQ_IN_ORDER:
        if (topic)
            w->r->gaps += skipped;
        return true;
    case SEQ_LATE:
        w->r->reordered++;
        if (topic && w->r->gaps > 0)
            w->r->gaps--; /* it fills a gap counted earlier */
        return true;
    case SEQ_DUPLICATE:
        break;
    }
    return false;
}

static void sub_message(struct role *s, const struct stomp_frame *f)
{
    struct worker *w = s->w;
    struct stamp st;
    uint64_t now = stamp_now_ns();
    w->last_delivery_ns = now;
    if (w->o->scenario == SCENARIO_QUEUE && strcmp(w->o->ack, "auto") != 0)
        send_ack(s, f);
    if (!stamp_read(f->body, f->body_len, &st) || st.publisher < s->track_first ||
        st.publisher - s->track_first >= s->track_count) {
        w->r->bad_bodies++;
        note_error(w, "MESSAGE body without a stompws-bench stamp, or from an unknown publisher");
        return;
    }
    if (!track_seq(w, &s->tracks[st.publisher - s->track_first], st.seq)) {
        w->r->duplicates++;
        return;
    }
    if (in_window(w, now))
        w->r->arrived++;
    if (!in_window(w, st.sent_ns)) {
        w->r->received_outside++;
        return;
    }
    w->r->received++;
    hdr_record(&w->r->latency, now > st.sent_ns ? now - st.sent_ns : 0);
    if (w->phase == PHASE_DRAIN && w->o->procs == 1 && w->r->received >= w->r->expected)
        finish_run(w); /* one worker: every expected delivery is in */
}

/* ---- connection callbacks ---- */

static void settle(struct role *x, bool up)
{
    struct worker *w = x->w;
    if (x->settled)
        return;
    x->settled = true;
    x->up = up;
    w->inflight--;
    w->settled++;
    if (up) {
        w->r->conns_up++;
        if (x->kind == ROLE_SUB)
            w->r->subs_up++;
        else
            w->r->pubs_up++;
        if (w->o->scenario == SCENARIO_IDLE && w->o->publishers == 0)
            hdr_record(&w->r->latency, stamp_now_ns() - x->opened_ns);
    }
}

/* Set-up: a connection answered; its slot lets the next one open. */
static void settle_and_open(struct role *x, bool up)
{
    settle(x, up);
    open_more(x->w);
}

static void on_connected(struct bench_conn *c, void *arg)
{
    struct role *x = arg;
    struct worker *w = x->w;
    if (x->kind == ROLE_SUB) {
        send_subscribe(x);
    } else if (x->kind == ROLE_PUB) {
        settle_and_open(x, true);
    } else {
        uint64_t now = stamp_now_ns();
        if (in_window(w, now))
            hdr_record(&w->r->latency, now - x->opened_ns);
        struct stomp_header h[1] = {{"receipt", 7, "bye", 3}};
        struct stomp_frame f = {.command = STOMP_CMD_DISCONNECT, .headers = h, .header_count = 1};
        x->disconnecting = true;
        bench_conn_send_frame(c, &f);
        bench_conn_flush(c);
    }
}

/* A storm cycle is over: the RECEIPT of its DISCONNECT came, or the broker closed after it. */
static void storm_cycle_done(struct role *s)
{
    if (in_window(s->w, stamp_now_ns()))
        s->w->r->cycles++;
    s->disconnecting = false;
    storm_next(s);
}

static void on_frame(struct bench_conn *c, const struct stomp_frame *f, void *arg)
{
    struct role *x = arg;
    if (f->command == STOMP_CMD_MESSAGE && x->kind == ROLE_SUB) {
        sub_message(x, f);
    } else if (f->command == STOMP_CMD_RECEIPT && x->kind == ROLE_SUB) {
        settle_and_open(x, true);
    } else if (f->command == STOMP_CMD_RECEIPT && x->kind == ROLE_STORM) {
        bench_conn_close(c);
        x->conn = NULL;
        storm_cycle_done(x);
    }
}

static void on_writable(struct bench_conn *c, void *arg)
{
    pub_fill(arg);
}

static void on_close(struct bench_conn *c, const char *why, void *arg)
{
    struct role *x = arg;
    struct worker *w = x->w;
    x->conn = NULL;
    if (x->kind == ROLE_STORM && x->disconnecting) {
        storm_cycle_done(x); /* RabbitMQ closes at once, with no RECEIPT */
        return;
    }
    note_error(w, why);
    if (x->kind == ROLE_STORM) {
        storm_next(x);
        return;
    }
    if (w->phase == PHASE_SETUP)
        settle_and_open(x, false);
}

static const struct bench_conn_callbacks role_callbacks = {
    .on_connected = on_connected,
    .on_frame = on_frame,
    .on_writable = on_writable,
    .on_close = on_close,
};

/*
 * The URL of x: by its run-wide id (storm slots, which have none, by k); with --publisher-urls,
 * publishers from the first URLs and every other role from the rest.
 */
static const struct bench_target *role_target(const struct role *x, unsigned k)
{
    const struct bench_options *o = x->w->o;
    unsigned id = x->kind == ROLE_STORM ? k : x->id;
    unsigned pub_urls = o->publisher_urls;
    if (pub_urls == 0)
        return &o->targets[id % o->url_count];
    if (x->kind == ROLE_PUB)
        return &o->targets[id % pub_urls];
    return &o->targets[pub_urls + id % (o->url_count - pub_urls)];
}

/* Opens x's connection from the source address of index k; false (error noted) on failure. */
static bool role_open(struct role *x, unsigned k)
{
    struct worker *w = x->w;
    const struct bench_target *t = role_target(x, k);
    struct sockaddr_in src;
    char err[200];
    if (t->bind_source)
        bench_source_address(k % w->o->sources, &src);
    x->opened_ns = stamp_now_ns();
    x->conn = bench_conn_open(w->base, t, t->bind_source ? &src : NULL, &role_callbacks, x, err,
                              sizeof(err));
    if (x->conn == NULL) {
        note_error(w, err);
        return false;
    }
    return true;
}

/* ---- connect storm ---- */

static void storm_retry(evutil_socket_t fd, short what, void *arg)
{
    storm_next(arg);
}

/* Starts the slot's next cycle, or retires the slot once the window is over. */
static void storm_next(struct role *s)
{
    struct worker *w = s->w;
    if (w->phase != PHASE_RUN || stamp_now_ns() >= w->window_end) {
        if (!s->stopped) {
            s->stopped = true;
            if (++w->settled == w->role_count && w->phase == PHASE_DRAIN)
                finish_run(w);
        }
        return;
    }
    unsigned k = w->storm_source++ * w->o->procs + w->share->worker;
    if (!role_open(s, k))
        fire_in_ms(s->timer, 10); /* e.g. out of files: do not spin */
}

/* ---- set-up ---- */

static void send_ready(struct worker *w)
{
    struct bench_ready ready = {w->r->conns_up, w->r->subs_up, w->r->pubs_up,
                                (double)(stamp_now_ns() - w->began_ns) / 1e9};
    w->r->setup_s = ready.setup_s;
    w->phase = PHASE_WAIT_GO;
    evtimer_del(w->tick);
    if (write(w->ready_fd, &ready, sizeof(ready)) != (ssize_t)sizeof(ready)) {
        note_error(w, "cannot reach the parent process");
        finish_run(w);
        return;
    }
    event_add(w->go_ev, NULL);
}

static void open_more(struct worker *w)
{
    if (w->phase != PHASE_SETUP)
        return;
    while (w->next_to_open < w->role_count && w->inflight < w->share->concurrency &&
           (w->share->connect_rate <= 0 || w->tokens >= 1.0)) {
        struct role *x = &w->roles[w->next_to_open++];
        w->tokens -= 1.0;
        w->inflight++;
        /* Workers interleave over the source addresses. */
        unsigned k = (unsigned)w->next_to_open * w->o->procs + w->share->worker;
        if (!role_open(x, k))
            settle(x, false);
    }
    if (w->settled == w->role_count && w->phase == PHASE_SETUP)
        send_ready(w);
}

static void setup_tick(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    uint64_t now = stamp_now_ns();
    if (w->phase != PHASE_SETUP)
        return;
    if ((double)(now - w->began_ns) / 1e9 >= w->o->setup_timeout) {
        note_error(w,
                   "set-up timed out (--setup-timeout): running with the connections that are up");
        for (size_t i = 0; i < w->role_count; i++)
            if (!w->roles[i].settled && w->roles[i].conn != NULL) {
                bench_conn_close(w->roles[i].conn);
                w->roles[i].conn = NULL;
            }
        send_ready(w);
        return;
    }
    if (w->share->connect_rate > 0) {
        double burst = w->share->connect_rate * 0.05 > 1.0 ? w->share->connect_rate * 0.05 : 1.0;
        w->tokens += (double)(now - w->last_tick_ns) / 1e9 * w->share->connect_rate;
        if (w->tokens > burst)
            w->tokens = burst;
    }
    w->last_tick_ns = now;
    open_more(w);
    if (w->phase == PHASE_SETUP)
        fire_in_ms(w->tick, SETUP_TICK_MS);
}

/* ---- the run ---- */

static void drain_tick(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    uint64_t now = stamp_now_ns();
    bool quiet = now - w->last_delivery_ns >= QUIET_NS;
    bool all_in = w->o->procs == 1 && w->r->received >= w->r->expected;
    if (w->o->scenario == SCENARIO_CONNECT_STORM)
        quiet = all_in = false; /* storms end when their slots do */
    if (quiet || all_in || now >= w->drain_deadline) {
        finish_run(w);
        return;
    }
    fire_in_ms(w->tick, DRAIN_TICK_MS);
}

static void start_drain(struct worker *w)
{
    w->r->window_s = (double)(stamp_now_ns() - w->window_start) / 1e9;
    w->r->cpu_window_s = cpu_seconds(NULL, NULL) - w->cpu_at_window_start;
    for (size_t i = 0; i < w->role_count; i++)
        if (w->roles[i].kind == ROLE_PUB && w->roles[i].conn != NULL) {
            bench_conn_flush(w->roles[i].conn);
            if (w->roles[i].conn != NULL)
                pub_stop(&w->roles[i]);
        }
    if (w->o->scenario == SCENARIO_IDLE && w->o->publishers == 0) {
        finish_run(w);
        return;
    }
    w->phase = PHASE_DRAIN;
    w->drain_deadline = stamp_now_ns() + (uint64_t)(w->o->drain * 1e9);
    if (w->o->scenario == SCENARIO_CONNECT_STORM && w->settled == w->role_count) {
        finish_run(w);
        return;
    }
    if (w->r->received >= w->r->expected && w->o->procs == 1 &&
        w->o->scenario != SCENARIO_CONNECT_STORM) {
        finish_run(w);
        return;
    }
    w->last_delivery_ns = stamp_now_ns();
    evtimer_assign(w->tick, w->base, drain_tick, w);
    fire_in_ms(w->tick, DRAIN_TICK_MS);
}

static void phase_step(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    unsigned step = w->step++;
    if (step == 2) {
        start_drain(w);
        return;
    }
    if (step == 1) {
        w->cpu_at_window_start = cpu_seconds(NULL, NULL);
        fire_at(w->phase_timer, w->window_end);
        return;
    }
    /* The start instant: publishers and storm slots begin. */
    w->phase = PHASE_RUN;
    for (size_t i = 0; i < w->role_count; i++) {
        struct role *x = &w->roles[i];
        if (x->kind == ROLE_PUB && x->up)
            pub_start(x);
        else if (x->kind == ROLE_STORM)
            storm_next(x);
    }
    fire_at(w->phase_timer, w->window_start);
}

static void go_read(evutil_socket_t fd, short what, void *arg)
{
    struct worker *w = arg;
    if (read(w->go_fd, &w->go, sizeof(w->go)) != (ssize_t)sizeof(w->go)) {
        note_error(w, "the parent process went away before the start");
        finish_run(w);
        return;
    }
    uint64_t subs = w->go.subs_up_total;
    for (size_t i = 0; i < w->role_count; i++) {
        struct role *p = &w->roles[i];
        if (p->kind != ROLE_PUB)
            continue;
        if (w->o->scenario == SCENARIO_MANY_TO_MANY)
            p->copies = w->roles[i - 1].up ? 1 : 0; /* its subscriber is the role before it */
        else if (w->o->scenario == SCENARIO_QUEUE)
            p->copies = subs > 0 ? 1 : 0;
        else
            p->copies = subs;
    }
    w->window_start = w->go.start_ns + (uint64_t)(w->o->warmup * 1e9);
    w->window_end = w->window_start + (uint64_t)(w->o->duration * 1e9);
    fire_at(w->phase_timer, w->go.start_ns);
}

/* ---- building the roles ---- */

static void role_dest(struct worker *w, struct role *x, unsigned index, bool numbered)
{
    if (numbered)
        snprintf(x->dest, sizeof(x->dest), "%s.%u", w->o->dest, index);
    else
        snprintf(x->dest, sizeof(x->dest), "%s", w->o->dest);
}

static bool make_sub(struct worker *w, struct role *s, unsigned index, unsigned first,
                     unsigned count)
{
    s->kind = ROLE_SUB;
    s->id = index;
    s->track_first = first;
    s->track_count = count;
    if (count > 0 && (s->tracks = calloc(count, sizeof(*s->tracks))) == NULL)
        return false;
    return true;
}

static bool make_pub(struct worker *w, struct role *p, unsigned id)
{
    p->kind = ROLE_PUB;
    p->id = id;
    p->head_len = send_head(p, w->o->size, p->head);
    p->timer = evtimer_new(w->base, pub_tick, p);
    return p->timer != NULL;
}

/* Lays out this worker's roles: subscribers before publishers, pairs side by side. */
static bool make_roles(struct worker *w)
{
    const struct bench_options *o = w->o;
    const struct bench_share *sh = w->share;
    size_t n = o->scenario == SCENARIO_MANY_TO_MANY    ? 2u * sh->sub_count
               : o->scenario == SCENARIO_CONNECT_STORM ? sh->concurrency
                                                       : (size_t)sh->sub_count + sh->pub_count;
    w->roles = calloc(n > 0 ? n : 1, sizeof(*w->roles));
    if (w->roles == NULL)
        return false;
    w->role_count = n;
    bool ok = true;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        w->roles[i].w = w;
    switch (o->scenario) {
    case SCENARIO_MANY_TO_MANY:
        for (unsigned i = 0; i < sh->sub_count; i++) {
            unsigned pair = sh->sub_first + i;
            role_dest(w, &w->roles[k], pair, true);
            ok = ok && make_sub(w, &w->roles[k++], pair, pair, 1);
            role_dest(w, &w->roles[k], pair, true);
            ok = ok && make_pub(w, &w->roles[k++], pair);
        }
        break;
    case SCENARIO_IDLE:
        for (unsigned i = 0; i < sh->sub_count; i++) {
            unsigned index = sh->sub_first + i;
            role_dest(w, &w->roles[k], index % o->topics, o->topics > 1);
            ok = ok && make_sub(w, &w->roles[k++], index, 0, o->publishers);
        }
        for (unsigned i = 0; i < sh->pub_count; i++) {
            role_dest(w, &w->roles[k], 0, false); /* --topics is 1 with publishers */
            ok = ok && make_pub(w, &w->roles[k++], sh->pub_first + i);
        }
        break;
    case SCENARIO_CONNECT_STORM:
        for (unsigned i = 0; i < sh->concurrency; i++) {
            w->roles[k].kind = ROLE_STORM;
            w->roles[k].timer = evtimer_new(w->base, storm_retry, &w->roles[k]);
            ok = ok && w->roles[k++].timer != NULL;
        }
        break;
    default:
        for (unsigned i = 0; i < sh->sub_count; i++) {
            role_dest(w, &w->roles[k], 0, false);
            ok = ok && make_sub(w, &w->roles[k++], sh->sub_first + i, 0, o->publishers);
        }
        for (unsigned i = 0; i < sh->pub_count; i++) {
            role_dest(w, &w->roles[k], 0, false);
            ok = ok && make_pub(w, &w->roles[k++], sh->pub_first + i);
        }
        break;
    }
    return ok;
}

static void worker_free(struct worker *w)
{
    for (size_t i = 0; i < w->role_count; i++) {
        struct role *x = &w->roles[i];
        if (x->conn != NULL && x->up)
            w->r->conns_end++;
        if (x->conn != NULL && x->kind == ROLE_STORM)
            note_error(w, "connect-storm cycle unfinished when the run ended (--drain)");
        bench_conn_close(x->conn);
        if (x->timer != NULL)
            event_free(x->timer);
        free(x->tracks);
    }
    free(w->roles);
    free(w->body);
    if (w->go_ev != NULL)
        event_free(w->go_ev);
    if (w->tick != NULL)
        event_free(w->tick);
    if (w->phase_timer != NULL)
        event_free(w->phase_timer);
    if (w->base != NULL)
        event_base_free(w->base);
}

/*
 * --body json: quotes as a market feed sends them, ",{"symbol":"S017","price":123.45,
 * "volume":5120}" over and over with varying figures (after the stamp), so that compression
 * sees what it would in real JSON, not 26 letters repeated.
 */
static void json_filler(char *out, size_t len)
{
    uint64_t x = 0x2545F4914F6CDD1Du;
    size_t n = 0;
    while (n < len) {
        char quote[96];
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        uint64_t r = x * 0x9E3779B97F4A7C15u;
        int q = snprintf(quote, sizeof(quote),
                         ",{\"symbol\":\"S%03u\",\"price\":%u.%02u,\"volume\":%u}",
                         (unsigned)(r % 64), (unsigned)(50 + (r >> 8) % 400),
                         (unsigned)((r >> 20) % 100), (unsigned)((r >> 28) % 100) * 100);
        size_t take = (size_t)q < len - n ? (size_t)q : len - n;
        memcpy(out + n, quote, take);
        n += take;
    }
}

static bool worker_init(struct worker *w)
{
    w->base = event_base_new();
    if (w->base == NULL)
        return false;
    w->body = malloc(w->o->size_max > 0 ? w->o->size_max : 1);
    w->go_ev = event_new(w->base, w->go_fd, EV_READ, go_read, w);
    w->tick = evtimer_new(w->base, setup_tick, w);
    w->phase_timer = evtimer_new(w->base, phase_step, w);
    if (w->body == NULL || w->go_ev == NULL || w->tick == NULL || w->phase_timer == NULL)
        return false;
    /* Printable filler: bodies stay valid UTF-8, so every broker sends them as text frames. */
    if (w->o->json_body)
        json_filler(w->body, w->o->size_max);
    else
        for (size_t i = 0; i < w->o->size_max; i++)
            w->body[i] = (char)('a' + i % 26);
    w->rng = 0x9E3779B97F4A7C15u ^ ((uint64_t)getpid() << 17) ^ stamp_now_ns();
    w->window_start = w->window_end = UINT64_MAX;
    return make_roles(w);
}

int scenario_run(const struct bench_options *o, const struct bench_share *share, int ready_fd,
                 int go_fd, struct bench_result *result)
{
    struct worker w = {.o = o, .share = share, .r = result, .ready_fd = ready_fd, .go_fd = go_fd};
    memset(result, 0, sizeof(*result));
    hdr_init(&result->latency);
    w.began_ns = w.last_tick_ns = stamp_now_ns();
    if (!worker_init(&w)) {
        note_error(&w, "out of memory setting the worker up");
        worker_free(&w);
        return -1;
    }
    result->conns_wanted = o->scenario == SCENARIO_CONNECT_STORM ? 0 : w.role_count;
    if (o->scenario == SCENARIO_CONNECT_STORM) {
        w.settled = 0; /* storm slots settle when they retire, after the window */
        send_ready(&w);
    } else {
        w.tokens = 1.0;
        open_more(&w);
        if (w.phase == PHASE_SETUP)
            fire_in_ms(w.tick, SETUP_TICK_MS);
    }
    if (w.phase != PHASE_DONE)
        event_base_dispatch(w.base);
    double end_ns = (double)stamp_now_ns();
    if (w.window_end != UINT64_MAX && end_ns > (double)w.window_end)
        result->drain_s = (end_ns - (double)w.window_end) / 1e9;
    worker_free(&w);
    cpu_seconds(&result->cpu_user_s, &result->cpu_sys_s);
    result->wire_bytes_in = bench_conn_bytes_read();
    result->compressed_in = bench_conn_compressed_messages();
    return 0;
}
