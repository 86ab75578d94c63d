/* SPDX-License-Identifier: MIT */
/*
 * mwapp: a small user program that exercises the middleware chain (coil.h, "middleware") the ways
 * test_mw_chain.py needs to see it: order, early answers, failing steps, the engine's own answers,
 * deferred and streamed responses, filters, coil_mw_next, reading and amending the response,
 * request IDs and trace context.
 *
 * Its own flag, taken out of argv before coil_app_create sees the rest:
 *   --bare   register no middleware at all (coil_app_use, coil_route_use are not called)
 * Every other argument is the engine's (--workers, --handler-timeout, --request-id, ...).
 *
 * Middleware. A and B are the app's (coil_app_use, in that order); R is route /r's own and T
 * route /stream's; F (a filter) is also /stream's, registered after T; W (a rewrite) is
 * /rewrite's. A, B, R and T are one generic step: each request carries a trace (coil_req_set
 * under a private key) to which
 *   a before step appends its letter (A, B, R, T), the handler 'H', an after step its letter in
 *   lower case, a done step its letter to a separate done trace.
 * Request headers drive the generic before steps (L is the step's letter):
 *   X-Block: ...L...  step L answers 401 "blocked by L\n" itself (COIL_MW_DONE)
 *   X-Fail: ...L...   step L returns -EIO (-ENOMEM with X-Fail-Errno: ENOMEM)
 *   X-Wait-L: MODE    step L defers (on_abort counted per letter), tries coil_mw_next at once
 *                     (expected -EINVAL: from the step itself), and after X-Wait-Ms [30] ms,
 *                     from an owner-bound timer: next: coil_mw_next (and with X-Next-Twice, if
 *                     the request is still alive after it because the handler deferred,
 *                     coil_mw_next again); self: answers 203 "answered by L\n" and
 *                     coil_res_finish; hang: nothing (never continues). Response headers:
 *                     X-Next-Inside (the rc inside the step), X-Next and X-Next-Again (the rcs of
 *                     the two calls, when the request was alive to take them). Counters (GET
 *                     /counts): next.ok, next.einval, next.other (every call's rc).
 * Generic after steps add an "X-Order: l" header each; A's (the outermost) also adds
 *   X-After: 1, X-Trace: the whole trace so far, X-Seen-Status: coil_res_status_get,
 *   X-Seen-Len: the length of coil_res_body_get, X-Streamed: coil_res_streamed (0/1).
 * Generic done steps count; A's (the outermost, so last) records what it got (below).
 * T's after puts nothing on the body; F's after puts the filter on /stream's body: each piece
 *   becomes "[" + the piece upper-cased + "]", and the end adds "<end>" (after the last piece's
 *   own bracket if it has data). With X-Filter-Fail the filter fails (-EIO) on its 2nd piece.
 *   F's after also answers X-Filter-Again (coil_res_filter a second time: -EBUSY expected) and
 *   X-Emit-Outside (coil_res_emit outside the filter: -EINVAL expected); with X-No-Filter it
 *   sets none.
 * W's after removes X-Secret (X-Removed: how many), X-Nothing (X-Removed-None), reads X-Keep
 *   back by a lower-case name (X-Keep-Seen), tries a filter on a whole body (X-Filter-Whole:
 *   -EINVAL expected) and replaces the body with "rewritten(" + the body + ")".
 *
 * Routes (handlers count their calls by name in GET /counts "handler" and mark the trace 'H'):
 *   GET  /r            [R] 200, X-Handler: 1, body: the trace when the handler ran ("ABRH").
 *                      X-Handler-Defer: MS: the handler defers (X-Same-Handle: 1 when it got the
 *                      handle a before step deferred with) and answers the same after MS ms.
 *   GET  /plain        the same handler, no route middleware.
 *   POST /body         200, the body's length.
 *   GET  /defer?ms=N   defers; after N ms (owner timer): 202, X-Next: coil_mw_next's rc (not a
 *                      step's request: -EINVAL), body "late N\n".
 *   GET  /never        defers and never answers (on_abort counted: "handler_aborts").
 *   GET  /stream?mode=inline|timer&len=1   [T, F] deferred stream of "hello ", "stream ",
 *                      "world": inline (all in the handler) or timer (stream and each piece from
 *                      a 20 ms timer, finish with the last); len=1 declares the length first.
 *   GET  /rewrite?json=1  [W] X-Secret: s, X-Keep: k, body "original" (or {"v":"original"}).
 *   GET  /id           coil_req_id as the body; X-Worker: the worker.
 *   GET  /trace        coil_req_trace and coil_req_peer as JSON.
 *   GET  /counts?tag=T what the steps saw, as JSON:
 *                      "handler": {name: calls}, "aborts": {letter: on_abort calls of a waiting
 *                      step}, "handler_aborts", "next": {"ok", "einval", "other"}, "waiting":
 *                      coil_stats' waiting, "after": A's after steps run, "done": A's done steps
 *                      run, "filter_calls": calls of F's filter, "setup": the rcs of the
 *                      registration calls main made that must be refused, "records": the last
 *                      128 done records, oldest first (with ?tag=, only those whose X-Tag was T),
 *                      each {"tag", "path", "status", "route", "duration_ns", "bytes_in",
 *                      "bytes_out", "complete", "trace", "done" (the done trace)}.
 *                      Requests to /counts are neither counted nor recorded.
 */
