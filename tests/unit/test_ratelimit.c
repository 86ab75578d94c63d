/* SPDX-License-Identifier: MIT */
/*
 * test_ratelimit: the rate limiter's pure parts (mw_ratelimit.h). The bucket held as one instant
 * is checked against a separately written bucket of nanosecond credits over random arrivals
 * (same decisions, same headers) and against the limit itself: in no window of length T does it
 * allow more than burst + T / interval. The option syntax, SipHash against the paper's test
 * vector, digests, and the key table: every entry findable from its home without crossing a
 * hole after random gets, expiries and sweeps, growth, and max_keys (refused while everything is
 * live, room again once entries expire).
 */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mw_ratelimit.h"

#include "check.h"

#define NS 1000000000ull

static uint64_t rnd_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* ---- parameters and syntax ---------------------------------------------------------------- */

static void test_params(void)
{
    struct coil__rl_params p;
    CHECK(coil__rl_params_init(&p, 50, 0) == 0);
    CHECK(p.interval_ns == 20000000 && p.burst == 50 && p.burst_ns == NS);
    CHECK(coil__rl_params_init(&p, 0.5, 0) == 0);
    CHECK(p.interval_ns == 2 * NS && p.burst == 1);
    CHECK(coil__rl_params_init(&p, 2.5, 0) == 0 && p.burst == 3); /* rate rounded up */
    CHECK(coil__rl_params_init(&p, 3, 7) == 0);
    CHECK(p.interval_ns == 333333334 && p.burst == 7); /* rounded up: never faster than rate */
    CHECK(coil__rl_params_init(&p, 0.001, 5) == 0);
    CHECK(p.interval_ns == 1000 * NS && p.burst_ns == 5000 * NS);
    CHECK(coil__rl_params_init(&p, 1e9, 0) == 0 && p.interval_ns == 1);
    CHECK(coil__rl_params_init(&p, 0, 1) == -EINVAL);
    CHECK(coil__rl_params_init(&p, -1, 1) == -EINVAL);
    CHECK(coil__rl_params_init(&p, NAN, 1) == -EINVAL);
    CHECK(coil__rl_params_init(&p, 2e9, 1) == -EINVAL);
    CHECK(coil__rl_params_init(&p, 1e-12, 1) == -EINVAL);       /* one token in 31 years: no */
    CHECK(coil__rl_params_init(&p, 0.001, 5000000) == -EINVAL); /* fills in 158 years */
}

static int parses(const char *s, double rate, uint32_t burst)
{
    double r = -1;
    uint32_t b = 99;
    return coil__rl_parse_rate(s, &r, &b) == 0 && fabs(r - rate) < 1e-12 && b == burst;
}

static int refused(const char *s)
{
    double r = -1;
    uint32_t b = 99;
    return coil__rl_parse_rate(s, &r, &b) == -EINVAL && r == -1 && b == 99;
}

static void test_parse(void)
{
    CHECK(parses("10", 10, 0));
    CHECK(parses("0.5:3", 0.5, 3));
    CHECK(parses("0.001:5", 0.001, 5));
    CHECK(parses("50:1", 50, 1));
    CHECK(parses("007.250", 7.25, 0));
    CHECK(parses("1:4294967295", 1, 4294967295u));
    const char *bad[] = {"",
                         "abc",
                         "1.",
                         ".5",
                         "1:0",
                         "1:",
                         "1:x",
                         "-1",
                         "0",
                         "0.0",
                         "1e3",
                         "1:4294967296",
                         " 1",
                         "1 ",
                         "1:2:",
                         "1,5",
                         "+1",
                         "0x10",
                         "1234567890123456",
                         "1:-2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (!refused(bad[i]))
            fprintf(stderr, "accepted '%s'\n", bad[i]);
        CHECK(refused(bad[i]));
    }
}

/* ---- the bucket ----------------------------------------------------------------------------- */

