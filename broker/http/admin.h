/*
 * admin.h - the admin API (issue #15): list the connections and destinations of every loop and
 * node, and disconnect a session or every session of a user.
 *
 *   GET    /api/connections[?user=U]        {"connections": [...], "partial": false}
 *   GET    /api/destinations[?prefix=P]     {"destinations": [...], "partial": false}
 *   DELETE /api/connections/ID              204, or 404
 *   POST   /api/users/LOGIN/disconnect      {"disconnected": N, "partial": false}
 *
 * Keys come from server.admin_key_file (the publish API's loader and constant-time match, a key
 * file of its own). The loop that takes a request answers for its own sessions at once and asks
 * the others: the other loops of the process through their inboxes (INBOX_ADMIN, without a
 * cluster), the other nodes through the fan-out backend's admin_request op (a cluster: a Redis
 * control channel). The request waits on the HTTP connection (conn.http_pending) for their
 * answers, at most ADMIN_WAIT_MS; who did not answer by then makes the answer "partial": true.
 * Requests and answers cross loops and nodes as JSON text (below), never as pointers.
 * docs/API.md is the user's view.
 *
 * What it must not do: touch another loop's sessions, or name a backend.
 */
#ifndef STOMPWS_ADMIN_H
#define STOMPWS_ADMIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "broker/net/conn.h"
#include "ws/handshake.h"

struct admin;

/* How long a request waits for the other loops' and nodes' answers. */
#define ADMIN_WAIT_MS 2000

/* Loads server.admin_key_file (when set) and drops it: 0, or -1 with "FILE:LINE: why" in err. */
int admin_check_config(const struct config *cfg, char *err, size_t err_len);
/* Loads the keys into b->admin when server.admin_key_file is set. 0, or -1 (logged). */
int admin_start(struct broker *b);
/* SIGHUP: reloads the key file; one that fails to load keeps the previous keys (logged). */
void admin_reload(struct broker *b);
/* Frees the keys and any request still waiting (its connection is gone by then). */
void admin_free(struct admin *a);

/* True when req's path is the admin API's (admin_path_claims()). */
bool admin_claims(const struct ws_http_request *req);
/* Answers req (JSON, or 204) and closes c gracefully, now or once the others answered
 * (c->http_pending points at the wait until then). */
void admin_serve(struct conn *c, const struct ws_http_request *req);
/* c goes away: if its pending answer is an admin request's, drops it and returns true. */
bool admin_abandon(struct conn *c);

/* This loop's node name in connection ids: the backend's node id in a cluster, else
 * cluster.node_id when set, else "local". */
const char *admin_node_name(const struct broker *b);

/*
 * ---- what other loops and nodes hand in: on b's own thread ----
 *
 * A request: {"op": "list"|"destinations"|"kick"|"kick_user", "arg": STRING|null, "req": N,
 * "from": WHO}; its answer: {"req": N, "connections": [...]} | {"destinations": {NAME: COUNT}}
 * | {"kicked": N}. WHO is the asking loop's index (as a string) or node id.
 */

/* Answers request text for b's sessions: the answer's JSON text (free() it) and, in *from, the
 * asker (free() it). NULL for a request that does not parse, or one whose asker is self (a node
 * hears its own requests on the control channel; NULL: no such check). */
char *admin_answer(struct broker *b, const char *text, size_t len, const char *self, char **from);
/* An answer to one of b's requests (ignored when that request is no longer waiting). */
void admin_take_answer(struct broker *b, const char *text, size_t len);
/* The backend says how many other nodes heard request id (-1: it did not go out). */
void admin_expect(struct broker *b, uint64_t id, long others);

/* Inbox items (server/threads.c): a request from another loop, answered through its inbox. */
void admin_inbox_request(struct broker *b, const char *text);

#endif
