/*
 * test_slots.c - Check suite for cluster/slots: hash slots (the cluster specification's vectors),
 * CLUSTER SLOTS replies of every malformed shape (built by feeding RESP text to hiredis' reader,
 * as they arrive from the network), and MOVED / ASK redirections. Redirection texts sit flush
 * against an unreadable page (guard.h), so a read past their end faults.
 */
#include <check.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/slots.h"
#include "guard.h"

/* ---- hash slots ---------------------------------------------------------------------------- */

static uint16_t slot_of(const char *key)
{
    struct guard g;
    size_t len = strlen(key);
    const char *copy = (const char *)guard_copy(&g, key, len);
    uint16_t slot = slots_key_slot(copy, len);
    guard_release(&g);
    return slot;
}

START_TEST(test_crc16_vector)
{
    /* CRC16("123456789") = 0x31C3, so its slot is 0x31C3 mod 16384. */
    ck_assert_uint_eq(slot_of("123456789"), 0x31C3 & 16383);
    ck_assert_uint_eq(slot_of("foo"), 12182);
    ck_assert_uint_eq(slot_of("bar"), 5061);
    ck_assert_uint_eq(slot_of(""), 0);
}
END_TEST

START_TEST(test_hash_tags)
{
    ck_assert_uint_eq(slot_of("{user1000}.following"), slot_of("{user1000}.followers"));
    ck_assert_uint_eq(slot_of("{user1000}.following"), slot_of("user1000"));
    /* "{}" is no tag: the whole key is hashed. */
    ck_assert_uint_eq(slot_of("foo{}{bar}"), slots_key_slot("foo{}{bar}", 10));
    ck_assert_uint_ne(slot_of("foo{}{bar}"), slot_of("bar"));
    /* The tag ends at the first '}' after the first '{'. */
    ck_assert_uint_eq(slot_of("foo{{bar}}zap"), slot_of("{bar"));
    ck_assert_uint_eq(slot_of("foo{bar}{zap}"), slot_of("bar"));
    ck_assert_uint_eq(slot_of("{a"), slots_key_slot("{a", 2));
    ck_assert_uint_eq(slot_of("x}{y}"), slot_of("y"));

    size_t at = 99, n = 99;
    ck_assert(!slots_hash_tag("abc", 3, &at, &n));
    ck_assert(!slots_hash_tag("a{}b", 4, &at, &n));
    ck_assert(!slots_hash_tag("a{b", 3, &at, &n));
    ck_assert(!slots_hash_tag("", 0, &at, &n));
    ck_assert(slots_hash_tag("a{bc}d", 6, &at, &n));
    ck_assert_uint_eq(at, 2);
    ck_assert_uint_eq(n, 2);
    /* Bytes after len are not looked at: the '}' is outside the key. */
    ck_assert(!slots_hash_tag("a{b}", 3, &at, &n));
    /* Any bytes, NULs included. */
    ck_assert(slots_hash_tag("{\0}", 3, &at, &n));
    ck_assert_uint_eq(n, 1);
}
END_TEST

/* ---- CLUSTER SLOTS ------------------------------------------------------------------------- */

/* The reply RESP text parses to (the test frees it with freeReplyObject). */
static redisReply *reply_from(const char *resp)
{
    redisReader *r = redisReaderCreate();
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(redisReaderFeed(r, resp, strlen(resp)), REDIS_OK);
    void *reply = NULL;
    ck_assert_int_eq(redisReaderGetReply(r, &reply), REDIS_OK);
    ck_assert_msg(reply != NULL, "incomplete RESP in the test: %s", resp);
    redisReaderFree(r);
    return reply;
}

static struct slots_map map; /* 16384 owners: too big for the stack of every test */

static int parse_map(const char *resp, const char *fallback, char *err, size_t err_len)
{
    redisReply *reply = reply_from(resp);
    int rc = slots_map_from_reply(&map, reply, fallback, err, err_len);
    freeReplyObject(reply);
    return rc;
}

