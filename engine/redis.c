/* SPDX-License-Identifier: MIT */
/*
 * redis.c: Redis over hiredis' asynchronous API, one connection per worker (coil_redis.h).
 * Built when hiredis is.
 *
 * hiredis drives a connection through five event hooks (add/del read, add/del write, cleanup);
 * here they set the event mask of one coil_watch on the socket, and the watch callback hands
 * readiness back to redisAsyncHandleRead / redisAsyncHandleWrite. hiredis owns and frees its
 * context: after a failed connect (onConnect with an error) or a lost connection (onDisconnect)
 * the context is gone once the callback returns, and every command still pending has had its
 * callback called with no reply. A command is a struct cmd (the user's callback, owner and
 * deadline) in the worker's FIFO, which is also the order Redis answers in, so the oldest
 * command is the head and the only deadline the sweep timer needs to watch.
 *
 * Reconnects back off from 100 ms to 5 s. A command past its deadline closes the connection
 * (Redis cannot cancel one): it fails with -ETIMEDOUT, the rest with -ECONNRESET.
 */
#include <errno.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "coil_redis.h"
#include "internal.h"

#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u

struct coil_redis {
    struct coil_redis_opts o;
    bool flags; /* takes --redis-url */
    bool gate;  /* coil_ready waits for it */
    char *url;
    char *addr;     /* numeric addresses, settled at run: "a\0b\0..." */
    unsigned naddr; /* how many; a failed connect moves a worker to the next */
    int port;
    char *password, *user;
    int db;
    unsigned nworkers;
    struct rconn **conns;
    _Atomic bool *up;
};

struct cmd {
    struct cmd *next;
    struct rconn *c;
    coil_redis_fn fn;
    void *ud;
    uint64_t owner;
    uint64_t deadline_ms;
    int fail; /* set before the connection is freed under it: the error to report */
};

enum { R_DOWN, R_CONNECTING, R_UP, R_CLOSING };

struct rconn {
    struct coil_redis *r;
    struct coil__worker *w;
    unsigned id;
    redisAsyncContext *ac;
    struct coil_watch watch;
    int fd;
    unsigned events;
    uint8_t state;
    bool was_up;         /* R_CLOSING: it was R_UP */
    bool refuse_due;     /* AUTH or SELECT was refused: close after the read */
    bool connected;      /* R_CONNECTING: the socket is, AUTH/SELECT may still be due */
    unsigned setup_left; /* AUTH and SELECT replies still due */
    char refused[160];
    const char *close_why; /* R_CLOSING: why */
    bool stopping;
    bool logged; /* a failure was logged; no connection since */
    uint32_t backoff_ms;
    uint32_t rnd;
    unsigned addr; /* which of r's addresses it connects to */
    uint64_t connect_deadline;
    struct coil_timer retry;
    struct coil__deadline sweep;
    struct cmd *head, *tail; /* in flight, oldest first */
    uint32_t pending;
};

static void conn_start(struct rconn *c);
static void conn_close(struct rconn *c, const char *why);
static void sweep_arm(struct rconn *c, uint64_t at);

/* ---- URL and options -------------------------------------------------------------------- */

static int set_url(const char *v, void *ud)
{
    struct coil_redis *r = ud;
    char *s = strdup(v);
    if (!s)
        return -1;
    free(r->url);
    r->url = s;
    return 0;
}

/* %XX escapes decoded in place (a password may hold '@', ':' or '/'); -1 for a bad one. */
static int unescape(char *s)
{
    char *o = s;
    for (char *i = s; *i; i++) {
        if (*i != '%') {
            *o++ = *i;
            continue;
        }
        int hi = i[1] ? (i[1] >= 'a'   ? i[1] - 'a' + 10
                         : i[1] >= 'A' ? i[1] - 'A' + 10
                                       : i[1] - '0')
                      : -1;
        int lo = hi >= 0 && i[2] ? (i[2] >= 'a'   ? i[2] - 'a' + 10
                                    : i[2] >= 'A' ? i[2] - 'A' + 10
                                                  : i[2] - '0')
                                 : -1;
        if (hi < 0 || hi > 15 || lo < 0 || lo > 15)
            return -1;
        *o++ = (char)(hi * 16 + lo);
        i += 2;
    }
    *o = 0;
    return 0;
}

