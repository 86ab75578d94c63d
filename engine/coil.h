/* SPDX-License-Identifier: MIT */
/*
 * coil.h: the one header a handler includes.
 *
 * coil runs one pinned worker thread per CPU. Each worker owns an io_uring ring, its
 * connections and its memory; nothing is shared between workers but the read-only route
 * table and configuration. A handler runs on the worker that received the request, to
 * completion: it must not block. Work that may block or take long goes to a background job
 * (coil_job_post), which runs on its target worker between batches of requests.
 *
 * Memory: everything a handler gets from a request (strings, body, coil_req_alloc) lives in the
 * worker's request arena and is valid until the response is finished: when the handler returns,
 * or, for a deferred response (coil_res_defer, below), until coil_res_finish or the abort.
 * Long-lived memory a handler keeps per worker comes from coil_malloc/coil_free (the worker's
 * own jemalloc arena) and must be freed on the same worker.
 *
 * Errors: functions that can fail return 0 or a negative errno value.
 *
 * A complete program:
 *
 *     #include <coil.h>
 *     static int hello(struct coil_req *req, struct coil_res *res, void *ud)
 *     {
 *         (void)req; (void)ud;
 *         return coil_res_text(res, 200, "text/plain", "hello\n");
 *     }
 *     int main(int argc, char **argv)
 *     {
 *         struct coil_app *app = coil_app_create(argc, argv);
 *         coil_route(app, "GET", "/hello", hello, NULL);
 *         return coil_app_run(app);
 *     }
 */
#ifndef COIL_H
#define COIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* A byte slice. Not NUL-terminated unless stated. */
struct coil_str {
    const char *ptr;
    size_t len;
};

struct coil_app; /* the engine: configuration, routes, workers */
struct coil_req; /* one parsed request; valid during the handler call */
struct coil_res; /* the response the handler fills */

/*
 * A request handler. Return 0 once the response is filled in. A negative return value makes
 * the engine answer 500 (or 503 for -ENOMEM) unless the handler already set a status.
 */
typedef int (*coil_handler)(struct coil_req *req, struct coil_res *res, void *ud);

/*
 * A body consumer for a streaming route (coil_route_stream): called with each piece of the
 * request body as it arrives (already decoded when chunked), in order, before the handler.
 * The request's method, path, query and headers are readable; coil_req_body is empty, and
 * coil_req_alloc memory lasts until this call returns. Return 0 to go on, or an HTTP status
 * (400-599) to answer it at once and close the connection (any other value answers 500).
 */
typedef int (*coil_body_fn)(struct coil_req *req, const void *data, size_t len, void *ud);

/* ---- application ------------------------------------------------------------------------ */

/*
 * Creates the engine and reads its options from argv and the environment (COIL_PORT, ...).
 * --help prints usage and exits 0; a bad option prints a message and exits 2.
 * Options added with coil_app_option before coil_app_run are parsed by coil_app_run instead,
 * so pass argv here and add options after: parsing is deferred to coil_app_run.
 */
struct coil_app *coil_app_create(int argc, char **argv);

/*
 * Adds an application option "--name VALUE" (also read from the environment variable env,
 * if not NULL). set() is called with each value during option parsing on the main thread:
 * first the variable's, then the flag's (so it may run twice; the last call wins). Returning
 * non-zero rejects the value (coil exits 2). Call before coil_app_run.
 */
int coil_app_option(struct coil_app *app, const char *name, const char *env, const char *metavar,
                    const char *help, int (*set)(const char *value, void *ud), void *ud);

/*
 * Registers a route. method is an HTTP method token ("GET", "POST", ...; a GET route also
 * answers HEAD). pattern is an absolute path: literal segments, ":name" segments that match
 * one non-empty segment, and a final "*" that matches the rest of the path (possibly empty;
 * read it with coil_req_param(req, "*")). Returns -EEXIST for a duplicate, -EINVAL for a bad
 * pattern. Routes are fixed once coil_app_run starts.
 */
int coil_route(struct coil_app *app, const char *method, const char *pattern, coil_handler h,
               void *ud);

/*
 * Sets the body limit of one route, overriding --max-body-bytes (bytes, at most 1 GiB; 0 keeps
 * the default). -ENOENT if no such route, -EINVAL past 1 GiB.
 * Call after coil_route for the same method and pattern.
 */
int coil_route_max_body(struct coil_app *app, const char *method, const char *pattern,
                        uint64_t max_body_bytes);

/*
 * Registers a streaming route: the request body is passed to on_body piece by piece as it
 * arrives instead of being held in memory, then h runs with an empty coil_req_body (so a
 * 20 MiB upload costs one receive buffer, not 20 MiB). Keep what the pieces tell you in
 * coil_req_state. Set the route's body limit with coil_route_max_body (no 1 GiB ceiling here,
 * as nothing is buffered); bodies over it get 413. Same return values as coil_route.
 */
int coil_route_stream(struct coil_app *app, const char *method, const char *pattern,
                      coil_body_fn on_body, coil_handler h, void *ud);

/*
 * Hooks called on each worker's own thread: start before it serves its first request, stop
 * after its last request and jobs. Use them to build and free per-worker state. Any number
 * may be added (either function may be NULL): start hooks run in the order added, stop hooks
 * in the reverse order. -EINVAL if both are NULL, -ENOMEM.
 */
int coil_app_on_worker(struct coil_app *app, void (*start)(unsigned worker, void *ud),
                       void (*stop)(unsigned worker, void *ud), void *ud);

/*
 * Hooks called on the main thread by coil_app_run: run once the options are parsed and the
 * number of workers is known (coil_worker_count), before any worker starts; done after every
 * worker has stopped. A run hook that returns non-zero (having printed why) stops coil_app_run
 * with status 2; the done hooks of the run hooks before it still run. In the order added.
 * A done hook added without a run hook is a clean-up: it runs once however coil_app_run ends
 * (a bad option or --help included), so it may free what was made when it was added.
 */
