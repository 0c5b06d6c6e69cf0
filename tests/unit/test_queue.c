/* Queue semantics: round-robin, waiting, limits, acks, nacks, redelivery, prefetch, flow control.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/core/queue.h"
#include "broker/core/router.h"

struct delivery {
    struct subscription *sub;
    char body[32];
    char id[MESSAGE_ID_MAX];
    bool redelivered;
};

static struct delivery deliveries[512];
static size_t delivery_count;
static struct subscription *blocked; /* a consumer whose connection is "full" */

static int record(struct subscription *sub, struct message *msg, bool redelivered)
{
    ck_assert_uint_lt(delivery_count, 512);
    struct delivery *d = &deliveries[delivery_count++];
    d->sub = sub;
    snprintf(d->body, sizeof(d->body), "%.*s", (int)msg->body_len, msg->body);
    strcpy(d->id, msg->id);
    d->redelivered = redelivered;
    return 0;
}

static bool writable(const struct subscription *sub)
{
    return sub != blocked;
}

static const struct delivery_ops ops = {.deliver = record, .writable = writable};
static struct router router;

static void setup(void)
{
    router_init(&router, &ops, 5);
    delivery_count = 0;
    blocked = NULL;
}

static void teardown(void)
{
    router_reset(&router);
}

static struct subscription *consumer(const char *queue, enum ack_mode ack, size_t prefetch)
{
    static uint64_t serial = 1;
    struct subscription *sub = calloc(1, sizeof(*sub));
    sub->id = strdup("s");
    sub->destination = strdup(queue);
    sub->destination_len = strlen(queue);
    sub->ack = ack;
    sub->prefetch = prefetch;
    sub->serial = serial++;
    ck_assert_int_eq(router_subscribe(&router, sub, queue, strlen(queue)), 0);
    return sub;
}

static void consumer_free(struct subscription *sub)
{
    router_unsubscribe(&router, sub);
    free(sub->id);
    free(sub->destination);
    free(sub);
}

static int send_body(const char *queue, const char *body)
{
    struct message *msg = message_new(queue, strlen(queue), NULL, 0, body, strlen(body));
    int rc = router_publish(&router, msg, queue, strlen(queue), true);
    message_unref(msg);
    return rc;
}

