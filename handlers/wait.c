/* SPDX-License-Identifier: MIT */
/*
 * wait.c: demo routes whose responses wait without blocking the worker.
 *   GET /delay/:ms            {"delayed_ms":N} after N ms (0..10000) from a timer
 *   GET /events?n=N&every=MS  N Server-Sent Events, one every MS ms, then the end of the stream
 * Both defer their response and finish it from a timer owned by the request, so a client that
 * goes away takes its timers with it; /events waits for the client to drain (on_writable)
 * instead of buffering when it reads slowly.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "handlers.h"

/* A decimal integer in [0, max], nothing else. */
static bool parse_uint(struct coil_str s, uint32_t max, uint32_t *out)
{
    if (s.len == 0 || s.len > 10)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < s.len; i++) {
        if (s.ptr[i] < '0' || s.ptr[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s.ptr[i] - '0');
    }
    if (v > max)
        return false;
    *out = (uint32_t)v;
    return true;
}

/* ---- /delay/:ms ------------------------------------------------------------------------- */

struct delay {
    struct coil_res *res;
    uint32_t ms;
};

static void delay_done(void *ud)
{
    struct delay *d = ud;
    struct coil_json *j = coil_res_json(d->res);
    coil_json_object_open(j);
    coil_json_key(j, "delayed_ms");
    coil_json_uint(j, d->ms);
    coil_json_object_close(j);
    coil_res_finish(d->res);
}

static int delay(struct coil_req *req, struct coil_res *res, void *ud)
{
    uint32_t ms;
    if (!parse_uint(coil_req_param(req, "ms"), 10000, &ms))
        return coil_res_text(res, 400, "text/plain", "ms must be an integer from 0 to 10000\n");
    if (!coil_res_defer(res, NULL, NULL).id)
        return -ENOMEM;
    struct delay *d = coil_req_alloc(req, sizeof(*d)); /* lives until the response is done */
    if (!d)
        return -ENOMEM;
    d->res = res;
    d->ms = ms;
    if (!coil_timer_after(req, ms, delay_done, d).id)
        return -ENOMEM;
    return 0;
}

/* ---- /events ---------------------------------------------------------------------------- */

struct events {
    struct coil_req *req;
    struct coil_res *res;
    uint32_t n;     /* events to send */
    uint32_t every; /* ms between them */
    uint32_t sent;  /* events sent so far */
};

static void send_event(void *ud);

static void next_event(void *ud)
{
    struct events *e = ud;
    e->sent++;
    send_event(e);
}

/* Sends event e->sent (again, if the client was slow), then waits for the next. */
static void send_event(void *ud)
{
    struct events *e = ud;
    char buf[64];
    int len = snprintf(buf, sizeof(buf), "id: %u\ndata: {\"n\":%u}\n\n", e->sent, e->sent);
    int err = coil_res_write(e->res, buf, (size_t)len);
    if (err == -EAGAIN)
        return; /* on_writable runs send_event again once the client has read */
    if (err < 0 || e->sent == e->n) {
        coil_res_finish(e->res);
        return;
    }
    if (!coil_timer_after(e->req, e->every, next_event, e).id)
        coil_res_finish(e->res); /* out of memory: end the stream cleanly */
}

static int events(struct coil_req *req, struct coil_res *res, void *ud)
{
    uint32_t n = 10, every = 1000;
    struct coil_str v;
    if ((coil_req_query_param(req, "n", &v) != 0 && !parse_uint(v, 100000, &n)) || n == 0 ||
        (coil_req_query_param(req, "every", &v) != 0 && !parse_uint(v, 60000, &every)))
        return coil_res_text(res, 400, "text/plain",
                             "n must be 1..100000 and every 0..60000 (ms)\n");
    if (!coil_res_defer(res, NULL, NULL).id)
        return -ENOMEM;
    struct events *e = coil_req_alloc(req, sizeof(*e));
    if (!e)
        return -ENOMEM;
    *e = (struct events){.req = req, .res = res, .n = n, .every = every, .sent = 0};
    int err = coil_res_header(res, "Content-Type", "text/event-stream");
    if (err == 0)
        err = coil_res_header(res, "Cache-Control", "no-cache");
    if (err == 0)
        err = coil_res_on_writable(res, send_event, e);
    if (err == 0)
        err = coil_res_stream(res);
    if (err < 0)
        return err;
    if (!coil_timer_after(req, every, next_event, e).id)
        return -ENOMEM;
    return 0;
}

int wait_routes(struct coil_app *app)
{
    int err = 0;
    err |= coil_route(app, "GET", "/delay/:ms", delay, NULL);
    err |= coil_route(app, "GET", "/events", events, NULL);
    return err ? -1 : 0;
}
