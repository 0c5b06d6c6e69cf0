/*
 * auth.h - who may connect, and what they may read and write.
 *
 * Four independent pieces: the users file (PBKDF2-HMAC-SHA256 password hashes), JWT verification
 * (HS256, RS256, ES256), the ACL file with its destination patterns, and a slow-down for failed
 * logins. docs/SECURITY.md describes the file formats, the token claims and the pattern rules.
 *
 * This module is logic only: no sockets, no libevent, no logging, no clock (time is passed in).
 * Files are read by the _load/_new functions and written only by auth_passwd_update_file (the
 * `stompws passwd` command). A refusal is a value; the broker turns it into an ERROR frame, a
 * close 1008 or an HTTP 401/403.
 */
#ifndef STOMPWS_AUTH_H
#define STOMPWS_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum auth_error {
    AUTH_ERR_NOMEM = -1,
    AUTH_ERR_IO = -2,      /* a file could not be read or written */
    AUTH_ERR_INVALID = -3, /* a bad argument or file line: user name, password, pattern */
    AUTH_ERR_SPACE = -4,   /* the output buffer is too small */
    AUTH_ERR_CRYPTO = -5,  /* OpenSSL failed (random bytes, PBKDF2, HMAC) */
    /* auth_jwt_verify: why a token was refused */
    AUTH_ERR_MALFORMED = -10,     /* not header.payload.signature of base64url JSON objects, or
                                     a claim missing or of the wrong type */
    AUTH_ERR_ALG = -11,           /* "alg" is not one the configuration accepts (never "none") */
    AUTH_ERR_SIGNATURE = -12,     /* bad signature */
    AUTH_ERR_EXPIRED = -13,       /* "exp" is in the past (beyond the leeway) */
    AUTH_ERR_NOT_YET_VALID = -14, /* "nbf" is in the future (beyond the leeway) */
    AUTH_ERR_AUDIENCE = -15,      /* "aud" does not name the configured audience */
    AUTH_ERR_ISSUER = -16,        /* "iss" is not the configured issuer */
};

/* Bytes of a user name including the NUL: names are 1..127 bytes. */
#define AUTH_USER_MAX 128

/* ---- Users file: one "user:$pbkdf2-sha256$ITERATIONS$SALT$HASH" line per user ---- */

#define AUTH_PBKDF2_DEFAULT_ITERATIONS 210000 /* OWASP 2023 for PBKDF2-HMAC-SHA256 */
#define AUTH_PBKDF2_MIN_ITERATIONS     1000
#define AUTH_PBKDF2_MAX_ITERATIONS     10000000 /* bounds the CPU one login attempt costs */
#define AUTH_PBKDF2_SALT_BYTES         16
#define AUTH_PBKDF2_HASH_BYTES         32
/* A buffer this size holds any line auth_passwd_entry writes (with its NUL, without '\n'). */
#define AUTH_PASSWD_ENTRY_MAX (AUTH_USER_MAX + 128)

struct auth_users;

/*
 * Loads a users file. '#' comments and blank lines are allowed; any other line must be a valid
 * entry, and a user may appear once. NULL with "FILE:LINE: why" in err on error.
 */
struct auth_users *auth_users_load(const char *path, char *err, size_t err_len);
void auth_users_free(struct auth_users *users);

/*
 * True when login names a user of the file and passcode is that user's password. Takes one
 * PBKDF2 run whether or not the user exists (an unknown user costs the iterations of the file's
 * first entry), and compares hashes in constant time, so timing tells nothing about which users
 * exist. Slow on purpose: call it where a blocked event loop for that long is acceptable, or
 * from a worker thread (it only reads `users`).
 */
bool auth_users_verify(const struct auth_users *users, const char *login, size_t login_len,
                       const char *passcode, size_t passcode_len);

/*
 * auth_users_verify in two halves, for a hash run on another thread: what one check needs, copied
 * out of the users file (which a reload may free meanwhile). auth_users_check_prepare is cheap
 * (a lookup); auth_password_check_run is the PBKDF2 run and touches nothing but its arguments.
 */
