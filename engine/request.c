/* SPDX-License-Identifier: MIT */
/*
 * request.c: the request lifecycle: a parsed request from a codec is routed, its handler runs,
 * and its response is answered at once or later (deferred), streamed, or aborted.
 *
 * A request lives in a struct coil__rq from the worker's request slab. The worker keeps one
 * spare: a handler that answers before it returns uses the spare, the worker's request arena
 * and the slices of the receive buffer, and leaves the spare for the next request, so the
 * synchronous path allocates nothing. A handler that defers takes the spare for good (the next
 * request makes a new one) and its request moves into memory of its own: the worker arena's
 * chunks, if the handler allocated anything, pass to the request (coil__arena_move: pointers
 * stay valid); the head and body bytes, the header array and the route match are copied into
 * that arena and the request's slices are rebased onto the copy.
 *
 * A deferred request ends exactly once: finished (coil_res_finish), or aborted (the client is
 * gone, --handler-timeout, the drain deadline), when on_abort runs. Either way its owner-bound
 * timers are cancelled and its slab slot is put back, which changes the slot's generation, so
 * a coil_defer handle kept past the end is recognised as stale. Everything here runs on the
 * request's worker. The codec is reached only through the codec_* calls below: HTTP/1.1 answers
 * on the connection (c->rq is its waiting request), HTTP/2 on the request's stream (rq->h2s).
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "internal.h"

static void on_deadline(struct coil__timer *t, void *ctx);

/* ---- the codec -------------------------------------------------------------------------- */

static bool on_h2(const struct coil_conn *c)
{
    return c->proto == &coil__http2;
}

static int codec_respond(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq,
                         int status)
{
    if (on_h2(c))
        return coil__h2_respond(w, c, rq, status);
    return coil__http1_respond(w, c, rq, status);
}

static int codec_stream_piece(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq,
                              const void *data, size_t len)
{
    if (on_h2(c))
        return coil__h2_stream_piece(w, c, rq, data, len);
    return coil__http1_stream_piece(w, c, rq, data, len);
}

/* Whether rq can still be answered: it is its connection's waiting request, or it has a stream. */
static bool attached(const struct coil_conn *c, const struct coil__rq *rq)
{
    return on_h2(c) ? rq->h2s != NULL : c->rq == rq;
}

/* Response bytes waiting to be sent, as far as rq's writer is concerned. */
static size_t codec_queued(const struct coil__rq *rq)
{
    return on_h2(rq->conn) ? coil__h2_queued(rq) : coil__conn_queued(rq->conn);
}

/* ---- the request object ----------------------------------------------------------------- */

static struct coil__rq *spare(struct coil__worker *w)
{
    struct coil__rq *rq = w->rq_spare;
    if (rq)
        return rq;
    uint32_t idx, gen;
    rq = coil__slab_get(&w->rqs, &idx, &gen);
    if (!rq)
        return NULL;
    rq->idx = idx;
    rq->gen = gen;
    w->rq_spare = rq;
    return rq;
}

/* What the middleware keeps per request, for every request (a spare is reused). */
static void mw_setup(struct coil__worker *w, struct coil__rq *rq, const struct coil__chain *ch)
{
    rq->chain = ch;
    rq->mw_next = 0;
    rq->mw_wait = rq->mw_resumed = rq->after_ran = rq->in_filter = false;
    rq->sent = 0;
    rq->start_ns = w->now_ns;
    rq->bytes_in = rq->bytes_out = 0;
    rq->filter = NULL;
    rq->x = NULL;
}

