/* SPDX-License-Identifier: MIT */
/*
 * alog.c: the access log: one line per request, JSON lines (default) or the classic combined
 * format, to a file (--access-log PATH) or stdout (--access-log -).
 *
 * A done step formats the line into the worker's own buffer; at the end of a batch, once 32 KiB
 * wait or the oldest line is 100 ms old, the buffer goes to the file as one io_uring write
 * while lines go on into a second buffer, so a worker never blocks on its log. One write is in
 * flight per worker; if the second buffer fills while the first is still being written (a slow
 * disk, a pipe nobody reads), further lines are dropped and counted (coil_access_log_dropped_total)
 * rather than held or waited for. Workers share the file: a regular file is opened O_APPEND, so
 * each write lands whole; a pipe gets writes of at most PIPE_BUF bytes cut at line ends, which a
 * pipe keeps whole too.
 *
 * SIGHUP reopens the file (log rotation): the main thread opens the new file and bumps a
 * generation; each worker, at its next batch, takes a duplicate of the new descriptor and
 * closes its old one once no write of its own is using it.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

#define BUF_BYTES (128 * 1024)
#define LINE_MAX_BYTES 6144     /* the longest line: target and user agent are cut to fit */
#define FLUSH_BYTES (32 * 1024) /* written once this much waits... */
#define FLUSH_MS 100            /* ...or its oldest line is this old */

struct coil__alogcfg {
    char *path; /* NULL: off; "-": stdout */
    bool combined;
    int fd; /* the current file; workers write through their own duplicates */
    bool pipe;
    _Atomic uint64_t gen; /* bumped by each reopen */
    pthread_mutex_t lock; /* fd and gen, between a reopen and a worker taking its duplicate */
};

struct coil__alog {
    int fd, old_fd; /* old_fd: the file before a reopen, closed once its write completes */
    uint64_t gen;
    bool pipe;
    bool writing; /* a write is in flight: buf[1 - cur] from off */
    unsigned cur; /* the buffer lines go into */
    char *buf[2];
    size_t len[2];
    uint32_t lines[2]; /* lines in each buffer, for the drop count */
    size_t off;        /* bytes of the in-flight buffer written so far */
    size_t chunk;      /* bytes of the write in flight */
    bool failed;       /* a write failed: logged once */
    uint64_t first_ms; /* when the first line of buf[cur] was put there */
    int64_t sec;       /* the second of the cached time text */
    char ts[40];       /* JSON: "2026-12-02T03:04:05" / combined: "02/Dec/2026:03:04:05 +0000" */
    size_t ts_len;
};

/* ---- formatting ------------------------------------------------------------------------- */

static void stamp(struct coil__alog *a, bool combined, long *ms)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    *ms = now.tv_nsec / 1000000;
    if (now.tv_sec == a->sec)
        return;
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    a->ts_len = strftime(a->ts, sizeof(a->ts),
                         combined ? "%d/%b/%Y:%H:%M:%S +0000" : "%Y-%m-%dT%H:%M:%S", &tm);
    a->sec = now.tv_sec;
}

/* Appends s as JSON string content, or as a combined-format field ("-" when empty). */
static char *field(char *p, char *end, struct coil_str s, size_t max, bool json)
{
    if (s.len > max)
        s.len = max;
    if (!json && s.len == 0) {
        *p++ = '-';
        return p;
    }
    if (json)
        return p + coil__json_escape(p, (size_t)(end - p), s.ptr, s.len);
    /* Combined: printable ASCII as is; quotes, backslashes and the rest as \xHH. */
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < s.len && end - p > 4; i++) {
        unsigned char c = (unsigned char)s.ptr[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            *p++ = (char)c;
        } else {
            *p++ = '\\', *p++ = 'x', *p++ = hex[c >> 4], *p++ = hex[c & 15];
        }
    }
    return p;
}

/* The line is built with coil__put and coil__put_u64, not sprintf, which costs more than
 * the rest of it. */
