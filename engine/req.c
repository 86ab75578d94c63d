/* SPDX-License-Identifier: MIT */
/*
 * req.c: the handler-facing request accessors and response builders of coil.h.
 *
 * A request's strings are slices of the receive buffer (or of the connection's partial
 * buffer): nothing is copied unless it must be decoded. Everything a handler allocates, and
 * the response's headers and copied body, live in the request's arena (req->arena): the
 * worker's, reset once the response is serialised, or the request's own once it defers
 * (request.c). These functions run on the request's worker.
 */
#include <errno.h>
#include <string.h>
#include <strings.h>

#include "internal.h"
#include "query.h"

void coil__req_setup(struct coil_req *req, struct coil_res *res, struct coil__worker *w,
                     struct coil__http_req *http, const struct coil__match *m, struct coil_str body,
                     void *state)
{
    req->w = w;
    req->http = http;
    req->match = m;
    req->body = body;
    req->state = state;
    req->arena = &w->arena;
    req->rq = NULL;
    res->w = w;
    res->arena = &w->arena;
    res->rq = NULL;
    res->status = 0;
    res->nhdrs = 0;
    res->cap_hdrs = 0;
    res->hdrs = NULL;
    res->body = NULL;
    res->body_len = 0;
    res->json_active = false;
}

int coil__res_error(struct coil_res *res, int status)
{
    const char *r = coil__reason(status);
    size_t n = strlen(r);
    res->nhdrs = 0;
    res->status = status;
    res->body = NULL;
    res->body_len = 0;
    res->json_active = false;
    char *body = coil__arena_alloc(res->arena, n + 1);
    if (!body)
        return -ENOMEM;
    memcpy(body, r, n);
    body[n] = '\n';
    res->body = body;
    res->body_len = n + 1;
    return coil_res_header(res, "Content-Type", "text/plain; charset=utf-8");
}

int coil__res_finish(struct coil_res *res, int handler_rc)
{
    if (handler_rc < 0 && res->status == 0) {
        int status = handler_rc == -ENOMEM ? 503 : 500;
        coil__res_error(res, status);
        res->status = status; /* even if the text could not be had */
        return status;
    }
    if (res->json_active) {
        if (coil__json_finish(&res->json) < 0) {
            coil__res_error(res, 500);
            res->status = 500;
            return 500;
        }
        res->body = res->json.buf;
        res->body_len = res->json.len;
    }
    if (res->status == 0)
        res->status = 200;
    if (res->body_len > COIL_BODY_MAX) {
        coil__log("a response body of %zu bytes is over the %u-byte limit of whole bodies; "
                  "stream it (coil_res_stream): answering 500",
                  res->body_len, COIL_BODY_MAX);
        coil__res_error(res, 500);
        res->status = 500;
    }
    if (res->status < 200) {
        /* 1xx is interim: a client would wait for a final answer that never comes. */
        coil__res_error(res, 500);
        res->status = 500;
    }
    return res->status;
}

/* ---- request ---------------------------------------------------------------------------- */

struct coil_str coil_req_method(const struct coil_req *req)
{
    return req->http->method;
}
struct coil_str coil_req_path(const struct coil_req *req)
{
    return req->http->path;
}
struct coil_str coil_req_query(const struct coil_req *req)
{
    return req->http->query;
}
struct coil_str coil_req_body(const struct coil_req *req)
{
    return req->body;
}

void *coil_req_state(struct coil_req *req)
{
    return req->state;
}

int coil_req_version(const struct coil_req *req)
{
    return req->http->minor ? 11 : 10;
}

void *coil_req_alloc(struct coil_req *req, size_t size)
{
    return coil__arena_alloc(req->arena, size);
}

/* Percent-decodes s into the arena when it needs it; otherwise returns s itself. */
static int decode(struct coil_arena *a, struct coil_str s, bool plus, struct coil_str *out)
{
    if (!memchr(s.ptr, '%', s.len) && !(plus && memchr(s.ptr, '+', s.len))) {
        *out = s;
        return 0;
    }
    char *d = coil__arena_alloc(a, s.len + 1);
    if (!d)
        return -ENOMEM;
    ssize_t n = coil__pct_decode(d, s.ptr, s.len, plus);
    if (n < 0)
        return -EINVAL;
    d[n] = '\0';
    out->ptr = d;
    out->len = (size_t)n;
    return 0;
}

int coil_parse_int64(const char *p, size_t n, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (!p || !out)
        return -EINVAL;
    if (n > 0 && (p[0] == '-' || p[0] == '+'))
        neg = p[i++] == '-';
    if (i == n)
        return -EINVAL;
    uint64_t limit = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, v = 0;
    for (; i < n; i++) {
        unsigned d = (unsigned)((unsigned char)p[i] - '0');
        if (d > 9)
            return -EINVAL;
        if (v > (limit - d) / 10)
            return -ERANGE;
        v = v * 10 + d;
    }
    *out = neg ? (v ? -(int64_t)(v - 1) - 1 : 0) : (int64_t)v;
    return 0;
}

