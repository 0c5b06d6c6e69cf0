/*
 * ws_bench.c - micro-benchmark of the ws/ decoder and UTF-8 check (not a test).
 *
 * Builds masked client frames in memory, then times ws_decoder_decode() over them: header parse,
 * in-place unmasking and, for text, incremental UTF-8 validation. Before each timed pass the
 * masked bytes are restored from a pristine copy (untimed), since decoding unmasks in place.
 * Also times ws_utf8_valid(), which the broker runs on every outbound message.
 *
 * Usage: ws-bench [seconds-per-case]   (default 0.5)
 * Throughput is payload bytes per second (GB = 1e9 bytes); the median of 5 runs is reported.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ws/frame.h"
#include "ws/utf8.h"

enum { RUNS = 5, BATCH_BYTES = 1 << 20 };

static const uint8_t bench_key[4] = {0x12, 0x34, 0x56, 0x78};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Fills out[0..n) with text made of pattern repeated; keeps UTF-8 whole at the end. */
static void fill_text(uint8_t *out, size_t n, const char *pattern)
{
    size_t plen = strlen(pattern), i = 0;
    while (i < n) {
        size_t take = n - i < plen ? n - i : plen;
        memcpy(out + i, pattern, take);
        i += take;
    }
    while (n > 0 && !ws_utf8_valid(out, n))
        out[--n] = ' '; /* replace a cut character at the end with spaces */
}

/* A batch of identical masked frames (about BATCH_BYTES of wire bytes). */
struct batch {
    uint8_t *pristine; /* owned: masked wire bytes */
    uint8_t *work;     /* owned: decoded in place each run */
    size_t len;
    size_t payload_bytes;
    size_t frames;
};

static void batch_build(struct batch *b, enum ws_opcode op, const uint8_t *payload, size_t plen)
{
    size_t frame_len = WS_FRAME_HEADER_MAX + plen;
    b->frames = BATCH_BYTES / frame_len > 0 ? BATCH_BYTES / frame_len : 1;
    b->pristine = malloc(b->frames * frame_len);
    b->work = malloc(b->frames * frame_len);
    if (b->pristine == NULL || b->work == NULL) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    b->len = 0;
    for (size_t i = 0; i < b->frames; i++) {
        b->len += ws_frame_header_encode(b->pristine + b->len, op, true, plen, bench_key);
        memcpy(b->pristine + b->len, payload, plen);
        ws_mask(b->pristine + b->len, plen, bench_key, 0);
        b->len += plen;
    }
    b->payload_bytes = b->frames * plen;
}

static void batch_free(struct batch *b)
{
    free(b->pristine);
    free(b->work);
}

/* Decodes the whole batch in reads of read_size bytes; returns payload bytes seen. */
static size_t decode_batch(struct batch *b, size_t read_size)
{
    struct ws_decoder_config cfg;
    struct ws_decoder d;
    ws_decoder_config_default(&cfg);
    ws_decoder_init(&d, &cfg);
    size_t seen = 0;
    for (size_t off = 0; off < b->len;) {
        size_t end = b->len - off < read_size ? b->len : off + read_size;
        while (off < end) {
            struct ws_event ev;
            ssize_t r = ws_decoder_decode(&d, b->work + off, end - off, &ev);
            if (r < 0) {
                fprintf(stderr, "decode error: %s\n", ws_error_message((int)r));
                exit(1);
            }
            off += (size_t)r;
            seen += ev.len;
        }
    }
    return seen;
}

static void bench_decode(const char *name, enum ws_opcode op, const uint8_t *payload, size_t plen,
                         size_t read_size, double seconds)
{
    struct batch b;
    batch_build(&b, op, payload, plen);
    double rates[RUNS];
    for (int run = 0; run < RUNS; run++) {
        double spent = 0;
        size_t bytes = 0;
        while (spent < seconds / RUNS) {
            memcpy(b.work, b.pristine, b.len);
            double t0 = now();
            size_t seen = decode_batch(&b, read_size);
            spent += now() - t0;
            if (seen != b.payload_bytes) {
                fprintf(stderr, "%s: decoded %zu of %zu bytes\n", name, seen, b.payload_bytes);
                exit(1);
            }
            bytes += seen;
        }
        rates[run] = (double)bytes / spent;
    }
    qsort(rates, RUNS, sizeof(rates[0]), cmp_double);
    double frames_per_s = rates[RUNS / 2] / (double)(plen > 0 ? plen : 1);
    printf("decode  %-34s %7.2f GB/s  %8.2f M frames/s\n", name, rates[RUNS / 2] / 1e9,
           frames_per_s / 1e6);
    batch_free(&b);
}

