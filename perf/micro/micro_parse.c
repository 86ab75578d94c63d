/* SPDX-License-Identifier: MIT */
/*
 * micro_parse: coil__http_parse_head (and coil__chunked_decode) over a corpus of requests as
 * real clients send them: wrk's bare GET, TechEmpower's plaintext request, a browser page load,
 * an API POST with a JSON body, a chunked upload, a conditional HEAD, a long query string,
 * ApacheBench's HTTP/1.0 keep-alive GET, and 16 GETs pipelined in one buffer. Each entry is
 * parsed the way conn.c does it (the whole received buffer handed over, the engine's default
 * limits, a 100-entry header array) and first checked field by field against what it must
 * give. The cost is per request; GB/s counts the bytes the parser (and decoder) looked at:
 * the head, plus the framed body for the chunked entry, not a Content-Length body it skips.
 * The chunked decoder works in place, so its entry restores the framed body with a memcpy
 * before each decode; that copy (a few ns for a few hundred bytes) is part of its figure.
 */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "http_parse.h"

#define MAX_HEADERS 100 /* the engine's default --max-headers */
#define PIPELINE 16

static const struct coil__http_limits limits = {
    .max_header_bytes = 8192, /* the engine's defaults: --max-header-bytes */
    .max_headers = MAX_HEADERS,
    .max_body_bytes = 1u << 20, /* --max-body-bytes */
};

static struct coil__http_header headers[MAX_HEADERS];

struct parse_case {
    const char *name;
    char *buf;         /* the bytes as received, 64-byte aligned like a pooled buffer */
    size_t len;        /* all of them: heads, a body, further pipelined requests */
    uint32_t nreq;     /* requests in buf, parsed one after the other */
    char *framed;      /* chunked: pristine copy of the framed body, restored before decoding */
    size_t framed_len; /* bytes in framed */
    size_t body_off;   /* chunked: where the body starts in buf */
    double bytes;      /* bytes examined per request (set by validation) */
    /* what every request in buf must parse to */
    const char *method, *path, *query; /* query "" when none */
    uint32_t nheaders;
    uint8_t minor;
    uint32_t flags;       /* exactly these COIL_HTTP_* */
    uint64_t content_len; /* with COIL_HTTP_HAS_LENGTH */
    const char *body;     /* chunked: the decoded body */
};

static char *aligned_copy(const char *s, size_t n)
{
    char *p = aligned_alloc(64, (n + 63) / 64 * 64);
    BENCH_REQUIRE(p != NULL, "out of memory");
    memcpy(p, s, n);
    return p;
}

static void set_input(struct parse_case *pc, const char *s, size_t n, uint32_t nreq)
{
    pc->buf = aligned_copy(s, n);
    pc->len = n;
    pc->nreq = nreq;
}

/* ---- the corpus ------------------------------------------------------------------------- */

/* What wrk sends with no -H: the request line and Host. */
#define WRK_GET "GET /pipeline HTTP/1.1\r\nHost: localhost:8080\r\n\r\n"

/* TechEmpower's plaintext test: wrk with the three -H options of its benchmark script. */
static const char tfb_plaintext[] =
    "GET /plaintext HTTP/1.1\r\n"
    "Host: tfb-server\r\n"
    "Accept: text/plain,text/html;q=0.9,application/xhtml+xml;q=0.9,application/xml;q=0.8,*/"
    "*;q=0.7\r\n"
    "Connection: keep-alive\r\n"
    "\r\n";

/* A page load from a current Chrome: 13 headers, 776 bytes, a cookie, fetch metadata. */
static const char browser_get[] =
    "GET /articles/2024/io-uring-http-servers?ref=homepage HTTP/1.1\r\n"
    "Host: www.example.com\r\n"
    "Connection: keep-alive\r\n"
    "sec-ch-ua: \"Chromium\";v=\"124\", \"Google Chrome\";v=\"124\", \"Not-A.Brand\";v=\"99\"\r\n"
    "Upgrade-Insecure-Requests: 1\r\n"
    "User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36\r\n"
    "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7\r\n"
    "Sec-Fetch-Site: same-origin\r\n"
    "Sec-Fetch-Mode: navigate\r\n"
    "Sec-Fetch-Dest: document\r\n"
    "Referer: https://www.example.com/\r\n"
    "Accept-Encoding: gzip, deflate, br, zstd\r\n"
    "Accept-Language: en-US,en;q=0.9,de;q=0.8\r\n"
    "Cookie: session=4f9c2a7d1e8b4c3a9f6e2d1c0b7a8e9f; theme=dark; "
    "_ga=GA1.2.1234567890.1700000000\r\n"
    "\r\n";

