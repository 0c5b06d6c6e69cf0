/*
 * fuzz_cluster_reply.c - libFuzzer harness for cluster/slots (CLUSTER SLOTS replies and MOVED /
 * ASK redirections, both straight from the network).
 *
 * Input layout: the whole input is RESP as a Redis node would send it. It is fed to hiredis'
 * reader; every reply that parses goes through slots_map_from_reply (with and without a fallback
 * host) and, when it is an error, its text through slots_parse_redirect. The raw bytes themselves
 * go through slots_parse_redirect too, from a heap block of exactly their size (ASan flags a read
 * past it).
 *
 * Invariants: a map that parses has every owner below node_count or CLUSTER_NO_NODE, as many
 * served slots as it says, NUL-terminated non-empty hosts and ports in 1..65535; a failed parse
 * leaves an empty map. A redirection that parses, printed again, parses to the same redirection.
 */
#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cluster/slots.h"
#include "tests/fuzz/fuzz.h"

static struct slots_map map;

static void check_map(int served)
{
    if (served < 0) {
        CHECK(map.node_count == 0);
        for (size_t i = 0; i < CLUSTER_SLOTS; i++)
            CHECK(map.owner[i] == CLUSTER_NO_NODE);
        return;
    }
    CHECK(served <= CLUSTER_SLOTS && map.node_count <= CLUSTER_NODES_MAX);
    int counted = 0;
    for (size_t i = 0; i < CLUSTER_SLOTS; i++) {
        CHECK(map.owner[i] == CLUSTER_NO_NODE || map.owner[i] < map.node_count);
        const struct slots_node *n = slots_map_node(&map, (uint16_t)i);
        CHECK((n == NULL) == (map.owner[i] == CLUSTER_NO_NODE));
        counted += n != NULL;
    }
    CHECK(counted == served);
    for (size_t i = 0; i < map.node_count; i++) {
        size_t len = strnlen(map.nodes[i].host, CLUSTER_HOST_MAX);
        CHECK(len > 0 && len < CLUSTER_HOST_MAX && map.nodes[i].port >= 1);
    }
}

/* Prints r as a node would and parses it again: the same redirection must come back. */
static void check_reprint(const struct slots_redirect *r)
{
    CHECK(r->slot < CLUSTER_SLOTS && r->node.port >= 1);
    CHECK(strnlen(r->node.host, CLUSTER_HOST_MAX) < CLUSTER_HOST_MAX);
    char text[CLUSTER_HOST_MAX + 32];
    bool v6 = strchr(r->node.host, ':') != NULL;
    int n = snprintf(text, sizeof(text), "%s %u %s%s%s:%u", r->ask ? "ASK" : "MOVED", r->slot,
                     v6 ? "[" : "", r->node.host, v6 ? "]" : "", r->node.port);
    CHECK(n > 0 && (size_t)n < sizeof(text));
    struct slots_redirect again;
    char *copy = exact_copy((const uint8_t *)text, (size_t)n);
    CHECK(slots_parse_redirect(copy, (size_t)n, &again));
    free(copy);
    CHECK(again.ask == r->ask && again.slot == r->slot && again.node.port == r->node.port);
    CHECK(strcmp(again.node.host, r->node.host) == 0);
}

static void check_redirect(const char *text, size_t len)
{
    struct slots_redirect r;
    char *copy = exact_copy((const uint8_t *)text, len);
    bool ok = slots_parse_redirect(copy, len, &r);
    free(copy);
    if (ok)
        check_reprint(&r);
}

static void check_reply(const redisReply *reply)
{
    char err[128];
    check_map(slots_map_from_reply(&map, reply, "10.0.0.1", err, sizeof(err)));
    check_map(slots_map_from_reply(&map, reply, NULL, err, sizeof(err)));
    if (reply->type == REDIS_REPLY_ERROR && reply->str != NULL)
        check_redirect(reply->str, reply->len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    check_redirect((const char *)data, size);
    redisReader *reader = redisReaderCreate();
    CHECK(reader != NULL);
    if (redisReaderFeed(reader, (const char *)data, size) == REDIS_OK) {
        for (int i = 0; i < 16; i++) {
            void *reply = NULL;
            if (redisReaderGetReply(reader, &reply) != REDIS_OK || reply == NULL)
                break;
            check_reply(reply);
            freeReplyObject(reply);
        }
    }
    redisReaderFree(reader);
    return 0;
}
