/*
 * stomp/frame.h - the STOMP frame value type and the protocol rules that need no bytes.
 *
 * What it is for: the command and version enums, the frame struct every stomp/ and broker/ module
 * passes around, header lookup, per-command header validation, version negotiation and heart-beat
 * arithmetic (STOMP 1.0, 1.1 and 1.2).
 *
 * What it must not do: I/O of any kind, logging, allocation. It never includes libevent or socket
 * headers. Everything here is a pure function of its arguments.
 */
#ifndef STOMPWS_STOMP_FRAME_H
#define STOMPWS_STOMP_FRAME_H

#include <stdbool.h>
#include <stddef.h>

/* Protocol versions; the value is major * 10 + minor so they order naturally. */
enum stomp_version {
    STOMP_V1_0 = 10,
    STOMP_V1_1 = 11,
    STOMP_V1_2 = 12,
};

/* Bits of a "supported versions" mask for stomp_negotiate_version(). */
#define STOMP_VERSION_BIT(v) (1u << ((unsigned)(v) - (unsigned)STOMP_V1_0))
#define STOMP_VERSIONS_ALL                                                                         \
    (STOMP_VERSION_BIT(STOMP_V1_0) | STOMP_VERSION_BIT(STOMP_V1_1) | STOMP_VERSION_BIT(STOMP_V1_2))

/* Client commands first, then server commands. The order is part of the API. */
enum stomp_command {
    STOMP_CMD_CONNECT,
    STOMP_CMD_STOMP,
    STOMP_CMD_SEND,
    STOMP_CMD_SUBSCRIBE,
    STOMP_CMD_UNSUBSCRIBE,
    STOMP_CMD_ACK,
    STOMP_CMD_NACK,
    STOMP_CMD_BEGIN,
    STOMP_CMD_COMMIT,
    STOMP_CMD_ABORT,
    STOMP_CMD_DISCONNECT,
    STOMP_CMD_CONNECTED,
    STOMP_CMD_MESSAGE,
    STOMP_CMD_RECEIPT,
    STOMP_CMD_ERROR,
};
#define STOMP_COMMAND_COUNT 15

/*
 * Every error of the stomp/ module, returned as a negative value. Parser errors first, then the
 * errors of the validation and negotiation helpers. stomp_strerror() names each one.
 */
enum stomp_error {
    STOMP_OK = 0,
    STOMP_ERR_NOMEM = -1,                 /* allocation failed (parser buffers) */
    STOMP_ERR_UNKNOWN_COMMAND = -2,       /* command line is not a STOMP command */
    STOMP_ERR_MISSING_COLON = -3,         /* header line without ':' */
    STOMP_ERR_BAD_HEADER = -4,            /* empty header name, or NUL octet in the header part */
    STOMP_ERR_BAD_ESCAPE = -5,            /* undefined escape sequence (e.g. \t; \r in 1.1) */
    STOMP_ERR_BAD_CONTENT_LENGTH = -6,    /* content-length is not a decimal octet count */
    STOMP_ERR_MISSING_NUL = -7,           /* the octet after a content-length body is not NUL */
    STOMP_ERR_BAD_EOL = -8,               /* CR not followed by LF between frames */
    STOMP_ERR_TOO_MANY_HEADERS = -9,      /* limit: max_headers */
    STOMP_ERR_HEADER_LINE_TOO_LONG = -10, /* limit: max_header_line */
    STOMP_ERR_HEADERS_TOO_LARGE = -11,    /* limit: max_header_bytes */
    STOMP_ERR_BODY_TOO_LARGE = -12,       /* limit: max_body */
    STOMP_ERR_MISSING_HEADER = -13,       /* validation: a required header is absent */
    STOMP_ERR_BODY_NOT_ALLOWED = -14,     /* validation: only SEND, MESSAGE, ERROR carry a body */
    STOMP_ERR_UNSUPPORTED_COMMAND = -15, /* validation: command not in this version (NACK in 1.0) */
    STOMP_ERR_NO_COMMON_VERSION = -16,   /* negotiation: accept-version shares nothing with us */
    STOMP_ERR_BAD_HEARTBEAT = -17,       /* heart-beat header is not "x,y" */
};

/*
 * One header. The four fields describe bytes owned by whoever produced the frame (see
 * struct stomp_frame); they are not NUL-terminated and may contain any octet except NUL.
 */
struct stomp_header {
    const char *name; /* borrowed: name_len octets, unescaped */
    size_t name_len;
    const char *value; /* borrowed: value_len octets, unescaped */
    size_t value_len;
};

