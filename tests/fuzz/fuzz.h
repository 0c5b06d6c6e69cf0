/*
 * fuzz.h - what every harness in tests/fuzz/ shares: libFuzzer's entry point, and CHECK(), which
 * aborts on a broken invariant so that libFuzzer saves the input (tests/fuzz/crash-*).
 */
#ifndef STOMPWS_FUZZ_H
#define STOMPWS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            abort();                                                                               \
    } while (0)

#endif
