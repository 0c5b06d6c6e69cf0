#include "cluster/envelope.h"

#include <string.h>

/* Defaults equal to the broker's [limits] defaults (broker/config.c). */
void envelope_limits_default(struct envelope_limits *lim)
{
    lim->max_destination = 8192;
    lim->max_headers = 64;
    lim->max_header_bytes = 65536;
    lim->max_body = 1024 * 1024;
}

bool envelope_has_magic(const void *buf, size_t len)
{
    return len >= ENVELOPE_MAGIC_LEN && memcmp(buf, ENVELOPE_MAGIC, ENVELOPE_MAGIC_LEN) == 0;
}

/* ---- encoder --------------------------------------------------------------------------------- */

/* a += b, false on overflow. */
static bool add_size(size_t *a, size_t b)
{
    if (*a > SIZE_MAX - b)
        return false;
    *a += b;
    return true;
}

size_t envelope_size(const struct envelope *env)
{
    if (env->origin_len == 0 || env->origin_len > ENVELOPE_ORIGIN_MAX ||
        env->destination_len > UINT32_MAX || env->header_count > UINT32_MAX ||
        env->body_len > UINT32_MAX)
        return 0;
    size_t total = ENVELOPE_FIXED_LEN + env->origin_len;
    if (!add_size(&total, env->destination_len) || !add_size(&total, env->body_len))
        return 0;
    for (size_t i = 0; i < env->header_count; i++) {
        const struct stomp_header *h = &env->headers[i];
        if (h->name_len > UINT32_MAX || h->value_len > UINT32_MAX || !add_size(&total, 8) ||
            !add_size(&total, h->name_len) || !add_size(&total, h->value_len))
            return 0;
    }
    return total;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
    return p + 4;
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    p = put_u32(p, (uint32_t)(v >> 32));
    return put_u32(p, (uint32_t)v);
}

/* A u32 length followed by the bytes. */
static uint8_t *put_field(uint8_t *p, const char *s, size_t len)
{
    p = put_u32(p, (uint32_t)len);
    if (len > 0)
        memcpy(p, s, len);
    return p + len;
}

size_t envelope_encode(const struct envelope *env, void *out, size_t cap)
{
    size_t need = envelope_size(env);
    if (need == 0 || need > cap)
        return 0;
    uint8_t *p = out;
    memcpy(p, ENVELOPE_MAGIC, ENVELOPE_MAGIC_LEN);
    p += ENVELOPE_MAGIC_LEN;
    *p++ = ENVELOPE_VERSION;
    *p++ = 0; /* flags */
    *p++ = (uint8_t)env->origin_len;
    memcpy(p, env->origin, env->origin_len);
    p += env->origin_len;
    p = put_u64(p, env->seq);
    p = put_field(p, env->destination, env->destination_len);
    p = put_u32(p, (uint32_t)env->header_count);
    for (size_t i = 0; i < env->header_count; i++) {
        p = put_field(p, env->headers[i].name, env->headers[i].name_len);
        p = put_field(p, env->headers[i].value, env->headers[i].value_len);
    }
    p = put_field(p, env->body, env->body_len);
    return (size_t)(p - (uint8_t *)out);
}

/* ---- decoder --------------------------------------------------------------------------------- */

/* What is left of the input. Every read checks `left` first; `p` never moves past the end. */
struct cursor {
    const uint8_t *p;
    size_t left;
};

static int take_u8(struct cursor *c, uint8_t *v)
{
    if (c->left < 1)
        return ENVELOPE_ERR_TRUNCATED;
    *v = c->p[0];
    c->p++;
    c->left--;
    return 0;
}

static int take_u32(struct cursor *c, uint32_t *v)
{
    if (c->left < 4)
        return ENVELOPE_ERR_TRUNCATED;
    *v = (uint32_t)c->p[0] << 24 | (uint32_t)c->p[1] << 16 | (uint32_t)c->p[2] << 8 |
         (uint32_t)c->p[3];
    c->p += 4;
    c->left -= 4;
    return 0;
}

static int take_u64(struct cursor *c, uint64_t *v)
{
    uint32_t hi, lo;
    int rc = take_u32(c, &hi);
    if (rc == 0)
        rc = take_u32(c, &lo);
    if (rc == 0)
        *v = (uint64_t)hi << 32 | lo;
    return rc;
}

/* len bytes as a view; the limit is checked before the length is trusted. */
static int take_bytes(struct cursor *c, size_t len, size_t limit, const char **out)
{
    if (len > limit)
        return ENVELOPE_ERR_TOO_LARGE;
    if (len > c->left)
        return ENVELOPE_ERR_TRUNCATED;
    *out = (const char *)c->p;
    c->p += len;
    c->left -= len;
    return 0;
}

