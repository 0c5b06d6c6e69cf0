/*
 * test_stomp_parser.c - Check suite for stomp/parser: spec examples, every split point of a mixed
 * stream, errors and limits, escaping per version, zero-copy and linear time.
 *
 * Every chunk handed to the parser sits flush against a PROT_NONE page (guard.h) and is poisoned
 * after its feed calls, so an overread faults and a frame that kept pointing into an old chunk
 * shows up as corrupted output.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "guard.h"
#include "stomp/encode.h"
#include "stomp/parser.h"

/* A string literal with its exact length (embedded NULs included). */
#define WIRE(s) s, sizeof(s) - 1

/* ---- helpers --------------------------------------------------------------------------------- */

/* Growable byte string owned by the test. */
struct strbuf {
    char *data;
    size_t len;
    size_t cap;
};

static void sb_put(struct strbuf *sb, const void *s, size_t n)
{
    if (sb->len + n + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 256;
        while (cap < sb->len + n + 1)
            cap *= 2;
        sb->data = realloc(sb->data, cap);
        if (sb->data == NULL)
            ck_abort_msg("out of memory");
        sb->cap = cap;
    }
    if (n > 0)
        memcpy(sb->data + sb->len, s, n);
    sb->len += n;
    sb->data[sb->len] = '\0';
}

static void sb_printf(struct strbuf *sb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void sb_printf(struct strbuf *sb, const char *fmt, ...)
{
    char tmp[64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0 || n >= (int)sizeof tmp)
        ck_abort_msg("sb_printf overflow");
    sb_put(sb, tmp, (size_t)n);
}

static void sb_free(struct strbuf *sb)
{
    free(sb->data);
    *sb = (struct strbuf){0};
}

/* Appends an unambiguous rendering of f (lengths before every byte string). */
static void canon_frame(struct strbuf *sb, const struct stomp_frame *f)
{
    sb_printf(sb, "%s", stomp_command_name(f->command));
    for (size_t i = 0; i < f->header_count; i++) {
        const struct stomp_header *h = &f->headers[i];
        sb_printf(sb, "|%zu:", h->name_len);
        sb_put(sb, h->name, h->name_len);
        sb_printf(sb, "=%zu:", h->value_len);
        sb_put(sb, h->value, h->value_len);
    }
    sb_printf(sb, "|body %zu:", f->body_len);
    sb_put(sb, f->body, f->body_len);
    sb_put(sb, "\n", 1);
}

/* One guarded region reused for every chunk: data is copied flush against the PROT_NONE page. */
struct slot {
    struct guard guard;
    uint8_t *fence;
    size_t cap;
};

static void slot_init(struct slot *s, size_t cap)
{
    void *zeros = calloc(1, cap ? cap : 1);
    ck_assert_ptr_nonnull(zeros);
    s->fence = guard_copy(&s->guard, zeros, cap) + cap;
    s->cap = cap;
    free(zeros);
}

static const char *slot_place(struct slot *s, const char *src, size_t n)
{
    if (n > s->cap)
        ck_abort_msg("chunk larger than slot");
    memcpy(s->fence - n, src, n);
    return (const char *)(s->fence - n);
}

static void slot_poison(struct slot *s, size_t n)
{
    memset(s->fence - n, 0xA5, n);
}

/* What feeding a stream produced: frames and (collapsed) heart-beats, or the error. */
struct outcome {
    struct strbuf transcript;
    int error;
    char message[128];
    size_t frames;
};

/*
 * Feeds one chunk (placed in the slot) until it is consumed or an error occurs, checking the
 * feed contract on every call. Returns false after an error.
 */
static bool feed_chunk(struct stomp_parser *p, struct slot *slot, const char *src, size_t n,
                       struct outcome *out, bool *last_was_heartbeat)
{
    const char *chunk = slot_place(slot, src, n);
    size_t off = 0;
    bool ok = true;
    while (off < n) {
        struct stomp_frame f;
        enum stomp_event ev;
        ssize_t used = stomp_parser_feed(p, chunk + off, n - off, &f, &ev);
        if (used < 0) {
            out->error = (int)used;
            snprintf(out->message, sizeof out->message, "%s", stomp_parser_error_message(p));
            ok = false;
            break;
        }
        /* Plain checks here: a Check assertion per call would dominate the run time. */
        if (used == 0 || (size_t)used > n - off)
            ck_abort_msg("feed consumed %zd of %zu", used, n - off);
        if (ev == STOMP_EVENT_NONE && (size_t)used != n - off)
            ck_abort_msg("NONE after consuming %zd of %zu", used, n - off);
        if (ev == STOMP_EVENT_FRAME) {
            canon_frame(&out->transcript, &f);
            out->frames++;
        }
        if (ev == STOMP_EVENT_HEARTBEAT && !*last_was_heartbeat)
            sb_put(&out->transcript, "<heart-beat>\n", 13);
        *last_was_heartbeat = ev == STOMP_EVENT_HEARTBEAT;
        off += (size_t)used;
    }
    slot_poison(slot, n);
    return ok;
}

/*
 * Parses input cut at cuts[0..ncuts) (ascending); chunks go through slot. The parser is reset
 * first (so each run also exercises stomp_parser_reset); out's transcript buffer is reused.
 */
static void run_cuts_in(struct stomp_parser *p, struct slot *slot, const char *input, size_t len,
                        const size_t *cuts, size_t ncuts, int version, struct outcome *out)
{
    stomp_parser_reset(p);
    if (version != 0)
        stomp_parser_set_version(p, (enum stomp_version)version);
    struct strbuf keep = out->transcript;
    keep.len = 0;
    *out = (struct outcome){.transcript = keep};
    bool last_hb = false;
    size_t start = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : len;
        if (!feed_chunk(p, slot, input + start, end - start, out, &last_hb))
            break;
        start = end;
    }
}

