/*
 * token_refresh.c - the warning before a session's token expires and the SEND that replaces it:
 * see token_refresh.h. Decisions and frames only; the session arms its deadline and closes.
 */
#include "broker/session/token_refresh.h"
#include "broker/base/dict.h"
#include "broker/base/message.h"
#include "broker/core/destination.h"
#include "broker/core/subscription.h"
#include "broker/session/session.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define TOKEN_NAME "stompws.token" /* the NAME of /user/queue/NAME */

bool token_refresh_is_destination(const char *dest, size_t len)
{
    size_t want = sizeof(TOKEN_REFRESH_DESTINATION) - 1;
    return len == want && memcmp(dest, TOKEN_REFRESH_DESTINATION, want) == 0;
}

bool token_refresh_is_reserved(const char *dest, size_t len)
{
    if (token_refresh_is_destination(dest, len))
        return true;
    /* Every SEND asks: two compares turn away all but /user/LOGIN/queue/stompws.token. */
    static const char suffix[] = "/queue/" TOKEN_NAME;
    size_t suffix_len = sizeof(suffix) - 1;
    if (len <= 6 + suffix_len || memcmp(dest, "/user/", 6) != 0 ||
        memcmp(dest + len - suffix_len, suffix, suffix_len) != 0)
        return false;
    struct destination_user parts;
    if (destination_user_parse(dest, len, &parts) != 0)
        return false;
    size_t want = sizeof("queue/" TOKEN_NAME) - 1;
    return parts.kind_len == want && memcmp(parts.kind, "queue/" TOKEN_NAME, want) == 0;
}

/* Milliseconds since the epoch of exp_s, saturated (a verified exp is recent, but a claim of
 * 1e300 must not overflow). */
static int64_t exp_ms(int64_t exp_s)
{
    if (exp_s <= 0)
        return 0;
    return exp_s > INT64_MAX / 1000 ? INT64_MAX : exp_s * 1000;
}

/* The warning moment, or INT64_MIN when there is none (warn_s 0). */
static int64_t warn_at_ms(int64_t exp_s, unsigned warn_s)
{
    return warn_s == 0 ? INT64_MIN : exp_ms(exp_s) - (int64_t)warn_s * 1000;
}

bool token_refresh_in_window(int64_t exp_s, uint64_t now_ms, unsigned warn_s)
{
    int64_t now = (int64_t)now_ms;
    return warn_s != 0 && now >= warn_at_ms(exp_s, warn_s) && now < exp_ms(exp_s);
}

enum token_refresh_due token_refresh_due(const struct token_refresh *tr, int64_t exp_s,
                                         uint64_t now_ms, unsigned warn_s)
{
    int64_t now = (int64_t)now_ms;
    if (now >= exp_ms(exp_s))
        return TOKEN_REFRESH_EXPIRED;
    if (!tr->warned && warn_s != 0 && now >= warn_at_ms(exp_s, warn_s))
        return TOKEN_REFRESH_WARN;
    return TOKEN_REFRESH_WAIT;
}

uint64_t token_refresh_next_ms(const struct token_refresh *tr, int64_t exp_s, uint64_t now_ms,
                               unsigned warn_s)
{
    int64_t now = (int64_t)now_ms;
    int64_t at = exp_ms(exp_s);
    if (!tr->warned && warn_s != 0)
        at = warn_at_ms(exp_s, warn_s);
    return at > now ? (uint64_t)(at - now) : 0;
}

int64_t token_refresh_seconds_left(int64_t exp_s, uint64_t now_ms)
{
    int64_t left_ms = exp_ms(exp_s) - (int64_t)now_ms;
    return left_ms > 0 ? left_ms / 1000 : 0;
}

struct message *token_refresh_warning(int64_t exp_s, uint64_t now_ms)
{
    int64_t left = token_refresh_seconds_left(exp_s, now_ms);
    char seconds[24], body[64];
    int seconds_len = snprintf(seconds, sizeof(seconds), "%" PRId64, left);
    int body_len = snprintf(body, sizeof(body), "{\"expires_in\":%" PRId64 ",\"exp\":%" PRId64 "}",
                            left, exp_s);
    static const char json[] = "application/json";
    const struct stomp_header headers[] = {
        {.name = TOKEN_REFRESH_EXPIRES_IN_HEADER,
         .name_len = sizeof(TOKEN_REFRESH_EXPIRES_IN_HEADER) - 1,
         .value = seconds,
         .value_len = (size_t)seconds_len},
        {.name = "content-type",
         .name_len = sizeof("content-type") - 1,
         .value = json,
         .value_len = sizeof(json) - 1},
    };
    return message_new(TOKEN_REFRESH_DESTINATION, sizeof(TOKEN_REFRESH_DESTINATION) - 1, headers,
                       sizeof(headers) / sizeof(headers[0]), body, (size_t)body_len);
}

size_t token_refresh_warn(struct dict *subs, const struct subscription *only_sub, int64_t exp_s,
                          uint64_t now_ms)
{
    struct message *msg = NULL;
    size_t warned = 0;
    size_t bucket;
    for (struct dict_entry *e = dict_first(subs, &bucket); e != NULL;
         e = dict_next(subs, &bucket, e)) {
        struct subscription *sub = e->value;
        if ((only_sub != NULL && sub != only_sub) ||
            !token_refresh_is_reserved(sub->destination, sub->destination_len))
            continue;
        if (msg == NULL && (msg = token_refresh_warning(exp_s, now_ms)) == NULL)
            break; /* out of memory: the expiry still closes the session */
        if (session_deliver(sub, msg, false) == 0)
            warned++;
    }
    if (msg != NULL)
        message_unref(msg);
    return warned;
}

static int refuse(char *reason, size_t reason_len, int rc, const char *why)
{
    snprintf(reason, reason_len, "%s", why);
    return rc;
}

int token_refresh_replace(const struct security *sec, struct auth_identity *id, const char *token,
                          size_t len, uint64_t now_ms, char *reason, size_t reason_len)
{
    /* exp is required in every token, and a users-file login or anonymous session has none. */
    if (id->expires_at == 0)
        return refuse(reason, reason_len, TOKEN_REFRESH_ERR_NOT_TOKEN,
                      "this session was not authenticated by a token: nothing to refresh");
    if (token == NULL || len == 0)
        return refuse(reason, reason_len, TOKEN_REFRESH_ERR_MISSING,
                      "a token refresh needs a token header");
    if (sec->jwt == NULL)
        return refuse(reason, reason_len, TOKEN_REFRESH_ERR_INVALID,
                      "tokens are no longer accepted (the JWT keys were removed)");
    struct auth_identity fresh = {0};
    char why[256];
    if (auth_jwt_verify(sec->jwt, token, len, (int64_t)(now_ms / 1000), &fresh, why, sizeof(why)) !=
        0) {
        snprintf(reason, reason_len, "invalid token: %s", why);
        return TOKEN_REFRESH_ERR_INVALID;
    }
    int rc = 0;
    if (strcmp(fresh.user, id->user) != 0)
        rc = refuse(reason, reason_len, TOKEN_REFRESH_ERR_OTHER_SUB,
                    "the new token is for another user (sub)");
    else if (exp_ms(fresh.expires_at) <= (int64_t)now_ms)
        rc = refuse(reason, reason_len, TOKEN_REFRESH_ERR_EXPIRED, "the new token has expired");
    if (rc != 0) {
        auth_identity_reset(&fresh);
        return rc;
    }
    auth_identity_reset(id);
    *id = fresh; /* the grants move: id owns them now */
    return 0;
}
