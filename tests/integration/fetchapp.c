/* SPDX-License-Identifier: MIT */
/*
 * fetchapp: a small user program that calls an upstream from its handlers (coil_fetch), for the
 * integration tests of the HTTP/1.1 client (test_fetch.py) and of coil_route_proxy
 * (test_proxy.py). It uses coil.h only.
 *
 * Its own flags are taken out of argv in main(), before coil_app_create sees the rest, because
 * coil_upstream needs every knob at once and must be called before coil_app_run: they may come
 * anywhere on the command line, each as "--flag VALUE" (not "--flag=VALUE"), and are not read
 * from the environment nor listed by --help. A bad value prints a message and exits 2.
 *   --up URL               the upstream (coil_upstream) the /fetch routes call; without it they
 *                          answer 500
 *   --up-max-conns N       coil_upstream_opts.max_conns        (0: the engine's default)
 *   --up-queue N           .max_queue
 *   --up-connect-ms N      .connect_timeout_ms
 *   --up-head-ms N         .head_timeout_ms
 *   --up-idle-ms N         .idle_timeout_ms
 *   --up-total-ms N        .total_timeout_ms
 *   --up-keepalive-ms N    .keepalive_ms
 *   --up-fail-threshold N  .fail_threshold
 *   --up-down-ms N         .down_ms
 *   --route-proxy PATTERN=URL  coil_route_proxy(app, PATTERN, URL), repeatable
 * Every other argument (--workers, --handler-timeout, --proxy, ...) is the engine's.
 *
 * Routes (query parameters are percent-decoded; every fetch has the request as its owner):
 *   GET /fetch?method=M&target=T&body=B&hdr=NAME:VALUE&keep=N
 *        defers, sends M (default GET) T (default empty: the upstream's base) with body B (none
 *        if absent) and the one extra header hdr, and answers when the fetch ends with JSON:
 *          {"status": upstream status or 0, "error": null or the errno name ("ECONNREFUSED",
 *           "ETIMEDOUT", "ECONNRESET", "EPROTO", ...), "started": ERROR came after HEAD,
 *           "length": HEAD's length (-1: none), "no_body": HEAD's no_body,
 *           "headers": [[name, value], ...] as received, "body": the first keep bytes of the
 *           body (default 64 KiB, at most 1 MiB) as a string, "len": body bytes in all,
 *           "crc32": zlib's CRC-32 of the whole body, "pieces": BODY events taken,
 *           "pauses": COIL_FETCH_PAUSE returns, "events": one letter per event in order
 *           (H, B, D, E; a run of BODY events is one B; at most 200, then "+")}
 *        200 after DONE, 502 after ERROR (whatever the error). When coil_fetch itself fails:
 *        503 for -EBUSY, 502 for -EHOSTUNREACH, 500 otherwise, with the body
 *        {"sync": errno name}.
 *   GET /fetch-slow?...  the same, but every BODY piece is first refused with COIL_FETCH_PAUSE
 *        and taken when the engine reports it again after coil_fetch_resume, which a 5 ms
 *        timer owned by the request calls. The piece reported again must start with the bytes
 *        of the paused one (a contract check).
 *   GET /fetch-cancel?target=T&at=now|head|body&wait=MS
 *        cancels the fetch: "now" with coil_fetch_cancel right after coil_fetch (a second
 *        cancel and a resume must then say -ENOENT), "head" by returning -1 from the HEAD event,
 *        "body" with coil_fetch_cancel from the first BODY event. It then answers, from a timer
 *        MS later (default 50), {"at": ..., "cancel": rc (-1 for "head"), "again": what
 *        coil_fetch_cancel says then, "resume": what coil_fetch_resume says then, "events":
 *        ...}; both must be -ENOENT. Any event after the cancel counts into /stats late.
 *   GET /fetch-gen?target=T&method=M&len=N&declared=D  like /fetch, with a request body
 *        streamed (stream_body): N bytes of the pattern i % 251 written with coil_fetch_write in
 *        64 KiB pieces (on -EAGAIN it waits for the WRITABLE event), then coil_fetch_write_end.
 *        stream_length is D (default N; "chunked": -1). The JSON adds "written" (bytes
 *        coil_fetch_write took), "eagain", "write_rc" (the errno name of the first other
 *        failure, or "") and "end_rc" (coil_fetch_write_end's errno name, "" for 0, or
 *        "not called"). When coil_fetch_write_end fails, the fetch is cancelled and the answer
 *        is a 502 at once with "error" set to that failure and the event letter W.
 *   GET /fetch-hang?target=T  defers (on_abort counts into /stats aborts) and starts the fetch,
 *        then never answers: the request ends by --handler-timeout (504) or the client leaving,
 *        and the fetch must be cancelled with it.
 *   GET /pipe?target=T&method=M  a small proxy on the public API: streams the upstream's
 *        response to the client (status, Content-Type, Content-Length if the upstream gave
 *        one, else chunked) at the client's pace: when coil_res_write says -EAGAIN the piece is
 *        refused with COIL_FETCH_PAUSE and on_writable resumes the fetch. ERROR before the head
 *        is coil_res_fail(502, or 504 for -ETIMEDOUT); after it, coil_res_fail closes the
 *        connection.
 *   GET /stats  {"requests", "connections", "open", "deferred", "waiting", "aborted" (the
 *        engine's), "fetches" (coil_fetch calls that returned 0), "sync_fail", "aborts"
 *        (/fetch-hang on_abort), "late" (events after a cancel or after DONE/ERROR), "pauses",
 *        "writable" (/pipe on_writable calls), "errors" (contract checks that failed),
 *        "first_error", "workers"}
 * On exit main prints "fetchapp: exit status=S errors=E late=L" to stderr.
 */