int coil_app_on_run(struct coil_app *app, int (*run)(void *ud), void (*done)(void *ud), void *ud);

/*
 * A hook called on the main thread each time the process gets SIGHUP (after the engine's own:
 * the access log is reopened for rotation). Keep it short; work for the workers goes through
 * what they read. -EINVAL, -ENOMEM.
 */
int coil_app_on_reload(struct coil_app *app, void (*reload)(void *ud), void *ud);

/*
 * Readiness (what a /readyz probe asks): coil_ready is true while the process is not draining
 * and every check added with coil_app_ready_check answers true. Checks may be called from any
 * thread, often: keep them to a few atomic loads. Libraries add their own (a database pool is
 * ready once every worker has a connection).
 */
int coil_app_ready_check(struct coil_app *app, bool (*ready)(void *ud), void *ud);
bool coil_ready(void);

/*
 * Parses options (exit 2 on a bad one), starts the workers and serves until SIGTERM or SIGINT,
 * then drains gracefully. Returns the process exit status (0 after a clean drain). Frees app.
 */
int coil_app_run(struct coil_app *app);

/* ---- request ---------------------------------------------------------------------------- */

struct coil_str coil_req_method(const struct coil_req *req);
struct coil_str coil_req_path(const struct coil_req *req);  /* raw, as sent, no query */
struct coil_str coil_req_query(const struct coil_req *req); /* raw, after '?', may be empty */
int coil_req_version(const struct coil_req *req);           /* 10 or 11 */

/*
 * Query parameter by name, percent-decoded ('+' is a space). Returns 1 and sets *out if found,
 * 0 if absent, -EINVAL if the value is badly encoded. *out lives in the request arena.
 */
int coil_req_query_param(struct coil_req *req, const char *name, struct coil_str *out);

/* Decimal text as an integer: an optional sign and digits, nothing else (no spaces). 0 and *out,
 * -EINVAL, or -ERANGE when it does not fit. */
int coil_parse_int64(const char *s, size_t len, int64_t *out);

/* Path parameter by name (":id" -> "id", "*" for the wildcard), percent-decoded. {NULL,0} if none.
 */
struct coil_str coil_req_param(const struct coil_req *req, const char *name);

/* First header with this name (case-insensitive), value trimmed. {NULL,0} if absent. */
struct coil_str coil_req_header(const struct coil_req *req, const char *name);
size_t coil_req_header_count(const struct coil_req *req);
/* The i-th header in the order received (duplicates included). Returns -ERANGE past the end. */
int coil_req_header_at(const struct coil_req *req, size_t i, struct coil_str *name,
                       struct coil_str *value);

/* The decoded request body (Content-Length or chunked); empty if none. */
struct coil_str coil_req_body(const struct coil_req *req);

/*
 * COIL_REQ_STATE_BYTES bytes of per-request scratch, 16-byte aligned and zeroed when the
 * request starts, kept from the first on_body call of a streaming route through its handler.
 */
#define COIL_REQ_STATE_BYTES 32
void *coil_req_state(struct coil_req *req);

/* Memory valid until the response is finished (request arena). NULL if out of memory. */
void *coil_req_alloc(struct coil_req *req, size_t size);

/* ---- response --------------------------------------------------------------------------- */

/* Default status is 200. A 1xx status is interim and cannot end a response: it becomes 500. */
void coil_res_status(struct coil_res *res, int status);

/*
 * Adds a header; name and value are copied. Date, Server, Content-Length and Connection are the
 * engine's and are refused with -EPERM. Values with CR or LF are refused with -EINVAL.
 */
int coil_res_header(struct coil_res *res, const char *name, const char *value);
int coil_res_headern(struct coil_res *res, const char *name, size_t name_len, const char *value,
                     size_t value_len);

/* Sets the body, copying it. A whole body is at most COIL_BODY_MAX bytes (the client gets 500
 * beyond, and the log says why): send larger ones with coil_res_stream. */
#define COIL_BODY_MAX (1u << 30)
int coil_res_body(struct coil_res *res, const void *data, size_t len);
/* Sets the body without copying: data must outlive the response (static or app-lifetime). */
int coil_res_body_static(struct coil_res *res, const void *data, size_t len);

/* Status, Content-Type and a copied body in one call. */
int coil_res_text(struct coil_res *res, int status, const char *content_type, const char *body);

/* ---- JSON writer ------------------------------------------------------------------------ */

/*
 * Starts a JSON body (Content-Type: application/json) written with the calls below; commas and
 * string escaping are handled. The document is checked for balance when the handler returns.
 */
struct coil_json;
struct coil_json *coil_res_json(struct coil_res *res);
void coil_json_object_open(struct coil_json *j);
void coil_json_object_close(struct coil_json *j);
void coil_json_array_open(struct coil_json *j);
void coil_json_array_close(struct coil_json *j);
void coil_json_keyn(struct coil_json *j, const char *key, size_t len);
/* Inside an object, before a value. Inline so a literal key's length is known when compiled. */
static inline void coil_json_key(struct coil_json *j, const char *key)
{
    coil_json_keyn(j, key, key ? __builtin_strlen(key) : 1); /* NULL: -EINVAL, as keyn says */
}
void coil_json_string(struct coil_json *j, const char *s);
void coil_json_stringn(struct coil_json *j, const char *s, size_t len);
void coil_json_int(struct coil_json *j, int64_t v);
void coil_json_uint(struct coil_json *j, uint64_t v);
void coil_json_double(struct coil_json *j, double v); /* non-finite values are written as null */
void coil_json_bool(struct coil_json *j, bool v);
void coil_json_null(struct coil_json *j);
/* A value that is already JSON text (a number, a nested document from a database's json
 * column, a pre-serialised object), copied as it is: it is not checked, so it must be exactly
 * one valid JSON value. */
