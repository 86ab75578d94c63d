/* SPDX-License-Identifier: MIT */
/*
 * internal.h: the engine's private structures, shared by its files and invisible to handlers.
 *
 * Ownership in one paragraph: struct coil_app is built by the main thread and read-only once the
 * workers start (configuration, routes, the channel matrix's layout). Each struct coil__worker is
 * owned by its thread: the ring, the listener, the connection slab, buffers, the timer wheel,
 * the arenas and the counters. The only memory two workers touch is a channel (one producer,
 * one consumer, indices on separate cache lines), a worker's wake flag, and counters read
 * relaxed by coil_stats_get. A connection lives in its worker's slab from accept until no
 * io_uring operation for it is in flight; completions carry (index, generation) so one that
 * arrives for a recycled slot is recognised and dropped.
 */
#ifndef COIL_INTERNAL_H
#define COIL_INTERNAL_H

#include <assert.h>
#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "bufpool.h"
#include "coil.h"
#include "http_parse.h"
#include "json.h"
#include "router.h"
#include "slab.h"
#include "timer.h"
#include "walloc.h"

#define COIL_CACHELINE 64

/* ---- configuration (config.c) ---- */

struct coil__option; /* an application option (coil_app_option) */

struct coil__config {
    char bind[64];      /* numeric IPv4 or IPv6 address */
    uint16_t port;      /* 0: pick a free one */
    unsigned workers;   /* threads, one per CPU */
    uint32_t max_conns; /* per worker */
    struct coil__http_limits lim;
    uint64_t header_timeout_ms; /* whole request head, from its first byte */
    uint64_t body_timeout_ms;   /* between two reads of a body */
    uint64_t idle_timeout_ms;   /* keep-alive wait for the next request */
    uint64_t write_timeout_ms;  /* a send making no progress */
    uint64_t drain_timeout_ms;  /* graceful shutdown, then force */
    uint64_t linger_ms;         /* after the last response, wait for the peer's FIN */
    uint32_t recv_buf_size;     /* bytes per provided buffer */
    uint32_t recv_buf_count;    /* provided buffers per worker (power of two) */
    uint32_t io_buf_size;       /* pooled connection in/out buffers */
    uint32_t max_pending_out;   /* queued response bytes that pause reading */
    uint32_t chan_capacity;     /* jobs per channel (power of two) */
};

int coil__config_parse(struct coil_app *app, int argc, char **argv);
void coil__options_free(struct coil_app *app);

/* ---- channels (chan.c) ---- */

struct coil__job {
    coil_job_fn fn;
    size_t len;
    unsigned src; /* worker that allocated it and frees it */
    _Alignas(16) char data[];
};

/* One producer (worker src), one consumer (worker dst). head: next slot the producer fills;
 * tail: next slot the consumer runs; reclaim: producer-private, next run job to free. */
struct coil__chan {
    _Alignas(COIL_CACHELINE) _Atomic uint32_t head;
    uint32_t reclaim;
    _Alignas(COIL_CACHELINE) _Atomic uint32_t tail;
    _Alignas(COIL_CACHELINE) struct coil__job **slots;
    uint32_t mask;
};

/* ---- connections (conn.c) ---- */

/* Progress through one request that did not arrive whole; offsets are from its first byte. */
struct coil__progress {
    uint32_t body_off;       /* head length once the head is complete; 0 before */
    uint8_t sent_100;        /* 100 Continue already queued for this request */
    uint8_t streaming;       /* a streaming route's body is being passed on as it arrives */
    uint64_t body_len;       /* Content-Length once known (0 for chunked, none, streaming) */
    uint64_t streamed;       /* body bytes passed to on_body so far */
    struct coil__chunked ck; /* chunked decoder state (in place over data + body_off) */
    _Alignas(16) unsigned char state[COIL_REQ_STATE_BYTES]; /* coil_req_state */
};

/* The bytes of a request not yet complete, copied out of the receive buffer. Connections
 * between requests hold none. While a streaming route's body arrives, only the head is held. */
struct coil__partial {
    uint32_t len;   /* bytes held */
    uint32_t cap;   /* bytes allocated for data */
    uint8_t pooled; /* from the worker's bufpool */
    struct coil__progress prog;
    _Alignas(16) char data[];
};

/* Response bytes queued for one send. */
struct coil__obuf {
    uint32_t len;  /* bytes written */
    uint32_t cap;  /* bytes allocated for data */
    uint32_t sent; /* bytes the kernel accepted */
    uint8_t pooled;
    _Alignas(16) char data[];
};

