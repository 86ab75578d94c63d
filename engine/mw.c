/* SPDX-License-Identifier: MIT */
/*
 * mw.c: the middleware chain (coil.h, "middleware"): registration, the chains built once at
 * coil_app_run, the steps run around each request (request.c calls them), and what steps read
 * and write: the response as built, filters on streamed bodies, values handed between steps,
 * the request's ID, trace context and peer address. Also the request-ID built-in.
 *
 * A chain is a flat array per route: the engine's built-ins (installed by their modules from
 * the options, outermost), the app's coil_app_use middleware, then the route's own. Requests
 * that match no route, and those the engine refuses before routing, use the app's chain (the
 * built-ins and coil_app_use only). Arrays are built on the main thread before the workers
 * start and read-only afterwards, like the route table.
 *
 * Per-request extras (ID, trace, values) live in a small record in the request arena, made on
 * first use, so a request nobody asks about costs one NULL pointer.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include "coil_mw.h"
#include "internal.h"

/* Built without the library a module needs: its calls exist and say so. */
#ifndef COIL_HAVE_AUTH
int coil_mw_auth(struct coil_app *app, const struct coil_auth_opts *o, struct coil_mw *out)
{
    (void)app, (void)o, (void)out;
    return -ENOTSUP;
}
struct coil_str coil_jwt_claims(const struct coil_req *req)
{
    (void)req;
    return (struct coil_str){"", 0};
}
#endif
#ifndef COIL_HAVE_COMPRESS
int coil_mw_compress(struct coil_app *app, const struct coil_compress_opts *o, struct coil_mw *out)
{
    (void)app, (void)o, (void)out;
    return -ENOTSUP;
}
#endif

/* ---- registration ----------------------------------------------------------------------- */

static int list_add(struct coil__mwlist **head, const struct coil_mw *mw)
{
    if (!mw || (!mw->before && !mw->after && !mw->done))
        return -EINVAL;
    struct coil__mwlist *n = calloc(1, sizeof(*n));
    if (!n)
        return -ENOMEM;
    n->mw = *mw;
    while (*head)
        head = &(*head)->next;
    *head = n;
    return 0;
}

static void list_free(struct coil__mwlist *l)
{
    while (l) {
        struct coil__mwlist *n = l->next;
        free(l);
        l = n;
    }
}

int coil_app_use(struct coil_app *app, const struct coil_mw *mw)
{
    return app ? list_add(&app->mw_uses, mw) : -EINVAL;
}

int coil__use_builtin(struct coil_app *app, const struct coil_mw *mw)
{
    return list_add(&app->mw_builtins, mw);
}

int coil_route_use(struct coil_app *app, const char *method, const char *pattern,
                   const struct coil_mw *mw)
{
    if (!app || !method || !pattern)
        return -EINVAL;
    struct coil__route *r = coil__router_find(app->router, method, pattern);
    if (!r)
        return -ENOENT;
    return list_add(&r->uses, mw);
}

static uint32_t list_len(const struct coil__mwlist *l)
{
    uint32_t n = 0;
    for (; l; l = l->next)
        n++;
    return n;
}

static struct coil__chain *chain_make(const struct coil__mwlist *const *lists, size_t nlists)
{
    uint32_t n = 0;
    for (size_t i = 0; i < nlists; i++)
        n += list_len(lists[i]);
    struct coil__chain *ch = calloc(1, sizeof(*ch) + n * sizeof(ch->mw[0]));
    if (!ch)
        return NULL;
    for (size_t i = 0; i < nlists; i++)
        for (const struct coil__mwlist *l = lists[i]; l; l = l->next) {
            ch->mw[ch->n++] = l->mw;
            ch->before |= l->mw.before != NULL;
            ch->after |= l->mw.after != NULL;
            ch->done |= l->mw.done != NULL;
        }
    return ch;
}

int coil__chains_build(struct coil_app *app)
{
    const struct coil__mwlist *app_lists[] = {app->mw_builtins, app->mw_uses};
    app->chain = chain_make(app_lists, 2);
    if (!app->chain)
        return -ENOMEM;
    uint32_t n = coil__router_count(app->router);
    for (uint32_t i = 0; i < n; i++) {
        struct coil__route *r = coil__router_at(app->router, i);
        if (!r->uses) {
            r->chain = app->chain; /* shared: most routes have no middleware of their own */
            continue;
        }
        const struct coil__mwlist *lists[] = {app->mw_builtins, app->mw_uses, r->uses};
        r->chain = chain_make(lists, 3);
        if (!r->chain)
            return -ENOMEM;
    }
    return 0;
}

