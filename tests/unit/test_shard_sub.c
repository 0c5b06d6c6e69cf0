/*
 * test_shard_sub.c - Check suite for cluster/shard_sub against a real Redis Cluster.
 *
 * main() starts three redis-server masters (no replicas) on free loopback ports in a temporary
 * directory, joins them with `redis-cli --cluster create`, waits (bounded) for cluster_state:ok
 * on each, runs the tests (each in a forked child, as Check does), and stops the servers (SIGTERM,
 * then SIGKILL) and removes the directory whatever happened. Without redis-server and redis-cli
 * the suite is skipped (exit 77).
 *
 * The tests drive a shard_sub on their own event loop, locate channels with a slot map they
 * fetch with CLUSTER SLOTS, and publish with SPUBLISH from synchronous hiredis contexts. Every
 * wait runs the loop with a deadline.
 */
#include <check.h>
#include <errno.h>
#include <event2/event.h>
#include <ftw.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cluster/common.h"
#include "cluster/shard_sub.h"
#include "cluster/slots.h"

#define MASTERS 3

/* Found on PATH; REDIS_SERVER / REDIS_CLI name others. */
static const char *redis_server = "redis-server";
static const char *redis_cli = "redis-cli";

static char cluster_dir[256];
static int ports[MASTERS];
static pid_t pids[MASTERS];

/* ---- the cluster --------------------------------------------------------------------------- */

static bool port_free(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bool ok = bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

/* A port P with P and its cluster bus port P + 10000 free, not one already picked. */
static int pick_port(void)
{
    for (int tries = 0; tries < 1000; tries++) {
        int p = 20000 + rand() % 35000;
        bool taken = false;
        for (int i = 0; i < MASTERS; i++)
            taken |= ports[i] == p;
        if (!taken && port_free(p) && port_free(p + 10000))
            return p;
    }
    return -1;
}

static pid_t start_server(int port)
{
    char port_text[16], conf[64], log[64];
    snprintf(port_text, sizeof(port_text), "%d", port);
    snprintf(conf, sizeof(conf), "nodes-%d.conf", port);
    snprintf(log, sizeof(log), "redis-%d.log", port);
    pid_t pid = fork();
    if (pid != 0)
        return pid;
    if (chdir(cluster_dir) != 0)
        _exit(127);
    execlp(redis_server, redis_server, "--cluster-enabled", "yes", "--port", port_text, "--bind",
           "127.0.0.1", "--cluster-config-file", conf, "--save", "", "--appendonly", "no",
           "--cluster-node-timeout", "5000", "--logfile", log, "--daemonize", "no", (char *)NULL);
    _exit(127);
}

static redisContext *connect_port(int port)
{
    struct timeval tv = {.tv_sec = 1};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c != NULL && c->err) {
        redisFree(c);
        return NULL;
    }
    if (c != NULL)
        redisSetTimeout(c, (struct timeval){.tv_sec = 5});
    return c;
}

/* Polls until each server answers PING (true) or timeout_ms passes. */
static bool wait_servers_up(unsigned timeout_ms)
{
    uint64_t deadline = cluster_now_ms() + timeout_ms;
    for (int i = 0; i < MASTERS; i++) {
        for (;;) {
            redisContext *c = connect_port(ports[i]);
            redisReply *r = c != NULL ? redisCommand(c, "PING") : NULL;
            bool ok = r != NULL && r->type == REDIS_REPLY_STATUS;
            if (r != NULL)
                freeReplyObject(r);
            if (c != NULL)
                redisFree(c);
            if (ok)
                break;
            if (cluster_now_ms() > deadline)
                return false;
            usleep(20 * 1000);
        }
    }
    return true;
}

