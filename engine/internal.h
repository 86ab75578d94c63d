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
#include <string.h>
#include <sys/socket.h>

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

struct coil__worker;
/* Arms a precise timer (timer.h) on the worker's heap: t->cb(t, w) runs once it is due. */
int coil__ptimer_arm(struct coil__worker *w, struct coil__ptimer *t, uint64_t due_ns);
void coil__ptimer_cancel(struct coil__worker *w, struct coil__ptimer *t); /* no-op if unarmed */
uint64_t coil__clock_ns(void); /* CLOCK_MONOTONIC in nanoseconds */

/* Writers of response heads and log lines: n bytes, or v in decimal, at p; the end. */
static inline char *coil__put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}
#define COIL_PUT_LIT(p, lit) coil__put((p), (lit), sizeof(lit) - 1)
static inline char *coil__put_u64(char *p, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    while (n)
        *p++ = tmp[--n];
    return p;
}

/* ---- configuration (config.c) ---- */

struct coil__option; /* an application option (coil_app_option) */
int coil__parse_duration_ms(const char *s, uint64_t *out); /* config.c's DUR syntax */
int coil__parse_count(const char *s, uint64_t *out);       /* decimal digits only */
int coil__parse_size(const char *s, uint64_t *out);        /* bytes, or with K, M, G */
/* An option of the form PREFIX=TARGET, PREFIX ending in '/' (several in its variable, separated
 * by spaces: --proxy, --static): add(app, PREFIX followed by '*', TARGET) for each. 0, or -1
 * after printing usage (or that the prefix is routed already) for the item that failed. */
int coil__prefix_option(struct coil_app *app, const char *value, const char *flag,
                        const char *usage,
                        int (*add)(struct coil_app *app, const char *pattern, const char *target));
/* An option without a value on the command line ("--no-metrics"): set gets "1", or what its
 * variable holds. */
int coil__app_flag(struct coil_app *app, const char *name, const char *env, const char *help,
                   int (*set)(const char *value, void *ud), void *ud);
int coil__parse_bool(const char *s); /* 1/true/yes/on: 1; 0/false/no/off: 0; else -1 */

struct coil__config {
    char bind[64];      /* numeric IPv4 or IPv6 address */
    uint16_t port;      /* 0: pick a free one */
    unsigned workers;   /* threads, one per CPU */
    uint32_t max_conns; /* per worker */
    struct coil__http_limits lim;
    uint64_t header_timeout_ms;        /* whole request head, from its first byte */
    uint64_t body_timeout_ms;          /* between two reads of a body */
    uint64_t idle_timeout_ms;          /* keep-alive wait for the next request */
    uint64_t write_timeout_ms;         /* a send making no progress */
    uint64_t drain_timeout_ms;         /* graceful shutdown, then force */
    uint64_t handler_timeout_ms;       /* a deferred response not finished by then: 504 */
    uint64_t proxy_connect_timeout_ms; /* --proxy upstreams: connect */
    uint64_t proxy_read_timeout_ms;    /* --proxy upstreams: response head, body reads */
    uint64_t linger_ms;                /* after the last response, wait for the peer's FIN */
    uint32_t recv_buf_size;            /* bytes per provided buffer */
    uint32_t recv_buf_count;           /* provided buffers per worker (power of two) */
    uint32_t io_buf_size;              /* pooled connection in/out buffers */
    uint32_t max_pending_out;          /* queued response bytes that pause reading */
    uint32_t chan_capacity;            /* jobs per channel (power of two) */
};

void coil__config_defaults(struct coil__config *c); /* the documented defaults */
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

/* ---- connections: the transport (tcp.c) ---- */

/* Progress through one request that did not arrive whole; offsets are from its first byte. */
struct coil__progress {
    uint32_t body_off;       /* head length once the head is complete; 0 before */
    uint8_t sent_100;        /* 100 Continue already queued for this request */
    uint8_t streaming;       /* a streaming route's body is being passed on as it arrives */
    uint64_t body_len;       /* Content-Length once known (0 for chunked, none, streaming) */
    uint64_t streamed;       /* body bytes passed to on_body so far */
    uint64_t wire;           /* body bytes as received (chunk framing included) so far */
    struct coil__chunked ck; /* chunked decoder state (in place over data + body_off) */
    _Alignas(16) unsigned char state[COIL_REQ_STATE_BYTES]; /* coil_req_state */
};

/* The bytes of requests not yet handled, copied out of the receive buffer: an incomplete
 * request, or requests held behind a deferred one. Connections between requests hold none.
 * While a streaming route's body arrives, only the head is held. */
struct coil__partial {
    uint32_t len;   /* bytes held */
    uint32_t cap;   /* bytes allocated for data */
    uint8_t pooled; /* from the worker's bufpool */
    struct coil__progress prog;
    _Alignas(16) char data[];
};

/* Output bytes queued for one send. Sizes are size_t: a body may pass 4 GiB. */
struct coil__obuf {
    size_t len;  /* bytes written */
    size_t cap;  /* bytes allocated for data */
    size_t sent; /* bytes the kernel accepted */
    uint8_t pooled;
    uint8_t rtype; /* kernel TLS: a record of this content type (tls.c); 0: plain bytes */
    bool proto;    /* carries the protocol's bytes (not only TLS's own records) */
    _Alignas(16) char data[];
};