void coil_json_raw(struct coil_json *j, const char *json, size_t len);
/* The document written so far, once it is complete (every container closed): 0 and *out,
 * which lives in the request arena (to keep a serialised copy in a cache, say); -EINVAL while
 * incomplete, or the writer's first error (-ENOMEM). */
int coil_json_text(const struct coil_json *j, struct coil_str *out);

/* ---- requests that wait ---------------------------------------------------------------- */

/*
 * A handler need not answer before it returns. It defers instead: it calls coil_res_defer,
 * starts whatever it waits for (a timer, an fd watch, a job on another worker, a query), returns
 * 0, and a later callback on the same worker fills res and calls coil_res_finish. Every piece
 * of work still runs to completion; only the response waits. A response that is not deferred
 * costs nothing extra: the engine moves a request into memory of its own only when it defers.
 *
 * Lifetime: req and res stay valid from the handler call until coil_res_finish returns or the
 * request is aborted, whichever comes first. Memory from coil_req_alloc and the response built so
 * far are kept across the defer. Slices read from req *before* coil_res_defer point into the
 * receive buffer: read them again after deferring (the same calls then return the request's own
 * copy, valid until the end). Use req and res only from callbacks that run on the worker that
 * received the request.
 *
 * Abort: if the client goes away (end of file, reset, a failed send), the response is not
 * started within --handler-timeout (the client gets 504; a streamed response must instead write
 * a piece at least that often, else the connection closes), or the drain deadline passes, on_abort
 * runs once and req/res are gone when it returns. Every timer or job reply started with this
 * request as its owner (below) is dropped with it, so owner-bound callbacks may keep pointers into
 * coil_req_alloc memory. Something that finishes a response from outside such callbacks keeps
 * the coil_defer handle and asks coil_defer_res, which answers NULL once the request is gone.
 *
 * Order: HTTP/1.1 answers pipelined requests in order, so requests behind a waiting one are
 * read (up to a bound, then the connection stops reading) and run only after it is finished.
 */
struct coil_defer {
    uint64_t id; /* (worker, slot, generation); 0 is never a live request. Like every handle
                  * here, it names something only on the worker that made it. */
};
typedef void (*coil_abort_fn)(void *ud);

/*
 * Defers the response. on_abort (may be NULL) runs at most once, if the request dies before
 * coil_res_finish. Returns the request's handle, or {0} when the response cannot be deferred:
 * out of memory, called twice, or from a streaming route's on_body. Return 0 from the handler
 * after a successful defer; a negative return cancels the defer (500, on_abort is not run).
 */
struct coil_defer coil_res_defer(struct coil_res *res, coil_abort_fn on_abort, void *ud);

/* The response (and request) of a deferred handle, or NULL once finished or aborted. */
struct coil_res *coil_defer_res(struct coil_defer d);
struct coil_req *coil_defer_req(struct coil_defer d);

/*
 * Sends the deferred response as the coil_res_* calls have built it (status, headers, body or
 * JSON), or ends a streamed one. req and res are invalid once it returns. -EINVAL if res was
 * not deferred (a handler that did not defer simply returns).
 */
int coil_res_finish(struct coil_res *res);

/*
 * Streams the body of a deferred response: coil_res_stream sends the status and headers now
 * (with a Content-Length if coil_res_length gave one, else chunked on HTTP/1.1 and
 * close-delimited on HTTP/1.0); coil_res_write queues a piece (copied); coil_res_finish ends
 * the body (a body shorter than its declared length ends with the connection closed, which is
 * how the client learns it). coil_res_write returns -EAGAIN (nothing taken) while more than
 * COIL_STREAM_HIGH bytes wait for the client; on_writable (set with coil_res_on_writable)
 * then runs once half of them have drained, so a slow client never makes the worker buffer
 * without bound. -EMSGSIZE: past the declared length. -EINVAL before coil_res_stream. -EPIPE:
 * the connection failed under the call: the request was aborted (on_abort ran) and res is
 * gone. A HEAD request's stream takes the pieces and sends none.
 * Server-Sent Events: Content-Type text/event-stream, then "data: ...\n\n" pieces.
 */
#define COIL_STREAM_HIGH (256 * 1024)
int coil_res_length(struct coil_res *res, uint64_t len); /* before coil_res_stream */
int coil_res_stream(struct coil_res *res);
int coil_res_write(struct coil_res *res, const void *data, size_t len);
int coil_res_on_writable(struct coil_res *res, void (*fn)(void *ud), void *ud);

/*
 * One-shot timers on the calling worker: fn(ud) runs once, ms milliseconds from now (never
 * early; late only by what the worker is busy with). With an owner request (which must have
 * deferred: coil_res_defer first), the timer is cancelled when that request is finished or
 * aborted. Returns a handle ({0}: out of memory or not on a worker thread).
 * coil_timer_cancel returns 0 if it stopped the timer, -ENOENT if it already ran or was
 * cancelled (a stale handle is always safe).
 */
struct coil_timer {
    uint64_t id;
};
struct coil_timer coil_timer_after(struct coil_req *owner, uint64_t ms, void (*fn)(void *ud),
                                   void *ud);
int coil_timer_cancel(struct coil_timer t);

/*
 * fd readiness on the calling worker's ring, for non-blocking libraries (libpq, hiredis, your
 * own sockets). fn(fd, events, ud) runs whenever fd is ready for one of the events asked for
 * (level-triggered, like poll: it runs again while the condition holds and the watch stays).
 * COIL_ERROR and COIL_HANGUP are always reported. coil_watch_update changes the events;
 * coil_unwatch stops it (fn never runs again; close the fd after). The watch does not own fd.
 * Returns {0} on failure (out of memory, not on a worker, bad arguments).
 */
enum { COIL_READABLE = 1, COIL_WRITABLE = 2, COIL_ERROR = 4, COIL_HANGUP = 8 };
struct coil_watch {
    uint64_t id;
};
typedef void (*coil_watch_fn)(int fd, unsigned events, void *ud);
struct coil_watch coil_watch(int fd, unsigned events, coil_watch_fn fn, void *ud);
int coil_watch_update(struct coil_watch w, unsigned events); /* 0 or -ENOENT */
int coil_unwatch(struct coil_watch w);                       /* 0 or -ENOENT */

