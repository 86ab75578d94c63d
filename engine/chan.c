/* SPDX-License-Identifier: MIT */
/*
 * chan.c: background jobs over cross-core channels.
 *
 * There is one single-producer/single-consumer ring per (source, target) pair of workers, so a
 * post never contends with another producer. The source allocates the job from its own arena,
 * fills a slot and publishes it with a release store of `head`; the target runs jobs between
 * batches and publishes its progress with a release store of `tail`; the source later frees
 * every job below `tail` (`reclaim`), so job memory goes back to the worker that allocated it.
 * A slot is reusable only once reclaimed, so a full ring refuses the post (-EAGAIN) and nothing
 * is dropped. Jobs from one source to one target run exactly once, in order.
 *
 * Wake-up: the target's `wake_pending` flag coalesces wake-ups; the first producer to set it
 * sends one IORING_OP_MSG_RING to the target's ring (from its own ring: SINGLE_ISSUER holds), or
 * writes the target's eventfd where MSG_RING is missing. The target clears the flag before it
 * drains, so a job published after the drain started always brings a new wake-up.
 * `jobs_outstanding` counts posted-but-not-run jobs (and replies waiting for room) over all
 * workers, so shutdown can tell when no job is left anywhere. The workers leave only by closing
 * it: one compare-and-swap from 0 to COIL_JOBS_CLOSED, after which every post is refused with
 * -ESHUTDOWN, so a timer or watch still running on a worker cannot queue a job for a worker that
 * has already gone (which would never run it, and would keep the others waiting).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"

static struct coil__chan *chan_at(struct coil_app *app, unsigned src, unsigned dst)
{
    return &app->chans[(size_t)src * app->nworkers + dst];
}

int coil__chans_create(struct coil_app *app)
{
    size_t n = (size_t)app->nworkers * app->nworkers;
    app->chans = aligned_alloc(COIL_CACHELINE, n * sizeof(struct coil__chan));
    if (!app->chans)
        return -ENOMEM;
    memset(app->chans, 0, n * sizeof(struct coil__chan));
    uint32_t cap = app->cfg.chan_capacity;
    for (size_t i = 0; i < n; i++) {
        app->chans[i].slots = calloc(cap, sizeof(struct coil__job *));
        if (!app->chans[i].slots)
            return -ENOMEM;
        app->chans[i].mask = cap - 1;
    }
    return 0;
}

void coil__chans_destroy(struct coil_app *app)
{
    if (!app->chans)
        return;
    size_t n = (size_t)app->nworkers * app->nworkers;
    for (size_t i = 0; i < n; i++)
        free(app->chans[i].slots);
    free(app->chans);
    app->chans = NULL;
}

/* Frees the jobs of this source's channel that the target has run. Producer side only. */
static void reclaim(struct coil__worker *w, struct coil__chan *ch)
{
    uint32_t tail = atomic_load_explicit(&ch->tail, memory_order_acquire);
    while (ch->reclaim != tail) {
        struct coil__job *job = ch->slots[ch->reclaim & ch->mask];
        coil__wfree(&w->wa, job);
        ch->reclaim++;
        w->jobs_unreclaimed--;
    }
}

void coil__jobs_reclaim(struct coil__worker *w)
{
    if (!w->jobs_unreclaimed)
        return;
    for (unsigned dst = 0; dst < w->app->nworkers; dst++)
        reclaim(w, chan_at(w->app, w->id, dst));
}

bool coil__jobs_count(struct coil_app *app)
{
    uint64_t v = atomic_load_explicit(&app->jobs_outstanding, memory_order_relaxed);
    do {
        if (v & COIL_JOBS_CLOSED)
            return false;
    } while (!atomic_compare_exchange_weak_explicit(&app->jobs_outstanding, &v, v + 1,
                                                    memory_order_relaxed, memory_order_relaxed));
    return true;
}

bool coil__jobs_close(struct coil_app *app, bool force)
{
    if (force) {
        atomic_fetch_or(&app->jobs_outstanding, COIL_JOBS_CLOSED);
        return true;
    }
    uint64_t zero = 0;
    return atomic_compare_exchange_strong(&app->jobs_outstanding, &zero, COIL_JOBS_CLOSED) ||
           (zero & COIL_JOBS_CLOSED);
}