/* redis://[[user]:password@]host[:port][/db], user and password percent-encoded */
static int parse_url(struct coil_redis *r, char **host)
{
    const char *u = r->url;
    if (strncmp(u, "redis://", 8) != 0)
        return -1;
    u += 8;
    const char *at = strrchr(u, '@'), *hp = at ? at + 1 : u;
    if (at) {
        const char *colon = memchr(u, ':', (size_t)(at - u));
        if (colon) {
            if (colon > u && !(r->user = strndup(u, (size_t)(colon - u))))
                return -1;
            if (!(r->password = strndup(colon + 1, (size_t)(at - colon - 1))))
                return -1;
        } else if (!(r->password = strndup(u, (size_t)(at - u)))) {
            return -1;
        }
    }
    if ((r->user && unescape(r->user) < 0) || (r->password && unescape(r->password) < 0))
        return -1;
    const char *slash = strchr(hp, '/');
    const char *end = slash ? slash : hp + strlen(hp);
    const char *pc = NULL;
    if (*hp == '[') {
        const char *rb = memchr(hp, ']', (size_t)(end - hp));
        if (!rb)
            return -1;
        *host = strndup(hp + 1, (size_t)(rb - hp - 1));
        pc = rb + 1 < end && rb[1] == ':' ? rb + 1 : NULL;
    } else {
        pc = memchr(hp, ':', (size_t)(end - hp));
        *host = strndup(hp, (size_t)((pc ? pc : end) - hp));
    }
    if (!*host || !**host)
        return -1;
    r->port = 6379;
    if (pc) {
        char *e;
        long p = strtol(pc + 1, &e, 10);
        if (e != end || p < 1 || p > 65535)
            return -1;
        r->port = (int)p;
    }
    if (slash && slash[1]) {
        char *e;
        long d = strtol(slash + 1, &e, 10);
        if (*e || d < 0 || d > 65535)
            return -1;
        r->db = (int)d;
    }
    return 0;
}

static int on_run(void *ud)
{
    struct coil_redis *r = ud;
    if (!r->url && r->flags) {
        const char *e = getenv("REDIS_URL");
        if (e && *e && !(r->url = strdup(e)))
            return -1;
    }
    r->nworkers = coil_worker_count();
    r->conns = calloc(r->nworkers, sizeof(*r->conns));
    r->up = calloc(r->nworkers, sizeof(*r->up));
    if (!r->conns || !r->up)
        return -1;
    if (!r->o.timeout_ms)
        r->o.timeout_ms = 1000;
    if (!r->o.connect_timeout_ms)
        r->o.connect_timeout_ms = 2000;
    if (!r->o.max_pending)
        r->o.max_pending = 65536;
    if (!r->url)
        return 0;
    char *host = NULL;
    if (parse_url(r, &host) < 0) {
        fprintf(stderr, "coil: --redis-url: want redis://[:password@]host[:port][/db], got %s\n",
                r->url);
        free(host);
        return -1;
    }
    r->addr = coil__resolve_all(host, &r->naddr);
    if (!r->addr) {
        fprintf(stderr, "coil: --redis-url: cannot resolve %s\n", host);
        free(host);
        return -1;
    }
    coil__log("redis: %s:%d (%s), db %d", host, r->port, r->addr, r->db);
    for (char *q = r->addr; (q = strchr(q, ',')); q++)
        *q = 0;
    free(host);
    return 0;
}

static void on_done(void *ud)
{
    struct coil_redis *r = ud;
    free(r->conns);
    free((void *)r->up);
    free(r->url);
    free(r->addr);
    free(r->user);
    free(r->password);
    free(r);
}

bool coil_redis_configured(const struct coil_redis *r)
{
    return r && r->url && r->addr;
}

bool coil_redis_ready(const struct coil_redis *r)
{
    if (!coil_redis_configured(r) || !r->up)
        return true;
    for (unsigned i = 0; i < r->nworkers; i++)
        if (!atomic_load_explicit(&r->up[i], memory_order_relaxed))
            return false;
    return true;
}

static bool gate_check(void *ud)
{
    struct coil_redis *r = ud;
    return !r->gate || coil_redis_ready(r);
}

/* ---- hiredis' event hooks --------------------------------------------------------------- */

static void on_event(int fd, unsigned events, void *ud);