static void test_take_burst_then_deny(void)
{
    struct coil__rl_params p;
    CHECK(coil__rl_params_init(&p, 0.001, 5) == 0);
    uint64_t full_at = 0, now = 7 * NS;
    struct coil__rl_verdict v;
    for (uint32_t i = 0; i < 5; i++) {
        coil__rl_take(&p, &full_at, now, &v);
        CHECK(v.outcome == COIL_RL_ALLOW);
        CHECK(v.remaining == 4 - i);
        CHECK(v.reset_s == 1000 * (i + 1));
        CHECK(v.retry_s == 0);
    }
    uint64_t held = full_at;
    coil__rl_take(&p, &full_at, now, &v);
    CHECK(v.outcome == COIL_RL_DENY && v.remaining == 0 && v.reset_s == 5000);
    CHECK(v.retry_s == 1000);
    CHECK(full_at == held); /* a refusal costs nothing */
    /* Half a second before the next token: still refused, one second to wait (rounded up). */
    coil__rl_take(&p, &full_at, now + 1000 * NS - NS / 2, &v);
    CHECK(v.outcome == COIL_RL_DENY && v.retry_s == 1);
    coil__rl_take(&p, &full_at, now + 1000 * NS, &v);
    CHECK(v.outcome == COIL_RL_ALLOW && v.remaining == 0);
}

static void test_take_refill(void)
{
    struct coil__rl_params p;
    CHECK(coil__rl_params_init(&p, 50, 1) == 0);
    uint64_t full_at = 0, t = 3 * NS;
    struct coil__rl_verdict v;
    coil__rl_take(&p, &full_at, t, &v);
    CHECK(v.outcome == COIL_RL_ALLOW && v.remaining == 0 && v.reset_s == 1);
    coil__rl_take(&p, &full_at, t + 10000000, &v);
    CHECK(v.outcome == COIL_RL_DENY && v.retry_s == 1); /* 10 ms to wait: at least 1 s said */
    coil__rl_take(&p, &full_at, t + 20000000, &v);
    CHECK(v.outcome == COIL_RL_ALLOW);
    /* Long idle: full again, never more than burst. */
    coil__rl_take(&p, &full_at, t + 3600 * NS, &v);
    CHECK(v.outcome == COIL_RL_ALLOW && v.remaining == 0);
    coil__rl_take(&p, &full_at, t + 3600 * NS, &v);
    CHECK(v.outcome == COIL_RL_DENY);
}

/* A bucket written the other way round: credit in nanoseconds, filled by elapsed time up to
 * burst_ns, one interval spent per request. */
struct credit_bucket {
    uint64_t credit, last;
};

static int credit_take(const struct coil__rl_params *p, struct credit_bucket *b, uint64_t now,
                       uint32_t *remaining)
{
    b->credit += now - b->last;
    if (b->credit > p->burst_ns)
        b->credit = p->burst_ns;
    b->last = now;
    int ok = b->credit >= p->interval_ns;
    if (ok)
        b->credit -= p->interval_ns;
    *remaining = (uint32_t)(b->credit / p->interval_ns);
    return ok;
}

static void check_against_credit(double rate, uint32_t burst, uint64_t max_gap)
{
    struct coil__rl_params p;
    CHECK(coil__rl_params_init(&p, rate, burst) == 0);
    enum { N = 3000 };
    static uint64_t at[N];
    static int ok[N];
    uint64_t now = 5 * NS, full_at = 0;
    struct credit_bucket ref = {p.burst_ns, now};
    for (int i = 0; i < N; i++) {
        now += rnd() % (max_gap + 1);
        struct coil__rl_verdict v;
        uint32_t rem;
        coil__rl_take(&p, &full_at, now, &v);
        int want = credit_take(&p, &ref, now, &rem);
        CHECK((v.outcome == COIL_RL_ALLOW) == want);
        CHECK(v.remaining == rem);
        uint64_t owed = p.burst_ns - ref.credit; /* time until full, as the reference sees it */
        CHECK(v.reset_s == owed / NS + (owed % NS != 0));
        if (!want) {
            uint64_t wait = p.interval_ns - ref.credit;
            uint64_t s = wait / NS + (wait % NS != 0);
            CHECK(v.retry_s == (s ? s : 1));
        }
        at[i] = now;
        ok[i] = want;
    }
    /* The limit itself: in every window [at[i], at[j]], at most burst + span / interval. */
    for (int i = 0; i < N; i++) {
        uint64_t allowed = 0;
        for (int j = i; j < N; j++) {
            allowed += (uint64_t)ok[j];
            CHECK(allowed <= p.burst + (at[j] - at[i]) / p.interval_ns);
        }
    }
}

