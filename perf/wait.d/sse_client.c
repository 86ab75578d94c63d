/* SPDX-License-Identifier: MIT */
/*
 * sse_client: many Server-Sent Events clients at once, for perf/wait.
 *
 *   sse_client -p PORT [-a 127.0.0.1] [-c 1000] [-n N] [-e EVERY_MS] [-d SECS] [-P PATH]
 *
 * Opens -c connections (non-blocking, one epoll loop, one thread), sends each
 * "GET PATH?n=N&every=EVERY_MS" and reads the chunked text/event-stream answer, checking every
 * event byte for byte: event i (1, 2, ... n, in order) must be exactly
 * "id: i\ndata: {"n":i}\n\n", and the stream must end with the last chunk after event n.
 * It stops when every stream has ended, or -d seconds after the first request (then closes
 * what is still open: those streams count as cut, not as errors).
 *
 * Prints "metric<TAB>value" lines on stdout (events, events per second over the run and per
 * whole second, gaps between a stream's events beyond EVERY_MS, errors, ...) and a one-line
 * summary plus the first few errors on stderr. Exit status 1 if any error was seen.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum st { S_CONNECTING, S_HEAD, S_SIZE, S_DATA, S_DATA_CR, S_DATA_LF, S_TRAILER, S_DONE,
          S_FAILED };

struct conn {
    int fd;
    enum st st;
    uint32_t expect;     /* next event id */
    uint64_t chunk_left; /* bytes of the current chunk still to read */
    uint64_t t_req;      /* ns, request sent */
    uint64_t t_last;     /* ns, last event (or the request) */
    uint16_t hlen;       /* bytes in head[] / line[] */
    char head[1024];     /* response head, then the chunk-size line */
    uint16_t elen;
    char ev[96]; /* the event being received */
};

static uint32_t n_events = 10, every_ms = 1000, nconns = 1000;
static const char *path = "/events";
static uint64_t events, errors, bytes, streams_done, streams_cut, connected;
static uint64_t t0; /* first request sent */
static uint64_t now_ns(void);
#define MAX_SECS 3600
static uint64_t per_sec[MAX_SECS];
/* gap beyond EVERY_MS between consecutive events of a stream: log2 buckets of microseconds */
#define GAP_BUCKETS 64
static uint64_t gap_hist[GAP_BUCKETS], gap_n;
static uint64_t gap_max_ns;
static double *drifts; /* per finished stream: duration - n*every, ms */
static double *first_over; /* per stream: first event's wait beyond EVERY_MS, µs */
static uint64_t nfirst;
static uint64_t ndrifts;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void fail(struct conn *c, const char *fmt, ...)
{
    errors++;
    if (errors <= 5) {
        va_list ap;
        va_start(ap, fmt);
        fprintf(stderr, "sse_client: connection fd %d, %.3f s after the first request: ", c->fd,
                t0 ? (double)(now_ns() - t0) / 1e9 : 0.0);
        vfprintf(stderr, fmt, ap);
        fputc('\n', stderr);
        va_end(ap);
    }
    c->st = S_FAILED;
}

static void gap_record(uint64_t gap_ns, uint64_t every_ns)
{
    uint64_t over = gap_ns > every_ns ? gap_ns - every_ns : 0;
    uint64_t us = over / 1000;
    int b = 0;
    while (us) { /* bucket b holds [2^(b-1), 2^b) µs; bucket 0 is under 1 µs */
        us >>= 1;
        b++;
    }
    if (b >= GAP_BUCKETS)
        b = GAP_BUCKETS - 1;
    gap_hist[b]++;
    gap_n++;
    if (over > gap_max_ns)
        gap_max_ns = over;
}

/* Upper bound of the bucket holding quantile q, in µs. */
static double gap_quantile(double q)
{
    if (!gap_n)
        return 0;
    uint64_t want = (uint64_t)(q * (double)gap_n), seen = 0;
    if (want >= gap_n)
        want = gap_n - 1;
    for (int b = 0; b < GAP_BUCKETS; b++) {
        seen += gap_hist[b];
        if (seen > want) {
            double hi = b == 0 ? 1.0 : (double)(1ull << b), max = (double)gap_max_ns / 1e3;
            return hi < max ? hi : max;
        }
    }
    return (double)gap_max_ns / 1e3;
}