void coil__chains_free(struct coil_app *app)
{
    uint32_t n = app->router ? coil__router_count(app->router) : 0;
    for (uint32_t i = 0; i < n; i++) {
        struct coil__route *r = coil__router_at(app->router, i);
        if (r->chain != app->chain)
            free((void *)r->chain);
        r->chain = NULL;
        list_free(r->uses);
        r->uses = NULL;
    }
    free(app->chain);
    app->chain = NULL;
    list_free(app->mw_builtins);
    list_free(app->mw_uses);
    app->mw_builtins = app->mw_uses = NULL;
}

/* ---- the steps -------------------------------------------------------------------------- */

int coil__mw_before(struct coil__rq *rq, uint32_t from)
{
    const struct coil__chain *ch = rq->chain;
    for (uint32_t i = from; i < ch->n; i++) {
        const struct coil_mw *m = &ch->mw[i];
        if (!m->before)
            continue;
        rq->mw_next = i + 1;
        int rc = m->before(&rq->req, &rq->res, m->ud);
        if (rc != COIL_MW_NEXT)
            return rc < 0 ? rc : COIL_MW_DONE;
    }
    rq->mw_next = ch->n;
    return COIL_MW_NEXT;
}

void coil__mw_after(struct coil__rq *rq)
{
    const struct coil__chain *ch = rq->chain;
    if (rq->after_ran)
        return;
    rq->after_ran = true;
    for (uint32_t i = ch->n; i-- > 0;)
        if (ch->mw[i].after)
            ch->mw[i].after(&rq->req, &rq->res, ch->mw[i].ud);
}

void coil__mw_done(struct coil__worker *w, struct coil__rq *rq, bool complete)
{
    const struct coil__chain *ch = rq->chain;
    if (!ch || !ch->done)
        return;
    const struct coil__route *route = rq->req.match ? rq->req.match->route : NULL;
    struct coil_done d = {.status = rq->sent,
                          .route = route ? route->pattern : (struct coil_str){"", 0},
                          .start_ns = rq->start_ns,
                          .duration_ns = coil__clock_ns() - rq->start_ns,
                          .bytes_in = rq->bytes_in,
                          .bytes_out = rq->bytes_out,
                          .complete = complete};
    (void)w;
    for (uint32_t i = ch->n; i-- > 0;)
        if (ch->mw[i].done)
            ch->mw[i].done(&rq->req, &d, ch->mw[i].ud);
}

/* ---- the response, for after steps ------------------------------------------------------ */

int coil_res_status_get(const struct coil_res *res)
{
    return res->status ? res->status : 200;
}

struct coil_str coil_res_header_get(const struct coil_res *res, const char *name)
{
    size_t n = strlen(name);
    for (uint32_t i = 0; i < res->nhdrs; i++) {
        const struct coil__rhdr *h = &res->hdrs[i];
        if (h->name_len == n && !strncasecmp(h->name, name, n))
            return (struct coil_str){h->value, h->value_len};
    }
    return (struct coil_str){NULL, 0};
}

int coil_res_header_at(const struct coil_res *res, size_t i, struct coil_str *name,
                       struct coil_str *value)
{
    if (i >= res->nhdrs)
        return -ERANGE;
    const struct coil__rhdr *h = &res->hdrs[i];
    *name = (struct coil_str){h->name, h->name_len};
    *value = (struct coil_str){h->value, h->value_len};
    return 0;
}

int coil_res_header_remove(struct coil_res *res, const char *name)
{
    size_t n = strlen(name);
    uint32_t kept = 0;
    for (uint32_t i = 0; i < res->nhdrs; i++) {
        const struct coil__rhdr *h = &res->hdrs[i];
        if (h->name_len == n && !strncasecmp(h->name, name, n))
            continue;
        res->hdrs[kept++] = *h;
    }
    int removed = (int)(res->nhdrs - kept);
    res->nhdrs = kept;
    return removed;
}

struct coil_str coil_res_body_get(const struct coil_res *res)
{
    if (res->rq && res->rq->streaming)
        return (struct coil_str){NULL, 0};
    if (res->json_active && res->json.buf && !res->body)
        return (struct coil_str){res->json.buf, res->json.len};
    return (struct coil_str){res->body, res->body_len};
}

bool coil_res_streamed(const struct coil_res *res)
{
    return res->rq && res->rq->streaming;
}

int coil_res_filter(struct coil_res *res, coil_filter_fn fn, void *ud)
{
    struct coil__rq *rq = res->rq;
    if (!rq || !fn || !rq->streaming || rq->sent)
        return -EINVAL; /* a whole body, or a head already written */
    if (rq->filter)
        return -EBUSY;
    rq->filter = fn;
    rq->filter_ud = ud;
    rq->length = 0; /* what the filter makes has a length nobody knows yet */
    return 0;
}

/* ---- values between steps --------------------------------------------------------------- */

struct coil__slot {
    const void *key;
    void *value;
    struct coil__slot *next;
};

