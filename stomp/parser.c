/*
 * stomp/parser.c - incremental STOMP frame parser. See parser.h for the contract.
 *
 * How it works. A frame's octets are treated as one contiguous region and every position is an
 * offset from the frame's first octet. While a frame lies inside the caller's buffer the region
 * *is* that buffer (zero-copy); when the input ends mid-frame the octets received so far are
 * copied into the parser's own buffer and later input is appended to it, one step at a time, so
 * the offsets stay valid. Each step looks only at new octets (memchr for the next LF or NUL, or a
 * count for content-length bodies), commits the octets it used, and then handles a completed line
 * from the region. No octet is scanned twice by the line search, and nothing past a limit is ever
 * copied: limits are checked before octets are committed.
 *
 * Headers are recorded as offsets while parsing; pointers are made only when the frame is
 * complete (the own buffer may move while it grows). Names and values holding escapes are decoded
 * into a scratch buffer at that point; the others point into the region.
 */
#include "stomp/parser.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Where the parser stands in the byte stream. */
enum parse_phase {
    PHASE_IDLE,     /* between frames: EOLs here are heart-beats */
    PHASE_COMMAND,  /* inside the command line */
    PHASE_HEADERS,  /* inside a header line, or at the blank line ending the headers */
    PHASE_BODY,     /* body octets (counted by content-length, or up to the first NUL) */
    PHASE_BODY_NUL, /* content-length body complete; the NUL must come next */
};

/* One header line, as offsets into the frame region (see the top comment). */
struct header_record {
    size_t name_off;
    size_t name_len;
    size_t value_off;
    size_t value_len;
    bool escaped; /* the line holds a backslash to decode (escaping in force for this frame) */
};

struct stomp_parser {
    struct stomp_limits limits;
    enum stomp_version version; /* valid when version_set */
    bool version_set;
    int error; /* sticky: the first error, or 0 */
    char error_message[96];

    enum parse_phase phase;
    bool pending_cr; /* IDLE: a CR was consumed and an LF must follow */
    bool frame_out;  /* a frame was returned: drop it at the next call */

    /* The current frame's octets: the caller's buffer (zero-copy) or `own` (buffered). */
    const char *region; /* borrowed from the caller during one feed call, or == own */
    bool buffered;      /* region is own */
    char *own;          /* owned: partial frame storage, grows up to the limits */
    size_t own_cap;
    size_t frame_len;  /* octets of the current frame received so far */
    size_t line_start; /* offset of the current command or header line */

    /* Per-frame facts, decided as lines complete. */
    enum stomp_command command;
    bool unescape;    /* decode escapes in this frame's headers */
    bool cr_escape;   /* \r is a defined escape (1.2) */
    bool trim_values; /* 1.0: trim spaces around header values */
    bool has_content_length;
    size_t content_length; /* valid when has_content_length */
    size_t body_start;     /* offset of the first body octet */
    size_t body_len;       /* set when the frame is complete */

    struct header_record *records; /* owned: record_count entries, record_cap allocated */
    size_t record_count;
    size_t record_cap;
    struct stomp_header *headers; /* owned: output array lent to the returned frame */
    size_t headers_cap;
    char *scratch; /* owned: decoded names/values lent to the returned frame */
    size_t scratch_cap;
};

/* ---- small helpers --------------------------------------------------------------------------- */

static size_t min_size(size_t a, size_t b)
{
    return a < b ? a : b;
}

/*
 * Returns buf reallocated to hold at least `need` elements of `size` octets (doubling, so appends
 * cost amortised O(1)) and updates *cap; NULL when out of memory, buf then being untouched.
 */
static void *grow_to(void *buf, size_t *cap, size_t need, size_t size)
{
    size_t new_cap = *cap < 16 ? 16 : *cap;
    while (new_cap < need)
        new_cap = new_cap > SIZE_MAX / 4 ? need : new_cap * 2;
    if (new_cap > SIZE_MAX / size)
        return NULL;
    void *grown = realloc(buf, new_cap * size);
    if (grown != NULL)
        *cap = new_cap;
    return grown;
}

