/* SPDX-License-Identifier: MIT */
/*
 * mw_compress.h: Accept-Encoding negotiation (RFC 9110 §12.5.3) for the compression middleware
 * (mw_compress.c), a pure function kept apart so that its unit test needs no server.
 */
#ifndef COIL_MW_COMPRESS_H
#define COIL_MW_COMPRESS_H

#include <stddef.h>
#include <stdint.h>

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
