/* SPDX-License-Identifier: MIT */
/*
 * loop.c: a worker's thread: its io_uring ring, provided-buffer ring, timer wheel, and the loop
 * that dispatches every completion by its kind. The loop knows no protocol: each kind of
 * operation (listener, connection I/O, fd watches, wake-ups) registers a completion handler
 * for its op code with coil__loop_handle, and modules hook the loop's events (end of batch,
 * drain, force) with coil__loop_on, all before the workers start; the tables are read-only
 * after that. Timers carry their own callback.
 *
 * One iteration: submit what the last batch queued and wait for completions; handle every
 * completion in the CQ; give the receive buffers back to the kernel in one ring update; fire
 * due timers; run inbound background jobs; then the end-of-batch hooks (connections resume and
 * send what they queued). Responses therefore leave just before the worker sleeps.
 *
 * user_data packs {op:8, index:24, generation:32}. Submission never spins: coil__sqe gives up
 * after a few submits that free no entry, and the caller fails its operation.
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

uint64_t coil__clock_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void update_clock(struct coil__worker *w)
{
    w->now_ns = coil__clock_ns();
    w->now_ms = w->now_ns / 1000000u;
}

struct io_uring_sqe *coil__sqe(struct coil__worker *w)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(&w->ring);
    /* SQ full: push it to the kernel and retry, a few times. A kernel that keeps refusing
     * (-EBUSY with the CQ overflowing, -ENOMEM) fails this operation, not the worker. */
    for (int tries = 0; !sqe && tries < 4; tries++) {
        io_uring_submit(&w->ring);
        sqe = io_uring_get_sqe(&w->ring);
    }
    return sqe;
}

static void on_wake(struct coil__worker *w, const struct io_uring_cqe *cqe);

void coil__loop_init(void)
{
    coil__loop_handle(OP_WAKE, on_wake);
    coil__loop_handle(OP_EVENTFD, on_wake);
}

/* ---- completions ------------------------------------------------------------------------ */

void coil__give_back(struct coil__worker *w, unsigned bid)
{
    io_uring_buf_ring_add(w->br, w->br_mem + (size_t)bid * w->app->cfg.recv_buf_size,
                          w->app->cfg.recv_buf_size, (unsigned short)bid, w->br_mask,
                          (int)w->br_returned++);
}

static void arm_eventfd(struct coil__worker *w)
{
    struct io_uring_sqe *sqe = coil__sqe(w);
    if (!sqe) {
        w->jobs_due = true; /* look at the channels every batch until it can be re-armed */
        w->eventfd_unarmed = true;
        return;
    }
    w->eventfd_unarmed = false;
    io_uring_prep_read(sqe, w->event_fd, &w->event_val, sizeof(w->event_val), 0);
    io_uring_sqe_set_data64(sqe, UD(OP_EVENTFD, 0, 0));
}

/* Jobs run at once, before the completions behind the wake-up: a job posted before its sender
 * answered a client (a cache fill, say) then runs before that client's next request here. */
static void on_wake(struct coil__worker *w, const struct io_uring_cqe *cqe)
{
    w->jobs_due = true;
    if (UD_OP(cqe->user_data) == OP_EVENTFD && w->phase != PHASE_EXIT)
        arm_eventfd(w);
    if (w->phase != PHASE_EXIT)
        coil__jobs_run(w);
}

/* ---- timers, date, phases --------------------------------------------------------------- */

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

static void begin_drain(struct coil__worker *w)
{
    w->phase = PHASE_DRAIN;
    w->drain_deadline = w->now_ms + w->app->cfg.drain_timeout_ms;
    coil__loop_run(w, EV_DRAIN);
}

/* A listener's multishot accept is still in flight (its cancel has not completed): connections
 * it accepted may still arrive, and are served. */
static bool accepting(const struct coil__worker *w)
{
    for (unsigned k = 0; k < NLISTENERS; k++)
        if (w->lst[k].armed)
            return true;
    return false;
}

