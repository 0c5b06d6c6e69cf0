/*
 * ws/handshake.h - HTTP/1.1 request head parser and the RFC 6455 opening handshake.
 *
 * ws_http_parse() follows the picohttpparser contract: the caller keeps appending socket bytes to
 * one buffer and re-calls with the whole buffer; the answer is WS_HTTP_INCOMPLETE until the head
 * (request line + headers + empty line) is there, then its length. Results do not depend on how
 * the bytes were split. ws_upgrade_check() decides whether a parsed request is an acceptable
 * WebSocket upgrade (and which STOMP subprotocol to speak); the response builders write the 101,
 * or any plain HTTP answer, into a caller buffer.
 *
 * The client side (stompws-cli) is the mirror image: ws_client_key() and ws_client_request()
 * build the upgrade request, ws_http_response_parse() reads the answer's head under the same
 * re-call contract, and ws_client_response_check() decides whether it is a valid 101 for that
 * request (RFC 6455 section 4.1). The caller supplies the random bytes of the key.
 *
 * Must not: allocate, copy request bytes (results are slices into the caller's buffer), do I/O,
 * or include libevent/socket headers. Only libcrypto (SHA-1, base64) is used.
 */
#ifndef STOMPWS_WS_HANDSHAKE_H
#define STOMPWS_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define WS_DEFAULT_MAX_HEADER_BYTES 8192
/* Header lines kept in ws_http_request.headers; more than this is answered like an oversized head.
 */
#define WS_HTTP_MAX_HEADERS 64
/* base64(SHA-1) is 28 characters; +1 for the NUL. */
#define WS_ACCEPT_LEN 28

enum ws_http_error {
    WS_HTTP_ERR_BAD_REQUEST = -1, /* malformed head -> 400 */
    WS_HTTP_INCOMPLETE = -2,      /* need more bytes (not an error) */
    WS_HTTP_ERR_TOO_LARGE = -3,   /* head over max_header_bytes or WS_HTTP_MAX_HEADERS -> 431 */
    WS_HTTP_ERR_NO_SPACE = -4,    /* response does not fit the caller's buffer */
    WS_HTTP_ERR_REJECTED = -5,    /* ws_upgrade_check: see ws_upgrade.status / .message */
};

/* Bytes owned by someone else (the caller's request buffer, or a static string). Not
 * NUL-terminated. */
struct ws_slice {
    const char *ptr; /* NULL when absent */
    size_t len;
};

struct ws_http_header {
    struct ws_slice name;  /* as sent (compare case-insensitively) */
    struct ws_slice value; /* leading and trailing spaces/tabs removed */
};

enum ws_subprotocol {
    WS_SUBPROTOCOL_NONE = 0,
    WS_SUBPROTOCOL_V12_STOMP,
    WS_SUBPROTOCOL_V11_STOMP,
    WS_SUBPROTOCOL_V10_STOMP,
    WS_SUBPROTOCOL_STOMP,
};
#define WS_SUBPROTOCOL_BIT(p) (1u << (unsigned)(p))

/*
 * One parsed request head. Every slice points into the buffer given to ws_http_parse() (or is a
 * static "/" for an absolute-form target without a path), so the buffer must outlive the struct.
 * Filled by ws_http_parse(); plain value, nothing to free.
 */
struct ws_http_request {
    struct ws_slice method; /* "GET" */
    struct ws_slice target; /* request-target as sent: "/stomp?x=1" */
    struct ws_slice path;   /* target up to '?': "/stomp" (the path part of an absolute-form URI) */
    struct ws_slice query;  /* after '?', without it; ptr NULL when there is no '?' */
    int minor_version;      /* HTTP/1.<minor_version> */

    struct ws_slice host;              /* Host; ptr NULL if absent (a repeated Host is a 400) */
    struct ws_slice origin;            /* Origin (a repeated Origin is a 400) */
    struct ws_slice cookie;            /* Cookie (the first one; all are in headers[]) */
    struct ws_slice authorization;     /* Authorization (a repeated one is a 400) */
    struct ws_slice sec_websocket_key; /* Sec-WebSocket-Key (the first one) */
    unsigned sec_websocket_key_count;  /* how many Sec-WebSocket-Key headers (must be 1) */

    bool upgrade_websocket;  /* token "websocket" in any Upgrade header, case-insensitive */
    bool connection_upgrade; /* token "upgrade" in any Connection header, case-insensitive */
    int ws_version;          /* Sec-WebSocket-Version: -1 missing, -2 malformed or conflicting */
    unsigned subprotocols;   /* WS_SUBPROTOCOL_BIT() of each known token, across all headers */
    bool subprotocol_header; /* at least one Sec-WebSocket-Protocol header was sent */

