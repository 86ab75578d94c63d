/* SPDX-License-Identifier: MIT */
/*
 * testapp: a small user program for the integration tests of what the demo does not use:
 * per-route body limits (coil_route_max_body), streaming routes (coil_route_stream with
 * coil_req_state), application options (coil_app_option, with its environment variable) and
 * the per-worker start hook.
 *   POST /small  body limit from --max-body-bytes; answers the body length
 *   POST /big    body limit 4 MiB; answers the body length and a checksum of the bytes
 *   POST /stream streamed, limit 32 MiB; answers "length checksum pieces" like /big plus the
 *                number of on_body calls. "X-Fail-After: N" makes on_body return the status in
 *                "X-Fail-Status" (a number, default 422) once more than N bytes have arrived.
 *   GET /greeting   the --greeting option
 *   GET /started    how many workers ran the start hook
 *
 * Requests that wait (coil_res_defer and what a deferred handler waits on):
 *   GET /hang          defers and never finishes; its on_abort counts into /aborts
 *   GET /aborts        how many on_abort calls ran (all workers), as text
 *   GET /later/:ms     finishes from a timer owned by the request, ms 0..10000: "later <ms>"
 *                      (ms read again from the request after the defer), header X-Worker
 *   GET /cross         sends its coil_defer and coil_timer handles to the next worker, which
 *                      must find neither ("ok"; "bad" if a handle named something there)
 *   GET /call/:target  asks worker target with coil_job_call; the reply finishes the response
 *                      with {"from":caller,"to":replier,"back":worker running the reply};
 *                      400 when coil_job_call refuses the target (-EINVAL)
 *   GET /handle/:ms    keeps only the coil_defer handle (coil_malloc'd) and finishes it from an
 *                      owner-less timer: "handle <ms>"; a handle whose request is gone
 *                      (coil_defer_res NULL) counts into /stale
 *   GET /stale         that count, as text
 *   GET /cancel        an owner-less timer cancelled at once: coil_timer_cancel must say 0 then
 *                      -ENOENT; "ok", or 500 naming what differed
 *   GET /pipe          watches a pipe (coil_watch) that a timer writes "ping" into; on readable
 *                      reads, unwatches, closes and answers "pong:ping"
 *   GET /stream?mb=N   streams N MiB (0..2048, default 1), chunked: byte i is i % 251, in
 *                      64 KiB coil_res_write calls, waiting for on_writable on -EAGAIN
 *   GET /stream-len?mb=N  the same with coil_res_length (Content-Length framing)
 *   GET /overlong      Content-Length 10 streamed: a write past the length must be -EMSGSIZE
 *   GET /status/:code  answers that status synchronously with the body "status <code>"
 *   GET /huge/static   a whole body one byte over COIL_BODY_MAX set without copying (never read:
 *                      the engine must refuse it with 500); /huge/copy the same with
 *                      coil_res_body, which must refuse it (-EMSGSIZE)
 *   POST /echo-later/:ms  answers from a timer with what it reads from the request after the
 *                      defer: the body (as the body), the path (X-Path), query parameter q
 *                      (X-Q) and header X-Tag (X-Tag)
 *   GET /defer-fail    defers with /hang's on_abort, then returns -EIO: 500, no abort
 *   GET /pattern/:kb   a synchronous body of kb KiB (0..4096) copied with coil_res_body: byte i
 *                      is i % 251, like /stream's
 *   POST /early        an early route (coil_route_stream with on_body NULL): the handler runs at
 *                      the head, defers and reads the body with coil_req_read; once it has
 *                      ended, answers "length checksum" like /big. Body limit 1 MiB
 *   GET /stats         the engine's counters (requests, open, deferred, waiting, aborted) and
 *                      this program's: aborts, stale, late_watch (watch callbacks after
 *                      coil_unwatch), stream_aborts, writable (on_writable calls), pending
 *                      (coil_malloc'd waits not yet freed), errors (contract checks that
 *                      failed) and first_error
 * On exit main prints "testapp: exit status=S aborts=A stale=N stream_aborts=T errors=E" to
 * stderr.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* pipe2 */
#endif
#include <coil.h>
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *greeting = "hello";
static atomic_uint started;

static int set_greeting(const char *value, void *ud)
{
    if (!*value)
        return -1; /* refused: exit 2 */
    greeting = value;
    return 0;
}

