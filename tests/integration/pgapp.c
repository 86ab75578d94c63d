/* SPDX-License-Identifier: MIT */
/*
 * pgapp: a small user program on coil_pg.h for the integration tests of the PostgreSQL client
 * (test_db.py), for what the demo's database routes (handlers/db.c) do not reach: any SQL text,
 * parameters (NULL, many), prepared statements (one the server refuses), every error a query
 * can end with, callbacks that send queries, queries without an owner, and the argument checks.
 *
 * The database is coil_pg_open(app, NULL): --database-url, --db-pool, --db-pipeline, --db-queue
 * and --db-timeout as the demo has them. One flag of its own, taken out of argv before
 * coil_app_create sees the rest (like fetchapp's): "--db2 CONNINFO" declares a second database
 * with coil_pg_opts (conninfo given, pool 1, pipeline 4, queue 8, timeout 2 s), served by /db2.
 *
 * Prepared at start on every connection:
 *   echo  SELECT $1::text
 *   add   SELECT $1::int + $2::int
 *   bad   SELECT nope FROM no_such_table WHERE id = $1   (refused by the server)
 *
 * Routes. Every query is sent with its request as the owner unless said otherwise; an answer
 * that names an error uses its errno name ("EIO", "ETIMEDOUT", "ECONNRESET", "ENOTCONN",
 * "EBUSY", "EINVAL", "ENOMEM", "ESHUTDOWN").
 *   GET /sql?q=SQL&n=K&p1=..&pK=..   (or stmt=NAME instead of q: that prepared statement)
 *        K parameters (0..70000), pI the text of parameter I, SQL NULL when pI is absent.
 *        200 once the callback ran: {"error": null or the errno name, "sqlstate", "message",
 *        "nrows", "ncols", "affected", "colnames": [...], "rows": [[text or null, ...], ...],
 *        "worker"}. When coil_pg_query fails at once: 503 {"error": name, "sync": true}
 *        (-EINVAL: 400).
 *   GET /db2?q=SQL        the same on the --db2 database (503 ENOTCONN without one)
 *   GET /echo/:v          the prepared "echo" with v: 200, the text back (text/plain); an error
 *                         answers as /sleep's do
 *   GET /bad              the prepared "bad" with "1": answers like /sql
 *   GET /add?a=&b=        the prepared "add": 200 the sum as text
 *   GET /sleep?ms=N&owner=0|1   SQL text SELECT pg_sleep($1::float8/1000): 200 "slept"; on an
 *                         error 504 for ETIMEDOUT, 500 for EIO, 503 for the rest, with
 *                         {"error": name, "sync": bool, "sqlstate", "message"}. owner=0 sends
 *                         it without an owner: ud is then the coil_defer handle, and a callback
 *                         that finds the request gone counts into /stats orphans (with an owner
 *                         that would be a contract failure: late).
 *   GET /many?n=N&null=K  one query with N parameters (1..70000), the numbers 1..N with the
 *                         K-th SQL NULL: SELECT count(x), sum(x) FROM unnest(ARRAY[$1::int,..]):
 *                         200 "count sum"; more than 65535 parameters: 400 EINVAL
 *   GET /chain?n=N        N queries one after the other, each sent from the previous one's
 *                         callback (SELECT $1::int + 1, from 0): 200 "N"
 *   GET /fanout?n=N       N queries at once (the "add" statement with i and 1000*i), answered
 *                         when all came back: {"sent", "ok", "failed", "sum", "errors": [names
 *                         of the failures, in the order they came]}
 *   GET /types            one row of typed columns read with the accessors (coil_pg_int,
 *                         coil_pg_bool, coil_pg_isnull, coil_pg_colnum, coil_pg_colname,
 *                         coil_pg_get out of range): {"name": value or errno name, ...}
 *   GET /checks           coil_pg_query's argument checks, before and after deferring, and
 *                         coil_pg_prepare after start: {"name": rc, ...} (rc: 0 or -errno)
 *   GET /readyz           200 "ready" / 503 "not ready" (coil_ready); /healthz 200 "ok"
 *   GET /stats            {"requests", "waiting", "aborted" (the engine's), "queries" (sent),
 *                         "sync_fail", "callbacks", "aborts" (on_abort runs), "late"
 *                         (callbacks for a request that was gone), "orphans", "no_owner"
 *                         (owner-less /sleep queries sent), "no_owner_done" (their callbacks
 *                         run), "errors" (contract checks that failed), "first_error", "ready"
 *                         (coil_pg_ready of the main database), "workers",
 *                         "startup": {checks made in main before coil_app_run: rc each}}
 * On exit main prints "pgapp: exit status=S late=L errors=E" to stderr.
 */
