/* SPDX-License-Identifier: MIT */
/*
 * http1.c: the HTTP/1.1 codec on one connection: request heads parsed where they land, bodies
 * framed (Content-Length, chunked, or streamed to a route's on_body), requests handed to the
 * request layer in order, and responses serialised (whole, or streamed with chunked framing).
 * It does no I/O: bytes come from the transport (on_data) and go out through
 * coil__conn_reserve; the transport sends them.
 *
 * Received bytes are parsed in the receive buffer: every complete request in it is dispatched
 * before the buffer goes back to the ring. Only what cannot be handled now is copied aside
 * (c->in): an incomplete request, or the requests that arrive behind one whose response is
 * deferred. HTTP/1.1 answers in order, so while c->rq waits nothing behind it is parsed; the
 * held input is bounded (HOLD_BYTES), then the connection stops reading. When the deferred
 * response is finished the held requests run at the end of the batch (on_resume), never inside
 * the callback that finished it, so a handler never runs nested in another request's code.
 *
 * Output: when the queued output passes max_pending_out, reading stops (backpressure) until
 * the transport reports it drained to half; a streamed response's writer is told the same way
 * (on_writable). Engine answers (400s, 404, 405, 408, 413, 503, 504) use the same response
 * path as handler answers.
 */
#include <assert.h>
#include <errno.h>
#include <string.h>

#include "internal.h"

const char *coil__reason(int status)
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
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 416:
        return "Range Not Satisfiable";
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

/* ---- response serialisation ------------------------------------------------------------- */

