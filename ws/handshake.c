/*
 * ws/handshake.c - HTTP/1.1 request head parser and RFC 6455 opening handshake (see handshake.h).
 *
 * The parser works line by line over at most max_header_bytes of the buffer, validating each
 * line only once it is complete. Every decision depends only on the bytes before it, so a
 * prefix of a request gives either WS_HTTP_INCOMPLETE or the same answer as the whole request.
 */
#include "ws/handshake.h"

#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

/* ---- character classes (RFC 9110 section 5.6.2) ---- */

static bool is_tchar(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return true;
    if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')
        return true;
    return c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Field value bytes: VCHAR, SP, HTAB and obs-text; no other control characters. */
static bool is_value_char(unsigned char c)
{
    return c == '\t' || (c >= 0x20 && c != 0x7F);
}

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

static bool slice_eq(struct ws_slice s, const char *lit)
{
    return s.len == strlen(lit) && memcmp(s.ptr, lit, s.len) == 0;
}

static struct ws_slice slice_trim(struct ws_slice s)
{
    while (s.len > 0 && is_ows(s.ptr[0])) {
        s.ptr++;
        s.len--;
    }
    while (s.len > 0 && is_ows(s.ptr[s.len - 1]))
        s.len--;
    return s;
}

/*
 * Splits a comma-separated list: returns the next trimmed element (possibly empty) and advances
 * *rest past it. Returns false when the list is exhausted.
 */
static bool list_next(struct ws_slice *rest, struct ws_slice *item)
{
    if (rest->ptr == NULL)
        return false;
    const char *comma = memchr(rest->ptr, ',', rest->len);
    size_t n = comma != NULL ? (size_t)(comma - rest->ptr) : rest->len;
    *item = slice_trim((struct ws_slice){rest->ptr, n});
    if (comma != NULL)
        *rest = (struct ws_slice){comma + 1, rest->len - n - 1};
    else
        *rest = (struct ws_slice){NULL, 0};
    return true;
}

static bool list_has_token(struct ws_slice list, const char *token)
{
    struct ws_slice item;
    while (list_next(&list, &item))
        if (slice_ieq(item, token))
            return true;
    return false;
}

/* ---- request line ---- */

static bool is_scheme_char(char c)
{
    unsigned char u = (unsigned char)c;
    return ((u | 0x20) >= 'a' && (u | 0x20) <= 'z') || (u >= '0' && u <= '9') || c == '+' ||
           c == '-' || c == '.';
}

/* Path of an absolute-form target (scheme "://" authority [path]); false if it is not one. */
static bool absolute_form_path(struct ws_slice t, const char *path_end, struct ws_slice *path)
{
    size_t before_query = (size_t)(path_end - t.ptr);
    size_t i = 0;
    while (i < before_query && is_scheme_char(t.ptr[i]))
        i++;
    if (i == 0 || before_query - i < 3 || memcmp(t.ptr + i, "://", 3) != 0)
        return false;
    const char *authority = t.ptr + i + 3;
    const char *slash = memchr(authority, '/', (size_t)(path_end - authority));
    if (slash != NULL)
        *path = (struct ws_slice){slash, (size_t)(path_end - slash)};
    else
        *path = (struct ws_slice){"/", 1};
    return true;
}

/* Splits the request-target into path and query; false for a form we do not serve. */
static bool split_target(struct ws_http_request *req)
{
    struct ws_slice t = req->target;
    const char *end = t.ptr + t.len;
    const char *q = memchr(t.ptr, '?', t.len);
    const char *path_end = q != NULL ? q : end;
    if (q != NULL)
        req->query = (struct ws_slice){q + 1, (size_t)(end - q - 1)};
    if (t.ptr[0] == '/' || (t.len == 1 && t.ptr[0] == '*')) {
        req->path = (struct ws_slice){t.ptr, (size_t)(path_end - t.ptr)};
        return true;
    }
    return absolute_form_path(t, path_end, &req->path);
}

/* method SP request-target SP "HTTP/1." DIGIT */
static bool parse_request_line(struct ws_http_request *req, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ' ')
        return false;
    req->method = (struct ws_slice){p, i};
    size_t t = ++i;
    while (i < n && (unsigned char)p[i] > 0x20 && (unsigned char)p[i] < 0x7F)
        i++;
    if (i == t || i == n || p[i] != ' ')
        return false;
    req->target = (struct ws_slice){p + t, i - t};
    i++;
    if (n - i != 8 || memcmp(p + i, "HTTP/1.", 7) != 0 || p[i + 7] < '0' || p[i + 7] > '9')
        return false;
    req->minor_version = p[i + 7] - '0';
    return split_target(req);
}