START_TEST(test_round_robin)
{
    struct subscription *a = consumer("/queue/q", ACK_AUTO, 0);
    struct subscription *b = consumer("/queue/q", ACK_AUTO, 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(send_body("/queue/q", "m"), 0);
    ck_assert_uint_eq(delivery_count, 4);
    ck_assert_ptr_ne(deliveries[0].sub, deliveries[1].sub);
    ck_assert_ptr_eq(deliveries[0].sub, deliveries[2].sub);
    ck_assert_ptr_eq(deliveries[1].sub, deliveries[3].sub);
    consumer_free(a);
    consumer_free(b);
}
END_TEST

START_TEST(test_messages_wait_for_a_consumer_in_order)
{
    ck_assert_int_eq(send_body("/queue/w", "1"), 0);
    ck_assert_int_eq(send_body("/queue/w", "2"), 0);
    ck_assert_uint_eq(delivery_count, 0);
    struct subscription *a = consumer("/queue/w", ACK_AUTO, 0);
    ck_assert_uint_eq(delivery_count, 2);
    ck_assert_str_eq(deliveries[0].body, "1");
    ck_assert_str_eq(deliveries[1].body, "2");
    consumer_free(a);
    ck_assert_uint_eq(router.queues.by_name.count, 0); /* idle queue freed */
}
END_TEST

START_TEST(test_queue_full)
{
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(send_body("/queue/f", "m"), 0);
    ck_assert_int_eq(send_body("/queue/f", "m"), ROUTER_ERR_QUEUE_FULL);
}
END_TEST

static size_t unblocks;

static void count_unblock(void *ctx, struct queue *q, enum queue_event ev, struct message *msg)
{
    (void)ctx;
    (void)msg;
    ck_assert(!q->clustered);
    if (ev == QUEUE_EV_UNBLOCK)
        unblocks++;
}

/* queue.overflow = block: a full queue takes more (the session pauses its publisher); the
 * publishers paused on it are told to go on once it is below 90% of the limit, or deleted. */
START_TEST(test_block_mode_takes_past_limit_and_unblocks_below_90_percent)
{
    static const struct delivery_ops block_ops = {
        .deliver = record, .writable = writable, .queue_event = count_unblock};
    router_reset(&router);
    router_init(&router, &block_ops, 10);
    router.queues.block = true;
    unblocks = 0;
    for (int i = 0; i < 11; i++)
        ck_assert_int_eq(send_body("/queue/b", "m"), 0);
    struct queue *q = queue_lookup(&router.queues, "/queue/b", 8, false);
    ck_assert_uint_eq(q->depth, 11);
    ck_assert(queue_full(&router.queues, q));
    q->paused_publishers = 1; /* as session.c does when it pauses one */
    struct subscription *a = consumer("/queue/b", ACK_CLIENT_INDIVIDUAL, 1);
    ck_assert_uint_eq(q->depth, 10); /* one delivered (prefetch 1): still full */
    ck_assert_int_eq(
        queue_ack(&router.queues, a, deliveries[0].id, strlen(deliveries[0].id), false), 0);
    ck_assert_uint_eq(q->depth, 9); /* 90%: not yet */
    ck_assert_uint_eq(unblocks, 0);
    ck_assert_int_eq(
        queue_ack(&router.queues, a, deliveries[1].id, strlen(deliveries[1].id), false), 0);
    ck_assert_uint_eq(q->depth, 8);
    ck_assert_uint_eq(unblocks, 1);
    q->paused_publishers = 0; /* resumed: nobody is told again */
    ck_assert_int_eq(
        queue_ack(&router.queues, a, deliveries[2].id, strlen(deliveries[2].id), false), 0);
    ck_assert_uint_eq(unblocks, 1);
    consumer_free(a); /* its unacked messages go back: the queue stays */
    q = queue_lookup(&router.queues, "/queue/b", 8, false);
    ck_assert_ptr_nonnull(q);
    q->paused_publishers = 1; /* a queue going away frees whoever waits on it */
    queue_delete(&router.queues, q);
    ck_assert_uint_eq(unblocks, 2);
}
END_TEST

START_TEST(test_client_individual_ack_and_prefetch)
{
    struct subscription *a = consumer("/queue/p", ACK_CLIENT_INDIVIDUAL, 2);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(send_body("/queue/p", "m"), 0);
    ck_assert_uint_eq(delivery_count, 2); /* prefetch window */
    ck_assert_uint_eq(a->unacked_count, 2);
    /* Ack the second only: one slot frees, the third arrives. */
    ck_assert_int_eq(
        queue_ack(&router.queues, a, deliveries[1].id, strlen(deliveries[1].id), false), 0);
    ck_assert_uint_eq(delivery_count, 3);
    ck_assert_uint_eq(a->unacked_count, 2);
    ck_assert_int_eq(queue_ack(&router.queues, a, "m-nope", 6, false), -1);
    consumer_free(a);
}
END_TEST

START_TEST(test_session_total_follows_unacked)
{
    size_t total = 0;
    struct subscription *a = consumer("/queue/t", ACK_CLIENT_INDIVIDUAL, 0);
    struct subscription *b = consumer("/queue/u", ACK_CLIENT, 0);
    a->session_unacked = &total;
    b->session_unacked = &total;
    ck_assert_int_eq(send_body("/queue/t", "1"), 0);
    ck_assert_int_eq(send_body("/queue/u", "2"), 0);
    ck_assert_int_eq(send_body("/queue/u", "3"), 0);
    ck_assert_uint_eq(total, 3);
    ck_assert_int_eq(
        queue_ack(&router.queues, b, deliveries[2].id, strlen(deliveries[2].id), false), 0);
    ck_assert_uint_eq(total, 1); /* cumulative: both of b's */
    consumer_free(a);            /* gives its one back */
    ck_assert_uint_eq(total, 0);
    consumer_free(b);
}
END_TEST

START_TEST(test_client_ack_is_cumulative)
{
    struct subscription *a = consumer("/queue/c", ACK_CLIENT, 0);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(send_body("/queue/c", "m"), 0);
    ck_assert_uint_eq(a->unacked_count, 3);
    ck_assert_int_eq(
        queue_ack(&router.queues, a, deliveries[1].id, strlen(deliveries[1].id), false), 0);
    ck_assert_uint_eq(a->unacked_count, 1);
    ck_assert_str_eq(a->unacked_head->msg->id, deliveries[2].id);
    consumer_free(a);
}
END_TEST

START_TEST(test_nack_redelivers_to_another_consumer)
{
    struct subscription *a = consumer("/queue/n", ACK_CLIENT_INDIVIDUAL, 1);
    struct subscription *b = consumer("/queue/n", ACK_CLIENT_INDIVIDUAL, 1);
    ck_assert_int_eq(send_body("/queue/n", "x"), 0);
    ck_assert_uint_eq(delivery_count, 1);
    struct subscription *first = deliveries[0].sub;
    struct subscription *other = first == a ? b : a;
    ck_assert_int_eq(
        queue_ack(&router.queues, first, deliveries[0].id, strlen(deliveries[0].id), true), 0);
    ck_assert_uint_eq(delivery_count, 2);
    ck_assert_ptr_eq(deliveries[1].sub, other);
    ck_assert(deliveries[1].redelivered);
    ck_assert_str_eq(deliveries[1].id, deliveries[0].id);
    ck_assert_str_eq(deliveries[1].body, "x");
    consumer_free(a);
    consumer_free(b);
}
END_TEST

START_TEST(test_disconnect_gives_unacked_back_in_order)
{
    struct subscription *a = consumer("/queue/d", ACK_CLIENT_INDIVIDUAL, 0);
    ck_assert_int_eq(send_body("/queue/d", "1"), 0);
    ck_assert_int_eq(send_body("/queue/d", "2"), 0);
    ck_assert_uint_eq(delivery_count, 2);
    consumer_free(a); /* unacked go back */
    struct subscription *b = consumer("/queue/d", ACK_AUTO, 0);
    ck_assert_uint_eq(delivery_count, 4);
    ck_assert_str_eq(deliveries[2].body, "1");
    ck_assert_str_eq(deliveries[3].body, "2");
    ck_assert(deliveries[2].redelivered && deliveries[3].redelivered);
    consumer_free(b);
}
END_TEST

START_TEST(test_blocked_consumer_is_skipped_then_resumed)
{
    struct subscription *a = consumer("/queue/b", ACK_AUTO, 0);
    blocked = a;
    ck_assert_int_eq(send_body("/queue/b", "1"), 0);
    ck_assert_uint_eq(delivery_count, 0);
    blocked = NULL;
    router_resume(&router, a);
    ck_assert_uint_eq(delivery_count, 1);
    consumer_free(a);
}
END_TEST

/* ---- clustered queues: what the cluster layer is told ------------------------------------- */

struct event_record {
    enum queue_event ev;
    char body[32];
};

static struct event_record events[64];
static size_t event_count;

static void record_event(void *ctx, struct queue *q, enum queue_event ev, struct message *msg)
{
    (void)ctx;
    ck_assert(q->clustered);
    ck_assert_uint_lt(event_count, 64);
    struct event_record *e = &events[event_count++];
    e->ev = ev;
    e->body[0] = '\0';
    if (msg != NULL)
        snprintf(e->body, sizeof(e->body), "%.*s", (int)msg->body_len, msg->body);
}

static const struct delivery_ops cluster_ops = {
    .deliver = record, .writable = writable, .queue_event = record_event};

static void setup_clustered(void)
{
    router_init(&router, &cluster_ops, 5);
    router.queues.clustered = true;
    router.queues.cluster_window = 3;
    delivery_count = 0;
    event_count = 0;
    blocked = NULL;
}

/* The events recorded since the last call, as "FOLLOW ROOM SETTLED:a ..." */
static const char *take_events(void)
{
    static const char *const names[] = {"FOLLOW", "UNFOLLOW", "SETTLED", "RELEASED", "ROOM"};
    static char out[512];
    out[0] = '\0';
    for (size_t i = 0; i < event_count; i++) {
        size_t n = strlen(out);
        snprintf(out + n, sizeof(out) - n, "%s%s%s%s", i ? " " : "", names[events[i].ev],
                 events[i].body[0] ? ":" : "", events[i].body);
    }
    event_count = 0;
    return out;
}

/* A message taken from the queue's stream (what cluster/fanout_redis.c does with streams'
 * deliveries). */
static void push_from_stream(const char *queue, const char *body, bool redelivered)
{
    struct queue *q = queue_lookup(&router.queues, queue, strlen(queue), false);
    ck_assert_ptr_nonnull(q);
    struct message *msg = message_new(queue, strlen(queue), NULL, 0, body, strlen(body));
    ck_assert_int_eq(queue_push(&router.queues, q, msg, redelivered), 0);
    message_unref(msg);
}

START_TEST(test_cluster_auto_ack_settles_on_delivery)
{
    struct subscription *a = consumer("/queue/c", ACK_AUTO, 0);
    ck_assert_str_eq(take_events(), "FOLLOW ROOM");
    push_from_stream("/queue/c", "m1", true);
    ck_assert_uint_eq(delivery_count, 1);
    ck_assert(deliveries[0].redelivered);
    ck_assert_str_eq(take_events(), "SETTLED:m1");
    consumer_free(a);
    ck_assert_str_eq(take_events(), "UNFOLLOW");
    ck_assert_ptr_null(queue_lookup(&router.queues, "/queue/c", 8, false));
}
END_TEST

START_TEST(test_cluster_ack_settles_and_makes_room)
{
    struct subscription *a = consumer("/queue/c", ACK_CLIENT_INDIVIDUAL, 2);
    struct queue *q = queue_lookup(&router.queues, "/queue/c", 8, false);
    ck_assert_uint_eq(queue_capacity(&router.queues, q), 2);
    push_from_stream("/queue/c", "m1", false);
    push_from_stream("/queue/c", "m2", false);
    ck_assert_uint_eq(queue_capacity(&router.queues, q), 0);
    take_events();
    ck_assert_int_eq(
        queue_ack(&router.queues, a, deliveries[1].id, strlen(deliveries[1].id), false), 0);
    ck_assert_str_eq(take_events(), "SETTLED:m2 ROOM");
    ck_assert_uint_eq(queue_capacity(&router.queues, q), 1);
    consumer_free(a);
    ck_assert_str_eq(take_events(), "RELEASED:m1 UNFOLLOW"); /* m1 was never acked */
}
END_TEST

START_TEST(test_cluster_last_consumer_releases_waiting_in_order)
{
    struct subscription *a = consumer("/queue/c", ACK_CLIENT, 1);
    push_from_stream("/queue/c", "m1", false); /* delivered, unacked */
    push_from_stream("/queue/c", "m2", false); /* waiting: the prefetch window is full */
    push_from_stream("/queue/c", "m3", false);
    ck_assert_uint_eq(delivery_count, 1);
    take_events();
    consumer_free(a);
    ck_assert_str_eq(take_events(), "RELEASED:m1 RELEASED:m2 RELEASED:m3 UNFOLLOW");
    ck_assert_ptr_null(queue_lookup(&router.queues, "/queue/c", 8, false));
}
END_TEST

START_TEST(test_cluster_capacity_counts_ready_consumers_only)
{
    struct subscription *a = consumer("/queue/c", ACK_AUTO, 0);
    struct subscription *b = consumer("/queue/c", ACK_CLIENT, 10);
    struct queue *q = queue_lookup(&router.queues, "/queue/c", 8, false);
    ck_assert_uint_eq(queue_capacity(&router.queues, q), 3 + 10); /* cluster_window for auto-ack */
    blocked = b;
    ck_assert_uint_eq(queue_capacity(&router.queues, q), 3);
    blocked = a;
    ck_assert_uint_eq(queue_capacity(&router.queues, q), 10);
    blocked = NULL;
    consumer_free(a);
    consumer_free(b);
}
END_TEST

START_TEST(test_cluster_reply_queues_stay_local)
{
    struct subscription *a = consumer("/reply-queue/s1.x", ACK_AUTO, 0);
    struct queue *q = queue_lookup(&router.queues, "/reply-queue/s1.x", 17, false);
    ck_assert(!q->clustered);
    ck_assert_uint_eq(event_count, 0);
    consumer_free(a);
}
END_TEST

static Suite *queue_suite(void)
{
    Suite *s = suite_create("queue");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_round_robin);
    tcase_add_test(tc, test_messages_wait_for_a_consumer_in_order);
    tcase_add_test(tc, test_queue_full);
    tcase_add_test(tc, test_block_mode_takes_past_limit_and_unblocks_below_90_percent);
    tcase_add_test(tc, test_client_individual_ack_and_prefetch);
    tcase_add_test(tc, test_client_ack_is_cumulative);
    tcase_add_test(tc, test_session_total_follows_unacked);
    tcase_add_test(tc, test_nack_redelivers_to_another_consumer);
    tcase_add_test(tc, test_disconnect_gives_unacked_back_in_order);
    tcase_add_test(tc, test_blocked_consumer_is_skipped_then_resumed);
    suite_add_tcase(s, tc);
    TCase *cluster = tcase_create("clustered");
    tcase_add_checked_fixture(cluster, setup_clustered, teardown);
    tcase_add_test(cluster, test_cluster_auto_ack_settles_on_delivery);
    tcase_add_test(cluster, test_cluster_ack_settles_and_makes_room);
    tcase_add_test(cluster, test_cluster_last_consumer_releases_waiting_in_order);
    tcase_add_test(cluster, test_cluster_capacity_counts_ready_consumers_only);
    tcase_add_test(cluster, test_cluster_reply_queues_stay_local);
    suite_add_tcase(s, cluster);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(queue_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
