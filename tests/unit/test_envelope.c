/*
 * test_envelope.c - Check suites for cluster/envelope (the node-to-node format) and the two pure
 * helpers of cluster/bridge (Redis URL parsing, STOMP pattern -> Redis glob).
 *
 * Every input handed to the decoder sits flush against a PROT_NONE page (guard.h), so reading
 * one byte past what it was given faults. The decoder is fed every truncation of a valid
 * envelope, every single-byte corruption and a few thousand random mutations.
 */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/bridge.h"
#include "broker/base/config.h"
#include "cluster/common.h"
#include "cluster/envelope.h"
#include "guard.h"

/* A string literal with its exact length (embedded NULs included). */
#define WIRE(s) s, sizeof(s) - 1

/* ---- helpers --------------------------------------------------------------------------------- */

#define MAX_TEST_HEADERS 16

static struct envelope_limits limits;
static struct stomp_header decoded[MAX_TEST_HEADERS];

static void setup(void)
{
    envelope_limits_default(&limits);
    memset(decoded, 0, sizeof(decoded));
}

static const struct stomp_header sample_headers[] = {
    {.name = "content-type", .name_len = 12, .value = "text/plain", .value_len = 10},
    {.name = "x-trace", .name_len = 7, .value = "a:b\nc\\d", .value_len = 7},
    {.name = "empty", .name_len = 5, .value = "", .value_len = 0},
};

static struct envelope sample(void)
{
    struct envelope env = {
        .origin = "node-A",
        .origin_len = 6,
        .seq = 0x0102030405060708ull,
        .destination = "/topic/prices",
        .destination_len = 13,
        .headers = sample_headers,
        .header_count = 3,
        .body = "IBM\0"
                "142.10\xff", /* split: "\0142" would be one octal escape */
        .body_len = 11,
    };
    return env;
}

/* Encodes env into a fresh malloc'd buffer; *len gets its size. */
static uint8_t *encode(const struct envelope *env, size_t *len)
{
    *len = envelope_size(env);
    ck_assert_uint_gt(*len, 0);
    uint8_t *buf = malloc(*len);
    ck_assert_ptr_nonnull(buf);
    ck_assert_uint_eq(envelope_encode(env, buf, *len), *len);
    return buf;
}

/* Decodes len bytes placed flush against a guard page; the views point into the guarded copy,
 * so the caller compares before releasing it. */
static int decode_guarded(struct guard *g, const void *bytes, size_t len, struct envelope *out)
{
    const uint8_t *at = guard_copy(g, bytes, len);
    return envelope_decode(at, len, &limits, decoded, MAX_TEST_HEADERS, out);
}

static int decode_once(const void *bytes, size_t len)
{
    struct guard g = {0};
    struct envelope env;
    int rc = decode_guarded(&g, bytes, len, &env);
    guard_release(&g);
    return rc;
}

static void assert_same(const struct envelope *a, const struct envelope *b)
{
    ck_assert_uint_eq(a->origin_len, b->origin_len);
    ck_assert_mem_eq(a->origin, b->origin, a->origin_len);
    ck_assert_uint_eq(a->seq, b->seq);
    ck_assert_uint_eq(a->destination_len, b->destination_len);
    ck_assert_mem_eq(a->destination, b->destination, a->destination_len);
    ck_assert_uint_eq(a->header_count, b->header_count);
    for (size_t i = 0; i < a->header_count; i++) {
        ck_assert_uint_eq(a->headers[i].name_len, b->headers[i].name_len);
        ck_assert_mem_eq(a->headers[i].name, b->headers[i].name, a->headers[i].name_len);
        ck_assert_uint_eq(a->headers[i].value_len, b->headers[i].value_len);
        if (a->headers[i].value_len > 0)
            ck_assert_mem_eq(a->headers[i].value, b->headers[i].value, a->headers[i].value_len);
    }
    ck_assert_uint_eq(a->body_len, b->body_len);
    if (a->body_len > 0)
        ck_assert_mem_eq(a->body, b->body, a->body_len);
}

