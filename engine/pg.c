/* SPDX-License-Identifier: MIT */
/*
 * pg.c: PostgreSQL over libpq, per worker, on fd readiness (coil_pg.h). Built when libpq is.
 *
 * A database (struct coil_pg) is declared on the main thread; at coil_app_run its connection
 * parameters are settled once (options, environment, the host name resolved to an address so
 * no worker ever waits on DNS) and each worker then opens its own pool (struct pool) in its
 * start hook. A connection (struct link) is a libpq connection in non-blocking pipeline mode
 * with one coil_watch on its socket: READABLE always once open, WRITABLE while libpq holds
 * output it could not send.
 *
 * Queries in flight on a link sit in its ring (struct slot), oldest first, because pipeline
 * mode answers in order. Each user query is sent as the query and its own Sync, so the server
 * runs it as its own implicit transaction, and libpq reports it as: its result, NULL, then a
 * PIPELINE_SYNC result. The head slot's stage says which of the three it waits for; its callback
 * runs once the Sync arrives. The prepared statements are sent the same way, first, on every new
 * link (slots of kind K_PREPARE).
 *
 * A query that finds no link with room waits in the pool's queue (a copy of its parameters in
 * one block). Results are delivered only to owners that are still alive (the owner's coil_defer
 * id is checked through coil__rq_at), so an aborted request's query runs out on the server and
 * its result is dropped.
 *
 * Faults close the link (link_fail): its slots fail, its socket is unwatched and the libpq
 * connection freed, and a timer reconnects it after a backoff. Callbacks may send new queries,
 * even to the link being read, and may fail links: every loop over a link's slots checks the
 * link's epoch, which changes whenever it closes. One timer per pool (sweep) fires at the
 * earliest deadline of anything waiting: queued queries, the oldest query of each link, and
 * links still connecting.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "coil_pg.h"
#include "internal.h"

#define BACKOFF_MIN_MS 100u
#define BACKOFF_MAX_MS 5000u
#define DEFAULT_POOL 4u
#define DEFAULT_POOL_TOTAL 64u /* the default pool shrinks with many workers to stay under it */

struct stmt {
    char *name;
    char *sql;
};

struct coil_pg {
    struct coil_app *app;
    struct coil_pg_opts o;
    bool flags;    /* takes --database-url and friends */
    bool pool_set; /* --db-pool given */
    char *url;     /* conninfo as given, or the options' */
    struct stmt *stmts;
    unsigned nstmts;
    /* Settled at run: libpq's keyword/value pairs, NULL-terminated, with hostaddr filled in. */
    char **kw, **val;
    char *host;         /* the name resolved to hostaddr (by the resolver if it failed at start) */
    int host_i, addr_i; /* their indexes in kw/val */
    _Atomic bool unresolved; /* the resolver has not found it yet: no connects */
    pthread_t resolver;
    bool resolver_on;
    _Atomic bool stop_resolver;
    char *label; /* user@host:port/db for the log, without the password */
    unsigned nworkers;
    struct pool **pools;    /* per worker */
    _Atomic bool *has_link; /* per worker: at least one link open */
};

enum { K_QUERY, K_PREPARE };
enum { S_RESULT, S_END, S_SYNC }; /* what the head slot waits for */

struct slot {
    coil_pg_fn fn;
    void *ud;
    uint64_t owner; /* coil_defer id; 0: none */
    uint64_t deadline_ms;
    PGresult *res; /* its result, held until the Sync */
    uint8_t kind;
    uint8_t stage;
    uint16_t stmt; /* K_PREPARE: index in db->stmts */
};

enum { L_DOWN, L_CONNECTING, L_OPEN };

struct link {
    struct pool *p;
    PGconn *pg;
    int fd;
    unsigned events; /* watched */
    struct coil_watch watch;
    uint8_t state;
    bool want_write;      /* libpq holds output */
    uint32_t epoch;       /* changes when the link closes */
    uint64_t deadline_ms; /* L_CONNECTING: give up then */
    uint32_t backoff_ms;
    struct coil_timer retry;
    struct slot *ring; /* cap slots */
    uint32_t head, count, cap;
    uint32_t queries; /* K_QUERY slots in ring */
};

/* A query waiting for room: its parameters copied after it. */
struct waiter {
    struct waiter *next;
    coil_pg_fn fn;
    void *ud;
    uint64_t owner;
    uint64_t deadline_ms;
    const char *stmt, *sql;
    int nparams;
    const char **values; /* nparams entries, then the bytes */
};

struct pool {
    struct coil_pg *db;
    struct coil__worker *w;
    unsigned id;
    struct link *links;
    unsigned nlinks, open;
    struct waiter *qhead, *qtail;
    unsigned qlen;
    struct coil__deadline sweep;
    bool down_logged; /* a failure was logged and no link opened since */
    bool down;        /* no link open, and a connect failed or the last link was lost since one was:
                       * queries fail at once (before the first connects, they wait instead) */
    bool stopping;
    uint32_t rnd;
    /* sending: parameters made NUL-terminated */
    const char **vals;
    unsigned vcap;
    char *bytes;
    size_t bcap;
};

static void link_start(struct link *l);
static void link_fail(struct link *l, int err, const char *why);
static void link_retry_cb(void *ud);
static void pump(struct pool *p);
static void sweep_arm(struct pool *p, uint64_t at);

/* ---- options ---------------------------------------------------------------------------- */

static int set_url(const char *v, void *ud)
{
    struct coil_pg *db = ud;
    char *s = strdup(v);
    if (!s)
        return -1;
    free(db->url);
    db->url = s;
    return 0;
}