#include <coil.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- options --------------------------------------------------------------------------------- */

static struct coil_upstream *up;
static struct coil_upstream_opts up_opts;
static const char *up_url;

struct num_flag {
    const char *name;
    uint32_t *field;
};
static const struct num_flag num_flags[] = {
    {"--up-max-conns", &up_opts.max_conns},
    {"--up-queue", &up_opts.max_queue},
    {"--up-connect-ms", &up_opts.connect_timeout_ms},
    {"--up-head-ms", &up_opts.head_timeout_ms},
    {"--up-idle-ms", &up_opts.idle_timeout_ms},
    {"--up-total-ms", &up_opts.total_timeout_ms},
    {"--up-keepalive-ms", &up_opts.keepalive_ms},
    {"--up-fail-threshold", &up_opts.fail_threshold},
    {"--up-down-ms", &up_opts.down_ms},
};
#define NUM_FLAGS (sizeof(num_flags) / sizeof(num_flags[0]))

#define MAX_ROUTE_PROXIES 8
static char *route_proxies[MAX_ROUTE_PROXIES];
static size_t nroute_proxies;

static void usage_exit(const char *flag, const char *value, const char *why)
{
    fprintf(stderr, "fetchapp: %s '%s': %s\n", flag, value ? value : "", why);
    exit(2);
}

/* Takes fetchapp's own flags out of argv (in place); returns the new argc. */
static int take_own_flags(int argc, char **argv)
{
    int out = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool own = !strcmp(a, "--up") || !strcmp(a, "--route-proxy");
        for (size_t k = 0; k < NUM_FLAGS && !own; k++)
            own = !strcmp(a, num_flags[k].name);
        if (!own) {
            argv[out++] = argv[i];
            continue;
        }
        if (i + 1 >= argc)
            usage_exit(a, NULL, "needs a value");
        const char *v = argv[++i];
        if (!strcmp(a, "--up")) {
            up_url = v;
        } else if (!strcmp(a, "--route-proxy")) {
            if (!strchr(v, '=') || nroute_proxies == MAX_ROUTE_PROXIES)
                usage_exit(a, v, "expected PATTERN=URL (at most 8)");
            route_proxies[nroute_proxies++] = argv[i];
        } else {
            char *end;
            unsigned long n = strtoul(v, &end, 10);
            if (!*v || *end || n > UINT32_MAX || *v == '-')
                usage_exit(a, v, "expected a number");
            for (size_t k = 0; k < NUM_FLAGS; k++)
                if (!strcmp(a, num_flags[k].name))
                    *num_flags[k].field = (uint32_t)n;
        }
    }
    argv[out] = NULL;
    return out;
}

/* ---- what the tests read back ---------------------------------------------------------------- */

static atomic_ulong fetches;   /* coil_fetch calls that returned 0 */
static atomic_ulong sync_fail; /* coil_fetch calls that failed at once */
static atomic_ulong aborts;    /* /fetch-hang on_abort calls */
static atomic_ulong late;      /* events after a cancel, DONE or ERROR */
static atomic_ulong pauses;    /* COIL_FETCH_PAUSE returns */
static atomic_ulong writable;  /* /pipe on_writable calls */
static atomic_ulong errors;    /* contract checks that failed */
static _Atomic(const char *) first_error;

