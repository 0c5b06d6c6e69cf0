#include "broker/http/admin_path.h"
#include "broker/base/url.h"

#include <stdio.h>
#include <string.h>

#define CONNECTIONS  "/api/connections"
#define DESTINATIONS "/api/destinations"
#define USERS        "/api/users"
#define DISCONNECT   "/disconnect"

static bool has_prefix(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(s, prefix, n) == 0;
}

static bool is_exactly(const char *s, size_t len, const char *want)
{
    return len == strlen(want) && memcmp(s, want, len) == 0;
}

/* prefix alone, or prefix followed by '/' and anything. */
static bool is_under(const char *s, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return has_prefix(s, len, prefix) && (len == n || s[n] == '/');
}

bool admin_path_claims(const char *path, size_t len)
{
    return is_under(path, len, CONNECTIONS) || is_under(path, len, DESTINATIONS) ||
           is_under(path, len, USERS);
}

/*
 * Percent-decodes src into out (ADMIN_ARG_MAX + 1 bytes, NUL-terminated); '+' is a space in a
 * query value. Refuses a bad escape, a value too long, and control octets (a login or a
 * destination never holds one, and they would end up in logs). The length, or -1.
 */
static int decode(const char *src, size_t len, bool plus_is_space, char *out)
{
    long n = url_decode(src, len, plus_is_space, out, ADMIN_ARG_MAX);
    if (n < 0)
        return -1;
    for (long i = 0; i < n; i++)
        if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
            return -1;
    out[n] = '\0';
    return (int)n;
}

static int fail(struct admin_request_line *out, int rc, const char *why)
{
    out->error = why;
    return rc;
}

/* The method a route takes: 0, or ADMIN_PATH_BAD_METHOD naming it in out->allow. */
static int want_method(struct admin_request_line *out, const char *method, size_t len,
                       const char *want)
{
    if (is_exactly(method, len, want))
        return 0;
    out->allow = want;
    return fail(out, ADMIN_PATH_BAD_METHOD, "method not allowed on this admin route");
}

/* The path parameter: decoded, not empty, no '/' in it (it is one segment of the path). */
static int take_arg(struct admin_request_line *out, const char *seg, size_t len, const char *what)
{
    int n = len > 0 ? decode(seg, len, false, out->arg) : -1;
    if (n <= 0 || memchr(out->arg, '/', (size_t)n) != NULL)
        return fail(out, ADMIN_PATH_BAD_ARG, what);
    out->arg_len = (size_t)n;
    return 0;
}

/* The route of the path alone, with its parameter. */
static int parse_route(struct admin_request_line *out, const char *method, size_t method_len,
                       const char *path, size_t len)
{
    size_t n;
    if (is_exactly(path, len, CONNECTIONS)) {
        out->route = ADMIN_LIST_CONNECTIONS;
        return want_method(out, method, method_len, "GET");
    }
    if (is_exactly(path, len, DESTINATIONS)) {
        out->route = ADMIN_LIST_DESTINATIONS;
        return want_method(out, method, method_len, "GET");
    }
    if (has_prefix(path, len, CONNECTIONS "/")) {
        n = strlen(CONNECTIONS "/");
        out->route = ADMIN_KICK_CONNECTION;
        if (memchr(path + n, '/', len - n) != NULL)
            return fail(out, ADMIN_PATH_NOT_FOUND, "no admin route at this path");
        int rc = want_method(out, method, method_len, "DELETE");
        return rc != 0 ? rc : take_arg(out, path + n, len - n, "bad connection id in the path");
    }
    n = strlen(USERS "/");
    size_t tail = strlen(DISCONNECT);
    if (has_prefix(path, len, USERS "/") && len > n + tail &&
        is_exactly(path + len - tail, tail, DISCONNECT) &&
        memchr(path + n, '/', len - n - tail) == NULL) {
        out->route = ADMIN_KICK_USER;
        int rc = want_method(out, method, method_len, "POST");
        return rc != 0 ? rc : take_arg(out, path + n, len - n - tail, "bad login in the path");
    }
    return fail(out, ADMIN_PATH_NOT_FOUND, "no admin route at this path");
}

