/*
 * fuzz_presence_query.c - libFuzzer harness for broker/http/presence_query: the query of
 * GET /api/presence?destination=D.
 *
 * Input layout: byte 0 is the caller's length limit (0..255), the rest a query string, parsed
 * from a heap block of exactly its size (ASan flags a read past it).
 *
 * Invariants: a success is an exact /topic/ name (not a wildcard), at most the limit, without a
 * control octet, valid UTF-8, NUL-terminated at its length, and no longer than the input (decoding
 * only shrinks); the input then holds exactly one `destination` key (counted here the simple
 * way). A failure is one of the documented errors, each with a message.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "broker/core/destination.h"
#include "broker/http/presence_query.h"
#include "tests/fuzz/fuzz.h"
#include "ws/utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t max = data[0];
    size_t len = size - 1;
    char *q = exact_copy(data + 1, len);
    char out[256 + 1];
    memset(out, 0x55, sizeof(out));
    long rc = presence_query_destination(len > 0 ? q : NULL, len, out, max);
    if (rc < 0) {
        CHECK(rc >= PRESENCE_QUERY_WILDCARD && rc <= PRESENCE_QUERY_MISSING);
        CHECK(strcmp(presence_query_error_message(rc), "ok") != 0);
    } else {
        size_t n = (size_t)rc;
        CHECK(n <= max && n <= len);
        CHECK(out[n] == '\0' && strlen(out) == n);
        for (size_t i = 0; i < n; i++)
            CHECK((unsigned char)out[i] >= 0x20 && out[i] != 0x7F);
        CHECK(ws_utf8_valid((const uint8_t *)out, n));
        CHECK(destination_kind(out, n) == DEST_TOPIC && !destination_is_wildcard(out, n));
        CHECK(query_key_count(q, len, "destination") == 1);
    }
    free(q);
    return 0;
}
