/*
 * envelope.h - the on-Redis format of a message that travels between broker nodes.
 *
 * What it is for: a binary-safe, versioned encoding of one topic message (origin node, sequence
 * number, destination, user headers, body) that another node, or any program that follows
 * docs/CLUSTER.md, can produce and parse. Sans-I/O in the style of picohttpparser: the caller
 * hands in bytes and an output array; nothing is allocated, nothing is kept between calls.
 *
 * What it must not do: I/O, logging, allocation. The decoder is strict and bounds-checked: it
 * reads only the bytes it is given, rejects anything it does not fully understand, and never
 * trusts a length before comparing it with what is left. Decoded fields point into the input.
 *
 * Layout (all integers big-endian; docs/CLUSTER.md has the byte-by-byte table):
 *
 *   magic "\0SWS" | version u8 (1) | flags u8 (0) | origin_len u8 | origin
 *   | seq u64 | dest_len u32 | dest | header_count u32
 *   | header_count x (name_len u32 | name | value_len u32 | value) | body_len u32 | body
 *
 * The envelope ends exactly after the body: trailing bytes are an error.
 */
#ifndef STOMPWS_ENVELOPE_H
#define STOMPWS_ENVELOPE_H

/* The layers' rule, enforced by the build: broker/ is compiled with STOMPWS_BROKER_LAYER. */
#ifdef STOMPWS_BROKER_LAYER
#error "a broker/ file includes a header of cluster/ or server/, the layers above it"
#endif

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stomp/frame.h"

#define ENVELOPE_MAGIC     "\0SWS"
#define ENVELOPE_MAGIC_LEN 4
#define ENVELOPE_VERSION   1
/* magic + version + flags + origin_len + seq + dest_len + header_count + body_len */
#define ENVELOPE_FIXED_LEN  (ENVELOPE_MAGIC_LEN + 1 + 1 + 1 + 8 + 4 + 4 + 4)
#define ENVELOPE_ORIGIN_MAX 255 /* origin_len is one byte */

/* Decoder limits (the broker passes its [limits] section, so a node accepts from another node
 * what it would accept from a client). envelope_limits_default() gives the broker's defaults. */
struct envelope_limits {
    size_t max_destination;  /* bytes; the broker's limits.max_header_line */
    size_t max_headers;      /* count; limits.max_frame_headers */
    size_t max_header_bytes; /* sum of name and value bytes; limits.max_header_bytes */
    size_t max_body;         /* bytes; limits.max_body */
};

enum envelope_error {
    ENVELOPE_ERR_TRUNCATED = -1,        /* input ends inside a field */
    ENVELOPE_ERR_BAD_MAGIC = -2,        /* does not start with "\0SWS" */
    ENVELOPE_ERR_BAD_VERSION = -3,      /* version byte is not ENVELOPE_VERSION */
    ENVELOPE_ERR_BAD_FLAGS = -4,        /* reserved flags byte is not 0 */
    ENVELOPE_ERR_BAD_FIELD = -5,        /* empty origin/destination/header name, or a NUL in one */
    ENVELOPE_ERR_TOO_LARGE = -6,        /* a length over its limit */
    ENVELOPE_ERR_TOO_MANY_HEADERS = -7, /* header_count over the limit or the caller's array */
    ENVELOPE_ERR_TRAILING = -8,         /* bytes after the body */
};

/*
 * One envelope, as fields. For encoding the caller fills it; for decoding envelope_decode()
 * fills it with pointers into the input (and headers into the caller's array). Nothing here is
 * owned and nothing is NUL-terminated.
 */
struct envelope {
    const char *origin; /* borrowed: node id of the publisher, 1..255 bytes */
    size_t origin_len;
    uint64_t seq;            /* the origin's sequence number (per node, from 1) */
    const char *destination; /* borrowed: e.g. "/topic/prices" */
    size_t destination_len;
    const struct stomp_header *headers; /* borrowed: user headers, unescaped */
    size_t header_count;
    const char *body; /* borrowed */
    size_t body_len;
};

void envelope_limits_default(struct envelope_limits *lim);

/* True when buf starts with the magic: it is meant to be an envelope (decode it), not a raw
 * payload from a backend. Reads at most ENVELOPE_MAGIC_LEN bytes. */
bool envelope_has_magic(const void *buf, size_t len);

/*
 * Bytes envelope_encode() will write for env, or 0 when a field cannot be encoded (origin empty
 * or over 255 bytes, a length over UINT32_MAX, or the total over SIZE_MAX).
 */
size_t envelope_size(const struct envelope *env);

/*
 * Writes env to out. Returns the bytes written (envelope_size(env)), or 0 when cap is smaller or
 * a field cannot be encoded (a valid envelope is never empty). The encoder does not apply the
 * decoder's content checks (NUL bytes, empty names): a sender must not produce what a receiver
 * rejects, and the broker's own messages never hold such fields.
 */
size_t envelope_encode(const struct envelope *env, void *out, size_t cap);

/*
 * Parses exactly len bytes of buf as one envelope. headers is the caller's array of header_cap
 * entries that receives the header views. Returns 0 and fills *env, or a negative
 * enum envelope_error (and *env is unspecified). Reads nothing outside buf[0..len).
 */
int envelope_decode(const void *buf, size_t len, const struct envelope_limits *lim,
                    struct stomp_header *headers, size_t header_cap, struct envelope *env);

/* A short English description of an envelope_error, for logs. */
const char *envelope_strerror(int err);

#endif
