/* SPDX-License-Identifier: MIT */
/*
 * app.c: the engine's lifetime on the main thread: create, register routes, parse options,
 * open the listening sockets, start the workers, explain start-up failures, wait for a
 * signal, drain, and free everything.
 *
 * The main thread owns struct coil_app. It writes it only before the workers start; after that
 * its one job is to turn SIGTERM/SIGINT into app->stopping (1: drain; a second signal: 2,
 * force) and to join the workers. Listening sockets are opened here, one per worker with
 * SO_REUSEPORT, so "port in use" is reported before any thread exists and port 0 resolves to
 * one port shared by every worker.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"

struct coil_app *coil__app;

static unsigned allowed_cpus(int **cpus)
{
    cpu_set_t set;
    unsigned n = 0;
    if (sched_getaffinity(0, sizeof(set), &set) != 0) {
        *cpus = NULL;
        return 1;
    }
    *cpus = malloc(sizeof(int) * CPU_SETSIZE);
    for (int i = 0; i < CPU_SETSIZE && *cpus; i++)
        if (CPU_ISSET(i, &set))
            (*cpus)[n++] = i;
    return n ? n : 1;
}

struct coil_app *coil_app_create(int argc, char **argv)
{
    struct coil_app *app = calloc(1, sizeof(*app));
    if (!app) {
        fprintf(stderr, "coil: out of memory\n");
        exit(1);
    }
    coil__config_defaults(&app->cfg);
    app->argc = argc;
    app->argv = argv;
    app->router = coil__router_create();
    if (!app->router || coil__proxy_option(app) < 0 || coil__log_setup(app) < 0 ||
        coil__builtins_setup(app) < 0) {
        fprintf(stderr, "coil: out of memory\n");
        exit(1);
    }
    return app;
}

int coil_route(struct coil_app *app, const char *method, const char *pattern, coil_handler h,
               void *ud)
{
    if (!app || !h)
        return -EINVAL;
    return coil__router_add(app->router, method, pattern, h, ud);
}

int coil_route_stream(struct coil_app *app, const char *method, const char *pattern,
                      coil_body_fn on_body, coil_handler h, void *ud)
{
    if (!app || !h)
        return -EINVAL;
    int r = coil__router_add(app->router, method, pattern, h, ud);
    if (r == 0) {
        struct coil__route *route = coil__router_find(app->router, method, pattern);
        route->on_body = on_body;
        route->early = on_body == NULL;
    }
    return r;
}

int coil_route_max_body(struct coil_app *app, const char *method, const char *pattern,
                        uint64_t max_body_bytes)
{
    struct coil__route *r = coil__router_find(app->router, method, pattern);
    if (!r)
        return -ENOENT;
    if (r->on_body || r->early) {
        /* Nothing is buffered; the bound only keeps the byte counts far from overflow. */
        if (max_body_bytes > (UINT64_C(1) << 62))
            return -EINVAL;
        r->max_body = max_body_bytes;
        if (max_body_bytes > app->stream_cap)
            app->stream_cap = max_body_bytes;
        return 0;
    }
    if (max_body_bytes > (1u << 30))
        return -EINVAL; /* bodies are held in one buffer of at most a few GiB */
    r->max_body = max_body_bytes;
    if (max_body_bytes > app->body_cap)
        app->body_cap = max_body_bytes;
    return 0;
}

/* Appends a hook; the list keeps registration order. */
static int add_hook(struct coil_app *app, const struct coil__hook *h)
{
    struct coil__hook *n = malloc(sizeof(*n));
    if (!n)
        return -ENOMEM;
    *n = *h;
    n->next = NULL;
    struct coil__hook **p = &app->hooks;
    while (*p)
        p = &(*p)->next;
    *p = n;
    return 0;
}

int coil_app_on_worker(struct coil_app *app, void (*start)(unsigned, void *),
                       void (*stop)(unsigned, void *), void *ud)
{
    if (!app || (!start && !stop))
        return -EINVAL;
    return add_hook(app, &(struct coil__hook){.start = start, .stop = stop, .ud = ud});
}

