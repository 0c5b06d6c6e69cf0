/*
 * ws/frame.h - RFC 6455 framing: incremental decoder, header encoder, masking, close payloads.
 *
 * The decoder is sans-I/O and allocation-free: the caller passes whatever bytes the socket gave,
 * the decoder unmasks data payload in place and hands back events that point into the caller's
 * buffer (data frames are streamed in chunks, never reassembled here). It enforces every protocol
 * rule a receiver must (masking, RSV bits, opcodes, control frame limits, fragmentation order,
 * message size, UTF-8 of text messages and close reasons, close codes) and says which close code
 * to send. The encoder writes only frame headers, so payloads are never copied to frame them.
 *
 * Must not: allocate, do I/O, include libevent or socket headers, or buffer data payloads.
 */
#ifndef STOMPWS_WS_FRAME_H
#define STOMPWS_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h> /* ssize_t */

#include "ws/utf8.h"

enum ws_opcode {
    WS_OP_CONTINUATION = 0,
    WS_OP_TEXT = 1,
    WS_OP_BINARY = 2,
    WS_OP_CLOSE = 8,
    WS_OP_PING = 9,
    WS_OP_PONG = 10,
};

/* Close status codes (RFC 6455 section 7.4.1). */
#define WS_CLOSE_NORMAL         1000
#define WS_CLOSE_GOING_AWAY     1001
#define WS_CLOSE_PROTOCOL_ERROR 1002
#define WS_CLOSE_UNSUPPORTED    1003
#define WS_CLOSE_NO_STATUS      1005 /* never sent: "the close frame had no code" */
#define WS_CLOSE_ABNORMAL       1006 /* never sent: "the connection dropped without a close" */
#define WS_CLOSE_INVALID_DATA   1007
#define WS_CLOSE_POLICY         1008
#define WS_CLOSE_TOO_BIG        1009
#define WS_CLOSE_INTERNAL_ERROR 1011
#define WS_CLOSE_TRY_AGAIN_LATER 1013 /* IANA registry: a temporary condition, e.g. a full buffer */

#define WS_FRAME_HEADER_MAX    14 /* 2 + 8 (64-bit length) + 4 (mask key) */
#define WS_CONTROL_PAYLOAD_MAX 125
#define WS_DEFAULT_MAX_MESSAGE (1024 * 1024)

/* Protocol violations found by the decoder. ws_error_close_code() maps each to a close code. */
enum ws_error {
    WS_ERR_RSV = -1,                /* 1002: RSV1-3 set (no extension negotiated) */
    WS_ERR_OPCODE = -2,             /* 1002: reserved opcode */
    WS_ERR_CONTROL_TOO_BIG = -3,    /* 1002: control payload over 125 bytes */
    WS_ERR_CONTROL_FRAGMENTED = -4, /* 1002: control frame without FIN */
    WS_ERR_UNMASKED = -5,           /* 1002: client frame not masked */
    WS_ERR_MASKED = -6,             /* 1002: server frame masked */
    WS_ERR_LENGTH_NOT_MINIMAL = -7, /* 1002: length not in its shortest encoding */
    WS_ERR_LENGTH_TOP_BIT = -8,     /* 1002: 64-bit length with the top bit set */
    WS_ERR_CONTINUATION = -9,       /* 1002: continuation frame with no message started */
    WS_ERR_NEW_MESSAGE = -10,       /* 1002: text/binary frame while a message is unfinished */
    WS_ERR_TOO_BIG = -11,           /* 1009: message over max_message_size */
    WS_ERR_INVALID_UTF8 = -12,      /* 1007: text message is not UTF-8 */
    WS_ERR_CLOSE_PAYLOAD = -13,     /* 1002: close payload of one byte */
    WS_ERR_CLOSE_CODE = -14,        /* 1002: close code that may not be sent */
    WS_ERR_CLOSE_REASON_UTF8 = -15, /* 1007: close reason is not UTF-8 */
    WS_ERR_AFTER_CLOSE = -16,       /* 1002: bytes after the close frame */
    WS_ERR_INFLATE = -17,           /* 1007: a compressed message that does not inflate */
    WS_ERR_INFLATED_TOO_BIG = -18,  /* 1009: a message over max_message_size once inflated */
};

/* Close code to send for a decoder error (WS_CLOSE_PROTOCOL_ERROR for unknown values). */
uint16_t ws_error_close_code(int err);
/* Short static reason, fit for a close frame ("message exceeds max_message_size"). */
const char *ws_error_message(int err);

struct ws_decoder_config {
    size_t max_message_size; /* bytes per message across fragments; default 1 MiB */
    bool expect_masked;      /* true on the server; false to decode server frames (clients) */
    bool allow_compressed;   /* permessage-deflate was negotiated: RSV1 may mark a message's
                                first frame as compressed (RFC 7692 section 6) */
};

/* 1 MiB messages, masked input (server side), no compression. */
void ws_decoder_config_default(struct ws_decoder_config *cfg);