static void run_whole(const char *input, size_t len, const struct stomp_limits *limits, int version,
                      struct outcome *out)
{
    struct slot slot;
    slot_init(&slot, len);
    struct stomp_parser *p = stomp_parser_new(limits);
    ck_assert_ptr_nonnull(p);
    out->transcript = (struct strbuf){0};
    run_cuts_in(p, &slot, input, len, NULL, 0, version, out);
    stomp_parser_free(p);
    guard_release(&slot.guard);
}

static void assert_same(const struct outcome *a, const struct outcome *b, const char *what,
                        size_t i, size_t j)
{
    bool same = a->error == b->error && a->transcript.len == b->transcript.len &&
                (a->transcript.len == 0 ||
                 memcmp(a->transcript.data, b->transcript.data, a->transcript.len) == 0) &&
                (a->error == 0 || strcmp(a->message, b->message) == 0);
    if (!same)
        ck_abort_msg("%s split %zu/%zu: error %d (%s) vs %d (%s), transcript:\n%s---\n%s", what, i,
                     j, a->error, a->message, b->error, b->message,
                     a->transcript.data ? a->transcript.data : "",
                     b->transcript.data ? b->transcript.data : "");
}

/* Every 2-way split, every 3-way split when three_way, and one octet per feed. */
static void assert_split_invariant(const char *input, size_t len, const struct stomp_limits *lim,
                                   int version, bool three_way, const char *what)
{
    struct outcome whole = {0}, part = {0};
    struct slot slot;
    slot_init(&slot, len);
    struct stomp_parser *p = stomp_parser_new(lim);
    ck_assert_ptr_nonnull(p);
    run_cuts_in(p, &slot, input, len, NULL, 0, version, &whole);
    for (size_t i = 0; i <= len; i++) {
        run_cuts_in(p, &slot, input, len, &i, 1, version, &part);
        assert_same(&whole, &part, what, i, 0);
        for (size_t j = i; three_way && j <= len; j++) {
            size_t cuts[2] = {i, j};
            run_cuts_in(p, &slot, input, len, cuts, 2, version, &part);
            assert_same(&whole, &part, what, i, j);
        }
    }
    size_t *every = malloc(len * sizeof *every);
    ck_assert_ptr_nonnull(every);
    for (size_t i = 0; i < len; i++)
        every[i] = i + 1;
    run_cuts_in(p, &slot, input, len, every, len ? len - 1 : 0, version, &part);
    assert_same(&whole, &part, what, 1, 1);
    free(every);
    sb_free(&part.transcript);
    sb_free(&whole.transcript);
    stomp_parser_free(p);
    guard_release(&slot.guard);
}

/* Parses exactly one frame from a whole buffer; the parser is returned for inspection. */
static struct stomp_parser *parse_one(const char *wire, size_t len, int version,
                                      struct stomp_frame *f, struct guard *g)
{
    struct stomp_parser *p = stomp_parser_new(NULL);
    ck_assert_ptr_nonnull(p);
    if (version != 0)
        stomp_parser_set_version(p, (enum stomp_version)version);
    const char *buf = (const char *)guard_copy(g, wire, len);
    enum stomp_event ev;
    ssize_t used = stomp_parser_feed(p, buf, len, f, &ev);
    ck_assert_msg(used == (ssize_t)len, "consumed %zd of %zu: %s", used, len,
                  stomp_parser_error_message(p));
    ck_assert_int_eq(ev, STOMP_EVENT_FRAME);
    return p;
}

static void assert_header(const struct stomp_frame *f, size_t i, const char *name,
                          const char *value, size_t value_len)
{
    ck_assert_uint_lt(i, f->header_count);
    const struct stomp_header *h = &f->headers[i];
    ck_assert_uint_eq(h->name_len, strlen(name));
    ck_assert(memcmp(h->name, name, h->name_len) == 0);
    ck_assert_uint_eq(h->value_len, value_len);
    ck_assert(memcmp(h->value, value, value_len) == 0);
}

/* ---- spec examples --------------------------------------------------------------------------- */

/* Example frames of the STOMP 1.2 specification (and the 1.1 ACK), with what they must parse to. */
struct spec_example {
    const char *wire;
    size_t len;
    enum stomp_command command;
    const char *headers[6]; /* "name:value", split at the first colon */
    const char *body;
    bool canonical; /* stomp_encode_frame() reproduces the exact bytes */
};

