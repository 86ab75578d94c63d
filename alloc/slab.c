/* SPDX-License-Identifier: MIT */
/*
 * slab: objects addressed by (index, generation). Slot i lives in pages[i / COIL_SLAB_PAGE]
 * at offset (i % COIL_SLAB_PAGE) * obj_size; pages, gen and next all grow by one page when
 * the free list is empty and fewer than max_objs are live, so an idle slab holds nothing and
 * a busy one holds about what it has used. The page that reaches max_objs only gets the
 * objects that can ever be used (max_objs 10 allocates 10 objects, not COIL_SLAB_PAGE);
 * gen[] still covers whole pages and the slots past max_objs stay at generation 0, free and
 * never on the free list. Generations start even (free), get makes them odd, put makes
 * them even again, so (idx, gen) of a released object never matches until the counter
 * wraps. The free list is LIFO through next[] so the most recently released (cache-warm)
 * object is reused first, and object memory is never written while free: under ASan free
 * objects are poisoned and a use after put faults.
 */
#include "slab.h"
#include "poison.h"

#include <assert.h>
#include <errno.h>
#include <string.h>

#define NONE UINT32_MAX
#define MAX_OBJS (1u << 24)

static_assert((COIL_SLAB_PAGE & (COIL_SLAB_PAGE - 1)) == 0, "page size is a power of two");

int coil__slab_init(struct coil_slab *s, struct coil_walloc *wa, size_t obj_size, uint32_t max_objs)
{
    if (obj_size == 0 || max_objs == 0 || max_objs > MAX_OBJS)
        return -EINVAL;
    if (obj_size > SIZE_MAX / COIL_SLAB_PAGE - 16)
        return -ENOMEM; /* one page could never be allocated */
    memset(s, 0, sizeof(*s));
    s->wa = wa;
    s->obj_size = (obj_size + 15) & ~(size_t)15;
    s->max_objs = max_objs;
    s->free_head = NONE;
    return 0;
}

/* Objects in page pg: COIL_SLAB_PAGE, or fewer for the page that holds slot max_objs - 1. */
static uint32_t page_objs(const struct coil_slab *s, uint32_t pg)
{
    uint32_t base = pg * COIL_SLAB_PAGE;
    assert(base < s->max_objs);
    uint32_t left = s->max_objs - base;
    return left < COIL_SLAB_PAGE ? left : COIL_SLAB_PAGE;
}

void coil__slab_fini(struct coil_slab *s)
{
    for (uint32_t pg = 0; pg < s->npages; pg++) {
        unpoison(s->pages[pg], page_objs(s, pg) * s->obj_size);
        coil__wfree(s->wa, s->pages[pg]);
    }
    coil__wfree(s->wa, s->pages);
    coil__wfree(s->wa, s->gen);
    coil__wfree(s->wa, s->next);
    memset(s, 0, sizeof(*s));
}

/*
 * Adds a page and puts its slots on the (empty) free list, lowest index first. Arrays are
 * grown before the page is allocated; on failure the slab is unchanged apart from arrays
 * that are already big enough for next time. 0 or -ENOMEM.
 */
static int add_page(struct coil_slab *s)
{
    assert(s->free_head == NONE);
    uint32_t pg = s->npages;
    size_t slots = (size_t)(pg + 1) * COIL_SLAB_PAGE;
    char **pages = coil__wrealloc(s->wa, s->pages, (pg + 1) * sizeof(*pages));
    if (pages == NULL)
        return -ENOMEM;
    s->pages = pages;
    uint32_t *gen = coil__wrealloc(s->wa, s->gen, slots * sizeof(*gen));
    if (gen == NULL)
        return -ENOMEM;
    s->gen = gen;
    uint32_t *next = coil__wrealloc(s->wa, s->next, slots * sizeof(*next));
    if (next == NULL)
        return -ENOMEM;
    s->next = next;
    uint32_t n = page_objs(s, pg);
    char *page = coil__walloc(s->wa, n * s->obj_size);
    if (page == NULL)
        return -ENOMEM;
    poison(page, n * s->obj_size);
    s->pages[pg] = page;
    uint32_t base = pg * COIL_SLAB_PAGE;
    for (uint32_t i = 0; i < COIL_SLAB_PAGE; i++) {
        s->gen[base + i] = 0;
        s->next[base + i] = i + 1 < n ? base + i + 1 : NONE;
    }
    s->free_head = base;
    s->npages = pg + 1;
    return 0;
}

static inline char *slot_addr(const struct coil_slab *s, uint32_t idx)
{
    return s->pages[idx / COIL_SLAB_PAGE] + (size_t)(idx % COIL_SLAB_PAGE) * s->obj_size;
}

void *coil__slab_get(struct coil_slab *s, uint32_t *idx, uint32_t *gen)
{
    if (s->used >= s->max_objs)
        return NULL;
    if (s->free_head == NONE && add_page(s) != 0)
        return NULL;
    uint32_t i = s->free_head;
    assert(i < s->npages * COIL_SLAB_PAGE && i < s->max_objs);
    assert((s->gen[i] & 1) == 0);
    s->free_head = s->next[i];
    s->gen[i]++;
    s->used++;
    char *obj = slot_addr(s, i);
    unpoison(obj, s->obj_size);
    memset(obj, 0, s->obj_size);
    *idx = i;
    *gen = s->gen[i];
    return obj;
}

void coil__slab_put(struct coil_slab *s, uint32_t idx)
{
    assert(idx < s->npages * COIL_SLAB_PAGE);
    assert(s->gen[idx] & 1); /* putting a free slot twice is a bug */
    assert(s->used > 0);
    s->gen[idx]++;
    s->next[idx] = s->free_head;
    s->free_head = idx;
    s->used--;
    poison(slot_addr(s, idx), s->obj_size);
}

void *coil__slab_at(const struct coil_slab *s, uint32_t idx, uint32_t gen)
{
    if (idx >= s->npages * COIL_SLAB_PAGE || (gen & 1) == 0 || s->gen[idx] != gen)
        return NULL;
    return slot_addr(s, idx);
}
