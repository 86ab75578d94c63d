/* SPDX-License-Identifier: MIT */
/*
 * conn.c: one HTTP/1.1 connection, from received bytes to queued responses.
 *
 * Received bytes are parsed where they land, in the provided receive buffer: every complete
 * request in it is routed, handled and answered before the buffer goes back to the ring. Only
 * an incomplete request is copied aside (struct coil__partial), so a connection between
 * requests holds no input memory. Responses are written into `pend`; at the end of the batch
 * the worker moves `pend` to `out` and sends it, keeping at most one send in flight (io_uring
 * does not order two sends on one socket). When `pend` passes max_pending_out the connection
 * stops reading (backpressure) until the output drains.
 *
 * A connection ends in one of two ways. Graceful: the last response is queued with
 * CONN_CLOSE_AFTER; once it is sent, the write side is shut and input is discarded until the
 * peer's FIN or the linger timeout, so the peer reads the response before any reset. Abort:
 * CONN_CLOSING cancels what is in flight; the slot is freed when the last completion arrives.
 * Every function here runs on the connection's own worker.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define STAT_INC(w, field)                                                                         \
    atomic_store_explicit(&(w)->stats.field,                                                       \
                          atomic_load_explicit(&(w)->stats.field, memory_order_relaxed) + 1,       \
                          memory_order_relaxed)

static const char *reason(int status)
{
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 206:
        return "Partial Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 303:
        return "See Other";
    case 304:
        return "Not Modified";
    case 307:
        return "Temporary Redirect";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 411:
        return "Length Required";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 417:
        return "Expectation Failed";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    case 505:
        return "HTTP Version Not Supported";
    default:
        return "";
    }
}

/* ---- buffers ---------------------------------------------------------------------------- */

static void *buf_alloc(struct coil__worker *w, size_t total, uint8_t *pooled)
{
    if (total <= w->bufs.size) {
        *pooled = 1;
        return coil__bufpool_get(&w->bufs);
    }
    *pooled = 0;
    return coil__walloc(&w->wa, total);
}

static void buf_free(struct coil__worker *w, void *p, uint8_t pooled)
{
    if (!p)
        return;
    if (pooled)
        coil__bufpool_put(&w->bufs, p);
    else
        coil__wfree(&w->wa, p);
}

/* Grows a header-prefixed buffer (obuf or partial) so its data part holds `need` bytes,
 * keeping the first hdr + used bytes. Returns the new block and its data capacity in *cap, or
 * NULL (the old block intact). */
static void *buf_grow(struct coil__worker *w, void *old, size_t hdr, size_t used, size_t need,
                      uint8_t *pooled, uint32_t *cap)
{
    size_t total = w->bufs.size;
    while (total < hdr + need)
        total *= 2;
    uint8_t np;
    void *nb = buf_alloc(w, total, &np);
    if (!nb)
        return NULL;
    if (old) {
        memcpy(nb, old, hdr + used);
        buf_free(w, old, *pooled);
    }
    *pooled = np;
    *cap = (uint32_t)(total - hdr);
    return nb;
}

static size_t obuf_hdr(void)
{
    return offsetof(struct coil__obuf, data);
}
static size_t partial_hdr(void)
{
    return offsetof(struct coil__partial, data);
}

/* Room for n more bytes at the end of pend; NULL on OOM. Commit with pend->len += written. */
static char *out_reserve(struct coil__worker *w, struct coil_conn *c, size_t n)
{
    struct coil__obuf *b = c->pend;
    if (b && b->cap - b->len >= n)
        return b->data + b->len;
    size_t used = b ? b->len : 0;
    uint8_t pooled = b ? b->pooled : 0;
    uint32_t cap;
    struct coil__obuf *nb = buf_grow(w, b, obuf_hdr(), used, used + n, &pooled, &cap);
    if (!nb)
        return NULL;
    if (!b) {
        nb->len = 0;
        nb->sent = 0;
    }
    nb->pooled = pooled;
    nb->cap = cap;
    c->pend = nb;
    return nb->data + nb->len;
}

