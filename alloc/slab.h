/* SPDX-License-Identifier: MIT */
/*
 * slab: fixed-size objects addressed by (index, generation). Objects live in pages of
 * COIL_SLAB_PAGE objects allocated on demand from walloc, so an idle server does not hold
 * max_objs objects; pages are kept once allocated (addresses are stable). Putting an object
 * back bumps its slot's generation, so a late io_uring completion that carries the old
 * (index, generation) is recognised as stale by coil__slab_at and dropped.
 * Owned by one worker; not thread-safe.
 */
#ifndef COIL_SLAB_H
#define COIL_SLAB_H

#include <stddef.h>
#include <stdint.h>

#include "walloc.h"

#define COIL_SLAB_PAGE 256u

struct coil_slab {
    struct coil_walloc *wa;
    size_t obj_size;    /* bytes per object, rounded up to 16 */
    uint32_t max_objs;  /* hard limit on live objects */
    uint32_t used;      /* live objects */
    uint32_t npages;    /* pages allocated */
    uint32_t free_head; /* first free index, UINT32_MAX if none among allocated pages */
    char **pages;       /* npages pointers, each to COIL_SLAB_PAGE objects */
    uint32_t *gen;      /* generation per slot (npages * COIL_SLAB_PAGE); odd = live */
    uint32_t *next;     /* free-list link per slot */
};

/* 0 or -ENOMEM / -EINVAL (obj_size 0 or max_objs 0 or max_objs > 2^24). */
int coil__slab_init(struct coil_slab *s, struct coil_walloc *wa, size_t obj_size,
                    uint32_t max_objs);
void coil__slab_fini(struct coil_slab *s);

/* A zeroed object and its handle, or NULL when max_objs are live or memory is out. */
void *coil__slab_get(struct coil_slab *s, uint32_t *idx, uint32_t *gen);
/* Returns a live object; its generation changes so old handles go stale. */
void coil__slab_put(struct coil_slab *s, uint32_t idx);
/* The live object at (idx, gen), or NULL if the handle is stale or out of range. */
void *coil__slab_at(const struct coil_slab *s, uint32_t idx, uint32_t gen);

#endif
