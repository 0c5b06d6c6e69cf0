/*
 * fuzz_ws_frame.c - libFuzzer harness for ws/frame (decoder, header encoder, masking, close
 * payloads) and ws/utf8 (incremental and whole-buffer validators).
 *
 * Input layout: byte 0 picks the decoder config (bit 0 set: decode server frames, unmasked, as a
 * client does; clear: client frames, masked, as the broker does; bits 1-2: max_message_size);
 * bytes 1..4 seed the sizes of the pieces the stream arrives in; the rest is the byte stream.
 *
 * Checks:
 * - The stream is decoded whole and in pieces (each piece in its own exact-size heap block, so
 *   ASan flags any read past it). DATA events are reassembled into messages, never longer than
 *   max_message_size; each complete message and each control frame is logged. The two logs and
 *   the two final errors must be the same, and the log must match what a naive frame walker
 *   written here reads from the same bytes, as far as the decoder accepted them.
 * - Every text message passes a reference UTF-8 validator written here from RFC 3629; a message
 *   the decoder refused as invalid UTF-8 fails it; no text byte delivered before a refusal does.
 * - Each logged frame is encoded again (ws_frame_header_encode, ws_mask in two parts,
 *   ws_close_payload_encode) and decodes back to the same event.
 * - The raw stream goes through ws_utf8_valid() and ws_utf8_feed() in pieces: both agree with
 *   the reference, down to which piece holds the first invalid byte.
 * - ws_close_payload_encode() and ws_frame_header_encode() on a code, reason and 63-bit length
 *   taken from the stream's first bytes (reasons over 125 bytes, 64-bit lengths).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ws/frame.h"
#include "ws/utf8.h"
#include "tests/fuzz/fuzz.h"

static const size_t message_limits[4] = {WS_DEFAULT_MAX_MESSAGE, 4096, 256, 16};

/* Size of the k-th piece of a stream with `left` bytes to go: 1..64, or all when the seed is 0. */
static size_t piece_size(const uint8_t seeds[4], unsigned k, size_t left)
{
    size_t piece = seeds[k % 4] == 0 ? left : (size_t)seeds[k % 4] % 64 + 1;
    return piece < left ? piece : left;
}

/* ---- reference UTF-8 validator ---------------------------------------------------------- */

/* Could `left` more 6-bit groups after cp make a scalar value of at least min? */
static bool ref_possible(uint32_t cp, unsigned left, uint32_t min)
{
    uint32_t lo = cp << (6 * left), hi = lo | ((1u << (6 * left)) - 1);
    if (hi < min || lo > 0x10FFFF)
        return false;
    return !(lo >= 0xD800 && hi <= 0xDFFF);
}

/* A lead byte: how many continuation bytes follow, its code point bits, the smallest value. */
static bool ref_lead(uint8_t c, unsigned *need, uint32_t *cp, uint32_t *min)
{
    static const struct {
        uint8_t mask, value, bits;
        unsigned need;
        uint32_t min;
    } leads[] = {
        {0xE0, 0xC0, 0x1F, 1, 0x80}, {0xF0, 0xE0, 0x0F, 2, 0x800}, {0xF8, 0xF0, 0x07, 3, 0x10000}};
    for (size_t i = 0; i < sizeof(leads) / sizeof(leads[0]); i++) {
        if ((c & leads[i].mask) != leads[i].value)
            continue;
        *need = leads[i].need;
        *cp = c & leads[i].bits;
        *min = leads[i].min;
        return true;
    }
    return false;
}

/*
 * Written from RFC 3629's definition, not from tables: a lead byte gives the length and the top
 * bits, continuation bytes add 6 bits each, and a byte is invalid as soon as no continuation
 * could make the sequence a scalar value of that length (overlong, surrogate, above U+10FFFF).
 * Returns the index of the first invalid byte, or n; *partial says the input ends mid-sequence.
 */
static size_t ref_utf8_scan(const uint8_t *p, size_t n, bool *partial)
{
    *partial = false;
    size_t i = 0;
    while (i < n) {
        unsigned need;
        uint32_t cp, min;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        if (!ref_lead(p[i], &need, &cp, &min) || !ref_possible(cp, need, min))
            return i;
        for (unsigned k = 1; k <= need; k++) {
            if (i + k == n) {
                *partial = true;
                return n;
            }
            if ((p[i + k] & 0xC0) != 0x80)
                return i + k;
            cp = cp << 6 | (p[i + k] & 0x3F);
            if (!ref_possible(cp, need - k, min))
                return i + k;
        }
        i += need + 1;
    }
    return n;
}

