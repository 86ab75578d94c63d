/* SPDX-License-Identifier: MIT */
/*
 * client.c: the upstream HTTP/1.1 client. An upstream (struct coil_upstream, built on the main
 * thread and read-only afterwards) names one or more servers by address; each worker keeps its
 * own pool per upstream: per server, the connections it opened, the idle ones ready for reuse,
 * the requests in flight and the circuit breaker's count of consecutive connect failures; per
 * upstream, a bounded queue of requests waiting for a connection. Connections are the
 * transport's (tcp.c, outbound), speaking the client side of HTTP/1.1 through the protocol
 * interface below, so connect, send and receive all go through the worker's ring.
 *
 * A fetch is one exchange: the serialised request, the callback, its owner request (if any),
 * and the response as it is parsed: head (strictly, coil__http_parse_resp_head), then a body
 * framed by Content-Length, chunked or the connection's close. It lives in the worker's fetch
 * slab, so its handle goes stale when it ends, and it ends exactly once: done, failed, cancelled
 * (by coil_fetch_cancel, a negative callback return, or its owner ending). A fetch that ends
 * while its callback is on the stack is only marked; the code that called the callback frees
 * it. A connection is returned to the pool only after a complete response that allows it, with
 * nothing more received; anything else closes it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define MAX_FETCHES COIL_HANDLE_SLOTS
#define RESP_MAX_HEADERS 128u
#define RESP_HEAD_MAX (64u * 1024)

static_assert(sizeof(struct coil__http_header) == sizeof(struct coil_header) &&
                  offsetof(struct coil__http_header, value) == offsetof(struct coil_header, value),
              "response headers are handed out as struct coil_header");

/* ---- state ------------------------------------------------------------------------------ */

struct userver { /* one server of an upstream (read-only) */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    char name[64]; /* host:port, for the log */
};

struct coil_upstream {
    unsigned idx; /* in the app's list: the worker's pool index */
    struct coil_upstream_opts o;
    char *host; /* Host header value */
    char *base; /* base path, "/" at least */
    size_t base_len;
    uint32_t nservers;
    struct userver *servers;
    struct coil_upstream *next;
};

struct server_state {     /* one server, on one worker */
    uint32_t conns;       /* open (connecting, busy or idle) */
    uint32_t outstanding; /* fetches on its connections */
    uint32_t fails;       /* consecutive connect failures */
    uint64_t down_until;  /* ms; 0: up */
    bool probing;         /* down, and one request is finding out */
    bool warned;
    struct coil__uconn *idle; /* most recently used first */
};

struct pool { /* one upstream, on one worker */
    const struct coil_upstream *up;
    struct server_state *srv;
    uint32_t rr;                       /* round-robin cursor */
    struct coil__fetch *qhead, *qtail; /* waiting for a connection */
    uint32_t qlen;
};

struct coil__client {
    struct pool *pools;
    unsigned npools;
    struct coil_slab fetches;
    struct coil__http_header *hdrs; /* RESP_MAX_HEADERS, for parsing heads */
    uint64_t *resumes;              /* fetches to resume at the end of the batch (handles) */
    uint32_t nresume, resume_cap;
};

struct coil__uconn {
    struct coil_conn *c; /* NULL once the transport let go of it */
    struct pool *pool;
    uint32_t server;
    struct coil__fetch *f;           /* the exchange on it; NULL when idle or connecting alone */
    struct coil__uconn *prev, *next; /* the server's idle list */
    bool idle;
    bool reused;    /* it has carried a response already */
    bool connected; /* its connect completed */
    bool probe;     /* it is its server's probe after a down time */
};

enum { F_QUEUED, F_CONNECTING, F_SENT, F_BODY, F_DONE };
enum { B_NONE, B_LENGTH, B_CHUNKED, B_CLOSE };

struct coil__fetch {
    uint32_t idx, gen;
    struct pool *pool;
    coil_fetch_fn fn;
    void *ud;
    struct coil__rq *owner;
    struct coil__fetch *owner_prev, *owner_next;
    struct coil__fetch *qprev, *qnext;
    struct coil__uconn *uc;
    char *req; /* the serialised request */
    size_t req_len;
    uint8_t state;
    uint8_t body; /* B_* */
    bool idempotent, head_method, retried, fresh, keep;
    bool req_in_arena; /* req is in the owner's arena, not the heap */
    bool stream_body;  /* the request body is written as it comes (coil_fetch_write) */
    bool chunked_body; /* ... with chunked framing (no length given) */
    bool body_done;    /* coil_fetch_write_end ran */
    bool end_pending;  /* ... before the request could be sent: its terminator follows it */
    bool want_writable;
    bool conn_failed;   /* its connection failed (not the upstream's orderly close) */
    uint64_t body_left; /* a streamed body's bytes still to write (with a length) */
    bool in_cb, dead, paused, resume_due;
    int server; /* the server it was sent to, -1 before */
    struct coil__timer timer;
    uint64_t deadline;  /* total, ms; 0 none */
    uint64_t queued_at; /* ms */
    uint64_t received;  /* response bytes read */
    int status;
    uint64_t remaining;      /* B_LENGTH: body bytes still to come */
    struct coil__chunked ck; /* B_CHUNKED */
    char *head;              /* an incomplete head, accumulated */
    uint32_t head_len, head_cap;
    char *held; /* paused: bytes not taken, raw (still framed) */
    size_t held_len, held_cap;
    char *piece; /* paused: the decoded piece refused, reported again first */
    size_t piece_len;
};

static const struct coil__proto client_proto;

static struct coil__client *cl_of(struct coil__worker *w)
{
    return w->client;
}

/* ---- upstreams (main thread) ------------------------------------------------------------ */

static void set_defaults(struct coil_upstream_opts *o)
{
    if (!o->max_conns)
        o->max_conns = 256;
    if (!o->max_queue)
        o->max_queue = 4096;
    if (!o->connect_timeout_ms)
        o->connect_timeout_ms = 2000;
    if (!o->head_timeout_ms)
        o->head_timeout_ms = 30000;
    if (!o->idle_timeout_ms)
        o->idle_timeout_ms = 30000;
    if (!o->keepalive_ms)
        o->keepalive_ms = 60000;
    if (!o->fail_threshold)
        o->fail_threshold = 3;
    if (!o->down_ms)
        o->down_ms = 1000;
}

