#include "broker/base/config.h"
#include "broker/base/cpus.h"
#include "broker/base/log.h"

#include <errno.h>
#include <ini.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum key_type {
    KEY_ADDR,
    KEY_PATH,
    KEY_LOG_LEVEL,
    KEY_LOG_FORMAT,
    KEY_FRAMES,
    KEY_MS,
    KEY_SIZE,
    KEY_STRING,
    KEY_THREADS,
    KEY_BOOL,    /* on/off, true/false, yes/no, 1/0 */
    KEY_HISTORY, /* repeatable: each value adds a policy */
    KEY_PRESENCE /* repeatable: each value adds a pattern */
};

/* One settable key: where it lives in struct config and how its text is read. */
struct config_key {
    const char *section;
    const char *name;
    enum key_type type;
    size_t offset;
    size_t size; /* KEY_STRING: capacity of the char array */
};

#define KEY(sec, name, type, field)                                                                \
    {                                                                                              \
        sec, name, type, offsetof(struct config, field), sizeof(((struct config *)0)->field)       \
    }

static const struct config_key config_keys[] = {
    KEY("server", "ws", KEY_ADDR, ws),
    KEY("server", "ws_path", KEY_PATH, ws_path),
    KEY("server", "tcp", KEY_ADDR, tcp),
    KEY("server", "wss", KEY_ADDR, wss),
    KEY("server", "stomp_tls", KEY_ADDR, stomp_tls),
    KEY("server", "http", KEY_ADDR, http),
    KEY("server", "api_key_file", KEY_STRING, api_key_file),
    KEY("server", "admin_key_file", KEY_STRING, admin_key_file), /* admin API (issue #15) */
    KEY("server", "static_dir", KEY_STRING, static_dir),
    KEY("server", "log_level", KEY_LOG_LEVEL, log_level),
    KEY("server", "log_file", KEY_STRING, log_file),
    KEY("server", "log_format", KEY_LOG_FORMAT, log_format),
    KEY("server", "outbound_frames", KEY_FRAMES, outbound_frames),
    KEY("server", "shutdown_timeout_ms", KEY_MS, shutdown_timeout_ms),
    KEY("server", "tcp_keepalive_ms", KEY_MS, tcp_keepalive_ms),
    KEY("server", "threads", KEY_THREADS, threads),
    KEY("limits", "connection_rate", KEY_SIZE, connection_rate),
    KEY("limits", "connection_burst", KEY_SIZE, connection_burst),
    KEY("limits", "max_connections", KEY_SIZE, max_connections),
    KEY("limits", "max_connections_per_address", KEY_SIZE, max_connections_per_address),
    KEY("limits", "publish_rate", KEY_SIZE, publish_rate),
    KEY("limits", "publish_burst", KEY_SIZE, publish_burst),
    KEY("limits", "publish_rate_action", KEY_STRING, publish_rate_action),
    KEY("limits", "handshake_timeout_ms", KEY_MS, handshake_timeout_ms),
    KEY("limits", "connect_timeout_ms", KEY_MS, connect_timeout_ms),
    KEY("limits", "max_http_header_bytes", KEY_SIZE, max_http_header_bytes),
    KEY("limits", "max_ws_message", KEY_SIZE, max_ws_message),
    KEY("limits", "max_frame_headers", KEY_SIZE, max_frame_headers),
    KEY("limits", "max_header_line", KEY_SIZE, max_header_line),
    KEY("limits", "max_header_bytes", KEY_SIZE, max_header_bytes),
    KEY("limits", "max_body", KEY_SIZE, max_body),
    KEY("limits", "max_subscriptions", KEY_SIZE, max_subscriptions),
    KEY("limits", "max_transactions", KEY_SIZE, max_transactions),
    KEY("limits", "max_tx_frames", KEY_SIZE, max_tx_frames),
    KEY("limits", "max_unacked", KEY_SIZE, max_unacked),
    KEY("limits", "outbound_high_water", KEY_SIZE, outbound_high_water),
    KEY("limits", "slow_consumer_max_drops", KEY_SIZE, slow_consumer_max_drops),
    KEY("limits", "history_bytes", KEY_SIZE, history_bytes),
    KEY("heartbeat", "send_ms", KEY_MS, heartbeat_send_ms),
    KEY("heartbeat", "receive_ms", KEY_MS, heartbeat_receive_ms),
    KEY("heartbeat", "min_ms", KEY_MS, heartbeat_min_ms),
    KEY("heartbeat", "max_ms", KEY_MS, heartbeat_max_ms),
    KEY("queue", "max_messages", KEY_SIZE, queue_max_messages),
    KEY("queue", "prefetch", KEY_SIZE, queue_prefetch),
    KEY("queue", "overflow", KEY_STRING, queue_overflow),
    KEY("tls", "cert", KEY_STRING, tls_cert),
    KEY("tls", "key", KEY_STRING, tls_key),
    KEY("tls", "client_ca", KEY_STRING, tls_client_ca),
    KEY("tls", "ciphers", KEY_STRING, tls_ciphers),
    KEY("auth", "users", KEY_STRING, auth_users),
    KEY("auth", "acl", KEY_STRING, auth_acl),
    KEY("auth", "jwt_hs256_secret_file", KEY_STRING, auth_jwt_hs256_secret_file),
    KEY("auth", "jwt_public_key", KEY_STRING, auth_jwt_public_key),
    KEY("auth", "jwt_audience", KEY_STRING, auth_jwt_audience),
    KEY("auth", "jwt_issuer", KEY_STRING, auth_jwt_issuer),
    KEY("auth", "anonymous", KEY_STRING, auth_anonymous),
    KEY("auth", "allow_origin", KEY_STRING, auth_allow_origin),
    KEY("auth", "workers", KEY_SIZE, auth_workers),
    KEY("cluster", "redis", KEY_STRING, cluster_redis),
    KEY("cluster", "node_id", KEY_STRING, cluster_node_id),
    KEY("cluster", "prefix", KEY_STRING, cluster_prefix),
    KEY("cluster", "unsubscribe_grace_ms", KEY_MS, cluster_unsubscribe_grace_ms),
    KEY("cluster", "probe_interval_ms", KEY_MS, cluster_probe_interval_ms),
    KEY("cluster", "reconnect_max_ms", KEY_MS, cluster_reconnect_max_ms),
    KEY("cluster", "queue_visibility_ms", KEY_MS, cluster_queue_visibility_ms),
    KEY("cluster", "queue_buffer_bytes", KEY_SIZE, cluster_queue_buffer_bytes),
    KEY("cluster", "redis_sentinel", KEY_STRING, cluster_redis_sentinel),
    KEY("cluster", "redis_master", KEY_STRING, cluster_redis_master),
    KEY("cluster", "sentinel_password", KEY_STRING, cluster_sentinel_password),
    KEY("cluster", "sentinel_timeout_ms", KEY_MS, cluster_sentinel_timeout_ms),
    KEY("cluster", "min_replicas_ack", KEY_SIZE, cluster_min_replicas_ack),
    KEY("cluster", "wait_timeout_ms", KEY_MS, cluster_wait_timeout_ms),
    KEY("cluster", "redis_cluster", KEY_STRING, cluster_redis_cluster),
    KEY("cluster", "redis_cluster_refresh_ms", KEY_MS, cluster_redis_cluster_refresh_ms),
    KEY("compression", "enabled", KEY_BOOL, compression_enabled),
    KEY("compression", "min_size", KEY_SIZE, compression_min_size),
    KEY("compression", "level", KEY_SIZE, compression_level),
    KEY("history", "policy", KEY_HISTORY, history),
    KEY("sse", "keepalive_s", KEY_SIZE, sse_keepalive_s),
    KEY("refresh", "warn_s", KEY_SIZE, refresh_warn_s),
    KEY("presence", "pattern", KEY_PRESENCE, presence),
    KEY("presence", "max_users", KEY_SIZE, presence_max_users),
    KEY("presence", "ttl_s", KEY_SIZE, presence_ttl_s),
};