static bool ref_utf8_valid(const uint8_t *p, size_t n)
{
    bool partial;
    return ref_utf8_scan(p, n, &partial) == n && !partial;
}

/* No byte of p[0..n) is invalid (the input may end inside a sequence). */
static bool ref_utf8_no_bad_byte(const uint8_t *p, size_t n)
{
    bool partial;
    return ref_utf8_scan(p, n, &partial) == n;
}

/* ws_utf8_valid() and ws_utf8_feed() in pieces agree with the reference on p[0..n). */
static void check_utf8(const uint8_t *p, size_t n, const uint8_t seeds[4])
{
    bool partial;
    size_t bad = ref_utf8_scan(p, n, &partial);
    bool valid = bad == n && !partial;
    uint8_t *copy = exact_copy(p, n);
    CHECK(ws_utf8_valid(copy, n) == valid);
    free(copy);
    struct ws_utf8 v;
    ws_utf8_init(&v);
    size_t off = 0;
    for (unsigned k = 0; off < n; k++) {
        size_t piece = piece_size(seeds, k, n - off);
        uint8_t *buf = exact_copy(p + off, piece);
        int rc = ws_utf8_feed(&v, buf, piece);
        free(buf);
        off += piece;
        CHECK(rc == (bad < off ? WS_UTF8_INVALID : 0));
    }
    CHECK(ws_utf8_complete(&v) == valid);
}

/* ---- logs of decoded frames -------------------------------------------------------------- */

/* Records, back to back: type, text flag, close code, payload length, payload. */
struct log {
    uint8_t *p; /* owned */
    size_t len, cap;
};

struct record {
    uint8_t type; /* enum ws_event_type */
    bool text;
    uint16_t code;
    size_t len;
    const uint8_t *payload; /* into the log */
};

#define RECORD_HEAD (1 + 1 + 2 + sizeof(size_t))

static void log_put(struct log *l, const void *p, size_t n)
{
    if (n > l->cap - l->len) {
        size_t cap = (l->len + n) * 2;
        l->p = realloc(l->p, cap);
        CHECK(l->p != NULL);
        l->cap = cap;
    }
    if (n > 0)
        memcpy(l->p + l->len, p, n);
    l->len += n;
}

static void log_record(struct log *l, enum ws_event_type type, bool text, uint16_t code,
                       const uint8_t *payload, size_t len)
{
    uint8_t head[RECORD_HEAD] = {(uint8_t)type, text, (uint8_t)(code >> 8), (uint8_t)code};
    memcpy(head + 4, &len, sizeof(len));
    log_put(l, head, sizeof(head));
    log_put(l, payload, len);
}

/* Reads the record at *off and moves past it; false at the end of the log. */
static bool log_next(const struct log *l, size_t *off, struct record *r)
{
    if (*off >= l->len)
        return false;
    const uint8_t *h = l->p + *off;
    r->type = h[0];
    r->text = h[1] != 0;
    r->code = (uint16_t)(h[2] << 8 | h[3]);
    memcpy(&r->len, h + 4, sizeof(r->len));
    r->payload = h + RECORD_HEAD;
    *off += RECORD_HEAD + r->len;
    return true;
}

/* ---- the decoder under test -------------------------------------------------------------- */

struct run {
    struct log log;
    int error;           /* 0, or the decoder's error */
    bool closed;         /* a CLOSE event was seen */
    uint8_t *message;    /* owned: the message being reassembled (capacity: the stream length) */
    size_t message_len;  /* bytes in message */
    bool in_message;     /* between a message_start and its message_end */
    bool message_text;   /* the message in progress is text */
    size_t max_message;  /* the decoder's max_message_size */
    const void *decoder; /* the decoder, for pointers into its control buffer */
};

/* The event's bytes lie in what this call consumed or (split control frames) in the decoder. */
static void check_event_data(const struct run *r, const struct ws_event *ev, const uint8_t *in,
                             size_t used)
{
    if (ev->len == 0)
        return;
    const uint8_t *d = r->decoder;
    bool in_input = ev->data >= in && ev->len <= used && ev->data <= in + used - ev->len;
    bool in_decoder = ev->type != WS_EVENT_DATA && ev->data >= d &&
                      ev->data + ev->len <= d + sizeof(struct ws_decoder);
    CHECK(in_input || in_decoder);
}