/*
 * Reading a body while the response waits. A streaming route registered with on_body NULL
 * (coil_route_stream(app, method, pattern, NULL, handler, ud)) runs its handler as soon as the
 * request head has arrived, before the body. The handler defers, then calls coil_req_read:
 * on_piece(req, data, len, ud) runs on the worker for each piece of the body as it arrives
 * (decoded if chunked), then once with len 0 at its end (at once for a request without a
 * body). It returns 0 to take a piece, or COIL_BODY_PAUSE to leave it: reading from the client
 * stops and the same piece comes again after coil_req_resume, so a slow consumer slows the
 * client down instead of the worker buffering. Each piece restarts the handler timeout. A
 * response finished before the whole body was read closes the connection after it. The
 * route's limit (coil_route_max_body, else --max-body-bytes) is checked as the body arrives:
 * beyond it, or on bad chunked framing, the request is answered 413 or 400 if its response
 * has not started (else its connection closes). coil_req_body_length says what was declared:
 * the Content-Length, -1 for a chunked body, 0 for none.
 * -EINVAL if req was not deferred, is not an early route's request, or has a reader already.
 */
#define COIL_BODY_PAUSE 1
typedef int (*coil_piece_fn)(struct coil_req *req, const void *data, size_t len, void *ud);
int coil_req_read(struct coil_req *req, coil_piece_fn on_piece, void *ud);
/* After COIL_BODY_PAUSE: 0, -EINVAL, or -EPIPE when the connection failed under the call (out
 * of memory): the request was aborted (on_abort ran) and req is gone. coil_req_read the same. */
int coil_req_resume(struct coil_req *req);
int64_t coil_req_body_length(const struct coil_req *req);

/*
 * Gives up on a deferred response that cannot be completed: when nothing of it was sent yet the
 * client gets status (a 4xx or 5xx: 502 for a failed upstream, 504 for one that timed out);
 * once coil_res_stream has sent the head, the connection is closed instead, so the client
 * cannot mistake a cut-short body for a whole one. on_abort does not run. req and res are
 * invalid once it returns. -EINVAL if res was not deferred or status is not 400-599.
 */
int coil_res_fail(struct coil_res *res, int status);

/* ---- calling other services (HTTP/1.1 upstreams) --------------------------------------- */

/*
 * An upstream is a set of HTTP/1.1 servers declared before coil_app_run. Every worker keeps
 * its own keep-alive pool per server (nothing is shared between workers); connect, send and
 * receive go through the worker's ring, so a handler that calls an upstream never blocks.
 *
 * url: "http://host[:port][,host[:port]...][/base]": one or more servers (IPv4, [IPv6] or a
 * name, resolved once here, on the calling thread; port 80 by default) and an optional base
 * path that coil_route_proxy prepends. Requests are balanced over the servers that are up: the
 * one with the fewest requests in flight on this worker, round robin among equals. A server
 * whose connects fail fail_threshold times in a row is marked down for down_ms on that worker,
 * then tried again by one request. Returns NULL (and logs why) for a bad URL or a name that
 * does not resolve. opts may be NULL for the defaults (in brackets below); zero fields take
 * their default too.
 */
struct coil_upstream;
struct coil_upstream_opts {
    uint32_t max_conns;          /* connections per server per worker [256] */
    uint32_t max_queue;          /* requests waiting for a connection per worker [4096] */
    uint32_t connect_timeout_ms; /* connect, including the wait for a connection [2000] */
    uint32_t head_timeout_ms;    /* request sent to response head [30000] */
    uint32_t idle_timeout_ms;    /* between two reads of the response body [30000] */
    uint32_t total_timeout_ms;   /* the whole exchange [0: none] */
    uint32_t keepalive_ms;       /* an unused pooled connection is closed after [60000] */
    uint32_t fail_threshold;     /* consecutive connect failures that mark a server down [3] */
    uint32_t down_ms;            /* how long it stays down before a probe [1000] */
};
struct coil_upstream *coil_upstream(struct coil_app *app, const char *url,
                                    const struct coil_upstream_opts *opts);

/* A header as a pair of slices. */
struct coil_header {
    struct coil_str name;
    struct coil_str value;
};

/*
 * A request to an upstream. The engine writes the request line, Host (the upstream's, unless
 * headers has one), Content-Length when there is a body (or a method that expects one), for a
 * fetch with an owner request its trace context (traceparent with the owner's trace and span,
 * and its tracestate; coil_req_trace), unless headers has a traceparent, and nothing else:
 * headers are sent as given (names and values must not contain CR or LF; hop-by-hop headers
 * are the caller's business). body is copied; so are the other fields.
 */
struct coil_fetch_req {
    const char *method;                /* NULL: "GET" */
    struct coil_str target;            /* origin-form "/path?query"; empty: the upstream's base */
    const struct coil_header *headers; /* nheaders entries */
    size_t nheaders;
    const void *body;
    size_t body_len;
    /* Or a body written as it comes (coil_fetch_write, then coil_fetch_write_end): of
     * stream_length bytes (Content-Length), or chunked when it is -1. Never retried. */
    bool stream_body;
    int64_t stream_length;
};

