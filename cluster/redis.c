#include "cluster/redis.h"

#include <arpa/inet.h>
#include <event2/dns.h>
#include <event2/util.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/sds.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/base/log.h"
#include "cluster/common.h"
#include "cluster/redis_router.h"
#include "cluster/sentinel.h"

/*
 * IDLE -> (RESOLVING ->) CONNECTING -> UP -> IDLE ...
 * IDLE waits on retry_timer; RESOLVING and CONNECTING are bounded by deadline_timer.
 */
enum link_state { LINK_IDLE, LINK_RESOLVING, LINK_CONNECTING, LINK_UP };

struct redis_link {
    struct event_base *base; /* borrowed: the broker's loop */
    struct redis_link_config cfg;
    struct redis_link_ops ops;
    redisAsyncContext *ac;  /* owned while not NULL; hiredis frees it right after on_disconnect
                               (or after a failed on_connect), where this is set to NULL */
    struct evdns_base *dns; /* owned, created on the first name lookup */
    struct evdns_getaddrinfo_request *dns_req; /* pending lookup, NULL when none */
    struct event *retry_timer;                 /* owned: the backoff wait */
    struct event *deadline_timer;              /* owned: bounds connect + handshake */
    enum link_state state;
    unsigned attempt;   /* failed attempts since the link was last up: the backoff exponent */
    bool ever_up;       /* reached UP at least once */
    bool reported_down; /* this outage already has its warn line */
    bool freeing;       /* inside redis_link_free: no callbacks to the owner, no retries */
    bool dropping;      /* redisAsyncFree asked, on_disconnect not yet run: send nothing */
    char last_error[160];
    struct redis_link_stats stats;
    /* sentinel: */
    char master_host[SENTINEL_HOST_MAX]; /* cfg.host points here: the master last connected to */
    /* Redis Cluster: */
    struct redis_router *router; /* owned, NULL for a link to one server: else this link is a
                                    shell and every call goes to the router */
};

static void link_connect(struct redis_link *l);

static void set_error(struct redis_link *l, const char *what)
{
    snprintf(l->last_error, sizeof(l->last_error), "%s", what != NULL && *what ? what : "closed");
}

/* Connecting failed or a live link ended: report once, then wait and try again. */
static void link_lost(struct redis_link *l, bool was_up)
{
    evtimer_del(l->deadline_timer);
    l->state = LINK_IDLE;
    l->dropping = false;
    if (l->freeing)
        return;
    if (was_up) {
        if (!l->cfg.quiet)
            log_warn(0, "cluster: redis %s link down (%s:%u): %s", l->cfg.name, l->cfg.host,
                     l->cfg.port, l->last_error);
        l->reported_down = true;
        l->attempt = 0;
    } else if (!l->reported_down && !l->cfg.quiet) {
        log_warn(
            0, "cluster: redis %s link cannot connect to %s:%u: %s (retrying, backoff up to %u ms)",
            l->cfg.name, l->cfg.host, l->cfg.port, l->last_error, l->cfg.reconnect_max_ms);
        l->reported_down = true;
    } else {
        log_debug(0, "cluster: redis %s link attempt %u failed: %s", l->cfg.name, l->attempt,
                  l->last_error);
    }
    unsigned delay =
        cluster_backoff_ms(l->cfg.reconnect_min_ms, l->cfg.reconnect_max_ms, l->attempt);
    l->attempt++;
    cluster_timer_after(l->retry_timer, delay);
    if (was_up && l->ops.down != NULL)
        l->ops.down(l->ops.ctx, l);
    if (!was_up && l->ops.failed != NULL)
        l->ops.failed(l->ops.ctx, l);
    /* The master we knew may be gone: the sentinels may know better (one question at a time). */
    if (!was_up && l->cfg.sentinel != NULL)
        sentinel_refresh(l->cfg.sentinel);
}

