/*
 * fuzz_ws_handshake.c - libFuzzer harness for ws/handshake: the HTTP upgrade request parser, the
 * upgrade decision (subprotocol choice, Sec-WebSocket-Accept) and the response builders.
 *
 * Input layout: byte 0 picks max_header_bytes (the default, or small so that 431 is reachable);
 * bytes 1..2 seed the sizes of the pieces the request arrives in; the rest is the request as the
 * socket would deliver it. The whole request is parsed from a heap block of exactly its size (so
 * ASan flags any read past it) and every result is checked to point inside the head. Then the
 * request is fed the way conn.c feeds it: a growing buffer re-parsed after each piece, each prefix
 * in its own exact-size block; every prefix must answer WS_HTTP_INCOMPLETE or exactly what the
 * whole request answers (same length, same fields). A parsed request goes through
 * ws_upgrade_check(), whose verdict and subprotocol are compared with a reference computed here
 * from the header lines, and the response builders (101, the error answer, a plain 200 echoing the
 * target) run at the exact buffer size, one byte short and with room to spare.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws/handshake.h"
#include "tests/fuzz/fuzz.h"

/* Pieces fed one at a time before the rest of the request arrives at once (bounds the work). */
#define MAX_PIECES 64

static const size_t header_limits[4] = {WS_DEFAULT_MAX_HEADER_BYTES, 1024, 256, 64};

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

static bool slice_ieq(struct ws_slice s, const char *lit)
{
    size_t n = strlen(lit);
    if (s.len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower(s.ptr[i]) != lower(lit[i]))
            return false;
    return true;
}

/* A slice is absent, the static "/" of an absolute-form target, or inside buf[0..len). */
static void check_slice(struct ws_slice s, const char *buf, size_t len)
{
    if (s.ptr == NULL) {
        CHECK(s.len == 0);
        return;
    }
    if (s.len == 1 && s.ptr[0] == '/' && (s.ptr < buf || s.ptr >= buf + len))
        return;
    CHECK(s.ptr >= buf && s.ptr <= buf + len);
    CHECK(s.len <= (size_t)(buf + len - s.ptr));
}

/* Field values have no CR, LF or other control octet (HTAB aside) and no surrounding OWS. */
static void check_value(struct ws_slice v)
{
    for (size_t i = 0; i < v.len; i++) {
        unsigned char c = (unsigned char)v.ptr[i];
        CHECK(c == '\t' || (c >= 0x20 && c != 0x7F));
    }
    if (v.len > 0) {
        CHECK(v.ptr[0] != ' ' && v.ptr[0] != '\t');
        CHECK(v.ptr[v.len - 1] != ' ' && v.ptr[v.len - 1] != '\t');
    }
}

/* A buffer a request was parsed from. */
struct view {
    const char *buf;
    size_t len;
};

/* Offset of a slice in its buffer, so requests parsed from different copies compare. */
static size_t offset_of(struct ws_slice s, struct view v)
{
    if (s.ptr == NULL)
        return SIZE_MAX;
    if (s.ptr < v.buf || s.ptr > v.buf + v.len)
        return SIZE_MAX - 1; /* the static "/" */
    return (size_t)(s.ptr - v.buf);
}

static bool same_slice(struct ws_slice a, struct view av, struct ws_slice b, struct view bv)
{
    return a.len == b.len && offset_of(a, av) == offset_of(b, bv);
}

