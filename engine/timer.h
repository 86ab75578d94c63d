/* SPDX-License-Identifier: MIT */
/*
 * timer: a hashed timing wheel for connection timeouts (header, body, idle, write, linger).
 * Timers are intrusive (embedded in the connection), so arming and cancelling are O(1) and
 * allocate nothing. Resolution is one tick; a timer never fires early, and fires at most one
 * tick late. Timers further out than one revolution stay in their slot and are skipped until
 * their deadline comes round. Owned by one worker; not thread-safe.
 */
#ifndef COIL_TIMER_H
#define COIL_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#define COIL_WHEEL_SLOTS 512u /* power of two */

struct coil__timer {
    struct coil__timer *next; /* NULL when not armed */
    struct coil__timer *prev;
    uint64_t deadline; /* ms, same clock as the wheel's now */
    /* What the owner of the wheel calls when it fires (the worker's loop calls cb(t, worker));
     * the wheel itself never reads it. */
    void (*cb)(struct coil__timer *t, void *ctx);
};

struct coil__wheel {
    struct coil__timer slots[COIL_WHEEL_SLOTS]; /* list heads (sentinels) */
    uint64_t tick_ms;                           /* resolution */
    uint64_t now;                               /* ms, last advance */
    uint64_t tick;                              /* ticks processed: now / tick_ms */
    uint32_t count;                             /* armed timers */
};

void coil__wheel_init(struct coil__wheel *w, uint64_t now_ms, uint64_t tick_ms);
/* Arms (or re-arms) t to fire at deadline_ms; a past deadline fires at the next advance. */
void coil__timer_arm(struct coil__wheel *w, struct coil__timer *t, uint64_t deadline_ms);
void coil__timer_cancel(struct coil__wheel *w, struct coil__timer *t); /* no-op if not armed */
static inline bool coil__timer_armed(const struct coil__timer *t)
{
    return t->next != 0;
}

/* Advances to now_ms and calls fire(t, ud) for every timer due (unlinked before the call; fire
 * may re-arm or cancel any timer). */
void coil__wheel_advance(struct coil__wheel *w, uint64_t now_ms,
                         void (*fire)(struct coil__timer *t, void *ud), void *ud);
/* Milliseconds from now until the next tick that has timers to look at; UINT64_MAX if none. */
uint64_t coil__wheel_timeout(const struct coil__wheel *w);

/*
 * Precise timers: a binary min-heap on a nanosecond due time, for timers a handler waits on
 * (a 1 ms delay must be 1 ms, not a tick). Intrusive like the wheel's: t->pos is the timer's
 * heap index + 1 (0: not armed), so removing any timer is O(log n). The array grows from walloc
 * and is kept; only push can fail (-ENOMEM). Owned by one worker; not thread-safe.
 */
struct coil_walloc;
struct coil__ptimer {
    uint64_t due_ns;                               /* CLOCK_MONOTONIC */
    uint32_t pos;                                  /* heap index + 1; 0 when not armed */
    void (*cb)(struct coil__ptimer *t, void *ctx); /* called by the owner once due */
};
struct coil__pheap {
    struct coil__ptimer **v;
    uint32_t n;   /* armed timers */
    uint32_t cap; /* entries allocated */
};
int coil__pheap_push(struct coil__pheap *h, struct coil_walloc *wa, struct coil__ptimer *t,
                     uint64_t due_ns);                                  /* t must not be armed */
void coil__pheap_remove(struct coil__pheap *h, struct coil__ptimer *t); /* no-op if unarmed */
static inline struct coil__ptimer *coil__pheap_min(const struct coil__pheap *h)
{
    return h->n ? h->v[0] : 0;
}
void coil__pheap_fini(struct coil__pheap *h, struct coil_walloc *wa);

#endif
