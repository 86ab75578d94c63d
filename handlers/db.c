/* SPDX-License-Identifier: MIT */
/*
 * db.c: HttpArena's database workloads over coil_pg.h, on the `items` table
 * (id, name, category, price, quantity, active, tags jsonb, rating_score, rating_count):
 *
 *   GET  /async-db?min=&max=&limit=            items priced min..max (10, 50; limit 1..50, 50)
 *   GET  /crud/items?category=&page=&limit=    a page of a category by id (electronics, 1, 10)
 *   GET  /crud/items/:id                       one item, through a 200 ms cache (X-Cache)
 *   POST /crud/items                           upsert {id,name,category,price,quantity}: 201
 *   PUT  /crud/items/:id                       update {name,category,price,quantity}: 200/404
 *
 * Every handler defers, sends one prepared statement and answers from its callback. When the
 * database cannot be reached, /async-db answers an empty list (as HttpArena asks) and the crud
 * routes 503; a full pool is 503 everywhere. A write drops the item from every worker's cache
 * before it is answered (coil_cache_invalidate), so a read after the answer is never stale; a
 * read is copied to every worker's cache (replicate), so the next GET of it is a HIT wherever
 * its connection landed (HttpArena's check opens a new connection per GET). With --redis-url
 * (REDIS_URL) the same coil_cache calls keep the items in Redis instead, shared by every
 * process ("coil:item:ID", PX 200); when Redis fails, reads go to the database (X-Cache: MISS)
 * and writes are answered without the invalidation (the item expires there within 200 ms).
 * Request bodies are parsed with jansson; bad JSON or a missing or mistyped field is a 400 with
 * a JSON error. Without libpq (COIL_HAVE_PG unset) the routes answer as if the database were
 * unreachable.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "arena_items.h"
#include "handlers.h"

#ifdef COIL_HAVE_PG
#include <coil_pg.h>
#endif
#ifdef COIL_HAVE_REDIS
#include <coil_redis.h>
#endif

#define ITEM_COLS "id, name, category, price, quantity, active, tags, rating_score, rating_count"

static int json_error(struct coil_res *res, int status, const char *msg)
{
    coil_res_status(res, status);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    coil_json_key(j, "error");
    coil_json_string(j, msg);
    coil_json_object_close(j);
    return 0;
}

static int empty_list(struct coil_res *res)
{
    return coil_res_text(res, 200, "application/json", "{\"items\":[],\"count\":0}");
}

/* An integer query parameter with a default and bounds: 0, or -EINVAL if malformed. */
static int query_or(struct coil_req *req, const char *name, int64_t dflt, int64_t lo, int64_t hi,
                    int64_t *out)
{
    int r = arena_query_int(req, name, out);
    if (r < 0)
        return -EINVAL;
    if (r == 0)
        *out = dflt;
    if (*out < lo)
        *out = lo;
    if (*out > hi)
        *out = hi;
    return 0;
}

/* An id from the path: digits only (leading zeros welcome), 1 .. 2^31-1. */
static bool parse_id(struct coil_str s, int64_t *id)
{
    if (!s.len || s.ptr[0] == '-' || s.ptr[0] == '+')
        return false;
    return coil_parse_int64(s.ptr, s.len, id) == 0 && *id >= 1 && *id <= INT32_MAX;
}

#ifdef COIL_HAVE_PG

#define ITEM_TTL_MS 200

static struct coil_pg *db;
static struct coil_cache *item_cache; /* id -> the item's JSON: local, or Redis (--redis-url) */

enum { C_ID, C_NAME, C_CATEGORY, C_PRICE, C_QUANTITY, C_ACTIVE, C_TAGS, C_SCORE, C_COUNT };

/* What a crud callback needs, in the request's memory. */
struct call {
    struct coil_req *req;
    struct coil_res *res;
    uint64_t stamp; /* GET: when the read began (coil_cache_stamp) */
    char key[12];   /* the id in decimal, the cache key */
    size_t klen;
};

