/*
 * test_token_refresh.c - the pure parts of token refresh (broker/session/token_refresh.h): which
 * destinations are the token's, when the session's deadline warns and when it closes, the
 * warning message, and which new tokens replace a session's identity.
 */
#include <check.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/base/message.h"
#include "broker/session/token_refresh.h"

#define NOW_S  1800000000LL         /* a fixed "now": 2027-01-15 */
#define NOW_MS (NOW_S * 1000 + 250) /* with a fraction of a second */
#define SECRET "0123456789abcdef0123456789abcdef-token-refresh"

/* ---- destinations ---------------------------------------------------------------------------- */

START_TEST(test_destinations)
{
    static const struct {
        const char *dest;
        bool is_refresh; /* the SEND that carries a token */
        bool reserved;   /* some user's token destination: only the broker writes there */
    } cases[] = {
        {"/user/queue/stompws.token", true, true},
        {"/user/alice/queue/stompws.token", false, true},
        {"/user/queue/stompws.tokens", false, false},
        {"/user/queue/stompws.toke", false, false},
        {"/user/topic/stompws.token", false, false},
        {"/user/alice/topic/stompws.token", false, false},
        {"/user/alice/queue/x.stompws.token", false, false},
        {"/queue/stompws.token", false, false},
        {"/user//queue/stompws.token", false, false},
        {"", false, false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t len = strlen(cases[i].dest);
        ck_assert_msg(token_refresh_is_destination(cases[i].dest, len) == cases[i].is_refresh, "%s",
                      cases[i].dest);
        ck_assert_msg(token_refresh_is_reserved(cases[i].dest, len) == cases[i].reserved, "%s",
                      cases[i].dest);
    }
}
END_TEST

/* ---- the deadline: warning, then expiry --------------------------------------------------------
 */

START_TEST(test_deadline_schedule)
{
    static const struct {
        int64_t exp_s; /* relative to NOW_S */
        unsigned warn_s;
        bool warned;
        enum token_refresh_due due;
        uint64_t next_ms; /* from NOW_MS */
        bool in_window;
    } cases[] = {
        /* far from exp: wait for the warning, 30 s before */
        {100, 30, false, TOKEN_REFRESH_WAIT, 69750, false},
        /* inside the window, not warned yet: warn now */
        {20, 30, false, TOKEN_REFRESH_WARN, 0, true},
        /* warned: the next moment is exp */
        {20, 30, true, TOKEN_REFRESH_WAIT, 19750, true},
        /* warn_s 0: no warning, straight to exp */
        {20, 0, false, TOKEN_REFRESH_WAIT, 19750, false},
        /* at or past exp: close, warned or not */
        {0, 30, false, TOKEN_REFRESH_EXPIRED, 0, false},
        {-5, 30, true, TOKEN_REFRESH_EXPIRED, 0, false},
        /* a warning longer than the token's life is due at once */
        {1, 30, false, TOKEN_REFRESH_WARN, 0, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct token_refresh tr = {.warned = cases[i].warned};
        int64_t exp = NOW_S + cases[i].exp_s;
        ck_assert_msg(token_refresh_due(&tr, exp, NOW_MS, cases[i].warn_s) == cases[i].due,
                      "case %zu", i);
        ck_assert_msg(token_refresh_next_ms(&tr, exp, NOW_MS, cases[i].warn_s) == cases[i].next_ms,
                      "case %zu: %llu", i,
                      (unsigned long long)token_refresh_next_ms(&tr, exp, NOW_MS, cases[i].warn_s));
        ck_assert_msg(token_refresh_in_window(exp, NOW_MS, cases[i].warn_s) == cases[i].in_window,
                      "case %zu", i);
    }
    /* A session without a token (exp 0) is never in a window. */
    ck_assert(!token_refresh_in_window(0, NOW_MS, 30));
    /* A huge exp neither overflows nor wraps to "now". */
    struct token_refresh tr = {0};
    ck_assert_int_eq(token_refresh_due(&tr, INT64_MAX, NOW_MS, 30), TOKEN_REFRESH_WAIT);
    ck_assert_uint_gt(token_refresh_next_ms(&tr, INT64_MAX, NOW_MS, 30), 1000000);
    /* Nor does a negative one. */
    ck_assert_int_eq(token_refresh_due(&tr, INT64_MIN, NOW_MS, 30), TOKEN_REFRESH_EXPIRED);
    ck_assert_uint_eq(token_refresh_next_ms(&tr, INT64_MIN, NOW_MS, 30), 0);
    ck_assert_int_eq(token_refresh_seconds_left(INT64_MIN, NOW_MS), 0);
}
END_TEST

START_TEST(test_seconds_left)
{
    ck_assert_int_eq(token_refresh_seconds_left(NOW_S + 30, NOW_MS), 29); /* 29.75: down */
    ck_assert_int_eq(token_refresh_seconds_left(NOW_S + 1, NOW_MS), 0);
    ck_assert_int_eq(token_refresh_seconds_left(NOW_S, NOW_MS), 0);
    ck_assert_int_eq(token_refresh_seconds_left(NOW_S - 100, NOW_MS), 0);
}
END_TEST

/* ---- the warning -------------------------------------------------------------------------------
 */

static const struct stomp_header *header(const struct message *m, const char *name)
{
    for (size_t i = 0; i < m->header_count; i++)
        if (m->headers[i].name_len == strlen(name) &&
            memcmp(m->headers[i].name, name, m->headers[i].name_len) == 0)
            return &m->headers[i];
    return NULL;
}

START_TEST(test_warning_message)
{
    struct message *m = token_refresh_warning(NOW_S + 30, NOW_MS);
    ck_assert_ptr_nonnull(m);
    ck_assert_str_eq(m->destination, "/user/queue/stompws.token");
    const struct stomp_header *left = header(m, "x-token-expires-in");
    ck_assert_ptr_nonnull(left);
    ck_assert_int_eq((int)left->value_len, 2);
    ck_assert(memcmp(left->value, "29", 2) == 0);
    const struct stomp_header *type = header(m, "content-type");
    ck_assert_ptr_nonnull(type);
    ck_assert(memcmp(type->value, "application/json", type->value_len) == 0);
    char want[64];
    snprintf(want, sizeof(want), "{\"expires_in\":29,\"exp\":%lld}", NOW_S + 30);
    ck_assert_str_eq(m->body, want);
    ck_assert_uint_eq(m->body_len, strlen(want));
    ck_assert(m->utf8);
    message_unref(m);
}
END_TEST

/* ---- replacing the identity ---------------------------------------------------------------------
 */

static char secret_path[] = "/tmp/test_token_refresh_XXXXXX";
static struct security sec;

static void b64url(const unsigned char *in, size_t len, char *out)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    unsigned acc = 0, bits = 0;
    for (size_t i = 0; i < len; i++) {
        acc = (acc << 8) | in[i];
        for (bits += 8; bits >= 6; bits -= 6)
            *out++ = alphabet[(acc >> (bits - 6)) & 63];
    }
    if (bits > 0)
        *out++ = alphabet[(acc << (6 - bits)) & 63];
    *out = '\0';
}

/* An HS256 token with these claims, signed with key (NULL: the configured secret). */
static char *make_token(const char *claims, const char *key)
{
    static const char header_json[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char h64[128], c64[1024], s64[128], data[1200];
    b64url((const unsigned char *)header_json, strlen(header_json), h64);
    b64url((const unsigned char *)claims, strlen(claims), c64);
    snprintf(data, sizeof(data), "%s.%s", h64, c64);
    unsigned char sig[64];
    size_t sig_len = 0;
    const char *k = key != NULL ? key : SECRET;
    ck_assert_ptr_nonnull(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, k, strlen(k),
                                    (const unsigned char *)data, strlen(data), sig, sizeof(sig),
                                    &sig_len));
    b64url(sig, sig_len, s64);
    size_t len = strlen(data) + strlen(s64) + 2;
    char *token = malloc(len);
    ck_assert_ptr_nonnull(token);
    snprintf(token, len, "%s.%s", data, s64);
    return token;
}

static char *token_for(const char *sub, int64_t exp_rel, const char *grants)
{
    char claims[512];
    snprintf(claims, sizeof(claims), "{\"sub\":\"%s\",\"exp\":%lld%s%s}", sub,
             (long long)(NOW_S + exp_rel), grants != NULL ? ",\"stomp\":" : "",
             grants != NULL ? grants : "");
    return make_token(claims, NULL);
}

static void jwt_setup(void)
{
    int fd = mkstemp(secret_path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, SECRET "\n", sizeof(SECRET)), (ssize_t)sizeof(SECRET));
    close(fd);
    struct auth_jwt_config cfg;
    auth_jwt_config_defaults(&cfg);
    cfg.hs256_secret_file = secret_path;
    char err[256];
    memset(&sec, 0, sizeof(sec));
    sec.jwt = auth_jwt_new(&cfg, err, sizeof(err));
    ck_assert_msg(sec.jwt != NULL, "%s", err);
}

