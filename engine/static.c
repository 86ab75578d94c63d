/* SPDX-License-Identifier: MIT */
/*
 * static.c: files served from a directory (coil_route_static, --static PREFIX=DIR).
 *
 * Each worker keeps its own cache of the files it has served (no lock, no sharing), keyed by
 * route and relative path. An entry holds up to three representations of one file: the file
 * itself and its precompressed siblings NAME.br and NAME.gz. Small files (at most 1 MiB, and at
 * most an eighth of --static-cache) are read whole into memory and their descriptor closed, so
 * a hit is answered on the spot: no system call, the body copied once into the send buffer.
 * Bigger ones keep their descriptor open and stream from it, one read at a time, under the
 * stream's backpressure.
 *
 * Nothing here blocks the worker: opens (openat2 with RESOLVE_BENEATH, so no path or symlink
 * leaves the root), statx and reads are io_uring operations; a request whose file is not cached
 * yet (or is due for revalidation) defers and waits on the entry with any other request for the
 * same file. An entry is checked again (statx by path, each representation) once it is a second
 * old, so a file changed, replaced, removed or newly precompressed is served as it now is within
 * about a second. A download holds a reference on its open file: a file replaced by rename goes
 * on being sent whole from the old one, and one truncated under it ends the response short,
 * which closes the connection (never a body whose length disagrees with its Content-Length).
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "mw_compress.h"

#define REVALIDATE_MS 1000
#define MEM_FILE_MAX (1u << 20)  /* files up to this size may be kept in memory */
#define READ_CHUNK (128u * 1024) /* one read of a download */
#define MAX_ENTRIES 4096         /* cached files per worker */
#define MAX_SREQS (1u << 20)     /* requests waiting for a file or downloading, per worker */
#define DEFAULT_CACHE (32u << 20)
#define NREPR COIL__NCODINGS /* the file itself, NAME.br, NAME.gz: indexed by enum coil__coding */

static const char *const suffix[NREPR] = {"", ".br", ".gz"};

/* One coil_route_static: made before the workers start, read-only while they run. */
struct sroute {
    struct sroute *next;
    char *root;
    int dirfd;
    char *cache_control; /* NULL: none */
    char *index;         /* NULL: directories are not served */
    bool hidden, no_precompressed;
    bool from_flag; /* made by --static: takes --static-cache-control */
    struct coil_static_type *types;
    size_t ntypes;
};

struct coil__staticcfg {
    struct sroute *routes;
    const char *cache_control; /* --static-cache-control */
    uint64_t cache_bytes;      /* --static-cache */
};

/* One representation on disk. Counted: the entry holds one reference, each download one. */
struct sfile {
    uint32_t refs;
    int fd;     /* open while the body is read per request; -1 once the body is in memory */
    char *data; /* the whole body, or NULL */
    uint64_t size, ino, dev, mtime_ns, ctime_ns;
    int64_t mtime_s;
    uint8_t etag_len, lastmod_len;
    char etag[64];
    char lastmod[32];
};

struct sreq;

enum { E_NEW, E_LOADING, E_CHECKING, E_READY };
enum { OPEN, STAT, READ }; /* a load's steps, for each representation in turn */

struct entry {
    struct entry *hnext;       /* hash chain */
    struct entry *prev, *next; /* LRU list, most recent first */
    uint32_t idx, gen;         /* slab handle: completions name it */
    uint32_t hash;
    uint8_t state;
    uint8_t step;  /* OPEN/STAT/READ of repr */
    uint8_t repr;  /* the representation being loaded or checked */
    bool changed;  /* a check found a difference */
    bool inflight; /* an io_uring operation for it is in flight */
    bool dropped;  /* evicted or freed while in flight: free once it completes */
    int status;    /* READY: 0 (a file), 301 (a directory), 403, 404, 500 */
    uint64_t checked_ms;
    const struct sroute *route;
    const char *ctype;
    struct sfile *f[NREPR]; /* NULL: no such representation */
    struct sfile *load;     /* the representation being loaded */
    uint64_t got;           /* bytes of load read so far */
    struct statx stx;       /* the statx in flight writes here */
    struct open_how how;    /* the openat2 in flight reads this */
    struct sreq *waiters;
    char *path;  /* relative to the route's root; NUL-terminated */
    char *opath; /* the path of the representation in flight */
    uint32_t path_len;
};

/* A request that defers: it waits for its entry, then (for a file not in memory) downloads. */
struct sreq {
    uint32_t idx, gen;
    struct coil_defer d;
    struct entry *e;            /* waiting on it (in its list), or NULL */
    struct sreq *wprev, *wnext; /* the entry's waiters */
    struct sfile *f;            /* downloading: a reference */
    uint64_t off, end;          /* the next byte to read, one past the last to send */
    char *buf;                  /* READ_CHUNK bytes */
    size_t have;                /* read, not yet taken by the stream */
    bool reading;               /* a read is in flight */
    bool busy;                  /* inside a coil_res_* call that may abort the request */
    bool dead;                  /* the request is gone */
};

struct coil__swork {
    struct coil_slab entries;
    struct coil_slab sreqs;
    struct entry **buckets;
    uint32_t mask;
    uint32_t count;
    uint64_t bytes; /* bodies held in memory */
    uint64_t budget;
    uint32_t fds;       /* descriptors held open (entries' and downloads') */
    uint32_t fd_budget; /* beyond it, entries holding one are evicted first */
    struct entry *lru_head, *lru_tail;
};

/* ---- content types ---------------------------------------------------------------------- */

static const struct coil_static_type builtin_types[] = {
    {"html", "text/html"},
    {"htm", "text/html"},
    {"css", "text/css"},
    {"js", "application/javascript"},
    {"mjs", "application/javascript"},
    {"json", "application/json"},
    {"map", "application/json"},
    {"webmanifest", "application/manifest+json"},
    {"xml", "text/xml"},
    {"txt", "text/plain"},
    {"md", "text/markdown"},
    {"csv", "text/csv"},
    {"yaml", "application/yaml"},
    {"yml", "application/yaml"},
    {"svg", "image/svg+xml"},
    {"png", "image/png"},
    {"jpg", "image/jpeg"},
    {"jpeg", "image/jpeg"},
    {"gif", "image/gif"},
    {"webp", "image/webp"},
    {"avif", "image/avif"},
    {"ico", "image/x-icon"},
    {"woff", "font/woff"},
    {"woff2", "font/woff2"},
    {"ttf", "font/ttf"},
    {"otf", "font/otf"},
    {"wasm", "application/wasm"},
    {"pdf", "application/pdf"},
    {"zip", "application/zip"},
    {"gz", "application/gzip"},
    {"br", "application/x-brotli"},
    {"tar", "application/x-tar"},
    {"mp4", "video/mp4"},
    {"webm", "video/webm"},
    {"mp3", "audio/mpeg"},
    {"ogg", "audio/ogg"},
    {"wav", "audio/wav"},
};

