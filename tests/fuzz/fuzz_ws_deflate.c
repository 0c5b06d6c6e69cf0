/*
 * fuzz_ws_deflate.c - libFuzzer harness for ws/deflate: the inflate path a compressed client
 * message takes (conn_deflate.c), and the permessage-deflate offer parser.
 *
 * Input layout: byte 0 picks what runs. Bit 0 clear: the rest is a message payload as it arrives
 * with RSV1; bits 1..2 pick the inflate limit. The payload is inflated from a heap block of exactly
 * its size (ASan flags any read past it) by one stream reused across runs, as a loop's is. Checked:
 * the sink never gets more than the limit; the outcome does not depend on the limit (a message that
 * inflates to n bytes gives the same bytes under any limit >= n and WS_ERR_INFLATED_TOO_BIG under
 * a smaller one); what inflates deflates again, with the stored-block prefix of the broker's
 * MESSAGE frames cut at a point the input picks, and inflates back to the same bytes.
 * Bit 0 set: the rest is the value of a Sec-WebSocket-Extensions header (CR, LF and NUL replaced)
 * in a request parsed by ws_http_parse(); an accepted offer must give an answer that fits 160
 * bytes and names the extension, and the same request must give the same verdict twice.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/fuzz/fuzz.h"
#include "ws/deflate.h"
#include "ws/frame.h"

static const size_t limits[4] = {1u << 20, 4096, 100, 0};

/* Large enough for any input's inflated bytes under the largest limit. */
struct collected {
    uint8_t *bytes;
    size_t len, cap;
};

static int collect(void *ctx, const uint8_t *data, size_t len)
{
    struct collected *c = ctx;
    CHECK(len > 0 && c->len + len <= c->cap);
    memcpy(c->bytes + c->len, data, len);
    c->len += len;
    return 0;
}

static z_stream *inflater(void)
{
    static z_stream zs;
    static bool ready;
    if (!ready) {
        CHECK(ws_inflate_init(&zs) == 0);
        ready = true;
    }
    return &zs;
}

static z_stream *deflater(void)
{
    static z_stream zs;
    static bool ready;
    if (!ready) {
        CHECK(ws_deflate_init(&zs, 6, WS_DEFLATE_WINDOW_BITS) == 0);
        ready = true;
    }
    return &zs;
}

static ssize_t inflate_into(const uint8_t *in, size_t len, size_t limit, struct collected *out)
{
    out->len = 0;
    ssize_t n = ws_inflate_message(inflater(), in, len, limit, collect, out);
    CHECK(out->len <= limit);
    CHECK(n < 0 || (size_t)n == out->len);
    CHECK(n >= 0 || n == WS_ERR_INFLATE || n == WS_ERR_INFLATED_TOO_BIG);
    return n;
}

/* What inflated is sent back the broker's way: a stored prefix, the rest deflated once. */
static void roundtrip(const uint8_t *msg, size_t len, size_t cut)
{
    size_t stored = ws_deflate_stored_size(cut);
    size_t cap = stored + ws_deflate_bound(len - cut);
    uint8_t *payload = malloc(cap > 0 ? cap : 1);
    CHECK(payload != NULL);
    CHECK(ws_deflate_stored(payload, msg, cut) == stored);
    ssize_t d = ws_deflate_message(deflater(), msg + cut, len - cut, payload + stored, cap - stored);
    CHECK(d >= 0);
    struct collected back = {malloc(len + 1), 0, len + 1};
    CHECK(back.bytes != NULL);
    CHECK(inflate_into(payload, stored + (size_t)d, len, &back) == (ssize_t)len);
    CHECK(len == 0 || memcmp(back.bytes, msg, len) == 0);
    free(back.bytes);
    free(payload);
}

static void fuzz_inflate(uint8_t mode, const uint8_t *data, size_t size)
{
    size_t limit = limits[(mode >> 1) & 3];
    uint8_t *in = malloc(size > 0 ? size : 1);
    CHECK(in != NULL);
    if (size > 0)
        memcpy(in, data, size);
    struct collected full = {malloc(limits[0]), 0, limits[0]};
    struct collected some = {malloc(limits[0]), 0, limits[0]};
    CHECK(full.bytes != NULL && some.bytes != NULL);
    ssize_t whole = inflate_into(in, size, limits[0], &full);
    ssize_t limited = inflate_into(in, size, limit, &some);
    if (whole >= 0 && (size_t)whole <= limit) {
        CHECK(limited == whole);
        CHECK(whole == 0 || memcmp(full.bytes, some.bytes, (size_t)whole) == 0);
    } else if (whole >= 0) {
        CHECK(limited == WS_ERR_INFLATED_TOO_BIG);
    }
    if (whole >= 0)
        roundtrip(full.bytes, (size_t)whole, whole > 0 ? (size_t)(mode >> 3) % (size_t)whole : 0);
    free(full.bytes);
    free(some.bytes);
    free(in);
}

static void fuzz_offer(const uint8_t *data, size_t size)
{
    static const char before[] = "GET /ws HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Extensions: ";
    static const char after[] = "\r\n\r\n";
    if (size > 4096)
        size = 4096;
    size_t len = sizeof(before) - 1 + size + sizeof(after) - 1;
    char *req_text = malloc(len);
    CHECK(req_text != NULL);
    memcpy(req_text, before, sizeof(before) - 1);
    for (size_t i = 0; i < size; i++) {
        char ch = (char)data[i];
        req_text[sizeof(before) - 1 + i] = ch == '\r' || ch == '\n' || ch == '\0' ? ' ' : ch;
    }
    memcpy(req_text + sizeof(before) - 1 + size, after, sizeof(after) - 1);
    struct ws_http_request req;
    if (ws_http_parse(&req, req_text, len, 8192) == (int)len) {
        struct ws_deflate_params p, again;
        int rc = ws_deflate_negotiate(&req, &p);
        CHECK(ws_deflate_negotiate(&req, &again) == rc);
        CHECK(memcmp(&p, &again, sizeof(p)) == 0);
        CHECK((rc == 0) == p.enabled);
        CHECK(!p.small_window || p.asked_server_window);
        if (rc == 0) {
            char answer[160];
            CHECK(ws_deflate_response_value(answer, sizeof(answer), &p) > 0);
            CHECK(strncmp(answer, "permessage-deflate; ", 20) == 0);
        }
    }
    free(req_text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if (data[0] & 1)
        fuzz_offer(data + 1, size - 1);
    else
        fuzz_inflate(data[0], data + 1, size - 1);
    return 0;
}
