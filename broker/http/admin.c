#include "broker/http/admin.h"
#include "broker/base/log.h"
#include "broker/http/admin_path.h"
#include "broker/http/api.h"
#include "broker/http/respond.h"
#include "broker/session/session.h"
#include "broker/threads/inbox.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ws/utf8.h"

/* The admin API's state, owned by struct broker (broker.admin); absent while the API is off. */
struct admin {
    struct broker *broker; /* borrowed */
    struct api_key *keys;  /* owned: from server.admin_key_file */
    size_t key_count;
    uint64_t next_request;      /* ids of this loop's requests to the others */
    struct admin_wait *waiting; /* owned: requests waiting for the others' answers */
};

/* A request of this loop waiting for the other loops' or nodes' answers. */
struct admin_wait {
    struct admin_wait *next; /* admin.waiting */
    struct admin *admin;     /* borrowed */
    struct conn *c;          /* borrowed: conn.http_pending points here */
    uint64_t id;
    enum admin_route route;
    json_t *answers;     /* owned: every answer so far, this loop's first */
    size_t heard;        /* answers from the others */
    long expected;       /* answers to wait for, once known */
    bool expected_known; /* the backend said how many nodes heard the request */
    bool partial;        /* someone was not asked (Redis down) or did not answer in time */
    struct event *timer; /* owned: ADMIN_WAIT_MS */
};

/* ---- keys -------------------------------------------------------------------------------- */

int admin_check_config(const struct config *cfg, char *err, size_t err_len)
{
    struct api_key *keys = NULL;
    size_t count;
    if (cfg->admin_key_file[0] == '\0')
        return 0;
    if (api_keys_load(cfg->admin_key_file, &keys, &count, err, err_len) != 0)
        return -1;
    free(keys);
    return 0;
}

static int load(struct admin *a, char *err, size_t err_len)
{
    struct api_key *keys;
    size_t count;
    if (api_keys_load(a->broker->cfg.admin_key_file, &keys, &count, err, err_len) != 0)
        return -1;
    free(a->keys);
    a->keys = keys;
    a->key_count = count;
    return 0;
}

int admin_start(struct broker *b)
{
    if (b->cfg.admin_key_file[0] == '\0')
        return 0;
    struct admin *a = calloc(1, sizeof(*a));
    char err[512];
    if (a == NULL) {
        log_error(0, "server.admin_key_file: out of memory");
        return -1;
    }
    a->broker = b;
    if (load(a, err, sizeof(err)) != 0) {
        log_error(0, "server.admin_key_file: %s", err);
        admin_free(a);
        return -1;
    }
    if (b->loop_index == 0)
        log_info(0,
                 "admin API on /api/connections, /api/destinations and /api/users with %zu keys "
                 "from %s",
                 a->key_count, b->cfg.admin_key_file);
    b->admin = a;
    return 0;
}

void admin_reload(struct broker *b)
{
    char err[512];
    if (b->admin == NULL)
        return;
    if (load(b->admin, err, sizeof(err)) != 0)
        log_error(0, "admin keys not reloaded (keeping the previous ones): %s", err);
    else if (b->loop_index == 0)
        log_info(0, "admin keys reloaded: %zu from %s", b->admin->key_count, b->cfg.admin_key_file);
}

static void wait_free(struct admin_wait *w)
{
    struct admin_wait **at = &w->admin->waiting;
    while (*at != NULL && *at != w)
        at = &(*at)->next;
    if (*at == w)
        *at = w->next;
    if (w->timer != NULL)
        event_free(w->timer);
    json_decref(w->answers);
    free(w);
}

void admin_free(struct admin *a)
{
    if (a == NULL)
        return;
    while (a->waiting != NULL) {
        if (a->waiting->c != NULL)
            a->waiting->c->http_pending = NULL;
        wait_free(a->waiting);
    }
    free(a->keys);
    free(a);
}

/* ---- this loop's sessions ------------------------------------------------------------------ */

const char *admin_node_name(const struct broker *b)
{
    const struct fanout_ops *ops = b->fanout.ops;
    if (ops != NULL && ops->node_id != NULL)
        return ops->node_id(b->fanout.ctx);
    return b->cfg.cluster_node_id[0] != '\0' ? b->cfg.cluster_node_id : "local";
}

/* The transport names of the admin API (and of stompws_connections{transport}). */
static const char *transport_name(const struct conn *c)
{
    switch (c->transport) {
    case CONN_TCP:
        return c->tls ? "stomp-tls" : "tcp";
    case CONN_SSE:
        return "sse";
    default:
        return c->tls ? "wss" : "ws";
    }
}

