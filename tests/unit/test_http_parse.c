/* SPDX-License-Identifier: MIT */
/*
 * test_http_parse: the request-head parser against tables of valid and invalid requests. Each
 * input is copied so that it ends where a PROT_NONE page begins, so reading one byte too far
 * faults. Every valid request is also parsed from each of its prefixes (each placed against the
 * guard page too): a prefix shorter than the head must give 0, a longer one the same result as
 * the whole. Every invalid input must give its status, and its prefixes 0 or that same status.
 * Limits are probed around each valid head: exactly its size passes, one byte less is 431, one
 * header fewer is 431, a body limit one byte short is 413.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "http_parse.h"

#define CHECK_STR(s, want) CHECK(str_is((s), (want)))

#define MAX_HEADERS 64


/* want NULL: an absent slice ({NULL, 0}); otherwise the exact bytes of want. */
static int str_is(struct coil_str s, const char *want)
{
    if (want == NULL)
        return s.ptr == NULL && s.len == 0;
    size_t n = strlen(want);
    return s.ptr != NULL && s.len == n && memcmp(s.ptr, want, n) == 0;
}

/* A slice lies inside buf[0..len), or is the static "/" path, or is absent. */
static int inside(struct coil_str s, const char *buf, size_t len)
{
    if (s.ptr == NULL)
        return s.len == 0;
    if (s.ptr >= buf && s.ptr <= buf + len)
        return s.len <= (size_t)(buf + len - s.ptr);
    return s.len == 1 && s.ptr[0] == '/';
}

static int same_slice(struct coil_str a, const char *abuf, size_t alen, struct coil_str b,
                      const char *bbuf, size_t blen)
{
    if (a.len != b.len)
        return 0;
    int ain = a.ptr >= abuf && a.ptr <= abuf + alen;
    int bin = b.ptr >= bbuf && b.ptr <= bbuf + blen;
    if (ain != bin)
        return 0;
    return ain ? a.ptr - abuf == b.ptr - bbuf : a.ptr == b.ptr;
}

/* Two parses of the same bytes at different addresses gave the same request. */
static int same_req(const struct coil__http_req *a, const char *abuf, size_t alen,
                    const struct coil__http_req *b, const char *bbuf, size_t blen)
{
#define SAME(f) same_slice(a->f, abuf, alen, b->f, bbuf, blen)
    if (!SAME(method) || !SAME(target) || !SAME(path) || !SAME(query) || !SAME(host))
        return 0;
    if (a->minor != b->minor || a->flags != b->flags || a->nheaders != b->nheaders)
        return 0;
    if ((a->flags & COIL_HTTP_HAS_LENGTH) && a->content_length != b->content_length)
        return 0;
    for (uint32_t i = 0; i < a->nheaders; i++)
        if (!SAME(headers[i].name) || !SAME(headers[i].value))
            return 0;
    return 1;
#undef SAME
}

static const struct coil__http_limits default_limits = {8192, 32, 1u << 20};

/* ---- valid requests ------------------------------------------------------------------------ */

struct want_header {
    const char *name, *value;
};

struct valid_case {
    const char *what;
    const char *head; /* the request head, through the empty line */
    const char *rest; /* bytes after the head (body, next request), or NULL */
    const char *method, *path, *query, *host; /* host NULL: absent */
    int minor;
    uint32_t flags;
    uint64_t length; /* checked with COIL_HTTP_HAS_LENGTH */
    uint32_t nheaders;
    struct want_header h[6];             /* the first headers, checked in order while name is set */
    const struct coil__http_limits *lim; /* NULL: default_limits */
};

#define KA COIL_HTTP_KEEP_ALIVE
#define CHUNKED COIL_HTTP_CHUNKED
#define LEN COIL_HTTP_HAS_LENGTH
#define E100 COIL_HTTP_EXPECT_100
#define HEADF COIL_HTTP_HEAD

static const struct coil__http_limits huge_body = {8192, 32, UINT64_MAX};

