/* SPDX-License-Identifier: MIT */
/*
 * test_bufpool: the free list of equal-size buffers. Checks that buffers are usable over
 * their whole size, that a put-then-get cycle reuses the buffer without touching the heap,
 * that at most max_cached idle buffers are kept (the rest are freed at put), that max_cached
 * 0 caches nothing, and that fini frees every idle buffer (nalloc == nfree afterwards).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bufpool.h"
#include "walloc.h"

#include "check.h"

#define BUFSZ 4096

static void test_reuse(void)
{
    struct coil_walloc w;
    struct coil_bufpool p;
    CHECK(coil__walloc_init(&w) == 0);
    coil__bufpool_init(&p, &w, BUFSZ, 8);
    CHECK(p.ncached == 0 && w.nalloc == 0); /* init allocates nothing */
    char *b = coil__bufpool_get(&p);
    CHECK(b != NULL && w.nalloc == 1);
    memset(b, 'x', BUFSZ);
    coil__bufpool_put(&p, b);
    CHECK(p.ncached == 1 && w.nfree == 0);
    for (int i = 0; i < 1000; i++) { /* keep-alive: the same buffer every time */
        char *c = coil__bufpool_get(&p);
        CHECK(c == b && p.ncached == 0);
        memset(c, 'y', BUFSZ);
        coil__bufpool_put(&p, c);
    }
    CHECK(w.nalloc == 1 && w.nfree == 0);
    coil__bufpool_fini(&p);
    CHECK(w.nalloc == w.nfree);
    coil__walloc_fini(&w);
}

static void test_max_cached(void)
{
    struct coil_walloc w;
    struct coil_bufpool p;
    char *b[5];
    CHECK(coil__walloc_init(&w) == 0);
    coil__bufpool_init(&p, &w, BUFSZ, 2);
    for (int i = 0; i < 5; i++) {
        b[i] = coil__bufpool_get(&p);
        CHECK(b[i] != NULL);
        memset(b[i], 'a' + i, BUFSZ);
    }
    CHECK(w.nalloc == 5);
    for (int i = 0; i < 5; i++)
        coil__bufpool_put(&p, b[i]);
    CHECK(p.ncached == 2 && w.nfree == 3); /* two kept, three freed */
    char *x = coil__bufpool_get(&p);       /* LIFO: the most recently kept comes back first */
    char *y = coil__bufpool_get(&p);
    CHECK(x == b[1] && y == b[0] && p.ncached == 0);
    CHECK(w.nalloc == 5);
    char *z = coil__bufpool_get(&p); /* the list is empty: the heap again */
    CHECK(z != NULL && w.nalloc == 6);
    coil__bufpool_put(&p, x);
    coil__bufpool_put(&p, y);
    coil__bufpool_put(&p, z);
    CHECK(p.ncached == 2 && w.nfree == 4);
    coil__bufpool_fini(&p);
    CHECK(p.ncached == 0 && w.nalloc == w.nfree);
    coil__walloc_fini(&w);
}

static void test_no_cache(void)
{
    struct coil_walloc w;
    struct coil_bufpool p;
    CHECK(coil__walloc_init(&w) == 0);
    coil__bufpool_init(&p, &w, 64, 0);
    for (int i = 0; i < 10; i++) {
        void *b = coil__bufpool_get(&p);
        CHECK(b != NULL);
        memset(b, i, 64);
        coil__bufpool_put(&p, b);
        CHECK(p.ncached == 0);
    }
    CHECK(w.nalloc == 10 && w.nfree == 10);
    coil__bufpool_fini(&p);
    coil__walloc_fini(&w);
}

/* The smallest legal buffer: just the link word. */
static void test_small_buffers(void)
{
    struct coil_walloc w;
    struct coil_bufpool p;
    CHECK(coil__walloc_init(&w) == 0);
    coil__bufpool_init(&p, &w, sizeof(void *), 4);
    void *a = coil__bufpool_get(&p);
    void *b = coil__bufpool_get(&p);
    CHECK(a && b && a != b);
    memset(a, 0xff, sizeof(void *));
    coil__bufpool_put(&p, a);
    coil__bufpool_put(&p, b);
    CHECK(coil__bufpool_get(&p) == b);
    CHECK(coil__bufpool_get(&p) == a);
    coil__bufpool_put(&p, a);
    coil__bufpool_put(&p, b);
    coil__bufpool_fini(&p);
    CHECK(w.nalloc == w.nfree);
    coil__walloc_fini(&w);
}

int main(void)
{
    test_reuse();
    test_max_cached();
    test_no_cache();
    test_small_buffers();
    printf("test_bufpool: ok\n");
    return 0;
}
