/* Config: defaults, every value type, flags-style keys, INI files with line-numbered errors. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker/base/config.h"

static char err[512];

START_TEST(test_defaults)
{
    struct config cfg;
    config_defaults(&cfg);
    ck_assert(cfg.ws.enabled);
    ck_assert_str_eq(cfg.ws.host, "127.0.0.1");
    ck_assert_uint_eq(cfg.ws.port, 15674);
    ck_assert_str_eq(cfg.ws_path, "/ws");
    ck_assert_uint_eq(cfg.tcp.port, 61613);
    ck_assert_uint_eq(cfg.max_ws_message, 1024 * 1024);
    ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), 0);
}
END_TEST

START_TEST(test_addresses)
{
    struct config_addr a;
    ck_assert_int_eq(config_parse_addr("0.0.0.0:0", &a), 0);
    ck_assert(a.enabled);
    ck_assert_uint_eq(a.port, 0);
    ck_assert_int_eq(config_parse_addr("[::1]:8080", &a), 0);
    ck_assert_str_eq(a.host, "::1");
    ck_assert_uint_eq(a.port, 8080);
    ck_assert_int_eq(config_parse_addr("off", &a), 0);
    ck_assert(!a.enabled);
    ck_assert_int_eq(config_parse_addr("127.0.0.1", &a), -1);
    ck_assert_int_eq(config_parse_addr("127.0.0.1:65536", &a), -1);
    ck_assert_int_eq(config_parse_addr("127.0.0.1:x", &a), -1);
    ck_assert_int_eq(config_parse_addr(":80", &a), -1);
}
END_TEST

START_TEST(test_set_values_and_errors)
{
    struct config cfg;
    config_defaults(&cfg);
    ck_assert_int_eq(config_set_dotted(&cfg, "limits.max_body", "4m", err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg.max_body, 4 * 1024 * 1024);
    ck_assert_int_eq(config_set_dotted(&cfg, "heartbeat.min_ms", "250", err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg.heartbeat_min_ms, 250);
    ck_assert_int_eq(config_set_dotted(&cfg, "server.outbound_frames", "binary", err, sizeof(err)),
                     0);
    ck_assert_int_eq(cfg.outbound_frames, OUTBOUND_FRAMES_BINARY);

    ck_assert_int_eq(config_set_dotted(&cfg, "limits.nope", "1", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "unknown key 'limits.nope'"));
    ck_assert_int_eq(config_set_dotted(&cfg, "limits.max_body", "-1", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "limits.max_body"));
    ck_assert_int_eq(config_set_dotted(&cfg, "server.ws_path", "ws", err, sizeof(err)), -1);
    ck_assert_int_eq(config_set_dotted(&cfg, "nodot", "1", err, sizeof(err)), -1);

    config_set_dotted(&cfg, "heartbeat.min_ms", "9000", err, sizeof(err));
    config_set_dotted(&cfg, "heartbeat.max_ms", "1000", err, sizeof(err));
    ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "heartbeat.min_ms"));
}
END_TEST

/*
 * Numbers and ports are digits only (found by tests/fuzz/fuzz_config.c): strtoul/strtoull skip
 * leading spaces and take a sign, so " -1" used to set limits.max_body to 2^64 - 1.
 */
START_TEST(test_numbers_digits_only)
{
    static const char *const refused[][2] = {
        {"limits.max_body", " -1"},     {"limits.max_body", "+5"},
        {"limits.max_body", " 4m"},     {"heartbeat.min_ms", "+50"},
        {"heartbeat.min_ms", "\t7"},    {"queue.prefetch", "-0"},
        {"server.ws", "127.0.0.1: 80"}, {"server.ws", "127.0.0.1:+80"},
        {"server.ws", "127.0.0.1:-0"},  {"server.tcp", "[::1]: 1"},
    };
    struct config cfg, before;
    config_defaults(&cfg);
    before = cfg;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        ck_assert_msg(config_set_dotted(&cfg, refused[i][0], refused[i][1], err, sizeof(err)) == -1,
                      "%s='%s' accepted", refused[i][0], refused[i][1]);
        ck_assert_ptr_nonnull(strstr(err, refused[i][0]));
    }
    ck_assert_mem_eq(&cfg, &before, sizeof(cfg));
    struct config_addr a;
    ck_assert_int_eq(config_parse_addr("0.0.0.0:+0", &a), -1);
    ck_assert_int_eq(config_parse_addr("[::1]:080", &a), 0);
    ck_assert_uint_eq(a.port, 80);
    ck_assert_int_eq(config_set_dotted(&cfg, "limits.max_body", "0", err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg.max_body, 0);
}
END_TEST

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