static void test_take_random(void)
{
    check_against_credit(50, 1, 40000000);   /* gaps up to 2 intervals */
    check_against_credit(10, 20, 300000000); /* bursts, then waits */
    check_against_credit(0.5, 3, 5 * NS);
    check_against_credit(3, 7, 500000000); /* an interval that does not divide a second */
    check_against_credit(1000, 1000, 2000000);
}

/* ---- digests ------------------------------------------------------------------------------- */

static void test_siphash(void)
{
    /* SipHash-2-4, the paper's appendix: key 00..0f, message 00..0e. */
    const uint64_t k[2] = {0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull};
    unsigned char msg[64];
    for (int i = 0; i < 64; i++)
        msg[i] = (unsigned char)i;
    CHECK(coil__siphash(k, msg, 15) == 0xa129ca6149be45e5ull);
    CHECK(coil__siphash(k, msg, 0) == 0x726fdb47dd0e0e31ull); /* vectors.h, first entry */
    /* Every length differs from its neighbours (the length is hashed), and the key matters. */
    const uint64_t k2[2] = {k[0] ^ 1, k[1]};
    for (size_t n = 0; n < 64; n++) {
        if (n)
            CHECK(coil__siphash(k, msg, n) != coil__siphash(k, msg, n - 1));
        CHECK(coil__siphash(k, msg, n) != coil__siphash(k2, msg, n));
    }
}

static void test_digest(void)
{
    const uint64_t seed[4] = {1, 2, 3, 4};
    struct coil__rl_key a = coil__rl_digest(seed, 'h', "alice", 5);
    struct coil__rl_key a2 = coil__rl_digest(seed, 'h', "alice", 5);
    struct coil__rl_key ak = coil__rl_digest(seed, 'k', "alice", 5);
    struct coil__rl_key b = coil__rl_digest(seed, 'h', "bob", 3);
    CHECK(a.a == a2.a && a.b == a2.b);
    CHECK(a.a != ak.a && a.b != ak.b); /* a header value never meets an API key */
    CHECK(a.a != b.a && a.b != b.b);
    CHECK(a.a != a.b); /* the two halves are independent */
    const uint64_t other[4] = {1, 2, 3, 5};
    struct coil__rl_key c = coil__rl_digest(other, 'h', "alice", 5);
    CHECK(c.a == a.a && c.b != a.b);
    struct coil__rl_key e = coil__rl_digest(seed, 'a', NULL, 0);
    CHECK(e.a || e.b);
}

/* ---- the table ------------------------------------------------------------------------------ */

/* Every entry can be found: no empty slot between its home and where it is. */
static void check_table(const struct coil__rl_table *t)
{
    uint32_t live = 0;
    for (uint32_t i = 0; i <= t->mask; i++) {
        const struct coil__rl_entry *e = &t->slots[i];
        if (!e->full_at)
            continue;
        live++;
        for (uint32_t j = (uint32_t)e->a & t->mask; j != i; j = (j + 1) & t->mask)
            CHECK(t->slots[j].full_at != 0);
    }
    CHECK(live == t->count);
    CHECK(t->count <= t->max_keys);
    CHECK(t->count < t->mask + 1);
}

static struct coil__rl_key key_n(uint64_t n)
{
    const uint64_t seed[4] = {11, 22, 33, 44};
    return coil__rl_digest(seed, 'h', &n, sizeof(n));
}