static void setup(struct coil__worker *w, struct coil__rq *rq, struct coil_conn *c,
                  const struct coil__dispatch *d)
{
    coil__req_setup(&rq->req, &rq->res, w, d->http, d->match, d->body, d->state);
    rq->req.rq = rq;
    rq->res.rq = rq;
    rq->conn = c;
    rq->h2s = d->h2s;
    rq->buf = d->buf;
    rq->head_len = d->head_len;
    rq->head = d->head;
    rq->keep = d->keep;
    rq->ka10 = d->ka10;
    rq->http11 = d->http11;
    rq->count = true;
    rq->in_handler = true;
    rq->deferred = false;
    rq->on_piece = NULL;
    rq->body_open = d->body_mode != BODY_NONE;
    rq->route_status = d->route_status;
    rq->cut = false;
    mw_setup(w, rq, d->route_status ? w->app->chain : d->match->route->chain);
    rq->bytes_in = d->wire;
    if (!d->early)
        return; /* the rest is read only by an early route's body path */
    rq->body_mode = d->body_mode;
    rq->body_end_due = !rq->body_open;
    rq->body_paused = rq->body_resume = false;
    rq->body_left = d->body_len;
    rq->body_read = 0;
    rq->body_max = d->body_max;
    if (d->body_mode == BODY_CHUNKED)
        coil__chunked_init(&rq->body_ck);
    rq->piece_ud = NULL;
    rq->body_piece_len = rq->body_raw_len = rq->body_raw_cap = 0;
}

/* Ends a deferred request: its done steps run (complete: a whole response was queued), then its
 * timers, memory and slot go; its handle goes stale. */
static void release(struct coil__worker *w, struct coil__rq *rq, bool complete)
{
    coil__mw_done(w, rq, complete);
    coil__timer_cancel(&w->wheel, &rq->deadline);
    coil__timers_drop_owner(w, rq);
    coil__fetches_drop_owner(w, rq);
    coil__arena_fini(&rq->arena);
    coil__wfree(&w->wa, rq->body_piece);
    coil__wfree(&w->wa, rq->body_raw);
    rq->body_piece = rq->body_raw = NULL;
    rq->body_open = false;
    rq->on_piece = NULL;
    if (rq->waiting) {
        STAT_ADD(w, waiting, (uint64_t)-1);
        rq->waiting = false;
    }
    rq->deferred = false;
    if (w->rq_spare == rq)
        w->rq_spare = NULL;
    coil__slab_put(&w->rqs, rq->idx);
}

struct coil__rq *coil__rq_at(struct coil__worker *w, uint64_t id)
{
    if (!w || !id)
        return NULL;
    uint32_t idx, gen;
    if (!coil__handle_on(id, w->id, &idx, &gen))
        return NULL;
    struct coil__rq *rq = coil__slab_at(&w->rqs, idx, gen);
    if (!rq || !rq->deferred || rq->aborted || rq->finished)
        return NULL;
    return rq;
}

uint64_t coil__owner_id(struct coil__worker *w, struct coil_req *owner)
{
    struct coil__rq *rq = owner ? owner->rq : NULL;
    if (!w || !rq || !rq->deferred || rq->aborted || rq->finished)
        return 0;
    return coil__handle(w->id, rq->idx, rq->gen);
}

/* ---- moving a request into its own memory ----------------------------------------------- */

static void rebase(struct coil_str *s, const char *from, size_t len, char *to)
{
    if (s->ptr >= from && s->ptr <= from + len)
        s->ptr = to + (s->ptr - from);
}