void config_defaults(struct config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    config_parse_addr("127.0.0.1:15674", &cfg->ws);
    strcpy(cfg->ws_path, "/ws");
    config_parse_addr("127.0.0.1:61613", &cfg->tcp);
    config_parse_addr("off", &cfg->wss);
    config_parse_addr("off", &cfg->stomp_tls);
    config_parse_addr("off", &cfg->http);
    cfg->log_level = LOG_INFO;
    cfg->log_format = LOG_FORMAT_TEXT;
    cfg->outbound_frames = OUTBOUND_FRAMES_AUTO;
    cfg->shutdown_timeout_ms = 5000;
    cfg->tcp_keepalive_ms = 60000;
    cfg->threads = CONFIG_THREADS_AUTO; /* a new user gets every core without finding a flag */

    cfg->connection_rate = 1000;
    cfg->connection_burst = 2000;
    cfg->max_connections = 100000;
    cfg->max_connections_per_address = 10000; /* an office behind one NAT address is legitimate */
    cfg->publish_rate = 10000;
    cfg->publish_burst = 20000;
    strcpy(cfg->publish_rate_action, "throttle");
    cfg->handshake_timeout_ms = 10000;
    cfg->sse_keepalive_s = 15;
    cfg->presence_max_users = 100;
    cfg->presence_ttl_s = 30;
    cfg->connect_timeout_ms = 10000;
    cfg->max_http_header_bytes = 8192;
    cfg->max_ws_message = 1024 * 1024;
    cfg->max_frame_headers = 64;
    cfg->max_header_line = 8192;
    cfg->max_header_bytes = 65536;
    cfg->max_body = 1024 * 1024;
    cfg->max_subscriptions = 1024;
    cfg->max_transactions = 16;
    cfg->max_tx_frames = 10000;
    cfg->max_unacked = 10000;
    cfg->outbound_high_water = 1024 * 1024;
    cfg->slow_consumer_max_drops = 10000;
    cfg->history_bytes = 64u * 1024 * 1024;

    cfg->heartbeat_send_ms = 1000; /* the fastest offered: a client asking for 1 s gets 1 s */
    cfg->heartbeat_receive_ms = 10000;
    cfg->heartbeat_min_ms = 1000;
    cfg->heartbeat_max_ms = 60000;

    cfg->queue_max_messages = 10000;
    cfg->queue_prefetch = 100;

    strcpy(cfg->cluster_prefix, "stompws");
    cfg->cluster_unsubscribe_grace_ms = 1000;
    cfg->cluster_probe_interval_ms = 5000;
    cfg->cluster_reconnect_max_ms = 5000;
    cfg->cluster_queue_visibility_ms = 30000;
    cfg->cluster_queue_buffer_bytes = 64u * 1024 * 1024;
    cfg->cluster_sentinel_timeout_ms = 1000;
    cfg->cluster_wait_timeout_ms = 1000;
    cfg->cluster_redis_cluster_refresh_ms = 5000;
    strcpy(cfg->tls_ciphers, TLS_DEFAULT_CIPHERS);
    strcpy(cfg->auth_anonymous, "auto");
    cfg->auth_workers = 2;
    strcpy(cfg->queue_overflow, "block");

    cfg->compression_enabled = true;
    cfg->compression_min_size = 256; /* below it, deflate's headers eat most of the gain */
    cfg->compression_level = 6;      /* zlib's default: a message is deflated once per fan-out */
    cfg->refresh_warn_s = 30; /* token refresh: a client has half a minute to fetch a new one */
}