static int set_u32(const char *v, uint32_t *out, uint64_t max)
{
    uint64_t n;
    if (coil__parse_count(v, &n) < 0 || n < 1 || n > max)
        return -1;
    *out = (uint32_t)n;
    return 0;
}

static int set_pool(const char *v, void *ud)
{
    struct coil_pg *db = ud;
    db->pool_set = true;
    return set_u32(v, &db->o.pool, 4096);
}

static int set_pipeline(const char *v, void *ud)
{
    return set_u32(v, &((struct coil_pg *)ud)->o.pipeline, 4096);
}

static int set_queue(const char *v, void *ud)
{
    return set_u32(v, &((struct coil_pg *)ud)->o.queue, 1u << 24);
}

static int set_timeout(const char *v, void *ud)
{
    uint64_t ms;
    if (coil__parse_duration_ms(v, &ms) < 0 || ms < 1 || ms > 86400000)
        return -1;
    ((struct coil_pg *)ud)->o.timeout_ms = (uint32_t)ms;
    return 0;
}

static int add_options(struct coil_app *app, struct coil_pg *db)
{
    int err = 0;
    err |= coil_app_option(app, "database-url", "COIL_DATABASE_URL", "URL",
                           "PostgreSQL to use (libpq URL or key=value string; else DATABASE_URL)",
                           set_url, db);
    err |= coil_app_option(app, "db-pool", "COIL_DB_POOL", "N",
                           "database connections per worker (default: DATABASE_MAX_CONN over "
                           "the workers, else 4)",
                           set_pool, db);
    err |= coil_app_option(app, "db-pipeline", "COIL_DB_PIPELINE", "N",
                           "queries in flight per database connection (32)", set_pipeline, db);
    err |= coil_app_option(app, "db-queue", "COIL_DB_QUEUE", "N",
                           "queries waiting per worker when the pool is full (4096), then 503",
                           set_queue, db);
    err |= coil_app_option(app, "db-timeout", "COIL_DB_TIMEOUT", "DUR",
                           "per query, from sent to answered (5s)", set_timeout, db);
    return err ? -1 : 0;
}

/* ---- settling the connection parameters (main thread, at run) --------------------------- */

static bool is_address(const char *h)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, h, buf) == 1 || inet_pton(AF_INET6, h, buf) == 1;
}

/* host resolved to addrs (n of them): libpq tries each in turn, as host must then be repeated
 * once per address. Before the workers connect, or before unresolved is cleared. */
static int apply_addrs(struct coil_pg *db, char *addrs, unsigned n)
{
    size_t hl = strlen(db->host);
    char *hosts = malloc((hl + 1) * n);
    if (!hosts) {
        free(addrs);
        return -1;
    }
    for (unsigned i = 0; i < n; i++) {
        memcpy(hosts + i * (hl + 1), db->host, hl);
        hosts[i * (hl + 1) + hl] = i + 1 < n ? ',' : 0;
    }
    free(db->val[db->host_i]);
    db->val[db->host_i] = hosts;
    free(db->val[db->addr_i]);
    db->val[db->addr_i] = addrs;
    return 0;
}

/* A name that did not resolve at start: retried here, off the workers, once a second. */
static void *resolver_main(void *arg)
{
    struct coil_pg *db = arg;
    while (!atomic_load(&db->stop_resolver)) {
        unsigned n;
        char *a = coil__resolve_all(db->host, &n);
        if (a) {
            coil__log("database: %s resolved to %s", db->host, a);
            if (apply_addrs(db, a, n) == 0)
                atomic_store(&db->unresolved, false); /* publishes val */
            return NULL;
        }
        for (int i = 0; i < 10 && !atomic_load(&db->stop_resolver); i++)
            usleep(100000);
    }
    return NULL;
}

static int settle(struct coil_pg *db)
{
    char *err = NULL;
    PQconninfoOption *opts = PQconninfoParse(db->url, &err);
    if (!opts) {
        fprintf(stderr, "coil: --database-url: %s", err ? err : "out of memory\n");
        PQfreemem(err);
        return -1;
    }
    size_t n = 0;
    const char *host = NULL, *hostaddr = NULL, *user = NULL, *port = NULL, *dbname = NULL;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        n++;
        if (!strcmp(o->keyword, "host"))
            host = o->val;
        else if (!strcmp(o->keyword, "hostaddr"))
            hostaddr = o->val;
        else if (!strcmp(o->keyword, "user"))
            user = o->val;
        else if (!strcmp(o->keyword, "port"))
            port = o->val;
        else if (!strcmp(o->keyword, "dbname"))
            dbname = o->val;
    }
    db->kw = calloc(n + 3, sizeof(char *));
    db->val = calloc(n + 3, sizeof(char *));
    if (!db->kw || !db->val)
        goto nomem;
    size_t k = 0;
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val || !*o->val)
            continue;
        db->kw[k] = strdup(o->keyword);
        db->val[k] = strdup(o->val);
        if (!db->kw[k] || !db->val[k])
            goto nomem;
        k++;
    }
    bool app_name = false;
    for (size_t i = 0; i < k; i++)
        app_name |= !strcmp(db->kw[i], "application_name");
    if (!app_name) {
        db->kw[k] = strdup("application_name");
        db->val[k] = strdup("coil");
        if (!db->kw[k] || !db->val[k])
            goto nomem;
        k++;
    }
    /* One name, not a socket directory, not an address, no hostaddr: resolve it now. */
    if (host && !hostaddr && host[0] != '/' && host[0] != '@' && !strchr(host, ',') &&
        !is_address(host)) {
        for (size_t i = 0; i < k; i++)
            if (!strcmp(db->kw[i], "host"))
                db->host_i = (int)i;
        db->addr_i = (int)k;
        db->kw[k++] = strdup("hostaddr");
        db->host = strdup(host);
        if (!db->kw[db->addr_i] || !db->host)
            goto nomem;
        unsigned naddr;
        char *a = coil__resolve_all(host, &naddr);
        if (a) {
            if (apply_addrs(db, a, naddr) < 0)
                goto nomem;
        } else {
            coil__log("database: cannot resolve %s now: retrying in the background", host);
            atomic_store(&db->unresolved, true);
            db->resolver_on = pthread_create(&db->resolver, NULL, resolver_main, db) == 0;
            if (!db->resolver_on)
                goto nomem;
        }
    }
    char label[512];
    snprintf(label, sizeof(label), "%s@%s:%s/%s", user ? user : "-",
             host       ? host
             : hostaddr ? hostaddr
                        : "localhost",
             port ? port : "5432",
             dbname ? dbname
             : user ? user
                    : "-");
    db->label = strdup(label);
    PQconninfoFree(opts);
    return db->label ? 0 : -1;
