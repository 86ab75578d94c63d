/* SPDX-License-Identifier: MIT */
/*
 * coil_pg.h: PostgreSQL from handlers, without blocking a core. Part of libcoil when it is built
 * with libpq (Debian's libpq-dev); `pkg-config --libs coil` then pulls libpq in.
 *
 * Every worker keeps its own pool of libpq connections to the database (nothing is shared
 * between workers), each non-blocking and watched on the worker's ring (coil_watch). A query runs
 * on the worker that sent it, and its callback runs there too. Connections run in pipeline mode:
 * queries from many requests share a connection, in flight together, answered in order; each
 * query is its own implicit transaction (a failing one never touches its neighbours).
 *
 *     static struct coil_pg *db;
 *
 *     static void on_rows(const struct coil_pg_result *r, void *ud)
 *     {
 *         struct coil_res *res = ud;
 *         if (r->error)
 *             return (void)coil_res_fail(res, 503);
 *         struct coil_json *j = coil_res_json(res);
 *         coil_json_array_open(j);
 *         for (int i = 0; i < r->nrows; i++) {
 *             struct coil_str name = coil_pg_get(r, i, 0);
 *             coil_json_stringn(j, name.ptr, name.len);
 *         }
 *         coil_json_array_close(j);
 *         coil_res_finish(res);
 *     }
 *
 *     static int names(struct coil_req *req, struct coil_res *res, void *ud)
 *     {
 *         if (!coil_res_defer(res, NULL, NULL).id)
 *             return -ENOMEM;
 *         struct coil_str cat;
 *         if (coil_req_query_param(req, "category", &cat) != 1)
 *             cat = (struct coil_str){"books", 5};
 *         struct coil_pg_query q = {.stmt = "by_category", .params = &cat, .nparams = 1};
 *         if (coil_pg_query(req, db, &q, on_rows, res) < 0)
 *             coil_res_fail(res, 503); // no connection, or the pool is full
 *         return 0;
 *     }
 *
 *     int main(int argc, char **argv)
 *     {
 *         struct coil_app *app = coil_app_create(argc, argv);
 *         db = coil_pg_open(app, NULL); // --database-url, --db-pool, --db-timeout, ...
 *         coil_pg_prepare(db, "by_category", "SELECT name FROM items WHERE category = $1");
 *         coil_route(app, "GET", "/names", names, NULL);
 *         return coil_app_run(app);
 *     }
 *
 * Faults: a connection that fails (the server restarts, the network drops) fails the queries in
 * flight on it with -ECONNRESET (whether each ran is unknown) and is reconnected in the
 * background with backoff (100 ms doubling to 5 s). While a worker has no connection because
 * one failed, its queries fail at once with -ENOTCONN instead of waiting; before its first
 * connections have opened (just after start-up), they wait in the queue. A query not answered
 * within its timeout fails with -ETIMEDOUT, and its connection is closed and reconnected (that is
 * how libpq cancels without blocking; the queries behind it on that connection fail with
 * -ECONNRESET). Nothing here ever blocks the worker: names in the URL are resolved once, at
 * start-up, on the main thread.
 */
#ifndef COIL_PG_H
#define COIL_PG_H

#include <coil.h>

