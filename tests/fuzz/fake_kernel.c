/* SPDX-License-Identifier: MIT */
/*
 * fake_kernel.c: the io_uring and socket model under the real tcp.c (see fake_kernel.h), and
 * the parts of loop.c and app.c the linked engine files need (events.c is linked as it is).
 *
 * Submission: coil__sqe hands out entries of a small static SQ; they are "submitted" (read and
 * turned into operations) before the kernel does anything else: before a completion, at the
 * tail of each loop iteration, when the SQ is full (as loop.c's coil__sqe submits), and before
 * a shutdown() or close() takes effect, so an entry prepared before the socket changed is
 * judged against the socket as it was.
 *
 * Completion: the harness decides what completes and with what (fk_accept, fk_recv_*, fk_send);
 * what a kernel does by itself goes on an internal CQ, reaped at the next loop tail: the result
 * of every ASYNC_CANCEL (OP_IGNORE user data, which no handler takes) and the -ECANCELED of an
 * accept or a connect it cancelled. A cancelled recv completes when the harness says so (data may
 * still race the cancel), as does a recv woken by shutdown(SHUT_RDWR) (res 0).
 *
 * Outbound connections (the upstream client's, fuzz_client): tcp.c's socket() reaches
 * __wrap_socket (with -Wl,--wrap=socket) and gets a fake descriptor; its IORING_OP_CONNECT stays
 * in flight until the harness completes it (fk_connect: success, or -errno) or it is cancelled;
 * after that the socket is like an accepted one (recv, send, EOF, reset).
 */
#include "fake_kernel.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <sys/socket.h>

#include "poison.h"

#define SQ_ENTRIES 16u
#define MAX_OPS 32u
#define MAX_SOCKS 16u
#define ACQ_MAX 64u
#define NBUFS 4u /* provided buffers */
#define TICK_MS 10u
#define SNAP 64u /* bytes of a send's buffer checked unchanged at its completion */

unsigned fk_sqe_failures;

/* ---- loop.c / app.c globals and small functions ----------------------------------------- */

_Thread_local struct coil__worker *coil__self;
struct coil_app *coil__app;

static struct coil__worker *fk_w; /* the one worker */
static uint64_t fake_ns;          /* the clock the harness moves */

uint64_t coil__clock_ns(void)
{
    return fake_ns;
}

