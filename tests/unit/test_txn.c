/* Transactions: operations kept in order, the frame limit, and abort releasing messages. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "broker/session/txn.h"

static struct message *msg_new(const char *body)
{
    return message_new("/queue/t", 8, NULL, 0, body, strlen(body));
}

START_TEST(test_ops_in_order)
{
    struct txn *tx = txn_new(10);
    struct message *a = msg_new("a");
    struct message *b = msg_new("b");
    ck_assert_int_eq(txn_add_send(tx, a, "/queue/t", true), 0);
    ck_assert_int_eq(txn_add_ack(tx, "m-9", 3, "sub-1", 5, true), 0);
    ck_assert_int_eq(txn_add_send(tx, b, "/reply-queue/x", false), 0);
    ck_assert_uint_eq(tx->count, 3);

    struct txn_op *op = tx->head;
    ck_assert_ptr_eq(op->msg, a);
    ck_assert_str_eq(op->route, "/queue/t");
    ck_assert(op->create_queue);
    op = op->next;
    ck_assert_ptr_null(op->msg);
    ck_assert_str_eq(op->ack_id, "m-9");
    ck_assert_str_eq(op->sub_id, "sub-1");
    ck_assert(op->nack);
    op = op->next;
    ck_assert_ptr_eq(op->msg, b);
    ck_assert(!op->create_queue);
    ck_assert_ptr_null(op->next);
    ck_assert_ptr_eq(tx->tail, op);

    ck_assert_uint_eq(a->refcount, 2); /* the transaction holds its own reference */
    txn_free(tx);                      /* abort */
    ck_assert_uint_eq(a->refcount, 1);
    ck_assert_uint_eq(b->refcount, 1);
    message_unref(a);
    message_unref(b);
}
END_TEST

START_TEST(test_limit)
{
    struct txn *tx = txn_new(2);
    struct message *m = msg_new("m");
    ck_assert_int_eq(txn_add_send(tx, m, "/queue/t", true), 0);
    ck_assert_int_eq(txn_add_ack(tx, "m-1", 3, NULL, 0, false), 0);
    ck_assert_int_eq(txn_add_send(tx, m, "/queue/t", true), TXN_ERR_FULL);
    ck_assert_int_eq(txn_add_ack(tx, "m-1", 3, NULL, 0, false), TXN_ERR_FULL);
    ck_assert_uint_eq(tx->count, 2);
    ck_assert_ptr_null(tx->tail->sub_id);
    ck_assert_uint_eq(m->refcount, 2);
    txn_free(tx);
    ck_assert_uint_eq(m->refcount, 1);
    message_unref(m);
}
END_TEST

START_TEST(test_empty)
{
    struct txn *tx = txn_new(0);
    ck_assert_ptr_null(tx->head);
    ck_assert_int_eq(txn_add_ack(tx, "x", 1, NULL, 0, false), TXN_ERR_FULL);
    txn_free(tx);
    txn_free(NULL);
}
END_TEST

static Suite *txn_suite(void)
{
    Suite *s = suite_create("txn");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_ops_in_order);
    tcase_add_test(tc, test_limit);
    tcase_add_test(tc, test_empty);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(txn_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
