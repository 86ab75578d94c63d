/* SPDX-License-Identifier: MIT */
/*
 * main.c: coil-load's command line. Parses flags (Go style, as vegeta's: -rate 100, also
 * --rate=100), reads the targets, resolves the server, splits connections and the schedule
 * over pinned worker threads, prints a progress line once a second when stderr is a terminal,
 * and writes the merged report (text or JSON) and optionally the .hgrm distribution.
 * Exit status: 0 after a run (its errors are in the report), 2 for bad flags or targets, 1 if
 * the workers could not start.
 */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "load.h"

#define MAX_EXTRA 64

struct opts {
    struct load_config cfg;
    const char *url;
    const char *method;
    const char *targets_file;
    const char *body_file;
    const char *format;
    const char *hist_file;
    const char *out_file;
    bool quiet;
    struct load_header extra[MAX_EXTRA];
    size_t nextra;
};

static void usage(FILE *f)
{
    fputs("usage: coil-load [attack] [flags] [URL]\n"
          "Sends HTTP/1.1 requests at a fixed rate (open loop) or as fast as possible, and\n"
          "reports latency measured from each request's intended send time.\n\n"
          "  -rate R          requests per second over all connections (default 50);\n"
          "                   0 or -max: closed loop, as fast as possible\n"
          "  -duration D      how long to send (default 10s; 500ms, 3s, 1m)\n"
          "  -connections N   connections (default 64)\n"
          "  -pipeline N      requests in flight per connection (default 1)\n"
          "  -timeout D       a request unanswered after D is an error (default 30s)\n"
          "  -method M        method for the URL form (default GET)\n"
          "  -H 'Name: value' header for every request (repeatable)\n"
          "  -body @FILE      body for requests that have none\n"
          "  -targets FILE    requests in vegeta's HTTP format, sent round-robin\n"
          "  -workers N       threads, each pinned to a CPU (default 1)\n"
          "  -format F        report format: text (default) or json\n"
          "  -hist FILE       write the latency distribution (HdrHistogram .hgrm)\n"
          "  -o FILE          write the report to FILE (default: standard output)\n"
          "  -quiet           no progress line\n",
          f);
}

static int bad(const char *what, const char *val)
{
    fprintf(stderr, "coil-load: %s: '%s'\n", what, val ? val : "");
    return -EINVAL;
}

static int parse_dur(const char *s, uint64_t *ns)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0 || !isfinite(v))
        return -EINVAL;
    double mul = !strcmp(end, "ns")                         ? 1
                 : !strcmp(end, "us") || !strcmp(end, "µs") ? 1e3
                 : !strcmp(end, "ms")                       ? 1e6
                 : !strcmp(end, "s") || !*end               ? 1e9
                 : !strcmp(end, "m")                        ? 60e9
                 : !strcmp(end, "h")                        ? 3600e9
                                                            : -1;
    if (mul < 0)
        return -EINVAL;
    *ns = (uint64_t)(v * mul);
    return 0;
}

static int parse_uint(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || end == s || *end || *s == '-' || v < min || v > max)
        return -EINVAL;
    *out = (uint32_t)v;
    return 0;
}

static int add_header(struct opts *o, const char *h)
{
    const char *colon = strchr(h, ':');
    if (!colon || colon == h || o->nextra == MAX_EXTRA)
        return bad("-H needs 'Name: value'", h);
    const char *v = colon + 1;
    while (*v == ' ' || *v == '\t')
        v++;
    o->extra[o->nextra].name = strndup(h, (size_t)(colon - h));
    o->extra[o->nextra].value = strdup(v);
    o->nextra++;
    return 0;
}

/* One flag with its value. -EINVAL after a message. */
static int flag(struct opts *o, const char *name, const char *val)
{
    struct load_config *c = &o->cfg;
    uint32_t u;
    if (!strcmp(name, "rate")) {
        char *end;
        c->rate = strtod(val, &end);
        if (end == val || *end || c->rate < 0 || !isfinite(c->rate))
            return bad("-rate needs a number of requests per second", val);
    } else if (!strcmp(name, "duration")) {
        if (parse_dur(val, &c->duration_ns) < 0 || c->duration_ns == 0)
            return bad("-duration needs a duration such as 10s", val);
    } else if (!strcmp(name, "timeout")) {
        if (parse_dur(val, &c->timeout_ns) < 0 || c->timeout_ns == 0)
            return bad("-timeout needs a duration such as 30s", val);
    } else if (!strcmp(name, "connections")) {
        if (parse_uint(val, 1, 1000000, &c->connections) < 0)
            return bad("-connections needs a number from 1", val);
    } else if (!strcmp(name, "pipeline")) {
        if (parse_uint(val, 1, 4096, &c->pipeline) < 0)
            return bad("-pipeline needs a number from 1 to 4096", val);
    } else if (!strcmp(name, "workers")) {
        if (parse_uint(val, 1, 1024, &u) < 0)
            return bad("-workers needs a number from 1 to 1024", val);
        c->workers = u;
    } else if (!strcmp(name, "method")) {
        o->method = val;
    } else if (!strcmp(name, "H") || !strcmp(name, "header")) {
        return add_header(o, val);
    } else if (!strcmp(name, "body")) {
        if (val[0] != '@' || !val[1])
            return bad("-body needs @FILE", val);
        o->body_file = val + 1;
    } else if (!strcmp(name, "targets")) {
        o->targets_file = val;
    } else if (!strcmp(name, "format")) {
        if (strcmp(val, "text") && strcmp(val, "json"))
            return bad("-format is text or json", val);
        o->format = val;
    } else if (!strcmp(name, "hist")) {
        o->hist_file = val;
    } else if (!strcmp(name, "o") || !strcmp(name, "output")) {
        o->out_file = val;
    } else {
        return bad("unknown flag", name);
    }
    return 0;
}

