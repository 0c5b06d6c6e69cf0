#include "broker/base/log.h"
#include "ws/utf8.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* A message longer than this is cut; the line around it always fits (see LINE_BYTES). */
#define MSG_MAX 2048
/* A peer longer than this is cut (conn.c's are at most 63 bytes). */
#define PEER_MAX 64
/* Worst case: every byte of message and peer escaped as \u00XX or \ufffd (6 bytes each), plus
 * the timestamp, level, id and JSON keys. */
#define LINE_BYTES (6 * (MSG_MAX + PEER_MAX) + 256)

static enum log_level min_level = LOG_INFO;
static enum log_format out_format = LOG_FORMAT_TEXT;

static const char *const level_names[] = {"debug", "info", "warn", "error"};
static const char *const format_names[] = {"text", "json"};

/*
 * Where lines go: stderr, or a file opened by name (and reopened by name after rotation). With
 * server.threads > 1 every loop writes lines: out_lock guards the descriptor and the state of the
 * last write, so a rotation never closes the descriptor under another loop's write and lines stay
 * whole. Level and format are set before any loop starts and only read afterwards.
 */
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static int out_fd = STDERR_FILENO; /* owned when log_path is set; guarded by out_lock */
static char *log_path;             /* owned: NULL while logging to stderr; set before loops run */
static uint64_t lines_dropped;     /* guarded by out_lock */
static bool write_failing; /* the last line was dropped: stderr has been told once (out_lock) */
static bool line_torn;     /* a short write left a partial line: the next one starts on its own */

/*
 * conn id -> peer: open addressing with linear probing, kept at most half full. One table per
 * thread: a connection lives on one event loop, which is the only one that logs about it, so the
 * lookup on every line takes no lock.
 */
struct peer_slot {
    uint64_t id;      /* 0 = empty slot */
    const char *peer; /* borrowed from the connection until log_peer_clear() */
};
static _Thread_local struct peer_slot *peers; /* owned by the thread */
static _Thread_local size_t peer_cap; /* slots: a power of two, 0 before the first connection */
static _Thread_local size_t peer_count;

int log_level_parse(const char *name)
{
    for (int i = LOG_DEBUG; i <= LOG_ERROR; i++)
        if (strcasecmp(name, level_names[i]) == 0)
            return i;
    if (strcasecmp(name, "warning") == 0)
        return LOG_WARN;
    return -1;
}

const char *log_level_name(enum log_level level)
{
    return level_names[level];
}

int log_format_parse(const char *name)
{
    for (int i = LOG_FORMAT_TEXT; i <= LOG_FORMAT_JSON; i++)
        if (strcasecmp(name, format_names[i]) == 0)
            return i;
    return -1;
}

const char *log_format_name(enum log_format format)
{
    return format_names[format];
}

void log_set_level(enum log_level level)
{
    min_level = level;
}

bool log_enabled(enum log_level level)
{
    return level >= min_level;
}

void log_set_format(enum log_format format)
{
    out_format = format;
}

/* O_NONBLOCK: a FIFO whose reader stalls drops lines instead of stalling the event loop. */
static int open_append(const char *path)
{
    return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY | O_NONBLOCK, 0640);
}

static void close_file(void)
{
    if (log_path != NULL)
        close(out_fd);
    free(log_path);
    log_path = NULL;
    out_fd = STDERR_FILENO;
}

int log_open(const char *path, char *err, size_t err_len)
{
    if (path == NULL || path[0] == '\0') {
        close_file();
        return 0;
    }
    int fd = open_append(path);
    if (fd < 0) {
        snprintf(err, err_len, "cannot open log file %s: %s", path, strerror(errno));
        return -1;
    }
    char *copy = strdup(path);
    if (copy == NULL) {
        close(fd);
        snprintf(err, err_len, "cannot open log file %s: out of memory", path);
        return -1;
    }
    close_file();
    out_fd = fd;
    log_path = copy;
    write_failing = false;
    line_torn = false;
    return 0;
}

int log_reopen(char *err, size_t err_len)
{
    if (log_path == NULL)
        return 0;
    int fd = open_append(log_path);
    if (fd < 0) {
        snprintf(err, err_len, "cannot reopen log file %s: %s", log_path, strerror(errno));
        return -1;
    }
    pthread_mutex_lock(&out_lock);
    close(out_fd);
    out_fd = fd;
    write_failing = false;
    line_torn = false;
    pthread_mutex_unlock(&out_lock);
    return 0;
}

const char *log_file_path(void)
{
    return log_path;
}