static void jwt_teardown(void)
{
    auth_jwt_free(sec.jwt);
    sec.jwt = NULL;
    unlink(secret_path);
}

/* A session's identity as CONNECT made it from token. */
static void connect_with(struct auth_identity *id, const char *token)
{
    char err[256];
    memset(id, 0, sizeof(*id));
    ck_assert_msg(auth_jwt_verify(sec.jwt, token, strlen(token), NOW_S, id, err, sizeof(err)) == 0,
                  "%s", err);
}

START_TEST(test_replace_same_sub)
{
    char *first = token_for("tina", 10, "{\"read\":[\"/topic/a.*\"]}");
    struct auth_identity id;
    connect_with(&id, first);
    ck_assert(security_allows(&sec, &id, AUTH_READ, "/topic/a.x", 10));

    char *second = token_for("tina", 3600, "{\"read\":[\"/topic/b.*\"]}");
    char reason[256] = "";
    ck_assert_int_eq(
        token_refresh_replace(&sec, &id, second, strlen(second), NOW_MS, reason, sizeof(reason)),
        0);
    ck_assert_str_eq(id.user, "tina");
    ck_assert_int_eq(id.expires_at, NOW_S + 3600);
    /* The new grants replace the old ones. */
    ck_assert(security_allows(&sec, &id, AUTH_READ, "/topic/b.x", 10));
    ck_assert(!security_allows(&sec, &id, AUTH_READ, "/topic/a.x", 10));

    /* A token ending sooner than the current one is taken as well: the issuer's newest word. */
    char *shorter = token_for("tina", 5, NULL);
    ck_assert_int_eq(
        token_refresh_replace(&sec, &id, shorter, strlen(shorter), NOW_MS, reason, sizeof(reason)),
        0);
    ck_assert_int_eq(id.expires_at, NOW_S + 5);
    auth_identity_reset(&id);
    free(first);
    free(second);
    free(shorter);
}
END_TEST