static void contract_error(const char *what)
{
    const char *none = NULL;
    atomic_fetch_add(&errors, 1);
    atomic_compare_exchange_strong(&first_error, &none, what);
    fprintf(stderr, "fetchapp: contract check failed: %s\n", what);
}
#define STR2(x) #x
#define STR(x) STR2(x)
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            contract_error("line " STR(__LINE__) ": " #cond);                                      \
    } while (0)

static const char *errno_name(int err)
{
    switch (err < 0 ? -err : err) {
    case ECONNREFUSED:
        return "ECONNREFUSED";
    case ETIMEDOUT:
        return "ETIMEDOUT";
    case ECONNRESET:
        return "ECONNRESET";
    case EPROTO:
        return "EPROTO";
    case ENOMEM:
        return "ENOMEM";
    case EBUSY:
        return "EBUSY";
    case EHOSTUNREACH:
        return "EHOSTUNREACH";
    case EINVAL:
        return "EINVAL";
    case ENOENT:
        return "ENOENT";
    case EPIPE:
        return "EPIPE";
    case EMSGSIZE:
        return "EMSGSIZE";
    default:
        return "EOTHER";
    }
}

static bool known_fetch_error(int err)
{
    return err == -ECONNREFUSED || err == -ETIMEDOUT || err == -ECONNRESET || err == -EPROTO ||
           err == -ENOMEM;
}

/* zlib's CRC-32, so Python's zlib.crc32 checks a body without the body being sent back. */
static uint32_t crc32_update(uint32_t crc, const void *data, size_t len)
{
    static uint32_t table[256];
    static atomic_bool ready;
    if (!atomic_load_explicit(&ready, memory_order_acquire)) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t c = i;
            for (int k = 0; k < 8; k++)
                c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
            table[i] = c; /* every thread writes the same values */
        }
        atomic_store_explicit(&ready, true, memory_order_release);
    }
    const unsigned char *p = data;
    crc = ~crc;
    for (size_t i = 0; i < len; i++)
        crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return ~crc;
}

/* ---- one fetch and what it saw --------------------------------------------------------------- */

enum mode { M_PLAIN, M_SLOW, M_CANCEL_NOW, M_CANCEL_HEAD, M_CANCEL_BODY, M_HANG, M_GEN };

#define MAX_EVENTS 200

struct fx {
    struct coil_req *req; /* the owner; valid while the fetch may report */
    struct coil_res *res;
    struct coil_fetch f; /* from coil_fetch's *out */
    enum mode mode;
    bool head, ended;      /* HEAD seen; DONE, ERROR or our cancel seen */
    int status, error;     /* from HEAD; ERROR's error */
    bool started, no_body; /* ERROR's started; HEAD's no_body */
    int64_t length;        /* HEAD's length */
    struct coil_header *headers;
    size_t nheaders;
    char *keep; /* the first cap body bytes */
    size_t kept, cap;
    uint64_t len; /* body bytes taken */
    uint32_t crc;
    unsigned pieces, npauses;
    bool paused; /* the last BODY event was refused with COIL_FETCH_PAUSE */
    size_t paused_len;
    uint32_t paused_crc;
    char events[MAX_EVENTS + 2];
    size_t nevents;
    bool gen;            /* /fetch-gen: the request body is streamed */
    uint64_t gen_total;  /* bytes to write */
    uint64_t gen_off;    /* bytes written */
    unsigned gen_eagain; /* coil_fetch_write -EAGAIN answers */
    int gen_write_rc;    /* the first coil_fetch_write failure other than -EAGAIN, or 0 */
    int gen_end_rc;      /* coil_fetch_write_end's answer (1: not called) */
    const char *at;      /* /fetch-cancel: where */
    int rc_cancel, rc_again, rc_resume;
    unsigned wait_ms;
};

/* Records an event letter; a run of BODY events is one 'B' (pieces counts them). */
static void note(struct fx *x, char c)
{
    if (c == 'B' && x->nevents && x->events[x->nevents - 1] == 'B')
        return;
    if (x->nevents < MAX_EVENTS)
        x->events[x->nevents++] = c;
    else
        x->events[MAX_EVENTS] = '+';
}