nomem:
    PQconninfoFree(opts);
    fprintf(stderr, "coil: database: out of memory\n");
    return -1;
}

static int on_run(void *ud)
{
    struct coil_pg *db = ud;
    if (!db->url && db->flags) {
        const char *e = getenv("DATABASE_URL");
        if (e && *e && !(db->url = strdup(e)))
            return -1;
    }
    db->nworkers = coil_worker_count();
    if (!db->pool_set && !db->o.pool) {
        const char *m = getenv("DATABASE_MAX_CONN");
        uint64_t total;
        if (db->flags && m && *m && coil__parse_count(m, &total) == 0 && total > 0) {
            db->o.pool = (uint32_t)(total / db->nworkers ? total / db->nworkers : 1);
        } else {
            uint32_t per = DEFAULT_POOL_TOTAL / db->nworkers;
            db->o.pool = per < 1 ? 1 : per > DEFAULT_POOL ? DEFAULT_POOL : per;
        }
    }
    if (!db->o.pipeline)
        db->o.pipeline = 32;
    if (!db->o.queue)
        db->o.queue = 4096;
    if (!db->o.timeout_ms)
        db->o.timeout_ms = 5000;
    if (!db->o.connect_timeout_ms)
        db->o.connect_timeout_ms = 5000;
    db->pools = calloc(db->nworkers, sizeof(*db->pools));
    db->has_link = calloc(db->nworkers, sizeof(*db->has_link));
    if (!db->pools || !db->has_link) {
        fprintf(stderr, "coil: database: out of memory\n");
        return -1;
    }
    if (!db->url)
        return 0; /* not configured: queries fail with -ENOTCONN */
    if (settle(db) < 0)
        return -1;
    coil__log("database: %s, %u connections per worker, %u queries in flight each", db->label,
              db->o.pool, db->o.pipeline);
    return 0;
}

static void on_done(void *ud)
{
    struct coil_pg *db = ud;
    if (db->resolver_on) {
        atomic_store(&db->stop_resolver, true);
        pthread_join(db->resolver, NULL);
    }
    for (size_t i = 0; db->kw && db->kw[i]; i++) {
        free(db->kw[i]);
        free(db->val[i]);
    }
    free(db->kw);
    free(db->val);
    free(db->host);
    free(db->label);
    free(db->pools);
    free((void *)db->has_link);
    for (unsigned i = 0; i < db->nstmts; i++) {
        free(db->stmts[i].name);
        free(db->stmts[i].sql);
    }
    free(db->stmts);
    free(db->url);
    free(db);
}

static bool on_ready(void *ud)
{
    return coil_pg_ready(ud);
}

bool coil_pg_ready(const struct coil_pg *db)
{
    if (!db || !db->url || !db->has_link)
        return true; /* nothing to wait for */
    for (unsigned i = 0; i < db->nworkers; i++)
        if (!atomic_load_explicit(&db->has_link[i], memory_order_relaxed))
            return false;
    return true;
}

/* ---- links: connect, watch, fail -------------------------------------------------------- */

static uint64_t now_ms(struct pool *p)
{
    return p->w->now_ms;
}

static void set_open(struct pool *p, int delta)
{
    p->open += (unsigned)delta;
    STAT_ADD(p->w, db_conns, (uint64_t)(int64_t)delta);
    atomic_store_explicit(&p->db->has_link[p->id], p->open > 0, memory_order_relaxed);
}

static void on_link_event(int fd, unsigned events, void *ud);

/* Watches l's current socket for events (READABLE, WRITABLE), re-watching a new socket. */
static int link_watch(struct link *l, unsigned events)
{
    int fd = PQsocket(l->pg);
    if (fd < 0)
        return -EBADF;
    if (l->watch.id && fd == l->fd) {
        if (events != l->events && coil_watch_update(l->watch, events) < 0)
            return -ENOMEM;
        l->events = events;
        return 0;
    }
    if (l->watch.id)
        coil_unwatch(l->watch);
    l->fd = fd;
    l->events = events;
    l->watch = coil_watch(fd, events, on_link_event, l);
    return l->watch.id ? 0 : -ENOMEM;
}

static void link_retry_cb(void *ud)
{
    struct link *l = ud;
    l->retry.id = 0;
    if (!l->p->stopping && l->state == L_DOWN)
        link_start(l);
}

static void schedule_retry(struct link *l)
{
    struct pool *p = l->p;
    uint32_t ms = coil__backoff(&l->backoff_ms, &p->rnd, BACKOFF_MIN_MS, BACKOFF_MAX_MS);
    l->retry = coil_timer_after(NULL, ms, link_retry_cb, l);
    if (!l->retry.id)
        coil__log("worker %u: database: cannot arm a reconnect timer", p->id);
}