/*
 * What a fetch reports, in order: HEAD once (status and headers, 1xx responses are skipped), then
 * BODY pieces as they arrive (decoded if chunked), then DONE; or ERROR at any point, after which
 * nothing follows. Every pointer in the event is valid during the callback only.
 * Errors: -ECONNREFUSED (connect refused), -ETIMEDOUT (connect, head, idle or total timeout),
 * -ECONNRESET (the connection failed or closed before the response was complete), -EPROTO (the
 * response was malformed or smuggling-shaped: bad status line or header, Content-Length with
 * Transfer-Encoding, disagreeing lengths, bad chunk framing; it is never passed on), -ENOMEM,
 * -EHOSTUNREACH (it waited for a connection and every server was marked down meanwhile), or the
 * error of a connection that could not be opened for it (-EMFILE, -EBUSY: no submission entry).
 * Retries: a request that fails on a reused keep-alive connection before any byte of the
 * response is sent again once, on a new connection, if its method is idempotent (GET, HEAD,
 * PUT, DELETE, OPTIONS, TRACE). Nothing else is retried.
 */
enum coil_fetch_kind {
    COIL_FETCH_HEAD = 1,
    COIL_FETCH_BODY,
    COIL_FETCH_DONE,
    COIL_FETCH_ERROR,
    COIL_FETCH_WRITABLE, /* a streamed request body may be written again (after -EAGAIN) */
};
struct coil_fetch {
    uint64_t id; /* a handle, like coil_timer's */
};
struct coil_fetch_ev {
    enum coil_fetch_kind kind;
    struct coil_fetch fetch;
    int status;                        /* HEAD, BODY, DONE: the response status */
    int error;                         /* ERROR: a negative errno value (above) */
    bool started;                      /* ERROR: HEAD had been reported (a cut-short body) */
    int64_t length;                    /* HEAD: Content-Length if the response has one, else -1 */
    bool no_body;                      /* HEAD: the response has no body (HEAD, 204, 304) */
    const struct coil_header *headers; /* HEAD: the response's headers, as received */
    size_t nheaders;
    const char *data; /* BODY */
    size_t len;
};

/*
 * The callback returns 0 to go on. From a BODY event it may return COIL_FETCH_PAUSE: the
 * piece is not taken, reading stops, and the same piece is reported again after
 * coil_fetch_resume (this is how a slow client slows the upstream down instead of the worker
 * buffering). A paused fetch waits for that resume (or a cancel, or its owner's end) even if its
 * connection ends meanwhile: what was received is reported first, then how it ended.
 * A negative return cancels the fetch (its connection is closed; no more events).
 */
#define COIL_FETCH_PAUSE 1
typedef int (*coil_fetch_fn)(const struct coil_fetch_ev *ev, void *ud);

/*
 * Sends r to up from the calling worker; fn(ev, ud) runs on this worker as the response
 * arrives. With an owner request (which must have deferred), the fetch is cancelled when that
 * request is finished or aborted (fn does not run again), so ud may point into its memory.
 * Returns 0 and sets *out (may be NULL), or fails at once, without calling fn: -EBUSY (every
 * connection busy and the wait queue full: answer 503), -EHOSTUNREACH (every server is marked
 * down: 502), -EINVAL (bad arguments, owner not deferred, not on a worker), -ENOMEM.
 */
int coil_fetch(struct coil_req *owner, struct coil_upstream *up, const struct coil_fetch_req *r,
               coil_fetch_fn fn, void *ud, struct coil_fetch *out);
int coil_fetch_resume(struct coil_fetch f); /* after COIL_FETCH_PAUSE; 0 or -ENOENT */
/*
 * A streamed request body (stream_body): coil_fetch_write queues a piece (copied) and returns
 * 0, or -EAGAIN, taking nothing, while the connection is not ready or more than
 * COIL_STREAM_HIGH bytes wait to be sent; a COIL_FETCH_WRITABLE event follows once it can take
 * more. coil_fetch_write_end ends the body (-EPROTO if it is shorter than stream_length: the
 * fetch is cancelled, its connection closed, and no event follows). Both return -ENOENT once the
 * fetch has ended (its response may come before the body was all sent; the connection is then not
 * reused) and -EMSGSIZE past stream_length.
 */
int coil_fetch_write(struct coil_fetch f, const void *data, size_t len);
int coil_fetch_write_end(struct coil_fetch f);
int coil_fetch_cancel(struct coil_fetch f); /* fn never runs again; 0 or -ENOENT */

/*
 * A reverse proxy route: every request whose path matches pattern (a literal prefix ending in
 * a slash, then the wildcard, like "/api/" followed by "*") is sent to url (as for
 * coil_upstream) with the part of the path after the prefix appended to the URL's base path
 * and the query kept: for the prefix "/api/" and "http://10.0.0.5:9000/v1/",
 * "GET /api/users?id=7" goes upstream as "GET /v1/users?id=7".
 * Methods GET, HEAD, POST, PUT, PATCH, DELETE and OPTIONS are routed.
 * Forwarded: method, target, headers except hop-by-hop ones (Connection, the fields it lists,
 * Keep-Alive, Proxy-Connection, TE, Transfer-Encoding, Upgrade, Expect), with Host set to the
 * upstream's, X-Forwarded-For (appended to), X-Forwarded-Proto, X-Forwarded-Host and Via added;
 * the body. The response's status, headers (hop-by-hop ones removed, Via added) and body come
 * back streamed, at the client's pace. Faults: upstream refused or reset before its head, or a
 * malformed response: 502; timed out: 504; no connection free and the queue full: 503; the
 * upstream fails mid-body: the client's connection is closed. Timeouts come from
 * --proxy-connect-timeout and --proxy-read-timeout (head, then between body reads); request
 * bodies stream through (early routes, above) up to the route's limit (coil_route_max_body on
 * each method, else --max-body-bytes: 413 beyond). url's names are resolved when coil_app_run
 * starts (a name that does not resolve stops it with status 2). -EINVAL for a bad pattern or
 * a URL that is not http://, -EEXIST if the pattern is routed already.
 */
int coil_route_proxy(struct coil_app *app, const char *pattern, const char *url);

/* ---- static files ----------------------------------------------------------------------- */