static void answer_json(struct fx *x)
{
    struct coil_json *j = coil_res_json(x->res);
    coil_res_status(x->res, x->error ? 502 : 200);
    coil_json_object_open(j);
    coil_json_key(j, "status");
    coil_json_int(j, x->status);
    coil_json_key(j, "error");
    if (x->error)
        coil_json_string(j, errno_name(x->error));
    else
        coil_json_null(j);
    coil_json_key(j, "started");
    coil_json_bool(j, x->started);
    coil_json_key(j, "length");
    coil_json_int(j, x->length);
    coil_json_key(j, "no_body");
    coil_json_bool(j, x->no_body);
    coil_json_key(j, "headers");
    coil_json_array_open(j);
    for (size_t i = 0; i < x->nheaders; i++) {
        coil_json_array_open(j);
        coil_json_stringn(j, x->headers[i].name.ptr, x->headers[i].name.len);
        coil_json_stringn(j, x->headers[i].value.ptr, x->headers[i].value.len);
        coil_json_array_close(j);
    }
    coil_json_array_close(j);
    coil_json_key(j, "body");
    coil_json_stringn(j, x->keep ? x->keep : "", x->kept);
    coil_json_key(j, "len");
    coil_json_uint(j, x->len);
    coil_json_key(j, "crc32");
    coil_json_uint(j, x->crc);
    coil_json_key(j, "pieces");
    coil_json_uint(j, x->pieces);
    coil_json_key(j, "pauses");
    coil_json_uint(j, x->npauses);
    coil_json_key(j, "events");
    coil_json_string(j, x->events);
    if (x->gen) {
        coil_json_key(j, "written");
        coil_json_uint(j, x->gen_off);
        coil_json_key(j, "eagain");
        coil_json_uint(j, x->gen_eagain);
        coil_json_key(j, "write_rc");
        coil_json_string(j, x->gen_write_rc ? errno_name(x->gen_write_rc) : "");
        coil_json_key(j, "end_rc");
        coil_json_string(j, x->gen_end_rc == 1 ? "not called"
                            : x->gen_end_rc    ? errno_name(x->gen_end_rc)
                                               : "");
    }
    coil_json_object_close(j);
    if (coil_res_finish(x->res) < 0)
        contract_error("coil_res_finish refused a deferred response");
}

/* Copies HEAD's headers into the request arena (the event's pointers die with the call). */
static void keep_headers(struct fx *x, const struct coil_fetch_ev *ev)
{
    size_t bytes = 0;
    for (size_t i = 0; i < ev->nheaders; i++)
        bytes += ev->headers[i].name.len + ev->headers[i].value.len;
    x->headers = coil_req_alloc(x->req, ev->nheaders * sizeof(*x->headers) + 1);
    char *p = coil_req_alloc(x->req, bytes + 1);
    if (!x->headers || !p) {
        x->nheaders = 0;
        return;
    }
    for (size_t i = 0; i < ev->nheaders; i++) {
        const struct coil_header *h = &ev->headers[i];
        CHECK(h->name.len > 0);
        memcpy(p, h->name.ptr, h->name.len);
        x->headers[i].name = (struct coil_str){p, h->name.len};
        p += h->name.len;
        memcpy(p, h->value.ptr, h->value.len);
        x->headers[i].value = (struct coil_str){p, h->value.len};
        p += h->value.len;
    }
    x->nheaders = ev->nheaders;
}

static void take(struct fx *x, const char *data, size_t len)
{
    if (x->kept < x->cap) {
        size_t n = len < x->cap - x->kept ? len : x->cap - x->kept;
        memcpy(x->keep + x->kept, data, n);
        x->kept += n;
    }
    x->len += len;
    x->crc = crc32_update(x->crc, data, len);
    x->pieces++;
}

static void on_resume_timer(void *ud)
{
    struct fx *x = ud;
    int rc = coil_fetch_resume(x->f);
    if (!x->ended)
        CHECK(rc == 0);
}

static void answer_cancel(void *ud)
{
    struct fx *x = ud;
    x->rc_again = coil_fetch_cancel(x->f);
    x->rc_resume = coil_fetch_resume(x->f);
    struct coil_json *j = coil_res_json(x->res);
    coil_json_object_open(j);
    coil_json_key(j, "at");
    coil_json_string(j, x->at);
    coil_json_key(j, "cancel");
    coil_json_int(j, x->rc_cancel);
    coil_json_key(j, "again");
    coil_json_int(j, x->rc_again);
    coil_json_key(j, "resume");
    coil_json_int(j, x->rc_resume);
    coil_json_key(j, "events");
    coil_json_string(j, x->events);
    coil_json_object_close(j);
    if (coil_res_finish(x->res) < 0)
        contract_error("coil_res_finish refused a deferred response");
}