static bool wait_cluster_ok(unsigned timeout_ms)
{
    uint64_t deadline = cluster_now_ms() + timeout_ms;
    for (int i = 0; i < MASTERS; i++) {
        for (;;) {
            redisContext *c = connect_port(ports[i]);
            redisReply *r = c != NULL ? redisCommand(c, "CLUSTER INFO") : NULL;
            bool ok = r != NULL && r->type == REDIS_REPLY_STRING &&
                      strstr(r->str, "cluster_state:ok") != NULL;
            if (r != NULL)
                freeReplyObject(r);
            if (c != NULL)
                redisFree(c);
            if (ok)
                break;
            if (cluster_now_ms() > deadline)
                return false;
            usleep(50 * 1000);
        }
    }
    return true;
}

/* redis-cli --cluster create, bounded by timeout(1). */
static bool create_cluster(void)
{
    char cmd[1024];
    int n = snprintf(cmd, sizeof(cmd), "timeout 60 %s --cluster create", redis_cli);
    for (int i = 0; i < MASTERS; i++)
        n += snprintf(cmd + n, sizeof(cmd) - (size_t)n, " 127.0.0.1:%d", ports[i]);
    snprintf(cmd + n, sizeof(cmd) - (size_t)n, " --cluster-yes >%s/create.log 2>&1", cluster_dir);
    return system(cmd) == 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void stop_servers(void)
{
    for (int i = 0; i < MASTERS; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGTERM);
    uint64_t deadline = cluster_now_ms() + 3000;
    for (int i = 0; i < MASTERS; i++) {
        while (pids[i] > 0) {
            if (waitpid(pids[i], NULL, WNOHANG) == pids[i]) {
                pids[i] = 0;
            } else if (cluster_now_ms() > deadline) {
                kill(pids[i], SIGKILL);
                waitpid(pids[i], NULL, 0);
                pids[i] = 0;
            } else {
                usleep(10 * 1000);
            }
        }
    }
    if (cluster_dir[0] != '\0')
        nftw(cluster_dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    cluster_dir[0] = '\0';
}

/* meson's timeout or ^C: the servers must not outlive the suite. */
static void on_signal(int sig)
{
    for (int i = 0; i < MASTERS; i++)
        if (pids[i] > 0)
            kill(pids[i], SIGKILL);
    signal(sig, SIG_DFL);
    raise(sig);
}

/* name answers --version (it is on PATH, or a path). */
static bool runnable(const char *name)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "%s --version >/dev/null 2>&1", name);
    return system(cmd) == 0;
}

static bool start_cluster(void)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(cluster_dir, sizeof(cluster_dir), "%s/stompws-shard-sub-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : P_tmpdir);
    if (mkdtemp(cluster_dir) == NULL) {
        cluster_dir[0] = '\0';
        return false;
    }
    for (int i = 0; i < MASTERS; i++) {
        ports[i] = pick_port();
        if (ports[i] < 0)
            return false;
        pids[i] = start_server(ports[i]);
        if (pids[i] < 0)
            return false;
    }
    if (!wait_servers_up(5000)) {
        fprintf(stderr, "redis-server did not answer\n");
        return false;
    }
    if (!create_cluster()) {
        fprintf(stderr, "redis-cli --cluster create failed\n");
        return false;
    }
    if (!wait_cluster_ok(20000)) {
        fprintf(stderr, "the cluster did not reach cluster_state:ok\n");
        return false;
    }
    return true;
}

/* ---- what a test drives -------------------------------------------------------------------- */

#define MAX_SEEN 64

struct fixture {
    struct event_base *base;
    struct shard_sub *sub;
    struct slots_map map; /* what locate answers from */
    bool lie;             /* locate answers lie_node instead of the map */
    struct slots_node lie_node;
    unsigned stale_calls;
    unsigned subscribed_calls;
    size_t seen;
    char seen_channel[MAX_SEEN][64];
    char seen_payload[MAX_SEEN][64];
};

static struct fixture fx;

static bool locate(void *ctx, uint16_t slot, struct slots_node *out)
{
    struct fixture *f = ctx;
    if (f->lie) {
        *out = f->lie_node;
        return true;
    }
    const struct slots_node *n = slots_map_node(&f->map, slot);
    if (n == NULL)
        return false;
    *out = *n;
    return true;
}