/* Keys whose slots collide on purpose: the same low bits, so they share a probe run. */
static struct coil__rl_key key_clustered(uint64_t n)
{
    return (struct coil__rl_key){(n << 20) | 5, n + 1};
}

struct ref {
    struct coil__rl_key k;
    uint64_t full_at; /* what the table should hold; expired means gone */
};

static void test_table_random(struct coil__rl_key (*make)(uint64_t), uint32_t nkeys,
                              uint32_t max_keys)
{
    struct coil__rl_table t;
    CHECK(coil__rl_table_init(&t, max_keys) == 0);
    struct ref *ref = calloc(nkeys, sizeof(*ref));
    CHECK(ref);
    for (uint32_t i = 0; i < nkeys; i++)
        ref[i].k = make(i);
    uint64_t now = NS;
    for (int step = 0; step < 200000; step++) {
        now += rnd() % 1000;
        uint32_t i = (uint32_t)(rnd() % nkeys);
        if (rnd() % 97 == 0) {
            coil__rl_table_sweep(&t, now, (uint32_t)(rnd() % 300));
        } else {
            struct coil__rl_entry *e = coil__rl_table_get(&t, ref[i].k, now);
            if (!e) {
                CHECK(ref[i].full_at <= now); /* a held key is always found */
                CHECK(t.count >= max_keys);
            } else {
                CHECK(e->a == ref[i].k.a && e->b == ref[i].k.b);
                /* Live: what it was set to. Expired or new: a full bucket (now or earlier). */
                CHECK(ref[i].full_at > now ? e->full_at == ref[i].full_at : e->full_at <= now);
                e->full_at = ref[i].full_at = now + 1 + rnd() % 20000;
            }
        }
        if (step % 1000 == 0)
            check_table(&t);
    }
    check_table(&t);
    coil__rl_table_fini(&t);
    free(ref);
}

/* Fills t to max_keys with keys from first on, each live until until. */
static void fill(struct coil__rl_table *t, uint64_t first, uint64_t now, uint64_t until)
{
    for (uint64_t i = first; t->count < t->max_keys; i++) {
        struct coil__rl_entry *e = coil__rl_table_get(t, key_n(i), now);
        CHECK(e && e->full_at == now);
        e->full_at = until;
    }
}

/* A key not held whose probe meets no entry at all: looking it up drops nothing on the way. */
static struct coil__rl_key lonely_key(const struct coil__rl_table *t)
{
    for (uint64_t j = 1000000;; j++) {
        struct coil__rl_key k = key_n(j);
        if (!t->slots[k.a & t->mask].full_at)
            return k;
    }
}

static void test_table_full(void)
{
    struct coil__rl_table t;
    CHECK(coil__rl_table_init(&t, 100) == 0);
    uint64_t now = 10 * NS;
    for (uint64_t i = 0; i < 100; i++) {
        struct coil__rl_entry *e = coil__rl_table_get(&t, key_n(i), now);
        CHECK(e && e->full_at == now);
        e->full_at = now + NS + i; /* key i expires at now + 1 s + i ns */
    }
    check_table(&t);
    CHECK(t.count == 100);
    CHECK(coil__rl_table_get(&t, key_n(1000), now) == NULL); /* every key live: no room */
    CHECK(t.full_sweep_ns == now);
    CHECK(coil__rl_table_get(&t, key_n(1001), now + 1) == NULL);
    struct coil__rl_entry *e = coil__rl_table_get(&t, key_n(7), now + 2);
    CHECK(e && e->full_at == now + NS + 7); /* a held key still answers */
    /* Keys 0..50 expired, and the last full sweep is long past: it runs and drops all 51 (a
     * key whose probe passes no entry, so that none goes on the way). */
    uint64_t later = now + NS + 50;
    e = coil__rl_table_get(&t, lonely_key(&t), later);
    CHECK(e && e->full_at == later);
    CHECK(t.count == 50 && t.full_sweep_ns == later);
    check_table(&t);

    /* Full again, all live until T + 1 s. A lookup at T + 1 s - 10 ms sweeps and finds nothing;
     * at T + 1 s everything has expired, but a whole sweep is not due for another 90 ms: a
     * key whose probe passes no entry is refused. Once due, it gets in. */
    uint64_t T = 100 * NS;
    CHECK(coil__rl_table_sweep(&t, T, t.mask + 1) == 50 && t.count == 0); /* all expired */
    fill(&t, 5000, T, T + NS);
    CHECK(coil__rl_table_get(&t, key_n(1), T + NS - 10000000) == NULL);
    CHECK(t.full_sweep_ns == T + NS - 10000000);
    struct coil__rl_key k = lonely_key(&t);
    CHECK(coil__rl_table_get(&t, k, T + NS) == NULL);
    CHECK(t.count == 100);
    e = coil__rl_table_get(&t, k, T + NS + 90000000);
    CHECK(e && t.count == 1);
    check_table(&t);
    coil__rl_table_fini(&t);
}

