/*
 * security.h - who may connect and what they may touch: the broker's use of auth.h.
 *
 * Loads the users file, the ACL and the JWT keys named in [auth], decides at CONNECT who the
 * client is (a users-file login, a signed token, or anonymous when allowed), and at SUBSCRIBE and
 * SEND whether that identity may read or write a destination. Also the Origin allow-list checked
 * at the WebSocket handshake. No I/O beyond reading those files at load time.
 */
#ifndef STOMPWS_SECURITY_H
#define STOMPWS_SECURITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/auth/auth.h"
#include "broker/base/config.h"

struct security {
    struct auth_users *users;       /* owned, NULL = no users file */
    struct auth_acl *acl;           /* owned, NULL = no ACL: every destination allowed */
    struct auth_jwt *jwt;           /* owned, NULL = tokens not accepted */
    struct auth_throttle *throttle; /* owned: failed logins per address */
    bool anonymous;                 /* clients without credentials are let in */
};

/*
 * Loads everything [auth] names into sec (which may hold a previous load: it is replaced only
 * when the whole new load succeeds, so a SIGHUP with a broken file keeps the old settings).
 * Returns 0, or -1 with err naming the file and line.
 */
int security_load(struct security *sec, const struct config *cfg, char *err, size_t err_len);
void security_reset(struct security *sec);

/* The Origin allow-list (auth.allow_origin): empty allows any; a request without Origin (not a
 * browser, so no cross-site hijacking to fear) is allowed. */
bool security_origin_allowed(const struct config *cfg, const char *origin, size_t len);

/*
 * Who the client is. token is the bearer token from the handshake (Authorization header or
 * access_token query parameter) or NULL; login/passcode come from CONNECT (NULL when absent). A
 * passcode is taken as a token when tokens are configured and the login is absent, empty or
 * "jwt". Returns 0 with *id filled, or -1 with the reason in reason (for the log, not the client).
 */
int security_authenticate(const struct security *sec, const char *login, size_t login_len,
                          const char *passcode, size_t passcode_len, const char *token,
                          size_t token_len, int64_t now_s, struct auth_identity *id, char *reason,
                          size_t reason_len);

/*
 * security_authenticate in three steps, for a users-file login whose PBKDF2 hash runs on a worker
 * thread (the only slow case: tokens and anonymous logins are decided at once).
 *
 * security_authenticate_start decides what it can at once and returns 0 or -1 as
 * security_authenticate does, or SECURITY_PENDING with *pending: a copy of everything the hash
 * needs (the users file may be reloaded meanwhile), owned by the caller.
 * security_login_run hashes (any thread; touches only the login). security_login_finish gives
 * the answer security_authenticate would have given. security_login_free wipes the passcode.
 */
#define SECURITY_PENDING 1
struct security_login;
int security_authenticate_start(const struct security *sec, const char *login, size_t login_len,
                                const char *passcode, size_t passcode_len, const char *token,
                                size_t token_len, int64_t now_s, struct auth_identity *id,
                                char *reason, size_t reason_len, struct security_login **pending);
void security_login_run(struct security_login *l);
int security_login_finish(const struct security_login *l, struct auth_identity *id, char *reason,
                          size_t reason_len);
void security_login_free(struct security_login *l);

/* May id read (SUBSCRIBE) or write (SEND) dest? The token's grants when it has them, else the
 * ACL, else yes. */
bool security_allows(const struct security *sec, const struct auth_identity *id,
                     enum auth_verb verb, const char *dest, size_t len);

#endif