static void partial_free(struct coil__worker *w, struct coil_conn *c)
{
    if (c->in) {
        buf_free(w, c->in, c->in->pooled);
        c->in = NULL;
    }
}

/* Makes room for `need` bytes in the partial (creating it if absent). -ENOMEM or -E2BIG. */
static int partial_reserve(struct coil__worker *w, struct coil_conn *c, size_t need)
{
    const struct coil__config *cfg = &w->app->cfg;
    struct coil__partial *p = c->in;
    if (p && p->cap >= need)
        return 0;
    /* One request plus framing slack; pipelined bytes beyond it wait in the socket. */
    uint64_t limit =
        (uint64_t)cfg->lim.max_header_bytes + w->app->body_cap + (1u << 20) + cfg->recv_buf_size;
    if (need > limit && need > (p ? p->cap : 0))
        return -E2BIG;
    uint8_t pooled = p ? p->pooled : 0;
    size_t used = p ? p->len : 0;
    uint32_t cap;
    struct coil__partial *np = buf_grow(w, p, partial_hdr(), used, need, &pooled, &cap);
    if (!np)
        return -ENOMEM;
    if (!p)
        memset(np, 0, partial_hdr());
    np->pooled = pooled;
    np->cap = cap;
    c->in = np;
    return 0;
}

/* ---- response serialisation ------------------------------------------------------------- */

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

#define PUT_LIT(p, lit) put((p), (lit), sizeof(lit) - 1)