static void on_data(struct run *r, const struct ws_event *ev)
{
    if (ev->message_start) {
        CHECK(!r->in_message);
        r->in_message = true;
        r->message_text = ev->text;
        r->message_len = 0;
    } else {
        CHECK(r->in_message && ev->text == r->message_text);
    }
    CHECK(ev->len <= r->max_message - r->message_len);
    if (ev->len > 0)
        memcpy(r->message + r->message_len, ev->data, ev->len);
    r->message_len += ev->len;
    if (!ev->message_end)
        return;
    if (r->message_text)
        CHECK(ref_utf8_valid(r->message, r->message_len));
    log_record(&r->log, WS_EVENT_DATA, r->message_text, 0, r->message, r->message_len);
    r->in_message = false;
}

static void on_event(struct run *r, const struct ws_event *ev)
{
    switch (ev->type) {
    case WS_EVENT_NONE:
        break;
    case WS_EVENT_DATA:
        on_data(r, ev);
        break;
    case WS_EVENT_PING:
    case WS_EVENT_PONG:
        CHECK(ev->len <= WS_CONTROL_PAYLOAD_MAX);
        log_record(&r->log, ev->type, false, 0, ev->data, ev->len);
        break;
    case WS_EVENT_CLOSE:
        CHECK(ev->len <= WS_CONTROL_PAYLOAD_MAX - 2);
        CHECK(ev->close_code == WS_CLOSE_NO_STATUS ? ev->len == 0
                                                   : ws_close_code_valid(ev->close_code));
        CHECK(ref_utf8_valid(ev->data, ev->len));
        log_record(&r->log, ev->type, false, ev->close_code, ev->data, ev->len);
        r->closed = true;
        break;
    default:
        CHECK(false);
    }
}

/* Feeds buf[0..len) as one read: every event until the bytes are used up, an error or a close. */
static void feed(struct run *r, struct ws_decoder *d, uint8_t *buf, size_t len)
{
    size_t pos = 0;
    unsigned idle = 0; /* calls in a row that consumed nothing */
    while (pos < len) {
        struct ws_event ev;
        ssize_t n = ws_decoder_decode(d, buf + pos, len - pos, &ev);
        if (n < 0) {
            r->error = (int)n;
            CHECK(ws_decoder_decode(d, buf + pos, len - pos, &ev) == n); /* failures stick */
            return;
        }
        CHECK((size_t)n <= len - pos);
        CHECK(ev.type != WS_EVENT_NONE || (size_t)n == len - pos);
        idle = n == 0 ? idle + 1 : 0;
        CHECK(idle <= 1); /* a zero-length data frame may use no bytes, never two calls running */
        check_event_data(r, &ev, buf + pos, (size_t)n);
        on_event(r, &ev);
        pos += (size_t)n;
        if (r->closed) {
            CHECK(ws_decoder_decode(d, buf + pos, len - pos, &ev) == WS_ERR_AFTER_CLOSE);
            return;
        }
    }
}

/* Decodes the stream in pieces (seeds) or whole (seeds NULL) into r. */
static void decode(struct run *r, const uint8_t *stream, size_t len,
                   const struct ws_decoder_config *cfg, const uint8_t *seeds)
{
    struct ws_decoder d;
    ws_decoder_init(&d, cfg);
    memset(r, 0, sizeof(*r));
    r->message = malloc(len > 0 ? len : 1);
    CHECK(r->message != NULL);
    r->max_message = cfg->max_message_size;
    r->decoder = &d;
    size_t off = 0;
    for (unsigned k = 0; off < len && r->error == 0 && !r->closed; k++) {
        size_t piece = seeds != NULL ? piece_size(seeds, k, len - off) : len - off;
        uint8_t *buf = exact_copy(stream + off, piece);
        feed(r, &d, buf, piece);
        free(buf);
        off += piece;
    }
    if (r->in_message && r->message_text)
        CHECK(ref_utf8_no_bad_byte(r->message, r->message_len));
    r->decoder = NULL;
}