int coil_app_on_run(struct coil_app *app, int (*run)(void *ud), void (*done)(void *ud), void *ud)
{
    if (!app || (!run && !done))
        return -EINVAL;
    return add_hook(app, &(struct coil__hook){.run = run, .done = done, .ud = ud});
}

int coil_app_on_reload(struct coil_app *app, void (*reload)(void *ud), void *ud)
{
    if (!app || !reload)
        return -EINVAL;
    return add_hook(app, &(struct coil__hook){.reload = reload, .ud = ud});
}

int coil_app_ready_check(struct coil_app *app, bool (*ready)(void *ud), void *ud)
{
    if (!app || !ready)
        return -EINVAL;
    return add_hook(app, &(struct coil__hook){.ready = ready, .ud = ud});
}

void coil__hooks_start(struct coil__worker *w)
{
    for (struct coil__hook *h = w->app->hooks; h; h = h->next)
        if (h->start)
            h->start(w->id, h->ud);
}

/* Stop hooks run in the reverse order of their start hooks. */
static void stop_from(struct coil__hook *h, unsigned worker)
{
    if (!h)
        return;
    stop_from(h->next, worker);
    if (h->stop)
        h->stop(worker, h->ud);
}

void coil__hooks_stop(struct coil__worker *w)
{
    stop_from(w->app->hooks, w->id);
}

/* Run hooks in order; 0, or the first failure (the ones that ran get their done). */
static int hooks_run(struct coil_app *app, struct coil__hook **ran_to)
{
    for (struct coil__hook *h = app->hooks; h; h = h->next) {
        if (h->run && h->run(h->ud) != 0) {
            *ran_to = h;
            return -1;
        }
    }
    *ran_to = NULL;
    return 0;
}

/* Done hooks: those of run hooks that ran (up to until), and every one without a run hook (a
 * module's clean-up), each at most once; app_free calls it again for the ones an early failure
 * skipped. */
static void hooks_done(struct coil_app *app, struct coil__hook *until)
{
    bool before = true;
    for (struct coil__hook *h = app->hooks; h; h = h->next) {
        before &= h != until;
        if (h->done && !h->done_ran && (before || !h->run)) {
            h->done_ran = true;
            h->done(h->ud);
        }
    }
}

bool coil_ready(void)
{
    struct coil_app *app = coil__app;
    if (!app || atomic_load_explicit(&app->stopping, memory_order_relaxed) != 0)
        return false;
    for (struct coil__hook *h = app->hooks; h; h = h->next)
        if (h->ready && !h->ready(h->ud))
            return false;
    return true;
}

/* Every address of name, numeric, comma-separated in the resolver's order without repeats
 * (malloc'd; *count of them), or NULL. Not on a worker: this may wait on DNS. */
char *coil__resolve_all(const char *name, unsigned *count)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    if (getaddrinfo(name, NULL, &hints, &ai) != 0 || !ai)
        return NULL;
    size_t cap = 256, len = 0;
    char *out = malloc(cap);
    unsigned n = 0;
    for (struct addrinfo *p = ai; p && out; p = p->ai_next) {
        char buf[INET6_ADDRSTRLEN];
        const void *a = p->ai_family == AF_INET6
                            ? (const void *)&((struct sockaddr_in6 *)p->ai_addr)->sin6_addr
                            : (const void *)&((struct sockaddr_in *)p->ai_addr)->sin_addr;
        if ((p->ai_family != AF_INET && p->ai_family != AF_INET6) ||
            !inet_ntop(p->ai_family, a, buf, sizeof(buf)))
            continue;
        size_t bl = strlen(buf);
        bool seen = false;
        for (const char *q = out; len && q < out + len;
             q = strchr(q, ',') ? strchr(q, ',') + 1 : out + len) {
            const char *e = memchr(q, ',', (size_t)(out + len - q));
            size_t ql = e ? (size_t)(e - q) : (size_t)(out + len - q);
            seen |= ql == bl && !memcmp(q, buf, bl);
        }
        if (seen)
            continue;
        if (len + bl + 2 > cap) {
            char *g = realloc(out, cap *= 2);
            if (!g) {
                free(out);
                out = NULL;
                break;
            }
            out = g;
        }
        if (len)
            out[len++] = ',';
        memcpy(out + len, buf, bl);
        len += bl;
        n++;
    }
    freeaddrinfo(ai);
    if (out && n == 0) {
        free(out);
        out = NULL;
    }
    if (out)
        out[len] = 0;
    *count = n;
    return out;
}