int config_parse_addr(const char *text, struct config_addr *out)
{
    if (strcmp(text, "off") == 0) {
        out->enabled = false;
        out->host[0] = '\0';
        out->port = 0;
        return 0;
    }
    const char *colon = strrchr(text, ':');
    if (colon == NULL || colon == text)
        return -1;
    const char *host = text;
    size_t host_len = (size_t)(colon - text);
    if (host[0] == '[') { /* [v6]:port */
        if (host_len < 3 || host[host_len - 1] != ']')
            return -1;
        host++;
        host_len -= 2;
    }
    /* Digits only: strtoul would also take spaces and a sign (" 80", "+80", "-0"). */
    if (host_len >= sizeof(out->host) || colon[1] < '0' || colon[1] > '9')
        return -1;
    char *end;
    errno = 0;
    unsigned long port = strtoul(colon + 1, &end, 10);
    if (errno != 0 || *end != '\0' || end == colon + 1 || port > 65535)
        return -1;
    memcpy(out->host, host, host_len);
    out->host[host_len] = '\0';
    out->port = (unsigned short)port;
    out->enabled = true;
    return 0;
}

/* Reads a non-negative integer with an optional k/m/g suffix (powers of 1024) for sizes. */
static int parse_number(const char *text, bool allow_suffix, uint64_t *out)
{
    char *end;
    errno = 0;
    /* strtoull would skip spaces and take a sign: " -1" would read as 2^64 - 1. */
    if (text[0] < '0' || text[0] > '9')
        return -1;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text)
        return -1;
    uint64_t mult = 1;
    if (allow_suffix && *end != '\0' && end[1] == '\0') {
        switch (*end) {
        case 'k':
        case 'K':
            mult = 1024;
            break;
        case 'm':
        case 'M':
            mult = 1024 * 1024;
            break;
        case 'g':
        case 'G':
            mult = 1024 * 1024 * 1024;
            break;
        default:
            return -1;
        }
        end++;
    }
    if (*end != '\0' || v > UINT64_MAX / mult)
        return -1;
    *out = v * mult;
    return 0;
}