static const char *lookup_type(const struct coil_static_type *t, size_t n, const char *ext,
                               size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (coil__eq_nocase(ext, len, t[i].ext))
            return t[i].type;
    return NULL;
}

static const char *content_type(const struct sroute *r, const char *path, size_t len)
{
    size_t i = len;
    while (i && path[i - 1] != '.' && path[i - 1] != '/')
        i--;
    if (!i || path[i - 1] != '.')
        return "application/octet-stream";
    const char *t = lookup_type(r->types, r->ntypes, path + i, len - i);
    if (!t)
        t = lookup_type(builtin_types, sizeof(builtin_types) / sizeof(builtin_types[0]), path + i,
                        len - i);
    return t ? t : "application/octet-stream";
}

/* ---- the cache -------------------------------------------------------------------------- */

static uint32_t hash_key(const struct sroute *r, const char *p, size_t n)
{
    uint64_t h = 1469598103934665603ull ^ (uint64_t)(uintptr_t)r;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    return (uint32_t)(h ^ (h >> 32));
}

/* Bodies held in memory: the budget's count, and the gauge. */
static void account(struct coil__worker *w, int64_t delta)
{
    w->files->bytes += (uint64_t)delta;
    STAT_ADD(w, st_bytes, (uint64_t)delta);
}

static void sfile_close(struct coil__worker *w, struct sfile *f)
{
    if (f->fd < 0)
        return;
    close(f->fd);
    f->fd = -1;
    w->files->fds--;
}

static void sfile_put(struct coil__worker *w, struct sfile *f)
{
    if (!f || --f->refs)
        return;
    sfile_close(w, f);
    if (f->data) {
        account(w, -(int64_t)f->size);
        coil__wfree(&w->wa, f->data);
    }
    coil__wfree(&w->wa, f);
}

static void drop_reprs(struct coil__worker *w, struct entry *e)
{
    for (int i = 0; i < NREPR; i++) {
        sfile_put(w, e->f[i]);
        e->f[i] = NULL;
    }
    sfile_put(w, e->load);
    e->load = NULL;
}

