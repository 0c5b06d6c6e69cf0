/*
 * test_ws_handshake.c - ws/handshake: request head parser, upgrade decision, response builders.
 *
 * Every request is parsed from guarded memory (its last byte right before a PROT_NONE page), and
 * every request in the tables is also parsed at every prefix length to check the re-call
 * contract: WS_HTTP_INCOMPLETE until the answer is known, then always the same answer.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/guard.h"
#include "ws/handshake.h"

#define RFC_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define RFC_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

/* Everything but the version and the final empty line. */
#define BASE                                                                                       \
    "GET /chat HTTP/1.1\r\n"                                                                       \
    "Host: server.example.com\r\n"                                                                 \
    "Upgrade: websocket\r\n"                                                                       \
    "Connection: Upgrade\r\n"                                                                      \
    "Sec-WebSocket-Key: " RFC_KEY "\r\n"
#define V13 "Sec-WebSocket-Version: 13\r\n"

/* A parsed request whose slices point into guarded memory; release with parsed_free(). */
struct parsed {
    struct ws_http_request req;
    struct guard g;
    int rc;
};

static void parse_n(struct parsed *p, const char *s, size_t len, size_t max)
{
    char *buf = (char *)guard_copy(&p->g, s, len);
    p->rc = ws_http_parse(&p->req, buf, len, max);
}

static void parse(struct parsed *p, const char *s)
{
    parse_n(p, s, strlen(s), WS_DEFAULT_MAX_HEADER_BYTES);
}

static void parsed_free(struct parsed *p)
{
    guard_release(&p->g);
}

