#include "cluster/cluster_map.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/base/config.h"
#include "broker/base/log.h"
#include "cluster/bridge.h"
#include "cluster/common.h"
#include "cluster/redis.h"

#define REFRESH_MIN_GAP_MS 100 /* two questions at least this far apart */

/* A watcher of the map: borrowed callback and context. */
struct watcher {
    void (*changed)(void *ctx);
    void *ctx;
};

struct cluster_map {
    struct event_base *base; /* borrowed: the loop */
    struct cluster_map_config cfg;
    struct redis_link *asker;        /* owned: the connection questions go on, NULL between two */
    struct sentinel_addr asker_addr; /* where asker is connected (its host string lives here) */
    bool asker_finished;   /* lost or not answering: step_event frees it, tries the next */
    bool asking;           /* a CLUSTER SLOTS is in flight on asker */
    bool ask_due;          /* a refresh was asked for while none could be sent */
    size_t next_candidate; /* seeds first, then the masters of the map, round robin */
    uint64_t last_ask_ms;
    struct event *step_event;   /* owned: frees a finished asker, starts the next */
    struct event *tick_timer;   /* owned: persistent, every refresh_ms */
    struct event *answer_timer; /* owned: bounds one question */
    struct event *again_timer;  /* owned: a question asked too soon after the last one */
    struct event *notify_event; /* owned: runs the watchers after a change */
    struct slots_map *map;      /* owned: the current map; NULL before the first answer */
    struct slots_map *scratch;  /* owned: the next answer is parsed here, then swapped in */
    uint64_t version;
    struct watcher *watchers; /* owned array */
    size_t watcher_count, watcher_cap;
    uint64_t last_warn_ms;
    struct cluster_map_stats stats;
};

int cluster_map_settings(const struct config *cfg, struct cluster_map_config *out, char *err,
                         size_t err_len)
{
    memset(out, 0, sizeof(*out));
    char why[400];
    struct sentinel_config seeds = {0};
    if (sentinel_parse_addrs(cfg->cluster_redis_cluster, &seeds, why, sizeof(why)) != 0) {
        snprintf(err, err_len, "cluster.redis_cluster: %s", why);
        return -1;
    }
    memcpy(out->seeds, seeds.addrs, sizeof(out->seeds));
    out->seed_count = seeds.addr_count;
    if (cfg->cluster_redis[0] != '\0') { /* only its credentials apply */
        struct bridge_config bcfg;
        bridge_config_defaults(&bcfg);
        if (bridge_parse_url(cfg->cluster_redis, &bcfg, why, sizeof(why)) != 0) {
            snprintf(err, err_len, "cluster.redis: %s", why);
            return -1;
        }
        if (bcfg.redis_db != 0) {
            snprintf(err, err_len, "cluster.redis: a Redis Cluster has only db 0 (got /%d)",
                     bcfg.redis_db);
            return -1;
        }
        snprintf(out->username, sizeof(out->username), "%s", bcfg.redis_username);
        snprintf(out->password, sizeof(out->password), "%s", bcfg.redis_password);
    }
    out->refresh_ms = cfg->cluster_redis_cluster_refresh_ms;
    out->reconnect_min_ms = 100;
    out->reconnect_max_ms = cfg->cluster_reconnect_max_ms;
    return 0;
}

static void wake(struct cluster_map *m)
{
    event_active(m->step_event, EV_TIMEOUT, 1);
}

/* ---- taking an answer ----------------------------------------------------------------------- */

static bool same_map(const struct slots_map *a, const struct slots_map *b)
{
    for (size_t slot = 0; slot < CLUSTER_SLOTS; slot++) {
        const struct slots_node *x = slots_map_node(a, (uint16_t)slot);
        const struct slots_node *y = slots_map_node(b, (uint16_t)slot);
        if ((x == NULL) != (y == NULL))
            return false;
        if (x != NULL && !slots_node_equal(x, y))
            return false;
    }
    return true;
}

static void take_map(struct cluster_map *m, int served)
{
    m->stats.refreshes++;
    if (m->map != NULL && same_map(m->map, m->scratch))
        return;
    if (m->map != NULL) {
        for (size_t i = 0; i < m->map->node_count; i++)
            if (!slots_map_has_node(m->scratch, &m->map->nodes[i])) {
                m->stats.failovers++;
                log_warn(0, "cluster: redis cluster master %s:%u serves no slot any more",
                         m->map->nodes[i].host, m->map->nodes[i].port);
            }
    } else {
        log_info(0, "cluster: redis cluster slot map: %zu masters, %d of %d slots served",
                 m->scratch->node_count, served, CLUSTER_SLOTS);
    }
    struct slots_map *old = m->map;
    m->map = m->scratch;
    m->scratch = old;
    if (m->scratch == NULL)
        m->scratch = malloc(sizeof(*m->scratch)); /* NULL: the next answer waits for memory */
    m->version++;
    m->stats.changes++;
    event_active(m->notify_event, EV_TIMEOUT, 1);
}

