/* SPDX-License-Identifier: MIT */
/*
 * test_chunked: the in-place chunked body decoder against tables of valid and invalid bodies.
 * Each valid body is decoded in one call, then one byte at a time, then in pseudo-random
 * splits; every way must give the same body, stop at the same offset (bytes of a pipelined
 * request after the body are left alone) and keep out <= in <= len. In the byte-at-a-time run
 * the bytes handed over are copied so that they end where a PROT_NONE page begins, so reading
 * past len faults. Each invalid body must give its status the same way however it is split,
 * never an earlier different answer, and keep giving it when called again.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guard.h"
#include "http_parse.h"

#define MAX_BODY (1u << 20)
#define MAX_HEADER_BYTES 8192u

static uint64_t rng_state;

static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* The outcome of decoding one input. */
struct outcome {
    int r;
    size_t in, out;
    char *buf; /* the decoded buffer (caller frees) */
};

/* Decodes src[0..n) fed in steps of 1..max_step bytes (0: all at once; 1: byte by byte). */
static struct outcome decode_split(const char *src, size_t n, size_t max_step, uint64_t max_body,
                                   uint32_t max_hdr)
{
    struct outcome o = {0, 0, 0, malloc(n + 1)};
    struct coil__chunked c;
    coil__chunked_init(&c);
    memcpy(o.buf, src, n);
    size_t len = 0;
    do {
        size_t step = max_step == 0 ? n : 1 + (size_t)(rng() % max_step);
        len = n - len < step ? n : len + step;
        o.r = coil__chunked_decode(&c, o.buf, len, max_body, max_hdr);
        CHECK(c.out <= c.in && c.in <= len);
        CHECK(o.r == 0 || o.r == 1 || o.r == -400 || o.r == -413);
    } while (o.r == 0 && len < n);
    o.in = c.in;
    o.out = c.out;
    /* a finished decoder answers the same again and moves nothing */
    size_t in = c.in, out = c.out;
    CHECK(coil__chunked_decode(&c, o.buf, len, max_body, max_hdr) == o.r);
    CHECK(c.in == in && c.out == out);
    return o;
}

/*
 * Byte by byte, with the len bytes of each call copied against the guard page (and back: the
 * decoder writes in place). Every call before the last must return 0.
 */
static struct outcome decode_guarded(const char *src, size_t n, uint64_t max_body, uint32_t max_hdr)
{
    struct outcome o = {0, 0, 0, malloc(n + 1)};
    struct coil__chunked c;
    coil__chunked_init(&c);
    memcpy(o.buf, src, n);
    for (size_t len = 1; len <= n; len++) {
        char *g = guard_end - len;
        memcpy(g, o.buf, len);
        o.r = coil__chunked_decode(&c, g, len, max_body, max_hdr);
        memcpy(o.buf, g, len);
        CHECK(c.out <= c.in && c.in <= len);
        if (o.r != 0)
            break;
    }
    o.in = c.in;
    o.out = c.out;
    return o;
}

/* ---- valid bodies -------------------------------------------------------------------------- */

struct valid_case {
    const char *what;
    const char *in;    /* the framed body */
    size_t in_len;     /* 0: strlen(in) */
    const char *body;  /* the decoded body */
    size_t body_len;   /* 0: strlen(body) */
    uint64_t max_body; /* 0: MAX_BODY */
    uint32_t max_hdr;  /* 0: MAX_HEADER_BYTES */
};