int log_check_file(const char *path, char *err, size_t err_len)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd >= 0) {
        close(fd);
        return 0;
    }
    if (errno == ENOENT) {
        /* Not there yet: the broker will create it, so its directory must take a new file. */
        char dir[PATH_MAX];
        const char *slash = strrchr(path, '/');
        if (slash == NULL)
            snprintf(dir, sizeof(dir), ".");
        else
            snprintf(dir, sizeof(dir), "%.*s", slash == path ? 1 : (int)(slash - path), path);
        if (access(dir, W_OK | X_OK) == 0)
            return 0;
    }
    snprintf(err, err_len, "cannot open log file %s: %s", path, strerror(errno));
    return -1;
}

void log_close(void)
{
    close_file();
    log_thread_end();
}

void log_thread_end(void)
{
    free(peers);
    peers = NULL;
    peer_cap = 0;
    peer_count = 0;
}

uint64_t log_lines_dropped(void)
{
    pthread_mutex_lock(&out_lock);
    uint64_t n = lines_dropped;
    pthread_mutex_unlock(&out_lock);
    return n;
}

/* ---- peers by connection id ---- */

/* Ids are sequential: multiply and fold so neighbours spread over the table. */
static size_t peer_home(uint64_t id)
{
    uint64_t h = id * UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h ^ (h >> 32)) & (peer_cap - 1);
}

/* The slot holding id, or the empty slot where it would go. peer_cap must be non-zero. */
static size_t peer_find(uint64_t id)
{
    size_t mask = peer_cap - 1;
    size_t i = peer_home(id);
    while (peers[i].id != 0 && peers[i].id != id)
        i = (i + 1) & mask;
    return i;
}

static int peer_grow(void)
{
    struct peer_slot *old = peers;
    size_t old_cap = peer_cap;
    size_t cap = old_cap != 0 ? old_cap * 2 : 64;
    struct peer_slot *fresh = calloc(cap, sizeof(*fresh));
    if (fresh == NULL)
        return -1;
    peers = fresh;
    peer_cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i].id != 0)
            peers[peer_find(old[i].id)] = old[i];
    free(old);
    return 0;
}

void log_peer_set(uint64_t conn_id, const char *peer)
{
    if (conn_id == 0)
        return;
    /* Without memory to grow, the table still takes entries until one slot is left. */
    if ((peer_count + 1) * 2 > peer_cap && peer_grow() != 0 && peer_count + 1 >= peer_cap)
        return;
    size_t i = peer_find(conn_id);
    if (peers[i].id == 0)
        peer_count++;
    peers[i] = (struct peer_slot){conn_id, peer};
}

void log_peer_clear(uint64_t conn_id)
{
    if (conn_id == 0 || peer_cap == 0)
        return;
    size_t mask = peer_cap - 1;
    size_t hole = peer_find(conn_id);
    if (peers[hole].id == 0)
        return;
    peer_count--;
    /* Backward shift instead of tombstones: entries later in the probe run that may live in the
     * hole move into it, so a lookup never stops early at an empty slot. */
    for (size_t j = (hole + 1) & mask; peers[j].id != 0; j = (j + 1) & mask) {
        size_t home = peer_home(peers[j].id);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            peers[hole] = peers[j];
            hole = j;
        }
    }
    peers[hole] = (struct peer_slot){0, NULL};
}

const char *log_peer_get(uint64_t conn_id)
{
    if (conn_id == 0 || peer_cap == 0)
        return NULL;
    const struct peer_slot *slot = &peers[peer_find(conn_id)];
    return slot->id == conn_id ? slot->peer : NULL;
}

/* ---- building a line ---- */

/* A line being built. LINE_BYTES fits the worst case; appends past it are cut all the same. */
struct line {
    char buf[LINE_BYTES];
    size_t len;
};

static void put(struct line *l, const char *s, size_t n)
{
    size_t room = sizeof(l->buf) - 1 - l->len; /* one byte stays for the newline */
    if (n > room)
        n = room;
    memcpy(l->buf + l->len, s, n);
    l->len += n;
}

static void put_str(struct line *l, const char *s)
{
    put(l, s, strlen(s));
}

static void put_hex_escape(struct line *l, const char *prefix, unsigned char byte)
{
    char esc[8];
    int n = snprintf(esc, sizeof(esc), "%s%02x", prefix, byte);
    put(l, esc, (size_t)n);
}

/* Text lines keep bytes as they are, except control bytes: a message never starts a new line. */
static void put_text(struct line *l, const char *s, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != 0x7f)
            continue;
        put(l, s + start, i - start);
        put_hex_escape(l, "\\x", c);
        start = i + 1;
    }
    put(l, s + start, len - start);
}

/* Bytes in the valid UTF-8 character at p (n bytes left), or 0 if none starts there. */
static size_t utf8_char_len(const unsigned char *p, size_t n)
{
    if (p[0] < 0x80)
        return 1;
    size_t len = p[0] < 0xe0 ? 2 : p[0] < 0xf0 ? 3 : 4;
    return len <= n && ws_utf8_valid(p, len) ? len : 0;
}