static const struct spec_example spec_examples[] = {
    {WIRE("CONNECT\naccept-version:1.2\nhost:stomp.github.org\n\n\0"),
     STOMP_CMD_CONNECT,
     {"accept-version:1.2", "host:stomp.github.org"},
     "",
     true},
    {WIRE("CONNECTED\nversion:1.2\n\n\0"), STOMP_CMD_CONNECTED, {"version:1.2"}, "", true},
    {WIRE("CONNECT\naccept-version:1.0,1.1,2.0\nhost:stomp.github.org\n\n\0"),
     STOMP_CMD_CONNECT,
     {"accept-version:1.0,1.1,2.0", "host:stomp.github.org"},
     "",
     true},
    {WIRE("CONNECTED\nversion:1.1\n\n\0"), STOMP_CMD_CONNECTED, {"version:1.1"}, "", true},
    {WIRE("ERROR\nversion:1.2,2.1\ncontent-type:text/plain\n\nSupported protocol versions are "
          "1.2 2.1\0"),
     STOMP_CMD_ERROR,
     {"version:1.2,2.1", "content-type:text/plain"},
     "Supported protocol versions are 1.2 2.1",
     false},
    {WIRE("SEND\ndestination:/queue/a\ncontent-type:text/plain\n\nhello queue a\n\0"),
     STOMP_CMD_SEND,
     {"destination:/queue/a", "content-type:text/plain"},
     "hello queue a\n",
     true},
    {WIRE("SEND\ndestination:/queue/a\nreceipt:message-12345\n\nhello queue a\0"),
     STOMP_CMD_SEND,
     {"destination:/queue/a", "receipt:message-12345"},
     "hello queue a",
     true},
    {WIRE("MESSAGE\nfoo:World\nfoo:Hello\n\n\0"),
     STOMP_CMD_MESSAGE,
     {"foo:World", "foo:Hello"},
     "",
     true},
    {WIRE("SUBSCRIBE\nid:0\ndestination:/queue/foo\nack:client\n\n\0"),
     STOMP_CMD_SUBSCRIBE,
     {"id:0", "destination:/queue/foo", "ack:client"},
     "",
     true},
    {WIRE("UNSUBSCRIBE\nid:0\n\n\0"), STOMP_CMD_UNSUBSCRIBE, {"id:0"}, "", true},
    {WIRE("ACK\nid:12345\ntransaction:tx1\n\n\0"),
     STOMP_CMD_ACK,
     {"id:12345", "transaction:tx1"},
     "",
     true},
    {WIRE("ACK\nsubscription:0\nmessage-id:007\ntransaction:tx1\n\n\0"),
     STOMP_CMD_ACK,
     {"subscription:0", "message-id:007", "transaction:tx1"},
     "",
     true},
    {WIRE("BEGIN\ntransaction:tx1\n\n\0"), STOMP_CMD_BEGIN, {"transaction:tx1"}, "", true},
    {WIRE("COMMIT\ntransaction:tx1\n\n\0"), STOMP_CMD_COMMIT, {"transaction:tx1"}, "", true},
    {WIRE("ABORT\ntransaction:tx1\n\n\0"), STOMP_CMD_ABORT, {"transaction:tx1"}, "", true},
    {WIRE("DISCONNECT\nreceipt:77\n\0"), STOMP_CMD_DISCONNECT, {"receipt:77"}, "", false},
    {WIRE("RECEIPT\nreceipt-id:77\n\0"), STOMP_CMD_RECEIPT, {"receipt-id:77"}, "", false},
    {WIRE("MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\ncontent-type:text/"
          "plain\n\nhello queue a\0"),
     STOMP_CMD_MESSAGE,
     {"subscription:0", "message-id:007", "destination:/queue/a", "content-type:text/plain"},
     "hello queue a",
     false},
    {WIRE("RECEIPT\nreceipt-id:message-12345\n\n\0"),
     STOMP_CMD_RECEIPT,
     {"receipt-id:message-12345"},
     "",
     true},
    /* The spec prints content-length:171 for this 170-octet body; the real count is used here. */
    {WIRE("ERROR\nreceipt-id:message-12345\ncontent-type:text/plain\ncontent-length:170\n"
          "message: malformed frame received\n\nThe message:\n-----\nMESSAGE\n"
          "destined:/queue/a\nreceipt:message-12345\n\nHello queue a!\n-----\nDid not contain "
          "a destination header, which is REQUIRED\nfor message propagation.\n\0"),
     STOMP_CMD_ERROR,
     {"receipt-id:message-12345", "content-type:text/plain", "content-length:170",
      "message: malformed frame received"},
     "The message:\n-----\nMESSAGE\ndestined:/queue/a\nreceipt:message-12345\n\nHello queue "
     "a!\n-----\nDid not contain a destination header, which is REQUIRED\nfor message "
     "propagation.\n",
     true},
};
#define SPEC_EXAMPLE_COUNT (sizeof spec_examples / sizeof spec_examples[0])

static void assert_example_fields(const struct spec_example *ex, const struct stomp_frame *f)
{
    ck_assert_int_eq(f->command, ex->command);
    size_t n = 0;
    while (n < 6 && ex->headers[n] != NULL)
        n++;
    ck_assert_uint_eq(f->header_count, n);
    for (size_t i = 0; i < n; i++) {
        const char *colon = strchr(ex->headers[i], ':');
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)(colon - ex->headers[i]), ex->headers[i]);
        assert_header(f, i, name, colon + 1, strlen(colon + 1));
    }
    ck_assert_uint_eq(f->body_len, strlen(ex->body));
    ck_assert(memcmp(f->body, ex->body, f->body_len) == 0);
}

START_TEST(test_spec_example_parses_and_reencodes)
{
    const struct spec_example *ex = &spec_examples[_i];
    struct guard g, g2;
    struct stomp_frame f, again;
    struct stomp_parser *p = parse_one(ex->wire, ex->len, 0, &f, &g);
    assert_example_fields(ex, &f);

    size_t need = stomp_encode_frame(NULL, 0, STOMP_V1_2, &f);
    char *out = malloc(need);
    ck_assert_uint_eq(stomp_encode_frame(out, need, STOMP_V1_2, &f), need);
    if (ex->canonical) {
        ck_assert_uint_eq(need, ex->len);
        ck_assert(memcmp(out, ex->wire, need) == 0);
    }
    struct stomp_parser *p2 = parse_one(out, need, 0, &again, &g2);
    ck_assert_int_eq(again.command, f.command);
    /* Re-encoding may add content-length (MESSAGE, ERROR); everything else is identical. */
    struct strbuf a = {0}, b = {0};
    canon_frame(&a, &f);
    struct stomp_frame trimmed = again;
    if (again.header_count == f.header_count + 1)
        trimmed.header_count--;
    canon_frame(&b, &trimmed);
    ck_assert_str_eq(a.data, b.data);
    sb_free(&a);
    sb_free(&b);
    free(out);
    stomp_parser_free(p2);
    stomp_parser_free(p);
    guard_release(&g2);
    guard_release(&g);
}
END_TEST

