/*
 * bench/result.c - merging the workers' figures and printing them: a table for people and one
 * JSON line for scripts (the last line on stdout; see docs/PERFORMANCE.md for its fields).
 */
#include "bench/bench.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* The generator may be what limits a run when one of its processes used this share of a core. */
#define SATURATED_SHARE 0.9

void bench_errors_add(struct bench_errors *e, const char *text, uint64_t n)
{
    e->total += n;
    for (unsigned i = 0; i < BENCH_ERROR_KINDS; i++) {
        if (e->count[i] == 0) {
            snprintf(e->text[i], sizeof(e->text[i]), "%s", text);
            e->count[i] = n;
            return;
        }
        if (strncmp(e->text[i], text, BENCH_ERROR_TEXT - 1) == 0) {
            e->count[i] += n;
            return;
        }
    }
}

void result_merge(struct bench_result *dst, const struct bench_result *src)
{
    dst->conns_wanted += src->conns_wanted;
    dst->conns_up += src->conns_up;
    dst->conns_end += src->conns_end;
    dst->subs_up += src->subs_up;
    dst->pubs_up += src->pubs_up;
    dst->sent += src->sent;
    dst->expected += src->expected;
    dst->received += src->received;
    dst->received_outside += src->received_outside;
    dst->arrived += src->arrived;
    dst->reordered += src->reordered;
    dst->duplicates += src->duplicates;
    dst->gaps += src->gaps;
    dst->bad_bodies += src->bad_bodies;
    dst->wire_bytes_in += src->wire_bytes_in;
    dst->compressed_in += src->compressed_in;
    dst->cycles += src->cycles;
    dst->setup_s = src->setup_s > dst->setup_s ? src->setup_s : dst->setup_s;
    dst->drain_s = src->drain_s > dst->drain_s ? src->drain_s : dst->drain_s;
    dst->window_s = src->window_s > dst->window_s ? src->window_s : dst->window_s;
    dst->cpu_user_s += src->cpu_user_s;
    dst->cpu_sys_s += src->cpu_sys_s;
    dst->cpu_window_s += src->cpu_window_s;
    for (unsigned i = 0; i < BENCH_ERROR_KINDS && src->errors.count[i] > 0; i++)
        bench_errors_add(&dst->errors, src->errors.text[i], src->errors.count[i]);
    /* Errors past the kinds kept still count. */
    uint64_t listed = 0;
    for (unsigned i = 0; i < BENCH_ERROR_KINDS; i++)
        listed += src->errors.count[i];
    dst->errors.total += src->errors.total - listed;
    hdr_merge(&dst->latency, &src->latency);
}

/* ---- derived figures ---- */

struct figures {
    uint64_t loss;
    double loss_ratio;
    double deliveries_per_s;
    double publish_rate;
    double connects_per_s;
    double cpu_s;
    bool saturated;
    bool drain_cut;         /* the drain ran into --drain */
    const char *latency_of; /* what the histogram holds */
};

/* Whether the run sends messages (idle does only when it broadcasts). */
static bool has_messages(const struct bench_options *o)
{
    return o->scenario != SCENARIO_CONNECT_STORM &&
           (o->scenario != SCENARIO_IDLE || o->publishers > 0);
}

static void derive(const struct bench_options *o, const struct bench_result *r, double share,
                   struct figures *f)
{
    memset(f, 0, sizeof(*f));
    f->loss = r->expected > r->received ? r->expected - r->received : 0;
    f->loss_ratio = r->expected > 0 ? (double)f->loss / (double)r->expected : 0.0;
    f->deliveries_per_s = (double)r->arrived / o->duration;
    f->publish_rate = (double)r->sent / o->duration;
    f->connects_per_s = (double)r->cycles / o->duration;
    f->cpu_s = r->cpu_user_s + r->cpu_sys_s;
    f->saturated = share >= SATURATED_SHARE;
    f->drain_cut = has_messages(o) && r->drain_s >= o->drain * 0.98;
    f->latency_of = !has_messages(o) && o->scenario == SCENARIO_IDLE ? "connect to subscribed"
                    : o->scenario == SCENARIO_CONNECT_STORM          ? "connect to CONNECTED"
                                                                     : "end to end";
}

static double ms(uint64_t ns)
{
    return (double)ns / 1e6;
}

/* ---- the table ---- */

static void print_rate_line(const struct bench_options *o)
{
    if (!has_messages(o))
        return;
    if (o->rate > 0)
        printf("  rate            %.6g msgs/s per publisher", o->rate);
    else
        printf("  rate            saturating, at most %zu bytes outstanding per publisher",
               o->outstanding);
    if (o->size_max > o->size)
        printf("; bodies %zu..%zu B\n", o->size, o->size_max);
    else
        printf("; bodies %zu B\n", o->size);
}