static bool slice_is(struct ws_slice s, const char *want)
{
    if (want == NULL)
        return s.ptr == NULL && s.len == 0;
    return s.ptr != NULL && s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

/* A head parser's answer for s[0..len) placed against a guard page. */
typedef int (*parse_rc_fn)(const char *s, size_t len, size_t max);

static int request_rc(const char *s, size_t len, size_t max)
{
    struct parsed p;
    parse_n(&p, s, len, max);
    parsed_free(&p);
    return p.rc;
}

static int response_rc(const char *s, size_t len, size_t max)
{
    struct ws_http_response resp;
    struct guard g;
    char *buf = (char *)guard_copy(&g, s, len);
    int rc = ws_http_response_parse(&resp, buf, len, max);
    guard_release(&g);
    return rc;
}

/*
 * Parses every prefix of s[0..len) with rc_of: each must give WS_HTTP_INCOMPLETE or the whole
 * head's answer, and once an answer appears it must not change. A success (the head's length h)
 * must be WS_HTTP_INCOMPLETE for every prefix shorter than h.
 */
static void check_prefixes_with(parse_rc_fn rc_of, const char *s, size_t len, size_t max)
{
    int whole = rc_of(s, len, max);
    bool decided = false;
    for (size_t n = 0; n < len; n++) {
        int rc = rc_of(s, n, max);
        if (whole > 0)
            ck_assert_msg(rc == (n < (size_t)whole ? WS_HTTP_INCOMPLETE : whole),
                          "prefix %zu of %zu: %d, whole %d", n, len, rc, whole);
        else if (decided)
            ck_assert_msg(rc == whole, "prefix %zu: %d after answer %d", n, rc, whole);
        else
            ck_assert_msg(rc == WS_HTTP_INCOMPLETE || rc == whole,
                          "prefix %zu of %zu: %d, whole %d", n, len, rc, whole);
        decided = rc != WS_HTTP_INCOMPLETE;
    }
}

static void check_prefixes(const char *s, size_t len, size_t max)
{
    check_prefixes_with(request_rc, s, len, max);
}

/* ---- RFC 6455 example and responses ---- */

START_TEST(test_rfc_accept_key)
{
    char accept[WS_ACCEPT_LEN + 1];
    ck_assert_int_eq(ws_accept_key(RFC_KEY, strlen(RFC_KEY), accept), 0);
    ck_assert_str_eq(accept, RFC_ACCEPT);
    ck_assert_uint_eq(strlen(accept), WS_ACCEPT_LEN);
}
END_TEST

/* RFC 6455 section 1.3's request, offering STOMP instead of "chat, superchat". */
START_TEST(test_rfc_handshake_full_response)
{
    static const char request[] = "GET /chat HTTP/1.1\r\n"
                                  "Host: server.example.com\r\n"
                                  "Upgrade: websocket\r\n"
                                  "Connection: Upgrade\r\n"
                                  "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                                  "Origin: http://example.com\r\n"
                                  "Sec-WebSocket-Protocol: v10.stomp, v12.stomp\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "\r\n";
    struct parsed p;
    parse(&p, request);
    ck_assert_int_eq(p.rc, (int)strlen(request));
    ck_assert_uint_eq(p.req.header_bytes, strlen(request));
    ck_assert(slice_is(p.req.origin, "http://example.com"));
    struct ws_upgrade up;
    ck_assert_int_eq(ws_upgrade_check(&p.req, &up), 0);
    ck_assert_int_eq(up.status, 101);
    ck_assert_int_eq(up.subprotocol, WS_SUBPROTOCOL_V12_STOMP);
    ck_assert_str_eq(up.accept, RFC_ACCEPT);
    char out[512];
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                               "Sec-WebSocket-Protocol: v12.stomp\r\n"
                               "\r\n";
    ck_assert_int_eq(ws_upgrade_response(out, sizeof(out), &up), (int)strlen(want));
    ck_assert_str_eq(out, want);
    /* exactly enough room (plus the NUL) works; one byte less does not */
    for (size_t cap = 0; cap <= strlen(want); cap++)
        ck_assert_int_eq(ws_upgrade_response(out, cap, &up), WS_HTTP_ERR_NO_SPACE);
    ck_assert_int_eq(ws_upgrade_response(out, strlen(want) + 1, &up), (int)strlen(want));
    parsed_free(&p);
}
END_TEST

START_TEST(test_response_without_subprotocol)
{
    struct parsed p;
    parse(&p, BASE V13 "\r\n");
    struct ws_upgrade up;
    ck_assert_int_eq(ws_upgrade_check(&p.req, &up), 0);
    ck_assert_int_eq(up.subprotocol, WS_SUBPROTOCOL_NONE);
    char out[256];
    static const char want[] = "HTTP/1.1 101 Switching Protocols\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
                               "\r\n";
    ck_assert_int_eq(ws_upgrade_response(out, sizeof(out), &up), (int)strlen(want));
    ck_assert_str_eq(out, want);
    parsed_free(&p);
}
END_TEST

START_TEST(test_http_response)
{
    char out[256];
    static const char want[] = "HTTP/1.1 200 OK\r\n"
                               "Cache-Control: no-store\r\n"
                               "Content-Type: application/json\r\n"
                               "Content-Length: 11\r\n"
                               "Connection: close\r\n"
                               "\r\n"
                               "{\"ok\":true}";
    int n = ws_http_response(out, sizeof(out), 200, "Cache-Control: no-store\r\n",
                             "application/json", "{\"ok\":true}", 11);
    ck_assert_int_eq(n, (int)strlen(want));
    ck_assert_str_eq(out, want);
    for (size_t cap = 0; cap <= strlen(want); cap++)
        ck_assert_int_eq(ws_http_response(out, cap, 200, "Cache-Control: no-store\r\n",
                                          "application/json", "{\"ok\":true}", 11),
                         WS_HTTP_ERR_NO_SPACE);
    /* no extra headers, no content type, empty body */
    static const char bare[] = "HTTP/1.1 202 Accepted\r\n"
                               "Content-Length: 0\r\n"
                               "Connection: close\r\n"
                               "\r\n";
    ck_assert_int_eq(ws_http_response(out, sizeof(out), 202, NULL, NULL, NULL, 0),
                     (int)strlen(bare));
    ck_assert_str_eq(out, bare);
    /* a body with a NUL in it is written as is */
    n = ws_http_response(out, sizeof(out), 200, NULL, NULL, "a\0b", 3);
    ck_assert_int_gt(n, 3);
    ck_assert_mem_eq(out + n - 3, "a\0b", 3);
}
END_TEST

START_TEST(test_http_error_response)
{
    char out[256];
    static const char want426[] = "HTTP/1.1 426 Upgrade Required\r\n"
                                  "Sec-WebSocket-Version: 13\r\n"
                                  "Content-Type: text/plain; charset=utf-8\r\n"
                                  "Content-Length: 33\r\n"
                                  "Connection: close\r\n"
                                  "\r\n"
                                  "Sec-WebSocket-Version must be 13\n";
    ck_assert_int_eq(
        ws_http_error_response(out, sizeof(out), 426, "Sec-WebSocket-Version must be 13"),
        (int)strlen(want426));
    ck_assert_str_eq(out, want426);
    static const char want431[] = "HTTP/1.1 431 Request Header Fields Too Large\r\n"
                                  "Content-Type: text/plain; charset=utf-8\r\n"
                                  "Content-Length: 18\r\n"
                                  "Connection: close\r\n"
                                  "\r\n"
                                  "headers too large\n";
    ck_assert_int_eq(ws_http_error_response(out, sizeof(out), 431, "headers too large"),
                     (int)strlen(want431));
    ck_assert_str_eq(out, want431);
    ck_assert_int_eq(ws_http_error_response(out, 20, 400, "x"), WS_HTTP_ERR_NO_SPACE);
    /* NULL message: the reason phrase */
    ck_assert_int_gt(ws_http_error_response(out, sizeof(out), 404, NULL), 0);
    ck_assert_ptr_nonnull(strstr(out, "\r\n\r\nNot Found\n"));
}
END_TEST

START_TEST(test_status_text)
{
    static const struct {
        int status;
        const char *text;
    } table[] = {
        {101, "Switching Protocols"},
        {200, "OK"},
        {202, "Accepted"},
        {400, "Bad Request"},
        {401, "Unauthorized"},
        {403, "Forbidden"},
        {404, "Not Found"},
        {405, "Method Not Allowed"},
        {426, "Upgrade Required"},
        {429, "Too Many Requests"},
        {431, "Request Header Fields Too Large"},
        {500, "Internal Server Error"},
        {503, "Service Unavailable"},
        {999, "Unknown"},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        ck_assert_str_eq(ws_http_status_text(table[i].status), table[i].text);
}
END_TEST

START_TEST(test_subprotocol_names)
{
    ck_assert_ptr_null(ws_subprotocol_name(WS_SUBPROTOCOL_NONE));
    ck_assert_str_eq(ws_subprotocol_name(WS_SUBPROTOCOL_V12_STOMP), "v12.stomp");
    ck_assert_str_eq(ws_subprotocol_name(WS_SUBPROTOCOL_V11_STOMP), "v11.stomp");
    ck_assert_str_eq(ws_subprotocol_name(WS_SUBPROTOCOL_V10_STOMP), "v10.stomp");
    ck_assert_str_eq(ws_subprotocol_name(WS_SUBPROTOCOL_STOMP), "stomp");
    ck_assert_ptr_null(ws_subprotocol_name((enum ws_subprotocol)99));
}
END_TEST

/* ---- upgrade decisions ---- */

struct upgrade_case {
    const char *name;
    const char *request;
    int status;
    enum ws_subprotocol subprotocol;
    const char *message; /* substring of ws_upgrade.message, or NULL */
};

#define SP(v) BASE V13 "Sec-WebSocket-Protocol: " v "\r\n"

static const struct upgrade_case upgrade_cases[] = {
    /* subprotocol choice */
    {"no protocol header", BASE V13 "\r\n", 101, WS_SUBPROTOCOL_NONE, NULL},
    {"v12 only", SP("v12.stomp") "\r\n", 101, WS_SUBPROTOCOL_V12_STOMP, NULL},
    {"v10 listed before v12", SP("v10.stomp, v12.stomp") "\r\n", 101, WS_SUBPROTOCOL_V12_STOMP,
     NULL},
    {"stomp, v10, v11", SP("stomp, v10.stomp, v11.stomp") "\r\n", 101, WS_SUBPROTOCOL_V11_STOMP,
     NULL},
    {"plain stomp", SP("stomp") "\r\n", 101, WS_SUBPROTOCOL_STOMP, NULL},
    {"unknown then v10", SP("chat, v10.stomp") "\r\n", 101, WS_SUBPROTOCOL_V10_STOMP, NULL},
    {"two headers", SP("v10.stomp") "Sec-WebSocket-Protocol: v11.stomp\r\n\r\n", 101,
     WS_SUBPROTOCOL_V11_STOMP, NULL},
    {"two headers, known in the second", SP("chat") "sec-websocket-protocol: stomp\r\n\r\n", 101,
     WS_SUBPROTOCOL_STOMP, NULL},
    {"whitespace and tabs", SP(" \t v12.stomp \t ,\tfoo") "\r\n", 101, WS_SUBPROTOCOL_V12_STOMP,
     NULL},
    {"empty list items", SP(",, v10.stomp ,") "\r\n", 101, WS_SUBPROTOCOL_V10_STOMP, NULL},
    {"repeated token", SP("v10.stomp, v10.stomp") "\r\n", 101, WS_SUBPROTOCOL_V10_STOMP, NULL},
    {"only unknown", SP("chat, superchat") "\r\n", 400, WS_SUBPROTOCOL_NONE,
     "Sec-WebSocket-Protocol"},
    {"empty protocol header", SP("") "\r\n", 400, WS_SUBPROTOCOL_NONE, "Sec-WebSocket-Protocol"},
    {"names are case-sensitive", SP("V12.STOMP") "\r\n", 400, WS_SUBPROTOCOL_NONE,
     "Sec-WebSocket-Protocol"},
    {"near misses", SP("v12.stomp.x, xv12.stomp, v12") "\r\n", 400, WS_SUBPROTOCOL_NONE,
     "Sec-WebSocket-Protocol"},
    /* method and version */
    {"POST",
     "POST /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " RFC_KEY "\r\n" V13 "\r\n",
     400, WS_SUBPROTOCOL_NONE, "GET"},
    {"lower-case get",
     "get /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Key: " RFC_KEY "\r\n" V13 "\r\n",
     400, WS_SUBPROTOCOL_NONE, "GET"},
    {"HTTP/1.0",
     "GET /chat HTTP/1.0\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " RFC_KEY "\r\n" V13 "\r\n",
     400, WS_SUBPROTOCOL_NONE, "HTTP/1.1"},
    {"HTTP/1.2 is fine",
     "GET /chat HTTP/1.2\r\nHost: a\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Key: " RFC_KEY "\r\n" V13 "\r\n",
     101, WS_SUBPROTOCOL_NONE, NULL},
    {"no Host",
     "GET /chat HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " RFC_KEY "\r\n" V13 "\r\n",
     400, WS_SUBPROTOCOL_NONE, "Host"},
    /* Upgrade and Connection */
    {"no Upgrade",
     "GET /chat HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " RFC_KEY "\r\n" V13 "\r\n",
     400, WS_SUBPROTOCOL_NONE, "Upgrade"},
    {"Upgrade: h2c",
     "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " RFC_KEY "\r\n" V13 "\r\n",
     400, WS_SUBPROTOCOL_NONE, "Upgrade: websocket"},
    {"Upgrade list, mixed case",
     "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: h2c, WebSocket\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Key: " RFC_KEY "\r\n" V13 "\r\n",
     101, WS_SUBPROTOCOL_NONE, NULL},
    {"Upgrade in a second header",
     "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: h2c\r\n"
     "UPGRADE: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " RFC_KEY "\r\n" V13 "\r\n",
     101, WS_SUBPROTOCOL_NONE, NULL},
    {"Upgrade: websockets",
     "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websockets\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Key: " RFC_KEY "\r\n" V13 "\r\n",
     400, WS_SUBPROTOCOL_NONE, "Upgrade"},
    {"no Connection",
     "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
     "Sec-WebSocket-Key: " RFC_KEY "\r\n" V13 "\r\n",
     400, WS_SUBPROTOCOL_NONE, "Connection"},
    {"Connection: keep-alive",
     "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
     "Connection: keep-alive\r\nSec-WebSocket-Key: " RFC_KEY "\r\n" V13 "\r\n",
     400, WS_SUBPROTOCOL_NONE, "Connection"},
    {"Connection: keep-alive, Upgrade",
     "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
     "Connection: keep-alive, Upgrade\r\n"
     "Sec-WebSocket-Key: " RFC_KEY "\r\n" V13 "\r\n",
     101, WS_SUBPROTOCOL_NONE, NULL},
    {"Connection split over two headers",
     "GET /chat HTTP/1.1\r\nHost: a\r\n"
     "Upgrade: websocket\r\nConnection: keep-alive\r\n"
     "connection: UPGRADE\r\nSec-WebSocket-Key: " RFC_KEY "\r\n" V13 "\r\n",
     101, WS_SUBPROTOCOL_NONE, NULL},
    {"Connection: upgrades",
     "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
     "Connection: upgrades\r\nSec-WebSocket-Key: " RFC_KEY "\r\n" V13 "\r\n",
     400, WS_SUBPROTOCOL_NONE, "Connection"},
    /* version: 426 */
    {"no version", BASE "\r\n", 426, WS_SUBPROTOCOL_NONE, "Sec-WebSocket-Version"},
    {"version 8", BASE "Sec-WebSocket-Version: 8\r\n\r\n", 426, WS_SUBPROTOCOL_NONE, "13"},
    {"version list", BASE "Sec-WebSocket-Version: 13, 8\r\n\r\n", 426, WS_SUBPROTOCOL_NONE, "13"},
    {"version garbage", BASE "Sec-WebSocket-Version: thirteen\r\n\r\n", 426, WS_SUBPROTOCOL_NONE,
     "13"},
    {"version empty", BASE "Sec-WebSocket-Version:\r\n\r\n", 426, WS_SUBPROTOCOL_NONE, "13"},
    {"version 13 twice", BASE V13 V13 "\r\n", 101, WS_SUBPROTOCOL_NONE, NULL},
    {"version 13 then 8", BASE V13 "Sec-WebSocket-Version: 8\r\n\r\n", 426, WS_SUBPROTOCOL_NONE,
     "13"},
    {"version 8 then 13", BASE "Sec-WebSocket-Version: 8\r\n" V13 "\r\n", 426, WS_SUBPROTOCOL_NONE,
     "13"},
    /* key */
    {"no key",
     "GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" V13 "\r\n",
     400, WS_SUBPROTOCOL_NONE, "Sec-WebSocket-Key must be base64 of 16 bytes"},
    {"key of 15 bytes",
     "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\n" V13 "\r\n",
     400, WS_SUBPROTOCOL_NONE, "16 bytes"},
    {"key of 17 bytes",
     "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\n" V13 "\r\n",
     400, WS_SUBPROTOCOL_NONE, "16 bytes"},
    {"key without padding",
     "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ\r\n" V13 "\r\n",
     400, WS_SUBPROTOCOL_NONE, "16 bytes"},
    {"key with a bad symbol",
     "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSB!b25jZQ==\r\n" V13 "\r\n",
     400, WS_SUBPROTOCOL_NONE, "16 bytes"},
    {"key not canonical",
     "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==\r\n" V13 "\r\n",
     400, WS_SUBPROTOCOL_NONE, "16 bytes"},
    {"key twice", BASE "Sec-WebSocket-Key: " RFC_KEY "\r\n" V13 "\r\n", 400, WS_SUBPROTOCOL_NONE,
     "more than once"},
    {"key padded with spaces",
     "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n"
     "Connection: Upgrade\r\nSec-WebSocket-Key: \t " RFC_KEY "  \r\n" V13 "\r\n",
     101, WS_SUBPROTOCOL_NONE, NULL},
    {"names in any case",
     "GET /chat HTTP/1.1\r\nhOST: a\r\nuPgRaDe: WEBSOCKET\r\n"
     "CONNECTION: upgrade\r\nSEC-WEBSOCKET-KEY: " RFC_KEY "\r\n"
     "sec-websocket-version: 13\r\nSEC-WEBSOCKET-PROTOCOL: v11.stomp\r\n\r\n",
     101, WS_SUBPROTOCOL_V11_STOMP, NULL},
    {"LF-only line ends",
     "GET /chat HTTP/1.1\nHost: a\nUpgrade: websocket\nConnection: Upgrade\n"
     "Sec-WebSocket-Key: " RFC_KEY "\nSec-WebSocket-Version: 13\n\n",
     101, WS_SUBPROTOCOL_NONE, NULL},
};

static const size_t n_upgrade_cases = sizeof(upgrade_cases) / sizeof(upgrade_cases[0]);

START_TEST(test_upgrade_table)
{
    const struct upgrade_case *c = &upgrade_cases[_i];
    struct parsed p;
    parse(&p, c->request);
    ck_assert_msg(p.rc == (int)strlen(c->request), "%s: parse %d", c->name, p.rc);
    struct ws_upgrade up;
    int rc = ws_upgrade_check(&p.req, &up);
    ck_assert_msg(up.status == c->status, "%s: status %d (%s)", c->name, up.status, up.message);
    ck_assert_int_eq(rc, c->status == 101 ? 0 : WS_HTTP_ERR_REJECTED);
    ck_assert_ptr_nonnull(up.message);
    if (c->message != NULL)
        ck_assert_msg(strstr(up.message, c->message) != NULL, "%s: message '%s'", c->name,
                      up.message);
    if (c->status == 101) {
        ck_assert_int_eq(up.subprotocol, c->subprotocol);
        ck_assert_str_eq(up.accept, RFC_ACCEPT);
        char out[512];
        ck_assert_int_gt(ws_upgrade_response(out, sizeof(out), &up), 0);
        const char *name = ws_subprotocol_name(c->subprotocol);
        ck_assert((strstr(out, "Sec-WebSocket-Protocol") != NULL) == (name != NULL));
        if (name != NULL)
            ck_assert_ptr_nonnull(strstr(out, name));
    }
    parsed_free(&p);
}
END_TEST

START_TEST(test_upgrade_table_prefixes)
{
    const struct upgrade_case *c = &upgrade_cases[_i];
    check_prefixes(c->request, strlen(c->request), WS_DEFAULT_MAX_HEADER_BYTES);
}
END_TEST

/* ---- parser ---- */

struct parse_case {
    const char *name;
    const char *request;
    size_t len; /* 0: strlen */
    int rc;     /* expected: WS_HTTP_ERR_... or 1 for "whole string is the head" */
};

static const struct parse_case parse_cases[] = {
    {"no version", "GET /chat\r\nHost: a\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"two spaces before target", "GET  /chat HTTP/1.1\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"two spaces before version", "GET /chat  HTTP/1.1\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"trailing space", "GET /chat HTTP/1.1 \r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"leading space", " GET /chat HTTP/1.1\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"HTTP/2.0", "GET /chat HTTP/2.0\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"lower-case http", "GET /chat http/1.1\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"HTTP/1.11", "GET /chat HTTP/1.11\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"HTTP/1.x", "GET /chat HTTP/1.x\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"relative target", "GET chat HTTP/1.1\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"authority form", "GET example.com:80 HTTP/1.1\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"bad method char", "G@T / HTTP/1.1\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"empty method", " / HTTP/1.1\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"space in target", "GET /ch at HTTP/1.1\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"non-ASCII target", "GET /caf\xC3\xA9 HTTP/1.1\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"control in target", "GET /\x01 HTTP/1.1\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"CR CR LF", "GET / HTTP/1.1\r\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"NUL in request line", "GET /\0 HTTP/1.1\r\n\r\n", 19, WS_HTTP_ERR_BAD_REQUEST},
    {"obs-fold space", "GET / HTTP/1.1\r\nX-A: a\r\n  b\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"obs-fold tab", "GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"fold as first header", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"missing colon", "GET / HTTP/1.1\r\nHost a\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"empty name", "GET / HTTP/1.1\r\n: a\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"bad name char", "GET / HTTP/1.1\r\nHo(st: a\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"control char in value", "GET / HTTP/1.1\r\nX-A: a\x01 b\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"DEL in value", "GET / HTTP/1.1\r\nX-A: a\x7F\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"NUL in value", "GET / HTTP/1.1\r\nX-A: a\0b\r\n\r\n", 28, WS_HTTP_ERR_BAD_REQUEST},
    {"bare CR in value", "GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"duplicate Host", "GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n", 0, WS_HTTP_ERR_BAD_REQUEST},
    {"duplicate Origin", "GET / HTTP/1.1\r\nOrigin: http://a\r\nOrigin: http://b\r\n\r\n", 0,
     WS_HTTP_ERR_BAD_REQUEST},
    {"duplicate Authorization", "GET / HTTP/1.1\r\nAuthorization: a\r\nAuthorization: b\r\n\r\n", 0,
     WS_HTTP_ERR_BAD_REQUEST},
    {"Content-Length letters", "POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\n", 0,
     WS_HTTP_ERR_BAD_REQUEST},
    {"Content-Length negative", "POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", 0,
     WS_HTTP_ERR_BAD_REQUEST},
    {"Content-Length list", "POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n", 0,
     WS_HTTP_ERR_BAD_REQUEST},
    {"Content-Length conflict", "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
     0, WS_HTTP_ERR_BAD_REQUEST},
    {"Content-Length empty", "POST / HTTP/1.1\r\nContent-Length:\r\n\r\n", 0,
     WS_HTTP_ERR_BAD_REQUEST},
    {"error after a good head is not seen", "GET / HTTP/1.1\r\n\r\nBAD LINE\r\n\r\n", 0, 18},
    {"minimal", "GET / HTTP/1.1\r\n\r\n", 0, 1},
    {"leading empty lines", "\r\n\nGET / HTTP/1.1\r\n\r\n", 0, 1},
    {"mixed line ends", "GET / HTTP/1.1\nHost: a\r\nX-B: b\n\r\n", 0, 1},
    {"empty value", "GET / HTTP/1.1\r\nX-Empty:\r\nX-Spaces:   \r\n\r\n", 0, 1},
    {"obs-text value", "GET / HTTP/1.1\r\nX-Name: caf\xC3\xA9\r\n\r\n", 0, 1},
    {"tab in value", "GET / HTTP/1.1\r\nX-A: a\tb\r\n\r\n", 0, 1},
    {"asterisk form", "OPTIONS * HTTP/1.1\r\n\r\n", 0, 1},
    {"Content-Length twice, same",
     "POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 0, 1},
};

static const size_t n_parse_cases = sizeof(parse_cases) / sizeof(parse_cases[0]);

static size_t case_len(const struct parse_case *c)
{
    return c->len != 0 ? c->len : strlen(c->request);
}

START_TEST(test_parse_table)
{
    const struct parse_case *c = &parse_cases[_i];
    size_t len = case_len(c);
    struct parsed p;
    parse_n(&p, c->request, len, WS_DEFAULT_MAX_HEADER_BYTES);
    int want = c->rc == 1 ? (int)len : c->rc;
    ck_assert_msg(p.rc == want, "%s: got %d want %d", c->name, p.rc, want);
    parsed_free(&p);
}
END_TEST

START_TEST(test_parse_table_prefixes)
{
    const struct parse_case *c = &parse_cases[_i];
    check_prefixes(c->request, case_len(c), WS_DEFAULT_MAX_HEADER_BYTES);
}
END_TEST

START_TEST(test_request_fields)
{
    static const char request[] = "GET /stomp/ws?token=abc&x=1 HTTP/1.1\r\n"
                                  "Host: broker.local:8080\r\n"
                                  "Origin: https://app.example\r\n"
                                  "Cookie: a=1\r\n"
                                  "Cookie: b=2\r\n"
                                  "Authorization:   Basic dTpw  \r\n"
                                  "X-Forwarded-For: 10.0.0.1\r\n"
                                  "Content-Length: 42\r\n"
                                  "Transfer-Encoding: chunked\r\n"
                                  "\r\n"
                                  "\x81\x85 frame bytes after the head";
    struct parsed p;
    parse_n(&p, request, sizeof(request) - 1, WS_DEFAULT_MAX_HEADER_BYTES);
    size_t head = (size_t)(strstr(request, "\r\n\r\n") - request) + 4;
    ck_assert_int_eq(p.rc, (int)head);
    ck_assert_uint_eq(p.req.header_bytes, head);
    ck_assert(slice_is(p.req.method, "GET"));
    ck_assert(slice_is(p.req.target, "/stomp/ws?token=abc&x=1"));
    ck_assert(slice_is(p.req.path, "/stomp/ws"));
    ck_assert(slice_is(p.req.query, "token=abc&x=1"));
    ck_assert_int_eq(p.req.minor_version, 1);
    ck_assert(slice_is(p.req.host, "broker.local:8080"));
    ck_assert(slice_is(p.req.origin, "https://app.example"));
    ck_assert(slice_is(p.req.cookie, "a=1"));
    ck_assert(slice_is(p.req.authorization, "Basic dTpw"));
    ck_assert(slice_is(p.req.sec_websocket_key, NULL));
    ck_assert_uint_eq(p.req.sec_websocket_key_count, 0);
    ck_assert_int_eq(p.req.ws_version, -1);
    ck_assert(!p.req.upgrade_websocket && !p.req.connection_upgrade);
    ck_assert(!p.req.subprotocol_header);
    ck_assert_uint_eq(p.req.subprotocols, 0);
    ck_assert_int_eq(p.req.content_length, 42);
    ck_assert(p.req.transfer_encoding);
    ck_assert_uint_eq(p.req.num_headers, 8);
    ck_assert(slice_is(p.req.headers[3].name, "Cookie"));
    ck_assert(slice_is(p.req.headers[3].value, "b=2"));
    const struct ws_http_header *h = ws_http_header_find(&p.req, "x-forwarded-for");
    ck_assert_ptr_nonnull(h);
    ck_assert(slice_is(h->value, "10.0.0.1"));
    ck_assert_ptr_null(ws_http_header_find(&p.req, "X-Forwarded"));
    parsed_free(&p);
}
END_TEST

START_TEST(test_path_query_split)
{
    static const struct {
        const char *target, *path, *query;
    } table[] = {
        {"/", "/", NULL},
        {"/chat", "/chat", NULL},
        {"/chat?", "/chat", ""},
        {"/chat?a=1?b", "/chat", "a=1?b"},
        {"/?x", "/", "x"},
        {"http://example.com/chat?x=1", "/chat", "x=1"},
        {"https://example.com", "/", NULL},
        {"ws://example.com?q", "/", "q"},
        {"HTTP://example.com/a/b", "/a/b", NULL},
        {"*", "*", NULL},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        char request[256];
        snprintf(request, sizeof(request), "GET %s HTTP/1.1\r\n\r\n", table[i].target);
        struct parsed p;
        parse(&p, request);
        ck_assert_msg(p.rc > 0, "%s", table[i].target);
        ck_assert(slice_is(p.req.target, table[i].target));
        ck_assert_msg(slice_is(p.req.path, table[i].path), "path of %s", table[i].target);
        ck_assert_msg(slice_is(p.req.query, table[i].query), "query of %s", table[i].target);
        parsed_free(&p);
    }
}
END_TEST

/* A request whose head is exactly `size` bytes: padded with an X-Pad header. */
static char *request_of_size(size_t size)
{
    static const char start[] = "GET / HTTP/1.1\r\nX-Pad: ";
    static const char end[] = "\r\n\r\n";
    size_t fixed = strlen(start) + strlen(end);
    ck_assert_uint_gt(size, fixed);
    char *r = malloc(size + 1);
    ck_assert_ptr_nonnull(r);
    memcpy(r, start, strlen(start));
    memset(r + strlen(start), 'p', size - fixed);
    memcpy(r + size - strlen(end), end, strlen(end) + 1);
    ck_assert_uint_eq(strlen(r), size);
    return r;
}

START_TEST(test_header_limit_boundary)
{
    static const size_t limits[] = {100, 1000, WS_DEFAULT_MAX_HEADER_BYTES};
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        size_t max = limits[i];
        struct parsed p;
        /* exactly at the limit: accepted, also with bytes after it */
        char *at = request_of_size(max);
        parse_n(&p, at, max, max);
        ck_assert_int_eq(p.rc, (int)max);
        parsed_free(&p);
        parse_n(&p, at, max - 1, max);
        ck_assert_int_eq(p.rc, WS_HTTP_INCOMPLETE);
        parsed_free(&p);
        char *more = malloc(max + 10);
        ck_assert_ptr_nonnull(more);
        memcpy(more, at, max);
        memset(more + max, 'b', 10);
        parse_n(&p, more, max + 10, max);
        ck_assert_int_eq(p.rc, (int)max);
        parsed_free(&p);
        free(more);
        /* one byte over: incomplete up to the limit, then too large even though complete */
        char *over = request_of_size(max + 1);
        parse_n(&p, over, max, max);
        ck_assert_int_eq(p.rc, WS_HTTP_INCOMPLETE);
        parsed_free(&p);
        parse_n(&p, over, max + 1, max);
        ck_assert_int_eq(p.rc, WS_HTTP_ERR_TOO_LARGE);
        parsed_free(&p);
        /* a raised limit accepts it */
        parse_n(&p, over, max + 1, max + 1);
        ck_assert_int_eq(p.rc, (int)max + 1);
        parsed_free(&p);
        if (max <= 1000) {
            check_prefixes(at, max, max);
            check_prefixes(over, max + 1, max);
        }
        free(at);
        free(over);
    }
}
END_TEST

/* A request line alone longer than the limit is answered as soon as the limit is passed. */
START_TEST(test_header_limit_no_line_end)
{
    char buf[300];
    memcpy(buf, "GET /", 5);
    memset(buf + 5, 'a', sizeof(buf) - 5);
    struct parsed p;
    parse_n(&p, buf, 200, 200);
    ck_assert_int_eq(p.rc, WS_HTTP_INCOMPLETE);
    parsed_free(&p);
    parse_n(&p, buf, 201, 200);
    ck_assert_int_eq(p.rc, WS_HTTP_ERR_TOO_LARGE);
    parsed_free(&p);
    parse_n(&p, buf, sizeof(buf), 200);
    ck_assert_int_eq(p.rc, WS_HTTP_ERR_TOO_LARGE);
    parsed_free(&p);
}
END_TEST

START_TEST(test_header_count_limit)
{
    char *buf = malloc(WS_HTTP_MAX_HEADERS * 16 + 64);
    ck_assert_ptr_nonnull(buf);
    for (size_t count = WS_HTTP_MAX_HEADERS; count <= WS_HTTP_MAX_HEADERS + 1; count++) {
        size_t n = (size_t)sprintf(buf, "GET / HTTP/1.1\r\n");
        for (size_t i = 0; i < count; i++)
            n += (size_t)sprintf(buf + n, "X-H%zu: v\r\n", i);
        n += (size_t)sprintf(buf + n, "\r\n");
        struct parsed p;
        parse_n(&p, buf, n, WS_DEFAULT_MAX_HEADER_BYTES);
        if (count == WS_HTTP_MAX_HEADERS) {
            ck_assert_int_eq(p.rc, (int)n);
            ck_assert_uint_eq(p.req.num_headers, WS_HTTP_MAX_HEADERS);
        } else {
            ck_assert_int_eq(p.rc, WS_HTTP_ERR_TOO_LARGE);
        }
        parsed_free(&p);
    }
    free(buf);
}
END_TEST

/* The parse result does not depend on what the struct held before. */
START_TEST(test_reparse_resets)
{
    struct ws_http_request req;
    static const char a[] = BASE V13 "Sec-WebSocket-Protocol: stomp\r\nOrigin: x\r\n\r\n";
    static const char b[] = "GET /other HTTP/1.1\r\nHost: h\r\n\r\n";
    ck_assert_int_gt(ws_http_parse(&req, a, strlen(a), 8192), 0);
    ck_assert(req.upgrade_websocket && req.subprotocol_header);
    ck_assert_int_gt(ws_http_parse(&req, b, strlen(b), 8192), 0);
    ck_assert(!req.upgrade_websocket && !req.connection_upgrade && !req.subprotocol_header);
    ck_assert_uint_eq(req.subprotocols, 0);
    ck_assert_int_eq(req.ws_version, -1);
    ck_assert(slice_is(req.origin, NULL));
    ck_assert_uint_eq(req.sec_websocket_key_count, 0);
    ck_assert_uint_eq(req.num_headers, 1);
}
END_TEST

START_TEST(test_empty_input)
{
    struct ws_http_request req;
    ck_assert_int_eq(ws_http_parse(&req, NULL, 0, WS_DEFAULT_MAX_HEADER_BYTES), WS_HTTP_INCOMPLETE);
    ck_assert_int_eq(ws_http_parse(&req, "\r\n\r\n", 4, WS_DEFAULT_MAX_HEADER_BYTES),
                     WS_HTTP_INCOMPLETE);
    ck_assert_int_eq(ws_http_parse(&req, "x", 1, 0), WS_HTTP_ERR_TOO_LARGE);
}
END_TEST

/* ---- client side: key, request builder, response parser and check ---- */

#define ALL_STOMP                                                                                  \
    (WS_SUBPROTOCOL_BIT(WS_SUBPROTOCOL_V12_STOMP) | WS_SUBPROTOCOL_BIT(WS_SUBPROTOCOL_V11_STOMP) | \
     WS_SUBPROTOCOL_BIT(WS_SUBPROTOCOL_V10_STOMP))

/* RFC 6455 section 4.1's example nonce is the 16 bytes "the sample nonce". */
START_TEST(test_client_key_rfc)
{
    char key[WS_KEY_LEN + 1];
    memset(key, 'x', sizeof(key));
    ws_client_key((const uint8_t *)"the sample nonce", key);
    ck_assert_str_eq(key, RFC_KEY);
    uint8_t zeros[WS_KEY_NONCE_LEN] = {0};
    ws_client_key(zeros, key);
    ck_assert_str_eq(key, "AAAAAAAAAAAAAAAAAAAAAA==");
}
END_TEST

START_TEST(test_client_request_bytes)
{
    struct ws_client_request req = {.host = "[::1]:15674",
                                    .target = "/ws?access_token=abc",
                                    .key = RFC_KEY,
                                    .subprotocols = ALL_STOMP,
                                    .extra_headers = "Origin: http://a.example\r\n"};
    static const char want[] = "GET /ws?access_token=abc HTTP/1.1\r\n"
                               "Host: [::1]:15674\r\n"
                               "Upgrade: websocket\r\n"
                               "Connection: Upgrade\r\n"
                               "Sec-WebSocket-Key: " RFC_KEY "\r\n"
                               "Sec-WebSocket-Version: 13\r\n"
                               "Sec-WebSocket-Protocol: v12.stomp, v11.stomp, v10.stomp\r\n"
                               "Origin: http://a.example\r\n"
                               "\r\n";
    char out[512];
    ck_assert_int_eq(ws_client_request(out, sizeof(out), &req), (int)strlen(want));
    ck_assert_str_eq(out, want);
    for (size_t cap = 0; cap <= strlen(want); cap++)
        ck_assert_int_eq(ws_client_request(out, cap, &req), WS_HTTP_ERR_NO_SPACE);
    /* no subprotocols, no extra headers: neither line appears */
    req.subprotocols = 0;
    req.extra_headers = NULL;
    ck_assert_int_gt(ws_client_request(out, sizeof(out), &req), 0);
    ck_assert_ptr_null(strstr(out, "Sec-WebSocket-Protocol"));
    ck_assert_ptr_null(strstr(out, "Origin"));
    req.subprotocols = WS_SUBPROTOCOL_BIT(WS_SUBPROTOCOL_V10_STOMP);
    ck_assert_int_gt(ws_client_request(out, sizeof(out), &req), 0);
    ck_assert_ptr_nonnull(strstr(out, "\r\nSec-WebSocket-Protocol: v10.stomp\r\n"));
}
END_TEST

/* Host, target and key must not be able to end a header line or add one. */
START_TEST(test_client_request_rejects_unsafe_values)
{
    static const char *const bad[] = {"", "a b", "a\r\nX-Evil: 1", "a\tb", "caf\xC3\xA9", "a\x7F"};
    char out[512];
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct ws_client_request host = {.host = bad[i], .target = "/", .key = RFC_KEY};
        struct ws_client_request target = {.host = "a", .target = bad[i], .key = RFC_KEY};
        struct ws_client_request key = {.host = "a", .target = "/", .key = bad[i]};
        ck_assert_int_eq(ws_client_request(out, sizeof(out), &host), WS_HTTP_ERR_BAD_REQUEST);
        ck_assert_int_eq(ws_client_request(out, sizeof(out), &target), WS_HTTP_ERR_BAD_REQUEST);
        ck_assert_int_eq(ws_client_request(out, sizeof(out), &key), WS_HTTP_ERR_BAD_REQUEST);
    }
    struct ws_client_request null_host = {.host = NULL, .target = "/", .key = RFC_KEY};
    ck_assert_int_eq(ws_client_request(out, sizeof(out), &null_host), WS_HTTP_ERR_BAD_REQUEST);
}
END_TEST

/* Our request through our server side, and the server's 101 back through the client check. */
START_TEST(test_client_server_roundtrip)
{
    static const unsigned offers[] = {0, ALL_STOMP, WS_SUBPROTOCOL_BIT(WS_SUBPROTOCOL_V11_STOMP),
                                      WS_SUBPROTOCOL_BIT(WS_SUBPROTOCOL_STOMP)};
    static const enum ws_subprotocol chosen[] = {WS_SUBPROTOCOL_NONE, WS_SUBPROTOCOL_V12_STOMP,
                                                 WS_SUBPROTOCOL_V11_STOMP, WS_SUBPROTOCOL_STOMP};
    for (size_t i = 0; i < sizeof(offers) / sizeof(offers[0]); i++) {
        char key[WS_KEY_LEN + 1], request[512], response[512];
        uint8_t nonce[WS_KEY_NONCE_LEN];
        for (size_t k = 0; k < sizeof(nonce); k++)
            nonce[k] = (uint8_t)(i * 31 + k * 7);
        ws_client_key(nonce, key);
        struct ws_client_request creq = {
            .host = "h:1", .target = "/ws", .key = key, .subprotocols = offers[i]};
        int n = ws_client_request(request, sizeof(request), &creq);
        ck_assert_int_gt(n, 0);
        struct parsed p;
        parse_n(&p, request, (size_t)n, WS_DEFAULT_MAX_HEADER_BYTES);
        ck_assert_int_eq(p.rc, n);
        struct ws_upgrade up;
        ck_assert_int_eq(ws_upgrade_check(&p.req, &up), 0);
        ck_assert_int_eq(up.subprotocol, chosen[i]);
        parsed_free(&p);

        int m = ws_upgrade_response(response, sizeof(response), &up);
        ck_assert_int_gt(m, 0);
        struct ws_http_response resp;
        struct guard g;
        char *buf = (char *)guard_copy(&g, response, (size_t)m);
        ck_assert_int_eq(ws_http_response_parse(&resp, buf, (size_t)m, 8192), m);
        struct ws_client_upgrade cu;
        ck_assert_int_eq(ws_client_response_check(&resp, key, offers[i], &cu), 0);
        ck_assert_str_eq(cu.message, "ok");
        ck_assert_int_eq(cu.subprotocol, chosen[i]);
        /* the same 101 does not fit another key */
        ck_assert_int_eq(ws_client_response_check(&resp, RFC_KEY, offers[i], &cu),
                         WS_HTTP_ERR_REJECTED);
        guard_release(&g);
    }
}
END_TEST

struct response_case {
    const char *name;
    const char *response;
    int rc;                          /* parse: WS_HTTP_ERR_... or 1 for "the whole string" */
    const char *reject;              /* check: substring of the message, NULL when accepted */
    enum ws_subprotocol subprotocol; /* check: chosen, when accepted */
};

#define R101        "HTTP/1.1 101 Switching Protocols\r\n"
#define UPGRADE     "Upgrade: websocket\r\nConnection: Upgrade\r\n"
#define ACCEPT      "Sec-WebSocket-Accept: " RFC_ACCEPT "\r\n"
#define GOOD(extra) R101 UPGRADE ACCEPT extra "\r\n"

static const struct response_case response_cases[] = {
    {"101, no protocol", GOOD(""), 1, NULL, WS_SUBPROTOCOL_NONE},
    {"101, v12", GOOD("Sec-WebSocket-Protocol: v12.stomp\r\n"), 1, NULL, WS_SUBPROTOCOL_V12_STOMP},
    {"101, v10", GOOD("Sec-WebSocket-Protocol: v10.stomp\r\n"), 1, NULL, WS_SUBPROTOCOL_V10_STOMP},
    {"header names in any case",
     "HTTP/1.1 101 Switching Protocols\r\nUPGRADE: WebSocket\r\nconnection: keep-alive, upgrade\r\n"
     "sec-websocket-accept: " RFC_ACCEPT "\r\n\r\n",
     1, NULL, WS_SUBPROTOCOL_NONE},
    {"no reason phrase", "HTTP/1.1 101\r\n" UPGRADE ACCEPT "\r\n", 1, NULL, WS_SUBPROTOCOL_NONE},
    {"empty reason phrase", "HTTP/1.1 101 \r\n" UPGRADE ACCEPT "\r\n", 1, NULL,
     WS_SUBPROTOCOL_NONE},
    {"LF line ends",
     "HTTP/1.1 101 OK\nUpgrade: websocket\nConnection: Upgrade\n"
     "Sec-WebSocket-Accept: " RFC_ACCEPT "\n\n",
     1, NULL, WS_SUBPROTOCOL_NONE},
    {"404 with a body", "HTTP/1.1 404 Not Found\r\nContent-Length: 10\r\nConnection: close\r\n\r\n",
     1, "status is not 101", WS_SUBPROTOCOL_NONE},
    {"200", "HTTP/1.1 200 OK\r\n" UPGRADE ACCEPT "\r\n", 1, "status is not 101",
     WS_SUBPROTOCOL_NONE},
    {"no Upgrade", R101 "Connection: Upgrade\r\n" ACCEPT "\r\n", 1, "Upgrade: websocket",
     WS_SUBPROTOCOL_NONE},
    {"Upgrade: h2c", R101 "Upgrade: h2c\r\nConnection: Upgrade\r\n" ACCEPT "\r\n", 1,
     "Upgrade: websocket", WS_SUBPROTOCOL_NONE},
    {"no Connection", R101 "Upgrade: websocket\r\n" ACCEPT "\r\n", 1, "Connection: Upgrade",
     WS_SUBPROTOCOL_NONE},
    {"no accept", R101 UPGRADE "\r\n", 1, "Sec-WebSocket-Accept header missing",
     WS_SUBPROTOCOL_NONE},
    {"wrong accept", R101 UPGRADE "Sec-WebSocket-Accept: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", 1,
     "does not match", WS_SUBPROTOCOL_NONE},
    {"accept in the wrong case",
     R101 UPGRADE "Sec-WebSocket-Accept: S3PPLMBITXAQ9KYGZZHZRBK+XOO=\r\n\r\n", 1, "does not match",
     WS_SUBPROTOCOL_NONE},
    {"two accepts", GOOD(ACCEPT), 1, "more than once", WS_SUBPROTOCOL_NONE},
    {"protocol not offered", GOOD("Sec-WebSocket-Protocol: chat\r\n"), 1, "not offered",
     WS_SUBPROTOCOL_NONE},
    {"protocol list", GOOD("Sec-WebSocket-Protocol: v12.stomp, v11.stomp\r\n"), 1, "not offered",
     WS_SUBPROTOCOL_NONE},
    {"two protocols",
     GOOD("Sec-WebSocket-Protocol: v12.stomp\r\nSec-WebSocket-Protocol: v12.stomp\r\n"), 1,
     "more than once", WS_SUBPROTOCOL_NONE},
    {"extension", GOOD("Sec-WebSocket-Extensions: permessage-deflate\r\n"), 1, "extension",
     WS_SUBPROTOCOL_NONE},
    {"bytes after the head are not looked at", GOOD("") "\x81\x05hello", 0, NULL,
     WS_SUBPROTOCOL_NONE},
    {"HTTP/1.0", "HTTP/1.0 101 Switching Protocols\r\n" UPGRADE ACCEPT "\r\n", 1, NULL,
     WS_SUBPROTOCOL_NONE},
    /* malformed heads */
    {"HTTP/2", "HTTP/2 101\r\n\r\n", WS_HTTP_ERR_BAD_REQUEST, NULL, WS_SUBPROTOCOL_NONE},
    {"lower-case http", "http/1.1 101 OK\r\n\r\n", WS_HTTP_ERR_BAD_REQUEST, NULL,
     WS_SUBPROTOCOL_NONE},
    {"two-digit status", "HTTP/1.1 99 OK\r\n\r\n", WS_HTTP_ERR_BAD_REQUEST, NULL,
     WS_SUBPROTOCOL_NONE},
    {"four-digit status", "HTTP/1.1 1010 OK\r\n\r\n", WS_HTTP_ERR_BAD_REQUEST, NULL,
     WS_SUBPROTOCOL_NONE},
    {"status 099", "HTTP/1.1 099 OK\r\n\r\n", WS_HTTP_ERR_BAD_REQUEST, NULL, WS_SUBPROTOCOL_NONE},
    {"status letters", "HTTP/1.1 1x1 OK\r\n\r\n", WS_HTTP_ERR_BAD_REQUEST, NULL,
     WS_SUBPROTOCOL_NONE},
    {"two spaces", "HTTP/1.1  101 OK\r\n\r\n", WS_HTTP_ERR_BAD_REQUEST, NULL, WS_SUBPROTOCOL_NONE},
    {"control in reason", "HTTP/1.1 101 O\x01K\r\n\r\n", WS_HTTP_ERR_BAD_REQUEST, NULL,
     WS_SUBPROTOCOL_NONE},
    {"leading empty line", "\r\nHTTP/1.1 101 OK\r\n\r\n", WS_HTTP_ERR_BAD_REQUEST, NULL,
     WS_SUBPROTOCOL_NONE},
    {"obs-fold", R101 "Upgrade: websocket\r\n , x\r\n\r\n", WS_HTTP_ERR_BAD_REQUEST, NULL,
     WS_SUBPROTOCOL_NONE},
    {"missing colon", R101 "Upgrade websocket\r\n\r\n", WS_HTTP_ERR_BAD_REQUEST, NULL,
     WS_SUBPROTOCOL_NONE},
    {"Content-Length conflict", "HTTP/1.1 404 NF\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
     WS_HTTP_ERR_BAD_REQUEST, NULL, WS_SUBPROTOCOL_NONE},
};

static const size_t n_response_cases = sizeof(response_cases) / sizeof(response_cases[0]);

START_TEST(test_response_table)
{
    const struct response_case *c = &response_cases[_i];
    size_t len = strlen(c->response);
    struct guard g;
    char *buf = (char *)guard_copy(&g, c->response, len);
    struct ws_http_response resp;
    int rc = ws_http_response_parse(&resp, buf, len, WS_DEFAULT_MAX_HEADER_BYTES);
    if (c->rc == 0) /* a head followed by other bytes: its length is where the blank line ends */
        ck_assert_msg(rc > 0 && (size_t)rc < len && buf[rc - 1] == '\n', "%s: %d", c->name, rc);
    else
        ck_assert_msg(rc == (c->rc == 1 ? (int)len : c->rc), "%s: parse %d", c->name, rc);
    if (rc > 0) {
        ck_assert_uint_eq(resp.header_bytes, (size_t)rc);
        struct ws_client_upgrade cu;
        int check = ws_client_response_check(&resp, RFC_KEY, ALL_STOMP, &cu);
        ck_assert_ptr_nonnull(cu.message);
        if (c->reject == NULL) {
            ck_assert_msg(check == 0, "%s: rejected: %s", c->name, cu.message);
            ck_assert_int_eq(cu.subprotocol, c->subprotocol);
        } else {
            ck_assert_int_eq(check, WS_HTTP_ERR_REJECTED);
            ck_assert_msg(strstr(cu.message, c->reject) != NULL, "%s: message '%s'", c->name,
                          cu.message);
        }
    }
    guard_release(&g);
}
END_TEST

START_TEST(test_response_table_prefixes)
{
    const struct response_case *c = &response_cases[_i];
    check_prefixes_with(response_rc, c->response, strlen(c->response), WS_DEFAULT_MAX_HEADER_BYTES);
}
END_TEST

START_TEST(test_response_fields)
{
    static const char head[] = "HTTP/1.1 403 Forbidden here\r\n"
                               "Content-Type: text/plain\r\n"
                               "Content-Length: 22\r\n"
                               "X-Empty:\r\n"
                               "\r\n";
    struct guard g;
    char *buf = (char *)guard_copy(&g, head, strlen(head));
    struct ws_http_response resp;
    ck_assert_int_eq(ws_http_response_parse(&resp, buf, strlen(head), 8192), (int)strlen(head));
    ck_assert_int_eq(resp.minor_version, 1);
    ck_assert_int_eq(resp.status, 403);
    ck_assert(slice_is(resp.reason, "Forbidden here"));
    ck_assert_int_eq(resp.content_length, 22);
    ck_assert_uint_eq(resp.num_headers, 3);
    ck_assert(slice_is(resp.headers[0].name, "Content-Type"));
    ck_assert(slice_is(resp.headers[0].value, "text/plain"));
    ck_assert(slice_is(resp.headers[2].value, ""));
    ck_assert(!resp.upgrade_websocket && !resp.connection_upgrade);
    ck_assert_uint_eq(resp.sec_websocket_accept_count, 0);
    guard_release(&g);
}
END_TEST

/* The head limit and the header count limit apply to responses as to requests. */
START_TEST(test_response_limits)
{
    char big[600];
    int n = snprintf(big, sizeof(big), "HTTP/1.1 101 OK\r\nX-Pad: %0400d\r\n\r\n", 0);
    ck_assert_int_eq(response_rc(big, (size_t)n, (size_t)n), n);
    ck_assert_int_eq(response_rc(big, (size_t)n, (size_t)n - 1), WS_HTTP_ERR_TOO_LARGE);
    ck_assert_int_eq(response_rc(big, 20, 19), WS_HTTP_ERR_TOO_LARGE);
    ck_assert_int_eq(response_rc(big, 19, 19), WS_HTTP_INCOMPLETE);
    check_prefixes_with(response_rc, big, (size_t)n, (size_t)n - 1);

    static char many[WS_HTTP_MAX_HEADERS * 8 + 64];
    size_t len = (size_t)snprintf(many, sizeof(many), "HTTP/1.1 101 OK\r\n");
    for (int i = 0; i <= WS_HTTP_MAX_HEADERS; i++)
        len += (size_t)snprintf(many + len, sizeof(many) - len, "A: %d\r\n", i % 10);
    len += (size_t)snprintf(many + len, sizeof(many) - len, "\r\n");
    ck_assert_int_eq(response_rc(many, len, sizeof(many)), WS_HTTP_ERR_TOO_LARGE);
    ck_assert_int_eq(response_rc("", 0, 8192), WS_HTTP_INCOMPLETE);
}
END_TEST

static Suite *handshake_suite(void)
{
    Suite *s = suite_create("ws_handshake");
    TCase *rfc = tcase_create("responses");
    tcase_add_test(rfc, test_rfc_accept_key);
    tcase_add_test(rfc, test_rfc_handshake_full_response);
    tcase_add_test(rfc, test_response_without_subprotocol);
    tcase_add_test(rfc, test_http_response);
    tcase_add_test(rfc, test_http_error_response);
    tcase_add_test(rfc, test_status_text);
    tcase_add_test(rfc, test_subprotocol_names);
    suite_add_tcase(s, rfc);

    TCase *upgrade = tcase_create("upgrade");
    tcase_add_loop_test(upgrade, test_upgrade_table, 0, (int)n_upgrade_cases);
    tcase_add_loop_test(upgrade, test_upgrade_table_prefixes, 0, (int)n_upgrade_cases);
    suite_add_tcase(s, upgrade);

    TCase *parser = tcase_create("parser");
    tcase_set_timeout(parser, 60);
    tcase_add_loop_test(parser, test_parse_table, 0, (int)n_parse_cases);
    tcase_add_loop_test(parser, test_parse_table_prefixes, 0, (int)n_parse_cases);
    tcase_add_test(parser, test_request_fields);
    tcase_add_test(parser, test_path_query_split);
    tcase_add_test(parser, test_header_limit_boundary);
    tcase_add_test(parser, test_header_limit_no_line_end);
    tcase_add_test(parser, test_header_count_limit);
    tcase_add_test(parser, test_reparse_resets);
    tcase_add_test(parser, test_empty_input);
    suite_add_tcase(s, parser);

    TCase *client = tcase_create("client");
    tcase_add_test(client, test_client_key_rfc);
    tcase_add_test(client, test_client_request_bytes);
    tcase_add_test(client, test_client_request_rejects_unsafe_values);
    tcase_add_test(client, test_client_server_roundtrip);
    tcase_add_loop_test(client, test_response_table, 0, (int)n_response_cases);
    tcase_add_loop_test(client, test_response_table_prefixes, 0, (int)n_response_cases);
    tcase_add_test(client, test_response_fields);
    tcase_add_test(client, test_response_limits);
    suite_add_tcase(s, client);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(handshake_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
