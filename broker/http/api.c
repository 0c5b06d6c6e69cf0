#include "broker/http/api.h"
#include "broker/base/url.h"
#include "broker/http/respond.h"
#include "broker/base/log.h"
#include "broker/base/message.h"
#include "broker/core/history.h"
#include "broker/core/publish.h"
#include "broker/core/queue.h"

#include <errno.h>
#include <event2/buffer.h>
#include <jansson.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "ws/utf8.h"

#define API_PUBLISH_PATH "/api/publish"
/* Request headers named X-Stomp-NAME become message headers named NAME (lower-cased). */
#define HEADER_PREFIX "x-stomp-"
/* Shorter keys could be guessed; the key file's loader refuses them. */
#define API_KEY_MIN 16
#define DIGEST_LEN  32 /* SHA-256 */

struct api_key {
    unsigned char digest[DIGEST_LEN];   /* SHA-256 of the key: the key itself is not kept */
    size_t line;                        /* its line in the key file, to name it in logs */
    struct token_bucket publish_tokens; /* limits.publish_rate, per key */
};

/* The API's state, owned by struct broker (broker.api); absent while the API is off. */
struct api {
    struct broker *broker; /* borrowed */
    struct api_key *keys;  /* owned: one per key line */
    size_t key_count;
};

static int shown(size_t len)
{
    return (int)(len > 200 ? 200 : len);
}

/* ---- the key file ---------------------------------------------------------------------------- */

/* RFC 6750's b64token characters: a key fits an Authorization header as it is. */
static bool is_key_char(unsigned char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') ||
           (ch != '\0' && strchr("-._~+/=", ch) != NULL);
}

/* Why a key line cannot be a key, or NULL. */
static const char *key_problem(const char *key, size_t len)
{
    if (len < API_KEY_MIN)
        return "API key shorter than 16 characters";
    for (size_t i = 0; i < len; i++)
        if (!is_key_char((unsigned char)key[i]))
            return "API key with a character other than A-Z a-z 0-9 - . _ ~ + / =";
    return NULL;
}

static int digest_of(const char *text, size_t len, unsigned char out[DIGEST_LEN])
{
    unsigned int n = 0;
    return EVP_Digest(text, len, out, &n, EVP_sha256(), NULL) == 1 && n == DIGEST_LEN ? 0 : -1;
}

/* The line without leading and trailing blanks (and the '\r' of CRLF files). */
static char *trim(char *line, size_t *len)
{
    size_t n = strlen(line);
    while (n > 0 && strchr(" \t\r\n", line[n - 1]) != NULL)
        n--;
    while (n > 0 && (*line == ' ' || *line == '\t')) {
        line++;
        n--;
    }
    *len = n;
    return line;
}

static int add_key(struct api_key **keys, size_t *count, const char *key, size_t len, size_t line)
{
    struct api_key *grown = realloc(*keys, (*count + 1) * sizeof(**keys));
    if (grown == NULL)
        return -1;
    *keys = grown;
    memset(&grown[*count], 0, sizeof(grown[*count]));
    grown[*count].line = line;
    if (digest_of(key, len, grown[*count].digest) != 0)
        return -1;
    (*count)++;
    return 0;
}

/*
 * Reads the key file into a fresh array: one key per line, '#' comments and blank lines
 * skipped. Returns 0, or -1 with "FILE:LINE: why" in err.
 */
static int load_keys(const char *path, struct api_key **out, size_t *out_count, char *err,
                     size_t err_len)
{
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct api_key *keys = NULL;
    size_t count = 0, line_no = 0, line_cap = 0;
    char *line = NULL;
    int rc = 0;
    while (rc == 0 && getline(&line, &line_cap, f) >= 0) {
        size_t len;
        const char *key = trim(line, &len);
        const char *problem = NULL;
        line_no++;
        if (len == 0 || key[0] == '#')
            continue;
        if ((problem = key_problem(key, len)) != NULL)
            snprintf(err, err_len, "%s:%zu: %s", path, line_no, problem);
        else if (add_key(&keys, &count, key, len, line_no) != 0)
            snprintf(err, err_len, "%s:%zu: out of memory", path, line_no);
        else
            continue;
        rc = -1;
    }
    if (rc == 0 && ferror(f)) {
        snprintf(err, err_len, "%s: read error: %s", path, strerror(errno));
        rc = -1;
    }
    if (line != NULL)
        OPENSSL_cleanse(line, line_cap);
    free(line);
    fclose(f);
    if (rc != 0) {
        free(keys);
        return -1;
    }
    *out = keys;
    *out_count = count;
    return 0;
}

