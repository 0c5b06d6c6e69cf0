/*
 * GET /sse requests (broker/session/sse_request.c): the query parser (destinations decoded,
 * format, x-stream-offset, access_token, the errors), each input flush against an unreadable
 * page; and the resume token: round trip, the least recently used mark giving way, the size
 * bound, and what a bad Last-Event-ID is.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/session/sse_request.h"
#include "tests/unit/guard.h"

static struct sse_request req; /* large: not on the stack */

/* Parses query from a guarded copy. */
static int parse(const char *query)
{
    struct guard g;
    const char *q = (const char *)guard_copy(&g, query, strlen(query));
    int rc = sse_request_parse(&req, q, strlen(query));
    if (rc == 0 && req.access_token.ptr != NULL) /* it points into the query: copy it out */
        req.access_token.ptr = strndup(req.access_token.ptr, req.access_token.len);
    guard_release(&g);
    return rc;
}

static bool slice_is(struct sse_slice s, const char *want)
{
    return s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

static const struct {
    const char *query;
    int rc;
} error_cases[] = {
    {"", SSE_REQUEST_NO_DESTINATION},
    {"format=raw", SSE_REQUEST_NO_DESTINATION},
    {"destination=", SSE_REQUEST_BAD_DESTINATION},
    {"destination=%0a", SSE_REQUEST_BAD_DESTINATION},
    {"destination=%2", SSE_REQUEST_BAD_ESCAPE},
    {"destination=%", SSE_REQUEST_BAD_ESCAPE},
    {"destination=%zz", SSE_REQUEST_BAD_ESCAPE},
    {"destination=/topic/a&format=xml", SSE_REQUEST_BAD_FORMAT},
};

START_TEST(test_errors)
{
    ck_assert_int_eq(parse(error_cases[_i].query), error_cases[_i].rc);
    ck_assert_str_ne(sse_request_error_message(error_cases[_i].rc), "ok");
}
END_TEST

START_TEST(test_destinations_decoded)
{
    ck_assert_int_eq(parse("destination=/topic/a&x=1&destination=%2Ftopic%2Fb.*&destination=/"
                           "topic/c+d&format=raw&x-stream-offset=offset%3D7&access_token=t.k-n"),
                     0);
    ck_assert_uint_eq(req.destination_count, 3);
    ck_assert(slice_is(req.destinations[0], "/topic/a"));
    ck_assert(slice_is(req.destinations[1], "/topic/b.*"));
    ck_assert(slice_is(req.destinations[2], "/topic/c d"));
    ck_assert_int_eq(req.format, SSE_FORMAT_RAW);
    ck_assert(slice_is(req.stream_offset, "offset=7"));
    ck_assert(slice_is(req.access_token, "t.k-n"));
    free((char *)req.access_token.ptr);
}
END_TEST

START_TEST(test_bounds)
{
    char q[8192] = "";
    for (int i = 0; i < SSE_MAX_DESTINATIONS; i++)
        strcat(q, "destination=/topic/x&");
    ck_assert_int_eq(parse(q), 0);
    strcat(q, "destination=/topic/one-too-many");
    ck_assert_int_eq(parse(q), SSE_REQUEST_TOO_MANY);
    strcpy(q, "destination=/topic/");
    memset(q + strlen(q), 'a', SSE_DESTINATION_MAX);
    ck_assert_int_eq(parse(q), SSE_REQUEST_TOO_LONG);
}
END_TEST

static struct sse_token token, back;

START_TEST(test_token_round_trip)
{
    memset(&token, 0, sizeof(token));
    token.start_s = 1796485193;
    sse_token_note(&token, "/topic/a", 8, 3, 0x156cf069);
    sse_token_note(&token, "/topic/b c", 10, 1, 0xffffffff);
    sse_token_note(&token, "/topic/a", 8, 4, 0x156cf069); /* updated: now the most recent */
    char text[SSE_TOKEN_MAX + 1];
    size_t n = sse_token_encode(&token, text, sizeof(text));
    ck_assert_uint_gt(n, 0);
    ck_assert_int_eq(sse_token_decode(&back, text, n), 0);
    ck_assert_uint_eq(back.start_s, 1796485193);
    ck_assert_uint_eq(back.count, 2);
    ck_assert_str_eq(back.marks[0].destination, "/topic/a"); /* most recent first */
    ck_assert_uint_eq(back.marks[0].offset, 4);
    ck_assert_uint_eq(back.marks[1].epoch, 0xffffffff);
    ck_assert(sse_token_seen(&back, "/topic/a", 8, 4, 0x156cf069));
    ck_assert(!sse_token_seen(&back, "/topic/a", 8, 5, 0x156cf069));
    ck_assert(!sse_token_seen(&back, "/topic/a", 8, 1, 0x1)); /* another epoch: new */
    ck_assert(!sse_token_seen(&back, "/topic/z", 8, 1, 0x156cf069));
}
END_TEST

START_TEST(test_token_evicts_least_recent_and_stays_bounded)
{
    memset(&token, 0, sizeof(token));
    char name[SSE_DESTINATION_MAX];
    memset(name, 'n', sizeof(name));
    memcpy(name, "/topic/", 7);
    for (unsigned i = 0; i < SSE_MAX_MARKS + 5; i++) {
        snprintf(name + 7, 8, "%05u", i); /* long names: the encoding fills up first */
        name[12] = 'n';
        ck_assert_ptr_nonnull(sse_token_note(&token, name, sizeof(name), i + 1, 1));
    }
    ck_assert_uint_eq(token.count, SSE_MAX_MARKS);
    snprintf(name + 7, 8, "%05u", 0);
    name[12] = 'n';
    ck_assert_ptr_null(sse_token_find(&token, name, sizeof(name))); /* the oldest went */
    char text[SSE_TOKEN_MAX + 1];
    size_t n = sse_token_encode(&token, text, sizeof(text));
    ck_assert_uint_le(n, SSE_TOKEN_MAX);
    ck_assert_int_eq(sse_token_decode(&back, text, n), 0);
    ck_assert_uint_ge(back.count, 1); /* the most recent ones that fit */
    ck_assert_uint_eq(back.marks[0].offset, SSE_MAX_MARKS + 5);
}
END_TEST

START_TEST(test_bad_tokens)
{
    const char *bad[] = {"", "!!!!", "MA", "MiAxCg" /* "2 1\n": unknown version */,
                         "MSAxCjEgeiAvdG9waWMvYQo" /* epoch "z" */};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_int_eq(sse_token_decode(&back, bad[i], strlen(bad[i])), SSE_REQUEST_BAD_TOKEN);
    ck_assert_int_eq(sse_token_decode(&back, "MSAxCg", 6), 0); /* "1 1\n": no mark yet */
    ck_assert_uint_eq(back.count, 0);
}
END_TEST

static Suite *sse_request_suite(void)
{
    Suite *s = suite_create("sse_request");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_errors, 0, (int)(sizeof(error_cases) / sizeof(error_cases[0])));
    tcase_add_test(tc, test_destinations_decoded);
    tcase_add_test(tc, test_bounds);
    tcase_add_test(tc, test_token_round_trip);
    tcase_add_test(tc, test_token_evicts_least_recent_and_stays_bounded);
    tcase_add_test(tc, test_bad_tokens);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sse_request_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
