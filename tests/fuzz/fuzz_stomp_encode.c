/*
 * fuzz_stomp_encode.c - libFuzzer harness for stomp/encode, checked through stomp/parser.
 *
 * fuzz_stomp_parser.c re-encodes what the parser accepts; this harness starts from the other end,
 * with frames the parser would never produce: header names and values holding CR, LF, ':' and
 * '\', spaces at either end, bodies with NULs, any command in any version.
 *
 * Input layout: byte 0 picks the version (unset, 1.0, 1.1, 1.2; bits 0-1) and how the frame is
 * written (bit 2: stomp_encode_frame(), or stomp_encode_head() asked for a content-length, then
 * body and NUL); byte 1 the command; byte 2 the header count (0..8); then for each header a
 * length byte and the name, a length byte and the value (a NUL octet, which headers cannot
 * carry, is read as 0x01); the rest is the body. A header named content-length gets the body's
 * length as its value (any other value would make the frame lie about its body).
 *
 * Checks: the size query, the exact-size write and a write into a buffer one byte short (exact
 * heap blocks, so ASan flags any write past cap) agree; stomp_encode_header() and
 * stomp_escaped_len() agree on each header's size; the bytes parse back in one call, consuming
 * everything, into the same command, body and headers (as stomp_expect.h says each becomes),
 * plus at most one content-length header that the encoder added and that holds the body length.
 * Bits 3-5 of byte 0 are a version mask for stomp_encode_version_error(), parsed back too.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stomp/encode.h"
#include "stomp/parser.h"
#include "tests/fuzz/stomp_expect.h"
#include "tests/fuzz/fuzz.h"

#define MAX_HEADERS 8

static const int versions[4] = {0, STOMP_V1_0, STOMP_V1_1, STOMP_V1_2};

/* Cuts fields off the front of the input. */
struct reader {
    const uint8_t *p;
    size_t left;
};

static size_t take_len(struct reader *r, size_t max)
{
    if (r->left == 0)
        return 0;
    size_t n = r->p[0] % (max + 1);
    r->p++;
    r->left--;
    return n < r->left ? n : r->left;
}

/* n octets into out, NULs read as 0x01. */
static void take_text(struct reader *r, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        out[i] = r->p[i] != 0 ? (char)r->p[i] : '\x01';
    r->p += n;
    r->left -= n;
}

/* The frame described by the input; names and values live in text[]. */
struct built {
    struct stomp_frame frame;
    struct stomp_header headers[MAX_HEADERS];
    char text[MAX_HEADERS][2][64];
    char length[24]; /* the body length, for content-length headers */
};

static void build(struct built *b, const uint8_t *in, size_t len)
{
    struct reader r = {in, len};
    memset(&b->frame, 0, sizeof(b->frame));
    b->frame.command = (enum stomp_command)(take_len(&r, 255) % STOMP_COMMAND_COUNT);
    b->frame.header_count = take_len(&r, MAX_HEADERS);
    b->frame.headers = b->headers;
    for (size_t i = 0; i < b->frame.header_count; i++) {
        struct stomp_header *h = &b->headers[i];
        h->name_len = take_len(&r, 23) + 1; /* names are never empty */
        if (h->name_len > r.left) {
            h->name_len = 1;
            b->text[i][0][0] = 'n';
        } else {
            take_text(&r, h->name_len, b->text[i][0]);
        }
        h->name = b->text[i][0];
        h->value_len = take_len(&r, 63);
        take_text(&r, h->value_len, b->text[i][1]);
        h->value = b->text[i][1];
    }
    b->frame.body = (const char *)r.p;
    b->frame.body_len = r.left;
    snprintf(b->length, sizeof(b->length), "%zu", b->frame.body_len);
    for (size_t i = 0; i < b->frame.header_count; i++) {
        struct stomp_header *h = &b->headers[i];
        if (h->name_len == 14 && memcmp(h->name, "content-length", 14) == 0) {
            h->value = b->length;
            h->value_len = strlen(b->length);
        }
    }
}

static bool has_content_length(const struct stomp_frame *f)
{
    return stomp_frame_header(f, "content-length") != NULL;
}

