#include "broker/auth/admit.h"

#include <string.h>

void token_bucket_init(struct token_bucket *tb, double rate, double burst, uint64_t now_ms)
{
    tb->rate = rate;
    tb->burst = burst < 1 ? 1 : burst;
    tb->tokens = tb->burst;
    tb->last_ms = now_ms;
}

/* The tokens tb holds at now_ms: what it had, plus the refill since, up to the burst. */
static double tokens_at(const struct token_bucket *tb, uint64_t now_ms)
{
    if (now_ms <= tb->last_ms)
        return tb->tokens;
    double tokens = tb->tokens + (double)(now_ms - tb->last_ms) * tb->rate / 1000.0;
    return tokens < tb->burst ? tokens : tb->burst;
}

bool token_bucket_take(struct token_bucket *tb, uint64_t now_ms)
{
    if (tb->rate <= 0)
        return true;
    tb->tokens = tokens_at(tb, now_ms);
    if (now_ms > tb->last_ms)
        tb->last_ms = now_ms;
    if (tb->tokens < 1)
        return false;
    tb->tokens -= 1;
    return true;
}

uint64_t token_bucket_wait_ms(const struct token_bucket *tb, uint64_t now_ms)
{
    if (tb->rate <= 0)
        return 0;
    double tokens = tokens_at(tb, now_ms);
    if (tokens >= 1)
        return 0;
    double wait = (1 - tokens) * 1000.0 / tb->rate;
    return wait < 1 ? 1 : (uint64_t)wait + 1; /* rounded up: the token is there when it fires */
}

void admit_init(struct admit *a, double rate, double burst, size_t max_total, size_t max_per_addr,
                uint64_t now_ms)
{
    memset(a, 0, sizeof(*a));
    token_bucket_init(&a->rate, rate, burst, now_ms);
    dict_init(&a->per_addr);
    a->max_total = max_total;
    a->max_per_addr = max_per_addr;
}

void admit_reset(struct admit *a)
{
    dict_reset(&a->per_addr);
}

static size_t addr_count(const struct admit *a, const char *addr)
{
    return (size_t)(uintptr_t)dict_get(&a->per_addr, addr, strlen(addr));
}

enum admit_verdict admit_enter(struct admit *a, const char *addr, uint64_t now_ms)
{
    enum admit_verdict v = ADMIT_OK;
    size_t from_addr = addr_count(a, addr);
    if (a->max_total != 0 && a->total >= a->max_total)
        v = ADMIT_TOTAL;
    else if (a->max_per_addr != 0 && from_addr >= a->max_per_addr)
        v = ADMIT_PER_ADDR;
    else if (!token_bucket_take(&a->rate, now_ms))
        v = ADMIT_RATE;
    else if (dict_set(&a->per_addr, addr, strlen(addr), (void *)(uintptr_t)(from_addr + 1)) != 0)
        v = ADMIT_TOTAL; /* out of memory: as good as full */
    if (v != ADMIT_OK) {
        a->rejected[v]++;
        return v;
    }
    a->total++;
    return ADMIT_OK;
}

void admit_leave(struct admit *a, const char *addr)
{
    size_t n = addr_count(a, addr);
    if (n == 0)
        return;
    if (n == 1)
        dict_remove(&a->per_addr, addr, strlen(addr));
    else
        dict_set(&a->per_addr, addr, strlen(addr), (void *)(uintptr_t)(n - 1));
    a->total--;
}

const char *admit_limit_name(enum admit_verdict v)
{
    switch (v) {
    case ADMIT_RATE:
        return "limits.connection_rate";
    case ADMIT_TOTAL:
        return "limits.max_connections";
    case ADMIT_PER_ADDR:
        return "limits.max_connections_per_address";
    default:
        return "";
    }
}
