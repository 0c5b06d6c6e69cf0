/*
 * stomp/frame.c - command/version names, header lookup, validation, version negotiation and
 * heart-beat arithmetic. Pure functions; see frame.h.
 */
#include "stomp/frame.h"

#include <limits.h>
#include <string.h>

static const char *const command_names[STOMP_COMMAND_COUNT] = {
    [STOMP_CMD_CONNECT] = "CONNECT",
    [STOMP_CMD_STOMP] = "STOMP",
    [STOMP_CMD_SEND] = "SEND",
    [STOMP_CMD_SUBSCRIBE] = "SUBSCRIBE",
    [STOMP_CMD_UNSUBSCRIBE] = "UNSUBSCRIBE",
    [STOMP_CMD_ACK] = "ACK",
    [STOMP_CMD_NACK] = "NACK",
    [STOMP_CMD_BEGIN] = "BEGIN",
    [STOMP_CMD_COMMIT] = "COMMIT",
    [STOMP_CMD_ABORT] = "ABORT",
    [STOMP_CMD_DISCONNECT] = "DISCONNECT",
    [STOMP_CMD_CONNECTED] = "CONNECTED",
    [STOMP_CMD_MESSAGE] = "MESSAGE",
    [STOMP_CMD_RECEIPT] = "RECEIPT",
    [STOMP_CMD_ERROR] = "ERROR",
};

const char *stomp_version_name(enum stomp_version version)
{
    switch (version) {
    case STOMP_V1_0:
        return "1.0";
    case STOMP_V1_1:
        return "1.1";
    case STOMP_V1_2:
        return "1.2";
    }
    return "?";
}

const char *stomp_command_name(enum stomp_command command)
{
    if ((unsigned)command >= STOMP_COMMAND_COUNT)
        return "?";
    return command_names[command];
}

int stomp_command_from_name(const char *name, size_t len, enum stomp_command *out)
{
    /* Fifteen short names: a length check rejects most candidates before any memcmp. */
    for (unsigned i = 0; i < STOMP_COMMAND_COUNT; i++) {
        const char *candidate = command_names[i];
        if (strlen(candidate) == len && memcmp(candidate, name, len) == 0) {
            *out = (enum stomp_command)i;
            return 0;
        }
    }
    return STOMP_ERR_UNKNOWN_COMMAND;
}

const char *stomp_strerror(int error)
{
    switch ((enum stomp_error)error) {
    case STOMP_OK:
        return "no error";
    case STOMP_ERR_NOMEM:
        return "out of memory";
    case STOMP_ERR_UNKNOWN_COMMAND:
        return "unknown command";
    case STOMP_ERR_MISSING_COLON:
        return "header line without colon";
    case STOMP_ERR_BAD_HEADER:
        return "malformed header";
    case STOMP_ERR_BAD_ESCAPE:
        return "undefined escape sequence in header";
    case STOMP_ERR_BAD_CONTENT_LENGTH:
        return "invalid content-length";
    case STOMP_ERR_MISSING_NUL:
        return "frame body not followed by NUL";
    case STOMP_ERR_BAD_EOL:
        return "CR not followed by LF";
    case STOMP_ERR_TOO_MANY_HEADERS:
        return "too many headers";
    case STOMP_ERR_HEADER_LINE_TOO_LONG:
        return "header line too long";
    case STOMP_ERR_HEADERS_TOO_LARGE:
        return "frame headers too large";
    case STOMP_ERR_BODY_TOO_LARGE:
        return "frame body too large";
    case STOMP_ERR_MISSING_HEADER:
        return "required header missing";
    case STOMP_ERR_BODY_NOT_ALLOWED:
        return "frame must not have a body";
    case STOMP_ERR_UNSUPPORTED_COMMAND:
        return "command not supported in this STOMP version";
    case STOMP_ERR_NO_COMMON_VERSION:
        return "no common STOMP version";
    case STOMP_ERR_BAD_HEARTBEAT:
        return "invalid heart-beat header";
    }
    return "unknown error";
}

const struct stomp_header *stomp_frame_header_n(const struct stomp_frame *frame, const char *name,
                                                size_t name_len)
{
    for (size_t i = 0; i < frame->header_count; i++) {
        const struct stomp_header *h = &frame->headers[i];
        if (h->name_len == name_len && memcmp(h->name, name, name_len) == 0)
            return h;
    }
    return NULL;
}

const struct stomp_header *stomp_frame_header(const struct stomp_frame *frame, const char *name)
{
    return stomp_frame_header_n(frame, name, strlen(name));
}

bool stomp_header_is(const struct stomp_header *header, const char *value)
{
    if (header == NULL)
        return false;
    size_t len = strlen(value);
    return header->value_len == len && memcmp(header->value, value, len) == 0;
}