/* ---- listening sockets ------------------------------------------------------------------ */

static int fill_addr(const struct coil__config *cfg, uint16_t port, struct sockaddr_storage *ss,
                     socklen_t *len)
{
    memset(ss, 0, sizeof(*ss));
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, cfg->bind, &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        *len = sizeof(*v4);
        return AF_INET;
    }
    if (inet_pton(AF_INET6, cfg->bind, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons(port);
        *len = sizeof(*v6);
        return AF_INET6;
    }
    return -EINVAL;
}

static int open_listener(const struct coil__config *cfg, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t len;
    int family = fill_addr(cfg, port, &ss, &len);
    if (family < 0)
        return family;
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1, zero = 0;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    /* Accepted sockets inherit it: responses leave without waiting for ACKs of earlier ones. */
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
    if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 65535) < 0) {
        int err = -errno;
        close(fd);
        return err;
    }
    return fd;
}

static uint16_t bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return 0;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* One listener per worker on *port (0: the kernel picks one, and *port says which). */
static int open_kind(struct coil_app *app, unsigned kind, uint16_t *port, const char *flag)
{
    const struct coil__config *cfg = &app->cfg;
    for (unsigned i = 0; i < app->nworkers; i++) {
        int fd = open_listener(cfg, *port);
        if (fd < 0) {
            if (fd == -EADDRINUSE)
                fprintf(stderr,
                        "coil: cannot listen on %s port %u: the port is in use by another "
                        "process. Stop it or pick another port with %s.\n",
                        cfg->bind, *port, flag);
            else if (fd == -EACCES)
                fprintf(stderr,
                        "coil: cannot listen on port %u: permission denied (ports below "
                        "1024 need root or CAP_NET_BIND_SERVICE).\n",
                        *port);
            else
                fprintf(stderr, "coil: cannot listen on %s port %u: %s\n", cfg->bind, *port,
                        strerror(-fd));
            return fd;
        }
        app->listen_fds[i * NLISTENERS + kind] = fd;
        if (*port == 0)
            *port = bound_port(fd); /* the others join the port the kernel picked */
    }
    return 0;
}

static int open_listeners(struct coil_app *app)
{
    int err, tls_port = coil__tls_port(app);
    if (tls_port >= 0) {
        uint16_t port = (uint16_t)tls_port;
        if ((err = open_kind(app, LST_TLS, &port, "--tls-port")) < 0)
            return err;
        coil__tls_set_port(app, port);
        int port2 = coil__tls_port2(app);
        if (port2 >= 0) {
            port = (uint16_t)port2;
            if ((err = open_kind(app, LST_TLS2, &port, "--tls-port")) < 0)
                return err;
            coil__tls_set_port2(app, port);
        }
    }
    if (!coil__tls_no_http(app) && (err = open_kind(app, LST_HTTP, &app->cfg.port, "--port")) < 0)
        return err;
    int h2c_port = coil__h2c_port(app);
    if (h2c_port >= 0) {
        uint16_t port = (uint16_t)h2c_port;
        if ((err = open_kind(app, LST_H2C, &port, "--h2c-port")) < 0)
            return err;
        coil__h2c_set_port(app, port);
    }
    return 0;
}

/* The kernel moves the connections queued on a closing listener to another one of its
 * SO_REUSEPORT group (net.ipv4.tcp_migrate_req, Linux 5.14): a replacement on the same port. */
