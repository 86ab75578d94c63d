/* SPDX-License-Identifier: MIT */
/*
 * mw_ratelimit.c: the rate-limit middleware (coil_mw.h, "Rate limiting"): a token bucket per key
 * (the client's address, a header's value, or an API key), kept share-nothing. Each key belongs
 * to one worker, chosen by its digest; only that worker's table holds its bucket, so every
 * decision for a key is made in one place, in order, and a client whose connections land on
 * every worker still gets exactly its rate and burst. A request on the owner is decided at once
 * by the before step; on another worker the step defers and asks the owner with a job call,
 * whose reply continues the request (coil_mw_next) or answers it 429. A full channel to the
 * owner answers 503: failing closed keeps the limit exact, and a full channel means the owner
 * is already behind.
 *
 * A table (struct shard) holds keys as 128-bit keyed digests (mw_ratelimit.h), not their bytes:
 * every entry has one size, so max_keys bounds the memory exactly, with no allocation per key,
 * no API key kept in clear, and no collision a client can aim. Each worker's start hook makes
 * its table from the worker's own heap and its stop hook frees it; a worker timer sweeps a slice
 * of it each second. The limiter itself (struct
 * limiter) is read-only once the workers start and lives until the run's done hook.
 *
 * The option values (--rate-limit, --rate-limit-key) are kept in static storage between
 * parsing and the install: there is one app per process (coil__app).
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "coil_mw.h"
#include "internal.h"
#include "mw_ratelimit.h"

#define SWEEP_MS 1000             /* how often a worker sweeps part of its table */
#define SWEEP_SLOTS 16384         /* slots looked at per sweep: a bounded pause */
#define LOG_EVERY_NS 10000000000u /* at most one "table full" line per worker per 10 s */
#define DEFAULT_MAX_KEYS 100000

/* ---- the token bucket ------------------------------------------------------------------- */

#define NS 1000000000u
#define MAX_SPAN_NS (UINT64_C(1) << 62)

int coil__rl_params_init(struct coil__rl_params *p, double rate, uint32_t burst)
{
    if (!(rate > 0 && rate <= 1e9))
        return -EINVAL;
    double iv = (double)NS / rate;
    if (iv >= (double)MAX_SPAN_NS)
        return -EINVAL;
    uint64_t interval = (uint64_t)iv;
    if ((double)interval < iv)
        interval++; /* rounded up: the bucket never refills faster than rate */
    if (!burst) {
        burst = (uint32_t)rate; /* rate <= 1e9 fits */
        if ((double)burst < rate || !burst)
            burst++;
    }
    if (interval > MAX_SPAN_NS / burst)
        return -EINVAL;
    *p = (struct coil__rl_params){interval, interval * burst, burst};
    return 0;
}

static uint32_t ceil_s(uint64_t ns)
{
    uint64_t s = ns / NS + (ns % NS != 0);
    return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
}

void coil__rl_take(const struct coil__rl_params *p, uint64_t *full_at, uint64_t now,
                   struct coil__rl_verdict *v)
{
    uint64_t owed = *full_at > now ? *full_at - now : 0; /* time until the bucket is full */
    if (owed > p->burst_ns)
        owed = p->burst_ns; /* only if the clock went back: keep the counts in range */
    if (owed + p->interval_ns <= p->burst_ns) {
        owed += p->interval_ns;
        *full_at = now + owed;
        v->outcome = COIL_RL_ALLOW;
        v->retry_s = 0;
    } else {
        uint32_t wait = ceil_s(owed + p->interval_ns - p->burst_ns);
        v->outcome = COIL_RL_DENY;
        v->retry_s = wait ? wait : 1;
    }
    v->remaining = (uint32_t)((p->burst_ns - owed) / p->interval_ns);
    v->reset_s = ceil_s(owed);
}

/* ---- the option's syntax ---------------------------------------------------------------- */

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