static void fail_waiters(struct pool *p, int err);

static void deliver(struct pool *p, const struct slot *s, int err, const char *sqlstate,
                    const char *why);

/* Closes l: what was in flight fails with err, the socket is unwatched, a reconnect is due.
 * ours: coil closed a working link itself (a timeout, COPY): it is reopened at once, and the
 * worker is not "down" meanwhile (its queries wait for it rather than fail). */
static void link_close(struct link *l, int err, const char *why, bool ours)
{
    struct pool *p = l->p;
    bool was_open = l->state == L_OPEN;
    if (l->state == L_DOWN)
        return;
    char msg[256];
    snprintf(msg, sizeof(msg), "%s", why && *why ? why : "connection failed");
    /* libpq's messages run over lines ("refused\n\tIs the server running..."): one line */
    size_t ml = 0;
    for (char *q = msg; *q; q++) {
        bool ws = *q == '\n' || *q == '\t' || *q == ' ';
        if (!ws || (ml && msg[ml - 1] != ' '))
            msg[ml++] = ws ? ' ' : *q;
    }
    while (ml && msg[ml - 1] == ' ')
        ml--;
    msg[ml] = 0;
    if (was_open) {
        if (!p->stopping)
            coil__log("worker %u: database connection %s: %s", p->id, ours ? "replaced" : "lost",
                      msg);
        set_open(p, -1);
    } else if (!p->down_logged && !p->stopping) {
        coil__log("worker %u: cannot connect to the database: %s (retrying)", p->id, msg);
    }
    p->down_logged |= !ours;
    if (l->watch.id)
        coil_unwatch(l->watch);
    l->watch.id = 0;
    PQfinish(l->pg);
    l->pg = NULL;
    l->fd = -1;
    l->state = L_DOWN;
    l->want_write = false;
    l->epoch++;
    /* Take the ring's slots out first: their callbacks may send queries elsewhere. */
    uint32_t n = l->count, h = l->head;
    STAT_ADD(l->p->w, db_busy, (uint64_t) - (int64_t)l->queries);
    l->count = l->head = l->queries = 0;
    struct slot stack[64], *tmp = n <= 64 ? stack : malloc(n * sizeof(*tmp));
    if (tmp) {
        for (uint32_t i = 0; i < n; i++)
            tmp[i] = l->ring[(h + i) % l->cap];
    }
    if (!p->stopping && ours)
        l->retry = coil_timer_after(NULL, 0, link_retry_cb, l);
    if (!p->stopping && (!ours || !l->retry.id))
        schedule_retry(l);
    for (uint32_t i = 0; i < n; i++) {
        struct slot *s = tmp ? &tmp[i] : &l->ring[(h + i) % l->cap];
        PQclear(s->res);
        s->res = NULL;
        if (s->kind == K_QUERY)
            deliver(p, s, err, "", msg);
    }
    if (tmp != stack)
        free(tmp);
    if (p->open == 0 && !ours) {
        p->down = true;
        fail_waiters(p, -ENOTCONN); /* nowhere to send them until a link opens */
    }
}

static void link_fail(struct link *l, int err, const char *why)
{
    link_close(l, err, why, false);
}

static void ignore_notice(void *arg, const PGresult *res)
{
    (void)arg;
    (void)res;
}

/* The link is open: pipeline mode, then the prepared statements, first in its ring. */
static void link_opened(struct link *l)
{
    struct pool *p = l->p;
    struct coil_pg *db = p->db;
    if (PQsetnonblocking(l->pg, 1) != 0 || PQenterPipelineMode(l->pg) != 1) {
        link_fail(l, -ECONNRESET, PQerrorMessage(l->pg));
        return;
    }
    PQsetNoticeReceiver(l->pg, ignore_notice, NULL);
    for (unsigned i = 0; i < db->nstmts; i++) {
        if (!PQsendPrepare(l->pg, db->stmts[i].name, db->stmts[i].sql, 0, NULL) ||
            !PQpipelineSync(l->pg)) {
            link_fail(l, -ECONNRESET, PQerrorMessage(l->pg));
            return;
        }
        struct slot *s = &l->ring[(l->head + l->count++) % l->cap];
        *s = (struct slot){.kind = K_PREPARE, .stmt = (uint16_t)i};
    }
    int f = PQflush(l->pg);
    l->want_write = f == 1;
    if (f < 0 || link_watch(l, COIL_READABLE | (l->want_write ? COIL_WRITABLE : 0)) < 0) {
        link_fail(l, -ECONNRESET, PQerrorMessage(l->pg));
        return;
    }
    l->state = L_OPEN;
    l->backoff_ms = 0;
    set_open(p, 1);
    p->down = false;
    if (p->down_logged && !p->stopping) {
        coil__log("worker %u: database connection open", p->id);
        p->down_logged = false;
    }
    pump(p);
}

static void link_start(struct link *l)
{
    struct pool *p = l->p;
    struct coil_pg *db = p->db;
    if (atomic_load(&db->unresolved)) {
        l->state = L_CONNECTING; /* so that link_fail logs and backs off */
        link_fail(l, -ECONNRESET, "the database host name does not resolve yet");
        return;
    }
    l->pg = PQconnectStartParams((const char *const *)db->kw, (const char *const *)db->val, 0);
    l->state = L_CONNECTING;
    l->fd = -1;
    l->watch.id = 0;
    if (!l->pg) {
        link_fail(l, -ENOMEM, "out of memory");
        return;
    }
    if (PQstatus(l->pg) == CONNECTION_BAD || PQsetnonblocking(l->pg, 1) != 0) {
        link_fail(l, -ECONNRESET, PQerrorMessage(l->pg));
        return;
    }
    l->deadline_ms = now_ms(p) + db->o.connect_timeout_ms;
    sweep_arm(p, l->deadline_ms);
    if (link_watch(l, COIL_WRITABLE) < 0)
        link_fail(l, -ENOMEM, "cannot watch the socket");
}