/* Writes a u32 big-endian at p. */
static void poke_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Offsets of the fields of sample() once encoded. */
enum {
    OFF_VERSION = 4,
    OFF_FLAGS = 5,
    OFF_ORIGIN_LEN = 6,
    OFF_ORIGIN = 7,
    OFF_SEQ = OFF_ORIGIN + 6,
    OFF_DEST_LEN = OFF_SEQ + 8,
    OFF_DEST = OFF_DEST_LEN + 4,
    OFF_HEADER_COUNT = OFF_DEST + 13,
    OFF_FIRST_NAME_LEN = OFF_HEADER_COUNT + 4,
};

/* ---- envelope: format ------------------------------------------------------------------------ */

/* The exact bytes of a small envelope: the table in docs/CLUSTER.md shows the same one. */
START_TEST(test_golden_bytes)
{
    const struct stomp_header h = {.name = "k", .name_len = 1, .value = "v", .value_len = 1};
    struct envelope env = {.origin = "nA",
                           .origin_len = 2,
                           .seq = 7,
                           .destination = "/topic/t",
                           .destination_len = 8,
                           .headers = &h,
                           .header_count = 1,
                           .body = "hi",
                           .body_len = 2};
    static const char golden[] = "\0SWS"                              /* magic */
                                 "\x01"                               /* version */
                                 "\x00"                               /* flags */
                                 "\x02"                               /* origin_len */
                                 "nA"                                 /* origin */
                                 "\x00\x00\x00\x00\x00\x00\x00\x07"   /* seq */
                                 "\x00\x00\x00\x08/topic/t"           /* destination */
                                 "\x00\x00\x00\x01"                   /* header count */
                                 "\x00\x00\x00\x01k\x00\x00\x00\x01v" /* k:v */
                                 "\x00\x00\x00\x02hi";                /* body */
    size_t len;
    uint8_t *buf = encode(&env, &len);
    ck_assert_uint_eq(len, sizeof(golden) - 1);
    ck_assert_mem_eq(buf, golden, len);
    free(buf);
    ck_assert_uint_eq(envelope_size(&env), ENVELOPE_FIXED_LEN + 2 + 8 + (4 + 1 + 4 + 1) + 2);
}
END_TEST

START_TEST(test_round_trip)
{
    struct envelope env = sample();
    size_t len;
    uint8_t *buf = encode(&env, &len);
    struct guard g = {0};
    struct envelope out;
    ck_assert_int_eq(decode_guarded(&g, buf, len, &out), 0);
    assert_same(&env, &out);
    ck_assert_ptr_eq(out.headers, decoded);
    guard_release(&g);
    free(buf);
}
END_TEST

/* Shapes that share the round trip: no headers, empty body, origin of 255 bytes, seq extremes. */
START_TEST(test_round_trip_shapes)
{
    char origin[255];
    memset(origin, 'o', sizeof(origin));
    const struct {
        const char *origin;
        size_t origin_len;
        uint64_t seq;
        size_t header_count;
        const char *body;
        size_t body_len;
    } cases[] = {
        {"a", 1, 0, 0, "", 0},
        {"a", 1, UINT64_MAX, 0, "x", 1},
        {origin, sizeof(origin), 1, 3, "", 0},
        {"n", 1, 42, 1, WIRE("\0\0\0")},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct envelope env = sample();
        env.origin = cases[i].origin;
        env.origin_len = cases[i].origin_len;
        env.seq = cases[i].seq;
        env.header_count = cases[i].header_count;
        env.body = cases[i].body;
        env.body_len = cases[i].body_len;
        size_t len;
        uint8_t *buf = encode(&env, &len);
        struct guard g = {0};
        struct envelope out;
        ck_assert_int_eq(decode_guarded(&g, buf, len, &out), 0);
        assert_same(&env, &out);
        guard_release(&g);
        free(buf);
    }
}
END_TEST

/* Every byte binary-safe: a body holding all 256 octet values, twice. */
START_TEST(test_binary_body)
{
    char body[512];
    for (size_t i = 0; i < sizeof(body); i++)
        body[i] = (char)(i & 0xff);
    struct envelope env = sample();
    env.body = body;
    env.body_len = sizeof(body);
    size_t len;
    uint8_t *buf = encode(&env, &len);
    struct guard g = {0};
    struct envelope out;
    ck_assert_int_eq(decode_guarded(&g, buf, len, &out), 0);
    assert_same(&env, &out);
    guard_release(&g);
    free(buf);
}
END_TEST

