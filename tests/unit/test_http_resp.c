/* SPDX-License-Identifier: MIT */
/*
 * test_http_resp: the response-head parser (coil__http_parse_resp_head, the upstream client's
 * side) against tables of valid and malformed heads. Each input is copied so that it ends where
 * a PROT_NONE page begins, so reading one byte too far faults. A valid head must give its exact
 * length, status, version, reason, framing flags and fields (slices of the buffer, values
 * trimmed), also when parsed into a result left dirty by an earlier parse; each of its prefixes
 * (against the guard page too) must give 0 while shorter than the head and the same result once
 * it holds the head, whatever follows. A malformed head must give -1, and each of its prefixes 0
 * or -1, never a length. Limits are probed around each valid head: exactly its size and header
 * count pass, one byte or one header less is -1.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "http_parse.h"

#define CHECK_STR(s, want) CHECK(str_is((s), (want)))

#define MAX_HEADERS 160 /* room for every limit used below (at most 128) */
#define DEF_BYTES 8192u
#define DEF_HEADERS 32u

#define KA COIL_HTTP_KEEP_ALIVE
#define CHUNKED COIL_HTTP_CHUNKED
#define LEN COIL_HTTP_HAS_LENGTH

/* The exact bytes of want (an empty want: an empty slice, whatever its pointer). */
static int str_is(struct coil_str s, const char *want)
{
    size_t n = strlen(want);
    return s.len == n && (n == 0 || (s.ptr != NULL && memcmp(s.ptr, want, n) == 0));
}

/* s lies inside buf[0..end): an empty slice may sit at end. */
static int inside(struct coil_str s, const char *buf, size_t end)
{
    return s.ptr != NULL && s.ptr >= buf && s.ptr <= buf + end &&
           s.len <= (size_t)(buf + end - s.ptr);
}

static int is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Offsets and lengths agree: the same bytes parsed at two addresses gave the same result. */
static int same_slice(struct coil_str a, const char *abuf, struct coil_str b, const char *bbuf)
{
    return a.len == b.len && a.ptr - abuf == b.ptr - bbuf;
}

static int same_resp(const struct coil__http_resp *a, const char *abuf,
                     const struct coil__http_resp *b, const char *bbuf)
{
    if (a->status != b->status || a->minor != b->minor || a->flags != b->flags ||
        a->nheaders != b->nheaders || !same_slice(a->reason, abuf, b->reason, bbuf))
        return 0;
    if ((a->flags & LEN) && a->content_length != b->content_length)
        return 0;
    for (uint32_t i = 0; i < a->nheaders; i++)
        if (!same_slice(a->headers[i].name, abuf, b->headers[i].name, bbuf) ||
            !same_slice(a->headers[i].value, abuf, b->headers[i].value, bbuf))
            return 0;
    return 1;
}

/* A result full of junk, so fields the parser forgets to set do not pass by luck. */
static void dirty(struct coil__http_resp *r)
{
    struct coil__http_header *h = r->headers;
    memset(h, 0xA5, MAX_HEADERS * sizeof(*h));
    memset(r, 0xA5, sizeof(*r));
    r->headers = h;
}

/* ---- valid heads ---------------------------------------------------------------------------- */

struct want_header {
    const char *name, *value;
};

struct valid_case {
    const char *what;
    const char *head; /* through the empty line */
    const char *rest; /* bytes after the head (body, next response), or NULL */
    int status;
    int minor;
    const char *reason;
    uint32_t flags;
    uint64_t length; /* checked with LEN */
    uint32_t nheaders;
    struct want_header h[6]; /* the first headers, checked in order while name is set */
    size_t rest_len;         /* 0: strlen(rest); set for a rest holding a NUL */
};