static size_t format_line(struct coil__alog *a, bool combined, struct coil_req *req,
                          const struct coil_done *d, char *out)
{
    char *p = out, *end = out + LINE_MAX_BYTES - 64;
    long ms;
    stamp(a, combined, &ms);
    const struct coil__http_req *h = req->http;
    struct coil_str peer = coil_req_peer(req);
    struct coil_str ua = h->method.len ? coil_req_header(req, "User-Agent") : (struct coil_str){0};
    struct coil_str id = coil_req_id(req);
    uint64_t status = d->status > 0 ? (uint64_t)d->status : 0;
    if (combined) {
        struct coil_str ref =
            h->method.len ? coil_req_header(req, "Referer") : (struct coil_str){0};
        p = field(p, end, peer, 64, false);
        p = COIL_PUT_LIT(p, " - - [");
        p = coil__put(p, a->ts, a->ts_len);
        p = COIL_PUT_LIT(p, "] \"");
        if (h->method.len) {
            p = field(p, end, h->method, 32, false);
            *p++ = ' ';
            p = field(p, end, h->target, 2048, false);
            p = (h->flags & COIL_HTTP_V2) ? COIL_PUT_LIT(p, " HTTP/2.0")
                : h->minor                ? COIL_PUT_LIT(p, " HTTP/1.1")
                                          : COIL_PUT_LIT(p, " HTTP/1.0");
        } else {
            *p++ = '-';
        }
        p = COIL_PUT_LIT(p, "\" ");
        p = coil__put_u64(p, status);
        *p++ = ' ';
        p = coil__put_u64(p, d->bytes_out);
        p = COIL_PUT_LIT(p, " \"");
        p = field(p, end, ref, 1024, false);
        p = COIL_PUT_LIT(p, "\" \"");
        p = field(p, end, ua, 1024, false);
        p = COIL_PUT_LIT(p, "\"\n");
        return (size_t)(p - out);
    }
    const struct coil_trace *t = coil_req_trace(req);
    p = COIL_PUT_LIT(p, "{\"time\":\"");
    p = coil__put(p, a->ts, a->ts_len);
    *p++ = '.';
    *p++ = (char)('0' + ms / 100);
    *p++ = (char)('0' + ms / 10 % 10);
    *p++ = (char)('0' + ms % 10);
    p = COIL_PUT_LIT(p, "Z\",\"peer\":\"");
    p = field(p, end, peer, 64, true);
    p = COIL_PUT_LIT(p, "\",\"method\":\"");
    p = field(p, end, h->method, 32, true);
    p = COIL_PUT_LIT(p, "\",\"target\":\"");
    p = field(p, end, h->target, 2048, true);
    p = COIL_PUT_LIT(p, "\",\"status\":");
    p = coil__put_u64(p, status);
    p = COIL_PUT_LIT(p, ",\"bytes\":");
    p = coil__put_u64(p, d->bytes_out);
    p = COIL_PUT_LIT(p, ",\"bytes_in\":");
    p = coil__put_u64(p, d->bytes_in);
    p = COIL_PUT_LIT(p, ",\"duration_us\":");
    p = coil__put_u64(p, d->duration_ns / 1000);
    p = COIL_PUT_LIT(p, ",\"request_id\":\"");
    p = field(p, end, id, 128, true);
    p = COIL_PUT_LIT(p, "\",\"trace_id\":\"");
    if (t)
        p = coil__put(p, t->trace_id, 32);
    p = COIL_PUT_LIT(p, "\",\"user_agent\":\"");
    p = field(p, end, ua, 1024, true);
    p = COIL_PUT_LIT(p, "\",\"route\":\"");
    p = field(p, end, d->route, 512, true);
    p = d->complete ? COIL_PUT_LIT(p, "\"}\n") : COIL_PUT_LIT(p, "\",\"incomplete\":true}\n");
    return (size_t)(p - out);
}

/* ---- writing ---------------------------------------------------------------------------- */

/* The next write: the in-flight buffer from off, whole for a file, or up to PIPE_BUF bytes cut
 * after a newline for a pipe. */
static void submit(struct coil__worker *w, struct coil__alog *a)
{
    unsigned b = 1 - a->cur;
    size_t left = a->len[b] - a->off;
    size_t n = left;
    if (a->pipe && n > PIPE_BUF) {
        const char *s = a->buf[b] + a->off;
        n = PIPE_BUF;
        while (n > 0 && s[n - 1] != '\n')
            n--;
        if (n == 0)
            n = PIPE_BUF; /* a line longer than PIPE_BUF: written in pieces */
    }
    struct io_uring_sqe *sqe = coil__sqe(w);
    if (!sqe) {
        a->writing = false; /* dropped: the ring is full; counted as lost lines */
        coil__metrics_alog_dropped(w, a->lines[b]);
        a->len[b] = 0;
        a->lines[b] = 0;
        return;
    }
    io_uring_prep_write(sqe, a->fd, a->buf[b] + a->off, (unsigned)n, (uint64_t)-1);
    io_uring_sqe_set_data64(sqe, UD(OP_ALOG, 0, 0));
    a->chunk = n;
    a->writing = true;
}

