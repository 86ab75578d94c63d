/* SPDX-License-Identifier: MIT */
/*
 * arena.c: the HttpArena benchmark workloads. /baseline11 (and /baseline2, its GET for the h2
 * profiles) adds the integers a and b from the query (and, for POST, the body); /pipeline
 * answers a static "ok"; /json/:count serialises the first count items of the dataset, each
 * with a "total" of price*quantity*m, per request with coil's JSON writer; /upload counts the
 * bytes of a body of up to 20 MiB as they stream in, holding none of them.
 *
 * The dataset is read from --dataset PATH (COIL_DATASET) by the option's set(), which runs on
 * the main thread while options are parsed, before any worker starts. It is parsed with jansson
 * and converted once into the plain structs below; the request path reads only those structs and
 * never touches jansson. `loaded` is written only during option parsing (a second value, say a
 * flag after the variable, replaces the first) and is read-only for the life of the workers,
 * which start after it, so no lock is needed. It lives until the process exits.
 *
 * Every integer is an int64: a sum or total that does not fit answers 400 rather than wrapping.
 */
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <coil_mw.h>

#include "arena_items.h"
#include "handlers.h"

/* The loaded dataset. Every string of its items (name, category, each tag) and every tags
 * array is an owned copy; the strings are NUL-terminated. */
struct dataset {
    size_t count;             /* items in items, at least 1 */
    struct arena_item *items; /* in file order */
};

static struct dataset *loaded; /* NULL until --dataset; see the file comment */

/* ---- integers --------------------------------------------------------------------------- */

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* The body as an integer, surrounding ASCII whitespace ignored; an empty body is 0. */
static int parse_body(struct coil_str body, int64_t *out)
{
    const char *p = body.ptr, *end = body.ptr + body.len;
    while (p < end && is_space(*p))
        p++;
    while (end > p && is_space(end[-1]))
        end--;
    if (p == end) {
        *out = 0;
        return 0;
    }
    return coil_parse_int64(p, (size_t)(end - p), out);
}

/* Query parameter name as an integer: 1 found, 0 absent, -EINVAL / -ERANGE bad. */

/* ---- /baseline11, /pipeline ------------------------------------------------------------- */

static int bad_request(struct coil_res *res, const char *why)
{
    return coil_res_text(res, 400, "text/plain", why);
}

static int baseline(struct coil_req *req, struct coil_res *res, void *ud)
{
    int64_t a, b, x = 0, sum;
    if (arena_query_int(req, "a", &a) != 1)
        return bad_request(res, "a must be an integer");
    if (arena_query_int(req, "b", &b) != 1)
        return bad_request(res, "b must be an integer");
    struct coil_str method = coil_req_method(req);
    if (method.len == 4 && !memcmp(method.ptr, "POST", 4) && parse_body(coil_req_body(req), &x))
        return bad_request(res, "the body must be an integer");
    if (__builtin_add_overflow(a, b, &sum) || __builtin_add_overflow(sum, x, &sum))
        return bad_request(res, "the sum does not fit in 64 bits");
    char text[24]; /* "-9223372036854775808" and a NUL */
    snprintf(text, sizeof(text), "%" PRId64, sum);
    return coil_res_text(res, 200, "text/plain", text);
}

/* ---- /upload ---------------------------------------------------------------------------- */

#define UPLOAD_MAX_BYTES (20u << 20) /* HttpArena's largest upload */

/* Each piece of the body as it arrives: count it (coil_req_state is zeroed per request). */
static int upload_piece(struct coil_req *req, const void *data, size_t len, void *ud)
{
    uint64_t *read = coil_req_state(req);
    *read += len;
    return 0;
}

static int upload_done(struct coil_req *req, struct coil_res *res, void *ud)
{
    const uint64_t *read = coil_req_state(req);
    char text[24];
    snprintf(text, sizeof(text), "%" PRIu64, *read);
    return coil_res_text(res, 200, "text/plain", text);
}

static int pipeline(struct coil_req *req, struct coil_res *res, void *ud)
{
    static const char body[] = "ok";
    int err = coil_res_header(res, "Content-Type", "text/plain");
    if (err < 0)
        return err;
    return coil_res_body_static(res, body, sizeof(body) - 1);
}

/* ---- /json/:count ----------------------------------------------------------------------- */

