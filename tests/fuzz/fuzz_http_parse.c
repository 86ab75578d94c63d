/* SPDX-License-Identifier: MIT */
/*
 * fuzz_http_parse: libFuzzer target for the request-head parser and the chunked decoder. The
 * input is parsed as a head (limits 8192 bytes, 100 headers, 1 MiB body) from an exact-size
 * heap copy, so ASan sees any over-read. Invariants: the result is 0, a known -status or a
 * length <= len; every slice lies in the buffer (or is the static "/" path); a prefix of the
 * input parses to 0 or to the whole input's result, so answers never depend on splitting.
 * When the head is complete and chunked, the bytes after it are decoded in splits derived from
 * the input and once in one call: both must agree (status, in, out, body bytes), with
 * out <= in <= len after every call. The whole input is also decoded as a chunked body with
 * limits drawn from it, which reaches the decoder's states far more often than a valid head would.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_parse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_HEADERS 100

/* Checked even under NDEBUG. */
#define REQUIRE(cond)                                                                              \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond);           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static const struct coil__http_limits limits = {8192, MAX_HEADERS, 1u << 20};

static int is_status(int r)
{
    return r == -400 || r == -413 || r == -414 || r == -417 || r == -431 || r == -501 || r == -505;
}

static void check_slice(struct coil_str s, const char *buf, size_t len)
{
    if (s.ptr == NULL) {
        REQUIRE(s.len == 0);
        return;
    }
    if (s.ptr >= buf && s.ptr <= buf + len) {
        REQUIRE(s.len <= (size_t)(buf + len - s.ptr));
        return;
    }
    REQUIRE(s.len == 1 && s.ptr[0] == '/'); /* the static path of "http://host" */
}

static int parse_copy(const uint8_t *data, size_t len, struct coil__http_req *req)
{
    char *buf = malloc(len ? len : 1);
    memcpy(buf, data, len);
    int r = coil__http_parse_head(buf, len, req, &limits);
    REQUIRE(r == 0 || is_status(r) || (r > 0 && (size_t)r <= len));
    if (r > 0) {
        REQUIRE(req->nheaders <= MAX_HEADERS);
        check_slice(req->method, buf, len);
        check_slice(req->target, buf, len);
        check_slice(req->path, buf, len);
        check_slice(req->query, buf, len);
        check_slice(req->host, buf, len);
        REQUIRE(req->minor <= 1);
        REQUIRE(!((req->flags & COIL_HTTP_CHUNKED) && (req->flags & COIL_HTTP_HAS_LENGTH)));
        for (uint32_t i = 0; i < req->nheaders; i++) {
            check_slice(req->headers[i].name, buf, len);
            check_slice(req->headers[i].value, buf, len);
            REQUIRE(req->headers[i].name.len > 0);
        }
    }
    free(buf);
    return r;
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
static struct decoded decode(const uint8_t *body, size_t n, uint64_t seed, uint64_t max_body,
                             uint32_t max_hdr)
{
    struct decoded d = {0, {0}, malloc(n ? n : 1)};
    memcpy(d.buf, body, n);
    coil__chunked_init(&d.c);
    size_t len = 0, max_step = 1 + (size_t)(seed % 97);
    do {
        size_t step = seed == 0 ? n : 1 + (size_t)(next(&seed) % max_step);
        len = n - len < step ? n : len + step;
        d.r = coil__chunked_decode(&d.c, d.buf, len, max_body, max_hdr);
        REQUIRE(d.r == 0 || d.r == 1 || d.r == -400 || d.r == -413);
        REQUIRE(d.c.out <= d.c.in && d.c.in <= len);
        REQUIRE(d.c.out <= max_body);
    } while (d.r == 0 && len < n);
    return d;
}

static void check_chunked(const uint8_t *body, size_t n, uint64_t seed, uint64_t max_body,
                          uint32_t max_hdr)
{
    struct decoded whole = decode(body, n, 0, max_body, max_hdr);
    struct decoded split = decode(body, n, seed, max_body, max_hdr);
    REQUIRE(whole.r == split.r);
    REQUIRE(whole.c.in == split.c.in && whole.c.out == split.c.out);
    REQUIRE(memcmp(whole.buf, split.buf, whole.c.out) == 0);
    if (whole.r == 1) /* bytes after the body are left untouched */
        REQUIRE(memcmp(whole.buf + whole.c.in, body + whole.c.in, n - whole.c.in) == 0);
    free(whole.buf);
    free(split.buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct coil__http_header ha[MAX_HEADERS], hb[MAX_HEADERS];
    struct coil__http_req req = {.headers = ha}, pre = {.headers = hb};
    uint64_t seed = hash(data, size);

    int r = parse_copy(data, size, &req);
    for (int i = 0; i < 3 && size > 0; i++) {
        size_t k = (size_t)(next(&seed) % size);
        int rk = parse_copy(data, k, &pre);
        if (r > 0)
            REQUIRE(k < (size_t)r ? rk == 0 : rk == r);
        else
            REQUIRE(rk == 0 || rk == r);
    }

    if (r > 0 && (req.flags & COIL_HTTP_CHUNKED))
        check_chunked(data + r, size - (size_t)r, seed, limits.max_body_bytes,
                      limits.max_header_bytes);
    /* limits drawn from the input: no body limit reaches the 2^60 size check */
    check_chunked(data, size, seed, (seed & 2) ? UINT64_MAX : 1024, 16 + (uint32_t)(seed >> 58));
    return 0;
}
