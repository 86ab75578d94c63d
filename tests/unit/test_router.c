/* SPDX-License-Identifier: MIT */
/*
 * test_router: the route trie. Exact paths, ":name" and "*" segments, precedence between them
 * with backtracking (also past a node that matches the path but not the method), 404 against
 * 405 with the Allow text, HEAD answered by GET, duplicates and bad patterns, the root and the
 * trailing slash, and a table of a few hundred routes. Routes are told apart by their ud.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "router.h"

#include "check.h"

static int handler(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)req;
    (void)res;
    (void)ud;
    return 0;
}

static struct coil_str str(const char *s)
{
    return (struct coil_str){s, strlen(s)};
}

static int add(struct coil__router *r, const char *method, const char *pattern, const char *tag)
{
    return coil__router_add(r, method, pattern, handler, (void *)tag);
}

static int match(const struct coil__router *r, const char *method, const char *path,
                 struct coil__match *m)
{
    return coil__router_match(r, str(method), str(path), m);
}

/* The tag (ud) of the route matched, or NULL. */
static const char *route_tag(const struct coil__router *r, const char *method, const char *path)
{
    struct coil__match m;
    if (match(r, method, path, &m) != 0)
        return NULL;
    CHECK(m.route != NULL);
    return m.route->ud;
}

static int str_eq(struct coil_str s, const char *want)
{
    return s.ptr && s.len == strlen(want) && memcmp(s.ptr, want, s.len) == 0;
}

/* The value of parameter name in m, checked to exist. */
static int param_is(const struct coil__match *m, const char *name, const char *want)
{
    for (uint32_t i = 0; i < m->nparams; i++)
        if (str_eq(m->names[i], name))
            return str_eq(m->values[i], want);
    return 0;
}

static int tag_is(const char *got, const char *want)
{
    if (!got || !want)
        return got == want;
    return strcmp(got, want) == 0;
}

static void test_exact(void)
{
    struct coil__router *r = coil__router_create();
    CHECK(r);
    CHECK(add(r, "GET", "/", "root") == 0);
    CHECK(add(r, "GET", "/a", "a") == 0);
    CHECK(add(r, "GET", "/a/", "a/") == 0);
    CHECK(add(r, "GET", "/a/b", "ab") == 0);
    CHECK(add(r, "GET", "/a//b", "a//b") == 0);
    CHECK(add(r, "GET", "/x%2Fy", "pct") == 0);
    CHECK(tag_is(route_tag(r, "GET", "/"), "root"));
    CHECK(tag_is(route_tag(r, "GET", "/a"), "a"));
    CHECK(tag_is(route_tag(r, "GET", "/a/"), "a/"));
    CHECK(tag_is(route_tag(r, "GET", "/a/b"), "ab"));
    CHECK(tag_is(route_tag(r, "GET", "/a//b"), "a//b"));
    CHECK(tag_is(route_tag(r, "GET", "/x%2Fy"), "pct"));

    struct coil__match m;
    CHECK(match(r, "GET", "/a/b/", &m) == -404);
    CHECK(match(r, "GET", "//", &m) == -404);
    CHECK(match(r, "GET", "/b", &m) == -404);
    CHECK(match(r, "GET", "/A", &m) == -404); /* case-sensitive */
    CHECK(match(r, "GET", "", &m) == -404);
    CHECK(match(r, "GET", "a", &m) == -404);
    CHECK(match(r, "GET", "*", &m) == -404);
    CHECK(match(r, "GET", "/x/y", &m) == -404);
    CHECK(m.route == NULL && m.allow[0] == '\0');

    /* The path is a slice: bytes after len are not looked at. */
    const char buf[] = "/a/bXYZ";
    CHECK(coil__router_match(r, str("GET"), (struct coil_str){buf, 4}, &m) == 0);
    CHECK(tag_is(m.route->ud, "ab") && m.nparams == 0);
    CHECK(coil__router_match(r, str("GET"), (struct coil_str){buf, 2}, &m) == 0);
    CHECK(tag_is(m.route->ud, "a"));
    coil__router_destroy(r);
}

