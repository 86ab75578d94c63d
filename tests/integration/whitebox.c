/* SPDX-License-Identifier: MIT */
/*
 * whitebox: a test program that reaches into the engine (internal.h) to set up what a real
 * client cannot: an allocation that fails at one exact point inside a handler or a timer, and
 * worker timers that post jobs across workers through the whole shutdown. Used by
 * test_regress.py.
 *   GET /lenlater     a Content-Length stream: its 5 bytes written at once, finished 300 ms later
 *   GET /streamfail   from a timer: coil_res_stream with the WB_FAIL_N-th allocation failing
 *   GET /streamfail2  the same inside the handler
 *   GET /ok           "ok", at once
 *   WB_TICK=1         every worker runs a 1 ms timer (WB_TICK_MS, 0: always due), for ever, that
 *                     posts a job to the next
 * It prints "whitebox: ..." lines the tests read, and its counters at exit.
 */
#include <coil.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static atomic_ulong aborts, epipe, posts_refused;
static unsigned long fail_n;
static bool ticking;
static unsigned tick_ms = 1;

static void count_abort(void *ud)
{
    (void)ud;
    atomic_fetch_add(&aborts, 1);
}

static void finish_later(void *ud)
{
    coil_res_finish(ud);
}

static int lenlater(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    if (!coil_res_defer(res, count_abort, NULL).id || coil_res_length(res, 5) < 0 ||
        coil_res_stream(res) < 0 || coil_res_write(res, "hello", 5) < 0)
        return -EIO;
    return coil_timer_after(req, 300, finish_later, res).id ? 0 : -ENOMEM;
}

/* coil_res_stream with the fail_n-th allocation from here failing. */
static int stream_failing(struct coil_res *res)
{
    coil__walloc_fail_in(&coil__self->wa, fail_n);
    int r = coil_res_stream(res);
    coil__walloc_fail_in(&coil__self->wa, 0);
    return r;
}

static void streamfail_timer(void *ud)
{
    struct coil_res *res = ud;
    int r = stream_failing(res);
    fprintf(stderr, "whitebox: timer: coil_res_stream %d aborts %lu\n", r, atomic_load(&aborts));
    if (r == -EPIPE) {
        atomic_fetch_add(&epipe, 1);
        return; /* res is gone */
    }
    if (r == 0)
        coil_res_write(res, "x", 1);
    coil_res_finish(res);
}

static int streamfail(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    if (!coil_res_defer(res, count_abort, NULL).id)
        return -ENOMEM;
    return coil_timer_after(req, 20, streamfail_timer, res).id ? 0 : -ENOMEM;
}

static int streamfail2(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)req;
    (void)ud;
    if (!coil_res_defer(res, count_abort, NULL).id)
        return -ENOMEM;
    int r = stream_failing(res);
    fprintf(stderr, "whitebox: handler: coil_res_stream %d aborts %lu\n", r, atomic_load(&aborts));
    if (r == -EPIPE) {
        atomic_fetch_add(&epipe, 1);
        return 0; /* on_abort has run; nothing to answer */
    }
    if (r == 0)
        coil_res_write(res, "x", 1);
    coil_res_finish(res);
    return 0;
}

static int ok(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)req;
    (void)ud;
    return coil_res_text(res, 200, "text/plain", "ok");
}

static void noop_job(void *payload, size_t len, unsigned worker)
{
    (void)payload;
    (void)len;
    (void)worker;
}

static void tick(void *ud)
{
    (void)ud;
    unsigned target = (coil_worker_id() + 1) % coil_worker_count();
    if (coil_job_post(target, noop_job, NULL, 0) == -ESHUTDOWN)
        atomic_fetch_add(&posts_refused, 1);
    coil_timer_after(NULL, tick_ms, tick, NULL);
}

static void on_start(unsigned worker, void *ud)
{
    (void)worker;
    (void)ud;
    if (ticking)
        coil_timer_after(NULL, tick_ms, tick, NULL);
}

int main(int argc, char **argv)
{
    const char *f = getenv("WB_FAIL_N");
    fail_n = f ? strtoul(f, NULL, 10) : 0;
    ticking = getenv("WB_TICK") != NULL;
    const char *ms = getenv("WB_TICK_MS");
    if (ms)
        tick_ms = (unsigned)strtoul(ms, NULL, 10);
    struct coil_app *app = coil_app_create(argc, argv);
    if (coil_route(app, "GET", "/lenlater", lenlater, NULL) < 0 ||
        coil_route(app, "GET", "/streamfail", streamfail, NULL) < 0 ||
        coil_route(app, "GET", "/streamfail2", streamfail2, NULL) < 0 ||
        coil_route(app, "GET", "/ok", ok, NULL) < 0 ||
        coil_app_on_worker(app, on_start, NULL, NULL) < 0)
        return 1;
    int status = coil_app_run(app);
    fprintf(stderr, "whitebox: exit %d aborts %lu epipe %lu refused %lu\n", status,
            atomic_load(&aborts), atomic_load(&epipe), atomic_load(&posts_refused));
    return status;
}