static bool reserve_own(struct stomp_parser *p, size_t need)
{
    if (need <= p->own_cap)
        return true;
    char *grown = grow_to(p->own, &p->own_cap, need, 1);
    if (grown != NULL)
        p->own = grown;
    return grown != NULL;
}

static bool reserve_records(struct stomp_parser *p, size_t need)
{
    if (need <= p->record_cap)
        return true;
    struct header_record *grown = grow_to(p->records, &p->record_cap, need, sizeof *grown);
    if (grown != NULL)
        p->records = grown;
    return grown != NULL;
}

static bool reserve_output(struct stomp_parser *p, size_t header_count, size_t scratch_len)
{
    if (header_count > p->headers_cap) {
        struct stomp_header *grown =
            grow_to(p->headers, &p->headers_cap, header_count, sizeof *grown);
        if (grown == NULL)
            return false;
        p->headers = grown;
    }
    if (scratch_len > p->scratch_cap) {
        char *grown = grow_to(p->scratch, &p->scratch_cap, scratch_len, 1);
        if (grown == NULL)
            return false;
        p->scratch = grown;
    }
    return true;
}

/* Records an error with its message; returns it so callers can `return fail(...)`. */
static int fail(struct stomp_parser *p, int error, const char *message)
{
    p->error = error;
    snprintf(p->error_message, sizeof p->error_message, "%s", message);
    return error;
}

/* Same, for the limit errors: the message names the limit and its value. */
static int fail_limit(struct stomp_parser *p, int error, const char *what, const char *limit,
                      size_t value)
{
    p->error = error;
    snprintf(p->error_message, sizeof p->error_message, "%s exceeds %s (%zu)", what, limit, value);
    return error;
}

static int fail_too_many_headers(struct stomp_parser *p)
{
    return fail_limit(p, STOMP_ERR_TOO_MANY_HEADERS, "frame header count", "max_headers",
                      p->limits.max_headers);
}

static int fail_line_too_long(struct stomp_parser *p)
{
    return fail_limit(p, STOMP_ERR_HEADER_LINE_TOO_LONG, "frame header line length",
                      "max_header_line", p->limits.max_header_line);
}

static int fail_headers_too_large(struct stomp_parser *p)
{
    return fail_limit(p, STOMP_ERR_HEADERS_TOO_LARGE, "frame header size", "max_header_bytes",
                      p->limits.max_header_bytes);
}

static int fail_body_too_large(struct stomp_parser *p)
{
    return fail_limit(p, STOMP_ERR_BODY_TOO_LARGE, "frame body size", "max_body",
                      p->limits.max_body);
}

/* ---- lifecycle ------------------------------------------------------------------------------- */

void stomp_limits_default(struct stomp_limits *limits)
{
    limits->max_headers = STOMP_DEFAULT_MAX_HEADERS;
    limits->max_header_line = STOMP_DEFAULT_MAX_HEADER_LINE;
    limits->max_header_bytes = STOMP_DEFAULT_MAX_HEADER_BYTES;
    limits->max_body = STOMP_DEFAULT_MAX_BODY;
}

/* Zero means "default"; huge values are capped so offset arithmetic cannot overflow. */
static size_t limit_or_default(size_t value, size_t fallback)
{
    if (value == 0)
        return fallback;
    return value > SIZE_MAX / 8 ? SIZE_MAX / 8 : value;
}

struct stomp_parser *stomp_parser_new(const struct stomp_limits *limits)
{
    struct stomp_parser *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    struct stomp_limits defaults;
    stomp_limits_default(&defaults);
    if (limits == NULL)
        limits = &defaults;
    p->limits.max_headers = limit_or_default(limits->max_headers, defaults.max_headers);
    p->limits.max_header_line = limit_or_default(limits->max_header_line, defaults.max_header_line);
    p->limits.max_header_bytes =
        limit_or_default(limits->max_header_bytes, defaults.max_header_bytes);
    p->limits.max_body = limit_or_default(limits->max_body, defaults.max_body);
    stomp_parser_reset(p);
    return p;
}

void stomp_parser_free(struct stomp_parser *p)
{
    if (p == NULL)
        return;
    free(p->own);
    free(p->records);
    free(p->headers);
    free(p->scratch);
    free(p);
}

