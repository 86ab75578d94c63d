/* SPDX-License-Identifier: MIT */
/*
 * loop.c: a worker's thread: its io_uring ring, provided-buffer ring, listener and the loop
 * that dispatches every completion through one switch.
 *
 * One iteration: submit what the last batch queued (sends of the flush list, wake-ups of other
 * workers) and wait for completions; handle every completion in the CQ; give the receive
 * buffers back to the kernel in one ring update; fire due timers; run inbound background jobs.
 * Responses therefore leave just before the worker sleeps, and all responses produced for one
 * connection in a batch leave in one send.
 *
 * user_data packs {op:8, index:24, generation:32}; a completion whose (index, generation) no
 * longer names a live connection is stale and only gives back its buffer. Multishot accept and
 * recv are re-armed whenever a completion arrives without IORING_CQE_F_MORE (-ENOBUFS included:
 * the buffer ring ran dry, which is not end-of-file).
 */
#include <assert.h>
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define RING_ENTRIES 2048u
#define ACCEPT_PAUSE_MS 100u
#define TICK_MS 10u

_Thread_local struct coil__worker *coil__self;

static uint64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static struct io_uring_sqe *sqe_get(struct coil__worker *w)
{
    struct io_uring_sqe *sqe;
    while (!(sqe = io_uring_get_sqe(&w->ring)))
        io_uring_submit(&w->ring); /* SQ full: push it to the kernel and retry */
    return sqe;
}

/* ---- submissions ------------------------------------------------------------------------ */