/* All spec examples back to back (with heart-beats between some) at every split. */
START_TEST(test_spec_examples_as_one_stream)
{
    struct strbuf stream = {0};
    for (size_t i = 0; i < SPEC_EXAMPLE_COUNT; i++) {
        sb_put(&stream, spec_examples[i].wire, spec_examples[i].len);
        if (i % 3 == 0)
            sb_put(&stream, "\r\n\n", 3);
    }
    struct outcome whole;
    run_whole(stream.data, stream.len, NULL, 0, &whole);
    ck_assert_int_eq(whole.error, 0);
    ck_assert_uint_eq(whole.frames, SPEC_EXAMPLE_COUNT);
    sb_free(&whole.transcript);
    assert_split_invariant(stream.data, stream.len, NULL, 0, false, "spec stream");
    sb_free(&stream);
}
END_TEST

/* ---- mixed stream at every split point ------------------------------------------------------- */

static const char mixed_stream[] =
    "\n"
    "CONNECT\r\naccept-version:1.1,1.2\r\nhost:a\\b:c\r\n\r\n\0"
    "\r\n\n"
    "SEND\ndestination:/q/a\ncontent-length:5\ncontent-type:application/octet-stream\n\nab\0cd\0\n"
    "SEND\ndes\\ctination:x\\ny\\\\z\\r\nfoo:bar\nfoo:baz\n\nplain body\0"
    "\n\n"
    "MESSAGE\r\nsubscription:0\r\nmessage-id:1\r\ndestination:/t\r\ncontent-length:0\r\n\r\n\0"
    "SEND\ndestination:/q/b\ncontent-length:3\n\n\0\0\0\0"
    "DISCONNECT\nreceipt:77\n\0"
    "\n";

START_TEST(test_mixed_stream_whole)
{
    struct outcome whole;
    run_whole(WIRE(mixed_stream), NULL, 0, &whole);
    ck_assert_int_eq(whole.error, 0);
    ck_assert_uint_eq(whole.frames, 6);
    static const char expected[] =
        "<heart-beat>\n"
        "CONNECT|14:accept-version=7:1.1,1.2|4:host=5:a\\b:c|body 0:\n"
        "<heart-beat>\n"
        "SEND|11:destination=4:/q/a|14:content-length=1:5|12:content-type=24:application/"
        "octet-stream|body 5:ab\0cd\n"
        "<heart-beat>\n"
        "SEND|12:des:tination=6:x\ny\\z\r|3:foo=3:bar|3:foo=3:baz|body 10:plain body\n"
        "<heart-beat>\n"
        "MESSAGE|12:subscription=1:0|10:message-id=1:1|11:destination=2:/t|14:content-length=1:"
        "0|body 0:\n"
        "SEND|11:destination=4:/q/b|14:content-length=1:3|body 3:\0\0\0\n"
        "DISCONNECT|7:receipt=2:77|body 0:\n"
        "<heart-beat>\n";
    ck_assert_uint_eq(whole.transcript.len, sizeof expected - 1);
    ck_assert(memcmp(whole.transcript.data, expected, sizeof expected - 1) == 0);
    sb_free(&whole.transcript);
}
END_TEST

START_TEST(test_mixed_stream_every_split)
{
    assert_split_invariant(WIRE(mixed_stream), NULL, 0, true, "mixed stream");
}
END_TEST

/* Small limits, hit exactly but not exceeded, at every split. */
START_TEST(test_limits_at_boundary_every_split)
{
    struct stomp_limits lim = {
        .max_headers = 2, .max_header_line = 16, .max_header_bytes = 40, .max_body = 4};
    /* Header part of the first frame: 5 + 18 + 16 + 1 = 40 octets; both lines are 16 long. */
    static const char input[] = "SEND\naaaaaaa:bbbbbbbb\r\nc:ddddddddddddd\n\nwxyz\0"
                                "SEND\ncontent-length:4\n\n\0\0\0\0\0";
    struct outcome whole;
    run_whole(WIRE(input), &lim, 0, &whole);
    ck_assert_msg(whole.error == 0, "%s", whole.message);
    ck_assert_uint_eq(whole.frames, 2);
    sb_free(&whole.transcript);
    assert_split_invariant(WIRE(input), &lim, 0, true, "boundary");
}
END_TEST

/* ---- errors ---------------------------------------------------------------------------------- */

struct error_case {
    const char *wire;
    size_t len;
    int version; /* 0: not set */
    struct stomp_limits limits;
    int error;
    const char *message; /* substring expected in the error message */
};

