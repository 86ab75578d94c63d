/* SPDX-License-Identifier: MIT */
/*
 * walloc: a worker's own heap. coil__walloc_init creates a private jemalloc arena and an
 * explicit thread cache (tcache.create), and every call here uses MALLOCX_ARENA |
 * MALLOCX_TCACHE(tc): small blocks come from and go back to that cache without the arena's
 * lock (about 4 ns against about 55 ns for a malloc/free pair with no cache; perf/micro's
 * arena rows). An explicit cache belongs to no thread, so no thread is ever bound to the arena:
 * fini destroys the cache (returning what it holds to the arena) and then "arena.<i>.destroy"
 * is always allowed and returns everything still allocated in one step. Only the owning
 * worker uses the cache, which jemalloc requires of explicit caches. Counting:
 * nalloc and nfree are written only by the owning worker, with relaxed atomic stores because
 * coil_stats_get reads them from other threads. A growing realloc
 * (one that asks for more than the block's usable size, sallocx or malloc_usable_size) counts
 * as one allocation plus one free of the old block, so nalloc - nfree is always the number of
 * live blocks and a module that freed everything leaves nalloc == nfree. Size 0 is
 * served as size 1, because jemalloc leaves mallocx(0) undefined and callers want a unique
 * pointer. With COIL_NO_JEMALLOC the same contract is met by libc, so sanitizers see every
 * allocation; fini then frees nothing and LeakSanitizer reports what was left behind.
 */
#include "walloc.h"

#include <assert.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>

/* Only the owner writes a counter, but coil_stats_get reads it from other threads: a relaxed
 * atomic store keeps that read well-defined and costs a plain store. */
static inline void count(uint64_t *c)
{
    __atomic_store_n(c, *c + 1, __ATOMIC_RELAXED);
}

/* Fault injection: the armed allocation fails, once. One predictable branch when unarmed. */
static inline bool injected_failure(struct coil_walloc *w)
{
    if (__builtin_expect(w->fail_in == 0, 1) || --w->fail_in != 0)
        return false;
    fprintf(stderr, "coil: test: an allocation failed by injection\n");
    return true;
}

void coil__walloc_fail_in(struct coil_walloc *w, uint64_t n)
{
    w->fail_in = n;
}

#ifndef COIL_NO_JEMALLOC
#include <jemalloc/jemalloc.h>
#else
#include <malloc.h>

#endif

#ifndef COIL_NO_JEMALLOC

int coil__walloc_init(struct coil_walloc *w)
{
    unsigned idx = 0;
    size_t len = sizeof(idx);
    int rc = mallctl("arenas.create", &idx, &len, NULL, 0);
    if (rc != 0)
        return -rc; /* mallctl returns a positive errno (EAGAIN when out of arenas) */
    unsigned tc = 0;
    len = sizeof(tc);
    rc = mallctl("tcache.create", &tc, &len, NULL, 0);
    if (rc != 0) {
        char name[64];
        snprintf(name, sizeof(name), "arena.%u.destroy", idx);
        mallctl(name, NULL, NULL, NULL, 0);
        return -rc;
    }
    w->arena = idx;
    w->tcache = tc;
    w->flags = MALLOCX_ARENA(idx) | MALLOCX_TCACHE(tc);
    w->nalloc = 0;
    w->nfree = 0;
    w->fail_in = 0;
    return 0;
}

void coil__walloc_fini(struct coil_walloc *w)
{
    unsigned tc = w->tcache;
    int rc = mallctl("tcache.destroy", NULL, NULL, &tc, sizeof(tc));
    assert(rc == 0);
    char name[64];
    int n = snprintf(name, sizeof(name), "arena.%u.destroy", w->arena);
    assert(n > 0 && (size_t)n < sizeof(name));
    (void)n;
    rc = mallctl(name, NULL, NULL, NULL, 0);
    assert(rc == 0); /* fails only if a thread is bound to the arena, which walloc never does */
    (void)rc;
    w->flags = 0;
}

void *coil__walloc(struct coil_walloc *w, size_t size)
{
    if (injected_failure(w))
        return NULL;
    void *p = mallocx(size ? size : 1, w->flags);
    if (p)
        count(&w->nalloc);
    return p;
}

void *coil__wcalloc(struct coil_walloc *w, size_t size)
{
    if (injected_failure(w))
        return NULL;
    void *p = mallocx(size ? size : 1, w->flags | MALLOCX_ZERO);
    if (p)
        count(&w->nalloc);
    return p;
}

void *coil__wrealloc(struct coil_walloc *w, void *p, size_t size)
{
    if (p == NULL)
        return coil__walloc(w, size);
    size_t old = sallocx(p, w->flags);
    if (size > old && injected_failure(w))
        return NULL;
    void *q = rallocx(p, size ? size : 1, w->flags);
    if (q && size > old) {
        count(&w->nalloc);
        count(&w->nfree);
    }
    return q;
}

void coil__wfree(struct coil_walloc *w, void *p)
{
    if (p == NULL)
        return;
    dallocx(p, w->flags);
    count(&w->nfree);
}

#else /* COIL_NO_JEMALLOC */

int coil__walloc_init(struct coil_walloc *w)
{
    w->arena = 0;
    w->tcache = 0;
    w->flags = 0;
    w->nalloc = 0;
    w->nfree = 0;
    w->fail_in = 0;
    return 0;
}

void coil__walloc_fini(struct coil_walloc *w)
{
    (void)w;
}

void *coil__walloc(struct coil_walloc *w, size_t size)
{
    if (injected_failure(w))
        return NULL;
    void *p = malloc(size ? size : 1);
    if (p)
        count(&w->nalloc);
    return p;
}

void *coil__wcalloc(struct coil_walloc *w, size_t size)
{
    if (injected_failure(w))
        return NULL;
    void *p = calloc(1, size ? size : 1);
    if (p)
        count(&w->nalloc);
    return p;
}

void *coil__wrealloc(struct coil_walloc *w, void *p, size_t size)
{
    if (p == NULL)
        return coil__walloc(w, size);
    size_t old = malloc_usable_size(p);
    if (size > old && injected_failure(w))
        return NULL;
    void *q = realloc(p, size ? size : 1);
    if (q && size > old) {
        count(&w->nalloc);
        count(&w->nfree);
    }
    return q;
}

void coil__wfree(struct coil_walloc *w, void *p)
{
    if (p == NULL)
        return;
    free(p);
    count(&w->nfree);
}

#endif /* COIL_NO_JEMALLOC */
