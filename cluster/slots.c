/*
 * slots.c - Redis Cluster's key space without I/O: CRC16 hash slots with hash tags, the CLUSTER
 * SLOTS reply turned into a slot map, and MOVED / ASK redirections parsed. Every reply comes from
 * the network: each type, count and range is checked before it is used.
 */
#include "cluster/slots.h"

#include <stdio.h>
#include <string.h>

/* CRC16-XMODEM (polynomial 0x1021, initial value 0, no reflection), the one the cluster
 * specification names; bit by bit, as keys are short and a table would need initialising. */
static uint16_t crc16_xmodem(const char *buf, size_t len)
{
    uint16_t crc = 0;
    for (size_t i = 0; i < len; i++) {
        crc ^= (uint16_t)((uint8_t)buf[i] << 8);
        for (int bit = 0; bit < 8; bit++)
            crc = (crc & 0x8000) ? (uint16_t)((crc << 1) ^ 0x1021) : (uint16_t)(crc << 1);
    }
    return crc;
}

bool slots_hash_tag(const char *key, size_t len, size_t *tag_at, size_t *tag_len)
{
    const char *open = len > 0 ? memchr(key, '{', len) : NULL;
    if (open == NULL)
        return false;
    size_t start = (size_t)(open - key) + 1;
    const char *close = memchr(key + start, '}', len - start);
    if (close == NULL || close == key + start)
        return false; /* no '}' after the '{', or "{}": the whole key is hashed */
    *tag_at = start;
    *tag_len = (size_t)(close - (key + start));
    return true;
}

uint16_t slots_key_slot(const char *key, size_t len)
{
    size_t at, n;
    if (slots_hash_tag(key, len, &at, &n))
        return crc16_xmodem(key + at, n) & (CLUSTER_SLOTS - 1);
    return crc16_xmodem(key, len) & (CLUSTER_SLOTS - 1);
}

/* ---- CLUSTER SLOTS ------------------------------------------------------------------------- */

static void map_clear(struct slots_map *map)
{
    for (size_t i = 0; i < CLUSTER_SLOTS; i++)
        map->owner[i] = CLUSTER_NO_NODE;
    map->node_count = 0;
}

/* Fails the parse: the map is left empty (no owner points at a node), err says why. */
static int fail(struct slots_map *map, char *err, size_t err_len, const char *why, size_t at)
{
    map_clear(map);
    if (err != NULL && err_len > 0)
        snprintf(err, err_len, "CLUSTER SLOTS: range %zu: %s", at, why);
    return -1;
}

static bool is_slot(const redisReply *r)
{
    return r != NULL && r->type == REDIS_REPLY_INTEGER && r->integer >= 0 &&
           r->integer < CLUSTER_SLOTS;
}

/* The host of a master entry as a C string: not longer than CLUSTER_HOST_MAX - 1, no NUL in
 * it; "" and "?" (the node does not know its own address) become fallback. NULL when invalid. */
static const char *entry_host(const redisReply *r, const char *fallback, size_t *len)
{
    if (r == NULL || r->type != REDIS_REPLY_STRING || r->str == NULL)
        return NULL;
    const char *host = r->str;
    size_t n = r->len;
    if (n == 0 || (n == 1 && host[0] == '?')) {
        if (fallback == NULL)
            return NULL;
        host = fallback;
        n = strlen(fallback);
    } else if (memchr(host, '\0', n) != NULL) {
        return NULL;
    }
    if (n == 0 || n >= CLUSTER_HOST_MAX)
        return NULL;
    *len = n;
    return host;
}

/* The index of host:port in map->nodes, added when new; -1 when the map is full. */
static int node_index(struct slots_map *map, const char *host, size_t len, unsigned short port)
{
    for (size_t i = 0; i < map->node_count; i++) {
        const struct slots_node *n = &map->nodes[i];
        if (n->port == port && strlen(n->host) == len && memcmp(n->host, host, len) == 0)
            return (int)i;
    }
    if (map->node_count == CLUSTER_NODES_MAX)
        return -1;
    struct slots_node *n = &map->nodes[map->node_count];
    memcpy(n->host, host, len);
    n->host[len] = '\0';
    n->port = port;
    return (int)map->node_count++;
}

