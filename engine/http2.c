/* SPDX-License-Identifier: MIT */
/*
 * http2.c: HTTP/2 (RFC 9113) as a second codec beside http1.c, on libnghttp2 in memory mode.
 *
 * The transport hands us bytes (on_data); nghttp2_session_mem_recv decodes frames and HPACK and
 * calls back per header, per DATA chunk and per frame. We gather each stream's head into memory
 * of its own, and once a request is complete (or, for early and streaming routes, once its head
 * is) it joins the connection's ready list; the list is dispatched to the request layer after
 * mem_recv returns, so no handler ever runs inside an nghttp2 callback. Responses are submitted
 * to nghttp2 and serialised by nghttp2_session_send straight into the connection's send buffer
 * (send_callback, and send_data_callback for DATA payloads, which copies the body once from
 * where it lies). A whole response's body is borrowed from the request's arena while it is
 * sent at once; whatever flow control holds back is copied into the stream's own buffer.
 *
 * A stream is a request: struct h2s lives from its HEADERS to nghttp2's on_stream_close. Its
 * request (struct coil__rq) points at it through rq->h2s while the response is not yet queued
 * whole; the pointer is cleared on both sides when it is, or when the stream dies (a reset by the
 * client aborts the request, on_abort runs once).
 *
 * Re-entrancy: the handler code a response wakes may submit frames for other streams while we
 * are inside nghttp2 (an abort callback finishing another request). Sends asked for while inside
 * (h->depth) are run at the end of the batch (on_resume); the session itself is freed only when
 * no call into it is on the stack (h->busy).
 *
 * Abuse: nghttp2 limits SETTINGS entries, queued acknowledgements (PING/SETTINGS floods of a
 * client that does not read), CONTINUATION frames per header block and the rate of stream
 * resets (rapid reset); we count PING, SETTINGS, PRIORITY and empty DATA frames per second
 * (--h2-max-control), cap the header list, and reset streams whose response waits on a zero
 * window longer than --write-timeout. An abusive connection gets GOAWAY and is closed; every
 * case is counted in coil_h2_abuse_total{kind}.
 */
#include <errno.h>
#include <nghttp2/nghttp2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- options ---------------------------------------------------------------------------- */

struct coil__h2cfg {
    bool off;             /* --http2 off */
    int h2c_port;         /* --h2c-port; -1: none */
    uint32_t max_streams; /* SETTINGS_MAX_CONCURRENT_STREAMS */
    uint32_t header_list; /* SETTINGS_MAX_HEADER_LIST_SIZE; 0: --max-header-bytes */
    uint32_t hpack_table; /* SETTINGS_HEADER_TABLE_SIZE (our decoder's) */
    uint32_t window;      /* SETTINGS_INITIAL_WINDOW_SIZE */
    uint32_t max_control; /* PING, SETTINGS, PRIORITY, empty DATA per second, each */
    uint64_t reset_burst; /* rapid reset: nghttp2's token bucket */
    uint64_t reset_rate;  /* per second */
    nghttp2_session_callbacks *cbs;
    nghttp2_option *opt;
};

static int set_uint(const char *v, uint32_t *out, uint64_t min, uint64_t max, bool size)
{
    uint64_t n;
    if ((size ? coil__parse_size(v, &n) : coil__parse_count(v, &n)) < 0 || n < min || n > max)
        return -1;
    *out = (uint32_t)n;
    return 0;
}

static int set_http2(const char *v, void *ud)
{
    int b = coil__parse_bool(v);
    if (b < 0)
        return -1;
    ((struct coil__h2cfg *)ud)->off = !b;
    return 0;
}

static int set_port(const char *v, void *ud)
{
    uint32_t p;
    if (set_uint(v, &p, 0, 65535, false) < 0)
        return -1;
    ((struct coil__h2cfg *)ud)->h2c_port = (int)p;
    return 0;
}

static int set_streams(const char *v, void *ud)
{
    return set_uint(v, &((struct coil__h2cfg *)ud)->max_streams, 1, 10000, false);
}

static int set_header_list(const char *v, void *ud)
{
    return set_uint(v, &((struct coil__h2cfg *)ud)->header_list, 256, 1u << 20, true);
}

static int set_hpack(const char *v, void *ud)
{
    return set_uint(v, &((struct coil__h2cfg *)ud)->hpack_table, 0, 1u << 20, true);
}

static int set_window(const char *v, void *ud)
{
    return set_uint(v, &((struct coil__h2cfg *)ud)->window, 1024, (1u << 31) - 1, true);
}

static int set_control(const char *v, void *ud)
{
    return set_uint(v, &((struct coil__h2cfg *)ud)->max_control, 10, 1000000, false);
}

static int set_reset_burst(const char *v, void *ud)
{
    uint32_t n;
    if (set_uint(v, &n, 1, 1000000, false) < 0)
        return -1;
    ((struct coil__h2cfg *)ud)->reset_burst = n;
    return 0;
}

static int set_reset_rate(const char *v, void *ud)
{
    uint32_t n;
    if (set_uint(v, &n, 1, 1000000, false) < 0)
        return -1;
    ((struct coil__h2cfg *)ud)->reset_rate = n;
    return 0;
}

int coil__h2_setup(struct coil_app *app)
{
    struct coil__h2cfg *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return -ENOMEM;
    cfg->h2c_port = -1;
    cfg->max_streams = 100;
    cfg->hpack_table = 4096;
    cfg->window = 256 * 1024;
    cfg->max_control = 1000;
    cfg->reset_burst = 1000;
    cfg->reset_rate = 33;
    app->h2 = cfg;
    if (coil_app_option(app, "http2", "COIL_HTTP2", "on|off",
                        "HTTP/2: h2 by ALPN on --tls-port, h2c prior knowledge on --port [on]",
                        set_http2, cfg) < 0 ||
        coil_app_option(app, "h2c-port", "COIL_H2C_PORT", "N",
                        "a port that speaks only cleartext HTTP/2 (0 picks one) [off]", set_port,
                        cfg) < 0 ||
        coil_app_option(app, "h2-max-streams", "COIL_H2_MAX_STREAMS", "N",
                        "concurrent streams per HTTP/2 connection [100]", set_streams, cfg) < 0 ||
        coil_app_option(app, "h2-max-header-list", "COIL_H2_MAX_HEADER_LIST", "BYTES",
                        "an HTTP/2 request's header list, decoded (431 beyond) "
                        "[--max-header-bytes]",
                        set_header_list, cfg) < 0 ||
        coil_app_option(app, "h2-hpack-table", "COIL_H2_HPACK_TABLE", "BYTES",
                        "HPACK dynamic table a client may make us keep [4096]", set_hpack,
                        cfg) < 0 ||
        coil_app_option(app, "h2-window", "COIL_H2_WINDOW", "BYTES",
                        "request body bytes a client may send per stream before we read them "
                        "[256K]",
                        set_window, cfg) < 0 ||
        coil_app_option(app, "h2-max-control", "COIL_H2_MAX_CONTROL", "N",
                        "PING, SETTINGS, PRIORITY and empty DATA frames a connection may send per "
                        "second, each (then GOAWAY) [1000]",
                        set_control, cfg) < 0 ||
        coil_app_option(app, "h2-reset-burst", "COIL_H2_RESET_BURST", "N",
                        "stream resets a client may make at once (rapid reset) [1000]",
                        set_reset_burst, cfg) < 0 ||
        coil_app_option(app, "h2-reset-rate", "COIL_H2_RESET_RATE", "N",
                        "stream resets per second once the burst is spent [33]", set_reset_rate,
                        cfg) < 0)
        return -ENOMEM;
    return 0;
}

static void set_callbacks(nghttp2_session_callbacks *cbs);

int coil__h2_install(struct coil_app *app)
{
    struct coil__h2cfg *cfg = app->h2;
    if (cfg->off && cfg->h2c_port >= 0) {
        fprintf(stderr, "coil: --h2c-port needs HTTP/2 (--http2 is off)\n");
        return -1;
    }
    if (cfg->h2c_port > 0 && cfg->h2c_port == app->cfg.port) {
        fprintf(stderr,
                "coil: --h2c-port %d is --port too: the plain port already takes h2c "
                "with prior knowledge\n",
                cfg->h2c_port);
        return -1;
    }
    if (!cfg->header_list)
        cfg->header_list = app->cfg.lim.max_header_bytes;
    if (nghttp2_session_callbacks_new(&cfg->cbs) || nghttp2_option_new(&cfg->opt)) {
        fprintf(stderr, "coil: out of memory\n");
        return -1;
    }
    set_callbacks(cfg->cbs);
    nghttp2_option_set_no_auto_window_update(cfg->opt, 1);
    nghttp2_option_set_max_outbound_ack(cfg->opt, 1000);
    nghttp2_option_set_max_settings(cfg->opt, 32);
    nghttp2_option_set_max_continuations(cfg->opt, 8);
    /* Ours (count_reset) stops first; nghttp2's stays as a backstop. */
    nghttp2_option_set_stream_reset_rate_limit(cfg->opt, cfg->reset_burst * 2, cfg->reset_rate * 2);
    nghttp2_option_set_max_deflate_dynamic_table_size(cfg->opt, 4096);
    return 0;
}