static char *put_hex(char *p, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[16];
    size_t n = 0;
    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

static char *put_status_line(char *p, int status)
{
    p = COIL_PUT_LIT(p, "HTTP/1.1 ");
    *p++ = (char)('0' + status / 100);
    *p++ = (char)('0' + status / 10 % 10);
    *p++ = (char)('0' + status % 10);
    *p++ = ' ';
    const char *r = coil__reason(status);
    p = coil__put(p, r, strlen(r));
    p = COIL_PUT_LIT(p, "\r\nServer: coil\r\n");
    return p;
}

enum framing {
    FRAME_LENGTH,  /* Content-Length: len */
    FRAME_CHUNKED, /* Transfer-Encoding: chunked; the body follows in pieces */
    FRAME_CLOSE,   /* HTTP/1.0 stream of unknown length: ends when the connection closes */
    FRAME_NONE,    /* a streamed HEAD or body-less status without a length: no framing header */
};

struct resp {
    int status;
    const struct coil__rhdr *hdrs;
    uint32_t nhdrs;
    const char *body; /* FRAME_LENGTH with the body in hand */
    size_t body_len;
    uint64_t length; /* Content-Length */
    enum framing framing;
    bool head;      /* HEAD request: headers only */
    bool close;     /* Connection: close */
    bool keepalive; /* Connection: keep-alive (HTTP/1.0 peer) */
};

/* Appends a response head (and its body, if in hand) to pend: the bytes written, or -ENOMEM if
 * it cannot grow. */
static long write_response(struct coil__worker *w, struct coil_conn *c, const struct resp *r)
{
    bool body = coil__status_has_body(r->status);
    size_t need = 64 + 32 + w->date_len + 40 + 32 + 2 + 28;
    for (uint32_t i = 0; i < r->nhdrs; i++)
        need += (size_t)r->hdrs[i].name_len + r->hdrs[i].value_len + 4;
    bool with_body = body && !r->head && r->body_len;
    if (with_body) {
        if (r->body_len > SIZE_MAX / 2 - need)
            return -ENOMEM;
        need += r->body_len;
    }
    char *start = coil__conn_reserve(w, c, need);
    if (!start)
        return -ENOMEM;
    char *p = put_status_line(start, r->status);
    p = coil__put(p, w->date_line, w->date_len);
    for (uint32_t i = 0; i < r->nhdrs; i++) {
        p = coil__put(p, r->hdrs[i].name, r->hdrs[i].name_len);
        p = COIL_PUT_LIT(p, ": ");
        p = coil__put(p, r->hdrs[i].value, r->hdrs[i].value_len);
        p = COIL_PUT_LIT(p, "\r\n");
    }
    if (body && r->framing == FRAME_LENGTH) {
        p = COIL_PUT_LIT(p, "Content-Length: ");
        p = coil__put_u64(p, r->length);
        p = COIL_PUT_LIT(p, "\r\n");
    } else if (body && r->framing == FRAME_CHUNKED) {
        p = COIL_PUT_LIT(p, "Transfer-Encoding: chunked\r\n");
    }
    if (r->close)
        p = COIL_PUT_LIT(p, "Connection: close\r\n");
    else if (r->keepalive)
        p = COIL_PUT_LIT(p, "Connection: keep-alive\r\n");
    p = COIL_PUT_LIT(p, "\r\n");
    if (with_body)
        p = coil__put(p, r->body, r->body_len);
    c->pend->len += (size_t)(p - start);
    return p - start;
}

/* ---- answering -------------------------------------------------------------------------- */

static bool held(const struct coil_conn *c)
{
    return c->in && c->in->len;
}

/* After a response is queued: close after it, or stop reading while too much waits. */
static void after_response(struct coil__worker *w, struct coil_conn *c, bool keep, bool count)
{
    if (count)
        STAT_INC(w, requests);
    if (!keep)
        c->flags |= CONN_CLOSE_AFTER;
    if (c->pend && c->pend->len >= w->app->cfg.max_pending_out)
        coil__conn_pause(w, c);
    coil__conn_queue_flush(w, c);
}

/* Whether the connection stays open after rq's response. A deferred request decides when it
 * is answered: once draining, only if requests are held behind it. */
static bool keep_open(struct coil__worker *w, struct coil_conn *c, const struct coil__rq *rq)
{
    if (!rq->keep || rq->body_open)
        return false; /* a body not read to its end cannot be skipped: close */
    if (w->phase != PHASE_RUN && rq->deferred)
        return held(c);
    return true;
}

/* The head of rq's response: status, its headers, the Connection header; no body yet. */
static struct resp resp_of(const struct coil__rq *rq, int status, bool keep)
{
    return (struct resp){.status = status,
                         .hdrs = rq->res.hdrs,
                         .nhdrs = rq->res.nhdrs,
                         .framing = FRAME_LENGTH,
                         .head = rq->head,
                         .close = !keep,
                         .keepalive = keep && rq->ka10};
}

int coil__http1_respond(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq,
                        int status)
{
    bool keep = keep_open(w, c, rq);
    struct resp r = resp_of(rq, status, keep);
    r.body = rq->res.body;
    r.body_len = rq->res.body_len;
    r.length = rq->res.body_len;
    long n = write_response(w, c, &r);
    if (n < 0)
        return (int)n;
    rq->bytes_out += (uint64_t)n;
    after_response(w, c, keep, rq->count);
    return 0;
}

/* Answers an unacceptable request and closes once the answer is sent. */
static void reject(struct coil__worker *w, struct coil_conn *c, int status)
{
    STAT_INC(w, rejected);
    if (coil__request_reject(w, c, status) < 0) {
        coil__conn_abort(w, c);
        return;
    }
    coil__conn_close_after(w, c);
}

/* The deferred request of c is done: detach it, and go on with what is held at the end of the
 * batch. */
static void request_done(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq)
{
    if (c->rq == rq)
        c->rq = NULL;
    if (c->flags & (CONN_CLOSING | CONN_CLOSE_AFTER))
        return;
    if (!(c->flags & CONN_BUSY))
        coil__conn_schedule(w, c);
}

void coil__http1_finish(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq,
                        int status)
{
    if (c->rq == rq)
        c->rq = NULL; /* answered: an abort from here on is the connection's, not rq's */
    if (coil__http1_respond(w, c, rq, status) < 0) {
        coil__conn_abort(w, c);
        return;
    }
    request_done(w, c, rq);
}

int coil__http1_stream_head(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq,
                            int status)
{
    bool keep = keep_open(w, c, rq);
    rq->no_body = rq->head || !coil__status_has_body(status);
    enum framing f = FRAME_CHUNKED;
    if (rq->length)
        f = FRAME_LENGTH;
    else if (rq->no_body)
        f = FRAME_NONE; /* nothing follows the head: no framing to announce */
    else if (!rq->http11) {
        f = FRAME_CLOSE; /* an HTTP/1.0 client knows no chunks: the close ends the body */
        keep = false;
    }
    rq->keep = keep;
    rq->chunked = f == FRAME_CHUNKED;
    struct resp r = resp_of(rq, status, keep);
    r.length = rq->length ? rq->length - 1 : 0;
    r.framing = f;
    long n = write_response(w, c, &r);
    if (n < 0)
        return (int)n;
    rq->bytes_out += (uint64_t)n;
    coil__conn_queue_flush(w, c);
    return 0;
}

int coil__http1_stream_piece(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq,
                             const void *data, size_t len)
{
    if (rq->no_body || len == 0)
        return 0;
    char *p = coil__conn_reserve(w, c, len + 20);
    if (!p)
        return -ENOMEM;
    char *start = p;
    if (rq->chunked) {
        p = put_hex(p, len);
        p = COIL_PUT_LIT(p, "\r\n");
    }
    p = coil__put(p, data, len);
    if (rq->chunked)
        p = COIL_PUT_LIT(p, "\r\n");
    c->pend->len += (size_t)(p - start);
    rq->bytes_out += (uint64_t)(p - start);
    coil__conn_queue_flush(w, c);
    return 0;
}

void coil__http1_stream_end(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq)
{
    if (c->rq == rq)
        c->rq = NULL;
    /* The head was sent before a drain may have begun: decide again, as for any answer. */
    rq->keep = keep_open(w, c, rq);
    if (rq->chunked && !rq->cut) { /* a cut body must not look whole: the close says it */
        char *p = coil__conn_reserve(w, c, 5);
        if (!p) {
            coil__conn_abort(w, c);
            return;
        }
        memcpy(p, "0\r\n\r\n", 5);
        c->pend->len += 5;
        rq->bytes_out += 5;
    }
    after_response(w, c, rq->keep, rq->count);
    request_done(w, c, rq);
}

/* ---- requests --------------------------------------------------------------------------- */

/* Queues "100 Continue" once for a request whose body is still to come. */
static void maybe_continue(struct coil__worker *w, struct coil_conn *c,
                           const struct coil__http_req *h, struct coil__progress *pg)
{
    if (!(h->flags & COIL_HTTP_EXPECT_100) || pg->sent_100)
        return;
    static const char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    char *p = coil__conn_reserve(w, c, sizeof(msg) - 1);
    if (!p) {
        coil__conn_abort(w, c);
        return;
    }
    memcpy(p, msg, sizeof(msg) - 1);
    c->pend->len += sizeof(msg) - 1;
    pg->sent_100 = 1;
    coil__conn_queue_flush(w, c);
}

/* The body limit of a route (NULL: no route matched): its own, else --max-body-bytes. */
static uint64_t body_limit(const struct coil__worker *w, const struct coil__route *r)
{
    return r && r->max_body ? r->max_body : w->app->cfg.lim.max_body_bytes;
}

/* Hands one complete request to the request layer (or answers 404/405). */
static void dispatch(struct coil__worker *w, struct coil_conn *c, struct coil__http_req *h, int mr,
                     const struct coil__match *m, struct coil_str body, bool more,
                     struct coil__progress *pg, const char *buf, size_t head_len, uint64_t wire)
{
    bool keep = (h->flags & COIL_HTTP_KEEP_ALIVE) != 0;
    /* Draining: the last request in hand gets Connection: close. */
    if (w->phase != PHASE_RUN && !more)
        keep = false;
    struct coil__dispatch d = {.http = h,
                               .match = m,
                               .route_status = mr < 0 ? -mr : 0,
                               .body = body,
                               .state = pg->state,
                               .buf = buf,
                               .head_len = head_len,
                               .head = (h->flags & COIL_HTTP_HEAD) != 0,
                               .keep = keep,
                               .ka10 = keep && h->minor == 0,
                               .http11 = h->minor == 1,
                               .wire = wire};
    if (mr == 0 && m->route->early) {
        d.early = true;
        if (h->flags & COIL_HTTP_CHUNKED) {
            d.body_mode = BODY_CHUNKED;
        } else if ((h->flags & COIL_HTTP_HAS_LENGTH) && h->content_length) {
            d.body_mode = BODY_LENGTH;
            d.body_len = h->content_length;
        }
        d.body_max = body_limit(w, m->route);
    }
    struct coil__rq *rq = coil__request_run(w, c, &d);
    if (rq && (c->flags & CONN_CLOSING))
        coil__request_abort(w, rq, 0); /* the connection failed while its handler ran */
    else if (rq)
        c->rq = rq;
}

/*
 * Passes the body bytes at body[0..n) of a streaming request to its route's on_body, and runs
 * the handler once the body is complete. Every byte up to the body's end is consumed: a
 * chunked decoder that needs more keeps its place in pg->ck, not in the buffer. Returns the
 * bytes consumed, or -1 if the connection is closing. pg->streaming is cleared once the
 * request has been dispatched.
 */
static long stream_body(struct coil__worker *w, struct coil_conn *c, struct coil__http_req *h,
                        const struct coil__match *m, struct coil__progress *pg, char *body,
                        size_t n, const char *head)
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
        int rc = coil__request_body(w, h, m, pg->state, body, give);
        if (rc != 0) {
            reject(w, c, rc >= 400 && rc <= 599 ? rc : 500);
            return -1;
        }
        pg->streamed += give;
    }
    pg->wire += used;
    if (done) {
        pg->streaming = 0;
        dispatch(w, c, h, 0, m, (struct coil_str){body, 0}, used < n, pg, head, pg->body_off,
                 pg->body_off + pg->wire);
        if (c->flags & CONN_CLOSING)
            return -1;
    }
    return (long)used;
}

