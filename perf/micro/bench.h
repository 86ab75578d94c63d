/* SPDX-License-Identifier: MIT */
/*
 * bench: the timing harness of coil-micro. A benchmark is a function that performs its
 * operation `iters` times and returns a value computed from the results; the harness times whole
 * batches with CLOCK_MONOTONIC (never single operations: the clock costs more than a route
 * lookup), calibrates the batch so that one sample lasts about --sample-ms, throws one warm-up
 * sample away, then takes --samples samples. It reports the median (the figure to quote), the
 * minimum (what the code does on a quiet machine) and the spread, (p75 - p25) / median, which
 * says how far to trust the median. Returned values go to a volatile sink, so the compiler cannot
 * drop the work. Every group validates its inputs before timing anything (BENCH_REQUIRE exits),
 * because a benchmark that silently measures an error path is worse than none.
 * Under valgrind, --callgrind-ops N replaces timing: each benchmark runs for n and then 2n
 * iterations (up to N operations), each between a callgrind zero and dump, and perf/micro/run
 * turns the difference into instructions per operation, a figure that does not move with the
 * machine's load.
 * Single-threaded; everything here lives for the whole run.
 */
#ifndef COIL_MICRO_BENCH_H
#define COIL_MICRO_BENCH_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

/* Performs the operation iters times (times ops_per_iter); returns anything derived from it. */
typedef uint64_t (*bench_fn)(void *arg, uint64_t iters);

struct bench {
    const char *name;      /* "group/case"; what --filter matches */
    const char *unit;      /* what one operation is: printed as ns/<unit> */
    bench_fn fn;           /* the timed loop */
    void *arg;             /* fn's fixture, set up and validated beforehand */
    uint32_t ops_per_iter; /* operations in one iteration of fn (16 for a pipelined buffer) */
    double bytes_per_op;   /* bytes processed per operation, for GB/s and ns/B; 0: none */
};

struct bench_result {
    bool ran;      /* false: filtered out, or a callgrind run (no timings) */
    double median; /* ns per operation */
    double min;    /* ns per operation, the fastest sample */
    double spread; /* (p75 - p25) / median, as a fraction */
};

/* Runs b unless --filter excludes it and prints its row. */
struct bench_result bench_run(const struct bench *b);
/* Whether --filter selects name. */
bool bench_selected(const char *name);
/* Whether timings are being taken (not --list, not --callgrind-ops): derived rows need them. */
bool bench_timing(void);
/* Prints a row computed from others (spread < 0: none), aligned with bench_run's. */
void bench_print_row(const char *name, const char *unit, double median, double min, double spread,
                     double bytes_per_op);

/* The groups, one file each; each validates its fixtures, then runs its benchmarks. */
void micro_parse(void);
void micro_router(void);
void micro_json(void);
void micro_arena(void);

/* The compiler must assume x changed: stops it hoisting work on x out of a timed loop. */
#define BENCH_HIDE(x) __asm__ volatile("" : "+r"(x))
/* The compiler must assume all memory was read and written. */
#define BENCH_CLOBBER() __asm__ volatile("" ::: "memory")

/* A fixture that is not what the benchmark claims to measure stops the run. */
#define BENCH_REQUIRE(cond, ...)                                                                   \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "coil-micro: %s:%d: validation failed: %s: ", __FILE__, __LINE__,      \
                    #cond);                                                                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                                   \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#endif
