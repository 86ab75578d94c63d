/* SPDX-License-Identifier: MIT */
/*
 * test_load_hist: coil-load's latency histogram. Includes hist.c to check the bucket layout
 * itself: buckets tile [1 us, 60 s] without gaps or overlaps, each value maps into the bucket
 * whose range holds it, and every bucket is narrower than 1/128 of its lowest value. Then the
 * public contract: a million log-uniform values from 1 us to 60 s give every percentile within
 * 1% (in fact 1/128) of the exact value from a sorted copy; min, max and mean are exact;
 * out-of-range values clamp; merging two histograms equals recording everything into one;
 * an empty histogram answers 0; and the .hgrm text reads back as HdrHistogram's format
 * (header, rows with increasing percentiles on HdrHistogram's ladder 0, 10, .., 50, 55, ..,
 * last row at 1.0 with the total count, footer with the count and max).
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hist.c"

#include "check.h"

#define MANY 1000000
#define MERGE_N 100000 /* small enough that the sum of values stays exact in a double */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* splitmix64: a fixed sequence, so failures reproduce. */
static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Log-uniform over [1 us, 60 s]. */
static uint64_t rng_latency(void)
{
    double r = (double)(rng_next() >> 11) * 0x1p-53;
    double lo = log((double)LOAD_HIST_MIN_NS), hi = log((double)LOAD_HIST_MAX_NS);
    uint64_t v = (uint64_t)exp(lo + r * (hi - lo));
    if (v < LOAD_HIST_MIN_NS) {
        v = LOAD_HIST_MIN_NS;
    }
    return v > LOAD_HIST_MAX_NS ? LOAD_HIST_MAX_NS : v;
}

static struct load_hist *hist_new(void)
{
    struct load_hist *h = malloc(sizeof(*h));
    CHECK(h != NULL);
    load_hist_init(h);
    return h;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* v is within the bucket bucket_index(v), whose highest value is at most v/128 above v. */
static void check_value(uint64_t v)
{
    unsigned i = bucket_index(v);
    CHECK(i < LOAD_HIST_BUCKETS);
    CHECK(bucket_lo(i) <= v && v <= bucket_hi(i));
    CHECK((bucket_hi(i) - v) * LOAD_HIST_SUB < v);
}

static void test_layout(void)
{
    CHECK(bucket_lo(0) == LOAD_HIST_MIN_NS);
    CHECK(bucket_index(LOAD_HIST_MIN_NS) == 0);
    CHECK(bucket_index(LOAD_HIST_MAX_NS) < LOAD_HIST_BUCKETS);
    CHECK(bucket_hi(LOAD_HIST_BUCKETS - 1) >= LOAD_HIST_MAX_NS);
    for (unsigned i = 0; i < LOAD_HIST_BUCKETS; i++) {
        uint64_t lo = bucket_lo(i), hi = bucket_hi(i);
        CHECK(lo <= hi);
        CHECK(bucket_lo(i + 1) == hi + 1); /* no gaps, no overlaps */
        CHECK((hi - lo) * LOAD_HIST_SUB < lo);
        if (hi <= LOAD_HIST_MAX_NS) {
            CHECK(bucket_index(lo) == i && bucket_index(hi) == i);
        }
    }
    /* Every value of the first octaves, then random ones up to the top. */
    unsigned prev = 0;
    for (uint64_t v = LOAD_HIST_MIN_NS; v < (1u << 21); v++) {
        check_value(v);
        CHECK(bucket_index(v) >= prev);
        prev = bucket_index(v);
    }
    for (int n = 0; n < 1000000; n++) {
        check_value(rng_latency());
    }
    check_value(LOAD_HIST_MAX_NS);
}

/* rank = ceil(n * num / den) in integers, so the expectation owes nothing to floating point. */
static void check_percentile(const struct load_hist *h, const uint64_t *sorted, uint64_t n,
                             uint64_t num, uint64_t den)
{
    uint64_t rank = (n * num + den - 1) / den;
    CHECK(rank >= 1 && rank <= n);
    uint64_t exact = sorted[rank - 1];
    uint64_t got = load_hist_percentile(h, 100.0 * (double)num / (double)den);
    CHECK(fabs((double)got - (double)exact) / (double)exact < 0.01);
    CHECK(got >= exact && (got - exact) * LOAD_HIST_SUB < exact);
}

static void test_percentiles(void)
{
    uint64_t *vals = malloc(MANY * sizeof(*vals));
    CHECK(vals != NULL);
    struct load_hist *h = hist_new();
    double sum = 0.0;
    for (size_t i = 0; i < MANY; i++) {
        vals[i] = rng_latency();
        load_hist_record(h, vals[i]);
        sum += (double)vals[i];
    }
    qsort(vals, MANY, sizeof(*vals), cmp_u64);
    CHECK(h->count == MANY);
    CHECK(h->min == vals[0] && h->max == vals[MANY - 1]);
    CHECK(load_hist_mean(h) == sum / MANY);
    CHECK(load_hist_percentile(h, 0) == vals[0]);
    CHECK(load_hist_percentile(h, 100) == vals[MANY - 1]);
    CHECK(load_hist_percentile(h, 150) == vals[MANY - 1]);
    static const uint64_t ps[][2] = {{1, 100},     {10, 100},   {50, 100},     {90, 100},
                                     {99, 100},    {999, 1000}, {9999, 10000}, {1, 1},
                                     {1, 1000000}, {123, 1000}, {5, 1000000}};
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        check_percentile(h, vals, MANY, ps[i][0], ps[i][1]);
    }
    /* A fine sweep: every 0.1% */
    for (uint64_t k = 1; k <= 1000; k++) {
        check_percentile(h, vals, MANY, k, 1000);
    }
    /* Percentiles never decrease. */
    uint64_t prev = 0;
    for (double p = 0.0; p <= 100.0; p += 0.01) {
        uint64_t v = load_hist_percentile(h, p);
        CHECK(v >= prev);
        prev = v;
    }
    free(h);
    free(vals);
}

