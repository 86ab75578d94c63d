/* SPDX-License-Identifier: MIT */
/*
 * test_timer: the timing wheel. Timers never fire early and at most one tick late (counted
 * from the later of their deadline and the time they were armed), re-arming moves a timer,
 * cancelling stops it, deadlines several revolutions out wait for their turn, fire() may arm
 * and cancel timers (itself, others in the same slot, others elsewhere), and thousands of
 * random operations, including large time jumps, agree with a brute-force model. Time here is
 * simulated: the tests pass "now" explicitly and never read a clock.
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timer.h"

#include "check.h"

struct item {
    struct coil__timer timer;
    int id;
    unsigned fired;    /* times fire() saw it */
    uint64_t fired_at; /* wheel's now at the last fire */
    bool model_armed;  /* the model's view (random test) */
    uint64_t due;      /* model: max(deadline, now when armed) */
};

static struct item *item_of(struct coil__timer *t)
{
    return (struct item *)((char *)t - offsetof(struct item, timer));
}

/* What fire() should do, per test. */
struct ctx {
    struct coil__wheel *w;
    unsigned fires;
    void (*then)(struct ctx *c, struct item *it); /* extra action, or NULL */
    struct item *other;                           /* an item the action touches */
    uint64_t arg;                                 /* a deadline the action uses */
};

static void on_fire(struct coil__timer *t, void *ud)
{
    struct ctx *c = ud;
    struct item *it = item_of(t);
    CHECK(!coil__timer_armed(t));
    CHECK(t->deadline <= c->w->now); /* never early */
    it->fired++;
    it->fired_at = c->w->now;
    c->fires++;
    if (c->then)
        c->then(c, it);
}

static void item_init(struct item *it, int id)
{
    memset(it, 0, sizeof(*it));
    it->id = id;
}

static void test_basic(void)
{
    struct coil__wheel w;
    struct ctx c = {.w = &w};
    struct item a, b;
    item_init(&a, 1);
    item_init(&b, 2);
    coil__wheel_init(&w, 1000, 10);
    CHECK(w.count == 0 && coil__wheel_timeout(&w) == UINT64_MAX);

    coil__timer_arm(&w, &a.timer, 1050);
    CHECK(coil__timer_armed(&a.timer) && w.count == 1);
    CHECK(coil__wheel_timeout(&w) == 10);
    coil__wheel_advance(&w, 1049, on_fire, &c);
    CHECK(a.fired == 0 && coil__timer_armed(&a.timer));
    CHECK(coil__wheel_timeout(&w) == 1);
    coil__wheel_advance(&w, 1050, on_fire, &c);
    CHECK(a.fired == 1 && a.fired_at == 1050 && !coil__timer_armed(&a.timer) && w.count == 0);
    CHECK(coil__wheel_timeout(&w) == UINT64_MAX);
    coil__wheel_advance(&w, 5000, on_fire, &c);
    CHECK(a.fired == 1);

    /* Due in the middle of a tick that is reached early: late by less than a tick. */
    coil__timer_arm(&w, &a.timer, 5075);
    coil__wheel_advance(&w, 5072, on_fire, &c);
    CHECK(a.fired == 1);
    coil__wheel_advance(&w, 5079, on_fire, &c);
    CHECK(a.fired == 1 && coil__timer_armed(&a.timer));
    coil__wheel_advance(&w, 5080, on_fire, &c);
    CHECK(a.fired == 2 && a.fired_at == 5080);

    /* A past deadline fires once the next tick is reached. */
    coil__timer_arm(&w, &b.timer, 10);
    coil__wheel_advance(&w, 5081, on_fire, &c);
    CHECK(b.fired == 0 && coil__wheel_timeout(&w) == 9);
    coil__wheel_advance(&w, 5090, on_fire, &c);
    CHECK(b.fired == 1);
    /* A deadline equal to now, armed between ticks. */
    coil__timer_arm(&w, &b.timer, 5090);
    coil__wheel_advance(&w, 5100, on_fire, &c);
    CHECK(b.fired == 2);

    /* The clock never goes back. */
    coil__timer_arm(&w, &b.timer, 5200);
    coil__wheel_advance(&w, 100, on_fire, &c);
    CHECK(w.now == 5100 && b.fired == 2 && coil__timer_armed(&b.timer));
    coil__wheel_advance(&w, 5200, on_fire, &c);
    CHECK(b.fired == 3 && c.fires == 5);
}

