/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http1: libFuzzer target for the HTTP/1.1 engine above the ring: the real transport
 * (tcp.c), the codec and the request lifecycle (http1.c, request.c, req.c, router.c,
 * http_parse.c, json.c, query.c, wait.c, timer.c, alloc/), driven through the fake kernel of
 * fake_kernel.c: tcp.c prepares its SQEs as usual and the harness decides how the kernel
 * completes them. No ring, no real socket, no thread.
 *
 * HTTP/2 (http2.c on libnghttp2) is on, as coil_app_run sets it up (coil__h2_setup, the
 * options, coil__h2_install), with limits small enough for one input to reach them:
 * --h2-max-streams 8 --h2-window 4K --h2-max-control 10 --h2-reset-burst 8 --h2-reset-rate 2.
 * A connection whose first bytes (RAW) are the preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" is
 * handed to http2.c by http1.c (h2c with prior knowledge); what follows in RAW is HTTP/2
 * frames (make_corpus_http1.py's h2_* seeds build them), and its peer checks HTTP/2 frames
 * instead of HTTP/1.1 responses (the HTTP/2 checker, below the HTTP/1.1 one). No op was added:
 * the encoding is unchanged.
 *
 * The input is a little program run against one worker with up to four connections. Each op
 * is one byte (taken modulo OP_COUNT) followed by its operands; reading past the end yields
 * zeros, so every input is a valid program. Operands are little-endian.
 *
 *   00 ACCEPT             a connection arrives: the multishot accept completes with a new
 *                         socket (nothing if no accept is armed); it becomes the current one
 *   01 SELECT s           current connection = slot s % 4
 *   02 RAW n:u16 bytes    the peer writes n raw bytes (queued; see RECV)
 *   03 REQ r f l:u16 a b k  the peer writes one well-formed request built by the harness
 *                         (route r, flags f, body length l, route parameters a and b, chunk
 *                         size k); it carries "X-Seq: <its index on the connection>"
 *                         f: 1 HEAD, 2 HTTP/1.0, 4 Connection: close, 8 keep-alive,
 *                         16 Expect: 100-continue, 32 chunked, 64 length x 32, 128 filler
 *                         headers; k: chunk size (k & 127, 0: one chunk), 128 extensions and
 *                         a trailer. Routes (r % 18) and parameters: op_req;
 *                         make_corpus_http1.py.
 *   04 RECV s:u16         one completion of the armed recv: up to s & 0x3fff bytes (0: 16384)
 *                         of what the peer wrote in a provided buffer (s & 0x4000: without
 *                         IORING_CQE_F_MORE, as when the CQ overflows), or its EOF / reset; a
 *                         pending cancel or the abort's shutdown ends it first unless
 *                         s & 0x8000 (data the kernel posted before them comes first)
 *   05 RECV_ALL s         recv completions until nothing is left to read, in pieces of size(s)
 *   06 CLOCK t            the clock advances by ms(t), then the loop's tail runs: completions
 *                         the kernel made itself (cancels), due wheel timers, due precise
 *                         timers, the drain deadline, end of batch
 *   07 SEND k:u16         the send in flight completes with k bytes (0: all of it); once the
 *                         abort shut the socket down it fails, unless k is odd (it completed
 *                         before the shutdown)
 *   08 SEND_ALL           end of batch and every send completes, until nothing is left to send
 *   09 EOF                the peer shuts its write side (seen after the bytes it wrote)
 *   0a RESET              the peer resets: the armed recv or the send in flight fails
 *   0b BATCH              the loop's tail without the clock moving
 *   0c DRAIN              graceful shutdown begins (EV_DRAIN)
 *   0d FORCE              every connection is aborted (EV_FORCE, as at the drain deadline)
 *   0e ENOBUFS            the multishot recv ends with -ENOBUFS (it is re-armed)
 *   0f SQEFAIL n          the next n%4+1 calls to coil__sqe fail as if the SQ stayed full; if
 *                         n & 0x80, instead the multishot accept fails with errno
 *                         {EMFILE, ENFILE, ENOBUFS, ENOMEM, ECONNABORTED, EINTR, EAGAIN,
 *                         EPERM}[n & 7], and stays armed if n & 8
 *   10 SEND_ERR           the send in flight fails with -EPIPE
 *   11 PUMP               RECV_ALL on every connection, then SEND_ALL
 *   12 ALLOCFAIL n        the worker's (n%64+1)-th allocation from now fails (walloc injection)
 *
 * At the end of the input: end of batch and every send completes (the clock does not move),
 * then every connection is aborted, completions still in flight arrive, the clock jumps an
 * hour twice so every timer fires, and the worker stops as the loop stops it (graceful shutdown:
 * the accept is cancelled, the listener closed), leaving the kernel idle.
 *
 * Early routes (coil_route_stream with on_body NULL: the handler runs at the head, defers and
 * reads the body with coil_req_read): POST /early reads its whole body, its reader leaving
 * pieces with COIL_BODY_PAUSE (every other call, each new piece once, or the first piece
 * twice) and resuming them from a timer (0-100 ms); it answers "early <len> <hash>" at the end
 * call or from a timer after it, and may start reading from a timer (the body is held until
 * then) or return -EIO after coil_req_read. /earlys is the same with a 64-byte limit.
 * POST /earlynow answers before its body is read: in the handler, or at its n-th piece (then
 * possibly returning COIL_BODY_PAUSE anyway), or from the timer of a pause instead of resuming;
 * with coil_res_fail (400, 413, 502, 504) or without deferring at all. Operands: op_req,
 * make_corpus_http1.py.
 *
 * FUZZ_TRACE=1 prints the ops and one line per response (2: with its head); on an HTTP/2
 * connection one line per response head, RST_STREAM and GOAWAY (2: every frame); FUZZ_VERBOSE=1
 * the engine's log (and http2.c's debug lines).
 *
 * Invariants (abort even under NDEBUG; ASan, UBSan and LSan do the rest):
 *  - what the peer receives on a connection is a sequence of well-formed HTTP/1.1 responses:
 *    status line with the right reason phrase, header lines, Server, Content-Length or chunked
 *    framing (or, with Connection: close, a body to the close); nothing after a response that
 *    said Connection: close; nothing after the server's FIN; the FIN comes between responses
 *    (or inside a streamed body that is short of its Content-Length, or one delimited by the
 *    close);
 *  - while a connection carries only harness-built requests, final response k answers
 *    request k: there are never more final responses than requests, a response from a route
 *    echoes X-Seq k (so deferred answers come back in request order), routes that report the
 *    body they received (echo, upload, defer, early) report its exact length and hash, and a
 *    100 Continue only comes for the request being answered, once, if it asked;
 *  - early routes: a response that says X-Unread (answered when its body was surely not all
 *    read: short of its Content-Length, or chunked and answered in the handler) closes the
 *    connection, so nothing pipelined behind the body is parsed (an answer after it would break
 *    the rule above); the reader (early_piece) gets each piece once, non-empty, with data,
 *    nothing while it pauses (before its coil_req_resume), the piece it left again and the same
 *    after that, then one end call (NULL, 0) after exactly the Content-Length, nothing after the
 *    end or after the answer; coil_req_read and coil_req_resume refuse what coil.h says they
 *    refuse (not deferred, not an early route, a reader already, no reader, finished);
 *  - the transport contract: no on_data re-entered, no protocol call but on_abort on an
 *    aborting connection, no output queued on an aborting or lingering connection (the link
 *    wraps coil__conn_reserve), on_abort leaves no request behind; between two ops (fk_check)
 *    every hold was released, each connection's flags match what the kernel has in flight, and
 *    every provided buffer was given back;
 *  - what the kernel sees (fake_kernel.c): well-formed SQEs for live connections and open
 *    sockets, one recv and one send at a time, no recv after the abort or the EOF, no send
 *    after the FIN, MSG_NOSIGNAL, send buffers unchanged until the send completes, no socket
 *    closed with an operation in flight or closed twice, no provided buffer given back twice
 *    or read past its data (ASan poisoning);
 *  - at the end: no connection, request, timer or flush entry is left, the kernel is idle
 *    (every socket closed, every buffer back), and every walloc allocation was freed
 *    (nalloc == nfree);
 *  - HTTP/2: what the peer receives is well-formed HTTP/2 from a server (frame by frame, each
 *    header block decoded with an HPACK decoder of the harness's own): see "the HTTP/2 checker".
 *    The transport contract checks around the codec's calls (checked_http1) stop at the
 *    preface: request.c tells the codecs apart by c->proto == &coil__http2, so http2.c cannot
 *    be wrapped; coil__conn_reserve's check and fk_check still apply.
 */
#include <errno.h>
#include <inttypes.h>
#ifdef COIL_HAVE_HTTP2
#include <nghttp2/nghttp2.h>
#endif
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_kernel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NPEERS 4
#define RECV_MAX 16384u
#define GEN_BUDGET (1u << 20) /* request body bytes the harness may build per input */
#define WORK_BUDGET 20000u    /* recv/send completions per input */
#define HEAD_MAX (64u * 1024) /* a response head the checker accepts */
#define CHECK_BODY_MAX 128u   /* body bytes kept for the routes that report a hash */

/* ---- helpers ---------------------------------------------------------------------------- */

__attribute__((noinline, no_sanitize("coverage"))) static uint64_t fnv(uint64_t h, const void *p,
                                                                       size_t n)
{
    const unsigned char *s = p;
    if (!h)
        h = 0xcbf29ce484222325u;
    for (size_t i = 0; i < n; i++)
        h = (h ^ s[i]) * 0x100000001b3u;
    return h;
}

/* ---- the application: routes written against coil.h ------------------------------------ */

enum route {
    R_TEXT,
    R_JSON,
    R_ECHO,
    R_UPLOAD,
    R_DEFER,
    R_NOW,
    R_STREAM,
    R_HANG,
    R_ENOMEM,
    R_UNOWNED,
    R_NOPE,
    R_DELETE,
    R_SMALL,
    R_PARAM,
    R_FAIL,
    R_STREAMNOW,
    R_EARLY,
    R_EARLYNOW,
    R_COUNT
};

static struct coil_app app;
static int trace = -1;       /* FUZZ_TRACE=1: ops, and one line per response each peer receives */
static unsigned aborts_seen; /* on_abort calls (checked only for being harmless) */
static char big_body[512 * 1024];
static char piece_buf[32 * 1024];

static struct coil_defer unowned[64];
static unsigned unowned_next;

static uint64_t qnum(struct coil_req *req, const char *name, uint64_t dflt, uint64_t max)
{
    struct coil_str v;
    if (coil_req_query_param(req, name, &v) != 1 || v.len == 0)
        return dflt;
    uint64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.ptr[i] < '0' || v.ptr[i] > '9')
            return dflt;
        n = n * 10 + (uint64_t)(v.ptr[i] - '0');
        if (n > max)
            n = max;
    }
    return n;
}

/* Echoes the request's X-Seq: the checker matches responses to requests with it. */
static void seq(struct coil_req *req, struct coil_res *res)
{
    struct coil_str v = coil_req_header(req, "x-seq");
    if (v.ptr)
        coil_res_headern(res, "X-Seq", 5, v.ptr, v.len);
}

/* "<what> <len> <hash>\n" for a body: what the checker expects from echo, upload, defer. */
static int body_report(struct coil_req *req, struct coil_res *res, const char *what, uint64_t len,
                       uint64_t hash)
{
    char *b = coil_req_alloc(req, 96);
    if (!b)
        return -ENOMEM;
    int n = snprintf(b, 96, "%s %" PRIu64 " %016" PRIx64 "\n", what, len, hash);
    coil_res_header(res, "Content-Type", "text/plain");
    return coil_res_body(res, b, (size_t)n);
}

static void count_abort(void *ud)
{
    (void)ud;
    aborts_seen++;
}

/* Whether req's connection speaks HTTP/2 (asked before a call that may free req). */
static bool on_h2(const struct coil_req *req)
{
    return req->rq && req->rq->conn && req->rq->conn->proto == &coil__http2;
}