/*
 * One frame. A frame owns nothing; its pointers borrow from the producer:
 * - frames returned by stomp_parser_feed() borrow the caller's input buffer (zero-copy case) or
 *   the parser's own buffers; they stay valid until the next stomp_parser_feed(),
 *   stomp_parser_reset() or stomp_parser_free() on that parser. Copy what must live longer.
 * - frames built by the broker to be encoded borrow whatever the builder points them at; the
 *   encoder only reads them.
 */
struct stomp_frame {
    enum stomp_command command;
    struct stomp_header *headers; /* borrowed: header_count entries, in wire order */
    size_t header_count;
    const char *body; /* borrowed: body_len octets (may hold NULs); NULL or any when 0 */
    size_t body_len;
};

/* Wire name of a version ("1.0", "1.1", "1.2"); "?" for anything else. */
const char *stomp_version_name(enum stomp_version version);

/* Wire name of a command ("CONNECT", ...); "?" for anything else. */
const char *stomp_command_name(enum stomp_command command);

/* Parses a wire command name (exact, case-sensitive). 0 and *out set, or
 * STOMP_ERR_UNKNOWN_COMMAND. */
int stomp_command_from_name(const char *name, size_t len, enum stomp_command *out);

/* Short English name of a stomp_error value ("unknown command", ...). */
const char *stomp_strerror(int error);

/*
 * First header named `name` (NUL-terminated, exact match), or NULL. The first occurrence wins, as
 * STOMP 1.2 requires for repeated headers.
 */
const struct stomp_header *stomp_frame_header(const struct stomp_frame *frame, const char *name);

/* Same as stomp_frame_header() with a counted name. */
const struct stomp_header *stomp_frame_header_n(const struct stomp_frame *frame, const char *name,
                                                size_t name_len);

/* True when header is non-NULL and its value equals the NUL-terminated `value` exactly. */
bool stomp_header_is(const struct stomp_header *header, const char *value);

/*
 * Checks that `frame` carries the headers its command requires in `version`, and that only SEND,
 * MESSAGE and ERROR have a body. Returns 0, or a negative stomp_error with *message (if message
 * is non-NULL) set to a static sentence naming the problem, e.g. "SEND frame has no destination
 * header", suitable for an ERROR frame's message header.
 *   SEND: destination.  SUBSCRIBE: destination, and id in 1.1+.  UNSUBSCRIBE: id in 1.1+,
 *   destination or id in 1.0.  ACK/NACK: id in 1.2, message-id and subscription in 1.1,
 *   message-id in 1.0; NACK does not exist in 1.0.  BEGIN/COMMIT/ABORT: transaction.
 *   CONNECT: accept-version and host in 1.1+; STOMP: always (the command implies 1.1+).
 *   CONNECTED: version in 1.1+.  MESSAGE: destination, message-id, and subscription in 1.1+.
 *   RECEIPT: receipt-id.
 */
int stomp_frame_validate(const struct stomp_frame *frame, enum stomp_version version,
                         const char **message);

/*
 * Picks the session version from a CONNECT frame's accept-version value: the highest version both
 * in the comma-separated list and in `supported_mask` (STOMP_VERSION_BIT()s). Unknown entries
 * such as "2.0" are ignored; spaces around entries are tolerated. accept_version == NULL means the
 * header is absent, which means 1.0. Returns an enum stomp_version (positive) or
 * STOMP_ERR_NO_COMMON_VERSION. For the ERROR frame the spec asks for in that case, see
 * stomp_encode_version_error() in stomp/encode.h.
 */
int stomp_negotiate_version(const char *accept_version, size_t len, unsigned supported_mask);

/*
 * Writes the versions of `supported_mask` as a comma-separated list ("1.0,1.1,1.2") into out
 * (NUL-terminated when it fits). Returns the length without the NUL, snprintf-like: when the
 * result is >= cap the output is truncated and must not be used.
 */
size_t stomp_versions_list(char *out, size_t cap, unsigned supported_mask);

/*
 * Parses a heart-beat header value: exactly two unsigned decimal integers separated by one comma,
 * no sign, no spaces, each <= UINT_MAX. Returns 0 and sets *cx, *cy, or STOMP_ERR_BAD_HEARTBEAT
 * (outputs untouched). A missing header means "0,0": the caller handles that case.
 */
int stomp_heartbeat_parse(const char *value, size_t len, unsigned *cx, unsigned *cy);

/*
 * The spec's heart-beat arithmetic. (cx, cy) come from the client's CONNECT, (sx, sy) from our
 * CONNECTED. server_send_ms: how often we must send something (0: never) = 0 if sx or cy is 0,
 * else max(sx, cy). server_expect_ms: how often the client promises data (0: never) = 0 if cx or
 * sy is 0, else max(cx, sy).
 */
void stomp_heartbeat_negotiate(unsigned cx, unsigned cy, unsigned sx, unsigned sy,
                               unsigned *server_send_ms, unsigned *server_expect_ms);

#endif
