/* SPDX-License-Identifier: MIT */
/*
 * cacheapp: a small user program that drives coil_cache (coil.h) and, when libcoil has hiredis
 * (COIL_HAVE_REDIS), the Redis client (coil_redis.h) from handlers, for the integration tests
 * test_cache.py and test_redis.py.
 *
 * Its own flags are taken out of argv in main(), before coil_app_create sees the rest (the
 * options structs are needed before coil_app_run): each as "--flag VALUE", anywhere on the
 * command line, not read from the environment nor listed by --help. A bad value exits 2.
 *   --ttl-cache-ms N         ttl_ms of the cache "ttl" [300]
 *   --redis-timeout-ms N     coil_redis_opts.timeout_ms          (0: the engine's default)
 *   --redis-connect-ms N     coil_redis_opts.connect_timeout_ms
 *   --redis-max-pending N    coil_redis_opts.max_pending
 *   --redis-gate 0|1         coil_redis_gate: coil_ready (GET /readyz) waits for Redis
 * The engine's own --redis-url URL [COIL_REDIS_URL, else REDIS_URL] is added by coil_redis_open;
 * without it the Redis routes answer 503 {"rc": "ENOTCONN"} (not configured).
 * Every other argument (--workers, --handler-timeout, ...) is the engine's.
 *
 * Every response carries X-Worker: the index of the worker that answered it.
 *
 * Caches (coil_cache_create), chosen with ?c=NAME (default main; "remote" is on Redis, keys
 * "t:KEY", with hiredis; GET /cache/:key/fetch and POST /cache/:key/store use coil_cache_fetch
 * and coil_cache_store, answering from their callbacks):
 *   main   ttl 60 s, default bounds, not replicated
 *   repl   ttl 60 s, default bounds, replicate
 *   small  ttl 60 s, max_entries 4, max_bytes 1024, not replicated
 *   ttl    ttl --ttl-cache-ms, default bounds, not replicated
 *
 * Cache routes (":key" is percent-decoded, so a key may hold any byte):
 *   GET  /worker          {"worker": coil_worker_id(), "workers": coil_worker_count()}
 *   GET  /stamp           coil_cache_stamp() in decimal, text/plain
 *   PUT  /cache/:key?c=&stamp=now|N   coil_cache_put(body) with stamp 0 (now, the default) or
 *        N (a number from /stamp, possibly adjusted by the test). Answers the return code:
 *        200 for 0, 409 for -ESTALE, 413 for -E2BIG, 500 otherwise, with the JSON body
 *        {"rc": 0 or the errno name, "worker": W}.
 *   GET  /cache/:key?c=   a hit: 200, the value as the body (application/octet-stream);
 *        a miss: 404 {"miss": true, "worker": W}
 *   DELETE /cache/:key?c=&owner=1|0   coil_cache_invalidate; the answer is sent from done (so
 *        after every worker dropped the key): 200 {"err": 0 or errno name, "sync": done ran
 *        before coil_cache_invalidate returned, "worker": W}. owner=0 (default 1) passes no
 *        owner request: done then finds the response through its coil_defer handle. When
 *        coil_cache_invalidate itself fails: 500 {"rc": errno name}.
 *
 * Redis routes (with owner request unless said; replies as JSON, below):
 *   GET    /redis/get/:key          GET key (coil_redis_get)
 *   PUT    /redis/set/:key?px=N     SET key <body> [PX N] (coil_redis_set; px 0 or absent: none)
 *   DELETE /redis/del/:key          DEL key (coil_redis_del)
 *   GET    /redis/cmd?a0=&a1=...    any command, argv from a0, a1, ... (percent-decoded, so
 *                                   binary-safe, at most 128); ?owner=0: no owner request (the
 *                                   reply finds the response through its coil_defer handle);
 *                                   ?fire=1: no owner and no callback (fn NULL), answered 202
 *                                   {"rc": 0} at once
 *   POST   /redis/cmd               the same with argv as the lines of the body ('\n'-separated)
 *   GET    /redis/slow?ms=N&then=K  EVAL of a Lua script that busy-loops N ms on the server
 *                                   (redis.call('TIME')), then K PINGs sent right behind it from
 *                                   the same handler; answered once every one has its reply
 *   GET    /redis/burst?n=N&cmd=C   N commands C (PING, or INCR of key "burst") sent from one
 *                                   handler; answered once every one sent has its reply
 *   GET    /redis/state             {"configured": coil_redis_configured, "ready": ...ready}
 *   GET    /readyz                  200 "ready" when coil_ready(), else 503 "not ready"
 * One reply: 200 when Redis answered (whatever the type, an error reply included), 502 when the
 * command failed after it was sent (error set), 503 when coil_redis_command failed at once with
 * -ENOTCONN or -EBUSY, 500 for another immediate failure. Body:
 *   {"rc": 0 or the immediate errno name, "worker": W, then, once a reply came:
 *    "error": null or the errno name (ECONNRESET, ETIMEDOUT, ...), "message": its text (only
 *    with an error), "type": "nil"|"string"|"status"|"integer"|"array"|"error",
 *    "str", "len" and "hex" (of the first 256 bytes) for a string, status or error,
 *    "integer", "elements": [replies] (array)}
 * slow and burst answer 200 {"sync": [errno names of the commands that failed at once],
 * "replies": [reply objects, in the order sent], "worker": W}.
 *
 *   GET /stats  {"requests", "connections", "open", "deferred", "waiting", "aborted" (the
 *        engine's), "aborts" (on_abort calls), "replies" (Redis callbacks run), "gone" (no-owner
 *        replies or invalidations that found their request gone), "late" (a callback run for a
 *        request that was finished or aborted: must stay 0), "workers"}
 * On exit main prints "cacheapp: exit status=S late=L" to stderr.
 */
