#include "broker/http/respond.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

/* ws_http_status_text() knows the handshake's codes; the API and static files need these too. */
static const char *status_text(int status)
{
    switch (status) {
    case 204:
        return "No Content";
    case 408:
        return "Request Timeout";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 501:
        return "Not Implemented";
    default:
        return ws_http_status_text(status);
    }
}

/* Status line and headers up to the empty line, for a body of length bytes. */
void http_write_head(struct conn *c, int status, const char *content_type, size_t length,
                     const char *extra_headers)
{
    evbuffer_add_printf(bufferevent_get_output(c->bev),
                        "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                        "%sConnection: close\r\n\r\n",
                        status, status_text(status), content_type, length,
                        extra_headers != NULL ? extra_headers : "");
}

void http_respond(struct conn *c, int status, const char *extra_headers, const char *content_type,
                  struct evbuffer *body)
{
    char extra[512];
    snprintf(extra, sizeof(extra), "Cache-Control: no-store\r\n%s",
             extra_headers != NULL ? extra_headers : "");
    http_write_head(c, status, content_type, evbuffer_get_length(body), extra);
    evbuffer_add_buffer(bufferevent_get_output(c->bev), body);
    conn_close_gracefully(c, 0, "http response sent");
}

void http_respond_text(struct conn *c, int status, const char *extra_headers, const char *text)
{
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        conn_close(c);
        return;
    }
    evbuffer_add_printf(body, "%s\n", text);
    http_respond(c, status, extra_headers, "text/plain; charset=utf-8", body);
    evbuffer_free(body);
}

void http_respond_json_text(struct conn *c, int status, const char *extra_headers, char *text)
{
    struct evbuffer *body = text != NULL ? evbuffer_new() : NULL;
    if (body == NULL) {
        free(text);
        conn_close(c);
        return;
    }
    evbuffer_add_printf(body, "%s\n", text);
    http_respond(c, status, extra_headers, "application/json", body);
    evbuffer_free(body);
    free(text);
}

void http_respond_json(struct conn *c, int status, const char *extra_headers, json_t *doc)
{
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    http_respond_json_text(c, status, extra_headers, text);
}
