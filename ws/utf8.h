/*
 * ws/utf8.h - UTF-8 validation for WebSocket text messages and close reasons (RFC 3629).
 *
 * Two entry points: an incremental validator that keeps its state across chunks and frames (the
 * decoder feeds it payload as it is unmasked, so a bad byte fails the message at once), and a
 * whole-buffer check with an ASCII fast path (the broker uses it on every outbound message to
 * choose a text or binary opcode). Accepts exactly the Unicode scalar values: no overlong forms, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF.
 *
 * Must not: allocate, do I/O, or decode code points (validation only).
 */
#ifndef STOMPWS_WS_UTF8_H
#define STOMPWS_WS_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum ws_utf8_error {
    WS_UTF8_INVALID = -1, /* a byte that can never be part of valid UTF-8 at that position */
};

/* Incremental validator state. Plain value: copy, reset with ws_utf8_init(), no resources. */
struct ws_utf8 {
    uint32_t state; /* DFA state: 0 = between characters; other values are private to utf8.c */
};

/* Resets to "between characters". */
void ws_utf8_init(struct ws_utf8 *v);

/*
 * Validates the next n bytes of a stream. Returns 0 if every byte so far can still be part of valid
 * UTF-8; WS_UTF8_INVALID from the call that holds the first byte that cannot (the state then stays
 * rejected, and later calls return it at once). A sequence may be split anywhere between calls;
 * check ws_utf8_complete() at the end of the stream.
 */
int ws_utf8_feed(struct ws_utf8 *v, const uint8_t *p, size_t n);

/* True if the bytes fed so far are valid and do not end inside a multi-byte sequence. */
bool ws_utf8_complete(const struct ws_utf8 *v);

/* True if p[0..n) is complete, valid UTF-8. ASCII runs are checked a machine word at a time. */
bool ws_utf8_valid(const uint8_t *p, size_t n);

#endif
