/*
 * test_sentinel.c - Check suite for the pure part of cluster/sentinel: the sentinel address list
 * (cluster.redis_sentinel, --redis-sentinel). Each input, with its NUL, sits flush against an
 * unreadable page (guard.h), so reading past the terminator faults.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/sentinel.h"
#include "guard.h"

/* Parses text placed flush against the guard page; returns what sentinel_parse_addrs returned. */
static int parse_guarded(const char *text, struct sentinel_config *cfg, char *err, size_t len)
{
    struct guard g;
    const char *copy = (const char *)guard_copy(&g, text, strlen(text) + 1);
    int rc = sentinel_parse_addrs(copy, cfg, err, len);
    guard_release(&g);
    return rc;
}

static const struct {
    const char *text;
    size_t count;
    const char *host[3];
    unsigned short port[3];
} valid[] = {
    {"127.0.0.1:26379", 1, {"127.0.0.1"}, {26379}},
    {"a:1,b:2,c:65535", 3, {"a", "b", "c"}, {1, 2, 65535}},
    {" s1.example:26379 , s2.example:26380", 2, {"s1.example", "s2.example"}, {26379, 26380}},
    {"[::1]:26379,[fe80::1]:5", 2, {"::1", "fe80::1"}, {26379, 5}},
};

START_TEST(test_valid)
{
    struct sentinel_config cfg;
    char err[200] = "";
    ck_assert_int_eq(parse_guarded(valid[_i].text, &cfg, err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg.addr_count, valid[_i].count);
    for (size_t i = 0; i < valid[_i].count; i++) {
        ck_assert_str_eq(cfg.addrs[i].host, valid[_i].host[i]);
        ck_assert_uint_eq(cfg.addrs[i].port, valid[_i].port[i]);
    }
}
END_TEST

static const char *const invalid[] = {
    "",        ",",       "host", "host:", ":26379",   "host:0",     "host:65536", "host:123456",
    "host:+1", "host:1x", "a:1,", ",a:1",  "a:1,,b:2", "[::1:26379", "[]:1",       "host: 1",
};

START_TEST(test_invalid)
{
    struct sentinel_config cfg;
    char err[200] = "";
    ck_assert_int_eq(parse_guarded(invalid[_i], &cfg, err, sizeof(err)), -1);
    ck_assert_msg(err[0] != '\0', "\"%s\": no error message", invalid[_i]);
}
END_TEST

START_TEST(test_limits)
{
    struct sentinel_config cfg;
    char err[200];
    char text[32 * SENTINEL_MAX_ADDRS];
    size_t n = 0;
    for (int i = 0; i < SENTINEL_MAX_ADDRS; i++)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "%sh%d:%d", i ? "," : "", i, 100 + i);
    ck_assert_int_eq(parse_guarded(text, &cfg, err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg.addr_count, SENTINEL_MAX_ADDRS);
    snprintf(text + n, sizeof(text) - n, ",one:1");
    ck_assert_int_eq(parse_guarded(text, &cfg, err, sizeof(err)), -1);
    /* A host name one byte too long for the address. */
    char *longest = malloc(SENTINEL_HOST_MAX + 8);
    ck_assert_ptr_nonnull(longest);
    memset(longest, 'h', SENTINEL_HOST_MAX);
    strcpy(longest + SENTINEL_HOST_MAX, ":1");
    ck_assert_int_eq(parse_guarded(longest, &cfg, err, sizeof(err)), -1);
    longest[SENTINEL_HOST_MAX - 1] = ':';
    longest[SENTINEL_HOST_MAX] = '1';
    longest[SENTINEL_HOST_MAX + 1] = '\0';
    ck_assert_int_eq(parse_guarded(longest, &cfg, err, sizeof(err)), 0);
    free(longest);
}
END_TEST

static Suite *sentinel_suite(void)
{
    Suite *s = suite_create("sentinel");
    TCase *tc = tcase_create("addresses");
    tcase_add_loop_test(tc, test_valid, 0, sizeof(valid) / sizeof(valid[0]));
    tcase_add_loop_test(tc, test_invalid, 0, sizeof(invalid) / sizeof(invalid[0]));
    tcase_add_test(tc, test_limits);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sentinel_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
