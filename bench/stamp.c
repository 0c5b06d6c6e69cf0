/*
 * bench/stamp.c - body stamps (see stamp.h).
 */
#include "bench/stamp.h"

#include <time.h>

static const char hex_digits[] = "0123456789abcdef";

static void put_hex(char *out, uint64_t v, unsigned digits)
{
    for (unsigned i = digits; i > 0; i--) {
        out[i - 1] = hex_digits[v & 0xF];
        v >>= 4;
    }
}

/* Lower-case hex only, exactly `digits` of them. */
static bool get_hex(const char *in, unsigned digits, uint64_t *v)
{
    uint64_t r = 0;
    for (unsigned i = 0; i < digits; i++) {
        char c = in[i];
        unsigned d;
        if (c >= '0' && c <= '9')
            d = (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            d = (unsigned)(c - 'a' + 10);
        else
            return false;
        r = r << 4 | d;
    }
    *v = r;
    return true;
}

void stamp_write(char *out, const struct stamp *s)
{
    put_hex(out, s->sent_ns, 16);
    out[16] = ' ';
    put_hex(out + 17, s->publisher, 8);
    out[25] = ' ';
    put_hex(out + 26, s->seq, 16);
}

bool stamp_read(const char *body, size_t len, struct stamp *s)
{
    uint64_t publisher;
    if (len < STAMP_LEN || body[16] != ' ' || body[25] != ' ')
        return false;
    if (!get_hex(body, 16, &s->sent_ns) || !get_hex(body + 17, 8, &publisher) ||
        !get_hex(body + 26, 16, &s->seq))
        return false;
    s->publisher = (uint32_t)publisher;
    return true;
}

enum seq_verdict seq_track_add(struct seq_track *t, uint64_t seq, uint64_t *skipped)
{
    *skipped = 0;
    if (seq >= t->next) {
        uint64_t shift = seq + 1 - t->next;
        *skipped = seq - t->next;
        t->seen = shift >= SEQ_TRACK_WINDOW ? 1 : (t->seen << shift) | 1;
        t->next = seq + 1;
        return SEQ_IN_ORDER;
    }
    uint64_t back = t->next - 1 - seq;
    if (back < SEQ_TRACK_WINDOW) {
        uint64_t bit = (uint64_t)1 << back;
        if (t->seen & bit)
            return SEQ_DUPLICATE;
        t->seen |= bit;
    }
    return SEQ_LATE;
}

uint64_t stamp_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