/* A call that failed under its caller (-EPIPE) ran on_abort: its own request's, once. Over
 * HTTP/2 the connection's failure aborts every stream's request, the caller's among them. */
static bool aborted_in_call(unsigned before, bool h2)
{
    return h2 ? aborts_seen > before : aborts_seen == before + 1;
}

static int h_text(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    seq(req, res);
    size_t bytes = 0;
    for (size_t i = 0; i < coil_req_header_count(req); i++) {
        struct coil_str n, v;
        REQUIRE(coil_req_header_at(req, i, &n, &v) == 0);
        bytes += n.len + v.len;
    }
    struct coil_str n, v;
    REQUIRE(coil_req_header_at(req, coil_req_header_count(req), &n, &v) == -ERANGE);
    REQUIRE(coil_req_version(req) == 10 || coil_req_version(req) == 11);
    (void)coil_req_method(req);
    (void)coil_req_path(req);
    (void)bytes;
    struct coil_str hv;
    if (coil_req_query_param(req, "hdr", &hv) == 1) {
        int r = coil_res_headern(res, "X-Echo", 6, hv.ptr, hv.len);
        REQUIRE(r == 0 || r == -EINVAL || r == -ENOMEM);
    }
    REQUIRE(coil_res_header(res, "Content-Length", "1") == -EPERM);
    int status = (int)qnum(req, "status", 200, 1000);
    coil_res_status(res, status);
    uint64_t big = qnum(req, "big", 0, sizeof(big_body));
    if (big)
        return coil_res_body_static(res, big_body, (size_t)big);
    coil_res_header(res, "Content-Type", "text/plain");
    return coil_res_body(res, "text\n", 5);
}

static int h_json(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    seq(req, res);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    coil_json_key(j, "path");
    struct coil_str p = coil_req_path(req);
    coil_json_stringn(j, p.ptr, p.len);
    coil_json_key(j, "query");
    struct coil_str q = coil_req_query(req);
    coil_json_stringn(j, q.ptr, q.len);
    struct coil_str s;
    if (coil_req_query_param(req, "s", &s) == 1) {
        coil_json_key(j, "s");
        coil_json_stringn(j, s.ptr, s.len);
    }
    uint64_t n = qnum(req, "n", 3, 64);
    coil_json_key(j, "list");
    coil_json_array_open(j);
    for (uint64_t i = 0; i < n; i++) {
        switch (i % 5) {
        case 0:
            coil_json_int(j, -(int64_t)i);
            break;
        case 1:
            coil_json_uint(j, UINT64_MAX - i);
            break;
        case 2:
            coil_json_double(j, i == 2 ? 1.0 / 0.0 : (double)i / 3.0);
            break;
        case 3:
            coil_json_bool(j, i & 1);
            break;
        default:
            coil_json_null(j);
        }
    }
    coil_json_array_close(j);
    if (!qnum(req, "bad", 0, 1))
        coil_json_object_close(j); /* unbalanced: the engine answers 500 */
    return 0;
}

static int h_echo(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    seq(req, res);
    struct coil_str b = coil_req_body(req);
    return body_report(req, res, "echo", b.len, fnv(0, b.ptr, b.len));
}

/* The streaming route's progress, in coil_req_state. */
struct upload {
    uint64_t len;
    uint64_t hash;
    uint64_t pieces;
};

static int up_body(struct coil_req *req, const void *data, size_t len, void *ud)
{
    (void)ud;
    struct upload *u = coil_req_state(req);
    REQUIRE(u);
    REQUIRE(len > 0);
    u->len += len;
    u->hash = fnv(u->hash, data, len);
    u->pieces++;
    (void)coil_req_alloc(req, 48); /* lasts until this call returns */
    uint64_t fail = qnum(req, "fail", 0, UINT64_MAX / 2);
    if (fail && u->len > fail)
        return (int)qnum(req, "code", 413, 1000);
    return 0;
}

struct dctx {
    struct coil_req *req;
    struct coil_res *res;
    bool json;
};

static void up_fire(void *ud)
{
    struct dctx *d = ud;
    struct upload *u = coil_req_state(d->req);
    if (body_report(d->req, d->res, "upload", u->len, u->len ? u->hash : fnv(0, NULL, 0)) < 0)
        coil_res_status(d->res, 503); /* out of memory (injected): no report */
    REQUIRE(coil_res_finish(d->res) == 0);
}

static int h_upload(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    REQUIRE(coil_req_body(req).len == 0);
    uint64_t ms = qnum(req, "ms", 0, 100000);
    if (!qnum(req, "defer", 0, 1)) {
        seq(req, res);
        struct upload *u = coil_req_state(req);
        return body_report(req, res, "upload", u->len, u->len ? u->hash : fnv(0, NULL, 0));
    }
    struct dctx *d = coil_req_alloc(req, sizeof(*d));
    if (!d)
        return -ENOMEM;
    if (!coil_res_defer(res, count_abort, NULL).id)
        return -ENOMEM;
    seq(req, res);
    d->req = req;
    d->res = res;
    if (!coil_timer_after(req, ms, up_fire, d).id)
        return -ENOMEM;
    return 0;
}

static void noop(void *ud)
{
    (void)ud;
}

static void defer_fire(void *ud)
{
    struct dctx *d = ud;
    if (d->json) {
        struct coil_json *j = coil_res_json(d->res);
        coil_json_key(j, "b");
        coil_json_string(j, "after");
        coil_json_object_close(j);
    } else {
        struct coil_str b = coil_req_body(d->req);
        if (body_report(d->req, d->res, "deferred", b.len, fnv(0, b.ptr, b.len)) < 0)
            coil_res_status(d->res, 503);
    }
    REQUIRE(coil_res_finish(d->res) == 0);
}

static int early_piece(struct coil_req *req, const void *data, size_t len, void *ud);

static int h_defer(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    struct dctx *d = coil_req_alloc(req, sizeof(*d)); /* kept across the defer */
    if (!d)
        return -ENOMEM;
    d->json = qnum(req, "json", 0, 1);
    if (d->json) {
        struct coil_json *j = coil_res_json(res);
        coil_json_object_open(j);
        coil_json_key(j, "a");
        coil_json_int(j, 1);
    }
    coil_res_header(res, "X-Pre", "1");
    struct coil_defer h = coil_res_defer(res, count_abort, NULL);
    if (!h.id)
        return -ENOMEM;
    REQUIRE(!coil_res_defer(res, NULL, NULL).id); /* twice */
    REQUIRE(coil_defer_res(h) == res && coil_defer_req(h) == req);
    REQUIRE(coil_req_read(req, early_piece, NULL) == -EINVAL); /* not an early route */
    seq(req, res); /* read again after deferring: the request's own copy */
    d->req = req;
    d->res = res;
    uint64_t ms = qnum(req, "ms", 0, 100000);
    if (qnum(req, "cancel", 0, 1)) {
        struct coil_timer t = coil_timer_after(req, ms + 5, noop, NULL);
        if (t.id) {
            REQUIRE(coil_timer_cancel(t) == 0);
            REQUIRE(coil_timer_cancel(t) == -ENOENT);
        }
        coil_timer_after(req, ms / 2, noop, NULL); /* a second owner-bound timer */
    }
    if (!coil_timer_after(req, ms, defer_fire, d).id)
        return -ENOMEM;
    return 0;
}

static int h_now(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    if (!coil_res_defer(res, count_abort, NULL).id)
        return -ENOMEM;
    seq(req, res);
    coil_res_text(res, 201, "text/plain", "now\n");
    REQUIRE(coil_res_finish(res) == 0);
    REQUIRE(coil_res_finish(res) == -EINVAL);
    return qnum(req, "rc", 0, 1) ? -EIO : 0;
}

struct sctx {
    struct coil_req *req;
    struct coil_res *res;
    uint32_t i, n, size, ms;
    bool started; /* coil_res_stream succeeded */
};

static void stream_step(void *ud);

static void stream_writable(void *ud)
{
    stream_step(ud);
}

static void stream_step(void *ud)
{
    struct sctx *s = ud;
    struct coil_res *res = s->res;
    unsigned aborts = aborts_seen;
    bool h2 = on_h2(s->req);
    int e;
    if (!s->started) {
        e = coil_res_stream(res);
        if (e == -EPIPE) {
            REQUIRE(aborted_in_call(aborts, h2)); /* on_abort ran */
            return;                               /* aborted: s is gone */
        }
        REQUIRE(e == 0 || e == -ENOMEM || e == -EINVAL); /* -EINVAL: a 1xx status */
        if (e < 0) {
            REQUIRE(coil_res_finish(res) == 0); /* nothing was sent: answered whole */
            return;
        }
        s->started = true;
    }
    while (s->i < s->n) {
        size_t len = s->size;
        if (len >= 16)
            snprintf(piece_buf, 16, "piece %-9u", s->i);
        e = coil_res_write(res, piece_buf, len);
        if (e == -EAGAIN) {
            REQUIRE(coil_res_on_writable(res, stream_writable, s) == 0);
            return;
        }
        if (e == -EPIPE) {
            REQUIRE(aborted_in_call(aborts, h2));
            return;
        }
        if (e == -EMSGSIZE || e == -ENOMEM)
            break;
        REQUIRE(e == 0);
        s->i++;
        if (s->ms && s->i < s->n) {
            if (!coil_timer_after(s->req, s->ms, stream_step, s).id)
                break;
            return;
        }
    }
    REQUIRE(coil_res_finish(res) == 0);
}