static void arm_accept(struct coil__worker *w)
{
    struct io_uring_sqe *sqe = sqe_get(w);
    io_uring_prep_multishot_accept(sqe, w->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    io_uring_sqe_set_data64(sqe, UD(OP_ACCEPT, 0, 0));
    w->accept_armed = true;
}

static void cancel_accept(struct coil__worker *w)
{
    struct io_uring_sqe *sqe = sqe_get(w);
    io_uring_prep_cancel64(sqe, UD(OP_ACCEPT, 0, 0), 0);
    io_uring_sqe_set_data64(sqe, UD(OP_IGNORE, 0, 0));
}

void coil__arm_recv(struct coil__worker *w, struct coil_conn *c)
{
    assert(!(c->flags & CONN_RECV_ARMED));
    struct io_uring_sqe *sqe = sqe_get(w);
    io_uring_prep_recv_multishot(sqe, c->fd, NULL, 0, 0);
    sqe->flags |= IOSQE_BUFFER_SELECT;
    sqe->buf_group = 0;
    io_uring_sqe_set_data64(sqe, UD(OP_RECV, c->idx, c->gen));
    c->flags |= CONN_RECV_ARMED;
    c->inflight++;
}

void coil__cancel_recv(struct coil__worker *w, struct coil_conn *c)
{
    if (!(c->flags & CONN_RECV_ARMED) || (c->flags & CONN_CANCEL_RECV))
        return;
    struct io_uring_sqe *sqe = sqe_get(w);
    io_uring_prep_cancel64(sqe, UD(OP_RECV, c->idx, c->gen), 0);
    io_uring_sqe_set_data64(sqe, UD(OP_IGNORE, 0, 0));
    c->flags |= CONN_CANCEL_RECV;
}

void coil__submit_send(struct coil__worker *w, struct coil_conn *c)
{
    struct coil__obuf *b = c->out;
    assert(b && b->sent < b->len && !(c->flags & CONN_SENDING));
    struct io_uring_sqe *sqe = sqe_get(w);
    io_uring_prep_send(sqe, c->fd, b->data + b->sent, b->len - b->sent, MSG_NOSIGNAL);
    io_uring_sqe_set_data64(sqe, UD(OP_SEND, c->idx, c->gen));
    c->flags |= CONN_SENDING;
    c->inflight++;
}

void coil__queue_flush(struct coil__worker *w, struct coil_conn *c)
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

/* Write before sleep: every connection that produced output in this batch sends it now. */
static void flush_all(struct coil__worker *w)
{
    for (uint32_t i = 0; i < w->nflush; i++) {
        struct coil_conn *c =
            coil__slab_at(&w->conns, (uint32_t)(w->flush[i] >> 32), (uint32_t)w->flush[i]);
        if (!c)
            continue;
        c->flags &= (uint16_t)~CONN_FLUSH;
        coil__conn_flush(w, c);
    }
    w->nflush = 0;
}

/* ---- completions ------------------------------------------------------------------------ */

static void give_back(struct coil__worker *w, unsigned bid)
{
    io_uring_buf_ring_add(w->br, w->br_mem + (size_t)bid * w->app->cfg.recv_buf_size,
                          w->app->cfg.recv_buf_size, (unsigned short)bid, w->br_mask,
                          (int)w->br_returned++);
}

static void on_accept(struct coil__worker *w, const struct io_uring_cqe *cqe)
{
    if (!(cqe->flags & IORING_CQE_F_MORE))
        w->accept_armed = false;
    if (cqe->res < 0) {
        int e = -cqe->res;
        if (e == ECANCELED || w->phase != PHASE_RUN)
            return;
        if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
            if (!w->accept_warned)
                coil__log("worker %u: accept: %s; pausing accepts for %u ms (raise `ulimit -n` "
                          "or lower --max-conns)",
                          w->id, strerror(e), ACCEPT_PAUSE_MS);
            w->accept_paused = true;
            w->accept_warned = true; /* once per episode: cleared by the next accept */
            if (w->accept_armed)
                cancel_accept(w);
            coil__timer_arm(&w->wheel, &w->accept_timer, w->now_ms + ACCEPT_PAUSE_MS);
            return;
        }
        if (e != EINTR && e != ECONNABORTED && e != EAGAIN)
            coil__log("worker %u: accept: %s", w->id, strerror(e));
    } else if (w->phase != PHASE_RUN) {
        close(cqe->res);
    } else {
        uint32_t idx, gen;
        w->accept_warned = false;
        struct coil_conn *c = coil__slab_get(&w->conns, &idx, &gen);
        if (!c) {
            close(cqe->res); /* --max-conns reached */
        } else {
            c->fd = cqe->res;
            c->idx = idx;
            c->gen = gen;
            w->open++;
            atomic_store_explicit(&w->stats.open, w->open, memory_order_relaxed);
            atomic_store_explicit(
                &w->stats.connections,
                atomic_load_explicit(&w->stats.connections, memory_order_relaxed) + 1,
                memory_order_relaxed);
            coil__arm_recv(w, c);
            /* A connection that never sends a byte is closed silently at the header timeout. */
            c->read_deadline = w->now_ms + w->app->cfg.header_timeout_ms;
            coil__conn_set_timer(w, c);
        }
    }
    if (!w->accept_armed && !w->accept_paused && w->phase == PHASE_RUN)
        arm_accept(w);
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
            give_back(w, bid);
        return;
    }
    if (!more) {
        c->flags &= (uint16_t) ~(CONN_RECV_ARMED | CONN_CANCEL_RECV);
        c->inflight--;
    }
    if (c->flags & CONN_CLOSING) {
        if (data)
            give_back(w, bid);
        if (!more)
            coil__conn_closing_done(w, c);
        return;
    }
    int res = cqe->res;
    if (res > 0 && data) {
        coil__conn_on_recv(w, c, data, (size_t)res);
        give_back(w, bid);
    } else {
        if (data)
            give_back(w, bid);
        if (res == 0) {
            coil__conn_on_eof(w, c);
            return;
        }
        if (res != -ENOBUFS && res != -ECANCELED) {
            coil__conn_abort(w, c); /* ECONNRESET and friends */
            return;
        }
    }
    c = coil__slab_at(&w->conns, idx, gen); /* the handler path may have closed it */
    if (c && !(c->flags & (CONN_RECV_ARMED | CONN_CLOSING | CONN_PAUSED | CONN_EOF)))
        coil__arm_recv(w, c);
}

