/* SPDX-License-Identifier: MIT */
/*
 * coil-micro: microbenchmarks of the request parser, the router, the JSON writer and the
 * request arena, one group per micro_*.c file. This file holds main (options) and the harness
 * declared in bench.h: calibration, samples, statistics and the output table. The binary does
 * not pin itself: perf/micro/run builds it and runs it under taskset.
 */
#include "bench.h"

#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if __has_include(<valgrind/callgrind.h>)
#include <valgrind/callgrind.h>
#define HAVE_CALLGRIND 1
#else
#define HAVE_CALLGRIND 0
#endif

#define MAX_SAMPLES 1000
#define MIN_CALIBRATION_NS 2e6 /* a batch this long times the operation well enough to scale */

static struct {
    unsigned samples;       /* timed samples per benchmark */
    double sample_ns;       /* target duration of one sample */
    const char *filter;     /* comma-separated substrings of names; NULL: all */
    bool list;              /* print the selected names instead of running */
    uint64_t callgrind_ops; /* > 0: callgrind dumps instead of timings */
} opt = {.samples = 11, .sample_ns = 30e6};

static volatile uint64_t sink; /* every benchmark's result ends here */
static unsigned rows;          /* rows printed, for the blank line between groups */

bool bench_selected(const char *name)
{
    if (!opt.filter || !*opt.filter)
        return true;
    const char *f = opt.filter;
    while (*f) {
        size_t n = strcspn(f, ",");
        if (n > 0) {
            char sub[128];
            if (n >= sizeof(sub))
                n = sizeof(sub) - 1;
            memcpy(sub, f, n);
            sub[n] = '\0';
            if (strstr(name, sub))
                return true;
        }
        f += n;
        if (*f == ',')
            f++;
    }
    return false;
}

bool bench_timing(void)
{
    return !opt.list && opt.callgrind_ops == 0;
}

static double now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static double time_batch(const struct bench *b, uint64_t iters)
{
    double t0 = now_ns();
    sink += b->fn(b->arg, iters);
    return now_ns() - t0;
}

