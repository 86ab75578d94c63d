/* SPDX-License-Identifier: MIT */
/*
 * micro_router: coil__router_match against a table shaped like a real REST API (46 routes:
 * static paths, ":param" segments up to three deep, "*" tails, several methods on one path,
 * and the demo's own routes). Each lookup is checked first: its status, which route it found
 * (routes are told apart by their ud, a tag string), its parameter values and, for 405, the
 * Allow text. The lookups cover the cases a server sees: a one-segment static path, a
 * three-segment static path, two parameters, a wildcard, a 404 that has to backtrack out of a
 * parameter branch, and a 405 that has to collect the Allow list.
 */
#include <string.h>

#include "bench.h"
#include "router.h"

static int handler(struct coil_req *req, struct coil_res *res, void *ud)
{
    return 0;
}

/* method, pattern; the pattern doubles as the tag that identifies the route. */
static const char *const table[][2] = {
    {"GET", "/"},
    {"GET", "/healthz"},
    {"GET", "/readyz"},
    {"GET", "/metrics"},
    {"GET", "/plaintext"},
    {"GET", "/json"},
    {"GET", "/json/:count"},
    {"GET", "/baseline11"},
    {"POST", "/baseline11"},
    {"GET", "/pipeline"},
    {"POST", "/echo"},
    {"GET", "/kv/:key"},
    {"PUT", "/kv/:key"},
    {"DELETE", "/kv/:key"},
    {"POST", "/auth/login"},
    {"POST", "/auth/logout"},
    {"POST", "/auth/refresh"},
    {"GET", "/users"},
    {"POST", "/users"},
    {"GET", "/users/me"},
    {"GET", "/users/:id"},
    {"PUT", "/users/:id"},
    {"PATCH", "/users/:id"},
    {"DELETE", "/users/:id"},
    {"GET", "/users/:id/followers"},
    {"GET", "/users/:id/following"},
    {"GET", "/users/:id/posts"},
    {"POST", "/users/:id/posts"},
    {"GET", "/users/:id/posts/:post"},
    {"PUT", "/users/:id/posts/:post"},
    {"DELETE", "/users/:id/posts/:post"},
    {"GET", "/users/:id/posts/:post/comments"},
    {"POST", "/users/:id/posts/:post/comments"},
    {"GET", "/posts"},
    {"GET", "/posts/:post"},
    {"GET", "/orgs/:org"},
    {"GET", "/orgs/:org/members"},
    {"GET", "/orgs/:org/repos/:repo"},
    {"GET", "/orgs/:org/repos/:repo/issues"},
    {"POST", "/orgs/:org/repos/:repo/issues"},
    {"GET", "/api/v1/products"},
    {"GET", "/api/v1/products/:sku"},
    {"POST", "/api/v1/orders"},
    {"GET", "/api/v1/orders/:order"},
    {"GET", "/static/*"},
    {"GET", "/assets/*"},
};

struct lookup {
    const char *name;
    struct coil_str method, path;
    int rc;              /* 0, -404 or -405 */
    const char *tag;     /* the route's pattern, with rc 0 */
    const char *vals[3]; /* parameter values in order, NULL-terminated */
    const char *allow;   /* with -405 */
};

#define S(lit) ((struct coil_str){lit, sizeof(lit) - 1})

static const struct lookup lookups[] = {
    {"router/static-short", S("GET"), S("/healthz"), 0, "/healthz", {NULL}, NULL},
    {"router/static-deep", S("GET"), S("/api/v1/products"), 0, "/api/v1/products", {NULL}, NULL},
    {"router/param-2",
     S("GET"),
     S("/users/12345/posts/678"),
     0,
     "/users/:id/posts/:post",
     {"12345", "678", NULL},
     NULL},
    {"router/wildcard",
     S("GET"),
     S("/static/css/site/main.min.css"),
     0,
     "/static/*",
     {"css/site/main.min.css", NULL},
     NULL},
    {"router/miss-404", S("GET"), S("/users/42/avatar"), -404, NULL, {NULL}, NULL},
    {"router/method-405", S("DELETE"), S("/users"), -405, NULL, {NULL}, "GET, HEAD, POST"},
};

#define NLOOKUPS (sizeof(lookups) / sizeof(lookups[0]))

static struct coil__router *build(void)
{
    struct coil__router *r = coil__router_create();
    BENCH_REQUIRE(r != NULL, "out of memory");
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        int rc = coil__router_add(r, table[i][0], table[i][1], handler, (void *)table[i][1]);
        BENCH_REQUIRE(rc == 0, "add %s %s: %d", table[i][0], table[i][1], rc);
    }
    return r;
}

static void validate(const struct coil__router *r, const struct lookup *l)
{
    struct coil__match m;
    int rc = coil__router_match(r, l->method, l->path, &m);
    BENCH_REQUIRE(rc == l->rc, "%s: status %d, want %d", l->name, rc, l->rc);
    if (rc == -405)
        BENCH_REQUIRE(!strcmp(m.allow, l->allow), "%s: Allow '%s'", l->name, m.allow);
    if (rc != 0)
        return;
    const char *tag = m.route->ud;
    BENCH_REQUIRE(!strcmp(tag, l->tag), "%s: matched %s", l->name, tag);
    uint32_t n = 0;
    while (l->vals[n])
        n++;
    BENCH_REQUIRE(m.nparams == n, "%s: %u params", l->name, m.nparams);
    for (uint32_t i = 0; i < n; i++)
        BENCH_REQUIRE(m.values[i].len == strlen(l->vals[i]) &&
                          !memcmp(m.values[i].ptr, l->vals[i], m.values[i].len),
                      "%s: param %u is %.*s", l->name, i, (int)m.values[i].len, m.values[i].ptr);
}

struct fixture {
    const struct coil__router *router;
    const struct lookup *lookup;
};

static uint64_t bm_match(void *arg, uint64_t iters)
{
    const struct fixture *f = arg;
    struct coil__match m;
    uint64_t acc = 0;
    for (uint64_t i = 0; i < iters; i++) {
        const char *p = f->lookup->path.ptr;
        BENCH_HIDE(p); /* a new path each time, as far as the compiler knows */
        struct coil_str path = {p, f->lookup->path.len};
        acc += (uint64_t)coil__router_match(f->router, f->lookup->method, path, &m) + m.nparams;
    }
    return acc;
}

void micro_router(void)
{
    struct coil__router *r = build();
    for (size_t i = 0; i < NLOOKUPS; i++)
        validate(r, &lookups[i]);
    for (size_t i = 0; i < NLOOKUPS; i++) {
        struct fixture f = {r, &lookups[i]};
        struct bench b = {lookups[i].name, "lookup", bm_match, &f, 1, 0};
        bench_run(&b);
    }
    coil__router_destroy(r);
}