/* RFC 3339 in UTC, with milliseconds: "2026-01-31T12:00:00.250Z". */
static void rfc3339(uint64_t wall_ms, char out[32])
{
    time_t secs = (time_t)(wall_ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03uZ", (unsigned)(wall_ms % 1000));
}

/* A JSON string of text as far as it is valid UTF-8 (a peer or a login could be anything). */
static json_t *safe_string(const char *text)
{
    size_t len = strlen(text);
    while (len > 0 && !ws_utf8_valid((const uint8_t *)text, len))
        len--;
    return json_stringn(text, len);
}

/* The session of c when it is listed: connected and still open. */
static struct session *listed(const struct conn *c, struct session_admin_view *view)
{
    if (c->session == NULL || !conn_is_open(c))
        return NULL;
    session_admin_view(c->session, view);
    return view->connected ? c->session : NULL;
}

static json_t *describe(const struct broker *b, const struct conn *c,
                        const struct session_admin_view *view)
{
    char id[ADMIN_CONN_ID_MAX], when[32];
    admin_conn_id_format(id, admin_node_name(b), c->id);
    rfc3339(view->started_wall_ms, when);
    return json_pack("{ss so ss ss ss ss sI}", "id", id, "user", safe_string(view->user), "remote",
                     c->peer, "transport", transport_name(c), "node", admin_node_name(b),
                     "connected_at", when, "subscriptions", (json_int_t)view->subscriptions);
}

static json_t *list_here(struct broker *b, const char *user)
{
    json_t *list = json_array();
    struct session_admin_view view;
    for (struct conn *c = b->conns; list != NULL && c != NULL; c = c->next)
        if (listed(c, &view) != NULL && (user == NULL || strcmp(view.user, user) == 0))
            json_array_append_new(list, describe(b, c, &view));
    return json_pack("{so}", "connections", list);
}

struct destination_count {
    json_t *counts; /* name -> subscribers */
    const char *prefix;
};

static void count_destination(void *ctx, const char *dest, size_t len)
{
    struct destination_count *dc = ctx;
    size_t plen = dc->prefix != NULL ? strlen(dc->prefix) : 0;
    if (len < plen || (plen > 0 && memcmp(dest, dc->prefix, plen) != 0) ||
        !ws_utf8_valid((const uint8_t *)dest, len))
        return;
    char *name = strndup(dest, len);
    if (name == NULL)
        return;
    json_int_t n = json_integer_value(json_object_get(dc->counts, name));
    json_object_set_new(dc->counts, name, json_integer(n + 1));
    free(name);
}

static json_t *destinations_here(struct broker *b, const char *prefix)
{
    struct destination_count dc = {.counts = json_object(), .prefix = prefix};
    struct session_admin_view view;
    for (struct conn *c = b->conns; dc.counts != NULL && c != NULL; c = c->next)
        if (listed(c, &view) != NULL)
            session_admin_each_destination(c->session, count_destination, &dc);
    return json_pack("{so}", "destinations", dc.counts);
}

static void kick(struct broker *b, struct conn *c, const struct session_admin_view *view)
{
    log_info(c->id, "admin: disconnecting %s (user '%s')", c->peer, view->user);
    b->stats.admin_kicks++;
    session_admin_kick(c->session);
}

/* The session whose id is id, or every session of user login. */
static json_t *kick_here(struct broker *b, const char *id, const char *login)
{
    char node[ADMIN_NODE_MAX + 1];
    uint64_t n = 0;
    bool mine = id != NULL && admin_conn_id_parse(id, strlen(id), node, &n) == 0 &&
                strcmp(node, admin_node_name(b)) == 0;
    json_int_t kicked = 0;
    struct session_admin_view view;
    for (struct conn *c = b->conns; c != NULL; c = c->next) {
        if (listed(c, &view) == NULL)
            continue;
        if ((mine && c->id == n) || (login != NULL && strcmp(view.user, login) == 0)) {
            kick(b, c, &view);
            kicked++;
        }
    }
    return json_pack("{sI}", "kicked", kicked);
}

static const char *op_name(enum admin_route route)
{
    switch (route) {
    case ADMIN_LIST_CONNECTIONS:
        return "list";
    case ADMIN_LIST_DESTINATIONS:
        return "destinations";
    case ADMIN_KICK_CONNECTION:
        return "kick";
    default:
        return "kick_user";
    }
}

/* This loop's answer to op (arg: NULL for none); NULL for an unknown op or out of memory. */
static json_t *answer_here(struct broker *b, const char *op, const char *arg)
{
    if (strcmp(op, "list") == 0)
        return list_here(b, arg);
    if (strcmp(op, "destinations") == 0)
        return destinations_here(b, arg);
    if (strcmp(op, "kick") == 0 && arg != NULL)
        return kick_here(b, arg, NULL);
    if (strcmp(op, "kick_user") == 0 && arg != NULL)
        return kick_here(b, NULL, arg);
    return NULL;
}

/* ---- answering ------------------------------------------------------------------------------ */

/* 204: no body. */
static void respond_no_content(struct conn *c)
{
    struct evbuffer *none = evbuffer_new();
    if (none == NULL) {
        conn_close(c);
        return;
    }
    http_respond(c, 204, NULL, "application/json", none);
    evbuffer_free(none);
}

static void respond_error(struct conn *c, int status, const char *extra_headers, const char *why)
{
    log_info(c->id, "admin %d: %s", status, why);
    http_respond_json(c, status, extra_headers, json_pack("{ss}", "error", why));
}

static int by_destination(const void *x, const void *y)
{
    return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* The destinations of every answer, summed by name, in name order. */
static json_t *merge_destinations(json_t *answers)
{
    json_t *sum = json_object(), *answer, *count, *list = json_array();
    size_t i;
    const char *name;
    json_array_foreach(answers, i, answer)
    {
        json_object_foreach(json_object_get(answer, "destinations"), name, count)
        {
            json_int_t n = json_integer_value(json_object_get(sum, name));
            json_object_set_new(sum, name, json_integer(n + json_integer_value(count)));
        }
    }
    size_t total = json_object_size(sum), k = 0;
    const char **names = calloc(total + 1, sizeof(*names));
    json_object_foreach(sum, name, count)
    {
        if (names != NULL)
            names[k++] = name;
    }
    if (names != NULL)
        qsort(names, k, sizeof(*names), by_destination);
    for (i = 0; names != NULL && list != NULL && i < k; i++)
        json_array_append_new(list, json_pack("{ss sO}", "destination", names[i], "subscribers",
                                              json_object_get(sum, names[i])));
    free(names);
    json_decref(sum);
    return list;
}

static json_int_t sum_kicked(json_t *answers)
{
    json_t *answer;
    size_t i;
    json_int_t total = 0;
    json_array_foreach(answers, i, answer)
    {
        total += json_integer_value(json_object_get(answer, "kicked"));
    }
    return total;
}

/* Answers w's request from every answer it got, and frees w. */
static void finish(struct admin_wait *w)
{
    struct conn *c = w->c;
    json_t *doc = NULL, *answer, *all = json_array();
    size_t i;
    c->http_pending = NULL;
    switch (w->route) {
    case ADMIN_LIST_CONNECTIONS:
        json_array_foreach(w->answers, i, answer)
        {
            json_array_extend(all, json_object_get(answer, "connections"));
        }
        doc = json_pack("{sO sb}", "connections", all, "partial", w->partial);
        break;
    case ADMIN_LIST_DESTINATIONS:
        doc = json_pack("{so sb}", "destinations", merge_destinations(w->answers), "partial",
                        w->partial);
        break;
    case ADMIN_KICK_CONNECTION:
        if (sum_kicked(w->answers) == 0) {
            doc = json_pack("{ss sb}", "error", "no such connection", "partial", w->partial);
            http_respond_json(c, 404, NULL, doc);
            doc = NULL;
            c = NULL;
        } else {
            respond_no_content(c);
            c = NULL;
        }
        break;
    case ADMIN_KICK_USER:
        doc = json_pack("{sI sb}", "disconnected", sum_kicked(w->answers), "partial", w->partial);
        break;
    }
    json_decref(all);
    if (c != NULL)
        http_respond_json(c, doc != NULL ? 200 : 500, NULL,
                          doc != NULL ? doc : json_pack("{ss}", "error", "out of memory"));
    wait_free(w);
}

static void maybe_finish(struct admin_wait *w)
{
    if (w->expected_known && (long)w->heard >= w->expected)
        finish(w);
}

static void timeout_cb(evutil_socket_t fd, short what, void *arg)
{
    struct admin_wait *w = arg;
    (void)fd;
    (void)what;
    log_warn(w->c->id, "admin: %zu of %ld answers in %d ms: answering with what came", w->heard,
             w->expected_known ? w->expected : -1L, ADMIN_WAIT_MS);
    w->partial = true;
    finish(w);
}

static struct admin_wait *find_wait(struct broker *b, uint64_t id)
{
    for (struct admin_wait *w = b->admin != NULL ? b->admin->waiting : NULL; w != NULL; w = w->next)
        if (w->id == id)
            return w;
    return NULL;
}

void admin_take_answer(struct broker *b, const char *text, size_t len)
{
    json_t *doc = json_loadb(text, len, 0, NULL);
    struct admin_wait *w = find_wait(b, (uint64_t)json_integer_value(json_object_get(doc, "req")));
    if (w == NULL || !json_is_object(doc)) {
        json_decref(doc);
        return; /* answered already (timed out), or the asker left */
    }
    json_array_append_new(w->answers, doc);
    w->heard++;
    maybe_finish(w);
}

void admin_expect(struct broker *b, uint64_t id, long others)
{
    struct admin_wait *w = find_wait(b, id);
    if (w == NULL)
        return;
    w->expected_known = true;
    w->expected = others < 0 ? 0 : others;
    if (others < 0) {
        log_warn(w->c->id, "admin: the cluster did not hear the request: answering for this node");
        w->partial = true;
    }
    maybe_finish(w);
}

bool admin_abandon(struct conn *c)
{
    struct admin_wait *w = c->broker->admin != NULL ? c->broker->admin->waiting : NULL;
    while (w != NULL && w->c != c)
        w = w->next;
    if (w == NULL)
        return false;
    c->http_pending = NULL;
    wait_free(w);
    return true;
}

/* ---- asking the others ------------------------------------------------------------------- */

static char *request_text(const struct admin_wait *w, const char *arg, const char *from)
{
    json_t *doc = json_pack("{ss so sI ss}", "op", op_name(w->route), "arg",
                            arg != NULL ? json_string(arg) : json_null(), "req", (json_int_t)w->id,
                            "from", from);
    char *text = doc != NULL ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return text;
}

/* The other loops of this process, through their inboxes; how many were asked. */
static long ask_loops(struct broker *b, const struct admin_wait *w, const char *arg)
{
    char from[24];
    snprintf(from, sizeof(from), "%zu", b->loop_index);
    char *text = request_text(w, arg, from);
    long asked = 0;
    for (size_t i = 0; text != NULL && i < inboxes_count(b->inboxes); i++)
        if (i != b->loop_index && inboxes_text(b->inboxes, i, INBOX_ADMIN, text, strlen(text)) == 0)
            asked++;
    free(text);
    return asked;
}

/* Asks the other loops or nodes; w is answered once they all did, or at the timeout. */
static void ask_others(struct broker *b, struct admin_wait *w, const char *arg)
{
    const struct fanout_ops *ops = b->fanout.ops;
    if (ops != NULL && ops->admin_request != NULL) {
        char *text = request_text(w, arg, admin_node_name(b));
        if (text == NULL || ops->admin_request(b->fanout.ctx, w->id, text, strlen(text)) != 0) {
            w->partial = true; /* Redis is down: this node's answer alone */
            w->expected_known = true;
        }
        free(text);
        return;
    }
    w->expected_known = true;
    if (b->inboxes != NULL && inboxes_count(b->inboxes) > 1)
        w->expected = ask_loops(b, w, arg);
}

/* ---- one request ------------------------------------------------------------------------- */

bool admin_claims(const struct ws_http_request *req)
{
    return admin_path_claims(req->path.ptr, req->path.len);
}

/* 401 unless the request carries one of the admin keys; true when it does. */
static bool authorized(struct conn *c, const struct ws_http_request *req)
{
    struct admin *a = c->broker->admin;
    bool missing;
    if (api_keys_match(a->keys, a->key_count, &req->authorization, &missing) >= 0)
        return true;
    c->broker->stats.auth_failures++;
    if (missing)
        respond_error(c, 401, "WWW-Authenticate: Bearer realm=\"stompws-admin\"\r\n",
                      "missing admin key: send 'Authorization: Bearer KEY' with a key from "
                      "server.admin_key_file");
    else
        respond_error(
            c, 401, "WWW-Authenticate: Bearer realm=\"stompws-admin\", error=\"invalid_token\"\r\n",
            "invalid admin key");
    return false;
}

/* The request line parsed, or an error answered (false). */
static bool parse(struct conn *c, const struct ws_http_request *req,
                  struct admin_request_line *line)
{
    int rc = admin_path_parse(req->method.ptr, req->method.len, req->path.ptr, req->path.len,
                              req->query.ptr, req->query.ptr != NULL ? req->query.len : 0, line);
    char allow[32];
    switch (rc) {
    case 0:
        break;
    case ADMIN_PATH_NOT_FOUND:
        respond_error(c, 404, NULL, line->error);
        return false;
    case ADMIN_PATH_BAD_METHOD:
        snprintf(allow, sizeof(allow), "Allow: %s\r\n", line->allow);
        respond_error(c, 405, allow, line->error);
        return false;
    default:
        respond_error(c, 400, NULL, line->error);
        return false;
    }
    char node[ADMIN_NODE_MAX + 1];
    uint64_t n;
    if (line->route == ADMIN_KICK_CONNECTION &&
        admin_conn_id_parse(line->arg, line->arg_len, node, &n) != 0) {
        respond_error(c, 400, NULL,
                      "bad connection id: expected NODE-N, as GET /api/connections "
                      "lists them");
        return false;
    }
    return true;
}

static struct admin_wait *wait_new(struct broker *b, struct conn *c, enum admin_route route)
{
    struct admin_wait *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    *w = (struct admin_wait){.admin = b->admin,
                             .c = c,
                             .id = ++b->admin->next_request,
                             .route = route,
                             .answers = json_array()};
    w->timer = evtimer_new(b->base, timeout_cb, w);
    w->next = b->admin->waiting;
    b->admin->waiting = w;
    if (w->answers == NULL || w->timer == NULL) {
        wait_free(w);
        return NULL;
    }
    return w;
}

void admin_serve(struct conn *c, const struct ws_http_request *req)
{
    struct broker *b = c->broker;
    struct admin_request_line line;
    if (b->admin == NULL) {
        respond_error(c, 404, NULL,
                      "the admin API is disabled: start the broker with --admin-key-file FILE "
                      "(server.admin_key_file)");
        return;
    }
    if (!authorized(c, req) || !parse(c, req, &line))
        return;
    const char *arg = line.route == ADMIN_KICK_CONNECTION || line.route == ADMIN_KICK_USER
                          ? line.arg
                      : line.has_filter ? line.filter
                                        : NULL;
    struct admin_wait *w = wait_new(b, c, line.route);
    json_t *mine = w != NULL ? answer_here(b, op_name(line.route), arg) : NULL;
    if (mine == NULL) {
        if (w != NULL)
            wait_free(w);
        respond_error(c, 500, NULL, "out of memory");
        return;
    }
    json_array_append_new(w->answers, mine);
    ask_others(b, w, arg);
    if (w->expected_known && (long)w->heard >= w->expected) {
        finish(w);
        return;
    }
    c->http_pending = w;
    struct timeval tv = {.tv_sec = ADMIN_WAIT_MS / 1000, .tv_usec = (ADMIN_WAIT_MS % 1000) * 1000};
    evtimer_add(w->timer, &tv);
}

/* ---- requests from the others ------------------------------------------------------------- */

char *admin_answer(struct broker *b, const char *text, size_t len, const char *self, char **from)
{
    json_t *req = json_loadb(text, len, 0, NULL);
    const char *op = json_string_value(json_object_get(req, "op"));
    const char *asker = json_string_value(json_object_get(req, "from"));
    json_t *arg = json_object_get(req, "arg");
    json_t *answer = NULL;
    char *out = NULL;
    *from = NULL;
    bool own = self != NULL && asker != NULL && strcmp(asker, self) == 0;
    if (op != NULL && asker != NULL && !own &&
        (arg == NULL || json_is_null(arg) || json_is_string(arg)))
        answer = answer_here(b, op, json_string_value(arg));
    if (answer != NULL && json_object_set(answer, "req", json_object_get(req, "req")) == 0)
        out = json_dumps(answer, JSON_COMPACT);
    if (out != NULL && (*from = strdup(asker)) == NULL) {
        free(out);
        out = NULL;
    }
    json_decref(answer);
    json_decref(req);
    return out;
}

void admin_inbox_request(struct broker *b, const char *text)
{
    char *from = NULL;
    char *answer = admin_answer(b, text, strlen(text), NULL, &from);
    char *end = NULL;
    unsigned long loop = from != NULL ? strtoul(from, &end, 10) : 0;
    if (answer != NULL && end != NULL && *end == '\0' && loop < inboxes_count(b->inboxes))
        inboxes_text(b->inboxes, loop, INBOX_ADMIN_ANSWER, answer, strlen(answer));
    free(answer);
    free(from);
}