/* A key that stays across a reload keeps its bucket: a SIGHUP must not refill it. */
static void init_buckets(const struct api *api, struct api_key *keys, size_t count)
{
    const struct config *cfg = &api->broker->cfg;
    uint64_t now = broker_now_ms(api->broker);
    for (size_t i = 0; i < count; i++) {
        token_bucket_init(&keys[i].publish_tokens, (double)cfg->publish_rate,
                          (double)cfg->publish_burst, now);
        for (size_t j = 0; j < api->key_count; j++)
            if (memcmp(keys[i].digest, api->keys[j].digest, DIGEST_LEN) == 0)
                keys[i].publish_tokens = api->keys[j].publish_tokens;
    }
}

/* Replaces the keys only when the whole file loads, as the auth files do on SIGHUP. */
static int load(struct api *api, char *err, size_t err_len)
{
    struct api_key *keys;
    size_t count;
    if (load_keys(api->broker->cfg.api_key_file, &keys, &count, err, err_len) != 0)
        return -1;
    init_buckets(api, keys, count);
    free(api->keys);
    api->keys = keys;
    api->key_count = count;
    return 0;
}

int api_check_config(const struct config *cfg, char *err, size_t err_len)
{
    struct api_key *keys = NULL;
    size_t count;
    if (cfg->api_key_file[0] == '\0')
        return 0;
    if (load_keys(cfg->api_key_file, &keys, &count, err, err_len) != 0)
        return -1;
    free(keys);
    return 0;
}

int api_keys_load(const char *path, struct api_key **out, size_t *count, char *err, size_t err_len)
{
    return load_keys(path, out, count, err, err_len);
}

long api_keys_match(const struct api_key *keys, size_t count, const struct ws_slice *authorization,
                    bool *missing)
{
    *missing = authorization->ptr == NULL || authorization->len <= 7 ||
               strncasecmp(authorization->ptr, "Bearer ", 7) != 0;
    if (*missing)
        return -1;
    const char *token = authorization->ptr + 7;
    size_t len = authorization->len - 7;
    while (len > 0 && *token == ' ') {
        token++;
        len--;
    }
    unsigned char digest[DIGEST_LEN];
    long match = -1;
    /* Every key is compared, in constant time: how long this takes says nothing about them. */
    if (digest_of(token, len, digest) == 0)
        for (size_t i = 0; i < count; i++)
            if (CRYPTO_memcmp(digest, keys[i].digest, DIGEST_LEN) == 0)
                match = (long)i;
    return match;
}

void api_reload(struct broker *b)
{
    struct api *api = b->api;
    char err[512];
    if (api == NULL)
        return;
    if (load(api, err, sizeof(err)) != 0)
        log_error(0, "API keys not reloaded (keeping the previous ones): %s", err);
    else
        log_info(0, "API keys reloaded: %zu from %s", api->key_count, b->cfg.api_key_file);
}

void api_free(struct api *api)
{
    if (api == NULL)
        return;
    free(api->keys);
    free(api);
}

int api_start(struct broker *b)
{
    if (b->cfg.api_key_file[0] == '\0')
        return 0;
    struct api *api = calloc(1, sizeof(*api));
    if (api == NULL) {
        log_error(0, "server.api_key_file: out of memory");
        return -1;
    }
    api->broker = b;
    char err[512];
    if (load(api, err, sizeof(err)) != 0) {
        log_error(0, "server.api_key_file: %s", err);
        api_free(api);
        return -1;
    }
    if (api->key_count == 0)
        log_warn(0, "%s holds no API key: every publish request will get 401", b->cfg.api_key_file);
    log_info(0, "publish API on " API_PUBLISH_PATH " with %zu keys from %s", api->key_count,
             b->cfg.api_key_file);
    b->api = api;
    return 0;
}

/* ---- one request ----------------------------------------------------------------------------- */

/* One API request on its way to an answer. */
struct api_request {
    struct conn *c;                    /* borrowed; NULL while only the head is looked at */
    struct broker *b;                  /* borrowed */
    const struct ws_http_request *req; /* borrowed */
    struct api_key *key;               /* borrowed: the caller's, once authorized */
    bool batch;                        /* the JSON form: answered with "ids" */
    /* The error answer, once one is decided. */
    int status;
    const char *extra_headers; /* static header lines, each ending in CRLF; NULL for none */
    int limit_hit;             /* enum limit_kind counted when answered, or -1 */
    bool auth_failed;          /* counted as an authentication error when answered */
    char error[512];
};

