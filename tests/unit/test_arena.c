/* SPDX-License-Identifier: MIT */
/*
 * test_arena: the per-request bump allocator. Checks 16-byte alignment, unique pointers for
 * size 0, many small allocations spilling into new chunks without overlapping, a request
 * bigger than the first chunk getting its own chunk while small ones keep using the current
 * chunk, grow in place versus grow by copy, strndup, overflowing sizes, and that reset keeps
 * the first chunk: the walloc nalloc counter stays flat across many request-sized
 * reset/reuse cycles, which is the "steady state allocates nothing" promise.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "walloc.h"

#include "check.h"

#define ALIGNED(p) ((uintptr_t)(p) % 16 == 0)

static void test_alignment(void)
{
    struct coil_walloc w;
    struct coil_arena a;
    CHECK(coil__walloc_init(&w) == 0);
    CHECK(coil__arena_init(&a, &w, 4096) == 0);
    for (size_t n = 0; n <= 300; n++) {
        char *p = coil__arena_alloc(&a, n);
        CHECK(p != NULL && ALIGNED(p));
        memset(p, 0xab, n);
    }
    void *z1 = coil__arena_alloc(&a, 0);
    void *z2 = coil__arena_alloc(&a, 0);
    CHECK(z1 != NULL && z2 != NULL && z1 != z2);
    coil__arena_fini(&a);
    CHECK(w.nalloc == w.nfree);
    coil__walloc_fini(&w);
}

#define NSMALL 2000

/* 24-byte allocations take 32 bytes each, so a 1024-byte chunk holds exactly 32 of them. */
static void test_many_small(void)
{
    static uint32_t *ptrs[NSMALL];
    struct coil_walloc w;
    struct coil_arena a;
    CHECK(coil__walloc_init(&w) == 0);
    CHECK(coil__arena_init(&a, &w, 1024) == 0);
    CHECK(w.nalloc == 1);
    for (uint32_t i = 0; i < NSMALL; i++) {
        ptrs[i] = coil__arena_alloc(&a, 24);
        CHECK(ptrs[i] != NULL && ALIGNED(ptrs[i]));
        for (int k = 0; k < 6; k++)
            ptrs[i][k] = i * 6 + (uint32_t)k;
    }
    for (uint32_t i = 0; i < NSMALL; i++)
        for (int k = 0; k < 6; k++)
            CHECK(ptrs[i][k] == i * 6 + (uint32_t)k);
    CHECK(w.nalloc == (NSMALL + 31) / 32); /* the first chunk plus one per 32 allocations */
    coil__arena_reset(&a);
    CHECK(w.nfree == w.nalloc - 1); /* every chunk but the first went back */
    uint32_t *again = coil__arena_alloc(&a, 24);
    CHECK(again == ptrs[0]); /* the first chunk is bumped from its start again */
    coil__arena_fini(&a);
    CHECK(w.nalloc == w.nfree);
    coil__walloc_fini(&w);
}

static void test_large(void)
{
    struct coil_walloc w;
    struct coil_arena a;
    CHECK(coil__walloc_init(&w) == 0);
    CHECK(coil__arena_init(&a, &w, 1024) == 0);
    char *small1 = coil__arena_alloc(&a, 100);
    CHECK(small1 != NULL);
    char *big = coil__arena_alloc(&a, 5000);
    CHECK(big != NULL && ALIGNED(big));
    CHECK(w.nalloc == 2);
    memset(big, 'B', 5000);
    /* the large chunk did not replace the current one: the next small request follows on */
    char *small2 = coil__arena_alloc(&a, 100);
    CHECK(small2 == small1 + 112);
    CHECK(w.nalloc == 2);
    char *huge = coil__arena_alloc(&a, 1 << 20);
    CHECK(huge != NULL && ALIGNED(huge));
    memset(huge, 'H', 1 << 20);
    CHECK(w.nalloc == 3);
    for (int i = 0; i < 5000; i++)
        CHECK(big[i] == 'B');
    coil__arena_reset(&a);
    CHECK(w.nfree == 2);
    CHECK(coil__arena_alloc(&a, 100) == small1);
    coil__arena_fini(&a);
    CHECK(w.nalloc == w.nfree);
    coil__walloc_fini(&w);
}

