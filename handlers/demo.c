/* SPDX-License-Identifier: MIT */
/*
 * demo.c: the demo API's small endpoints. /plaintext and /json answer exactly as the
 * TechEmpower benchmark specifies (the JSON body is serialised per request); /healthz answers
 * while the process lives, /readyz only while it is not draining; /echo returns the request
 * body; /stats reports the engine's counters.
 */
#include <string.h>

#include <coil_mw.h>

#include "handlers.h"

static int plaintext(struct coil_req *req, struct coil_res *res, void *ud)
{
    static const char body[] = "Hello, World!";
    int err = coil_res_header(res, "Content-Type", "text/plain");
    if (err < 0)
        return err;
    return coil_res_body_static(res, body, sizeof(body) - 1);
}

static int json(struct coil_req *req, struct coil_res *res, void *ud)
{
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    coil_json_key(j, "message");
    coil_json_string(j, "Hello, World!");
    coil_json_object_close(j);
    return 0;
}

static int healthz(struct coil_req *req, struct coil_res *res, void *ud)
{
    return coil_res_text(res, 200, "text/plain", "ok");
}

static int readyz(struct coil_req *req, struct coil_res *res, void *ud)
{
    if (coil_draining())
        return coil_res_text(res, 503, "text/plain", "draining");
    if (!coil_ready())
        return coil_res_text(res, 503, "text/plain", "not ready");
    return coil_res_text(res, 200, "text/plain", "ready");
}

static int echo(struct coil_req *req, struct coil_res *res, void *ud)
{
    struct coil_str ct = coil_req_header(req, "Content-Type");
    int err = ct.ptr ? coil_res_headern(res, "Content-Type", 12, ct.ptr, ct.len)
                     : coil_res_header(res, "Content-Type", "application/octet-stream");
    if (err < 0)
        return err;
    struct coil_str body = coil_req_body(req);
    /* The body lives in the connection's buffers until the response is serialised. */
    return coil_res_body_static(res, body.ptr, body.len);
}

static int stats(struct coil_req *req, struct coil_res *res, void *ud)
{
    struct coil_stats s;
    coil_stats_get(&s);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    coil_json_key(j, "requests");
    coil_json_uint(j, s.requests);
    coil_json_key(j, "connections");
    coil_json_uint(j, s.connections);
    coil_json_key(j, "open");
    coil_json_uint(j, s.open);
    coil_json_key(j, "heap_allocs");
    coil_json_uint(j, s.heap_allocs);
    coil_json_key(j, "jobs_run");
    coil_json_uint(j, s.jobs_run);
    coil_json_key(j, "rejected");
    coil_json_uint(j, s.rejected);
    coil_json_key(j, "deferred");
    coil_json_uint(j, s.deferred);
    coil_json_key(j, "waiting");
    coil_json_uint(j, s.waiting);
    coil_json_key(j, "aborted");
    coil_json_uint(j, s.aborted);
    coil_json_key(j, "workers");
    coil_json_uint(j, coil_worker_count());
    coil_json_object_close(j);
    return 0;
}

/* The verified JWT's claims (--jwt-key), as the handler sees them: {} without a token. */
static int whoami(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    struct coil_str claims = coil_jwt_claims(req);
    coil_res_header(res, "Content-Type", "application/json");
    return claims.len ? coil_res_body(res, claims.ptr, claims.len) : coil_res_body(res, "{}", 2);
}

int demo_routes(struct coil_app *app)
{
    int err = 0;
    err |= coil_route(app, "GET", "/plaintext", plaintext, NULL);
    err |= coil_route(app, "GET", "/json", json, NULL);
    err |= coil_route(app, "GET", "/healthz", healthz, NULL);
    err |= coil_route(app, "GET", "/readyz", readyz, NULL);
    err |= coil_route(app, "POST", "/echo", echo, NULL);
    err |= coil_route(app, "GET", "/stats", stats, NULL);
    err |= coil_route(app, "GET", "/whoami", whoami, NULL);
    return err ? -1 : 0;
}
