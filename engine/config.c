/* SPDX-License-Identifier: MIT */
/*
 * config.c: command-line options and their environment variables.
 *
 * Every engine option is one row of `opts`: its name, its variable, how its value is read and
 * its bounds. Values come from the environment first and the command line second, so a flag
 * overrides a variable. Applications add their own options (coil_app_option), parsed the same
 * way. A bad value prints what was wrong and exits with status 2; --help prints the table.
 * Runs on the main thread before any worker exists.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "internal.h"

struct coil__option {
    struct coil__option *next;
    const char *name;
    const char *env;
    const char *metavar;
    const char *help;
    int (*set)(const char *value, void *ud);
    void *ud;
    bool flag; /* takes no value on the command line ("--no-metrics"): set gets "1" */
};

enum kind { K_ADDR, K_UINT, K_SIZE, K_DUR };

struct optdef {
    const char *name;
    const char *env;
    enum kind kind;
    size_t off;    /* offset in struct coil__config */
    uint8_t width; /* bytes of the field: 2, 4 or 8 */
    uint64_t min;
    uint64_t max;
    const char *help;
};

#define F(field) offsetof(struct coil__config, field), sizeof(((struct coil__config *)0)->field)

static const struct optdef opts[] = {
    {"port", "COIL_PORT", K_UINT, F(port), 0, 65535, "TCP port (0 picks a free one)"},
    {"bind", "COIL_BIND", K_ADDR, F(bind), 0, 0, "IPv4 or IPv6 address to listen on"},
    {"workers", "COIL_WORKERS", K_UINT, F(workers), 1, 1024,
     "worker threads, each pinned to a CPU (default: the CPUs this process may use)"},
    {"max-conns", "COIL_MAX_CONNS", K_UINT, F(max_conns), 1, (1u << 24) - 1,
     "open connections per worker; more are closed at accept"},
    {"max-header-bytes", "COIL_MAX_HEADER_BYTES", K_SIZE, F(lim.max_header_bytes), 256, 1u << 20,
     "request line + headers (431/414 beyond)"},
    {"max-headers", "COIL_MAX_HEADERS", K_UINT, F(lim.max_headers), 1, 10000,
     "header lines per request (431 beyond)"},
    {"max-body-bytes", "COIL_MAX_BODY_BYTES", K_SIZE, F(lim.max_body_bytes), 0, 1u << 30,
     "request body (413 beyond)"},
    {"header-timeout", "COIL_HEADER_TIMEOUT", K_DUR, F(header_timeout_ms), 1, 86400000,
     "time to receive a whole request head (408 after)"},
    {"body-timeout", "COIL_BODY_TIMEOUT", K_DUR, F(body_timeout_ms), 1, 86400000,
     "time between two reads of a request body (408 after)"},
    {"idle-timeout", "COIL_IDLE_TIMEOUT", K_DUR, F(idle_timeout_ms), 1, 86400000,
     "keep-alive wait for the next request (then closed)"},
    {"write-timeout", "COIL_WRITE_TIMEOUT", K_DUR, F(write_timeout_ms), 1, 86400000,
     "a response send making no progress (then closed)"},
    {"drain-timeout", "COIL_DRAIN_TIMEOUT", K_DUR, F(drain_timeout_ms), 0, 86400000,
     "graceful shutdown before open connections are forced closed"},
    {"handler-timeout", "COIL_HANDLER_TIMEOUT", K_DUR, F(handler_timeout_ms), 1, 86400000,
     "a deferred response not started by then gets 504; a stream idle that long is closed"},
    {"proxy-connect-timeout", "COIL_PROXY_CONNECT_TIMEOUT", K_DUR, F(proxy_connect_timeout_ms), 1,
     86400000, "--proxy: connecting to the upstream, including a wait for a free connection"},
    {"proxy-read-timeout", "COIL_PROXY_READ_TIMEOUT", K_DUR, F(proxy_read_timeout_ms), 1, 86400000,
     "--proxy: the upstream's response head, then each wait between body reads (504)"},
};