static void test_grow_in_place(void)
{
    struct coil_walloc w;
    struct coil_arena a;
    CHECK(coil__walloc_init(&w) == 0);
    CHECK(coil__arena_init(&a, &w, 1024) == 0);
    char *p = coil__arena_alloc(&a, 10);
    memcpy(p, "0123456789", 10);
    char *q = coil__arena_grow(&a, p, 10, 500); /* last allocation, room left: in place */
    CHECK(q == p);
    memset(q + 10, 'x', 490);
    q = coil__arena_grow(&a, q, 500, 1024 - 16); /* exactly fills the chunk */
    CHECK(q == p);
    q = coil__arena_grow(&a, q, 1024 - 16, 40); /* shrink in place frees the tail */
    CHECK(q == p);
    char *next = coil__arena_alloc(&a, 16);
    CHECK(next == p + 48);
    CHECK(memcmp(p, "0123456789xxxxx", 15) == 0);
    CHECK(w.nalloc == 1);
    coil__arena_fini(&a);
    coil__walloc_fini(&w);
}

static void test_grow_copy(void)
{
    struct coil_walloc w;
    struct coil_arena a;
    CHECK(coil__walloc_init(&w) == 0);
    CHECK(coil__arena_init(&a, &w, 1024) == 0);
    char *p = coil__arena_alloc(&a, 100);
    memset(p, 'p', 100);
    char *other = coil__arena_alloc(&a, 16);
    CHECK(other != NULL);
    char *q = coil__arena_grow(&a, p, 100, 200); /* not the last allocation: copied */
    CHECK(q != NULL && q != p && ALIGNED(q));
    for (int i = 0; i < 100; i++)
        CHECK(q[i] == 'p');
    char *r = coil__arena_grow(&a, q, 200, 4000); /* last, but bigger than a chunk */
    CHECK(r != NULL && r != q && ALIGNED(r));
    for (int i = 0; i < 100; i++)
        CHECK(r[i] == 'p');
    r[3999] = 'e';
    char *s = coil__arena_alloc(&a, 600);
    char *t = coil__arena_grow(&a, s, 600, 700); /* last, but the chunk is full: copied */
    CHECK(t != NULL && t != s);
    char *n = coil__arena_grow(&a, NULL, 0, 32); /* NULL grows like alloc */
    CHECK(n != NULL && ALIGNED(n));
    CHECK(coil__arena_grow(&a, n, 32, SIZE_MAX) == NULL); /* OOM leaves n alone */
    CHECK(coil__arena_grow(&a, n, 32, 48) == n);
    coil__arena_fini(&a);
    CHECK(w.nalloc == w.nfree);
    coil__walloc_fini(&w);
}

static void test_strndup(void)
{
    struct coil_walloc w;
    struct coil_arena a;
    CHECK(coil__walloc_init(&w) == 0);
    CHECK(coil__arena_init(&a, &w, 256) == 0);
    char *s = coil__arena_strndup(&a, "hello world", 5);
    CHECK(s != NULL && strcmp(s, "hello") == 0);
    char *e = coil__arena_strndup(&a, "", 0);
    CHECK(e != NULL && e[0] == '\0' && e != s);
    char *bin = coil__arena_strndup(&a, "ab\0cd", 5); /* exactly n bytes, NULs included */
    CHECK(bin != NULL && memcmp(bin, "ab\0cd", 6) == 0);
    char long_src[1000];
    memset(long_src, 'L', sizeof(long_src));
    char *l = coil__arena_strndup(&a, long_src, sizeof(long_src)); /* bigger than a chunk */
    CHECK(l != NULL && memcmp(l, long_src, sizeof(long_src)) == 0 && l[1000] == '\0');
    CHECK(coil__arena_strndup(&a, long_src, SIZE_MAX) == NULL);
    coil__arena_fini(&a);
    coil__walloc_fini(&w);
}