#include <coil.h>
#include <coil_pg.h>
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static struct coil_pg *db;  /* --database-url and friends */
static struct coil_pg *db2; /* --db2, or NULL */
static const char *db2_url;

/* ---- what the tests read back ---------------------------------------------------------- */

static atomic_ulong queries, sync_fail, callbacks, aborts, late, orphans, errors;
static atomic_ulong no_owner, no_owner_done; /* /sleep?owner=0: sent, and called back */
static _Atomic(const char *) first_error;

static void contract_error(const char *what)
{
    const char *none = NULL;
    atomic_fetch_add(&errors, 1);
    atomic_compare_exchange_strong(&first_error, &none, what);
    fprintf(stderr, "pgapp: contract check failed: %s\n", what);
}
#define STR2(x) #x
#define STR(x) STR2(x)
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            contract_error("line " STR(__LINE__) ": " #cond);                                      \
    } while (0)

/* Checks made in main, before coil_app_run, reported by /stats. */
#define MAX_STARTUP 16
struct startup_check {
    const char *name;
    long rc;
};
static struct startup_check startup[MAX_STARTUP];
static int nstartup;

static void note_startup(const char *name, long rc)
{
    if (nstartup < MAX_STARTUP)
        startup[nstartup++] = (struct startup_check){name, rc};
}

static const char *errno_name(int err)
{
    switch (err < 0 ? -err : err) {
    case 0:
        return "OK";
    case EIO:
        return "EIO";
    case ETIMEDOUT:
        return "ETIMEDOUT";
    case ECONNRESET:
        return "ECONNRESET";
    case ENOTCONN:
        return "ENOTCONN";
    case EBUSY:
        return "EBUSY";
    case EINVAL:
        return "EINVAL";
    case ENOMEM:
        return "ENOMEM";
    case ESHUTDOWN:
        return "ESHUTDOWN";
    case EEXIST:
        return "EEXIST";
    case ERANGE:
        return "ERANGE";
    default:
        return "EOTHER";
    }
}

static bool known_error(int err)
{
    return err == 0 || err == -EIO || err == -ETIMEDOUT || err == -ECONNRESET || err == -ENOTCONN ||
           err == -ENOMEM || err == -ESHUTDOWN;
}

/* Checks every result against coil_pg.h's promises before it is used. */
static void check_result(const struct coil_pg_result *r)
{
    atomic_fetch_add(&callbacks, 1);
    CHECK(known_error(r->error));
    CHECK(r->sqlstate && r->message);
    if (r->error == -EIO)
        CHECK(strlen(r->sqlstate) == 5 || r->sqlstate[0] == 0);
    else
        CHECK(r->sqlstate[0] == 0);
    if (r->error) {
        CHECK(r->nrows == 0 && r->ncols == 0 && r->affected == 0);
        CHECK(r->error == -EIO || r->pg == NULL);
    } else {
        CHECK(r->pg != NULL && r->nrows >= 0 && r->ncols >= 0);
    }
}

/* ---- helpers ----------------------------------------------------------------------------- */

/* A query parameter as a NUL-terminated string in the request arena, or NULL when absent. */
static const char *param(struct coil_req *req, const char *name, size_t *len)
{
    struct coil_str v;
    if (coil_req_query_param(req, name, &v) != 1)
        return NULL;
    char *s = coil_req_alloc(req, v.len + 1);
    if (!s)
        return NULL;
    memcpy(s, v.ptr, v.len);
    s[v.len] = 0;
    if (len)
        *len = v.len;
    return s;
}

static long param_num(struct coil_req *req, const char *name, long dflt, long lo, long hi)
{
    const char *s = param(req, name, NULL);
    if (!s || !*s)
        return dflt;
    long v = strtol(s, NULL, 10);
    return v < lo ? lo : v > hi ? hi : v;
}

static int sync_error(struct coil_res *res, int err)
{
    atomic_fetch_add(&sync_fail, 1);
    coil_res_status(res, err == -EINVAL ? 400 : 503);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    coil_json_key(j, "error");
    coil_json_string(j, errno_name(err));
    coil_json_key(j, "sync");
    coil_json_bool(j, true);
    coil_json_object_close(j);
    return coil_res_finish(res) < 0 ? -EIO : 0;
}