/* ---- an early route's body, read after its handler ran ---------------------------------- */

/* Keeps body bytes received while the reader pauses (or before it is set). */
static int hold_raw(struct coil__worker *w, struct coil__rq *rq, const char *data, size_t n)
{
    return coil__bytes_append(w, &rq->body_raw, &rq->body_raw_len, &rq->body_raw_cap, data, n);
}

/* Gives the reader a piece (or the end). 0 taken, 1 left (kept; reading paused), -1 when rq is
 * no longer the connection's request (finished or aborted in the call) or it is closing. */
static int give_piece(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq,
                      const char *data, size_t len, bool end)
{
    if (!len && !end)
        return 0;
    if (end)
        rq->body_end_due = false;
    coil__conn_hold(c);
    int rc = coil__request_piece(w, rq, end ? NULL : data, end ? 0 : len);
    bool open = coil__conn_release(w, c);
    if (!open || c->rq != rq)
        return -1;
    if (rc == COIL_BODY_PAUSE && !end) {
        rq->body_resume = false; /* only a resume asked for after this pause counts */
        rq->body_piece = coil__walloc(&w->wa, len);
        if (!rq->body_piece) {
            coil__conn_abort(w, c);
            return -1;
        }
        memcpy(rq->body_piece, data, len);
        rq->body_piece_len = len;
        rq->body_paused = true;
        coil__conn_pause(w, c);
        return 1;
    }
    return 0;
}