static void test_clamp(void)
{
    struct load_hist *h = hist_new();
    load_hist_record(h, 0);
    load_hist_record(h, 1);
    load_hist_record(h, LOAD_HIST_MIN_NS - 1);
    CHECK(h->count == 3 && h->min == LOAD_HIST_MIN_NS && h->max == LOAD_HIST_MIN_NS);
    CHECK(h->buckets[0] == 3);
    CHECK(load_hist_percentile(h, 50) == LOAD_HIST_MIN_NS);
    load_hist_record(h, LOAD_HIST_MAX_NS + 1);
    load_hist_record(h, UINT64_MAX);
    CHECK(h->count == 5 && h->max == LOAD_HIST_MAX_NS);
    CHECK(h->buckets[bucket_index(LOAD_HIST_MAX_NS)] == 2);
    CHECK(h->sum == 3.0 * LOAD_HIST_MIN_NS + 2.0 * LOAD_HIST_MAX_NS);
    CHECK(load_hist_percentile(h, 0) == LOAD_HIST_MIN_NS);
    CHECK(load_hist_percentile(h, 60) == LOAD_HIST_MIN_NS + 7); /* bucket 0's top: 1007 ns */
    CHECK(load_hist_percentile(h, 61) == LOAD_HIST_MAX_NS);
    CHECK(load_hist_percentile(h, 100) == LOAD_HIST_MAX_NS);

    /* One value: every percentile is that value exactly (clamped to [min, max]). */
    load_hist_init(h);
    load_hist_record(h, 123456);
    CHECK(load_hist_percentile(h, 0) == 123456 && load_hist_percentile(h, 50) == 123456);
    CHECK(load_hist_percentile(h, 99.99) == 123456 && load_hist_percentile(h, 100) == 123456);
    CHECK(load_hist_mean(h) == 123456.0);
    free(h);
}

static void check_same(const struct load_hist *a, const struct load_hist *b)
{
    CHECK(a->count == b->count);
    CHECK(a->min == b->min && a->max == b->max);
    CHECK(a->sum == b->sum);
    CHECK(memcmp(a->buckets, b->buckets, sizeof(a->buckets)) == 0);
}