/* Encodes f as asked; returns the bytes in a heap block of exactly their size. */
static char *encode(const struct stomp_frame *f, enum stomp_version v, bool head_only, size_t *len)
{
    size_t need =
        head_only ? stomp_encode_head(NULL, 0, v, f, true) : stomp_encode_frame(NULL, 0, v, f);
    CHECK(need > 0);
    if (need > 1) { /* one byte short: the same answer, nothing written past cap */
        char *short_buf = malloc(need - 1);
        CHECK(short_buf != NULL);
        size_t got = head_only ? stomp_encode_head(short_buf, need - 1, v, f, true)
                               : stomp_encode_frame(short_buf, need - 1, v, f);
        CHECK(got == need);
        free(short_buf);
    }
    size_t total = head_only ? need + f->body_len + 1 : need;
    char *wire = malloc(total);
    CHECK(wire != NULL);
    size_t got = head_only ? stomp_encode_head(wire, need, v, f, true)
                           : stomp_encode_frame(wire, need, v, f);
    CHECK(got == need);
    if (head_only) {
        if (f->body_len > 0)
            memcpy(wire + need, f->body, f->body_len);
        wire[total - 1] = '\0';
    }
    *len = total;
    return wire;
}

static void check_header_sizes(const struct stomp_frame *f, enum stomp_version v)
{
    for (size_t i = 0; i < f->header_count; i++) {
        const struct stomp_header *h = &f->headers[i];
        size_t need = stomp_encode_header(NULL, 0, v, f->command, h->name, h->name_len, h->value,
                                          h->value_len);
        CHECK(need == stomp_escaped_len(v, f->command, h->name, h->name_len) +
                          stomp_escaped_len(v, f->command, h->value, h->value_len) + 2);
    }
}

/* The version-negotiation ERROR for any mask is a well-formed 1.2 ERROR naming the versions. */
static void check_version_error(unsigned mask)
{
    size_t need = stomp_encode_version_error(NULL, 0, mask);
    char *wire = malloc(need);
    CHECK(wire != NULL);
    CHECK(stomp_encode_version_error(wire, need, mask) == need);
    struct stomp_parser *p = stomp_parser_new(NULL);
    CHECK(p != NULL);
    stomp_parser_set_version(p, STOMP_V1_2);
    struct stomp_frame f;
    enum stomp_event ev;
    CHECK(stomp_parser_feed(p, wire, need, &f, &ev) == (ssize_t)need && ev == STOMP_EVENT_FRAME);
    CHECK(f.command == STOMP_CMD_ERROR);
    char list[16];
    size_t list_len = stomp_versions_list(list, sizeof(list), mask);
    const struct stomp_header *version = stomp_frame_header(&f, "version");
    CHECK(version != NULL && version->value_len == list_len &&
          memcmp(version->value, list, list_len) == 0);
    CHECK(stomp_frame_header(&f, "message") != NULL);
    stomp_parser_free(p);
    free(wire);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    int version = versions[data[0] & 3];
    bool head_only = (data[0] & 4) != 0;
    enum stomp_version v = version ? (enum stomp_version)version : STOMP_V1_2;
    struct built b;
    build(&b, data + 1, size - 1);
    const struct stomp_frame *f = &b.frame;
    check_header_sizes(f, v);

    size_t len;
    char *wire = encode(f, v, head_only, &len);
    struct stomp_limits roomy = {
        .max_headers = f->header_count + 1,
        .max_header_line = len,
        .max_header_bytes = len,
        .max_body = f->body_len + 1,
    };
    struct stomp_frame back;
    struct stomp_parser *p = expect_reparsed(f, version, wire, len, &roomy, &back);
    if (back.header_count > f->header_count) {
        CHECK(back.header_count == f->header_count + 1 && !has_content_length(f));
        const struct stomp_header *added = &back.headers[f->header_count];
        CHECK(added->name_len == 14 && memcmp(added->name, "content-length", 14) == 0);
        CHECK(added->value_len == strlen(b.length) &&
              memcmp(added->value, b.length, added->value_len) == 0);
    } else {
        CHECK(back.header_count == f->header_count);
        CHECK(!head_only || has_content_length(f));
    }
    stomp_parser_free(p);
    free(wire);
    check_version_error(data[0] >> 3 & 7);
    return 0;
}
