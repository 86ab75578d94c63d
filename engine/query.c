/* SPDX-License-Identifier: MIT */
/*
 * query: percent-decoding and query-string lookup. Nothing here allocates: decoding writes into
 * the caller's buffer (possibly in place, as the write position never passes the read
 * position), and lookup compares each pair's name while decoding it byte by byte, handing back
 * the value as a raw slice of the query for the caller to decode into the request arena. Empty
 * pairs ("a=1&&b=2", a trailing '&') are skipped; a name with a bad escape matches nothing.
 */
#include "query.h"

#include <assert.h>
#include <limits.h>
#include <string.h>

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20; /* ASCII lower case */
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/* The byte encoded by "%XY" at s (s[0] == '%', n bytes available from s), or -1. */
static int pct_byte(const char *s, size_t n)
{
    if (n < 3)
        return -1;
    int hi = hex_value((unsigned char)s[1]);
    int lo = hex_value((unsigned char)s[2]);
    if (hi < 0 || lo < 0)
        return -1;
    return hi << 4 | lo;
}

ssize_t coil__pct_decode(char *dst, const char *src, size_t n, bool plus_is_space)
{
    assert(n <= SSIZE_MAX);
    if (n == 0)
        return 0;
    const char *pct = memchr(src, '%', n);
    const char *plus = plus_is_space ? memchr(src, '+', n) : NULL;
    if (!pct && !plus) {
        if (dst != src)
            memmove(dst, src, n);
        return (ssize_t)n;
    }
    const char *first = !pct ? plus : !plus ? pct : pct < plus ? pct : plus;
    size_t i = (size_t)(first - src), o = i;
    if (dst != src)
        memmove(dst, src, i);
    while (i < n) {
        char c = src[i];
        if (c == '%') {
            int b = pct_byte(src + i, n - i);
            if (b < 0)
                return -1;
            dst[o++] = (char)b;
            i += 3;
        } else {
            dst[o++] = (c == '+' && plus_is_space) ? ' ' : c;
            i++;
        }
    }
    return (ssize_t)o;
}

/* Whether enc[0..n), form-decoded, equals name[0..name_len). */
static bool name_equals(const char *enc, size_t n, const char *name, size_t name_len)
{
    if (n < name_len) /* decoding never lengthens */
        return false;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        int c = (unsigned char)enc[i];
        if (c == '%') {
            c = pct_byte(enc + i, n - i);
            if (c < 0)
                return false;
            i += 3;
        } else {
            if (c == '+')
                c = ' ';
            i++;
        }
        if (k == name_len || (unsigned char)name[k] != c)
            return false;
        k++;
    }
    return k == name_len;
}

int coil__query_find(struct coil_str query, const char *name, size_t name_len,
                     struct coil_str *raw_value)
{
    assert(raw_value && (name || name_len == 0));
    if (query.len == 0)
        return 0;
    const char *p = query.ptr, *end = query.ptr + query.len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pe = amp ? amp : end;
        if (pe > p) {
            const char *eq = memchr(p, '=', (size_t)(pe - p));
            const char *ne = eq ? eq : pe;
            if (name_equals(p, (size_t)(ne - p), name, name_len)) {
                raw_value->ptr = eq ? eq + 1 : pe;
                raw_value->len = (size_t)(pe - raw_value->ptr);
                return 1;
            }
        }
        if (!amp)
            break;
        p = amp + 1;
    }
    return 0;
}
