/*
 * sse_request.c - the query of GET /sse and the resume token of its events (see sse_request.h).
 *
 * The token is base64url (no padding) of lines of text:
 *     "1 START\n"                  version 1, START the stream's first second (decimal)
 *     "OFFSET EPOCH DESTINATION\n" per mark, most recently used first (decimal, hex, the name)
 * Text rather than a packed binary form: a person debugging a reconnect can decode it with
 * `base64 -d`. It is not signed: a reader that forges one only resumes from elsewhere in the
 * streams it may read anyway (the ACL is checked on every request).
 */
#include "broker/session/sse_request.h"
#include "broker/base/base64.h"
#include "broker/base/url.h"

#include <stdio.h>
#include <string.h>

/* Raw bytes of the longest token once decoded: base64 turns 3 bytes into 4 characters. */
#define TOKEN_RAW_MAX (SSE_TOKEN_MAX / 4 * 3)

static bool key_is(const char *key, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(key, want, len) == 0;
}

/* Percent-decodes a form value ('+' is a space) into the request's storage, bounded by max. */
static int decode_into(struct sse_request *r, const char *src, size_t len, size_t max,
                       struct sse_slice *out)
{
    char *dst = r->storage + r->storage_used;
    size_t room = sizeof(r->storage) - r->storage_used;
    long n = url_decode(src, len, true, dst, room < max ? room : max);
    if (n < 0)
        return n == URL_TOO_LONG ? SSE_REQUEST_TOO_LONG : SSE_REQUEST_BAD_ESCAPE;
    r->storage_used += (size_t)n;
    *out = (struct sse_slice){dst, (size_t)n};
    return 0;
}

/* A destination names something: not empty, and no control octet (they would end a header). */
static bool destination_ok(struct sse_slice d)
{
    if (d.len == 0)
        return false;
    for (size_t i = 0; i < d.len; i++)
        if ((unsigned char)d.ptr[i] < 0x20 || d.ptr[i] == 0x7f)
            return false;
    return true;
}

static int take_parameter(struct sse_request *r, const char *key, size_t key_len, const char *value,
                          size_t value_len)
{
    if (key_is(key, key_len, "destination")) {
        if (r->destination_count == SSE_MAX_DESTINATIONS)
            return SSE_REQUEST_TOO_MANY;
        struct sse_slice *d = &r->destinations[r->destination_count];
        int rc = decode_into(r, value, value_len, SSE_DESTINATION_MAX, d);
        if (rc != 0)
            return rc;
        if (!destination_ok(*d))
            return SSE_REQUEST_BAD_DESTINATION;
        r->destination_count++;
    } else if (key_is(key, key_len, "format")) {
        if (key_is(value, value_len, "raw"))
            r->format = SSE_FORMAT_RAW;
        else if (key_is(value, value_len, "json"))
            r->format = SSE_FORMAT_JSON;
        else
            return SSE_REQUEST_BAD_FORMAT;
    } else if (key_is(key, key_len, "x-stream-offset")) {
        return decode_into(r, value, value_len, 64, &r->stream_offset);
    } else if (key_is(key, key_len, "access_token")) {
        r->access_token = (struct sse_slice){value, value_len};
    }
    return 0;
}

int sse_request_parse(struct sse_request *out, const char *query, size_t len)
{
    out->destination_count = 0;
    out->format = SSE_FORMAT_JSON;
    out->stream_offset = (struct sse_slice){NULL, 0};
    out->access_token = (struct sse_slice){NULL, 0};
    out->storage_used = 0;
    const char *p = query, *end = query + len;
    while (len > 0 && p <= end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        const char *value = eq != NULL ? eq + 1 : stop;
        size_t key_len = (size_t)((eq != NULL ? eq : stop) - p);
        int rc = take_parameter(out, p, key_len, value, (size_t)(stop - value));
        if (rc != 0)
            return rc;
        if (amp == NULL)
            break;
        p = amp + 1;
    }
    return out->destination_count > 0 ? 0 : SSE_REQUEST_NO_DESTINATION;
}

/* ---- the token ------------------------------------------------------------------------------ */

/* An unsigned number in base 10 or 16 up to the delimiter; advances *p past the delimiter. */
static int read_number(const char **p, const char *end, int base, char delim, uint64_t *out)
{
    uint64_t v = 0;
    const char *s = *p;
    size_t digits = 0;
    while (s < end && *s != delim) {
        int d = base == 16 ? url_hex_value(*s) : (*s >= '0' && *s <= '9' ? *s - '0' : -1);
        if (d < 0 || digits == (base == 16 ? 16 : 19))
            return -1;
        v = v * (uint64_t)base + (uint64_t)d;
        digits++;
        s++;
    }
    if (s == end || digits == 0)
        return -1;
    *p = s + 1;
    *out = v;
    return 0;
}

