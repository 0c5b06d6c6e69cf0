/*
 * test_ws_frame.c - ws/frame: decoder (RFC 6455 examples, every protocol error, every split
 * point), header encoder, masking and close payloads.
 *
 * Inputs are built here with a deliberately naive frame writer (not the encoder under test) and
 * always fed from guarded memory, so an overread faults. A "transcript" records what a decode
 * produced (whole messages, control frames, the error) so different byte splits can be compared.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/guard.h"
#include "ws/frame.h"

#define KEY_A ((const uint8_t[4]){0x37, 0xfa, 0x21, 0x3d})
#define KEY_B ((const uint8_t[4]){0x01, 0x80, 0xfe, 0x7f})

/* ---- naive frame writer ---- */

static size_t put_frame(uint8_t *out, uint8_t b0, const void *payload, size_t len,
                        const uint8_t *key)
{
    size_t n = 0;
    uint8_t mask_bit = key != NULL ? 0x80 : 0;
    out[n++] = b0;
    if (len < 126) {
        out[n++] = (uint8_t)(mask_bit | len);
    } else if (len < 65536) {
        out[n++] = mask_bit | 126;
        out[n++] = (uint8_t)(len >> 8);
        out[n++] = (uint8_t)len;
    } else {
        out[n++] = mask_bit | 127;
        for (int i = 7; i >= 0; i--)
            out[n++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (key != NULL) {
        memcpy(out + n, key, 4);
        n += 4;
    }
    const uint8_t *p = payload;
    for (size_t i = 0; i < len; i++)
        out[n + i] = (uint8_t)(p[i] ^ (key != NULL ? key[i % 4] : 0));
    return n + len;
}

/* ---- transcript ---- */

struct transcript {
    uint8_t *bytes; /* owned: tagged records */
    size_t len, cap;
    uint8_t *message; /* owned: the data message being assembled */
    size_t message_len, message_cap;
    bool in_message;
    bool message_text;
    int error; /* 0 or the decoder error */
    size_t events;
};

/* Each buffer starts small and doubles up to the most a test records: the split-every-way
 * checks make thousands of transcripts, and 2 MiB blocks each (fresh pages from mmap every
 * time) cost more than the decoding they check. */
enum { TRANSCRIPT_START = 4096, TRANSCRIPT_CAP = 1 << 21 };

static void transcript_init(struct transcript *t)
{
    memset(t, 0, sizeof(*t));
    t->cap = t->message_cap = TRANSCRIPT_START;
    t->bytes = malloc(t->cap);
    t->message = malloc(t->message_cap);
    ck_assert_ptr_nonnull(t->bytes);
    ck_assert_ptr_nonnull(t->message);
}

static void transcript_free(struct transcript *t)
{
    free(t->bytes);
    free(t->message);
}

/*
 * ck_assert without its cost when it holds: Check logs the place of every ck_assert with a
 * write(2), and the helpers below run millions of times in the split-every-way checks (that
 * write was most of their time: past the suite's limit under ASan on a loaded CI machine).
 */
#define REQUIRE(cond, ...)                                                                         \
    do {                                                                                           \
        if (!(cond))                                                                               \
            ck_abort_msg(__VA_ARGS__);                                                             \
    } while (0)

/* Makes *buf (of *cap bytes) hold need, up to TRANSCRIPT_CAP. */
static void reserve(uint8_t **buf, size_t *cap, size_t need)
{
    REQUIRE(need <= TRANSCRIPT_CAP, "transcript over %d bytes", TRANSCRIPT_CAP);
    if (need <= *cap)
        return;
    size_t grown = *cap;
    while (grown < need)
        grown *= 2;
    *buf = realloc(*buf, grown < TRANSCRIPT_CAP ? grown : TRANSCRIPT_CAP);
    REQUIRE(*buf != NULL, "out of memory");
    *cap = grown < TRANSCRIPT_CAP ? grown : TRANSCRIPT_CAP;
}

static void append(struct transcript *t, const void *p, size_t n)
{
    reserve(&t->bytes, &t->cap, t->len + n);
    if (n > 0)
        memcpy(t->bytes + t->len, p, n);
    t->len += n;
}

static void append_record(struct transcript *t, char tag, uint32_t extra, const void *p, size_t n)
{
    uint64_t len64 = n;
    append(t, &tag, 1);
    append(t, &extra, sizeof(extra));
    append(t, &len64, sizeof(len64));
    append(t, p, n);
}

/* Records one event and checks the invariants every event must satisfy. */
static void record(struct transcript *t, const struct ws_event *ev)
{
    t->events++;
    switch (ev->type) {
    case WS_EVENT_DATA:
        REQUIRE(ev->message_start == !t->in_message, "message_start out of place");
        if (ev->message_start)
            t->message_text = ev->text;
        REQUIRE(ev->text == t->message_text, "text flag changed inside a message");
        reserve(&t->message, &t->message_cap, t->message_len + ev->len);
        if (ev->len > 0)
            memcpy(t->message + t->message_len, ev->data, ev->len);
        t->message_len += ev->len;
        t->in_message = !ev->message_end;
        if (ev->message_end) {
            append_record(t, ev->text ? 'T' : 'B', 0, t->message, t->message_len);
            t->message_len = 0;
        }
        break;
    case WS_EVENT_PING:
        append_record(t, 'P', 0, ev->data, ev->len);
        break;
    case WS_EVENT_PONG:
        append_record(t, 'O', 0, ev->data, ev->len);
        break;
    case WS_EVENT_CLOSE:
        append_record(t, 'C', ev->close_code, ev->data, ev->len);
        break;
    case WS_EVENT_NONE:
        ck_abort_msg("NONE is not recorded");
    }
}

static bool points_into(const uint8_t *p, size_t n, const void *base, size_t size)
{
    const uint8_t *b = base;
    return n == 0 || (p >= b && p + n <= b + size);
}

/* Feeds one piece; returns false once the decoder has failed. */
static bool feed(struct ws_decoder *d, struct transcript *t, uint8_t *piece, size_t n)
{
    size_t off = 0;
    while (off < n) {
        struct ws_event ev;
        ssize_t r = ws_decoder_decode(d, piece + off, n - off, &ev);
        if (r < 0) {
            t->error = (int)r;
            append_record(t, 'E', (uint32_t)-r, NULL, 0);
            /* refused from now on, with the same answer */
            REQUIRE(ws_decoder_decode(d, piece, n, &ev) == r, "a failed decoder answered otherwise");
            return false;
        }
        REQUIRE((size_t)r <= n - off, "decoder took %zd of %zu bytes", r, n - off);
        if (ev.type == WS_EVENT_NONE) {
            REQUIRE((size_t)r == n - off, "no event, yet %zd of %zu bytes left", r, n - off);
        } else {
            REQUIRE(points_into(ev.data, ev.len, piece, n) ||
                        points_into(ev.data, ev.len, d, sizeof(*d)),
                    "event data outside the input and the decoder");
            record(t, &ev);
        }
        off += (size_t)r;
    }
    return true;
}

/* Decodes input cut at cuts[0..ncuts) (ascending), each piece in its own guarded region. */
static void decode_cuts(struct transcript *t, const struct ws_decoder_config *cfg,
                        const uint8_t *input, size_t len, const size_t *cuts, size_t ncuts)
{
    struct ws_decoder d;
    ws_decoder_init(&d, cfg);
    size_t start = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        struct guard g;
        uint8_t *piece = guard_copy(&g, input + start, end - start);
        bool ok = feed(&d, t, piece, end - start);
        guard_release(&g);
        if (!ok)
            return;
        start = end;
    }
}

static void decode_whole(struct transcript *t, const struct ws_decoder_config *cfg,
                         const uint8_t *input, size_t len)
{
    decode_cuts(t, cfg, input, len, NULL, 0);
}

static void transcript_reset(struct transcript *t)
{
    t->len = 0;
    t->message_len = 0;
    t->in_message = false;
    t->error = 0;
    t->events = 0;
}

static void assert_same(const struct transcript *a, const struct transcript *b, const char *what)
{
    REQUIRE(a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0, "%s differs", what);
}

/*
 * Every single cut and byte-by-byte match one read; with pairs (for inputs up to 200 bytes) so
 * does every pair of cuts. Returns the whole read's error (0 if none).
 */
static int check_splits(const struct ws_decoder_config *cfg, const uint8_t *input, size_t len,
                        bool pairs)
{
    struct transcript whole, t;
    transcript_init(&whole);
    transcript_init(&t);
    decode_whole(&whole, cfg, input, len);
    for (size_t cut = 0; cut <= len; cut++) {
        transcript_reset(&t);
        decode_cuts(&t, cfg, input, len, &cut, 1);
        char what[64];
        snprintf(what, sizeof(what), "cut at %zu", cut);
        assert_same(&whole, &t, what);
    }
    size_t *cuts = calloc(len + 1, sizeof(*cuts));
    ck_assert_ptr_nonnull(cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i;
    transcript_reset(&t);
    decode_cuts(&t, cfg, input, len, cuts, len);
    assert_same(&whole, &t, "byte by byte");
    free(cuts);
    for (size_t a = 0; pairs && len <= 200 && a <= len; a++)
        for (size_t b = a; b <= len; b++) {
            size_t two[2] = {a, b};
            transcript_reset(&t);
            decode_cuts(&t, cfg, input, len, two, 2);
            char what[64];
            snprintf(what, sizeof(what), "cuts at %zu,%zu", a, b);
            assert_same(&whole, &t, what);
        }
    int error = whole.error;
    transcript_free(&whole);
    transcript_free(&t);
    return error;
}

static void check_every_split(const struct ws_decoder_config *cfg, const uint8_t *input, size_t len)
{
    check_splits(cfg, input, len, true);
}

static struct ws_decoder_config server_cfg(size_t max)
{
    struct ws_decoder_config c;
    ws_decoder_config_default(&c);
    if (max != 0)
        c.max_message_size = max;
    return c;
}

static struct ws_decoder_config client_cfg(void)
{
    struct ws_decoder_config c = server_cfg(0);
    c.expect_masked = false;
    return c;
}

/* Decodes one guarded buffer expecting exactly one event that consumes it all. */
static struct ws_event decode_one(const struct ws_decoder_config *cfg, const uint8_t *in,
                                  size_t len, uint8_t *copy_out)
{
    struct ws_decoder d;
    struct ws_event ev;
    struct guard g;
    ws_decoder_init(&d, cfg);
    uint8_t *buf = guard_copy(&g, in, len);
    ssize_t r = ws_decoder_decode(&d, buf, len, &ev);
    ck_assert_int_eq(r, (ssize_t)len);
    ck_assert(points_into(ev.data, ev.len, buf, len));
    if (copy_out != NULL && ev.len > 0)
        memcpy(copy_out, ev.data, ev.len);
    ev.data = copy_out;
    guard_release(&g);
    return ev;
}

/* ---- RFC 6455 section 5.7 examples ---- */

static const uint8_t rfc_unmasked_hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t rfc_masked_hello[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                           0x7f, 0x9f, 0x4d, 0x51, 0x58};
static const uint8_t rfc_fragmented[] = {0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f};
static const uint8_t rfc_ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
static const uint8_t rfc_masked_pong[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d,
                                          0x7f, 0x9f, 0x4d, 0x51, 0x58};

START_TEST(test_rfc_unmasked_text)
{
    struct ws_decoder_config cfg = client_cfg();
    uint8_t out[8];
    struct ws_event ev = decode_one(&cfg, rfc_unmasked_hello, sizeof(rfc_unmasked_hello), out);
    ck_assert_int_eq(ev.type, WS_EVENT_DATA);
    ck_assert(ev.text && ev.message_start && ev.message_end);
    ck_assert_uint_eq(ev.len, 5);
    ck_assert_mem_eq(out, "Hello", 5);
    /* the same bytes are refused by a server */
    struct ws_decoder d;
    struct ws_event e2;
    cfg = server_cfg(0);
    ws_decoder_init(&d, &cfg);
    uint8_t copy[sizeof(rfc_unmasked_hello)];
    memcpy(copy, rfc_unmasked_hello, sizeof(copy));
    ck_assert_int_eq(ws_decoder_decode(&d, copy, sizeof(copy), &e2), WS_ERR_UNMASKED);
}
END_TEST

START_TEST(test_rfc_masked_text)
{
    struct ws_decoder_config cfg = server_cfg(0);
    uint8_t out[8];
    struct ws_event ev = decode_one(&cfg, rfc_masked_hello, sizeof(rfc_masked_hello), out);
    ck_assert_int_eq(ev.type, WS_EVENT_DATA);
    ck_assert(ev.text && ev.message_start && ev.message_end);
    ck_assert_uint_eq(ev.len, 5);
    ck_assert_mem_eq(out, "Hello", 5);
}
END_TEST

START_TEST(test_rfc_fragmented)
{
    struct ws_decoder_config cfg = client_cfg();
    struct ws_decoder d;
    struct ws_event ev;
    struct guard g;
    ws_decoder_init(&d, &cfg);
    uint8_t *buf = guard_copy(&g, rfc_fragmented, sizeof(rfc_fragmented));
    ck_assert_int_eq(ws_decoder_decode(&d, buf, 9, &ev), 5);
    ck_assert_int_eq(ev.type, WS_EVENT_DATA);
    ck_assert(ev.text && ev.message_start && !ev.message_end);
    ck_assert_uint_eq(ev.len, 3);
    ck_assert_mem_eq(ev.data, "Hel", 3);
    ck_assert_int_eq(ws_decoder_decode(&d, buf + 5, 4, &ev), 4);
    ck_assert(ev.text && !ev.message_start && ev.message_end);
    ck_assert_uint_eq(ev.len, 2);
    ck_assert_mem_eq(ev.data, "lo", 2);
    guard_release(&g);
}
END_TEST

START_TEST(test_rfc_ping_pong)
{
    struct ws_decoder_config client = client_cfg(), server = server_cfg(0);
    uint8_t out[8];
    struct ws_event ev = decode_one(&client, rfc_ping, sizeof(rfc_ping), out);
    ck_assert_int_eq(ev.type, WS_EVENT_PING);
    ck_assert_uint_eq(ev.len, 5);
    ck_assert_mem_eq(out, "Hello", 5);
    ev = decode_one(&server, rfc_masked_pong, sizeof(rfc_masked_pong), out);
    ck_assert_int_eq(ev.type, WS_EVENT_PONG);
    ck_assert_uint_eq(ev.len, 5);
    ck_assert_mem_eq(out, "Hello", 5);
}
END_TEST

/* 256 bytes: 0x82 0x7E 0x0100; 64 KiB: 0x82 0x7F 0x0000000000010000. */
START_TEST(test_rfc_binary_lengths)
{
    static const size_t sizes[] = {256, 65536};
    static const uint8_t headers[][10] = {
        {0x82, 0x7E, 0x01, 0x00},
        {0x82, 0x7F, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00},
    };
    static const size_t header_lens[] = {4, 10};
    for (size_t i = 0; i < 2; i++) {
        size_t n = header_lens[i] + sizes[i];
        uint8_t *in = malloc(n), *out = malloc(sizes[i]);
        ck_assert(in != NULL && out != NULL);
        memcpy(in, headers[i], header_lens[i]);
        for (size_t k = 0; k < sizes[i]; k++)
            in[header_lens[i] + k] = (uint8_t)(k * 31 + 7);
        struct ws_decoder_config cfg = client_cfg();
        struct ws_event ev = decode_one(&cfg, in, n, out);
        ck_assert_int_eq(ev.type, WS_EVENT_DATA);
        ck_assert(!ev.text && ev.message_start && ev.message_end);
        ck_assert_uint_eq(ev.len, sizes[i]);
        ck_assert_mem_eq(out, in + header_lens[i], sizes[i]);
        /* and the encoder writes the same header */
        uint8_t h[WS_FRAME_HEADER_MAX];
        ck_assert_uint_eq(ws_frame_header_encode(h, WS_OP_BINARY, true, sizes[i], NULL),
                          header_lens[i]);
        ck_assert_mem_eq(h, headers[i], header_lens[i]);
        free(in);
        free(out);
    }
}
END_TEST

START_TEST(test_rfc_encode_examples)
{
    uint8_t h[WS_FRAME_HEADER_MAX];
    uint8_t payload[5];
    /* unmasked "Hello" */
    ck_assert_uint_eq(ws_frame_header_encode(h, WS_OP_TEXT, true, 5, NULL), 2);
    ck_assert_mem_eq(h, rfc_unmasked_hello, 2);
    /* masked "Hello": header carries the key, ws_mask produces the payload */
    ck_assert_uint_eq(ws_frame_header_encode(h, WS_OP_TEXT, true, 5, KEY_A), 6);
    ck_assert_mem_eq(h, rfc_masked_hello, 6);
    memcpy(payload, "Hello", 5);
    ws_mask(payload, 5, KEY_A, 0);
    ck_assert_mem_eq(payload, rfc_masked_hello + 6, 5);
    /* fragmented "Hel" + "lo" */
    ck_assert_uint_eq(ws_frame_header_encode(h, WS_OP_TEXT, false, 3, NULL), 2);
    ck_assert_mem_eq(h, rfc_fragmented, 2);
    ck_assert_uint_eq(ws_frame_header_encode(h, WS_OP_CONTINUATION, true, 2, NULL), 2);
    ck_assert_mem_eq(h, rfc_fragmented + 5, 2);
    /* ping, masked pong */
    ck_assert_uint_eq(ws_frame_header_encode(h, WS_OP_PING, true, 5, NULL), 2);
    ck_assert_mem_eq(h, rfc_ping, 2);
    ck_assert_uint_eq(ws_frame_header_encode(h, WS_OP_PONG, true, 5, KEY_A), 6);
    ck_assert_mem_eq(h, rfc_masked_pong, 6);
}
END_TEST

/* ---- protocol errors ---- */

#define MK 0x00, 0x00, 0x00, 0x00 /* all-zero masking key: payload bytes read as written */

struct error_case {
    const char *name;
    bool expect_masked;
    size_t max_message; /* 0: default */
    int error;
    uint16_t close_code;
    size_t fail_at; /* shortest prefix that reports the error */
    const uint8_t *bytes;
    size_t len;
};

#define E(name, masked, max, err, code, at, ...)                                                   \
    {                                                                                              \
        name, masked, max, err, code, at, (const uint8_t[]){__VA_ARGS__},                          \
            sizeof((const uint8_t[]){__VA_ARGS__})                                                 \
    }

#define PE WS_CLOSE_PROTOCOL_ERROR

static const struct error_case error_cases[] = {
    E("rsv1", true, 0, WS_ERR_RSV, PE, 1, 0xC1, 0x80, MK),
    E("rsv2", true, 0, WS_ERR_RSV, PE, 1, 0xA1, 0x80, MK),
    E("rsv3", true, 0, WS_ERR_RSV, PE, 1, 0x91, 0x80, MK),
    E("rsv on continuation", true, 0, WS_ERR_RSV, PE, 7, 0x01, 0x80, MK, 0xC0, 0x80, MK),
    E("opcode 3", true, 0, WS_ERR_OPCODE, PE, 1, 0x83, 0x80, MK),
    E("opcode 7", true, 0, WS_ERR_OPCODE, PE, 1, 0x87, 0x80, MK),
    E("opcode 0xB", true, 0, WS_ERR_OPCODE, PE, 1, 0x8B, 0x80, MK),
    E("opcode 0xF", true, 0, WS_ERR_OPCODE, PE, 1, 0x8F, 0x80, MK),
    E("ping of 126", true, 0, WS_ERR_CONTROL_TOO_BIG, PE, 2, 0x89, 0xFE, 0x00, 0x7E, MK),
    E("close of 64-bit length", true, 0, WS_ERR_CONTROL_TOO_BIG, PE, 2, 0x88, 0xFF, 0, 0, 0, 0, 0,
      0, 0, 0x7E),
    E("pong of 126", true, 0, WS_ERR_CONTROL_TOO_BIG, PE, 2, 0x8A, 0xFE, 0x00, 0x7E, MK),
    E("ping without fin", true, 0, WS_ERR_CONTROL_FRAGMENTED, PE, 1, 0x09, 0x80, MK),
    E("close without fin", true, 0, WS_ERR_CONTROL_FRAGMENTED, PE, 1, 0x08, 0x80, MK),
    E("pong without fin", true, 0, WS_ERR_CONTROL_FRAGMENTED, PE, 1, 0x0A, 0x80, MK),
    E("unmasked text to server", true, 0, WS_ERR_UNMASKED, PE, 2, 0x81, 0x02, 'h', 'i'),
    E("unmasked ping to server", true, 0, WS_ERR_UNMASKED, PE, 2, 0x89, 0x00),
    E("unmasked continuation", true, 0, WS_ERR_UNMASKED, PE, 8, 0x01, 0x80, MK, 0x80, 0x00),
    E("masked text to client", false, 0, WS_ERR_MASKED, PE, 2, 0x81, 0x80, MK),
    E("masked close to client", false, 0, WS_ERR_MASKED, PE, 2, 0x88, 0x80, MK),
    E("16-bit length 125", true, 0, WS_ERR_LENGTH_NOT_MINIMAL, PE, 4, 0x82, 0xFE, 0x00, 0x7D, MK),
    E("16-bit length 0", true, 0, WS_ERR_LENGTH_NOT_MINIMAL, PE, 4, 0x82, 0xFE, 0x00, 0x00, MK),
    E("64-bit length 65535", true, 0, WS_ERR_LENGTH_NOT_MINIMAL, PE, 10, 0x82, 0xFF, 0, 0, 0, 0, 0,
      0, 0xFF, 0xFF, MK),
    E("64-bit length 5", true, 0, WS_ERR_LENGTH_NOT_MINIMAL, PE, 10, 0x82, 0xFF, 0, 0, 0, 0, 0, 0,
      0, 5, MK),
    E("64-bit length top bit", true, 0, WS_ERR_LENGTH_TOP_BIT, PE, 10, 0x82, 0xFF, 0x80, 0, 0, 0, 0,
      0, 0, 0, MK),
    E("64-bit length all ones", true, 0, WS_ERR_LENGTH_TOP_BIT, PE, 10, 0x82, 0xFF, 0xFF, 0xFF,
      0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, MK),
    E("continuation first", true, 0, WS_ERR_CONTINUATION, PE, 1, 0x80, 0x80, MK),
    E("non-final continuation first", true, 0, WS_ERR_CONTINUATION, PE, 1, 0x00, 0x80, MK),
    E("continuation after a whole message", true, 0, WS_ERR_CONTINUATION, PE, 7, 0x81, 0x80, MK,
      0x80, 0x80, MK),
    E("text while text unfinished", true, 0, WS_ERR_NEW_MESSAGE, PE, 7, 0x01, 0x80, MK, 0x81, 0x80,
      MK),
    E("binary while text unfinished", true, 0, WS_ERR_NEW_MESSAGE, PE, 7, 0x01, 0x80, MK, 0x02,
      0x80, MK),
    E("text after ping mid-message", true, 0, WS_ERR_NEW_MESSAGE, PE, 13, 0x02, 0x80, MK, 0x89,
      0x80, MK, 0x81, 0x80, MK),
    E("too big in one frame", true, 16, WS_ERR_TOO_BIG, WS_CLOSE_TOO_BIG, 2, 0x82, 0x91, MK),
    E("too big 16-bit", true, 1000, WS_ERR_TOO_BIG, WS_CLOSE_TOO_BIG, 4, 0x82, 0xFE, 0x03, 0xE9,
      MK),
    E("too big 64-bit, default limit", true, 0, WS_ERR_TOO_BIG, WS_CLOSE_TOO_BIG, 10, 0x82, 0xFF, 0,
      0, 0, 0, 0, 0x10, 0x00, 0x01, MK),
    E("too big over fragments", true, 16, WS_ERR_TOO_BIG, WS_CLOSE_TOO_BIG, 18, 0x02, 0x8A, MK, 1,
      2, 3, 4, 5, 6, 7, 8, 9, 10, 0x80, 0x87, MK, 1, 2, 3, 4, 5, 6, 7),
    E("utf8 bad first byte of 100", true, 0, WS_ERR_INVALID_UTF8, WS_CLOSE_INVALID_DATA, 7, 0x81,
      0xE4, MK, 0xFF),
    E("utf8 overlong", true, 0, WS_ERR_INVALID_UTF8, WS_CLOSE_INVALID_DATA, 7, 0x81, 0x82, MK, 0xC0,
      0x80),
    E("utf8 surrogate over fragments", true, 0, WS_ERR_INVALID_UTF8, WS_CLOSE_INVALID_DATA, 14,
      0x01, 0x81, MK, 0xED, 0x80, 0x82, MK, 0xA0, 0x80),
    E("utf8 over U+10FFFF with ping between", true, 0, WS_ERR_INVALID_UTF8, WS_CLOSE_INVALID_DATA,
      20, 0x01, 0x81, MK, 0xF4, 0x89, 0x80, MK, 0x80, 0x81, MK, 0x90),
    E("utf8 truncated at end", true, 0, WS_ERR_INVALID_UTF8, WS_CLOSE_INVALID_DATA, 8, 0x81, 0x82,
      MK, 0xE2, 0x82),
    E("utf8 truncated by empty final fragment", true, 0, WS_ERR_INVALID_UTF8, WS_CLOSE_INVALID_DATA,
      13, 0x01, 0x81, MK, 0xE2, 0x80, 0x80, MK),
    E("close of 1 byte", true, 0, WS_ERR_CLOSE_PAYLOAD, PE, 7, 0x88, 0x81, MK, 0x03),
    E("close code 1005", true, 0, WS_ERR_CLOSE_CODE, PE, 8, 0x88, 0x82, MK, 0x03, 0xED),
    E("close reason bad utf8", true, 0, WS_ERR_CLOSE_REASON_UTF8, WS_CLOSE_INVALID_DATA, 10, 0x88,
      0x84, MK, 0x03, 0xE8, 0xC0, 0x80),
    E("close reason truncated utf8", true, 0, WS_ERR_CLOSE_REASON_UTF8, WS_CLOSE_INVALID_DATA, 9,
      0x88, 0x83, MK, 0x03, 0xE8, 0xE2),
    E("bytes after close", true, 0, WS_ERR_AFTER_CLOSE, PE, 7, 0x88, 0x80, MK, 0x81, 0x80, MK),
};

static const size_t n_error_cases = sizeof(error_cases) / sizeof(error_cases[0]);

static struct ws_decoder_config case_cfg(const struct error_case *c)
{
    struct ws_decoder_config cfg = server_cfg(c->max_message);
    cfg.expect_masked = c->expect_masked;
    return cfg;
}

/* The whole input ends in the expected error with the expected close code. */
START_TEST(test_error_whole)
{
    const struct error_case *c = &error_cases[_i];
    struct ws_decoder_config cfg = case_cfg(c);
    struct transcript t;
    transcript_init(&t);
    decode_whole(&t, &cfg, c->bytes, c->len);
    ck_assert_msg(t.error == c->error, "%s: got %d want %d", c->name, t.error, c->error);
    ck_assert_msg(ws_error_close_code(t.error) == c->close_code, "%s", c->name);
    transcript_free(&t);
}
END_TEST

/* Fail fast: no error before fail_at bytes (fed whole or byte by byte), the error at fail_at. */
START_TEST(test_error_fail_fast)
{
    const struct error_case *c = &error_cases[_i];
    struct ws_decoder_config cfg = case_cfg(c);
    ck_assert_uint_le(c->fail_at, c->len);
    for (size_t prefix = 0; prefix <= c->fail_at; prefix++) {
        struct transcript t;
        transcript_init(&t);
        decode_whole(&t, &cfg, c->bytes, prefix);
        int want = prefix == c->fail_at ? c->error : 0;
        ck_assert_msg(t.error == want, "%s: prefix %zu gave %d", c->name, prefix, t.error);
        transcript_free(&t);
    }
}
END_TEST

START_TEST(test_error_every_split)
{
    const struct error_case *c = &error_cases[_i];
    struct ws_decoder_config cfg = case_cfg(c);
    check_every_split(&cfg, c->bytes, c->len);
}
END_TEST

/* Every reserved opcode, on a well-formed masked frame. */
START_TEST(test_reserved_opcodes)
{
    for (unsigned op = 0; op < 16; op++) {
        uint8_t in[2 + 4] = {(uint8_t)(0x80 | op), 0x80, MK};
        struct ws_decoder_config cfg = server_cfg(0);
        struct transcript t;
        transcript_init(&t);
        decode_whole(&t, &cfg, in, sizeof(in));
        bool known = op == 1 || op == 2 || op == 8 || op == 9 || op == 10;
        int want = op == 0 ? WS_ERR_CONTINUATION : known ? 0 : WS_ERR_OPCODE;
        ck_assert_msg(t.error == want, "opcode %u: %d", op, t.error);
        transcript_free(&t);
    }
}
END_TEST

static bool close_code_allowed(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* Every 16-bit close code: accepted codes give a CLOSE event, the rest 1002. */
START_TEST(test_close_codes_all)
{
    static const unsigned must_fail[] = {0,    999,  1004, 1005, 1006, 1015,
                                         1016, 1100, 2000, 2999, 5000, 65535};
    static const unsigned must_pass[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009,
                                         1010, 1011, 1012, 1013, 1014, 3000, 4999};
    for (size_t i = 0; i < sizeof(must_fail) / sizeof(must_fail[0]); i++)
        ck_assert(!close_code_allowed(must_fail[i]));
    for (size_t i = 0; i < sizeof(must_pass) / sizeof(must_pass[0]); i++)
        ck_assert(close_code_allowed(must_pass[i]));
    for (unsigned code = 0; code < 65536; code++) {
        uint8_t in[8];
        uint8_t payload[2] = {(uint8_t)(code >> 8), (uint8_t)code};
        size_t n = put_frame(in, 0x88, payload, 2, KEY_B);
        struct ws_decoder d;
        struct ws_event ev;
        struct ws_decoder_config cfg = server_cfg(0);
        ws_decoder_init(&d, &cfg);
        ssize_t r = ws_decoder_decode(&d, in, n, &ev);
        ck_assert(ws_close_code_valid((uint16_t)code) == close_code_allowed(code));
        if (close_code_allowed(code)) {
            ck_assert_int_eq(r, (ssize_t)n);
            ck_assert_int_eq(ev.type, WS_EVENT_CLOSE);
            ck_assert_uint_eq(ev.close_code, code);
            ck_assert_uint_eq(ev.len, 0);
        } else {
            ck_assert_msg(r == WS_ERR_CLOSE_CODE, "code %u", code);
        }
    }
}
END_TEST

START_TEST(test_error_codes_and_messages)
{
    static const struct {
        int err;
        uint16_t code;
    } table[] = {
        {WS_ERR_RSV, PE},
        {WS_ERR_OPCODE, PE},
        {WS_ERR_CONTROL_TOO_BIG, PE},
        {WS_ERR_CONTROL_FRAGMENTED, PE},
        {WS_ERR_UNMASKED, PE},
        {WS_ERR_MASKED, PE},
        {WS_ERR_LENGTH_NOT_MINIMAL, PE},
        {WS_ERR_LENGTH_TOP_BIT, PE},
        {WS_ERR_CONTINUATION, PE},
        {WS_ERR_NEW_MESSAGE, PE},
        {WS_ERR_TOO_BIG, WS_CLOSE_TOO_BIG},
        {WS_ERR_INVALID_UTF8, WS_CLOSE_INVALID_DATA},
        {WS_ERR_CLOSE_PAYLOAD, PE},
        {WS_ERR_CLOSE_CODE, PE},
        {WS_ERR_CLOSE_REASON_UTF8, WS_CLOSE_INVALID_DATA},
        {WS_ERR_AFTER_CLOSE, PE},
    };
    const size_t n = sizeof(table) / sizeof(table[0]);
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(ws_error_close_code(table[i].err), table[i].code);
        const char *msg = ws_error_message(table[i].err);
        ck_assert_ptr_nonnull(msg);
        ck_assert(strlen(msg) > 0 && strlen(msg) <= WS_CONTROL_PAYLOAD_MAX - 2);
        ck_assert(ws_utf8_valid((const uint8_t *)msg, strlen(msg)));
        for (size_t k = 0; k < i; k++)
            ck_assert_str_ne(msg, ws_error_message(table[k].err));
    }
    ck_assert_str_eq(ws_error_message(WS_ERR_TOO_BIG), "message exceeds max_message_size");
    ck_assert_uint_eq(ws_error_close_code(-999), PE);
    ck_assert_ptr_nonnull(ws_error_message(-999));
}
END_TEST

/* ---- multi-frame streams at every split ---- */

/* Fragmented text with ping and pong between fragments, then close with a reason. */
static size_t stream_interleaved(uint8_t *out)
{
    size_t n = 0;
    n += put_frame(out + n, 0x01, "Hel", 3, KEY_A);
    n += put_frame(out + n, 0x89, "hi", 2, KEY_B);
    n += put_frame(out + n, 0x00, "l", 1, KEY_B);
    n += put_frame(out + n, 0x8A, "", 0, KEY_A);
    n += put_frame(out + n, 0x80, "o", 1, KEY_A);
    n += put_frame(out + n, 0x82, "\xFF\x00\xFE", 3, KEY_B);
    n += put_frame(out + n, 0x88,
                   "\x03\xE8"
                   "bye",
                   5, KEY_A);
    return n;
}

/* A euro sign and an emoji split byte by byte across fragments, with a ping in the middle. */
static size_t stream_utf8_fragments(uint8_t *out)
{
    size_t n = 0;
    n += put_frame(out + n, 0x01, "\xE2", 1, KEY_A);
    n += put_frame(out + n, 0x00, "\x82", 1, KEY_B);
    n += put_frame(out + n, 0x89, "\xFF", 1, KEY_A); /* pings are binary: no UTF-8 rule */
    n += put_frame(out + n, 0x00, "\xAC\xF0\x9F", 3, KEY_A);
    n += put_frame(out + n, 0x00, "", 0, KEY_A);
    n += put_frame(out + n, 0x80, "\x98\x80", 2, KEY_B);
    n += put_frame(out + n, 0x81, "", 0, KEY_B);
    return n;
}

/* 16-bit length, empty messages, a full 125-byte ping, and a close without status. */
static size_t stream_mixed_lengths(uint8_t *out)
{
    uint8_t big[300], ping[125];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (uint8_t)(i * 7);
    for (size_t i = 0; i < sizeof(ping); i++)
        ping[i] = (uint8_t)(255 - i);
    size_t n = 0;
    n += put_frame(out + n, 0x82, big, sizeof(big), KEY_A);
    n += put_frame(out + n, 0x81, "", 0, KEY_B);
    n += put_frame(out + n, 0x02, "", 0, KEY_A);
    n += put_frame(out + n, 0x89, ping, sizeof(ping), KEY_B);
    n += put_frame(out + n, 0x00, big, 130, KEY_B);
    n += put_frame(out + n, 0x80, "", 0, KEY_A);
    n += put_frame(out + n, 0x88, "", 0, KEY_A);
    return n;
}

/* Valid messages, then a fragment with a bad byte: the completed messages come out first. */
static size_t stream_error_late(uint8_t *out)
{
    size_t n = 0;
    n += put_frame(out + n, 0x81, "ok", 2, KEY_A);
    n += put_frame(out + n, 0x01, "still ", 6, KEY_B);
    n += put_frame(out + n, 0x8A, "p", 1, KEY_B);
    n += put_frame(out + n, 0x00, "fine \xC3", 6, KEY_A);
    n += put_frame(out + n, 0x80, "(", 1, KEY_A);
    return n;
}

START_TEST(test_stream_interleaved)
{
    uint8_t in[256];
    size_t n = stream_interleaved(in);
    struct ws_decoder_config cfg = server_cfg(0);
    struct transcript t, want;
    transcript_init(&t);
    transcript_init(&want);
    decode_whole(&t, &cfg, in, n);
    /* records are in event order: ping and pong come before the text message completes */
    append_record(&want, 'P', 0, "hi", 2);
    append_record(&want, 'O', 0, "", 0);
    append_record(&want, 'T', 0, "Hello", 5);
    append_record(&want, 'B', 0, "\xFF\x00\xFE", 3);
    append_record(&want, 'C', 1000, "bye", 3);
    assert_same(&want, &t, "interleaved transcript");
    ck_assert_int_eq(t.error, 0);
    transcript_free(&t);
    transcript_free(&want);
    check_every_split(&cfg, in, n);
}
END_TEST

START_TEST(test_stream_utf8_fragments)
{
    uint8_t in[256];
    size_t n = stream_utf8_fragments(in);
    struct ws_decoder_config cfg = server_cfg(0);
    struct transcript t, want;
    transcript_init(&t);
    transcript_init(&want);
    decode_whole(&t, &cfg, in, n);
    append_record(&want, 'P', 0, "\xFF", 1);
    append_record(&want, 'T', 0, "\xE2\x82\xAC\xF0\x9F\x98\x80", 7);
    append_record(&want, 'T', 0, "", 0);
    assert_same(&want, &t, "utf8 transcript");
    transcript_free(&t);
    transcript_free(&want);
    check_every_split(&cfg, in, n);
}
END_TEST

START_TEST(test_stream_mixed_lengths)
{
    uint8_t in[1024];
    size_t n = stream_mixed_lengths(in);
    struct ws_decoder_config cfg = server_cfg(0);
    struct transcript t;
    transcript_init(&t);
    decode_whole(&t, &cfg, in, n);
    ck_assert_int_eq(t.error, 0);
    ck_assert_uint_eq(t.events, 7); /* 300 B, "", "" + "" (two events), ping, 130 + "", close */
    transcript_free(&t);
    check_every_split(&cfg, in, n);
}
END_TEST

START_TEST(test_stream_error_late)
{
    uint8_t in[256];
    size_t n = stream_error_late(in);
    struct ws_decoder_config cfg = server_cfg(0);
    struct transcript t, want;
    transcript_init(&t);
    transcript_init(&want);
    decode_whole(&t, &cfg, in, n);
    append_record(&want, 'T', 0, "ok", 2);
    append_record(&want, 'O', 0, "p", 1);
    append_record(&want, 'E', (uint32_t)-WS_ERR_INVALID_UTF8, NULL, 0);
    assert_same(&want, &t, "late error transcript");
    transcript_free(&t);
    transcript_free(&want);
    check_every_split(&cfg, in, n);
}
END_TEST

/* The RFC examples back to back, as a client decodes them. */
START_TEST(test_stream_client_rfc)
{
    uint8_t in[64];
    size_t n = 0;
    memcpy(in + n, rfc_unmasked_hello, sizeof(rfc_unmasked_hello)), n += sizeof(rfc_unmasked_hello);
    memcpy(in + n, rfc_fragmented, 5), n += 5;
    memcpy(in + n, rfc_ping, sizeof(rfc_ping)), n += sizeof(rfc_ping);
    memcpy(in + n, rfc_fragmented + 5, 4), n += 4;
    struct ws_decoder_config cfg = client_cfg();
    struct transcript t, want;
    transcript_init(&t);
    transcript_init(&want);
    decode_whole(&t, &cfg, in, n);
    append_record(&want, 'T', 0, "Hello", 5);
    append_record(&want, 'P', 0, "Hello", 5);
    append_record(&want, 'T', 0, "Hello", 5);
    assert_same(&want, &t, "client transcript");
    transcript_free(&t);
    transcript_free(&want);
    check_every_split(&cfg, in, n);
}
END_TEST

/* xorshift: reproducible pseudo-random streams */
static uint32_t rng_next(uint32_t *state)
{
    uint32_t x = *state;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *state = x;
}

/* Fills payload[0..len) with whole UTF-8 characters (ASCII padding where one would not fit). */
static void random_text(uint8_t *payload, size_t len, uint32_t *r)
{
    static const char *const texts[] = {"a", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "xyz"};
    size_t i = 0;
    while (i < len) {
        const char *t = texts[rng_next(r) % 5];
        size_t tl = strlen(t);
        if (tl > len - i)
            t = "a", tl = 1;
        memcpy(payload + i, t, tl);
        i += tl;
    }
}

/*
 * A random stream of mostly well-formed frames (fragmented messages, interleaved control frames,
 * sometimes a bad opcode, a close, or one flipped bit): whatever the decoder makes of it, it
 * must make the same at every split.
 */
static size_t random_stream(uint8_t *out, uint32_t seed)
{
    uint32_t r = seed * 2654435761u + 1;
    size_t n = 0;
    bool in_message = false;
    unsigned frames = 1 + rng_next(&r) % 6;
    for (unsigned f = 0; f < frames; f++) {
        uint8_t payload[140], op;
        size_t len = rng_next(&r) % 140;
        unsigned pick = rng_next(&r) % 20;
        if (pick == 0)
            op = 0x3; /* reserved */
        else if (pick == 1 && f == frames - 1)
            op = 0x8;
        else if (pick < 6)
            op = pick % 2 ? 0x9 : 0xA;
        else
            op = in_message ? 0x0 : (pick % 2 ? 0x1 : 0x2);
        bool fin = (op & 8) || rng_next(&r) % 3 != 0;
        if (op & 8)
            len %= 126;
        random_text(payload, len, &r);
        if (op == 0x8 && len == 1)
            len = 0;
        if (op == 0x8 && len >= 2)
            payload[0] = 0x03, payload[1] = 0xE8;
        if (!(op & 8))
            in_message = !fin;
        uint8_t key[4];
        for (int k = 0; k < 4; k++)
            key[k] = (uint8_t)rng_next(&r);
        n += put_frame(out + n, (uint8_t)((fin ? 0x80 : 0) | op), payload, len, key);
    }
    if (rng_next(&r) % 4 == 0)
        out[rng_next(&r) % n] ^= (uint8_t)(1u << (rng_next(&r) % 8));
    return n;
}

START_TEST(test_random_streams)
{
    uint8_t in[6 * (14 + 140)];
    struct ws_decoder_config cfg = server_cfg(300);
    unsigned failed = 0;
    for (uint32_t seed = 1; seed <= 300; seed++) {
        size_t n = random_stream(in, seed);
        failed += check_splits(&cfg, in, n, false) != 0;
    }
    /* the generator must exercise both outcomes, or this test proves little */
    ck_assert_uint_gt(failed, 40);
    ck_assert_uint_lt(failed, 200);
}
END_TEST

/* ---- decoder details ---- */

/* A control payload split across reads comes out whole, from the decoder's memory. */
START_TEST(test_control_split_buffered)
{
    uint8_t payload[125], in[256];
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i ^ 0x5A);
    size_t n = put_frame(in, 0x89, payload, sizeof(payload), KEY_B);
    struct ws_decoder_config cfg = server_cfg(0);
    struct ws_decoder d;
    struct ws_event ev;
    ws_decoder_init(&d, &cfg);
    ck_assert_int_eq(ws_decoder_decode(&d, in, 50, &ev), 50);
    ck_assert_int_eq(ev.type, WS_EVENT_NONE);
    ck_assert_int_eq(ws_decoder_decode(&d, in + 50, 40, &ev), 40);
    ck_assert_int_eq(ev.type, WS_EVENT_NONE);
    ck_assert_int_eq(ws_decoder_decode(&d, in + 90, n - 90, &ev), (ssize_t)(n - 90));
    ck_assert_int_eq(ev.type, WS_EVENT_PING);
    ck_assert_uint_eq(ev.len, 125);
    ck_assert(points_into(ev.data, ev.len, &d, sizeof(d)));
    ck_assert_mem_eq(ev.data, payload, 125);
}
END_TEST

/* A 64 KiB frame fed in 1000-byte reads streams out as chunks of exactly what arrived. */
START_TEST(test_large_frame_streamed)
{
    enum { SIZE = 65536, READ = 1000 };
    uint8_t *payload = malloc(SIZE), *in = malloc(SIZE + 14);
    ck_assert(payload != NULL && in != NULL);
    for (size_t i = 0; i < SIZE; i++)
        payload[i] = (uint8_t)('a' + i % 26);
    size_t n = put_frame(in, 0x81, payload, SIZE, KEY_A);
    ck_assert_uint_eq(n, SIZE + 14);
    struct ws_decoder_config cfg = server_cfg(0);
    struct ws_decoder d;
    ws_decoder_init(&d, &cfg);
    size_t got = 0, chunks = 0;
    for (size_t off = 0; off < n; off += READ) {
        size_t len = n - off < READ ? n - off : READ;
        struct ws_event ev;
        ssize_t r = ws_decoder_decode(&d, in + off, len, &ev);
        ck_assert_int_eq(r, (ssize_t)len);
        ck_assert_int_eq(ev.type, WS_EVENT_DATA);
        ck_assert_uint_eq(ev.len, off == 0 ? len - 14 : len);
        ck_assert(ev.message_start == (off == 0));
        ck_assert(ev.message_end == (off + len == n));
        ck_assert_mem_eq(ev.data, payload + got, ev.len);
        got += ev.len;
        chunks++;
    }
    ck_assert_uint_eq(got, SIZE);
    ck_assert_uint_eq(chunks, (n + READ - 1) / READ);
    free(payload);
    free(in);
}
END_TEST

/* Several frames in one buffer come out one event per call, with exact byte counts. */
START_TEST(test_one_event_per_call)
{
    uint8_t in[64];
    size_t a = put_frame(in, 0x81, "one", 3, KEY_A);
    size_t b = put_frame(in + a, 0x82, "two", 3, KEY_B);
    size_t c = put_frame(in + a + b, 0x81, "", 0, KEY_A);
    struct ws_decoder_config cfg = server_cfg(0);
    struct ws_decoder d;
    struct ws_event ev;
    ws_decoder_init(&d, &cfg);
    ck_assert_int_eq(ws_decoder_decode(&d, in, a + b + c, &ev), (ssize_t)a);
    ck_assert(ev.type == WS_EVENT_DATA && ev.text && ev.len == 3);
    ck_assert_mem_eq(ev.data, "one", 3);
    ck_assert_int_eq(ws_decoder_decode(&d, in + a, b + c, &ev), (ssize_t)b);
    ck_assert(ev.type == WS_EVENT_DATA && !ev.text && ev.len == 3);
    ck_assert_mem_eq(ev.data, "two", 3);
    ck_assert_int_eq(ws_decoder_decode(&d, in + a + b, c, &ev), (ssize_t)c);
    ck_assert(ev.type == WS_EVENT_DATA && ev.text && ev.len == 0);
    ck_assert(ev.message_start && ev.message_end);
    ck_assert_int_eq(ws_decoder_decode(&d, in, 0, &ev), 0);
    ck_assert_int_eq(ev.type, WS_EVENT_NONE);
}
END_TEST

START_TEST(test_message_exactly_at_limit)
{
    uint8_t in[64];
    size_t n = put_frame(in, 0x02, "12345678", 8, KEY_A);
    n += put_frame(in + n, 0x89, "ping", 4, KEY_A); /* control bytes do not count */
    n += put_frame(in + n, 0x80, "abcdefgh", 8, KEY_B);
    n += put_frame(in + n, 0x82, "0123456789abcdef", 16, KEY_B);
    struct ws_decoder_config cfg = server_cfg(16);
    struct transcript t;
    transcript_init(&t);
    decode_whole(&t, &cfg, in, n);
    ck_assert_int_eq(t.error, 0);
    ck_assert_uint_eq(t.events, 4);
    transcript_free(&t);
}
END_TEST

START_TEST(test_close_variants)
{
    uint8_t in[160], out[128];
    struct ws_decoder_config cfg = server_cfg(0);
    size_t n = put_frame(in, 0x88, "", 0, KEY_A);
    struct ws_event ev = decode_one(&cfg, in, n, out);
    ck_assert_int_eq(ev.type, WS_EVENT_CLOSE);
    ck_assert_uint_eq(ev.close_code, WS_CLOSE_NO_STATUS);
    ck_assert_uint_eq(ev.len, 0);
    n = put_frame(in, 0x88,
                  "\x0F\xA0"
                  "caf\xC3\xA9",
                  7, KEY_B);
    ev = decode_one(&cfg, in, n, out);
    ck_assert_uint_eq(ev.close_code, 4000);
    ck_assert_uint_eq(ev.len, 5);
    ck_assert_mem_eq(out, "caf\xC3\xA9", 5);
    /* after a close, input is refused */
    struct ws_decoder d;
    struct ws_event e2;
    ws_decoder_init(&d, &cfg);
    n = put_frame(in, 0x88, "\x03\xE8", 2, KEY_A);
    ck_assert_int_eq(ws_decoder_decode(&d, in, n, &e2), (ssize_t)n);
    ck_assert_int_eq(ws_decoder_decode(&d, in, 0, &e2), WS_ERR_AFTER_CLOSE);
    ck_assert_int_eq(e2.type, WS_EVENT_NONE);
}
END_TEST

/* Binary messages carry any bytes; text rules do not apply. */
START_TEST(test_binary_not_utf8_checked)
{
    uint8_t in[32], out[16];
    size_t n = put_frame(in, 0x82, "\xC0\x80\xED\xA0\x80\xFF", 6, KEY_A);
    struct ws_decoder_config cfg = server_cfg(0);
    struct ws_event ev = decode_one(&cfg, in, n, out);
    ck_assert_int_eq(ev.type, WS_EVENT_DATA);
    ck_assert(!ev.text);
    ck_assert_mem_eq(out, "\xC0\x80\xED\xA0\x80\xFF", 6);
}
END_TEST

/* permessage-deflate: RSV1 on a message's first frame marks it compressed, and its bytes (not
 * UTF-8 before they are inflated) are handed out unchecked. */
START_TEST(test_rsv1_compressed_message)
{
    uint8_t in[32], out[16];
    size_t n = put_frame(in, 0xC1, "\xC0\x80\xFF", 3, KEY_A);
    struct ws_decoder_config cfg = server_cfg(0);
    cfg.allow_compressed = true;
    struct ws_event ev = decode_one(&cfg, in, n, out);
    ck_assert_int_eq(ev.type, WS_EVENT_DATA);
    ck_assert(ev.text);
    ck_assert(ev.compressed);
    ck_assert(ev.message_end);
    ck_assert_mem_eq(out, "\xC0\x80\xFF", 3);
    /* without the extension the same frame is a protocol error */
    cfg.allow_compressed = false;
    struct ws_decoder d;
    ws_decoder_init(&d, &cfg);
    ck_assert_int_eq(ws_decoder_decode(&d, in, n, &ev), WS_ERR_RSV);
}
END_TEST

/* RSV1 belongs to the first frame only: on a continuation or a control frame it is an error, and
 * RSV2/RSV3 stay errors; the continuation of a compressed message is reported compressed. */
START_TEST(test_rsv1_rules)
{
    struct ws_decoder_config cfg = server_cfg(0);
    cfg.allow_compressed = true;
    struct {
        uint8_t b0_first, b0_second;
        int want; /* error of the second frame, 0: accepted */
    } cases[] = {
        {0x41, 0xC0, WS_ERR_RSV}, /* RSV1 on the continuation */
        {0x41, 0xA0, WS_ERR_RSV}, /* RSV2 on the continuation */
        {0x41, 0x80, 0},          /* a plain continuation of a compressed message */
        {0x41, 0xC9, WS_ERR_RSV}, /* RSV1 on a ping between fragments */
        {0x81, 0xE1, WS_ERR_RSV}, /* RSV1 + RSV2 on a new message */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t in[32];
        size_t n = put_frame(in, cases[i].b0_first, "ab", 2, KEY_A);
        n += put_frame(in + n, cases[i].b0_second, "cd", 2, KEY_B);
        struct ws_decoder d;
        struct ws_event ev;
        ws_decoder_init(&d, &cfg);
        ssize_t r = ws_decoder_decode(&d, in, n, &ev);
        ck_assert_int_gt(r, 0);
        ck_assert(ev.compressed == ((cases[i].b0_first & 0x40) != 0));
        r = ws_decoder_decode(&d, in + r, n - (size_t)r, &ev);
        if (cases[i].want != 0) {
            ck_assert_int_eq(r, cases[i].want);
            ck_assert_uint_eq(ws_error_close_code((int)r), WS_CLOSE_PROTOCOL_ERROR);
        } else {
            ck_assert_int_gt(r, 0);
            ck_assert(ev.compressed);
            ck_assert(ev.message_end);
        }
    }
}
END_TEST

START_TEST(test_config_defaults)
{
    struct ws_decoder_config cfg;
    ws_decoder_config_default(&cfg);
    ck_assert_uint_eq(cfg.max_message_size, 1024 * 1024);
    ck_assert(cfg.expect_masked);
    /* NULL config means the defaults: unmasked input is refused, 1 MiB + 1 is too big */
    struct ws_decoder d;
    struct ws_event ev;
    ws_decoder_init(&d, NULL);
    uint8_t in[10] = {0x82, 0xFF, 0, 0, 0, 0, 0, 0x10, 0x00, 0x01};
    ck_assert_int_eq(ws_decoder_decode(&d, (uint8_t[]){0x82, 0x00}, 2, &ev), WS_ERR_UNMASKED);
    ws_decoder_init(&d, NULL);
    ck_assert_int_eq(ws_decoder_decode(&d, in, sizeof(in), &ev), WS_ERR_TOO_BIG);
    ws_decoder_init(&d, NULL);
    in[9] = 0x00; /* exactly 1 MiB: accepted, waiting for the mask key */
    ck_assert_int_eq(ws_decoder_decode(&d, in, sizeof(in), &ev), 10);
    ck_assert_int_eq(ev.type, WS_EVENT_NONE);
}
END_TEST

/* Encoder output decodes to the same payload for every length class, masked and not. */
START_TEST(test_encode_decode_roundtrip)
{
    static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 70001};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t len = sizes[i];
        uint8_t *in = malloc(len + WS_FRAME_HEADER_MAX), *payload = malloc(len + 1);
        uint8_t *out = malloc(len + 1);
        ck_assert(in != NULL && payload != NULL && out != NULL);
        for (size_t k = 0; k < len; k++)
            payload[k] = (uint8_t)(k * 13 + 1);
        for (int masked = 0; masked <= 1; masked++) {
            size_t h = ws_frame_header_encode(in, WS_OP_BINARY, true, len, masked ? KEY_B : NULL);
            size_t want_h = (len < 126 ? 2 : len < 65536 ? 4 : 10) + (masked ? 4 : 0);
            ck_assert_uint_eq(h, want_h);
            memcpy(in + h, payload, len);
            if (masked)
                ws_mask(in + h, len, KEY_B, 0);
            struct ws_decoder_config cfg = masked ? server_cfg(0) : client_cfg();
            struct ws_event ev = decode_one(&cfg, in, h + len, out);
            ck_assert_int_eq(ev.type, WS_EVENT_DATA);
            ck_assert_uint_eq(ev.len, len);
            ck_assert(len == 0 || memcmp(out, payload, len) == 0);
        }
        free(in);
        free(payload);
        free(out);
    }
}
END_TEST

