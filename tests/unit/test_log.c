/*
 * The logger: text and JSON lines, escaping, the peer of each connection id, the log file
 * (open, reopen after rotation) and lines dropped when the file refuses writes.
 */
#include <check.h>
#include <ftw.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "broker/base/log.h"

/* A fresh directory for one test's files; Check forks each test, so no cleanup races. */
#define TMP_PATH_MAX 512
static char tmp_dir[TMP_PATH_MAX / 2];

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void remove_tmp_dir(void)
{
    nftw(tmp_dir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static void make_tmp_dir(void)
{
    const char *base = getenv("TMPDIR");
    snprintf(tmp_dir, sizeof(tmp_dir), "%s/stompws-test-log-XXXXXX", base != NULL ? base : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(tmp_dir));
    atexit(remove_tmp_dir); /* each test runs in its own forked process */
}

static void tmp_path(char *out, size_t len, const char *name)
{
    snprintf(out, len, "%s/%s", tmp_dir, name);
}

/* The whole file as a NUL-terminated string (freed by the caller). */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_ptr_nonnull(f);
    static const size_t cap = 1 << 20;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

/* Logs to a file in tmp_dir; returns its path (static). */
static const char *log_to_tmp_file(enum log_format format)
{
    static char path[TMP_PATH_MAX];
    make_tmp_dir();
    tmp_path(path, sizeof(path), "broker.log");
    char err[256];
    ck_assert_int_eq(log_open(path, err, sizeof(err)), 0);
    log_set_format(format);
    return path;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The text after the timestamp and the space that follows it. */
static const char *after_ts(const char *line)
{
    const char *sp = strchr(line, ' ');
    ck_assert_ptr_nonnull(sp);
    return sp + 1;
}

START_TEST(test_text_lines)
{
    const char *path = log_to_tmp_file(LOG_FORMAT_TEXT);
    log_peer_set(42, "127.0.0.1:5000");
    log_info(42, "hello %d", 1);
    log_warn(0, "not about a connection");
    log_error(7, "unknown peer");
    log_debug(42, "not shown at info");
    char *text = read_file(path);
    char *second = strchr(text, '\n') + 1;
    char *third = strchr(second, '\n') + 1;
    ck_assert(starts_with(after_ts(text), "info  [c42 127.0.0.1:5000] hello 1\n"));
    ck_assert(starts_with(after_ts(second), "warn  not about a connection\n"));
    ck_assert_str_eq(after_ts(third), "error [c7] unknown peer\n");
    /* "2026-11-23T10:00:00.123Z": 24 characters of UTC time. */
    ck_assert_int_eq((int)(strchr(text, ' ') - text), 24);
    ck_assert_int_eq(text[23], 'Z');
    free(text);
    log_close();
}
END_TEST

START_TEST(test_text_control_bytes_stay_on_one_line)
{
    const char *path = log_to_tmp_file(LOG_FORMAT_TEXT);
    log_info(0, "login 'a\nfake line\r\x01' \xc3\xa9");
    char *text = read_file(path);
    ck_assert_str_eq(after_ts(text), "info  login 'a\\x0afake line\\x0d\\x01' \xc3\xa9\n");
    free(text);
    log_close();
}
END_TEST

/* One JSON line's "msg" must parse back to `decoded` and read exactly `escaped` on the wire. */
static const struct {
    const char *msg;
    const char *escaped;
    const char *decoded;
} json_cases[] = {
    {"plain", "plain", "plain"},
    {"quote \" backslash \\", "quote \\\" backslash \\\\", "quote \" backslash \\"},
    {"nl\ncr\rtab\tbell\x07"
     "del\x7f",
     "nl\\ncr\\rtab\\tbell\\u0007del\\u007f",
     "nl\ncr\rtab\tbell\x07"
     "del\x7f"},
    {"utf-8 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "utf-8 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
     "utf-8 \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"},
    /* a lone continuation byte, a truncated sequence, an overlong '/', a surrogate, 0xff */
    {"a\x80"
     "b\xe2\x82"
     "c\xc0\xaf"
     "d\xed\xa0\x80"
     "e\xff",
     "a\\ufffdb\\ufffd\\ufffdc\\ufffd\\ufffdd\\ufffd\\ufffd\\ufffde\\ufffd",
     "a\xef\xbf\xbd"
     "b\xef\xbf\xbd\xef\xbf\xbd"
     "c\xef\xbf\xbd\xef\xbf\xbd"
     "d\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"
     "e\xef\xbf\xbd"},
};

START_TEST(test_json_escaping)
{
    const char *path = log_to_tmp_file(LOG_FORMAT_JSON);
    log_info(0, "%s", json_cases[_i].msg);
    char *text = read_file(path);
    char want[512];
    snprintf(want, sizeof(want), ",\"level\":\"info\",\"msg\":\"%s\"}\n", json_cases[_i].escaped);
    const char *tail = strstr(text, ",\"level\"");
    ck_assert_ptr_nonnull(tail);
    ck_assert_str_eq(tail, want);
    json_error_t jerr;
    json_t *obj = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    ck_assert_msg(obj != NULL, "not JSON: %s (%s)", text, jerr.text);
    ck_assert_str_eq(json_string_value(json_object_get(obj, "msg")), json_cases[_i].decoded);
    ck_assert_ptr_null(json_object_get(obj, "conn"));
    json_decref(obj);
    free(text);
    log_close();
}
END_TEST

START_TEST(test_json_conn_and_peer)
{
    const char *path = log_to_tmp_file(LOG_FORMAT_JSON);
    log_peer_set(42, "[::1]:5000");
    log_warn(42, "slow consumer");
    log_info(9, "peer unknown");
    char *text = read_file(path);
    char *second = strchr(text, '\n') + 1;
    second[-1] = '\0';
    json_error_t jerr;
    json_t *a = json_loads(text, 0, &jerr);
    json_t *b = json_loads(second, 0, &jerr);
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(json_string_value(json_object_get(a, "level")), "warn");
    ck_assert_int_eq(json_integer_value(json_object_get(a, "conn")), 42);
    ck_assert_str_eq(json_string_value(json_object_get(a, "peer")), "[::1]:5000");
    ck_assert_str_eq(json_string_value(json_object_get(a, "msg")), "slow consumer");
    ck_assert_int_eq((int)strlen(json_string_value(json_object_get(a, "ts"))), 24);
    ck_assert_int_eq(json_integer_value(json_object_get(b, "conn")), 9);
    ck_assert_ptr_null(json_object_get(b, "peer"));
    json_decref(a);
    json_decref(b);
    free(text);
    log_close();
}
END_TEST

START_TEST(test_long_message_is_cut_but_stays_one_valid_line)
{
    const char *path = log_to_tmp_file(LOG_FORMAT_JSON);
    char *big = malloc(10001);
    ck_assert_ptr_nonnull(big);
    memset(big, 0x01, 10000); /* each byte becomes \u0001: six times longer */
    big[10000] = '\0';
    log_info(0, "%s", big);
    char *text = read_file(path);
    ck_assert_ptr_eq(strchr(text, '\n'), text + strlen(text) - 1);
    json_error_t jerr;
    json_t *obj = json_loads(text, 0, &jerr);
    ck_assert_msg(obj != NULL, "not JSON: %s", jerr.text);
    size_t kept = strlen(json_string_value(json_object_get(obj, "msg")));
    ck_assert(kept > 1000 && kept < 10000);
    json_decref(obj);
    free(text);
    free(big);
    log_close();
}
END_TEST

START_TEST(test_peer_table)
{
    enum { N = 20000 };
    static char peers[N][24];
    for (uint64_t id = 1; id <= N; id++) {
        snprintf(peers[id - 1], sizeof(peers[0]), "10.0.%u.%u:%u", (unsigned)(id / 256) % 256,
                 (unsigned)id % 256, (unsigned)id);
        log_peer_set(id, peers[id - 1]);
    }
    for (uint64_t id = 1; id <= N; id += 2)
        log_peer_clear(id);
    for (uint64_t id = 1; id <= N; id++) {
        if (id % 2 == 1)
            ck_assert_ptr_null(log_peer_get(id));
        else
            ck_assert_str_eq(log_peer_get(id), peers[id - 1]);
    }
    log_peer_set(2, "replaced:1");
    ck_assert_str_eq(log_peer_get(2), "replaced:1");
    log_peer_clear(N + 5); /* unknown: ignored */
    log_peer_clear(0);
    ck_assert_ptr_null(log_peer_get(0));
    for (uint64_t id = 2; id <= N; id += 2)
        log_peer_clear(id);
    for (uint64_t id = 1; id <= N; id++)
        ck_assert_ptr_null(log_peer_get(id));
    log_close();
}
END_TEST

START_TEST(test_reopen_after_rename)
{
    const char *path = log_to_tmp_file(LOG_FORMAT_TEXT);
    log_info(0, "before rotation");
    char rotated[TMP_PATH_MAX];
    tmp_path(rotated, sizeof(rotated), "broker.log.1");
    ck_assert_int_eq(rename(path, rotated), 0);
    log_info(0, "still to the old file");
    char err[256];
    ck_assert_int_eq(log_reopen(err, sizeof(err)), 0);
    ck_assert_str_eq(log_file_path(), path);
    log_info(0, "after rotation");
    char *old_text = read_file(rotated);
    char *new_text = read_file(path);
    ck_assert_ptr_nonnull(strstr(old_text, "before rotation"));
    ck_assert_ptr_nonnull(strstr(old_text, "still to the old file"));
    ck_assert_ptr_null(strstr(old_text, "after rotation"));
    ck_assert_ptr_nonnull(strstr(new_text, "after rotation"));
    ck_assert_ptr_null(strstr(new_text, "before rotation"));
    free(old_text);
    free(new_text);
    log_close();
    ck_assert_ptr_null(log_file_path());
    ck_assert_int_eq(log_reopen(err, sizeof(err)), 0); /* stderr: nothing to reopen */
}
END_TEST

START_TEST(test_open_errors_name_the_file)
{
    char err[256];
    ck_assert_int_eq(log_open("/nonexistent-stompws-dir/x.log", err, sizeof(err)), -1);
    ck_assert_str_eq(
        err, "cannot open log file /nonexistent-stompws-dir/x.log: No such file or directory");
    ck_assert_ptr_null(log_file_path());
    ck_assert_int_eq(log_open("", err, sizeof(err)), 0); /* stderr */
}
END_TEST

START_TEST(test_check_file_creates_nothing)
{
    make_tmp_dir();
    char path[TMP_PATH_MAX], err[256];
    tmp_path(path, sizeof(path), "new.log");
    ck_assert_int_eq(log_check_file(path, err, sizeof(err)), 0);
    ck_assert_int_eq(access(path, F_OK), -1); /* checked, not created */
    tmp_path(path, sizeof(path), "missing-dir/new.log");
    ck_assert_int_eq(log_check_file(path, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "missing-dir/new.log: No such file or directory"));
    ck_assert_int_eq(log_check_file("/dev/full", err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_write_errors_are_counted_not_fatal)
{
    /* stderr to a file, to see the one notice the logger leaves there. */
    make_tmp_dir();
    char stderr_path[TMP_PATH_MAX], err[256];
    tmp_path(stderr_path, sizeof(stderr_path), "stderr.txt");
    FILE *captured = freopen(stderr_path, "w", stderr);
    ck_assert_ptr_nonnull(captured);
    ck_assert_int_eq(log_open("/dev/full", err, sizeof(err)), 0); /* writes fail: ENOSPC */
    ck_assert_uint_eq(log_lines_dropped(), 0);
    for (int i = 0; i < 5; i++)
        log_info(0, "line %d", i);
    log_debug(0, "below the level: not a drop");
    ck_assert_uint_eq(log_lines_dropped(), 5);
    char *text = read_file(stderr_path);
    const char *notice = strstr(text, "cannot write to log file /dev/full: No space left");
    ck_assert_ptr_nonnull(notice);
    ck_assert_ptr_null(strstr(notice + 1, "cannot write")); /* told once, not per line */
    free(text);
    log_close();
}
END_TEST

START_TEST(test_parse_names)
{
    ck_assert_int_eq(log_format_parse("text"), LOG_FORMAT_TEXT);
    ck_assert_int_eq(log_format_parse("JSON"), LOG_FORMAT_JSON);
    ck_assert_int_eq(log_format_parse("xml"), -1);
    ck_assert_str_eq(log_format_name(LOG_FORMAT_JSON), "json");
    ck_assert_int_eq(log_level_parse("warning"), LOG_WARN);
    ck_assert_int_eq(log_level_parse("loud"), -1);
}
END_TEST

static Suite *log_suite(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_text_lines);
    tcase_add_test(tc, test_text_control_bytes_stay_on_one_line);
    tcase_add_loop_test(tc, test_json_escaping, 0, sizeof(json_cases) / sizeof(json_cases[0]));
    tcase_add_test(tc, test_json_conn_and_peer);
    tcase_add_test(tc, test_long_message_is_cut_but_stays_one_valid_line);
    tcase_add_test(tc, test_peer_table);
    tcase_add_test(tc, test_reopen_after_rename);
    tcase_add_test(tc, test_open_errors_name_the_file);
    tcase_add_test(tc, test_check_file_creates_nothing);
    tcase_add_test(tc, test_write_errors_are_counted_not_fatal);
    tcase_add_test(tc, test_parse_names);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(log_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