START_TEST(test_has_magic)
{
    ck_assert(envelope_has_magic(WIRE("\0SWS")));
    ck_assert(envelope_has_magic(WIRE("\0SWS\x01 more")));
    ck_assert(!envelope_has_magic(WIRE("\0SW")));
    ck_assert(!envelope_has_magic(WIRE("")));
    ck_assert(!envelope_has_magic(WIRE("IBM 142.10")));
    ck_assert(!envelope_has_magic(WIRE("SWS\0")));
    /* Reads no more than the magic: three bytes flush against the guard page. */
    struct guard g = {0};
    ck_assert(!envelope_has_magic(guard_copy(&g, "\0SW", 3), 3));
    guard_release(&g);
}
END_TEST

/* ---- envelope: malformed input --------------------------------------------------------------- */

/* Each prefix of a valid envelope is an error; nothing short of the whole thing decodes. */
START_TEST(test_every_truncation)
{
    struct envelope env = sample();
    size_t len;
    uint8_t *buf = encode(&env, &len);
    for (size_t cut = 0; cut < len; cut++)
        ck_assert_msg(decode_once(buf, cut) == ENVELOPE_ERR_TRUNCATED,
                      "prefix of %zu of %zu bytes: got %d", cut, len, decode_once(buf, cut));
    ck_assert_int_eq(decode_once(buf, len), 0);
    free(buf);
}
END_TEST

START_TEST(test_trailing_bytes)
{
    struct envelope env = sample();
    size_t len;
    uint8_t *buf = encode(&env, &len);
    uint8_t *longer = malloc(len + 1);
    memcpy(longer, buf, len);
    longer[len] = 0;
    ck_assert_int_eq(decode_once(longer, len + 1), ENVELOPE_ERR_TRAILING);
    free(longer);
    free(buf);
}
END_TEST

START_TEST(test_bad_magic_version_flags)
{
    struct envelope env = sample();
    size_t len;
    uint8_t *buf = encode(&env, &len);
    for (size_t i = 0; i < ENVELOPE_MAGIC_LEN; i++) {
        buf[i] ^= 0x20;
        ck_assert_int_eq(decode_once(buf, len), ENVELOPE_ERR_BAD_MAGIC);
        ck_assert_int_eq(decode_once(buf, i + 1), ENVELOPE_ERR_BAD_MAGIC); /* short and wrong */
        buf[i] ^= 0x20;
    }
    const uint8_t versions[] = {0, 2, 0x7f, 0xff};
    for (size_t i = 0; i < sizeof(versions); i++) {
        buf[OFF_VERSION] = versions[i];
        ck_assert_int_eq(decode_once(buf, len), ENVELOPE_ERR_BAD_VERSION);
    }
    buf[OFF_VERSION] = ENVELOPE_VERSION;
    for (unsigned bit = 0; bit < 8; bit++) {
        buf[OFF_FLAGS] = (uint8_t)(1u << bit);
        ck_assert_int_eq(decode_once(buf, len), ENVELOPE_ERR_BAD_FLAGS);
    }
    buf[OFF_FLAGS] = 0;
    ck_assert_int_eq(decode_once(buf, len), 0);
    free(buf);
}
END_TEST

/* Lengths near 2^32 must be compared with what is left, never added to a pointer first. */
START_TEST(test_length_overflow)
{
    limits.max_destination = SIZE_MAX;
    limits.max_header_bytes = SIZE_MAX;
    limits.max_body = SIZE_MAX;
    limits.max_headers = SIZE_MAX;
    struct envelope env = sample();
    size_t len;
    uint8_t *buf = encode(&env, &len);
    const size_t body_len_at = len - env.body_len - 4;
    const struct {
        size_t offset;
        uint32_t value;
        int expect;
    } cases[] = {
        {OFF_DEST_LEN, UINT32_MAX, ENVELOPE_ERR_TRUNCATED},
        {OFF_DEST_LEN, UINT32_MAX - 3, ENVELOPE_ERR_TRUNCATED},
        {OFF_HEADER_COUNT, UINT32_MAX, ENVELOPE_ERR_TOO_MANY_HEADERS}, /* over header_cap */
        {OFF_FIRST_NAME_LEN, UINT32_MAX, ENVELOPE_ERR_TRUNCATED},
        {OFF_FIRST_NAME_LEN, 0x80000000u, ENVELOPE_ERR_TRUNCATED},
        {body_len_at, UINT32_MAX, ENVELOPE_ERR_TRUNCATED},
        {body_len_at, (uint32_t)env.body_len + 1, ENVELOPE_ERR_TRUNCATED},
        {body_len_at, (uint32_t)env.body_len - 1, ENVELOPE_ERR_TRAILING},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t *copy = malloc(len);
        memcpy(copy, buf, len);
        poke_u32(copy + cases[i].offset, cases[i].value);
        ck_assert_msg(decode_once(copy, len) == cases[i].expect, "case %zu: got %d", i,
                      decode_once(copy, len));
        free(copy);
    }
    free(buf);
}
END_TEST