static void on_slots(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct cluster_map *m = privdata;
    const redisReply *reply = r;
    m->asking = false;
    evtimer_del(m->answer_timer);
    if (reply == NULL)
        return; /* the asker is going away: its down() starts the next */
    char err[160] = "";
    int served = -1;
    if (reply->type == REDIS_REPLY_ERROR)
        snprintf(err, sizeof(err), "%.*s", (int)reply->len, reply->str);
    else if (m->scratch != NULL)
        served = slots_map_from_reply(m->scratch, reply, m->asker_addr.host, err, sizeof(err));
    if (served <= 0) {
        m->stats.errors++;
        if (cluster_warn_due(&m->last_warn_ms))
            log_warn(0, "cluster: CLUSTER SLOTS from %s:%u: %s", m->asker_addr.host,
                     m->asker_addr.port, served == 0 ? "no slot is served" : err);
        m->asker_finished = true; /* ask another node */
        wake(m);
        return;
    }
    take_map(m, served);
    if (m->ask_due) {
        m->ask_due = false;
        cluster_map_refresh(m);
    }
}

static void ask(struct cluster_map *m)
{
    const char *argv[] = {"CLUSTER", "SLOTS"};
    const size_t lens[] = {7, 5};
    if (redis_link_command_argv(m->asker, on_slots, m, 2, argv, lens) != 0) {
        m->asker_finished = true;
        wake(m);
        return;
    }
    m->asking = true;
    m->last_ask_ms = cluster_now_ms();
    cluster_timer_after(m->answer_timer, m->cfg.timeout_ms);
}

/* ---- the asker: one node at a time ---------------------------------------------------------- */

static void on_asker_up(void *ctx, struct redis_link *link)
{
    (void)link;
    struct cluster_map *m = ctx;
    m->ask_due = false;
    ask(m);
}

static void on_asker_lost(void *ctx, struct redis_link *link)
{
    (void)link;
    struct cluster_map *m = ctx;
    m->asking = false;
    m->asker_finished = true;
    wake(m);
}

/* The seeds, then the masters of the last map: the candidate at index i (i < count). */
static size_t candidate_count(const struct cluster_map *m)
{
    return m->cfg.seed_count + (m->map != NULL ? m->map->node_count : 0);
}

static void candidate(const struct cluster_map *m, size_t i, struct sentinel_addr *out)
{
    if (i < m->cfg.seed_count) {
        *out = m->cfg.seeds[i];
        return;
    }
    const struct slots_node *n = &m->map->nodes[i - m->cfg.seed_count];
    snprintf(out->host, sizeof(out->host), "%s", n->host);
    out->port = n->port;
}

static void asker_start(struct cluster_map *m)
{
    size_t count = candidate_count(m);
    candidate(m, m->next_candidate % count, &m->asker_addr);
    m->next_candidate = (m->next_candidate + 1) % count;
    struct redis_link_config lc = {
        .name = "cluster map",
        .host = m->asker_addr.host,
        .port = m->asker_addr.port,
        .username = m->cfg.username,
        .password = m->cfg.password,
        .reconnect_min_ms = m->cfg.reconnect_min_ms,
        .reconnect_max_ms = m->cfg.reconnect_max_ms,
        .connect_timeout_ms = m->cfg.timeout_ms,
        .quiet = true, /* a node that is down is skipped; the map warns when none answers */
    };
    struct redis_link_ops ops = {
        .ctx = m, .up = on_asker_up, .down = on_asker_lost, .failed = on_asker_lost};
    m->asker_finished = false;
    m->asker = redis_link_new(m->base, &lc, &ops);
}

static void on_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct cluster_map *m = arg;
    if (m->asker != NULL && !m->asker_finished)
        return;
    if (m->asker != NULL) {
        redis_link_free(m->asker);
        m->asker = NULL;
        m->asking = false;
        evtimer_del(m->answer_timer);
        if (m->next_candidate == 0 && cluster_warn_due(&m->last_warn_ms))
            log_warn(0, "cluster: no redis cluster node of %zu tried answers CLUSTER SLOTS",
                     candidate_count(m));
    }
    asker_start(m);
}

static void on_answer_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    on_asker_lost(arg, NULL);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cluster_map_refresh(arg);
}

static void on_again(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    cluster_map_refresh(arg);
}