static void check_phase(struct coil__worker *w)
{
    struct coil_app *app = w->app;
    int stop = atomic_load_explicit(&app->stopping, memory_order_relaxed);
    if (w->phase == PHASE_RUN && stop)
        begin_drain(w);
    if (w->phase == PHASE_DRAIN) {
        if (stop >= 2 || w->now_ms >= w->drain_deadline) {
            if (w->open && !w->forced) {
                coil__log("worker %u: drain timeout: closing %u connections", w->id, w->open);
                STAT_ADD(w, t_drain, w->open - w->outbound);
            }
            w->forced = true;
            coil__loop_run(w, EV_FORCE);
        }
        if (w->open == 0 && (w->forced || !accepting(w))) {
            w->phase = PHASE_JOBS;
            atomic_fetch_add(&app->done, 1);
        }
    }
    if (w->phase == PHASE_JOBS &&
        (stop >= 2 ? coil__jobs_close(app, true)
                   : atomic_load(&app->done) == app->nworkers && coil__jobs_close(app, false)))
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
        coil__give_back(w, i);
    io_uring_buf_ring_advance(w->br, (int)w->br_returned);
    w->br_returned = 0;
    return 0;
}

static int worker_start(struct coil__worker *w)
{
    int err = coil__walloc_init(&w->wa);
    if (err < 0) {
        w->start_what = "jemalloc arena";
        return err;
    }
    w->heap_ready = true;
    update_clock(w);
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
    w->modules_ready = true;
    if ((err = coil__modules_start(w)) < 0) {
        if (!w->start_what)
            w->start_what = "memory";
        return err;
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
    for (unsigned k = 0; k < NLISTENERS; k++)
        if (w->lst[k].fd >= 0)
            close(w->lst[k].fd);
    /* Freed one by one (not only by dropping the jemalloc arena) so LeakSanitizer builds can
     * tell a leak from the worker's own memory. */
    if (!w->heap_ready)
        return;
    if (w->modules_ready)
        coil__modules_stop(w);
    coil__pheap_fini(&w->heap, &w->wa);
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
    uint64_t ns = ms * 1000000u;
    if (w->heap.n) {
        uint64_t now = coil__clock_ns(), due = coil__pheap_min(&w->heap)->due_ns;
        uint64_t left = due > now ? due - now : 0;
        if (left < ns)
            ns = left;
    }
    struct __kernel_timespec ts = {.tv_sec = 0, .tv_nsec = (long long)ns};
    struct io_uring_cqe *cqe;
    /* A timer already due: do not sleep, but still enter for events, since with DEFER_TASKRUN
     * completions are only posted when the ring is entered to get them (a plain submit would
     * starve every socket while timers keep coming due). */
    int r = ns ? io_uring_submit_and_wait_timeout(&w->ring, &cqe, 1, &ts, NULL)
               : io_uring_submit_and_get_events(&w->ring);
    if (r < 0 && r != -ETIME && r != -EINTR && r != -EBUSY && r != -EAGAIN)
        coil__log("worker %u: io_uring_enter: %s", w->id, strerror(-r));
    update_clock(w);
    update_date(w);
    unsigned head, n = 0;
    io_uring_for_each_cqe(&w->ring, head, cqe)
    {
        coil__loop_dispatch(w, cqe);
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
    coil__hooks_start(w);
    if (w->event_fd >= 0)
        arm_eventfd(w);
    coil__loop_run(w, EV_SERVE);
    if (w->app->fail_alloc) /* tests: COIL_TEST_ALLOC_FAIL, counted from here */
        coil__walloc_fail_in(&w->wa, w->app->fail_alloc);
    atomic_fetch_add(&w->app->serving, 1);
    while (w->phase != PHASE_EXIT) {
        wait_and_handle(w);
        coil__timers_fire(w);
        if (w->jobs_due || w->phase == PHASE_JOBS) {
            w->jobs_due = false;
            if (w->eventfd_unarmed)
                arm_eventfd(w);
            coil__jobs_run(w);
        }
        coil__jobs_reclaim(w);
        coil__replies_retry(w);
        check_phase(w);
        coil__jobs_wake(w); /* queued before the batch's answers go out (see on_wake) */
        coil__loop_run(w, EV_BATCH);
        coil__jobs_wake(w);
    }
    /* The access log's last write, for at most a second (a pipe nobody reads would hold it
     * forever): its buffer must outlive it, and ring teardown cancels what is left. */
    for (uint64_t until = w->now_ms + 1000; coil__alog_busy(w) && w->now_ms < until;)
        wait_and_handle(w);
    coil__jobs_run(w);
    coil__jobs_reclaim(w);
    coil__hooks_stop(w);
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
