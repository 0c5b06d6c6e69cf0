#include "cluster/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

void cluster_redact_url(char *out, size_t len, const char *url)
{
    const char *rest = strstr(url, "://");
    rest = rest != NULL ? rest + 3 : url;
    size_t authority_len = strcspn(rest, "/");
    const char *at = NULL;
    for (size_t i = 0; i < authority_len; i++)
        if (rest[i] == '@')
            at = rest + i; /* the last '@', as bridge_parse_url reads it */
    const char *colon = at != NULL ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
    /* "***", or one '*' per character of a shorter password: never longer than the URL, so what
     * --print-config writes fits the key again when it is loaded back. */
    size_t stars = colon != NULL ? (size_t)(at - colon - 1) : 0;
    if (colon == NULL)
        snprintf(out, len, "%s", url);
    else
        snprintf(out, len, "%.*s%.*s%s", (int)(colon + 1 - url), url, (int)(stars < 3 ? stars : 3),
                 "***", at);
}
