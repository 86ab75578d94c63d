/* SPDX-License-Identifier: MIT */
/*
 * proxy.c: the reverse proxy, a handler like any other built on the public API: it defers,
 * sends the request upstream with coil_fetch (owned by the request, so a client that goes
 * away cancels the upstream exchange), and streams the response back with coil_res_stream at
 * the client's pace: a write that would pass COIL_STREAM_HIGH pauses the fetch, and the
 * client's drain resumes it, so a slow client slows the upstream down instead of the worker
 * buffering the body. What crosses is filtered as RFC 9110 7.6.1 says (hop-by-hop fields and
 * the ones Connection lists stay behind) and the X-Forwarded-* and Via fields are added.
 *
 * Also the --proxy PREFIX=URL option [COIL_PROXY], which every coil binary has.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "internal.h"

#define VIA "1.1 coil"

struct coil__proxy_route {
    struct coil_upstream *up; /* made by coil__proxies_apply */
    char *url;
    size_t prefix_len; /* bytes of the pattern before its "*" */
    struct coil__proxy_route *next;
};

/* Per request, in its arena. */
struct pstate {
    struct coil_req *req;
    struct coil_res *res;
    struct coil_fetch f;
    bool streaming;
    bool ended; /* the fetch reported DONE or ERROR: body pieces left are dropped */
};

/* ---- hop-by-hop fields ------------------------------------------------------------------ */

static bool hop_by_hop(struct coil_str n)
{
    switch (n.len) { /* told apart by length first: most fields are none of these */
    case 2:
        return coil__http_name_eq(n, "te");
    case 7:
        return coil__http_name_eq(n, "upgrade") || coil__http_name_eq(n, "trailer");
    case 10:
        return coil__http_name_eq(n, "connection") || coil__http_name_eq(n, "keep-alive");
    case 16:
        return coil__http_name_eq(n, "proxy-connection");
    case 17:
        return coil__http_name_eq(n, "transfer-encoding");
    default:
        return false;
    }
}

/* Is name one of the comma-separated tokens of a Connection field value? */
static bool listed(struct coil_str list, struct coil_str name)
{
    const char *p = list.ptr, *e = p + list.len;
    while (p < e) {
        while (p < e && (*p == ',' || *p == ' ' || *p == '\t'))
            p++;
        const char *t = p;
        while (p < e && *p != ',')
            p++;
        const char *te = p;
        while (te > t && (te[-1] == ' ' || te[-1] == '\t'))
            te--;
        if ((size_t)(te - t) == name.len && name.len) {
            size_t i = 0;
            while (i < name.len && ((t[i] | 0x20) == (name.ptr[i] | 0x20)))
                i++;
            if (i == name.len)
                return true;
        }
    }
    return false;
}

static bool has_connection(const struct coil_header *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (h[i].name.len == 10 && coil__http_name_eq(h[i].name, "connection"))
            return true;
    return false;
}

static bool connection_listed(const struct coil_header *h, size_t n, struct coil_str name)
{
    for (size_t i = 0; i < n; i++)
        if (h[i].name.len == 10 && coil__http_name_eq(h[i].name, "connection") &&
            listed(h[i].value, name))
            return true;
    return false;
}

/*
 * Every value of the list field `lower` in h[0..n), joined with ", ", then tail: the chain a
 * proxy extends (X-Forwarded-For, Via), whether it came in one field line or several. In the
 * request's arena; {NULL, 0} when out of memory.
 */
static struct coil_str chain(struct coil_req *req, const struct coil_header *h, size_t n,
                             const char *lower, const char *tail, size_t tail_len)
{
    size_t ln = strlen(lower), need = tail_len;
    for (size_t i = 0; i < n; i++)
        if (h[i].name.len == ln && coil__http_name_eq(h[i].name, lower))
            need += h[i].value.len + 2;
    char *out = coil_req_alloc(req, need);
    if (!out)
        return (struct coil_str){NULL, 0};
    char *p = out;
    for (size_t i = 0; i < n; i++) {
        if (h[i].name.len != ln || !coil__http_name_eq(h[i].name, lower) || !h[i].value.len)
            continue;
        memcpy(p, h[i].value.ptr, h[i].value.len);
        p += h[i].value.len;
        *p++ = ',';
        *p++ = ' ';
    }
    memcpy(p, tail, tail_len);
    return (struct coil_str){out, (size_t)(p - out) + tail_len};
}