void coil__h2_free(struct coil_app *app)
{
    struct coil__h2cfg *cfg = app->h2;
    if (!cfg)
        return;
    if (cfg->cbs)
        nghttp2_session_callbacks_del(cfg->cbs);
    if (cfg->opt)
        nghttp2_option_del(cfg->opt);
    free(cfg);
    app->h2 = NULL;
}

bool coil__h2_on(const struct coil_app *app)
{
    return app->h2 && !app->h2->off;
}

int coil__h2c_port(const struct coil_app *app)
{
    return app->h2 && !app->h2->off ? app->h2->h2c_port : -1;
}

void coil__h2c_set_port(struct coil_app *app, uint16_t port)
{
    app->h2->h2c_port = port;
}

/* ---- state ------------------------------------------------------------------------------ */

enum {
    ABUSE_RESET,
    ABUSE_CONT,
    ABUSE_PING,
    ABUSE_SETTINGS,
    ABUSE_PRIORITY,
    ABUSE_EMPTY,
    ABUSE_STALL,
    ABUSE_STREAMS,
    ABUSE_PROTOCOL
};
const char *const coil__h2_abuse_kinds[COIL_H2_ABUSE_KINDS] = {
    "rapid_reset", "continuation", "ping",        "settings", "priority",
    "empty_data",  "stall",        "max_streams", "protocol",
};

struct h2hdr {
    uint32_t no, nl, vo, vl; /* offsets and lengths in the header block's bytes */
};

/* One stream: a request, and its response while any of it waits to be sent. */
struct coil__h2s {
    struct coil__h2s *prev, *next; /* the connection's streams */
    struct coil__h2s *ready_next;  /* on the ready list */
    struct coil__h2 *h;
    struct coil__rq *rq; /* its request, until the response is queued whole */
    int32_t id;
    bool ready;      /* on the ready list */
    bool dispatched; /* handed to the request layer */
    bool dead;       /* closed while on the ready list: freed when the list reaches it */
    bool end_in;     /* the client's END_STREAM arrived */
    bool answered;   /* an answer was submitted (the request layer's or ours) */
    bool head;       /* HEAD */
    bool body_on;    /* a streaming (on_body) route: pieces go to it as they arrive */
    bool early;      /* an early route: dispatched at its head; body pieces go to the reader */
    bool out_eof;    /* no more response body will come */
    bool out_owned;  /* out points into own */
    int mr;          /* the route match: 0, -404 or -405 */
    struct coil__http_req http;
    struct coil__match match;
    char *bytes; /* the head: strings and header array (one allocation) */
    size_t bytes_len;
    char *body; /* a buffered route's body */
    size_t body_len, body_cap;
    uint64_t body_max;
    uint64_t wire;
    uint64_t seen;        /* body bytes received */
    uint64_t stall_since; /* ms: response data waiting on a closed window since */
    const char *out;      /* response body bytes not yet framed: out[out_off..out_len) */
    size_t out_off, out_len;
    char *own; /* the stream's copy of what waits */
    size_t own_cap;
    _Alignas(16) unsigned char state[COIL_REQ_STATE_BYTES];
};

struct coil__h2 {
    nghttp2_session *s;
    struct coil__worker *w;
    struct coil_conn *c;
    struct coil__h2s *streams;
    struct coil__h2s *ready, **ready_tail;
    struct coil__h2s *running; /* being dispatched: the request layer reads its head meanwhile */
    uint32_t nstreams;
    uint32_t depth;      /* inside nghttp2 */
    uint32_t busy;       /* calls that must find h alive */
    bool dead;           /* the connection went: free when busy drops to 0 */
    bool want_send;      /* a send was asked for inside nghttp2 */
    bool closing;        /* GOAWAY for abuse or error queued: input ignored */
    bool drain_sent;     /* the final GOAWAY of a drain */
    bool counted;        /* abuse counted */
    bool own_term;       /* the GOAWAY with an error is ours (terminate), not nghttp2's */
    uint8_t last_ctl;    /* the last PING (0) or SETTINGS (1) received: a flood's kind */
    int8_t abuse;        /* the abuse kind that made us send GOAWAY, or -1 */
    uint32_t nwant;      /* streams whose writer waits for room */
    uint64_t rst_tokens; /* resets the client may still make, in thousandths (a token bucket) */
    uint64_t rst_ms;     /* when the bucket was last filled */
    bool goaway_sent;    /* a GOAWAY went out: goaway_last is the lowest last-stream-id sent */
    int32_t goaway_last;
    size_t burst; /* bytes serialised since the send buffer was last empty */
    size_t hint;  /* the last such burst: the size a new send buffer starts at */
    /* the header block being received */
    char *hb;
    uint32_t hb_len, hb_cap;
    struct h2hdr *hv;
    uint32_t hv_n, hv_cap;
    struct h2hdr p_method, p_path, p_authority, p_scheme;
    bool hb_over;    /* over the header list limit */
    bool hb_trailer; /* a trailer section: dropped */
    uint32_t hb_size;
    /* Client streams opened lately: the highest id, and a bit per odd id below it (bit i: id
     * max_id - 2i was opened), to tell a HEADERS on an id the client skipped (RFC 9113 5.1.1: a
     * connection error) from trailers of a stream we reset, which nghttp2 cannot. */
    int32_t max_id;
    uint64_t opened[2];
    /* control frames in the current second */
    uint64_t win_ms;
    uint32_t nctl[4]; /* PING, SETTINGS, PRIORITY, empty DATA */
};

/* nghttp2's allocations come from the worker's arena. */
static void *m_malloc(size_t n, void *ud)
{
    return coil__walloc(ud, n);
}
static void m_free(void *p, void *ud)
{
    coil__wfree(ud, p);
}
static void *m_calloc(size_t n, size_t sz, void *ud)
{
    return coil__wcalloc(ud, n * sz);
}
static void *m_realloc(void *p, size_t n, void *ud)
{
    return coil__wrealloc(ud, p, n);
}

static void count_abuse(struct coil__h2 *h, int kind)
{
    if (h->counted)
        return;
    h->counted = true;
    STAT_INC(h->w, h2_abuse[kind]);
    coil__debug("h2: connection closed for %s", coil__h2_abuse_kinds[kind]);
}

/* GOAWAY with code; the connection closes once it is sent. */
static void terminate(struct coil__h2 *h, int kind, uint32_t code)
{
    if (kind >= 0) {
        h->abuse = (int8_t)kind;
        count_abuse(h, kind);
    }
    h->closing = true;
    h->own_term = true;
    nghttp2_session_terminate_session(h->s, code);
}

/* ---- streams ---------------------------------------------------------------------------- */

static void stream_unlink(struct coil__h2 *h, struct coil__h2s *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else
        h->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    st->prev = st->next = NULL;
    h->nstreams--;
}

static void stream_mem_free(struct coil__worker *w, struct coil__h2s *st)
{
    coil__wfree(&w->wa, st->bytes);
    coil__wfree(&w->wa, st->body);
    coil__wfree(&w->wa, st->own);
    coil__wfree(&w->wa, st);
}

static void stream_free(struct coil__h2 *h, struct coil__h2s *st)
{
    stream_unlink(h, st);
    stream_mem_free(h->w, st);
}

/* The ids of the open streams pick() chooses, for loops that call out (a callback may close any
 * stream): each is looked up again before use. Returns the count; *ids is ids_stack or a heap
 * array the caller frees with ids_free. */
static uint32_t stream_ids(struct coil__h2 *h, bool (*pick)(const struct coil__h2s *),
                           int32_t *ids_stack, uint32_t cap, int32_t **ids)
{
    *ids = ids_stack;
    if (h->nstreams > cap) {
        int32_t *heap = coil__walloc(&h->w->wa, h->nstreams * sizeof(*heap));
        if (heap) {
            *ids = heap;
            cap = h->nstreams;
        }
    }
    uint32_t n = 0;
    for (struct coil__h2s *st = h->streams; st && n < cap; st = st->next)
        if (pick(st))
            (*ids)[n++] = st->id;
    return n;
}

static void ids_free(struct coil__h2 *h, int32_t *ids, int32_t *ids_stack)
{
    if (ids != ids_stack)
        coil__wfree(&h->w->wa, ids);
}

/* The request dies with its stream (a reset, the connection): on_abort runs once. */
static void stream_abort_rq(struct coil__h2 *h, struct coil__h2s *st)
{
    struct coil__rq *rq = st->rq;
    if (!rq)
        return;
    st->rq = NULL;
    rq->h2s = NULL;
    if (rq->want_writable) {
        rq->want_writable = false;
        h->nwant--;
    }
    coil__request_abort(h->w, rq, 0);
}

static struct coil__h2s *stream_of(struct coil__h2 *h, int32_t id)
{
    return nghttp2_session_get_stream_user_data(h->s, id);
}