static void link_up(struct redis_link *l)
{
    evtimer_del(l->deadline_timer);
    l->state = LINK_UP;
    l->stats.connects++;
    if (l->ever_up || l->attempt > 0)
        l->stats.reconnects++;
    if (l->cfg.quiet)
        log_debug(0, "cluster: redis %s link up (%s:%u)", l->cfg.name, l->cfg.host, l->cfg.port);
    else
        log_info(0, "cluster: redis %s link up (%s:%u)", l->cfg.name, l->cfg.host, l->cfg.port);
    l->ever_up = true;
    l->reported_down = false;
    l->attempt = 0;
    if (l->ops.up != NULL)
        l->ops.up(l->ops.ctx, l);
}

/*
 * Frees the hiredis context. hiredis calls on_disconnect only for a context that had connected,
 * and defers the free while one of its callbacks runs; a context still connecting is gone when
 * redisAsyncFree returns, so its loss is handled here.
 */
static void link_drop(struct redis_link *l, const char *why)
{
    redisAsyncContext *ac = l->ac;
    if (ac == NULL || l->dropping)
        return;
    l->dropping = true;
    set_error(l, why);
    bool connected = (ac->c.flags & REDIS_CONNECTED) != 0;
    bool deferred = (ac->c.flags & REDIS_IN_CALLBACK) != 0;
    redisAsyncFree(ac);
    if (!connected && !deferred) {
        l->ac = NULL;
        link_lost(l, false);
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct redis_link *l = ac->data;
    (void)status; /* REDIS_ERR exactly when ac->err is set */
    if (ac->err != 0)
        set_error(l, ac->errstr); /* else keep why link_drop dropped it */
    l->ac = NULL;
    link_lost(l, l->state == LINK_UP);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct redis_link *l = ac->data;
    if (status != REDIS_OK) {
        set_error(l, ac->errstr); /* hiredis frees ac after this returns */
        l->ac = NULL;
        link_lost(l, false);
        return;
    }
    /* Dead peers behind a NAT or a crashed host: let the kernel find out (15 s interval). */
    redisEnableKeepAlive(&l->ac->c);
}

/* A reply to AUTH or SELECT: only an error matters (it names what was wrong). */
static void on_handshake_step(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct redis_link *l = privdata;
    redisReply *reply = r;
    if (reply == NULL || reply->type != REDIS_REPLY_ERROR)
        return;
    char why[160];
    snprintf(why, sizeof(why), "handshake refused: %.*s", (int)reply->len, reply->str);
    link_drop(l, why);
}

/* The PING queued last: the server answered everything before it. */
static void on_handshake_done(redisAsyncContext *ac, void *r, void *privdata)
{
    (void)ac;
    struct redis_link *l = privdata;
    redisReply *reply = r;
    if (reply == NULL || l->state != LINK_CONNECTING)
        return; /* the link is being dropped (an earlier step failed) */
    if (reply->type == REDIS_REPLY_ERROR) {
        on_handshake_step(ac, r, privdata);
        return;
    }
    link_up(l);
}

/*
 * sentinel: ROLE's first element says what the server is now. A demoted old master (or one the
 * sentinels have not told yet) would take writes that a failover throws away: not used.
 */
static void on_role(redisAsyncContext *ac, void *r, void *privdata)
{
    struct redis_link *l = privdata;
    redisReply *reply = r;
    if (reply == NULL)
        return;
    if (reply->type == REDIS_REPLY_ERROR) {
        on_handshake_step(ac, r, privdata);
        return;
    }
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
        reply->element[0]->type == REDIS_REPLY_STRING && reply->element[0]->len == 6 &&
        memcmp(reply->element[0]->str, "master", 6) == 0)
        return;
    char why[160];
    bool named = reply->type == REDIS_REPLY_ARRAY && reply->elements > 0 &&
                 reply->element[0]->type == REDIS_REPLY_STRING;
    snprintf(why, sizeof(why), "not the master (ROLE says %.*s)",
             named ? (int)reply->element[0]->len : 1, named ? reply->element[0]->str : "?");
    link_drop(l, why); /* link_lost asks the sentinels again */
}

