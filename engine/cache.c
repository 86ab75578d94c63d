/* SPDX-License-Identifier: MIT */
/*
 * cache.c: coil_cache (coil.h), a cache-aside store per worker. Each worker has its own table
 * (struct shard), touched only by that worker: a chained hash table whose bucket array doubles
 * as entries are added, and an LRU list through the same entries. An entry is one allocation
 * from the worker's arena (header, key, value) with an absolute expiry; a lookup that finds it
 * expired frees it. Puts past max_entries or max_bytes evict from the LRU tail.
 *
 * Every value carries the time it was read from its source (a stamp, coil_cache_stamp, taken
 * before the read). Invalidation leaves a tombstone with the time it happened: a put whose
 * stamp is not after the tombstone's may hold what was read before the write, and is refused.
 * That closes cache-aside's race (a slow read of the old value put back after the write's
 * invalidation), on one worker and across them. A value expires ttl after its stamp, and a
 * tombstone ttl after it was laid, when any put it could refuse would be expired anyway. A value
 * that replaces a tombstone keeps its time (guard); when eviction drops an entry with a guard,
 * the shard's watermark rises to it, and a put of a key held nowhere here must be stamped after
 * the watermark: coarser than the lost tombstone, never weaker.
 *
 * Invalidation must reach every worker: coil_cache_invalidate drops the key here and sends a
 * job call to every other worker, whose handler drops it there and replies; done runs once all
 * replies are back, so a handler that answers after done knows no worker still serves the old
 * value. The count of replies lives in the owner request's memory when there is an owner (the
 * replies are dropped with the request), else in the worker's heap. With replicate, a put is
 * also sent to every other worker as a job (stamp included, so the tombstones hold there too).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#ifdef COIL_HAVE_REDIS
#include "coil_redis.h"
#endif

struct entry {
    struct entry *chain;       /* next in the bucket */
    struct entry *prev, *next; /* LRU: head is the most recently used */
    uint64_t hash;
    uint64_t stamp_ns; /* a value: when it was read; a tombstone: when the key was invalidated */
    uint64_t guard_ns; /* the key's last invalidation known here (a tombstone's own stamp) */
    uint64_t expires_ms;
    uint32_t klen;
    uint32_t vlen;
    bool tomb;
    char data[]; /* key, then value */
};

struct shard {
    struct entry **buckets;
    size_t nbuckets; /* a power of two, or 0 before the first put */
    struct entry *head, *tail;
    uint32_t count;
    uint64_t bytes;
    uint64_t watermark_ns; /* the latest guard of an entry evicted: a put of a key not held here
                            * with a stamp not after it may be older than that key's lost
                            * tombstone, so it is refused */
};

struct coil_cache {
    struct coil_cache_opts o;
    char *prefix; /* opts.prefix, copied */
    size_t plen;
    unsigned nworkers;
    struct shard **shards; /* per worker */
};

static bool remote(const struct coil_cache *c);

static uint64_t hash_key(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = 0xcbf29ce484222325u ^ len; /* FNV-1a, then a final mix */
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 0x100000001b3u;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdu;
    h ^= h >> 33;
    return h;
}

static size_t entry_size(const struct entry *e)
{
    return sizeof(*e) + e->klen + e->vlen;
}

static struct shard *shard_of(struct coil_cache *c)
{
    struct coil__worker *w = coil__self;
    return w && c && c->shards && w->id < c->nworkers ? c->shards[w->id] : NULL;
}

static void lru_unlink(struct shard *s, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        s->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
}

static void lru_push(struct shard *s, struct entry *e)
{
    e->prev = NULL;
    e->next = s->head;
    if (s->head)
        s->head->prev = e;
    s->head = e;
    if (!s->tail)
        s->tail = e;
}

/* The slot pointing at the entry for key (or where it would go). */
static struct entry **find(struct shard *s, uint64_t h, const void *key, size_t klen)
{
    if (!s->nbuckets)
        return NULL;
    struct entry **p = &s->buckets[h & (s->nbuckets - 1)];
    while (*p && !((*p)->hash == h && (*p)->klen == klen && !memcmp((*p)->data, key, klen)))
        p = &(*p)->chain;
    return p;
}

