/*
 * fuzz.h - what every harness in tests/fuzz/ shares: libFuzzer's entry point, and CHECK(), which
 * aborts on a broken invariant so that libFuzzer saves the input (tests/fuzz/crash-*).
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

#endif