static int fail(struct api_request *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Decides the error answer; returns -1 so callers can `return fail(...)`. */
static int fail(struct api_request *r, int status, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof(r->error), fmt, ap);
    va_end(ap);
    r->status = status;
    return -1;
}

static bool slice_is(const struct ws_slice *s, const char *want)
{
    return s->len == strlen(want) && memcmp(s->ptr, want, s->len) == 0;
}

/* The key the request's "Authorization: Bearer KEY" names; NULL after a 401. */
static struct api_key *authorize(struct api_request *r, struct api *api)
{
    bool missing;
    long match = api_keys_match(api->keys, api->key_count, &r->req->authorization, &missing);
    r->auth_failed = match < 0;
    if (missing) {
        r->extra_headers = "WWW-Authenticate: Bearer realm=\"stompws\"\r\n";
        fail(r, 401,
             "missing API key: send 'Authorization: Bearer KEY' with a key from "
             "server.api_key_file");
        return NULL;
    }
    if (match < 0) {
        r->extra_headers =
            "WWW-Authenticate: Bearer realm=\"stompws\", error=\"invalid_token\"\r\n";
        fail(r, 401, "invalid API key");
        return NULL;
    }
    return &api->keys[match];
}

/* Everything the request head decides, before a byte of the body is read. */
static int check_head(struct api_request *r)
{
    const struct ws_http_request *req = r->req;
    struct api *api = r->b->api;
    if (api == NULL)
        return fail(r, 404,
                    "the publish API is disabled: start the broker with --api-key-file FILE "
                    "(server.api_key_file)");
    if (!slice_is(&req->path, API_PUBLISH_PATH))
        return fail(r, 404, "no API at %.*s: the API is POST " API_PUBLISH_PATH,
                    shown(req->path.len), req->path.ptr);
    if (!slice_is(&req->method, "POST")) {
        r->extra_headers = "Allow: POST\r\n";
        return fail(r, 405, "method %.*s not allowed: use POST " API_PUBLISH_PATH,
                    shown(req->method.len), req->method.ptr);
    }
    if ((r->key = authorize(r, api)) == NULL)
        return -1;
    if (r->b->shutting_down)
        return fail(r, 503, "broker shutting down");
    if (req->transfer_encoding)
        return fail(r, 501,
                    "Transfer-Encoding (chunked bodies) is not supported: send Content-Length");
    if (req->content_length < 0)
        return fail(r, 411, "Content-Length required");
    if ((uint64_t)req->content_length > r->b->cfg.max_body) {
        r->limit_hit = LIMIT_STOMP_FRAME;
        return fail(r, 413, "request body of %lld bytes exceeds limits.max_body (%zu bytes)",
                    (long long)req->content_length, r->b->cfg.max_body);
    }
    return 0;
}

/* ---- checking messages as a STOMP SEND would be checked ------------------------------------- */

/* Checks a destination as session.c checks a SEND's; where prefixes the error ("messages[2]: "). */
static int check_destination(struct api_request *r, const char *where, const char *dest, size_t len)
{
    if (len == 0)
        return fail(r, 400, "%smissing destination", where);
    if (len > r->b->cfg.max_header_line)
        return fail(r, 400, "%sdestination longer than limits.max_header_line (%zu bytes)", where,
                    r->b->cfg.max_header_line);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)dest[i] < 0x20 || dest[i] == 0x7F)
            return fail(r, 400, "%sdestination contains a control character", where);
    if (!ws_utf8_valid((const uint8_t *)dest, len))
        return fail(r, 400, "%sdestination is not valid UTF-8", where);
    switch (destination_kind(dest, len)) {
    case DEST_TOPIC:
        if (destination_is_wildcard(dest, len))
            return fail(r, 400, "%scannot publish to a wildcard destination: %.*s", where,
                        shown(len), dest);
        return 0;
    case DEST_QUEUE:
    case DEST_REPLY_QUEUE:
        return 0;
    case DEST_USER:
        if (destination_user_parse(dest, len, NULL) != 0)
            return fail(r, 400,
                        "%sinvalid user destination '%.*s': expected /user/LOGIN/queue/NAME or "
                        "/user/LOGIN/topic/NAME (LOGIN without '/')",
                        where, shown(len), dest);
        return 0;
    case DEST_TEMP_QUEUE:
        return fail(r, 400,
                    "%s/temp-queue/ names are private to one STOMP connection: publish to the "
                    "/reply-queue/ name its messages carry in reply-to",
                    where);
    default:
        return fail(r, 400,
                    "%sunknown destination '%.*s': allowed prefixes are /topic/, /queue/, "
                    "/reply-queue/, /user/",
                    where, shown(len), dest);
    }
}