static void on_start(unsigned worker, void *ud)
{
    atomic_fetch_add(&started, 1);
}

static int length(struct coil_req *req, struct coil_res *res, void *ud)
{
    struct coil_str body = coil_req_body(req);
    unsigned long sum = 0;
    for (size_t i = 0; i < body.len; i++)
        sum = sum * 31 + (unsigned char)body.ptr[i];
    char out[64];
    snprintf(out, sizeof(out), "%zu %lu", body.len, sum);
    return coil_res_text(res, 200, "text/plain", out);
}

/* What /stream keeps between pieces, in coil_req_state. */
struct stream_state {
    uint64_t len;
    unsigned long sum;
    uint32_t pieces;
};
static_assert(sizeof(struct stream_state) <= COIL_REQ_STATE_BYTES, "state too big");

static long header_number(struct coil_req *req, const char *name, long absent)
{
    struct coil_str v = coil_req_header(req, name);
    if (!v.ptr)
        return absent;
    char tmp[24];
    size_t n = v.len < sizeof(tmp) - 1 ? v.len : sizeof(tmp) - 1;
    memcpy(tmp, v.ptr, n);
    tmp[n] = 0;
    return strtol(tmp, NULL, 10);
}

static int stream_piece(struct coil_req *req, const void *data, size_t len, void *ud)
{
    struct stream_state *st = coil_req_state(req);
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        st->sum = st->sum * 31 + p[i];
    st->len += len;
    st->pieces++;
    long fail_after = header_number(req, "x-fail-after", -1);
    if (fail_after >= 0 && st->len > (uint64_t)fail_after)
        return (int)header_number(req, "x-fail-status", 422);
    return 0;
}

static int stream_done(struct coil_req *req, struct coil_res *res, void *ud)
{
    const struct stream_state *st = coil_req_state(req);
    if (coil_req_body(req).len != 0)
        return coil_res_text(res, 500, "text/plain", "a streamed body must not be buffered");
    char out[80];
    snprintf(out, sizeof(out), "%llu %lu %u", (unsigned long long)st->len, st->sum, st->pieces);
    return coil_res_text(res, 200, "text/plain", out);
}

static int greet(struct coil_req *req, struct coil_res *res, void *ud)
{
    return coil_res_text(res, 200, "text/plain", greeting);
}

static int count_started(struct coil_req *req, struct coil_res *res, void *ud)
{
    char out[32];
    snprintf(out, sizeof(out), "%u", atomic_load(&started));
    return coil_res_text(res, 200, "text/plain", out);
}

/* ---- requests that wait --------------------------------------------------------------------- */

static atomic_ulong aborts;        /* /hang on_abort calls */
static atomic_ulong stale;         /* /handle timers that found their request gone */
static atomic_ulong late_watch;    /* watch callbacks after coil_unwatch */
static atomic_ulong stream_aborts; /* /stream on_abort calls */
static atomic_ulong writable;      /* /stream on_writable calls */
static atomic_long pending;        /* coil_malloc'd objects not yet freed (/handle, /pipe) */
static atomic_ulong errors;        /* contract checks that failed */
static _Atomic(const char *) first_error;

static void contract_error(const char *what)
{
    const char *none = NULL;
    atomic_fetch_add(&errors, 1);
    atomic_compare_exchange_strong(&first_error, &none, what);
    fprintf(stderr, "testapp: contract check failed: %s\n", what);
}
#define STR2(x) #x
#define STR(x) STR2(x)
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            contract_error("line " STR(__LINE__) ": " #cond);                                      \
    } while (0)

/* A decimal number of at most 10 digits, no sign: 0 and *out, or -EINVAL / -ERANGE. */
static int parse_num(struct coil_str s, unsigned long max, unsigned long *out)
{
    if (!s.ptr || s.len == 0 || s.len > 10)
        return -EINVAL;
    unsigned long v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return -EINVAL;
        v = v * 10 + (unsigned long)(s.ptr[i] - '0');
    }
    if (v > max)
        return -ERANGE;
    *out = v;
    return 0;
}

static int text_num(struct coil_res *res, unsigned long v)
{
    char out[32];
    snprintf(out, sizeof(out), "%lu", v);
    return coil_res_text(res, 200, "text/plain", out);
}

static void hang_abort(void *ud)
{
    atomic_fetch_add(&aborts, 1);
}

