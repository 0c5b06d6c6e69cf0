/*
 * presence_query.h - the query of GET /api/presence: ?destination=D, percent-decoded ('+' is a
 * space, as in a form) and checked to be an exact /topic/ name.
 *
 * What it must not do: allocate, read a socket or look at the broker. The caller hands in the
 * raw query and an output buffer (tests/fuzz/fuzz_presence_query.c feeds it anything).
 */
#ifndef STOMPWS_PRESENCE_QUERY_H
#define STOMPWS_PRESENCE_QUERY_H

#include <stddef.h>

enum presence_query_error {
    PRESENCE_QUERY_MISSING = -1,    /* no destination parameter, or an empty one */
    PRESENCE_QUERY_REPEATED = -2,   /* destination given twice */
    PRESENCE_QUERY_BAD_ESCAPE = -3, /* a '%' not followed by two hex digits */
    PRESENCE_QUERY_TOO_LONG = -4,   /* decoded, longer than the caller's limit */
    PRESENCE_QUERY_CONTROL = -5,    /* a control character (NUL included), or not UTF-8 */
    PRESENCE_QUERY_NOT_TOPIC = -6,  /* not /topic/NAME */
    PRESENCE_QUERY_WILDCARD = -7,   /* a /topic/ pattern: presence is kept per exact name */
};

/*
 * Decodes the destination parameter of query (len bytes, not NUL-terminated; may be NULL when
 * len is 0) into out, NUL-terminated: at most max bytes (out holds max + 1). Returns its length,
 * or a negative enum presence_query_error; out is unspecified then.
 */
long presence_query_destination(const char *query, size_t len, char *out, size_t max);

/* What went wrong, for the 400 answer (static text; max is the caller's limit, named there). */
const char *presence_query_error_message(long rc);

#endif