/* After a cancel the answer comes from a timer a little later, which then tries the handle
 * again (it must be dead by then: -ENOENT), so that an event the engine should not have sent
 * still has the time to show (as "late"). */
static void cancelled(struct fx *x)
{
    x->ended = true;
    if (!coil_timer_after(x->req, x->wait_ms, answer_cancel, x).id)
        contract_error("coil_timer_after failed");
}

static int on_head(struct fx *x, const struct coil_fetch_ev *ev)
{
    CHECK(!x->head);
    CHECK(ev->status >= 200 && ev->status <= 599);
    CHECK(ev->length >= -1);
    x->head = true;
    x->status = ev->status;
    x->length = ev->length;
    x->no_body = ev->no_body;
    keep_headers(x, ev);
    note(x, 'H');
    if (x->mode == M_CANCEL_HEAD) {
        x->rc_cancel = -1; /* "cancelled by returning -1" */
        cancelled(x);
        return -1;
    }
    return 0;
}

static int on_body(struct fx *x, const struct coil_fetch_ev *ev)
{
    CHECK(x->head);
    CHECK(ev->status == x->status);
    CHECK(ev->len > 0 && ev->data);
    CHECK(!x->no_body);
    if (x->mode == M_SLOW) {
        if (!x->paused) {
            x->paused = true;
            x->paused_len = ev->len;
            x->paused_crc = crc32_update(0, ev->data, ev->len);
            x->npauses++;
            atomic_fetch_add(&pauses, 1);
            if (!coil_timer_after(x->req, 5, on_resume_timer, x).id)
                contract_error("coil_timer_after failed");
            return COIL_FETCH_PAUSE;
        }
        x->paused = false;
        /* the same piece again (it may have grown, never shrunk or changed) */
        CHECK(ev->len >= x->paused_len &&
              crc32_update(0, ev->data, x->paused_len) == x->paused_crc);
    }
    take(x, ev->data, ev->len);
    note(x, 'B');
    if (x->mode == M_CANCEL_BODY) {
        x->rc_cancel = coil_fetch_cancel(ev->fetch);
        cancelled(x);
    }
    return 0;
}

/* The pattern /fetch-gen writes: byte i of the body is i % 251. */
#define GEN_PIECE (64 * 1024)
static unsigned char gen_pattern[GEN_PIECE + 251];

/* Writes /fetch-gen's body until it is all written, -EAGAIN (a WRITABLE event calls again) or
 * a failure; then ends it. */
static void gen_pump(struct fx *x)
{
    while (x->gen_off < x->gen_total) {
        uint64_t left = x->gen_total - x->gen_off;
        size_t n = left < GEN_PIECE ? (size_t)left : GEN_PIECE;
        int rc = coil_fetch_write(x->f, gen_pattern + x->gen_off % 251, n);
        if (rc == -EAGAIN) {
            x->gen_eagain++;
            return;
        }
        if (rc < 0) {
            x->gen_write_rc = rc;
            break;
        }
        CHECK(rc == 0);
        x->gen_off += n;
    }
    if (x->gen_end_rc == 1)
        x->gen_end_rc = coil_fetch_write_end(x->f);
    if (x->gen_end_rc < 0 && !x->ended) {
        /* the body could not be completed: the fetch has failed (coil.h does not say whether
         * an ERROR event would follow, so cancel it, which must then be harmless, and answer) */
        int rc = coil_fetch_cancel(x->f);
        CHECK(rc == 0 || rc == -ENOENT);
        x->ended = true;
        x->error = x->gen_end_rc;
        note(x, 'W');
        answer_json(x);
    }
}

static int on_event(const struct coil_fetch_ev *ev, void *ud)
{
    struct fx *x = ud;
    if (x->ended) {
        atomic_fetch_add(&late, 1);
        contract_error("an event after DONE, ERROR or a cancel");
        return -1;
    }
    if (x->f.id == 0)
        x->f = ev->fetch; /* reported before coil_fetch returned: allowed, but note the handle */
    CHECK(ev->fetch.id == x->f.id);
    switch (ev->kind) {
    case COIL_FETCH_HEAD:
        return on_head(x, ev);
    case COIL_FETCH_BODY:
        return on_body(x, ev);
    case COIL_FETCH_DONE:
        CHECK(x->head);
        CHECK(ev->status == x->status);
        CHECK(!x->paused);
        if (x->length >= 0 && !x->no_body)
            CHECK(x->len == (uint64_t)x->length);
        x->ended = true;
        note(x, 'D');
        if (x->mode != M_HANG && x->mode != M_CANCEL_NOW)
            answer_json(x);
        return 0;
    case COIL_FETCH_WRITABLE:
        CHECK(x->gen); /* only a streamed request body is told it may write again */
        if (x->gen && x->gen_end_rc == 1)
            gen_pump(x);
        return 0;
    case COIL_FETCH_ERROR:
        CHECK(ev->error < 0 && known_fetch_error(ev->error));
        CHECK(ev->started == x->head);
        x->ended = true;
        x->error = ev->error ? ev->error : -EINVAL;
        x->started = ev->started;
        note(x, 'E');
        if (x->mode != M_HANG && x->mode != M_CANCEL_NOW)
            answer_json(x);
        return 0;
    }
    contract_error("an event of unknown kind");
    return -1;
}