static const struct error_case error_cases[] = {
    {WIRE("FOO\n\n\0"), 0, {0}, STOMP_ERR_UNKNOWN_COMMAND, "unknown"},
    {WIRE("send\n\n\0"), 0, {0}, STOMP_ERR_UNKNOWN_COMMAND, "unknown"},
    {WIRE("SEND \n\n\0"), 0, {0}, STOMP_ERR_UNKNOWN_COMMAND, "unknown"},
    {WIRE("SEND\0"), 0, {0}, STOMP_ERR_UNKNOWN_COMMAND, "unknown"},
    {WIRE("SEND\ndestination\n\n\0"), 0, {0}, STOMP_ERR_MISSING_COLON, "colon"},
    {WIRE("SEND\n:value\n\n\0"), 0, {0}, STOMP_ERR_BAD_HEADER, "empty header name"},
    {WIRE("SEND\ndest\0ination:x\n\n\0"), 0, {0}, STOMP_ERR_BAD_HEADER, "NUL"},
    {WIRE("DISCONNECT\ncontent-length:5\n\0"), 0, {0}, STOMP_ERR_BAD_HEADER, "NUL"},
    {WIRE("SEND\ndestination:a\\tb\n\n\0"), 0, {0}, STOMP_ERR_BAD_ESCAPE, "\\t"},
    {WIRE("SEND\ndestination:ab\\\n\n\0"), 0, {0}, STOMP_ERR_BAD_ESCAPE, "escape"},
    {WIRE("SEND\nde\\st:x\n\n\0"), STOMP_V1_2, {0}, STOMP_ERR_BAD_ESCAPE, "\\s"},
    {WIRE("SEND\ndestination:a\\rb\n\n\0"), STOMP_V1_1, {0}, STOMP_ERR_BAD_ESCAPE, "\\r"},
    {WIRE("MESSAGE\ndestination:a\\xb\n\n\0"), STOMP_V1_1, {0}, STOMP_ERR_BAD_ESCAPE, "\\x"},
    {WIRE("SEND\ncontent-length:abc\n\n\0"), 0, {0}, STOMP_ERR_BAD_CONTENT_LENGTH, "number"},
    {WIRE("SEND\ncontent-length:-1\n\n\0"), 0, {0}, STOMP_ERR_BAD_CONTENT_LENGTH, "number"},
    {WIRE("SEND\ncontent-length: 5\n\nhello\0"), 0, {0}, STOMP_ERR_BAD_CONTENT_LENGTH, "number"},
    {WIRE("SEND\ncontent-length:\n\n\0"), 0, {0}, STOMP_ERR_BAD_CONTENT_LENGTH, "number"},
    {WIRE("SEND\ncontent-length:3\n\nabcd\0"), 0, {0}, STOMP_ERR_MISSING_NUL, "NUL"},
    {WIRE("SEND\ncontent-length:0\n\nx\0"), 0, {0}, STOMP_ERR_MISSING_NUL, "NUL"},
    {WIRE("\rX"), 0, {0}, STOMP_ERR_BAD_EOL, "CR"},
    {WIRE("SEND\n\n\0\r\r\n"), 0, {0}, STOMP_ERR_BAD_EOL, "CR"},
    {WIRE("SEND\na:1\nb:2\nc:3\n\n\0"),
     0,
     {.max_headers = 2},
     STOMP_ERR_TOO_MANY_HEADERS,
     "frame header count exceeds max_headers (2)"},
    {WIRE("SEND\nabcdefgh:12345678\n\n\0"),
     0,
     {.max_header_line = 16},
     STOMP_ERR_HEADER_LINE_TOO_LONG,
     "max_header_line (16)"},
    {WIRE("SUBSCRIBE\n\n\0"),
     0,
     {.max_header_line = 8},
     STOMP_ERR_HEADER_LINE_TOO_LONG,
     "max_header_line (8)"},
    {WIRE("SEND\nabcdefgh:1234567\rx\n\n\0"),
     0,
     {.max_header_line = 16},
     STOMP_ERR_HEADER_LINE_TOO_LONG,
     "max_header_line (16)"},
    {WIRE("SEND\nabcdefgh:12345678\r\n\n\0"),
     0,
     {.max_header_line = 16},
     STOMP_ERR_HEADER_LINE_TOO_LONG,
     "max_header_line (16)"},
    {WIRE("SEND\na:1\nb:2\nc:3\nd:4\ne:5\n\n\0"),
     0,
     {.max_header_bytes = 24},
     STOMP_ERR_HEADERS_TOO_LARGE,
     "max_header_bytes (24)"},
    {WIRE("SEND\n\nhello world\0"),
     0,
     {.max_body = 10},
     STOMP_ERR_BODY_TOO_LARGE,
     "frame body size exceeds max_body (10)"},
    {WIRE("SEND\ncontent-length:11\n\nhello world\0"),
     0,
     {.max_body = 10},
     STOMP_ERR_BODY_TOO_LARGE,
     "max_body (10)"},
    {WIRE("SEND\ncontent-length:99999999999999999999999999\n\n\0"),
     0,
     {0},
     STOMP_ERR_BODY_TOO_LARGE,
     "max_body (1048576)"},
};
#define ERROR_CASE_COUNT (sizeof error_cases / sizeof error_cases[0])

START_TEST(test_error_case)
{
    const struct error_case *c = &error_cases[_i];
    struct outcome whole;
    run_whole(c->wire, c->len, &c->limits, c->version, &whole);
    ck_assert_msg(whole.error == c->error, "case %d: got %d (%s), want %d", _i, whole.error,
                  whole.message, c->error);
    ck_assert_msg(strstr(whole.message, c->message) != NULL, "case %d: message \"%s\" lacks \"%s\"",
                  _i, whole.message, c->message);
    sb_free(&whole.transcript);
    assert_split_invariant(c->wire, c->len, &c->limits, c->version, false, "error case");
}
END_TEST

/* content-length above max_body fails as soon as its header line is complete. */
START_TEST(test_content_length_rejected_early)
{
    struct stomp_limits lim = {.max_body = 100};
    struct stomp_parser *p = stomp_parser_new(&lim);
    struct guard g;
    const char *buf = (const char *)guard_copy(&g, WIRE("SEND\ncontent-length:101\n"));
    struct stomp_frame f;
    enum stomp_event ev;
    ck_assert_int_eq(stomp_parser_feed(p, buf, 24, &f, &ev), STOMP_ERR_BODY_TOO_LARGE);
    ck_assert_str_eq(stomp_parser_error_message(p), "frame body size exceeds max_body (100)");
    guard_release(&g);
    stomp_parser_free(p);
}
END_TEST

