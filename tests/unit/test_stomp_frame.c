/*
 * test_stomp_frame.c - Check suite for stomp/frame: names, header lookup, validation per command
 * and version, version negotiation, heart-beat parsing and arithmetic.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "stomp/frame.h"

#define HDR(n, v)                                                                                  \
    {                                                                                              \
        n, sizeof(n) - 1, v, sizeof(v) - 1                                                         \
    }

START_TEST(test_names_round_trip)
{
    for (int c = 0; c < STOMP_COMMAND_COUNT; c++) {
        const char *name = stomp_command_name((enum stomp_command)c);
        enum stomp_command back = STOMP_CMD_ERROR;
        ck_assert_int_eq(stomp_command_from_name(name, strlen(name), &back), 0);
        ck_assert_int_eq(back, c);
    }
    enum stomp_command out;
    ck_assert_int_eq(stomp_command_from_name("SENDX", 5, &out), STOMP_ERR_UNKNOWN_COMMAND);
    ck_assert_int_eq(stomp_command_from_name("SEN", 3, &out), STOMP_ERR_UNKNOWN_COMMAND);
    ck_assert_int_eq(stomp_command_from_name("connect", 7, &out), STOMP_ERR_UNKNOWN_COMMAND);
    ck_assert_str_eq(stomp_command_name(STOMP_CMD_NACK), "NACK");
    ck_assert_str_eq(stomp_command_name((enum stomp_command)99), "?");
    ck_assert_str_eq(stomp_version_name(STOMP_V1_0), "1.0");
    ck_assert_str_eq(stomp_version_name(STOMP_V1_1), "1.1");
    ck_assert_str_eq(stomp_version_name(STOMP_V1_2), "1.2");
    ck_assert_str_eq(stomp_version_name((enum stomp_version)13), "?");
}
END_TEST

START_TEST(test_strerror_distinct)
{
    for (int e = STOMP_ERR_BAD_HEARTBEAT; e < 0; e++) {
        const char *msg = stomp_strerror(e);
        ck_assert_str_ne(msg, "unknown error");
        for (int other = e + 1; other < 0; other++)
            ck_assert_str_ne(msg, stomp_strerror(other));
    }
    ck_assert_str_eq(stomp_strerror(-1000), "unknown error");
}
END_TEST

START_TEST(test_header_lookup_first_wins)
{
    struct stomp_header h[] = {HDR("foo", "World"), HDR("foo", "Hello"), HDR("fo", "x"),
                               HDR("bar", "")};
    struct stomp_frame f = {STOMP_CMD_MESSAGE, h, 4, NULL, 0};
    ck_assert_ptr_eq(stomp_frame_header(&f, "foo"), &h[0]);
    ck_assert_ptr_eq(stomp_frame_header(&f, "fo"), &h[2]);
    ck_assert_ptr_eq(stomp_frame_header_n(&f, "foobar", 3), &h[0]);
    ck_assert_ptr_null(stomp_frame_header(&f, "f"));
    ck_assert_ptr_null(stomp_frame_header(&f, "Foo"));
    ck_assert(stomp_header_is(&h[0], "World"));
    ck_assert(!stomp_header_is(&h[0], "Worl"));
    ck_assert(!stomp_header_is(&h[0], "Worlds"));
    ck_assert(stomp_header_is(&h[3], ""));
    ck_assert(!stomp_header_is(NULL, ""));
}
END_TEST

/* ---- validation ------------------------------------------------------------------------------ */

struct validate_case {
    enum stomp_command command;
    int version;
    const char *headers; /* "name=value;" pairs; values irrelevant */
    size_t body_len;
    int expected;
    const char *message; /* exact message when expected < 0 */
};

