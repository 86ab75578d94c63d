/* SPDX-License-Identifier: MIT */
/*
 * hsload: one new TLS connection per request, for perf/tls's handshake cases.
 *
 *   hsload -p PORT [-a 127.0.0.1] [-c 64] [-d SECS] [-u PATH] [-n SNI] [-r] [-2]
 *
 * Keeps -c connections going at once (non-blocking, one epoll loop, one thread). Each one
 * connects, makes a TLS handshake (TLS 1.3 only; -2: TLS 1.2 only) offering ALPN http/1.1 and
 * SNI -n (default localhost), sends "GET PATH HTTP/1.1" with "Connection: close", reads the
 * answer (Content-Length, or up to the end of the connection), then reads on until the
 * server closes (close_notify or a bare end of the connection; anything else is an error),
 * closes and starts over. Without -r every handshake is a full one: a fresh SSL object, no
 * session offered. With -r each connection offers the session (ticket) its predecessor in the
 * same slot got, so after each slot's first connection every handshake can be a resumption.
 * Certificates are not verified, nor their chain built (self-signed in perf/tls).
 *
 * Runs -d seconds (default 5) and counts the connections whose answer was complete by then;
 * those still open at the end are dropped (as wrk drops its requests in flight). Latency: from
 * connect() to the answer's last byte. A connection not done within 10 s is an error.
 *
 * Prints "metric<TAB>value" lines on stdout, the first "hsload<TAB>1" (what perf/tls.d/
 * report.py looks for): connections, rps (connections per second), p50_us, p90_us, p99_us,
 * max_us, non2xx, errors, resumed, tls13, tls12, alpn_http11, close_notify, bare_eof,
 * bytes_read, tickets (NewSessionTicket messages received), and a summary with the first few
 * errors on stderr. Exit status 1 if any error was seen (perf/tls reads the counts anyway), 2
 * if it could not run.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum st { S_IDLE, S_CONNECTING, S_HANDSHAKE, S_SEND, S_HEAD, S_BODY, S_CLOSING };

struct slot {
    int fd;
    enum st st;
    SSL *ssl;
    SSL_SESSION *sess; /* -r: what the previous connection of this slot got */
    uint64_t t0;       /* connect() */
    size_t sent;
    size_t hlen;
    char head[4096];
    long long clen; /* -1: up to the end of the connection */
    long long got;
    int status;
    unsigned tickets; /* session tickets (new sessions) received */
    bool counted;
};

#define CONN_TIMEOUT_NS (10 * 1000000000ull)

static const char *addr = "127.0.0.1", *path = "/", *sni = "localhost";
static int port, nconns = 64, secs = 5;
static bool resume, tls12;
static SSL_CTX *ctx;
static int ep;
static char req[1024];
static size_t req_len;
static uint64_t t_end, connections, non2xx, errors, resumed, n_tls13, n_tls12, alpn_ok,
    close_notify, bare_eof, bytes_read, tickets;
