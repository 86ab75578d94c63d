/* SPDX-License-Identifier: MIT */
/*
 * test_json: the JSON writer against exact expected text. Nesting and commas, escaping of
 * every control character, quote and backslash (in keys too), invalid UTF-8 replaced by U+FFFD
 * one maximal subpart at a time, well-formed multi-byte UTF-8 kept, integer edges, doubles that
 * read back exactly, non-finite doubles as null, every kind of misuse, and documents large
 * enough to grow the buffer many times. Each document is written into a fresh request arena.
 */
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "json.h"
#include "walloc.h"

#include "check.h"

static struct coil_walloc wa;
static struct coil_arena arena;

/* A writer on a freshly reset arena. */
static void start(struct coil_json *j)
{
    coil__arena_reset(&arena);
    coil__json_init(j, &arena);
}

/* The document is complete and equals want[0..want_len). */
static int doc_is(const struct coil_json *j, const char *want, size_t want_len)
{
    if (coil__json_finish(j) != 0) {
        fprintf(stderr, "finish: %d\n", coil__json_finish(j));
        return 0;
    }
    if (j->len != want_len || memcmp(j->buf, want, want_len) != 0) {
        fprintf(stderr, "got  %.*s\nwant %.*s\n", (int)j->len, j->buf, (int)want_len, want);
        return 0;
    }
    return 1;
}

#define DOC_IS(j, lit) doc_is((j), (lit), sizeof(lit) - 1)

/* The string s[0..n) written as a lone value. */
static int string_is(const char *s, size_t n, const char *want, size_t want_len)
{
    struct coil_json j;
    start(&j);
    coil_json_stringn(&j, s, n);
    return doc_is(&j, want, want_len);
}

#define STRING_IS(s, want) string_is((s), sizeof(s) - 1, (want), sizeof(want) - 1)

static void test_structure(void)
{
    struct coil_json j;
    start(&j);
    coil_json_object_open(&j);
    coil_json_key(&j, "a");
    coil_json_int(&j, 1);
    coil_json_key(&j, "b");
    coil_json_array_open(&j);
    coil_json_int(&j, 1);
    coil_json_uint(&j, 2);
    coil_json_object_open(&j);
    coil_json_key(&j, "c");
    coil_json_null(&j);
    coil_json_keyn(&j, "dXX", 1);
    coil_json_bool(&j, true);
    coil_json_object_close(&j);
    coil_json_bool(&j, false);
    coil_json_array_close(&j);
    coil_json_key(&j, "e");
    coil_json_object_open(&j);
    coil_json_object_close(&j);
    coil_json_key(&j, "f");
    coil_json_array_open(&j);
    coil_json_array_close(&j);
    coil_json_key(&j, "");
    coil_json_string(&j, "");
    coil_json_object_close(&j);
    CHECK(DOC_IS(
        &j, "{\"a\":1,\"b\":[1,2,{\"c\":null,\"d\":true},false],\"e\":{},\"f\":[],\"\":\"\"}"));

    start(&j);
    coil_json_array_open(&j);
    coil_json_array_open(&j);
    coil_json_array_close(&j);
    coil_json_array_open(&j);
    coil_json_array_open(&j);
    coil_json_array_close(&j);
    coil_json_object_open(&j);
    coil_json_object_close(&j);
    coil_json_array_close(&j);
    coil_json_string(&j, "x");
    coil_json_array_close(&j);
    CHECK(DOC_IS(&j, "[[],[[],{}],\"x\"]"));

    /* Any value may be the whole document. */
    start(&j);
    coil_json_int(&j, 42);
    CHECK(DOC_IS(&j, "42"));
    start(&j);
    coil_json_string(&j, "s");
    CHECK(DOC_IS(&j, "\"s\""));
    start(&j);
    coil_json_bool(&j, true);
    CHECK(DOC_IS(&j, "true"));
    start(&j);
    coil_json_string(&j, NULL); /* NULL string is null */
    CHECK(DOC_IS(&j, "null"));
    start(&j);
    coil_json_double(&j, 2.5);
    CHECK(DOC_IS(&j, "2.5"));

    /* 64 levels are allowed. */
    start(&j);
    for (int i = 0; i < 64; i++)
        coil_json_array_open(&j);
    for (int i = 0; i < 64; i++)
        coil_json_array_close(&j);
    CHECK(coil__json_finish(&j) == 0 && j.len == 128);
    for (size_t i = 0; i < 128; i++)
        CHECK(j.buf[i] == (i < 64 ? '[' : ']'));

    /* Objects and arrays alternate across depths without mixing their state. */
    start(&j);
    coil_json_array_open(&j);
    for (int i = 0; i < 3; i++) {
        coil_json_object_open(&j);
        coil_json_key(&j, "k");
        coil_json_array_open(&j);
        coil_json_int(&j, i);
        coil_json_int(&j, -i);
        coil_json_array_close(&j);
        coil_json_key(&j, "z");
        coil_json_int(&j, 0);
        coil_json_object_close(&j);
    }
    coil_json_array_close(&j);
    CHECK(DOC_IS(&j, "[{\"k\":[0,0],\"z\":0},{\"k\":[1,-1],\"z\":0},{\"k\":[2,-2],\"z\":0}]"));
}