static int json_items(struct coil_req *req, struct coil_res *res, void *ud)
{
    const struct dataset *ds = loaded;
    if (!ds)
        return coil_res_text(res, 503, "text/plain", "no dataset loaded (--dataset)");
    struct coil_str c = coil_req_param(req, "count");
    int64_t count, m = 1, total;
    if (coil_parse_int64(c.ptr, c.len, &count) || count < 1 || (uint64_t)count > ds->count)
        return bad_request(res, "count must be an integer from 1 to the dataset size");
    if (arena_query_int(req, "m", &m) < 0)
        return bad_request(res, "m must be an integer");
    /* Checked before the body starts: once it has, the status can no longer become 400. */
    for (int64_t i = 0; i < count; i++)
        if (!arena_item_total(&ds->items[i], m, &total))
            return bad_request(res, "price*quantity*m does not fit in 64 bits");
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    coil_json_key(j, "items");
    coil_json_array_open(j);
    for (int64_t i = 0; i < count; i++) {
        (void)arena_item_total(&ds->items[i], m, &total); /* fits: checked above */
        arena_item_write(j, &ds->items[i], total);
    }
    coil_json_array_close(j);
    coil_json_key(j, "count");
    coil_json_int(j, count);
    coil_json_object_close(j);
    return 0;
}

/* ---- loading the dataset (main thread, during option parsing) --------------------------- */

static void item_fini(struct arena_item *it)
{
    free((char *)it->name.ptr);
    free((char *)it->category.ptr);
    for (size_t t = 0; t < it->ntags; t++)
        free((char *)it->tags[t].ptr);
    free(it->tags);
}

static void dataset_destroy(struct dataset *ds)
{
    if (!ds)
        return;
    for (size_t i = 0; i < ds->count; i++)
        item_fini(&ds->items[i]);
    free(ds->items);
    free(ds);
}

/* Where a field is wrong: printed as "coil: dataset PATH: items[I].FIELD WHAT". */
struct where {
    const char *path; /* the file */
    size_t index;     /* the item's index in the array, from 0 */
};

static int refuse(const struct where *w, const char *field, const char *what)
{
    fprintf(stderr, "coil: dataset %s: items[%zu].%s %s\n", w->path, w->index, field, what);
    return -EINVAL;
}

static int get_int(const struct where *w, const json_t *obj, const char *field, int64_t *out)
{
    const json_t *v = json_object_get(obj, field);
    if (!json_is_integer(v))
        return refuse(w, field, v ? "is not an integer" : "is missing");
    *out = (int64_t)json_integer_value(v);
    return 0;
}

/* A NUL-terminated copy of a JSON string (which may hold NUL bytes: the length is kept). */
static int copy_string(const struct where *w, const json_t *v, const char *field,
                       struct coil_str *out)
{
    if (!json_is_string(v))
        return refuse(w, field, v ? "is not a string" : "is missing");
    size_t n = json_string_length(v);
    char *s = malloc(n + 1);
    if (!s)
        return refuse(w, field, "does not fit in memory");
    memcpy(s, json_string_value(v), n + 1);
    *out = (struct coil_str){s, n};
    return 0;
}

static int get_tags(const struct where *w, const json_t *obj, struct arena_item *it)
{
    const json_t *tags = json_object_get(obj, "tags");
    if (!json_is_array(tags))
        return refuse(w, "tags", tags ? "is not an array" : "is missing");
    size_t n = json_array_size(tags);
    if (n == 0)
        return 0;
    it->tags = calloc(n, sizeof(*it->tags));
    if (!it->tags)
        return refuse(w, "tags", "does not fit in memory");
    for (; it->ntags < n; it->ntags++)
        if (copy_string(w, json_array_get(tags, it->ntags), "tags[]", &it->tags[it->ntags]) < 0)
            return -EINVAL;
    return 0;
}

/* Every field the items carry; an unknown one is refused rather than silently not served. */
static const char *const fields[] = {"id",       "name",   "category", "price",
                                     "quantity", "active", "tags",     "rating"};

static int check_keys(const struct where *w, const json_t *obj, const char *const *names, size_t n)
{
    const char *key;
    const json_t *v;
    json_object_foreach((json_t *)obj, key, v)
    {
        size_t i = 0;
        while (i < n && strcmp(key, names[i]) != 0)
            i++;
        if (i == n)
            return refuse(w, key, "is not a known field");
    }
    return 0;
}

static int get_rating(const struct where *w, const json_t *obj, struct arena_item *it)
{
    static const char *const rating_fields[] = {"score", "count"};
    const json_t *r = json_object_get(obj, "rating");
    if (!json_is_object(r))
        return refuse(w, "rating", r ? "is not an object" : "is missing");
    if (check_keys(w, r, rating_fields, 2) < 0 || get_int(w, r, "score", &it->score) < 0 ||
        get_int(w, r, "count", &it->votes) < 0)
        return -EINVAL;
    return 0;
}

