/* SPDX-License-Identifier: MIT */
/*
 * tcp.c: the TCP transport: the worker's listeners (multishot accept; plain HTTP and TLS) and its
 * connections' bytes in and out. It owns the connection slab, each connection's socket,
 * receive arming, the send queue, the I/O timeouts and the way a connection ends; it knows
 * nothing of HTTP. Bytes that arrive go to the connection's protocol (c->proto->on_data, the
 * HTTP/1.1 codec today); the protocol queues output with coil__conn_reserve and the transport
 * sends it at the end of the batch, keeping at most one send in flight (io_uring does not order
 * two sends on one socket). A connection accepted on the TLS listener (CONN_TLS) has tls.c
 * between its socket and its protocol: input is decrypted before the protocol sees it, output
 * sealed (or handed to the kernel's TLS) when it is sent.
 *
 * A connection ends in one of two ways. Graceful: the protocol marks it CONN_CLOSE_AFTER; once
 * the queued output is sent, the write side is shut and input is discarded until the peer's
 * FIN or the linger timeout, so the peer reads the response before any reset. Abort:
 * CONN_CLOSING cancels what is in flight and tells the protocol (on_abort) at once; the slot is
 * freed when the last completion arrives, so no completion ever meets a reused slot
 * (completions carry (index, generation) and stale ones are dropped). Every function runs on the
 * connection's own worker.
 */
#include <assert.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "internal.h"

#define ACCEPT_PAUSE_MS 100u
#define MAX_SEND (1u << 30) /* one send's length is 32-bit in the SQE: send big output in parts */

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

void coil__buf_free(struct coil__worker *w, void *p, uint8_t pooled)
{
    if (!p)
        return;
    if (pooled)
        coil__bufpool_put(&w->bufs, p);
    else
        coil__wfree(&w->wa, p);
}

void *coil__buf_grow(struct coil__worker *w, void *old, size_t hdr, size_t used, size_t need,
                     uint8_t *pooled, size_t *cap)
{
    size_t total = w->bufs.size;
    while (total < hdr + need) {
        if (total > SIZE_MAX / 2)
            return NULL;
        total *= 2;
    }
    uint8_t np;
    void *nb = buf_alloc(w, total, &np);
    if (!nb)
        return NULL;
    if (old) {
        memcpy(nb, old, hdr + used);
        coil__buf_free(w, old, *pooled);
    }
    *pooled = np;
    *cap = total - hdr;
    return nb;
}

int coil__bytes_append(struct coil__worker *w, char **buf, size_t *len, size_t *cap,
                       const void *data, size_t n)
{
    if (!n)
        return 0;
    if (*len + n > *cap) {
        size_t ncap = *cap ? *cap : w->app->cfg.recv_buf_size;
        while (ncap < *len + n)
            ncap *= 2;
        char *nb = coil__wrealloc(&w->wa, *buf, ncap);
        if (!nb)
            return -ENOMEM;
        *buf = nb;
        *cap = ncap;
    }
    memcpy(*buf + *len, data, n);
    *len += n;
    return 0;
}

char *coil__obuf_reserve(struct coil__worker *w, struct coil__obuf **bp, size_t n)
{
    struct coil__obuf *b = *bp;
    if (b && b->cap - b->len >= n)
        return b->data + b->len;
    size_t used = b ? b->len : 0;
    if (n > SIZE_MAX / 2 - used)
        return NULL;
    uint8_t pooled = b ? b->pooled : 0;
    size_t cap;
    struct coil__obuf *nb =
        coil__buf_grow(w, b, offsetof(struct coil__obuf, data), used, used + n, &pooled, &cap);
    if (!nb)
        return NULL;
    if (!b) {
        nb->len = 0;
        nb->sent = 0;
        nb->rtype = 0;
        nb->proto = false;
    }
    nb->pooled = pooled;
    nb->cap = cap;
    *bp = nb;
    return nb->data + nb->len;
}

char *coil__conn_reserve(struct coil__worker *w, struct coil_conn *c, size_t n)
{
    return coil__obuf_reserve(w, &c->pend, n);
}

size_t coil__conn_queued(const struct coil_conn *c)
{
    size_t n = c->pend ? c->pend->len - c->pend->sent : 0; /* TLS seals pend in parts */
    if (c->out)
        n += c->out->len - c->out->sent;
    return n;
}

