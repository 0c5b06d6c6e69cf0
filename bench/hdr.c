/*
 * bench/hdr.c - log-linear histogram (see hdr.h).
 *
 * Bucket groups: group 0 holds the values 0 .. 2^S - 1 one per bucket (S = HDR_SUB_BITS); group
 * g >= 1 holds [2^(S+g-1), 2^(S+g)) in 2^S buckets of width 2^(g-1). Group 1 therefore also has
 * width 1, and the index of v is simply v below 2^(S+1).
 */
#include "bench/hdr.h"

#include <string.h>

#define SUB_COUNT   (1u << HDR_SUB_BITS)
#define TRACK_LIMIT ((uint64_t)1 << HDR_MAX_BITS)

void hdr_init(struct hdr *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

unsigned hdr_bucket(uint64_t v)
{
    if (v >= TRACK_LIMIT)
        v = TRACK_LIMIT - 1;
    if (v < SUB_COUNT)
        return (unsigned)v;
    unsigned k = 63u - (unsigned)__builtin_clzll(v); /* floor(log2 v) >= S */
    unsigned g = k - HDR_SUB_BITS + 1;
    return (g << HDR_SUB_BITS) + (unsigned)((v >> (g - 1)) - SUB_COUNT);
}

uint64_t hdr_bucket_top(unsigned i)
{
    unsigned g = i >> HDR_SUB_BITS;
    if (g == 0)
        return i;
    uint64_t low = ((uint64_t)SUB_COUNT + (i & (SUB_COUNT - 1))) << (g - 1);
    return low + ((uint64_t)1 << (g - 1)) - 1;
}

void hdr_record(struct hdr *h, uint64_t v)
{
    h->buckets[hdr_bucket(v)]++;
    h->count++;
    h->sum += (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void hdr_merge(struct hdr *dst, const struct hdr *src)
{
    if (src->count == 0)
        return;
    for (unsigned i = 0; i < HDR_BUCKETS; i++)
        dst->buckets[i] += src->buckets[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t hdr_percentile(const struct hdr *h, double p)
{
    if (h->count == 0)
        return 0;
    if (p >= 100.0)
        return h->max;
    double want = p / 100.0 * (double)h->count;
    uint64_t rank = (uint64_t)want;
    if ((double)rank < want || rank == 0)
        rank++; /* ceil, and at least the first value */
    uint64_t seen = 0;
    for (unsigned i = 0; i < HDR_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            uint64_t top = hdr_bucket_top(i);
            return top < h->max ? top : h->max;
        }
    }
    return h->max;
}

double hdr_mean(const struct hdr *h)
{
    return h->count == 0 ? 0.0 : h->sum / (double)h->count;
}
