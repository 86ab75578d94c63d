/* SPDX-License-Identifier: MIT */
/*
 * test_chan: background jobs over the cross-core channels, without io_uring. Each test builds a
 * fake app (workers with an eventfd and a walloc, msg_ring off, so wake-ups are eventfd writes)
 * and plays the workers from plain threads that set coil__self. Checks: every job from every
 * source to every target (itself included) runs exactly once and in order while the rings are
 * full most of the time; a full ring refuses with -EAGAIN, loses nothing and takes posts again
 * once the target ran and the source reclaimed; the ring indices survive uint32 wrap-around;
 * errors (-EPERM off a worker, -EINVAL, -ESHUTDOWN) and coil_job_broadcast's refused count; the
 * job owns a copy of its payload; job memory goes back to the worker that allocated it
 * (nalloc == nfree) and jobs_outstanding returns to 0; wake-ups coalesce and none is lost by a
 * consumer that sleeps on its eventfd.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "internal.h"

#include "check.h"

#define NW 4         /* workers in the fake app */
#define CAP 64       /* jobs per channel */
#define M 20000      /* jobs per (source, target) pair in the all-pairs test */
#define WAKE_K 50000 /* jobs in the lost-wake-up test */

/* ---- the fake app ---- */

static struct coil_app *app_create(unsigned nworkers, uint32_t cap)
{
    struct coil_app *app = calloc(1, sizeof(*app));
    CHECK(app != NULL);
    app->nworkers = nworkers;
    app->cfg.chan_capacity = cap;
    app->msg_ring = false;
    app->workers = calloc(nworkers, sizeof(*app->workers));
    CHECK(app->workers != NULL);
    for (unsigned i = 0; i < nworkers; i++) {
        struct coil__worker *w = aligned_alloc(COIL_CACHELINE, sizeof(*w));
        CHECK(w != NULL);
        memset(w, 0, sizeof(*w));
        w->id = i;
        w->cpu = -1;
        w->app = app;
        for (unsigned k = 0; k < NLISTENERS; k++)
            w->lst[k].fd = -1;
        w->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (w->event_fd < 0) {
            fprintf(stderr, "test_chan: eventfd: %s: skipped\n", strerror(errno));
            exit(77);
        }
        CHECK(coil__walloc_init(&w->wa) == 0);
        app->workers[i] = w;
    }
    CHECK(coil__chans_create(app) == 0);
    coil__app = app;
    return app;
}

static void app_destroy(struct coil_app *app)
{
    coil__chans_destroy(app);
    CHECK(app->chans == NULL);
    for (unsigned i = 0; i < app->nworkers; i++) {
        struct coil__worker *w = app->workers[i];
        coil__walloc_fini(&w->wa);
        close(w->event_fd);
        free(w);
    }
    free(app->workers);
    free(app);
    coil__app = NULL;
    coil__self = NULL;
}

static struct coil__chan *chan(struct coil_app *app, unsigned src, unsigned dst)
{
    return &app->chans[(size_t)src * app->nworkers + dst];
}

static uint64_t outstanding(struct coil_app *app)
{
    return atomic_load_explicit(&app->jobs_outstanding, memory_order_acquire);
}

/* Reads (and resets) a worker's eventfd: its counter, or 0 when nothing was written. */
static uint64_t drain_eventfd(struct coil__worker *w)
{
    uint64_t v = 0;
    ssize_t r = read(w->event_fd, &v, sizeof(v));
    if (r < 0) {
        CHECK(errno == EAGAIN);
        return 0;
    }
    CHECK(r == (ssize_t)sizeof(v));
    return v;
}

/* Every job this worker posted has run and been freed on it. */
static void check_worker_clean(struct coil__worker *w)
{
    coil__jobs_reclaim(w);
    CHECK(w->jobs_unreclaimed == 0);
    CHECK(w->wa.nalloc == w->wa.nfree);
}

static void on_nop_job(void *payload, size_t len, unsigned worker) {}

/* ---- 1. all pairs, many threads: exactly once, in order ---- */

struct seq_job {
    uint32_t src;
    uint32_t seq;
};