struct coil__peer {
    uint32_t gen; /* the connection's generation when it was asked; 0: never */
    uint8_t len;
    char text[INET6_ADDRSTRLEN];
};

size_t coil__conn_peer(struct coil__worker *w, struct coil_conn *c, const char **out)
{
    if (c->idx >= w->npeers) {
        uint32_t n = w->npeers ? w->npeers : 64;
        while (n <= c->idx)
            n *= 2;
        struct coil__peer *np = coil__wrealloc(&w->wa, w->peers, n * sizeof(*np));
        if (!np)
            return 0;
        memset(np + w->npeers, 0, (n - w->npeers) * sizeof(*np));
        w->peers = np;
        w->npeers = n;
    }
    struct coil__peer *p = &w->peers[c->idx];
    if (p->gen != c->gen) {
        struct sockaddr_storage ss;
        socklen_t len = sizeof(ss);
        if (getpeername(c->fd, (struct sockaddr *)&ss, &len) < 0)
            return 0;
        const void *a = ss.ss_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)&ss)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)&ss)->sin_addr;
        if (!inet_ntop(ss.ss_family, a, p->text, sizeof(p->text)))
            return 0;
        p->len = (uint8_t)strlen(p->text);
        p->gen = c->gen;
    }
    *out = p->text;
    return p->len;
}

void coil__conn_partial_free(struct coil__worker *w, struct coil_conn *c)
{
    if (c->in) {
        coil__buf_free(w, c->in, c->in->pooled);
        c->in = NULL;
    }
}

static void release_buffers(struct coil__worker *w, struct coil_conn *c)
{
    coil__conn_partial_free(w, c);
    if (c->pend) {
        coil__buf_free(w, c->pend, c->pend->pooled);
        c->pend = NULL;
    }
    if (c->out && !(c->flags & CONN_SENDING)) {
        coil__buf_free(w, c->out, c->out->pooled);
        c->out = NULL;
    }
}

/* ---- submissions ------------------------------------------------------------------------ */

static void arm_accept(struct coil__worker *w, struct coil__listener *l)
{
    struct io_uring_sqe *sqe = coil__sqe(w);
    if (!sqe) {
        /* Try again shortly rather than never accepting again. */
        l->paused = true;
        coil__timer_at(w, &l->timer, w->now_ms + ACCEPT_PAUSE_MS);
        return;
    }
    io_uring_prep_multishot_accept(sqe, l->fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, UD(OP_ACCEPT, l - w->lst, 0));
    l->armed = true;
}

static void cancel_accept(struct coil__worker *w, struct coil__listener *l)
{
    struct io_uring_sqe *sqe = coil__sqe(w);
    if (!sqe)
        return; /* it stays armed until the drain times out: what it accepts meanwhile is
                 * served (on_accept) */
    io_uring_prep_cancel64(sqe, UD(OP_ACCEPT, l - w->lst, 0), 0);
    io_uring_sqe_set_data64(sqe, UD(OP_IGNORE, 0, 0));
}

static int arm_recv(struct coil__worker *w, struct coil_conn *c)
{
    assert(!(c->flags & CONN_RECV_ARMED));
    struct io_uring_sqe *sqe = coil__sqe(w);
    if (!sqe)
        return -EBUSY;
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    io_uring_sqe_set_data64(sqe, UD(OP_RECV, c->idx, c->gen));
    c->flags |= CONN_RECV_ARMED;
    c->inflight++;
    return 0;
}

static void cancel_recv(struct coil__worker *w, struct coil_conn *c)
{
    if (!(c->flags & CONN_RECV_ARMED) || (c->flags & CONN_CANCEL_RECV))
        return;
    struct io_uring_sqe *sqe = coil__sqe(w);
    if (!sqe)
        return; /* retried by the next pause or abort; shutdown() ends it on abort */
    io_uring_prep_cancel64(sqe, UD(OP_RECV, c->idx, c->gen), 0);
    io_uring_sqe_set_data64(sqe, UD(OP_IGNORE, 0, 0));
    c->flags |= CONN_CANCEL_RECV;
}