static const struct valid_case valid_cases[] = {
    {.what = "200 with Content-Length and a body",
     .head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\n",
     .rest = "hello",
     .status = 200,
     .minor = 1,
     .reason = "OK",
     .flags = KA | LEN,
     .length = 5,
     .nheaders = 2,
     .h = {{"Content-Length", "5"}, {"Content-Type", "text/plain"}}},
    {.what = "HTTP/1.0 without fields",
     .head = "HTTP/1.0 200 OK\r\n\r\n",
     .rest = "close-delimited body",
     .status = 200,
     .minor = 0,
     .reason = "OK",
     .flags = 0,
     .nheaders = 0},
    {.what = "HTTP/1.0 with Content-Length",
     .head = "HTTP/1.0 404 Not Found\r\nContent-Length: 3\r\n\r\n",
     .rest = "nf\n",
     .status = 404,
     .minor = 0,
     .reason = "Not Found",
     .flags = LEN,
     .length = 3,
     .nheaders = 1,
     .h = {{"Content-Length", "3"}}},
    {.what = "HTTP/1.0 keep-alive",
     .head = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
     .status = 200,
     .minor = 0,
     .reason = "OK",
     .flags = KA | LEN,
     .length = 0,
     .nheaders = 2,
     .h = {{"Connection", "keep-alive"}, {"Content-Length", "0"}}},
    {.what = "HTTP/1.0 Keep-Alive in a list, any case",
     .head = "HTTP/1.0 200 OK\r\nConnection: foo ,  KEEP-Alive\t\r\n\r\n",
     .status = 200,
     .minor = 0,
     .reason = "OK",
     .flags = KA,
     .nheaders = 1,
     .h = {{"Connection", "foo ,  KEEP-Alive"}}},
    {.what = "HTTP/1.0 keep-alive and close",
     .head = "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n",
     .status = 200,
     .minor = 0,
     .reason = "OK",
     .flags = 0,
     .nheaders = 2},
    {.what = "HTTP/1.0 other Connection option",
     .head = "HTTP/1.0 200 OK\r\nConnection: keep-alives\r\n\r\n",
     .status = 200,
     .minor = 0,
     .reason = "OK",
     .flags = 0,
     .nheaders = 1},
    {.what = "HTTP/1.1 Connection: close",
     .head = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
     .rest = "ok",
     .status = 200,
     .minor = 1,
     .reason = "OK",
     .flags = LEN,
     .length = 2,
     .nheaders = 2},
    {.what = "HTTP/1.1 close in a list, any case",
     .head = "HTTP/1.1 200 OK\r\ncOnNeCtIoN: Upgrade,CLOSE\r\n\r\n",
     .status = 200,
     .minor = 1,
     .reason = "OK",
     .flags = 0,
     .nheaders = 1,
     .h = {{"cOnNeCtIoN", "Upgrade,CLOSE"}}},
    {.what = "HTTP/1.1 Connection: keep-alive",
     .head = "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\n",
     .status = 200,
     .minor = 1,
     .reason = "OK",
     .flags = KA,
     .nheaders = 1},
    {.what = "HTTP/1.1 Connection option that only starts with close",
     .head = "HTTP/1.1 200 OK\r\nConnection: closed\r\n\r\n",
     .status = 200,
     .minor = 1,
     .reason = "OK",
     .flags = KA,
     .nheaders = 1},
    {.what = "empty reason",
     .head = "HTTP/1.1 200 \r\nContent-Length: 0\r\n\r\n",
     .status = 200,
     .minor = 1,
     .reason = "",
     .flags = KA | LEN,
     .length = 0,
     .nheaders = 1},
    {.what = "empty reason, no fields",
     .head = "HTTP/1.1 204 \r\n\r\n",
     .status = 204,
     .minor = 1,
     .reason = "",
     .flags = KA,
     .nheaders = 0},
    {.what = "reason with obs-text",
     .head = "HTTP/1.1 200 D\xe9j\xe0 vu \xff\x80\r\nContent-Length: 0\r\n\r\n",
     .status = 200,
     .minor = 1,
     .reason = "D\xe9j\xe0 vu \xff\x80",
     .flags = KA | LEN,
     .length = 0,
     .nheaders = 1},
    {.what = "reason with a tab and punctuation, long (vector scan)",
     .head = "HTTP/1.1 418 I'm a teapot\t(short and stout; RFC 2324)!\r\n\r\n",
     .status = 418,
     .minor = 1,
     .reason = "I'm a teapot\t(short and stout; RFC 2324)!",
     .flags = KA,
     .nheaders = 0},
    {.what = "chunked",
     .head = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
     .rest = "5\r\nhello\r\n0\r\n\r\n",
     .status = 200,
     .minor = 1,
     .reason = "OK",
     .flags = KA | CHUNKED,
     .nheaders = 1,
     .h = {{"Transfer-Encoding", "chunked"}}},
    {.what = "chunked, any case, OWS around",
     .head = "HTTP/1.1 200 OK\r\ntransfer-encoding: \t CHUNKED \t\r\nConnection: close\r\n\r\n",
     .status = 200,
     .minor = 1,
     .reason = "OK",
     .flags = CHUNKED,
     .nheaders = 2,
     .h = {{"transfer-encoding", "CHUNKED"}, {"Connection", "close"}}},
    {.what = "same Content-Length twice",
     .head = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
     .rest = "hello",
     .status = 200,
     .minor = 1,
     .reason = "OK",
     .flags = KA | LEN,
     .length = 5,
     .nheaders = 2,
     .h = {{"Content-Length", "5"}, {"Content-Length", "5"}}},
    {.what = "Content-Length list of equal members",
     .head = "HTTP/1.1 200 OK\r\nContent-Length: 7, 7,7\r\n\r\n",
     .rest = "1234567",
     .status = 200,
     .minor = 1,
     .reason = "OK",
     .flags = KA | LEN,
     .length = 7,
     .nheaders = 1},
    {.what = "Content-Length 2^64 - 1",
     .head = "HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n",
     .status = 200,
     .minor = 1,
     .reason = "OK",
     .flags = KA | LEN,
     .length = UINT64_MAX,
     .nheaders = 1},
    {.what = "Content-Length with leading zeros",
     .head = "HTTP/1.1 200 OK\r\nContent-Length: 0012\r\n\r\n",
     .status = 200,
     .minor = 1,
     .reason = "OK",
     .flags = KA | LEN,
     .length = 12,
     .nheaders = 1},
    {.what = "100 Continue (interim)",
     .head = "HTTP/1.1 100 Continue\r\n\r\n",
     .rest = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
     .status = 100,
     .minor = 1,
     .reason = "Continue",
     .flags = KA,
     .nheaders = 0},
    {.what = "101 Switching Protocols",
     .head = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
     .status = 101,
     .minor = 1,
     .reason = "Switching Protocols",
     .flags = KA,
     .nheaders = 2,
     .h = {{"Upgrade", "websocket"}, {"Connection", "Upgrade"}}},
    {.what = "304 with a Content-Length (no body follows)",
     .head = "HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 1234\r\n\r\n",
     .status = 304,
     .minor = 1,
     .reason = "Not Modified",
     .flags = KA | LEN,
     .length = 1234,
     .nheaders = 2,
     .h = {{"ETag", "\"x\""}, {"Content-Length", "1234"}}},
    {.what = "status 999",
     .head = "HTTP/1.1 999 X\r\n\r\n",
     .status = 999,
     .minor = 1,
     .reason = "X",
     .flags = KA,
     .nheaders = 0},
    {.what = "status 599, 1.0",
     .head = "HTTP/1.0 599 Whatever\r\n\r\n",
     .status = 599,
     .minor = 0,
     .reason = "Whatever",
     .flags = 0,
     .nheaders = 0},
    {.what = "values trimmed, empty values, obs-text, names as sent",
     .head = "HTTP/1.1 200 OK\r\n"
             "X-Spaced:   a  b \t \r\n"
             "X-Empty:\r\n"
             "X-Blank: \t \r\n"
             "X-Obs: caf\xc3\xa9 \x80\xff\r\n"
             "!#$%&'*+-.^_`|~09azAZ:v\r\n"
             "Set-Cookie: a=1; Path=/; HttpOnly\r\n"
             "\r\n",
     .status = 200,
     .minor = 1,
     .reason = "OK",
     .flags = KA,
     .nheaders = 6,
     .h = {{"X-Spaced", "a  b"},
           {"X-Empty", ""},
           {"X-Blank", ""},
           {"X-Obs", "caf\xc3\xa9 \x80\xff"},
           {"!#$%&'*+-.^_`|~09azAZ", "v"},
           {"Set-Cookie", "a=1; Path=/; HttpOnly"}}},
    {.what = "names that look like known ones",
     .head = "HTTP/1.0 200 OK\r\nContent-Lengths: x\r\nTransfer-Encodings: gzip\r\n"
             "Connections: keep-alive\r\nTransfer-Encodin: gzip\r\n\r\n",
     .status = 200,
     .minor = 0,
     .reason = "OK",
     .flags = 0,
     .nheaders = 4},
    {.what = "Host and Expect mean nothing in a response",
     .head = "HTTP/1.1 200 OK\r\nHost: a b/c\r\nHost: d\r\nExpect: nonsense\r\n\r\n",
     .status = 200,
     .minor = 1,
     .reason = "OK",
     .flags = KA,
     .nheaders = 3,
     .h = {{"Host", "a b/c"}, {"Host", "d"}, {"Expect", "nonsense"}}},
    {.what = "a real-world response",
     .head = "HTTP/1.1 200 OK\r\n"
             "Server: nginx/1.22.1\r\n"
             "Date: Mon, 01 Jan 2024 00:00:00 GMT\r\n"
             "Content-Type: application/json; charset=utf-8\r\n"
             "Transfer-Encoding: chunked\r\n"
             "Connection: keep-alive\r\n"
             "Vary: Accept-Encoding\r\n"
             "\r\n",
     .rest = "2\r\n{}\r\n0\r\n\r\n",
     .status = 200,
     .minor = 1,
     .reason = "OK",
     .flags = KA | CHUNKED,
     .nheaders = 6,
     .h = {{"Server", "nginx/1.22.1"},
           {"Date", "Mon, 01 Jan 2024 00:00:00 GMT"},
           {"Content-Type", "application/json; charset=utf-8"},
           {"Transfer-Encoding", "chunked"},
           {"Connection", "keep-alive"},
           {"Vary", "Accept-Encoding"}}},
    {.what = "pipelined: a second response follows",
     .head = "HTTP/1.1 204 No Content\r\n\r\n",
     .rest = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
     .status = 204,
     .minor = 1,
     .reason = "No Content",
     .flags = KA,
     .nheaders = 0},
    {.what = "garbage after the head",
     .head = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\n",
     .rest = "\n\r\0\x01 x: y\r\n",
     .rest_len = 11,
     .status = 200,
     .minor = 1,
     .reason = "OK",
     .flags = KA | LEN,
     .length = 4,
     .nheaders = 1},
};