#include <coil.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef COIL_HAVE_REDIS
#include <coil_redis.h>
#endif

/* ---- own flags ------------------------------------------------------------------------------- */

static uint32_t ttl_cache_ms = 300;
static uint32_t redis_timeout_ms, redis_connect_ms, redis_max_pending, redis_gate;

static const struct {
    const char *name;
    uint32_t *field;
} own_flags[] = {
    {"--ttl-cache-ms", &ttl_cache_ms},
    {"--redis-timeout-ms", &redis_timeout_ms},
    {"--redis-connect-ms", &redis_connect_ms},
    {"--redis-max-pending", &redis_max_pending},
    {"--redis-gate", &redis_gate},
};
#define NUM_OWN (sizeof(own_flags) / sizeof(own_flags[0]))

static int take_own_flags(int argc, char **argv)
{
    int out = 1;
    for (int i = 1; i < argc; i++) {
        size_t k = 0;
        while (k < NUM_OWN && strcmp(argv[i], own_flags[k].name))
            k++;
        if (k == NUM_OWN) {
            argv[out++] = argv[i];
            continue;
        }
        const char *v = i + 1 < argc ? argv[++i] : "";
        char *end;
        unsigned long n = strtoul(v, &end, 10);
        if (!*v || *end || *v == '-' || n > UINT32_MAX) {
            fprintf(stderr, "cacheapp: %s: expected a number, got '%s'\n", own_flags[k].name, v);
            exit(2);
        }
        *own_flags[k].field = (uint32_t)n;
    }
    argv[out] = NULL;
    return out;
}

/* ---- shared helpers -------------------------------------------------------------------------- */

static atomic_ulong aborts, replies, gone, late;

static const char *errno_name(int err)
{
    switch (err < 0 ? -err : err) {
    case 0:
        return "0";
    case ESTALE:
        return "ESTALE";
    case E2BIG:
        return "E2BIG";
    case ENOMEM:
        return "ENOMEM";
    case EINVAL:
        return "EINVAL";
    case EAGAIN:
        return "EAGAIN";
    case ENOTCONN:
        return "ENOTCONN";
    case EBUSY:
        return "EBUSY";
    case ETIMEDOUT:
        return "ETIMEDOUT";
    case ECONNRESET:
        return "ECONNRESET";
    case ESHUTDOWN:
        return "ESHUTDOWN";
    case ENOENT:
        return "ENOENT";
    case ESRCH:
        return "ESRCH";
    default:
        return "E?";
    }
}

/* {"rc": ...} as 0 or a name */
static void json_rc(struct coil_json *j, int rc)
{
    coil_json_key(j, "rc");
    if (rc == 0)
        coil_json_int(j, 0);
    else
        coil_json_string(j, errno_name(rc));
}

static void json_worker(struct coil_json *j)
{
    coil_json_key(j, "worker");
    coil_json_uint(j, coil_worker_id());
}

static void tag_worker(struct coil_res *res)
{
    char w[16];
    snprintf(w, sizeof(w), "%u", coil_worker_id());
    coil_res_header(res, "X-Worker", w);
}

static void count_abort(void *ud)
{
    (void)ud;
    atomic_fetch_add(&aborts, 1);
}

/* ---- caches ---------------------------------------------------------------------------------- */

static struct coil_cache *c_main, *c_repl, *c_small, *c_ttl;
static struct coil_cache *c_remote; /* on Redis (prefix "t:"), when built with hiredis */