static int hang(struct coil_req *req, struct coil_res *res, void *ud)
{
    return coil_res_defer(res, hang_abort, NULL).id ? 0 : -ENOMEM;
}

static int count_aborts(struct coil_req *req, struct coil_res *res, void *ud)
{
    return text_num(res, atomic_load(&aborts));
}

static int count_stale(struct coil_req *req, struct coil_res *res, void *ud)
{
    return text_num(res, atomic_load(&stale));
}

/* /later/:ms */
struct later {
    struct coil_req *req;
    struct coil_res *res;
};

static void later_fire(void *ud)
{
    struct later *l = ud;
    /* read again after the defer: the request's own copy */
    struct coil_str ms = coil_req_param(l->req, "ms");
    char body[48], w[16];
    snprintf(body, sizeof(body), "later %.*s", ms.ptr ? (int)ms.len : 0, ms.ptr ? ms.ptr : "");
    snprintf(w, sizeof(w), "%u", coil_worker_id());
    CHECK(coil_res_header(l->res, "X-Worker", w) == 0);
    CHECK(coil_res_text(l->res, 200, "text/plain", body) == 0);
    CHECK(coil_res_finish(l->res) == 0);
}

static int later(struct coil_req *req, struct coil_res *res, void *ud)
{
    unsigned long ms;
    if (parse_num(coil_req_param(req, "ms"), 10000, &ms) < 0)
        return coil_res_text(res, 400, "text/plain", "ms must be 0..10000\n");
    struct coil_defer d = coil_res_defer(res, NULL, NULL);
    if (!d.id)
        return -ENOMEM;
    CHECK(coil_res_defer(res, NULL, NULL).id == 0); /* twice: refused */
    CHECK(coil_defer_res(d) == res);
    CHECK(coil_defer_req(d) == req);
    struct later *l = coil_req_alloc(req, sizeof(*l));
    if (!l)
        return -ENOMEM;
    l->req = req;
    l->res = res;
    return coil_timer_after(req, ms, later_fire, l).id ? 0 : -ENOMEM;
}

/* /call/:target */
struct call {
    struct coil_res *res;
    unsigned from;
};

static void call_job(void *payload, size_t len, struct coil_reply *reply)
{
    uint32_t me = coil_worker_id(), target = UINT32_MAX;
    CHECK(len == sizeof(target));
    if (len == sizeof(target))
        memcpy(&target, payload, sizeof(target));
    CHECK(target == me);
    CHECK(coil_reply(reply, &me, sizeof(me)) == 0);
    CHECK(coil_reply(reply, &me, sizeof(me)) == -EALREADY);
}

static void call_back(int err, const void *data, size_t len, void *ud)
{
    struct call *c = ud;
    if (err != 0 || len != sizeof(uint32_t)) {
        char why[64];
        snprintf(why, sizeof(why), "reply err %d len %zu\n", err, len);
        CHECK(coil_res_text(c->res, 500, "text/plain", why) == 0);
        CHECK(coil_res_finish(c->res) == 0);
        return;
    }
    uint32_t to;
    memcpy(&to, data, sizeof(to));
    struct coil_json *j = coil_res_json(c->res);
    coil_json_object_open(j);
    coil_json_key(j, "from");
    coil_json_uint(j, c->from);
    coil_json_key(j, "to");
    coil_json_uint(j, to);
    coil_json_key(j, "back");
    coil_json_uint(j, coil_worker_id());
    coil_json_object_close(j);
    CHECK(coil_res_finish(c->res) == 0);
}