static const char *const defaults_text[] = {
    "8080", "0.0.0.0", "CPUs", "16384", "8K",  "100", "1M",  "10s",
    "30s",  "60s",     "30s",  "30s",   "30s", "2s",  "30s",
};

void coil__config_defaults(struct coil__config *c)
{
    memset(c, 0, sizeof(*c));
    strcpy(c->bind, "0.0.0.0");
    c->port = 8080;
    c->workers = 0; /* the CPUs we may run on, decided at run */
    c->max_conns = 16384;
    c->lim.max_header_bytes = 8192;
    c->lim.max_headers = 100;
    c->lim.max_body_bytes = 1u << 20;
    c->header_timeout_ms = 10000;
    c->body_timeout_ms = 30000;
    c->idle_timeout_ms = 60000;
    c->write_timeout_ms = 30000;
    c->drain_timeout_ms = 30000;
    c->handler_timeout_ms = 30000;
    c->proxy_connect_timeout_ms = 2000;
    c->proxy_read_timeout_ms = 30000;
    c->linger_ms = 2000;
    c->recv_buf_size = 16384;
    c->recv_buf_count = 512;
    c->io_buf_size = 16384;
    c->max_pending_out = 256 * 1024;
    c->chan_capacity = 4096;
}

static void usage(const struct coil_app *app, FILE *f)
{
    fprintf(f, "usage: %s [options]\n\noptions (each also read from the variable shown):\n",
            app->argv && app->argv[0] ? app->argv[0] : "coil");
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        const char *mv = opts[i].kind == K_DUR    ? "DUR"
                         : opts[i].kind == K_SIZE ? "BYTES"
                         : opts[i].kind == K_ADDR ? "ADDR"
                                                  : "N";
        fprintf(f, "  --%s %s\t[%s, default %s]\n      %s\n", opts[i].name, mv, opts[i].env,
                defaults_text[i], opts[i].help);
    }
    for (const struct coil__option *o = app->options; o; o = o->next)
        fprintf(f, "  --%s%s%s\t[%s]\n      %s\n", o->name, o->flag ? "" : " ",
                o->flag      ? ""
                : o->metavar ? o->metavar
                             : "VALUE",
                o->env ? o->env : "-", o->help ? o->help : "");
    fprintf(f, "  --help\n      this text\n\nDUR: 500ms, 10s, 2m, 1h, or seconds. "
               "BYTES: a number with an optional K, M or G (binary) suffix.\n");
}

