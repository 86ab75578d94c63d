/* SPDX-License-Identifier: MIT */
/*
 * jwt.c: verification of JSON Web Tokens in JWS compact form (RFC 7519, 7515, 7518) for the
 * authentication middleware (mw_auth.c). Three algorithms, each bound to one kind of key:
 * HS256 (a shared secret), RS256 (an RSA public key of 2048 bits or more, PKCS#1 v1.5) and
 * ES256 (an EC P-256 public key, the signature as raw r||s). A key verifies its own algorithm
 * and no other, so "alg":"none" and the old key confusion (an HS256 token whose secret is the
 * server's RSA public key) are refused like any other mismatch. The checks go from the cheapest
 * and least trusting up: size and shape, base64url, the header, the signature over the first two
 * parts, and only then the claims (exp, nbf, iss, aud) of a payload known to come from the
 * key's holder.
 *
 * JSON is read by a strict RFC 8259 scanner of our own (libcoil links no JSON parser, and we
 * need five members): whole documents are validated, UTF-8 included, at most 32 levels deep, so
 * the claims handed to handlers are always valid JSON. Member names are compared once unescaped
 * ("\u0061lg" is alg, "cr\u0069t" is crit), and a checked name that appears twice is refused:
 * RFC 7519 section 4 allows refusing or taking the last, and refusing leaves no disagreement
 * between parsers for a token to play on.
 *
 * Pure and re-entrant: a key is read-only once made (OpenSSL's EVP_PKEY, EVP_MD and EVP_MAC
 * may be used by many threads at once), and each verification works in the caller's scratch
 * buffer with contexts of its own. Built with libcrypto 3 only (COIL_HAVE_AUTH).
 */
#ifdef COIL_HAVE_AUTH
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <openssl/pem.h>

#include "jwt.h"

#define JSON_DEPTH 32
#define HS256_MIN 32 /* bytes of secret: RFC 7518 3.2 wants at least the hash's size */
#define RSA_MIN_BITS 2048
#define SHA256_LEN 32

struct coil__jwt_key {
    unsigned alg;          /* the COIL__JWT_* this key verifies, and no other */
    EVP_PKEY *pkey;        /* RS256, ES256 */
    EVP_MD *sha256;        /* their digest, fetched once */
    EVP_MAC *hmac;         /* HS256 */
    unsigned char *secret; /* HS256; wiped when freed */
    size_t secret_len;
};

static const struct {
    const char *name;
    unsigned alg;
} algs[] = {{"HS256", COIL__JWT_HS256}, {"RS256", COIL__JWT_RS256}, {"ES256", COIL__JWT_ES256}};

const char *coil__jwt_reason(int result)
{
    static const char *const why[] = {
        [COIL__JWT_OK] = "valid",
        [COIL__JWT_MALFORMED] = "not three base64url parts",
        [COIL__JWT_TOO_LONG] = "token too long",
        [COIL__JWT_HEADER] = "bad header",
        [COIL__JWT_ALG] = "alg not allowed",
        [COIL__JWT_CRIT] = "header has crit",
        [COIL__JWT_TYP] = "typ is not JWT",
        [COIL__JWT_SIGNATURE] = "bad signature",
        [COIL__JWT_CLAIMS] = "bad claims",
        [COIL__JWT_EXPIRED] = "expired",
        [COIL__JWT_EARLY] = "not valid yet (nbf)",
        [COIL__JWT_ISSUER] = "issuer mismatch",
        [COIL__JWT_AUDIENCE] = "audience mismatch",
    };
    if (result < 0 || (size_t)result >= sizeof(why) / sizeof(why[0]))
        return "internal error";
    return why[result];
}

/* ---- base64url -------------------------------------------------------------------------- */

static int b64url_value(unsigned char ch)
{
    if (ch >= 'A' && ch <= 'Z')
        return ch - 'A';
    if (ch >= 'a' && ch <= 'z')
        return ch - 'a' + 26;
    if (ch >= '0' && ch <= '9')
        return ch - '0' + 52;
    if (ch == '-')
        return 62;
    if (ch == '_')
        return 63;
    return -1;
}