static void lru_unlink(struct coil__swork *s, struct entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        s->lru_head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        s->lru_tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_front(struct coil__swork *s, struct entry *e)
{
    if (s->lru_head == e)
        return;
    if (e->prev || s->lru_tail == e)
        lru_unlink(s, e);
    e->next = s->lru_head;
    if (s->lru_head)
        s->lru_head->prev = e;
    s->lru_head = e;
    if (!s->lru_tail)
        s->lru_tail = e;
}

static void entry_free(struct coil__worker *w, struct entry *e)
{
    drop_reprs(w, e);
    coil__wfree(&w->wa, e->path);
    coil__slab_put(&w->files->entries, e->idx);
}

/* Takes e out of the table and the LRU list; it is freed now, or once its operation completes. */
static void entry_remove(struct coil__worker *w, struct entry *e)
{
    struct coil__swork *s = w->files;
    struct entry **pp = &s->buckets[e->hash & s->mask];
    while (*pp && *pp != e)
        pp = &(*pp)->hnext;
    if (*pp)
        *pp = e->hnext;
    lru_unlink(s, e);
    s->count--;
    STAT_ADD(w, st_entries, (uint64_t)-1);
    if (e->inflight)
        e->dropped = true;
    else
        entry_free(w, e);
}

static bool holds_fd(const struct entry *e)
{
    for (int i = 0; i < NREPR; i++)
        if (e->f[i] && e->f[i]->fd >= 0)
            return true;
    return false;
}

/* Makes room for one more entry, need more bytes and (fd) one more descriptor: the least
 * recently used ready entries go (a download keeps its file open through its own reference). */
static void evict(struct coil__worker *w, uint64_t need, bool fd)
{
    struct coil__swork *s = w->files;
    for (struct entry *e = s->lru_tail; e;) {
        bool over = s->count >= MAX_ENTRIES || s->bytes + need > s->budget;
        bool over_fd = fd && s->fds >= s->fd_budget;
        if (!over && !over_fd)
            break;
        struct entry *prev = e->prev;
        if (e->state == E_READY && !e->waiters && (over || holds_fd(e)))
            entry_remove(w, e);
        e = prev;
    }
}

static struct entry *entry_find(struct coil__swork *s, const struct sroute *r, uint32_t h,
                                const char *p, size_t n)
{
    for (struct entry *e = s->buckets[h & s->mask]; e; e = e->hnext)
        if (e->hash == h && e->route == r && e->path_len == n && !memcmp(e->path, p, n))
            return e;
    return NULL;
}

static struct entry *entry_new(struct coil__worker *w, const struct sroute *r, uint32_t h,
                               const char *p, size_t n)
{
    struct coil__swork *s = w->files;
    evict(w, 0, false);
    uint32_t idx, gen;
    struct entry *e = coil__slab_get(&s->entries, &idx, &gen);
    if (!e)
        return NULL;
    e->path = coil__walloc(&w->wa, 2 * (n + 4));
    if (!e->path) {
        coil__slab_put(&s->entries, idx);
        return NULL;
    }
    memcpy(e->path, p, n);
    e->path[n] = 0;
    e->opath = e->path + n + 4;
    e->path_len = (uint32_t)n;
    e->idx = idx;
    e->gen = gen;
    e->hash = h;
    e->route = r;
    e->ctype = content_type(r, p, n);
    e->hnext = s->buckets[h & s->mask];
    s->buckets[h & s->mask] = e;
    s->count++;
    STAT_INC(w, st_entries);
    lru_front(s, e);
    return e;
}

/* ---- loading and checking --------------------------------------------------------------- */

static void entry_done(struct coil__worker *w, struct entry *e);

/* Whether a directory at e's path is answered with a redirect to its index: not when the
 * route serves none, nor when the path is that index already (an index that is a directory). */
static bool redirectable(const struct entry *e)
{
    const char *ix = e->route->index;
    if (!ix)
        return false;
    size_t il = strlen(ix), n = e->path_len;
    return !(n >= il && !strcmp(e->path + n - il, ix) && (n == il || e->path[n - il - 1] == '/'));
}

/* The representations this entry looks for: not siblings of a file that is itself one, nor of
 * what is not a file (a directory's redirect). */
static int reprs_of(const struct entry *e)
{
    if (e->route->no_precompressed || e->status)
        return 1;
    size_t n = e->path_len;
    if ((n > 3 && !memcmp(e->path + n - 3, ".br", 3)) ||
        (n > 3 && !memcmp(e->path + n - 3, ".gz", 3)))
        return 1;
    return NREPR;
}

static int submit(struct coil__worker *w, struct entry *e)
{
    struct io_uring_sqe *sqe = coil__sqe(w);
    if (!sqe)
        return -EBUSY;
    /* The kernel reads the path (and openat2's how) when the entry is submitted, so they live
     * in the entry. */
    memcpy(e->opath, e->path, e->path_len);
    memcpy(e->opath + e->path_len, suffix[e->repr], strlen(suffix[e->repr]) + 1);
    const char *path = e->opath;
    if (e->state == E_CHECKING) {
        /* By path, following links: only to see whether anything changed. A change reloads
         * through openat2, which keeps to the root. */
        io_uring_prep_statx(sqe, e->route->dirfd, path, AT_STATX_SYNC_AS_STAT, STATX_BASIC_STATS,
                            &e->stx);
    } else if (e->step == OPEN) {
        evict(w, 0, true);
        /* Nothing outside the root: no "..", no absolute or escaping symlink. O_NONBLOCK: a
         * FIFO must not hold the open (it is refused once seen not to be a regular file). */
        e->how = (struct open_how){
            .flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY,
            .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
        };
        io_uring_prep_openat2(sqe, e->route->dirfd, path, &e->how);
        STAT_INC(w, st_opens);
    } else if (e->step == STAT) {
        io_uring_prep_statx(sqe, e->load->fd, "", AT_EMPTY_PATH, STATX_BASIC_STATS, &e->stx);
    } else {
        io_uring_prep_read(sqe, e->load->fd, e->load->data + e->got,
                           (unsigned)(e->load->size - e->got), e->got);
    }
    io_uring_sqe_set_data64(sqe, UD(OP_FILE, e->idx, e->gen));
    e->inflight = true;
    return 0;
}

/* An IMF-fixdate, written by hand: strftime's names follow the locale. */
static void put_http_date(char *out, uint8_t *len, int64_t t)
{
    static const char days[] = "SunMonTueWedThuFriSat", months[] = "JanFebMarAprMayJunJulAug"
                                                                   "SepOctNovDec";
    struct tm tm;
    time_t tt = (time_t)t;
    gmtime_r(&tt, &tm);
    *len = (uint8_t)snprintf(out, 32, "%.3s, %02d %.3s %04d %02d:%02d:%02d GMT",
                             days + 3 * tm.tm_wday, tm.tm_mday, months + 3 * tm.tm_mon,
                             tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static bool same_file(const struct sfile *f, const struct statx *x)
{
    return f->ino == x->stx_ino &&
           f->dev == ((uint64_t)x->stx_dev_major << 32 | x->stx_dev_minor) &&
           f->size == x->stx_size &&
           f->mtime_ns == (uint64_t)x->stx_mtime.tv_sec * 1000000000u + x->stx_mtime.tv_nsec &&
           f->ctime_ns == (uint64_t)x->stx_ctime.tv_sec * 1000000000u + x->stx_ctime.tv_nsec;
}

static void take_stat(struct sfile *f, const struct statx *x)
{
    f->size = x->stx_size;
    f->ino = x->stx_ino;
    f->dev = (uint64_t)x->stx_dev_major << 32 | x->stx_dev_minor;
    f->mtime_ns = (uint64_t)x->stx_mtime.tv_sec * 1000000000u + x->stx_mtime.tv_nsec;
    f->ctime_ns = (uint64_t)x->stx_ctime.tv_sec * 1000000000u + x->stx_ctime.tv_nsec;
    /* RFC 9110 §8.8.2.1: never later than the response's Date (a file from the future). */
    int64_t now = (int64_t)time(NULL);
    f->mtime_s = x->stx_mtime.tv_sec < now ? x->stx_mtime.tv_sec : now;
    f->etag_len = (uint8_t)snprintf(f->etag, sizeof(f->etag), "\"%llx-%llx-%llx\"",
                                    (unsigned long long)f->size, (unsigned long long)f->mtime_ns,
                                    (unsigned long long)f->ino);
    put_http_date(f->lastmod, &f->lastmod_len, f->mtime_s);
}

/* The next representation to load, or the end of the load. */
static void load_next(struct coil__worker *w, struct entry *e)
{
    if (e->load) {
        e->f[e->repr] = e->load;
        e->load = NULL;
    }
    e->repr++;
    e->step = OPEN;
    if (e->repr >= reprs_of(e) || e->status) {
        entry_done(w, e);
        return;
    }
    if (submit(w, e) < 0) {
        e->status = 503;
        entry_done(w, e);
    }
}

static void load_start(struct coil__worker *w, struct entry *e)
{
    drop_reprs(w, e);
    e->state = E_LOADING;
    e->status = 0;
    e->repr = 0;
    e->step = OPEN;
    if (submit(w, e) < 0) {
        e->status = 503;
        entry_done(w, e);
    }
}

/* A load's operation completed with res. */
static void load_step(struct coil__worker *w, struct entry *e, int res)
{
    bool first = e->repr == 0;
    if (e->step == OPEN) {
        if (res == -EMFILE || res == -ENFILE) {
            /* Out of descriptors: hold fewer from now on, and free some for the next open. */
            struct coil__swork *s = w->files;
            s->fd_budget = s->fds / 2 > 16 ? s->fds / 2 : 16;
            evict(w, 0, true);
        }
        if (res < 0) {
            if (first)
                e->status = res == -EACCES ? 403
                            : res == -EMFILE || res == -ENFILE || res == -ENOMEM || res == -EAGAIN
                                ? 503
                                : 404;
            load_next(w, e);
            return;
        }
        e->load = coil__wcalloc(&w->wa, sizeof(*e->load));
        if (!e->load) {
            close(res);
            e->status = first ? 503 : 0;
            load_next(w, e);
            return;
        }
        e->load->refs = 1;
        e->load->fd = res;
        w->files->fds++;
        e->step = STAT;
    } else if (e->step == STAT) {
        if (res < 0 || !S_ISREG(e->stx.stx_mode)) {
            if (first)
                e->status = res >= 0 && S_ISDIR(e->stx.stx_mode) && redirectable(e) ? 301
                            : res == -ENOMEM                                        ? 503
                                                                                    : 404;
            sfile_put(w, e->load);
            e->load = NULL;
            load_next(w, e);
            return;
        }
        /* Opened O_NONBLOCK (a FIFO must not hold the open): a regular file's reads must wait
         * for the disk instead of failing with EAGAIN, so the flag goes (a quick fcntl, once
         * per load). */
        if (fcntl(e->load->fd, F_SETFL, 0) < 0) {
            if (first)
                e->status = 503;
            sfile_put(w, e->load);
            e->load = NULL;
            load_next(w, e);
            return;
        }
        take_stat(e->load, &e->stx);
        struct coil__swork *s = w->files;
        uint64_t size = e->load->size;
        if (size == 0) {
            sfile_close(w, e->load); /* nothing to read, ever: no descriptor to hold */
            load_next(w, e);
            return;
        }
        if (size > MEM_FILE_MAX || size > s->budget / 8) {
            load_next(w, e); /* streamed from its descriptor per request */
            return;
        }
        evict(w, size, false);
        if (s->bytes + size > s->budget || !(e->load->data = coil__walloc(&w->wa, size))) {
            load_next(w, e);
            return;
        }
        account(w, (int64_t)size);
        e->got = 0;
        e->step = READ;
    } else {
        if (res <= 0) {
            /* Shorter than its size said: it changed under us. Load it all again soon; for
             * now, read it per request (the download ends short if it is still short). */
            account(w, -(int64_t)e->load->size);
            coil__wfree(&w->wa, e->load->data);
            e->load->data = NULL;
            load_next(w, e);
            return;
        }
        e->got += (uint64_t)res;
        if (e->got == e->load->size) {
            sfile_close(w, e->load);
            load_next(w, e);
            return;
        }
    }
    if (submit(w, e) < 0) {
        if (first)
            e->status = 503;
        sfile_put(w, e->load); /* never kept half loaded */
        e->load = NULL;
        load_next(w, e);
    }
}

/* A check's statx of representation repr completed with res. */
static void check_step(struct coil__worker *w, struct entry *e, int res)
{
    const struct sfile *f = e->f[e->repr];
    bool now = res >= 0 && S_ISREG(e->stx.stx_mode);
    if (e->status) /* a directory (301) */
        e->changed = res < 0 || !S_ISDIR(e->stx.stx_mode);
    else if (now != (f != NULL) || (f && !same_file(f, &e->stx)))
        e->changed = true;
    if (e->changed) {
        load_start(w, e);
        return;
    }
    if (++e->repr < reprs_of(e) && submit(w, e) == 0)
        return;
    entry_done(w, e); /* unchanged (a failed submit: checked again next time) */
}

static void serve_waiter(struct coil__worker *w, struct sreq *q, struct entry *e);

/* The entry is ready: every waiter is answered. */
static void entry_done(struct coil__worker *w, struct entry *e)
{
    e->state = E_READY;
    e->checked_ms = w->now_ms;
    e->changed = false;
    struct sreq *q = e->waiters;
    e->waiters = NULL;
    while (q) {
        struct sreq *next = q->wnext;
        q->e = NULL;
        q->wprev = q->wnext = NULL;
        serve_waiter(w, q, e);
        q = next;
    }
    /* Refusals are not kept: a path that does not exist costs an open per request rather than
     * an entry each, so unknown paths cannot push the served files out. */
    if (e->status && e->status != 301)
        entry_remove(w, e);
}

static void on_file(struct coil__worker *w, const struct io_uring_cqe *cqe)
{
    struct entry *e =
        coil__slab_at(&w->files->entries, UD_IDX(cqe->user_data), UD_GEN(cqe->user_data));
    if (!e)
        return;
    e->inflight = false;
    if (e->dropped) {
        if (e->step == OPEN && e->state == E_LOADING && cqe->res >= 0)
            close(cqe->res);
        entry_free(w, e);
        return;
    }
    if (e->state == E_CHECKING)
        check_step(w, e, cqe->res);
    else
        load_step(w, e, cqe->res);
}

/* ---- conditional requests and ranges ---------------------------------------------------- */

/* An IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") as seconds since the epoch, or -1. The
 * obsolete formats RFC 9110 §5.6.7 also names are not read: the condition is then ignored, which
 * sends the full response. */
static int64_t parse_http_date(struct coil_str s)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    const char *p = s.ptr;
    if (s.len != 29 || p[3] != ',' || p[4] != ' ' || p[7] != ' ' || p[11] != ' ' || p[16] != ' ' ||
        p[19] != ':' || p[22] != ':' || p[25] != ' ' || memcmp(p + 26, "GMT", 3))
        return -1;
    int v[5];
    static const int at[5] = {5, 12, 17, 20, 23}, width[5] = {2, 4, 2, 2, 2};
    for (int i = 0; i < 5; i++) {
        v[i] = 0;
        for (int k = 0; k < width[i]; k++) {
            char c = p[at[i] + k];
            if (c < '0' || c > '9')
                return -1;
            v[i] = v[i] * 10 + (c - '0');
        }
    }
    const char *m = NULL;
    for (int i = 0; i < 12 && !m; i++)
        if (!memcmp(p + 8, months + 3 * i, 3))
            m = months + 3 * i;
    if (!m || v[0] < 1 || v[0] > 31 || v[2] > 23 || v[3] > 59 || v[4] > 60)
        return -1;
    struct tm tm = {.tm_mday = v[0],
                    .tm_mon = (int)(m - months) / 3,
                    .tm_year = v[1] - 1900,
                    .tm_hour = v[2],
                    .tm_min = v[3],
                    .tm_sec = v[4]};
    return (int64_t)timegm(&tm);
}

/* Whether the field's list of entity tags ("*", or tags, W/ allowed) holds etag. Strong: a
 * weak tag never matches (If-Match, If-Range); weak: W/ is ignored (If-None-Match). */
static bool etag_listed(struct coil_str s, const char *etag, size_t n, bool strong)
{
    const char *p = s.ptr, *end = s.ptr + s.len;
    while (p < end) {
        while (p < end && (coil__is_ows(*p) || *p == ','))
            p++;
        if (p == end)
            break;
        if (*p == '*')
            return true;
        bool weak = end - p > 2 && p[0] == 'W' && p[1] == '/';
        if (weak)
            p += 2;
        const char *q = p < end && *p == '"' ? memchr(p + 1, '"', (size_t)(end - p - 1)) : NULL;
        if (!q)
            return false; /* malformed: nothing after it is trusted */
        if ((!weak || !strong) && (size_t)(q + 1 - p) == n && !memcmp(p, etag, n))
            return true;
        p = q + 1;
    }
    return false;
}

static bool parse_u64_span(const char *p, const char *end, uint64_t *out)
{
    if (p == end || end - p > 19)
        return false;
    uint64_t v = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9')
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    *out = v;
    return true;
}

/* One "bytes=" range of a size-byte body: 1 and [*from, *to] (inclusive), 0 when the field is
 * to be ignored (another unit, several ranges, bad syntax), -1 when it cannot be satisfied. */
static int parse_range(struct coil_str s, uint64_t size, uint64_t *from, uint64_t *to)
{
    const char *p = s.ptr, *end = s.ptr + s.len;
    if (s.len < 6 || strncasecmp(p, "bytes=", 6))
        return 0;
    p += 6;
    while (p < end && coil__is_ows(*p))
        p++;
    while (end > p && coil__is_ows(end[-1]))
        end--;
    if (memchr(p, ',', (size_t)(end - p)))
        return 0; /* several: the whole body (as nginx's default) */
    const char *dash = memchr(p, '-', (size_t)(end - p));
    if (!dash)
        return 0;
    uint64_t a, b;
    if (dash == p) { /* a suffix: the last b bytes */
        if (!parse_u64_span(dash + 1, end, &b))
            return 0;
        if (b == 0 || size == 0)
            return -1;
        *from = b >= size ? 0 : size - b;
        *to = size - 1;
        return 1;
    }
    if (!parse_u64_span(p, dash, &a))
        return 0;
    if (dash + 1 == end)
        b = UINT64_MAX;
    else if (!parse_u64_span(dash + 1, end, &b) || b < a)
        return 0;
    if (a >= size)
        return -1;
    *from = a;
    *to = b >= size ? size - 1 : b;
    return 1;
}

/* ---- answering -------------------------------------------------------------------------- */

static bool has_siblings(const struct entry *e)
{
    return e->f[COIL__BR] || e->f[COIL__GZIP];
}

/* The representation to send: a sibling the client accepts, else the file itself. */
static enum coil__coding choose(const struct coil__accept *a, const struct entry *e)
{
    enum coil__coding offered[2];
    size_t k = 0;
    if (e->f[COIL__BR])
        offered[k++] = COIL__BR;
    if (e->f[COIL__GZIP])
        offered[k++] = COIL__GZIP;
    return k ? coil__accept_choose(a, offered, k) : COIL__IDENTITY;
}

static int put_header(struct coil_res *res, const char *name, const char *v, size_t n)
{
    return coil_res_headern(res, name, strlen(name), v, n);
}

/* The validators and caching headers every answer about the file carries (200, 206, 304). */
static int validators(struct coil_res *res, const struct entry *e, const struct sfile *f)
{
    int err = put_header(res, "ETag", f->etag, f->etag_len);
    if (!err)
        err = put_header(res, "Last-Modified", f->lastmod, f->lastmod_len);
    if (!err && has_siblings(e))
        err = put_header(res, "Vary", "Accept-Encoding", 15);
    if (!err && e->route->cache_control)
        err = coil_res_header(res, "Cache-Control", e->route->cache_control);
    return err;
}

/* The request fields a file's answer depends on, gathered in one pass over the headers. A
 * list field sent on several lines (If-Match, If-None-Match) counts as one list. */
struct conds {
    struct coil__accept accept;
    struct coil_str ius, ims, range, if_range; /* the first line of each, or {NULL, 0} */
    /* Per representation: -1 the field is absent, else whether its ETag is listed. */
    int8_t if_match[NREPR], if_none_match[NREPR];
};

/* Folds one line of an entity-tag list field into what is known of every representation. */
static void listed(int8_t *out, const struct entry *e, struct coil_str v, bool strong)
{
    for (int i = 0; i < NREPR; i++)
        if (e->f[i])
            out[i] = out[i] > 0 || etag_listed(v, e->f[i]->etag, e->f[i]->etag_len, strong);
}

static void gather(struct coil_req *req, const struct entry *e, struct conds *k)
{
    bool siblings = e->f[COIL__BR] || e->f[COIL__GZIP];
    k->ius = k->ims = k->range = k->if_range = (struct coil_str){NULL, 0};
    memset(k->if_match, -1, sizeof(k->if_match));
    memset(k->if_none_match, -1, sizeof(k->if_none_match));
    coil__accept_init(&k->accept);
    size_t n = coil_req_header_count(req);
    for (size_t i = 0; i < n; i++) {
        struct coil_str name, v;
        coil_req_header_at(req, i, &name, &v);
        const char *p = name.ptr;
        switch (name.len) {
        case 5: /* range */
            if (!k->range.ptr && coil__eq_nocase(p, 5, "range"))
                k->range = v;
            break;
        case 8: /* if-match, if-range */
            if (coil__eq_nocase(p, 8, "if-match"))
                listed(k->if_match, e, v, true);
            else if (!k->if_range.ptr && coil__eq_nocase(p, 8, "if-range"))
                k->if_range = v;
            break;
        case 13:
            if (coil__eq_nocase(p, 13, "if-none-match"))
                listed(k->if_none_match, e, v, false);
            break;
        case 15:
            if (siblings && coil__eq_nocase(p, 15, "accept-encoding"))
                coil__accept_parse(&k->accept, v.ptr, v.len);
            break;
        case 17:
            if (!k->ims.ptr && coil__eq_nocase(p, 17, "if-modified-since"))
                k->ims = v;
            break;
        case 19:
            if (!k->ius.ptr && coil__eq_nocase(p, 19, "if-unmodified-since"))
                k->ius = v;
            break;
        }
    }
}

/* RFC 9110 §13.2.2: 412, 304, or 0 to go on. */
static int preconditions(const struct conds *k, enum coil__coding c, const struct sfile *f)
{
    if (k->if_match[c] == 0)
        return 412;
    if (k->if_match[c] < 0) {
        int64_t t = k->ius.ptr ? parse_http_date(k->ius) : -1;
        if (t >= 0 && f->mtime_s > t)
            return 412;
    }
    if (k->if_none_match[c] >= 0)
        return k->if_none_match[c] ? 304 : 0;
    int64_t t = k->ims.ptr ? parse_http_date(k->ims) : -1;
    return t >= 0 && f->mtime_s <= t ? 304 : 0;
}

/* Whether If-Range (if any) lets the Range field apply. */
static bool if_range_ok(const struct conds *k, const struct sfile *f)
{
    struct coil_str ir = k->if_range;
    if (!ir.ptr)
        return true;
    if (ir.len && ir.ptr[0] == '"')
        return ir.len == f->etag_len && !memcmp(ir.ptr, f->etag, ir.len);
    int64_t t = parse_http_date(ir);
    return t >= 0 && t == f->mtime_s;
}

static int redirect(struct coil_req *req, struct coil_res *res)
{
    struct coil_str path = coil_req_path(req), query = coil_req_query(req);
    /* One leading slash: "//host/dir/" would be another host's URL to a browser. */
    while (path.len > 1 && path.ptr[1] == '/')
        path.ptr++, path.len--;
    size_t n = path.len + 2 + query.len;
    char *loc = coil_req_alloc(req, n);
    if (!loc)
        return -ENOMEM;
    memcpy(loc, path.ptr, path.len);
    loc[path.len] = '/';
    size_t k = path.len + 1;
    if (query.len) {
        loc[k++] = '?';
        memcpy(loc + k, query.ptr, query.len);
        k += query.len;
    }
    int err = coil_res_headern(res, "Location", 8, loc, k);
    return err ? err : coil_res_text(res, 301, "text/plain", "Moved Permanently\n");
}

/* A body to be read from the file per request: which bytes, and whether they are wanted. */
struct plan {
    struct sfile *f;
    uint64_t from, len;
    bool head;
};

/*
 * Builds the answer to req from a ready entry: 0 when res holds it whole, 1 when its body is to
 * be read from the file (*p says what), or a negative errno.
 */
static int serve(struct coil_req *req, struct coil_res *res, struct entry *e, struct plan *p)
{
    if (e->status == 301)
        return redirect(req, res);
    if (e->status) {
        int s = e->status;
        return coil_res_text(res, s, "text/plain",
                             s == 403   ? "Forbidden\n"
                             : s == 404 ? "Not Found\n"
                             : s == 503 ? "Service Unavailable\n"
                                        : "Internal Server Error\n");
    }
    struct conds k;
    gather(req, e, &k);
    enum coil__coding c = choose(&k.accept, e);
    struct sfile *f = e->f[c];
    int err = validators(res, e, f);
    if (err)
        return err;
    int pre = preconditions(&k, c, f);
    if (pre) {
        coil_res_status(res, pre);
        return 0;
    }
    /* The range first: a 416 describes no representation (no Content-Type of the file's, no
     * Content-Encoding). */
    uint64_t from = 0, len = f->size, a = 0, b = 0;
    struct coil_str method = coil_req_method(req);
    bool get = method.len == 3; /* the route is GET's: GET or HEAD */
    int r = k.range.ptr && get && if_range_ok(&k, f) ? parse_range(k.range, f->size, &a, &b) : 0;
    char cr[64];
    if (r < 0) {
        int n = snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)f->size);
        err = coil_res_headern(res, "Content-Range", 13, cr, (size_t)n);
        return err ? err : coil_res_text(res, 416, "text/plain", "Range Not Satisfiable\n");
    }
    if ((err = put_header(res, "Content-Type", e->ctype, strlen(e->ctype))) ||
        (err = put_header(res, "Accept-Ranges", "bytes", 5)))
        return err;
    if (c != COIL__IDENTITY &&
        (err = put_header(res, "Content-Encoding", c == COIL__BR ? "br" : "gzip",
                          c == COIL__BR ? 2 : 4)))
        return err;
    if (r > 0) {
        int n = snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)a,
                         (unsigned long long)b, (unsigned long long)f->size);
        if ((err = coil_res_headern(res, "Content-Range", 13, cr, (size_t)n)))
            return err;
        coil_res_status(res, 206);
        from = a;
        len = b - a + 1;
    }
    if (f->data || len == 0)
        return coil_res_body_static(res, f->data ? f->data + from : "", len);
    *p = (struct plan){.f = f, .from = from, .len = len, .head = !get};
    return 1;
}