#define FFFD_ESC "\xef\xbf\xbd" /* U+FFFD, what a stray byte >= 0x80 becomes */

static void test_escapes(void)
{
    char all[32 + 5];
    for (int i = 0; i < 32; i++)
        all[i] = (char)i;
    memcpy(all + 32, "\"\\/\x7f", 4);
    all[36] = 'z';
    static const char want[] = "\"\\u0000\\u0001\\u0002\\u0003\\u0004\\u0005\\u0006\\u0007"
                               "\\b\\t\\n\\u000b\\f\\r\\u000e\\u000f"
                               "\\u0010\\u0011\\u0012\\u0013\\u0014\\u0015\\u0016\\u0017"
                               "\\u0018\\u0019\\u001a\\u001b\\u001c\\u001d\\u001e\\u001f"
                               "\\\"\\\\/\x7fz\"";
    CHECK(string_is(all, sizeof(all), want, sizeof(want) - 1));

    CHECK(STRING_IS("say \"hi\"\\n", "\"say \\\"hi\\\"\\\\n\""));
    CHECK(STRING_IS("\"", "\"\\\"\""));
    CHECK(STRING_IS("\\", "\"\\\\\""));
    CHECK(STRING_IS("line\r\nnext\ttab", "\"line\\r\\nnext\\ttab\""));
    CHECK(STRING_IS("a\0b", "\"a\\u0000b\""));
    CHECK(STRING_IS("</script>", "\"</script>\""));

    /* One special byte at every offset of a longer plain string: the scan that skips plain
     * text eight bytes at a time must stop at each of them, wherever it falls in a word. */
    static const struct {
        char c;
        const char *esc;
    } specials[] = {{'"', "\\\""},       {'\\', "\\\\"},     {'\n', "\\n"},     {'\x01', "\\u0001"},
                    {'\x1f', "\\u001f"}, {'\xff', FFFD_ESC}, {'\x80', FFFD_ESC}};
    for (size_t k = 0; k < sizeof(specials) / sizeof(specials[0]); k++) {
        for (size_t at = 0; at < 40; at++) {
            char in[40], out[64];
            memset(in, 'a' + (int)(at % 26), sizeof(in));
            in[at] = specials[k].c;
            size_t e = strlen(specials[k].esc);
            out[0] = '"';
            memcpy(out + 1, in, at);
            memcpy(out + 1 + at, specials[k].esc, e);
            memcpy(out + 1 + at + e, in + at + 1, sizeof(in) - at - 1);
            out[sizeof(in) + e] = '"';
            CHECK(string_is(in, sizeof(in), out, sizeof(in) + e + 1));
        }
    }

    /* The plain bytes at the edges of the ranges around '"', '\\', 0x20 and 0x80, at every
     * offset of the eight-byte fast path: copied as they are. */
    static const char edges[] = " !#[]~\x7f";
    for (size_t at = 0; at < 24; at++) {
        char in[32];
        memset(in, 'a', sizeof(in));
        memcpy(in + at % 25, edges, sizeof(edges) - 1);
        char out[34];
        out[0] = '"';
        memcpy(out + 1, in, sizeof(in));
        out[33] = '"';
        CHECK(string_is(in, sizeof(in), out, sizeof(out)));
    }

    /* Keys are escaped the same way. */
    struct coil_json j;
    start(&j);
    coil_json_object_open(&j);
    coil_json_keyn(&j, "k\"\n\0\xff", 5);
    coil_json_string(&j, "v");
    coil_json_object_close(&j);
    CHECK(DOC_IS(&j, "{\"k\\\"\\n\\u0000\xef\xbf\xbd\":\"v\"}"));
}