static const struct validate_case validate_cases[] = {
    {STOMP_CMD_SEND, STOMP_V1_2, "destination", 5, 0, NULL},
    {STOMP_CMD_SEND, STOMP_V1_0, "", 0, STOMP_ERR_MISSING_HEADER,
     "SEND frame has no destination header"},
    {STOMP_CMD_SUBSCRIBE, STOMP_V1_0, "destination", 0, 0, NULL},
    {STOMP_CMD_SUBSCRIBE, STOMP_V1_1, "destination", 0, STOMP_ERR_MISSING_HEADER,
     "SUBSCRIBE frame has no id header"},
    {STOMP_CMD_SUBSCRIBE, STOMP_V1_2, "id", 0, STOMP_ERR_MISSING_HEADER,
     "SUBSCRIBE frame has no destination header"},
    {STOMP_CMD_SUBSCRIBE, STOMP_V1_2, "id destination", 0, 0, NULL},
    {STOMP_CMD_UNSUBSCRIBE, STOMP_V1_0, "destination", 0, 0, NULL},
    {STOMP_CMD_UNSUBSCRIBE, STOMP_V1_0, "id", 0, 0, NULL},
    {STOMP_CMD_UNSUBSCRIBE, STOMP_V1_0, "", 0, STOMP_ERR_MISSING_HEADER,
     "UNSUBSCRIBE frame has neither destination nor id header"},
    {STOMP_CMD_UNSUBSCRIBE, STOMP_V1_1, "destination", 0, STOMP_ERR_MISSING_HEADER,
     "UNSUBSCRIBE frame has no id header"},
    {STOMP_CMD_UNSUBSCRIBE, STOMP_V1_2, "id", 0, 0, NULL},
    {STOMP_CMD_ACK, STOMP_V1_2, "id", 0, 0, NULL},
    {STOMP_CMD_ACK, STOMP_V1_2, "message-id subscription", 0, STOMP_ERR_MISSING_HEADER,
     "ACK frame has no id header"},
    {STOMP_CMD_ACK, STOMP_V1_1, "message-id subscription", 0, 0, NULL},
    {STOMP_CMD_ACK, STOMP_V1_1, "message-id", 0, STOMP_ERR_MISSING_HEADER,
     "ACK frame has no subscription header"},
    {STOMP_CMD_ACK, STOMP_V1_1, "id subscription", 0, STOMP_ERR_MISSING_HEADER,
     "ACK frame has no message-id header"},
    {STOMP_CMD_ACK, STOMP_V1_0, "message-id", 0, 0, NULL},
    {STOMP_CMD_ACK, STOMP_V1_0, "id", 0, STOMP_ERR_MISSING_HEADER,
     "ACK frame has no message-id header"},
    {STOMP_CMD_NACK, STOMP_V1_0, "message-id", 0, STOMP_ERR_UNSUPPORTED_COMMAND,
     "NACK is not a STOMP 1.0 command"},
    {STOMP_CMD_NACK, STOMP_V1_1, "message-id subscription", 0, 0, NULL},
    {STOMP_CMD_NACK, STOMP_V1_1, "subscription", 0, STOMP_ERR_MISSING_HEADER,
     "NACK frame has no message-id header"},
    {STOMP_CMD_NACK, STOMP_V1_2, "id", 0, 0, NULL},
    {STOMP_CMD_NACK, STOMP_V1_2, "", 0, STOMP_ERR_MISSING_HEADER, "NACK frame has no id header"},
    {STOMP_CMD_BEGIN, STOMP_V1_0, "transaction", 0, 0, NULL},
    {STOMP_CMD_BEGIN, STOMP_V1_2, "", 0, STOMP_ERR_MISSING_HEADER,
     "BEGIN frame has no transaction header"},
    {STOMP_CMD_COMMIT, STOMP_V1_1, "", 0, STOMP_ERR_MISSING_HEADER,
     "COMMIT frame has no transaction header"},
    {STOMP_CMD_ABORT, STOMP_V1_0, "", 0, STOMP_ERR_MISSING_HEADER,
     "ABORT frame has no transaction header"},
    {STOMP_CMD_ABORT, STOMP_V1_2, "transaction", 0, 0, NULL},
    {STOMP_CMD_CONNECT, STOMP_V1_0, "", 0, 0, NULL},
    {STOMP_CMD_CONNECT, STOMP_V1_1, "accept-version", 0, STOMP_ERR_MISSING_HEADER,
     "CONNECT frame has no host header"},
    {STOMP_CMD_CONNECT, STOMP_V1_2, "host", 0, STOMP_ERR_MISSING_HEADER,
     "CONNECT frame has no accept-version header"},
    {STOMP_CMD_CONNECT, STOMP_V1_2, "accept-version host", 0, 0, NULL},
    {STOMP_CMD_STOMP, STOMP_V1_0, "accept-version", 0, STOMP_ERR_MISSING_HEADER,
     "STOMP frame has no host header"},
    {STOMP_CMD_STOMP, STOMP_V1_0, "host accept-version", 0, 0, NULL},
    {STOMP_CMD_DISCONNECT, STOMP_V1_0, "", 0, 0, NULL},
    {STOMP_CMD_DISCONNECT, STOMP_V1_2, "receipt", 3, STOMP_ERR_BODY_NOT_ALLOWED,
     "only SEND, MESSAGE and ERROR frames may have a body"},
    {STOMP_CMD_SUBSCRIBE, STOMP_V1_2, "id destination", 1, STOMP_ERR_BODY_NOT_ALLOWED,
     "only SEND, MESSAGE and ERROR frames may have a body"},
    {STOMP_CMD_CONNECTED, STOMP_V1_0, "", 0, 0, NULL},
    {STOMP_CMD_CONNECTED, STOMP_V1_2, "", 0, STOMP_ERR_MISSING_HEADER,
     "CONNECTED frame has no version header"},
    {STOMP_CMD_MESSAGE, STOMP_V1_0, "destination message-id", 4, 0, NULL},
    {STOMP_CMD_MESSAGE, STOMP_V1_1, "destination message-id", 4, STOMP_ERR_MISSING_HEADER,
     "MESSAGE frame has no subscription header"},
    {STOMP_CMD_MESSAGE, STOMP_V1_2, "destination subscription", 4, STOMP_ERR_MISSING_HEADER,
     "MESSAGE frame has no message-id header"},
    {STOMP_CMD_RECEIPT, STOMP_V1_2, "", 0, STOMP_ERR_MISSING_HEADER,
     "RECEIPT frame has no receipt-id header"},
    {STOMP_CMD_RECEIPT, STOMP_V1_2, "receipt-id", 0, 0, NULL},
    {STOMP_CMD_ERROR, STOMP_V1_2, "", 10, 0, NULL},
};
#define VALIDATE_CASE_COUNT (sizeof validate_cases / sizeof validate_cases[0])