/* A TTL: digits, then s, m, h or d. 0 on success. */
static int parse_ttl(const char *text, uint64_t *ms)
{
    static const struct {
        char unit;
        uint64_t ms;
    } units[] = {{'s', 1000}, {'m', 60000}, {'h', 3600000}, {'d', 86400000}};
    size_t len = strlen(text);
    char digits[24];
    if (len < 2 || len - 1 >= sizeof(digits))
        return -1;
    memcpy(digits, text, len - 1);
    digits[len - 1] = '\0';
    uint64_t n;
    if (parse_number(digits, false, &n) != 0 || n == 0)
        return -1;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (text[len - 1] == units[i].unit && n <= UINT64_MAX / units[i].ms) {
            *ms = n * units[i].ms;
            return 0;
        }
    return -1;
}

/* The most messages one policy keeps per destination. */
#define CONFIG_HISTORY_SIZE_MAX 1000000

int config_parse_history(const char *spec, struct config_history *out, char *err, size_t err_len)
{
    /* The last '=': a destination may hold one, a size never does. */
    const char *eq = strrchr(spec, '=');
    size_t pattern_len = eq != NULL ? (size_t)(eq - spec) : 0;
    if (eq == NULL || pattern_len == 0) {
        snprintf(err, err_len, "history '%.200s': expected PATTERN=SIZE[/TTL]", spec);
        return -1;
    }
    size_t prefix = strlen("/topic/");
    if (pattern_len <= prefix || memcmp(spec, "/topic/", prefix) != 0) {
        snprintf(err, err_len, "history '%.200s': pattern '%.*s' is not a /topic/ destination",
                 spec, (int)(pattern_len > 200 ? 200 : pattern_len), spec);
        return -1;
    }
    if (pattern_len >= sizeof(out->pattern)) {
        snprintf(err, err_len, "history '%.200s': pattern longer than %zu bytes", spec,
                 sizeof(out->pattern) - 1);
        return -1;
    }
    char size_text[24];
    const char *slash = strchr(eq + 1, '/');
    size_t size_len = slash != NULL ? (size_t)(slash - eq - 1) : strlen(eq + 1);
    uint64_t size = 0, ttl_ms = 0;
    bool ok = size_len > 0 && size_len < sizeof(size_text);
    if (ok) {
        memcpy(size_text, eq + 1, size_len);
        size_text[size_len] = '\0';
        ok = parse_number(size_text, false, &size) == 0 && size >= 1 &&
             size <= CONFIG_HISTORY_SIZE_MAX;
    }
    if (!ok) {
        snprintf(err, err_len, "history '%.200s': SIZE must be a count from 1 to %d", spec,
                 CONFIG_HISTORY_SIZE_MAX);
        return -1;
    }
    if (slash != NULL && parse_ttl(slash + 1, &ttl_ms) != 0) {
        snprintf(err, err_len, "history '%.200s': TTL must be a number followed by s, m, h or d",
                 spec);
        return -1;
    }
    memcpy(out->pattern, spec, pattern_len);
    out->pattern[pattern_len] = '\0';
    out->size = (size_t)size;
    out->ttl_ms = ttl_ms;
    return 0;
}

/* Appends one policy; -1 with err set when it is malformed or there are too many. */
static int add_history(struct config *cfg, const char *value, char *err, size_t err_len)
{
    if (cfg->history_count == CONFIG_HISTORY_MAX) {
        snprintf(err, err_len, "history '%.200s': more than %d policies", value,
                 CONFIG_HISTORY_MAX);
        return -1;
    }
    if (config_parse_history(value, &cfg->history[cfg->history_count], err, err_len) != 0)
        return -1;
    cfg->history_count++;
    return 0;
}

/* Appends one presence pattern: a /topic/ name or wildcard pattern; -1 with err set when it is
 * not one, or there are too many. */
static int add_presence(struct config *cfg, const char *value, char *err, size_t err_len)
{
    size_t prefix = strlen("/topic/"), len = strlen(value);
    if (cfg->presence_count == CONFIG_PRESENCE_MAX) {
        snprintf(err, err_len, "presence '%.200s': more than %d patterns", value,
                 CONFIG_PRESENCE_MAX);
        return -1;
    }
    if (len <= prefix || memcmp(value, "/topic/", prefix) != 0) {
        snprintf(err, err_len, "presence '%.200s': not a /topic/ destination or pattern", value);
        return -1;
    }
    if (len >= sizeof(cfg->presence[0])) {
        snprintf(err, err_len, "presence '%.200s': pattern longer than %zu bytes", value,
                 sizeof(cfg->presence[0]) - 1);
        return -1;
    }
    memcpy(cfg->presence[cfg->presence_count++], value, len + 1);
    return 0;
}

