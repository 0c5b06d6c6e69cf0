/*
 * bench/stompws_bench.c - stompws-bench: a STOMP load generator (WebSocket or TCP) for stompws
 * and any other STOMP broker (docs/PERFORMANCE.md, "stompws-bench").
 *
 * This file is the parent process: options, the open-files limit, one forked worker per --procs
 * (each runs scenario.c on its own event loop with its share of the connections), the start
 * barrier, and merging the workers' figures into one report. Workers and parent talk through two
 * pipes per worker: worker -> parent carries struct bench_ready and then struct bench_result;
 * parent -> worker carries struct bench_go.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench/bench.h"
#include "bench/stamp.h"
#include "cli/url.h"
#include "ws/frame.h"

#define MAX_PROCS 64
/* Open files a worker needs besides its connections (pipes, epoll, stdio). */
#define FD_MARGIN 32
/* Connections per loopback source address when --sources is not given. */
#define CONNS_PER_SOURCE 1000
/* connect-storm opens connection after connection: spread them over this many sources. */
#define STORM_SOURCES 64
/* Workers start this long after the last one is ready, so all see the go before it passes. */
#define GO_DELAY_NS (100 * 1000000ull)
/* The whole run may take this much longer than its timings add up to before it is killed. */
#define OVERRUN_S 30

static pid_t worker_pids[MAX_PROCS];
static unsigned worker_count;

static void usage(FILE *out)
{
    fprintf(out,
            "usage: stompws-bench [options]\n"
            "\n"
            "A STOMP load generator: STOMP over WebSocket (ws://) or over TCP (tcp://).\n"
            "\n"
            "  --url URL            broker (default ws://127.0.0.1:15674/ws, also RabbitMQ's\n"
            "                       Web STOMP; STOMP over TCP: tcp://127.0.0.1:61613); give\n"
            "                       it once per node of a cluster (up to %d, one scheme):\n"
            "                       connection i goes to URL i modulo their count\n"
            "  --publisher-urls K   publishers on the first K --url only (publisher i to URL\n"
            "                       i modulo K), subscribers on the others: every delivery\n"
            "                       crosses nodes (default 0: both on every URL)\n"
            "  --ws-path PATH       WebSocket path, overriding the URL's\n"
            "  --login L            CONNECT login (RabbitMQ: guest)\n"
            "  --passcode P         CONNECT passcode (RabbitMQ: guest)\n"
            "  --host H             CONNECT host header (default '/', what RabbitMQ wants)\n"
            "  --scenario NAME      fanout (default), many-to-many, queue, idle,\n"
            "                       connect-storm or large\n"
            "  --publishers P       fanout, large, queue producers (default 1); idle:\n"
            "                       broadcasters to every connection, paced by --rate, in\n"
            "                       the window only (default 0)\n"
            "  --subscribers S      fanout, large (default 10); queue consumers (default 2)\n"
            "  --consumers C        the same as --subscribers\n"
            "  --pairs N            many-to-many: N publishers, each with its own subscriber\n"
            "                       on its own topic (default 100)\n"
            "  --connections N      idle: subscribed connections to hold (default 1000)\n"
            "  --topics K           idle: subscriptions spread over K topics (default 1;\n"
            "                       1 with --publishers)\n"
            "  --concurrency C      handshakes in flight while connecting; connect-storm:\n"
            "                       cycles in flight (default 100; connect-storm 50)\n"
            "  --rate R             messages/s PER PUBLISHER; 0 = saturating (default 0)\n"
            "  --outstanding BYTES  saturating: most bytes a publisher keeps queued (64k)\n"
            "  --size BYTES         body size, at least %d (the stamp) (default 100;\n"
            "                       large 64k)\n"
            "  --size-max BYTES     bodies uniformly random in size..size-max (large: 1m-4k)\n"
            "  --ack MODE           queue: auto, client or client-individual (default auto)\n"
            "  --dest NAME          destination (default /topic/bench or /queue/bench;\n"
            "                       many-to-many, and idle with --topics, append .N)\n"
            "  --warmup S           seconds excluded from the figures (default 1); idle:\n"
            "                       seconds held before the window (default 0)\n"
            "  --duration S         seconds measured (default 5)\n"
            "  --drain S            at most this long for messages in flight after (default 5)\n"
            "  --setup-timeout S    at most this long to connect and subscribe (default 60)\n"
            "  --connect-rate R     new connections/s while connecting (default 0: no pacing)\n"
            "  --procs N            worker processes sharing the connections (default 1)\n"
            "  --sources N          loopback source addresses 127.0.0.1... (default one per\n"
            "                       1000 connections; only for a broker in 127.0.0.0/8)\n"
            "  --label TEXT         copied into the report (e.g. the broker's name)\n"
            "  --json               print only the JSON line\n"
            "  --deflate            ws: offer permessage-deflate and inflate what comes\n"
            "                       compressed (wire_bytes_in shows the difference)\n"
            "  --body json          bodies of JSON quotes after the stamp (default: letters)\n"
            "  --version, --help\n"
            "\n"
            "Output: a table, then one JSON line (the last line). idle prints \"up N of M\n"
            "connections ...\" once they are up, then holds them for --warmup + --duration.\n"
            "Exit status: 0 the run took place, 1 it could not (no connection, a worker\n"
            "died), 2 usage error.\n",
            BENCH_MAX_URLS, STAMP_LEN);
}

