/* Presence (presence.h, presence_query.h): which names the patterns track, the users table with
 * its join and leave edges and sequence numbers, the bounded sorted user list, and the query of
 * GET /api/presence (table-driven; each query sits against an unreadable page, guard.h). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "broker/base/config.h"
#include "broker/core/presence.h"
#include "broker/http/presence_query.h"
#include "guard.h"

static struct presence *make(size_t max_users, const char *const *patterns, size_t count)
{
    static struct config cfg;
    config_defaults(&cfg);
    char err[256];
    for (size_t i = 0; i < count; i++)
        ck_assert_int_eq(config_set(&cfg, "presence", "pattern", patterns[i], err, sizeof(err)), 0);
    cfg.presence_max_users = max_users;
    struct presence *p = presence_new(&cfg, false);
    ck_assert_ptr_nonnull(p);
    return p;
}

#define ADD(p, d, u, ch)    presence_table_add(p, d, strlen(d), u, strlen(u), ch)
#define REMOVE(p, d, u, ch) presence_table_remove(p, d, strlen(d), u, strlen(u), ch)

START_TEST(test_tracks)
{
    static const char *const patterns[] = {"/topic/room.*", "/topic/lobby"};
    struct presence *p = make(10, patterns, 2);
    ck_assert(presence_tracks(p, "/topic/room.1", 13));
    ck_assert(presence_tracks(p, "/topic/lobby", 12));
    ck_assert(!presence_tracks(p, "/topic/room.1.x", 15));
    ck_assert(!presence_tracks(p, "/topic/room.*", 13)); /* a pattern is never present anywhere */
    ck_assert(!presence_tracks(p, "/queue/lobby", 12));
    ck_assert(!presence_tracks(p, "/user/a/topic/lobby", 19));
    ck_assert(!presence_tracks(NULL, "/topic/lobby", 12)); /* presence off */
    presence_free(p);
}
END_TEST

START_TEST(test_config_refuses_non_topic_patterns)
{
    struct config cfg;
    config_defaults(&cfg);
    char err[256];
    ck_assert_int_eq(config_set(&cfg, "presence", "pattern", "/queue/a", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "not a /topic/ destination"));
    ck_assert_int_eq(config_set(&cfg, "presence", "pattern", "/topic/", err, sizeof(err)), -1);
    ck_assert_uint_eq(cfg.presence_count, 0);
    ck_assert_uint_eq(cfg.presence_max_users, 100);
    ck_assert_uint_eq(cfg.presence_ttl_s, 30);
    ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), 0);
    ck_assert_int_eq(config_set(&cfg, "presence", "ttl_s", "0", err, sizeof(err)), 0);
    ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "presence.ttl_s (0) must be from 1 to 3600"));
}
END_TEST

START_TEST(test_join_once_leave_once)
{
    static const char *const patterns[] = {"/topic/#"};
    struct presence *p = make(10, patterns, 1);
    struct presence_change ch;
    ck_assert_int_eq(ADD(p, "/topic/a", "alice", &ch), 0);
    ck_assert_int_eq(ch.edge, PRESENCE_JOIN);
    ck_assert_uint_eq(ch.count, 1);
    ck_assert_uint_eq(ch.seq, 1);
    ck_assert_int_eq(ADD(p, "/topic/a", "alice", &ch), 0); /* a second session: no edge */
    ck_assert_int_eq(ch.edge, PRESENCE_SAME);
    ck_assert_uint_eq(ch.seq, 0);
    ck_assert_int_eq(ADD(p, "/topic/a", "bob", &ch), 0);
    ck_assert_int_eq(ch.edge, PRESENCE_JOIN);
    ck_assert_uint_eq(ch.count, 2);
    ck_assert_uint_eq(ch.seq, 2);
    ck_assert_int_eq(ADD(p, "/topic/b", "alice", &ch), 0); /* one sequence for every name */
    ck_assert_uint_eq(ch.seq, 3);
    ck_assert_uint_eq(ch.count, 1);

    REMOVE(p, "/topic/a", "alice", &ch);
    ck_assert_int_eq(ch.edge, PRESENCE_SAME);
    ck_assert_uint_eq(ch.count, 2);
    REMOVE(p, "/topic/a", "alice", &ch);
    ck_assert_int_eq(ch.edge, PRESENCE_LEAVE);
    ck_assert_uint_eq(ch.count, 1);
    ck_assert_uint_eq(ch.seq, 4);
    REMOVE(p, "/topic/a", "alice", &ch); /* not counted any more: nothing */
    ck_assert_int_eq(ch.edge, PRESENCE_SAME);
    REMOVE(p, "/topic/zzz", "carol", &ch);
    ck_assert_int_eq(ch.edge, PRESENCE_SAME);
    REMOVE(p, "/topic/a", "bob", &ch);
    ck_assert_int_eq(ch.edge, PRESENCE_LEAVE);
    ck_assert_uint_eq(ch.count, 0);
    ck_assert_uint_eq(presence_table_count(p, "/topic/a", 8), 0);
    ck_assert_uint_eq(presence_table_count(p, "/topic/b", 8), 1);
    presence_free(p); /* frees /topic/b's entry: no leak under ASan */
}
END_TEST