static void print_latency(const struct bench_result *r, const struct figures *f)
{
    const struct hdr *h = &r->latency;
    if (h->count == 0) {
        printf("  latency ms      (none recorded)\n");
        return;
    }
    printf("  latency ms      p50 %.3f  p90 %.3f  p99 %.3f  p99.9 %.3f  max %.3f  (%s, n=%" PRIu64
           ")\n",
           ms(hdr_percentile(h, 50)), ms(hdr_percentile(h, 90)), ms(hdr_percentile(h, 99)),
           ms(hdr_percentile(h, 99.9)), ms(h->max), f->latency_of, h->count);
}

static void print_table(const struct bench_options *o, const struct bench_result *r,
                        const struct figures *f, double wall_s, double share)
{
    printf("stompws-bench %s", scenario_name(o->scenario));
    for (unsigned i = 0; i < o->url_count; i++)
        printf(" %s", o->urls[i]);
    printf("%s%s\n", o->label[0] != '\0' ? "  " : "", o->label);
    if (o->scenario != SCENARIO_CONNECT_STORM)
        printf("  connections     %" PRIu64 " of %" PRIu64 " up after %.2f s (%" PRIu64
               " subscribers, %" PRIu64 " publishers); %" PRIu64 " up at the end\n",
               r->conns_up, r->conns_wanted, r->setup_s, r->subs_up, r->pubs_up, r->conns_end);
    print_rate_line(o);
    printf("  window          %.2f s after %.2f s of warm-up; drain %.2f s; %u process%s\n",
           o->duration, o->warmup, r->drain_s, o->procs, o->procs == 1 ? "" : "es");
    if (has_messages(o)) {
        printf("  sent            %" PRIu64 " (%.0f msgs/s)\n", r->sent, f->publish_rate);
        printf("  received        %" PRIu64 " of %" PRIu64 " expected\n", r->received, r->expected);
        printf("  deliveries      %.0f/s (%" PRIu64 " arrived in the window)\n",
               f->deliveries_per_s, r->arrived);
        printf("  loss            %" PRIu64 " (%.4f %%)  gaps %" PRIu64 "  reordered %" PRIu64
               "  duplicates %" PRIu64 "\n",
               f->loss, f->loss_ratio * 100, r->gaps, r->reordered, r->duplicates);
    }
    if (o->scenario == SCENARIO_CONNECT_STORM)
        printf("  cycles          %" PRIu64 " (%.0f connections/s, %u at once)\n", r->cycles,
               f->connects_per_s, o->concurrency);
    print_latency(r, f);
    printf("  errors          %" PRIu64 "\n", r->errors.total);
    for (unsigned i = 0; i < BENCH_ERROR_KINDS && r->errors.count[i] > 0; i++)
        printf("    %8" PRIu64 " x %s\n", r->errors.count[i], r->errors.text[i]);
    printf("  generator CPU   %.2f s (user %.2f, sys %.2f) in %.2f s; busiest process %.0f %% of "
           "a core in the window\n",
           f->cpu_s, r->cpu_user_s, r->cpu_sys_s, wall_s, share * 100);
    if (f->saturated)
        printf("  WARNING: the generator used %.0f %% of a core: it may be the bottleneck "
               "(more --procs, or a bigger machine)\n",
               share * 100);
    if (f->drain_cut)
        printf("  WARNING: the drain ran into --drain %.1f s: messages may still have been in "
               "flight\n",
               o->drain);
}

/* ---- the JSON line ---- */

static void json_string(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            printf("\\%c", c);
        else if (c < 0x20)
            printf("\\u%04x", c);
        else
            putchar(c);
    }
    putchar('"');
}

static void json_params(const struct bench_options *o)
{
    printf("\"params\":{\"publishers\":%u,\"subscribers\":%u,\"pairs\":%u,\"connections\":%u,"
           "\"topics\":%u,\"concurrency\":%u,\"rate\":%.6g,\"rate_per\":\"publisher\","
           "\"outstanding\":%zu,\"size\":%zu,\"size_max\":%zu,\"ack\":",
           o->publishers, o->subscribers, o->pairs, o->connections, o->topics, o->concurrency,
           o->rate, o->outstanding, o->size, o->size_max);
    json_string(o->ack);
    printf(",\"dest\":");
    json_string(o->dest);
    printf(",\"warmup_s\":%.6g,\"duration_s\":%.6g,\"drain_s\":%.6g,\"procs\":%u,\"sources\":%u,"
           "\"connect_rate\":%.6g,\"deflate\":%s,\"body\":\"%s\",\"publisher_urls\":%u}",
           o->warmup, o->duration, o->drain, o->procs, o->sources, o->connect_rate,
           o->targets[0].deflate ? "true" : "false", o->json_body ? "json" : "letters",
           o->publisher_urls);
}

