/*
 * admit.h - admission limits: connection rate, total connections, connections per address, and
 * the token bucket that also meters each connection's publishes.
 *
 * After a restart every browser comes back in the same second; the broker answers the excess at
 * accept time, before anything is allocated for the connection, with a limit it names. Pure
 * bookkeeping: time comes in as milliseconds, no I/O here.
 */
#ifndef STOMPWS_ADMIT_H
#define STOMPWS_ADMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/base/dict.h"

/* A token bucket: rate tokens per second, at most burst saved up. rate 0 = unlimited. */
struct token_bucket {
    double tokens;
    double rate;
    double burst;
    uint64_t last_ms;
};

void token_bucket_init(struct token_bucket *tb, double rate, double burst, uint64_t now_ms);
/* Takes one token; false when none is left. */
bool token_bucket_take(struct token_bucket *tb, uint64_t now_ms);
/* Milliseconds from now_ms until a token is there (0: one is; never less than 1 otherwise). */
uint64_t token_bucket_wait_ms(const struct token_bucket *tb, uint64_t now_ms);

enum admit_verdict {
    ADMIT_OK,
    ADMIT_RATE,     /* limits.connection_rate: 503 + Retry-After */
    ADMIT_TOTAL,    /* limits.max_connections: 503 */
    ADMIT_PER_ADDR, /* limits.max_connections_per_address: 429 */
};

struct admit {
    struct token_bucket rate;
    struct dict per_addr; /* owned: address text -> count (stored in the pointer) */
    size_t total;
    size_t max_total;
    size_t max_per_addr;
    uint64_t rejected[4]; /* by verdict */
};

void admit_init(struct admit *a, double rate, double burst, size_t max_total, size_t max_per_addr,
                uint64_t now_ms);
void admit_reset(struct admit *a);

/* Decides on a new connection from addr; on ADMIT_OK it is counted until admit_leave(). */
enum admit_verdict admit_enter(struct admit *a, const char *addr, uint64_t now_ms);
void admit_leave(struct admit *a, const char *addr);

/* The limit a verdict names, for error texts: "limits.connection_rate", ... */
const char *admit_limit_name(enum admit_verdict v);

#endif