int coil__b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen)
{
    if (len % 4 == 1) /* 6 bits cannot end a byte */
        return -EINVAL;
    uint32_t acc = 0; /* the bits not yet written, `bits` of them */
    unsigned bits = 0;
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -EINVAL;
        acc = acc << 6 | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc) /* the padding bits of the last character: set, it is a second encoding */
        return -EINVAL;
    *outlen = n;
    return 0;
}

/* ---- a strict JSON scanner -------------------------------------------------------------- */

struct jcur {
    const char *p, *end;
    unsigned depth; /* containers open */
};

/* A string as decoded: bytes past cap are counted, not written (len > cap: it did not fit). */
struct jstr {
    char *buf; /* NULL: only validate */
    size_t cap, len;
};

typedef int (*member_fn)(struct jcur *c, const struct jstr *name, void *ud);
typedef int (*element_fn)(struct jcur *c, void *ud);

static int json_value(struct jcur *c);

static void skip_ws(struct jcur *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

static bool eat(struct jcur *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

static bool at(const struct jcur *c, char ch)
{
    return c->p < c->end && *c->p == ch;
}

static void put(struct jstr *s, const void *src, size_t n)
{
    if (s->buf && s->len + n <= s->cap)
        memcpy(s->buf + s->len, src, n);
    s->len += n;
}

static void put_utf8(struct jstr *s, unsigned cp)
{
    unsigned char b[4];
    size_t n;
    if (cp < 0x80) {
        b[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (unsigned char)(0xc0 | cp >> 6);
        b[1] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (unsigned char)(0xe0 | cp >> 12);
        b[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        b[2] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        b[0] = (unsigned char)(0xf0 | cp >> 18);
        b[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3f));
        b[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3f));
        b[3] = (unsigned char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    put(s, b, n);
}

/* Bytes of the well-formed UTF-8 sequence at p (RFC 3629: no overlong forms, no surrogates,
 * nothing past U+10FFFF), or 0. */
static size_t utf8_seq(const unsigned char *p, const unsigned char *end)
{
    unsigned char b = p[0], lo = 0x80, hi = 0xbf;
    size_t n;
    if (b < 0x80)
        return 1;
    if (b >= 0xc2 && b <= 0xdf) {
        n = 2;
    } else if (b >= 0xe0 && b <= 0xef) {
        n = 3;
        lo = b == 0xe0 ? 0xa0 : lo;
        hi = b == 0xed ? 0x9f : hi;
    } else if (b >= 0xf0 && b <= 0xf4) {
        n = 4;
        lo = b == 0xf0 ? 0x90 : lo;
        hi = b == 0xf4 ? 0x8f : hi;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

static int hex4(struct jcur *c, unsigned *out)
{
    if (c->end - c->p < 4)
        return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char ch = *c->p++;
        v <<= 4;
        if (ch >= '0' && ch <= '9')
            v |= (unsigned)(ch - '0');
        else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
            v |= (unsigned)((ch | 0x20) - 'a' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* \uXXXX, with c->p past the "\u": a surrogate must come as a pair. */
static int json_u(struct jcur *c, struct jstr *s)
{
    unsigned cp, lo;
    if (hex4(c, &cp) < 0 || (cp >= 0xdc00 && cp <= 0xdfff))
        return -1;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        if (c->end - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u')
            return -1;
        c->p += 2;
        if (hex4(c, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff)
            return -1;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    }
    put_utf8(s, cp);
    return 0;
}

static int json_escape(struct jcur *c, struct jstr *s)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    if (c->end - c->p < 2)
        return -1;
    char e = c->p[1];
    c->p += 2;
    if (e == 'u')
        return json_u(c, s);
    const char *hit = e ? strchr(from, e) : NULL;
    if (!hit)
        return -1;
    put(s, &to[hit - from], 1);
    return 0;
}

/* A string, c->p on its opening quote; decoded into s. */
static int json_string(struct jcur *c, struct jstr *s)
{
    if (!at(c, '"'))
        return -1;
    c->p++;
    while (c->p < c->end) {
        unsigned char ch = (unsigned char)*c->p;
        if (ch == '"') {
            c->p++;
            return 0;
        }
        if (ch < 0x20)
            return -1;
        if (ch == '\\') {
            if (json_escape(c, s) < 0)
                return -1;
            continue;
        }
        size_t n = utf8_seq((const unsigned char *)c->p, (const unsigned char *)c->end);
        if (!n)
            return -1;
        put(s, c->p, n);
        c->p += n;
    }
    return -1;
}

static size_t digits(struct jcur *c)
{
    const char *start = c->p;
    while (c->p < c->end && *c->p >= '0' && *c->p <= '9')
        c->p++;
    return (size_t)(c->p - start);
}

/*
 * A number (RFC 8259 section 6 grammar); *out (if not NULL) its value, NAN when it is written
 * with more than 63 characters (no claim we read needs that many: it is refused).
 */
static int json_number(struct jcur *c, double *out)
{
    const char *start = c->p;
    if (at(c, '-'))
        c->p++;
    if (at(c, '0'))
        c->p++;
    else if (!digits(c))
        return -1;
    if (at(c, '.')) {
        c->p++;
        if (!digits(c))
            return -1;
    }
    if (at(c, 'e') || at(c, 'E')) {
        c->p++;
        if (at(c, '+') || at(c, '-'))
            c->p++;
        if (!digits(c))
            return -1;
    }
    if (out) {
        /* strtod reads the C locale's numbers, which is all JSON has: coil sets no locale */
        char buf[64];
        size_t n = (size_t)(c->p - start);
        *out = NAN;
        if (n < sizeof(buf)) {
            memcpy(buf, start, n);
            buf[n] = 0;
            char *end;
            double v = strtod(buf, &end);
            if (end == buf + n)
                *out = v;
        }
    }
    return 0;
}

static int json_literal(struct jcur *c, const char *word)
{
    size_t n = strlen(word);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return -1;
    c->p += n;
    return 0;
}

/* An object, c->p on its '{': fn (or json_value when NULL) takes each member's value. */
static int json_object(struct jcur *c, member_fn fn, void *ud)
{
    if (++c->depth > JSON_DEPTH)
        return -1;
    c->p++;
    if (!eat(c, '}')) {
        do {
            char nb[8]; /* the longest name we look for is 4 bytes */
            struct jstr name = {nb, sizeof(nb), 0};
            skip_ws(c);
            if (json_string(c, &name) < 0 || !eat(c, ':'))
                return -1;
            skip_ws(c);
            if ((fn ? fn(c, &name, ud) : json_value(c)) < 0)
                return -1;
        } while (eat(c, ','));
        if (!eat(c, '}'))
            return -1;
    }
    c->depth--;
    return 0;
}

/* An array, c->p on its '[': fn (or json_value when NULL) takes each element. */
static int json_array(struct jcur *c, element_fn fn, void *ud)
{
    if (++c->depth > JSON_DEPTH)
        return -1;
    c->p++;
    if (!eat(c, ']')) {
        do {
            skip_ws(c);
            if ((fn ? fn(c, ud) : json_value(c)) < 0)
                return -1;
        } while (eat(c, ','));
        if (!eat(c, ']'))
            return -1;
    }
    c->depth--;
    return 0;
}

/* Any value, validated and skipped. */
static int json_value(struct jcur *c)
{
    skip_ws(c);
    if (c->p >= c->end)
        return -1;
    switch (*c->p) {
    case '"':
        return json_string(c, &(struct jstr){0});
    case '{':
        return json_object(c, NULL, NULL);
    case '[':
        return json_array(c, NULL, NULL);
    case 't':
        return json_literal(c, "true");
    case 'f':
        return json_literal(c, "false");
    case 'n':
        return json_literal(c, "null");
    default:
        return json_number(c, NULL);
    }
}

/* A whole document that must be one object, fn seeing its members. */
static int json_document(const char *json, size_t len, member_fn fn, void *ud)
{
    struct jcur c = {json, json + len, 0};
    skip_ws(&c);
    if (!at(&c, '{') || json_object(&c, fn, ud) < 0)
        return -1;
    skip_ws(&c);
    return c.p == c.end ? 0 : -1;
}

static bool name_is(const struct jstr *name, const char *lit)
{
    size_t n = strlen(lit);
    return name->len == n && n <= name->cap && memcmp(name->buf, lit, n) == 0;
}

/* ---- the header and the claims ---------------------------------------------------------- */

enum { H_ALG = 1, H_TYP = 2, H_CRIT = 4 };
struct header {
    unsigned seen; /* H_* */
    unsigned alg;  /* a COIL__JWT_* alg, 0 for any other */
    bool typ_ok;
};

static int header_member(struct jcur *c, const struct jstr *name, void *ud)
{
    struct header *h = ud;
    unsigned bit = name_is(name, "alg")    ? H_ALG
                   : name_is(name, "typ")  ? H_TYP
                   : name_is(name, "crit") ? H_CRIT
                                           : 0;
    if (h->seen & bit)
        return -1;
    h->seen |= bit;
    if (bit != H_ALG && bit != H_TYP)
        return json_value(c);
    char vb[8];
    struct jstr v = {vb, sizeof(vb), 0};
    if (json_string(c, &v) < 0)
        return -1;
    if (bit == H_TYP) {
        h->typ_ok = v.len == 3 && strncasecmp(vb, "JWT", 3) == 0;
        return 0;
    }
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
        if (name_is(&v, algs[i].name)) /* case matters: RFC 7515 4.1.1 */
            h->alg = algs[i].alg;
    return 0;
}

int coil__jwt_header(const char *json, size_t len, unsigned *alg)
{
    struct header h = {0};
    if (json_document(json, len, header_member, &h) < 0 || !(h.seen & H_ALG))
        return COIL__JWT_HEADER;
    if (h.seen & H_CRIT) /* RFC 7515 4.1.11: extensions we do not know must be refused */
        return COIL__JWT_CRIT;
    if ((h.seen & H_TYP) && !h.typ_ok)
        return COIL__JWT_TYP;
    *alg = h.alg;
    return COIL__JWT_OK;
}

enum { C_EXP = 1, C_NBF = 2, C_ISS = 4, C_AUD = 8 };
struct claims {
    const struct coil__jwt_check *want;
    unsigned seen; /* C_* */
    double exp, nbf;
    bool iss_ok, aud_ok; /* equal to the configured one */
};

/* A string value, *match set when it equals want (not NULL). */
static int string_matching(struct jcur *c, const char *want, bool *match)
{
    char buf[COIL__JWT_CLAIM_MAX];
    struct jstr v = {buf, sizeof(buf), 0};
    if (json_string(c, &v) < 0)
        return -1;
    if (want && v.len == strlen(want) && v.len <= v.cap && memcmp(buf, want, v.len) == 0)
        *match = true;
    return 0;
}

static int aud_element(struct jcur *c, void *ud)
{
    struct claims *cl = ud;
    return string_matching(c, cl->want->audience, &cl->aud_ok);
}

static int claim_member(struct jcur *c, const struct jstr *name, void *ud)
{
    struct claims *cl = ud;
    unsigned bit = name_is(name, "exp")   ? C_EXP
                   : name_is(name, "nbf") ? C_NBF
                   : name_is(name, "iss") ? C_ISS
                   : name_is(name, "aud") ? C_AUD
                                          : 0;
    if (cl->seen & bit)
        return -1;
    cl->seen |= bit;
    switch (bit) {
    case C_EXP:
    case C_NBF: {
        double *v = bit == C_EXP ? &cl->exp : &cl->nbf;
        return json_number(c, v) < 0 || !isfinite(*v) ? -1 : 0;
    }
    case C_ISS:
        return string_matching(c, cl->want->issuer, &cl->iss_ok);
    case C_AUD: /* RFC 7519 4.1.3: one string, or an array of them */
        if (at(c, '['))
            return json_array(c, aud_element, cl);
        return string_matching(c, cl->want->audience, &cl->aud_ok);
    default:
        return json_value(c);
    }
}

int coil__jwt_claims(const struct coil__jwt_check *w, const char *json, size_t len, int64_t now)
{
    struct claims cl = {.want = w};
    if (json_document(json, len, claim_member, &cl) < 0)
        return COIL__JWT_CLAIMS;
    double t = (double)now, leeway = w->leeway_s;
    if ((cl.seen & C_EXP) && !(cl.exp > t - leeway)) /* valid while now < exp (+ leeway) */
        return COIL__JWT_EXPIRED;
    if ((cl.seen & C_NBF) && !(cl.nbf <= t + leeway))
        return COIL__JWT_EARLY;
    if (w->issuer && !cl.iss_ok)
        return COIL__JWT_ISSUER;
    if (w->audience && !cl.aud_ok)
        return COIL__JWT_AUDIENCE;
    return COIL__JWT_OK;
}

/* ---- signatures ------------------------------------------------------------------------- */

/* A DER INTEGER of a 32-byte unsigned big-endian value: minimal, with a 0 byte ahead of a set
 * top bit (X.690 8.3). At most 35 bytes. */
static size_t der_uint(unsigned char *out, const unsigned char *v)
{
    size_t skip = 0;
    while (skip < 31 && v[skip] == 0)
        skip++;
    size_t n = 32 - skip, pad = v[skip] >> 7;
    out[0] = 0x02;
    out[1] = (unsigned char)(n + pad);
    out[2] = 0;
    memcpy(out + 2 + pad, v + skip, n);
    return 2 + pad + n;
}

/* JWS's ES256 signature (RFC 7518 3.4: r and s, 32 bytes each) as the DER ECDSA-Sig-Value
 * OpenSSL verifies. der holds 72 bytes; its length fits one byte, so no long form. */
static size_t es256_der(const unsigned char *rs, unsigned char *der)
{
    size_t n = der_uint(der + 2, rs);
    n += der_uint(der + 2 + n, rs + 32);
    der[0] = 0x30;
    der[1] = (unsigned char)n;
    return n + 2;
}

static int verify_hs256(const struct coil__jwt_key *k, const char *in, size_t n,
                        const unsigned char *sig, size_t slen)
{
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                           OSSL_PARAM_construct_end()};
    unsigned char mac[SHA256_LEN];
    size_t mlen = 0;
    EVP_MAC_CTX *ctx = EVP_MAC_CTX_new(k->hmac);
    bool ok = ctx && EVP_MAC_init(ctx, k->secret, k->secret_len, params) == 1 &&
              EVP_MAC_update(ctx, (const unsigned char *)in, n) == 1 &&
              EVP_MAC_final(ctx, mac, &mlen, sizeof(mac)) == 1 && mlen == sizeof(mac);
    EVP_MAC_CTX_free(ctx);
    if (!ok) {
        ERR_clear_error();
        return -ENOMEM;
    }
    /* CRYPTO_memcmp: how much of a forged MAC is right must not show in the time taken */
    if (slen != sizeof(mac) || CRYPTO_memcmp(mac, sig, sizeof(mac)) != 0)
        return COIL__JWT_SIGNATURE;
    return COIL__JWT_OK;
}

static int verify_pkey(const struct coil__jwt_key *k, const char *in, size_t n,
                       const unsigned char *sig, size_t slen)
{
    unsigned char der[72];
    if (k->alg == COIL__JWT_ES256) {
        if (slen != 64)
            return COIL__JWT_SIGNATURE;
        slen = es256_der(sig, der);
        sig = der;
    } else if (slen != (size_t)EVP_PKEY_get_size(k->pkey)) { /* RFC 8017 8.2.2 step 1 */
        return COIL__JWT_SIGNATURE;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx)
        return -ENOMEM;
    int r = -ENOMEM;
    if (EVP_DigestVerifyInit(ctx, NULL, k->sha256, NULL, k->pkey) == 1)
        r = EVP_DigestVerify(ctx, sig, slen, (const unsigned char *)in, n) == 1
                ? COIL__JWT_OK
                : COIL__JWT_SIGNATURE;
    EVP_MD_CTX_free(ctx);
    if (r != COIL__JWT_OK)
        ERR_clear_error(); /* this thread's OpenSSL error queue: nothing there is ours to report */
    return r;
}

int coil__jwt_verify(const struct coil__jwt_key *k, const struct coil__jwt_check *c,
                     const char *tok, size_t len, int64_t now, char *scratch,
                     struct coil_str *claims)
{
    if (len > COIL__JWT_MAX)
        return COIL__JWT_TOO_LONG;
    const char *end = tok + len;
    const char *d1 = memchr(tok, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
    if (!d2 || memchr(d2 + 1, '.', (size_t)(end - d2 - 1)))
        return COIL__JWT_MALFORMED;
    /* Decoded, the three parts fit in len bytes: header, then signature, then payload. */
    unsigned char *hdr = (unsigned char *)scratch, *sig, *payload;
    size_t hn, sn, pn;
    unsigned alg;
    if (coil__b64url_decode(tok, (size_t)(d1 - tok), hdr, &hn) < 0)
        return COIL__JWT_MALFORMED;
    int r = coil__jwt_header((const char *)hdr, hn, &alg);
    if (r != COIL__JWT_OK)
        return r;
    if (alg != k->alg)
        return COIL__JWT_ALG;
    sig = hdr + hn;
    if (coil__b64url_decode(d2 + 1, (size_t)(end - d2 - 1), sig, &sn) < 0)
        return COIL__JWT_MALFORMED;
    size_t signed_len = (size_t)(d2 - tok);
    r = k->alg == COIL__JWT_HS256 ? verify_hs256(k, tok, signed_len, sig, sn)
                                  : verify_pkey(k, tok, signed_len, sig, sn);
    if (r != COIL__JWT_OK)
        return r;
    payload = sig + sn;
    if (coil__b64url_decode(d1 + 1, (size_t)(d2 - d1 - 1), payload, &pn) < 0)
        return COIL__JWT_MALFORMED;
    r = coil__jwt_claims(c, (const char *)payload, pn, now);
    if (r != COIL__JWT_OK)
        return r;
    *claims = (struct coil_str){(const char *)payload, pn};
    return COIL__JWT_OK;
}

/* ---- keys ------------------------------------------------------------------------------- */

static const char *alg_name(unsigned alg)
{
    for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
        if (algs[i].alg == alg)
            return algs[i].name;
    return "?";
}

const char *coil__jwt_key_alg(const struct coil__jwt_key *k)
{
    return alg_name(k->alg);
}

static bool looks_pem(const char *s, size_t len)
{
    static const char begin[] = "-----BEGIN ";
    while (len && (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r')) {
        s++;
        len--;
    }
    return len >= sizeof(begin) - 1 && memcmp(s, begin, sizeof(begin) - 1) == 0;
}

static int load_pem(struct coil__jwt_key *k, const char *s, size_t len, char *err, size_t errlen)
{
    if (memmem(s, len, "PRIVATE KEY-----", 16)) {
        snprintf(err, errlen, "holds a private key: give the public key (openssl pkey -pubout)");
        return -EINVAL;
    }
    BIO *bio = len <= INT32_MAX ? BIO_new_mem_buf(s, (int)len) : NULL;
    if (bio)
        k->pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!k->pkey) {
        ERR_clear_error();
        snprintf(err, errlen, "not a PEM public key (-----BEGIN PUBLIC KEY-----)");
        return -EINVAL;
    }
    if (EVP_PKEY_is_a(k->pkey, "RSA")) {
        int bits = EVP_PKEY_get_bits(k->pkey);
        if (bits < RSA_MIN_BITS) {
            snprintf(err, errlen, "an RSA key of %d bits: RS256 needs %d or more", bits,
                     RSA_MIN_BITS);
            return -EINVAL;
        }
        k->alg = COIL__JWT_RS256;
    } else if (EVP_PKEY_is_a(k->pkey, "EC")) {
        char group[64];
        size_t glen;
        if (EVP_PKEY_get_group_name(k->pkey, group, sizeof(group), &glen) != 1 ||
            strcmp(group, "prime256v1") != 0) {
            ERR_clear_error();
            snprintf(err, errlen, "an EC key not on P-256: ES256 needs P-256 (prime256v1)");
            return -EINVAL;
        }
        k->alg = COIL__JWT_ES256;
    } else {
        snprintf(err, errlen, "a %s key: RS256 needs RSA, ES256 EC P-256",
                 EVP_PKEY_get0_type_name(k->pkey));
        return -EINVAL;
    }
    k->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    return k->sha256 ? 0 : -ENOMEM;
}

static int load_secret(struct coil__jwt_key *k, const char *s, size_t len, char *err, size_t errlen)
{
    /* One trailing newline is the editor's or echo's, not the secret's */
    if (len && s[len - 1] == '\n')
        len -= len >= 2 && s[len - 2] == '\r' ? 2 : 1;
    if (len < HS256_MIN) {
        snprintf(err, errlen, "an HS256 secret of %zu bytes: at least %d are needed", len,
                 HS256_MIN);
        return -EINVAL;
    }
    k->secret = malloc(len);
    k->hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    if (!k->secret || !k->hmac)
        return -ENOMEM;
    memcpy(k->secret, s, len);
    k->secret_len = len;
    k->alg = COIL__JWT_HS256;
    return 0;
}

/* Every alg of the list must be the key's: a key verifies one algorithm. */
static int check_algs(const struct coil__jwt_key *k, const char *list, char *err, size_t errlen)
{
    for (const char *p = list; p && *p;) {
        size_t n = strcspn(p, ",");
        const char *a = p;
        p += n + (p[n] == ',');
        while (n && (*a == ' ' || *a == '\t')) {
            a++;
            n--;
        }
        while (n && (a[n - 1] == ' ' || a[n - 1] == '\t'))
            n--;
        if (!n)
            continue;
        unsigned alg = 0;
        for (size_t i = 0; i < sizeof(algs) / sizeof(algs[0]); i++)
            if (n == strlen(algs[i].name) && strncasecmp(a, algs[i].name, n) == 0)
                alg = algs[i].alg;
        if (n == 4 && strncasecmp(a, "none", 4) == 0) {
            snprintf(err, errlen, "alg none is never allowed: tokens must be signed");
            return -EINVAL;
        }
        if (!alg) {
            snprintf(err, errlen, "alg '%.*s' is not one of HS256, RS256, ES256", (int)n, a);
            return -EINVAL;
        }
        if (alg != k->alg) {
            snprintf(err, errlen, "alg %s does not fit the key, which is for %s", alg_name(alg),
                     alg_name(k->alg));
            return -EINVAL;
        }
    }
    return 0;
}

int coil__jwt_key_make(const void *data, size_t len, const char *list, struct coil__jwt_key **out,
                       char *err, size_t errlen)
{
    struct coil__jwt_key *k = calloc(1, sizeof(*k));
    if (!k)
        return -ENOMEM;
    int r = looks_pem(data, len) ? load_pem(k, data, len, err, errlen)
                                 : load_secret(k, data, len, err, errlen);
    if (r == 0)
        r = check_algs(k, list, err, errlen);
    if (r < 0) {
        if (r == -ENOMEM)
            snprintf(err, errlen, "out of memory");
        coil__jwt_key_free(k);
        return r;
    }
    *out = k;
    return 0;
}

void coil__jwt_key_free(struct coil__jwt_key *k)
{
    if (!k)
        return;
    if (k->secret) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        free(k->secret);
    }
    EVP_MAC_free(k->hmac);
    EVP_MD_free(k->sha256);
    EVP_PKEY_free(k->pkey);
    free(k);
}
#endif /* COIL_HAVE_AUTH */