/* Iterations for one sample of about opt.sample_ns, grown from 1 until a batch is measurable. */
static uint64_t calibrate(const struct bench *b)
{
    uint64_t iters = 1;
    for (;;) {
        double ns = time_batch(b, iters);
        if (ns >= MIN_CALIBRATION_NS) {
            double scaled = (double)iters * opt.sample_ns / ns;
            return scaled < 1 ? 1 : (uint64_t)scaled;
        }
        iters *= ns < MIN_CALIBRATION_NS / 20 ? 10 : 2;
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* The q-quantile of sorted v[0..n), interpolated between neighbours. */
static double quantile(const double *v, unsigned n, double q)
{
    double pos = q * (n - 1);
    unsigned lo = (unsigned)pos;
    if (lo + 1 >= n)
        return v[n - 1];
    return v[lo] + (pos - lo) * (v[lo + 1] - v[lo]);
}

void bench_print_row(const char *name, const char *unit, double median, double min, double spread,
                     double bytes_per_op)
{
    char per[16], spr[16];
    snprintf(per, sizeof(per), "ns/%s", unit);
    if (spread >= 0)
        snprintf(spr, sizeof(spr), "%5.1f%%", spread * 100);
    else
        snprintf(spr, sizeof(spr), "%6s", "-");
    printf("%-28s %9.1f %-10s (min %9.1f, spread %s)", name, median, per, min, spr);
    if (bytes_per_op > 0)
        printf("  %6.2f GB/s  %6.3f ns/B", bytes_per_op / median, median / bytes_per_op);
    printf("\n");
    fflush(stdout);
    rows++;
}

#if HAVE_CALLGRIND
#define CALLGRIND_BUDGET_NS 1e8 /* valgrind time for the first of the two measured runs */

/*
 * Two dumps per benchmark, n and then 2n iterations, each between a zero and a dump named after
 * the benchmark; perf/micro/run divides the difference by n's operations, so the call and loop
 * overhead cancels and the figure does not depend on n. n is whatever fits the time budget
 * under valgrind, at most --callgrind-ops operations. One call first, so that lazy binding and
 * first-touch page faults are not counted.
 */
static void run_callgrind(const struct bench *b)
{
    sink += b->fn(b->arg, 1);
    double t1 = time_batch(b, 1);
    uint64_t cap = (opt.callgrind_ops + b->ops_per_iter - 1) / b->ops_per_iter;
    uint64_t n = t1 > 0 ? (uint64_t)(CALLGRIND_BUDGET_NS / t1) : cap;
    n = n < 1 ? 1 : n > cap ? cap : n;
    for (uint64_t k = 1; k <= 2; k++) {
        char desc[256];
        snprintf(desc, sizeof(desc), "coil-micro name=%s run=%llu ops=%llu unit=%s bytes=%.1f",
                 b->name, (unsigned long long)k, (unsigned long long)(n * b->ops_per_iter), b->unit,
                 b->bytes_per_op);
        CALLGRIND_ZERO_STATS;
        sink += b->fn(b->arg, k * n);
        CALLGRIND_DUMP_STATS_AT(desc);
    }
}
#endif

struct bench_result bench_run(const struct bench *b)
{
    struct bench_result r = {.ran = false};
    if (!bench_selected(b->name))
        return r;
    if (opt.list) {
        printf("%s\n", b->name);
        return r;
    }
    if (opt.callgrind_ops) {
#if HAVE_CALLGRIND
        run_callgrind(b);
#endif
        return r;
    }
    static double ns[MAX_SAMPLES];
    uint64_t iters = calibrate(b);
    double ops = (double)iters * b->ops_per_iter;
    time_batch(b, iters); /* warm-up: caches, branch predictors, CPU frequency */
    for (unsigned i = 0; i < opt.samples; i++)
        ns[i] = time_batch(b, iters) / ops;
    qsort(ns, opt.samples, sizeof(ns[0]), cmp_double);
    r.ran = true;
    r.median = quantile(ns, opt.samples, 0.5);
    r.min = ns[0];
    r.spread = (quantile(ns, opt.samples, 0.75) - quantile(ns, opt.samples, 0.25)) / r.median;
    bench_print_row(b->name, b->unit, r.median, r.min, r.spread, b->bytes_per_op);
    return r;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: coil-micro [--samples N] [--sample-ms MS] [--filter A,B] [--list]\n"
               "                  [--callgrind-ops N]\n"
               "  --samples N        timed samples per benchmark (default 11)\n"
               "  --sample-ms MS     target length of one sample (default 30)\n"
               "  --filter A,B       only benchmarks whose name contains A or B\n"
               "  --list             print the benchmark names and exit\n"
               "  --callgrind-ops N  under valgrind --tool=callgrind: dump the cost of up to N\n"
               "                     and 2N operations per benchmark instead of timing (run\n"
               "                     --callgrind turns the dumps into Ir per operation)\n"
               "Run it through perf/micro/run, which builds it and pins it to a CPU.\n");
}

static unsigned long long parse_num(const char *flag, const char *s, unsigned long long lo,
                                    unsigned long long hi)
{
    char *end;
    unsigned long long v = s ? strtoull(s, &end, 10) : 0;
    if (!s || *end || end == s || v < lo || v > hi) {
        fprintf(stderr, "coil-micro: %s needs a number from %llu to %llu\n", flag, lo, hi);
        exit(2);
    }
    return v;
}

static void parse_args(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--samples")) {
            opt.samples = (unsigned)parse_num(a, v, 1, MAX_SAMPLES);
            i++;
        } else if (!strcmp(a, "--sample-ms")) {
            opt.sample_ns = 1e6 * (double)parse_num(a, v, 1, 10000);
            i++;
        } else if (!strcmp(a, "--filter")) {
            if (!v) {
                usage(stderr);
                exit(2);
            }
            opt.filter = v;
            i++;
        } else if (!strcmp(a, "--list")) {
            opt.list = true;
        } else if (!strcmp(a, "--callgrind-ops")) {
            opt.callgrind_ops = parse_num(a, v, 1, 100000000);
            i++;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            exit(0);
        } else {
            fprintf(stderr, "coil-micro: unknown argument '%s'\n", a);
            usage(stderr);
            exit(2);
        }
    }
#if HAVE_CALLGRIND
    if (opt.callgrind_ops && !RUNNING_ON_VALGRIND) {
        fprintf(stderr, "coil-micro: --callgrind-ops only means something under valgrind "
                        "--tool=callgrind (perf/micro/run --callgrind)\n");
        exit(2);
    }
#else
    if (opt.callgrind_ops) {
        fprintf(stderr, "coil-micro: built without valgrind/callgrind.h (apt-get install "
                        "valgrind)\n");
        exit(2);
    }
#endif
}

int main(int argc, char **argv)
{
    parse_args(argc, argv);
    if (bench_timing())
        printf("coil-micro: cpu %d, %u samples of ~%.0f ms per benchmark; median ns per "
               "operation (min, spread = IQR/median)\n\n",
               sched_getcpu(), opt.samples, opt.sample_ns / 1e6);
    void (*const groups[])(void) = {micro_parse, micro_router, micro_json, micro_arena};
    for (size_t i = 0; i < sizeof(groups) / sizeof(groups[0]); i++) {
        unsigned before = rows;
        groups[i]();
        if (rows != before)
            printf("\n");
    }
    if (bench_timing() && rows == 0) {
        fprintf(stderr, "coil-micro: no benchmark matches --filter %s (see --list)\n", opt.filter);
        return 1;
    }
    return 0;
}
