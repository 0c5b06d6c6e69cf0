/*
 * log.h - the broker's one logger: levels, one line per event, to stderr or to a file.
 *
 * Text lines (server.log_format = text) look like
 *   2026-11-23T10:00:00.123Z info  [c42 127.0.0.1:5000] connection from 127.0.0.1:5000
 * and JSON lines (server.log_format = json) like
 *   {"ts":"2026-11-23T10:00:00.123Z","level":"info","conn":42,"peer":"127.0.0.1:5000","msg":"..."}
 * A line about a connection carries its id and its peer address. Callers pass the id only
 * (log_info(c->id, ...)); the connection module tells the logger each connection's peer when it
 * opens (log_peer_set) and when it goes (log_peer_clear), so the logger finds the peer by id
 * without every call site passing it.
 *
 * Control bytes in a message never start a new line: text lines show them as \xNN, JSON lines
 * escape them (and quotes, backslashes; bytes that are not UTF-8 become \ufffd).
 *
 * Writing never stops or blocks the broker on a log file: a line the file does not take (disk
 * full, I/O error) is dropped and counted (log_lines_dropped()), and the broker goes on.
 * Every event loop (server.threads) may log: a line is formatted by its caller and written
 * under one mutex; the peer table is per thread (a connection is logged about by its own loop
 * only). log_open, log_close and the setters run before the loops start or after they end.
 * Library code (ws/, stomp/) never logs; only broker/ and cluster/ do.
 */
#ifndef STOMPWS_LOG_H
#define STOMPWS_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

enum log_format { LOG_FORMAT_TEXT = 0, LOG_FORMAT_JSON };

/* Parses "debug", "info", "warn"/"warning", "error"; returns -1 for anything else. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

/* Parses "text" or "json"; returns -1 for anything else. */
int log_format_parse(const char *name);
const char *log_format_name(enum log_format format);

void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);
void log_set_format(enum log_format format);

/*
 * Appends lines to the file at path from now on (created if missing); NULL or "" means stderr.
 * Returns 0, or -1 with err naming the file and the reason; the previous output stays then.
 */
int log_open(const char *path, char *err, size_t err_len);

/*
 * Log rotation: opens the log file again by its name (the old one was moved away) and writes there
 * from now on. Nothing to do when logging to stderr. On failure keeps writing to the old file and
 * returns -1 with err set.
 */
int log_reopen(char *err, size_t err_len);

/* The file log_open() was given, or NULL when logging to stderr. */
const char *log_file_path(void);

/*
 * Checks that path could be opened for appending, without creating it or writing to it (for
 * --check-config). Returns 0, or -1 with err naming the file and the reason.
 */
int log_check_file(const char *path, char *err, size_t err_len);

/* Back to stderr, and frees the log file and the peer table; for the end of main(). */
void log_close(void);
/* Frees the calling thread's peer table; for the end of an event loop's thread. */
void log_thread_end(void);

/* Lines not written because the output refused them (disk full, I/O error), since start. */
uint64_t log_lines_dropped(void);

/*
 * Remembers the peer address ("address:port") of connection conn_id for every line about it.
 * peer is borrowed: it must stay valid until log_peer_clear(conn_id). Out of memory only means
 * that connection's lines go without the peer.
 */
void log_peer_set(uint64_t conn_id, const char *peer);
void log_peer_clear(uint64_t conn_id);
/* The peer remembered for conn_id, or NULL. */
const char *log_peer_get(uint64_t conn_id);

/* conn_id 0 means "not about one connection". */
void log_write(enum log_level level, uint64_t conn_id, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define log_debug(id, ...)                                                                         \
    do {                                                                                           \
        if (log_enabled(LOG_DEBUG))                                                                \
            log_write(LOG_DEBUG, (id), __VA_ARGS__);                                               \
    } while (0)
#define log_info(id, ...)  log_write(LOG_INFO, (id), __VA_ARGS__)
#define log_warn(id, ...)  log_write(LOG_WARN, (id), __VA_ARGS__)
#define log_error(id, ...) log_write(LOG_ERROR, (id), __VA_ARGS__)

#endif