/* ---- option values ---- */

static int bad_value(const char *opt, const char *value, const char *want)
{
    fprintf(stderr, "stompws-bench: %s '%s': %s\n", opt, value, want);
    return -1;
}

/* Bytes with an optional k, m or g suffix (binary: 64k = 65536). */
static int parse_size(const char *opt, const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    unsigned shift = 0;
    if (*end == 'k' || *end == 'K')
        shift = 10;
    else if (*end == 'm' || *end == 'M')
        shift = 20;
    else if (*end == 'g' || *end == 'G')
        shift = 30;
    if (shift != 0)
        end++;
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v > (SIZE_MAX >> shift))
        return bad_value(opt, s, "expected a byte count such as 100, 64k or 1m");
    *out = (size_t)(v << shift);
    return 0;
}

static int parse_uint(const char *opt, const char *s, unsigned min, unsigned max, unsigned *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || s[0] == '-' || v < min || v > max) {
        char want[80];
        snprintf(want, sizeof(want), "expected a whole number in %u..%u", min, max);
        return bad_value(opt, s, want);
    }
    *out = (unsigned)v;
    return 0;
}

/* A number in 0..max; what names the unit for the error ("seconds", "per second"). */
static int parse_number(const char *opt, const char *s, double max, const char *what, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v < 0 || v > max) {
        char want[80];
        snprintf(want, sizeof(want), "expected a number of %s in 0..%.0f", what, max);
        return bad_value(opt, s, want);
    }
    *out = v;
    return 0;
}

static int parse_seconds(const char *opt, const char *s, double *out)
{
    return parse_number(opt, s, 86400, "seconds", out);
}

static int parse_per_second(const char *opt, const char *s, double *out)
{
    return parse_number(opt, s, 1e9, "events per second", out);
}

