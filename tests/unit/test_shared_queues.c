/* The in-process queue store of server.threads > 1: order, redelivery, the NACK hand-over to
 * another loop, and queue.overflow (reject, block with its 90% unblock). The loops' inboxes are
 * real; their receivers are stand-ins that record what the store told each loop. */
#include <check.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

#include "broker/core/router.h"
#include "broker/threads/inbox.h"
#include "broker/threads/shared_queues.h"

#define LOOPS 2

static unsigned kicks[LOOPS];
static unsigned unblocks[LOOPS];
static size_t loop_ids[LOOPS] = {0, 1};

static struct event_base *base;
static struct inboxes *inboxes;
static struct shared_queues *sq;

/* inbox_ops.receive of both stand-in loops (ctx: the loop's index). */
static void receive(void *ctx, const struct inbox_item *item)
{
    size_t loop = *(const size_t *)ctx;
    switch (item->kind) {
    case INBOX_KICK:
        kicks[loop]++;
        break;
    case INBOX_UNBLOCK:
        ck_assert_str_eq(item->name, "/queue/q");
        unblocks[loop]++;
        break;
    default:
        ck_abort_msg("the store sent item kind %d", (int)item->kind);
    }
}

/* What the store pushed onto the inboxes so far reaches the receivers. */
static void drain(void)
{
    ck_assert_int_ge(event_base_loop(base, EVLOOP_NONBLOCK), 0);
}

static void setup(void)
{
    memset(kicks, 0, sizeof(kicks));
    memset(unblocks, 0, sizeof(unblocks));
    base = event_base_new();
    inboxes = inboxes_new(LOOPS);
    ck_assert_ptr_nonnull(base);
    ck_assert_ptr_nonnull(inboxes);
    for (size_t i = 0; i < LOOPS; i++) {
        const struct inbox_ops ops = {.receive = receive, .ctx = &loop_ids[i]};
        ck_assert_int_eq(inboxes_attach(inboxes, i, base, &ops), 0);
    }
}

static void teardown(void)
{
    shared_queues_free(sq);
    sq = NULL;
    inboxes_free(inboxes);
    event_base_free(base);
}

static int append(const char *body, bool *full)
{
    struct message *msg = message_new("/queue/q", 8, NULL, 0, body, strlen(body));
    int rc = shared_queues_append(sq, 0, msg, full);
    message_unref(msg);
    drain();
    return rc;
}

/* Takes up to max for loop; writes the bodies, space-separated, "*" marking redelivered. */
static size_t take(size_t loop, size_t max, struct message **out, char *bodies)
{
    bool redelivered[16];
    size_t n = shared_queues_take(sq, loop, "/queue/q", 8, max, out, redelivered);
    drain();
    bodies[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        strcat(bodies, i ? " " : "");
        strncat(bodies, out[i]->body, out[i]->body_len);
        strcat(bodies, redelivered[i] ? "*" : "");
    }
    return n;
}

static void unref_all(struct message **m, size_t n)
{
    for (size_t i = 0; i < n; i++)
        message_unref(m[i]);
}

START_TEST(test_sent_order_kept_through_take_settle_and_release)
{
    sq = shared_queues_new(inboxes, 100, false);
    shared_queues_follow(sq, 0, "/queue/q", 8, true);
    static const char *const sent[] = {"a", "b", "c", "d"};
    for (size_t i = 0; i < 4; i++)
        ck_assert_int_eq(append(sent[i], NULL), 0);
    ck_assert_uint_ge(kicks[0], 4); /* the follower hears of each append */
    struct message *m[16];
    char bodies[128];
    ck_assert_uint_eq(take(0, 3, m, bodies), 3);
    ck_assert_str_eq(bodies, "a b c");
    shared_queues_settle(sq, m[1]); /* b is done */
    /* The loop's last consumer left: a and c go back, oldest first, as queue.c hands them. */
    shared_queues_release(sq, 0, m[0], false);
    shared_queues_release(sq, 0, m[2], false);
    unref_all(m, 3);
    ck_assert_uint_eq(take(0, 16, m, bodies), 3);
    ck_assert_str_eq(bodies, "a* c* d"); /* a and c before d, in their first order */
    for (size_t i = 0; i < 3; i++)
        shared_queues_settle(sq, m[i]);
    unref_all(m, 3);
    struct shared_queues_stats st;
    shared_queues_stats(sq, &st);
    ck_assert_uint_eq(st.waiting + st.in_flight, 0);
    shared_queues_follow(sq, 0, "/queue/q", 8, false);
    shared_queues_stats(sq, &st);
    ck_assert_uint_eq(st.queues, 0); /* nothing left: forgotten */
}
END_TEST

