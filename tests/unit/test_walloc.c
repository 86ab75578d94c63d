/* SPDX-License-Identifier: MIT */
/*
 * test_walloc: the per-worker heap. Checks the counters (every allocation bumps nalloc, a
 * growing realloc counts as one allocation and one free, nalloc - nfree is the live count),
 * that memory really comes from the worker's own jemalloc arena, that arenas are recycled
 * across init/fini, and that two workers allocate and free concurrently, each on its own
 * walloc, without interfering. Runs unchanged with COIL_NO_JEMALLOC (libc malloc).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "walloc.h"

#ifndef COIL_NO_JEMALLOC
#include <jemalloc/jemalloc.h>
#endif

#include "check.h"

#ifndef COIL_NO_JEMALLOC
/* The jemalloc arena that owns p. */
static unsigned arena_of(void *p)
{
    unsigned idx = UINT32_MAX;
    size_t len = sizeof(idx);
    CHECK(mallctl("arenas.lookup", &idx, &len, &p, sizeof(p)) == 0);
    return idx;
}
#endif

static void test_counters(void)
{
    struct coil_walloc w;
    CHECK(coil__walloc_init(&w) == 0);
    CHECK(w.nalloc == 0 && w.nfree == 0);

    char *a = coil__walloc(&w, 100);
    CHECK(a != NULL);
    memset(a, 'a', 100);
    CHECK(w.nalloc == 1 && w.nfree == 0);

    unsigned char *z = coil__wcalloc(&w, 4096);
    CHECK(z != NULL);
    for (size_t i = 0; i < 4096; i++)
        CHECK(z[i] == 0);
    CHECK(w.nalloc == 2);

    void *zero = coil__walloc(&w, 0); /* a unique pointer, like malloc(0) */
    CHECK(zero != NULL && zero != a && zero != (void *)z);
    CHECK(w.nalloc == 3);

    coil__wfree(&w, NULL); /* not a free */
    CHECK(w.nfree == 0);
    coil__wfree(&w, zero);
    coil__wfree(&w, z);
    coil__wfree(&w, a);
    CHECK(w.nalloc == 3 && w.nfree == 3);
    coil__walloc_fini(&w);
}

static void test_realloc(void)
{
    struct coil_walloc w;
    CHECK(coil__walloc_init(&w) == 0);

    char *p = coil__wrealloc(&w, NULL, 16); /* realloc of NULL allocates */
    CHECK(p != NULL);
    CHECK(w.nalloc == 1 && w.nfree == 0);
    memcpy(p, "0123456789abcdef", 16);

    p = coil__wrealloc(&w, p, 100000); /* growing: one allocation, old block freed */
    CHECK(p != NULL);
    CHECK(memcmp(p, "0123456789abcdef", 16) == 0);
    CHECK(w.nalloc == 2 && w.nfree == 1);
    p[99999] = 'x';

    p = coil__wrealloc(&w, p, 8); /* shrinking allocates nothing */
    CHECK(p != NULL);
    CHECK(memcmp(p, "01234567", 8) == 0);
    CHECK(w.nalloc == 2 && w.nfree == 1);

    coil__wfree(&w, p);
    CHECK(w.nalloc == w.nfree);
    coil__walloc_fini(&w);
}

static void test_own_arena(void)
{
    struct coil_walloc w1, w2;
    CHECK(coil__walloc_init(&w1) == 0);
    CHECK(coil__walloc_init(&w2) == 0);
#ifndef COIL_NO_JEMALLOC
    CHECK(w1.arena != w2.arena);
    CHECK(w1.arena != 0 && w2.arena != 0); /* not the default arena */
    void *a = coil__walloc(&w1, 64);
    void *b = coil__walloc(&w2, 64);
    void *big = coil__walloc(&w1, 1 << 20);
    CHECK(a && b && big);
    CHECK(arena_of(a) == w1.arena);
    CHECK(arena_of(b) == w2.arena);
    CHECK(arena_of(big) == w1.arena);
    big = coil__wrealloc(&w1, big, 4 << 20);
    CHECK(big != NULL && arena_of(big) == w1.arena);
    coil__wfree(&w1, a);
    coil__wfree(&w2, b);
    coil__wfree(&w1, big);
#else
    CHECK(w1.arena == 0 && w1.flags == 0);
#endif
    coil__walloc_fini(&w2);
    coil__walloc_fini(&w1);
}