static bool migrate_req(void)
{
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_migrate_req", "r");
    int v = 0;
    if (f) {
        if (fscanf(f, "%d", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v == 1;
}

/* ---- start-up checks -------------------------------------------------------------------- */

/* This process runs under a seccomp filter (/proc/self/status "Seccomp: 2"). */
static bool seccomp_filtered(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return false;
    char line[256];
    bool on = false;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "Seccomp:", 8) == 0) {
            on = atoi(line + 8) == 2;
            break;
        }
    fclose(f);
    return on;
}

/* The running kernel is one that has io_uring (Linux 5.1 and later). */
static bool kernel_has_uring(char *release, size_t cap)
{
    struct utsname u;
    if (uname(&u) != 0)
        return false;
    snprintf(release, cap, "%s", u.release);
    unsigned major = 0, minor = 0;
    sscanf(u.release, "%u.%u", &major, &minor);
    return major > 5 || (major == 5 && minor >= 1);
}

/* How to let coil use io_uring under a container runtime's seccomp profile. */
#define SECCOMP_FIX                                                                                \
    "Run it with the profile in this repository: podman or docker run --security-opt "             \
    "seccomp=docker/seccomp.json (or seccomp=unconfined); in Kubernetes, install "                 \
    "docker/seccomp.json on the nodes and set securityContext.seccompProfile to type "             \
    "Localhost with its path (docker/README.md shows both)."

static void explain_ring_error(int err, const char *what)
{
    char release[65] = "";
    bool filtered = seccomp_filtered();
    switch (-err) {
    case EPERM:
    case EACCES:
        fprintf(stderr,
                "coil: %s: operation not permitted. io_uring is disabled here: either the sysctl "
                "kernel.io_uring_disabled is set (set it to 0, or 1 and add this user to the "
                "group in kernel.io_uring_group), or a seccomp profile blocks it%s (Docker's "
                "default profile does). " SECCOMP_FIX "\n",
                what, filtered ? " (this process runs under a seccomp filter)" : "");
        break;
    case ENOSYS:
        if (kernel_has_uring(release, sizeof(release)))
            fprintf(stderr,
                    "coil: %s: function not implemented, although this kernel (%s) has io_uring: "
                    "a seccomp filter hides it%s (the default profiles of podman and containerd "
                    "answer ENOSYS). " SECCOMP_FIX "\n",
                    what, release, filtered ? " (this process runs under one)" : "");
        else
            fprintf(stderr,
                    "coil: %s: function not implemented. This kernel (%s) has no io_uring; coil "
                    "needs Linux 6.1 or newer.\n",
                    what, release);
        break;
    case ENOMEM:
        fprintf(stderr,
                "coil: %s: cannot allocate memory. io_uring rings are charged to the "
                "locked-memory limit (RLIMIT_MEMLOCK, shared by every process of this "
                "user), about 0.5 MiB per worker: raise it (`ulimit -l unlimited`, "
                "Docker's --ulimit memlock=-1:-1, LimitMEMLOCK= in systemd) or use "
                "fewer --workers.\n",
                what);
        break;
    case EINVAL:
        fprintf(stderr,
                "coil: %s: invalid argument. The kernel lacks an io_uring feature coil "
                "needs (multishot accept/recv, provided buffer rings: Linux 6.1+).\n",
                what);
        break;
    default:
        fprintf(stderr, "coil: %s: %s\n", what, strerror(-err));
    }
}

/* Tries io_uring once on the main thread, so a blocked io_uring is reported before anything
 * else, and learns whether IORING_OP_MSG_RING is there. */
static int probe_uring(struct coil_app *app)
{
    struct io_uring ring;
    int err = io_uring_queue_init(4, &ring, 0);
    if (err < 0) {
        explain_ring_error(err, "io_uring_setup");
        return err;
    }
    struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
    app->msg_ring = p && io_uring_opcode_supported(p, IORING_OP_MSG_RING);
    if (p)
        io_uring_free_probe(p);
    io_uring_queue_exit(&ring);
    return 0;
}

/* ---- run -------------------------------------------------------------------------------- */

static int start_workers(struct coil_app *app)
{
    unsigned ncpu = app->ncpus;
    for (unsigned i = 0; i < app->nworkers; i++) {
        struct coil__worker *w = aligned_alloc(COIL_CACHELINE, sizeof(*w));
        if (!w)
            return -ENOMEM;
        memset(w, 0, sizeof(*w));
        w->id = i;
        w->app = app;
        w->cpu = app->cpus ? app->cpus[i % ncpu] : -1;
        for (unsigned k = 0; k < NLISTENERS; k++) {
            w->lst[k].fd = app->listen_fds[i * NLISTENERS + k];
            app->listen_fds[i * NLISTENERS + k] = -1;
        }
        w->event_fd = -1;
        app->workers[i] = w;
    }
    for (unsigned i = 0; i < app->nworkers; i++) {
        int err =
            pthread_create(&app->workers[i]->thread, NULL, coil__worker_main, app->workers[i]);
        if (err) {
            fprintf(stderr, "coil: cannot start worker thread: %s\n", strerror(err));
            atomic_store(&app->abort_start, 1);
            atomic_store(&app->stopping, 2);
            return -err;
        }
        app->nthreads = i + 1;
    }
    while (atomic_load(&app->started) < app->nthreads) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    for (unsigned i = 0; i < app->nworkers; i++) {
        struct coil__worker *w = app->workers[i];
        if (w->start_err) {
            explain_ring_error(w->start_err, w->start_what ? w->start_what : "worker start");
            atomic_store(&app->abort_start, 1);
            atomic_store(&app->stopping, 2);
            return w->start_err;
        }
    }
    atomic_store(&app->go, 1);
    /* Announce only once every worker has run its start hook and is accepting. */
    while (atomic_load(&app->serving) < app->nworkers && atomic_load(&app->exited) == 0) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return 0;
}

/* Waits for the workers to finish, turning signals into drain (first) and force (second). */
static void wait_workers(struct coil_app *app)
{
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    while (atomic_load(&app->exited) < app->nthreads) {
        struct timespec ts = {0, 50 * 1000000};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGHUP) {
            for (struct coil__hook *h = app->hooks; h; h = h->next)
                if (h->reload)
                    h->reload(h->ud);
            continue;
        }
        if (sig != SIGINT && sig != SIGTERM)
            continue;
        if (atomic_load(&app->stopping) == 0) {
            coil__log("%s: draining (up to %llu ms); send it again to stop at once",
                      sig == SIGINT ? "SIGINT" : "SIGTERM",
                      (unsigned long long)app->cfg.drain_timeout_ms);
            if (!migrate_req())
                coil__log("connections the kernel has queued but coil has not accepted yet are "
                          "reset as it closes its listeners: `sysctl -w "
                          "net.ipv4.tcp_migrate_req=1` hands them to the coil replacing this "
                          "one on the same port (README: Restarts and upgrades)");
            atomic_store(&app->stopping, 1);
        } else {
            atomic_store(&app->stopping, 2);
        }
    }
}

