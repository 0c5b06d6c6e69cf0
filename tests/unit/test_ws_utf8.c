/*
 * test_ws_utf8.c - ws/utf8: whole-buffer and incremental validation.
 *
 * Table cases name the index of the first byte that can no longer be valid (fail fast), checked
 * byte by byte and at every split; exhaustive sweeps compare against a reference decoder written
 * the slow, obvious way.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/guard.h"
#include "ws/utf8.h"

/* Obvious decoder: compute each code point, then check its range. */
static bool ref_valid(const uint8_t *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t b = p[i];
        size_t len;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if (b >= 0xC0 && b <= 0xDF) {
            len = 2, cp = b & 0x1F, min = 0x80;
        } else if (b >= 0xE0 && b <= 0xEF) {
            len = 3, cp = b & 0x0F, min = 0x800;
        } else if (b >= 0xF0 && b <= 0xF7) {
            len = 4, cp = b & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i + k] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += len;
    }
    return true;
}

/* Whole-buffer check with the input flush against an unreadable page. */
static bool guarded_valid(const void *p, size_t n)
{
    struct guard g;
    uint8_t *in = guard_copy(&g, p, n);
    bool ok = ws_utf8_valid(in, n);
    guard_release(&g);
    return ok;
}

struct utf8_case {
    const char *name;
    const char *bytes;
    size_t len;
    long bad_at; /* first byte where feed() fails; -1 if none; -2 if valid but truncated */
};

#define C(name, s, bad)                                                                            \
    {                                                                                              \
        name, s, sizeof(s) - 1, bad                                                                \
    }

static const struct utf8_case cases[] = {
    C("empty", "", -1),
    C("ascii", "Hello, STOMP!", -1),
    C("nul and del", "a\0b\x7f", -1),
    C("U+0080", "\xC2\x80", -1),
    C("U+07FF", "\xDF\xBF", -1),
    C("U+0800", "\xE0\xA0\x80", -1),
    C("U+D7FF", "\xED\x9F\xBF", -1),
    C("U+E000", "\xEE\x80\x80", -1),
    C("U+FFFF", "\xEF\xBF\xBF", -1),
    C("U+10000", "\xF0\x90\x80\x80", -1),
    C("U+10FFFF", "\xF4\x8F\xBF\xBF", -1),
    C("kosme", "\xCE\xBA\xE1\xBD\xB9\xCF\x83\xCE\xBC\xCE\xB5", -1),
    C("mixed", "a\xC3\xA9z\xE2\x82\xAC!\xF0\x9F\x98\x80.", -1),
    C("overlong 2 C0 80", "\xC0\x80", 0),
    C("overlong 2 C1 BF", "\xC1\xBF", 0),
    C("overlong 3 E0 80 80", "\xE0\x80\x80", 1),
    C("overlong 3 E0 9F BF", "\xE0\x9F\xBF", 1),
    C("overlong 4 F0 80 80 80", "\xF0\x80\x80\x80", 1),
    C("overlong 4 F0 8F BF BF", "\xF0\x8F\xBF\xBF", 1),
    C("surrogate D800", "\xED\xA0\x80", 1),
    C("surrogate DFFF", "\xED\xBF\xBF", 1),
    C("surrogate pair", "\xED\xA0\x80\xED\xB0\x80", 1),
    C("U+110000", "\xF4\x90\x80\x80", 1),
    C("F5", "\xF5\x80\x80\x80", 0),
    C("F8", "\xF8\x88\x80\x80\x80", 0),
    C("FE", "a\xFE", 1),
    C("FF", "ab\xFF", 2),
    C("lone continuation", "\x80", 0),
    C("lone BF after ascii", "abc\xBF", 3),
    C("two-byte then ascii",
      "\xC2"
      "a",
      1),
    C("three-byte cut by ascii",
      "\xE2\x82"
      "a",
      2),
    C("four-byte cut by ascii",
      "\xF0\x9F\x98"
      "a",
      3),
    C("extra continuation", "\xC2\x80\x80", 2),
    C("truncated 2", "\xC2", -2),
    C("truncated 3", "a\xE2\x82", -2),
    C("truncated 4", "\xF0\x9F\x98", -2),
};

static const size_t n_cases = sizeof(cases) / sizeof(cases[0]);

START_TEST(test_table_whole)
{
    const struct utf8_case *c = &cases[_i];
    bool expect = c->bad_at == -1;
    ck_assert_msg(guarded_valid(c->bytes, c->len) == expect, "%s", c->name);
    ck_assert_msg(ref_valid((const uint8_t *)c->bytes, c->len) == expect, "ref %s", c->name);
}
END_TEST