START_TEST(test_validate_case)
{
    const struct validate_case *c = &validate_cases[_i];
    struct stomp_header headers[8];
    char names[128];
    snprintf(names, sizeof names, "%s", c->headers);
    size_t n = 0;
    for (char *save = NULL, *tok = strtok_r(names, " ", &save); tok != NULL;
         tok = strtok_r(NULL, " ", &save))
        headers[n++] = (struct stomp_header){tok, strlen(tok), "v", 1};
    struct stomp_frame f = {c->command, headers, n, "0123456789", c->body_len};
    const char *message = "unset";
    int rc = stomp_frame_validate(&f, (enum stomp_version)c->version, &message);
    ck_assert_msg(rc == c->expected, "case %d (%s %d): got %d, want %d", _i,
                  stomp_command_name(c->command), c->version, rc, c->expected);
    if (c->expected < 0)
        ck_assert_str_eq(message, c->message);
    else
        ck_assert_ptr_null(message);
    ck_assert_int_eq(stomp_frame_validate(&f, (enum stomp_version)c->version, NULL), rc);
}
END_TEST

/* ---- version negotiation --------------------------------------------------------------------- */

struct negotiate_case {
    const char *accept; /* NULL: header absent */
    unsigned mask;
    int expected;
};

#define B(v) STOMP_VERSION_BIT(v)