/* Three masters as a Redis 7 cluster answers, with replicas and extra fields. */
static const char three_masters[] = "*3\r\n"
                                    "*4\r\n:0\r\n:5460\r\n"
                                    "*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$4\r\nid-a\r\n"
                                    "*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$4\r\nid-d\r\n"
                                    "*3\r\n:5461\r\n:10922\r\n"
                                    "*4\r\n$9\r\n127.0.0.1\r\n:7001\r\n$4\r\nid-b\r\n*0\r\n"
                                    "*3\r\n:10923\r\n:16383\r\n"
                                    "*3\r\n$3\r\n::1\r\n:7002\r\n$4\r\nid-c\r\n";

START_TEST(test_map_valid)
{
    char err[200] = "";
    ck_assert_int_eq(parse_map(three_masters, "10.0.0.1", err, sizeof(err)), CLUSTER_SLOTS);
    ck_assert_uint_eq(map.node_count, 3);
    ck_assert_str_eq(slots_map_node(&map, 0)->host, "127.0.0.1");
    ck_assert_uint_eq(slots_map_node(&map, 5460)->port, 7000);
    ck_assert_uint_eq(slots_map_node(&map, 5461)->port, 7001);
    ck_assert_uint_eq(slots_map_node(&map, 12182)->port, 7002);
    ck_assert_str_eq(slots_map_node(&map, 16383)->host, "::1");
    ck_assert_ptr_null(slots_map_node(&map, CLUSTER_SLOTS));
}
END_TEST

START_TEST(test_map_partial_and_dedup)
{
    char err[200] = "";
    /* Two ranges of one master, a hole between them; "" and "?" are the fallback host. */
    const char *resp = "*3\r\n"
                       "*3\r\n:0\r\n:9\r\n*2\r\n$0\r\n\r\n:7000\r\n"
                       "*3\r\n:20\r\n:29\r\n*2\r\n$1\r\n?\r\n:7000\r\n"
                       "*3\r\n:30\r\n:30\r\n*2\r\n$0\r\n\r\n:7001\r\n";
    ck_assert_int_eq(parse_map(resp, "10.0.0.1", err, sizeof(err)), 21);
    ck_assert_uint_eq(map.node_count, 2);
    ck_assert_str_eq(slots_map_node(&map, 25)->host, "10.0.0.1");
    ck_assert_ptr_eq(slots_map_node(&map, 5), slots_map_node(&map, 25));
    ck_assert_ptr_null(slots_map_node(&map, 10));
    ck_assert_uint_eq(map.owner[19], CLUSTER_NO_NODE);
    ck_assert_uint_eq(slots_map_node(&map, 30)->port, 7001);
    /* An empty cluster: no slot served. */
    ck_assert_int_eq(parse_map("*0\r\n", NULL, err, sizeof(err)), 0);
    ck_assert_uint_eq(map.node_count, 0);
    ck_assert_ptr_null(slots_map_node(&map, 0));
}
END_TEST

