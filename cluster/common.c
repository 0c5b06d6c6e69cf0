#include "cluster/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/event.h>
#include <event2/util.h>

uint64_t cluster_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t cluster_now_ms(void)
{
    return cluster_now_us() / 1000;
}

uint64_t cluster_now_realtime_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

bool cluster_warn_due(uint64_t *last)
{
    uint64_t now = cluster_now_ms();
    if (*last != 0 && now - *last < CLUSTER_WARN_INTERVAL_MS)
        return false;
    *last = now;
    return true;
}

int cluster_grow(char **buf, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t n = *cap > 0 ? *cap : 4096;
    while (n < need)
        n = n > SIZE_MAX / 2 ? need : n * 2;
    char *p = realloc(*buf, n);
    if (p == NULL)
        return -1;
    *buf = p;
    *cap = n;
    return 0;
}

void cluster_timer_after(struct event *ev, unsigned ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    evtimer_add(ev, &tv);
}

unsigned cluster_backoff_ms(unsigned min_ms, unsigned max_ms, unsigned attempt)
{
    uint64_t d = min_ms;
    for (unsigned i = 0; i < attempt && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    uint32_t r;
    evutil_secure_rng_get_bytes(&r, sizeof(r));
    return (unsigned)(d / 2 + r % (d - d / 2 + 1));
}
