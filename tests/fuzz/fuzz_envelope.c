/*
 * fuzz_envelope.c - libFuzzer harness for cluster/envelope (the on-Redis message format).
 *
 * Input layout: byte 0 picks the mode (bit 0), the decoder limits (bit 1: the broker's defaults or
 * small ones, so every limit is reachable) and the caller's header array size (bits 2-3); the
 * rest is the envelope (decode mode) or the description of one (build mode).
 *
 * Decode mode: the bytes are decoded from a heap block of exactly their size (ASan flags any read
 * past it). A decoded envelope must respect the limits and point inside the input; encoding it
 * again must give exactly the input bytes (the format has one encoding per envelope), which
 * decode to the same fields; every prefix is a truncation and one more byte is trailing garbage.
 * Build mode: fields cut from the input (any bytes, NULs and empty fields included) are encoded;
 * the decoder must accept the result exactly when the fields are valid and within the limits,
 * give them back unchanged, and otherwise name a problem the fields really have.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/envelope.h"
#include "tests/fuzz/fuzz.h"

#define MAX_HEADERS 64

static const struct envelope_limits small_limits = {
    .max_destination = 32, .max_headers = 4, .max_header_bytes = 64, .max_body = 64};

static const size_t header_caps[4] = {MAX_HEADERS, 0, 2, 5};

static bool inside(const void *p, size_t n, const uint8_t *buf, size_t len)
{
    const uint8_t *b = p;
    return n == 0 || (b >= buf && n <= len && b <= buf + len - n);
}

static bool has_nul(const char *s, size_t n)
{
    return n > 0 && memchr(s, '\0', n) != NULL;
}

static bool same_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

static void check_same(const struct envelope *a, const struct envelope *b)
{
    CHECK(same_bytes(a->origin, a->origin_len, b->origin, b->origin_len));
    CHECK(a->seq == b->seq);
    CHECK(same_bytes(a->destination, a->destination_len, b->destination, b->destination_len));
    CHECK(a->header_count == b->header_count);
    for (size_t i = 0; i < a->header_count; i++) {
        const struct stomp_header *x = &a->headers[i], *y = &b->headers[i];
        CHECK(same_bytes(x->name, x->name_len, y->name, y->name_len));
        CHECK(same_bytes(x->value, x->value_len, y->value, y->value_len));
    }
    CHECK(same_bytes(a->body, a->body_len, b->body, b->body_len));
}

/* A decoded envelope keeps every promise of envelope.h about its fields. */
static void check_decoded(const struct envelope *env, const uint8_t *buf, size_t len,
                          const struct envelope_limits *lim, size_t cap)
{
    CHECK(env->origin_len >= 1 && env->origin_len <= ENVELOPE_ORIGIN_MAX);
    CHECK(inside(env->origin, env->origin_len, buf, len) && !has_nul(env->origin, env->origin_len));
    CHECK(env->destination_len >= 1 && env->destination_len <= lim->max_destination);
    CHECK(inside(env->destination, env->destination_len, buf, len));
    CHECK(!has_nul(env->destination, env->destination_len));
    CHECK(env->header_count <= lim->max_headers && env->header_count <= cap);
    size_t header_bytes = 0;
    for (size_t i = 0; i < env->header_count; i++) {
        const struct stomp_header *h = &env->headers[i];
        CHECK(h->name_len >= 1 && !has_nul(h->name, h->name_len) &&
              !has_nul(h->value, h->value_len));
        CHECK(inside(h->name, h->name_len, buf, len) && inside(h->value, h->value_len, buf, len));
        header_bytes += h->name_len + h->value_len;
    }
    CHECK(header_bytes <= lim->max_header_bytes);
    CHECK(env->body_len <= lim->max_body && inside(env->body, env->body_len, buf, len));
}

static void check_error(int rc)
{
    CHECK(rc >= ENVELOPE_ERR_TRAILING && rc <= ENVELOPE_ERR_TRUNCATED);
    CHECK(strcmp(envelope_strerror(rc), "unknown envelope error") != 0);
}

/* Prefixes are truncations (all of them for short inputs, a spread for long ones). */
static void check_prefixes(const uint8_t *in, size_t len, const struct envelope_limits *lim,
                           size_t cap)
{
    size_t step = len <= 256 ? 1 : len / 64;
    struct stomp_header headers[MAX_HEADERS];
    struct envelope env;
    for (size_t n = 0; n < len; n += step) {
        uint8_t *prefix = exact_copy(in, n);
        CHECK(envelope_decode(prefix, n, lim, headers, cap, &env) == ENVELOPE_ERR_TRUNCATED);
        free(prefix);
    }
}