/* Swaps the buffers and writes the full one. */
static void flush(struct coil__worker *w, struct coil__alog *a)
{
    if (a->writing || a->len[a->cur] == 0)
        return;
    a->cur = 1 - a->cur;
    a->off = 0;
    submit(w, a);
}

static void take_reopen(struct coil__worker *w, struct coil__alog *a)
{
    struct coil__alogcfg *cfg = w->app->alog;
    pthread_mutex_lock(&cfg->lock);
    int fd = dup(cfg->fd);
    a->gen = atomic_load(&cfg->gen);
    a->pipe = cfg->pipe;
    pthread_mutex_unlock(&cfg->lock);
    if (fd < 0)
        return; /* keep writing to the old file */
    if (a->old_fd >= 0)
        close(a->old_fd);
    a->old_fd = a->fd;
    a->fd = fd;
    if (!a->writing) {
        close(a->old_fd);
        a->old_fd = -1;
    }
}

static void on_batch(struct coil__worker *w)
{
    struct coil__alog *a = w->alog;
    if (!a)
        return;
    if (atomic_load_explicit(&w->app->alog->gen, memory_order_relaxed) != a->gen)
        take_reopen(w, a);
    /* Few large writes: each one wakes a kernel worker (a regular file's write is not async
     * in io_uring), which costs more than the bytes. A line waits at most FLUSH_MS, as the
     * loop comes by at least every 100 ms. */
    size_t len = a->len[a->cur];
    if (len >= FLUSH_BYTES || (len && w->now_ms - a->first_ms >= FLUSH_MS))
        flush(w, a);
}

static void on_cqe(struct coil__worker *w, const struct io_uring_cqe *cqe)
{
    struct coil__alog *a = w->alog;
    if (!a || !a->writing)
        return;
    unsigned b = 1 - a->cur;
    if (cqe->res == -EAGAIN || cqe->res == -EINTR) {
        submit(w, a); /* again, the same bytes */
        return;
    }
    if (cqe->res < 0) {
        if (!a->failed)
            coil__log("worker %u: access log write: %s (lines are dropped and counted)", w->id,
                      strerror(-cqe->res));
        a->failed = true;
        coil__metrics_alog_dropped(w, a->lines[b]);
        a->off = a->len[b];
    } else {
        a->off += (size_t)cqe->res;
    }
    if (a->off < a->len[b]) {
        submit(w, a);
        return;
    }
    a->writing = false;
    a->len[b] = 0;
    a->lines[b] = 0;
    if (a->old_fd >= 0) {
        close(a->old_fd);
        a->old_fd = -1;
    }
}

static void alog_done(struct coil_req *req, const struct coil_done *d, void *ud)
{
    struct coil__alogcfg *cfg = ud;
    struct coil__worker *w = req->w;
    struct coil__alog *a = w->alog;
    if (!a)
        return;
    if (a->len[a->cur] + LINE_MAX_BYTES > BUF_BYTES) {
        if (a->writing) {
            coil__metrics_alog_dropped(w, 1); /* the writer is behind: drop, never wait */
            return;
        }
        flush(w, a);
    }
    if (a->len[a->cur] == 0)
        a->first_ms = w->now_ms;
    size_t n = format_line(a, cfg->combined, req, d, a->buf[a->cur] + a->len[a->cur]);
    a->len[a->cur] += n;
    a->lines[a->cur]++;
}

/* ---- the file --------------------------------------------------------------------------- */