/* A huge line is refused without buffering past the limit; errors stick until reset. */
START_TEST(test_limit_bounds_buffering_and_error_sticks)
{
    struct stomp_parser *p = stomp_parser_new(NULL);
    size_t len = 200000;
    char *big = malloc(len);
    memcpy(big, "SEND\n", 5);
    memset(big + 5, 'a', len - 5);
    struct stomp_frame f;
    enum stomp_event ev;
    ck_assert_int_eq(stomp_parser_feed(p, big, 5 + 100, &f, &ev), 105);
    ck_assert_int_eq(ev, STOMP_EVENT_NONE);
    ck_assert_uint_eq(stomp_parser_buffered(p), 105);
    ck_assert_int_eq(stomp_parser_feed(p, big + 105, len - 105, &f, &ev),
                     STOMP_ERR_HEADER_LINE_TOO_LONG);
    ck_assert_uint_le(stomp_parser_buffered(p), STOMP_DEFAULT_MAX_HEADER_LINE + 2 + 5);
    ck_assert_int_eq(stomp_parser_error(p), STOMP_ERR_HEADER_LINE_TOO_LONG);
    /* Sticky: even valid input now fails with the same error. */
    ck_assert_int_eq(stomp_parser_feed(p, WIRE("SEND\n\n\0"), &f, &ev),
                     STOMP_ERR_HEADER_LINE_TOO_LONG);
    stomp_parser_reset(p);
    ck_assert_int_eq(stomp_parser_error(p), 0);
    ck_assert_str_eq(stomp_parser_error_message(p), "");
    ck_assert_int_eq(stomp_parser_feed(p, WIRE("SEND\n\n\0"), &f, &ev), 7);
    ck_assert_int_eq(ev, STOMP_EVENT_FRAME);
    free(big);
    stomp_parser_free(p);
}
END_TEST

/* ---- heart-beats and events ------------------------------------------------------------------ */

START_TEST(test_heartbeat_events)
{
    struct stomp_parser *p = stomp_parser_new(NULL);
    struct stomp_frame f;
    enum stomp_event ev;
    ck_assert_int_eq(stomp_parser_feed(p, "", 0, &f, &ev), 0);
    ck_assert_int_eq(ev, STOMP_EVENT_NONE);
    ck_assert_int_eq(stomp_parser_feed(p, WIRE("\n\r\n\nSEND"), &f, &ev), 4);
    ck_assert_int_eq(ev, STOMP_EVENT_HEARTBEAT);
    ck_assert_int_eq(stomp_parser_feed(p, WIRE("\r"), &f, &ev), 1);
    ck_assert_int_eq(ev, STOMP_EVENT_NONE);
    ck_assert_int_eq(stomp_parser_feed(p, WIRE("\n"), &f, &ev), 1);
    ck_assert_int_eq(ev, STOMP_EVENT_HEARTBEAT);
    ck_assert_int_eq(stomp_parser_feed(p, WIRE("SEND\n\n\0\n\n"), &f, &ev), 7);
    ck_assert_int_eq(ev, STOMP_EVENT_FRAME);
    ck_assert_ptr_null(stomp_frame_header(&f, "destination"));
    ck_assert_int_eq(stomp_parser_feed(p, WIRE("\n\n"), &f, &ev), 2);
    ck_assert_int_eq(ev, STOMP_EVENT_HEARTBEAT);
    ck_assert_ptr_null(f.headers); /* zeroed when no frame */
    stomp_parser_free(p);
}
END_TEST

/* ---- escaping, trimming, repeated headers ---------------------------------------------------- */

START_TEST(test_unescape_all_four_in_1_2)
{
    struct guard g;
    struct stomp_frame f;
    struct stomp_parser *p =
        parse_one(WIRE("MESSAGE\nk\\c\\n\\r\\\\:v\\c\\n\\r\\\\w\n\n\0"), STOMP_V1_2, &f, &g);
    assert_header(&f, 0, "k:\n\r\\", "v:\n\r\\w", 6);
    stomp_parser_free(p);
    guard_release(&g);
}
END_TEST

START_TEST(test_unescape_1_1)
{
    struct guard g;
    struct stomp_frame f;
    struct stomp_parser *p = parse_one(WIRE("SEND\na:x\\ny\\cz\\\\\n\n\0"), STOMP_V1_1, &f, &g);
    assert_header(&f, 0, "a", "x\ny:z\\", 6);
    stomp_parser_free(p);
    guard_release(&g);
}
END_TEST

START_TEST(test_1_0_no_escapes_and_trimming)
{
    struct guard g;
    struct stomp_frame f;
    struct stomp_parser *p = parse_one(
        WIRE("SEND\ndestination: \t/q/a \nx:a\\tb\\\nempty:   \n\n\0"), STOMP_V1_0, &f, &g);
    assert_header(&f, 0, "destination", "/q/a", 4);
    assert_header(&f, 1, "x", "a\\tb\\", 5);
    assert_header(&f, 2, "empty", "", 0);
    stomp_parser_free(p);
    guard_release(&g);
}
END_TEST

START_TEST(test_1_1_and_1_2_keep_spaces)
{
    for (int v = STOMP_V1_1; v <= STOMP_V1_2; v++) {
        struct guard g;
        struct stomp_frame f;
        struct stomp_parser *p = parse_one(WIRE("SEND\ndestination: /q/a \n\n\0"), v, &f, &g);
        assert_header(&f, 0, "destination", " /q/a ", 6);
        stomp_parser_free(p);
        guard_release(&g);
    }
}
END_TEST