static void run_free(struct run *r)
{
    free(r->log.p);
    free(r->message);
}

/* ---- the naive walker -------------------------------------------------------------------- */

/* The data message the walker was in when the stream ended. */
struct walk_tail {
    bool present;
    bool text;
    size_t len; /* bytes of it in the walker's message buffer */
};

/* Header of the frame at p[0..left): its size (0 if not all there), payload length, mask. */
static size_t walk_header(const uint8_t *p, size_t left, uint64_t *plen, const uint8_t **key)
{
    if (left < 2)
        return 0;
    size_t h = 2;
    *plen = p[1] & 0x7F;
    if (*plen >= 126) {
        size_t ext = *plen == 126 ? 2 : 8;
        if (left < 2 + ext)
            return 0;
        *plen = 0;
        for (size_t i = 0; i < ext; i++)
            *plen = *plen << 8 | p[2 + i];
        h += ext;
    }
    *key = NULL;
    if (p[1] & 0x80) {
        *key = p + h;
        h += 4;
    }
    return left >= h ? h : 0;
}

static void walk_unmask(uint8_t *dst, const uint8_t *src, size_t n, const uint8_t *key)
{
    for (size_t i = 0; i < n; i++)
        dst[i] = key != NULL ? (uint8_t)(src[i] ^ key[i % 4]) : src[i];
}

/*
 * Reads frames the plain way, checking no protocol rule: data frames are unmasked and appended
 * to the message until FIN, control frames logged whole, and the walk ends at a close frame, a
 * reserved opcode, a data frame out of fragmentation order or the end of the bytes. message and
 * scratch hold len bytes each.
 */
static void walk(struct log *log, const uint8_t *p, size_t len, uint8_t *message, uint8_t *scratch,
                 struct walk_tail *tail)
{
    size_t pos = 0, mlen = 0;
    bool in_message = false, text = false;
    for (;;) {
        uint64_t plen;
        const uint8_t *key;
        size_t h = walk_header(p + pos, len - pos, &plen, &key);
        if (h == 0)
            break;
        uint8_t op = p[pos] & 0x0F;
        bool fin = (p[pos] & 0x80) != 0;
        size_t avail = len - pos - h;
        size_t take = plen < avail ? (size_t)plen : avail;
        const uint8_t *payload = p + pos + h;
        pos += h + take;
        if (op == WS_OP_TEXT || op == WS_OP_BINARY || op == WS_OP_CONTINUATION) {
            if ((op == WS_OP_CONTINUATION) != in_message)
                break; /* no message to continue, or one left unfinished: nothing to read on */
            if (op != WS_OP_CONTINUATION) {
                in_message = true;
                text = op == WS_OP_TEXT;
                mlen = 0;
            }
            walk_unmask(message + mlen, payload, take, key);
            mlen += take;
            if (take < plen)
                break;
            if (fin) {
                log_record(log, WS_EVENT_DATA, text, 0, message, mlen);
                in_message = false;
            }
            continue;
        }
        if (take < plen || (op != WS_OP_CLOSE && op != WS_OP_PING && op != WS_OP_PONG))
            break;
        walk_unmask(scratch, payload, take, key);
        if (op != WS_OP_CLOSE) {
            log_record(log, op == WS_OP_PING ? WS_EVENT_PING : WS_EVENT_PONG, false, 0, scratch,
                       take);
            continue;
        }
        uint16_t code = take >= 2 ? (uint16_t)(scratch[0] << 8 | scratch[1]) : WS_CLOSE_NO_STATUS;
        log_record(log, WS_EVENT_CLOSE, false, code, scratch + (take >= 2 ? 2 : 0),
                   take >= 2 ? take - 2 : 0);
        break;
    }
    *tail = (struct walk_tail){in_message, text, mlen};
}

/*
 * The decoder's log is the start of the walker's (all of it when the decoder found nothing wrong).
 * After an invalid UTF-8 refusal, the message
 * being decoded (the walker's next data message, or the one it was in at the end) fails the
 * reference check.
 */