enum {
    CONN_RECV_ARMED = 1u << 0,  /* a multishot recv is in flight */
    CONN_SENDING = 1u << 1,     /* a send is in flight (at most one) */
    CONN_PAUSED = 1u << 2,      /* not reading: output backpressure or input held */
    CONN_CLOSE_AFTER = 1u << 3, /* close once the queued output is sent */
    CONN_EOF = 1u << 4,         /* the peer closed its side */
    CONN_LINGER = 1u << 5,      /* response sent, FIN sent; discarding input until EOF */
    CONN_CLOSING = 1u << 6,     /* cancelled; freed once nothing is in flight */
    CONN_FLUSH = 1u << 7,       /* on the worker's flush list */
    CONN_CANCEL_RECV = 1u << 8, /* a cancel for the recv was submitted */
    CONN_RESUME = 1u << 9,      /* the protocol asked to be resumed at the end of the batch */
    CONN_BUSY = 1u << 10,       /* the protocol is handling input: do not re-enter it */
    CONN_CONNECTING = 1u << 11, /* outbound: the connect is in flight */
    CONN_OUTBOUND = 1u << 12,   /* we connected (an upstream), not accepted */
    CONN_TLS = 1u << 13,        /* TLS runs over the socket (tls.c keeps its state by idx) */
    CONN_FRESH = 1u << 14,      /* plain, nothing read yet: HTTP/2's preface may come */
};

struct coil_conn;

/*
 * What a protocol on a connection implements (HTTP/1.1 today; HTTP/2 and TLS-wrapped codecs
 * later). The transport calls these on the connection's worker, never re-entrantly for one
 * connection from inside on_data. Each may queue output (coil__conn_reserve), close the
 * connection (coil__conn_abort, coil__conn_close_after) or pause reading.
 */
struct coil__proto {
    /* n bytes arrived; data is valid only during the call. */
    void (*on_data)(struct coil__worker *w, struct coil_conn *c, const char *data, size_t n);
    /* The peer shut its side; the transport has set CONN_EOF. */
    void (*on_eof)(struct coil__worker *w, struct coil_conn *c);
    /* The read deadline (c->read_deadline) passed while reading was not paused. */
    void (*on_read_timeout)(struct coil__worker *w, struct coil_conn *c);
    /* A send completed in full; queued output (if any) has just been submitted behind it. */
    void (*on_sent)(struct coil__worker *w, struct coil_conn *c);
    /* Scheduled with coil__conn_schedule: runs at the end of the batch, before the flush. */
    void (*on_resume)(struct coil__worker *w, struct coil_conn *c);
    /* The connection is being aborted: drop everything that depends on it. */
    void (*on_abort)(struct coil__worker *w, struct coil_conn *c);
    /* Graceful shutdown began. */
    void (*on_drain)(struct coil__worker *w, struct coil_conn *c);
    /* Outbound connections: the connect completed (res 0, reading is armed) or failed (res < 0;
     * the transport aborts the connection when this returns). */
    void (*on_connect)(struct coil__worker *w, struct coil_conn *c, int res);
};

struct coil_conn {
    int fd;
    uint32_t idx;     /* slab index */
    uint32_t gen;     /* slab generation */
    uint16_t flags;   /* CONN_* */
    uint8_t inflight; /* io_uring operations that will still complete */
    uint8_t pad;
    struct coil__timer timer;        /* due at min(read_deadline, write_deadline) */
    uint64_t read_deadline;          /* ms: header, body, idle or linger deadline; 0 none */
    uint64_t write_deadline;         /* ms: while a send is in flight; 0 none */
    const struct coil__proto *proto; /* the codec speaking on this connection */
    struct coil__partial *in;        /* input not yet handled, or NULL */
    struct coil__obuf *out;          /* being sent, or NULL */
    struct coil__obuf *pend;         /* queued behind out, or NULL */
    union {
        struct coil__rq *rq;    /* HTTP/1.1: the request answered out of line, or NULL */
        struct coil__h2 *h2;    /* HTTP/2: the session (http2.c), once the preface came */
        struct coil__uconn *uc; /* outbound: the upstream client's state (client.c) */
    };
};
/* An idle keep-alive connection costs this plus the kernel's socket: keep it small. */
static_assert(sizeof(struct coil_conn) <= 104, "struct coil_conn grew past 104 bytes");

void coil__tcp_init(void); /* registers the listener and connection completions */
int coil__tcp_start(struct coil__worker *w);
void coil__tcp_stop(struct coil__worker *w);
/* Room for n more output bytes at the end of c->pend; NULL on OOM. Commit: c->pend->len += k. */
char *coil__conn_reserve(struct coil__worker *w, struct coil_conn *c, size_t n);
/* The same for any output buffer (*bp NULL: a new one), from the worker's pool. */
char *coil__obuf_reserve(struct coil__worker *w, struct coil__obuf **bp, size_t n);
void coil__conn_queue_flush(struct coil__worker *w, struct coil_conn *c);
void coil__conn_schedule(struct coil__worker *w, struct coil_conn *c); /* proto->on_resume */
void coil__conn_abort(struct coil__worker *w, struct coil_conn *c);
/* Keeps c's slot while code that may abort it runs; release frees it if it was aborted and
 * nothing else is in flight, and returns whether c is still open. */
void coil__conn_hold(struct coil_conn *c);
bool coil__conn_release(struct coil__worker *w, struct coil_conn *c);
void coil__conn_close_after(struct coil__worker *w, struct coil_conn *c);
/* Closes a connection with nothing in flight: at once, or over TLS after a close_notify. */
void coil__conn_close_idle(struct coil__worker *w, struct coil_conn *c);
void coil__conn_pause(struct coil__worker *w, struct coil_conn *c);
void coil__conn_unpause(struct coil__worker *w, struct coil_conn *c);
void coil__conn_set_timer(struct coil__worker *w, struct coil_conn *c);
size_t coil__conn_queued(const struct coil_conn *c); /* output bytes not yet sent */
/* The peer's address as text ("192.0.2.7", "2001:db8::1"): asked of the kernel once per
 * connection and kept beside the slab for the next request. Its length, or 0. */
size_t coil__conn_peer(struct coil__worker *w, struct coil_conn *c, const char **out);
/* Buffers shared by the transport and the codec: the worker's pool, or the heap when big. */
void *coil__buf_grow(struct coil__worker *w, void *old, size_t hdr, size_t used, size_t need,
                     uint8_t *pooled, size_t *cap);
