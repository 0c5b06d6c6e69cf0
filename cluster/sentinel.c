#include "cluster/sentinel.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/base/config.h"
#include "broker/base/log.h"
#include "cluster/common.h"
#include "cluster/redis.h"

/*
 * One connection to one sentinel: the question (query) or the +switch-master subscription
 * (watch). Its callbacks only record what happened and wake step_event, which frees finished
 * connections and starts the next ones outside any hiredis callback.
 */
struct sconn {
    struct sentinel *s;      /* borrowed: the owner */
    struct redis_link *link; /* owned; set right after redis_link_new returns */
    size_t index;            /* which sentinel of cfg.addrs */
    bool finished;           /* nothing more to wait for: step_event frees it */
    bool answered;           /* query: the sentinel answered (the address is cached) */
    bool was_up;             /* watch: the subscription came up once */
    uint64_t switches_seen;  /* query: sentinel.switches_heard when it was asked */
};

struct sentinel {
    struct event_base *base; /* borrowed: the loop */
    struct sentinel_config cfg;
    struct sconn *query;       /* owned: the question in flight, NULL when none */
    size_t query_first;        /* where the next question starts: the last one that answered */
    size_t query_tried;        /* sentinels asked in this round */
    struct event *query_timer; /* owned: bounds one sentinel's answer */
    struct event *again_timer; /* owned: a question asked too soon after the last one */
    uint64_t last_query_ms;    /* when the last question started */
    uint64_t switches_heard;   /* +switch-master messages for our master so far */
    struct sconn *watch;       /* owned: the +switch-master subscription, NULL between two */
    size_t watch_next;         /* the sentinel to watch through next */
    size_t watch_failures;     /* failed watch connections since the last one that came up */
    struct event *watch_timer; /* owned: the wait before the next watch connection */
    struct event *step_event;  /* owned: frees finished connections, starts the next */
    bool known;                /* master_host/port hold an answer */
    char master_host[SENTINEL_HOST_MAX];
    unsigned short master_port;
    struct redis_link **links; /* owned array of borrowed links in sentinel mode */
    size_t link_count, link_cap;
    uint64_t last_warn_ms;
    struct sentinel_stats stats;
};

/* ---- addresses ------------------------------------------------------------------------------ */

static int parse_one(const char *p, size_t len, struct sentinel_addr *out)
{
    while (len > 0 && (*p == ' ' || *p == '\t'))
        p++, len--;
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    const char *colon = NULL;
    for (size_t i = 0; i < len; i++)
        if (p[i] == ':')
            colon = p + i; /* the last one: [v6]:port */
    if (colon == NULL || colon == p)
        return -1;
    const char *host = p;
    size_t host_len = (size_t)(colon - p);
    if (host[0] == '[') {
        if (host_len < 3 || host[host_len - 1] != ']')
            return -1;
        host++;
        host_len -= 2;
    }
    size_t digits = (size_t)(p + len - (colon + 1));
    if (host_len >= sizeof(out->host) || digits == 0 || digits > 5)
        return -1;
    unsigned long port = 0;
    for (size_t i = 0; i < digits; i++) {
        if (colon[1 + i] < '0' || colon[1 + i] > '9')
            return -1;
        port = port * 10 + (unsigned long)(colon[1 + i] - '0');
    }
    if (port == 0 || port > 65535)
        return -1;
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = (unsigned short)port;
    return 0;
}

int sentinel_parse_addrs(const char *text, struct sentinel_config *cfg, char *err, size_t err_len)
{
    cfg->addr_count = 0;
    const char *p = text;
    for (;;) {
        size_t len = strcspn(p, ",");
        if (cfg->addr_count == SENTINEL_MAX_ADDRS) {
            snprintf(err, err_len, "more than %d sentinels", SENTINEL_MAX_ADDRS);
            return -1;
        }
        if (parse_one(p, len, &cfg->addrs[cfg->addr_count]) != 0) {
            snprintf(err, err_len, "\"%.*s\" is not HOST:PORT", (int)(len < 300 ? len : 300), p);
            return -1;
        }
        cfg->addr_count++;
        if (p[len] == '\0')
            return 0;
        p += len + 1;
    }
}

