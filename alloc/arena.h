/* SPDX-License-Identifier: MIT */
/*
 * arena: a bump allocator for memory that lives exactly as long as one request. The first
 * chunk is kept across resets, so a steady stream of small requests allocates nothing from
 * the heap; larger needs add chunks from the worker's walloc, freed at the next reset.
 * Reset poisons the freed space for ASan, so a pointer kept past its request faults.
 * Owned by one worker; not thread-safe.
 */
#ifndef COIL_ARENA_H
#define COIL_ARENA_H

#include <stdbool.h>
#include <stddef.h>

#include "walloc.h"

struct coil__arena_chunk;

struct coil_arena {
    struct coil_walloc *wa;          /* where chunks come from */
    struct coil__arena_chunk *first; /* kept across resets */
    struct coil__arena_chunk *cur;   /* chunk being bumped; chunks form a list from first */
    char *ptr;                       /* next free byte in cur */
    char *end;                       /* end of cur's space */
    char *last;                      /* start of the most recent allocation (for grow) */
    size_t first_size;               /* usable bytes in the first chunk */
};

/* Sets up the arena; the first chunk (first_size bytes) is allocated now. 0 or -ENOMEM. */
int coil__arena_init(struct coil_arena *a, struct coil_walloc *wa, size_t first_size);
/* The same, allocating nothing until the first allocation. */
void coil__arena_init_empty(struct coil_arena *a, struct coil_walloc *wa, size_t first_size);
void coil__arena_fini(struct coil_arena *a);

/* size bytes aligned to 16. NULL on OOM. size 0 returns a valid unique pointer. */
void *coil__arena_alloc(struct coil_arena *a, size_t size);
/*
 * Grows p (old_size bytes) to new_size. If p is the most recent allocation and fits, it grows
 * in place; otherwise new memory is taken and old_size bytes copied. NULL on OOM (p intact).
 */
void *coil__arena_grow(struct coil_arena *a, void *p, size_t old_size, size_t new_size);
/* Copy of s[0..n) with a NUL after it. */
char *coil__arena_strndup(struct coil_arena *a, const char *s, size_t n);

/* Frees everything: extra chunks go back to walloc, the first chunk is kept and poisoned. */
void coil__arena_reset(struct coil_arena *a);

/* Whether anything was allocated since the last reset. */
bool coil__arena_used(const struct coil_arena *a);
/*
 * Hands every chunk of `from`, and what was allocated in them, to `to` (which must not hold
 * chunks): pointers into them stay valid and now die with `to`. `from` is left empty and makes
 * a new first chunk at its next allocation. This is how a request that outlives its handler
 * keeps what the handler allocated.
 */
void coil__arena_move(struct coil_arena *from, struct coil_arena *to);

#endif