static int move_request(struct coil__worker *w, struct coil__rq *rq)
{
    struct coil_req *req = &rq->req;
    const struct coil__http_req *h = req->http;
    const struct coil__match *m = req->match;
    struct coil_str body = req->body;
    size_t nh = h->nheaders;
    size_t need = sizeof(*h) + nh * sizeof(*h->headers) + sizeof(*m) + rq->head_len + body.len;
    bool moved = coil__arena_used(&w->arena);
    if (moved)
        coil__arena_move(&w->arena, &rq->arena);
    else
        coil__arena_init_empty(&rq->arena, &w->wa, need + 2048);
    struct coil__http_req *nhttp = coil__arena_alloc(&rq->arena, sizeof(*h));
    struct coil__http_header *nhdrs = coil__arena_alloc(&rq->arena, nh * sizeof(*nhdrs));
    struct coil__match *nm = coil__arena_alloc(&rq->arena, sizeof(*m));
    char *bytes = coil__arena_alloc(&rq->arena, rq->head_len + body.len);
    if (!nhttp || !nhdrs || !nm || !bytes) {
        if (moved) {
            coil__arena_move(&rq->arena, &w->arena); /* what the handler had stays valid */
        } else {
            coil__arena_fini(&rq->arena);
        }
        return -ENOMEM;
    }
    const char *from = rq->buf;
    size_t len = rq->head_len;
    memcpy(bytes, from, len);
    if (body.len)
        memcpy(bytes + len, body.ptr, body.len);
    *nhttp = *h;
    struct coil_str *strs[] = {&nhttp->method, &nhttp->target, &nhttp->path, &nhttp->query,
                               &nhttp->host};
    for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++)
        rebase(strs[i], from, len, bytes);
    for (size_t i = 0; i < nh; i++) {
        nhdrs[i] = h->headers[i];
        rebase(&nhdrs[i].name, from, len, bytes);
        rebase(&nhdrs[i].value, from, len, bytes);
    }
    nhttp->headers = nhdrs;
    *nm = *m;
    for (uint32_t i = 0; i < nm->nparams; i++)
        rebase(&nm->values[i], from, len, bytes);
    req->http = nhttp;
    req->match = nm;
    req->body = (struct coil_str){bytes + len, body.len};
    memcpy(rq->state, req->state, sizeof(rq->state));
    req->state = rq->state;
    req->arena = &rq->arena;
    rq->res.arena = &rq->arena;
    if (rq->res.json_active)
        rq->res.json.arena = &rq->arena;
    rq->buf = NULL;
    return 0;
}

struct coil_defer coil_res_defer(struct coil_res *res, coil_abort_fn on_abort, void *ud)
{
    struct coil__rq *rq = res->rq;
    if (rq && rq->in_handler && rq->mw_resumed && !rq->redeferred && !rq->finished) {
        /* Continued by coil_mw_next: already deferred; the handler (or a step) takes it over. */
        rq->redeferred = true;
        rq->on_abort = on_abort;
        rq->abort_ud = ud;
        return (struct coil_defer){coil__handle(res->w->id, rq->idx, rq->gen)};
    }
    if (!rq || !rq->in_handler || rq->deferred)
        return (struct coil_defer){0};
    if (move_request(res->w, rq) < 0)
        return (struct coil_defer){0};
    if (rq->chain->done)
        coil_req_peer(&rq->req); /* kept: the connection may be gone when the steps run */
    rq->deferred = true;
    rq->finished = false;
    rq->aborted = false;
    rq->streaming = false;
    rq->chunked = false;
    rq->no_body = false;
    rq->want_writable = false;
    rq->waiting = false;
    rq->length = 0;
    rq->written = 0;
    rq->on_abort = on_abort;
    rq->abort_ud = ud;
    rq->on_writable = NULL;
    rq->writable_ud = NULL;
    rq->timers = NULL;
    rq->deadline.cb = on_deadline;
    return (struct coil_defer){coil__handle(res->w->id, rq->idx, rq->gen)};
}

struct coil_res *coil_defer_res(struct coil_defer d)
{
    struct coil__rq *rq = coil__rq_at(coil__self, d.id);
    return rq ? &rq->res : NULL;
}

struct coil_req *coil_defer_req(struct coil_defer d)
{
    struct coil__rq *rq = coil__rq_at(coil__self, d.id);
    return rq ? &rq->req : NULL;
}

/* ---- answering -------------------------------------------------------------------------- */

/* The after steps see the response; what they leave is what is sent (a status they set outside
 * 200-599 is not taken). */
