/* SPDX-License-Identifier: MIT */
/*
 * test_pheap: the precise-timer heap. Timers come out in due order (ties in any order), a
 * removed timer never comes out, removing a timer twice or one never armed is harmless, and
 * every timer's pos names its own slot after any sequence of operations: checked against a
 * brute-force model over many random pushes, removals and pops, with many equal due times.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "timer.h"
#include "walloc.h"

#include "check.h"

#define N 512

static struct coil__ptimer timers[N];

static void check_heap(const struct coil__pheap *h)
{
    for (uint32_t i = 0; i < h->n; i++) {
        CHECK(h->v[i]->pos == i + 1);
        if (i > 0)
            CHECK(h->v[(i - 1) / 2]->due_ns <= h->v[i]->due_ns);
    }
}

static void test_order(struct coil_walloc *wa)
{
    struct coil__pheap h = {0};
    memset(timers, 0, sizeof(timers));
    for (int i = 0; i < 100; i++)
        CHECK(coil__pheap_push(&h, wa, &timers[i], (uint64_t)((i * 37) % 100)) == 0);
    check_heap(&h);
    uint64_t last = 0;
    for (int i = 0; i < 100; i++) {
        struct coil__ptimer *t = coil__pheap_min(&h);
        CHECK(t && t->due_ns >= last && t->due_ns == (uint64_t)i);
        last = t->due_ns;
        coil__pheap_remove(&h, t);
        CHECK(t->pos == 0);
        check_heap(&h);
    }
    CHECK(coil__pheap_min(&h) == NULL);
    coil__pheap_remove(&h, &timers[0]); /* not armed: nothing happens */
    CHECK(h.n == 0);
    coil__pheap_fini(&h, wa);
}

static void test_random(struct coil_walloc *wa)
{
    struct coil__pheap h = {0};
    memset(timers, 0, sizeof(timers));
    bool armed[N] = {false};
    uint64_t due[N] = {0};
    srand(7);
    for (int op = 0; op < 200000; op++) {
        int i = rand() % N;
        switch (rand() % 3) {
        case 0: /* arm (if free), often with equal due times */
            if (!armed[i]) {
                due[i] = (uint64_t)(rand() % 64);
                CHECK(coil__pheap_push(&h, wa, &timers[i], due[i]) == 0);
                armed[i] = true;
            }
            break;
        case 1: /* remove any, armed or not */
            coil__pheap_remove(&h, &timers[i]);
            armed[i] = false;
            CHECK(timers[i].pos == 0);
            break;
        default: { /* pop the minimum: no armed timer is due earlier */
            struct coil__ptimer *t = coil__pheap_min(&h);
            if (!t)
                break;
            for (int k = 0; k < N; k++)
                CHECK(!armed[k] || due[k] >= t->due_ns);
            int k = (int)(t - timers);
            CHECK(armed[k] && due[k] == t->due_ns);
            coil__pheap_remove(&h, t);
            armed[k] = false;
        }
        }
        uint32_t count = 0;
        for (int k = 0; k < N; k++)
            count += armed[k];
        CHECK(count == h.n);
        if (op % 97 == 0)
            check_heap(&h);
    }
    coil__pheap_fini(&h, wa);
}

int main(void)
{
    struct coil_walloc wa;
    CHECK(coil__walloc_init(&wa) == 0);
    test_order(&wa);
    test_random(&wa);
    CHECK(wa.nalloc == wa.nfree);
    coil__walloc_fini(&wa);
    return 0;
}