/* CONNECT, STOMP and CONNECTED keep backslashes literally, whatever the version. */
START_TEST(test_connect_headers_not_unescaped)
{
    static const char *const wires[] = {"CONNECT", "STOMP", "CONNECTED"};
    for (int v = 0; v <= STOMP_V1_2; v = v == 0 ? STOMP_V1_0 : v + 1) {
        for (size_t i = 0; i < 3; i++) {
            char wire[64];
            int n = snprintf(wire, sizeof wire, "%s\nlogin:a\\tb\\c:d\\\n\n", wires[i]);
            wire[n++] = '\0';
            struct guard g;
            struct stomp_frame f;
            struct stomp_parser *p = parse_one(wire, (size_t)n, v, &f, &g);
            assert_header(&f, 0, "login", "a\\tb\\c:d\\", 9);
            stomp_parser_free(p);
            guard_release(&g);
        }
    }
}
END_TEST

START_TEST(test_repeated_headers_first_wins)
{
    struct guard g;
    struct stomp_frame f;
    struct stomp_parser *p =
        parse_one(WIRE("MESSAGE\nfoo:World\nfoo:Hello\ncontent-length:2\ncontent-length:9\n\nab\0"),
                  0, &f, &g);
    ck_assert_uint_eq(f.header_count, 4);
    ck_assert(stomp_header_is(stomp_frame_header(&f, "foo"), "World"));
    ck_assert_uint_eq(f.body_len, 2); /* the first content-length decides */
    assert_header(&f, 1, "foo", "Hello", 5);
    stomp_parser_free(p);
    guard_release(&g);
}
END_TEST

/* Version switches apply to frames parsed afterwards (CONNECT first, then 1.0 rules). */
START_TEST(test_set_version_between_frames)
{
    struct stomp_parser *p = stomp_parser_new(NULL);
    struct stomp_frame f;
    enum stomp_event ev;
    static const char in[] = "CONNECT\naccept-version:1.0\n\n\0SEND\nd: a\\tb \n\n\0";
    ssize_t n = stomp_parser_feed(p, in, sizeof in - 1, &f, &ev);
    ck_assert_int_eq(ev, STOMP_EVENT_FRAME);
    stomp_parser_set_version(p, STOMP_V1_0);
    ck_assert_int_eq(stomp_parser_feed(p, in + n, sizeof in - 1 - (size_t)n, &f, &ev),
                     (ssize_t)(sizeof in - 1) - n);
    ck_assert_int_eq(ev, STOMP_EVENT_FRAME);
    assert_header(&f, 0, "d", "a\\tb", 4);
    stomp_parser_free(p);
}
END_TEST

/* Round trip: every non-NUL octet in names and values survives encode -> parse in 1.1 and 1.2. */
START_TEST(test_escape_round_trip_all_octets)
{
    char value[255];
    for (int i = 0; i < 255; i++)
        value[i] = (char)(i + 1);
    static const char name[] = "n:a\nm\r\\e";
    for (int v = STOMP_V1_1; v <= STOMP_V1_2; v++) {
        struct stomp_header h = {name, sizeof name - 1, value, sizeof value};
        struct stomp_frame in = {STOMP_CMD_MESSAGE, &h, 1, "x", 1};
        char wire[1024];
        size_t n = stomp_encode_frame(wire, sizeof wire, (enum stomp_version)v, &in);
        ck_assert_uint_lt(n, sizeof wire);
        struct guard g;
        struct stomp_frame f;
        struct stomp_parser *p = parse_one(wire, n, v, &f, &g);
        assert_header(&f, 0, name, value, sizeof value);
        stomp_parser_free(p);
        guard_release(&g);
    }
}
END_TEST

/* ---- zero-copy and buffering ----------------------------------------------------------------- */

static bool points_into(const char *ptr, const char *buf, size_t len)
{
    return ptr >= buf && ptr < buf + len;
}

START_TEST(test_zero_copy_when_frame_is_whole)
{
    struct guard g;
    struct stomp_frame f;
    static const char wire[] = "SEND\ndestination:/q\nx:a\\nb\ncontent-length:3\n\nabc\0";
    struct stomp_parser *p = stomp_parser_new(NULL);
    const char *buf = (const char *)guard_copy(&g, WIRE(wire));
    enum stomp_event ev;
    ck_assert_int_eq(stomp_parser_feed(p, buf, sizeof wire - 1, &f, &ev), sizeof wire - 1);
    ck_assert(points_into(f.body, buf, sizeof wire - 1));
    ck_assert(points_into(f.headers[0].value, buf, sizeof wire - 1));
    ck_assert(!points_into(f.headers[1].value, buf, sizeof wire - 1)); /* unescaped copy */
    assert_header(&f, 1, "x", "a\nb", 3);
    ck_assert_uint_eq(stomp_parser_buffered(p), 0);
    stomp_parser_free(p);
    guard_release(&g);
}
END_TEST

START_TEST(test_frame_spanning_feeds_is_buffered)
{
    static const char wire[] = "SEND\ndestination:/q\n\nhello\0";
    struct stomp_parser *p = stomp_parser_new(NULL);
    struct stomp_frame f;
    enum stomp_event ev;
    ck_assert_int_eq(stomp_parser_feed(p, wire, 10, &f, &ev), 10);
    ck_assert_int_eq(ev, STOMP_EVENT_NONE);
    ck_assert_uint_eq(stomp_parser_buffered(p), 10);
    char rest[64];
    memcpy(rest, wire + 10, sizeof wire - 11);
    ck_assert_int_eq(stomp_parser_feed(p, rest, sizeof wire - 11, &f, &ev), sizeof wire - 11);
    ck_assert_int_eq(ev, STOMP_EVENT_FRAME);
    memset(rest, 'X', sizeof rest); /* the frame must not point into the last input */
    ck_assert(stomp_header_is(stomp_frame_header(&f, "destination"), "/q"));
    ck_assert_uint_eq(f.body_len, 5);
    ck_assert(memcmp(f.body, "hello", 5) == 0);
    stomp_parser_free(p);
}
END_TEST

