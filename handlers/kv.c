/* SPDX-License-Identifier: MIT */
/*
 * kv.c: a replicated in-memory key-value store, the demo of background jobs.
 *
 * Every worker keeps its own copy (a hash map in its own heap), so reads never leave the core.
 * A write applies to the local copy and is broadcast to every other worker as a job that
 * applies it there. Each write carries a version from one process-wide counter; a copy applies
 * a change only if it is newer than what it holds for that key (deletes leave a versioned
 * tombstone), so copies converge to the same value whatever order the jobs arrive in. If a
 * channel is full the write answers 503: the caller learns the change did not reach every copy.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "handlers.h"

#define KV_MAX_KEY 256

struct kv_entry {
    struct kv_entry *next;
    uint64_t version;
    uint64_t hash;
    uint32_t klen;
    uint32_t vlen;
    bool tomb;   /* deleted at `version` */
    char data[]; /* key, then value */
};

struct kv_map {
    _Alignas(64) struct kv_entry **buckets; /* one cache line per worker's map */
    size_t nbuckets;                        /* power of two */
    size_t count;
};

/* A change as it travels in a job payload. */
struct kv_change {
    uint64_t version;
    uint32_t klen;
    uint32_t vlen;
    bool tomb;
    char data[];
};

static struct kv_map *maps;       /* one per worker, indexed by worker id */
static _Atomic uint64_t kv_clock; /* version source, shared by all workers */

static uint64_t hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static struct kv_entry **slot(struct kv_map *m, const char *k, size_t n, uint64_t h)
{
    struct kv_entry **p = &m->buckets[h & (m->nbuckets - 1)];
    while (*p && !((*p)->hash == h && (*p)->klen == n && !memcmp((*p)->data, k, n)))
        p = &(*p)->next;
    return p;
}

static int grow(struct kv_map *m)
{
    size_t nb = m->nbuckets * 2;
    struct kv_entry **b = coil_malloc(nb * sizeof(*b));
    if (!b)
        return -ENOMEM;
    memset(b, 0, nb * sizeof(*b));
    for (size_t i = 0; i < m->nbuckets; i++) {
        for (struct kv_entry *e = m->buckets[i], *n; e; e = n) {
            n = e->next;
            e->next = b[e->hash & (nb - 1)];
            b[e->hash & (nb - 1)] = e;
        }
    }
    coil_free(m->buckets);
    m->buckets = b;
    m->nbuckets = nb;
    return 0;
}

/* Applies a change to this worker's copy if it is newer. */
static int apply(struct kv_map *m, const struct kv_change *c)
{
    const char *key = c->data;
    uint64_t h = hash(key, c->klen);
    struct kv_entry **p = slot(m, key, c->klen, h);
    if (*p && (*p)->version >= c->version)
        return 0; /* we already hold a newer change */
    struct kv_entry *e = coil_malloc(sizeof(*e) + c->klen + c->vlen);
    if (!e)
        return -ENOMEM;
    *e = (struct kv_entry){NULL, c->version, h, c->klen, c->vlen, c->tomb};
    memcpy(e->data, c->data, (size_t)c->klen + c->vlen);
    if (*p) {
        e->next = (*p)->next;
        coil_free(*p);
    } else {
        m->count++;
    }
    *p = e;
    if (m->count > 2 * m->nbuckets)
        grow(m); /* on failure the map stays correct, only slower */
    return 0;
}

static void on_change(void *payload, size_t len, unsigned worker)
{
    apply(&maps[worker], payload);
}

static void on_start(unsigned worker, void *ud)
{
    struct kv_map *m = &maps[worker];
    m->nbuckets = 64;
    m->count = 0;
    m->buckets = coil_malloc(m->nbuckets * sizeof(*m->buckets));
    if (m->buckets)
        memset(m->buckets, 0, m->nbuckets * sizeof(*m->buckets));
    else
        m->nbuckets = 0;
}