/* Headers the broker sets itself or that only concern a SEND frame; content-type has a field. */
static bool header_reserved(const struct stomp_header *h)
{
    static const char *const reserved[] = {"destination", "message-id",     "subscription",
                                           "ack",         "redelivered",    "receipt",
                                           "transaction", "content-length", "content-type"};
    for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++)
        if (h->name_len == strlen(reserved[i]) && memcmp(h->name, reserved[i], h->name_len) == 0)
            return true;
    return false;
}

/* Checks list[n], a user header, against the reserved names and list[0..n). */
static int check_user_header(struct api_request *r, const char *where,
                             const struct stomp_header *list, size_t n)
{
    const struct stomp_header *h = &list[n];
    if (h->name_len == 0)
        return fail(r, 400, "%sempty header name", where);
    if (header_reserved(h))
        return fail(r, 400,
                    "%sheader '%.*s' cannot be set: destination and content type have their own "
                    "fields, the broker sets the rest",
                    where, shown(h->name_len), h->name);
    for (size_t i = 0; i < n; i++)
        if (list[i].name_len == h->name_len && memcmp(list[i].name, h->name, h->name_len) == 0)
            return fail(r, 400, "%sheader '%.*s' given twice", where, shown(h->name_len), h->name);
    if (!ws_utf8_valid((const uint8_t *)h->value, h->value_len))
        return fail(r, 400, "%sheader '%.*s' is not valid UTF-8", where, shown(h->name_len),
                    h->name);
    return 0;
}

/* The STOMP frame limits a SEND's headers meet (other nodes enforce them on what they get). */
static int check_header_limits(struct api_request *r, const char *where,
                               const struct stomp_header *h, size_t count)
{
    const struct config *cfg = &r->b->cfg;
    size_t total = 0;
    if (count > cfg->max_frame_headers)
        return fail(r, 400, "%s%zu headers exceed limits.max_frame_headers (%zu)", where, count,
                    cfg->max_frame_headers);
    for (size_t i = 0; i < count; i++) {
        size_t line = h[i].name_len + 1 + h[i].value_len;
        if (line > cfg->max_header_line)
            return fail(r, 400, "%sheader '%.*s' longer than limits.max_header_line (%zu bytes)",
                        where, shown(h[i].name_len), h[i].name, cfg->max_header_line);
        total += line + 1;
    }
    if (total > cfg->max_header_bytes)
        return fail(r, 400, "%sheaders exceed limits.max_header_bytes (%zu bytes)", where,
                    cfg->max_header_bytes);
    return 0;
}

/* ---- building the messages ------------------------------------------------------------------- */

/* Messages built from one request: all are checked before any is published. */
struct batch {
    struct message **msgs; /* owned references */
    size_t count, cap;
};

static int batch_add(struct api_request *r, struct batch *bt, struct message *msg)
{
    if (msg == NULL)
        return fail(r, 500, "out of memory");
    if (bt->count == bt->cap) {
        size_t cap = bt->cap != 0 ? bt->cap * 2 : 4;
        struct message **grown = realloc(bt->msgs, cap * sizeof(*grown));
        if (grown == NULL) {
            message_unref(msg);
            return fail(r, 500, "out of memory");
        }
        bt->msgs = grown;
        bt->cap = cap;
    }
    bt->msgs[bt->count++] = msg;
    return 0;
}

static void batch_free(struct batch *bt)
{
    for (size_t i = 0; i < bt->count; i++)
        message_unref(bt->msgs[i]);
    free(bt->msgs);
}

/* The raw value of query parameter name: 1 when there, 0 when absent, -1 when repeated. */
static int query_param(struct ws_slice query, const char *name, struct ws_slice *value)
{
    size_t name_len = strlen(name);
    int found = 0;
    const char *p = query.ptr, *end = query.ptr + query.len;
    while (p != NULL && p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *stop = amp != NULL ? amp : end;
        size_t len = (size_t)(stop - p);
        if (len >= name_len && memcmp(p, name, name_len) == 0 &&
            (len == name_len || p[name_len] == '=')) {
            if (found++)
                return -1;
            size_t skip = len == name_len ? len : name_len + 1;
            *value = (struct ws_slice){p + skip, len - skip};
        }
        p = stop + 1;
    }
    return found;
}