static void check_expected(const struct valid_case *v, const struct coil__http_resp *r,
                           const char *buf, size_t hl)
{
    CHECK(r->status == v->status);
    CHECK(r->minor == v->minor);
    CHECK_STR(r->reason, v->reason);
    CHECK(inside(r->reason, buf, hl));
    CHECK(r->reason.ptr == buf + 13); /* right after "HTTP/1.x NNN " */
    CHECK(r->flags == v->flags);
    if (v->flags & LEN)
        CHECK(r->content_length == v->length);
    CHECK(r->nheaders == v->nheaders);
    for (size_t i = 0; i < 6 && v->h[i].name != NULL && i < r->nheaders; i++) {
        CHECK_STR(r->headers[i].name, v->h[i].name);
        CHECK_STR(r->headers[i].value, v->h[i].value);
    }
    const char *prev = buf;
    for (uint32_t i = 0; i < r->nheaders && i < MAX_HEADERS; i++) {
        struct coil_str nm = r->headers[i].name, val = r->headers[i].value;
        /* slices of the head, in order, the name right before its ':' */
        CHECK(inside(nm, buf, hl) && inside(val, buf, hl));
        CHECK(nm.len > 0 && nm.ptr > prev && nm.ptr[nm.len] == ':');
        CHECK(val.ptr > nm.ptr + nm.len);
        /* the value is trimmed and ends the line, up to OWS */
        CHECK(val.len == 0 || (!is_ows(val.ptr[0]) && !is_ows(val.ptr[val.len - 1])));
        const char *e = val.ptr + val.len;
        while (is_ows(*e))
            e++;
        CHECK(e[0] == '\r' && e[1] == '\n');
        prev = val.ptr;
    }
}

/* Limits tightened around this head: its exact size and header count pass, one less is -1. */
static void probe_limits(const struct valid_case *v, const char *src, size_t n, size_t hl)
{
    struct coil__http_header h[MAX_HEADERS];
    struct coil__http_resp r = {.headers = h};
    const char *buf = guard_place(src, n);

    CHECK(coil__http_parse_resp_head(buf, n, &r, (uint32_t)hl, DEF_HEADERS) == (int)hl);
    CHECK(coil__http_parse_resp_head(buf, n, &r, (uint32_t)hl - 1, DEF_HEADERS) == -1);
    /* with the limit at hl - 1, a prefix reaching it can no longer be completed */
    CHECK(coil__http_parse_resp_head(guard_place(src, hl - 1), hl - 1, &r, (uint32_t)hl - 1,
                                     DEF_HEADERS) == -1);
    CHECK(coil__http_parse_resp_head(guard_place(src, hl - 2), hl - 2, &r, (uint32_t)hl - 1,
                                     DEF_HEADERS) == 0);

    buf = guard_place(src, n);
    CHECK(coil__http_parse_resp_head(buf, n, &r, DEF_BYTES, v->nheaders) == (int)hl);
    CHECK(r.nheaders == v->nheaders);
    if (v->nheaders > 0)
        CHECK(coil__http_parse_resp_head(buf, n, &r, DEF_BYTES, v->nheaders - 1) == -1);
}