/*
 * Body bytes data[0..n) of rq, an early route's request whose body is open: decoded (in place)
 * and given to its reader, or held while it pauses. Returns the bytes used (what follows the
 * body's end is not), or -1 if the connection is closing.
 */
static long body_feed(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq, char *data,
                      size_t n)
{
    if (rq->body_paused || !rq->on_piece || rq->body_piece) {
        if (hold_raw(w, rq, data, n) < 0) {
            coil__conn_abort(w, c);
            return -1;
        }
        if (!(c->flags & CONN_PAUSED))
            coil__conn_pause(w, c);
        return (long)n;
    }
    size_t give, used;
    bool done;
    if (rq->body_mode == BODY_CHUNKED) {
        rq->body_ck.in = rq->body_ck.out = 0;
        int cr = coil__chunked_decode(&rq->body_ck, data, n, rq->body_max - rq->body_read,
                                      w->app->cfg.lim.max_header_bytes);
        if (cr < 0) {
            coil__request_abort(w, rq, -cr); /* 400 or 413, if it can still be said */
            if (!(c->flags & CONN_CLOSING))
                coil__conn_close_after(w, c);
            return -1;
        }
        give = rq->body_ck.out;
        used = rq->body_ck.in;
        done = cr == 1;
    } else {
        give = used = n < rq->body_left ? n : (size_t)rq->body_left;
        rq->body_left -= give;
        done = rq->body_left == 0;
    }
    rq->body_read += give;
    rq->bytes_in += used; /* as received, framing included (held bytes count when fed again) */
    if (done) {
        rq->body_open = false;
        rq->body_end_due = true;
    }
    int rc = give_piece(w, c, rq, data, give, false);
    if (rc < 0)
        return (c->flags & CONN_CLOSING) ? -1 : (long)(done ? used : n);
    if (rc == 1) {
        if (!done && hold_raw(w, rq, data + used, n - used) < 0) {
            coil__conn_abort(w, c);
            return -1;
        }
        return (long)(done ? used : n);
    }
    if (done && give_piece(w, c, rq, NULL, 0, true) < 0)
        return (c->flags & CONN_CLOSING) ? -1 : (long)used;
    return (long)used;
}