/* Copies n bytes into the stream's own buffer, after what waits there. */
static int own_append(struct coil__worker *w, struct coil__h2s *st, const void *data, size_t n)
{
    size_t left = st->out_len - st->out_off;
    if (!st->out_owned || st->out_off == st->out_len) {
        /* Start over at the front (what waits, if borrowed, is copied first). */
        size_t need = left + n;
        if (need > st->own_cap) {
            size_t cap = st->own_cap ? st->own_cap : 4096;
            while (cap < need)
                cap *= 2;
            char *p = coil__walloc(&w->wa, cap);
            if (!p)
                return -ENOMEM;
            if (left)
                memcpy(p, st->out + st->out_off, left);
            coil__wfree(&w->wa, st->own);
            st->own = p;
            st->own_cap = cap;
        } else if (left) {
            memmove(st->own, st->out + st->out_off, left);
        }
    } else if (st->out_len + n > st->own_cap) {
        size_t need = left + n;
        if (st->out_off && need <= st->own_cap) {
            memmove(st->own, st->own + st->out_off, left);
        } else {
            size_t cap = st->own_cap;
            while (cap < need)
                cap *= 2;
            char *p = coil__walloc(&w->wa, cap);
            if (!p)
                return -ENOMEM;
            memcpy(p, st->own + st->out_off, left);
            coil__wfree(&w->wa, st->own);
            st->own = p;
            st->own_cap = cap;
        }
    } else {
        memcpy(st->own + st->out_len, data, n);
        st->out_len += n;
        return 0;
    }
    if (n)
        memcpy(st->own + left, data, n);
    st->out = st->own;
    st->out_owned = true;
    st->out_off = 0;
    st->out_len = left + n;
    return 0;
}

/* ---- sending ---------------------------------------------------------------------------- */

static void check_writable(struct coil__h2 *h);
static void h2_unbusy(struct coil__worker *w, struct coil__h2 *h);

static bool out_full(const struct coil__worker *w, const struct coil_conn *c)
{
    return c->pend && c->pend->len >= w->app->cfg.max_pending_out;
}

/* Serialises what nghttp2 has to send into the connection's buffer. */
static void h2_send(struct coil__h2 *h)
{
    struct coil__worker *w = h->w;
    struct coil_conn *c = h->c;
    if (h->dead)
        return;
    if (h->depth) {
        if (!h->want_send) {
            h->want_send = true;
            coil__conn_schedule(w, c);
        }
        return;
    }
    h->want_send = false;
    h->depth++;
    h->busy++;
    int rv = nghttp2_session_send(h->s);
    h->depth--;
    h->busy--;
    if (h->dead)
        return;
    if (rv < 0) {
        coil__debug("h2: send: %s", nghttp2_strerror(rv));
        coil__conn_abort(w, c);
        return;
    }
    if (h->nwant)
        check_writable(h);
    if (h->dead)
        return;
    if (!nghttp2_session_want_read(h->s) && !nghttp2_session_want_write(h->s)) {
        coil__conn_close_after(w, c);
        return;
    }
    if (coil__conn_queued(c))
        coil__conn_queue_flush(w, c);
}

/*
 * Room for n bytes at the end of the send buffer. Many streams answered in one batch fill it
 * with many frames: a new buffer starts at the size of the last burst (up to max_pending_out)
 * rather than doubling from the pool's size, which would copy what it holds at every step.
 */
static char *out_reserve(struct coil__h2 *h, size_t n)
{
    struct coil_conn *c = h->c;
    if (!c->pend || !c->pend->len) {
        if (h->burst)
            h->hint = h->burst;
        h->burst = 0;
        size_t max = h->w->app->cfg.max_pending_out;
        size_t want = h->hint < max ? h->hint : max;
        if (want > n && !coil__conn_reserve(h->w, c, want))
            return NULL;
    }
    h->burst += n;
    return coil__conn_reserve(h->w, c, n);
}

static ssize_t cb_send(nghttp2_session *s, const uint8_t *data, size_t len, int flags, void *ud)
{
    (void)s;
    (void)flags;
    struct coil__h2 *h = ud;
    if (out_full(h->w, h->c))
        return NGHTTP2_ERR_WOULDBLOCK;
    char *p = out_reserve(h, len);
    if (!p)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    memcpy(p, data, len);
    h->c->pend->len += len;
    return (ssize_t)len;
}

static int cb_send_data(nghttp2_session *s, nghttp2_frame *frame, const uint8_t *framehd,
                        size_t length, nghttp2_data_source *src, void *ud)
{
    (void)s;
    struct coil__h2 *h = ud;
    struct coil__h2s *st = src->ptr;
    if (out_full(h->w, h->c))
        return NGHTTP2_ERR_WOULDBLOCK;
    size_t pad = frame->data.padlen;
    char *p = out_reserve(h, 9 + length + pad);
    if (!p)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    memcpy(p, framehd, 9);
    char *q = p + 9;
    if (pad) {
        *q++ = (char)(pad - 1);
        memset(q + length, 0, pad - 1);
    }
    if (length) /* an empty DATA ends an empty body */
        memcpy(q, st->out + st->out_off, length);
    st->out_off += length;
    h->c->pend->len += 9 + length + pad;
    if (st->rq)
        st->rq->bytes_out += 9 + length;
    return 0;
}

static ssize_t cb_read(nghttp2_session *s, int32_t id, uint8_t *buf, size_t len, uint32_t *flags,
                       nghttp2_data_source *src, void *ud)
{
    (void)s;
    (void)id;
    (void)buf;
    (void)ud;
    struct coil__h2s *st = src->ptr;
    size_t left = st->out_len - st->out_off;
    if (!left && !st->out_eof)
        return NGHTTP2_ERR_DEFERRED;
    size_t n = left < len ? left : len;
    *flags |= NGHTTP2_DATA_FLAG_NO_COPY;
    if (n == left && st->out_eof)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

/* Streams whose writer waits (coil_res_write said -EAGAIN) and now has room. */
static bool wants_room(const struct coil__h2s *st)
{
    return st->rq && st->rq->want_writable;
}

static void check_writable(struct coil__h2 *h)
{
    struct coil__worker *w = h->w;
    if (coil__conn_queued(h->c) > COIL_STREAM_HIGH / 2)
        return;
    int32_t stack[64], *ids;
    uint32_t n = stream_ids(h, wants_room, stack, 64, &ids);
    h->busy++;
    for (uint32_t i = 0; i < n && !h->dead; i++) {
        struct coil__h2s *st = stream_of(h, ids[i]);
        if (!st || !wants_room(st))
            continue;
        if (st->out_len - st->out_off + coil__conn_queued(h->c) > COIL_STREAM_HIGH / 2)
            continue;
        h->nwant--;
        coil__request_writable(w, st->rq); /* clears want_writable; may close any stream */
    }
    h->busy--;
    ids_free(h, ids, stack);
}

/* ---- responses -------------------------------------------------------------------------- */

/* Connection-specific fields (RFC 9113 8.2.2) a response must not carry over HTTP/2; and the
 * length, which we state ourselves. */
static bool dropped_field(const char *name, size_t n)
{
    switch (n) {
    case 7:
        return !strncasecmp(name, "upgrade", 7);
    case 10:
        return !strncasecmp(name, "connection", 10) || !strncasecmp(name, "keep-alive", 10);
    case 14:
        return !strncasecmp(name, "content-length", 14);
    case 16:
        return !strncasecmp(name, "proxy-connection", 16);
    case 17:
        return !strncasecmp(name, "transfer-encoding", 17);
    default:
        return false;
    }
}

static int32_t submit_head(struct coil__h2 *h, struct coil__h2s *st, struct coil__rq *rq,
                           const struct coil_res *res, int status, bool has_length, uint64_t length,
                           const nghttp2_data_provider *dp)
{
    struct coil__worker *w = h->w;
    uint32_t n = res ? res->nhdrs : 0;
    nghttp2_nv stack_nv[32];
    char stack_names[1024];
    nghttp2_nv *nv = stack_nv;
    char *names = stack_names;
    size_t names_len = 0;
    for (uint32_t i = 0; i < n; i++)
        names_len += res->hdrs[i].name_len;
    void *heap = NULL;
    if (n + 4 > sizeof(stack_nv) / sizeof(stack_nv[0]) || names_len > sizeof(stack_names)) {
        heap = coil__walloc(&w->wa, (n + 4) * sizeof(*nv) + names_len);
        if (!heap)
            return NGHTTP2_ERR_NOMEM;
        nv = heap;
        names = (char *)(nv + n + 4);
    }
    char code[3] = {(char)('0' + status / 100), (char)('0' + status / 10 % 10),
                    (char)('0' + status % 10)};
    char lenbuf[24];
    size_t k = 0;
    nv[k++] = (nghttp2_nv){(uint8_t *)":status", (uint8_t *)code, 7, 3, NGHTTP2_NV_FLAG_NONE};
    nv[k++] = (nghttp2_nv){(uint8_t *)"server", (uint8_t *)"coil", 6, 4, NGHTTP2_NV_FLAG_NONE};
    /* w->date_line is "Date: <value>\r\n" */
    nv[k++] = (nghttp2_nv){(uint8_t *)"date", (uint8_t *)w->date_line + 6, 4, w->date_len - 8,
                           NGHTTP2_NV_FLAG_NONE};
    char *np = names;
    for (uint32_t i = 0; i < n; i++) {
        const struct coil__rhdr *r = &res->hdrs[i];
        if (dropped_field(r->name, r->name_len))
            continue;
        for (uint32_t j = 0; j < r->name_len; j++) {
            char ch = r->name[j];
            np[j] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
        }
        nv[k++] = (nghttp2_nv){(uint8_t *)np, (uint8_t *)r->value, r->name_len, r->value_len,
                               NGHTTP2_NV_FLAG_NONE};
        np += r->name_len;
    }
    if (has_length && coil__status_has_body(status)) {
        size_t ln = (size_t)(coil__put_u64(lenbuf, length) - lenbuf);
        nv[k++] = (nghttp2_nv){(uint8_t *)"content-length", (uint8_t *)lenbuf, 14, ln,
                               NGHTTP2_NV_FLAG_NONE};
    }
    int rv = nghttp2_submit_response(h->s, st->id, nv, k, dp);
    if (rq) {
        uint64_t b = 9;
        for (size_t i = 0; i < k; i++)
            b += nv[i].namelen + nv[i].valuelen;
        rq->bytes_out += b / 2; /* HPACK: a rough estimate of the block's size */
    }
    coil__wfree(&w->wa, heap);
    return rv;
}

/* Detaches rq (NULL: none) from its stream: its response is queued whole, or it is gone. */
static void detach(struct coil__h2 *h, struct coil__h2s *st, struct coil__rq *rq)
{
    if (rq) {
        if (rq->want_writable) {
            rq->want_writable = false;
            h->nwant--;
        }
        rq->h2s = NULL;
    }
    st->rq = NULL;
}

/*
 * A whole response for rq (NULL: our own answer): its head, and its body, borrowed, sent now as
 * far as the windows allow (outside nghttp2's callbacks); what is held back is copied into the
 * stream's own buffer, since the body's memory goes when the caller returns. 0 or -ENOMEM/-EIO.
 */
static int answer(struct coil__h2 *h, struct coil__h2s *st, struct coil__rq *rq,
                  const struct coil_res *res, int status, bool head, const char *body, size_t len)
{
    bool with_body = coil__status_has_body(status) && !head && len;
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = cb_read};
    if (with_body) {
        st->out = body;
        st->out_off = 0;
        st->out_len = len;
        st->out_owned = false;
        st->out_eof = true;
    }
    int rv = submit_head(h, st, rq, res, status, true, len, with_body ? &dp : NULL);
    if (rv < 0) {
        st->out = NULL;
        st->out_len = st->out_off = 0;
        return rv == NGHTTP2_ERR_NOMEM ? -ENOMEM : -EIO;
    }
    if (rq && rq->count)
        STAT_INC(h->w, requests);
    st->answered = true;
    detach(h, st, rq);
    if (!with_body)
        return 0;
    int32_t id = st->id;
    if (!h->depth) {
        h2_send(h); /* may close the stream, or the connection */
        if (h->dead)
            return 0;
        st = stream_of(h, id);
    }
    if (st && !st->out_owned && st->out_off < st->out_len && own_append(h->w, st, NULL, 0) < 0) {
        st->out_off = st->out_len;
        nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, id, NGHTTP2_INTERNAL_ERROR);
        return -ENOMEM;
    }
    return 0;
}