static void link_connecting(struct link *l)
{
    switch (PQconnectPoll(l->pg)) {
    case PGRES_POLLING_READING:
        if (link_watch(l, COIL_READABLE) < 0)
            link_fail(l, -ENOMEM, "cannot watch the socket");
        return;
    case PGRES_POLLING_WRITING:
        if (link_watch(l, COIL_WRITABLE) < 0)
            link_fail(l, -ENOMEM, "cannot watch the socket");
        return;
    case PGRES_POLLING_OK:
        link_opened(l);
        return;
    default:
        link_fail(l, -ECONNRESET, PQerrorMessage(l->pg));
        return;
    }
}

/* ---- results ---------------------------------------------------------------------------- */

static void deliver_result(struct pool *p, const struct slot *s, const PGresult *res)
{
    if (!s->fn || !coil__owner_alive(p->w, s->owner))
        return; /* the owner went away: the result is dropped */
    struct coil_pg_result r = {.sqlstate = "", .message = "", .pg = res};
    ExecStatusType st = PQresultStatus(res);
    if (st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK || st == PGRES_SINGLE_TUPLE) {
        r.nrows = PQntuples(res);
        r.ncols = PQnfields(res);
        const char *a = PQcmdTuples((PGresult *)res); /* a SELECT's row count too */
        if (strncmp(PQcmdStatus((PGresult *)res), "SELECT", 6) != 0)
            r.affected = a && *a ? strtoull(a, NULL, 10) : 0;
    } else {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        r.error = -EIO;
        r.sqlstate = state ? state : "";
        r.message = msg ? msg : PQresultErrorMessage(res);
        if (st == PGRES_EMPTY_QUERY) {
            r.sqlstate = "42601"; /* syntax_error: there was no statement */
            r.message = "the query was empty";
        } else if (!*r.message) {
            r.message = PQresStatus(st);
        }
    }
    s->fn(&r, s->ud);
}

/* A failure made here (no server result): -EIO with a sqlstate, or an errno. */
static void deliver(struct pool *p, const struct slot *s, int err, const char *sqlstate,
                    const char *why)
{
    if (!s->fn || !coil__owner_alive(p->w, s->owner))
        return;
    struct coil_pg_result r = {.error = err, .sqlstate = sqlstate, .message = why ? why : ""};
    s->fn(&r, s->ud);
}

/* Takes what libpq has read, slot by slot. Returns false if the link closed meanwhile. */
static bool link_results(struct link *l)
{
    uint32_t epoch = l->epoch;
    while (l->count && l->epoch == epoch) {
        if (PQisBusy(l->pg))
            return true;
        PGresult *res = PQgetResult(l->pg);
        struct slot *s = &l->ring[l->head];
        if (s->stage == S_RESULT) {
            ExecStatusType st = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
            if (!res || st == PGRES_PIPELINE_SYNC) {
                PQclear(res);
                link_fail(l, -ECONNRESET, "the database answered out of order");
                return false;
            }
            if (st == PGRES_COPY_OUT || st == PGRES_COPY_IN || st == PGRES_COPY_BOTH) {
                /* COPY does not work in pipeline mode: the link is lost to it */
                PQclear(res);
                struct slot t = *s;
                s->fn = NULL;
                link_close(l, -ECONNRESET, "a query started COPY, which coil_pg does not do", true);
                if (t.kind == K_QUERY)
                    deliver(l->p, &t, -EIO, "0A000", "COPY is not supported");
                return false;
            }
            s->res = res;
            s->stage = S_END;
        } else if (s->stage == S_END) {
            if (res) { /* a second result for one query (none is expected): keep the last */
                PQclear(s->res);
                s->res = res;
                continue;
            }
            s->stage = S_SYNC;
        } else {
            if (!res || PQresultStatus(res) != PGRES_PIPELINE_SYNC) {
                PQclear(res);
                link_fail(l, -ECONNRESET, "the database answered out of order");
                return false;
            }
            PQclear(res);
            struct slot done = *s;
            l->head = (l->head + 1) % l->cap;
            l->count--;
            if (done.kind == K_QUERY) {
                l->queries--;
                STAT_ADD(l->p->w, db_busy, (uint64_t)-1);
                deliver_result(l->p, &done, done.res);
            } else if (PQresultStatus(done.res) != PGRES_COMMAND_OK) {
                coil__log("worker %u: database refused statement %s: %s", l->p->id,
                          l->p->db->stmts[done.stmt].name, PQresultErrorMessage(done.res));
            }
            PQclear(done.res);
        }
    }
    return l->epoch == epoch;
}

static void link_io(struct link *l, unsigned events)
{
    uint32_t epoch = l->epoch;
    if (events & COIL_WRITABLE) {
        int f = PQflush(l->pg);
        if (f < 0) {
            link_fail(l, -ECONNRESET, PQerrorMessage(l->pg));
            return;
        }
        l->want_write = f == 1;
    }
    if (events & (COIL_READABLE | COIL_ERROR | COIL_HANGUP)) {
        if (!PQconsumeInput(l->pg)) {
            link_fail(l, -ECONNRESET, PQerrorMessage(l->pg));
            return;
        }
        if (!link_results(l))
            return;
        if (PQstatus(l->pg) == CONNECTION_BAD) {
            link_fail(l, -ECONNRESET, PQerrorMessage(l->pg));
            return;
        }
    }
    if (l->epoch == epoch && l->state == L_OPEN &&
        link_watch(l, COIL_READABLE | (l->want_write ? COIL_WRITABLE : 0)) < 0)
        link_fail(l, -ENOMEM, "cannot watch the socket");
    if (l->epoch == epoch)
        pump(l->p);
}