static void on_event(struct conn *c, uint64_t now)
{
    char want[96];
    int len = snprintf(want, sizeof(want), "id: %u\ndata: {\"n\":%u}\n\n", c->expect, c->expect);
    if (c->expect > n_events) {
        fail(c, "event after the last one (%u)", n_events);
        return;
    }
    if (c->elen != (uint16_t)len || memcmp(c->ev, want, (size_t)len) != 0) {
        fail(c, "event %u: got '%.*s'", c->expect, (int)c->elen, c->ev);
        return;
    }
    events++;
    uint64_t s = (now - t0) / 1000000000ull;
    if (s < MAX_SECS)
        per_sec[s]++;
    /* The first event's wait also holds the connection's set-up and the server's accept: it
     * is kept apart from the gaps between events. */
    if (c->expect == 1)
        first_over[nfirst++] = ((double)(now - c->t_req) - every_ms * 1e6) / 1e3;
    else
        gap_record(now - c->t_last, (uint64_t)every_ms * 1000000ull);
    c->t_last = now;
    c->expect++;
    c->elen = 0;
}

/* SSE bytes of a chunk. */
static void feed_sse(struct conn *c, const char *p, size_t n, uint64_t now)
{
    for (size_t i = 0; i < n && c->st != S_FAILED; i++) {
        if (c->elen >= sizeof(c->ev)) {
            fail(c, "event %u longer than %zu bytes", c->expect, sizeof(c->ev));
            return;
        }
        c->ev[c->elen++] = p[i];
        if (c->elen >= 2 && c->ev[c->elen - 1] == '\n' && c->ev[c->elen - 2] == '\n')
            on_event(c, now);
    }
}

static bool head_ok(struct conn *c)
{
    c->head[c->hlen] = 0;
    if (strncmp(c->head, "HTTP/1.1 200 ", 13) != 0) {
        char *eol = strstr(c->head, "\r\n");
        fail(c, "status line '%.*s'", eol ? (int)(eol - c->head) : 60, c->head);
        return false;
    }
    if (!strcasestr(c->head, "\r\nTransfer-Encoding: chunked\r\n")) {
        fail(c, "not chunked");
        return false;
    }
    if (!strcasestr(c->head, "\r\nContent-Type: text/event-stream")) {
        fail(c, "Content-Type is not text/event-stream");
        return false;
    }
    return true;
}