enum {
    CONN_RECV_ARMED = 1u << 0,  /* a multishot recv is in flight */
    CONN_SENDING = 1u << 1,     /* a send is in flight (at most one) */
    CONN_PAUSED = 1u << 2,      /* backpressure: not reading until output drains */
    CONN_CLOSE_AFTER = 1u << 3, /* close once the queued output is sent */
    CONN_EOF = 1u << 4,         /* the peer closed its side */
    CONN_LINGER = 1u << 5,      /* response sent, FIN sent; discarding input until EOF */
    CONN_CLOSING = 1u << 6,     /* cancelled; freed once nothing is in flight */
    CONN_FLUSH = 1u << 7,       /* on the worker's flush list */
    CONN_CANCEL_RECV = 1u << 8, /* a cancel for the recv was submitted */
};

struct coil_conn {
    int fd;
    uint32_t idx;     /* slab index */
    uint32_t gen;     /* slab generation */
    uint16_t flags;   /* CONN_* */
    uint8_t inflight; /* io_uring operations that will still complete */
    uint8_t pad;
    struct coil__timer timer; /* due at min(read_deadline, write_deadline) */
    uint64_t read_deadline;   /* ms: header, body, idle or linger deadline; 0 none */
    uint64_t write_deadline;  /* ms: while a send is in flight; 0 none */
    struct coil__partial *in; /* incomplete request, or NULL */
    struct coil__obuf *out;   /* being sent, or NULL */
    struct coil__obuf *pend;  /* queued behind out, or NULL */
};
/* An idle keep-alive connection costs this plus the kernel's socket: keep it small. */
static_assert(sizeof(struct coil_conn) <= 96, "struct coil_conn grew past 96 bytes");

/* ---- request and response (req.c) ---- */

struct coil__rhdr {
    const char *name;
    const char *value;
    uint32_t name_len;
    uint32_t value_len;
};

struct coil_req {
    struct coil__worker *w;
    struct coil__http_req *http;
    const struct coil__match *match;
    struct coil_str body;
    void *state; /* coil_req_state: the request's progress record */
};

struct coil_res {
    struct coil__worker *w;
    int status; /* 0 until set: 200 */
    uint32_t nhdrs;
    uint32_t cap_hdrs;
    struct coil__rhdr *hdrs; /* in the request arena */
    const char *body;
    size_t body_len;
    bool json_active;
    struct coil_json json;
};

void coil__req_setup(struct coil_req *req, struct coil_res *res, struct coil__worker *w,
                     struct coil__http_req *http, const struct coil__match *m,
                     struct coil_str body, void *state);
/* Finishes the handler's response (JSON body, errors): returns the final status. */
int coil__res_finish(struct coil_res *res, int handler_rc);

/* ---- workers (loop.c) ---- */

/* What a completion is for: the top byte of user_data. */
enum coil__op {
    OP_IGNORE = 0, /* cancels, MSG_RING failures: nothing to do */
    OP_ACCEPT,
    OP_RECV,
    OP_SEND,
    OP_WAKE,    /* MSG_RING from another worker: jobs are queued */
    OP_EVENTFD, /* eventfd read (MSG_RING fallback) */
};

#define UD(op, idx, gen) (((uint64_t)(op) << 56) | ((uint64_t)(idx) << 32) | (uint64_t)(gen))
#define UD_OP(ud) ((unsigned)((ud) >> 56))
#define UD_IDX(ud) ((uint32_t)(((ud) >> 32) & 0xffffff))
#define UD_GEN(ud) ((uint32_t)(ud))

struct coil__counters {
    _Alignas(COIL_CACHELINE) _Atomic uint64_t requests;
    _Atomic uint64_t connections;
    _Atomic uint64_t open;
    _Atomic uint64_t jobs_run;
    _Atomic uint64_t rejected;
};

enum coil__phase {
    PHASE_RUN,   /* serving */
    PHASE_DRAIN, /* stopped accepting; finishing open connections */
    PHASE_JOBS,  /* no connections left; running jobs until every worker is done */
    PHASE_EXIT,
};