/* Fills it from obj; on failure it holds what was copied so far (item_fini frees it). */
static int item_init(const struct where *w, const json_t *obj, struct arena_item *it)
{
    if (!json_is_object(obj)) {
        fprintf(stderr, "coil: dataset %s: items[%zu] is not an object\n", w->path, w->index);
        return -EINVAL;
    }
    if (check_keys(w, obj, fields, sizeof(fields) / sizeof(fields[0])) < 0)
        return -EINVAL;
    const json_t *active = json_object_get(obj, "active");
    if (!json_is_boolean(active))
        return refuse(w, "active", active ? "is not true or false" : "is missing");
    it->active = json_is_true(active);
    if (get_int(w, obj, "id", &it->id) < 0 ||
        copy_string(w, json_object_get(obj, "name"), "name", &it->name) < 0 ||
        copy_string(w, json_object_get(obj, "category"), "category", &it->category) < 0 ||
        get_int(w, obj, "price", &it->price) < 0 ||
        get_int(w, obj, "quantity", &it->quantity) < 0 || get_tags(w, obj, it) < 0 ||
        get_rating(w, obj, it) < 0)
        return -EINVAL;
    return 0;
}

/* Converts the parsed document; NULL (after a message) if it is not a dataset. */
static struct dataset *dataset_create(const char *path, const json_t *doc)
{
    if (!json_is_array(doc) || json_array_size(doc) == 0) {
        fprintf(stderr, "coil: dataset %s: not a non-empty JSON array of items\n", path);
        return NULL;
    }
    struct dataset *ds = calloc(1, sizeof(*ds));
    size_t n = json_array_size(doc);
    if (!ds || !(ds->items = calloc(n, sizeof(*ds->items)))) {
        fprintf(stderr, "coil: dataset %s: out of memory\n", path);
        goto fail;
    }
    for (; ds->count < n; ds->count++) {
        struct where w = {path, ds->count};
        if (item_init(&w, json_array_get(doc, ds->count), &ds->items[ds->count]) < 0) {
            ds->count++; /* so that its partial copies are freed too */
            goto fail;
        }
    }
    return ds;
fail:
    dataset_destroy(ds);
    return NULL;
}

static int set_dataset(const char *path, void *ud)
{
    if (!*path) {
        fprintf(stderr, "coil: --dataset needs a file name\n");
        return -EINVAL;
    }
    json_error_t err;
    /* Strings keep their length, so a \u0000 inside one is served as it was written. */
    json_t *doc = json_load_file(path, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
    if (!doc) {
        if (err.line > 0) /* a parse error; -1 when the file could not be read */
            fprintf(stderr, "coil: dataset %s: line %d, column %d: %s\n", path, err.line,
                    err.column, err.text);
        else
            fprintf(stderr, "coil: dataset: %s\n", err.text);
        return -EINVAL;
    }
    struct dataset *ds = dataset_create(path, doc);
    json_decref(doc);
    if (!ds)
        return -EINVAL;
    dataset_destroy(loaded);
    loaded = ds;
    return 0;
}

int arena_routes(struct coil_app *app)
{
    int err = 0;
    err |= coil_route(app, "GET", "/baseline11", baseline, NULL);
    err |= coil_route(app, "POST", "/baseline11", baseline, NULL);
    err |= coil_route(app, "GET", "/baseline2", baseline, NULL); /* baseline-h2, baseline-h2c */
    err |= coil_route(app, "GET", "/pipeline", pipeline, NULL);
    err |= coil_route(app, "GET", "/json/:count", json_items, NULL);
    /* HttpArena's json-comp: /json/:count compressed when the client asks (br, then gzip), and
     * untouched when it does not; a build without zlib and brotli leaves it uncompressed. */
    struct coil_mw comp;
    int crc = coil_mw_compress(app, &(struct coil_compress_opts){.encodings = "br,gzip"}, &comp);
    if (crc == 0)
        err |= coil_route_use(app, "GET", "/json/:count", &comp);
    else if (crc != -ENOTSUP)
        err |= crc;
    err |= coil_route_stream(app, "POST", "/upload", upload_piece, upload_done, NULL);
    err |= coil_route_max_body(app, "POST", "/upload", UPLOAD_MAX_BYTES);
    err |= coil_app_option(app, "dataset", "COIL_DATASET", "PATH",
                           "the HttpArena dataset (a JSON array of items) served by /json/:count",
                           set_dataset, NULL);
    return err ? -1 : 0;
}