/* Resolves "host[:port]" or "[v6]:port" into s. 0 or -1 (logged). */
static int resolve(const char *url, const char *hp, size_t n, struct userver *s, char **host_out)
{
    char host[256], port[8] = "80";
    const char *p = hp, *e = hp + n;
    size_t hl;
    if (n == 0)
        goto bad;
    if (*p == '[') {
        const char *rb = memchr(p, ']', n);
        if (!rb)
            goto bad;
        hl = (size_t)(rb - p - 1);
        if (hl == 0 || hl >= sizeof(host))
            goto bad;
        memcpy(host, p + 1, hl);
        p = rb + 1;
    } else {
        const char *colon = memchr(p, ':', n);
        const char *he = colon ? colon : e;
        hl = (size_t)(he - p);
        if (hl == 0 || hl >= sizeof(host))
            goto bad;
        memcpy(host, p, hl);
        p = he;
    }
    host[hl] = 0;
    if (p < e) {
        if (*p != ':' || e - p < 2 || e - p > 6)
            goto bad;
        memcpy(port, p + 1, (size_t)(e - p - 1));
        port[e - p - 1] = 0;
        for (char *q = port; *q; q++)
            if (*q < '0' || *q > '9')
                goto bad;
        long pn = strtol(port, NULL, 10);
        if (pn < 1 || pn > 65535)
            goto bad;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0 || !ai) {
        coil__log("upstream %s: cannot resolve %s: %s", url, host, gai_strerror(rc));
        return -1;
    }
    memcpy(&s->addr, ai->ai_addr, ai->ai_addrlen);
    s->addrlen = ai->ai_addrlen;
    freeaddrinfo(ai);
    snprintf(s->name, sizeof(s->name), "%.*s", (int)n, hp);
    if (host_out && !*host_out) {
        *host_out = strndup(hp, n);
        if (!*host_out)
            return -1;
    }
    return 0;
bad:
    coil__log("upstream %s: bad server \"%.*s\" (want host[:port] or [v6]:port)", url, (int)n, hp);
    return -1;
}

static void upstream_free(struct coil_upstream *up)
{
    free(up->host);
    free(up->base);
    free(up->servers);
    free(up);
}

struct coil_upstream *coil_upstream(struct coil_app *app, const char *url,
                                    const struct coil_upstream_opts *opts)
{
    if (!app || !url || app->nworkers /* running */)
        return NULL;
    if (strncmp(url, "http://", 7) != 0) {
        coil__log("upstream %s: only http:// URLs are supported", url);
        return NULL;
    }
    struct coil_upstream *up = calloc(1, sizeof(*up));
    if (!up)
        return NULL;
    if (opts)
        up->o = *opts;
    set_defaults(&up->o);
    const char *auth = url + 7;
    const char *slash = strchr(auth, '/');
    const char *aend = slash ? slash : auth + strlen(auth);
    up->base = strdup(slash ? slash : "/");
    if (!up->base)
        goto fail;
    up->base_len = strlen(up->base);
    for (const char *q = up->base; *q; q++)
        if ((unsigned char)*q <= 0x20 || *q == 0x7f || *q == '?' || *q == '#') {
            coil__log("upstream %s: bad base path", url);
            goto fail;
        }
    uint32_t n = 1;
    for (const char *q = auth; q < aend; q++)
        n += *q == ',';
    up->servers = calloc(n, sizeof(*up->servers));
    if (!up->servers)
        goto fail;
    const char *p = auth;
    while (p <= aend && up->nservers < n) {
        const char *comma = memchr(p, ',', (size_t)(aend - p));
        const char *e = comma ? comma : aend;
        if (resolve(url, p, (size_t)(e - p), &up->servers[up->nservers], &up->host) < 0)
            goto fail;
        up->nservers++;
        p = e + 1;
    }
    up->idx = app->nupstreams++;
    struct coil_upstream **tail = &app->upstreams;
    while (*tail)
        tail = &(*tail)->next;
    *tail = up;
    return up;
fail:
    upstream_free(up);
    return NULL;
}

void coil__upstreams_free(struct coil_app *app)
{
    while (app->upstreams) {
        struct coil_upstream *up = app->upstreams;
        app->upstreams = up->next;
        upstream_free(up);
    }
    app->nupstreams = 0;
}

const char *coil__upstream_base(const struct coil_upstream *up, size_t *len)
{
    *len = up->base_len;
    return up->base;
}

/* ---- small helpers ---------------------------------------------------------------------- */

static void arm(struct coil__worker *w, struct coil__fetch *f, uint64_t phase_deadline)
{
    uint64_t d = phase_deadline;
    if (f->deadline && (!d || f->deadline < d))
        d = f->deadline;
    if (d)
        coil__timer_at(w, &f->timer, d);
    else
        coil__timer_cancel(&w->wheel, &f->timer);
}

static void owner_unlink(struct coil__fetch *f)
{
    if (!f->owner)
        return;
    if (f->owner_prev)
        f->owner_prev->owner_next = f->owner_next;
    else
        f->owner->fetches = f->owner_next;
    if (f->owner_next)
        f->owner_next->owner_prev = f->owner_prev;
    f->owner = NULL;
}

static void queue_remove(struct pool *p, struct coil__fetch *f)
{
    if (f->qprev)
        f->qprev->qnext = f->qnext;
    else
        p->qhead = f->qnext;
    if (f->qnext)
        f->qnext->qprev = f->qprev;
    else
        p->qtail = f->qprev;
    f->qprev = f->qnext = NULL;
    p->qlen--;
    STAT_ADD(coil__self, up_queued, (uint64_t)-1);
}

static void queue_push(struct pool *p, struct coil__fetch *f)
{
    f->qnext = NULL;
    f->qprev = p->qtail;
    if (p->qtail)
        p->qtail->qnext = f;
    else
        p->qhead = f;
    p->qtail = f;
    p->qlen++;
    STAT_INC(coil__self, up_queued);
}

static void idle_remove(struct server_state *s, struct coil__uconn *u)
{
    if (!u->idle)
        return;
    if (u->prev)
        u->prev->next = u->next;
    else
        s->idle = u->next;
    if (u->next)
        u->next->prev = u->prev;
    u->prev = u->next = NULL;
    u->idle = false;
}

/* Frees the fetch's memory and slot (its handle goes stale). */
static void fetch_free(struct coil__worker *w, struct coil__fetch *f)
{
    struct coil__client *cl = cl_of(w);
    coil__timer_cancel(&w->wheel, &f->timer);
    owner_unlink(f);
    if (f->state == F_QUEUED && (f->qprev || f->pool->qhead == f))
        queue_remove(f->pool, f);
    if (!f->req_in_arena)
        coil__wfree(&w->wa, f->req);
    coil__wfree(&w->wa, f->head);
    coil__wfree(&w->wa, f->held);
    coil__wfree(&w->wa, f->piece);
    coil__slab_put(&cl->fetches, f->idx);
}

/* ---- connections ------------------------------------------------------------------------ */