/* ---- headers ---- */

/* Sec-WebSocket-Version: a decimal number; -2 when malformed or different from an earlier one. */
static void note_version(struct ws_http_request *req, struct ws_slice v)
{
    int version = 0;
    bool ok = v.len > 0 && v.len <= 3;
    for (size_t i = 0; ok && i < v.len; i++) {
        ok = v.ptr[i] >= '0' && v.ptr[i] <= '9';
        version = version * 10 + (v.ptr[i] - '0');
    }
    if (!ok || (req->ws_version != -1 && req->ws_version != version))
        req->ws_version = -2;
    else
        req->ws_version = version;
}

static const char *const subprotocol_names[] = {
    [WS_SUBPROTOCOL_V12_STOMP] = "v12.stomp",
    [WS_SUBPROTOCOL_V11_STOMP] = "v11.stomp",
    [WS_SUBPROTOCOL_V10_STOMP] = "v10.stomp",
    [WS_SUBPROTOCOL_STOMP] = "stomp",
};
#define SUBPROTOCOL_COUNT (sizeof(subprotocol_names) / sizeof(subprotocol_names[0]))

const char *ws_subprotocol_name(enum ws_subprotocol p)
{
    if ((unsigned)p == WS_SUBPROTOCOL_NONE || (unsigned)p >= SUBPROTOCOL_COUNT)
        return NULL;
    return subprotocol_names[p];
}

/* Subprotocol names are compared exactly (they are registered lower-case tokens). */
static void note_subprotocols(struct ws_http_request *req, struct ws_slice list)
{
    struct ws_slice item;
    req->subprotocol_header = true;
    while (list_next(&list, &item))
        for (unsigned p = WS_SUBPROTOCOL_NONE + 1; p < SUBPROTOCOL_COUNT; p++)
            if (slice_eq(item, subprotocol_names[p]))
                req->subprotocols |= WS_SUBPROTOCOL_BIT(p);
}

/* Content-Length: 1*DIGIT; a second, different value is a 400 (RFC 9112 6.3). */
static bool note_content_length(int64_t *content_length, struct ws_slice v)
{
    int64_t n = 0;
    if (v.len == 0 || v.len > 15)
        return false;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return false;
        n = n * 10 + (v.ptr[i] - '0');
    }
    if (*content_length != -1 && *content_length != n)
        return false;
    *content_length = n;
    return true;
}

/* Remembers a header that may appear only once; false if it already did. */
static bool note_single(struct ws_slice *field, struct ws_slice v)
{
    if (field->ptr != NULL)
        return false;
    *field = v;
    return true;
}

/* Keeps the first value of a header that may repeat (the rest stay in headers[]). */
static void note_first(struct ws_slice *field, struct ws_slice v)
{
    if (field->ptr == NULL)
        *field = v;
}