int coil__rl_parse_rate(const char *s, double *rate, uint32_t *burst)
{
    double v = 0, scale = 1;
    unsigned ndigits = 0;
    const char *p = s;
    for (; digit(*p); p++, ndigits++)
        v = v * 10 + (*p - '0');
    if (!ndigits)
        return -EINVAL;
    if (*p == '.') {
        if (!digit(*++p))
            return -EINVAL;
        for (; digit(*p); p++, ndigits++)
            v += (*p - '0') * (scale /= 10);
    }
    if (ndigits > 15 || !(v > 0)) /* more digits than a double keeps: a typo, not a rate */
        return -EINVAL;
    uint64_t b = 0;
    if (*p == ':') {
        if (!digit(*++p))
            return -EINVAL;
        for (; digit(*p); p++)
            if ((b = b * 10 + (uint64_t)(*p - '0')) > UINT32_MAX)
                return -EINVAL;
        if (!b)
            return -EINVAL;
    }
    if (*p)
        return -EINVAL;
    *rate = v;
    *burst = (uint32_t)b;
    return 0;
}

/* ---- key digests ------------------------------------------------------------------------ */

static inline uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static inline void sipround(uint64_t v[4])
{
    v[0] += v[1], v[1] = rotl(v[1], 13), v[1] ^= v[0], v[0] = rotl(v[0], 32);
    v[2] += v[3], v[3] = rotl(v[3], 16), v[3] ^= v[2];
    v[0] += v[3], v[3] = rotl(v[3], 21), v[3] ^= v[0];
    v[2] += v[1], v[1] = rotl(v[1], 17), v[1] ^= v[2], v[2] = rotl(v[2], 32);
}

static inline void sipblock(uint64_t v[4], uint64_t m)
{
    v[3] ^= m;
    sipround(v);
    sipround(v);
    v[0] ^= m;
}

/* From Aumasson and Bernstein, "SipHash: a fast short-input PRF" (2012). */
uint64_t coil__siphash(const uint64_t k[2], const void *data, size_t len)
{
    uint64_t v[4] = {k[0] ^ 0x736f6d6570736575u, k[1] ^ 0x646f72616e646f6du,
                     k[0] ^ 0x6c7967656e657261u, k[1] ^ 0x7465646279746573u};
    const unsigned char *p = data;
    size_t whole = len & ~(size_t)7;
    for (size_t i = 0; i < whole; i += 8) {
        uint64_t m;
        memcpy(&m, p + i, 8);
        sipblock(v, le64toh(m));
    }
    uint64_t last = (uint64_t)len << 56;
    for (size_t i = whole; i < len; i++)
        last |= (uint64_t)p[i] << (8 * (i - whole));
    sipblock(v, last);
    v[2] ^= 0xff;
    for (int i = 0; i < 4; i++)
        sipround(v);
    return v[0] ^ v[1] ^ v[2] ^ v[3];
}

struct coil__rl_key coil__rl_digest(const uint64_t seed[4], char kind, const void *data, size_t len)
{
    /* The kind is folded into the keys: keys of different kinds never meet. */
    uint64_t ka[2] = {seed[0] ^ (uint8_t)kind, seed[1]}, kb[2] = {seed[2] ^ (uint8_t)kind, seed[3]};
    struct coil__rl_key k = {coil__siphash(ka, data, len), coil__siphash(kb, data, len)};
    if (!k.a && !k.b)
        k.a = 1;
    return k;
}

/* ---- the per-worker table ----------------------------------------------------------------- */

int coil__rl_table_init(struct coil__rl_table *t, uint32_t max_keys)
{
    if (!max_keys || max_keys > (1u << 28))
        return -EINVAL;
    uint32_t need = max_keys + max_keys / 4 + 1, max_slots = 16;
    while (max_slots < need)
        max_slots <<= 1;
    uint32_t n = max_slots < 1024 ? max_slots : 1024;
    *t = (struct coil__rl_table){.max_keys = max_keys, .max_slots = max_slots, .mask = n - 1};
    t->slots = coil_malloc(n * sizeof(*t->slots));
    if (!t->slots)
        return -ENOMEM;
    memset(t->slots, 0, n * sizeof(*t->slots));
    return 0;
}

void coil__rl_table_fini(struct coil__rl_table *t)
{
    coil_free(t->slots);
    t->slots = NULL;
    t->count = 0;
}