static void stale(void *ctx)
{
    ((struct fixture *)ctx)->stale_calls++;
}

static void message(void *ctx, const char *channel, size_t channel_len, const char *payload,
                    size_t len)
{
    struct fixture *f = ctx;
    if (f->seen == MAX_SEEN)
        return;
    snprintf(f->seen_channel[f->seen], 64, "%.*s", (int)channel_len, channel);
    snprintf(f->seen_payload[f->seen], 64, "%.*s", (int)len, payload);
    f->seen++;
}

static void subscribed(void *ctx, const char *channel, size_t channel_len)
{
    (void)channel;
    (void)channel_len;
    ((struct fixture *)ctx)->subscribed_calls++;
}

/* CLUSTER SLOTS from the node on port into map. */
static void fetch_map(struct slots_map *map, int port)
{
    redisContext *c = connect_port(port);
    ck_assert_ptr_nonnull(c);
    redisReply *r = redisCommand(c, "CLUSTER SLOTS");
    ck_assert_ptr_nonnull(r);
    char err[200] = "";
    ck_assert_int_eq(slots_map_from_reply(map, r, "127.0.0.1", err, sizeof(err)), CLUSTER_SLOTS);
    freeReplyObject(r);
    redisFree(c);
}

static void setup(void)
{
    memset(&fx, 0, sizeof(fx));
    fx.base = event_base_new();
    ck_assert_ptr_nonnull(fx.base);
    fetch_map(&fx.map, ports[0]);
    struct shard_sub_config cfg = {.username = "",
                                   .password = "",
                                   .connect_timeout_ms = 2000,
                                   .reconnect_min_ms = 50,
                                   .reconnect_max_ms = 400};
    struct shard_sub_ops ops = {
        .ctx = &fx, .locate = locate, .stale = stale, .message = message, .subscribed = subscribed};
    fx.sub = shard_sub_new(fx.base, &cfg, &ops);
    ck_assert_ptr_nonnull(fx.sub);
}

static void teardown(void)
{
    shard_sub_free(fx.sub);
    event_base_free(fx.base);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
}

/* Runs the loop until done(arg) or timeout_ms passes; returns done(arg). */
static bool run_until(bool (*done)(void *arg), void *arg, unsigned timeout_ms)
{
    uint64_t deadline = cluster_now_ms() + timeout_ms;
    struct event *tick = evtimer_new(fx.base, on_tick, NULL);
    ck_assert_ptr_nonnull(tick);
    bool ok = done(arg);
    while (!ok && cluster_now_ms() < deadline) {
        struct timeval tv = {.tv_usec = 10 * 1000};
        evtimer_add(tick, &tv);
        event_base_loop(fx.base, EVLOOP_ONCE);
        ok = done(arg);
    }
    event_free(tick);
    return ok;
}

static bool all_confirmed(void *arg)
{
    struct shard_sub_stats st;
    shard_sub_stats(fx.sub, &st);
    (void)arg;
    return st.channels > 0 && st.confirmed == st.channels;
}

static bool seen_at_least(void *arg)
{
    return fx.seen >= *(size_t *)arg;
}

static bool stale_reported(void *arg)
{
    (void)arg;
    return fx.stale_calls > 0;
}

static bool connections_are(void *arg)
{
    struct shard_sub_stats st;
    shard_sub_stats(fx.sub, &st);
    return st.connections == *(size_t *)arg;
}

/* SPUBLISH on the master the test's map names for channel; returns the receivers Redis counts. */
static long long spublish(const char *channel, const char *payload)
{
    const struct slots_node *n = slots_map_node(&fx.map, slots_key_slot(channel, strlen(channel)));
    ck_assert_ptr_nonnull(n);
    redisContext *c = connect_port(n->port);
    ck_assert_ptr_nonnull(c);
    redisReply *r = redisCommand(c, "SPUBLISH %s %s", channel, payload);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r->type == REDIS_REPLY_INTEGER, "SPUBLISH: %s", r->str ? r->str : "?");
    long long receivers = r->integer;
    freeReplyObject(r);
    redisFree(c);
    return receivers;
}

