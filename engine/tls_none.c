/* SPDX-License-Identifier: MIT */
/*
 * tls_none.c: the TLS module of a build without OpenSSL 3 (libssl-dev). --tls-port and its
 * companions are still known, so asking for TLS says how to get it rather than "unknown
 * option"; no connection is ever TLS, so the transport's calls below are never made.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "internal.h"

static int asked(const char *value, void *ud)
{
    (void)value;
    *(bool *)ud = true;
    return 0;
}

static bool wanted;

int coil__tls_setup(struct coil_app *app)
{
    static const char *const names[][3] = {
        {"tls-port", "COIL_TLS_PORT", "N"},          {"tls-cert", "COIL_TLS_CERT", "PATH"},
        {"tls-key", "COIL_TLS_KEY", "PATH"},         {"tls-sni", "COIL_TLS_SNI", "NAME=CERT:KEY"},
        {"tls-offload", "COIL_TLS_OFFLOAD", "MODE"},
    };
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        if (coil_app_option(app, names[i][0], names[i][1], names[i][2],
                            "TLS (this build has none: it needs libssl-dev)", asked, &wanted) < 0)
            return -ENOMEM;
    if (coil__app_flag(app, "no-http", "COIL_NO_HTTP", "TLS only (this build has no TLS)", asked,
                       &wanted) < 0)
        return -ENOMEM;
    return 0;
}

int coil__tls_install(struct coil_app *app)
{
    (void)app;
    if (!wanted)
        return 0;
    fprintf(stderr, "coil: this coil was built without TLS: install OpenSSL 3's headers "
                    "(apt-get install libssl-dev) and build it again\n");
    return -1;
}

void coil__tls_free(struct coil_app *app)
{
    (void)app;
}

int coil__tls_port(const struct coil_app *app)
{
    (void)app;
    return -1;
}

void coil__tls_set_port(struct coil_app *app, uint16_t port)
{
    (void)app;
    (void)port;
}

int coil__tls_port2(const struct coil_app *app)
{
    (void)app;
    return -1;
}

void coil__tls_set_port2(struct coil_app *app, uint16_t port)
{
    (void)app;
    (void)port;
}

bool coil__tls_no_http(const struct coil_app *app)
{
    (void)app;
    return false;
}

int coil__tls_start(struct coil__worker *w)
{
    (void)w;
    return 0;
}

void coil__tls_stop(struct coil__worker *w)
{
    (void)w;
}

int coil__tls_accept(struct coil__worker *w, struct coil_conn *c)
{
    (void)w;
    (void)c;
    return -ENOTSUP;
}

void coil__tls_close(struct coil__worker *w, struct coil_conn *c)
{
    (void)w;
    (void)c;
}

bool coil__tls_handshaking(const struct coil__worker *w, const struct coil_conn *c)
{
    (void)w;
    (void)c;
    return false;
}

void coil__tls_input(struct coil__worker *w, struct coil_conn *c, const char *data, size_t n)
{
    (void)w;
    (void)c;
    (void)data;
    (void)n;
}

void coil__tls_eof(struct coil__worker *w, struct coil_conn *c)
{
    (void)w;
    (void)c;
}

int coil__tls_take(struct coil__worker *w, struct coil_conn *c, struct coil__obuf **out)
{
    (void)w;
    (void)c;
    *out = NULL;
    return -1;
}

void coil__tls_prep_record(struct coil__worker *w, struct coil_conn *c, struct io_uring_sqe *sqe,
                           const char *data, size_t n, uint8_t rtype)
{
    (void)w;
    (void)c;
    (void)sqe;
    (void)data;
    (void)n;
    (void)rtype;
}