/* ---- the response ----------------------------------------------------------------------- */

static void on_writable(void *ud)
{
    struct pstate *st = ud;
    coil_fetch_resume(st->f);
}

static int copy_head(struct pstate *st, const struct coil_fetch_ev *ev)
{
    struct coil_res *res = st->res;
    coil_res_status(res, ev->status);
    bool conn = has_connection(ev->headers, ev->nheaders);
    for (size_t i = 0; i < ev->nheaders; i++) {
        const struct coil_header *h = &ev->headers[i];
        if (hop_by_hop(h->name) || (conn && connection_listed(ev->headers, ev->nheaders, h->name)))
            continue;
        struct coil_str n = h->name;
        if ((n.len == 4 && coil__http_name_eq(n, "date")) ||
            (n.len == 6 && coil__http_name_eq(n, "server")) ||
            (n.len == 14 && coil__http_name_eq(n, "content-length")))
            continue; /* the engine writes these */
        if (n.len == 3 && coil__http_name_eq(n, "via"))
            continue; /* extended below */
        int err = coil_res_headern(res, n.ptr, n.len, h->value.ptr, h->value.len);
        if (err < 0)
            return err;
    }
    struct coil_str via = chain(st->req, ev->headers, ev->nheaders, "via", VIA, sizeof(VIA) - 1);
    if (!via.ptr)
        return -ENOMEM;
    return coil_res_headern(res, "Via", 3, via.ptr, via.len);
}

static int on_event(const struct coil_fetch_ev *ev, void *ud)
{
    struct pstate *st = ud;
    struct coil_res *res = st->res;
    switch (ev->kind) {
    case COIL_FETCH_HEAD:
        if (copy_head(st, ev) < 0) {
            coil_res_fail(res, 502);
            return -1;
        }
        if (ev->length >= 0)
            coil_res_length(res, (uint64_t)ev->length);
        if (coil_res_stream(res) < 0) {
            return -1; /* -EPIPE: the client is gone, and the fetch with it */
        }
        st->streaming = true;
        return 0;
    case COIL_FETCH_BODY: {
        int err = coil_res_write(res, ev->data, ev->len);
        if (err == 0)
            return 0;
        if (err == -EAGAIN) {
            coil_res_on_writable(res, on_writable, st);
            return COIL_FETCH_PAUSE;
        }
        if (err != -EPIPE)
            coil_res_fail(res, 502);
        return -1;
    }
    case COIL_FETCH_DONE:
        st->ended = true;
        coil_res_finish(res);
        return 0;
    case COIL_FETCH_ERROR:
        st->ended = true;
        coil_res_fail(res, ev->error == -ETIMEDOUT ? 504 : 502);
        return 0;
    case COIL_FETCH_WRITABLE:
        coil_req_resume(st->req);
        return 0;
    }
    return 0;
}

/* The client's body, piece by piece, on its way upstream at the upstream's pace. */
static int on_piece(struct coil_req *req, const void *data, size_t len, void *ud)
{
    (void)req;
    struct pstate *st = ud;
    if (st->ended)
        return 0; /* answered already: the rest is dropped (and the connection closes) */
    int err = data ? coil_fetch_write(st->f, data, len) : coil_fetch_write_end(st->f);
    if (err == -EAGAIN)
        return COIL_BODY_PAUSE;
    if (err < 0 && err != -ENOENT) {
        /* Out of memory: the upstream would wait for bytes that never come. */
        coil_fetch_cancel(st->f);
        st->ended = true;
        coil_res_fail(st->res, 503);
    }
    return 0;
}

/* ---- the request ------------------------------------------------------------------------ */

static int fail_now(struct coil_res *res, int err)
{
    coil_res_fail(res, err == -EBUSY ? 503 : err == -ENOMEM ? 503 : 502);
    return 0;
}

/* Does the path hold a "." or ".." segment, as sent or percent-encoded ("%2e")? Forwarded, it
 * could leave the upstream's base path once the upstream normalises it. */
