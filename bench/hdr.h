/*
 * bench/hdr.h - a log-linear latency histogram in the manner of HdrHistogram.
 *
 * What it is for: recording millions of latencies (nanoseconds) at a fixed cost per value and a
 * fixed size, then reading percentiles with a bounded relative error. Values below 2^HDR_SUB_BITS
 * have a bucket each; above, every power of two is split into 2^HDR_SUB_BITS equal buckets, so a
 * percentile is off by at most 1/2^HDR_SUB_BITS (0.8 %) of its value. Histograms of several
 * workers merge by adding their buckets, so --procs N reports the same figures one process would.
 *
 * What it must not do: allocate or do I/O. The struct is a plain value: a worker process writes it
 * to its parent through a pipe as bytes (same binary, same machine).
 */
#ifndef STOMPWS_BENCH_HDR_H
#define STOMPWS_BENCH_HDR_H

#include <stdint.h>

#define HDR_SUB_BITS 7
/* Values at or above 2^HDR_MAX_BITS ns (about 73 minutes) are recorded as that value. */
#define HDR_MAX_BITS 42
#define HDR_BUCKETS  ((HDR_MAX_BITS - HDR_SUB_BITS + 1) << HDR_SUB_BITS)

struct hdr {
    uint64_t count;                /* values recorded */
    uint64_t min;                  /* exact; UINT64_MAX while empty */
    uint64_t max;                  /* exact */
    double sum;                    /* for the mean */
    uint64_t buckets[HDR_BUCKETS]; /* counts per bucket, see hdr_bucket() */
};

void hdr_init(struct hdr *h);

/* Bucket index of value v (clamped to the largest trackable value). */
unsigned hdr_bucket(uint64_t v);

/* The largest value that falls in bucket i: what percentiles report (never an understatement). */
uint64_t hdr_bucket_top(unsigned i);

void hdr_record(struct hdr *h, uint64_t v);

/* Adds every value of src to dst. */
void hdr_merge(struct hdr *dst, const struct hdr *src);

/*
 * The value at percentile p (0..100): the top of the bucket holding the ceil(p/100 * count)-th
 * smallest value, capped at the exact max; 0 when empty. p = 100 gives the exact max.
 */
uint64_t hdr_percentile(const struct hdr *h, double p);

double hdr_mean(const struct hdr *h);

#endif