static int after_steps(struct coil__rq *rq, int status)
{
    if (!rq->chain->after || rq->after_ran)
        return status;
    coil__mw_after(rq);
    int s = rq->res.status;
    if (s >= 200 && s <= 599)
        return s;
    rq->res.status = status;
    return status;
}

/* A whole response for a request on the stack of its dispatch (not yet attached). */
static int respond(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq, int status)
{
    status = after_steps(rq, status);
    rq->sent = status;
    return codec_respond(w, c, rq, status);
}

/* A whole response for a deferred request (the codec detaches it from its connection). */
static void respond_later(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq,
                          int status)
{
    status = after_steps(rq, status);
    rq->sent = status;
    if (on_h2(c))
        coil__h2_finish(w, c, rq, status);
    else
        coil__http1_finish(w, c, rq, status);
}

/* A streamed response that cannot end correctly: over HTTP/1.1 only closing the connection says
 * so (after rq is released); over HTTP/2 its stream is reset (before). */
static void end_broken(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq)
{
    if (on_h2(c)) {
        coil__h2_reset(w, c, rq);
        release(w, rq, false);
        return;
    }
    release(w, rq, false);
    coil__conn_abort(w, c);
}

/* ---- running a request ------------------------------------------------------------------ */

/* The engine's own answer when no route took the request. */
static int no_route(struct coil__rq *rq, int status, const struct coil__match *m)
{
    STAT_INC(rq->req.w, rejected);
    int err = coil__res_error(&rq->res, status);
    if (err == 0 && status == 405)
        err = coil_res_header(&rq->res, "Allow", m->allow);
    return err;
}

/* The handler, or the engine's 404/405 when no route matched. */
static int run_handler(struct coil__rq *rq)
{
    const struct coil__match *m = rq->req.match;
    if (rq->route_status)
        return no_route(rq, rq->route_status, m);
    return m->route->handler(&rq->req, &rq->res, m->route->ud);
}

/* Before steps from index from, then the handler unless a step answered (COIL_MW_DONE) or failed
 * (its negative errno is returned, as a handler's would be). */
static int run_steps(struct coil__rq *rq, uint32_t from)
{
    if (rq->chain->before) {
        int rc = coil__mw_before(rq, from);
        if (rc != COIL_MW_NEXT) {
            /* A step continued by coil_mw_next waits only if it deferred again; one that just
             * answered is done. */
            if (rc == COIL_MW_DONE && rq->deferred && !rq->finished &&
                (!rq->mw_resumed || rq->redeferred))
                rq->mw_wait = true; /* the step waits for something: coil_mw_next goes on */
            return rc < 0 ? rc : 0;
        }
    }
    return run_handler(rq);
}

/* The handler returned after deferring: keep the request, or answer it if it is done. */
static struct coil__rq *after_defer(struct coil__worker *w, struct coil_conn *c,
                                    struct coil__rq *rq, int hrc)
{
    w->rq_spare = NULL; /* rq is the request's now */
    if (rq->aborted || (rq->finished && rq->streaming)) {
        /* Aborted under a stream call (its connection failed; on_abort ran), or ended inside
         * the handler and already on its way. */
        release(w, rq, !rq->aborted && !rq->cut);
        return NULL;
    }
    if (hrc < 0 && rq->streaming) {
        end_broken(w, c, rq); /* the head is out: nothing correct can follow */
        return NULL;
    }
    if (hrc < 0 || rq->finished) {
        /* A negative return cancels the defer: 500 (or what the handler set). */
        int status = coil__res_finish(&rq->res, hrc < 0 ? hrc : 0);
        int err = respond(w, c, rq, status);
        release(w, rq, err == 0);
        if (err < 0)
            coil__conn_abort(w, c);
        return NULL;
    }
    STAT_INC(w, deferred);
    STAT_INC(w, waiting);
    rq->waiting = true;
    coil__timer_at(w, &rq->deadline, w->now_ms + w->app->cfg.handler_timeout_ms);
    return rq;
}