int sentinel_settings(const struct config *cfg, struct sentinel_config *out, char *err,
                      size_t err_len)
{
    memset(out, 0, sizeof(*out));
    char why[400];
    if (sentinel_parse_addrs(cfg->cluster_redis_sentinel, out, why, sizeof(why)) != 0) {
        snprintf(err, err_len, "cluster.redis_sentinel: %s", why);
        return -1;
    }
    if (cfg->cluster_redis_master[0] == '\0' ||
        strlen(cfg->cluster_redis_master) >= sizeof(out->master_name)) {
        snprintf(err, err_len, "cluster.redis_master: a name of 1-%zu bytes is needed",
                 sizeof(out->master_name) - 1);
        return -1;
    }
    snprintf(out->master_name, sizeof(out->master_name), "%s", cfg->cluster_redis_master);
    snprintf(out->password, sizeof(out->password), "%s", cfg->cluster_sentinel_password);
    out->timeout_ms = cfg->cluster_sentinel_timeout_ms;
    out->reconnect_min_ms = 100;
    out->reconnect_max_ms = cfg->cluster_reconnect_max_ms;
    return 0;
}

/* ---- the master's address ------------------------------------------------------------------- */

static void restart_links(struct sentinel *s)
{
    /* A restart runs the links' down() callbacks now; none of them attaches or detaches. */
    for (size_t i = 0; i < s->link_count; i++)
        redis_link_moved(s->links[i]);
}

/* A new answer: when it moves the master, every link goes there (the first answer too: links
 * waiting in their backoff connect at once). */
static void set_master(struct sentinel *s, const char *host, size_t host_len, unsigned short port,
                       const char *how)
{
    if (host_len == 0 || host_len >= sizeof(s->master_host) || port == 0)
        return;
    if (s->known && s->master_port == port && strlen(s->master_host) == host_len &&
        memcmp(s->master_host, host, host_len) == 0)
        return;
    if (s->known) {
        s->stats.switches++;
        log_warn(0, "cluster: sentinel: master %s moved from %s:%u to %.*s:%u (%s)",
                 s->cfg.master_name, s->master_host, s->master_port, (int)host_len, host, port,
                 how);
    } else {
        log_info(0, "cluster: sentinel: master %s is at %.*s:%u", s->cfg.master_name, (int)host_len,
                 host, port);
    }
    memcpy(s->master_host, host, host_len);
    s->master_host[host_len] = '\0';
    s->master_port = port;
    s->known = true;
    restart_links(s);
}

static bool parse_port(const char *text, size_t len, unsigned short *port)
{
    unsigned long v = 0;
    if (len == 0 || len > 5)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(text[i] - '0');
    }
    if (v == 0 || v > 65535)
        return false;
    *port = (unsigned short)v;
    return true;
}

/* ---- connections to sentinels --------------------------------------------------------------- */

static void wake(struct sentinel *s)
{
    event_active(s->step_event, EV_TIMEOUT, 1);
}

static void conn_failed(void *ctx, struct redis_link *link)
{
    (void)link;
    struct sconn *c = ctx;
    c->finished = true;
    wake(c->s);
}

static struct sconn *conn_new(struct sentinel *s, size_t index, const char *name,
                              void (*up)(void *, struct redis_link *))
{
    struct sconn *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->s = s;
    c->index = index;
    const struct sentinel_addr *a = &s->cfg.addrs[index];
    struct redis_link_config lc = {
        .name = name,
        .host = a->host,
        .port = a->port,
        .username = "",
        .password = s->cfg.password,
        .reconnect_min_ms = s->cfg.reconnect_min_ms,
        .reconnect_max_ms = s->cfg.reconnect_max_ms,
        .connect_timeout_ms = s->cfg.timeout_ms,
        .quiet = true, /* a sentinel that is down is skipped, and said so here */
    };
    struct redis_link_ops ops = {.ctx = c, .up = up, .down = conn_failed, .failed = conn_failed};
    c->link = redis_link_new(s->base, &lc, &ops);
    if (c->link == NULL) {
        free(c);
        return NULL;
    }
    return c;
}

static void conn_free(struct sconn *c)
{
    if (c == NULL)
        return;
    redis_link_free(c->link);
    free(c);
}

/* ---- the question: SENTINEL get-master-addr-by-name ---------------------------------------- */

static void on_master_addr(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct sconn *c = privdata;
    const redisReply *reply = r;
    if (reply == NULL || c->finished)
        return;
    c->finished = true;
    wake(c->s);
    unsigned short port;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[1]->type != REDIS_REPLY_STRING ||
        !parse_port(reply->element[1]->str, reply->element[1]->len, &port)) {
        /* nil: this sentinel does not monitor that name (a typo, or not configured yet) */
        return;
    }
    c->answered = true;
    c->s->stats.queries++;
    /* A +switch-master heard since the question was asked is newer than this answer (a
     * sentinel may not know of the failover yet): it would send the links back. */
    if (c->switches_seen == c->s->switches_heard)
        set_master(c->s, reply->element[0]->str, reply->element[0]->len, port, "asked a sentinel");
}