static void test_params(void)
{
    struct coil__router *r = coil__router_create();
    struct coil__match m;
    CHECK(add(r, "GET", "/users/:id", "user") == 0);
    CHECK(add(r, "GET", "/users/:id/posts/:post", "post") == 0);
    CHECK(add(r, "GET", "/:a/:b/:c/:d/:e/:f/:g/:h", "eight") == 0);

    CHECK(match(r, "GET", "/users/42", &m) == 0);
    CHECK(tag_is(m.route->ud, "user") && m.nparams == 1);
    CHECK(param_is(&m, "id", "42"));
    CHECK(match(r, "GET", "/users/a%20b", &m) == 0 && param_is(&m, "id", "a%20b")); /* raw */
    CHECK(match(r, "GET", "/users/7/posts/x-1", &m) == 0);
    CHECK(tag_is(m.route->ud, "post") && m.nparams == 2);
    CHECK(param_is(&m, "id", "7") && param_is(&m, "post", "x-1"));
    CHECK(str_eq(m.names[0], "id") && str_eq(m.names[1], "post"));

    /* A parameter never matches an empty segment. */
    CHECK(match(r, "GET", "/users/", &m) == -404);
    CHECK(match(r, "GET", "/users//posts/1", &m) == -404);
    CHECK(match(r, "GET", "/users/7/posts/", &m) == -404);
    CHECK(match(r, "GET", "/users/42/", &m) == -404);
    CHECK(match(r, "GET", "/users", &m) == -404);

    CHECK(match(r, "GET", "/1/2/3/4/5/6/7/8", &m) == 0);
    CHECK(tag_is(m.route->ud, "eight") && m.nparams == 8);
    CHECK(param_is(&m, "a", "1") && param_is(&m, "h", "8"));
    CHECK(match(r, "GET", "/1/2/3/4/5/6/7/8/9", &m) == -404);

    /* Routes on one node keep their own parameter names. */
    CHECK(add(r, "POST", "/users/:uid", "post-user") == 0);
    CHECK(match(r, "POST", "/users/9", &m) == 0);
    CHECK(tag_is(m.route->ud, "post-user") && param_is(&m, "uid", "9") && m.nparams == 1);
    CHECK(match(r, "GET", "/users/9", &m) == 0 && param_is(&m, "id", "9"));
    coil__router_destroy(r);
}

static void test_wildcard(void)
{
    struct coil__router *r = coil__router_create();
    struct coil__match m;
    CHECK(add(r, "GET", "/files/*", "files") == 0);
    CHECK(add(r, "GET", "/u/:id/*", "user-rest") == 0);

    CHECK(match(r, "GET", "/files/a/b/c.txt", &m) == 0);
    CHECK(tag_is(m.route->ud, "files") && m.nparams == 1);
    CHECK(str_eq(m.names[0], "*") && param_is(&m, "*", "a/b/c.txt"));
    CHECK(match(r, "GET", "/files/", &m) == 0 && param_is(&m, "*", ""));
    CHECK(match(r, "GET", "/files//x/", &m) == 0 && param_is(&m, "*", "/x/"));
    CHECK(match(r, "GET", "/files", &m) == -404);
    CHECK(match(r, "GET", "/u/3/a/b", &m) == 0);
    CHECK(m.nparams == 2 && param_is(&m, "id", "3") && param_is(&m, "*", "a/b"));
    CHECK(str_eq(m.names[1], "*"));

    CHECK(add(r, "GET", "/*", "all") == 0);
    CHECK(match(r, "GET", "/", &m) == 0 && tag_is(m.route->ud, "all") && param_is(&m, "*", ""));
    CHECK(match(r, "GET", "/zzz/y", &m) == 0 && param_is(&m, "*", "zzz/y"));
    CHECK(match(r, "GET", "/files", &m) == 0 && param_is(&m, "*", "files"));
    CHECK(tag_is(route_tag(r, "GET", "/files/q"), "files"));
    coil__router_destroy(r);
}