static int set_value(struct config *cfg, const struct config_key *k, const char *value)
{
    char *field = (char *)cfg + k->offset;
    uint64_t n;
    switch (k->type) {
    case KEY_ADDR:
        return config_parse_addr(value, (struct config_addr *)field);
    case KEY_PATH:
        if (value[0] != '/' || strlen(value) >= CONFIG_ADDR_MAX)
            return -1;
        strcpy(field, value);
        return 0;
    case KEY_LOG_LEVEL: {
        int level = log_level_parse(value);
        if (level < 0)
            return -1;
        *(int *)field = level;
        return 0;
    }
    case KEY_LOG_FORMAT: {
        int format = log_format_parse(value);
        if (format < 0)
            return -1;
        *(int *)field = format;
        return 0;
    }
    case KEY_FRAMES: {
        static const char *const names[] = {"auto", "text", "binary"};
        for (int i = 0; i < 3; i++)
            if (strcmp(value, names[i]) == 0) {
                *(enum config_outbound_frames *)field = (enum config_outbound_frames)i;
                return 0;
            }
        return -1;
    }
    case KEY_MS:
        if (parse_number(value, false, &n) != 0 || n > UINT32_MAX)
            return -1;
        *(unsigned *)field = (unsigned)n;
        return 0;
    case KEY_SIZE:
        if (parse_number(value, true, &n) != 0 || n > SIZE_MAX)
            return -1;
        *(size_t *)field = (size_t)n;
        return 0;
    case KEY_STRING:
        if (strlen(value) >= k->size)
            return -1;
        strcpy(field, value);
        return 0;
    case KEY_THREADS: /* a count is checked against its range by config_validate() */
        if (strcmp(value, "auto") == 0) {
            *(size_t *)field = CONFIG_THREADS_AUTO;
            return 0;
        }
        if (parse_number(value, false, &n) != 0 || n == CONFIG_THREADS_AUTO || n > SIZE_MAX)
            return -1;
        *(size_t *)field = (size_t)n;
        return 0;
    case KEY_BOOL: {
        static const char *const yes[] = {"on", "true", "yes", "1"};
        static const char *const no[] = {"off", "false", "no", "0"};
        for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++)
            if (strcmp(value, yes[i]) == 0 || strcmp(value, no[i]) == 0) {
                *(bool *)field = strcmp(value, yes[i]) == 0;
                return 0;
            }
        return -1;
    }
    case KEY_HISTORY: /* config_set() takes it first, for its own error message */
    case KEY_PRESENCE:
        return -1;
    }
    return -1;
}

static const char *type_hint(enum key_type type)
{
    switch (type) {
    case KEY_ADDR:
        return "HOST:PORT or off";
    case KEY_PATH:
        return "a path starting with /";
    case KEY_LOG_LEVEL:
        return "debug, info, warn or error";
    case KEY_LOG_FORMAT:
        return "text or json";
    case KEY_FRAMES:
        return "auto, text or binary";
    case KEY_MS:
        return "milliseconds";
    case KEY_SIZE:
        return "a byte count (k, m, g suffixes allowed)";
    case KEY_STRING:
        return "a shorter string";
    case KEY_THREADS:
        return "auto or a number of event loops";
    case KEY_BOOL:
        return "on or off";
    case KEY_HISTORY:
        return "PATTERN=SIZE[/TTL]";
    case KEY_PRESENCE:
        return "a /topic/ name or pattern";
    }
    return "";
}

int config_set(struct config *cfg, const char *section, const char *key, const char *value,
               char *err, size_t err_len)
{
    for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
        const struct config_key *k = &config_keys[i];
        if (strcmp(k->section, section) != 0 || strcmp(k->name, key) != 0)
            continue;
        if (k->type == KEY_HISTORY)
            return add_history(cfg, value, err, err_len);
        if (k->type == KEY_PRESENCE)
            return add_presence(cfg, value, err, err_len);
        if (set_value(cfg, k, value) == 0)
            return 0;
        snprintf(err, err_len, "%s.%s: invalid value '%s' (expected %s)", section, key, value,
                 type_hint(k->type));
        return -1;
    }
    snprintf(err, err_len, "unknown key '%s.%s'", section, key);
    return -1;
}

int config_set_dotted(struct config *cfg, const char *dotted, const char *value, char *err,
                      size_t err_len)
{
    const char *dot = strchr(dotted, '.');
    if (dot == NULL || dot == dotted || (size_t)(dot - dotted) >= 64) {
        snprintf(err, err_len, "key '%s' must be written section.key", dotted);
        return -1;
    }
    char section[64];
    memcpy(section, dotted, (size_t)(dot - dotted));
    section[dot - dotted] = '\0';
    return config_set(cfg, section, dot + 1, value, err, err_len);
}