/* Fed one byte at a time, the error comes exactly at bad_at and stays. */
START_TEST(test_table_fail_fast)
{
    const struct utf8_case *c = &cases[_i];
    struct ws_utf8 v;
    ws_utf8_init(&v);
    for (size_t i = 0; i < c->len; i++) {
        struct guard g;
        uint8_t *in = guard_copy(&g, c->bytes + i, 1);
        int rc = ws_utf8_feed(&v, in, 1);
        guard_release(&g);
        if (c->bad_at >= 0 && i >= (size_t)c->bad_at)
            ck_assert_msg(rc == WS_UTF8_INVALID, "%s byte %zu", c->name, i);
        else
            ck_assert_msg(rc == 0, "%s byte %zu", c->name, i);
    }
    ck_assert_msg(ws_utf8_complete(&v) == (c->bad_at == -1), "%s", c->name);
    /* rejected is sticky, even for ASCII afterwards */
    if (c->bad_at >= 0)
        ck_assert_int_eq(ws_utf8_feed(&v, (const uint8_t *)"a", 1), WS_UTF8_INVALID);
}
END_TEST

/* Two feeds split at every point give the same answer as one. */
START_TEST(test_table_every_split)
{
    const struct utf8_case *c = &cases[_i];
    for (size_t cut = 0; cut <= c->len; cut++) {
        struct guard g1, g2;
        uint8_t *a = guard_copy(&g1, c->bytes, cut);
        uint8_t *b = guard_copy(&g2, c->bytes + cut, c->len - cut);
        struct ws_utf8 v;
        ws_utf8_init(&v);
        int r1 = ws_utf8_feed(&v, a, cut);
        int r2 = ws_utf8_feed(&v, b, c->len - cut);
        guard_release(&g1);
        guard_release(&g2);
        bool early = c->bad_at >= 0 && (size_t)c->bad_at < cut;
        ck_assert_msg(r1 == (early ? WS_UTF8_INVALID : 0), "%s cut %zu", c->name, cut);
        ck_assert_msg(r2 == (c->bad_at >= 0 ? WS_UTF8_INVALID : 0), "%s cut %zu", c->name, cut);
        ck_assert_msg(ws_utf8_complete(&v) == (c->bad_at == -1), "%s cut %zu", c->name, cut);
    }
}
END_TEST

static size_t encode_cp(uint32_t cp, uint8_t out[4])
{
    if (cp < 0x80) {
        out[0] = (uint8_t)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (uint8_t)(0xC0 | (cp >> 6));
        out[1] = (uint8_t)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (uint8_t)(0xE0 | (cp >> 12));
        out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (uint8_t)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (uint8_t)(0xF0 | (cp >> 18));
    out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (uint8_t)(0x80 | (cp & 0x3F));
    return 4;
}

/* Every code point encodes to a sequence we accept, except the surrogates. */
START_TEST(test_every_code_point)
{
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        uint8_t buf[4];
        size_t n = encode_cp(cp, buf);
        bool expect = cp < 0xD800 || cp > 0xDFFF;
        ck_assert_msg(ws_utf8_valid(buf, n) == expect, "U+%04X", (unsigned)cp);
    }
}
END_TEST

/* All 1-, 2- and 3-byte strings agree with the reference decoder. */
START_TEST(test_exhaustive_short)
{
    uint8_t b[3];
    for (unsigned x = 0; x < 256; x++) {
        b[0] = (uint8_t)x;
        ck_assert(ws_utf8_valid(b, 1) == ref_valid(b, 1));
        for (unsigned y = 0; y < 256; y++) {
            b[1] = (uint8_t)y;
            ck_assert_msg(ws_utf8_valid(b, 2) == ref_valid(b, 2), "%02X %02X", x, y);
            for (unsigned z = 0; z < 256; z++) {
                b[2] = (uint8_t)z;
                if (ws_utf8_valid(b, 3) != ref_valid(b, 3))
                    ck_abort_msg("%02X %02X %02X", x, y, z);
            }
        }
    }
}
END_TEST

/* 4-byte strings with a lead from E0..FF and the rest around the continuation range. */
START_TEST(test_exhaustive_four)
{
    static const uint8_t tails[] = {0x00, 0x41, 0x7F, 0x80, 0x8F, 0x90, 0x9F,
                                    0xA0, 0xBF, 0xC0, 0xC2, 0xE0, 0xF0, 0xFF};
    const size_t nt = sizeof(tails);
    uint8_t b[4];
    for (unsigned lead = 0xE0; lead <= 0xFF; lead++)
        for (size_t i = 0; i < nt; i++)
            for (size_t j = 0; j < nt; j++)
                for (size_t k = 0; k < nt; k++) {
                    b[0] = (uint8_t)lead, b[1] = tails[i], b[2] = tails[j], b[3] = tails[k];
                    ck_assert_msg(ws_utf8_valid(b, 4) == ref_valid(b, 4), "%02X %02X %02X %02X",
                                  b[0], b[1], b[2], b[3]);
                }
}
END_TEST