static void dispatch_queued(struct coil__worker *w, struct pool *p);

/* The server's connection u is gone (closed by either side). */
static void uconn_gone(struct coil__worker *w, struct coil__uconn *u)
{
    struct server_state *s = &u->pool->srv[u->server];
    idle_remove(s, u);
    s->conns--;
    STAT_ADD(w, up_conns, (uint64_t)-1);
    if (u->probe && s->probing)
        s->probing = false; /* the probe went before its connect told anything: probe again */
    struct pool *p = u->pool;
    coil__wfree(&w->wa, u);
    if (p->qhead)
        dispatch_queued(w, p); /* room for a new connection */
}

/* Closes u's connection (the transport calls on_abort, which lets go of u). */
static void uconn_close(struct coil__worker *w, struct coil__uconn *u)
{
    if (u->c)
        coil__conn_abort(w, u->c);
    else
        uconn_gone(w, u);
}

static void connect_failed(struct coil__worker *w, struct pool *p, uint32_t server)
{
    struct server_state *s = &p->srv[server];
    s->probing = false;
    if (++s->fails >= p->up->o.fail_threshold) {
        s->down_until = w->now_ms + p->up->o.down_ms;
        if (!s->warned)
            coil__log("worker %u: upstream %s: %u connects failed in a row; down for %u ms", w->id,
                      p->up->servers[server].name, s->fails, p->up->o.down_ms);
        s->warned = true;
    }
}

static void connect_ok(struct pool *p, uint32_t server)
{
    struct server_state *s = &p->srv[server];
    s->fails = 0;
    s->down_until = 0;
    s->probing = false;
    s->warned = false;
}

/* ---- events to the caller --------------------------------------------------------------- */

/* Calls the fetch's callback. Returns its value, or -1 if the fetch was cancelled meanwhile
 * (by the callback's return, coil_fetch_cancel, or its owner ending). */
static int emit(struct coil__fetch *f, struct coil_fetch_ev *ev)
{
    ev->fetch.id = coil__handle(coil__self->id, f->idx, f->gen);
    ev->status = f->status;
    f->in_cb = true;
    int rc = f->fn(ev, f->ud);
    f->in_cb = false;
    if (rc < 0)
        f->dead = true;
    return f->dead ? -1 : rc;
}

/* The fetch no longer counts as in flight on the server it was sent to. */
static void leave_server(struct coil__fetch *f)
{
    if (f->server >= 0) {
        f->pool->srv[f->server].outstanding--;
        STAT_ADD(coil__self, up_busy, (uint64_t)-1);
        f->server = -1;
    }
}

/* The fetch ends with an error (reported unless it was cancelled). Its connection, if any, is
 * not touched: the caller decides. */
static void fail(struct coil__worker *w, struct coil__fetch *f, int err)
{
    if (f->state == F_QUEUED && (f->qprev || f->pool->qhead == f))
        queue_remove(f->pool, f); /* before the state changes: fetch_free goes by it */
    if (f->uc) {
        f->uc->f = NULL;
        f->uc = NULL;
    }
    leave_server(f);
    if (!f->dead) {
        struct coil_fetch_ev ev = {
            .kind = COIL_FETCH_ERROR, .error = err, .started = f->state == F_BODY};
        f->state = F_DONE;
        emit(f, &ev);
    }
    fetch_free(w, f);
}

/* ---- sending ---------------------------------------------------------------------------- */

static int start_on(struct coil__worker *w, struct coil__fetch *f, struct coil__uconn *u);

/* Puts the fetch on a connection: an idle one, a new one, or the wait queue. 0 or -errno. */
static int place(struct coil__worker *w, struct coil__fetch *f)
{
    struct pool *p = f->pool;
    const struct coil_upstream *up = p->up;
    /* The server that is up and has a connection to give (idle, or room for a new one) with
     * the fewest requests in flight here; round robin among equals. A server down past its
     * time gets one probing request. Servers up but all full: the request waits. */
    int best = -1;
    bool any_up = false;
    uint32_t best_out = UINT32_MAX;
    for (uint32_t k = 0; k < up->nservers; k++) {
        uint32_t i = (p->rr + k) % up->nservers;
        struct server_state *s = &p->srv[i];
        if (s->down_until) {
            if (s->down_until > w->now_ms || s->probing)
                continue;
        }
        any_up = true;
        bool room = (s->idle && !f->fresh && !s->down_until) || s->conns < up->o.max_conns;
        if (room && s->outstanding < best_out) {
            best = (int)i;
            best_out = s->outstanding;
        }
    }
    if (!any_up)
        return -EHOSTUNREACH;
    if (best < 0) {
        if (p->qlen >= up->o.max_queue)
            return -EBUSY;
        f->state = F_QUEUED;
        queue_push(p, f);
        arm(w, f, f->queued_at + up->o.connect_timeout_ms);
        return 0;
    }
    p->rr = ((uint32_t)best + 1) % up->nservers;
    struct server_state *s = &p->srv[best];
    if (s->idle && !f->fresh && !s->down_until) {
        struct coil__uconn *u = s->idle;
        idle_remove(s, u);
        f->server = best;
        s->outstanding++;
        STAT_INC(w, up_busy);
        return start_on(w, f, u);
    }
    {
        struct coil__uconn *u = coil__walloc(&w->wa, sizeof(*u));
        if (!u)
            return -ENOMEM;
        memset(u, 0, sizeof(*u));
        u->pool = p;
        u->server = (uint32_t)best;
        int err;
        const struct userver *sv = &up->servers[best];
        u->c = coil__tcp_connect(w, (const struct sockaddr *)&sv->addr, sv->addrlen, &client_proto,
                                 u, &err);
        if (!u->c) {
            coil__wfree(&w->wa, u);
            return err == -ENOBUFS ? -EBUSY : err;
        }
        s->conns++;
        STAT_INC(w, up_conns);
        if (s->down_until)
            s->probing = u->probe = true;
        f->server = best;
        s->outstanding++;
        STAT_INC(w, up_busy);
        f->uc = u;
        u->f = f;
        f->state = F_CONNECTING;
        arm(w, f, f->queued_at + up->o.connect_timeout_ms);
        return 0;
    }
}