/* A failed query's answer: 504 for a timeout, 500 for a refusal, 503 for the rest. */
static void async_error(struct coil_res *res, const struct coil_pg_result *r)
{
    coil_res_status(res, r->error == -ETIMEDOUT ? 504 : r->error == -EIO ? 500 : 503);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    coil_json_key(j, "error");
    coil_json_string(j, errno_name(r->error));
    coil_json_key(j, "sync");
    coil_json_bool(j, false);
    coil_json_key(j, "sqlstate");
    coil_json_string(j, r->sqlstate);
    coil_json_key(j, "message");
    coil_json_string(j, r->message);
    coil_json_object_close(j);
    CHECK(coil_res_finish(res) == 0);
}

static void on_abort(void *ud)
{
    (void)ud;
    atomic_fetch_add(&aborts, 1);
}

/* Sends q for the deferred request req; a synchronous failure is answered here. */
static int send_query(struct coil_req *req, struct coil_res *res, struct coil_pg *d,
                      const struct coil_pg_query *q, coil_pg_fn fn, void *ud)
{
    int err = coil_pg_query(req, d, q, fn, ud);
    if (err < 0)
        return sync_error(res, err);
    atomic_fetch_add(&queries, 1);
    return 0;
}

/* ---- /sql, /db2, /bad ------------------------------------------------------------------- */

struct sql_call {
    struct coil_res *res;
};

static void sql_rows(const struct coil_pg_result *r, void *ud)
{
    struct sql_call *c = ud;
    check_result(r);
    struct coil_json *j = coil_res_json(c->res);
    coil_json_object_open(j);
    coil_json_key(j, "error");
    if (r->error)
        coil_json_string(j, errno_name(r->error));
    else
        coil_json_null(j);
    coil_json_key(j, "sqlstate");
    coil_json_string(j, r->sqlstate);
    coil_json_key(j, "message");
    coil_json_string(j, r->message);
    coil_json_key(j, "nrows");
    coil_json_int(j, r->nrows);
    coil_json_key(j, "ncols");
    coil_json_int(j, r->ncols);
    coil_json_key(j, "affected");
    coil_json_uint(j, r->affected);
    coil_json_key(j, "colnames");
    coil_json_array_open(j);
    for (int c2 = 0; c2 < r->ncols; c2++) {
        const char *n = coil_pg_colname(r, c2);
        CHECK(n != NULL);
        coil_json_string(j, n ? n : "");
    }
    coil_json_array_close(j);
    coil_json_key(j, "rows");
    coil_json_array_open(j);
    for (int i = 0; i < r->nrows; i++) {
        coil_json_array_open(j);
        for (int k = 0; k < r->ncols; k++) {
            struct coil_str v = coil_pg_get(r, i, k);
            CHECK(coil_pg_isnull(r, i, k) == (v.ptr == NULL));
            if (v.ptr)
                coil_json_stringn(j, v.ptr, v.len);
            else
                coil_json_null(j);
        }
        coil_json_array_close(j);
    }
    coil_json_array_close(j);
    coil_json_key(j, "worker");
    coil_json_uint(j, coil_worker_id());
    coil_json_object_close(j);
    CHECK(coil_res_finish(c->res) == 0);
}