/* ---- deferred requests: waiting and downloading ----------------------------------------- */

static void sreq_free(struct coil__worker *w, struct sreq *q)
{
    sfile_put(w, q->f);
    if (q->buf)
        coil__wfree(&w->wa, q->buf);
    coil__slab_put(&w->files->sreqs, q->idx);
}

static void waiter_unlink(struct sreq *q)
{
    if (!q->e)
        return;
    if (q->wprev)
        q->wprev->wnext = q->wnext;
    else
        q->e->waiters = q->wnext;
    if (q->wnext)
        q->wnext->wprev = q->wprev;
    q->e = NULL;
}

/* The request died (client gone, timeout, drain): what q holds goes, now or once its read
 * completes (or the call it died under returns). */
static void sreq_abort(void *ud)
{
    struct sreq *q = ud;
    q->dead = true;
    waiter_unlink(q);
    if (!q->reading && !q->busy)
        sreq_free(coil__self, q);
}

static struct sreq *sreq_defer(struct coil__worker *w, struct coil_res *res)
{
    uint32_t idx, gen;
    struct sreq *q = coil__slab_get(&w->files->sreqs, &idx, &gen);
    if (!q)
        return NULL;
    q->idx = idx;
    q->gen = gen;
    q->d = coil_res_defer(res, sreq_abort, q);
    if (!q->d.id) {
        coil__slab_put(&w->files->sreqs, idx);
        return NULL;
    }
    return q;
}