static uint32_t *lat; /* µs, one per connection counted */
static size_t nlat, cap_lat;
static int errors_shown;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("hsload: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* An error on a connection: counted (if within the run), the first few shown. */
static void fail(struct slot *s, const char *what)
{
    if (now_ns() >= t_end)
        return; /* cut at the end: not an error */
    errors++;
    if (errors_shown++ < 5) {
        unsigned long e = ERR_peek_last_error();
        char buf[256] = "";
        if (e)
            ERR_error_string_n(e, buf, sizeof buf);
        fprintf(stderr, "hsload: connection error (state %d): %s%s%s\n", (int)s->st, what,
                buf[0] ? ": " : "", buf);
    }
}

static void release(struct slot *s, bool keep_session)
{
    if (s->counted)
        tickets += s->tickets;
    s->counted = false;
    if (s->ssl) {
        if (keep_session && resume) {
            /* Ended cleanly: said so, else SSL_free marks the session not resumable. */
            SSL_set_shutdown(s->ssl, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
            SSL_SESSION *n = SSL_get1_session(s->ssl);
            if (n && SSL_SESSION_is_resumable(n)) {
                if (s->sess)
                    SSL_SESSION_free(s->sess);
                s->sess = n;
            } else if (n) {
                SSL_SESSION_free(n);
            }
        }
        SSL_free(s->ssl);
        s->ssl = NULL;
    }
    if (s->fd >= 0) {
        close(s->fd); /* also leaves the epoll set */
        s->fd = -1;
    }
    ERR_clear_error();
    s->st = S_IDLE;
}

static void watch(struct slot *s, uint32_t events, int op)
{
    struct epoll_event ev = {.events = events, .data.ptr = s};
    if (epoll_ctl(ep, op, s->fd, &ev) != 0)
        die("epoll_ctl: %s", strerror(errno));
}

static void start(struct slot *s)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    int one = 1;
    inet_pton(AF_INET, addr, &sa.sin_addr);
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        die("socket: %s", strerror(errno));
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->t0 = now_ns();
    s->sent = s->hlen = 0;
    s->clen = -1;
    s->got = 0;
    s->status = 0;
    s->tickets = 0;
    s->counted = false;
    s->st = S_CONNECTING;
    if (connect(s->fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS) {
        fail(s, strerror(errno));
        release(s, false);
        return;
    }
    watch(s, EPOLLOUT, EPOLL_CTL_ADD);
}

/* The answer's head is complete in s->head (s->hlen bytes up to and with the blank line). */
static void parse_head(struct slot *s, size_t end)
{
    s->head[end - 1] = 0;
    s->status = strncmp(s->head, "HTTP/1.", 7) == 0 ? atoi(s->head + 9) : 0;
    for (char *l = strstr(s->head, "\r\n"); l; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, "content-length:", 15) == 0)
            s->clen = atoll(l + 17);
}

static void counted(struct slot *s)
{
    uint64_t t = now_ns();
    if (t >= t_end)
        return;
    connections++;
    s->counted = true;
    if (s->status < 200 || s->status > 299)
        non2xx++;
    if (nlat == cap_lat) {
        cap_lat = cap_lat ? 2 * cap_lat : 65536;
        lat = realloc(lat, cap_lat * sizeof *lat);
        if (!lat)
            die("out of memory");
    }
    lat[nlat++] = (uint32_t)((t - s->t0) / 1000);
    if (SSL_session_reused(s->ssl))
        resumed++;
    if (SSL_version(s->ssl) == TLS1_3_VERSION)
        n_tls13++;
    else if (SSL_version(s->ssl) == TLS1_2_VERSION)
        n_tls12++;
    const unsigned char *alpn;
    unsigned alen;
    SSL_get0_alpn_selected(s->ssl, &alpn, &alen);
    if (alen == 8 && memcmp(alpn, "http/1.1", 8) == 0)
        alpn_ok++;
}

/* SSL_read's end: 1 when the connection ended cleanly (close_notify or a bare EOF). */
static int ended(struct slot *s, int r)
{
    int e = SSL_get_error(s->ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN) {
        if (now_ns() < t_end)
            close_notify++;
        return 1;
    }
    if (e == SSL_ERROR_SSL &&
        ERR_GET_REASON(ERR_peek_last_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
        if (now_ns() < t_end)
            bare_eof++;
        return 1;
    }
    return 0;
}

/* Drives a slot as far as it goes without blocking. */
static void step(struct slot *s)
{
    for (;;) {
        int r, e;
        switch (s->st) {
        case S_IDLE:
            return;
        case S_CONNECTING: {
            int err = 0;
            socklen_t len = sizeof err;
            getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
            if (err) {
                fail(s, strerror(err));
                release(s, false);
                return;
            }
            s->ssl = SSL_new(ctx);
            if (!s->ssl)
                die("SSL_new failed");
            SSL_set_fd(s->ssl, s->fd);
            SSL_set_app_data(s->ssl, s);
            SSL_set_tlsext_host_name(s->ssl, sni);
            if (resume && s->sess)
                SSL_set_session(s->ssl, s->sess);
            s->st = S_HANDSHAKE;
            continue;
        }
        case S_HANDSHAKE:
            r = SSL_connect(s->ssl);
            if (r == 1) {
                s->st = S_SEND;
                continue;
            }
            e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                watch(s, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT, EPOLL_CTL_MOD);
                return;
            }
            fail(s, "handshake failed");
            release(s, false);
            return;
        case S_SEND:
            r = SSL_write(s->ssl, req + s->sent, (int)(req_len - s->sent));
            if (r > 0) {
                s->sent += (size_t)r;
                if (s->sent == req_len)
                    s->st = S_HEAD;
                continue;
            }
            e = SSL_get_error(s->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                watch(s, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT, EPOLL_CTL_MOD);
                return;
            }
            fail(s, "write failed");
            release(s, false);
            return;
        case S_HEAD:
        case S_BODY:
        case S_CLOSING: {
            char buf[16384];
            r = SSL_read(s->ssl, buf, sizeof buf);
            if (r <= 0) {
                e = SSL_get_error(s->ssl, r);
                if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                    watch(s, e == SSL_ERROR_WANT_READ ? EPOLLIN : EPOLLOUT, EPOLL_CTL_MOD);
                    return;
                }
                if (ended(s, r) && (s->st == S_CLOSING || (s->st == S_BODY && s->clen < 0))) {
                    if (s->st == S_BODY)
                        counted(s);
                    release(s, true);
                    return;
                }
                fail(s, s->st == S_CLOSING ? "bad end of the connection"
                                           : "connection ended before the answer did");
                release(s, false);
                return;
            }
            if (now_ns() < t_end)
                bytes_read += (uint64_t)r;
            if (s->st == S_CLOSING) {
                fail(s, "more bytes after the answer (Connection: close)");
                release(s, false);
                return;
            }
            if (s->st == S_HEAD) {
                size_t n =
                    (size_t)r < sizeof s->head - s->hlen ? (size_t)r : sizeof s->head - s->hlen;
                memcpy(s->head + s->hlen, buf, n);
                size_t old = s->hlen;
                s->hlen += n;
                char *end = memmem(s->head, s->hlen, "\r\n\r\n", 4);
                if (!end) {
                    if (s->hlen == sizeof s->head) {
                        fail(s, "answer head too long");
                        release(s, false);
                        return;
                    }
                    continue;
                }
                size_t used = (size_t)(end + 4 - s->head) - old; /* of buf */
                parse_head(s, (size_t)(end + 4 - s->head));
                s->st = S_BODY;
                r -= (int)used;
            }
            s->got += r;
            if (s->clen >= 0 && s->got >= s->clen) {
                if (s->got > s->clen) {
                    fail(s, "more bytes than Content-Length");
                    release(s, false);
                    return;
                }
                counted(s);
                s->st = S_CLOSING;
            }
            continue;
        }
        }
    }
}