static int parse_u64(const char *s, uint64_t *out, const char **end)
{
    if (*s < '0' || *s > '9')
        return -EINVAL;
    uint64_t v = 0;
    for (; *s >= '0' && *s <= '9'; s++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -ERANGE;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *out = v;
    *end = s;
    return 0;
}

static int parse_scaled(const char *s, enum kind kind, uint64_t *out)
{
    uint64_t v;
    const char *end;
    int err = parse_u64(s, &v, &end);
    if (err)
        return err;
    uint64_t mul = 1;
    if (kind == K_SIZE) {
        if (!strcmp(end, "K") || !strcmp(end, "k"))
            mul = 1u << 10;
        else if (!strcmp(end, "M") || !strcmp(end, "m"))
            mul = 1u << 20;
        else if (!strcmp(end, "G") || !strcmp(end, "g"))
            mul = 1u << 30;
        else if (*end)
            return -EINVAL;
    } else if (kind == K_DUR) {
        if (!strcmp(end, "ms"))
            mul = 1;
        else if (!*end || !strcmp(end, "s"))
            mul = 1000;
        else if (!strcmp(end, "m"))
            mul = 60000;
        else if (!strcmp(end, "h"))
            mul = 3600000;
        else
            return -EINVAL;
    } else if (*end) {
        return -EINVAL;
    }
    if (v && mul > UINT64_MAX / v)
        return -ERANGE;
    *out = v * mul;
    return 0;
}

static int set_value(struct coil__config *cfg, const struct optdef *d, const char *val,
                     const char *from)
{
    char *field = (char *)cfg + d->off;
    if (d->kind == K_ADDR) {
        unsigned char tmp[16];
        if (strlen(val) >= sizeof(cfg->bind) ||
            (inet_pton(AF_INET, val, tmp) != 1 && inet_pton(AF_INET6, val, tmp) != 1)) {
            fprintf(stderr, "coil: %s: '%s' is not a numeric IPv4 or IPv6 address\n", from, val);
            return -EINVAL;
        }
        strcpy(cfg->bind, val);
        return 0;
    }
    uint64_t v;
    if (parse_scaled(val, d->kind, &v) < 0 || v < d->min || v > d->max) {
        fprintf(stderr, "coil: %s: '%s' is not valid (expected %s from %llu to %llu)\n", from, val,
                d->kind == K_DUR    ? "a duration"
                : d->kind == K_SIZE ? "a size"
                                    : "a number",
                (unsigned long long)d->min, (unsigned long long)d->max);
        return -EINVAL;
    }
    if (d->width == 2)
        *(uint16_t *)field = (uint16_t)v;
    else if (d->width == 4)
        *(uint32_t *)field = (uint32_t)v;
    else
        *(uint64_t *)field = v;
    return 0;
}

/* Finds an engine or application option by name; one of *d / *o is set. */
static bool find(const struct coil_app *app, const char *name, size_t n, const struct optdef **d,
                 const struct coil__option **o)
{
    *d = NULL;
    *o = NULL;
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++)
        if (strlen(opts[i].name) == n && !strncmp(opts[i].name, name, n))
            return (*d = &opts[i]), true;
    for (const struct coil__option *x = app->options; x; x = x->next)
        if (strlen(x->name) == n && !strncmp(x->name, name, n))
            return (*o = x), true;
    return false;
}

static int apply(struct coil_app *app, const struct optdef *d, const struct coil__option *o,
                 const char *val, const char *from)
{
    if (d)
        return set_value(&app->cfg, d, val, from);
    if (o->set(val, o->ud) != 0) {
        fprintf(stderr, "coil: %s: '%s' was refused\n", from, val);
        return -EINVAL;
    }
    return 0;
}

/* For options added by engine modules (coil_app_option): "500ms", "10s", "2m", "1h", or seconds;
 * and plain decimal numbers. 0, -EINVAL or -ERANGE. */
int coil__parse_duration_ms(const char *s, uint64_t *out)
{
    return parse_scaled(s, K_DUR, out);
}

int coil__prefix_option(struct coil_app *app, const char *value, const char *flag,
                        const char *usage,
                        int (*add)(struct coil_app *app, const char *pattern, const char *target))
{
    for (const char *p = value; *p;) {
        while (*p == ' ')
            p++;
        if (!*p)
            break;
        size_t n = strcspn(p, " ");
        char item[4096];
        if (n >= sizeof(item) - 2)
            return -1;
        memcpy(item, p, n);
        item[n] = 0;
        p += n;
        char *eq = strchr(item, '=');
        int err = -EINVAL;
        if (eq && eq != item && eq[-1] == '/') {
            *eq = 0;
            char pattern[sizeof(item) + 1];
            snprintf(pattern, sizeof(pattern), "%s*", item);
            err = add(app, pattern, eq + 1);
            *eq = '=';
        }
        if (err == -EEXIST)
            fprintf(stderr, "coil: --%s %s: that prefix is routed already\n", flag, item);
        else if (err < 0)
            fprintf(stderr, "coil: --%s %s: %s\n", flag, item, usage);
        if (err < 0)
            return -1;
    }
    return 0;
}

int coil__parse_size(const char *s, uint64_t *out)
{
    return parse_scaled(s, K_SIZE, out);
}

int coil__parse_count(const char *s, uint64_t *out)
{
    return parse_scaled(s, K_UINT, out);
}