static void on_send(struct coil__worker *w, const struct io_uring_cqe *cqe)
{
    struct coil_conn *c = coil__slab_at(&w->conns, UD_IDX(cqe->user_data), UD_GEN(cqe->user_data));
    assert(c); /* a send in flight keeps its slot */
    if (!c)
        return;
    c->inflight--;
    coil__conn_on_send(w, c, cqe->res);
}

static void arm_eventfd(struct coil__worker *w)
{
    struct io_uring_sqe *sqe = sqe_get(w);
    io_uring_prep_read(sqe, w->event_fd, &w->event_val, sizeof(w->event_val), 0);
    io_uring_sqe_set_data64(sqe, UD(OP_EVENTFD, 0, 0));
}

static void on_cqe(struct coil__worker *w, const struct io_uring_cqe *cqe)
{
    switch (UD_OP(cqe->user_data)) {
    case OP_ACCEPT:
        on_accept(w, cqe);
        break;
    case OP_RECV:
        on_recv(w, cqe);
        break;
    case OP_SEND:
        on_send(w, cqe);
        break;
    case OP_WAKE:
        w->jobs_due = true;
        break;
    case OP_EVENTFD:
        w->jobs_due = true;
        if (w->phase != PHASE_EXIT)
            arm_eventfd(w);
        break;
    default:
        break;
    }
}

/* ---- timers, date, phases --------------------------------------------------------------- */

static void on_timer(struct coil__timer *t, void *ud)
{
    struct coil__worker *w = ud;
    if (t == &w->accept_timer) {
        w->accept_paused = false;
        if (w->phase == PHASE_RUN && !w->accept_armed)
            arm_accept(w);
        return;
    }
    struct coil_conn *c = (struct coil_conn *)((char *)t - offsetof(struct coil_conn, timer));
    coil__conn_on_timer(w, c);
}

static void update_date(struct coil__worker *w)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME_COARSE, &ts);
    if (ts.tv_sec == w->date_sec)
        return;
    w->date_sec = ts.tv_sec;
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    w->date_len = (uint32_t)strftime(w->date_line, sizeof(w->date_line),
                                     "Date: %a, %d %b %Y %H:%M:%S GMT\r\n", &tm);
}

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

static void begin_drain(struct coil__worker *w)
{
    w->phase = PHASE_DRAIN;
    w->drain_deadline = w->now_ms + w->app->cfg.drain_timeout_ms;
    coil__timer_cancel(&w->wheel, &w->accept_timer);
    if (w->accept_armed)
        cancel_accept(w);
    if (w->listen_fd >= 0) {
        close(w->listen_fd); /* the accept request keeps the socket until it is cancelled */
        w->listen_fd = -1;
    }
    for_each_conn(w, coil__conn_drain);
}

static void check_phase(struct coil__worker *w)
{
    struct coil_app *app = w->app;
    int stop = atomic_load_explicit(&app->stopping, memory_order_relaxed);
    if (w->phase == PHASE_RUN && stop)
        begin_drain(w);
    if (w->phase == PHASE_DRAIN) {
        if (stop >= 2 || w->now_ms >= w->drain_deadline) {
            if (w->open && !w->forced)
                coil__log("worker %u: drain timeout: closing %u connections", w->id, w->open);
            w->forced = true;
            for_each_conn(w, coil__conn_abort);
        }
        if (w->open == 0) {
            w->phase = PHASE_JOBS;
            atomic_fetch_add(&app->done, 1);
        }
    }
    if (w->phase == PHASE_JOBS && atomic_load(&app->done) == app->nworkers &&
        atomic_load(&app->jobs_outstanding) == 0)
        w->phase = PHASE_EXIT;
}

/* ---- start-up --------------------------------------------------------------------------- */

