/*
 * ws/frame.c - RFC 6455 frame decoder and encoder (see frame.h).
 *
 * The decoder is a small state machine: gather the header (2..14 bytes, possibly across calls,
 * checking each rule as soon as the byte that decides it arrives), then stream the payload.
 * Data payload is unmasked in place and handed out in chunks; control payload (<= 125 bytes) is
 * handed out whole, from the caller's buffer when it arrived in one piece, else from control[].
 */
#include "ws/frame.h"

#include <assert.h>
#include <string.h>

enum decoder_state {
    DEC_HEADER,  /* gathering header bytes */
    DEC_PAYLOAD, /* consuming payload of the current frame */
    DEC_CLOSED,  /* close frame delivered: no more input */
    DEC_FAILED,  /* protocol error: d->error repeated */
};

/* Text payload is unmasked and validated in blocks of this size so the bytes are still in L1. */
#define UNMASK_BLOCK 8192

static bool is_control(uint8_t opcode)
{
    return (opcode & 0x08) != 0;
}

static bool opcode_known(uint8_t opcode)
{
    return opcode <= WS_OP_BINARY || (opcode >= WS_OP_CLOSE && opcode <= WS_OP_PONG);
}

void ws_decoder_config_default(struct ws_decoder_config *cfg)
{
    cfg->max_message_size = WS_DEFAULT_MAX_MESSAGE;
    cfg->expect_masked = true;
    cfg->allow_compressed = false;
}

static void reset_header(struct ws_decoder *d)
{
    d->state = DEC_HEADER;
    d->header_len = 0;
    d->header_need = 2;
}

void ws_decoder_init(struct ws_decoder *d, const struct ws_decoder_config *cfg)
{
    memset(d, 0, sizeof(*d));
    if (cfg != NULL)
        d->config = *cfg;
    else
        ws_decoder_config_default(&d->config);
    ws_utf8_init(&d->utf8);
    reset_header(d);
}

static int fail(struct ws_decoder *d, int err)
{
    d->state = DEC_FAILED;
    d->error = err;
    return err;
}

/* Byte 0: FIN, RSV1-3, opcode; decides fragmentation order. */
static int check_first_byte(struct ws_decoder *d)
{
    uint8_t b = d->header[0];
    d->fin = (b & 0x80) != 0;
    d->rsv1 = (b & 0x40) != 0;
    d->opcode = b & 0x0F;
    if (b & 0x30)
        return WS_ERR_RSV;
    /* RSV1 marks a compressed message: only on its first frame, never on a control frame. */
    if (d->rsv1 &&
        (!d->config.allow_compressed || is_control(d->opcode) || d->opcode == WS_OP_CONTINUATION))
        return WS_ERR_RSV;
    if (!opcode_known(d->opcode))
        return WS_ERR_OPCODE;
    if (is_control(d->opcode))
        return d->fin ? 0 : WS_ERR_CONTROL_FRAGMENTED;
    if (d->opcode == WS_OP_CONTINUATION && !d->in_message)
        return WS_ERR_CONTINUATION;
    if (d->opcode != WS_OP_CONTINUATION && d->in_message)
        return WS_ERR_NEW_MESSAGE;
    return 0;
}

static unsigned extended_length_bytes(const struct ws_decoder *d)
{
    uint8_t len7 = d->header[1] & 0x7F;
    return len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
}

/* Byte 1: MASK and the 7-bit length; fixes the header size. */
static int check_second_byte(struct ws_decoder *d)
{
    bool masked = (d->header[1] & 0x80) != 0;
    if (d->config.expect_masked && !masked)
        return WS_ERR_UNMASKED;
    if (!d->config.expect_masked && masked)
        return WS_ERR_MASKED;
    if (is_control(d->opcode) && (d->header[1] & 0x7F) > WS_CONTROL_PAYLOAD_MAX)
        return WS_ERR_CONTROL_TOO_BIG;
    d->header_need = (uint8_t)(2 + extended_length_bytes(d) + (masked ? 4 : 0));
    return 0;
}