static void test_overflow(void)
{
    struct coil_walloc w;
    struct coil_arena a;
    CHECK(coil__walloc_init(&w) == 0);
    CHECK(coil__arena_init(&a, &w, 256) == 0);
    CHECK(coil__arena_alloc(&a, SIZE_MAX) == NULL);
    CHECK(coil__arena_alloc(&a, SIZE_MAX - 15) == NULL); /* rounding would wrap */
    CHECK(w.nalloc == 1);
    char *p = coil__arena_alloc(&a, 16); /* still usable */
    CHECK(p != NULL);
    coil__arena_fini(&a);
    coil__walloc_fini(&w);
}

/* One simulated request: headers, a few strings, a growing body buffer. */
static void fake_request(struct coil_arena *a, int i)
{
    char line[64];
    int n = snprintf(line, sizeof(line), "GET /item/%d HTTP/1.1", i);
    CHECK(n > 0);
    char *l = coil__arena_strndup(a, line, (size_t)n);
    CHECK(l != NULL && strcmp(l, line) == 0);
    for (int h = 0; h < 8; h++)
        CHECK(coil__arena_alloc(a, 24 + (size_t)(h * 7 + i) % 40) != NULL);
    size_t cap = 16;
    char *body = coil__arena_alloc(a, cap);
    CHECK(body != NULL);
    while (cap < 1024) {
        body = coil__arena_grow(a, body, cap, cap * 2);
        CHECK(body != NULL);
        cap *= 2;
    }
    memset(body, 'b', cap);
}

static void test_steady_state(void)
{
    struct coil_walloc w;
    struct coil_arena a;
    CHECK(coil__walloc_init(&w) == 0);
    CHECK(coil__arena_init(&a, &w, 4096) == 0);
    fake_request(&a, 0);
    coil__arena_reset(&a);
    uint64_t before = w.nalloc;
    CHECK(before == 1);
    for (int i = 1; i <= 10000; i++) {
        fake_request(&a, i);
        coil__arena_reset(&a);
    }
    CHECK(w.nalloc == before); /* 10000 requests, no heap allocation */
    CHECK(w.nfree == 0);
    coil__arena_fini(&a);
    CHECK(w.nalloc == w.nfree);
    coil__walloc_fini(&w);
}

/* A deferred request takes the arena's chunks: what was allocated stays valid and readable in
 * the new owner, the old arena starts again from nothing, and both free everything. */
static void test_move(void)
{
    struct coil_walloc wa;
    CHECK(coil__walloc_init(&wa) == 0);
    struct coil_arena a, b;
    CHECK(coil__arena_init(&a, &wa, 1024) == 0);
    CHECK(!coil__arena_used(&a));
    char *small = coil__arena_alloc(&a, 100);
    char *large = coil__arena_alloc(&a, 5000); /* a chunk of its own */
    CHECK(small && large);
    memset(small, 'a', 100);
    memset(large, 'b', 5000);
    CHECK(coil__arena_used(&a));
    coil__arena_move(&a, &b);
    CHECK(!coil__arena_used(&a));
    CHECK(small[99] == 'a' && large[4999] == 'b');
    char *more = coil__arena_alloc(&b, 200); /* the new owner goes on bumping */
    CHECK(more);
    memset(more, 'c', 200);
    coil__arena_reset(&a);                    /* empty: nothing to do */
    char *again = coil__arena_alloc(&a, 300); /* makes a first chunk again */
    CHECK(again && again != small);
    memset(again, 'd', 300);
    CHECK(small[0] == 'a' && more[199] == 'c');
    coil__arena_fini(&b);
    coil__arena_fini(&a);
    struct coil_arena e;
    coil__arena_init_empty(&e, &wa, 64);
    CHECK(!coil__arena_used(&e));
    coil__arena_fini(&e); /* never allocated: frees nothing */
    coil__arena_init_empty(&e, &wa, 64);
    CHECK(coil__arena_alloc(&e, 10) && coil__arena_alloc(&e, 1000));
    coil__arena_fini(&e);
    CHECK(wa.nalloc == wa.nfree);
    coil__walloc_fini(&wa);
}

int main(void)
{
    test_move();
    test_alignment();
    test_many_small();
    test_large();
    test_grow_in_place();
    test_grow_copy();
    test_strndup();
    test_overflow();
    test_steady_state();
    printf("test_arena: ok\n");
    return 0;
}