/* A mobile client creating an order: bearer token, request id, JSON body in the same read. */
static const char api_post_head[] =
    "POST /api/v1/orders HTTP/1.1\r\n"
    "Host: api.example.com\r\n"
    "User-Agent: okhttp/4.12.0\r\n"
    "Accept: application/json\r\n"
    "Content-Type: application/json; charset=utf-8\r\n"
    "Authorization: Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxODQyIiwiaWF0IjoxNz"
    "AwMDAwMDAwfQ.c2lnbmF0dXJlLXBsYWNlaG9sZGVyLXZhbHVlLTAwMQ\r\n"
    "X-Request-Id: 9b2e4f0a-3c1d-4e5f-8a7b-6c5d4e3f2a1b\r\n"
    "Content-Length: %zu\r\n"
    "Connection: keep-alive\r\n"
    "\r\n";
static const char api_post_body[] =
    "{\"customer_id\":1842,\"items\":[{\"sku\":\"WID-001\",\"qty\":2},"
    "{\"sku\":\"VAL-017\",\"qty\":1}],\"note\":\"leave at door\"}";

/* A log shipper streaming NDJSON: chunked, three chunks and the last-chunk. */
static const char chunked_head[] = "POST /ingest/logs HTTP/1.1\r\n"
                                   "Host: ingest.example.com\r\n"
                                   "User-Agent: fluent-bit/2.2.0\r\n"
                                   "Content-Type: application/x-ndjson\r\n"
                                   "Transfer-Encoding: chunked\r\n"
                                   "Connection: keep-alive\r\n"
                                   "\r\n";
static const char *const chunked_parts[] = {
    "{\"ts\":\"2024-05-07T10:00:00.123Z\",\"level\":\"info\",\"msg\":\"request done\","
    "\"path\":\"/api/v1/orders\",\"status\":201,\"ms\":3.2}\n",
    "{\"ts\":\"2024-05-07T10:00:00.456Z\",\"level\":\"warn\",\"msg\":\"slow upstream\","
    "\"upstream\":\"inventory\",\"ms\":412.9}\n",
    "{\"ts\":\"2024-05-07T10:00:01.001Z\",\"level\":\"info\",\"msg\":\"cache refresh\","
    "\"keys\":1834,\"ms\":12.5}\n",
};

/* A browser revalidating a cached script. */
static const char head_req[] = "HEAD /static/js/app.3f9c2a.js HTTP/1.1\r\n"
                               "Host: www.example.com\r\n"
                               "User-Agent: curl/7.88.1\r\n"
                               "Accept: */*\r\n"
                               "If-None-Match: \"5f3c-61a2b7c8d9e0f\"\r\n"
                               "If-Modified-Since: Tue, 07 May 2024 10:00:00 GMT\r\n"
                               "\r\n";

/* A search page with filters and campaign parameters: a ~480-byte target. */
#define LONG_QUERY                                                                                 \
    "q=io_uring+http+server+benchmark&lang=en&page=3&per_page=50&sort=relevance&order=desc"        \
    "&filters=category%3Aengineering%2Cyear%3A2024%2Ctype%3Aarticle%2Cauthor%3Ajane.doe"           \
    "&fields=id%2Ctitle%2Csummary%2Curl%2Cpublished_at%2Ctags&highlight=true&facets=year%2Ctype"   \
    "&utm_source=newsletter&utm_medium=email&utm_campaign=spring_launch_2024&utm_content=cta_2"    \
    "&session_ref=a8f3e2d1c0b9a8f7e6d5c4b3a2918070&exp=search_v2_ranking%3Dtreatment_b&tz=Europe"  \
    "%2FBerlin"
static const char long_query[] = "GET /search?" LONG_QUERY " HTTP/1.1\r\n"
                                 "Host: www.example.com\r\n"
                                 "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) "
                                 "Gecko/20100101 Firefox/125.0\r\n"
                                 "Accept: application/json\r\n"
                                 "\r\n";

/* ApacheBench -k: HTTP/1.0 with an explicit keep-alive. */
static const char http10[] = "GET /index.html HTTP/1.0\r\n"
                             "Connection: Keep-Alive\r\n"
                             "Host: 127.0.0.1:8080\r\n"
                             "User-Agent: ApacheBench/2.3\r\n"
                             "Accept: */*\r\n"
                             "\r\n";

enum { KA = COIL_HTTP_KEEP_ALIVE };
enum { WRK, TFB, BROWSER, API_POST, CHUNKED, HEAD_REQ, QUERY, HTTP10, PIPELINED, NCASES };

