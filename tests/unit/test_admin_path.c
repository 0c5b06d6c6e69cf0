/*
 * The admin API's request line (broker/http/admin_path.c): routes and methods, the path
 * parameter and query filter decoded, every error, each input flush against an unreadable page;
 * and the connection id's form, both ways.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/http/admin_path.h"
#include "tests/unit/guard.h"

static struct admin_request_line line;

/* Parses "METHOD", path and query (NULL: no '?') each from a guarded copy. */
static int parse(const char *method, const char *path, const char *query)
{
    struct guard gm, gp, gq;
    const char *m = (const char *)guard_copy(&gm, method, strlen(method));
    const char *p = (const char *)guard_copy(&gp, path, strlen(path));
    const char *q = query != NULL ? (const char *)guard_copy(&gq, query, strlen(query)) : NULL;
    int rc = admin_path_parse(m, strlen(method), p, strlen(path), q,
                              query != NULL ? strlen(query) : 0, &line);
    guard_release(&gm);
    guard_release(&gp);
    if (query != NULL)
        guard_release(&gq);
    return rc;
}

static const struct {
    const char *method, *path, *query;
    int rc;
    enum admin_route route;
    const char *arg, *filter;
} cases[] = {
    {"GET", "/api/connections", NULL, 0, ADMIN_LIST_CONNECTIONS, "", NULL},
    {"GET", "/api/connections", "", 0, ADMIN_LIST_CONNECTIONS, "", NULL},
    {"GET", "/api/connections", "user=al+ice%21&", 0, ADMIN_LIST_CONNECTIONS, "", "al ice!"},
    {"GET", "/api/destinations", "prefix=%2Ftopic%2F", 0, ADMIN_LIST_DESTINATIONS, "", "/topic/"},
    {"GET", "/api/destinations", "prefix=", 0, ADMIN_LIST_DESTINATIONS, "", ""},
    {"GET", "/api/destinations", "prefix", 0, ADMIN_LIST_DESTINATIONS, "", ""},
    {"DELETE", "/api/connections/n1.2-17", NULL, 0, ADMIN_KICK_CONNECTION, "n1.2-17", NULL},
    {"DELETE", "/api/connections/a%2Db-1", NULL, 0, ADMIN_KICK_CONNECTION, "a-b-1", NULL},
    {"POST", "/api/users/j.doe/disconnect", NULL, 0, ADMIN_KICK_USER, "j.doe", NULL},
    {"POST", "/api/users/a+b%20c/disconnect", NULL, 0, ADMIN_KICK_USER, "a+b c", NULL},
    {"GET", "/api/connections", "user=", ADMIN_PATH_BAD_QUERY, ADMIN_LIST_CONNECTIONS, "", NULL},
    {"GET", "/api/connections", "user=a&user=a", ADMIN_PATH_BAD_QUERY, ADMIN_LIST_CONNECTIONS, "",
     NULL},
    {"GET", "/api/connections", "users=a", ADMIN_PATH_BAD_QUERY, ADMIN_LIST_CONNECTIONS, "", NULL},
    {"GET", "/api/connections", "user=%4", ADMIN_PATH_BAD_QUERY, ADMIN_LIST_CONNECTIONS, "", NULL},
    {"GET", "/api/connections", "user=%7f", ADMIN_PATH_BAD_QUERY, ADMIN_LIST_CONNECTIONS, "", NULL},
    {"GET", "/api/destinations", "user=a", ADMIN_PATH_BAD_QUERY, ADMIN_LIST_DESTINATIONS, "", NULL},
    {"DELETE", "/api/connections/x-1", "a=b", ADMIN_PATH_BAD_QUERY, ADMIN_KICK_CONNECTION, "x-1",
     NULL},
    {"DELETE", "/api/connections/", NULL, ADMIN_PATH_BAD_ARG, ADMIN_KICK_CONNECTION, "", NULL},
    {"DELETE", "/api/connections/%2F", NULL, ADMIN_PATH_BAD_ARG, ADMIN_KICK_CONNECTION, "", NULL},
    {"DELETE", "/api/connections/a%00-1", NULL, ADMIN_PATH_BAD_ARG, ADMIN_KICK_CONNECTION, "",
     NULL},
    {"DELETE", "/api/connections/a/b", NULL, ADMIN_PATH_NOT_FOUND, ADMIN_KICK_CONNECTION, "", NULL},
    {"POST", "/api/users//disconnect", NULL, ADMIN_PATH_NOT_FOUND, 0, "", NULL},
    {"POST", "/api/users/a/b/disconnect", NULL, ADMIN_PATH_NOT_FOUND, 0, "", NULL},
    {"POST", "/api/users/a", NULL, ADMIN_PATH_NOT_FOUND, 0, "", NULL},
    {"POST", "/api/users", NULL, ADMIN_PATH_NOT_FOUND, 0, "", NULL},
    {"GET", "/api/connectionsx", NULL, ADMIN_PATH_NOT_FOUND, 0, "", NULL},
    {"POST", "/api/connections", NULL, ADMIN_PATH_BAD_METHOD, ADMIN_LIST_CONNECTIONS, "", NULL},
    {"get", "/api/destinations", NULL, ADMIN_PATH_BAD_METHOD, ADMIN_LIST_DESTINATIONS, "", NULL},
    {"GET", "/api/connections/x-1", NULL, ADMIN_PATH_BAD_METHOD, ADMIN_KICK_CONNECTION, "", NULL},
    {"DELETE", "/api/users/a/disconnect", NULL, ADMIN_PATH_BAD_METHOD, ADMIN_KICK_USER, "", NULL},
};