static int call(struct coil_req *req, struct coil_res *res, void *ud)
{
    unsigned long target;
    if (parse_num(coil_req_param(req, "target"), 1000000, &target) < 0)
        return coil_res_text(res, 400, "text/plain", "target must be a worker number\n");
    if (!coil_res_defer(res, NULL, NULL).id)
        return -ENOMEM;
    struct call *c = coil_req_alloc(req, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->res = res;
    c->from = coil_worker_id();
    uint32_t t = (uint32_t)target;
    int err = coil_job_call(req, (unsigned)target, call_job, &t, sizeof(t), call_back, c);
    if (err == -EINVAL) { /* finished at once, from the handler itself */
        CHECK(coil_res_text(res, 400, "text/plain", "no such worker\n") == 0);
        CHECK(coil_res_finish(res) == 0);
        return 0;
    }
    return err; /* 0, or the defer is cancelled: 500 */
}

/* /cross: this request's handles, used on the other worker, must name nothing there. That
 * worker first arms a timer of its own, so a handle that ignored its worker would likely hit
 * that timer's slot (or a waiting request's, with /hang open there). */
struct cross_ids {
    struct coil_defer d;
    struct coil_timer t;
};

static void cross_idle(void *ud)
{
    (void)ud; /* cancelled, or dropped with its request */
}

static void cross_job(void *payload, size_t len, struct coil_reply *reply)
{
    struct cross_ids ids;
    CHECK(len == sizeof(ids));
    memcpy(&ids, payload, sizeof(ids));
    struct coil_timer mine = coil_timer_after(NULL, 60000, cross_idle, NULL);
    bool ok = coil_defer_res(ids.d) == NULL && coil_defer_req(ids.d) == NULL &&
              coil_timer_cancel(ids.t) == -ENOENT;
    CHECK(coil_timer_cancel(mine) == 0);
    coil_reply(reply, ok ? "ok" : "bad", ok ? 2 : 3);
}

static void cross_back(int err, const void *data, size_t len, void *ud)
{
    struct coil_res *res = ud;
    char out[16];
    snprintf(out, sizeof(out), "%.*s", err ? 0 : (int)len, err ? "" : (const char *)data);
    CHECK(coil_res_text(res, err ? 500 : 200, "text/plain", out) == 0);
    CHECK(coil_res_finish(res) == 0);
}

static int cross(struct coil_req *req, struct coil_res *res, void *ud)
{
    struct cross_ids ids;
    ids.d = coil_res_defer(res, NULL, NULL);
    if (!ids.d.id)
        return -ENOMEM;
    ids.t = coil_timer_after(req, 60000, cross_idle, NULL);
    if (!ids.t.id)
        return -ENOMEM;
    unsigned other = (coil_worker_id() + 1) % coil_worker_count();
    return coil_job_call(req, other, cross_job, &ids, sizeof(ids), cross_back, res);
}

/* /handle/:ms: only the handle is kept, in the worker's heap */
struct handle_wait {
    struct coil_defer d;
    unsigned long ms;
};

static void handle_fire(void *ud)
{
    struct handle_wait *h = ud;
    struct coil_res *res = coil_defer_res(h->d);
    if (!res) {
        CHECK(coil_defer_req(h->d) == NULL);
        atomic_fetch_add(&stale, 1);
    } else {
        CHECK(coil_defer_req(h->d) != NULL);
        char body[32];
        snprintf(body, sizeof(body), "handle %lu", h->ms);
        CHECK(coil_res_text(res, 200, "text/plain", body) == 0);
        CHECK(coil_res_finish(res) == 0);
        CHECK(coil_defer_res(h->d) == NULL); /* finished: the handle is stale now */
        CHECK(coil_defer_req(h->d) == NULL);
    }
    coil_free(h);
    atomic_fetch_sub(&pending, 1);
}

static int handle(struct coil_req *req, struct coil_res *res, void *ud)
{
    unsigned long ms;
    if (parse_num(coil_req_param(req, "ms"), 10000, &ms) < 0)
        return coil_res_text(res, 400, "text/plain", "ms must be 0..10000\n");
    struct handle_wait *h = coil_malloc(sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->d = coil_res_defer(res, NULL, NULL);
    h->ms = ms;
    if (!h->d.id || !coil_timer_after(NULL, ms, handle_fire, h).id) {
        coil_free(h);
        return -ENOMEM;
    }
    atomic_fetch_add(&pending, 1);
    return 0;
}

/* /cancel */
static void never(void *ud)
{
    contract_error("a cancelled timer ran");
}

static int cancel(struct coil_req *req, struct coil_res *res, void *ud)
{
    struct coil_timer t = coil_timer_after(NULL, 50, never, NULL);
    if (!t.id)
        return coil_res_text(res, 500, "text/plain", "coil_timer_after failed\n");
    int a = coil_timer_cancel(t), b = coil_timer_cancel(t);
    int f = coil_res_finish(res); /* not deferred */
    if (a == 0 && b == -ENOENT && f == -EINVAL)
        return coil_res_text(res, 200, "text/plain", "ok");
    char why[96];
    snprintf(why, sizeof(why), "cancel said %d then %d (want 0, %d); finish said %d (want %d)\n", a,
             b, -ENOENT, f, -EINVAL);
    return coil_res_text(res, 500, "text/plain", why);
}

/* /pipe */
struct pipe_wait {
    struct coil_res *res;
    int rfd, wfd;
    struct coil_watch w;
    bool done;
};

static void pipe_free(void *ud)
{
    coil_free(ud);
    atomic_fetch_sub(&pending, 1);
}

static void pipe_close(struct pipe_wait *p)
{
    CHECK(coil_unwatch(p->w) == 0);
    CHECK(coil_unwatch(p->w) == -ENOENT);
    CHECK(coil_watch_update(p->w, COIL_READABLE) == -ENOENT);
    close(p->rfd);
    close(p->wfd);
    p->done = true;
    p->res = NULL;
    /* Kept a little longer, so that a callback after coil_unwatch is counted (late_watch)
     * rather than being a use after free. */
    if (!coil_timer_after(NULL, 200, pipe_free, p).id)
        pipe_free(p);
}

static void pipe_ready(int fd, unsigned events, void *ud)
{
    struct pipe_wait *p = ud;
    if (p->done) {
        atomic_fetch_add(&late_watch, 1);
        return;
    }
    CHECK(fd == p->rfd);
    char buf[16];
    ssize_t n = -1;
    if (events & COIL_READABLE) {
        n = read(fd, buf, sizeof(buf));
        if (n < 0 && errno == EAGAIN)
            return; /* not ready after all: the watch stays */
    }
    struct coil_res *res = p->res;
    pipe_close(p);
    char body[48];
    if (n > 0)
        snprintf(body, sizeof(body), "pong:%.*s", (int)n, buf);
    else
        snprintf(body, sizeof(body), "events %u read %zd\n", events, n);
    CHECK(coil_res_text(res, n > 0 ? 200 : 500, "text/plain", body) == 0);
    CHECK(coil_res_finish(res) == 0);
}

static void pipe_write(void *ud)
{
    struct pipe_wait *p = ud;
    CHECK(write(p->wfd, "ping", 4) == 4);
}

static void pipe_abort(void *ud)
{
    struct pipe_wait *p = ud;
    if (!p->done)
        pipe_close(p);
}

static int pipe_route(struct coil_req *req, struct coil_res *res, void *ud)
{
    int fds[2];
    if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0)
        return -errno;
    struct pipe_wait *p = coil_malloc(sizeof(*p));
    if (!p) {
        close(fds[0]);
        close(fds[1]);
        return -ENOMEM;
    }
    atomic_fetch_add(&pending, 1);
    *p = (struct pipe_wait){.res = res, .rfd = fds[0], .wfd = fds[1]};
    if (!coil_res_defer(res, pipe_abort, p).id) {
        close(fds[0]);
        close(fds[1]);
        pipe_free(p);
        return -ENOMEM;
    }
    p->w = coil_watch(p->rfd, COIL_READABLE, pipe_ready, p);
    if (!p->w.id) {
        close(fds[0]);
        close(fds[1]);
        pipe_free(p);
        return -ENOMEM; /* cancels the defer: on_abort does not run */
    }
    CHECK(coil_watch_update(p->w, COIL_READABLE) == 0);
    if (!coil_timer_after(req, 20, pipe_write, p).id) {
        pipe_close(p);
        return -ENOMEM;
    }
    return 0;
}

/* /stream, /stream-len: byte i of the body is i % 251 */
#define PIECE (64 * 1024)
static unsigned char pattern[PIECE + 251];

struct stream_out {
    struct coil_res *res;
    uint64_t total, sent;
};

static void stream_writable(void *ud);

static void stream_pump(void *ud)
{
    struct stream_out *so = ud;
    while (so->sent < so->total) {
        size_t n = so->total - so->sent < PIECE ? (size_t)(so->total - so->sent) : PIECE;
        int r = coil_res_write(so->res, pattern + so->sent % 251, n);
        if (r == -EAGAIN) {
            CHECK(coil_res_on_writable(so->res, stream_writable, so) == 0);
            return;
        }
        if (r < 0) {
            contract_error("coil_res_write failed in /stream");
            break;
        }
        so->sent += n;
    }
    CHECK(coil_res_finish(so->res) == 0);
}

static void stream_writable(void *ud)
{
    atomic_fetch_add(&writable, 1);
    stream_pump(ud);
}

static void stream_abort(void *ud)
{
    atomic_fetch_add(&stream_aborts, 1);
}

static int stream_out(struct coil_req *req, struct coil_res *res, void *ud)
{
    bool with_length = ud != NULL;
    unsigned long mb = 1;
    struct coil_str v;
    int r = coil_req_query_param(req, "mb", &v);
    if (r < 0 || (r == 1 && parse_num(v, 2048, &mb) < 0))
        return coil_res_text(res, 400, "text/plain", "mb must be 0..2048\n");
    if (!coil_res_defer(res, stream_abort, NULL).id)
        return -ENOMEM;
    CHECK(coil_res_write(res, "x", 1) == -EINVAL); /* before coil_res_stream */
    struct stream_out *so = coil_req_alloc(req, sizeof(*so));
    if (!so)
        return -ENOMEM;
    *so = (struct stream_out){.res = res, .total = (uint64_t)mb << 20};
    if ((r = coil_res_header(res, "Content-Type", "application/octet-stream")) < 0)
        return r;
    if (with_length && (r = coil_res_length(res, so->total)) < 0)
        return r;
    if ((r = coil_res_stream(res)) < 0)
        return r;
    stream_pump(so);
    return 0;
}

static int overlong(struct coil_req *req, struct coil_res *res, void *ud)
{
    if (!coil_res_defer(res, NULL, NULL).id)
        return -ENOMEM;
    int r;
    if ((r = coil_res_length(res, 10)) < 0 || (r = coil_res_stream(res)) < 0)
        return r;
    CHECK(coil_res_write(res, "01234", 5) == 0);
    CHECK(coil_res_write(res, "56789", 5) == 0);
    CHECK(coil_res_write(res, "x", 1) == -EMSGSIZE);
    CHECK(coil_res_finish(res) == 0);
    return 0;
}

/* POST /echo-later/:ms: the request's body, path, query and a header read after the defer */
struct echo_later {
    struct coil_req *req;
    struct coil_res *res;
};

static void echo_later_fire(void *ud)
{
    struct echo_later *e = ud;
    struct coil_str tag = coil_req_header(e->req, "x-tag"), path = coil_req_path(e->req);
    struct coil_str body = coil_req_body(e->req), q = {NULL, 0};
    CHECK(coil_req_query_param(e->req, "q", &q) >= 0);
    CHECK(coil_res_headern(e->res, "X-Tag", 5, tag.ptr ? tag.ptr : "", tag.len) == 0);
    CHECK(coil_res_headern(e->res, "X-Path", 6, path.ptr, path.len) == 0);
    CHECK(coil_res_headern(e->res, "X-Q", 3, q.ptr ? q.ptr : "", q.len) == 0);
    CHECK(coil_res_header(e->res, "Content-Type", "application/octet-stream") == 0);
    CHECK(coil_res_body(e->res, body.ptr, body.len) == 0);
    CHECK(coil_res_finish(e->res) == 0);
}

static int echo_later(struct coil_req *req, struct coil_res *res, void *ud)
{
    unsigned long ms;
    if (parse_num(coil_req_param(req, "ms"), 10000, &ms) < 0)
        return coil_res_text(res, 400, "text/plain", "ms must be 0..10000\n");
    if (!coil_res_defer(res, NULL, NULL).id)
        return -ENOMEM;
    struct echo_later *e = coil_req_alloc(req, sizeof(*e));
    if (!e)
        return -ENOMEM;
    e->req = req;
    e->res = res;
    return coil_timer_after(req, ms, echo_later_fire, e).id ? 0 : -ENOMEM;
}

/* GET /defer-fail: defers (with /hang's on_abort), then fails: 500, and on_abort must not run */
static int defer_fail(struct coil_req *req, struct coil_res *res, void *ud)
{
    if (!coil_res_defer(res, hang_abort, NULL).id)
        return -ENOMEM;
    return -EIO;
}

static int status_route(struct coil_req *req, struct coil_res *res, void *ud)
{
    unsigned long code;
    if (parse_num(coil_req_param(req, "code"), 599, &code) < 0 || code < 100)
        return coil_res_text(res, 400, "text/plain", "code must be 100..599\n");
    char body[32];
    snprintf(body, sizeof(body), "status %lu", code);
    return coil_res_text(res, (int)code, "text/plain", body);
}

/* GET /pattern/:kb: a big synchronous response */
#define PATTERN_MAX_KB 4096
static unsigned char big_pattern[PATTERN_MAX_KB << 10];

static int pattern_route(struct coil_req *req, struct coil_res *res, void *ud)
{
    unsigned long kb;
    if (parse_num(coil_req_param(req, "kb"), PATTERN_MAX_KB, &kb) < 0)
        return coil_res_text(res, 400, "text/plain", "kb must be 0..4096\n");
    int r = coil_res_header(res, "Content-Type", "application/octet-stream");
    if (r < 0)
        return r;
    return coil_res_body(res, big_pattern, kb << 10);
}

/* POST /early: the body read by the deferred handler itself */
struct early {
    struct coil_res *res;
    uint64_t len;
    unsigned long sum;
};

static int early_piece(struct coil_req *req, const void *data, size_t len, void *ud)
{
    struct early *e = ud;
    if (len == 0) {
        char out[64];
        snprintf(out, sizeof(out), "%llu %lu", (unsigned long long)e->len, e->sum);
        CHECK(coil_res_text(e->res, 200, "text/plain", out) == 0);
        CHECK(coil_res_finish(e->res) == 0);
        return 0;
    }
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++)
        e->sum = e->sum * 31 + p[i];
    e->len += len;
    return 0;
}

