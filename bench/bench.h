/*
 * bench/bench.h - what the parts of stompws-bench share: the run's options, one worker's share
 * of it, and the figures a worker reports.
 *
 * One run = one scenario against one broker URL, or against the nodes of one cluster (one --url
 * each: connection i goes to URL i modulo their count). The parent process parses the options
 * and forks --procs workers; each worker runs its share of the connections on its own libevent
 * loop (scenario.c) and sends back a struct bench_result, which the parent merges and prints
 * (result.c). Worker and parent meet twice through pipes: "my connections are up" and "go at
 * this instant", so every worker's publishers start at the same moment and measure the same
 * window.
 */
#ifndef STOMPWS_BENCH_BENCH_H
#define STOMPWS_BENCH_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bench/bench_conn.h"
#include "bench/hdr.h"

/* --url may be given this many times (cluster nodes). */
#define BENCH_MAX_URLS 64

enum bench_scenario {
    SCENARIO_FANOUT,        /* P publishers -> S subscribers on one topic */
    SCENARIO_MANY_TO_MANY,  /* N publisher/subscriber pairs on N topics */
    SCENARIO_QUEUE,         /* P producers -> C consumers on one queue */
    SCENARIO_IDLE,          /* N subscribed connections held open; optional broadcasts */
    SCENARIO_CONNECT_STORM, /* connect + CONNECT/CONNECTED + DISCONNECT, again and again */
    SCENARIO_LARGE,         /* fanout with large bodies */
};

/* The whole run, as the command line gave it (defaults filled in). Strings borrow argv. */
struct bench_options {
    enum bench_scenario scenario;
    const char *urls[BENCH_MAX_URLS];            /* as given, for the report */
    struct bench_target targets[BENCH_MAX_URLS]; /* resolved, one per URL */
    unsigned url_count;                          /* at least 1 */
    /* 0: connection i goes to URL i modulo url_count. K > 0: publisher i to URL i modulo K,
     * subscriber i to URL K + i modulo (url_count - K), so every delivery crosses nodes. */
    unsigned publisher_urls;

    const char *login;      /* NULL for none */
    const char *passcode;   /* NULL for none */
    const char *stomp_host; /* CONNECT's host header */
    unsigned publishers;    /* fanout, large, queue (producers); idle: broadcasters */
    unsigned subscribers;   /* fanout, large, queue (consumers) */
    unsigned pairs;         /* many-to-many */
    unsigned connections;   /* idle */
    unsigned topics;        /* idle: subscriptions spread over this many topics */
    unsigned concurrency;   /* handshakes in flight (setup; connect-storm cycles) */
    double rate;            /* messages/s per publisher; 0 = saturating */
    size_t outstanding;     /* bytes a publisher may have queued and unsent */
    size_t size;            /* body bytes (at least STAMP_LEN) */
    size_t size_max;        /* bodies are size..size_max bytes, uniformly */
    const char *ack;        /* queue: auto, client or client-individual */
    const char *dest;       /* destination (many-to-many and idle append ".N") */
    double warmup;          /* seconds before the window, excluded from figures */
    double duration;        /* seconds of the measured window */
    double drain;           /* at most this long for messages after the window */
    double setup_timeout;   /* at most this long to set the connections up */
    double connect_rate;    /* new connections/s during set-up over all workers; 0 = any */
    unsigned procs;         /* worker processes */
    unsigned sources;       /* loopback source addresses (0 when not binding) */
    const char *label;      /* free text for the report ("stompws", "rabbitmq") */
    bool json_only;         /* print only the JSON line */
    bool json_body;         /* bodies are JSON-like text (quotes), not a-z filler */
    bool deflate;           /* ws: offer permessage-deflate (bench_target.deflate) */
};

/* One worker's part of the run: counts and where its ids start. */
struct bench_share {
    unsigned worker;    /* 0 .. procs-1 */
    unsigned pub_first; /* run-wide id of its first publisher */
    unsigned pub_count;
    unsigned sub_first; /* run-wide index of its first subscriber (pair, idle connection) */
    unsigned sub_count;
    unsigned concurrency; /* its share of --concurrency (at least 1) */
    double connect_rate;  /* its share of --connect-rate */
};

