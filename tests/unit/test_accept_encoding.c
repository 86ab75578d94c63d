/* SPDX-License-Identifier: MIT */
/*
 * test_accept_encoding: Accept-Encoding negotiation (RFC 9110
 * §12.5.3): tokens without case, x-gzip, q-values (q=0 refuses, malformed ones drop their
 * element), "*" for codings not listed, identity ranked by the client, the server's order at
 * equal q, several field lines, and junk. Inputs are copied into exactly sized heap buffers so
 * that ASan catches any read past their end. The compression middleware and the static file
 * server both choose with it, so it is built whatever the build has.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"

#include "mw_compress.h"

static const enum coil__coding BR_GZIP[] = {COIL__BR, COIL__GZIP};
static const enum coil__coding GZIP_BR[] = {COIL__GZIP, COIL__BR};
static const enum coil__coding GZIP[] = {COIL__GZIP};

static void parse_line(struct coil__accept *a, const char *line)
{
    size_t n = strlen(line);
    char *p = malloc(n ? n : 1);
    CHECK(p);
    memcpy(p, line, n);
    coil__accept_parse(a, p, n);
    free(p);
}

/* The coding chosen for one Accept-Encoding line with the server offering offered. */
static enum coil__coding choose(const char *line, const enum coil__coding *offered, size_t n)
{
    struct coil__accept a;
    coil__accept_init(&a);
    parse_line(&a, line);
    return coil__accept_choose(&a, offered, n);
}

#define BOTH(line) choose(line, BR_GZIP, 2)

static void plain_lists(void)
{
    CHECK(BOTH("gzip, br") == COIL__BR); /* equal q: the server's order */
    CHECK(choose("gzip, br", GZIP_BR, 2) == COIL__GZIP);
    CHECK(BOTH("gzip") == COIL__GZIP);
    CHECK(BOTH("br") == COIL__BR);
    CHECK(BOTH("GZip") == COIL__GZIP);
    CHECK(BOTH("BR") == COIL__BR);
    CHECK(BOTH("x-gzip") == COIL__GZIP);
    CHECK(BOTH("deflate, compress, zstd") == COIL__IDENTITY);
    CHECK(BOTH("") == COIL__IDENTITY); /* an empty field: identity only */
    CHECK(BOTH("identity") == COIL__IDENTITY);
    CHECK(choose("br", GZIP, 1) == COIL__IDENTITY); /* not offered */
    CHECK(BOTH("gzip, deflate, br, zstd") == COIL__BR);
    CHECK(BOTH("  gzip  ,\t br\t") == COIL__BR);
    CHECK(BOTH(",,gzip,,") == COIL__GZIP); /* empty list elements are allowed */
}

static void weights(void)
{
    CHECK(BOTH("br;q=0.5, gzip;q=0.8") == COIL__GZIP);
    CHECK(BOTH("br;q=0.8, gzip;q=0.5") == COIL__BR);
    CHECK(BOTH("gzip;q=0") == COIL__IDENTITY);
    CHECK(BOTH("gzip;q=0, br") == COIL__BR);
    CHECK(BOTH("br;q=0, gzip") == COIL__GZIP);
    CHECK(BOTH("gzip;q=1.000, br;q=0.999") == COIL__GZIP);
    CHECK(BOTH("gzip;q=0.001") == COIL__GZIP);
    CHECK(BOTH("gzip;q=0.000") == COIL__IDENTITY);
    CHECK(BOTH("gzip ; q=0.5") == COIL__GZIP); /* OWS around ';' */
    CHECK(BOTH("gzip;Q=0.5") == COIL__GZIP);
    CHECK(BOTH("br;q=1, gzip;q=1") == COIL__BR);
    /* The first mention of a coding counts. */
    CHECK(BOTH("br;q=0, br") == COIL__IDENTITY);
    CHECK(BOTH("gzip, x-gzip;q=0") == COIL__GZIP);
}

