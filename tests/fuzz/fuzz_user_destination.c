/*
 * fuzz_user_destination.c - libFuzzer harness for the /user/ destinations of broker/core/
 * destination.c and their ACL patterns (broker/auth/auth.c, where '/' separates segments under
 * /user/).
 *
 * Input layout: byte 0 picks the mode (bit 0) and the output room for a rewriting (bits 1-6: 0 to
 * 63 bytes beyond what the route needs, or short of it when bit 7 is set); in rewrite mode byte 1
 * is the login's length (cut to what is left), then the login; the rest is the destination.
 *
 * Route mode: the bytes, in a heap block of exactly their size (ASan flags any read past it), are
 * parsed as /user/LOGIN/(queue|topic)/NAME. The answer must agree with a reference check written
 * byte by byte here; an accepted route's parts must point inside it and rebuild it exactly, its
 * kind must be DEST_USER and never a wildcard, no /topic/ pattern may match it, and the ACL
 * patterns /user/# and /user/LOGIN/# must cover it unless it is deeper than the ACL allows.
 *
 * Rewrite mode: the subscriber's own form /user/(queue|topic)/NAME is rewritten for the login.
 * Success must mean: the login and name are valid, the output is NUL-terminated within the room
 * given, and parsing it gives back that login and the subscriber's "queue/NAME" or "topic/NAME".
 * Failure must name a real problem: too little room only when the route would not fit.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/auth/auth.h"
#include "broker/core/destination.h"
#include "tests/fuzz/fuzz.h"

/* UTF-8 as RFC 3629 has it: shortest forms, no surrogates, nothing above U+10FFFF. */
static bool ref_utf8(const uint8_t *s, size_t n)
{
    for (size_t i = 0; i < n;) {
        uint8_t c = s[i];
        size_t more = c < 0x80                 ? 0
                      : c >= 0xc2 && c <= 0xdf ? 1
                      : c >= 0xe0 && c <= 0xef ? 2
                      : c >= 0xf0 && c <= 0xf4 ? 3
                                               : 9;
        if (more == 9 || more >= n - i)
            return false;
        uint32_t cp = more == 0 ? c : c & (0x3f >> more);
        for (size_t k = 1; k <= more; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((more == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (more == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return false;
        i += more + 1;
    }
    return true;
}

static bool ref_text(const char *s, size_t n, bool slash_allowed)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f || (!slash_allowed && c == '/'))
            return false;
    }
    return ref_utf8((const uint8_t *)s, n);
}

static bool ref_login(const char *s, size_t n)
{
    return n >= 1 && n <= DESTINATION_USER_LOGIN_MAX && ref_text(s, n, false);
}

/* "queue/NAME" or "topic/NAME" with a valid NAME. */
static bool ref_kind(const char *s, size_t n)
{
    if (n < 7 || (strncmp(s, "queue/", 6) != 0 && strncmp(s, "topic/", 6) != 0))
        return false;
    return ref_text(s + 6, n - 6, true);
}

static bool ref_route(const char *s, size_t n)
{
    if (n < 6 || memcmp(s, "/user/", 6) != 0)
        return false;
    size_t i = 6;
    while (i < n && s[i] != '/')
        i++;
    return i < n && ref_login(s + 6, i - 6) && ref_kind(s + i + 1, n - i - 1);
}

static size_t count_char(const char *s, size_t n, char c)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == c;
    return k;
}

static void check_acl_covers(const char *route, size_t len, const struct destination_user *u)
{
    /* Segments after "/user/" are separated by '/': LOGIN, queue|topic, NAME's pieces. */
    bool within = count_char(route + 6, len - 6, '/') + 1 <= AUTH_MAX_SEGMENTS;
    CHECK(auth_pattern_covers("/user/#", 7, route, len) == within);
    /* A login with a blank or a wildcard character cannot be written in a pattern. */
    bool literal_login = memchr(u->login, '*', u->login_len) == NULL &&
                         memchr(u->login, '#', u->login_len) == NULL &&
                         memchr(u->login, ' ', u->login_len) == NULL;
    if (!literal_login)
        return;
    char pattern[6 + DESTINATION_USER_LOGIN_MAX + 3];
    memcpy(pattern, "/user/", 6);
    memcpy(pattern + 6, u->login, u->login_len);
    memcpy(pattern + 6 + u->login_len, "/#", 2);
    size_t plen = 6 + u->login_len + 2;
    CHECK(auth_pattern_valid(pattern, plen));
    CHECK(auth_pattern_covers(pattern, plen, route, len) == within);
}

static void route_mode(const uint8_t *data, size_t size)
{
    char *dest = exact_copy(data, size);
    struct destination_user u;
    int rc = destination_user_parse(dest, size, &u);
    CHECK((rc == 0) == ref_route(dest, size));
    CHECK(rc == 0 || rc == DEST_USER_ERR_FORM || rc == DEST_USER_ERR_LOGIN ||
          rc == DEST_USER_ERR_NAME);
    if (rc == 0) {
        CHECK(u.login == dest + 6 && u.login_len >= 1);
        CHECK(u.kind == u.login + u.login_len + 1 && u.kind + u.kind_len == dest + size);
        CHECK(dest[6 + u.login_len] == '/');
        CHECK(destination_kind(dest, size) == DEST_USER);
        CHECK(!destination_is_wildcard(dest, size));
        CHECK(!destination_matches("/topic/#", 8, dest, size));
        check_acl_covers(dest, size, &u);
    }
    free(dest);
}

static void rewrite_mode(uint8_t room_byte, const uint8_t *data, size_t size)
{
    if (size == 0)
        return;
    size_t login_len = data[0] < size - 1 ? data[0] : size - 1;
    char *login = exact_copy(data + 1, login_len);
    size_t len = size - 1 - login_len;
    char *dest = exact_copy(data + 1 + login_len, len);
    bool own = len >= 12 &&
               (memcmp(dest, "/user/queue/", 12) == 0 || memcmp(dest, "/user/topic/", 12) == 0);
    CHECK(own == destination_user_is_own(dest, len));
    size_t need = 6 + login_len + 1 + (len > 6 ? len - 6 : 0) + 1; /* with the NUL */
    size_t delta = room_byte & 0x3f;
    size_t cap = (room_byte & 0x40) ? (need > delta ? need - delta : 0) : need + delta;
    char *out = malloc(cap > 0 ? cap : 1);
    CHECK(out != NULL);
    int rc = destination_user_route(dest, len, login, login_len, out, cap);
    bool valid = own && ref_kind(dest + 6, len - 6) && ref_login(login, login_len);
    if (rc > 0) {
        CHECK(valid && (size_t)rc + 1 == need && (size_t)rc < cap && out[rc] == '\0');
        struct destination_user u;
        CHECK(destination_user_parse(out, (size_t)rc, &u) == 0);
        CHECK(u.login_len == login_len && memcmp(u.login, login, login_len) == 0);
        CHECK(u.kind_len == len - 6 && memcmp(u.kind, dest + 6, u.kind_len) == 0);
    } else {
        CHECK(rc == DEST_USER_ERR_FORM || rc == DEST_USER_ERR_LOGIN || rc == DEST_USER_ERR_NAME ||
              rc == DEST_USER_ERR_SPACE);
        CHECK(!valid || (rc == DEST_USER_ERR_SPACE && need > cap));
    }
    free(out);
    free(dest);
    free(login);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    if ((data[0] & 1) == 0)
        route_mode(data + 1, size - 1);
    else
        rewrite_mode((uint8_t)(data[0] >> 1), data + 1, size - 1);
    return 0;
}