START_TEST(test_header_encode_table)
{
    static const struct {
        enum ws_opcode op;
        bool fin;
        uint64_t len;
        bool masked;
        size_t n;
        uint8_t bytes[WS_FRAME_HEADER_MAX];
    } table[] = {
        {WS_OP_TEXT, true, 0, false, 2, {0x81, 0x00}},
        {WS_OP_TEXT, true, 125, false, 2, {0x81, 0x7D}},
        {WS_OP_BINARY, true, 126, false, 4, {0x82, 0x7E, 0x00, 0x7E}},
        {WS_OP_BINARY, false, 65535, false, 4, {0x02, 0x7E, 0xFF, 0xFF}},
        {WS_OP_CONTINUATION, true, 65536, false, 10, {0x80, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0}},
        {WS_OP_BINARY,
         true,
         0x123456789ull,
         false,
         10,
         {0x82, 0x7F, 0, 0, 0, 1, 0x23, 0x45, 0x67, 0x89}},
        {WS_OP_CLOSE, true, 2, true, 6, {0x88, 0x82, 0x01, 0x80, 0xfe, 0x7f}},
        {WS_OP_PING, true, 300, true, 8, {0x89, 0xFE, 0x01, 0x2C, 0x01, 0x80, 0xfe, 0x7f}},
        {WS_OP_PONG,
         true,
         1ull << 40,
         true,
         14,
         {0x8A, 0xFF, 0, 0, 1, 0, 0, 0, 0, 0, 0x01, 0x80, 0xfe, 0x7f}},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        uint8_t h[WS_FRAME_HEADER_MAX];
        size_t n = ws_frame_header_encode(h, table[i].op, table[i].fin, table[i].len,
                                          table[i].masked ? KEY_B : NULL);
        ck_assert_uint_eq(n, table[i].n);
        ck_assert_mem_eq(h, table[i].bytes, n);
    }
}
END_TEST

