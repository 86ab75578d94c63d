/* SPDX-License-Identifier: MIT */
/*
 * timer: a hashed timing wheel, and below it a binary min-heap for precise timers. A timer with
 * deadline d lives in slot (d / tick_ms) % SLOTS, except that a deadline in a tick already
 * processed (at or before w->tick) goes to the next tick's slot, so an armed timer always sits in
 * the slot of a tick after w->tick. Advancing to now walks the ticks w->tick+1 .. now/tick_ms, each
 * slot at most once (after a jump of more than a revolution every slot is scanned once), fires the
 * timers whose deadline is <= now and leaves the rest: later revolutions stay in their slot, and a
 * timer due later in the tick just reached moves to the next tick's slot, so nothing fires early
 * and nothing fires more than one tick late. A slot's list is moved to a local sentinel before it
 * is walked, so fire() may arm or cancel any timer, including those still on that local list, and a
 * timer re-armed from fire() is never walked twice in one advance. Each slot is a circular doubly
 * linked list through its sentinel; an unarmed timer has next == NULL.
 */
#include "timer.h"
#include "walloc.h"

#include <assert.h>
#include <errno.h>
#include <stddef.h>

#define SLOT_MASK (COIL_WHEEL_SLOTS - 1)

_Static_assert((COIL_WHEEL_SLOTS & SLOT_MASK) == 0, "COIL_WHEEL_SLOTS must be a power of two");

static void list_init(struct coil__timer *head)
{
    head->next = head;
    head->prev = head;
}

static void list_append(struct coil__timer *head, struct coil__timer *t)
{
    t->prev = head->prev;
    t->next = head;
    head->prev->next = t;
    head->prev = t;
}

static void list_unlink(struct coil__timer *t)
{
    t->prev->next = t->next;
    t->next->prev = t->prev;
    t->next = NULL;
    t->prev = NULL;
}

/* The slot for a deadline: its own tick's, or the next tick's if that one is processed. */
static struct coil__timer *slot_for(struct coil__wheel *w, uint64_t deadline)
{
    uint64_t tick = deadline / w->tick_ms;
    if (tick <= w->tick)
        tick = w->tick + 1;
    return &w->slots[tick & SLOT_MASK];
}

void coil__wheel_init(struct coil__wheel *w, uint64_t now_ms, uint64_t tick_ms)
{
    assert(w && tick_ms > 0);
    for (uint32_t i = 0; i < COIL_WHEEL_SLOTS; i++)
        list_init(&w->slots[i]);
    w->tick_ms = tick_ms;
    w->now = now_ms;
    w->tick = now_ms / tick_ms;
    w->count = 0;
}

void coil__timer_arm(struct coil__wheel *w, struct coil__timer *t, uint64_t deadline_ms)
{
    assert(w && t);
    if (t->next)
        list_unlink(t);
    else
        w->count++;
    t->deadline = deadline_ms;
    list_append(slot_for(w, deadline_ms), t);
}

void coil__timer_cancel(struct coil__wheel *w, struct coil__timer *t)
{
    assert(w && t);
    if (!t->next)
        return;
    assert(w->count > 0);
    list_unlink(t);
    w->count--;
}

/* Fires the due timers of one slot and puts the others back where they belong. */
static void walk_slot(struct coil__wheel *w, struct coil__timer *head,
                      void (*fire)(struct coil__timer *t, void *ud), void *ud)
{
    struct coil__timer local;
    if (head->next == head)
        return;
    local.next = head->next;
    local.prev = head->prev;
    local.next->prev = &local;
    local.prev->next = &local;
    list_init(head);
    /* fire() may unlink anything on `local` (cancel, re-arm), so always restart at its head. */
    while (local.next != &local) {
        struct coil__timer *t = local.next;
        list_unlink(t);
        if (t->deadline <= w->now) {
            w->count--;
            fire(t, ud);
        } else {
            list_append(slot_for(w, t->deadline), t);
        }
    }
}

void coil__wheel_advance(struct coil__wheel *w, uint64_t now_ms,
                         void (*fire)(struct coil__timer *t, void *ud), void *ud)
{
    assert(w && fire);
    if (now_ms < w->now) /* the clock is monotonic; never walk backwards */
        now_ms = w->now;
    w->now = now_ms;
    uint64_t target = now_ms / w->tick_ms;
    if (target <= w->tick)
        return;
    uint64_t from = w->tick + 1;
    if (target - w->tick > COIL_WHEEL_SLOTS)
        from = target - COIL_WHEEL_SLOTS + 1; /* every slot once */
    /* Set first, so timers armed by fire() land after the ticks being walked. */
    w->tick = target;
    for (uint64_t t = from; t <= target; t++)
        walk_slot(w, &w->slots[t & SLOT_MASK], fire, ud);
}

uint64_t coil__wheel_timeout(const struct coil__wheel *w)
{
    assert(w);
    if (w->count == 0)
        return UINT64_MAX;
    uint64_t next = (w->tick + 1) * w->tick_ms;
    assert(next > w->now);
    return next - w->now;
}

/* ---- the precise-timer heap ------------------------------------------------------------- */

static void heap_set(struct coil__pheap *h, uint32_t i, struct coil__ptimer *t)
{
    h->v[i] = t;
    t->pos = i + 1;
}

static void heap_up(struct coil__pheap *h, uint32_t i)
{
    struct coil__ptimer *t = h->v[i];
    while (i > 0) {
        uint32_t parent = (i - 1) / 2;
        if (h->v[parent]->due_ns <= t->due_ns)
            break;
        heap_set(h, i, h->v[parent]);
        i = parent;
    }
    heap_set(h, i, t);
}

static void heap_down(struct coil__pheap *h, uint32_t i)
{
    struct coil__ptimer *t = h->v[i];
    for (;;) {
        uint32_t l = 2 * i + 1, m = i;
        uint64_t due = t->due_ns;
        if (l < h->n && h->v[l]->due_ns < due) {
            m = l;
            due = h->v[l]->due_ns;
        }
        if (l + 1 < h->n && h->v[l + 1]->due_ns < due)
            m = l + 1;
        if (m == i)
            break;
        heap_set(h, i, h->v[m]);
        i = m;
    }
    heap_set(h, i, t);
}

int coil__pheap_push(struct coil__pheap *h, struct coil_walloc *wa, struct coil__ptimer *t,
                     uint64_t due_ns)
{
    assert(t->pos == 0);
    if (h->n == h->cap) {
        uint32_t cap = h->cap ? h->cap * 2 : 64;
        struct coil__ptimer **v = coil__wrealloc(wa, h->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    t->due_ns = due_ns;
    h->v[h->n++] = t;
    heap_up(h, h->n - 1);
    return 0;
}

void coil__pheap_remove(struct coil__pheap *h, struct coil__ptimer *t)
{
    if (!t->pos)
        return;
    uint32_t i = t->pos - 1;
    assert(i < h->n && h->v[i] == t);
    t->pos = 0;
    struct coil__ptimer *last = h->v[--h->n];
    if (i == h->n)
        return;
    h->v[i] = last;
    last->pos = i + 1;
    if (i > 0 && h->v[(i - 1) / 2]->due_ns > last->due_ns)
        heap_up(h, i);
    else
        heap_down(h, i);
}

void coil__pheap_fini(struct coil__pheap *h, struct coil_walloc *wa)
{
    coil__wfree(wa, h->v);
    h->v = NULL;
    h->n = h->cap = 0;
}