static void test_rearm_cancel(void)
{
    struct coil__wheel w;
    struct ctx c = {.w = &w};
    struct item a, b;
    item_init(&a, 1);
    item_init(&b, 2);
    coil__wheel_init(&w, 0, 5);

    coil__timer_arm(&w, &a.timer, 100);
    coil__timer_arm(&w, &a.timer, 200); /* re-arm later */
    CHECK(w.count == 1);
    coil__wheel_advance(&w, 150, on_fire, &c);
    CHECK(a.fired == 0);
    coil__timer_arm(&w, &a.timer, 160); /* re-arm earlier */
    CHECK(w.count == 1);
    coil__wheel_advance(&w, 160, on_fire, &c);
    CHECK(a.fired == 1 && w.count == 0);

    coil__timer_arm(&w, &a.timer, 300);
    coil__timer_arm(&w, &b.timer, 300);
    CHECK(w.count == 2);
    coil__timer_cancel(&w, &a.timer);
    CHECK(!coil__timer_armed(&a.timer) && w.count == 1);
    coil__timer_cancel(&w, &a.timer); /* not armed: no-op */
    CHECK(w.count == 1);
    coil__wheel_advance(&w, 400, on_fire, &c);
    CHECK(a.fired == 1 && b.fired == 1 && w.count == 0);
    coil__timer_cancel(&w, &b.timer);
    CHECK(w.count == 0);

    /* Cancel after re-arming into another slot; arm again after cancel. */
    coil__timer_arm(&w, &a.timer, 1000);
    coil__timer_arm(&w, &a.timer, 2000);
    coil__timer_cancel(&w, &a.timer);
    coil__wheel_advance(&w, 3000, on_fire, &c);
    CHECK(a.fired == 1 && w.count == 0);
    coil__timer_arm(&w, &a.timer, 3001);
    coil__wheel_advance(&w, 3005, on_fire, &c);
    CHECK(a.fired == 2);
}

static void test_revolutions(void)
{
    struct coil__wheel w;
    struct ctx c = {.w = &w};
    struct item far, near;
    item_init(&far, 1);
    item_init(&near, 2);
    coil__wheel_init(&w, 0, 1); /* 512 ms per revolution */

    /* Same slot, different revolutions. */
    coil__timer_arm(&w, &far.timer, 3 * COIL_WHEEL_SLOTS + 7);
    coil__timer_arm(&w, &near.timer, 7);
    for (uint64_t now = 1; now <= 4 * COIL_WHEEL_SLOTS; now++) {
        coil__wheel_advance(&w, now, on_fire, &c);
        CHECK(near.fired == (now >= 7));
        CHECK(far.fired == (now >= 3 * COIL_WHEEL_SLOTS + 7));
        if (far.fired)
            CHECK(far.fired_at == 3 * COIL_WHEEL_SLOTS + 7);
    }

    /* Jumps of several revolutions scan each slot once and keep what is not due. */
    coil__wheel_init(&w, 1000, 10);
    struct item its[64];
    for (int i = 0; i < 64; i++) {
        item_init(&its[i], i);
        coil__timer_arm(&w, &its[i].timer, 1000 + (uint64_t)i * 2000 + 3); /* ~4 revs apart */
    }
    uint64_t now = 1000;
    while (w.count > 0) {
        uint64_t before = now;
        now += 3 * COIL_WHEEL_SLOTS * 10 + 1234;
        coil__wheel_advance(&w, now, on_fire, &c);
        for (int i = 0; i < 64; i++) {
            uint64_t d = its[i].timer.deadline;
            CHECK(its[i].fired == (d <= now));
            if (d > before && d <= now)
                CHECK(its[i].fired_at == now);
        }
    }

    /* A huge jump fires everything; the wheel keeps working afterwards. */
    coil__wheel_init(&w, 0, 10);
    for (int i = 0; i < 64; i++) {
        item_init(&its[i], i);
        coil__timer_arm(&w, &its[i].timer, (uint64_t)i * 100000);
    }
    coil__wheel_advance(&w, UINT64_C(1) << 40, on_fire, &c);
    CHECK(w.count == 0);
    for (int i = 0; i < 64; i++)
        CHECK(its[i].fired == 1);
    coil__timer_arm(&w, &its[0].timer, (UINT64_C(1) << 40) + 25);
    coil__wheel_advance(&w, (UINT64_C(1) << 40) + 24, on_fire, &c);
    CHECK(its[0].fired == 1);
    coil__wheel_advance(&w, (UINT64_C(1) << 40) + 25, on_fire, &c); /* tick already walked */
    CHECK(its[0].fired == 1);
    coil__wheel_advance(&w, (UINT64_C(1) << 40) + 34, on_fire, &c); /* next tick boundary */
    CHECK(its[0].fired == 2);
}

