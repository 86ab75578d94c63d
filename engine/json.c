/* SPDX-License-Identifier: MIT */
/*
 * json: the streaming JSON writer behind coil_json_* (coil.h). The output buffer lives in the
 * request arena, starts at 256 bytes and doubles, so it dies with the request. Structure is
 * tracked in two 64-bit masks: bit d-1 describes the container open at depth d (1..64), "first"
 * (nothing written in it yet, so no comma is due) and "is_object" (keys are due); the top level
 * (depth 0) holds exactly one value, and it has been written once len is non-zero. Inside an
 * object, want_value is set between a key and its value. Strings are escaped per RFC 8259 and
 * checked as UTF-8: each maximal ill-formed subsequence becomes U+FFFD, and U+2028/U+2029 are
 * written as \u2028/\u2029 so the output is also safe inside a <script>. Integers are converted
 * by hand two digits at a time; doubles take the shortest of %.15g/%.16g/%.17g that reads back
 * exactly. The first error (misuse -EINVAL, arena -ENOMEM) sticks in err and turns every later
 * call into a no-op; a NULL writer is a no-op too, so a handler need not test coil_res_json.
 */
#include "json.h"

#include <assert.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64  /* one bit per open container in first / is_object */
#define FIRST_CAP 256 /* initial buffer size */
#define MAX_ESCAPE 6  /* longest output for one special character: \u00XX */

static const char hex_digits[] = "0123456789abcdef";

/* "00" .. "99": two digits per division. */
static const char digit_pairs[] = "00010203040506070809101112131415161718192021222324"
                                  "25262728293031323334353637383940414243444546474849"
                                  "50515253545556575859606162636465666768697071727374"
                                  "75767778798081828384858687888990919293949596979899";

void coil__json_init(struct coil_json *j, struct coil_arena *a)
{
    assert(j && a);
    memset(j, 0, sizeof(*j));
    j->arena = a;
}

int coil__json_finish(const struct coil_json *j)
{
    if (!j)
        return -EINVAL;
    if (j->err)
        return j->err;
    if (j->depth != 0 || j->want_value || j->len == 0)
        return -EINVAL;
    return 0;
}

static void fail(struct coil_json *j, int err)
{
    if (!j->err)
        j->err = err;
}

static uint64_t depth_bit(const struct coil_json *j)
{
    assert(j->depth >= 1 && j->depth <= MAX_DEPTH);
    return UINT64_C(1) << (j->depth - 1);
}

/* Room for n more bytes. false (err set) when the arena is out of memory. */
static bool reserve(struct coil_json *j, size_t n)
{
    if (n <= j->cap - j->len)
        return true;
    if (n > SIZE_MAX / 4 - j->len) {
        fail(j, -ENOMEM);
        return false;
    }
    size_t need = j->len + n;
    size_t cap = j->cap ? j->cap * 2 : FIRST_CAP;
    while (cap < need)
        cap *= 2;
    char *b = coil__arena_grow(j->arena, j->buf, j->cap, cap);
    if (!b) {
        fail(j, -ENOMEM);
        return false;
    }
    j->buf = b;
    j->cap = cap;
    return true;
}

static void put_raw(struct coil_json *j, const char *s, size_t n)
{
    if (j->err || !reserve(j, n))
        return;
    memcpy(j->buf + j->len, s, n);
    j->len += n;
}

/* One byte: the punctuation between values, kept out of memcpy. */
static inline void put_char(struct coil_json *j, char c)
{
    if (j->err || !reserve(j, 1))
        return;
    j->buf[j->len++] = c;
}

/* Whether a value may come now: -1 not (err set), else the comma that separates it from the
 * one before (',') or 0, for the caller to write. */
static int value_lead(struct coil_json *j)
{
    if (!j || j->err)
        return -1;
    if (j->depth == 0) {
        if (j->len != 0) /* the top level holds one value */
            fail(j, -EINVAL);
        return j->err ? -1 : 0;
    }
    uint64_t bit = depth_bit(j);
    if (j->is_object & bit) {
        if (!j->want_value)
            fail(j, -EINVAL);
        j->want_value = 0;
        return j->err ? -1 : 0;
    }
    int lead = (j->first & bit) ? 0 : ',';
    j->first &= ~bit;
    return lead;
}