void stomp_parser_set_version(struct stomp_parser *p, enum stomp_version version)
{
    p->version = version;
    p->version_set = true;
}

/* Forgets the current frame (returned or partial); buffers are kept for the next one. */
static void start_next_frame(struct stomp_parser *p)
{
    p->phase = PHASE_IDLE;
    p->frame_out = false;
    p->region = NULL;
    p->buffered = false;
    p->frame_len = 0;
    p->line_start = 0;
    p->record_count = 0;
    p->has_content_length = false;
    p->content_length = 0;
    p->body_start = 0;
    p->body_len = 0;
}

void stomp_parser_reset(struct stomp_parser *p)
{
    start_next_frame(p);
    p->pending_cr = false;
    p->version_set = false;
    p->version = STOMP_V1_2;
    p->error = 0;
    p->error_message[0] = '\0';
}

static void release(void **buf, size_t *cap, size_t size, size_t *freed)
{
    *freed += *cap * size;
    free(*buf);
    *buf = NULL;
    *cap = 0;
}

size_t stomp_parser_shrink(struct stomp_parser *p)
{
    if (p->frame_out)
        start_next_frame(p); /* as the next feed would: the returned frame is done with */
    if (p->phase != PHASE_IDLE)
        return 0; /* a partial frame lives in these buffers */
    size_t freed = 0;
    release((void **)&p->own, &p->own_cap, 1, &freed);
    release((void **)&p->records, &p->record_cap, sizeof *p->records, &freed);
    release((void **)&p->headers, &p->headers_cap, sizeof *p->headers, &freed);
    release((void **)&p->scratch, &p->scratch_cap, 1, &freed);
    return freed;
}

const char *stomp_parser_error_message(const struct stomp_parser *p)
{
    return p->error_message;
}

int stomp_parser_error(const struct stomp_parser *p)
{
    return p->error;
}

size_t stomp_parser_buffered(const struct stomp_parser *p)
{
    return p->buffered && !p->frame_out ? p->frame_len : 0;
}

/* ---- committing octets to the frame region --------------------------------------------------- */

/*
 * Adds in[0..take) to the frame. Zero-copy: the octets already sit at region + frame_len, so only
 * the count moves. Buffered: they are appended to the own buffer. Limits were checked by the
 * caller.
 */
static int commit(struct stomp_parser *p, const char *in, size_t take)
{
    if (p->buffered) {
        if (!reserve_own(p, p->frame_len + take))
            return fail(p, STOMP_ERR_NOMEM, "out of memory");
        memcpy(p->own + p->frame_len, in, take);
        p->region = p->own;
    }
    p->frame_len += take;
    return 0;
}

/* The input ended mid-frame in zero-copy mode: keep the frame's octets in the own buffer. */
static int switch_to_buffered(struct stomp_parser *p)
{
    if (!reserve_own(p, p->frame_len))
        return fail(p, STOMP_ERR_NOMEM, "out of memory");
    if (p->frame_len > 0)
        memcpy(p->own, p->region, p->frame_len);
    p->region = p->own;
    p->buffered = true;
    return 0;
}

/* ---- lines: command and headers -------------------------------------------------------------- */

static int process_command(struct stomp_parser *p, const char *line, size_t len)
{
    if (stomp_command_from_name(line, len, &p->command) < 0)
        return fail(p, STOMP_ERR_UNKNOWN_COMMAND, "unknown STOMP command");
    enum stomp_version v = p->version_set ? p->version : STOMP_V1_2;
    bool raw = p->command == STOMP_CMD_CONNECT || p->command == STOMP_CMD_STOMP ||
               p->command == STOMP_CMD_CONNECTED;
    p->unescape = v >= STOMP_V1_1 && !raw;
    p->cr_escape = v >= STOMP_V1_2;
    p->trim_values = p->version_set && p->version == STOMP_V1_0;
    p->phase = PHASE_HEADERS;
    return 0;
}