#include <coil.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- counters, shared by the workers -------------------------------------------------------- */

#define NRECORDS 128

struct record {
    char tag[64], path[64], route[32], trace[64], done[16];
    int status;
    uint64_t duration_ns, bytes_in, bytes_out;
    bool complete;
};

enum { H_R, H_PLAIN, H_BODY, H_DEFER, H_NEVER, H_STREAM, H_REWRITE, H_ID, H_TRACE, NHANDLERS };
static const char *const handler_names[NHANDLERS] = {"r",      "plain",   "body", "defer", "never",
                                                     "stream", "rewrite", "id",   "trace"};

struct counters {
    uint64_t handler[NHANDLERS];
    uint64_t aborts[26]; /* on_abort of a waiting step, by letter */
    uint64_t handler_aborts, next_ok, next_einval, next_other, after, done, filter_calls;
    struct record rec[NRECORDS];
    uint64_t nrec; /* records made; rec[i % NRECORDS] */
};
static struct counters g;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

/* rcs of registration calls that must be refused, checked by the tests */
static int setup_route_missing = 1, setup_empty_mw = 1, setup_null_mw = 1;

#define COUNT(field)                                                                               \
    do {                                                                                           \
        pthread_mutex_lock(&lock);                                                                 \
        g.field++;                                                                                 \
        pthread_mutex_unlock(&lock);                                                               \
    } while (0)

/* ---- per-request state ---------------------------------------------------------------------- */

struct rstate {
    char trace[64];
    size_t ntrace;
    char done[16];
    size_t ndone;
    struct coil_defer wait; /* the handle a waiting before step deferred with */
};

static const char state_key; /* its address is the coil_req_set key */

static struct rstate *state(struct coil_req *req)
{
    struct rstate *st = coil_req_get(req, &state_key);
    if (st)
        return st;
    st = coil_req_alloc(req, sizeof(*st));
    if (!st)
        return NULL;
    memset(st, 0, sizeof(*st));
    if (coil_req_set(req, &state_key, st) < 0)
        return NULL;
    return st;
}

static void mark(struct coil_req *req, char c)
{
    struct rstate *st = state(req);
    if (st && st->ntrace + 1 < sizeof(st->trace))
        st->trace[st->ntrace++] = c;
}

static const char *trace_text(struct coil_req *req)
{
    struct rstate *st = state(req);
    return st ? st->trace : "?";
}

static bool names_letter(struct coil_str v, char letter)
{
    return v.len && memchr(v.ptr, letter, v.len) != NULL;
}