static int early(struct coil_req *req, struct coil_res *res, void *ud)
{
    if (!coil_res_defer(res, NULL, NULL).id)
        return -ENOMEM;
    struct early *e = coil_req_alloc(req, sizeof(*e));
    if (!e)
        return -ENOMEM;
    *e = (struct early){.res = res};
    int err = coil_req_read(req, early_piece, e);
    if (err == -EPIPE)
        return 0; /* the connection failed under the call: the request is gone */
    return err;
}

static int stats(struct coil_req *req, struct coil_res *res, void *ud)
{
    struct coil_stats s;
    coil_stats_get(&s);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    coil_json_key(j, "requests");
    coil_json_uint(j, s.requests);
    coil_json_key(j, "open");
    coil_json_uint(j, s.open);
    coil_json_key(j, "deferred");
    coil_json_uint(j, s.deferred);
    coil_json_key(j, "waiting");
    coil_json_uint(j, s.waiting);
    coil_json_key(j, "aborted");
    coil_json_uint(j, s.aborted);
    coil_json_key(j, "workers");
    coil_json_uint(j, coil_worker_count());
    coil_json_key(j, "aborts");
    coil_json_uint(j, atomic_load(&aborts));
    coil_json_key(j, "stale");
    coil_json_uint(j, atomic_load(&stale));
    coil_json_key(j, "late_watch");
    coil_json_uint(j, atomic_load(&late_watch));
    coil_json_key(j, "stream_aborts");
    coil_json_uint(j, atomic_load(&stream_aborts));
    coil_json_key(j, "writable");
    coil_json_uint(j, atomic_load(&writable));
    coil_json_key(j, "pending");
    coil_json_int(j, atomic_load(&pending));
    coil_json_key(j, "errors");
    coil_json_uint(j, atomic_load(&errors));
    coil_json_key(j, "first_error");
    const char *fe = atomic_load(&first_error);
    if (fe)
        coil_json_string(j, fe);
    else
        coil_json_null(j);
    coil_json_object_close(j);
    return 0;
}