static int submit_send(struct coil__worker *w, struct coil_conn *c)
{
    struct coil__obuf *b = c->out;
    assert(b && b->sent < b->len && !(c->flags & CONN_SENDING));
    struct io_uring_sqe *sqe = coil__sqe(w);
    if (!sqe)
        return -EBUSY;
    size_t n = b->len - b->sent;
    if (n > MAX_SEND)
        n = MAX_SEND;
    if (b->rtype)
        coil__tls_prep_record(w, c, sqe, b->data + b->sent, n, b->rtype);
    else
        io_uring_prep_send(sqe, c->fd, b->data + b->sent, n, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, UD(OP_SEND, c->idx, c->gen));
    c->flags |= CONN_SENDING;
    c->inflight++;
    c->write_deadline = w->now_ms + w->app->cfg.write_timeout_ms;
    coil__conn_set_timer(w, c);
    return 0;
}

/* ---- timers ----------------------------------------------------------------------------- */

void coil__conn_set_timer(struct coil__worker *w, struct coil_conn *c)
{
    uint64_t d = c->write_deadline;
    if (c->read_deadline && !(c->flags & CONN_PAUSED) && (!d || c->read_deadline < d))
        d = c->read_deadline;
    if (d)
        coil__timer_at(w, &c->timer, d);
    else
        coil__timer_cancel(&w->wheel, &c->timer);
}

static void on_conn_timer(struct coil__timer *t, void *ctx)
{
    struct coil__worker *w = ctx;
    struct coil_conn *c = (struct coil_conn *)((char *)t - offsetof(struct coil_conn, timer));
    uint64_t now = w->now_ms;
    if (c->flags & CONN_CLOSING)
        return;
    if (c->flags & CONN_LINGER) {
        coil__conn_abort(w, c);
        return;
    }
    if (c->write_deadline && now >= c->write_deadline) {
        STAT_INC(w, t_write);
        coil__conn_abort(w, c); /* the peer stopped reading */
        return;
    }
    if (c->read_deadline && now >= c->read_deadline && !(c->flags & CONN_PAUSED)) {
        if ((c->flags & CONN_TLS) && coil__tls_handshaking(w, c)) {
            STAT_INC(w, t_tls);
            coil__conn_abort(w, c);
            return;
        }
        coil__conn_hold(c);
        c->proto->on_read_timeout(w, c);
        coil__conn_release(w, c);
        return;
    }
    coil__conn_set_timer(w, c);
}

/* ---- closing ---------------------------------------------------------------------------- */

static void conn_free(struct coil__worker *w, struct coil_conn *c)
{
    assert(c->inflight == 0 && !c->rq);
    coil__timer_cancel(&w->wheel, &c->timer);
    release_buffers(w, c);
    if (c->flags & CONN_TLS)
        coil__tls_close(w, c);
    close(c->fd);
    w->open--;
    if (c->flags & CONN_OUTBOUND)
        w->outbound--;
    atomic_store_explicit(&w->stats.open, w->open - w->outbound, memory_order_relaxed);
    coil__slab_put(&w->conns, c->idx);
}

void coil__conn_abort(struct coil__worker *w, struct coil_conn *c)
{
    if (c->flags & CONN_CLOSING)
        return;
    c->flags |= CONN_CLOSING;
    c->flags &= (uint16_t)~CONN_PAUSED;
    coil__timer_cancel(&w->wheel, &c->timer);
    /* The protocol drops what hangs on the connection (a deferred request's on_abort runs
     * here); it must not queue output any more. */
    c->proto->on_abort(w, c);
    release_buffers(w, c);
    if (c->inflight == 0) {
        conn_free(w, c);
        return;
    }
    /* Wakes the multishot recv (it completes with 0) and fails a blocked send; the cancel
     * covers a socket that shutdown no longer reaches. */
    shutdown(c->fd, SHUT_RDWR);
    cancel_recv(w, c);
    if (c->flags & CONN_CONNECTING) {
        struct io_uring_sqe *sqe = coil__sqe(w);
        if (sqe) { /* else the connect ends by itself (refused, or its timeout in the kernel) */
            io_uring_prep_cancel64(sqe, UD(OP_CONNECT, c->idx, c->gen), 0);
            io_uring_sqe_set_data64(sqe, UD(OP_IGNORE, 0, 0));
        }
    }
}

/* A completion for a closing connection arrived. */
static void closing_done(struct coil__worker *w, struct coil_conn *c)
{
    if (c->inflight == 0)
        conn_free(w, c);
}

void coil__conn_hold(struct coil_conn *c)
{
    c->inflight++;
}

bool coil__conn_release(struct coil__worker *w, struct coil_conn *c)
{
    assert(c->inflight > 0);
    c->inflight--;
    if ((c->flags & CONN_CLOSING) && c->inflight == 0) {
        conn_free(w, c);
        return false;
    }
    return !(c->flags & CONN_CLOSING);
}

