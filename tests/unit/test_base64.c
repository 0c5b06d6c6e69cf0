/*
 * base64 (broker/base/base64.c): RFC 4648's test vectors without padding in both alphabets,
 * round trips of every length up to 64, and the strict decoder's refusals (padding, a length no
 * encoding has, stray bits, a character of the other alphabet, more than the room given).
 */
#include <check.h>
#include <string.h>

#include "broker/base/base64.h"

static const struct {
    const char *raw, *std;
} vectors[] = {{"", ""},           {"f", "Zg"},          {"fo", "Zm8"},         {"foo", "Zm9v"},
               {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}};

START_TEST(test_rfc4648_vectors)
{
    for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++) {
        char enc[16];
        size_t len = strlen(vectors[i].raw);
        ck_assert_uint_eq(base64_encode((const unsigned char *)vectors[i].raw, len, false, enc),
                          strlen(vectors[i].std));
        ck_assert_str_eq(enc, vectors[i].std);
        unsigned char dec[16];
        ck_assert_int_eq(base64_decode(enc, strlen(enc), false, dec, sizeof(dec)), (long)len);
        ck_assert(memcmp(dec, vectors[i].raw, len) == 0);
    }
}
END_TEST

START_TEST(test_round_trip_both_alphabets)
{
    unsigned char raw[64], dec[64];
    char enc[100];
    for (size_t i = 0; i < sizeof(raw); i++)
        raw[i] = (unsigned char)(i * 37 + 251); /* every value of the last 6 bits shows up */
    for (int url = 0; url <= 1; url++)
        for (size_t len = 0; len <= sizeof(raw); len++) {
            size_t n = base64_encode(raw, len, url, enc);
            ck_assert_uint_eq(n, (len * 4 + 2) / 3);
            ck_assert_uint_eq(strlen(enc), n);
            ck_assert(strpbrk(enc, url ? "+/=" : "-_=") == NULL);
            ck_assert_int_eq(base64_decode(enc, n, url, dec, len), (long)len);
            ck_assert(memcmp(dec, raw, len) == 0);
        }
}
END_TEST

START_TEST(test_refusals)
{
    unsigned char out[16];
    ck_assert_int_eq(base64_decode("Zg==", 4, false, out, sizeof(out)), -1);  /* padding */
    ck_assert_int_eq(base64_decode("Zm9vY", 5, false, out, sizeof(out)), -1); /* length */
    ck_assert_int_eq(base64_decode("Zh", 2, false, out, sizeof(out)), -1);    /* stray bits */
    ck_assert_int_eq(base64_decode("-_", 2, false, out, sizeof(out)), -1);    /* url in std */
    ck_assert_int_eq(base64_decode("+/", 2, true, out, sizeof(out)), -1);     /* std in url */
    ck_assert_int_eq(base64_decode("Zm9v", 4, false, out, 2), -1);            /* no room */
    ck_assert_int_eq(base64_decode("Zm9v", 4, false, out, 3), 3);
    ck_assert_int_eq(base64_value('\0', false), -1);
    ck_assert_int_eq(base64_value('_', true), 63);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("base64");
    TCase *tc = tcase_create("base64");
    tcase_add_test(tc, test_rfc4648_vectors);
    tcase_add_test(tc, test_round_trip_both_alphabets);
    tcase_add_test(tc, test_refusals);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