static const struct valid_case valid_cases[] = {
    {.what = "empty body", .in = "0\r\n\r\n", .body = ""},
    {.what = "one chunk", .in = "5\r\nhello\r\n0\r\n\r\n", .body = "hello"},
    {.what = "three chunks",
     .in = "5\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\n\r\n",
     .body = "hello world"},
    {.what = "hex sizes in both cases",
     .in = "A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n",
     .body = "0123456789abcdefghijk"},
    {.what = "leading zeros", .in = "0005\r\nhello\r\n000\r\n\r\n", .body = "hello"},
    {.what = "extensions", .in = "5;foo=bar\r\nhello\r\n0;last\r\n\r\n", .body = "hello"},
    {.what = "extensions with whitespace and several names",
     .in = "5 ; a = b ;c;d\t=\te\r\nhello\r\n0 ;x\r\n\r\n",
     .body = "hello"},
    {.what = "quoted extension values",
     .in = "5;x=\"a b;c\\\"d\\\\\";y=\"\"\r\nhello\r\n0;z=\"\xc3\xa9\"\r\n\r\n",
     .body = "hello"},
    {.what = "token extension values with every tchar",
     .in = "3;n!#$%&'*+-.^_`|~=v!#$%&'*+-.^_`|~09az\r\nabc\r\n0\r\n\r\n",
     .body = "abc"},
    {.what = "trailers",
     .in = "5\r\nhello\r\n0\r\nX-Checksum: abc\r\nY: two words\r\n\r\n",
     .body = "hello"},
    {.what = "trailers with empty value, tab and obs-text",
     .in = "1\r\nx\r\n0\r\nA:\r\nB:\ta\tb \r\nC: caf\xc3\xa9\r\n\r\n",
     .body = "x"},
    {.what = "data holding CRLFs",
     .in = "4\r\n\r\n\r\n\r\n2\r\n0\n\r\n0\r\n\r\n",
     .body = "\r\n\r\n0\n"},
    {.what = "data holding NUL and high bytes",
     .in = "4\r\n\0\xff\x80\0\r\n0\r\n\r\n",
     .in_len = 14,
     .body = "\0\xff\x80\0",
     .body_len = 4},
    {.what = "body exactly at the limit",
     .in = "3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
     .body = "abcde",
     .max_body = 5},
    {.what = "trailers exactly at the limit",
     .in = "0\r\nX: 12345\r\n\r\n",
     .body = "",
     .max_hdr = 10},
};

/* Bytes of a pipelined request left after every valid body. */
static const char next_request[] = "GET /next HTTP/1.1\r\nHost: a\r\n\r\n";

static void check_outcome(const struct outcome *o, const char *body, size_t body_len, size_t framed)
{
    CHECK(o->r == 1);
    CHECK(o->in == framed);
    CHECK(o->out == body_len);
    CHECK(o->out == body_len && memcmp(o->buf, body, body_len) == 0);
}

static void run_valid(const char *what, const char *in, size_t in_len, const char *body,
                      size_t body_len, uint64_t max_body, uint32_t max_hdr)
{
    current = what;
    size_t nl = sizeof(next_request) - 1, n = in_len + nl;
    char *src = malloc(n);
    memcpy(src, in, in_len);
    memcpy(src + in_len, next_request, nl);

    /* all at once, also with the next request behind it: in stops at the end of the body */
    struct outcome o = decode_split(src, in_len, 0, max_body, max_hdr);
    check_outcome(&o, body, body_len, in_len);
    free(o.buf);
    o = decode_split(src, n, 0, max_body, max_hdr);
    check_outcome(&o, body, body_len, in_len);
    CHECK(memcmp(o.buf + in_len, next_request, nl) == 0);
    free(o.buf);

    /* byte by byte against the guard page: 0 until the last byte of the body */
    o = decode_guarded(src, n, max_body, max_hdr);
    check_outcome(&o, body, body_len, in_len);
    free(o.buf);

    /* random splits */
    for (uint64_t seed = 1; seed <= 20; seed++) {
        rng_state = seed * 0x9E3779B97F4A7C15u;
        o = decode_split(src, n, 1 + seed % 9, max_body, max_hdr);
        check_outcome(&o, body, body_len, in_len);
        CHECK(memcmp(o.buf + in_len, next_request, nl) == 0);
        free(o.buf);
    }
    free(src);
}