/* AUTH, SELECT, PING, queued at once: hiredis sends them as soon as the TCP connect completes. */
static int send_handshake(struct redis_link *l)
{
    redisAsyncContext *ac = l->ac;
    int rc = REDIS_OK;
    if (l->cfg.password[0] != '\0') {
        if (l->cfg.username[0] != '\0')
            rc = redisAsyncCommand(ac, on_handshake_step, l, "AUTH %s %s", l->cfg.username,
                                   l->cfg.password);
        else
            rc = redisAsyncCommand(ac, on_handshake_step, l, "AUTH %s", l->cfg.password);
    }
    if (rc == REDIS_OK && l->cfg.db != 0)
        rc = redisAsyncCommand(ac, on_handshake_step, l, "SELECT %d", l->cfg.db);
    if (rc == REDIS_OK && l->cfg.sentinel != NULL)
        rc = redisAsyncCommand(ac, on_role, l, "ROLE");
    if (rc == REDIS_OK)
        rc = redisAsyncCommand(ac, on_handshake_done, l, "PING");
    return rc == REDIS_OK ? 0 : -1;
}

static void connect_to(struct redis_link *l, const char *ip)
{
    redisAsyncContext *ac = redisAsyncConnect(ip, l->cfg.port);
    if (ac == NULL || ac->err != 0) {
        set_error(l, ac != NULL ? ac->errstr : "out of memory");
        if (ac != NULL)
            redisAsyncFree(ac);
        link_lost(l, false);
        return;
    }
    ac->data = l;
    l->ac = ac;
    l->state = LINK_CONNECTING;
    if (redisLibeventAttach(ac, l->base) != REDIS_OK ||
        redisAsyncSetConnectCallback(ac, on_connect) != REDIS_OK ||
        redisAsyncSetDisconnectCallback(ac, on_disconnect) != REDIS_OK || send_handshake(l) != 0) {
        link_drop(l, "cannot set up the connection");
        return;
    }
    /* The deadline was armed by link_connect (it also covers name resolution). */
}

static void on_resolved(int err, struct evutil_addrinfo *res, void *arg)
{
    struct redis_link *l = arg;
    if (err == EVUTIL_EAI_CANCEL)
        return; /* cancelled by the deadline or by redis_link_free: they clean up */
    l->dns_req = NULL;
    char ip[INET6_ADDRSTRLEN] = "";
    if (err == 0 && res != NULL) {
        const void *addr = res->ai_family == AF_INET6
                               ? (const void *)&((struct sockaddr_in6 *)res->ai_addr)->sin6_addr
                               : (const void *)&((struct sockaddr_in *)res->ai_addr)->sin_addr;
        inet_ntop(res->ai_family, addr, ip, sizeof(ip));
    }
    if (res != NULL)
        evutil_freeaddrinfo(res);
    if (ip[0] == '\0') {
        char why[160];
        snprintf(why, sizeof(why), "cannot resolve %s: %s", l->cfg.host,
                 err != 0 ? evutil_gai_strerror(err) : "no address");
        set_error(l, why);
        link_lost(l, false);
        return;
    }
    connect_to(l, ip);
}

static bool is_ip_literal(const char *host)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1;
}

/* A name goes through evdns (libevent's resolver on the same loop): getaddrinfo would block. */
static void resolve(struct redis_link *l)
{
    if (l->dns == NULL)
        l->dns = evdns_base_new(l->base, EVDNS_BASE_INITIALIZE_NAMESERVERS |
                                             EVDNS_BASE_DISABLE_WHEN_INACTIVE);
    if (l->dns == NULL) {
        set_error(l, "cannot start the DNS resolver");
        link_lost(l, false);
        return;
    }
    struct evutil_addrinfo hints;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = EVUTIL_AI_ADDRCONFIG;
    l->state = LINK_RESOLVING;
    /* May answer at once (hosts file, cache) and then returns NULL after on_resolved ran. */
    struct evdns_getaddrinfo_request *req =
        evdns_getaddrinfo(l->dns, l->cfg.host, NULL, &hints, on_resolved, l);
    if (l->state == LINK_RESOLVING)
        l->dns_req = req;
}

