/*
 * test_ws_deflate.c - ws/deflate: permessage-deflate negotiation (RFC 7692 section 7.1) and the
 * per-message deflate, stored-block prefix and inflate helpers.
 *
 * Offers are parsed from real request heads (ws_http_parse) placed against an unreadable page, so
 * an overread in the offer parser faults. Compressed output is checked with zlib's own inflate,
 * independently of ws_inflate_message().
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/guard.h"
#include "ws/deflate.h"
#include "ws/frame.h"

/* ---- negotiation ---- */

struct offer_case {
    const char *headers; /* Sec-WebSocket-Extensions lines of the request, each ending in CRLF */
    bool enabled;
    const char *answer; /* the response value when enabled */
};

#define BASE_ANSWER "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
#define EXT         "Sec-WebSocket-Extensions: "

static const struct offer_case offer_cases[] = {
    {"", false, NULL},
    {EXT "permessage-deflate\r\n", true, BASE_ANSWER},
    {EXT "permessage-deflate; client_max_window_bits\r\n", true, BASE_ANSWER},
    {EXT "permessage-deflate; client_max_window_bits=10\r\n", true, BASE_ANSWER},
    {EXT "PerMessage-Deflate ; Client_Max_Window_Bits\r\n", true, BASE_ANSWER},
    {EXT "permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n", true,
     BASE_ANSWER},
    {EXT "permessage-deflate; server_max_window_bits=15\r\n", true,
     BASE_ANSWER "; server_max_window_bits=15"},
    {EXT "permessage-deflate; server_max_window_bits=10\r\n", true,
     BASE_ANSWER "; server_max_window_bits=9"},
    {EXT "permessage-deflate; server_max_window_bits=\"9\"\r\n", true,
     BASE_ANSWER "; server_max_window_bits=9"},
    /* declined: a 256-byte server window, values out of range or malformed, repeated or
     * unknown parameters, a value where none belongs, no value where one is needed */
    {EXT "permessage-deflate; server_max_window_bits=8\r\n", false, NULL},
    {EXT "permessage-deflate; server_max_window_bits=16\r\n", false, NULL},
    {EXT "permessage-deflate; server_max_window_bits=09\r\n", false, NULL},
    {EXT "permessage-deflate; server_max_window_bits\r\n", false, NULL},
    {EXT "permessage-deflate; server_max_window_bits=\"123456789\"\r\n", false, NULL},
    {EXT "permessage-deflate; client_max_window_bits=7\r\n", false, NULL},
    {EXT "permessage-deflate; client_max_window_bits=\r\n", false, NULL},
    {EXT "permessage-deflate; server_no_context_takeover; server_no_context_takeover\r\n", false,
     NULL},
    {EXT "permessage-deflate; client_no_context_takeover=1\r\n", false, NULL},
    {EXT "permessage-deflate; x_custom\r\n", false, NULL},
    {EXT "permessage-deflate; client_max_window_bits=\"15\r\n", false, NULL},
    {EXT "permessage-deflate;\r\n", false, NULL},
    {EXT "permessage-deflate x\r\n", false, NULL},
    {EXT "x-webkit-deflate-frame\r\n", false, NULL},
    {EXT "deflate-frame, x-other; a=\"b,c\"\r\n", false, NULL},
    /* the first offer that can be honoured wins, across commas and header lines */
    {EXT "permessage-deflate; server_max_window_bits=8, permessage-deflate\r\n", true, BASE_ANSWER},
    {EXT "x-other; a=\"permessage-deflate, b\", permessage-deflate; server_max_window_bits=12\r\n",
     true, BASE_ANSWER "; server_max_window_bits=9"},
    {EXT "foo\r\n" EXT "permessage-deflate; client_max_window_bits\r\n", true, BASE_ANSWER},
};

static const size_t n_offer_cases = sizeof(offer_cases) / sizeof(offer_cases[0]);

START_TEST(test_negotiate)
{
    const struct offer_case *c = &offer_cases[_i];
    char head[1024];
    int n = snprintf(head, sizeof(head),
                     "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\n%s\r\n",
                     c->headers);
    ck_assert_int_lt(n, (int)sizeof(head));
    struct guard g;
    const char *buf = (const char *)guard_copy(&g, head, (size_t)n);
    struct ws_http_request req;
    ck_assert_int_eq(ws_http_parse(&req, buf, (size_t)n, 8192), n);
    struct ws_deflate_params p;
    int rc = ws_deflate_negotiate(&req, &p);
    ck_assert_msg(p.enabled == c->enabled, "case %zu (%s): enabled %d", (size_t)_i, c->headers,
                  p.enabled);
    ck_assert_int_eq(rc, c->enabled ? 0 : -1);
    if (c->enabled) {
        char value[160];
        int len = ws_deflate_response_value(value, sizeof(value), &p);
        ck_assert_int_eq(len, (int)strlen(c->answer));
        ck_assert_str_eq(value, c->answer);
        /* and the answer does not fit a buffer one byte short */
        ck_assert_int_eq(ws_deflate_response_value(value, (size_t)len, &p), -1);
    }
    guard_release(&g);
}
END_TEST