static void test_merge(void)
{
    struct load_hist *a = hist_new(), *b = hist_new(), *all = hist_new(), *empty = hist_new();
    for (int i = 0; i < MERGE_N; i++) {
        uint64_t v = rng_latency();
        load_hist_record(rng_next() & 1 ? a : b, v);
        load_hist_record(all, v);
    }
    load_hist_record(a, 5); /* clamps up */
    load_hist_record(all, 5);
    load_hist_record(b, LOAD_HIST_MAX_NS * 2); /* clamps down */
    load_hist_record(all, LOAD_HIST_MAX_NS * 2);
    CHECK(a->count > 0 && b->count > 0);

    /* empty into a, and a into empty, change nothing. */
    struct load_hist *copy = hist_new();
    load_hist_merge(copy, a);
    check_same(copy, a);
    load_hist_merge(copy, empty);
    check_same(copy, a);

    load_hist_merge(a, b);
    check_same(a, all);
    CHECK(load_hist_percentile(a, 50) == load_hist_percentile(all, 50));
    CHECK(load_hist_percentile(a, 99.9) == load_hist_percentile(all, 99.9));

    /* empty + empty stays empty */
    load_hist_merge(copy, a); /* copy is now a + a */
    load_hist_init(copy);
    load_hist_merge(copy, empty);
    CHECK(copy->count == 0 && copy->min == UINT64_MAX && copy->max == 0);
    free(a);
    free(b);
    free(all);
    free(empty);
    free(copy);
}

static void test_empty(void)
{
    struct load_hist *h = hist_new();
    CHECK(h->count == 0 && h->min == UINT64_MAX && h->max == 0);
    CHECK(load_hist_percentile(h, 0) == 0);
    CHECK(load_hist_percentile(h, 50) == 0);
    CHECK(load_hist_percentile(h, 99.9) == 0);
    CHECK(load_hist_percentile(h, 100) == 0);
    CHECK(load_hist_mean(h) == 0.0);
    free(h);
}

struct hgrm_row {
    double value; /* ms */
    double pct;   /* 0..1 */
    unsigned long long total;
    double inv; /* 1/(1-pct) */
    int has_inv;
};

struct hgrm {
    struct hgrm_row *rows;
    size_t nrows;
    double mean, stddev, max;
    unsigned long long total;
    int buckets, sub_buckets;
};

/* Reads .hgrm text back strictly: header, blank line, rows, three footer lines, EOF. */
static void parse_hgrm(FILE *f, struct hgrm *g)
{
    char line[256];
    size_t cap = 4096;
    memset(g, 0, sizeof(*g));
    g->rows = calloc(cap, sizeof(*g->rows));
    CHECK(g->rows != NULL);
    CHECK(fgets(line, sizeof(line), f) != NULL);
    CHECK(strcmp(line, "       Value     Percentile TotalCount 1/(1-Percentile)\n") == 0);
    CHECK(fgets(line, sizeof(line), f) != NULL && strcmp(line, "\n") == 0);
    for (;;) {
        CHECK(fgets(line, sizeof(line), f) != NULL);
        if (line[0] == '#') {
            break;
        }
        CHECK(g->nrows < cap);
        struct hgrm_row *r = &g->rows[g->nrows++];
        int n = sscanf(line, "%lf %lf %llu %lf", &r->value, &r->pct, &r->total, &r->inv);
        CHECK(n == 3 || n == 4);
        r->has_inv = n == 4;
        CHECK(line[strlen(line) - 1] == '\n');
    }
    CHECK(sscanf(line, "#[Mean    = %lf, StdDeviation   = %lf]", &g->mean, &g->stddev) == 2);
    CHECK(fgets(line, sizeof(line), f) != NULL);
    CHECK(sscanf(line, "#[Max     = %lf, Total count    = %llu]", &g->max, &g->total) == 2);
    CHECK(fgets(line, sizeof(line), f) != NULL);
    CHECK(sscanf(line, "#[Buckets = %d, SubBuckets     = %d]", &g->buckets, &g->sub_buckets) == 2);
    CHECK(fgets(line, sizeof(line), f) == NULL);
}

static void write_and_parse(const struct load_hist *h, struct hgrm *g)
{
    FILE *f = tmpfile();
    CHECK(f != NULL);
    CHECK(load_hist_write_hgrm(h, f) == 0);
    rewind(f);
    parse_hgrm(f, g);
    fclose(f);
}

/* The k-th level of HdrHistogram's percentile ladder with 5 ticks per half distance: half
 * distance j (from 100(1 - 2^-j) to 100(1 - 2^-(j+1))) is walked in 5 equal steps. */
static double ladder(size_t k)
{
    size_t j = k / 5, step = k % 5;
    double start = 100.0 * (1.0 - ldexp(1.0, -(int)j));
    return start + (double)step * 100.0 * ldexp(1.0, -(int)j - 1) / 5.0;
}