/* Empties slot i, moving later entries of its cluster back so that no probe meets a hole
 * before its key (Knuth's algorithm R). */
static void delete_at(struct coil__rl_table *t, uint32_t i)
{
    uint32_t mask = t->mask, j = i;
    for (;;) {
        j = (j + 1) & mask;
        const struct coil__rl_entry *e = &t->slots[j];
        if (!e->full_at)
            break;
        uint32_t home = (uint32_t)e->a & mask;
        bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
        if (stays)
            continue; /* its probe starts after the hole: moving it would hide it */
        t->slots[i] = *e;
        i = j;
    }
    t->slots[i] = (struct coil__rl_entry){0};
    t->count--;
}

/* Puts key in the first free slot of its probe (the caller knows it is absent). */
static struct coil__rl_entry *place(struct coil__rl_entry *slots, uint32_t mask,
                                    struct coil__rl_key key, uint64_t full_at)
{
    uint32_t i = (uint32_t)key.a & mask;
    while (slots[i].full_at)
        i = (i + 1) & mask;
    slots[i] = (struct coil__rl_entry){key.a, key.b, full_at};
    return &slots[i];
}

/* Doubles the table, leaving expired entries behind. */
static int grow(struct coil__rl_table *t, uint64_t now)
{
    uint32_t n = (t->mask + 1) * 2, mask = n - 1, count = 0;
    struct coil__rl_entry *s = coil_malloc(n * sizeof(*s));
    if (!s)
        return -ENOMEM;
    memset(s, 0, n * sizeof(*s));
    for (uint32_t i = 0; i <= t->mask; i++) {
        const struct coil__rl_entry *e = &t->slots[i];
        if (e->full_at > now) {
            place(s, mask, (struct coil__rl_key){e->a, e->b}, e->full_at);
            count++;
        }
    }
    coil_free(t->slots);
    t->slots = s;
    t->mask = mask;
    t->count = count;
    return 0;
}

uint32_t coil__rl_table_sweep(struct coil__rl_table *t, uint64_t now, uint32_t n)
{
    uint32_t dropped = 0, i = t->cursor & t->mask;
    if (n > t->mask + 1)
        n = t->mask + 1;
    for (uint32_t k = 0; k < n; k++) {
        while (t->slots[i].full_at && t->slots[i].full_at <= now) {
            delete_at(t, i); /* the next entry of the cluster may land here: look again */
            dropped++;
        }
        i = (i + 1) & t->mask;
    }
    t->cursor = i;
    return dropped;
}

/* Room for one more key: false when the table holds max_keys live entries. */
static bool make_room(struct coil__rl_table *t, uint64_t now)
{
    if (t->count >= t->max_keys) {
        /* Only expired entries can go. A whole sweep costs the table's size, so it is done at
         * most every COIL_RL_FULL_SWEEP_NS: a table kept full cannot make each request pay. */
        if (t->full_sweep_ns && now - t->full_sweep_ns < COIL_RL_FULL_SWEEP_NS)
            return false;
        t->full_sweep_ns = now;
        coil__rl_table_sweep(t, now, t->mask + 1);
        if (t->count >= t->max_keys)
            return false;
    }
    uint32_t slots = t->mask + 1;
    if ((uint64_t)(t->count + 1) * 4 > (uint64_t)slots * 3 && slots < t->max_slots &&
        grow(t, now) < 0)
        return t->count + 1 < slots; /* out of memory: go on while a slot stays free */
    return true;
}

struct coil__rl_entry *coil__rl_table_get(struct coil__rl_table *t, struct coil__rl_key key,
                                          uint64_t now)
{
    uint32_t i = (uint32_t)key.a & t->mask;
    for (;;) {
        struct coil__rl_entry *e = &t->slots[i];
        if (!e->full_at)
            break;
        if (e->a == key.a && e->b == key.b)
            return e;
        if (e->full_at <= now)
            delete_at(t, i); /* expired on the way: the slot now holds the next, if any */
        else
            i = (i + 1) & t->mask;
    }
    if (!make_room(t, now))
        return NULL;
    t->count++;
    return place(t->slots, t->mask, key, now);
}

/* ---- the middleware ----------------------------------------------------------------------- */