/* x-stream-offset, x-stream-epoch...: the broker's to set (history.h), never a publisher's. */
static bool is_stream_header(const char *name, size_t len)
{
    return len >= 9 && strncasecmp(name, "x-stream-", 9) == 0;
}

/*
 * The X-Stomp-NAME request headers as message headers named NAME, lower-cased into names (at
 * least header_bytes long), then the request's Content-Type as content-type.
 */
static int collect_http_headers(struct api_request *r, struct stomp_header *out, size_t *count,
                                char *names)
{
    const struct ws_http_request *req = r->req;
    const size_t prefix = strlen(HEADER_PREFIX);
    size_t n = 0;
    for (size_t i = 0; i < req->num_headers; i++) {
        const struct ws_http_header *h = &req->headers[i];
        if (h->name.len < prefix || strncasecmp(h->name.ptr, HEADER_PREFIX, prefix) != 0)
            continue;
        size_t len = h->name.len - prefix;
        for (size_t k = 0; k < len; k++) {
            char ch = h->name.ptr[prefix + k];
            names[k] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
        }
        if (is_stream_header(names, len))
            continue;
        out[n] = (struct stomp_header){names, len, h->value.ptr, h->value.len};
        names += len;
        if (check_user_header(r, "", out, n++) != 0)
            return -1;
    }
    const struct ws_http_header *type = ws_http_header_find(req, "content-type");
    if (type != NULL && type->value.len > 0) {
        if (!ws_utf8_valid((const uint8_t *)type->value.ptr, type->value.len))
            return fail(r, 400, "Content-Type is not valid UTF-8");
        out[n++] = (struct stomp_header){"content-type", 12, type->value.ptr, type->value.len};
    }
    *count = n;
    return 0;
}

/* POST /api/publish?destination=D: the body as it is, headers from X-Stomp-* and Content-Type. */
static int build_single(struct api_request *r, struct ws_slice raw, const char *body, size_t len,
                        struct batch *bt)
{
    char *dest = malloc(raw.len + 1);
    char *names = malloc(r->req->header_bytes + 1);
    struct stomp_header headers[WS_HTTP_MAX_HEADERS + 1];
    size_t count = 0;
    int rc = dest != NULL && names != NULL ? 0 : fail(r, 500, "out of memory");
    long dest_len = rc == 0 ? url_decode(raw.ptr, raw.len, true, dest, raw.len) : -1;
    if (rc == 0 && dest_len < 0)
        rc = fail(r, 400, "destination is not properly percent-encoded");
    if (rc == 0)
        rc = check_destination(r, "", dest, (size_t)dest_len);
    if (rc == 0)
        rc = collect_http_headers(r, headers, &count, names);
    if (rc == 0)
        rc = check_header_limits(r, "", headers, count);
    if (rc == 0)
        rc = batch_add(r, bt, message_new(dest, (size_t)dest_len, headers, count, body, len));
    free(names);
    free(dest);
    return rc;
}

static bool entry_field_known(const char *field)
{
    return strcmp(field, "destination") == 0 || strcmp(field, "body") == 0 ||
           strcmp(field, "headers") == 0 || strcmp(field, "content_type") == 0;
}

/* Checks the shape of one batch entry; the values are checked by the caller. */
static int check_entry_shape(struct api_request *r, const char *where, json_t *entry)
{
    const char *field;
    json_t *value;
    if (!json_is_object(entry))
        return fail(r, 400, "%sexpected an object", where);
    json_object_foreach(entry, field, value)
    {
        if (!entry_field_known(field))
            return fail(r, 400,
                        "%sunknown field '%.100s' (known: destination, body, headers, "
                        "content_type)",
                        where, field);
    }
    if (!json_is_string(json_object_get(entry, "destination")))
        return fail(r, 400, "%s\"destination\" must be a string", where);
    value = json_object_get(entry, "body");
    if (value != NULL && !json_is_string(value))
        return fail(r, 400, "%s\"body\" must be a string", where);
    value = json_object_get(entry, "content_type");
    if (value != NULL && !json_is_string(value))
        return fail(r, 400, "%s\"content_type\" must be a string", where);
    value = json_object_get(entry, "headers");
    if (value != NULL && !json_is_object(value))
        return fail(r, 400, "%s\"headers\" must be an object of strings", where);
    if (json_object_size(value) > r->b->cfg.max_frame_headers)
        return fail(r, 400, "%s%zu headers exceed limits.max_frame_headers (%zu)", where,
                    json_object_size(value), r->b->cfg.max_frame_headers);
    return 0;
}