/* Whether a value may come now; writes the comma that separates it from the one before. */
static bool begin_value(struct coil_json *j)
{
    int lead = value_lead(j);
    if (lead > 0)
        put_char(j, (char)lead);
    return lead >= 0 && j->err == 0;
}

/* Length of the well-formed UTF-8 sequence at s (s[0] >= 0x80), or 0 with *bad set to the
 * length of its maximal ill-formed subpart (Unicode 15, 3.9: one U+FFFD per subpart). */
static size_t utf8_len(const unsigned char *s, size_t n, size_t *bad)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t more;
    if (c >= 0xc2 && c <= 0xdf) {
        more = 1;
    } else if (c >= 0xe0 && c <= 0xef) {
        more = 2;
        lo = c == 0xe0 ? 0xa0 : 0x80; /* no overlong forms */
        hi = c == 0xed ? 0x9f : 0xbf; /* no surrogates */
    } else if (c >= 0xf0 && c <= 0xf4) {
        more = 3;
        lo = c == 0xf0 ? 0x90 : 0x80; /* no overlong forms */
        hi = c == 0xf4 ? 0x8f : 0xbf; /* nothing above U+10FFFF */
    } else {
        *bad = 1; /* continuation byte, C0, C1, F5..FF: never a valid first byte */
        return 0;
    }
    for (size_t i = 1; i <= more; i++) {
        if (i >= n || s[i] < lo || s[i] > hi) {
            *bad = i;
            return 0;
        }
        lo = 0x80; /* only the second byte has a narrower range */
        hi = 0xbf;
    }
    return more + 1;
}

/* Writes one character that is not copied as is; returns the bytes of s consumed (>= 1). */
static size_t put_special(struct coil_json *j, const unsigned char *s, size_t n)
{
    static const char short_esc[] = "btn\0fr"; /* for 0x08 .. 0x0d; 0x0b has none */
    char esc[MAX_ESCAPE];
    const char *out = esc;
    size_t len = 2, used = 1, bad;
    unsigned char c = s[0];
    esc[0] = '\\';
    if (c == '"' || c == '\\') {
        esc[1] = (char)c;
    } else if (c >= 0x08 && c <= 0x0d && short_esc[c - 0x08]) {
        esc[1] = short_esc[c - 0x08];
    } else if (c < 0x20) {
        memcpy(esc + 1, "u00", 3);
        esc[4] = hex_digits[c >> 4];
        esc[5] = hex_digits[c & 15];
        len = 6;
    } else if ((used = utf8_len(s, n, &bad)) == 0) {
        out = "\xef\xbf\xbd"; /* U+FFFD */
        len = 3;
        used = bad;
    } else if (used == 3 && c == 0xe2 && s[1] == 0x80 && (s[2] == 0xa8 || s[2] == 0xa9)) {
        out = s[2] == 0xa8 ? "\\u2028" : "\\u2029";
        len = 6;
    } else {
        out = (const char *)s; /* well-formed multi-byte character */
        len = used;
    }
    put_raw(j, out, len);
    return used;
}

/* Bytes copied unchanged inside a JSON string: printable ASCII but '"' and '\\'. */
static const unsigned char plain_tab[256] = {
    [0x20 ... 0x21] = 1, /* '"' is 0x22 */
    [0x23 ... 0x5b] = 1, /* '\\' is 0x5c */
    [0x5d ... 0x7f] = 1,
};

static inline bool is_plain(unsigned char c)
{
    return plain_tab[c];
}

/* Whether the eight bytes in x are all plain: none has the high bit, none is below 0x20, none
 * is '"' or '\\' (the zero-byte test of each of x - 0x20.., x ^ '"'.., x ^ '\\'..). */
