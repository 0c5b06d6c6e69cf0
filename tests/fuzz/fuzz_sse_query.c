/*
 * fuzz_sse_query.c - libFuzzer harness for broker/session/sse_request: the GET /sse query parser
 * and the resume token (Last-Event-ID) decoder and encoder.
 *
 * Input layout: byte 0 picks what the rest is: even, a query string; odd, a Last-Event-ID value.
 * Either is parsed from a heap block of exactly its size (ASan flags a read past it).
 *
 * Query invariants: on success there are 1..SSE_MAX_DESTINATIONS destinations, as many as the
 * input has `destination` keys (counted here the simple way), each non-empty, at most
 * SSE_DESTINATION_MAX bytes, without a control octet, inside the request's storage; the
 * access_token slice lies inside the input. A failure is one of the documented errors.
 *
 * Token invariants: a token that decodes re-encodes within SSE_TOKEN_MAX characters of the
 * base64url alphabet, and that decodes again to the same start and marks in the same order. Then
 * every name of the input is noted as a mark (offset and epoch from its bytes): the encoded token
 * must still decode, every mark it holds equal to the noted one, and sse_token_seen() must agree.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/session/sse_request.h"
#include "tests/fuzz/fuzz.h"

static void fuzz_query(const char *q, size_t len)
{
    static struct sse_request r;
    int rc = sse_request_parse(&r, q, len);
    if (rc != 0) {
        CHECK(rc >= SSE_REQUEST_BAD_DESTINATION && rc <= SSE_REQUEST_NO_DESTINATION);
        CHECK(strcmp(sse_request_error_message(rc), "ok") != 0);
        return;
    }
    CHECK(r.destination_count >= 1 && r.destination_count <= SSE_MAX_DESTINATIONS);
    CHECK(r.destination_count == query_key_count(q, len, "destination"));
    CHECK(r.storage_used <= sizeof(r.storage));
    for (size_t i = 0; i < r.destination_count; i++) {
        struct sse_slice d = r.destinations[i];
        CHECK(d.len >= 1 && d.len <= SSE_DESTINATION_MAX);
        CHECK(d.ptr >= r.storage && d.ptr + d.len <= r.storage + r.storage_used);
        for (size_t j = 0; j < d.len; j++)
            CHECK((unsigned char)d.ptr[j] >= 0x20 && d.ptr[j] != 0x7f);
    }
    if (r.access_token.ptr != NULL)
        CHECK(r.access_token.ptr >= q && r.access_token.ptr + r.access_token.len <= q + len);
    if (r.stream_offset.ptr != NULL)
        CHECK(r.stream_offset.ptr >= r.storage &&
              r.stream_offset.ptr + r.stream_offset.len <= r.storage + r.storage_used);
    CHECK(r.format == SSE_FORMAT_JSON || r.format == SSE_FORMAT_RAW);
}

static bool b64url_only(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* Encodes t and decodes the result into back; checks the encoding's shape. */
static void round_trip(const struct sse_token *t, struct sse_token *back)
{
    static char text[SSE_TOKEN_MAX + 1];
    size_t n = sse_token_encode(t, text, sizeof(text));
    CHECK(n > 0 && n <= SSE_TOKEN_MAX && text[n] == '\0' && b64url_only(text, n));
    CHECK(sse_token_decode(back, text, n) == 0);
    CHECK(back->start_s == t->start_s && back->count <= t->count);
}

static void fuzz_token(const uint8_t *data, const char *text, size_t len)
{
    static struct sse_token t, back;
    if (sse_token_decode(&t, text, len) != 0) {
        memset(&t, 0, sizeof(t));
        t.start_s = len;
    } else {
        round_trip(&t, &back);
        CHECK(back.count == t.count); /* a decoded token fits by construction */
        for (size_t i = 0; i < t.count; i++) {
            CHECK(back.marks[i].offset == t.marks[i].offset);
            CHECK(back.marks[i].epoch == t.marks[i].epoch);
            CHECK(back.marks[i].destination_len == t.marks[i].destination_len);
            CHECK(memcmp(back.marks[i].destination, t.marks[i].destination,
                         t.marks[i].destination_len) == 0);
        }
    }
    /* Every 8-byte piece of the input names a destination, noted with offset from its bytes. */
    for (size_t at = 0; at + 8 <= len && at < 8 * 64; at += 8) {
        uint64_t offset = data[at] + 1, epoch = data[at + 1];
        struct sse_mark *m = sse_token_note(&t, text + at, 8, offset, epoch);
        if (m == NULL)
            continue; /* a control octet: not resumable */
        CHECK(sse_token_seen(&t, text + at, 8, offset, epoch));
        CHECK(!sse_token_seen(&t, text + at, 8, offset + 1, epoch));
    }
    CHECK(t.count <= SSE_MAX_MARKS);
    round_trip(&t, &back);
    for (size_t i = 0; i < back.count; i++) {
        const struct sse_mark *b = &back.marks[i];
        const struct sse_mark *m = sse_token_find(&t, b->destination, b->destination_len);
        CHECK(m != NULL && m->offset == b->offset && m->epoch == b->epoch);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    char *rest = exact_copy(data + 1, size - 1);
    if (data[0] % 2 == 0)
        fuzz_query(rest, size - 1);
    else
        fuzz_token(data + 1, rest, size - 1);
    free(rest);
    return 0;
}