#ifdef __cplusplus
extern "C" {
#endif

struct coil_pg; /* a database: one pool of connections per worker */

struct coil_pg_opts {
    /* A libpq connection string: "postgres://user:pass@host:port/db?..." or "host=... dbname=...".
     * NULL: the options below are added to the application and their values used. */
    const char *conninfo;
    uint32_t pool;       /* connections per worker [4, at most 64 over all workers, at least 1] */
    uint32_t pipeline;   /* queries in flight on one connection [32] */
    uint32_t queue;      /* queries waiting per worker when every connection is full [4096] */
    uint32_t timeout_ms; /* per query, from coil_pg_query to its result [5000] */
    uint32_t connect_timeout_ms; /* per connection attempt [5000] */
};

/*
 * Declares a database, before coil_app_run. With opts NULL (or opts->conninfo NULL) it adds the
 * options --database-url URL [COIL_DATABASE_URL, else DATABASE_URL], --db-pool N [COIL_DB_POOL;
 * absent: DATABASE_MAX_CONN divided over the workers, at least 1 each], --db-pipeline N,
 * --db-queue N and --db-timeout DURATION [COIL_DB_TIMEOUT, 5s], which override opts' fields
 * (only one database per application may take them). Without a URL the database is "not
 * configured": every query fails with -ENOTCONN and readiness does not wait for it.
 * Connections open when the workers start; a database that is down is logged (with libpq's
 * reason) and retried in the background, and coil_ready (/readyz) is false until every worker
 * has a connection. Returns NULL (and says why on stderr) out of memory or for a bad opts.
 */
struct coil_pg *coil_pg_open(struct coil_app *app, const struct coil_pg_opts *opts);

/*
 * A prepared statement, made on every connection as it opens (before any query is sent on it),
 * so queries name it instead of sending SQL. Before coil_app_run. A statement the server
 * refuses is logged, and every query that names it fails with the server's error.
 * -EEXIST for a name used already, -EINVAL, -ENOMEM.
 */
int coil_pg_prepare(struct coil_pg *db, const char *name, const char *sql);

/* A query: a prepared statement by name, or SQL with $1..$n placeholders (parsed by the server
 * each time). Parameters are text, as in SQL literals without quotes ("42", "t", "hello");
 * {NULL, 0} is SQL NULL; a value with a NUL byte in it is refused (-EINVAL), as libpq would cut
 * it short. Everything here is copied: it need not outlive coil_pg_query. COPY is not supported
 * (a query that starts one fails with -EIO, sqlstate 0A000, and its connection is replaced). */
struct coil_pg_query {
    const char *stmt; /* the name given to coil_pg_prepare, or NULL */
    const char *sql;  /* when stmt is NULL */
    const struct coil_str *params;
    int nparams; /* at most 65535 */
};

/*
 * What a query came back with. Valid during the callback only: every pointer in it, and every
 * value read from it, points into libpq's result, which is freed when the callback returns.
 * error is 0 on success, else:
 *   -EIO          the server refused the query: sqlstate and message say why
 *                 (sqlstate "23505" is a unique violation, "42P01" a missing table, ...)
 *   -ECONNRESET   the connection failed with the query in flight (it may or may not have run)
 *   -ENOTCONN     this worker has no connection to the database now (or none is configured)
 *   -ETIMEDOUT    no answer within the timeout
 *   -ENOMEM       out of memory
 *   -ESHUTDOWN    the worker stopped with the query still waiting
 */
struct coil_pg_result {
    int error;
    const char *sqlstate; /* five characters for -EIO, else "" */
    const char *message;  /* what went wrong, else "" */
    int nrows;            /* rows returned */
    int ncols;
    uint64_t affected; /* rows inserted, updated or deleted (0 for a SELECT; see nrows) */
    const void *pg;    /* the PGresult (for libpq's own accessors), or NULL */
};

/* Row i, column c as text ({NULL, 0} for SQL NULL, and out of range). Not copied. */
struct coil_str coil_pg_get(const struct coil_pg_result *r, int row, int col);
bool coil_pg_isnull(const struct coil_pg_result *r, int row, int col);
const char *coil_pg_colname(const struct coil_pg_result *r, int col); /* NULL out of range */
int coil_pg_colnum(const struct coil_pg_result *r, const char *name); /* -1 if none */
/* An integer column: 0, -EINVAL if NULL or not an integer, -ERANGE. */
int coil_pg_int(const struct coil_pg_result *r, int row, int col, int64_t *out);
/* A boolean column ("t" or "f"): 0 or -EINVAL. */
int coil_pg_bool(const struct coil_pg_result *r, int row, int col, bool *out);

typedef void (*coil_pg_fn)(const struct coil_pg_result *r, void *ud);

/*
 * Sends q from the calling worker; fn(r, ud) runs once on this worker with the result. With an
 * owner request (which must have deferred: coil_res_defer first), the callback is dropped if
 * that request is finished or aborted before the result comes (the query itself still runs:
 * it may be on the wire), so ud may point into the request's memory. The query is sent at once
 * on the connection of this worker with the fewest queries in flight, or waits for room in a
 * bounded queue. Returns 0, or fails at once without calling fn: -ENOTCONN (the database is
 * down for this worker now, or none is configured: answer 503), -EBUSY (every connection
 * full and the queue too: answer 503), -EINVAL (bad arguments, owner not deferred, not on a
 * worker), -ENOMEM.
 */
int coil_pg_query(struct coil_req *owner, struct coil_pg *db, const struct coil_pg_query *q,
                  coil_pg_fn fn, void *ud);

/* Whether every worker has at least one connection open now (any thread). */
bool coil_pg_ready(const struct coil_pg *db);

#ifdef __cplusplus
}
#endif
#endif /* COIL_PG_H */