/* Every field of two parses of the same head, from two different buffers, is the same. */
static void check_same_request(const struct ws_http_request *a, struct view av,
                               const struct ws_http_request *b, struct view bv)
{
    CHECK(same_slice(a->method, av, b->method, bv));
    CHECK(same_slice(a->target, av, b->target, bv));
    CHECK(same_slice(a->path, av, b->path, bv));
    CHECK(same_slice(a->query, av, b->query, bv));
    CHECK(same_slice(a->host, av, b->host, bv));
    CHECK(same_slice(a->origin, av, b->origin, bv));
    CHECK(same_slice(a->cookie, av, b->cookie, bv));
    CHECK(same_slice(a->authorization, av, b->authorization, bv));
    CHECK(same_slice(a->sec_websocket_key, av, b->sec_websocket_key, bv));
    CHECK(a->minor_version == b->minor_version);
    CHECK(a->sec_websocket_key_count == b->sec_websocket_key_count);
    CHECK(a->upgrade_websocket == b->upgrade_websocket);
    CHECK(a->connection_upgrade == b->connection_upgrade);
    CHECK(a->ws_version == b->ws_version);
    CHECK(a->subprotocols == b->subprotocols);
    CHECK(a->subprotocol_header == b->subprotocol_header);
    CHECK(a->content_length == b->content_length);
    CHECK(a->transfer_encoding == b->transfer_encoding);
    CHECK(a->num_headers == b->num_headers);
    CHECK(a->header_bytes == b->header_bytes);
    for (size_t i = 0; i < a->num_headers; i++) {
        CHECK(same_slice(a->headers[i].name, av, b->headers[i].name, bv));
        CHECK(same_slice(a->headers[i].value, av, b->headers[i].value, bv));
    }
}

/* True if a trimmed element of the comma-separated list equals token (exactly or ignoring case). */
static bool list_has(struct ws_slice list, const char *token, bool exact)
{
    size_t start = 0;
    for (size_t i = 0; i <= list.len; i++) {
        if (i < list.len && list.ptr[i] != ',')
            continue;
        struct ws_slice item = {list.ptr + start, i - start};
        while (item.len > 0 && (item.ptr[0] == ' ' || item.ptr[0] == '\t')) {
            item.ptr++;
            item.len--;
        }
        while (item.len > 0 && (item.ptr[item.len - 1] == ' ' || item.ptr[item.len - 1] == '\t'))
            item.len--;
        bool hit = exact ? item.len == strlen(token) && memcmp(item.ptr, token, item.len) == 0
                         : slice_ieq(item, token);
        if (hit)
            return true;
        start = i + 1;
    }
    return false;
}

/* What the upgrade check needs, recomputed from headers[] the simple way. */
struct reference {
    unsigned subprotocols;
    bool subprotocol_header;
    bool upgrade_websocket;
    bool connection_upgrade;
    unsigned keys;
    unsigned hosts;
};

static void reference_of(const struct ws_http_request *req, struct reference *ref)
{
    memset(ref, 0, sizeof(*ref));
    for (size_t i = 0; i < req->num_headers; i++) {
        struct ws_slice name = req->headers[i].name, value = req->headers[i].value;
        if (slice_ieq(name, "sec-websocket-protocol")) {
            ref->subprotocol_header = true;
            for (unsigned p = WS_SUBPROTOCOL_V12_STOMP; p <= WS_SUBPROTOCOL_STOMP; p++)
                if (list_has(value, ws_subprotocol_name((enum ws_subprotocol)p), true))
                    ref->subprotocols |= WS_SUBPROTOCOL_BIT(p);
        }
        if (slice_ieq(name, "upgrade") && list_has(value, "websocket", false))
            ref->upgrade_websocket = true;
        if (slice_ieq(name, "connection") && list_has(value, "upgrade", false))
            ref->connection_upgrade = true;
        ref->keys += slice_ieq(name, "sec-websocket-key");
        ref->hosts += slice_ieq(name, "host");
    }
}

