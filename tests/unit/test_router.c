/* Router: exact and wildcard topic matching, one copy per subscription, unsubscribe cleanup, and
 * the live messages held while a backend's replay is pending (publish_replay_done()). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/core/broker.h"
#include "broker/core/publish.h"
#include "broker/core/router.h"

/* Deliveries recorded by the fake ops: which subscription got which message. */
struct delivery {
    struct subscription *sub;
    struct message *msg;
};

static struct delivery deliveries[256];
static size_t delivery_count;

static int record(struct subscription *sub, struct message *msg, bool redelivered)
{
    (void)redelivered;
    ck_assert_uint_lt(delivery_count, 256);
    deliveries[delivery_count].sub = sub;
    deliveries[delivery_count].msg = msg;
    delivery_count++;
    return 0;
}

static bool always_writable(const struct subscription *sub)
{
    (void)sub;
    return true;
}

/* Interest transitions reported to the (fake) cluster bridge. */
static char interest_log[1024];

static void record_interest(void *ctx, const char *name, size_t len, bool pattern, bool added)
{
    (void)ctx;
    size_t n = strlen(interest_log);
    snprintf(interest_log + n, sizeof(interest_log) - n, "%c%s%.*s;", added ? '+' : '-',
             pattern ? "p:" : "", (int)len, name);
}

static const struct delivery_ops ops = {
    .deliver = record, .writable = always_writable, .interest = record_interest};
static struct router router;

static void setup(void)
{
    router_init(&router, &ops, 100);
    delivery_count = 0;
    interest_log[0] = '\0';
}

static void teardown(void)
{
    router_reset(&router);
}

static struct subscription *sub_new(const char *dest)
{
    struct subscription *sub = calloc(1, sizeof(*sub));
    sub->destination = strdup(dest);
    sub->destination_len = strlen(dest);
    sub->id = strdup(dest);
    ck_assert_int_eq(router_subscribe(&router, sub, dest, strlen(dest)), 0);
    return sub;
}

static void sub_free(struct subscription *sub)
{
    router_unsubscribe(&router, sub);
    free(sub->destination);
    free(sub->id);
    free(sub);
}

/* Publishes to dest and returns how many deliveries went to sub. */
static size_t publish_count(const char *dest, struct subscription *sub)
{
    struct message *msg = message_new(dest, strlen(dest), NULL, 0, "x", 1);
    size_t before = delivery_count;
    ck_assert_int_eq(router_publish(&router, msg, dest, strlen(dest), true), 0);
    size_t n = 0;
    for (size_t i = before; i < delivery_count; i++)
        if (deliveries[i].sub == sub)
            n++;
    message_unref(msg);
    return n;
}

START_TEST(test_dest_kinds)
{
    ck_assert_int_eq(destination_kind("/topic/a", 8), DEST_TOPIC);
    ck_assert_int_eq(destination_kind("/queue/a", 8), DEST_QUEUE);
    ck_assert_int_eq(destination_kind("/temp-queue/a", 13), DEST_TEMP_QUEUE);
    ck_assert_int_eq(destination_kind("/reply-queue/a", 14), DEST_REPLY_QUEUE);
    ck_assert_int_eq(destination_kind("/user/a/queue/b", 15), DEST_USER);
    ck_assert_int_eq(destination_kind("/topic/", 7), DEST_UNKNOWN);
    ck_assert_int_eq(destination_kind("/exchange/a", 11), DEST_UNKNOWN);
    ck_assert_int_eq(destination_kind("topic/a", 7), DEST_UNKNOWN);
    ck_assert(destination_is_wildcard("/topic/a.*", 10));
    ck_assert(destination_is_wildcard("/topic/#", 8));
    ck_assert(!destination_is_wildcard("/topic/a*b", 10));
    ck_assert(!destination_is_wildcard("/queue/*", 8));
}
END_TEST

