/* SPDX-License-Identifier: MIT */
/*
 * metrics.c: Prometheus metrics at GET /metrics (text exposition format 0.0.4).
 *
 * Requests are recorded by a done step (the outermost middleware, so every answer counts, the
 * engine's own included) into the worker's own table: per route pattern, method and status
 * class, a count, the duration's sum and a fixed histogram (log-spaced, 50 µs to 10 s), request
 * and response bytes. A worker only ever writes its own table, with plain relaxed stores (no
 * atomic read-modify-write, no shared cache line); a scrape, on whichever worker takes it,
 * reads every worker's table with relaxed loads and sums them, so a scrape is approximate
 * while requests are in flight, which is all a counter needs.
 *
 * Series: a route has two method slots (its own method, and HEAD for a GET route); requests
 * that matched no route (404, 405) are filed under route="none" by method. Requests the engine
 * could not parse are counted separately, by status. Engine counters (connections, time-outs,
 * jobs, heap) come from struct coil__counters; modules with pools add theirs with
 * coil__metrics_collector.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#ifndef COIL_VERSION
#define COIL_VERSION "dev"
#endif

/* Upper bounds of the duration buckets, in nanoseconds and as the "le" label. */
static const uint64_t bucket_ns[] = {
    50000,     100000,     250000,     500000,     1000000,     2500000,
    5000000,   10000000,   25000000,   50000000,   100000000,   250000000,
    500000000, 1000000000, 2500000000, 5000000000, 10000000000,
};
static const char *const bucket_le[] = {
    "5e-05", "0.0001", "0.00025", "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025",
    "0.05",  "0.1",    "0.25",    "0.5",    "1",     "2.5",    "5",     "10",
};
#define NBUCKETS (sizeof(bucket_ns) / sizeof(bucket_ns[0]))

/* Status classes 1xx..5xx, and a sixth for requests that ended with nothing sent. */
#define NCLASSES 6
static const char *const class_label[NCLASSES] = {"1xx", "2xx", "3xx", "4xx", "5xx", "none"};

/* Methods of the unmatched series. */
static const char *const other_methods[] = {"GET",   "HEAD",   "POST",    "PUT",
                                            "PATCH", "DELETE", "OPTIONS", "other"};
#define NOTHER (sizeof(other_methods) / sizeof(other_methods[0]))

/* Statuses of requests refused before they could be parsed. */
static const int parse_status[] = {400, 408, 413, 414, 431, 501, 505};
#define NPARSE (sizeof(parse_status) / sizeof(parse_status[0]))

struct series {
    uint64_t count;
    uint64_t sum_ns;
    uint64_t bytes_in;
    uint64_t bytes_out;
    uint64_t buckets[NBUCKETS]; /* not cumulative: the scrape adds them up */
};

struct coil__wmetrics {
    uint32_t nseries;           /* (routes * 2 + NOTHER) */
    uint64_t parse[NPARSE + 1]; /* the last: any other status */
    uint64_t alog_dropped;      /* written by alog.c through coil__metrics_alog_dropped */
    struct series s[];          /* [series][class] */
};

struct collector {
    struct collector *next;
    void (*fn)(struct coil__mout *o, void *ud);
    void *ud;
};

struct coil__metrics {
    bool off;
    char *path;
    uint32_t nroutes; /* routes, fixed once the workers start */
    struct collector *collectors;
};

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define BUMP(x, n) __atomic_store_n(&(x), LOAD(x) + (n), __ATOMIC_RELAXED)

/* ---- recording -------------------------------------------------------------------------- */

static unsigned other_method(struct coil_str m)
{
    for (unsigned i = 0; i < NOTHER - 1; i++)
        if (m.len == strlen(other_methods[i]) && !memcmp(m.ptr, other_methods[i], m.len))
            return i;
    return NOTHER - 1;
}

