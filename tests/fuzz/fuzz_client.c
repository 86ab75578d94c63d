/* SPDX-License-Identifier: MIT */
/*
 * fuzz_client: libFuzzer target for the upstream HTTP/1.1 client (client.c: pools, fetches,
 * response parsing and framing, pause/resume, cancel, retry, timeouts, the circuit breaker) and
 * the reverse proxy (proxy.c), over the real transport (tcp.c) and the fake kernel of
 * fake_kernel.c, which also plays the upstream servers: tcp.c's socket() gets a fake descriptor
 * (-Wl,--wrap=socket), its IORING_OP_CONNECT completes when the program says so, and what the
 * engine sends upstream is taken (and dropped) like a client's output.
 *
 * The input is a program, one op byte (modulo OP_COUNT) then its operands (zeros past the end):
 *
 *   00 ACCEPT             a client connection arrives (current client = it)
 *   01 SELECT s           current client = s % 2
 *   02 REQ r a b c d l:u16  the client writes a request to a route (r % 4):
 *                         0 GET /f, 1 POST /f (body l), 2 /api/... proxied (GET, or POST with l
 *                         bytes, chunked if a & 1), 3 POST /s (a streamed upstream body of l
 *                         bytes, chunked if b & 1). a..d are the fetch's parameters (h_fetch)
 *   03 CRECV s:u16        one recv completion on the current client (s & 0x3fff bytes, 0 all)
 *   04 PUMP               every socket reads all it has, then every send completes
 *   05 CLOCK t            the clock moves by ms(t), then the loop's tail
 *   06 BATCH              the loop's tail
 *   07 CONNECT u k        the connect in flight on upstream socket u completes: k%4 0,1 ok,
 *                         2 -ECONNREFUSED, 3 -ETIMEDOUT
 *   08 UGEN u f s l:u16 k a harness-built response on upstream socket u: framing f&3 (length,
 *                         chunked of k-byte chunks, close-delimited, 204), f&4 Connection:
 *                         close, f&8 a 100 Continue first, f&16 a bad chunk size mid-body,
 *                         f&32 a 1.0 status line, f&64 trailing garbage, f&128 a second one
 *                         pipelined; status 200 + s % 8; s&128: body length l x 20. It carries
 *                         X-Chk, a nonce naming (status, header count, framing, body length,
 *                         hash) for the checker
 *   09 URAW u n bytes     upstream socket u writes n raw bytes
 *   0a URECV u s:u16      one recv completion on upstream socket u (as CRECV)
 *   0b UEOF u             upstream u shuts its write side (seen after its bytes)
 *   0c URESET u           upstream u resets
 *   0d USEND u k:u16      the send in flight on upstream u completes with k bytes (0: all)
 *   0e SENDALL            every send completes, until nothing is left to send
 *   0f DRAIN / 10 FORCE   graceful shutdown begins / every connection is aborted
 *   11 SQEFAIL n          the next n%4+1 coil__sqe calls fail
 *   12 ALLOCFAIL n        the worker's (n%64+1)-th allocation from now fails
 *   13 SOCKFAIL           the next socket() fails (EMFILE)
 *   14 CANCEL k           fetch k is cancelled from outside (its request answered 502)
 *   15 RESUME k           paused fetch k is resumed from outside
 *   16 WRITE k n:u16      streamed fetch k writes up to n more bytes (0: all), then ends the
 *                         body once it is all written
 *   17 CEOF / 18 CRESET   the current client shuts its write side / resets
 *
 * The seed corpus (corpus_client/) is written by make_corpus_client.py. FUZZ_TRACE=1 prints the
 * ops, the fetch events and the responses' status lines (2: every send's first bytes).
 *
 * Upstreams: U0 "http://127.0.0.1:9" (max_conns 2, max_queue 2, short timeouts, the breaker
 * after 2 failures), U1 two servers (max_conns 1, max_queue 2, a total timeout), and the
 * proxy route /api/ to a third. h_fetch's parameters (from the request's query): u upstream,
 * m method (GET HEAD POST PUT DELETE PATCH), o 1: unowned fetch, p pause mode (1 every other
 * piece, 2 every piece once, 3 the first piece twice; resumed by a 0-60 ms timer or RESUME),
 * c the event at which the callback cancels (odd: returns -1, even: coil_fetch_cancel), e the
 * event at which the request is answered early (the fetch is dropped with its owner).
 *
 * Invariants (abort even under NDEBUG):
 *  - a fetch reports HEAD at most once and first, BODY pieces non-empty after HEAD, then exactly
 *    one DONE or ERROR (with a documented error; started exactly when HEAD came), nothing after
 *    it, nothing after the harness cancelled it, nothing once its owner request ended (answered
 *    or aborted), WRITABLE only for a streamed body; a piece refused with COIL_FETCH_PAUSE comes
 *    again unchanged after the resume; nothing arrives while paused;
 *  - a response the harness built (X-Chk found, status and header count as built) that ends in
 *    DONE delivered exactly its body (length and hash; close-delimited: at least it, as more
 *    bytes may follow it), and one built with a bad chunk size never ends in DONE;
 *  - at the end, every fetch that was not cancelled (by the harness, a negative return or its
 *    owner ending) got exactly one DONE or ERROR; every deferred request was answered or aborted,
 *    exactly once; every fetch's handle is stale (coil_fetch_write says -ENOENT); no connection,
 *    timer or socket is left and every walloc allocation was freed (fake_kernel.c);
 *  - fake_kernel.c's checks, now with outbound sockets and their connects; ASan, UBSan, LSan.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake_kernel.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define NCLIENTS 2
#define NREC 48
#define NTAGS 64
#define RECV_MAX 16384u
#define WORK_BUDGET 20000u
#define QMAX (1024u * 1024)
#define GEN_MAX (400u * 1000) /* a built response's body, at most */

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