/* Table: pattern, name, expected copies. */
static const struct {
    const char *pattern;
    const char *name;
    size_t copies;
} match_cases[] = {
    {"/topic/prices", "/topic/prices", 1},
    {"/topic/prices", "/topic/prices.ibm", 0},
    {"/topic/stocks.*.price", "/topic/stocks.ibm.price", 1},
    {"/topic/stocks.*.price", "/topic/stocks.ibm.bid.price", 0},
    {"/topic/stocks.*.price", "/topic/stocks.price", 0},
    {"/topic/stocks.*", "/topic/stocks.ibm", 1},
    {"/topic/stocks.*", "/topic/stocks", 0},
    {"/topic/news.#", "/topic/news", 1},
    {"/topic/news.#", "/topic/news.a", 1},
    {"/topic/news.#", "/topic/news.a.b.c", 1},
    {"/topic/news.#", "/topic/newsx", 0},
    {"/topic/#", "/topic/anything.at.all", 1},
    {"/topic/#.end", "/topic/end", 1},
    {"/topic/#.end", "/topic/a.b.end", 1},
    {"/topic/#.end", "/topic/a.b.endx", 0},
    {"/topic/a.#.z", "/topic/a.z", 1},
    {"/topic/a.#.z", "/topic/a.b.c.z", 1},
    {"/topic/a.#.z", "/topic/a.b.c", 0},
    {"/topic/*.*", "/topic/a.b", 1},
    {"/topic/*.*", "/topic/a.b.c", 0},
    {"/topic/#.#", "/topic/a.b", 1},       /* several paths match: still one copy */
    {"/topic/*.#.*", "/topic/a.b.c.d", 1}, /* likewise */
    {"/topic/*.#.*", "/topic/a", 0},
};

START_TEST(test_wildcard_match)
{
    struct subscription *sub = sub_new(match_cases[_i].pattern);
    ck_assert_msg(publish_count(match_cases[_i].name, sub) == match_cases[_i].copies, "%s vs %s",
                  match_cases[_i].pattern, match_cases[_i].name);
    sub_free(sub);
}
END_TEST

START_TEST(test_every_subscription_gets_a_copy)
{
    struct subscription *a = sub_new("/topic/t");
    struct subscription *b = sub_new("/topic/t");
    struct subscription *w = sub_new("/topic/#");
    struct message *msg = message_new("/topic/t", 8, NULL, 0, "x", 1);
    ck_assert_int_eq(router_publish(&router, msg, "/topic/t", 8, true), 0);
    ck_assert_uint_eq(delivery_count, 3);
    ck_assert_uint_eq(router.stats.delivered, 3);
    message_unref(msg);
    sub_free(a);
    sub_free(b);
    sub_free(w);
}
END_TEST

START_TEST(test_unsubscribe_stops_delivery_and_frees)
{
    struct subscription *a = sub_new("/topic/x.*");
    struct subscription *b = sub_new("/topic/x");
    sub_free(a);
    sub_free(b);
    ck_assert_ptr_null(router.wildcards); /* pruned */
    ck_assert_uint_eq(router.topics.count, 0);
    struct message *msg = message_new("/topic/x.y", 10, NULL, 0, "x", 1);
    ck_assert_int_eq(router_publish(&router, msg, "/topic/x.y", 10, true), 0);
    ck_assert_uint_eq(delivery_count, 0);
    ck_assert_uint_eq(router.stats.unroutable, 1);
    message_unref(msg);
}
END_TEST

START_TEST(test_pruning_keeps_siblings)
{
    struct subscription *a = sub_new("/topic/a.*.c");
    struct subscription *b = sub_new("/topic/a.*.d");
    sub_free(a);
    ck_assert_uint_eq(publish_count("/topic/a.x.d", b), 1);
    ck_assert_uint_eq(publish_count("/topic/a.x.c", b), 0);
    sub_free(b);
}
END_TEST

START_TEST(test_publish_errors)
{
    struct message *msg = message_new("/topic/a.*", 10, NULL, 0, "x", 1);
    ck_assert_int_eq(router_publish(&router, msg, "/topic/a.*", 10, true), ROUTER_ERR_BAD_DEST);
    ck_assert_int_eq(router_publish(&router, msg, "/foo/bar", 8, true), ROUTER_ERR_BAD_DEST);
    ck_assert_int_eq(router_publish(&router, msg, "/reply-queue/gone", 17, false),
                     ROUTER_ERR_NO_QUEUE);
    message_unref(msg);
}
END_TEST

START_TEST(test_interest_transitions)
{
    struct subscription *a = sub_new("/topic/t");
    struct subscription *b = sub_new("/topic/t");
    struct subscription *w = sub_new("/topic/x.#.#");
    struct subscription *v = sub_new("/topic/x.#");
    sub_free(a);
    sub_free(b);
    sub_free(w);
    sub_free(v);
    /* One transition each way per name; "#.#" folds into "#", so both patterns share one. */
    ck_assert_str_eq(interest_log, "+/topic/t;+p:/topic/x.#;-/topic/t;-p:/topic/x.#;");
}
END_TEST

