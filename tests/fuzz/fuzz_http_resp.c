/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http_resp: libFuzzer target for the response-head parser (coil__http_parse_resp_head, the
 * upstream client's side) and the chunked decoder on what follows a chunked head. The input is
 * parsed as a head (limits 8192 bytes, 100 headers) from an exact-size heap copy, so ASan sees
 * any over-read. Invariants:
 *  - the result is -1, 0 or a length <= len; a complete head has a status 100-999, HTTP/1.0 or
 *    1.1, never both chunked and a Content-Length, chunked only on 1.1, and every slice (reason,
 *    header names and values) lies within [buf, buf + length);
 *  - a prefix parses to 0 or the whole input's result (0 below the head's length, the same
 *    length and fields once it holds the head), never another length;
 *  - a positive result is stable when more bytes are appended (derived from the input);
 *  - tighter limits drawn from the input give exactly: the length if the head fits them, else -1.
 * When the head is complete and chunked, the bytes after it are decoded in splits derived from
 * the input and once in one call: both must agree (status, in, out, body bytes), with
 * out <= in <= len after every call.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEADERS 100
#define MAX_BYTES 8192u
#define MAX_BODY (1u << 20)

/* Checked even under NDEBUG. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* s lies within buf[0..end) (an empty slice may sit at end). */
static void check_slice(struct coil_str s, const char *buf, size_t end)
{
    REQUIRE(s.ptr != NULL);
    REQUIRE(s.ptr >= buf && s.ptr <= buf + end);
    REQUIRE(s.len <= (size_t)(buf + end - s.ptr));
}

/* Parses an exact-size heap copy of data[0..len) (then extra[0..xlen) appended). */
static int parse_copy(const uint8_t *data, size_t len, const uint8_t *extra, size_t xlen,
                      struct coil__http_resp *r, uint32_t max_bytes, uint32_t max_headers,
                      size_t *off)
{
    size_t n = len + xlen;
    char *buf = malloc(n ? n : 1);
    if (len)
        memcpy(buf, data, len);
    if (xlen)
        memcpy(buf + len, extra, xlen);
    int rc = coil__http_parse_resp_head(buf, n, r, max_bytes, max_headers);
    REQUIRE(rc == -1 || rc == 0 || (rc > 0 && (size_t)rc <= n));
    if (rc > 0) {
        REQUIRE(rc >= 17); /* "HTTP/1.x NNN \r\n\r\n" at the least */
        REQUIRE(r->status >= 100 && r->status <= 999);
        REQUIRE(r->minor <= 1);
        REQUIRE(r->nheaders <= max_headers);
        REQUIRE(!((r->flags & COIL_HTTP_CHUNKED) && (r->flags & COIL_HTTP_HAS_LENGTH)));
        REQUIRE(!(r->flags & COIL_HTTP_CHUNKED) || r->minor == 1);
        REQUIRE((r->flags & ~(uint32_t)(COIL_HTTP_KEEP_ALIVE | COIL_HTTP_CHUNKED |
                                        COIL_HTTP_HAS_LENGTH)) == 0);
        REQUIRE(memcmp(buf, "HTTP/1.", 7) == 0 && memcmp(buf + rc - 4, "\r\n\r\n", 4) == 0);
        check_slice(r->reason, buf, (size_t)rc);
        for (uint32_t i = 0; i < r->nheaders; i++) {
            check_slice(r->headers[i].name, buf, (size_t)rc);
            check_slice(r->headers[i].value, buf, (size_t)rc);
            REQUIRE(r->headers[i].name.len > 0);
            struct coil_str v = r->headers[i].value;
            REQUIRE(v.len == 0 || (v.ptr[0] != ' ' && v.ptr[0] != '\t' &&
                                   v.ptr[v.len - 1] != ' ' && v.ptr[v.len - 1] != '\t'));
        }
        /* the slices as offsets, so parses of copies at other addresses can be compared */
        off[0] = (size_t)(r->reason.ptr - buf);
        for (uint32_t i = 0; i < r->nheaders; i++) {
            off[1 + 2 * i] = (size_t)(r->headers[i].name.ptr - buf);
            off[2 + 2 * i] = (size_t)(r->headers[i].value.ptr - buf);
        }
    }
    free(buf);
    return rc;
}

static void same_resp(const struct coil__http_resp *a, const size_t *aoff,
                      const struct coil__http_resp *b, const size_t *boff)
{
    REQUIRE(a->status == b->status && a->minor == b->minor && a->flags == b->flags);
    REQUIRE(a->nheaders == b->nheaders && a->reason.len == b->reason.len && aoff[0] == boff[0]);
    if (a->flags & COIL_HTTP_HAS_LENGTH)
        REQUIRE(a->content_length == b->content_length);
    for (uint32_t i = 0; i < a->nheaders; i++) {
        REQUIRE(a->headers[i].name.len == b->headers[i].name.len);
        REQUIRE(a->headers[i].value.len == b->headers[i].value.len);
        REQUIRE(aoff[1 + 2 * i] == boff[1 + 2 * i] && aoff[2 + 2 * i] == boff[2 + 2 * i]);
    }
}

