/* SPDX-License-Identifier: MIT */
/*
 * hist: the log-linear latency histogram. A value v (ns, clamped to [LOAD_HIST_MIN_NS,
 * LOAD_HIST_MAX_NS]) is first scaled to u = floor(v * LOAD_HIST_SUB / LOAD_HIST_MIN_NS), i.e.
 * to units of 1/LOAD_HIST_SUB microsecond, so that u >= LOAD_HIST_SUB. The octave is the
 * position of u's top bit above bit LOAD_HIST_SUB_BITS (octave k holds [1 us << k, 1 us << k+1))
 * and the sub-bucket is the LOAD_HIST_SUB_BITS bits just below the top bit: index = octave *
 * LOAD_HIST_SUB + sub. A bucket therefore spans 1/LOAD_HIST_SUB of its octave's lower edge, so
 * any value in it is within 1/LOAD_HIST_SUB (relative) of the bucket's highest value, which is
 * what percentiles report. Recording is integer-only: a multiply, a division by a constant
 * (compiled to a multiply) and a count-leading-zeros. The buckets tile the value range without
 * gaps: bucket i covers [lo(i), lo(i + 1) - 1] with lo(i) = ceil(u_lo(i) * MIN / SUB). min, max
 * and sum see the clamped value, so every percentile lies within [min, max].
 */
#include "hist.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <string.h>

_Static_assert(LOAD_HIST_MIN_NS > 0, "the scale divides by LOAD_HIST_MIN_NS");
_Static_assert(LOAD_HIST_MAX_NS < (UINT64_MAX >> (LOAD_HIST_SUB_BITS + 1)),
               "v << LOAD_HIST_SUB_BITS must not overflow");
_Static_assert(LOAD_HIST_MAX_NS *LOAD_HIST_SUB / LOAD_HIST_MIN_NS <
                   ((uint64_t)LOAD_HIST_SUB << LOAD_HIST_OCTAVES),
               "LOAD_HIST_OCTAVES must cover LOAD_HIST_MAX_NS");

/* Steps per half of the remaining distance to 100% in the .hgrm output, as HdrHistogram's
 * outputPercentileDistribution uses by default. */
#define HGRM_TICKS_PER_HALF 5
#define NS_PER_MS 1e6

static uint64_t clamp_value(uint64_t ns)
{
    if (ns < LOAD_HIST_MIN_NS) {
        return LOAD_HIST_MIN_NS;
    }
    if (ns > LOAD_HIST_MAX_NS) {
        return LOAD_HIST_MAX_NS;
    }
    return ns;
}

/* v must already be clamped. */
static unsigned bucket_index(uint64_t v)
{
    uint64_t u = (v << LOAD_HIST_SUB_BITS) / LOAD_HIST_MIN_NS;
    unsigned octave = 63u - (unsigned)__builtin_clzll(u) - LOAD_HIST_SUB_BITS;
    unsigned sub = (unsigned)(u >> octave) & (LOAD_HIST_SUB - 1);
    return octave * LOAD_HIST_SUB + sub;
}

/* The lowest value (ns) that maps to bucket i; i may be LOAD_HIST_BUCKETS (one past the end). */
static uint64_t bucket_lo(unsigned i)
{
    unsigned octave = i / LOAD_HIST_SUB;
    unsigned sub = i % LOAD_HIST_SUB;
    uint64_t u = (uint64_t)(LOAD_HIST_SUB + sub) << octave;
    return (u * LOAD_HIST_MIN_NS + LOAD_HIST_SUB - 1) / LOAD_HIST_SUB;
}

/* The highest value (ns) that maps to bucket i. */
static uint64_t bucket_hi(unsigned i)
{
    return bucket_lo(i + 1) - 1;
}

/* What a bucket reports: its highest value, but never outside what was actually recorded. */
static uint64_t bucket_value(const struct load_hist *h, unsigned i)
{
    uint64_t v = bucket_hi(i);
    if (v > h->max) {
        v = h->max;
    }
    if (v < h->min) {
        v = h->min;
    }
    return v;
}

void load_hist_init(struct load_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

void load_hist_record(struct load_hist *h, uint64_t ns)
{
    uint64_t v = clamp_value(ns);
    h->buckets[bucket_index(v)]++;
    h->count++;
    h->sum += (double)v;
    if (v < h->min) {
        h->min = v;
    }
    if (v > h->max) {
        h->max = v;
    }
}

void load_hist_merge(struct load_hist *dst, const struct load_hist *src)
{
    assert(dst != src);
    for (unsigned i = 0; i < LOAD_HIST_BUCKETS; i++) {
        dst->buckets[i] += src->buckets[i];
    }
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min) {
        dst->min = src->min;
    }
    if (src->max > dst->max) {
        dst->max = src->max;
    }
}