/* Checks that every backslash in s[0..len) starts a defined escape for this frame. */
static int check_escapes(struct stomp_parser *p, const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != '\\')
            continue;
        char c = i + 1 < len ? s[i + 1] : '\0';
        if (c == 'n' || c == 'c' || c == '\\' || (c == 'r' && p->cr_escape)) {
            i++;
            continue;
        }
        p->error = STOMP_ERR_BAD_ESCAPE;
        if (c > ' ' && c < 127)
            snprintf(p->error_message, sizeof p->error_message,
                     "undefined escape sequence \\%c in header", c);
        else
            snprintf(p->error_message, sizeof p->error_message,
                     "undefined escape sequence in header");
        return STOMP_ERR_BAD_ESCAPE;
    }
    return 0;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* First content-length header: a plain decimal octet count no larger than max_body. */
static int parse_content_length(struct stomp_parser *p, const char *s, size_t len)
{
    if (len == 0)
        return fail(p, STOMP_ERR_BAD_CONTENT_LENGTH, "content-length is not a number");
    size_t value = 0;
    bool huge = false;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return fail(p, STOMP_ERR_BAD_CONTENT_LENGTH, "content-length is not a number");
        if (value > (SIZE_MAX - 9) / 10)
            huge = true;
        else
            value = value * 10 + (size_t)(s[i] - '0');
    }
    if (huge || value > p->limits.max_body)
        return fail_body_too_large(p);
    p->has_content_length = true;
    p->content_length = value;
    return 0;
}

static int add_record(struct stomp_parser *p, const struct header_record *r)
{
    if (!reserve_records(p, p->record_count + 1))
        return fail(p, STOMP_ERR_NOMEM, "out of memory");
    p->records[p->record_count++] = *r;
    return 0;
}

/* A complete "name:value" line at offset `off`, `len` octets without EOL. */
static int process_header(struct stomp_parser *p, size_t off, const char *line, size_t len)
{
    if (p->record_count >= p->limits.max_headers)
        return fail_too_many_headers(p);
    const char *colon = memchr(line, ':', len);
    if (colon == NULL)
        return fail(p, STOMP_ERR_MISSING_COLON, "header line has no colon");
    struct header_record r = {.name_off = off, .name_len = (size_t)(colon - line)};
    if (r.name_len == 0)
        return fail(p, STOMP_ERR_BAD_HEADER, "empty header name");
    r.value_off = off + r.name_len + 1;
    r.value_len = len - r.name_len - 1;
    if (p->unescape && memchr(line, '\\', len) != NULL) {
        r.escaped = true;
        int rc = check_escapes(p, line, len);
        if (rc < 0)
            return rc;
    }
    if (p->trim_values) {
        while (r.value_len > 0 && is_space(p->region[r.value_off])) {
            r.value_off++;
            r.value_len--;
        }
        while (r.value_len > 0 && is_space(p->region[r.value_off + r.value_len - 1]))
            r.value_len--;
    }
    /* A backslash-free name equal to content-length; an escaped name never decodes to it. */
    if (!p->has_content_length && r.name_len == 14 && memcmp(line, "content-length", 14) == 0) {
        int rc = parse_content_length(p, p->region + r.value_off, r.value_len);
        if (rc < 0)
            return rc;
    }
    return add_record(p, &r);
}

static void end_of_headers(struct stomp_parser *p)
{
    p->body_start = p->frame_len;
    if (p->has_content_length && p->content_length == 0)
        p->phase = PHASE_BODY_NUL;
    else
        p->phase = PHASE_BODY;
}

/* The line that started at line_start just got its LF (the last committed octet). */
static int process_line(struct stomp_parser *p)
{
    size_t off = p->line_start;
    const char *line = p->region + off;
    size_t len = p->frame_len - off - 1;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len > p->limits.max_header_line)
        return fail_line_too_long(p);
    p->line_start = p->frame_len;
    if (p->phase == PHASE_COMMAND)
        return process_command(p, line, len);
    if (len == 0) {
        end_of_headers(p);
        return 0;
    }
    return process_header(p, off, line, len);
}

/* A NUL where a header line would start ends a frame that omitted the blank line. */
static int step_early_nul(struct stomp_parser *p, const char *in, bool *done)
{
    if (p->has_content_length && p->content_length > 0)
        return fail(p, STOMP_ERR_BAD_HEADER, "NUL octet in frame headers");
    int rc = commit(p, in, 1);
    if (rc < 0)
        return rc;
    p->body_start = p->frame_len - 1;
    p->body_len = 0;
    *done = true;
    return 1;
}