static void drop(struct shard *s, struct entry **slot)
{
    struct entry *e = *slot;
    *slot = e->chain;
    lru_unlink(s, e);
    s->count--;
    s->bytes -= entry_size(e);
    coil_free(e);
}

static bool grow(struct shard *s)
{
    size_t n = s->nbuckets ? s->nbuckets * 2 : 64;
    struct entry **b = coil_malloc(n * sizeof(*b));
    if (!b)
        return false;
    memset(b, 0, n * sizeof(*b));
    for (size_t i = 0; i < s->nbuckets; i++) {
        for (struct entry *e = s->buckets[i], *next; e; e = next) {
            next = e->chain;
            e->chain = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    }
    coil_free(s->buckets);
    s->buckets = b;
    s->nbuckets = n;
    return true;
}

bool coil_cache_get(struct coil_cache *c, const void *key, size_t klen, struct coil_str *out)
{
    struct shard *s = shard_of(c);
    if (!s || !key)
        return false;
    struct entry **p = find(s, hash_key(key, klen), key, klen);
    if (!p || !*p)
        return false;
    struct entry *e = *p;
    if (e->expires_ms <= coil__self->now_ms) {
        drop(s, p);
        return false;
    }
    if (e->tomb)
        return false;
    if (s->head != e) {
        lru_unlink(s, e);
        lru_push(s, e);
    }
    if (out) {
        out->ptr = e->data + e->klen;
        out->len = e->vlen;
    }
    return true;
}

uint64_t coil_cache_stamp(void)
{
    return coil__clock_ns();
}

/* Puts a value (or, with tomb, a tombstone) in this worker's shard. */
static int put_here(struct coil_cache *c, struct shard *s, const void *key, size_t klen,
                    const void *val, size_t vlen, uint64_t stamp, bool tomb)
{
    size_t size = sizeof(struct entry) + klen + vlen;
    if (size > c->o.max_bytes)
        return -E2BIG;
    uint64_t now = coil__self->now_ms, ttl_ns = (uint64_t)c->o.ttl_ms * 1000000u;
    uint64_t now_ns = coil__clock_ns();
    if (stamp + ttl_ns <= now_ns)
        return -ESTALE; /* expired before it arrived */
    uint64_t h = hash_key(key, klen);
    struct entry **p = find(s, h, key, klen);
    uint64_t guard = tomb ? stamp : 0;
    if (p && *p) {
        struct entry *e = *p;
        bool live = e->expires_ms > now;
        if (live && !tomb && stamp <= e->guard_ns)
            return -ESTALE; /* read before the key was invalidated */
        if (live && !tomb && !e->tomb && stamp < e->stamp_ns)
            return -ESTALE; /* an older read than the value held */
        if (live && tomb && e->tomb && stamp < e->stamp_ns)
            return 0; /* a later tombstone is there */
        if (live && e->guard_ns > guard)
            guard = e->guard_ns;
        drop(s, p);
    } else if (!tomb && stamp <= s->watermark_ns) {
        return -ESTALE; /* its key's tombstone may have been evicted */
    }
    while (s->count && (s->count >= c->o.max_entries || s->bytes + size > c->o.max_bytes)) {
        struct entry *t = s->tail;
        if (t->guard_ns > s->watermark_ns && t->expires_ms > now)
            s->watermark_ns = t->guard_ns;
        drop(s, find(s, t->hash, t->data, t->klen));
    }
    if (s->count >= s->nbuckets && !grow(s))
        return -ENOMEM;
    struct entry *e = coil_malloc(size);
    if (!e)
        return -ENOMEM;
    e->hash = h;
    e->klen = (uint32_t)klen;
    e->vlen = (uint32_t)vlen;
    e->tomb = tomb;
    e->stamp_ns = stamp;
    e->guard_ns = guard;
    e->expires_ms = now + (stamp + ttl_ns - now_ns) / 1000000u + 1;
    memcpy(e->data, key, klen);
    if (vlen)
        memcpy(e->data + klen, val, vlen);
    struct entry **b = &s->buckets[h & (s->nbuckets - 1)];
    e->chain = *b;
    *b = e;
    lru_push(s, e);
    s->count++;
    s->bytes += size;
    return 0;
}

/* A replicated put: stamp, lengths, key, value. */
struct put_msg {
    struct coil_cache *c;
    uint64_t stamp;
    uint32_t klen, vlen;
    char data[];
};

static void put_job(void *payload, size_t len, unsigned worker)
{
    struct put_msg *m = payload;
    struct shard *s = shard_of(m->c);
    (void)worker;
    if (s && len == sizeof(*m) + m->klen + m->vlen)
        put_here(m->c, s, m->data, m->klen, m->data + m->klen, m->vlen, m->stamp, false);
}

int coil_cache_put(struct coil_cache *c, const void *key, size_t klen, const void *val, size_t vlen,
                   uint64_t stamp)
{
    if (c && remote(c))
        return coil_cache_store(NULL, c, key, klen, val, vlen, stamp, NULL, NULL);
    struct shard *s = shard_of(c);
    if (!s || !key || (vlen && !val) || klen > UINT32_MAX || vlen > UINT32_MAX)
        return -EINVAL;
    if (!stamp)
        stamp = coil__clock_ns();
    int err = put_here(c, s, key, klen, val, vlen, stamp, false);
    if (err < 0 || !c->o.replicate || c->nworkers < 2)
        return err;
    size_t size = sizeof(struct put_msg) + klen + vlen;
    struct put_msg *m = coil_malloc(size);
    if (!m)
        return 0; /* kept here at least */
    *m = (struct put_msg){.c = c, .stamp = stamp, .klen = (uint32_t)klen, .vlen = (uint32_t)vlen};
    memcpy(m->data, key, klen);
    memcpy(m->data + klen, val, vlen);
    coil_job_broadcast(put_job, m, size); /* a worker whose channel is full misses it */
    coil_free(m);
    return 0;
}

/* ---- on Redis ---------------------------------------------------------------------------- */

/* A cache whose entries live in Redis (opts.redis, configured): every call below goes there. */
static bool remote(const struct coil_cache *c)
{
#ifdef COIL_HAVE_REDIS
    return c->o.redis && coil_redis_configured(c->o.redis);
#else
    (void)c;
    return false;
#endif
}

#ifdef COIL_HAVE_REDIS
/* A call waiting for Redis: in the owner's memory (dropped with it), else the worker's heap. */
struct pending {
    bool owned;
    coil_cache_fn fn;                /* fetch */
    void (*done)(int err, void *ud); /* store, invalidate */
    void *ud;
};

static struct pending *pending_new(struct coil_req *owner)
{
    struct pending *x = owner ? coil_req_alloc(owner, sizeof(*x)) : coil_malloc(sizeof(*x));
    if (x)
        *x = (struct pending){.owned = owner != NULL};
    return x;
}

static struct pending *pending_done(struct coil_req *owner, void (*done)(int, void *), void *ud)
{
    struct pending *x = pending_new(owner);
    if (x) {
        x->done = done;
        x->ud = ud;
    }
    return x;
}

/* prefix + key in buf (of n bytes) or the heap (*heap, to free). */
static struct coil_str redis_key(const struct coil_cache *c, const void *key, size_t klen,
                                 char *buf, size_t n, char **heap)
{
    char *k = c->plen + klen <= n ? buf : (*heap = coil_malloc(c->plen + klen));
    if (!k)
        return (struct coil_str){NULL, 0};
    memcpy(k, c->prefix, c->plen);
    memcpy(k + c->plen, key, klen);
    return (struct coil_str){k, c->plen + klen};
}

static void fetch_reply(const struct coil_redis_reply *r, void *ud)
{
    struct pending x = *(struct pending *)ud;
    if (!x.owned)
        coil_free(ud);
    if (r->error)
        x.fn(r->error, NULL, 0, x.ud);
    else if (r->type == COIL_REDIS_STRING)
        x.fn(0, r->str.ptr, r->str.len, x.ud);
    else if (r->type == COIL_REDIS_NIL)
        x.fn(-ENOENT, NULL, 0, x.ud);
    else
        x.fn(-EPROTO, NULL, 0, x.ud); /* the key holds something else */
}

static void done_reply(const struct coil_redis_reply *r, void *ud)
{
    struct pending x = *(struct pending *)ud;
    if (!x.owned)
        coil_free(ud);
    if (x.done)
        x.done(r->error ? r->error : r->type == COIL_REDIS_ERROR ? -EPROTO : 0, x.ud);
}

/* The TTL left for a value stamped at stamp: ms, or 0 if it is expired already. */
static uint32_t ttl_left(const struct coil_cache *c, uint64_t stamp)
{
    uint64_t now = coil__clock_ns(), end = stamp + (uint64_t)c->o.ttl_ms * 1000000u;
    return end > now ? (uint32_t)((end - now + 999999u) / 1000000u) : 0;
}

/* One GET, SET or DEL for a remote cache; 0 (the reply will call back) or an error. */
static int remote_call(struct coil_req *owner, struct coil_cache *c, char op, const void *key,
                       size_t klen, const void *val, size_t vlen, uint32_t px, struct pending *x)
{
    char buf[256], *heap = NULL;
    struct coil_str k = redis_key(c, key, klen, buf, sizeof(buf), &heap);
    int err = -ENOMEM;
    if (k.ptr) {
        coil_redis_fn fn = op == 'G' ? fetch_reply : x ? done_reply : NULL;
        struct coil_str v = {val, vlen};
        err = op == 'G'   ? coil_redis_get(owner, c->o.redis, k, fn, x)
              : op == 'S' ? coil_redis_set(owner, c->o.redis, k, v, px, fn, x)
                          : coil_redis_del(owner, c->o.redis, k, fn, x);
    }
    coil_free(heap);
    if (err < 0 && x && !x->owned)
        coil_free(x);
    return err;
}
#endif

int coil_cache_fetch(struct coil_req *owner, struct coil_cache *c, const void *key, size_t klen,
                     coil_cache_fn fn, void *ud)
{
    if (!c || !key || !fn || !coil__self)
        return -EINVAL;
    if (!remote(c)) {
        struct coil_str v;
        if (coil_cache_get(c, key, klen, &v))
            fn(0, v.ptr, v.len, ud);
        else
            fn(-ENOENT, NULL, 0, ud);
        return 0;
    }
#ifdef COIL_HAVE_REDIS
    struct pending *x = pending_new(owner);
    if (!x)
        return -ENOMEM;
    x->fn = fn;
    x->ud = ud;
    return remote_call(owner, c, 'G', key, klen, NULL, 0, 0, x);
#else
    return -EINVAL;
#endif
}

int coil_cache_store(struct coil_req *owner, struct coil_cache *c, const void *key, size_t klen,
                     const void *val, size_t vlen, uint64_t stamp, void (*done)(int err, void *ud),
                     void *ud)
{
    if (!c || !key || (vlen && !val) || !coil__self)
        return -EINVAL;
    if (!remote(c)) {
        int err = coil_cache_put(c, key, klen, val, vlen, stamp);
        if (err < 0)
            return err;
        if (done)
            done(0, ud);
        return 0;
    }
#ifdef COIL_HAVE_REDIS
    uint32_t px = ttl_left(c, stamp ? stamp : coil__clock_ns());
    if (!px)
        return -ESTALE;
    struct pending *x = NULL;
    if (done && !(x = pending_done(owner, done, ud)))
        return -ENOMEM;
    return remote_call(owner, c, 'S', key, klen, val, vlen, px, x);
#else
    return -EINVAL;
#endif
}

/* ---- invalidation across workers -------------------------------------------------------- */

struct inval_msg {
    struct coil_cache *c;
    uint64_t at; /* coil__clock_ns() when the key was invalidated */
    char key[];
};

struct inval {
    unsigned left;
    int err;
    bool owned; /* in the owner's memory, else coil_malloc'd */
    void (*done)(int err, void *ud);
    void *ud;
};

static void inval_here(void *payload, size_t len, struct coil_reply *reply)
{
    struct inval_msg *m = payload;
    struct shard *s = shard_of(m->c);
    if (s)
        put_here(m->c, s, m->key, len - sizeof(*m), NULL, 0, m->at, true);
    coil_reply(reply, NULL, 0);
}

static void inval_step(struct inval *iv, int err)
{
    if (err < 0 && !iv->err)
        iv->err = err;
    if (--iv->left)
        return;
    void (*done)(int, void *) = iv->done;
    void *ud = iv->ud;
    int e = iv->err;
    if (!iv->owned)
        coil_free(iv);
    if (done)
        done(e, ud);
}

static void inval_reply(int err, const void *data, size_t len, void *ud)
{
    (void)data;
    (void)len;
    inval_step(ud, err);
}

int coil_cache_invalidate(struct coil_req *owner, struct coil_cache *c, const void *key,
                          size_t klen, void (*done)(int err, void *ud), void *ud)
{
#ifdef COIL_HAVE_REDIS
    if (c && remote(c) && key && coil__self) {
        struct pending *x = NULL;
        if (done && !(x = pending_done(owner, done, ud)))
            return -ENOMEM;
        return remote_call(owner, c, 'D', key, klen, NULL, 0, 0, x);
    }
#endif
    struct shard *s = shard_of(c);
    if (!s || !key)
        return -EINVAL;
    uint64_t at = coil__clock_ns();
    put_here(c, s, key, klen, NULL, 0, at, true); /* -ENOMEM: the entry is dropped at least */
    unsigned me = coil__self->id, n = c->nworkers;
    struct inval *iv = owner ? coil_req_alloc(owner, sizeof(*iv)) : coil_malloc(sizeof(*iv));
    if (!iv)
        return -ENOMEM;
    *iv = (struct inval){.left = 1, .owned = owner != NULL, .done = done, .ud = ud};
    size_t size = sizeof(struct inval_msg) + klen;
    struct inval_msg *m = coil_malloc(size);
    if (!m) {
        if (!iv->owned)
            coil_free(iv);
        return -ENOMEM;
    }
    m->c = c;
    m->at = at;
    memcpy(m->key, key, klen);
    for (unsigned i = 0; i < n; i++) {
        if (i == me)
            continue;
        iv->left++;
        int err = coil_job_call(owner, i, inval_here, m, size, inval_reply, iv);
        if (err < 0) {
            iv->left--;
            if (!iv->err)
                iv->err = err; /* that worker keeps the entry until it expires */
        }
    }
    coil_free(m);
    inval_step(iv, 0); /* the caller's own share: done runs now if no reply is due */
    return 0;
}

/* ---- set-up ----------------------------------------------------------------------------- */

static int cache_run(void *ud)
{
    struct coil_cache *c = ud;
    c->nworkers = coil_worker_count();
    c->shards = calloc(c->nworkers, sizeof(*c->shards));
    return c->shards ? 0 : -1;
}

static void cache_done(void *ud)
{
    struct coil_cache *c = ud;
    free(c->shards);
    free(c->prefix);
    free(c);
}

static void cache_start(unsigned worker, void *ud)
{
    struct coil_cache *c = ud;
    struct shard *s = coil_malloc(sizeof(*s));
    if (s)
        memset(s, 0, sizeof(*s));
    else
        coil__log("worker %u: cache: out of memory (every lookup misses)", worker);
    c->shards[worker] = s;
}

static void cache_stop(unsigned worker, void *ud)
{
    struct coil_cache *c = ud;
    struct shard *s = c->shards[worker];
    if (!s)
        return;
    for (struct entry *e = s->head, *next; e; e = next) {
        next = e->next;
        coil_free(e);
    }
    coil_free(s->buckets);
    coil_free(s);
    c->shards[worker] = NULL;
}

struct coil_cache *coil_cache_create(struct coil_app *app, const struct coil_cache_opts *opts)
{
    if (!app)
        return NULL;
    struct coil_cache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    if (opts)
        c->o = *opts;
    if (!c->o.ttl_ms)
        c->o.ttl_ms = 1000;
    if (!c->o.max_entries)
        c->o.max_entries = 65536;
    if (!c->o.max_bytes)
        c->o.max_bytes = 64u << 20;
    c->prefix = strdup(c->o.prefix ? c->o.prefix : "");
    if (!c->prefix) {
        free(c);
        return NULL;
    }
    c->plen = strlen(c->prefix);
    c->o.prefix = NULL;
    if (coil_app_on_run(app, cache_run, cache_done, c) < 0) {
        free(c->prefix);
        free(c);
        return NULL;
    }
    if (coil_app_on_worker(app, cache_start, cache_stop, c) < 0)
        return NULL; /* the run hook owns c now and frees it */
    return c;
}