static int h_stream(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    struct sctx *s = coil_req_alloc(req, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->i = 0;
    s->started = false;
    s->n = (uint32_t)qnum(req, "n", 2, 32);
    s->size = (uint32_t)qnum(req, "size", 16, sizeof(piece_buf));
    s->ms = (uint32_t)qnum(req, "ms", 0, 100000);
    int status = (int)qnum(req, "status", 200, 999);
    unsigned len = (unsigned)qnum(req, "len", 0, 3);
    bool now = qnum(req, "now", 0, 1);
    if (!coil_res_defer(res, count_abort, NULL).id)
        return -ENOMEM;
    seq(req, res);
    coil_res_header(res, "X-Stream", "1");
    coil_res_status(res, status);
    if (len) {
        uint64_t total = (uint64_t)s->n * s->size;
        uint64_t decl = len == 1 ? total : len == 2 ? total + 1 : total ? total - 1 : 0;
        REQUIRE(coil_res_length(res, decl) == 0);
    }
    REQUIRE(coil_res_write(res, "x", 1) == -EINVAL); /* before coil_res_stream */
    s->req = req;
    s->res = res;
    if (now) {
        unsigned aborts = aborts_seen;
        bool h2 = on_h2(req);
        int e = coil_res_stream(res);
        REQUIRE(e == 0 || e == -ENOMEM || e == -EPIPE || (status < 200 && e == -EINVAL));
        if (e == -EPIPE) {
            REQUIRE(aborted_in_call(aborts, h2)); /* on_abort ran; req and res are gone */
            return 0;
        }
        if (e < 0)
            return e; /* a 1xx cannot stream: cancel the defer (500) */
        s->started = true;
    }
    if (!coil_timer_after(req, s->ms, stream_step, s).id)
        return -ENOMEM;
    return 0;
}

static int h_streamnow(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    if (!coil_res_defer(res, count_abort, NULL).id)
        return -ENOMEM;
    seq(req, res);
    coil_res_header(res, "X-Stream", "1");
    unsigned aborts = aborts_seen;
    bool h2 = on_h2(req);
    int e = coil_res_stream(res);
    REQUIRE(e == 0 || e == -ENOMEM || e == -EPIPE);
    if (e == -EPIPE) {
        REQUIRE(aborted_in_call(aborts, h2)); /* the connection failed under the call */
        return 0;                             /* req and res are gone */
    }
    if (e < 0)
        return e;
    e = coil_res_write(res, "piece now\n", 10);
    /* -EAGAIN: earlier answers still queued; -EPIPE: as above */
    REQUIRE(e == 0 || e == -ENOMEM || e == -EAGAIN || e == -EPIPE);
    if (e == -EPIPE) {
        REQUIRE(aborted_in_call(aborts, h2));
        return -EIO;
    }
    if (qnum(req, "err", 0, 1))
        return -EIO; /* the head is out: the engine can only close */
    REQUIRE(coil_res_finish(res) == 0);
    return qnum(req, "rc", 0, 1) ? -EIO : 0;
}

static int h_hang(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    if (!coil_res_defer(res, count_abort, NULL).id)
        return -ENOMEM;
    seq(req, res);
    if (qnum(req, "t", 0, 1))
        coil_timer_after(req, 10u * 60 * 60 * 1000, noop, NULL); /* dropped with the request */
    return 0;
}

static int h_enomem(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    if (!coil_res_defer(res, count_abort, NULL).id)
        return -ENOMEM;
    seq(req, res);
    int st = (int)qnum(req, "status", 0, 999);
    if (st)
        coil_res_status(res, st);
    return -ENOMEM;
}

static void unowned_fire(void *ud)
{
    struct coil_defer h = unowned[(uintptr_t)ud % 64];
    struct coil_res *res = coil_defer_res(h);
    struct coil_req *req = coil_defer_req(h);
    REQUIRE((res == NULL) == (req == NULL));
    if (!res)
        return; /* finished or aborted already: the handle is stale */
    coil_res_text(res, 200, "text/plain", "unowned\n");
    REQUIRE(coil_res_finish(res) == 0);
    REQUIRE(coil_defer_res(h) == NULL);
}

static int h_unowned(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    struct coil_defer h = coil_res_defer(res, count_abort, NULL);
    if (!h.id)
        return -ENOMEM;
    seq(req, res);
    unsigned slot = unowned_next++ % 64;
    unowned[slot] = h;
    uint64_t ms = qnum(req, "ms", 0, 100000);
    if (!coil_timer_after(NULL, ms, unowned_fire, (void *)(uintptr_t)slot).id)
        return -ENOMEM;
    return 0;
}

static int h_param(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    seq(req, res);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    struct coil_str id = coil_req_param(req, "id"), rest = coil_req_param(req, "*");
    REQUIRE(id.ptr != NULL);
    coil_json_key(j, "id");
    coil_json_stringn(j, id.ptr, id.len);
    coil_json_key(j, "rest");
    coil_json_stringn(j, rest.ptr ? rest.ptr : "", rest.len);
    REQUIRE(coil_req_param(req, "none").ptr == NULL);
    coil_json_object_close(j);
    return 0;
}

static int h_fail(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    seq(req, res);
    return -EINVAL; /* no status set: the engine answers 500 (headers dropped) */
}

/* ---- early routes: the handler runs at the head and reads the body (coil_req_read) ------ */

/* An early request's reader, in its request's memory (the timers that use it are owned by the
 * request, so they go with it). */
struct ectx {
    struct coil_req *req;
    struct coil_res *res;
    int64_t declared;             /* coil_req_body_length: Content-Length, -1 chunked */
    uint64_t len, hash;           /* what was taken */
    uint64_t offered;             /* distinct bytes offered (a piece left with PAUSE counts once) */
    uint64_t left_len, left_hash; /* the piece left with COIL_BODY_PAUSE (0: none) */
    uint32_t pieces;              /* new pieces offered */
    uint32_t calls;               /* on_piece calls with data */
    uint32_t pause; /* 0 never, 1 every other call, 2 each new piece once, 3 the first twice */
    uint32_t rms;   /* the resume timer */
    uint32_t after; /* earlynow: answer at this new piece (0: in the handler) */
    int fail;       /* earlynow: coil_res_fail with this instead of answering */
    bool now;       /* /earlynow: answers before its body is read */
    bool fin;       /* /early: answer from a timer after the end */
    bool ap;        /* earlynow: pause at piece `after`, answer from the timer while paused */
    bool pp;        /* earlynow: return COIL_BODY_PAUSE from the call that answered */
    bool paused, ended, answered;
};

/* /early: "early <len> <hash>" for the body its reader took. */
static void early_report(struct ectx *e)
{
    REQUIRE(!e->answered);
    e->answered = true;
    if (body_report(e->req, e->res, "early", e->len, e->hash) < 0)
        coil_res_status(e->res, 503); /* out of memory (injected): no report */
    REQUIRE(coil_res_finish(e->res) == 0);
}

static void early_fin(void *ud)
{
    struct ectx *e = ud;
    REQUIRE(e->ended && !e->paused);
    early_report(e);
}

/* /earlynow answers (or fails) now, its body possibly unread: X-Unread says it surely is, and
 * then the response must close the connection (the checker). */
static void early_answer_now(struct ectx *e, bool in_handler)
{
    REQUIRE(!e->answered);
    e->answered = true;
    if (e->fail) {
        REQUIRE(coil_res_fail(e->res, e->fail) == 0);
        return;
    }
    bool unread = !e->ended && ((e->declared > 0 && e->offered < (uint64_t)e->declared) ||
                                (e->declared < 0 && in_handler));
    if (unread)
        coil_res_header(e->res, "X-Unread", "1");
    coil_res_text(e->res, 200, "text/plain", "early now\n");
    REQUIRE(coil_res_finish(e->res) == 0);
}

static void early_resume(void *ud)
{
    struct ectx *e = ud;
    REQUIRE(e->paused && e->left_len && !e->answered);
    e->paused = false;
    int rc = coil_req_resume(e->req);
    REQUIRE(rc == 0 || rc == -EPIPE); /* -EPIPE: out of memory closed it; e is gone */
}

/* earlynow, ap: the timer answers instead of resuming (the left piece is dropped). */
static void early_answer_paused(void *ud)
{
    struct ectx *e = ud;
    REQUIRE(e->paused && e->left_len);
    early_answer_now(e, false);
}

static void early_start(void *ud)
{
    struct ectx *e = ud;
    unsigned aborts = aborts_seen;
    int rc = coil_req_read(e->req, early_piece, e);
    /* crashes/early-read-aborts-under-call: out of memory inside the call closes the
     * connection; the request is aborted under it (on_abort ran, e and req are gone), and the
     * call must say so */
    REQUIRE(rc == (aborts_seen != aborts ? -EPIPE : 0));
    if (rc < 0)
        return;
    REQUIRE(coil_req_read(e->req, early_piece, e) == -EINVAL); /* a reader already */
}

static int early_piece(struct coil_req *req, const void *data, size_t len, void *ud)
{
    struct ectx *e = ud;
    REQUIRE(e && e->req == req);
    REQUIRE(!e->ended && !e->answered); /* nothing after the end, nor after the answer */
    /* nothing while paused, before its coil_req_resume (crashes/early-pause-reoffered-
     * without-resume: a resume asked for before the pause used to bring the piece again) */
    REQUIRE(!e->paused);
    if (len == 0) {
        REQUIRE(data == NULL);
        REQUIRE(!e->left_len); /* the piece left comes again before the end */
        e->ended = true;
        REQUIRE(e->offered == e->len);
        if (e->declared >= 0)
            REQUIRE(e->len == (uint64_t)e->declared); /* the whole Content-Length, no more */
        if (e->now) {
            early_answer_now(e, false); /* the body was shorter than `after` pieces */
        } else if (e->fin) {
            if (!coil_timer_after(req, e->rms, early_fin, e).id)
                early_report(e);
        } else {
            early_report(e);
        }
        return 0;
    }
    REQUIRE(data != NULL);
    bool repeat = e->left_len != 0;
    if (repeat) {
        /* the piece left with COIL_BODY_PAUSE comes again, the same */
        REQUIRE(len == e->left_len && fnv(0, data, len) == e->left_hash);
        e->left_len = 0;
    } else {
        e->offered += len;
        e->pieces++;
        if (e->declared >= 0)
            REQUIRE(e->offered <= (uint64_t)e->declared);
    }
    uint32_t call = e->calls++;
    bool pause = e->pause == 1   ? (call & 1) == 0
                 : e->pause == 2 ? !repeat
                 : e->pause == 3 ? call < 2
                                 : false;
    if (e->now && !repeat && e->pieces == e->after) {
        if (e->ap) {
            e->left_len = len;
            e->left_hash = fnv(0, data, len);
            if (coil_timer_after(req, e->rms, early_answer_paused, e).id) {
                e->paused = true;
                return COIL_BODY_PAUSE;
            }
            e->left_len = 0;
        }
        e->len += len;
        e->hash = fnv(e->hash, data, len);
        int rc = e->pp ? COIL_BODY_PAUSE : 0;
        early_answer_now(e, false); /* req, res and e are gone now */
        return rc;
    }
    if (pause) {
        e->left_len = len;
        e->left_hash = fnv(0, data, len);
        if (coil_timer_after(req, e->rms, early_resume, e).id) {
            e->paused = true;
            return COIL_BODY_PAUSE;
        }
        e->left_len = 0; /* no timer (out of memory): take it */
    }
    e->len += len;
    e->hash = fnv(e->hash, data, len);
    return 0;
}

/* POST /early, /earlys (a 64-byte limit) and /earlynow (ud non-NULL). */
static int h_early(struct coil_req *req, struct coil_res *res, void *ud)
{
    REQUIRE(coil_req_body(req).len == 0);
    struct ectx *e = coil_req_alloc(req, sizeof(*e)); /* kept across the defer */
    if (!e)
        return -ENOMEM;
    memset(e, 0, sizeof(*e));
    e->now = ud != NULL;
    e->hash = fnv(0, NULL, 0);
    e->declared = coil_req_body_length(req);
    e->pause = (uint32_t)qnum(req, "pause", 0, 3);
    e->rms = (uint32_t)qnum(req, "rms", 0, 100000);
    e->fin = qnum(req, "fin", 0, 1);
    e->after = (uint32_t)qnum(req, "after", 0, 1000);
    e->fail = (int)qnum(req, "fail", 0, 599);
    e->ap = qnum(req, "ap", 0, 1);
    e->pp = qnum(req, "pp", 0, 1);
    bool late = qnum(req, "late", 0, 1), rc = qnum(req, "rc", 0, 1);
    if (e->now && e->after == 0 && qnum(req, "sync", 0, 1)) {
        /* answers without deferring: its body is skipped by closing */
        seq(req, res);
        REQUIRE(coil_req_read(req, early_piece, e) == -EINVAL); /* not deferred */
        if (e->declared != 0)
            coil_res_header(res, "X-Unread", "1");
        return coil_res_text(res, 200, "text/plain", "early sync\n");
    }
    if (!coil_res_defer(res, count_abort, NULL).id)
        return -ENOMEM;
    seq(req, res);
    e->req = req;
    e->res = res;
    if (e->now && e->after == 0) {
        early_answer_now(e, true);
        REQUIRE(coil_req_read(req, early_piece, e) == -EINVAL); /* finished */
        return rc ? -EIO : 0;
    }
    REQUIRE(coil_req_resume(req) == -EINVAL); /* no reader yet */
    if (late) {
        /* the body arrives before there is a reader: held */
        if (!coil_timer_after(req, e->rms, early_start, e).id)
            return -ENOMEM;
        return 0;
    }
    int rd = coil_req_read(req, early_piece, e);
    if (rd == -EPIPE)
        return 0; /* out of memory closed the connection: the request is aborted */
    REQUIRE(rd == 0);
    REQUIRE(coil_req_read(req, early_piece, e) == -EINVAL);
    return rc ? -EIO : 0; /* -EIO: the defer is cancelled (500), the body skipped */
}

static void route(const char *method, const char *pattern, coil_handler h)
{
    REQUIRE(coil__router_add(app.router, method, pattern, h, NULL) == 0);
}

static void app_init(void)
{
    struct coil__config *c = &app.cfg;
    coil__config_defaults(c);
    /* HTTP/2 (http2.c): on, with limits small enough for a 16 KiB input to reach them (the
     * defaults need thousands of frames): the options as coil_app_run parses them (first: what
     * follows overrides a COIL_* variable of the environment) */
    REQUIRE(coil__h2_setup(&app) == 0);
#ifdef COIL_HAVE_HTTP2
    static char *argv[] = {"fuzz_http1", "--h2-max-streams", "8",  "--h2-window",
                           "4K",         "--h2-max-control", "10", "--h2-reset-burst",
                           "8",          "--h2-reset-rate",  "2",  NULL};
    REQUIRE(coil__config_parse(&app, (int)(sizeof(argv) / sizeof(argv[0])) - 1, argv) == 0);
#endif
    REQUIRE(coil__h2_install(&app) == 0);
    strcpy(c->bind, "127.0.0.1");
    c->workers = 1;
    c->max_conns = NPEERS;
    c->recv_buf_size = RECV_MAX;
    app.router = coil__router_create();
    REQUIRE(app.router);
    route("GET", "/text", h_text);
    route("PUT", "/text", h_text);
    route("GET", "/json", h_json);
    route("POST", "/echo", h_echo);
    route("POST", "/upload", h_upload);
    struct coil__route *up = coil__router_find(app.router, "POST", "/upload");
    REQUIRE(up);
    up->on_body = up_body;   /* coil_route_stream */
    up->max_body = 4u << 20; /* coil_route_max_body on a streaming route */
    app.stream_cap = up->max_body;
    route("GET", "/defer", h_defer);
    route("POST", "/defer", h_defer);
    route("GET", "/now", h_now);
    route("GET", "/stream", h_stream);
    route("GET", "/streamnow", h_streamnow);
    route("GET", "/hang", h_hang);
    route("GET", "/enomem", h_enomem);
    route("GET", "/unowned", h_unowned);
    route("POST", "/small", h_echo);
    coil__router_find(app.router, "POST", "/small")->max_body = 16;
    route("GET", "/p/:id/*", h_param);
    route("GET", "/fail", h_fail);
    /* early routes (coil_route_stream with on_body NULL): the handler runs at the head */
    static const struct {
        const char *pattern;
        void *ud;
        uint64_t max_body;
    } early[] = {{"/early", NULL, 0}, {"/earlys", NULL, 64}, {"/earlynow", &app, 0}};
    for (size_t i = 0; i < sizeof(early) / sizeof(early[0]); i++) {
        REQUIRE(coil__router_add(app.router, "POST", early[i].pattern, h_early, early[i].ud) == 0);
        struct coil__route *er = coil__router_find(app.router, "POST", early[i].pattern);
        REQUIRE(er);
        er->on_body = NULL;
        er->early = true;
        er->max_body = early[i].max_body; /* coil_route_max_body */
    }
    /* coil_app_run: body_cap and the parser's limits */
    if (c->lim.max_body_bytes > app.body_cap)
        app.body_cap = c->lim.max_body_bytes;
    app.parse_lim = c->lim;
    app.parse_lim.max_body_bytes = app.stream_cap > app.body_cap ? app.stream_cap : app.body_cap;
    REQUIRE(coil__chains_build(&app) == 0); /* no middleware: every chain is empty */
    app.nworkers = 1;
    coil__app = &app;
    memset(big_body, 'b', sizeof(big_body));
    memset(piece_buf, 'p', sizeof(piece_buf));
}

/* ---- the peer: what it wrote, what it expects, what it received ------------------------- */

struct creq {
    uint8_t route;
    bool head;   /* HEAD: no body in the answer */
    bool expect; /* Expect: 100-continue on HTTP/1.1 */
    bool got100;
    bool report; /* the route answers "<what> <len> <hash>" for the body it got */
    const char *what;
    uint64_t len, hash;
};

enum ostate {
    O_HEAD,       /* reading a response head */
    O_LOOKAHEAD,  /* a declared body that may be absent (an answer to HEAD?) */
    O_BODY_CL,    /* Content-Length body */
    O_CHUNK_SIZE, /* chunk-size line */
    O_CHUNK_DATA,
    O_CHUNK_CRLF, /* the CRLF after chunk data */
    O_CHUNK_END,  /* the empty line after the last chunk */
    O_BODY_CLOSE, /* to the end of the connection */
    O_AFTER_CLOSE /* a Connection: close response is complete: nothing may follow */
};

struct peer {
    bool live;
    int fd; /* its socket (fake_kernel.c) */
    /* what the peer wrote and the server has not read yet */
    uint8_t *q;
    size_t qlen, qoff, qcap;
    bool fin, reset;
    /* the requests it wrote */
    struct creq *reqs;
    uint32_t nreqs, capreqs;
    bool raw;       /* raw bytes were written: answers past `exact` cannot be matched */
    uint32_t exact; /* requests written before the first raw byte */
    /* what it received */
    enum ostate st;
    char *head;
    size_t headlen;
    uint32_t nfinal; /* final responses so far */
    bool server_fin;
    /* the response being read */
    int status;
    bool r_exact, r_xseq, r_close, r_stream, r_chunked, r_cl, r_unread;
    uint64_t r_xseq_val, r_cl_val, remaining;
    char look[8];
    size_t looklen;
    char line[40];
    size_t linelen;
    char body[CHECK_BODY_MAX];
    size_t bodylen;
    uint64_t r_bodytotal;
    /* HTTP/2: the server took the preface (the HTTP/2 checker reads its frames instead) */
    bool h2;
    struct h2chk *h2c; /* kept for the next peer in the slot, like head */
};

static struct peer peers[NPEERS];
static unsigned cur;
static struct coil__worker worker;
static size_t gen_used;
static unsigned work_used;

static struct peer *peer_of(int fd)
{
    for (unsigned i = 0; i < NPEERS; i++)
        if (peers[i].live && peers[i].fd == fd)
            return &peers[i];
    return NULL;
}

static void h2chk_reset(struct h2chk *k);

/* A fresh peer; its buffers are kept for the next one (big ones cost page faults). */
static void peer_reset_state(struct peer *p)
{
    uint8_t *q = p->q;
    size_t qcap = p->qcap;
    struct creq *reqs = p->reqs;
    uint32_t capreqs = p->capreqs;
    char *head = p->head;
    struct h2chk *h2c = p->h2c;
    if (h2c)
        h2chk_reset(h2c);
    memset(p, 0, sizeof(*p));
    p->q = q;
    p->qcap = qcap;
    p->reqs = reqs;
    p->capreqs = capreqs;
    p->head = head;
    p->h2c = h2c;
}

__attribute__((noinline, no_sanitize("coverage"))) static void
peer_write(struct peer *p, const void *data, size_t n)
{
    if (p->qoff && p->qoff == p->qlen)
        p->qoff = p->qlen = 0;
    if (p->qlen + n > p->qcap) {
        if (p->qoff) {
            memmove(p->q, p->q + p->qoff, p->qlen - p->qoff);
            p->qlen -= p->qoff;
            p->qoff = 0;
        }
        if (p->qlen + n > p->qcap) {
            size_t cap = p->qcap ? p->qcap : 4096;
            while (cap < p->qlen + n)
                cap *= 2;
            p->q = realloc(p->q, cap);
            REQUIRE(p->q);
            p->qcap = cap;
        }
    }
    memcpy(p->q + p->qlen, data, n);
    p->qlen += n;
}

/* ---- the response checker --------------------------------------------------------------- */

static bool status_has_body(int s)
{
    return s >= 200 && s != 204 && s != 304;
}

static bool name_is(const char *s, size_t n, const char *lower)
{
    size_t m = strlen(lower);
    if (n != m)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'Z')
            ch = (char)(ch - 'A' + 'a');
        if (ch != lower[i])
            return false;
    }
    return true;
}

