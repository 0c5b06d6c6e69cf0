/*
 * fuzz_config.c - libFuzzer harness for broker/config: INI files through inih and
 * config_load_file(),
 * `--set section.key=value` overrides through config_set_dotted(), config_validate() and
 * config_print().
 *
 * Input layout: byte 0 picks the mode (bit 0) and the size of the caller's error buffer (bits
 * 1-2: roomy, or small enough to cut every message); the rest is an INI file (file mode) or
 * "section.key=value" lines (override mode).
 *
 * File mode: the bytes, NULs and all, are the contents of an in-memory file (memfd) loaded with
 * config_load_file(). Override mode: each line is one config_set_dotted() call. Checks: every call
 * answers 0 or -1; an error message is never empty, ends inside the caller's buffer and writes
 * nothing past it; a refused override leaves the config exactly as it was, an accepted one can be
 * applied again with no change; sizes, milliseconds and addresses accepted for a few known keys
 * follow the documented grammar (digits, k/m/g suffix for sizes, HOST:PORT or off); and a config
 * that loaded prints (config_print) to an INI file that loads back and prints the same.
 */
#include <ctype.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <ini.h>

#include "broker/base/config.h"
#include "tests/fuzz/fuzz.h"

/* The longest line config_load_file() reads whole: CONFIG_LINE_MAX in broker/config.c (4096,
 * set through Debian inih's ini_max_line) holds the line, LF and NUL (and CR). */
#define PRINTABLE_LINE (4096 - 3)

static const size_t err_sizes[4] = {512, 48, 1, 16};

/* An error buffer with a fence after the part the callee is told about. */
#define ERR_ROOM  512
#define ERR_FENCE 16
#define FENCE     0x5A

struct errbuf {
    char text[ERR_ROOM + ERR_FENCE];
    size_t len; /* what the callee may write */
};

static void err_reset(struct errbuf *e)
{
    memset(e->text, FENCE, sizeof(e->text));
}

/* After a failure: a NUL-terminated message inside len, nothing written after it. */
static void check_err(const struct errbuf *e, int rc)
{
    CHECK(rc == 0 || rc == -1);
    for (size_t i = e->len; i < sizeof(e->text); i++)
        CHECK((unsigned char)e->text[i] == FENCE);
    if (rc == 0)
        return;
    CHECK(memchr(e->text, '\0', e->len) != NULL);
    CHECK(e->len == 1 || e->text[0] != '\0');
}

/* A file in memory, reached by a path like any config file. */
static int mem_fd = -1;
static char mem_path[64];

static const char *mem_file(const void *p, size_t n)
{
    if (mem_fd < 0) {
        mem_fd = memfd_create("fuzz-config", 0);
        CHECK(mem_fd >= 0);
        snprintf(mem_path, sizeof(mem_path), "/proc/self/fd/%d", mem_fd);
    }
    CHECK(ftruncate(mem_fd, 0) == 0);
    CHECK(n == 0 || pwrite(mem_fd, p, n, 0) == (ssize_t)n);
    return mem_path;
}

/* config_print() into a heap string (owned by the caller). */
static char *print_config(const struct config *cfg, size_t *len)
{
    char *text = NULL;
    FILE *out = open_memstream(&text, len);
    CHECK(out != NULL);
    config_print(cfg, out);
    CHECK(fclose(out) == 0);
    return text;
}

/* The next line of *text (without its LF) and its length; NULL at the end. */
static const char *next_line(const char **text, size_t *len)
{
    const char *line = *text;
    if (*line == '\0')
        return NULL;
    const char *nl = strchr(line, '\n');
    *len = nl != NULL ? (size_t)(nl - line) : strlen(line);
    *text = line + *len + (nl != NULL);
    return line;
}

/* text without the lines an INI file cannot carry (see PRINTABLE_LINE); owned by the caller. */
static char *without_long_lines(const char *text, size_t *out_len)
{
    char *out = malloc(strlen(text) + 1);
    CHECK(out != NULL);
    size_t n = 0, len;
    for (const char *line; (line = next_line(&text, &len)) != NULL;) {
        if (len > PRINTABLE_LINE)
            continue;
        memcpy(out + n, line, len);
        n += len;
        out[n++] = '\n';
    }
    out[n] = '\0';
    *out_len = n;
    return out;
}

/*
 * What config_print() writes loads back into a config that prints the same, line for line (a
 * redis password is printed as "***" and stays so). Lines past the reader's buffer (over 4093
 * bytes, longer than any value a key holds) are left out of the file and of the comparison.
 * Values an INI line cannot carry (surrounding spaces, a ';' comment) are the caller's to rule
 * out.
 */