static void on_link_event(int fd, unsigned events, void *ud)
{
    struct link *l = ud;
    (void)fd;
    if (l->state == L_CONNECTING)
        link_connecting(l);
    else if (l->state == L_OPEN)
        link_io(l, events);
}

/* ---- sending ---------------------------------------------------------------------------- */

/* Sends one query on l (which has room). 0, or -ECONNRESET when l failed under it (l is then
 * closed; nothing of the query was committed, as its Sync did not go). */
static int link_send(struct link *l, const char *stmt, const char *sql, int n,
                     const char *const *values, coil_pg_fn fn, void *ud, uint64_t owner,
                     uint64_t deadline)
{
    int ok = stmt ? PQsendQueryPrepared(l->pg, stmt, n, values, NULL, NULL, 0)
                  : PQsendQueryParams(l->pg, sql, n, NULL, values, NULL, NULL, 0);
    if (ok)
        ok = PQpipelineSync(l->pg);
    if (!ok) {
        link_fail(l, -ECONNRESET, PQerrorMessage(l->pg));
        return -ECONNRESET;
    }
    bool was_empty = l->queries == 0;
    struct slot *s = &l->ring[(l->head + l->count++) % l->cap];
    *s = (struct slot){.fn = fn, .ud = ud, .owner = owner, .deadline_ms = deadline};
    l->queries++;
    STAT_INC(l->p->w, db_busy);
    if (was_empty)
        sweep_arm(l->p, deadline);
    /* PQpipelineSync flushed what it could; the rest waits for the socket. */
    if (PQflush(l->pg) == 1 && !l->want_write) {
        l->want_write = true;
        if (link_watch(l, COIL_READABLE | COIL_WRITABLE) < 0) {
            link_fail(l, -ENOMEM, "cannot watch the socket");
            return 0; /* the query is in the ring: it was failed through its callback */
        }
    }
    return 0;
}

/* The open link with the fewest queries in flight and room for one more, or NULL. */
static struct link *pick(struct pool *p)
{
    struct link *best = NULL;
    for (unsigned i = 0; i < p->nlinks; i++) {
        struct link *l = &p->links[i];
        if (l->state == L_OPEN && l->queries < p->db->o.pipeline &&
            (!best || l->queries < best->queries))
            best = l;
    }
    return best;
}

static void waiter_pop(struct pool *p)
{
    struct waiter *q = p->qhead;
    p->qhead = q->next;
    if (!p->qhead)
        p->qtail = NULL;
    p->qlen--;
    STAT_ADD(p->w, db_queued, (uint64_t)-1);
}

/* Sends waiting queries while a link has room. */
static void pump(struct pool *p)
{
    struct link *l;
    while (p->qhead && (l = pick(p))) {
        struct waiter *q = p->qhead;
        if (!coil__owner_alive(p->w, q->owner)) {
            waiter_pop(p);
            coil_free(q);
            continue;
        }
        int err = link_send(l, q->stmt, q->sql, q->nparams, q->values, q->fn, q->ud, q->owner,
                            q->deadline_ms);
        if (err == 0) {
            waiter_pop(p);
            coil_free(q);
        }
        /* else l closed without the query: try the next link (or wait) */
    }
}

static void fail_waiters(struct pool *p, int err)
{
    while (p->qhead) {
        struct waiter *q = p->qhead;
        waiter_pop(p);
        struct slot s = {.fn = q->fn, .ud = q->ud, .owner = q->owner};
        coil_free(q);
        deliver(p, &s, err, "",
                err == -ETIMEDOUT ? "timed out waiting for a database connection"
                                  : "no connection to the database");
    }
}

/* Bytes the parameters take NUL-terminated. */
static size_t param_bytes(const struct coil_pg_query *q)
{
    size_t bytes = 0;
    for (int i = 0; i < q->nparams; i++)
        bytes += q->params[i].ptr ? q->params[i].len + 1 : 0;
    return bytes;
}

/* The parameters as libpq wants them: NUL-terminated copies in bytes (param_bytes of them),
 * pointed to by vals (NULL for SQL NULL). */
static void pack_params(const struct coil_pg_query *q, const char **vals, char *bytes)
{
    for (int i = 0; i < q->nparams; i++) {
        if (!q->params[i].ptr) {
            vals[i] = NULL;
            continue;
        }
        memcpy(bytes, q->params[i].ptr, q->params[i].len);
        bytes[q->params[i].len] = 0;
        vals[i] = bytes;
        bytes += q->params[i].len + 1;
    }
}

/* The parameters packed in the pool's scratch space, for a query sent at once. */
static int make_values(struct pool *p, const struct coil_pg_query *q)
{
    size_t bytes = param_bytes(q);
    if ((unsigned)q->nparams > p->vcap) {
        const char **v = coil_realloc(p->vals, (size_t)q->nparams * sizeof(*v));
        if (!v)
            return -ENOMEM;
        p->vals = v;
        p->vcap = (unsigned)q->nparams;
    }
    if (bytes > p->bcap) {
        char *b = coil_realloc(p->bytes, bytes);
        if (!b)
            return -ENOMEM;
        p->bytes = b;
        p->bcap = bytes;
    }
    pack_params(q, p->vals, p->bytes);
    return 0;
}