static void malformed_weights(void)
{
    /* A malformed weight drops its element, as if the coding were not listed. */
    CHECK(BOTH("br;q=2, gzip") == COIL__GZIP);
    CHECK(BOTH("br;q=1.5, gzip") == COIL__GZIP);
    CHECK(BOTH("br;q=1.001, gzip") == COIL__GZIP);
    CHECK(BOTH("br;q=0.5555, gzip;q=0.1") == COIL__GZIP);
    CHECK(BOTH("br;q=, gzip;q=0.1") == COIL__GZIP);
    CHECK(BOTH("br;q=.5, gzip;q=0.1") == COIL__GZIP);
    CHECK(BOTH("br;q=-1, gzip;q=0.1") == COIL__GZIP);
    CHECK(BOTH("br;q = 0.5, gzip;q=0.1") == COIL__GZIP);
    CHECK(BOTH("br;level=5, gzip;q=0.1") == COIL__GZIP);
    CHECK(BOTH("br;q=0.5;q=0.6, gzip;q=0.1") == COIL__GZIP);
    CHECK(BOTH("br q=0.5, gzip;q=0.1") == COIL__GZIP);
    CHECK(BOTH("br;, gzip;q=0.1") == COIL__GZIP);
    CHECK(BOTH("br;q=0x1") == COIL__IDENTITY);
    /* Dropped, a malformed "q=0" refuses nothing. */
    CHECK(BOTH("*, br;q=zero") == COIL__BR);
    /* A malformed first mention does not hide a later one. */
    CHECK(BOTH("br;q=9, br;q=0.2, gzip;q=0.1") == COIL__BR);
}

static void star_and_identity(void)
{
    CHECK(BOTH("*") == COIL__BR);
    CHECK(BOTH("*;q=0.1") == COIL__BR);
    CHECK(BOTH("*;q=0") == COIL__IDENTITY);
    CHECK(BOTH("*, br;q=0") == COIL__GZIP);
    CHECK(BOTH("*;q=0.5, gzip") == COIL__GZIP);
    CHECK(BOTH("*;q=0, gzip") == COIL__GZIP);
    CHECK(BOTH("identity;q=0") == COIL__IDENTITY); /* nothing acceptable: sent as it is */
    CHECK(BOTH("identity;q=0, gzip") == COIL__GZIP);
    CHECK(BOTH("identity;q=0, *") == COIL__BR);
    /* Identity ranked above every coding offered wins; at equal q the smaller body does. */
    CHECK(BOTH("gzip;q=0.5, identity") == COIL__IDENTITY);
    CHECK(BOTH("gzip;q=0.5, identity;q=0.5") == COIL__GZIP);
    CHECK(BOTH("gzip;q=0.5") == COIL__GZIP); /* identity not ranked: only the fallback */
    CHECK(BOTH("*;q=0.2, identity;q=0.3") == COIL__IDENTITY);
}

static void several_lines(void)
{
    struct coil__accept a;
    coil__accept_init(&a);
    parse_line(&a, "br;q=0.2");
    parse_line(&a, "gzip;q=0.9");
    CHECK(coil__accept_choose(&a, BR_GZIP, 2) == COIL__GZIP);
    coil__accept_init(&a);
    parse_line(&a, "gzip;q=0");
    parse_line(&a, "gzip");
    CHECK(coil__accept_choose(&a, BR_GZIP, 2) == COIL__IDENTITY);
    coil__accept_init(&a);
    CHECK(coil__accept_choose(&a, BR_GZIP, 2) == COIL__IDENTITY); /* no line at all */
}

static void junk(void)
{
    /* Bytes no client sends must not be read past or mistaken for a coding. */
    CHECK(BOTH("\x01\x02gzip") == COIL__IDENTITY);
    CHECK(BOTH("gz\xffip, br\x80") == COIL__IDENTITY);
    CHECK(BOTH(";q=1") == COIL__IDENTITY);
    CHECK(BOTH("gzip;") == COIL__IDENTITY);
    CHECK(BOTH("gzip;q") == COIL__IDENTITY);
    CHECK(BOTH("gzip;q=") == COIL__IDENTITY);
    CHECK(BOTH("gzip;q=1.") == COIL__GZIP);
    CHECK(BOTH(",") == COIL__IDENTITY);
    CHECK(BOTH("   ") == COIL__IDENTITY);
    char big[4096];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = 0;
    CHECK(BOTH(big) == COIL__IDENTITY);
}

int main(void)
{
    plain_lists();
    weights();
    malformed_weights();
    star_and_identity();
    several_lines();
    junk();
    return 0;
}