/* A body past COIL_BODY_MAX: the pointer is a small static buffer, so a server that read it
 * would run off its end (ASan would say so) instead of refusing. */
static int huge(struct coil_req *req, struct coil_res *res, void *ud)
{
    static const char tiny[16];
    size_t len = (size_t)COIL_BODY_MAX + 1;
    if (ud) {
        int err = coil_res_body(res, tiny, len);
        if (err != -EMSGSIZE)
            return coil_res_text(res, 200, "text/plain", "coil_res_body took it");
        return err;
    }
    return coil_res_body_static(res, tiny, len);
}

static int wait_routes(struct coil_app *app)
{
    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (unsigned char)(i % 251);
    for (size_t i = 0; i < sizeof(big_pattern); i++)
        big_pattern[i] = (unsigned char)(i % 251);
    int err = 0;
    err |= coil_route(app, "GET", "/hang", hang, NULL);
    err |= coil_route(app, "GET", "/aborts", count_aborts, NULL);
    err |= coil_route(app, "GET", "/later/:ms", later, NULL);
    err |= coil_route(app, "GET", "/call/:target", call, NULL);
    err |= coil_route(app, "GET", "/cross", cross, NULL);
    err |= coil_route(app, "GET", "/handle/:ms", handle, NULL);
    err |= coil_route(app, "GET", "/stale", count_stale, NULL);
    err |= coil_route(app, "GET", "/cancel", cancel, NULL);
    err |= coil_route(app, "GET", "/pipe", pipe_route, NULL);
    err |= coil_route(app, "GET", "/stream", stream_out, NULL);
    err |= coil_route(app, "GET", "/stream-len", stream_out, (void *)1);
    err |= coil_route(app, "GET", "/overlong", overlong, NULL);
    err |= coil_route(app, "GET", "/status/:code", status_route, NULL);
    err |= coil_route(app, "GET", "/huge/static", huge, NULL);
    err |= coil_route(app, "GET", "/huge/copy", huge, (void *)1);
    err |= coil_route(app, "POST", "/echo-later/:ms", echo_later, NULL);
    err |= coil_route(app, "GET", "/defer-fail", defer_fail, NULL);
    err |= coil_route(app, "GET", "/stats", stats, NULL);
    err |= coil_route(app, "GET", "/pattern/:kb", pattern_route, NULL);
    err |= coil_route_stream(app, "POST", "/early", NULL, early, NULL);
    err |= coil_route_max_body(app, "POST", "/early", 1u << 20);
    return err ? -1 : 0;
}