/* The 101 carries the answer only when one is set. */
START_TEST(test_upgrade_response_header)
{
    struct ws_upgrade up;
    memset(&up, 0, sizeof(up));
    up.status = 101;
    strcpy(up.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    char out[512];
    ck_assert_int_gt(ws_upgrade_response(out, sizeof(out), &up), 0);
    ck_assert_ptr_null(strstr(out, "Sec-WebSocket-Extensions"));
    up.extensions = BASE_ANSWER;
    ck_assert_int_gt(ws_upgrade_response(out, sizeof(out), &up), 0);
    ck_assert_ptr_nonnull(strstr(out, "\r\nSec-WebSocket-Extensions: " BASE_ANSWER "\r\n"));
    ck_assert_ptr_nonnull(strstr(out, "\r\n\r\n"));
}
END_TEST

/* ---- deflate and inflate ---- */

/* zlib's own raw inflate of payload + 00 00 FF FF, as a peer does it; returns the length. */
static size_t peer_inflate(const uint8_t *payload, size_t len, uint8_t *out, size_t cap, int bits)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    ck_assert_int_eq(inflateInit2(&zs, -bits), Z_OK);
    uint8_t *in = malloc(len + 4);
    memcpy(in, payload, len);
    memcpy(in + len, "\x00\x00\xff\xff", 4);
    zs.next_in = in;
    zs.avail_in = (uInt)(len + 4);
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    int rc = inflate(&zs, Z_SYNC_FLUSH);
    ck_assert_msg(rc == Z_OK || rc == Z_STREAM_END, "inflate: %d", rc);
    ck_assert_uint_eq(zs.avail_in, 0);
    size_t n = cap - zs.avail_out;
    inflateEnd(&zs);
    free(in);
    return n;
}

/* A JSON-ish body that compresses well but not trivially. */
static size_t json_body(char *out, size_t cap)
{
    size_t n = 0;
    for (int i = 0; n + 64 < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "{\"symbol\":\"S%03d\",\"price\":%d.%02d},", i % 37,
                              100 + i * 7 % 91, i % 100);
    return n;
}

/* Stored prefix + the shared part deflated once: what the broker sends each subscriber. Both
 * windows, prefixes of several lengths (one over a stored block's 65,535 bytes), any zlib peer. */
START_TEST(test_prefix_and_shared_part)
{
    static char shared[64 * 1024];
    size_t shared_len = json_body(shared, sizeof(shared));
    int windows[] = {WS_DEFLATE_WINDOW_BITS, WS_DEFLATE_SMALL_WINDOW_BITS};
    size_t prefixes[] = {0, 1, 27, 65535, 65536, 70000};
    for (size_t w = 0; w < 2; w++) {
        z_stream zs;
        ck_assert_int_eq(ws_deflate_init(&zs, 6, windows[w]), 0);
        size_t cap = ws_deflate_bound(shared_len);
        uint8_t *deflated = malloc(cap);
        ssize_t dlen = ws_deflate_message(&zs, (const uint8_t *)shared, shared_len, deflated, cap);
        ck_assert_int_gt(dlen, 0);
        ck_assert_int_lt(dlen, (ssize_t)shared_len / 3);
        for (size_t p = 0; p < sizeof(prefixes) / sizeof(prefixes[0]); p++) {
            size_t plen = prefixes[p];
            uint8_t *prefix = malloc(plen + 1);
            for (size_t i = 0; i < plen; i++)
                prefix[i] = (uint8_t)('a' + i % 26);
            size_t slen = ws_deflate_stored_size(plen);
            uint8_t *payload = malloc(slen + (size_t)dlen);
            ck_assert_uint_eq(ws_deflate_stored(payload, prefix, plen), slen);
            memcpy(payload + slen, deflated, (size_t)dlen);
            size_t out_cap = plen + shared_len + 16;
            uint8_t *out = malloc(out_cap);
            /* the peer's window may be the one negotiated: 2^15, or 2^9 for the small one */
            size_t n = peer_inflate(payload, slen + (size_t)dlen, out, out_cap, windows[w]);
            ck_assert_uint_eq(n, plen + shared_len);
            ck_assert(plen == 0 || memcmp(out, prefix, plen) == 0);
            ck_assert(memcmp(out + plen, shared, shared_len) == 0);
            free(out);
            free(payload);
            free(prefix);
        }
        /* the same message deflated again gives the same bytes: the stream was reset */
        uint8_t *again = malloc(cap);
        ck_assert_int_eq(ws_deflate_message(&zs, (const uint8_t *)shared, shared_len, again, cap),
                         dlen);
        ck_assert(memcmp(again, deflated, (size_t)dlen) == 0);
        free(again);
        free(deflated);
        deflateEnd(&zs);
    }
}
END_TEST