static void check_rows(const struct load_hist *h, const struct hgrm *g)
{
    CHECK(g->nrows >= 2);
    CHECK(g->rows[0].pct == 0.0);
    for (size_t i = 0; i < g->nrows; i++) {
        const struct hgrm_row *r = &g->rows[i];
        CHECK(r->has_inv == (i + 1 < g->nrows));
        CHECK(r->value >= (double)h->min / 1e6 - 0.0005);
        CHECK(r->value <= (double)h->max / 1e6 + 0.0005);
        if (i > 0) {
            CHECK(r->pct > g->rows[i - 1].pct);
            CHECK(r->value >= g->rows[i - 1].value);
            CHECK(r->total >= g->rows[i - 1].total);
        }
        if (r->has_inv && r->pct < 0.999) {
            CHECK(fabs(r->inv - 1.0 / (1.0 - r->pct)) < 0.01 * r->inv + 0.01);
        }
        /* The row's value is the value at its percentile. */
        double want = (double)load_hist_percentile(h, r->pct * 100.0) / 1e6;
        CHECK(fabs(r->value - want) <= want / LOAD_HIST_SUB + 0.0005);
        /* At least pct of the values are at or below the row's value. */
        CHECK((double)r->total >= r->pct * (double)h->count - 1e-6 * (double)h->count);
    }
    const struct hgrm_row *last = &g->rows[g->nrows - 1];
    CHECK(last->pct == 1.0);
    CHECK(last->total == h->count);
    CHECK(fabs(last->value - (double)h->max / 1e6) <= 0.0005);
    CHECK(g->total == h->count);
    CHECK(fabs(g->max - (double)h->max / 1e6) <= 0.0005);
    CHECK(fabs(g->mean - load_hist_mean(h) / 1e6) <= 0.0005);
    CHECK(g->buckets == LOAD_HIST_OCTAVES && g->sub_buckets == (int)LOAD_HIST_SUB);
}

static void test_hgrm(void)
{
    struct load_hist *h = hist_new();
    struct hgrm g;

    /* Empty: header and footer only. */
    write_and_parse(h, &g);
    CHECK(g.nrows == 0 && g.total == 0 && g.max == 0.0 && g.mean == 0.0 && g.stddev == 0.0);
    free(g.rows);

    /* One value: the 0% row and the 100% row. */
    load_hist_record(h, 2500000);
    write_and_parse(h, &g);
    CHECK(g.nrows == 2);
    check_rows(h, &g);
    CHECK(g.rows[0].value == 2.5 && g.rows[1].value == 2.5 && g.stddev < 0.01);
    free(g.rows);

    /* A million values: every row but the last sits on the ladder, in order. */
    load_hist_init(h);
    for (int i = 0; i < MANY; i++) {
        load_hist_record(h, rng_latency());
    }
    write_and_parse(h, &g);
    check_rows(h, &g);
    CHECK(g.nrows > 60);
    for (size_t i = 0; i + 1 < g.nrows; i++) {
        CHECK(fabs(g.rows[i].pct * 100.0 - ladder(i)) < 1e-9);
    }
    /* Log-uniform over 1 us .. 60 s: the standard deviation is a few seconds. */
    CHECK(g.stddev > 1000.0 && g.stddev < 60000.0);
    free(g.rows);

    /* Two far-apart clusters: rows repeat a value while the ladder climbs through a bucket. */
    load_hist_init(h);
    for (int i = 0; i < 900; i++) {
        load_hist_record(h, 1000000);
    }
    for (int i = 0; i < 100; i++) {
        load_hist_record(h, 2000000000);
    }
    write_and_parse(h, &g);
    check_rows(h, &g);
    CHECK(g.rows[0].value >= 1.0 && g.rows[0].value < 1.0 + 1.0 / LOAD_HIST_SUB);
    CHECK(g.rows[1].value == g.rows[0].value && g.rows[1].total == 900);
    CHECK(g.rows[g.nrows - 1].value == 2000.0 && g.rows[g.nrows - 2].value == 2000.0);
    free(g.rows);
    free(h);
}

int main(void)
{
    test_layout();
    test_percentiles();
    test_clamp();
    test_merge();
    test_empty();
    test_hgrm();
    printf("test_load_hist: ok\n");
    return 0;
}
