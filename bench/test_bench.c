/*
 * bench/test_bench.c - Check suite for stompws-bench's measuring parts: the log-linear histogram
 * (bucket bounds, percentiles against a sorted reference, merging), body stamps (round trip and
 * rejection of anything else), and the per-publisher sequence tracker (gaps, late arrivals,
 * duplicates). The load generator itself is exercised against a real broker by
 * tests/integration/bench_smoke.test.mjs.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bench/hdr.h"
#include "bench/stamp.h"

/* ---- hdr ---- */

START_TEST(test_hdr_buckets_cover_values)
{
    /* Every value lands in a bucket whose top is >= it and within 1/64 above it. */
    uint64_t values[] = {0,
                         1,
                         127,
                         128,
                         255,
                         256,
                         257,
                         1000,
                         4095,
                         4096,
                         123456789,
                         (uint64_t)1 << 41,
                         ((uint64_t)1 << 42) - 1};
    unsigned last = 0;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        uint64_t v = values[i];
        unsigned b = hdr_bucket(v);
        ck_assert_uint_lt(b, HDR_BUCKETS);
        ck_assert_uint_ge(b, last);
        last = b;
        uint64_t top = hdr_bucket_top(b);
        ck_assert_uint_ge(top, v);
        ck_assert_uint_le(top - v, v / 64);
    }
}
END_TEST

START_TEST(test_hdr_buckets_contiguous)
{
    /* Each bucket starts one past the previous one's top: no value falls between buckets. */
    for (unsigned b = 1; b < HDR_BUCKETS; b++) {
        uint64_t first = hdr_bucket_top(b - 1) + 1;
        ck_assert_uint_eq(hdr_bucket(first), b);
        ck_assert_uint_eq(hdr_bucket(hdr_bucket_top(b)), b);
    }
}
END_TEST

START_TEST(test_hdr_clamps_huge_values)
{
    struct hdr h;
    hdr_init(&h);
    hdr_record(&h, UINT64_MAX / 2);
    ck_assert_uint_eq(hdr_bucket(UINT64_MAX), HDR_BUCKETS - 1);
    ck_assert_uint_eq(h.count, 1);
    /* Percentiles stop at the largest trackable value; the exact max is still kept. */
    ck_assert_uint_eq(hdr_percentile(&h, 50), ((uint64_t)1 << HDR_MAX_BITS) - 1);
    ck_assert_uint_eq(hdr_percentile(&h, 100), UINT64_MAX / 2);
}
END_TEST

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

START_TEST(test_hdr_percentiles_match_sorted_reference)
{
    enum { N = 10000 };
    static uint64_t v[N];
    struct hdr h;
    hdr_init(&h);
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        v[i] = 1000 + x % 50000000; /* 1 us .. 50 ms */
        hdr_record(&h, v[i]);
    }
    qsort(v, N, sizeof(v[0]), cmp_u64);
    double ps[] = {1, 50, 90, 99, 99.9};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        size_t rank = (size_t)(ps[i] / 100.0 * N + 0.999999); /* ceil */
        uint64_t want = v[rank - 1];
        uint64_t got = hdr_percentile(&h, ps[i]);
        ck_assert_uint_ge(got, want);
        ck_assert_uint_le(got - want, want / 64);
    }
    ck_assert_uint_eq(hdr_percentile(&h, 100), v[N - 1]);
    ck_assert_uint_eq(h.min, v[0]);
    ck_assert_uint_eq(h.max, v[N - 1]);
}
END_TEST

START_TEST(test_hdr_merge_equals_one_histogram)
{
    struct hdr a, b, all;
    hdr_init(&a);
    hdr_init(&b);
    hdr_init(&all);
    for (uint64_t i = 1; i <= 1000; i++) {
        hdr_record(i % 3 ? &a : &b, i * 997);
        hdr_record(&all, i * 997);
    }
    hdr_merge(&a, &b);
    ck_assert_uint_eq(a.count, all.count);
    ck_assert_uint_eq(a.min, all.min);
    ck_assert_uint_eq(a.max, all.max);
    ck_assert_mem_eq(a.buckets, all.buckets, sizeof(a.buckets));
    ck_assert_uint_eq(hdr_percentile(&a, 99), hdr_percentile(&all, 99));
}
END_TEST

START_TEST(test_hdr_empty)
{
    struct hdr h;
    hdr_init(&h);
    ck_assert_uint_eq(hdr_percentile(&h, 50), 0);
    ck_assert(hdr_mean(&h) == 0.0);
}
END_TEST

/* ---- stamp ---- */

