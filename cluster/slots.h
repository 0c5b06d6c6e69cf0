/*
 * slots.h - Redis Cluster's key space, sans I/O: which hash slot a key or channel is in, the slot
 * map CLUSTER SLOTS answers, and the MOVED / ASK redirections a node replies with.
 *
 * What it is for: cluster_map.c (the map of one loop), redis.c (routing a command by its key)
 * and shard_sub.c (which node carries a sharded channel) share these pure functions, so they are
 * tested once (tests/unit/test_slots.c) and fuzzed once (tests/fuzz/fuzz_cluster_reply.c).
 *
 * What it must not do: any I/O, allocation beyond the map it fills, or trust a reply's shape:
 * every CLUSTER SLOTS and redirection comes from the network and may be malformed.
 */
#ifndef STOMPWS_SLOTS_H
#define STOMPWS_SLOTS_H

/* The layers' rule, enforced by the build: broker/ is compiled with STOMPWS_BROKER_LAYER. */
#ifdef STOMPWS_BROKER_LAYER
#error "a broker/ file includes a header of cluster/ or server/, the layers above it"
#endif

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CLUSTER_SLOTS      16384
#define CLUSTER_NODES_MAX  256 /* masters a map holds; a bigger cluster is refused (logged) */
#define CLUSTER_HOST_MAX   256 /* bytes with the NUL */
#define CLUSTER_NO_NODE    0xFFFF

/* The hash slot of key (or of a sharded channel): CRC16 (XMODEM) of the key's hash tag (the
 * bytes between its first '{' and the first '}' after it, when that is not empty), else of the
 * whole key, modulo 16384. */
uint16_t slots_key_slot(const char *key, size_t len);

/* The hash tag of key as above: its start and length, or false when key has none (the whole key
 * is hashed). */
bool slots_hash_tag(const char *key, size_t len, size_t *tag_at, size_t *tag_len);

struct slots_node {
    char host[CLUSTER_HOST_MAX]; /* IP as the cluster announces it ("" in a reply is taken as
                                    the address the map came from: the caller's fallback_host) */
    unsigned short port;
};

/* Which master serves each slot. Plain data: copy it, compare it, no ownership inside. */
struct slots_map {
    uint16_t owner[CLUSTER_SLOTS]; /* index into nodes, or CLUSTER_NO_NODE (slot not served) */
    struct slots_node nodes[CLUSTER_NODES_MAX];
    size_t node_count;
};

/*
 * Fills map from a CLUSTER SLOTS reply: [[start, end, [host, port, id...], replicas...], ...].
 * Masters are deduplicated by host:port; a host of "" (or "?") means the node answered from
 * fallback_host. Slots no range names stay CLUSTER_NO_NODE. Returns the number of slots served,
 * or -1 with a message in err when the reply is not CLUSTER SLOTS' shape (out-of-range slots,
 * start > end, a port outside 1..65535, too many masters, wrong types).
 */
int slots_map_from_reply(struct slots_map *map, const redisReply *reply, const char *fallback_host,
                         char *err, size_t err_len);

/* a and b name the same node: the same host text and port. */
bool slots_node_equal(const struct slots_node *a, const struct slots_node *b);

/* node is one of map's masters. */
bool slots_map_has_node(const struct slots_map *map, const struct slots_node *node);

/* The master of slot, or NULL when no node serves it. */
const struct slots_node *slots_map_node(const struct slots_map *map, uint16_t slot);

/* A redirection: "MOVED <slot> <host>:<port>" or "ASK <slot> <host>:<port>" (the host may be an
 * IPv6 literal, with or without brackets: the port follows the last ':'; an empty host means the
 * node that replied, which the caller knows). */
struct slots_redirect {
    bool ask; /* ASK: send ASKING then the command to node, this once; MOVED: the slot moved */
    uint16_t slot;
    struct slots_node node;
};

/* Parses an error reply's text (len bytes, not NUL-terminated). Returns true for a well-formed
 * MOVED or ASK; false for any other error or a malformed one. */
bool slots_parse_redirect(const char *text, size_t len, struct slots_redirect *out);

#endif