/* name, then what each request must parse to: method, path, query, headers, minor, flags. */
#define CASE(n, m, p, q, nh, mi, fl)                                                               \
    {                                                                                              \
        .name = n, .method = m, .path = p, .query = q, .nheaders = nh, .minor = mi, .flags = fl    \
    }

static struct parse_case cases[NCASES] = {
    [WRK] = CASE("parse/wrk-minimal", "GET", "/pipeline", "", 1, 1, KA),
    [TFB] = CASE("parse/tfb-plaintext", "GET", "/plaintext", "", 3, 1, KA),
    [BROWSER] = CASE("parse/browser-get", "GET", "/articles/2024/io-uring-http-servers",
                     "ref=homepage", 13, 1, KA),
    [API_POST] =
        CASE("parse/api-post-json", "POST", "/api/v1/orders", "", 8, 1, KA | COIL_HTTP_HAS_LENGTH),
    [CHUNKED] =
        CASE("parse/chunked-post", "POST", "/ingest/logs", "", 5, 1, KA | COIL_HTTP_CHUNKED),
    [HEAD_REQ] = CASE("parse/head-conditional", "HEAD", "/static/js/app.3f9c2a.js", "", 5, 1,
                      KA | COIL_HTTP_HEAD),
    [QUERY] = CASE("parse/long-query", "GET", "/search", LONG_QUERY, 3, 1, KA),
    [HTTP10] = CASE("parse/http10-ab", "GET", "/index.html", "", 4, 0, KA),
    [PIPELINED] = CASE("parse/pipelined-16", "GET", "/pipeline", "", 1, 1, KA),
};

static char *chunked_body(size_t *framed_len, char **decoded)
{
    static char framed[2048], plain[2048];
    size_t f = 0, p = 0;
    for (size_t i = 0; i < sizeof(chunked_parts) / sizeof(chunked_parts[0]); i++) {
        size_t n = strlen(chunked_parts[i]);
        f += (size_t)snprintf(framed + f, sizeof(framed) - f, "%zx\r\n%s\r\n", n, chunked_parts[i]);
        memcpy(plain + p, chunked_parts[i], n);
        p += n;
    }
    f += (size_t)snprintf(framed + f, sizeof(framed) - f, "0\r\n\r\n");
    plain[p] = '\0';
    *framed_len = f;
    *decoded = plain;
    return framed;
}

static void build_corpus(void)
{
    static char tmp[4096];
    set_input(&cases[WRK], WRK_GET, sizeof(WRK_GET) - 1, 1);
    set_input(&cases[TFB], tfb_plaintext, sizeof(tfb_plaintext) - 1, 1);
    set_input(&cases[BROWSER], browser_get, sizeof(browser_get) - 1, 1);

    size_t body = sizeof(api_post_body) - 1;
    int n = snprintf(tmp, sizeof(tmp), api_post_head, body);
    memcpy(tmp + n, api_post_body, body);
    set_input(&cases[API_POST], tmp, (size_t)n + body, 1);
    cases[API_POST].content_len = body;

    struct parse_case *ck = &cases[CHUNKED];
    char *decoded;
    char *framed = chunked_body(&ck->framed_len, &decoded);
    size_t head = sizeof(chunked_head) - 1;
    memcpy(tmp, chunked_head, head);
    memcpy(tmp + head, framed, ck->framed_len);
    set_input(ck, tmp, head + ck->framed_len, 1);
    ck->framed = aligned_copy(framed, ck->framed_len);
    ck->body_off = head;
    ck->body = decoded;

    set_input(&cases[HEAD_REQ], head_req, sizeof(head_req) - 1, 1);
    set_input(&cases[QUERY], long_query, sizeof(long_query) - 1, 1);
    set_input(&cases[HTTP10], http10, sizeof(http10) - 1, 1);

    size_t one = sizeof(WRK_GET) - 1;
    for (int i = 0; i < PIPELINE; i++)
        memcpy(tmp + i * one, WRK_GET, one);
    set_input(&cases[PIPELINED], tmp, PIPELINE * one, PIPELINE);
}

/* ---- validation ------------------------------------------------------------------------- */

static bool str_is(struct coil_str s, const char *want)
{
    return s.len == strlen(want) && (s.len == 0 || memcmp(s.ptr, want, s.len) == 0);
}

/* Length of the head at p: through the first empty line. */
static size_t head_length(const char *p, size_t n)
{
    const char *e = memmem(p, n, "\r\n\r\n", 4);
    return e ? (size_t)(e - p) + 4 : 0;
}