/* ---- validation ------------------------------------------------------------------------------ */

/* One required header of one command, from a given version on. */
struct required_header {
    enum stomp_command command;
    enum stomp_version since;
    const char *name;
    const char *message;
};

/*
 * The table of STOMP's "REQUIRED" headers. Rules that are not "header X from version V on" (1.0
 * UNSUBSCRIBE, ACK/NACK changing across versions, STOMP implying 1.1) are in validate_special().
 */
static const struct required_header required_headers[] = {
    {STOMP_CMD_SEND, STOMP_V1_0, "destination", "SEND frame has no destination header"},
    {STOMP_CMD_SUBSCRIBE, STOMP_V1_0, "destination", "SUBSCRIBE frame has no destination header"},
    {STOMP_CMD_SUBSCRIBE, STOMP_V1_1, "id", "SUBSCRIBE frame has no id header"},
    {STOMP_CMD_UNSUBSCRIBE, STOMP_V1_1, "id", "UNSUBSCRIBE frame has no id header"},
    {STOMP_CMD_BEGIN, STOMP_V1_0, "transaction", "BEGIN frame has no transaction header"},
    {STOMP_CMD_COMMIT, STOMP_V1_0, "transaction", "COMMIT frame has no transaction header"},
    {STOMP_CMD_ABORT, STOMP_V1_0, "transaction", "ABORT frame has no transaction header"},
    {STOMP_CMD_CONNECT, STOMP_V1_1, "accept-version", "CONNECT frame has no accept-version header"},
    {STOMP_CMD_CONNECT, STOMP_V1_1, "host", "CONNECT frame has no host header"},
    {STOMP_CMD_STOMP, STOMP_V1_0, "accept-version", "STOMP frame has no accept-version header"},
    {STOMP_CMD_STOMP, STOMP_V1_0, "host", "STOMP frame has no host header"},
    {STOMP_CMD_CONNECTED, STOMP_V1_1, "version", "CONNECTED frame has no version header"},
    {STOMP_CMD_MESSAGE, STOMP_V1_0, "destination", "MESSAGE frame has no destination header"},
    {STOMP_CMD_MESSAGE, STOMP_V1_0, "message-id", "MESSAGE frame has no message-id header"},
    {STOMP_CMD_MESSAGE, STOMP_V1_1, "subscription", "MESSAGE frame has no subscription header"},
    {STOMP_CMD_RECEIPT, STOMP_V1_0, "receipt-id", "RECEIPT frame has no receipt-id header"},
    {STOMP_CMD_ACK, STOMP_V1_2, "id", "ACK frame has no id header"},
    {STOMP_CMD_NACK, STOMP_V1_2, "id", "NACK frame has no id header"},
};

/* The ACK/NACK headers of 1.0 and 1.1 (1.2 uses `id`, in the table above). */
static int validate_ack(const struct stomp_frame *frame, enum stomp_version version,
                        const char **message)
{
    bool nack = frame->command == STOMP_CMD_NACK;
    if (version >= STOMP_V1_2)
        return 0;
    if (stomp_frame_header(frame, "message-id") == NULL) {
        *message =
            nack ? "NACK frame has no message-id header" : "ACK frame has no message-id header";
        return STOMP_ERR_MISSING_HEADER;
    }
    if (version == STOMP_V1_1 && stomp_frame_header(frame, "subscription") == NULL) {
        *message =
            nack ? "NACK frame has no subscription header" : "ACK frame has no subscription header";
        return STOMP_ERR_MISSING_HEADER;
    }
    return 0;
}

static int validate_special(const struct stomp_frame *frame, enum stomp_version version,
                            const char **message)
{
    switch (frame->command) {
    case STOMP_CMD_NACK:
        if (version == STOMP_V1_0) {
            *message = "NACK is not a STOMP 1.0 command";
            return STOMP_ERR_UNSUPPORTED_COMMAND;
        }
        return validate_ack(frame, version, message);
    case STOMP_CMD_ACK:
        return validate_ack(frame, version, message);
    case STOMP_CMD_UNSUBSCRIBE:
        if (version == STOMP_V1_0 && stomp_frame_header(frame, "destination") == NULL &&
            stomp_frame_header(frame, "id") == NULL) {
            *message = "UNSUBSCRIBE frame has neither destination nor id header";
            return STOMP_ERR_MISSING_HEADER;
        }
        return 0;
    default:
        return 0;
    }
}

static bool command_may_have_body(enum stomp_command command)
{
    return command == STOMP_CMD_SEND || command == STOMP_CMD_MESSAGE || command == STOMP_CMD_ERROR;
}