/*
 * Serves the files under root at pattern (a prefix ending in a slash, then the wildcard, like
 * "/static/" followed by "*"): "GET /static/css/site.css" sends root/css/site.css. GET and HEAD
 * are routed (other methods get 405). What a user of nginx expects, on the worker's ring:
 * - Safety: the path is percent-decoded, then every segment checked: "." and ".." segments, NUL
 *   and control bytes, and names starting with a dot (unless hidden) get 404, as do files that
 *   are not regular (directories, devices, FIFOs, sockets) and symlinks that leave root (or are
 *   absolute): files are opened with openat2's RESOLVE_BENEATH. A file the server may not read
 *   gets 403; a malformed escape 400. A path ending in '/' serves the directory's index file; a
 *   directory named without the '/' gets 301 to it.
 * - Content-Type from the extension (types first, then a built-in table of the common web types;
 *   else application/octet-stream).
 * - Precompressed siblings: NAME.br and NAME.gz are sent (Content-Encoding, Vary:
 *   Accept-Encoding) when the client's Accept-Encoding takes them, br first at equal q.
 * - ETag (size, mtime, inode) and Last-Modified; If-None-Match, If-Modified-Since (304),
 *   If-Match, If-Unmodified-Since (412); a single Range (206, or 416; several ranges get the
 *   whole file), If-Range; Accept-Ranges: bytes; Cache-Control if set.
 * - Each worker caches what it serves: files up to 1 MiB (and an eighth of --static-cache) in
 *   memory, answered without a system call; bigger ones stream from an open descriptor at the
 *   client's pace. Each cached file is checked again (statx) once a second, so changes show
 *   within about a second; a download in progress keeps the file it began with, and one whose
 *   file shrinks under it ends short with the connection closed.
 * -EINVAL: a bad pattern, root empty, or an option value with CR/LF; -EEXIST: routed already.
 * root is opened when coil_app_run starts; a root that is not a directory stops it (status 2).
 */
struct coil_static_type {
    const char *ext;  /* without the dot: "md" */
    const char *type; /* "text/markdown; charset=utf-8" */
};
struct coil_static_opts {
    const char *cache_control;            /* on 200, 206 and 304 answers; NULL: none */
    const char *index;                    /* NULL: "index.html"; "": directories get 404 */
    bool hidden;                          /* serve names starting with '.' ("."/".." never) */
    bool no_precompressed;                /* ignore NAME.br and NAME.gz */
    const struct coil_static_type *types; /* ends with {NULL, NULL}; NULL: the built-in table */
};
int coil_route_static(struct coil_app *app, const char *pattern, const char *root,
                      const struct coil_static_opts *opts);

/* ---- a cache per worker ---------------------------------------------------------------- */

/*
 * A cache-aside store for serialised answers (a JSON body read from a database, say). Every
 * worker has its own table, bounded by entries and bytes, evicting the least recently used.
 * Nothing is shared: a value put on one worker is seen there only, unless replicate is set,
 * which copies every put to every worker (a job each: cheap for small values, and then a key
 * read once is a hit everywhere). Declared before coil_app_run; used on workers only.
 *
 * Values carry a stamp: coil_cache_stamp() taken *before* reading the value from its source.
 * An entry expires ttl_ms after its stamp (an absolute TTL: reads do not extend it), and a put
 * whose stamp is not after the key's last invalidation is refused (-ESTALE), so a slow read
 * that began before a write can never put the old value back after the write's invalidation.
 */
struct coil_cache;
struct coil_redis; /* coil_redis.h */
struct coil_cache_opts {
    uint32_t ttl_ms;      /* [1000] */
    uint32_t max_entries; /* per worker [65536] */
    uint64_t max_bytes;   /* keys, values and about 64 bytes per entry, per worker [64 MiB] */
    bool replicate;       /* copy puts to every worker [false] */
    /* Entries in Redis instead, shared by every process (coil_redis_open; when that Redis is
     * not configured, the cache stays local): keys are prefix + key, the TTL is Redis' PX.
     * The calls below keep their meaning, except coil_cache_get (always a miss: use
     * coil_cache_fetch) and stamps (only the TTL is taken from them: Redis keeps no
     * tombstones, so a read that began before a write can put the old value back after the
     * write's invalidation, until the TTL ends). */
    struct coil_redis *redis;
    const char *prefix; /* [""]; copied */
};
struct coil_cache *coil_cache_create(struct coil_app *app, const struct coil_cache_opts *opts);

/* true and *out (the value; valid until the next coil_cache call on this worker) if key is
 * cached and not expired on the calling worker. Copy it into the response (coil_res_body). */
bool coil_cache_get(struct coil_cache *c, const void *key, size_t klen, struct coil_str *out);
/*
 * A lookup that works for both kinds of cache: fn(err, value, len, ud) with err 0 (a hit; value
 * valid during the call), -ENOENT (a miss), or the error of a Redis that failed (-ENOTCONN,
 * -ECONNRESET, -ETIMEDOUT; read the source then). A local cache calls fn before returning; a
 * cache on Redis calls it when Redis answers, on this worker; with an owner request
 * (deferred) the call is dropped if the request ends first. Returns 0 (fn runs once), or
 * fails at once without calling fn: -ENOTCONN (Redis down), -EBUSY, -ENOMEM, -EINVAL.
 * A handler looks with coil_cache_get first (a local hit answers without deferring), then
 * defers and fetches.
 */
typedef void (*coil_cache_fn)(int err, const void *value, size_t len, void *ud);
int coil_cache_fetch(struct coil_req *owner, struct coil_cache *c, const void *key, size_t klen,
                     coil_cache_fn fn, void *ud);
/* Now, as a put's stamp. */
uint64_t coil_cache_stamp(void);
/* Puts a copy of val under key (stamp: see above; 0 means now), replacing an older value.
 * 0, -ESTALE (refused, see above, or expired already), -E2BIG (larger than max_bytes),
 * -ENOMEM, -EINVAL. */
int coil_cache_put(struct coil_cache *c, const void *key, size_t klen, const void *val, size_t vlen,
                   uint64_t stamp);