struct shard {
    struct coil__rl_table t;
    struct coil_timer sweep;
    uint64_t logged_ns; /* when the last "cannot" line was written; 0 never */
    uint64_t refused;   /* requests refused 503 since that line */
};

struct limiter {
    struct coil__rl_params p;
    enum coil_ratelimit_key key;
    char *header;      /* COIL_RL_HEADER: its name */
    uint32_t max_keys; /* per worker */
    uint64_t seed[4];  /* the digest's secret keys */
    char limit[12];    /* p.burst as text: RateLimit-Limit */
    unsigned nworkers;
    struct shard **shards; /* by worker; each touched only by its own worker */
};

/* What a worker asks the key's owner. */
struct call {
    struct limiter *l;
    struct coil__rl_key k;
};

/* A request waiting for its owner's verdict; in its arena. */
struct ask {
    struct limiter *l;
    struct coil_req *req;
    struct coil_res *res;
};

static const char verdict_key; /* coil_req_set: the verdict of an allowed request */

static struct shard *my_shard(const struct limiter *l)
{
    unsigned id = coil_worker_id();
    return l->shards && id < l->nworkers ? l->shards[id] : NULL;
}

/* Counts a refusal and says so in the log, at most every LOG_EVERY_NS per worker. */
static void note_refusal(struct shard *s, const char *why)
{
    if (!s)
        return;
    s->refused++;
    uint64_t now = coil__clock_ns();
    if (s->logged_ns && now - s->logged_ns < LOG_EVERY_NS)
        return;
    coil__log("rate limit: worker %u: %s: %llu request(s) answered 503 since the last such line",
              coil_worker_id(), why, (unsigned long long)s->refused);
    s->logged_ns = now;
    s->refused = 0;
}

/* The decision for key k, on its owner. */
static void decide(struct limiter *l, struct coil__rl_key k, struct coil__rl_verdict *v)
{
    struct shard *s = my_shard(l);
    uint64_t now = coil__clock_ns();
    struct coil__rl_entry *e = s ? coil__rl_table_get(&s->t, k, now) : NULL;
    if (!e) {
        *v = (struct coil__rl_verdict){.outcome = COIL_RL_REFUSE};
        note_refusal(s, s ? "table full (max_keys live keys)" : "no table (out of memory)");
        return;
    }
    coil__rl_take(&l->p, &e->full_at, now, v);
}

/* The key of a client address: an IPv4 address, or the /64 of an IPv6 one (a host is usually
 * given a whole /64, so counting single addresses would let it pick a fresh one per request). */
static struct coil__rl_key key_addr(const struct limiter *l, struct coil_req *req)
{
    struct coil_str peer = coil_req_peer(req);
    char text[INET6_ADDRSTRLEN];
    unsigned char a[16];
    if (peer.len && peer.len < sizeof(text)) {
        memcpy(text, peer.ptr, peer.len);
        text[peer.len] = 0;
        if (inet_pton(AF_INET, text, a) == 1)
            return coil__rl_digest(l->seed, '4', a, 4);
        if (inet_pton(AF_INET6, text, a) == 1)
            return IN6_IS_ADDR_V4MAPPED((struct in6_addr *)a)
                       ? coil__rl_digest(l->seed, '4', a + 12, 4)
                       : coil__rl_digest(l->seed, '6', a, 8);
    }
    return coil__rl_digest(l->seed, 'a', peer.ptr, peer.len); /* unknown: one shared bucket */
}

/* The credential of a request: X-API-Key, else the token of "Authorization: Bearer". */
static struct coil_str api_key(struct coil_req *req)
{
    struct coil_str v = coil_req_header(req, "X-API-Key");
    if (v.len)
        return v;
    v = coil_req_header(req, "Authorization");
    if (v.len <= 7 || strncasecmp(v.ptr, "Bearer ", 7) != 0)
        return (struct coil_str){NULL, 0};
    v.ptr += 7, v.len -= 7;
    while (v.len && (*v.ptr == ' ' || *v.ptr == '\t'))
        v.ptr++, v.len--;
    return v;
}

