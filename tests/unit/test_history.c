/*
 * History (broker/core/history.c): the policy matcher (first match wins, wildcards), the
 * --history spec (config_parse_history), the x-stream-offset / x-stream-epoch values, the rings
 * (offsets, SIZE, TTL, limits.history_bytes), replay and the recovered flag, and the marks that
 * skip a live copy of a replayed message.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/core/destination.h"
#include "broker/core/history.h"

/* A store for the given specs, with limits.history_bytes = bytes; shared by loops or one's. */
static struct history *store_of(const char *const *specs, size_t n, size_t bytes, bool shared)
{
    static struct config cfg; /* large: not on the stack */
    config_defaults(&cfg);
    cfg.history_bytes = bytes;
    char err[256];
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(config_parse_history(specs[i], &cfg.history[i], err, sizeof(err)) == 0, "%s",
                      err);
        cfg.history_count++;
    }
    struct history *h = history_new(&cfg, shared);
    ck_assert_ptr_nonnull(h);
    return h;
}

/* A store shared by several loops: copies in and out. */
static struct history *store(const char *const *specs, size_t n, size_t bytes)
{
    return store_of(specs, n, bytes, true);
}

/* Publishes one message to dest at time now_ms; returns its offset. */
static uint64_t put(struct history *h, const char *dest, const char *body, uint64_t now_ms)
{
    const struct history_policy *p = history_policy_for(h, dest, strlen(dest));
    ck_assert_ptr_nonnull(p);
    struct message *m = message_new(dest, strlen(dest), NULL, 0, body, strlen(body));
    size_t evicted;
    ck_assert_int_eq(history_append(h, p, m, now_ms, NULL, NULL, &evicted), 0);
    uint64_t offset = m->stream_offset;
    ck_assert_uint_eq(m->stream_epoch, history_epoch(h));
    message_unref(m);
    return offset;
}

static struct history_request ask(enum history_from from, uint64_t value)
{
    return (struct history_request){.from = from, .value = value};
}

/* The offsets a replay returns, as "1,2,3". */
static const char *offsets(const struct history_replay *r)
{
    static char out[256];
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; i < r->count && n < sizeof(out); i++)
        n += (size_t)snprintf(out + n, sizeof(out) - n, "%s%llu", i > 0 ? "," : "",
                              (unsigned long long)r->msgs[i]->stream_offset);
    return out;
}

/* ---- the spec and the matcher ------------------------------------------------------------- */

static const struct {
    const char *spec;
    int rc;
    size_t size;
    uint64_t ttl_ms;
} spec_cases[] = {
    {"/topic/a=1", 0, 1, 0},
    {"/topic/a.*=10/30s", 0, 10, 30000},
    {"/topic/a.#=100/1h", 0, 100, 3600000},
    {"/topic/x=5/2m", 0, 5, 120000},
    {"/topic/x=5/7d", 0, 5, 7ull * 86400000},
    {"/topic/with=sign=3", 0, 3, 0},
    {"/queue/a=1", -1, 0, 0},
    {"/topic/=1", -1, 0, 0},
    {"topic/a=1", -1, 0, 0},
    {"/topic/a", -1, 0, 0},
    {"/topic/a=", -1, 0, 0},
    {"/topic/a=0", -1, 0, 0},
    {"/topic/a=-1", -1, 0, 0},
    {"/topic/a=1000001", -1, 0, 0},
    {"/topic/a=1/", -1, 0, 0},
    {"/topic/a=1/10", -1, 0, 0},
    {"/topic/a=1/0s", -1, 0, 0},
    {"/topic/a=1/5w", -1, 0, 0},
    {"/topic/a=1/ 5s", -1, 0, 0},
    {"/topic/a=1/99999999999999999999d", -1, 0, 0},
    {"=1", -1, 0, 0},
};