/* coil_cache_put, then done(err, ud) once the value is stored: before returning for a local
 * cache, when Redis has answered for one on Redis (so a read anywhere after done finds it).
 * Same returns as coil_cache_put (done runs only after 0); done and owner as for
 * coil_cache_invalidate. */
int coil_cache_store(struct coil_req *owner, struct coil_cache *c, const void *key, size_t klen,
                     const void *val, size_t vlen, uint64_t stamp, void (*done)(int err, void *ud),
                     void *ud);
/*
 * Drops key on every worker (a cache on Redis: DEL, done after Redis' answer): here at once, on
 * the others through a job call each. done(err, ud)
 * (may be NULL) runs on this worker once every worker has dropped it, so an answer sent from
 * done is never contradicted by a stale read elsewhere; with one worker it runs before
 * coil_cache_invalidate returns. err is 0, or the error of a worker that could not be reached
 * (-EAGAIN: its channel was full; it serves the old value until the entry expires). With an
 * owner request (deferred), done is dropped if the request ends first. Returns 0 (done will
 * run), -EINVAL, -ENOMEM.
 */
int coil_cache_invalidate(struct coil_req *owner, struct coil_cache *c, const void *key,
                          size_t klen, void (*done)(int err, void *ud), void *ud);

/* ---- workers, memory, background jobs -------------------------------------------------- */

unsigned coil_worker_id(void);    /* the calling worker's index, 0..count-1 */
unsigned coil_worker_count(void); /* number of workers */
bool coil_draining(void);         /* true once graceful shutdown has begun */

/* The calling worker's own heap (its jemalloc arena). Free on the same worker. */
void *coil_malloc(size_t size);
void *coil_realloc(void *p, size_t size);
void coil_free(void *p);

/*
 * A background job. payload is the job's own copy, valid during the call; worker is the
 * worker running it. Jobs run between batches of requests, never inside a handler.
 */
typedef void (*coil_job_fn)(void *payload, size_t len, unsigned worker);

/*
 * Queues fn with a copy of payload on worker target (which may be the caller). Callable only
 * from a worker thread (handlers and jobs). Returns -EAGAIN when that channel is full (nothing is
 * queued), -EINVAL for a bad target, -ENOMEM, -ESHUTDOWN once the worker has stopped.
 * Jobs from one worker to another run exactly once, in the order posted.
 */
int coil_job_post(unsigned target, coil_job_fn fn, const void *payload, size_t len);
/*
 * Posts to every worker but the caller. Returns the number of workers that refused (0 when all
 * accepted), or a negative errno for an error before any was tried.
 */
int coil_job_broadcast(coil_job_fn fn, const void *payload, size_t len);

/*
 * A job with a reply: fn runs on worker target with a copy of payload and may answer once with
 * coil_reply (copied); on_reply(err, data, len, ud) then runs back on the calling worker: err 0
 * with the reply, -ENODATA if fn did not reply, -ENOMEM if the reply could not be made. With an
 * owner request, a reply that comes back after the request is finished or aborted is dropped
 * (on_reply does not run), so ud may point into coil_req_alloc memory. Replies are never lost
 * to a full channel: they wait on the replying worker until there is room. Same errors as
 * coil_job_post (and -EINVAL for an owner that has not deferred); on an error nothing was
 * queued and on_reply will not run.
 */
struct coil_reply;
typedef void (*coil_call_fn)(void *payload, size_t len, struct coil_reply *reply);
typedef void (*coil_reply_fn)(int err, const void *data, size_t len, void *ud);
int coil_job_call(struct coil_req *owner, unsigned target, coil_call_fn fn, const void *payload,
                  size_t len, coil_reply_fn on_reply, void *ud);
int coil_reply(struct coil_reply *reply, const void *data, size_t len); /* -EALREADY twice */

/* ---- middleware ------------------------------------------------------------------------- */

/*
 * A middleware wraps every request of the app (coil_app_use) or of one route (coil_route_use)
 * with up to three steps, each optional:
 *
 *   before(req, res, ud)  runs ahead of the handler. Return COIL_MW_NEXT (0) to pass the
 *                         request on, or COIL_MW_DONE having answered it in res (a 401, a 429,
 *                         a preflight's 204): the later before steps and the handler do not run.
 *                         A negative value answers 500 (503 for -ENOMEM). A before step may
 *                         defer like a handler (coil_res_defer, then COIL_MW_DONE) and finish
 *                         the response itself later. The app's before steps run for every
 *                         request, those a route matched or not (404, 405), so a CORS preflight
 *                         to a path that has no OPTIONS route still reaches them; a route's own
 *                         run after the app's.
 *   after(req, res, ud)   sees the final response just before its head is written: the
 *                         handler's, an early answer, or one the engine made itself (400, 404,
 *                         405, 408, 413, 431, 500, 503, 504). It may read and amend status,
 *                         headers and a whole body (coil_res_header_get, coil_res_header_remove,
 *                         coil_res_body_get, coil_res_body), or put a filter on a streamed body
 *                         (coil_res_filter). For a streamed response it runs at coil_res_stream.
 *   done(req, d, ud)      runs once the response is complete or cut short, with what happened
 *                         (struct coil_done): for access logs and metrics. The response is gone;
 *                         req is still readable.
 *
 * Order: before steps run in registration order (the app's, then the route's), after and done
 * steps in the reverse order, so the first middleware registered is the outermost: it sees the
 * request first and the response last, as with chi's or net/http's wrappers. Every after and
 * done step runs for every response, whatever answered it. When the engine answers a request it
 * could not parse (400, 408, 413, 431), req has no method, path or headers (empty slices) and
 * no route. A step must not block; it runs on the request's worker.
 *
 * coil_app_use and coil_route_use copy mw and must be called before coil_app_run; a route's
 * middleware is added after coil_route for the same method and pattern (-ENOENT otherwise).
 */
