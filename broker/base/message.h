/*
 * message.h - one published message, shared by every delivery of it.
 *
 * A SEND becomes one message; each subscriber's MESSAGE frame is built from its own small header
 * block plus a reference to the message's body (and the NUL that ends the STOMP frame), so a
 * fan-out to many subscribers never copies the body. Messages are the only refcounted objects in
 * the broker: whoever stores a pointer (a queue, a transaction, an evbuffer reference) holds a ref.
 */
#ifndef STOMPWS_MESSAGE_H
#define STOMPWS_MESSAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stomp/frame.h"

#define MESSAGE_ID_MAX 40 /* "m-" 12 hex "-" up to 20 digits, NUL */
#define STREAM_ID_MAX  48 /* a Redis stream entry id "<ms>-<seq>": two u64 in decimal, '-', NUL */

struct message {
    unsigned refcount;
    uint64_t seq;                  /* broker-wide sequence number behind the message-id */
    char id[MESSAGE_ID_MAX];       /* message-id header value, NUL-terminated */
    char stream_id[STREAM_ID_MAX]; /* clustered queue messages: the entry in the queue's Redis
                                      stream, NUL-terminated; "" otherwise */
    char *destination;             /* owned (same allocation): NUL-terminated */
    size_t destination_len;
    struct stomp_header *headers; /* owned (same allocation): user headers to pass on, unescaped */
    size_t header_count;
    char *body; /* owned (same allocation): body_len bytes then a NUL */
    size_t body_len;
    bool utf8; /* destination, headers and body are all valid UTF-8 */
    /* A /topic/ destination with a retention policy (core/history.h): the message's place in
     * its destination's stream and that stream's epoch, shown as x-stream-offset and
     * x-stream-epoch; 0 when it has no policy. Set before the first delivery. */
    uint64_t stream_offset;
    uint64_t stream_epoch;
    /* Owned, built on first use per version (1.0, 1.1, 1.2): the MESSAGE header lines every
     * delivery shares, escaped once: "destination:D\nmessage-id:ID\n", the user headers, then
     * "content-length:N\n\n". encoded_tail is where "message-id" starts (queue deliveries
     * show the consumer's own destination instead). */
    char *encoded[3];
    size_t encoded_len[3];
    size_t encoded_tail[3];
    /* Owned, made on the first compressed delivery per version and per server window (the 2^15
     * one, then the 2^9 one; broker/net/conn_deflate.c): encoded[v] from encoded_tail[v] on,
     * the body and the frame's NUL, deflated once as a message of its own for every subscriber.
     * NULL: not made yet; deflated_len MESSAGE_NOT_DEFLATED: deflate saves nothing here. */
    uint8_t *deflated[3][2];
    size_t deflated_len[3][2];
    /* Owned, built on the first delivery to a Server-Sent Events reader per format (JSON, raw:
     * broker/session/sse.c), then shared by every reader: the event's data lines and the blank
     * line that ends it. NULL until then. */
    char *sse_data[2];
    size_t sse_data_len[2];
};

#define MESSAGE_NOT_DEFLATED ((size_t)-1)

/*
 * Builds a message from a SEND frame: copies destination, the headers worth passing on (not
 * receipt, transaction, content-length nor the ones the broker sets, x-stream-* included) and
 * the body. reply_to, when
 * not NULL, replaces the frame's reply-to header value (temporary queue rewriting).
 * Returns NULL when out of memory. The new message has refcount 1, owned by the caller.
 */
struct message *message_from_send(const struct stomp_frame *send, const char *destination,
                                  size_t destination_len, const char *reply_to);

/* A message from raw parts (HTTP publish, tests); headers may be NULL. */
struct message *message_new(const char *destination, size_t destination_len,
                            const struct stomp_header *headers, size_t header_count,
                            const char *body, size_t body_len);

/*
 * A copy of msg for another event loop (server.threads > 1): destination, headers, body, message
 * id and stream id are the same; refcount and encoded heads are its own. Refcounts are not atomic,
 * so a message never crosses loops: each loop gets its own copy. NULL when out of memory.
 */
struct message *message_clone(const struct message *msg);

struct message *message_ref(struct message *msg);
void message_unref(struct message *msg);

/* The shared MESSAGE header lines for version v (see encoded[] above) and, in *tail, the
 * offset after the destination line; NULL when out of memory. */
const char *message_encoded_head(struct message *msg, enum stomp_version v, size_t *len,
                                 size_t *tail);

/* Total messages created (the next seq is this + 1). */
uint64_t message_count(void);

/* The process's random part of every message-id ("m-<run id>-<seq>"): 12 hex digits. */
const char *message_run_id(void);

#endif