    int64_t content_length; /* Content-Length, -1 if absent (conflicting values are a 400) */
    bool transfer_encoding; /* a Transfer-Encoding header was sent (bodies we cannot frame) */

    struct ws_http_header headers[WS_HTTP_MAX_HEADERS]; /* every header line, in order */
    size_t num_headers;
    size_t header_bytes; /* length of the head including the final empty line */
};

/*
 * Parses the request head at the start of buf[0..len). Returns its length (> 0) when complete,
 * WS_HTTP_INCOMPLETE when more bytes are needed, WS_HTTP_ERR_TOO_LARGE once len exceeds
 * max_header_bytes with no complete head inside the limit (a head of exactly max_header_bytes is
 * accepted), or WS_HTTP_ERR_BAD_REQUEST. Re-call with the whole grown buffer; bytes after the head
 * (a body, or early WebSocket frames) are not looked at. *req is only meaningful on success.
 * Header names are case-insensitive; LF-only line ends are tolerated, and so are empty lines
 * before the request line. 400 for: a bad request line (method token, target of visible ASCII in
 * origin, absolute or asterisk form, "HTTP/1.x"), obs-fold (continuation lines), control
 * characters, a missing colon or space before it, a repeated Host, Origin or Authorization,
 * and a malformed or conflicting Content-Length.
 */
int ws_http_parse(struct ws_http_request *req, const char *buf, size_t len,
                  size_t max_header_bytes);

/* First header named name (case-insensitive) or NULL. The result points into req. */
const struct ws_http_header *ws_http_header_find(const struct ws_http_request *req,
                                                 const char *name);

/* "v12.stomp", ..., "stomp"; NULL for WS_SUBPROTOCOL_NONE or unknown values. */
const char *ws_subprotocol_name(enum ws_subprotocol p);

/* The decision on one upgrade request. Plain value; message is a static string. */
struct ws_upgrade {
    int status;                      /* 101 when accepted, else the HTTP status to answer */
    const char *message;             /* static, short human reason ("ok" on success) */
    enum ws_subprotocol subprotocol; /* chosen; NONE when the client offered no header */
    char accept[WS_ACCEPT_LEN + 1];  /* Sec-WebSocket-Accept value, NUL-terminated */
    const char *extensions;          /* borrowed: the Sec-WebSocket-Extensions value to answer
                                        with (deflate.h), NULL for none; the check sets NULL */
};

/*
 * Checks req against RFC 6455 section 4.2.1 and picks the subprotocol (server preference
 * v12.stomp > v11.stomp > v10.stomp > stomp, whatever the client's order). Returns 0 with
 * out->status 101 and out->accept computed, or WS_HTTP_ERR_REJECTED with out->status:
 *   400  method not GET (RFC 6455 4.2.1 asks for 400, and 405 would need an Allow header),
 *        HTTP/1.0, missing Host, no "Upgrade: websocket", no "Connection: upgrade",
 *        Sec-WebSocket-Key missing, repeated or not base64 of 16 bytes,
 *        Sec-WebSocket-Protocol offered but with no protocol we speak
 *   426  Sec-WebSocket-Version missing or not 13 (answer with Sec-WebSocket-Version: 13)
 * Origin, path and authorization are the caller's policy, not checked here.
 */
int ws_upgrade_check(const struct ws_http_request *req, struct ws_upgrade *out);

/* Computes base64(SHA-1(key + RFC 6455 GUID)) into accept (NUL-terminated). 0 or -1 (libcrypto). */
int ws_accept_key(const char *key, size_t key_len, char accept[WS_ACCEPT_LEN + 1]);

/*
 * Writes the 101 Switching Protocols head for an accepted upgrade (Sec-WebSocket-Protocol only
 * when one was chosen, Sec-WebSocket-Extensions only when up->extensions is set). Returns its
 * length, or WS_HTTP_ERR_NO_SPACE if cap is too small. Like every response builder here, it also
 * writes a NUL after the response, so cap must have room for it (the NUL is not counted in the
 * length).
 */
int ws_upgrade_response(char *out, size_t cap, const struct ws_upgrade *up);

/*
 * Writes a whole HTTP/1.1 response: status line, extra_headers (may be NULL; each line ending in
 * CRLF), Content-Type (omitted when content_type is NULL), Content-Length, Connection: close, the
 * empty line and body. Returns the length, or WS_HTTP_ERR_NO_SPACE.
 */
int ws_http_response(char *out, size_t cap, int status, const char *extra_headers,
                     const char *content_type, const char *body, size_t body_len);