/* Records what the handshake needs from one header; false if it makes the request invalid. */
static bool note_header(struct ws_http_request *req, struct ws_slice name, struct ws_slice v)
{
    if (slice_ieq(name, "host"))
        return note_single(&req->host, v);
    if (slice_ieq(name, "origin"))
        return note_single(&req->origin, v);
    if (slice_ieq(name, "authorization"))
        return note_single(&req->authorization, v);
    if (slice_ieq(name, "content-length"))
        return note_content_length(&req->content_length, v);
    if (slice_ieq(name, "cookie")) {
        note_first(&req->cookie, v);
    } else if (slice_ieq(name, "upgrade")) {
        req->upgrade_websocket |= list_has_token(v, "websocket");
    } else if (slice_ieq(name, "connection")) {
        req->connection_upgrade |= list_has_token(v, "upgrade");
    } else if (slice_ieq(name, "sec-websocket-version")) {
        note_version(req, v);
    } else if (slice_ieq(name, "sec-websocket-protocol")) {
        note_subprotocols(req, v);
    } else if (slice_ieq(name, "sec-websocket-key")) {
        note_first(&req->sec_websocket_key, v);
        req->sec_websocket_key_count++;
    } else if (slice_ieq(name, "transfer-encoding")) {
        req->transfer_encoding = true;
    }
    return true;
}

/* name ":" OWS value OWS (n > 0) into *h; false for a malformed line, obs-fold included. */
static bool split_header_line(const char *p, size_t n, struct ws_http_header *h)
{
    if (is_ows(p[0]))
        return false; /* obs-fold */
    size_t i = 0;
    while (i < n && is_tchar((unsigned char)p[i]))
        i++;
    if (i == 0 || i == n || p[i] != ':')
        return false;
    for (size_t k = i + 1; k < n; k++)
        if (!is_value_char((unsigned char)p[k]))
            return false;
    h->name = (struct ws_slice){p, i};
    h->value = slice_trim((struct ws_slice){p + i + 1, n - i - 1});
    return true;
}

/* One request header line; returns a ws_http_error or 0. */
static int parse_header_line(struct ws_http_request *req, const char *p, size_t n)
{
    struct ws_http_header h;
    if (!split_header_line(p, n, &h))
        return WS_HTTP_ERR_BAD_REQUEST;
    if (req->num_headers == WS_HTTP_MAX_HEADERS)
        return WS_HTTP_ERR_TOO_LARGE;
    req->headers[req->num_headers++] = h;
    return note_header(req, h.name, h.value) ? 0 : WS_HTTP_ERR_BAD_REQUEST;
}

/*
 * Finds the next line in buf[pos..limit): sets *line_len (without CR LF or LF) and returns the
 * offset after the LF, or 0 if no LF is there yet. A CR not right before the LF stays in the
 * line, where the character checks reject it.
 */
static size_t next_line(const char *buf, size_t pos, size_t limit, size_t *line_len)
{
    if (pos >= limit)
        return 0;
    const char *lf = memchr(buf + pos, '\n', limit - pos);
    if (lf == NULL)
        return 0;
    size_t end = (size_t)(lf - buf);
    *line_len = end - pos;
    if (*line_len > 0 && buf[end - 1] == '\r')
        (*line_len)--;
    return end + 1;
}

static void request_reset(struct ws_http_request *req)
{
    memset(req, 0, offsetof(struct ws_http_request, headers));
    req->ws_version = -1;
    req->content_length = -1;
    req->num_headers = 0;
    req->header_bytes = 0;
}

/* Answer when the head does not end inside buf[0..limit). */
static int unfinished(size_t len, size_t limit)
{
    return len > limit ? WS_HTTP_ERR_TOO_LARGE : WS_HTTP_INCOMPLETE;
}

int ws_http_parse(struct ws_http_request *req, const char *buf, size_t len, size_t max_header_bytes)
{
    size_t limit = len < max_header_bytes ? len : max_header_bytes;
    size_t pos = 0, next, n;
    request_reset(req);
    /* RFC 9112 2.2: ignore empty lines before the request line. */
    while ((next = next_line(buf, pos, limit, &n)) != 0 && n == 0)
        pos = next;
    if (next == 0)
        return unfinished(len, limit);
    if (!parse_request_line(req, buf + pos, n))
        return WS_HTTP_ERR_BAD_REQUEST;
    for (pos = next; (next = next_line(buf, pos, limit, &n)) != 0; pos = next) {
        if (n == 0) {
            req->header_bytes = next;
            return next > INT_MAX ? WS_HTTP_ERR_TOO_LARGE : (int)next;
        }
        int err = parse_header_line(req, buf + pos, n);
        if (err != 0)
            return err;
    }
    return unfinished(len, limit);
}