/* Counts the session tickets (NewSessionTicket messages) a connection receives. Only watches:
 * a client session cache with a new-session callback instead changes which sessions OpenSSL
 * offers again (with H2O 2.2, every other -r handshake was then a full one). */
static void on_msg(int write_p, int version, int content_type, const void *buf, size_t len,
                   SSL *ssl, void *arg)
{
    (void)version;
    (void)arg;
    if (!write_p && content_type == SSL3_RT_HANDSHAKE && len > 0 &&
        *(const unsigned char *)buf == SSL3_MT_NEWSESSION_TICKET)
        ((struct slot *)SSL_get_app_data(ssl))->tickets++;
}

/* No chain building at all: the certificate is not checked (self-signed in perf/tls). */
static int accept_any(X509_STORE_CTX *x, void *arg)
{
    (void)x;
    (void)arg;
    return 1;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static uint32_t pct(double q)
{
    if (!nlat)
        return 0;
    size_t i = (size_t)(q * (double)(nlat - 1) + 0.5);
    return lat[i];
}

int main(int argc, char **argv)
{
    int o;
    while ((o = getopt(argc, argv, "p:a:c:d:u:n:r2")) != -1) {
        switch (o) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'a':
            addr = optarg;
            break;
        case 'c':
            nconns = atoi(optarg);
            break;
        case 'd':
            secs = atoi(optarg);
            break;
        case 'u':
            path = optarg;
            break;
        case 'n':
            sni = optarg;
            break;
        case 'r':
            resume = true;
            break;
        case '2':
            tls12 = true;
            break;
        default:
            fprintf(stderr, "usage: hsload -p PORT [-a ADDR] [-c CONNS] [-d SECS] [-u PATH] "
                            "[-n SNI] [-r] [-2]\n");
            return 2;
        }
    }
    if (port <= 0 || port > 65535 || nconns < 1 || secs < 1)
        die("needs -p PORT, -c >= 1, -d >= 1");
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    req_len = (size_t)snprintf(req, sizeof req,
                               "GET %s HTTP/1.1\r\nHost: %s:%d\r\nConnection: close\r\n\r\n", path,
                               sni, port);
    if (req_len >= sizeof req)
        die("path too long");

    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx)
        die("SSL_CTX_new failed");
    int v = tls12 ? TLS1_2_VERSION : TLS1_3_VERSION;
    SSL_CTX_set_min_proto_version(ctx, v);
    SSL_CTX_set_max_proto_version(ctx, v);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
    SSL_CTX_set_cert_verify_callback(ctx, accept_any, NULL);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_msg_callback(ctx, on_msg);
    static const unsigned char alpn[] = "\x08http/1.1";
    if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1) != 0)
        die("SSL_CTX_set_alpn_protos failed");

    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        die("epoll_create1: %s", strerror(errno));
    struct slot *slots = calloc((size_t)nconns, sizeof *slots);
    if (!slots)
        die("out of memory");
    uint64_t t_start = now_ns();
    t_end = t_start + (uint64_t)secs * 1000000000ull;
    for (int i = 0; i < nconns; i++) {
        slots[i].fd = -1;
        start(&slots[i]);
    }
    struct epoll_event evs[256];
    uint64_t next_check = t_start + 100000000ull;
    for (;;) {
        int n = epoll_wait(ep, evs, 256, 100);
        if (n < 0 && errno != EINTR)
            die("epoll_wait: %s", strerror(errno));
        for (int i = 0; i < n; i++)
            step(evs[i].data.ptr);
        uint64_t t = now_ns();
        if (t >= t_end)
            break;
        if (t >= next_check) { /* stuck connections */
            next_check = t + 100000000ull;
            for (int i = 0; i < nconns; i++)
                if (slots[i].st != S_IDLE && t - slots[i].t0 > CONN_TIMEOUT_NS) {
                    fail(&slots[i], "no answer or end within 10 s");
                    release(&slots[i], false);
                }
        }
        for (int i = 0; i < nconns; i++)
            if (slots[i].st == S_IDLE)
                start(&slots[i]);
    }
    double wall = (double)(now_ns() - t_start) / 1e9;
    if (wall > secs)
        wall = secs;
    qsort(lat, nlat, sizeof *lat, cmp_u32);
    printf("hsload\t1\nconnections\t%llu\nrps\t%.6g\np50_us\t%u\np90_us\t%u\np99_us\t%u\n"
           "max_us\t%u\nnon2xx\t%llu\nerrors\t%llu\nresumed\t%llu\ntls13\t%llu\ntls12\t%llu\n"
           "alpn_http11\t%llu\nclose_notify\t%llu\nbare_eof\t%llu\nbytes_read\t%llu\n"
           "tickets\t%llu\n",
           (unsigned long long)connections, (double)connections / secs, pct(0.5), pct(0.9),
           pct(0.99), nlat ? lat[nlat - 1] : 0, (unsigned long long)non2xx,
           (unsigned long long)errors, (unsigned long long)resumed, (unsigned long long)n_tls13,
           (unsigned long long)n_tls12, (unsigned long long)alpn_ok,
           (unsigned long long)close_notify, (unsigned long long)bare_eof,
           (unsigned long long)bytes_read, (unsigned long long)tickets);
    fprintf(stderr,
            "hsload: %llu connections in %.1f s (%.0f/s), %llu resumed, %llu errors, "
            "p99 %u us\n",
            (unsigned long long)connections, wall, (double)connections / secs,
            (unsigned long long)resumed, (unsigned long long)errors, pct(0.99));
    for (int i = 0; i < nconns; i++) {
        release(&slots[i], false);
        if (slots[i].sess)
            SSL_SESSION_free(slots[i].sess);
    }
    free(slots);
    free(lat);
    SSL_CTX_free(ctx);
    return errors ? 1 : 0;
}
