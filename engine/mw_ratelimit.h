/* SPDX-License-Identifier: MIT */
/*
 * mw_ratelimit.h: the pure parts of the rate limiter (mw_ratelimit.c), apart so unit tests reach
 * them: the token bucket's arithmetic, the key digest, the per-worker key table and the option
 * parser. Nothing here reads a clock or knows a worker: instants are passed in (nanoseconds of
 * CLOCK_MONOTONIC), and the table's memory comes from coil_malloc on the calling thread.
 */
#ifndef COIL_MW_RATELIMIT_H
#define COIL_MW_RATELIMIT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A token bucket is held as one instant, full_at: when it will be full again. At instant now
 * it holds burst - (full_at - now) / interval tokens (burst when full_at <= now), which is a
 * bucket refilled continuously at rate with capacity burst, in integer nanoseconds: taking a
 * token moves full_at one interval later. A bucket whose full_at has passed is the same as no
 * bucket at all, which is what lets the table forget it.
 */
struct coil__rl_params {
    uint64_t interval_ns; /* time to earn one token: 1 s / rate, rounded up (never above rate) */
    uint64_t burst_ns;    /* burst * interval_ns: how long an empty bucket takes to fill */
    uint32_t burst;       /* tokens a full bucket holds, >= 1 */
};
/* rate per second (> 0), burst (0: rate rounded up). 0, or -EINVAL when the bucket would take
 * more than about 146 years to fill (burst_ns past 2^62) or rate is not in (0, 1e9]. */
int coil__rl_params_init(struct coil__rl_params *p, double rate, uint32_t burst);

enum coil__rl_outcome {
    COIL_RL_ALLOW,  /* a token was taken */
    COIL_RL_DENY,   /* the bucket is empty: 429 */
    COIL_RL_REFUSE, /* no room for a new key, or the owner could not be asked: 503 */
};
struct coil__rl_verdict {
    uint32_t outcome;   /* enum coil__rl_outcome */
    uint32_t remaining; /* tokens left after this request, rounded down */
    uint32_t reset_s;   /* seconds until the bucket is full, rounded up */
    uint32_t retry_s;   /* denied: seconds until one token is back, rounded up, at least 1 */
};
/* Takes one token from the bucket *full_at at instant now (ns) and says how it went; *full_at
 * moves only when a token was taken. */
void coil__rl_take(const struct coil__rl_params *p, uint64_t *full_at, uint64_t now,
                   struct coil__rl_verdict *v);

/* "RATE[:BURST]": RATE a decimal number of requests per second ("10", "0.5"), BURST a whole
 * count from 1; *burst is 0 when BURST is not given. 0 or -EINVAL. Locale-independent. */
int coil__rl_parse_rate(const char *s, double *rate, uint32_t *burst);

/* SipHash-2-4 of data under the 128-bit key k (k[0] the first 8 key bytes, little-endian). */
uint64_t coil__siphash(const uint64_t k[2], const void *data, size_t len);

/*
 * A key as the table holds it: a 128-bit keyed digest of its kind and bytes (two SipHashes
 * under independent random keys), so every entry has one size, no key is stored in clear (API
 * keys), and a client cannot aim collisions without the process's secret. a picks the slot, b
 * the owning worker. Never {0, 0}.
 */
struct coil__rl_key {
    uint64_t a, b;
};
struct coil__rl_key coil__rl_digest(const uint64_t seed[4], char kind, const void *data,
                                    size_t len);

/*
 * The keys one worker owns: open addressing with linear probing and backward-shift deletion
 * (no tombstones), grown by doubling up to the size that holds max_keys at most 80% full. An
 * entry whose bucket is full again (full_at <= now) is expired: it is dropped when a probe
 * passes it, by coil__rl_table_sweep, and, when the table holds max_keys, by a sweep of the
 * whole table at most every COIL_RL_FULL_SWEEP_NS; if nothing can go, new keys are refused.
 * Owned by one worker (or a test), never shared.
 */
struct coil__rl_entry {
    uint64_t a, b;    /* the key */
    uint64_t full_at; /* ns; 0 marks an empty slot (a live entry's is past its first take) */
};
struct coil__rl_table {
    struct coil__rl_entry *slots;
    uint32_t mask;          /* slots - 1; slots is a power of two */
    uint32_t count;         /* entries held, expired ones included until they are dropped */
    uint32_t max_keys;      /* entries allowed */
    uint32_t max_slots;     /* the size that holds max_keys with room to probe */
    uint32_t cursor;        /* where the next coil__rl_table_sweep starts */
    uint64_t full_sweep_ns; /* the last whole-table sweep made because the table was full */
};
#define COIL_RL_FULL_SWEEP_NS (100 * 1000000ull)
/* 0 or -ENOMEM (max_keys from 1 to 2^28). */
int coil__rl_table_init(struct coil__rl_table *t, uint32_t max_keys);
void coil__rl_table_fini(struct coil__rl_table *t);
/* key's entry, made if absent (full_at = now: a full bucket); NULL when the table holds max_keys
 * live entries (or cannot grow and is nearly full). */
struct coil__rl_entry *coil__rl_table_get(struct coil__rl_table *t, struct coil__rl_key key,
                                          uint64_t now);
/* Drops the expired entries among n slots from the cursor on (wrapping), moving the cursor
 * past them. Returns how many went. */
uint32_t coil__rl_table_sweep(struct coil__rl_table *t, uint64_t now, uint32_t n);

#endif
