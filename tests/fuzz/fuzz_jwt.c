/*
 * fuzz_jwt.c - libFuzzer harness for broker/auth's JWT verification (auth_jwt_verify()): the
 * tokens come from clients (the CONNECT passcode, the handshake's Authorization header or its
 * access_token parameter, the token header of a refresh SEND to /user/queue/stompws.token), so
 * every byte of them is attacker-chosen.
 *
 * Input layout: byte 0 is the mode.
 *   bit 0 = 0  the rest is a compact token as a client would send it, verified as it is: the
 *              base64url, the dots, the lengths and the header's JSON are all fuzzed.
 *   bit 0 = 1  the rest is "HEADER\0PAYLOAD": the harness base64url-encodes both and signs them
 *              with the configured HS256 secret, so the token passes the signature check and the
 *              fuzzer reaches the claims (exp, nbf, aud, iss, sub, the "stomp" grants claim).
 *   bit 1      aud and iss are configured ("stompws", "issuer") or not.
 *   bits 2-3   the size of the caller's error buffer: roomy, or small enough to cut every message.
 *
 * Checks: the answer is 0 or a negative enum auth_error; a refusal leaves the identity empty and
 * an error message that is never empty and ends inside the caller's buffer (nothing is written
 * past it: a fence follows); an acceptance names a user that is non-empty, shorter than
 * AUTH_USER_MAX and free of control characters, with an expiry after `now - leeway`; verifying
 * the same token again gives the same answer and the same user. Grants are freed by
 * auth_identity_reset() (LeakSanitizer).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "broker/auth/auth.h"
#include "tests/fuzz/fuzz.h"

#define NOW     1800000000 /* a fixed clock: 2027-01-15 */
#define SECRET  "fuzzing-secret-of-at-least-32-bytes!"
#define ERR_MAX 256
#define FENCE   0x5a

static const size_t err_sizes[4] = {ERR_MAX, 24, 1, 8};

static struct auth_jwt *jwts[2]; /* without, and with, aud and iss */

/* Writes the secret to a file once and loads both configurations from it. */
static void setup(void)
{
    char path[] = "/tmp/stompws-fuzz-jwt-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    CHECK(write(fd, SECRET "\n", sizeof(SECRET)) == (ssize_t)sizeof(SECRET));
    close(fd);
    for (int i = 0; i < 2; i++) {
        struct auth_jwt_config cfg;
        auth_jwt_config_defaults(&cfg);
        cfg.hs256_secret_file = path;
        cfg.audience = i == 1 ? "stompws" : NULL;
        cfg.issuer = i == 1 ? "issuer" : NULL;
        char err[ERR_MAX];
        jwts[i] = auth_jwt_new(&cfg, err, sizeof(err));
        CHECK(jwts[i] != NULL);
    }
    unlink(path);
}

/* base64url without padding of in[0..len) appended at out; returns the bytes written. */
static size_t b64url(const uint8_t *in, size_t len, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = 0;
    for (size_t i = 0; i < len; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < len)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < len)
            v |= in[i + 2];
        out[n++] = abc[(v >> 18) & 63];
        out[n++] = abc[(v >> 12) & 63];
        if (i + 1 < len)
            out[n++] = abc[(v >> 6) & 63];
        if (i + 2 < len)
            out[n++] = abc[v & 63];
    }
    return n;
}

/* "b64(header).b64(payload).b64(HS256 over the first two)" in a new buffer; *len its length. */
static char *signed_token(const uint8_t *data, size_t size, size_t *len)
{
    const uint8_t *nul = memchr(data, '\0', size);
    size_t header_len = nul != NULL ? (size_t)(nul - data) : size;
    const uint8_t *payload = nul != NULL ? nul + 1 : data + size;
    size_t payload_len = (size_t)(data + size - payload);
    char *token = malloc(2 * size + 64);
    CHECK(token != NULL);
    size_t n = b64url(data, header_len, token);
    token[n++] = '.';
    n += b64url(payload, payload_len, token + n);
    uint8_t mac[EVP_MAX_MD_SIZE];
    unsigned mac_len = 0;
    CHECK(HMAC(EVP_sha256(), SECRET, (int)strlen(SECRET), (const uint8_t *)token, n, mac,
               &mac_len) != NULL);
    token[n++] = '.';
    n += b64url(mac, mac_len, token + n);
    *len = n;
    return token;
}

static bool user_valid(const char *user)
{
    size_t len = strnlen(user, AUTH_USER_MAX);
    if (len == 0 || len >= AUTH_USER_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)user[i] < ' ' || user[i] == 0x7f)
            return false;
    return true;
}

/* One verification, with every check on its answer; returns rc and copies the user out. */
static int verify(const struct auth_jwt *jwt, const char *token, size_t len, size_t err_size,
                  char user[AUTH_USER_MAX])
{
    char err[ERR_MAX + 16];
    memset(err, FENCE, sizeof(err));
    struct auth_identity id = {0};
    int rc = auth_jwt_verify(jwt, token, len, NOW, &id, err, err_size);
    for (size_t i = err_size; i < sizeof(err); i++)
        CHECK((unsigned char)err[i] == FENCE);
    if (rc == 0) {
        CHECK(user_valid(id.user));
        CHECK(id.expires_at > NOW - AUTH_JWT_DEFAULT_LEEWAY_S);
        memcpy(user, id.user, AUTH_USER_MAX);
    } else {
        CHECK(rc < 0);
        CHECK(id.user[0] == '\0' && id.grants == NULL && id.expires_at == 0);
        CHECK(memchr(err, '\0', err_size) != NULL);
        CHECK(err_size == 1 || err[0] != '\0');
        user[0] = '\0';
    }
    auth_identity_reset(&id);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (jwts[0] == NULL)
        setup();
    if (size < 1)
        return 0;
    uint8_t mode = data[0];
    const struct auth_jwt *jwt = jwts[(mode >> 1) & 1];
    size_t err_size = err_sizes[(mode >> 2) & 3];
    size_t len;
    char *token;
    if (mode & 1) {
        token = signed_token(data + 1, size - 1, &len);
    } else {
        len = size - 1;
        token = malloc(len + 1);
        CHECK(token != NULL);
        memcpy(token, data + 1, len);
    }
    char first[AUTH_USER_MAX], again[AUTH_USER_MAX];
    int rc = verify(jwt, token, len, err_size, first);
    CHECK(verify(jwt, token, len, err_size, again) == rc);
    CHECK(strcmp(first, again) == 0);
    free(token);
    return 0;
}