int sse_token_decode(struct sse_token *out, const char *text, size_t len)
{
    unsigned char raw[TOKEN_RAW_MAX];
    out->count = 0;
    out->clock = 0;
    long n = len <= SSE_TOKEN_MAX ? base64_decode(text, len, true, raw, sizeof(raw)) : -1;
    if (n < 3 || raw[0] != '1' || raw[1] != ' ')
        return SSE_REQUEST_BAD_TOKEN;
    const char *p = (const char *)raw + 2, *end = (const char *)raw + n;
    if (read_number(&p, end, 10, '\n', &out->start_s) != 0)
        return SSE_REQUEST_BAD_TOKEN;
    while (p < end) {
        if (out->count == SSE_MAX_MARKS)
            return SSE_REQUEST_BAD_TOKEN;
        struct sse_mark *m = &out->marks[out->count];
        if (read_number(&p, end, 10, ' ', &m->offset) != 0 ||
            read_number(&p, end, 16, ' ', &m->epoch) != 0)
            return SSE_REQUEST_BAD_TOKEN;
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        struct sse_slice name = {p, eol != NULL ? (size_t)(eol - p) : 0};
        if (eol == NULL || name.len > SSE_DESTINATION_MAX || !destination_ok(name) ||
            sse_token_find(out, name.ptr, name.len) != NULL)
            return SSE_REQUEST_BAD_TOKEN;
        memcpy(m->destination, name.ptr, name.len);
        m->destination_len = name.len;
        out->count++;
        p = eol + 1;
    }
    /* Most recent first in the text: the first line gets the highest count. */
    for (size_t i = 0; i < out->count; i++)
        out->marks[i].used = out->count - i;
    out->clock = out->count;
    return 0;
}

/* The marks' indexes, most recently used first. */
static void order_by_use(const struct sse_token *t, size_t order[SSE_MAX_MARKS])
{
    for (size_t i = 0; i < t->count; i++) {
        size_t j = i;
        while (j > 0 && t->marks[order[j - 1]].used < t->marks[i].used) {
            order[j] = order[j - 1];
            j--;
        }
        order[j] = i;
    }
}

size_t sse_token_encode(const struct sse_token *t, char *out, size_t cap)
{
    char raw[TOKEN_RAW_MAX];
    size_t order[SSE_MAX_MARKS];
    int n = snprintf(raw, sizeof(raw), "1 %llu\n", (unsigned long long)t->start_s);
    size_t len = n > 0 ? (size_t)n : 0;
    order_by_use(t, order);
    for (size_t i = 0; i < t->count; i++) {
        const struct sse_mark *m = &t->marks[order[i]];
        char line[SSE_DESTINATION_MAX + 64];
        n = snprintf(line, sizeof(line), "%llu %llx %.*s\n", (unsigned long long)m->offset,
                     (unsigned long long)m->epoch, (int)m->destination_len, m->destination);
        if (n < 0 || len + (size_t)n > sizeof(raw))
            break; /* the rest, less recently used, are left out */
        memcpy(raw + len, line, (size_t)n);
        len += (size_t)n;
    }
    if (cap < (len + 2) / 3 * 4 + 1) {
        if (cap > 0)
            out[0] = '\0';
        return 0;
    }
    return base64_encode((const unsigned char *)raw, len, true, out);
}

struct sse_mark *sse_token_find(struct sse_token *t, const char *name, size_t len)
{
    for (size_t i = 0; i < t->count; i++)
        if (t->marks[i].destination_len == len && memcmp(t->marks[i].destination, name, len) == 0)
            return &t->marks[i];
    return NULL;
}

struct sse_mark *sse_token_note(struct sse_token *t, const char *name, size_t len, uint64_t offset,
                                uint64_t epoch)
{
    if (len > SSE_DESTINATION_MAX || !destination_ok((struct sse_slice){name, len}))
        return NULL;
    struct sse_mark *m = sse_token_find(t, name, len);
    if (m == NULL && t->count < SSE_MAX_MARKS) {
        m = &t->marks[t->count++];
    } else if (m == NULL) {
        m = &t->marks[0];
        for (size_t i = 1; i < t->count; i++)
            if (t->marks[i].used < m->used)
                m = &t->marks[i];
    }
    memcpy(m->destination, name, len);
    m->destination_len = len;
    m->offset = offset;
    m->epoch = epoch;
    m->used = ++t->clock;
    return m;
}

bool sse_token_seen(struct sse_token *t, const char *name, size_t len, uint64_t offset,
                    uint64_t epoch)
{
    const struct sse_mark *m = sse_token_find(t, name, len);
    return m != NULL && m->epoch == epoch && offset <= m->offset;
}

const char *sse_request_error_message(int err)
{
    switch (err) {
    case SSE_REQUEST_NO_DESTINATION:
        return "a destination query parameter is required";
    case SSE_REQUEST_TOO_MANY:
        return "too many destination parameters";
    case SSE_REQUEST_BAD_ESCAPE:
        return "bad percent-escape in the query";
    case SSE_REQUEST_TOO_LONG:
        return "a query value is too long";
    case SSE_REQUEST_BAD_FORMAT:
        return "format must be json or raw";
    case SSE_REQUEST_BAD_DESTINATION:
        return "a destination is empty or holds a control character";
    case SSE_REQUEST_BAD_TOKEN:
        return "Last-Event-ID is not a resume token of this broker";
    default:
        return "ok";
    }
}