/* ---- routes ---------------------------------------------------------------------------------- */

static int json_error(struct coil_res *res, int status, const char *key, const char *value)
{
    struct coil_json *j = coil_res_json(res);
    coil_res_status(res, status);
    coil_json_object_open(j);
    coil_json_key(j, key);
    coil_json_string(j, value);
    coil_json_object_close(j);
    return 0;
}

/* A query parameter as a NUL-terminated string in the request arena; dflt when absent. */
static const char *param(struct coil_req *req, const char *name, const char *dflt, size_t *len)
{
    struct coil_str v;
    if (coil_req_query_param(req, name, &v) != 1) {
        *len = dflt ? strlen(dflt) : 0;
        return dflt;
    }
    char *s = coil_req_alloc(req, v.len + 1);
    if (!s)
        return NULL;
    memcpy(s, v.ptr, v.len);
    s[v.len] = 0;
    *len = v.len;
    return s;
}

static unsigned long param_num(struct coil_req *req, const char *name, unsigned long dflt,
                               unsigned long max)
{
    size_t len;
    const char *s = param(req, name, NULL, &len);
    if (!s)
        return dflt;
    unsigned long v = strtoul(s, NULL, 10);
    return v > max ? max : v;
}

static void hang_abort(void *ud)
{
    struct fx *x = ud;
    (void)x;
    atomic_fetch_add(&aborts, 1);
}

/* Defers, builds the fetch from the query and starts it. */
static int start(struct coil_req *req, struct coil_res *res, enum mode mode)
{
    if (!up)
        return coil_res_text(res, 500, "text/plain", "fetchapp: no --up\n");
    struct fx *x = coil_req_alloc(req, sizeof(*x));
    if (!x)
        return -ENOMEM;
    memset(x, 0, sizeof(*x));
    x->mode = mode;
    x->length = -1;
    if (!coil_res_defer(res, mode == M_HANG ? hang_abort : NULL, x).id)
        return -ENOMEM;
    x->req = req; /* read the query again after deferring: its own copy from here on */
    x->res = res;
    size_t mlen, tlen, blen, hlen;
    const char *method = param(req, "method", "GET", &mlen);
    const char *target = param(req, "target", "", &tlen);
    const char *body = param(req, "body", NULL, &blen);
    const char *hdr = param(req, "hdr", NULL, &hlen);
    x->cap = param_num(req, "keep", 64 * 1024, 1 << 20);
    x->keep = coil_req_alloc(req, x->cap + 1);
    x->wait_ms = (unsigned)param_num(req, "wait", 50, 10000);
    x->at = param(req, "at", "now", &mlen);
    if (!method || !target || !x->keep || !x->at)
        return -ENOMEM;

    struct coil_header h;
    struct coil_fetch_req r = {.method = method, .target = {target, tlen}};
    if (hdr) {
        const char *colon = strchr(hdr, ':');
        if (!colon) {
            json_error(res, 400, "bad", "hdr: NAME:VALUE");
            return coil_res_finish(res) < 0 ? -EIO : 0;
        }
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        h = (struct coil_header){{hdr, (size_t)(colon - hdr)}, {v, strlen(v)}};
        r.headers = &h;
        r.nheaders = 1;
    }
    if (body) {
        r.body = body;
        r.body_len = blen;
    }
    if (mode == M_GEN) {
        x->gen = true;
        x->gen_end_rc = 1;
        x->gen_total = param_num(req, "len", 0, 1ul << 30);
        size_t dlen;
        const char *declared = param(req, "declared", NULL, &dlen);
        r.stream_body = true;
        r.stream_length = !declared                      ? (int64_t)x->gen_total
                          : !strcmp(declared, "chunked") ? -1
                                                         : (int64_t)strtoull(declared, NULL, 10);
    }
    int rc = coil_fetch(req, up, &r, on_event, x, &x->f);
    if (rc < 0) {
        atomic_fetch_add(&sync_fail, 1);
        /* a failed defer-and-fetch still answers: the response is deferred, so finish it */
        json_error(res,
                   rc == -EBUSY          ? 503
                   : rc == -EHOSTUNREACH ? 502
                                         : 500,
                   "sync", errno_name(rc));
        return coil_res_finish(res) < 0 ? -EIO : 0;
    }
    atomic_fetch_add(&fetches, 1);
    CHECK(x->f.id != 0);
    if (mode == M_CANCEL_NOW) {
        x->rc_cancel = coil_fetch_cancel(x->f);
        cancelled(x);
    }
    if (mode == M_GEN && x->gen_end_rc == 1 && !x->ended)
        gen_pump(x);
    return 0;
}

