/* SPDX-License-Identifier: MIT */
/*
 * timer_jitter: how late this machine wakes a thread from a 1 ms sleep, the floor under any
 * "p99 above the delay" of GET /delay/1. Sleeps N times for MS ms, first with
 * clock_nanosleep, then in io_uring_submit_and_wait_timeout on an empty ring (coil's own way
 * of sleeping until its next timer, with the same ring flags), and prints the overshoot
 * (wake-up time - due time) p50/p99/p99.9/max for each.
 *
 *   cc -O2 -o timer_jitter perf/wait.d/timer_jitter.c -luring
 *   taskset -c 0 ./timer_jitter [N=5000] [MS=1]
 */
#define _GNU_SOURCE
#include <liburing.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, uint64_t *v, int n)
{
    qsort(v, (size_t)n, sizeof(*v), cmp);
    printf("%-34s overshoot p50 %6.1f us  p99 %7.1f us  p99.9 %7.1f us  max %7.1f us\n", what,
           v[n / 2] / 1e3, v[(int)(n * 0.99)] / 1e3, v[(int)(n * 0.999)] / 1e3, v[n - 1] / 1e3);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 5000;
    int ms = argc > 2 ? atoi(argv[2]) : 1;
    if (n < 10 || ms < 0)
        return 2;
    uint64_t *v = calloc((size_t)n, sizeof(*v));
    uint64_t d = (uint64_t)ms * 1000000ull;
    for (int i = 0; i < n; i++) {
        struct timespec ts = {0, (long)d};
        uint64_t t = now_ns();
        clock_nanosleep(CLOCK_MONOTONIC, 0, &ts, NULL);
        uint64_t late = now_ns() - t;
        v[i] = late > d ? late - d : 0;
    }
    report("clock_nanosleep", v, n);

    struct io_uring ring;
    struct io_uring_params p = {0};
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN;
    const char *how = "io_uring wait (DEFER_TASKRUN)";
    if (io_uring_queue_init_params(64, &ring, &p) < 0) {
        how = "io_uring wait (no flags)";
        if (io_uring_queue_init(64, &ring, 0) < 0) {
            fprintf(stderr, "timer_jitter: no io_uring\n");
            return 1;
        }
    }
    for (int i = 0; i < n; i++) {
        struct __kernel_timespec ts = {0, (long long)d};
        struct io_uring_cqe *cqe;
        uint64_t t = now_ns();
        io_uring_submit_and_wait_timeout(&ring, &cqe, 1, &ts, NULL);
        uint64_t late = now_ns() - t;
        v[i] = late > d ? late - d : 0;
    }
    report(how, v, n);
    io_uring_queue_exit(&ring);
    return 0;
}