static void set_events(struct rconn *c, unsigned events)
{
    if (!c->ac)
        return;
    if (c->watch.id && events == c->events)
        return;
    c->events = events;
    if (c->watch.id) {
        if (events)
            coil_watch_update(c->watch, events);
        else
            coil_watch_update(c->watch, COIL_READABLE); /* a watch needs a mask: keep reading */
        return;
    }
    if (!events)
        return;
    c->fd = c->ac->c.fd;
    c->watch = coil_watch(c->fd, events, on_event, c);
}

static void ev_add_read(void *p)
{
    struct rconn *c = p;
    set_events(c, c->events | COIL_READABLE);
}

static void ev_del_read(void *p)
{
    struct rconn *c = p;
    set_events(c, c->events & ~(unsigned)COIL_READABLE);
}

static void ev_add_write(void *p)
{
    struct rconn *c = p;
    set_events(c, c->events | COIL_WRITABLE);
}

static void ev_del_write(void *p)
{
    struct rconn *c = p;
    set_events(c, c->events & ~(unsigned)COIL_WRITABLE);
}

static void ev_cleanup(void *p)
{
    struct rconn *c = p;
    if (c->watch.id)
        coil_unwatch(c->watch);
    c->watch.id = 0;
    c->events = 0;
}

static void on_event(int fd, unsigned events, void *ud)
{
    struct rconn *c = ud;
    (void)fd;
    if (!c->ac)
        return;
    redisAsyncContext *ac = c->ac;
    if (events & (COIL_READABLE | COIL_ERROR | COIL_HANGUP))
        redisAsyncHandleRead(ac);
    if (c->ac == ac && c->refuse_due) {
        c->refuse_due = false;
        c->logged = false; /* say why, once */
        conn_close(c, c->refused);
        return;
    }
    /* the read may have freed the context (a lost connection) */
    if (c->ac == ac && (events & COIL_WRITABLE))
        redisAsyncHandleWrite(ac);
}

/* ---- connection state ------------------------------------------------------------------- */

static void set_up(struct rconn *c, bool up)
{
    atomic_store_explicit(&c->r->up[c->id], up, memory_order_relaxed);
}

static void retry_cb(void *ud)
{
    struct rconn *c = ud;
    c->retry.id = 0;
    if (!c->stopping && c->state == R_DOWN)
        conn_start(c);
}

/* The context is gone (hiredis freed it, or is about to): back off and reconnect. */
static void went_down(struct rconn *c, const char *why)
{
    bool was_up = c->state == R_UP || (c->state == R_CLOSING && c->was_up);
    if (c->state == R_CLOSING)
        why = c->close_why;
    c->ac = NULL;
    if (c->watch.id) /* a failed connect reaches here before hiredis' cleanup hook */
        coil_unwatch(c->watch);
    c->watch.id = 0;
    c->events = 0;
    c->state = R_DOWN;
    set_up(c, false);
    if (c->stopping)
        return;
    if (was_up)
        coil__log("worker %u: redis connection lost: %s", c->id, why);
    else if (!c->logged)
        coil__log("worker %u: cannot connect to redis: %s (retrying)", c->id, why);
    if (!was_up)
        c->addr++; /* the next address, if there are several */
    c->logged = true;
    uint32_t ms = coil__backoff(&c->backoff_ms, &c->rnd, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    c->retry = coil_timer_after(NULL, ms, retry_cb, c);
}

/* Connected, and AUTH and SELECT (if any) accepted: commands may go. */
static void now_up(struct rconn *c)
{
    c->state = R_UP;
    c->backoff_ms = 0;
    set_up(c, true);
    if (c->logged && !c->stopping)
        coil__log("worker %u: redis connection open", c->id);
    c->logged = false;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct rconn *c = ac->data;
    if (status != REDIS_OK) {
        went_down(c, ac->errstr[0] ? ac->errstr : "connect failed");
        return;
    }
    c->connected = true;
    if (c->setup_left == 0)
        now_up(c);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct rconn *c = ac->data;
    went_down(c, status == REDIS_OK ? "closed" : ac->errstr[0] ? ac->errstr : "connection lost");
}

/* AUTH or SELECT refused: the connection is of no use (every command would fail); it is closed
 * and retried with backoff, and the worker counts as having none. */
static void auth_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    redisReply *rep = reply;
    struct rconn *c = ac->data;
    (void)priv;
    if (!rep || c->ac != ac)
        return; /* the connection is going: nothing to do */
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(c->refused, sizeof(c->refused), "redis refused AUTH or SELECT: %s", rep->str);
        c->refuse_due = true; /* closed after this callback: hiredis frees nothing under it */
    } else if (--c->setup_left == 0 && c->connected && c->state == R_CONNECTING) {
        now_up(c);
    }
}