/* Command or header octets: consume up to and including the next LF, within the limits. */
static ssize_t step_line(struct stomp_parser *p, const char *in, size_t n, bool *done)
{
    size_t seen = p->frame_len - p->line_start; /* octets of this line already committed */
    if (p->phase == PHASE_HEADERS && seen == 0 && in[0] == '\0')
        return step_early_nul(p, in, done);
    /* Room for a maximal line plus CR LF, and for the rest of the header section. */
    size_t line_room = p->limits.max_header_line + 2 - seen;
    size_t bytes_room = p->limits.max_header_bytes - p->frame_len;
    size_t search = min_size(n, min_size(line_room, bytes_room));
    const char *lf = memchr(in, '\n', search);
    size_t take = lf != NULL ? (size_t)(lf - in) + 1 : search;
    if (memchr(in, '\0', take) != NULL) {
        if (p->phase == PHASE_COMMAND)
            return fail(p, STOMP_ERR_UNKNOWN_COMMAND, "unknown STOMP command");
        return fail(p, STOMP_ERR_BAD_HEADER, "NUL octet in frame headers");
    }
    if (lf == NULL && search == line_room)
        return fail_line_too_long(p);
    if (lf == NULL && search == bytes_room)
        return fail_headers_too_large(p);
    int rc = commit(p, in, take);
    if (rc == 0 && lf != NULL)
        rc = process_line(p);
    return rc < 0 ? rc : (ssize_t)take;
}

/* ---- body ------------------------------------------------------------------------------------ */

static ssize_t step_counted_body(struct stomp_parser *p, const char *in, size_t n)
{
    size_t have = p->frame_len - p->body_start;
    size_t take = min_size(n, p->content_length - have);
    int rc = commit(p, in, take);
    if (rc < 0)
        return rc;
    if (have + take == p->content_length)
        p->phase = PHASE_BODY_NUL;
    return (ssize_t)take;
}

static ssize_t step_nul_terminated_body(struct stomp_parser *p, const char *in, size_t n,
                                        bool *done)
{
    size_t have = p->frame_len - p->body_start;
    size_t room = p->limits.max_body - have;
    size_t search = min_size(n, room + 1);
    const char *nul = memchr(in, '\0', search);
    if (nul == NULL && search > room)
        return fail_body_too_large(p);
    size_t take = nul != NULL ? (size_t)(nul - in) + 1 : search;
    int rc = commit(p, in, take);
    if (rc < 0)
        return rc;
    if (nul != NULL) {
        p->body_len = p->frame_len - 1 - p->body_start;
        *done = true;
    }
    return (ssize_t)take;
}

static ssize_t step_body_nul(struct stomp_parser *p, const char *in, bool *done)
{
    if (in[0] != '\0')
        return fail(p, STOMP_ERR_MISSING_NUL, "frame body not terminated by NUL");
    int rc = commit(p, in, 1);
    if (rc < 0)
        return rc;
    p->body_len = p->content_length;
    *done = true;
    return 1;
}

/* One step of the current frame over in[0..n), n > 0: returns octets used (> 0) or an error. */
static ssize_t step(struct stomp_parser *p, const char *in, size_t n, bool *done)
{
    switch (p->phase) {
    case PHASE_COMMAND:
    case PHASE_HEADERS:
        return step_line(p, in, n, done);
    case PHASE_BODY:
        if (p->has_content_length)
            return step_counted_body(p, in, n);
        return step_nul_terminated_body(p, in, n, done);
    case PHASE_BODY_NUL:
        return step_body_nul(p, in, done);
    case PHASE_IDLE:
        break;
    }
    return fail(p, STOMP_ERR_UNKNOWN_COMMAND, "parser in an impossible state");
}

/* ---- frame output ---------------------------------------------------------------------------- */

/* Decodes the escapes of s[0..len) (already checked) into out; returns the decoded length. */
static size_t unescape_into(char *out, const char *s, size_t len)
{
    size_t w = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '\\') {
            char e = s[++i];
            c = e == 'n' ? '\n' : e == 'r' ? '\r' : e == 'c' ? ':' : '\\';
        }
        out[w++] = c;
    }
    return w;
}