static bool dot_segment(struct coil_str path)
{
    const char *p = path.ptr, *e = p + path.len;
    while (p < e) {
        const char *s = p;
        while (p < e && *p != '/')
            p++;
        unsigned dots = 0;
        bool other = false;
        for (const char *q = s; q < p && !other;) {
            if (*q == '.') {
                dots++;
                q++;
            } else if (p - q >= 3 && q[0] == '%' && q[1] == '2' && (q[2] | 0x20) == 'e') {
                dots++;
                q += 3;
            } else {
                other = true;
            }
        }
        if (!other && (dots == 1 || dots == 2))
            return true;
        p++;
    }
    return false;
}

static int proxy_handler(struct coil_req *req, struct coil_res *res, void *ud)
{
    const struct coil__proxy_route *pr = ud;
    if (dot_segment(coil_req_path(req)))
        return coil_res_text(res, 400, "text/plain", "Bad Request: dot segment in path\n");
    struct pstate *st = coil_req_alloc(req, sizeof(*st));
    if (!st)
        return -ENOMEM;
    memset(st, 0, sizeof(*st));
    struct coil_defer d = coil_res_defer(res, NULL, NULL);
    if (!d.id)
        return -ENOMEM;
    st->req = coil_defer_req(d); /* the request's own copy from here on */
    st->res = res;
    req = st->req;

    /* The target: the upstream's base path, the rest of ours, the query. */
    size_t blen;
    const char *base = coil__upstream_base(pr->up, &blen);
    struct coil_str path = coil_req_path(req), query = coil_req_query(req);
    size_t skip = path.len < pr->prefix_len ? path.len : pr->prefix_len;
    size_t tlen = blen + (path.len - skip) + (query.len ? 1 + query.len : 0);
    char *target = coil_req_alloc(req, tlen + 1);
    if (!target)
        return fail_now(res, -ENOMEM);
    char *t = target;
    memcpy(t, base, blen);
    t += blen;
    memcpy(t, path.ptr + skip, path.len - skip);
    t += path.len - skip;
    if (query.len) {
        *t++ = '?';
        memcpy(t, query.ptr, query.len);
        t += query.len;
    }

    /* The headers: the client's, less hop-by-hop ones, plus ours. */
    size_t nh = coil_req_header_count(req);
    struct coil_header *in = coil_req_alloc(req, sizeof(*in) * (nh + 1));
    struct coil_header *out = coil_req_alloc(req, sizeof(*out) * (nh + 4));
    if (!in || !out)
        return fail_now(res, -ENOMEM);
    for (size_t i = 0; i < nh; i++)
        coil_req_header_at(req, i, &in[i].name, &in[i].value);
    size_t no = 0;
    struct coil_str host = {NULL, 0};
    bool conn = has_connection(in, nh);
    for (size_t i = 0; i < nh; i++) {
        struct coil_str n = in[i].name;
        if (hop_by_hop(n) || (conn && connection_listed(in, nh, n)))
            continue;
        if ((n.len == 4 && coil__http_name_eq(n, "host"))) {
            host = in[i].value;
            continue;
        }
        if ((n.len == 14 && coil__http_name_eq(n, "content-length")) ||
            (n.len == 11 && coil__http_name_eq(n, "traceparent")) || /* ours replaces it */
            (n.len == 10 && coil__http_name_eq(n, "tracestate")) ||
            (n.len == 6 && coil__http_name_eq(n, "expect")) ||
            (n.len == 17 && coil__http_name_eq(n, "x-forwarded-proto")) ||
            (n.len == 16 && coil__http_name_eq(n, "x-forwarded-host")))
            continue;
        if ((n.len == 15 && coil__http_name_eq(n, "x-forwarded-for")) ||
            (n.len == 3 && coil__http_name_eq(n, "via")))
            continue; /* extended below */
        out[no++] = in[i];
    }
    const char *ip;
    size_t iplen = coil__conn_peer(req->w, req->rq->conn, &ip);
    if (!iplen) {
        ip = "unknown";
        iplen = 7;
    }
    struct coil_str xff = chain(req, in, nh, "x-forwarded-for", ip, iplen);
    struct coil_str via = chain(req, in, nh, "via", VIA, sizeof(VIA) - 1);
    if (!xff.ptr || !via.ptr)
        return fail_now(res, -ENOMEM);
    out[no++] = (struct coil_header){{"X-Forwarded-For", 15}, xff};
    out[no++] =
        (struct coil_header){{"X-Forwarded-Proto", 17},
                             req->rq->conn->flags & CONN_TLS ? (struct coil_str){"https", 5}
                                                             : (struct coil_str){"http", 4}};
    if (host.len)
        out[no++] = (struct coil_header){{"X-Forwarded-Host", 16}, host};
    out[no++] = (struct coil_header){{"Via", 3}, via};

    struct coil_str method = coil_req_method(req);
    char *m = coil_req_alloc(req, method.len + 1);
    if (!m)
        return fail_now(res, -ENOMEM);
    memcpy(m, method.ptr, method.len);
    m[method.len] = 0;
    int64_t declared = coil_req_body_length(req);
    struct coil_fetch_req fr = {.method = m,
                                .target = {target, tlen},
                                .headers = out,
                                .nheaders = no,
                                .stream_body = declared != 0,
                                .stream_length = declared};
    int err = coil_fetch(req, pr->up, &fr, on_event, st, &st->f);
    if (err < 0)
        return fail_now(res, err);
    err = declared != 0 ? coil_req_read(req, on_piece, st) : 0;
    if (err == -EPIPE)
        return 0; /* the connection failed under the call: the request is gone */
    if (err < 0)
        return fail_now(res, -ENOMEM);
    return 0;
}

