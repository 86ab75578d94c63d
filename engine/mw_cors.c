/* SPDX-License-Identifier: MIT */
/*
 * mw_cors.c: the CORS middleware (coil_mw.h, "CORS"), the Fetch standard's CORS protocol on the
 * server side. Its before step answers preflights (OPTIONS with Origin and
 * Access-Control-Request-Method) with 204 whatever the routes are, so a path with no OPTIONS
 * route still gets one; its after step puts Access-Control-Allow-Origin and friends on every
 * other response whose Origin is allowed (the engine's own 404s and a 401 from authentication
 * included, or the browser would hide them from the page), with Vary: Origin merged into the
 * response's Vary so caches keep one copy per origin.
 *
 * The configuration (struct cors) is parsed once, read-only while workers run, and freed by the
 * run's done hook. The option values wait in static storage from parsing to the install: there
 * is one app per process (coil__app).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "coil_mw.h"
#include "internal.h"
#include "mw_cors.h"

#define DEFAULT_METHODS "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"
#define DEFAULT_HEADERS "Accept, Authorization, Content-Type, X-API-Key, X-Request-ID"
#define DEFAULT_MAX_AGE_S 600
#define PREFLIGHT_VARY "Origin, Access-Control-Request-Method, Access-Control-Request-Headers"

/* ---- origins ---------------------------------------------------------------------------- */

static bool alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool digit(char c)
{
    return c >= '0' && c <= '9';
}

static bool same(struct coil_str a, struct coil_str b)
{
    return a.len == b.len && !strncasecmp(a.ptr, b.ptr, a.len);
}

static bool same_text(struct coil_str a, const char *b)
{
    return same(a, (struct coil_str){b, strlen(b)});
}