/* Ends q's response (whole, or cut short, which closes the connection) and frees q. */
static void sreq_finish(struct coil__worker *w, struct sreq *q)
{
    struct coil_res *res = coil_defer_res(q->d);
    q->busy = true;
    if (res)
        coil_res_finish(res);
    sreq_free(w, q);
}

/* Gives up on q's response before its head: the client gets status. */
static void sreq_fail(struct coil__worker *w, struct sreq *q, int status)
{
    struct coil_res *res = coil_defer_res(q->d);
    if (res)
        coil_res_fail(res, status);
    sreq_free(w, q);
}

static void read_more(struct coil__worker *w, struct sreq *q)
{
    struct io_uring_sqe *sqe = coil__sqe(w);
    if (!sqe) {
        sreq_finish(w, q); /* short of its length: the connection closes */
        return;
    }
    uint64_t left = q->end - q->off;
    io_uring_prep_read(sqe, q->f->fd, q->buf, left < READ_CHUNK ? (unsigned)left : READ_CHUNK,
                       q->off);
    io_uring_sqe_set_data64(sqe, UD(OP_FREAD, q->idx, q->gen));
    q->reading = true;
}

/* Gives the stream what was read; then reads on, waits for room, or ends. */
static void push(struct coil__worker *w, struct sreq *q)
{
    struct coil_res *res = coil_defer_res(q->d);
    if (!res) {
        sreq_free(w, q);
        return;
    }
    q->busy = true;
    int err = coil_res_write(res, q->buf, q->have);
    q->busy = false;
    if (q->dead) {
        sreq_free(w, q);
        return;
    }
    if (err == -EAGAIN)
        return; /* on_writable pushes again once the client has taken some */
    if (err < 0) {
        sreq_finish(w, q);
        return;
    }
    q->off += q->have;
    q->have = 0;
    if (q->off >= q->end)
        sreq_finish(w, q);
    else
        read_more(w, q);
}