/* SINGLE_ISSUER|DEFER_TASKRUN|COOP_TASKRUN with a sized CQ, dropping flags one at a time on
 * kernels that refuse them (-EINVAL). Other errors (-EPERM, -ENOSYS, -ENOMEM) are final. */
static int ring_init(struct coil__worker *w)
{
    static const unsigned tries[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN | IORING_SETUP_COOP_TASKRUN |
            IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE,
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL |
            IORING_SETUP_CQSIZE,
        IORING_SETUP_COOP_TASKRUN | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_CQSIZE,
        IORING_SETUP_CQSIZE,
        0,
    };
    int err = -EINVAL;
    for (size_t i = 0; i < sizeof(tries) / sizeof(tries[0]); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = tries[i];
        p.cq_entries = RING_ENTRIES * 8;
        err = io_uring_queue_init_params(RING_ENTRIES, &w->ring, &p);
        if (err == 0) {
            w->ring_flags = p.flags;
            return 0;
        }
        if (err != -EINVAL)
            break;
    }
    w->start_what = "io_uring_setup";
    return err;
}

static int buf_ring_init(struct coil__worker *w)
{
    const struct coil__config *cfg = &w->app->cfg;
    uint32_t n = cfg->recv_buf_count;
    w->br_ring_bytes = (size_t)n * sizeof(struct io_uring_buf);
    void *ring =
        mmap(NULL, w->br_ring_bytes, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (ring == MAP_FAILED)
        return -ENOMEM;
    w->br = ring;
    w->br_mem = mmap(NULL, (size_t)n * cfg->recv_buf_size, PROT_READ | PROT_WRITE,
                     MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (w->br_mem == MAP_FAILED) {
        w->br_mem = NULL;
        return -ENOMEM;
    }
    struct io_uring_buf_reg reg;
    memset(&reg, 0, sizeof(reg));
    reg.ring_addr = (uintptr_t)ring;
    reg.ring_entries = n;
    reg.bgid = 0;
    int err = io_uring_register_buf_ring(&w->ring, &reg, 0);
    if (err < 0) {
        w->start_what = "provided buffer ring (kernel 5.19+)";
        return err;
    }
    io_uring_buf_ring_init(w->br);
    w->br_mask = io_uring_buf_ring_mask(n);
    for (uint32_t i = 0; i < n; i++)
        give_back(w, i);
    io_uring_buf_ring_advance(w->br, (int)w->br_returned);
    w->br_returned = 0;
    return 0;
}

static int worker_start(struct coil__worker *w)
{
    const struct coil__config *cfg = &w->app->cfg;
    int err = coil__walloc_init(&w->wa);
    if (err < 0) {
        w->start_what = "jemalloc arena";
        return err;
    }
    w->heap_ready = true;
    if ((err = coil__arena_init(&w->arena, &w->wa, 64 * 1024)) < 0 ||
        (err = coil__slab_init(&w->conns, &w->wa, sizeof(struct coil_conn), cfg->max_conns)) < 0) {
        w->start_what = "memory";
        return err;
    }
    coil__bufpool_init(&w->bufs, &w->wa, cfg->io_buf_size, 1024);
    w->hdrs = coil__walloc(&w->wa, sizeof(*w->hdrs) * cfg->lim.max_headers);
    if (!w->hdrs) {
        w->start_what = "memory";
        return -ENOMEM;
    }
    w->now_ms = clock_ms();
    coil__wheel_init(&w->wheel, w->now_ms, TICK_MS);
    update_date(w);
    if ((err = ring_init(w)) < 0)
        return err;
    w->ring_ready = true;
    if ((err = buf_ring_init(w)) < 0) {
        if (!w->start_what)
            w->start_what = "receive buffers";
        return err;
    }
    if (!w->app->msg_ring) {
        w->event_fd = eventfd(0, EFD_CLOEXEC);
        if (w->event_fd < 0) {
            w->start_what = "eventfd";
            return -errno;
        }
    }
    return 0;
}

static void worker_stop(struct coil__worker *w)
{
    if (w->ring_ready)
        io_uring_queue_exit(&w->ring);
    if (w->br)
        munmap(w->br, w->br_ring_bytes);
    if (w->br_mem)
        munmap(w->br_mem, (size_t)w->app->cfg.recv_buf_count * w->app->cfg.recv_buf_size);
    if (w->event_fd >= 0)
        close(w->event_fd);
    if (w->listen_fd >= 0)
        close(w->listen_fd);
    /* Freed one by one (not only by dropping the jemalloc arena) so LeakSanitizer builds can
     * tell a leak from the worker's own memory. */
    if (!w->heap_ready)
        return;
    if (w->arena.first)
        coil__arena_fini(&w->arena);
    if (w->conns.wa)
        coil__slab_fini(&w->conns);
    if (w->bufs.wa)
        coil__bufpool_fini(&w->bufs);
    coil__wfree(&w->wa, w->hdrs);
    coil__wfree(&w->wa, w->flush);
    coil__walloc_fini(&w->wa);
}

/* ---- the loop --------------------------------------------------------------------------- */

static void wait_and_handle(struct coil__worker *w)
{
    uint64_t ms = coil__wheel_timeout(&w->wheel);
    if (w->phase != PHASE_RUN && ms > TICK_MS)
        ms = TICK_MS;
    if (ms > 100)
        ms = 100; /* look at the stop flag and the clock at least ten times a second */
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = (long long)ms * 1000000};
    struct io_uring_cqe *cqe;
    int r = io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL);
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN)
        coil__log("worker %u: io_uring_enter: %s", w->id, strerror(-r));
    w->now_ms = clock_ms();
    update_date(w);
    unsigned head, n = 0;
    io_uring_for_each_cqe(&w->ring, head, cqe)
    {
        on_cqe(w, cqe);
        n++;
    }
    io_uring_cq_advance(&w->ring, n);
    if (w->br_returned) {
        io_uring_buf_ring_advance(w->br, (int)w->br_returned);
        w->br_returned = 0;
    }
}

