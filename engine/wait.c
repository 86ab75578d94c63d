/* SPDX-License-Identifier: MIT */
/*
 * wait.c: what a handler can wait on besides jobs: one-shot timers and fd readiness, on the
 * calling worker's own ring.
 *
 * Timers live in the worker's timer slab and on the loop's precise (nanosecond) heap, so a
 * 1 ms delay is 1 ms, not a 10 ms tick. A timer with an owner request is linked into that
 * request's list and cancelled when the request ends, so its callback never runs for a request
 * that is gone. Handles are (slot, generation): a timer that fired or was cancelled puts its
 * slot back first, so cancelling it later is a harmless -ENOENT.
 *
 * A watch is one IORING_OP_POLL_ADD at a time, re-armed after each callback: that makes it
 * level-triggered, which is what libraries written for poll/epoll (libpq, hiredis) expect, and a
 * changed event mask simply takes effect at the next arm (or at once, through a poll update,
 * while one is armed). coil_unwatch removes the poll; the slot is freed only when its last
 * completion has arrived (the poll's own, or the removal's), so a completion never meets a
 * reused slot.
 */
#include <errno.h>
#include <poll.h>
#include <string.h>

#include "internal.h"

#define MAX_TIMERS COIL_HANDLE_SLOTS
#define MAX_WATCHES (1u << 16)

/* ---- timers ----------------------------------------------------------------------------- */

static void owner_unlink(struct coil__utimer *t)
{
    if (!t->owner)
        return;
    if (t->owner_prev)
        t->owner_prev->owner_next = t->owner_next;
    else
        t->owner->timers = t->owner_next;
    if (t->owner_next)
        t->owner_next->owner_prev = t->owner_prev;
    t->owner = NULL;
}

static void on_utimer(struct coil__ptimer *pt, void *ctx)
{
    struct coil__worker *w = ctx;
    struct coil__utimer *t = (struct coil__utimer *)pt;
    void (*fn)(void *) = t->fn;
    void *ud = t->ud;
    owner_unlink(t);
    coil__slab_put(&w->utimers, t->idx); /* the handle is stale before fn runs */
    fn(ud);
}

struct coil_timer coil_timer_after(struct coil_req *owner, uint64_t ms, void (*fn)(void *ud),
                                   void *ud)
{
    struct coil__worker *w = coil__self;
    struct coil_timer none = {0};
    if (!w || !fn || ms > UINT64_MAX / 2000000u)
        return none;
    struct coil__rq *rq = owner ? owner->rq : NULL;
    if (owner && (!rq || !rq->deferred || rq->aborted || rq->finished))
        return none; /* only a deferred request outlives its handler */
    uint32_t idx, gen;
    struct coil__utimer *t = coil__slab_get(&w->utimers, &idx, &gen);
    if (!t)
        return none;
    t->idx = idx;
    t->gen = gen;
    t->fn = fn;
    t->ud = ud;
    t->t.cb = on_utimer;
    if (coil__ptimer_arm(w, &t->t, coil__clock_ns() + ms * 1000000u) < 0) {
        coil__slab_put(&w->utimers, idx);
        return none;
    }
    if (rq) {
        t->owner = rq;
        t->owner_prev = NULL;
        t->owner_next = rq->timers;
        if (rq->timers)
            rq->timers->owner_prev = t;
        rq->timers = t;
    }
    return (struct coil_timer){coil__handle(w->id, idx, gen)};
}

int coil_timer_cancel(struct coil_timer h)
{
    struct coil__worker *w = coil__self;
    if (!w || !h.id)
        return -ENOENT;
    uint32_t idx, gen;
    if (!coil__handle_on(h.id, w->id, &idx, &gen))
        return -ENOENT;
    struct coil__utimer *t = coil__slab_at(&w->utimers, idx, gen);
    if (!t)
        return -ENOENT;
    coil__ptimer_cancel(w, &t->t);
    owner_unlink(t);
    coil__slab_put(&w->utimers, t->idx);
    return 0;
}

void coil__timers_drop_owner(struct coil__worker *w, struct coil__rq *rq)
{
    while (rq->timers) {
        struct coil__utimer *t = rq->timers;
        coil__ptimer_cancel(w, &t->t);
        owner_unlink(t);
        coil__slab_put(&w->utimers, t->idx);
    }
}

void coil__deadline_arm(struct coil__deadline *d, uint64_t at_ms, void (*fn)(void *), void *ud)
{
    if (d->at && d->at <= at_ms)
        return; /* due sooner already */
    coil__deadline_cancel(d);
    uint64_t now = coil__self->now_ms;
    d->t = coil_timer_after(NULL, at_ms > now ? at_ms - now : 0, fn, ud);
    d->at = d->t.id ? at_ms : 0;
}

void coil__deadline_cancel(struct coil__deadline *d)
{
    if (d->at)
        coil_timer_cancel(d->t);
    d->at = 0;
}

/* ---- fd watches ------------------------------------------------------------------------- */

struct watch {
    int fd;
    uint32_t idx, gen;
    unsigned events;   /* COIL_READABLE | COIL_WRITABLE */
    bool armed;        /* a poll is in flight */
    bool closing;      /* unwatched: freed once nothing is in flight */
    uint32_t inflight; /* polls and removals that will still complete */
    coil_watch_fn fn;
    void *ud;
};

static unsigned poll_mask(unsigned events)
{
    return (events & COIL_READABLE ? POLLIN : 0) | (events & COIL_WRITABLE ? POLLOUT : 0);
}

