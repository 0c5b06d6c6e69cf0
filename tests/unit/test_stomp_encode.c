/*
 * test_stomp_encode.c - Check suite for stomp/encode: escaping per version and command, the
 * snprintf-like size contract (output buffers flush against a PROT_NONE page), content-length
 * rules of the head, and the version-negotiation ERROR frame.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "stomp/encode.h"
#include "stomp/parser.h"

#define HDR(n, v)                                                                                  \
    {                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                         \
    }

/* ---- header escaping ------------------------------------------------------------------------- */

struct escape_case {
    int version;
    enum stomp_command command;
    const char *name;
    const char *value;
    const char *expected;
};

static const struct escape_case escape_cases[] = {
    {STOMP_V1_2, STOMP_CMD_MESSAGE, "plain", "value", "plain:value\n"},
    {STOMP_V1_2, STOMP_CMD_MESSAGE, "a:b", "c\nd\re\\f:", "a\\cb:c\\nd\\re\\\\f\\c\n"},
    {STOMP_V1_1, STOMP_CMD_MESSAGE, "a:b", "c\nd\re\\f:", "a\\cb:c\\nd\re\\\\f\\c\n"},
    {STOMP_V1_0, STOMP_CMD_MESSAGE, "a:b", "c\nd\re\\f:", "a_b:c d e\\f:\n"},
    {STOMP_V1_2, STOMP_CMD_CONNECTED, "a:b", "c\nd\re\\f:", "a_b:c d e\\f:\n"},
    {STOMP_V1_2, STOMP_CMD_CONNECT, "login", "x\\y:z", "login:x\\y:z\n"},
    {STOMP_V1_1, STOMP_CMD_STOMP, "host", "h:1", "host:h:1\n"},
    {STOMP_V1_2, STOMP_CMD_ERROR, "message", "bad \\t", "message:bad \\\\t\n"},
    {STOMP_V1_2, STOMP_CMD_RECEIPT, "receipt-id", "", "receipt-id:\n"},
};
#define ESCAPE_CASE_COUNT (sizeof escape_cases / sizeof escape_cases[0])

START_TEST(test_encode_header_case)
{
    const struct escape_case *c = &escape_cases[_i];
    enum stomp_version v = (enum stomp_version)c->version;
    size_t nlen = strlen(c->name), vlen = strlen(c->value), want = strlen(c->expected);
    char out[128];
    memset(out, 'X', sizeof out);
    size_t n = stomp_encode_header(out, sizeof out, v, c->command, c->name, nlen, c->value, vlen);
    ck_assert_uint_eq(n, want);
    ck_assert_msg(memcmp(out, c->expected, want) == 0, "case %d: got \"%.*s\"", _i, (int)n, out);
    ck_assert_int_eq(out[n], 'X'); /* no terminator or stray octet written */
    ck_assert_uint_eq(stomp_escaped_len(v, c->command, c->name, nlen) + 1 +
                          stomp_escaped_len(v, c->command, c->value, vlen) + 1,
                      want);
}
END_TEST

/*
 * For every capacity below the size needed, the encoder returns the same size and writes nothing
 * past cap (the output ends at a PROT_NONE page); at the exact size the output is complete.
 */
START_TEST(test_encode_header_every_capacity)
{
    static const char name[] = "na:me", value[] = "v\\a\nl\rue:";
    size_t need = stomp_encode_header(NULL, 0, STOMP_V1_2, STOMP_CMD_MESSAGE, name, 5, value, 9);
    ck_assert_uint_eq(need, 5 + 1 + 1 + 9 + 4 + 1);
    for (size_t cap = 0; cap <= need; cap++) {
        struct guard g;
        char *out = (char *)guard_copy(&g, "", 0) - cap;
        size_t n = stomp_encode_header(out, cap, STOMP_V1_2, STOMP_CMD_MESSAGE, name, 5, value, 9);
        ck_assert_uint_eq(n, need);
        if (cap == need)
            ck_assert(memcmp(out, "na\\cme:v\\\\a\\nl\\rue\\c\n", need) == 0);
        guard_release(&g);
    }
}
END_TEST

/* ---- heads and frames ------------------------------------------------------------------------ */