/* Row i as HttpArena's item object. false if a column is not what the schema says. */
static bool write_item(struct coil_json *j, const struct coil_pg_result *r, int i)
{
    int64_t id, price, quantity, score, count;
    bool active;
    if (coil_pg_int(r, i, C_ID, &id) || coil_pg_int(r, i, C_PRICE, &price) ||
        coil_pg_int(r, i, C_QUANTITY, &quantity) || coil_pg_int(r, i, C_SCORE, &score) ||
        coil_pg_int(r, i, C_COUNT, &count) || coil_pg_bool(r, i, C_ACTIVE, &active))
        return false;
    struct coil_str name = coil_pg_get(r, i, C_NAME), cat = coil_pg_get(r, i, C_CATEGORY);
    struct coil_str tags = coil_pg_get(r, i, C_TAGS);
    coil_json_object_open(j);
    coil_json_key(j, "id");
    coil_json_int(j, id);
    coil_json_key(j, "name");
    coil_json_stringn(j, name.ptr ? name.ptr : "", name.len);
    coil_json_key(j, "category");
    coil_json_stringn(j, cat.ptr ? cat.ptr : "", cat.len);
    coil_json_key(j, "price");
    coil_json_int(j, price);
    coil_json_key(j, "quantity");
    coil_json_int(j, quantity);
    coil_json_key(j, "active");
    coil_json_bool(j, active);
    coil_json_key(j, "tags");
    if (tags.len && tags.ptr[0] == '[') /* a jsonb array, as the server prints it */
        coil_json_raw(j, tags.ptr, tags.len);
    else
        coil_json_raw(j, "[]", 2);
    coil_json_key(j, "rating");
    coil_json_object_open(j);
    coil_json_key(j, "score");
    coil_json_int(j, score);
    coil_json_key(j, "count");
    coil_json_int(j, count);
    coil_json_object_close(j);
    coil_json_object_close(j);
    return true;
}

/* The rows as "items": [...]. false on a bad row. */
static bool write_items(struct coil_json *j, const struct coil_pg_result *r)
{
    coil_json_key(j, "items");
    coil_json_array_open(j);
    for (int i = 0; i < r->nrows; i++)
        if (!write_item(j, r, i))
            return false;
    coil_json_array_close(j);
    return true;
}

/* A failed query as the client sees it: bad input 400, other refusals 500, no database 503. */
static void answer_error(struct coil_res *res, const struct coil_pg_result *r)
{
    if (r->error == -EIO && !strncmp(r->sqlstate, "22", 2)) { /* a data exception */
        json_error(res, 400, r->message);
        coil_res_finish(res);
        return;
    }
    if (r->error == -EIO)
        fprintf(stderr, "coil: crud: the database refused a query: %s %s\n", r->sqlstate,
                r->message);
    coil_res_fail(res, r->error == -EIO ? 500 : 503);
}

/* Sends a prepared statement for a deferred request; when it cannot be sent, answers now. */
static int send_query(struct coil_req *req, struct coil_res *res, const char *stmt,
                      const struct coil_str *params, int n, coil_pg_fn fn, void *ud,
                      bool empty_when_down)
{
    struct coil_pg_query q = {.stmt = stmt, .params = params, .nparams = n};
    int err = coil_pg_query(req, db, &q, fn, ud);
    if (err == 0)
        return 0;
    if (err == -EINVAL) { /* a parameter libpq cannot carry (a NUL byte) */
        json_error(res, 400, "bad parameter");
        coil_res_finish(res);
    } else if (err != -EBUSY && empty_when_down) {
        empty_list(res);
        coil_res_finish(res);
    } else {
        coil_res_fail(res, 503);
    }
    return 0;
}

/* ---- /async-db -------------------------------------------------------------------------- */

static void async_db_rows(const struct coil_pg_result *r, void *ud)
{
    struct coil_res *res = ud;
    if (r->error) { /* HttpArena: no database, no items */
        empty_list(res);
        coil_res_finish(res);
        return;
    }
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    if (!write_items(j, r)) {
        coil_res_fail(res, 500);
        return;
    }
    coil_json_key(j, "count");
    coil_json_int(j, r->nrows);
    coil_json_object_close(j);
    coil_res_finish(res);
}

static int async_db(struct coil_req *req, struct coil_res *res, void *ud)
{
    int64_t min, max, limit;
    if (query_or(req, "min", 10, INT32_MIN, INT32_MAX, &min) ||
        query_or(req, "max", 50, INT32_MIN, INT32_MAX, &max) ||
        query_or(req, "limit", 50, 1, 50, &limit))
        return json_error(res, 400, "min, max and limit must be integers");
    if (!coil_res_defer(res, NULL, NULL).id)
        return -ENOMEM;
    char a[24], b[24], c[24];
    struct coil_str p[3] = {
        {a, (size_t)snprintf(a, sizeof(a), "%" PRId64, min)},
        {b, (size_t)snprintf(b, sizeof(b), "%" PRId64, max)},
        {c, (size_t)snprintf(c, sizeof(c), "%" PRId64, limit)},
    };
    return send_query(req, res, "async_db", p, 3, async_db_rows, res, true);
}