START_TEST(test_remote_deliveries_split_exact_and_pattern)
{
    struct subscription *exact = sub_new("/topic/a.b");
    struct subscription *star = sub_new("/topic/a.*");
    struct subscription *other = sub_new("/topic/c.*");
    struct message *msg = message_new("/topic/a.b", 10, NULL, 0, "x", 1);
    ck_assert_uint_eq(router_publish_exact(&router, msg), 1);
    ck_assert_ptr_eq(deliveries[0].sub, exact);
    ck_assert_uint_eq(router_publish_pattern(&router, msg, "/topic/a.*", 10), 1);
    ck_assert_ptr_eq(deliveries[1].sub, star);
    /* A pattern that is subscribed but does not match the name (a glob superset in Redis). */
    ck_assert_uint_eq(router_publish_pattern(&router, msg, "/topic/c.*", 10), 0);
    ck_assert_uint_eq(router_publish_pattern(&router, msg, "/topic/zz.#", 11), 0);
    ck_assert_uint_eq(delivery_count, 2);
    message_unref(msg);
    sub_free(exact);
    sub_free(star);
    sub_free(other);
}
END_TEST

/* A /user/ route is an exact name of its own: its subscribers get it, /topic/ patterns never. */
START_TEST(test_user_routes_are_exact)
{
    struct subscription *alice = sub_new("/user/alice/queue/x");
    struct subscription *alice2 = sub_new("/user/alice/queue/x");
    struct subscription *bob = sub_new("/user/bob/queue/x");
    struct subscription *all = sub_new("/topic/#");
    ck_assert_uint_eq(publish_count("/user/alice/queue/x", alice), 1);
    ck_assert_uint_eq(delivery_count, 2); /* alice's two subscriptions, nobody else */
    ck_assert(deliveries[0].sub == alice2 || deliveries[1].sub == alice2);
    ck_assert_uint_eq(publish_count("/user/alice/topic/x", alice), 0);
    ck_assert_uint_eq(publish_count("/user/bob/queue/x", all), 0);
    ck_assert_uint_eq(delivery_count, 3);
    /* Remote deliveries: exact only; a /topic/ pattern from Redis does not reach it either. */
    struct message *msg = message_new("/user/bob/queue/x", 17, NULL, 0, "x", 1);
    ck_assert_uint_eq(router_publish_exact(&router, msg), 1);
    ck_assert_uint_eq(router_publish_pattern(&router, msg, "/topic/#", 8), 0);
    ck_assert_uint_eq(router_publish_topic(&router, msg, "/user/bob/queue/x", 17), 1);
    message_unref(msg);
    sub_free(alice);
    sub_free(alice2);
    sub_free(bob);
    sub_free(all);
    ck_assert_str_eq(interest_log, "+/user/alice/queue/x;+/user/bob/queue/x;+p:/topic/#;"
                                   "-/user/alice/queue/x;-/user/bob/queue/x;-p:/topic/#;");
}
END_TEST

START_TEST(test_malformed_user_routes_refused)
{
    static const char *const bad[] = {"/user/queue/x", "/user//queue/x", "/user/a/queue/",
                                      "/user/a/b/x"};
    struct message *msg = message_new("/user/a/queue/x", 15, NULL, 0, "x", 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct subscription sub = {0};
        ck_assert_int_eq(router_subscribe(&router, &sub, bad[i], strlen(bad[i])),
                         ROUTER_ERR_BAD_DEST);
        ck_assert_int_eq(router_publish(&router, msg, bad[i], strlen(bad[i]), true),
                         ROUTER_ERR_BAD_DEST);
    }
    message_unref(msg);
    ck_assert_uint_eq(router.topics.count, 0);
}
END_TEST

/* ---- a backend's replay: live messages held, then released after the replayed ones ---------- */

static char receipt_log[64];

static void record_receipt(struct subscription *sub, const char *id, size_t len, bool recovered)
{
    (void)sub;
    snprintf(receipt_log, sizeof(receipt_log), "%.*s:%s@%zu", (int)len, id,
             recovered ? "true" : "false", delivery_count);
}

static struct message *numbered(const char *dest, uint64_t offset)
{
    struct message *msg = message_new(dest, strlen(dest), NULL, 0, "x", 1);
    msg->stream_offset = offset;
    msg->stream_epoch = 7;
    return msg;
}