static struct coil_app app;
static struct coil__worker worker;
static struct coil_upstream *ups[2];
static int trace;
static unsigned work_used;

/* ---- coil_route_stream (app.c is not linked; config.c has coil_app_option)
 * --------------------------------------------------------- */

int coil_route_stream(struct coil_app *a, const char *method, const char *pattern,
                      coil_body_fn on_body, coil_handler h, void *ud)
{
    int r = coil__router_add(a->router, method, pattern, h, ud);
    if (r == 0) {
        struct coil__route *route = coil__router_find(a->router, method, pattern);
        route->on_body = on_body;
        route->early = on_body == NULL;
    }
    return r;
}

/* ---- byte streams: what a client or an upstream writes to the engine ------------------- */

struct stream {
    bool live;
    int fd;
    char *q;
    size_t qlen, qoff, qcap;
    bool fin, reset;
};

static struct stream clients[NCLIENTS];
static struct stream ustreams[16]; /* by fd - FK_FD_BASE, modulo */
static unsigned cur;

static void s_write(struct stream *s, const void *d, size_t n)
{
    if (!n || !s->live || s->fin || s->reset || s->qlen + n > QMAX)
        return;
    if (s->qlen + n > s->qcap) {
        size_t cap = s->qcap ? s->qcap : 4096;
        while (cap < s->qlen + n)
            cap *= 2;
        char *nq = realloc(s->q, cap);
        REQUIRE(nq);
        s->q = nq;
        s->qcap = cap;
    }
    memcpy(s->q + s->qlen, d, n);
    s->qlen += n;
}