/* Worker -> parent once its connections are set up (or the set-up timed out). */
struct bench_ready {
    uint64_t conns_up;
    uint64_t subs_up; /* subscribers whose SUBSCRIBE got its RECEIPT */
    uint64_t pubs_up;
    double setup_s; /* seconds from start to ready */
};

/* Parent -> worker: start at start_ns (CLOCK_MONOTONIC), with the run-wide counts. */
struct bench_go {
    uint64_t start_ns;
    uint64_t subs_up_total;
};

#define BENCH_ERROR_KINDS 6
#define BENCH_ERROR_TEXT  200

/* Distinct error messages and how often each happened (the first BENCH_ERROR_KINDS kinds). */
struct bench_errors {
    uint64_t total;
    uint64_t count[BENCH_ERROR_KINDS];
    char text[BENCH_ERROR_KINDS][BENCH_ERROR_TEXT];
};

/* A worker's figures. Plain value: written to the parent as bytes. */
struct bench_result {
    uint64_t conns_wanted; /* connections the worker set out to open (not counting storms) */
    uint64_t conns_up;     /* ... that were up at the start */
    uint64_t conns_end;    /* ... still up at the end (idle) */
    uint64_t subs_up;
    uint64_t pubs_up;
    uint64_t sent;     /* messages stamped inside the window */
    uint64_t expected; /* deliveries those should make (sent x subscribers that get each) */
    uint64_t received; /* deliveries of messages stamped inside the window, duplicates not */
    uint64_t received_outside; /* deliveries of messages stamped in the warm-up or after */
    uint64_t arrived;          /* deliveries that arrived inside the window, whatever their stamp */
    uint64_t reordered;        /* arrived after a later message of the same publisher */
    uint64_t duplicates;       /* seen twice by one subscriber */
    uint64_t gaps;             /* sequence numbers skipped and never filled (per subscriber) */
    uint64_t bad_bodies;       /* MESSAGE without a stamp, or from an unknown publisher */
    uint64_t cycles;           /* connect-storm: cycles completed inside the window */
    uint64_t wire_bytes_in;    /* bytes read from every socket, the whole run (bench_conn.h) */
    uint64_t compressed_in;    /* WebSocket messages that arrived compressed (--deflate) */
    double setup_s;
    double drain_s;    /* how long the drain after the window took */
    double window_s;   /* the window as this worker measured it */
    double cpu_user_s; /* the worker's whole life */
    double cpu_sys_s;
    double cpu_window_s; /* user + sys inside the window */
    struct bench_errors errors;
    struct hdr latency; /* end-to-end ns; connect-storm and idle: connect-to-ready ns */
};

/* Adds one error of kind `text` (the first BENCH_ERROR_KINDS distinct texts are kept). */
void bench_errors_add(struct bench_errors *e, const char *text, uint64_t n);

/* Runs this worker's share; fills *result. ready_fd / go_fd: the pipes to the parent. */
int scenario_run(const struct bench_options *o, const struct bench_share *share, int ready_fd,
                 int go_fd, struct bench_result *result);

/* Connections one worker will hold at once (for the open-files check). */
unsigned scenario_conns_per_worker(const struct bench_options *o, unsigned procs);

/* Name of a scenario as on the command line ("fanout", "many-to-many", ...). */
const char *scenario_name(enum bench_scenario s);

/* Merges src into dst (counters summed, histograms merged, errors by text). */
void result_merge(struct bench_result *dst, const struct bench_result *src);

/*
 * Prints the human table (unless o->json_only) and the one JSON line on stdout. wall_s is the
 * whole run; cpu_share_max the busiest worker's CPU share of a core inside the window.
 */
void result_print(const struct bench_options *o, const struct bench_result *r, double wall_s,
                  double cpu_share_max);

#endif