/* The cache named by ?c=, or NULL (400 answered). */
static struct coil_cache *which(struct coil_req *req, struct coil_res *res)
{
    struct coil_str n;
    int r = coil_req_query_param(req, "c", &n);
    if (r == 0 || (n.len == 4 && !memcmp(n.ptr, "main", 4)))
        return c_main;
    if (r > 0 && n.len == 4 && !memcmp(n.ptr, "repl", 4))
        return c_repl;
    if (r > 0 && n.len == 5 && !memcmp(n.ptr, "small", 5))
        return c_small;
    if (r > 0 && n.len == 3 && !memcmp(n.ptr, "ttl", 3))
        return c_ttl;
    if (r > 0 && n.len == 6 && !memcmp(n.ptr, "remote", 6) && c_remote)
        return c_remote;
    coil_res_text(res, 400, "text/plain", "c: main, repl, small, ttl or remote\n");
    return NULL;
}

static int worker_route(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)req;
    (void)ud;
    tag_worker(res);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    json_worker(j);
    coil_json_key(j, "workers");
    coil_json_uint(j, coil_worker_count());
    coil_json_object_close(j);
    return 0;
}

static int stamp_route(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)req;
    (void)ud;
    char t[32];
    snprintf(t, sizeof(t), "%" PRIu64 "\n", coil_cache_stamp());
    tag_worker(res);
    return coil_res_text(res, 200, "text/plain", t);
}

static int cache_put(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    tag_worker(res);
    struct coil_cache *c = which(req, res);
    if (!c)
        return 0;
    uint64_t stamp = 0;
    struct coil_str s;
    if (coil_req_query_param(req, "stamp", &s) > 0 && !(s.len == 3 && !memcmp(s.ptr, "now", 3))) {
        char buf[32];
        char *end;
        if (s.len == 0 || s.len >= sizeof(buf))
            return coil_res_text(res, 400, "text/plain", "stamp: now or a number\n");
        memcpy(buf, s.ptr, s.len);
        buf[s.len] = 0;
        stamp = strtoull(buf, &end, 10);
        if (*end || !stamp || buf[0] < '0' || buf[0] > '9')
            return coil_res_text(res, 400, "text/plain", "stamp: now or a number\n");
    }
    struct coil_str key = coil_req_param(req, "key"), body = coil_req_body(req);
    int rc = coil_cache_put(c, key.ptr, key.len, body.ptr ? body.ptr : "", body.len, stamp);
    coil_res_status(res, rc == 0 ? 200 : rc == -ESTALE ? 409 : rc == -E2BIG ? 413 : 500);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    json_rc(j, rc);
    json_worker(j);
    coil_json_object_close(j);
    return 0;
}

static int cache_get(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    tag_worker(res);
    struct coil_cache *c = which(req, res);
    if (!c)
        return 0;
    struct coil_str key = coil_req_param(req, "key"), v;
    if (coil_cache_get(c, key.ptr, key.len, &v)) {
        coil_res_header(res, "Content-Type", "application/octet-stream");
        return coil_res_body(res, v.ptr, v.len);
    }
    coil_res_status(res, 404);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    coil_json_key(j, "miss");
    coil_json_bool(j, true);
    json_worker(j);
    coil_json_object_close(j);
    return 0;
}

/* An invalidation in flight. With an owner it lives in the request's memory; without one on
 * the worker's heap, freed by done. */
struct inval_call {
    struct coil_defer d;
    struct coil_res *res; /* with an owner */
    bool owned;
    bool returned; /* coil_cache_invalidate has returned */
};

static void inval_done(int err, void *ud)
{
    struct inval_call *ic = ud;
    struct coil_res *res = coil_defer_res(ic->d);
    bool sync = !ic->returned;
    if (!res || (ic->owned && res != ic->res)) {
        if (ic->owned)
            atomic_fetch_add(&late, 1); /* the owner's end should have dropped done */
        else
            atomic_fetch_add(&gone, 1);
        if (!ic->owned)
            coil_free(ic);
        return;
    }
    if (!ic->owned)
        coil_free(ic);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    coil_json_key(j, "err");
    if (err)
        coil_json_string(j, errno_name(err));
    else
        coil_json_int(j, 0);
    coil_json_key(j, "sync");
    coil_json_bool(j, sync);
    json_worker(j);
    coil_json_object_close(j);
    coil_res_finish(res);
}

/* A deferred call that failed at once: 503 {"rc": NAME}. */
static void refused(struct coil_res *res, int rc)
{
    coil_res_status(res, 503);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    json_rc(j, rc);
    json_worker(j);
    coil_json_object_close(j);
    coil_res_finish(res);
}

