/*
 * stomp_bench.c - micro-benchmark of the stomp/ codec (not a test).
 *
 *   stomp-bench [SECONDS]   minimum seconds per case (default 1.0)
 *
 * Parser cases: streams of SEND frames (content-length bodies of 100 B and 64 KiB) parsed from
 * one buffer holding the whole stream, and fed in 4 KiB chunks as a socket or WebSocket layer
 * would. Encoder case: MESSAGE heads (seven headers) as the broker builds one per delivery.
 * Prints frames/s and MB/s (MB = 10^6 bytes of wire input or output) per case.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "stomp/encode.h"
#include "stomp/parser.h"

static double now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A stream of `count` SEND frames with `body_len`-octet bodies; caller frees *out. */
static size_t build_send_stream(size_t count, size_t body_len, char **out)
{
    char head[256];
    int head_len = snprintf(head, sizeof head,
                            "SEND\ndestination:/topic/prices.eu.equities\n"
                            "content-type:application/json\nreceipt:r-1\n"
                            "content-length:%zu\n\n",
                            body_len);
    size_t frame_len = (size_t)head_len + body_len + 1;
    char *buf = malloc(frame_len * count);
    if (buf == NULL)
        return 0;
    for (size_t i = 0; i < count; i++) {
        char *f = buf + i * frame_len;
        memcpy(f, head, (size_t)head_len);
        memset(f + head_len, 'a' + (int)(i % 26), body_len);
        f[frame_len - 1] = '\0';
    }
    *out = buf;
    return frame_len * count;
}

/* Parses buf[0..len) fed `chunk` octets at a time (0: all at once); returns frames seen. */
static size_t parse_stream(struct stomp_parser *p, const char *buf, size_t len, size_t chunk,
                           size_t *body_octets)
{
    size_t frames = 0, off = 0;
    if (chunk == 0)
        chunk = len;
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;
        size_t pos = 0;
        while (pos < n) {
            struct stomp_frame f;
            enum stomp_event ev;
            ssize_t used = stomp_parser_feed(p, buf + off + pos, n - pos, &f, &ev);
            if (used < 0) {
                fprintf(stderr, "parse error: %s\n", stomp_parser_error_message(p));
                exit(1);
            }
            if (ev == STOMP_EVENT_FRAME) {
                frames++;
                *body_octets += f.body_len;
            }
            pos += (size_t)used;
        }
        off += n;
    }
    return frames;
}

struct result {
    double seconds;
    size_t frames;
    size_t octets;
};

static void report(const char *name, const struct result *r)
{
    printf("%-44s %12.0f frames/s %10.1f MB/s\n", name, (double)r->frames / r->seconds,
           (double)r->octets / r->seconds / 1e6);
}

static void bench_parse(const char *name, size_t count, size_t body_len, size_t chunk,
                        double min_seconds)
{
    char *buf = NULL;
    size_t len = build_send_stream(count, body_len, &buf);
    if (len == 0) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    struct stomp_limits limits;
    stomp_limits_default(&limits);
    struct stomp_parser *p = stomp_parser_new(&limits);
    struct result r = {0};
    size_t body_octets = 0;
    double start = now_seconds();
    do {
        size_t frames = parse_stream(p, buf, len, chunk, &body_octets);
        if (frames != count) {
            fprintf(stderr, "%s: %zu frames, expected %zu\n", name, frames, count);
            exit(1);
        }
        r.frames += frames;
        r.octets += len;
        r.seconds = now_seconds() - start;
    } while (r.seconds < min_seconds);
    if (body_octets != r.frames * body_len) {
        fprintf(stderr, "%s: body octets mismatch\n", name);
        exit(1);
    }
    report(name, &r);
    stomp_parser_free(p);
    free(buf);
}

/* MESSAGE heads with the headers a delivery carries; the body is never copied. */
static void bench_encode_heads(double min_seconds)
{
    static const char body[100] = {0};
    struct stomp_header headers[] = {
        {"subscription", 12, "sub-0", 5},
        {"message-id", 10, "node1-000000012345", 18},
        {"destination", 11, "/topic/prices.eu.equities", 25},
        {"content-type", 12, "application/json", 16},
        {"ack", 3, "node1-000000012345", 18},
        {"receipt", 7, "r-1", 3},
        {"x-trace", 7, "a:b\\c", 5}, /* one header that needs escaping */
    };
    struct stomp_frame f = {STOMP_CMD_MESSAGE, headers, 7, body, sizeof body};
    char out[512];
    struct result r = {0};
    volatile size_t sink = 0;
    double start = now_seconds();
    do {
        for (int i = 0; i < 100000; i++) {
            headers[1].value_len = 18 - (size_t)(i & 1); /* defeat loop-invariant hoisting */
            size_t n = stomp_encode_head(out, sizeof out, STOMP_V1_2, &f, false);
            sink += n + (unsigned char)out[n - 2];
            r.octets += n;
        }
        r.frames += 100000;
        r.seconds = now_seconds() - start;
    } while (r.seconds < min_seconds);
    (void)sink;
    report("encode MESSAGE head (7 headers, 1.2)", &r);
}

int main(int argc, char **argv)
{
    double min_seconds = argc > 1 ? atof(argv[1]) : 1.0;
    if (min_seconds <= 0) {
        fprintf(stderr, "usage: stomp-bench [SECONDS]\n");
        return 2;
    }
    bench_parse("parse SEND 100 B body, whole buffer", 100000, 100, 0, min_seconds);
    bench_parse("parse SEND 100 B body, 4 KiB chunks", 100000, 100, 4096, min_seconds);
    bench_parse("parse SEND 64 KiB body, whole buffer", 512, 65536, 0, min_seconds);
    bench_parse("parse SEND 64 KiB body, 4 KiB chunks", 512, 65536, 4096, min_seconds);
    bench_encode_heads(min_seconds);
    return 0;
}