static int respond(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq, int status)
{
    struct coil__h2 *h = c->h2;
    struct coil__h2s *st = rq->h2s;
    if (!h || !st)
        return 0; /* the stream or the connection went: nobody to answer */
    h->busy++;
    int rv = answer(h, st, rq, &rq->res, status, rq->head, rq->res.body, rq->res.body_len);
    if (!h->dead)
        h2_send(h);
    h->busy--;
    h2_unbusy(w, h);
    return rv;
}

int coil__h2_respond(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq, int status)
{
    /* A failure costs the stream (reset), not the connection. */
    if (respond(w, c, rq, status) < 0)
        coil__h2_reset(w, c, rq);
    return 0;
}

void coil__h2_finish(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq, int status)
{
    coil__h2_respond(w, c, rq, status);
}

/* Ends rq's stream with RST_STREAM: a response that cannot be finished correctly. */
void coil__h2_reset(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq)
{
    struct coil__h2 *h = c->h2;
    struct coil__h2s *st = rq->h2s;
    if (!h || !st)
        return;
    detach(h, st, rq);
    st->answered = true;
    st->out_off = st->out_len;
    nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    h->busy++;
    h2_send(h);
    h->busy--;
    h2_unbusy(w, h);
}

/* A send after a stream call, with h kept alive across it. */
static void send_kept(struct coil__worker *w, struct coil__h2 *h)
{
    h->busy++;
    h2_send(h);
    h->busy--;
    h2_unbusy(w, h);
}

int coil__h2_stream_head(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq,
                         int status)
{
    struct coil__h2 *h = c->h2;
    struct coil__h2s *st = rq->h2s;
    if (!h || !st)
        return -EPIPE;
    rq->no_body = rq->head || !coil__status_has_body(status);
    rq->chunked = false;
    nghttp2_data_provider dp = {.source.ptr = st, .read_callback = cb_read};
    st->out_eof = false;
    st->out_off = st->out_len = 0;
    int rv = submit_head(h, st, rq, &rq->res, status, rq->length != 0,
                         rq->length ? rq->length - 1 : 0, rq->no_body ? NULL : &dp);
    if (rv < 0)
        return rv == NGHTTP2_ERR_NOMEM ? -ENOMEM : -EIO;
    if (rq->no_body) {
        /* The head ends the stream (HEAD, 204, 304): the response is whole now, and the send
         * below may close the stream, which must not take the request with it. */
        if (rq->count)
            STAT_INC(w, requests);
        st->answered = true;
        detach(h, st, rq);
    }
    send_kept(w, h);
    return 0;
}

int coil__h2_stream_piece(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq,
                          const void *data, size_t len)
{
    struct coil__h2 *h = c->h2;
    struct coil__h2s *st = rq->h2s;
    if (rq->no_body || len == 0)
        return 0;
    if (!h || !st)
        return -EPIPE;
    if (own_append(w, st, data, len) < 0)
        return -ENOMEM;
    nghttp2_session_resume_data(h->s, st->id);
    send_kept(w, h);
    return 0;
}

void coil__h2_stream_end(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq)
{
    struct coil__h2 *h = c->h2;
    struct coil__h2s *st = rq->h2s;
    if (!h || !st)
        return;
    if (rq->count)
        STAT_INC(w, requests);
    detach(h, st, rq);
    st->answered = true;
    if (rq->cut) {
        /* Short of its length, or its filter failed: a reset says the body is not whole. */
        st->out_off = st->out_len;
        nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_INTERNAL_ERROR);
    } else if (!rq->no_body) {
        st->out_eof = true;
        nghttp2_session_resume_data(h->s, st->id);
    }
    send_kept(w, h);
}

size_t coil__h2_queued(const struct coil__rq *rq)
{
    const struct coil__h2s *st = rq->h2s;
    size_t n = coil__conn_queued(rq->conn);
    return st ? n + (st->out_len - st->out_off) : n;
}

void coil__h2_want_writable(struct coil__rq *rq)
{
    struct coil__h2s *st = rq->h2s;
    if (st && !rq->want_writable)
        st->h->nwant++;
}

/* ---- requests --------------------------------------------------------------------------- */

static struct coil_str hb_str(char *base, struct h2hdr x, bool value)
{
    return value ? (struct coil_str){base + x.vo, x.vl} : (struct coil_str){base + x.no, x.nl};
}

static bool name_is(const char *p, size_t n, const char *lit, size_t ln)
{
    return n == ln && !memcmp(p, lit, n);
}

static int parse_length(struct coil_str v, uint64_t *out)
{
    uint64_t n = 0;
    if (!v.len || v.len > 19)
        return -1;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return -1;
        n = n * 10 + (uint64_t)(v.ptr[i] - '0');
    }
    *out = n;
    return 0;
}

/* Our own short answer on a stream that cannot be handled (413, 431, 400): the stream's request
 * was not handed to the request layer. */
static void refuse(struct coil__h2 *h, struct coil__h2s *st, int status)
{
    struct coil__worker *w = h->w;
    STAT_INC(w, rejected);
    struct coil_res res = {.w = w, .arena = &w->arena};
    static const char ctype[] = "text/plain";
    struct coil__rhdr ct = {"content-type", ctype, 12, sizeof(ctype) - 1};
    res.hdrs = &ct;
    res.nhdrs = 1;
    char body[64];
    int n = snprintf(body, sizeof(body), "%s\n", coil__reason(status));
    answer(h, st, NULL, &res, status, st->head, body, (size_t)n);
}

void coil__h2_refuse(struct coil__worker *w, struct coil_conn *c, struct coil__h2s *st, int status)
{
    struct coil__h2 *h = c->h2;
    (void)w;
    if (h && st)
        refuse(h, st, status);
}