void coil__buf_free(struct coil__worker *w, void *p, uint8_t pooled);
/* Appends n bytes to a heap buffer that grows by doubling (from walloc). 0 or -ENOMEM. */
int coil__bytes_append(struct coil__worker *w, char **buf, size_t *len, size_t *cap,
                       const void *data, size_t n);
void coil__conn_partial_free(struct coil__worker *w, struct coil_conn *c);
/* Opens an outbound connection to sa (which must stay valid until the connect completes) and
 * returns it, CONN_CONNECTING; proto->on_connect tells how it went. NULL with -errno in *err:
 * no socket, no slot (--max-conns), no submission entry. */
struct coil_conn *coil__tcp_connect(struct coil__worker *w, const struct sockaddr *sa,
                                    socklen_t len, const struct coil__proto *proto,
                                    struct coil__uconn *uc, int *err);

/* ---- handles given to handlers ---- */

/*
 * A handle on a worker's slab object, for coil_defer, coil_timer and coil_watch: the worker's
 * index + 1 (11 bits), the slot (21 bits) and its generation (32 bits). The worker is part of
 * it so a handle used on another worker names nothing there instead of an unrelated object.
 */
#define COIL_HANDLE_SLOTS (1u << 21)
static inline uint64_t coil__handle(unsigned worker, uint32_t idx, uint32_t gen)
{
    return ((uint64_t)(worker + 1) << 53) | ((uint64_t)idx << 32) | gen;
}
/* The slot and generation of h if it belongs to worker; false otherwise. */
static inline bool coil__handle_on(uint64_t h, unsigned worker, uint32_t *idx, uint32_t *gen)
{
    if ((h >> 53) != (uint64_t)worker + 1)
        return false;
    *idx = (uint32_t)(h >> 32) & (COIL_HANDLE_SLOTS - 1);
    *gen = (uint32_t)h;
    return true;
}

/* ---- HTTP/1.1 (http1.c) ---- */

extern const struct coil__proto coil__http1;
const char *coil__reason(int status);
/* Whether a response with this status has a body (not 1xx, 204 or 304): both codecs ask. */
static inline bool coil__status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

/* ---- HTTP/2 (http2.c; http2_none.c without libnghttp2) ---- */

extern const struct coil__proto coil__http2;
struct coil__h2s; /* a stream */
int coil__h2_setup(struct coil_app *app);
int coil__h2_install(struct coil_app *app);
void coil__h2_free(struct coil_app *app);
bool coil__h2_on(const struct coil_app *app);   /* h2 by ALPN, h2c on the plain port */
int coil__h2c_port(const struct coil_app *app); /* --h2c-port, or -1 */
void coil__h2c_set_port(struct coil_app *app, uint16_t port);
/* Whether n bytes at the start of a plain connection are HTTP/2's preface: 1 whole, -1 a prefix
 * of it so far, 0 not (or HTTP/2 is off). */
int coil__h2_preface(struct coil__worker *w, const char *data, size_t n);
/* The request layer's answers on a stream (as coil__http1_* on a connection). */
int coil__h2_respond(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq, int status);
void coil__h2_finish(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq, int status);
int coil__h2_stream_head(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq,
                         int status);
int coil__h2_stream_piece(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq,
                          const void *data, size_t len);
void coil__h2_stream_end(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq);
/* Ends rq's stream with RST_STREAM (a response that cannot end correctly): the stream's loss,
 * not the connection's. */
void coil__h2_reset(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq);
size_t coil__h2_queued(const struct coil__rq *rq); /* response bytes waiting: stream + conn */
void coil__h2_want_writable(struct coil__rq *rq);  /* before rq->want_writable is set */
/* The engine's short answer (503: no request slot) on a stream not handed to a handler. */
void coil__h2_refuse(struct coil__worker *w, struct coil_conn *c, struct coil__h2s *st, int status);
#define COIL_H2_ABUSE_KINDS 9
extern const char *const coil__h2_abuse_kinds[COIL_H2_ABUSE_KINDS];

/* ---- request and response (req.c, request.c) ---- */

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
    void *state;              /* coil_req_state: the request's progress record */
    struct coil_arena *arena; /* the worker's (sync) or the request's own (deferred) */
    struct coil__rq *rq;
};

struct coil_res {
    struct coil__worker *w;
    struct coil_arena *arena; /* as req's */
    struct coil__rq *rq;      /* NULL: a streaming route's on_body, which cannot answer */
    int status;               /* 0 until set: 200 */
    uint32_t nhdrs;
    uint32_t cap_hdrs;
    struct coil__rhdr *hdrs; /* in the request arena */
    const char *body;
    size_t body_len;
    bool json_active;
    struct coil_json json;
};

/* A request whose response may outlive its handler. Lives in the worker's request slab; the
 * worker keeps one spare for the next request, reused while requests answer at once, so a
 * request that does not defer costs no slab call and no heap allocation. The fields from
 * `deferred` down are set only when it defers. */