/* Empty or NUL-bearing names cannot become STOMP header lines: refused. */
START_TEST(test_bad_fields)
{
    const struct stomp_header empty_name = {
        .name = "", .name_len = 0, .value = "v", .value_len = 1};
    const struct stomp_header nul_name = {
        .name = "a\0b", .name_len = 3, .value = "v", .value_len = 1};
    const struct stomp_header nul_value = {
        .name = "a", .name_len = 1, .value = "v\0", .value_len = 2};
    const struct {
        const char *origin;
        size_t origin_len;
        const char *dest;
        size_t dest_len;
        const struct stomp_header *header;
    } cases[] = {
        {WIRE("n\0"), WIRE("/topic/t"), NULL},    {WIRE("n"), WIRE(""), NULL},
        {WIRE("n"), WIRE("/topic/\0t"), NULL},    {WIRE("n"), WIRE("/topic/t"), &empty_name},
        {WIRE("n"), WIRE("/topic/t"), &nul_name}, {WIRE("n"), WIRE("/topic/t"), &nul_value},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct envelope env = {.origin = cases[i].origin,
                               .origin_len = cases[i].origin_len,
                               .destination = cases[i].dest,
                               .destination_len = cases[i].dest_len,
                               .headers = cases[i].header,
                               .header_count = cases[i].header != NULL ? 1 : 0,
                               .body = "",
                               .body_len = 0};
        size_t len;
        uint8_t *buf = encode(&env, &len);
        ck_assert_msg(decode_once(buf, len) == ENVELOPE_ERR_BAD_FIELD, "case %zu: got %d", i,
                      decode_once(buf, len));
        free(buf);
    }
    /* An empty origin cannot even be encoded; hand-made, the decoder refuses it. */
    struct envelope env = sample();
    env.origin_len = 0;
    ck_assert_uint_eq(envelope_size(&env), 0);
    static const char no_origin[] = "\0SWS\x01\x00\x00"
                                    "\x00\x00\x00\x00\x00\x00\x00\x01"
                                    "\x00\x00\x00\x08/topic/t"
                                    "\x00\x00\x00\x00"
                                    "\x00\x00\x00\x00";
    ck_assert_int_eq(decode_once(WIRE(no_origin)), ENVELOPE_ERR_BAD_FIELD);
}
END_TEST

/* ---- envelope: limits ------------------------------------------------------------------------ */

/* Each limit: exactly at it decodes, one over is refused. */
START_TEST(test_limits_exact)
{
    char big[300];
    memset(big, 'x', sizeof(big));
    memcpy(big, "/topic/", 7);
    struct stomp_header many[MAX_TEST_HEADERS + 1];
    for (size_t i = 0; i < MAX_TEST_HEADERS + 1; i++)
        many[i] = (struct stomp_header){.name = "h", .name_len = 1, .value = "v", .value_len = 1};

    struct envelope env = sample();
    env.destination = big;
    env.destination_len = 100;
    size_t len;
    uint8_t *buf = encode(&env, &len);
    limits.max_destination = 100;
    ck_assert_int_eq(decode_once(buf, len), 0);
    limits.max_destination = 99;
    ck_assert_int_eq(decode_once(buf, len), ENVELOPE_ERR_TOO_LARGE);
    free(buf);
    setup();

    env = sample();
    env.body = big;
    env.body_len = 300;
    buf = encode(&env, &len);
    limits.max_body = 300;
    ck_assert_int_eq(decode_once(buf, len), 0);
    limits.max_body = 299;
    ck_assert_int_eq(decode_once(buf, len), ENVELOPE_ERR_TOO_LARGE);
    free(buf);
    setup();

    env = sample();
    env.headers = many;
    env.header_count = 4;
    buf = encode(&env, &len);
    limits.max_headers = 4;
    ck_assert_int_eq(decode_once(buf, len), 0);
    limits.max_headers = 3;
    ck_assert_int_eq(decode_once(buf, len), ENVELOPE_ERR_TOO_MANY_HEADERS);
    /* Header bytes: 4 names + 4 values of one byte each. */
    limits.max_headers = 4;
    limits.max_header_bytes = 8;
    ck_assert_int_eq(decode_once(buf, len), 0);
    limits.max_header_bytes = 7;
    ck_assert_int_eq(decode_once(buf, len), ENVELOPE_ERR_TOO_LARGE);
    free(buf);
    setup();

    /* The caller's array bounds the count too, whatever the limit says. */
    env = sample();
    env.headers = many;
    env.header_count = MAX_TEST_HEADERS + 1;
    buf = encode(&env, &len);
    limits.max_headers = 1000;
    ck_assert_int_eq(decode_once(buf, len), ENVELOPE_ERR_TOO_MANY_HEADERS);
    free(buf);
}
END_TEST