START_TEST(test_replay_holds_live_messages)
{
    static struct broker b; /* only its router is used */
    const struct delivery_ops replay_ops = {
        .deliver = record, .writable = always_writable, .replay_receipt = record_receipt};
    router_init(&b.router, &replay_ops, 100);
    struct subscription *sub = calloc(1, sizeof(*sub));
    ck_assert_int_eq(router_subscribe(&b.router, sub, "/topic/h.#", 10), 0);
    sub->replay_pending = true;
    receipt_log[0] = '\0';

    /* Live while the replay is on its way: 3 (in the replay too), 4, a raw one, and 2 of another
     * destination that the replay did not cover. */
    struct message *live[4] = {numbered("/topic/h.a", 3), numbered("/topic/h.a", 4),
                               numbered("/topic/h.a", 0), numbered("/topic/h.b", 2)};
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(router_publish(&b.router, live[i], live[i]->destination,
                                        live[i]->destination_len, false),
                         0);
    ck_assert_uint_eq(delivery_count, 0);
    ck_assert_uint_eq(sub->held_count, 4);

    struct message *replayed[3] = {numbered("/topic/h.a", 1), numbered("/topic/h.a", 2),
                                   numbered("/topic/h.a", 3)};
    publish_replay_done(&b, sub, "r1", 2, true, replayed, 3);
    ck_assert_str_eq(receipt_log, "r1:true@0"); /* the RECEIPT before any message */
    ck_assert_ptr_null(sub->stream_marks);      /* h.a 4 passed its mark: none left */
    struct message *want[6] = {replayed[0], replayed[1], replayed[2], live[1], live[2], live[3]};
    ck_assert_uint_eq(delivery_count, 6);
    for (int i = 0; i < 6; i++)
        ck_assert_ptr_eq(deliveries[i].msg, want[i]);
    ck_assert(!sub->replay_pending);
    ck_assert_uint_eq(sub->held_count, 0);
    ck_assert_ptr_null(sub->held);

    /* Then live as usual. */
    ck_assert_int_eq(router_publish(&b.router, live[1], "/topic/h.a", 10, false), 0);
    ck_assert_uint_eq(delivery_count, 7);

    /* A live copy that comes only after the replay (the subscribe link lagging behind the read):
     * skipped while at or below the mark, which the first newer one drops. */
    sub->replay_pending = true;
    struct message *c2 = numbered("/topic/h.c", 2), *c3 = numbered("/topic/h.c", 3);
    struct message *c_replayed[2] = {numbered("/topic/h.c", 1), c2};
    publish_replay_done(&b, sub, NULL, 0, true, c_replayed, 2);
    ck_assert_uint_eq(delivery_count, 9);
    ck_assert_ptr_nonnull(sub->stream_marks);
    ck_assert_int_eq(router_publish(&b.router, c2, "/topic/h.c", 10, false), 0);
    ck_assert_uint_eq(delivery_count, 9);
    ck_assert_int_eq(router_publish(&b.router, c3, "/topic/h.c", 10, false), 0);
    ck_assert_uint_eq(delivery_count, 10);
    ck_assert_ptr_null(sub->stream_marks);
    message_unref(c_replayed[0]);
    message_unref(c2);
    message_unref(c3);

    /* A subscription going away while its replay is pending frees what it held. */
    sub->replay_pending = true;
    ck_assert_int_eq(router_publish(&b.router, live[0], "/topic/h.a", 10, false), 0);
    ck_assert_uint_eq(sub->held_count, 1);
    publish_forget_replay(&b, sub);
    ck_assert_uint_eq(sub->held_count, 0);

    router_unsubscribe(&b.router, sub);
    free(sub);
    router_reset(&b.router);
    for (int i = 0; i < 4; i++)
        message_unref(live[i]);
    for (int i = 0; i < 3; i++)
        message_unref(replayed[i]);
}
END_TEST

static Suite *router_suite(void)
{
    Suite *s = suite_create("router");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_dest_kinds);
    tcase_add_loop_test(tc, test_wildcard_match, 0,
                        (int)(sizeof(match_cases) / sizeof(match_cases[0])));
    tcase_add_test(tc, test_every_subscription_gets_a_copy);
    tcase_add_test(tc, test_unsubscribe_stops_delivery_and_frees);
    tcase_add_test(tc, test_pruning_keeps_siblings);
    tcase_add_test(tc, test_publish_errors);
    tcase_add_test(tc, test_interest_transitions);
    tcase_add_test(tc, test_remote_deliveries_split_exact_and_pattern);
    tcase_add_test(tc, test_user_routes_are_exact);
    tcase_add_test(tc, test_malformed_user_routes_refused);
    tcase_add_test(tc, test_replay_holds_live_messages);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(router_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
