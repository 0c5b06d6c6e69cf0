#include "broker/auth/security.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

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

int security_authenticate(const struct security *sec, const char *login, size_t login_len,
                          const char *passcode, size_t passcode_len, const char *token,
                          size_t token_len, int64_t now_s, struct auth_identity *id, char *reason,
                          size_t reason_len)
{
    auth_identity_reset(id);
    if (passcode != NULL && takes_token(sec, login, login_len)) {
        token = passcode;
        token_len = passcode_len;
    }
    if (token != NULL && sec->jwt != NULL)
        return auth_jwt_verify(sec->jwt, token, token_len, now_s, id, reason, reason_len) == 0 ? 0
                                                                                               : -1;
    if (login != NULL && login_len > 0) {
        if (sec->users != NULL && passcode != NULL &&
            auth_users_verify(sec->users, login, login_len, passcode, passcode_len)) {
            snprintf(id->user, sizeof(id->user), "%.*s", (int)login_len, login);
            return 0;
        }
        if (sec->users != NULL || !sec->anonymous) {
            snprintf(reason, reason_len, "bad login or passcode for '%.*s'",
                     (int)(login_len > 64 ? 64 : login_len), login);
            return -1;
        }
    }
    if (sec->anonymous)
        return 0; /* id->user stays "": anonymous */
    snprintf(reason, reason_len, "no credentials and anonymous access is off");
    return -1;
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
