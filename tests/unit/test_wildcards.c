/*
 * test_wildcards.c - Check suite for the pure part of cluster/wildcards: Redis' glob matching,
 * which decides whether a published topic must also go out by classic PUBLISH in a Redis
 * Cluster. Checked against fixed cases, against a plain recursive reference on random inputs,
 * and against the globs bridge_pattern_glob() makes from STOMP wildcards (the registry holds
 * exactly those): a glob must match every channel its STOMP pattern matches.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "broker/core/destination.h"
#include "cluster/bridge.h"
#include "cluster/wildcards.h"
#include "guard.h"

static bool match(const char *glob, const char *s)
{
    struct guard g, h;
    size_t glen = strlen(glob), slen = strlen(s);
    const char *gc = (const char *)guard_copy(&g, glob, glen);
    const char *sc = (const char *)guard_copy(&h, s, slen);
    bool m = wildcards_glob_match(gc, glen, sc, slen);
    guard_release(&g);
    guard_release(&h);
    return m;
}

START_TEST(test_fixed_cases)
{
    ck_assert(match("*", ""));
    ck_assert(match("*", "anything"));
    ck_assert(match("a*", "abc"));
    ck_assert(!match("a*", "bac"));
    ck_assert(match("*c", "abc"));
    ck_assert(match("a*c*e", "abcde"));
    ck_assert(!match("a*c*e", "abcdf"));
    ck_assert(match("a?c", "abc"));
    ck_assert(!match("a?c", "ac"));
    ck_assert(match("a[bx]c", "abc"));
    ck_assert(!match("a[^b]c", "abc"));
    ck_assert(match("a[a-c]c", "abc"));
    ck_assert(match("a[c-a]c", "abc")); /* Redis swaps a reversed range */
    ck_assert(match("a\\*c", "a*c"));
    ck_assert(!match("a\\*c", "abc"));
    ck_assert(match("stompws:/topic/news.*", "stompws:/topic/news.sport.uk"));
    ck_assert(!match("stompws:/topic/news.*", "stompws:/topic/newsx"));
    ck_assert(match("stompws:/topic/a\\[1\\]*", "stompws:/topic/a[1].b"));
}
END_TEST

/* The textbook recursive matcher for * ? and \ (sets are left to the fixed cases). */
static bool reference(const char *g, size_t gl, const char *s, size_t sl)
{
    if (gl == 0)
        return sl == 0;
    if (g[0] == '*')
        return reference(g + 1, gl - 1, s, sl) || (sl > 0 && reference(g, gl, s + 1, sl - 1));
    if (sl == 0)
        return false;
    if (g[0] == '\\' && gl > 1)
        return g[1] == s[0] && reference(g + 2, gl - 2, s + 1, sl - 1);
    return (g[0] == '?' || g[0] == s[0]) && reference(g + 1, gl - 1, s + 1, sl - 1);
}

START_TEST(test_against_reference)
{
    static const char glob_alphabet[] = "ab*?\\";
    static const char text_alphabet[] = "ab*?";
    srand(17);
    for (int round = 0; round < 20000; round++) {
        char glob[9], text[9];
        size_t gl = (size_t)(rand() % 9), tl = (size_t)(rand() % 9);
        for (size_t i = 0; i < gl; i++)
            glob[i] = glob_alphabet[rand() % 5];
        for (size_t i = 0; i < tl; i++)
            text[i] = text_alphabet[rand() % 4];
        glob[gl] = text[tl] = '\0';
        ck_assert_msg(wildcards_glob_match(glob, gl, text, tl) == reference(glob, gl, text, tl),
                      "glob \"%s\" text \"%s\"", glob, text);
    }
}
END_TEST

START_TEST(test_stomp_globs_cover_their_patterns)
{
    static const char *patterns[] = {"/topic/news.*", "/topic/news.#", "/topic/*.price",
                                     "/topic/a.#.z", "/topic/[x].*"};
    static const char *names[] = {"/topic/news.uk", "/topic/news.uk.sport", "/topic/ibm.price",
                                  "/topic/a.b.c.z", "/topic/a.z",           "/topic/[x].y",
                                  "/topic/news",    "/topic/other.price.x"};
    for (size_t p = 0; p < sizeof(patterns) / sizeof(*patterns); p++) {
        size_t glob_len;
        char *glob = bridge_pattern_glob("stompws", patterns[p], strlen(patterns[p]), &glob_len);
        ck_assert_ptr_nonnull(glob);
        for (size_t n = 0; n < sizeof(names) / sizeof(*names); n++) {
            char channel[128];
            int len = snprintf(channel, sizeof(channel), "stompws:%s", names[n]);
            bool stomp =
                destination_matches(patterns[p], strlen(patterns[p]), names[n], strlen(names[n]));
            if (stomp)
                ck_assert_msg(wildcards_glob_match(glob, glob_len, channel, (size_t)len),
                              "%s (glob %s) misses %s", patterns[p], glob, names[n]);
        }
        free(glob);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wildcards");
    TCase *tc = tcase_create("wildcards");
    tcase_add_test(tc, test_fixed_cases);
    tcase_add_test(tc, test_against_reference);
    tcase_add_test(tc, test_stomp_globs_cover_their_patterns);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
