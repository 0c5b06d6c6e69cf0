/*
 * destination.h - destination names: the prefixes the broker knows, the kind of a name, and
 * whether a /topic/ name is a wildcard pattern (`*` one dot-separated segment, `#` zero or more,
 * as RabbitMQ's topic exchange).
 *
 * What it must not do: hold state. It reads names; the router and the queues keep them.
 */
#ifndef STOMPWS_DESTINATION_H
#define STOMPWS_DESTINATION_H

#include <stdbool.h>
#include <stddef.h>

#define TOPIC_PREFIX       "/topic/"
#define QUEUE_PREFIX       "/queue/"
#define TEMP_QUEUE_PREFIX  "/temp-queue/"
#define REPLY_QUEUE_PREFIX "/reply-queue/"

enum dest_kind { DEST_UNKNOWN, DEST_TOPIC, DEST_QUEUE, DEST_TEMP_QUEUE, DEST_REPLY_QUEUE };

enum dest_kind destination_kind(const char *dest, size_t len);
/* True when a /topic/ name has a `*` or `#` segment. */
bool destination_is_wildcard(const char *dest, size_t len);

#define DESTINATION_MAX_SEGMENTS 64

/* The dot-separated segments of a topic name (after /topic/), pointing into the name. */
struct destination_segments {
    const char *ptr[DESTINATION_MAX_SEGMENTS];
    size_t len[DESTINATION_MAX_SEGMENTS];
    size_t count;
};

/* Splits name into s; -1 when it has more than DESTINATION_MAX_SEGMENTS segments. */
int destination_split(const char *name, size_t len, struct destination_segments *s);
/*
 * Does the /topic/ name match the /topic/ pattern (`*` one segment, `#` zero or more; a pattern
 * without wildcards matches itself only)? False for anything that is not a /topic/ name or deeper
 * than DESTINATION_MAX_SEGMENTS.
 */
bool destination_matches(const char *pattern, size_t pattern_len, const char *name,
                         size_t name_len);

/* `*` or `#`. */
bool destination_is_wildcard_segment(const char *seg, size_t len);

#endif
