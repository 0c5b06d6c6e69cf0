/*
 * test_redis_router.c - Check suite for the pure part of cluster/redis_router: which slot a
 * command in RESP is routed by. Commands are built with hiredis' own formatter, as the links
 * send them, and truncated or malformed RESP must never be read past its length (guard.h).
 */
#include <check.h>
#include <hiredis/hiredis.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/redis_router.h"
#include "cluster/slots.h"
#include "guard.h"

/* Routes a command given as words; *slot set when keyed. */
static bool route(int argc, const char **argv, uint16_t *slot)
{
    char *resp;
    int len = redisFormatCommandArgv(&resp, argc, argv, NULL);
    ck_assert_int_gt(len, 0);
    struct guard g;
    const char *copy = (const char *)guard_copy(&g, resp, (size_t)len);
    bool keyed = redis_router_command_slot(copy, (size_t)len, slot);
    guard_release(&g);
    redisFreeCommand(resp);
    return keyed;
}

static uint16_t slot_of(const char *key)
{
    return slots_key_slot(key, strlen(key));
}

START_TEST(test_first_argument_is_the_key)
{
    uint16_t slot;
    const char *spublish[] = {"SPUBLISH", "stompws:/topic/a", "payload"};
    ck_assert(route(3, spublish, &slot));
    ck_assert_uint_eq(slot, slot_of("stompws:/topic/a"));
    const char *xadd[] = {"xadd", "stompws:{eu}:/queue/{eu}.orders", "*", "m", "x"};
    ck_assert(route(5, xadd, &slot));
    ck_assert_uint_eq(slot, slot_of("eu"));
    const char *publish[] = {"PUBLISH", "stompws:/topic/b", "payload"}; /* spread, as keys */
    ck_assert(route(3, publish, &slot));
    ck_assert_uint_eq(slot, slot_of("stompws:/topic/b"));
    const char *zadd[] = {"ZADD", "stompws:wildcards", "1", "n1\nx*"};
    ck_assert(route(4, zadd, &slot));
    ck_assert_uint_eq(slot, slot_of("stompws:wildcards"));
}
END_TEST

START_TEST(test_eval_routes_by_its_first_key)
{
    uint16_t slot;
    const char *evalsha[] = {"EVALSHA", "0123", "3", "{stompws:/topic/h}:stream", "b", "c", "arg"};
    ck_assert(route(7, evalsha, &slot));
    ck_assert_uint_eq(slot, slot_of("stompws:/topic/h"));
    const char *eval[] = {"EVAL", "return 1", "1", "{stompws}", "arg"};
    ck_assert(route(5, eval, &slot));
    ck_assert_uint_eq(slot, slot_of("stompws"));
    const char *no_keys[] = {"EVAL", "return 1", "0", "arg"};
    ck_assert(!route(4, no_keys, &slot));
}
END_TEST

START_TEST(test_keyless_commands_go_home)
{
    uint16_t slot;
    const char *cmds[][3] = {{"CLIENT", "ID", NULL},
                             {"WAIT", "1", "1000"},
                             {"SCRIPT", "LOAD", "x"},
                             {"PING", NULL, NULL},
                             {"XREADGROUP", "GROUP", "g"}};
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        int argc = cmds[i][1] == NULL ? 1 : cmds[i][2] == NULL ? 2 : 3;
        ck_assert_msg(!route(argc, cmds[i], &slot), "%s routed by a key", cmds[i][0]);
    }
}
END_TEST

START_TEST(test_malformed_resp_is_keyless)
{
    static const char *bad[] = {
        "",
        "*",
        "PING\r\n",
        "*2\r\n$3\r\nGET\r\n",               /* the key is missing */
        "*2\r\n$3\r\nGET\r\n$10\r\nabc\r\n", /* the key is shorter than it says */
        "*2\r\n$3\r\nGET\r\n$-1\r\n",
        "*2\r\n:3\r\n",
        "*9999999999999999999\r\n$3\r\nGET",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct guard g;
        size_t len = strlen(bad[i]);
        const char *copy = (const char *)guard_copy(&g, bad[i], len);
        uint16_t slot;
        ck_assert_msg(!redis_router_command_slot(copy, len, &slot), "case %zu routed", i);
        guard_release(&g);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("redis_router");
    TCase *tc = tcase_create("redis_router");
    tcase_add_test(tc, test_first_argument_is_the_key);
    tcase_add_test(tc, test_eval_routes_by_its_first_key);
    tcase_add_test(tc, test_keyless_commands_go_home);
    tcase_add_test(tc, test_malformed_resp_is_keyless);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
