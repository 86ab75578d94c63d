/* SPDX-License-Identifier: MIT */
/*
 * bufpool: idle buffers wait on a LIFO free list linked through their first word, so the
 * buffer handed out next is the one released last and still warm in cache. At most
 * max_cached wait; put frees the rest, so a burst of connections does not pin its peak memory
 * forever. Under ASan an idle buffer is poisoned except for its link word, so a write into a
 * released buffer faults; buffers are unpoisoned again before they are handed out or freed.
 */
#include "bufpool.h"
#include "poison.h"

#include <assert.h>
#include <stddef.h>
#include <string.h>

void coil__bufpool_init(struct coil_bufpool *p, struct coil_walloc *wa, size_t size,
                        uint32_t max_cached)
{
    assert(size >= sizeof(void *)); /* an idle buffer holds the free-list link */
    p->wa = wa;
    p->size = size;
    p->max_cached = max_cached;
    p->ncached = 0;
    p->free = NULL;
}

/* Unlinks the head of the free list, which must not be empty, and unpoisons it whole. */
static void *pop(struct coil_bufpool *p)
{
    void *buf = p->free;
    assert(buf != NULL && p->ncached > 0);
    memcpy(&p->free, buf, sizeof(void *));
    p->ncached--;
    unpoison(buf, p->size);
    return buf;
}

void coil__bufpool_fini(struct coil_bufpool *p)
{
    while (p->free != NULL)
        coil__wfree(p->wa, pop(p));
    assert(p->ncached == 0);
}

void *coil__bufpool_get(struct coil_bufpool *p)
{
    if (p->free != NULL)
        return pop(p);
    return coil__walloc(p->wa, p->size);
}

void coil__bufpool_put(struct coil_bufpool *p, void *buf)
{
    assert(buf != NULL);
    if (p->ncached >= p->max_cached) {
        coil__wfree(p->wa, buf);
        return;
    }
    memcpy(buf, &p->free, sizeof(void *));
    p->free = buf;
    p->ncached++;
    poison((char *)buf + sizeof(void *), p->size - sizeof(void *));
}