static void app_free(struct coil_app *app)
{
    hooks_done(app, app->hooks); /* clean-up hooks an early failure left (no run hook ran) */
    coil__metrics_free(app);     /* its tables hang off the workers */
    coil__alog_free(app);
    coil__tls_free(app);
    coil__h2_free(app);
    coil__static_free(app);
    for (unsigned i = 0; app->workers && i < app->nworkers; i++)
        free(app->workers[i]);
    free(app->workers);
    if (app->listen_fds)
        for (unsigned i = 0; i < app->nworkers * NLISTENERS; i++)
            if (app->listen_fds[i] >= 0)
                close(app->listen_fds[i]);
    free(app->listen_fds);
    free(app->cpus);
    coil__chans_destroy(app);
    coil__chains_free(app);
    coil__router_destroy(app->router);
    coil__options_free(app);
    coil__upstreams_free(app);
    coil__proxies_free(app);
    while (app->hooks) {
        struct coil__hook *h = app->hooks;
        app->hooks = h->next;
        free(h);
    }
    free(app);
}

/* ---- the built-in modules --------------------------------------------------------------- */

static const struct builtin {
    const char *name;
    int (*setup)(struct coil_app *app);
    int (*install)(struct coil_app *app);
} builtins[] = {
    {"tls", coil__tls_setup, coil__tls_install},          /* a transport: no middleware */
    {"http2", coil__h2_setup, coil__h2_install},          /* a codec: no middleware */
    {"static", coil__static_setup, coil__static_install}, /* routes: no middleware */
    /* Outermost first: metrics and the access log see every answer, the others' included. */
    {"metrics", coil__metrics_setup, coil__metrics_install},
    {"access log", coil__alog_setup, coil__alog_install},
    {"request id", coil__reqid_setup, coil__reqid_install},
    {"cors", coil__cors_setup, coil__cors_install},
    {"ratelimit", coil__ratelimit_setup, coil__ratelimit_install},
#ifdef COIL_HAVE_AUTH
    {"auth", coil__auth_setup, coil__auth_install},
#endif
#ifdef COIL_HAVE_COMPRESS
    {"compress", coil__compress_setup, coil__compress_install},
#endif
};
#define NBUILTINS (sizeof(builtins) / sizeof(builtins[0]))