struct coil__rqx {
    struct coil_str id;
    struct coil_trace *trace;
    struct coil_str peer;
    bool peer_known;
    struct coil__slot *slots;
};

static struct coil__rqx *extras(struct coil_req *req)
{
    struct coil__rq *rq = req->rq;
    if (!rq)
        return NULL;
    if (!rq->x) {
        rq->x = coil__arena_alloc(req->arena, sizeof(*rq->x));
        if (rq->x)
            memset(rq->x, 0, sizeof(*rq->x));
    }
    return rq->x;
}

int coil_req_set(struct coil_req *req, const void *key, void *value)
{
    struct coil__rqx *x = extras(req);
    if (!x)
        return -ENOMEM;
    for (struct coil__slot *s = x->slots; s; s = s->next)
        if (s->key == key) {
            s->value = value;
            return 0;
        }
    struct coil__slot *s = coil__arena_alloc(req->arena, sizeof(*s));
    if (!s)
        return -ENOMEM;
    *s = (struct coil__slot){key, value, x->slots};
    x->slots = s;
    return 0;
}

void *coil_req_get(const struct coil_req *req, const void *key)
{
    const struct coil__rqx *x = req->rq ? req->rq->x : NULL;
    for (const struct coil__slot *s = x ? x->slots : NULL; s; s = s->next)
        if (s->key == key)
            return s->value;
    return NULL;
}

/* ---- request ID ------------------------------------------------------------------------- */

static bool id_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '.' ||
           c == '_' || c == ':' || c == '-';
}

static bool id_valid(struct coil_str s)
{
    if (s.len == 0 || s.len > 128)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!id_char((unsigned char)s.ptr[i]))
            return false;
    return true;
}

static char *put_hex(char *p, uint64_t v, int digits)
{
    static const char hex[] = "0123456789abcdef";
    for (int i = digits - 1; i >= 0; i--)
        p[i] = hex[v & 15], v >>= 4;
    return p + digits;
}

