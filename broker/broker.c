#include "broker/broker.h"
#include "broker/conn.h"
#include "broker/listener.h"
#include "broker/log.h"
#include "broker/session.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

uint64_t broker_now_ms(const struct broker *b)
{
    struct timeval tv;
    event_base_gettimeofday_cached(b->base, &tv);
    return (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
}

/* Frees the connections closed during this loop turn; none is ever freed in its own callback. */
static void reap_cb(evutil_socket_t fd, short what, void *arg)
{
    struct broker *b = arg;
    (void)fd;
    (void)what;
    while (b->reap_list != NULL) {
        struct conn *c = b->reap_list;
        b->reap_list = c->reap_next;
        conn_free(c);
    }
    if (b->shutting_down && b->conn_count == 0)
        event_base_loopexit(b->base, NULL);
}

static void signal_cb(evutil_socket_t sig, short what, void *arg)
{
    struct broker *b = arg;
    (void)what;
    log_info(0, "received %s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    broker_shutdown(b, "broker shutting down");
}

static void shutdown_timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct broker *b = arg;
    (void)fd;
    (void)what;
    log_warn(0, "%zu connections still open after server.shutdown_timeout_ms: closing them",
             b->conn_count);
    event_base_loopexit(b->base, NULL);
}

static void make_node_token(struct broker *b)
{
    uint8_t rnd[8];
    if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd)) {
        uint64_t t = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)b;
        memcpy(rnd, &t, sizeof(rnd));
    }
    for (size_t i = 0; i < sizeof(rnd); i++)
        snprintf(b->node_token + 2 * i, 3, "%02x", rnd[i]);
    uint64_t seed;
    memcpy(&seed, rnd, sizeof(seed));
    dict_seed(seed);
}

static int add_signal(struct broker *b, int slot, int sig)
{
    b->signal_events[slot] = evsignal_new(b->base, sig, signal_cb, b);
    return b->signal_events[slot] != NULL ? evsignal_add(b->signal_events[slot], NULL) : -1;
}

struct broker *broker_new(const struct config *cfg)
{
    struct broker *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return NULL;
    b->cfg = *cfg;
    b->base = event_base_new();
    if (b->base == NULL)
        goto fail;
    make_node_token(b);
    static const struct router_ops ops = {.deliver = session_deliver,
                                          .writable = session_writable};
    router_init(&b->router, &ops, cfg->queue_max_messages);
    b->reap_event = event_new(b->base, -1, 0, reap_cb, b);
    b->shutdown_timer = evtimer_new(b->base, shutdown_timeout_cb, b);
    if (b->reap_event == NULL || b->shutdown_timer == NULL || add_signal(b, 0, SIGINT) != 0 ||
        add_signal(b, 1, SIGTERM) != 0)
        goto fail;
    if (cfg->ws.enabled && (b->ws_listener = listener_open(b, &cfg->ws, CONN_WS)) == NULL)
        goto fail;
    if (cfg->tcp.enabled && (b->tcp_listener = listener_open(b, &cfg->tcp, CONN_TCP)) == NULL)
        goto fail;
    return b;
fail:
    broker_free(b);
    return NULL;
}

void broker_shutdown(struct broker *b, const char *reason)
{
    if (b->shutting_down)
        return;
    b->shutting_down = true;
    if (b->ws_listener != NULL)
        evconnlistener_disable(b->ws_listener);
    if (b->tcp_listener != NULL)
        evconnlistener_disable(b->tcp_listener);
    for (struct conn *c = b->conns; c != NULL; c = c->next) {
        if (c->session != NULL && conn_is_open(c))
            session_shutdown(c->session, reason);
        else if (c->state == CONN_HTTP)
            conn_close(c);
    }
    struct timeval tv = {.tv_sec = b->cfg.shutdown_timeout_ms / 1000,
                         .tv_usec = (b->cfg.shutdown_timeout_ms % 1000) * 1000};
    evtimer_add(b->shutdown_timer, &tv);
    if (b->conn_count == 0)
        event_base_loopexit(b->base, NULL);
}

int broker_run(struct broker *b)
{
    event_base_dispatch(b->base);
    return b->exit_code;
}

void broker_free(struct broker *b)
{
    if (b == NULL)
        return;
    while (b->conns != NULL)
        conn_free(b->conns); /* sessions give their queue messages back before the router goes */
    b->reap_list = NULL;
    router_reset(&b->router);
    if (b->ws_listener != NULL)
        evconnlistener_free(b->ws_listener);
    if (b->tcp_listener != NULL)
        evconnlistener_free(b->tcp_listener);
    for (size_t i = 0; i < sizeof(b->signal_events) / sizeof(b->signal_events[0]); i++)
        if (b->signal_events[i] != NULL)
            event_free(b->signal_events[i]);
    if (b->reap_event != NULL)
        event_free(b->reap_event);
    if (b->shutdown_timer != NULL)
        event_free(b->shutdown_timer);
    if (b->base != NULL)
        event_base_free(b->base);
    free(b);
}
