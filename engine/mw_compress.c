/* SPDX-License-Identifier: MIT */
/*
 * mw_compress.c: the compression middleware (coil_mw_compress in coil_mw.h) and its engine
 * options (--compress ...). One after step decides, from the response as the handler left it
 * and the request's Accept-Encoding, whether and how to compress; it marks every response it
 * could have compressed with Vary: Accept-Encoding.
 *
 * A whole body is compressed at once into request-arena memory, which lives until the response
 * is sent, and replaces the handler's body only if it came out smaller. gzip goes through one
 * z_stream per worker, made on the worker's first gzip response and reset for each (deflateInit2
 * costs as much as compressing a small body). brotli gets an encoder per body with the smallest
 * window that holds it (its default 4 MiB window makes the higher qualities allocate and clear
 * tens of MB per call), allocated on the worker's heap through a guard: brotli's encoder exits
 * the process when an allocation fails, so the one-shot BrotliEncoderCompress, which allocates
 * with plain malloc, is not used (see struct brenc).
 *
 * A streamed body gets a filter with an encoder of its own (memory from the worker's heap),
 * flushed after each piece so that an event stream is not held back. The filter's last call
 * ends the encoder; the done step ends it if the response was cut short first, so no path
 * leaks it. Streams use smaller windows than whole bodies and prefer gzip at equal q: an encoder
 * is held for as long as its stream is open (about 55 KB for gzip, 0.3-0.8 MB for brotli).
 */
#include <brotli/encode.h>
#include <errno.h>
#include <setjmp.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "coil_mw.h"
#include "internal.h"
#include "mw_compress.h"

#define DEFAULT_ENCODINGS "br,gzip"
#define DEFAULT_GZIP_LEVEL 3
#define DEFAULT_BR_LEVEL 2
#define DEFAULT_MIN_BYTES 256
#define STR(x) #x
#define XSTR(x) STR(x) /* a macro's value as a string literal */
#define DEFAULT_TYPES                                                                              \
    "text/,application/json,application/javascript,application/xml,image/svg+xml,"                 \
    "application/wasm"

/* Streams: gzip's window is 8 KB (windowBits 13, memLevel 5: about 55 KB in all), brotli's
 * 64 KB (lgwin 16) at a quality of at most 5; a piece flushed per write gains little more. */
#define STREAM_GZIP_WBITS 13
#define STREAM_GZIP_MEMLEVEL 5
#define STREAM_BR_LGWIN 16
#define STREAM_BR_MAX_QUALITY 5

/* One worker's gzip encoder for whole bodies. */
struct wgzip {
    z_stream z;
};

/* A middleware made by coil_mw_compress: read-only once the workers run, but for each worker's
 * own slot of gz. Lives until coil_app_run's done hooks. */
struct compress {
    enum coil__coding order[COIL__NCODINGS - 1]; /* offered codings, most preferred first */
    size_t ncodings;
    int gzip_level;         /* 1-9 */
    int br_level;           /* 0-11 */
    uint32_t min_bytes;     /* smaller whole bodies are sent as they are */
    struct coil_str *types; /* media type prefixes, lower case, into types_text */
    size_t ntypes;
    char *types_text;
    unsigned nworkers;
    struct wgzip **gz; /* per worker, NULL until its first gzip response */
};

/*
 * A brotli encoder on the worker's heap. Brotli's encoder exits the process when an allocation
 * fails (BROTLI_ENCODER_EXIT_ON_OOM, its default and Debian's build), so it never sees one:
 * br_alloc records every block it holds on the list, and when the heap says no it jumps back
 * to the call into brotli that asked (br_guard), which frees the whole list and forgets the
 * encoder. Nothing of brotli runs after such a jump, so its half-done state does not matter.
 */