/* Per target; touched only by the target's thread while the test runs. */
struct target_state {
    int64_t last[NW];   /* last seq run from each source; -1 before the first */
    uint64_t count[NW]; /* jobs run from each source */
};

static struct target_state g_targets[NW];
static atomic_uint g_finished_posters;
static atomic_uint g_order_errors;

static void on_seq_job(void *payload, size_t len, unsigned worker)
{
    struct seq_job j;
    CHECK(len == sizeof(j));
    CHECK(((uintptr_t)payload & 15) == 0);
    memcpy(&j, payload, sizeof(j));
    CHECK(worker < NW && coil__self != NULL && coil__self->id == worker);
    CHECK(j.src < NW);
    struct target_state *t = &g_targets[worker];
    if ((int64_t)j.seq != t->last[j.src] + 1)
        atomic_fetch_add(&g_order_errors, 1);
    t->last[j.src] = j.seq;
    t->count[j.src]++;
}

struct poster {
    struct coil__worker *w;
    uint64_t eagain; /* posts refused because the channel was full */
};

/* What a worker does between batches: run inbound jobs, free run outbound ones, wake targets. */
static unsigned service(struct coil__worker *w)
{
    unsigned ran = coil__jobs_run(w);
    coil__jobs_reclaim(w);
    coil__jobs_wake(w);
    return ran;
}

static void *all_pairs_thread(void *arg)
{
    struct poster *p = arg;
    struct coil__worker *w = p->w;
    struct coil_app *app = w->app;
    coil__self = w;
    for (uint32_t seq = 0; seq < M; seq++) {
        for (unsigned k = 0; k < NW; k++) {
            unsigned target = (w->id + k) % NW; /* itself first, then the others */
            struct seq_job j = {.src = w->id, .seq = seq};
            int rc;
            while ((rc = coil_job_post(target, on_seq_job, &j, sizeof(j))) == -EAGAIN) {
                p->eagain++;
                if (!service(w))
                    sched_yield();
            }
            CHECK(rc == 0);
        }
        coil__jobs_wake(w);
    }
    atomic_fetch_add(&g_finished_posters, 1);
    for (;;) {
        unsigned ran = service(w);
        if (atomic_load(&g_finished_posters) == NW && outstanding(app) == 0) {
            /* Every job anywhere has run, so every tail this worker reclaims against is final. */
            coil__jobs_reclaim(w);
            CHECK(w->jobs_unreclaimed == 0);
            break;
        }
        if (!ran)
            sched_yield();
    }
    coil__self = NULL;
    return NULL;
}

static void test_all_pairs(void)
{
    struct coil_app *app = app_create(NW, CAP);
    memset(g_targets, 0, sizeof(g_targets));
    for (unsigned t = 0; t < NW; t++)
        for (unsigned s = 0; s < NW; s++)
            g_targets[t].last[s] = -1;
    atomic_store(&g_finished_posters, 0);
    atomic_store(&g_order_errors, 0);

    struct poster posters[NW];
    pthread_t th[NW];
    for (unsigned i = 0; i < NW; i++) {
        posters[i] = (struct poster){.w = app->workers[i]};
        CHECK(pthread_create(&th[i], NULL, all_pairs_thread, &posters[i]) == 0);
    }
    for (unsigned i = 0; i < NW; i++)
        CHECK(pthread_join(th[i], NULL) == 0);

    CHECK(atomic_load(&g_order_errors) == 0);
    for (unsigned t = 0; t < NW; t++) {
        for (unsigned s = 0; s < NW; s++) {
            CHECK(g_targets[t].count[s] == M);
            CHECK(g_targets[t].last[s] == M - 1);
        }
    }
    CHECK(outstanding(app) == 0);
    uint64_t jobs_run = 0, eagain = 0;
    for (unsigned i = 0; i < NW; i++) {
        struct coil__worker *w = app->workers[i];
        check_worker_clean(w);
        CHECK(w->wa.nalloc == (uint64_t)NW * M); /* one allocation per accepted post, no more */
        jobs_run += atomic_load(&w->stats.jobs_run);
        CHECK(atomic_load(&w->stats.jobs_run) == (uint64_t)NW * M);
        /* The self-channel is drained only on -EAGAIN, so every poster hit a full ring. */
        CHECK(posters[i].eagain > 0);
        eagain += posters[i].eagain;
        /* Three other workers posted here and woke it through its eventfd. */
        CHECK(drain_eventfd(w) > 0);
        for (unsigned d = 0; d < NW; d++) {
            struct coil__chan *ch = chan(app, i, d);
            CHECK(atomic_load(&ch->head) == M);
            CHECK(atomic_load(&ch->tail) == M);
            CHECK(ch->reclaim == M);
        }
    }
    CHECK(jobs_run == (uint64_t)NW * NW * M);
    printf("all pairs: %u jobs, %llu refused with -EAGAIN\n", NW * NW * M,
           (unsigned long long)eagain);
    app_destroy(app);
}