/*
 * Handles the request starting at buf. Returns its length once it is complete and dispatched,
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
    if (mr == 0 && m.route->early) {
        /* The handler runs now; the body follows to its reader (body_feed). */
        bool body =
            (h.flags & COIL_HTTP_CHUNKED) || ((h.flags & COIL_HTTP_HAS_LENGTH) && h.content_length);
        if (body)
            maybe_continue(w, c, &h, pg);
        if (c->flags & CONN_CLOSING)
            return -1;
        dispatch(w, c, &h, mr, &m, (struct coil_str){buf + head, 0}, len > head, pg, buf, head,
                 head); /* its body is counted as its reader takes it (body_feed) */
        if (c->flags & CONN_CLOSING)
            return -1;
        memset(pg, 0, sizeof(*pg));
        if (!body)
            return (long)head;
        if (c->rq && c->rq->body_open) {
            long used = body_feed(w, c, c->rq, buf + head, len - head);
            return used < 0 ? -1 : (long)head + used;
        }
        /* Answered without reading its body: only a close can skip it. */
        coil__conn_close_after(w, c);
        return (long)len;
    }
    if (mr == 0 && m.route->on_body) {
        if (!pg->streaming) {
            pg->streaming = 1;
            pg->body_off = (uint32_t)head;
            coil__chunked_init(&pg->ck);
        }
        long used = stream_body(w, c, &h, &m, pg, buf + head, len - head, buf);
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
    dispatch(w, c, &h, mr, &m, body, total < len, pg, buf, head, total);
    if (c->flags & CONN_CLOSING)
        return -1;
    memset(pg, 0, sizeof(*pg));
    return (long)total;
}

/* Answers the complete requests in buf, in order, until one waits; returns the bytes consumed.
 * pg is the progress of the first request (in and out: on return, that of the incomplete
 * request left, if any). */
static size_t process(struct coil__worker *w, struct coil_conn *c, char *buf, size_t len,
                      struct coil__progress *pg)
{
    size_t off = 0;
    while (off < len) {
        if (c->rq || (c->flags & (CONN_PAUSED | CONN_CLOSE_AFTER | CONN_CLOSING)))
            break;
        long r = handle_one(w, c, buf + off, len - off, pg);
        if (r <= 0)
            break;
        off += (size_t)r;
    }
    return off;
}

/* ---- held input ------------------------------------------------------------------------- */

/* Held input behind a waiting request, past which the connection stops reading. */
static size_t hold_limit(const struct coil__worker *w)
{
    return (size_t)w->app->cfg.io_buf_size * 4;
}

/* Makes room for `need` bytes in the partial (creating it if absent). -ENOMEM or -E2BIG. */
static int partial_reserve(struct coil__worker *w, struct coil_conn *c, size_t need)
{
    const struct coil__config *cfg = &w->app->cfg;
    struct coil__partial *p = c->in;
    if (p && p->cap >= need)
        return 0;
    /* One request plus framing slack; pipelined bytes beyond it wait in the socket. */
    uint64_t limit = (uint64_t)cfg->lim.max_header_bytes + w->app->body_cap + (1u << 20) +
                     cfg->recv_buf_size + hold_limit(w);
    if (need > limit && need > (p ? p->cap : 0))
        return -E2BIG;
    uint8_t pooled = p ? p->pooled : 0;
    size_t used = p ? p->len : 0;
    size_t cap;
    struct coil__partial *np =
        coil__buf_grow(w, p, offsetof(struct coil__partial, data), used, need, &pooled, &cap);
    if (!np)
        return -ENOMEM;
    if (!p)
        memset(np, 0, offsetof(struct coil__partial, data));
    np->pooled = pooled;
    np->cap = (uint32_t)(cap > UINT32_MAX ? UINT32_MAX : cap);
    c->in = np;
    return 0;
}