#define AUTH_PBKDF2_SALT_MAX_BYTES 64
struct auth_password_check {
    bool known; /* login names a user: false still costs a run (the decoy) */
    unsigned iterations;
    size_t salt_len;
    unsigned char salt[AUTH_PBKDF2_SALT_MAX_BYTES];
    unsigned char hash[AUTH_PBKDF2_HASH_BYTES];
};
/* False (check untouched) when users is NULL. */
bool auth_users_check_prepare(const struct auth_users *users, const char *login, size_t login_len,
                              struct auth_password_check *check);
bool auth_password_check_run(const struct auth_password_check *check, const char *passcode,
                             size_t passcode_len);

/*
 * True when name is a valid user name: 1..127 bytes, no ':', whitespace or control characters,
 * not starting with '#' (it would read as a comment) and not "*" (the ACL's "everyone").
 */
bool auth_user_name_valid(const char *name, size_t len);

/*
 * Writes one users-file line for user (without '\n') into out: a fresh 16-byte random salt and
 * PBKDF2-HMAC-SHA256 over password with `iterations` (0 = AUTH_PBKDF2_DEFAULT_ITERATIONS).
 * Returns the line length, AUTH_ERR_INVALID (bad user name, empty password, iterations out of
 * range), AUTH_ERR_SPACE (cap < AUTH_PASSWD_ENTRY_MAX is enough for any line) or
 * AUTH_ERR_CRYPTO.
 */
int auth_passwd_entry(char *out, size_t cap, const char *user, const char *password,
                      unsigned iterations);

/*
 * Adds user to the users file at path, or replaces that user's line; every other line and
 * comment is kept as it was. The file is created if missing and always left with mode 0600; it
 * is replaced atomically (temporary file in the same directory, fsync, rename), so a reader
 * sees the old file or the new one. A malformed existing file is not rewritten: the error names
 * its line. Returns 0 or a negative enum auth_error with a message in err.
 */
int auth_passwd_update_file(const char *path, const char *user, const char *password, char *err,
                            size_t err_len);

/* ---- JWT: the broker verifies tokens a backend issued; it never issues them ---- */

#define AUTH_JWT_DEFAULT_LEEWAY_S 30
#define AUTH_JWT_MAX_LEN          16384 /* longer tokens are refused unread */
#define AUTH_JWT_MIN_SECRET       32    /* HS256 secret bytes (RFC 7518 section 3.2) */
#define AUTH_JWT_GRANTS_CLAIM     "stomp"

struct auth_jwt_config {
    const char *hs256_secret_file; /* NULL = no HS256; trailing CR/LF of the file are dropped */
    const char *public_key_file;   /* NULL = none; PEM "PUBLIC KEY": RSA >= 2048 bits (RS256) or
                                      EC P-256 (ES256) */
    const char *audience;          /* NULL = not checked */
    const char *issuer;            /* NULL = not checked */
    unsigned leeway_s;             /* clock skew allowed on exp and nbf */
};

/* All NULL, leeway AUTH_JWT_DEFAULT_LEEWAY_S. */
void auth_jwt_config_defaults(struct auth_jwt_config *cfg);

struct auth_grants;

/* Who a connection is, once authenticated. */
struct auth_identity {
    char user[AUTH_USER_MAX];   /* the token's "sub", the users-file login, or "" (anonymous) */
    int64_t expires_at;         /* the token's "exp" (seconds since the epoch); 0 = never */
    struct auth_grants *grants; /* owned: the token's "stomp" claim; NULL = use the ACL file */
};

/* Frees the grants and empties the identity. An all-zero identity is a valid empty one. */
void auth_identity_reset(struct auth_identity *id);

struct auth_jwt;

/* Reads the secret and/or key (at least one). NULL with the reason in err. */
struct auth_jwt *auth_jwt_new(const struct auth_jwt_config *cfg, char *err, size_t err_len);
void auth_jwt_free(struct auth_jwt *jwt);

/*
 * Verifies a compact JWS (header.payload.signature, base64url without padding) at time `now`
 * (seconds since the epoch). The signature is checked with the key its "alg" names, and only
 * when that alg is configured: HS256 with the secret, RS256 or ES256 with the public key (ES256
 * signatures are JWS raw r||s, 64 bytes). Then exp (required), nbf, aud and iss, then "sub"
 * (required) and the optional "stomp" grants claim. On success fills `out` (which must be
 * all-zero or reset: it is reset first) and returns 0; otherwise returns a negative enum
 * auth_error, leaves `out` empty and puts the reason in err ("token expired", "bad signature").
 */