/* ---- 2. a full channel ---- */

static uint32_t g_expect_seq;
static unsigned g_ran;

static void on_ordered_job(void *payload, size_t len, unsigned worker)
{
    uint32_t seq;
    CHECK(len == sizeof(seq));
    memcpy(&seq, payload, sizeof(seq));
    CHECK(seq == g_expect_seq);
    g_expect_seq++;
    g_ran++;
}

/* Worker 0 posts to worker 1 until refused; returns how many were accepted. */
static uint32_t fill(struct coil_app *app, uint32_t *seq)
{
    struct coil__worker *w0 = app->workers[0];
    coil__self = w0;
    uint32_t accepted = 0;
    int rc;
    while ((rc = coil_job_post(1, on_ordered_job, seq, sizeof(*seq))) == 0) {
        (*seq)++;
        accepted++;
        CHECK(accepted <= app->cfg.chan_capacity);
    }
    CHECK(rc == -EAGAIN);
    return accepted;
}

/* The given worker runs what is queued for it; returns how many ran. */
static unsigned run_on(struct coil_app *app, unsigned worker)
{
    coil__self = app->workers[worker];
    unsigned ran = coil__jobs_run(app->workers[worker]);
    coil__self = NULL;
    return ran;
}

static void test_full_channel(void)
{
    struct coil_app *app = app_create(NW, CAP);
    struct coil__worker *w0 = app->workers[0];
    uint32_t seq = 0;
    g_expect_seq = 0;
    g_ran = 0;

    CHECK(fill(app, &seq) == CAP);
    CHECK(outstanding(app) == CAP);
    CHECK(w0->jobs_unreclaimed == CAP);
    /* A refused post allocates nothing and counts nothing. */
    uint64_t nalloc = w0->wa.nalloc;
    CHECK(coil_job_post(1, on_ordered_job, &seq, sizeof(seq)) == -EAGAIN);
    CHECK(w0->wa.nalloc == nalloc && outstanding(app) == CAP);
    /* Other channels of the same source are independent. */
    CHECK(coil_job_post(2, on_nop_job, &seq, sizeof(seq)) == 0);
    CHECK(run_on(app, 2) == 1);
    CHECK(outstanding(app) == CAP);
    CHECK(g_ran == 0);
    /* Reclaiming before the target ran frees nothing and makes no room. */
    coil__jobs_reclaim(w0);
    CHECK(w0->jobs_unreclaimed == CAP);
    coil__self = w0;
    CHECK(coil_job_post(1, on_ordered_job, &seq, sizeof(seq)) == -EAGAIN);

    /* The target runs every job, in order; nothing was lost. */
    CHECK(run_on(app, 1) == CAP);
    CHECK(g_ran == CAP && g_expect_seq == CAP);
    CHECK(outstanding(app) == 0);
    CHECK(run_on(app, 1) == 0);

    /* The source frees them and can post again. */
    uint64_t nfree = w0->wa.nfree;
    coil__jobs_reclaim(w0);
    CHECK(w0->wa.nfree == nfree + CAP);
    CHECK(w0->jobs_unreclaimed == 0);
    CHECK(w0->wa.nalloc == w0->wa.nfree);
    CHECK(fill(app, &seq) == CAP);

    /* Without an explicit reclaim, a post that finds the ring full reclaims by itself. */
    CHECK(run_on(app, 1) == CAP);
    coil__self = w0;
    CHECK(coil_job_post(1, on_ordered_job, &seq, sizeof(seq)) == 0);
    seq++;
    CHECK(w0->jobs_unreclaimed == 1);
    CHECK(run_on(app, 1) == 1);

    /* Run but unreclaimed jobs still hold their slots until a post needs them back. */
    coil__self = w0;
    for (int i = 0; i < 10; i++) {
        CHECK(coil_job_post(1, on_ordered_job, &seq, sizeof(seq)) == 0);
        seq++;
    }
    CHECK(run_on(app, 1) == 10);
    CHECK(w0->jobs_unreclaimed == 11);
    CHECK(fill(app, &seq) == CAP);
    struct coil__chan *ch = chan(app, 0, 1);
    CHECK(atomic_load(&ch->head) - atomic_load(&ch->tail) == CAP);
    CHECK(run_on(app, 1) == CAP);
    CHECK(g_expect_seq == seq);

    check_worker_clean(w0);
    CHECK(outstanding(app) == 0);
    app_destroy(app);
}

