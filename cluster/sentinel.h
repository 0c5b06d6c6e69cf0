/*
 * sentinel.h - where the Redis master is, as Redis Sentinel says, for the links of one loop.
 *
 * What it is for: in sentinel mode (cluster.redis_sentinel) no link knows a fixed address. Each
 * link (redis.h, config field `sentinel`) asks this object for the master's address before each
 * connect and tells it when that address failed. The object asks the sentinels in turn
 * (SENTINEL get-master-addr-by-name, each attempt bounded by timeout_ms, a sentinel that is down
 * or does not know the master skipped), caches the answer, and keeps one connection to one
 * sentinel subscribed to +switch-master (moving to the next sentinel when it is lost). When the
 * master of our name changes, every registered link is restarted: each one reconnects to the new
 * master and its owner's up() callback re-subscribes, re-claims and resends what it had.
 *
 * What it must not do: block the loop (every sentinel connection is a redis_link, so names go
 * through evdns and every step is bounded), or free a link from inside that link's callbacks
 * (finished sentinel connections are freed from an event of their own).
 */
#ifndef STOMPWS_SENTINEL_H
#define STOMPWS_SENTINEL_H

/* The layers' rule, enforced by the build: broker/ is compiled with STOMPWS_BROKER_LAYER. */
#ifdef STOMPWS_BROKER_LAYER
#error "a broker/ file includes a header of cluster/ or server/, the layers above it"
#endif

#include <event2/event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SENTINEL_MAX_ADDRS 16
#define SENTINEL_HOST_MAX  256

struct sentinel_addr {
    char host[SENTINEL_HOST_MAX]; /* IP literal or DNS name */
    unsigned short port;
};

struct sentinel_config {
    struct sentinel_addr addrs[SENTINEL_MAX_ADDRS]; /* tried in this order, from the first */
    size_t addr_count;
    char master_name[256];     /* the name in "sentinel monitor NAME ..." */
    char password[256];        /* AUTH for the sentinels (their requirepass); "" = none */
    unsigned timeout_ms;       /* per sentinel: connect + AUTH + answer; 0 = 1000 */
    unsigned reconnect_min_ms; /* the links' backoff (also the sentinel connections') */
    unsigned reconnect_max_ms; /*   bounds */
};

/*
 * Parses "HOST:PORT[,HOST:PORT...]" (HOST may be [IPv6]; spaces around commas allowed) into
 * cfg->addrs. Returns 0, or -1 with a message in err.
 */
int sentinel_parse_addrs(const char *text, struct sentinel_config *cfg, char *err, size_t err_len);

struct config;

/* The settings cfg's cluster.redis_sentinel, redis_master, sentinel_password and
 * sentinel_timeout_ms give. Returns 0, or -1 with a message in err. */
int sentinel_settings(const struct config *cfg, struct sentinel_config *out, char *err,
                      size_t err_len);

struct sentinel;
struct redis_link;

/* Starts asking the sentinels and watching +switch-master at once. NULL when out of memory. */
struct sentinel *sentinel_new(struct event_base *base, const struct sentinel_config *cfg);
/* After every link that registered is freed. */
void sentinel_free(struct sentinel *s);

/* A link in sentinel mode registers at its creation and leaves when freed (redis.c does it). */
int sentinel_attach(struct sentinel *s, struct redis_link *link);
void sentinel_detach(struct sentinel *s, struct redis_link *link);

/* The master's address as last learnt: false when no sentinel answered yet. host is borrowed
 * until the next call into this object. */
bool sentinel_master(const struct sentinel *s, const char **host, unsigned short *port);

/* The cached address may be stale (a connect to it failed, or it is not a master any more):
 * ask the sentinels again, unless a question is already on its way. */
void sentinel_refresh(struct sentinel *s);

struct sentinel_stats {
    uint64_t switches;         /* master address changes seen (+switch-master or an answer) */
    uint64_t queries;          /* SENTINEL get-master-addr-by-name answered */
    uint64_t sentinels_failed; /* a sentinel skipped: down, slow, refused, or no such master */
};
const struct sentinel_stats *sentinel_stats(const struct sentinel *s);

#endif