/* Payload length is known: check its encoding and the message size limit. */
static int check_length(struct ws_decoder *d)
{
    unsigned ext = extended_length_bytes(d);
    uint64_t len = d->header[1] & 0x7F;
    if (ext > 0) {
        len = 0;
        for (unsigned i = 0; i < ext; i++)
            len = (len << 8) | d->header[2 + i];
    }
    if (ext == 2 && len < 126)
        return WS_ERR_LENGTH_NOT_MINIMAL;
    if (ext == 8 && (len >> 63) != 0)
        return WS_ERR_LENGTH_TOP_BIT;
    if (ext == 8 && len <= 0xFFFF)
        return WS_ERR_LENGTH_NOT_MINIMAL;
    d->remaining = len;
    if (is_control(d->opcode))
        return 0;
    uint64_t so_far = d->opcode == WS_OP_CONTINUATION ? d->message_size : 0;
    uint64_t limit = d->config.max_message_size;
    if (so_far > limit || len > limit - so_far)
        return WS_ERR_TOO_BIG;
    return 0;
}

/* Where the next header check happens: after byte 0, byte 1, the extended length, the key. */
static uint8_t next_boundary(const struct ws_decoder *d)
{
    if (d->header_len < 2)
        return (uint8_t)(d->header_len + 1);
    unsigned length_end = 2 + extended_length_bytes(d);
    return (uint8_t)(d->header_len < length_end ? length_end : d->header_need);
}

/* Runs the checks decided by the header bytes up to header_len (a boundary just reached). */
static int check_boundary(struct ws_decoder *d)
{
    int err = 0;
    if (d->header_len == 1)
        return check_first_byte(d);
    if (d->header_len == 2)
        err = check_second_byte(d);
    if (err == 0 && d->header_len == 2 + extended_length_bytes(d))
        err = check_length(d);
    return err;
}

/*
 * Copies header bytes from buf a stage at a time, checking each stage as soon as it is complete
 * (so errors are the same however the header is split). Returns bytes used or an error.
 */
static ssize_t gather_header(struct ws_decoder *d, const uint8_t *buf, size_t len)
{
    size_t used = 0;
    while (d->header_len < d->header_need && used < len) {
        uint8_t boundary = next_boundary(d);
        size_t take = boundary - d->header_len;
        if (take > len - used)
            take = len - used;
        memcpy(d->header + d->header_len, buf + used, take);
        d->header_len = (uint8_t)(d->header_len + take);
        used += take;
        if (d->header_len == boundary) {
            int err = check_boundary(d);
            if (err != 0)
                return err;
        }
    }
    return (ssize_t)used;
}

/* The header is complete: set up payload state and the message bookkeeping. */
static void begin_frame(struct ws_decoder *d)
{
    bool masked = (d->header[1] & 0x80) != 0;
    if (masked)
        memcpy(d->mask, d->header + d->header_need - 4, 4);
    d->mask_offset = 0;
    d->control_len = 0;
    d->state = DEC_PAYLOAD;
    if (is_control(d->opcode))
        return;
    if (d->opcode != WS_OP_CONTINUATION) {
        d->message_opcode = d->opcode;
        d->message_size = 0;
        d->message_started = false;
        d->message_compressed = d->rsv1;
        d->in_message = true;
        ws_utf8_init(&d->utf8);
    }
    d->message_size += d->remaining;
}

static bool frame_masked(const struct ws_decoder *d)
{
    return (d->header[1] & 0x80) != 0;
}

static void unmask(struct ws_decoder *d, uint8_t *p, size_t n)
{
    if (!frame_masked(d))
        return;
    ws_mask(p, n, d->mask, d->mask_offset);
    d->mask_offset = (uint8_t)((d->mask_offset + n) & 3);
}

/* Unmasks and validates a text chunk block by block, failing at the first bad block. */
static int unmask_text(struct ws_decoder *d, uint8_t *p, size_t n)
{
    while (n > 0) {
        size_t block = n < UNMASK_BLOCK ? n : UNMASK_BLOCK;
        unmask(d, p, block);
        if (ws_utf8_feed(&d->utf8, p, block) != 0)
            return WS_ERR_INVALID_UTF8;
        p += block;
        n -= block;
    }
    return 0;
}