/* The last output is sent: FIN, then discard input until the peer closes or linger ends. */
static void begin_linger(struct coil__worker *w, struct coil_conn *c)
{
    if (c->flags & CONN_LINGER)
        return; /* flushed again after the last output: the FIN is out already */
    coil__conn_partial_free(w, c);
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
    if (!(c->flags & CONN_RECV_ARMED) && arm_recv(w, c) < 0)
        coil__conn_abort(w, c);
}

void coil__conn_close_after(struct coil__worker *w, struct coil_conn *c)
{
    c->flags |= CONN_CLOSE_AFTER;
    c->read_deadline = 0;
    coil__conn_queue_flush(w, c);
}

void coil__conn_close_idle(struct coil__worker *w, struct coil_conn *c)
{
    if ((c->flags & CONN_TLS) && !coil__tls_handshaking(w, c))
        coil__conn_close_after(w, c);
    else
        coil__conn_abort(w, c);
}

/* ---- reading ---------------------------------------------------------------------------- */

void coil__conn_pause(struct coil__worker *w, struct coil_conn *c)
{
    c->flags |= CONN_PAUSED;
    if (c->flags & CONN_RECV_ARMED)
        cancel_recv(w, c);
    coil__conn_set_timer(w, c);
}

void coil__conn_unpause(struct coil__worker *w, struct coil_conn *c)
{
    c->flags &= (uint16_t)~CONN_PAUSED;
    if (c->flags & (CONN_CLOSING | CONN_CLOSE_AFTER | CONN_EOF))
        return;
    if (!(c->flags & CONN_RECV_ARMED) && arm_recv(w, c) < 0) {
        coil__conn_abort(w, c);
        return;
    }
    coil__conn_set_timer(w, c);
}

static void on_input(struct coil__worker *w, struct coil_conn *c, int res, const char *data)
{
    if (res > 0 && data) {
        if (!(c->flags & (CONN_LINGER | CONN_CLOSE_AFTER))) {
            c->flags |= CONN_BUSY;
            if (c->flags & CONN_TLS)
                coil__tls_input(w, c, data, (size_t)res);
            else
                c->proto->on_data(w, c, data, (size_t)res);
            c->flags &= (uint16_t)~CONN_BUSY;
        }
    } else if (res == 0) {
        bool tls_eof = (c->flags & (CONN_TLS | CONN_EOF)) == CONN_TLS;
        c->flags |= CONN_EOF;
        if (c->flags & CONN_LINGER)
            coil__conn_abort(w, c);
        else if (tls_eof)
            coil__tls_eof(w, c);
        else if (!(c->flags & CONN_TLS))
            c->proto->on_eof(w, c);
    } else if (res != -ENOBUFS && res != -ECANCELED) {
        coil__conn_abort(w, c); /* ECONNRESET and friends */
    }
}

static void on_recv(struct coil__worker *w, const struct io_uring_cqe *cqe)
{
    uint32_t idx = UD_IDX(cqe->user_data), gen = UD_GEN(cqe->user_data);
    bool more = cqe->flags & IORING_CQE_F_MORE;
    const char *data = NULL;
    unsigned bid = 0;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        data = w->br_mem + (size_t)bid * w->app->cfg.recv_buf_size;
    }
    struct coil_conn *c = coil__slab_at(&w->conns, idx, gen);
    if (!c) {
        if (data)
            coil__give_back(w, bid);
        return;
    }
    if (!more) {
        c->flags &= (uint16_t) ~(CONN_RECV_ARMED | CONN_CANCEL_RECV);
        c->inflight--;
    }
    int res = cqe->res;
    if (c->flags & CONN_CLOSING) {
        if (data)
            coil__give_back(w, bid);
        if (!more)
            closing_done(w, c);
        return;
    }
    /* Held while the protocol runs, so nothing it does can free the slot under us. */
    coil__conn_hold(c);
    on_input(w, c, res, data);
    if (data)
        coil__give_back(w, bid);
    if (coil__conn_release(w, c) && !(c->flags & (CONN_RECV_ARMED | CONN_PAUSED | CONN_EOF)) &&
        arm_recv(w, c) < 0)
        coil__conn_abort(w, c);
}

/* ---- sending ---------------------------------------------------------------------------- */