START_TEST(test_stored_sizes)
{
    ck_assert_uint_eq(ws_deflate_stored_size(0), 0);
    ck_assert_uint_eq(ws_deflate_stored_size(1), 6);
    ck_assert_uint_eq(ws_deflate_stored_size(65535), 65540);
    ck_assert_uint_eq(ws_deflate_stored_size(65536), 65546);
    uint8_t out[8];
    ck_assert_uint_eq(ws_deflate_stored(out, (const uint8_t *)"hi", 2), 7);
    ck_assert_mem_eq(out, "\x00\x02\x00\xfd\xffhi", 7);
}
END_TEST

/* Incompressible input still fits the bound. */
START_TEST(test_bound_holds_random)
{
    size_t len = 100000;
    uint8_t *in = malloc(len);
    uint32_t x = 12345;
    for (size_t i = 0; i < len; i++) {
        x = x * 1103515245u + 12345u;
        in[i] = (uint8_t)(x >> 16);
    }
    z_stream zs;
    ck_assert_int_eq(ws_deflate_init(&zs, 9, WS_DEFLATE_WINDOW_BITS), 0);
    size_t cap = ws_deflate_bound(len);
    uint8_t *out = malloc(cap);
    ck_assert_int_gt(ws_deflate_message(&zs, in, len, out, cap), 0);
    deflateEnd(&zs);
    free(out);
    free(in);
}
END_TEST

struct collected {
    uint8_t *bytes;
    size_t len, cap;
    int calls;
};

static int collect(void *ctx, const uint8_t *data, size_t len)
{
    struct collected *c = ctx;
    ck_assert_uint_le(c->len + len, c->cap);
    memcpy(c->bytes + c->len, data, len);
    c->len += len;
    c->calls++;
    return 0;
}

/* Deflates in with the broker's helper (peer-compatible output) for the inflate tests. */
static size_t deflate_for_test(const void *in, size_t len, uint8_t *out, size_t cap)
{
    z_stream zs;
    ck_assert_int_eq(ws_deflate_init(&zs, 6, WS_DEFLATE_WINDOW_BITS), 0);
    ssize_t n = ws_deflate_message(&zs, in, len, out, cap);
    deflateEnd(&zs);
    ck_assert_int_ge(n, 0);
    return (size_t)n;
}

START_TEST(test_inflate_roundtrip_and_limit)
{
    static char body[200000];
    size_t len = json_body(body, sizeof(body));
    static uint8_t compressed[220000];
    size_t clen = deflate_for_test(body, len, compressed, sizeof(compressed));
    z_stream zs;
    ck_assert_int_eq(ws_inflate_init(&zs), 0);
    struct guard g;
    const uint8_t *in = guard_copy(&g, compressed, clen);
    struct collected c = {malloc(len), 0, len, 0};
    /* exactly at the limit is fine; one byte under it is too big */
    ck_assert_int_eq(ws_inflate_message(&zs, in, clen, len, collect, &c), (ssize_t)len);
    ck_assert(memcmp(c.bytes, body, len) == 0);
    ck_assert_int_gt(c.calls, 1); /* handed out in pieces */
    c.len = 0;
    ck_assert_int_eq(ws_inflate_message(&zs, in, clen, len - 1, collect, &c),
                     WS_ERR_INFLATED_TOO_BIG);
    ck_assert_uint_le(c.len, len - 1);
    /* the stream is reset for the next message: the same input again inflates whole */
    c.len = 0;
    ck_assert_int_eq(ws_inflate_message(&zs, in, clen, len, collect, &c), (ssize_t)len);
    free(c.bytes);
    guard_release(&g);
    inflateEnd(&zs);
}
END_TEST

/* A deflate bomb (16 MiB of zeros in a few KiB) stops at the limit, having inflated no more. */
START_TEST(test_inflate_bomb)
{
    size_t big = 16u << 20;
    uint8_t *zeros = calloc(1, big);
    size_t cap = ws_deflate_bound(big);
    uint8_t *compressed = malloc(cap);
    size_t clen = deflate_for_test(zeros, big, compressed, cap);
    ck_assert_uint_lt(clen, 64 * 1024);
    z_stream zs;
    ck_assert_int_eq(ws_inflate_init(&zs), 0);
    struct collected c = {malloc(1 << 20), 0, 1 << 20, 0};
    ck_assert_int_eq(ws_inflate_message(&zs, compressed, clen, 1 << 20, collect, &c),
                     WS_ERR_INFLATED_TOO_BIG);
    ck_assert_uint_le(c.len, 1 << 20);
    ck_assert_uint_eq(ws_error_close_code(WS_ERR_INFLATED_TOO_BIG), WS_CLOSE_TOO_BIG);
    free(c.bytes);
    free(compressed);
    free(zeros);
    inflateEnd(&zs);
}
END_TEST

