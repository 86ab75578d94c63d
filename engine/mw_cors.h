/* SPDX-License-Identifier: MIT */
/*
 * mw_cors.h: origin parsing and matching for the CORS middleware (mw_cors.c), apart so unit
 * tests reach them. Pure functions over slices; nothing is allocated.
 */
#ifndef COIL_MW_CORS_H
#define COIL_MW_CORS_H

#include "coil.h"

/*
 * An origin as RFC 6454 serialises it (what browsers send in Origin): scheme "://" host
 * [":" port], nothing after; or the opaque origin "null". An allowed-origin pattern may also
 * start its host with "*." (one or more labels in front of the rest). The slices point into the
 * parsed text.
 */
struct coil__cors_origin {
    struct coil_str scheme;
    struct coil_str host; /* a wildcard pattern's without its "*." */
    uint32_t port;        /* as given, else the scheme's default (http, ws 80; https, wss 443),
                           * else 0: so "https://a.example:443" is "https://a.example" */
    bool wildcard;        /* a pattern for the subdomains of host (never host itself) */
    bool null;            /* "null" */
};

/* Parses s; pattern allows the "*." host. 0, or -EINVAL for anything else: a path or a trailing
 * "/", user info, an empty label, a port outside 1-65535, bytes outside the host syntax. */
int coil__cors_origin_parse(struct coil_str s, bool pattern, struct coil__cors_origin *out);

/* Does the Origin value origin match allowed (a parsed pattern)? Scheme and host without case,
 * the port exactly (defaults filled in); "null" only the literal "null". */
bool coil__cors_origin_match(const struct coil__cors_origin *allowed, struct coil_str origin);

#endif