/* Large and boundary bodies built at run time. */
static void test_generated(void)
{
    /* 100 000 bytes in chunks of random sizes */
    size_t body_len = 100000, cap = body_len * 2 + 64, n = 0;
    char *body = malloc(body_len), *in = malloc(cap);
    rng_state = 42;
    for (size_t i = 0; i < body_len; i++)
        body[i] = (char)(rng() & 0xFF);
    for (size_t i = 0; i < body_len;) {
        size_t k = 1 + (size_t)(rng() % 5000);
        if (k > body_len - i)
            k = body_len - i;
        n += (size_t)sprintf(in + n, "%zx\r\n", k);
        memcpy(in + n, body + i, k);
        n += k;
        memcpy(in + n, "\r\n", 2);
        n += 2;
        i += k;
    }
    memcpy(in + n, "0\r\n\r\n", 5);
    n += 5;
    current = "100 000 random bytes";
    struct outcome o = decode_split(in, n, 0, MAX_BODY, MAX_HEADER_BYTES);
    check_outcome(&o, body, body_len, n);
    free(o.buf);
    for (uint64_t seed = 1; seed <= 5; seed++) {
        rng_state = seed;
        o = decode_split(in, n, 3000, MAX_BODY, MAX_HEADER_BYTES);
        check_outcome(&o, body, body_len, n);
        free(o.buf);
    }

    /* a size line of exactly 4096 bytes before its CRLF */
    n = (size_t)sprintf(in, "3;");
    while (n < 4096)
        in[n++] = 'e';
    n += (size_t)sprintf(in + n, "\r\nabc\r\n0\r\n\r\n");
    run_valid("size line of 4096 bytes", in, n, "abc", 3, MAX_BODY, MAX_HEADER_BYTES);

    /* the largest chunk size accepted, 2^60, with no body limit: waits for data */
    current = "chunk of 2^60 bytes";
    struct coil__chunked c;
    coil__chunked_init(&c);
    strcpy(in, "1000000000000000\r\nabc");
    CHECK(coil__chunked_decode(&c, in, strlen(in), UINT64_MAX, MAX_HEADER_BYTES) == 0);
    CHECK(c.remaining == (UINT64_C(1) << 60) - 3 && c.out == 3 && c.in == 21);
    free(body);
    free(in);
}

/* ---- invalid bodies ------------------------------------------------------------------------ */

struct invalid_case {
    const char *what;
    const char *in;
    int status;
    uint64_t max_body; /* 0: MAX_BODY */
    uint32_t max_hdr;  /* 0: MAX_HEADER_BYTES */
};

static const struct invalid_case invalid_cases[] = {
    {.what = "size not hex", .in = "x\r\n", .status = -400},
    {.what = "empty size", .in = "\r\n", .status = -400},
    {.what = "space before size", .in = " 5\r\nhello\r\n0\r\n\r\n", .status = -400},
    {.what = "minus sign", .in = "-5\r\n", .status = -400},
    {.what = "0x prefix", .in = "0x5\r\n", .status = -400},
    {.what = "size then bare LF", .in = "5\nhello\r\n0\r\n\r\n", .status = -400},
    {.what = "size then CR CR", .in = "5\r\rhello", .status = -400},
    {.what = "size then CR and junk", .in = "5\rxhello", .status = -400},
    {.what = "space after size without extension",
     .in = "5 \r\nhello\r\n0\r\n\r\n",
     .status = -400},
    {.what = "semicolon without a name", .in = "5;\r\nhello\r\n0\r\n\r\n", .status = -400},
    {.what = "extension without a name", .in = "5;=x\r\n", .status = -400},
    {.what = "extension with empty value", .in = "5;a=\r\n", .status = -400},
    {.what = "extension name with a space inside", .in = "5;a b\r\n", .status = -400},
    {.what = "extension value with a space inside", .in = "5;a=b c\r\n", .status = -400},
    {.what = "space before CR after an extension", .in = "5;a=b \r\n", .status = -400},
    {.what = "unterminated quoted value", .in = "5;a=\"x\r\n", .status = -400},
    {.what = "junk after a quoted value", .in = "5;a=\"x\"y\r\n", .status = -400},
    {.what = "control byte in a quoted value", .in = "5;a=\"\x01\"\r\n", .status = -400},
    {.what = "quoted-pair with a control byte", .in = "5;a=\"\\\x01\"\r\n", .status = -400},
    {.what = "bare LF in an extension", .in = "5;a\nhello", .status = -400},
    {.what = "extension name with a non-token byte", .in = "5;a(b)\r\n", .status = -400},
    {.what = "chunk size just over 2^60",
     .in = "1000000000000001\r\n",
     .status = -400,
     .max_body = UINT64_MAX},
    {.what = "chunk size of 18 hex digits",
     .in = "FFFFFFFFFFFFFFFFFF\r\n",
     .status = -400,
     .max_body = UINT64_MAX},
    {.what = "data longer than its size", .in = "5\r\nhelloX\r\n0\r\n\r\n", .status = -400},
    {.what = "data then bare LF", .in = "5\r\nhello\n0\r\n\r\n", .status = -400},
    {.what = "data then CR and junk", .in = "5\r\nhello\r0\r\n\r\n", .status = -400},
    {.what = "data shorter than its size", .in = "6\r\nhello\r\n0\r\n\r\n", .status = -400},
    {.what = "chunk over the body limit", .in = "100001\r\n", .status = -413},
    {.what = "chunk over the limit, incomplete line", .in = "100001", .status = -413},
    {.what = "second chunk over the limit",
     .in = "3\r\nabc\r\n3\r\nabc\r\n",
     .status = -413,
     .max_body = 5},
    {.what = "last chunk then bare LF", .in = "0\n\r\n", .status = -400},
    {.what = "trailer without a colon", .in = "0\r\nX\r\n\r\n", .status = -400},
    {.what = "trailer obs-fold", .in = "0\r\nX: a\r\n b\r\n\r\n", .status = -400},
    {.what = "trailer with an empty name", .in = "0\r\n: a\r\n\r\n", .status = -400},
    {.what = "trailer with a space before the colon", .in = "0\r\nX : a\r\n\r\n", .status = -400},
    {.what = "trailer ending in bare LF", .in = "0\r\nX: a\n\r\n", .status = -400},
    {.what = "trailer with a control byte", .in = "0\r\nX: a\x01\r\n\r\n", .status = -400},
    {.what = "trailer CR without LF", .in = "0\r\nX: a\rb\r\n\r\n", .status = -400},
    {.what = "final empty line bare LF", .in = "0\r\n\n", .status = -400},
    {.what = "final CR then junk", .in = "0\r\n\rx", .status = -400},
    {.what = "trailers over the limit",
     .in = "0\r\nX: 123456\r\n\r\n",
     .status = -400,
     .max_hdr = 10},
    {.what = "many small trailers over the limit",
     .in = "0\r\nA: 1\r\nB: 2\r\nC: 3\r\n",
     .status = -400,
     .max_hdr = 17},
};