static void test_table_grow_and_sweep(void)
{
    struct coil__rl_table t;
    CHECK(coil__rl_table_init(&t, 100000) == 0);
    CHECK(t.max_slots == 131072 && t.mask + 1 == 1024);
    uint64_t now = NS;
    for (uint64_t i = 0; i < 50000; i++) {
        struct coil__rl_entry *e = coil__rl_table_get(&t, key_n(i), now);
        CHECK(e);
        e->full_at = now + (i % 2 ? 10 * NS : 1); /* odd keys live long, even ones briefly */
    }
    check_table(&t);
    CHECK(t.count <= 50000 && t.mask + 1 >= 65536);
    for (uint64_t i = 1; i < 50000; i += 2) {
        struct coil__rl_entry *e = coil__rl_table_get(&t, key_n(i), now);
        CHECK(e && e->full_at == now + 10 * NS);
    }
    /* Sweeps in slices: after a whole turn only the odd keys are left. */
    uint32_t dropped = 0;
    for (uint32_t done = 0; done <= t.mask; done += 4096)
        dropped += coil__rl_table_sweep(&t, now + 2, 4096);
    check_table(&t);
    CHECK(t.count == 25000);
    CHECK(dropped == 25000);
    for (uint64_t i = 1; i < 50000; i += 2) {
        struct coil__rl_entry *e = coil__rl_table_get(&t, key_n(i), now + 2);
        CHECK(e && e->full_at == now + 10 * NS);
    }
    CHECK(t.count == 25000);
    coil__rl_table_fini(&t);
}

static void test_table_bad(void)
{
    struct coil__rl_table t;
    CHECK(coil__rl_table_init(&t, 0) == -EINVAL);
    CHECK(coil__rl_table_init(&t, (1u << 28) + 1) == -EINVAL);
    CHECK(coil__rl_table_init(&t, 1) == 0);
    CHECK(t.max_slots == 16);
    struct coil__rl_entry *e = coil__rl_table_get(&t, key_n(1), NS);
    CHECK(e);
    e->full_at = 2 * NS;
    CHECK(coil__rl_table_get(&t, key_n(2), NS) == NULL);
    CHECK(coil__rl_table_get(&t, key_n(2), 2 * NS) != NULL); /* key 1 expired on the way */
    check_table(&t);
    coil__rl_table_fini(&t);
}

int main(void)
{
    test_params();
    test_parse();
    test_take_burst_then_deny();
    test_take_refill();
    test_take_random();
    test_siphash();
    test_digest();
    test_table_random(key_n, 3000, 100000);
    test_table_random(key_clustered, 500, 100000);
    test_table_random(key_n, 400, 200); /* often at max_keys */
    test_table_random(key_clustered, 300, 100);
    test_table_full();
    test_table_grow_and_sweep();
    test_table_bad();
    puts("test_ratelimit: ok");
    return 0;
}