/* State threaded through ini_parse: the first error wins. */
struct load_state {
    struct config *cfg;
    char message[256];
    bool failed;
};

static int on_ini_entry(void *user, const char *section, const char *name, const char *value)
{
    struct load_state *st = user;
    if (st->failed)
        return 0;
    if (config_set(st->cfg, section, name, value, st->message, sizeof(st->message)) != 0) {
        st->failed = true;
        return 0;
    }
    return 1;
}

/*
 * inih reads through a buffer of ini_max_line bytes and takes the rest of a longer line for a line
 * of its own (a cut value, or "rest:of:value" read as a key). This reader notices: the rest of a
 * long comment is skipped, any other long line stops the load with an error naming the limit.
 * Debian's inih makes that buffer a run-time setting (INI_MAX_LINE, 200, is only its default):
 * config_load_file() asks for CONFIG_LINE_MAX, so a long tls.ciphers or allow_origin fits and
 * what --print-config writes loads back.
 */
#define CONFIG_LINE_MAX 4096 /* bytes of a config line, with its line end and a NUL */

struct line_reader {
    FILE *file;
    int line;      /* lines read so far */
    int long_line; /* the line that was too long, 0 if none */
};

static char *read_line(char *str, int num, void *stream)
{
    struct line_reader *r = stream;
    if (fgets(str, num, r->file) == NULL)
        return NULL;
    r->line++;
    size_t len = strlen(str);
    if ((len > 0 && str[len - 1] == '\n') || feof(r->file))
        return str;
    int c;
    while ((c = fgetc(r->file)) != EOF && c != '\n')
        ;
    const char *text = str + strspn(str, " \t");
    if (*text == ';' || *text == '#')
        return str;
    r->long_line = r->line;
    return NULL;
}