/* sentinel: the master's address as the sentinels last said; false (attempt failed) if none. */
static bool locate_master(struct redis_link *l)
{
    const char *host;
    unsigned short port;
    if (!sentinel_master(l->cfg.sentinel, &host, &port)) {
        set_error(l, "no sentinel has told where the master is yet");
        return false;
    }
    snprintf(l->master_host, sizeof(l->master_host), "%s", host);
    l->cfg.host = l->master_host;
    l->cfg.port = port;
    return true;
}

static void link_connect(struct redis_link *l)
{
    l->last_error[0] = '\0';
    if (l->cfg.sentinel != NULL && !locate_master(l)) {
        /* Not this link's failure: the sentinel object warns when no sentinel answers. */
        bool quiet = l->cfg.quiet;
        l->cfg.quiet = true;
        link_lost(l, false);
        l->cfg.quiet = quiet;
        return;
    }
    cluster_timer_after(l->deadline_timer, l->cfg.connect_timeout_ms);
    if (is_ip_literal(l->cfg.host))
        connect_to(l, l->cfg.host);
    else
        resolve(l);
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    link_connect(arg);
}

static void on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct redis_link *l = arg;
    char why[160];
    snprintf(why, sizeof(why), "no answer within %u ms", l->cfg.connect_timeout_ms);
    if (l->state == LINK_RESOLVING) {
        struct evdns_getaddrinfo_request *req = l->dns_req;
        l->dns_req = NULL;
        if (req != NULL)
            evdns_getaddrinfo_cancel(req);
        set_error(l, why);
        link_lost(l, false);
    } else if (l->state == LINK_CONNECTING) {
        link_drop(l, why);
    }
}

struct redis_link *redis_link_new(struct event_base *base, const struct redis_link_config *cfg,
                                  const struct redis_link_ops *ops)
{
    struct redis_link *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->base = base;
    l->cfg = *cfg;
    l->ops = *ops;
    if (cfg->cluster != NULL) {
        l->router = redis_router_new(base, cfg, ops, l);
        if (l->router == NULL) {
            free(l);
            return NULL;
        }
        return l;
    }
    if (l->cfg.reconnect_min_ms == 0)
        l->cfg.reconnect_min_ms = 1;
    if (l->cfg.reconnect_max_ms < l->cfg.reconnect_min_ms)
        l->cfg.reconnect_max_ms = l->cfg.reconnect_min_ms;
    if (l->cfg.connect_timeout_ms == 0)
        l->cfg.connect_timeout_ms = 5000;
    if (l->cfg.sentinel != NULL) {
        l->cfg.host = l->master_host; /* "" until the sentinels answer */
        if (sentinel_attach(l->cfg.sentinel, l) != 0) {
            l->cfg.sentinel = NULL; /* not attached: nothing to detach */
            free(l);
            return NULL;
        }
    }
    l->retry_timer = evtimer_new(base, on_retry, l);
    l->deadline_timer = evtimer_new(base, on_deadline, l);
    if (l->retry_timer == NULL || l->deadline_timer == NULL) {
        redis_link_free(l);
        return NULL;
    }
    link_connect(l);
    return l;
}

void redis_link_free(struct redis_link *l)
{
    if (l == NULL)
        return;
    if (l->router != NULL) {
        redis_router_free(l->router);
        free(l);
        return;
    }
    l->freeing = true;
    if (l->cfg.sentinel != NULL)
        sentinel_detach(l->cfg.sentinel, l);
    bool lookup_pending = l->dns_req != NULL;
    if (lookup_pending) {
        struct evdns_getaddrinfo_request *req = l->dns_req;
        l->dns_req = NULL;
        evdns_getaddrinfo_cancel(req); /* on_resolved sees EVUTIL_EAI_CANCEL, touches nothing */
    }
    if (l->ac != NULL)
        link_drop(l, "shutting down");
    if (l->retry_timer != NULL)
        event_free(l->retry_timer);
    if (l->deadline_timer != NULL)
        event_free(l->deadline_timer);
    /*
     * libevent reports a cancelled lookup through a deferred callback that still uses the evdns
     * base, so a base with a lookup in flight is left to the process exit (only when shutting
     * down during a name lookup; links to an IP address never create one).
     */
    if (l->dns != NULL && !lookup_pending)
        evdns_base_free(l->dns, 0);
    free(l);
}