static struct coil__rl_key key_of(const struct limiter *l, struct coil_req *req)
{
    struct coil_str v = {NULL, 0};
    char kind = 'h';
    if (l->key == COIL_RL_HEADER)
        v = coil_req_header(req, l->header);
    else if (l->key == COIL_RL_APIKEY)
        v = api_key(req), kind = 'k';
    return v.len ? coil__rl_digest(l->seed, kind, v.ptr, v.len) : key_addr(l, req);
}

static void put_number(struct coil_res *res, const char *name, uint32_t n)
{
    char text[12];
    snprintf(text, sizeof(text), "%u", n);
    coil_res_header(res, name, text);
}

static void put_limits(struct coil_res *res, const struct limiter *l,
                       const struct coil__rl_verdict *v)
{
    coil_res_header(res, "RateLimit-Limit", l->limit);
    put_number(res, "RateLimit-Remaining", v->remaining);
    put_number(res, "RateLimit-Reset", v->reset_s);
}

/* A refused request's answer: 429 with the limits, or 503 (try again in a second). */
static void put_refusal(struct coil_res *res, const struct limiter *l,
                        const struct coil__rl_verdict *v)
{
    static const char limited[] = "Too Many Requests\n", busy[] = "Service Unavailable\n";
    bool deny = v->outcome == COIL_RL_DENY;
    coil_res_status(res, deny ? 429 : 503);
    coil_res_header(res, "Content-Type", "text/plain; charset=utf-8");
    if (deny) {
        put_limits(res, l, v);
        put_number(res, "Retry-After", v->retry_s);
        coil_res_body_static(res, limited, sizeof(limited) - 1);
    } else {
        coil_res_header(res, "Retry-After", "1");
        coil_res_body_static(res, busy, sizeof(busy) - 1);
    }
}

/* An allowed request carries its verdict to the after step, which writes the headers. Out of
 * memory, it goes on without them. */
static void keep_verdict(struct coil_req *req, const struct coil__rl_verdict *v)
{
    struct coil__rl_verdict *copy = coil_req_alloc(req, sizeof(*copy));
    if (copy) {
        *copy = *v;
        coil_req_set(req, &verdict_key, copy);
    }
}

/* On the owner: decide and reply. */
static void on_call(void *payload, size_t len, struct coil_reply *reply)
{
    struct coil__rl_verdict v = {.outcome = COIL_RL_REFUSE};
    struct call c;
    if (len == sizeof(c)) {
        memcpy(&c, payload, sizeof(c));
        decide(c.l, c.k, &v);
    }
    coil_reply(reply, &v, sizeof(v));
}

/* Back on the request's worker (only while the request lives: it owns the call). */
static void on_verdict(int err, const void *data, size_t len, void *ud)
{
    struct ask *a = ud;
    struct coil__rl_verdict v = {.outcome = COIL_RL_REFUSE};
    if (!err && len == sizeof(v))
        memcpy(&v, data, sizeof(v));
    else
        note_refusal(my_shard(a->l), "the key's owner did not answer");
    if (v.outcome == COIL_RL_ALLOW) {
        keep_verdict(a->req, &v);
        if (coil_mw_next(a->req) < 0)
            coil_res_fail(a->res, 500);
        return;
    }
    put_refusal(a->res, a->l, &v);
    coil_res_finish(a->res);
}

/* Defers the request and asks the key's owner. */
static int ask_owner(struct limiter *l, struct coil_req *req, struct coil_res *res,
                     struct coil__rl_key k, unsigned owner)
{
    struct ask *a = coil_req_alloc(req, sizeof(*a));
    if (!a || !coil_res_defer(res, NULL, NULL).id)
        return -ENOMEM;
    *a = (struct ask){l, req, res};
    struct call c = {l, k};
    int err = coil_job_call(req, owner, on_call, &c, sizeof(c), on_verdict, a);
    if (err < 0) {
        /* Most likely -EAGAIN: the channel to the owner is full. Deciding here would let the
         * key past its limit; the owner is behind anyway, so the client is asked to retry. */
        note_refusal(my_shard(l), err == -EAGAIN ? "the channel to a key's owner is full"
                                                 : "the key's owner cannot be asked");
        put_refusal(res, l, &(struct coil__rl_verdict){.outcome = COIL_RL_REFUSE});
        coil_res_finish(res);
    }
    return COIL_MW_DONE;
}

