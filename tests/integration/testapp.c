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
 */
#include <coil.h>
#include <assert.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
        coil_app_on_worker(app, on_start, NULL, NULL) < 0) {
        fprintf(stderr, "testapp: set-up failed\n");
        return 1;
    }
    return coil_app_run(app);
}