/* Hands out the next chunk of a data frame (possibly empty); returns bytes used or an error. */
static ssize_t emit_data(struct ws_decoder *d, uint8_t *p, size_t avail, struct ws_event *ev)
{
    size_t n = d->remaining < avail ? (size_t)d->remaining : avail;
    bool text = d->message_opcode == WS_OP_TEXT;
    bool check_utf8 = text && !d->message_compressed; /* compressed: checked once inflated */
    if (check_utf8) {
        int err = unmask_text(d, p, n);
        if (err != 0)
            return err;
    } else {
        unmask(d, p, n);
    }
    d->remaining -= n;
    bool end = d->remaining == 0 && d->fin;
    if (end && check_utf8 && !ws_utf8_complete(&d->utf8))
        return WS_ERR_INVALID_UTF8;
    ev->type = WS_EVENT_DATA;
    ev->data = p;
    ev->len = n;
    ev->text = text;
    ev->compressed = d->message_compressed;
    ev->message_start = !d->message_started;
    ev->message_end = end;
    d->message_started = true;
    if (d->remaining == 0)
        reset_header(d);
    if (end)
        d->in_message = false;
    return (ssize_t)n;
}

/* Validates a whole close payload and fills the event. */
static int close_event(struct ws_decoder *d, uint8_t *p, size_t n, struct ws_event *ev)
{
    uint16_t code = WS_CLOSE_NO_STATUS;
    if (n == 1)
        return WS_ERR_CLOSE_PAYLOAD;
    if (n >= 2) {
        code = (uint16_t)((p[0] << 8) | p[1]);
        if (!ws_close_code_valid(code))
            return WS_ERR_CLOSE_CODE;
        p += 2;
        n -= 2;
        if (!ws_utf8_valid(p, n))
            return WS_ERR_CLOSE_REASON_UTF8;
    }
    ev->type = WS_EVENT_CLOSE;
    ev->close_code = code;
    ev->data = p;
    ev->len = n;
    d->state = DEC_CLOSED;
    return 0;
}

/* A control frame's payload is complete at p[0..n). */
static int emit_control(struct ws_decoder *d, uint8_t *p, size_t n, struct ws_event *ev)
{
    if (d->opcode == WS_OP_CLOSE)
        return close_event(d, p, n, ev);
    ev->type = d->opcode == WS_OP_PING ? WS_EVENT_PING : WS_EVENT_PONG;
    ev->data = p;
    ev->len = n;
    reset_header(d);
    return 0;
}

/*
 * Consumes control payload: in place when it is all in buf and nothing was buffered, else into
 * control[]. Sets *done when the frame is complete (and the event filled). Returns bytes used.
 */
static ssize_t take_control(struct ws_decoder *d, uint8_t *buf, size_t avail, struct ws_event *ev,
                            bool *done)
{
    size_t need = (size_t)d->remaining;
    *done = false;
    if (d->control_len == 0 && avail >= need) {
        unmask(d, buf, need);
        d->remaining = 0;
        *done = true;
        int err = emit_control(d, buf, need, ev);
        return err != 0 ? err : (ssize_t)need;
    }
    size_t n = need < avail ? need : avail;
    uint8_t *dst = d->control + d->control_len;
    memcpy(dst, buf, n);
    unmask(d, dst, n);
    d->control_len = (uint8_t)(d->control_len + n);
    d->remaining -= n;
    if (d->remaining > 0)
        return (ssize_t)n;
    *done = true;
    int err = emit_control(d, d->control, d->control_len, ev);
    return err != 0 ? err : (ssize_t)n;
}

static void clear_event(struct ws_event *ev)
{
    ev->type = WS_EVENT_NONE;
    ev->data = NULL;
    ev->len = 0;
    ev->text = false;
    ev->compressed = false;
    ev->message_start = false;
    ev->message_end = false;
    ev->close_code = 0;
}

