/* SPDX-License-Identifier: MIT */
/*
 * walloc: a worker's own heap. Each worker creates one jemalloc arena (arenas.create) and
 * allocates everything long-lived from it with MALLOCX_ARENA, so workers never contend on an
 * allocator lock and a worker's memory stays on its node. Memory must be freed by the worker
 * that allocated it. Every allocation bumps `nalloc`, which is how tests prove that a
 * steady-state request allocates nothing from the heap.
 *
 * Sanitizer builds (COIL_NO_JEMALLOC defined) use libc malloc instead so ASan/LSan see every
 * allocation; the counters behave the same.
 */
#ifndef COIL_WALLOC_H
#define COIL_WALLOC_H

#include <stddef.h>
#include <stdint.h>

struct coil_walloc {
    unsigned arena;   /* jemalloc arena index; 0 when COIL_NO_JEMALLOC */
    unsigned tcache;  /* explicit jemalloc thread cache, used by the owner only */
    int flags;        /* mallocx flags: MALLOCX_ARENA(arena) | MALLOCX_TCACHE(tcache) */
    uint64_t nalloc;  /* allocations (malloc and growing realloc) since init; owner-written */
    uint64_t nfree;   /* frees since init */
    uint64_t fail_in; /* fault injection: the fail_in-th allocation from now fails; 0 off */
};

/* Creates the arena and its cache. Returns 0 or -errno (-ENOMEM). */
int coil__walloc_init(struct coil_walloc *w);
/* Destroys the arena and everything still allocated in it. */
void coil__walloc_fini(struct coil_walloc *w);

void *coil__walloc(struct coil_walloc *w, size_t size);            /* NULL on OOM */
void *coil__wcalloc(struct coil_walloc *w, size_t size);           /* zeroed */
void *coil__wrealloc(struct coil_walloc *w, void *p, size_t size); /* NULL on OOM, p kept */
void coil__wfree(struct coil_walloc *w, void *p);                  /* p may be NULL */

/* Tests: makes the n-th allocation (or growing realloc) from now return NULL, once; 0 disarms.
 * coil arms it on each worker from COIL_TEST_ALLOC_FAIL=N when the worker starts serving. */
void coil__walloc_fail_in(struct coil_walloc *w, uint64_t n);

#endif