/* The ring indices are free-running uint32: a channel that wraps past UINT32_MAX still holds
 * exactly CAP jobs and keeps their order. */
static void test_index_wrap(void)
{
    struct coil_app *app = app_create(2, CAP);
    struct coil__chan *ch = chan(app, 0, 1);
    uint32_t start = UINT32_MAX - CAP / 2;
    atomic_store(&ch->head, start);
    atomic_store(&ch->tail, start);
    ch->reclaim = start;
    uint32_t seq = 0;
    g_expect_seq = 0;
    for (int round = 0; round < 4; round++) {
        CHECK(fill(app, &seq) == CAP);
        CHECK(run_on(app, 1) == CAP);
        coil__jobs_reclaim(app->workers[0]);
    }
    CHECK(g_expect_seq == 4 * CAP);
    CHECK(atomic_load(&ch->head) == start + 4 * CAP); /* wrapped */
    CHECK(atomic_load(&ch->head) < start);
    check_worker_clean(app->workers[0]);
    CHECK(outstanding(app) == 0);
    app_destroy(app);
}

/* ---- 3. errors, broadcast, jobs posting jobs ---- */

static unsigned g_ran_on[NW];

static void on_count_job(void *payload, size_t len, unsigned worker)
{
    CHECK(worker < NW && coil__self != NULL && coil__self->id == worker);
    g_ran_on[worker]++;
}

static void test_errors(void)
{
    struct coil_app *app = app_create(NW, CAP);
    char byte = 'x';

    coil__self = NULL;
    CHECK(coil_job_post(0, on_nop_job, &byte, 1) == -EPERM);
    CHECK(coil_job_broadcast(on_nop_job, &byte, 1) == -EPERM);

    struct coil__worker *w2 = app->workers[2];
    coil__self = w2;
    CHECK(coil_job_post(NW, on_nop_job, &byte, 1) == -EINVAL);
    CHECK(coil_job_post(UINT32_MAX, on_nop_job, &byte, 1) == -EINVAL);
    CHECK(coil_job_post(0, NULL, &byte, 1) == -EINVAL);
    CHECK(coil_job_broadcast(NULL, &byte, 1) == -EINVAL);
    /* Once the workers have agreed to exit (jobs_outstanding closed), every post is refused:
     * nobody would run it. Closing only succeeds with no job outstanding. */
    CHECK(coil__jobs_close(app, false));
    CHECK(coil_job_post(0, on_nop_job, &byte, 1) == -ESHUTDOWN);
    CHECK(coil_job_post(2, on_nop_job, &byte, 1) == -ESHUTDOWN);
    CHECK(coil_job_broadcast(on_nop_job, &byte, 1) == NW - 1);
    atomic_store(&app->jobs_outstanding, 0); /* reopened for the rest of the test */
    CHECK(w2->wa.nalloc == 0 && outstanding(app) == 0); /* refusals allocate nothing */
    CHECK(coil_job_post(0, on_nop_job, &byte, 1) == 0);
    CHECK(!coil__jobs_close(app, false)); /* one outstanding: not closed */
    run_on(app, 0);
    coil__self = w2;
    CHECK(outstanding(app) == 0);
    coil__jobs_reclaim(w2);

    /* Broadcast: every worker but the caller. */
    memset(g_ran_on, 0, sizeof(g_ran_on));
    CHECK(coil_job_broadcast(on_count_job, &byte, 1) == 0);
    CHECK(outstanding(app) == NW - 1);
    for (unsigned i = 0; i < NW; i++)
        run_on(app, i);
    for (unsigned i = 0; i < NW; i++)
        CHECK(g_ran_on[i] == (i == 2 ? 0u : 1u));

    /* With the channel to worker 3 full, broadcast reports one refusal and still posts to the
     * others. */
    coil__self = w2;
    unsigned filled = 0;
    while (coil_job_post(3, on_nop_job, &byte, 1) == 0)
        filled++;
    CHECK(filled == CAP);
    memset(g_ran_on, 0, sizeof(g_ran_on));
    CHECK(coil_job_broadcast(on_count_job, &byte, 1) == 1);
    CHECK(outstanding(app) == CAP + NW - 2);
    for (unsigned i = 0; i < NW; i++)
        run_on(app, i);
    for (unsigned i = 0; i < NW; i++)
        CHECK(g_ran_on[i] == (i == 0 || i == 1 ? 1u : 0u));
    CHECK(outstanding(app) == 0);

    check_worker_clean(w2);
    app_destroy(app);
}

