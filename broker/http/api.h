/*
 * api.h - the HTTP publish API for backends: POST /api/publish on the plain HTTP routes.
 *
 * A backend holding a key from server.api_key_file publishes one message (the request body, to
 * ?destination=...) or a JSON batch, through the same path as a STOMP SEND (publish(): the
 * local router, then the cluster bridge), and gets back the message-ids subscribers see. Keys are
 * bearer tokens compared in constant time; each key has its own limits.publish_rate bucket;
 * SIGHUP reloads the key file. Every answer is JSON. docs/API.md is the user's view.
 *
 * Must not: read the socket (conn.c collects the body), or keep a request past its answer.
 */
#ifndef STOMPWS_API_H
#define STOMPWS_API_H

#include <stdbool.h>
#include <stddef.h>

#include "broker/net/conn.h"
#include "ws/handshake.h"

struct api;
struct api_key;

/* Requests whose path starts with this belong to the API. */
#define API_PATH_PREFIX "/api/"

/* Loads server.api_key_file (when set) and drops it: 0, or -1 with "FILE:LINE: why" in err. */
int api_check_config(const struct config *cfg, char *err, size_t err_len);

/*
 * Loads server.api_key_file into b->api (when set: otherwise the API answers that it is
 * disabled). Returns 0, or -1 with the file and line that failed logged.
 */
int api_start(struct broker *b);
/* SIGHUP: reloads the key file; a file that fails to load keeps the previous keys (logged). */
void api_reload(struct broker *b);
void api_free(struct api *api);

/*
 * Bytes of request body to collect before api_serve(): the Content-Length of an authorized
 * POST /api/publish within limits.max_body; 0 when the answer depends on the head alone (an
 * error, or an empty body).
 */
size_t api_body_wanted(struct broker *b, const struct ws_http_request *req);

/* Answers req (202 or a JSON error) and closes c gracefully. body: api_body_wanted() bytes.
 * When a backend assigns the offsets of retained messages later (a cluster), the 202 waits for
 * them: c->http_pending holds the request until then. */
void api_serve(struct conn *c, const struct ws_http_request *req, const char *body,
               size_t body_len);

/* c goes away while its answer waits for offsets (conn_handler.http_abandon). */
void api_abandon(struct conn *c);

/* ---- key files, shared with the admin API (admin.h) ---- */

/* Reads a key file (one key per line, '#' comments) into a fresh array (free() it): 0, or -1
 * with "FILE:LINE: why" in err. */
int api_keys_load(const char *path, struct api_key **out, size_t *count, char *err, size_t err_len);
/* The index in keys of the key "Authorization: Bearer KEY" names (every key compared, in
 * constant time), or -1; *missing says there was no bearer credential at all. */
long api_keys_match(const struct api_key *keys, size_t count, const struct ws_slice *authorization,
                    bool *missing);
/* presence: the API's other routes (GET /api/presence, presence_api.h) take the same keys.
 * Returns 0 when req carries one; else -1 after answering (404 while the API is off, 401). */
int api_authorize(struct conn *c, const struct ws_http_request *req);

#endif
