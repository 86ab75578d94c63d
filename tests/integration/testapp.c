/* SPDX-License-Identifier: MIT */
/*
 * testapp: a small user program for the integration tests of what the demo does not use:
 * per-route body limits (coil_route_max_body), application options (coil_app_option, with
 * its environment variable) and the per-worker start hook.
 *   POST /small  body limit from --max-body-bytes; answers the body length
 *   POST /big    body limit 4 MiB; answers the body length and a checksum of the bytes
 *   GET /greeting   the --greeting option
 *   GET /started    how many workers ran the start hook
 */
#include <coil.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
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