static void header_int(struct coil_res *res, const char *name, long v)
{
    char text[24];
    snprintf(text, sizeof(text), "%ld", v);
    coil_res_header(res, name, text);
}

static void copy_str(char *out, size_t cap, struct coil_str s)
{
    size_t n = s.len < cap - 1 ? s.len : cap - 1;
    if (n)
        memcpy(out, s.ptr, n);
    out[n] = 0;
}

/* ---- the generic step (A, B, R, T) ----------------------------------------------------------- */

struct step {
    char letter;
    bool outer; /* the first registered: its after and done steps run last */
};

static struct step step_a = {'A', true}, step_b = {'B', false}, step_r = {'R', false},
                   step_t = {'T', false};

/* What a waiting step keeps; in the request arena, so gone once the request is. */
struct waiter {
    struct coil_defer d;
    char letter, mode;
    bool twice; /* X-Next-Twice: call coil_mw_next again if the request is still alive */
};

static void count_next(int rc)
{
    pthread_mutex_lock(&lock);
    if (rc == 0)
        g.next_ok++;
    else if (rc == -EINVAL)
        g.next_einval++;
    else
        g.next_other++;
    pthread_mutex_unlock(&lock);
}

static void on_step_abort(void *ud)
{
    const struct step *s = ud;
    pthread_mutex_lock(&lock);
    g.aborts[s->letter - 'A']++;
    pthread_mutex_unlock(&lock);
}

static void on_wait_fire(void *ud)
{
    struct waiter *wt = ud;
    struct coil_defer d = wt->d; /* wt goes with the request, which coil_mw_next may end */
    struct coil_req *req = coil_defer_req(d);
    struct coil_res *res = coil_defer_res(d);
    if (!req || !res)
        return; /* cannot happen: the timer is owner-bound */
    if (wt->mode == 's') {
        char body[32];
        snprintf(body, sizeof(body), "answered by %c\n", wt->letter);
        coil_res_text(res, 203, "text/plain", body);
        coil_res_finish(res);
        return;
    }
    int rc = coil_mw_next(req);
    count_next(rc);
    if (!coil_defer_req(d))
        return; /* answered inside coil_mw_next */
    header_int(res, "X-Next", rc);
    if (!wt->twice)
        return;
    rc = coil_mw_next(req);
    count_next(rc);
    if (coil_defer_req(d))
        header_int(res, "X-Next-Again", rc);
}

static int step_wait(struct coil_req *req, struct coil_res *res, struct step *s,
                     struct coil_str mode)
{
    struct waiter *wt = coil_req_alloc(req, sizeof(*wt));
    if (!wt)
        return -ENOMEM;
    wt->letter = s->letter;
    wt->mode = mode.ptr[0];
    wt->twice = coil_req_header(req, "X-Next-Twice").len != 0;
    wt->d = coil_res_defer(res, on_step_abort, s);
    if (!wt->d.id)
        return -ENOMEM;
    struct rstate *st = state(req);
    if (st)
        st->wait = wt->d;
    int rc = coil_mw_next(req);
    count_next(rc);
    header_int(res, "X-Next-Inside", rc);
    if (wt->mode == 'h')
        return COIL_MW_DONE;
    int64_t ms = 30;
    struct coil_str v = coil_req_header(req, "X-Wait-Ms");
    if (v.len && (coil_parse_int64(v.ptr, v.len, &ms) < 0 || ms < 0 || ms > 10000))
        ms = 30;
    if (!coil_timer_after(req, (uint64_t)ms, on_wait_fire, wt).id)
        return -ENOMEM; /* cancels the defer: 503 */
    return COIL_MW_DONE;
}