/* Encodes f into a fresh buffer whose end is flush against a guard page; returns the text. */
static char *encode_head_str(const struct stomp_frame *f, enum stomp_version v, bool add_cl)
{
    size_t need = stomp_encode_head(NULL, 0, v, f, add_cl);
    struct guard g;
    char *out = (char *)guard_copy(&g, "", 0) - need;
    ck_assert_uint_eq(stomp_encode_head(out, need, v, f, add_cl), need);
    char *copy = malloc(need + 1);
    memcpy(copy, out, need);
    copy[need] = '\0';
    guard_release(&g);
    return copy;
}

struct head_case {
    enum stomp_command command;
    bool with_length_header;
    const char *body;
    size_t body_len;
    bool add_cl;
    const char *expected;
};

static const struct head_case head_cases[] = {
    {STOMP_CMD_MESSAGE, false, "hello", 5, false, "MESSAGE\ndestination:/q\ncontent-length:5\n\n"},
    {STOMP_CMD_MESSAGE, true, "hello", 5, false, "MESSAGE\ndestination:/q\ncontent-length:5\n\n"},
    {STOMP_CMD_MESSAGE, true, "hello", 5, true, "MESSAGE\ndestination:/q\ncontent-length:5\n\n"},
    {STOMP_CMD_MESSAGE, false, "", 0, false, "MESSAGE\ndestination:/q\n\n"},
    {STOMP_CMD_ERROR, false, "oops", 4, false, "ERROR\ndestination:/q\ncontent-length:4\n\n"},
    {STOMP_CMD_SEND, false, "hello", 5, false, "SEND\ndestination:/q\n\n"},
    {STOMP_CMD_SEND, false, "hello", 5, true, "SEND\ndestination:/q\ncontent-length:5\n\n"},
    {STOMP_CMD_SEND, false, "he\0lo", 5, false, "SEND\ndestination:/q\ncontent-length:5\n\n"},
    {STOMP_CMD_RECEIPT, false, "", 0, true, "RECEIPT\ndestination:/q\ncontent-length:0\n\n"},
};
#define HEAD_CASE_COUNT (sizeof head_cases / sizeof head_cases[0])

START_TEST(test_encode_head_case)
{
    const struct head_case *c = &head_cases[_i];
    struct stomp_header h[] = {HDR("destination", "/q"), HDR("content-length", "5")};
    struct stomp_frame f = {c->command, h, c->with_length_header ? 2 : 1, c->body, c->body_len};
    char *head = encode_head_str(&f, STOMP_V1_2, c->add_cl);
    ck_assert_str_eq(head, c->expected);
    free(head);
}
END_TEST

/* frame = head (as added unasked) + body + NUL, and it parses back to the same frame. */
START_TEST(test_encode_frame_is_head_body_nul)
{
    static const char body[] = "bin\0ary";
    struct stomp_header h[] = {HDR("destination", "/t/x"), HDR("subscription", "s:1"),
                               HDR("message-id", "m\n2")};
    struct stomp_frame f = {STOMP_CMD_MESSAGE, h, 3, body, sizeof body - 1};
    for (int v = STOMP_V1_0; v <= STOMP_V1_2; v++) {
        char head[256], frame[256];
        size_t hn = stomp_encode_head(head, sizeof head, (enum stomp_version)v, &f, false);
        size_t fn = stomp_encode_frame(frame, sizeof frame, (enum stomp_version)v, &f);
        ck_assert_uint_eq(fn, hn + f.body_len + 1);
        ck_assert(memcmp(frame, head, hn) == 0);
        ck_assert(memcmp(frame + hn, body, f.body_len) == 0);
        ck_assert_int_eq(frame[fn - 1], '\0');

        struct stomp_parser *p = stomp_parser_new(NULL);
        stomp_parser_set_version(p, (enum stomp_version)v);
        struct stomp_frame back;
        enum stomp_event ev;
        ck_assert_int_eq(stomp_parser_feed(p, frame, fn, &back, &ev), (ssize_t)fn);
        ck_assert_int_eq(ev, STOMP_EVENT_FRAME);
        ck_assert_uint_eq(back.body_len, f.body_len);
        ck_assert(memcmp(back.body, body, f.body_len) == 0);
        ck_assert(stomp_header_is(stomp_frame_header(&back, "subscription"), "s:1"));
        /* 1.0 cannot carry LF in a value: it is replaced so the framing survives. */
        ck_assert(stomp_header_is(stomp_frame_header(&back, "message-id"),
                                  v == STOMP_V1_0 ? "m 2" : "m\n2"));
        stomp_parser_free(p);
    }
}
END_TEST

