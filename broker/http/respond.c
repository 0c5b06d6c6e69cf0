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

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
        return (ch | 0x20) - 'a' + 10;
    return -1;
}

ssize_t http_url_decode(const char *src, size_t len, bool plus_is_space, char *out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < len; i++, n++) {
        char ch = src[i];
        if (n == cap)
            return -1;
        if (ch == '%') {
            int hi = i + 2 < len ? hex_value(src[i + 1]) : -1;
            int lo = hi >= 0 ? hex_value(src[i + 2]) : -1;
            if (lo < 0)
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        } else if (ch == '+' && plus_is_space) {
            ch = ' ';
        }
        out[n] = ch;
    }
    return (ssize_t)n;
}