static int parse_env(struct coil_app *app)
{
    for (size_t i = 0; i < sizeof(opts) / sizeof(opts[0]); i++) {
        const char *v = getenv(opts[i].env);
        if (v && set_value(&app->cfg, &opts[i], v, opts[i].env) < 0)
            return -EINVAL;
    }
    for (const struct coil__option *o = app->options; o; o = o->next) {
        const char *v = o->env ? getenv(o->env) : NULL;
        if (v && apply(app, NULL, o, v, o->env) < 0)
            return -EINVAL;
    }
    return 0;
}

/* 0 to run, 1 after --help, -EINVAL after a message. */
static int parse_args(struct coil_app *app)
{
    for (int i = 1; i < app->argc; i++) {
        const char *a = app->argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(app, stdout);
            return 1;
        }
        if (strncmp(a, "--", 2) != 0) {
            fprintf(stderr, "coil: unexpected argument '%s'\n", a);
            return -EINVAL;
        }
        const char *name = a + 2, *eq = strchr(name, '=');
        size_t n = eq ? (size_t)(eq - name) : strlen(name);
        const struct optdef *d;
        const struct coil__option *o;
        if (!find(app, name, n, &d, &o)) {
            fprintf(stderr, "coil: unknown option '%s'\n", a);
            return -EINVAL;
        }
        const char *val = eq                  ? eq + 1
                          : o && o->flag      ? "1"
                          : i + 1 < app->argc ? app->argv[++i]
                                              : NULL;
        if (!val) {
            fprintf(stderr, "coil: option '%s' needs a value\n", a);
            return -EINVAL;
        }
        char from[80];
        snprintf(from, sizeof(from), "--%.*s", (int)n, name);
        if (apply(app, d, o, val, from) < 0)
            return -EINVAL;
    }
    return 0;
}

int coil__config_parse(struct coil_app *app, int argc, char **argv)
{
    app->argc = argc;
    app->argv = argv;
    int r = parse_env(app);
    if (r == 0)
        r = parse_args(app);
    if (r < 0)
        fprintf(stderr, "Try '%s --help'.\n", argv && argv[0] ? argv[0] : "coil");
    return r;
}

int coil_app_option(struct coil_app *app, const char *name, const char *env, const char *metavar,
                    const char *help, int (*set)(const char *value, void *ud), void *ud)
{
    if (!app || !name || !*name || !set)
        return -EINVAL;
    const struct optdef *d;
    const struct coil__option *o;
    if (find(app, name, strlen(name), &d, &o))
        return -EEXIST;
    struct coil__option *x = calloc(1, sizeof(*x));
    if (!x)
        return -ENOMEM;
    *x = (struct coil__option){NULL, name, env, metavar, help, set, ud, false};
    struct coil__option **tail = &app->options;
    while (*tail)
        tail = &(*tail)->next;
    *tail = x;
    return 0;
}

int coil__app_flag(struct coil_app *app, const char *name, const char *env, const char *help,
                   int (*set)(const char *value, void *ud), void *ud)
{
    int err = coil_app_option(app, name, env, NULL, help, set, ud);
    if (err < 0)
        return err;
    struct coil__option *x = app->options;
    while (x->next)
        x = x->next;
    x->flag = true;
    return 0;
}

/* A flag's value from a variable: 1/true/yes/on or 0/false/no/off; -1 for anything else. */
int coil__parse_bool(const char *s)
{
    static const char *const yes[] = {"1", "true", "yes", "on"}, *const no[] = {"0", "false", "no",
                                                                                "off"};
    for (size_t i = 0; i < 4; i++) {
        if (!strcasecmp(s, yes[i]))
            return 1;
        if (!strcasecmp(s, no[i]))
            return 0;
    }
    return -1;
}

void coil__options_free(struct coil_app *app)
{
    while (app->options) {
        struct coil__option *n = app->options->next;
        free(app->options);
        app->options = n;
    }
}