#define NODE "*2\r\n$1\r\na\r\n:1\r\n"
static const char *const malformed[] = {
    /* not an array */
    "+OK\r\n",
    "-ERR This instance has cluster support disabled\r\n",
    ":3\r\n",
    "$3\r\nabc\r\n",
    "$-1\r\n",
    "*-1\r\n",
    /* a range that is not [start, end, master] */
    "*1\r\n:0\r\n",
    "*1\r\n*-1\r\n",
    "*1\r\n*0\r\n",
    "*1\r\n*2\r\n:0\r\n:1\r\n",
    "*1\r\n$5\r\nhello\r\n",
    /* slots of the wrong type or outside 0..16383, start > end */
    "*1\r\n*3\r\n$1\r\n0\r\n:1\r\n" NODE,
    "*1\r\n*3\r\n:0\r\n$1\r\n1\r\n" NODE,
    "*1\r\n*3\r\n$-1\r\n:1\r\n" NODE,
    "*1\r\n*3\r\n:-1\r\n:1\r\n" NODE,
    "*1\r\n*3\r\n:0\r\n:16384\r\n" NODE,
    "*1\r\n*3\r\n:16384\r\n:16384\r\n" NODE,
    "*1\r\n*3\r\n:0\r\n:9223372036854775807\r\n" NODE,
    "*1\r\n*3\r\n:-9223372036854775808\r\n:0\r\n" NODE,
    "*1\r\n*3\r\n:5\r\n:4\r\n" NODE,
    /* a master that is not [host, port] */
    "*1\r\n*3\r\n:0\r\n:1\r\n:7\r\n",
    "*1\r\n*3\r\n:0\r\n:1\r\n*-1\r\n",
    "*1\r\n*3\r\n:0\r\n:1\r\n*0\r\n",
    "*1\r\n*3\r\n:0\r\n:1\r\n*1\r\n$1\r\na\r\n",
    "*1\r\n*3\r\n:0\r\n:1\r\n$1\r\na\r\n",
    /* a bad host */
    "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n:1\r\n:1\r\n",
    "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$-1\r\n:1\r\n",
    "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n*0\r\n:1\r\n",
    "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n+a\r\n:1\r\n",
    "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n-a\r\n:1\r\n",
    /* a bad port */
    "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n:0\r\n",
    "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n:-1\r\n",
    "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n:65536\r\n",
    "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n$4\r\n7000\r\n",
    "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$1\r\na\r\n$-1\r\n",
    /* one slot in two ranges, a good range before a bad one */
    "*2\r\n*3\r\n:0\r\n:10\r\n" NODE "*3\r\n:10\r\n:20\r\n" NODE,
    "*2\r\n*3\r\n:0\r\n:10\r\n" NODE "*3\r\n:11\r\n:20\r\n*2\r\n$1\r\na\r\n:0\r\n",
    "*2\r\n*3\r\n:0\r\n:10\r\n" NODE ":5\r\n",
};

START_TEST(test_map_malformed)
{
    char err[200] = "";
    ck_assert_int_eq(parse_map(malformed[_i], "10.0.0.1", err, sizeof(err)), -1);
    ck_assert_msg(err[0] != '\0', "malformed[%d]: no error message", _i);
    /* A failed parse leaves an empty map: nothing refers to a node. */
    ck_assert_uint_eq(map.node_count, 0);
    size_t owned = 0; /* counted, not asserted per slot: each ck_assert is a write to Check */
    for (size_t i = 0; i < CLUSTER_SLOTS; i++)
        owned += map.owner[i] != CLUSTER_NO_NODE;
    ck_assert_uint_eq(owned, 0);
}
END_TEST