static int parse_args(struct opts *o, int argc, char **argv)
{
    int i = 1;
    if (i < argc && !strcmp(argv[i], "attack"))
        i++;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-') {
            if (o->url)
                return bad("more than one URL", a);
            o->url = a;
            continue;
        }
        const char *name = a + (a[1] == '-' ? 2 : 1);
        if (!strcmp(name, "help") || !strcmp(name, "h")) {
            usage(stdout);
            exit(0);
        }
        if (!strcmp(name, "max")) {
            o->cfg.rate = 0;
            continue;
        }
        if (!strcmp(name, "quiet")) {
            o->quiet = true;
            continue;
        }
        char nbuf[32];
        const char *eq = strchr(name, '='), *val;
        if (eq) {
            snprintf(nbuf, sizeof(nbuf), "%.*s", (int)(eq - name), name);
            name = nbuf;
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            return bad("flag needs a value", a);
        }
        if (flag(o, name, val) < 0)
            return -EINVAL;
    }
    return 0;
}

static int load_targets(struct opts *o)
{
    char err[512] = "";
    int rc;
    if (o->targets_file && o->url)
        return bad("give either a URL or -targets, not both", o->url);
    if (o->targets_file)
        rc = load_targets_parse_file(&o->cfg.targets, o->targets_file, err, sizeof(err));
    else if (o->url)
        rc = load_targets_add_url(&o->cfg.targets, o->method, o->url, err, sizeof(err));
    else
        return bad("no target: give a URL or -targets FILE", "");
    if (rc == 0)
        rc = load_targets_finish(&o->cfg.targets, o->extra, o->nextra, o->body_file, err,
                                 sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "coil-load: %s\n", err);
        return rc;
    }
    return 0;
}

static int resolve(struct load_config *c)
{
    char host[256], port[8];
    const char *h = c->targets.host;
    size_t n = strlen(h);
    if (h[0] == '[' && n > 2 && h[n - 1] == ']')
        snprintf(host, sizeof(host), "%.*s", (int)(n - 2), h + 1);
    else
        snprintf(host, sizeof(host), "%s", h);
    snprintf(port, sizeof(port), "%u", c->targets.port);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc != 0) {
        fprintf(stderr, "coil-load: cannot resolve '%s': %s\n", host, gai_strerror(rc));
        return -EINVAL;
    }
    memcpy(&c->addr, res->ai_addr, res->ai_addrlen);
    c->addr_len = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Pins worker i to the i-th CPU this process may use. */
static int cpu_for(unsigned i)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) != 0)
        return -1;
    int n = CPU_COUNT(&set), k = 0;
    for (int c = 0; c < CPU_SETSIZE; c++)
        if (CPU_ISSET(c, &set) && (unsigned)k++ == i % (unsigned)n)
            return c;
    return -1;
}

static void progress(struct load_worker *ws, unsigned n, uint64_t t0, uint64_t *last_sent,
                     uint64_t *last_t)
{
    uint64_t sent = 0, recv = 0, failed = 0, now = load_now_ns();
    for (unsigned i = 0; i < n; i++) {
        sent += atomic_load_explicit(&ws[i].sent, memory_order_relaxed);
        recv += atomic_load_explicit(&ws[i].received, memory_order_relaxed);
        failed += atomic_load_explicit(&ws[i].failed, memory_order_relaxed);
    }
    double dt = (double)(now - *last_t) / 1e9;
    fprintf(stderr, "\r[%5.1fs] sent %llu  received %llu  errors %llu  rate %.0f/s   ",
            (double)(now - t0) / 1e9, (unsigned long long)sent, (unsigned long long)recv,
            (unsigned long long)failed, dt > 0 ? (double)(sent - *last_sent) / dt : 0.0);
    *last_sent = sent;
    *last_t = now;
}

