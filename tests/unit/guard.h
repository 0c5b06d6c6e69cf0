/*
 * guard.h - place test input flush against an unreadable page.
 *
 * Parsers in ws/ and stomp/ must never read past the bytes they are given. Each test copies its
 * input so that the last byte sits right before a PROT_NONE page: any overread faults at once
 * instead of passing silently (the technique of picohttpparser's tests).
 *
 * Under AddressSanitizer the region is a heap block of whole pages instead, the bytes at its end:
 * ASan's redzone after it catches the same overread, without three system calls per copy
 * (mmap, mprotect, munmap, which ASan intercepts).
 */
#ifndef STOMPWS_TESTS_GUARD_H
#define STOMPWS_TESTS_GUARD_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__SANITIZE_ADDRESS__)
#define GUARD_WITH_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define GUARD_WITH_ASAN 1
#endif
#endif

/* One guarded region; owned by the test, released with guard_release(). */
struct guard {
    uint8_t *map;   /* whole mapping: data pages + one PROT_NONE page (ASan: the heap block) */
    size_t map_len; /* bytes mapped */
};

#ifdef GUARD_WITH_ASAN

/* The same shape as the mapping below: whole pages, the bytes flush against the end (tests may
 * write before them, within those pages), ASan's redzone where the fence page would be. */
static inline uint8_t *guard_copy(struct guard *g, const void *src, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (len + page - 1) / page;
    if (data_pages == 0)
        data_pages = 1;
    g->map_len = data_pages * page;
    g->map = malloc(g->map_len);
    assert(g->map != NULL);
    uint8_t *start = g->map + g->map_len - len;
    if (len > 0)
        memcpy(start, src, len);
    return start;
}

static inline void guard_release(struct guard *g)
{
    free(g->map);
    g->map = NULL;
    g->map_len = 0;
}

#else

/* Copies len bytes of src to the end of a fresh writable region; returns where they start. */
static inline uint8_t *guard_copy(struct guard *g, const void *src, size_t len)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t data_pages = (len + page - 1) / page;
    if (data_pages == 0)
        data_pages = 1;
    g->map_len = (data_pages + 1) * page;
    void *map = mmap(NULL, g->map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert(map != MAP_FAILED);
    g->map = map;
    uint8_t *fence = g->map + data_pages * page;
    int rc = mprotect(fence, page, PROT_NONE);
    assert(rc == 0);
    (void)rc;
    uint8_t *start = fence - len;
    if (len > 0)
        memcpy(start, src, len);
    return start;
}

static inline void guard_release(struct guard *g)
{
    if (g->map != NULL)
        munmap(g->map, g->map_len);
    g->map = NULL;
    g->map_len = 0;
}

#endif /* GUARD_WITH_ASAN */

#endif