static char *put_u64(char *p, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_status_line(char *p, int status)
{
    p = PUT_LIT(p, "HTTP/1.1 ");
    *p++ = (char)('0' + status / 100);
    *p++ = (char)('0' + status / 10 % 10);
    *p++ = (char)('0' + status % 10);
    *p++ = ' ';
    const char *r = reason(status);
    p = put(p, r, strlen(r));
    p = PUT_LIT(p, "\r\nServer: coil\r\n");
    return p;
}

static bool status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

struct resp {
    int status;
    const struct coil__rhdr *hdrs;
    uint32_t nhdrs;
    const char *body;
    size_t body_len;
    bool head;      /* HEAD request: headers only */
    bool close;     /* Connection: close */
    bool keepalive; /* Connection: keep-alive (HTTP/1.0 peer) */
};

/* Appends one response to pend. -ENOMEM if the buffer cannot grow. */
static int write_response(struct coil__worker *w, struct coil_conn *c, const struct resp *r)
{
    bool body = status_has_body(r->status);
    size_t need = 64 + 32 + w->date_len + 40 + 32 + 2;
    for (uint32_t i = 0; i < r->nhdrs; i++)
        need += r->hdrs[i].name_len + r->hdrs[i].value_len + 4;
    if (body && !r->head)
        need += r->body_len;
    char *start = out_reserve(w, c, need);
    if (!start)
        return -ENOMEM;
    char *p = put_status_line(start, r->status);
    p = put(p, w->date_line, w->date_len);
    for (uint32_t i = 0; i < r->nhdrs; i++) {
        p = put(p, r->hdrs[i].name, r->hdrs[i].name_len);
        p = PUT_LIT(p, ": ");
        p = put(p, r->hdrs[i].value, r->hdrs[i].value_len);
        p = PUT_LIT(p, "\r\n");
    }
    if (body) {
        p = PUT_LIT(p, "Content-Length: ");
        p = put_u64(p, r->body_len);
        p = PUT_LIT(p, "\r\n");
    }
    if (r->close)
        p = PUT_LIT(p, "Connection: close\r\n");
    else if (r->keepalive)
        p = PUT_LIT(p, "Connection: keep-alive\r\n");
    p = PUT_LIT(p, "\r\n");
    if (body && !r->head && r->body_len)
        p = put(p, r->body, r->body_len);
    c->pend->len += (uint32_t)(p - start);
    return 0;
}

/* An engine-generated answer (errors, 404/405) with a short text body. */
static int write_simple(struct coil__worker *w, struct coil_conn *c, int status, bool head,
                        bool close, bool keepalive, const char *allow)
{
    struct coil__rhdr hdrs[2] = {
        {"Content-Type", "text/plain; charset=utf-8", 12, 25},
        {"Allow", allow, 5, allow ? (uint32_t)strlen(allow) : 0},
    };
    char body[64];
    const char *rs = reason(status);
    size_t n = strlen(rs);
    memcpy(body, rs, n);
    body[n++] = '\n';
    struct resp r = {.status = status,
                     .hdrs = hdrs,
                     .nhdrs = allow ? 2 : 1,
                     .body = body,
                     .body_len = n,
                     .head = head,
                     .close = close,
                     .keepalive = keepalive};
    return write_response(w, c, &r);
}

/* ---- timers ----------------------------------------------------------------------------- */

void coil__conn_set_timer(struct coil__worker *w, struct coil_conn *c)
{
    uint64_t d = c->write_deadline;
    if (c->read_deadline && !(c->flags & CONN_PAUSED) && (!d || c->read_deadline < d))
        d = c->read_deadline;
    if (d)
        coil__timer_arm(&w->wheel, &c->timer, d);
    else
        coil__timer_cancel(&w->wheel, &c->timer);
}

/* ---- closing ---------------------------------------------------------------------------- */

void coil__conn_release_buffers(struct coil__worker *w, struct coil_conn *c)
{
    partial_free(w, c);
    if (c->pend) {
        buf_free(w, c->pend, c->pend->pooled);
        c->pend = NULL;
    }
    if (c->out && !(c->flags & CONN_SENDING)) {
        buf_free(w, c->out, c->out->pooled);
        c->out = NULL;
    }
}

static void conn_free(struct coil__worker *w, struct coil_conn *c)
{
    assert(c->inflight == 0);
    coil__timer_cancel(&w->wheel, &c->timer);
    coil__conn_release_buffers(w, c);
    close(c->fd);
    w->open--;
    atomic_store_explicit(&w->stats.open, w->open, memory_order_relaxed);
    coil__slab_put(&w->conns, c->idx);
}

/* Closes now: cancels what is in flight; the slot is freed when nothing is left. */
void coil__conn_abort(struct coil__worker *w, struct coil_conn *c)
{
    if (c->flags & CONN_CLOSING)
        return;
    c->flags |= CONN_CLOSING;
    c->flags &= (uint16_t)~CONN_PAUSED;
    coil__timer_cancel(&w->wheel, &c->timer);
    coil__conn_release_buffers(w, c);
    if (c->inflight == 0) {
        conn_free(w, c);
        return;
    }
    /* Wakes the multishot recv (it completes with 0) and fails a blocked send; the cancel
     * covers a socket that shutdown no longer reaches. */
    shutdown(c->fd, SHUT_RDWR);
    coil__cancel_recv(w, c);
}

/* Called when a completion for a closing connection arrives. */
void coil__conn_closing_done(struct coil__worker *w, struct coil_conn *c)
{
    if (c->inflight == 0)
        conn_free(w, c);
}

/* The last response is sent: FIN, then discard input until the peer closes or linger ends. */
static void begin_linger(struct coil__worker *w, struct coil_conn *c)
{
    partial_free(w, c);
    if (c->flags & CONN_EOF) {
        coil__conn_abort(w, c);
        return;
    }
    shutdown(c->fd, SHUT_WR);
    c->flags |= CONN_LINGER;
    c->flags &= (uint16_t)~CONN_PAUSED;
    c->write_deadline = 0;
    c->read_deadline = w->now_ms + w->app->cfg.linger_ms;
    coil__conn_set_timer(w, c);
    if (!(c->flags & CONN_RECV_ARMED))
        coil__arm_recv(w, c);
}

/* ---- requests --------------------------------------------------------------------------- */

static bool output_queued(const struct coil_conn *c)
{
    return c->out || (c->pend && c->pend->len);
}

/* Answers an unacceptable request and closes once the answer is sent. */
static void reject(struct coil__worker *w, struct coil_conn *c, int status)
{
    STAT_INC(w, rejected);
    c->flags |= CONN_CLOSE_AFTER;
    if (write_simple(w, c, status, false, true, false, NULL) < 0) {
        coil__conn_abort(w, c);
        return;
    }
    coil__queue_flush(w, c);
}

/* Runs the route's handler (or the engine's 404/405) and queues the response. */
static void dispatch(struct coil__worker *w, struct coil_conn *c, struct coil__http_req *h, int mr,
                     const struct coil__match *m, struct coil_str body, bool more,
                     struct coil__progress *pg)
{
    bool keep = (h->flags & COIL_HTTP_KEEP_ALIVE) != 0;
    /* Draining: the last request in hand gets Connection: close. */
    if (w->phase != PHASE_RUN && !more)
        keep = false;
    bool head = (h->flags & COIL_HTTP_HEAD) != 0;
    bool ka10 = keep && h->minor == 0;
    int rc;
    if (mr != 0) {
        STAT_INC(w, rejected);
        rc = write_simple(w, c, -mr, head, !keep, ka10, mr == -405 ? m->allow : NULL);
    } else {
        struct coil_req req;
        struct coil_res res;
        coil__req_setup(&req, &res, w, h, m, body, pg->state);
        int hrc = m->route->handler(&req, &res, m->route->ud);
        int status = coil__res_finish(&res, hrc);
        struct resp r = {.status = status,
                         .hdrs = res.hdrs,
                         .nhdrs = res.nhdrs,
                         .body = res.body,
                         .body_len = res.body_len,
                         .head = head,
                         .close = !keep,
                         .keepalive = ka10};
        rc = write_response(w, c, &r);
    }
    coil__arena_reset(&w->arena);
    STAT_INC(w, requests);
    if (rc < 0) {
        coil__conn_abort(w, c);
        return;
    }
    if (!keep)
        c->flags |= CONN_CLOSE_AFTER;
    if (c->pend && c->pend->len >= w->app->cfg.max_pending_out)
        c->flags |= CONN_PAUSED;
    coil__queue_flush(w, c);
}

/* Queues "100 Continue" once for a request whose body is still to come. */
static void maybe_continue(struct coil__worker *w, struct coil_conn *c,
                           const struct coil__http_req *h, struct coil__progress *pg)
{
    if (!(h->flags & COIL_HTTP_EXPECT_100) || pg->sent_100)
        return;
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    char *p = out_reserve(w, c, sizeof(msg) - 1);
    if (!p) {
        coil__conn_abort(w, c);
        return;
    }
    memcpy(p, msg, sizeof(msg) - 1);
    c->pend->len += sizeof(msg) - 1;
    pg->sent_100 = 1;
    coil__queue_flush(w, c);
}

/* The body limit of a route (NULL: no route matched): its own, else --max-body-bytes. */
static uint64_t body_limit(const struct coil__worker *w, const struct coil__route *r)
{
    return r && r->max_body ? r->max_body : w->app->cfg.lim.max_body_bytes;
}

/*
 * Passes the body bytes at body[0..n) of a streaming request to its route's on_body, and runs
 * the handler once the body is complete. Every byte up to the body's end is consumed: a
 * chunked decoder that needs more keeps its place in pg->ck, not in the buffer. Returns the
 * bytes consumed, or -1 if the connection is closing. pg->streaming is cleared once the
 * request has been answered.
 */
static long stream_body(struct coil__worker *w, struct coil_conn *c, struct coil__http_req *h,
                        const struct coil__match *m, struct coil__progress *pg, char *body,
                        size_t n)
{
    uint64_t max_body = body_limit(w, m->route);
    size_t give, used;
    bool done;
    if (h->flags & COIL_HTTP_CHUNKED) {
        /* Decoded bytes are handed over and dropped after every call, so the decoder always
         * starts at the front of what is new; its limit is what is left of the route's. */
        pg->ck.in = pg->ck.out = 0;
        int cr = coil__chunked_decode(&pg->ck, body, n, max_body - pg->streamed,
                                      w->app->cfg.lim.max_header_bytes);
        if (cr < 0) {
            reject(w, c, -cr);
            return -1;
        }
        give = pg->ck.out;
        used = pg->ck.in;
        done = cr == 1;
    } else {
        uint64_t left = (h->flags & COIL_HTTP_HAS_LENGTH) ? h->content_length - pg->streamed : 0;
        give = used = n < left ? n : (size_t)left;
        done = give == left;
    }
    if (give) {
        struct coil_req req;
        struct coil_res res;
        coil__req_setup(&req, &res, w, h, m, (struct coil_str){body, 0}, pg->state);
        int rc = m->route->on_body(&req, body, give, m->route->ud);
        coil__arena_reset(&w->arena);
        if (rc != 0) {
            reject(w, c, rc >= 400 && rc <= 599 ? rc : 500);
            return -1;
        }
        pg->streamed += give;
    }
    if (done) {
        dispatch(w, c, h, 0, m, (struct coil_str){body, 0}, used < n, pg);
        pg->streaming = 0;
    }
    return (long)used;
}

/*
 * Handles the request starting at buf. Returns its length once it is complete and answered,
 * 0 if more bytes are needed (pg records progress), -1 if the connection is closing.
 */
static long handle_one(struct coil__worker *w, struct coil_conn *c, char *buf, size_t len,
                       struct coil__progress *pg)
{
    const struct coil__config *cfg = &w->app->cfg;
    struct coil__http_req h;
    h.headers = w->hdrs;
    int r = coil__http_parse_head(buf, len, &h, &w->app->parse_lim);
    if (r == 0)
        return 0;
    if (r < 0) {
        reject(w, c, -r);
        return -1;
    }
    size_t head = (size_t)r;
    struct coil__match m;
    int mr = coil__router_match(w->app->router, h.method, h.path, &m);
    uint64_t max_body = body_limit(w, mr == 0 ? m.route : NULL);
    if ((h.flags & COIL_HTTP_HAS_LENGTH) && h.content_length > max_body) {
        reject(w, c, 413);
        return -1;
    }
    if (mr == 0 && m.route->on_body) {
        if (!pg->streaming) {
            pg->streaming = 1;
            pg->body_off = (uint32_t)head;
            coil__chunked_init(&pg->ck);
        }
        long used = stream_body(w, c, &h, &m, pg, buf + head, len - head);
        if (used < 0)
            return -1;
        if (pg->streaming) { /* all of buf is consumed; the caller keeps only the head */
            maybe_continue(w, c, &h, pg);
            return 0;
        }
        memset(pg, 0, sizeof(*pg));
        return (long)(head + (size_t)used);
    }
    struct coil_str body = {buf + head, 0};
    size_t total = head;
    if (h.flags & COIL_HTTP_CHUNKED) {
        if (pg->body_off == 0) {
            coil__chunked_init(&pg->ck);
            pg->body_off = (uint32_t)head;
        }
        int cr = coil__chunked_decode(&pg->ck, buf + head, len - head, max_body,
                                      cfg->lim.max_header_bytes);
        if (cr < 0) {
            reject(w, c, -cr);
            return -1;
        }
        if (cr == 0) {
            maybe_continue(w, c, &h, pg);
            return 0;
        }
        body.len = pg->ck.out;
        total = head + pg->ck.in;
    } else if (h.flags & COIL_HTTP_HAS_LENGTH) {
        if (len - head < h.content_length) {
            pg->body_off = (uint32_t)head;
            pg->body_len = h.content_length;
            maybe_continue(w, c, &h, pg);
            return 0;
        }
        body.len = h.content_length;
        total = head + h.content_length;
    }
    dispatch(w, c, &h, mr, &m, body, total < len, pg);
    memset(pg, 0, sizeof(*pg));
    return (long)total;
}

/* Answers the complete requests in buf; returns the bytes consumed. pg is the progress of the
 * first request (in and out: on return, that of the incomplete request left, if any). */
static size_t process(struct coil__worker *w, struct coil_conn *c, char *buf, size_t len,
                      struct coil__progress *pg)
{
    size_t off = 0;
    while (off < len) {
        if (c->flags & (CONN_PAUSED | CONN_CLOSE_AFTER | CONN_CLOSING))
            break;
        long r = handle_one(w, c, buf + off, len - off, pg);
        if (r <= 0)
            break;
        off += (size_t)r;
    }
    return off;
}

/* Drops the consumed prefix of the partial (and the decoded-away chunk framing). */
static void partial_consume(struct coil__worker *w, struct coil_conn *c, size_t used)
{
    struct coil__partial *p = c->in;
    if (used == p->len) {
        partial_free(w, c);
        return;
    }
    if (used) {
        memmove(p->data, p->data + used, p->len - used);
        p->len -= (uint32_t)used;
    }
    if (p->prog.streaming) {
        p->len = p->prog.body_off; /* the body bytes were passed on */
        return;
    }
    struct coil__chunked *ck = &p->prog.ck;
    if (p->prog.body_off && ck->in > ck->out) {
        /* Chunked, in progress: framing already decoded away is garbage; squeeze it out so
         * many tiny chunks cannot inflate the buffer. */
        char *body = p->data + p->prog.body_off;
        size_t rest = p->len - p->prog.body_off - ck->in;
        memmove(body + ck->out, body + ck->in, rest);
        p->len -= (uint32_t)(ck->in - ck->out);
        ck->in = ck->out;
    }
}

static void run_partial(struct coil__worker *w, struct coil_conn *c)
{
    struct coil__partial *p = c->in;
    size_t used = process(w, c, p->data, p->len, &p->prog);
    if (c->flags & CONN_CLOSING)
        return;
    if (c->flags & CONN_CLOSE_AFTER) {
        partial_free(w, c);
        return;
    }
    partial_consume(w, c, used);
}

static void after_input(struct coil__worker *w, struct coil_conn *c, bool was_partial,
                        uint32_t old_body_off)
{
    const struct coil__config *cfg = &w->app->cfg;
    if (c->flags & (CONN_CLOSING | CONN_LINGER))
        return;
    if (c->flags & CONN_CLOSE_AFTER) {
        c->read_deadline = 0;
    } else if (c->in) {
        if (c->in->prog.body_off)
            c->read_deadline = w->now_ms + cfg->body_timeout_ms;
        else if (!was_partial || old_body_off)
            c->read_deadline = w->now_ms + cfg->header_timeout_ms;
    } else if (output_queued(c)) {
        c->read_deadline = 0;
    } else {
        c->read_deadline = w->now_ms + cfg->idle_timeout_ms;
    }
    if ((c->flags & CONN_PAUSED) && (c->flags & CONN_RECV_ARMED))
        coil__cancel_recv(w, c);
    coil__conn_set_timer(w, c);
}

/*
 * More of a streaming body arrived while the partial holds its head: pass the new bytes on
 * straight from the receive buffer. Returns the bytes consumed (the rest, if the body ended,
 * starts the next request), or -1 if the connection is closing.
 */
static long stream_more(struct coil__worker *w, struct coil_conn *c, char *data, size_t n)
{
    struct coil__partial *p = c->in;
    struct coil__http_req h;
    h.headers = w->hdrs;
    int r = coil__http_parse_head(p->data, p->len, &h, &w->app->parse_lim);
    struct coil__match m;
    int mr = coil__router_match(w->app->router, h.method, h.path, &m);
    assert(r == (int)p->prog.body_off && mr == 0 && m.route->on_body);
    (void)r;
    (void)mr;
    long used = stream_body(w, c, &h, &m, &p->prog, data, n);
    if (used >= 0 && !p->prog.streaming)
        partial_free(w, c);
    return used;
}

void coil__conn_on_recv(struct coil__worker *w, struct coil_conn *c, const char *data, size_t n)
{
    if (c->flags & (CONN_LINGER | CONN_CLOSING | CONN_CLOSE_AFTER))
        return; /* discarding */
    bool was_partial = c->in != NULL;
    uint32_t old_body_off = was_partial ? c->in->prog.body_off : 0;
    if (was_partial && c->in->prog.streaming && !(c->flags & CONN_PAUSED)) {
        long used = stream_more(w, c, (char *)data, n);
        if (used < 0)
            return;
        data += used;
        n -= (size_t)used;
        if (n == 0 || (c->flags & (CONN_CLOSING | CONN_CLOSE_AFTER))) {
            after_input(w, c, was_partial, old_body_off);
            return;
        }
        /* The body ended inside this buffer: what follows is handled below like any new
         * input (held aside if the response paused reading). */
    }
    if (!c->in && !(c->flags & CONN_PAUSED)) {
        /* The receive buffer is ours until it goes back to the ring: parse (and decode chunked
         * bodies) in place. */
        char *buf = (char *)data;
        struct coil__progress pg = {0};
        size_t used = process(w, c, buf, n, &pg);
        if (used < n && !(c->flags & (CONN_CLOSING | CONN_CLOSE_AFTER))) {
            /* A streaming body was passed on: keep only its head. */
            size_t rest = pg.streaming ? pg.body_off : n - used;
            size_t want = rest;
            if (pg.body_len) /* reserve the whole Content-Length body at once */
                want = pg.body_off + pg.body_len;
            if (partial_reserve(w, c, want < rest ? rest : want) < 0) {
                coil__conn_abort(w, c);
                return;
            }
            memcpy(c->in->data, buf + used, rest);
            c->in->len = (uint32_t)rest;
            c->in->prog = pg;
        }
    } else {
        size_t have = c->in ? c->in->len : 0;
        int err = partial_reserve(w, c, have + n);
        if (err < 0) {
            if (err == -E2BIG && !(c->flags & CONN_PAUSED))
                reject(w, c, 413);
            else
                coil__conn_abort(w, c);
            return;
        }
        memcpy(c->in->data + have, data, n);
        c->in->len = (uint32_t)(have + n);
        if (!(c->flags & CONN_PAUSED))
            run_partial(w, c);
    }
    after_input(w, c, was_partial, old_body_off);
}

/* Output drained below the bound: handle what was held back, then read again. */
void coil__conn_resume(struct coil__worker *w, struct coil_conn *c)
{
    c->flags &= (uint16_t)~CONN_PAUSED;
    if (c->in) {
        bool was = true;
        uint32_t bo = c->in->prog.body_off;
        run_partial(w, c);
        after_input(w, c, was, bo);
    }
    if (c->flags & (CONN_CLOSING | CONN_PAUSED | CONN_CLOSE_AFTER | CONN_EOF))
        return;
    if (!(c->flags & CONN_RECV_ARMED))
        coil__arm_recv(w, c);
    coil__conn_set_timer(w, c);
}

void coil__conn_on_eof(struct coil__worker *w, struct coil_conn *c)
{
    c->flags |= CONN_EOF;
    if (c->flags & CONN_CLOSING)
        return;
    if (c->flags & CONN_LINGER) {
        coil__conn_abort(w, c);
        return;
    }
    /* A half-closed peer may still read: send what is queued, then close. An incomplete
     * request can never complete. */
    if ((c->flags & CONN_PAUSED) && c->in) {
        coil__conn_resume(w, c);
        if (c->flags & CONN_CLOSING)
            return;
    }
    partial_free(w, c);
    if (output_queued(c) || (c->flags & CONN_SENDING)) {
        c->flags |= CONN_CLOSE_AFTER;
        return;
    }
    coil__conn_abort(w, c);
}

/* ---- sending ---------------------------------------------------------------------------- */

void coil__conn_flush(struct coil__worker *w, struct coil_conn *c)
{
    if (c->flags & (CONN_SENDING | CONN_CLOSING))
        return;
    if (!c->out && c->pend && c->pend->len) {
        c->out = c->pend;
        c->pend = NULL;
    }
    if (c->out) {
        c->write_deadline = w->now_ms + w->app->cfg.write_timeout_ms;
        coil__submit_send(w, c);
        coil__conn_set_timer(w, c);
    } else if (c->flags & CONN_CLOSE_AFTER) {
        begin_linger(w, c);
    }
}

void coil__conn_on_send(struct coil__worker *w, struct coil_conn *c, int res)
{
    c->flags &= (uint16_t)~CONN_SENDING;
    if (c->flags & CONN_CLOSING) {
        if (c->out) {
            buf_free(w, c->out, c->out->pooled);
            c->out = NULL;
        }
        coil__conn_closing_done(w, c);
        return;
    }
    if (res <= 0) {
        coil__conn_abort(w, c); /* EPIPE, ECONNRESET, ... */
        return;
    }
    struct coil__obuf *b = c->out;
    b->sent += (uint32_t)res;
    if (b->sent < b->len) {
        c->write_deadline = w->now_ms + w->app->cfg.write_timeout_ms;
        coil__submit_send(w, c);
        coil__conn_set_timer(w, c);
        return;
    }
    buf_free(w, b, b->pooled);
    c->out = NULL;
    c->write_deadline = 0;
    if (c->pend && c->pend->len) {
        coil__conn_flush(w, c);
    } else if (c->flags & CONN_CLOSE_AFTER) {
        begin_linger(w, c);
        return;
    } else if (!c->in && w->phase != PHASE_RUN) {
        coil__conn_abort(w, c); /* draining: idle now */
        return;
    } else if (!c->in) {
        c->read_deadline = w->now_ms + w->app->cfg.idle_timeout_ms;
    }
    if ((c->flags & CONN_PAUSED) && (!c->pend || c->pend->len < w->app->cfg.max_pending_out / 2))
        coil__conn_resume(w, c);
    else
        coil__conn_set_timer(w, c);
}

/* ---- timers and shutdown ---------------------------------------------------------------- */

void coil__conn_on_timer(struct coil__worker *w, struct coil_conn *c)
{
    uint64_t now = w->now_ms;
    if (c->flags & (CONN_CLOSING))
        return;
    if (c->flags & CONN_LINGER) {
        coil__conn_abort(w, c);
        return;
    }
    if (c->write_deadline && now >= c->write_deadline) {
        coil__conn_abort(w, c); /* the peer stopped reading */
        return;
    }
    if (c->read_deadline && now >= c->read_deadline && !(c->flags & CONN_PAUSED)) {
        if (c->in) {
            partial_free(w, c);
            reject(w, c, 408);
        } else if (!output_queued(c)) {
            coil__conn_abort(w, c); /* idle keep-alive: silent close */
        } else {
            c->read_deadline = 0;
        }
        return;
    }
    coil__conn_set_timer(w, c);
}

/* Graceful shutdown began: idle connections close now; busy ones finish their request and are
 * answered with Connection: close. */
void coil__conn_drain(struct coil__worker *w, struct coil_conn *c)
{
    if (c->flags & (CONN_CLOSING | CONN_LINGER | CONN_CLOSE_AFTER))
        return;
    if (!c->in && !output_queued(c) && !(c->flags & CONN_SENDING))
        coil__conn_abort(w, c);
}