static void run(struct coil__worker *w)
{
    if (w->app->on_start)
        w->app->on_start(w->id, w->app->hook_ud);
    if (w->event_fd >= 0)
        arm_eventfd(w);
    arm_accept(w);
    atomic_fetch_add(&w->app->serving, 1);
    while (w->phase != PHASE_EXIT) {
        wait_and_handle(w);
        coil__wheel_advance(&w->wheel, w->now_ms, on_timer, w);
        if (w->jobs_due || w->phase == PHASE_JOBS) {
            w->jobs_due = false;
            coil__jobs_run(w);
        }
        coil__jobs_reclaim(w);
        check_phase(w);
        flush_all(w);
        coil__jobs_wake(w);
    }
    coil__jobs_run(w);
    coil__jobs_reclaim(w);
    if (w->app->on_stop)
        w->app->on_stop(w->id, w->app->hook_ud);
}

static void pin(struct coil__worker *w)
{
    if (w->cpu < 0)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(w->cpu, &set);
    int err = pthread_setaffinity_np(pthread_self(), sizeof(set), &set);
    if (err)
        coil__log("worker %u: cannot pin to cpu %d: %s", w->id, w->cpu, strerror(err));
}

void *coil__worker_main(void *arg)
{
    struct coil__worker *w = arg;
    struct coil_app *app = w->app;
    coil__self = w;
    pin(w);
    w->start_err = worker_start(w);
    atomic_fetch_add(&app->started, 1);
    /* Wait for the main thread's verdict on every worker's start-up. */
    while (!atomic_load(&app->go) && !atomic_load(&app->stopping)) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    if (w->start_err == 0 && atomic_load(&app->go) && !atomic_load(&app->abort_start))
        run(w);
    worker_stop(w);
    atomic_fetch_add(&app->exited, 1);
    coil__self = NULL;
    return NULL;
}
