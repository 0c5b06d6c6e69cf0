/*
 * sse_request.h - what a Server-Sent Events request asks for, and the resume token of its events.
 *
 * GET /sse?destination=D[&destination=D2...][&format=raw][&x-stream-offset=V] names what a
 * reader follows; the `id:` of every event it gets is a token holding, per destination that
 * carried one, the offset and epoch of the last message it was sent, and the time the stream
 * began. The browser sends the token back as Last-Event-ID when it reconnects, and the broker
 * resumes each destination from there (broker/session/sse.c).
 *
 * What it must not do: allocate, do I/O or know the session. Both parsers take bytes and a
 * length (no NUL needed), write only into the caller's struct and return 0 or a negative
 * enum sse_request_error, so that they are fuzzed without a socket (tests/fuzz/fuzz_sse_query.c).
 */
#ifndef STOMPWS_SSE_REQUEST_H
#define STOMPWS_SSE_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Destinations one request may follow; each is one subscription of the reader's session. */
#define SSE_MAX_DESTINATIONS 16
/* Bytes of one decoded destination name. */
#define SSE_DESTINATION_MAX 512
/* Bytes of all decoded values of one request together. */
#define SSE_REQUEST_STORAGE 4096
/* Marks one token holds: one per destination that sent a message with an offset. */
#define SSE_MAX_MARKS 32
/* Characters of an encoded token (what goes out in `id:` and comes back in Last-Event-ID). */
#define SSE_TOKEN_MAX 2048

enum sse_request_error {
    SSE_REQUEST_OK = 0,
    SSE_REQUEST_NO_DESTINATION = -1,  /* no destination parameter */
    SSE_REQUEST_TOO_MANY = -2,        /* more than SSE_MAX_DESTINATIONS */
    SSE_REQUEST_BAD_ESCAPE = -3,      /* a %XX that is not two hex digits */
    SSE_REQUEST_TOO_LONG = -4,        /* a value past its bound, or all past the storage */
    SSE_REQUEST_BAD_FORMAT = -5,      /* format is neither json nor raw */
    SSE_REQUEST_BAD_DESTINATION = -6, /* empty, or holds a control character */
    SSE_REQUEST_BAD_TOKEN = -7,       /* Last-Event-ID is not a token this broker makes */
};

enum sse_format { SSE_FORMAT_JSON, SSE_FORMAT_RAW };

struct sse_slice {
    const char *ptr;
    size_t len;
};

/* A parsed query; the slices point into storage (decoded) or, access_token, into the query. */
struct sse_request {
    struct sse_slice destinations[SSE_MAX_DESTINATIONS];
    size_t destination_count;
    enum sse_format format;
    struct sse_slice stream_offset; /* x-stream-offset, decoded; ptr NULL when absent */
    struct sse_slice access_token;  /* as written (a JWT needs no decoding); ptr NULL if absent */
    char storage[SSE_REQUEST_STORAGE];
    size_t storage_used;
};

/* Parses the query (what follows '?', without it; len 0 for none). Unknown keys are ignored. */
int sse_request_parse(struct sse_request *out, const char *query, size_t len);

/* One destination's last message sent to the reader. */
struct sse_mark {
    uint64_t offset;
    uint64_t epoch;
    uint64_t used; /* when it last changed (a counter): the least recent goes first */
    size_t destination_len;
    char destination[SSE_DESTINATION_MAX];
};

struct sse_token {
    uint64_t start_s; /* wall-clock seconds when the first connection of the stream began */
    uint64_t clock;   /* counter behind sse_mark.used */
    size_t count;
    struct sse_mark marks[SSE_MAX_MARKS];
};

/* Decodes a Last-Event-ID value into out. */
int sse_token_decode(struct sse_token *out, const char *text, size_t len);

/*
 * Encodes t into out (cap bytes, SSE_TOKEN_MAX + 1 is always enough): the characters of the
 * base64url alphabet, then a NUL. Returns the length. Marks that do not fit are left out,
 * least recently used first (see sse_token_trim()).
 */
size_t sse_token_encode(const struct sse_token *t, char *out, size_t cap);

/* The mark of destination name, or NULL. */
struct sse_mark *sse_token_find(struct sse_token *t, const char *name, size_t len);

/*
 * Records that the message at offset of epoch on destination name was sent. A new destination
 * past SSE_MAX_MARKS takes the place of the least recently used mark. Returns the mark, or NULL
 * when the name is longer than SSE_DESTINATION_MAX (it is then not resumable).
 */
struct sse_mark *sse_token_note(struct sse_token *t, const char *name, size_t len, uint64_t offset,
                                uint64_t epoch);

/* Whether a message is at or below the mark of its destination, same epoch: already sent. */
bool sse_token_seen(struct sse_token *t, const char *name, size_t len, uint64_t offset,
                    uint64_t epoch);

/* A short text for an error, for logs and the JSON answer. */
const char *sse_request_error_message(int err);

#endif