struct coil__rq {
    struct coil_req req;
    struct coil_res res;
    uint32_t idx, gen;      /* slab handle: coil_defer */
    struct coil_conn *conn; /* the connection it arrived on */
    struct coil__h2s *h2s;  /* HTTP/2: its stream, until the response is queued whole */
    const char *buf;        /* its bytes, until it defers: the head at buf, head_len long */
    size_t head_len;
    bool head;          /* HEAD: no body bytes */
    bool keep;          /* the connection stays open after the response */
    bool ka10;          /* HTTP/1.0 keep-alive: say so */
    bool http11;        /* HTTP/1.1 client (chunked allowed) */
    bool count;         /* counts in coil_stats.requests (engine rejects do not) */
    bool in_handler;    /* its handler is on the stack */
    bool deferred;      /* coil_res_defer succeeded */
    bool finished;      /* coil_res_finish ran while the handler was on the stack */
    bool aborted;       /* on_abort ran or is running: the handle is dead */
    bool streaming;     /* coil_res_stream sent the head */
    bool chunked;       /* streaming with chunked framing */
    bool no_body;       /* streaming a HEAD or body-less status: pieces are dropped */
    bool want_writable; /* coil_res_write said -EAGAIN (the handler timeout waits meanwhile) */
    bool waiting;       /* counted in coil_stats.waiting */
    uint64_t length;    /* coil_res_length + 1; 0: none */
    uint64_t written;   /* body bytes streamed */
    coil_abort_fn on_abort;
    void *abort_ud;
    void (*on_writable)(void *ud);
    void *writable_ud;
    struct coil_arena arena;     /* deferred: owns its request bytes and allocations */
    struct coil__timer deadline; /* --handler-timeout */
    struct coil__utimer *timers; /* owner-bound timers (a list through owner_next) */
    struct coil__fetch *fetches; /* owner-bound upstream fetches (client.c) */
    /* An early route's body, read after the handler ran (coil_req_read; http1.c frames it). */
    uint8_t body_mode;            /* BODY_NONE, BODY_LENGTH, BODY_CHUNKED */
    bool body_open;               /* body bytes are still to come from the client */
    bool body_paused;             /* the reader left a piece: reading stopped */
    bool body_resume;             /* coil_req_resume or coil_req_read asked to go on */
    bool body_end_due;            /* the body has ended; the reader's end call is due */
    uint64_t body_left;           /* BODY_LENGTH: bytes still to come */
    uint64_t body_read;           /* decoded bytes given so far */
    uint64_t body_max;            /* the route's limit */
    struct coil__chunked body_ck; /* BODY_CHUNKED decoder */
    coil_piece_fn on_piece;       /* the reader, once set */
    void *piece_ud;
    char *body_piece; /* the decoded piece the reader left */
    size_t body_piece_len;
    char *body_raw; /* bytes received while paused, undecoded */
    size_t body_raw_len, body_raw_cap;
    _Alignas(16) unsigned char state[COIL_REQ_STATE_BYTES]; /* coil_req_state once deferred */
    /* Middleware (mw.c), set for every request. */
    const struct coil__chain *chain;
    uint32_t mw_next;      /* the next before step, for coil_mw_next */
    bool mw_wait;          /* a before step deferred: coil_mw_next goes on */
    bool mw_resumed;       /* running from coil_mw_next: the handler may defer again */
    bool redeferred;       /* coil_res_defer was called while resumed */
    bool cut;              /* the response ends short (a filter failed, a stream short of its
                            * length): the connection closes after it */
    int route_status;      /* 404 or 405 when no route matched; 0: the route's handler */
    bool after_ran;        /* the after steps have seen the response */
    bool in_filter;        /* the filter is on the stack: coil_res_emit may be called */
    int sent;              /* the status whose head was queued; 0: none yet */
    uint64_t start_ns;     /* the request's head was taken in (the batch's clock) */
    uint64_t bytes_in;     /* head and body received */
    uint64_t bytes_out;    /* response bytes queued */
    coil_filter_fn filter; /* coil_res_filter */
    void *filter_ud;
    struct coil__rqx *x; /* ID, trace, values: made on first use, in the request arena */
};

void coil__req_setup(struct coil_req *req, struct coil_res *res, struct coil__worker *w,
                     struct coil__http_req *http, const struct coil__match *m, struct coil_str body,
                     void *state);
/* Finishes the handler's response (JSON body, errors, no 1xx): returns the final status. */
int coil__res_finish(struct coil_res *res, int handler_rc);
/* Replaces the response with the engine's short text answer for status. */
int coil__res_error(struct coil_res *res, int status);

/* What the codec hands the request layer: one parsed request whose bytes are at buf. */
struct coil__dispatch {
    struct coil__http_req *http;
    const struct coil__match *match;
    int route_status; /* 0: match->route is the route; 404 or 405: none */
    struct coil_str body;
    void *state;
    const char *buf; /* the request's first byte */
    size_t head_len; /* bytes of its head at buf */
    bool head, keep, ka10, http11;
    bool early;        /* an early route: its handler runs before the body is read */
    uint8_t body_mode; /* that body: BODY_* */
    uint64_t body_len; /* its Content-Length */
    uint64_t body_max;
    uint64_t wire; /* bytes of the request as received so far (head, body and its framing) */
    struct coil__h2s *h2s; /* HTTP/2: the stream it came on */
};
enum { BODY_NONE, BODY_LENGTH, BODY_CHUNKED };
int coil__request_start(struct coil__worker *w);
void coil__request_stop(struct coil__worker *w);
/* Runs the route's handler (or the engine's 404/405). Returns the request if its response was
 * deferred (the codec holds what follows until it is done), or NULL once it is answered. */
struct coil__rq *coil__request_run(struct coil__worker *w, struct coil_conn *c,
                                   const struct coil__dispatch *d);
/* A streaming route's on_body with one piece: 0 or the status to answer. */
int coil__request_body(struct coil__worker *w, struct coil__http_req *h,
                       const struct coil__match *m, void *state, const void *data, size_t n);
/* Queues the engine's answer for a request that cannot be handled (400s, 408, 413...). */
int coil__request_reject(struct coil__worker *w, struct coil_conn *c, int status);
/* rq dies: on_abort runs once; with a status (504), the client is answered if it still can be.
 * The codec has already detached rq from its connection when the connection goes away. */
void coil__request_abort(struct coil__worker *w, struct coil__rq *rq, int status);
/* An early route's body: the reader gets a piece (0 taken, COIL_BODY_PAUSE left), or the end
 * (len 0). The handler deadline restarts with each. */