void coil__conn_queue_flush(struct coil__worker *w, struct coil_conn *c)
{
    if (c->flags & CONN_FLUSH)
        return;
    if (w->nflush == w->flush_cap) {
        uint32_t cap = w->flush_cap ? w->flush_cap * 2 : 256;
        uint64_t *n = coil__wrealloc(&w->wa, w->flush, cap * sizeof(*n));
        if (!n) {
            coil__conn_abort(w, c);
            return;
        }
        w->flush = n;
        w->flush_cap = cap;
    }
    c->flags |= CONN_FLUSH;
    w->flush[w->nflush++] = ((uint64_t)c->idx << 32) | c->gen;
}

void coil__conn_schedule(struct coil__worker *w, struct coil_conn *c)
{
    c->flags |= CONN_RESUME;
    coil__conn_queue_flush(w, c);
}

/* Sends what is queued; with nothing left, a connection closing after its output begins the
 * lingering close. Over TLS the queued plaintext is sealed into records first (and, at the
 * close, a close_notify follows the last of them). */
static void flush(struct coil__worker *w, struct coil_conn *c)
{
    if (c->flags & (CONN_SENDING | CONN_CLOSING))
        return;
    if (!c->out && (c->flags & CONN_TLS)) {
        if (coil__tls_take(w, c, &c->out) < 0) {
            coil__conn_abort(w, c);
            return;
        }
    } else if (!c->out && c->pend && c->pend->len) {
        c->out = c->pend;
        c->out->proto = true;
        c->pend = NULL;
    }
    if (c->out) {
        if (submit_send(w, c) < 0)
            coil__conn_abort(w, c);
    } else if (c->flags & CONN_CLOSE_AFTER) {
        begin_linger(w, c);
    }
}

/* Write before sleep: every connection that produced output in this batch sends it now, after
 * the ones that asked to be resumed have run (which may add output, or more connections). */
static void flush_all(struct coil__worker *w)
{
    for (uint32_t i = 0; i < w->nflush; i++) {
        uint64_t h = w->flush[i];
        struct coil_conn *c = coil__slab_at(&w->conns, (uint32_t)(h >> 32), (uint32_t)h);
        if (!c)
            continue;
        c->flags &= (uint16_t)~CONN_FLUSH;
        if (c->flags & CONN_RESUME) {
            c->flags &= (uint16_t)~CONN_RESUME;
            coil__conn_hold(c);
            if (!(c->flags & CONN_CLOSING))
                c->proto->on_resume(w, c);
            if (!coil__conn_release(w, c) || (c->flags & CONN_FLUSH))
                continue; /* gone, or queued again behind us */
        }
        flush(w, c);
    }
    w->nflush = 0;
}

static void on_send(struct coil__worker *w, const struct io_uring_cqe *cqe)
{
    struct coil_conn *c = coil__slab_at(&w->conns, UD_IDX(cqe->user_data), UD_GEN(cqe->user_data));
    assert(c); /* a send in flight keeps its slot */
    if (!c)
        return;
    c->inflight--;
    c->flags &= (uint16_t)~CONN_SENDING;
    if (c->flags & CONN_CLOSING) {
        if (c->out) {
            coil__buf_free(w, c->out, c->out->pooled);
            c->out = NULL;
        }
        closing_done(w, c);
        return;
    }
    if (cqe->res <= 0) {
        coil__conn_abort(w, c); /* EPIPE, ECONNRESET, ... */
        return;
    }
    struct coil__obuf *b = c->out;
    b->sent += (size_t)cqe->res;
    if (b->sent < b->len) {
        if (submit_send(w, c) < 0)
            coil__conn_abort(w, c);
        return;
    }
    bool proto = b->proto;
    coil__buf_free(w, b, b->pooled);
    c->out = NULL;
    c->write_deadline = 0;
    /* Over TLS, records may wait that the protocol did not queue (tickets, alerts): flush
     * finds out. */
    if ((c->pend && c->pend->len) || (c->flags & CONN_TLS)) {
        coil__conn_hold(c); /* a failed submit aborts it: keep the slot until we are done */
        flush(w, c);
        if (!coil__conn_release(w, c) || (c->flags & CONN_LINGER))
            return;
    } else if (c->flags & CONN_CLOSE_AFTER) {
        begin_linger(w, c);
        return;
    }
    coil__conn_set_timer(w, c);
    if (!proto)
        return; /* only TLS's own records (a handshake, tickets): the protocol sent nothing */
    coil__conn_hold(c);
    c->proto->on_sent(w, c);
    coil__conn_release(w, c);
}