static int parse_scenario(const char *s, enum bench_scenario *out)
{
    static const enum bench_scenario all[] = {SCENARIO_FANOUT,        SCENARIO_MANY_TO_MANY,
                                              SCENARIO_QUEUE,         SCENARIO_IDLE,
                                              SCENARIO_CONNECT_STORM, SCENARIO_LARGE};
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
        if (strcmp(s, scenario_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    return bad_value("--scenario", s,
                     "expected fanout, many-to-many, queue, idle, connect-storm or large");
}

/* Values given on the command line, before defaults that depend on the scenario. */
struct given {
    bool publishers, subscribers, concurrency, size, size_max, warmup, dest;
    const char *ws_path;
};

enum {
    OPT_URL = 256,
    OPT_PUBLISHER_URLS,
    OPT_WS_PATH,
    OPT_LOGIN,
    OPT_PASSCODE,
    OPT_HOST,
    OPT_SCENARIO,
    OPT_PUBLISHERS,
    OPT_SUBSCRIBERS,
    OPT_PAIRS,
    OPT_CONNECTIONS,
    OPT_TOPICS,
    OPT_CONCURRENCY,
    OPT_RATE,
    OPT_OUTSTANDING,
    OPT_SIZE,
    OPT_SIZE_MAX,
    OPT_ACK,
    OPT_DEST,
    OPT_WARMUP,
    OPT_DURATION,
    OPT_DRAIN,
    OPT_SETUP_TIMEOUT,
    OPT_CONNECT_RATE,
    OPT_PROCS,
    OPT_SOURCES,
    OPT_LABEL,
    OPT_JSON,
    OPT_DEFLATE,
    OPT_BODY,
    OPT_HELP,
    OPT_VERSION,
};

static const struct option long_options[] = {
    {"url", required_argument, NULL, OPT_URL},
    {"publisher-urls", required_argument, NULL, OPT_PUBLISHER_URLS},
    {"ws-path", required_argument, NULL, OPT_WS_PATH},
    {"login", required_argument, NULL, OPT_LOGIN},
    {"passcode", required_argument, NULL, OPT_PASSCODE},
    {"host", required_argument, NULL, OPT_HOST},
    {"scenario", required_argument, NULL, OPT_SCENARIO},
    {"publishers", required_argument, NULL, OPT_PUBLISHERS},
    {"producers", required_argument, NULL, OPT_PUBLISHERS},
    {"subscribers", required_argument, NULL, OPT_SUBSCRIBERS},
    {"consumers", required_argument, NULL, OPT_SUBSCRIBERS},
    {"pairs", required_argument, NULL, OPT_PAIRS},
    {"connections", required_argument, NULL, OPT_CONNECTIONS},
    {"topics", required_argument, NULL, OPT_TOPICS},
    {"concurrency", required_argument, NULL, OPT_CONCURRENCY},
    {"rate", required_argument, NULL, OPT_RATE},
    {"outstanding", required_argument, NULL, OPT_OUTSTANDING},
    {"size", required_argument, NULL, OPT_SIZE},
    {"size-max", required_argument, NULL, OPT_SIZE_MAX},
    {"ack", required_argument, NULL, OPT_ACK},
    {"dest", required_argument, NULL, OPT_DEST},
    {"warmup", required_argument, NULL, OPT_WARMUP},
    {"duration", required_argument, NULL, OPT_DURATION},
    {"drain", required_argument, NULL, OPT_DRAIN},
    {"setup-timeout", required_argument, NULL, OPT_SETUP_TIMEOUT},
    {"connect-rate", required_argument, NULL, OPT_CONNECT_RATE},
    {"procs", required_argument, NULL, OPT_PROCS},
    {"sources", required_argument, NULL, OPT_SOURCES},
    {"label", required_argument, NULL, OPT_LABEL},
    {"json", no_argument, NULL, OPT_JSON},
    {"deflate", no_argument, NULL, OPT_DEFLATE},
    {"body", required_argument, NULL, OPT_BODY},
    {"help", no_argument, NULL, OPT_HELP},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static void set_defaults(struct bench_options *o)
{
    memset(o, 0, sizeof(*o));
    o->scenario = SCENARIO_FANOUT;
    o->stomp_host = "/";
    o->publishers = 1;
    o->subscribers = 10;
    o->pairs = 100;
    o->connections = 1000;
    o->topics = 1;
    o->concurrency = 100;
    o->outstanding = 64 * 1024;
    o->size = 100;
    o->ack = "auto";
    o->dest = "/topic/bench";
    o->warmup = 1;
    o->duration = 5;
    o->drain = 5;
    o->setup_timeout = 60;
    o->procs = 1;
    o->label = "";
}

/* One option; -1 after printing the problem. */
static int apply_option(struct bench_options *o, struct given *g, int opt, const char *v)
{
    switch (opt) {
    case OPT_URL:
        if (o->url_count == BENCH_MAX_URLS) {
            fprintf(stderr, "stompws-bench: --url %s: at most %d URLs\n", v, BENCH_MAX_URLS);
            return -1;
        }
        o->urls[o->url_count++] = v;
        return 0;
    case OPT_PUBLISHER_URLS:
        return parse_uint("--publisher-urls", v, 0, BENCH_MAX_URLS - 1, &o->publisher_urls);
    case OPT_WS_PATH:
        g->ws_path = v;
        return 0;
    case OPT_LOGIN:
        o->login = v;
        return 0;
    case OPT_PASSCODE:
        o->passcode = v;
        return 0;
    case OPT_HOST:
        o->stomp_host = v;
        return 0;
    case OPT_SCENARIO:
        return parse_scenario(v, &o->scenario);
    case OPT_PUBLISHERS:
        g->publishers = true;
        return parse_uint("--publishers", v, 0, 1000000, &o->publishers);
    case OPT_SUBSCRIBERS:
        g->subscribers = true;
        return parse_uint("--subscribers", v, 0, 10000000, &o->subscribers);
    case OPT_PAIRS:
        return parse_uint("--pairs", v, 1, 10000000, &o->pairs);
    case OPT_CONNECTIONS:
        return parse_uint("--connections", v, 1, 10000000, &o->connections);
    case OPT_TOPICS:
        return parse_uint("--topics", v, 1, 10000000, &o->topics);
    case OPT_CONCURRENCY:
        g->concurrency = true;
        return parse_uint("--concurrency", v, 1, 1000000, &o->concurrency);
    case OPT_RATE:
        return parse_per_second("--rate", v, &o->rate);
    case OPT_OUTSTANDING:
        return parse_size("--outstanding", v, &o->outstanding);
    case OPT_SIZE:
        g->size = true;
        return parse_size("--size", v, &o->size);
    case OPT_SIZE_MAX:
        g->size_max = true;
        return parse_size("--size-max", v, &o->size_max);
    case OPT_ACK:
        o->ack = v;
        return 0;
    case OPT_DEST:
        g->dest = true;
        o->dest = v;
        return 0;
    case OPT_WARMUP:
        g->warmup = true;
        return parse_seconds("--warmup", v, &o->warmup);
    case OPT_DURATION:
        return parse_seconds("--duration", v, &o->duration);
    case OPT_DRAIN:
        return parse_seconds("--drain", v, &o->drain);
    case OPT_SETUP_TIMEOUT:
        return parse_seconds("--setup-timeout", v, &o->setup_timeout);
    case OPT_CONNECT_RATE:
        return parse_per_second("--connect-rate", v, &o->connect_rate);
    case OPT_PROCS:
        return parse_uint("--procs", v, 1, MAX_PROCS, &o->procs);
    case OPT_SOURCES:
        return parse_uint("--sources", v, 1, 254u * 65536u, &o->sources);
    case OPT_LABEL:
        o->label = v;
        return 0;
    case OPT_JSON:
        o->json_only = true;
        return 0;
    case OPT_DEFLATE:
        o->deflate = true;
        return 0;
    case OPT_BODY:
        if (strcmp(v, "json") != 0 && strcmp(v, "letters") != 0) {
            fprintf(stderr, "stompws-bench: --body: expected json or letters\n");
            return -1;
        }
        o->json_body = strcmp(v, "json") == 0;
        return 0;
    }
    return -1;
}

/* Defaults that depend on the scenario, for what the command line left out. */
static void scenario_defaults(struct bench_options *o, const struct given *g)
{
    if (o->url_count == 0)
        o->urls[o->url_count++] = "ws://127.0.0.1:15674/ws";
    if (o->scenario == SCENARIO_IDLE && !g->publishers)
        o->publishers = 0;
    if (o->scenario == SCENARIO_QUEUE && !g->subscribers)
        o->subscribers = 2;
    if (o->scenario == SCENARIO_QUEUE && !g->dest)
        o->dest = "/queue/bench";
    if (o->scenario == SCENARIO_IDLE && !g->dest)
        o->dest = "/topic/bench.idle";
    if (o->scenario == SCENARIO_IDLE && !g->warmup)
        o->warmup = 0;
    if (o->scenario == SCENARIO_CONNECT_STORM && !g->concurrency)
        o->concurrency = 50;
    if (o->scenario == SCENARIO_LARGE && !g->size)
        o->size = 64 * 1024;
    if (o->scenario == SCENARIO_LARGE && !g->size_max)
        o->size_max = 1024 * 1024 - 4096; /* the frame head fits in a 1 MiB WebSocket message */
    if (o->size_max < o->size)
        o->size_max = o->size;
}

/* Header values go on the wire as they are: no NUL or line breaks. */
static bool header_safe(const char *s)
{
    return strpbrk(s, "\r\n") == NULL;
}

/* Idle broadcasts: paced, and to the one topic every connection holds. */
static int check_idle_publishers(const struct bench_options *o)
{
    if (o->scenario != SCENARIO_IDLE || o->publishers == 0)
        return 0;
    if (o->rate <= 0) {
        fprintf(stderr, "stompws-bench: --publishers with --scenario idle send paced broadcasts: "
                        "give --rate (messages/s per publisher)\n");
        return -1;
    }
    if (o->topics > 1) {
        fprintf(stderr, "stompws-bench: --publishers with --scenario idle broadcast to every "
                        "connection: --topics must be 1\n");
        return -1;
    }
    return 0;
}

static int check_options(const struct bench_options *o)
{
    bool messages = o->scenario != SCENARIO_CONNECT_STORM &&
                    (o->scenario != SCENARIO_IDLE || o->publishers > 0);
    if (messages && o->size < STAMP_LEN) {
        fprintf(stderr, "stompws-bench: --size %zu: bodies carry a %d-byte stamp, so at least %d\n",
                o->size, STAMP_LEN, STAMP_LEN);
        return -1;
    }
    if (o->size_max > 256u * 1024 * 1024) {
        fprintf(stderr, "stompws-bench: --size-max %zu: at most 256m\n", o->size_max);
        return -1;
    }
    if (o->publisher_urls > 0 && o->publisher_urls >= o->url_count) {
        fprintf(stderr,
                "stompws-bench: --publisher-urls %u: leaves no --url for the subscribers "
                "(%u given)\n",
                o->publisher_urls, o->url_count);
        return -1;
    }
    if (o->duration <= 0) {
        fprintf(stderr, "stompws-bench: --duration must be more than 0 seconds\n");
        return -1;
    }
    if (strcmp(o->ack, "auto") != 0 && strcmp(o->ack, "client") != 0 &&
        strcmp(o->ack, "client-individual") != 0)
        return bad_value("--ack", o->ack, "expected auto, client or client-individual");
    if (strlen(o->dest) == 0 || strlen(o->dest) > 200 || !header_safe(o->dest))
        return bad_value("--dest", o->dest, "expected 1..200 characters, no line breaks");
    const char *strings[] = {o->stomp_host, o->login, o->passcode};
    for (size_t i = 0; i < 3; i++)
        if (strings[i] != NULL && !header_safe(strings[i])) {
            fprintf(stderr, "stompws-bench: --host, --login and --passcode may not hold line "
                            "breaks\n");
            return -1;
        }
    if ((o->scenario == SCENARIO_FANOUT || o->scenario == SCENARIO_LARGE ||
         o->scenario == SCENARIO_QUEUE) &&
        o->publishers == 0) {
        fprintf(stderr, "stompws-bench: --publishers must be at least 1 for %s\n",
                scenario_name(o->scenario));
        return -1;
    }
    return check_idle_publishers(o);
}

static int parse_options(int argc, char **argv, struct bench_options *o)
{
    struct given g = {0};
    int opt;
    set_defaults(o);
    while ((opt = getopt_long(argc, argv, "", long_options, NULL)) != -1) {
        if (opt == OPT_HELP) {
            usage(stdout);
            exit(0);
        }
        if (opt == OPT_VERSION) {
            printf("stompws-bench %s\n", STOMPWS_VERSION);
            exit(0);
        }
        if (opt == '?' || apply_option(o, &g, opt, optarg) != 0) {
            fprintf(stderr, "stompws-bench: see --help\n");
            return -1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "stompws-bench: unexpected argument '%s' (see --help)\n", argv[optind]);
        return -1;
    }
    scenario_defaults(o, &g);
    if (check_options(o) != 0)
        return -1;
    if (g.ws_path != NULL && strlen(g.ws_path) >= sizeof(o->targets[0].target) - 1)
        return bad_value("--ws-path", g.ws_path, "at most 2048 characters");
    for (unsigned i = 0; g.ws_path != NULL && i < o->url_count; i++)
        snprintf(o->targets[i].target, sizeof(o->targets[i].target), "%s", g.ws_path);
    return 0;
}

/* ---- the broker's address ---- */

static bool is_loopback_v4(const struct sockaddr_storage *a)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)a;
    return a->ss_family == AF_INET && (ntohl(in->sin_addr.s_addr) >> 24) == 127;
}

/* Parses one --url into t, resolves its host (blocking: once, before anything starts). */
static int resolve_target(const struct bench_options *o, const char *text, struct bench_target *t)
{
    struct url url;
    char err[256], port[8];
    if (url_parse(text, &url, err, sizeof(err)) != 0) {
        fprintf(stderr, "stompws-bench: --url %s: %s\n", text, err);
        return -1;
    }
    if (url.tls) {
        fprintf(stderr, "stompws-bench: --url %s: TLS is not supported; use ws:// or tcp://\n",
                text);
        return -1;
    }
    t->stomp_host = o->stomp_host;
    t->login = o->login;
    t->passcode = o->passcode;
    t->websocket = url.websocket;
    t->deflate = o->deflate && url.websocket;
    snprintf(t->host_header, sizeof(t->host_header), "%s", url.host_header);
    if (t->target[0] == '\0')
        snprintf(t->target, sizeof(t->target), "%s", url.target);
    else if (t->target[0] != '/') {
        fprintf(stderr, "stompws-bench: --ws-path %s: a path starts with '/'\n", t->target);
        return -1;
    }
    snprintf(port, sizeof(port), "%u", url.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(url.host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "stompws-bench: --url %s: %s\n", text, gai_strerror(rc));
        return -1;
    }
    memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
    t->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    t->bind_source = is_loopback_v4(&t->addr);
    t->max_message =
        o->size_max + 65536 > WS_DEFAULT_MAX_MESSAGE ? o->size_max + 65536 : WS_DEFAULT_MAX_MESSAGE;
    return 0;
}

/* Every --url; one report covers them all, so they share one transport. */
static int resolve_targets(struct bench_options *o)
{
    for (unsigned i = 0; i < o->url_count; i++) {
        if (resolve_target(o, o->urls[i], &o->targets[i]) != 0)
            return -1;
        if (o->targets[i].websocket != o->targets[0].websocket) {
            fprintf(stderr,
                    "stompws-bench: --url %s: every --url of a run uses the same transport as "
                    "the first (%s)\n",
                    o->urls[i], o->targets[0].websocket ? "ws://" : "tcp://");
            return -1;
        }
    }
    return 0;
}

static unsigned total_connections(const struct bench_options *o)
{
    switch (o->scenario) {
    case SCENARIO_MANY_TO_MANY:
        return 2 * o->pairs;
    case SCENARIO_IDLE:
        return o->connections + o->publishers;
    case SCENARIO_CONNECT_STORM:
        return STORM_SOURCES * CONNS_PER_SOURCE;
    default:
        return o->publishers + o->subscribers;
    }
}

static void choose_sources(struct bench_options *o)
{
    bool bind = false;
    for (unsigned i = 0; i < o->url_count; i++)
        bind = bind || o->targets[i].bind_source;
    if (!bind) {
        o->sources = 0;
        return;
    }
    if (o->sources == 0)
        o->sources = (total_connections(o) + CONNS_PER_SOURCE - 1) / CONNS_PER_SOURCE;
    if (o->sources == 0)
        o->sources = 1;
}

/* Soft open-files limit up to the hard one; -1 if a worker still cannot hold its share. */
static int raise_nofile(const struct bench_options *o)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    unsigned need = scenario_conns_per_worker(o, o->procs) + FD_MARGIN;
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur) {
        unsigned conns = total_connections(o);
        unsigned per = (unsigned)rl.rlim_cur > FD_MARGIN ? (unsigned)rl.rlim_cur - FD_MARGIN : 1;
        fprintf(stderr,
                "stompws-bench: %u connections per process need %u open files, but "
                "RLIMIT_NOFILE is %llu: use --procs %u or more\n",
                need - FD_MARGIN, need, (unsigned long long)rl.rlim_cur, (conns + per - 1) / per);
        return -1;
    }
    return 0;
}