/* The exact bytes of the spec's MESSAGE example, with the content-length we add. */
START_TEST(test_encode_spec_message)
{
    struct stomp_header h[] = {HDR("subscription", "0"), HDR("message-id", "007"),
                               HDR("destination", "/queue/a"), HDR("content-type", "text/plain")};
    struct stomp_frame f = {STOMP_CMD_MESSAGE, h, 4, "hello queue a", 13};
    static const char want[] = "MESSAGE\nsubscription:0\nmessage-id:007\ndestination:/queue/a\n"
                               "content-type:text/plain\ncontent-length:13\n\nhello queue a";
    char out[256];
    size_t n = stomp_encode_frame(out, sizeof out, STOMP_V1_2, &f);
    ck_assert_uint_eq(n, sizeof want); /* sizeof counts the literal's NUL: the frame's NUL */
    ck_assert(memcmp(out, want, sizeof want) == 0);
}
END_TEST

/* A frame with no headers and no body is just the command, blank line and NUL. */
START_TEST(test_encode_minimal_frame)
{
    struct stomp_frame f = {STOMP_CMD_DISCONNECT, NULL, 0, NULL, 0};
    char out[32];
    size_t n = stomp_encode_frame(out, sizeof out, STOMP_V1_1, &f);
    ck_assert_uint_eq(n, 13);
    ck_assert(memcmp(out, "DISCONNECT\n\n\0", 13) == 0);
}
END_TEST

START_TEST(test_version_error_frame)
{
    static const struct {
        unsigned mask;
        const char *list;
        const char *body;
    } cases[] = {
        {STOMP_VERSIONS_ALL, "1.0,1.1,1.2", "Supported protocol versions are 1.0 1.1 1.2"},
        {STOMP_VERSION_BIT(STOMP_V1_1) | STOMP_VERSION_BIT(STOMP_V1_2), "1.1,1.2",
         "Supported protocol versions are 1.1 1.2"},
    };
    for (size_t i = 0; i < 2; i++) {
        char out[256];
        size_t n = stomp_encode_version_error(out, sizeof out, cases[i].mask);
        ck_assert_uint_lt(n, sizeof out);
        ck_assert_uint_eq(stomp_encode_version_error(NULL, 0, cases[i].mask), n);
        struct stomp_parser *p = stomp_parser_new(NULL);
        struct stomp_frame f;
        enum stomp_event ev;
        ck_assert_int_eq(stomp_parser_feed(p, out, n, &f, &ev), (ssize_t)n);
        ck_assert_int_eq(f.command, STOMP_CMD_ERROR);
        ck_assert(stomp_header_is(stomp_frame_header(&f, "version"), cases[i].list));
        ck_assert(stomp_header_is(stomp_frame_header(&f, "content-type"), "text/plain"));
        ck_assert_ptr_nonnull(stomp_frame_header(&f, "message"));
        ck_assert_uint_eq(f.body_len, strlen(cases[i].body));
        ck_assert(memcmp(f.body, cases[i].body, f.body_len) == 0);
        ck_assert_int_eq(stomp_frame_validate(&f, STOMP_V1_2, NULL), 0);
        stomp_parser_free(p);
    }
}
END_TEST

static Suite *stomp_encode_suite(void)
{
    Suite *s = suite_create("stomp_encode");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_encode_header_case, 0, (int)ESCAPE_CASE_COUNT);
    tcase_add_test(tc, test_encode_header_every_capacity);
    tcase_add_loop_test(tc, test_encode_head_case, 0, (int)HEAD_CASE_COUNT);
    tcase_add_test(tc, test_encode_frame_is_head_body_nul);
    tcase_add_test(tc, test_encode_spec_message);
    tcase_add_test(tc, test_encode_minimal_frame);
    tcase_add_test(tc, test_version_error_frame);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stomp_encode_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
