/*
 * respond.h - how every HTTP route answers: a whole response written to the connection, which
 * then closes gracefully (URL decoding is broker/base/url.h, which GET /sse shares).
 *
 * What it must not do: route, or read the socket (conn.c collects the request).
 */
#ifndef STOMPWS_RESPOND_H
#define STOMPWS_RESPOND_H

#include <stdbool.h>
#include <stddef.h>

#include "broker/net/conn.h"

#include <jansson.h>

struct evbuffer;

/* Status line and headers up to the empty line, for a body of length bytes (extra_headers:
 * lines each ending in CRLF, or NULL). */
void http_write_head(struct conn *c, int status, const char *content_type, size_t length,
                     const char *extra_headers);

/*
 * Writes a whole response: the head (with Cache-Control: no-store and extra_headers), then
 * body, drained. Closes c gracefully. For every route, the API's included.
 */
void http_respond(struct conn *c, int status, const char *extra_headers, const char *content_type,
                  struct evbuffer *body);

/* A text/plain response: text and a newline. */
void http_respond_text(struct conn *c, int status, const char *extra_headers, const char *text);

/* An application/json response: text (taken, freed here) and a newline. NULL (the caller ran out
 * of memory building it) closes c instead: no half answer. */
void http_respond_json_text(struct conn *c, int status, const char *extra_headers, char *text);

/* The same for doc (taken), written compact. */
void http_respond_json(struct conn *c, int status, const char *extra_headers, json_t *doc);

#endif