/* ---- routes ----------------------------------------------------------------------------- */

void coil__proxies_free(struct coil_app *app)
{
    while (app->proxies) {
        struct coil__proxy_route *n = app->proxies->next;
        free(app->proxies->url);
        free(app->proxies);
        app->proxies = n;
    }
}

int coil_route_proxy(struct coil_app *app, const char *pattern, const char *url)
{
    if (!app || !pattern || !url)
        return -EINVAL;
    size_t pl = strlen(pattern);
    if (pl < 2 || pattern[0] != '/' || pattern[pl - 1] != '*' || pattern[pl - 2] != '/' ||
        strchr(pattern, ':'))
        return -EINVAL;
    if (strncmp(url, "http://", 7) != 0 || !url[7] || url[7] == '/')
        return -EINVAL;
    struct coil__proxy_route *pr = calloc(1, sizeof(*pr));
    if (!pr || !(pr->url = strdup(url))) {
        free(pr);
        return -ENOMEM;
    }
    pr->prefix_len = pl - 1;
    pr->next = app->proxies;
    app->proxies = pr;
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"};
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        /* Early routes: the handler runs at the head, and the body streams through. */
        int err = coil_route_stream(app, methods[i], pattern, NULL, proxy_handler, pr);
        if (err < 0)
            return err;
    }
    return 0;
}

/* --proxy PREFIX=URL: PREFIX is a path ending in "/" (the route is PREFIX*). */
static int add_proxy(struct coil_app *app, const char *pattern, const char *url)
{
    return coil_route_proxy(app, pattern, url);
}

static int proxy_option(const char *value, void *ud)
{
    return coil__prefix_option(ud, value, "proxy",
                               "wants PREFIX=URL with PREFIX ending in '/' and an http:// URL, "
                               "like /api/=http://127.0.0.1:9000/",
                               add_proxy);
}

int coil__proxies_apply(struct coil_app *app)
{
    const struct coil__config *cfg = &app->cfg;
    struct coil_upstream_opts o = {
        .connect_timeout_ms = (uint32_t)cfg->proxy_connect_timeout_ms,
        .head_timeout_ms = (uint32_t)cfg->proxy_read_timeout_ms,
        .idle_timeout_ms = (uint32_t)cfg->proxy_read_timeout_ms,
    };
    for (struct coil__proxy_route *pr = app->proxies; pr; pr = pr->next) {
        if (pr->up)
            continue;
        pr->up = coil_upstream(app, pr->url, &o);
        if (!pr->up) {
            fprintf(stderr, "coil: cannot proxy to %s (see above)\n", pr->url);
            return -1;
        }
    }
    return 0;
}

int coil__proxy_option(struct coil_app *app)
{
    return coil_app_option(app, "proxy", "COIL_PROXY", "PREFIX=URL",
                           "reverse-proxy PREFIX* to URL (repeatable; the variable takes several, "
                           "space-separated), e.g. /api/=http://127.0.0.1:9000/",
                           proxy_option, app);
}