static void check_fields(const struct parse_case *pc, const struct coil__http_req *req)
{
    const char *c = pc->name;
    BENCH_REQUIRE(str_is(req->method, pc->method), "%s: method %.*s", c, (int)req->method.len,
                  req->method.ptr);
    BENCH_REQUIRE(str_is(req->path, pc->path), "%s: path %.*s", c, (int)req->path.len,
                  req->path.ptr);
    BENCH_REQUIRE(str_is(req->query, pc->query), "%s: query %.*s", c, (int)req->query.len,
                  req->query.ptr);
    BENCH_REQUIRE(req->nheaders == pc->nheaders, "%s: %u headers", c, req->nheaders);
    BENCH_REQUIRE(req->minor == pc->minor, "%s: HTTP/1.%u", c, req->minor);
    BENCH_REQUIRE(req->flags == pc->flags, "%s: flags %#x, want %#x", c, req->flags, pc->flags);
    if (pc->flags & COIL_HTTP_HAS_LENGTH)
        BENCH_REQUIRE(req->content_length == pc->content_len, "%s: Content-Length %llu", c,
                      (unsigned long long)req->content_length);
}

/* Parses pc the way the benchmark will and checks every request; sets pc->bytes. */
static void validate(struct parse_case *pc)
{
    struct coil__http_req req = {.headers = headers};
    size_t off = 0, examined = 0;
    for (uint32_t k = 0; k < pc->nreq; k++) {
        int r = coil__http_parse_head(pc->buf + off, pc->len - off, &req, &limits);
        size_t want = head_length(pc->buf + off, pc->len - off);
        BENCH_REQUIRE(r > 0 && (size_t)r == want, "%s: request %u parses to %d, head is %zu",
                      pc->name, k, r, want);
        check_fields(pc, &req);
        off += (size_t)r;
        examined += (size_t)r;
        if (req.flags & COIL_HTTP_HAS_LENGTH)
            off += req.content_length;
    }
    if (pc->framed) {
        struct coil__chunked ck;
        coil__chunked_init(&ck);
        int r = coil__chunked_decode(&ck, pc->buf + off, pc->len - off, limits.max_body_bytes,
                                     limits.max_header_bytes);
        BENCH_REQUIRE(r == 1 && ck.in == pc->framed_len, "%s: chunked decode %d, in %zu", pc->name,
                      r, ck.in);
        BENCH_REQUIRE(ck.out == strlen(pc->body) && !memcmp(pc->buf + off, pc->body, ck.out),
                      "%s: decoded body differs", pc->name);
        off += ck.in;
        examined += ck.in;
        memcpy(pc->buf + pc->body_off, pc->framed, pc->framed_len); /* undo the in-place decode */
    }
    BENCH_REQUIRE(off == pc->len, "%s: %zu of %zu bytes consumed", pc->name, off, pc->len);
    pc->bytes = (double)examined / pc->nreq;
}

/* ---- the benchmark ---------------------------------------------------------------------- */

static uint64_t bm_parse(void *arg, uint64_t iters)
{
    const struct parse_case *pc = arg;
    struct coil__http_req req = {.headers = headers};
    uint64_t acc = 0;
    for (uint64_t i = 0; i < iters; i++) {
        char *buf = pc->buf;
        BENCH_HIDE(buf); /* the parser's input is not known to be the same each time */
        size_t off = 0;
        for (uint32_t k = 0; k < pc->nreq; k++) {
            int r = coil__http_parse_head(buf + off, pc->len - off, &req, &limits);
            off += (size_t)r;
            acc += req.nheaders;
        }
        if (pc->framed) {
            struct coil__chunked ck;
            memcpy(buf + off, pc->framed, pc->framed_len);
            coil__chunked_init(&ck);
            acc += (uint64_t)coil__chunked_decode(&ck, buf + off, pc->len - off,
                                                  limits.max_body_bytes, limits.max_header_bytes);
            acc += ck.out;
        }
        acc += off;
    }
    return acc;
}

void micro_parse(void)
{
    build_corpus();
    for (size_t i = 0; i < NCASES; i++)
        validate(&cases[i]);

    double sum_med = 0, sum_min = 0, sum_bytes = 0;
    unsigned ran = 0;
    for (size_t i = 0; i < NCASES; i++) {
        struct parse_case *pc = &cases[i];
        struct bench b = {pc->name, "req", bm_parse, pc, pc->nreq, pc->bytes};
        struct bench_result r = bench_run(&b);
        if (r.ran) {
            sum_med += r.median;
            sum_min += r.min;
            sum_bytes += pc->bytes;
            ran++;
        }
    }
    /* The corpus mean weighs every entry the same; its GB/s is total bytes over total time. */
    if (ran > 1)
        bench_print_row("parse/corpus-mean", "req", sum_med / ran, sum_min / ran, -1,
                        sum_bytes / ran);
}