static void test_precedence(void)
{
    struct coil__router *r = coil__router_create();
    struct coil__match m;
    CHECK(add(r, "GET", "/a/b", "lit") == 0);
    CHECK(add(r, "GET", "/a/:x", "param") == 0);
    CHECK(add(r, "GET", "/a/*", "wild") == 0);
    CHECK(tag_is(route_tag(r, "GET", "/a/b"), "lit"));
    CHECK(match(r, "GET", "/a/c", &m) == 0 && tag_is(m.route->ud, "param"));
    CHECK(param_is(&m, "x", "c") && m.nparams == 1);
    CHECK(match(r, "GET", "/a/b/c", &m) == 0 && tag_is(m.route->ud, "wild"));
    CHECK(param_is(&m, "*", "b/c") && m.nparams == 1);
    CHECK(match(r, "GET", "/a/", &m) == 0 && tag_is(m.route->ud, "wild"));
    coil__router_destroy(r);

    /* A literal branch that fails deeper down gives way to the parameter. */
    r = coil__router_create();
    CHECK(add(r, "GET", "/a/b/c", "abc") == 0);
    CHECK(add(r, "GET", "/a/:x/d", "axd") == 0);
    CHECK(add(r, "GET", "/:p/:q/end", "pq-end") == 0);
    CHECK(add(r, "GET", "/:p/lit/other", "p-lit-other") == 0);
    CHECK(add(r, "GET", "/*", "rest") == 0);
    CHECK(tag_is(route_tag(r, "GET", "/a/b/c"), "abc"));
    CHECK(match(r, "GET", "/a/b/d", &m) == 0 && tag_is(m.route->ud, "axd"));
    CHECK(param_is(&m, "x", "b") && m.nparams == 1);
    /* "/a" is a literal too, but "/a/lit/end" is only reachable through ":p/:q". */
    CHECK(match(r, "GET", "/a/lit/end", &m) == 0 && tag_is(m.route->ud, "pq-end"));
    CHECK(param_is(&m, "p", "a") && param_is(&m, "q", "lit") && m.nparams == 2);
    CHECK(match(r, "GET", "/1/lit/other", &m) == 0 && tag_is(m.route->ud, "p-lit-other"));
    CHECK(param_is(&m, "p", "1") && m.nparams == 1);
    /* Everything deeper fails: the wildcard at the root takes it, with its own single value. */
    CHECK(match(r, "GET", "/a/b/zz", &m) == 0 && tag_is(m.route->ud, "rest"));
    CHECK(m.nparams == 1 && param_is(&m, "*", "a/b/zz"));
    CHECK(match(r, "GET", "/q/lit/nope", &m) == 0 && tag_is(m.route->ud, "rest"));
    coil__router_destroy(r);
}

static void test_404_405(void)
{
    struct coil__router *r = coil__router_create();
    struct coil__match m;
    CHECK(add(r, "POST", "/items", "post") == 0);
    CHECK(add(r, "GET", "/items", "get") == 0);
    CHECK(add(r, "DELETE", "/items/:id", "del") == 0);

    CHECK(match(r, "PUT", "/items", &m) == -405);
    CHECK(m.route == NULL && strcmp(m.allow, "GET, HEAD, POST") == 0);
    CHECK(match(r, "get", "/items", &m) == -405); /* methods are case-sensitive */
    CHECK(match(r, "GET", "/items/3", &m) == -405 && strcmp(m.allow, "DELETE") == 0);
    CHECK(match(r, "HEAD", "/items/3", &m) == -405 && strcmp(m.allow, "DELETE") == 0);
    CHECK(match(r, "GET", "/nothing", &m) == -404 && m.allow[0] == '\0');
    CHECK(match(r, "GET", "/items/", &m) == -404);

    /* A node that has the path but not the method does not hide a less specific route. */
    CHECK(add(r, "GET", "/u/new", "new-form") == 0);
    CHECK(add(r, "POST", "/u/:id", "update") == 0);
    CHECK(match(r, "POST", "/u/new", &m) == 0 && tag_is(m.route->ud, "update"));
    CHECK(param_is(&m, "id", "new"));
    CHECK(tag_is(route_tag(r, "GET", "/u/new"), "new-form"));
    CHECK(match(r, "GET", "/u/7", &m) == -405 && strcmp(m.allow, "POST") == 0);
    /* Allow lists every method that would be routed for this path. */
    CHECK(match(r, "PATCH", "/u/new", &m) == -405 && strcmp(m.allow, "GET, HEAD, POST") == 0);
    coil__router_destroy(r);
}