struct coil__rq *coil__request_run(struct coil__worker *w, struct coil_conn *c,
                                   const struct coil__dispatch *d)
{
    struct coil__rq *rq = spare(w);
    if (!rq && on_h2(c)) {
        coil__h2_refuse(w, c, d->h2s, 503); /* the stream's loss, not the connection's */
        return NULL;
    }
    if (!rq) {
        if (coil__request_reject(w, c, 503) < 0)
            coil__conn_abort(w, c);
        else
            coil__conn_close_after(w, c);
        return NULL;
    }
    setup(w, rq, c, d);
    int hrc = run_steps(rq, 0);
    rq->in_handler = false;
    if (rq->deferred)
        return after_defer(w, c, rq, hrc);
    int status = coil__res_finish(&rq->res, hrc);
    int err = respond(w, c, rq, status);
    coil__mw_done(w, rq, err == 0);
    coil__arena_reset(&w->arena);
    if (err < 0)
        coil__conn_abort(w, c);
    return NULL;
}

int coil__request_body(struct coil__worker *w, struct coil__http_req *h,
                       const struct coil__match *m, void *state, const void *data, size_t n)
{
    struct coil_req req;
    struct coil_res res;
    coil__req_setup(&req, &res, w, h, m, (struct coil_str){data, 0}, state);
    int rc = m->route->on_body(&req, data, n, m->route->ud);
    coil__arena_reset(&w->arena);
    return rc;
}

int coil__request_reject(struct coil__worker *w, struct coil_conn *c, int status)
{
    /* No request could be parsed: steps see one without method, path or headers. */
    static struct coil__http_req none;
    struct coil__rq rq;
    coil__req_setup(&rq.req, &rq.res, w, &none, NULL, (struct coil_str){NULL, 0}, NULL);
    rq.req.rq = &rq;
    rq.res.rq = NULL;
    rq.conn = c;
    rq.h2s = NULL;
    rq.buf = NULL;
    rq.head = false;
    rq.keep = false;
    rq.ka10 = false;
    rq.http11 = true;
    rq.count = false;
    rq.deferred = false;
    rq.streaming = false;
    rq.body_open = false;
    rq.route_status = 0;
    rq.cut = false;
    mw_setup(w, &rq, w->app->chain);
    int err = coil__res_error(&rq.res, status);
    if (err == 0)
        err = respond(w, c, &rq, status);
    coil__mw_done(w, &rq, err == 0);
    coil__arena_reset(&w->arena);
    return err;
}

/* ---- finishing -------------------------------------------------------------------------- */

static void end_stream(struct coil__worker *w, struct coil__rq *rq)
{
    if (rq->filter && !rq->no_body && !rq->cut) {
        rq->in_filter = true;
        int err = rq->filter(&rq->res, NULL, 0, true, rq->filter_ud);
        rq->in_filter = false;
        if (err < 0)
            rq->cut = true;
    }
    if (rq->length && !rq->no_body && rq->written != rq->length - 1)
        rq->cut = true;
    if (rq->cut)
        rq->keep = false; /* short of its length or its filter failed: only a close tells */
    if (on_h2(rq->conn))
        coil__h2_stream_end(w, rq->conn, rq);
    else
        coil__http1_stream_end(w, rq->conn, rq);
}

/* Answers a deferred request that is not on its handler's stack: its response as built (hrc as
 * a handler's return), or the end of its stream. */
static void finish_deferred(struct coil__worker *w, struct coil__rq *rq, int hrc)
{
    rq->finished = true;
    struct coil_conn *c = rq->conn;
    coil__conn_hold(c); /* answering may close it: keep the slot until we are done */
    if (rq->streaming) {
        end_stream(w, rq);
    } else {
        int status = coil__res_finish(&rq->res, hrc);
        respond_later(w, c, rq, status);
    }
    release(w, rq, !rq->cut);
    coil__conn_release(w, c);
}