/* Checks a successful parse of buf[0..len) that returned rc. */
static void check_parsed(const struct ws_http_request *req, const char *buf, size_t len, int rc,
                         size_t limit)
{
    CHECK((size_t)rc <= len && (size_t)rc <= limit);
    CHECK(req->header_bytes == (size_t)rc);
    CHECK(buf[rc - 1] == '\n');
    CHECK(req->num_headers <= WS_HTTP_MAX_HEADERS);
    CHECK(req->method.len > 0 && req->target.len > 0);
    CHECK(req->minor_version >= 0 && req->minor_version <= 9);
    const struct ws_slice *slices[] = {&req->method, &req->target,        &req->path,
                                       &req->query,  &req->host,          &req->origin,
                                       &req->cookie, &req->authorization, &req->sec_websocket_key};
    for (size_t i = 0; i < sizeof(slices) / sizeof(slices[0]); i++)
        check_slice(*slices[i], buf, (size_t)rc);
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct ws_http_header *h = &req->headers[i];
        CHECK(h->name.len > 0);
        check_slice(h->name, buf, (size_t)rc);
        check_slice(h->value, buf, (size_t)rc);
        check_value(h->value);
        const struct ws_http_header *first = NULL;
        char name[64];
        if (h->name.len < sizeof(name)) {
            memcpy(name, h->name.ptr, h->name.len);
            name[h->name.len] = '\0';
            first = ws_http_header_find(req, name);
            CHECK(first != NULL && first <= h && slice_ieq(first->name, name));
        }
    }
    struct reference ref;
    reference_of(req, &ref);
    CHECK(ref.subprotocols == req->subprotocols);
    CHECK(ref.subprotocol_header == req->subprotocol_header);
    CHECK(ref.upgrade_websocket == req->upgrade_websocket);
    CHECK(ref.connection_upgrade == req->connection_upgrade);
    CHECK(ref.keys == req->sec_websocket_key_count);
    CHECK(ref.hosts <= 1 && (ref.hosts == 1) == (req->host.ptr != NULL));
    CHECK(req->content_length >= -1);
}

/* A builder's output at exactly the right size, one byte short, and with room to spare. */
typedef int (*build_fn)(char *out, size_t cap, const void *arg);

/* Room for any response here: the biggest echoes a whole request target. */
#define RESPONSE_ROOM (2 * WS_DEFAULT_MAX_HEADER_BYTES)

/* Returns the response (heap, NUL-terminated; the caller frees it) and its length in *len. */
static char *check_builder(build_fn build, const void *arg, const char *status_line, int *len)
{
    char *big = malloc(RESPONSE_ROOM);
    CHECK(big != NULL);
    int n = build(big, RESPONSE_ROOM, arg);
    CHECK(n > 0 && (size_t)n < RESPONSE_ROOM);
    CHECK(big[n] == '\0' && strlen(big) == (size_t)n);
    CHECK(strncmp(big, status_line, strlen(status_line)) == 0);
    CHECK(strstr(big, "\r\n\r\n") != NULL);
    char *exact = malloc((size_t)n + 1);
    CHECK(exact != NULL);
    CHECK(build(exact, (size_t)n + 1, arg) == n && memcmp(exact, big, (size_t)n + 1) == 0);
    CHECK(build(exact, (size_t)n, arg) == WS_HTTP_ERR_NO_SPACE);
    free(exact);
    *len = n;
    return big;
}

static int build_upgrade(char *out, size_t cap, const void *arg)
{
    return ws_upgrade_response(out, cap, arg);
}

static int build_error(char *out, size_t cap, const void *arg)
{
    const struct ws_upgrade *up = arg;
    return ws_http_error_response(out, cap, up->status, up->message);
}

/* A plain 200 whose body is the request target (any bytes the client chose). */
static int build_plain(char *out, size_t cap, const void *arg)
{
    const struct ws_http_request *req = arg;
    return ws_http_response(out, cap, 200, "Cache-Control: no-store\r\n", "text/plain",
                            req->target.ptr, req->target.len);
}

/* The plain response ends with the body, announced by its Content-Length. */
static void check_plain_response(const struct ws_http_request *req)
{
    int n;
    char *out =
        check_builder(build_plain, req, "HTTP/1.1 200 OK\r\nCache-Control: no-store\r\n", &n);
    char length[48];
    snprintf(length, sizeof(length), "Content-Length: %zu\r\n", req->target.len);
    CHECK(strstr(out, length) != NULL);
    CHECK((size_t)n >= req->target.len &&
          memcmp(out + n - req->target.len, req->target.ptr, req->target.len) == 0);
    free(out);
}

static enum ws_subprotocol preferred(unsigned offered)
{
    for (unsigned p = WS_SUBPROTOCOL_V12_STOMP; p <= WS_SUBPROTOCOL_STOMP; p++)
        if (offered & WS_SUBPROTOCOL_BIT(p))
            return (enum ws_subprotocol)p;
    return WS_SUBPROTOCOL_NONE;
}