ssize_t ws_decoder_decode(struct ws_decoder *d, uint8_t *buf, size_t len, struct ws_event *ev)
{
    clear_event(ev);
    if (d->state == DEC_FAILED)
        return d->error;
    if (d->state == DEC_CLOSED)
        return WS_ERR_AFTER_CLOSE;
    size_t pos = 0;
    for (;;) {
        if (d->state == DEC_HEADER) {
            if (pos == len)
                return (ssize_t)pos;
            ssize_t used = gather_header(d, buf + pos, len - pos);
            if (used < 0)
                return fail(d, (int)used);
            pos += (size_t)used;
            if (d->header_len < d->header_need)
                return (ssize_t)pos;
            begin_frame(d);
        }
        if (!is_control(d->opcode)) {
            if (pos == len && d->remaining > 0)
                return (ssize_t)pos;
            ssize_t used = emit_data(d, buf + pos, len - pos, ev);
            if (used < 0)
                return fail(d, (int)used);
            return (ssize_t)pos + used;
        }
        if (pos == len && d->remaining > 0)
            return (ssize_t)pos;
        bool done;
        ssize_t used = take_control(d, buf + pos, len - pos, ev, &done);
        if (used < 0)
            return fail(d, (int)used);
        pos += (size_t)used;
        if (done)
            return (ssize_t)pos;
    }
}

/* ---- encoder ---- */

size_t ws_frame_header_encode(uint8_t out[WS_FRAME_HEADER_MAX], enum ws_opcode op, bool fin,
                              uint64_t payload_len, const uint8_t *mask_key)
{
    assert((payload_len >> 63) == 0);
    size_t n = 0;
    uint8_t mask_bit = mask_key != NULL ? 0x80 : 0;
    out[n++] = (uint8_t)((fin ? 0x80 : 0) | ((unsigned)op & 0x0F));
    if (payload_len < 126) {
        out[n++] = (uint8_t)(mask_bit | payload_len);
    } else if (payload_len <= 0xFFFF) {
        out[n++] = (uint8_t)(mask_bit | 126);
        out[n++] = (uint8_t)(payload_len >> 8);
        out[n++] = (uint8_t)payload_len;
    } else {
        out[n++] = (uint8_t)(mask_bit | 127);
        for (int shift = 56; shift >= 0; shift -= 8)
            out[n++] = (uint8_t)(payload_len >> shift);
    }
    if (mask_key != NULL) {
        memcpy(out + n, mask_key, 4);
        n += 4;
    }
    return n;
}

static uint64_t load64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w));
    return w;
}

static void store64(uint8_t *p, uint64_t w)
{
    memcpy(p, &w, sizeof(w));
}

void ws_mask(uint8_t *data, size_t len, const uint8_t key[4], size_t offset)
{
    size_t i = 0;
    offset &= 3;
    while (i < len && ((uintptr_t)(data + i) & 7) != 0) {
        data[i] ^= key[(offset + i) & 3];
        i++;
    }
    if (len - i >= 8) {
        /* i only grows by 8 below, so the key phase stays the same for every word. */
        uint8_t rotated[8];
        for (size_t k = 0; k < 8; k++)
            rotated[k] = key[(offset + i + k) & 3];
        uint64_t m = load64(rotated);
        for (; len - i >= 32; i += 32) {
            store64(data + i, load64(data + i) ^ m);
            store64(data + i + 8, load64(data + i + 8) ^ m);
            store64(data + i + 16, load64(data + i + 16) ^ m);
            store64(data + i + 24, load64(data + i + 24) ^ m);
        }
        for (; len - i >= 8; i += 8)
            store64(data + i, load64(data + i) ^ m);
    }
    for (; i < len; i++)
        data[i] ^= key[(offset + i) & 3];
}

bool ws_close_code_valid(uint16_t code)
{
    if (code >= 1000 && code <= 1003)
        return true;
    if (code >= 1007 && code <= 1014)
        return true;
    return code >= 3000 && code <= 4999;
}

