/* SPDX-License-Identifier: MIT */
/*
 * relay.c: a handler that calls another service. GET /relay/<path> fetches <path> from the
 * --backend URL [COIL_BACKEND] and answers with the backend's status, Content-Type and whole
 * body (collected in the request's memory, at most 1 MiB): the shape of an API handler that
 * asks one service and returns what it said. A backend that cannot be reached is a 502, one
 * that is too slow a 504, a full connection pool a 503.
 */
#include <errno.h>
#include <string.h>

#include "handlers.h"

#define RELAY_MAX (1u << 20)

static struct coil_upstream *backend;

struct relay {
    struct coil_req *req;
    struct coil_res *res;
    char *body;
    size_t len, cap;
    char ctype[128];
};

static int on_backend(const struct coil_fetch_ev *ev, void *ud)
{
    struct relay *r = ud;
    switch (ev->kind) {
    case COIL_FETCH_HEAD:
        for (size_t i = 0; i < ev->nheaders; i++) {
            const struct coil_header *h = &ev->headers[i];
            if (h->name.len == 12 && strncasecmp(h->name.ptr, "content-type", 12) == 0 &&
                h->value.len < sizeof(r->ctype)) {
                memcpy(r->ctype, h->value.ptr, h->value.len);
                r->ctype[h->value.len] = 0;
            }
        }
        if (ev->length > (int64_t)RELAY_MAX) {
            coil_res_fail(r->res, 502);
            return -1;
        }
        return 0;
    case COIL_FETCH_BODY:
        if (r->len + ev->len > RELAY_MAX) {
            coil_res_fail(r->res, 502);
            return -1;
        }
        if (r->len + ev->len > r->cap) {
            size_t cap = r->cap ? r->cap * 2 : 4096;
            while (cap < r->len + ev->len)
                cap *= 2;
            char *nb = coil_req_alloc(r->req, cap);
            if (!nb) {
                coil_res_fail(r->res, 503);
                return -1;
            }
            if (r->len)
                memcpy(nb, r->body, r->len);
            r->body = nb;
            r->cap = cap;
        }
        memcpy(r->body + r->len, ev->data, ev->len);
        r->len += ev->len;
        return 0;
    case COIL_FETCH_DONE:
        coil_res_status(r->res, ev->status);
        if (r->ctype[0])
            coil_res_header(r->res, "Content-Type", r->ctype);
        coil_res_body(r->res, r->body, r->len);
        coil_res_finish(r->res);
        return 0;
    case COIL_FETCH_ERROR:
        coil_res_fail(r->res, ev->error == -ETIMEDOUT ? 504 : 502);
        return 0;
    case COIL_FETCH_WRITABLE: /* no streamed request body here */
        return 0;
    }
    return 0;
}

static int relay(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    if (!backend)
        return coil_res_text(res, 404, "text/plain", "no --backend configured\n");
    struct relay *r = coil_req_alloc(req, sizeof(*r));
    if (!r)
        return -ENOMEM;
    memset(r, 0, sizeof(*r));
    struct coil_defer d = coil_res_defer(res, NULL, NULL);
    if (!d.id)
        return -ENOMEM;
    r->req = coil_defer_req(d);
    r->res = res;
    /* The rest of our path, as sent, after "/relay". */
    struct coil_str path = coil_req_path(r->req);
    struct coil_fetch_req fr = {.target = {path.ptr + 6, path.len - 6}};
    int err = coil_fetch(r->req, backend, &fr, on_backend, r, NULL);
    if (err < 0)
        coil_res_fail(res, err == -EBUSY || err == -ENOMEM ? 503 : 502);
    return 0;
}

static int set_backend(const char *value, void *ud)
{
    struct coil_app *app = ud;
    backend = coil_upstream(app, value, NULL);
    return backend ? 0 : -1;
}

int relay_routes(struct coil_app *app)
{
    int err =
        coil_app_option(app, "backend", "COIL_BACKEND", "URL",
                        "the service GET /relay/PATH calls (http://host:port)", set_backend, app);
    if (err < 0)
        return err;
    return coil_route(app, "GET", "/relay/*", relay, NULL);
}