/* A text/plain response whose body is message + "\n"; 426 adds Sec-WebSocket-Version: 13. */
int ws_http_error_response(char *out, size_t cap, int status, const char *message);

/* Reason phrase for 101, 200, 202, 400, 401, 403, 404, 405, 426, 429, 431, 500, 503; else
 * "Unknown". */
const char *ws_http_status_text(int status);

/* ---- client side ---- */

/* Sec-WebSocket-Key: base64 of 16 random bytes is 24 characters. */
#define WS_KEY_NONCE_LEN 16
#define WS_KEY_LEN       24

/*
 * Writes the Sec-WebSocket-Key for nonce (NUL-terminated). The nonce must come from a
 * cryptographic random source (RFC 6455 4.1); it is a parameter so the encoding is testable.
 */
void ws_client_key(const uint8_t nonce[WS_KEY_NONCE_LEN], char key[WS_KEY_LEN + 1]);

/* What a client's upgrade request says. Strings are borrowed and NUL-terminated. */
struct ws_client_request {
    const char *host;          /* Host header value: "example.com", "[::1]:15674" */
    const char *target;        /* request-target: "/ws" or "/ws?access_token=..." */
    const char *key;           /* from ws_client_key() */
    unsigned subprotocols;     /* WS_SUBPROTOCOL_BIT()s offered (0: no Sec-WebSocket-Protocol) */
    const char *extra_headers; /* NULL, or lines each ending in CRLF (Authorization, Origin) */
};

/*
 * Writes the GET upgrade request head for req, offering its subprotocols in the server's order of
 * preference (v12.stomp first). Returns its length (a NUL follows, not counted),
 * WS_HTTP_ERR_NO_SPACE, or WS_HTTP_ERR_BAD_REQUEST when host, target or key is empty or holds
 * a space or control character (they would break or inject header lines).
 */
int ws_client_request(char *out, size_t cap, const struct ws_client_request *req);

/*
 * One parsed response head. Slices point into the buffer given to ws_http_response_parse(),
 * which must outlive the struct. Plain value, nothing to free.
 */
struct ws_http_response {
    int minor_version;      /* HTTP/1.<minor_version> */
    int status;             /* three digits, 100..999 */
    struct ws_slice reason; /* reason phrase, possibly empty */

    bool upgrade_websocket;                 /* token "websocket" in any Upgrade header */
    bool connection_upgrade;                /* token "upgrade" in any Connection header */
    struct ws_slice sec_websocket_accept;   /* the first Sec-WebSocket-Accept */
    unsigned sec_websocket_accept_count;    /* how many (must be 1) */
    struct ws_slice sec_websocket_protocol; /* the first Sec-WebSocket-Protocol */
    unsigned sec_websocket_protocol_count;  /* how many (at most 1) */
    bool sec_websocket_extensions;          /* the server named an extension */
    int64_t content_length;                 /* -1 if absent (conflicting values are malformed) */

    struct ws_http_header headers[WS_HTTP_MAX_HEADERS]; /* every header line, in order */
    size_t num_headers;
    size_t header_bytes; /* length of the head including the final empty line */
};

/*
 * Parses the response head at the start of buf[0..len), with the contract of ws_http_parse():
 * its length when complete, WS_HTTP_INCOMPLETE, WS_HTTP_ERR_TOO_LARGE past max_header_bytes,
 * or WS_HTTP_ERR_BAD_REQUEST for a malformed status line ("HTTP/1.x" SP 3DIGIT [SP reason]) or
 * header line (same rules as requests). Bytes after the head (early frames) are not looked at.
 */
int ws_http_response_parse(struct ws_http_response *resp, const char *buf, size_t len,
                           size_t max_header_bytes);

/* The client's verdict on a response head. Plain value; message is a static string. */
struct ws_client_upgrade {
    const char *message;             /* static, short reason ("ok" on success) */
    enum ws_subprotocol subprotocol; /* chosen by the server; NONE when it sent no header */
};

/*
 * Checks a parsed response against the request that sent key and offered the subprotocols mask
 * (RFC 6455 4.1, the client's duties). Returns 0 when the connection is a WebSocket, or
 * WS_HTTP_ERR_REJECTED with out->message naming the failure: a status other than 101, no
 * "Upgrade: websocket" or "Connection: Upgrade", Sec-WebSocket-Accept missing, repeated or not
 * the one for key, a subprotocol (or several) that was not offered, or any extension (none is
 * ever offered). A 101 without Sec-WebSocket-Protocol is accepted: the server then speaks no
 * subprotocol and STOMP negotiates its version in CONNECT.
 */
int ws_client_response_check(const struct ws_http_response *resp, const char *key, unsigned offered,
                             struct ws_client_upgrade *out);

#endif