int coil_job_post(unsigned target, coil_job_fn fn, const void *payload, size_t len)
{
    struct coil__worker *w = coil__self;
    if (!w)
        return -EPERM;
    struct coil_app *app = w->app;
    if (target >= app->nworkers || !fn)
        return -EINVAL;
    struct coil__chan *ch = chan_at(app, w->id, target);
    uint32_t head = atomic_load_explicit(&ch->head, memory_order_relaxed);
    if (head - ch->reclaim > ch->mask) {
        reclaim(w, ch);
        if (head - ch->reclaim > ch->mask)
            return -EAGAIN;
    }
    /* Counted before it is visible, so the runner's decrement can never come first; refused
     * once the workers have agreed to exit, since no one would run it. */
    if (!coil__jobs_count(app))
        return -ESHUTDOWN;
    struct coil__job *job = coil__walloc(&w->wa, sizeof(*job) + len);
    if (!job) {
        atomic_fetch_sub_explicit(&app->jobs_outstanding, 1, memory_order_release);
        return -ENOMEM;
    }
    job->fn = fn;
    job->len = len;
    job->src = w->id;
    if (len)
        memcpy(job->data, payload, len);
    ch->slots[head & ch->mask] = job;
    w->jobs_unreclaimed++;
    atomic_store_explicit(&ch->head, head + 1, memory_order_release);
    if (target == w->id)
        w->jobs_due = true;
    else if (target < 64)
        w->wake_targets |= 1ull << target;
    else
        w->wake_all = true;
    return 0;
}

int coil_job_broadcast(coil_job_fn fn, const void *payload, size_t len)
{
    struct coil__worker *w = coil__self;
    if (!w)
        return -EPERM;
    int refused = 0;
    for (unsigned t = 0; t < w->app->nworkers; t++) {
        if (t == w->id)
            continue;
        int err = coil_job_post(t, fn, payload, len);
        if (err == -EINVAL || err == -EPERM)
            return err;
        if (err < 0)
            refused++;
    }
    return refused;
}

unsigned coil__jobs_run(struct coil__worker *w)
{
    struct coil_app *app = w->app;
    /* Clear first: a job published after this point sends a new wake-up. */
    atomic_exchange(&w->wake_pending, 0);
    unsigned ran = 0;
    for (unsigned src = 0; src < app->nworkers; src++) {
        struct coil__chan *ch = chan_at(app, src, w->id);
        uint32_t tail = atomic_load_explicit(&ch->tail, memory_order_relaxed);
        uint32_t head = atomic_load_explicit(&ch->head, memory_order_acquire);
        while (tail != head) {
            struct coil__job *job = ch->slots[tail & ch->mask];
            job->fn(job->data, job->len, w->id);
            tail++;
            atomic_store_explicit(&ch->tail, tail, memory_order_release);
            atomic_fetch_sub_explicit(&app->jobs_outstanding, 1, memory_order_release);
            ran++;
            if (src == w->id) /* a job may post to its own worker: pick that up too */
                head = atomic_load_explicit(&ch->head, memory_order_acquire);
        }
    }
    if (ran)
        atomic_store_explicit(&w->stats.jobs_run,
                              atomic_load_explicit(&w->stats.jobs_run, memory_order_relaxed) + ran,
                              memory_order_relaxed);
    return ran;
}

static void wake(struct coil__worker *w, struct coil__worker *t)
{
    if (atomic_exchange(&t->wake_pending, 1))
        return; /* a wake-up is already on its way */
    if (w->app->msg_ring) {
        struct io_uring_sqe *sqe;
        while (!(sqe = io_uring_get_sqe(&w->ring)))
            io_uring_submit(&w->ring);
        io_uring_prep_msg_ring(sqe, t->ring.ring_fd, 0, UD(OP_WAKE, 0, 0), 0);
        sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
        io_uring_sqe_set_data64(sqe, UD(OP_IGNORE, 0, 0)); /* only a failure completes */
    } else {
        uint64_t one = 1;
        ssize_t r = write(t->event_fd, &one, sizeof(one));
        (void)r; /* the counter cannot overflow in practice; a failure is retried next tick */
    }
}

void coil__jobs_wake(struct coil__worker *w)
{
    if (!w->wake_targets && !w->wake_all)
        return;
    struct coil_app *app = w->app;
    for (unsigned t = 0; t < app->nworkers; t++) {
        if (t == w->id)
            continue;
        if (w->wake_all || (t < 64 && (w->wake_targets & (1ull << t))))
            wake(w, app->workers[t]);
    }
    w->wake_targets = 0;
    w->wake_all = false;
}

/* ---- jobs with replies ------------------------------------------------------------------ */

/* The payload of a call job: who asked, then the caller's bytes. */
struct call {
    coil_call_fn fn;
    coil_reply_fn on_reply;
    void *ud;
    uint64_t owner; /* the owner request's coil_defer id on src; 0: none */
    unsigned src;
    size_t len;
    _Alignas(16) char data[];
};