static int step_before(struct coil_req *req, struct coil_res *res, void *ud)
{
    struct step *s = ud;
    mark(req, s->letter);
    if (names_letter(coil_req_header(req, "X-Block"), s->letter)) {
        char body[32];
        snprintf(body, sizeof(body), "blocked by %c\n", s->letter);
        coil_res_text(res, 401, "text/plain", body);
        return COIL_MW_DONE;
    }
    if (names_letter(coil_req_header(req, "X-Fail"), s->letter)) {
        struct coil_str e = coil_req_header(req, "X-Fail-Errno");
        return e.len == 6 && !memcmp(e.ptr, "ENOMEM", 6) ? -ENOMEM : -EIO;
    }
    char name[] = "X-Wait-?";
    name[7] = s->letter;
    struct coil_str mode = coil_req_header(req, name);
    if (mode.len)
        return step_wait(req, res, s, mode);
    return COIL_MW_NEXT;
}

static void step_after(struct coil_req *req, struct coil_res *res, void *ud)
{
    const struct step *s = ud;
    char lower[2] = {(char)(s->letter - 'A' + 'a'), 0};
    mark(req, lower[0]);
    coil_res_header(res, "X-Order", lower);
    if (!s->outer)
        return;
    struct coil_str path = coil_req_path(req);
    if (path.len != 7 || memcmp(path.ptr, "/counts", 7))
        COUNT(after);
    coil_res_header(res, "X-After", "1");
    coil_res_header(res, "X-Trace", trace_text(req));
    header_int(res, "X-Seen-Status", coil_res_status_get(res));
    header_int(res, "X-Seen-Len", (long)coil_res_body_get(res).len);
    header_int(res, "X-Streamed", coil_res_streamed(res));
}

static void record(struct coil_req *req, const struct coil_done *d, const struct rstate *st)
{
    struct coil_str path = coil_req_path(req);
    if (path.len == 7 && !memcmp(path.ptr, "/counts", 7))
        return;
    pthread_mutex_lock(&lock);
    g.done++;
    struct record *r = &g.rec[g.nrec++ % NRECORDS];
    copy_str(r->tag, sizeof(r->tag), coil_req_header(req, "X-Tag"));
    copy_str(r->path, sizeof(r->path), path);
    copy_str(r->route, sizeof(r->route), d->route);
    snprintf(r->trace, sizeof(r->trace), "%s", st ? st->trace : "?");
    snprintf(r->done, sizeof(r->done), "%s", st ? st->done : "?");
    r->status = d->status;
    r->duration_ns = d->duration_ns;
    r->bytes_in = d->bytes_in;
    r->bytes_out = d->bytes_out;
    r->complete = d->complete;
    pthread_mutex_unlock(&lock);
}

static void step_done(struct coil_req *req, const struct coil_done *d, void *ud)
{
    const struct step *s = ud;
    struct rstate *st = state(req);
    if (st && st->ndone + 1 < sizeof(st->done))
        st->done[st->ndone++] = s->letter;
    if (s->outer)
        record(req, d, st);
}

static struct coil_mw generic(struct step *s)
{
    return (struct coil_mw){
        .name = "generic", .before = step_before, .after = step_after, .done = step_done, .ud = s};
}

/* ---- F: a filter on /stream's body ------------------------------------------------------------
 */

struct fstate {
    struct coil_req *req;
    unsigned pieces;
    bool fail;
};

static int emit_bracketed(struct fstate *f, struct coil_res *res, const void *data, size_t len)
{
    char *up = coil_req_alloc(f->req, len + 2);
    if (!up)
        return -ENOMEM;
    up[0] = '[';
    for (size_t i = 0; i < len; i++) {
        char c = ((const char *)data)[i];
        up[i + 1] = c >= 'a' && c <= 'z' ? (char)(c - 'a' + 'A') : c;
    }
    up[len + 1] = ']';
    return coil_res_emit(res, up, len + 2);
}

static int on_filter(struct coil_res *res, const void *data, size_t len, bool last, void *ud)
{
    struct fstate *f = ud;
    COUNT(filter_calls);
    if (f->fail && ++f->pieces == 2)
        return -EIO;
    if (len) {
        int rc = emit_bracketed(f, res, data, len);
        if (rc < 0)
            return rc;
    }
    return last ? coil_res_emit(res, "<end>", 5) : 0;
}