int config_load_file(struct config *cfg, const char *path, char *err, size_t err_len)
{
    FILE *file = fopen(path, "r");
    if (file == NULL) {
        snprintf(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    struct line_reader reader = {.file = file};
    struct load_state st = {.cfg = cfg, .failed = false};
    ini_use_stack = false; /* a heap buffer of ini_initial_alloc bytes, up to ini_max_line */
    ini_initial_alloc = CONFIG_LINE_MAX;
    ini_max_line = CONFIG_LINE_MAX;
    int line = ini_parse_stream(read_line, &reader, on_ini_entry, &st);
    fclose(file);
    if (line == 0 && reader.long_line == 0)
        return 0;
    if (line == 0)
        snprintf(err, err_len,
                 "%s:%d: line longer than %d bytes (give a longer value with --set "
                 "SECTION.KEY=VALUE)",
                 path, reader.long_line, CONFIG_LINE_MAX - 3);
    else if (line == -2)
        snprintf(err, err_len, "%s: out of memory", path);
    else if (st.failed)
        snprintf(err, err_len, "%s:%d: %s", path, line, st.message);
    else
        snprintf(err, err_len, "%s:%d: syntax error", path, line);
    return -1;
}

int config_validate(const struct config *cfg, char *err, size_t err_len)
{
    if (cfg->refresh_warn_s > CONFIG_REFRESH_WARN_MAX_S) {
        snprintf(err, err_len, "refresh.warn_s (%zu) must be from 0 to %d seconds",
                 cfg->refresh_warn_s, CONFIG_REFRESH_WARN_MAX_S);
        return -1;
    }
    if (cfg->sse_keepalive_s < 1 || cfg->sse_keepalive_s > 3600) {
        snprintf(err, err_len, "sse.keepalive_s (%zu) must be from 1 to 3600 seconds",
                 cfg->sse_keepalive_s);
        return -1;
    }
    if (cfg->presence_ttl_s < 1 || cfg->presence_ttl_s > 3600) {
        snprintf(err, err_len, "presence.ttl_s (%zu) must be from 1 to 3600 seconds",
                 cfg->presence_ttl_s);
        return -1;
    }
    if (cfg->heartbeat_min_ms > cfg->heartbeat_max_ms) {
        snprintf(err, err_len, "heartbeat.min_ms (%u) is greater than heartbeat.max_ms (%u)",
                 cfg->heartbeat_min_ms, cfg->heartbeat_max_ms);
        return -1;
    }
    if (cfg->threads > CONFIG_THREADS_MAX) {
        snprintf(err, err_len, "server.threads must be auto or between 1 and %d (got %zu)",
                 CONFIG_THREADS_MAX, cfg->threads);
        return -1;
    }
    if (cfg->auth_workers > CONFIG_AUTH_WORKERS_MAX) {
        snprintf(err, err_len, "auth.workers must be between 0 and %d (got %zu)",
                 CONFIG_AUTH_WORKERS_MAX, cfg->auth_workers);
        return -1;
    }
    if (!cfg->ws.enabled && !cfg->tcp.enabled && !cfg->wss.enabled && !cfg->stomp_tls.enabled) {
        snprintf(err, err_len, "every listener (server.ws, tcp, wss, stomp_tls) is off");
        return -1;
    }
    if ((cfg->wss.enabled || cfg->stomp_tls.enabled) &&
        (cfg->tls_cert[0] == '\0' || cfg->tls_key[0] == '\0')) {
        snprintf(err, err_len, "server.wss and server.stomp_tls need tls.cert and tls.key");
        return -1;
    }
    if (strcmp(cfg->auth_anonymous, "auto") != 0 && strcmp(cfg->auth_anonymous, "on") != 0 &&
        strcmp(cfg->auth_anonymous, "off") != 0) {
        snprintf(err, err_len, "auth.anonymous must be auto, on or off");
        return -1;
    }
    if (strcmp(cfg->publish_rate_action, "throttle") != 0 &&
        strcmp(cfg->publish_rate_action, "error") != 0) {
        snprintf(err, err_len, "limits.publish_rate_action must be throttle or error");
        return -1;
    }
    if (strcmp(cfg->queue_overflow, "block") != 0 && strcmp(cfg->queue_overflow, "reject") != 0) {
        snprintf(err, err_len, "queue.overflow must be block or reject");
        return -1;
    }
    if (cfg->compression_level < 1 || cfg->compression_level > 9) {
        snprintf(err, err_len, "compression.level must be 1 (fastest) to 9 (smallest)");
        return -1;
    }
    if ((cfg->cluster_redis_sentinel[0] != '\0') != (cfg->cluster_redis_master[0] != '\0')) {
        snprintf(err, err_len, "cluster.redis_sentinel and cluster.redis_master go together");
        return -1;
    }
    if (cfg->cluster_redis_cluster_refresh_ms < 100) {
        snprintf(err, err_len, "cluster.redis_cluster_refresh_ms must be >= 100");
        return -1;
    }
    if (cfg->cluster_min_replicas_ack > 100) {
        snprintf(err, err_len, "cluster.min_replicas_ack must be from 0 to 100 (got %zu)",
                 cfg->cluster_min_replicas_ack);
        return -1;
    }
    if (cfg->cluster_sentinel_timeout_ms == 0 || cfg->cluster_wait_timeout_ms == 0) {
        snprintf(err, err_len,
                 "cluster.sentinel_timeout_ms and cluster.wait_timeout_ms must be > 0");
        return -1;
    }
    if (cfg->max_ws_message < 1024 || cfg->max_body == 0 || cfg->max_frame_headers == 0) {
        snprintf(err, err_len,
                 "limits.max_ws_message must be >= 1024 and limits.max_body, "
                 "limits.max_frame_headers > 0");
        return -1;
    }
    return 0;
}

static void format_value(const struct config *cfg, const struct config_key *k, char *out,
                         size_t len)
{
    const char *field = (const char *)cfg + k->offset;
    static const char *const frames[] = {"auto", "text", "binary"};
    switch (k->type) {
    case KEY_ADDR: {
        const struct config_addr *a = (const struct config_addr *)field;
        if (!a->enabled)
            snprintf(out, len, "off");
        else
            snprintf(out, len, strchr(a->host, ':') != NULL ? "[%s]:%u" : "%s:%u", a->host,
                     a->port);
        return;
    }
    case KEY_LOG_LEVEL: {
        int level = *(const int *)field;
        snprintf(out, len, "%s", log_level_name((enum log_level)level));
        return;
    }
    case KEY_LOG_FORMAT: {
        int format = *(const int *)field;
        snprintf(out, len, "%s", log_format_name((enum log_format)format));
        return;
    }
    case KEY_FRAMES:
        snprintf(out, len, "%s", frames[*(const enum config_outbound_frames *)field]);
        return;
    case KEY_MS:
        snprintf(out, len, "%u", *(const unsigned *)field);
        return;
    case KEY_SIZE: /* exact: "1k" would read oddly on counts such as max_subscriptions */
        snprintf(out, len, "%zu", *(const size_t *)field);
        return;
    case KEY_THREADS:
        if (*(const size_t *)field == CONFIG_THREADS_AUTO)
            snprintf(out, len, "auto");
        else
            snprintf(out, len, "%zu", *(const size_t *)field);
        return;
    case KEY_BOOL:
        snprintf(out, len, "%s", *(const bool *)field ? "on" : "off");
        return;
    case KEY_HISTORY: /* config_print() writes one line per policy */
    case KEY_PRESENCE:
        out[0] = '\0';
        return;
    case KEY_PATH:
    case KEY_STRING:
        if (field == cfg->cluster_redis)
            config_redact_url(out, len, field);
        else if (field == cfg->cluster_sentinel_password && field[0] != '\0')
            snprintf(out, len, "***");
        else
            snprintf(out, len, "%s", field);
        return;
    }
}

/* "PATTERN=SIZE[/TTL]" with the TTL in its largest whole unit: loads back the same. */
static void format_history(const struct config_history *h, char *out, size_t len)
{
    static const struct {
        char unit;
        uint64_t ms;
    } units[] = {{'d', 86400000}, {'h', 3600000}, {'m', 60000}, {'s', 1000}};
    int n = snprintf(out, len, "%s=%zu", h->pattern, h->size);
    if (h->ttl_ms == 0 || n < 0 || (size_t)n >= len)
        return;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (h->ttl_ms % units[i].ms == 0) {
            snprintf(out + n, len - (size_t)n, "/%llu%c",
                     (unsigned long long)(h->ttl_ms / units[i].ms), units[i].unit);
            return;
        }
}

static void print_history(const struct config *cfg, FILE *out)
{
    if (cfg->history_count == 0)
        fprintf(out, "; policy = PATTERN=SIZE[/TTL], one line per policy (none set)\n");
    for (size_t i = 0; i < cfg->history_count; i++) {
        char value[CONFIG_ADDR_MAX + 64];
        format_history(&cfg->history[i], value, sizeof(value));
        fprintf(out, "policy = %s\n", value);
    }
}

static void print_presence(const struct config *cfg, FILE *out)
{
    if (cfg->presence_count == 0)
        fprintf(out, "; pattern = /topic/PATTERN, one line per pattern (none set: presence off)\n");
    for (size_t i = 0; i < cfg->presence_count; i++)
        fprintf(out, "pattern = %s\n", cfg->presence[i]);
}

void config_print(const struct config *cfg, FILE *out)
{
    const char *section = NULL;
    for (size_t i = 0; i < sizeof(config_keys) / sizeof(config_keys[0]); i++) {
        const struct config_key *k = &config_keys[i];
        if (section == NULL || strcmp(k->section, section) != 0) {
            fprintf(out, "%s[%s]\n", section == NULL ? "" : "\n", k->section);
            section = k->section;
        }
        char value[sizeof(cfg->auth_allow_origin) + 64];
        format_value(cfg, k, value, sizeof(value));
        /* No space before a value that starts with ';': inih takes " ;" for a comment, while
         * "=;..." is how such a value was written in the file it came from. */
        bool spaced = value[0] != '\0' && value[0] != ';';
        if (k->type == KEY_HISTORY) {
            print_history(cfg, out);
            continue;
        }
        if (k->type == KEY_PRESENCE) {
            print_presence(cfg, out);
            continue;
        }
        if (k->type == KEY_THREADS && cfg->threads == CONFIG_THREADS_AUTO)
            fprintf(out, "; auto: %zu here, one event loop per CPU this process may use\n",
                    config_threads(cfg));
        fprintf(out, "%s =%s%s\n", k->name, spaced ? " " : "", value);
    }
}

void config_redact_url(char *out, size_t len, const char *url)
{
    const char *rest = strstr(url, "://");
    rest = rest != NULL ? rest + 3 : url;
    size_t authority_len = strcspn(rest, "/");
    const char *at = NULL;
    for (size_t i = 0; i < authority_len; i++)
        if (rest[i] == '@')
            at = rest + i; /* the last '@', as the cluster reads a Redis URL */
    const char *colon = at != NULL ? memchr(rest, ':', (size_t)(at - rest)) : NULL;
    /* "***", or one '*' per character of a shorter password: never longer than the URL, so what
     * --print-config writes fits the key again when it is loaded back. */
    size_t stars = colon != NULL ? (size_t)(at - colon - 1) : 0;
    if (colon == NULL)
        snprintf(out, len, "%s", url);
    else
        snprintf(out, len, "%.*s%.*s%s", (int)(colon + 1 - url), url, (int)(stars < 3 ? stars : 3),
                 "***", at);
}

bool config_clustered(const struct config *cfg)
{
    return cfg->cluster_redis[0] != '\0' || cfg->cluster_redis_sentinel[0] != '\0' ||
           cfg->cluster_redis_cluster[0] != '\0';
}

size_t config_threads(const struct config *cfg)
{
    if (cfg->threads != CONFIG_THREADS_AUTO)
        return cfg->threads;
    size_t cpus = cpus_usable();
    return cpus < CONFIG_THREADS_MAX ? cpus : CONFIG_THREADS_MAX;
}
