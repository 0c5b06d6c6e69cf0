/*
 * fuzz.h - what every harness in tests/fuzz/ shares: libFuzzer's entry point, and CHECK(), which
 * aborts on a broken invariant so that libFuzzer saves the input (tests/fuzz/crash-*), exact_copy()
 * of the input, and a reference count of a query string's keys.
 */
#ifndef STOMPWS_FUZZ_H
#define STOMPWS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

/* A copy of bytes in a heap block of exactly their size (free() it), so that ASan reports a
 * read one byte past the input. */
static inline void *exact_copy(const uint8_t *p, size_t n)
{
    void *copy = malloc(n > 0 ? n : 1);
    CHECK(copy != NULL);
    if (n > 0)
        memcpy(copy, p, n);
    return copy;
}

/* How many times key appears as a key of the query string q (len bytes, '&' between pairs, '='
 * before a value; none: a key alone). The simple reference that query parsers are checked
 * against: no decoding, so an encoded key does not count. */
static inline size_t query_key_count(const char *q, size_t len, const char *key)
{
    size_t count = 0, start = 0, want = strlen(key);
    for (size_t i = 0; i <= len; i++) {
        if (i < len && q[i] != '&')
            continue;
        const char *eq = memchr(q + start, '=', i - start);
        size_t key_len = eq != NULL ? (size_t)(eq - (q + start)) : i - start;
        if (key_len == want && memcmp(q + start, key, want) == 0)
            count++;
        start = i + 1;
    }
    return count;
}

#endif
