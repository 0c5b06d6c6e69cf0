/*
 * stomp/parser.h - incremental STOMP 1.0/1.1/1.2 frame parser (sans-I/O).
 *
 * What it is for: turning a byte stream (raw TCP chunks, or WebSocket message payloads where one
 * message may hold several frames and one frame may span several messages) into frames, one
 * stomp_parser_feed() call at a time, over any split of the input. Client and server frames are
 * both accepted. Heart-beat EOLs between frames are reported as such.
 *
 * What it must not do: I/O, logging, or decisions about the session. It never includes libevent or
 * socket headers, never reads past the `len` bytes it is given, never rescans bytes it has already
 * scanned (a 1 MiB body fed one byte per call costs linear time), and never buffers more than the
 * limits allow. Turning an error into an ERROR frame and closing is the caller's job.
 *
 * Wire rules applied:
 * - EOL is LF or CR LF in every version; any number of EOLs between frames is a heart-beat.
 * - Header escapes: none in 1.0; \n \c \\ in 1.1 (\r is undefined there, hence an error); \r \n \c
 *   \\ in 1.2 and before a version is set. Any other escape is STOMP_ERR_BAD_ESCAPE. CONNECT,
 *   STOMP and CONNECTED headers are never unescaped (their backslashes are literal).
 * - Header values keep surrounding spaces in 1.1+; in 1.0 spaces and tabs around values are
 * trimmed.
 * - A header line is split at its first ':'; later colons belong to the value (CONNECT frames and
 *   1.0 peers send them unescaped).
 * - Repeated headers are all kept, in order; lookups return the first.
 * - With content-length (its first occurrence), the body is exactly that many octets (NULs
 *   allowed) and must be followed by NUL; content-length above max_body is rejected as soon as the
 *   header line is complete. Without it, the body runs to the first NUL.
 * - A NUL where a header line would start ends the frame with an empty body (the spec's
 *   DISCONNECT and RECEIPT examples omit the blank line); with a non-zero content-length it is
 *   STOMP_ERR_BAD_HEADER. A NUL anywhere else in the command or header lines is an error too.
 */
#ifndef STOMPWS_STOMP_PARSER_H
#define STOMPWS_STOMP_PARSER_H

#include <stddef.h>
#include <sys/types.h>

#include "stomp/frame.h"

/* Default limits; config may override each. A zero field in struct stomp_limits means "default". */
/* Header lines per frame (not counting the command line). */
#define STOMP_DEFAULT_MAX_HEADERS 64
/* Octets in one command or header line, EOL excluded, before unescaping. */
#define STOMP_DEFAULT_MAX_HEADER_LINE 8192
/* Octets from the first command octet through the blank line's EOL, EOLs included. */
#define STOMP_DEFAULT_MAX_HEADER_BYTES 65536
/* Body octets (the terminating NUL excluded). */
#define STOMP_DEFAULT_MAX_BODY (1024 * 1024)

/* Per-parser input limits; copied by stomp_parser_new(). */
struct stomp_limits {
    size_t max_headers;      /* see STOMP_DEFAULT_MAX_HEADERS */
    size_t max_header_line;  /* see STOMP_DEFAULT_MAX_HEADER_LINE */
    size_t max_header_bytes; /* see STOMP_DEFAULT_MAX_HEADER_BYTES */
    size_t max_body;         /* see STOMP_DEFAULT_MAX_BODY */
};

/* What a successful stomp_parser_feed() produced. */
enum stomp_event {
    STOMP_EVENT_NONE,      /* all input consumed (possibly buffered); more is needed */
    STOMP_EVENT_FRAME,     /* *frame holds a complete frame */
    STOMP_EVENT_HEARTBEAT, /* one or more EOLs between frames were consumed (peer is alive) */
};

/* Opaque; owns its buffers. One per connection, used by one thread. */
struct stomp_parser;

/* Fills *limits with the STOMP_DEFAULT_* values. */
void stomp_limits_default(struct stomp_limits *limits);

/* New parser with a copy of *limits (NULL: defaults), no version set. NULL when out of memory. */
struct stomp_parser *stomp_parser_new(const struct stomp_limits *limits);

/* Frees the parser and its buffers; any frame it returned becomes invalid. NULL is a no-op. */
void stomp_parser_free(struct stomp_parser *parser);

/*
 * Sets the negotiated version; it decides the escaping and trimming of every frame whose command
 * line is parsed afterwards. Call it after the CONNECT (or CONNECTED) frame is handled.
 */
void stomp_parser_set_version(struct stomp_parser *parser, enum stomp_version version);

/* Back to the state of a new parser (no version, no partial frame, no error); keeps the limits
 * and the allocated buffers. Invalidates any frame previously returned. */
void stomp_parser_reset(struct stomp_parser *parser);

/*
 * Consumes a prefix of buf[0..len) and returns its length (>= 0), or a negative stomp_error.
 * On success *ev says what was found:
 * - STOMP_EVENT_FRAME: *frame is a complete frame, valid until the next feed/reset/free on this
 *   parser. Bytes after it were not consumed: call again with buf + returned, len - returned.
 * - STOMP_EVENT_HEARTBEAT: EOLs between frames were consumed; call again with the rest.
 * - STOMP_EVENT_NONE: all len bytes were consumed (the parser keeps what it needs); feed more.
 * When the whole frame lies inside buf, header names/values that needed no unescaping and the
 * body point into buf (no copy). Otherwise the parser copies the frame into its own buffer,
 * bounded by the limits.
 * After an error the parser stays failed (every feed returns the same error) until reset.
 * *frame is zeroed unless the event is FRAME.
 */
ssize_t stomp_parser_feed(struct stomp_parser *parser, const char *buf, size_t len,
                          struct stomp_frame *frame, enum stomp_event *ev);

/*
 * Short message for the last error, for an ERROR frame's `message` header, e.g.
 * "frame header count exceeds max_headers (64)". "" when there was no error. Owned by the parser;
 * valid until the next feed/reset/free.
 */
const char *stomp_parser_error_message(const struct stomp_parser *parser);

/* The last error (a negative stomp_error) or 0. */
int stomp_parser_error(const struct stomp_parser *parser);

/*
 * Frees the parser's buffers when no partial frame is held (between frames), so an idle
 * connection costs only the parser itself; they are allocated again by the next frame. Any frame
 * returned before becomes invalid. Returns the octets freed (0 when a partial frame is held).
 */
size_t stomp_parser_shrink(struct stomp_parser *parser);

/* Octets of a partial frame held in the parser's own buffer (for metrics and memory accounting). */
size_t stomp_parser_buffered(const struct stomp_parser *parser);

#endif