/* The broker's default limits: a 1 MiB body passes, one more byte does not. */
START_TEST(test_max_default_sizes)
{
    size_t max = limits.max_body;
    char *body = malloc(max + 1);
    memset(body, 'b', max + 1);
    struct envelope env = sample();
    env.body = body;
    env.body_len = max;
    size_t len;
    uint8_t *buf = encode(&env, &len);
    struct guard g = {0};
    struct envelope out;
    ck_assert_int_eq(decode_guarded(&g, buf, len, &out), 0);
    ck_assert_uint_eq(out.body_len, max);
    guard_release(&g);
    free(buf);
    env.body_len = max + 1;
    buf = encode(&env, &len);
    ck_assert_int_eq(decode_once(buf, len), ENVELOPE_ERR_TOO_LARGE);
    free(buf);
    free(body);
}
END_TEST

START_TEST(test_encode_refuses)
{
    struct envelope env = sample();
    size_t len = envelope_size(&env);
    /* Too small a buffer: nothing written past cap (the guard page would fault). */
    for (size_t cap = 0; cap < len; cap++) {
        struct guard g = {0};
        uint8_t *out = guard_copy(&g, "", 0) - cap;
        ck_assert_uint_eq(envelope_encode(&env, out, cap), 0);
        guard_release(&g);
    }
    char origin[256];
    memset(origin, 'o', sizeof(origin));
    env.origin = origin;
    env.origin_len = 256;
    ck_assert_uint_eq(envelope_size(&env), 0);
    uint8_t buf[1024];
    ck_assert_uint_eq(envelope_encode(&env, buf, sizeof(buf)), 0);
#if SIZE_MAX > UINT32_MAX
    env = sample();
    env.body_len = (size_t)UINT32_MAX + 1; /* not read: the size check comes first */
    ck_assert_uint_eq(envelope_size(&env), 0);
#endif
}
END_TEST

START_TEST(test_strerror)
{
    for (int e = ENVELOPE_ERR_TRAILING; e <= 0; e++) {
        const char *s = envelope_strerror(e);
        ck_assert_ptr_nonnull(s);
        ck_assert_str_ne(s, "unknown envelope error");
    }
    ck_assert_str_eq(envelope_strerror(-100), "unknown envelope error");
}
END_TEST

/* ---- envelope: mutations --------------------------------------------------------------------- */

/* xorshift64*: deterministic, so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

/* Whatever the decoder accepts, every view it returns lies inside the input. */
static void assert_inside(const struct envelope *env, const uint8_t *buf, size_t len)
{
    const char *lo = (const char *)buf, *hi = (const char *)buf + len;
    ck_assert(env->origin >= lo && env->origin + env->origin_len <= hi);
    ck_assert(env->destination >= lo && env->destination + env->destination_len <= hi);
    ck_assert(env->body >= lo && env->body + env->body_len <= hi);
    for (size_t i = 0; i < env->header_count; i++) {
        ck_assert(env->headers[i].name >= lo &&
                  env->headers[i].name + env->headers[i].name_len <= hi);
        ck_assert(env->headers[i].value >= lo &&
                  env->headers[i].value + env->headers[i].value_len <= hi);
    }
}

