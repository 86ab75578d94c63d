/* SPDX-License-Identifier: MIT */
/*
 * client.c: one coil-load worker: its io_uring ring, its connections and its share of the
 * schedule.
 *
 * Open loop: request j of this worker is due at t0 + j / rate and goes to connection
 * j % nconns, whether or not earlier responses have come back; its latency runs from that
 * intended time, so a server stall shows in the percentiles instead of hiding in a slower send
 * rate (coordinated omission). A connection keeps at most -pipeline requests in flight; due
 * requests beyond that wait in its queue, still timed from when they were due. Closed loop
 * (-rate 0): each connection keeps -pipeline requests in flight and sends a new one as each
 * response arrives.
 *
 * Each connection has a queue of entries {intended time, target}: [head, sent) are in flight
 * (answered in order), [sent, tail) are due but not yet written. One send at a time per
 * connection carries every writable entry. A connection that fails (reset, malformed response,
 * Connection: close) is shut, and once nothing is in flight for it, reopened; entries not yet
 * answered after a Connection: close are resent with their original intended times.
 * user_data packs {op:8, connection:24, generation:32} so completions for a closed socket are
 * recognised after it was reopened.
 */
#include <errno.h>
#include <liburing.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "load.h"
#include "resp.h"

#define QCAP 4096u /* due requests one connection can hold; more count as overload */
#define RECV_BUFS 512u
#define RECV_BUF_SIZE 16384u
#define RETRY_NS 100000000ull /* reconnect pause after a failed connect */
#define SPIN_NS 200000ull     /* a send due sooner than this is waited for by polling */

enum { OP_CONNECT = 1, OP_RECV, OP_SEND, OP_IGNORE };
enum { C_DOWN, C_CONNECTING, C_OPEN, C_CLOSING };

#define UD(op, i, g) (((uint64_t)(op) << 56) | ((uint64_t)(i) << 32) | (uint64_t)(g))

struct ent {
    uint64_t t;      /* intended send time, ns */
    uint32_t target; /* index into the targets */
};

struct lconn {
    int fd;
    uint32_t gen;
    uint8_t state;
    uint8_t inflight; /* io_uring operations still to complete */
    bool recv_armed;
    bool sending;
    uint64_t retry_at;
    uint32_t head, sent, tail; /* queue indices, see the file comment */
    struct ent *q;
    char *sbuf;
    size_t scap, slen, soff;
    struct load_resp rp;
};

struct ctx {
    struct load_worker *w;
    const struct load_config *cfg;
    struct io_uring ring;
    struct io_uring_buf_ring *br;
    char *bufs;
    unsigned br_added;
    struct lconn *c;
    uint64_t now;
    uint64_t next_j;     /* open loop: next request to schedule */
    uint64_t end;        /* closed loop: stop sending after this */
    uint64_t last_sched; /* intended time of the last request scheduled */
    uint64_t last_resp;  /* time of the last response */
    uint32_t next_target;
};

uint64_t load_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static struct io_uring_sqe *sqe_get(struct ctx *x)
{
    struct io_uring_sqe *s;
    while (!(s = io_uring_get_sqe(&x->ring)))
        io_uring_submit(&x->ring);
    return s;
}