int coil_res_finish(struct coil_res *res)
{
    struct coil__rq *rq = res->rq;
    if (!rq || !rq->deferred || rq->finished)
        return -EINVAL;
    if (rq->aborted)
        return -ESRCH;
    if (rq->in_handler) {
        /* Answered by the code that runs after the handler returns (after_defer). */
        if (rq->streaming)
            end_stream(res->w, rq);
        rq->finished = true;
        return 0;
    }
    finish_deferred(res->w, rq, 0);
    return 0;
}

int coil_mw_next(struct coil_req *req)
{
    struct coil__rq *rq = req->rq;
    if (!rq || !rq->deferred || !rq->mw_wait || rq->in_handler || rq->finished || rq->aborted)
        return -EINVAL;
    struct coil__worker *w = req->w;
    rq->mw_wait = false;
    rq->mw_resumed = true;
    rq->redeferred = false;
    rq->in_handler = true;
    int hrc = run_steps(rq, rq->mw_next);
    rq->in_handler = false;
    rq->mw_resumed = false;
    if (rq->aborted) {
        release(w, rq, false); /* its connection failed under a stream call */
    } else if (rq->finished && rq->streaming) {
        release(w, rq, !rq->cut); /* ended inside, as after_defer does */
    } else if (hrc < 0 && rq->streaming) {
        end_broken(w, rq->conn, rq);
    } else if (hrc < 0 || rq->finished || (!rq->redeferred && !rq->mw_wait)) {
        finish_deferred(w, rq, hrc); /* answered (or failed) by the handler or a step */
    }
    /* Else the handler or a step deferred again: the request goes on waiting. */
    return 0;
}

/* The request dies: its handle goes stale, its timers go, and on_abort runs (once). */
static void run_abort(struct coil__worker *w, struct coil__rq *rq)
{
    rq->aborted = true;
    STAT_INC(w, aborted);
    coil__timers_drop_owner(w, rq);
    coil__fetches_drop_owner(w, rq);
    if (rq->on_abort)
        rq->on_abort(rq->abort_ud);
}

void coil__request_abort(struct coil__worker *w, struct coil__rq *rq, int status)
{
    if (rq->aborted)
        return;
    run_abort(w, rq);
    struct coil_conn *c = rq->conn;
    bool answered = false;
    if (status && attached(c, rq)) {
        coil__conn_hold(c);
        if (!rq->streaming && coil__res_error(&rq->res, status) == 0) {
            respond_later(w, c, rq, status);
            answered = true;
        } else if (on_h2(c)) {
            coil__h2_reset(w, c, rq); /* mid-body: only the stream goes */
        } else {
            c->rq = NULL; /* mid-body: closing is the only honest end */
            coil__conn_abort(w, c);
        }
        coil__conn_release(w, c);
    }
    release(w, rq, answered);
}

int coil_res_fail(struct coil_res *res, int status)
{
    struct coil__rq *rq = res->rq;
    if (!rq || !rq->deferred || rq->finished || status < 400 || status > 599)
        return -EINVAL;
    if (rq->aborted)
        return -ESRCH;
    struct coil__worker *w = res->w;
    rq->on_abort = NULL;
    if (rq->in_handler) {
        /* after_defer answers it once the handler returns: as an error, or with a close. */
        if (rq->streaming) {
            rq->aborted = true; /* after_defer releases it */
            if (on_h2(rq->conn))
                coil__h2_reset(w, rq->conn, rq);
            else
                coil__conn_abort(w, rq->conn);
            return 0;
        }
        coil__res_error(res, status);
        rq->finished = true;
        return 0;
    }
    coil__request_abort(w, rq, status);
    STAT_ADD(w, aborted, (uint64_t)-1); /* the handler gave up: not an abort from outside */
    return 0;
}