size_t ws_close_payload_encode(uint8_t out[WS_CONTROL_PAYLOAD_MAX], uint16_t code,
                               const char *reason)
{
    if (!ws_close_code_valid(code))
        return 0;
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    size_t room = WS_CONTROL_PAYLOAD_MAX - 2;
    size_t n = reason != NULL ? strlen(reason) : 0;
    if (n > room) {
        n = room;
        /* reason[n] is the first byte left out: if it continues a character, drop that too. */
        while (n > 0 && ((uint8_t)reason[n] & 0xC0) == 0x80)
            n--;
    }
    if (n > 0 && !ws_utf8_valid((const uint8_t *)reason, n))
        n = 0; /* never send a reason the peer must reject with 1007 */
    if (n > 0)
        memcpy(out + 2, reason, n);
    return 2 + n;
}

/* ---- errors ---- */

struct error_info {
    int err;
    uint16_t close_code;
    const char *message;
};

static const struct error_info error_table[] = {
    {WS_ERR_RSV, WS_CLOSE_PROTOCOL_ERROR, "reserved bits set"},
    {WS_ERR_OPCODE, WS_CLOSE_PROTOCOL_ERROR, "unknown opcode"},
    {WS_ERR_CONTROL_TOO_BIG, WS_CLOSE_PROTOCOL_ERROR, "control frame over 125 bytes"},
    {WS_ERR_CONTROL_FRAGMENTED, WS_CLOSE_PROTOCOL_ERROR, "fragmented control frame"},
    {WS_ERR_UNMASKED, WS_CLOSE_PROTOCOL_ERROR, "client frame not masked"},
    {WS_ERR_MASKED, WS_CLOSE_PROTOCOL_ERROR, "server frame masked"},
    {WS_ERR_LENGTH_NOT_MINIMAL, WS_CLOSE_PROTOCOL_ERROR, "payload length not minimally encoded"},
    {WS_ERR_LENGTH_TOP_BIT, WS_CLOSE_PROTOCOL_ERROR, "payload length has top bit set"},
    {WS_ERR_CONTINUATION, WS_CLOSE_PROTOCOL_ERROR, "continuation frame without a message"},
    {WS_ERR_NEW_MESSAGE, WS_CLOSE_PROTOCOL_ERROR, "new message before the last one ended"},
    {WS_ERR_TOO_BIG, WS_CLOSE_TOO_BIG, "message exceeds max_message_size"},
    {WS_ERR_INVALID_UTF8, WS_CLOSE_INVALID_DATA, "text message is not valid UTF-8"},
    {WS_ERR_CLOSE_PAYLOAD, WS_CLOSE_PROTOCOL_ERROR, "close payload of 1 byte"},
    {WS_ERR_CLOSE_CODE, WS_CLOSE_PROTOCOL_ERROR, "invalid close code"},
    {WS_ERR_CLOSE_REASON_UTF8, WS_CLOSE_INVALID_DATA, "close reason is not valid UTF-8"},
    {WS_ERR_AFTER_CLOSE, WS_CLOSE_PROTOCOL_ERROR, "data after close frame"},
    {WS_ERR_INFLATE, WS_CLOSE_INVALID_DATA, "compressed message does not inflate"},
    {WS_ERR_INFLATED_TOO_BIG, WS_CLOSE_TOO_BIG, "message exceeds max_message_size once inflated"},
};

static const struct error_info *error_lookup(int err)
{
    for (size_t i = 0; i < sizeof(error_table) / sizeof(error_table[0]); i++)
        if (error_table[i].err == err)
            return &error_table[i];
    return NULL;
}

uint16_t ws_error_close_code(int err)
{
    const struct error_info *e = error_lookup(err);
    return e != NULL ? e->close_code : WS_CLOSE_PROTOCOL_ERROR;
}

const char *ws_error_message(int err)
{
    const struct error_info *e = error_lookup(err);
    return e != NULL ? e->message : "protocol error";
}
