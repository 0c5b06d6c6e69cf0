/*
 * redis.h - one Redis connection that keeps itself up, on the broker's event loop.
 *
 * What it is for: hiredis' async API attached to the broker's libevent base, plus what hiredis
 * 0.14.1 leaves to the caller: a name resolved without blocking (evdns), a bound on connect and
 * handshake time, AUTH and SELECT on every (re)connect, a PING that proves the server answers,
 * and reconnection with capped exponential backoff and jitter. The owner learns of each
 * transition through two callbacks (up, down) and sends commands only while the link is up.
 *
 * What it must not do: block the loop (no synchronous hiredis call, no getaddrinfo on a name),
 * know about STOMP or the envelope, or free a hiredis context from inside its own callback chain
 * other than through redisAsyncFree (which hiredis defers until the callback returns).
 *
 * Logging: one warn line when a link goes down (or first fails to come up), one info line when
 * it comes up; retries in between log at debug level only.
 */
#ifndef STOMPWS_REDIS_H
#define STOMPWS_REDIS_H

/* The layers' rule, enforced by the build: broker/ is compiled with STOMPWS_BROKER_LAYER. */
#ifdef STOMPWS_BROKER_LAYER
#error "a broker/ file includes a header of cluster/ or server/, the layers above it"
#endif

#include <event2/event.h>
#include <hiredis/async.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cluster_map;
struct sentinel;

/* Settings of one link. The strings are borrowed and must outlive the link. */
struct redis_link_config {
    const char *name; /* "publish" or "subscribe": names the link in log lines */
    const char *host; /* IP literal or DNS name (resolved with evdns, never blocking) */
    unsigned short port;
    const char *username; /* "" = AUTH password (Redis < 6 style), else AUTH username password */
    const char *password; /* "" = no AUTH */
    int db;               /* SELECT db when not 0 */
    unsigned reconnect_min_ms, reconnect_max_ms; /* backoff bounds */
    unsigned connect_timeout_ms; /* TCP connect + AUTH/SELECT/PING must finish within this */
    /* sentinel: */
    struct sentinel *sentinel; /* borrowed, NULL = connect to host:port. Else the master's address
                                  comes from it before each connect (host/port unused), the link
                                  registers with it (it restarts the link on a failover), and a
                                  server whose ROLE is not master counts as a failed connect */
    bool quiet;                /* failures logged at debug level only (the owner reports them) */
    /* Redis Cluster (redis_router.h): */
    struct cluster_map *cluster; /* borrowed, NULL = one server. Else the link routes each
                                    command by its key's slot (host, port, db and sentinel
                                    unused); up() and down() follow the home key's master */
    const char *home_key;        /* keyless commands go to the master of this key's slot */
    bool pinned;                 /* every command goes to the home master, unwrapped: for
                                    SUBSCRIBE links (classic pub/sub reaches every node) */
    bool keyed_without_home;     /* while the home master is down (down() told), a command with
                                    a key still goes to its slot's master if that one is up: for
                                    the publish link, whose SPUBLISH to a healthy shard must not
                                    stop while another master fails over */
};

struct redis_link;

struct redis_link_ops {
    void *ctx;
    /* The handshake finished: commands may be sent from now on (also from inside this call). */
    void (*up)(void *ctx, struct redis_link *link);
    /* The link was up and is gone. Every pending reply callback has already run with a NULL
     * reply. Do not send commands from here; wait for the next up(). */
    void (*down)(void *ctx, struct redis_link *link);
    /* sentinel: optional, a connect attempt failed (the link retries after its backoff). Same
     * rules as down(); the owner may free the link only later, outside the link's callbacks. */
    void (*failed)(void *ctx, struct redis_link *link);
};

struct redis_link_stats {
    uint64_t connects;   /* handshakes that completed (the first up included) */
    uint64_t reconnects; /* of those, the ones after a lost or failed link */
    uint64_t restarts;   /* redis_link_restart() calls that dropped a live connection */
};

/* Starts connecting at once. Returns NULL when out of memory. */
struct redis_link *redis_link_new(struct event_base *base, const struct redis_link_config *cfg,
                                  const struct redis_link_ops *ops);
/* Drops the connection (pending callbacks run with NULL replies; ops.down is not called). */
void redis_link_free(struct redis_link *link);

bool redis_link_is_up(const struct redis_link *link);
/* Bytes queued in hiredis' output buffer and not yet written to the socket (0 when down): what a
 * slow or stalled Redis costs this process in memory. */
size_t redis_link_unsent_bytes(const struct redis_link *link);
const struct redis_link_stats *redis_link_stats(const struct redis_link *link);

/*
 * Queues a command on the connection (hiredis writes it on the next writable event, pipelined
 * behind the ones before it; nothing waits for a reply). fn(ac, reply, privdata) runs with the
 * reply, or with NULL when the link is lost first. Returns 0, or -1 when the link is not up or
 * hiredis refused (fn is then never called).
 */
int redis_link_command_argv(struct redis_link *link, redisCallbackFn *fn, void *privdata, int argc,
                            const char **argv, const size_t *argvlen);
/* The same for a command already in RESP form (built without an extra copy by the caller). */
int redis_link_command_resp(struct redis_link *link, redisCallbackFn *fn, void *privdata,
                            const char *resp, size_t len);

/*
 * Drops the connection now and reconnects after the minimum backoff: for a link that is
 * connected but known bad (a subscribe link that no longer delivers). Logged by the caller.
 */
void redis_link_restart(struct redis_link *link);

/* sentinel: the server moved. As redis_link_restart(), and a link waiting in its backoff (or
 * without an address yet) tries again after the minimum backoff instead. */
void redis_link_moved(struct redis_link *link);

/* Redis Cluster: script (static text, borrowed for the link's life) is SCRIPT LOADed on every
 * connection to a master as it comes up, ahead of the commands waiting for it, so EVALSHAs find
 * it on every shard (a NOSCRIPT re-sent as EVAL would land behind later EVALSHAs). Up to 8
 * scripts; -1 beyond. With one server it does nothing (the owner loads per connection). */
int redis_link_preload_script(struct redis_link *link, const char *script);

/* Redis Cluster: fn(arg, host, port, up) for each master connection of a routing link (none for
 * a link to one server). */
void redis_link_each_node(const struct redis_link *link,
                          void (*fn)(void *arg, const char *host, unsigned short port, bool up),
                          void *arg);

/*
 * RESP for "PUBLISH channel <payload of payload_len bytes>" (or SPUBLISH when sharded) minus the
 * payload and its closing CRLF: writes the prefix to out and returns its length, or 0 when cap is
 * too small. The caller appends the payload and "\r\n" (REDIS_RESP_TRAILER_LEN bytes).
 */
size_t redis_resp_publish_prefix(char *out, size_t cap, bool sharded, const char *channel,
                                 size_t channel_len, size_t payload_len);
#define REDIS_RESP_TRAILER_LEN 2

#endif