START_TEST(test_cases)
{
    int rc = parse(cases[_i].method, cases[_i].path, cases[_i].query);
    ck_assert_int_eq(rc, cases[_i].rc);
    ck_assert_int_eq(line.route, cases[_i].route);
    if (rc != 0) {
        ck_assert_ptr_nonnull(line.error);
        if (rc == ADMIN_PATH_BAD_METHOD)
            ck_assert_ptr_nonnull(line.allow);
        return;
    }
    ck_assert_str_eq(line.arg, cases[_i].arg);
    ck_assert_uint_eq(line.arg_len, strlen(cases[_i].arg));
    ck_assert_int_eq(line.has_filter, cases[_i].filter != NULL);
    if (cases[_i].filter != NULL) {
        ck_assert_str_eq(line.filter, cases[_i].filter);
        ck_assert_uint_eq(line.filter_len, strlen(cases[_i].filter));
    }
}
END_TEST

START_TEST(test_claims)
{
    const char *mine[] = {"/api/connections", "/api/connections/x",      "/api/destinations",
                          "/api/users",       "/api/users/a/disconnect", "/api/destinations/"};
    const char *not_mine[] = {"/api/publish", "/api/connectionsx", "/api/user", "/api", "/"};
    for (size_t i = 0; i < sizeof(mine) / sizeof(mine[0]); i++)
        ck_assert(admin_path_claims(mine[i], strlen(mine[i])));
    for (size_t i = 0; i < sizeof(not_mine) / sizeof(not_mine[0]); i++)
        ck_assert(!admin_path_claims(not_mine[i], strlen(not_mine[i])));
}
END_TEST

START_TEST(test_bounds)
{
    char path[600], query[600];
    memset(query, 'a', sizeof(query));
    memcpy(query, "user=", 5);
    query[5 + ADMIN_ARG_MAX] = '\0';
    ck_assert_int_eq(parse("GET", "/api/connections", query), 0);
    ck_assert_uint_eq(line.filter_len, ADMIN_ARG_MAX);
    query[5 + ADMIN_ARG_MAX] = 'a';
    query[6 + ADMIN_ARG_MAX] = '\0';
    ck_assert_int_eq(parse("GET", "/api/connections", query), ADMIN_PATH_BAD_QUERY);
    int n = snprintf(path, sizeof(path), "/api/users/%0*d/disconnect", ADMIN_ARG_MAX + 1, 0);
    ck_assert_int_lt(n, (int)sizeof(path));
    ck_assert_int_eq(parse("POST", path, NULL), ADMIN_PATH_BAD_ARG);
}
END_TEST

START_TEST(test_conn_ids)
{
    char id[ADMIN_CONN_ID_MAX], node[ADMIN_NODE_MAX + 1];
    uint64_t n;
    ck_assert_uint_eq(admin_conn_id_format(id, "n1.2", 17), 7);
    ck_assert_str_eq(id, "n1.2-17");
    ck_assert_int_eq(admin_conn_id_parse(id, strlen(id), node, &n), 0);
    ck_assert_str_eq(node, "n1.2");
    ck_assert_uint_eq(n, 17);
    ck_assert_int_eq(admin_conn_id_parse("a-b-0", 5, node, &n), 0);
    ck_assert_str_eq(node, "a-b");
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(admin_conn_id_parse("x-18446744073709551615", 22, node, &n), 0);
    ck_assert_uint_eq(n, UINT64_MAX);
    const char *bad[] = {"",     "-",     "x-",    "-1",
                         "x1",   "x-01",  "x-1a",  "x-18446744073709551616",
                         "x-+1", "a b-1", "\x01-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_int_eq(admin_conn_id_parse(bad[i], strlen(bad[i]), node, &n), -1);
    char long_node[ADMIN_NODE_MAX + 2];
    memset(long_node, 'n', sizeof(long_node) - 1);
    long_node[sizeof(long_node) - 1] = '\0';
    ck_assert_uint_eq(admin_conn_id_format(id, long_node, 1), 0);
    long_node[ADMIN_NODE_MAX] = '\0';
    ck_assert_uint_gt(admin_conn_id_format(id, long_node, UINT64_MAX), 0);
    ck_assert_int_eq(admin_conn_id_parse(id, strlen(id), node, &n), 0);
    ck_assert_uint_eq(n, UINT64_MAX);
}
END_TEST

static Suite *admin_path_suite(void)
{
    Suite *s = suite_create("admin_path");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_cases, 0, (int)(sizeof(cases) / sizeof(cases[0])));
    tcase_add_test(tc, test_claims);
    tcase_add_test(tc, test_bounds);
    tcase_add_test(tc, test_conn_ids);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(admin_path_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