static void filter_after(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    if (coil_req_header(req, "X-No-Filter").len)
        return;
    struct fstate *f = coil_req_alloc(req, sizeof(*f));
    if (!f)
        return;
    f->req = req;
    f->pieces = 0;
    f->fail = coil_req_header(req, "X-Filter-Fail").len != 0;
    int rc = coil_res_filter(res, on_filter, f);
    header_int(res, "X-Filter", rc);
    header_int(res, "X-Filter-Again", coil_res_filter(res, on_filter, f));
    header_int(res, "X-Emit-Outside", coil_res_emit(res, "x", 1));
}

/* ---- W: amending a whole response ------------------------------------------------------------ */

static int never_filter(struct coil_res *res, const void *data, size_t len, bool last, void *ud)
{
    (void)res, (void)data, (void)len, (void)last, (void)ud;
    return -EIO;
}

static void rewrite_after(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    char keep[32];
    copy_str(keep, sizeof(keep), coil_res_header_get(res, "x-keep"));
    header_int(res, "X-Removed", coil_res_header_remove(res, "X-Secret"));
    header_int(res, "X-Removed-None", coil_res_header_remove(res, "X-Nothing"));
    coil_res_header(res, "X-Keep-Seen", keep);
    header_int(res, "X-Filter-Whole", coil_res_filter(res, never_filter, NULL));
    struct coil_str old = coil_res_body_get(res);
    size_t n = old.len + 11;
    char *body = coil_req_alloc(req, n);
    if (!body)
        return;
    memcpy(body, "rewritten(", 10);
    memcpy(body + 10, old.ptr, old.len);
    body[n - 1] = ')';
    coil_res_body(res, body, n);
}

/* ---- handlers -------------------------------------------------------------------------------- */

/* Every handler counts its call and marks the trace. */
static void count_handler(struct coil_req *req, int which)
{
    mark(req, 'H');
    pthread_mutex_lock(&lock);
    g.handler[which]++;
    pthread_mutex_unlock(&lock);
}

static int64_t query_int(struct coil_req *req, const char *name, int64_t dflt, int64_t max)
{
    struct coil_str v;
    int64_t n;
    if (coil_req_query_param(req, name, &v) != 1 || coil_parse_int64(v.ptr, v.len, &n) < 0 ||
        n < 0 || n > max)
        return dflt;
    return n;
}

static void on_handler_abort(void *ud)
{
    (void)ud;
    COUNT(handler_aborts);
}

/* /r's handler, answering late: the trace as it was when the handler ran */
struct late_echo {
    struct coil_defer d;
    char body[64];
};

static void on_echo_fire(void *ud)
{
    struct late_echo *e = ud;
    struct coil_res *res = coil_defer_res(e->d);
    if (!res)
        return;
    coil_res_text(res, 200, "text/plain", e->body);
    coil_res_finish(res);
}

static int echo(struct coil_req *req, struct coil_res *res, int which)
{
    count_handler(req, which);
    coil_res_header(res, "X-Handler", "1");
    struct coil_str v = coil_req_header(req, "X-Handler-Defer");
    int64_t ms;
    if (!v.len || coil_parse_int64(v.ptr, v.len, &ms) < 0 || ms < 0 || ms > 10000)
        return coil_res_text(res, 200, "text/plain", trace_text(req));
    struct late_echo *e = coil_req_alloc(req, sizeof(*e));
    if (!e)
        return -ENOMEM;
    snprintf(e->body, sizeof(e->body), "%s", trace_text(req));
    e->d = coil_res_defer(res, on_handler_abort, NULL);
    if (!e->d.id)
        return -ENOMEM;
    struct rstate *st = state(req);
    coil_res_header(res, "X-Same-Handle", st && st->wait.id == e->d.id ? "1" : "0");
    return coil_timer_after(req, (uint64_t)ms, on_echo_fire, e).id ? 0 : -ENOMEM;
}