START_TEST(test_users_sorted_and_bounded)
{
    static const char *const patterns[] = {"/topic/#"};
    struct presence *p = make(3, patterns, 1);
    static const char *const names[] = {"mallory", "bob", "zed", "alice", "carol", "b", "\xc3\xa9"};
    struct presence_change ch;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        ck_assert_int_eq(ADD(p, "/topic/r", names[i], &ch), 0);
    const char *out[3];
    uint64_t seq = 0;
    ck_assert_uint_eq(presence_table_users(p, "/topic/r", 8, out, 3, &seq), 3);
    ck_assert_str_eq(out[0], "alice");
    ck_assert_str_eq(out[1], "b");
    ck_assert_str_eq(out[2], "bob");
    ck_assert_uint_eq(seq, 7);
    const char *all[10];
    ck_assert_uint_eq(presence_table_users(p, "/topic/r", 8, all, 10, &seq), 7);
    for (size_t i = 1; i < 7; i++)
        ck_assert_int_lt(strcmp(all[i - 1], all[i]), 0);
    ck_assert_str_eq(all[6], "\xc3\xa9"); /* byte order: UTF-8 after ASCII */
    ck_assert_uint_eq(presence_table_users(p, "/topic/none", 11, all, 10, &seq), 0);
    ck_assert_uint_eq(presence_table_users(p, "/topic/r", 8, all, 0, &seq), 0);
    presence_free(p);
}
END_TEST

/* ---- GET /api/presence?destination=... ---- */

static const struct {
    const char *query;
    long rc; /* the length, or the error */
    const char *dest;
} query_cases[] = {
    {"destination=/topic/a", 8, "/topic/a"},
    {"destination=%2Ftopic%2fa", 8, "/topic/a"},
    {"x=1&destination=/topic/a+b&y", 10, "/topic/a b"},
    {"destinations=/topic/a&destination=/topic/b", 8, "/topic/b"},
    {"destination=/topic/%C3%A9", 9, "/topic/\xc3\xa9"},
    {"", PRESENCE_QUERY_MISSING, NULL},
    {"destination", PRESENCE_QUERY_MISSING, NULL},
    {"destination=", PRESENCE_QUERY_MISSING, NULL},
    {"other=/topic/a", PRESENCE_QUERY_MISSING, NULL},
    {"destination=/topic/a&destination=/topic/a", PRESENCE_QUERY_REPEATED, NULL},
    {"destination=/topic/a%", PRESENCE_QUERY_BAD_ESCAPE, NULL},
    {"destination=/topic/a%4", PRESENCE_QUERY_BAD_ESCAPE, NULL},
    {"destination=/topic/a%g0", PRESENCE_QUERY_BAD_ESCAPE, NULL},
    {"destination=/topic/abcdefghijklmnop", PRESENCE_QUERY_TOO_LONG, NULL},
    {"destination=/topic/a%00", PRESENCE_QUERY_CONTROL, NULL},
    {"destination=/topic/a%0A", PRESENCE_QUERY_CONTROL, NULL},
    {"destination=/topic/%FF", PRESENCE_QUERY_CONTROL, NULL},
    {"destination=/queue/a", PRESENCE_QUERY_NOT_TOPIC, NULL},
    {"destination=/topic/", PRESENCE_QUERY_NOT_TOPIC, NULL},
    {"destination=/presence/a", PRESENCE_QUERY_NOT_TOPIC, NULL},
    {"destination=/topic/a.*", PRESENCE_QUERY_WILDCARD, NULL},
    {"destination=/topic/%23", PRESENCE_QUERY_WILDCARD, NULL},
};

START_TEST(test_query)
{
    struct guard g;
    size_t len = strlen(query_cases[_i].query);
    const char *q = (const char *)guard_copy(&g, query_cases[_i].query, len);
    char out[16 + 1];
    long rc = presence_query_destination(q, len, out, 16);
    ck_assert_msg(rc == query_cases[_i].rc, "%s: %ld", query_cases[_i].query, rc);
    if (rc >= 0)
        ck_assert_str_eq(out, query_cases[_i].dest);
    else
        ck_assert_str_ne(presence_query_error_message(rc), "ok");
    guard_release(&g);
}
END_TEST

static Suite *presence_suite(void)
{
    Suite *s = suite_create("presence");
    TCase *tc = tcase_create("table");
    tcase_add_test(tc, test_tracks);
    tcase_add_test(tc, test_config_refuses_non_topic_patterns);
    tcase_add_test(tc, test_join_once_leave_once);
    tcase_add_test(tc, test_users_sorted_and_bounded);
    suite_add_tcase(s, tc);
    TCase *query = tcase_create("query");
    tcase_add_loop_test(query, test_query, 0, sizeof(query_cases) / sizeof(query_cases[0]));
    suite_add_tcase(s, query);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(presence_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