static bool parse_dec(const char *s, size_t n, uint64_t *out)
{
    if (n == 0 || n > 19)
        return false;
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return true;
}

static void response_done(struct peer *p);
static void feed(struct peer *p, const char *data, size_t n);

/* Parses the head in p->head (ending in CRLF CRLF) and sets up for the body. */
static void head_done(struct peer *p)
{
    const char *h = p->head;
    size_t n = p->headlen;
    REQUIRE(n >= 17 && memcmp(h, "HTTP/1.1 ", 9) == 0);
    REQUIRE(h[9] >= '1' && h[9] <= '9' && h[10] >= '0' && h[10] <= '9' && h[11] >= '0' &&
            h[11] <= '9' && h[12] == ' ');
    int status = (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
    const char *eol = memmem(h, n, "\r\n", 2);
    REQUIRE(eol);
    const char *reason = coil__reason(status);
    REQUIRE((size_t)(eol - (h + 13)) == strlen(reason) &&
            memcmp(h + 13, reason, strlen(reason)) == 0);
    if (status == 100) {
        /* interim: exactly the status line */
        REQUIRE(n == 25 && memcmp(h, "HTTP/1.1 100 Continue\r\n\r\n", 25) == 0);
        uint32_t k = p->nfinal;
        if (trace)
            fprintf(stderr, "peer %u: 100 Continue before response %u\n", (unsigned)(p - peers), k);
        if (k < (p->raw ? p->exact : p->nreqs)) {
            REQUIRE(p->reqs[k].expect && !p->reqs[k].got100);
            p->reqs[k].got100 = true;
        } else {
            REQUIRE(p->raw);
        }
        p->headlen = 0;
        return;
    }
    REQUIRE(status >= 200);
    uint32_t k = p->nfinal++;
    REQUIRE(p->raw || k < p->nreqs); /* never more answers than requests */
    p->status = status;
    p->r_exact = p->raw ? k < p->exact : true;
    p->r_xseq = p->r_close = p->r_stream = p->r_chunked = p->r_cl = p->r_unread = false;
    p->r_xseq_val = p->r_cl_val = 0;
    p->bodylen = 0;
    p->r_bodytotal = 0;
    bool server = false, keepalive = false;
    const char *line = eol + 2;
    const char *end = h + n - 2; /* the final empty line */
    while (line < end) {
        const char *le = memmem(line, (size_t)(end - line) + 2, "\r\n", 2);
        REQUIRE(le);
        const char *colon = memchr(line, ':', (size_t)(le - line));
        REQUIRE(colon && colon > line && colon + 1 < le && colon[1] == ' ');
        for (const char *c = line; c < colon; c++)
            REQUIRE(*c > ' ' && *c < 127);
        for (const char *c = colon + 2; c < le; c++)
            REQUIRE(*c != '\r' && *c != '\n' && *c != 0);
        size_t nl = (size_t)(colon - line);
        const char *v = colon + 2;
        size_t vl = (size_t)(le - v);
        if (name_is(line, nl, "server")) {
            REQUIRE(!server && vl == 4 && memcmp(v, "coil", 4) == 0);
            server = true;
        } else if (name_is(line, nl, "content-length")) {
            REQUIRE(!p->r_cl && parse_dec(v, vl, &p->r_cl_val));
            p->r_cl = true;
        } else if (name_is(line, nl, "transfer-encoding")) {
            REQUIRE(!p->r_chunked && vl == 7 && memcmp(v, "chunked", 7) == 0);
            p->r_chunked = true;
        } else if (name_is(line, nl, "connection")) {
            REQUIRE(!p->r_close && !keepalive);
            if (vl == 5 && memcmp(v, "close", 5) == 0)
                p->r_close = true;
            else
                REQUIRE(vl == 10 && memcmp(v, "keep-alive", 10) == 0);
            keepalive = !p->r_close;
        } else if (name_is(line, nl, "x-seq")) {
            REQUIRE(!p->r_xseq);
            p->r_xseq = true;
            if (!parse_dec(v, vl, &p->r_xseq_val))
                p->r_xseq_val = UINT64_MAX; /* a raw request's own value */
        } else if (name_is(line, nl, "x-stream")) {
            p->r_stream = true;
        } else if (name_is(line, nl, "x-unread")) {
            p->r_unread = true;
        }
        line = le + 2;
    }
    REQUIRE(server);
    REQUIRE(!(p->r_cl && p->r_chunked));
    if (p->r_unread && !p->r_close) {
        /* an early route answered before its body was read: the body cannot be skipped, so
         * the connection must close after the answer */
        fprintf(stderr, "response %u: answered with its body unread, without closing\n", k);
        REQUIRE(!"an answer before the body is read closes the connection");
    }
    const struct creq *rq = p->r_exact ? &p->reqs[k] : NULL;
    if (trace > 1)
        fprintf(stderr, "%.*s", (int)n, h);
    if (trace)
        fprintf(stderr, "peer %u: response %u: %d%s%s%s%s cl=%" PRIu64 " xseq=%" PRId64 "%s\n",
                (unsigned)(p - peers), k, status, p->r_close ? " close" : "",
                p->r_chunked ? " chunked" : "", p->r_stream ? " stream" : "",
                rq ? (rq->head ? " exact-HEAD" : " exact") : "", p->r_cl_val,
                p->r_xseq ? (int64_t)p->r_xseq_val : -1, p->r_close ? "" : "");
    if (rq && p->r_xseq)
        REQUIRE(p->r_xseq_val == k); /* answers in request order */
    p->headlen = 0;
    if (!status_has_body(status)) {
        REQUIRE(!p->r_cl && !p->r_chunked);
        response_done(p);
        return;
    }
    bool is_head = rq && rq->head && p->r_xseq;
    bool maybe_head = !rq || (rq->head && !p->r_xseq);
    if (is_head) {
        response_done(p);
        return;
    }
    if (p->r_cl) {
        if (p->r_cl_val == 0) {
            response_done(p);
            return;
        }
        p->remaining = p->r_cl_val;
        p->st = maybe_head ? O_LOOKAHEAD : O_BODY_CL;
    } else if (p->r_chunked) {
        p->st = maybe_head ? O_LOOKAHEAD : O_CHUNK_SIZE;
        p->linelen = 0;
    } else if (p->r_close) {
        p->st = maybe_head ? O_LOOKAHEAD : O_BODY_CLOSE; /* delimited by the close */
    } else {
        /* No framing and the connection stays: only an answer to HEAD (a stream of unknown
         * length) may say nothing, as no body follows. */
        REQUIRE(maybe_head);
        response_done(p);
        return;
    }
    p->looklen = 0;
}

/* The declared body turned out absent (the answer to a HEAD request). */
static void lookahead_resolve(struct peer *p, bool absent)
{
    if (absent) {
        response_done(p);
    } else if (p->r_cl) {
        p->st = O_BODY_CL;
    } else if (p->r_chunked) {
        p->st = O_CHUNK_SIZE;
        p->linelen = 0;
    } else {
        p->st = O_BODY_CLOSE;
    }
}

static void body_bytes(struct peer *p, const char *data, size_t n)
{
    size_t room = CHECK_BODY_MAX - p->bodylen;
    memcpy(p->body + p->bodylen, data, n < room ? n : room);
    p->bodylen += n < room ? n : room;
    p->r_bodytotal += n;
}

static void response_done(struct peer *p)
{
    uint32_t k = p->nfinal - 1;
    if (p->r_exact && p->r_xseq && p->status == 200 && p->reqs[k].report && !p->reqs[k].head) {
        const struct creq *rq = &p->reqs[k];
        char want[96];
        int n = snprintf(want, sizeof(want), "%s %" PRIu64 " %016" PRIx64 "\n", rq->what, rq->len,
                         rq->hash);
        if (p->r_bodytotal != (uint64_t)n || memcmp(p->body, want, (size_t)n) != 0) {
            fprintf(stderr, "request %u: want body '%.*s', got '%.*s'\n", k, n - 1, want,
                    (int)p->bodylen, p->body);
            REQUIRE(!"the route saw the body the peer sent");
        }
    }
    p->st = p->r_close ? O_AFTER_CLOSE : O_HEAD;
    p->headlen = 0;
}

static void feed(struct peer *p, const char *data, size_t n)
{
    while (n) {
        switch (p->st) {
        case O_HEAD: {
            if (!p->head) {
                p->head = malloc(HEAD_MAX);
                REQUIRE(p->head);
            }
            /* byte by byte up to the empty line */
            char ch = *data++;
            n--;
            REQUIRE(p->headlen < HEAD_MAX);
            p->head[p->headlen++] = ch;
            if (p->headlen <= 9)
                REQUIRE(ch == "HTTP/1.1 "[p->headlen - 1]);
            if (p->headlen >= 4 && memcmp(p->head + p->headlen - 4, "\r\n\r\n", 4) == 0)
                head_done(p);
            break;
        }
        case O_LOOKAHEAD: {
            static const char next[] = "HTTP/1.";
            if (data[0] != next[p->looklen]) {
                /* a body after all: replay what was held back */
                char held[8];
                size_t nh = p->looklen;
                memcpy(held, p->look, nh);
                lookahead_resolve(p, false);
                feed(p, held, nh);
                continue;
            }
            p->look[p->looklen++] = *data++;
            n--;
            if (p->looklen == sizeof(next) - 1) {
                char held[8];
                size_t nh = p->looklen;
                memcpy(held, p->look, nh);
                lookahead_resolve(p, true);
                feed(p, held, nh);
            }
            break;
        }
        case O_BODY_CL: {
            size_t k = n < p->remaining ? n : (size_t)p->remaining;
            body_bytes(p, data, k);
            data += k;
            n -= k;
            p->remaining -= k;
            if (p->remaining == 0)
                response_done(p);
            break;
        }
        case O_CHUNK_SIZE: {
            char ch = *data++;
            n--;
            REQUIRE(p->linelen < sizeof(p->line));
            p->line[p->linelen++] = ch;
            if (p->linelen >= 2 && p->line[p->linelen - 2] == '\r' && ch == '\n') {
                size_t hl = p->linelen - 2;
                REQUIRE(hl >= 1 && hl <= 16);
                REQUIRE(hl == 1 || p->line[0] != '0'); /* no leading zeros */
                uint64_t v = 0;
                for (size_t i = 0; i < hl; i++) {
                    char c = p->line[i];
                    REQUIRE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
                    v = v * 16 + (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
                }
                p->linelen = 0;
                if (v == 0) {
                    p->st = O_CHUNK_END;
                } else {
                    p->remaining = v;
                    p->st = O_CHUNK_DATA;
                }
            }
            break;
        }
        case O_CHUNK_DATA: {
            size_t k = n < p->remaining ? n : (size_t)p->remaining;
            body_bytes(p, data, k);
            data += k;
            n -= k;
            p->remaining -= k;
            if (p->remaining == 0) {
                p->st = O_CHUNK_CRLF;
                p->linelen = 0;
            }
            break;
        }
        case O_CHUNK_CRLF:
        case O_CHUNK_END: {
            char ch = *data++;
            n--;
            REQUIRE(ch == "\r\n"[p->linelen]);
            if (++p->linelen == 2) {
                p->linelen = 0;
                if (p->st == O_CHUNK_END)
                    response_done(p);
                else
                    p->st = O_CHUNK_SIZE;
            }
            break;
        }
        case O_BODY_CLOSE:
            body_bytes(p, data, n);
            n = 0;
            break;
        case O_AFTER_CLOSE:
            fprintf(stderr, "bytes after a Connection: close response: '%.*s'\n",
                    (int)(n < 80 ? n : 80), data);
            REQUIRE(!"nothing follows a Connection: close response");
        }
    }
}

/* ---- the HTTP/2 checker ------------------------------------------------------------------ */

/*
 * What a peer that sent the preface receives: HTTP/2 frames (RFC 9113). Checked frame by frame:
 * SETTINGS first; only the frame types a server without push sends, on the streams they belong
 * to, with their fixed lengths; a header block is HEADERS then CONTINUATIONs on its stream and
 * nothing between; every block decodes (an HPACK decoder of our own, fed the blocks in order)
 * into a response head: :status first and alone among pseudo-fields, 3 digits, lower-case
 * names, no CR, LF or NUL in a value, server: coil, no connection-specific field, at most one
 * content-length; per stream: interim heads (1xx) without END_STREAM before one final head and
 * no head after it, DATA only after the final head, none for 1xx/204/304, never more than its
 * content-length and at END_STREAM all of it (or none: the answer to HEAD), nothing but
 * WINDOW_UPDATE and RST_STREAM after END_STREAM, nothing after RST_STREAM; GOAWAY's last stream
 * id never grows, no new response on a stream above it, nothing but GOAWAY after a GOAWAY with
 * an error; the FIN between frames.
 */
#ifdef COIL_HAVE_HTTP2
struct h2st {
    int32_t id;
    int status;        /* the final head's; 0 before it */
    bool ended, reset; /* END_STREAM, RST_STREAM sent */
    bool has_cl;
    uint64_t cl, data;
};

struct h2chk {
    nghttp2_hd_inflater *inf;
    uint8_t hd[9];
    size_t hdlen;
    uint32_t flen, left;
    uint8_t type, flags;
    int32_t sid;
    uint8_t *pl; /* the frame's payload as it comes (DATA: only counted) */
    size_t pllen, plcap;
    uint8_t *hb; /* the header block being received */
    size_t hblen, hbcap;
    bool in_block, block_end_stream;
    int32_t block_sid;
    uint32_t nframes;
    bool goaway, goaway_err;
    uint32_t goaway_last;
    struct h2st *st;
    uint32_t nst, capst;
};

static void h2chk_reset(struct h2chk *k)
{
    if (k->inf)
        nghttp2_hd_inflate_del(k->inf);
    uint8_t *pl = k->pl, *hb = k->hb;
    size_t plcap = k->plcap, hbcap = k->hbcap;
    struct h2st *st = k->st;
    uint32_t capst = k->capst;
    memset(k, 0, sizeof(*k));
    k->pl = pl;
    k->plcap = plcap;
    k->hb = hb;
    k->hbcap = hbcap;
    k->st = st;
    k->capst = capst;
}

static void grow(uint8_t **b, size_t *cap, size_t need)
{
    if (need <= *cap)
        return;
    size_t c = *cap ? *cap : 1024;
    while (c < need)
        c *= 2;
    *b = realloc(*b, c);
    REQUIRE(*b);
    *cap = c;
}

static struct h2st *h2_stream(struct h2chk *k, int32_t id)
{
    for (uint32_t i = k->nst; i-- > 0;)
        if (k->st[i].id == id)
            return &k->st[i];
    if (k->nst == k->capst) {
        k->capst = k->capst ? k->capst * 2 : 16;
        k->st = realloc(k->st, k->capst * sizeof(*k->st));
        REQUIRE(k->st);
    }
    struct h2st *s = &k->st[k->nst++];
    memset(s, 0, sizeof(*s));
    s->id = id;
    return s;
}

static bool bad_value_byte(uint8_t ch)
{
    return ch == '\r' || ch == '\n' || ch == 0;
}

/* A whole header block on stream sid: a response head. */
static void h2_head(struct peer *p, struct h2chk *k, int32_t sid, bool end_stream)
{
    struct h2st *s = h2_stream(k, sid);
    REQUIRE(!s->ended && !s->reset); /* nothing on a stream that ended */
    REQUIRE(!s->status);             /* no head after the final one (we send no trailers) */
    if (k->goaway)
        REQUIRE((uint32_t)sid <= k->goaway_last); /* no new answer above GOAWAY's last id */
    if (!k->inf)
        REQUIRE(nghttp2_hd_inflate_new(&k->inf) == 0);
    int status = 0;
    bool server = false, has_cl = false, first = true;
    uint64_t cl = 0;
    const uint8_t *in = k->hb;
    size_t left = k->hblen;
    for (;;) {
        nghttp2_nv nv;
        int fl = 0;
        ssize_t rv = nghttp2_hd_inflate_hd2(k->inf, &nv, &fl, in, left, 1);
        if (rv < 0)
            fprintf(stderr, "h2 stream %d: the header block does not decode: %s\n", (int)sid,
                    nghttp2_strerror((int)rv));
        REQUIRE(rv >= 0);
        in += rv;
        left -= (size_t)rv;
        if (fl & NGHTTP2_HD_INFLATE_EMIT) {
            const char *n = (const char *)nv.name;
            for (size_t i = 0; i < nv.valuelen; i++)
                REQUIRE(!bad_value_byte(nv.value[i]));
            REQUIRE(nv.namelen > 0);
            if (n[0] == ':') {
                /* :status, first and once */
                REQUIRE(first && nv.namelen == 7 && !memcmp(n, ":status", 7));
                REQUIRE(nv.valuelen == 3);
                for (int i = 0; i < 3; i++)
                    REQUIRE(nv.value[i] >= '0' && nv.value[i] <= '9');
                status = (nv.value[0] - '0') * 100 + (nv.value[1] - '0') * 10 + (nv.value[2] - '0');
                REQUIRE(status >= 100);
            } else {
                REQUIRE(!first);
                for (size_t i = 0; i < nv.namelen; i++)
                    REQUIRE(n[i] > ' ' && n[i] < 127 && !(n[i] >= 'A' && n[i] <= 'Z') &&
                            n[i] != ':');
                REQUIRE(!name_is(n, nv.namelen, "connection") &&
                        !name_is(n, nv.namelen, "keep-alive") &&
                        !name_is(n, nv.namelen, "proxy-connection") &&
                        !name_is(n, nv.namelen, "transfer-encoding") &&
                        !name_is(n, nv.namelen, "upgrade"));
                if (name_is(n, nv.namelen, "server")) {
                    REQUIRE(!server && nv.valuelen == 4 && !memcmp(nv.value, "coil", 4));
                    server = true;
                } else if (name_is(n, nv.namelen, "content-length")) {
                    REQUIRE(!has_cl && parse_dec((const char *)nv.value, nv.valuelen, &cl));
                    has_cl = true;
                }
            }
            first = false;
        }
        if (fl & NGHTTP2_HD_INFLATE_FINAL) {
            nghttp2_hd_inflate_end_headers(k->inf);
            break;
        }
        REQUIRE(rv > 0 || left > 0); /* progress, or the block is cut short */
    }
    REQUIRE(left == 0);
    REQUIRE(status); /* a head has its :status */
    if (trace)
        fprintf(stderr, "peer %u: h2 stream %d: %d%s%s cl=%" PRIu64 "\n", (unsigned)(p - peers),
                (int)sid, status, has_cl ? "" : " (no length)", end_stream ? " END_STREAM" : "",
                cl);
    if (status < 200) {
        REQUIRE(!end_stream && !has_cl); /* an interim head: the final one follows */
        return;
    }
    REQUIRE(server);
    if (!status_has_body(status))
        REQUIRE(!has_cl);
    s->status = status;
    s->has_cl = has_cl;
    s->cl = cl;
    if (end_stream)
        s->ended = true;
}

static void h2_data_end(struct h2st *s)
{
    /* the whole declared length, or nothing (the answer to HEAD) */
    if (s->has_cl && s->data != s->cl && s->data != 0)
        fprintf(stderr, "h2 stream %d: %" PRIu64 " body bytes, content-length %" PRIu64 "\n",
                (int)s->id, s->data, s->cl);
    REQUIRE(!s->has_cl || s->data == s->cl || s->data == 0);
    s->ended = true;
}

static uint32_t be32(const uint8_t *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* The frame in k->hd and k->pl is whole. */
static void h2_frame(struct peer *p, struct h2chk *k)
{
    uint8_t t = k->type, f = k->flags;
    int32_t sid = k->sid;
    uint32_t len = k->flen;
    const uint8_t *pl = k->pl;
    if (trace > 1)
        fprintf(stderr, "peer %u: h2 frame type %u flags %#x stream %d length %u\n",
                (unsigned)(p - peers), t, f, (int)sid, len);
    /* nothing after a GOAWAY with an error but another GOAWAY (nghttp2 may queue a second
     * one, with its reason, before the first is out): the connection closes */
    REQUIRE(!k->goaway_err || t == NGHTTP2_GOAWAY);
    if (k->nframes++ == 0)
        REQUIRE(t == NGHTTP2_SETTINGS && !(f & NGHTTP2_FLAG_ACK)); /* the server's preface */
    if (k->in_block)
        REQUIRE(t == NGHTTP2_CONTINUATION && sid == k->block_sid);
    switch (t) {
    case NGHTTP2_DATA: {
        REQUIRE(sid > 0 && (sid & 1));
        size_t pad = 0;
        if (f & NGHTTP2_FLAG_PADDED) {
            REQUIRE(len >= 1 && pl[0] < len);
            pad = 1u + pl[0];
        }
        struct h2st *s = h2_stream(k, sid);
        REQUIRE(s->status && !s->ended && !s->reset); /* after the final head, before its end */
        s->data += len - pad;
        if (!status_has_body(s->status))
            REQUIRE(s->data == 0);
        if (s->has_cl)
            REQUIRE(s->data <= s->cl);
        if (f & NGHTTP2_FLAG_END_STREAM)
            h2_data_end(s);
        break;
    }
    case NGHTTP2_HEADERS:
    case NGHTTP2_CONTINUATION: {
        size_t off = 0, end = len;
        if (t == NGHTTP2_HEADERS) {
            REQUIRE(sid > 0 && (sid & 1));
            if (f & NGHTTP2_FLAG_PADDED) {
                REQUIRE(len >= 1);
                off = 1;
                REQUIRE(pl[0] <= len - 1);
                end = len - pl[0];
            }
            if (f & NGHTTP2_FLAG_PRIORITY)
                off += 5;
            REQUIRE(off <= end);
            k->in_block = true;
            k->block_sid = sid;
            k->block_end_stream = (f & NGHTTP2_FLAG_END_STREAM) != 0;
            k->hblen = 0;
        } else {
            REQUIRE(k->in_block); /* CONTINUATION only inside a block */
        }
        grow(&k->hb, &k->hbcap, k->hblen + (end - off));
        memcpy(k->hb + k->hblen, pl + off, end - off);
        k->hblen += end - off;
        if (f & NGHTTP2_FLAG_END_HEADERS) {
            k->in_block = false;
            h2_head(p, k, k->block_sid, k->block_end_stream);
        }
        break;
    }
    case NGHTTP2_RST_STREAM: {
        REQUIRE(sid > 0 && (sid & 1) && len == 4);
        struct h2st *s = h2_stream(k, sid);
        REQUIRE(!s->reset);
        s->reset = true;
        if (trace)
            fprintf(stderr, "peer %u: h2 stream %d: RST_STREAM %u\n", (unsigned)(p - peers),
                    (int)sid, be32(pl));
        break;
    }
    case NGHTTP2_SETTINGS:
        REQUIRE(sid == 0 && len % 6 == 0);
        if (f & NGHTTP2_FLAG_ACK)
            REQUIRE(len == 0);
        break;
    case NGHTTP2_PING:
        REQUIRE(sid == 0 && len == 8);
        break;
    case NGHTTP2_GOAWAY: {
        REQUIRE(sid == 0 && len >= 8);
        uint32_t last = be32(pl) & 0x7fffffffu, code = be32(pl + 4);
        if (trace)
            fprintf(stderr, "peer %u: h2 GOAWAY last %u code %u%s%.*s\n", (unsigned)(p - peers),
                    last, code, len > 8 ? " debug data: " : "", (int)(len - 8), pl + 8);
        if (k->goaway)
            REQUIRE(last <= k->goaway_last); /* never increased (RFC 9113 6.8) */
        k->goaway = true;
        k->goaway_last = last;
        k->goaway_err |= code != NGHTTP2_NO_ERROR;
        break;
    }
    case NGHTTP2_WINDOW_UPDATE: {
        REQUIRE(len == 4 && (be32(pl) & 0x7fffffffu) != 0);
        if (sid) {
            REQUIRE(sid & 1);
            REQUIRE(!h2_stream(k, sid)->reset);
        }
        break;
    }
    default:
        fprintf(stderr, "h2: the server sent a frame of type %u\n", t);
        REQUIRE(!"only DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE and "
                 "CONTINUATION come from a server without push");
    }
}

static void h2_feed(struct peer *p, const uint8_t *data, size_t n)
{
    if (!p->h2c) {
        p->h2c = calloc(1, sizeof(*p->h2c));
        REQUIRE(p->h2c);
    }
    struct h2chk *k = p->h2c;
    while (n) {
        if (k->hdlen < 9) {
            size_t m = 9 - k->hdlen < n ? 9 - k->hdlen : n;
            memcpy(k->hd + k->hdlen, data, m);
            k->hdlen += m;
            data += m;
            n -= m;
            if (k->hdlen < 9)
                return;
            k->flen = (uint32_t)k->hd[0] << 16 | (uint32_t)k->hd[1] << 8 | k->hd[2];
            k->type = k->hd[3];
            k->flags = k->hd[4];
            REQUIRE(!(k->hd[5] & 0x80)); /* the reserved bit */
            k->sid = (int32_t)(be32(k->hd + 5) & 0x7fffffffu);
            k->left = k->flen;
            k->pllen = 0;
            if (k->type != NGHTTP2_DATA)
                grow(&k->pl, &k->plcap, k->flen);
            else
                grow(&k->pl, &k->plcap, 1); /* the pad length */
        }
        size_t m = k->left < n ? k->left : n;
        if (k->type != NGHTTP2_DATA)
            memcpy(k->pl + k->pllen, data, m);
        else if (m && k->pllen == 0)
            k->pl[0] = data[0];
        k->pllen += m;
        k->left -= (uint32_t)m;
        data += m;
        n -= m;
        if (k->left == 0) {
            h2_frame(p, k);
            k->hdlen = 0;
        }
    }
}

static void h2_fin(struct peer *p)
{
    struct h2chk *k = p->h2c;
    if (!k)
        return;             /* nothing was sent */
    REQUIRE(k->hdlen == 0); /* the FIN comes between frames */
    REQUIRE(!k->in_block);  /* ... and outside a header block */
}
#else
/* Built without libnghttp2 (http2_none.c): no connection speaks HTTP/2. */
struct h2chk {
    int none;
};
static void h2chk_reset(struct h2chk *k)
{
    (void)k;
}
static void h2_feed(struct peer *p, const uint8_t *data, size_t n)
{
    (void)p, (void)data, (void)n;
    REQUIRE(!"HTTP/2 without libnghttp2");
}
static void h2_fin(struct peer *p)
{
    (void)p;
}
#endif

void fuzz_peer_output(int fd, const char *data, size_t n)
{
    struct peer *p = peer_of(fd);
    REQUIRE(p);
    REQUIRE(!p->server_fin); /* nothing is sent after the FIN */
    if (p->h2)
        h2_feed(p, (const uint8_t *)data, n);
    else
        feed(p, data, n);
}

void fuzz_peer_fin(int fd)
{
    struct peer *p = peer_of(fd);
    if (!p)
        return;
    REQUIRE(!p->server_fin);
    p->server_fin = true;
    if (p->h2) {
        h2_fin(p);
        return;
    }
    if (p->st == O_LOOKAHEAD && p->looklen == 0)
        lookahead_resolve(p, true);
    switch (p->st) {
    case O_HEAD:
        REQUIRE(p->headlen == 0); /* never inside a head */
        break;
    case O_AFTER_CLOSE:
    case O_BODY_CLOSE:
        break;
    case O_BODY_CL:
        /* a stream short of its declared length ends with the close (coil_res_length) */
        REQUIRE(p->r_stream);
        break;
    default:
        fprintf(stderr, "FIN in output state %d\n", (int)p->st);
        REQUIRE(!"the server's FIN comes between responses");
    }
}

void fuzz_peer_closed(int fd)
{
    struct peer *p = peer_of(fd);
    if (!p)
        return;
    p->live = false; /* its buffers go when the slot is reused or at the end */
    if (trace)
        fprintf(stderr, "peer %u: closed (%u requests, %u answers, state %d%s)\n",
                (unsigned)(p - peers), p->nreqs, p->nfinal, (int)p->st,
                p->server_fin ? ", after FIN" : "");
}

/* ---- building requests ------------------------------------------------------------------ */

struct reader {
    const uint8_t *p;
    size_t n;
};

static uint8_t u8(struct reader *r)
{
    if (!r->n)
        return 0;
    r->n--;
    return *r->p++;
}

static uint16_t u16(struct reader *r)
{
    uint16_t lo = u8(r);
    return (uint16_t)(lo | (uint16_t)u8(r) << 8);
}

/* printf onto what the peer writes */
static void peer_printf(struct peer *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void peer_printf(struct peer *p, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    REQUIRE(n >= 0 && (size_t)n < sizeof(tmp));
    peer_write(p, tmp, (size_t)n);
}

/* Pseudo-random body bytes (not instrumented: the fuzzer learns nothing from them). */
__attribute__((noinline, no_sanitize("coverage"))) static uint64_t fill(char *d, size_t n,
                                                                        uint64_t x, uint64_t *hash)
{
    for (size_t i = 0; i < n; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(d + i, &x, 8); /* d has room for a multiple of 8 */
    }
    *hash = fnv(*hash, d, n);
    return x;
}

static const int text_status[8] = {200, 201, 204, 304, 100, 418, 999, 500};
static const int upload_code[4] = {413, 400, 42, 599};
static const unsigned piece_size[8] = {0, 1, 16, 100, 1000, 4096, 16384, 32768};
static const unsigned stream_ms[4] = {0, 1, 10, 100};
static const int early_fail[4] = {400, 413, 502, 504};

/* REQ: builds one request from its operands and queues it on the current peer. */
static void op_req(struct peer *p, struct reader *r)
{
    uint8_t rt = u8(r) % R_COUNT, f = u8(r);
    uint32_t len = u16(r);
    uint8_t a = u8(r), b = u8(r), ck = u8(r);
    bool head = f & 1, http10 = f & 2, close = f & 4, ka = f & 8, expect = f & 16, chunked = f & 32,
         fill_hdrs = f & 128;
    if (f & 64)
        len <<= 5; /* up to 2 MiB: past the 1 MiB limit */
    /* Past the budget, only part of the body is written: the request then swallows what the
     * peer writes after it, so neither it nor what follows can be matched any more. */
    uint32_t body_bytes = len;
    if (body_bytes > GEN_BUDGET - gen_used) {
        body_bytes = (uint32_t)(GEN_BUDGET - gen_used);
        if (!p->raw) {
            p->raw = true;
            p->exact = p->nreqs;
        }
    }
    uint32_t seqno = p->nreqs;
    struct creq cr = {.route = rt};
    const char *method = "GET";
    char target[256];
    switch (rt) {
    case R_TEXT:
        snprintf(target, sizeof(target), "/text?status=%d&big=%u&hdr=a%%20b%s", text_status[b & 7],
                 (b & 8) ? a * 1024u : 0, (b & 16) ? "%0d%0a" : "");
        break;
    case R_JSON:
        snprintf(target, sizeof(target), "/json?n=%u&bad=%u&s=%%22%%E2%%82%%AC%%00%%ff%%5c%u",
                 a % 40, b & 1, b);
        break;
    case R_ECHO:
        method = "POST";
        snprintf(target, sizeof(target), "/echo");
        cr.report = true;
        cr.what = "echo";
        break;
    case R_UPLOAD:
        method = "POST";
        snprintf(target, sizeof(target), "/upload?fail=%u&code=%d&defer=%u&ms=%u",
                 (b & 1) ? a * 97u + 1 : 0, upload_code[(b >> 1) & 3], (b >> 3) & 1, a);
        cr.report = true;
        cr.what = "upload";
        break;
    case R_DEFER:
        method = (b & 4) ? "POST" : "GET";
        snprintf(target, sizeof(target), "/defer?ms=%u&json=%u&cancel=%u", a, b & 1, (b >> 1) & 1);
        cr.report = !(b & 1);
        cr.what = "deferred";
        break;
    case R_NOW:
        snprintf(target, sizeof(target), "/now?rc=%u", b & 1);
        break;
    case R_STREAM:
        snprintf(target, sizeof(target), "/stream?n=%u&size=%u&ms=%u&len=%u&now=%u&status=%d",
                 a % 33, piece_size[b & 7], stream_ms[(b >> 3) & 3], (b >> 5) & 3, (b >> 7) & 1,
                 (a & 0x80) ? ((a & 0x40) ? 204 : 101) : 200);
        break;
    case R_HANG:
        snprintf(target, sizeof(target), "/hang?t=%u", b & 1);
        break;
    case R_ENOMEM:
        snprintf(target, sizeof(target), "/enomem?status=%u", (b & 1) ? 418u : 0u);
        break;
    case R_UNOWNED:
        snprintf(target, sizeof(target), "/unowned?ms=%u", a);
        break;
    case R_NOPE:
        snprintf(target, sizeof(target), "/nope/%u", a);
        break;
    case R_DELETE:
        method = "DELETE";
        snprintf(target, sizeof(target), "/text");
        break;
    case R_SMALL:
        method = "POST";
        snprintf(target, sizeof(target), "/small");
        cr.report = true;
        cr.what = "echo";
        break;
    case R_PARAM:
        snprintf(target, sizeof(target), "/p/%%%02x%u/a%%2Fb/%s", a, b, (b & 1) ? "c/d" : "");
        break;
    case R_FAIL:
        snprintf(target, sizeof(target), "/fail");
        break;
    case R_STREAMNOW:
        snprintf(target, sizeof(target), "/streamnow?err=%u&rc=%u", b & 1, (b >> 1) & 1);
        break;
    case R_EARLY:
        /* b: pause mode (2 bits), resume timer (2), answer from a timer after the end, read
         * from a timer (late), the 64-byte route, the handler's -EIO after coil_req_read */
        method = "POST";
        snprintf(target, sizeof(target), "/early%s?pause=%u&rms=%u&fin=%u&late=%u&rc=%u",
                 (b & 64) ? "s" : "", b & 3, stream_ms[(b >> 2) & 3], (b >> 4) & 1, (b >> 5) & 1,
                 (b >> 7) & (a & 1));
        cr.report = true;
        cr.what = "early";
        break;
    default: /* R_EARLYNOW */
        /* b: the piece it answers at (2 bits; 0: in the handler), fail, sync, -EIO, pause
         * from the answering call, answer from the timer of a pause; a: the fail status (2
         * bits), the pause mode (2), the resume timer (2) */
        method = "POST";
        snprintf(target, sizeof(target),
                 "/earlynow?after=%u&fail=%u&sync=%u&rc=%u&pp=%u&ap=%u&pause=%u&rms=%u", b & 3,
                 (b & 4) ? early_fail[a & 3] : 0, (b >> 3) & 1, (b >> 4) & 1, (b >> 5) & 1,
                 (b >> 6) & 1, (a >> 2) & 3, stream_ms[(a >> 4) & 3]);
        break;
    }
    if (head && strcmp(method, "GET") == 0)
        method = "HEAD";
    cr.head = strcmp(method, "HEAD") == 0;
    cr.expect = expect && !http10;
    peer_printf(p, "%s %s HTTP/1.%d\r\nHost: fuzz\r\nX-Seq: %u\r\n", method, target, http10 ? 0 : 1,
                seqno);
    if (close)
        peer_printf(p, "Connection: close\r\n");
    else if (ka)
        peer_printf(p, "Connection: keep-alive\r\n");
    if (expect)
        peer_printf(p, "Expect: 100-continue\r\n");
    if (fill_hdrs)
        for (unsigned i = 0; i < 24; i++)
            peer_printf(p, "X-Fill-%u: %.*s\r\n", i, (int)(i * 7 % 60), big_body);
    bool body = len > 0 || chunked;
    if (chunked)
        peer_printf(p, "Transfer-Encoding: chunked\r\n");
    else if (body)
        peer_printf(p, "Content-Length: %u\r\n", len);
    peer_printf(p, "\r\n");
    /* the body: pseudo-random bytes from the request's number */
    uint64_t x = 0x9e3779b97f4a7c15u ^ ((uint64_t)seqno << 32) ^ len;
    uint64_t hash = 0;
    size_t csize = ck & 0x7f;
    bool ext = ck & 0x80;
    size_t done = 0;
    char tmp[4096];
    while (done < body_bytes) {
        size_t k = body_bytes - done;
        if (chunked && csize && k > csize && done < 256 * csize)
            k = csize; /* at most 256 small chunks, then the rest in one */
        if (chunked)
            peer_printf(p, (done / (csize ? csize : 1)) & 1 ? "%zX%s\r\n" : "%zx%s\r\n", k,
                        ext ? ";a=b;c=\"d\"" : "");
        for (size_t left = k; left;) {
            size_t m = left < sizeof(tmp) ? left : sizeof(tmp);
            x = fill(tmp, m, x, &hash);
            peer_write(p, tmp, m);
            left -= m;
        }
        if (chunked)
            peer_printf(p, "\r\n");
        done += k;
    }
    if (chunked && body_bytes == len)
        peer_printf(p, ext ? "0;z=1\r\nX-Trailer: t\r\n\r\n" : "0\r\n\r\n");
    gen_used += body_bytes;
    cr.len = len;
    cr.hash = len ? hash : fnv(0, NULL, 0);
    if (p->nreqs == p->capreqs) {
        p->capreqs = p->capreqs ? p->capreqs * 2 : 16;
        p->reqs = realloc(p->reqs, p->capreqs * sizeof(*p->reqs));
        REQUIRE(p->reqs);
    }
    p->reqs[p->nreqs++] = cr;
}

/* ---- the transport contract ------------------------------------------------------------ */

/* The codec as tcp.c calls it, with the contract checked around each call: accepted
 * connections speak it instead of coil__http1 (op_accept). A connection whose first bytes are
 * HTTP/2's preface is handed to coil__http2 by http1.c (take_preface sets c->proto), and its
 * peer reads HTTP/2 frames from then on (h2_feed). That codec is left unwrapped: request.c
 * tells the codecs apart by c->proto == &coil__http2, so a wrapper in its place would send
 * HTTP/2 streams' answers to http1.c. */
static bool in_on_data;

static void ck_data(struct coil__worker *w, struct coil_conn *c, const char *data, size_t n)
{
    REQUIRE(!in_on_data); /* never re-entered */
    REQUIRE(!(c->flags & CONN_CLOSING) && (c->flags & CONN_BUSY));
    in_on_data = true;
    coil__http1.on_data(w, c, data, n);
    in_on_data = false;
    if (c->proto == &coil__http2) {
        /* the preface came: HTTP/2 from now on (the connection may be aborting already) */
        struct peer *p = peer_of(c->fd);
        REQUIRE(p && !p->h2 && p->nfinal == 0 && p->st == O_HEAD && p->headlen == 0);
        p->h2 = true;
        if (trace)
            fprintf(stderr, "peer %u: HTTP/2\n", (unsigned)(p - peers));
    }
}

static void ck_eof(struct coil__worker *w, struct coil_conn *c)
{
    REQUIRE(!(c->flags & CONN_CLOSING) && (c->flags & CONN_EOF));
    coil__http1.on_eof(w, c);
}

static void ck_read_timeout(struct coil__worker *w, struct coil_conn *c)
{
    REQUIRE(!(c->flags & CONN_CLOSING));
    coil__http1.on_read_timeout(w, c);
}

static void ck_sent(struct coil__worker *w, struct coil_conn *c)
{
    REQUIRE(!(c->flags & CONN_CLOSING));
    coil__http1.on_sent(w, c);
}

static void ck_resume(struct coil__worker *w, struct coil_conn *c)
{
    REQUIRE(!(c->flags & CONN_CLOSING));
    coil__http1.on_resume(w, c);
}

static void ck_abort(struct coil__worker *w, struct coil_conn *c)
{
    REQUIRE(c->flags & CONN_CLOSING);
    coil__http1.on_abort(w, c);
    REQUIRE(!c->rq); /* on_abort dropped the request that hung on it */
}

static void ck_drain(struct coil__worker *w, struct coil_conn *c)
{
    REQUIRE(!(c->flags & (CONN_CLOSING | CONN_LINGER | CONN_CLOSE_AFTER)));
    coil__http1.on_drain(w, c);
}

static const struct coil__proto checked_http1 = {
    .on_data = ck_data,
    .on_eof = ck_eof,
    .on_read_timeout = ck_read_timeout,
    .on_sent = ck_sent,
    .on_resume = ck_resume,
    .on_abort = ck_abort,
    .on_drain = ck_drain,
};

/* The codec's calls to tcp.c's coil__conn_reserve come here (-Wl,--wrap=coil__conn_reserve):
 * the protocol must not queue output once the connection is aborting (on_abort said so), nor
 * after the FIN. */
char *__real_coil__conn_reserve(struct coil__worker *w, struct coil_conn *c, size_t n);
char *__wrap_coil__conn_reserve(struct coil__worker *w, struct coil_conn *c, size_t n);
char *__wrap_coil__conn_reserve(struct coil__worker *w, struct coil_conn *c, size_t n)
{
    REQUIRE(!(c->flags & (CONN_CLOSING | CONN_LINGER)));
    return __real_coil__conn_reserve(w, c, n);
}

/* ---- driving the fake kernel ------------------------------------------------------------ */

static struct coil_conn *conn_of(struct peer *p)
{
    return p->live ? fk_conn(&worker, p->fd) : NULL;
}

/* One recv completion for p, if its recv is armed and has something to report; last: the data
 * comes without IORING_CQE_F_MORE; race: data the kernel posted before a cancel or the abort's
 * shutdown took effect (reaped after them) still comes first. */
static bool recv_step(struct peer *p, size_t max, bool race, bool last)
{
    struct fk_io io;
    if (!p->live || !fk_io(p->fd, &io) || !io.recv || work_used >= WORK_BUDGET)
        return false;
    work_used++;
    if (io.shut_rd && !race) {
        fk_recv_end(&worker, p->fd, 0); /* shutdown woke it */
        return true;
    }
    if (io.recv_cancelled && !race) {
        fk_recv_end(&worker, p->fd, -ECANCELED);
        return true;
    }
    if (p->reset) {
        fk_recv_end(&worker, p->fd, -ECONNRESET);
        return true;
    }
    size_t avail = p->qlen - p->qoff;
    if (avail) {
        size_t n = avail < max ? avail : max;
        if (n > RECV_MAX)
            n = RECV_MAX;
        const char *d = (const char *)p->q + p->qoff;
        p->qoff += n; /* before the call: the peer may be closed inside it */
        fk_recv_data(&worker, p->fd, d, n, last);
        return true;
    }
    if (p->fin || io.shut_rd) {
        fk_recv_end(&worker, p->fd, 0);
        return true;
    }
    return false;
}

static void recv_all(struct peer *p, size_t piece)
{
    for (unsigned i = 0; i < 5000 && recv_step(p, piece, false, false); i++)
        ;
}

/* The send in flight on p completes with up to k bytes (0: all). Once the abort shut the
 * socket down it fails, unless k is odd: then the k bytes went out before the shutdown (the
 * completion is reaped after it). */
static bool send_step(struct peer *p, size_t k)
{
    struct fk_io io;
    if (!p->live || !fk_io(p->fd, &io) || !io.send || work_used >= WORK_BUDGET)
        return false;
    work_used++;
    size_t n = io.send_len;
    if (p->reset || (io.shut_wr && !(k & 1))) {
        fk_send(&worker, p->fd, -EPIPE); /* reset by the peer, or shut down by the abort */
        return true;
    }
    fk_send(&worker, p->fd, (long)(k == 0 || k > n ? n : k));
    return true;
}

static void send_all(void)
{
    for (unsigned round = 0; round < 256; round++) {
        fk_loop_tail(&worker);
        bool any = false;
        for (unsigned i = 0; i < NPEERS; i++)
            for (unsigned j = 0; j < 1000 && send_step(&peers[i], 0); j++)
                any = true;
        if (!any && worker.nflush == 0)
            break;
        if (work_used >= WORK_BUDGET)
            break;
    }
}

static size_t piece_of(uint8_t s)
{
    return s == 0 ? RECV_MAX : s < 128 ? s : (size_t)(s - 127) * 128;
}

static uint64_t ms_of(uint8_t t)
{
    if (t < 64)
        return t;
    if (t < 128)
        return (uint64_t)(t - 64) * 100;
    if (t < 192)
        return (uint64_t)(t - 128) * 1000;
    return (uint64_t)(t - 192) * 10000;
}

/* A connection arrives on a free peer slot. With every slot taken it still arrives, and the
 * engine must refuse it (max_conns is NPEERS). */
static void op_accept(void)
{
    unsigned i = 0;
    while (i < NPEERS && peers[i].live)
        i++;
    int fd = fk_accept(&worker);
    if (fd < 0)
        return; /* no accept armed: paused, or draining */
    struct coil_conn *c = fk_conn(&worker, fd);
    if (trace)
        fprintf(stderr, "accept: fd %d %s\n", fd, c ? "open" : "refused");
    if (i == NPEERS) {
        REQUIRE(!c);
        return;
    }
    if (!c)
        return; /* refused at once: no memory, or draining */
    peer_reset_state(&peers[i]);
    peers[i].live = true;
    peers[i].fd = fd;
    cur = i;
    c->proto = &checked_http1;
}

static const int accept_errs[8] = {EMFILE,       ENFILE, ENOBUFS, ENOMEM,
                                   ECONNABORTED, EINTR,  EAGAIN,  EPERM};

enum {
    OP_ACCEPT_,
    OP_SELECT,
    OP_RAW,
    OP_REQ,
    OP_RECV_,
    OP_RECV_ALL,
    OP_CLOCK,
    OP_SEND_,
    OP_SEND_ALL,
    OP_EOF,
    OP_RESET,
    OP_BATCH,
    OP_DRAIN,
    OP_FORCE,
    OP_ENOBUFS,
    OP_SQEFAIL,
    OP_SEND_ERR,
    OP_PUMP,
    OP_ALLOCFAIL,
    OP_COUNT
};

static void run(struct reader *r)
{
    op_accept();
    fk_check(&worker);
    for (unsigned steps = 0; r->n && steps < 4096; steps++) {
        struct peer *p = &peers[cur];
        struct fk_io io;
        uint8_t op = u8(r) % OP_COUNT;
        if (trace)
            fprintf(stderr, "op %u on peer %u (%zu bytes left)\n", op, cur, r->n);
        switch (op) {
        case OP_ACCEPT_:
            op_accept();
            break;
        case OP_SELECT:
            cur = u8(r) % NPEERS;
            break;
        case OP_RAW: {
            size_t n = u16(r);
            if (n > r->n)
                n = r->n;
            if (p->live && n) {
                if (!p->raw) {
                    p->raw = true;
                    p->exact = p->nreqs;
                }
                peer_write(p, r->p, n);
            }
            r->p += n;
            r->n -= n;
            break;
        }
        case OP_REQ:
            if (p->live) {
                op_req(p, r);
            } else {
                for (int i = 0; i < 7; i++) /* its operands */
                    u8(r);
            }
            break;
        case OP_RECV_: {
            uint16_t s = u16(r);
            recv_step(p, (s & 0x3fff) ? (s & 0x3fff) : RECV_MAX, s & 0x8000, s & 0x4000);
            break;
        }
        case OP_RECV_ALL:
            recv_all(p, piece_of(u8(r)));
            break;
        case OP_CLOCK:
            fk_set_clock(&worker, worker.now_ms + ms_of(u8(r)));
            fk_loop_tail(&worker);
            break;
        case OP_SEND_:
            send_step(p, u16(r));
            break;
        case OP_SEND_ALL:
            send_all();
            break;
        case OP_EOF:
            p->fin = true;
            break;
        case OP_RESET:
            if (!p->live)
                break;
            p->reset = true;
            if (fk_io(p->fd, &io) && io.recv)
                recv_step(p, RECV_MAX, true, false);
            else if (io.send)
                send_step(p, 0);
            break;
        case OP_BATCH:
            fk_loop_tail(&worker);
            break;
        case OP_DRAIN:
            fk_drain(&worker);
            break;
        case OP_FORCE:
            fk_force(&worker);
            break;
        case OP_ENOBUFS:
            if (p->live && fk_io(p->fd, &io) && io.recv && !io.shut_rd)
                fk_recv_end(&worker, p->fd, -ENOBUFS);
            break;
        case OP_SQEFAIL: {
            uint8_t n = u8(r);
            if (n & 0x80)
                fk_accept_error(&worker, accept_errs[n & 7], n & 8);
            else
                fk_sqe_failures = n % 4 + 1;
            break;
        }
        case OP_SEND_ERR:
            if (p->live && fk_io(p->fd, &io) && io.send)
                fk_send(&worker, p->fd, -EPIPE);
            break;
        case OP_ALLOCFAIL:
            coil__walloc_fail_in(&worker.wa, u8(r) % 64 + 1);
            break;
        case OP_PUMP:
            for (unsigned i = 0; i < NPEERS; i++)
                recv_all(&peers[i], RECV_MAX);
            send_all();
            break;
        }
        fk_check(&worker);
    }
}

/* The end of an input: settle, abort everything, let every completion and timer come. */
static void teardown(void)
{
    struct coil__worker *w = &worker;
    fk_sqe_failures = 0;
    w->wa.fail_in = 0;
    work_used = 0;
    send_all();
    fk_force(w);
    for (unsigned i = 0; i < NPEERS; i++) {
        struct peer *p = &peers[i];
        for (unsigned j = 0; j < 8 && p->live; j++) {
            struct coil_conn *c = conn_of(p);
            REQUIRE(c && (c->flags & CONN_CLOSING));
            struct fk_io io;
            REQUIRE(fk_io(p->fd, &io));
            if (io.recv)
                fk_recv_end(w, p->fd, 0);
            else if (io.send)
                fk_send(w, p->fd, -ECANCELED);
        }
        REQUIRE(!p->live);
    }
    for (int i = 0; i < 2; i++) {
        fk_set_clock(w, w->now_ms + 3600u * 1000);
        fk_loop_tail(w);
    }
    fk_check(w);
    REQUIRE(w->open == 0 && w->conns.used == 0);
    REQUIRE(w->rqs.used == (w->rq_spare ? 1u : 0u)); /* no deferred request left */
    REQUIRE(w->utimers.used == 0);                   /* every handler timer fired or dropped */
    REQUIRE(w->heap.n == 0);
    REQUIRE(w->wheel.count == 0); /* connection timers, handler deadlines, the accept pause */
    REQUIRE(w->nflush == 0);
    REQUIRE(atomic_load(&w->stats.waiting) == 0);
    fk_worker_stop(w);
    for (unsigned i = 0; i < NPEERS; i++)
        peer_reset_state(&peers[i]);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool ready;
    if (!ready) {
        trace = getenv("FUZZ_TRACE") ? atoi(getenv("FUZZ_TRACE")) : 0;
        app_init();
        fk_init();
        ready = true;
    }
    memset(unowned, 0, sizeof(unowned));
    unowned_next = 0;
    cur = 0;
    gen_used = 0;
    work_used = 0;
    fk_sqe_failures = 0;
    in_on_data = false;
    fk_worker_start(&worker, &app, 1000000);
    struct reader r = {data, size};
    run(&r);
    teardown();
    return 0;
}
