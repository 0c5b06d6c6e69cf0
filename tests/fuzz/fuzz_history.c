/*
 * fuzz_history.c - libFuzzer harness for the history settings and headers (broker/core/history.c,
 * config_parse_history() in broker/base/config.c, destination_matches()).
 *
 * Input layout: byte 0 picks the mode (modulo 3); the rest is split at the first '\n' into A and B.
 *   0: A is a --history spec (NULs cut it, as a C string would be). Checks: 0 or -1; an error
 *      names nothing past the caller's buffer and is never empty; an accepted spec has a /topic/
 *      pattern, a size from 1 to 1,000,000, and "PATTERN=SIZE/<ttl in s>s" parses back the same.
 *   1: A is an x-stream-offset value, B (when there is a '\n') an x-stream-epoch value, each in a
 *      buffer of exactly its length (ASan catches a read past it). Checks: a known answer; an
 *      accepted value printed back in its canonical form parses to the same request.
 *   2: A is a /topic/ pattern, B a /topic/ name: destination_matches() agrees with a plain
 *      backtracking matcher (inputs of at most 12 segments, so the reference stays fast).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/base/config.h"
#include "broker/core/destination.h"
#include "broker/core/history.h"
#include "tests/fuzz/fuzz.h"

static void fuzz_spec(const char *a, size_t a_len)
{
    char spec[1024];
    size_t n = a_len < sizeof(spec) - 1 ? a_len : sizeof(spec) - 1;
    memcpy(spec, a, n);
    spec[n] = '\0';
    char err[64 + 8];
    memset(err, 0x5A, sizeof(err));
    struct config_history out;
    int rc = config_parse_history(spec, &out, err, 64);
    CHECK(rc == 0 || rc == -1);
    for (size_t i = 64; i < sizeof(err); i++)
        CHECK((unsigned char)err[i] == 0x5A);
    if (rc != 0) {
        CHECK(err[0] != '\0' && memchr(err, '\0', 64) != NULL);
        return;
    }
    CHECK(strncmp(out.pattern, "/topic/", 7) == 0 && strlen(out.pattern) > 7);
    CHECK(out.size >= 1 && out.size <= 1000000);
    CHECK(out.ttl_ms % 1000 == 0);
    char again[1200];
    if (out.ttl_ms != 0)
        snprintf(again, sizeof(again), "%s=%zu/%llus", out.pattern, out.size,
                 (unsigned long long)(out.ttl_ms / 1000));
    else
        snprintf(again, sizeof(again), "%s=%zu", out.pattern, out.size);
    struct config_history back;
    CHECK(config_parse_history(again, &back, err, 64) == 0);
    CHECK(strcmp(back.pattern, out.pattern) == 0 && back.size == out.size &&
          back.ttl_ms == out.ttl_ms);
}

/* An exact-length heap copy (NULL for an absent value). */
static char *exact(const char *s, size_t len, bool present)
{
    if (!present)
        return NULL;
    char *copy = malloc(len > 0 ? len : 1);
    CHECK(copy != NULL);
    memcpy(copy, s, len);
    return copy;
}

static void fuzz_headers(const char *a, size_t a_len, const char *b, size_t b_len, bool has_b)
{
    char *offset = exact(a, a_len, true), *epoch = exact(b, b_len, has_b);
    struct history_request req;
    int rc = history_parse_request(offset, a_len, epoch, b_len, &req);
    CHECK(rc == HISTORY_HEADER_OK || rc == HISTORY_HEADER_BAD_OFFSET ||
          rc == HISTORY_HEADER_BAD_EPOCH);
    if (rc == HISTORY_HEADER_OK) {
        CHECK(req.has_epoch == has_b);
        char canon[64], hex[24];
        switch (req.from) {
        case HISTORY_NEXT:
            snprintf(canon, sizeof(canon), "next");
            break;
        case HISTORY_LAST:
            snprintf(canon, sizeof(canon), "last");
            break;
        case HISTORY_FIRST:
            snprintf(canon, sizeof(canon), "first");
            break;
        case HISTORY_OFFSET:
            snprintf(canon, sizeof(canon), "offset=%llu", (unsigned long long)req.value);
            break;
        case HISTORY_TIMESTAMP:
            CHECK(req.value <= UINT64_MAX / 1000);
            snprintf(canon, sizeof(canon), "timestamp=%llu", (unsigned long long)req.value);
            break;
        }
        snprintf(hex, sizeof(hex), "%llx", (unsigned long long)req.epoch);
        struct history_request back;
        CHECK(history_parse_request(canon, strlen(canon), has_b ? hex : NULL,
                                    has_b ? strlen(hex) : 0, &back) == HISTORY_HEADER_OK);
        CHECK(back.from == req.from && back.value == req.value && back.epoch == req.epoch);
    }
    free(offset);
    free(epoch);
}

/* The reference: backtracking over segments, '#' zero or more, '*' exactly one. */
static bool ref_match(const struct destination_segments *p, size_t pi,
                      const struct destination_segments *n, size_t ni)
{
    if (pi == p->count)
        return ni == n->count;
    if (p->len[pi] == 1 && p->ptr[pi][0] == '#') {
        for (size_t j = ni; j <= n->count; j++)
            if (ref_match(p, pi + 1, n, j))
                return true;
        return false;
    }
    if (ni == n->count)
        return false;
    if (!(p->len[pi] == 1 && p->ptr[pi][0] == '*') &&
        (p->len[pi] != n->len[ni] || memcmp(p->ptr[pi], n->ptr[ni], n->len[ni]) != 0))
        return false;
    return ref_match(p, pi + 1, n, ni + 1);
}

static void fuzz_match(const char *a, size_t a_len, const char *b, size_t b_len)
{
    char *pattern = exact(a, a_len, true), *name = exact(b, b_len, true);
    bool got = destination_matches(pattern, a_len, name, b_len);
    struct destination_segments p, n;
    bool topics = destination_kind(pattern, a_len) == DEST_TOPIC &&
                  destination_kind(name, b_len) == DEST_TOPIC;
    if (!topics) {
        CHECK(!got);
    } else if (destination_split(pattern + 7, a_len - 7, &p) == 0 &&
               destination_split(name + 7, b_len - 7, &n) == 0 && p.count <= 12 && n.count <= 12) {
        bool same = a_len == b_len && memcmp(pattern, name, a_len) == 0;
        CHECK(got == (same || ref_match(&p, 0, &n, 0)));
    }
    free(pattern);
    free(name);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    const char *rest = (const char *)data + 1;
    size_t len = size - 1;
    const char *nl = memchr(rest, '\n', len);
    size_t a_len = nl != NULL ? (size_t)(nl - rest) : len;
    const char *b = nl != NULL ? nl + 1 : rest + len;
    size_t b_len = nl != NULL ? len - a_len - 1 : 0;
    switch (data[0] % 3) {
    case 0:
        fuzz_spec(rest, strnlen(rest, len));
        break;
    case 1:
        fuzz_headers(rest, a_len, b, b_len, nl != NULL);
        break;
    default:
        fuzz_match(rest, a_len, b, b_len);
        break;
    }
    return 0;
}