START_TEST(test_stamp_round_trip)
{
    char body[STAMP_LEN + 5];
    struct stamp in = {0x0123456789abcdefu, 0xfedcba98u, 42}, out;
    memset(body, 'x', sizeof(body));
    stamp_write(body, &in);
    ck_assert(stamp_read(body, sizeof(body), &out));
    ck_assert_uint_eq(out.sent_ns, in.sent_ns);
    ck_assert_uint_eq(out.publisher, in.publisher);
    ck_assert_uint_eq(out.seq, in.seq);
    ck_assert_int_eq(body[STAMP_LEN], 'x'); /* nothing written past the stamp */
    ck_assert(stamp_read(body, STAMP_LEN, &out));
}
END_TEST

START_TEST(test_stamp_rejects_other_bodies)
{
    char body[STAMP_LEN];
    struct stamp in = {1, 2, 3}, out;
    stamp_write(body, &in);
    ck_assert(!stamp_read(body, STAMP_LEN - 1, &out)); /* too short */
    const char *others[] = {"hello", "", "{\"price\": 142.10, \"symbol\": \"IBM\", \"x\": 1}"};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++)
        ck_assert(!stamp_read(others[i], strlen(others[i]), &out));
    for (size_t i = 0; i < STAMP_LEN; i++) {
        char bad[STAMP_LEN];
        memcpy(bad, body, STAMP_LEN);
        bad[i] = bad[i] == ' ' ? '0' : 'G'; /* every position matters */
        ck_assert_msg(!stamp_read(bad, STAMP_LEN, &out), "position %zu", i);
    }
}
END_TEST

/* ---- sequence tracking ---- */

START_TEST(test_seq_in_order_and_gaps)
{
    struct seq_track t = {0};
    uint64_t skipped;
    ck_assert_int_eq(seq_track_add(&t, 0, &skipped), SEQ_IN_ORDER);
    ck_assert_uint_eq(skipped, 0);
    ck_assert_int_eq(seq_track_add(&t, 1, &skipped), SEQ_IN_ORDER);
    ck_assert_int_eq(seq_track_add(&t, 5, &skipped), SEQ_IN_ORDER);
    ck_assert_uint_eq(skipped, 3); /* 2, 3, 4 */
    ck_assert_int_eq(seq_track_add(&t, 3, &skipped), SEQ_LATE);
    ck_assert_int_eq(seq_track_add(&t, 3, &skipped), SEQ_DUPLICATE);
    ck_assert_int_eq(seq_track_add(&t, 5, &skipped), SEQ_DUPLICATE);
    ck_assert_int_eq(seq_track_add(&t, 0, &skipped), SEQ_DUPLICATE);
    ck_assert_int_eq(seq_track_add(&t, 2, &skipped), SEQ_LATE);
}
END_TEST

START_TEST(test_seq_first_number_may_be_late_in_the_stream)
{
    /* A subscriber that joins late starts wherever the publisher is: that is a gap, not loss of
     * order; a jump past the window forgets what is below it. */
    struct seq_track t = {0};
    uint64_t skipped;
    ck_assert_int_eq(seq_track_add(&t, 1000, &skipped), SEQ_IN_ORDER);
    ck_assert_uint_eq(skipped, 1000);
    ck_assert_int_eq(seq_track_add(&t, 1000 + SEQ_TRACK_WINDOW + 10, &skipped), SEQ_IN_ORDER);
    ck_assert_int_eq(seq_track_add(&t, 1000, &skipped), SEQ_LATE); /* too old to tell */
    ck_assert_int_eq(seq_track_add(&t, 1000 + SEQ_TRACK_WINDOW + 9, &skipped), SEQ_LATE);
    ck_assert_int_eq(seq_track_add(&t, 1000 + SEQ_TRACK_WINDOW + 9, &skipped), SEQ_DUPLICATE);
}
END_TEST

static Suite *bench_suite(void)
{
    Suite *s = suite_create("bench");
    TCase *h = tcase_create("hdr");
    tcase_add_test(h, test_hdr_buckets_cover_values);
    tcase_add_test(h, test_hdr_buckets_contiguous);
    tcase_add_test(h, test_hdr_clamps_huge_values);
    tcase_add_test(h, test_hdr_percentiles_match_sorted_reference);
    tcase_add_test(h, test_hdr_merge_equals_one_histogram);
    tcase_add_test(h, test_hdr_empty);
    suite_add_tcase(s, h);
    TCase *st = tcase_create("stamp");
    tcase_add_test(st, test_stamp_round_trip);
    tcase_add_test(st, test_stamp_rejects_other_bodies);
    tcase_add_test(st, test_seq_in_order_and_gaps);
    tcase_add_test(st, test_seq_first_number_may_be_late_in_the_stream);
    suite_add_tcase(s, st);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(bench_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