/* fire() actions */
static void rearm_self(struct ctx *c, struct item *it)
{
    if (it->fired < 5)
        coil__timer_arm(c->w, &it->timer, c->w->now + c->arg);
}

static void rearm_self_past(struct ctx *c, struct item *it)
{
    if (it->fired < 3)
        coil__timer_arm(c->w, &it->timer, 0);
}

static void cancel_other(struct ctx *c, struct item *it)
{
    (void)it;
    coil__timer_cancel(c->w, &c->other->timer);
}

static void move_other(struct ctx *c, struct item *it)
{
    (void)it;
    coil__timer_arm(c->w, &c->other->timer, c->arg);
}

static void test_fire_reentry(void)
{
    struct coil__wheel w;
    struct ctx c = {.w = &w};
    struct item a, b, d;
    item_init(&a, 1);
    item_init(&b, 2);
    item_init(&d, 3);

    /* A periodic timer re-arming itself. */
    coil__wheel_init(&w, 0, 10);
    c.then = rearm_self;
    c.arg = 25;
    coil__timer_arm(&w, &a.timer, 25);
    for (uint64_t now = 0; now <= 1000; now++)
        coil__wheel_advance(&w, now, on_fire, &c);
    CHECK(a.fired == 5 && w.count == 0);

    /* Re-arming into the past from fire() waits for the next tick: no endless loop. */
    item_init(&a, 1);
    coil__wheel_init(&w, 0, 10);
    c.then = rearm_self_past;
    coil__timer_arm(&w, &a.timer, 5);
    coil__wheel_advance(&w, 10, on_fire, &c);
    CHECK(a.fired == 1 && coil__timer_armed(&a.timer));
    coil__wheel_advance(&w, 15, on_fire, &c);
    CHECK(a.fired == 1);
    coil__wheel_advance(&w, 5000, on_fire, &c); /* a jump of many revolutions */
    CHECK(a.fired == 2 && coil__timer_armed(&a.timer));
    coil__wheel_advance(&w, 5010, on_fire, &c);
    CHECK(a.fired == 3 && !coil__timer_armed(&a.timer) && w.count == 0);

    /* Cancelling another due timer of the same slot from fire(): it does not fire. */
    for (int order = 0; order < 2; order++) {
        item_init(&a, 1);
        item_init(&b, 2);
        coil__wheel_init(&w, 0, 10);
        struct item *first = order ? &b : &a, *second = order ? &a : &b;
        coil__timer_arm(&w, &first->timer, 51);
        coil__timer_arm(&w, &second->timer, 52);
        c.then = cancel_other;
        c.other = second;
        coil__wheel_advance(&w, 60, on_fire, &c);
        CHECK(first->fired == 1 && second->fired == 0 && w.count == 0);
        CHECK(!coil__timer_armed(&second->timer));
    }

    /* Moving another due timer of the same slot to later, and one not due to now. */
    item_init(&a, 1);
    item_init(&b, 2);
    item_init(&d, 3);
    coil__wheel_init(&w, 0, 10);
    coil__timer_arm(&w, &a.timer, 51);
    coil__timer_arm(&w, &b.timer, 52);
    coil__timer_arm(&w, &d.timer, 51 + 10 * COIL_WHEEL_SLOTS); /* same slot, not due */
    c.then = move_other;
    c.other = &b;
    c.arg = 500;
    coil__wheel_advance(&w, 60, on_fire, &c);
    CHECK(a.fired == 1 && b.fired == 0 && d.fired == 0 && w.count == 2);
    c.then = NULL;
    coil__wheel_advance(&w, 499, on_fire, &c);
    CHECK(b.fired == 0);
    coil__wheel_advance(&w, 500, on_fire, &c);
    CHECK(b.fired == 1 && d.fired == 0 && w.count == 1);

    /* Cancelling the not-due neighbour that shares the slot. */
    item_init(&a, 1);
    item_init(&d, 3);
    coil__wheel_init(&w, 0, 10);
    coil__timer_arm(&w, &a.timer, 55);
    coil__timer_arm(&w, &d.timer, 55 + 10 * COIL_WHEEL_SLOTS);
    c.then = cancel_other;
    c.other = &d;
    coil__wheel_advance(&w, 60, on_fire, &c);
    CHECK(a.fired == 1 && !coil__timer_armed(&d.timer) && w.count == 0);
    coil__wheel_advance(&w, 100 + 10 * COIL_WHEEL_SLOTS, on_fire, &c);
    CHECK(d.fired == 0);
}