#define FFFD "\xef\xbf\xbd"

static void test_utf8(void)
{
    /* Well-formed sequences pass unchanged, at every boundary of each length. */
    CHECK(STRING_IS("caf\xc3\xa9", "\"caf\xc3\xa9\""));
    /* U+0080, U+07FF; U+0800, U+D7FF; U+E000, U+FFFF; the euro sign */
    CHECK(STRING_IS("\xc2\x80\xdf\xbf", "\"\xc2\x80\xdf\xbf\""));
    CHECK(STRING_IS("\xe0\xa0\x80\xed\x9f\xbf", "\"\xe0\xa0\x80\xed\x9f\xbf\""));
    CHECK(STRING_IS("\xee\x80\x80\xef\xbf\xbf", "\"\xee\x80\x80\xef\xbf\xbf\""));
    CHECK(STRING_IS("\xe2\x82\xac", "\"\xe2\x82\xac\""));
    /* U+10000, an emoji, U+10FFFF */
    CHECK(STRING_IS("\xf0\x90\x80\x80", "\"\xf0\x90\x80\x80\""));
    CHECK(STRING_IS("\xf0\x9f\x98\x80!", "\"\xf0\x9f\x98\x80!\""));
    CHECK(STRING_IS("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""));
    CHECK(STRING_IS(FFFD, "\"" FFFD "\""));
    /* U+2028 and U+2029 are escaped (valid JSON either way, but not valid JavaScript). */
    CHECK(STRING_IS("a\xe2\x80\xa8z\xe2\x80\xa9", "\"a\\u2028z\\u2029\""));
    CHECK(STRING_IS("\xe2\x80\xaa", "\"\xe2\x80\xaa\""));

    /* Ill-formed: one U+FFFD per maximal subpart (what Python's errors="replace" does). */
    CHECK(STRING_IS("\x80", "\"" FFFD "\""));
    CHECK(STRING_IS("a\xbfz", "\"a" FFFD "z\""));
    /* overlong encodings */
    CHECK(STRING_IS("\xc0\xaf", "\"" FFFD FFFD "\""));
    CHECK(STRING_IS("\xc1\xbf", "\"" FFFD FFFD "\""));
    CHECK(STRING_IS("\xe0\x80\xaf", "\"" FFFD FFFD FFFD "\""));
    CHECK(STRING_IS("\xf0\x80\x80\xaf", "\"" FFFD FFFD FFFD FFFD "\""));
    /* surrogates, above U+10FFFF, bytes that never start a sequence */
    CHECK(STRING_IS("\xed\xa0\x80", "\"" FFFD FFFD FFFD "\""));
    CHECK(STRING_IS("\xed\xbf\xbf", "\"" FFFD FFFD FFFD "\""));
    CHECK(STRING_IS("\xf4\x90\x80\x80", "\"" FFFD FFFD FFFD FFFD "\""));
    CHECK(STRING_IS("\xf5\x80", "\"" FFFD FFFD "\""));
    CHECK(STRING_IS("\xff\xfe", "\"" FFFD FFFD "\""));
    /* truncated sequences: at the end, before ASCII, before another lead byte */
    CHECK(STRING_IS("\xe2\x82", "\"" FFFD "\""));
    CHECK(STRING_IS("\xe2\x82z", "\"" FFFD "z\""));
    CHECK(STRING_IS("\xe2z\x82", "\"" FFFD "z" FFFD "\""));
    CHECK(STRING_IS("\xf0\x9f\x98", "\"" FFFD "\""));
    CHECK(STRING_IS("\xf0\x9f\x98\"", "\"" FFFD "\\\"\""));
    CHECK(STRING_IS("\xc3\xc3\xa9", "\"" FFFD "\xc3\xa9\""));
    CHECK(STRING_IS("\xc3\n", "\"" FFFD "\\n\""));
    /* Only len bytes are read: a continuation byte just past the end is not used. */
    CHECK(string_is("\xc3\xa9", 1, "\"" FFFD "\"", 5));
}

static void test_integers(void)
{
    struct coil_json j;
    start(&j);
    coil_json_array_open(&j);
    coil_json_int(&j, 0);
    coil_json_int(&j, -1);
    coil_json_int(&j, INT64_MIN);
    coil_json_int(&j, INT64_MAX);
    coil_json_uint(&j, 0);
    coil_json_uint(&j, UINT64_MAX);
    coil_json_array_close(&j);
    CHECK(DOC_IS(&j, "[0,-1,-9223372036854775808,9223372036854775807,0,18446744073709551615]"));

    /* Around every power of ten, against printf. */
    char want[64];
    uint64_t p = 1;
    for (int e = 0; e < 20; e++, p *= 10) {
        uint64_t us[] = {p - 1, p, p + 1, p + p / 2};
        for (size_t k = 0; k < sizeof(us) / sizeof(us[0]); k++) {
            start(&j);
            coil_json_uint(&j, us[k]);
            snprintf(want, sizeof(want), "%" PRIu64, us[k]);
            CHECK(doc_is(&j, want, strlen(want)));
            int64_t s = (int64_t)us[k];
            start(&j);
            coil_json_int(&j, -s);
            snprintf(want, sizeof(want), "%" PRId64, -s);
            CHECK(doc_is(&j, want, strlen(want)));
        }
    }
    srand(1);
    for (int i = 0; i < 10000; i++) {
        uint64_t u = ((uint64_t)rand() << 42) ^ ((uint64_t)rand() << 21) ^ (uint64_t)rand();
        u >>= rand() % 64;
        start(&j);
        coil_json_uint(&j, u);
        snprintf(want, sizeof(want), "%" PRIu64, u);
        CHECK(doc_is(&j, want, strlen(want)));
        start(&j);
        coil_json_int(&j, (int64_t)u);
        snprintf(want, sizeof(want), "%" PRId64, (int64_t)u);
        CHECK(doc_is(&j, want, strlen(want)));
    }
}

/* The lone value v is written as want (NULL: check it reads back as exactly v instead). */
static void check_double(double v, const char *want)
{
    struct coil_json j;
    start(&j);
    coil_json_double(&j, v);
    CHECK(coil__json_finish(&j) == 0);
    char text[64];
    CHECK(j.len < sizeof(text));
    memcpy(text, j.buf, j.len);
    text[j.len] = '\0';
    if (want) {
        if (strcmp(text, want) != 0)
            fprintf(stderr, "double %.17g: got %s want %s\n", v, text, want);
        CHECK(strcmp(text, want) == 0);
        return;
    }
    /* A JSON number: optional '-', digits without a leading zero, fraction, exponent. */
    const char *s = text + (text[0] == '-');
    CHECK(s[0] >= '0' && s[0] <= '9' && !(s[0] == '0' && s[1] >= '0' && s[1] <= '9'));
    CHECK(strspn(text, "-+.0123456789e") == j.len);
    double back = strtod(text, NULL);
    CHECK(memcmp(&back, &v, sizeof(v)) == 0);
}

static void test_doubles(void)
{
    check_double(0.0, "0");
    check_double(-0.0, "-0");
    check_double(1.0, "1");
    check_double(1.5, "1.5");
    check_double(-2.25, "-2.25");
    check_double(0.1, "0.1");
    check_double(0.1 + 0.2, "0.30000000000000004");
    check_double(1e300, "1e+300");
    check_double(1e-7, "1e-07");
    check_double(123456789.125, "123456789.125");
    /* whole numbers take a shortcut below 1e15; both sides of its edge print as %.15g does */
    check_double(-7.0, "-7");
    check_double(100.0, "100");
    check_double(999999999999999.0, "999999999999999");
    check_double(-999999999999999.0, "-999999999999999");
    check_double(1e15, "1e+15");
    check_double(-1e15, "-1e+15");
    check_double(4503599627370497.0, "4503599627370497");
    check_double(DBL_MAX, "1.7976931348623157e+308");
    check_double(-DBL_MAX, "-1.7976931348623157e+308");
    check_double(DBL_MIN, NULL);
    check_double(5e-324, NULL);
    check_double(9007199254740993.0, NULL);
    check_double(INFINITY, "null");
    check_double(-INFINITY, "null");
    check_double(NAN, "null");
    check_double(-NAN, "null");
    srand(2);
    for (int i = 0; i < 20000; i++) {
        uint64_t bits = ((uint64_t)rand() << 42) ^ ((uint64_t)rand() << 21) ^ (uint64_t)rand();
        double v;
        memcpy(&v, &bits, sizeof(v));
        check_double(v, isfinite(v) ? NULL : "null");
    }

    /* Non-finite values keep the commas right. */
    struct coil_json j;
    start(&j);
    coil_json_array_open(&j);
    coil_json_double(&j, NAN);
    coil_json_double(&j, 0.5);
    coil_json_double(&j, INFINITY);
    coil_json_array_close(&j);
    CHECK(DOC_IS(&j, "[null,0.5,null]"));
}

/* A misused writer: finish reports -EINVAL and no more bytes are written. */
static void check_broken(struct coil_json *j)
{
    CHECK(j->err == -EINVAL && coil__json_finish(j) == -EINVAL);
    size_t len = j->len;
    coil_json_object_open(j);
    coil_json_key(j, "k");
    coil_json_string(j, "s");
    coil_json_int(j, 1);
    coil_json_uint(j, 1);
    coil_json_double(j, 1.0);
    coil_json_bool(j, true);
    coil_json_null(j);
    coil_json_object_close(j);
    coil_json_array_open(j);
    coil_json_array_close(j);
    CHECK(j->len == len && j->err == -EINVAL);
}

static void test_misuse(void)
{
    struct coil_json j;

    start(&j);
    CHECK(coil__json_finish(&j) == -EINVAL); /* empty document */

    start(&j); /* a value where a key is due */
    coil_json_object_open(&j);
    coil_json_int(&j, 1);
    check_broken(&j);

    start(&j); /* a key in an array */
    coil_json_array_open(&j);
    coil_json_key(&j, "k");
    check_broken(&j);

    start(&j); /* a key at the top level */
    coil_json_key(&j, "k");
    check_broken(&j);

    start(&j); /* two keys in a row */
    coil_json_object_open(&j);
    coil_json_key(&j, "a");
    coil_json_key(&j, "b");
    check_broken(&j);

    start(&j); /* closing while a value is due */
    coil_json_object_open(&j);
    coil_json_key(&j, "a");
    coil_json_object_close(&j);
    check_broken(&j);

    start(&j); /* closing the wrong kind of container */
    coil_json_object_open(&j);
    coil_json_array_close(&j);
    check_broken(&j);

    start(&j);
    coil_json_array_open(&j);
    coil_json_object_close(&j);
    check_broken(&j);

    start(&j); /* closing with nothing open */
    coil_json_array_open(&j);
    coil_json_array_close(&j);
    coil_json_array_close(&j);
    check_broken(&j);

    start(&j);
    coil_json_object_close(&j);
    check_broken(&j);

    start(&j); /* two values at the top level */
    coil_json_int(&j, 1);
    coil_json_int(&j, 2);
    check_broken(&j);

    start(&j);
    coil_json_array_open(&j);
    coil_json_array_close(&j);
    coil_json_object_open(&j);
    check_broken(&j);

    start(&j); /* 65 levels */
    for (int i = 0; i < 65; i++)
        coil_json_array_open(&j);
    check_broken(&j);
    CHECK(j.len == 64);

    start(&j); /* NULL key, NULL string with a length */
    coil_json_object_open(&j);
    coil_json_key(&j, NULL);
    check_broken(&j);
    start(&j);
    coil_json_stringn(&j, NULL, 3);
    check_broken(&j);
    start(&j);
    coil_json_stringn(&j, NULL, 0);
    CHECK(DOC_IS(&j, "\"\""));

    /* Unbalanced, but no call was wrong: finish still says no. */
    start(&j);
    coil_json_object_open(&j);
    CHECK(j.err == 0 && coil__json_finish(&j) == -EINVAL);
    coil_json_key(&j, "a");
    CHECK(j.err == 0 && coil__json_finish(&j) == -EINVAL);
    coil_json_int(&j, 1);
    CHECK(j.err == 0 && coil__json_finish(&j) == -EINVAL);
    coil_json_object_close(&j);
    CHECK(DOC_IS(&j, "{\"a\":1}"));

    /* The first error sticks. */
    start(&j);
    j.err = -ENOMEM;
    coil_json_int(&j, 1);
    CHECK(j.len == 0 && coil__json_finish(&j) == -ENOMEM);

    /* A NULL writer (coil_res_json out of memory) is a no-op. */
    coil_json_object_open(NULL);
    coil_json_key(NULL, "k");
    coil_json_keyn(NULL, "k", 1);
    coil_json_string(NULL, "s");
    coil_json_string(NULL, NULL);
    coil_json_stringn(NULL, "s", 1);
    coil_json_int(NULL, 1);
    coil_json_uint(NULL, 1);
    coil_json_double(NULL, 1.0);
    coil_json_double(NULL, NAN);
    coil_json_bool(NULL, true);
    coil_json_null(NULL);
    coil_json_object_close(NULL);
    coil_json_array_open(NULL);
    coil_json_array_close(NULL);
    CHECK(coil__json_finish(NULL) == -EINVAL);
}

static void test_large(void)
{
    struct coil_json j;
    enum { N = 100000 };
    size_t cap = 1u << 22;
    char *want = malloc(cap);
    CHECK(want);
    size_t len = 0;

    start(&j);
    coil_json_array_open(&j);
    CHECK(j.cap == 256);
    want[len++] = '[';
    for (int i = 0; i < N; i++) {
        int64_t v = (int64_t)i * 7919 - 400000000;
        coil_json_object_open(&j);
        coil_json_key(&j, "id");
        coil_json_int(&j, v);
        coil_json_key(&j, "name");
        coil_json_string(&j, i % 3 ? "x\ty" : "\xc3\xa9");
        coil_json_object_close(&j);
        len += (size_t)snprintf(want + len, cap - len, "%s{\"id\":%" PRId64 ",\"name\":%s}",
                                i ? "," : "", v, i % 3 ? "\"x\\ty\"" : "\"\xc3\xa9\"");
        CHECK(len < cap);
    }
    coil_json_array_close(&j);
    want[len++] = ']';
    CHECK(doc_is(&j, want, len));
    CHECK(j.cap >= j.len && (j.cap & (j.cap - 1)) == 0); /* 256 doubled */

    /* One string far larger than the buffer, made mostly of escapes. */
    size_t n = 300000;
    char *big = malloc(n);
    CHECK(big);
    len = 0;
    want[len++] = '"';
    for (size_t i = 0; i < n; i++) {
        big[i] = (char)(i % 4 == 0 ? '\n' : i % 4 == 1 ? 0x01 : 'a' + (int)(i % 26));
        if (big[i] == '\n')
            memcpy(want + len, "\\n", 2), len += 2;
        else if (big[i] == 0x01)
            memcpy(want + len, "\\u0001", 6), len += 6;
        else
            want[len++] = big[i];
    }
    want[len++] = '"';
    start(&j);
    coil_json_stringn(&j, big, n);
    CHECK(doc_is(&j, want, len));
    free(big);
    free(want);
}

int main(void)
{
    CHECK(coil__walloc_init(&wa) == 0);
    CHECK(coil__arena_init(&arena, &wa, 4096) == 0);
    test_structure();
    test_escapes();
    test_utf8();
    test_integers();
    test_doubles();
    test_misuse();
    test_large();
    coil__arena_fini(&arena);
    coil__walloc_fini(&wa);
    printf("test_json: ok\n");
    return 0;
}