static void feed(struct conn *c, const char *p, size_t n, uint64_t now)
{
    size_t i = 0;
    while (i < n && c->st != S_FAILED && c->st != S_DONE) {
        switch (c->st) {
        case S_HEAD:
            if (c->hlen >= sizeof(c->head) - 1) {
                fail(c, "response head over %zu bytes", sizeof(c->head));
                return;
            }
            c->head[c->hlen++] = p[i++];
            if (c->hlen >= 4 && memcmp(c->head + c->hlen - 4, "\r\n\r\n", 4) == 0) {
                if (!head_ok(c))
                    return;
                c->st = S_SIZE;
                c->hlen = 0;
            }
            break;
        case S_SIZE:
        case S_TRAILER:
            if (c->hlen >= 64) {
                fail(c, "chunk-size line too long");
                return;
            }
            c->head[c->hlen++] = p[i++];
            if (c->hlen >= 2 && c->head[c->hlen - 2] == '\r' && c->head[c->hlen - 1] == '\n') {
                if (c->st == S_TRAILER) {
                    if (c->hlen != 2) {
                        fail(c, "trailer after the last chunk");
                        return;
                    }
                    if (c->expect != n_events + 1 || c->elen) {
                        fail(c, "stream ended after event %u of %u", c->expect - 1, n_events);
                        return;
                    }
                    c->st = S_DONE;
                    streams_done++;
                    if (ndrifts < nconns)
                        drifts[ndrifts++] = ((double)(now - c->t_req) -
                                             (double)n_events * every_ms * 1e6) / 1e6;
                    return;
                }
                c->head[c->hlen - 2] = 0;
                char *end;
                unsigned long long sz = strtoull(c->head, &end, 16);
                if (end == c->head || (*end && *end != ';')) {
                    fail(c, "bad chunk-size line '%s'", c->head);
                    return;
                }
                c->hlen = 0;
                c->chunk_left = sz;
                c->st = sz ? S_DATA : S_TRAILER;
            }
            break;
        case S_DATA: {
            size_t take = n - i < c->chunk_left ? n - i : (size_t)c->chunk_left;
            feed_sse(c, p + i, take, now);
            i += take;
            c->chunk_left -= take;
            if (!c->chunk_left && c->st == S_DATA)
                c->st = S_DATA_CR;
            break;
        }
        case S_DATA_CR:
        case S_DATA_LF:
            if (p[i++] != (c->st == S_DATA_CR ? '\r' : '\n')) {
                fail(c, "chunk not followed by CRLF");
                return;
            }
            c->st = c->st == S_DATA_CR ? S_DATA_LF : S_SIZE;
            break;
        default:
            return;
        }
    }
    if (i < n && c->st == S_DONE)
        fail(c, "%zu bytes after the end of the stream", n - i);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(void)
{
    fprintf(stderr, "usage: sse_client -p PORT [-a ADDR] [-c CONNS] [-n N] [-e EVERY_MS] "
                    "[-d SECS] [-P PATH]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *addr = "127.0.0.1";
    int port = 0, opt;
    double secs = 10;
    while ((opt = getopt(argc, argv, "a:p:c:n:e:d:P:")) != -1) {
        switch (opt) {
        case 'a': addr = optarg; break;
        case 'p': port = atoi(optarg); break;
        case 'c': nconns = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'n': n_events = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'e': every_ms = (uint32_t)strtoul(optarg, NULL, 10); break;
        case 'd': secs = atof(optarg); break;
        case 'P': path = optarg; break;
        default: usage();
        }
    }
    if (port <= 0 || nconns == 0 || n_events == 0 || secs <= 0 || secs >= MAX_SECS)
        usage();
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < nconns + 64) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (inet_pton(AF_INET, addr, &sa.sin_addr) != 1) {
        fprintf(stderr, "sse_client: bad address %s\n", addr);
        return 2;
    }
    char req[256];
    int reqlen = snprintf(req, sizeof(req), "GET %s?n=%u&every=%u HTTP/1.1\r\nHost: %s:%d\r\n"
                          "Accept: text/event-stream\r\n\r\n", path, n_events, every_ms, addr, port);
    struct conn *cs = calloc(nconns, sizeof(*cs));
    drifts = calloc(nconns, sizeof(*drifts));
    first_over = calloc(nconns, sizeof(*first_over));
    int ep = epoll_create1(0);
    if (!cs || !drifts || !first_over || ep < 0) {
        perror("sse_client");
        return 2;
    }
    uint64_t start = now_ns();
    for (uint32_t i = 0; i < nconns; i++) {
        struct conn *c = &cs[i];
        c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (c->fd < 0) {
            fprintf(stderr, "sse_client: socket: %s (connection %u)\n", strerror(errno), i);
            return 2;
        }
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        c->st = S_CONNECTING;
        c->expect = 1;
        if (connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
            fail(c, "connect: %s", strerror(errno));
            continue;
        }
        struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP, .data.u32 = i};
        epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev);
    }
    uint64_t deadline = 0, last_event_t = 0;
    uint64_t open = nconns - errors;
    static char buf[1 << 16];
    struct epoll_event evs[512];
    while (open) {
        uint64_t now = now_ns();
        if (deadline && now >= deadline)
            break;
        if (!deadline && now - start > 30000000000ull) {
            fprintf(stderr, "sse_client: not all connected within 30 s\n");
            break;
        }
        int wait_ms = deadline ? (int)((deadline - now) / 1000000 + 1) : 100;
        int k = epoll_wait(ep, evs, 512, wait_ms);
        now = now_ns();
        for (int j = 0; j < k; j++) {
            struct conn *c = &cs[evs[j].data.u32];
            if (c->st == S_CONNECTING) {
                int err = 0;
                socklen_t el = sizeof(err);
                getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
                if (err) {
                    fail(c, "connect: %s", strerror(err));
                } else if (!(evs[j].events & EPOLLOUT)) {
                    continue;
                } else if (write(c->fd, req, (size_t)reqlen) != reqlen) {
                    fail(c, "write of the request failed: %s", strerror(errno));
                } else {
                    connected++;
                    c->st = S_HEAD;
                    c->t_req = c->t_last = now;
                    if (!t0) {
                        t0 = now;
                        deadline = t0 + (uint64_t)(secs * 1e9);
                    }
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP,
                                             .data.u32 = evs[j].data.u32};
                    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
                }
                if (c->st == S_FAILED) {
                    close(c->fd);
                    open--;
                }
                continue;
            }
            if (c->st == S_DONE || c->st == S_FAILED)
                continue;
            for (;;) {
                ssize_t r = read(c->fd, buf, sizeof(buf));
                if (r > 0) {
                    bytes += (uint64_t)r;
                    uint64_t before = events;
                    feed(c, buf, (size_t)r, now);
                    if (events != before)
                        last_event_t = now;
                    if (c->st == S_DONE || c->st == S_FAILED)
                        break;
                    if ((size_t)r < sizeof(buf))
                        break;
                    continue;
                }
                if (r == 0)
                    fail(c, "closed by the server after event %u of %u", c->expect - 1, n_events);
                else if (errno != EAGAIN && errno != EINTR)
                    fail(c, "read: %s", strerror(errno));
                break;
            }
            if (c->st == S_DONE || c->st == S_FAILED) {
                epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                close(c->fd);
                open--;
            }
        }
    }
    uint64_t end = now_ns();
    for (uint32_t i = 0; i < nconns; i++) {
        struct conn *c = &cs[i];
        if (c->st != S_DONE && c->st != S_FAILED) {
            streams_cut++;
            close(c->fd);
        }
    }
    /* The run: from the first request to the last event if every stream ended, else to the
     * deadline. Per whole second: seconds 1 .. last-1 (the first holds the connecting). */
    uint64_t span = (streams_cut || !last_event_t) ? end - t0 : last_event_t - t0;
    if (!t0)
        span = 1;
    double span_s = (double)span / 1e9;
    uint64_t whole = span / 1000000000ull, nsec = 0;
    uint64_t secs_v[MAX_SECS];
    for (uint64_t s = 1; s + 1 <= whole && s < MAX_SECS; s++)
        secs_v[nsec++] = per_sec[s];
    qsort(secs_v, nsec, sizeof(secs_v[0]), cmp_u64);
    qsort(drifts, ndrifts, sizeof(drifts[0]), cmp_double);
    qsort(first_over, nfirst, sizeof(first_over[0]), cmp_double);
    printf("conns\t%u\n", nconns);
    printf("connected\t%llu\n", (unsigned long long)connected);
    printf("every_ms\t%u\n", every_ms);
    printf("n\t%u\n", n_events);
    printf("events\t%llu\n", (unsigned long long)events);
    printf("bytes\t%llu\n", (unsigned long long)bytes);
    printf("span_s\t%.6f\n", span_s);
    printf("events_per_s\t%.1f\n", (double)events / span_s);
    if (every_ms)
        printf("offered_events_per_s\t%.1f\n", nconns * 1000.0 / every_ms);
    if (nsec) {
        printf("per_sec_min\t%llu\n", (unsigned long long)secs_v[0]);
        printf("per_sec_median\t%llu\n", (unsigned long long)secs_v[nsec / 2]);
        printf("per_sec_max\t%llu\n", (unsigned long long)secs_v[nsec - 1]);
    }
    printf("gap_over_p50_us\t%.0f\n", gap_quantile(0.50));
    printf("gap_over_p99_us\t%.0f\n", gap_quantile(0.99));
    printf("gap_over_max_us\t%.0f\n", (double)gap_max_ns / 1e3);
    printf("streams_started\t%llu\n", (unsigned long long)nfirst); /* got event 1 */
    if (nfirst) {
        printf("first_over_p50_us\t%.0f\n", first_over[nfirst / 2]);
        printf("first_over_max_us\t%.0f\n", first_over[nfirst - 1]);
    }
    printf("streams_done\t%llu\n", (unsigned long long)streams_done);
    printf("streams_cut\t%llu\n", (unsigned long long)streams_cut);
    if (ndrifts) {
        printf("drift_median_ms\t%.3f\n", drifts[ndrifts / 2]);
        printf("drift_max_ms\t%.3f\n", drifts[ndrifts - 1]);
    }
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
    printf("client_cpu_s\t%.3f\n", cpu);
    printf("client_busy\t%.3f\n", cpu / ((double)(end - start) / 1e9));
    printf("errors\t%llu\n", (unsigned long long)errors);
    fprintf(stderr, "sse_client: %u conns, n=%u every=%u ms: %llu events in %.2f s = %.0f/s, "
                    "%llu streams done, %llu cut, %llu errors; per second:", nconns, n_events,
            every_ms, (unsigned long long)events, span_s, (double)events / span_s,
            (unsigned long long)streams_done, (unsigned long long)streams_cut,
            (unsigned long long)errors);
    for (uint64_t s = 0; s <= whole && s < MAX_SECS; s++)
        fprintf(stderr, " %llu", (unsigned long long)per_sec[s]);
    fputc('\n', stderr);
    return errors ? 1 : 0;
}
