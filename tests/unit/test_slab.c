/* SPDX-License-Identifier: MIT */
/*
 * test_slab: (index, generation) handles. Checks argument validation, that init allocates
 * nothing and pages are added only when the live objects need them, zeroed objects, handles
 * going stale after put (including for the slot's next occupant), LIFO reuse of freed slots,
 * the max_objs limit (also when it is not a multiple of COIL_SLAB_PAGE), stable addresses
 * across page growth, rejection of out-of-range and even generations, and that a large
 * max_objs with few live objects holds one page, not max_objs objects.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "slab.h"
#include "walloc.h"

#include "check.h"

struct obj {
    uint64_t a;
    char name[20];
};

static void test_init_args(void)
{
    struct coil_walloc w;
    struct coil_slab s;
    CHECK(coil__walloc_init(&w) == 0);
    CHECK(coil__slab_init(&s, &w, 0, 10) == -EINVAL);
    CHECK(coil__slab_init(&s, &w, 8, 0) == -EINVAL);
    CHECK(coil__slab_init(&s, &w, 8, (1u << 24) + 1) == -EINVAL);
    CHECK(coil__slab_init(&s, &w, 8, 1u << 24) == 0);
    CHECK(s.npages == 0 && s.used == 0 && w.nalloc == 0); /* nothing until the first get */
    CHECK(s.obj_size == 16);
    coil__slab_fini(&s);
    CHECK(coil__slab_init(&s, &w, sizeof(struct obj), 4) == 0);
    CHECK(s.obj_size == 32); /* 28 rounded up to 16 */
    coil__slab_fini(&s);
    coil__walloc_fini(&w);
}

static void test_get_put_stale(void)
{
    struct coil_walloc w;
    struct coil_slab s;
    CHECK(coil__walloc_init(&w) == 0);
    CHECK(coil__slab_init(&s, &w, sizeof(struct obj), 1000) == 0);
    uint32_t idx, gen;
    struct obj *o = coil__slab_get(&s, &idx, &gen);
    CHECK(o != NULL && ((uintptr_t)o & 15) == 0);
    CHECK(idx == 0 && (gen & 1) == 1 && s.used == 1 && s.npages == 1);
    CHECK(o->a == 0 && o->name[0] == 0);
    CHECK(coil__slab_at(&s, idx, gen) == o);
    o->a = 42;
    strcpy(o->name, "conn");

    coil__slab_put(&s, idx);
    CHECK(s.used == 0);
    CHECK(coil__slab_at(&s, idx, gen) == NULL);     /* stale after put */
    CHECK(coil__slab_at(&s, idx, gen + 1) == NULL); /* the free slot's own (even) generation */

    uint32_t idx2, gen2;
    struct obj *o2 = coil__slab_get(&s, &idx2, &gen2);
    CHECK(o2 == o && idx2 == idx); /* the freed slot is reused first */
    CHECK(gen2 != gen && (gen2 & 1) == 1);
    CHECK(o2->a == 0 && o2->name[0] == 0);      /* zeroed again */
    CHECK(coil__slab_at(&s, idx, gen) == NULL); /* the old handle never matches the new object */
    CHECK(coil__slab_at(&s, idx2, gen2) == o2);
    coil__slab_put(&s, idx2);
    coil__slab_fini(&s);
    CHECK(w.nalloc == w.nfree);
    coil__walloc_fini(&w);
}

/* One slot put and got many times: every generation is new and odd, the old ones all stale. */
static void test_generations(void)
{
    struct coil_walloc w;
    struct coil_slab s;
    CHECK(coil__walloc_init(&w) == 0);
    CHECK(coil__slab_init(&s, &w, 64, 1) == 0);
    uint32_t idx, gen, prev = 0;
    for (int i = 0; i < 1000; i++) {
        CHECK(coil__slab_get(&s, &idx, &gen) != NULL);
        CHECK(idx == 0 && (gen & 1) == 1);
        CHECK(i == 0 || gen == prev + 2);
        if (i > 0)
            CHECK(coil__slab_at(&s, idx, prev) == NULL);
        coil__slab_put(&s, idx);
        prev = gen;
    }
    coil__slab_fini(&s);
    coil__walloc_fini(&w);
}

#define MAXO 300u