static const struct negotiate_case negotiate_cases[] = {
    {NULL, STOMP_VERSIONS_ALL, STOMP_V1_0},
    {NULL, B(STOMP_V1_1) | B(STOMP_V1_2), STOMP_ERR_NO_COMMON_VERSION},
    {"1.2", STOMP_VERSIONS_ALL, STOMP_V1_2},
    {"1.0,1.1,2.0", STOMP_VERSIONS_ALL, STOMP_V1_1},
    {"1.0,1.1,1.2", STOMP_VERSIONS_ALL, STOMP_V1_2},
    {"1.2,1.0", STOMP_VERSIONS_ALL, STOMP_V1_2},
    {"1.0, 1.1 ", STOMP_VERSIONS_ALL, STOMP_V1_1},
    {"1.0,1.1,1.2", B(STOMP_V1_0) | B(STOMP_V1_1), STOMP_V1_1},
    {"1.2", B(STOMP_V1_0) | B(STOMP_V1_1), STOMP_ERR_NO_COMMON_VERSION},
    {"2.0,2.1", STOMP_VERSIONS_ALL, STOMP_ERR_NO_COMMON_VERSION},
    {"", STOMP_VERSIONS_ALL, STOMP_ERR_NO_COMMON_VERSION},
    {"1.", STOMP_VERSIONS_ALL, STOMP_ERR_NO_COMMON_VERSION},
    {"1.22", STOMP_VERSIONS_ALL, STOMP_ERR_NO_COMMON_VERSION},
    {"11", STOMP_VERSIONS_ALL, STOMP_ERR_NO_COMMON_VERSION},
    {",,1.0,", STOMP_VERSIONS_ALL, STOMP_V1_0},
    {"1.1", 0, STOMP_ERR_NO_COMMON_VERSION},
};
#define NEGOTIATE_CASE_COUNT (sizeof negotiate_cases / sizeof negotiate_cases[0])

START_TEST(test_negotiate_case)
{
    const struct negotiate_case *c = &negotiate_cases[_i];
    int rc;
    if (c->accept == NULL) {
        rc = stomp_negotiate_version(NULL, 0, c->mask);
    } else {
        /* Counted, not NUL-terminated: the value sits flush against a guard page. */
        struct guard g;
        size_t len = strlen(c->accept);
        const char *v = (const char *)guard_copy(&g, c->accept, len);
        rc = stomp_negotiate_version(v, len, c->mask);
        guard_release(&g);
    }
    ck_assert_msg(rc == c->expected, "case %d \"%s\": got %d, want %d", _i,
                  c->accept ? c->accept : "(absent)", rc, c->expected);
}
END_TEST

START_TEST(test_versions_list)
{
    char out[32];
    ck_assert_uint_eq(stomp_versions_list(out, sizeof out, STOMP_VERSIONS_ALL), 11);
    ck_assert_str_eq(out, "1.0,1.1,1.2");
    ck_assert_uint_eq(stomp_versions_list(out, sizeof out, B(STOMP_V1_2) | B(STOMP_V1_0)), 7);
    ck_assert_str_eq(out, "1.0,1.2");
    ck_assert_uint_eq(stomp_versions_list(out, sizeof out, 0), 0);
    ck_assert_str_eq(out, "");
    memset(out, 'X', sizeof out);
    ck_assert_uint_eq(stomp_versions_list(out, 4, STOMP_VERSIONS_ALL), 11);
    ck_assert(memcmp(out, "1.0,X", 5) == 0); /* nothing written past cap */
}
END_TEST

/* ---- heart-beat ------------------------------------------------------------------------------ */

struct heartbeat_case {
    const char *value;
    int expected;
    unsigned x, y;
};

