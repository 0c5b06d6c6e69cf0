/*
 * redis_router.h - the Redis Cluster mode of a redis_link (redis.h, config field `cluster`).
 *
 * What it is for: an owner (bridge, streams, history, presence) holds one redis_link whatever
 * the topology. In cluster mode that link is a router: each command goes to the master of its
 * key's slot, over a plain redis_link per master made lazily on the first command for it
 * (commands wait in order until it is up). A MOVED refreshes the map and sends the command again
 * to the master it names; an ASK sends ASKING and the command to the node it names, once. Keyless
 * commands (CLIENT, WAIT, SCRIPT, PUBLISH...) go to the "home" master: the master of the slot of
 * cfg.home_key. The owner's up() and down() follow the home master's connection, so an owner
 * whose keys all share the home key's hash tag (a queue group) sees exactly what it saw with one
 * Redis. With cfg.pinned, commands are not wrapped at all: they go straight to the home master's
 * connection (SUBSCRIBE links, whose callbacks run once per message).
 *
 * Only redis.c (and its unit test) includes this header. What it must not do: block, or free a
 * connection inside that connection's callbacks.
 */
#ifndef STOMPWS_REDIS_ROUTER_H
#define STOMPWS_REDIS_ROUTER_H

#ifdef STOMPWS_BROKER_LAYER
#error "a broker/ file includes a header of cluster/ or server/, the layers above it"
#endif

#include "cluster/redis.h"

struct redis_router;

/* shell: the redis_link the owner holds (passed to its up and down callbacks). */
struct redis_router *redis_router_new(struct event_base *base, const struct redis_link_config *cfg,
                                      const struct redis_link_ops *ops, struct redis_link *shell);
void redis_router_free(struct redis_router *r);
bool redis_router_is_up(const struct redis_router *r);
size_t redis_router_unsent_bytes(const struct redis_router *r);
const struct redis_link_stats *redis_router_stats(const struct redis_router *r);
int redis_router_command_resp(struct redis_router *r, redisCallbackFn *fn, void *privdata,
                              const char *resp, size_t len);
void redis_router_restart(struct redis_router *r);
int redis_router_preload_script(struct redis_router *r, const char *script);
/* The slot a command in RESP is routed by: its key's (EVAL/EVALSHA: the first of KEYS); false for
 * a keyless one (CLIENT, WAIT, SCRIPT, PING, INFO, XREAD[GROUP], EVAL with no keys), which goes
 * to the home master. PUBLISH goes by its channel, as if it were a key. Pure:
 * tests/unit/test_redis_router.c. */
bool redis_router_command_slot(const char *resp, size_t len, uint16_t *slot);

void redis_router_each_node(const struct redis_router *r,
                            void (*fn)(void *arg, const char *host, unsigned short port, bool up),
                            void *arg);

#endif