struct brblock {
    struct brblock *prev, *next;
    alignas(max_align_t) unsigned char data[];
};
struct brenc {
    BrotliEncoderState *s;  /* NULL once ended or dropped */
    struct brblock *blocks; /* every block brotli holds */
    jmp_buf *fail;          /* set during a call into brotli */
};

/* A streamed response's encoder. The struct is in the request arena; what the encoder
 * allocates is on the worker's heap until end_stream. */
struct stream {
    enum coil__coding coding;
    bool open; /* the encoder holds memory */
    z_stream z;
    struct brenc br;
};

/* ---- options ---------------------------------------------------------------------------- */

static int parse_encodings(const char *s, enum coil__coding *order, size_t *n)
{
    *n = 0;
    while (*s) {
        size_t len = strcspn(s, ",");
        const char *t = s;
        size_t tl = len;
        while (tl && coil__is_ows(*t))
            t++, tl--;
        while (tl && coil__is_ows(t[tl - 1]))
            tl--;
        enum coil__coding c = coil__eq_nocase(t, tl, "br")     ? COIL__BR
                              : coil__eq_nocase(t, tl, "gzip") ? COIL__GZIP
                                                               : COIL__IDENTITY;
        if (c == COIL__IDENTITY || *n == COIL__NCODINGS - 1 || (*n && order[0] == c))
            return -EINVAL; /* unknown or repeated */
        order[(*n)++] = c;
        s += len;
        if (*s == ',' && !*++s)
            return -EINVAL; /* a trailing comma */
    }
    return *n ? 0 : -EINVAL;
}

/* Splits a comma list of media type prefixes into c->types (lower case). 0 or -EINVAL/-ENOMEM. */
static int parse_types(struct compress *c, const char *list)
{
    size_t len = strlen(list), n = 1;
    for (size_t i = 0; i < len; i++)
        n += list[i] == ',';
    c->types_text = malloc(len + 1);
    c->types = calloc(n, sizeof(*c->types));
    if (!c->types_text || !c->types)
        return -ENOMEM;
    memcpy(c->types_text, list, len + 1);
    for (char *p = c->types_text; p;) {
        char *comma = strchr(p, ',');
        size_t tl = comma ? (size_t)(comma - p) : strlen(p);
        while (tl && coil__is_ows(*p))
            p++, tl--;
        while (tl && coil__is_ows(p[tl - 1]))
            tl--;
        if (!tl)
            return -EINVAL;
        for (size_t i = 0; i < tl; i++) {
            if (!coil__is_tchar((unsigned char)p[i]) && p[i] != '/')
                return -EINVAL;
            p[i] = (char)(p[i] >= 'A' && p[i] <= 'Z' ? p[i] + 32 : p[i]);
        }
        c->types[c->ntypes++] = (struct coil_str){p, tl};
        p = comma ? comma + 1 : NULL;
    }
    return 0;
}

/* ---- per worker ------------------------------------------------------------------------- */

static void *z_alloc(void *opaque, uInt items, uInt size)
{
    (void)opaque;
    return coil_malloc((size_t)items * size);
}

static void z_free(void *opaque, void *p)
{
    (void)opaque;
    coil_free(p);
}

static void *br_alloc(void *opaque, size_t size)
{
    struct brenc *e = opaque;
    struct brblock *b = size <= SIZE_MAX - sizeof(*b) ? coil_malloc(sizeof(*b) + size) : NULL;
    if (!b)
        longjmp(*e->fail, 1);
    b->prev = NULL;
    b->next = e->blocks;
    if (e->blocks)
        e->blocks->prev = b;
    e->blocks = b;
    return b->data;
}

static void br_free(void *opaque, void *p)
{
    struct brenc *e = opaque;
    if (!p)
        return;
    struct brblock *b = (struct brblock *)((char *)p - offsetof(struct brblock, data));
    if (b->prev)
        b->prev->next = b->next;
    else
        e->blocks = b->next;
    if (b->next)
        b->next->prev = b->prev;
    coil_free(b);
}

