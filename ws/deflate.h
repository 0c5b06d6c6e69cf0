/*
 * ws/deflate.h - permessage-deflate (RFC 7692): the negotiation, and one message deflated or
 * inflated with a z_stream the caller owns.
 *
 * The broker keeps no compression state per connection. It always answers with
 * server_no_context_takeover and client_no_context_takeover, so every message in either direction
 * is a raw deflate stream of its own: one z_stream per event loop serves every connection of the
 * loop, reset between messages. That is also what lets a message fanned out to many subscribers
 * be deflated once: ws_deflate_message() output does not depend on what went before, and
 * ws_deflate_stored() puts a short per-delivery prefix in front of it as uncompressed (stored)
 * deflate blocks.
 *
 * Negotiation follows the parser contract of handshake.h (slices into the request, no
 * allocation). The compression helpers call zlib, which allocates a stream's state when the
 * caller initialises it; they do no I/O and keep nothing between calls.
 *
 * Must not: do I/O, include libevent or socket headers, or keep state of its own.
 */
#ifndef STOMPWS_WS_DEFLATE_H
#define STOMPWS_WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h> /* ssize_t */
#include <zlib.h>

#include "ws/handshake.h"

/*
 * The LZ77 windows the server compresses with: 2^15 bytes unless the client asks for a smaller
 * one (server_max_window_bits 9..14), then 2^9. Two sizes, not seven, so a message is deflated at
 * most twice whatever mix of clients receives it. An offer of server_max_window_bits=8 is declined:
 * zlib's raw deflate has no 256-byte window.
 */
#define WS_DEFLATE_WINDOW_BITS       15
#define WS_DEFLATE_SMALL_WINDOW_BITS 9

/* The outcome of a negotiation. Plain value. */
struct ws_deflate_params {
    bool enabled;             /* an offer was accepted: answer with the extension */
    bool small_window;        /* compress with WS_DEFLATE_SMALL_WINDOW_BITS (answered as
                                 server_max_window_bits=9) */
    bool asked_server_window; /* the accepted offer had server_max_window_bits: the answer
                                 must carry it too */
};

/*
 * Reads every Sec-WebSocket-Extensions header of req and accepts the first permessage-deflate
 * offer the broker can honour (RFC 7692 section 7.1): parameters known, none repeated, values
 * well formed, server_max_window_bits 9..15. Returns 0 with out->enabled set, or -1 with it clear
 * when there is no such offer (the upgrade goes on without the extension, never a 400).
 */
int ws_deflate_negotiate(const struct ws_http_request *req, struct ws_deflate_params *out);

/*
 * Writes the Sec-WebSocket-Extensions value answering an accepted offer (no header name, no
 * CRLF): "permessage-deflate; server_no_context_takeover; client_no_context_takeover" and, when
 * asked for, "; server_max_window_bits=N". Returns its length, or -1 if cap is too small (a NUL
 * follows the value, not counted).
 */
int ws_deflate_response_value(char *out, size_t cap, const struct ws_deflate_params *p);

/* raw deflate (no zlib header) streams for one direction; 0, or -1 when zlib fails (memory) */
int ws_deflate_init(z_stream *zs, int level, int window_bits);
int ws_inflate_init(z_stream *zs);

/* The most ws_deflate_message() writes for len bytes of input. */
size_t ws_deflate_bound(size_t len);

/*
 * Deflates in[0..len) as a message of its own (RFC 7692 section 7.2.1): resets zs, compresses
 * with a sync flush and leaves out the final 00 00 FF FF. The output starts and ends on a byte
 * boundary and refers to nothing before its start, so it may follow stored blocks. out must hold
 * ws_deflate_bound(len) bytes. Returns the bytes written or -1 (a zlib error).
 */
ssize_t ws_deflate_message(z_stream *zs, const uint8_t *in, size_t len, uint8_t *out, size_t cap);

/* Bytes ws_deflate_stored() writes for len bytes: a 5-byte header per 65,535 bytes, and data. */
size_t ws_deflate_stored_size(size_t len);

/*
 * Writes data[0..len) as non-final stored deflate blocks (RFC 1951 section 3.2.4: a byte 00, then
 * LEN and its one's complement NLEN, little-endian, then the bytes). Followed by the output of
 * ws_deflate_message() they make one message's payload. out must hold ws_deflate_stored_size(len)
 * bytes; returns what was written (0 for len 0).
 */
size_t ws_deflate_stored(uint8_t *out, const uint8_t *data, size_t len);

/* Where ws_inflate_message() puts what it inflates; a negative return stops it with that value. */
typedef int (*ws_inflate_sink)(void *ctx, const uint8_t *data, size_t len);

/*
 * Inflates one message's payload in[0..len) (the 00 00 FF FF of RFC 7692 section 7.2.2 is added
 * here) with zs, reset first, handing the output to sink piece by piece. Returns the inflated
 * size, WS_ERR_INFLATED_TOO_BIG as soon as it would pass limit (the rest is not inflated: a
 * deflate bomb costs at most limit bytes of work), WS_ERR_INFLATE for data that is not deflate,
 * or what sink returned when negative.
 */
ssize_t ws_inflate_message(z_stream *zs, const uint8_t *in, size_t len, size_t limit,
                           ws_inflate_sink sink, void *ctx);

#endif