/* ---- random operations against a model ------------------------------------------------ */

enum { NITEMS = 4000 };

static struct item items[NITEMS];
static uint64_t rng_state = 0x9e3779b97f4a7c15u;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* A deadline near now, within the tick, in the past, or several revolutions out. */
static uint64_t random_deadline(const struct coil__wheel *w)
{
    uint64_t span = w->tick_ms * COIL_WHEEL_SLOTS;
    switch (rnd() % 6) {
    case 0:
        return w->now - (w->now ? rnd() % (w->now + 1) : 0);
    case 1:
        return w->now + rnd() % (2 * w->tick_ms);
    case 2:
        return w->now + rnd() % (5 * span);
    default:
        return w->now + rnd() % (span / 4);
    }
}

static void model_arm(struct coil__wheel *w, struct item *it, uint64_t deadline)
{
    coil__timer_arm(w, &it->timer, deadline);
    it->model_armed = true;
    it->due = deadline > w->now ? deadline : w->now;
}

static void random_fire_action(struct ctx *c, struct item *it)
{
    CHECK(it->model_armed);
    it->model_armed = false;
    uint64_t r = rnd() % 8;
    struct item *other = &items[rnd() % NITEMS];
    if (r == 0) {
        model_arm(c->w, it, random_deadline(c->w));
    } else if (r == 1) {
        coil__timer_cancel(c->w, &other->timer);
        other->model_armed = false;
    } else if (r == 2) {
        model_arm(c->w, other, random_deadline(c->w));
    }
}

static void check_model(const struct coil__wheel *w)
{
    uint32_t armed = 0;
    for (int i = 0; i < NITEMS; i++) {
        const struct item *it = &items[i];
        CHECK(coil__timer_armed(&it->timer) == it->model_armed);
        if (!it->model_armed)
            continue;
        armed++;
        CHECK(it->due + w->tick_ms > w->now); /* else it is more than a tick late */
    }
    CHECK(w->count == armed);
}

static void test_random(uint64_t tick_ms, uint64_t start)
{
    struct coil__wheel w;
    struct ctx c = {.w = &w, .then = random_fire_action};
    coil__wheel_init(&w, start, tick_ms);
    for (int i = 0; i < NITEMS; i++) {
        item_init(&items[i], i);
        model_arm(&w, &items[i], random_deadline(&w));
    }
    check_model(&w);
    for (int step = 0; step < 3000; step++) {
        for (int k = 0; k < 20; k++) {
            struct item *it = &items[rnd() % NITEMS];
            if (rnd() % 4 == 0) {
                coil__timer_cancel(&w, &it->timer);
                it->model_armed = false;
            } else {
                model_arm(&w, it, random_deadline(&w));
            }
        }
        uint64_t r = rnd() % 100, dt;
        if (r < 70)
            dt = rnd() % (tick_ms + 1);
        else if (r < 99)
            dt = rnd() % (4 * tick_ms);
        else
            dt = rnd() % (3 * tick_ms * COIL_WHEEL_SLOTS); /* a jump, often a revolution+ */
        coil__wheel_advance(&w, w.now + dt, on_fire, &c);
        check_model(&w);
        uint64_t t = coil__wheel_timeout(&w);
        CHECK(w.count ? t >= 1 && t <= tick_ms : t == UINT64_MAX);
    }
    CHECK(c.fires > 10000); /* the run did exercise the wheel */
    /* Everything left fires within one more revolution plus a tick. */
    c.then = NULL;
    for (int i = 0; i < NITEMS; i++)
        items[i].model_armed = false;
    coil__wheel_advance(&w, w.now + 6 * tick_ms * COIL_WHEEL_SLOTS, on_fire, &c);
    CHECK(w.count == 0);
    for (int i = 0; i < NITEMS; i++)
        CHECK(!coil__timer_armed(&items[i].timer));
}

int main(void)
{
    test_basic();
    test_rearm_cancel();
    test_revolutions();
    test_fire_reentry();
    test_random(1, 0);
    test_random(7, 123456789);
    test_random(10, 1000);
    printf("test_timer: ok\n");
    return 0;
}