static void test_head(void)
{
    struct coil__router *r = coil__router_create();
    struct coil__match m;
    CHECK(add(r, "GET", "/g", "get") == 0);
    CHECK(add(r, "GET", "/both", "get-both") == 0);
    CHECK(add(r, "HEAD", "/both", "head-both") == 0);
    CHECK(add(r, "POST", "/p", "post") == 0);
    CHECK(add(r, "GET", "/deep/:x", "deep-get") == 0);
    CHECK(add(r, "HEAD", "/deep/lit", "deep-head") == 0);

    CHECK(tag_is(route_tag(r, "HEAD", "/g"), "get"));
    CHECK(tag_is(route_tag(r, "HEAD", "/both"), "head-both"));
    CHECK(tag_is(route_tag(r, "GET", "/both"), "get-both"));
    CHECK(match(r, "HEAD", "/p", &m) == -405 && strcmp(m.allow, "POST") == 0);
    CHECK(match(r, "POST", "/g", &m) == -405 && strcmp(m.allow, "GET, HEAD") == 0);
    CHECK(match(r, "PUT", "/both", &m) == -405 && strcmp(m.allow, "GET, HEAD") == 0);
    /* HEAD prefers the more specific node even if that one only has GET, and vice versa. */
    CHECK(tag_is(route_tag(r, "HEAD", "/deep/lit"), "deep-head"));
    CHECK(tag_is(route_tag(r, "GET", "/deep/lit"), "deep-get"));
    CHECK(tag_is(route_tag(r, "HEAD", "/deep/other"), "deep-get"));
    coil__router_destroy(r);
}

static void test_duplicates(void)
{
    struct coil__router *r = coil__router_create();
    CHECK(add(r, "GET", "/a/:id", "1") == 0);
    CHECK(add(r, "GET", "/a/:id", "2") == -EEXIST);
    CHECK(add(r, "GET", "/a/:other", "3") == -EEXIST); /* same shape: unreachable otherwise */
    CHECK(add(r, "POST", "/a/:id", "4") == 0);
    CHECK(add(r, "GET", "/a/*", "5") == 0);
    CHECK(add(r, "GET", "/a/*", "6") == -EEXIST);
    CHECK(add(r, "GET", "/", "7") == 0);
    CHECK(add(r, "GET", "/", "8") == -EEXIST);
    CHECK(tag_is(route_tag(r, "GET", "/a/x"), "1"));
    coil__router_destroy(r);
}