int slots_map_from_reply(struct slots_map *map, const redisReply *reply, const char *fallback_host,
                         char *err, size_t err_len)
{
    map_clear(map);
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY)
        return fail(map, err, err_len, "the reply is not an array", 0);
    if (reply->elements > 0 && reply->element == NULL)
        return fail(map, err, err_len, "no elements", 0);
    int served = 0;
    for (size_t i = 0; i < reply->elements; i++) {
        const redisReply *range = reply->element[i];
        if (range == NULL || range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
            range->element == NULL)
            return fail(map, err, err_len, "not [start, end, master, ...]", i);
        if (!is_slot(range->element[0]) || !is_slot(range->element[1]))
            return fail(map, err, err_len, "a slot outside 0..16383", i);
        long long start = range->element[0]->integer, end = range->element[1]->integer;
        if (start > end)
            return fail(map, err, err_len, "start > end", i);
        const redisReply *master = range->element[2];
        if (master == NULL || master->type != REDIS_REPLY_ARRAY || master->elements < 2 ||
            master->element == NULL)
            return fail(map, err, err_len, "the master is not [host, port, ...]", i);
        size_t host_len = 0;
        const char *host = entry_host(master->element[0], fallback_host, &host_len);
        if (host == NULL)
            return fail(map, err, err_len, "bad master host", i);
        const redisReply *port = master->element[1];
        if (port == NULL || port->type != REDIS_REPLY_INTEGER || port->integer < 1 ||
            port->integer > 65535)
            return fail(map, err, err_len, "a port outside 1..65535", i);
        int node = node_index(map, host, host_len, (unsigned short)port->integer);
        if (node < 0)
            return fail(map, err, err_len, "more masters than CLUSTER_NODES_MAX", i);
        for (long long slot = start; slot <= end; slot++) {
            if (map->owner[slot] != CLUSTER_NO_NODE)
                return fail(map, err, err_len, "a slot in two ranges", i);
            map->owner[slot] = (uint16_t)node;
        }
        served += (int)(end - start + 1);
    }
    return served;
}

bool slots_node_equal(const struct slots_node *a, const struct slots_node *b)
{
    return a->port == b->port && strcmp(a->host, b->host) == 0;
}

bool slots_map_has_node(const struct slots_map *map, const struct slots_node *node)
{
    for (size_t i = 0; i < map->node_count; i++)
        if (slots_node_equal(&map->nodes[i], node))
            return true;
    return false;
}

const struct slots_node *slots_map_node(const struct slots_map *map, uint16_t slot)
{
    if (slot >= CLUSTER_SLOTS)
        return NULL;
    uint16_t i = map->owner[slot];
    if (i == CLUSTER_NO_NODE || i >= map->node_count)
        return NULL;
    return &map->nodes[i];
}

/* ---- MOVED / ASK --------------------------------------------------------------------------- */

/* Parses 1 to 5 decimal digits at p[0..len) as a number below limit; false otherwise. */
static bool parse_number(const char *p, size_t len, unsigned long limit, unsigned long *out)
{
    if (len == 0 || len > 5)
        return false;
    unsigned long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        v = v * 10 + (unsigned long)(p[i] - '0');
    }
    if (v >= limit)
        return false;
    *out = v;
    return true;
}

/* A host as a redirection carries it: printable, no space, no brackets inside (an IPv6 literal's
 * brackets are taken off before). May be empty (the replying node). */
static bool valid_host(const char *p, size_t len)
{
    if (len >= CLUSTER_HOST_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)p[i];
        if (ch <= ' ' || ch >= 0x7f || ch == '[' || ch == ']')
            return false;
    }
    return true;
}

/* "<host>:<port>", "[<ipv6>]:<port>" or "<ipv6>:<port>": the port follows the last ':'. */
static bool parse_endpoint(const char *p, size_t len, struct slots_node *out)
{
    const char *colon = NULL;
    for (size_t i = len; i > 0; i--) {
        if (p[i - 1] == ':') {
            colon = p + i - 1;
            break;
        }
    }
    if (colon == NULL)
        return false;
    unsigned long port;
    size_t host_len = (size_t)(colon - p);
    if (!parse_number(colon + 1, len - host_len - 1, 65536, &port) || port == 0)
        return false;
    if (host_len >= 2 && p[0] == '[' && p[host_len - 1] == ']') {
        p++;
        host_len -= 2;
    }
    if (!valid_host(p, host_len))
        return false;
    memcpy(out->host, p, host_len);
    out->host[host_len] = '\0';
    out->port = (unsigned short)port;
    return true;
}

bool slots_parse_redirect(const char *text, size_t len, struct slots_redirect *out)
{
    size_t word;
    bool ask;
    if (len >= 6 && memcmp(text, "MOVED ", 6) == 0) {
        ask = false;
        word = 6;
    } else if (len >= 4 && memcmp(text, "ASK ", 4) == 0) {
        ask = true;
        word = 4;
    } else {
        return false;
    }
    const char *slot_at = text + word;
    const char *space = memchr(slot_at, ' ', len - word);
    if (space == NULL)
        return false;
    unsigned long slot;
    if (!parse_number(slot_at, (size_t)(space - slot_at), CLUSTER_SLOTS, &slot))
        return false;
    const char *endpoint = space + 1;
    struct slots_redirect r = {.ask = ask, .slot = (uint16_t)slot};
    if (!parse_endpoint(endpoint, (size_t)(text + len - endpoint), &r.node))
        return false;
    *out = r;
    return true;
}
