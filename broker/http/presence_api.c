#include "broker/http/presence_api.h"
#include "broker/base/log.h"
#include "broker/core/presence.h"
#include "broker/http/api.h"
#include "broker/http/presence_query.h"
#include "broker/http/respond.h"

#include <event2/buffer.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool slice_is(const struct ws_slice *s, const char *want)
{
    return s->len == strlen(want) && memcmp(s->ptr, want, s->len) == 0;
}

bool presence_api_route(const struct ws_http_request *req)
{
    return slice_is(&req->path, PRESENCE_API_PATH);
}

/* A JSON body text (taken: freed here) as the response, and close. */
static void answer_text(struct conn *c, int status, const char *extra_headers, char *text)
{
    struct evbuffer *body = evbuffer_new();
    if (text == NULL || body == NULL) {
        free(text);
        if (body != NULL)
            evbuffer_free(body);
        conn_close(c);
        return;
    }
    evbuffer_add_printf(body, "%s\n", text);
    http_respond(c, status, extra_headers, "application/json", body);
    evbuffer_free(body);
    free(text);
}

static void answer_error(struct conn *c, int status, const char *extra_headers, const char *error)
{
    log_info(c->id, "api %d: %s", status, error);
    json_t *doc = json_pack("{s:s}", "error", error);
    answer_text(c, status, extra_headers, doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL);
    json_decref(doc);
}

void presence_api_serve(struct conn *c, const struct ws_http_request *req)
{
    struct broker *b = c->broker;
    if (!slice_is(&req->method, "GET")) {
        answer_error(c, 405, "Allow: GET\r\n", "only GET is served at " PRESENCE_API_PATH);
        return;
    }
    if (api_authorize(c, req) != 0)
        return; /* answered */
    size_t max = b->cfg.max_header_line;
    char *dest = malloc(max + 1);
    if (dest == NULL) {
        conn_close(c);
        return;
    }
    long len = presence_query_destination(req->query.ptr, req->query.len, dest, max);
    char why[600];
    if (len < 0) {
        if (len == PRESENCE_QUERY_TOO_LONG)
            snprintf(why, sizeof(why), "%s (%zu bytes)", presence_query_error_message(len), max);
        else
            snprintf(why, sizeof(why), "%s", presence_query_error_message(len));
        answer_error(c, 400, NULL, why);
    } else if (b->presence == NULL) {
        answer_error(c, 404, NULL,
                     "presence is off: start the broker with --presence PATTERN "
                     "(presence.pattern)");
    } else if (!presence_tracks(b->presence, dest, (size_t)len)) {
        snprintf(why, sizeof(why),
                 "presence is not kept for %.200s: no presence.pattern matches it", dest);
        answer_error(c, 404, NULL, why);
    } else {
        answer_text(c, 200, NULL, presence_query_json(b, dest, (size_t)len));
    }
    free(dest);
}
