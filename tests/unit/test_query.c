/* SPDX-License-Identifier: MIT */
/*
 * test_query: percent-decoding (hex case, '+', bad and truncated escapes, in place, NUL bytes)
 * and query lookup (names compared after decoding, values returned raw, empty values, bare
 * names, first match wins, empty pairs from "&&" and a trailing '&'). Inputs are copied into
 * exactly sized heap buffers so that ASan catches any read past their end.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "query.h"

#include "check.h"

/* A heap copy of s[0..n) with nothing after it. */
static char *exact_copy(const char *s, size_t n)
{
    char *p = malloc(n ? n : 1);
    CHECK(p);
    memcpy(p, s, n);
    return p;
}

/* Decodes s (into a separate buffer) and compares with want[0..want_len); want NULL: error. */
static int decodes_to(const char *s, bool plus, const char *want, size_t want_len)
{
    size_t n = strlen(s);
    char *src = exact_copy(s, n);
    char *dst = malloc(n ? n : 1);
    CHECK(dst);
    ssize_t got = coil__pct_decode(dst, src, n, plus);
    int ok = want ? got == (ssize_t)want_len && memcmp(dst, want, want_len) == 0 : got == -1;
    /* In place must give the same answer. */
    ssize_t again = coil__pct_decode(src, src, n, plus);
    ok = ok && again == got && (got < 0 || memcmp(src, dst, (size_t)got) == 0);
    free(src);
    free(dst);
    return ok;
}

#define DECODES(s, plus, want) decodes_to((s), (plus), (want), sizeof(want) - 1)

static void test_decode(void)
{
    CHECK(DECODES("", true, ""));
    CHECK(DECODES("plain-text_1.2~", true, "plain-text_1.2~"));
    CHECK(DECODES("a%20b", false, "a b"));
    CHECK(DECODES("%41%42%43", false, "ABC"));
    CHECK(DECODES("%2f%2F%aB%Ab", false, "//\xab\xab"));
    CHECK(DECODES("%e2%82%ac", false, "\xe2\x82\xac"));
    CHECK(DECODES("x%00y", false, "x\0y"));
    CHECK(DECODES("%25%32%30", false, "%20")); /* decoded once, not twice */
    CHECK(DECODES("a+b++c", true, "a b  c"));
    CHECK(DECODES("a+b", false, "a+b"));
    CHECK(DECODES("%2B+", true, "+ "));
    CHECK(DECODES("+", true, " "));
    CHECK(DECODES("%ff", false, "\xff"));

    CHECK(decodes_to("%", false, NULL, 0));
    CHECK(decodes_to("%4", false, NULL, 0));
    CHECK(decodes_to("abc%4", false, NULL, 0));
    CHECK(decodes_to("abc%", true, NULL, 0));
    CHECK(decodes_to("%zz", false, NULL, 0));
    CHECK(decodes_to("%4g", false, NULL, 0));
    CHECK(decodes_to("%g4", false, NULL, 0));
    CHECK(decodes_to("%+1", true, NULL, 0));
    CHECK(decodes_to("ok%20then%x", false, NULL, 0));
    CHECK(decodes_to("% 20", false, NULL, 0));

    /* Only n bytes are read: a '%' just past the end does not count. */
    char buf[8] = "ab%41";
    CHECK(coil__pct_decode(buf, buf, 2, false) == 2 && memcmp(buf, "ab", 2) == 0);
    CHECK(coil__pct_decode(buf, buf, 0, false) == 0);
}

static struct coil_str qs(const char *s)
{
    size_t n = strlen(s);
    return (struct coil_str){n ? exact_copy(s, n) : NULL, n};
}

/* Looks name up in query; returns 1 with the raw value matching want, 0 if absent. -1 if the
 * value found differs from want. */
static int lookup(const char *query, const char *name, const char *want)
{
    struct coil_str q = qs(query), v = {NULL, 99};
    int rc = coil__query_find(q, name, strlen(name), &v);
    if (rc == 1) {
        CHECK(v.ptr != NULL);
        CHECK(v.ptr >= q.ptr && v.ptr + v.len <= q.ptr + q.len);
        if (!want || v.len != strlen(want) || memcmp(v.ptr, want, v.len) != 0)
            rc = -1;
    } else {
        CHECK(rc == 0);
    }
    free((char *)q.ptr);
    return rc;
}

