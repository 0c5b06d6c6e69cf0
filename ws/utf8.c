/*
 * ws/utf8.c - UTF-8 validation as a "shift DFA".
 *
 * Each byte maps to one 64-bit row; the row holds, for every DFA state, the next state. States
 * are stored as bit offsets (multiples of 6), so one step is `state = row[byte] >> (state & 63)`:
 * a table load that does not depend on the state, then one shift on the critical path. ASCII
 * runs are skipped a machine word at a time while the DFA is between characters. The table is
 * written out by hand from the byte ranges of RFC 3629 section 4 (no code taken from elsewhere).
 */
#include "ws/utf8.h"

#include <string.h>

/* States, as bit offsets into a row. */
#define S_ACC 0u  /* between characters */
#define S_REJ 6u  /* invalid input seen (sticky) */
#define S_C1  12u /* one continuation byte (80..BF) left */
#define S_C2  18u /* two continuation bytes left */
#define S_E0  24u /* after E0: next A0..BF (no overlong 3-byte forms) */
#define S_ED  30u /* after ED: next 80..9F (no surrogates) */
#define S_F0  36u /* after F0: next 90..BF (no overlong 4-byte forms) */
#define S_F1  42u /* after F1..F3: next 80..BF, then two more */
#define S_F4  48u /* after F4: next 80..8F (nothing above U+10FFFF) */

#define T(from, to) ((uint64_t)(to) << (from))
/* One row: the next state from each state on a byte of this class (S_REJ always stays S_REJ). */
#define ROW(acc, c1, c2, e0, ed, f0, f1, f4)                                                       \
    (T(S_ACC, acc) | T(S_REJ, S_REJ) | T(S_C1, c1) | T(S_C2, c2) | T(S_E0, e0) | T(S_ED, ed) |     \
     T(S_F0, f0) | T(S_F1, f1) | T(S_F4, f4))

/*                       ACC    C1     C2     E0     ED     F0     F1     F4 */
#define R_ASCII ROW(S_ACC, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ) /* 00..7F */
#define R_80    ROW(S_REJ, S_ACC, S_C1, S_REJ, S_C1, S_REJ, S_C2, S_C2)     /* 80..8F */
#define R_90    ROW(S_REJ, S_ACC, S_C1, S_REJ, S_C1, S_C2, S_C2, S_REJ)     /* 90..9F */
#define R_A0    ROW(S_REJ, S_ACC, S_C1, S_C1, S_REJ, S_C2, S_C2, S_REJ)     /* A0..BF */
#define R_BAD   ROW(S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ) /* C0 C1 F5..FF */
#define R_LEAD2 ROW(S_C1, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)  /* C2..DF */
#define R_E0    ROW(S_E0, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)  /* E0 */
#define R_LEAD3 ROW(S_C2, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)  /* E1..EC EE EF */
#define R_ED    ROW(S_ED, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)  /* ED */
#define R_F0    ROW(S_F0, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)  /* F0 */
#define R_LEAD4 ROW(S_F1, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)  /* F1..F3 */
#define R_F4    ROW(S_F4, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ, S_REJ)  /* F4 */

#define X2(r)  r, r
#define X4(r)  X2(r), X2(r)
#define X8(r)  X4(r), X4(r)
#define X16(r) X8(r), X8(r)
#define X32(r) X16(r), X16(r)
#define X64(r) X32(r), X32(r)

static const uint64_t utf8_rows[] = {
    X64(R_ASCII), X64(R_ASCII),                    /* 00..7F */
    X16(R_80),                                     /* 80..8F */
    X16(R_90),                                     /* 90..9F */
    X32(R_A0),                                     /* A0..BF */
    X2(R_BAD),                                     /* C0..C1 */
    X2(R_LEAD2),  X4(R_LEAD2),  X8(R_LEAD2),       /* C2..CF */
    X16(R_LEAD2),                                  /* D0..DF */
    R_E0,         X8(R_LEAD3),  X4(R_LEAD3),       /* E0, E1..EC */
    R_ED,         X2(R_LEAD3),                     /* ED, EE..EF */
    R_F0,         X2(R_LEAD4),  R_LEAD4,     R_F4, /* F0, F1..F3, F4 */
    X8(R_BAD),    X2(R_BAD),    R_BAD,             /* F5..FF */
};
_Static_assert(sizeof(utf8_rows) / sizeof(utf8_rows[0]) == 256, "one row per byte value");

#define HIGH_BITS 0x8080808080808080ull

static uint64_t load64(const uint8_t *p)
{
    uint64_t w;
    memcpy(&w, p, sizeof(w));
    return w;
}

/* Index of the first byte at or after i that is not ASCII (or n). */
static size_t skip_ascii(const uint8_t *p, size_t i, size_t n)
{
    while (n - i >= 32) {
        uint64_t w = load64(p + i) | load64(p + i + 8) | load64(p + i + 16) | load64(p + i + 24);
        if (w & HIGH_BITS)
            break;
        i += 32;
    }
    while (n - i >= 8 && (load64(p + i) & HIGH_BITS) == 0)
        i += 8;
    while (i < n && p[i] < 0x80)
        i++;
    return i;
}

/*
 * Runs the DFA over p[0..n) from state s; stops early (returning S_REJ) on a bad byte. Outside
 * ASCII runs, bytes go through the DFA in blocks of DFA_BLOCK with no branch per byte: the
 * state's low 6 bits select the row's field (x86 shifts ignore the upper bits, so the mask is
 * free) and only the block's end is checked, since S_REJ is sticky.
 */
#define DFA_BLOCK 16

static uint32_t utf8_run(uint32_t state, const uint8_t *p, size_t n)
{
    uint64_t s = state;
    size_t i = 0;
    while (i < n) {
        if (s == S_ACC) {
            i = skip_ascii(p, i, n);
            if (i == n)
                break;
        }
        size_t end = n - i < DFA_BLOCK ? n : i + DFA_BLOCK;
        for (; i < end; i++)
            s = utf8_rows[p[i]] >> (s & 63);
        s &= 63;
        if (s == S_REJ)
            break;
    }
    return (uint32_t)s;
}

void ws_utf8_init(struct ws_utf8 *v)
{
    v->state = S_ACC;
}

int ws_utf8_feed(struct ws_utf8 *v, const uint8_t *p, size_t n)
{
    if (v->state != S_REJ)
        v->state = utf8_run(v->state, p, n);
    return v->state == S_REJ ? WS_UTF8_INVALID : 0;
}

bool ws_utf8_complete(const struct ws_utf8 *v)
{
    return v->state == S_ACC;
}

bool ws_utf8_valid(const uint8_t *p, size_t n)
{
    return utf8_run(S_ACC, p, n) == S_ACC;
}
