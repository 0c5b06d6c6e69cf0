/*
 * txn.h - a STOMP transaction: the SEND, ACK and NACK frames buffered between BEGIN and COMMIT.
 *
 * Nothing here has an effect: the session applies the operations in order at COMMIT and simply
 * frees them at ABORT or disconnect. Bounded by limits.max_tx_frames.
 */
#ifndef STOMPWS_TXN_H
#define STOMPWS_TXN_H

#include <stdbool.h>
#include <stddef.h>

#include "broker/base/message.h"

/* One buffered operation. */
struct txn_op {
    struct txn_op *next; /* owned: next in order */
    struct message *msg; /* SEND: holds a reference; NULL for ACK/NACK */
    bool create_queue;   /* SEND: whether a missing queue may be created */
    bool nack;           /* ACK/NACK */
    char *ack_id;        /* owned: ACK/NACK message id */
    char *sub_id;        /* owned: ACK/NACK subscription (STOMP 1.1), may be NULL */
    char route[];        /* SEND: the resolved destination */
};

struct txn {
    struct txn_op *head, *tail; /* owned */
    size_t count;
    size_t max_ops; /* limits.max_tx_frames */
};

enum txn_error { TXN_ERR_NOMEM = -1, TXN_ERR_FULL = -2 };

struct txn *txn_new(size_t max_ops);
/* Frees the transaction and its operations (releasing their messages): an abort. */
void txn_free(struct txn *tx);

/* Buffers a SEND of msg (taking a reference). 0, TXN_ERR_FULL or TXN_ERR_NOMEM. */
int txn_add_send(struct txn *tx, struct message *msg, const char *route, bool create_queue);
/* Buffers an ACK or NACK. sub_id may be NULL. 0, TXN_ERR_FULL or TXN_ERR_NOMEM. */
int txn_add_ack(struct txn *tx, const char *ack_id, size_t ack_id_len, const char *sub_id,
                size_t sub_id_len, bool nack);

#endif