/* The head is complete: the request's strings go into memory of the stream's own. */
static int head_done(struct coil__h2 *h, struct coil__h2s *st)
{
    struct coil__worker *w = h->w;
    const struct coil__config *cfg = &w->app->cfg;
    uint32_t n = h->hv_n;
    if (n > cfg->lim.max_headers)
        return 431;
    /* Cookie fields are joined into one ("; ") as RFC 9113 8.2.3 asks before HTTP/1.1 sees them;
     * the space for the separators is counted in the allocation. */
    size_t extra = 0;
    uint32_t ncookie = 0;
    for (uint32_t i = 0; i < n; i++)
        if (name_is(h->hb + h->hv[i].no, h->hv[i].nl, "cookie", 6))
            extra += 2 + h->hv[i].vl, ncookie++;
    size_t arr = (size_t)(n + 1) * sizeof(struct coil__http_header);
    char *mem = coil__walloc(&w->wa, arr + h->hb_len + extra + 1);
    if (!mem)
        return 503;
    struct coil__http_header *hdrs = (struct coil__http_header *)mem;
    char *b = mem + arr;
    memcpy(b, h->hb, h->hb_len);
    st->bytes = mem;
    st->bytes_len = arr + h->hb_len + extra;
    struct coil__http_req *r = &st->http;
    memset(r, 0, sizeof(*r));
    r->minor = 1;
    r->flags = COIL_HTTP_KEEP_ALIVE | COIL_HTTP_V2;
    r->method = hb_str(b, h->p_method, true);
    r->target = hb_str(b, h->p_path, true);
    r->host = hb_str(b, h->p_authority, true);
    const char *q = memchr(r->target.ptr, '?', r->target.len);
    if (q) {
        r->path = (struct coil_str){r->target.ptr, (size_t)(q - r->target.ptr)};
        r->query = (struct coil_str){q + 1, r->target.len - r->path.len - 1};
    } else {
        r->path = r->target;
        r->query = (struct coil_str){r->target.ptr + r->target.len, 0};
    }
    if (name_is(r->method.ptr, r->method.len, "HEAD", 4)) {
        r->flags |= COIL_HTTP_HEAD;
        st->head = true;
    }
    char *cookie = b + h->hb_len;
    size_t cookie_len = 0;
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct coil_str name = hb_str(b, h->hv[i], false);
        struct coil_str value = hb_str(b, h->hv[i], true);
        if (ncookie > 1 && name_is(name.ptr, name.len, "cookie", 6)) {
            if (cookie_len) {
                memcpy(cookie + cookie_len, "; ", 2);
                cookie_len += 2;
            }
            memcpy(cookie + cookie_len, value.ptr, value.len);
            cookie_len += value.len;
            continue;
        }
        if (name_is(name.ptr, name.len, "content-length", 14)) {
            if (parse_length(value, &r->content_length) < 0)
                return 400;
            r->flags |= COIL_HTTP_HAS_LENGTH;
        } else if (name_is(name.ptr, name.len, "host", 4) && !r->host.len) {
            r->host = value;
        } else if (name_is(name.ptr, name.len, "expect", 6)) {
            if (value.len == 12 && !strncasecmp(value.ptr, "100-continue", 12))
                r->flags |= COIL_HTTP_EXPECT_100;
            else
                return 417;
        }
        hdrs[k++] = (struct coil__http_header){name, value};
    }
    if (ncookie > 1)
        hdrs[k++] = (struct coil__http_header){{"cookie", 6}, {cookie, cookie_len}};
    r->headers = hdrs;
    r->nheaders = k;
    st->wire = h->hb_size;
    st->mr = coil__router_match(w->app->router, r->method, r->path, &st->match);
    const struct coil__route *route = st->mr == 0 ? st->match.route : NULL;
    st->body_max = route && route->max_body ? route->max_body : cfg->lim.max_body_bytes;
    if ((r->flags & COIL_HTTP_HAS_LENGTH) && r->content_length > st->body_max)
        return 413;
    if (route && route->early)
        st->early = true;
    else if (route && route->on_body)
        st->body_on = true;
    return 0;
}

static void make_ready(struct coil__h2 *h, struct coil__h2s *st)
{
    if (st->ready || st->dispatched)
        return;
    st->ready = true;
    st->ready_next = NULL;
    *h->ready_tail = st;
    h->ready_tail = &st->ready_next;
}

/* Hands a ready stream's request to the request layer. */
static void dispatch(struct coil__h2 *h, struct coil__h2s *st)
{
    struct coil__worker *w = h->w;
    struct coil_conn *c = h->c;
    st->dispatched = true;
    struct coil__dispatch d = {.http = &st->http,
                               .match = &st->match,
                               .route_status = st->mr < 0 ? -st->mr : 0,
                               .body = {st->body ? st->body : st->bytes, st->body_len},
                               .state = st->state,
                               .buf = st->bytes,
                               .head_len = st->bytes_len,
                               .head = st->head,
                               .keep = true,
                               .http11 = true,
                               .wire = st->wire,
                               .h2s = st};
    if (st->body_on) {
        d.body = (struct coil_str){st->bytes, 0}; /* passed on as it came */
    } else if (st->early) {
        /* The body goes to the reader: what came with the head is handed over below. */
        d.early = true;
        d.body_mode = st->end_in && !st->body_len ? BODY_NONE : BODY_LENGTH;
        d.body_len = st->http.content_length;
        d.body_max = st->body_max;
        d.body = (struct coil_str){st->bytes, 0};
        if (!(st->http.flags & COIL_HTTP_HAS_LENGTH) && d.body_mode != BODY_NONE)
            st->http.flags |= COIL_HTTP_CHUNKED; /* a body of unknown length */
    }
    h->running = st;
    struct coil__rq *rq = coil__request_run(w, c, &d);
    h->running = NULL;
    if (st->dead) {
        stream_mem_free(w, st); /* closed while its request was on the stack */
        st = NULL;
    }
    if (!rq)
        return; /* answered (or refused) */
    if (h->dead || !st || rq->h2s != st) {
        /* The stream or the connection went while its handler ran. */
        rq->h2s = NULL;
        coil__request_abort(w, rq, 0);
        return;
    }
    st->rq = rq; /* waits; the request layer moved what it needs into its own memory */
    if (st->early && st->body_len) {
        rq->body_raw = st->body; /* read before the handler ran: the reader gets it first */
        rq->body_raw_len = rq->body_raw_cap = st->body_len;
        st->body = NULL;
        st->body_len = st->body_cap = 0;
    }
    if (st->early && st->end_in) {
        rq->body_open = false;
        rq->body_end_due = true;
    }
    coil__wfree(&w->wa, st->body);
    st->body = NULL;
    st->body_len = st->body_cap = 0;
}

static void run_ready(struct coil__h2 *h)
{
    h->busy++;
    /* A connection error (ours, or nghttp2's GOAWAY) ends the connection: nothing more runs. */
    bool stop = h->closing || !nghttp2_session_want_read(h->s);
    while (h->ready && !h->dead && !(h->c->flags & CONN_CLOSING)) {
        struct coil__h2s *st = h->ready;
        h->ready = st->ready_next;
        if (!h->ready)
            h->ready_tail = &h->ready;
        st->ready = false;
        if (st->dead)
            stream_mem_free(h->w, st);
        else if (!stop)
            dispatch(h, st);
    }
    h->busy--;
}

/* ---- an early route's body -------------------------------------------------------------- */

/* Gives the reader a piece, or the end (data NULL). 0 taken, 1 left (kept; the stream's window
 * stays closed until it is taken), -1 when rq is no longer the stream's. */
static int early_give(struct coil__h2 *h, struct coil__h2s *st, const char *data, size_t len)
{
    struct coil__worker *w = h->w;
    struct coil__rq *rq = st->rq;
    int32_t id = st->id;
    bool end = data == NULL;
    if (end)
        rq->body_end_due = false;
    h->busy++;
    int rc = coil__request_piece(w, rq, data, len);
    h->busy--;
    struct coil__h2s *now = h->dead ? NULL : stream_of(h, id);
    if (!now || now->rq != rq) {
        if (now && !end)
            nghttp2_session_consume_stream(h->s, id, len);
        return -1; /* answered or gone in the call */
    }
    if (end)
        return 0;
    if (rc == COIL_BODY_PAUSE) {
        rq->body_resume = false; /* only a resume asked for after this pause counts */
        rq->body_piece = coil__walloc(&w->wa, len);
        if (!rq->body_piece) {
            coil__request_abort(w, rq, 503);
            return -1;
        }
        memcpy(rq->body_piece, data, len);
        rq->body_piece_len = len;
        rq->body_paused = true;
        return 1;
    }
    rq->body_read += len;
    rq->bytes_in += len;
    nghttp2_session_consume_stream(h->s, id, len);
    return 0;
}

static bool early_holding(const struct coil__rq *rq)
{
    return rq->body_paused || !rq->on_piece || rq->body_piece || rq->body_raw_len;
}

/* DATA for an early route's waiting request: to its reader, or held while it pauses. */
static void early_data(struct coil__h2 *h, struct coil__h2s *st, const uint8_t *data, size_t len)
{
    struct coil__rq *rq = st->rq;
    if (early_holding(rq)) {
        if (coil__bytes_append(h->w, &rq->body_raw, &rq->body_raw_len, &rq->body_raw_cap, data,
                               len) < 0)
            coil__request_abort(h->w, rq, 503);
        return;
    }
    early_give(h, st, (const char *)data, len);
}

static void early_end(struct coil__h2 *h, struct coil__h2s *st)
{
    struct coil__rq *rq = st->rq;
    rq->body_open = false;
    rq->body_end_due = true;
    if (!early_holding(rq))
        early_give(h, st, NULL, 0);
}

/* The reader asked for more (coil_req_read, coil_req_resume): what it left and what was held
 * meanwhile go to it. */