int stomp_frame_validate(const struct stomp_frame *frame, enum stomp_version version,
                         const char **message)
{
    const char *unused;
    if (message == NULL)
        message = &unused;
    *message = NULL;
    if (frame->body_len > 0 && !command_may_have_body(frame->command)) {
        *message = "only SEND, MESSAGE and ERROR frames may have a body";
        return STOMP_ERR_BODY_NOT_ALLOWED;
    }
    int rc = validate_special(frame, version, message);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < sizeof required_headers / sizeof required_headers[0]; i++) {
        const struct required_header *r = &required_headers[i];
        if (r->command != frame->command || version < r->since)
            continue;
        if (stomp_frame_header(frame, r->name) == NULL) {
            *message = r->message;
            return STOMP_ERR_MISSING_HEADER;
        }
    }
    return 0;
}

/* ---- version negotiation --------------------------------------------------------------------- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* Maps one accept-version entry ("1.2") to its version, or 0 when we do not know it. */
static enum stomp_version version_from_token(const char *s, size_t len)
{
    while (len > 0 && is_space(s[0])) {
        s++;
        len--;
    }
    while (len > 0 && is_space(s[len - 1]))
        len--;
    if (len != 3 || s[0] != '1' || s[1] != '.')
        return (enum stomp_version)0;
    switch (s[2]) {
    case '0':
        return STOMP_V1_0;
    case '1':
        return STOMP_V1_1;
    case '2':
        return STOMP_V1_2;
    default:
        return (enum stomp_version)0;
    }
}

int stomp_negotiate_version(const char *accept_version, size_t len, unsigned supported_mask)
{
    unsigned offered = 0;
    if (accept_version == NULL) {
        offered = STOMP_VERSION_BIT(STOMP_V1_0);
    } else {
        size_t start = 0;
        for (size_t i = 0; i <= len; i++) {
            if (i < len && accept_version[i] != ',')
                continue;
            enum stomp_version v = version_from_token(accept_version + start, i - start);
            if (v != 0)
                offered |= STOMP_VERSION_BIT(v);
            start = i + 1;
        }
    }
    unsigned common = offered & supported_mask;
    for (int v = STOMP_V1_2; v >= STOMP_V1_0; v--) {
        if (common & STOMP_VERSION_BIT(v))
            return v;
    }
    return STOMP_ERR_NO_COMMON_VERSION;
}

size_t stomp_versions_list(char *out, size_t cap, unsigned supported_mask)
{
    size_t len = 0;
    for (int v = STOMP_V1_0; v <= STOMP_V1_2; v++) {
        if (!(supported_mask & STOMP_VERSION_BIT(v)))
            continue;
        const char *name = stomp_version_name((enum stomp_version)v);
        if (len > 0) {
            if (len < cap)
                out[len] = ',';
            len++;
        }
        for (size_t i = 0; name[i] != '\0'; i++, len++) {
            if (len < cap)
                out[len] = name[i];
        }
    }
    if (len < cap)
        out[len] = '\0';
    return len;
}

/* ---- heart-beat ------------------------------------------------------------------------------ */

/* Parses s[0..len) as an unsigned decimal without sign or spaces; false on garbage or overflow. */
static bool parse_uint(const char *s, size_t len, unsigned *out)
{
    if (len == 0)
        return false;
    unsigned long long value = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        value = value * 10 + (unsigned)(s[i] - '0');
        if (value > UINT_MAX)
            return false;
    }
    *out = (unsigned)value;
    return true;
}

int stomp_heartbeat_parse(const char *value, size_t len, unsigned *cx, unsigned *cy)
{
    const char *comma = memchr(value, ',', len);
    if (comma == NULL)
        return STOMP_ERR_BAD_HEARTBEAT;
    size_t first_len = (size_t)(comma - value);
    unsigned x, y;
    if (!parse_uint(value, first_len, &x) || !parse_uint(comma + 1, len - first_len - 1, &y))
        return STOMP_ERR_BAD_HEARTBEAT;
    *cx = x;
    *cy = y;
    return 0;
}

/* One direction of the spec's rule: none if either side says 0, else the slower of the two. */
static unsigned heartbeat_interval(unsigned can_send, unsigned wants)
{
    if (can_send == 0 || wants == 0)
        return 0;
    return can_send > wants ? can_send : wants;
}

void stomp_heartbeat_negotiate(unsigned cx, unsigned cy, unsigned sx, unsigned sy,
                               unsigned *server_send_ms, unsigned *server_expect_ms)
{
    *server_send_ms = heartbeat_interval(sx, cy);
    *server_expect_ms = heartbeat_interval(cx, sy);
}