static void on_writable(void *ud)
{
    push(coil__self, ud);
}

static void on_read(struct coil__worker *w, const struct io_uring_cqe *cqe)
{
    struct sreq *q =
        coil__slab_at(&w->files->sreqs, UD_IDX(cqe->user_data), UD_GEN(cqe->user_data));
    if (!q)
        return;
    q->reading = false;
    if (q->dead) {
        sreq_free(w, q);
        return;
    }
    if (cqe->res <= 0) {
        sreq_finish(w, q); /* truncated (0) or failed under the download: it ends short */
        return;
    }
    q->have = (size_t)cqe->res;
    push(w, q);
}

/* Sends the head of a download, then its body read by read. q is the request's, deferred. */
static void download(struct coil__worker *w, struct sreq *q, struct coil_res *res,
                     const struct plan *p)
{
    q->f = p->f;
    q->f->refs++;
    q->off = p->from;
    q->end = p->from + p->len;
    if (!p->head && !(q->buf = coil__walloc(&w->wa, READ_CHUNK))) {
        sreq_fail(w, q, 503);
        return;
    }
    coil_res_on_writable(res, on_writable, q);
    coil_res_length(res, p->len);
    q->busy = true;
    int err = coil_res_stream(res);
    q->busy = false;
    if (q->dead)
        sreq_free(w, q);
    else if (err < 0)
        sreq_fail(w, q, 503);
    else if (p->head)
        sreq_finish(w, q);
    else
        read_more(w, q);
}