START_TEST(test_spec)
{
    struct config_history out;
    char err[256] = "";
    int rc = config_parse_history(spec_cases[_i].spec, &out, err, sizeof(err));
    ck_assert_msg(rc == spec_cases[_i].rc, "%s: rc %d (%s)", spec_cases[_i].spec, rc, err);
    if (rc == 0) {
        ck_assert_uint_eq(out.size, spec_cases[_i].size);
        ck_assert_uint_eq(out.ttl_ms, spec_cases[_i].ttl_ms);
    } else {
        ck_assert_msg(strstr(err, spec_cases[_i].spec) != NULL, "error names the spec: %s", err);
    }
}
END_TEST

START_TEST(test_outside_topic_names_the_pattern)
{
    struct config_history out;
    char err[256];
    ck_assert_int_eq(config_parse_history("/queue/jobs=3", &out, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "'/queue/jobs'"));
}
END_TEST

START_TEST(test_first_match_wins)
{
    const char *specs[] = {"/topic/stocks.acme=7", "/topic/stocks.*=1", "/topic/#=100/1h"};
    struct history *h = store(specs, 3, 1 << 20);
    const struct history_policy *p = history_policy_for(h, "/topic/stocks.acme", 18);
    ck_assert_uint_eq(p->size, 7);
    p = history_policy_for(h, "/topic/stocks.globex", 20);
    ck_assert_uint_eq(p->size, 1);
    p = history_policy_for(h, "/topic/news.eu.fr", 17);
    ck_assert_uint_eq(p->size, 100);
    ck_assert_ptr_null(history_policy_for(h, "/queue/stocks.acme", 18));
    ck_assert_ptr_null(history_policy_for(h, "/topic/stocks.*", 15)); /* a pattern publishes not */
    history_free(h);
}
END_TEST

START_TEST(test_no_match)
{
    const char *specs[] = {"/topic/a.*=1"};
    struct history *h = store(specs, 1, 1 << 20);
    ck_assert_ptr_null(history_policy_for(h, "/topic/a", 8));
    ck_assert_ptr_null(history_policy_for(h, "/topic/a.b.c", 12));
    ck_assert_ptr_null(history_policy_for(h, "/topic/b.c", 10));
    history_free(h);
}
END_TEST

/* Many '#' against a deep name: dynamic programming, not backtracking (a test that times out
 * otherwise). */
START_TEST(test_deep_hash_pattern_is_fast)
{
    char pattern[512] = "/topic/", name[512] = "/topic/";
    for (int i = 0; i < 40; i++)
        strcat(pattern, "#.");
    strcat(pattern, "z");
    for (int i = 0; i < 60; i++)
        strcat(name, "a.");
    strcat(name, "b");
    ck_assert(!destination_matches(pattern, strlen(pattern), name, strlen(name)));
    ck_assert(destination_matches("/topic/#.b", 10, name, strlen(name)));
}
END_TEST

/* ---- the header values -------------------------------------------------------------------- */