static const struct heartbeat_case heartbeat_cases[] = {
    {"0,0", 0, 0, 0},
    {"10000,5000", 0, 10000, 5000},
    {"4294967295,1", 0, 4294967295u, 1},
    {"007,08", 0, 7, 8},
    {"4294967296,1", STOMP_ERR_BAD_HEARTBEAT, 0, 0},
    {"", STOMP_ERR_BAD_HEARTBEAT, 0, 0},
    {",", STOMP_ERR_BAD_HEARTBEAT, 0, 0},
    {"1,", STOMP_ERR_BAD_HEARTBEAT, 0, 0},
    {",1", STOMP_ERR_BAD_HEARTBEAT, 0, 0},
    {"1", STOMP_ERR_BAD_HEARTBEAT, 0, 0},
    {"1,2,3", STOMP_ERR_BAD_HEARTBEAT, 0, 0},
    {" 1,2", STOMP_ERR_BAD_HEARTBEAT, 0, 0},
    {"1, 2", STOMP_ERR_BAD_HEARTBEAT, 0, 0},
    {"-1,2", STOMP_ERR_BAD_HEARTBEAT, 0, 0},
    {"+1,2", STOMP_ERR_BAD_HEARTBEAT, 0, 0},
    {"1,2x", STOMP_ERR_BAD_HEARTBEAT, 0, 0},
    {"1.5,2", STOMP_ERR_BAD_HEARTBEAT, 0, 0},
};
#define HEARTBEAT_CASE_COUNT (sizeof heartbeat_cases / sizeof heartbeat_cases[0])

START_TEST(test_heartbeat_parse_case)
{
    const struct heartbeat_case *c = &heartbeat_cases[_i];
    struct guard g;
    size_t len = strlen(c->value);
    const char *v = (const char *)guard_copy(&g, c->value, len);
    unsigned x = 12345, y = 67890;
    int rc = stomp_heartbeat_parse(v, len, &x, &y);
    ck_assert_msg(rc == c->expected, "case %d \"%s\": got %d", _i, c->value, rc);
    if (rc == 0) {
        ck_assert_uint_eq(x, c->x);
        ck_assert_uint_eq(y, c->y);
    } else {
        ck_assert_uint_eq(x, 12345); /* outputs untouched on error */
        ck_assert_uint_eq(y, 67890);
    }
    guard_release(&g);
}
END_TEST

START_TEST(test_heartbeat_negotiate)
{
    static const unsigned cases[][6] = {
        /* cx, cy, sx, sy -> send, expect */
        {0, 0, 10000, 10000, 0, 0},
        {10000, 10000, 0, 0, 0, 0},
        {5000, 20000, 10000, 10000, 20000, 10000},
        {30000, 1000, 10000, 10000, 10000, 30000},
        {1000, 0, 5000, 2000, 0, 2000},
        {0, 1000, 5000, 2000, 5000, 0},
        {4000, 4000, 4000, 4000, 4000, 4000},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const unsigned *c = cases[i];
        unsigned send = 99, expect = 99;
        stomp_heartbeat_negotiate(c[0], c[1], c[2], c[3], &send, &expect);
        ck_assert_msg(send == c[4] && expect == c[5], "case %zu: send %u expect %u", i, send,
                      expect);
    }
}
END_TEST

static Suite *stomp_frame_suite(void)
{
    Suite *s = suite_create("stomp_frame");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_names_round_trip);
    tcase_add_test(tc, test_strerror_distinct);
    tcase_add_test(tc, test_header_lookup_first_wins);
    tcase_add_loop_test(tc, test_validate_case, 0, (int)VALIDATE_CASE_COUNT);
    tcase_add_loop_test(tc, test_negotiate_case, 0, (int)NEGOTIATE_CASE_COUNT);
    tcase_add_test(tc, test_versions_list);
    tcase_add_loop_test(tc, test_heartbeat_parse_case, 0, (int)HEARTBEAT_CASE_COUNT);
    tcase_add_test(tc, test_heartbeat_negotiate);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(stomp_frame_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
