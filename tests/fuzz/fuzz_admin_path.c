/*
 * fuzz_admin_path.c - libFuzzer harness for broker/http/admin_path: the admin API's path and
 * query parsing (issue #15) and the connection id's form.
 *
 * Input layout: byte 0 picks the method (GET, DELETE, POST, or the bytes themselves: % 4); the
 * rest is a request target, cut at its first '?' into path and query (no '?': no query), each
 * parsed from a heap block of exactly its size (ASan flags a read past it). The whole rest is
 * also parsed as a connection id.
 *
 * Invariants: a parse that succeeds names a route of a path admin_path_claims() takes; its
 * argument and filter are NUL-terminated at their lengths, at most ADMIN_ARG_MAX bytes, without
 * a control octet, and the argument (one path segment) without '/'; a list route has no
 * argument, a kick route no filter. A failure is one of the documented errors with a reason, and
 * a 405 names the method to use. A connection id that parses formats back to the same bytes.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "broker/http/admin_path.h"
#include "tests/fuzz/fuzz.h"

static void check_text(const char *text, size_t len, bool slash_allowed)
{
    CHECK(len <= ADMIN_ARG_MAX && text[len] == '\0' && strlen(text) == len);
    for (size_t i = 0; i < len; i++)
        CHECK((unsigned char)text[i] >= 0x20 && text[i] != 0x7f &&
              (slash_allowed || text[i] != '/'));
}

static void fuzz_line(const char *method, const char *target, size_t len)
{
    static struct admin_request_line line;
    const char *q = memchr(target, '?', len);
    size_t path_len = q != NULL ? (size_t)(q - target) : len;
    char *path = exact_copy((const uint8_t *)target, path_len);
    char *query = q != NULL ? exact_copy((const uint8_t *)q + 1, len - path_len - 1) : NULL;
    int rc = admin_path_parse(method, strlen(method), path, path_len, query,
                              q != NULL ? len - path_len - 1 : 0, &line);
    if (rc != 0) {
        CHECK(rc >= ADMIN_PATH_BAD_QUERY && rc <= ADMIN_PATH_NOT_FOUND);
        CHECK(line.error != NULL && line.error[0] != '\0');
        CHECK(rc != ADMIN_PATH_BAD_METHOD || line.allow != NULL);
    } else {
        CHECK(admin_path_claims(path, path_len));
        CHECK(line.route >= ADMIN_LIST_CONNECTIONS && line.route <= ADMIN_KICK_USER);
        check_text(line.arg, line.arg_len, false);
        check_text(line.filter, line.filter_len, true);
        bool list = line.route == ADMIN_LIST_CONNECTIONS || line.route == ADMIN_LIST_DESTINATIONS;
        CHECK(list ? line.arg_len == 0 : line.arg_len > 0 && !line.has_filter);
        CHECK(line.has_filter || line.filter_len == 0);
    }
    free(path);
    free(query);
}

static void fuzz_conn_id(const char *id, size_t len)
{
    char node[ADMIN_NODE_MAX + 1], back[ADMIN_CONN_ID_MAX];
    uint64_t n;
    if (admin_conn_id_parse(id, len, node, &n) != 0)
        return;
    CHECK(strlen(node) >= 1 && strlen(node) <= ADMIN_NODE_MAX);
    size_t back_len = admin_conn_id_format(back, node, n);
    CHECK(back_len == len && memcmp(back, id, len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const methods[] = {"GET", "DELETE", "POST", "PUT"};
    if (size < 1)
        return 0;
    char *rest = exact_copy(data + 1, size - 1);
    fuzz_line(methods[data[0] % 4], rest, size - 1);
    fuzz_conn_id(rest, size - 1);
    free(rest);
    return 0;
}