/* The payload of a reply job. */
struct reply_msg {
    coil_reply_fn on_reply;
    void *ud;
    uint64_t owner;
    int err;
    size_t len;
    _Alignas(16) char data[];
};

/* A reply that found its channel full: retried after every batch, never dropped. */
struct coil__backlog {
    struct coil__backlog *next;
    unsigned target;
    size_t len;
    _Alignas(16) char msg[];
};

struct coil_reply {
    const struct call *call;
    bool replied;
};

static void run_reply(void *payload, size_t len, unsigned worker)
{
    struct reply_msg *m = payload;
    (void)len;
    (void)worker;
    if (!coil__owner_alive(coil__self, m->owner))
        return; /* its request is finished or aborted: nobody is waiting */
    m->on_reply(m->err, m->data, m->len, m->ud);
}

static int send_reply(const struct call *call, int err, const void *data, size_t len)
{
    struct coil__worker *w = coil__self;
    size_t size = sizeof(struct reply_msg) + len;
    struct coil__backlog *b = coil__walloc(&w->wa, sizeof(*b) + size);
    if (!b)
        return -ENOMEM;
    struct reply_msg *m = (struct reply_msg *)b->msg;
    m->on_reply = call->on_reply;
    m->ud = call->ud;
    m->owner = call->owner;
    m->err = err;
    m->len = len;
    if (len)
        memcpy(m->data, data, len);
    int r = coil_job_post(call->src, run_reply, m, size);
    /* Waiting for room, it counts as a queued job, so shutdown waits for it. */
    if ((r == -EAGAIN || r == -ENOMEM) && coil__jobs_count(w->app)) {
        b->target = call->src;
        b->len = size;
        b->next = w->replies;
        w->replies = b;
        return 0;
    }
    coil__wfree(&w->wa, b);
    return r == -ESHUTDOWN ? 0 : r;
}

void coil__replies_retry(struct coil__worker *w)
{
    struct coil__backlog **pp = &w->replies;
    while (*pp) {
        struct coil__backlog *b = *pp;
        int r = coil_job_post(b->target, run_reply, b->msg, b->len);
        if (r == -EAGAIN || r == -ENOMEM) {
            pp = &b->next;
            continue;
        }
        *pp = b->next;
        atomic_fetch_sub_explicit(&w->app->jobs_outstanding, 1, memory_order_release);
        coil__wfree(&w->wa, b);
    }
}

void coil__replies_free(struct coil__worker *w)
{
    while (w->replies) {
        struct coil__backlog *b = w->replies;
        w->replies = b->next;
        coil__wfree(&w->wa, b);
    }
}

static void run_call(void *payload, size_t len, unsigned worker)
{
    struct call *call = payload;
    struct coil_reply r = {call, false};
    (void)len;
    (void)worker;
    call->fn(call->data, call->len, &r);
    if (!r.replied && send_reply(call, -ENODATA, NULL, 0) < 0)
        coil__log("worker %u: a job's reply was lost: out of memory", worker);
}

int coil_reply(struct coil_reply *reply, const void *data, size_t len)
{
    if (reply->replied)
        return -EALREADY;
    reply->replied = true;
    int err = send_reply(reply->call, 0, data, len);
    if (err == -ENOMEM && send_reply(reply->call, -ENOMEM, NULL, 0) == 0)
        return err; /* the caller learns it through on_reply */
    if (err < 0)
        coil__log("worker %u: a job's reply was lost: %s", coil__self->id, strerror(-err));
    return err;
}

int coil_job_call(struct coil_req *owner, unsigned target, coil_call_fn fn, const void *payload,
                  size_t len, coil_reply_fn on_reply, void *ud)
{
    struct coil__worker *w = coil__self;
    if (!w)
        return -EPERM;
    if (!fn || !on_reply || target >= w->app->nworkers)
        return -EINVAL;
    uint64_t id = coil__owner_id(w, owner);
    if (owner && !id)
        return -EINVAL; /* the owner must have deferred: it outlives its handler */
    size_t size = sizeof(struct call) + len;
    struct call *call = coil__walloc(&w->wa, size);
    if (!call)
        return -ENOMEM;
    call->fn = fn;
    call->on_reply = on_reply;
    call->ud = ud;
    call->owner = id;
    call->src = w->id;
    call->len = len;
    if (len)
        memcpy(call->data, payload, len);
    int err = coil_job_post(target, run_call, call, size);
    coil__wfree(&w->wa, call);
    return err;
}