/* ---- workers ---- */

static unsigned share_of(unsigned n, unsigned procs, unsigned i)
{
    return n / procs + (i < n % procs ? 1 : 0);
}

static unsigned first_of(unsigned n, unsigned procs, unsigned i)
{
    unsigned first = 0;
    for (unsigned k = 0; k < i; k++)
        first += share_of(n, procs, k);
    return first;
}

static void make_share(const struct bench_options *o, unsigned i, struct bench_share *s)
{
    unsigned p = o->procs;
    memset(s, 0, sizeof(*s));
    s->worker = i;
    s->concurrency = share_of(o->concurrency, p, i);
    if (s->concurrency == 0)
        s->concurrency = 1;
    s->connect_rate = o->connect_rate / p;
    switch (o->scenario) {
    case SCENARIO_MANY_TO_MANY:
        s->sub_first = s->pub_first = first_of(o->pairs, p, i);
        s->sub_count = s->pub_count = share_of(o->pairs, p, i);
        break;
    case SCENARIO_IDLE:
        s->sub_first = first_of(o->connections, p, i);
        s->sub_count = share_of(o->connections, p, i);
        s->pub_first = first_of(o->publishers, p, i);
        s->pub_count = share_of(o->publishers, p, i);
        break;
    case SCENARIO_CONNECT_STORM:
        break;
    default:
        s->pub_first = first_of(o->publishers, p, i);
        s->pub_count = share_of(o->publishers, p, i);
        s->sub_first = first_of(o->subscribers, p, i);
        s->sub_count = share_of(o->subscribers, p, i);
        break;
    }
}

