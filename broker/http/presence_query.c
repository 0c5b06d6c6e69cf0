#include "broker/http/presence_query.h"
#include "broker/base/url.h"
#include "broker/core/destination.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "ws/utf8.h"

/* Decodes value (len bytes) into out (at most max bytes): the length or an error. */
static long decode(const char *value, size_t len, char *out, size_t max)
{
    long n = url_decode(value, len, true, out, max);
    if (n < 0)
        return n == URL_TOO_LONG ? PRESENCE_QUERY_TOO_LONG : PRESENCE_QUERY_BAD_ESCAPE;
    out[n] = '\0';
    return n;
}

/* The raw value of "destination" in query: 1 when there once, 0 when absent, -1 when repeated. */
static int find_value(const char *query, size_t len, const char **value, size_t *value_len)
{
    static const char key[] = "destination";
    size_t key_len = sizeof(key) - 1, start = 0;
    int found = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i < len && query[i] != '&')
            continue;
        size_t part = i - start;
        const char *p = query + start;
        if (part >= key_len && memcmp(p, key, key_len) == 0 &&
            (part == key_len || p[key_len] == '=')) {
            if (found++)
                return -1;
            size_t skip = part == key_len ? part : key_len + 1;
            *value = p + skip;
            *value_len = part - skip;
        }
        start = i + 1;
    }
    return found;
}

long presence_query_destination(const char *query, size_t len, char *out, size_t max)
{
    const char *value = NULL;
    size_t value_len = 0;
    int found = len > 0 ? find_value(query, len, &value, &value_len) : 0;
    if (found < 0)
        return PRESENCE_QUERY_REPEATED;
    if (found == 0 || value_len == 0)
        return PRESENCE_QUERY_MISSING;
    long n = decode(value, value_len, out, max);
    if (n < 0)
        return n;
    for (long i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7F)
            return PRESENCE_QUERY_CONTROL;
    if (!ws_utf8_valid((const uint8_t *)out, (size_t)n))
        return PRESENCE_QUERY_CONTROL;
    if (destination_kind(out, (size_t)n) != DEST_TOPIC || (size_t)n == strlen(TOPIC_PREFIX))
        return PRESENCE_QUERY_NOT_TOPIC;
    if (destination_is_wildcard(out, (size_t)n))
        return PRESENCE_QUERY_WILDCARD;
    return n;
}

const char *presence_query_error_message(long rc)
{
    switch (rc) {
    case PRESENCE_QUERY_MISSING:
        return "missing destination: GET /api/presence?destination=/topic/NAME";
    case PRESENCE_QUERY_REPEATED:
        return "destination given more than once";
    case PRESENCE_QUERY_BAD_ESCAPE:
        return "destination has a bad percent escape";
    case PRESENCE_QUERY_TOO_LONG:
        return "destination longer than limits.max_header_line";
    case PRESENCE_QUERY_CONTROL:
        return "destination contains a control character or is not valid UTF-8";
    case PRESENCE_QUERY_NOT_TOPIC:
        return "destination is not a /topic/ name: presence is kept for /topic/ destinations";
    case PRESENCE_QUERY_WILDCARD:
        return "destination is a wildcard pattern: presence is kept per exact /topic/ name";
    default:
        return "ok";
    }
}