/*
 * The word-at-a-time ASCII path: a non-ASCII character (valid or not) at every offset of a long
 * ASCII buffer, with every buffer length around the word sizes.
 */
START_TEST(test_ascii_fast_path_boundaries)
{
    enum { MAX = 80 };
    uint8_t buf[MAX + 4];
    for (size_t len = 1; len <= MAX; len++) {
        memset(buf, 'x', sizeof(buf));
        ck_assert(guarded_valid(buf, len));
        for (size_t at = 0; at < len; at++) {
            memset(buf, 'x', sizeof(buf));
            buf[at] = 0xFF;
            ck_assert_msg(!guarded_valid(buf, len), "FF at %zu of %zu", at, len);
            buf[at] = 0x80;
            ck_assert_msg(!guarded_valid(buf, len), "80 at %zu of %zu", at, len);
            buf[at] = 0xC3;
            buf[at + 1] = 0xA9; /* may fall outside len: then truncated */
            ck_assert_msg(guarded_valid(buf, len) == (at + 1 < len), "C3 A9 at %zu of %zu", at,
                          len);
        }
    }
}
END_TEST

/* Large valid text, then one corrupted byte at assorted offsets, fed in uneven chunks. */
START_TEST(test_large_incremental)
{
    enum { N = 70000 };
    uint8_t *text = malloc(N);
    ck_assert_ptr_nonnull(text);
    size_t n = 0;
    for (uint32_t cp = 0x20; n + 4 <= N; cp = cp * 7 % 0x10FFFF + 1) {
        if (cp >= 0xD800 && cp <= 0xDFFF)
            continue;
        n += encode_cp(cp % 3 == 0 ? cp % 128 : cp, text + n);
    }
    ck_assert(ref_valid(text, n));
    ck_assert(ws_utf8_valid(text, n));
    static const size_t chunks[] = {1, 3, 7, 64, 333, 4096};
    for (size_t c = 0; c < sizeof(chunks) / sizeof(chunks[0]); c++) {
        struct ws_utf8 v;
        ws_utf8_init(&v);
        for (size_t off = 0; off < n; off += chunks[c]) {
            size_t take = n - off < chunks[c] ? n - off : chunks[c];
            ck_assert_int_eq(ws_utf8_feed(&v, text + off, take), 0);
        }
        ck_assert(ws_utf8_complete(&v));
    }
    for (size_t at = 0; at < n; at += 997) {
        uint8_t saved = text[at];
        text[at] = 0xFF;
        ck_assert_msg(!ws_utf8_valid(text, n), "FF at %zu", at);
        text[at] = saved;
    }
    free(text);
}
END_TEST

START_TEST(test_init_resets)
{
    struct ws_utf8 v;
    ws_utf8_init(&v);
    ck_assert(ws_utf8_complete(&v));
    ck_assert_int_eq(ws_utf8_feed(&v, (const uint8_t *)"\xE2", 1), 0);
    ck_assert(!ws_utf8_complete(&v));
    ws_utf8_init(&v);
    ck_assert(ws_utf8_complete(&v));
    ck_assert_int_eq(ws_utf8_feed(&v, (const uint8_t *)"\xFF", 1), WS_UTF8_INVALID);
    ck_assert(!ws_utf8_complete(&v));
    ws_utf8_init(&v);
    ck_assert_int_eq(ws_utf8_feed(&v, (const uint8_t *)"ok", 2), 0);
    ck_assert(ws_utf8_complete(&v));
    ck_assert_int_eq(ws_utf8_feed(&v, NULL, 0), 0);
}
END_TEST

static Suite *utf8_suite(void)
{
    Suite *s = suite_create("ws_utf8");
    TCase *tc = tcase_create("utf8");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_table_whole, 0, (int)n_cases);
    tcase_add_loop_test(tc, test_table_fail_fast, 0, (int)n_cases);
    tcase_add_loop_test(tc, test_table_every_split, 0, (int)n_cases);
    tcase_add_test(tc, test_every_code_point);
    tcase_add_test(tc, test_exhaustive_short);
    tcase_add_test(tc, test_exhaustive_four);
    tcase_add_test(tc, test_ascii_fast_path_boundaries);
    tcase_add_test(tc, test_large_incremental);
    tcase_add_test(tc, test_init_resets);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(utf8_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