static void check_against_walker(const struct run *r, const uint8_t *stream, size_t len)
{
    struct log wlog = {0};
    uint8_t *message = malloc(len > 0 ? len : 1), *scratch = malloc(len > 0 ? len : 1);
    CHECK(message != NULL && scratch != NULL);
    struct walk_tail tail = {0};
    walk(&wlog, stream, len, message, scratch, &tail);
    CHECK(r->log.len <= wlog.len);
    CHECK(r->log.len == 0 || memcmp(r->log.p, wlog.p, r->log.len) == 0);
    if (r->error == 0)
        CHECK(r->log.len == wlog.len);
    if (r->error == WS_ERR_INVALID_UTF8) {
        size_t off = r->log.len;
        struct record rec;
        bool found = false;
        while (!found && log_next(&wlog, &off, &rec))
            found = rec.type == WS_EVENT_DATA;
        if (found) {
            CHECK(rec.text && !ref_utf8_valid(rec.payload, rec.len));
        } else {
            CHECK(tail.present && tail.text);
            CHECK(!ref_utf8_no_bad_byte(message, tail.len));
        }
    }
    free(wlog.p);
    free(message);
    free(scratch);
}

/* ---- round trip -------------------------------------------------------------------------- */

/* Masks p[0..n) with ws_mask() in two calls (the offset carries the key phase) and checks it. */
static void mask_in_two(uint8_t *p, size_t n, const uint8_t key[4], size_t split)
{
    uint8_t *plain = exact_copy(p, n);
    split = n > 0 ? split % (n + 1) : 0;
    ws_mask(p, split, key, 0);
    ws_mask(p + split, n - split, key, split);
    for (size_t i = 0; i < n; i++)
        CHECK(p[i] == (uint8_t)(plain[i] ^ key[i % 4]));
    free(plain);
}

/* Payload of the frame that says rec again (for a close: code + reason up to a NUL). */
static size_t reencode_payload(const struct record *rec, uint8_t *out)
{
    if (rec->type != WS_EVENT_CLOSE) {
        if (rec->len > 0)
            memcpy(out, rec->payload, rec->len);
        return rec->len;
    }
    char reason[WS_CONTROL_PAYLOAD_MAX + 1];
    memcpy(reason, rec->payload, rec->len);
    reason[rec->len] = '\0';
    size_t n = ws_close_payload_encode(out, rec->code, reason);
    if (rec->code == WS_CLOSE_NO_STATUS) {
        CHECK(n == 0);
    } else {
        CHECK(n == 2 + strlen(reason));
        CHECK(out[0] == rec->code >> 8 && out[1] == (rec->code & 0xFF));
        CHECK(memcmp(out + 2, reason, n - 2) == 0);
    }
    return n;
}

static enum ws_opcode opcode_of(const struct record *rec)
{
    switch (rec->type) {
    case WS_EVENT_PING:
        return WS_OP_PING;
    case WS_EVENT_PONG:
        return WS_OP_PONG;
    case WS_EVENT_CLOSE:
        return WS_OP_CLOSE;
    default:
        return rec->text ? WS_OP_TEXT : WS_OP_BINARY;
    }
}

/* One logged frame, encoded as a masked client frame, decodes to the same event. */
static void check_reencoded(const struct record *rec, const uint8_t key[4])
{
    uint8_t *frame = malloc(WS_FRAME_HEADER_MAX + rec->len + 2);
    CHECK(frame != NULL);
    uint8_t payload_buf[WS_CONTROL_PAYLOAD_MAX];
    uint8_t *payload = rec->type == WS_EVENT_DATA ? frame + WS_FRAME_HEADER_MAX : payload_buf;
    size_t plen = reencode_payload(rec, payload);
    size_t h = ws_frame_header_encode(frame, opcode_of(rec), true, plen, key);
    CHECK(h >= 6 && h <= WS_FRAME_HEADER_MAX);
    memmove(frame + h, payload, plen);
    mask_in_two(frame + h, plen, key, key[0]);

    struct ws_decoder d;
    struct ws_decoder_config cfg = {.max_message_size = plen, .expect_masked = true};
    ws_decoder_init(&d, &cfg);
    struct ws_event ev;
    ssize_t n = ws_decoder_decode(&d, frame, h + plen, &ev);
    CHECK(n == (ssize_t)(h + plen));
    CHECK(ev.type == rec->type &&
          ev.len == (rec->type == WS_EVENT_CLOSE && plen > 0 ? plen - 2 : plen));
    if (rec->type == WS_EVENT_DATA)
        CHECK(ev.message_start && ev.message_end && ev.text == rec->text);
    if (rec->type == WS_EVENT_CLOSE)
        CHECK(ev.close_code == rec->code);
    CHECK(ev.len == 0 || memcmp(ev.data, rec->payload, ev.len) == 0);
    free(frame);
}