static void metrics_done(struct coil_req *req, const struct coil_done *d, void *ud)
{
    (void)ud;
    struct coil__wmetrics *m = req->w->metrics;
    if (!m)
        return;
    const struct coil__route *route =
        req->match && !req->rq->route_status ? req->match->route : NULL;
    struct coil_str method = req->http->method;
    uint32_t idx;
    if (route) {
        idx = route->id * 2 + (method.len == 4 && !memcmp(method.ptr, "HEAD", 4) &&
                               strcmp(route->method, "HEAD") != 0);
    } else if (method.len == 0) {
        /* Refused before it was parsed: counted by status only. */
        unsigned i = 0;
        while (i < NPARSE && parse_status[i] != d->status)
            i++;
        BUMP(m->parse[i], 1);
        return;
    } else {
        idx = (m->nseries - NOTHER) + other_method(method);
    }
    if (idx >= m->nseries)
        return; /* a route added after the tables were sized: not possible once running */
    unsigned cls = d->status >= 100 && d->status < 600 ? (unsigned)d->status / 100 - 1 : 5;
    struct series *s = &m->s[idx * NCLASSES + cls];
    unsigned b = 0;
    while (b < NBUCKETS && d->duration_ns > bucket_ns[b])
        b++;
    BUMP(s->count, 1);
    BUMP(s->sum_ns, d->duration_ns);
    BUMP(s->bytes_in, d->bytes_in);
    BUMP(s->bytes_out, d->bytes_out);
    if (b < NBUCKETS)
        BUMP(s->buckets[b], 1);
}

void coil__metrics_alog_dropped(struct coil__worker *w, uint64_t n)
{
    if (w->metrics)
        BUMP(w->metrics->alog_dropped, n);
}

/* ---- the exposition --------------------------------------------------------------------- */

void coil__mout_printf(struct coil__mout *o, const char *fmt, ...)
{
    if (o->oom)
        return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->oom = true;
            return;
        }
        if ((size_t)n < o->cap - o->len) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap * 2 + (size_t)n;
        char *nb = coil_realloc(o->buf, cap);
        if (!nb) {
            o->oom = true;
            return;
        }
        o->buf = nb;
        o->cap = cap;
    }
}

/* A label value: backslash, quote and newline escaped (route patterns may hold the first two). */
static void label(struct coil__mout *o, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' || c == '"')
            coil__mout_printf(o, "\\%c", c);
        else if (c == '\n')
            coil__mout_printf(o, "\\n");
        else
            coil__mout_printf(o, "%c", c);
    }
}

