#include "broker/http/routes.h"
#include "broker/base/log.h"
#include "broker/base/url.h"
#include "broker/http/admin.h"
#include "broker/http/api.h"
#include "broker/http/metrics.h"
#include "broker/http/presence_api.h"
#include "broker/http/respond.h"

#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

/*
 * Static files go out whole in one response (they are small: pages, scripts, icons); a file past
 * this is refused with a 500 and a log line rather than tying up a connection's output buffer.
 */
#define STATIC_FILE_MAX (16 * 1024 * 1024)

static bool path_is(const struct ws_slice *path, const char *want)
{
    return path->len == strlen(want) && memcmp(path->ptr, want, path->len) == 0;
}

/* ---- static files (server.static_dir) -------------------------------------------------------- */

/* Content-Type by extension; browsers load ES modules only as text/javascript. */
static const char *static_content_type(const char *file)
{
    static const char *const types[][2] = {
        {"html", "text/html; charset=utf-8"},
        {"js", "text/javascript; charset=utf-8"},
        {"mjs", "text/javascript; charset=utf-8"},
        {"css", "text/css; charset=utf-8"},
        {"json", "application/json"},
        {"map", "application/json"},
        {"png", "image/png"},
        {"svg", "image/svg+xml"},
        {"ico", "image/x-icon"},
        {"txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(file, '.');
    if (dot != NULL && strchr(dot, '/') == NULL)
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (strcasecmp(dot + 1, types[i][0]) == 0)
                return types[i][1];
    return "application/octet-stream";
}

/* Segments starting with '.' ("..", ".", dotfiles such as .git) are never served. */
static bool has_dot_segment(const char *path)
{
    for (const char *p = strchr(path, '/'); p != NULL; p = strchr(p + 1, '/'))
        if (p[1] == '.')
            return true;
    return false;
}

/*
 * The file under root that the request path names, resolved (symlinks followed) into out;
 * false when there is none, or when it resolves outside root. "/" and "DIR/" mean index.html.
 */
static bool static_resolve(const char *root, const struct ws_slice *path, char out[PATH_MAX])
{
    static const char index_html[] = "index.html";
    char decoded[PATH_MAX], real_root[PATH_MAX], joined[PATH_MAX];
    long n = url_decode(path->ptr, path->len, false, decoded, sizeof(decoded) - sizeof(index_html));
    if (n <= 0 || decoded[0] != '/' || memchr(decoded, '\0', (size_t)n) != NULL)
        return false;
    decoded[n] = '\0';
    if (decoded[n - 1] == '/')
        memcpy(decoded + n, index_html, sizeof(index_html));
    if (has_dot_segment(decoded) || realpath(root, real_root) == NULL)
        return false;
    int len = snprintf(joined, sizeof(joined), "%s%s", real_root, decoded);
    if (len < 0 || (size_t)len >= sizeof(joined) || realpath(joined, out) == NULL)
        return false;
    size_t root_len = strlen(real_root);
    return strncmp(out, real_root, root_len) == 0 && (out[root_len] == '/' || root_len == 1);
}

static void serve_static(struct conn *c, const struct ws_http_request *req)
{
    bool head = path_is(&req->method, "HEAD");
    if (!head && !path_is(&req->method, "GET")) {
        http_respond_text(c, 405, "Allow: GET, HEAD\r\n", "only GET and HEAD are served here");
        return;
    }
    char file[PATH_MAX];
    struct stat st;
    int fd = static_resolve(c->broker->cfg.static_dir, &req->path, file)
                 ? open(file, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)
                 : -1;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0)
            close(fd);
        http_respond_text(c, 404, NULL, "not found");
        return;
    }
    if (st.st_size > STATIC_FILE_MAX) {
        close(fd);
        log_warn(c->id, "not serving %s: %lld bytes, over the %d-byte static file cap", file,
                 (long long)st.st_size, STATIC_FILE_MAX);
        http_respond_text(c, 500, NULL, "file too large to serve");
        return;
    }
    http_write_head(c, 200, static_content_type(file), (size_t)st.st_size,
                    "Cache-Control: no-cache\r\nX-Content-Type-Options: nosniff\r\n");
    /* The evbuffer owns fd from here, and closes it once the file is written. */
    if (head || st.st_size == 0 ||
        evbuffer_add_file(bufferevent_get_output(c->bev), fd, 0, st.st_size) != 0)
        close(fd);
    conn_close_gracefully(c, 0, "http response sent");
}