static int rl_before(struct coil_req *req, struct coil_res *res, void *ud)
{
    struct limiter *l = ud;
    struct coil__rl_key k = key_of(l, req);
    unsigned owner = l->nworkers > 1 ? (unsigned)(k.b % l->nworkers) : 0;
    if (owner != coil_worker_id())
        return ask_owner(l, req, res, k, owner);
    struct coil__rl_verdict v;
    decide(l, k, &v);
    if (v.outcome == COIL_RL_ALLOW) {
        keep_verdict(req, &v);
        return COIL_MW_NEXT;
    }
    put_refusal(res, l, &v);
    return COIL_MW_DONE;
}

static void rl_after(struct coil_req *req, struct coil_res *res, void *ud)
{
    const struct coil__rl_verdict *v = coil_req_get(req, &verdict_key);
    if (v)
        put_limits(res, ud, v);
}

/* ---- lifetime ------------------------------------------------------------------------------ */

static void on_sweep(void *ud)
{
    struct shard *s = ud;
    coil__rl_table_sweep(&s->t, coil__clock_ns(), SWEEP_SLOTS);
    s->sweep = coil_timer_after(NULL, SWEEP_MS, on_sweep, s);
}

static void rl_worker_start(unsigned worker, void *ud)
{
    struct limiter *l = ud;
    assert(l->shards && worker < l->nworkers); /* rl_run ran: run hooks come before workers */
    struct shard *s = coil_malloc(sizeof(*s));
    if (!s || coil__rl_table_init(&s->t, l->max_keys) < 0) {
        coil_free(s);
        coil__log("rate limit: worker %u: out of memory for its table: its keys get 503", worker);
        return;
    }
    s->logged_ns = s->refused = 0;
    s->sweep = coil_timer_after(NULL, SWEEP_MS, on_sweep, s);
    l->shards[worker] = s;
}

static void rl_worker_stop(unsigned worker, void *ud)
{
    struct limiter *l = ud;
    struct shard *s = l->shards[worker];
    if (!s)
        return;
    coil_timer_cancel(s->sweep);
    coil__rl_table_fini(&s->t);
    coil_free(s);
    l->shards[worker] = NULL;
}

static int rl_run(void *ud)
{
    struct limiter *l = ud;
    l->nworkers = coil_worker_count();
    l->shards = calloc(l->nworkers, sizeof(*l->shards));
    if (!l->shards) {
        fprintf(stderr, "coil: rate limit: out of memory\n");
        return -1;
    }
    return 0;
}

static void rl_done(void *ud)
{
    struct limiter *l = ud;
    free(l->shards);
    free(l->header);
    free(l);
}

static void make_seed(uint64_t seed[4])
{
    if (getrandom(seed, 4 * sizeof(*seed), 0) == (ssize_t)(4 * sizeof(*seed)))
        return;
    /* No entropy source: keys stay apart, only aiming collisions gets easier. */
    uint64_t x = coil__clock_ns() ^ ((uint64_t)getpid() << 32);
    for (int i = 0; i < 4; i++)
        seed[i] = x = x * 6364136223846793005u + 1442695040888963407u;
}

static int bad(const char *why)
{
    fprintf(stderr, "coil: rate limit: %s\n", why);
    return -EINVAL;
}

