/* SPDX-License-Identifier: MIT */
/*
 * micro_arena: the request arena (coil__arena_alloc, coil__arena_reset) against the heap it
 * replaces. Sizes cycle through a fixed mix of 16 to 64 bytes, the size of the small objects a
 * request allocates; every allocation is written once, as real code would. Rows: the cost of
 * one allocation (512 in a row, then one reset, spread over the 512); one request's cycle (20
 * allocations, then reset); and as references the same work with malloc/free, which is
 * jemalloc here (checked: thread.allocated must grow), and with the worker's own heap
 * (coil__walloc/coil__wfree: its own jemalloc arena and explicit cache, what request
 * memory would cost without the arena). The arena is the worker's size (64 KiB), so neither
 * loop ever leaves its first chunk; validation checks that, and that allocations are aligned
 * and do not overlap.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "bench.h"
#include "walloc.h"

#ifndef COIL_NO_JEMALLOC
#include <jemalloc/jemalloc.h>
#define REF "jemalloc"
#else
#define REF "libc-malloc"
#endif

#define BATCH 512 /* allocations per reset in the per-allocation rows */
#define CYCLE 20  /* allocations per request in the cycle rows */
#define ARENA_FIRST (64 * 1024)

/* 16 to 64 bytes, mean 39: small strings, slices, a parameter table, a header copy. */
static const uint8_t sizes[16] = {24, 48, 16, 64, 32, 40, 56, 20, 36, 64, 16, 48, 28, 60, 32, 44};

static struct coil_walloc wa;
static struct coil_arena arena;

/* n allocations from the arena, each written, then a reset. */
static uint64_t arena_round(uint32_t n)
{
    uint64_t acc = 0;
    for (uint32_t k = 0; k < n; k++) {
        char *p = coil__arena_alloc(&arena, sizes[k & 15]);
        p[0] = (char)k;
        acc += (uintptr_t)p;
    }
    coil__arena_reset(&arena);
    return acc;
}

/* n mallocs, each written, then n frees in allocation order. */
static uint64_t malloc_round(uint32_t n)
{
    void *ptrs[BATCH];
    uint64_t acc = 0;
    for (uint32_t k = 0; k < n; k++) {
        char *p = malloc(sizes[k & 15]);
        p[0] = (char)k;
        ptrs[k] = p;
    }
    BENCH_CLOBBER(); /* the writes happen: malloc/free pairs cannot be elided */
    for (uint32_t k = 0; k < n; k++) {
        acc += (uintptr_t)ptrs[k];
        free(ptrs[k]);
    }
    return acc;
}

static uint64_t walloc_round(uint32_t n)
{
    void *ptrs[BATCH];
    uint64_t acc = 0;
    for (uint32_t k = 0; k < n; k++) {
        char *p = coil__walloc(&wa, sizes[k & 15]);
        p[0] = (char)k;
        ptrs[k] = p;
    }
    for (uint32_t k = 0; k < n; k++) {
        acc += (uintptr_t)ptrs[k];
        coil__wfree(&wa, ptrs[k]);
    }
    return acc;
}

/* The bench functions: arg is the number of allocations per round. */
static uint64_t bm_arena(void *arg, uint64_t iters)
{
    uint32_t n = (uint32_t)(uintptr_t)arg;
    uint64_t acc = 0;
    for (uint64_t i = 0; i < iters; i++)
        acc += arena_round(n);
    return acc;
}

static uint64_t bm_malloc(void *arg, uint64_t iters)
{
    uint32_t n = (uint32_t)(uintptr_t)arg;
    uint64_t acc = 0;
    for (uint64_t i = 0; i < iters; i++)
        acc += malloc_round(n);
    return acc;
}

static uint64_t bm_walloc(void *arg, uint64_t iters)
{
    uint32_t n = (uint32_t)(uintptr_t)arg;
    uint64_t acc = 0;
    for (uint64_t i = 0; i < iters; i++)
        acc += walloc_round(n);
    return acc;
}

static void validate(void)
{
    /* One batch: aligned, in order, no overlap, all in the first chunk. */
    char *prev = NULL;
    size_t prev_size = 0;
    for (uint32_t k = 0; k < BATCH; k++) {
        char *p = coil__arena_alloc(&arena, sizes[k & 15]);
        BENCH_REQUIRE(p != NULL && (uintptr_t)p % 16 == 0, "arena alloc %u", k);
        BENCH_REQUIRE(!prev || p >= prev + prev_size, "arena alloc %u overlaps", k);
        prev = p;
        prev_size = sizes[k & 15];
    }
    coil__arena_reset(&arena);
    /* Steady state: rounds after the first take nothing from the heap. */
    uint64_t before = wa.nalloc;
    for (int i = 0; i < 100; i++)
        arena_round(i % 2 ? BATCH : CYCLE);
    BENCH_REQUIRE(wa.nalloc == before, "arena rounds allocated %llu chunks",
                  (unsigned long long)(wa.nalloc - before));
#ifndef COIL_NO_JEMALLOC
    /* malloc must be jemalloc's: this thread's jemalloc byte count grows with it. */
    uint64_t a0 = 0, a1 = 0;
    size_t len = sizeof(a0);
    BENCH_REQUIRE(mallctl("thread.allocated", &a0, &len, NULL, 0) == 0, "mallctl");
    void *volatile p = malloc(64);
    BENCH_REQUIRE(mallctl("thread.allocated", &a1, &len, NULL, 0) == 0, "mallctl");
    free(p);
    BENCH_REQUIRE(a1 >= a0 + 64, "malloc is not jemalloc's (thread.allocated %llu -> %llu)",
                  (unsigned long long)a0, (unsigned long long)a1);
#endif
}

void micro_arena(void)
{
    BENCH_REQUIRE(coil__walloc_init(&wa) == 0, "walloc");
    BENCH_REQUIRE(coil__arena_init(&arena, &wa, ARENA_FIRST) == 0, "arena");
    validate();

    const struct bench benches[] = {
        {"arena/alloc-16-64B", "alloc", bm_arena, (void *)(uintptr_t)BATCH, BATCH, 0},
        {"arena/cycle-20", "cycle", bm_arena, (void *)(uintptr_t)CYCLE, 1, 0},
        {"arena/ref-" REF "-16-64B", "alloc", bm_malloc, (void *)(uintptr_t)BATCH, BATCH, 0},
        {"arena/ref-" REF "-cycle-20", "cycle", bm_malloc, (void *)(uintptr_t)CYCLE, 1, 0},
        {"arena/ref-walloc-cycle-20", "cycle", bm_walloc, (void *)(uintptr_t)CYCLE, 1, 0},
    };
    for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++)
        bench_run(&benches[i]);
    coil__arena_fini(&arena);
    coil__walloc_fini(&wa);
}