static int fetch_plain(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    return start(req, res, M_PLAIN);
}

static int fetch_slow(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    return start(req, res, M_SLOW);
}

static int fetch_gen(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    return start(req, res, M_GEN);
}

static int fetch_hang(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    return start(req, res, M_HANG);
}

static int fetch_cancel(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    struct coil_str at;
    enum mode mode = M_CANCEL_NOW;
    if (coil_req_query_param(req, "at", &at) == 1) {
        if (at.len == 4 && !memcmp(at.ptr, "head", 4))
            mode = M_CANCEL_HEAD;
        else if (at.len == 4 && !memcmp(at.ptr, "body", 4))
            mode = M_CANCEL_BODY;
        else if (!(at.len == 3 && !memcmp(at.ptr, "now", 3)))
            return coil_res_text(res, 400, "text/plain", "at: now, head or body\n");
    }
    return start(req, res, mode);
}

/* ---- /pipe: a proxy on the public API ---------------------------------------------------------
 */

struct pipe {
    struct coil_res *res;
    struct coil_fetch f;
    bool head, paused, ended;
};

static void pipe_writable(void *ud)
{
    struct pipe *p = ud;
    atomic_fetch_add(&writable, 1);
    if (p->paused && !p->ended) {
        p->paused = false;
        CHECK(coil_fetch_resume(p->f) == 0);
    }
}

static int pipe_head(struct pipe *p, const struct coil_fetch_ev *ev)
{
    struct coil_res *res = p->res;
    p->head = true;
    coil_res_status(res, ev->status);
    for (size_t i = 0; i < ev->nheaders; i++) {
        const struct coil_header *h = &ev->headers[i];
        if (h->name.len == 12 && !strncasecmp(h->name.ptr, "content-type", 12))
            coil_res_headern(res, "Content-Type", 12, h->value.ptr, h->value.len);
    }
    if (ev->length >= 0 && !ev->no_body && coil_res_length(res, (uint64_t)ev->length) < 0)
        contract_error("/pipe: coil_res_length refused the upstream's length");
    if (coil_res_stream(res) < 0) {
        contract_error("/pipe: coil_res_stream failed");
        p->ended = true;
        coil_res_fail(res, 502);
        return -1;
    }
    return 0;
}

static int pipe_event(const struct coil_fetch_ev *ev, void *ud)
{
    struct pipe *p = ud;
    if (p->ended) {
        atomic_fetch_add(&late, 1);
        contract_error("/pipe: an event after DONE or ERROR");
        return -1;
    }
    if (p->f.id == 0)
        p->f = ev->fetch;
    switch (ev->kind) {
    case COIL_FETCH_HEAD:
        return pipe_head(p, ev);
    case COIL_FETCH_BODY: {
        int rc = coil_res_write(p->res, ev->data, ev->len);
        if (rc == -EAGAIN) {
            if (coil_res_on_writable(p->res, pipe_writable, p) < 0) {
                contract_error("/pipe: coil_res_on_writable failed");
                return -1;
            }
            p->paused = true;
            atomic_fetch_add(&pauses, 1);
            return COIL_FETCH_PAUSE; /* on_writable resumes: the same piece comes again */
        }
        if (rc == -EPIPE) {
            p->ended = true; /* the request was aborted under the call: res is gone */
            return -1;
        }
        CHECK(rc == 0);
        return rc < 0 ? -1 : 0;
    }
    case COIL_FETCH_DONE:
        p->ended = true;
        if (coil_res_finish(p->res) < 0)
            contract_error("/pipe: coil_res_finish failed");
        return 0;
    case COIL_FETCH_WRITABLE:
        contract_error("/pipe: WRITABLE without a streamed request body");
        return 0;
    case COIL_FETCH_ERROR:
        CHECK(ev->started == p->head);
        p->ended = true;
        if (coil_res_fail(p->res, ev->error == -ETIMEDOUT ? 504 : 502) < 0)
            contract_error("/pipe: coil_res_fail refused");
        return 0;
    }
    return -1;
}