static int enqueue(struct pool *p, const struct coil_pg_query *q, coil_pg_fn fn, void *ud,
                   uint64_t owner, uint64_t deadline)
{
    size_t names = (q->stmt ? strlen(q->stmt) + 1 : 0) + (q->sql ? strlen(q->sql) + 1 : 0);
    size_t bytes = param_bytes(q);
    struct waiter *x =
        coil_malloc(sizeof(*x) + (size_t)q->nparams * sizeof(char *) + names + bytes);
    if (!x)
        return -ENOMEM;
    *x = (struct waiter){
        .fn = fn, .ud = ud, .owner = owner, .deadline_ms = deadline, .nparams = q->nparams};
    x->values = (const char **)(x + 1);
    char *at = (char *)(x->values + q->nparams);
    pack_params(q, x->values, at);
    at += bytes;
    if (q->stmt) {
        x->stmt = strcpy(at, q->stmt);
        at += strlen(q->stmt) + 1;
    }
    if (q->sql)
        x->sql = strcpy(at, q->sql);
    if (p->qtail)
        p->qtail->next = x;
    else
        p->qhead = x;
    p->qtail = x;
    p->qlen++;
    STAT_INC(p->w, db_queued);
    sweep_arm(p, deadline);
    return 0;
}

int coil_pg_query(struct coil_req *owner, struct coil_pg *db, const struct coil_pg_query *q,
                  coil_pg_fn fn, void *ud)
{
    struct coil__worker *w = coil__self;
    if (!w || !db || !q || !fn || (!q->stmt == !q->sql) || q->nparams < 0 || q->nparams > 65535 ||
        (q->nparams && !q->params))
        return -EINVAL;
    uint64_t id = coil__owner_id(w, owner);
    if (owner && !id)
        return -EINVAL; /* the owner must have deferred: it outlives its handler */
    struct pool *p = db->pools ? db->pools[w->id] : NULL;
    if (!p || p->stopping || (p->open == 0 && p->down))
        return -ENOTCONN; /* a worker that never had a link yet queues instead */
    for (int i = 0; i < q->nparams; i++)
        if (q->params[i].ptr && memchr(q->params[i].ptr, 0, q->params[i].len))
            return -EINVAL; /* libpq's text parameters end at a NUL: refuse, never cut short */
    uint64_t deadline = now_ms(p) + db->o.timeout_ms;
    struct link *l;
    while (!p->qhead && (l = pick(p))) {
        int err = make_values(p, q);
        if (err < 0)
            return err;
        if (link_send(l, q->stmt, q->sql, q->nparams, p->vals, fn, ud, id, deadline) == 0)
            return 0;
        if (p->open == 0)
            return -ENOTCONN;
    }
    if (p->qlen >= db->o.queue)
        return -EBUSY;
    return enqueue(p, q, fn, ud, id, deadline);
}

/* ---- deadlines -------------------------------------------------------------------------- */

static void on_sweep(void *ud);

static void sweep_arm(struct pool *p, uint64_t at)
{
    coil__deadline_arm(&p->sweep, at, on_sweep, p);
}

static void on_sweep(void *ud)
{
    struct pool *p = ud;
    p->sweep.at = 0;
    if (p->stopping)
        return;
    uint64_t now = coil__clock_ns() / 1000000u;
    if (now < now_ms(p))
        now = now_ms(p);
    uint64_t next = UINT64_MAX;
    while (p->qhead && p->qhead->deadline_ms <= now) {
        struct waiter *q = p->qhead;
        waiter_pop(p);
        struct slot s = {.fn = q->fn, .ud = q->ud, .owner = q->owner};
        coil_free(q);
        deliver(p, &s, -ETIMEDOUT, "", "timed out waiting for a database connection");
    }
    for (unsigned i = 0; i < p->nlinks; i++) {
        struct link *l = &p->links[i];
        if (l->state == L_CONNECTING && l->deadline_ms <= now) {
            link_fail(l, -ETIMEDOUT, "timed out connecting");
            continue;
        }
        if (l->state != L_OPEN)
            continue;
        /* The oldest query in flight (prepares carry no deadline). */
        for (uint32_t k = 0; k < l->count; k++) {
            struct slot *s = &l->ring[(l->head + k) % l->cap];
            if (s->kind != K_QUERY)
                continue;
            if (s->deadline_ms <= now) {
                /* libpq cannot cancel without blocking: the query times out, the link closes
                 * (and the ones behind it fail), and it is reopened. */
                struct slot t = *s;
                s->fn = NULL; /* link_fail must not report it twice */
                link_close(l, -ECONNRESET, "a query on this connection timed out", true);
                deliver(p, &t, -ETIMEDOUT, "", "the database did not answer in time");
            }
            break;
        }
    }
    /* What is due next. */
    if (p->qhead)
        next = p->qhead->deadline_ms;
    for (unsigned i = 0; i < p->nlinks; i++) {
        struct link *l = &p->links[i];
        if (l->state == L_CONNECTING && l->deadline_ms < next)
            next = l->deadline_ms;
        for (uint32_t k = 0; l->state == L_OPEN && k < l->count; k++) {
            struct slot *s = &l->ring[(l->head + k) % l->cap];
            if (s->kind == K_QUERY) {
                if (s->deadline_ms < next)
                    next = s->deadline_ms;
                break;
            }
        }
    }
    if (next != UINT64_MAX)
        sweep_arm(p, next);
}

/* ---- worker start and stop -------------------------------------------------------------- */