static void head(struct coil__mout *o, const char *name, const char *type, const char *help)
{
    coil__mout_printf(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A metric of one unlabelled series: its head and its value. */
static void single(struct coil__mout *o, const char *name, const char *type, const char *help,
                   uint64_t v)
{
    head(o, name, type, help);
    coil__mout_printf(o, "%s %llu\n", name, (unsigned long long)v);
}

/* The route and method labels of series idx. */
static void series_labels(struct coil__mout *o, const struct coil_app *app, uint32_t idx,
                          uint32_t nroutes, unsigned cls)
{
    coil__mout_printf(o, "route=\"");
    const char *method;
    if (idx < nroutes * 2) {
        const struct coil__route *r = coil__router_at(app->router, idx / 2);
        label(o, r->pattern.ptr, r->pattern.len);
        method = idx % 2 ? "HEAD" : r->method;
    } else {
        coil__mout_printf(o, "none");
        method = other_methods[idx - nroutes * 2];
    }
    coil__mout_printf(o, "\",method=\"%s\",code=\"%s\"", method, class_label[cls]);
}

static void sum_series(const struct coil_app *app, uint32_t i, struct series *out)
{
    memset(out, 0, sizeof(*out));
    for (unsigned k = 0; k < app->nworkers; k++) {
        struct coil__wmetrics *m = __atomic_load_n(&app->workers[k]->metrics, __ATOMIC_ACQUIRE);
        if (!m || i >= m->nseries * NCLASSES)
            continue;
        struct series *s = &m->s[i];
        out->count += LOAD(s->count);
        out->sum_ns += LOAD(s->sum_ns);
        out->bytes_in += LOAD(s->bytes_in);
        out->bytes_out += LOAD(s->bytes_out);
        for (unsigned b = 0; b < NBUCKETS; b++)
            out->buckets[b] += LOAD(s->buckets[b]);
    }
    /* A request recorded while this was read may be in a bucket and not yet in count (the
     * worker writes count first, but the reads above are not ordered): +Inf must not be
     * below a finite bucket. */
    uint64_t finite = 0;
    for (unsigned b = 0; b < NBUCKETS; b++)
        finite += out->buckets[b];
    if (out->count < finite)
        out->count = finite;
}

static void requests(struct coil__mout *o, const struct coil_app *app)
{
    uint32_t nroutes = app->metrics->nroutes, nseries = nroutes * 2 + NOTHER;
    struct series *sums = coil_malloc(sizeof(*sums) * nseries * NCLASSES);
    if (!sums) {
        o->oom = true;
        return;
    }
    for (uint32_t i = 0; i < nseries * NCLASSES; i++)
        sum_series(app, i, &sums[i]);
    static const struct {
        const char *name, *help;
        size_t off;
    } counters[] = {
        {"coil_http_requests_total",
         "Requests answered, by route pattern, method and status class.",
         offsetof(struct series, count)},
        {"coil_http_request_bytes_total", "Request bytes received (head and body).",
         offsetof(struct series, bytes_in)},
        {"coil_http_response_bytes_total", "Response bytes sent (head and body).",
         offsetof(struct series, bytes_out)},
    };
    for (size_t c = 0; c < sizeof(counters) / sizeof(counters[0]); c++) {
        head(o, counters[c].name, "counter", counters[c].help);
        for (uint32_t i = 0; i < nseries * NCLASSES; i++) {
            if (!sums[i].count)
                continue;
            coil__mout_printf(o, "%s{", counters[c].name);
            series_labels(o, app, i / NCLASSES, nroutes, i % NCLASSES);
            coil__mout_printf(
                o, "} %llu\n",
                (unsigned long long)*(uint64_t *)((char *)&sums[i] + counters[c].off));
        }
    }
    const char *h = "coil_http_request_duration_seconds";
    head(o, h, "histogram",
         "Time from a request's head being read to its last response byte being queued.");
    for (uint32_t i = 0; i < nseries * NCLASSES; i++) {
        const struct series *s = &sums[i];
        if (!s->count)
            continue;
        uint64_t cum = 0;
        for (unsigned b = 0; b <= NBUCKETS; b++) {
            cum += b < NBUCKETS ? s->buckets[b] : 0;
            coil__mout_printf(o, "%s_bucket{", h);
            series_labels(o, app, i / NCLASSES, nroutes, i % NCLASSES);
            coil__mout_printf(o, ",le=\"%s\"} %llu\n", b < NBUCKETS ? bucket_le[b] : "+Inf",
                              (unsigned long long)(b < NBUCKETS ? cum : s->count));
        }
        coil__mout_printf(o, "%s_sum{", h);
        series_labels(o, app, i / NCLASSES, nroutes, i % NCLASSES);
        coil__mout_printf(o, "} %.9f\n%s_count{", (double)s->sum_ns / 1e9, h);
        series_labels(o, app, i / NCLASSES, nroutes, i % NCLASSES);
        coil__mout_printf(o, "} %llu\n", (unsigned long long)s->count);
    }
    coil_free(sums);
}

/* One engine counter summed over the workers. */
#define WSUM(app, field)                                                                           \
    ({                                                                                             \
        uint64_t _t = 0;                                                                           \
        for (unsigned _k = 0; _k < (app)->nworkers; _k++)                                          \
            _t += atomic_load_explicit(&(app)->workers[_k]->stats.field, memory_order_relaxed);    \
        _t;                                                                                        \
    })

static void engine(struct coil__mout *o, const struct coil_app *app)
{
    single(o, "coil_connections_accepted_total", "counter", "Client connections accepted.",
           WSUM(app, connections));
    single(o, "coil_connections_refused_total", "counter",
           "Client connections closed at accept: --max-conns reached.", WSUM(app, refused));
    single(o, "coil_connections_open", "gauge", "Client connections open now.", WSUM(app, open));
    head(o, "coil_timeouts_total", "counter",
         "Time-outs by kind: request head or body (408), idle keep-alive, a stalled send, a "
         "deferred response (504), the drain deadline, a TLS handshake not done by the header "
         "timeout.");
    const struct {
        const char *kind;
        uint64_t n;
    } t[] = {{"header", WSUM(app, t_header)},    {"body", WSUM(app, t_body)},
             {"idle", WSUM(app, t_idle)},        {"write", WSUM(app, t_write)},
             {"handler", WSUM(app, t_handler)},  {"drain", WSUM(app, t_drain)},
             {"tls_handshake", WSUM(app, t_tls)}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
        coil__mout_printf(o, "coil_timeouts_total{kind=\"%s\"} %llu\n", t[i].kind,
                          (unsigned long long)t[i].n);
    if (coil__tls_port(app) >= 0) {
        head(o, "coil_tls_handshakes_total", "counter", "TLS handshakes completed, by version.");
        coil__mout_printf(o, "coil_tls_handshakes_total{version=\"TLSv1.2\"} %llu\n",
                          (unsigned long long)WSUM(app, tls12));
        coil__mout_printf(o, "coil_tls_handshakes_total{version=\"TLSv1.3\"} %llu\n",
                          (unsigned long long)WSUM(app, tls13));
        single(o, "coil_tls_resumed_total", "counter",
               "TLS handshakes that resumed a session (a ticket).", WSUM(app, tls_resumed));
        single(o, "coil_tls_kernel_send_total", "counter",
               "TLS connections whose records the kernel seals (kernel TLS, TLS_TX).",
               WSUM(app, tls_ktx));
        single(o, "coil_tls_handshake_failures_total", "counter",
               "TLS handshakes refused or broken: protocol, cipher, ALPN, garbage.",
               WSUM(app, tls_failed));
    }
    if (coil__static_on(app)) {
        single(o, "coil_static_opens_total", "counter",
               "Files opened by the static file routes (cache misses and changed files).",
               WSUM(app, st_opens));
        single(o, "coil_static_cache_entries", "gauge",
               "Files in the static file caches, over all workers.", WSUM(app, st_entries));
        single(o, "coil_static_cache_bytes", "gauge",
               "File contents held in memory by the static file caches, over all workers.",
               WSUM(app, st_bytes));
    }
    if (coil__h2_on(app)) {
        single(o, "coil_h2_connections_total", "counter",
               "HTTP/2 connections (h2 by ALPN, h2c by its preface or --h2c-port).",
               WSUM(app, h2_conns));
        single(o, "coil_h2_streams_total", "counter", "HTTP/2 streams opened by clients.",
               WSUM(app, h2_streams));
        single(o, "coil_h2_resets_received_total", "counter",
               "RST_STREAM frames received from clients.", WSUM(app, h2_resets_in));
        head(o, "coil_h2_abuse_total", "counter",
             "HTTP/2 connections closed with GOAWAY for abuse or protocol errors, by kind "
             "(stall: streams reset after waiting on a closed window past --write-timeout).");
        for (size_t i = 0; i < COIL_H2_ABUSE_KINDS; i++) {
            uint64_t n = 0;
            for (unsigned k = 0; k < app->nworkers; k++)
                n +=
                    atomic_load_explicit(&app->workers[k]->stats.h2_abuse[i], memory_order_relaxed);
            coil__mout_printf(o, "coil_h2_abuse_total{kind=\"%s\"} %llu\n", coil__h2_abuse_kinds[i],
                              (unsigned long long)n);
        }
    }
    head(o, "coil_http_parse_errors_total", "counter",
         "Requests refused before they could be parsed, by the status answered.");
    for (size_t i = 0; i <= NPARSE; i++) {
        uint64_t n = 0;
        for (unsigned k = 0; k < app->nworkers; k++)
            if (app->workers[k]->metrics)
                n += LOAD(app->workers[k]->metrics->parse[i]);
        if (i < NPARSE)
            coil__mout_printf(o, "coil_http_parse_errors_total{status=\"%d\"} %llu\n",
                              parse_status[i], (unsigned long long)n);
        else
            coil__mout_printf(o, "coil_http_parse_errors_total{status=\"other\"} %llu\n",
                              (unsigned long long)n);
    }
    single(o, "coil_deferred_total", "counter", "Responses deferred by handlers.",
           WSUM(app, deferred));
    single(o, "coil_deferred_in_flight", "gauge", "Deferred responses not finished yet.",
           WSUM(app, waiting));
    single(o, "coil_deferred_aborted_total", "counter",
           "Deferred responses aborted: client gone, handler time-out, drain.", WSUM(app, aborted));
    const struct {
        const char *name, *help;
        uint64_t n;
    } pools[] = {
        {"coil_upstream_connections", "Upstream connections open (coil_upstream, --proxy).",
         WSUM(app, up_conns)},
        {"coil_upstream_requests_in_flight", "Upstream requests sent on a connection, not done.",
         WSUM(app, up_busy)},
        {"coil_upstream_requests_queued", "Upstream requests waiting for a connection.",
         WSUM(app, up_queued)},
        {"coil_db_connections", "Database connections open (coil_pg, --database-url).",
         WSUM(app, db_conns)},
        {"coil_db_queries_in_flight", "Database queries sent and not yet answered.",
         WSUM(app, db_busy)},
        {"coil_db_queries_queued", "Database queries waiting for room on a connection.",
         WSUM(app, db_queued)},
    };
    for (size_t i = 0; i < sizeof(pools) / sizeof(pools[0]); i++) {
        head(o, pools[i].name, "gauge", pools[i].help);
        coil__mout_printf(o, "%s %llu\n", pools[i].name, (unsigned long long)pools[i].n);
    }
    single(o, "coil_jobs_run_total", "counter", "Background jobs run.", WSUM(app, jobs_run));
    struct coil_stats st;
    coil_stats_get(&st);
    single(o, "coil_heap_allocations_total", "counter",
           "Allocations from the workers' own heaps (jemalloc arenas).", st.heap_allocs);
    uint64_t dropped = 0;
    for (unsigned k = 0; k < app->nworkers; k++)
        if (app->workers[k]->metrics)
            dropped += LOAD(app->workers[k]->metrics->alog_dropped);
    single(o, "coil_access_log_dropped_total", "counter",
           "Access log lines dropped because the writer fell behind.", dropped);
    head(o, "coil_workers", "gauge", "Worker threads.");
    coil__mout_printf(o, "coil_workers %u\n", app->nworkers);
    head(o, "coil_build_info", "gauge", "The build: version and optional modules, as labels.");
    coil__mout_printf(o,
                      "coil_build_info{version=\"%s\",postgres=\"%s\",redis=\"%s\","
                      "compress=\"%s\",auth=\"%s\"} 1\n",
                      COIL_VERSION,
#ifdef COIL_HAVE_PG
                      "yes",
#else
                      "no",
#endif
#ifdef COIL_HAVE_REDIS
                      "yes",
#else
                      "no",
#endif
#ifdef COIL_HAVE_COMPRESS
                      "yes",
#else
                      "no",
#endif
#ifdef COIL_HAVE_AUTH
                      "yes"
#else
                      "no"
#endif
    );
}

static int scrape(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)req;
    struct coil_app *app = ud;
    struct coil__mout o = {.cap = 16384};
    o.buf = coil_malloc(o.cap);
    if (!o.buf)
        return -ENOMEM;
    requests(&o, app);
    engine(&o, app);
    for (struct collector *c = app->metrics->collectors; c; c = c->next)
        c->fn(&o, c->ud);
    int err = o.oom ? -ENOMEM : 0;
    if (!err)
        err = coil_res_header(res, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    if (!err)
        err = coil_res_body(res, o.buf, o.len);
    coil_free(o.buf);
    return err;
}

/* ---- setup ------------------------------------------------------------------------------ */

int coil__metrics_collector(struct coil_app *app, void (*fn)(struct coil__mout *o, void *ud),
                            void *ud)
{
    struct coil__metrics *mt = app->metrics;
    if (!mt)
        return -EINVAL;
    struct collector *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    *c = (struct collector){mt->collectors, fn, ud};
    mt->collectors = c;
    return 0;
}

static int path_option(const char *v, void *ud)
{
    struct coil__metrics *mt = ud;
    if (v[0] != '/')
        return -1;
    char *p = strdup(v);
    if (!p)
        return -1;
    free(mt->path);
    mt->path = p;
    return 0;
}

static int off_option(const char *v, void *ud)
{
    struct coil__metrics *mt = ud;
    int b = coil__parse_bool(v);
    if (b < 0)
        return -1;
    mt->off = b;
    return 0;
}

int coil__metrics_setup(struct coil_app *app)
{
    app->metrics = calloc(1, sizeof(*app->metrics));
    if (!app->metrics || !(app->metrics->path = strdup("/metrics")))
        return -ENOMEM;
    if (coil_app_option(app, "metrics-path", "COIL_METRICS_PATH", "PATH",
                        "where Prometheus scrapes the metrics [/metrics]", path_option,
                        app->metrics) < 0 ||
        coil__app_flag(app, "no-metrics", "COIL_NO_METRICS",
                       "no metrics: neither the route nor the recording", off_option,
                       app->metrics) < 0)
        return -ENOMEM;
    return 0;
}

const char *coil__metrics_path(const struct coil_app *app)
{
    return app->metrics && !app->metrics->off ? app->metrics->path : NULL;
}

int coil__metrics_install(struct coil_app *app)
{
    struct coil__metrics *mt = app->metrics;
    if (mt->off)
        return 0;
    int err = coil_route(app, "GET", mt->path, scrape, app);
    if (err < 0) {
        fprintf(stderr, "coil: --metrics-path %s: %s\n", mt->path,
                err == -EEXIST ? "the application routes it already (choose another path, or "
                                 "--no-metrics)"
                               : "not a valid route pattern");
        return -1;
    }
    /* Every route is known by now (applications add theirs before coil_app_run). */
    mt->nroutes = coil__router_count(app->router);
    struct coil_mw mw = {.name = "metrics", .done = metrics_done};
    return coil__use_builtin(app, &mw) < 0 ? -1 : 0;
}

/* A worker's table is written by that worker only, but read by any scrape until the process
 * ends, so it comes from the process heap and goes with the app, not with the worker. */
int coil__metrics_start(struct coil__worker *w)
{
    struct coil__metrics *mt = w->app->metrics;
    if (!mt || mt->off)
        return 0;
    uint32_t nseries = mt->nroutes * 2 + NOTHER;
    struct coil__wmetrics *m =
        calloc(1, sizeof(struct coil__wmetrics) + sizeof(struct series) * nseries * NCLASSES);
    if (!m)
        return -ENOMEM;
    m->nseries = nseries;
    __atomic_store_n(&w->metrics, m, __ATOMIC_RELEASE);
    return 0;
}

void coil__metrics_stop(struct coil__worker *w)
{
    (void)w; /* the table stays readable: coil__metrics_free frees it */
}

void coil__metrics_free(struct coil_app *app)
{
    struct coil__metrics *mt = app->metrics;
    if (!mt)
        return;
    while (mt->collectors) {
        struct collector *n = mt->collectors->next;
        free(mt->collectors);
        mt->collectors = n;
    }
    for (unsigned k = 0; app->workers && k < app->nworkers; k++)
        if (app->workers[k]) {
            free(app->workers[k]->metrics);
            app->workers[k]->metrics = NULL;
        }
    free(mt->path);
    free(mt);
    app->metrics = NULL;
}
