/* SPDX-License-Identifier: MIT */
/*
 * router: maps (method, path) to a handler. Routes are added before the workers start and the
 * table is read-only afterwards, so every worker matches against it without locks.
 * Patterns: literal segments, ":name" (one non-empty segment), and a last segment "*" (the
 * rest of the path, possibly empty). Precedence when several match: literal over ":name" over
 * "*", decided segment by segment, with backtracking (so "/a/b" still matches "/:x/c" is not
 * taken when "/a/:y" exists and matches). A GET route also answers HEAD. Matching is on the raw
 * path; parameter values are raw slices of it (the request layer percent-decodes them).
 */
#ifndef COIL_ROUTER_H
#define COIL_ROUTER_H

#include <stddef.h>
#include <stdint.h>

#include "coil.h"

#define COIL_MAX_PARAMS 8

struct coil__router;
struct coil__mwlist;
struct coil__chain;

struct coil__route {
    coil_handler handler;
    void *ud;
    coil_body_fn on_body;      /* streaming route: gets the body as it arrives; NULL: buffered */
    bool early;                /* the handler runs at the head and reads the body (coil_req_read) */
    uint64_t max_body;         /* per-route body limit; 0 = engine default */
    const char *method;        /* as registered (NUL-terminated, the router's copy) */
    struct coil_str pattern;   /* as registered (NUL-terminated, the router's copy) */
    uint32_t id;               /* 0..count-1 in registration order */
    struct coil__mwlist *uses; /* coil_route_use, in order (mw.c) */
    const struct coil__chain *chain; /* the app's middleware then the route's (mw.c) */
};

struct coil__match {
    const struct coil__route *route; /* set when found */
    uint32_t nparams;
    struct coil_str names[COIL_MAX_PARAMS];  /* "id", or "*" for the wildcard */
    struct coil_str values[COIL_MAX_PARAMS]; /* slices of the path */
    char allow[160];                         /* for 405: "GET, HEAD, POST" (NUL-terminated) */
};

struct coil__router *coil__router_create(void); /* NULL on OOM (uses malloc) */
void coil__router_destroy(struct coil__router *r);

/* -EINVAL bad method or pattern (not starting with '/', empty ':', '*' not last, more than
 * COIL_MAX_PARAMS params), -EEXIST same method and pattern twice, -ENOMEM. */
int coil__router_add(struct coil__router *r, const char *method, const char *pattern,
                     coil_handler h, void *ud);
/* The route registered with exactly this method and pattern, for changing its options. */
struct coil__route *coil__router_find(struct coil__router *r, const char *method,
                                      const char *pattern);

/* Every route, in registration order (ids 0..count-1). */
uint32_t coil__router_count(const struct coil__router *r);
struct coil__route *coil__router_at(const struct coil__router *r, uint32_t id);

/* 0 found (m->route set), -404 no route for the path, -405 path known but not for this method
 * (m->allow lists the methods). */
int coil__router_match(const struct coil__router *r, struct coil_str method, struct coil_str path,
                       struct coil__match *m);

#endif