/* coil__log's and coil__debug's lines (http2.c's): printed only with FUZZ_VERBOSE=1 */
static void fk_vlog(const char *prefix, const char *fmt, va_list ap)
{
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("FUZZ_VERBOSE") != NULL;
    if (!verbose)
        return;
    fputs(prefix, stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
}

void coil__log(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fk_vlog("coil: ", fmt, ap);
    va_end(ap);
}

void coil__debug(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fk_vlog("coil: debug: ", fmt, ap);
    va_end(ap);
}

void fk_init(void)
{
    coil__client_init(); /* app.c register_modules: its batch hook runs before tcp's flush */
    coil__tcp_init();
    coil__wait_init();
    REQUIRE(coil__loop_handles(OP_ACCEPT) && coil__loop_handles(OP_RECV) &&
            coil__loop_handles(OP_SEND));
    REQUIRE(coil__loop_hooked(EV_SERVE) && coil__loop_hooked(EV_BATCH) &&
            coil__loop_hooked(EV_DRAIN) && coil__loop_hooked(EV_FORCE));
}

/* ---- the kernel's state ----------------------------------------------------------------- */

enum { K_ACCEPT = 1, K_RECV, K_SEND, K_CONNECT };

struct kop {
    bool used;
    uint8_t kind;
    bool cancelled; /* a recv an ASYNC_CANCEL reached */
    int fd;
    uint64_t ud;
    const char *addr; /* send */
    uint32_t len;
    uint32_t snap_len;
    unsigned char snap[SNAP];
};

struct ksock {
    bool used;
    bool open;
    bool listener;
    bool shut_rd, shut_wr;
    bool eof;       /* a recv delivered res 0: nothing more will come */
    bool outbound;  /* made by socket() (an upstream connection), not accepted */
    bool connected; /* outbound: its connect completed with success */
    int fd;
};

static struct io_uring_sqe sq[SQ_ENTRIES];
static unsigned nsq;
static struct kop ops[MAX_OPS];
static struct ksock socks[MAX_SOCKS];
static int next_fd;
static struct io_uring_cqe acq[ACQ_MAX]; /* completions the kernel made on its own */
static unsigned nacq;

/* provided buffers: a FIFO of the ones the kernel owns, and which are lent */
static char *br_mem;
static size_t br_size;
static uint16_t bq[NBUFS];
static unsigned bq_head, bq_n;
static bool lent[NBUFS];

static struct ksock *sock_of(int fd)
{
    for (unsigned i = 0; i < MAX_SOCKS; i++)
        if (socks[i].used && socks[i].fd == fd)
            return &socks[i];
    return NULL;
}

static struct ksock *sock_new(void)
{
    for (unsigned i = 0; i < MAX_SOCKS; i++) {
        if (socks[i].used && socks[i].open)
            continue;
        memset(&socks[i], 0, sizeof(socks[i]));
        socks[i].used = true;
        socks[i].open = true;
        socks[i].fd = next_fd++;
        return &socks[i];
    }
    REQUIRE(!"too many open sockets");
    return NULL;
}

static struct kop *op_find(int fd, uint8_t kind)
{
    for (unsigned i = 0; i < MAX_OPS; i++)
        if (ops[i].used && ops[i].kind == kind && (kind == K_ACCEPT || ops[i].fd == fd))
            return &ops[i];
    return NULL;
}

static struct kop *op_new(uint8_t kind, int fd, uint64_t ud)
{
    for (unsigned i = 0; i < MAX_OPS; i++) {
        if (ops[i].used)
            continue;
        memset(&ops[i], 0, offsetof(struct kop, snap));
        ops[i].used = true;
        ops[i].kind = kind;
        ops[i].fd = fd;
        ops[i].ud = ud;
        return &ops[i];
    }
    REQUIRE(!"too many operations in flight");
    return NULL;
}

static void post(uint64_t ud, int32_t res, uint32_t flags)
{
    REQUIRE(nacq < ACQ_MAX);
    acq[nacq].user_data = ud;
    acq[nacq].res = res;
    acq[nacq].flags = flags;
    nacq++;
}

/* The connection an SQE's user data names: it must be live and own the socket. */
static void check_owner(uint64_t ud, int fd)
{
    struct coil_conn *c = coil__slab_at(&fk_w->conns, UD_IDX(ud), UD_GEN(ud));
    REQUIRE(c && c->fd == fd);
}

/* ---- submission ------------------------------------------------------------------------- */

static void submit_one(const struct io_uring_sqe *e)
{
    uint64_t ud = e->user_data;
    struct ksock *s;
    struct kop *o;
    switch (e->opcode) {
    case IORING_OP_ACCEPT:
        REQUIRE(UD_OP(ud) == OP_ACCEPT);
        s = sock_of(e->fd);
        REQUIRE(s && s->listener && s->open); /* not armed on a closed listener */
        REQUIRE(e->ioprio & IORING_ACCEPT_MULTISHOT);
        REQUIRE(!op_find(-1, K_ACCEPT)); /* one accept at a time */
        op_new(K_ACCEPT, e->fd, ud);
        break;
    case IORING_OP_RECV:
        REQUIRE(UD_OP(ud) == OP_RECV);
        REQUIRE((e->flags & IOSQE_BUFFER_SELECT) && e->buf_group == 0);
        REQUIRE((e->ioprio & IORING_RECV_MULTISHOT) && e->addr == 0 && e->len == 0);
        s = sock_of(e->fd);
        REQUIRE(s && s->open && !s->listener);
        REQUIRE(!s->shut_rd);                  /* armed after the abort shut the socket down */
        REQUIRE(!s->eof);                      /* armed again after the peer's EOF was delivered */
        REQUIRE(!s->outbound || s->connected); /* not before the connect succeeded */
        REQUIRE(!op_find(e->fd, K_RECV));
        check_owner(ud, e->fd);
        op_new(K_RECV, e->fd, ud);
        break;
    case IORING_OP_CONNECT:
        REQUIRE(UD_OP(ud) == OP_CONNECT);
        s = sock_of(e->fd);
        REQUIRE(s && s->open && s->outbound && !s->connected && !s->shut_rd);
        REQUIRE(e->addr && e->off > 0); /* the address and its length */
        REQUIRE(!op_find(e->fd, K_CONNECT));
        check_owner(ud, e->fd);
        op_new(K_CONNECT, e->fd, ud);
        break;
    case IORING_OP_SEND:
        REQUIRE(UD_OP(ud) == OP_SEND);
        REQUIRE(e->msg_flags & MSG_NOSIGNAL); /* or a reset peer raises SIGPIPE */
        REQUIRE(e->addr && e->len > 0);
        s = sock_of(e->fd);
        REQUIRE(s && s->open && !s->listener);
        REQUIRE(!s->shut_wr);             /* nothing is sent after the FIN (or the abort) */
        REQUIRE(!op_find(e->fd, K_SEND)); /* at most one send in flight per socket */
        REQUIRE(!s->outbound || s->connected);
        check_owner(ud, e->fd);
        o = op_new(K_SEND, e->fd, ud);
        o->addr = (const char *)(uintptr_t)e->addr;
        o->len = e->len;
        o->snap_len = e->len < SNAP ? e->len : SNAP;
        memcpy(o->snap, o->addr, o->snap_len);
        break;
    case IORING_OP_ASYNC_CANCEL: {
        REQUIRE(UD_OP(ud) == OP_IGNORE); /* its result matters to nobody */
        REQUIRE(e->cancel_flags == 0);
        int32_t res = -ENOENT;
        for (unsigned i = 0; i < MAX_OPS; i++) {
            o = &ops[i];
            if (!o->used || o->ud != e->addr)
                continue;
            if (o->kind == K_ACCEPT || o->kind == K_CONNECT) {
                post(o->ud, -ECANCELED, 0);
                o->used = false;
                res = 0;
            } else if (o->kind == K_RECV) {
                res = o->cancelled ? -EALREADY : 0;
                o->cancelled = true;
            } else {
                res = -EALREADY; /* a send under way */
            }
            break;
        }
        post(ud, res, 0);
        break;
    }
    default:
        fprintf(stderr, "fake kernel: SQE opcode %u\n", (unsigned)e->opcode);
        REQUIRE(!"an SQE the fake kernel does not model");
    }
}

static void submit(void)
{
    for (unsigned i = 0; i < nsq; i++)
        submit_one(&sq[i]);
    nsq = 0;
}

struct io_uring_sqe *coil__sqe(struct coil__worker *w)
{
    REQUIRE(w == fk_w);
    if (fk_sqe_failures) {
        fk_sqe_failures--;
        return NULL;
    }
    if (nsq == SQ_ENTRIES)
        submit(); /* loop.c: io_uring_submit, then try again */
    struct io_uring_sqe *e = &sq[nsq++];
    memset(e, 0xa5, sizeof(*e)); /* what the last user left: the prep helpers set every field */
    return e;
}

/* ---- completion ------------------------------------------------------------------------- */

static void dispatch(struct coil__worker *w, uint64_t ud, int32_t res, uint32_t flags)
{
    struct io_uring_cqe cqe;
    memset(&cqe, 0, sizeof(cqe));
    cqe.user_data = ud;
    cqe.res = res;
    cqe.flags = flags;
    coil__loop_dispatch(w, &cqe);
}

/* Ends o (no IORING_CQE_F_MORE) and delivers its last completion. */
static void finish(struct coil__worker *w, struct kop *o, int32_t res, uint32_t flags)
{
    uint64_t ud = o->ud;
    o->used = false;
    dispatch(w, ud, res, flags);
}

static void reap(struct coil__worker *w)
{
    submit();
    for (unsigned round = 0; nacq && round < 1000; round++) {
        struct io_uring_cqe c = acq[0];
        memmove(acq, acq + 1, (nacq - 1) * sizeof(acq[0]));
        nacq--;
        dispatch(w, c.user_data, c.res, c.flags);
        submit();
    }
    REQUIRE(nacq == 0);
}

bool fk_io(int fd, struct fk_io *io)
{
    submit();
    memset(io, 0, sizeof(*io));
    struct ksock *s = sock_of(fd);
    if (!s || s->listener)
        return false;
    io->open = s->open;
    io->shut_rd = s->shut_rd;
    io->shut_wr = s->shut_wr;
    struct kop *r = op_find(fd, K_RECV), *o = op_find(fd, K_SEND);
    io->recv = r != NULL;
    io->recv_cancelled = r && r->cancelled;
    io->send = o != NULL;
    io->send_len = o ? o->len : 0;
    return true;
}

int fk_accept(struct coil__worker *w)
{
    submit();
    struct kop *o = op_find(-1, K_ACCEPT);
    if (!o)
        return -1; /* not armed: the peer's connection waits, and gives up */
    int fd = sock_new()->fd;
    dispatch(w, o->ud, fd, IORING_CQE_F_MORE);
    return fd;
}

bool fk_accept_error(struct coil__worker *w, int err, bool more)
{
    submit();
    struct kop *o = op_find(-1, K_ACCEPT);
    if (!o)
        return false;
    if (more)
        dispatch(w, o->ud, -err, IORING_CQE_F_MORE);
    else
        finish(w, o, -err, 0);
    return true;
}

void fk_recv_data(struct coil__worker *w, int fd, const void *data, size_t n, bool last)
{
    submit();
    struct kop *o = op_find(fd, K_RECV);
    REQUIRE(o && n > 0 && n <= br_size);
    if (!bq_n) {
        finish(w, o, -ENOBUFS, 0); /* the buffer group is empty: the multishot recv ends */
        return;
    }
    unsigned bid = bq[bq_head];
    bq_head = (bq_head + 1) % NBUFS;
    bq_n--;
    REQUIRE(!lent[bid]);
    lent[bid] = true;
    char *b = br_mem + (size_t)bid * br_size;
    unpoison(b, n); /* the rest of the buffer stays poisoned: a read past the data faults */
    memcpy(b, data, n);
    uint32_t flags = IORING_CQE_F_BUFFER | ((uint32_t)bid << IORING_CQE_BUFFER_SHIFT);
    if (last)
        finish(w, o, (int32_t)n, flags); /* as when the CQ overflows */
    else
        dispatch(w, o->ud, (int32_t)n, flags | IORING_CQE_F_MORE);
}

void fk_recv_end(struct coil__worker *w, int fd, int res)
{
    submit();
    struct kop *o = op_find(fd, K_RECV);
    REQUIRE(o && res <= 0);
    if (res == 0)
        sock_of(fd)->eof = true;
    finish(w, o, res, 0);
}

void fk_send(struct coil__worker *w, int fd, long res)
{
    submit();
    struct kop *o = op_find(fd, K_SEND);
    REQUIRE(o && res <= (long)o->len);
    /* The buffer must stay as it was handed over until the send completes. */
    REQUIRE(memcmp(o->addr, o->snap, o->snap_len) == 0);
    if (res > 0)
        fuzz_peer_output(fd, o->addr, (size_t)res);
    finish(w, o, (int32_t)res, 0);
}

bool fk_connect(struct coil__worker *w, int fd, int res)
{
    submit();
    struct kop *o = op_find(fd, K_CONNECT);
    if (!o)
        return false;
    REQUIRE(res <= 0);
    if (res == 0)
        sock_of(fd)->connected = true;
    finish(w, o, res, 0);
    return true;
}

int fk_outbound(unsigned k, bool *connecting)
{
    submit();
    unsigned n = 0;
    for (unsigned i = 0; i < MAX_SOCKS; i++) {
        struct ksock *s = &socks[i];
        if (!s->used || !s->open || !s->outbound)
            continue;
        if (n++ == k) {
            if (connecting)
                *connecting = op_find(s->fd, K_CONNECT) != NULL;
            return s->fd;
        }
    }
    return -1;
}

bool fk_is_outbound(int fd)
{
    struct ksock *s = sock_of(fd);
    return s && s->outbound;
}

unsigned fk_socket_failures;

int __wrap_socket(int domain, int type, int protocol);
int __wrap_socket(int domain, int type, int protocol)
{
    (void)domain;
    (void)protocol;
    REQUIRE(fk_w && (type & SOCK_STREAM));
    if (fk_socket_failures) {
        fk_socket_failures--;
        errno = EMFILE;
        return -1;
    }
    submit();
    struct ksock *s = sock_new();
    s->outbound = true;
    return s->fd;
}

void coil__give_back(struct coil__worker *w, unsigned bid)
{
    REQUIRE(w == fk_w && bid < NBUFS && lent[bid]); /* never twice */
    lent[bid] = false;
    poison(br_mem + (size_t)bid * br_size, br_size);
    REQUIRE(bq_n < NBUFS);
    bq[(bq_head + bq_n) % NBUFS] = (uint16_t)bid;
    bq_n++;
}

/* ---- close and shutdown (the linker sends tcp.c's calls here) --------------------------- */

int __real_close(int fd);
int __real_shutdown(int fd, int how);
int __wrap_close(int fd);
int __wrap_shutdown(int fd, int how);

int __wrap_close(int fd)
{
    if (fd < FK_FD_BASE)
        return __real_close(fd);
    submit();
    struct ksock *s = sock_of(fd);
    REQUIRE(s && s->open); /* never closed twice (the number might be someone else's by then) */
    if (!s->listener) {
        /* A connection's slot goes with its socket: nothing of it may be in flight. */
        REQUIRE(!op_find(fd, K_RECV) && !op_find(fd, K_SEND) && !op_find(fd, K_CONNECT));
    }
    /* A listener's accept keeps its socket alive until it is cancelled, as in io_uring. */
    s->open = false;
    if (!s->listener)
        fuzz_peer_closed(fd);
    return 0;
}

int __wrap_shutdown(int fd, int how)
{
    if (fd < FK_FD_BASE)
        return __real_shutdown(fd, how);
    submit();
    struct ksock *s = sock_of(fd);
    REQUIRE(s && s->open && !s->listener);
    if (how == SHUT_WR) {
        REQUIRE(!s->shut_wr);
        s->shut_wr = true;
        fuzz_peer_fin(fd);
    } else {
        REQUIRE(how == SHUT_RDWR);
        s->shut_rd = true;
        s->shut_wr = true;
    }
    return 0;
}

/* ---- connections ------------------------------------------------------------------------ */

struct coil_conn *fk_conn(struct coil__worker *w, int fd)
{
    struct coil_slab *s = &w->conns;
    uint32_t n = s->npages * COIL_SLAB_PAGE;
    for (uint32_t i = 0; i < n; i++) {
        if (!(s->gen[i] & 1))
            continue;
        struct coil_conn *c = coil__slab_at(s, i, s->gen[i]);
        if (c && c->fd == fd)
            return c;
    }
    return NULL;
}

void fk_check(struct coil__worker *w)
{
    submit();
    struct coil_slab *sl = &w->conns;
    uint32_t n = sl->npages * COIL_SLAB_PAGE, nconns = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (!(sl->gen[i] & 1))
            continue;
        struct coil_conn *c = coil__slab_at(sl, i, sl->gen[i]);
        if (!c)
            continue;
        nconns++;
        REQUIRE(!(c->flags & CONN_BUSY));
        struct ksock *s = sock_of(c->fd);
        REQUIRE(s && s->open && !s->listener);
        struct kop *r = op_find(c->fd, K_RECV), *o = op_find(c->fd, K_SEND);
        struct kop *k = op_find(c->fd, K_CONNECT);
        REQUIRE(!k || (UD_IDX(k->ud) == c->idx && UD_GEN(k->ud) == c->gen));
        REQUIRE(!(c->flags & CONN_OUTBOUND) == !s->outbound);
        /* a cancelled connect's completion may wait on the kernel's own CQ for the loop's tail */
        bool kq = false;
        for (unsigned j = 0; j < nacq; j++)
            kq |= acq[j].user_data == UD(OP_CONNECT, c->idx, c->gen);
        REQUIRE(!k || !kq);
        REQUIRE(!(c->flags & CONN_CONNECTING) == !(k || kq));
        REQUIRE(!k || (!r && !o)); /* nothing is read or sent before the connect ends */
        REQUIRE(!o || (UD_IDX(o->ud) == c->idx && UD_GEN(o->ud) == c->gen));
        REQUIRE(!(c->flags & CONN_RECV_ARMED) == !r);
        REQUIRE(!(c->flags & CONN_SENDING) == !o);
        REQUIRE(c->inflight == (r != NULL) + (o != NULL) + (k || kq)); /* holds released */
        REQUIRE(!(c->flags & CONN_CANCEL_RECV) || (r && r->cancelled));
        if (c->flags & CONN_CLOSING)
            REQUIRE(s->shut_rd && s->shut_wr && !c->in && !c->pend && !c->rq);
        if (c->flags & CONN_LINGER)
            REQUIRE(s->shut_wr);
    }
    REQUIRE(nconns == w->open);
    unsigned nsocks = 0;
    for (unsigned i = 0; i < MAX_SOCKS; i++)
        if (socks[i].used && socks[i].open && !socks[i].listener)
            nsocks++;
    REQUIRE(nsocks == nconns); /* every accepted socket still open has its connection */
    for (unsigned i = 0; i < NBUFS; i++)
        REQUIRE(!lent[i]); /* given back once the completion was handled */
}

