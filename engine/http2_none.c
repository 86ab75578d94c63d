/* SPDX-License-Identifier: MIT */
/*
 * http2_none.c: the HTTP/2 module of a build without libnghttp2 (libnghttp2-dev). Asking for
 * HTTP/2 explicitly says how to get it; otherwise nothing speaks it: ALPN offers http/1.1 only
 * and the plain port takes HTTP/1.1 only, so the calls below are never made.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static bool wanted;

static int asked(const char *value, void *ud)
{
    (void)value;
    *(bool *)ud = true;
    return 0;
}

int coil__h2_setup(struct coil_app *app)
{
    static const char *const names[][2] = {
        {"h2c-port", "COIL_H2C_PORT"},
        {"h2-max-streams", "COIL_H2_MAX_STREAMS"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (coil_app_option(app, names[i][0], names[i][1], "N",
                            "HTTP/2 (this build has none: it needs libnghttp2-dev)", asked,
                            &wanted) < 0)
            return -ENOMEM;
    return 0;
}

int coil__h2_install(struct coil_app *app)
{
    (void)app;
    if (!wanted)
        return 0;
    fprintf(stderr, "coil: this coil was built without HTTP/2: install libnghttp2's headers "
                    "(apt-get install libnghttp2-dev) and build it again\n");
    return -1;
}

void coil__h2_free(struct coil_app *app)
{
    (void)app;
}
bool coil__h2_on(const struct coil_app *app)
{
    (void)app;
    return false;
}
int coil__h2c_port(const struct coil_app *app)
{
    (void)app;
    return -1;
}
void coil__h2c_set_port(struct coil_app *app, uint16_t port)
{
    (void)app;
    (void)port;
}

int coil__h2_preface(struct coil__worker *w, const char *data, size_t n)
{
    (void)w;
    (void)data;
    (void)n;
    return 0;
}

static void never(struct coil__worker *w, struct coil_conn *c)
{
    coil__conn_abort(w, c);
}
static void never_data(struct coil__worker *w, struct coil_conn *c, const char *d, size_t n)
{
    (void)d;
    (void)n;
    coil__conn_abort(w, c);
}
static void nothing(struct coil__worker *w, struct coil_conn *c)
{
    (void)w;
    (void)c;
}

const struct coil__proto coil__http2 = {
    .on_data = never_data,
    .on_eof = never,
    .on_read_timeout = never,
    .on_sent = nothing,
    .on_resume = nothing,
    .on_abort = nothing,
    .on_drain = never,
};

const char *const coil__h2_abuse_kinds[COIL_H2_ABUSE_KINDS] = {0};

int coil__h2_respond(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq, int status)
{
    (void)w, (void)c, (void)rq, (void)status;
    return -EPIPE;
}
void coil__h2_finish(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq, int status)
{
    (void)w, (void)c, (void)rq, (void)status;
}
int coil__h2_stream_head(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq,
                         int status)
{
    (void)w, (void)c, (void)rq, (void)status;
    return -EPIPE;
}
int coil__h2_stream_piece(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq,
                          const void *data, size_t len)
{
    (void)w, (void)c, (void)rq, (void)data, (void)len;
    return -EPIPE;
}
void coil__h2_stream_end(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq)
{
    (void)w, (void)c, (void)rq;
}
void coil__h2_reset(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq)
{
    (void)w, (void)c, (void)rq;
}
size_t coil__h2_queued(const struct coil__rq *rq)
{
    (void)rq;
    return 0;
}
void coil__h2_want_writable(struct coil__rq *rq)
{
    (void)rq;
}

void coil__h2_refuse(struct coil__worker *w, struct coil_conn *c, struct coil__h2s *st, int status)
{
    (void)w, (void)c, (void)st, (void)status;
}