static int pipe_route(struct coil_req *req, struct coil_res *res, void *ud)
{
    (void)ud;
    if (!up)
        return coil_res_text(res, 500, "text/plain", "fetchapp: no --up\n");
    struct pipe *p = coil_req_alloc(req, sizeof(*p));
    if (!p)
        return -ENOMEM;
    memset(p, 0, sizeof(*p));
    p->res = res;
    if (!coil_res_defer(res, NULL, NULL).id)
        return -ENOMEM;
    size_t mlen, tlen;
    const char *method = param(req, "method", "GET", &mlen);
    const char *target = param(req, "target", "", &tlen);
    if (!method || !target)
        return -ENOMEM;
    struct coil_fetch_req r = {.method = method, .target = {target, tlen}};
    int rc = coil_fetch(req, up, &r, pipe_event, p, &p->f);
    if (rc < 0) {
        atomic_fetch_add(&sync_fail, 1);
        return coil_res_fail(res, rc == -EBUSY ? 503 : 502) < 0 ? -EIO : 0;
    }
    atomic_fetch_add(&fetches, 1);
    return 0;
}

/* ---- /stats ---------------------------------------------------------------------------------- */

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
    put_uint(j, "connections", s.connections);
    put_uint(j, "open", s.open);
    put_uint(j, "deferred", s.deferred);
    put_uint(j, "waiting", s.waiting);
    put_uint(j, "aborted", s.aborted);
    put_uint(j, "fetches", atomic_load(&fetches));
    put_uint(j, "sync_fail", atomic_load(&sync_fail));
    put_uint(j, "aborts", atomic_load(&aborts));
    put_uint(j, "late", atomic_load(&late));
    put_uint(j, "pauses", atomic_load(&pauses));
    put_uint(j, "writable", atomic_load(&writable));
    put_uint(j, "errors", atomic_load(&errors));
    coil_json_key(j, "first_error");
    const char *fe = atomic_load(&first_error);
    if (fe)
        coil_json_string(j, fe);
    else
        coil_json_null(j);
    put_uint(j, "workers", coil_worker_count());
    coil_json_object_close(j);
    return 0;
}

int main(int argc, char **argv)
{
    for (size_t i = 0; i < sizeof(gen_pattern); i++)
        gen_pattern[i] = (unsigned char)(i % 251);
    argc = take_own_flags(argc, argv);
    struct coil_app *app = coil_app_create(argc, argv);
    if (up_url) {
        up = coil_upstream(app, up_url, &up_opts);
        if (!up) {
            fprintf(stderr, "fetchapp: coil_upstream refused '%s'\n", up_url);
            return 2;
        }
    }
    for (size_t i = 0; i < nroute_proxies; i++) {
        char *eq = strchr(route_proxies[i], '=');
        *eq = 0;
        int rc = coil_route_proxy(app, route_proxies[i], eq + 1);
        if (rc < 0) {
            fprintf(stderr, "fetchapp: coil_route_proxy('%s', '%s'): %s\n", route_proxies[i],
                    eq + 1, errno_name(rc));
            return 2;
        }
    }
    if (coil_route(app, "GET", "/fetch", fetch_plain, NULL) < 0 ||
        coil_route(app, "GET", "/fetch-slow", fetch_slow, NULL) < 0 ||
        coil_route(app, "GET", "/fetch-cancel", fetch_cancel, NULL) < 0 ||
        coil_route(app, "GET", "/fetch-hang", fetch_hang, NULL) < 0 ||
        coil_route(app, "GET", "/fetch-gen", fetch_gen, NULL) < 0 ||
        coil_route(app, "GET", "/pipe", pipe_route, NULL) < 0 ||
        coil_route(app, "GET", "/stats", stats, NULL) < 0) {
        fprintf(stderr, "fetchapp: set-up failed\n");
        return 1;
    }
    int status = coil_app_run(app);
    fprintf(stderr, "fetchapp: exit status=%d errors=%lu late=%lu\n", status, atomic_load(&errors),
            atomic_load(&late));
    return status;
}
