/*
 * Percent-decoding (broker/base/url.c): escapes in either case, '+' as a space only in query
 * values, every malformed escape refused, the output bound exact, and each input flush against
 * an unreadable page so that no decoder reads past its end.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "broker/base/url.h"
#include "tests/unit/guard.h"

static char out[64];

/* Decodes src from a guarded copy into out, with room for cap bytes. */
static long decode(const char *src, bool plus_is_space, size_t cap)
{
    struct guard g;
    const char *in = (const char *)guard_copy(&g, src, strlen(src));
    memset(out, 0x55, sizeof(out));
    long n = url_decode(in, strlen(src), plus_is_space, out, cap);
    guard_release(&g);
    return n;
}

static const struct decode_case {
    const char *src;
    bool plus_is_space;
    long want; /* length, or an enum url_decode_error */
    const char *decoded;
} cases[] = {
    {"", true, 0, ""},
    {"/topic/a", true, 8, "/topic/a"},
    {"%2Ftopic%2fa", true, 8, "/topic/a"},
    {"a+b", true, 3, "a b"},
    {"a+b", false, 3, "a+b"},
    {"%2B", true, 1, "+"},
    {"%00x", false, 2, "\0x"},
    {"%e2%82%ac", true, 3, "\xe2\x82\xac"},
    {"%", true, URL_BAD_ESCAPE, NULL},
    {"a%4", true, URL_BAD_ESCAPE, NULL},
    {"%4g", true, URL_BAD_ESCAPE, NULL},
    {"%g4", true, URL_BAD_ESCAPE, NULL},
    {"%%41", true, URL_BAD_ESCAPE, NULL},
    {"ok%zz", false, URL_BAD_ESCAPE, NULL},
};

START_TEST(test_cases)
{
    const struct decode_case *c = &cases[_i];
    long n = decode(c->src, c->plus_is_space, sizeof(out));
    ck_assert_msg(n == c->want, "\"%s\": %ld, want %ld", c->src, n, c->want);
    if (c->decoded != NULL)
        ck_assert_mem_eq(out, c->decoded, (size_t)n);
}
END_TEST

START_TEST(test_bound)
{
    ck_assert_int_eq(decode("abcd", true, 4), 4);
    ck_assert_int_eq(decode("abcde", true, 4), URL_TOO_LONG);
    ck_assert_int_eq((unsigned char)out[4], 0x55); /* nothing written past the room */
    ck_assert_int_eq(decode("%41%42%43%44", true, 4), 4);
    ck_assert_mem_eq(out, "ABCD", 4);
    ck_assert_int_eq(decode("%41%42%43%44%45", true, 4), URL_TOO_LONG);
    ck_assert_int_eq(decode("", true, 0), 0);
    ck_assert_int_eq(decode("a", true, 0), URL_TOO_LONG);
}
END_TEST

START_TEST(test_hex_value)
{
    const char *digits = "0123456789abcdef";
    for (int i = 0; i < 16; i++) {
        ck_assert_int_eq(url_hex_value(digits[i]), i);
        ck_assert_int_eq(url_hex_value((char)(digits[i] >= 'a' ? digits[i] - 32 : digits[i])), i);
    }
    const char *others = "gG/:@`\x7f \xff";
    for (const char *p = others; *p != '\0'; p++)
        ck_assert_int_eq(url_hex_value(*p), -1);
    ck_assert_int_eq(url_hex_value('\0'), -1);
}
END_TEST

static Suite *url_suite(void)
{
    Suite *s = suite_create("url");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_cases, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, test_bound);
    tcase_add_test(tc, test_hex_value);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(url_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