START_TEST(test_replace_refused)
{
    char *mine = token_for("tina", 10, "{\"read\":[\"/topic/a.*\"]}");
    char *other = token_for("walt", 3600, NULL);
    char *late = token_for("tina", -5, NULL); /* inside the 30 s leeway, yet over */
    char *gone = token_for("tina", -3600, NULL);
    char *forged = make_token("{\"sub\":\"tina\",\"exp\":1900000000}",
                              "another-secret-another-secret-another");
    static const char garbage[] = "not.a.token";
    const struct {
        const char *token;
        int rc;
        const char *reason;
    } cases[] = {
        {other, TOKEN_REFRESH_ERR_OTHER_SUB, "the new token is for another user (sub)"},
        {late, TOKEN_REFRESH_ERR_EXPIRED, "the new token has expired"},
        {gone, TOKEN_REFRESH_ERR_INVALID, "invalid token: token expired"},
        {forged, TOKEN_REFRESH_ERR_INVALID, "invalid token: bad signature"},
        {garbage, TOKEN_REFRESH_ERR_INVALID, NULL},
        {"", TOKEN_REFRESH_ERR_MISSING, "a token refresh needs a token header"},
        {NULL, TOKEN_REFRESH_ERR_MISSING, "a token refresh needs a token header"},
    };
    struct auth_identity id;
    connect_with(&id, mine);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char reason[256] = "";
        const char *t = cases[i].token;
        ck_assert_int_eq(token_refresh_replace(&sec, &id, t, t != NULL ? strlen(t) : 0, NOW_MS,
                                               reason, sizeof(reason)),
                         cases[i].rc);
        if (cases[i].reason != NULL)
            ck_assert_str_eq(reason, cases[i].reason);
        /* The session's identity is untouched by a refusal. */
        ck_assert_str_eq(id.user, "tina");
        ck_assert_int_eq(id.expires_at, NOW_S + 10);
        ck_assert(security_allows(&sec, &id, AUTH_READ, "/topic/a.x", 10));
    }
    auth_identity_reset(&id);
    free(mine);
    free(other);
    free(late);
    free(gone);
    free(forged);
}
END_TEST

START_TEST(test_replace_needs_a_token_session)
{
    char *token = token_for("ursula", 3600, NULL);
    char reason[256] = "";
    /* A users-file login: same name, no exp. */
    struct auth_identity id = {0};
    snprintf(id.user, sizeof(id.user), "ursula");
    ck_assert_int_eq(
        token_refresh_replace(&sec, &id, token, strlen(token), NOW_MS, reason, sizeof(reason)),
        TOKEN_REFRESH_ERR_NOT_TOKEN);
    ck_assert_int_eq(id.expires_at, 0);
    /* Anonymous. */
    struct auth_identity anon = {0};
    ck_assert_int_eq(
        token_refresh_replace(&sec, &anon, token, strlen(token), NOW_MS, reason, sizeof(reason)),
        TOKEN_REFRESH_ERR_NOT_TOKEN);
    /* A token session after a reload that removed the keys. */
    struct auth_identity tok;
    connect_with(&tok, token);
    struct security none = {0};
    ck_assert_int_eq(
        token_refresh_replace(&none, &tok, token, strlen(token), NOW_MS, reason, sizeof(reason)),
        TOKEN_REFRESH_ERR_INVALID);
    auth_identity_reset(&tok);
    free(token);
}
END_TEST

static Suite *token_refresh_suite(void)
{
    Suite *s = suite_create("token_refresh");
    TCase *pure = tcase_create("schedule");
    tcase_add_test(pure, test_destinations);
    tcase_add_test(pure, test_deadline_schedule);
    tcase_add_test(pure, test_seconds_left);
    tcase_add_test(pure, test_warning_message);
    suite_add_tcase(s, pure);
    TCase *replace = tcase_create("replace");
    tcase_add_unchecked_fixture(replace, jwt_setup, jwt_teardown);
    tcase_add_test(replace, test_replace_same_sub);
    tcase_add_test(replace, test_replace_refused);
    tcase_add_test(replace, test_replace_needs_a_token_session);
    suite_add_tcase(s, replace);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(token_refresh_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