/* Points one output header at the region, or at decoded copies in the scratch buffer. */
static char *fill_header(struct stomp_parser *p, const struct header_record *r,
                         struct stomp_header *h, char *scratch)
{
    const char *name = p->region + r->name_off;
    const char *value = p->region + r->value_off;
    if (!r->escaped) {
        *h = (struct stomp_header){name, r->name_len, value, r->value_len};
        return scratch;
    }
    h->name = scratch;
    h->name_len = unescape_into(scratch, name, r->name_len);
    scratch += h->name_len;
    h->value = scratch;
    h->value_len = unescape_into(scratch, value, r->value_len);
    return scratch + h->value_len;
}

static int emit_frame(struct stomp_parser *p, struct stomp_frame *frame)
{
    size_t decoded = 0;
    for (size_t i = 0; i < p->record_count; i++) {
        if (p->records[i].escaped)
            decoded += p->records[i].name_len + p->records[i].value_len;
    }
    if (!reserve_output(p, p->record_count, decoded))
        return fail(p, STOMP_ERR_NOMEM, "out of memory");
    char *scratch = p->scratch;
    for (size_t i = 0; i < p->record_count; i++)
        scratch = fill_header(p, &p->records[i], &p->headers[i], scratch);
    frame->command = p->command;
    frame->headers = p->headers;
    frame->header_count = p->record_count;
    frame->body = p->region + p->body_start;
    frame->body_len = p->body_len;
    p->phase = PHASE_IDLE;
    p->frame_out = true;
    return 0;
}

/* ---- feed ------------------------------------------------------------------------------------ */

/* Consumes EOLs between frames; *saw_lf tells whether at least one complete EOL went by. */
static int skip_eols(struct stomp_parser *p, const char *buf, size_t len, size_t *used,
                     bool *saw_lf)
{
    size_t i = 0;
    *saw_lf = false;
    for (; i < len; i++) {
        char c = buf[i];
        if (p->pending_cr && c != '\n')
            return fail(p, STOMP_ERR_BAD_EOL, "CR not followed by LF between frames");
        if (c == '\n') {
            p->pending_cr = false;
            *saw_lf = true;
        } else if (c == '\r') {
            p->pending_cr = true;
        } else {
            break;
        }
    }
    *used = i;
    return 0;
}

/* Runs the frame steps over buf[0..len); *done when the frame completed. Returns octets used. */
static ssize_t feed_frame(struct stomp_parser *p, const char *buf, size_t len, bool *done)
{
    if (!p->buffered)
        p->region = buf; /* a frame not yet buffered starts in this call: frame_len == 0 */
    size_t used = 0;
    while (used < len && !*done) {
        ssize_t n = step(p, buf + used, len - used, done);
        if (n < 0)
            return n;
        used += (size_t)n;
    }
    if (!*done && !p->buffered) {
        int rc = switch_to_buffered(p);
        if (rc < 0)
            return rc;
    }
    return (ssize_t)used;
}

ssize_t stomp_parser_feed(struct stomp_parser *p, const char *buf, size_t len,
                          struct stomp_frame *frame, enum stomp_event *ev)
{
    memset(frame, 0, sizeof *frame);
    *ev = STOMP_EVENT_NONE;
    if (p->error != 0)
        return p->error;
    if (p->frame_out)
        start_next_frame(p);
    size_t consumed = 0;
    if (p->phase == PHASE_IDLE) {
        bool saw_lf;
        int rc = skip_eols(p, buf, len, &consumed, &saw_lf);
        if (rc < 0)
            return rc;
        if (saw_lf)
            *ev = STOMP_EVENT_HEARTBEAT;
        if (saw_lf || consumed == len)
            return (ssize_t)consumed;
        p->phase = PHASE_COMMAND;
    }
    bool done = false;
    ssize_t used = feed_frame(p, buf + consumed, len - consumed, &done);
    if (used < 0)
        return used;
    if (done) {
        int rc = emit_frame(p, frame);
        if (rc < 0)
            return rc;
        *ev = STOMP_EVENT_FRAME;
    }
    return (ssize_t)consumed + used;
}