/* Queues the request on u's connection. */
static int start_on(struct coil__worker *w, struct coil__fetch *f, struct coil__uconn *u)
{
    f->uc = u;
    u->f = f;
    struct coil_conn *c = u->c;
    char *out = coil__conn_reserve(w, c, f->req_len);
    if (!out) {
        u->f = NULL;
        f->uc = NULL;
        uconn_close(w, u);
        return -ENOMEM;
    }
    memcpy(out, f->req, f->req_len);
    c->pend->len += f->req_len;
    if (f->end_pending && f->chunked_body) {
        char *e = coil__conn_reserve(w, c, 5);
        if (!e) {
            u->f = NULL;
            f->uc = NULL;
            uconn_close(w, u);
            return -ENOMEM;
        }
        memcpy(e, "0\r\n\r\n", 5);
        c->pend->len += 5;
    }
    c->read_deadline = 0;
    coil__conn_set_timer(w, c);
    f->state = F_SENT;
    f->received = 0;
    arm(w, f, w->now_ms + f->pool->up->o.head_timeout_ms);
    /* Queuing the flush can fail and close c: f is detached meanwhile, so that failure is
     * reported here and not through f. */
    u->f = NULL;
    f->uc = NULL;
    coil__conn_hold(c);
    coil__conn_queue_flush(w, c);
    if (!coil__conn_release(w, c))
        return -ENOMEM; /* u went with c */
    u->f = f;
    f->uc = u;
    return 0;
}

/* Gives waiting fetches the connections that can be had now. */
static void dispatch_queued(struct coil__worker *w, struct pool *p)
{
    while (p->qhead) {
        struct coil__fetch *f = p->qhead;
        queue_remove(p, f);
        f->state = F_CONNECTING; /* off the queue while placed */
        if (f->dead) {
            fail(w, f, 0); /* cancelled while it waited: ends quietly */
            continue;
        }
        int err = place(w, f);
        if (err == 0) {
            if (f->state == F_QUEUED) {
                /* Nothing free after all: back to the front, in order. */
                queue_remove(p, f);
                f->qnext = p->qhead;
                f->qprev = NULL;
                if (p->qhead)
                    p->qhead->qprev = f;
                else
                    p->qtail = f;
                p->qhead = f;
                p->qlen++;
                STAT_INC(w, up_queued);
                return;
            }
            continue;
        }
        fail(w, f, err);
    }
}

/* ---- the response ----------------------------------------------------------------------- */

/* The exchange on u ended well: the connection goes back to the pool, or closes. */
static void exchange_done(struct coil__worker *w, struct coil__uconn *u, bool keep)
{
    struct pool *p = u->pool;
    struct server_state *s = &p->srv[u->server];
    u->f = NULL;
    u->reused = true;
    struct coil_conn *c = u->c;
    if (!keep || !c || (c->flags & (CONN_CLOSING | CONN_EOF)) || w->phase != PHASE_RUN) {
        uconn_close(w, u);
        return;
    }
    if (c->flags & CONN_PAUSED) { /* paused for a slow consumer: read again, for the EOF */
        coil__conn_hold(c);
        coil__conn_unpause(w, c);
        if (!coil__conn_release(w, c))
            return; /* it failed: u went with it */
    }
    if (p->qhead) { /* a waiting request takes it at once */
        struct coil__fetch *f = p->qhead;
        queue_remove(p, f);
        f->server = (int)u->server;
        s->outstanding++;
        STAT_INC(w, up_busy);
        int err = start_on(w, f, u);
        if (err < 0)
            fail(w, f, err);
        return;
    }
    u->idle = true;
    u->prev = NULL;
    u->next = s->idle;
    if (s->idle)
        s->idle->prev = u;
    s->idle = u;
    c->read_deadline = w->now_ms + p->up->o.keepalive_ms;
    coil__conn_set_timer(w, c);
}

/* The response is complete. */
static void finish(struct coil__worker *w, struct coil__fetch *f, bool keep)
{
    struct coil__uconn *u = f->uc;
    f->uc = NULL;
    if (u)
        u->f = NULL;
    if (f->stream_body && !f->body_done)
        keep = false; /* answered before the body was all sent: the connection is spoilt */
    leave_server(f);
    f->state = F_DONE;
    coil__timer_cancel(&w->wheel, &f->timer);
    if (!f->dead) {
        struct coil_fetch_ev ev = {.kind = COIL_FETCH_DONE};
        emit(f, &ev);
    }
    fetch_free(w, f);
    if (u)
        exchange_done(w, u, keep);
}

/* Keeps bytes not taken while paused: they are read again on resume. */
static int hold_raw(struct coil__worker *w, struct coil__fetch *f, const char *data, size_t n)
{
    return coil__bytes_append(w, &f->held, &f->held_len, &f->held_cap, data, n);
}

static void pause_reading(struct coil__worker *w, struct coil__fetch *f)
{
    f->paused = true;
    arm(w, f, 0); /* the consumer is slow, not the upstream: only the total deadline runs */
    if (f->uc && f->uc->c)
        coil__conn_pause(w, f->uc->c);
}

/* One decoded piece of body: reported, or kept if the callback pauses. 0, 1 paused, -1 the
 * fetch was cancelled (in the callback), -ENOMEM the piece could not be kept: the caller ends
 * the fetch with gave_up(rc). */
static int give(struct coil__worker *w, struct coil__fetch *f, const char *data, size_t n)
{
    if (!n)
        return 0;
    struct coil_fetch_ev ev = {.kind = COIL_FETCH_BODY, .data = data, .len = n};
    int rc = emit(f, &ev);
    if (rc < 0)
        return -1;
    if (rc == COIL_FETCH_PAUSE) {
        f->piece = coil__walloc(&w->wa, n);
        if (!f->piece)
            return -ENOMEM;
        memcpy(f->piece, data, n);
        f->piece_len = n;
        pause_reading(w, f);
        return 1;
    }
    return 0;
}

/* The error a fetch ends with after give() failed: none for a cancel (no event follows). */
static int gave_up(int rc)
{
    return rc == -1 ? 0 : rc;
}

static void fail_conn(struct coil__worker *w, struct coil__fetch *f, int err)
{
    struct coil__uconn *u = f->uc;
    fail(w, f, err);
    if (u)
        uconn_close(w, u);
}