/* The entry q waited on is ready. */
static void serve_waiter(struct coil__worker *w, struct sreq *q, struct entry *e)
{
    struct coil_res *res = coil_defer_res(q->d);
    struct coil_req *req = coil_defer_req(q->d);
    if (!res || !req) {
        sreq_free(w, q);
        return;
    }
    struct plan p;
    int r = serve(req, res, e, &p);
    if (r < 0)
        sreq_fail(w, q, r == -ENOMEM ? 503 : 500);
    else if (r == 0)
        sreq_finish(w, q);
    else
        download(w, q, res, &p);
}

/* ---- the handler ------------------------------------------------------------------------ */

static int handler(struct coil_req *req, struct coil_res *res, void *ud)
{
    const struct sroute *r = ud;
    struct coil__worker *w = req->w;
    struct coil__swork *s = w->files;
    const struct coil__match *m = req->match;
    struct coil_str raw = m->nparams ? m->values[m->nparams - 1] : (struct coil_str){"", 0};
    char path[COIL__STATIC_PATH_MAX];
    size_t n;
    int st = coil__static_path(raw.ptr, raw.len, r->hidden, path, sizeof(path), &n);
    if (st == COIL__STATIC_DIR) {
        size_t il = r->index ? strlen(r->index) : 0;
        st = 404;
        if (il && n + il + 2 <= sizeof(path)) {
            if (n)
                path[n++] = '/';
            memcpy(path + n, r->index, il + 1);
            n += il;
            st = 0;
        }
    }
    if (st)
        return coil_res_text(res, st, "text/plain", st == 400 ? "Bad Request\n" : "Not Found\n");
    uint32_t h = hash_key(r, path, n);
    struct entry *e = entry_find(s, r, h, path, n);
    struct plan p;
    if (e && e->state == E_READY && w->now_ms - e->checked_ms < REVALIDATE_MS) {
        lru_front(s, e);
        int rc = serve(req, res, e, &p);
        if (rc <= 0)
            return rc;
        struct sreq *q = sreq_defer(w, res);
        if (!q)
            return coil__res_error(res, 503); /* not the 206 serve began */
        download(w, q, res, &p);
        return 0;
    }
    if (!e && !(e = entry_new(w, r, h, path, n)))
        return -ENOMEM;
    struct sreq *q = sreq_defer(w, res);
    if (!q) {
        if (e->state == E_NEW)
            entry_remove(w, e);
        return -ENOMEM;
    }
    q->e = e;
    q->wnext = e->waiters;
    if (e->waiters)
        e->waiters->wprev = q;
    e->waiters = q;
    lru_front(s, e);
    if (e->state == E_NEW) {
        load_start(w, e);
    } else if (e->state == E_READY) {
        e->state = E_CHECKING;
        e->repr = 0;
        e->changed = false;
        if (submit(w, e) < 0)
            entry_done(w, e); /* cannot check now: serve what is known */
    }
    return 0;
}

/* ---- the request path ------------------------------------------------------------------- */

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

/* Whether the segment just written (seg..end) may be served. */
static bool segment_ok(const char *seg, size_t n, bool hidden)
{
    if (n > 255)
        return false;
    if (seg[0] != '.')
        return true;
    if (n == 1 || (n == 2 && seg[1] == '.'))
        return false; /* "." and "..": never, whatever hidden says */
    return hidden;
}

int coil__static_path(const char *raw, size_t n, bool hidden, char *out, size_t cap, size_t *len)
{
    size_t o = 0, seg = 0; /* seg: where the current segment began in out */
    bool slash_end = n == 0;
    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)raw[i];
        if (c == '%') {
            int hi = i + 1 < n ? hexval(raw[i + 1]) : -1;
            int lo = i + 2 < n ? hexval(raw[i + 2]) : -1;
            if (hi < 0 || lo < 0)
                return 400;
            c = hi << 4 | lo;
            i += 2;
        }
        if (c == 0 || c < 0x20 || c == 0x7f)
            return 404;
        if (c == '/') {
            if (o > seg) {
                if (!segment_ok(out + seg, o - seg, hidden))
                    return 404;
                if (o + 1 >= cap)
                    return 404;
                out[o++] = '/';
                seg = o;
            }
            slash_end = true;
            continue;
        }
        slash_end = false;
        if (o + 1 >= cap)
            return 404;
        out[o++] = (char)c;
    }
    if (o > seg && !segment_ok(out + seg, o - seg, hidden))
        return 404;
    if (o && out[o - 1] == '/')
        o--; /* "a/" : the directory a */
    out[o] = 0;
    *len = o;
    return slash_end || o == 0 ? COIL__STATIC_DIR : 0;
}

/* ---- routes and options ----------------------------------------------------------------- */

static struct coil__staticcfg *cfg_of(struct coil_app *app)
{
    if (!app->statics)
        app->statics = calloc(1, sizeof(*app->statics));
    return app->statics;
}

static void sroute_free(struct sroute *r)
{
    if (r->dirfd >= 0)
        close(r->dirfd);
    for (size_t i = 0; i < r->ntypes; i++) {
        free((char *)r->types[i].ext);
        free((char *)r->types[i].type);
    }
    free(r->types);
    free(r->root);
    free(r->cache_control);
    free(r->index);
    free(r);
}

static char *dup_or_null(const char *s, bool *oom)
{
    char *d = s ? strdup(s) : NULL;
    if (s && !d)
        *oom = true;
    return d;
}