static void test_find(void)
{
    CHECK(lookup("a=1&b=2&c=3", "a", "1") == 1);
    CHECK(lookup("a=1&b=2&c=3", "b", "2") == 1);
    CHECK(lookup("a=1&b=2&c=3", "c", "3") == 1);
    CHECK(lookup("a=1&b=2&c=3", "d", NULL) == 0);
    CHECK(lookup("a=1&b=2&c=3", "", NULL) == 0);
    CHECK(lookup("", "a", NULL) == 0);
    CHECK(lookup("ab=1", "a", NULL) == 0);
    CHECK(lookup("a=1", "ab", NULL) == 0);
    CHECK(lookup("A=1", "a", NULL) == 0); /* names are case-sensitive */

    /* Values come back raw. */
    CHECK(lookup("q=hello+world%21", "q", "hello+world%21") == 1);
    CHECK(lookup("q=a=b=c", "q", "a=b=c") == 1);
    CHECK(lookup("q=%zz", "q", "%zz") == 1); /* the caller reports the bad value */

    /* Names are compared decoded. */
    CHECK(lookup("first%20name=Ada", "first name", "Ada") == 1);
    CHECK(lookup("first+name=Ada", "first name", "Ada") == 1);
    CHECK(lookup("%61%62=x", "ab", "x") == 1);
    CHECK(lookup("a%2Bb=1&a+b=2", "a+b", "1") == 1);
    CHECK(lookup("a%2Bb=1&a+b=2", "a b", "2") == 1);
    CHECK(lookup("a+b=1", "a+b", NULL) == 0);
    CHECK(lookup("caf%C3%A9=1", "caf\xc3\xa9", "1") == 1);
    CHECK(lookup("k%3D=v", "k=", "v") == 1);
    CHECK(lookup("k%26=v", "k&", "v") == 1);
    CHECK(lookup("%zz=1&%zz=2", "%zz", NULL) == 0); /* a badly encoded name matches nothing */
    CHECK(lookup("a%=1&a=2", "a", "2") == 1);
    CHECK(lookup("a%4=1", "a", NULL) == 0);
    CHECK(lookup("n%00=1", "n", NULL) == 0);

    /* Empty values and bare names. */
    CHECK(lookup("a=&b=2", "a", "") == 1);
    CHECK(lookup("a&b=2", "a", "") == 1);
    CHECK(lookup("b=2&a", "a", "") == 1);
    CHECK(lookup("flag", "flag", "") == 1);
    CHECK(lookup("=v", "", "v") == 1);
    CHECK(lookup("=v", "v", NULL) == 0);

    /* First match wins. */
    CHECK(lookup("a=1&a=2", "a", "1") == 1);
    CHECK(lookup("a&a=2", "a", "") == 1);
    CHECK(lookup("x=0&a%20=1&a+=2", "a ", "1") == 1);

    /* Empty pairs. */
    CHECK(lookup("&&a=1&&b=2&&", "b", "2") == 1);
    CHECK(lookup("a=1&", "a", "1") == 1);
    CHECK(lookup("&", "a", NULL) == 0);
    CHECK(lookup("&&&", "", NULL) == 0);
    CHECK(lookup("a=1&&", "", NULL) == 0);
    CHECK(lookup("&a", "a", "") == 1);

    /* The query is a slice: bytes past its length are not looked at. */
    const char raw[] = "a=1&b=2";
    struct coil_str v;
    CHECK(coil__query_find((struct coil_str){raw, 3}, "b", 1, &v) == 0);
    CHECK(coil__query_find((struct coil_str){raw, 3}, "a", 1, &v) == 1 && v.len == 1);
    CHECK(coil__query_find((struct coil_str){raw, 2}, "a", 1, &v) == 1 && v.len == 0);
    CHECK(coil__query_find((struct coil_str){NULL, 0}, "a", 1, &v) == 0);
}

int main(void)
{
    test_decode();
    test_find();
    printf("test_query: ok\n");
    return 0;
}