/* ---- GET /crud/items -------------------------------------------------------------------- */

struct page {
    struct coil_res *res;
    int64_t page, limit;
};

static void list_rows(const struct coil_pg_result *r, void *ud)
{
    struct page *pg = ud;
    if (r->error)
        return answer_error(pg->res, r);
    struct coil_json *j = coil_res_json(pg->res);
    coil_json_object_open(j);
    if (!write_items(j, r)) {
        coil_res_fail(pg->res, 500);
        return;
    }
    coil_json_key(j, "total");
    coil_json_int(j, r->nrows);
    coil_json_key(j, "page");
    coil_json_int(j, pg->page);
    coil_json_key(j, "limit");
    coil_json_int(j, pg->limit);
    coil_json_object_close(j);
    coil_res_finish(pg->res);
}

static int crud_list(struct coil_req *req, struct coil_res *res, void *ud)
{
    int64_t page, limit;
    struct coil_str cat;
    if (coil_req_query_param(req, "category", &cat) < 0 ||
        query_or(req, "page", 1, 1, INT32_MAX / 50, &page) ||
        query_or(req, "limit", 10, 1, 50, &limit))
        return json_error(res, 400, "category must be text, page and limit integers");
    if (!coil_res_defer(res, NULL, NULL).id)
        return -ENOMEM;
    struct page *pg = coil_req_alloc(req, sizeof(*pg));
    if (!pg)
        return -ENOMEM;
    *pg = (struct page){res, page, limit};
    /* read after the defer: the request's own copy */
    if (coil_req_query_param(req, "category", &cat) != 1 || cat.len == 0)
        cat = (struct coil_str){"electronics", 11};
    char l[24], o[24];
    struct coil_str p[3] = {
        cat,
        {l, (size_t)snprintf(l, sizeof(l), "%" PRId64, limit)},
        {o, (size_t)snprintf(o, sizeof(o), "%" PRId64, (page - 1) * limit)},
    };
    return send_query(req, res, "crud_list", p, 3, list_rows, pg, false);
}

/* ---- GET /crud/items/:id ---------------------------------------------------------------- */

/* Stored (or not: the next read goes to the database again): the answer may go. */
static void stored(int err, void *ud)
{
    struct call *c = ud;
    (void)err;
    coil_res_finish(c->res);
}

static void get_row(const struct coil_pg_result *r, void *ud)
{
    struct call *c = ud;
    if (r->error)
        return answer_error(c->res, r);
    coil_res_header(c->res, "X-Cache", "MISS");
    if (r->nrows == 0) {
        json_error(c->res, 404, "no such item");
        coil_res_finish(c->res);
        return;
    }
    struct coil_json *j = coil_res_json(c->res);
    struct coil_str body;
    if (!write_item(j, r, 0) || coil_json_text(j, &body) < 0) {
        coil_res_fail(c->res, 500);
        return;
    }
    /* answered once the cache has it, so the next GET is a HIT on any worker or process */
    if (coil_cache_store(c->req, item_cache, c->key, c->klen, body.ptr, body.len, c->stamp, stored,
                         c) < 0)
        coil_res_finish(c->res);
}

/* The :id of the path as a cache key; false (404 answered) if it is not an id. */
static struct call *begin_item(struct coil_req *req, struct coil_res *res)
{
    int64_t id;
    if (!parse_id(coil_req_param(req, "id"), &id)) {
        json_error(res, 404, "no such item");
        return NULL;
    }
    struct call *c = coil_req_alloc(req, sizeof(*c));
    if (!c) {
        coil_res_status(res, 503);
        return NULL;
    }
    c->req = req;
    c->res = res;
    c->klen = (size_t)snprintf(c->key, sizeof(c->key), "%" PRId64, id);
    return c;
}

static int read_item(struct coil_req *req, struct call *c)
{
    struct coil_str p = {c->key, c->klen};
    c->stamp = coil_cache_stamp();
    return send_query(req, c->res, "crud_get", &p, 1, get_row, c, false);
}

/* The cache's answer (Redis, or this worker's table): a hit answers, a miss or a failed Redis
 * reads the database. */