/* A u32 length, then that many bytes (at most limit). */
static int take_field(struct cursor *c, size_t limit, const char **out, size_t *len)
{
    uint32_t n;
    int rc = take_u32(c, &n);
    if (rc == 0)
        rc = take_bytes(c, n, limit, out);
    if (rc == 0)
        *len = n;
    return rc;
}

/* Names, destinations and values end up in STOMP header lines: no NUL octet there. */
static bool has_nul(const char *s, size_t len)
{
    return len > 0 && memchr(s, '\0', len) != NULL;
}

static int decode_head(struct cursor *c, const struct envelope_limits *lim, struct envelope *env)
{
    if (c->left < ENVELOPE_MAGIC_LEN) /* a prefix of the magic is a truncation, not a mismatch */
        return memcmp(c->p, ENVELOPE_MAGIC, c->left) == 0 ? ENVELOPE_ERR_TRUNCATED
                                                          : ENVELOPE_ERR_BAD_MAGIC;
    if (!envelope_has_magic(c->p, c->left))
        return ENVELOPE_ERR_BAD_MAGIC;
    c->p += ENVELOPE_MAGIC_LEN;
    c->left -= ENVELOPE_MAGIC_LEN;
    uint8_t version, flags, origin_len;
    int rc = take_u8(c, &version);
    if (rc != 0)
        return rc;
    if (version != ENVELOPE_VERSION)
        return ENVELOPE_ERR_BAD_VERSION;
    if ((rc = take_u8(c, &flags)) != 0)
        return rc;
    if (flags != 0)
        return ENVELOPE_ERR_BAD_FLAGS;
    if ((rc = take_u8(c, &origin_len)) != 0 ||
        (rc = take_bytes(c, origin_len, ENVELOPE_ORIGIN_MAX, &env->origin)) != 0)
        return rc;
    env->origin_len = origin_len;
    if (origin_len == 0 || has_nul(env->origin, env->origin_len))
        return ENVELOPE_ERR_BAD_FIELD;
    if ((rc = take_u64(c, &env->seq)) != 0 ||
        (rc = take_field(c, lim->max_destination, &env->destination, &env->destination_len)) != 0)
        return rc;
    if (env->destination_len == 0 || has_nul(env->destination, env->destination_len))
        return ENVELOPE_ERR_BAD_FIELD;
    return 0;
}

static int decode_headers(struct cursor *c, const struct envelope_limits *lim,
                          struct stomp_header *headers, size_t header_cap, struct envelope *env)
{
    uint32_t count;
    int rc = take_u32(c, &count);
    if (rc != 0)
        return rc;
    if (count > lim->max_headers || count > header_cap)
        return ENVELOPE_ERR_TOO_MANY_HEADERS;
    size_t budget = lim->max_header_bytes; /* shrinks with each name and value */
    for (uint32_t i = 0; i < count; i++) {
        struct stomp_header *h = &headers[i];
        if ((rc = take_field(c, budget, &h->name, &h->name_len)) != 0)
            return rc;
        budget -= h->name_len;
        if ((rc = take_field(c, budget, &h->value, &h->value_len)) != 0)
            return rc;
        budget -= h->value_len;
        if (h->name_len == 0 || has_nul(h->name, h->name_len) || has_nul(h->value, h->value_len))
            return ENVELOPE_ERR_BAD_FIELD;
    }
    env->headers = headers;
    env->header_count = count;
    return 0;
}

int envelope_decode(const void *buf, size_t len, const struct envelope_limits *lim,
                    struct stomp_header *headers, size_t header_cap, struct envelope *env)
{
    struct cursor c = {.p = buf, .left = len};
    int rc = decode_head(&c, lim, env);
    if (rc == 0)
        rc = decode_headers(&c, lim, headers, header_cap, env);
    if (rc == 0)
        rc = take_field(&c, lim->max_body, &env->body, &env->body_len);
    if (rc == 0 && c.left != 0)
        rc = ENVELOPE_ERR_TRAILING;
    return rc;
}

const char *envelope_strerror(int err)
{
    switch (err) {
    case 0:
        return "ok";
    case ENVELOPE_ERR_TRUNCATED:
        return "truncated envelope";
    case ENVELOPE_ERR_BAD_MAGIC:
        return "not an envelope (bad magic)";
    case ENVELOPE_ERR_BAD_VERSION:
        return "unsupported envelope version";
    case ENVELOPE_ERR_BAD_FLAGS:
        return "reserved envelope flags set";
    case ENVELOPE_ERR_BAD_FIELD:
        return "empty or NUL-bearing origin, destination or header name";
    case ENVELOPE_ERR_TOO_LARGE:
        return "envelope field over its size limit";
    case ENVELOPE_ERR_TOO_MANY_HEADERS:
        return "too many headers in envelope";
    case ENVELOPE_ERR_TRAILING:
        return "trailing bytes after envelope body";
    default:
        return "unknown envelope error";
    }
}