static void run_valid(const struct valid_case *v)
{
    size_t hl = strlen(v->head);
    size_t rl = v->rest_len ? v->rest_len : v->rest ? strlen(v->rest) : 0, n = hl + rl;
    char *src = malloc(n + 1);
    memcpy(src, v->head, hl);
    if (rl)
        memcpy(src + hl, v->rest, rl);
    current = v->what;

    struct coil__http_header ha[MAX_HEADERS], hb[MAX_HEADERS];
    struct coil__http_resp a = {.headers = ha}, b = {.headers = hb};
    dirty(&a);
    const char *buf = guard_place(src, n);
    int r = coil__http_parse_resp_head(buf, n, &a, DEF_BYTES, DEF_HEADERS);
    CHECK(r == (int)hl);
    if (r != (int)hl) {
        fprintf(stderr, "  [%s] returned %d, want %zu\n", v->what, r, hl);
        free(src);
        return;
    }
    check_expected(v, &a, buf, hl);

    /* Every prefix against the guard page; then the head with every other tail appended. */
    for (size_t k = 0; k <= n; k++) {
        const char *pb = guard_place(src, k);
        dirty(&b);
        int rk = coil__http_parse_resp_head(pb, k, &b, DEF_BYTES, DEF_HEADERS);
        if (k < hl) {
            CHECK(rk == 0);
            if (rk != 0)
                fprintf(stderr, "  [%s] prefix %zu returned %d\n", v->what, k, rk);
        } else {
            CHECK(rk == r);
            if (rk == r)
                CHECK(same_resp(&a, buf, &b, pb));
        }
    }
    static const struct {
        const char *s;
        size_t n;
    } tails[] = {{"\r\n", 2}, {"\n", 1}, {"HTTP/1.1 200 OK\r\n", 17}, {"\0\0\0", 3}, {"\x7f\xff", 2}};
    for (size_t t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
        size_t tl = tails[t].n;
        char *cat = malloc(hl + tl);
        memcpy(cat, src, hl);
        memcpy(cat + hl, tails[t].s, tl);
        const char *pb = guard_place(cat, hl + tl);
        CHECK(coil__http_parse_resp_head(pb, hl + tl, &b, DEF_BYTES, DEF_HEADERS) == r);
        CHECK(same_resp(&a, buf, &b, pb));
        free(cat);
    }
    probe_limits(v, src, n, hl);
    free(src);
}

/* ---- malformed heads ------------------------------------------------------------------------ */

struct invalid_case {
    const char *what;
    const char *in;
    size_t len;           /* 0: strlen(in); set for inputs holding a NUL */
    int lim;              /* 0: DEF_BYTES and DEF_HEADERS; 1: the two below */
    uint32_t max_bytes;   /* max_header_bytes */
    uint32_t max_headers; /* max_headers */
    const char *fixed;    /* a valid head that differs from `in` only by what is tested */
};

#define OK11 "HTTP/1.1 200 OK\r\n"

#define BAD(w, i)                                                                                  \
    {                                                                                              \
        .what = (w), .in = (i)                                                                     \
    }
/* fix: the same head without the defect; it must parse, so the case tests what it says */
#define BADF(w, i, fix)                                                                            \
    {                                                                                              \
        .what = (w), .in = (i), .fixed = (fix)                                                     \
    }
#define BAD_BIN(w, i, fix)                                                                         \
    {                                                                                              \
        .what = (w), .in = (i), .len = sizeof(i) - 1, .fixed = (fix)                               \
    }
#define BAD_LIM(w, i, b, h, fix)                                                                   \
    {                                                                                              \
        .what = (w), .in = (i), .lim = 1, .max_bytes = (b), .max_headers = (h), .fixed = (fix)     \
    }