/* ---- the listener ----------------------------------------------------------------------- */

static struct coil_conn *accept_one(struct coil__worker *w, int fd, unsigned kind)
{
    bool tls = kind == LST_TLS || kind == LST_TLS2;
    uint32_t idx, gen;
    struct coil_conn *c = coil__slab_get(&w->conns, &idx, &gen);
    if (!c) {
        close(fd); /* --max-conns reached, or out of memory */
        STAT_INC(w, refused);
        return NULL;
    }
    c->fd = fd;
    c->idx = idx;
    c->gen = gen;
    c->proto = kind == LST_H2C ? &coil__http2 : &coil__http1;
    if (kind == LST_HTTP && coil__h2_on(w->app))
        c->flags |= CONN_FRESH;
    c->timer.cb = on_conn_timer;
    w->open++;
    atomic_store_explicit(&w->stats.open, w->open - w->outbound, memory_order_relaxed);
    STAT_INC(w, connections);
    /* A connection that never sends a byte is closed silently at the header timeout (over
     * TLS: one that has not finished its handshake by then). */
    c->read_deadline = w->now_ms + w->app->cfg.header_timeout_ms;
    if ((tls && coil__tls_accept(w, c) < 0) || arm_recv(w, c) < 0) {
        coil__conn_abort(w, c);
        return NULL;
    }
    coil__conn_set_timer(w, c);
    return c;
}

/* ---- outbound connections --------------------------------------------------------------- */

struct coil_conn *coil__tcp_connect(struct coil__worker *w, const struct sockaddr *sa,
                                    socklen_t len, const struct coil__proto *proto,
                                    struct coil__uconn *uc, int *err)
{
    /* Blocking, like accepted sockets: io_uring polls and never blocks the worker on it. */
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *err = -errno;
        return NULL;
    }
    int one = 1;
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    uint32_t idx, gen;
    struct coil_conn *c = coil__slab_get(&w->conns, &idx, &gen);
    if (!c) {
        close(fd);
        *err = -ENOBUFS;
        return NULL;
    }
    struct io_uring_sqe *sqe = coil__sqe(w);
    if (!sqe) {
        close(fd);
        coil__slab_put(&w->conns, idx);
        *err = -EBUSY;
        return NULL;
    }
    c->fd = fd;
    c->idx = idx;
    c->gen = gen;
    c->proto = proto;
    c->uc = uc;
    c->timer.cb = on_conn_timer;
    c->flags = CONN_OUTBOUND | CONN_CONNECTING;
    w->open++;
    w->outbound++;
    io_uring_prep_connect(sqe, fd, sa, len);
    io_uring_sqe_set_data64(sqe, UD(OP_CONNECT, idx, gen));
    c->inflight++;
    return c;
}

static void on_connect(struct coil__worker *w, const struct io_uring_cqe *cqe)
{
    struct coil_conn *c = coil__slab_at(&w->conns, UD_IDX(cqe->user_data), UD_GEN(cqe->user_data));
    assert(c); /* the connect in flight keeps its slot */
    if (!c)
        return;
    c->inflight--;
    c->flags &= (uint16_t)~CONN_CONNECTING;
    if (c->flags & CONN_CLOSING) {
        closing_done(w, c);
        return;
    }
    int res = cqe->res;
    if (res == 0 && arm_recv(w, c) < 0)
        res = -EBUSY;
    coil__conn_hold(c);
    c->proto->on_connect(w, c, res > 0 ? 0 : res);
    if (res < 0)
        coil__conn_abort(w, c);
    coil__conn_release(w, c);
}

static void drain_conn(struct coil__worker *w, struct coil_conn *c);