static bool seen(const char *channel, const char *payload)
{
    for (size_t i = 0; i < fx.seen; i++)
        if (strcmp(fx.seen_channel[i], channel) == 0 && strcmp(fx.seen_payload[i], payload) == 0)
            return true;
    return false;
}

/* The index of the master serving channel in the test's map. */
static uint16_t owner_of(const char *channel)
{
    return fx.map.owner[slots_key_slot(channel, strlen(channel))];
}

/* Channels "t:<n>" until one lands on each master: names[i] is served by map node i. */
static void channel_per_master(char names[][32])
{
    bool found[CLUSTER_NODES_MAX] = {false};
    size_t count = 0;
    for (int n = 0; n < 10000 && count < fx.map.node_count; n++) {
        char name[32];
        snprintf(name, sizeof(name), "t:%d", n);
        uint16_t owner = owner_of(name);
        if (owner == CLUSTER_NO_NODE || found[owner])
            continue;
        found[owner] = true;
        snprintf(names[owner], 32, "%s", name);
        count++;
    }
    ck_assert_uint_eq(count, MASTERS);
}

/* ---- tests --------------------------------------------------------------------------------- */

/* Channels on all three shards, two of them in one slot (one batched SSUBSCRIBE): each receives
 * what is published on its master; removing a master's channels closes its connection. */
START_TEST(test_spread_over_shards)
{
    char names[MASTERS][32];
    channel_per_master(names);
    for (int i = 0; i < MASTERS; i++)
        ck_assert_int_eq(shard_sub_add(fx.sub, names[i], strlen(names[i])), 0);
    ck_assert_int_eq(shard_sub_add(fx.sub, "{t}.a", 5), 0);
    ck_assert_int_eq(shard_sub_add(fx.sub, "{t}.b", 5), 0);
    ck_assert_int_eq(shard_sub_add(fx.sub, "{t}.a", 5), 0);     /* already followed */
    ck_assert_uint_eq(fx.stale_calls + fx.subscribed_calls, 0); /* nothing from inside add */
    ck_assert(run_until(all_confirmed, NULL, 5000));
    struct shard_sub_stats st;
    shard_sub_stats(fx.sub, &st);
    ck_assert_uint_eq(st.channels, 5);
    ck_assert_uint_eq(st.connections, MASTERS);
    ck_assert_uint_eq(st.connections_up, MASTERS);
    ck_assert_uint_eq(fx.subscribed_calls, 5);
    ck_assert(shard_sub_confirmed(fx.sub, "{t}.b", 5));
    ck_assert(!shard_sub_confirmed(fx.sub, "{t}.c", 5));

    for (int i = 0; i < MASTERS; i++)
        ck_assert_int_eq(spublish(names[i], names[i]), 1);
    ck_assert_int_eq(spublish("{t}.a", "pa"), 1);
    ck_assert_int_eq(spublish("{t}.b", "pb"), 1);
    size_t want = MASTERS + 2;
    ck_assert(run_until(seen_at_least, &want, 5000));
    for (int i = 0; i < MASTERS; i++)
        ck_assert(seen(names[i], names[i]));
    ck_assert(seen("{t}.a", "pa") && seen("{t}.b", "pb"));
    shard_sub_stats(fx.sub, &st);
    ck_assert_uint_eq(st.messages, want);

    /* The master of names[0] carries nothing else once "{t}.*" are gone from it too. */
    shard_sub_remove(fx.sub, names[0], strlen(names[0]));
    if (owner_of("{t}.a") == owner_of(names[0])) {
        shard_sub_remove(fx.sub, "{t}.a", 5);
        shard_sub_remove(fx.sub, "{t}.b", 5);
    }
    size_t expect = MASTERS - 1;
    ck_assert(run_until(connections_are, &expect, 2000));
    shard_sub_remove(fx.sub, "never-added", 11);
    ck_assert_int_eq(spublish(names[0], "after"), 0);
}
END_TEST