static void on_stop(unsigned worker, void *ud)
{
    struct kv_map *m = &maps[worker];
    for (size_t i = 0; i < m->nbuckets; i++)
        for (struct kv_entry *e = m->buckets[i], *n; e; e = n) {
            n = e->next;
            coil_free(e);
        }
    coil_free(m->buckets);
    m->buckets = NULL;
}

static int worker_header(struct coil_res *res)
{
    char id[16];
    snprintf(id, sizeof(id), "%u", coil_worker_id());
    return coil_res_header(res, "X-Coil-Worker", id);
}

/* Applies locally and broadcasts; answers 204, or 503 if a copy could not be reached. */
static int write_change(struct coil_req *req, struct coil_res *res, struct coil_str key,
                        struct coil_str val, bool tomb)
{
    size_t len = sizeof(struct kv_change) + key.len + val.len;
    struct kv_change *c = coil_req_alloc(req, len);
    if (!c)
        return -ENOMEM;
    c->version = atomic_fetch_add(&kv_clock, 1) + 1;
    c->klen = (uint32_t)key.len;
    c->vlen = (uint32_t)val.len;
    c->tomb = tomb;
    memcpy(c->data, key.ptr, key.len);
    if (val.len)
        memcpy(c->data + key.len, val.ptr, val.len);
    int err = apply(&maps[coil_worker_id()], c);
    if (err < 0)
        return err;
    int refused = coil_job_broadcast(on_change, c, len);
    if (refused != 0)
        return coil_res_text(res, 503, "text/plain", "replication queue full\n");
    coil_res_status(res, 204);
    return 0;
}

static int key_of(struct coil_req *req, struct coil_res *res, struct coil_str *key)
{
    *key = coil_req_param(req, "key");
    if (key->len == 0 || key->len > KV_MAX_KEY) {
        coil_res_text(res, 400, "text/plain", "key must be 1-256 bytes\n");
        return -1;
    }
    return 0;
}

static int kv_put(struct coil_req *req, struct coil_res *res, void *ud)
{
    struct coil_str key;
    worker_header(res);
    if (key_of(req, res, &key) < 0)
        return 0;
    return write_change(req, res, key, coil_req_body(req), false);
}

static struct kv_entry *lookup(struct coil_str key)
{
    struct kv_map *m = &maps[coil_worker_id()];
    if (!m->nbuckets)
        return NULL;
    struct kv_entry *e = *slot(m, key.ptr, key.len, hash(key.ptr, key.len));
    return e && !e->tomb ? e : NULL;
}

static int kv_get(struct coil_req *req, struct coil_res *res, void *ud)
{
    struct coil_str key;
    worker_header(res);
    if (key_of(req, res, &key) < 0)
        return 0;
    struct kv_entry *e = lookup(key);
    if (!e)
        return coil_res_text(res, 404, "text/plain", "no such key\n");
    coil_res_header(res, "Content-Type", "application/octet-stream");
    return coil_res_body(res, e->data + e->klen, e->vlen);
}

static int kv_delete(struct coil_req *req, struct coil_res *res, void *ud)
{
    struct coil_str key;
    worker_header(res);
    if (key_of(req, res, &key) < 0)
        return 0;
    if (!lookup(key))
        return coil_res_text(res, 404, "text/plain", "no such key\n");
    struct coil_str none = {"", 0};
    return write_change(req, res, key, none, true);
}

int kv_routes(struct coil_app *app)
{
    /* Sized for the largest worker count the engine accepts (--workers is at most 1024). */
    static struct kv_map storage[1024];
    maps = storage;
    int err = 0;
    err |= coil_route(app, "PUT", "/kv/:key", kv_put, NULL);
    err |= coil_route(app, "GET", "/kv/:key", kv_get, NULL);
    err |= coil_route(app, "DELETE", "/kv/:key", kv_delete, NULL);
    err |= coil_app_on_worker(app, on_start, on_stop, NULL);
    return err ? -1 : 0;
}