int coil__request_piece(struct coil__worker *w, struct coil__rq *rq, const void *data, size_t len);
/* The connection drained enough output for rq's stream: its on_writable runs. */
void coil__request_writable(struct coil__worker *w, struct coil__rq *rq);
/* The live deferred request of a coil_defer id on the calling worker, or NULL. */
struct coil__rq *coil__rq_at(struct coil__worker *w, uint64_t id);
/* The coil_defer id of owner if it has deferred and is live (what an owner-bound callback keeps
 * and checks with coil__rq_at before it runs), else 0. */
uint64_t coil__owner_id(struct coil__worker *w, struct coil_req *owner);
/* Whether a callback kept with owner id (0: none) may still run. */
static inline bool coil__owner_alive(struct coil__worker *w, uint64_t id)
{
    return !id || coil__rq_at(w, id) != NULL;
}
/* One timer kept at the earliest deadline asked for (wait.c): what the database and Redis
 * clients sweep their time-outs with. fn must clear at (coil__deadline_fired) first. */
struct coil__deadline {
    struct coil_timer t;
    uint64_t at; /* ms on the worker's clock; 0: not armed */
};
void coil__deadline_arm(struct coil__deadline *d, uint64_t at_ms, void (*fn)(void *), void *ud);
void coil__deadline_cancel(struct coil__deadline *d);
/* Reconnect backoff: the delay to wait now (*cur plus up to a quarter of it, jittered by *rnd),
 * doubling *cur from min up to max for the next time. */
static inline uint32_t coil__backoff(uint32_t *cur, uint32_t *rnd, uint32_t min, uint32_t max)
{
    uint32_t b = *cur ? *cur : min;
    *rnd = *rnd * 1103515245u + 12345u;
    *cur = b > max / 2 ? max : b * 2;
    return b + (*rnd >> 8) % (b / 4 + 1);
}

/* What the request layer needs from its codec to answer (HTTP/1.1 now; HTTP/2 streams later).
 * respond: a whole response for the request being dispatched. finish: a deferred one. */
int coil__http1_respond(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq,
                        int status);
void coil__http1_finish(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq,
                        int status);
int coil__http1_stream_head(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq,
                            int status);
int coil__http1_stream_piece(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq,
                             const void *data, size_t len);
void coil__http1_stream_end(struct coil__worker *w, struct coil_conn *c, struct coil__rq *rq);

/* ---- handler timers and fd watches (wait.c) ---- */

struct coil__utimer {
    struct coil__ptimer t;
    uint32_t idx, gen;
    void (*fn)(void *ud);
    void *ud;
    struct coil__rq *owner; /* NULL: the worker's */
    struct coil__utimer *owner_prev, *owner_next;
};
void coil__wait_init(void);
int coil__wait_start(struct coil__worker *w);
void coil__wait_stop(struct coil__worker *w);
/* Cancels every timer owned by rq (it is finished or aborted). */
void coil__timers_drop_owner(struct coil__worker *w, struct coil__rq *rq);

/* ---- the upstream client (client.c) and the proxy (proxy.c) ---- */

struct coil__fetch;
struct coil__uconn;
struct coil__client;
void coil__client_init(void);
int coil__client_start(struct coil__worker *w);
void coil__client_stop(struct coil__worker *w);
/* Cancels every fetch owned by rq (it is finished or aborted). */
void coil__fetches_drop_owner(struct coil__worker *w, struct coil__rq *rq);
void coil__upstreams_free(struct coil_app *app);
const char *coil__upstream_base(const struct coil_upstream *up, size_t *len);
int coil__proxy_option(struct coil_app *app); /* --proxy */
void coil__proxies_free(struct coil_app *app);
/* Creates the proxy routes' upstreams once the options are known: 0, or -1 (logged). */
int coil__proxies_apply(struct coil_app *app);

/* ---- middleware (mw.c) and the built-in middleware (coil_mw.h) ---- */

struct coil__mwlist {
    struct coil__mwlist *next;
    struct coil_mw mw;
};
/* What runs around one route's requests (or the unmatched ones): the engine's built-ins, the
 * app's coil_app_use, then the route's coil_route_use. Built once in coil_app_run. */
struct coil__chain {
    uint32_t n;
    bool before, after, done; /* any step of the kind */
    struct coil_mw mw[];
};
int coil__builtins_setup(struct coil_app *app);   /* coil_app_create: every module's options */
int coil__builtins_install(struct coil_app *app); /* coil_app_run: 0 or -1 (printed) */
/* Adds a built-in middleware (from a module's install): outside every coil_app_use one. */
int coil__use_builtin(struct coil_app *app, const struct coil_mw *mw);
/* Builds every chain (coil_app_run, after the installs): 0 or -ENOMEM. */
int coil__chains_build(struct coil_app *app);
void coil__chains_free(struct coil_app *app);
struct coil__rq;
/* The before steps from index from: COIL_MW_NEXT (run the handler), COIL_MW_DONE (answered or
 * deferred by a step), or a negative errno (answer 500/503). */
int coil__mw_before(struct coil__rq *rq, uint32_t from);
void coil__mw_after(struct coil__rq *rq); /* once per request; before the head is written */
void coil__mw_done(struct coil__worker *w, struct coil__rq *rq, bool complete);
void coil__mw_worker_seed(struct coil__worker *w);
/* "00-<trace id>-<span id>-<flags>" for req's outbound calls; its length (55), or 0. */
size_t coil__traceparent(struct coil_req *req, char out[56]);
/* A log line at debug level: written only with --log-level debug. */
void coil__debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
bool coil__debugging(void);

/*
 * The built-in modules. setup (coil_app_create) adds the module's options with
 * coil_app_option; install (coil_app_run, once the options are parsed, in the order of
 * coil_mw.h) adds its middleware with coil__use_builtin when configured, and returns 0, or -1
 * after printing why (coil_app_run then exits 2).
 */