static void json_latency(const struct bench_result *r, const struct figures *f)
{
    const struct hdr *h = &r->latency;
    printf("\"latency_ms\":{\"of\":\"%s\",\"count\":%" PRIu64, f->latency_of, h->count);
    if (h->count > 0)
        printf(",\"min\":%.4f,\"mean\":%.4f,\"p50\":%.4f,\"p90\":%.4f,\"p99\":%.4f,"
               "\"p999\":%.4f,\"max\":%.4f",
               ms(h->min), hdr_mean(h) / 1e6, ms(hdr_percentile(h, 50)), ms(hdr_percentile(h, 90)),
               ms(hdr_percentile(h, 99)), ms(hdr_percentile(h, 99.9)), ms(h->max));
    printf("}");
}

static void json_errors(const struct bench_result *r)
{
    printf("\"errors\":%" PRIu64 ",\"error_kinds\":[", r->errors.total);
    for (unsigned i = 0; i < BENCH_ERROR_KINDS && r->errors.count[i] > 0; i++) {
        printf("%s{\"count\":%" PRIu64 ",\"message\":", i > 0 ? "," : "", r->errors.count[i]);
        json_string(r->errors.text[i]);
        printf("}");
    }
    printf("]");
}

static void json_warnings(const struct bench_result *r, const struct figures *f)
{
    const char *sep = "";
    printf("\"warnings\":[");
    if (f->saturated) {
        printf("\"generator near 100%% of a core: it may be the bottleneck\"");
        sep = ",";
    }
    if (f->drain_cut) {
        printf("%s\"drain ran into --drain: messages may still have been in flight\"", sep);
        sep = ",";
    }
    if (r->conns_up < r->conns_wanted)
        printf("%s\"not every connection came up\"", sep);
    printf("]");
}

static void print_json(const struct bench_options *o, const struct bench_result *r,
                       const struct figures *f, double wall_s, double share)
{
    printf("{\"tool\":\"stompws-bench\",\"label\":");
    json_string(o->label);
    printf(",\"scenario\":\"%s\",\"url\":", scenario_name(o->scenario));
    json_string(o->urls[0]);
    printf(",\"urls\":[");
    for (unsigned i = 0; i < o->url_count; i++) {
        printf("%s", i > 0 ? "," : "");
        json_string(o->urls[i]);
    }
    printf("],\"transport\":\"%s\",", o->targets[0].websocket ? "ws" : "tcp");
    json_params(o);
    printf(",\"connections\":{\"wanted\":%" PRIu64 ",\"up\":%" PRIu64 ",\"up_at_end\":%" PRIu64
           ",\"subscribers_up\":%" PRIu64 ",\"publishers_up\":%" PRIu64 ",\"setup_s\":%.3f}",
           r->conns_wanted, r->conns_up, r->conns_end, r->subs_up, r->pubs_up, r->setup_s);
    printf(",\"sent\":%" PRIu64 ",\"expected\":%" PRIu64 ",\"received\":%" PRIu64
           ",\"received_outside_window\":%" PRIu64 ",\"arrived_in_window\":%" PRIu64
           ",\"deliveries_per_s\":%.1f"
           ",\"publish_rate\":%.1f,\"loss\":%" PRIu64 ",\"loss_ratio\":%.6f,\"gaps\":%" PRIu64
           ",\"reordered\":%" PRIu64 ",\"duplicates\":%" PRIu64 ",\"bad_bodies\":%" PRIu64
           ",\"cycles\":%" PRIu64 ",\"connects_per_s\":%.1f,\"wire_bytes_in\":%" PRIu64
           ",\"compressed_in\":%" PRIu64 ",",
           r->sent, r->expected, r->received, r->received_outside, r->arrived, f->deliveries_per_s,
           f->publish_rate, f->loss, f->loss_ratio, r->gaps, r->reordered, r->duplicates,
           r->bad_bodies, r->cycles, f->connects_per_s, r->wire_bytes_in, r->compressed_in);
    json_latency(r, f);
    printf(",");
    json_errors(r);
    printf(",\"cpu_s\":%.3f,\"cpu_user_s\":%.3f,\"cpu_sys_s\":%.3f,\"cpu_window_share_max\":%.3f,"
           "\"generator_saturated\":%s,\"wall_s\":%.3f,\"drain_s\":%.3f,",
           f->cpu_s, r->cpu_user_s, r->cpu_sys_s, share, f->saturated ? "true" : "false", wall_s,
           r->drain_s);
    json_warnings(r, f);
    printf("}\n");
}

void result_print(const struct bench_options *o, const struct bench_result *r, double wall_s,
                  double cpu_share_max)
{
    struct figures f;
    derive(o, r, cpu_share_max, &f);
    if (!o->json_only)
        print_table(o, r, &f, wall_s, cpu_share_max);
    print_json(o, r, &f, wall_s, cpu_share_max);
    fflush(stdout);
}