/* Drops the consumed prefix of the partial (and the decoded-away chunk framing). */
static void partial_consume(struct coil__worker *w, struct coil_conn *c, size_t used)
{
    struct coil__partial *p = c->in;
    if (used == p->len) {
        coil__conn_partial_free(w, c);
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
        coil__conn_partial_free(w, c);
        return;
    }
    partial_consume(w, c, used);
}

/* Sets the read deadline for what the connection waits for now. */
static void after_input(struct coil__worker *w, struct coil_conn *c, bool was_partial,
                        uint32_t old_body_off)
{
    const struct coil__config *cfg = &w->app->cfg;
    if (c->flags & (CONN_CLOSING | CONN_LINGER))
        return;
    if (c->rq) {
        /* The handler timeout governs; input behind it is only held, and reading stops once
         * too much of it is. */
        c->read_deadline = 0;
        if (c->in && c->in->len >= hold_limit(w) && !(c->flags & CONN_PAUSED))
            coil__conn_pause(w, c);
    } else if (c->flags & CONN_CLOSE_AFTER) {
        c->read_deadline = 0;
    } else if (c->in) {
        if (c->in->prog.body_off)
            c->read_deadline = w->now_ms + cfg->body_timeout_ms;
        else if (!was_partial || old_body_off)
            c->read_deadline = w->now_ms + cfg->header_timeout_ms;
    } else if (coil__conn_queued(c)) {
        c->read_deadline = 0;
    } else {
        c->read_deadline = w->now_ms + cfg->idle_timeout_ms;
    }
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
    long used = stream_body(w, c, &h, &m, &p->prog, data, n, p->data);
    if (used >= 0 && !p->prog.streaming && c->in == p)
        coil__conn_partial_free(w, c);
    return used;
}

/* Appends data to the held input. false if the connection was closed for it. */
static bool hold(struct coil__worker *w, struct coil_conn *c, const char *data, size_t n)
{
    size_t have = c->in ? c->in->len : 0;
    int err = partial_reserve(w, c, have + n);
    if (err < 0) {
        if (err == -E2BIG && !c->rq && !(c->flags & CONN_PAUSED))
            reject(w, c, 413);
        else
            coil__conn_abort(w, c);
        return false;
    }
    memcpy(c->in->data + have, data, n);
    c->in->len = (uint32_t)(have + n);
    return true;
}

/*
 * The first bytes of a plain connection: HTTP/2's preface (h2c with prior knowledge) hands the
 * connection to http2.c with what came so far. A prefix of it is held until it is whole or
 * differs. true when the bytes were taken here.
 */
static bool take_preface(struct coil__worker *w, struct coil_conn *c, const char *data, size_t n)
{
    const char *p = data;
    size_t len = n;
    if (c->in) {
        if (!hold(w, c, data, n))
            return true;
        p = c->in->data;
        len = c->in->len;
    }
    int r = coil__h2_preface(w, p, len);
    if (r < 0) {
        if (!c->in && !hold(w, c, data, n))
            return true;
        after_input(w, c, false, 0);
        return true;
    }
    c->flags &= (uint16_t)~CONN_FRESH;
    if (r == 0) {
        if (!c->in)
            return false; /* HTTP/1.1: on as usual */
        run_partial(w, c);
        after_input(w, c, true, 0);
        return true;
    }
    c->proto = &coil__http2;
    struct coil__partial *in = c->in;
    c->in = NULL;
    c->proto->on_data(w, c, p, len);
    if (in)
        coil__buf_free(w, in, in->pooled);
    return true;
}