/* A job that posts its successor to its own worker: one coil__jobs_run runs the whole chain,
 * longer than the ring, because run re-reads head of the self-channel and post reclaims. */
static unsigned g_chain_left;

static void on_chain_job(void *payload, size_t len, unsigned worker)
{
    g_ran++;
    if (g_chain_left == 0)
        return;
    g_chain_left--;
    CHECK(coil_job_post(worker, on_chain_job, NULL, 0) == 0);
}

static void test_self_chain(void)
{
    struct coil_app *app = app_create(2, CAP);
    struct coil__worker *w = app->workers[1];
    coil__self = w;
    g_ran = 0;
    g_chain_left = 10 * CAP;
    CHECK(coil_job_post(1, on_chain_job, NULL, 0) == 0);
    CHECK(w->jobs_due);           /* a self-post needs no wake-up... */
    CHECK(drain_eventfd(w) == 0); /* ...and writes no eventfd */
    CHECK(coil__jobs_run(w) == 10 * CAP + 1);
    CHECK(g_ran == 10 * CAP + 1);
    CHECK(outstanding(app) == 0);
    CHECK(coil__jobs_run(w) == 0);
    check_worker_clean(w);
    app_destroy(app);
}

/* ---- 4. the payload is the job's own copy ---- */

static char g_seen[256];
static size_t g_seen_len;
static const void *g_seen_ptr;

static void on_copy_job(void *payload, size_t len, unsigned worker)
{
    CHECK(len <= sizeof(g_seen));
    CHECK(((uintptr_t)payload & 15) == 0);
    memcpy(g_seen, payload, len);
    g_seen_len = len;
    g_seen_ptr = payload;
    g_ran++;
}

static size_t g_big_len;

static void on_big_job(void *payload, size_t len, unsigned worker)
{
    CHECK(len == g_big_len);
    const unsigned char *p = payload;
    for (size_t i = 0; i < len; i++)
        CHECK(p[i] == (unsigned char)(i * 7 + 3));
    g_ran++;
}

static void test_payload_copy(void)
{
    struct coil_app *app = app_create(2, CAP);
    struct coil__worker *w0 = app->workers[0];
    char buf[64];
    strcpy(buf, "original payload");
    size_t len = strlen(buf) + 1;

    coil__self = w0;
    CHECK(coil_job_post(1, on_copy_job, buf, len) == 0);
    memset(buf, 'X', sizeof(buf)); /* the caller reuses its buffer at once */
    g_ran = 0;
    CHECK(run_on(app, 1) == 1);
    CHECK(g_ran == 1);
    CHECK(g_seen_len == len && strcmp(g_seen, "original payload") == 0);
    CHECK(g_seen_ptr != (const void *)buf);

    /* len 0: NULL payload is fine; the job still gets a (valid, aligned) pointer. */
    coil__self = w0;
    CHECK(coil_job_post(1, on_copy_job, NULL, 0) == 0);
    CHECK(coil_job_post(1, on_copy_job, buf, 0) == 0);
    g_ran = 0;
    CHECK(run_on(app, 1) == 2);
    CHECK(g_ran == 2 && g_seen_len == 0);

    /* A payload far larger than a slot or a cache line, posted to itself. */
    g_big_len = 100000;
    unsigned char *big = malloc(g_big_len);
    CHECK(big != NULL);
    for (size_t i = 0; i < g_big_len; i++)
        big[i] = (unsigned char)(i * 7 + 3);
    coil__self = w0;
    CHECK(coil_job_post(0, on_big_job, big, g_big_len) == 0);
    memset(big, 0, g_big_len);
    free(big);
    g_ran = 0;
    CHECK(run_on(app, 0) == 1 && g_ran == 1);

    check_worker_clean(w0);
    CHECK(w0->wa.nalloc == 4);
    CHECK(outstanding(app) == 0);
    app_destroy(app);
}