/* A NACK by the only consumer of loop 0 hands the message to loop 1's consumers first. */
START_TEST(test_declined_entry_goes_to_another_loop)
{
    sq = shared_queues_new(inboxes, 100, false);
    shared_queues_follow(sq, 0, "/queue/q", 8, true);
    shared_queues_follow(sq, 1, "/queue/q", 8, true);
    ck_assert_int_eq(append("x", NULL), 0);
    struct message *m[16];
    char bodies[128];
    ck_assert_uint_eq(take(0, 1, m, bodies), 1);
    shared_queues_release(sq, 0, m[0], true);
    unref_all(m, 1);
    ck_assert_uint_eq(take(0, 16, m, bodies), 0); /* left for loop 1 */
    ck_assert_uint_eq(take(1, 16, m, bodies), 1);
    ck_assert_str_eq(bodies, "x*");
    shared_queues_settle(sq, m[0]);
    unref_all(m, 1);
}
END_TEST

START_TEST(test_reject_past_the_limit)
{
    sq = shared_queues_new(inboxes, 2, false);
    ck_assert_int_eq(append("1", NULL), 0);
    ck_assert_int_eq(append("2", NULL), 0);
    bool full = false;
    ck_assert_int_eq(append("3", &full), ROUTER_ERR_QUEUE_FULL);
    ck_assert(!full);
}
END_TEST

/* block: the SEND that fills the queue is stored and its loop told to pause; below 90% of the
 * limit (here 9 of 10 is not enough, 8 is) the loop is told to go on, once. */
START_TEST(test_block_pauses_then_unblocks_below_90_percent)
{
    sq = shared_queues_new(inboxes, 10, true);
    bool full = false;
    for (int i = 0; i < 9; i++) {
        ck_assert_int_eq(append("m", &full), 0);
        ck_assert(!full);
    }
    ck_assert_int_eq(append("m", &full), 0);
    ck_assert(full);
    full = false;
    ck_assert_int_eq(append("m", &full), 0); /* taken past the limit too: paused again */
    ck_assert(full);
    struct message *m[16];
    char bodies[128];
    ck_assert_uint_eq(take(1, 2, m, bodies), 2); /* 9 waiting */
    unref_all(m, 2);
    ck_assert_uint_eq(unblocks[0], 0);
    ck_assert_uint_eq(take(1, 1, m, bodies), 1); /* 8 waiting */
    unref_all(m, 1);
    ck_assert_uint_eq(unblocks[0], 1);
    ck_assert_uint_eq(unblocks[1], 0);
    ck_assert_uint_eq(take(1, 1, m, bodies), 1);
    unref_all(m, 1);
    ck_assert_uint_eq(unblocks[0], 1); /* told once */
}
END_TEST

static Suite *shared_queues_suite(void)
{
    Suite *s = suite_create("shared_queues");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_sent_order_kept_through_take_settle_and_release);
    tcase_add_test(tc, test_declined_entry_goes_to_another_loop);
    tcase_add_test(tc, test_reject_past_the_limit);
    tcase_add_test(tc, test_block_pauses_then_unblocks_below_90_percent);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(shared_queues_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