int coil_route_static(struct coil_app *app, const char *pattern, const char *root,
                      const struct coil_static_opts *o)
{
    static const struct coil_static_opts defaults = {0};
    if (!app || !pattern || !root || !*root)
        return -EINVAL;
    if (!o)
        o = &defaults;
    size_t pl = strlen(pattern);
    if (pl < 2 || pattern[0] != '/' || pattern[pl - 1] != '*' || pattern[pl - 2] != '/')
        return -EINVAL;
    if (o->cache_control && (strchr(o->cache_control, '\r') || strchr(o->cache_control, '\n')))
        return -EINVAL;
    if (o->index && strchr(o->index, '/'))
        return -EINVAL;
    struct coil__staticcfg *sc = cfg_of(app);
    struct sroute *r = calloc(1, sizeof(*r));
    if (!sc || !r) {
        free(r);
        return -ENOMEM;
    }
    bool oom = false;
    r->dirfd = -1;
    r->root = dup_or_null(root, &oom);
    r->cache_control = dup_or_null(o->cache_control, &oom);
    r->index =
        o->index && !*o->index ? NULL : dup_or_null(o->index ? o->index : "index.html", &oom);
    r->hidden = o->hidden;
    r->no_precompressed = o->no_precompressed;
    size_t nt = 0;
    while (o->types && o->types[nt].ext)
        nt++;
    if (nt && !(r->types = calloc(nt, sizeof(*r->types))))
        oom = true;
    for (size_t i = 0; r->types && i < nt; i++, r->ntypes++) {
        const char *ext = o->types[i].ext;
        r->types[i].ext = dup_or_null(ext[0] == '.' ? ext + 1 : ext, &oom);
        r->types[i].type = dup_or_null(o->types[i].type ? o->types[i].type : "", &oom);
    }
    int err = oom ? -ENOMEM : coil_route(app, "GET", pattern, handler, r);
    if (err < 0) {
        sroute_free(r);
        return err;
    }
    r->next = sc->routes;
    sc->routes = r;
    return 0;
}

/* --static PREFIX=DIR (the variable may hold several, space-separated). */
static int add_static(struct coil_app *app, const char *pattern, const char *root)
{
    int err = coil_route_static(app, pattern, root, NULL);
    if (err == 0)
        app->statics->routes->from_flag = true; /* takes --static-cache-control */
    return err;
}

static int static_option(const char *value, void *ud)
{
    return coil__prefix_option(ud, value, "static",
                               "wants PREFIX=DIR with PREFIX ending in '/', like "
                               "/static/=/srv/static",
                               add_static);
}

static int cache_control_option(const char *value, void *ud)
{
    struct coil__staticcfg *sc = ud;
    if (strchr(value, '\r') || strchr(value, '\n'))
        return -1;
    sc->cache_control = *value ? value : NULL;
    return 0;
}

static int cache_option(const char *value, void *ud)
{
    struct coil__staticcfg *sc = ud;
    uint64_t v;
    if (coil__parse_size(value, &v) < 0 || v > (UINT64_C(1) << 40)) {
        fprintf(stderr, "coil: --static-cache: '%s' is not a size (like 64M, or 0)\n", value);
        return -1;
    }
    sc->cache_bytes = v;
    return 0;
}

int coil__static_setup(struct coil_app *app)
{
    struct coil__staticcfg *sc = cfg_of(app);
    if (!sc)
        return -ENOMEM;
    sc->cache_bytes = DEFAULT_CACHE;
    if (coil_app_option(app, "static", "COIL_STATIC", "PREFIX=DIR",
                        "serve the files under DIR at PREFIX* (repeatable; the variable takes "
                        "several, space-separated), e.g. /static/=/srv/static",
                        static_option, app) < 0 ||
        coil_app_option(app, "static-cache-control", "COIL_STATIC_CACHE_CONTROL", "VALUE",
                        "Cache-Control for --static files (default: none)", cache_control_option,
                        sc) < 0 ||
        coil_app_option(app, "static-cache", "COIL_STATIC_CACHE", "SIZE",
                        "file contents each worker keeps in memory (default 32M; 0: none)",
                        cache_option, sc) < 0)
        return -ENOMEM;
    return 0;
}

int coil__static_install(struct coil_app *app)
{
    struct coil__staticcfg *sc = app->statics;
    for (struct sroute *r = sc ? sc->routes : NULL; r; r = r->next) {
        if (r->from_flag && sc->cache_control && !r->cache_control &&
            !(r->cache_control = strdup(sc->cache_control))) {
            fprintf(stderr, "coil: out of memory\n");
            return -1;
        }
        if (r->dirfd >= 0)
            continue;
        r->dirfd = open(r->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (r->dirfd < 0) {
            fprintf(stderr, "coil: static files: cannot use %s as a directory: %s\n", r->root,
                    strerror(errno));
            return -1;
        }
    }
    return 0;
}

bool coil__static_on(const struct coil_app *app)
{
    return app->statics && app->statics->routes;
}

void coil__static_free(struct coil_app *app)
{
    struct coil__staticcfg *sc = app->statics;
    if (!sc)
        return;
    while (sc->routes) {
        struct sroute *n = sc->routes->next;
        sroute_free(sc->routes);
        sc->routes = n;
    }
    free(sc);
    app->statics = NULL;
}

/* ---- per worker ------------------------------------------------------------------------- */

void coil__static_init(void)
{
    coil__loop_handle(OP_FILE, on_file);
    coil__loop_handle(OP_FREAD, on_read);
}

int coil__static_start(struct coil__worker *w)
{
    if (!coil__static_on(w->app))
        return 0;
    struct coil__swork *s = coil__wcalloc(&w->wa, sizeof(*s));
    if (!s)
        return -ENOMEM;
    w->files = s;
    s->budget = w->app->statics->cache_bytes;
    /* A quarter of the process's descriptors, shared by the workers: the rest are for sockets. */
    struct rlimit rl;
    rlim_t fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? rl.rlim_cur : 1024;
    fds = fds / 4 / w->app->nworkers;
    s->fd_budget = fds < 16 ? 16 : fds > 65536 ? 65536 : (uint32_t)fds;
    s->mask = 2 * MAX_ENTRIES - 1;
    int err;
    if (!(s->buckets = coil__wcalloc(&w->wa, sizeof(*s->buckets) * (s->mask + 1))) ||
        (err = coil__slab_init(&s->entries, &w->wa, sizeof(struct entry), MAX_ENTRIES + 64)) < 0 ||
        (err = coil__slab_init(&s->sreqs, &w->wa, sizeof(struct sreq), MAX_SREQS)) < 0)
        return -ENOMEM;
    return 0;
}

/* Frees the live objects of a slab (those whose operations were in flight when the ring went). */
static void slab_drain(struct coil__worker *w, struct coil_slab *sl, bool entries)
{
    for (uint32_t i = 0; i < sl->npages * COIL_SLAB_PAGE; i++) {
        void *o = (sl->gen[i] & 1) ? coil__slab_at(sl, i, sl->gen[i]) : NULL;
        if (o && entries)
            entry_free(w, o);
        else if (o)
            sreq_free(w, o);
    }
}

void coil__static_stop(struct coil__worker *w)
{
    struct coil__swork *s = w->files;
    if (!s)
        return;
    if (s->sreqs.wa) {
        slab_drain(w, &s->sreqs, false);
        coil__slab_fini(&s->sreqs);
    }
    if (s->entries.wa) {
        slab_drain(w, &s->entries, true);
        coil__slab_fini(&s->entries);
    }
    coil__wfree(&w->wa, s->buckets);
    coil__wfree(&w->wa, s);
    w->files = NULL;
}