static void on_query_up(void *ctx, struct redis_link *link)
{
    struct sconn *c = ctx;
    const char *argv[] = {"SENTINEL", "get-master-addr-by-name", c->s->cfg.master_name};
    const size_t lens[] = {8, 23, strlen(c->s->cfg.master_name)};
    if (redis_link_command_argv(link, on_master_addr, c, 3, argv, lens) != 0) {
        c->finished = true;
        wake(c->s);
    }
}

static void query_start(struct sentinel *s)
{
    size_t index = (s->query_first + s->query_tried) % s->cfg.addr_count;
    s->query = conn_new(s, index, "sentinel query", on_query_up);
    if (s->query == NULL)
        return;
    s->query->switches_seen = s->switches_heard;
    cluster_timer_after(s->query_timer, s->cfg.timeout_ms);
}

static void on_query_timeout(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sentinel *s = arg;
    if (s->query != NULL && !s->query->finished) {
        s->query->finished = true;
        wake(s);
    }
}

/* A finished question: done when it was answered, else the next sentinel of the round. */
static void query_step(struct sentinel *s)
{
    struct sconn *c = s->query;
    if (c == NULL || !c->finished)
        return;
    evtimer_del(s->query_timer);
    s->query = NULL;
    bool answered = c->answered;
    size_t index = c->index;
    conn_free(c);
    if (answered) {
        s->query_first = index;
        return;
    }
    s->stats.sentinels_failed++;
    log_debug(0, "cluster: sentinel %s:%u gave no address for %s", s->cfg.addrs[index].host,
              s->cfg.addrs[index].port, s->cfg.master_name);
    if (++s->query_tried < s->cfg.addr_count) {
        query_start(s);
        return;
    }
    if (cluster_warn_due(&s->last_warn_ms))
        log_warn(0,
                 "cluster: no sentinel of %zu told where master %s is (asking again when a "
                 "link retries)",
                 s->cfg.addr_count, s->cfg.master_name);
}

/*
 * Every link that fails to connect asks again, so during an outage questions would come at the
 * links' backoff rate, from every loop of every node: at most one per SENTINEL_QUERY_GAP_MS
 * here. +switch-master, not polling, is what moves the links quickly.
 */
#define SENTINEL_QUERY_GAP_MS 250

void sentinel_refresh(struct sentinel *s)
{
    if (s->query != NULL || evtimer_pending(s->again_timer, NULL))
        return;
    uint64_t now = cluster_now_ms();
    if (s->last_query_ms != 0 && now - s->last_query_ms < SENTINEL_QUERY_GAP_MS) {
        cluster_timer_after(s->again_timer,
                            (unsigned)(SENTINEL_QUERY_GAP_MS - (now - s->last_query_ms)));
        return;
    }
    s->last_query_ms = now;
    s->query_tried = 0;
    query_start(s);
}

static void on_again(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    sentinel_refresh(arg);
}

/* ---- the watch: SUBSCRIBE +switch-master ---------------------------------------------------- */

/* "<name> <old-ip> <old-port> <new-ip> <new-port>": our name moves the cached address. */
static void on_switch_message(struct sentinel *s, const char *text, size_t len)
{
    const char *field[5];
    size_t field_len[5];
    size_t n = 0, i = 0;
    while (n < 5 && i < len) {
        while (i < len && text[i] == ' ')
            i++;
        size_t start = i;
        while (i < len && text[i] != ' ')
            i++;
        if (i > start) {
            field[n] = text + start;
            field_len[n++] = i - start;
        }
    }
    unsigned short port;
    size_t name_len = strlen(s->cfg.master_name);
    if (n != 5 || field_len[0] != name_len || memcmp(field[0], s->cfg.master_name, name_len) != 0 ||
        !parse_port(field[4], field_len[4], &port))
        return;
    s->switches_heard++;
    set_master(s, field[3], field_len[3], port, "+switch-master");
}