int coil_mw_ratelimit(struct coil_app *app, const struct coil_ratelimit_opts *o,
                      struct coil_mw *out)
{
    if (!app || !o || !out)
        return -EINVAL;
    struct coil__rl_params p;
    if (coil__rl_params_init(&p, o->rate, o->burst) < 0)
        return bad("the rate must be above 0 and at most 1e9 per second, and an empty bucket "
                   "must fill within a century");
    if (o->key != COIL_RL_IP && o->key != COIL_RL_HEADER && o->key != COIL_RL_APIKEY)
        return bad("unknown key kind");
    if (o->key == COIL_RL_HEADER &&
        (!o->header || !coil__http_is_token((struct coil_str){o->header, strlen(o->header)})))
        return bad("the key header needs a name");
    if (o->max_keys > (1u << 28))
        return bad("max_keys is at most 2^28");
    struct limiter *l = calloc(1, sizeof(*l));
    if (!l || (o->key == COIL_RL_HEADER && !(l->header = strdup(o->header)))) {
        free(l);
        return -ENOMEM;
    }
    l->p = p;
    l->key = o->key;
    l->max_keys = o->max_keys ? o->max_keys : DEFAULT_MAX_KEYS;
    snprintf(l->limit, sizeof(l->limit), "%u", p.burst);
    make_seed(l->seed);
    if (coil_app_on_run(app, NULL, rl_done, l) < 0) {
        rl_done(l);
        return -ENOMEM;
    }
    /* From here l is the clean-up hook's to free, however coil_app_run ends. */
    if (coil_app_on_run(app, rl_run, NULL, l) < 0 ||
        coil_app_on_worker(app, rl_worker_start, rl_worker_stop, l) < 0)
        return -ENOMEM;
    *out = (struct coil_mw){.name = "rate limit", .before = rl_before, .after = rl_after, .ud = l};
    return 0;
}

/* ---- options ------------------------------------------------------------------------------- */

static struct {
    bool on;
    double rate;
    uint32_t burst;
    enum coil_ratelimit_key key;
    bool key_set;
    char *header;
} flags;

static int rate_option(const char *value, void *ud)
{
    (void)ud;
    struct coil__rl_params p;
    if (coil__rl_parse_rate(value, &flags.rate, &flags.burst) < 0 ||
        coil__rl_params_init(&p, flags.rate, flags.burst) < 0)
        return -1; /* said here, so that the message names the option */
    flags.on = true;
    return 0;
}

static int key_option(const char *value, void *ud)
{
    (void)ud;
    free(flags.header);
    flags.header = NULL;
    flags.key_set = true;
    if (!strcmp(value, "ip")) {
        flags.key = COIL_RL_IP;
    } else if (!strcmp(value, "apikey")) {
        flags.key = COIL_RL_APIKEY;
    } else if (!strncmp(value, "header:", 7) &&
               coil__http_is_token((struct coil_str){value + 7, strlen(value + 7)})) {
        flags.key = COIL_RL_HEADER;
        if (!(flags.header = strdup(value + 7)))
            return -1;
    } else {
        return -1;
    }
    return 0;
}

int coil__ratelimit_setup(struct coil_app *app)
{
    free(flags.header);
    memset(&flags, 0, sizeof(flags));
    if (coil_app_option(app, "rate-limit", "COIL_RATE_LIMIT", "RATE[:BURST]",
                        "token bucket per client: RATE requests per second (decimal, e.g. 0.5), "
                        "bursts of BURST [RATE rounded up]; 429 beyond. Enables rate limiting",
                        rate_option, NULL) < 0 ||
        coil_app_option(app, "rate-limit-key", "COIL_RATE_LIMIT_KEY", "ip|header:NAME|apikey",
                        "what a client is: its address (IPv6: its /64), a request header's "
                        "value, or its API key (X-API-Key or Bearer token); without one, the "
                        "address [ip]",
                        key_option, NULL) < 0)
        return -ENOMEM;
    return 0;
}

int coil__ratelimit_install(struct coil_app *app)
{
    int rc = 0;
    if (flags.on) {
        struct coil_ratelimit_opts o = {
            .rate = flags.rate, .burst = flags.burst, .key = flags.key, .header = flags.header};
        struct coil_mw mw;
        int err = coil_mw_ratelimit(app, &o, &mw);
        if (err == 0)
            err = coil__use_builtin(app, &mw);
        if (err == -ENOMEM)
            fprintf(stderr, "coil: rate limit: out of memory\n");
        rc = err < 0 ? -1 : 0; /* -EINVAL was explained by coil_mw_ratelimit */
    } else if (flags.key_set) {
        fprintf(stderr, "coil: --rate-limit-key has no effect without --rate-limit\n");
    }
    free(flags.header);
    memset(&flags, 0, sizeof(flags));
    return rc;
}