static const struct invalid_case invalid_cases[] = {
    /* status line */
    BADF("no SP after the code", "HTTP/1.1 200\r\n\r\n", "HTTP/1.1 200 \r\n\r\n"),
    BADF("no SP after the code, reason glued", "HTTP/1.1 200OK\r\n\r\n",
         "HTTP/1.1 200 OK\r\n\r\n"),
    BADF("tab after the code", "HTTP/1.1 200\tOK\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"),
    BADF("two-digit code", "HTTP/1.1 20 OK\r\n\r\n", "HTTP/1.1 201 OK\r\n\r\n"),
    BADF("four-digit code", "HTTP/1.1 2000 OK\r\n\r\n", "HTTP/1.1 200 0 OK\r\n\r\n"),
    BADF("code 0xx", "HTTP/1.1 099 Odd\r\n\r\n", "HTTP/1.1 199 Odd\r\n\r\n"),
    BADF("code 000", "HTTP/1.1 000 Zero\r\n\r\n", "HTTP/1.1 100 Zero\r\n\r\n"),
    BADF("code with a letter", "HTTP/1.1 2x0 OK\r\n\r\n", "HTTP/1.1 290 OK\r\n\r\n"),
    BADF("code with a sign", "HTTP/1.1 +20 OK\r\n\r\n", "HTTP/1.1 120 OK\r\n\r\n"),
    BADF("two spaces before the code", "HTTP/1.1  200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"),
    BADF("space before the version", " HTTP/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"),
    BADF("empty line before the status line", "\r\nHTTP/1.1 200 OK\r\n\r\n",
         "HTTP/1.1 200 OK\r\n\r\n"),
    BADF("HTTP/2.0", "HTTP/2.0 200 OK\r\n\r\n", "HTTP/1.0 200 OK\r\n\r\n"),
    BADF("HTTP/1.2", "HTTP/1.2 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"),
    BADF("HTTP/0.9", "HTTP/0.9 200 OK\r\n\r\n", "HTTP/1.0 200 OK\r\n\r\n"),
    BADF("HTTP/2 without minor", "HTTP/2 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"),
    BADF("HTTP/1.10", "HTTP/1.10 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"),
    BADF("lower-case http/1.1", "http/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"),
    BADF("mixed-case Http/1.1", "Http/1.1 200 OK\r\n\r\n", "HTTP/1.1 200 OK\r\n\r\n"),
    BAD("lower-case, incomplete", "h"),
    BAD("ICY status line", "ICY 200 OK\r\n\r\n"),
    BAD("a request instead", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
    BADF("status line ends in bare LF", "HTTP/1.1 200 OK\nContent-Length: 0\r\n\r\n",
         "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    BADF("status line without reason ends in bare LF", "HTTP/1.1 200 \n\r\n",
         "HTTP/1.1 200 \r\n\r\n"),
    BADF("status line CR without LF", "HTTP/1.1 200 OK\rX: y\r\n\r\n",
         "HTTP/1.1 200 OK\r\nX: y\r\n\r\n"),
    BADF("status line CR, then what would be a field", "HTTP/1.1 200 OK\rXY: z\r\n\r\n",
         "HTTP/1.1 200 OK\r\nXY: z\r\n\r\n"),
    BAD_BIN("NUL in the reason", "HTTP/1.1 200 O\0K\r\n\r\n", "HTTP/1.1 200 O K\r\n\r\n"),
    BADF("SOH in the reason", "HTTP/1.1 200 O\x01K\r\n\r\n", "HTTP/1.1 200 O K\r\n\r\n"),
    BADF("DEL in the reason", "HTTP/1.1 200 OK\x7f\r\n\r\n", "HTTP/1.1 200 OK~\r\n\r\n"),
    BADF("ESC in a long reason (vector scan)",
         "HTTP/1.1 200 0123\x1b"
         "456789abcdefghijklmnop\r\n\r\n",
         "HTTP/1.1 200 0123 456789abcdefghijklmnop\r\n\r\n"),
    BADF("DEL in a long reason (vector scan)",
         "HTTP/1.1 200 ab\x7f"
         "cdefghijklmnopqrstuvwxyz\r\n\r\n",
         "HTTP/1.1 200 ab~cdefghijklmnopqrstuvwxyz\r\n\r\n"),
    BADF("ESC late in a long reason", "HTTP/1.1 200 0123456789abcdefghij\x1bk\r\n\r\n",
         "HTTP/1.1 200 0123456789abcdefghij k\r\n\r\n"),
    /* line endings in the fields */
    BADF("field ends in bare LF", OK11 "Content-Length: 0\n\r\n", OK11 "Content-Length: 0\r\n\r\n"),
    BADF("empty line is a bare LF", OK11 "Content-Length: 0\r\n\n", OK11 "Content-Length: 0\r\n\r\n"),
    BADF("only bare LFs", "HTTP/1.1 200 OK\n\n", "HTTP/1.1 200 OK\r\n\r\n"),
    BADF("CR without LF in a value", OK11 "X-A: a\rb\r\n\r\n", OK11 "X-A: a b\r\n\r\n"),
    BADF("CR CR LF ending a field", OK11 "X-A: a\r\r\n\r\n", OK11 "X-A: a\r\n\r\n"),
    BADF("empty line CR without LF", OK11 "X-A: a\r\n\rX", OK11 "X-A: a\r\n\r\n"),
    BADF("LF in a long value", OK11 "X-A: 0123456789abcdef01234\n56789abcdef\r\n\r\n",
         OK11 "X-A: 0123456789abcdef01234 56789abcdef\r\n\r\n"),
    /* field syntax */
    BADF("obs-fold", OK11 "X-A: 1\r\n 2\r\n\r\n", OK11 "X-A: 1\r\nX-B: 2\r\n\r\n"),
    BADF("obs-fold with tab", OK11 "X-A: 1\r\n\t2\r\n\r\n", OK11 "X-A: 1\r\nX-B: 2\r\n\r\n"),
    BADF("space-led first field line", OK11 " X-A: 1\r\n\r\n", OK11 "X-A: 1\r\n\r\n"),
    BADF("space before colon", OK11 "Content-Length : 0\r\n\r\n", OK11 "Content-Length: 0\r\n\r\n"),
    BADF("tab before colon", OK11 "X-A\t: 1\r\n\r\n", OK11 "X-A: 1\r\n\r\n"),
    BADF("empty field name", OK11 ": v\r\n\r\n", OK11 "X: v\r\n\r\n"),
    BADF("line without colon", OK11 "Broken\r\n\r\n", OK11 "Broken:\r\n\r\n"),
    BADF("non-token byte in a name", OK11 "X(A): v\r\n\r\n", OK11 "X-A: v\r\n\r\n"),
    BADF("non-ASCII byte in a name", OK11 "X\xc3\xa9: v\r\n\r\n", OK11 "Xe: v\r\n\r\n"),
    BAD_BIN("NUL in a value", OK11 "X-A: a\0b\r\n\r\n", OK11 "X-A: a b\r\n\r\n"),
    BAD_BIN("NUL in a name", OK11 "X\0A: b\r\n\r\n", OK11 "X-A: b\r\n\r\n"),
    BADF("SOH in a value", OK11 "X-A: \x01\r\n\r\n", OK11 "X-A: \x21\r\n\r\n"),
    BADF("VT in a value", OK11 "X-A: a\vb\r\n\r\n", OK11 "X-A: a\tb\r\n\r\n"),
    BADF("DEL in a value", OK11 "X-A: a\x7f\r\n\r\n", OK11 "X-A: a\x7e\r\n\r\n"),
    BADF("ESC in a long value (vector scan)",
         OK11 "X-A: 0123456789abcdef01234\x1b"
              "56789abcdef\r\n\r\n",
         OK11 "X-A: 0123456789abcdef01234 56789abcdef\r\n\r\n"),
    BADF("DEL in a long value (vector scan)",
         OK11 "X-A: 0123\x7f"
              "456789abcdef0123456789\r\n\r\n",
         OK11 "X-A: 0123~456789abcdef0123456789\r\n\r\n"),
    BAD_BIN("NUL in a long value (vector scan)", OK11 "X-A: 0123\0"
                 "456789abcdef0123456789\r\n\r\n",
            OK11 "X-A: 0123 456789abcdef0123456789\r\n\r\n"),
    BADF("DEL at the end of a long value", OK11 "X-A: 0123456789abcdef0123456789\x7f\r\n\r\n",
         OK11 "X-A: 0123456789abcdef0123456789~\r\n\r\n"),
    /* Content-Length */
    BADF("Content-Length with Transfer-Encoding",
         OK11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
         OK11 "X-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"),
    BADF("Transfer-Encoding with Content-Length",
         OK11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n",
         OK11 "Transfer-Encoding: chunked\r\nX-Length: 5\r\n\r\n"),
    BADF("Transfer-Encoding with Content-Length: 0",
         OK11 "Transfer-Encoding: chunked\r\nContent-Length: 0\r\n\r\n",
         OK11 "Transfer-Encoding: chunked\r\nX-Length: 0\r\n\r\n"),
    BADF("two Content-Length values in two lines",
         OK11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n",
         OK11 "Content-Length: 5\r\nContent-Length: 5\r\n\r\n"),
    BADF("two Content-Length values in a list", OK11 "Content-Length: 5, 6\r\n\r\n",
         OK11 "Content-Length: 5, 5\r\n\r\n"),
    BADF("Content-Length 0 then 00", OK11 "Content-Length: 0\r\nContent-Length: 1\r\n\r\n",
         OK11 "Content-Length: 0\r\nContent-Length: 00\r\n\r\n"),
    BADF("Content-Length not a number", OK11 "Content-Length: abc\r\n\r\n",
         OK11 "Content-Length: 123\r\n\r\n"),
    BADF("Content-Length empty", OK11 "Content-Length:\r\n\r\n", OK11 "Content-Length:0\r\n\r\n"),
    BADF("Content-Length blank", OK11 "Content-Length:  \r\n\r\n",
         OK11 "Content-Length: 0\r\n\r\n"),
    BADF("Content-Length negative", OK11 "Content-Length: -1\r\n\r\n",
         OK11 "Content-Length: 11\r\n\r\n"),
    BADF("Content-Length with plus", OK11 "Content-Length: +1\r\n\r\n",
         OK11 "Content-Length: 11\r\n\r\n"),
    BADF("Content-Length hex", OK11 "Content-Length: 0x10\r\n\r\n",
         OK11 "Content-Length: 0010\r\n\r\n"),
    BADF("Content-Length decimal", OK11 "Content-Length: 1.0\r\n\r\n",
         OK11 "Content-Length: 100\r\n\r\n"),
    BADF("Content-Length with inner space", OK11 "Content-Length: 1 2\r\n\r\n",
         OK11 "Content-Length: 12\r\n\r\n"),
    BADF("Content-Length trailing junk", OK11 "Content-Length: 5x\r\n\r\n",
         OK11 "Content-Length: 5\r\n\r\n"),
    BADF("Content-Length list leading comma", OK11 "Content-Length: ,0\r\n\r\n",
         OK11 "Content-Length: 0,0\r\n\r\n"),
    BADF("Content-Length list trailing comma", OK11 "Content-Length: 5,\r\n\r\n",
         OK11 "Content-Length: 5,5\r\n\r\n"),
    BADF("Content-Length just over 2^64", OK11 "Content-Length: 18446744073709551616\r\n\r\n",
         OK11 "Content-Length: 18446744073709551615\r\n\r\n"),
    /* Transfer-Encoding */
    BADF("Transfer-Encoding: gzip", OK11 "Transfer-Encoding: gzip\r\n\r\n",
         OK11 "Transfer-Encoding: chunked\r\n\r\n"),
    BADF("Transfer-Encoding: identity", OK11 "Transfer-Encoding: identity\r\n\r\n",
         OK11 "Transfer-Encoding: chunked\r\n\r\n"),
    BADF("gzip, chunked", OK11 "Transfer-Encoding: gzip, chunked\r\n\r\n",
         OK11 "Transfer-Encoding: chunked\r\n\r\n"),
    BADF("gzip then chunked in two lines",
         OK11 "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n",
         OK11 "X-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"),
    BADF("chunked, chunked", OK11 "Transfer-Encoding: chunked, chunked\r\n\r\n",
         OK11 "Transfer-Encoding: chunked\r\n\r\n"),
    BADF("chunked in two lines",
         OK11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n",
         OK11 "Transfer-Encoding: chunked\r\nX-Encoding: chunked\r\n\r\n"),
    BADF("chunked, gzip", OK11 "Transfer-Encoding: chunked, gzip\r\n\r\n",
         OK11 "Transfer-Encoding: chunked\r\n\r\n"),
    BADF("chunked with a parameter", OK11 "Transfer-Encoding: chunked;q=1\r\n\r\n",
         OK11 "Transfer-Encoding: chunked\r\n\r\n"),
    BADF("chunked with a parameter after OWS", OK11 "Transfer-Encoding: chunked ; x\r\n\r\n",
         OK11 "Transfer-Encoding: chunked \r\n\r\n"),
    BADF("Transfer-Encoding empty", OK11 "Transfer-Encoding:\r\n\r\n",
         OK11 "Transfer-Encoding:chunked\r\n\r\n"),
    BADF("Transfer-Encoding only commas", OK11 "Transfer-Encoding: , ,\r\n\r\n",
         OK11 "Transfer-Encoding: chunked\r\n\r\n"),
    BADF("Transfer-Encoding quoted", OK11 "Transfer-Encoding: \"chunked\"\r\n\r\n",
         OK11 "Transfer-Encoding: chunked\r\n\r\n"),
    BADF("Transfer-Encoding junk after the coding", OK11 "Transfer-Encoding: chunked x\r\n\r\n",
         OK11 "Transfer-Encoding: chunked\r\n\r\n"),
    BADF("Transfer-Encoding: chunk", OK11 "Transfer-Encoding: chunk\r\n\r\n",
         OK11 "Transfer-Encoding: chunked\r\n\r\n"),
    BADF("Transfer-Encoding on HTTP/1.0", "HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
         "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"),
    BADF("Transfer-Encoding on HTTP/1.0 with keep-alive",
         "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n",
         "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n"),
    /* sizes */
    BAD_LIM("too many headers", OK11 "A: 1\r\nB: 2\r\nC: 3\r\n\r\n", DEF_BYTES, 2,
            OK11 "A: 1\r\nB: 2\r\n\r\n"),
    BAD_LIM("a header when none are allowed", OK11 "A: 1\r\n\r\n", DEF_BYTES, 0, OK11 "\r\n"),
    BAD_LIM("head over the byte limit", OK11 "X-A: 0123456789012345678901234567890123456789\r\n\r\n",
            48, DEF_HEADERS, OK11 "X-A: 0123456789012345678\r\n\r\n"),
    BAD_LIM("head over the byte limit, incomplete",
            OK11 "X-A: 0123456789012345678901234567890123456789", 48, DEF_HEADERS, NULL),
    BAD_LIM("empty line one byte past the limit", OK11 "X-A: 01234567890123456789012\r\n\r\n",
            48, DEF_HEADERS, OK11 "X-A: 0123456789012345678901\r\n\r\n"),
    BAD_LIM("status line over the limit", "HTTP/1.1 200 0123456789012345678901234567890123456789\r\n\r\n",
            32, DEF_HEADERS, "HTTP/1.1 200 01234567890123\r\n\r\n"),
    BAD_LIM("status line over the limit, incomplete", "HTTP/1.1 200 0123456789012345678901", 32,
            DEF_HEADERS, NULL),
    BAD_LIM("no room at all", "HTTP/1.1 200 OK\r\n\r\n", 0, DEF_HEADERS, NULL),
};

static void run_invalid(const struct invalid_case *c)
{
    size_t n = c->len ? c->len : strlen(c->in);
    uint32_t mb = c->lim ? c->max_bytes : DEF_BYTES;
    uint32_t mh = c->lim ? c->max_headers : DEF_HEADERS;
    struct coil__http_header h[MAX_HEADERS];
    struct coil__http_resp r = {.headers = h};
    current = c->what;

    int rc = coil__http_parse_resp_head(guard_place(c->in, n), n, &r, mb, mh);
    CHECK(rc == -1);
    if (rc != -1)
        fprintf(stderr, "  [%s] returned %d, want -1\n", c->what, rc);
    for (size_t k = 0; k < n; k++) {
        int rk = coil__http_parse_resp_head(guard_place(c->in, k), k, &r, mb, mh);
        CHECK(rk == 0 || rk == -1);
        if (rk != 0 && rk != -1)
            fprintf(stderr, "  [%s] prefix %zu returned %d\n", c->what, k, rk);
    }
    if (c->fixed != NULL) { /* the case fails for the reason it names */
        size_t fn = strlen(c->fixed);
        int rf = coil__http_parse_resp_head(guard_place(c->fixed, fn), fn, &r, mb, mh);
        CHECK(rf == (int)fn);
        if (rf != (int)fn)
            fprintf(stderr, "  [%s] the fixed head returned %d, want %zu\n", c->what, rf, fn);
    }
}

/* ---- generated cases ------------------------------------------------------------------------ */

/* A head of exactly the byte limit passes; one byte less is -1, also before it is complete. */
static void test_generated_sizes(void)
{
    current = "generated sizes";
    static char src[GUARD_ROOM];
    struct coil__http_header h[MAX_HEADERS];
    struct coil__http_resp r = {.headers = h};

    const char *pre = "HTTP/1.1 200 OK\r\nX-Fill: ";
    size_t n = strlen(pre);
    memcpy(src, pre, n);
    while (n < 65536 - 4)
        src[n++] = 'f';
    memcpy(src + n, "\r\n\r\n", 4);
    n += 4;
    CHECK(coil__http_parse_resp_head(guard_place(src, n), n, &r, 65536, 128) == 65536);
    CHECK(r.nheaders == 1 && r.headers[0].value.len == 65536 - 4 - strlen(pre));
    CHECK(coil__http_parse_resp_head(guard_place(src, n), n, &r, 65535, 128) == -1);
    CHECK(coil__http_parse_resp_head(guard_place(src, 65535), 65535, &r, 65535, 128) == -1);
    CHECK(coil__http_parse_resp_head(guard_place(src, 65534), 65534, &r, 65535, 128) == 0);

    /* a long reason */
    n = (size_t)sprintf(src, "HTTP/1.1 500 ");
    for (; n < 10000; n++)
        src[n] = (char)(0x80 | (n & 0x7f));
    memcpy(src + n, "\r\n\r\n", 4);
    n += 4;
    CHECK(coil__http_parse_resp_head(guard_place(src, n), n, &r, 65536, 128) == (int)n);
    CHECK(r.status == 500 && r.reason.len == n - 4 - 13);

    /* exactly max_headers fields pass, one more is -1 */
    n = (size_t)sprintf(src, "HTTP/1.1 200 OK\r\n");
    for (int i = 0; i < 128; i++)
        n += (size_t)sprintf(src + n, "X-%d: %d\r\n", i, i);
    memcpy(src + n, "\r\n", 2);
    CHECK(coil__http_parse_resp_head(guard_place(src, n + 2), n + 2, &r, 65536, 128) ==
          (int)n + 2);
    CHECK(r.nheaders == 128);
    CHECK(str_is(r.headers[127].name, "X-127") && str_is(r.headers[127].value, "127"));
    n += (size_t)sprintf(src + n, "X-Last: 1\r\n\r\n");
    CHECK(coil__http_parse_resp_head(guard_place(src, n), n, &r, 65536, 128) == -1);
}

/* Every status code 100-999 is accepted as written; each byte of the version and code is exact. */
static void test_all_codes(void)
{
    current = "every code";
    struct coil__http_header h[MAX_HEADERS];
    struct coil__http_resp r = {.headers = h};
    char src[32];
    int accepted = 0;
    for (int a = 1; a < 256; a++) {
        int rc;
        size_t n;
        /* the first code byte: only '1'-'9' */
        n = (size_t)snprintf(src, sizeof src, "HTTP/1.1 %c00 X\r\n\r\n", a);
        rc = coil__http_parse_resp_head(guard_place(src, n), n, &r, DEF_BYTES, DEF_HEADERS);
        CHECK(a >= '1' && a <= '9' ? rc == 18 && r.status == (a - '0') * 100 : rc == -1);
        /* the last code byte: '0'-'9' */
        n = (size_t)snprintf(src, sizeof src, "HTTP/1.1 20%c X\r\n\r\n", a);
        rc = coil__http_parse_resp_head(guard_place(src, n), n, &r, DEF_BYTES, DEF_HEADERS);
        CHECK(a >= '0' && a <= '9' ? rc == 18 && r.status == 200 + a - '0' : rc == -1);
        /* the minor version: '0' or '1' */
        n = (size_t)snprintf(src, sizeof src, "HTTP/1.%c 200 X\r\n\r\n", a);
        rc = coil__http_parse_resp_head(guard_place(src, n), n, &r, DEF_BYTES, DEF_HEADERS);
        CHECK(a == '0' || a == '1' ? rc == 18 && r.minor == a - '0' : rc == -1);
        /* the separator after the version, then after the code: SP only */
        n = (size_t)snprintf(src, sizeof src, "HTTP/1.1%c200 X\r\n\r\n", a);
        rc = coil__http_parse_resp_head(guard_place(src, n), n, &r, DEF_BYTES, DEF_HEADERS);
        CHECK(a == ' ' ? rc == 18 : rc == -1);
        n = (size_t)snprintf(src, sizeof src, "HTTP/1.1 200%cX\r\n\r\n", a);
        rc = coil__http_parse_resp_head(guard_place(src, n), n, &r, DEF_BYTES, DEF_HEADERS);
        CHECK(a == ' ' ? rc == 18 : rc == -1);
        /* one reason byte: HTAB, SP, VCHAR, obs-text */
        n = (size_t)snprintf(src, sizeof src, "HTTP/1.1 200 %c\r\n\r\n", a);
        rc = coil__http_parse_resp_head(guard_place(src, n), n, &r, DEF_BYTES, DEF_HEADERS);
        CHECK(a == '\t' || (a >= ' ' && a != 0x7f) ? rc == 18 && r.reason.len == 1
                                                   : rc == -1);
    }
    for (int code = 100; code <= 999; code++) {
        size_t n = (size_t)snprintf(src, sizeof src, "HTTP/1.0 %d R\r\n\r\n", code);
        int rc = coil__http_parse_resp_head(guard_place(src, n), n, &r, DEF_BYTES, DEF_HEADERS);
        CHECK(rc == 18 && r.status == code && r.minor == 0 && str_is(r.reason, "R"));
        accepted += rc == 18;
    }
    CHECK(accepted == 900);
}

/*
 * Outputs a parse that did not finish leave behind. The contract promises nothing about them on 0
 * or -1, but the parser clears the framing and the header count up front, so a caller that
 * reads them by mistake never sees an earlier response's framing: kept so.
 */
static void test_flags_reset(void)
{
    current = "flags reset between parses";
    struct coil__http_header h[MAX_HEADERS];
    struct coil__http_resp r = {.headers = h};
    const char *a = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX: 1\r\n\r\n";
    const char *b = "HTTP/1.0 200 OK\r\n\r\n";
    const char *c = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n";
    size_t an = strlen(a), bn = strlen(b), cn = strlen(c);

    CHECK(coil__http_parse_resp_head(guard_place(a, an), an, &r, DEF_BYTES, DEF_HEADERS) ==
          (int)an);
    CHECK(r.flags == (KA | CHUNKED) && r.nheaders == 2);
    CHECK(coil__http_parse_resp_head(guard_place(b, bn), bn, &r, DEF_BYTES, DEF_HEADERS) ==
          (int)bn);
    CHECK(r.flags == 0 && r.nheaders == 0 && r.minor == 0);

    /* an incomplete head leaves no framing behind */
    CHECK(coil__http_parse_resp_head(guard_place(a, an), an, &r, DEF_BYTES, DEF_HEADERS) ==
          (int)an);
    CHECK(coil__http_parse_resp_head(guard_place(a, 30), 30, &r, DEF_BYTES, DEF_HEADERS) == 0);
    CHECK(r.flags == 0 && r.nheaders == 0);
    /* nor does a malformed one */
    CHECK(coil__http_parse_resp_head(guard_place(a, an), an, &r, DEF_BYTES, DEF_HEADERS) ==
          (int)an);
    CHECK(coil__http_parse_resp_head(guard_place(c, cn), cn, &r, DEF_BYTES, DEF_HEADERS) == -1);
    CHECK(r.flags == 0 && r.nheaders == 0);
}

/* The head and a chunked body after it, decoded as the client does. */
static void test_head_then_chunked(void)
{
    current = "head then chunked body";
    static const char msg[] = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                              "4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Trailer: t\r\n\r\n"
                              "HTTP/1.1 204 \r\n\r\n";
    size_t n = sizeof(msg) - 1;
    char *buf = guard_place(msg, n);
    struct coil__http_header h[MAX_HEADERS];
    struct coil__http_resp r = {.headers = h};
    int hl = coil__http_parse_resp_head(buf, n, &r, DEF_BYTES, DEF_HEADERS);
    CHECK(hl == 47);
    CHECK(r.flags == (KA | CHUNKED));
    if (hl != 47)
        return;
    struct coil__chunked c;
    coil__chunked_init(&c);
    CHECK(coil__chunked_decode(&c, buf + hl, n - (size_t)hl, 1u << 20, DEF_BYTES) == 1);
    CHECK(c.out == 9 && memcmp(buf + hl, "Wikipedia", 9) == 0);
    size_t next = (size_t)hl + c.in;
    CHECK(next == n - 17);
    int h2 = coil__http_parse_resp_head(buf + next, n - next, &r, DEF_BYTES, DEF_HEADERS);
    CHECK(h2 == 17 && r.status == 204 && r.flags == KA);
}

int main(void)
{
    guard_setup();
    for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++)
        run_valid(&valid_cases[i]);
    for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++)
        run_invalid(&invalid_cases[i]);
    test_generated_sizes();
    test_all_codes();
    test_flags_reset();
    test_head_then_chunked();
    if (failures > 0) {
        fprintf(stderr, "test_http_resp: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_http_resp: %zu valid, %zu malformed heads passed\n",
           sizeof(valid_cases) / sizeof(valid_cases[0]),
           sizeof(invalid_cases) / sizeof(invalid_cases[0]));
    return 0;
}