/* ---- the loop --------------------------------------------------------------------------- */

void fk_set_clock(struct coil__worker *w, uint64_t now_ms)
{
    if (now_ms < w->now_ms)
        now_ms = w->now_ms;
    w->now_ms = now_ms;
    w->now_ns = now_ms * 1000000u;
    fake_ns = w->now_ns;
}

void fk_loop_tail(struct coil__worker *w)
{
    reap(w);
    coil__timers_fire(w);
    if (w->phase == PHASE_DRAIN && w->now_ms >= w->drain_deadline) {
        w->forced = true; /* loop.c check_phase: every iteration past the deadline */
        coil__loop_run(w, EV_FORCE);
    }
    coil__loop_run(w, EV_BATCH);
}

void fk_drain(struct coil__worker *w)
{
    if (w->phase != PHASE_RUN)
        return;
    w->phase = PHASE_DRAIN;
    w->drain_deadline = w->now_ms + w->app->cfg.drain_timeout_ms;
    coil__loop_run(w, EV_DRAIN);
}

void fk_force(struct coil__worker *w)
{
    coil__loop_run(w, EV_FORCE);
}

/* ---- the worker ------------------------------------------------------------------------- */

void fk_worker_start(struct coil__worker *w, struct coil_app *app, uint64_t now_ms)
{
    memset(w, 0, sizeof(*w));
    fk_w = w;
    w->app = app;
    w->cpu = -1;
    w->event_fd = -1;
    REQUIRE(coil__walloc_init(&w->wa) == 0);
    w->heap_ready = true;
    fk_set_clock(w, now_ms);
    coil__wheel_init(&w->wheel, w->now_ms, TICK_MS);
    static const char date[] = "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n";
    memcpy(w->date_line, date, sizeof(date) - 1);
    w->date_len = sizeof(date) - 1;
    /* the kernel: an empty SQ, the listener, the provided buffers all home */
    nsq = 0;
    nacq = 0;
    memset(ops, 0, sizeof(ops));
    memset(socks, 0, sizeof(socks));
    next_fd = FK_FD_BASE;
    struct ksock *l = sock_new();
    l->listener = true;
    for (unsigned k = 0; k < NLISTENERS; k++)
        w->lst[k].fd = -1; /* TLS, the second TLS port, h2c: none */
    w->lst[LST_HTTP].fd = l->fd;
    if (!br_mem) {
        br_size = app->cfg.recv_buf_size;
        br_mem = malloc(NBUFS * br_size);
        REQUIRE(br_mem);
    }
    REQUIRE(br_size == app->cfg.recv_buf_size);
    w->br_mem = br_mem;
    poison(br_mem, NBUFS * br_size);
    for (unsigned i = 0; i < NBUFS; i++) {
        bq[i] = (uint16_t)i;
        lent[i] = false;
    }
    bq_head = 0;
    bq_n = NBUFS;
    /* coil__modules_start */
    w->modules_ready = true;
    REQUIRE(coil__tcp_start(w) == 0);
    REQUIRE(coil__request_start(w) == 0);
    REQUIRE(coil__wait_start(w) == 0);
    REQUIRE(coil__client_start(w) == 0); /* nothing without upstreams */
    coil__self = w;
    coil__loop_run(w, EV_SERVE); /* loop.c run(): the listener's accept */
}

