/*
 * stomp/encode.c - frame -> bytes. See encode.h for the escaping rules and the snprintf-like
 * contract. Every writer goes through struct writer, which counts all octets but stores only
 * those that fit, so one pass both measures and writes.
 */
#include "stomp/encode.h"

#include <stdio.h>
#include <string.h>

/* How header text is written for a given version and command. */
enum escape_mode {
    ESCAPE_RAW, /* 1.0, CONNECT, STOMP, CONNECTED: no escapes; framing octets replaced */
    ESCAPE_V11, /* LF ':' '\' escaped; CR sent as is */
    ESCAPE_V12, /* CR LF ':' '\' escaped */
};

/* Output cursor; out[0..cap) is the caller's buffer, len counts every octet asked for. */
struct writer {
    char *out;
    size_t cap;
    size_t len;
};

static void put(struct writer *w, const char *s, size_t n)
{
    if (n > 0 && w->len <= w->cap && n <= w->cap - w->len)
        memcpy(w->out + w->len, s, n);
    w->len += n;
}

static void put_str(struct writer *w, const char *s)
{
    put(w, s, strlen(s));
}

static void put_decimal(struct writer *w, size_t value)
{
    char digits[24];
    size_t i = sizeof digits;
    do {
        digits[--i] = (char)('0' + value % 10);
        value /= 10;
    } while (value > 0);
    put(w, digits + i, sizeof digits - i);
}

static enum escape_mode escape_mode_for(enum stomp_version version, enum stomp_command command)
{
    if (version == STOMP_V1_0 || command == STOMP_CMD_CONNECT || command == STOMP_CMD_STOMP ||
        command == STOMP_CMD_CONNECTED)
        return ESCAPE_RAW;
    return version == STOMP_V1_1 ? ESCAPE_V11 : ESCAPE_V12;
}

/* What octet c becomes in header text (NULL: itself). Raw replacements keep the length. */
static const char *replacement(enum escape_mode mode, bool is_name, char c)
{
    switch (c) {
    case '\r':
        return mode == ESCAPE_V12 ? "\\r" : mode == ESCAPE_RAW ? " " : NULL;
    case '\n':
        return mode == ESCAPE_RAW ? " " : "\\n";
    case ':':
        if (mode == ESCAPE_RAW)
            return is_name ? "_" : NULL;
        return "\\c";
    case '\\':
        return mode == ESCAPE_RAW ? NULL : "\\\\";
    default:
        return NULL;
    }
}

/* Whether octet c may need replacing: only CR, LF, ':' and '\' ever do (all below 93). */
static bool maybe_special(unsigned char c)
{
    return c <= '\\' && (c == '\r' || c == '\n' || c == ':' || c == '\\');
}

static void put_escaped(struct writer *w, enum escape_mode mode, bool is_name, const char *s,
                        size_t n)
{
    size_t run = 0; /* start of the octets not yet written */
    for (size_t i = 0; i < n; i++) {
        if (!maybe_special((unsigned char)s[i]))
            continue;
        const char *rep = replacement(mode, is_name, s[i]);
        if (rep == NULL)
            continue;
        put(w, s + run, i - run);
        put_str(w, rep);
        run = i + 1;
    }
    put(w, s + run, n - run);
}

size_t stomp_escaped_len(enum stomp_version version, enum stomp_command command, const char *s,
                         size_t len)
{
    struct writer w = {NULL, 0, 0};
    put_escaped(&w, escape_mode_for(version, command), false, s, len);
    return w.len;
}

static void put_header(struct writer *w, enum escape_mode mode, const char *name, size_t name_len,
                       const char *value, size_t value_len)
{
    put_escaped(w, mode, true, name, name_len);
    put(w, ":", 1);
    put_escaped(w, mode, false, value, value_len);
    put(w, "\n", 1);
}

size_t stomp_encode_header(char *out, size_t cap, enum stomp_version version,
                           enum stomp_command command, const char *name, size_t name_len,
                           const char *value, size_t value_len)
{
    struct writer w = {out, cap, 0};
    put_header(&w, escape_mode_for(version, command), name, name_len, value, value_len);
    return w.len;
}

static bool is_content_length(const struct stomp_header *h)
{
    return h->name_len == 14 && memcmp(h->name, "content-length", 14) == 0;
}

/* Whether the head must carry a content-length header that f does not have. */
static bool needs_content_length(const struct stomp_frame *f, bool asked)
{
    if (asked)
        return true;
    if (f->body_len == 0)
        return false;
    if (f->command == STOMP_CMD_MESSAGE || f->command == STOMP_CMD_ERROR)
        return true;
    return memchr(f->body, '\0', f->body_len) != NULL; /* only a count can carry a NUL */
}

static void put_head(struct writer *w, enum stomp_version version, const struct stomp_frame *f,
                     bool add_content_length)
{
    enum escape_mode mode = escape_mode_for(version, f->command);
    bool has_length = false;
    put_str(w, stomp_command_name(f->command));
    put(w, "\n", 1);
    for (size_t i = 0; i < f->header_count; i++) {
        const struct stomp_header *h = &f->headers[i];
        has_length = has_length || is_content_length(h);
        put_header(w, mode, h->name, h->name_len, h->value, h->value_len);
    }
    if (!has_length && needs_content_length(f, add_content_length)) {
        put_str(w, "content-length:");
        put_decimal(w, f->body_len);
        put(w, "\n", 1);
    }
    put(w, "\n", 1);
}

size_t stomp_encode_head(char *out, size_t cap, enum stomp_version version,
                         const struct stomp_frame *f, bool add_content_length)
{
    struct writer w = {out, cap, 0};
    put_head(&w, version, f, add_content_length);
    return w.len;
}

size_t stomp_encode_frame(char *out, size_t cap, enum stomp_version version,
                          const struct stomp_frame *f)
{
    struct writer w = {out, cap, 0};
    put_head(&w, version, f, false);
    put(&w, f->body, f->body_len);
    put(&w, "", 1);
    return w.len;
}

size_t stomp_encode_version_error(char *out, size_t cap, unsigned supported_mask)
{
    char list[16];
    size_t list_len = stomp_versions_list(list, sizeof list, supported_mask);
    if (list_len >= sizeof list)
        list_len = 0; /* cannot happen with three versions; stay well-formed anyway */
    char body[64];
    int body_len =
        snprintf(body, sizeof body, "Supported protocol versions are %.*s", (int)list_len, list);
    for (int i = 0; i < body_len; i++) {
        if (body[i] == ',')
            body[i] = ' ';
    }
    struct stomp_header headers[] = {
        {"version", 7, list, list_len},
        {"content-type", 12, "text/plain", 10},
        {"message", 7, "unsupported STOMP version", 25},
    };
    struct stomp_frame f = {STOMP_CMD_ERROR, headers, 3, body, (size_t)body_len};
    return stomp_encode_frame(out, cap, STOMP_V1_2, &f);
}