static void on_data(struct coil__worker *w, struct coil_conn *c, const char *data, size_t n)
{
    if ((c->flags & CONN_FRESH) && take_preface(w, c, data, n))
        return;
    bool was_partial = c->in != NULL;
    uint32_t old_body_off = was_partial ? c->in->prog.body_off : 0;
    if (c->rq && c->rq->body_open) {
        long used = body_feed(w, c, c->rq, (char *)data, n);
        if (used < 0)
            return;
        data += used;
        n -= (size_t)used;
        if (n == 0 || (c->flags & (CONN_CLOSING | CONN_CLOSE_AFTER))) {
            after_input(w, c, was_partial, old_body_off);
            return;
        }
    }
    if (was_partial && c->in->prog.streaming && !c->rq && !(c->flags & CONN_PAUSED)) {
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
         * input (held aside if its response waits or paused reading). */
    }
    if (!c->in && !c->rq && !(c->flags & CONN_PAUSED)) {
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
        if (!hold(w, c, data, n))
            return;
        if (!c->rq && !(c->flags & CONN_PAUSED))
            run_partial(w, c);
    }
    after_input(w, c, was_partial, old_body_off);
}

/* Reading may go on: handle what was held back, then read again unless something new stops
 * it (output backpressure, a waiting request, the connection closing). */
static void resume(struct coil__worker *w, struct coil_conn *c)
{
    if (c->rq || (c->flags & CONN_CLOSING))
        return;
    c->flags &= (uint16_t)~CONN_PAUSED;
    if (c->in) {
        uint32_t bo = c->in->prog.body_off;
        /* A head held behind a deferred request had no deadline while it waited: its header
         * timeout starts now. One paused for output keeps the deadline it had. */
        bool was_timed = c->read_deadline != 0;
        c->flags |= CONN_BUSY;
        run_partial(w, c);
        c->flags &= (uint16_t)~CONN_BUSY;
        after_input(w, c, was_timed, bo);
    } else {
        after_input(w, c, false, 0);
    }
    /* Read on, even behind a request that now waits (after_input paused if too much is held):
     * a client that goes away must be noticed. */
    if (c->flags & (CONN_CLOSING | CONN_PAUSED | CONN_CLOSE_AFTER | CONN_EOF))
        return;
    coil__conn_unpause(w, c);
}

/* The reader of an early route's body asked for more (coil_req_read, coil_req_resume): what it
 * left and what was held meanwhile go to it, then reading goes on. */
static void body_resume(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq)
{
    rq->body_resume = false;
    rq->body_paused = false;
    if (rq->body_piece) {
        char *p = rq->body_piece;
        size_t n = rq->body_piece_len;
        rq->body_piece = NULL;
        rq->body_piece_len = 0;
        int rc = give_piece(w, c, rq, p, n, false);
        coil__wfree(&w->wa, p);
        if (rc != 0)
            return;
    }
    if (rq->body_end_due && !rq->body_open && give_piece(w, c, rq, NULL, 0, true) < 0)
        return;
    if (rq->body_raw_len) {
        char *raw = rq->body_raw;
        size_t n = rq->body_raw_len;
        rq->body_raw = NULL;
        rq->body_raw_len = rq->body_raw_cap = 0;
        long used = rq->body_open ? body_feed(w, c, rq, raw, n) : 0;
        bool ok = used >= 0;
        if (ok && (size_t)used < n && !(c->flags & (CONN_CLOSING | CONN_CLOSE_AFTER)))
            ok = hold(w, c, raw + used, n - (size_t)used); /* what follows the body */
        coil__wfree(&w->wa, raw);
        if (!ok)
            return;
    }
    if (c->flags & (CONN_CLOSING | CONN_CLOSE_AFTER))
        return;
    if (!c->rq) {
        resume(w, c); /* finished meanwhile: go on as after any answer */
        return;
    }
    if (!rq->body_paused && (c->flags & CONN_PAUSED) && !(c->in && c->in->len >= hold_limit(w)))
        coil__conn_unpause(w, c);
}