static void on_switch(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct sconn *c = privdata;
    const redisReply *reply = r;
    if (reply == NULL)
        return; /* the link is going: down() reports it */
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING ||
        reply->element[2]->type != REDIS_REPLY_STRING)
        return; /* the subscribe confirmation (its count is an integer) */
    if (reply->element[0]->len == 7 && memcmp(reply->element[0]->str, "message", 7) == 0)
        on_switch_message(c->s, reply->element[2]->str, reply->element[2]->len);
}

static void on_watch_up(void *ctx, struct redis_link *link)
{
    struct sconn *c = ctx;
    const char *argv[] = {"SUBSCRIBE", "+switch-master"};
    const size_t lens[] = {9, 14};
    if (redis_link_command_argv(link, on_switch, c, 2, argv, lens) != 0) {
        c->finished = true;
        wake(c->s);
        return;
    }
    c->was_up = true;
    c->s->watch_failures = 0;
    /* A switch may have happened while nobody watched. */
    sentinel_refresh(c->s);
}

static void watch_start(struct sentinel *s)
{
    s->watch = conn_new(s, s->watch_next, "sentinel watch", on_watch_up);
    if (s->watch == NULL)
        cluster_timer_after(s->watch_timer, s->cfg.timeout_ms); /* out of memory: try later */
}

static void on_watch_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sentinel *s = arg;
    if (s->watch == NULL)
        watch_start(s);
}

/* A lost or failed watch moves to the next sentinel: at once, or after timeout_ms once every
 * sentinel failed in a row (no busy loop while all of them are down). */
static void watch_step(struct sentinel *s)
{
    struct sconn *c = s->watch;
    if (c == NULL || !c->finished)
        return;
    s->watch = NULL;
    s->watch_next = (c->index + 1) % s->cfg.addr_count;
    if (c->was_up)
        log_warn(0, "cluster: lost the +switch-master subscription to sentinel %s:%u",
                 s->cfg.addrs[c->index].host, s->cfg.addrs[c->index].port);
    else
        s->stats.sentinels_failed++;
    conn_free(c);
    s->watch_failures++;
    cluster_timer_after(s->watch_timer,
                        s->watch_failures >= s->cfg.addr_count ? s->cfg.timeout_ms : 0);
}

static void on_step(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct sentinel *s = arg;
    query_step(s);
    watch_step(s);
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

struct sentinel *sentinel_new(struct event_base *base, const struct sentinel_config *cfg)
{
    if (cfg->addr_count == 0 || cfg->master_name[0] == '\0')
        return NULL;
    struct sentinel *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return NULL;
    s->base = base;
    s->cfg = *cfg;
    if (s->cfg.timeout_ms == 0)
        s->cfg.timeout_ms = 1000;
    s->query_timer = evtimer_new(base, on_query_timeout, s);
    s->watch_timer = evtimer_new(base, on_watch_timer, s);
    s->again_timer = evtimer_new(base, on_again, s);
    s->step_event = event_new(base, -1, 0, on_step, s);
    if (s->query_timer == NULL || s->watch_timer == NULL || s->again_timer == NULL ||
        s->step_event == NULL) {
        sentinel_free(s);
        return NULL;
    }
    sentinel_refresh(s);
    watch_start(s);
    return s;
}

void sentinel_free(struct sentinel *s)
{
    if (s == NULL)
        return;
    conn_free(s->query);
    conn_free(s->watch);
    if (s->query_timer != NULL)
        event_free(s->query_timer);
    if (s->watch_timer != NULL)
        event_free(s->watch_timer);
    if (s->again_timer != NULL)
        event_free(s->again_timer);
    if (s->step_event != NULL)
        event_free(s->step_event);
    free(s->links);
    free(s);
}

int sentinel_attach(struct sentinel *s, struct redis_link *link)
{
    if (s->link_count == s->link_cap) {
        size_t cap = s->link_cap != 0 ? 2 * s->link_cap : 8;
        struct redis_link **links = realloc(s->links, cap * sizeof(*links));
        if (links == NULL)
            return -1;
        s->links = links;
        s->link_cap = cap;
    }
    s->links[s->link_count++] = link;
    return 0;
}

void sentinel_detach(struct sentinel *s, struct redis_link *link)
{
    for (size_t i = 0; i < s->link_count; i++)
        if (s->links[i] == link) {
            s->links[i] = s->links[--s->link_count];
            return;
        }
}

bool sentinel_master(const struct sentinel *s, const char **host, unsigned short *port)
{
    if (!s->known)
        return false;
    *host = s->master_host;
    *port = s->master_port;
    return true;
}

const struct sentinel_stats *sentinel_stats(const struct sentinel *s)
{
    return &s->stats;
}