/* The cache of ?c= for a route that answers from a callback: deferred, or NULL with *rc the
 * handler's return (0: 400 answered; -ENOMEM). */
static struct coil_cache *deferred_on(struct coil_req *req, struct coil_res *res, int *rc)
{
    tag_worker(res);
    struct coil_cache *c = which(req, res);
    if (c && !coil_res_defer(res, count_abort, NULL).id) {
        *rc = -ENOMEM;
        return NULL;
    }
    return c;
}

/* GET /cache/:key/fetch: coil_cache_fetch (deferred): the value, or 404 {"err": NAME}. */
static void fetched(int err, const void *value, size_t len, void *ud)
{
    struct coil_res *res = ud;
    if (err == 0) {
        coil_res_header(res, "Content-Type", "application/octet-stream");
        coil_res_body(res, value, len);
    } else {
        coil_res_status(res, err == -ENOENT ? 404 : 502);
        struct coil_json *j = coil_res_json(res);
        coil_json_object_open(j);
        coil_json_key(j, "err");
        coil_json_string(j, errno_name(err));
        json_worker(j);
        coil_json_object_close(j);
    }
    coil_res_finish(res);
}

static int cache_fetch(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    int rc = 0;
    struct coil_cache *c = deferred_on(req, res, &rc);
    if (!c)
        return rc;
    struct coil_str key = coil_req_param(req, "key");
    rc = coil_cache_fetch(req, c, key.ptr ? key.ptr : "", key.len, fetched, res);
    if (rc < 0)
        refused(res, rc);
    return 0;
}

/* POST /cache/:key/store: coil_cache_store, answered from its done: {"err": 0 or NAME}. */
static void store_done(int err, void *ud)
{
    struct coil_res *res = ud;
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    coil_json_key(j, "err");
    if (err)
        coil_json_string(j, errno_name(err));
    else
        coil_json_int(j, 0);
    json_worker(j);
    coil_json_object_close(j);
    coil_res_finish(res);
}

static int cache_store(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    int rc = 0;
    struct coil_cache *c = deferred_on(req, res, &rc);
    if (!c)
        return rc;
    struct coil_str key = coil_req_param(req, "key"), body = coil_req_body(req);
    rc = coil_cache_store(req, c, key.ptr ? key.ptr : "", key.len, body.ptr ? body.ptr : "",
                          body.len, 0, store_done, res);
    if (rc < 0)
        refused(res, rc);
    return 0;
}

static int cache_delete(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    tag_worker(res);
    struct coil_cache *c = which(req, res);
    if (!c)
        return 0;
    struct coil_str o;
    bool owned = !(coil_req_query_param(req, "owner", &o) > 0 && o.len == 1 && o.ptr[0] == '0');
    struct coil_defer d = coil_res_defer(res, count_abort, NULL);
    if (!d.id)
        return -ENOMEM;
    struct inval_call *ic = owned ? coil_req_alloc(req, sizeof(*ic)) : coil_malloc(sizeof(*ic));
    if (!ic)
        return -ENOMEM;
    *ic = (struct inval_call){.d = d, .res = res, .owned = owned};
    struct coil_str key = coil_req_param(req, "key"); /* after the defer: the request's copy */
    int rc = coil_cache_invalidate(owned ? req : NULL, c, key.ptr ? key.ptr : "", key.len,
                                   inval_done, ic);
    if (rc < 0) {
        if (!owned)
            coil_free(ic);
        coil_res_status(res, 500);
        struct coil_json *j = coil_res_json(res);
        coil_json_object_open(j);
        json_rc(j, rc);
        json_worker(j);
        coil_json_object_close(j);
        coil_res_finish(res);
        return 0;
    }
    /* done may have run (and freed a heap ic) already: only touch ic if it has not */
    if (coil_defer_res(d))
        ic->returned = true;
    return 0;
}

/* ---- Redis ----------------------------------------------------------------------------------- */

#ifdef COIL_HAVE_REDIS
static struct coil_redis *rds;

/* A deferred response with the worker tag; NULL-handle on failure. */
static struct coil_defer defer(struct coil_res *res)
{
    tag_worker(res);
    return coil_res_defer(res, count_abort, NULL);
}

static const char *type_name(enum coil_redis_type t)
{
    switch (t) {
    case COIL_REDIS_NIL:
        return "nil";
    case COIL_REDIS_STRING:
        return "string";
    case COIL_REDIS_STATUS:
        return "status";
    case COIL_REDIS_INTEGER:
        return "integer";
    case COIL_REDIS_ARRAY:
        return "array";
    case COIL_REDIS_ERROR:
        return "error";
    }
    return "?";
}