void fk_worker_stop(struct coil__worker *w)
{
    fk_sqe_failures = 0;
    w->wa.fail_in = 0;
    fk_drain(w); /* the accept is cancelled, the listener closed */
    reap(w);
    REQUIRE(nsq == 0 && nacq == 0);
    for (unsigned i = 0; i < MAX_OPS; i++) {
        /* Only an accept whose cancel found no SQE may be left: io_uring_queue_exit ends it. */
        REQUIRE(!ops[i].used || ops[i].kind == K_ACCEPT);
        ops[i].used = false;
    }
    for (unsigned i = 0; i < MAX_SOCKS; i++)
        REQUIRE(!socks[i].used || !socks[i].open); /* every socket was closed */
    REQUIRE(bq_n == NBUFS);                        /* every provided buffer came back */
    unpoison(br_mem, NBUFS * br_size);
    /* coil__modules_stop without the channels (no jobs here), then loop.c worker_stop */
    coil__client_stop(w);
    coil__wait_stop(w);
    coil__request_stop(w);
    coil__tcp_stop(w);
    coil__pheap_fini(&w->heap, &w->wa);
    if (w->wa.nalloc != w->wa.nfree)
        fprintf(stderr, "walloc: %llu allocations, %llu frees\n", (unsigned long long)w->wa.nalloc,
                (unsigned long long)w->wa.nfree);
    REQUIRE(w->wa.nalloc == w->wa.nfree);
    coil__walloc_fini(&w->wa);
    coil__self = NULL;
    fk_w = NULL;
}
