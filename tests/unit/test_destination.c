/* User destinations (destination.h): the route form a publisher addresses, the subscriber's own
 * form and its rewriting with a login, and the bounds of logins and names. Table-driven; every
 * input is also checked against an unreadable page right after it (guard.h), so a read past its
 * end crashes the test. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "broker/core/destination.h"
#include "guard.h"

/* ---- the route: /user/LOGIN/(queue|topic)/NAME ---- */

static const struct {
    const char *dest;
    int rc;
    const char *login; /* expected parts when rc == 0 */
    const char *kind;
} parse_cases[] = {
    {"/user/alice/queue/updates", 0, "alice", "queue/updates"},
    {"/user/alice/topic/news", 0, "alice", "topic/news"},
    {"/user/j.doe/queue/a.b", 0, "j.doe", "queue/a.b"},
    {"/user/alice/queue/a/b", 0, "alice", "queue/a/b"}, /* '/' in a name is literal */
    {"/user/alice/topic/*", 0, "alice", "topic/*"},     /* and so are wildcards */
    {"/user/\xc3\xa9lise/queue/x", 0, "\xc3\xa9lise", "queue/x"},
    {"/user/queue/queue/x", 0, "queue", "queue/x"}, /* a user called "queue" */
    {"/user/alice/queue/", DEST_USER_ERR_NAME, NULL, NULL},
    {"/user/alice/queue/a\nb", DEST_USER_ERR_NAME, NULL, NULL},
    {"/user/alice/queue/\xff", DEST_USER_ERR_NAME, NULL, NULL},
    {"/user/alice/queue", DEST_USER_ERR_FORM, NULL, NULL},
    {"/user/alice/queues/x", DEST_USER_ERR_FORM, NULL, NULL},
    {"/user/alice/Queue/x", DEST_USER_ERR_FORM, NULL, NULL},
    {"/user/alice/", DEST_USER_ERR_FORM, NULL, NULL},
    {"/user/alice", DEST_USER_ERR_FORM, NULL, NULL},
    {"/user/", DEST_USER_ERR_FORM, NULL, NULL},
    {"/user/queue/x", DEST_USER_ERR_FORM, NULL, NULL}, /* the subscriber's form, not a route */
    {"/users/alice/queue/x", DEST_USER_ERR_FORM, NULL, NULL},
    {"/topic/alice/queue/x", DEST_USER_ERR_FORM, NULL, NULL},
    {"/user//queue/x", DEST_USER_ERR_LOGIN, NULL, NULL},
    {"/user/al\tice/queue/x", DEST_USER_ERR_LOGIN, NULL, NULL},
    {"/user/\xc3/queue/x", DEST_USER_ERR_LOGIN, NULL, NULL},
};

START_TEST(test_parse_route)
{
    const char *text = parse_cases[_i].dest;
    size_t len = strlen(text);
    struct guard g;
    const char *p = (const char *)guard_copy(&g, text, len);
    struct destination_user parts;
    int rc = destination_user_parse(p, len, &parts);
    ck_assert_msg(rc == parse_cases[_i].rc, "%s: %d", text, rc);
    if (rc == 0) {
        ck_assert_uint_eq(parts.login_len, strlen(parse_cases[_i].login));
        ck_assert(memcmp(parts.login, parse_cases[_i].login, parts.login_len) == 0);
        ck_assert_uint_eq(parts.kind_len, strlen(parse_cases[_i].kind));
        ck_assert(memcmp(parts.kind, parse_cases[_i].kind, parts.kind_len) == 0);
        ck_assert_int_eq(destination_user_parse(p, len, NULL), 0);
    }
    guard_release(&g);
}
END_TEST

START_TEST(test_login_bounds)
{
    char login[DESTINATION_USER_LOGIN_MAX + 1];
    memset(login, 'a', sizeof(login));
    ck_assert(destination_user_login_valid(login, DESTINATION_USER_LOGIN_MAX));
    ck_assert(!destination_user_login_valid(login, DESTINATION_USER_LOGIN_MAX + 1));
    ck_assert(!destination_user_login_valid(login, 0));
    ck_assert(!destination_user_login_valid("a/b", 3));
    ck_assert(!destination_user_login_valid("a\x7f", 2));
    ck_assert(!destination_user_login_valid("a\0b", 3));
    ck_assert(destination_user_login_valid("dashboard-42", 12));
}
END_TEST

