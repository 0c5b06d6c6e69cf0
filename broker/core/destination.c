#include "broker/core/destination.h"

#include "ws/utf8.h"

#include <assert.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

enum dest_kind destination_kind(const char *dest, size_t len)
{
    if (has_prefix(dest, len, TOPIC_PREFIX))
        return len > strlen(TOPIC_PREFIX) ? DEST_TOPIC : DEST_UNKNOWN;
    if (has_prefix(dest, len, QUEUE_PREFIX))
        return len > strlen(QUEUE_PREFIX) ? DEST_QUEUE : DEST_UNKNOWN;
    if (has_prefix(dest, len, TEMP_QUEUE_PREFIX))
        return len > strlen(TEMP_QUEUE_PREFIX) ? DEST_TEMP_QUEUE : DEST_UNKNOWN;
    if (has_prefix(dest, len, REPLY_QUEUE_PREFIX))
        return len > strlen(REPLY_QUEUE_PREFIX) ? DEST_REPLY_QUEUE : DEST_UNKNOWN;
    if (has_prefix(dest, len, USER_PREFIX))
        return len > strlen(USER_PREFIX) ? DEST_USER : DEST_UNKNOWN;
    return DEST_UNKNOWN;
}

int destination_split(const char *name, size_t len, struct destination_segments *s)
{
    const char *end = name + len;
    s->count = 0;
    for (const char *seg = name;;) {
        const char *dot = memchr(seg, '.', (size_t)(end - seg));
        if (s->count == DESTINATION_MAX_SEGMENTS)
            return -1;
        s->ptr[s->count] = seg;
        s->len[s->count++] = (size_t)((dot != NULL ? dot : end) - seg);
        if (dot == NULL)
            return 0;
        seg = dot + 1;
    }
}

bool destination_is_wildcard_segment(const char *seg, size_t len)
{
    return len == 1 && (seg[0] == '*' || seg[0] == '#');
}

bool destination_is_wildcard(const char *dest, size_t len)
{
    if (destination_kind(dest, len) != DEST_TOPIC)
        return false;
    size_t skip = strlen(TOPIC_PREFIX);
    struct destination_segments s;
    if (destination_split(dest + skip, len - skip, &s) != 0)
        return false;
    for (size_t i = 0; i < s.count; i++)
        if (destination_is_wildcard_segment(s.ptr[i], s.len[i]))
            return true;
    return false;
}

/*
 * Segment matching by dynamic programming from the ends: a client's pattern of many '#' would
 * take exponential time to match by backtracking. at[i][j]: pattern segments from i match name
 * segments from j.
 */
static bool segments_match(const struct destination_segments *pat,
                           const struct destination_segments *name)
{
    static_assert(DESTINATION_MAX_SEGMENTS <= 64, "the table is on the stack");
    bool at[DESTINATION_MAX_SEGMENTS + 1][DESTINATION_MAX_SEGMENTS + 1];
    for (size_t j = 0; j <= name->count; j++)
        at[pat->count][j] = j == name->count;
    for (size_t i = pat->count; i-- > 0;) {
        bool hash = pat->len[i] == 1 && pat->ptr[i][0] == '#';
        bool star = pat->len[i] == 1 && pat->ptr[i][0] == '*';
        for (size_t j = name->count + 1; j-- > 0;) {
            bool m;
            if (hash)
                m = at[i + 1][j] || (j < name->count && at[i][j + 1]);
            else
                m = j < name->count && at[i + 1][j + 1] &&
                    (star || (pat->len[i] == name->len[j] &&
                              memcmp(pat->ptr[i], name->ptr[j], name->len[j]) == 0));
            at[i][j] = m;
        }
    }
    return at[0][0];
}

bool destination_matches(const char *pattern, size_t pattern_len, const char *name, size_t name_len)
{
    size_t skip = strlen(TOPIC_PREFIX);
    struct destination_segments pat, segs;
    if (destination_kind(pattern, pattern_len) != DEST_TOPIC ||
        destination_kind(name, name_len) != DEST_TOPIC)
        return false;
    if (pattern_len == name_len && memcmp(pattern, name, name_len) == 0)
        return true;
    if (destination_split(pattern + skip, pattern_len - skip, &pat) != 0 ||
        destination_split(name + skip, name_len - skip, &segs) != 0)
        return false;
    return segments_match(&pat, &segs);
}

/* ---- user destinations ---- */

static bool has_control(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return true;
    return false;
}

bool destination_user_login_valid(const char *login, size_t len)
{
    return len > 0 && len <= DESTINATION_USER_LOGIN_MAX && memchr(login, '/', len) == NULL &&
           !has_control(login, len) && ws_utf8_valid((const uint8_t *)login, len);
}

/* Checks "queue/NAME" or "topic/NAME" (what follows the login). */
static int check_kind_and_name(const char *s, size_t len)
{
    static const size_t word = 6; /* strlen("queue/") == strlen("topic/") */
    if (len < word || (memcmp(s, "queue/", word) != 0 && memcmp(s, "topic/", word) != 0))
        return DEST_USER_ERR_FORM;
    const char *name = s + word;
    size_t name_len = len - word;
    if (name_len == 0 || has_control(name, name_len) ||
        !ws_utf8_valid((const uint8_t *)name, name_len))
        return DEST_USER_ERR_NAME;
    return 0;
}

int destination_user_parse(const char *dest, size_t len, struct destination_user *out)
{
    size_t skip = strlen(USER_PREFIX);
    if (!has_prefix(dest, len, USER_PREFIX))
        return DEST_USER_ERR_FORM;
    const char *login = dest + skip;
    const char *slash = memchr(login, '/', len - skip);
    if (slash == NULL)
        return DEST_USER_ERR_FORM;
    size_t login_len = (size_t)(slash - login);
    if (!destination_user_login_valid(login, login_len))
        return DEST_USER_ERR_LOGIN;
    const char *kind = slash + 1;
    size_t kind_len = len - skip - login_len - 1;
    int rc = check_kind_and_name(kind, kind_len);
    if (rc != 0)
        return rc;
    if (out != NULL)
        *out = (struct destination_user){
            .login = login, .login_len = login_len, .kind = kind, .kind_len = kind_len};
    return 0;
}

bool destination_user_is_own(const char *dest, size_t len)
{
    return has_prefix(dest, len, USER_PREFIX "queue/") ||
           has_prefix(dest, len, USER_PREFIX "topic/");
}

int destination_user_route(const char *dest, size_t len, const char *login, size_t login_len,
                           char *out, size_t cap)
{
    size_t skip = strlen(USER_PREFIX);
    if (!destination_user_is_own(dest, len))
        return DEST_USER_ERR_FORM;
    int rc = check_kind_and_name(dest + skip, len - skip);
    if (rc != 0)
        return rc;
    if (!destination_user_login_valid(login, login_len))
        return DEST_USER_ERR_LOGIN;
    /* "/user/" LOGIN "/" + what followed "/user/", and the NUL */
    size_t route_len = skip + login_len + 1 + (len - skip);
    if (route_len >= cap || route_len > INT_MAX)
        return DEST_USER_ERR_SPACE;
    memcpy(out, USER_PREFIX, skip);
    memcpy(out + skip, login, login_len);
    out[skip + login_len] = '/';
    memcpy(out + skip + login_len + 1, dest + skip, len - skip);
    out[route_len] = '\0';
    return (int)route_len;
}