static int run_sql(struct coil_req *req, struct coil_res *res, struct coil_pg *d,
                   const char *stmt_fixed, const char *fixed_param)
{
    if (!coil_res_defer(res, on_abort, NULL).id)
        return -ENOMEM;
    struct sql_call *c = coil_req_alloc(req, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->res = res;
    struct coil_pg_query q = {0};
    if (stmt_fixed) {
        q.stmt = stmt_fixed;
        struct coil_str *p = coil_req_alloc(req, sizeof(*p));
        if (!p)
            return -ENOMEM;
        *p = (struct coil_str){fixed_param, strlen(fixed_param)};
        q.params = p;
        q.nparams = 1;
        return send_query(req, res, d, &q, sql_rows, c);
    }
    q.sql = param(req, "q", NULL);
    q.stmt = param(req, "stmt", NULL);
    if (q.stmt)
        q.sql = NULL;
    else if (!q.sql)
        q.sql = "";
    long n = param_num(req, "n", 0, 0, 70000);
    if (n) {
        struct coil_str *p = coil_req_alloc(req, (size_t)n * sizeof(*p));
        if (!p)
            return -ENOMEM;
        for (long i = 0; i < n; i++) {
            char name[24];
            snprintf(name, sizeof(name), "p%ld", i + 1);
            size_t len = 0;
            const char *v = param(req, name, &len);
            p[i] = (struct coil_str){v, v ? len : 0};
        }
        q.params = p;
        q.nparams = (int)n;
    }
    return send_query(req, res, d, &q, sql_rows, c);
}

static int sql_route(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    return run_sql(req, res, db, NULL, NULL);
}

static int db2_route(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    if (!db2)
        return coil_res_text(res, 503, "application/json",
                             "{\"error\":\"ENOTCONN\",\"sync\":true}");
    return run_sql(req, res, db2, NULL, NULL);
}

static int bad_route(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    return run_sql(req, res, db, "bad", "1");
}

/* ---- /echo/:v, /add ----------------------------------------------------------------------- */

static void echo_row(const struct coil_pg_result *r, void *ud)
{
    struct coil_res *res = ud;
    check_result(r);
    if (r->error)
        return async_error(res, r);
    CHECK(r->nrows == 1 && r->ncols == 1);
    struct coil_str v = coil_pg_get(r, 0, 0);
    coil_res_header(res, "Content-Type", "text/plain");
    coil_res_body(res, v.ptr ? v.ptr : "", v.len);
    CHECK(coil_res_finish(res) == 0);
}

static int echo_route(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    if (!coil_res_defer(res, on_abort, NULL).id)
        return -ENOMEM;
    struct coil_str v = coil_req_param(req, "v"); /* after the defer: the request's copy */
    struct coil_pg_query q = {.stmt = "echo", .params = &v, .nparams = 1};
    return send_query(req, res, db, &q, echo_row, res);
}

static int add_route(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    if (!coil_res_defer(res, on_abort, NULL).id)
        return -ENOMEM;
    struct coil_str p[2] = {{NULL, 0}, {NULL, 0}};
    if (coil_req_query_param(req, "a", &p[0]) != 1 || coil_req_query_param(req, "b", &p[1]) != 1)
        p[0] = p[1] = (struct coil_str){"0", 1};
    struct coil_pg_query q = {.stmt = "add", .params = p, .nparams = 2};
    return send_query(req, res, db, &q, echo_row, res);
}

/* ---- /sleep ------------------------------------------------------------------------------ */

static void slept(const struct coil_pg_result *r, void *ud)
{
    struct coil_defer d = {(uint64_t)(uintptr_t)ud};
    check_result(r);
    struct coil_res *res = coil_defer_res(d);
    if (!res) {
        atomic_fetch_add(&late, 1);
        contract_error("a callback for a request that is gone");
        return;
    }
    if (r->error)
        return async_error(res, r);
    coil_res_text(res, 200, "text/plain", "slept");
    CHECK(coil_res_finish(res) == 0);
}

static void slept_no_owner(const struct coil_pg_result *r, void *ud)
{
    struct coil_defer d = {(uint64_t)(uintptr_t)ud};
    check_result(r);
    struct coil_res *res = coil_defer_res(d);
    atomic_fetch_add(&no_owner_done, 1);
    if (!res) {
        atomic_fetch_add(&orphans, 1); /* without an owner, the callback runs regardless */
        return;
    }
    if (r->error)
        return async_error(res, r);
    coil_res_text(res, 200, "text/plain", "slept");
    CHECK(coil_res_finish(res) == 0);
}

static int sleep_route(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    struct coil_defer d = coil_res_defer(res, on_abort, NULL);
    if (!d.id)
        return -ENOMEM;
    char ms[24];
    struct coil_str p = {
        ms, (size_t)snprintf(ms, sizeof(ms), "%ld", param_num(req, "ms", 0, 0, 600000))};
    bool owned = param_num(req, "owner", 1, 0, 1) == 1;
    struct coil_pg_query q = {
        .sql = "SELECT pg_sleep($1::float8/1000)", .params = &p, .nparams = 1};
    int rc = send_query(owned ? req : NULL, res, db, &q, owned ? slept : slept_no_owner,
                        (void *)(uintptr_t)d.id);
    if (rc == 0 && !owned && coil_defer_res(d))
        atomic_fetch_add(&no_owner, 1);
    return rc;
}

/* ---- /chain: queries sent from callbacks ------------------------------------------------- */

struct chain {
    struct coil_req *req;
    struct coil_res *res;
    long left;
};

static void chain_step(const struct coil_pg_result *r, void *ud);

static int chain_send(struct chain *c, long value)
{
    char buf[24];
    struct coil_str p = {buf, (size_t)snprintf(buf, sizeof(buf), "%ld", value)};
    struct coil_pg_query q = {.sql = "SELECT $1::int + 1", .params = &p, .nparams = 1};
    int err = coil_pg_query(c->req, db, &q, chain_step, c);
    if (err == 0)
        atomic_fetch_add(&queries, 1);
    return err;
}

static void chain_step(const struct coil_pg_result *r, void *ud)
{
    struct chain *c = ud;
    check_result(r);
    if (r->error)
        return async_error(c->res, r);
    int64_t v = -1;
    CHECK(coil_pg_int(r, 0, 0, &v) == 0);
    if (--c->left > 0) {
        int err = chain_send(c, (long)v);
        if (err < 0)
            sync_error(c->res, err);
        return;
    }
    char buf[24];
    snprintf(buf, sizeof(buf), "%" PRId64, v);
    coil_res_text(c->res, 200, "text/plain", buf);
    CHECK(coil_res_finish(c->res) == 0);
}

static int chain_route(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    if (!coil_res_defer(res, on_abort, NULL).id)
        return -ENOMEM;
    struct chain *c = coil_req_alloc(req, sizeof(*c));
    if (!c)
        return -ENOMEM;
    *c = (struct chain){req, res, param_num(req, "n", 1, 1, 100000)};
    int err = chain_send(c, 0);
    return err < 0 ? sync_error(res, err) : 0;
}

/* ---- /fanout: many queries for one request ----------------------------------------------- */

struct fan {
    struct coil_res *res;
    long sent, back, ok, failed;
    int64_t sum;
    int *errs; /* failures in the order they came */
};

struct fan_one {
    struct fan *f;
    long i;
};

static void fan_answer(struct fan *f)
{
    struct coil_json *j = coil_res_json(f->res);
    coil_json_object_open(j);
    coil_json_key(j, "sent");
    coil_json_int(j, f->sent);
    coil_json_key(j, "ok");
    coil_json_int(j, f->ok);
    coil_json_key(j, "failed");
    coil_json_int(j, f->failed);
    coil_json_key(j, "sum");
    coil_json_int(j, f->sum);
    coil_json_key(j, "errors");
    coil_json_array_open(j);
    for (long i = 0; i < f->failed; i++)
        coil_json_string(j, errno_name(f->errs[i]));
    coil_json_array_close(j);
    coil_json_object_close(j);
    CHECK(coil_res_finish(f->res) == 0);
}

static void fan_row(const struct coil_pg_result *r, void *ud)
{
    struct fan_one *o = ud;
    struct fan *f = o->f;
    check_result(r);
    int64_t v;
    if (r->error) {
        f->errs[f->failed++] = r->error;
    } else if (coil_pg_int(r, 0, 0, &v) == 0 && v == o->i * 1001) {
        f->ok++;
        f->sum += v;
    } else {
        contract_error("/fanout: a query answered with another's row");
    }
    if (++f->back == f->sent)
        fan_answer(f);
}

static int fanout_route(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    if (!coil_res_defer(res, on_abort, NULL).id)
        return -ENOMEM;
    long n = param_num(req, "n", 1, 1, 10000);
    struct fan *f = coil_req_alloc(req, sizeof(*f));
    struct fan_one *ones = coil_req_alloc(req, (size_t)n * sizeof(*ones));
    int *errs = coil_req_alloc(req, (size_t)n * sizeof(*errs));
    if (!f || !ones || !errs)
        return -ENOMEM;
    *f = (struct fan){.res = res, .errs = errs};
    int first_err = 0;
    for (long i = 0; i < n; i++) {
        char a[24], b[24];
        struct coil_str p[2] = {{a, (size_t)snprintf(a, sizeof(a), "%ld", i)},
                                {b, (size_t)snprintf(b, sizeof(b), "%ld", 1000 * i)}};
        struct coil_pg_query q = {.stmt = "add", .params = p, .nparams = 2};
        ones[i] = (struct fan_one){f, i};
        int err = coil_pg_query(req, db, &q, fan_row, &ones[i]);
        if (err < 0) {
            first_err = err;
            break; /* the ones sent are answered; the rest are not sent */
        }
        atomic_fetch_add(&queries, 1);
        f->sent++;
    }
    if (f->sent == 0)
        return sync_error(res, first_err);
    /* callbacks only ever run after the handler returns (they come from the ring) */
    CHECK(f->back == 0);
    return 0;
}

/* ---- /many: a query with many parameters ----------------------------------------------- */

static void many_row(const struct coil_pg_result *r, void *ud)
{
    struct sql_call *c = ud;
    check_result(r);
    if (r->error)
        return async_error(c->res, r);
    int64_t count = -1, sum = -1;
    CHECK(coil_pg_int(r, 0, 0, &count) == 0 && coil_pg_int(r, 0, 1, &sum) == 0);
    char buf[64];
    snprintf(buf, sizeof(buf), "%" PRId64 " %" PRId64, count, sum);
    coil_res_text(c->res, 200, "text/plain", buf);
    CHECK(coil_res_finish(c->res) == 0);
}

static int many_route(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    if (!coil_res_defer(res, on_abort, NULL).id)
        return -ENOMEM;
    long n = param_num(req, "n", 1, 1, 70000), null_at = param_num(req, "null", 0, 0, 70000);
    struct sql_call *c = coil_req_alloc(req, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->res = res;
    /* SELECT count(x), coalesce(sum(x), 0) FROM unnest(ARRAY[$1::int,...,$n::int]) AS t(x) */
    size_t cap = 128 + (size_t)n * 16;
    char *sql = coil_malloc(cap), *vals = coil_malloc((size_t)n * 8);
    struct coil_str *p = coil_malloc((size_t)n * sizeof(*p));
    if (!sql || !vals || !p) {
        coil_free(sql);
        coil_free(vals);
        coil_free(p);
        return -ENOMEM;
    }
    size_t at = (size_t)snprintf(sql, cap,
                                 "SELECT count(x), coalesce(sum(x), 0) FROM "
                                 "unnest(ARRAY[");
    for (long i = 1; i <= n; i++) {
        at += (size_t)snprintf(sql + at, cap - at, "%s$%ld::int", i > 1 ? "," : "", i);
        char *v = vals + (i - 1) * 8;
        p[i - 1] = i == null_at ? (struct coil_str){NULL, 0}
                                : (struct coil_str){v, (size_t)snprintf(v, 8, "%ld", i)};
    }
    snprintf(sql + at, cap - at, "]) AS t(x)");
    struct coil_pg_query q = {.sql = sql, .params = p, .nparams = (int)n};
    int rc = send_query(req, res, db, &q, many_row, c);
    coil_free(sql); /* coil_pg_query copied what it keeps */
    coil_free(vals);
    coil_free(p);
    return rc;
}

/* ---- /types: the accessors --------------------------------------------------------------- */

static void put_rc(struct coil_json *j, const char *key, int rc)
{
    coil_json_key(j, key);
    coil_json_string(j, errno_name(rc));
}

static void types_row(const struct coil_pg_result *r, void *ud)
{
    struct coil_res *res = ud;
    check_result(r);
    if (r->error)
        return async_error(res, r);
    struct coil_json *j = coil_res_json(res);
    int64_t v;
    bool b;
    coil_json_object_open(j);
    static const char *const ints[] = {"big",  "small", "zero", "null_int",
                                       "text", "huge",  "frac", "plus"};
    for (size_t k = 0; k < sizeof(ints) / sizeof(ints[0]); k++) {
        int col = coil_pg_colnum(r, ints[k]);
        v = 12345;
        int rc = coil_pg_int(r, 0, col, &v);
        char key[32];
        snprintf(key, sizeof(key), "int_%s", ints[k]);
        if (rc == 0) {
            coil_json_key(j, key);
            coil_json_int(j, v);
        } else {
            put_rc(j, key, rc);
        }
    }
    static const char *const bools[] = {"yes", "no", "null_bool", "text"};
    for (size_t k = 0; k < sizeof(bools) / sizeof(bools[0]); k++) {
        int rc = coil_pg_bool(r, 0, coil_pg_colnum(r, bools[k]), &b);
        char key[32];
        snprintf(key, sizeof(key), "bool_%s", bools[k]);
        if (rc == 0) {
            coil_json_key(j, key);
            coil_json_bool(j, b);
        } else {
            put_rc(j, key, rc);
        }
    }
    coil_json_key(j, "isnull_null_int");
    coil_json_bool(j, coil_pg_isnull(r, 0, coil_pg_colnum(r, "null_int")));
    coil_json_key(j, "isnull_text");
    coil_json_bool(j, coil_pg_isnull(r, 0, coil_pg_colnum(r, "text")));
    coil_json_key(j, "isnull_out_of_range");
    coil_json_bool(j, coil_pg_isnull(r, 5, 0));
    coil_json_key(j, "get_out_of_range_null");
    coil_json_bool(j, coil_pg_get(r, 0, r->ncols).ptr == NULL && coil_pg_get(r, -1, 0).ptr == NULL);
    coil_json_key(j, "int_out_of_range");
    coil_json_string(j, errno_name(coil_pg_int(r, 1, 0, &v)));
    coil_json_key(j, "colnum_missing");
    coil_json_int(j, coil_pg_colnum(r, "no_such_column"));
    coil_json_key(j, "colname_out_of_range_null");
    coil_json_bool(j, coil_pg_colname(r, r->ncols) == NULL && coil_pg_colname(r, -1) == NULL);
    coil_json_key(j, "empty_text_len");
    coil_json_int(j, (int64_t)coil_pg_get(r, 0, coil_pg_colnum(r, "empty")).len);
    coil_json_key(j, "empty_text_not_null");
    coil_json_bool(j, !coil_pg_isnull(r, 0, coil_pg_colnum(r, "empty")));
    coil_json_object_close(j);
    CHECK(coil_res_finish(res) == 0);
}

static int types_route(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    if (!coil_res_defer(res, on_abort, NULL).id)
        return -ENOMEM;
    struct coil_pg_query q = {
        .sql = "SELECT 9223372036854775807::int8 AS big, (-9223372036854775807 - 1)::int8 AS "
               "small, 0 AS zero, NULL::int AS null_int, 'abc'::text AS text, "
               "9223372036854775808::numeric AS huge, 1.5::numeric AS frac, '+5'::text AS "
               "plus, true AS yes, false AS no, NULL::bool AS null_bool, ''::text AS empty"};
    return send_query(req, res, db, &q, types_row, res);
}

/* ---- /checks: argument checks ------------------------------------------------------------ */

static struct coil_str many[65536]; /* filled in main: "1" each */

static void never(const struct coil_pg_result *r, void *ud)
{
    (void)r;
    (void)ud;
    contract_error("a callback of a query that was refused");
}

static int checks_route(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    struct coil_str one = {"1", 1};
    struct coil_pg_query ok = {.stmt = "echo", .params = &one, .nparams = 1};
    /* before the defer: the owner has not deferred */
    int not_deferred = coil_pg_query(req, db, &ok, never, NULL);
    if (!coil_res_defer(res, on_abort, NULL).id)
        return -ENOMEM;
    struct coil_pg_query both = {.stmt = "echo", .sql = "SELECT 1"};
    struct coil_pg_query neither = {.nparams = 0};
    struct coil_pg_query negative = {.sql = "SELECT 1", .nparams = -1};
    struct coil_pg_query no_params = {.sql = "SELECT $1", .nparams = 1};
    struct coil_pg_query too_many = {.sql = "SELECT 1", .params = many, .nparams = 65536};
    struct {
        const char *name;
        int rc;
    } rcs[] = {
        {"not_deferred", not_deferred},
        {"both_stmt_and_sql", coil_pg_query(req, db, &both, never, NULL)},
        {"neither", coil_pg_query(req, db, &neither, never, NULL)},
        {"negative_nparams", coil_pg_query(req, db, &negative, never, NULL)},
        {"params_null", coil_pg_query(req, db, &no_params, never, NULL)},
        {"too_many_params", coil_pg_query(req, db, &too_many, never, NULL)},
        {"no_callback", coil_pg_query(req, db, &ok, NULL, NULL)},
        {"no_db", coil_pg_query(req, NULL, &ok, never, NULL)},
        {"no_query", coil_pg_query(req, db, NULL, never, NULL)},
        {"prepare_after_start", coil_pg_prepare(db, "late", "SELECT 1")},
    };
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    for (size_t i = 0; i < sizeof(rcs) / sizeof(rcs[0]); i++) {
        coil_json_key(j, rcs[i].name);
        coil_json_int(j, rcs[i].rc);
    }
    coil_json_object_close(j);
    return coil_res_finish(res) < 0 ? -EIO : 0;
}

/* ---- the rest ---------------------------------------------------------------------------- */

static int readyz(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)req;
    (void)ud;
    if (!coil_ready())
        return coil_res_text(res, 503, "text/plain", "not ready");
    return coil_res_text(res, 200, "text/plain", "ready");
}

static int healthz(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)req;
    (void)ud;
    return coil_res_text(res, 200, "text/plain", "ok");
}