/* Hosts that need a fallback when there is none, or one too long to keep. */
START_TEST(test_map_fallback_and_host_limits)
{
    char err[200] = "";
    const char *empty = "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$0\r\n\r\n:7000\r\n";
    ck_assert_int_eq(parse_map(empty, NULL, err, sizeof(err)), -1);
    ck_assert_int_eq(parse_map(empty, "", err, sizeof(err)), -1);

    char longest[CLUSTER_HOST_MAX + 1];
    memset(longest, 'h', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    ck_assert_int_eq(parse_map(empty, longest, err, sizeof(err)), -1);
    longest[CLUSTER_HOST_MAX - 1] = '\0'; /* 255 bytes: fits */
    ck_assert_int_eq(parse_map(empty, longest, err, sizeof(err)), 2);

    char resp[CLUSTER_HOST_MAX + 100];
    snprintf(resp, sizeof(resp), "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$%zu\r\n%s\r\n:7000\r\n",
             strlen(longest), longest);
    ck_assert_int_eq(parse_map(resp, NULL, err, sizeof(err)), 2);
    ck_assert_str_eq(slots_map_node(&map, 1)->host, longest);
    longest[CLUSTER_HOST_MAX - 1] = 'h';
    snprintf(resp, sizeof(resp), "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$%zu\r\n%s\r\n:7000\r\n",
             strlen(longest), longest);
    ck_assert_int_eq(parse_map(resp, NULL, err, sizeof(err)), -1);
}
END_TEST

/* CLUSTER_NODES_MAX masters fit, one more is refused. */
START_TEST(test_map_node_limit)
{
    char err[200] = "";
    size_t cap = 64 * (CLUSTER_NODES_MAX + 1) + 16;
    char *resp = malloc(cap);
    ck_assert_ptr_nonnull(resp);
    for (int masters = CLUSTER_NODES_MAX; masters <= CLUSTER_NODES_MAX + 1; masters++) {
        size_t n = (size_t)snprintf(resp, cap, "*%d\r\n", masters);
        for (int i = 0; i < masters; i++)
            n += (size_t)snprintf(resp + n, cap - n, "*3\r\n:%d\r\n:%d\r\n*2\r\n$1\r\nh\r\n:%d\r\n",
                                  i, i, 1000 + i);
        int rc = parse_map(resp, NULL, err, sizeof(err));
        ck_assert_int_eq(rc, masters == CLUSTER_NODES_MAX ? CLUSTER_NODES_MAX : -1);
    }
    free(resp);
}
END_TEST

START_TEST(test_map_nul_and_null)
{
    char err[200] = "";
    /* A NUL inside a host: the text is fed with its length, as it comes from the network. */
    static const char nul_host[] = "*1\r\n*3\r\n:0\r\n:1\r\n*2\r\n$3\r\na\0b\r\n:1\r\n";
    redisReader *rd = redisReaderCreate();
    ck_assert_ptr_nonnull(rd);
    ck_assert_int_eq(redisReaderFeed(rd, nul_host, sizeof(nul_host) - 1), REDIS_OK);
    void *reply = NULL;
    ck_assert_int_eq(redisReaderGetReply(rd, &reply), REDIS_OK);
    ck_assert_ptr_nonnull(reply);
    ck_assert_int_eq(slots_map_from_reply(&map, reply, NULL, err, sizeof(err)), -1);
    freeReplyObject(reply);
    redisReaderFree(rd);
    ck_assert_int_eq(slots_map_from_reply(&map, NULL, NULL, err, sizeof(err)), -1);
    ck_assert_int_eq(slots_map_from_reply(&map, NULL, NULL, NULL, 0), -1);
}
END_TEST

/* ---- MOVED / ASK --------------------------------------------------------------------------- */

static bool redirect(const char *text, struct slots_redirect *out)
{
    struct guard g;
    size_t len = strlen(text);
    const char *copy = (const char *)guard_copy(&g, text, len);
    bool ok = slots_parse_redirect(copy, len, out);
    guard_release(&g);
    return ok;
}

static const struct {
    const char *text;
    bool ask;
    unsigned slot;
    const char *host;
    unsigned port;
} redirects[] = {
    {"MOVED 3999 127.0.0.1:6381", false, 3999, "127.0.0.1", 6381},
    {"ASK 3999 127.0.0.1:6381", true, 3999, "127.0.0.1", 6381},
    {"MOVED 0 10.1.2.3:1", false, 0, "10.1.2.3", 1},
    {"MOVED 16383 h:65535", false, 16383, "h", 65535},
    {"MOVED 12182 :7000", false, 12182, "", 7000},
    {"ASK 7 ::1:7000", true, 7, "::1", 7000},
    {"MOVED 7 [::1]:7000", false, 7, "::1", 7000},
    {"MOVED 7 [fe80::1%eth0]:7000", false, 7, "fe80::1%eth0", 7000},
    {"MOVED 7 2001:db8::7:7001", false, 7, "2001:db8::7", 7001},
    {"MOVED 7 []:7000", false, 7, "", 7000},
    {"MOVED 007 node-1.example:6379", false, 7, "node-1.example", 6379},
};

START_TEST(test_redirect_valid)
{
    struct slots_redirect r;
    ck_assert_msg(redirect(redirects[_i].text, &r), "%s", redirects[_i].text);
    ck_assert(r.ask == redirects[_i].ask);
    ck_assert_uint_eq(r.slot, redirects[_i].slot);
    ck_assert_str_eq(r.node.host, redirects[_i].host);
    ck_assert_uint_eq(r.node.port, redirects[_i].port);
}
END_TEST

static const char *const bad_redirects[] = {
    "",
    "MOVED",
    "MOVED ",
    "MOVED 1",
    "MOVED 1 ",
    "MOVED 1 h",
    "MOVED 1 h:",
    "MOVED 1 h:0",
    "MOVED 1 h:65536",
    "MOVED 1 h:100000",
    "MOVED 1 h:+1",
    "MOVED 1 h:-1",
    "MOVED 1 h:1x",
    "MOVED 1 h:1 ",
    "MOVED 1 h :1",
    "MOVED 16384 h:1",
    "MOVED 99999 h:1",
    "MOVED 123456 h:1",
    "MOVED -1 h:1",
    "MOVED +1 h:1",
    "MOVED  1 h:1",
    "MOVED 1  h:1",
    "MOVED x h:1",
    "MOVED 1\th:1",
    "moved 1 h:1",
    "ASK",
    "ASKING 1 h:1",
    "ERR unknown command",
    "CROSSSLOT Keys in request don't hash to the same slot",
    "TRYAGAIN Multiple keys request during rehashing of slot",
    "CLUSTERDOWN The cluster is down",
    "MOVED 1 [::1:7000",
    "MOVED 1 ::1]:7000",
    "MOVED 1 [[::1]]:7000",
    "MOVED 1 a[b:7000",
    "MOVED 1 h\x01:7000",
    "MOVED 1 h\x7f:7000",
    "MOVED 1 h\xc3\xa9:7000",
};

START_TEST(test_redirect_invalid)
{
    struct slots_redirect r = {.slot = 42};
    ck_assert_msg(!redirect(bad_redirects[_i], &r), "accepted \"%s\"", bad_redirects[_i]);
    ck_assert_uint_eq(r.slot, 42); /* untouched */
}
END_TEST

START_TEST(test_redirect_binary_and_length)
{
    struct slots_redirect r;
    /* A NUL in the host, and bytes beyond len that would complete a valid redirect. */
    ck_assert(!slots_parse_redirect("MOVED 1 a\0b:7000", 16, &r));
    ck_assert(!slots_parse_redirect("MOVED 1 h:7000", 10, &r));
    ck_assert(slots_parse_redirect("MOVED 1 h:7000", 13, &r));
    ck_assert_uint_eq(r.node.port, 700);

    /* A host of CLUSTER_HOST_MAX - 1 bytes fits, one more does not. */
    char text[CLUSTER_HOST_MAX + 32];
    int n = snprintf(text, sizeof(text), "MOVED 1 %0*d:1", CLUSTER_HOST_MAX - 1, 0);
    ck_assert(redirect(text, &r));
    ck_assert_uint_eq(strlen(r.node.host), CLUSTER_HOST_MAX - 1);
    n = snprintf(text, sizeof(text), "MOVED 1 %0*d:1", CLUSTER_HOST_MAX, 0);
    ck_assert(n > 0);
    ck_assert(!redirect(text, &r));
}
END_TEST

static Suite *slots_suite(void)
{
    Suite *s = suite_create("slots");
    TCase *tc = tcase_create("slots");
    tcase_add_test(tc, test_crc16_vector);
    tcase_add_test(tc, test_hash_tags);
    tcase_add_test(tc, test_map_valid);
    tcase_add_test(tc, test_map_partial_and_dedup);
    tcase_add_loop_test(tc, test_map_malformed, 0, (int)(sizeof(malformed) / sizeof(*malformed)));
    tcase_add_test(tc, test_map_fallback_and_host_limits);
    tcase_add_test(tc, test_map_node_limit);
    tcase_add_test(tc, test_map_nul_and_null);
    tcase_add_loop_test(tc, test_redirect_valid, 0, (int)(sizeof(redirects) / sizeof(*redirects)));
    tcase_add_loop_test(tc, test_redirect_invalid, 0,
                        (int)(sizeof(bad_redirects) / sizeof(*bad_redirects)));
    tcase_add_test(tc, test_redirect_binary_and_length);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(slots_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