static const struct {
    const char *offset, *epoch;
    int rc;
    enum history_from from;
    uint64_t value;
} header_cases[] = {
    {NULL, NULL, 0, HISTORY_NEXT, 0},
    {"next", NULL, 0, HISTORY_NEXT, 0},
    {"last", NULL, 0, HISTORY_LAST, 0},
    {"first", NULL, 0, HISTORY_FIRST, 0},
    {"offset=0", NULL, 0, HISTORY_OFFSET, 0},
    {"offset=42", "00ff", 0, HISTORY_OFFSET, 42},
    {"offset=18446744073709551615", NULL, 0, HISTORY_OFFSET, UINT64_MAX},
    {"timestamp=1700000000", NULL, 0, HISTORY_TIMESTAMP, 1700000000},
    {"offset=18446744073709551616", NULL, HISTORY_HEADER_BAD_OFFSET, 0, 0},
    {"timestamp=18446744073709552", NULL, HISTORY_HEADER_BAD_OFFSET, 0, 0},
    {"offset=", NULL, HISTORY_HEADER_BAD_OFFSET, 0, 0},
    {"offset=-1", NULL, HISTORY_HEADER_BAD_OFFSET, 0, 0},
    {"offset= 1", NULL, HISTORY_HEADER_BAD_OFFSET, 0, 0},
    {"offset=1x", NULL, HISTORY_HEADER_BAD_OFFSET, 0, 0},
    {"Last", NULL, HISTORY_HEADER_BAD_OFFSET, 0, 0},
    {"", NULL, HISTORY_HEADER_BAD_OFFSET, 0, 0},
    {"lastx", NULL, HISTORY_HEADER_BAD_OFFSET, 0, 0},
    {"last", "", HISTORY_HEADER_BAD_EPOCH, 0, 0},
    {"last", "0123456789abcdef0", HISTORY_HEADER_BAD_EPOCH, 0, 0},
    {"last", "xyz", HISTORY_HEADER_BAD_EPOCH, 0, 0},
    {NULL, "ABCDEF", 0, HISTORY_NEXT, 0},
};

START_TEST(test_header_values)
{
    const char *o = header_cases[_i].offset, *e = header_cases[_i].epoch;
    struct history_request req;
    /* No NUL may be read: copies exactly as long as the values. */
    char *oc = o != NULL ? malloc(strlen(o) + 1) : NULL,
         *ec = e != NULL ? malloc(strlen(e) + 1) : NULL;
    if (oc != NULL)
        memcpy(oc, o, strlen(o));
    if (ec != NULL)
        memcpy(ec, e, strlen(e));
    int rc =
        history_parse_request(oc, o != NULL ? strlen(o) : 0, ec, e != NULL ? strlen(e) : 0, &req);
    ck_assert_msg(rc == header_cases[_i].rc, "%s / %s: %d", o, e, rc);
    if (rc == 0) {
        ck_assert_int_eq(req.from, header_cases[_i].from);
        ck_assert_uint_eq(req.value, header_cases[_i].value);
        ck_assert(req.has_epoch == (e != NULL));
    }
    free(oc);
    free(ec);
}
END_TEST

/* ---- rings, replay, recovered ------------------------------------------------------------- */

START_TEST(test_offsets_grow_by_one_per_destination)
{
    const char *specs[] = {"/topic/#=3"};
    struct history *h = store(specs, 1, 1 << 20);
    ck_assert_uint_eq(put(h, "/topic/a", "1", 1000), 1);
    ck_assert_uint_eq(put(h, "/topic/b", "1", 1000), 1);
    ck_assert_uint_eq(put(h, "/topic/a", "2", 1000), 2);
    for (int i = 0; i < 5; i++)
        put(h, "/topic/a", "more", 1000);
    ck_assert_uint_eq(put(h, "/topic/a", "last", 1000), 8);
    struct history_stats st;
    history_stats(h, &st);
    ck_assert_uint_eq(st.destinations, 2);
    ck_assert_uint_eq(st.messages, 4); /* SIZE 3 of a, 1 of b */
    history_free(h);
}
END_TEST