static void early_resume(struct coil__h2 *h, struct coil__h2s *st)
{
    struct coil__worker *w = h->w;
    struct coil__rq *rq = st->rq;
    int32_t id = st->id;
    rq->body_resume = false;
    rq->body_paused = false;
    char **bufs[2] = {&rq->body_piece, &rq->body_raw};
    size_t *lens[2] = {&rq->body_piece_len, &rq->body_raw_len};
    for (int i = 0; i < 2; i++) {
        if (!*lens[i])
            continue;
        char *p = *bufs[i];
        size_t n = *lens[i];
        *bufs[i] = NULL;
        *lens[i] = 0;
        if (i == 1)
            rq->body_raw_cap = 0;
        int rc = early_give(h, st, p, n);
        coil__wfree(&w->wa, p);
        if (rc != 0)
            return;
    }
    st = stream_of(h, id);
    if (st && st->rq == rq && rq->body_end_due && !rq->body_open)
        early_give(h, st, NULL, 0);
}

/* ---- callbacks -------------------------------------------------------------------------- */

static void note_opened(struct coil__h2 *h, int32_t id)
{
    if (id <= h->max_id)
        return;
    uint32_t shift = (uint32_t)(id - h->max_id) / 2;
    if (shift >= 128) {
        h->opened[0] = h->opened[1] = 0;
    } else if (shift >= 64) {
        h->opened[1] = h->opened[0] << (shift - 64);
        h->opened[0] = 0;
    } else if (shift) {
        h->opened[1] = h->opened[1] << shift | h->opened[0] >> (64 - shift);
        h->opened[0] <<= shift;
    }
    h->opened[0] |= 1;
    h->max_id = id;
}

static int cb_begin_frame(nghttp2_session *s, const nghttp2_frame_hd *hd, void *ud)
{
    (void)s;
    struct coil__h2 *h = ud;
    if (hd->type != NGHTTP2_HEADERS || !(hd->stream_id & 1) || h->closing)
        return 0;
    if (hd->stream_id >= h->max_id) {
        note_opened(h, hd->stream_id); /* refused or not, the id is used */
        return 0;
    }
    uint32_t d = (uint32_t)(h->max_id - hd->stream_id) / 2;
    if (d < 128 && !(h->opened[d / 64] >> (d % 64) & 1))
        terminate(h, ABUSE_PROTOCOL, NGHTTP2_PROTOCOL_ERROR); /* an id it skipped: never opened */
    return 0;
}

static int cb_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct coil__h2 *h = ud;
    h->hv_n = 0;
    h->hb_len = 0;
    h->hb_size = 0;
    h->hb_over = false;
    h->p_method = h->p_path = h->p_authority = h->p_scheme = (struct h2hdr){0};
    h->hb_trailer = frame->headers.cat != NGHTTP2_HCAT_REQUEST;
    if (frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct coil__h2s *st = coil__wcalloc(&h->w->wa, sizeof(*st));
    if (!st)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* the stream is reset */
    st->h = h;
    st->id = frame->hd.stream_id;
    st->next = h->streams;
    if (h->streams)
        h->streams->prev = st;
    h->streams = st;
    h->nstreams++;
    STAT_INC(h->w, h2_streams);
    nghttp2_session_set_stream_user_data(s, st->id, st);
    return 0;
}

static int hb_add(struct coil__h2 *h, const uint8_t *p, size_t n, uint32_t *off)
{
    if (h->hb_len + n > h->hb_cap) {
        uint32_t cap = h->hb_cap ? h->hb_cap : 1024;
        while (cap < h->hb_len + n)
            cap *= 2;
        char *nb = coil__wrealloc(&h->w->wa, h->hb, cap);
        if (!nb)
            return -1;
        h->hb = nb;
        h->hb_cap = cap;
    }
    *off = h->hb_len;
    memcpy(h->hb + h->hb_len, p, n);
    h->hb_len += (uint32_t)n;
    return 0;
}

static int cb_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    (void)s;
    (void)flags;
    struct coil__h2 *h = ud;
    /* RFC 9113 6.5.2: a field is its name, its value and 32 bytes. */
    h->hb_size += (uint32_t)(namelen + valuelen + 32);
    if (h->hb_over || h->hb_trailer)
        return 0;
    if (h->hb_size > h->w->app->h2->header_list) {
        h->hb_over = true;
        return 0;
    }
    (void)frame;
    struct h2hdr x;
    x.nl = (uint32_t)namelen;
    x.vl = (uint32_t)valuelen;
    if (hb_add(h, name, namelen, &x.no) < 0 || hb_add(h, value, valuelen, &x.vo) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    if (namelen && name[0] == ':') {
        /* nghttp2 checked them: known, once each, before the regular fields. */
        if (name_is((const char *)name, namelen, ":method", 7))
            h->p_method = x;
        else if (name_is((const char *)name, namelen, ":path", 5))
            h->p_path = x;
        else if (name_is((const char *)name, namelen, ":authority", 10))
            h->p_authority = x;
        else if (name_is((const char *)name, namelen, ":scheme", 7))
            h->p_scheme = x;
        return 0;
    }
    if (h->hv_n == h->hv_cap) {
        uint32_t cap = h->hv_cap ? h->hv_cap * 2 : 32;
        struct h2hdr *nv = coil__wrealloc(&h->w->wa, h->hv, cap * sizeof(*nv));
        if (!nv)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        h->hv = nv;
        h->hv_cap = cap;
    }
    h->hv[h->hv_n++] = x;
    return 0;
}

static void send_continue(struct coil__h2 *h, struct coil__h2s *st)
{
    static const nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)"100", 7, 3, NGHTTP2_NV_FLAG_NONE}};
    nghttp2_submit_headers(h->s, NGHTTP2_FLAG_NONE, st->id, NULL, nv, 1, NULL);
}

/* A stream's request head arrived whole. */
static void drain_final(struct coil__h2 *h);

static void on_head(struct coil__h2 *h, struct coil__h2s *st, bool end)
{
    st->end_in = end;
    int status = h->hb_over ? 431 : head_done(h, st);
    if (status) {
        refuse(h, st, status);
        return;
    }
    if (!end && (st->http.flags & COIL_HTTP_EXPECT_100))
        send_continue(h, st);
    if (end || st->early)
        make_ready(h, st);
}

/* A stream's request ended (END_STREAM). */
static void on_end(struct coil__h2 *h, struct coil__h2s *st)
{
    st->end_in = true;
    if (st->answered)
        return;
    if (st->early) {
        if (st->rq)
            early_end(h, st); /* else not dispatched yet: dispatch sees end_in */
        return;
    }
    if (!(st->http.flags & COIL_HTTP_HAS_LENGTH)) {
        st->http.flags |= COIL_HTTP_HAS_LENGTH; /* nghttp2 checked a stated one */
        st->http.content_length = st->seen;
    }
    make_ready(h, st);
}

static int count_control(struct coil__h2 *h, int which)
{
    uint64_t now = h->w->now_ms;
    if (now - h->win_ms >= 1000) {
        h->win_ms = now;
        memset(h->nctl, 0, sizeof(h->nctl));
    }
    if (which < 2)
        h->last_ctl = (uint8_t)which;
    if (++h->nctl[which] <= h->w->app->h2->max_control)
        return 0;
    static const int kinds[] = {ABUSE_PING, ABUSE_SETTINGS, ABUSE_PRIORITY, ABUSE_EMPTY};
    terminate(h, kinds[which], NGHTTP2_ENHANCE_YOUR_CALM);
    return 0;
}

/* Rapid reset (CVE-2023-44487): a token bucket of --h2-reset-burst resets, refilled at
 * --h2-reset-rate a second. Kept here rather than left to nghttp2's (set twice as loose) so the
 * connection stops at once: nghttp2 queues its GOAWAY and reads on, and the requests that
 * followed in the same read would run though that GOAWAY says they were not taken. */
static int count_reset(struct coil__h2 *h)
{
    const struct coil__h2cfg *cfg = h->w->app->h2;
    uint64_t now = h->w->now_ms, max = cfg->reset_burst * 1000;
    h->rst_tokens += (now - h->rst_ms) * cfg->reset_rate;
    if (h->rst_tokens > max)
        h->rst_tokens = max;
    h->rst_ms = now;
    if (h->rst_tokens >= 1000) {
        h->rst_tokens -= 1000;
        return 0;
    }
    terminate(h, ABUSE_RESET, NGHTTP2_ENHANCE_YOUR_CALM);
    return 0;
}

static int cb_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct coil__h2 *h = ud;
    if (h->closing)
        return 0;
    int32_t id = frame->hd.stream_id;
    bool end = (frame->hd.flags & NGHTTP2_FLAG_END_STREAM) != 0;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS: {
        struct coil__h2s *st = stream_of(h, id);
        if (!st)
            return 0;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST)
            on_head(h, st, end);
        else if (end)
            on_end(h, st); /* trailers end the request */
        return 0;
    }
    case NGHTTP2_DATA: {
        if (frame->hd.length == 0 && !end)
            return count_control(h, 3);
        struct coil__h2s *st = stream_of(h, id);
        if (st && end)
            on_end(h, st);
        return 0;
    }
    case NGHTTP2_PING:
        if (frame->hd.flags & NGHTTP2_FLAG_ACK) {
            if (h->w->phase != PHASE_RUN)
                drain_final(h); /* the drain's round trip is done */
            return 0;
        }
        return count_control(h, 0);
    case NGHTTP2_SETTINGS:
        return (frame->hd.flags & NGHTTP2_FLAG_ACK) ? 0 : count_control(h, 1);
    case NGHTTP2_PRIORITY:
        return count_control(h, 2);
    case NGHTTP2_RST_STREAM:
        STAT_INC(h->w, h2_resets_in);
        return count_reset(h);
    default:
        (void)s;
        return 0;
    }
}

