/*
 * fuzz_stomp_parser.c - libFuzzer harness for stomp/parser (with stomp/encode and stomp/frame).
 *
 * Input layout: byte 0 picks the version (unset, 1.0, 1.1, 1.2), the limits (small, so every
 * limit path is reachable, or default) and whether the parser is shrunk after each chunk, as
 * session.c does after each read (stomp_parser_shrink); bytes 1..4 seed the chunk sizes; the rest
 * is the stream. The stream is fed in chunks, each copied into its own heap block of exactly its
 * size so ASan catches any read past it (and any use of a buffer the shrink freed). Every frame is
 * checked for sane fields, re-encoded with the same version, parsed again and compared with the
 * original (modulo the documented lossy cases).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "stomp/encode.h"
#include "stomp/parser.h"
#include "tests/fuzz/stomp_expect.h"
#include "tests/fuzz/fuzz.h"

static const struct stomp_limits small_limits = {
    .max_headers = 8, .max_header_line = 64, .max_header_bytes = 256, .max_body = 512};

/* Reads every octet the frame points at (ASan flags dangling pointers) and checks its shape. */
static void check_frame_sane(const struct stomp_frame *f, const struct stomp_limits *limits)
{
    CHECK((unsigned)f->command < STOMP_COMMAND_COUNT);
    CHECK(f->header_count <= limits->max_headers);
    CHECK(f->body_len <= limits->max_body);
    volatile unsigned sum = 0;
    for (size_t i = 0; i < f->header_count; i++) {
        const struct stomp_header *h = &f->headers[i];
        CHECK(h->name_len > 0);
        for (size_t k = 0; k < h->name_len; k++)
            sum += (unsigned char)h->name[k];
        for (size_t k = 0; k < h->value_len; k++)
            sum += (unsigned char)h->value[k];
    }
    for (size_t k = 0; k < f->body_len; k++)
        sum += (unsigned char)f->body[k];
    (void)sum;
}

/* Exercise the pure helpers on whatever header values the fuzzer produced. */
static void poke_helpers(const struct stomp_frame *f, int version)
{
    const char *message;
    int rc = stomp_frame_validate(f, version ? (enum stomp_version)version : STOMP_V1_2, &message);
    CHECK(rc == 0 ? message == NULL : message != NULL);
    const struct stomp_header *h = stomp_frame_header(f, "accept-version");
    if (h != NULL) {
        rc = stomp_negotiate_version(h->value, h->value_len, STOMP_VERSIONS_ALL);
        CHECK(rc == STOMP_ERR_NO_COMMON_VERSION || (rc >= STOMP_V1_0 && rc <= STOMP_V1_2));
    }
    h = stomp_frame_header(f, "heart-beat");
    if (h != NULL) {
        unsigned x, y, send, expect;
        if (stomp_heartbeat_parse(h->value, h->value_len, &x, &y) == 0) {
            stomp_heartbeat_negotiate(x, y, 1000, 1000, &send, &expect);
            CHECK(send == 0 || send >= 1000);
            CHECK(expect == 0 || expect >= x);
        }
    }
}

/*
 * Encodes f, parses the bytes back with a fresh parser and compares. Escaping at most doubles a
 * line, and a content-length header may be added: the second parser's limits allow for both.
 */
static void check_round_trip(const struct stomp_frame *f, int version,
                             const struct stomp_limits *limits)
{
    enum stomp_version v = version ? (enum stomp_version)version : STOMP_V1_2;
    size_t need = stomp_encode_frame(NULL, 0, v, f);
    char *wire = malloc(need);
    CHECK(wire != NULL);
    CHECK(stomp_encode_frame(wire, need, v, f) == need);

    struct stomp_limits roomy = {
        .max_headers = limits->max_headers + 1,
        .max_header_line = 2 * limits->max_header_line + 2,
        .max_header_bytes = 2 * limits->max_header_bytes + 64,
        .max_body = limits->max_body,
    };
    struct stomp_frame back;
    struct stomp_parser *p = expect_reparsed(f, version, wire, need, &roomy, &back);
    /* The encoder may append one content-length header. */
    CHECK(back.header_count == f->header_count || back.header_count == f->header_count + 1);
    if (back.header_count > f->header_count) {
        const struct stomp_header *added = &back.headers[f->header_count];
        CHECK(added->name_len == 14 && memcmp(added->name, "content-length", 14) == 0);
    }
    stomp_parser_free(p);
    free(wire);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    static const int versions[4] = {0, STOMP_V1_0, STOMP_V1_1, STOMP_V1_2};
    int version = versions[data[0] & 3];
    struct stomp_limits limits;
    if (data[0] & 4)
        stomp_limits_default(&limits);
    else
        limits = small_limits;
    bool shrink = (data[0] & 8) != 0;
    const uint8_t *seeds = data + 1;
    const char *stream = (const char *)data + 5;
    size_t len = size - 5;

    struct stomp_parser *p = stomp_parser_new(&limits);
    CHECK(p != NULL);
    if (version)
        stomp_parser_set_version(p, (enum stomp_version)version);
    size_t off = 0;
    bool failed = false;
    for (unsigned k = 0; off < len && !failed; k++) {
        size_t chunk = seeds[k % 4] == 0 ? len - off : (size_t)seeds[k % 4] % 64 + 1;
        if (chunk > len - off)
            chunk = len - off;
        char *buf = malloc(chunk);
        CHECK(buf != NULL);
        memcpy(buf, stream + off, chunk);
        size_t pos = 0;
        while (pos < chunk) {
            struct stomp_frame f;
            enum stomp_event ev;
            ssize_t used = stomp_parser_feed(p, buf + pos, chunk - pos, &f, &ev);
            if (used < 0) {
                CHECK(stomp_parser_error(p) == (int)used);
                CHECK(stomp_parser_error_message(p)[0] != '\0');
                failed = true;
                break;
            }
            CHECK(used > 0 && (size_t)used <= chunk - pos);
            CHECK(ev != STOMP_EVENT_NONE || (size_t)used == chunk - pos);
            if (ev == STOMP_EVENT_FRAME) {
                check_frame_sane(&f, &limits);
                poke_helpers(&f, version);
                check_round_trip(&f, version, &limits);
            }
            pos += (size_t)used;
        }
        free(buf);
        off += chunk;
        if (shrink && !failed) {
            size_t freed = stomp_parser_shrink(p);
            CHECK(freed == 0 || stomp_parser_buffered(p) == 0);
        }
    }
    stomp_parser_free(p);
    return 0;
}
