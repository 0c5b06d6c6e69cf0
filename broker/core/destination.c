#include "broker/core/destination.h"

#include <string.h>

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

enum dest_kind destination_kind(const char *dest, size_t len)
{
    if (has_prefix(dest, len, TOPIC_PREFIX))
        return len > strlen(TOPIC_PREFIX) ? DEST_TOPIC : DEST_UNKNOWN;
    if (has_prefix(dest, len, QUEUE_PREFIX))
        return len > strlen(QUEUE_PREFIX) ? DEST_QUEUE : DEST_UNKNOWN;
    if (has_prefix(dest, len, TEMP_QUEUE_PREFIX))
        return len > strlen(TEMP_QUEUE_PREFIX) ? DEST_TEMP_QUEUE : DEST_UNKNOWN;
    if (has_prefix(dest, len, REPLY_QUEUE_PREFIX))
        return len > strlen(REPLY_QUEUE_PREFIX) ? DEST_REPLY_QUEUE : DEST_UNKNOWN;
    return DEST_UNKNOWN;
}

int destination_split(const char *name, size_t len, struct destination_segments *s)
{
    const char *end = name + len;
    s->count = 0;
    for (const char *seg = name;;) {
        const char *dot = memchr(seg, '.', (size_t)(end - seg));
        if (s->count == DESTINATION_MAX_SEGMENTS)
            return -1;
        s->ptr[s->count] = seg;
        s->len[s->count++] = (size_t)((dot != NULL ? dot : end) - seg);
        if (dot == NULL)
            return 0;
        seg = dot + 1;
    }
}

bool destination_is_wildcard_segment(const char *seg, size_t len)
{
    return len == 1 && (seg[0] == '*' || seg[0] == '#');
}

bool destination_is_wildcard(const char *dest, size_t len)
{
    if (destination_kind(dest, len) != DEST_TOPIC)
        return false;
    size_t skip = strlen(TOPIC_PREFIX);
    struct destination_segments s;
    if (destination_split(dest + skip, len - skip, &s) != 0)
        return false;
    for (size_t i = 0; i < s.count; i++)
        if (destination_is_wildcard_segment(s.ptr[i], s.len[i]))
            return true;
    return false;
}
