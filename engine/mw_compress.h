/* SPDX-License-Identifier: MIT */
/*
 * mw_compress.h: Accept-Encoding negotiation (RFC 9110 §12.5.3, accept.c) for the compression
 * middleware (mw_compress.c) and the static file server (static.c), pure functions kept apart so
 * that their unit test needs no server, and the token helpers they share.
 */
#ifndef COIL_MW_COMPRESS_H
#define COIL_MW_COMPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

static inline bool coil__is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* RFC 9110 tchar. */
static inline bool coil__is_tchar(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           (c && strchr("!#$%&'*+-.^_`|~", c));
}

static inline bool coil__eq_nocase(const char *s, size_t n, const char *lit)
{
    return strlen(lit) == n && !strncasecmp(s, lit, n);
}

enum coil__coding { COIL__IDENTITY, COIL__BR, COIL__GZIP, COIL__NCODINGS };

/* What a request's Accept-Encoding lines said: each q in thousandths (0-1000), -1 if the
 * coding was not listed (or only with a malformed weight, which counts as not listed). */
struct coil__accept {
    int16_t q[COIL__NCODINGS]; /* gzip includes x-gzip */
    int16_t star;              /* "*": every coding not listed */
};

void coil__accept_init(struct coil__accept *a);
/* Adds the elements of one Accept-Encoding field line; the first mention of a coding counts. */
void coil__accept_parse(struct coil__accept *a, const char *s, size_t len);
/*
 * The coding to send among those offered (n of them, most preferred first at equal q): the
 * acceptable one (q > 0, listed or through "*") with the highest q. Identity wins only when it
 * is listed with a higher q than that. COIL__IDENTITY when nothing offered is acceptable.
 */
enum coil__coding coil__accept_choose(const struct coil__accept *a,
                                      const enum coil__coding *offered, size_t n);

#endif /* COIL_MW_COMPRESS_H */