/* The fields of a reply (inside an open object). */
static void reply_fields(struct coil_json *j, const struct coil_redis_reply *r, int depth)
{
    coil_json_key(j, "error");
    if (r->error) {
        coil_json_string(j, errno_name(r->error));
        coil_json_key(j, "message");
        coil_json_string(j, r->message ? r->message : "(null)");
        return;
    }
    coil_json_null(j);
    coil_json_key(j, "type");
    coil_json_string(j, type_name(r->type));
    switch (r->type) {
    case COIL_REDIS_STRING:
    case COIL_REDIS_STATUS:
    case COIL_REDIS_ERROR: {
        coil_json_key(j, "str");
        coil_json_stringn(j, r->str.ptr ? r->str.ptr : "", r->str.len);
        coil_json_key(j, "len");
        coil_json_uint(j, r->str.len);
        coil_json_key(j, "hex"); /* of the first 256 bytes */
        static const char digits[] = "0123456789abcdef";
        char buf[512];
        size_t n = r->str.len < sizeof(buf) / 2 ? r->str.len : sizeof(buf) / 2;
        for (size_t i = 0; i < n; i++) {
            unsigned char b = (unsigned char)r->str.ptr[i];
            buf[2 * i] = digits[b >> 4];
            buf[2 * i + 1] = digits[b & 15];
        }
        coil_json_stringn(j, buf, 2 * n);
        break;
    }
    case COIL_REDIS_INTEGER:
        coil_json_key(j, "integer");
        coil_json_int(j, r->integer);
        break;
    case COIL_REDIS_ARRAY:
        coil_json_key(j, "elements");
        coil_json_array_open(j);
        for (size_t i = 0; i < r->nelements && depth < 8; i++) {
            coil_json_object_open(j);
            reply_fields(j, &r->elements[i], depth + 1);
            coil_json_object_close(j);
        }
        coil_json_array_close(j);
        break;
    case COIL_REDIS_NIL:
        break;
    }
}

/* One command in flight for one response. */
struct one {
    struct coil_defer d;
    struct coil_res *res;
    bool owned;
};

static void one_reply(const struct coil_redis_reply *r, void *ud)
{
    struct one *o = ud;
    atomic_fetch_add(&replies, 1);
    struct coil_res *res = coil_defer_res(o->d);
    if (!res || (o->owned && res != o->res)) {
        atomic_fetch_add(o->owned ? &late : &gone, 1);
        if (!o->owned)
            coil_free(o);
        return;
    }
    if (!o->owned)
        coil_free(o);
    coil_res_status(res, r->error ? 502 : 200);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    json_rc(j, 0);
    json_worker(j);
    reply_fields(j, r, 0);
    coil_json_object_close(j);
    coil_res_finish(res);
}

/* Answers an immediate failure of coil_redis_command on a deferred response. */
static void sync_fail(struct coil_res *res, int rc)
{
    coil_res_status(res, rc == -ENOTCONN || rc == -EBUSY ? 503 : 500);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    json_rc(j, rc);
    json_worker(j);
    coil_json_object_close(j);
    coil_res_finish(res);
}

/* Sends argv for a deferred response; owned: the request is the owner. */
static void send_one(struct coil_req *req, struct coil_res *res, struct coil_defer d, bool owned,
                     int argc, const struct coil_str *argv)
{
    struct one *o = owned ? coil_req_alloc(req, sizeof(*o)) : coil_malloc(sizeof(*o));
    if (!o) {
        sync_fail(res, -ENOMEM);
        return;
    }
    *o = (struct one){.d = d, .res = res, .owned = owned};
    int rc = coil_redis_command(owned ? req : NULL, rds, argc, argv, one_reply, o);
    if (rc < 0) {
        if (!owned)
            coil_free(o);
        sync_fail(res, rc);
    }
}

static int redis_get(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    struct coil_defer d = defer(res);
    if (!d.id)
        return -ENOMEM;
    struct one *o = coil_req_alloc(req, sizeof(*o));
    if (!o)
        return -ENOMEM;
    *o = (struct one){.d = d, .res = res, .owned = true};
    int rc = coil_redis_get(req, rds, coil_req_param(req, "key"), one_reply, o);
    if (rc < 0)
        sync_fail(res, rc);
    return 0;
}