static inline bool plain8(uint64_t x)
{
    const uint64_t ones = 0x0101010101010101u, high = 0x8080808080808080u;
    uint64_t q = x ^ (ones * '"'), b = x ^ (ones * '\\');
    uint64_t bad = x | ((x - ones * 0x20) & ~x) | ((q - ones) & ~q) | ((b - ones) & ~b);
    return !(bad & high);
}

/* Length of the prefix of s[0..n) that is copied unchanged: the rest of a string that needed
 * an escape (put_string's fast path handles the strings that need none). */
static size_t plain_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n && is_plain(s[i]))
        i++;
    return i;
}

/*
 * Writes str as a JSON string, after `lead` (a comma) and followed by `tail` (':' after a key)
 * unless they are 0. Most
 * strings need no escape: those are checked and copied in one pass after one reservation (a
 * loop beats a call to memcpy on the short strings of real documents).
 */
static void put_string(struct coil_json *j, const char *str, size_t n, char lead, char tail)
{
    const unsigned char *s = (const unsigned char *)str;
    if (j->err || !reserve(j, n + 4))
        return;
    char *p = j->buf + j->len;
    if (lead)
        *p++ = lead;
    *p++ = '"';
    size_t i = 0;
    for (; i + 8 <= n; i += 8) { /* eight bytes at a time while all of them are plain */
        uint64_t x;
        memcpy(&x, s + i, 8);
        if (!plain8(x))
            break;
        memcpy(p + i, &x, 8);
    }
    while (i < n && is_plain(s[i])) {
        p[i] = (char)s[i];
        i++;
    }
    if (i == n) {
        p += n;
        *p++ = '"';
        if (tail)
            *p++ = tail;
        j->len = (size_t)(p - j->buf);
        return;
    }
    j->len = (size_t)(p + i - j->buf); /* the quote and the plain prefix are in */
    while (i < n && !j->err) {
        size_t run = i + plain_prefix(s + i, n - i);
        if (run > i) {
            put_raw(j, str + i, run - i);
            i = run;
        }
        if (i < n)
            i += put_special(j, s + i, n - i);
    }
    put_char(j, '"');
    if (tail)
        put_char(j, tail);
}

static void open_container(struct coil_json *j, bool object, char c)
{
    if (j && !j->err && j->depth == MAX_DEPTH)
        fail(j, -EINVAL);
    if (!begin_value(j))
        return;
    put_char(j, c);
    if (j->err)
        return;
    j->depth++;
    uint64_t bit = depth_bit(j);
    j->first |= bit;
    if (object)
        j->is_object |= bit;
    else
        j->is_object &= ~bit;
}

static void close_container(struct coil_json *j, bool object, char c)
{
    if (!j || j->err)
        return;
    if (j->depth == 0 || !(j->is_object & depth_bit(j)) != !object || j->want_value) {
        fail(j, -EINVAL);
        return;
    }
    put_char(j, c);
    if (!j->err)
        j->depth--;
}

void coil_json_object_open(struct coil_json *j)
{
    open_container(j, true, '{');
}

void coil_json_object_close(struct coil_json *j)
{
    close_container(j, true, '}');
}

void coil_json_array_open(struct coil_json *j)
{
    open_container(j, false, '[');
}

void coil_json_array_close(struct coil_json *j)
{
    close_container(j, false, ']');
}

void coil_json_keyn(struct coil_json *j, const char *key, size_t len)
{
    if (!j || j->err)
        return;
    if ((!key && len) || j->depth == 0 || !(j->is_object & depth_bit(j)) || j->want_value) {
        fail(j, -EINVAL);
        return;
    }
    uint64_t bit = depth_bit(j);
    char lead = (j->first & bit) ? 0 : ',';
    j->first &= ~bit;
    put_string(j, key, len, lead, ':');
    j->want_value = 1;
}

void coil_json_stringn(struct coil_json *j, const char *s, size_t len)
{
    if (j && !j->err && !s && len) {
        fail(j, -EINVAL);
        return;
    }
    int lead = value_lead(j);
    if (lead >= 0)
        put_string(j, s, len, (char)lead, 0);
}

/* A NULL string is written as null. */
void coil_json_string(struct coil_json *j, const char *s)
{
    if (!s)
        coil_json_null(j);
    else
        coil_json_stringn(j, s, strlen(s));
}