static void cached(int err, const void *value, size_t len, void *ud)
{
    struct call *c = ud;
    if (err < 0) {
        read_item(c->req, c);
        return;
    }
    coil_res_header(c->res, "X-Cache", "HIT");
    coil_res_header(c->res, "Content-Type", "application/json");
    if (coil_res_body(c->res, value, len) < 0) {
        coil_res_fail(c->res, 503);
        return;
    }
    coil_res_finish(c->res);
}

static int crud_get(struct coil_req *req, struct coil_res *res, void *ud)
{
    struct call *c = begin_item(req, res);
    if (!c)
        return 0;
    struct coil_str hit;
    if (coil_cache_get(item_cache, c->key, c->klen, &hit)) { /* this worker's table, at once */
        coil_res_header(res, "X-Cache", "HIT");
        coil_res_header(res, "Content-Type", "application/json");
        return coil_res_body(res, hit.ptr, hit.len);
    }
    if (!coil_res_defer(res, NULL, NULL).id)
        return -ENOMEM;
    if (coil_cache_fetch(req, item_cache, c->key, c->klen, cached, c) == 0)
        return 0; /* a cache on Redis answers later; a local one has answered (a miss) */
    return read_item(req, c);
}

/* ---- POST /crud/items, PUT /crud/items/:id ---------------------------------------------- */

static void written(int err, void *ud)
{
    (void)err; /* a worker (or Redis) that missed it serves the old item until it expires */
    struct call *c = ud;
    coil_res_finish(c->res);
}

/* The row written (RETURNING): answered with status once every worker dropped the key. */
static void write_row(const struct coil_pg_result *r, struct call *c, int status)
{
    if (r->error)
        return answer_error(c->res, r);
    if (r->nrows == 0) {
        json_error(c->res, 404, "no such item");
        coil_res_finish(c->res);
        return;
    }
    coil_res_status(c->res, status);
    if (!write_item(coil_res_json(c->res), r, 0)) {
        coil_res_fail(c->res, 500);
        return;
    }
    /* A failed invalidation (Redis down) leaves the old item cached until it expires. */
    if (coil_cache_invalidate(c->req, item_cache, c->key, c->klen, written, c) < 0)
        coil_res_finish(c->res);
}
static void created_row(const struct coil_pg_result *r, void *ud)
{
    write_row(r, ud, 201);
}

static void updated_row(const struct coil_pg_result *r, void *ud)
{
    write_row(r, ud, 200);
}

/* A member of a JSON object: a string, or an integer within 32 bits. */
static bool get_string(json_t *o, const char *k, struct coil_str *out)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_string(v))
        return false;
    *out = (struct coil_str){json_string_value(v), json_string_length(v)};
    return memchr(out->ptr, 0, out->len) == NULL; /* no NUL inside: Postgres text refuses it */
}

static bool get_int(json_t *o, const char *k, int64_t lo, char buf[24], struct coil_str *out)
{
    json_t *v = json_object_get(o, k);
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > INT32_MAX)
        return false;
    *out = (struct coil_str){
        buf, (size_t)snprintf(buf, 24, "%" JSON_INTEGER_FORMAT, json_integer_value(v))};
    return true;
}

/* The item fields of a request body: p[1..4] = name, category, price, quantity, and p[0] = the
 * id when with_id. NULL (400 answered) when the body is not such an object. */
static json_t *parse_item(struct coil_req *req, struct coil_res *res, bool with_id,
                          struct coil_str p[5], char bufs[3][24])
{
    struct coil_str body = coil_req_body(req);
    json_error_t jerr;
    json_t *o = json_loadb(body.ptr ? body.ptr : "", body.len, JSON_REJECT_DUPLICATES, &jerr);
    if (!o) {
        json_error(res, 400, "the body is not JSON");
        return NULL;
    }
    if (!json_is_object(o) || (with_id && !get_int(o, "id", 1, bufs[0], &p[0])) ||
        !get_string(o, "name", &p[1]) || !get_string(o, "category", &p[2]) ||
        !get_int(o, "price", INT32_MIN, bufs[1], &p[3]) ||
        !get_int(o, "quantity", INT32_MIN, bufs[2], &p[4])) {
        json_decref(o);
        json_error(res, 400,
                   with_id ? "expected {\"id\", \"name\", \"category\", \"price\", \"quantity\"} "
                             "with id a positive integer and price, quantity integers"
                           : "expected {\"name\", \"category\", \"price\", \"quantity\"} with "
                             "price and quantity integers");
        return NULL;
    }
    return o;
}