static void on_deadline(struct coil__timer *t, void *ctx)
{
    struct coil__rq *rq = (struct coil__rq *)((char *)t - offsetof(struct coil__rq, deadline));
    STAT_INC((struct coil__worker *)ctx, t_handler);
    coil__request_abort(ctx, rq, 504);
}

/* ---- streaming -------------------------------------------------------------------------- */

/*
 * The connection failed under a stream call. A request waiting on it was aborted and released
 * by the codec already; one still in its handler is not attached yet, so it is aborted here,
 * and on_abort has run when the caller sees -EPIPE, as coil.h says (after_defer frees it).
 */
static int stream_failed(struct coil__worker *w, struct coil__rq *rq, bool in_handler)
{
    if (in_handler && !rq->aborted)
        run_abort(w, rq);
    return -EPIPE;
}

/* A stream lives as long as it makes progress: --handler-timeout bounds the wait for its head
 * and then each wait between two pieces, so a long Server-Sent Events stream is not cut. */
static void rearm_deadline(struct coil__worker *w, struct coil__rq *rq)
{
    if (rq->waiting)
        coil__timer_at(w, &rq->deadline, w->now_ms + w->app->cfg.handler_timeout_ms);
}

/* ---- reading the body while the response waits ---------------------------------------- */

int coil_req_read(struct coil_req *req, coil_piece_fn on_piece, void *ud)
{
    struct coil__rq *rq = req->rq;
    if (!rq || !on_piece || !rq->deferred || rq->aborted || rq->finished || rq->on_piece ||
        !rq->req.match || !rq->req.match->route || !rq->req.match->route->early)
        return -EINVAL;
    rq->on_piece = on_piece;
    rq->piece_ud = ud;
    return coil_req_resume(req);
}

int coil_req_resume(struct coil_req *req)
{
    struct coil__rq *rq = req->rq;
    if (!rq || !rq->deferred || rq->aborted || rq->finished || !rq->on_piece)
        return -EINVAL;
    rq->body_resume = true; /* the codec goes on at the end of the batch, off the caller's stack */
    struct coil__worker *w = req->w;
    struct coil_conn *c = rq->conn;
    bool in_handler = rq->in_handler;
    coil__conn_hold(c);
    coil__conn_schedule(w, c); /* out of memory here closes the connection */
    if (!coil__conn_release(w, c))
        return stream_failed(w, rq, in_handler); /* rq may be gone: touch nothing */
    return 0;
}

int64_t coil_req_body_length(const struct coil_req *req)
{
    const struct coil__http_req *h = req->http;
    if (!h)
        return 0;
    if (h->flags & COIL_HTTP_CHUNKED)
        return -1;
    return (h->flags & COIL_HTTP_HAS_LENGTH) ? (int64_t)h->content_length : 0;
}

int coil__request_piece(struct coil__worker *w, struct coil__rq *rq, const void *data, size_t len)
{
    rearm_deadline(w, rq);
    return rq->on_piece(&rq->req, data, len, rq->piece_ud);
}

int coil_res_length(struct coil_res *res, uint64_t len)
{
    struct coil__rq *rq = res->rq;
    if (!rq || !rq->deferred || rq->streaming || len == UINT64_MAX)
        return -EINVAL;
    rq->length = len + 1;
    return 0;
}

int coil_res_stream(struct coil_res *res)
{
    struct coil__rq *rq = res->rq;
    if (!rq || !rq->deferred || rq->streaming || rq->finished || rq->aborted)
        return -EINVAL;
    int status = res->status ? res->status : 200;
    if (status < 200)
        return -EINVAL;
    struct coil__worker *w = res->w;
    struct coil_conn *c = rq->conn;
    bool in_handler = rq->in_handler;
    rq->streaming = true;
    status = after_steps(rq, status);
    rq->sent = status;
    coil__conn_hold(c);
    int err = on_h2(c) ? coil__h2_stream_head(w, c, rq, status)
                       : coil__http1_stream_head(w, c, rq, status);
    if (!coil__conn_release(w, c))
        return stream_failed(w, rq, in_handler); /* rq and res may be gone: touch neither */
    if (err < 0) {
        rq->streaming = false;
        rq->sent = 0;
    } else {
        rearm_deadline(w, rq);
    }
    return err;
}