static void on_accept(struct coil__worker *w, const struct io_uring_cqe *cqe)
{
    uint32_t k = UD_IDX(cqe->user_data);
    assert(k < NLISTENERS);
    struct coil__listener *l = &w->lst[k];
    if (!(cqe->flags & IORING_CQE_F_MORE))
        l->armed = false;
    if (cqe->res < 0) {
        int e = -cqe->res;
        if (e == ECANCELED || w->phase != PHASE_RUN)
            return;
        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
            if (!l->warned)
                coil__log("worker %u: accept: %s; pausing accepts for %u ms (raise `ulimit -n` "
                          "or lower --max-conns)",
                          w->id, strerror(e), ACCEPT_PAUSE_MS);
            l->paused = true;
            l->warned = true; /* once per episode: cleared by the next accept */
            if (l->armed)
                cancel_accept(w, l);
            coil__timer_at(w, &l->timer, w->now_ms + ACCEPT_PAUSE_MS);
            return;
        }
        if (e != EINTR && e != ECONNABORTED && e != EAGAIN)
            coil__log("worker %u: accept: %s", w->id, strerror(e));
    } else if (w->phase == PHASE_DRAIN) {
        /* Accepted as the listener closed: its client is connected, so it is served (with
         * Connection: close) rather than reset. */
        struct coil_conn *c = accept_one(w, cqe->res, k);
        if (c)
            drain_conn(w, c);
    } else if (w->phase != PHASE_RUN) {
        close(cqe->res);
    } else {
        l->warned = false;
        accept_one(w, cqe->res, k);
    }
    if (!l->armed && !l->paused && w->phase == PHASE_RUN)
        arm_accept(w, l);
}

static void on_accept_timer(struct coil__timer *t, void *ctx)
{
    struct coil__worker *w = ctx;
    struct coil__listener *l =
        (struct coil__listener *)((char *)t - offsetof(struct coil__listener, timer));
    l->paused = false;
    if (w->phase == PHASE_RUN && !l->armed)
        arm_accept(w, l);
}

/* ---- worker events ---------------------------------------------------------------------- */

static void for_each_conn(struct coil__worker *w,
                          void (*fn)(struct coil__worker *, struct coil_conn *))
{
    struct coil_slab *s = &w->conns;
    uint32_t n = s->npages * COIL_SLAB_PAGE;
    for (uint32_t i = 0; i < n; i++) {
        if (!(s->gen[i] & 1))
            continue;
        struct coil_conn *c = coil__slab_at(s, i, s->gen[i]);
        if (c)
            fn(w, c);
    }
}

static void serve(struct coil__worker *w)
{
    for (struct coil__listener *l = w->lst; l < w->lst + NLISTENERS; l++) {
        l->timer.cb = on_accept_timer;
        if (l->fd >= 0)
            arm_accept(w, l);
    }
}

static void drain_conn(struct coil__worker *w, struct coil_conn *c)
{
    if (c->flags & (CONN_CLOSING | CONN_LINGER | CONN_CLOSE_AFTER))
        return;
    coil__conn_hold(c);
    c->proto->on_drain(w, c);
    coil__conn_release(w, c);
}

static void drain(struct coil__worker *w)
{
    for (struct coil__listener *l = w->lst; l < w->lst + NLISTENERS; l++) {
        coil__timer_cancel(&w->wheel, &l->timer);
        if (l->armed)
            cancel_accept(w, l);
        if (l->fd >= 0) {
            close(l->fd); /* the accept request keeps the socket until it is cancelled */
            l->fd = -1;
        }
    }
    for_each_conn(w, drain_conn);
}

static void force(struct coil__worker *w)
{
    for_each_conn(w, coil__conn_abort);
}

void coil__tcp_init(void)
{
    coil__loop_handle(OP_ACCEPT, on_accept);
    coil__loop_handle(OP_RECV, on_recv);
    coil__loop_handle(OP_SEND, on_send);
    coil__loop_handle(OP_CONNECT, on_connect);
    coil__loop_on(EV_SERVE, serve);
    coil__loop_on(EV_BATCH, flush_all);
    coil__loop_on(EV_DRAIN, drain);
    coil__loop_on(EV_FORCE, force);
}

int coil__tcp_start(struct coil__worker *w)
{
    const struct coil__config *cfg = &w->app->cfg;
    int err = coil__slab_init(&w->conns, &w->wa, sizeof(struct coil_conn), cfg->max_conns);
    if (err < 0)
        return err;
    coil__bufpool_init(&w->bufs, &w->wa, cfg->io_buf_size, 1024);
    return 0;
}

void coil__tcp_stop(struct coil__worker *w)
{
    if (w->conns.wa)
        coil__slab_fini(&w->conns);
    if (w->bufs.wa)
        coil__bufpool_fini(&w->bufs);
    coil__wfree(&w->wa, w->flush);
    w->flush = NULL;
    coil__wfree(&w->wa, w->peers);
    w->peers = NULL;
    w->npeers = 0;
}