/* The entry's headers, then its content_type as content-type, into out (room for all). */
static int collect_json_headers(struct api_request *r, const char *where, json_t *entry,
                                struct stomp_header *out, size_t *count)
{
    json_t *headers = json_object_get(entry, "headers");
    json_t *type = json_object_get(entry, "content_type");
    const char *name;
    json_t *value;
    size_t n = 0;
    json_object_foreach(headers, name, value)
    {
        if (!json_is_string(value))
            return fail(r, 400, "%sheader '%.100s' must be a string", where, name);
        if (is_stream_header(name, strlen(name)))
            continue;
        out[n] = (struct stomp_header){name, strlen(name), json_string_value(value),
                                       json_string_length(value)};
        if (check_user_header(r, where, out, n++) != 0)
            return -1;
    }
    if (type != NULL && json_string_length(type) > 0)
        out[n++] = (struct stomp_header){"content-type", 12, json_string_value(type),
                                         json_string_length(type)};
    *count = n;
    return 0;
}

/* {"destination": D, "body": B, "headers": {...}, "content_type": T}: one message of a batch. */
static int build_entry(struct api_request *r, size_t index, json_t *entry, struct batch *bt)
{
    char where[48];
    snprintf(where, sizeof(where), "messages[%zu]: ", index);
    if (check_entry_shape(r, where, entry) != 0)
        return -1;
    json_t *dest = json_object_get(entry, "destination");
    json_t *body = json_object_get(entry, "body");
    if (check_destination(r, where, json_string_value(dest), json_string_length(dest)) != 0)
        return -1;
    struct stomp_header *headers =
        calloc(json_object_size(json_object_get(entry, "headers")) + 1, sizeof(*headers));
    if (headers == NULL)
        return fail(r, 500, "out of memory");
    size_t count = 0;
    int rc = collect_json_headers(r, where, entry, headers, &count);
    if (rc == 0)
        rc = check_header_limits(r, where, headers, count);
    if (rc == 0)
        rc = batch_add(r, bt,
                       message_new(json_string_value(dest), json_string_length(dest), headers,
                                   count, body != NULL ? json_string_value(body) : "",
                                   body != NULL ? json_string_length(body) : 0));
    free(headers);
    return rc;
}

/* {"messages": [entry, ...]} */
static int build_batch(struct api_request *r, const char *body, size_t len, struct batch *bt)
{
    json_error_t jerr;
    json_t *doc = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL)
        return fail(r, 400, "invalid JSON at line %d, column %d: %s", jerr.line, jerr.column,
                    jerr.text);
    json_t *messages = json_object_get(doc, "messages");
    int rc = 0;
    if (!json_is_object(doc) || json_object_size(doc) != 1 || !json_is_array(messages))
        rc = fail(r, 400, "expected a JSON object {\"messages\": [...]} and nothing else");
    else if (json_array_size(messages) == 0)
        rc = fail(r, 400, "\"messages\" is empty");
    for (size_t i = 0; rc == 0 && i < json_array_size(messages); i++)
        rc = build_entry(r, i, json_array_get(messages, i), bt);
    json_decref(doc);
    return rc;
}

/* application/json, with or without parameters (charset). */
static bool content_type_is_json(const struct ws_http_request *req)
{
    const struct ws_http_header *h = ws_http_header_find(req, "content-type");
    if (h == NULL)
        return false;
    const char *semi = memchr(h->value.ptr, ';', h->value.len);
    size_t n = semi != NULL ? (size_t)(semi - h->value.ptr) : h->value.len;
    while (n > 0 && (h->value.ptr[n - 1] == ' ' || h->value.ptr[n - 1] == '\t'))
        n--;
    return n == 16 && strncasecmp(h->value.ptr, "application/json", 16) == 0;
}

/* ?destination= picks the single form; without it the body must be a JSON batch. */
static int build_messages(struct api_request *r, const char *body, size_t len, struct batch *bt)
{
    struct ws_slice raw;
    int found = query_param(r->req->query, "destination", &raw);
    if (found < 0)
        return fail(r, 400, "destination given more than once");
    if (found > 0)
        return build_single(r, raw, body, len, bt);
    if (!content_type_is_json(r->req))
        return fail(r, 400,
                    "missing destination: publish one message with ?destination=/topic/NAME, or "
                    "a JSON batch with Content-Type: application/json");
    r->batch = true;
    return build_batch(r, body, len, bt);
}