static void put_uint(struct coil_json *j, const char *key, uint64_t v)
{
    coil_json_key(j, key);
    coil_json_uint(j, v);
}

static int stats(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)req;
    (void)ud;
    struct coil_stats s;
    coil_stats_get(&s);
    struct coil_json *j = coil_res_json(res);
    coil_json_object_open(j);
    put_uint(j, "requests", s.requests);
    put_uint(j, "waiting", s.waiting);
    put_uint(j, "aborted", s.aborted);
    put_uint(j, "queries", atomic_load(&queries));
    put_uint(j, "sync_fail", atomic_load(&sync_fail));
    put_uint(j, "callbacks", atomic_load(&callbacks));
    put_uint(j, "aborts", atomic_load(&aborts));
    put_uint(j, "late", atomic_load(&late));
    put_uint(j, "orphans", atomic_load(&orphans));
    put_uint(j, "no_owner", atomic_load(&no_owner));
    put_uint(j, "no_owner_done", atomic_load(&no_owner_done));
    put_uint(j, "errors", atomic_load(&errors));
    coil_json_key(j, "first_error");
    const char *fe = atomic_load(&first_error);
    if (fe)
        coil_json_string(j, fe);
    else
        coil_json_null(j);
    coil_json_key(j, "ready");
    coil_json_bool(j, coil_pg_ready(db));
    put_uint(j, "workers", coil_worker_count());
    coil_json_key(j, "startup");
    coil_json_object_open(j);
    for (int i = 0; i < nstartup; i++) {
        coil_json_key(j, startup[i].name);
        coil_json_int(j, startup[i].rc);
    }
    coil_json_object_close(j);
    coil_json_object_close(j);
    return 0;
}