static int redis_set(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    struct coil_defer d = defer(res);
    if (!d.id)
        return -ENOMEM;
    uint32_t px = 0;
    struct coil_str p;
    if (coil_req_query_param(req, "px", &p) > 0) {
        char buf[16];
        char *end;
        if (!p.len || p.len >= sizeof(buf)) {
            coil_res_fail(res, 400);
            return 0;
        }
        memcpy(buf, p.ptr, p.len);
        buf[p.len] = 0;
        unsigned long v = strtoul(buf, &end, 10);
        if (*end || v > UINT32_MAX) {
            coil_res_fail(res, 400);
            return 0;
        }
        px = (uint32_t)v;
    }
    struct one *o = coil_req_alloc(req, sizeof(*o));
    if (!o)
        return -ENOMEM;
    *o = (struct one){.d = d, .res = res, .owned = true};
    struct coil_str body = coil_req_body(req);
    if (!body.ptr)
        body.ptr = "";
    int rc = coil_redis_set(req, rds, coil_req_param(req, "key"), body, px, one_reply, o);
    if (rc < 0)
        sync_fail(res, rc);
    return 0;
}

static int redis_del(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    struct coil_defer d = defer(res);
    if (!d.id)
        return -ENOMEM;
    struct one *o = coil_req_alloc(req, sizeof(*o));
    if (!o)
        return -ENOMEM;
    *o = (struct one){.d = d, .res = res, .owned = true};
    int rc = coil_redis_del(req, rds, coil_req_param(req, "key"), one_reply, o);
    if (rc < 0)
        sync_fail(res, rc);
    return 0;
}

#define MAX_ARGS 128

static bool flag_is(struct coil_req *req, const char *name, char v)
{
    struct coil_str s;
    return coil_req_query_param(req, name, &s) > 0 && s.len == 1 && s.ptr[0] == v;
}

/* argv from a0, a1, ... or from the body's lines; the count, or -1 (400 answered). */
static int gather_args(struct coil_req *req, struct coil_res *res, struct coil_str *argv)
{
    int n = 0;
    struct coil_str m = coil_req_method(req);
    if (m.len == 4 && !memcmp(m.ptr, "POST", 4)) {
        struct coil_str b = coil_req_body(req);
        size_t i = 0;
        while (b.len && i <= b.len && n < MAX_ARGS) {
            const char *nl = memchr(b.ptr + i, '\n', b.len - i);
            size_t end = nl ? (size_t)(nl - b.ptr) : b.len;
            argv[n++] = (struct coil_str){b.ptr + i, end - i};
            if (!nl)
                break;
            i = end + 1;
            if (i == b.len)
                break; /* a final newline ends the last line */
        }
    } else {
        for (; n < MAX_ARGS; n++) {
            char name[8];
            snprintf(name, sizeof(name), "a%d", n);
            int r = coil_req_query_param(req, name, &argv[n]);
            if (r < 0) {
                coil_res_fail(res, 400);
                return -1;
            }
            if (r == 0)
                break;
        }
    }
    if (n == 0) {
        coil_res_fail(res, 400);
        return -1;
    }
    return n;
}

static int redis_cmd(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    struct coil_defer d = defer(res);
    if (!d.id)
        return -ENOMEM;
    struct coil_str argv[MAX_ARGS];
    int argc = gather_args(req, res, argv);
    if (argc < 0)
        return 0;
    if (flag_is(req, "fire", '1')) {
        int rc = coil_redis_command(NULL, rds, argc, argv, NULL, NULL);
        if (rc < 0) {
            sync_fail(res, rc);
            return 0;
        }
        coil_res_status(res, 202);
        struct coil_json *j = coil_res_json(res);
        coil_json_object_open(j);
        json_rc(j, 0);
        json_worker(j);
        coil_json_object_close(j);
        coil_res_finish(res);
        return 0;
    }
    send_one(req, res, d, !flag_is(req, "owner", '0'), argc, argv);
    return 0;
}

/* Several commands for one response: slow and burst. */
struct multi {
    struct coil_defer d;
    struct coil_res *res;
    struct coil_json *j;
    unsigned left;
};

static void multi_end(struct multi *m)
{
    coil_json_array_close(m->j);
    json_worker(m->j);
    coil_json_object_close(m->j);
    coil_res_finish(m->res);
}

static void multi_reply(const struct coil_redis_reply *r, void *ud)
{
    struct multi *m = ud;
    atomic_fetch_add(&replies, 1);
    if (coil_defer_res(m->d) != m->res || !m->left) {
        atomic_fetch_add(&late, 1);
        return;
    }
    coil_json_object_open(m->j);
    reply_fields(m->j, r, 0);
    coil_json_object_close(m->j);
    if (--m->left == 0)
        multi_end(m);
}