/* Node ids by port, for CLUSTER SETSLOT. */
static void node_id(int port, char *out, size_t len)
{
    redisContext *c = connect_port(port);
    ck_assert_ptr_nonnull(c);
    redisReply *r = redisCommand(c, "CLUSTER MYID");
    ck_assert(r != NULL && r->type == REDIS_REPLY_STRING);
    snprintf(out, len, "%s", r->str);
    freeReplyObject(r);
    redisFree(c);
}

static void command_ok(int port, const char *fmt, ...)
{
    redisContext *c = connect_port(port);
    ck_assert_ptr_nonnull(c);
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    ck_assert_ptr_nonnull(r);
    ck_assert_msg(r->type == REDIS_REPLY_STATUS, "%s: %s", fmt, r->str ? r->str : "?");
    freeReplyObject(r);
    redisFree(c);
}

/* Moves slot from the master on port `from` to the one on port `to`, as resharding does. */
static void migrate_slot(uint16_t slot, int from, int to)
{
    char from_id[64], to_id[64];
    node_id(from, from_id, sizeof(from_id));
    node_id(to, to_id, sizeof(to_id));
    command_ok(to, "CLUSTER SETSLOT %u IMPORTING %s", (unsigned)slot, from_id);
    command_ok(from, "CLUSTER SETSLOT %u MIGRATING %s", (unsigned)slot, to_id);
    command_ok(to, "CLUSTER SETSLOT %u NODE %s", (unsigned)slot, to_id);
    command_ok(from, "CLUSTER SETSLOT %u NODE %s", (unsigned)slot, to_id);
    for (int i = 0; i < MASTERS; i++)
        if (ports[i] != from && ports[i] != to)
            command_ok(ports[i], "CLUSTER SETSLOT %u NODE %s", (unsigned)slot, to_id);
}

/* A migrated slot: Redis drops the channel (an unasked sunsubscribe), the map is reported
 * stale, and after a remap messages come from the new master. */
START_TEST(test_slot_migration)
{
    const char *channel = "{migrating}.news";
    uint16_t slot = slots_key_slot(channel, strlen(channel));
    ck_assert_int_eq(shard_sub_add(fx.sub, channel, strlen(channel)), 0);
    ck_assert(run_until(all_confirmed, NULL, 5000));
    int from = slots_map_node(&fx.map, slot)->port;
    int to = from == ports[0] ? ports[1] : ports[0];

    migrate_slot(slot, from, to);
    ck_assert(run_until(stale_reported, NULL, 5000));
    struct shard_sub_stats st;
    shard_sub_stats(fx.sub, &st);
    ck_assert_uint_eq(st.unasked, 1);
    ck_assert_uint_eq(st.confirmed, 0);
    ck_assert(!shard_sub_confirmed(fx.sub, channel, strlen(channel)));

    fetch_map(&fx.map, from);
    ck_assert_uint_eq(slots_map_node(&fx.map, slot)->port, to);
    shard_sub_remap(fx.sub);
    ck_assert(run_until(all_confirmed, NULL, 5000));
    ck_assert_int_eq(spublish(channel, "moved"), 1);
    size_t want = 1;
    ck_assert(run_until(seen_at_least, &want, 5000));
    ck_assert(seen(channel, "moved"));
    /* The old master's connection carried only this channel: it is gone. */
    size_t one = 1;
    ck_assert(run_until(connections_are, &one, 2000));
    migrate_slot(slot, to, from); /* the next tests see the cluster as created */
}
END_TEST