static int cb_data_chunk(nghttp2_session *s, uint8_t flags, int32_t id, const uint8_t *data,
                         size_t len, void *ud)
{
    (void)flags;
    struct coil__h2 *h = ud;
    struct coil__h2s *st = stream_of(h, id);
    if (!st || st->answered || h->closing) {
        nghttp2_session_consume(s, id, len);
        return 0;
    }
    st->wire += len;
    st->seen += len;
    if (st->early) {
        /* The stream's window reopens only as the reader takes the bytes; the connection's
         * at once, so one slow reader cannot stall the other streams. */
        nghttp2_session_consume_connection(s, len);
        if (st->seen > st->body_max) {
            if (st->rq)
                coil__request_abort(h->w, st->rq, 413);
            else if (!st->dispatched)
                refuse(h, st, 413);
            nghttp2_session_consume_stream(s, id, len);
            return 0;
        }
        if (st->rq) {
            early_data(h, st, data, len);
        } else if (!st->dispatched) {
            /* Came with the head, before its handler ran: handed over at dispatch. */
            if (coil__bytes_append(h->w, &st->body, &st->body_len, &st->body_cap, data, len) < 0)
                refuse(h, st, 503);
        } else {
            nghttp2_session_consume_stream(s, id, len);
        }
        return 0;
    }
    nghttp2_session_consume(s, id, len);
    if (st->seen > st->body_max) {
        refuse(h, st, 413);
        return 0;
    }
    if (st->body_on) {
        int rc = coil__request_body(h->w, &st->http, &st->match, st->state, data, len);
        if (rc != 0)
            refuse(h, st, rc >= 400 && rc <= 599 ? rc : 500);
        return 0;
    }
    if (coil__bytes_append(h->w, &st->body, &st->body_len, &st->body_cap, data, len) < 0)
        refuse(h, st, 503);
    return 0;
}

static int cb_stream_close(nghttp2_session *s, int32_t id, uint32_t code, void *ud)
{
    (void)code;
    struct coil__h2 *h = ud;
    struct coil__h2s *st = stream_of(h, id);
    if (!st)
        return 0;
    nghttp2_session_set_stream_user_data(s, id, NULL);
    stream_abort_rq(h, st);
    if (st->ready || st == h->running) {
        /* Still on the ready list, or its request on the stack: freed when that is done. */
        st->dead = true;
        stream_unlink(h, st);
        return 0;
    }
    stream_free(h, st);
    return 0;
}

/* RFC 9113 6.8: the last stream identifier of a GOAWAY never grows. A drain's GOAWAY queued
 * behind one that ended the connection for an error (ours or nghttp2's, such as its rapid reset
 * limit) says nothing new: it is not sent. */
static int cb_before_send(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    (void)s;
    struct coil__h2 *h = ud;
    if (frame->hd.type == NGHTTP2_GOAWAY && h->goaway_sent &&
        frame->goaway.last_stream_id > h->goaway_last)
        return NGHTTP2_ERR_CANCEL;
    return 0;
}

static int cb_frame_send(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct coil__h2 *h = ud;
    uint8_t t = frame->hd.type;
    if (t == NGHTTP2_GOAWAY && (!h->goaway_sent || frame->goaway.last_stream_id < h->goaway_last)) {
        h->goaway_sent = true;
        h->goaway_last = frame->goaway.last_stream_id;
    }
    if ((t == NGHTTP2_HEADERS || t == NGHTTP2_DATA) &&
        (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        /* Our answer is out whole while the client still sends a body nobody reads: it may stop
         * (RFC 9113 8.1). */
        struct coil__h2s *st = stream_of(h, frame->hd.stream_id);
        if (st && !st->end_in)
            nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_NO_ERROR);
        return 0;
    }
    if (t == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR) {
        /* nghttp2's own: its stream reset rate limit says INTERNAL_ERROR; a client past the
         * concurrent streams it acknowledged gets PROTOCOL_ERROR with that reason. */
        const nghttp2_goaway *g = &frame->goaway;
        static const char streams[] = "max concurrent streams exceeded";
        if (!h->own_term) { /* ours were counted by terminate() */
            int kind = ABUSE_PROTOCOL;
            if (g->error_code == NGHTTP2_INTERNAL_ERROR)
                kind = ABUSE_RESET;
            else if (g->opaque_data_len >= sizeof(streams) - 1 &&
                     memmem(g->opaque_data, g->opaque_data_len, streams, sizeof(streams) - 1))
                kind = ABUSE_STREAMS;
            count_abuse(h, kind);
        }
        h->closing = true;
    }
    return 0;
}

static int cb_invalid_frame(nghttp2_session *s, const nghttp2_frame *frame, int err, void *ud)
{
    (void)s;
    (void)frame;
    (void)ud;
    coil__debug("h2: invalid frame: %s", nghttp2_strerror(err));
    return 0;
}

static void set_callbacks(nghttp2_session_callbacks *cbs)
{
    nghttp2_session_callbacks_set_send_callback(cbs, cb_send);
    nghttp2_session_callbacks_set_send_data_callback(cbs, cb_send_data);
    nghttp2_session_callbacks_set_on_begin_frame_callback(cbs, cb_begin_frame);
    nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, cb_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(cbs, cb_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, cb_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, cb_data_chunk);
    nghttp2_session_callbacks_set_on_stream_close_callback(cbs, cb_stream_close);
    nghttp2_session_callbacks_set_before_frame_send_callback(cbs, cb_before_send);
    nghttp2_session_callbacks_set_on_frame_send_callback(cbs, cb_frame_send);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(cbs, cb_invalid_frame);
}

/* ---- the connection --------------------------------------------------------------------- */

static void h2_destroy(struct coil__worker *w, struct coil__h2 *h)
{
    /* The ready list first: streams closed while on it are on no other list. */
    for (struct coil__h2s *st = h->ready, *next; st; st = next) {
        next = st->ready_next;
        if (st->dead)
            stream_mem_free(w, st);
    }
    while (h->streams) {
        struct coil__h2s *st = h->streams;
        stream_abort_rq(h, st);
        stream_free(h, st);
    }
    nghttp2_session_del(h->s);
    coil__wfree(&w->wa, h->hb);
    coil__wfree(&w->wa, h->hv);
    coil__wfree(&w->wa, h);
}

static struct coil__h2 *h2_create(struct coil__worker *w, struct coil_conn *c)
{
    struct coil__h2cfg *cfg = w->app->h2;
    struct coil__h2 *h = coil__wcalloc(&w->wa, sizeof(*h));
    if (!h)
        return NULL;
    h->w = w;
    h->c = c;
    h->abuse = -1;
    h->ready_tail = &h->ready;
    h->win_ms = h->rst_ms = w->now_ms;
    h->rst_tokens = (uint64_t)cfg->reset_burst * 1000;
    nghttp2_mem mem = {&w->wa, m_malloc, m_free, m_calloc, m_realloc};
    if (nghttp2_session_server_new3(&h->s, cfg->cbs, h, cfg->opt, &mem) != 0) {
        coil__wfree(&w->wa, h);
        return NULL;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->max_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, cfg->window},
        {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, cfg->hpack_table},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg->header_list},
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
    };
    if (nghttp2_submit_settings(h->s, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0])) != 0) {
        nghttp2_session_del(h->s);
        coil__wfree(&w->wa, h);
        return NULL;
    }
    /* The connection's window: room for every stream's. */
    uint64_t conn_win = (uint64_t)cfg->window * 4;
    if (conn_win > (1u << 30))
        conn_win = 1u << 30;
    if (conn_win > 65535)
        nghttp2_session_set_local_window_size(h->s, NGHTTP2_FLAG_NONE, 0, (int32_t)conn_win);
    STAT_INC(w, h2_conns);
    return h;
}

static bool has_output(const struct coil__h2s *st)
{
    return st->out_off < st->out_len;
}

/* What the streams wait for: to send (response data held back: the window, the socket), and to
 * receive (a request body that has not ended, its reader not pausing it). */
static void waits(const struct coil__h2 *h, bool *out, bool *in)
{
    *out = *in = false;
    for (const struct coil__h2s *st = h->streams; st; st = st->next) {
        *out |= has_output(st);
        *in |= !st->end_in && !st->answered && (!st->rq || !st->rq->body_paused);
    }
}

/* Sets the connection's deadline: the idle timeout with no stream open, else the write timeout's
 * check of stalled streams, else the body timeout while a request's body is awaited. */