static void on_notify(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct cluster_map *m = arg;
    /* Backwards: a watcher that unwatches itself moves the last one into its place, which has
     * been called already. */
    for (size_t i = m->watcher_count; i-- > 0;)
        if (i < m->watcher_count)
            m->watchers[i].changed(m->watchers[i].ctx);
}

/* ---- interface ------------------------------------------------------------------------------ */

void cluster_map_refresh(struct cluster_map *m)
{
    if (m->asker == NULL || m->asker_finished || !redis_link_is_up(m->asker)) {
        m->ask_due = true; /* the next asker asks as soon as it is up */
        return;
    }
    if (m->asking) {
        m->ask_due = true; /* once this answer is in */
        return;
    }
    uint64_t now = cluster_now_ms();
    if (now - m->last_ask_ms < REFRESH_MIN_GAP_MS) {
        if (!evtimer_pending(m->again_timer, NULL))
            cluster_timer_after(m->again_timer,
                                (unsigned)(REFRESH_MIN_GAP_MS - (now - m->last_ask_ms)));
        return;
    }
    ask(m);
}

void cluster_map_note_redirect(struct cluster_map *m, bool is_ask)
{
    if (is_ask) {
        m->stats.ask++;
        return;
    }
    m->stats.moved++;
    cluster_map_refresh(m);
}

struct cluster_map *cluster_map_new(struct event_base *base, const struct cluster_map_config *cfg)
{
    if (cfg->seed_count == 0)
        return NULL;
    struct cluster_map *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->base = base;
    m->cfg = *cfg;
    if (m->cfg.refresh_ms == 0)
        m->cfg.refresh_ms = 5000;
    if (m->cfg.timeout_ms == 0)
        m->cfg.timeout_ms = 2000;
    if (m->cfg.reconnect_min_ms == 0)
        m->cfg.reconnect_min_ms = 100;
    if (m->cfg.reconnect_max_ms < m->cfg.reconnect_min_ms)
        m->cfg.reconnect_max_ms = 5000;
    m->scratch = malloc(sizeof(*m->scratch));
    m->step_event = event_new(base, -1, 0, on_step, m);
    m->tick_timer = event_new(base, -1, EV_PERSIST, on_tick, m);
    m->answer_timer = evtimer_new(base, on_answer_timeout, m);
    m->again_timer = evtimer_new(base, on_again, m);
    m->notify_event = event_new(base, -1, 0, on_notify, m);
    if (m->scratch == NULL || m->step_event == NULL || m->tick_timer == NULL ||
        m->answer_timer == NULL || m->again_timer == NULL || m->notify_event == NULL) {
        cluster_map_free(m);
        return NULL;
    }
    cluster_timer_after(m->tick_timer, m->cfg.refresh_ms);
    asker_start(m);
    return m;
}

void cluster_map_free(struct cluster_map *m)
{
    if (m == NULL)
        return;
    redis_link_free(m->asker);
    struct event *events[] = {m->step_event, m->tick_timer, m->answer_timer, m->again_timer,
                              m->notify_event};
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++)
        if (events[i] != NULL)
            event_free(events[i]);
    free(m->map);
    free(m->scratch);
    free(m->watchers);
    free(m);
}

const struct slots_map *cluster_map_slots(const struct cluster_map *m)
{
    return m->map;
}

uint64_t cluster_map_version(const struct cluster_map *m)
{
    return m->version;
}

const char *cluster_map_username(const struct cluster_map *m)
{
    return m->cfg.username;
}

const char *cluster_map_password(const struct cluster_map *m)
{
    return m->cfg.password;
}

int cluster_map_watch(struct cluster_map *m, void (*changed)(void *ctx), void *ctx)
{
    if (m->watcher_count == m->watcher_cap) {
        size_t cap = m->watcher_cap != 0 ? 2 * m->watcher_cap : 8;
        struct watcher *w = realloc(m->watchers, cap * sizeof(*w));
        if (w == NULL)
            return -1;
        m->watchers = w;
        m->watcher_cap = cap;
    }
    m->watchers[m->watcher_count++] = (struct watcher){.changed = changed, .ctx = ctx};
    return 0;
}

void cluster_map_unwatch(struct cluster_map *m, void (*changed)(void *ctx), void *ctx)
{
    for (size_t i = 0; i < m->watcher_count; i++)
        if (m->watchers[i].changed == changed && m->watchers[i].ctx == ctx) {
            m->watchers[i] = m->watchers[--m->watcher_count];
            return;
        }
}

const struct cluster_map_stats *cluster_map_stats(const struct cluster_map *m)
{
    return &m->stats;
}