/* A stale map sends the SSUBSCRIBE to the wrong master: MOVED, stale, remap, confirmed. */
START_TEST(test_moved)
{
    const char *channel = "{elsewhere}.x";
    uint16_t slot = slots_key_slot(channel, strlen(channel));
    const struct slots_node *right = slots_map_node(&fx.map, slot);
    for (size_t i = 0; i < fx.map.node_count; i++)
        if (!(fx.map.nodes[i].port == right->port))
            fx.lie_node = fx.map.nodes[i];
    fx.lie = true;
    ck_assert_int_eq(shard_sub_add(fx.sub, channel, strlen(channel)), 0);
    ck_assert(run_until(stale_reported, NULL, 5000));
    struct shard_sub_stats st;
    shard_sub_stats(fx.sub, &st);
    ck_assert_uint_eq(st.moved, 1);
    ck_assert_uint_eq(st.confirmed, 0);
    fx.lie = false;
    shard_sub_remap(fx.sub);
    ck_assert(run_until(all_confirmed, NULL, 5000));
    ck_assert_int_eq(spublish(channel, "found"), 1);
    size_t want = 1;
    ck_assert(run_until(seen_at_least, &want, 5000));
}
END_TEST

static bool reconnected(void *arg)
{
    struct shard_sub_stats st;
    shard_sub_stats(fx.sub, &st);
    (void)arg;
    return st.reconnects > 0 && st.confirmed == st.channels;
}

/* The master kills the subscriber connection: it comes back and subscribes again. */
START_TEST(test_reconnect)
{
    const char *channel = "{kill}.me";
    ck_assert_int_eq(shard_sub_add(fx.sub, channel, strlen(channel)), 0);
    ck_assert(run_until(all_confirmed, NULL, 5000));
    int port = slots_map_node(&fx.map, slots_key_slot(channel, strlen(channel)))->port;
    redisContext *c = connect_port(port);
    ck_assert_ptr_nonnull(c);
    redisReply *r = redisCommand(c, "CLIENT KILL TYPE pubsub");
    ck_assert(r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer >= 1);
    freeReplyObject(r);
    redisFree(c);
    ck_assert(run_until(reconnected, NULL, 5000));
    ck_assert_int_eq(spublish(channel, "again"), 1);
    size_t want = 1;
    ck_assert(run_until(seen_at_least, &want, 5000));
    ck_assert(seen(channel, "again"));
}
END_TEST

/* A master that does not answer: no connection, retries counted, nothing confirmed, and
 * freeing the object with a retry pending leaks nothing (ASan). */
START_TEST(test_unreachable_master)
{
    fx.lie = true;
    snprintf(fx.lie_node.host, sizeof(fx.lie_node.host), "127.0.0.1");
    fx.lie_node.port = (unsigned short)pick_port();
    ck_assert_int_eq(shard_sub_add(fx.sub, "nowhere", 7), 0);
    uint64_t until = cluster_now_ms() + 300;
    while (cluster_now_ms() < until) {
        struct timeval tv = {.tv_usec = 20 * 1000};
        event_base_loopexit(fx.base, &tv);
        event_base_dispatch(fx.base);
    }
    struct shard_sub_stats st;
    shard_sub_stats(fx.sub, &st);
    ck_assert_uint_eq(st.connections, 1);
    ck_assert_uint_eq(st.connections_up, 0);
    ck_assert_uint_ge(st.reconnects, 1);
    ck_assert(!shard_sub_confirmed(fx.sub, "nowhere", 7));
}
END_TEST

static Suite *shard_sub_suite(void)
{
    Suite *s = suite_create("shard_sub");
    TCase *tc = tcase_create("cluster");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_spread_over_shards);
    tcase_add_test(tc, test_slot_migration);
    tcase_add_test(tc, test_moved);
    tcase_add_test(tc, test_reconnect);
    tcase_add_test(tc, test_unreachable_master);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    if (getenv("REDIS_SERVER") != NULL)
        redis_server = getenv("REDIS_SERVER");
    if (getenv("REDIS_CLI") != NULL)
        redis_cli = getenv("REDIS_CLI");
    if (!runnable(redis_server) || !runnable(redis_cli)) {
        fprintf(stderr, "no %s or %s: skipped\n", redis_server, redis_cli);
        return 77;
    }
    srand((unsigned)time(NULL) ^ (unsigned)getpid());
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    if (!start_cluster()) {
        stop_servers();
        return EXIT_FAILURE;
    }
    SRunner *sr = srunner_create(shard_sub_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    stop_servers();
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