/* A registered name: labels of letters, digits, '-' and '_' between single dots. */
static bool reg_name(struct coil_str h)
{
    if (!h.len || h.ptr[0] == '.' || h.ptr[h.len - 1] == '.')
        return false;
    for (size_t i = 0; i < h.len; i++) {
        char c = h.ptr[i];
        if (c == '.' ? h.ptr[i + 1] == '.' : !(alpha(c) || digit(c) || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* An IP literal: "[" hex digits, ':' and '.' "]" (the browser has already normalised it). */
static bool ip_literal(struct coil_str h)
{
    if (h.len < 4 || h.ptr[0] != '[' || h.ptr[h.len - 1] != ']')
        return false;
    for (size_t i = 1; i + 1 < h.len; i++) {
        char c = h.ptr[i];
        if (!(digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == ':' || c == '.'))
            return false;
    }
    return true;
}

static uint32_t default_port(struct coil_str scheme)
{
    if (same_text(scheme, "http") || same_text(scheme, "ws"))
        return 80;
    if (same_text(scheme, "https") || same_text(scheme, "wss"))
        return 443;
    return 0;
}

int coil__cors_origin_parse(struct coil_str s, bool pattern, struct coil__cors_origin *out)
{
    *out = (struct coil__cors_origin){0};
    if (same_text(s, "null"))
        return out->null = true, 0;
    const char *p = s.ptr, *end = s.ptr + s.len;
    if (p == end || !alpha(*p))
        return -EINVAL;
    while (p < end && (alpha(*p) || digit(*p) || *p == '+' || *p == '-' || *p == '.'))
        p++;
    out->scheme = (struct coil_str){s.ptr, (size_t)(p - s.ptr)};
    if (end - p < 3 || memcmp(p, "://", 3) != 0)
        return -EINVAL;
    p += 3;
    if (pattern && end - p >= 2 && p[0] == '*' && p[1] == '.')
        p += 2, out->wildcard = true;
    const char *host = p;
    if (p < end && *p == '[')
        while (p < end && *p++ != ']')
            ;
    else
        while (p < end && *p != ':')
            p++;
    out->host = (struct coil_str){host, (size_t)(p - host)};
    if (!(out->wildcard ? reg_name(out->host) : reg_name(out->host) || ip_literal(out->host)))
        return -EINVAL;
    out->port = default_port(out->scheme);
    if (p == end)
        return 0;
    if (*p++ != ':' || p == end || end - p > 5)
        return -EINVAL;
    uint32_t port = 0;
    for (; p < end; p++) {
        if (!digit(*p))
            return -EINVAL;
        port = port * 10 + (uint32_t)(*p - '0');
    }
    if (port < 1 || port > 65535)
        return -EINVAL;
    out->port = port;
    return 0;
}

bool coil__cors_origin_match(const struct coil__cors_origin *allowed, struct coil_str origin)
{
    struct coil__cors_origin o;
    if (coil__cors_origin_parse(origin, false, &o) < 0)
        return false;
    if (allowed->null || o.null)
        return allowed->null && o.null;
    if (!same(o.scheme, allowed->scheme) || o.port != allowed->port)
        return false;
    if (!allowed->wildcard)
        return same(o.host, allowed->host);
    /* One or more labels, then ".", then the pattern's host: "a.example.com" and
     * "a.b.example.com" for "*.example.com"; not "example.com", nor "evil-example.com". The
     * origin parsed as a name, so the labels in front are well-formed. */
    size_t n = allowed->host.len;
    if (o.host.len < n + 2 || o.host.ptr[o.host.len - n - 1] != '.' || o.host.ptr[0] == '[')
        return false;
    return same((struct coil_str){o.host.ptr + o.host.len - n, n}, allowed->host);
}

/* ---- lists ---------------------------------------------------------------------------------- */

/* The next element of a comma-separated list, without its surrounding spaces; false at the end.
 * Empty elements are skipped (RFC 9110 5.6.1). */
static bool next_item(struct coil_str *list, struct coil_str *item)
{
    const char *p = list->ptr, *end = p + list->len;
    for (;;) {
        while (p < end && (*p == ' ' || *p == '\t' || *p == ','))
            p++;
        if (p == end) {
            *list = (struct coil_str){end, 0};
            return false;
        }
        const char *s = p;
        while (p < end && *p != ',')
            p++;
        const char *e = p;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            e--;
        *list = (struct coil_str){p, (size_t)(end - p)};
        *item = (struct coil_str){s, (size_t)(e - s)};
        return true;
    }
}

/* Is item one of the elements of list (exactly, or without case)? NULL is the empty list. */
static bool listed(const char *list, struct coil_str item, bool nocase)
{
    struct coil_str l = {list, list ? strlen(list) : 0}, x;
    while (next_item(&l, &x))
        if (x.len == item.len && !(nocase ? strncasecmp : strncmp)(x.ptr, item.ptr, x.len))
            return true;
    return false;
}

/*
 * A list option as the header value that announces it ("GET, POST"): tokens only, or "*"
 * alone when star is allowed (*any then says so, and *out is NULL). NULL and 0 for an empty
 * list; -EINVAL after a message, -ENOMEM.
 */
static int list_make(const char *what, const char *in, bool star, char **out, bool *any)
{
    struct coil_str l = {in, strlen(in)}, x;
    size_t n = 0, len = 0;
    *out = NULL;
    *any = false;
    while (next_item(&l, &x)) {
        if (star && x.len == 1 && x.ptr[0] == '*') {
            *any = true;
        } else if (!coil__http_is_token(x)) {
            fprintf(stderr, "coil: CORS: %s: '%.*s' is not a token\n", what, (int)x.len, x.ptr);
            return -EINVAL;
        }
        n++, len += x.len + 2;
    }
    if (*any && n > 1) {
        fprintf(stderr, "coil: CORS: %s: '*' allows every one: list it alone\n", what);
        return -EINVAL;
    }
    if (!n || *any)
        return 0;
    char *p = *out = malloc(len);
    if (!p)
        return -ENOMEM;
    l = (struct coil_str){in, strlen(in)};
    while (next_item(&l, &x)) {
        if (p != *out)
            *p++ = ',', *p++ = ' ';
        memcpy(p, x.ptr, x.len);
        p += x.len;
    }
    *p = 0;
    return 0;
}

/* ---- the middleware ------------------------------------------------------------------------ */

struct cors {
    struct coil__cors_origin *origins; /* pointing into list */
    size_t norigins;
    char *list;       /* the origins option, copied */
    bool any;         /* "*": every origin, answered "*" (never with credentials) */
    char *methods;    /* Access-Control-Allow-Methods; NULL with methods_any */
    char *headers;    /* Access-Control-Allow-Headers; NULL with headers_any or none */
    char *expose;     /* Access-Control-Expose-Headers; NULL for none */
    bool methods_any; /* "*": whatever method is asked (echoed) */
    bool headers_any; /* "*": whatever headers are asked (echoed) */
    bool expose_any;  /* "*": every header (without credentials only) */
    bool credentials; /* Access-Control-Allow-Credentials: true */
    char max_age[12]; /* Access-Control-Max-Age */
};

static const char preflight_key; /* coil_req_set: this response is a preflight's */

static bool origin_allowed(const struct cors *c, struct coil_str origin)
{
    if (c->any)
        return true;
    for (size_t i = 0; i < c->norigins; i++)
        if (coil__cors_origin_match(&c->origins[i], origin))
            return true;
    return false;
}

/* Access-Control-Request-Headers is acceptable: every element a token that is allowed. */
static bool headers_allowed(const struct cors *c, struct coil_str asked)
{
    struct coil_str x;
    while (next_item(&asked, &x))
        if (!coil__http_is_token(x) || (!c->headers_any && !listed(c->headers, x, true)))
            return false;
    return true;
}

/* A header of ours, replacing any the handler set: a second Access-Control-Allow-Origin would
 * make the browser refuse both. */
static void put(struct coil_res *res, const char *name, const char *value, size_t len)
{
    coil_res_header_remove(res, name);
    coil_res_headern(res, name, strlen(name), value, len);
}

static void put_text(struct coil_res *res, const char *name, const char *value)
{
    put(res, name, value, strlen(value));
}

static void put_common(const struct cors *c, struct coil_res *res, struct coil_str origin)
{
    if (c->any)
        put_text(res, "Access-Control-Allow-Origin", "*");
    else
        put(res, "Access-Control-Allow-Origin", origin.ptr, origin.len);
    if (c->credentials)
        put_text(res, "Access-Control-Allow-Credentials", "true");
}

static bool preflight(struct coil_req *req)
{
    struct coil_str m = coil_req_method(req);
    return m.len == 7 && !memcmp(m.ptr, "OPTIONS", 7) && coil_req_header(req, "Origin").len &&
           coil_req_header(req, "Access-Control-Request-Method").len;
}

/* A preflight is answered here, never by a route: 204, with the permissions only when the
 * origin, the method and every header asked for are allowed (else the browser blocks). */
static int cors_before(struct coil_req *req, struct coil_res *res, void *ud)
{
    const struct cors *c = ud;
    if (!preflight(req))
        return COIL_MW_NEXT;
    if (coil_req_set(req, &preflight_key, req) < 0)
        return -ENOMEM;
    struct coil_str origin = coil_req_header(req, "Origin");
    struct coil_str method = coil_req_header(req, "Access-Control-Request-Method");
    struct coil_str asked = coil_req_header(req, "Access-Control-Request-Headers");
    coil_res_status(res, 204);
    coil_res_header(res, "Vary", PREFLIGHT_VARY);
    if (!origin_allowed(c, origin) || !coil__http_is_token(method) ||
        !(c->methods_any || listed(c->methods, method, false)) || !headers_allowed(c, asked))
        return COIL_MW_DONE;
    put_common(c, res, origin);
    if (c->methods_any)
        coil_res_headern(res, "Access-Control-Allow-Methods", 28, method.ptr, method.len);
    else
        coil_res_header(res, "Access-Control-Allow-Methods", c->methods);
    struct coil_str rest = asked, x;
    if (next_item(&rest, &x)) /* what was asked, all of it allowed */
        coil_res_headern(res, "Access-Control-Allow-Headers", 28, asked.ptr, asked.len);
    else if (c->headers)
        coil_res_header(res, "Access-Control-Allow-Headers", c->headers);
    coil_res_header(res, "Access-Control-Max-Age", c->max_age);
    return COIL_MW_DONE;
}

static bool has_token(struct coil_str list, const char *token)
{
    struct coil_str x;
    while (next_item(&list, &x))
        if (same_text(x, token))
            return true;
    return false;
}

/*
 * Adds Origin to the response's Vary: one Vary header holding what every Vary line said, so
 * a handler's "Vary: Accept-Encoding" becomes "Vary: Accept-Encoding, Origin". Nothing to do
 * when it says "*" or names Origin already.
 */
static void vary_origin(struct coil_req *req, struct coil_res *res)
{
    size_t len = 0, lines = 0;
    for (uint32_t i = 0; i < res->nhdrs; i++) {
        const struct coil__rhdr *h = &res->hdrs[i];
        struct coil_str n = {h->name, h->name_len}, v = {h->value, h->value_len};
        if (!coil__http_name_eq(n, "vary"))
            continue;
        if (has_token(v, "*") || has_token(v, "Origin"))
            return;
        len += v.len + 2, lines++;
    }
    if (!lines) {
        coil_res_header(res, "Vary", "Origin");
        return;
    }
    char *merged = coil_req_alloc(req, len + 6), *p = merged;
    if (!merged)
        return; /* out of memory: the response goes without, as the handler made it */
    for (uint32_t i = 0; i < res->nhdrs; i++) {
        const struct coil__rhdr *h = &res->hdrs[i];
        if (!coil__http_name_eq((struct coil_str){h->name, h->name_len}, "vary"))
            continue;
        memcpy(p, h->value, h->value_len);
        p += h->value_len;
        *p++ = ',', *p++ = ' ';
    }
    memcpy(p, "Origin", 6);
    coil_res_header_remove(res, "Vary");
    coil_res_headern(res, "Vary", 4, merged, len + 6);
}

static void cors_after(struct coil_req *req, struct coil_res *res, void *ud)
{
    const struct cors *c = ud;
    if (coil_req_get(req, &preflight_key))
        return; /* answered whole by cors_before */
    struct coil_str origin = coil_req_header(req, "Origin");
    if (c->any) {
        /* The same answer whatever the Origin (or none): no Vary needed. */
        put_common(c, res, origin);
    } else {
        vary_origin(req, res);
        if (!origin.len || !origin_allowed(c, origin))
            return;
        put_common(c, res, origin);
    }
    if (c->expose)
        put_text(res, "Access-Control-Expose-Headers", c->expose);
    else if (c->expose_any)
        put_text(res, "Access-Control-Expose-Headers", "*");
}

/* ---- configuration ------------------------------------------------------------------------- */

static void cors_free(void *ud)
{
    struct cors *c = ud;
    free(c->origins);
    free(c->list);
    free(c->methods);
    free(c->headers);
    free(c->expose);
    free(c);
}

/* The origins option into c->origins (or c->any). 0, -EINVAL after a message, -ENOMEM. */
static int parse_origins(struct cors *c, const char *in)
{
    if (!(c->list = strdup(in)))
        return -ENOMEM;
    struct coil_str l = {c->list, strlen(c->list)}, x;
    size_t n = 0;
    while (next_item(&l, &x))
        n++;
    if (!n) {
        fprintf(stderr, "coil: CORS: no origin listed\n");
        return -EINVAL;
    }
    if (!(c->origins = calloc(n, sizeof(*c->origins))))
        return -ENOMEM;
    l = (struct coil_str){c->list, strlen(c->list)};
    while (next_item(&l, &x)) {
        if (x.len == 1 && x.ptr[0] == '*') {
            c->any = true;
            continue;
        }
        if (coil__cors_origin_parse(x, true, &c->origins[c->norigins++]) < 0) {
            fprintf(stderr,
                    "coil: CORS: '%.*s' is not an origin (scheme://host[:port], with "
                    "\"*.\" in front of the host for its subdomains, or null)\n",
                    (int)x.len, x.ptr);
            return -EINVAL;
        }
    }
    if (c->any && n > 1) {
        fprintf(stderr, "coil: CORS: origin '*' allows every origin: list it alone\n");
        return -EINVAL;
    }
    return 0;
}

static int configure(struct cors *c, const struct coil_cors_opts *o)
{
    int err;
    if ((err = parse_origins(c, o->origins)) < 0 ||
        (err = list_make("methods", o->methods ? o->methods : DEFAULT_METHODS, true, &c->methods,
                         &c->methods_any)) < 0 ||
        (err = list_make("headers", o->headers ? o->headers : DEFAULT_HEADERS, true, &c->headers,
                         &c->headers_any)) < 0 ||
        (err = list_make("expose", o->expose ? o->expose : "", true, &c->expose, &c->expose_any)) <
            0)
        return err;
    if (!c->methods && !c->methods_any) {
        fprintf(stderr, "coil: CORS: no method listed\n");
        return -EINVAL;
    }
    c->credentials = o->credentials;
    if (c->any && c->credentials) {
        fprintf(stderr, "coil: CORS: origin '*' with credentials is refused: the Fetch standard "
                        "forbids it, and allowing every origin with credentials would let any "
                        "site read what your users see; list the origins instead\n");
        return -EINVAL;
    }
    if (c->expose_any && c->credentials) {
        fprintf(stderr, "coil: CORS: expose '*' means every header only without credentials "
                        "(with them, browsers read a header named '*'): list the headers\n");
        return -EINVAL;
    }
    snprintf(c->max_age, sizeof(c->max_age), "%u", o->max_age_s ? o->max_age_s : DEFAULT_MAX_AGE_S);
    return 0;
}

int coil_mw_cors(struct coil_app *app, const struct coil_cors_opts *o, struct coil_mw *out)
{
    if (!app || !o || !o->origins || !out)
        return -EINVAL;
    struct cors *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    int err = configure(c, o);
    if (err == 0 && coil_app_on_run(app, NULL, cors_free, c) < 0)
        err = -ENOMEM;
    if (err < 0) {
        cors_free(c);
        return err;
    }
    *out = (struct coil_mw){.name = "cors", .before = cors_before, .after = cors_after, .ud = c};
    return 0;
}

/* ---- options ------------------------------------------------------------------------------- */

static struct {
    char *origins, *methods, *headers, *expose;
    bool credentials;
    uint32_t max_age_s;
    bool touched; /* an option other than --cors-origins was given */
} flags;

static int string_option(const char *value, void *ud)
{
    char **slot = ud, *copy = strdup(value);
    if (!copy)
        return -1;
    free(*slot);
    *slot = copy;
    flags.touched |= slot != &flags.origins;
    return 0;
}

static int credentials_option(const char *value, void *ud)
{
    (void)ud;
    flags.touched = true;
    if (!strcmp(value, "on"))
        flags.credentials = true;
    else if (!strcmp(value, "off"))
        flags.credentials = false;
    else
        return -1;
    return 0;
}

static int max_age_option(const char *value, void *ud)
{
    (void)ud;
    uint64_t ms;
    flags.touched = true;
    if (coil__parse_duration_ms(value, &ms) < 0 || ms % 1000 || !ms || ms / 1000 > UINT32_MAX)
        return -1; /* whole seconds, from 1 */
    flags.max_age_s = (uint32_t)(ms / 1000);
    return 0;
}

static void flags_free(void)
{
    free(flags.origins);
    free(flags.methods);
    free(flags.headers);
    free(flags.expose);
    memset(&flags, 0, sizeof(flags));
}

int coil__cors_setup(struct coil_app *app)
{
    flags_free();
    static const struct {
        const char *name, *env, *metavar, *help;
        char **slot;
    } lists[] = {
        {"cors-origins", "COIL_CORS_ORIGINS", "LIST",
         "origins allowed by CORS, comma-separated: https://app.example.com, "
         "https://*.example.com (its subdomains), null, or * for all. Enables CORS",
         &flags.origins},
        {"cors-methods", "COIL_CORS_METHODS", "LIST",
         "methods a preflight may ask for, or * [" DEFAULT_METHODS "]", &flags.methods},
        {"cors-headers", "COIL_CORS_HEADERS", "LIST",
         "request headers a preflight may ask for, or * [" DEFAULT_HEADERS "]", &flags.headers},
        {"cors-expose", "COIL_CORS_EXPOSE", "LIST",
         "response headers scripts may read (Access-Control-Expose-Headers) [none]", &flags.expose},
    };
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++)
        if (coil_app_option(app, lists[i].name, lists[i].env, lists[i].metavar, lists[i].help,
                            string_option, lists[i].slot) < 0)
            return -ENOMEM;
    if (coil_app_option(app, "cors-credentials", "COIL_CORS_CREDENTIALS", "on|off",
                        "Access-Control-Allow-Credentials: true (cookies, HTTP auth); not with "
                        "--cors-origins * [off]",
                        credentials_option, NULL) < 0 ||
        coil_app_option(app, "cors-max-age", "COIL_CORS_MAX_AGE", "DUR",
                        "how long browsers may keep a preflight's answer, whole seconds [10m]",
                        max_age_option, NULL) < 0)
        return -ENOMEM;
    return 0;
}

int coil__cors_install(struct coil_app *app)
{
    int rc = 0;
    if (flags.origins) {
        struct coil_cors_opts o = {.origins = flags.origins,
                                   .methods = flags.methods,
                                   .headers = flags.headers,
                                   .expose = flags.expose,
                                   .credentials = flags.credentials,
                                   .max_age_s = flags.max_age_s};
        struct coil_mw mw;
        int err = coil_mw_cors(app, &o, &mw);
        if (err == 0)
            err = coil__use_builtin(app, &mw);
        if (err == -ENOMEM)
            fprintf(stderr, "coil: CORS: out of memory\n");
        rc = err < 0 ? -1 : 0; /* -EINVAL was explained by coil_mw_cors */
    } else if (flags.touched) {
        fprintf(stderr, "coil: the --cors-* options have no effect without --cors-origins\n");
    }
    flags_free();
    return rc;
}