static uint32_t query_u32(struct coil_req *req, const char *name, uint32_t dflt, uint32_t max)
{
    struct coil_str s;
    if (coil_req_query_param(req, name, &s) <= 0 || !s.len || s.len > 10)
        return dflt;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return dflt;
        v = v * 10 + (uint64_t)(s.ptr[i] - '0');
    }
    return v > max ? max : (uint32_t)v;
}

/* Sends cmds[0..n) for one response. */
static int multi_send(struct coil_req *req, struct coil_res *res, struct coil_defer d, unsigned n,
                      int (*argv_of)(unsigned i, struct coil_str *argv, char *scratch, void *ud),
                      void *ud)
{
    struct multi *m = coil_req_alloc(req, sizeof(*m));
    if (!m)
        return -ENOMEM;
    *m = (struct multi){.d = d, .res = res, .j = coil_res_json(res)};
    coil_json_object_open(m->j);
    coil_json_key(m->j, "sync");
    coil_json_array_open(m->j);
    for (unsigned i = 0; i < n; i++) {
        struct coil_str argv[8];
        char scratch[64];
        int argc = argv_of(i, argv, scratch, ud);
        int rc = coil_redis_command(req, rds, argc, argv, multi_reply, m);
        if (rc < 0)
            coil_json_string(m->j, errno_name(rc));
        else
            m->left++;
    }
    coil_json_array_close(m->j);
    coil_json_key(m->j, "replies");
    coil_json_array_open(m->j);
    if (!m->left)
        multi_end(m);
    return 0;
}

static const char busy_lua[] =
    "local t = redis.call('TIME') "
    "local s = t[1] * 1000000 + t[2] "
    "while true do "
    "  local n = redis.call('TIME') "
    "  if n[1] * 1000000 + n[2] - s >= tonumber(ARGV[1]) * 1000 then break end "
    "end "
    "return 1";

static int slow_argv(unsigned i, struct coil_str *argv, char *scratch, void *ud)
{
    if (i == 0) {
        uint32_t ms = *(uint32_t *)ud;
        argv[0] = (struct coil_str){"EVAL", 4};
        argv[1] = (struct coil_str){busy_lua, sizeof(busy_lua) - 1};
        argv[2] = (struct coil_str){"0", 1};
        argv[3] = (struct coil_str){scratch, (size_t)snprintf(scratch, 64, "%u", ms)};
        return 4;
    }
    argv[0] = (struct coil_str){"PING", 4};
    return 1;
}

static int redis_slow(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    struct coil_defer d = defer(res);
    if (!d.id)
        return -ENOMEM;
    uint32_t *ms = coil_req_alloc(req, sizeof(*ms));
    if (!ms)
        return -ENOMEM;
    *ms = query_u32(req, "ms", 1000, 4000); /* below Redis' 5 s busy-script threshold */
    return multi_send(req, res, d, 1 + query_u32(req, "then", 0, 1000), slow_argv, ms);
}

static int burst_argv(unsigned i, struct coil_str *argv, char *scratch, void *ud)
{
    (void)i;
    (void)scratch;
    if (*(bool *)ud) {
        argv[0] = (struct coil_str){"INCR", 4};
        argv[1] = (struct coil_str){"burst", 5};
        return 2;
    }
    argv[0] = (struct coil_str){"PING", 4};
    return 1;
}

static int redis_burst(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    struct coil_defer d = defer(res);
    if (!d.id)
        return -ENOMEM;
    bool *incr = coil_req_alloc(req, sizeof(*incr));
    if (!incr)
        return -ENOMEM;
    struct coil_str c;
    *incr = coil_req_query_param(req, "cmd", &c) > 0 && c.len == 4 && !memcmp(c.ptr, "INCR", 4);
    return multi_send(req, res, d, query_u32(req, "n", 1, 100000), burst_argv, incr);
}

static int redis_state(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)req;
    (void)ud;
    tag_worker(res);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    coil_json_key(j, "configured");
    coil_json_bool(j, coil_redis_configured(rds));
    coil_json_key(j, "ready");
    coil_json_bool(j, coil_redis_ready(rds));
    json_worker(j);
    coil_json_object_close(j);
    return 0;
}
#else /* no hiredis: the Redis routes say so */
static int no_redis(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)req;
    (void)ud;
    tag_worker(res);
    return coil_res_text(res, 501, "text/plain", "built without hiredis\n");
}
#endif

static int readyz(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)req;
    (void)ud;
    tag_worker(res);
    return coil_ready() ? coil_res_text(res, 200, "text/plain", "ready\n")
                        : coil_res_text(res, 503, "text/plain", "not ready\n");
}