static void decode_mode(const uint8_t *in, size_t len, const struct envelope_limits *lim,
                        size_t cap)
{
    uint8_t *buf = exact_copy(in, len);
    struct stomp_header headers[MAX_HEADERS];
    struct envelope env;
    int rc = envelope_decode(buf, len, lim, headers, cap, &env);
    if (rc != 0) {
        check_error(rc);
        free(buf);
        return;
    }
    check_decoded(&env, buf, len, lim, cap);
    CHECK(envelope_has_magic(buf, len));
    CHECK(envelope_size(&env) == len);
    uint8_t *again = malloc(len);
    CHECK(again != NULL);
    CHECK(envelope_encode(&env, again, len - 1) == 0);
    CHECK(envelope_encode(&env, again, len) == len && memcmp(again, buf, len) == 0);
    struct stomp_header headers2[MAX_HEADERS];
    struct envelope env2;
    CHECK(envelope_decode(again, len, lim, headers2, cap, &env2) == 0);
    check_same(&env, &env2);
    free(again);

    uint8_t *longer = malloc(len + 1);
    CHECK(longer != NULL);
    memcpy(longer, buf, len);
    longer[len] = buf[len - 1];
    CHECK(envelope_decode(longer, len + 1, lim, headers2, cap, &env2) == ENVELOPE_ERR_TRAILING);
    free(longer);
    check_prefixes(buf, len, lim, cap);
    free(buf);
}

/* ---- build mode ---------------------------------------------------------------------------- */

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

static const char *take(struct reader *r, size_t n)
{
    const char *s = (const char *)r->p;
    r->p += n;
    r->left -= n;
    return s;
}

/* What the decoder must say of env: 0 when every field is valid and within the limits. */
struct verdict {
    bool bad_field, too_large, too_many;
};

static struct verdict judge(const struct envelope *env, const struct envelope_limits *lim,
                            size_t cap)
{
    struct verdict v = {false, false, false};
    v.bad_field = has_nul(env->origin, env->origin_len) || env->destination_len == 0 ||
                  has_nul(env->destination, env->destination_len);
    v.too_large = env->destination_len > lim->max_destination || env->body_len > lim->max_body;
    v.too_many = env->header_count > lim->max_headers || env->header_count > cap;
    size_t header_bytes = 0;
    for (size_t i = 0; i < env->header_count; i++) {
        const struct stomp_header *h = &env->headers[i];
        v.bad_field |=
            h->name_len == 0 || has_nul(h->name, h->name_len) || has_nul(h->value, h->value_len);
        header_bytes += h->name_len + h->value_len;
    }
    v.too_large |= header_bytes > lim->max_header_bytes;
    return v;
}

static void build_mode(const uint8_t *in, size_t len, const struct envelope_limits *lim, size_t cap)
{
    struct reader r = {in, len};
    struct stomp_header fields[8];
    struct envelope env = {0};
    env.origin_len = take_len(&r, 255);
    env.origin = take(&r, env.origin_len);
    size_t seq_len = take_len(&r, 8);
    for (size_t i = 0; i < seq_len; i++)
        env.seq = env.seq << 8 | (uint8_t)*take(&r, 1);
    env.destination_len = take_len(&r, 64);
    env.destination = take(&r, env.destination_len);
    env.header_count = take_len(&r, 8);
    for (size_t i = 0; i < env.header_count; i++) {
        fields[i].name_len = take_len(&r, 32);
        fields[i].name = take(&r, fields[i].name_len);
        fields[i].value_len = take_len(&r, 32);
        fields[i].value = take(&r, fields[i].value_len);
    }
    env.headers = fields;
    env.body_len = r.left;
    env.body = take(&r, r.left);

    size_t need = envelope_size(&env);
    CHECK((need == 0) == (env.origin_len == 0));
    if (need == 0) {
        CHECK(envelope_encode(&env, NULL, 0) == 0);
        return;
    }
    uint8_t *buf = malloc(need);
    CHECK(buf != NULL);
    CHECK(envelope_encode(&env, buf, need) == need);
    struct stomp_header headers[MAX_HEADERS];
    struct envelope back;
    int rc = envelope_decode(buf, need, lim, headers, cap, &back);
    struct verdict v = judge(&env, lim, cap);
    if (rc == 0) {
        CHECK(!v.bad_field && !v.too_large && !v.too_many);
        check_decoded(&back, buf, need, lim, cap);
        check_same(&env, &back);
    } else {
        check_error(rc);
        CHECK(rc != ENVELOPE_ERR_BAD_FIELD || v.bad_field);
        CHECK(rc != ENVELOPE_ERR_TOO_LARGE || v.too_large);
        CHECK(rc != ENVELOPE_ERR_TOO_MANY_HEADERS || v.too_many);
        CHECK(rc == ENVELOPE_ERR_BAD_FIELD || rc == ENVELOPE_ERR_TOO_LARGE ||
              rc == ENVELOPE_ERR_TOO_MANY_HEADERS);
    }
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct envelope_limits lim;
    if (data[0] & 2)
        lim = small_limits;
    else
        envelope_limits_default(&lim);
    size_t cap = header_caps[(data[0] >> 2) & 3];
    if (data[0] & 1)
        build_mode(data + 1, size - 1, &lim, cap);
    else
        decode_mode(data + 1, size - 1, &lim, cap);
    return 0;
}