static void pool_start(unsigned worker, void *ud)
{
    struct coil_pg *db = ud;
    if (!db->url || !db->pools)
        return;
    struct pool *p = coil_malloc(sizeof(*p));
    struct link *links = coil_malloc(db->o.pool * sizeof(*links));
    uint32_t cap = db->o.pipeline + db->nstmts;
    struct slot *rings = coil_malloc((size_t)db->o.pool * cap * sizeof(*rings));
    if (!p || !links || !rings) {
        coil__log("worker %u: database: out of memory: no pool", worker);
        coil_free(p);
        coil_free(links);
        coil_free(rings);
        return;
    }
    *p = (struct pool){.db = db,
                       .w = coil__self,
                       .id = worker,
                       .links = links,
                       .nlinks = db->o.pool,
                       .rnd = 2654435761u * (worker + 1)};
    for (unsigned i = 0; i < p->nlinks; i++)
        links[i] = (struct link){.p = p, .fd = -1, .ring = rings + (size_t)i * cap, .cap = cap};
    db->pools[worker] = p;
    for (unsigned i = 0; i < p->nlinks; i++)
        link_start(&links[i]);
}

static void pool_stop(unsigned worker, void *ud)
{
    struct coil_pg *db = ud;
    struct pool *p = db->pools ? db->pools[worker] : NULL;
    if (!p)
        return;
    p->stopping = true;
    coil__deadline_cancel(&p->sweep);
    fail_waiters(p, -ESHUTDOWN);
    for (unsigned i = 0; i < p->nlinks; i++) {
        struct link *l = &p->links[i];
        if (l->retry.id)
            coil_timer_cancel(l->retry);
        link_fail(l, -ESHUTDOWN, "the worker stopped");
    }
    db->pools[worker] = NULL;
    coil_free(p->links[0].ring);
    coil_free(p->links);
    coil_free(p->vals);
    coil_free(p->bytes);
    coil_free(p);
}

/* ---- declaring ------------------------------------------------------------------------- */

struct coil_pg *coil_pg_open(struct coil_app *app, const struct coil_pg_opts *opts)
{
    if (!app)
        return NULL;
    static _Atomic bool flags_taken;
    struct coil_pg *db = calloc(1, sizeof(*db));
    if (!db)
        return NULL;
    db->app = app;
    if (opts)
        db->o = *opts;
    db->o.conninfo = NULL;
    if (opts && opts->conninfo) {
        db->url = strdup(opts->conninfo);
        if (!db->url) {
            free(db);
            return NULL;
        }
    } else if (atomic_exchange(&flags_taken, true)) {
        fprintf(stderr, "coil: coil_pg_open: only one database can take --database-url\n");
        free(db);
        return NULL;
    } else {
        db->flags = true;
        if (add_options(app, db) < 0) {
            free(db);
            return NULL;
        }
    }
    if (coil_app_on_run(app, on_run, on_done, db) < 0 ||
        coil_app_on_worker(app, pool_start, pool_stop, db) < 0 ||
        coil_app_ready_check(app, on_ready, db) < 0) {
        fprintf(stderr, "coil: coil_pg_open: out of memory\n");
        return NULL; /* what was registered refers to db: it stays */
    }
    return db;
}

int coil_pg_prepare(struct coil_pg *db, const char *name, const char *sql)
{
    if (!db || !name || !*name || !sql || !*sql || db->nstmts >= 65535 || db->pools)
        return -EINVAL;
    for (unsigned i = 0; i < db->nstmts; i++)
        if (!strcmp(db->stmts[i].name, name))
            return -EEXIST;
    struct stmt *s = realloc(db->stmts, (db->nstmts + 1) * sizeof(*s));
    if (!s)
        return -ENOMEM;
    db->stmts = s;
    s[db->nstmts].name = strdup(name);
    s[db->nstmts].sql = strdup(sql);
    if (!s[db->nstmts].name || !s[db->nstmts].sql) {
        free(s[db->nstmts].name);
        free(s[db->nstmts].sql);
        return -ENOMEM;
    }
    db->nstmts++;
    return 0;
}

/* ---- reading results -------------------------------------------------------------------- */

static bool in_range(const struct coil_pg_result *r, int row, int col)
{
    return r && r->pg && row >= 0 && col >= 0 && row < r->nrows && col < r->ncols;
}

struct coil_str coil_pg_get(const struct coil_pg_result *r, int row, int col)
{
    struct coil_str s = {NULL, 0};
    if (!in_range(r, row, col) || PQgetisnull(r->pg, row, col))
        return s;
    s.ptr = PQgetvalue(r->pg, row, col);
    s.len = (size_t)PQgetlength(r->pg, row, col);
    return s;
}

bool coil_pg_isnull(const struct coil_pg_result *r, int row, int col)
{
    return !in_range(r, row, col) || PQgetisnull(r->pg, row, col);
}

const char *coil_pg_colname(const struct coil_pg_result *r, int col)
{
    return r && r->pg && col >= 0 && col < r->ncols ? PQfname(r->pg, col) : NULL;
}

int coil_pg_colnum(const struct coil_pg_result *r, const char *name)
{
    return r && r->pg && name ? PQfnumber(r->pg, name) : -1;
}

int coil_pg_int(const struct coil_pg_result *r, int row, int col, int64_t *out)
{
    struct coil_str s = coil_pg_get(r, row, col);
    if (!s.ptr || (s.len && s.ptr[0] == '+'))
        return -EINVAL;
    return coil_parse_int64(s.ptr, s.len, out);
}

int coil_pg_bool(const struct coil_pg_result *r, int row, int col, bool *out)
{
    struct coil_str s = coil_pg_get(r, row, col);
    if (s.len != 1 || (s.ptr[0] != 't' && s.ptr[0] != 'f'))
        return -EINVAL;
    *out = s.ptr[0] == 't';
    return 0;
}