/* After a failed allocation inside brotli: every block it held goes, the encoder with them. */
static void br_drop(struct brenc *e)
{
    while (e->blocks) {
        struct brblock *b = e->blocks;
        e->blocks = b->next;
        coil_free(b);
    }
    e->s = NULL;
    e->fail = NULL;
}

static void br_end(struct brenc *e)
{
    if (e->s)
        BrotliEncoderDestroyInstance(e->s);
    e->s = NULL;
}

/* A new encoder (quality, window lgwin, size_hint 0 if unknown): true, or false when out of
 * memory. */
static bool br_start(struct brenc *e, int quality, int lgwin, size_t size_hint)
{
    jmp_buf fail;
    *e = (struct brenc){.fail = &fail};
    if (setjmp(fail)) {
        br_drop(e);
        return false;
    }
    e->s = BrotliEncoderCreateInstance(br_alloc, br_free, e);
    e->fail = NULL;
    if (!e->s)
        return false;
    BrotliEncoderSetParameter(e->s, BROTLI_PARAM_QUALITY, (uint32_t)quality);
    BrotliEncoderSetParameter(e->s, BROTLI_PARAM_LGWIN, (uint32_t)lgwin);
    if (size_hint && size_hint <= (1u << 30))
        BrotliEncoderSetParameter(e->s, BROTLI_PARAM_SIZE_HINT, (uint32_t)size_hint);
    return true;
}

/* BrotliEncoderCompressStream, guarded: false on an error or when out of memory (then the
 * encoder is gone). */
static bool br_guard(struct brenc *e, BrotliEncoderOperation op, size_t *avail_in,
                     const uint8_t **next_in, size_t *avail_out, uint8_t **next_out)
{
    jmp_buf fail;
    e->fail = &fail;
    if (setjmp(fail)) {
        br_drop(e);
        return false;
    }
    BROTLI_BOOL ok =
        BrotliEncoderCompressStream(e->s, op, avail_in, next_in, avail_out, next_out, NULL);
    e->fail = NULL;
    return ok;
}

static int on_run(void *ud)
{
    struct compress *c = ud;
    c->nworkers = coil_worker_count();
    c->gz = calloc(c->nworkers, sizeof(*c->gz));
    if (!c->gz) {
        fprintf(stderr, "coil: compress: out of memory\n");
        return -1;
    }
    return 0;
}

static void on_worker_stop(unsigned worker, void *ud)
{
    struct compress *c = ud;
    if (!c->gz || worker >= c->nworkers || !c->gz[worker])
        return;
    deflateEnd(&c->gz[worker]->z);
    coil_free(c->gz[worker]);
    c->gz[worker] = NULL;
}

static void compress_free(void *ud)
{
    struct compress *c = ud;
    free(c->gz);
    free(c->types);
    free(c->types_text);
    free(c);
}