/* ws_mask against a byte loop: every key offset, length and start alignment. */
START_TEST(test_mask_matches_naive)
{
    uint8_t buf[128 + 16], want[128 + 16];
    for (size_t align = 0; align < 16; align++)
        for (size_t len = 0; len <= 128; len++)
            for (size_t offset = 0; offset < 8; offset++) {
                for (size_t i = 0; i < sizeof(buf); i++)
                    buf[i] = want[i] = (uint8_t)(i * 37 + len);
                for (size_t i = 0; i < len; i++)
                    want[align + i] ^= KEY_A[(offset + i) % 4];
                ws_mask(buf + align, len, KEY_A, offset);
                ck_assert_msg(memcmp(buf, want, sizeof(buf)) == 0, "align %zu len %zu off %zu",
                              align, len, offset);
            }
}
END_TEST

/* Masking in two parts with the running offset equals masking at once. */
START_TEST(test_mask_in_parts)
{
    uint8_t a[100], b[100];
    for (size_t i = 0; i < 100; i++)
        a[i] = b[i] = (uint8_t)i;
    ws_mask(a, 100, KEY_B, 0);
    for (size_t cut = 0; cut <= 100; cut++) {
        uint8_t c[100];
        memcpy(c, b, 100);
        ws_mask(c, cut, KEY_B, 0);
        ws_mask(c + cut, 100 - cut, KEY_B, cut);
        ck_assert_mem_eq(c, a, 100);
    }
    ws_mask(a, 100, KEY_B, 0);
    ck_assert_mem_eq(a, b, 100);
}
END_TEST