/* The body of a JSON string (RFC 8259): quotes, backslashes and control bytes escaped, UTF-8
 * kept as is, every byte that is not part of valid UTF-8 replaced by U+FFFD. */
static void put_json(struct line *l, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        size_t n = utf8_char_len(p + i, len - i);
        if (n == 0) {
            put_str(l, "\\ufffd");
            i++;
        } else if (p[i] == '"' || p[i] == '\\') {
            put(l, "\\", 1);
            put(l, s + i, 1);
            i++;
        } else if (p[i] == '\n') {
            put_str(l, "\\n");
            i++;
        } else if (p[i] == '\r') {
            put_str(l, "\\r");
            i++;
        } else if (p[i] == '\t') {
            put_str(l, "\\t");
            i++;
        } else if (p[i] < 0x20 || p[i] == 0x7f) {
            put_hex_escape(l, "\\u00", p[i]);
            i++;
        } else {
            put(l, s + i, n);
            i += n;
        }
    }
}

/* "2026-11-23T10:00:00.123Z" (UTC). */
static void format_time(char *out, size_t len)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    size_t n = strftime(out, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, len - n, ".%03ldZ", now.tv_nsec / 1000000);
}

static void text_line(struct line *l, const char *ts, enum log_level level, uint64_t conn_id,
                      const char *peer, const char *msg, size_t msg_len)
{
    char head[96];
    int n = snprintf(head, sizeof(head), "%s %-5s ", ts, level_names[level]);
    put(l, head, (size_t)n);
    if (conn_id != 0) {
        n = snprintf(head, sizeof(head), "[c%llu", (unsigned long long)conn_id);
        put(l, head, (size_t)n);
        if (peer != NULL) {
            put(l, " ", 1);
            put_text(l, peer, strnlen(peer, PEER_MAX));
        }
        put(l, "] ", 2);
    }
    put_text(l, msg, msg_len);
}

static void json_line(struct line *l, const char *ts, enum log_level level, uint64_t conn_id,
                      const char *peer, const char *msg, size_t msg_len)
{
    char head[128];
    int n = snprintf(head, sizeof(head), "{\"ts\":\"%s\",\"level\":\"%s\"", ts, level_names[level]);
    put(l, head, (size_t)n);
    if (conn_id != 0) {
        n = snprintf(head, sizeof(head), ",\"conn\":%llu", (unsigned long long)conn_id);
        put(l, head, (size_t)n);
    }
    if (peer != NULL) {
        put_str(l, ",\"peer\":\"");
        put_json(l, peer, strnlen(peer, PEER_MAX));
        put(l, "\"", 1);
    }
    put_str(l, ",\"msg\":\"");
    put_json(l, msg, msg_len);
    put_str(l, "\"}");
}

/* ---- writing ---- */

static void drop_line(int err)
{
    lines_dropped++;
    if (write_failing)
        return;
    write_failing = true;
    if (log_path != NULL) /* stderr is the one place left to say so, once per failure spell */
        dprintf(STDERR_FILENO,
                "stompws: cannot write to log file %s: %s; dropping log lines (counted in "
                "stompws_log_lines_dropped_total) until writes succeed again\n",
                log_path, strerror(err));
}

static ssize_t write_retrying(const char *buf, size_t n)
{
    ssize_t w;
    do
        w = write(out_fd, buf, n);
    while (w < 0 && errno == EINTR);
    return w;
}

/* One write per line: with O_APPEND, lines from one process never interleave mid-line.
 * Called with out_lock held. */
static void emit(const char *line, size_t n)
{
    if (line_torn && write_retrying("\n", 1) != 1) {
        drop_line(errno);
        return;
    }
    line_torn = false;
    ssize_t w = write_retrying(line, n);
    if (w == (ssize_t)n) {
        write_failing = false;
        return;
    }
    line_torn = w > 0;
    drop_line(w < 0 ? errno : ENOSPC);
}

void log_write(enum log_level level, uint64_t conn_id, const char *fmt, ...)
{
    if (level < min_level)
        return;
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    int body = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t msg_len = body < 0 ? 0 : (size_t)body < sizeof(msg) ? (size_t)body : sizeof(msg) - 1;
    char ts[40];
    format_time(ts, sizeof(ts));
    const char *peer = log_peer_get(conn_id);

    struct line line;
    line.len = 0;
    if (out_format == LOG_FORMAT_JSON)
        json_line(&line, ts, level, conn_id, peer, msg, msg_len);
    else
        text_line(&line, ts, level, conn_id, peer, msg, msg_len);
    line.buf[line.len++] = '\n';
    pthread_mutex_lock(&out_lock); /* formatted outside: only the write is serialized */
    emit(line.buf, line.len);
    pthread_mutex_unlock(&out_lock);
}