static void count(_Atomic uint64_t *a, uint64_t n)
{
    atomic_store_explicit(a, atomic_load_explicit(a, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

static void fail(struct ctx *x, enum load_err kind, uint64_t n)
{
    x->w->result.errors[kind] += n;
    count(&x->w->failed, n);
}

/* ---- connections ------------------------------------------------------------------------ */

static void conn_open(struct ctx *x, uint32_t i)
{
    struct lconn *c = &x->c[i];
    c->fd = socket(x->cfg->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) {
        c->state = C_DOWN;
        c->retry_at = x->now + RETRY_NS;
        return;
    }
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    c->gen++;
    c->state = C_CONNECTING;
    load_resp_start(&c->rp, false);
    struct io_uring_sqe *s = sqe_get(x);
    io_uring_prep_connect(s, c->fd, (const struct sockaddr *)&x->cfg->addr, x->cfg->addr_len);
    io_uring_sqe_set_data64(s, UD(OP_CONNECT, i, c->gen));
    c->inflight++;
}

static void arm_recv(struct ctx *x, uint32_t i)
{
    struct lconn *c = &x->c[i];
    struct io_uring_sqe *s = sqe_get(x);
    io_uring_prep_recv_multishot(s, c->fd, NULL, 0, 0);
    s->flags |= IOSQE_BUFFER_SELECT;
    s->buf_group = 0;
    io_uring_sqe_set_data64(s, UD(OP_RECV, i, c->gen));
    c->recv_armed = true;
    c->inflight++;
}

/* Shuts the socket; it is closed and reopened once nothing is in flight for it. */
static void conn_close(struct ctx *x, uint32_t i)
{
    struct lconn *c = &x->c[i];
    if (c->state == C_CLOSING || c->state == C_DOWN)
        return;
    c->state = C_CLOSING;
    shutdown(c->fd, SHUT_RDWR);
    if (c->recv_armed) {
        struct io_uring_sqe *s = sqe_get(x);
        io_uring_prep_cancel64(s, UD(OP_RECV, i, c->gen), 0);
        io_uring_sqe_set_data64(s, UD(OP_IGNORE, 0, 0));
    }
}

static void maybe_closed(struct ctx *x, uint32_t i)
{
    struct lconn *c = &x->c[i];
    if (c->state != C_CLOSING || c->inflight)
        return;
    close(c->fd);
    c->fd = -1;
    c->state = C_DOWN;
    c->retry_at = x->now;
}

/* The requests in flight are lost (counted as `kind`); the unsent ones stay queued. */
static void lose_in_flight(struct ctx *x, struct lconn *c, enum load_err kind)
{
    uint32_t n = c->sent - c->head;
    if (n)
        fail(x, kind, n);
    c->head = c->sent;
}

/* ---- scheduling and sending ------------------------------------------------------------- */

static uint32_t pick_target(struct ctx *x)
{
    uint32_t t = x->next_target++;
    if (x->next_target == x->cfg->targets.n)
        x->next_target = 0;
    return t;
}

static void enqueue(struct ctx *x, uint32_t i, uint64_t t)
{
    struct lconn *c = &x->c[i];
    x->w->result.requests++;
    if (c->tail - c->head >= QCAP) {
        fail(x, LOAD_ERR_OVERLOAD, 1);
        return;
    }
    c->q[c->tail % QCAP] = (struct ent){t, pick_target(x)};
    c->tail++;
}

static void try_send(struct ctx *x, uint32_t i)
{
    struct lconn *c = &x->c[i];
    if (c->state != C_OPEN || c->sending || c->sent == c->tail)
        return;
    uint32_t room = x->cfg->pipeline - (c->sent - c->head);
    if ((int32_t)room <= 0)
        return;
    uint32_t n = c->tail - c->sent;
    if (n > room)
        n = room;
    size_t len = 0;
    for (uint32_t k = 0; k < n; k++)
        len += x->cfg->targets.v[c->q[(c->sent + k) % QCAP].target].req_len;
    if (len > c->scap) {
        char *b = realloc(c->sbuf, len);
        if (!b)
            return;
        c->sbuf = b;
        c->scap = len;
    }
    c->slen = 0;
    for (uint32_t k = 0; k < n; k++) {
        const struct load_target *t = &x->cfg->targets.v[c->q[(c->sent + k) % QCAP].target];
        memcpy(c->sbuf + c->slen, t->req, t->req_len);
        c->slen += t->req_len;
    }
    c->soff = 0;
    c->sent += n;
    count(&x->w->sent, n);
    struct io_uring_sqe *s = sqe_get(x);
    io_uring_prep_send(s, c->fd, c->sbuf, c->slen, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(s, UD(OP_SEND, i, c->gen));
    c->sending = true;
    c->inflight++;
}

/* Open loop: queue every request whose time has come. */
static void schedule(struct ctx *x)
{
    struct load_worker *w = x->w;
    while (x->next_j < w->nrequests) {
        uint64_t t = w->t0 + (uint64_t)((double)x->next_j * 1e9 / w->rate);
        if (t > x->now)
            break;
        enqueue(x, (uint32_t)(x->next_j % w->nconns), t);
        x->last_sched = t;
        x->next_j++;
    }
}

static uint64_t next_due(struct ctx *x)
{
    struct load_worker *w = x->w;
    if (x->cfg->rate <= 0 || x->next_j >= w->nrequests)
        return UINT64_MAX;
    return w->t0 + (uint64_t)((double)x->next_j * 1e9 / w->rate);
}

/* ---- completions ------------------------------------------------------------------------ */

static void on_response(struct ctx *x, uint32_t i)
{
    struct lconn *c = &x->c[i];
    struct load_result *r = &x->w->result;
    uint64_t t = c->q[c->head % QCAP].t;
    int st = c->rp.status;
    load_hist_record(&r->hist, x->now > t ? x->now - t : 0);
    r->responses++;
    if (st >= 0 && st < 600)
        r->status[st]++;
    if (st >= 200 && st < 400)
        r->success++;
    c->head++;
    x->last_resp = x->now;
    count(&x->w->received, 1);
    if (x->cfg->rate <= 0 && x->now < x->end)
        enqueue(x, i, x->now); /* closed loop: one out, one in */
    bool close_now = c->rp.close;
    load_resp_start(&c->rp, false);
    if (close_now) {
        c->sent = c->head; /* unanswered ones are resent on the new connection */
        conn_close(x, i);
    }
}

static void on_data(struct ctx *x, uint32_t i, const char *p, size_t n)
{
    struct lconn *c = &x->c[i];
    x->w->result.bytes_in += n;
    size_t off = 0;
    while (off < n && c->state == C_OPEN) {
        if (c->head == c->sent) {
            fail(x, LOAD_ERR_PARSE, 1); /* bytes nobody asked for */
            x->w->result.requests++;
            conn_close(x, i);
            return;
        }
        if (load_resp_idle(&c->rp))
            c->rp.head = x->cfg->targets.v[c->q[c->head % QCAP].target].head;
        size_t used = 0;
        int rc = load_resp_feed(&c->rp, p + off, n - off, &used);
        off += used;
        if (rc == 0)
            return;
        if (rc < 0) {
            fail(x, LOAD_ERR_PARSE, 1);
            c->head++;
            c->sent = c->head;
            conn_close(x, i);
            return;
        }
        on_response(x, i);
    }
}

static void give_back(struct ctx *x, unsigned bid)
{
    io_uring_buf_ring_add(x->br, x->bufs + (size_t)bid * RECV_BUF_SIZE, RECV_BUF_SIZE,
                          (unsigned short)bid, io_uring_buf_ring_mask(RECV_BUFS),
                          (int)x->br_added++);
}

static void on_recv(struct ctx *x, uint32_t i, const struct io_uring_cqe *cqe)
{
    struct lconn *c = &x->c[i];
    if (!(cqe->flags & IORING_CQE_F_MORE)) {
        c->recv_armed = false;
        c->inflight--;
    }
    const char *data = NULL;
    unsigned bid = 0;
    if (cqe->flags & IORING_CQE_F_BUFFER) {
        bid = cqe->flags >> IORING_CQE_BUFFER_SHIFT;
        data = x->bufs + (size_t)bid * RECV_BUF_SIZE;
    }
    if (c->state == C_OPEN) {
        if (cqe->res > 0 && data) {
            on_data(x, i, data, (size_t)cqe->res);
        } else if (cqe->res == 0) {
            if (load_resp_eof(&c->rp))
                on_response(x, i);
            lose_in_flight(x, c, LOAD_ERR_RESET);
            conn_close(x, i);
        } else if (cqe->res != -ENOBUFS) {
            lose_in_flight(x, c, LOAD_ERR_RESET);
            conn_close(x, i);
        }
    }
    if (data)
        give_back(x, bid);
    if (c->state == C_OPEN && !c->recv_armed)
        arm_recv(x, i);
    maybe_closed(x, i);
}

static void on_send(struct ctx *x, uint32_t i, int res)
{
    struct lconn *c = &x->c[i];
    c->sending = false;
    c->inflight--;
    if (c->state == C_OPEN) {
        if (res < 0) {
            lose_in_flight(x, c, LOAD_ERR_RESET);
            conn_close(x, i);
        } else {
            x->w->result.bytes_out += (uint64_t)res;
            c->soff += (size_t)res;
            if (c->soff < c->slen) { /* short send: the rest */
                struct io_uring_sqe *s = sqe_get(x);
                io_uring_prep_send(s, c->fd, c->sbuf + c->soff, c->slen - c->soff, MSG_NOSIGNAL);
                io_uring_sqe_set_data64(s, UD(OP_SEND, i, c->gen));
                c->sending = true;
                c->inflight++;
            }
        }
    }
    maybe_closed(x, i);
}

static void on_connect(struct ctx *x, uint32_t i, int res)
{
    struct lconn *c = &x->c[i];
    c->inflight--;
    if (res < 0) {
        /* Every request waiting for this connection fails; closed loop counts one attempt. */
        uint32_t n = c->tail - c->head;
        if (x->cfg->rate <= 0 && n == 0) {
            x->w->result.requests++;
            n = 1;
        }
        fail(x, LOAD_ERR_CONNECT, n);
        c->head = c->sent = c->tail;
        close(c->fd);
        c->fd = -1;
        c->state = C_DOWN;
        c->retry_at = x->now + RETRY_NS;
        return;
    }
    c->state = C_OPEN;
    c->sent = c->head; /* anything unanswered from an earlier socket goes again */
    if (x->cfg->rate <= 0 && c->head == c->tail && x->w->t0 && x->now < x->end)
        for (uint32_t k = 0; k < x->cfg->pipeline; k++)
            enqueue(x, i, x->now); /* closed loop: refill a reopened connection */
    arm_recv(x, i);
}

static void on_cqe(struct ctx *x, const struct io_uring_cqe *cqe)
{
    uint64_t ud = cqe->user_data;
    unsigned op = (unsigned)(ud >> 56);
    uint32_t i = (uint32_t)((ud >> 32) & 0xffffff), gen = (uint32_t)ud;
    if (op == OP_IGNORE || op == 0)
        return;
    if (i >= x->w->nconns || x->c[i].gen != gen) {
        if (op == OP_RECV && (cqe->flags & IORING_CQE_F_BUFFER))
            give_back(x, cqe->flags >> IORING_CQE_BUFFER_SHIFT);
        return;
    }
    switch (op) {
    case OP_CONNECT:
        on_connect(x, i, cqe->res);
        break;
    case OP_RECV:
        on_recv(x, i, cqe);
        break;
    case OP_SEND:
        on_send(x, i, cqe->res);
        break;
    }
}

/* ---- the loop --------------------------------------------------------------------------- */

static void check_timeouts(struct ctx *x, uint32_t i)
{
    struct lconn *c = &x->c[i];
    uint64_t limit = x->cfg->timeout_ns;
    if (c->head != c->sent && x->now > c->q[c->head % QCAP].t &&
        x->now - c->q[c->head % QCAP].t > limit) {
        lose_in_flight(x, c, LOAD_ERR_TIMEOUT);
        conn_close(x, i);
    }
    /* Due requests that could not even be sent in time. */
    while (c->sent != c->tail && c->sent == c->head && x->now > c->q[c->sent % QCAP].t &&
           x->now - c->q[c->sent % QCAP].t > limit) {
        fail(x, LOAD_ERR_TIMEOUT, 1);
        c->head++;
        c->sent++;
    }
}

static bool busy(struct ctx *x)
{
    for (uint32_t i = 0; i < x->w->nconns; i++)
        if (x->c[i].head != x->c[i].tail || x->c[i].state == C_CLOSING)
            return true;
    return false;
}

static void service(struct ctx *x)
{
    for (uint32_t i = 0; i < x->w->nconns; i++) {
        struct lconn *c = &x->c[i];
        if (c->state == C_DOWN && c->retry_at <= x->now &&
            (c->head != c->tail || (x->cfg->rate <= 0 && x->now < x->end)))
            conn_open(x, i);
        check_timeouts(x, i);
        try_send(x, i);
    }
}

static void wait_cqes(struct ctx *x, uint64_t until)
{
    uint64_t d = until > x->now ? until - x->now : 0;
    if (d > 10000000)
        d = 10000000;
    if (d < SPIN_NS)
        d = 0; /* due soon: poll instead of sleeping, so waking up late is not our error */
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = (long long)d};
    struct io_uring_cqe *cqe;
    if (d)
        io_uring_submit_and_wait_timeout(&x->ring, &cqe, 1, &ts, NULL);
    else
        io_uring_submit_and_get_events(&x->ring); /* DEFER_TASKRUN: completions need this */
    x->now = load_now_ns();
    unsigned head, n = 0;
    io_uring_for_each_cqe(&x->ring, head, cqe)
    {
        on_cqe(x, cqe);
        n++;
    }
    io_uring_cq_advance(&x->ring, n);
    if (x->br_added) {
        io_uring_buf_ring_advance(x->br, (int)x->br_added);
        x->br_added = 0;
    }
}

static int setup(struct ctx *x)
{
    struct io_uring_params p;
    memset(&p, 0, sizeof(p));
    p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_CQSIZE;
    p.cq_entries = 16384;
    int err = io_uring_queue_init_params(2048, &x->ring, &p);
    if (err == -EINVAL) {
        memset(&p, 0, sizeof(p));
        err = io_uring_queue_init_params(2048, &x->ring, &p);
    }
    if (err < 0)
        return err;
    size_t rb = RECV_BUFS * sizeof(struct io_uring_buf);
    x->br = mmap(NULL, rb, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    x->bufs = mmap(NULL, (size_t)RECV_BUFS * RECV_BUF_SIZE, PROT_READ | PROT_WRITE,
                   MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (x->br == MAP_FAILED || x->bufs == MAP_FAILED)
        return -ENOMEM;
    struct io_uring_buf_reg reg = {.ring_addr = (uintptr_t)x->br, .ring_entries = RECV_BUFS};
    if ((err = io_uring_register_buf_ring(&x->ring, &reg, 0)) < 0)
        return err;
    io_uring_buf_ring_init(x->br);
    for (unsigned b = 0; b < RECV_BUFS; b++)
        give_back(x, b);
    io_uring_buf_ring_advance(x->br, (int)x->br_added);
    x->br_added = 0;
    x->c = calloc(x->w->nconns, sizeof(*x->c));
    if (!x->c)
        return -ENOMEM;
    for (uint32_t i = 0; i < x->w->nconns; i++) {
        x->c[i].q = malloc(QCAP * sizeof(struct ent));
        x->c[i].fd = -1;
        if (!x->c[i].q)
            return -ENOMEM;
    }
    return 0;
}

static void teardown(struct ctx *x)
{
    for (uint32_t i = 0; x->c && i < x->w->nconns; i++) {
        if (x->c[i].fd >= 0)
            close(x->c[i].fd);
        free(x->c[i].q);
        free(x->c[i].sbuf);
    }
    free(x->c);
    io_uring_queue_exit(&x->ring);
    if (x->br && x->br != MAP_FAILED)
        munmap(x->br, RECV_BUFS * sizeof(struct io_uring_buf));
    if (x->bufs && x->bufs != MAP_FAILED)
        munmap(x->bufs, (size_t)RECV_BUFS * RECV_BUF_SIZE);
}

/* Connects everything before the clock starts, so set-up does not count as latency. */
static void connect_all(struct ctx *x)
{
    x->now = load_now_ns();
    for (uint32_t i = 0; i < x->w->nconns; i++)
        conn_open(x, i);
    uint64_t give_up = x->now + 5000000000ull;
    for (;;) {
        bool pending = false;
        for (uint32_t i = 0; i < x->w->nconns; i++)
            pending |= x->c[i].state == C_CONNECTING;
        if (!pending || x->now > give_up)
            break;
        wait_cqes(x, x->now + 10000000);
    }
    /* Failures before the start are not requests; the clock has not started. */
    memset(x->w->result.errors, 0, sizeof(x->w->result.errors));
    atomic_store(&x->w->failed, 0);
}

static void attack(struct ctx *x)
{
    struct load_worker *w = x->w;
    bool open = x->cfg->rate > 0;
    while ((x->now = load_now_ns()) < w->t0)
        ; /* every worker starts on the same tick (a couple of ms from now) */
    x->end = w->t0 + x->cfg->duration_ns;
    x->last_sched = w->t0;
    if (!open)
        for (uint32_t i = 0; i < w->nconns; i++)
            for (uint32_t k = 0; k < x->cfg->pipeline; k++)
                enqueue(x, i, w->t0);
    for (;;) {
        if (open)
            schedule(x);
        service(x);
        bool sending_done = open ? x->next_j >= w->nrequests : x->now >= x->end;
        if (sending_done && !busy(x))
            break;
        wait_cqes(x, open ? next_due(x) : x->now + 1000000);
    }
    w->result.duration_ns = (open ? x->last_sched : x->end) - w->t0;
    uint64_t attack_end = w->t0 + w->result.duration_ns;
    w->result.wait_ns = x->last_resp > attack_end ? x->last_resp - attack_end : 0;
}

static void pin(struct load_worker *w)
{
    if (w->cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->cpu, &set);
    pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
}

void *load_worker_main(void *arg)
{
    struct load_worker *w = arg;
    struct ctx x;
    memset(&x, 0, sizeof(x));
    x.w = w;
    x.cfg = w->cfg;
    pin(w);
    load_result_init(&w->result);
    w->err = setup(&x);
    if (w->err == 0)
        connect_all(&x);
    atomic_store(&w->ready, 1);
    uint64_t t0;
    while (!(t0 = atomic_load(w->start_at))) {
        struct timespec ts = {0, 200000};
        nanosleep(&ts, NULL);
    }
    if (w->err == 0 && t0 != UINT64_MAX) {
        w->t0 = t0;
        attack(&x);
    }
    teardown(&x);
    return NULL;
}