static int run(struct opts *o, struct load_result *total)
{
    struct load_config *c = &o->cfg;
    unsigned nw = c->workers;
    if (c->connections < nw)
        nw = c->workers = c->connections;
    struct load_worker *ws = calloc(nw, sizeof(*ws));
    _Atomic uint64_t start_at = 0;
    uint64_t reqs = c->rate > 0 ? (uint64_t)llround(c->rate * (double)c->duration_ns / 1e9) : 0;
    for (unsigned i = 0; i < nw; i++) {
        struct load_worker *w = &ws[i];
        w->id = i;
        w->cpu = cpu_for(i);
        w->cfg = c;
        w->nconns = c->connections / nw + (i < c->connections % nw);
        w->nrequests = reqs / nw + (i < reqs % nw);
        w->rate = c->rate / nw;
        w->start_at = &start_at;
        pthread_create(&w->thread, NULL, load_worker_main, w);
    }
    for (unsigned i = 0; i < nw; i++)
        while (!atomic_load(&ws[i].ready))
            usleep(200);
    int err = 0;
    for (unsigned i = 0; i < nw; i++)
        if (ws[i].err && !err)
            err = ws[i].err;
    if (err) {
        fprintf(stderr, "coil-load: io_uring set-up failed: %s\n", strerror(-err));
        atomic_store(&start_at, UINT64_MAX);
    } else {
        struct timespec real;
        clock_gettime(CLOCK_REALTIME, &real);
        uint64_t t0 = load_now_ns() + 2000000; /* every worker starts on the same tick */
        total->start_unix_ns = (int64_t)real.tv_sec * 1000000000 + real.tv_nsec + 2000000;
        atomic_store(&start_at, t0);
        bool show = !o->quiet && isatty(2) && c->duration_ns >= 3000000000ull;
        uint64_t last_sent = 0, last_t = t0;
        bool *joined = calloc(nw, sizeof(bool));
        unsigned done = 0;
        while (done < nw) {
            usleep(show ? 1000000 : 50000);
            if (show)
                progress(ws, nw, t0, &last_sent, &last_t);
            for (unsigned i = 0; i < nw; i++)
                if (!joined[i] && pthread_tryjoin_np(ws[i].thread, NULL) == 0) {
                    joined[i] = true;
                    done++;
                }
        }
        free(joined);
        if (show)
            fputc('\n', stderr);
    }
    for (unsigned i = 0; i < nw; i++) {
        if (err)
            pthread_join(ws[i].thread, NULL);
        int64_t start = total->start_unix_ns;
        load_result_merge(total, &ws[i].result);
        total->start_unix_ns = start;
    }
    total->target_rate = c->rate;
    free(ws);
    return err ? -1 : 0;
}

/* The report to stdout or -o, then the .hgrm file. 0, or 1 if a file cannot be written. */
static int write_reports(const struct opts *o, const struct load_result *total)
{
    FILE *out = stdout;
    if (o->out_file && !(out = fopen(o->out_file, "w"))) {
        perror(o->out_file);
        return 1;
    }
    if (!strcmp(o->format, "json"))
        load_report_json(total, out);
    else
        load_report_text(total, out);
    if (out != stdout)
        fclose(out);
    if (o->hist_file) {
        FILE *h = fopen(o->hist_file, "w");
        if (!h) {
            perror(o->hist_file);
            return 1;
        }
        int err = load_hist_write_hgrm(&total->hist, h);
        fclose(h);
        if (err < 0) {
            fprintf(stderr, "coil-load: %s: %s\n", o->hist_file, strerror(-err));
            return 1;
        }
    }
    return 0;
}

static void free_opts(struct opts *o)
{
    load_targets_free(&o->cfg.targets);
    for (size_t i = 0; i < o->nextra; i++) {
        free(o->extra[i].name);
        free(o->extra[i].value);
    }
}

int main(int argc, char **argv)
{
    struct opts o;
    memset(&o, 0, sizeof(o));
    o.cfg.rate = 50;
    o.cfg.duration_ns = 10000000000ull;
    o.cfg.connections = 64;
    o.cfg.pipeline = 1;
    o.cfg.timeout_ns = 30000000000ull;
    o.cfg.workers = 1;
    o.method = "GET";
    o.format = "text";
    if (parse_args(&o, argc, argv) < 0 || load_targets(&o) < 0 || resolve(&o.cfg) < 0) {
        fprintf(stderr, "Try 'coil-load -help'.\n");
        free_opts(&o);
        return 2;
    }
    static struct load_result total; /* large: the histogram */
    load_result_init(&total);
    int status = run(&o, &total) < 0 ? 1 : write_reports(&o, &total);
    free_opts(&o);
    return status;
}