static bool write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

static bool read_all(int fd, void *buf, size_t len)
{
    char *p = buf;
    while (len > 0) {
        ssize_t n = read(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* The child: runs its share, sends its figures, exits. Never returns. */
static void worker_main(const struct bench_options *o, unsigned i, int to_parent, int from_parent)
{
    static struct bench_result result;
    struct bench_share share;
    make_share(o, i, &share);
    int rc = scenario_run(o, &share, to_parent, from_parent, &result);
    bool sent = write_all(to_parent, &result, sizeof(result));
    _exit(rc == 0 && sent ? 0 : 1);
}

struct worker_link {
    pid_t pid;
    int from; /* read end: ready, then result */
    int to;   /* write end: go */
    bool alive;
    struct bench_ready ready;
};

static int spawn_workers(const struct bench_options *o, struct worker_link *links)
{
    fflush(NULL);
    for (unsigned i = 0; i < o->procs; i++) {
        int up[2], down[2];
        if (pipe2(up, O_CLOEXEC) != 0 || pipe2(down, O_CLOEXEC) != 0) {
            perror("stompws-bench: pipe");
            return -1;
        }
        pid_t pid = fork();
        if (pid < 0) {
            perror("stompws-bench: fork");
            return -1;
        }
        if (pid == 0) {
            close(up[0]);
            close(down[1]);
            for (unsigned k = 0; k < i; k++) {
                close(links[k].from);
                close(links[k].to);
            }
            worker_main(o, i, up[1], down[0]);
        }
        close(up[1]);
        close(down[0]);
        links[i] = (struct worker_link){.pid = pid, .from = up[0], .to = down[1], .alive = true};
        worker_pids[worker_count++] = pid;
    }
    return 0;
}

static void on_alarm(int sig)
{
    static const char msg[] = "stompws-bench: the run overran its timings; workers killed\n";
    for (unsigned i = 0; i < worker_count; i++)
        kill(worker_pids[i], SIGKILL);
    if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0)
        _exit(1);
    _exit(1);
}

/* Waits for every worker's bench_ready; prints the "up" line; returns subscribers up. */
static uint64_t barrier(const struct bench_options *o, struct worker_link *links)
{
    uint64_t up = 0, wanted = 0, subs = 0;
    double setup = 0;
    for (unsigned i = 0; i < o->procs; i++) {
        links[i].alive = read_all(links[i].from, &links[i].ready, sizeof(links[i].ready));
        if (!links[i].alive) {
            fprintf(stderr, "stompws-bench: worker %u died while connecting\n", i);
            continue;
        }
        up += links[i].ready.conns_up;
        subs += links[i].ready.subs_up;
        setup = links[i].ready.setup_s > setup ? links[i].ready.setup_s : setup;
    }
    wanted = o->scenario == SCENARIO_CONNECT_STORM ? 0 : total_connections(o);
    if (o->scenario == SCENARIO_IDLE) {
        printf("up %llu of %llu connections after %.2f s; holding them for %.6g s\n",
               (unsigned long long)up, (unsigned long long)wanted, setup, o->warmup + o->duration);
        fflush(stdout);
    } else if (o->scenario != SCENARIO_CONNECT_STORM && !o->json_only) {
        fprintf(stderr, "stompws-bench: %llu of %llu connections up after %.2f s\n",
                (unsigned long long)up, (unsigned long long)wanted, setup);
    }
    return subs;
}

static void go(const struct bench_options *o, struct worker_link *links, uint64_t subs)
{
    struct bench_go g = {stamp_now_ns() + GO_DELAY_NS, subs};
    for (unsigned i = 0; i < o->procs; i++)
        if (links[i].alive && !write_all(links[i].to, &g, sizeof(g)))
            links[i].alive = false;
}

/* Collects and merges the figures; the busiest worker's window CPU share in *share_max. */
static int collect(const struct bench_options *o, struct worker_link *links,
                   struct bench_result *total, double *share_max)
{
    static struct bench_result one;
    int failed = 0;
    memset(total, 0, sizeof(*total));
    hdr_init(&total->latency);
    *share_max = 0;
    for (unsigned i = 0; i < o->procs; i++) {
        if (!links[i].alive || !read_all(links[i].from, &one, sizeof(one))) {
            fprintf(stderr, "stompws-bench: worker %u exited without its figures\n", i);
            bench_errors_add(&total->errors, "a worker process exited without its figures", 1);
            failed = 1;
        } else {
            double share = one.window_s > 0 ? one.cpu_window_s / one.window_s : 0;
            *share_max = share > *share_max ? share : *share_max;
            result_merge(total, &one);
        }
        close(links[i].from);
        close(links[i].to);
        waitpid(links[i].pid, NULL, 0);
    }
    return failed;
}

int main(int argc, char **argv)
{
    static struct bench_result total;
    struct bench_options o;
    struct worker_link links[MAX_PROCS];
    double share_max;
    if (parse_options(argc, argv, &o) != 0)
        return 2;
    if (resolve_targets(&o) != 0)
        return 2;
    choose_sources(&o);
    if (raise_nofile(&o) != 0)
        return 2;
    signal(SIGPIPE, SIG_IGN);
    uint64_t began = stamp_now_ns();
    if (spawn_workers(&o, links) != 0)
        return 1;
    signal(SIGALRM, on_alarm);
    alarm((unsigned)(o.setup_timeout + o.warmup + o.duration + o.drain) + OVERRUN_S);
    uint64_t subs = barrier(&o, links);
    go(&o, links, subs);
    int failed = collect(&o, links, &total, &share_max);
    alarm(0);
    result_print(&o, &total, (double)(stamp_now_ns() - began) / 1e9, share_max);
    bool nothing_up =
        o.scenario == SCENARIO_CONNECT_STORM ? total.cycles == 0 : total.conns_up == 0;
    return failed || nothing_up ? 1 : 0;
}