static unsigned from_revents(int revents)
{
    return (revents & POLLIN ? COIL_READABLE : 0) | (revents & POLLOUT ? COIL_WRITABLE : 0) |
           (revents & (POLLERR | POLLNVAL) ? COIL_ERROR : 0) |
           (revents & POLLHUP ? COIL_HANGUP : 0);
}

static int arm_poll(struct coil__worker *w, struct watch *x)
{
    struct io_uring_sqe *sqe = coil__sqe(w);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_poll_add(sqe, x->fd, poll_mask(x->events));
    io_uring_sqe_set_data64(sqe, UD(OP_WATCH, x->idx, x->gen));
    x->armed = true;
    x->inflight++;
    return 0;
}

static void watch_free_if_done(struct coil__worker *w, struct watch *x)
{
    if (x->closing && x->inflight == 0)
        coil__slab_put(&w->watches, x->idx);
}

/* A removal's own completion: the slot waited for it too. */
static void on_unwatch(struct coil__worker *w, const struct io_uring_cqe *cqe)
{
    struct watch *x = coil__slab_at(&w->watches, UD_IDX(cqe->user_data), UD_GEN(cqe->user_data));
    if (!x)
        return;
    x->inflight--;
    watch_free_if_done(w, x);
}

static void on_watch(struct coil__worker *w, const struct io_uring_cqe *cqe)
{
    uint32_t idx = UD_IDX(cqe->user_data), gen = UD_GEN(cqe->user_data);
    struct watch *x = coil__slab_at(&w->watches, idx, gen);
    if (!x)
        return;
    x->inflight--;
    x->armed = false;
    if (x->closing) {
        watch_free_if_done(w, x);
        return;
    }
    if (cqe->res == -ECANCELED) {
        /* Our own poll update or an io_uring cancel: arm again below. */
    } else {
        unsigned ev = cqe->res < 0 ? COIL_ERROR : from_revents(cqe->res);
        x->fn(x->fd, ev, x->ud);
        x = coil__slab_at(&w->watches, idx, gen);
        if (!x || x->closing) {
            if (x)
                watch_free_if_done(w, x);
            return;
        }
    }
    if (!x->armed && x->events && arm_poll(w, x) < 0)
        x->fn(x->fd, COIL_ERROR, x->ud); /* cannot wait: say so rather than go silent */
}

struct coil_watch coil_watch(int fd, unsigned events, coil_watch_fn fn, void *ud)
{
    struct coil__worker *w = coil__self;
    struct coil_watch none = {0};
    if (!w || fd < 0 || !fn || (events & ~(unsigned)(COIL_READABLE | COIL_WRITABLE)))
        return none;
    uint32_t idx, gen;
    struct watch *x = coil__slab_get(&w->watches, &idx, &gen);
    if (!x)
        return none;
    x->fd = fd;
    x->idx = idx;
    x->gen = gen;
    x->events = events;
    x->fn = fn;
    x->ud = ud;
    if (events && arm_poll(w, x) < 0) {
        coil__slab_put(&w->watches, idx);
        return none;
    }
    return (struct coil_watch){coil__handle(w->id, idx, gen)};
}

static struct watch *watch_at(struct coil__worker *w, struct coil_watch h)
{
    if (!w || !h.id)
        return NULL;
    uint32_t idx, gen;
    if (!coil__handle_on(h.id, w->id, &idx, &gen))
        return NULL;
    struct watch *x = coil__slab_at(&w->watches, idx, gen);
    return x && !x->closing ? x : NULL;
}

/* Ends the poll in flight (it then completes with -ECANCELED). */
static void remove_poll(struct coil__worker *w, struct watch *x)
{
    struct io_uring_sqe *sqe = coil__sqe(w);
    if (!sqe)
        return; /* the poll ends when it fires; closing already keeps fn from running */
    io_uring_prep_poll_remove(sqe, UD(OP_WATCH, x->idx, x->gen));
    io_uring_sqe_set_data64(sqe, UD(OP_UNWATCH, x->idx, x->gen));
    x->inflight++;
}

int coil_watch_update(struct coil_watch h, unsigned events)
{
    struct coil__worker *w = coil__self;
    struct watch *x = watch_at(w, h);
    if (!x || (events & ~(unsigned)(COIL_READABLE | COIL_WRITABLE)))
        return x ? -EINVAL : -ENOENT;
    if (events == x->events)
        return 0;
    x->events = events;
    if (x->armed)
        remove_poll(w, x); /* it completes -ECANCELED and is armed again with the new mask */
    else if (events && arm_poll(w, x) < 0)
        return -EBUSY;
    return 0;
}

int coil_unwatch(struct coil_watch h)
{
    struct coil__worker *w = coil__self;
    struct watch *x = watch_at(w, h);
    if (!x)
        return -ENOENT;
    x->closing = true;
    if (x->armed)
        remove_poll(w, x);
    watch_free_if_done(w, x);
    return 0;
}

/* ---- per worker ------------------------------------------------------------------------- */

void coil__wait_init(void)
{
    coil__loop_handle(OP_WATCH, on_watch);
    coil__loop_handle(OP_UNWATCH, on_unwatch);
}

int coil__wait_start(struct coil__worker *w)
{
    int err = coil__slab_init(&w->utimers, &w->wa, sizeof(struct coil__utimer), MAX_TIMERS);
    if (err < 0)
        return err;
    return coil__slab_init(&w->watches, &w->wa, sizeof(struct watch), MAX_WATCHES);
}

void coil__wait_stop(struct coil__worker *w)
{
    if (w->utimers.wa)
        coil__slab_fini(&w->utimers);
    if (w->watches.wa)
        coil__slab_fini(&w->watches);
}