static void s_printf(struct stream *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void s_printf(struct stream *s, const char *fmt, ...)
{
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    REQUIRE(n >= 0 && (size_t)n < sizeof(tmp));
    s_write(s, tmp, (size_t)n);
}

static void s_clear(struct stream *s)
{
    free(s->q);
    memset(s, 0, sizeof(*s));
}

static struct stream *ustream_of(int fd)
{
    if (fd < FK_FD_BASE || !fk_is_outbound(fd))
        return NULL;
    struct stream *s = &ustreams[(unsigned)(fd - FK_FD_BASE) % 16];
    if (!s->live || s->fd != fd) {
        s_clear(s);
        s->live = true;
        s->fd = fd;
    }
    return s;
}

static struct stream *client_of(int fd)
{
    for (unsigned i = 0; i < NCLIENTS; i++)
        if (clients[i].live && clients[i].fd == fd)
            return &clients[i];
    return NULL;
}

void fuzz_peer_output(int fd, const char *data, size_t n)
{
    (void)data;
    (void)n; /* the client's responses are fuzz_http1's business; the upstream ignores requests */
    REQUIRE(client_of(fd) || fk_is_outbound(fd));
    if (trace > 1 || (trace && client_of(fd) && n >= 12 && !memcmp(data, "HTTP/1.1 ", 9)))
        fprintf(stderr, "  %s %d: %.*s\n", client_of(fd) ? "client" : "upstream", fd - FK_FD_BASE,
                (int)(n < 60 ? n : 60), data);
}

void fuzz_peer_fin(int fd)
{
    (void)fd;
}

void fuzz_peer_closed(int fd)
{
    struct stream *s = client_of(fd);
    if (s)
        s->live = false;
    if (fd >= FK_FD_BASE) {
        struct stream *u = &ustreams[(unsigned)(fd - FK_FD_BASE) % 16];
        if (u->fd == fd)
            u->live = false;
    }
}

/* One recv completion on s (as fuzz_http1's recv_step). */
static bool recv_step(struct stream *s, size_t max, bool last)
{
    struct fk_io io;
    if (!s->live || !fk_io(s->fd, &io) || !io.recv || work_used >= WORK_BUDGET)
        return false;
    work_used++;
    if (io.shut_rd) {
        fk_recv_end(&worker, s->fd, 0);
        return true;
    }
    if (io.recv_cancelled) {
        fk_recv_end(&worker, s->fd, -ECANCELED);
        return true;
    }
    if (s->reset) {
        fk_recv_end(&worker, s->fd, -ECONNRESET);
        return true;
    }
    size_t avail = s->qlen - s->qoff;
    if (avail) {
        size_t n = avail < max ? avail : max;
        if (n > RECV_MAX)
            n = RECV_MAX;
        const char *d = s->q + s->qoff;
        s->qoff += n;
        fk_recv_data(&worker, s->fd, d, n, last);
        return true;
    }
    if (s->fin) {
        fk_recv_end(&worker, s->fd, 0);
        return true;
    }
    return false;
}

static void recv_all(struct stream *s)
{
    for (unsigned i = 0; i < 2000 && recv_step(s, RECV_MAX, false); i++)
        ;
}

static bool send_step(struct stream *s, size_t k)
{
    struct fk_io io;
    if (!s->live || !fk_io(s->fd, &io) || !io.send || work_used >= WORK_BUDGET)
        return false;
    work_used++;
    size_t n = io.send_len;
    if (s->reset || (io.shut_wr && !(k & 1))) {
        fk_send(&worker, s->fd, -EPIPE);
        return true;
    }
    fk_send(&worker, s->fd, (long)(k == 0 || k > n ? n : k));
    return true;
}

static void each_stream(void (*fn)(struct stream *))
{
    for (unsigned i = 0; i < NCLIENTS; i++)
        fn(&clients[i]);
    for (unsigned k = 0;; k++) {
        int fd = fk_outbound(k, NULL);
        if (fd < 0)
            break;
        fn(ustream_of(fd));
    }
}

static bool any_sent;
static void send_one_all(struct stream *s)
{
    for (unsigned j = 0; j < 1000 && send_step(s, 0); j++)
        any_sent = true;
}

static void send_all(void)
{
    for (unsigned round = 0; round < 256 && work_used < WORK_BUDGET; round++) {
        fk_loop_tail(&worker);
        any_sent = false;
        each_stream(send_one_all);
        if (!any_sent && worker.nflush == 0)
            break;
    }
}

/* ---- the checker's tags: responses the harness built ------------------------------------ */

enum { FR_LENGTH, FR_CHUNKED, FR_CLOSE, FR_NONE };

struct tag {
    uint64_t nonce;
    int status;
    size_t nheaders;
    uint8_t framing;
    bool bad;
    uint64_t len, hash;
};
static struct tag tags[NTAGS];
static unsigned ntags;
static uint64_t nonce_seq;

static const struct tag *tag_find(uint64_t nonce)
{
    for (unsigned i = 0; i < ntags; i++)
        if (tags[i].nonce == nonce)
            return &tags[i];
    return NULL;
}

/* ---- fetch records ------------------------------------------------------------------------ */

struct rec {
    bool used;
    bool owned, stream, chunked_stream, head_method;
    bool in_call;     /* coil_fetch is on the stack */
    bool started;     /* coil_fetch returned 0 */
    bool cancelled;   /* by the harness (cancel, negative return) */
    bool owner_ended; /* answered or aborted */
    bool answered, aborted;
    bool dropped; /* the owner ended before the fetch did: it goes silently */
    bool headed, tagged, bad, paused;
    uint8_t framing;
    unsigned nterm, nev, pieces;
    uint8_t pmode, cancel_at, answer_at;
    int status;
    struct coil_defer d;
    struct coil_fetch f;
    uint64_t blen, bhash, tlen, thash;
    uint64_t refused_len, refused_hash;
    bool refused, refused_once;
    uint64_t to_write, written;
    bool end_done;
};
static struct rec recs[NREC];
static unsigned nrecs;

static void answer(struct rec *r, int status, const char *text)
{
    if (r->owner_ended)
        return;
    struct coil_res *res = coil_defer_res(r->d);
    REQUIRE(res); /* neither answered nor aborted: still there */
    r->owner_ended = true;
    r->answered = true;
    if (!r->nterm && !r->cancelled)
        r->dropped = r->owned;
    if (status >= 400) {
        REQUIRE(coil_res_fail(res, status) == 0);
        return;
    }
    coil_res_text(res, status, "text/plain", text);
    REQUIRE(coil_res_finish(res) == 0);
}

static void on_abort(void *ud)
{
    struct rec *r = ud;
    REQUIRE(r->used && !r->answered && !r->aborted);
    r->aborted = true;
    r->owner_ended = true;
    if (!r->nterm && !r->cancelled)
        r->dropped = r->owned;
}

static void resume_fire(void *ud)
{
    struct rec *r = ud;
    if (r->paused && !r->cancelled && !r->nterm && !r->dropped) {
        int rc = coil_fetch_resume(r->f);
        if (trace)
            fprintf(stderr, "  fetch %u: resumed (%d)\n", (unsigned)(r - recs), rc);
        REQUIRE(rc == 0 || rc == -ENOMEM);
    }
}

/* Writes what is left of a streamed body, as far as the connection takes it. */
static void write_more(struct rec *r, uint64_t max)
{
    static char wbuf[4096];
    if (!r->stream || r->end_done || r->nterm || r->cancelled || r->dropped)
        return;
    while (max && r->written < r->to_write) {
        uint64_t n = r->to_write - r->written;
        if (n > max)
            n = max;
        if (n > sizeof(wbuf))
            n = sizeof(wbuf);
        memset(wbuf, 'w', (size_t)n);
        int rc = coil_fetch_write(r->f, wbuf, (size_t)n);
        if (rc == -EAGAIN)
            return;
        if (rc == -ENOENT || r->nterm || r->dropped)
            return;
        REQUIRE(rc == 0 || rc == -ENOMEM);
        if (rc < 0)
            return;
        r->written += n;
        max -= n;
    }
    if (r->written == r->to_write && !r->nterm) {
        int rc = coil_fetch_write_end(r->f);
        REQUIRE(rc == 0 || rc == -ENOENT || rc == -ENOMEM);
        r->end_done = rc == 0 || rc == -ENOENT;
        if (rc == -ENOMEM && !r->nterm) {
            r->cancelled = true; /* write_end cancels the fetch */
            answer(r, 503, NULL);
        }
    }
}

/* The errors coil.h lists for an ERROR event (never 0: crashes_client/
 * fetch_error_zero_pause_enomem). */
static bool documented(int err)
{
    return err == -ECONNREFUSED || err == -ETIMEDOUT || err == -ECONNRESET || err == -EPROTO ||
           err == -ENOMEM || err == -EHOSTUNREACH || err == -EBUSY || err == -EMFILE;
}

static int on_fetch(const struct coil_fetch_ev *ev, void *ud)
{
    struct rec *r = ud;
    REQUIRE(r->used && !r->in_call);
    REQUIRE(r->started && ev->fetch.id == r->f.id);
    REQUIRE(!r->cancelled); /* fn never runs again after a cancel */
    REQUIRE(!r->nterm);     /* nothing after DONE or ERROR */
    REQUIRE(!r->dropped);   /* nor once its owner ended */
    if (r->owned)
        REQUIRE(!r->owner_ended && coil_defer_res(r->d));
    if (trace)
        fprintf(stderr, "  fetch %u: event %d (len %zu err %d)\n", (unsigned)(r - recs),
                (int)ev->kind, ev->len, ev->error);
    r->nev++;
    if (r->paused && ev->kind != COIL_FETCH_WRITABLE) {
        /* nothing while paused but the piece left (after the resume) or an error */
        REQUIRE(ev->kind == COIL_FETCH_BODY || ev->kind == COIL_FETCH_ERROR);
        r->paused = false;
    }
    switch (ev->kind) {
    case COIL_FETCH_HEAD: {
        REQUIRE(!r->headed);
        r->headed = true;
        r->status = ev->status;
        REQUIRE(ev->status >= 200 && ev->status <= 999);
        for (size_t i = 0; i < ev->nheaders; i++) {
            const struct coil_header *h = &ev->headers[i];
            if (h->name.len == 5 && !memcmp(h->name.ptr, "X-Chk", 5) && h->value.len < 30) {
                char v[32];
                memcpy(v, h->value.ptr, h->value.len);
                v[h->value.len] = 0;
                const struct tag *t = tag_find(strtoull(v, NULL, 16));
                if (t && t->status == ev->status && t->nheaders == ev->nheaders &&
                    !r->head_method) {
                    r->tagged = true;
                    r->bad = t->bad;
                    r->framing = t->framing;
                    r->tlen = t->len;
                    r->thash = t->hash;
                    if (t->framing == FR_LENGTH)
                        REQUIRE(ev->length == (int64_t)t->len);
                    REQUIRE(ev->no_body == (t->framing == FR_NONE));
                }
            }
        }
        break;
    }
    case COIL_FETCH_BODY: {
        REQUIRE(r->headed && ev->len > 0 && ev->data && ev->status == r->status);
        uint64_t h = fnv(0, ev->data, ev->len);
        if (r->refused) { /* the piece left comes again, unchanged */
            REQUIRE(ev->len == r->refused_len && h == r->refused_hash);
            r->refused = false;
        } else {
            r->pieces++;
            bool pause = (r->pmode == 1 && (r->pieces & 1)) || r->pmode == 2 ||
                         (r->pmode == 3 && r->pieces == 1 && !r->refused_once);
            if (pause && !(r->pmode == 3 && r->refused_once)) {
                r->refused = true;
                r->refused_once = true;
                r->refused_len = ev->len;
                r->refused_hash = h;
                r->paused = true;
                uint64_t ms = (r->nev * 7) % 61;
                if (r->nev & 1)
                    coil_timer_after(r->owned ? coil_defer_req(r->d) : NULL, ms, resume_fire, r);
                /* else: a RESUME op, or nothing (the end aborts it) */
                return COIL_FETCH_PAUSE;
            }
        }
        for (size_t i = 0; i < ev->len && r->blen + i < r->tlen; i++)
            r->bhash = fnv(r->bhash, ev->data + i, 1);
        r->blen += ev->len;
        break;
    }
    case COIL_FETCH_DONE: {
        REQUIRE(r->headed && !r->refused);
        r->nterm++;
        if (r->tagged) {
            REQUIRE(!r->bad); /* a malformed response never ends well */
            uint64_t h0 = fnv(0, NULL, 0);
            uint64_t got = r->bhash ? r->bhash : h0; /* 0: nothing hashed */
            if (r->framing == FR_CLOSE)
                REQUIRE(r->blen >= r->tlen);
            else
                REQUIRE(r->blen == r->tlen);
            REQUIRE(got == (r->tlen ? r->thash : h0));
        }
        char msg[64];
        snprintf(msg, sizeof(msg), "%d %" PRIu64 " %016" PRIx64 "\n", r->status, r->blen, r->bhash);
        if (r->owned || coil_defer_res(r->d))
            answer(r, 200, msg);
        return 0;
    }
    case COIL_FETCH_ERROR:
        r->nterm++;
        if (!documented(ev->error))
            fprintf(stderr, "fetch error %d\n", ev->error);
        REQUIRE(documented(ev->error));
        REQUIRE(ev->started == r->headed);
        if (r->owned || coil_defer_res(r->d))
            answer(r, ev->error == -ETIMEDOUT ? 504 : 502, NULL);
        return 0;
    case COIL_FETCH_WRITABLE:
        REQUIRE(r->stream); /* may come after the end, for an -EAGAIN before it */
        write_more(r, UINT64_MAX);
        if (r->nterm || r->dropped || r->cancelled)
            return 0;
        break;
    default:
        REQUIRE(!"unknown event");
    }
    if (r->cancel_at && r->nev == r->cancel_at) {
        r->cancelled = true;
        if (r->cancel_at & 1) {
            answer(r, 502, NULL);
            return -1;
        }
        REQUIRE(coil_fetch_cancel(r->f) == 0);
        REQUIRE(coil_fetch_cancel(r->f) == -ENOENT);
        answer(r, 502, NULL);
        return 0;
    }
    if (r->answer_at && r->nev == r->answer_at)
        answer(r, 200, "early\n"); /* an owned fetch goes with its owner */
    return 0;
}

static uint64_t qnum(struct coil_req *req, const char *name, uint64_t max)
{
    struct coil_str v;
    if (coil_req_query_param(req, name, &v) != 1 || v.len == 0)
        return 0;
    uint64_t n = 0;
    for (size_t i = 0; i < v.len && v.ptr[i] >= '0' && v.ptr[i] <= '9'; i++)
        n = n * 10 + (uint64_t)(v.ptr[i] - '0');
    return n > max ? max : n;
}

static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"};

static int h_fetch(struct coil_req *req, struct coil_res *res, void *ud)
{
    bool streamed = ud != NULL;
    if (nrecs == NREC)
        return coil_res_text(res, 503, "text/plain", "full\n");
    struct rec *r = &recs[nrecs++];
    memset(r, 0, sizeof(*r));
    r->used = true;
    r->d = coil_res_defer(res, on_abort, r);
    if (!r->d.id) {
        r->used = false;
        return -ENOMEM;
    }
    req = coil_defer_req(r->d);
    unsigned u = (unsigned)qnum(req, "u", 1);
    unsigned m = (unsigned)qnum(req, "m", 5);
    r->owned = !qnum(req, "o", 1);
    r->pmode = (uint8_t)qnum(req, "p", 3);
    r->cancel_at = (uint8_t)qnum(req, "c", 9);
    r->answer_at = (uint8_t)qnum(req, "e", 9);
    r->head_method = m == 1;
    struct coil_fetch_req fr = {.method = methods[m], .target = {"/x?y=1", 6}};
    struct coil_header hs[1] = {{{"X-Req", 5}, {"1", 1}}};
    fr.headers = hs;
    fr.nheaders = 1;
    struct coil_str body = coil_req_body(req);
    if (streamed) {
        r->stream = true;
        r->chunked_stream = qnum(req, "k", 1);
        r->to_write = qnum(req, "n", 1u << 20);
        fr.stream_body = true;
        fr.stream_length = r->chunked_stream ? -1 : (int64_t)r->to_write;
    } else {
        fr.body = body.ptr;
        fr.body_len = body.len;
    }
    r->in_call = true;
    int rc = coil_fetch(r->owned ? req : NULL, ups[u], &fr, on_fetch, r, &r->f);
    r->in_call = false;
    if (rc < 0) {
        REQUIRE(rc == -EBUSY || rc == -EHOSTUNREACH || rc == -ENOMEM || rc == -EMFILE);
        answer(r, rc == -EHOSTUNREACH ? 502 : 503, NULL);
        return 0;
    }
    r->started = true;
    REQUIRE(r->f.id);
    if (streamed)
        write_more(r, UINT64_MAX);
    return 0;
}

static void app_init(void)
{
    struct coil__config *c = &app.cfg;
    coil__config_defaults(c);
    strcpy(c->bind, "127.0.0.1");
    c->workers = 1;
    c->max_conns = 64;
    c->recv_buf_size = RECV_MAX;
    c->proxy_connect_timeout_ms = 80;
    c->proxy_read_timeout_ms = 150;
    app.router = coil__router_create();
    REQUIRE(app.router);
    REQUIRE(coil__router_add(app.router, "GET", "/f", h_fetch, NULL) == 0);
    REQUIRE(coil__router_add(app.router, "POST", "/f", h_fetch, NULL) == 0);
    REQUIRE(coil__router_add(app.router, "POST", "/s", h_fetch, &app) == 0);
    struct coil_upstream_opts o0 = {.max_conns = 2,
                                    .max_queue = 2,
                                    .connect_timeout_ms = 50,
                                    .head_timeout_ms = 200,
                                    .idle_timeout_ms = 100,
                                    .keepalive_ms = 300,
                                    .fail_threshold = 2,
                                    .down_ms = 100};
    struct coil_upstream_opts o1 = {.max_conns = 1,
                                    .max_queue = 2,
                                    .connect_timeout_ms = 70,
                                    .head_timeout_ms = 120,
                                    .idle_timeout_ms = 60,
                                    .total_timeout_ms = 400,
                                    .keepalive_ms = 100,
                                    .fail_threshold = 1,
                                    .down_ms = 200};
    ups[0] = coil_upstream(&app, "http://127.0.0.1:9", &o0);
    ups[1] = coil_upstream(&app, "http://127.0.0.1:9,127.0.0.1:10/b/", &o1);
    REQUIRE(ups[0] && ups[1]);
    REQUIRE(coil_route_proxy(&app, "/api/*", "http://127.0.0.1:11/v1/") == 0);
    REQUIRE(coil__proxies_apply(&app) == 0);
    REQUIRE(app.nupstreams == 3 && app.upstreams);
    /* coil_app_run: body_cap and the parser's limits */
    app.stream_cap = 1u << 20;
    if (c->lim.max_body_bytes > app.body_cap)
        app.body_cap = c->lim.max_body_bytes;
    app.parse_lim = c->lim;
    app.parse_lim.max_body_bytes = app.stream_cap > app.body_cap ? app.stream_cap : app.body_cap;
    REQUIRE(coil__chains_build(&app) == 0); /* no middleware: every chain is empty */
    app.nworkers = 1;
    coil__app = &app;
}

/* ---- the program -------------------------------------------------------------------------- */

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

static uint64_t ms_of(uint8_t t)
{
    if (t < 64)
        return t;
    if (t < 128)
        return (uint64_t)(t - 64) * 20;
    if (t < 192)
        return (uint64_t)(t - 128) * 200;
    return (uint64_t)(t - 192) * 5000;
}

static struct stream *upstream(uint8_t u, bool *connecting)
{
    unsigned n = 0;
    while (fk_outbound(n, NULL) >= 0)
        n++;
    if (!n)
        return NULL;
    int fd = fk_outbound(u % n, connecting);
    return ustream_of(fd);
}

static void op_req(struct reader *rd)
{
    struct stream *s = &clients[cur];
    uint8_t r = u8(rd) % 4, a = u8(rd), b = u8(rd), c = u8(rd), d = u8(rd);
    unsigned l = u16(rd) % 4096;
    static char body[4096];
    memset(body, 'q', sizeof(body));
    /* the fetch's parameters */
    char q[128];
    snprintf(q, sizeof(q), "u=%u&m=%u&o=%u&p=%u&c=%u&e=%u", b & 1, (b >> 1) % 6, (b >> 4) & 1,
             (c & 3), (c >> 2) % 10, d % 10);
    switch (r) {
    case 0:
        s_printf(s, "GET /f?%s HTTP/1.1\r\nHost: h\r\n\r\n", q);
        break;
    case 1:
        s_printf(s, "POST /f?%s HTTP/1.1\r\nHost: h\r\nContent-Length: %u\r\n\r\n", q, l);
        s_write(s, body, l);
        break;
    case 2:
        if (!l) {
            s_printf(s,
                     "GET /api/p%u?z=%u HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, X-A\r\n"
                     "X-A: 1\r\nVia: 1.0 x\r\n\r\n",
                     a, b);
        } else if (a & 1) {
            s_printf(s, "POST /api/p HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
            for (unsigned off = 0; off < l; off += 1000) {
                unsigned k = l - off < 1000 ? l - off : 1000;
                s_printf(s, "%x\r\n", k);
                s_write(s, body, k);
                s_write(s, "\r\n", 2);
            }
            s_write(s, "0\r\n\r\n", 5);
        } else {
            s_printf(s, "PUT /api/p HTTP/1.1\r\nHost: h\r\nContent-Length: %u\r\n\r\n", l);
            s_write(s, body, l);
        }
        break;
    case 3:
        s_printf(s, "POST /s?%s&k=%u&n=%u HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n", q,
                 a & 1, l * 16);
        break;
    }
}

__attribute__((noinline, no_sanitize("coverage"))) static void fill(char *d, size_t n, uint64_t x)
{
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        d[i] = (char)('a' + x % 26);
    }
}

static void op_ugen(struct reader *rd)
{
    uint8_t u = u8(rd), f = u8(rd), st = u8(rd);
    unsigned l = u16(rd) % 20000;
    unsigned k = u8(rd);
    if (st & 128)
        l *= 20; /* past COIL_STREAM_HIGH: the proxy's client falls behind */
    struct stream *s = upstream(u, NULL);
    for (int rep = 0; rep < ((f & 128) ? 2 : 1); rep++) {
        if (!s || ntags == NTAGS)
            return;
        static char body[GEN_MAX];
        uint8_t fr = f & 3;
        int status = fr == FR_NONE ? 204 : 200 + st % 8;
        if (status == 204 || status == 205)
            status = fr == FR_NONE ? 204 : 200;
        if (fr == FR_NONE)
            l = 0;
        fill(body, l, nonce_seq * 31 + l + 1);
        struct tag *t = &tags[ntags++];
        t->nonce = fnv(0, &(uint64_t[]){++nonce_seq, 0x5eed}, 16) & 0xffffffffffffu;
        t->status = status;
        t->framing = fr;
        t->len = l;
        t->hash = fnv(0, body, l);
        t->bad = (f & 16) && fr == FR_CHUNKED && l > 0;
        bool v10 = f & 32; /* HTTP/1.0: no keep-alive, same framing */
        if (f & 8)
            s_printf(s, "HTTP/1.1 100 Continue\r\n\r\n");
        size_t nh = 2;
        s_printf(s, "HTTP/1.%d %d OK\r\nX-Chk: %" PRIx64 "\r\nServer: up\r\n", v10 ? 0 : 1, status,
                 t->nonce);
        if (f & 4) {
            s_printf(s, "Connection: close\r\n");
            nh++;
        }
        if (fr == FR_LENGTH) {
            s_printf(s, "Content-Length: %u\r\n", l);
            nh++;
        } else if (fr == FR_CHUNKED && !v10) {
            s_printf(s, "Transfer-Encoding: chunked\r\n");
            nh++;
        } else if (fr == FR_CHUNKED) {
            t->framing = fr = FR_CLOSE; /* 1.0 has no chunked: close-delimited */
            t->bad = false;
        }
        t->nheaders = nh;
        s_write(s, "\r\n", 2);
        unsigned csz = (k & 127) ? (k & 127) * 7 : 100000;
        if (fr == FR_CHUNKED) {
            for (unsigned off = 0; off < l; off += csz) {
                unsigned n = l - off < csz ? l - off : csz;
                if (t->bad && off + n >= l / 2 && off <= l / 2) {
                    s_printf(s, "%xg\r\n", n); /* a bad chunk size */
                } else {
                    s_printf(s, "%x%s\r\n", n, (k & 128) ? ";ext=1" : "");
                }
                s_write(s, body + off, n);
                s_write(s, "\r\n", 2);
            }
            s_printf(s, "0\r\n%s\r\n", (k & 128) ? "X-Trailer: 1\r\n" : "");
        } else {
            s_write(s, body, l);
        }
        if (f & 64)
            s_write(s, "garbage\r\n", 9);
        if (fr == FR_CLOSE)
            return; /* nothing can follow a close-delimited body */
    }
}

enum {
    P_ACCEPT,
    P_SELECT,
    P_REQ,
    P_CRECV,
    P_PUMP,
    P_CLOCK,
    P_BATCH,
    P_CONNECT,
    P_UGEN,
    P_URAW,
    P_URECV,
    P_UEOF,
    P_URESET,
    P_USEND,
    P_SENDALL,
    P_DRAIN,
    P_FORCE,
    P_SQEFAIL,
    P_ALLOCFAIL,
    P_SOCKFAIL,
    P_CANCEL,
    P_RESUME,
    P_WRITE,
    P_CEOF,
    P_CRESET,
    P_COUNT
};

static void pump_one(struct stream *s)
{
    recv_all(s);
}

static void reset_stream(struct stream *s)
{
    struct fk_io io;
    if (!s || !s->live)
        return;
    s->reset = true;
    if (fk_io(s->fd, &io) && io.recv)
        recv_step(s, RECV_MAX, false);
    else if (io.send)
        send_step(s, 0);
}

static void run(struct reader *rd)
{
    struct coil__worker *w = &worker;
    while (rd->n && work_used < WORK_BUDGET) {
        uint8_t op = u8(rd) % P_COUNT;
        struct stream *c = &clients[cur], *s;
        bool connecting = false;
        work_used++;
        if (trace)
            fprintf(stderr, "op %u at %" PRIu64 "\n", op, w->now_ms);
        switch (op) {
        case P_ACCEPT: {
            unsigned i = 0;
            while (i < NCLIENTS && clients[i].live)
                i++;
            if (i == NCLIENTS)
                break;
            int fd = fk_accept(w);
            if (fd < 0)
                break;
            if (fk_conn(w, fd)) {
                s_clear(&clients[i]);
                clients[i].live = true;
                clients[i].fd = fd;
                cur = i;
            }
            break;
        }
        case P_SELECT:
            cur = u8(rd) % NCLIENTS;
            break;
        case P_REQ:
            op_req(rd);
            break;
        case P_CRECV: {
            uint16_t sz = u16(rd);
            recv_step(c, (sz & 0x3fff) ? (sz & 0x3fff) : RECV_MAX, sz & 0x4000);
            break;
        }
        case P_PUMP:
            each_stream(pump_one);
            send_all();
            break;
        case P_CLOCK:
            fk_set_clock(w, w->now_ms + ms_of(u8(rd)));
            fk_loop_tail(w);
            break;
        case P_BATCH:
            fk_loop_tail(w);
            break;
        case P_CONNECT: {
            uint8_t u = u8(rd), k = u8(rd) % 4;
            s = upstream(u, &connecting);
            if (s && connecting)
                fk_connect(w, s->fd, k < 2 ? 0 : k == 2 ? -ECONNREFUSED : -ETIMEDOUT);
            break;
        }
        case P_UGEN:
            op_ugen(rd);
            break;
        case P_URAW: {
            uint8_t u = u8(rd);
            unsigned n = u8(rd);
            char b[256];
            unsigned i = 0;
            for (; i < n && rd->n; i++)
                b[i] = (char)u8(rd);
            s = upstream(u, NULL);
            if (s)
                s_write(s, b, i);
            break;
        }
        case P_URECV: {
            uint8_t u = u8(rd);
            uint16_t sz = u16(rd);
            s = upstream(u, NULL);
            if (s)
                recv_step(s, (sz & 0x3fff) ? (sz & 0x3fff) : RECV_MAX, sz & 0x4000);
            break;
        }
        case P_UEOF:
            s = upstream(u8(rd), NULL);
            if (s)
                s->fin = true;
            break;
        case P_URESET:
            reset_stream(upstream(u8(rd), NULL));
            break;
        case P_USEND: {
            uint8_t u = u8(rd);
            uint16_t k = u16(rd);
            s = upstream(u, NULL);
            if (s)
                send_step(s, k);
            break;
        }
        case P_SENDALL:
            send_all();
            break;
        case P_DRAIN:
            fk_drain(w);
            break;
        case P_FORCE:
            fk_force(w);
            break;
        case P_SQEFAIL:
            fk_sqe_failures = u8(rd) % 4 + 1;
            break;
        case P_ALLOCFAIL:
            coil__walloc_fail_in(&w->wa, u8(rd) % 64 + 1);
            break;
        case P_SOCKFAIL:
            fk_socket_failures = 1;
            break;
        case P_CANCEL: {
            uint8_t k = u8(rd);
            if (!nrecs)
                break;
            struct rec *r = &recs[k % nrecs];
            if (!r->started || r->cancelled || r->nterm || r->dropped)
                break;
            REQUIRE(coil_fetch_cancel(r->f) == 0);
            r->cancelled = true;
            answer(r, 502, NULL);
            break;
        }
        case P_RESUME: {
            uint8_t k = u8(rd);
            if (!nrecs)
                break;
            struct rec *r = &recs[k % nrecs];
            if (r->paused && !r->cancelled && !r->nterm && !r->dropped) {
                int rc = coil_fetch_resume(r->f);
                REQUIRE(rc == 0 || rc == -ENOMEM);
            }
            break;
        }
        case P_WRITE: {
            uint8_t k = u8(rd);
            uint16_t n = u16(rd);
            if (!nrecs)
                break;
            struct rec *r = &recs[k % nrecs];
            if (r->started)
                write_more(r, n ? n : UINT64_MAX);
            break;
        }
        case P_CEOF:
            c->fin = true;
            break;
        case P_CRESET:
            reset_stream(c);
            break;
        }
        fk_check(w);
    }
}

static void teardown(void)
{
    struct coil__worker *w = &worker;
    fk_sqe_failures = 0;
    fk_socket_failures = 0;
    w->wa.fail_in = 0;
    work_used = 0;
    send_all();
    fk_force(w);
    for (unsigned round = 0; round < 16; round++) {
        bool any = false;
        for (unsigned k = 0;; k++) {
            bool connecting;
            int fd = fk_outbound(k, &connecting);
            if (fd < 0)
                break;
            struct fk_io io;
            REQUIRE(fk_io(fd, &io));
            if (connecting)
                any |= fk_connect(w, fd, -ECANCELED);
            else if (io.recv)
                fk_recv_end(w, fd, 0), any = true;
            else if (io.send)
                fk_send(w, fd, -ECANCELED), any = true;
        }
        for (unsigned i = 0; i < NCLIENTS; i++) {
            struct stream *s = &clients[i];
            struct fk_io io;
            if (!s->live || !fk_io(s->fd, &io))
                continue;
            if (io.recv)
                fk_recv_end(w, s->fd, 0), any = true;
            else if (io.send)
                fk_send(w, s->fd, -ECANCELED), any = true;
        }
        fk_loop_tail(w);
        if (!any)
            break;
    }
    /* A consumer that paused resumes in the end (or its fetch would wait for it forever). */
    for (unsigned round = 0; round < 256; round++) { /* each resume may pause again */
        bool any = false;
        for (unsigned i = 0; i < nrecs; i++) {
            struct rec *r = &recs[i];
            if (r->paused && !r->cancelled && !r->nterm && !r->dropped) {
                resume_fire(r);
                any = true;
            }
        }
        if (!any)
            break;
        fk_loop_tail(w);
    }
    for (int i = 0; i < 2; i++) {
        fk_set_clock(w, w->now_ms + 3600u * 1000);
        fk_loop_tail(w);
    }
    fk_check(w);
    REQUIRE(w->open == 0 && w->conns.used == 0);
    REQUIRE(w->rqs.used == (w->rq_spare ? 1u : 0u));
    REQUIRE(w->utimers.used == 0);
    REQUIRE(w->wheel.count == 0);
    REQUIRE(w->nflush == 0);
    for (unsigned i = 0; i < nrecs; i++) {
        struct rec *r = &recs[i];
        if (!r->used)
            continue;
        REQUIRE(r->answered + r->aborted == 1); /* every deferred request ended exactly once */
        if (r->started) {                       /* no fetch is left: its handle is stale */
            int rc = coil_fetch_write(r->f, NULL, 0);
            if (rc != -ENOENT)
                fprintf(stderr, "fetch %u: still there (%d; flags %d%d%d%d nterm %u)\n", i, rc,
                        r->cancelled, r->dropped, r->answered, r->aborted, r->nterm);
            REQUIRE(rc == -ENOENT);
        }
        if (r->started && !r->cancelled && !r->dropped) {
            if (r->nterm != 1)
                fprintf(stderr, "fetch %u: %u terminal events\n", i, r->nterm);
            REQUIRE(r->nterm == 1);
        }
    }
    fk_worker_stop(w);
    for (unsigned i = 0; i < NCLIENTS; i++)
        s_clear(&clients[i]);
    for (unsigned i = 0; i < 16; i++)
        s_clear(&ustreams[i]);
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
    memset(recs, 0, sizeof(recs));
    nrecs = 0;
    ntags = 0;
    cur = 0;
    work_used = 0;
    fk_sqe_failures = 0;
    fk_socket_failures = 0;
    fk_worker_start(&worker, &app, 1000000);
    struct reader r = {data, size};
    run(&r);
    teardown();
    return 0;
}
