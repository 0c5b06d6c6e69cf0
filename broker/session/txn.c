#include "broker/session/txn.h"

#include <stdlib.h>
#include <string.h>

struct txn *txn_new(size_t max_ops)
{
    struct txn *tx = calloc(1, sizeof(*tx));
    if (tx != NULL)
        tx->max_ops = max_ops;
    return tx;
}

static void free_op(struct txn_op *op)
{
    message_unref(op->msg);
    free(op->ack_id);
    free(op->sub_id);
    free(op);
}

void txn_free(struct txn *tx)
{
    if (tx == NULL)
        return;
    struct txn_op *op = tx->head;
    while (op != NULL) {
        struct txn_op *next = op->next;
        free_op(op);
        op = next;
    }
    free(tx);
}

static void append(struct txn *tx, struct txn_op *op)
{
    if (tx->tail != NULL)
        tx->tail->next = op;
    else
        tx->head = op;
    tx->tail = op;
    tx->count++;
}

int txn_add_send(struct txn *tx, struct message *msg, const char *route, bool create_queue)
{
    if (tx->count >= tx->max_ops)
        return TXN_ERR_FULL;
    size_t route_len = strlen(route);
    struct txn_op *op = calloc(1, sizeof(*op) + route_len + 1);
    if (op == NULL)
        return TXN_ERR_NOMEM;
    op->msg = message_ref(msg);
    op->create_queue = create_queue;
    memcpy(op->route, route, route_len + 1);
    append(tx, op);
    return 0;
}

int txn_add_ack(struct txn *tx, const char *ack_id, size_t ack_id_len, const char *sub_id,
                size_t sub_id_len, bool nack)
{
    if (tx->count >= tx->max_ops)
        return TXN_ERR_FULL;
    struct txn_op *op = calloc(1, sizeof(*op) + 1);
    if (op == NULL)
        return TXN_ERR_NOMEM;
    op->nack = nack;
    op->ack_id = strndup(ack_id, ack_id_len);
    op->sub_id = sub_id != NULL ? strndup(sub_id, sub_id_len) : NULL;
    if (op->ack_id == NULL || (sub_id != NULL && op->sub_id == NULL)) {
        free_op(op);
        return TXN_ERR_NOMEM;
    }
    append(tx, op);
    return 0;
}