int coil__metrics_setup(struct coil_app *app);
int coil__metrics_install(struct coil_app *app);
int coil__alog_setup(struct coil_app *app);
int coil__alog_install(struct coil_app *app);
int coil__reqid_setup(struct coil_app *app);
int coil__reqid_install(struct coil_app *app);
int coil__cors_setup(struct coil_app *app);
int coil__cors_install(struct coil_app *app);
int coil__ratelimit_setup(struct coil_app *app);
int coil__ratelimit_install(struct coil_app *app);
int coil__auth_setup(struct coil_app *app);
int coil__auth_install(struct coil_app *app);
int coil__compress_setup(struct coil_app *app);
int coil__compress_install(struct coil_app *app);

/* TLS (tls.c) */
int coil__tls_setup(struct coil_app *app);
int coil__tls_install(struct coil_app *app);
void coil__tls_free(struct coil_app *app);
int coil__tls_port(const struct coil_app *app); /* the TLS listener's port, or -1: none */
void coil__tls_set_port(struct coil_app *app, uint16_t port); /* the one the kernel picked */
int coil__tls_port2(const struct coil_app *app);              /* --tls-port N,M: M, or -1 */
void coil__tls_set_port2(struct coil_app *app, uint16_t port);
bool coil__tls_no_http(const struct coil_app *app); /* --no-http */
int coil__tls_start(struct coil__worker *w);
void coil__tls_stop(struct coil__worker *w);
/* A connection accepted on the TLS listener: its state, and CONN_TLS. 0 or -ENOMEM. */
int coil__tls_accept(struct coil__worker *w, struct coil_conn *c);
void coil__tls_close(struct coil__worker *w, struct coil_conn *c); /* frees its state */
bool coil__tls_handshaking(const struct coil__worker *w, const struct coil_conn *c);
/* Ciphertext received: decrypted and given to c->proto->on_data. */
void coil__tls_input(struct coil__worker *w, struct coil_conn *c, const char *data, size_t n);
void coil__tls_eof(struct coil__worker *w, struct coil_conn *c); /* the socket's EOF */
/* What to send next: c->pend sealed into records (and a close_notify once the connection closes
 * after its output), or NULL with nothing to send; (*out)->proto says whether any of it is the
 * protocol's. -1: the connection must be aborted. */
int coil__tls_take(struct coil__worker *w, struct coil_conn *c, struct coil__obuf **out);
/* Prepares sqe to send n bytes at data as one TLS record of content type rtype (kernel TLS). */
void coil__tls_prep_record(struct coil__worker *w, struct coil_conn *c, struct io_uring_sqe *sqe,
                           const char *data, size_t n, uint8_t rtype);
/* Static files (static.c) */
int coil__static_setup(struct coil_app *app);
int coil__static_install(struct coil_app *app); /* opens each route's root */
void coil__static_free(struct coil_app *app);
bool coil__static_on(const struct coil_app *app); /* any static route */
void coil__static_init(void);
int coil__static_start(struct coil__worker *w);
void coil__static_stop(struct coil__worker *w);
/* The file path named by a static route's wildcard (raw bytes, as sent): percent-decoded,
 * checked segment by segment, repeated slashes merged, written to out (NUL-terminated, at most
 * cap - 1 bytes) without leading or trailing slash. 0 (a file), COIL__STATIC_DIR (it ends in
 * '/' or is empty: a directory), 400 (a malformed escape) or 404 (refused: NUL or a control
 * byte, a "." or ".." segment, a hidden name unless hidden, a segment over 255 bytes, too long). */
