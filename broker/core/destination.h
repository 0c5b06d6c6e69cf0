/*
 * destination.h - destination names: the prefixes the broker knows, the kind of a name, and
 * whether a /topic/ name is a wildcard pattern (`*` one dot-separated segment, `#` zero or more,
 * as RabbitMQ's topic exchange); the form and rewriting of user destinations (/user/).
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
#define USER_PREFIX        "/user/"

/* DEST_USER: any name under /user/; destination_user_parse() says whether it is well formed. */
enum dest_kind {
    DEST_UNKNOWN,
    DEST_TOPIC,
    DEST_QUEUE,
    DEST_TEMP_QUEUE,
    DEST_REPLY_QUEUE,
    DEST_USER
};

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

/*
 * User destinations. A publisher addresses one user: /user/LOGIN/queue/NAME or
 * /user/LOGIN/topic/NAME (the "route"). A subscriber names only its own: /user/queue/NAME or
 * /user/topic/NAME, which destination_user_route() rewrites with its login into the route. The
 * route is routed as an exact topic name: every subscribed session of that login gets each
 * message, whether "queue" or "topic"; it is never a wildcard and never matched by one.
 *
 * LOGIN: 1 to DESTINATION_USER_LOGIN_MAX bytes of UTF-8, no '/' and no control character (a
 * login with '/' cannot be addressed: its sessions are refused /user/ subscriptions). NAME: at
 * least one byte of UTF-8 without control characters; '/', '.', '*' and '#' are literal.
 */
#define DESTINATION_USER_LOGIN_MAX 127

enum destination_user_error {
    DEST_USER_ERR_FORM = -1,  /* not /user/LOGIN/queue/NAME or /user/LOGIN/topic/NAME */
    DEST_USER_ERR_LOGIN = -2, /* LOGIN empty, too long, not UTF-8, or with '/' or a control */
    DEST_USER_ERR_NAME = -3,  /* NAME empty, not UTF-8, or with a control character */
    DEST_USER_ERR_SPACE = -4  /* the route does not fit the caller's buffer */
};

/* The parts of a route, pointing into it. */
struct destination_user {
    const char *login; /* LOGIN, not NUL-terminated */
    size_t login_len;
    const char *kind; /* "queue/NAME" or "topic/NAME": the route after "/user/LOGIN/" */
    size_t kind_len;
};

/* Can this login be addressed by /user/ destinations (the LOGIN rule above)? */
bool destination_user_login_valid(const char *login, size_t len);
/* Splits a route /user/LOGIN/(queue|topic)/NAME into out (may be NULL): 0 or a negative
 * enum destination_user_error. */
int destination_user_parse(const char *dest, size_t len, struct destination_user *out);
/* Is dest a subscriber's own form, /user/queue/... or /user/topic/...? (Its NAME is checked by
 * destination_user_route().) */
bool destination_user_is_own(const char *dest, size_t len);
/*
 * Rewrites a subscriber's own form /user/(queue|topic)/NAME for login into the route
 * /user/LOGIN/(queue|topic)/NAME, NUL-terminated in out. Returns the route's length, or a
 * negative enum destination_user_error.
 */
int destination_user_route(const char *dest, size_t len, const char *login, size_t login_len,
                           char *out, size_t cap);

#endif