bool redis_link_is_up(const struct redis_link *l)
{
    if (l->router != NULL)
        return redis_router_is_up(l->router);
    return l->state == LINK_UP && !l->dropping;
}

size_t redis_link_unsent_bytes(const struct redis_link *l)
{
    if (l->router != NULL)
        return redis_router_unsent_bytes(l->router);
    return l->ac != NULL && l->ac->c.obuf != NULL ? sdslen(l->ac->c.obuf) : 0;
}

const struct redis_link_stats *redis_link_stats(const struct redis_link *l)
{
    if (l->router != NULL)
        return redis_router_stats(l->router);
    return &l->stats;
}

int redis_link_command_argv(struct redis_link *l, redisCallbackFn *fn, void *privdata, int argc,
                            const char **argv, const size_t *argvlen)
{
    if (l->router != NULL) { /* the router says whether it can send (keyed_without_home) */
        char *resp;
        int len = redisFormatCommandArgv(&resp, argc, argv, argvlen);
        if (len < 0)
            return -1;
        int rc = redis_router_command_resp(l->router, fn, privdata, resp, (size_t)len);
        redisFreeCommand(resp);
        return rc;
    }
    if (!redis_link_is_up(l))
        return -1;
    return redisAsyncCommandArgv(l->ac, fn, privdata, argc, argv, argvlen) == REDIS_OK ? 0 : -1;
}

int redis_link_command_resp(struct redis_link *l, redisCallbackFn *fn, void *privdata,
                            const char *resp, size_t len)
{
    if (l->router != NULL)
        return redis_router_command_resp(l->router, fn, privdata, resp, len);
    if (!redis_link_is_up(l))
        return -1;
    return redisAsyncFormattedCommand(l->ac, fn, privdata, resp, len) == REDIS_OK ? 0 : -1;
}

void redis_link_moved(struct redis_link *l)
{
    if (l->router != NULL)
        return; /* the router follows the slot map itself */
    if (l->ac == NULL && l->state == LINK_IDLE && !l->freeing) {
        l->attempt = 0; /* waiting in its backoff: try the new address soon */
        cluster_timer_after(
            l->retry_timer,
            cluster_backoff_ms(l->cfg.reconnect_min_ms, l->cfg.reconnect_max_ms, l->attempt));
        return;
    }
    redis_link_restart(l);
}

void redis_link_restart(struct redis_link *l)
{
    if (l->router != NULL) {
        redis_router_restart(l->router);
        return;
    }
    if (l->ac == NULL || l->dropping)
        return;
    l->stats.restarts++;
    l->attempt = 0;
    link_drop(l, "restarted: the link stopped delivering");
}

int redis_link_preload_script(struct redis_link *l, const char *script)
{
    return l->router != NULL ? redis_router_preload_script(l->router, script) : 0;
}

void redis_link_each_node(const struct redis_link *l,
                          void (*fn)(void *arg, const char *host, unsigned short port, bool up),
                          void *arg)
{
    if (l->router != NULL)
        redis_router_each_node(l->router, fn, arg);
}

size_t redis_resp_publish_prefix(char *out, size_t cap, bool sharded, const char *channel,
                                 size_t channel_len, size_t payload_len)
{
    int head = snprintf(
        out, cap, sharded ? "*3\r\n$8\r\nSPUBLISH\r\n$%zu\r\n" : "*3\r\n$7\r\nPUBLISH\r\n$%zu\r\n",
        channel_len);
    if (head < 0 || (size_t)head >= cap)
        return 0;
    size_t n = (size_t)head;
    int tail_len = snprintf(NULL, 0, "\r\n$%zu\r\n", payload_len);
    if (tail_len < 0 || cap - n <= channel_len + (size_t)tail_len)
        return 0;
    memcpy(out + n, channel, channel_len);
    n += channel_len;
    snprintf(out + n, cap - n, "\r\n$%zu\r\n", payload_len);
    return n + (size_t)tail_len;
}
