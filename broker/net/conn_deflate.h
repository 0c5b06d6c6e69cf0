/*
 * conn_deflate.h - permessage-deflate (RFC 7692) on a loop's WebSocket connections.
 *
 * What conn.c hands over once a connection negotiated the extension: outgoing frames to compress,
 * compressed incoming messages to inflate. The zlib streams are the loop's, one per direction and
 * server window, made on first use and reset between messages; a connection holds none, only
 * the payload of a compressed message whose frames have not all arrived. A MESSAGE delivered to
 * many subscribers is deflated once: its shared part is kept on the message (message.h deflated[])
 * and each delivery puts its own lines in front of it as stored deflate blocks (ws/deflate.h).
 *
 * Must not: name the session (bytes go up through b->conn_handler), or keep zlib state per
 * connection.
 */
#ifndef STOMPWS_CONN_DEFLATE_H
#define STOMPWS_CONN_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>

#include "broker/net/conn.h"
#include "stomp/frame.h"
#include "ws/frame.h"
#include "ws/handshake.h"

/*
 * Accepts req's permessage-deflate offer when compression.enabled and one can be honoured:
 * marks c, lets its decoder take RSV1, and writes the Sec-WebSocket-Extensions value into value.
 * Returns false (c unchanged) when the upgrade goes on without the extension.
 */
bool conn_deflate_accept(struct conn *c, const struct ws_http_request *req, char *value,
                         size_t cap);

/*
 * Queues a compressed MESSAGE frame: head[0..head_len - common_len) is this delivery's own,
 * the rest of head is the part every delivery of msg in STOMP version v ends with; that part and
 * msg's body are deflated once per message. Returns false, having queued nothing, when the frame
 * goes uncompressed (below compression.min_size, deflate saves nothing, out of memory).
 */
bool conn_deflate_message(struct conn *c, enum ws_opcode op, const char *head, size_t head_len,
                          size_t common_len, struct message *msg, enum stomp_version v);

/* Queues head, body and the closing NUL as one compressed frame; false as above. */
bool conn_deflate_frame(struct conn *c, enum ws_opcode op, const char *head, size_t head_len,
                        const char *body, size_t body_len);

/*
 * A DATA event of a compressed message: kept until the message's last frame, then inflated
 * (up to limits.max_ws_message), checked for UTF-8 when it is text and handed to the session.
 * Returns 0 or a negative enum ws_error for the caller to close with.
 */
int conn_deflate_input(struct conn *c, const struct ws_event *ev);

/* Frees what a connection held for a compressed message (conn_free). */
void conn_deflate_forget(struct conn *c);

/* Frees the loop's zlib streams (conn_free_all). */
void conn_deflate_loop_free(struct broker *b);

#endif