/* The head is at buf[0..n) (complete). Returns bytes of it, or -1 if the fetch is gone. */
static long on_head(struct coil__worker *w, struct coil__fetch *f, const char *buf, size_t n)
{
    struct coil__client *cl = cl_of(w);
    struct coil__http_resp r = {.headers = cl->hdrs};
    int hl = coil__http_parse_resp_head(buf, n, &r, RESP_HEAD_MAX, RESP_MAX_HEADERS);
    if (hl <= 0)
        return hl == 0 ? 0 : -2;
    if (r.status < 200) {
        if (r.status == 101)
            return -2; /* never asked for */
        return hl;     /* interim: skipped */
    }
    f->status = r.status;
    bool no_body = f->head_method || r.status == 204 || r.status == 304;
    if (no_body)
        f->body = B_NONE;
    else if (r.flags & COIL_HTTP_CHUNKED) {
        f->body = B_CHUNKED;
        coil__chunked_init(&f->ck);
    } else if (r.flags & COIL_HTTP_HAS_LENGTH) {
        f->body = r.content_length ? B_LENGTH : B_NONE;
        f->remaining = r.content_length;
    } else {
        f->body = B_CLOSE;
    }
    f->keep = (r.flags & COIL_HTTP_KEEP_ALIVE) && f->body != B_CLOSE;
    f->state = F_BODY;
    struct coil_fetch_ev ev = {
        .kind = COIL_FETCH_HEAD,
        .length = (r.flags & COIL_HTTP_HAS_LENGTH) ? (int64_t)r.content_length : -1,
        .no_body = no_body,
        .headers = (const struct coil_header *)r.headers,
        .nheaders = r.nheaders};
    if (emit(f, &ev) < 0)
        return -1;
    arm(w, f, w->now_ms + f->pool->up->o.idle_timeout_ms);
    return hl;
}

/*
 * Reads response bytes data[0..n) (writable: chunked bodies are decoded in place). Returns 0
 * when all were used (or kept while paused), -1 when the fetch is gone (the connection was
 * dealt with).
 */
static int feed(struct coil__worker *w, struct coil__fetch *f, char *data, size_t n)
{
    f->received += n;
    while (n) {
        if (f->paused)
            return hold_raw(w, f, data, n) < 0 ? (fail_conn(w, f, -ENOMEM), -1) : 0;
        if (f->state == F_SENT) {
            long used;
            if (f->head_len) {
                size_t take = n;
                if (f->head_len + take > RESP_HEAD_MAX)
                    take = RESP_HEAD_MAX - f->head_len;
                if (f->head_len + take > f->head_cap) {
                    uint32_t cap = f->head_cap * 2;
                    while (cap < f->head_len + take)
                        cap *= 2;
                    char *nb = coil__wrealloc(&w->wa, f->head, cap);
                    if (!nb) {
                        fail_conn(w, f, -ENOMEM);
                        return -1;
                    }
                    f->head = nb;
                    f->head_cap = cap;
                }
                memcpy(f->head + f->head_len, data, take);
                size_t before = f->head_len;
                f->head_len += (uint32_t)take;
                used = on_head(w, f, f->head, f->head_len);
                if (used == -1) {
                    fail_conn(w, f, 0);
                    return -1;
                }
                if (used == -2 || (used == 0 && f->head_len >= RESP_HEAD_MAX)) {
                    fail_conn(w, f, -EPROTO);
                    return -1;
                }
                if (used == 0)
                    return 0; /* all of data is in the head buffer */
                /* Head complete: what followed it in data is body (or the next head). */
                size_t from_data = (size_t)used - before;
                f->head_len = 0;
                data += from_data;
                n -= from_data;
            } else {
                used = on_head(w, f, data, n);
                if (used == -1) {
                    fail_conn(w, f, 0);
                    return -1;
                }
                if (used == -2 || (used == 0 && n >= RESP_HEAD_MAX)) {
                    fail_conn(w, f, -EPROTO);
                    return -1;
                }
                if (used == 0) {
                    f->head_cap = 4096;
                    while (f->head_cap < n)
                        f->head_cap *= 2;
                    f->head = coil__wrealloc(&w->wa, f->head, f->head_cap);
                    if (!f->head) {
                        fail_conn(w, f, -ENOMEM);
                        return -1;
                    }
                    memcpy(f->head, data, n);
                    f->head_len = (uint32_t)n;
                    return 0;
                }
                data += used;
                n -= (size_t)used;
            }
            if (f->state == F_BODY && f->body == B_NONE) {
                if (n) { /* bytes after a body-less response: not HTTP we can trust */
                    finish(w, f, false);
                    return -1;
                }
                finish(w, f, f->keep);
                return -1;
            }
            continue;
        }
        /* F_BODY */
        if (f->body == B_LENGTH) {
            size_t k = n < f->remaining ? n : (size_t)f->remaining;
            int rc = give(w, f, data, k);
            if (rc < 0) {
                fail_conn(w, f, gave_up(rc));
                return -1;
            }
            if (rc == 1) { /* paused: the piece is kept; the rest is raw */
                if (hold_raw(w, f, data + k, n - k) < 0) {
                    fail_conn(w, f, -ENOMEM);
                    return -1;
                }
                f->remaining -= k;
                return 0;
            }
            f->remaining -= k;
            data += k;
            n -= k;
            if (f->remaining == 0) {
                finish(w, f, f->keep && n == 0);
                return -1;
            }
        } else if (f->body == B_CHUNKED) {
            f->ck.in = f->ck.out = 0;
            int cr = coil__chunked_decode(&f->ck, data, n, UINT64_MAX / 2, RESP_HEAD_MAX);
            if (cr < 0) {
                fail_conn(w, f, -EPROTO);
                return -1;
            }
            size_t used = f->ck.in, out = f->ck.out;
            int rc = give(w, f, data, out);
            if (rc < 0) {
                fail_conn(w, f, gave_up(rc));
                return -1;
            }
            if (rc == 1) {
                if (cr == 1)
                    f->body = B_NONE; /* it ended in this piece: DONE follows it on resume */
                if (hold_raw(w, f, data + used, n - used) < 0) {
                    fail_conn(w, f, -ENOMEM);
                    return -1;
                }
                return 0;
            }
            data += used;
            n -= used;
            if (cr == 1) {
                finish(w, f, f->keep && n == 0);
                return -1;
            }
        } else if (f->body == B_CLOSE) {
            int rc = give(w, f, data, n);
            if (rc < 0) {
                fail_conn(w, f, gave_up(rc));
                return -1;
            }
            break; /* paused or not, all of it is taken */
        } else {   /* B_NONE in F_BODY: the end was reached behind a paused piece; more bytes */
            finish(w, f, false);
            return -1;
        }
    }
    if (f->state == F_BODY)
        arm(w, f, f->paused ? 0 : w->now_ms + f->pool->up->o.idle_timeout_ms);
    return 0;
}

/* ---- the protocol on upstream connections ----------------------------------------------- */

static void p_connect(struct coil__worker *w, struct coil_conn *c, int res)
{
    struct coil__uconn *u = c->uc;
    struct pool *p = u->pool;
    if (res < 0) {
        connect_failed(w, p, u->server);
        struct coil__fetch *f = u->f;
        if (f) {
            u->f = NULL;
            f->uc = NULL;
            fail(w, f, res == -ETIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED);
        }
        return; /* the transport aborts c: p_abort lets go of u */
    }
    connect_ok(p, u->server);
    u->connected = true;
    u->probe = false;
    struct coil__fetch *f = u->f;
    if (!f) {
        exchange_done(w, u, true); /* its fetch went away while connecting */
        return;
    }
    int err = start_on(w, f, u);
    if (err < 0)
        fail(w, f, err);
}