/*
 * The encoders on values taken from the input: a close payload for any code and reason (cut to
 * 125 bytes at a character boundary, never invalid UTF-8), and a frame header for any 63-bit
 * length, in its shortest form, which the decoder reads back.
 */
static void check_encoders(const uint8_t *p, size_t n)
{
    char reason[200];
    size_t rlen = n < sizeof(reason) - 1 ? n : sizeof(reason) - 1;
    memcpy(reason, p, rlen);
    reason[rlen] = '\0';
    size_t slen = strlen(reason);
    uint16_t code = n >= 2 ? (uint16_t)(p[0] << 8 | p[1]) : WS_CLOSE_NORMAL;
    uint8_t out[WS_CONTROL_PAYLOAD_MAX];
    size_t m = ws_close_payload_encode(out, code, reason);
    if (!ws_close_code_valid(code)) {
        CHECK(m == 0);
    } else {
        CHECK(m >= 2 && m <= WS_CONTROL_PAYLOAD_MAX);
        CHECK(out[0] == code >> 8 && out[1] == (code & 0xFF));
        CHECK(m - 2 <= slen && memcmp(out + 2, reason, m - 2) == 0);
        CHECK(ref_utf8_valid(out + 2, m - 2));
        if (ref_utf8_valid((const uint8_t *)reason, slen)) /* cut only to fit, at most 3 bytes */
            CHECK(m - 2 == slen || (slen > WS_CONTROL_PAYLOAD_MAX - 2 && m + 3 >= 125));
    }

    uint64_t plen = 0;
    for (size_t i = 0; i < 8 && i < n; i++)
        plen = plen << 8 | p[i];
    plen >>= n > 8 ? p[8] % 64 : 0; /* every magnitude */
    plen &= INT64_MAX;
    const uint8_t *key = n > 9 && (p[9] & 1) ? p : NULL;
    uint8_t header[WS_FRAME_HEADER_MAX];
    size_t h = ws_frame_header_encode(header, WS_OP_BINARY, n > 9 && (p[9] & 2), plen, key);
    size_t want = 2 + (plen < 126 ? 0 : plen <= 0xFFFF ? 2 : 8) + (key != NULL ? 4 : 0);
    CHECK(h == want);
    struct ws_decoder d;
    struct ws_decoder_config cfg = {.max_message_size = SIZE_MAX, .expect_masked = key != NULL};
    ws_decoder_init(&d, &cfg);
    struct ws_event ev;
    CHECK(ws_decoder_decode(&d, header, h, &ev) == (ssize_t)h);
    CHECK(plen > 0 ? ev.type == WS_EVENT_NONE : ev.type == WS_EVENT_DATA && ev.len == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    struct ws_decoder_config cfg = {.max_message_size = message_limits[(data[0] >> 1) & 3],
                                    .expect_masked = (data[0] & 1) == 0};
    const uint8_t *seeds = data + 1;
    const uint8_t *stream = data + 5;
    size_t len = size - 5;

    struct run whole, pieces;
    decode(&whole, stream, len, &cfg, NULL);
    decode(&pieces, stream, len, &cfg, seeds);
    CHECK(whole.error == pieces.error && whole.closed == pieces.closed);
    CHECK(whole.log.len == pieces.log.len);
    CHECK(whole.log.len == 0 || memcmp(whole.log.p, pieces.log.p, whole.log.len) == 0);
    if (whole.error != 0) {
        uint16_t code = ws_error_close_code(whole.error);
        CHECK(code == WS_CLOSE_PROTOCOL_ERROR || code == WS_CLOSE_INVALID_DATA ||
              code == WS_CLOSE_TOO_BIG);
        CHECK(strcmp(ws_error_message(whole.error), "protocol error") != 0);
    }
    check_against_walker(&whole, stream, len);

    size_t off = 0;
    struct record rec;
    while (log_next(&whole.log, &off, &rec))
        check_reencoded(&rec, seeds);
    check_utf8(stream, len, seeds);
    check_encoders(stream, len);
    run_free(&whole);
    run_free(&pieces);
    return 0;
}
