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

static void answer_error(struct conn *c, int status, const char *extra_headers, const char *error)
{
    log_info(c->id, "api %d: %s", status, error);
    http_respond_json(c, status, extra_headers, json_pack("{s:s}", "error", error));
}

/* A query a backend answers later (a cluster reads Redis); on this loop's list meanwhile. */
struct query_wait {
    struct presence_waiter waiter; /* first: the backend's handle */
    struct conn *c;                /* borrowed: holds this wait in http_pending */
    struct query_wait *prev, *next;
    size_t dest_len;
    char dest[]; /* NUL-terminated */
};

/* Each loop is one thread: its waits are its own. */
static _Thread_local struct query_wait *query_waits;

static void unlink_wait(struct query_wait *w)
{
    if (w->prev != NULL)
        w->prev->next = w->next;
    else
        query_waits = w->next;
    if (w->next != NULL)
        w->next->prev = w->prev;
}

static void query_answered(struct presence_waiter *waiter, const struct presence_answer *a)
{
    struct query_wait *w = (struct query_wait *)waiter;
    struct conn *c = w->c;
    unlink_wait(w);
    c->http_pending = NULL;
    /* No answer from the cluster (Redis down or slow): this node's users, flagged partial. */
    http_respond_json_text(c, 200, NULL,
                           a != NULL ? presence_answer_json(w->dest, w->dest_len, a, false)
                                     : presence_query_json(c->broker, w->dest, w->dest_len, true));
    free(w);
}

bool presence_api_abandon(struct conn *c)
{
    for (struct query_wait *w = query_waits; w != NULL; w = w->next) {
        if (w->c != c)
            continue;
        unlink_wait(w);
        c->http_pending = NULL;
        c->broker->fanout.ops->presence_forget(c->broker->fanout.ctx, &w->waiter);
        free(w);
        return true;
    }
    return false;
}

/* The answer from the backend, later; false when it cannot ask now (answer from here). */
static bool ask_backend(struct conn *c, const char *dest, size_t len)
{
    struct broker *b = c->broker;
    if (b->fanout.ops == NULL || b->fanout.ops->presence_query == NULL)
        return false;
    struct query_wait *w = calloc(1, sizeof(*w) + len + 1);
    if (w == NULL)
        return false;
    *w = (struct query_wait){.waiter.answered = query_answered, .c = c, .dest_len = len};
    memcpy(w->dest, dest, len + 1);
    if (b->fanout.ops->presence_query(b->fanout.ctx, dest, len, b->cfg.presence_max_users, false,
                                      &w->waiter) != 0) {
        free(w);
        return false;
    }
    w->next = query_waits;
    if (query_waits != NULL)
        query_waits->prev = w;
    query_waits = w;
    c->http_pending = w;
    return true;
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
    } else if (!ask_backend(c, dest, (size_t)len)) {
        /* partial: a cluster node whose backend cannot ask Redis now answers alone */
        http_respond_json_text(
            c, 200, NULL,
            presence_query_json(b, dest, (size_t)len,
                                b->fanout.ops != NULL && b->fanout.ops->presence_query != NULL));
    }
    free(dest);
}