/* ---- 5. wake-ups ---- */

/* Single-threaded: the first post wakes the target once; later posts do not write again until
 * the target has drained (which clears its pending flag). */
static void test_wake_coalesce(void)
{
    struct coil_app *app = app_create(NW, CAP);
    struct coil__worker *w0 = app->workers[0], *w1 = app->workers[1];
    char byte = 0;

    coil__self = w0;
    coil__jobs_wake(w0); /* nothing posted: nobody is woken */
    for (unsigned i = 0; i < NW; i++)
        CHECK(drain_eventfd(app->workers[i]) == 0);

    CHECK(coil_job_post(1, on_nop_job, &byte, 1) == 0);
    CHECK(drain_eventfd(w1) == 0); /* posting alone wakes nobody: the batch end does */
    coil__jobs_wake(w0);
    CHECK(drain_eventfd(w1) == 1);
    CHECK(drain_eventfd(app->workers[2]) == 0 && drain_eventfd(app->workers[3]) == 0);
    CHECK(drain_eventfd(w0) == 0);

    CHECK(coil_job_post(1, on_nop_job, &byte, 1) == 0);
    coil__jobs_wake(w0);
    CHECK(drain_eventfd(w1) == 0); /* a wake-up is already pending */

    CHECK(run_on(app, 1) == 2); /* clears the pending flag */
    coil__self = w0;
    CHECK(coil_job_post(1, on_nop_job, &byte, 1) == 0);
    CHECK(coil_job_post(3, on_nop_job, &byte, 1) == 0);
    coil__jobs_wake(w0);
    CHECK(drain_eventfd(w1) == 1);
    CHECK(drain_eventfd(app->workers[3]) == 1);
    CHECK(drain_eventfd(app->workers[2]) == 0);
    coil__jobs_wake(w0); /* the batch's targets were reset */
    CHECK(run_on(app, 1) == 1 && run_on(app, 3) == 1);
    CHECK(drain_eventfd(w1) == 0 && drain_eventfd(app->workers[3]) == 0);

    check_worker_clean(w0);
    app_destroy(app);
}

/* Two threads: worker 1 sleeps on its eventfd and runs jobs only when woken, as the real loop
 * does; worker 0 posts in random bursts and wakes after each. A lost wake-up leaves worker 1
 * asleep with jobs queued (poll's timeout only keeps a failure from hanging forever).
 *
 * Random interleavings rarely hit the dangerous window, so every GATE_EVERY jobs a gate makes
 * it happen: the gate job (run by worker 1) waits until worker 0 has posted the next job and
 * woken worker 1. That post lands after worker 1 read `head` for this drain, so only a fresh
 * wake-up (the pending flag cleared before the drain, not after) gets it run. */
#define GATE_EVERY 1000

static atomic_int g_stop;
static atomic_uint g_gate_entered;  /* gate seq + 1, set by worker 1 inside the gate job */
static atomic_uint g_gate_released; /* gate seq + 1, set by worker 0 after posting gate + 1 */
static atomic_uint g_wake_ran;      /* jobs run by worker 1 */
static uint32_t g_wake_next;        /* worker 1 only: next seq expected */

static bool is_gate(uint32_t seq)
{
    return seq % GATE_EVERY == GATE_EVERY / 2 && seq + 1 < WAKE_K;
}