const struct ws_http_header *ws_http_header_find(const struct ws_http_request *req,
                                                 const char *name)
{
    for (size_t i = 0; i < req->num_headers; i++)
        if (slice_ieq(req->headers[i].name, name))
            return &req->headers[i];
    return NULL;
}

/* ---- upgrade decision ---- */

static int base64_value(char c)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *hit = c != '\0' ? strchr(alphabet, c) : NULL;
    return hit != NULL ? (int)(hit - alphabet) : -1;
}

/* Canonical base64 of 16 bytes: 22 symbols (the last one carrying 2 bits) and "==". */
static bool key_valid(struct ws_slice key)
{
    if (key.len != 24 || key.ptr[22] != '=' || key.ptr[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (base64_value(key.ptr[i]) < 0)
            return false;
    return (base64_value(key.ptr[21]) & 0x0F) == 0;
}

int ws_accept_key(const char *key, size_t key_len, char accept[WS_ACCEPT_LEN + 1])
{
    char input[128];
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int digest_len = 0;
    size_t guid_len = sizeof(WS_GUID) - 1;
    if (key_len > sizeof(input) - guid_len)
        return -1;
    memcpy(input, key, key_len);
    memcpy(input + key_len, WS_GUID, guid_len);
    if (EVP_Digest(input, key_len + guid_len, digest, &digest_len, EVP_sha1(), NULL) != 1 ||
        digest_len != 20)
        return -1;
    if (EVP_EncodeBlock((unsigned char *)accept, digest, 20) != WS_ACCEPT_LEN)
        return -1;
    return 0;
}

static int reject(struct ws_upgrade *out, int status, const char *message)
{
    out->status = status;
    out->message = message;
    return WS_HTTP_ERR_REJECTED;
}

/* Lowest enum value = most preferred, whatever order the client listed them in. */
static enum ws_subprotocol choose_subprotocol(unsigned offered)
{
    for (unsigned p = WS_SUBPROTOCOL_NONE + 1; p < SUBPROTOCOL_COUNT; p++)
        if (offered & WS_SUBPROTOCOL_BIT(p))
            return (enum ws_subprotocol)p;
    return WS_SUBPROTOCOL_NONE;
}

int ws_upgrade_check(const struct ws_http_request *req, struct ws_upgrade *out)
{
    memset(out, 0, sizeof(*out));
    if (!slice_eq(req->method, "GET"))
        return reject(out, 400, "WebSocket upgrade must use GET");
    if (req->minor_version < 1)
        return reject(out, 400, "WebSocket upgrade needs HTTP/1.1");
    if (req->host.ptr == NULL)
        return reject(out, 400, "Host header missing");
    if (!req->upgrade_websocket)
        return reject(out, 400, "Upgrade: websocket header missing");
    if (!req->connection_upgrade)
        return reject(out, 400, "Connection: Upgrade header missing");
    if (req->ws_version != 13)
        return reject(out, 426, "Sec-WebSocket-Version must be 13");
    if (req->sec_websocket_key_count > 1)
        return reject(out, 400, "Sec-WebSocket-Key sent more than once");
    if (!key_valid(req->sec_websocket_key))
        return reject(out, 400, "Sec-WebSocket-Key must be base64 of 16 bytes");
    out->subprotocol = choose_subprotocol(req->subprotocols);
    if (req->subprotocol_header && out->subprotocol == WS_SUBPROTOCOL_NONE)
        return reject(out, 400,
                      "Sec-WebSocket-Protocol: none of v12.stomp, v11.stomp, v10.stomp, stomp");
    if (ws_accept_key(req->sec_websocket_key.ptr, req->sec_websocket_key.len, out->accept) != 0)
        return reject(out, 500, "cannot compute Sec-WebSocket-Accept");
    out->status = 101;
    out->message = "ok";
    return 0;
}

/* ---- responses ---- */

/* Appends into a fixed buffer; remembers overflow instead of failing at each call. */
struct writer {
    char *out;
    size_t cap;
    size_t len;
    bool overflow;
};

static void put(struct writer *w, const char *p, size_t n)
{
    if (w->overflow || n > w->cap - w->len) {
        w->overflow = true;
        return;
    }
    if (n > 0)
        memcpy(w->out + w->len, p, n);
    w->len += n;
}

static void puts_w(struct writer *w, const char *s)
{
    put(w, s, strlen(s));
}

static void put_number(struct writer *w, unsigned long long v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", v);
    put(w, tmp, (size_t)n);
}

/* NUL-terminates and returns the length (without the NUL), or WS_HTTP_ERR_NO_SPACE. */
static int finish(struct writer *w)
{
    put(w, "", 1);
    if (w->overflow || w->len - 1 > INT_MAX)
        return WS_HTTP_ERR_NO_SPACE;
    return (int)(w->len - 1);
}

static void put_status_line(struct writer *w, int status)
{
    puts_w(w, "HTTP/1.1 ");
    put_number(w, (unsigned long long)status);
    puts_w(w, " ");
    puts_w(w, ws_http_status_text(status));
    puts_w(w, "\r\n");
}

int ws_upgrade_response(char *out, size_t cap, const struct ws_upgrade *up)
{
    struct writer w = {out, cap, 0, false};
    const char *protocol = ws_subprotocol_name(up->subprotocol);
    put_status_line(&w, 101);
    puts_w(&w, "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ");
    put(&w, up->accept, strnlen(up->accept, WS_ACCEPT_LEN));
    puts_w(&w, "\r\n");
    if (protocol != NULL) {
        puts_w(&w, "Sec-WebSocket-Protocol: ");
        puts_w(&w, protocol);
        puts_w(&w, "\r\n");
    }
    if (up->extensions != NULL) {
        puts_w(&w, "Sec-WebSocket-Extensions: ");
        puts_w(&w, up->extensions);
        puts_w(&w, "\r\n");
    }
    puts_w(&w, "\r\n");
    return finish(&w);
}

/* Head and a body given in two parts (so error bodies need no temporary copy). */
static int response(char *out, size_t cap, int status, const char *extra_headers,
                    const char *content_type, struct ws_slice body1, struct ws_slice body2)
{
    struct writer w = {out, cap, 0, false};
    put_status_line(&w, status);
    if (extra_headers != NULL)
        puts_w(&w, extra_headers);
    if (content_type != NULL) {
        puts_w(&w, "Content-Type: ");
        puts_w(&w, content_type);
        puts_w(&w, "\r\n");
    }
    puts_w(&w, "Content-Length: ");
    put_number(&w, (unsigned long long)body1.len + body2.len);
    puts_w(&w, "\r\nConnection: close\r\n\r\n");
    put(&w, body1.ptr, body1.len);
    put(&w, body2.ptr, body2.len);
    return finish(&w);
}

int ws_http_response(char *out, size_t cap, int status, const char *extra_headers,
                     const char *content_type, const char *body, size_t body_len)
{
    return response(out, cap, status, extra_headers, content_type,
                    (struct ws_slice){body, body_len}, (struct ws_slice){NULL, 0});
}

int ws_http_error_response(char *out, size_t cap, int status, const char *message)
{
    const char *extra = status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL;
    if (message == NULL)
        message = ws_http_status_text(status);
    return response(out, cap, status, extra, "text/plain; charset=utf-8",
                    (struct ws_slice){message, strlen(message)}, (struct ws_slice){"\n", 1});
}

const char *ws_http_status_text(int status)
{
    switch (status) {
    case 101:
        return "Switching Protocols";
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 426:
        return "Upgrade Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 503:
        return "Service Unavailable";
    default:
        return "Unknown";
    }
}

/* ---- client side ---- */

void ws_client_key(const uint8_t nonce[WS_KEY_NONCE_LEN], char key[WS_KEY_LEN + 1])
{
    /* 16 bytes always encode to 24 characters plus the NUL EVP_EncodeBlock adds. */
    EVP_EncodeBlock((unsigned char *)key, nonce, WS_KEY_NONCE_LEN);
}

/* Host, target and key are copied onto header lines as they are: visible ASCII only. */
static bool visible_ascii(const char *s)
{
    if (s == NULL || *s == '\0')
        return false;
    for (; *s != '\0'; s++)
        if ((unsigned char)*s <= 0x20 || (unsigned char)*s >= 0x7F)
            return false;
    return true;
}

static void put_subprotocols(struct writer *w, unsigned offered)
{
    const char *sep = "Sec-WebSocket-Protocol: ";
    for (unsigned p = WS_SUBPROTOCOL_NONE + 1; p < SUBPROTOCOL_COUNT; p++) {
        if (!(offered & WS_SUBPROTOCOL_BIT(p)))
            continue;
        puts_w(w, sep);
        puts_w(w, subprotocol_names[p]);
        sep = ", ";
    }
    if (sep[0] == ',')
        puts_w(w, "\r\n");
}

int ws_client_request(char *out, size_t cap, const struct ws_client_request *req)
{
    if (!visible_ascii(req->host) || !visible_ascii(req->target) || !visible_ascii(req->key))
        return WS_HTTP_ERR_BAD_REQUEST;
    struct writer w = {out, cap, 0, false};
    puts_w(&w, "GET ");
    puts_w(&w, req->target);
    puts_w(&w, " HTTP/1.1\r\nHost: ");
    puts_w(&w, req->host);
    puts_w(&w, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
    puts_w(&w, req->key);
    puts_w(&w, "\r\nSec-WebSocket-Version: 13\r\n");
    put_subprotocols(&w, req->subprotocols);
    if (req->extra_headers != NULL)
        puts_w(&w, req->extra_headers);
    puts_w(&w, "\r\n");
    return finish(&w);
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* "HTTP/1." DIGIT SP 3DIGIT [SP reason]; a missing SP before an empty reason is tolerated. */
static bool parse_status_line(struct ws_http_response *resp, const char *p, size_t n)
{
    if (n < 12 || memcmp(p, "HTTP/1.", 7) != 0 || !is_digit(p[7]) || p[8] != ' ')
        return false;
    if (p[9] < '1' || p[9] > '9' || !is_digit(p[10]) || !is_digit(p[11]))
        return false;
    resp->minor_version = p[7] - '0';
    resp->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    if (n == 12) {
        resp->reason = (struct ws_slice){p + 12, 0};
        return true;
    }
    if (p[12] != ' ')
        return false;
    for (size_t k = 13; k < n; k++)
        if (!is_value_char((unsigned char)p[k]))
            return false;
    resp->reason = (struct ws_slice){p + 13, n - 13};
    return true;
}

/* Records what the client's check needs from one header; false if it makes the head invalid. */
static bool note_response_header(struct ws_http_response *resp, struct ws_slice name,
                                 struct ws_slice v)
{
    if (slice_ieq(name, "content-length"))
        return note_content_length(&resp->content_length, v);
    if (slice_ieq(name, "upgrade")) {
        resp->upgrade_websocket |= list_has_token(v, "websocket");
    } else if (slice_ieq(name, "connection")) {
        resp->connection_upgrade |= list_has_token(v, "upgrade");
    } else if (slice_ieq(name, "sec-websocket-accept")) {
        note_first(&resp->sec_websocket_accept, v);
        resp->sec_websocket_accept_count++;
    } else if (slice_ieq(name, "sec-websocket-protocol")) {
        note_first(&resp->sec_websocket_protocol, v);
        resp->sec_websocket_protocol_count++;
    } else if (slice_ieq(name, "sec-websocket-extensions")) {
        resp->sec_websocket_extensions = true;
    }
    return true;
}

static void response_reset(struct ws_http_response *resp)
{
    memset(resp, 0, offsetof(struct ws_http_response, headers));
    resp->content_length = -1;
    resp->num_headers = 0;
    resp->header_bytes = 0;
}

int ws_http_response_parse(struct ws_http_response *resp, const char *buf, size_t len,
                           size_t max_header_bytes)
{
    size_t limit = len < max_header_bytes ? len : max_header_bytes;
    size_t pos, next, n;
    response_reset(resp);
    if ((next = next_line(buf, 0, limit, &n)) == 0)
        return unfinished(len, limit);
    if (!parse_status_line(resp, buf, n))
        return WS_HTTP_ERR_BAD_REQUEST;
    for (pos = next; (next = next_line(buf, pos, limit, &n)) != 0; pos = next) {
        if (n == 0) {
            resp->header_bytes = next;
            return next > INT_MAX ? WS_HTTP_ERR_TOO_LARGE : (int)next;
        }
        struct ws_http_header h;
        if (!split_header_line(buf + pos, n, &h))
            return WS_HTTP_ERR_BAD_REQUEST;
        if (resp->num_headers == WS_HTTP_MAX_HEADERS)
            return WS_HTTP_ERR_TOO_LARGE;
        resp->headers[resp->num_headers++] = h;
        if (!note_response_header(resp, h.name, h.value))
            return WS_HTTP_ERR_BAD_REQUEST;
    }
    return unfinished(len, limit);
}

static int client_reject(struct ws_client_upgrade *out, const char *message)
{
    out->message = message;
    return WS_HTTP_ERR_REJECTED;
}

/* The offered subprotocol the server named, or NONE if it named something else. */
static enum ws_subprotocol offered_subprotocol(struct ws_slice name, unsigned offered)
{
    for (unsigned p = WS_SUBPROTOCOL_NONE + 1; p < SUBPROTOCOL_COUNT; p++)
        if ((offered & WS_SUBPROTOCOL_BIT(p)) && slice_eq(name, subprotocol_names[p]))
            return (enum ws_subprotocol)p;
    return WS_SUBPROTOCOL_NONE;
}

int ws_client_response_check(const struct ws_http_response *resp, const char *key, unsigned offered,
                             struct ws_client_upgrade *out)
{
    char want[WS_ACCEPT_LEN + 1];
    memset(out, 0, sizeof(*out));
    if (resp->status != 101)
        return client_reject(out, "server did not switch protocols (status is not 101)");
    if (!resp->upgrade_websocket)
        return client_reject(out, "Upgrade: websocket header missing");
    if (!resp->connection_upgrade)
        return client_reject(out, "Connection: Upgrade header missing");
    if (resp->sec_websocket_accept_count == 0)
        return client_reject(out, "Sec-WebSocket-Accept header missing");
    if (resp->sec_websocket_accept_count > 1)
        return client_reject(out, "Sec-WebSocket-Accept sent more than once");
    if (ws_accept_key(key, strlen(key), want) != 0)
        return client_reject(out, "cannot compute Sec-WebSocket-Accept");
    if (!slice_eq(resp->sec_websocket_accept, want))
        return client_reject(out, "Sec-WebSocket-Accept does not match the key sent");
    if (resp->sec_websocket_extensions)
        return client_reject(out, "server named a WebSocket extension, none was offered");
    if (resp->sec_websocket_protocol_count > 1)
        return client_reject(out, "Sec-WebSocket-Protocol sent more than once");
    if (resp->sec_websocket_protocol_count == 1) {
        out->subprotocol = offered_subprotocol(resp->sec_websocket_protocol, offered);
        if (out->subprotocol == WS_SUBPROTOCOL_NONE)
            return client_reject(out, "server chose a subprotocol that was not offered");
    }
    out->message = "ok";
    return 0;
}