/* The upgrade decision agrees with RFC 6455 4.2.1 as recomputed here; responses build. */
static void check_upgrade(const struct ws_http_request *req)
{
    struct ws_upgrade up;
    int rc = ws_upgrade_check(req, &up);
    CHECK(up.message != NULL && up.message[0] != '\0');
    if (rc != 0) {
        CHECK(rc == WS_HTTP_ERR_REJECTED);
        CHECK(up.status == 400 || up.status == 426 || up.status == 500);
        char status_line[32];
        memcpy(status_line, "HTTP/1.1 ", 9);
        status_line[9] = (char)('0' + up.status / 100);
        status_line[10] = (char)('0' + up.status / 10 % 10);
        status_line[11] = (char)('0' + up.status % 10);
        status_line[12] = '\0';
        int n;
        free(check_builder(build_error, &up, status_line, &n));
        return;
    }
    CHECK(up.status == 101);
    CHECK(req->method.len == 3 && memcmp(req->method.ptr, "GET", 3) == 0);
    CHECK(req->minor_version >= 1 && req->host.ptr != NULL);
    CHECK(req->upgrade_websocket && req->connection_upgrade && req->ws_version == 13);
    CHECK(req->sec_websocket_key_count == 1 && req->sec_websocket_key.len == 24);
    CHECK(up.subprotocol == preferred(req->subprotocols));
    CHECK(!req->subprotocol_header || up.subprotocol != WS_SUBPROTOCOL_NONE);
    CHECK(strlen(up.accept) == WS_ACCEPT_LEN);
    char accept[WS_ACCEPT_LEN + 1];
    CHECK(ws_accept_key(req->sec_websocket_key.ptr, req->sec_websocket_key.len, accept) == 0);
    CHECK(memcmp(accept, up.accept, sizeof(accept)) == 0);
    int n;
    char *out = check_builder(build_upgrade, &up, "HTTP/1.1 101 Switching Protocols\r\n", &n);
    const char *name = ws_subprotocol_name(up.subprotocol);
    CHECK((strstr(out, "Sec-WebSocket-Protocol: ") != NULL) == (name != NULL));
    CHECK(strstr(out, up.accept) != NULL);
    free(out);
}

/*
 * Feeds the request in pieces, re-parsing the grown buffer each time as conn.c does: every
 * prefix answers WS_HTTP_INCOMPLETE or the whole request's answer, with the same fields.
 */
static void check_prefixes(const uint8_t *req_bytes, size_t len, size_t limit,
                           const uint8_t seeds[2], int whole_rc,
                           const struct ws_http_request *whole, struct view whole_view)
{
    size_t have = 0;
    for (unsigned k = 0; have < len; k++) {
        size_t piece = k < MAX_PIECES ? (size_t)seeds[k % 2] % 64 + 1 : len - have;
        have = piece > len - have ? len : have + piece;
        char *buf = exact_copy(req_bytes, have);
        struct ws_http_request req;
        int rc = ws_http_parse(&req, buf, have, limit);
        if (rc == WS_HTTP_INCOMPLETE) {
            CHECK(have <= limit);
            free(buf);
            continue;
        }
        CHECK(rc == whole_rc);
        if (rc > 0)
            check_same_request(&req, (struct view){buf, have}, whole, whole_view);
        free(buf);
        return; /* the answer is final: conn.c stops parsing here */
    }
    CHECK(whole_rc == WS_HTTP_INCOMPLETE);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    size_t limit = header_limits[data[0] & 3];
    const uint8_t *seeds = data + 1;
    const uint8_t *req_bytes = data + 3;
    size_t len = size - 3;

    char *buf = exact_copy(req_bytes, len);
    struct ws_http_request req;
    int rc = ws_http_parse(&req, buf, len, limit);
    CHECK(rc > 0 || rc == WS_HTTP_INCOMPLETE || rc == WS_HTTP_ERR_TOO_LARGE ||
          rc == WS_HTTP_ERR_BAD_REQUEST);
    CHECK(rc != WS_HTTP_INCOMPLETE || len <= limit);
    if (rc > 0) {
        check_parsed(&req, buf, len, rc, limit);
        check_upgrade(&req);
        check_plain_response(&req);
    }
    check_prefixes(req_bytes, len, limit, seeds, rc, &req, (struct view){buf, len});
    free(buf);
    return 0;
}