/* Between frames the parser gives its buffers back; a partial frame keeps them and survives. */
START_TEST(test_shrink_between_frames_only)
{
    static const char wire[] = "SEND\ndestination:/q\nk:a\\cb\n\nhello\0";
    struct stomp_parser *p = stomp_parser_new(NULL);
    stomp_parser_set_version(p, STOMP_V1_2);
    struct stomp_frame f;
    enum stomp_event ev;
    ck_assert_int_eq(stomp_parser_feed(p, wire, 12, &f, &ev), 12);
    ck_assert_uint_eq(stomp_parser_shrink(p), 0); /* 12 octets of a frame are held */
    char rest[64];
    memcpy(rest, wire + 12, sizeof wire - 13);
    ck_assert_int_eq(stomp_parser_feed(p, rest, sizeof wire - 13, &f, &ev), sizeof wire - 13);
    ck_assert_int_eq(ev, STOMP_EVENT_FRAME);
    ck_assert(stomp_header_is(stomp_frame_header(&f, "k"), "a:b"));
    ck_assert_uint_gt(stomp_parser_shrink(p), 0); /* the frame is done with: all freed */
    ck_assert_uint_eq(stomp_parser_shrink(p), 0);
    ck_assert_uint_eq(stomp_parser_buffered(p), 0);
    /* The next frame, again split, parses as if nothing happened. */
    ck_assert_int_eq(stomp_parser_feed(p, wire, 12, &f, &ev), 12);
    ck_assert_int_eq(stomp_parser_feed(p, rest, sizeof wire - 13, &f, &ev), sizeof wire - 13);
    ck_assert_int_eq(ev, STOMP_EVENT_FRAME);
    ck_assert(stomp_header_is(stomp_frame_header(&f, "k"), "a:b"));
    ck_assert_uint_eq(f.body_len, 5);
    stomp_parser_free(p);
}
END_TEST

/* 1 MiB bodies fed one octet per call finish in linear time (quadratic would take minutes). */
static void feed_bytewise(const char *wire, size_t len, size_t body_len)
{
    struct stomp_parser *p = stomp_parser_new(NULL);
    struct guard g;
    const char *buf = (const char *)guard_copy(&g, wire, len);
    struct stomp_frame f;
    enum stomp_event ev = STOMP_EVENT_NONE;
    clock_t start = clock();
    size_t frames = 0;
    for (size_t i = 0; i < len; i++) {
        if (stomp_parser_feed(p, buf + i, 1, &f, &ev) != 1)
            ck_abort_msg("octet %zu: %s", i, stomp_parser_error_message(p));
        if (ev == STOMP_EVENT_FRAME) {
            frames++;
            ck_assert_uint_eq(f.body_len, body_len);
            ck_assert_int_eq(f.body[body_len - 1], 'z');
        }
    }
    double seconds = (double)(clock() - start) / CLOCKS_PER_SEC;
    ck_assert_uint_eq(frames, 1);
    ck_assert_msg(seconds < 10.0, "1 MiB byte by byte took %.2f s", seconds);
    guard_release(&g);
    stomp_parser_free(p);
}

START_TEST(test_large_body_bytewise_is_linear)
{
    size_t body = STOMP_DEFAULT_MAX_BODY;
    char *wire = malloc(body + 64);
    for (int counted = 0; counted < 2; counted++) {
        int head = counted ? snprintf(wire, 64, "SEND\ncontent-length:%zu\n\n", body)
                           : snprintf(wire, 64, "SEND\n\n");
        memset(wire + head, 'z', body);
        wire[(size_t)head + body] = '\0';
        feed_bytewise(wire, (size_t)head + body + 1, body);
    }
    free(wire);
}
END_TEST

static Suite *stomp_parser_suite(void)
{
    Suite *s = suite_create("stomp_parser");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, test_spec_example_parses_and_reencodes, 0, (int)SPEC_EXAMPLE_COUNT);
    tcase_add_test(tc, test_spec_examples_as_one_stream);
    tcase_add_test(tc, test_mixed_stream_whole);
    tcase_add_test(tc, test_mixed_stream_every_split);
    tcase_add_test(tc, test_limits_at_boundary_every_split);
    tcase_add_loop_test(tc, test_error_case, 0, (int)ERROR_CASE_COUNT);
    tcase_add_test(tc, test_content_length_rejected_early);
    tcase_add_test(tc, test_limit_bounds_buffering_and_error_sticks);
    tcase_add_test(tc, test_heartbeat_events);
    tcase_add_test(tc, test_unescape_all_four_in_1_2);
    tcase_add_test(tc, test_unescape_1_1);
    tcase_add_test(tc, test_1_0_no_escapes_and_trimming);
    tcase_add_test(tc, test_1_1_and_1_2_keep_spaces);
    tcase_add_test(tc, test_connect_headers_not_unescaped);
    tcase_add_test(tc, test_repeated_headers_first_wins);
    tcase_add_test(tc, test_set_version_between_frames);
    tcase_add_test(tc, test_escape_round_trip_all_octets);
    tcase_add_test(tc, test_zero_copy_when_frame_is_whole);
    tcase_add_test(tc, test_frame_spanning_feeds_is_buffered);
    tcase_add_test(tc, test_shrink_between_frames_only);
    tcase_add_test(tc, test_large_body_bytewise_is_linear);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stomp_parser_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