struct coil__worker {
    unsigned id;
    int cpu; /* pinned to; -1 if not pinned */
    struct coil_app *app;
    struct io_uring ring;
    int listen_fd;
    int event_fd;           /* wake-up fallback where MSG_RING is missing; -1 otherwise */
    int start_err;          /* -errno from start-up; reported by the main thread */
    const char *start_what; /* what failed at start-up */
    enum coil__phase phase;
    bool accept_armed;
    bool accept_paused;      /* EMFILE/ENFILE: waiting before accepting again */
    bool accept_warned;      /* the pause was logged; cleared by a successful accept */
    bool jobs_due;           /* woken: run inbound jobs after this batch */
    uint64_t now_ms;         /* CLOCK_MONOTONIC, updated once per loop */
    uint64_t drain_deadline; /* ms */
    struct coil_walloc wa;
    struct coil_arena arena; /* per request; reset after each response */
    struct coil_slab conns;
    struct coil_bufpool bufs; /* io_buf_size buffers for partial input and output */
    struct coil__wheel wheel;
    struct coil__timer accept_timer;
    struct io_uring_buf_ring *br;
    char *br_mem; /* recv_buf_count * recv_buf_size bytes */
    size_t br_ring_bytes;
    uint32_t br_mask;
    uint32_t br_returned; /* buffers given back since the last ring advance */
    unsigned ring_flags;  /* IORING_SETUP_* the kernel accepted */
    bool ring_ready;
    bool heap_ready; /* wa was initialised */
    bool forced;     /* drain timeout passed: connections were aborted */
    uint32_t open;   /* connections open on this worker */
    uint64_t *flush; /* (index << 32 | generation) of connections with output */
    uint32_t nflush;
    uint32_t flush_cap;
    uint32_t jobs_unreclaimed;      /* jobs this worker posted whose memory is not yet freed */
    uint64_t event_val;             /* eventfd read target */
    struct coil__http_header *hdrs; /* max_headers entries, reused per request */
    uint64_t wake_targets;          /* bit per worker posted to in this batch (first 64) */
    bool wake_all;                  /* posted to a worker >= 64 */
    char date_line[48];             /* "Date: ...\r\n" */
    uint32_t date_len;
    int64_t date_sec;
    _Alignas(COIL_CACHELINE) _Atomic int wake_pending; /* set by producers, cleared by owner */
    struct coil__counters stats;
    pthread_t thread;
};

struct coil_app {
    struct coil__config cfg;
    struct coil__router *router;
    uint64_t body_cap;                  /* the largest body any route buffers (bytes) */
    uint64_t stream_cap;                /* the largest body any streaming route accepts */
    struct coil__http_limits parse_lim; /* cfg.lim with max_body_bytes = body_cap: the route
                                         * decides the rest */
    int argc;
    char **argv;
    struct coil__option *options;
    void (*on_start)(unsigned worker, void *ud);
    void (*on_stop)(unsigned worker, void *ud);
    void *hook_ud;
    unsigned nworkers;
    unsigned nthreads; /* worker threads created (joined at exit) */
    struct coil__worker **workers;
    struct coil__chan *chans; /* nworkers * nworkers, [src * n + dst] */
    int *listen_fds;
    int *cpus; /* CPUs this process may run on (ncpus) */
    unsigned ncpus;
    bool msg_ring;            /* IORING_OP_MSG_RING available */
    _Atomic int stopping;     /* 1 drain requested, 2 force */
    _Atomic int go;           /* start-up verdict: every worker started */
    _Atomic int abort_start;  /* start-up failed somewhere: workers exit at once */
    _Atomic unsigned started; /* workers that finished start-up (ok or not) */
    _Atomic unsigned serving; /* workers past their start hook, accepting */
    _Atomic unsigned done;    /* workers with no connections left */
    _Atomic unsigned exited;
    _Atomic uint64_t jobs_outstanding; /* posted and not yet run, over all workers */
};

extern struct coil_app *coil__app;                    /* the running app (one per process) */
extern _Thread_local struct coil__worker *coil__self; /* the calling worker, or NULL */

void *coil__worker_main(void *arg);
void coil__log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* conn.c */
void coil__conn_on_recv(struct coil__worker *w, struct coil_conn *c, const char *data, size_t n);
void coil__conn_flush(struct coil__worker *w, struct coil_conn *c);
void coil__conn_on_send(struct coil__worker *w, struct coil_conn *c, int res);
void coil__conn_on_eof(struct coil__worker *w, struct coil_conn *c);
void coil__conn_abort(struct coil__worker *w, struct coil_conn *c);
void coil__conn_closing_done(struct coil__worker *w, struct coil_conn *c);
void coil__conn_on_timer(struct coil__worker *w, struct coil_conn *c);
void coil__conn_drain(struct coil__worker *w, struct coil_conn *c);
void coil__conn_release_buffers(struct coil__worker *w, struct coil_conn *c);
void coil__conn_set_timer(struct coil__worker *w, struct coil_conn *c);
void coil__conn_resume(struct coil__worker *w, struct coil_conn *c);

/* loop.c: submission helpers used by conn.c */
void coil__arm_recv(struct coil__worker *w, struct coil_conn *c);
void coil__cancel_recv(struct coil__worker *w, struct coil_conn *c);
void coil__submit_send(struct coil__worker *w, struct coil_conn *c);
void coil__queue_flush(struct coil__worker *w, struct coil_conn *c);

/* chan.c */
int coil__chans_create(struct coil_app *app);
void coil__chans_destroy(struct coil_app *app);
unsigned coil__jobs_run(struct coil__worker *w); /* inbound; returns jobs run */
void coil__jobs_reclaim(struct coil__worker *w); /* outbound memory of run jobs */
void coil__jobs_wake(struct coil__worker *w);    /* wake targets posted to this batch */

#endif