int coil_req_query_param(struct coil_req *req, const char *name, struct coil_str *out)
{
    struct coil_str raw;
    if (!coil__query_find(req->http->query, name, strlen(name), &raw))
        return 0;
    int err = decode(req->arena, raw, true, out);
    return err < 0 ? err : 1;
}

struct coil_str coil_req_param(const struct coil_req *req, const char *name)
{
    struct coil_str none = {NULL, 0};
    const struct coil__match *m = req->match;
    size_t n = strlen(name);
    for (uint32_t i = 0; i < m->nparams; i++) {
        if (m->names[i].len != n || memcmp(m->names[i].ptr, name, n) != 0)
            continue;
        struct coil_str out;
        if (decode(req->arena, m->values[i], false, &out) < 0)
            return m->values[i]; /* badly encoded: the raw text */
        return out;
    }
    return none;
}

struct coil_str coil_req_header(const struct coil_req *req, const char *name)
{
    size_t n = strlen(name);
    const struct coil__http_req *h = req->http;
    for (uint32_t i = 0; i < h->nheaders; i++) {
        struct coil_str hn = h->headers[i].name;
        if (hn.len == n && strncasecmp(hn.ptr, name, n) == 0)
            return h->headers[i].value;
    }
    return (struct coil_str){NULL, 0};
}

size_t coil_req_header_count(const struct coil_req *req)
{
    return req->http->nheaders;
}

int coil_req_header_at(const struct coil_req *req, size_t i, struct coil_str *name,
                       struct coil_str *value)
{
    if (i >= req->http->nheaders)
        return -ERANGE;
    *name = req->http->headers[i].name;
    *value = req->http->headers[i].value;
    return 0;
}

/* ---- response --------------------------------------------------------------------------- */

void coil_res_status(struct coil_res *res, int status)
{
    if (status >= 100 && status <= 999)
        res->status = status;
}

static bool engine_header(const char *name, size_t n)
{
    static const char *const own[] = {"date", "server", "content-length", "connection",
                                      "transfer-encoding"};
    for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
        if (strlen(own[i]) == n && strncasecmp(own[i], name, n) == 0)
            return true;
    return false;
}

static bool header_text_ok(const char *s, size_t n, bool is_name)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\r' || ch == '\n' || ch == 0 || (is_name && (ch <= ' ' || ch == ':')))
            return false;
    }
    return !is_name || n > 0;
}

int coil_res_headern(struct coil_res *res, const char *name, size_t name_len, const char *value,
                     size_t value_len)
{
    if (name_len > UINT32_MAX || value_len > UINT32_MAX || !header_text_ok(name, name_len, true) ||
        !header_text_ok(value, value_len, false))
        return -EINVAL;
    if (engine_header(name, name_len))
        return -EPERM;
    struct coil_arena *a = res->arena;
    if (res->nhdrs == res->cap_hdrs) {
        uint32_t cap = res->cap_hdrs ? res->cap_hdrs * 2 : 8;
        struct coil__rhdr *n =
            coil__arena_grow(a, res->hdrs, res->cap_hdrs * sizeof(*n), cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        res->hdrs = n;
        res->cap_hdrs = cap;
    }
    char *nm = coil__arena_alloc(a, name_len + value_len);
    if (!nm)
        return -ENOMEM;
    memcpy(nm, name, name_len);
    memcpy(nm + name_len, value, value_len);
    res->hdrs[res->nhdrs++] =
        (struct coil__rhdr){nm, nm + name_len, (uint32_t)name_len, (uint32_t)value_len};
    return 0;
}

int coil_res_header(struct coil_res *res, const char *name, const char *value)
{
    return coil_res_headern(res, name, strlen(name), value, strlen(value));
}

int coil_res_body(struct coil_res *res, const void *data, size_t len)
{
    if (len > COIL_BODY_MAX)
        return -EMSGSIZE;
    char *b = coil__arena_alloc(res->arena, len);
    if (!b && len)
        return -ENOMEM;
    if (len)
        memcpy(b, data, len);
    res->body = b;
    res->body_len = len;
    res->json_active = false;
    return 0;
}

int coil_res_body_static(struct coil_res *res, const void *data, size_t len)
{
    res->body = data;
    res->body_len = len;
    res->json_active = false;
    return 0;
}

int coil_res_text(struct coil_res *res, int status, const char *content_type, const char *body)
{
    coil_res_status(res, status);
    int err = coil_res_header(res, "Content-Type", content_type);
    if (err < 0)
        return err;
    return coil_res_body(res, body, strlen(body));
}

struct coil_json *coil_res_json(struct coil_res *res)
{
    if (!res->json_active) {
        coil__json_init(&res->json, res->arena);
        res->json_active = true;
        coil_res_header(res, "Content-Type", "application/json");
    }
    return &res->json;
}