int coil__builtins_setup(struct coil_app *app)
{
    for (size_t i = 0; i < NBUILTINS; i++)
        if (builtins[i].setup(app) < 0)
            return -ENOMEM;
    return 0;
}

int coil__builtins_install(struct coil_app *app)
{
    for (size_t i = 0; i < NBUILTINS; i++)
        if (builtins[i].install(app) < 0)
            return -1;
    return 0;
}

/* The engine's modules, composed: who handles which completions and loop events. */
static void register_modules(void)
{
    coil__loop_init();
    coil__client_init(); /* its batch hook (resumed fetches) runs before tcp's flush */
    coil__tcp_init();
    coil__wait_init();
    coil__alog_init();
    coil__static_init();
}

int coil__modules_start(struct coil__worker *w)
{
    int err;
    coil__mw_worker_seed(w);
    if ((err = coil__tcp_start(w)) < 0 || (err = coil__request_start(w)) < 0 ||
        (err = coil__wait_start(w)) < 0 || (err = coil__client_start(w)) < 0 ||
        (err = coil__metrics_start(w)) < 0 || (err = coil__alog_start(w)) < 0 ||
        (err = coil__tls_start(w)) < 0 || (err = coil__static_start(w)) < 0)
        return err;
    return 0;
}

void coil__modules_stop(struct coil__worker *w)
{
    coil__static_stop(w);
    coil__tls_stop(w);
    coil__alog_stop(w);
    coil__metrics_stop(w);
    coil__replies_free(w);
    coil__client_stop(w);
    coil__wait_stop(w);
    coil__request_stop(w);
    coil__tcp_stop(w);
}

static int prepare(struct coil_app *app)
{
    app->ncpus = allowed_cpus(&app->cpus);
    app->nworkers = app->cfg.workers ? app->cfg.workers : app->ncpus;
    app->workers = calloc(app->nworkers, sizeof(*app->workers));
    app->listen_fds = malloc(sizeof(int) * app->nworkers * NLISTENERS);
    if (!app->workers || !app->listen_fds)
        return -ENOMEM;
    for (unsigned i = 0; i < app->nworkers * NLISTENERS; i++)
        app->listen_fds[i] = -1;
    register_modules();
    const char *fail = getenv("COIL_TEST_ALLOC_FAIL");
    if (fail && *fail)
        app->fail_alloc = strtoull(fail, NULL, 10);
    int err = probe_uring(app);
    if (err < 0)
        return err;
    if ((err = open_listeners(app)) < 0)
        return err;
    return coil__chans_create(app);
}

