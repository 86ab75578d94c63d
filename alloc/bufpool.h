/* SPDX-License-Identifier: MIT */
/*
 * bufpool: a free list of equal-size byte buffers (connection input and output buffers), so a
 * keep-alive request reuses memory instead of going to the heap. Up to max_cached idle
 * buffers are kept; beyond that, put frees. Owned by one worker; not thread-safe.
 */
#ifndef COIL_BUFPOOL_H
#define COIL_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "walloc.h"

struct coil_bufpool {
    struct coil_walloc *wa;
    size_t size;         /* bytes per buffer */
    uint32_t max_cached; /* idle buffers kept at most */
    uint32_t ncached;    /* idle buffers on the free list now */
    void *free;          /* singly linked through the first word of each idle buffer */
};

void coil__bufpool_init(struct coil_bufpool *p, struct coil_walloc *wa, size_t size,
                        uint32_t max_cached);
void coil__bufpool_fini(struct coil_bufpool *p); /* frees the idle buffers */
void *coil__bufpool_get(struct coil_bufpool *p); /* size bytes, uninitialised; NULL on OOM */
void coil__bufpool_put(struct coil_bufpool *p, void *buf);

#endif