#define COIL__STATIC_PATH_MAX 4096
#define COIL__STATIC_DIR 1
int coil__static_path(const char *raw, size_t n, bool hidden, char *out, size_t cap, size_t *len);
/* Text built for a scrape (metrics.c): coil__mout_printf appends; oom is set on failure. */
struct coil__mout {
    char *buf;
    size_t len, cap;
    bool oom;
};
void coil__mout_printf(struct coil__mout *o, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Adds lines to every scrape (a module's pools): fn runs on the scraping worker and must only
 * read (relaxed) what other workers write. Call from an install or a run hook. */
int coil__metrics_collector(struct coil_app *app, void (*fn)(struct coil__mout *o, void *ud),
                            void *ud);
const char *coil__metrics_path(const struct coil_app *app); /* NULL when off */
void coil__metrics_alog_dropped(struct coil__worker *w, uint64_t n);
/* Per-worker state of metrics.c and alog.c (coil__modules_start/stop), and the app's. */
int coil__metrics_start(struct coil__worker *w);
void coil__metrics_stop(struct coil__worker *w);
void coil__metrics_free(struct coil_app *app);
void coil__alog_init(void); /* registers the access log's write completions */
int coil__alog_start(struct coil__worker *w);
void coil__alog_stop(struct coil__worker *w);
bool coil__alog_busy(const struct coil__worker *w); /* a write is in flight */
void coil__alog_free(struct coil_app *app);

/* ---- workers (loop.c) ---- */

/* What a completion is for: the top byte of user_data. Each kind registers its handler with
 * coil__loop_handle before the workers start; the loop knows none of them. */
enum coil__op {
    OP_IGNORE = 0, /* cancels, MSG_RING failures: nothing to do */
    OP_ACCEPT,
    OP_RECV,
    OP_SEND,
    OP_WAKE,    /* MSG_RING from another worker: jobs are queued */
    OP_EVENTFD, /* eventfd read (MSG_RING fallback) */
    OP_WATCH,   /* a handler's fd readiness (wait.c) */
    OP_UNWATCH, /* the removal of one */
    OP_CONNECT, /* an outbound connection (tcp.c) */
    OP_ALOG,    /* an access log write (alog.c) */
    OP_FILE,    /* a static file's open, statx or read into the cache (static.c) */
    OP_FREAD,   /* a read of a static file's download (static.c) */
    OP_MAX,
};
typedef void (*coil__cqe_fn)(struct coil__worker *w, const struct io_uring_cqe *cqe);
void coil__loop_handle(enum coil__op op, coil__cqe_fn fn);

/* Loop events other modules hook (coil__loop_on) before the workers start. */
enum coil__event {
    EV_SERVE, /* the worker starts serving (after the application's start hook) */
    EV_BATCH, /* after completions, timers and jobs: resume and flush what was queued */
    EV_DRAIN, /* graceful shutdown began on this worker */
    EV_FORCE, /* the drain deadline passed (or a second signal): close everything */
    EV_MAX,
};
void coil__loop_on(enum coil__event ev, void (*fn)(struct coil__worker *w));
/* events.c: what the loop (or a test harness standing in for it) calls. */
void coil__loop_run(struct coil__worker *w, enum coil__event ev); /* an event's hooks */
void coil__loop_dispatch(struct coil__worker *w, const struct io_uring_cqe *cqe);
bool coil__loop_handles(enum coil__op op);      /* a handler is registered */
bool coil__loop_hooked(enum coil__event ev);    /* a hook is registered */
void coil__timers_fire(struct coil__worker *w); /* every timer due at w->now_ms / now_ns */
/* A submission queue entry, or NULL after a bounded number of submits failed to free one:
 * the caller fails its operation. */
struct io_uring_sqe *coil__sqe(struct coil__worker *w);
void coil__loop_init(void);                                 /* registers the wake-ups */
void coil__give_back(struct coil__worker *w, unsigned bid); /* a provided receive buffer */
/* app.c: every module's per-worker state, after the ring exists / before the heap goes. */
int coil__modules_start(struct coil__worker *w);
void coil__modules_stop(struct coil__worker *w);
/* Arms t on the worker's wheel (10 ms ticks, for timeouts); t->cb(t, w) runs when it is due. */
void coil__timer_at(struct coil__worker *w, struct coil__timer *t, uint64_t deadline_ms);

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
    _Atomic uint64_t deferred;
    _Atomic uint64_t waiting;
    _Atomic uint64_t aborted;
    _Atomic uint64_t refused; /* connections closed at accept: --max-conns */
    /* Time-outs by kind (metrics.c): a request head or body too slow (408), an idle keep-alive
     * connection, a send making no progress, a deferred response (504), the drain deadline. */
    _Atomic uint64_t t_header, t_body, t_idle, t_write, t_handler, t_drain;
    /* Gauges of the pools on this worker (metrics.c): upstream connections open, fetches on
     * them, fetches waiting for one (client.c); database connections open, queries sent and
     * not answered, queries waiting for room (pg.c). */
    _Atomic uint64_t up_conns, up_busy, up_queued, db_conns, db_busy, db_queued;
    /* TLS (tls.c): handshakes completed by version, of which resumed; handshakes failed;
     * handshakes not finished by the header timeout. */
    _Atomic uint64_t tls12, tls13, tls_resumed, tls_failed, t_tls;
    _Atomic uint64_t tls_ktx; /* handshakes whose sending went to the kernel's TLS */
    /* Static files (static.c): files opened; files cached and their bytes in memory (gauges). */
    _Atomic uint64_t st_opens, st_entries, st_bytes;
    /* HTTP/2 (http2.c): connections, streams, RST_STREAM received, connections closed (or
     * streams reset: stall) for abuse by kind (coil__h2_abuse_kinds). */
    _Atomic uint64_t h2_conns, h2_streams, h2_resets_in;
    _Atomic uint64_t h2_abuse[COIL_H2_ABUSE_KINDS];
};

#define STAT_INC(w, field) STAT_ADD(w, field, 1)
#define STAT_ADD(w, field, n)                                                                      \
    atomic_store_explicit(&(w)->stats.field,                                                       \
                          atomic_load_explicit(&(w)->stats.field, memory_order_relaxed) + (n),     \
                          memory_order_relaxed)

enum coil__phase {
    PHASE_RUN,   /* serving */
    PHASE_DRAIN, /* stopped accepting; finishing open connections */
    PHASE_JOBS,  /* no connections left; running jobs until every worker is done */
    PHASE_EXIT,
};

/* A listening socket of the worker's: plain HTTP or TLS. */
/* LST_TLS2: --tls-port N,M's second; LST_H2C: --h2c-port */
enum { LST_HTTP, LST_TLS, LST_TLS2, LST_H2C, NLISTENERS };
struct coil__listener {
    int fd;                   /* -1: none */
    bool armed;               /* a multishot accept is in flight */
    bool paused;              /* EMFILE/ENFILE: waiting before accepting again */
    bool warned;              /* the pause was logged; cleared by a successful accept */
    struct coil__timer timer; /* ends the pause */
};

struct coil__worker {
    unsigned id;
    int cpu; /* pinned to; -1 if not pinned */
    struct coil_app *app;
    struct io_uring ring;
    struct coil__listener lst[NLISTENERS];
    int event_fd;           /* wake-up fallback where MSG_RING is missing; -1 otherwise */
    int start_err;          /* -errno from start-up; reported by the main thread */
    const char *start_what; /* what failed at start-up */
    enum coil__phase phase;
    bool jobs_due;           /* woken: run inbound jobs after this batch */
    uint64_t now_ms;         /* CLOCK_MONOTONIC, updated once per loop */
    uint64_t now_ns;         /* the same instant in nanoseconds */
    struct coil__pheap heap; /* precise timers (handler timers) */
    bool firing;             /* precise timers are being fired */
    uint64_t drain_deadline; /* ms */
    struct coil_walloc wa;
    struct coil_arena arena; /* per request; reset after each response */
    struct coil_slab conns;
    struct coil_bufpool bufs; /* io_buf_size buffers for partial input and output */
    struct coil__wheel wheel;
    struct io_uring_buf_ring *br;
    char *br_mem; /* recv_buf_count * recv_buf_size bytes */
    size_t br_ring_bytes;
    uint32_t br_mask;
    uint32_t br_returned; /* buffers given back since the last ring advance */
    unsigned ring_flags;  /* IORING_SETUP_* the kernel accepted */
    bool ring_ready;
    bool heap_ready;          /* wa was initialised */
    bool modules_ready;       /* coil__modules_start ran (its stop frees what it made) */
    bool eventfd_unarmed;     /* the eventfd read could not be submitted; retried each batch */
    bool forced;              /* drain timeout passed: connections were aborted */
    uint32_t open;            /* connections open on this worker (inbound and outbound) */
    uint32_t outbound;        /* of which upstream connections (client.c) */
    struct coil__peer *peers; /* coil__conn_peer's cache, by connection slot; grown on use */
    uint32_t npeers;
    struct coil__client *client; /* upstream pools and fetches (client.c) */
    uint64_t *flush;             /* (index << 32 | generation) of connections with output */
    uint32_t nflush;
    uint32_t flush_cap;
    uint32_t jobs_unreclaimed;      /* jobs this worker posted whose memory is not yet freed */
    uint64_t event_val;             /* eventfd read target */
    struct coil__http_header *hdrs; /* max_headers entries, reused per request */
    uint64_t wake_targets;          /* bit per worker posted to in this batch (first 64) */
    bool wake_all;                  /* posted to a worker >= 64 */
    struct coil_slab rqs;           /* requests that may outlive their handler */
    struct coil__rq *rq_spare;      /* the next request's object (sync path: reused) */
    struct coil_slab utimers;       /* handler timers (wait.c) */
    struct coil_slab watches;       /* handler fd watches (wait.c) */
    struct coil__backlog *replies;  /* job replies waiting for room in a channel (chan.c) */
    uint64_t rnd;                   /* random state for trace and request IDs (mw.c) */
    uint64_t ids;                   /* request IDs made here */
    struct coil__wmetrics *metrics; /* this worker's metrics (metrics.c) */
    struct coil__alog *alog;        /* this worker's access log buffers (alog.c) */
    struct coil__tlsw *tls;         /* this worker's TLS connections (tls.c), or NULL */
    struct coil__swork *files;      /* this worker's static file cache (static.c), or NULL */
    char date_line[48];             /* "Date: ...\r\n" */
    uint32_t date_len;
    int64_t date_sec;
    _Alignas(COIL_CACHELINE) _Atomic int wake_pending; /* set by producers, cleared by owner */
    struct coil__counters stats;
    pthread_t thread;
};

/* An application hook, in registration order (app.c). */
struct coil__hook {
    struct coil__hook *next;
    void (*start)(unsigned worker, void *ud); /* coil_app_on_worker */
    void (*stop)(unsigned worker, void *ud);
    int (*run)(void *ud); /* coil_app_on_run */
    void (*done)(void *ud);
    bool (*ready)(void *ud);  /* coil_app_ready_check */
    void (*reload)(void *ud); /* coil_app_on_reload */
    bool done_ran;
    void *ud;
};
void coil__hooks_start(struct coil__worker *w);
void coil__hooks_stop(struct coil__worker *w);

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
    struct coil_upstream *upstreams; /* coil_upstream, in order (client.c) */
    unsigned nupstreams;
    struct coil__proxy_route *proxies; /* coil_route_proxy's routes (proxy.c) */
    struct coil__hook *hooks; /* coil_app_on_worker, coil_app_on_run, coil_app_ready_check */
    struct coil__mwlist *mw_builtins; /* installed by the engine's modules, outermost first */
    struct coil__mwlist *mw_uses;     /* coil_app_use */
    struct coil__chain *chain;        /* the app's: unmatched and refused requests (mw.c) */
    uint64_t id_prefix;               /* request IDs: random per process (48 bits) */
    bool reqid_off;                   /* --request-id off */
    struct coil__metrics *metrics;    /* metrics.c: options and every worker's tables */
    struct coil__alogcfg *alog;       /* alog.c: the access log's options and file */
    struct coil__tlscfg *tls;         /* tls.c: the TLS listener's options and certificates */
    struct coil__staticcfg *statics;  /* static.c: coil_route_static's routes and options */
    struct coil__h2cfg *h2;           /* http2.c: HTTP/2's options, callbacks */
    unsigned nworkers;
    unsigned nthreads; /* worker threads created (joined at exit) */
    struct coil__worker **workers;
    struct coil__chan *chans; /* nworkers * nworkers, [src * n + dst] */
    int *listen_fds;          /* [worker * NLISTENERS + LST_*], until the workers take them */
    int *cpus;                /* CPUs this process may run on (ncpus) */
    unsigned ncpus;
    bool msg_ring;            /* IORING_OP_MSG_RING available */
    uint64_t fail_alloc;      /* tests: COIL_TEST_ALLOC_FAIL, the allocation that fails */
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
int coil__log_setup(struct coil_app *app); /* log.c: --log-format, --log-level */
size_t coil__iso_time(char out[32]);       /* "2026-12-02T03:04:05.123Z", UTC */
/* s as the inside of a JSON string, escaped, cut short rather than past cap: bytes written. */
size_t coil__json_escape(char *out, size_t cap, const char *s, size_t len);
char *coil__resolve_all(const char *name, unsigned *count); /* app.c: never on a worker (DNS) */

/* chan.c */
int coil__chans_create(struct coil_app *app);
void coil__chans_destroy(struct coil_app *app);
unsigned coil__jobs_run(struct coil__worker *w); /* inbound; returns jobs run */
void coil__jobs_reclaim(struct coil__worker *w); /* outbound memory of run jobs */
void coil__jobs_wake(struct coil__worker *w);    /* wake targets posted to this batch */
void coil__replies_retry(struct coil__worker *w);
#define COIL_JOBS_CLOSED (UINT64_C(1) << 63) /* in jobs_outstanding: no more posts */
bool coil__jobs_count(struct coil_app *app); /* one more outstanding; false once closed */
/* Closes jobs_outstanding if no job is left (force: regardless); true once it is closed. */
bool coil__jobs_close(struct coil_app *app, bool force);
void coil__replies_free(struct coil__worker *w);

#endif