static void check_print_round_trip(const struct config *cfg)
{
    size_t len, loadable_len, len2;
    char *text = print_config(cfg, &len);
    char *loadable = without_long_lines(text, &loadable_len);
    struct config back;
    config_defaults(&back);
    struct errbuf e = {.len = ERR_ROOM};
    err_reset(&e);
    CHECK(config_load_file(&back, mem_file(loadable, loadable_len), e.text, e.len) == 0);
    char *text2 = print_config(&back, &len2);
    const char *a = text, *b = text2, *la, *lb;
    size_t alen, blen;
    while ((la = next_line(&a, &alen)) != NULL) {
        lb = next_line(&b, &blen);
        CHECK(lb != NULL);
        CHECK(alen > PRINTABLE_LINE || (alen == blen && memcmp(la, lb, alen) == 0));
    }
    CHECK(next_line(&b, &blen) == NULL);
    free(text);
    free(loadable);
    free(text2);
}

static void check_validate(const struct config *cfg, size_t err_len)
{
    struct errbuf e = {.len = err_len};
    err_reset(&e);
    check_err(&e, config_validate(cfg, e.text, e.len));
}

static void file_mode(const uint8_t *in, size_t len, size_t err_len)
{
    struct config cfg;
    config_defaults(&cfg);
    struct errbuf e = {.len = err_len};
    err_reset(&e);
    int rc = config_load_file(&cfg, mem_file(in, len), e.text, e.len);
    check_err(&e, rc);
    check_validate(&cfg, err_len);
    if (rc == 0)
        check_print_round_trip(&cfg);
}

/* ---- override mode --------------------------------------------------------------------------- */

static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

/* docs/CONFIG.md's grammar for a few keys of each numeric and address type. */
static bool follows_grammar(const char *key, const char *v)
{
    static const char *const sizes[] = {"limits.max_body", "limits.max_ws_message",
                                        "queue.prefetch"};
    static const char *const ms[] = {"heartbeat.min_ms", "limits.connect_timeout_ms"};
    static const char *const addrs[] = {"server.ws", "server.tcp", "server.http"};
    size_t n = strlen(v);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
        if (strcmp(key, sizes[i]) == 0)
            return all_digits(v, n) ||
                   (n >= 2 && all_digits(v, n - 1) && strchr("kKmMgG", v[n - 1]) != NULL);
    for (size_t i = 0; i < sizeof(ms) / sizeof(ms[0]); i++)
        if (strcmp(key, ms[i]) == 0)
            return all_digits(v, n);
    for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        if (strcmp(key, addrs[i]) != 0)
            continue;
        const char *colon = strrchr(v, ':');
        return strcmp(v, "off") == 0 || (colon != NULL && all_digits(colon + 1, strlen(colon + 1)));
    }
    return true;
}

/* An INI line can carry the value as config_print() writes it (inih strips isspace()). */
static bool ini_safe(const char *v)
{
    size_t n = strlen(v);
    if (n > 0 && (isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1])))
        return false;
    return strpbrk(v, ";#\r\n") == NULL;
}

/* One "section.key=value" line (value "" without '='). Returns false if the value is unsafe. */
static bool apply_override(struct config *cfg, char *line, size_t err_len)
{
    char *eq = strchr(line, '=');
    const char *value = "";
    if (eq != NULL) {
        *eq = '\0';
        value = eq + 1;
    }
    struct config before = *cfg;
    struct errbuf e = {.len = err_len};
    err_reset(&e);
    int rc = config_set_dotted(cfg, line, value, e.text, e.len);
    check_err(&e, rc);
    if (rc != 0) {
        CHECK(memcmp(&before, cfg, sizeof(before)) == 0);
        return true;
    }
    CHECK(follows_grammar(line, value));
    struct config after = *cfg;
    err_reset(&e);
    CHECK(config_set_dotted(cfg, line, value, e.text, e.len) == 0);
    CHECK(memcmp(&after, cfg, sizeof(after)) == 0);
    return ini_safe(value);
}

static void override_mode(const uint8_t *in, size_t len, size_t err_len)
{
    char *text = malloc(len + 1);
    CHECK(text != NULL);
    memcpy(text, in, len);
    text[len] = '\0';
    struct config cfg;
    config_defaults(&cfg);
    bool printable = true;
    for (char *line = text, *next; line != NULL; line = next) {
        next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        printable &= apply_override(&cfg, line, err_len);
    }
    check_validate(&cfg, err_len);
    if (printable)
        check_print_round_trip(&cfg);
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t err_len = err_sizes[(data[0] >> 1) & 3];
    if (data[0] & 1)
        override_mode(data + 1, size - 1, err_len);
    else
        file_mode(data + 1, size - 1, err_len);
    return 0;
}