/* ---- publishing and answering ---------------------------------------------------------------- */

/* One limits.publish_rate token per message from the caller's key: all of them, or a 429. */
static int take_tokens(struct api_request *r, size_t count)
{
    uint64_t now = broker_now_ms(r->b);
    for (size_t i = 0; i < count; i++) {
        if (!token_bucket_take(&r->key->publish_tokens, now)) {
            r->limit_hit = LIMIT_PUBLISH_RATE;
            r->extra_headers = "Retry-After: 1\r\n";
            return fail(r, 429,
                        "publish rate exceeded for this API key (limits.publish_rate = %zu per "
                        "second, limits.publish_burst = %zu): nothing was published",
                        r->b->cfg.publish_rate, r->b->cfg.publish_burst);
        }
    }
    return 0;
}

/* A local queue at queue.max_messages: refused here even with queue.overflow = block, since an
 * HTTP request cannot be paused the way a STOMP connection is. */
static bool queue_at_limit(const struct api_request *r, const struct message *msg)
{
    struct queues *qs = &r->b->router.queues;
    const struct queue *q = queue_lookup(qs, msg->destination, msg->destination_len, false);
    return q != NULL && !q->clustered && queue_full(qs, q);
}

/*
 * A request whose answer waits for offsets a backend assigns later (a cluster: Redis numbers
 * retained messages). Owned by itself: freed by the last offset_waiter.assigned() call, after
 * answering on c if c is still there (conn.http_pending points here until then).
 */
struct api_wait {
    struct offset_waiter waiter; /* first member: assigned() gets this struct back */
    struct conn *c;              /* borrowed; NULL once the connection is gone or was answered */
    struct broker *b;            /* borrowed */
    struct batch bt;             /* owned: the messages the answer reports */
    json_t *ids;                 /* owned: their ids */
    bool batch;                  /* the JSON form: answered with "ids" and "offsets" */
    size_t key_line;             /* the caller's key, for the log */
    size_t outstanding;          /* assigned() calls still to come */
};

/* Publishes each message as a SEND is published, in order; ids gets each one that went out.
 * A message whose offset comes later counts in wait->outstanding. */
static int publish_all(struct api_request *r, struct batch *bt, json_t *ids, struct api_wait *wait)
{
    for (size_t i = 0; i < bt->count; i++) {
        struct message *msg = bt->msgs[i];
        bool create = destination_kind(msg->destination, msg->destination_len) != DEST_REPLY_QUEUE;
        int rc = queue_at_limit(r, msg)
                     ? ROUTER_ERR_QUEUE_FULL
                     : publish_for_offset(r->b, msg, msg->destination, msg->destination_len, create,
                                          &wait->waiter);
        if (rc == PUBLISH_PENDING) {
            wait->outstanding++;
            rc = 0;
        }
        if (rc == ROUTER_ERR_QUEUE_FULL) {
            r->limit_hit = LIMIT_QUEUE_MESSAGES;
            r->extra_headers = "Retry-After: 1\r\n";
            return fail(r, 503, "queue %s is full (queue.max_messages = %zu)", msg->destination,
                        r->b->cfg.queue_max_messages);
        }
        if (rc == ROUTER_ERR_NO_QUEUE)
            r->b->stats.reply_queue_drops++; /* as for a SEND: the requester has gone */
        else if (rc != 0)
            return fail(r, 500, "out of memory");
        else
            r->b->stats.messages_in++;
        if (json_array_append_new(ids, json_string(msg->id)) != 0)
            return fail(r, 500, "out of memory");
    }
    return 0;
}

static void answer_error(struct api_request *r, json_t *ids)
{
    if (r->auth_failed)
        r->b->stats.auth_failures++;
    if (r->limit_hit >= 0)
        r->b->stats.limit_hits[r->limit_hit]++;
    /* A message cut at its size may end inside a UTF-8 sequence, which JSON cannot carry. */
    size_t len = strlen(r->error);
    while (len > 0 && !ws_utf8_valid((const uint8_t *)r->error, len))
        r->error[--len] = '\0';
    log_info(r->c->id, "api %d: %s", r->status, r->error);
    json_t *doc = json_object();
    if (doc != NULL) {
        json_object_set_new(doc, "error", json_string(r->error));
        if (r->batch && ids != NULL)
            json_object_set(doc, "ids", ids); /* what went out before the refusal */
    }
    http_respond_json(r->c, r->status, r->extra_headers, doc);
}

