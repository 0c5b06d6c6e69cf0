/*
 * token_refresh.h - a JWT session's warning before its token expires, and the new token it may
 * hand in on the live connection (issue #15; docs/SECURITY.md "Token refresh").
 *
 * A session authenticated by a token still ends when the token's exp passes. Before that, at
 * refresh.warn_s seconds before exp, each of its subscriptions to /user/queue/stompws.token gets
 * one MESSAGE with x-token-expires-in; a SEND to that destination with a `token` header replaces
 * the session's token (same "sub") and moves both moments to the new exp.
 *
 * The warning goes to the one session whose token it is, never through the router: a user's
 * other sessions hold other tokens with other expiries. This module decides and builds; the
 * session owns the timer (its one deadline event: no event per session is added), the frames
 * and the close. Time is passed in (wall-clock milliseconds: exp is wall-clock).
 */
#ifndef STOMPWS_TOKEN_REFRESH_H
#define STOMPWS_TOKEN_REFRESH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/auth/security.h"

struct dict;
struct message;
struct subscription;

/* Where the warning arrives and where a new token is sent (a /user/ subscriber's own form). */
#define TOKEN_REFRESH_DESTINATION "/user/queue/stompws.token"
/* The header of the warning: whole seconds until exp. */
#define TOKEN_REFRESH_EXPIRES_IN_HEADER "x-token-expires-in"

/* Per session (a byte): the state of the current token's warning. */
struct token_refresh {
    bool warned; /* the warning moment of the current token has passed: next is the expiry */
};

/* Is dest exactly TOKEN_REFRESH_DESTINATION (the SEND that carries a new token)? */
bool token_refresh_is_destination(const char *dest, size_t len);

/*
 * Does dest name the token destination of some user: /user/queue/stompws.token or
 * /user/LOGIN/queue/stompws.token? Only the broker writes there: a SEND naming a login is
 * refused, so that nobody can forge another session's warning.
 */
bool token_refresh_is_reserved(const char *dest, size_t len);

/* What the session's deadline should do when it fires at now_ms for a token ending at exp_s. */
enum token_refresh_due {
    TOKEN_REFRESH_WAIT,    /* fired early (clock granularity): arm again */
    TOKEN_REFRESH_WARN,    /* send the warning, then arm for the expiry */
    TOKEN_REFRESH_EXPIRED, /* the token is over: close */
};
enum token_refresh_due token_refresh_due(const struct token_refresh *tr, int64_t exp_s,
                                         uint64_t now_ms, unsigned warn_s);

/* Milliseconds from now_ms to the next moment that matters: the warning (until it has passed;
 * warn_s 0: none), then exp. 0 when it has come. */
uint64_t token_refresh_next_ms(const struct token_refresh *tr, int64_t exp_s, uint64_t now_ms,
                               unsigned warn_s);

/* Whole seconds left until exp_s at now_ms (rounded down, never negative). */
int64_t token_refresh_seconds_left(int64_t exp_s, uint64_t now_ms);

/* Is now_ms inside the warning window of a token ending at exp_s (warn_s 0: never)? A
 * subscription made there is warned at once. */
bool token_refresh_in_window(int64_t exp_s, uint64_t now_ms, unsigned warn_s);

/*
 * The warning MESSAGE for a token ending at exp_s: destination TOKEN_REFRESH_DESTINATION,
 * header x-token-expires-in: S, content-type application/json, body {"expires_in":S,"exp":E}.
 * Refcount 1, the caller's; NULL when out of memory.
 */
struct message *token_refresh_warning(int64_t exp_s, uint64_t now_ms);

/*
 * Delivers a fresh warning to each subscription in subs (a session's: id -> struct
 * subscription) whose destination is reserved (token_refresh_is_reserved). Returns how many got
 * it. Used by the deadline (every such subscription) and by a new SUBSCRIBE (only_sub, the one
 * just made; NULL: all).
 */
size_t token_refresh_warn(struct dict *subs, const struct subscription *only_sub, int64_t exp_s,
                          uint64_t now_ms);

enum token_refresh_error {
    TOKEN_REFRESH_ERR_NOT_TOKEN = -1, /* the session was not authenticated by a token */
    TOKEN_REFRESH_ERR_MISSING = -2,   /* no token header, or an empty one */
    TOKEN_REFRESH_ERR_INVALID = -3,   /* auth_jwt_verify refused it (or tokens are off) */
    TOKEN_REFRESH_ERR_OTHER_SUB = -4, /* valid, but for another "sub" */
    TOKEN_REFRESH_ERR_EXPIRED = -5,   /* valid within the leeway, yet its exp has passed */
    TOKEN_REFRESH_ERR_NOMEM = -6,
};

/*
 * Replaces the identity of a token session with the one `token` proves, at now_ms. The token
 * must verify as at CONNECT (signature, exp, nbf, aud, iss), name the same "sub", and not have
 * expired (the leeway that admits a slightly late token at CONNECT does not extend a session
 * here). An exp earlier than the current one is accepted: the issuer's newest word wins. On
 * success `id` holds the new exp and grants (the old grants are freed) and 0 is returned;
 * otherwise `id` is untouched and a negative enum token_refresh_error comes back with the
 * reason in reason (for the ERROR: it never quotes the token).
 */
int token_refresh_replace(const struct security *sec, struct auth_identity *id, const char *token,
                          size_t len, uint64_t now_ms, char *reason, size_t reason_len);

#endif