START_TEST(test_replay_positions_and_recovered)
{
    const char *specs[] = {"/topic/n.#=3"};
    struct history *h = store(specs, 1, 1 << 20);
    for (int i = 1; i <= 5; i++) /* keeps 3, 4, 5 */
        put(h, "/topic/n.a", "x", (uint64_t)i * 1000);
    struct {
        struct history_request req;
        const char *want;
        bool recovered;
    } cases[] = {
        {ask(HISTORY_LAST, 0), "5", true},           {ask(HISTORY_FIRST, 0), "3,4,5", false},
        {ask(HISTORY_OFFSET, 4), "4,5", true},       {ask(HISTORY_OFFSET, 3), "3,4,5", true},
        {ask(HISTORY_OFFSET, 2), "3,4,5", false},    {ask(HISTORY_OFFSET, 6), "", true},
        {ask(HISTORY_OFFSET, 7), "", false},         {ask(HISTORY_TIMESTAMP, 4), "4,5", true},
        {ask(HISTORY_TIMESTAMP, 2), "3,4,5", false},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct history_replay r;
        ck_assert_int_eq(history_replay(h, "/topic/n.a", 10, false, &cases[i].req, 9000, &r), 0);
        ck_assert_msg(strcmp(offsets(&r), cases[i].want) == 0, "case %zu: %s", i, offsets(&r));
        ck_assert_msg(r.recovered == cases[i].recovered, "case %zu", i);
        const struct history_mark *mark = dict_get(&r.marks, "/topic/n.a", 10);
        ck_assert_ptr_nonnull(mark);
        ck_assert_uint_eq(mark->offset, 5);
        ck_assert_uint_eq(mark->epoch, history_epoch(h));
        history_replay_reset(&r);
    }
    history_free(h);
}
END_TEST

START_TEST(test_epoch_mismatch_replays_all_unrecovered)
{
    const char *specs[] = {"/topic/e=10"};
    struct history *h = store(specs, 1, 1 << 20);
    for (int i = 0; i < 3; i++)
        put(h, "/topic/e", "x", 1000);
    struct history_request req = ask(HISTORY_OFFSET, 3);
    req.has_epoch = true;
    req.epoch = history_epoch(h) + 1;
    struct history_replay r;
    history_replay(h, "/topic/e", 8, false, &req, 1000, &r);
    ck_assert_str_eq(offsets(&r), "1,2,3");
    ck_assert(!r.recovered);
    history_replay_reset(&r);
    req.epoch = history_epoch(h);
    history_replay(h, "/topic/e", 8, false, &req, 1000, &r);
    ck_assert_str_eq(offsets(&r), "3");
    ck_assert(r.recovered);
    history_replay_reset(&r);
    history_free(h);
}
END_TEST

START_TEST(test_no_policy_and_no_stream)
{
    const char *specs[] = {"/topic/kept=2"};
    struct history *h = store(specs, 1, 1 << 20);
    struct history_request req = ask(HISTORY_OFFSET, 1);
    struct history_replay r;
    history_replay(h, "/topic/other", 12, false, &req, 1000, &r);
    ck_assert_uint_eq(r.count, 0);
    ck_assert(!r.recovered);
    history_replay_reset(&r);
    history_replay(h, "/topic/kept", 11, false, &req, 1000, &r); /* nothing published yet */
    ck_assert_uint_eq(r.count, 0);
    ck_assert(r.recovered);
    history_replay_reset(&r);
    req.value = 5;
    history_replay(h, "/topic/kept", 11, false, &req, 1000, &r);
    ck_assert(!r.recovered);
    history_replay_reset(&r);
    history_replay(NULL, "/topic/kept", 11, false, &req, 1000, &r); /* no store at all */
    ck_assert(!r.recovered);
    history_replay_reset(&r);
    history_free(h);
}
END_TEST

START_TEST(test_ttl_expires)
{
    const char *specs[] = {"/topic/t=10/2s"};
    struct history *h = store(specs, 1, 1 << 20);
    put(h, "/topic/t", "old", 1000);
    put(h, "/topic/t", "new", 2500);
    struct history_request req = ask(HISTORY_FIRST, 0);
    struct history_replay r;
    history_replay(h, "/topic/t", 8, false, &req, 2999, &r);
    ck_assert_str_eq(offsets(&r), "1,2");
    ck_assert(r.recovered);
    history_replay_reset(&r);
    history_replay(h, "/topic/t", 8, false, &req, 3000, &r);
    ck_assert_str_eq(offsets(&r), "2");
    ck_assert(!r.recovered);
    history_replay_reset(&r);
    history_replay(h, "/topic/t", 8, false, &req, 10000, &r);
    ck_assert_str_eq(offsets(&r), "");
    history_replay_reset(&r);
    ck_assert_uint_eq(put(h, "/topic/t", "again", 10000), 3); /* the sequence goes on */
    history_free(h);
}
END_TEST