static void set_deadline(struct coil__worker *w, struct coil_conn *c, struct coil__h2 *h)
{
    const struct coil__config *cfg = &w->app->cfg;
    if (c->flags & (CONN_CLOSING | CONN_CLOSE_AFTER | CONN_LINGER))
        return;
    uint64_t d = 0;
    bool waiting_out, waiting_in;
    waits(h, &waiting_out, &waiting_in);
    if (w->phase != PHASE_RUN && !h->drain_sent) {
        d = w->now_ms + 1000; /* the drain's final GOAWAY, if the ping is not answered */
    } else if (waiting_out) {
        d = w->now_ms + cfg->write_timeout_ms / 4 + 1;
    } else if (waiting_in) {
        d = w->now_ms + cfg->body_timeout_ms;
    } else if (!h->nstreams && !coil__conn_queued(c)) {
        d = w->now_ms + cfg->idle_timeout_ms;
    }
    c->read_deadline = d;
    coil__conn_set_timer(w, c);
}

static void after_input(struct coil__worker *w, struct coil_conn *c, struct coil__h2 *h)
{
    if (h->dead || (c->flags & CONN_CLOSING))
        return;
    h2_send(h);
    if (h->dead || (c->flags & CONN_CLOSING))
        return;
    if (out_full(w, c) && !(c->flags & CONN_PAUSED))
        coil__conn_pause(w, c); /* the client does not read: stop reading it */
    set_deadline(w, c, h);
}

static void h2_unbusy(struct coil__worker *w, struct coil__h2 *h)
{
    if (h->dead && !h->busy)
        h2_destroy(w, h);
}

static void on_data(struct coil__worker *w, struct coil_conn *c, const char *data, size_t n)
{
    struct coil__h2 *h = c->h2;
    if (!h) {
        h = h2_create(w, c);
        if (!h) {
            coil__conn_abort(w, c);
            return;
        }
        c->h2 = h;
    }
    if (h->closing)
        return; /* GOAWAY is on its way: what follows is not read */
    h->busy++;
    h->depth++;
    ssize_t rv = nghttp2_session_mem_recv(h->s, (const uint8_t *)data, n);
    h->depth--;
    if (!h->dead && rv < 0) {
        coil__debug("h2: %s", nghttp2_strerror((int)rv));
        if (rv == NGHTTP2_ERR_TOO_MANY_CONTINUATIONS)
            terminate(h, ABUSE_CONT, NGHTTP2_ENHANCE_YOUR_CALM);
        else if (rv == NGHTTP2_ERR_FLOODED) /* acknowledgements the client does not read */
            terminate(h, h->last_ctl ? ABUSE_SETTINGS : ABUSE_PING, NGHTTP2_ENHANCE_YOUR_CALM);
        else if (rv == NGHTTP2_ERR_NOMEM || rv == NGHTTP2_ERR_CALLBACK_FAILURE)
            terminate(h, -1, NGHTTP2_INTERNAL_ERROR);
        else
            terminate(h, ABUSE_PROTOCOL, NGHTTP2_PROTOCOL_ERROR);
    }
    if (!h->dead)
        run_ready(h);
    if (!h->dead)
        after_input(w, c, h);
    h->busy--;
    h2_unbusy(w, h);
}

static void on_eof(struct coil__worker *w, struct coil_conn *c)
{
    struct coil__h2 *h = c->h2;
    if (h && h->nstreams == 0 && (coil__conn_queued(c) || (c->flags & CONN_SENDING))) {
        coil__conn_close_after(w, c);
        return;
    }
    coil__conn_abort(w, c); /* streams waiting on a client that left are aborted */
}

/* Resets the streams whose response has waited on a closed window too long. */
static void check_stalls(struct coil__worker *w, struct coil__h2 *h)
{
    uint64_t limit = w->app->cfg.write_timeout_ms;
    bool conn_open = nghttp2_session_get_remote_window_size(h->s) > 0;
    int32_t stack[64], *ids;
    uint32_t n = stream_ids(h, has_output, stack, 64, &ids);
    for (uint32_t i = 0; i < n && !h->dead; i++) {
        struct coil__h2s *st = stream_of(h, ids[i]);
        if (!st || !has_output(st))
            continue;
        if (conn_open && nghttp2_session_get_stream_remote_window_size(h->s, st->id) > 0) {
            st->stall_since = 0;
        } else if (!st->stall_since) {
            st->stall_since = w->now_ms;
        } else if (w->now_ms - st->stall_since >= limit) {
            STAT_INC(w, h2_abuse[ABUSE_STALL]);
            STAT_INC(w, t_write);
            st->out_off = st->out_len; /* nothing more of it is sent */
            st->answered = true;
            nghttp2_submit_rst_stream(h->s, NGHTTP2_FLAG_NONE, st->id, NGHTTP2_CANCEL);
            stream_abort_rq(h, st); /* a streamed response's writer learns it here */
        }
    }
    ids_free(h, ids, stack);
}

static void on_read_timeout(struct coil__worker *w, struct coil_conn *c)
{
    struct coil__h2 *h = c->h2;
    if (!h) {
        STAT_INC(w, t_header);
        coil__conn_abort(w, c); /* no preface in time */
        return;
    }
    h->busy++;
    bool out, in;
    waits(h, &out, &in);
    if (w->phase != PHASE_RUN && !h->drain_sent) {
        drain_final(h); /* no answer to the drain's ping in time */
    } else if (out) {
        check_stalls(w, h);
    } else if (in) {
        STAT_INC(w, t_body);
        terminate(h, -1, NGHTTP2_NO_ERROR); /* a body that does not come: the connection goes */
    } else if (!h->nstreams) {
        if (w->phase == PHASE_RUN)
            STAT_INC(w, t_idle);
        terminate(h, -1, NGHTTP2_NO_ERROR);
    }
    if (!h->dead) {
        h2_send(h);
        if (!h->dead)
            set_deadline(w, c, h);
    }
    h->busy--;
    h2_unbusy(w, h);
}

static void on_sent(struct coil__worker *w, struct coil_conn *c)
{
    struct coil__h2 *h = c->h2;
    if (!h)
        return;
    h->busy++;
    if (nghttp2_session_want_write(h->s) || h->nwant)
        h2_send(h);
    if (!h->dead && (c->flags & CONN_PAUSED) && !(c->flags & (CONN_CLOSING | CONN_CLOSE_AFTER)) &&
        (!c->pend || c->pend->len < w->app->cfg.max_pending_out / 2))
        coil__conn_unpause(w, c);
    if (!h->dead)
        set_deadline(w, c, h);
    h->busy--;
    h2_unbusy(w, h);
}

static bool wants_body(const struct coil__h2s *st)
{
    return st->rq && st->rq->body_resume;
}

static void on_resume(struct coil__worker *w, struct coil_conn *c)
{
    struct coil__h2 *h = c->h2;
    if (!h)
        return;
    h->busy++;
    int32_t stack[64], *ids;
    uint32_t n = stream_ids(h, wants_body, stack, 64, &ids);
    for (uint32_t i = 0; i < n && !h->dead; i++) {
        struct coil__h2s *st = stream_of(h, ids[i]);
        if (st && wants_body(st))
            early_resume(h, st);
    }
    ids_free(h, ids, stack);
    if (!h->dead)
        after_input(w, c, h);
    h->busy--;
    h2_unbusy(w, h);
}

static void on_abort(struct coil__worker *w, struct coil_conn *c)
{
    struct coil__h2 *h = c->h2;
    if (!h)
        return;
    c->h2 = NULL;
    h->dead = true;
    h->busy++;
    /* Requests first (their on_abort may look at other streams), then the memory. */
    for (struct coil__h2s *st = h->streams; st; st = st->next)
        stream_abort_rq(h, st);
    h->busy--;
    h2_unbusy(w, h);
}

/* Drain, in two steps (RFC 9113 6.8): a GOAWAY that stops nothing in flight, then, once a round
 * trip could have brought what the client sent meanwhile, the last stream we took. */
static void on_drain(struct coil__worker *w, struct coil_conn *c)
{
    struct coil__h2 *h = c->h2;
    if (!h) {
        coil__conn_close_idle(w, c);
        return;
    }
    if (h->closing)
        return; /* a GOAWAY ending it is on its way already */
    h->busy++;
    nghttp2_submit_shutdown_notice(h->s);
    nghttp2_submit_ping(h->s, NGHTTP2_FLAG_NONE, NULL);
    h2_send(h);
    if (!h->dead)
        set_deadline(w, c, h);
    h->busy--;
    h2_unbusy(w, h);
}

/* The final GOAWAY of a drain: after the ping's answer (or the timer's second). */
static void drain_final(struct coil__h2 *h)
{
    if (h->drain_sent || h->closing)
        return;
    h->drain_sent = true;
    nghttp2_submit_goaway(h->s, NGHTTP2_FLAG_NONE, nghttp2_session_get_last_proc_stream_id(h->s),
                          NGHTTP2_NO_ERROR, NULL, 0);
}

const struct coil__proto coil__http2 = {
    .on_data = on_data,
    .on_eof = on_eof,
    .on_read_timeout = on_read_timeout,
    .on_sent = on_sent,
    .on_resume = on_resume,
    .on_abort = on_abort,
    .on_drain = on_drain,
};

/* The preface of h2c with prior knowledge (RFC 9113 3.4). */
static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

int coil__h2_preface(struct coil__worker *w, const char *data, size_t n)
{
    if (!coil__h2_on(w->app))
        return 0;
    size_t k = n < sizeof(preface) - 1 ? n : sizeof(preface) - 1;
    if (memcmp(data, preface, k))
        return 0;
    return k == sizeof(preface) - 1 ? 1 : -1;
}