/* The 1-based rank of the value at percentile p (0 < p < 100): ceil(p% of count), at least 1.
 * The product is nudged down by a relative 1e-12 so that, say, 99.9% of 1e6 is 999000 and not
 * 999001 because 99.9 has no exact binary form. */
static uint64_t rank_at(double p, uint64_t count)
{
    double want = p / 100.0 * (double)count;
    double r = ceil(want - want * 1e-12);
    if (r < 1.0) {
        return 1;
    }
    if (r >= (double)count) {
        return count;
    }
    return (uint64_t)r;
}

uint64_t load_hist_percentile(const struct load_hist *h, double p)
{
    if (h->count == 0) {
        return 0;
    }
    if (!(p > 0.0)) {
        return h->min; /* p <= 0 or NaN: the smallest value */
    }
    if (p >= 100.0) {
        return h->max;
    }
    uint64_t rank = rank_at(p, h->count);
    uint64_t seen = 0;
    for (unsigned i = 0; i < LOAD_HIST_BUCKETS; i++) {
        seen += h->buckets[i];
        if (seen >= rank) {
            return bucket_value(h, i);
        }
    }
    assert(!"bucket counts add up to less than count");
    return h->max;
}

double load_hist_mean(const struct load_hist *h)
{
    if (h->count == 0) {
        return 0.0;
    }
    return h->sum / (double)h->count;
}

/* Standard deviation around the exact mean, taking each value at its bucket's midpoint. */
static double stddev(const struct load_hist *h)
{
    if (h->count == 0) {
        return 0.0;
    }
    double mean = load_hist_mean(h);
    double acc = 0.0;
    for (unsigned i = 0; i < LOAD_HIST_BUCKETS; i++) {
        if (h->buckets[i] == 0) {
            continue;
        }
        double mid = ((double)bucket_lo(i) + (double)bucket_hi(i)) / 2.0;
        acc += (mid - mean) * (mid - mean) * (double)h->buckets[i];
    }
    return sqrt(acc / (double)h->count);
}

/* The percentile level after `level` in HdrHistogram's percentile iteration: each half of the
 * remaining distance to 100% is walked in HGRM_TICKS_PER_HALF equal steps (0, 10, .., 50, 55,
 * .., 75, 77.5, ..). */
static double next_level(double level)
{
    double halvings = floor(log(100.0 / (100.0 - level)) / log(2.0));
    double ticks = HGRM_TICKS_PER_HALF * pow(2.0, halvings + 1.0);
    return level + 100.0 / ticks;
}

static void write_row(FILE *f, uint64_t value, double level, uint64_t total)
{
    double p = level / 100.0;
    fprintf(f, "%12.3f %2.12f %10llu %14.2f\n", (double)value / NS_PER_MS, p,
            (unsigned long long)total, 1.0 / (1.0 - p));
}

/* The rows: walk the non-empty buckets; while the cumulative percentile at the current bucket
 * reaches the next level, print a row for that level. Once the last bucket has been printed,
 * one final row at 100% (without the 1/(1-p) column, which would be infinite). */
static void write_rows(const struct load_hist *h, FILE *f)
{
    double level = 0.0;
    uint64_t total = 0;
    for (unsigned i = 0; i < LOAD_HIST_BUCKETS; i++) {
        if (h->buckets[i] == 0) {
            continue;
        }
        total += h->buckets[i];
        double reached = 100.0 * (double)total / (double)h->count;
        uint64_t value = bucket_value(h, i);
        while (reached >= level) {
            write_row(f, value, level, total);
            if (total == h->count) {
                fprintf(f, "%12.3f %2.12f %10llu\n", (double)value / NS_PER_MS, 1.0,
                        (unsigned long long)total);
                return;
            }
            double next = next_level(level);
            if (!(next > level)) {
                break; /* the step vanished below double precision: move on */
            }
            level = next;
        }
    }
    assert(!"bucket counts add up to less than count");
}

int load_hist_write_hgrm(const struct load_hist *h, FILE *f)
{
    fprintf(f, "%12s %14s %10s %14s\n\n", "Value", "Percentile", "TotalCount", "1/(1-Percentile)");
    if (h->count > 0) {
        write_rows(h, f);
    }
    fprintf(f, "#[Mean    = %12.3f, StdDeviation   = %12.3f]\n", load_hist_mean(h) / NS_PER_MS,
            stddev(h) / NS_PER_MS);
    fprintf(f, "#[Max     = %12.3f, Total count    = %12llu]\n", (double)h->max / NS_PER_MS,
            (unsigned long long)h->count);
    fprintf(f, "#[Buckets = %12d, SubBuckets     = %12d]\n", (int)LOAD_HIST_OCTAVES,
            (int)LOAD_HIST_SUB);
    if (fflush(f) != 0 || ferror(f)) {
        return -EIO;
    }
    return 0;
}