START_TEST(test_bytes_cap_evicts_oldest_of_the_process)
{
    const char *specs[] = {"/topic/#=1000"};
    char body[1000];
    memset(body, 'b', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    struct history *h = store(specs, 1, 5000);
    struct message *m;
    size_t evicted_total = 0;
    for (int i = 0; i < 10; i++) {
        const char *dest = i % 2 == 0 ? "/topic/even" : "/topic/odd";
        m = message_new(dest, strlen(dest), NULL, 0, body, strlen(body));
        size_t evicted;
        history_append(h, history_policy_for(h, dest, strlen(dest)), m, 1000, NULL, NULL, &evicted);
        evicted_total += evicted;
        message_unref(m);
    }
    struct history_stats st;
    history_stats(h, &st);
    ck_assert_uint_le(st.bytes, 5000);
    ck_assert_uint_ge(st.messages, 3);
    ck_assert_uint_eq(st.messages + evicted_total, 10);
    /* The newest survive: offset 5 of each. */
    struct history_request req = ask(HISTORY_LAST, 0);
    struct history_replay r;
    history_replay(h, "/topic/#", 8, true, &req, 1000, &r);
    ck_assert_uint_eq(r.count, 2);
    ck_assert_uint_eq(r.msgs[0]->stream_offset, 5);
    ck_assert_uint_eq(r.msgs[1]->stream_offset, 5);
    history_replay_reset(&r);
    /* A message bigger than the whole budget gets its offset and is not kept. */
    char *huge = calloc(1, 6000);
    memset(huge, 'h', 5999);
    m = message_new("/topic/odd", 10, NULL, 0, huge, 5999);
    size_t evicted;
    history_append(h, history_policy_for(h, "/topic/odd", 10), m, 1000, NULL, NULL, &evicted);
    ck_assert_uint_eq(m->stream_offset, 6);
    message_unref(m);
    free(huge);
    history_free(h);
}
END_TEST

/* One loop's store keeps the published message itself and replays it: no copy either way. */
START_TEST(test_one_loop_store_shares_messages)
{
    static const char *const specs[] = {"/topic/a=2"};
    struct history *h = store_of(specs, 1, 1 << 20, false);
    const struct history_policy *p = history_policy_for(h, "/topic/a", 8);
    struct message *published[3];
    size_t evicted;
    for (int i = 0; i < 3; i++) {
        published[i] = message_new("/topic/a", 8, NULL, 0, "x", 1);
        ck_assert_int_eq(history_append(h, p, published[i], 1000, NULL, NULL, &evicted), 0);
    }
    ck_assert_int_eq(published[0]->refcount, 1); /* evicted by the third: the store let go */
    ck_assert_int_eq(published[2]->refcount, 2);
    struct history_request req = ask(HISTORY_FIRST, 0);
    struct history_replay r;
    ck_assert_int_eq(history_replay(h, "/topic/a", 8, false, &req, 1000, &r), 0);
    ck_assert_uint_eq(r.count, 2);
    ck_assert_ptr_eq(r.msgs[0], published[1]);
    ck_assert_ptr_eq(r.msgs[1], published[2]);
    ck_assert_int_eq(published[2]->refcount, 3);
    history_replay_reset(&r);
    for (int i = 0; i < 3; i++)
        message_unref(published[i]);
    history_free(h); /* frees the last references: ASan finds a leak or a double free */
}
END_TEST

START_TEST(test_wildcard_replay)
{
    const char *specs[] = {"/topic/s.*=1", "/topic/other=5"};
    struct history *h = store(specs, 2, 1 << 20);
    put(h, "/topic/s.a", "a1", 1000);
    put(h, "/topic/s.a", "a2", 1000);
    put(h, "/topic/s.b", "b1", 1000);
    put(h, "/topic/other", "o", 1000);
    struct history_request req = ask(HISTORY_LAST, 0);
    struct history_replay r;
    history_replay(h, "/topic/s.*", 10, true, &req, 1000, &r);
    ck_assert_uint_eq(r.count, 2);
    ck_assert(r.recovered);
    ck_assert_uint_eq(r.marks.count, 2);
    const char *b0 = r.msgs[0]->body, *b1 = r.msgs[1]->body;
    ck_assert((strcmp(b0, "a2") == 0 && strcmp(b1, "b1") == 0) ||
              (strcmp(b0, "b1") == 0 && strcmp(b1, "a2") == 0));
    history_replay_reset(&r);
    history_free(h);
}
END_TEST

START_TEST(test_marks_skip_replayed_copies)
{
    const char *specs[] = {"/topic/m=10"};
    struct history *h = store(specs, 1, 1 << 20);
    put(h, "/topic/m", "1", 1000);
    put(h, "/topic/m", "2", 1000);
    struct history_request req = ask(HISTORY_FIRST, 0);
    struct history_replay r;
    history_replay(h, "/topic/m", 8, false, &req, 1000, &r);
    struct dict *marks = malloc(sizeof(*marks));
    *marks = r.marks;
    dict_init(&r.marks);
    history_replay_reset(&r);
    struct message *live = message_new("/topic/m", 8, NULL, 0, "x", 1);
    live->stream_offset = 2;
    live->stream_epoch = history_epoch(h);
    ck_assert(!history_marks_pass(&marks, live)); /* already replayed */
    ck_assert_ptr_nonnull(marks);
    struct message *other = message_new("/topic/n", 8, NULL, 0, "x", 1);
    other->stream_offset = 1;
    ck_assert(history_marks_pass(&marks, other)); /* not replayed: no mark */
    live->stream_offset = 3;
    ck_assert(history_marks_pass(&marks, live));
    ck_assert_ptr_null(marks); /* the last mark went with the first newer message */

    /* Another epoch (the history was lost, numbering started again): not a replayed copy. */
    history_replay(h, "/topic/m", 8, false, &req, 1000, &r);
    marks = malloc(sizeof(*marks));
    *marks = r.marks;
    dict_init(&r.marks);
    history_replay_reset(&r);
    live->stream_offset = 1;
    live->stream_epoch = history_epoch(h) + 1;
    ck_assert(history_marks_pass(&marks, live));
    ck_assert_ptr_null(marks);
    message_unref(live);
    message_unref(other);
    history_free(h);
}
END_TEST

static Suite *history_suite(void)
{
    Suite *s = suite_create("history");
    TCase *tc = tcase_create("core");
    tcase_add_loop_test(tc, test_spec, 0, (int)(sizeof(spec_cases) / sizeof(spec_cases[0])));
    tcase_add_test(tc, test_outside_topic_names_the_pattern);
    tcase_add_test(tc, test_first_match_wins);
    tcase_add_test(tc, test_no_match);
    tcase_add_test(tc, test_deep_hash_pattern_is_fast);
    tcase_add_loop_test(tc, test_header_values, 0,
                        (int)(sizeof(header_cases) / sizeof(header_cases[0])));
    tcase_add_test(tc, test_offsets_grow_by_one_per_destination);
    tcase_add_test(tc, test_replay_positions_and_recovered);
    tcase_add_test(tc, test_epoch_mismatch_replays_all_unrecovered);
    tcase_add_test(tc, test_no_policy_and_no_stream);
    tcase_add_test(tc, test_ttl_expires);
    tcase_add_test(tc, test_bytes_cap_evicts_oldest_of_the_process);
    tcase_add_test(tc, test_one_loop_store_shares_messages);
    tcase_add_test(tc, test_wildcard_replay);
    tcase_add_test(tc, test_marks_skip_replayed_copies);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(history_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