static void test_full_and_pages(void)
{
    static uint32_t idx[MAXO], gen[MAXO];
    static struct obj *ptr[MAXO];
    struct coil_walloc w;
    struct coil_slab s;
    uint32_t i0, g0;
    CHECK(coil__walloc_init(&w) == 0);
    CHECK(coil__slab_init(&s, &w, sizeof(struct obj), MAXO) == 0);
    for (uint32_t i = 0; i < MAXO; i++) {
        ptr[i] = coil__slab_get(&s, &idx[i], &gen[i]);
        CHECK(ptr[i] != NULL && idx[i] == i);
        CHECK(s.npages == i / COIL_SLAB_PAGE + 1); /* a page only when the last one is full */
        ptr[i]->a = i;
    }
    CHECK(s.used == MAXO);
    CHECK(coil__slab_get(&s, &i0, &g0) == NULL); /* full at max_objs */
    CHECK(s.npages == 2);
    for (uint32_t i = 0; i < MAXO; i++) /* addresses stable across the second page */
        CHECK(coil__slab_at(&s, idx[i], gen[i]) == ptr[i] && ptr[i]->a == i);
    CHECK(coil__slab_at(&s, MAXO, 1) == NULL); /* past max_objs, inside the page's range */
    CHECK(coil__slab_at(&s, 2 * COIL_SLAB_PAGE, 1) == NULL); /* past every page */
    CHECK(coil__slab_at(&s, UINT32_MAX, 1) == NULL);

    coil__slab_put(&s, idx[7]);
    coil__slab_put(&s, idx[280]);
    struct obj *o = coil__slab_get(&s, &i0, &g0);
    CHECK(o == ptr[280] && i0 == 280); /* LIFO: the last one put comes back first */
    o = coil__slab_get(&s, &i0, &g0);
    CHECK(o == ptr[7] && i0 == 7);
    CHECK(coil__slab_get(&s, &i0, &g0) == NULL);
    CHECK(s.npages == 2);
    coil__slab_fini(&s);
    CHECK(w.nalloc == w.nfree);
    coil__walloc_fini(&w);
}

/* A server sized for 65536 connections holding 10 allocates one page, a handful of blocks. */
static void test_sparse(void)
{
    struct coil_walloc w;
    struct coil_slab s;
    uint32_t idx, gen;
    CHECK(coil__walloc_init(&w) == 0);
    CHECK(coil__slab_init(&s, &w, 512, 65536) == 0);
    for (int i = 0; i < 10; i++)
        CHECK(coil__slab_get(&s, &idx, &gen) != NULL);
    CHECK(s.npages == 1);
    CHECK(w.nalloc <= 4); /* pages array, gen, next, one page */
    for (uint32_t i = 0; i < 10; i++)
        coil__slab_put(&s, i);
    for (int round = 0; round < 100; round++) { /* churn stays within the page */
        for (int i = 0; i < 10; i++)
            CHECK(coil__slab_get(&s, &idx, &gen) != NULL && idx < 10);
        for (uint32_t i = 0; i < 10; i++)
            coil__slab_put(&s, i);
    }
    CHECK(s.npages == 1 && w.nalloc <= 4);
    coil__slab_fini(&s);
    CHECK(w.nalloc == w.nfree);
    coil__walloc_fini(&w);
}

/* Many pages: gen/next grow page by page and keep their contents. */
static void test_many_pages(void)
{
    struct coil_walloc w;
    struct coil_slab s;
    uint32_t idx, gen;
    const uint32_t n = 20 * COIL_SLAB_PAGE + 3;
    CHECK(coil__walloc_init(&w) == 0);
    CHECK(coil__slab_init(&s, &w, 24, 1u << 20) == 0);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t *o = coil__slab_get(&s, &idx, &gen);
        CHECK(o != NULL && idx == i && gen == 1);
        *o = i;
    }
    CHECK(s.npages == 21);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t *o = coil__slab_at(&s, i, 1);
        CHECK(o != NULL && *o == i);
    }
    for (uint32_t i = 0; i < n; i += 2)
        coil__slab_put(&s, i);
    for (uint32_t i = 0; i < n; i++)
        CHECK((coil__slab_at(&s, i, 1) == NULL) == (i % 2 == 0));
    CHECK(s.used == n / 2);
    coil__slab_fini(&s);
    CHECK(w.nalloc == w.nfree);
    coil__walloc_fini(&w);
}

int main(void)
{
    test_init_args();
    test_get_put_stale();
    test_generations();
    test_full_and_pages();
    test_sparse();
    test_many_pages();
    printf("test_slab: ok\n");
    return 0;
}