/* Writes v's decimal digits so that they end at end; returns how many. */
static size_t u64_digits(char *end, uint64_t v)
{
    char *p = end;
    while (v >= 100) {
        uint64_t r = v % 100;
        v /= 100;
        p -= 2;
        memcpy(p, digit_pairs + 2 * r, 2);
    }
    if (v >= 10) {
        p -= 2;
        memcpy(p, digit_pairs + 2 * v, 2);
    } else {
        *--p = (char)('0' + v);
    }
    return (size_t)(end - p);
}

void coil_json_uint(struct coil_json *j, uint64_t v)
{
    char tmp[24];
    if (!begin_value(j))
        return;
    size_t n = u64_digits(tmp + sizeof(tmp), v);
    put_raw(j, tmp + sizeof(tmp) - n, n);
}

void coil_json_int(struct coil_json *j, int64_t v)
{
    char tmp[24];
    if (!begin_value(j))
        return;
    uint64_t mag = v < 0 ? UINT64_C(0) - (uint64_t)v : (uint64_t)v; /* INT64_MIN too */
    size_t n = u64_digits(tmp + sizeof(tmp), mag);
    if (v < 0)
        tmp[sizeof(tmp) - ++n] = '-';
    put_raw(j, tmp + sizeof(tmp) - n, n);
}

static size_t skip_digits(const char *s, size_t i, size_t n)
{
    while (i < n && s[i] >= '0' && s[i] <= '9')
        i++;
    return i;
}

/* RFC 8259 number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool valid_number(const char *s, size_t n)
{
    size_t i = 0, d;
    if (i < n && s[i] == '-')
        i++;
    d = i;
    i = skip_digits(s, i, n);
    if (i == d || (s[d] == '0' && i - d > 1))
        return false;
    if (i < n && s[i] == '.') {
        d = ++i;
        i = skip_digits(s, i, n);
        if (i == d)
            return false;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        d = i;
        i = skip_digits(s, i, n);
        if (i == d)
            return false;
    }
    return i == n;
}

/* The shortest of %.15g, %.16g, %.17g that reads back as v; -1 if not a JSON number. */
static int format_double(char *buf, size_t cap, double v)
{
    int n = -1;
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(buf, cap, "%.*g", prec, v);
        if (n <= 0 || (size_t)n >= cap)
            return -1;
        if (strtod(buf, NULL) == v)
            break; /* %.17g always round-trips, so the last try is kept regardless */
    }
    for (int i = 0; i < n; i++)
        if (buf[i] == ',') /* a locale's decimal comma */
            buf[i] = '.';
    return valid_number(buf, (size_t)n) ? n : -1;
}

void coil_json_double(struct coil_json *j, double v)
{
    /* Whole numbers below 1e15 print as %.15g prints them, digits only, without the
     * snprintf/strtod round trip (-0.0 keeps its sign through the slow path). */
    if (v > -1e15 && v < 1e15 && v == (double)(int64_t)v && v != 0) {
        coil_json_int(j, (int64_t)v);
        return;
    }
    char tmp[40];
    int n = isfinite(v) ? format_double(tmp, sizeof(tmp), v) : -1;
    if (!begin_value(j))
        return;
    if (n < 0)
        put_raw(j, "null", 4);
    else
        put_raw(j, tmp, (size_t)n);
}

void coil_json_bool(struct coil_json *j, bool v)
{
    if (begin_value(j))
        put_raw(j, v ? "true" : "false", v ? 4 : 5);
}

void coil_json_null(struct coil_json *j)
{
    if (begin_value(j))
        put_raw(j, "null", 4);
}

void coil_json_raw(struct coil_json *j, const char *json, size_t len)
{
    if (begin_value(j))
        put_raw(j, json, len);
}

int coil_json_text(const struct coil_json *j, struct coil_str *out)
{
    int err = coil__json_finish(j);
    if (err == 0 && out) {
        out->ptr = j->buf;
        out->len = j->len;
    }
    return err;
}