static int h_r(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    return echo(req, res, H_R);
}

static int h_plain(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    return echo(req, res, H_PLAIN);
}

static int h_body(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    count_handler(req, H_BODY);
    char text[24];
    snprintf(text, sizeof(text), "%zu", coil_req_body(req).len);
    return coil_res_text(res, 200, "text/plain", text);
}

struct late {
    struct coil_defer d;
    int64_t ms;
};

static void on_late_fire(void *ud)
{
    struct late *l = ud;
    struct coil_req *req = coil_defer_req(l->d);
    struct coil_res *res = coil_defer_res(l->d);
    if (!req || !res)
        return;
    header_int(res, "X-Next", coil_mw_next(req));
    char body[32];
    snprintf(body, sizeof(body), "late %" PRId64 "\n", l->ms);
    coil_res_text(res, 202, "text/plain", body);
    coil_res_finish(res);
}

static int h_defer(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    count_handler(req, H_DEFER);
    struct late *l = coil_req_alloc(req, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->ms = query_int(req, "ms", 50, 10000);
    l->d = coil_res_defer(res, on_handler_abort, NULL);
    if (!l->d.id)
        return -ENOMEM;
    return coil_timer_after(req, (uint64_t)l->ms, on_late_fire, l).id ? 0 : -ENOMEM;
}

static int h_never(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    count_handler(req, H_NEVER);
    return coil_res_defer(res, on_handler_abort, NULL).id ? 0 : -ENOMEM;
}

static const char *const pieces[] = {"hello ", "stream ", "world"};
#define NPIECES (sizeof(pieces) / sizeof(pieces[0]))

struct streamer {
    struct coil_defer d;
    unsigned next; /* the piece to write */
};

static int stream_start(struct coil_req *req, struct coil_res *res)
{
    coil_res_header(res, "Content-Type", "text/plain");
    if (query_int(req, "len", 0, 1)) {
        uint64_t total = 0;
        for (size_t i = 0; i < NPIECES; i++)
            total += strlen(pieces[i]);
        int rc = coil_res_length(res, total);
        if (rc < 0)
            return rc;
    }
    return coil_res_stream(res);
}

static void on_stream_fire(void *ud)
{
    struct streamer *s = ud;
    struct coil_res *res = coil_defer_res(s->d);
    struct coil_req *req = coil_defer_req(s->d);
    if (!res || !req)
        return;
    if (s->next == 0 && stream_start(req, res) < 0) {
        coil_res_fail(res, 500);
        return;
    }
    const char *p = pieces[s->next++];
    if (coil_res_write(res, p, strlen(p)) < 0) {
        coil_res_fail(res, 500); /* the head is out: closes the connection */
        return;
    }
    if (s->next == NPIECES)
        coil_res_finish(res);
    else
        coil_timer_after(req, 20, on_stream_fire, s);
}

static int h_stream(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    count_handler(req, H_STREAM);
    struct streamer *s = coil_req_alloc(req, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->next = 0;
    s->d = coil_res_defer(res, on_handler_abort, NULL);
    if (!s->d.id)
        return -ENOMEM;
    struct coil_str mode;
    if (coil_req_query_param(req, "mode", &mode) == 1 && mode.len == 5 &&
        !memcmp(mode.ptr, "timer", 5))
        return coil_timer_after(req, 20, on_stream_fire, s).id ? 0 : -ENOMEM;
    int rc = stream_start(req, res);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < NPIECES; i++)
        if (coil_res_write(res, pieces[i], strlen(pieces[i])) < 0)
            break; /* a failed filter cuts the response: finishing closes the connection */
    return coil_res_finish(res);
}

static int h_rewrite(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    count_handler(req, H_REWRITE);
    coil_res_header(res, "X-Secret", "s");
    coil_res_header(res, "X-Keep", "k");
    struct coil_str v;
    if (coil_req_query_param(req, "json", &v) == 1) {
        struct coil_json *j = coil_res_json(res);
        coil_json_object_open(j);
        coil_json_key(j, "v");
        coil_json_string(j, "original");
        coil_json_object_close(j);
        return 0;
    }
    return coil_res_text(res, 200, "text/plain", "original");
}

static int h_id(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    count_handler(req, H_ID);
    struct coil_str id = coil_req_id(req);
    header_int(res, "X-Worker", (long)coil_worker_id());
    coil_res_header(res, "Content-Type", "text/plain");
    return coil_res_body(res, id.ptr, id.len);
}

static int h_trace(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    count_handler(req, H_TRACE);
    const struct coil_trace *t = coil_req_trace(req);
    if (!t)
        return -ENOMEM;
    const struct coil_trace *again = coil_req_trace(req);
    struct coil_str peer = coil_req_peer(req);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    coil_json_key(j, "trace_id");
    coil_json_string(j, t->trace_id);
    coil_json_key(j, "span_id");
    coil_json_string(j, t->span_id);
    coil_json_key(j, "parent_id");
    coil_json_string(j, t->parent_id);
    coil_json_key(j, "flags");
    coil_json_uint(j, t->flags);
    coil_json_key(j, "tracestate");
    coil_json_stringn(j, t->tracestate.ptr ? t->tracestate.ptr : "", t->tracestate.len);
    coil_json_key(j, "same");
    coil_json_bool(j, again == t);
    coil_json_key(j, "peer");
    coil_json_stringn(j, peer.ptr ? peer.ptr : "", peer.len);
    coil_json_object_close(j);
    return 0;
}

/* ---- /counts --------------------------------------------------------------------------------- */

static void json_record(struct coil_json *j, const struct record *r)
{
    coil_json_object_open(j);
    coil_json_key(j, "tag");
    coil_json_string(j, r->tag);
    coil_json_key(j, "path");
    coil_json_string(j, r->path);
    coil_json_key(j, "route");
    coil_json_string(j, r->route);
    coil_json_key(j, "status");
    coil_json_int(j, r->status);
    coil_json_key(j, "duration_ns");
    coil_json_uint(j, r->duration_ns);
    coil_json_key(j, "bytes_in");
    coil_json_uint(j, r->bytes_in);
    coil_json_key(j, "bytes_out");
    coil_json_uint(j, r->bytes_out);
    coil_json_key(j, "complete");
    coil_json_bool(j, r->complete);
    coil_json_key(j, "trace");
    coil_json_string(j, r->trace);
    coil_json_key(j, "done");
    coil_json_string(j, r->done);
    coil_json_object_close(j);
}

static void json_counter(struct coil_json *j, const char *key, uint64_t v)
{
    coil_json_key(j, key);
    coil_json_uint(j, v);
}

static int h_counts(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    struct coil_str tag = {NULL, 0};
    bool by_tag = coil_req_query_param(req, "tag", &tag) == 1;
    struct counters *snap = coil_req_alloc(req, sizeof(*snap)); /* too big for the stack */
    if (!snap)
        return -ENOMEM;
    pthread_mutex_lock(&lock);
    *snap = g;
    pthread_mutex_unlock(&lock);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    coil_json_key(j, "handler");
    coil_json_object_open(j);
    for (int i = 0; i < NHANDLERS; i++)
        json_counter(j, handler_names[i], snap->handler[i]);
    coil_json_object_close(j);
    coil_json_key(j, "aborts");
    coil_json_object_open(j);
    for (int i = 0; i < 26; i++)
        if (snap->aborts[i]) {
            char k[2] = {(char)('A' + i), 0};
            json_counter(j, k, snap->aborts[i]);
        }
    coil_json_object_close(j);
    json_counter(j, "handler_aborts", snap->handler_aborts);
    coil_json_key(j, "next");
    coil_json_object_open(j);
    json_counter(j, "ok", snap->next_ok);
    json_counter(j, "einval", snap->next_einval);
    json_counter(j, "other", snap->next_other);
    coil_json_object_close(j);
    struct coil_stats stats;
    coil_stats_get(&stats);
    json_counter(j, "waiting", stats.waiting);
    json_counter(j, "after", snap->after);
    json_counter(j, "done", snap->done);
    json_counter(j, "filter_calls", snap->filter_calls);
    coil_json_key(j, "setup");
    coil_json_object_open(j);
    coil_json_key(j, "route_use_missing");
    coil_json_int(j, setup_route_missing);
    coil_json_key(j, "app_use_empty");
    coil_json_int(j, setup_empty_mw);
    coil_json_key(j, "app_use_null");
    coil_json_int(j, setup_null_mw);
    coil_json_object_close(j);
    coil_json_key(j, "records");
    coil_json_array_open(j);
    uint64_t first = snap->nrec > NRECORDS ? snap->nrec - NRECORDS : 0;
    for (uint64_t i = first; i < snap->nrec; i++) {
        const struct record *r = &snap->rec[i % NRECORDS];
        if (by_tag && (strlen(r->tag) != tag.len || memcmp(r->tag, tag.ptr, tag.len)))
            continue;
        json_record(j, r);
    }
    coil_json_array_close(j);
    coil_json_object_close(j);
    return 0;
}

/* ---- setup ----------------------------------------------------------------------------------- */

/* Takes --bare out of argv; returns the new argc. */
static int take_bare(int argc, char **argv, bool *bare)
{
    int out = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--bare"))
            *bare = true;
        else
            argv[out++] = argv[i];
    }
    argv[out] = NULL;
    return out;
}