static void run_invalid(const char *what, const char *in, size_t n, int status, uint64_t max_body,
                        uint32_t max_hdr)
{
    current = what;
    struct outcome o = decode_split(in, n, 0, max_body, max_hdr);
    CHECK(o.r == status);
    if (o.r != status)
        fprintf(stderr, "  [%s] returned %d, want %d\n", what, o.r, status);
    free(o.buf);
    o = decode_guarded(in, n, max_body, max_hdr);
    CHECK(o.r == status);
    free(o.buf);
    for (uint64_t seed = 1; seed <= 10; seed++) {
        rng_state = seed * 0x9E3779B97F4A7C15u;
        o = decode_split(in, n, 1 + seed % 5, max_body, max_hdr);
        CHECK(o.r == status);
        free(o.buf);
    }
}

static void test_generated_invalid(void)
{
    static char in[8192];
    size_t n = (size_t)sprintf(in, "3;");
    while (n < 4097)
        in[n++] = 'e';
    n += (size_t)sprintf(in + n, "\r\nabc\r\n0\r\n\r\n");
    run_invalid("size line of 4097 bytes", in, n, -400, MAX_BODY, MAX_HEADER_BYTES);

    n = 0;
    while (n < 5000)
        in[n++] = '0';
    n += (size_t)sprintf(in + n, "5\r\nhello\r\n0\r\n\r\n");
    run_invalid("5000 leading zeros", in, n, -400, MAX_BODY, MAX_HEADER_BYTES);
}

int main(void)
{
    guard_setup();
    for (size_t i = 0; i < sizeof(valid_cases) / sizeof(valid_cases[0]); i++) {
        const struct valid_case *v = &valid_cases[i];
        run_valid(v->what, v->in, v->in_len ? v->in_len : strlen(v->in), v->body,
                  v->body_len ? v->body_len : strlen(v->body), v->max_body ? v->max_body : MAX_BODY,
                  v->max_hdr ? v->max_hdr : MAX_HEADER_BYTES);
    }
    test_generated();
    for (size_t i = 0; i < sizeof(invalid_cases) / sizeof(invalid_cases[0]); i++) {
        const struct invalid_case *c = &invalid_cases[i];
        run_invalid(c->what, c->in, strlen(c->in), c->status, c->max_body ? c->max_body : MAX_BODY,
                    c->max_hdr ? c->max_hdr : MAX_HEADER_BYTES);
    }
    test_generated_invalid();
    if (failures > 0) {
        fprintf(stderr, "test_chunked: %d check(s) failed\n", failures);
        return 1;
    }
    printf("test_chunked: %zu valid, %zu invalid cases passed\n",
           sizeof(valid_cases) / sizeof(valid_cases[0]),
           sizeof(invalid_cases) / sizeof(invalid_cases[0]));
    return 0;
}