/* Takes --db2 out of argv (in place); returns the new argc. */
static int take_own_flags(int argc, char **argv)
{
    int out = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--db2") != 0) {
            argv[out++] = argv[i];
            continue;
        }
        if (i + 1 >= argc) {
            fprintf(stderr, "pgapp: --db2 needs a value\n");
            exit(2);
        }
        db2_url = argv[++i];
    }
    argv[out] = NULL;
    return out;
}

int main(int argc, char **argv)
{
    argc = take_own_flags(argc, argv);
    for (size_t i = 0; i < sizeof(many) / sizeof(many[0]); i++)
        many[i] = (struct coil_str){"1", 1};
    struct coil_app *app = coil_app_create(argc, argv);
    db = coil_pg_open(app, NULL);
    if (!db) {
        fprintf(stderr, "pgapp: coil_pg_open failed\n");
        return 1;
    }
    /* What must be refused before the run. */
    note_startup("second_flags_db_is_null", coil_pg_open(app, NULL) == NULL);
    note_startup("open_without_app_is_null", coil_pg_open(NULL, NULL) == NULL);
    int err = coil_pg_prepare(db, "echo", "SELECT $1::text");
    err |= coil_pg_prepare(db, "add", "SELECT $1::int + $2::int");
    err |= coil_pg_prepare(db, "bad", "SELECT nope FROM no_such_table WHERE id = $1");
    if (err) {
        fprintf(stderr, "pgapp: coil_pg_prepare failed\n");
        return 1;
    }
    note_startup("prepare_duplicate", coil_pg_prepare(db, "echo", "SELECT 2"));
    note_startup("prepare_empty_name", coil_pg_prepare(db, "", "SELECT 1"));
    note_startup("prepare_empty_sql", coil_pg_prepare(db, "x", ""));
    note_startup("prepare_null_db", coil_pg_prepare(NULL, "x", "SELECT 1"));
    struct coil_pg_query q = {.sql = "SELECT 1"};
    note_startup("query_off_worker", coil_pg_query(NULL, db, &q, never, NULL));
    if (db2_url) {
        struct coil_pg_opts o = {
            .conninfo = db2_url, .pool = 1, .pipeline = 4, .queue = 8, .timeout_ms = 2000};
        db2 = coil_pg_open(app, &o);
        if (!db2) {
            fprintf(stderr, "pgapp: coil_pg_open(--db2) failed\n");
            return 1;
        }
    }
    if (coil_route(app, "GET", "/sql", sql_route, NULL) < 0 ||
        coil_route(app, "GET", "/db2", db2_route, NULL) < 0 ||
        coil_route(app, "GET", "/bad", bad_route, NULL) < 0 ||
        coil_route(app, "GET", "/echo/:v", echo_route, NULL) < 0 ||
        coil_route(app, "GET", "/add", add_route, NULL) < 0 ||
        coil_route(app, "GET", "/many", many_route, NULL) < 0 ||
        coil_route(app, "GET", "/sleep", sleep_route, NULL) < 0 ||
        coil_route(app, "GET", "/chain", chain_route, NULL) < 0 ||
        coil_route(app, "GET", "/fanout", fanout_route, NULL) < 0 ||
        coil_route(app, "GET", "/types", types_route, NULL) < 0 ||
        coil_route(app, "GET", "/checks", checks_route, NULL) < 0 ||
        coil_route(app, "GET", "/readyz", readyz, NULL) < 0 ||
        coil_route(app, "GET", "/healthz", healthz, NULL) < 0 ||
        coil_route(app, "GET", "/stats", stats, NULL) < 0) {
        fprintf(stderr, "pgapp: set-up failed\n");
        return 1;
    }
    int status = coil_app_run(app);
    fprintf(stderr, "pgapp: exit status=%d late=%lu errors=%lu\n", status, atomic_load(&late),
            atomic_load(&errors));
    return status;
}