/* ---- routing --------------------------------------------------------------------------------- */

static bool is_api(const struct ws_http_request *req)
{
    size_t n = strlen(API_PATH_PREFIX);
    return req->path.len >= n && memcmp(req->path.ptr, API_PATH_PREFIX, n) == 0;
}

int http_check_config(const struct config *cfg, char *err, size_t err_len)
{
    struct stat st;
    const char *dir = cfg->static_dir;
    if (dir[0] != '\0' && stat(dir, &st) != 0) {
        snprintf(err, err_len, "server.static_dir: %s: %s", dir, strerror(errno));
        return -1;
    }
    if (dir[0] != '\0' && !S_ISDIR(st.st_mode)) {
        snprintf(err, err_len, "server.static_dir: %s: not a directory", dir);
        return -1;
    }
    char why[512];
    if (api_check_config(cfg, why, sizeof(why)) != 0) {
        snprintf(err, err_len, "server.api_key_file: %s", why);
        return -1;
    }
    if (admin_check_config(cfg, why, sizeof(why)) != 0) {
        snprintf(err, err_len, "server.admin_key_file: %s", why);
        return -1;
    }
    return 0;
}

int http_start(struct broker *b)
{
    char err[600];
    if (http_check_config(&b->cfg, err, sizeof(err)) != 0) {
        log_error(0, "%s", err);
        return -1;
    }
    if (b->cfg.static_dir[0] != '\0')
        log_info(0, "serving static files from %s", b->cfg.static_dir);
    return api_start(b) != 0 ? -1 : admin_start(b);
}

size_t http_body_wanted(struct conn *c, const struct ws_http_request *req)
{
    return is_api(req) && !admin_claims(req) ? api_body_wanted(c->broker, req) : 0;
}

/* GET /readyz: "ready" or why not, then the backend's per-link lines (a Redis Cluster's shards). */
static void serve_readyz(struct conn *c)
{
    const char *reason = metrics_not_ready(c->broker);
    struct evbuffer *body = evbuffer_new();
    if (body == NULL) {
        conn_close(c);
        return;
    }
    evbuffer_add_printf(body, "%s\n", reason == NULL ? "ready" : reason);
    metrics_ready_detail(c->broker, body);
    http_respond(c, reason == NULL ? 200 : 503, NULL, "text/plain; charset=utf-8", body);
    evbuffer_free(body);
}

void http_abandon(struct conn *c)
{
    /* the admin API's, GET /api/presence's and the publish API's answers may come later */
    if (!admin_abandon(c) && !presence_api_abandon(c))
        api_abandon(c);
}

void http_serve(struct conn *c, const struct ws_http_request *req, const char *body,
                size_t body_len)
{
    log_debug(c->id, "http %.*s %.*s", (int)req->method.len, req->method.ptr, (int)req->path.len,
              req->path.ptr);
    if (admin_claims(req)) {
        admin_serve(c, req);
        return;
    }
    if (presence_api_route(req)) {
        presence_api_serve(c, req);
        return;
    }
    if (is_api(req)) {
        api_serve(c, req, body, body_len);
        return;
    }
    bool known = path_is(&req->path, "/healthz") || path_is(&req->path, "/readyz") ||
                 path_is(&req->path, "/metrics");
    if (!known && c->broker->cfg.static_dir[0] != '\0') {
        serve_static(c, req);
        return;
    }
    if (!known) {
        http_respond_text(c, 404, NULL, "not found");
        return;
    }
    if (!path_is(&req->method, "GET")) {
        http_respond_text(c, 405, "Allow: GET\r\n", "only GET is served here");
        return;
    }
    if (path_is(&req->path, "/healthz")) {
        http_respond_text(c, 200, NULL, "ok");
    } else if (path_is(&req->path, "/readyz")) {
        serve_readyz(c);
    } else {
        metrics_serve(c);
    }
}