int auth_jwt_verify(const struct auth_jwt *jwt, const char *token, size_t len, int64_t now,
                    struct auth_identity *out, char *err, size_t err_len);

/* ---- Authorization: which destinations a user may read (SUBSCRIBE) and write (SEND) ---- */

enum auth_verb { AUTH_READ = 1, AUTH_WRITE = 2 };

/* Destinations and patterns deeper than this many segments are never allowed. Segments are
 * separated by '.', but by '/' under /user/ (so that `*` stands for one login). */
#define AUTH_MAX_SEGMENTS 128

struct auth_acl;

/*
 * Loads an ACL file: lines of "USER VERBS PATTERN" separated by blanks, USER a user name or "*"
 * (everyone, anonymous included), VERBS "read", "write" or "read,write", PATTERN a destination
 * pattern (see auth_pattern_covers). NULL with "FILE:LINE: why" in err on error.
 */
struct auth_acl *auth_acl_load(const char *path, char *err, size_t err_len);
void auth_acl_free(struct auth_acl *acl);

/*
 * True when a line for `user` or for "*" grants `verb` on a pattern covering dest (anonymous is
 * user ""). Default deny: false when no line does, and for a NULL acl.
 */
bool auth_acl_allows(const struct auth_acl *acl, const char *user, enum auth_verb verb,
                     const char *dest, size_t len);

/* The same check against a token's grants; false for NULL grants. */
bool auth_grants_allow(const struct auth_grants *grants, enum auth_verb verb, const char *dest,
                       size_t len);

/*
 * True when every destination `requested` can name is one `allowed` matches. Both are
 * "/PREFIX/REST": the "/PREFIX/" part must be equal; REST is split on '.', where a segment that
 * is exactly "*" matches one segment and "#" zero or more (RabbitMQ topic rules, as the router);
 * "a*" is a literal segment. A concrete destination is covered when the pattern matches it; a
 * wildcard subscription is covered only by a pattern that matches all it can receive:
 * "/topic/stocks.*" by "/topic/stocks.*" or "/topic/stocks.#", not by "/topic/stocks.ibm". The
 * check is exact (language inclusion), in O(segments of allowed x segments of requested).
 */
bool auth_pattern_covers(const char *allowed, size_t allowed_len, const char *requested,
                         size_t requested_len);

/* True when pattern is one an ACL line or a token claim may hold (see docs/SECURITY.md). */
bool auth_pattern_valid(const char *pattern, size_t len);

/* ---- Failed-login slow-down, keyed by source address ---- */

#define AUTH_THROTTLE_FREE_FAILURES 5     /* failures before any delay */
#define AUTH_THROTTLE_BASE_DELAY_MS 1000  /* delay after the free failures; doubles */
#define AUTH_THROTTLE_MAX_DELAY_MS  30000 /* cap of the delay */
#define AUTH_THROTTLE_WINDOW_MS                                                                    \
    600000                        /* an address is forgotten this long after its                   \
                                     last failure */
#define AUTH_THROTTLE_ADDR_MAX 64 /* longer keys are truncated (and so shared) */

struct auth_throttle;

/*
 * A table of at most max_entries addresses (rounded up to a multiple of 8), allocated once: when
 * it is full a new address evicts the one with the oldest failure among 8 candidates. NULL when
 * max_entries is 0 or out of memory.
 */
struct auth_throttle *auth_throttle_new(size_t max_entries);
void auth_throttle_free(struct auth_throttle *t);

/*
 * How long (ms) a login attempt from addr at now_ms must wait before it is checked: 0 until the
 * address has AUTH_THROTTLE_FREE_FAILURES failures, then BASE_DELAY_MS doubling with each
 * further failure up to MAX_DELAY_MS, counted from the last failure.
 */
int64_t auth_throttle_delay_ms(struct auth_throttle *t, const char *addr, int64_t now_ms);
void auth_throttle_failure(struct auth_throttle *t, const char *addr, int64_t now_ms);
/* A successful login forgets the address's failures. */
void auth_throttle_success(struct auth_throttle *t, const char *addr);
/* Addresses remembered at now_ms (for metrics). */
size_t auth_throttle_count(const struct auth_throttle *t, int64_t now_ms);

#endif