/* One name=value pair of the query: the route's one filter, or a 400. */
static int take_param(struct admin_request_line *out, const char *pair, size_t len)
{
    const char *want = out->route == ADMIN_LIST_CONNECTIONS    ? "user"
                       : out->route == ADMIN_LIST_DESTINATIONS ? "prefix"
                                                               : NULL;
    const char *eq = memchr(pair, '=', len);
    size_t name_len = eq != NULL ? (size_t)(eq - pair) : len;
    if (len == 0)
        return 0; /* "a=1&&b=2", or a trailing '&' */
    if (want == NULL || !is_exactly(pair, name_len, want))
        return fail(out, ADMIN_PATH_BAD_QUERY,
                    want == NULL ? "this admin route takes no query parameter"
                    : out->route == ADMIN_LIST_CONNECTIONS
                        ? "unknown query parameter: GET /api/connections takes only user"
                        : "unknown query parameter: GET /api/destinations takes only prefix");
    if (out->has_filter)
        return fail(out, ADMIN_PATH_BAD_QUERY, "query parameter given more than once");
    size_t value_len = eq != NULL ? len - name_len - 1 : 0;
    int n = decode(eq != NULL ? eq + 1 : pair + len, value_len, true, out->filter);
    if (n < 0)
        return fail(out, ADMIN_PATH_BAD_QUERY,
                    "bad query value: a bad %-escape, a control character, or over 256 bytes");
    if (n == 0 && out->route == ADMIN_LIST_CONNECTIONS)
        return fail(out, ADMIN_PATH_BAD_QUERY, "empty user");
    out->filter_len = (size_t)n;
    out->has_filter = true;
    return 0;
}

int admin_path_parse(const char *method, size_t method_len, const char *path, size_t path_len,
                     const char *query, size_t query_len, struct admin_request_line *out)
{
    memset(out, 0, sizeof(*out));
    int rc = parse_route(out, method, method_len, path, path_len);
    size_t start = 0;
    for (size_t i = 0; rc == 0 && query != NULL && i <= query_len; i++) {
        if (i < query_len && query[i] != '&')
            continue;
        rc = take_param(out, query + start, i - start);
        start = i + 1;
    }
    return rc;
}

size_t admin_conn_id_format(char *out, const char *node, uint64_t n)
{
    if (strlen(node) > ADMIN_NODE_MAX)
        return 0;
    int len = snprintf(out, ADMIN_CONN_ID_MAX, "%s-%llu", node, (unsigned long long)n);
    return len > 0 && len < ADMIN_CONN_ID_MAX ? (size_t)len : 0;
}

int admin_conn_id_parse(const char *id, size_t len, char *node, uint64_t *n)
{
    size_t dash = len;
    while (dash > 0 && id[dash - 1] != '-')
        dash--;
    if (dash < 2 || dash - 1 > ADMIN_NODE_MAX || dash == len || len - dash > 20 ||
        (id[dash] == '0' && len - dash > 1))
        return -1;
    uint64_t value = 0;
    for (size_t i = dash; i < len; i++) {
        if (id[i] < '0' || id[i] > '9')
            return -1;
        uint64_t digit = (uint64_t)(id[i] - '0');
        if (value > (UINT64_MAX - digit) / 10)
            return -1;
        value = value * 10 + digit;
    }
    for (size_t i = 0; i + 1 < dash; i++)
        if (id[i] <= ' ' || id[i] > '~')
            return -1; /* node ids are printable ASCII without spaces (cluster.node_id) */
    memcpy(node, id, dash - 1);
    node[dash - 1] = '\0';
    *n = value;
    return 0;
}