START_TEST(test_single_byte_corruptions)
{
    struct envelope env = sample();
    size_t len;
    uint8_t *buf = encode(&env, &len);
    const uint8_t values[] = {0x00, 0x01, 0x7f, 0x80, 0xff};
    for (size_t i = 0; i < len; i++) {
        for (size_t v = 0; v < sizeof(values); v++) {
            uint8_t saved = buf[i];
            buf[i] = values[v];
            struct guard g = {0};
            const uint8_t *at = guard_copy(&g, buf, len);
            struct envelope out;
            if (envelope_decode(at, len, &limits, decoded, MAX_TEST_HEADERS, &out) == 0)
                assert_inside(&out, at, len);
            guard_release(&g);
            buf[i] = saved;
        }
    }
    free(buf);
}
END_TEST

START_TEST(test_random_mutations)
{
    struct envelope env = sample();
    size_t len;
    uint8_t *buf = encode(&env, &len);
    uint8_t *work = malloc(len + 16);
    size_t accepted = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n = len;
        memcpy(work, buf, len);
        int edits = 1 + (int)(rng() % 4);
        for (int e = 0; e < edits; e++) {
            switch (rng() % 3) {
            case 0: /* flip a byte */
                work[rng() % n] ^= (uint8_t)(1 + rng() % 255);
                break;
            case 1: /* truncate */
                n = (size_t)(rng() % (n + 1));
                break;
            default: /* grow with junk */
                if (n < len + 16)
                    work[n++] = (uint8_t)rng();
                break;
            }
            if (n == 0)
                break;
        }
        struct guard g = {0};
        const uint8_t *at = guard_copy(&g, work, n);
        struct envelope out;
        int rc = envelope_decode(at, n, &limits, decoded, MAX_TEST_HEADERS, &out);
        ck_assert_int_le(rc, 0);
        ck_assert_int_ge(rc, ENVELOPE_ERR_TRAILING);
        if (rc == 0) {
            assert_inside(&out, at, n);
            accepted++;
        }
        guard_release(&g);
    }
    ck_assert_uint_lt(accepted, 20000); /* the mutations did reach the checks */
    free(work);
    free(buf);
}
END_TEST

/* ---- bridge: Redis URL ----------------------------------------------------------------------- */