static void put_uint(struct coil_json *j, const char *key, uint64_t v)
{
    coil_json_key(j, key);
    coil_json_uint(j, v);
}

static int stats(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)req;
    (void)ud;
    tag_worker(res);
    struct coil_stats s;
    coil_stats_get(&s);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    put_uint(j, "requests", s.requests);
    put_uint(j, "connections", s.connections);
    put_uint(j, "open", s.open);
    put_uint(j, "deferred", s.deferred);
    put_uint(j, "waiting", s.waiting);
    put_uint(j, "aborted", s.aborted);
    put_uint(j, "aborts", atomic_load(&aborts));
    put_uint(j, "replies", atomic_load(&replies));
    put_uint(j, "gone", atomic_load(&gone));
    put_uint(j, "late", atomic_load(&late));
    put_uint(j, "workers", coil_worker_count());
    coil_json_object_close(j);
    return 0;
}

int main(int argc, char **argv)
{
    argc = take_own_flags(argc, argv);
    struct coil_app *app = coil_app_create(argc, argv);
    const uint32_t long_ttl = 60000;
    c_main = coil_cache_create(app, &(struct coil_cache_opts){.ttl_ms = long_ttl});
    c_repl =
        coil_cache_create(app, &(struct coil_cache_opts){.ttl_ms = long_ttl, .replicate = true});
    c_small = coil_cache_create(
        app, &(struct coil_cache_opts){.ttl_ms = long_ttl, .max_entries = 4, .max_bytes = 1024});
    c_ttl = coil_cache_create(app, &(struct coil_cache_opts){.ttl_ms = ttl_cache_ms});
    if (!c_main || !c_repl || !c_small || !c_ttl) {
        fprintf(stderr, "cacheapp: coil_cache_create failed\n");
        return 1;
    }
    int err = 0;
#ifdef COIL_HAVE_REDIS
    struct coil_redis_opts ro = {.timeout_ms = redis_timeout_ms,
                                 .connect_timeout_ms = redis_connect_ms,
                                 .max_pending = redis_max_pending};
    rds = coil_redis_open(app, &ro);
    if (!rds) {
        fprintf(stderr, "cacheapp: coil_redis_open failed\n");
        return 1;
    }
    if (redis_gate)
        coil_redis_gate(rds);
    c_remote = coil_cache_create(
        app, &(struct coil_cache_opts){.ttl_ms = long_ttl, .redis = rds, .prefix = "t:"});
    if (!c_remote) {
        fprintf(stderr, "cacheapp: coil_cache_create (remote) failed\n");
        return 1;
    }
    err |= coil_route(app, "GET", "/redis/get/:key", redis_get, NULL);
    err |= coil_route(app, "PUT", "/redis/set/:key", redis_set, NULL);
    err |= coil_route(app, "DELETE", "/redis/del/:key", redis_del, NULL);
    err |= coil_route(app, "GET", "/redis/cmd", redis_cmd, NULL);
    err |= coil_route(app, "POST", "/redis/cmd", redis_cmd, NULL);
    err |= coil_route(app, "GET", "/redis/slow", redis_slow, NULL);
    err |= coil_route(app, "GET", "/redis/burst", redis_burst, NULL);
    err |= coil_route(app, "GET", "/redis/state", redis_state, NULL);
#else
    err |= coil_route(app, "GET", "/redis/*", no_redis, NULL);
    err |= coil_route(app, "PUT", "/redis/*", no_redis, NULL);
    err |= coil_route(app, "POST", "/redis/*", no_redis, NULL);
    err |= coil_route(app, "DELETE", "/redis/*", no_redis, NULL);
#endif
    err |= coil_route(app, "GET", "/worker", worker_route, NULL);
    err |= coil_route(app, "GET", "/stamp", stamp_route, NULL);
    err |= coil_route(app, "PUT", "/cache/:key", cache_put, NULL);
    err |= coil_route(app, "GET", "/cache/:key", cache_get, NULL);
    err |= coil_route(app, "GET", "/cache/:key/fetch", cache_fetch, NULL);
    err |= coil_route(app, "POST", "/cache/:key/store", cache_store, NULL);
    err |= coil_route(app, "DELETE", "/cache/:key", cache_delete, NULL);
    err |= coil_route(app, "GET", "/readyz", readyz, NULL);
    err |= coil_route(app, "GET", "/stats", stats, NULL);
    if (err) {
        fprintf(stderr, "cacheapp: set-up failed\n");
        return 1;
    }
    int status = coil_app_run(app);
    fprintf(stderr, "cacheapp: exit status=%d late=%lu\n", status, atomic_load(&late));
    return status;
}