static int open_log(struct coil__alogcfg *cfg, bool *pipe)
{
    int fd;
    if (!strcmp(cfg->path, "-"))
        fd = fcntl(STDOUT_FILENO, F_DUPFD_CLOEXEC, 3);
    else
        fd = open(cfg->path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    struct stat st;
    *pipe = fstat(fd, &st) == 0 && !S_ISREG(st.st_mode);
    return fd;
}

static void reopen(void *ud)
{
    struct coil__alogcfg *cfg = ud;
    bool pipe;
    int fd = open_log(cfg, &pipe);
    if (fd < 0) {
        coil__log("SIGHUP: cannot reopen the access log %s: %s (still writing to the old one)",
                  cfg->path, strerror(-fd));
        return;
    }
    pthread_mutex_lock(&cfg->lock);
    int old = cfg->fd;
    cfg->fd = fd;
    cfg->pipe = pipe;
    atomic_fetch_add(&cfg->gen, 1);
    pthread_mutex_unlock(&cfg->lock);
    close(old); /* the workers write through their own duplicates */
    coil__log("SIGHUP: access log reopened: %s", cfg->path);
}

static int path_option(const char *v, void *ud)
{
    struct coil__alogcfg *cfg = ud;
    char *p = strdup(v);
    if (!p || !*v) {
        free(p);
        return -1;
    }
    free(cfg->path);
    cfg->path = p;
    return 0;
}

static int format_option(const char *v, void *ud)
{
    struct coil__alogcfg *cfg = ud;
    if (strcmp(v, "json") && strcmp(v, "combined"))
        return -1;
    cfg->combined = !strcmp(v, "combined");
    return 0;
}

int coil__alog_setup(struct coil_app *app)
{
    struct coil__alogcfg *cfg = calloc(1, sizeof(*cfg));
    if (!cfg)
        return -ENOMEM;
    cfg->fd = -1;
    pthread_mutex_init(&cfg->lock, NULL);
    app->alog = cfg;
    if (coil_app_option(app, "access-log", "COIL_ACCESS_LOG", "PATH",
                        "one line per request to PATH (\"-\": stdout), reopened on SIGHUP [off]",
                        path_option, cfg) < 0 ||
        coil_app_option(app, "access-log-format", "COIL_ACCESS_LOG_FORMAT", "json|combined",
                        "JSON lines, or the classic combined format [json]", format_option,
                        cfg) < 0)
        return -ENOMEM;
    return 0;
}

int coil__alog_install(struct coil_app *app)
{
    struct coil__alogcfg *cfg = app->alog;
    if (!cfg->path)
        return 0;
    int fd = open_log(cfg, &cfg->pipe);
    if (fd < 0) {
        fprintf(stderr, "coil: --access-log %s: %s\n", cfg->path, strerror(-fd));
        return -1;
    }
    cfg->fd = fd;
    struct coil_mw mw = {.name = "access log", .done = alog_done, .ud = cfg};
    if (coil__use_builtin(app, &mw) < 0 || coil_app_on_reload(app, reopen, cfg) < 0)
        return -1;
    return 0;
}

void coil__alog_init(void)
{
    coil__loop_handle(OP_ALOG, on_cqe);
    coil__loop_on(EV_BATCH, on_batch);
}

int coil__alog_start(struct coil__worker *w)
{
    struct coil__alogcfg *cfg = w->app->alog;
    if (!cfg || cfg->fd < 0)
        return 0;
    struct coil__alog *a = coil__walloc(&w->wa, sizeof(*a));
    if (!a)
        return -ENOMEM;
    memset(a, 0, sizeof(*a));
    a->old_fd = -1;
    a->sec = -1;
    a->buf[0] = coil__walloc(&w->wa, BUF_BYTES);
    a->buf[1] = coil__walloc(&w->wa, BUF_BYTES);
    pthread_mutex_lock(&cfg->lock);
    a->fd = dup(cfg->fd);
    a->gen = atomic_load(&cfg->gen);
    a->pipe = cfg->pipe;
    pthread_mutex_unlock(&cfg->lock);
    w->alog = a;
    if (!a->buf[0] || !a->buf[1] || a->fd < 0)
        return -ENOMEM;
    return 0;
}

bool coil__alog_busy(const struct coil__worker *w)
{
    return w->alog && w->alog->writing;
}

/* After the loop (coil__alog_busy waited for the last write) and the ring are gone: the lines
 * still buffered are written plainly. */
void coil__alog_stop(struct coil__worker *w)
{
    struct coil__alog *a = w->alog;
    if (!a)
        return;
    w->alog = NULL;
    size_t off = 0;
    while (!a->writing && a->fd >= 0 && a->buf[a->cur] && off < a->len[a->cur]) {
        ssize_t n = write(a->fd, a->buf[a->cur] + off, a->len[a->cur] - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    if (a->fd >= 0)
        close(a->fd);
    if (a->old_fd >= 0)
        close(a->old_fd);
    coil__wfree(&w->wa, a->buf[0]);
    coil__wfree(&w->wa, a->buf[1]);
    coil__wfree(&w->wa, a);
}

void coil__alog_free(struct coil_app *app)
{
    struct coil__alogcfg *cfg = app->alog;
    if (!cfg)
        return;
    if (cfg->fd >= 0)
        close(cfg->fd);
    pthread_mutex_destroy(&cfg->lock);
    free(cfg->path);
    free(cfg);
    app->alog = NULL;
}