/* Random bits for IDs: splitmix64 over a per-worker state seeded from the kernel. */
static uint64_t rnd64(struct coil__worker *w)
{
    uint64_t z = (w->rnd += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

void coil__mw_worker_seed(struct coil__worker *w)
{
    if (getrandom(&w->rnd, sizeof(w->rnd), 0) != sizeof(w->rnd))
        w->rnd = coil__clock_ns() ^ ((uint64_t)w->id << 48);
}

struct coil_str coil_req_id(struct coil_req *req)
{
    struct coil__rqx *x = extras(req);
    if (!x)
        return (struct coil_str){NULL, 0};
    if (x->id.len)
        return x->id;
    struct coil_str given = req->http ? coil_req_header(req, "X-Request-ID") : (struct coil_str){0};
    if (id_valid(given)) {
        x->id = given;
        if (req->rq->deferred || !req->rq->buf)
            return x->id; /* already in the request's own memory */
        /* A slice of the receive buffer: copy, as the ID must live as long as the request. */
        char *p = coil__arena_alloc(req->arena, given.len);
        if (!p)
            return x->id = (struct coil_str){NULL, 0};
        memcpy(p, given.ptr, given.len);
        return x->id = (struct coil_str){p, given.len};
    }
    /* The process's random prefix, the worker, and the worker's count of IDs made. */
    struct coil__worker *w = req->w;
    char *p = coil__arena_alloc(req->arena, 40);
    if (!p)
        return (struct coil_str){NULL, 0};
    char *e = put_hex(p, w->app->id_prefix, 12);
    *e++ = '-';
    e = put_hex(e, w->id, w->id < 16 ? 1 : w->id < 256 ? 2 : 3);
    *e++ = '-';
    e = put_hex(e, ++w->ids, 10);
    return x->id = (struct coil_str){p, (size_t)(e - p)};
}

/* ---- trace context (W3C Trace Context level 1) ------------------------------------------ */

static bool lower_hex(const char *s, size_t n, bool *nonzero)
{
    *nonzero = false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return false;
        *nonzero |= c != '0';
    }
    return true;
}

static int hexval(char c)
{
    return c <= '9' ? c - '0' : c - 'a' + 10;
}

/* "00-<32 hex trace>-<16 hex parent>-<2 hex flags>"; a later version may append "-..." */
static bool parse_traceparent(struct coil_str v, struct coil_trace *t)
{
    const char *s = v.ptr;
    bool nz;
    if (v.len < 55 || s[2] != '-' || s[35] != '-' || s[52] != '-' || !lower_hex(s, 2, &nz))
        return false;
    if (!memcmp(s, "ff", 2) || (!memcmp(s, "00", 2) && v.len != 55) || (v.len > 55 && s[55] != '-'))
        return false;
    if (!lower_hex(s + 3, 32, &nz) || !nz || !lower_hex(s + 36, 16, &nz) || !nz ||
        !lower_hex(s + 53, 2, &nz))
        return false;
    memcpy(t->trace_id, s + 3, 32);
    memcpy(t->parent_id, s + 36, 16);
    t->flags = (uint8_t)(hexval(s[53]) << 4 | hexval(s[54]));
    return true;
}

/* tracestate is passed on when it looks like list-members: bounded, printable, no spaces only. */
static bool tracestate_ok(struct coil_str v)
{
    if (v.len == 0 || v.len > 512)
        return false;
    for (size_t i = 0; i < v.len; i++)
        if ((unsigned char)v.ptr[i] < 0x20 || (unsigned char)v.ptr[i] > 0x7e)
            return false;
    return true;
}

const struct coil_trace *coil_req_trace(struct coil_req *req)
{
    struct coil__rqx *x = extras(req);
    if (!x)
        return NULL;
    if (x->trace)
        return x->trace;
    struct coil_trace *t = coil__arena_alloc(req->arena, sizeof(*t));
    if (!t)
        return NULL;
    memset(t, 0, sizeof(*t));
    struct coil__worker *w = req->w;
    struct coil_str tp = req->http ? coil_req_header(req, "traceparent") : (struct coil_str){0};
    if (tp.len && parse_traceparent(tp, t)) {
        struct coil_str ts = coil_req_header(req, "tracestate");
        if (tracestate_ok(ts)) {
            char *p = coil__arena_alloc(req->arena, ts.len);
            if (p) {
                memcpy(p, ts.ptr, ts.len);
                t->tracestate = (struct coil_str){p, ts.len};
            }
        }
    } else {
        memset(t, 0, sizeof(*t));
        uint64_t hi, lo;
        do
            hi = rnd64(w), lo = rnd64(w);
        while (!hi && !lo);
        put_hex(put_hex(t->trace_id, hi, 16), lo, 16);
    }
    uint64_t span;
    do
        span = rnd64(w);
    while (!span);
    put_hex(t->span_id, span, 16);
    return x->trace = t;
}

/* "00-<trace>-<span>-<flags>" of req's trace, for an outbound request: 55 bytes at out. */
size_t coil__traceparent(struct coil_req *req, char out[56])
{
    const struct coil_trace *t = coil_req_trace(req);
    if (!t)
        return 0;
    char *p = out;
    memcpy(p, "00-", 3);
    memcpy(p + 3, t->trace_id, 32);
    p[35] = '-';
    memcpy(p + 36, t->span_id, 16);
    p[52] = '-';
    put_hex(p + 53, t->flags, 2);
    out[55] = 0;
    return 55;
}

/* ---- the client's address --------------------------------------------------------------- */

struct coil_str coil_req_peer(struct coil_req *req)
{
    struct coil__rqx *x = extras(req);
    if (!x)
        return (struct coil_str){"", 0};
    if (x->peer_known)
        return x->peer;
    struct coil__rq *rq = req->rq;
    const char *text = NULL;
    size_t n = rq->conn ? coil__conn_peer(req->w, rq->conn, &text) : 0;
    char *p = n ? coil__arena_alloc(req->arena, n) : NULL;
    if (p)
        memcpy(p, text, n);
    x->peer = p ? (struct coil_str){p, n} : (struct coil_str){"", 0};
    x->peer_known = true;
    return x->peer;
}

/* ---- the request-ID built-in ------------------------------------------------------------ */

static void reqid_after(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    struct coil_str id = coil_req_id(req);
    if (id.len)
        coil_res_headern(res, "X-Request-ID", 12, id.ptr, id.len);
}

int coil_mw_request_id(struct coil_app *app, struct coil_mw *out)
{
    if (!app || !out)
        return -EINVAL;
    *out = (struct coil_mw){.name = "request id", .after = reqid_after};
    return 0;
}

static int reqid_option(const char *value, void *ud)
{
    struct coil_app *app = ud;
    if (!strcmp(value, "on"))
        app->reqid_off = false;
    else if (!strcmp(value, "off"))
        app->reqid_off = true;
    else
        return -1;
    return 0;
}

int coil__reqid_setup(struct coil_app *app)
{
    return coil_app_option(app, "request-id", "COIL_REQUEST_ID", "on|off",
                           "X-Request-ID on every response: the client's when well-formed, else "
                           "a new one [on]",
                           reqid_option, app);
}

int coil__reqid_install(struct coil_app *app)
{
    if (getrandom(&app->id_prefix, sizeof(app->id_prefix), 0) != sizeof(app->id_prefix))
        app->id_prefix = coil__clock_ns() ^ (uint64_t)getpid() << 32;
    app->id_prefix &= (UINT64_C(1) << 48) - 1;
    if (app->reqid_off)
        return 0;
    struct coil_mw mw;
    coil_mw_request_id(app, &mw);
    return coil__use_builtin(app, &mw) < 0 ? -1 : 0;
}
