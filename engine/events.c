/* SPDX-License-Identifier: MIT */
/*
 * events.c: the loop's tables and timers, apart from the ring: which function handles each kind
 * of completion (coil__loop_handle), which functions run at each loop event (coil__loop_on),
 * and arming and firing the worker's timers (the wheel for timeouts, the heap for handler
 * timers). Modules register before the workers start, so the tables are read-only while they
 * run. loop.c drives these from its ring; a test harness (tests/fuzz) drives the same code
 * from a fake kernel.
 */
#include <assert.h>

#include "internal.h"

#define MAX_HOOKS 8

static coil__cqe_fn cqe_fns[OP_MAX];
static void (*hooks[EV_MAX][MAX_HOOKS])(struct coil__worker *w);

void coil__loop_handle(enum coil__op op, coil__cqe_fn fn)
{
    assert(op > OP_IGNORE && op < OP_MAX);
    cqe_fns[op] = fn;
}

void coil__loop_on(enum coil__event ev, void (*fn)(struct coil__worker *w))
{
    for (unsigned i = 0; i < MAX_HOOKS; i++) {
        if (hooks[ev][i] == fn)
            return;
        if (!hooks[ev][i]) {
            hooks[ev][i] = fn;
            return;
        }
    }
    assert(!"too many loop hooks");
}

void coil__loop_run(struct coil__worker *w, enum coil__event ev)
{
    for (unsigned i = 0; i < MAX_HOOKS && hooks[ev][i]; i++)
        hooks[ev][i](w);
}

void coil__loop_dispatch(struct coil__worker *w, const struct io_uring_cqe *cqe)
{
    unsigned op = UD_OP(cqe->user_data);
    if (op < OP_MAX && cqe_fns[op])
        cqe_fns[op](w, cqe);
}

bool coil__loop_handles(enum coil__op op)
{
    return cqe_fns[op] != NULL;
}

bool coil__loop_hooked(enum coil__event ev)
{
    return hooks[ev][0] != NULL;
}

/* ---- timers ----------------------------------------------------------------------------- */

void coil__timer_at(struct coil__worker *w, struct coil__timer *t, uint64_t deadline_ms)
{
    assert(t->cb);
    coil__timer_arm(&w->wheel, t, deadline_ms);
}

int coil__ptimer_arm(struct coil__worker *w, struct coil__ptimer *t, uint64_t due_ns)
{
    /* Armed while timers fire: never in this round, so a callback that re-arms itself with no
     * delay cannot keep the loop here. */
    if (w->firing && due_ns <= w->now_ns)
        due_ns = w->now_ns + 1;
    return coil__pheap_push(&w->heap, &w->wa, t, due_ns);
}

void coil__ptimer_cancel(struct coil__worker *w, struct coil__ptimer *t)
{
    coil__pheap_remove(&w->heap, t);
}

static void on_timer(struct coil__timer *t, void *ctx)
{
    t->cb(t, ctx);
}

void coil__timers_fire(struct coil__worker *w)
{
    coil__wheel_advance(&w->wheel, w->now_ms, on_timer, w);
    if (!w->heap.n)
        return;
    w->firing = true;
    struct coil__ptimer *t;
    while ((t = coil__pheap_min(&w->heap)) && t->due_ns <= w->now_ns) {
        coil__pheap_remove(&w->heap, t);
        t->cb(t, w);
    }
    w->firing = false;
}
