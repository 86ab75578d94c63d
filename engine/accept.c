/* SPDX-License-Identifier: MIT */
/*
 * accept.c: Accept-Encoding negotiation (RFC 9110 §12.5.3), shared by the compression middleware
 * (which codings to compress with) and the static file server (which precompressed file to send).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "mw_compress.h"

/* A qvalue ("0", "0.5", "1.000", ...; RFC 9110 §12.4.2) in thousandths, or -1. */
static int parse_qvalue(const char *s, size_t n)
{
    if (n == 0 || (s[0] != '0' && s[0] != '1') || (n > 1 && s[1] != '.') || n > 5)
        return -1;
    int q = (s[0] - '0') * 1000, scale = 100;
    for (size_t i = 2; i < n; i++, scale /= 10) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        q += (s[i] - '0') * scale;
    }
    return q > 1000 ? -1 : q;
}

/* One element: a coding, then optionally OWS ";" OWS "q=" qvalue. Its q, or -1 if malformed. */
static int parse_element(const char *s, size_t n, size_t *coding_len)
{
    size_t i = 0;
    while (i < n && coil__is_tchar((unsigned char)s[i]))
        i++;
    *coding_len = i;
    if (i == 0)
        return -1;
    while (i < n && coil__is_ows(s[i]))
        i++;
    if (i == n)
        return 1000;
    if (s[i++] != ';')
        return -1;
    while (i < n && coil__is_ows(s[i]))
        i++;
    if (n - i < 2 || (s[i] != 'q' && s[i] != 'Q') || s[i + 1] != '=')
        return -1;
    i += 2;
    size_t end = n;
    while (end > i && coil__is_ows(s[end - 1]))
        end--;
    return parse_qvalue(s + i, end - i);
}

void coil__accept_init(struct coil__accept *a)
{
    for (int i = 0; i < COIL__NCODINGS; i++)
        a->q[i] = -1;
    a->star = -1;
}

void coil__accept_parse(struct coil__accept *a, const char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && s[i] != ',')
            i++;
        size_t end = i++;
        while (start < end && coil__is_ows(s[start]))
            start++;
        while (end > start && coil__is_ows(s[end - 1]))
            end--;
        size_t clen;
        int q = start < end ? parse_element(s + start, end - start, &clen) : -1;
        if (q < 0)
            continue; /* empty or malformed: as if it were not there */
        const char *c = s + start;
        int16_t *slot = coil__eq_nocase(c, clen, "br") ? &a->q[COIL__BR]
                        : coil__eq_nocase(c, clen, "gzip") || coil__eq_nocase(c, clen, "x-gzip")
                            ? &a->q[COIL__GZIP]
                        : coil__eq_nocase(c, clen, "identity") ? &a->q[COIL__IDENTITY]
                        : coil__eq_nocase(c, clen, "*")        ? &a->star
                                                               : NULL;
        if (slot && *slot < 0)
            *slot = (int16_t)q;
    }
}

enum coil__coding coil__accept_choose(const struct coil__accept *a,
                                      const enum coil__coding *offered, size_t n)
{
    enum coil__coding best = COIL__IDENTITY;
    int best_q = 0;
    for (size_t i = 0; i < n; i++) {
        int q = a->q[offered[i]] >= 0 ? a->q[offered[i]] : a->star >= 0 ? a->star : 0;
        if (q > best_q) {
            best = offered[i];
            best_q = q;
        }
    }
    /* Identity is always acceptable, so it competes only when the client ranked it. */
    if (best != COIL__IDENTITY && a->q[COIL__IDENTITY] > best_q)
        return COIL__IDENTITY;
    return best;
}