static void p_data(struct coil__worker *w, struct coil_conn *c, const char *data, size_t n)
{
    struct coil__uconn *u = c->uc;
    struct coil__fetch *f = u->f;
    if (!f) {
        uconn_close(w, u); /* bytes nobody asked for */
        return;
    }
    feed(w, f, (char *)data, n);
}

/* The connection ended under fetch f: the upstream's orderly close (eof), or a failure. Only
 * the former can end a close-delimited body. */
static void lost(struct coil__worker *w, struct coil__uconn *u, struct coil__fetch *f, bool eof)
{
    u->f = NULL;
    f->uc = NULL;
    leave_server(f);
    f->conn_failed = !eof;
    if (f->paused)
        return; /* what is held is read on resume, then the end is judged (resume_fetch) */
    if (f->state == F_BODY && f->body == B_CLOSE && eof) {
        finish(w, f, false);
        return;
    }
    if (f->state == F_SENT && f->received == 0 && u->reused && f->idempotent && !f->retried &&
        !f->dead) {
        /* The server closed a kept-alive connection as we reused it: once more, on a new one. */
        f->retried = true;
        f->fresh = true;
        f->queued_at = w->now_ms;
        int err = place(w, f);
        if (err < 0)
            fail(w, f, err);
        return;
    }
    fail(w, f, f->state == F_CONNECTING ? -ECONNREFUSED : -ECONNRESET);
}

static void p_eof(struct coil__worker *w, struct coil_conn *c)
{
    struct coil__uconn *u = c->uc;
    struct coil__fetch *f = u->f;
    if (f)
        lost(w, u, f, true);
    if (c->uc == u && (c->flags & CONN_CLOSING) == 0)
        coil__conn_abort(w, c);
}

static void p_abort(struct coil__worker *w, struct coil_conn *c)
{
    struct coil__uconn *u = c->uc;
    if (!u)
        return;
    c->uc = NULL;
    u->c = NULL;
    struct coil__fetch *f = u->f;
    if (f)
        lost(w, u, f, false);
    uconn_gone(w, u);
}

static void p_read_timeout(struct coil__worker *w, struct coil_conn *c)
{
    /* Only idle pooled connections have a read deadline (keepalive_ms). */
    coil__conn_abort(w, c);
}

static void p_sent(struct coil__worker *w, struct coil_conn *c)
{
    struct coil__uconn *u = c->uc;
    struct coil__fetch *f = u ? u->f : NULL;
    if (!f)
        return;
    if (f->stream_body && f->state == F_SENT)
        arm(w, f, w->now_ms + f->pool->up->o.head_timeout_ms); /* the upload progresses */
    if (!f->want_writable || coil__conn_queued(c) > COIL_STREAM_HIGH / 2)
        return;
    f->want_writable = false;
    struct coil_fetch_ev ev = {.kind = COIL_FETCH_WRITABLE};
    if (emit(f, &ev) < 0)
        fail_conn(w, f, 0);
}

static void p_resume(struct coil__worker *w, struct coil_conn *c)
{
    (void)w; /* resumes are the fetch's (run_resumes), not the connection's */
    (void)c;
}

static void p_drain(struct coil__worker *w, struct coil_conn *c)
{
    struct coil__uconn *u = c->uc;
    if (u && !u->f && u->idle)
        coil__conn_abort(w, c);
}

static const struct coil__proto client_proto = {
    .on_data = p_data,
    .on_eof = p_eof,
    .on_read_timeout = p_read_timeout,
    .on_sent = p_sent,
    .on_resume = p_resume,
    .on_abort = p_abort,
    .on_drain = p_drain,
    .on_connect = p_connect,
};

/* ---- timers ----------------------------------------------------------------------------- */

static void on_fetch_timer(struct coil__timer *t, void *ctx)
{
    struct coil__worker *w = ctx;
    struct coil__fetch *f = (struct coil__fetch *)((char *)t - offsetof(struct coil__fetch, timer));
    if (f->state == F_CONNECTING && f->uc)
        connect_failed(w, f->pool, f->uc->server);
    fail_conn(w, f, -ETIMEDOUT);
}

/* ---- the API ---------------------------------------------------------------------------- */