static void must(int rc, const char *what)
{
    if (rc < 0) {
        fprintf(stderr, "mwapp: %s: %s\n", what, strerror(-rc));
        exit(1);
    }
}

static void add_middleware(struct coil_app *app)
{
    struct coil_mw a = generic(&step_a), b = generic(&step_b), r = generic(&step_r),
                   t = generic(&step_t);
    struct coil_mw f = {.name = "filter", .after = filter_after};
    struct coil_mw w = {.name = "rewrite", .after = rewrite_after};
    struct coil_mw empty = {.name = "empty"};
    must(coil_app_use(app, &a), "coil_app_use A");
    must(coil_app_use(app, &b), "coil_app_use B");
    must(coil_route_use(app, "GET", "/r", &r), "coil_route_use R");
    must(coil_route_use(app, "GET", "/stream", &t), "coil_route_use T");
    must(coil_route_use(app, "GET", "/stream", &f), "coil_route_use F");
    must(coil_route_use(app, "GET", "/rewrite", &w), "coil_route_use W");
    setup_route_missing = coil_route_use(app, "GET", "/no-such-route", &r);
    setup_empty_mw = coil_app_use(app, &empty);
    setup_null_mw = coil_app_use(app, NULL);
}

int main(int argc, char **argv)
{
    bool bare = false;
    argc = take_bare(argc, argv, &bare);
    struct coil_app *app = coil_app_create(argc, argv);
    if (!app)
        return 1;
    static const struct {
        const char *method, *pattern;
        coil_handler h;
    } routes[] = {
        {"GET", "/r", h_r},
        {"GET", "/plain", h_plain},
        {"POST", "/body", h_body},
        {"GET", "/defer", h_defer},
        {"GET", "/never", h_never},
        {"GET", "/stream", h_stream},
        {"GET", "/rewrite", h_rewrite},
        {"GET", "/id", h_id},
        {"GET", "/trace", h_trace},
        {"GET", "/counts", h_counts},
    };
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
        must(coil_route(app, routes[i].method, routes[i].pattern, routes[i].h, NULL), "coil_route");
    if (!bare)
        add_middleware(app);
    return coil_app_run(app);
}