/*
 * Decoder state for one connection. Fixed size, owns no memory: init it, feed it, drop it.
 * Fields are private to frame.c; they are here only so callers can embed the struct.
 */
struct ws_decoder {
    struct ws_decoder_config config;
    int state; /* header, payload, closed or failed */
    int error; /* the enum ws_error once failed, repeated on every call */

    uint8_t header[WS_FRAME_HEADER_MAX]; /* header bytes gathered so far (headers may be split) */
    uint8_t header_len;                  /* bytes in header[] */
    uint8_t header_need;                 /* header size once known from the second byte, else 2 */

    uint8_t opcode;      /* current frame */
    bool fin;            /* current frame */
    bool rsv1;           /* current frame: the message is compressed (first frame only) */
    uint8_t mask[4];     /* current frame's masking key */
    uint8_t mask_offset; /* payload bytes already unmasked, mod 4 */
    uint64_t remaining;  /* payload bytes of the current frame not yet consumed */

    uint8_t message_opcode; /* WS_OP_TEXT or WS_OP_BINARY while a message is in progress */
    bool in_message;        /* from a message's first header until its FIN frame is consumed */
    bool message_started;   /* the current message's first DATA event was already emitted */
    bool message_compressed; /* the current message had RSV1: its UTF-8 is checked once inflated */
    uint64_t message_size;  /* payload bytes of the current message so far */
    struct ws_utf8 utf8;    /* validator for the current text message */

    uint8_t control[WS_CONTROL_PAYLOAD_MAX]; /* control payload split across reads */
    uint8_t control_len;                     /* bytes in control[] */
};

void ws_decoder_init(struct ws_decoder *d, const struct ws_decoder_config *cfg);

enum ws_event_type {
    WS_EVENT_NONE,  /* bytes consumed, nothing to report yet */
    WS_EVENT_DATA,  /* a chunk of a text or binary message */
    WS_EVENT_PING,  /* whole ping payload: answer with a pong carrying it */
    WS_EVENT_PONG,  /* whole pong payload */
    WS_EVENT_CLOSE, /* close received: data/len is the reason, close_code the code */
};

struct ws_event {
    enum ws_event_type type;
    uint8_t *data; /* not owned: into the caller's buffer (DATA, and whole control frames)
                      or into the decoder (control frames split across reads); valid until
                      the next decode call or until that buffer is reused */
    size_t len;
    bool text;           /* DATA: the message is text (already UTF-8 checked up to here, unless
                            compressed: the caller checks the inflated bytes) */
    bool compressed;     /* DATA: the message is compressed (permessage-deflate, RSV1) */
    bool message_start;  /* DATA: first chunk of a message */
    bool message_end;    /* DATA: last chunk of the message (FIN frame fully consumed) */
    uint16_t close_code; /* CLOSE: the code received, WS_CLOSE_NO_STATUS if the payload was empty */
};

/*
 * Consumes bytes from buf[0..len) and reports at most one event. Returns the bytes consumed
 * (>= 0) or a negative enum ws_error; call again with the rest. When ev->type is WS_EVENT_NONE
 * all len bytes were consumed (a partial header, or nothing to say). Data payload is unmasked in
 * place and streamed: a frame may come out as several DATA events, one per call; every data frame
 * gives at least one DATA event (zero-length ones too). Control frames, which may arrive between
 * the fragments of a message, come out whole. After an error the same error is returned on every
 * call; after a CLOSE event every call returns WS_ERR_AFTER_CLOSE.
 */
ssize_t ws_decoder_decode(struct ws_decoder *d, uint8_t *buf, size_t len, struct ws_event *ev);

/*
 * Writes a frame header with the minimal length encoding; returns its size (2..14). With a
 * mask_key (clients) the header carries it and the caller masks the payload with ws_mask();
 * servers pass NULL. The payload itself is never touched.
 */
size_t ws_frame_header_encode(uint8_t out[WS_FRAME_HEADER_MAX], enum ws_opcode op, bool fin,
                              uint64_t payload_len, const uint8_t *mask_key);

/*
 * XORs data[0..len) with key, starting at key byte offset % 4 (offset = payload bytes already
 * masked). Masking and unmasking are the same operation. Works a machine word at a time.
 */
void ws_mask(uint8_t *data, size_t len, const uint8_t key[4], size_t offset);

/*
 * Writes a close payload: code (big-endian) + reason cut to fit 125 bytes at a UTF-8 character
 * boundary. Returns its length; 0 (empty payload) for codes that must not be sent (1005, 1006,
 * 1015, 0). reason may be NULL.
 */
size_t ws_close_payload_encode(uint8_t out[WS_CONTROL_PAYLOAD_MAX], uint16_t code,
                               const char *reason);

/* True if code may appear in a close frame on the wire (RFC 6455 7.4 and the IANA registry). */
bool ws_close_code_valid(uint16_t code);

#endif