int coil_res_write(struct coil_res *res, const void *data, size_t len)
{
    struct coil__rq *rq = res->rq;
    if (!rq || !rq->streaming || rq->finished || rq->aborted)
        return -EINVAL;
    if (rq->length && len > rq->length - 1 - rq->written)
        return -EMSGSIZE;
    struct coil__worker *w = res->w;
    if (codec_queued(rq) > COIL_STREAM_HIGH) {
        /* The client is slow, not the handler: while it drains, the write timeout governs. */
        if (on_h2(rq->conn))
            coil__h2_want_writable(rq);
        rq->want_writable = true;
        coil__timer_cancel(&w->wheel, &rq->deadline);
        return -EAGAIN;
    }
    if (rq->cut)
        return -EIO; /* its filter failed: the response ends with a close */
    struct coil_conn *c = rq->conn;
    bool in_handler = rq->in_handler;
    coil__conn_hold(c);
    int err;
    if (rq->filter && !rq->no_body) {
        rq->in_filter = true;
        err = rq->filter(res, data, len, false, rq->filter_ud);
        rq->in_filter = false;
    } else {
        err = codec_stream_piece(w, c, rq, data, len);
    }
    if (!coil__conn_release(w, c))
        return stream_failed(w, rq, in_handler); /* rq and res may be gone: touch neither */
    if (err < 0) {
        if (rq->filter)
            rq->cut = true;
        return err;
    }
    rq->written += len;
    rearm_deadline(w, rq);
    return 0;
}

int coil_res_emit(struct coil_res *res, const void *data, size_t len)
{
    struct coil__rq *rq = res->rq;
    if (!rq || !rq->in_filter)
        return -EINVAL;
    return codec_stream_piece(res->w, rq->conn, rq, data, len);
}

int coil_res_on_writable(struct coil_res *res, void (*fn)(void *ud), void *ud)
{
    struct coil__rq *rq = res->rq;
    if (!rq || !rq->deferred)
        return -EINVAL;
    rq->on_writable = fn;
    rq->writable_ud = ud;
    return 0;
}

void coil__request_writable(struct coil__worker *w, struct coil__rq *rq)
{
    rq->want_writable = false;
    rearm_deadline(w, rq);
    if (rq->on_writable)
        rq->on_writable(rq->writable_ud);
}

/* ---- per worker ------------------------------------------------------------------------- */

int coil__request_start(struct coil__worker *w)
{
    const struct coil__config *cfg = &w->app->cfg;
    int err = coil__arena_init(&w->arena, &w->wa, 64 * 1024);
    if (err < 0)
        return err;
    w->hdrs = coil__walloc(&w->wa, sizeof(*w->hdrs) * cfg->lim.max_headers);
    if (!w->hdrs)
        return -ENOMEM;
    /* Up to four waiting requests per connection's worth of slots, within what a handle can
     * name; a full slab answers 503. */
    uint64_t max = (uint64_t)cfg->max_conns * 4;
    return coil__slab_init(&w->rqs, &w->wa, sizeof(struct coil__rq),
                           (uint32_t)(max < COIL_HANDLE_SLOTS ? max : COIL_HANDLE_SLOTS));
}

void coil__request_stop(struct coil__worker *w)
{
    if (w->rq_spare) {
        coil__slab_put(&w->rqs, w->rq_spare->idx);
        w->rq_spare = NULL;
    }
    if (w->rqs.wa)
        coil__slab_fini(&w->rqs);
    coil__arena_fini(&w->arena);
    coil__wfree(&w->wa, w->hdrs);
    w->hdrs = NULL;
}