static uint64_t hash(const uint8_t *data, size_t size)
{
    uint64_t h = 0xcbf29ce484222325u; /* FNV-1a */
    for (size_t i = 0; i < size; i++)
        h = (h ^ data[i]) * 0x100000001b3u;
    return h | 1;
}

static uint64_t next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

struct decoded {
    int r;
    struct coil__chunked c;
    char *buf;
};

/* Decodes body[0..n) fed in steps drawn from seed (0: all at once). */
static struct decoded decode(const uint8_t *body, size_t n, uint64_t seed)
{
    struct decoded d = {0, {0}, malloc(n ? n : 1)};
    if (n)
        memcpy(d.buf, body, n);
    coil__chunked_init(&d.c);
    size_t len = 0, max_step = 1 + (size_t)(seed % 97);
    do {
        size_t step = seed == 0 ? n : 1 + (size_t)(next(&seed) % max_step);
        len = n - len < step ? n : len + step;
        d.r = coil__chunked_decode(&d.c, d.buf, len, MAX_BODY, MAX_BYTES);
        REQUIRE(d.r == 0 || d.r == 1 || d.r == -400 || d.r == -413);
        REQUIRE(d.c.out <= d.c.in && d.c.in <= len);
        REQUIRE(d.c.out <= MAX_BODY);
    } while (d.r == 0 && len < n);
    return d;
}

static void check_chunked(const uint8_t *body, size_t n, uint64_t seed)
{
    struct decoded whole = decode(body, n, 0);
    struct decoded split = decode(body, n, seed);
    REQUIRE(whole.r == split.r);
    REQUIRE(whole.c.in == split.c.in && whole.c.out == split.c.out);
    REQUIRE(memcmp(whole.buf, split.buf, whole.c.out) == 0);
    if (whole.r == 1) /* bytes after the body (the next response) are left untouched */
        REQUIRE(memcmp(whole.buf + whole.c.in, body + whole.c.in, n - whole.c.in) == 0);
    free(whole.buf);
    free(split.buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct coil__http_header ha[MAX_HEADERS], hb[MAX_HEADERS];
    static size_t oa[1 + 2 * MAX_HEADERS], ob[1 + 2 * MAX_HEADERS];
    struct coil__http_resp whole = {.headers = ha}, other = {.headers = hb};
    uint64_t seed = hash(data, size);

    int r = parse_copy(data, size, NULL, 0, &whole, MAX_BYTES, MAX_HEADERS, oa);

    /* prefixes: 0 or the same verdict, and the same fields once they hold the head */
    for (int i = 0; i < 4 && size > 0; i++) {
        size_t k = i == 0 && r > 0 ? (size_t)r : (size_t)(next(&seed) % size);
        int rk = parse_copy(data, k, NULL, 0, &other, MAX_BYTES, MAX_HEADERS, ob);
        if (r > 0) {
            REQUIRE(k < (size_t)r ? rk == 0 : rk == r);
            if (rk > 0)
                same_resp(&whole, oa, &other, ob);
        } else {
            REQUIRE(rk == 0 || rk == r);
        }
    }

    /* more bytes appended: a complete head stays the same; an incomplete one stays valid or not */
    {
        uint8_t extra[64];
        size_t xlen = 1 + (size_t)(next(&seed) % sizeof(extra));
        for (size_t i = 0; i < xlen; i++)
            extra[i] = (seed >> 8 & 1) && size > 0 ? data[(i + seed) % size] : (uint8_t)next(&seed);
        int rx = parse_copy(data, size, extra, xlen, &other, MAX_BYTES, MAX_HEADERS, ob);
        if (r > 0) {
            REQUIRE(rx == r);
            same_resp(&whole, oa, &other, ob);
        } else if (r < 0) {
            REQUIRE(rx == r);
        }
    }

    /* tighter limits only reject: exactly the heads that do not fit them */
    {
        uint64_t mb64 = next(&seed) % (size + 2);
        uint32_t mb = mb64 < MAX_BYTES ? (uint32_t)mb64 : MAX_BYTES; /* tighter, never looser */
        uint32_t mh = (uint32_t)(next(&seed) % (MAX_HEADERS + 1));
        int rl = parse_copy(data, size, NULL, 0, &other, mb, mh, ob);
        if (r > 0)
            REQUIRE(rl == ((uint32_t)r <= mb && whole.nheaders <= mh ? r : -1));
        else if (r < 0)
            REQUIRE(rl == -1);
        else
            REQUIRE(rl == 0 || rl == -1);
        if (r > 0 && rl > 0)
            same_resp(&whole, oa, &other, ob);
    }

    if (r > 0 && (whole.flags & COIL_HTTP_CHUNKED))
        check_chunked(data + r, size - (size_t)r, seed);
    return 0;
}
