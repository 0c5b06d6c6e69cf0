#include "broker/auth/security.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

/* Auth state loaded from files, built aside and swapped in whole. */
static int load_parts(struct security *fresh, const struct config *cfg, char *err, size_t len)
{
    if (cfg->auth_users[0] != '\0' &&
        (fresh->users = auth_users_load(cfg->auth_users, err, len)) == NULL)
        return -1;
    if (cfg->auth_acl[0] != '\0' && (fresh->acl = auth_acl_load(cfg->auth_acl, err, len)) == NULL)
        return -1;
    if (cfg->auth_jwt_hs256_secret_file[0] != '\0' || cfg->auth_jwt_public_key[0] != '\0') {
        struct auth_jwt_config jc;
        auth_jwt_config_defaults(&jc);
        jc.hs256_secret_file =
            cfg->auth_jwt_hs256_secret_file[0] ? cfg->auth_jwt_hs256_secret_file : NULL;
        jc.public_key_file = cfg->auth_jwt_public_key[0] ? cfg->auth_jwt_public_key : NULL;
        jc.audience = cfg->auth_jwt_audience[0] ? cfg->auth_jwt_audience : NULL;
        jc.issuer = cfg->auth_jwt_issuer[0] ? cfg->auth_jwt_issuer : NULL;
        if ((fresh->jwt = auth_jwt_new(&jc, err, len)) == NULL)
            return -1;
    }
    return 0;
}

int security_load(struct security *sec, const struct config *cfg, char *err, size_t err_len)
{
    struct security fresh = {0};
    if (load_parts(&fresh, cfg, err, err_len) != 0) {
        fresh.throttle = NULL;
        security_reset(&fresh);
        return -1;
    }
    /* Anonymous access is a switch, off by default once credentials exist. */
    if (strcmp(cfg->auth_anonymous, "auto") == 0)
        fresh.anonymous = fresh.users == NULL && fresh.jwt == NULL;
    else
        fresh.anonymous = strcmp(cfg->auth_anonymous, "on") == 0;
    fresh.throttle = sec->throttle != NULL ? sec->throttle : auth_throttle_new(4096);
    if (fresh.throttle == NULL) {
        security_reset(&fresh);
        snprintf(err, err_len, "out of memory");
        return -1;
    }
    sec->throttle = NULL; /* carried over: failures survive a reload */
    security_reset(sec);
    *sec = fresh;
    return 0;
}

void security_reset(struct security *sec)
{
    auth_users_free(sec->users);
    auth_acl_free(sec->acl);
    auth_jwt_free(sec->jwt);
    auth_throttle_free(sec->throttle);
    memset(sec, 0, sizeof(*sec));
}

bool security_origin_allowed(const struct config *cfg, const char *origin, size_t len)
{
    const char *list = cfg->auth_allow_origin;
    if (list[0] == '\0' || origin == NULL)
        return true;
    for (const char *p = list; *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        while (n > 0 && (*p == ' ' || *p == '\t')) {
            p++;
            n--;
        }
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        if (n == len && strncasecmp(p, origin, len) == 0)
            return true;
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return false;
}

static bool takes_token(const struct security *sec, const char *login, size_t login_len)
{
    return sec->jwt != NULL &&
           (login == NULL || login_len == 0 || (login_len == 3 && memcmp(login, "jwt", 3) == 0));
}

/* A users-file login waiting for its hash. */
struct security_login {
    struct auth_password_check check;
    bool ok;                   /* security_login_run's answer */
    char login[AUTH_USER_MAX]; /* the login as sent, cut to fit (a longer one is no user) */
    size_t login_len;          /* as sent */
    size_t passcode_len;
    char passcode[]; /* owned copy, wiped by security_login_free */
};

static int refuse_login(const char *login, size_t login_len, char *reason, size_t reason_len)
{
    snprintf(reason, reason_len, "bad login or passcode for '%.*s'",
             (int)(login_len > 64 ? 64 : login_len), login);
    return -1;
}

int security_authenticate_start(const struct security *sec, const char *login, size_t login_len,
                                const char *passcode, size_t passcode_len, const char *token,
                                size_t token_len, int64_t now_s, struct auth_identity *id,
                                char *reason, size_t reason_len, struct security_login **pending)
{
    auth_identity_reset(id);
    *pending = NULL;
    if (passcode != NULL && takes_token(sec, login, login_len)) {
        token = passcode;
        token_len = passcode_len;
    }
    if (token != NULL && sec->jwt != NULL)
        return auth_jwt_verify(sec->jwt, token, token_len, now_s, id, reason, reason_len) == 0 ? 0
                                                                                               : -1;
    if (login != NULL && login_len > 0) {
        if (sec->users != NULL && passcode != NULL) {
            struct security_login *l = malloc(sizeof(*l) + passcode_len + 1);
            if (l == NULL) {
                snprintf(reason, reason_len, "out of memory checking the passcode");
                return -1;
            }
            auth_users_check_prepare(sec->users, login, login_len, &l->check);
            l->ok = false;
            l->login_len = login_len;
            size_t kept = login_len < sizeof(l->login) - 1 ? login_len : sizeof(l->login) - 1;
            memcpy(l->login, login, kept);
            l->login[kept] = '\0';
            l->passcode_len = passcode_len;
            memcpy(l->passcode, passcode, passcode_len);
            l->passcode[passcode_len] = '\0';
            *pending = l;
            return SECURITY_PENDING;
        }
        if (sec->users != NULL || !sec->anonymous)
            return refuse_login(login, login_len, reason, reason_len);
    }
    if (sec->anonymous)
        return 0; /* id->user stays "": anonymous */
    snprintf(reason, reason_len, "no credentials and anonymous access is off");
    return -1;
}

void security_login_run(struct security_login *l)
{
    l->ok = l->passcode_len <= INT_MAX &&
            auth_password_check_run(&l->check, l->passcode, l->passcode_len);
}

int security_login_finish(const struct security_login *l, struct auth_identity *id, char *reason,
                          size_t reason_len)
{
    auth_identity_reset(id);
    if (!l->ok)
        return refuse_login(l->login, l->login_len, reason, reason_len);
    snprintf(id->user, sizeof(id->user), "%.*s", (int)l->login_len, l->login);
    return 0;
}

void security_login_free(struct security_login *l)
{
    if (l == NULL)
        return;
    OPENSSL_cleanse(l->passcode, l->passcode_len);
    free(l);
}

int security_authenticate(const struct security *sec, const char *login, size_t login_len,
                          const char *passcode, size_t passcode_len, const char *token,
                          size_t token_len, int64_t now_s, struct auth_identity *id, char *reason,
                          size_t reason_len)
{
    struct security_login *l;
    int rc = security_authenticate_start(sec, login, login_len, passcode, passcode_len, token,
                                         token_len, now_s, id, reason, reason_len, &l);
    if (rc != SECURITY_PENDING)
        return rc;
    security_login_run(l);
    rc = security_login_finish(l, id, reason, reason_len);
    security_login_free(l);
    return rc;
}

bool security_allows(const struct security *sec, const struct auth_identity *id,
                     enum auth_verb verb, const char *dest, size_t len)
{
    if (id->grants != NULL)
        return auth_grants_allow(id->grants, verb, dest, len);
    if (sec->acl != NULL)
        return auth_acl_allows(sec->acl, id->user, verb, dest, len);
    return true;
}