START_TEST(test_close_payload_encode)
{
    uint8_t out[WS_CONTROL_PAYLOAD_MAX];
    ck_assert_uint_eq(ws_close_payload_encode(out, 1000, NULL), 2);
    ck_assert_mem_eq(out, "\x03\xE8", 2);
    ck_assert_uint_eq(ws_close_payload_encode(out, 1009, "too big"), 9);
    ck_assert_mem_eq(out, "\x03\xF1too big", 9);
    /* codes that must not be sent give an empty payload */
    ck_assert_uint_eq(ws_close_payload_encode(out, WS_CLOSE_NO_STATUS, "x"), 0);
    ck_assert_uint_eq(ws_close_payload_encode(out, WS_CLOSE_ABNORMAL, "x"), 0);
    ck_assert_uint_eq(ws_close_payload_encode(out, 1015, "x"), 0);
    ck_assert_uint_eq(ws_close_payload_encode(out, 0, NULL), 0);
    /* ASCII reason cut at 123 bytes */
    char ascii[200];
    memset(ascii, 'r', sizeof(ascii) - 1);
    ascii[199] = '\0';
    ck_assert_uint_eq(ws_close_payload_encode(out, 1008, ascii), 125);
    /* 2-byte characters: 123 would split one, so 122 */
    char accents[201];
    for (size_t i = 0; i < 200; i += 2)
        accents[i] = (char)0xC3, accents[i + 1] = (char)0xA9;
    accents[200] = '\0';
    ck_assert_uint_eq(ws_close_payload_encode(out, 1008, accents), 124);
    ck_assert(ws_utf8_valid(out + 2, 122));
    /* 4-byte characters: 123 = 30 * 4 + 3, so 120 */
    char emoji[201];
    for (size_t i = 0; i < 200; i += 4)
        memcpy(emoji + i, "\xF0\x9F\x98\x80", 4);
    emoji[200] = '\0';
    ck_assert_uint_eq(ws_close_payload_encode(out, 1001, emoji), 122);
    /* a reason that is not UTF-8 is dropped rather than sent */
    ck_assert_uint_eq(ws_close_payload_encode(out, 1011, "bad \xFF"), 2);
    /* and what it writes decodes as a close */
    size_t n = ws_close_payload_encode(out, 1008, emoji);
    uint8_t frame[WS_FRAME_HEADER_MAX + WS_CONTROL_PAYLOAD_MAX], back[WS_CONTROL_PAYLOAD_MAX];
    size_t h = ws_frame_header_encode(frame, WS_OP_CLOSE, true, n, KEY_A);
    memcpy(frame + h, out, n);
    ws_mask(frame + h, n, KEY_A, 0);
    struct ws_decoder_config cfg = server_cfg(0);
    struct ws_event ev = decode_one(&cfg, frame, h + n, back);
    ck_assert_int_eq(ev.type, WS_EVENT_CLOSE);
    ck_assert_uint_eq(ev.close_code, 1008);
    ck_assert_uint_eq(ev.len, 120);
    ck_assert_mem_eq(back, emoji, 120);
}
END_TEST

