/*
 * ws/deflate.c - permessage-deflate negotiation and per-message deflate/inflate (see deflate.h).
 *
 * The offer parser reads the grammar of RFC 6455 section 9.1 (a comma-separated list of
 * extensions, each a token and ";"-separated parameters whose values are tokens or quoted
 * strings) with a cursor; an offer it cannot read or cannot honour is skipped up to the next
 * top-level comma, so one odd offer never spoils the ones after it.
 */
#include "ws/deflate.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "ws/frame.h"

/* ---- negotiation ---- */

struct cursor {
    const char *p, *end;
};

/* The parameters of permessage-deflate, as bits of a mask of those already seen. */
enum pmd_param {
    PARAM_SERVER_NO_CONTEXT = 1u << 0,
    PARAM_CLIENT_NO_CONTEXT = 1u << 1,
    PARAM_SERVER_WINDOW = 1u << 2,
    PARAM_CLIENT_WINDOW = 1u << 3,
};

/* RFC 9110 tchar. */
static bool is_tchar(unsigned char c)
{
    if ((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z'))
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static void skip_ows(struct cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t'))
        c->p++;
}

static bool at(const struct cursor *c, char ch)
{
    return c->p < c->end && *c->p == ch;
}

static bool read_token(struct cursor *c, struct ws_slice *out)
{
    const char *start = c->p;
    while (c->p < c->end && is_tchar((unsigned char)*c->p))
        c->p++;
    *out = (struct ws_slice){start, (size_t)(c->p - start)};
    return out->len > 0;
}

/*
 * A parameter value: a token, or a quoted string unescaped into buf (values we accept are two
 * digits at most, so a longer one only needs to be recognised as too long). *len is its length,
 * SIZE_MAX when it did not fit.
 */
static bool read_value(struct cursor *c, char *buf, size_t cap, size_t *len)
{
    *len = 0;
    if (!at(c, '"')) {
        struct ws_slice tok;
        if (!read_token(c, &tok))
            return false;
        *len = tok.len < cap ? tok.len : SIZE_MAX;
        if (tok.len < cap)
            memcpy(buf, tok.ptr, tok.len);
        return true;
    }
    c->p++;
    while (c->p < c->end && *c->p != '"') {
        if (*c->p == '\\' && ++c->p == c->end)
            return false;
        if (*len != SIZE_MAX && *len + 1 < cap)
            buf[(*len)++] = *c->p;
        else
            *len = SIZE_MAX;
        c->p++;
    }
    if (c->p == c->end)
        return false;
    c->p++;
    return true;
}

/* Moves past the rest of an offer, up to and past the next comma outside a quoted string. */
static void skip_offer(struct cursor *c)
{
    bool quoted = false;
    while (c->p < c->end) {
        char ch = *c->p++;
        if (quoted && ch == '\\' && c->p < c->end)
            c->p++;
        else if (ch == '"')
            quoted = !quoted;
        else if (ch == ',' && !quoted)
            return;
    }
}

static bool slice_ieq(struct ws_slice s, const char *lit)
{
    return s.len == strlen(lit) && strncasecmp(s.ptr, lit, s.len) == 0;
}

/* A window size value: 1*DIGIT without a leading zero, 8..15 (RFC 7692 section 7.1.2). */
static int window_bits(const char *v, size_t len)
{
    if (len == 0 || len > 2 || v[0] == '0')
        return -1;
    int n = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        n = n * 10 + (v[i] - '0');
    }
    return n >= 8 && n <= 15 ? n : -1;
}

/*
 * Takes one parameter of a permessage-deflate offer into *p. Returns false when the offer must be
 * declined: an unknown or repeated parameter, a value where none belongs or a bad one, or a
 * server window the broker cannot keep to (8).
 */
static bool take_param(struct ws_slice name, const char *value, size_t value_len, bool has_value,
                       unsigned *seen, struct ws_deflate_params *p)
{
    unsigned bit;
    if (slice_ieq(name, "server_no_context_takeover"))
        bit = PARAM_SERVER_NO_CONTEXT;
    else if (slice_ieq(name, "client_no_context_takeover"))
        bit = PARAM_CLIENT_NO_CONTEXT;
    else if (slice_ieq(name, "server_max_window_bits"))
        bit = PARAM_SERVER_WINDOW;
    else if (slice_ieq(name, "client_max_window_bits"))
        bit = PARAM_CLIENT_WINDOW;
    else
        return false;
    if (*seen & bit)
        return false;
    *seen |= bit;
    if (bit == PARAM_SERVER_NO_CONTEXT || bit == PARAM_CLIENT_NO_CONTEXT)
        return !has_value;
    if (bit == PARAM_CLIENT_WINDOW) /* any client window inflates with a 2^15 one */
        return !has_value || window_bits(value, value_len) > 0;
    int bits = has_value ? window_bits(value, value_len) : -1;
    if (bits < WS_DEFLATE_SMALL_WINDOW_BITS)
        return false;
    p->asked_server_window = true;
    p->small_window = bits < WS_DEFLATE_WINDOW_BITS;
    return true;
}

/*
 * Reads one offer at the cursor (an extension name and its parameters) and moves past it and
 * its comma. Returns true when it is a permessage-deflate offer the broker accepts.
 */
static bool read_offer(struct cursor *c, struct ws_deflate_params *p)
{
    struct ws_slice name;
    skip_ows(c);
    bool ok = read_token(c, &name) && slice_ieq(name, "permessage-deflate");
    unsigned seen = 0;
    *p = (struct ws_deflate_params){0};
    while (ok) {
        skip_ows(c);
        if (c->p == c->end || at(c, ','))
            break;
        struct ws_slice param = {NULL, 0};
        char value[4];
        size_t value_len = 0;
        bool has_value = false;
        ok = at(c, ';');
        if (ok) {
            c->p++;
            skip_ows(c);
            ok = read_token(c, &param);
        }
        skip_ows(c);
        if (ok && at(c, '=')) {
            c->p++;
            skip_ows(c);
            has_value = true;
            ok = read_value(c, value, sizeof(value), &value_len);
        }
        if (ok)
            ok = take_param(param, value, value_len == SIZE_MAX ? 0 : value_len, has_value, &seen,
                            p);
        if (ok && value_len == SIZE_MAX)
            ok = false;
    }
    skip_offer(c);
    p->enabled = ok;
    return ok;
}

int ws_deflate_negotiate(const struct ws_http_request *req, struct ws_deflate_params *out)
{
    *out = (struct ws_deflate_params){0};
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct ws_http_header *h = &req->headers[i];
        if (!slice_ieq(h->name, "sec-websocket-extensions"))
            continue;
        struct cursor c = {h->value.ptr, h->value.ptr + h->value.len};
        while (c.p < c.end) {
            struct ws_deflate_params offer;
            if (read_offer(&c, &offer)) {
                *out = offer;
                return 0;
            }
        }
    }
    return -1;
}

int ws_deflate_response_value(char *out, size_t cap, const struct ws_deflate_params *p)
{
    int bits = p->small_window ? WS_DEFLATE_SMALL_WINDOW_BITS : WS_DEFLATE_WINDOW_BITS;
    int n;
    if (p->asked_server_window)
        n = snprintf(out, cap,
                     "permessage-deflate; server_no_context_takeover; "
                     "client_no_context_takeover; server_max_window_bits=%d",
                     bits);
    else
        n = snprintf(out, cap,
                     "permessage-deflate; server_no_context_takeover; client_no_context_takeover");
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* ---- compression ---- */

int ws_deflate_init(z_stream *zs, int level, int window_bits)
{
    memset(zs, 0, sizeof(*zs));
    /* Negative window bits: raw deflate, no zlib header or checksum (RFC 7692 section 7.2.1). */
    return deflateInit2(zs, level, Z_DEFLATED, -window_bits, 8, Z_DEFAULT_STRATEGY) == Z_OK ? 0
                                                                                            : -1;
}

int ws_inflate_init(z_stream *zs)
{
    memset(zs, 0, sizeof(*zs));
    return inflateInit2(zs, -WS_DEFLATE_WINDOW_BITS) == Z_OK ? 0 : -1;
}

size_t ws_deflate_bound(size_t len)
{
    /* zlib's compressBound() for stored blocks of up to 16 KiB at worst, plus the sync flush's
     * empty stored block (5 bytes) and a few bits of the last block */
    return len + (len >> 12) + (len >> 14) + (len >> 25) + 13 + 5 + 8;
}

ssize_t ws_deflate_message(z_stream *zs, const uint8_t *in, size_t len, uint8_t *out, size_t cap)
{
    if (deflateReset(zs) != Z_OK || len > UINT_MAX || cap > UINT_MAX)
        return -1;
    zs->next_in = (Bytef *)in; /* zlib's API is not const-correct; input is only read */
    zs->avail_in = (uInt)len;
    zs->next_out = out;
    zs->avail_out = (uInt)cap;
    int rc = deflate(zs, Z_SYNC_FLUSH);
    /* All taken, and room left over: the flush is complete (zlib's rule for Z_SYNC_FLUSH). */
    if (rc != Z_OK || zs->avail_in != 0 || zs->avail_out == 0)
        return -1;
    size_t n = cap - zs->avail_out;
    static const uint8_t tail[4] = {0x00, 0x00, 0xFF, 0xFF};
    if (n < 4 || memcmp(out + n - 4, tail, 4) != 0)
        return -1;
    return (ssize_t)(n - 4);
}

#define STORED_BLOCK_MAX 65535

size_t ws_deflate_stored_size(size_t len)
{
    return len + 5 * ((len + STORED_BLOCK_MAX - 1) / STORED_BLOCK_MAX);
}

size_t ws_deflate_stored(uint8_t *out, const uint8_t *data, size_t len)
{
    size_t n = 0;
    while (len > 0) {
        size_t block = len < STORED_BLOCK_MAX ? len : STORED_BLOCK_MAX;
        out[n++] = 0x00; /* BFINAL 0, BTYPE 00 (stored); the other bits pad to the byte */
        out[n++] = (uint8_t)block;
        out[n++] = (uint8_t)(block >> 8);
        out[n++] = (uint8_t)~block;
        out[n++] = (uint8_t)(~block >> 8);
        memcpy(out + n, data, block);
        n += block;
        data += block;
        len -= block;
    }
    return n;
}

/* Output is handed out in pieces of this size: a stack buffer, whatever the message's size. */
#define INFLATE_CHUNK 16384

/* Runs inflate over what zs holds as input, handing the output to sink. 1 at the stream's end. */
static int inflate_input(z_stream *zs, size_t limit, size_t *total, ws_inflate_sink sink, void *ctx)
{
    uint8_t chunk[INFLATE_CHUNK];
    do {
        zs->next_out = chunk;
        zs->avail_out = sizeof(chunk);
        int rc = inflate(zs, Z_SYNC_FLUSH);
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
            return WS_ERR_INFLATE;
        size_t n = sizeof(chunk) - zs->avail_out;
        if (n > limit - *total)
            return WS_ERR_INFLATED_TOO_BIG;
        *total += n;
        if (n > 0) {
            int err = sink(ctx, chunk, n);
            if (err < 0)
                return err;
        }
        if (rc == Z_STREAM_END)
            return 1; /* a final block: whatever follows is not looked at */
        if (rc == Z_BUF_ERROR && n == 0)
            return 0; /* no progress possible: the input is used up */
    } while (zs->avail_in > 0 || zs->avail_out == 0);
    return 0;
}

ssize_t ws_inflate_message(z_stream *zs, const uint8_t *in, size_t len, size_t limit,
                           ws_inflate_sink sink, void *ctx)
{
    static const uint8_t tail[4] = {0x00, 0x00, 0xFF, 0xFF};
    size_t total = 0;
    if (inflateReset(zs) != Z_OK || len > UINT_MAX)
        return WS_ERR_INFLATE;
    zs->next_in = (Bytef *)in; /* only read */
    zs->avail_in = (uInt)len;
    int rc = inflate_input(zs, limit, &total, sink, ctx);
    if (rc == 0) {
        zs->next_in = (Bytef *)tail;
        zs->avail_in = sizeof(tail);
        rc = inflate_input(zs, limit, &total, sink, ctx);
    }
    if (rc < 0)
        return rc;
    /* Without a final block, the tail must have closed the data on a byte boundary: anything
     * left in zlib's input means the payload stopped inside a block. */
    if (rc == 0 && zs->avail_in != 0)
        return WS_ERR_INFLATE;
    return (ssize_t)total;
}
