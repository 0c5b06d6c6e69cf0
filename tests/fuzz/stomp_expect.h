/*
 * stomp_expect.h - what a header name or value becomes after stomp/encode then stomp/parser, for
 * the round-trip checks of fuzz_stomp_parser.c and fuzz_stomp_encode.c (header-only: each harness
 * is one translation unit). Mirrors the escaping rules documented in stomp/encode.h.
 */
#ifndef STOMPWS_FUZZ_STOMP_EXPECT_H
#define STOMPWS_FUZZ_STOMP_EXPECT_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "stomp/frame.h"
#include "stomp/parser.h"
#include "tests/fuzz/fuzz.h"

/* How the encoder writes header text in this version for this command (mirrors encode.c). */
enum mode { MODE_RAW, MODE_V11, MODE_V12 };

/* version 0: no version set (the encoder is given 1.2, the parser none). */
static inline enum mode mode_for(int version, enum stomp_command command)
{
    if (version == STOMP_V1_0 || command == STOMP_CMD_CONNECT || command == STOMP_CMD_STOMP ||
        command == STOMP_CMD_CONNECTED)
        return MODE_RAW;
    return version == STOMP_V1_1 ? MODE_V11 : MODE_V12;
}

static inline bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * What a parsed name or value becomes after encode + parse: raw mode turns CR/LF into spaces
 * (and ':' in names into '_'), 1.0 then trims values; 1.1 sends CR as is, so a value's trailing
 * CR is read back as part of the EOL. Writes the result into out (capacity len), returns length.
 */
static inline size_t expected_text(const char *s, size_t len, enum mode mode, int version,
                                   bool is_name, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (mode == MODE_RAW && (c == '\r' || c == '\n'))
            c = ' ';
        if (mode == MODE_RAW && is_name && c == ':')
            c = '_';
        out[n++] = c;
    }
    if (is_name)
        return n;
    if (mode == MODE_V11 && n > 0 && out[n - 1] == '\r')
        n--;
    if (version == STOMP_V1_0) {
        size_t start = 0;
        while (start < n && is_space(out[start]))
            start++;
        while (n > start && is_space(out[n - 1]))
            n--;
        memmove(out, out + start, n - start);
        n -= start;
    }
    return n;
}

/* True when b[0..blen) is what a[0..alen) becomes after encode + parse. */
static inline bool same_text(const char *a, size_t alen, enum mode mode, int version, bool is_name,
                             const char *b, size_t blen)
{
    char *want = malloc(alen + 1);
    if (want == NULL)
        abort();
    size_t wlen = expected_text(a, alen, mode, version, is_name, want);
    bool same = wlen == blen && (blen == 0 || memcmp(want, b, blen) == 0);
    free(want);
    return same;
}

/*
 * Parses wire (len bytes: what stomp/encode wrote for f at `version`, 0 for none given) with a
 * fresh parser within roomy, and checks it is exactly one frame with f's command, body and, in
 * order, f's headers as encode + parse turn them. Fills *back; returns the parser, which owns
 * back's bytes, for the caller's further checks (the caller frees it).
 */
static inline struct stomp_parser *expect_reparsed(const struct stomp_frame *f, int version,
                                                   const char *wire, size_t len,
                                                   const struct stomp_limits *roomy,
                                                   struct stomp_frame *back)
{
    struct stomp_parser *p = stomp_parser_new(roomy);
    CHECK(p != NULL);
    if (version)
        stomp_parser_set_version(p, (enum stomp_version)version);
    enum stomp_event ev;
    ssize_t used = stomp_parser_feed(p, wire, len, back, &ev);
    CHECK(used == (ssize_t)len && ev == STOMP_EVENT_FRAME);
    CHECK(back->command == f->command);
    CHECK(back->body_len == f->body_len);
    CHECK(f->body_len == 0 || memcmp(back->body, f->body, f->body_len) == 0);
    CHECK(back->header_count >= f->header_count);
    enum mode mode = mode_for(version, f->command);
    for (size_t i = 0; i < f->header_count; i++) {
        const struct stomp_header *a = &f->headers[i], *b = &back->headers[i];
        CHECK(same_text(a->name, a->name_len, mode, version, true, b->name, b->name_len));
        CHECK(same_text(a->value, a->value_len, mode, version, false, b->value, b->value_len));
    }
    return p;
}

#endif