static bool idempotent(const char *m)
{
    static const char *const ok[] = {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (strcmp(m, ok[i]) == 0)
            return true;
    return false;
}

static char *put(char *p, const void *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

/* Writes the request into f->req. 0, -EINVAL or -ENOMEM. */
static int serialise(struct coil__worker *w, struct coil__fetch *f, const struct coil_upstream *up,
                     const char *method, const struct coil_fetch_req *r)
{
    size_t ml = strlen(method);
    struct coil_str target = r->target;
    if (!target.len)
        target = (struct coil_str){up->base, up->base_len};
    if (!coil__http_is_token((struct coil_str){method, ml}) || target.ptr[0] != '/')
        return -EINVAL;
    for (size_t i = 0; i < target.len; i++) {
        unsigned char ch = (unsigned char)target.ptr[i];
        if (ch <= 0x20 || ch >= 0x7f)
            return -EINVAL;
    }
    bool has_host = false, has_trace = false;
    size_t need = ml + 1 + target.len + 11 + 2;
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct coil_header *h = &r->headers[i];
        if (!coil__http_is_token(h->name) || !coil__http_is_field_value(h->value))
            return -EINVAL;
        if (h->name.len == 4 && coil__http_name_eq(h->name, "host"))
            has_host = true;
        if (h->name.len == 11 && coil__http_name_eq(h->name, "traceparent"))
            has_trace = true;
        if ((h->name.len == 14 && coil__http_name_eq(h->name, "content-length")) ||
            (h->name.len == 17 && coil__http_name_eq(h->name, "transfer-encoding")))
            return -EINVAL; /* the engine frames the body */
        need += h->name.len + 2 + h->value.len + 2;
    }
    size_t hl = strlen(up->host);
    need += 6 + hl + 2 + 40 + r->body_len;
    /* A request's calls carry its trace, with its span as their parent (W3C trace context). */
    char tp[56];
    size_t tpl = f->owner && !has_trace ? coil__traceparent(&f->owner->req, tp) : 0;
    const struct coil_trace *tr = tpl ? coil_req_trace(&f->owner->req) : NULL;
    struct coil_str ts = tr ? tr->tracestate : (struct coil_str){NULL, 0};
    need += tpl ? 15 + tpl + 14 + ts.len : 0;
    /* An owned fetch keeps its bytes in the owner's arena: they live as long as it may. */
    char *p = f->req =
        f->owner ? coil__arena_alloc(&f->owner->arena, need) : coil__walloc(&w->wa, need);
    if (!p)
        return -ENOMEM;
    p = put(p, method, ml);
    *p++ = ' ';
    p = put(p, target.ptr, target.len);
    p = put(p, " HTTP/1.1\r\n", 11);
    if (!has_host) {
        p = put(p, "Host: ", 6);
        p = put(p, up->host, hl);
        p = put(p, "\r\n", 2);
    }
    for (size_t i = 0; i < r->nheaders; i++) {
        const struct coil_header *h = &r->headers[i];
        p = put(p, h->name.ptr, h->name.len);
        p = put(p, ": ", 2);
        p = put(p, h->value.ptr, h->value.len);
        p = put(p, "\r\n", 2);
    }
    if (tpl) {
        p = put(p, "traceparent: ", 13);
        p = put(p, tp, tpl);
        p = put(p, "\r\n", 2);
        if (ts.len) {
            p = put(p, "tracestate: ", 12);
            p = put(p, ts.ptr, ts.len);
            p = put(p, "\r\n", 2);
        }
    }
    bool wants_body = !strcmp(method, "POST") || !strcmp(method, "PUT") || !strcmp(method, "PATCH");
    if (r->stream_body && r->stream_length < 0)
        p = put(p, "Transfer-Encoding: chunked\r\n", 28);
    else if (r->stream_body)
        p += sprintf(p, "Content-Length: %lld\r\n", (long long)r->stream_length);
    else if (r->body_len || wants_body)
        p += sprintf(p, "Content-Length: %zu\r\n", r->body_len);
    p = put(p, "\r\n", 2);
    if (r->body_len)
        p = put(p, r->body, r->body_len);
    f->req_len = (size_t)(p - f->req);
    return 0;
}

int coil_fetch(struct coil_req *owner, struct coil_upstream *up, const struct coil_fetch_req *r,
               coil_fetch_fn fn, void *ud, struct coil_fetch *out)
{
    struct coil__worker *w = coil__self;
    if (!w || !w->client || !up || !r || !fn || up->idx >= w->client->npools ||
        (r->body_len && !r->body) || (r->nheaders && !r->headers) ||
        (r->stream_body && r->body_len))
        return -EINVAL;
    struct coil__rq *rq = owner ? owner->rq : NULL;
    if (owner && (!rq || !rq->deferred || rq->aborted || rq->finished))
        return -EINVAL;
    struct coil__client *cl = w->client;
    uint32_t idx, gen;
    struct coil__fetch *f = coil__slab_get(&cl->fetches, &idx, &gen);
    if (!f)
        return -ENOMEM;
    f->idx = idx;
    f->gen = gen;
    f->pool = &cl->pools[up->idx];
    f->fn = fn;
    f->ud = ud;
    f->server = -1;
    f->timer.cb = on_fetch_timer;
    const char *method = r->method ? r->method : "GET";
    f->idempotent = idempotent(method) && !r->stream_body; /* a streamed body is not kept */
    f->head_method = strcmp(method, "HEAD") == 0;
    f->stream_body = r->stream_body;
    f->chunked_body = r->stream_body && r->stream_length < 0;
    f->body_left = r->stream_body && r->stream_length > 0 ? (uint64_t)r->stream_length : 0;
    f->owner = rq; /* linked into its list once placed */
    f->req_in_arena = rq != NULL;
    int err = serialise(w, f, up, method, r);
    f->owner = NULL;
    if (err < 0) {
        fetch_free(w, f);
        return err;
    }
    f->queued_at = w->now_ms;
    if (up->o.total_timeout_ms)
        f->deadline = w->now_ms + up->o.total_timeout_ms;
    err = place(w, f);
    if (err < 0) {
        leave_server(f);
        fetch_free(w, f);
        return err;
    }
    if (rq) {
        f->owner = rq;
        f->owner_prev = NULL;
        f->owner_next = rq->fetches;
        if (rq->fetches)
            rq->fetches->owner_prev = f;
        rq->fetches = f;
    }
    if (out)
        out->id = coil__handle(w->id, idx, gen);
    return 0;
}

static struct coil__fetch *fetch_at(struct coil__worker *w, uint64_t id)
{
    uint32_t idx, gen;
    if (!w || !w->client || !coil__handle_on(id, w->id, &idx, &gen))
        return NULL;
    struct coil__fetch *f = coil__slab_at(&w->client->fetches, idx, gen);
    return f && !f->dead ? f : NULL;
}

/* Ends f without a word: its connection closes unless it was idle-able. */
static void cancel(struct coil__worker *w, struct coil__fetch *f)
{
    f->dead = true;
    if (f->in_cb)
        return; /* the code that called the callback ends it */
    fail_conn(w, f, 0);
}

int coil_fetch_cancel(struct coil_fetch h)
{
    struct coil__worker *w = coil__self;
    struct coil__fetch *f = fetch_at(w, h.id);
    if (!f || f->state == F_DONE)
        return -ENOENT;
    cancel(w, f);
    return 0;
}

static bool body_complete(const struct coil__fetch *f)
{
    return f->state == F_BODY && (f->body == B_NONE || (f->body == B_LENGTH && f->remaining == 0));
}

/* ---- a streamed request body ------------------------------------------------------------ */

int coil_fetch_write(struct coil_fetch h, const void *data, size_t len)
{
    struct coil__worker *w = coil__self;
    struct coil__fetch *f = fetch_at(w, h.id);
    if (!f || f->state == F_DONE)
        return -ENOENT;
    if (!f->stream_body || f->body_done || (len && !data))
        return -EINVAL;
    if (!f->chunked_body && len > f->body_left)
        return -EMSGSIZE;
    if (!len)
        return 0;
    struct coil_conn *c = f->uc ? f->uc->c : NULL;
    if (!c || f->state < F_SENT || coil__conn_queued(c) > COIL_STREAM_HIGH) {
        f->want_writable = true;
        return -EAGAIN;
    }
    char *p = coil__conn_reserve(w, c, len + 24);
    if (!p)
        return -ENOMEM;
    char *start = p;
    if (f->chunked_body)
        p += sprintf(p, "%zx\r\n", len);
    p = put(p, data, len);
    if (f->chunked_body)
        p = put(p, "\r\n", 2);
    c->pend->len += (size_t)(p - start);
    if (!f->chunked_body)
        f->body_left -= len;
    if (f->state == F_SENT) /* the wait for the head counts from the last byte written */
        arm(w, f, w->now_ms + f->pool->up->o.head_timeout_ms);
    coil__conn_queue_flush(w, c); /* may close c, and end f: touch neither after */
    return 0;
}

int coil_fetch_write_end(struct coil_fetch h)
{
    struct coil__worker *w = coil__self;
    struct coil__fetch *f = fetch_at(w, h.id);
    if (!f || f->state == F_DONE)
        return -ENOENT;
    if (!f->stream_body || f->body_done)
        return -EINVAL;
    if (!f->chunked_body && f->body_left) {
        cancel(w, f); /* the upstream waits for bytes that will not come */
        return -EPROTO;
    }
    f->body_done = true;
    f->want_writable = false; /* nothing more to write: no WRITABLE event is due */
    if (!f->chunked_body)
        return 0;
    struct coil_conn *c = f->uc ? f->uc->c : NULL;
    if (!c || f->state < F_SENT) {
        f->end_pending = true; /* sent right behind the request head */
        return 0;
    }
    char *p = coil__conn_reserve(w, c, 5);
    if (!p) {
        cancel(w, f);
        return -ENOMEM;
    }
    memcpy(p, "0\r\n\r\n", 5);
    c->pend->len += 5;
    coil__conn_queue_flush(w, c);
    return 0;
}

/* Reads what was held while paused, then reads the connection again. */
static void resume_fetch(struct coil__worker *w, struct coil__fetch *f)
{
    f->paused = false;
    if (f->piece) {
        char *piece = f->piece;
        size_t n = f->piece_len;
        f->piece = NULL;
        f->piece_len = 0;
        int rc = give(w, f, piece, n);
        coil__wfree(&w->wa, piece);
        if (rc < 0) {
            fail_conn(w, f, gave_up(rc));
            return;
        }
        if (rc == 1)
            return;
    }
    if (body_complete(f)) {
        finish(w, f, f->keep && f->uc && !f->held_len);
        return;
    }
    if (f->held_len) {
        char *held = f->held;
        size_t n = f->held_len;
        f->held = NULL;
        f->held_len = f->held_cap = 0;
        f->received -= n; /* counted when it arrived */
        int rc = feed(w, f, held, n);
        coil__wfree(&w->wa, held);
        if (rc < 0 || f->paused)
            return;
    }
    if (!f->uc) {
        /* The connection ended while paused: what was held was all there will be. */
        if (f->state == F_BODY && f->body == B_CLOSE && !f->conn_failed)
            finish(w, f, false);
        else
            fail(w, f, -ECONNRESET);
        return;
    }
    arm(w, f, w->now_ms + f->pool->up->o.idle_timeout_ms);
    coil__conn_unpause(w, f->uc->c);
}

/* coil_fetch_resume runs the resume at the end of the batch: never inside the caller's stack. */
static void run_resumes(struct coil__worker *w);

int coil_fetch_resume(struct coil_fetch h)
{
    struct coil__worker *w = coil__self;
    struct coil__fetch *f = fetch_at(w, h.id);
    if (!f || !f->paused)
        return -ENOENT;
    struct coil__client *cl = w->client;
    if (!f->resume_due) {
        if (cl->nresume == cl->resume_cap) {
            uint32_t cap = cl->resume_cap ? cl->resume_cap * 2 : 64;
            uint64_t *n = coil__wrealloc(&w->wa, cl->resumes, cap * sizeof(*n));
            if (!n)
                return -ENOMEM;
            cl->resumes = n;
            cl->resume_cap = cap;
        }
        f->resume_due = true;
        cl->resumes[cl->nresume++] = h.id;
    }
    return 0;
}

static void run_resumes(struct coil__worker *w)
{
    struct coil__client *cl = w->client;
    /* A resumed fetch may pause and be resumed again meanwhile: that one waits for the next
     * batch. */
    uint32_t n = cl->nresume;
    for (uint32_t i = 0; i < n; i++) {
        struct coil__fetch *f = fetch_at(w, cl->resumes[i]);
        if (!f || !f->resume_due)
            continue;
        f->resume_due = false;
        if (f->paused)
            resume_fetch(w, f);
    }
    memmove(cl->resumes, cl->resumes + n, (cl->nresume - n) * sizeof(*cl->resumes));
    cl->nresume -= n;
}

void coil__fetches_drop_owner(struct coil__worker *w, struct coil__rq *rq)
{
    /* All are silenced first: ending one may start or fail another queued one. */
    for (struct coil__fetch *f = rq->fetches; f; f = f->owner_next)
        f->dead = true;
    while (rq->fetches) {
        struct coil__fetch *f = rq->fetches;
        owner_unlink(f);
        cancel(w, f);
    }
}

/* ---- per worker ------------------------------------------------------------------------- */

static void batch(struct coil__worker *w)
{
    if (w->client && w->client->nresume)
        run_resumes(w);
}

void coil__client_init(void)
{
    coil__loop_on(EV_BATCH, batch);
}

int coil__client_start(struct coil__worker *w)
{
    struct coil_app *app = w->app;
    if (!app->nupstreams)
        return 0;
    struct coil__client *cl = coil__walloc(&w->wa, sizeof(*cl));
    if (!cl)
        return -ENOMEM;
    memset(cl, 0, sizeof(*cl));
    w->client = cl;
    cl->hdrs = coil__walloc(&w->wa, sizeof(*cl->hdrs) * RESP_MAX_HEADERS);
    cl->pools = coil__walloc(&w->wa, sizeof(*cl->pools) * app->nupstreams);
    if (!cl->hdrs || !cl->pools)
        return -ENOMEM;
    memset(cl->pools, 0, sizeof(*cl->pools) * app->nupstreams);
    cl->npools = app->nupstreams;
    for (const struct coil_upstream *up = app->upstreams; up; up = up->next) {
        struct pool *p = &cl->pools[up->idx];
        p->up = up;
        p->srv = coil__walloc(&w->wa, sizeof(*p->srv) * up->nservers);
        if (!p->srv)
            return -ENOMEM;
        memset(p->srv, 0, sizeof(*p->srv) * up->nservers);
    }
    return coil__slab_init(&cl->fetches, &w->wa, sizeof(struct coil__fetch), MAX_FETCHES);
}

void coil__client_stop(struct coil__worker *w)
{
    struct coil__client *cl = w->client;
    if (!cl)
        return;
    /* Connections are gone by now (the worker closes every one before it stops). */
    if (cl->pools)
        for (unsigned i = 0; i < cl->npools; i++)
            coil__wfree(&w->wa, cl->pools[i].srv);
    coil__wfree(&w->wa, cl->pools);
    coil__wfree(&w->wa, cl->hdrs);
    if (cl->fetches.wa)
        coil__slab_fini(&cl->fetches);
    coil__wfree(&w->wa, cl->resumes);
    coil__wfree(&w->wa, cl);
    w->client = NULL;
}
