/* SPDX-License-Identifier: MIT */
/*
 * arena: bump allocation for one request. Chunks form a list headed by `first`, which lives
 * from init to fini; every other chunk is linked right after `first` and freed at reset.
 * `cur` is the chunk being bumped and [ptr, end) its free space; every allocation starts on a
 * 16-byte boundary and takes a multiple of 16 bytes (at least 16, so size 0 is unique too).
 * A request bigger than first_size gets a chunk of its own that never becomes `cur`, so the
 * space left in `cur` keeps serving small requests. `last` is the most recent allocation
 * taken from `cur` (NULL after a large one or a reset); only it can grow in place. Under ASan
 * all free space is poisoned and exactly the requested bytes of each allocation are
 * unpoisoned, so overruns into the alignment slack and any use after reset fault; chunks are
 * unpoisoned before they go back to walloc, whose allocator may not know about our poison.
 */
#include "arena.h"
#include "poison.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define ALIGN 16u

struct coil__arena_chunk {
    struct coil__arena_chunk *next; /* next chunk after first; NULL ends the list */
    size_t size;                    /* usable bytes in data, a multiple of ALIGN */
    alignas(ALIGN) char data[];     /* the bytes handed out */
};

static_assert(offsetof(struct coil__arena_chunk, data) % ALIGN == 0, "chunk data alignment");

/* size rounded up to ALIGN, at least ALIGN; 0 if that overflows. */
static size_t round_size(size_t size)
{
    if (size > SIZE_MAX - (ALIGN - 1) - sizeof(struct coil__arena_chunk))
        return 0;
    return size == 0 ? ALIGN : (size + (ALIGN - 1)) & ~(size_t)(ALIGN - 1);
}

static struct coil__arena_chunk *new_chunk(struct coil_walloc *wa, size_t size)
{
    assert(size % ALIGN == 0);
    struct coil__arena_chunk *c = coil__walloc(wa, sizeof(*c) + size);
    if (c == NULL)
        return NULL;
    assert((uintptr_t)c % ALIGN == 0);
    c->next = NULL;
    c->size = size;
    poison(c->data, size);
    return c;
}

static void free_chunk(struct coil_walloc *wa, struct coil__arena_chunk *c)
{
    unpoison(c->data, c->size);
    coil__wfree(wa, c);
}

int coil__arena_init(struct coil_arena *a, struct coil_walloc *wa, size_t first_size)
{
    assert(first_size > 0);
    size_t size = round_size(first_size);
    if (size == 0)
        return -ENOMEM;
    struct coil__arena_chunk *c = new_chunk(wa, size);
    if (c == NULL)
        return -ENOMEM;
    a->wa = wa;
    a->first = c;
    a->cur = c;
    a->ptr = c->data;
    a->end = c->data + size;
    a->last = NULL;
    a->first_size = size;
    return 0;
}

void coil__arena_init_empty(struct coil_arena *a, struct coil_walloc *wa, size_t first_size)
{
    memset(a, 0, sizeof(*a));
    a->wa = wa;
    a->first_size = round_size(first_size ? first_size : ALIGN);
}

void coil__arena_fini(struct coil_arena *a)
{
    if (a->first != NULL) {
        coil__arena_reset(a);
        free_chunk(a->wa, a->first);
    }
    memset(a, 0, sizeof(*a));
}

bool coil__arena_used(const struct coil_arena *a)
{
    return a->first != NULL && (a->first->next != NULL || a->ptr != a->first->data);
}

void coil__arena_move(struct coil_arena *from, struct coil_arena *to)
{
    *to = *from;
    from->first = NULL;
    from->cur = NULL;
    from->ptr = NULL;
    from->end = NULL;
    from->last = NULL;
}

/* A chunk of its own for a request of need bytes (need > first_size); cur is untouched. */
static void *alloc_large(struct coil_arena *a, size_t need, size_t size)
{
    struct coil__arena_chunk *c = new_chunk(a->wa, need);
    if (c == NULL)
        return NULL;
    c->next = a->first->next;
    a->first->next = c;
    unpoison(c->data, size);
    return c->data;
}

/* Gives an arena that handed its chunks away (coil__arena_move) a first chunk again. */
static int add_first(struct coil_arena *a)
{
    struct coil__arena_chunk *c = new_chunk(a->wa, a->first_size);
    if (c == NULL)
        return -ENOMEM;
    a->first = c;
    a->cur = c;
    a->ptr = c->data;
    a->end = c->data + c->size;
    a->last = NULL;
    return 0;
}

/* Makes a fresh first_size chunk the one being bumped. 0 or -ENOMEM. */
static int add_chunk(struct coil_arena *a)
{
    if (a->first == NULL)
        return add_first(a);
    struct coil__arena_chunk *c = new_chunk(a->wa, a->first_size);
    if (c == NULL)
        return -ENOMEM;
    c->next = a->first->next;
    a->first->next = c;
    a->cur = c;
    a->ptr = c->data;
    a->end = c->data + c->size;
    return 0;
}

void *coil__arena_alloc(struct coil_arena *a, size_t size)
{
    size_t need = round_size(size);
    if (need == 0)
        return NULL;
    if (need > a->first_size) {
        a->last = NULL;
        if (a->first == NULL && add_first(a) != 0)
            return NULL;
        return alloc_large(a, need, size);
    }
    if (need > (size_t)(a->end - a->ptr) && add_chunk(a) != 0)
        return NULL;
    char *p = a->ptr;
    a->ptr += need;
    a->last = p;
    unpoison(p, size);
    poison(p + size, need - size);
    return p;
}

void *coil__arena_grow(struct coil_arena *a, void *p, size_t old_size, size_t new_size)
{
    if (p == NULL) {
        assert(old_size == 0);
        return coil__arena_alloc(a, new_size);
    }
    size_t need = round_size(new_size);
    if (need == 0)
        return NULL;
    char *cp = p;
    if (cp == a->last && need <= (size_t)(a->end - cp)) {
        char *old_ptr = a->ptr;
        a->ptr = cp + need;
        unpoison(cp, new_size);
        char *tail = old_ptr > a->ptr ? old_ptr : a->ptr; /* covers a shrink as well */
        poison(cp + new_size, (size_t)(tail - (cp + new_size)));
        return p;
    }
    void *q = coil__arena_alloc(a, new_size);
    if (q == NULL)
        return NULL;
    memcpy(q, p, old_size < new_size ? old_size : new_size);
    poison(p, old_size); /* p is dead now, like after realloc */
    return q;
}

char *coil__arena_strndup(struct coil_arena *a, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *d = coil__arena_alloc(a, n + 1);
    if (d == NULL)
        return NULL;
    if (n > 0)
        memcpy(d, s, n);
    d[n] = '\0';
    return d;
}

void coil__arena_reset(struct coil_arena *a)
{
    if (a->first == NULL)
        return; /* handed its chunks away; the next allocation makes a first one */
    struct coil__arena_chunk *c = a->first->next;
    while (c != NULL) {
        struct coil__arena_chunk *next = c->next;
        free_chunk(a->wa, c);
        c = next;
    }
    a->first->next = NULL;
    a->cur = a->first;
    a->ptr = a->first->data;
    a->end = a->first->data + a->first->size;
    a->last = NULL;
    poison(a->first->data, a->first->size);
}
