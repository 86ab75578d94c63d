/* SPDX-License-Identifier: MIT */
/*
 * hist: a log-linear latency histogram (HdrHistogram-style) in fixed memory. Values are in
 * nanoseconds from 1 us to 60 s; each power of two is split into LOAD_HIST_SUB linear
 * sub-buckets, so a recorded value comes back within 1/LOAD_HIST_SUB (< 1%) of itself.
 * Values below 1 us count as 1 us, above 60 s as 60 s. Each load worker records into its own
 * histogram; the main thread merges them (merging equals recording everything into one).
 */
#ifndef LOAD_HIST_H
#define LOAD_HIST_H

#include <stdint.h>
#include <stdio.h>

#define LOAD_HIST_MIN_NS 1000ull        /* 1 us */
#define LOAD_HIST_MAX_NS 60000000000ull /* 60 s */
#define LOAD_HIST_SUB_BITS 7            /* 128 sub-buckets per octave: error < 0.8% */
#define LOAD_HIST_SUB (1u << LOAD_HIST_SUB_BITS)
#define LOAD_HIST_OCTAVES 26 /* 1 us * 2^26 > 60 s */
#define LOAD_HIST_BUCKETS (LOAD_HIST_OCTAVES * LOAD_HIST_SUB)

struct load_hist {
    uint64_t count;                      /* values recorded */
    uint64_t min;                        /* ns, exact; UINT64_MAX when empty */
    uint64_t max;                        /* ns, exact; 0 when empty */
    double sum;                          /* ns, exact sum for the mean */
    uint64_t buckets[LOAD_HIST_BUCKETS]; /* counts */
};

void load_hist_init(struct load_hist *h);
void load_hist_record(struct load_hist *h, uint64_t ns);
void load_hist_merge(struct load_hist *dst, const struct load_hist *src);
/* The value at percentile p (0..100): the smallest bucket value v such that at least p% of
 * the recorded values are <= v (reported as the bucket's highest value, clamped to [min, max]).
 * 0 when empty. */
uint64_t load_hist_percentile(const struct load_hist *h, double p);
double load_hist_mean(const struct load_hist *h); /* ns; 0 when empty */
/* The full distribution in HdrHistogram's .hgrm text format (Value in milliseconds, then
 * Percentile, TotalCount, 1/(1-Percentile)), with the Mean/StdDeviation/Max/Total footer.
 * 0 or -errno. */
int load_hist_write_hgrm(const struct load_hist *h, FILE *f);

#endif
