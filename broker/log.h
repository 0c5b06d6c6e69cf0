/*
 * log.h - the broker's one logger: levels, one line per event, to stderr.
 *
 * Lines look like "2026-11-23T10:00:00.123Z info  [c42] connection from 127.0.0.1:5000".
 * Library code (ws/, stomp/) never logs; only broker/ and cluster/ do.
 */
#ifndef STOMPWS_LOG_H
#define STOMPWS_LOG_H

#include <stdbool.h>
#include <stdint.h>

enum log_level { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Parses "debug", "info", "warn"/"warning", "error"; returns -1 for anything else. */
int log_level_parse(const char *name);
const char *log_level_name(enum log_level level);

void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);

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