static const struct valid_case valid_cases[] = {
    {.what = "simple GET",
     .head = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "example.com",
     .minor = 1,
     .flags = KA,
     .nheaders = 1,
     .h = {{"Host", "example.com"}}},
    {.what = "query",
     .head = "GET /search?q=coil&x=1 HTTP/1.1\r\nHost: a\r\n\r\n",
     .method = "GET",
     .path = "/search",
     .query = "q=coil&x=1",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 1},
    {.what = "empty query",
     .head = "GET /p? HTTP/1.1\r\nHost: a\r\n\r\n",
     .method = "GET",
     .path = "/p",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 1},
    {.what = "second question mark",
     .head = "GET /a?b?c HTTP/1.1\r\nHost: a\r\n\r\n",
     .method = "GET",
     .path = "/a",
     .query = "b?c",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 1},
    {.what = "every printable byte in the target",
     .head = "GET /a-b_c.d~e!$&'()*+,;=:@%20/[x]{y}|\\^`\"<>#frag HTTP/1.1\r\nHost: a\r\n\r\n",
     .method = "GET",
     .path = "/a-b_c.d~e!$&'()*+,;=:@%20/[x]{y}|\\^`\"<>#frag",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 1},
    {.what = "browser GET",
     .head =
         "GET /index.html?lang=en HTTP/1.1\r\n"
         "Host: www.example.com\r\n"
         "User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0\r\n"
         "Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
         "Accept-Language: en-US,en;q=0.5\r\n"
         "Accept-Encoding: gzip, deflate, br\r\n"
         "Cookie: a=1; b=2\r\n"
         "\r\n",
     .method = "GET",
     .path = "/index.html",
     .query = "lang=en",
     .host = "www.example.com",
     .minor = 1,
     .flags = KA,
     .nheaders = 6,
     .h = {{"Host", "www.example.com"},
           {"User-Agent", "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Firefox/115.0"},
           {"Accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"},
           {"Accept-Language", "en-US,en;q=0.5"},
           {"Accept-Encoding", "gzip, deflate, br"},
           {"Cookie", "a=1; b=2"}}},
    {.what = "POST with body",
     .head = "POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\n",
     .rest = "hello",
     .method = "POST",
     .path = "/api",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA | LEN,
     .length = 5,
     .nheaders = 2,
     .h = {{"Host", "a"}, {"Content-Length", "5"}}},
    {.what = "POST empty body",
     .head = "POST /api HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
     .method = "POST",
     .path = "/api",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA | LEN,
     .length = 0,
     .nheaders = 2},
    {.what = "Content-Length list of equal members",
     .head = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5,5 ,\t5\r\n\r\n",
     .rest = "hello",
     .method = "POST",
     .path = "/",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA | LEN,
     .length = 5,
     .nheaders = 2},
    {.what = "Content-Length repeated, agreeing, leading zeros",
     .head = "POST / HTTP/1.1\r\nContent-Length: 3\r\nHost: a\r\ncontent-length: 003\r\n\r\n",
     .rest = "abc",
     .method = "POST",
     .path = "/",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA | LEN,
     .length = 3,
     .nheaders = 3},
    {.what = "Content-Length at the body limit",
     .head = "PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 1048576\r\n\r\n",
     .method = "PUT",
     .path = "/f",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA | LEN,
     .length = 1048576,
     .nheaders = 2},
    {.what = "Content-Length 2^64-1",
     .head = "PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n",
     .method = "PUT",
     .path = "/f",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA | LEN,
     .length = UINT64_MAX,
     .nheaders = 2,
     .lim = &huge_body},
    {.what = "chunked",
     .head = "POST /up HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n",
     .rest = "5\r\nhello\r\n0\r\n\r\n",
     .method = "POST",
     .path = "/up",
     .query = "",
     .host = "h",
     .minor = 1,
     .flags = KA | CHUNKED,
     .nheaders = 2,
     .h = {{"Host", "h"}, {"Transfer-Encoding", "chunked"}}},
    {.what = "chunked, any case, empty list members",
     .head = "POST /up HTTP/1.1\r\nHost: h\r\ntransfer-encoding: , CHUNKED ,\r\n\r\n",
     .method = "POST",
     .path = "/up",
     .query = "",
     .host = "h",
     .minor = 1,
     .flags = KA | CHUNKED,
     .nheaders = 2},
    {.what = "HTTP/1.0 without Host",
     .head = "GET / HTTP/1.0\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = NULL,
     .minor = 0,
     .flags = 0,
     .nheaders = 0},
    {.what = "HTTP/1.0 with Host",
     .head = "GET /x HTTP/1.0\r\nHost: a\r\n\r\n",
     .method = "GET",
     .path = "/x",
     .query = "",
     .host = "a",
     .minor = 0,
     .flags = 0,
     .nheaders = 1},
    {.what = "HTTP/1.0 keep-alive",
     .head = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .minor = 0,
     .flags = KA,
     .nheaders = 1},
    {.what = "HTTP/1.0 Keep-Alive in a list",
     .head = "GET / HTTP/1.0\r\nConnection: Upgrade,  Keep-Alive \r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .minor = 0,
     .flags = KA,
     .nheaders = 1},
    {.what = "HTTP/1.0 keep-alive and close",
     .head = "GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .minor = 0,
     .flags = 0,
     .nheaders = 1},
    {.what = "HTTP/1.0 POST with length",
     .head = "POST / HTTP/1.0\r\nContent-Length: 2\r\n\r\n",
     .rest = "ok",
     .method = "POST",
     .path = "/",
     .query = "",
     .minor = 0,
     .flags = LEN,
     .length = 2,
     .nheaders = 1},
    {.what = "HTTP/1.1 close",
     .head = "GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = 0,
     .nheaders = 2},
    {.what = "HTTP/1.1 CLOSE in a list",
     .head = "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, CLOSE\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = 0,
     .nheaders = 2},
    {.what = "HTTP/1.1 close in a second Connection line",
     .head = "GET / HTTP/1.1\r\nConnection: te\r\nHost: a\r\nConnection: ,close,\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = 0,
     .nheaders = 3},
    {.what = "HTTP/1.1 explicit keep-alive",
     .head = "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 2},
    {.what = "Connection tokens that only start like close",
     .head = "GET / HTTP/1.1\r\nHost: a\r\nConnection: closed, close-x, xclose\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 2},
    {.what = "absolute-form",
     .head = "GET http://example.com/a/b?x=1 HTTP/1.1\r\nHost: other\r\n\r\n",
     .method = "GET",
     .path = "/a/b",
     .query = "x=1",
     .host = "example.com",
     .minor = 1,
     .flags = KA,
     .nheaders = 1,
     .h = {{"Host", "other"}}},
    {.what = "absolute-form https, upper case, no path",
     .head = "GET HTTPS://Example.com:8443 HTTP/1.1\r\nHost: x\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "Example.com:8443",
     .minor = 1,
     .flags = KA,
     .nheaders = 1},
    {.what = "absolute-form query without path",
     .head = "GET http://h?q=1 HTTP/1.1\r\nHost: h\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "q=1",
     .host = "h",
     .minor = 1,
     .flags = KA,
     .nheaders = 1},
    {.what = "absolute-form IPv6 on HTTP/1.0",
     .head = "GET http://[::1]:80/ HTTP/1.0\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "[::1]:80",
     .minor = 0,
     .flags = 0,
     .nheaders = 0},
    {.what = "OPTIONS *",
     .head = "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
     .method = "OPTIONS",
     .path = "*",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 1},
    {.what = "duplicate headers kept in order",
     .head = "GET / HTTP/1.1\r\nX-A: 1\r\nHost: a\r\nX-B: 2\r\nx-a: 3\r\nX-A: 4\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 5,
     .h = {{"X-A", "1"}, {"Host", "a"}, {"X-B", "2"}, {"x-a", "3"}, {"X-A", "4"}}},
    {.what = "obs-text in a value",
     .head = "GET / HTTP/1.1\r\nHost: a\r\nX-Name: caf\xc3\xa9 \xff\x80!\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 2,
     .h = {{"Host", "a"}, {"X-Name", "caf\xc3\xa9 \xff\x80!"}}},
    {.what = "tab inside a value",
     .head = "GET / HTTP/1.1\r\nHost: a\r\nX-T: a\tb\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 2,
     .h = {{"Host", "a"}, {"X-T", "a\tb"}}},
    {.what = "tabs inside a long value",
     .head = "GET / HTTP/1.1\r\nHost: a\r\n"
             "X-T: 0123456789abcdef\t0123456789\tabcdef0123456789abcdef\t\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 2,
     .h = {{"Host", "a"}, {"X-T", "0123456789abcdef\t0123456789\tabcdef0123456789abcdef"}}},
    {.what = "OWS trimmed",
     .head = "GET / HTTP/1.1\r\nHost:\t a \t\r\nX-T: \t value  with spaces \t \r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 2,
     .h = {{"Host", "a"}, {"X-T", "value  with spaces"}}},
    {.what = "empty values",
     .head = "GET / HTTP/1.1\r\nHost: a\r\nX-E:\r\nX-F:   \t\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 3,
     .h = {{"Host", "a"}, {"X-E", ""}, {"X-F", ""}}},
    {.what = "no space after colon",
     .head = "GET / HTTP/1.1\r\nHost:a\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 1},
    {.what = "HEAD",
     .head = "HEAD /x HTTP/1.1\r\nHost: a\r\n\r\n",
     .method = "HEAD",
     .path = "/x",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA | HEADF,
     .nheaders = 1},
    {.what = "HEAD is case-sensitive",
     .head = "head /x HTTP/1.1\r\nHost: a\r\n\r\n",
     .method = "head",
     .path = "/x",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 1},
    {.what = "HEADER is not HEAD",
     .head = "HEADER /x HTTP/1.1\r\nHost: a\r\n\r\n",
     .method = "HEADER",
     .path = "/x",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 1},
    {.what = "Expect: 100-continue",
     .head = "PUT /f HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
     .rest = "abc",
     .method = "PUT",
     .path = "/f",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA | LEN | E100,
     .length = 3,
     .nheaders = 3},
    {.what = "Expect: 100-Continue, any case, with chunked",
     .head =
         "PUT /f HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nEXPECT: 100-Continue\r\n\r\n",
     .method = "PUT",
     .path = "/f",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA | CHUNKED | E100,
     .nheaders = 3},
    {.what = "Expect: 100-continue ignored on HTTP/1.0",
     .head = "PUT /f HTTP/1.0\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n",
     .rest = "abc",
     .method = "PUT",
     .path = "/f",
     .query = "",
     .minor = 0,
     .flags = LEN,
     .length = 3,
     .nheaders = 2},
    {.what = "empty Host",
     .head = "GET / HTTP/1.1\r\nHost:\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "",
     .minor = 1,
     .flags = KA,
     .nheaders = 1},
    {.what = "Host with IPv6 literal and port",
     .head = "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "[::1]:8080",
     .minor = 1,
     .flags = KA,
     .nheaders = 1},
    {.what = "Host name in capitals",
     .head = "GET / HTTP/1.1\r\nHOST: a.b\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "a.b",
     .minor = 1,
     .flags = KA,
     .nheaders = 1},
    {.what = "empty lines before the request line",
     .head = "\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 1},
    {.what = "pipelined request after the head",
     .head = "GET /1 HTTP/1.1\r\nHost: a\r\n\r\n",
     .rest = "GET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
     .method = "GET",
     .path = "/1",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 1},
    {.what = "extension method",
     .head = "M-SEARCH /x HTTP/1.1\r\nHost: a\r\n\r\n",
     .method = "M-SEARCH",
     .path = "/x",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 1},
    {.what = "method with every tchar",
     .head = "!#$%&'*+-.^_`|~09azAZ /x HTTP/1.1\r\nHost: a\r\n\r\n",
     .method = "!#$%&'*+-.^_`|~09azAZ",
     .path = "/x",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 1},
    {.what = "field name with every tchar",
     .head = "GET / HTTP/1.1\r\nHost: a\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 2,
     .h = {{"Host", "a"}, {"!#$%&'*+-.^_`|~09azAZ", "v"}}},
    {.what = "value with colons and slashes",
     .head = "GET / HTTP/1.1\r\nHost: a\r\nReferer: http://x/y?z=1:2\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 2,
     .h = {{"Host", "a"}, {"Referer", "http://x/y?z=1:2"}}},
    {.what = "names that look like known ones",
     .head = "GET / HTTP/1.1\r\nHost: a\r\nHosts: b c\r\nContent-Lengths: x\r\nExpects: y\r\n"
             "Transfer-Encodings: gzip\r\nConnections: close\r\n\r\n",
     .method = "GET",
     .path = "/",
     .query = "",
     .host = "a",
     .minor = 1,
     .flags = KA,
     .nheaders = 6},
};

static void check_expected(const struct valid_case *v, const struct coil__http_req *req,
                           const char *buf, size_t n)
{
    CHECK_STR(req->method, v->method);
    CHECK_STR(req->path, v->path);
    CHECK_STR(req->query, v->query);
    CHECK_STR(req->host, v->host);
    CHECK(req->minor == v->minor);
    CHECK(req->flags == v->flags);
    if (v->flags & LEN)
        CHECK(req->content_length == v->length);
    CHECK(req->nheaders == v->nheaders);
    for (size_t i = 0; i < 6 && v->h[i].name != NULL && i < req->nheaders; i++) {
        CHECK_STR(req->headers[i].name, v->h[i].name);
        CHECK_STR(req->headers[i].value, v->h[i].value);
    }
    CHECK(inside(req->method, buf, n) && inside(req->target, buf, n) && inside(req->path, buf, n));
    CHECK(inside(req->query, buf, n) && inside(req->host, buf, n));
    for (uint32_t i = 0; i < req->nheaders; i++)
        CHECK(inside(req->headers[i].name, buf, n) && inside(req->headers[i].value, buf, n));
}

/* Limits tightened around this head: exact size and count pass, one less fails. */
static void probe_limits(const struct valid_case *v, const char *src, size_t n, size_t hl,
                         const struct coil__http_limits *lim)
{
    struct coil__http_header h[MAX_HEADERS];
    struct coil__http_req req = {.headers = h};
    struct coil__http_limits l = *lim;
    const char *buf = guard_place(src, n);

    l.max_header_bytes = (uint32_t)hl;
    CHECK(coil__http_parse_head(buf, n, &req, &l) == (int)hl);
    l.max_header_bytes = (uint32_t)hl - 1;
    CHECK(coil__http_parse_head(buf, n, &req, &l) == -431);

    l = *lim;
    l.max_headers = v->nheaders;
    CHECK(coil__http_parse_head(buf, n, &req, &l) == (int)hl);
    if (v->nheaders > 0) {
        l.max_headers = v->nheaders - 1;
        CHECK(coil__http_parse_head(buf, n, &req, &l) == -431);
    }

    if ((v->flags & LEN) && v->length > 0) {
        l = *lim;
        l.max_body_bytes = v->length;
        CHECK(coil__http_parse_head(buf, n, &req, &l) == (int)hl);
        l.max_body_bytes = v->length - 1;
        CHECK(coil__http_parse_head(buf, n, &req, &l) == -413);
    }
}

static void run_valid(const struct valid_case *v)
{
    const struct coil__http_limits *lim = v->lim ? v->lim : &default_limits;
    size_t hl = strlen(v->head), rl = v->rest ? strlen(v->rest) : 0, n = hl + rl;
    char *src = malloc(n + 1);
    memcpy(src, v->head, hl);
    memcpy(src + hl, v->rest ? v->rest : "", rl);
    current = v->what;

    struct coil__http_header ha[MAX_HEADERS], hb[MAX_HEADERS];
    struct coil__http_req a = {.headers = ha}, b = {.headers = hb};
    const char *buf = guard_place(src, n);
    int r = coil__http_parse_head(buf, n, &a, lim);
    CHECK(r == (int)hl);
    if (r != (int)hl) {
        fprintf(stderr, "  [%s] returned %d, want %zu\n", v->what, r, hl);
        free(src);
        return;
    }
    check_expected(v, &a, buf, n);

    /* Every prefix, each against the guard page; buf's bytes move, its offsets stay valid. */
    for (size_t k = 0; k <= n; k++) {
        const char *pb = guard_place(src, k);
        int rk = coil__http_parse_head(pb, k, &b, lim);
        if (k < hl) {
            CHECK(rk == 0);
            if (rk != 0)
                fprintf(stderr, "  [%s] prefix %zu returned %d\n", v->what, k, rk);
        } else {
            CHECK(rk == r);
            CHECK(same_req(&a, buf, n, &b, pb, k));
        }
    }
    probe_limits(v, src, n, hl, lim);
    free(src);
}

/* ---- invalid requests ---------------------------------------------------------------------- */

struct invalid_case {
    const char *what;
    const char *in;
    int status;                          /* negative, as returned */
    const struct coil__http_limits *lim; /* NULL: default_limits */
    size_t len;                          /* 0: strlen(in); set for inputs holding a NUL */
};

static const struct coil__http_limits tiny_limits = {64, 2, 10};
static const struct coil__http_limits no_headers = {8192, 0, 10};

#define H11 " HTTP/1.1\r\nHost: a\r\n"

#define BAD(w, i, s)                                                                               \
    {                                                                                              \
        .what = (w), .in = (i), .status = (s)                                                      \
    }
#define BAD_LIM(w, i, s, l)                                                                        \
    {                                                                                              \
        .what = (w), .in = (i), .status = (s), .lim = (l)                                          \
    }
#define BAD_BIN(w, i, s)                                                                           \
    {                                                                                              \
        .what = (w), .in = (i), .status = (s), .len = sizeof(i) - 1                                \
    }

static const struct invalid_case invalid_cases[] = {
    /* request line, reported as soon as the prefix cannot be valid */
    BAD("bad method byte, incomplete", "G@T", -400),
    BAD("bad method byte", "G@T / HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("leading space", " GET / HTTP/1.1\r\n", -400),
    BAD("empty method", " / HTTP/1.1\r\n", -400),
    BAD("tab after method", "GET\t/ HTTP/1.1\r\n", -400),
    BAD("two spaces before target, incomplete", "GET  /", -400),
    BAD("two spaces before version, incomplete", "GET /  HTTP", -400),
    BAD("method then CRLF", "GET\r\n", -400),
    BAD("method then LF", "GET\n", -400),
    BAD("HTTP/0.9 request", "GET /\r\n\r\n", -400),
    BAD("origin-form without slash", "GET foo HTTP/1.1\r\n", -400),
    BAD("target starting with a digit, incomplete", "GET 1", -400),
    BAD("asterisk with GET", "GET * HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("asterisk with more, incomplete", "OPTIONS *x", -400),
    BAD("asterisk then slash", "OPTIONS */ HTTP/1.1\r\n", -400),
    BAD("authority-form", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com\r\n\r\n", -400),
    BAD("ftp scheme, incomplete", "GET ftp:", -400),
    BAD("httpx scheme, incomplete", "GET httpx", -400),
    BAD("http with one slash", "GET http:/x HTTP/1.1\r\n", -400),
    BAD("http scheme only", "GET http:// HTTP/1.1\r\n", -400),
    BAD("https truncated scheme", "GET https: HTTP/1.1\r\n", -400),
    BAD("absolute-form empty authority", "GET http:///p HTTP/1.1\r\n", -400),
    BAD("absolute-form userinfo", "GET http://u@h/ HTTP/1.1\r\nHost: h\r\n\r\n", -400),
    BAD("absolute-form bad authority byte", "GET http://a#b/ HTTP/1.1\r\nHost: h\r\n\r\n", -400),
    BAD_BIN("NUL in target", "GET /a\0b HTTP/1.1\r\n", -400),
    BAD("tab in target", "GET /a\tb HTTP/1.1\r\n", -400),
    BAD("DEL in target", "GET /a\x7f HTTP/1.1\r\n", -400),
    BAD("non-ASCII in target", "GET /caf\xc3\xa9 HTTP/1.1\r\n", -400),
    BAD("0x80 in a long target", "GET /0123456789abcdef0123\x80 HTTP/1.1\r\n", -400),
    BAD("CR in target", "GET /a\r\n", -400),
    BAD("lower-case version, incomplete", "GET / http/1.1", -400),
    BAD("lower-case version prefix", "GET / h", -400),
    BAD("version with extra space", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n", -400),
    BAD("version with two-digit minor", "GET / HTTP/1.10\r\n", -400),
    BAD("version with two-digit major", "GET / HTTP/11.1\r\n", -400),
    BAD("version with letters", "GET / HTTP/1.x\r\n", -400),
    BAD("version without dot", "GET / HTTP/1-1\r\n", -400),
    BAD("version truncated by CR", "GET / HTTP/1\r\n", -400),
    BAD("HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", -505),
    BAD("HTTP/2.0, incomplete", "GET / HTTP/2.0", -505),
    BAD("HTTP/1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", -505),
    BAD("HTTP/3.0", "GET / HTTP/3.0\r\n", -505),
    BAD("HTTP/0.9", "GET / HTTP/0.9\r\n", -505),
    BAD("HTTP/2.0 then junk", "GET / HTTP/2.0 junk\r\n", -505),
    BAD("request line bare LF", "GET / HTTP/1.1\nHost: a\r\n\r\n", -400),
    BAD("request line CR without LF", "GET / HTTP/1.1\rHost: a\r\n\r\n", -400),
    BAD("leading bare LF", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    BAD("leading CR without LF", "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", -400),
    /* field lines */
    BAD("space before colon", "GET /" H11 "X-A : 1\r\n\r\n", -400),
    BAD("tab before colon", "GET /" H11 "X-A\t: 1\r\n\r\n", -400),
    BAD("Host space before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n", -400),
    BAD("obs-fold", "GET /" H11 "X-A: 1\r\n 2\r\n\r\n", -400),
    BAD("obs-fold with tab", "GET /" H11 "X-A: 1\r\n\t2\r\n\r\n", -400),
    BAD("space-led first field line", "GET / HTTP/1.1\r\n Host: a\r\n\r\n", -400),
    BAD("empty field name", "GET /" H11 ": v\r\n\r\n", -400),
    BAD("non-token byte in name", "GET /" H11 "X(A): v\r\n\r\n", -400),
    BAD("non-ASCII byte in name", "GET /" H11 "X\xc3\xa9: v\r\n\r\n", -400),
    BAD("line without colon", "GET /" H11 "Broken\r\n\r\n", -400),
    BAD("bare LF after a field", "GET / HTTP/1.1\r\nHost: a\n\r\n", -400),
    BAD("bare LF as the empty line", "GET / HTTP/1.1\r\nHost: a\r\n\n", -400),
    BAD("CR without LF in a value", "GET /" H11 "X-A: a\rb\r\n\r\n", -400),
    BAD("CR without LF as the empty line", "GET /" H11 "\rX", -400),
    BAD_BIN("NUL in a value", "GET /" H11 "X-A: a\0b\r\n\r\n", -400),
    BAD("SOH in a value", "GET /" H11 "X-A: \x01\r\n\r\n", -400),
    BAD("VT in a value", "GET /" H11 "X-A: a\vb\r\n\r\n", -400),
    BAD("DEL in a value", "GET /" H11 "X-A: a\x7f\r\n\r\n", -400),
    BAD("DEL late in a long value", "GET /" H11 "X-A: 0123456789abcdef0123456789\x7f\r\n\r\n",
        -400),
    BAD("ESC in a long value",
        "GET /" H11 "X-A: 0123456789abcdef01234\x1b"
        "56789abcdef\r\n\r\n",
        -400),
    BAD("LF in a long value", "GET /" H11 "X-A: 0123456789abcdef01234\n56789abcdef\r\n\r\n", -400),
    /* Host */
    BAD("HTTP/1.1 without Host", "GET / HTTP/1.1\r\nX-A: 1\r\n\r\n", -400),
    BAD("HTTP/1.1 without any field", "GET / HTTP/1.1\r\n\r\n", -400),
    BAD("two Host lines", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", -400),
    BAD("two Host lines on HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n", -400),
    BAD("absolute-form without Host", "GET http://a/ HTTP/1.1\r\n\r\n", -400),
    BAD("Host with a space", "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", -400),
    BAD("Host with a tab", "GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n", -400),
    BAD("Host with a slash", "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", -400),
    BAD("Host with userinfo", "GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", -400),
    BAD("Host with non-ASCII", "GET / HTTP/1.1\r\nHost: caf\xc3\xa9\r\n\r\n", -400),
    BAD("Host with a control byte", "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", -400),
    /* Content-Length */
    BAD("Content-Length not a number", "POST /" H11 "Content-Length: abc\r\n\r\n", -400),
    BAD("Content-Length empty", "POST /" H11 "Content-Length:\r\n\r\n", -400),
    BAD("Content-Length negative", "POST /" H11 "Content-Length: -1\r\n\r\n", -400),
    BAD("Content-Length with plus", "POST /" H11 "Content-Length: +1\r\n\r\n", -400),
    BAD("Content-Length decimal", "POST /" H11 "Content-Length: 1.0\r\n\r\n", -400),
    BAD("Content-Length hex", "POST /" H11 "Content-Length: 0x10\r\n\r\n", -400),
    BAD("Content-Length with inner space", "POST /" H11 "Content-Length: 1 2\r\n\r\n", -400),
    BAD("Content-Length list disagreeing", "POST /" H11 "Content-Length: 5, 6\r\n\r\n", -400),
    BAD("Content-Length list trailing comma", "POST /" H11 "Content-Length: 5,\r\n\r\n", -400),
    BAD("Content-Length list leading comma", "POST /" H11 "Content-Length: ,5\r\n\r\n", -400),
    BAD("Content-Length lines disagreeing",
        "POST /" H11 "Content-Length: 5\r\nContent-Length: 6\r\n\r\n", -400),
    BAD("Content-Length just over 2^64",
        "POST /" H11 "Content-Length: 18446744073709551616\r\n\r\n", -400),
    BAD("Content-Length far over 2^64",
        "POST /" H11 "Content-Length: 99999999999999999999999\r\n\r\n", -400),
    BAD("Content-Length over the body limit", "POST /" H11 "Content-Length: 1048577\r\n\r\n", -413),
    BAD("Content-Length over the limit, then a bad line",
        "POST /" H11 "Content-Length: 99999999\r\nBad Line: x\r\n\r\n", -400),
    BAD("Content-Length over the limit, no Host",
        "POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n", -400),
    /* Transfer-Encoding */
    BAD("Transfer-Encoding with Content-Length",
        "POST /" H11 "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n", -400),
    BAD("Content-Length with Transfer-Encoding",
        "POST /" H11 "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", -400),
    BAD("Transfer-Encoding on HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        -400),
    BAD("gzip, chunked", "POST /" H11 "Transfer-Encoding: gzip, chunked\r\n\r\n", -501),
    BAD("gzip then chunked in two lines",
        "POST /" H11 "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n", -501),
    BAD("identity", "POST /" H11 "Transfer-Encoding: identity\r\n\r\n", -501),
    BAD("gzip alone", "POST /" H11 "Transfer-Encoding: gzip\r\n\r\n", -501),
    BAD("gzip with parameters, chunked",
        "POST /" H11 "Transfer-Encoding: gzip;x=1, chunked\r\n\r\n", -501),
    BAD("chunked, chunked", "POST /" H11 "Transfer-Encoding: chunked, chunked\r\n\r\n", -400),
    BAD("chunked in two lines",
        "POST /" H11 "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", -400),
    BAD("chunked, gzip", "POST /" H11 "Transfer-Encoding: chunked, gzip\r\n\r\n", -400),
    BAD("chunked with parameters", "POST /" H11 "Transfer-Encoding: chunked;x=1\r\n\r\n", -400),
    BAD("Transfer-Encoding empty", "POST /" H11 "Transfer-Encoding:\r\n\r\n", -400),
    BAD("Transfer-Encoding only commas", "POST /" H11 "Transfer-Encoding: , ,\r\n\r\n", -400),
    BAD("Transfer-Encoding junk after coding", "POST /" H11 "Transfer-Encoding: chunked x\r\n\r\n",
        -400),
    BAD("Transfer-Encoding non-token", "POST /" H11 "Transfer-Encoding: \"chunked\"\r\n\r\n", -400),
    BAD("gzip, chunked with Content-Length",
        "POST /" H11 "Transfer-Encoding: gzip, chunked\r\nContent-Length: 1\r\n\r\n", -400),
    BAD("gzip, chunked, then a bad line",
        "POST /" H11 "Transfer-Encoding: gzip, chunked\r\nX Y: z\r\n\r\n", -400),
    /* Expect */
    BAD("Expect: something else", "PUT /" H11 "Expect: the-unexpected\r\n\r\n", -417),
    BAD("Expect: 100-continue in a list", "PUT /" H11 "Expect: 100-continue, x\r\n\r\n", -417),
    BAD("Expect: empty", "PUT /" H11 "Expect:\r\n\r\n", -417),
    BAD("Expect on HTTP/1.0, unknown", "PUT / HTTP/1.0\r\nExpect: foo\r\n\r\n", -417),
    BAD("Expect unknown, then a bad line", "PUT /" H11 "Expect: foo\r\nBad\r\n\r\n", -400),
    BAD("Expect unknown and body too large",
        "PUT /" H11 "Expect: foo\r\nContent-Length: 2000000\r\n\r\n", -413),
    BAD("Expect unknown with gzip", "PUT /" H11 "Expect: foo\r\nTransfer-Encoding: gzip\r\n\r\n",
        -501),
    /* sizes (tiny_limits: 64 bytes, 2 headers, 10-byte body) */
    BAD_LIM(
        "request line over the limit",
        "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n",
        -414, &tiny_limits),
    BAD_LIM("request line over the limit, incomplete",
            "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", -414,
            &tiny_limits),
    BAD_LIM("request line LF one past the limit",
            "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n", -414,
            &tiny_limits),
    BAD_LIM("bad byte before the limit wins over 414",
            "GET /aaaaaaaa\x01"
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            -400, &tiny_limits),
    BAD_LIM("head over the limit",
            "GET / HTTP/1.1\r\nHost: a\r\nX-A: 0123456789012345678901234567890123456789\r\n\r\n",
            -431, &tiny_limits),
    BAD_LIM("head over the limit, incomplete",
            "GET / HTTP/1.1\r\nHost: a\r\nX-A: 0123456789012345678901234567890123456789", -431,
            &tiny_limits),
    BAD_LIM("empty line one past the limit",
            "GET / HTTP/1.1\r\nHost: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n", -431,
            &tiny_limits),
    BAD_LIM("too many headers", "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n", -431,
            &tiny_limits),
    BAD_LIM("a header when none are allowed", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", -431,
            &no_headers),
    BAD_LIM("body limit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", -413,
            &tiny_limits),
};

static void run_invalid(const struct invalid_case *c)
{
    const struct coil__http_limits *lim = c->lim ? c->lim : &default_limits;
    size_t n = c->len ? c->len : strlen(c->in);
    struct coil__http_header h[MAX_HEADERS];
    struct coil__http_req req = {.headers = h};
    current = c->what;

    int r = coil__http_parse_head(guard_place(c->in, n), n, &req, lim);
    CHECK(r == c->status);
    if (r != c->status)
        fprintf(stderr, "  [%s] returned %d, want %d\n", c->what, r, c->status);
    for (size_t k = 0; k < n; k++) {
        int rk = coil__http_parse_head(guard_place(c->in, k), k, &req, lim);
        CHECK(rk == 0 || rk == c->status);
        if (rk != 0 && rk != c->status)
            fprintf(stderr, "  [%s] prefix %zu returned %d\n", c->what, k, rk);
    }
}

/* ---- generated cases ----------------------------------------------------------------------- */

/* A head of exactly max_header_bytes bytes passes; 431 and 414 land at the right limits. */
static void test_generated_sizes(void)
{
    current = "generated sizes";
    static char src[GUARD_ROOM];
    struct coil__http_header h[MAX_HEADERS];
    struct coil__http_req req = {.headers = h};
    struct coil__http_limits lim = {8192, 32, 1 << 20};

    /* a 8192-byte head: request line, Host, one filler field sized to land on the limit */
    const char *pre = "GET / HTTP/1.1\r\nHost: a\r\nX-Fill: ";
    size_t n = strlen(pre);
    memcpy(src, pre, n);
    while (n < 8192 - 4)
        src[n++] = 'f';
    memcpy(src + n, "\r\n\r\n", 4);
    n += 4;
    CHECK(coil__http_parse_head(guard_place(src, n), n, &req, &lim) == 8192);
    CHECK(req.headers[1].value.len == 8192 - 4 - strlen(pre));
    lim.max_header_bytes = 8191;
    CHECK(coil__http_parse_head(guard_place(src, n), n, &req, &lim) == -431);
    CHECK(coil__http_parse_head(guard_place(src, 8191), 8191, &req, &lim) == -431);
    CHECK(coil__http_parse_head(guard_place(src, 8190), 8190, &req, &lim) == 0);

    /* a request line of 8192 bytes with its CRLF */
    n = 0;
    memcpy(src, "GET /", 5);
    n = 5;
    while (n < 8192 - 11)
        src[n++] = 'p';
    memcpy(src + n, " HTTP/1.1\r\nHost: a\r\n\r\n", 22);
    n += 22;
    lim.max_header_bytes = 8192 + 11;
    CHECK(coil__http_parse_head(guard_place(src, n), n, &req, &lim) == (int)n);
    lim.max_header_bytes = 8192;
    CHECK(coil__http_parse_head(guard_place(src, n), n, &req, &lim) == -431);
    lim.max_header_bytes = 8191;
    CHECK(coil__http_parse_head(guard_place(src, n), n, &req, &lim) == -414);
    CHECK(coil__http_parse_head(guard_place(src, 8191), 8191, &req, &lim) == -414);
    CHECK(coil__http_parse_head(guard_place(src, 8190), 8190, &req, &lim) == 0);

    /* exactly max_headers fields pass, one more is 431 */
    n = (size_t)sprintf(src, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 1; i < 32; i++)
        n += (size_t)sprintf(src + n, "X-%d: %d\r\n", i, i);
    memcpy(src + n, "\r\n", 2);
    lim.max_header_bytes = 8192;
    CHECK(coil__http_parse_head(guard_place(src, n + 2), n + 2, &req, &lim) == (int)n + 2);
    CHECK(req.nheaders == 32);
    n += (size_t)sprintf(src + n, "X-Last: 1\r\n\r\n");
    CHECK(coil__http_parse_head(guard_place(src, n), n, &req, &lim) == -431);
}

/* Two pipelined requests parsed one after the other from one buffer. */
static void test_pipelined(void)
{
    current = "pipelined";
    const char *two = "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
                      "POST /b?c HTTP/1.0\r\nContent-Length: 2\r\n\r\nok";
    size_t n = strlen(two);
    const char *buf = guard_place(two, n);
    struct coil__http_header h[MAX_HEADERS];
    struct coil__http_req req = {.headers = h};
    int r1 = coil__http_parse_head(buf, n, &req, &default_limits);
    CHECK(r1 == 28);
    CHECK_STR(req.path, "/a");
    int r2 = coil__http_parse_head(buf + r1, n - (size_t)r1, &req, &default_limits);
    CHECK(r2 == (int)(n - (size_t)r1 - 2));
    CHECK_STR(req.method, "POST");
    CHECK_STR(req.path, "/b");
    CHECK_STR(req.query, "c");
    CHECK(req.minor == 0 && req.flags == LEN && req.content_length == 2);
}

static void test_name_eq(void)
{
    current = "coil__http_name_eq";
    struct coil_str s = {"Content-Length", 14};
    CHECK(coil__http_name_eq(s, "content-length"));
    CHECK(!coil__http_name_eq(s, "content-lengt"));
    CHECK(!coil__http_name_eq(s, "content-lengths"));
    CHECK(!coil__http_name_eq(s, "content_length"));
    CHECK(coil__http_name_eq((struct coil_str){"HOST", 4}, "host"));
    CHECK(coil__http_name_eq((struct coil_str){"", 0}, ""));
    CHECK(!coil__http_name_eq((struct coil_str){"", 0}, "x"));
    CHECK(!coil__http_name_eq((struct coil_str){"a\0", 2}, "a"));
    CHECK(!coil__http_name_eq((struct coil_str){"\xc1", 1}, "a"));
}

int main(void)
{
    guard_setup();
    for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++)
        run_valid(&valid_cases[i]);
    for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++)
        run_invalid(&invalid_cases[i]);
    test_generated_sizes();
    test_pipelined();
    test_name_eq();
    if (failures > 0) {
        fprintf(stderr, "test_http_parse: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_http_parse: %zu valid, %zu invalid cases passed\n",
           sizeof(valid_cases) / sizeof(valid_cases[0]),
           sizeof(invalid_cases) / sizeof(invalid_cases[0]));
    return 0;
}
