/* Admission limits: token bucket refill and burst, total and per-address caps, release. */
#include <check.h>
#include <stdlib.h>

#include "broker/auth/admit.h"

START_TEST(test_token_bucket)
{
    struct token_bucket tb;
    token_bucket_init(&tb, 10, 3, 1000); /* 10/s, burst 3 */
    ck_assert(token_bucket_take(&tb, 1000));
    ck_assert(token_bucket_take(&tb, 1000));
    ck_assert(token_bucket_take(&tb, 1000));
    ck_assert(!token_bucket_take(&tb, 1000)); /* burst spent */
    ck_assert(!token_bucket_take(&tb, 1050)); /* half a token back */
    ck_assert(token_bucket_take(&tb, 1100));  /* one token after 100 ms */
    ck_assert(!token_bucket_take(&tb, 1100));
    /* A long pause refills only up to the burst. */
    ck_assert(token_bucket_take(&tb, 60000));
    ck_assert(token_bucket_take(&tb, 60000));
    ck_assert(token_bucket_take(&tb, 60000));
    ck_assert(!token_bucket_take(&tb, 60000));
    /* Time going backwards (never from a monotonic clock) adds nothing. */
    ck_assert(!token_bucket_take(&tb, 50000));
}
END_TEST

/* How long a throttled publisher waits: until one whole token is back, rounded up. */
START_TEST(test_token_bucket_wait)
{
    struct token_bucket tb;
    token_bucket_init(&tb, 10, 2, 1000); /* 10/s: a token every 100 ms */
    ck_assert_uint_eq(token_bucket_wait_ms(&tb, 1000), 0);
    ck_assert(token_bucket_take(&tb, 1000));
    ck_assert(token_bucket_take(&tb, 1000));
    uint64_t wait = token_bucket_wait_ms(&tb, 1000);
    ck_assert_uint_ge(wait, 100);
    ck_assert_uint_le(wait, 101);
    ck_assert(!token_bucket_take(&tb, 1000 + wait - 2)); /* not before */
    ck_assert(token_bucket_take(&tb, 1000 + wait));      /* there when the wait is over */
    ck_assert_uint_ge(token_bucket_wait_ms(&tb, 1000 + wait + 60), 1); /* 0.6 back: never 0 */
    struct token_bucket unlimited;
    token_bucket_init(&unlimited, 0, 0, 1000);
    ck_assert_uint_eq(token_bucket_wait_ms(&unlimited, 1000), 0);
}
END_TEST

START_TEST(test_unlimited_bucket)
{
    struct token_bucket tb;
    token_bucket_init(&tb, 0, 0, 0);
    for (int i = 0; i < 100000; i++)
        ck_assert(token_bucket_take(&tb, 0));
}
END_TEST

START_TEST(test_per_address_and_total)
{
    struct admit a;
    admit_init(&a, 0, 0, 3, 2, 0);
    ck_assert_int_eq(admit_enter(&a, "10.0.0.1", 0), ADMIT_OK);
    ck_assert_int_eq(admit_enter(&a, "10.0.0.1", 0), ADMIT_OK);
    ck_assert_int_eq(admit_enter(&a, "10.0.0.1", 0), ADMIT_PER_ADDR);
    ck_assert_int_eq(admit_enter(&a, "10.0.0.2", 0), ADMIT_OK);
    ck_assert_int_eq(admit_enter(&a, "10.0.0.3", 0), ADMIT_TOTAL);
    ck_assert_uint_eq(a.total, 3);
    ck_assert_uint_eq(a.rejected[ADMIT_PER_ADDR], 1);
    ck_assert_uint_eq(a.rejected[ADMIT_TOTAL], 1);
    admit_leave(&a, "10.0.0.1");
    ck_assert_int_eq(admit_enter(&a, "10.0.0.3", 0), ADMIT_OK);
    admit_leave(&a, "10.0.0.1");
    admit_leave(&a, "10.0.0.2");
    admit_leave(&a, "10.0.0.3");
    admit_leave(&a, "10.0.0.9"); /* never admitted: ignored */
    ck_assert_uint_eq(a.total, 0);
    ck_assert_uint_eq(a.per_addr.count, 0);
    ck_assert_str_eq(admit_limit_name(ADMIT_PER_ADDR), "limits.max_connections_per_address");
    admit_reset(&a);
}
END_TEST

START_TEST(test_rate)
{
    struct admit a;
    admit_init(&a, 100, 2, 0, 0, 0);
    ck_assert_int_eq(admit_enter(&a, "h", 0), ADMIT_OK);
    ck_assert_int_eq(admit_enter(&a, "h", 0), ADMIT_OK);
    ck_assert_int_eq(admit_enter(&a, "h", 0), ADMIT_RATE);
    ck_assert_uint_eq(a.total, 2); /* the refused one is not counted */
    ck_assert_int_eq(admit_enter(&a, "h", 10), ADMIT_OK);
    admit_reset(&a);
}
END_TEST

static Suite *admit_suite(void)
{
    Suite *s = suite_create("admit");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_token_bucket);
    tcase_add_test(tc, test_token_bucket_wait);
    tcase_add_test(tc, test_unlimited_bucket);
    tcase_add_test(tc, test_per_address_and_total);
    tcase_add_test(tc, test_rate);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(admit_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