enum { COIL_MW_NEXT = 0, COIL_MW_DONE = 1 };
struct coil_done {
    int status;            /* sent, or 0 if nothing was (the client went away first) */
    struct coil_str route; /* the matched route's pattern; empty if none */
    uint64_t start_ns;     /* CLOCK_MONOTONIC when the request's head was taken in */
    uint64_t duration_ns;  /* from then until its last byte was queued to the client */
    uint64_t bytes_in;     /* request head and body as received */
    uint64_t bytes_out;    /* response head and body as queued (after any filter) */
    bool complete;         /* a whole response was queued (an engine 504 included); false: cut
                            * short (the client left first, a stream cut, the connection
                            * failed) */
};
struct coil_mw {
    const char *name; /* for the log; not copied (a literal) */
    int (*before)(struct coil_req *req, struct coil_res *res, void *ud);
    void (*after)(struct coil_req *req, struct coil_res *res, void *ud);
    void (*done)(struct coil_req *req, const struct coil_done *d, void *ud);
    void *ud;
};
int coil_app_use(struct coil_app *app, const struct coil_mw *mw);
int coil_route_use(struct coil_app *app, const char *method, const char *pattern,
                   const struct coil_mw *mw);

/* The response as built so far, for after steps (and handlers). */
int coil_res_status_get(const struct coil_res *res); /* 200 when not set */
struct coil_str coil_res_header_get(const struct coil_res *res, const char *name); /* first */
/* The i-th header set so far, in order (-ERANGE past the end): for fields set more than once. */
int coil_res_header_at(const struct coil_res *res, size_t i, struct coil_str *name,
                       struct coil_str *value);
int coil_res_header_remove(struct coil_res *res, const char *name); /* how many were removed */
struct coil_str coil_res_body_get(const struct coil_res *res); /* a whole body; empty if streamed */
bool coil_res_streamed(const struct coil_res *res); /* the body goes with coil_res_stream */

/*
 * A filter on a streamed body, set from an after step (one per response; -EBUSY for a second,
 * -EINVAL on a whole body): fn gets each piece the handler writes, then one last call with
 * last true (and maybe len 0) at coil_res_finish, and passes on what it makes with
 * coil_res_emit (only from inside fn). Setting a filter drops a declared length (the body goes
 * chunked on HTTP/1.1, close-delimited on 1.0). fn returns 0, or a negative errno, which cuts
 * the response short (the connection is closed). A HEAD response's filter is not called.
 */
typedef int (*coil_filter_fn)(struct coil_res *res, const void *data, size_t len, bool last,
                              void *ud);
int coil_res_filter(struct coil_res *res, coil_filter_fn fn, void *ud);
int coil_res_emit(struct coil_res *res, const void *data, size_t len);

/*
 * Values a middleware hands to later steps and to the handler (a JWT's claims, the key a rate
 * limit counted under), by a key only it knows (the address of a static variable). They live
 * as long as the request. coil_req_set: 0 or -ENOMEM; coil_req_get: the value or NULL.
 */
int coil_req_set(struct coil_req *req, const void *key, void *value);
void *coil_req_get(const struct coil_req *req, const void *key);

/*
 * The request's ID: the client's X-Request-ID when it is well-formed (1 to 128 characters of
 * [A-Za-z0-9._:-]), else one generated here, unique across workers and restarts (a random
 * process prefix, the worker, a counter). Made on first call, then the same; it lives as long
 * as the request. The request-ID middleware (coil_mw_request_id in coil_mw.h; --request-id,
 * on by default) returns it in an X-Request-ID response header.
 */
struct coil_str coil_req_id(struct coil_req *req);

/*
 * W3C trace context (traceparent, tracestate): the incoming trace when its traceparent is
 * valid (version 00, non-zero ids), else a new trace (random trace id, sampled flag clear);
 * either way a new span id for this request (the parent of every upstream call it makes:
 * coil_fetch sends traceparent with it when it has the request as owner, and the proxy replaces
 * the client's). Lowercase hex, NUL-terminated. Made on first call.
 */
struct coil_trace {
    char trace_id[33];
    char span_id[17];           /* this request's */
    char parent_id[17];         /* the caller's span; "" when the trace began here */
    uint8_t flags;              /* trace-flags (bit 0: sampled) */
    struct coil_str tracestate; /* passed on as received (empty if none or invalid) */
};
const struct coil_trace *coil_req_trace(struct coil_req *req);

/* The client's address as text ("192.0.2.7", "2001:db8::1"; empty if unknown). */
struct coil_str coil_req_peer(struct coil_req *req);

/*
 * Continues a request whose before step deferred (coil_res_defer, then COIL_MW_DONE) to look
 * something up first (a rate limit kept on another worker, a token checked by a service): the
 * remaining before steps run, then the handler, exactly as if that step had returned
 * COIL_MW_NEXT. The handler may answer at once or defer (coil_res_defer then hands back the same
 * handle). Call it on the request's worker, from a callback, not from the step itself, once per
 * wait: the request may wait again in a later step, and a second call would then end that
 * step's wait instead. 0, or -EINVAL if req is not a request waiting in a before step.
 */
int coil_mw_next(struct coil_req *req);
/* ---- statistics ------------------------------------------------------------------------- */

struct coil_stats {
    uint64_t requests;    /* requests answered */
    uint64_t connections; /* connections accepted */
    uint64_t open;        /* client connections open now (upstream ones are not counted) */
    uint64_t heap_allocs; /* allocations from the workers' jemalloc arenas */
    uint64_t jobs_run;    /* background jobs run */
    uint64_t rejected;    /* requests rejected with 4xx/5xx by the engine */
    uint64_t deferred;    /* responses deferred by handlers */
    uint64_t waiting;     /* deferred responses not yet finished, now */
    uint64_t aborted;     /* deferred responses aborted (client gone, timeout, drain) */
};
/* Sums the counters of every worker (each read is relaxed; totals are approximate in flight). */
void coil_stats_get(struct coil_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* COIL_H */