static void test_bad_patterns(void)
{
    struct coil__router *r = coil__router_create();
    static const char *const bad[] = {
        "",
        "a",
        "a/b",
        "/:",
        "/a/:",
        "/a/*/b",
        "/*/",
        "/*x",
        "/x*",
        "/a/**",
        "/:id/:id",
        "/:id/x/:id/*",
        "/:a/:b/:c/:d/:e/:f/:g/:h/:i",
        "/:a/:b/:c/:d/:e/:f/:g/:h/*",
        "/a?b",
        "/a#b",
        "/a b",
        "/a\tb",
        "/a\x7f",
        "/caf\xc3\xa9",
        "/:na.me",
        "/:a:b",
        "/:a*",
        "/:a/:",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (add(r, "GET", bad[i], "bad") != -EINVAL) {
            fprintf(stderr, "pattern accepted: \"%s\"\n", bad[i]);
            CHECK(0);
        }
        CHECK(coil__router_find(r, "GET", bad[i]) == NULL);
    }
    CHECK(coil__router_add(r, "GET", NULL, handler, NULL) == -EINVAL);
    static const char *const bad_methods[] = {"", "GE T", "GET\r", "(GET)", "G/T", "GET\n"};
    for (size_t i = 0; i < sizeof(bad_methods) / sizeof(bad_methods[0]); i++)
        CHECK(add(r, bad_methods[i], "/ok", "bad") == -EINVAL);
    CHECK(coil__router_add(r, NULL, "/ok", handler, NULL) == -EINVAL);

    /* Limits that are fine. */
    CHECK(add(r, "GET", "/:a/:b/:c/:d/:e/:f/:g/*", "7+1") == 0);
    CHECK(add(r, "M-SEARCH", "/ok", "tchar") == 0);
    CHECK(add(r, "X~!#$%&'*+.^_`|", "/ok", "tchars") == 0);
    CHECK(add(r, "GET", "/a:b/c-d_e.f~g/%41", "literal-punct") == 0);
    CHECK(add(r, "GET", "/:Snake_case-1", "name") == 0);
    CHECK(tag_is(route_tag(r, "M-SEARCH", "/ok"), "tchar"));
    CHECK(tag_is(route_tag(r, "GET", "/a:b/c-d_e.f~g/%41"), "literal-punct"));

    struct coil__match m;
    CHECK(match(r, "GET", "/1/2/3/4/5/6/7/x/y/z", &m) == 0 && m.nparams == 8);
    CHECK(param_is(&m, "g", "7") && param_is(&m, "*", "x/y/z"));
    /* Failed adds leave nothing matchable behind. */
    CHECK(match(r, "GET", "/a/b", &m) == -404);
    CHECK(match(r, "GET", "/a/b/c", &m) == -404);
    coil__router_destroy(r);
}

static void test_root_and_trailing_slash(void)
{
    struct coil__router *r = coil__router_create();
    struct coil__match m;
    CHECK(match(r, "GET", "/", &m) == -404); /* empty table */
    CHECK(add(r, "GET", "/", "root") == 0);
    CHECK(add(r, "GET", "/dir/", "dir/") == 0);
    CHECK(add(r, "GET", "/file", "file") == 0);
    CHECK(tag_is(route_tag(r, "GET", "/"), "root"));
    CHECK(match(r, "GET", "//", &m) == -404);
    CHECK(tag_is(route_tag(r, "GET", "/dir/"), "dir/"));
    CHECK(match(r, "GET", "/dir", &m) == -404);
    CHECK(tag_is(route_tag(r, "GET", "/file"), "file"));
    CHECK(match(r, "GET", "/file/", &m) == -404);
    CHECK(match(r, "POST", "/", &m) == -405 && strcmp(m.allow, "GET, HEAD") == 0);

    CHECK(add(r, "GET", "/:x", "param") == 0);
    CHECK(match(r, "GET", "/", &m) == 0 && tag_is(m.route->ud, "root"));
    CHECK(match(r, "GET", "/dir", &m) == 0 && tag_is(m.route->ud, "param"));
    CHECK(match(r, "GET", "/file/", &m) == -404);
    coil__router_destroy(r);
}

static void test_find(void)
{
    struct coil__router *r = coil__router_create();
    struct coil__match m;
    CHECK(add(r, "POST", "/upload/:name", "upload") == 0);
    CHECK(add(r, "GET", "/upload/:name", "get") == 0);
    struct coil__route *rt = coil__router_find(r, "POST", "/upload/:name");
    CHECK(rt && tag_is(rt->ud, "upload") && rt->max_body == 0);
    rt->max_body = 1u << 30;
    CHECK(match(r, "POST", "/upload/x", &m) == 0 && m.route == rt);
    CHECK(m.route->max_body == 1u << 30);
    CHECK(match(r, "GET", "/upload/x", &m) == 0 && m.route->max_body == 0);
    CHECK(coil__router_find(r, "PUT", "/upload/:name") == NULL);
    CHECK(coil__router_find(r, "POST", "/upload/:other") == NULL);
    CHECK(coil__router_find(r, "POST", "/upload/x") == NULL);
    CHECK(coil__router_find(r, "POST", "/upload") == NULL);
    CHECK(coil__router_find(r, "HEAD", "/upload/:name") == NULL); /* only what was added */
    coil__router_destroy(r);
}