static void on_wake_job(void *payload, size_t len, unsigned worker)
{
    uint32_t seq;
    CHECK(len == sizeof(seq));
    memcpy(&seq, payload, sizeof(seq));
    CHECK(seq == g_wake_next);
    g_wake_next++;
    if (is_gate(seq)) {
        atomic_store(&g_gate_entered, seq + 1);
        while (atomic_load(&g_gate_released) != seq + 1)
            sched_yield();
    }
    atomic_store(&g_wake_ran, g_wake_next);
}

static void on_stop_job(void *payload, size_t len, unsigned worker)
{
    atomic_store(&g_stop, 1);
}

static void *sleeper_thread(void *arg)
{
    struct coil__worker *w = arg;
    coil__self = w;
    while (!atomic_load(&g_stop)) {
        struct pollfd pfd = {.fd = w->event_fd, .events = POLLIN};
        int r = poll(&pfd, 1, 30000);
        if (r == 0)
            fprintf(stderr, "test_chan: worker 1 never woken: %llu jobs queued, %u run\n",
                    (unsigned long long)outstanding(w->app), g_wake_next);
        CHECK(r == 1);
        /* Read the eventfd before draining, as the loop does: a post that the drain misses
         * must bring a new write, which the next poll sees. */
        CHECK(drain_eventfd(w) > 0);
        coil__jobs_run(w);
    }
    coil__self = NULL;
    return NULL;
}

/* Worker 0: posts one job, waiting for room when the ring is full. */
static void post_wake_job(struct coil__worker *w0, coil_job_fn fn, uint32_t seq)
{
    int rc;
    while ((rc = coil_job_post(1, fn, &seq, sizeof(seq))) == -EAGAIN) {
        coil__jobs_wake(w0);
        sched_yield();
    }
    CHECK(rc == 0);
}

static void test_no_lost_wakeup(void)
{
    struct coil_app *app = app_create(2, CAP);
    struct coil__worker *w0 = app->workers[0], *w1 = app->workers[1];
    atomic_store(&g_stop, 0);
    atomic_store(&g_gate_entered, 0);
    atomic_store(&g_gate_released, 0);
    atomic_store(&g_wake_ran, 0);
    g_wake_next = 0;
    pthread_t th;
    CHECK(pthread_create(&th, NULL, sleeper_thread, w1) == 0);

    coil__self = w0;
    uint32_t burst = 0, rng = 12345, gates = 0;
    for (uint32_t seq = 0; seq < WAKE_K; seq++) {
        post_wake_job(w0, on_wake_job, seq);
        if (is_gate(seq)) {
            coil__jobs_wake(w0);
            burst = 0;
            while (atomic_load(&g_gate_entered) != seq + 1)
                sched_yield();
        } else if (seq > 0 && is_gate(seq - 1)) {
            /* Worker 1 is inside the gate job, its drain already bounded by an older head. */
            coil__jobs_wake(w0);
            burst = 0;
            atomic_store(&g_gate_released, seq);
            while (atomic_load(&g_wake_ran) <= seq)
                sched_yield();
            gates++;
        } else if (++burst >= 1 + (rng >> 16) % 8) { /* bursts of 1..8 jobs */
            coil__jobs_wake(w0);
            burst = 0;
            rng = rng * 1103515245u + 12345u;
        }
    }
    CHECK(gates == WAKE_K / GATE_EVERY);
    post_wake_job(w0, on_stop_job, 0);
    coil__jobs_wake(w0);
    CHECK(pthread_join(th, NULL) == 0);

    CHECK(g_wake_next == WAKE_K && atomic_load(&g_wake_ran) == WAKE_K);
    CHECK(outstanding(app) == 0);
    check_worker_clean(w0);
    CHECK(w0->wa.nalloc == WAKE_K + 1);
    CHECK(atomic_load(&w1->stats.jobs_run) == WAKE_K + 1);
    app_destroy(app);
}

int main(void)
{
    test_full_channel();
    test_index_wrap();
    test_errors();
    test_self_chain();
    test_payload_copy();
    test_wake_coalesce();
    test_all_pairs();
    test_no_lost_wakeup();
    printf("test_chan: ok\n");
    return 0;
}