/* ---- the subscriber's own form, rewritten with its login ---- */

static const struct {
    const char *dest, *login;
    int rc;
    const char *route;
} route_cases[] = {
    {"/user/queue/updates", "alice", 25, "/user/alice/queue/updates"},
    {"/user/topic/news", "bob", 20, "/user/bob/topic/news"},
    {"/user/queue/a/b", "j.doe", 21, "/user/j.doe/queue/a/b"},
    {"/user/queue/x", "queue", 19, "/user/queue/queue/x"},
    {"/user/queue/", "alice", DEST_USER_ERR_NAME, NULL},
    {"/user/topic/\x01", "alice", DEST_USER_ERR_NAME, NULL},
    {"/user/queue", "alice", DEST_USER_ERR_FORM, NULL},
    {"/user/alice/queue/x", "alice", DEST_USER_ERR_FORM, NULL}, /* already a route */
    {"/user/stream/x", "alice", DEST_USER_ERR_FORM, NULL},
    {"/user/queue/x", "a/b", DEST_USER_ERR_LOGIN, NULL},
    {"/user/queue/x", "", DEST_USER_ERR_LOGIN, NULL},
};

START_TEST(test_route_of_own_form)
{
    const char *text = route_cases[_i].dest, *login = route_cases[_i].login;
    size_t len = strlen(text);
    struct guard g;
    const char *p = (const char *)guard_copy(&g, text, len);
    char out[64];
    memset(out, 'Z', sizeof(out));
    int rc = destination_user_route(p, len, login, strlen(login), out, sizeof(out));
    ck_assert_msg(rc == route_cases[_i].rc, "%s for %s: %d", text, login, rc);
    if (rc > 0) {
        ck_assert_str_eq(out, route_cases[_i].route);
        ck_assert_int_eq(destination_user_parse(out, (size_t)rc, NULL), 0);
        ck_assert_int_eq(destination_kind(out, (size_t)rc), DEST_USER);
        ck_assert(!destination_is_wildcard(out, (size_t)rc));
    }
    guard_release(&g);
}
END_TEST

START_TEST(test_route_needs_room)
{
    const char *own = "/user/queue/updates"; /* -> "/user/alice/queue/updates": 25 bytes */
    char out[26];
    ck_assert_int_eq(destination_user_route(own, strlen(own), "alice", 5, out, 25),
                     DEST_USER_ERR_SPACE);
    ck_assert_int_eq(destination_user_route(own, strlen(own), "alice", 5, out, 26), 25);
    ck_assert_str_eq(out, "/user/alice/queue/updates");
}
END_TEST

START_TEST(test_kinds_and_own_form)
{
    ck_assert_int_eq(destination_kind("/user/a/queue/x", 15), DEST_USER);
    ck_assert_int_eq(destination_kind("/user/x", 7), DEST_USER);
    ck_assert_int_eq(destination_kind("/user/", 6), DEST_UNKNOWN);
    ck_assert(destination_user_is_own("/user/queue/x", 13));
    ck_assert(destination_user_is_own("/user/topic/", 12));
    ck_assert(!destination_user_is_own("/user/queue", 11));
    ck_assert(!destination_user_is_own("/user/alice/queue/x", 19));
    /* /topic/ patterns never match a /user/ name. */
    ck_assert(!destination_matches("/topic/#", 8, "/user/a/topic/x", 15));
}
END_TEST

static Suite *destination_suite(void)
{
    Suite *s = suite_create("destination");
    TCase *tc = tcase_create("user");
    tcase_add_loop_test(tc, test_parse_route, 0, sizeof(parse_cases) / sizeof(parse_cases[0]));
    tcase_add_test(tc, test_login_bounds);
    tcase_add_loop_test(tc, test_route_of_own_form, 0,
                        sizeof(route_cases) / sizeof(route_cases[0]));
    tcase_add_test(tc, test_route_needs_room);
    tcase_add_test(tc, test_kinds_and_own_form);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(destination_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