/* This worker's gzip encoder, reset for a new body; NULL if out of memory. */
static z_stream *worker_gzip(struct compress *c)
{
    unsigned id = coil_worker_id();
    if (!c->gz || id >= c->nworkers)
        return NULL;
    struct wgzip *g = c->gz[id];
    if (g)
        return deflateReset(&g->z) == Z_OK ? &g->z : NULL;
    g = coil_malloc(sizeof(*g));
    if (!g)
        return NULL;
    memset(g, 0, sizeof(*g));
    g->z.zalloc = z_alloc;
    g->z.zfree = z_free;
    if (deflateInit2(&g->z, c->gzip_level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
        coil_free(g);
        return NULL;
    }
    c->gz[id] = g;
    return &g->z;
}

/* ---- whole bodies ----------------------------------------------------------------------- */

/* The smallest brotli window (lgwin 10-24) that holds len bytes. */
static int br_window(size_t len)
{
    int w = BROTLI_MIN_WINDOW_BITS;
    while (w < BROTLI_MAX_WINDOW_BITS && ((size_t)1 << w) - 16 < len)
        w++;
    return w;
}

/* Compresses body into out (cap bytes); the length made, or 0 if it did not fit or failed. */
static size_t compress_whole(struct compress *c, enum coil__coding coding, struct coil_str body,
                             uint8_t *out, size_t cap)
{
    if (coding == COIL__BR) {
        struct brenc e;
        if (!br_start(&e, c->br_level, br_window(body.len), body.len))
            return 0;
        const uint8_t *in = (const uint8_t *)body.ptr;
        size_t avail_in = body.len, avail_out = cap;
        bool ok = br_guard(&e, BROTLI_OPERATION_FINISH, &avail_in, &in, &avail_out, &out);
        ok = ok && BrotliEncoderIsFinished(e.s);
        br_end(&e);
        return ok ? cap - avail_out : 0;
    }
    z_stream *z = worker_gzip(c);
    if (!z || body.len > UINT32_MAX || cap > UINT32_MAX)
        return 0;
    z->next_in = (Bytef *)body.ptr;
    z->avail_in = (uInt)body.len;
    z->next_out = out;
    z->avail_out = (uInt)cap;
    return deflate(z, Z_FINISH) == Z_STREAM_END ? cap - z->avail_out : 0;
}

/* ---- streamed bodies -------------------------------------------------------------------- */

static void end_stream(struct stream *s)
{
    if (!s->open)
        return;
    if (s->coding == COIL__BR)
        br_end(&s->br);
    else
        deflateEnd(&s->z);
    s->open = false;
}

static int start_stream(struct compress *c, struct stream *s)
{
    if (s->coding == COIL__BR) {
        int q = c->br_level < STREAM_BR_MAX_QUALITY ? c->br_level : STREAM_BR_MAX_QUALITY;
        if (!br_start(&s->br, q, STREAM_BR_LGWIN, 0))
            return -ENOMEM;
    } else {
        s->z = (z_stream){.zalloc = z_alloc, .zfree = z_free};
        if (deflateInit2(&s->z, c->gzip_level, Z_DEFLATED, STREAM_GZIP_WBITS + 16,
                         STREAM_GZIP_MEMLEVEL, Z_DEFAULT_STRATEGY) != Z_OK)
            return -ENOMEM;
    }
    s->open = true;
    return 0;
}

/* Feeds a piece to deflate and passes on all it makes (flush: Z_SYNC_FLUSH or Z_FINISH). */
static int stream_gzip(struct coil_res *res, z_stream *z, const void *data, size_t len, int flush)
{
    unsigned char out[16384];
    z->next_in = (Bytef *)data;
    z->avail_in = (uInt)len;
    do {
        z->next_out = out;
        z->avail_out = sizeof(out);
        int rc = deflate(z, flush);
        if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
            return -EIO;
        size_t n = sizeof(out) - z->avail_out;
        int err = n ? coil_res_emit(res, out, n) : 0;
        if (err < 0)
            return err;
    } while (z->avail_out == 0 || z->avail_in);
    return 0;
}

static int stream_br(struct coil_res *res, struct brenc *e, const void *data, size_t len, bool last)
{
    BrotliEncoderOperation op = last ? BROTLI_OPERATION_FINISH : BROTLI_OPERATION_FLUSH;
    const uint8_t *next = data;
    size_t avail = len;
    do {
        size_t none = 0; /* the output is taken from the encoder's own buffer below */
        if (!br_guard(e, op, &avail, &next, &none, NULL))
            return -EIO;
        size_t n;
        const uint8_t *out = BrotliEncoderTakeOutput(e->s, &n);
        int err = n ? coil_res_emit(res, out, n) : 0;
        if (err < 0)
            return err;
    } while (avail || BrotliEncoderHasMoreOutput(e->s) || (last && !BrotliEncoderIsFinished(e->s)));
    return 0;
}

static int on_piece(struct coil_res *res, const void *data, size_t len, bool last, void *ud)
{
    struct stream *s = ud;
    if (!s->open)
        return -EIO;
    if (!len && !last)
        return 0; /* nothing to flush */
    if (len > UINT32_MAX)
        return -EMSGSIZE;
    int err = s->coding == COIL__BR
                  ? stream_br(res, &s->br, data, len, last)
                  : stream_gzip(res, &s->z, data, len, last ? Z_FINISH : Z_SYNC_FLUSH);
    if (last || err < 0)
        end_stream(s);
    return err;
}

/* ---- the steps -------------------------------------------------------------------------- */

/* Whether a comma-list header value has token (case-insensitive; parameters after '='
 * ignored). */
static bool has_token(struct coil_str v, const char *token)
{
    size_t i = 0;
    while (i < v.len) {
        size_t start = i;
        while (i < v.len && v.ptr[i] != ',')
            i++;
        size_t end = i++;
        while (start < end && coil__is_ows(v.ptr[start]))
            start++;
        size_t tl = 0;
        while (start + tl < end && coil__is_tchar((unsigned char)v.ptr[start + tl]))
            tl++;
        if (coil__eq_nocase(v.ptr + start, tl, token))
            return true;
    }
    return false;
}

static bool type_listed(const struct compress *c, struct coil_str ct)
{
    size_t n = 0;
    while (n < ct.len && ct.ptr[n] != ';' && !coil__is_ows(ct.ptr[n]))
        n++;
    for (size_t i = 0; i < c->ntypes; i++)
        if (c->types[i].len <= n && !strncasecmp(ct.ptr, c->types[i].ptr, c->types[i].len))
            return true;
    return false;
}

/* Whether this response could be compressed for some client: the same answer whatever the
 * request's Accept-Encoding, so it decides Vary too. */
static bool compressible(const struct compress *c, const struct coil_req *req,
                         const struct coil_res *res)
{
    int status = coil_res_status_get(res);
    if (status < 200 || status == 204 || status == 206 || status == 304)
        return false;
    if (coil__eq_nocase(coil_req_method(req).ptr, coil_req_method(req).len, "HEAD"))
        return false;
    if (coil_res_header_get(res, "Content-Encoding").ptr ||
        coil_res_header_get(res, "Content-Range").ptr ||
        has_token(coil_res_header_get(res, "Cache-Control"), "no-transform"))
        return false;
    if (!type_listed(c, coil_res_header_get(res, "Content-Type")))
        return false;
    return coil_res_streamed(res) || coil_res_body_get(res).len >= c->min_bytes;
}

/* Vary: Accept-Encoding, merged into a Vary the handler set. */
static int add_vary(struct coil_req *req, struct coil_res *res)
{
    static const char ae[] = "Accept-Encoding";
    struct coil_str v = coil_res_header_get(res, "Vary");
    if (!v.ptr)
        return coil_res_header(res, "Vary", ae);
    if (has_token(v, ae) || has_token(v, "*"))
        return 0;
    size_t n = v.len + 2 + sizeof(ae) - 1;
    char *merged = coil_req_alloc(req, n);
    if (!merged)
        return -ENOMEM;
    memcpy(merged, v.ptr, v.len);
    memcpy(merged + v.len, ", ", 2);
    memcpy(merged + v.len + 2, ae, sizeof(ae) - 1);
    coil_res_header_remove(res, "Vary");
    return coil_res_headern(res, "Vary", 4, merged, n);
}

/* A strong ETag names the identity bytes; the compressed ones get its weak form. */
static void weaken_etag(struct coil_req *req, struct coil_res *res)
{
    struct coil_str e = coil_res_header_get(res, "ETag");
    if (!e.ptr || (e.len >= 2 && e.ptr[0] == 'W' && e.ptr[1] == '/'))
        return;
    char *weak = coil_req_alloc(req, e.len + 2);
    if (!weak) {
        coil_res_header_remove(res, "ETag"); /* better none than a wrong strong one */
        return;
    }
    memcpy(weak, "W/", 2);
    memcpy(weak + 2, e.ptr, e.len);
    coil_res_header_remove(res, "ETag");
    coil_res_headern(res, "ETag", 4, weak, e.len + 2); /* if that fails, it stays removed */
}

static const char *coding_name(enum coil__coding c)
{
    return c == COIL__BR ? "br" : "gzip";
}

static void compress_body(struct compress *c, struct coil_req *req, struct coil_res *res,
                          enum coil__coding coding)
{
    struct coil_str body = coil_res_body_get(res);
    /* Only a smaller result is worth sending, and nothing is smaller than one byte (a
     * --compress-min-bytes of 0 lets such bodies through). */
    if (body.len < 2)
        return;
    size_t cap = body.len - 1;
    uint8_t *out = coil_req_alloc(req, cap);
    if (!out)
        return; /* sent as it is */
    size_t n = compress_whole(c, coding, body, out, cap);
    if (!n || coil_res_header(res, "Content-Encoding", coding_name(coding)) < 0)
        return;
    coil_res_body_static(res, out, n); /* arena memory: lives until the response is sent */
    weaken_etag(req, res);
}

static void compress_stream(struct compress *c, struct coil_req *req, struct coil_res *res,
                            enum coil__coding coding)
{
    struct stream *s = coil_req_alloc(req, sizeof(*s));
    if (!s)
        return;
    memset(s, 0, sizeof(*s));
    s->coding = coding;
    if (coil_req_set(req, c, s) < 0 || start_stream(c, s) < 0)
        return;
    if (coil_res_header(res, "Content-Encoding", coding_name(coding)) < 0) {
        end_stream(s);
        return;
    }
    if (coil_res_filter(res, on_piece, s) < 0) { /* another filter was there first */
        coil_res_header_remove(res, "Content-Encoding");
        end_stream(s);
        return;
    }
    weaken_etag(req, res);
}

/* The request's codings, from every Accept-Encoding line; none: identity. */
static enum coil__coding negotiate(const struct compress *c, const struct coil_req *req,
                                   bool stream)
{
    struct coil__accept a;
    coil__accept_init(&a);
    bool any = false;
    size_t n = coil_req_header_count(req);
    for (size_t i = 0; i < n; i++) {
        struct coil_str name, value;
        if (coil_req_header_at(req, i, &name, &value) == 0 &&
            coil__eq_nocase(name.ptr, name.len, "Accept-Encoding")) {
            coil__accept_parse(&a, value.ptr, value.len);
            any = true;
        }
    }
    if (!any)
        return COIL__IDENTITY;
    enum coil__coding order[COIL__NCODINGS - 1];
    memcpy(order, c->order, c->ncodings * sizeof(order[0]));
    if (stream && c->ncodings == 2 && order[0] == COIL__BR) {
        order[0] = COIL__GZIP; /* see the file comment */
        order[1] = COIL__BR;
    }
    return coil__accept_choose(&a, order, c->ncodings);
}

static void on_after(struct coil_req *req, struct coil_res *res, void *ud)
{
    struct compress *c = ud;
    if (!compressible(c, req, res) || add_vary(req, res) < 0)
        return;
    bool stream = coil_res_streamed(res);
    enum coil__coding coding = negotiate(c, req, stream);
    if (coding == COIL__IDENTITY)
        return;
    if (stream)
        compress_stream(c, req, res, coding);
    else
        compress_body(c, req, res, coding);
}

/* A stream cut short never gets its filter's last call: its encoder ends here. */
static void on_done(struct coil_req *req, const struct coil_done *d, void *ud)
{
    (void)d;
    struct stream *s = coil_req_get(req, ud);
    if (s)
        end_stream(s);
}

/* ---- making one ------------------------------------------------------------------------- */

/* coil_mw_compress with o's levels taken as they are (br_level 0 is brotli's quality 0). */
static int make(struct coil_app *app, const struct coil_compress_opts *o, struct coil_mw *out)
{
    struct compress *c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    int err = 0;
    if (parse_encodings(o->encodings ? o->encodings : DEFAULT_ENCODINGS, c->order, &c->ncodings) <
        0) {
        fprintf(stderr, "coil: compress: encodings '%s' is not a list of br and gzip\n",
                o->encodings);
        err = -EINVAL;
    } else if (o->gzip_level < 1 || o->gzip_level > 9 || o->br_level < 0 || o->br_level > 11) {
        fprintf(stderr, "coil: compress: levels are 1-9 for gzip and 0-11 for br\n");
        err = -EINVAL;
    } else if ((err = parse_types(c, o->types ? o->types : DEFAULT_TYPES)) == -EINVAL) {
        fprintf(stderr, "coil: compress: types '%s' is not a list of media type prefixes\n",
                o->types);
    }
    c->gzip_level = o->gzip_level;
    c->br_level = o->br_level;
    c->min_bytes = o->min_bytes;
    if (err == 0 && coil_app_on_run(app, NULL, compress_free, c) < 0)
        err = -ENOMEM;
    if (err < 0) {
        compress_free(c);
        return err;
    }
    /* From here c belongs to the clean-up hook, which runs however coil_app_run ends. */
    if (coil_app_on_run(app, on_run, NULL, c) < 0 ||
        coil_app_on_worker(app, NULL, on_worker_stop, c) < 0)
        return -ENOMEM;
    *out = (struct coil_mw){.name = "compress", .after = on_after, .done = on_done, .ud = c};
    return 0;
}

int coil_mw_compress(struct coil_app *app, const struct coil_compress_opts *o, struct coil_mw *out)
{
    if (!app || !o || !out)
        return -EINVAL;
    struct coil_compress_opts d = *o;
    if (!d.gzip_level)
        d.gzip_level = DEFAULT_GZIP_LEVEL;
    if (!d.br_level)
        d.br_level = DEFAULT_BR_LEVEL;
    if (!d.min_bytes)
        d.min_bytes = DEFAULT_MIN_BYTES;
    return make(app, &d, out);
}

/* ---- the engine options ----------------------------------------------------------------- */

/* What the flags said. Option values are argv or environment strings, which outlive the run;
 * set at option parsing on the main thread, read by install just after. */
static struct {
    const char *encodings; /* NULL: off */
    int gzip_level, br_level;
    uint32_t min_bytes;
    const char *types;
} flags;

static int set_encodings(const char *value, void *ud)
{
    (void)ud;
    enum coil__coding order[COIL__NCODINGS - 1];
    size_t n;
    if (!strcmp(value, "off")) {
        flags.encodings = NULL;
        return 0;
    }
    if (parse_encodings(value, order, &n) < 0) {
        fprintf(stderr, "coil: --compress takes br, gzip or both, comma-separated, or off\n");
        return -EINVAL;
    }
    flags.encodings = value;
    return 0;
}

/* A decimal level from lo to hi into *out. */
static int set_level(const char *value, int lo, int hi, int *out)
{
    uint64_t v;
    if (coil__parse_count(value, &v) < 0 || v < (uint64_t)lo || v > (uint64_t)hi)
        return -EINVAL;
    *out = (int)v;
    return 0;
}

static int set_gzip_level(const char *value, void *ud)
{
    (void)ud;
    if (set_level(value, 1, 9, &flags.gzip_level) == 0)
        return 0;
    fprintf(stderr, "coil: --compress-level-gzip takes a level from 1 to 9\n");
    return -EINVAL;
}

static int set_br_level(const char *value, void *ud)
{
    (void)ud;
    if (set_level(value, 0, 11, &flags.br_level) == 0)
        return 0;
    fprintf(stderr, "coil: --compress-level-br takes a quality from 0 to 11\n");
    return -EINVAL;
}

/* BYTES as the engine's own options take them: digits and an optional K, M or G (binary). */
static int set_min_bytes(const char *value, void *ud)
{
    (void)ud;
    size_t n = strlen(value);
    unsigned shift = 0;
    if (n && strchr("kKmMgG", value[n - 1]))
        shift = strchr("kK", value[n - 1]) ? 10 : strchr("mM", value[n - 1]) ? 20 : 30;
    char digits[24];
    if (shift)
        n--;
    if (n == 0 || n >= sizeof(digits)) {
        fprintf(stderr, "coil: --compress-min-bytes takes a size below 4G\n");
        return -EINVAL;
    }
    memcpy(digits, value, n);
    digits[n] = 0;
    uint64_t v;
    if (coil__parse_count(digits, &v) < 0 || v > (UINT32_MAX >> shift)) {
        fprintf(stderr, "coil: --compress-min-bytes takes a size below 4G\n");
        return -EINVAL;
    }
    flags.min_bytes = (uint32_t)(v << shift);
    return 0;
}

static int set_types(const char *value, void *ud)
{
    (void)ud;
    struct compress probe = {0};
    int err = parse_types(&probe, value);
    free(probe.types);
    free(probe.types_text);
    if (err == -EINVAL)
        fprintf(stderr, "coil: --compress-types takes media type prefixes, comma-separated\n");
    if (err < 0)
        return err;
    flags.types = value;
    return 0;
}

int coil__compress_setup(struct coil_app *app)
{
    flags.encodings = NULL;
    flags.gzip_level = DEFAULT_GZIP_LEVEL;
    flags.br_level = DEFAULT_BR_LEVEL;
    flags.min_bytes = DEFAULT_MIN_BYTES;
    flags.types = DEFAULT_TYPES;
    int err = 0;
    err |= coil_app_option(app, "compress", "COIL_COMPRESS", "LIST",
                           "compress responses with these codings, most preferred first (br, "
                           "gzip), or off [off]",
                           set_encodings, NULL);
    err |= coil_app_option(app, "compress-level-gzip", "COIL_COMPRESS_LEVEL_GZIP", "N",
                           "gzip level, 1-9 [" XSTR(DEFAULT_GZIP_LEVEL) "]", set_gzip_level, NULL);
    err |= coil_app_option(app, "compress-level-br", "COIL_COMPRESS_LEVEL_BR", "N",
                           "brotli quality, 0-11 [" XSTR(DEFAULT_BR_LEVEL) "]", set_br_level, NULL);
    err |=
        coil_app_option(app, "compress-min-bytes", "COIL_COMPRESS_MIN_BYTES", "BYTES",
                        "smaller whole bodies are sent uncompressed [" XSTR(DEFAULT_MIN_BYTES) "]",
                        set_min_bytes, NULL);
    err |= coil_app_option(app, "compress-types", "COIL_COMPRESS_TYPES", "LIST",
                           "media type prefixes to compress [" DEFAULT_TYPES "]", set_types, NULL);
    return err ? -ENOMEM : 0;
}

int coil__compress_install(struct coil_app *app)
{
    if (!flags.encodings)
        return 0;
    struct coil_compress_opts o = {.encodings = flags.encodings,
                                   .gzip_level = flags.gzip_level,
                                   .br_level = flags.br_level,
                                   .min_bytes = flags.min_bytes,
                                   .types = flags.types};
    struct coil_mw mw;
    int err = make(app, &o, &mw);
    if (err == 0 && coil__use_builtin(app, &mw) < 0)
        err = -ENOMEM;
    if (err == -ENOMEM)
        fprintf(stderr, "coil: compress: out of memory\n");
    return err < 0 ? -1 : 0;
}