static void conn_start(struct rconn *c)
{
    struct coil_redis *r = c->r;
    const char *addr = r->addr;
    for (unsigned i = 0; i < c->addr % r->naddr; i++)
        addr += strlen(addr) + 1;
    redisAsyncContext *ac = redisAsyncConnect(addr, r->port);
    if (!ac) {
        c->state = R_CONNECTING;
        went_down(c, "out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof(why), "%s", ac->errstr);
        redisAsyncFree(ac);
        c->state = R_CONNECTING;
        went_down(c, why);
        return;
    }
    c->ac = ac;
    c->state = R_CONNECTING;
    ac->data = c;
    ac->ev.data = c;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    ev_add_write(c); /* the connect completes when the socket is writable */
    /* AUTH and SELECT go first, queued until the connect completes. */
    c->connected = false;
    c->setup_left = (r->password ? 1u : 0u) + (r->db ? 1u : 0u);
    if (r->password) {
        if (r->user)
            redisAsyncCommand(ac, auth_reply, NULL, "AUTH %s %s", r->user, r->password);
        else
            redisAsyncCommand(ac, auth_reply, NULL, "AUTH %s", r->password);
    }
    if (r->db)
        redisAsyncCommand(ac, auth_reply, NULL, "SELECT %d", r->db);
    c->connect_deadline = c->w->now_ms + r->o.connect_timeout_ms;
    sweep_arm(c, c->connect_deadline);
}

/* Closes the connection now (a timeout, or the worker stopping). */
static void conn_close(struct rconn *c, const char *why)
{
    redisAsyncContext *ac = c->ac;
    if (!ac)
        return;
    c->was_up = c->state == R_UP;
    c->close_why = why;
    c->state = R_CLOSING; /* no new commands while the pending ones are failed */
    redisAsyncFree(ac);   /* pending callbacks run with no reply, then onDisconnect if it was up */
    if (c->ac)            /* onDisconnect did not run (it never connected) */
        went_down(c, why);
}

/* ---- commands --------------------------------------------------------------------------- */

static void convert(const redisReply *in, struct coil_redis_reply *out,
                    struct coil_redis_reply *elems)
{
    memset(out, 0, sizeof(*out));
    out->message = "";
    switch (in->type) {
    case REDIS_REPLY_NIL:
        out->type = COIL_REDIS_NIL;
        break;
    case REDIS_REPLY_STRING:
    case REDIS_REPLY_STATUS:
    case REDIS_REPLY_ERROR:
        out->type = in->type == REDIS_REPLY_STRING   ? COIL_REDIS_STRING
                    : in->type == REDIS_REPLY_STATUS ? COIL_REDIS_STATUS
                                                     : COIL_REDIS_ERROR;
        out->str = (struct coil_str){in->str, (size_t)in->len};
        break;
    case REDIS_REPLY_INTEGER:
        out->type = COIL_REDIS_INTEGER;
        out->integer = in->integer;
        break;
    default:
        out->type = COIL_REDIS_ARRAY;
        out->nelements = in->elements;
        out->elements = elems;
        break;
    }
}

/* Builds the reply tree (arrays nest) in one allocation, then calls fn. */
static size_t count_nodes(const redisReply *r)
{
    size_t n = 1;
    if (r->type == REDIS_REPLY_ARRAY)
        for (size_t i = 0; i < r->elements; i++)
            n += count_nodes(r->element[i]);
    return n;
}

static size_t fill(const redisReply *in, struct coil_redis_reply *out,
                   struct coil_redis_reply *pool)
{
    size_t used = 0;
    struct coil_redis_reply *kids = in->type == REDIS_REPLY_ARRAY ? pool : NULL;
    convert(in, out, kids);
    if (kids) {
        used = in->elements;
        for (size_t i = 0; i < in->elements; i++)
            used += fill(in->element[i], &kids[i], pool + used);
    }
    return used;
}

static void report(struct cmd *k, const redisReply *rep)
{
    struct coil__worker *w = k->c->w;
    if (!k->fn || !coil__owner_alive(w, k->owner))
        return;
    if (!rep) {
        struct coil_redis_reply e = {.error = k->fail ? k->fail : -ECONNRESET,
                                     .message =
                                         k->fail == -ETIMEDOUT   ? "redis did not answer in time"
                                         : k->fail == -ESHUTDOWN ? "the worker stopped"
                                                                 : "the redis connection failed"};
        k->fn(&e, k->ud);
        return;
    }
    size_t n = count_nodes(rep);
    struct coil_redis_reply one, *tree = n == 1 ? &one : coil_malloc(n * sizeof(*tree));
    if (!tree) {
        struct coil_redis_reply e = {.error = -ENOMEM, .message = "out of memory"};
        k->fn(&e, k->ud);
        return;
    }
    fill(rep, tree, tree + 1);
    k->fn(tree, k->ud);
    if (tree != &one)
        coil_free(tree);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *priv)
{
    struct cmd *k = priv;
    struct rconn *c = k->c;
    (void)ac;
    /* Replies come in order: k is the head (searched all the same). */
    struct cmd **p = &c->head, *prev = NULL;
    while (*p && *p != k) {
        prev = *p;
        p = &(*p)->next;
    }
    if (*p) {
        *p = k->next;
        if (c->tail == k)
            c->tail = prev;
        c->pending--;
    }
    report(k, reply);
    coil_free(k);
}

static void on_sweep(void *ud)
{
    struct rconn *c = ud;
    c->sweep.at = 0;
    if (c->stopping)
        return;
    uint64_t now = coil__clock_ns() / 1000000u;
    if (c->state == R_CONNECTING && c->connect_deadline <= now) {
        conn_close(c, "timed out connecting");
        return;
    }
    if (c->head && c->head->deadline_ms <= now) {
        c->head->fail = -ETIMEDOUT;
        for (struct cmd *k = c->head->next; k; k = k->next)
            k->fail = -ECONNRESET;
        conn_close(c, "a command timed out");
        return;
    }
    if (c->head)
        sweep_arm(c, c->head->deadline_ms);
    else if (c->state == R_CONNECTING)
        sweep_arm(c, c->connect_deadline);
}

static void sweep_arm(struct rconn *c, uint64_t at)
{
    coil__deadline_arm(&c->sweep, at, on_sweep, c);
}

static bool is_word(struct coil_str s, const char *w)
{
    return s.len == strlen(w) && !strncasecmp(s.ptr, w, s.len);
}

/* Commands that change what the shared connection answers to every other request: pub/sub and
 * MONITOR (several replies, or none, per command), CLIENT REPLY (none), SELECT, AUTH, HELLO and
 * RESET (another database, user or protocol for all), QUIT. Refused. */
static bool breaks_connection(int argc, const struct coil_str *argv)
{
    static const char *const words[] = {
        "SUBSCRIBE",    "PSUBSCRIBE", "SSUBSCRIBE", "UNSUBSCRIBE", "PUNSUBSCRIBE",
        "SUNSUBSCRIBE", "MONITOR",    "SELECT",     "AUTH",        "HELLO",
        "RESET",        "QUIT",       "SYNC",       "PSYNC",       "REPLCONF",
    };
    for (size_t i = 0; i < sizeof(words) / sizeof(words[0]); i++)
        if (is_word(argv[0], words[i]))
            return true;
    return argc > 1 && is_word(argv[0], "CLIENT") && is_word(argv[1], "REPLY");
}

int coil_redis_command(struct coil_req *owner, struct coil_redis *r, int argc,
                       const struct coil_str *argv, coil_redis_fn fn, void *ud)
{
    struct coil__worker *w = coil__self;
    if (!w || !r || argc < 1 || argc > 1024 || !argv || !argv[0].ptr ||
        breaks_connection(argc, argv))
        return -EINVAL;
    uint64_t id = coil__owner_id(w, owner);
    if (owner && !id)
        return -EINVAL; /* the owner must have deferred: it outlives its handler */
    struct rconn *c = r->conns ? r->conns[w->id] : NULL;
    if (!c || c->state != R_UP || !c->ac)
        return -ENOTCONN;
    if (c->pending >= r->o.max_pending)
        return -EBUSY;
    struct cmd *k = coil_malloc(sizeof(*k));
    const char *av[16];
    size_t al[16];
    const char **pv = argc <= 16 ? av : coil_malloc((size_t)argc * sizeof(*pv));
    size_t *pl = argc <= 16 ? al : coil_malloc((size_t)argc * sizeof(*pl));
    int err = 0;
    if (!k || !pv || !pl) {
        err = -ENOMEM;
        goto out;
    }
    for (int i = 0; i < argc; i++) {
        pv[i] = argv[i].ptr ? argv[i].ptr : "";
        pl[i] = argv[i].len;
    }
    *k = (struct cmd){
        .c = c, .fn = fn, .ud = ud, .owner = id, .deadline_ms = w->now_ms + r->o.timeout_ms};
    if (redisAsyncCommandArgv(c->ac, on_reply, k, argc, pv, pl) != REDIS_OK) {
        err = -ENOTCONN;
        goto out;
    }
    if (c->tail)
        c->tail->next = k;
    else
        c->head = k;
    c->tail = k;
    c->pending++;
    k = NULL;
    sweep_arm(c, c->tail->deadline_ms);
out:
    coil_free(k);
    if (pv != av)
        coil_free(pv);
    if (pl != al)
        coil_free(pl);
    return err;
}

int coil_redis_get(struct coil_req *owner, struct coil_redis *r, struct coil_str key,
                   coil_redis_fn fn, void *ud)
{
    struct coil_str a[2] = {{"GET", 3}, key};
    return coil_redis_command(owner, r, 2, a, fn, ud);
}

int coil_redis_set(struct coil_req *owner, struct coil_redis *r, struct coil_str key,
                   struct coil_str value, uint32_t ttl_ms, coil_redis_fn fn, void *ud)
{
    char t[16];
    struct coil_str a[5] = {{"SET", 3}, key, value, {"PX", 2}, {t, 0}};
    a[4].len = (size_t)snprintf(t, sizeof(t), "%u", ttl_ms);
    return coil_redis_command(owner, r, ttl_ms ? 5 : 3, a, fn, ud);
}

int coil_redis_del(struct coil_req *owner, struct coil_redis *r, struct coil_str key,
                   coil_redis_fn fn, void *ud)
{
    struct coil_str a[2] = {{"DEL", 3}, key};
    return coil_redis_command(owner, r, 2, a, fn, ud);
}

/* ---- worker start and stop -------------------------------------------------------------- */

static void conn_open(unsigned worker, void *ud)
{
    struct coil_redis *r = ud;
    if (!coil_redis_configured(r))
        return;
    struct rconn *c = coil_malloc(sizeof(*c));
    if (!c) {
        coil__log("worker %u: redis: out of memory", worker);
        return;
    }
    *c = (struct rconn){
        .r = r, .w = coil__self, .id = worker, .fd = -1, .rnd = 2246822519u * (worker + 1)};
    r->conns[worker] = c;
    conn_start(c);
}

static void conn_stop(unsigned worker, void *ud)
{
    struct coil_redis *r = ud;
    struct rconn *c = r->conns ? r->conns[worker] : NULL;
    if (!c)
        return;
    c->stopping = true;
    if (c->retry.id)
        coil_timer_cancel(c->retry);
    coil__deadline_cancel(&c->sweep);
    for (struct cmd *k = c->head; k; k = k->next)
        k->fail = -ESHUTDOWN;
    conn_close(c, "the worker stopped");
    r->conns[worker] = NULL;
    coil_free(c);
}

struct coil_redis *coil_redis_open(struct coil_app *app, const struct coil_redis_opts *opts)
{
    static _Atomic bool flags_taken;
    if (!app)
        return NULL;
    struct coil_redis *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    if (opts)
        r->o = *opts;
    if (opts && opts->url) {
        if (!(r->url = strdup(opts->url))) {
            free(r);
            return NULL;
        }
    } else if (atomic_exchange(&flags_taken, true)) {
        fprintf(stderr, "coil: coil_redis_open: only one server can take --redis-url\n");
        free(r);
        return NULL;
    } else {
        r->flags = true;
        if (coil_app_option(app, "redis-url", "COIL_REDIS_URL", "URL",
                            "Redis to use: redis://[:password@]host[:port][/db] (else REDIS_URL)",
                            set_url, r) < 0) {
            free(r);
            return NULL;
        }
    }
    r->o.url = NULL;
    if (coil_app_on_run(app, on_run, on_done, r) < 0 ||
        coil_app_on_worker(app, conn_open, conn_stop, r) < 0 ||
        coil_app_ready_check(app, gate_check, r) < 0) {
        fprintf(stderr, "coil: coil_redis_open: out of memory\n");
        return NULL;
    }
    return r;
}

int coil_redis_gate(struct coil_redis *r)
{
    if (!r)
        return -EINVAL;
    r->gate = true;
    return 0;
}