static Suite *frame_suite(void)
{
    Suite *s = suite_create("ws_frame");
    TCase *rfc = tcase_create("rfc_examples");
    tcase_add_test(rfc, test_rfc_unmasked_text);
    tcase_add_test(rfc, test_rfc_masked_text);
    tcase_add_test(rfc, test_rfc_fragmented);
    tcase_add_test(rfc, test_rfc_ping_pong);
    tcase_add_test(rfc, test_rfc_binary_lengths);
    tcase_add_test(rfc, test_rfc_encode_examples);
    suite_add_tcase(s, rfc);

    TCase *errors = tcase_create("errors");
    tcase_set_timeout(errors, 60);
    tcase_add_loop_test(errors, test_error_whole, 0, (int)n_error_cases);
    tcase_add_loop_test(errors, test_error_fail_fast, 0, (int)n_error_cases);
    tcase_add_loop_test(errors, test_error_every_split, 0, (int)n_error_cases);
    tcase_add_test(errors, test_reserved_opcodes);
    tcase_add_test(errors, test_close_codes_all);
    tcase_add_test(errors, test_error_codes_and_messages);
    suite_add_tcase(s, errors);

    TCase *streams = tcase_create("streams");
    tcase_set_timeout(streams, 60);
    tcase_add_test(streams, test_stream_interleaved);
    tcase_add_test(streams, test_stream_utf8_fragments);
    tcase_add_test(streams, test_stream_mixed_lengths);
    tcase_add_test(streams, test_stream_error_late);
    tcase_add_test(streams, test_stream_client_rfc);
    tcase_add_test(streams, test_random_streams);
    suite_add_tcase(s, streams);

    TCase *decoder = tcase_create("decoder");
    tcase_add_test(decoder, test_control_split_buffered);
    tcase_add_test(decoder, test_large_frame_streamed);
    tcase_add_test(decoder, test_one_event_per_call);
    tcase_add_test(decoder, test_message_exactly_at_limit);
    tcase_add_test(decoder, test_close_variants);
    tcase_add_test(decoder, test_binary_not_utf8_checked);
    tcase_add_test(decoder, test_config_defaults);
    tcase_add_test(decoder, test_rsv1_compressed_message);
    tcase_add_test(decoder, test_rsv1_rules);
    suite_add_tcase(s, decoder);

    TCase *encoder = tcase_create("encoder");
    tcase_add_test(encoder, test_encode_decode_roundtrip);
    tcase_add_test(encoder, test_header_encode_table);
    tcase_add_test(encoder, test_mask_matches_naive);
    tcase_add_test(encoder, test_mask_in_parts);
    tcase_add_test(encoder, test_close_payload_encode);
    suite_add_tcase(s, encoder);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(frame_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