static void bench_valid(const char *name, const uint8_t *p, size_t n, double seconds)
{
    double rates[RUNS];
    volatile size_t ok = 0;
    size_t reps = BATCH_BYTES / n > 0 ? BATCH_BYTES / n : 1;
    for (int run = 0; run < RUNS; run++) {
        double spent = 0;
        size_t bytes = 0;
        while (spent < seconds / RUNS) {
            double t0 = now();
            for (size_t i = 0; i < reps; i++)
                ok += ws_utf8_valid(p, n);
            spent += now() - t0;
            bytes += reps * n;
        }
        rates[run] = (double)bytes / spent;
    }
    if (ok == 0) {
        fprintf(stderr, "%s: not valid\n", name);
        exit(1);
    }
    qsort(rates, RUNS, sizeof(rates[0]), cmp_double);
    printf("valid   %-34s %7.2f GB/s\n", name, rates[RUNS / 2] / 1e9);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 0.5;
    if (seconds <= 0)
        seconds = 0.5;
    enum { BIG = 64 * 1024, SMALL = 100 };
    static uint8_t ascii[BIG], mixed[BIG], cyrillic[BIG], binary[BIG];
    fill_text(ascii, BIG,
              "MESSAGE\ndestination:/topic/prices\nsubscription:0\n\n{\"sym\":\"ACME\","
              "\"bid\":101.25,\"ask\":101.27,\"ts\":1700000000123}\n");
    fill_text(
        mixed, BIG,
        "{\"name\":\"Soci\xC3\xA9t\xC3\xA9 G\xC3\xA9n\xC3\xA9rale\",\"city\":\"M\xC3\xBCnchen\","
        "\"note\":\"\xE6\xA0\xAA\xE5\xBC\x8F\xE4\xBC\x9A\xE7\xA4\xBE\",\"mood\":"
        "\"\xF0\x9F\x98\x80\"}"
        "\n");
    fill_text(cyrillic, BIG,
              "\xD0\x9F\xD1\x80\xD0\xB8\xD0\xB2\xD0\xB5\xD1\x82 \xD0\xBC\xD0\xB8\xD1\x80 ");
    for (size_t i = 0; i < BIG; i++)
        binary[i] = (uint8_t)(i * 131 + 7);

    printf("ws-bench: %.2f s per case, median of %d runs, GB = 1e9 payload bytes\n", seconds, RUNS);
    bench_decode("text 64 KiB ASCII", WS_OP_TEXT, ascii, BIG, SIZE_MAX, seconds);
    bench_decode("text 64 KiB ASCII, 16 KiB reads", WS_OP_TEXT, ascii, BIG, 16384, seconds);
    bench_decode("text 64 KiB mixed UTF-8", WS_OP_TEXT, mixed, BIG, SIZE_MAX, seconds);
    bench_decode("text 64 KiB Cyrillic (2-byte)", WS_OP_TEXT, cyrillic, BIG, SIZE_MAX, seconds);
    bench_decode("binary 64 KiB (unmask only)", WS_OP_BINARY, binary, BIG, SIZE_MAX, seconds);
    bench_decode("text 100 B ASCII", WS_OP_TEXT, ascii, SMALL, SIZE_MAX, seconds);
    bench_decode("text 100 B ASCII, 4 KiB reads", WS_OP_TEXT, ascii, SMALL, 4096, seconds);
    bench_valid("64 KiB ASCII", ascii, BIG, seconds);
    bench_valid("64 KiB mixed UTF-8", mixed, BIG, seconds);
    bench_valid("64 KiB Cyrillic (2-byte)", cyrillic, BIG, seconds);
    bench_valid("100 B ASCII", ascii, SMALL, seconds);
    return 0;
}
