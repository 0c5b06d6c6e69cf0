/*
 * bench/stamp.h - what a publisher writes at the start of every body so subscribers can measure.
 *
 * The stamp is 42 ASCII octets, "TTTTTTTTTTTTTTTT PPPPPPPP SSSSSSSSSSSSSSSS": the send time
 * (CLOCK_MONOTONIC nanoseconds, 16 hex digits), the publisher id (8 hex digits) and its sequence
 * number (16 hex digits, from 0). ASCII keeps bodies valid UTF-8, so any broker sends them as text
 * frames and any tool can read them; publishers and subscribers run on the same machine, so one
 * monotonic clock serves both ends.
 *
 * What it must not do: allocate or do I/O.
 */
#ifndef STOMPWS_BENCH_STAMP_H
#define STOMPWS_BENCH_STAMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define STAMP_LEN 42

struct stamp {
    uint64_t sent_ns;   /* CLOCK_MONOTONIC when the message was due or written */
    uint32_t publisher; /* run-wide publisher id */
    uint64_t seq;       /* per publisher, from 0 */
};

/* Writes the STAMP_LEN octets of s at out (no NUL). */
void stamp_write(char *out, const struct stamp *s);

/* Reads a stamp from the start of body; false if body is shorter or not a stamp. */
bool stamp_read(const char *body, size_t len, struct stamp *s);

/*
 * What one subscriber knows of one publisher's sequence: the highest number seen and which of the
 * SEQ_TRACK_WINDOW numbers below it arrived, so a late arrival can be told from a duplicate (the
 * anti-replay window of IPsec). Zeroed means "nothing seen yet".
 */
#define SEQ_TRACK_WINDOW 64

struct seq_track {
    uint64_t next; /* one past the highest sequence number seen */
    uint64_t seen; /* bit i: number next - 1 - i arrived */
};

enum seq_verdict {
    SEQ_IN_ORDER,  /* above every number seen; *skipped says how many were jumped over */
    SEQ_LATE,      /* below the highest, not seen before (or too old to tell): reordered */
    SEQ_DUPLICATE, /* seen before */
};

enum seq_verdict seq_track_add(struct seq_track *t, uint64_t seq, uint64_t *skipped);

/* CLOCK_MONOTONIC in nanoseconds. */
uint64_t stamp_now_ns(void);

#endif
