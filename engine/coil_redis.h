/* SPDX-License-Identifier: MIT */
/*
 * coil_redis.h: Redis from handlers, without blocking a core. Part of libcoil when it is built
 * with hiredis (Debian's libhiredis-dev); `pkg-config --libs coil` then pulls hiredis in.
 *
 * Every worker keeps one connection of its own (hiredis' asynchronous context, driven by a
 * coil_watch on the worker's ring); commands from every request on that worker share it,
 * pipelined, answered in order. Replies come back on the worker that sent the command.
 *
 * Faults: a connection that fails fails the commands in flight on it (-ECONNRESET) and is
 * reopened in the background with backoff (100 ms doubling to 5 s); meanwhile commands fail at
 * once with -ENOTCONN. A command not answered within the timeout fails with -ETIMEDOUT and its
 * connection is closed and reopened (the commands behind it fail with -ECONNRESET). Names in
 * the URL are resolved once, at start-up, on the main thread.
 *
 * As a cache shared by several processes, give it to coil_cache_create (opts.redis): the
 * coil_cache calls then use GET, SET PX and DEL here. When Redis is down, read the source
 * instead: the cache is an optimisation, not a dependency.
 */
#ifndef COIL_REDIS_H
#define COIL_REDIS_H

#include <coil.h>

#ifdef __cplusplus
extern "C" {
#endif

struct coil_redis;

struct coil_redis_opts {
    /* "redis://[:password@]host[:port][/db]" (also "user:password@", both %-encoded where they
     * hold '@', ':' or '/'; the password and db are sent first on every connection, and a
     * refusal closes the connection, logged, and retried with backoff); NULL: the option
     * --redis-url [COIL_REDIS_URL, else REDIS_URL] is added to the application and read. */
    const char *url;
    uint32_t timeout_ms;         /* per command [1000] */
    uint32_t connect_timeout_ms; /* [2000] */
    uint32_t max_pending;        /* commands in flight per worker, then -EBUSY [65536] */
};

/*
 * Declares a Redis server, before coil_app_run. Without a URL (none given and no option set)
 * it is "not configured": every command fails with -ENOTCONN. coil_ready waits for a Redis
 * connection on every worker only when ready_gate is set with coil_redis_gate (a cache
 * usually should not gate readiness). NULL out of memory or for a bad URL (said on stderr).
 */
struct coil_redis *coil_redis_open(struct coil_app *app, const struct coil_redis_opts *opts);
int coil_redis_gate(struct coil_redis *r); /* make coil_ready wait for it */

enum coil_redis_type {
    COIL_REDIS_NIL = 1, /* a missing key */
    COIL_REDIS_STRING,  /* str */
    COIL_REDIS_STATUS,  /* str: "OK", "PONG" */
    COIL_REDIS_INTEGER, /* integer */
    COIL_REDIS_ARRAY,   /* elements */
    COIL_REDIS_ERROR,   /* str: the server's error ("WRONGTYPE ...") */
};

/*
 * A reply, valid during the callback only. error is 0 when Redis answered (type says what,
 * an error reply included), else -ECONNRESET, -ETIMEDOUT, -ENOTCONN, -ENOMEM or -ESHUTDOWN,
 * with message saying why.
 */
struct coil_redis_reply {
    int error;
    const char *message;
    enum coil_redis_type type;
    struct coil_str str;
    int64_t integer;
    size_t nelements;
    const struct coil_redis_reply *elements;
};
typedef void (*coil_redis_fn)(const struct coil_redis_reply *r, void *ud);

/*
 * Sends a command (argv[0] is its name, the rest its arguments, binary-safe) from the calling
 * worker; fn(r, ud) runs once on this worker with its reply. fn may be NULL (nothing reported).
 * With an owner request (which must have deferred) the reply is dropped if the request ends
 * first. 0, or fails at once without calling fn: -ENOTCONN (no connection now, or not
 * configured), -EBUSY (max_pending reached), -EINVAL (bad arguments, owner not deferred, not on
 * a worker, or a command that would change the shared connection for every other request:
 * SUBSCRIBE and the rest of pub/sub, MONITOR, CLIENT REPLY, SELECT, AUTH, HELLO, RESET, QUIT),
 * -ENOMEM.
 */
int coil_redis_command(struct coil_req *owner, struct coil_redis *r, int argc,
                       const struct coil_str *argv, coil_redis_fn fn, void *ud);
/* GET key; SET key value PX ttl_ms (ttl_ms 0: no expiry); DEL key. */
int coil_redis_get(struct coil_req *owner, struct coil_redis *r, struct coil_str key,
                   coil_redis_fn fn, void *ud);
int coil_redis_set(struct coil_req *owner, struct coil_redis *r, struct coil_str key,
                   struct coil_str value, uint32_t ttl_ms, coil_redis_fn fn, void *ud);
int coil_redis_del(struct coil_req *owner, struct coil_redis *r, struct coil_str key,
                   coil_redis_fn fn, void *ud);

/* Whether the server is configured, and whether every worker has its connection now. */
bool coil_redis_configured(const struct coil_redis *r);
bool coil_redis_ready(const struct coil_redis *r);

#ifdef __cplusplus
}
#endif
#endif /* COIL_REDIS_H */