static int crud_create(struct coil_req *req, struct coil_res *res, void *ud)
{
    struct coil_str p[5];
    char bufs[3][24];
    json_t *o = parse_item(req, res, true, p, bufs);
    if (!o)
        return 0;
    struct call *c = coil_req_alloc(req, sizeof(*c));
    if (!c || !coil_res_defer(res, NULL, NULL).id) {
        json_decref(o);
        return -ENOMEM;
    }
    c->req = req;
    c->res = res;
    c->klen = p[0].len;
    memcpy(c->key, p[0].ptr, p[0].len);
    send_query(req, res, "crud_upsert", p, 5, created_row, c, false); /* copies p */
    json_decref(o);
    return 0;
}

static int crud_update(struct coil_req *req, struct coil_res *res, void *ud)
{
    struct call *c = begin_item(req, res);
    if (!c)
        return 0;
    struct coil_str p[5];
    char bufs[3][24];
    json_t *o = parse_item(req, res, false, p, bufs);
    if (!o)
        return 0;
    if (!coil_res_defer(res, NULL, NULL).id) {
        json_decref(o);
        return -ENOMEM;
    }
    p[0] = (struct coil_str){c->key, c->klen};
    send_query(req, res, "crud_update", p, 5, updated_row, c, false);
    json_decref(o);
    return 0;
}

int db_routes(struct coil_app *app)
{
    db = coil_pg_open(app, NULL);
    struct coil_cache_opts co = {.ttl_ms = ITEM_TTL_MS, .replicate = true, .prefix = "coil:item:"};
#ifdef COIL_HAVE_REDIS
    if (!(co.redis = coil_redis_open(app, NULL))) /* used only with --redis-url */
        return -1;
#endif
    item_cache = coil_cache_create(app, &co);
    if (!db || !item_cache)
        return -1;
    int err = 0;
    err |= coil_pg_prepare(
        db, "async_db", "SELECT " ITEM_COLS " FROM items WHERE price BETWEEN $1 AND $2 LIMIT $3");
    err |= coil_pg_prepare(db, "crud_list",
                           "SELECT " ITEM_COLS " FROM items WHERE category = $1 ORDER BY id "
                           "LIMIT $2 OFFSET $3");
    err |= coil_pg_prepare(db, "crud_get", "SELECT " ITEM_COLS " FROM items WHERE id = $1");
    err |= coil_pg_prepare(db, "crud_upsert",
                           "INSERT INTO items (id, name, category, price, quantity, active, tags, "
                           "rating_score, rating_count) VALUES ($1, $2, $3, $4, $5, true, '[]', "
                           "0, 0) ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, category "
                           "= EXCLUDED.category, price = EXCLUDED.price, quantity = "
                           "EXCLUDED.quantity RETURNING " ITEM_COLS);
    err |= coil_pg_prepare(db, "crud_update",
                           "UPDATE items SET name = $2, category = $3, price = $4, quantity = $5 "
                           "WHERE id = $1 RETURNING " ITEM_COLS);
    err |= coil_route(app, "GET", "/async-db", async_db, NULL);
    err |= coil_route(app, "GET", "/crud/items", crud_list, NULL);
    err |= coil_route(app, "POST", "/crud/items", crud_create, NULL);
    err |= coil_route(app, "GET", "/crud/items/:id", crud_get, NULL);
    err |= coil_route(app, "PUT", "/crud/items/:id", crud_update, NULL);
    return err ? -1 : 0;
}

#else /* built without libpq: the database is never reachable */

static int no_db_list(struct coil_req *req, struct coil_res *res, void *ud)
{
    return empty_list(res);
}

static int no_db(struct coil_req *req, struct coil_res *res, void *ud)
{
    return json_error(res, 503, "this coil was built without PostgreSQL (libpq-dev)");
}

int db_routes(struct coil_app *app)
{
    (void)query_or;
    (void)parse_id;
    int err = 0;
    err |= coil_route(app, "GET", "/async-db", no_db_list, NULL);
    err |= coil_route(app, "GET", "/crud/items", no_db, NULL);
    err |= coil_route(app, "POST", "/crud/items", no_db, NULL);
    err |= coil_route(app, "GET", "/crud/items/:id", no_db, NULL);
    err |= coil_route(app, "PUT", "/crud/items/:id", no_db, NULL);
    return err ? -1 : 0;
}
#endif