/* Not deflate at all, a block type 3, a distance before the start: WS_ERR_INFLATE (1007). */
START_TEST(test_inflate_invalid)
{
    static const struct {
        const char *bytes;
        size_t len;
    } bad[] = {
        {"\xff\xff\xff\xff", 4},         /* BTYPE 11: reserved */
        {"\x00\x05\x00\x00\x00", 5},     /* stored block whose NLEN is not ~LEN */
        {"\x02\x02\x00\x20\x00\x00", 6}, /* a back-reference to before the message */
    };
    z_stream zs;
    ck_assert_int_eq(ws_inflate_init(&zs), 0);
    uint8_t out[256];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct collected c = {out, 0, sizeof(out), 0};
        struct guard g;
        const uint8_t *in = guard_copy(&g, bad[i].bytes, bad[i].len);
        ck_assert_int_eq(ws_inflate_message(&zs, in, bad[i].len, 1024, collect, &c),
                         WS_ERR_INFLATE);
        guard_release(&g);
    }
    ck_assert_uint_eq(ws_error_close_code(WS_ERR_INFLATE), WS_CLOSE_INVALID_DATA);
    /* and an empty payload is an empty message (RFC 7692 section 7.2.3.6 sends 00 for it) */
    struct collected c = {out, 0, sizeof(out), 0};
    ck_assert_int_eq(ws_inflate_message(&zs, (const uint8_t *)"\x00", 1, 1024, collect, &c), 0);
    ck_assert_int_eq(ws_inflate_message(&zs, (const uint8_t *)"", 0, 1024, collect, &c), 0);
    inflateEnd(&zs);
}
END_TEST

/* A message that ends with a final block (BFINAL 1, what deflateRawSync gives) inflates too. */
START_TEST(test_inflate_final_block)
{
    const char *text = "SEND\ndestination:/topic/a\n\nhello hello hello hello\n";
    size_t len = strlen(text);
    uint8_t compressed[256];
    z_stream d;
    memset(&d, 0, sizeof(d));
    ck_assert_int_eq(deflateInit2(&d, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    d.next_in = (Bytef *)text;
    d.avail_in = (uInt)len;
    d.next_out = compressed;
    d.avail_out = sizeof(compressed);
    ck_assert_int_eq(deflate(&d, Z_FINISH), Z_STREAM_END);
    size_t clen = sizeof(compressed) - d.avail_out;
    deflateEnd(&d);
    z_stream zs;
    ck_assert_int_eq(ws_inflate_init(&zs), 0);
    uint8_t out[256];
    struct collected c = {out, 0, sizeof(out), 0};
    ck_assert_int_eq(ws_inflate_message(&zs, compressed, clen, 1024, collect, &c), (ssize_t)len);
    ck_assert_mem_eq(out, text, len);
    inflateEnd(&zs);
}
END_TEST

static int refuse(void *ctx, const uint8_t *data, size_t len)
{
    (void)ctx;
    (void)data;
    (void)len;
    return -99;
}

START_TEST(test_inflate_sink_error)
{
    uint8_t compressed[64];
    size_t clen = deflate_for_test("abcabcabc", 9, compressed, sizeof(compressed));
    z_stream zs;
    ck_assert_int_eq(ws_inflate_init(&zs), 0);
    ck_assert_int_eq(ws_inflate_message(&zs, compressed, clen, 1024, refuse, NULL), -99);
    inflateEnd(&zs);
}
END_TEST

static Suite *deflate_suite(void)
{
    Suite *s = suite_create("ws_deflate");
    TCase *negotiation = tcase_create("negotiation");
    tcase_add_loop_test(negotiation, test_negotiate, 0, (int)n_offer_cases);
    tcase_add_test(negotiation, test_upgrade_response_header);
    suite_add_tcase(s, negotiation);

    TCase *compression = tcase_create("compression");
    tcase_set_timeout(compression, 60);
    tcase_add_test(compression, test_prefix_and_shared_part);
    tcase_add_test(compression, test_stored_sizes);
    tcase_add_test(compression, test_bound_holds_random);
    tcase_add_test(compression, test_inflate_roundtrip_and_limit);
    tcase_add_test(compression, test_inflate_bomb);
    tcase_add_test(compression, test_inflate_invalid);
    tcase_add_test(compression, test_inflate_final_block);
    tcase_add_test(compression, test_inflate_sink_error);
    suite_add_tcase(s, compression);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(deflate_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