static void test_allow_truncated(void)
{
    struct coil__router *r = coil__router_create();
    struct coil__match m;
    char method[32];
    for (int i = 0; i < 30; i++) {
        snprintf(method, sizeof(method), "METHOD-NUMBER-%02d", i);
        CHECK(add(r, method, "/busy", "m") == 0);
    }
    CHECK(match(r, "GET", "/busy", &m) == -405);
    size_t len = strlen(m.allow);
    CHECK(len > 0 && len < sizeof(m.allow));
    CHECK(strncmp(m.allow, "METHOD-NUMBER-00, METHOD-NUMBER-01", 34) == 0);
    CHECK(m.allow[len - 1] != ' ' && m.allow[len - 1] != ',');
    CHECK(len + 2 + strlen("METHOD-NUMBER-00") >= sizeof(m.allow)); /* it was full */
    coil__router_destroy(r);
}

static void test_many_routes(void)
{
    struct coil__router *r = coil__router_create();
    static char tags[300][48];
    struct coil__match m;
    char path[96];
    for (int i = 0; i < 100; i++) {
        snprintf(tags[i], sizeof(tags[i]), "/api/v1/res%d/:id", i);
        CHECK(add(r, "GET", tags[i], tags[i]) == 0);
        snprintf(tags[100 + i], sizeof(tags[0]), "/static/file%d.css", i);
        CHECK(add(r, "GET", tags[100 + i], tags[100 + i]) == 0);
        snprintf(tags[200 + i], sizeof(tags[0]), "/api/v1/res%d/:id/sub/*", i);
        CHECK(add(r, i % 2 ? "POST" : "PUT", tags[200 + i], tags[200 + i]) == 0);
    }
    for (int i = 0; i < 100; i++) {
        snprintf(path, sizeof(path), "/api/v1/res%d/%d", i, i * 7);
        CHECK(match(r, "GET", path, &m) == 0 && m.route->ud == tags[i]);
        snprintf(path, sizeof(path), "%d", i * 7);
        CHECK(param_is(&m, "id", path));
        CHECK(tag_is(route_tag(r, "GET", tags[100 + i]), tags[100 + i]));
        snprintf(path, sizeof(path), "/api/v1/res%d/x/sub/a/b", i);
        CHECK(match(r, i % 2 ? "POST" : "PUT", path, &m) == 0 && m.route->ud == tags[200 + i]);
        CHECK(param_is(&m, "id", "x") && param_is(&m, "*", "a/b"));
        CHECK(match(r, "GET", path, &m) == -405);
        CHECK(strcmp(m.allow, i % 2 ? "POST" : "PUT") == 0);
        snprintf(path, sizeof(path), "/static/file%d.cs", i);
        CHECK(match(r, "GET", path, &m) == -404);
    }
    CHECK(match(r, "GET", "/api/v1/res100/1", &m) == -404);
    CHECK(match(r, "GET", "/api/v1/res1", &m) == -404);
    for (int i = 0; i < 300; i++) {
        const char *method = i < 200 ? "GET" : (i % 2 ? "POST" : "PUT");
        struct coil__route *rt = coil__router_find(r, method, tags[i]);
        CHECK(rt && rt->ud == tags[i]);
    }
    coil__router_destroy(r);
    coil__router_destroy(NULL);
}

int main(void)
{
    test_exact();
    test_params();
    test_wildcard();
    test_precedence();
    test_404_405();
    test_head();
    test_duplicates();
    test_bad_patterns();
    test_root_and_trailing_slash();
    test_find();
    test_allow_truncated();
    test_many_routes();
    printf("test_router: ok\n");
    return 0;
}