START_TEST(test_url_valid)
{
    const struct {
        const char *url;
        const char *host;
        unsigned short port;
        const char *user, *password;
        int db;
    } cases[] = {
        {"redis://127.0.0.1:6379", "127.0.0.1", 6379, "", "", 0},
        {"redis://redis", "redis", 6379, "", "", 0},
        {"redis://redis:7000/3", "redis", 7000, "", "", 3},
        {"redis://:s3cret@10.0.0.5:6380/0", "10.0.0.5", 6380, "", "s3cret", 0},
        {"redis://app:p%40ss%3Aw%2Fd@host:1/15", "host", 1, "app", "p@ss:w/d", 15},
        {"redis://:p@ss@host", "host", 6379, "", "p@ss", 0}, /* the last '@' ends the password */
        {"redis://[::1]:6390", "::1", 6390, "", "", 0},
        {"redis://[::1]", "::1", 6379, "", "", 0},
        {"REDIS://h:65535/", "h", 65535, "", "", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct bridge_config cfg;
        bridge_config_defaults(&cfg);
        strcpy(cfg.redis_password, "stale");
        char err[256] = "";
        ck_assert_msg(bridge_parse_url(cases[i].url, &cfg, err, sizeof(err)) == 0, "%s: %s",
                      cases[i].url, err);
        ck_assert_str_eq(cfg.redis_host, cases[i].host);
        ck_assert_uint_eq(cfg.redis_port, cases[i].port);
        ck_assert_str_eq(cfg.redis_username, cases[i].user);
        ck_assert_str_eq(cfg.redis_password, cases[i].password);
        ck_assert_int_eq(cfg.redis_db, cases[i].db);
        ck_assert_str_eq(cfg.prefix, "stompws"); /* untouched */
    }
}
END_TEST

START_TEST(test_url_invalid)
{
    static const char *const bad[] = {
        "",
        "127.0.0.1:6379",
        "http://h:1",
        "rediss://h:6379",
        "redis://",
        "redis://:6379",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:12x",
        "redis://h:",
        "redis://h:6379/x",
        "redis://h:6379/-1",
        "redis://h:6379/99999999999",
        "redis://h:6379?timeout=1",
        "redis://user@h",  /* a user without a password */
        "redis://:p%zz@h", /* bad %-escape */
        "redis://:p%00@h", /* NUL in the password */
        "redis://[::1",
        "redis://[::1]x",
        "redis://[::1]:",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct bridge_config cfg, before;
        bridge_config_defaults(&cfg);
        before = cfg;
        char err[256] = "";
        ck_assert_msg(bridge_parse_url(bad[i], &cfg, err, sizeof(err)) == -1, "accepted %s",
                      bad[i]);
        ck_assert_msg(strstr(err, "Redis URL") != NULL, "%s: no message", bad[i]);
        ck_assert_msg(memcmp(&cfg, &before, sizeof(cfg)) == 0, "%s: cfg changed on error", bad[i]);
    }
    char err[256];
    struct bridge_config cfg;
    bridge_config_defaults(&cfg);
    bridge_parse_url("rediss://h", &cfg, err, sizeof(err));
    ck_assert_ptr_nonnull(strstr(err, "TLS"));
    /* A refused URL is named without its password: the message goes to logs. */
    ck_assert_int_eq(bridge_parse_url("redis://:s3cret@host:6379/x", &cfg, err, sizeof(err)), -1);
    ck_assert_ptr_null(strstr(err, "s3cret"));
    ck_assert_ptr_nonnull(strstr(err, "redis://:***@host:6379/x"));
}
END_TEST

START_TEST(test_redact_url)
{
    static const struct {
        const char *url, *shown;
    } cases[] = {
        {"redis://:secret@h:1/2", "redis://:***@h:1/2"},
        {"redis://:pw@h", "redis://:**@h"}, /* never longer than the URL (found by fuzz_config) */
        {"redis://:@h", "redis://:@h"},
        {"redis://user:pass@h", "redis://user:***@h"},
        {"redis://user:p@w@h", "redis://user:***@h"}, /* the last '@' ends the password */
        {"redis://h:6379", "redis://h:6379"},
        {"redis://h/a:b@c", "redis://h/a:b@c"}, /* after the authority: not a password */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[128];
        config_redact_url(out, sizeof(out), cases[i].url);
        ck_assert_str_eq(out, cases[i].shown);
    }
}
END_TEST

/* ---- bridge: pattern -> Redis glob ----------------------------------------------------------- */

/* Redis' own glob rules for the subset we emit (* and backslash escapes): the oracle. */
static bool glob_match(const char *g, const char *s)
{
    if (*g == '\0')
        return *s == '\0';
    if (*g == '*') {
        for (;; s++) {
            if (glob_match(g + 1, s))
                return true;
            if (*s == '\0')
                return false;
        }
    }
    if (*g == '\\' && g[1] != '\0')
        g++;
    return *s != '\0' && *g == *s && glob_match(g + 1, s + 1);
}

/* The STOMP rule (as the router applies it): `*` one segment, `#` zero or more. */
static bool stomp_match(const char *p, const char *s)
{
    const char *pdot = strchr(p, '.'), *sdot;
    size_t plen = pdot ? (size_t)(pdot - p) : strlen(p);
    if (plen == 1 && p[0] == '#') {
        if (pdot == NULL)
            return true;
        if (stomp_match(pdot + 1, s))
            return true;
        for (sdot = strchr(s, '.'); sdot != NULL; sdot = strchr(sdot + 1, '.'))
            if (stomp_match(pdot + 1, sdot + 1))
                return true;
        return false;
    }
    sdot = strchr(s, '.');
    size_t slen = sdot ? (size_t)(sdot - s) : strlen(s);
    if (!(plen == 1 && p[0] == '*') && (plen != slen || memcmp(p, s, plen) != 0))
        return false;
    if (pdot == NULL || sdot == NULL)
        return pdot == NULL && sdot == NULL;
    return stomp_match(pdot + 1, sdot + 1);
}

START_TEST(test_glob_translation)
{
    const struct {
        const char *pattern, *glob;
    } cases[] = {
        {"/topic/news.#", "stompws:/topic/news*"},
        {"/topic/#", "stompws:/topic/*"},
        {"/topic/#.b", "stompws:/topic/*b"},
        {"/topic/a.#.b", "stompws:/topic/a.*b"},
        {"/topic/stocks.*.price", "stompws:/topic/stocks.*.price"},
        {"/topic/*.#", "stompws:/topic/*"},
        {"/topic/#.*", "stompws:/topic/*"},
        {"/topic/a*b.?.[x].#", "stompws:/topic/a\\*b.\\?.\\[x\\]*"},
        {"/topic/back\\slash.*", "stompws:/topic/back\\\\slash.*"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len;
        char *g = bridge_pattern_glob("stompws", cases[i].pattern, strlen(cases[i].pattern), &len);
        ck_assert_ptr_nonnull(g);
        ck_assert_str_eq(g, cases[i].glob);
        ck_assert_uint_eq(len, strlen(cases[i].glob));
        free(g);
    }
    size_t len;
    char *g = bridge_pattern_glob("my*app", "/topic/x.*", 10, &len);
    ck_assert_str_eq(g, "my\\*app:/topic/x.*");
    free(g);
}
END_TEST

/* Superset: every name the STOMP pattern matches, the glob matches too (the router then filters
 * what the glob lets through in excess). Checked over a grid of patterns and names. */
START_TEST(test_glob_is_superset)
{
    static const char *const segs[] = {"a", "b", "*", "#", "x*y"};
    static const char *const names[] = {"a",     "b",     "a.b",     "b.a", "a.a.b", "a.b.b", "x*y",
                                        "a.x*y", "x*y.b", "a.b.c.d", "ab",  "a.",    ".b",    "c"};
    char pattern[64], topic_pattern[80], channel[80];
    size_t checked = 0, excess = 0;
    for (size_t n = 1; n <= 3; n++) {
        size_t combos = 1;
        for (size_t k = 0; k < n; k++)
            combos *= 5;
        for (size_t c = 0; c < combos; c++) {
            pattern[0] = '\0';
            for (size_t k = 0, v = c; k < n; k++, v /= 5) {
                if (k > 0)
                    strcat(pattern, ".");
                strcat(pattern, segs[v % 5]);
            }
            snprintf(topic_pattern, sizeof(topic_pattern), "/topic/%s", pattern);
            size_t len;
            char *g = bridge_pattern_glob("p", topic_pattern, strlen(topic_pattern), &len);
            for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
                snprintf(channel, sizeof(channel), "p:/topic/%s", names[i]);
                bool stomp = stomp_match(pattern, names[i]);
                bool redis = glob_match(g, channel);
                ck_assert_msg(!stomp || redis, "%s matches %s but glob %s does not", pattern,
                              names[i], g);
                excess += redis && !stomp;
                checked++;
            }
            free(g);
        }
    }
    ck_assert_uint_gt(checked, 2000);
    ck_assert_uint_gt(excess, 0); /* the superset is real: the router's filter matters */
}
END_TEST

/* ---- runner ---------------------------------------------------------------------------------- */

static Suite *envelope_suite(void)
{
    Suite *s = suite_create("envelope");
    TCase *tc = tcase_create("format");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_golden_bytes);
    tcase_add_test(tc, test_round_trip);
    tcase_add_test(tc, test_round_trip_shapes);
    tcase_add_test(tc, test_binary_body);
    tcase_add_test(tc, test_has_magic);
    suite_add_tcase(s, tc);

    tc = tcase_create("malformed");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_add_test(tc, test_every_truncation);
    tcase_add_test(tc, test_trailing_bytes);
    tcase_add_test(tc, test_bad_magic_version_flags);
    tcase_add_test(tc, test_length_overflow);
    tcase_add_test(tc, test_bad_fields);
    tcase_add_test(tc, test_limits_exact);
    tcase_add_test(tc, test_max_default_sizes);
    tcase_add_test(tc, test_encode_refuses);
    tcase_add_test(tc, test_strerror);
    tcase_add_test(tc, test_single_byte_corruptions);
    tcase_add_test(tc, test_random_mutations);
    tcase_set_timeout(tc, 60);
    suite_add_tcase(s, tc);

    tc = tcase_create("bridge names");
    tcase_add_test(tc, test_url_valid);
    tcase_add_test(tc, test_url_invalid);
    tcase_add_test(tc, test_redact_url);
    tcase_add_test(tc, test_glob_translation);
    tcase_add_test(tc, test_glob_is_superset);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(envelope_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