/* A message's x-stream-offset for the answer: null when its destination keeps no history. */
static json_t *offset_json(const struct message *msg)
{
    return msg->stream_offset != 0 ? json_integer((json_int_t)msg->stream_offset) : json_null();
}

static bool has_policy(const struct broker *b, const struct message *msg)
{
    return b->history != NULL &&
           destination_kind(msg->destination, msg->destination_len) == DEST_TOPIC &&
           history_policy_for(b->history, msg->destination, msg->destination_len) != NULL;
}

/* {"id": ID} or {"ids": [...]}, with "offset" (or "offsets") for destinations with history. */
static void answer_published(const struct api_wait *w)
{
    log_debug(w->c->id, "api 202: published %zu (key on line %zu of %s)", json_array_size(w->ids),
              w->key_line, w->b->cfg.api_key_file);
    json_t *doc = w->batch ? json_pack("{sO}", "ids", w->ids)
                           : json_pack("{sO}", "id", json_array_get(w->ids, 0));
    bool any = false; /* "offset" is there, maybe null (not kept: Redis down), with a policy */
    for (size_t i = 0; i < w->bt.count; i++)
        any = any || w->bt.msgs[i]->stream_offset != 0 || has_policy(w->b, w->bt.msgs[i]);
    if (doc != NULL && any && !w->batch) {
        json_object_set_new(doc, "offset", offset_json(w->bt.msgs[0]));
    } else if (doc != NULL && any) {
        json_t *offsets = json_array();
        for (size_t i = 0; offsets != NULL && i < w->bt.count; i++)
            json_array_append_new(offsets, offset_json(w->bt.msgs[i]));
        json_object_set_new(doc, "offsets", offsets);
    }
    http_respond_json(w->c, 202, NULL, doc);
}

static void wait_free(struct api_wait *w)
{
    json_decref(w->ids);
    batch_free(&w->bt);
    free(w);
}

/* offset_waiter.assigned: the last offset answers the request (if anyone is still there). */
static void offset_assigned(struct offset_waiter *waiter, struct message *msg)
{
    (void)msg; /* its offset is in the message, which w->bt holds */
    struct api_wait *w = (struct api_wait *)waiter;
    if (--w->outstanding > 0)
        return;
    if (w->c != NULL) {
        w->c->http_pending = NULL;
        answer_published(w);
    }
    wait_free(w);
}

void api_abandon(struct conn *c)
{
    struct api_wait *w = c->http_pending;
    c->http_pending = NULL;
    w->c = NULL; /* freed by its last assigned() call */
}

size_t api_body_wanted(struct broker *b, const struct ws_http_request *req)
{
    struct api_request r = {.b = b, .req = req, .limit_hit = -1};
    return check_head(&r) == 0 ? (size_t)req->content_length : 0;
}

void api_serve(struct conn *c, const struct ws_http_request *req, const char *body, size_t body_len)
{
    struct api_request r = {.c = c, .b = c->broker, .req = req, .limit_hit = -1};
    struct api_wait *w = calloc(1, sizeof(*w));
    if (w == NULL) {
        conn_close(c);
        return;
    }
    *w = (struct api_wait){.waiter.assigned = offset_assigned, .c = c, .b = c->broker};
    int rc = check_head(&r);
    if (rc == 0)
        rc = build_messages(&r, body != NULL ? body : "", body != NULL ? body_len : 0, &w->bt);
    if (rc == 0)
        rc = take_tokens(&r, w->bt.count);
    if (rc == 0 && (w->ids = json_array()) == NULL)
        rc = fail(&r, 500, "out of memory");
    if (rc == 0)
        rc = publish_all(&r, &w->bt, w->ids, w);
    if (rc != 0) {
        answer_error(&r, w->ids);
        w->c = NULL; /* answered: offsets still to come only free it */
        if (w->outstanding == 0)
            wait_free(w);
        return;
    }
    w->batch = r.batch;
    w->key_line = r.key->line;
    if (w->outstanding > 0) {
        c->http_pending = w; /* answered by the last offset_assigned() */
        return;
    }
    answer_published(w);
    wait_free(w);
}

int api_authorize(struct conn *c, const struct ws_http_request *req)
{
    struct api_request r = {.c = c, .b = c->broker, .req = req, .limit_hit = -1};
    if (c->broker->api == NULL)
        fail(&r, 404,
             "the API is disabled: start the broker with --api-key-file FILE "
             "(server.api_key_file)");
    else if (authorize(&r, c->broker->api) != NULL)
        return 0;
    answer_error(&r, NULL);
    return -1;
}