int coil_app_run(struct coil_app *app)
{
    int r = coil__config_parse(app, app->argc, app->argv);
    if (r != 0) {
        app_free(app);
        return r > 0 ? 0 : 2;
    }
    if (coil__proxies_apply(app) < 0 || coil__builtins_install(app) < 0) {
        app_free(app);
        return 2;
    }
    if (coil__chains_build(app) < 0) {
        fprintf(stderr, "coil: out of memory\n");
        app_free(app);
        return 1;
    }
    if (app->cfg.lim.max_body_bytes > app->body_cap)
        app->body_cap = app->cfg.lim.max_body_bytes;
    app->parse_lim = app->cfg.lim;
    /* The parser only rejects what no route accepts; each route applies its own limit. */
    app->parse_lim.max_body_bytes =
        app->stream_cap > app->body_cap ? app->stream_cap : app->body_cap;
    coil__app = app;
    signal(SIGPIPE, SIG_IGN);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* workers inherit it; only main takes signals */
    int status = 0;
    struct coil__hook *ran_to = NULL;
    bool hooks_ran = false;
    if (prepare(app) < 0) {
        status = 1;
    } else if (hooks_run(app, &ran_to) < 0) {
        status = 2; /* the hook said why */
        hooks_done(app, ran_to);
    } else if ((hooks_ran = true, start_workers(app) < 0)) {
        status = 1;
    } else {
        const char *b = app->cfg.bind;
        bool v6 = strchr(b, ':') != NULL;
        for (int i = 0; i < 2; i++) {
            int p = i ? coil__tls_port2(app) : coil__tls_port(app);
            if (p >= 0)
                coil__log("listening for TLS on %s%s%s:%d with %u workers", v6 ? "[" : "", b,
                          v6 ? "]" : "", p, app->nworkers);
        }
        if (!coil__tls_no_http(app))
            coil__log("listening on %s%s%s:%u with %u workers", v6 ? "[" : "", b, v6 ? "]" : "",
                      app->cfg.port, app->nworkers);
        if (coil__h2c_port(app) >= 0)
            coil__log("listening for h2c on %s%s%s:%d with %u workers", v6 ? "[" : "", b,
                      v6 ? "]" : "", coil__h2c_port(app), app->nworkers);
    }
    wait_workers(app);
    for (unsigned i = 0; i < app->nthreads; i++)
        pthread_join(app->workers[i]->thread, NULL);
    if (hooks_ran)
        hooks_done(app, NULL);
    if (status == 0) {
        struct coil_stats st;
        coil_stats_get(&st);
        coil__log("stopped: %llu requests, %llu connections, %llu jobs run",
                  (unsigned long long)st.requests, (unsigned long long)st.connections,
                  (unsigned long long)st.jobs_run);
    }
    coil__app = NULL;
    app_free(app);
    return status;
}

/* ---- worker-side helpers of coil.h ------------------------------------------------------ */

unsigned coil_worker_id(void)
{
    return coil__self ? coil__self->id : 0;
}

unsigned coil_worker_count(void)
{
    return coil__app ? coil__app->nworkers : 1;
}

bool coil_draining(void)
{
    return coil__app && atomic_load_explicit(&coil__app->stopping, memory_order_relaxed) != 0;
}

void *coil_malloc(size_t size)
{
    return coil__self ? coil__walloc(&coil__self->wa, size) : malloc(size);
}

void *coil_realloc(void *p, size_t size)
{
    return coil__self ? coil__wrealloc(&coil__self->wa, p, size) : realloc(p, size);
}

void coil_free(void *p)
{
    if (coil__self)
        coil__wfree(&coil__self->wa, p);
    else
        free(p);
}

void coil_stats_get(struct coil_stats *out)
{
    memset(out, 0, sizeof(*out));
    struct coil_app *app = coil__app;
    if (!app)
        return;
    for (unsigned i = 0; i < app->nworkers; i++) {
        struct coil__worker *w = app->workers[i];
        out->requests += atomic_load_explicit(&w->stats.requests, memory_order_relaxed);
        out->connections += atomic_load_explicit(&w->stats.connections, memory_order_relaxed);
        out->open += atomic_load_explicit(&w->stats.open, memory_order_relaxed);
        out->jobs_run += atomic_load_explicit(&w->stats.jobs_run, memory_order_relaxed);
        out->rejected += atomic_load_explicit(&w->stats.rejected, memory_order_relaxed);
        out->deferred += atomic_load_explicit(&w->stats.deferred, memory_order_relaxed);
        out->waiting += atomic_load_explicit(&w->stats.waiting, memory_order_relaxed);
        out->aborted += atomic_load_explicit(&w->stats.aborted, memory_order_relaxed);
        /* nalloc is the owner's plain counter: a torn read is impossible on 64-bit targets and
         * a stale one only makes the sum approximate, as documented. */
        out->heap_allocs += __atomic_load_n(&w->wa.nalloc, __ATOMIC_RELAXED);
    }
}