static void on_resume(struct coil__worker *w, struct coil_conn *c)
{
    if (c->rq && c->rq->body_resume) {
        body_resume(w, c, c->rq);
        return;
    }
    if (c->flags & CONN_EOF) {
        /* The peer half-closed while its request waited: answer what is held, then close. */
        resume(w, c);
        if (!(c->flags & CONN_CLOSING) && !c->rq) {
            coil__conn_partial_free(w, c);
            coil__conn_close_after(w, c);
        }
        return;
    }
    if (c->pend && c->pend->len >= w->app->cfg.max_pending_out)
        return; /* on_sent resumes once the output drains */
    resume(w, c);
}

static void on_eof(struct coil__worker *w, struct coil_conn *c)
{
    if (c->rq) {
        coil__conn_abort(w, c); /* the client is gone: its waiting request is aborted */
        return;
    }
    /* A half-closed peer may still read: send what is queued, then close. An incomplete
     * request can never complete. */
    if ((c->flags & CONN_PAUSED) && c->in) {
        resume(w, c);
        if (c->flags & CONN_CLOSING)
            return;
        if (c->rq)
            return; /* a held request now waits; on_resume closes after it */
    }
    coil__conn_partial_free(w, c);
    if (coil__conn_queued(c) || (c->flags & CONN_SENDING)) {
        coil__conn_close_after(w, c);
        return;
    }
    coil__conn_abort(w, c);
}

static void on_read_timeout(struct coil__worker *w, struct coil_conn *c)
{
    if (c->rq) {
        c->read_deadline = 0;
        coil__conn_set_timer(w, c);
        return;
    }
    if (c->in) {
        if (c->in->prog.body_off)
            STAT_INC(w, t_body);
        else
            STAT_INC(w, t_header);
        coil__conn_partial_free(w, c);
        reject(w, c, 408);
    } else if (!coil__conn_queued(c)) {
        if (w->phase == PHASE_RUN)
            STAT_INC(w, t_idle);     /* (draining: the grace above ended) */
        coil__conn_close_idle(w, c); /* idle keep-alive: silent close */
    } else {
        c->read_deadline = 0;
        coil__conn_set_timer(w, c);
    }
}

/*
 * Draining: an idle connection is not closed at once, since its client may be sending a request
 * right now, and a close crossing it would fail that request. It may stay idle DRAIN_GRACE_MS
 * more (or its idle timeout, if shorter); a request in that time is answered with Connection:
 * close. A replacement coil on the same port then takes the clients' next connections.
 */
#define DRAIN_GRACE_MS 1000
static void on_drain(struct coil__worker *w, struct coil_conn *c)
{
    if (c->rq || c->in || coil__conn_queued(c) || (c->flags & CONN_SENDING))
        return;
    uint64_t grace =
        w->app->cfg.idle_timeout_ms < DRAIN_GRACE_MS ? w->app->cfg.idle_timeout_ms : DRAIN_GRACE_MS;
    c->read_deadline = w->now_ms + grace;
    coil__conn_set_timer(w, c);
}

static void on_sent(struct coil__worker *w, struct coil_conn *c)
{
    uint32_t max = w->app->cfg.max_pending_out;
    if (c->rq) {
        if (c->rq->want_writable && coil__conn_queued(c) <= COIL_STREAM_HIGH / 2)
            coil__request_writable(w, c->rq);
        return;
    }
    if (coil__conn_queued(c))
        return;
    if (!c->in && w->phase != PHASE_RUN) {
        on_drain(w, c); /* draining: idle now, after a response that kept the connection */
        return;
    }
    if (!c->in) {
        c->read_deadline = w->now_ms + w->app->cfg.idle_timeout_ms;
        coil__conn_set_timer(w, c);
    }
    if ((c->flags & CONN_PAUSED) && (!c->pend || c->pend->len < max / 2))
        resume(w, c);
}

static void on_abort(struct coil__worker *w, struct coil_conn *c)
{
    struct coil__rq *rq = c->rq;
    if (!rq)
        return;
    c->rq = NULL;
    coil__request_abort(w, rq, 0);
}

/* Graceful shutdown began: idle connections close now; busy ones finish their request and are
 * answered with Connection: close. */
const struct coil__proto coil__http1 = {
    .on_data = on_data,
    .on_eof = on_eof,
    .on_read_timeout = on_read_timeout,
    .on_sent = on_sent,
    .on_resume = on_resume,
    .on_abort = on_abort,
    .on_drain = on_drain,
};