/* fini destroys the arena, including what is still allocated, and the index is reused. */
static void test_init_fini_cycles(void)
{
    for (int i = 0; i < 200; i++) {
        struct coil_walloc w;
        CHECK(coil__walloc_init(&w) == 0);
        void *p = coil__walloc(&w, 1000);
        CHECK(p != NULL);
        memset(p, i, 1000);
#ifndef COIL_NO_JEMALLOC
        /* left allocated on purpose: destroying the arena reclaims it */
        (void)p;
#else
        coil__wfree(&w, p); /* libc has no arena to destroy; LSan would report it */
#endif
        coil__walloc_fini(&w);
    }
}

#define NSLOTS 512
#define ROUNDS 20000

struct worker {
    struct coil_walloc w;
    unsigned seed;               /* rand_r state */
    unsigned char *slot[NSLOTS]; /* live blocks */
    size_t len[NSLOTS];          /* their sizes */
    int failed;
};

/* A byte pattern that depends on the worker and the block, so cross-talk shows up. */
static unsigned char pattern(const struct worker *wk, const void *p, size_t i)
{
    return (unsigned char)((uintptr_t)wk + (uintptr_t)p + i);
}

static void release(struct worker *wk, unsigned i)
{
    for (size_t k = 0; k < wk->len[i]; k++)
        wk->failed |= wk->slot[i][k] != pattern(wk, wk->slot[i], k);
    coil__wfree(&wk->w, wk->slot[i]);
    wk->slot[i] = NULL;
}

static void acquire(struct worker *wk, unsigned i, int r)
{
    size_t n = 1 + (size_t)rand_r(&wk->seed) % (r % 64 == 0 ? 65536 : 512);
    unsigned char *p = r % 3 ? coil__walloc(&wk->w, n) : coil__wrealloc(&wk->w, NULL, n);
    if (p == NULL) {
        wk->failed = 1;
        return;
    }
#ifndef COIL_NO_JEMALLOC
    if (r % 256 == 0)
        wk->failed |= arena_of(p) != wk->w.arena;
#endif
    for (size_t k = 0; k < n; k++)
        p[k] = pattern(wk, p, k);
    wk->slot[i] = p;
    wk->len[i] = n;
}

static void *worker_main(void *arg)
{
    struct worker *wk = arg;
    if (coil__walloc_init(&wk->w) != 0) {
        wk->failed = 1;
        return NULL;
    }
    for (int r = 0; r < ROUNDS && !wk->failed; r++) {
        unsigned i = (unsigned)rand_r(&wk->seed) % NSLOTS;
        if (wk->slot[i] != NULL)
            release(wk, i);
        else
            acquire(wk, i, r);
    }
    for (unsigned i = 0; i < NSLOTS; i++)
        if (wk->slot[i] != NULL)
            release(wk, i);
    wk->failed |= wk->w.nalloc != wk->w.nfree || wk->w.nalloc == 0;
    coil__walloc_fini(&wk->w);
    return NULL;
}

static void test_two_threads(void)
{
    static struct worker wk[2] = {{.seed = 1}, {.seed = 2}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, worker_main, &wk[i]) == 0);
    for (int i = 0; i < 2; i++)
        CHECK(pthread_join(t[i], NULL) == 0);
    CHECK(!wk[0].failed);
    CHECK(!wk[1].failed);
}

int main(void)
{
    test_counters();
    test_realloc();
    test_own_arena();
    test_init_fini_cycles();
    test_two_threads();
    printf("test_walloc: ok\n");
    return 0;
}