/* A static route with every option set (test_static_api.py), when TESTAPP_FILES names a root. */
static int static_routes(struct coil_app *app)
{
    static const struct coil_static_type types[] = {
        {"md", "text/markdown; charset=utf-8"}, {".css", "text/x-test-css"}, {NULL, NULL}};
    const struct coil_static_opts opts = {.cache_control = "public, max-age=600",
                                          .index = "",
                                          .hidden = true,
                                          .no_precompressed = true,
                                          .types = types};
    const struct coil_static_opts bad = {.cache_control = "a\r\nX-Evil: 1"};
    const char *root = getenv("TESTAPP_FILES");
    if (coil_route_static(app, "/nostar", "/tmp", NULL) != -EINVAL ||
        coil_route_static(app, "/x/*", "", NULL) != -EINVAL ||
        coil_route_static(app, "/x/*", "/tmp", &bad) != -EINVAL)
        return -1;
    if (!root)
        return 0;
    if (coil_route_static(app, "/files/*", root, &opts) < 0 ||
        coil_route_static(app, "/files/*", root, NULL) != -EEXIST ||
        coil_route_static(app, "/plain/*", root, NULL) < 0)
        return -1;
    return 0;
}

int main(int argc, char **argv)
{
    struct coil_app *app = coil_app_create(argc, argv);
    if (coil_route(app, "POST", "/small", length, NULL) < 0 ||
        coil_route(app, "POST", "/big", length, NULL) < 0 ||
        coil_route_max_body(app, "POST", "/big", 4u << 20) < 0 ||
        coil_route_max_body(app, "POST", "/none", 1) != -ENOENT ||
        coil_route_stream(app, "POST", "/stream", stream_piece, stream_done, NULL) < 0 ||
        coil_route_max_body(app, "POST", "/stream", 32u << 20) < 0 ||
        coil_route_stream(app, "POST", "/stream", stream_piece, stream_done, NULL) != -EEXIST ||
        coil_route(app, "GET", "/greeting", greet, NULL) < 0 ||
        coil_route(app, "GET", "/started", count_started, NULL) < 0 ||
        coil_app_option(app, "greeting", "TESTAPP_GREETING", "TEXT", "what /greeting says",
                        set_greeting, NULL) < 0 ||
        coil_app_on_worker(app, on_start, NULL, NULL) < 0 || wait_routes(app) < 0 ||
        static_routes(app) < 0) {
        fprintf(stderr, "testapp: set-up failed\n");
        return 1;
    }
    int status = coil_app_run(app);
    fprintf(stderr, "testapp: exit status=%d aborts=%lu stale=%lu stream_aborts=%lu errors=%lu\n",
            status, atomic_load(&aborts), atomic_load(&stale), atomic_load(&stream_aborts),
            atomic_load(&errors));
    return status;
}