START_TEST(test_file_and_line_numbers)
{
    char path[] = "/tmp/stompws-config-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    struct config cfg;
    config_defaults(&cfg);
    write_file(path, "; comment\n[server]\nws = 127.0.0.1:0\ntcp = off\n[queue]\nprefetch = 7\n");
    ck_assert_int_eq(config_load_file(&cfg, path, err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg.ws.port, 0);
    ck_assert(!cfg.tcp.enabled);
    ck_assert_uint_eq(cfg.queue_prefetch, 7);

    write_file(path, "[server]\nws = 127.0.0.1:0\n\n[limits]\nmax_bodyy = 3\n");
    ck_assert_int_eq(config_load_file(&cfg, path, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, ":5: unknown key 'limits.max_bodyy'"));
    unlink(path);

    ck_assert_int_eq(config_load_file(&cfg, "/nonexistent/stompws.conf", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "cannot open"));
}
END_TEST

/*
 * A file may give a value that starts with ';' ("key =;x": inih takes ';' for a comment only after
 * white space). --print-config must write it so that it loads back (fuzz_config found it printed
 * as "key = ;x", which reads back empty).
 */
START_TEST(test_print_loads_back_a_value_starting_with_semicolon)
{
    char path[] = "/tmp/stompws-config-XXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    close(fd);
    struct config cfg, back;
    config_defaults(&cfg);
    write_file(path, "[auth]\nallow_origin =;https://a.example\n");
    ck_assert_int_eq(config_load_file(&cfg, path, err, sizeof(err)), 0);
    ck_assert_str_eq(cfg.auth_allow_origin, ";https://a.example");
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    config_print(&cfg, f);
    fclose(f);
    config_defaults(&back);
    ck_assert_int_eq(config_load_file(&back, path, err, sizeof(err)), 0);
    ck_assert_str_eq(back.auth_allow_origin, ";https://a.example");
    unlink(path);
}
END_TEST

/* [compression]: on by default, a switch that reads on/off and friends, a level in 1..9. */
START_TEST(test_compression_keys)
{
    struct config cfg;
    config_defaults(&cfg);
    ck_assert(cfg.compression_enabled);
    ck_assert_uint_eq(cfg.compression_min_size, 256);
    ck_assert_uint_eq(cfg.compression_level, 6);
    ck_assert_int_eq(config_set_dotted(&cfg, "compression.enabled", "off", err, sizeof(err)), 0);
    ck_assert(!cfg.compression_enabled);
    ck_assert_int_eq(config_set_dotted(&cfg, "compression.enabled", "true", err, sizeof(err)), 0);
    ck_assert(cfg.compression_enabled);
    ck_assert_int_eq(config_set_dotted(&cfg, "compression.enabled", "maybe", err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "on or off"));
    ck_assert_int_eq(config_set_dotted(&cfg, "compression.min_size", "1k", err, sizeof(err)), 0);
    ck_assert_uint_eq(cfg.compression_min_size, 1024);
    ck_assert_int_eq(config_set_dotted(&cfg, "compression.level", "10", err, sizeof(err)), 0);
    ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), -1);
    ck_assert_ptr_nonnull(strstr(err, "compression.level"));
    ck_assert_int_eq(config_set_dotted(&cfg, "compression.level", "1", err, sizeof(err)), 0);
    ck_assert_int_eq(config_validate(&cfg, err, sizeof(err)), 0);
    /* --print-config writes it back in a form that loads */
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    config_print(&cfg, out);
    fclose(out);
    ck_assert_ptr_nonnull(
        strstr(text, "[compression]\nenabled = on\nmin_size = 1024\nlevel = 1\n"));
    free(text);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_defaults);
    tcase_add_test(tc, test_addresses);
    tcase_add_test(tc, test_set_values_and_errors);
    tcase_add_test(tc, test_numbers_digits_only);
    tcase_add_test(tc, test_file_and_line_numbers);
    tcase_add_test(tc, test_print_loads_back_a_value_starting_with_semicolon);
    tcase_add_test(tc, test_compression_keys);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
