/* SPDX-License-Identifier: MIT */
/*
 * test_jwt: JWT verification (jwt.c) without a server. base64url's exact alphabet, padding and
 * non-canonical endings; the JOSE header (alg, typ, crit, escaped names, duplicates) and the
 * claims (exp and nbf as integers and floats at the leeway's edges, iss, aud as a string and an
 * array, mistyped claims); the strict JSON underneath (what RFC 8259 refuses, UTF-8, depth); key
 * files (secrets, RSA and EC public keys of the right and wrong kinds and sizes, private keys,
 * --jwt-alg lists); and whole tokens signed here with keys generated here, HS256, RS256 and
 * ES256, then tampered with part by part, including the key-confusion token (HS256 with the RSA
 * public key's PEM as the secret) and alg none. Exits 77 (skipped) without libcrypto 3.
 */
#include <stdio.h>

#ifndef COIL_HAVE_AUTH
int main(void)
{
    printf("test_jwt: built without libcrypto 3: skipped\n");
    return 77;
}
#else
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "jwt.h"

#include "check.h"

#define NOW INT64_C(1700000000)

/* ---- helpers ---------------------------------------------------------------------------- */

static char *b64url(const void *data, size_t len)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = data;
    char *out = malloc(len * 4 / 3 + 4), *o = out;
    CHECK(out);
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        uint32_t v = (uint32_t)p[i] << 16 | (uint32_t)p[i + 1] << 8 | p[i + 2];
        *o++ = abc[v >> 18];
        *o++ = abc[v >> 12 & 63];
        *o++ = abc[v >> 6 & 63];
        *o++ = abc[v & 63];
    }
    if (len - i == 1) {
        *o++ = abc[p[i] >> 2];
        *o++ = abc[(p[i] & 3) << 4];
    } else if (len - i == 2) {
        *o++ = abc[p[i] >> 2];
        *o++ = abc[(p[i] & 3) << 4 | p[i + 1] >> 4];
        *o++ = abc[(p[i + 1] & 15) << 2];
    }
    *o = 0;
    return out;
}

static char *join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + (c ? strlen(c) : 0) + 3;
    char *s = malloc(n);
    CHECK(s);
    snprintf(s, n, "%s.%s%s%s", a, b, c ? "." : "", c ? c : "");
    return s;
}

static EVP_PKEY *keygen(const char *type, const char *param)
{
    EVP_PKEY *k = !strcmp(type, "RSA")  ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)atoi(param))
                  : !strcmp(type, "EC") ? EVP_PKEY_Q_keygen(NULL, NULL, "EC", param)
                                        : EVP_PKEY_Q_keygen(NULL, NULL, type);
    CHECK(k);
    return k;
}

/* The key's public half, or the whole key, as PEM text (malloc'd, NUL-terminated). */
static char *pem_of(EVP_PKEY *k, bool private_key)
{
    BIO *b = BIO_new(BIO_s_mem());
    CHECK(b);
    CHECK(private_key ? PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL)
                      : PEM_write_bio_PUBKEY(b, k));
    char *data;
    long n = BIO_get_mem_data(b, &data);
    char *s = malloc((size_t)n + 1);
    CHECK(s);
    memcpy(s, data, (size_t)n);
    s[n] = 0;
    BIO_free(b);
    return s;
}

static struct coil__jwt_key *key_ok(const char *data, size_t len, const char *algs)
{
    struct coil__jwt_key *k = NULL;
    char err[160] = "";
    int r = coil__jwt_key_make(data, len, algs, &k, err, sizeof(err));
    if (r != 0)
        fprintf(stderr, "key refused: %s\n", err);
    CHECK(r == 0 && k);
    return k;
}

static void key_refused(const char *data, size_t len, const char *algs, const char *why)
{
    struct coil__jwt_key *k = NULL;
    char err[160] = "";
    CHECK(coil__jwt_key_make(data, len, algs, &k, err, sizeof(err)) == -EINVAL);
    CHECK(k == NULL);
    if (!strstr(err, why))
        fprintf(stderr, "expected '%s' in '%s'\n", why, err);
    CHECK(strstr(err, why));
}

/* The signature of data: HMAC with secret, or the private key's (ES256 as raw r||s). */
static size_t sign(EVP_PKEY *k, const char *secret, const char *data, unsigned char *sig)
{
    size_t n = 0;
    if (secret) {
        CHECK(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, secret, strlen(secret),
                        (const unsigned char *)data, strlen(data), sig, 64, &n));
        return n;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    unsigned char der[1024];
    n = sizeof(der);
    CHECK(ctx && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, k) == 1);
    CHECK(EVP_DigestSign(ctx, der, &n, (const unsigned char *)data, strlen(data)) == 1);
    EVP_MD_CTX_free(ctx);
    if (!EVP_PKEY_is_a(k, "EC")) {
        memcpy(sig, der, n);
        return n;
    }
    const unsigned char *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)n);
    CHECK(es);
    CHECK(BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32) == 32);
    CHECK(BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32) == 32);
    ECDSA_SIG_free(es);
    return 64;
}

/* A compact token of header and payload (JSON text), signed by k or with secret. */
static char *token(EVP_PKEY *k, const char *secret, const char *header, const char *payload)
{
    char *h = b64url(header, strlen(header)), *p = b64url(payload, strlen(payload));
    char *input = join(h, p, NULL);
    unsigned char sig[1024];
    char *s = b64url(sig, sign(k, secret, input, sig));
    char *t = join(h, p, s);
    free(h);
    free(p);
    free(input);
    free(s);
    return t;
}

/* coil__jwt_verify at NOW; *claims (if not NULL) a malloc'd copy of the claims when valid. */
static int verify(const struct coil__jwt_key *k, const struct coil__jwt_check *c, const char *tok,
                  char **claims)
{
    size_t len = strlen(tok);
    char *scratch = malloc(len + 1);
    CHECK(scratch);
    struct coil_str cl = {NULL, 0};
    int r = coil__jwt_verify(k, c, tok, len, NOW, scratch, &cl);
    if (r == 0 && claims)
        CHECK((*claims = strndup(cl.ptr, cl.len)));
    free(scratch);
    return r;
}

/* ---- base64url -------------------------------------------------------------------------- */

static int dec(const char *in, char *out, size_t *n)
{
    return coil__b64url_decode(in, strlen(in), (unsigned char *)out, n);
}

static void test_b64url(void)
{
    char out[64];
    size_t n = 99;
    CHECK(dec("", out, &n) == 0 && n == 0);
    CHECK(dec("Zg", out, &n) == 0 && n == 1 && !memcmp(out, "f", 1));
    CHECK(dec("Zm8", out, &n) == 0 && n == 2 && !memcmp(out, "fo", 2));
    CHECK(dec("Zm9v", out, &n) == 0 && n == 3 && !memcmp(out, "foo", 3));
    CHECK(dec("Zm9vYmFy", out, &n) == 0 && n == 6 && !memcmp(out, "foobar", 6));
    CHECK(dec("-_-_", out, &n) == 0 && n == 3 && !memcmp(out, "\xfb\xff\xbf", 3));
    CHECK(dec("Zg==", out, &n) == -EINVAL); /* padding */
    CHECK(dec("Zm8=", out, &n) == -EINVAL);
    CHECK(dec("+/+/", out, &n) == -EINVAL);  /* base64's alphabet, not base64url's */
    CHECK(dec("Zm9vY", out, &n) == -EINVAL); /* 6 bits left over */
    CHECK(dec("Zh", out, &n) == -EINVAL);    /* "f" with a padding bit set */
    CHECK(dec("Zm9=", out, &n) == -EINVAL);
    CHECK(dec("Zm 9v", out, &n) == -EINVAL);
    CHECK(coil__b64url_decode("Zm9v\0", 5, (unsigned char *)out, &n) == -EINVAL);
    /* every byte value round-trips */
    unsigned char all[256], back[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    for (size_t len = 0; len <= 256; len += 37) {
        char *e = b64url(all, len);
        CHECK(coil__b64url_decode(e, strlen(e), back, &n) == 0 && n == len);
        CHECK(!memcmp(all, back, len));
        free(e);
    }
}

/* ---- the header and the JSON underneath ------------------------------------------------- */

static int header(const char *json, unsigned *alg)
{
    return coil__jwt_header(json, strlen(json), alg);
}

static void test_header(void)
{
    unsigned alg = 99;
    CHECK(header("{\"alg\":\"HS256\",\"typ\":\"JWT\"}", &alg) == 0 && alg == COIL__JWT_HS256);
    CHECK(header(" {\"typ\":\"jwt\", \"alg\" : \"RS256\", \"kid\":\"k1\"} ", &alg) == 0 &&
          alg == COIL__JWT_RS256);
    CHECK(header("{\"alg\":\"ES256\"}", &alg) == 0 && alg == COIL__JWT_ES256);
    CHECK(header("{\"\\u0061lg\":\"ES256\"}", &alg) == 0 && alg == COIL__JWT_ES256);
    CHECK(header("{\"alg\":\"ES\\u0032\\u00356\"}", &alg) == 0 && alg == COIL__JWT_ES256);
    /* algorithms that are not ours: accepted here as 0, refused against any key */
    CHECK(header("{\"alg\":\"none\"}", &alg) == 0 && alg == 0);
    CHECK(header("{\"alg\":\"hs256\"}", &alg) == 0 && alg == 0); /* case matters */
    CHECK(header("{\"alg\":\"HS512\"}", &alg) == 0 && alg == 0);
    CHECK(header("{\"alg\":\"HS256 \"}", &alg) == 0 && alg == 0);
    CHECK(header("{\"alg\":\"HS256\\u0000\"}", &alg) == 0 && alg == 0);
    CHECK(header("{\"alg\":\"HS256HS256HS256\"}", &alg) == 0 && alg == 0);
    /* refused */
    CHECK(header("{\"typ\":\"JWT\"}", &alg) == COIL__JWT_HEADER);
    CHECK(header("{\"alg\":256}", &alg) == COIL__JWT_HEADER);
    CHECK(header("{\"alg\":null}", &alg) == COIL__JWT_HEADER);
    CHECK(header("{\"alg\":\"HS256\",\"alg\":\"HS256\"}", &alg) == COIL__JWT_HEADER);
    CHECK(header("{\"alg\":\"HS256\",\"\\u0061lg\":\"none\"}", &alg) == COIL__JWT_HEADER);
    CHECK(header("{\"alg\":\"HS256\",\"crit\":[\"exp\"]}", &alg) == COIL__JWT_CRIT);
    CHECK(header("{\"alg\":\"HS256\",\"cr\\u0069t\":[]}", &alg) == COIL__JWT_CRIT);
    CHECK(header("{\"alg\":\"HS256\",\"typ\":\"JOSE\"}", &alg) == COIL__JWT_TYP);
    CHECK(header("{\"alg\":\"HS256\",\"typ\":\"JWTX\"}", &alg) == COIL__JWT_TYP);
    CHECK(header("{\"alg\":\"HS256\",\"typ\":1}", &alg) == COIL__JWT_HEADER);
    CHECK(header("[\"alg\",\"HS256\"]", &alg) == COIL__JWT_HEADER);
    CHECK(header("", &alg) == COIL__JWT_HEADER);
}

/* A header with n arrays nested in it (static storage). */
static const char *nested(int n)
{
    static char s[256];
    int len = snprintf(s, sizeof(s), "{\"alg\":\"HS256\",\"d\":");
    for (int i = 0; i < n; i++)
        s[len++] = '[';
    for (int i = 0; i < n; i++)
        s[len++] = ']';
    s[len++] = '}';
    s[len] = 0;
    return s;
}

/* JSON the scanner must refuse, inside a header that is otherwise fine. */
static void test_json_strict(void)
{
    static const char *const bad[] = {
        "{\"alg\":\"HS256\",}",
        "{\"alg\":\"HS256\"",
        "{\"alg\":\"HS256\"}}",
        "{\"alg\":\"HS256\"} x",
        "{'alg':'HS256'}",
        "{alg:\"HS256\"}",
        "{\"alg\":\"HS256\",\"n\":01}",
        "{\"alg\":\"HS256\",\"n\":1.}",
        "{\"alg\":\"HS256\",\"n\":.5}",
        "{\"alg\":\"HS256\",\"n\":+1}",
        "{\"alg\":\"HS256\",\"n\":1e}",
        "{\"alg\":\"HS256\",\"n\":-}",
        "{\"alg\":\"HS256\",\"n\":NaN}",
        "{\"alg\":\"HS256\",\"n\":tru}",
        "{\"alg\":\"HS256\",\"n\":[1,]}",
        "{\"alg\":\"HS256\",\"n\":[1 2]}",
        "{\"alg\":\"HS256\",\"n\":\"a\tb\"}",    /* a raw control character */
        "{\"alg\":\"HS256\",\"n\":\"\\x41\"}",   /* no such escape */
        "{\"alg\":\"HS256\",\"n\":\"\\u12\"}",   /* short \u */
        "{\"alg\":\"HS256\",\"n\":\"\\ud800\"}", /* lone high surrogate */
        "{\"alg\":\"HS256\",\"n\":\"\\udc00\"}", /* lone low surrogate */
        "{\"alg\":\"HS256\",\"n\":\"\\ud800\\u0041\"}",
        "{\"alg\":\"HS256\",\"n\":\"\xc0\xaf\"}",         /* overlong '/' */
        "{\"alg\":\"HS256\",\"n\":\"\xe0\x80\xaf\"}",     /* overlong, 3 bytes */
        "{\"alg\":\"HS256\",\"n\":\"\xf0\x80\x80\xaf\"}", /* and 4 */
        "{\"alg\":\"HS256\",\"n\":\"\xed\xa0\x80\"}",     /* a surrogate in UTF-8 */
        "{\"alg\":\"HS256\",\"n\":\"\xf4\x90\x80\x80\"}", /* past U+10FFFF */
        "{\"alg\":\"HS256\",\"n\":\"\xe2\x82\"}",         /* cut short */
        "{\"alg\":\"HS256\",\"n\":\"\xff\"}",
        "{\"alg\":\"HS256\",\"n\":\"abc}",
        "{\"alg\":\"HS256\" \"n\":1}",
        "{\"alg\" \"HS256\"}",
    };
    unsigned alg;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (header(bad[i], &alg) != COIL__JWT_HEADER)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        CHECK(header(bad[i], &alg) == COIL__JWT_HEADER);
    }
    /* a NUL byte in the document, outside any string */
    CHECK(coil__jwt_header("{\"alg\":\"HS256\"}\0", 16, &alg) == COIL__JWT_HEADER);
    /* and what it must take */
    CHECK(
        header(
            "{\"alg\":\"HS256\",\"n\":[0,-0,1.5e+3,-2E-2,true,false,null,{},[],\"\"],"
            "\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00 \xc3\xa9 \xf0\x9f\x98\x80\"}",
            &alg) == 0 &&
        alg == COIL__JWT_HS256);
    /* depth: 32 levels of containers, the header's object included, and not 33 */
    CHECK(header(nested(31), &alg) == 0);
    CHECK(header(nested(32), &alg) == COIL__JWT_HEADER);
}

/* ---- claims ----------------------------------------------------------------------------- */

static int claims(const struct coil__jwt_check *c, const char *json)
{
    return coil__jwt_claims(c, json, strlen(json), NOW);
}

static void test_claims(void)
{
    struct coil__jwt_check none = {0}, lw = {.leeway_s = 60};
    CHECK(claims(&none, "{}") == 0);
    CHECK(claims(&none, "{\"sub\":\"u1\",\"iat\":1}") == 0); /* iat is not checked */
    /* exp: valid while now < exp (+ leeway) */
    CHECK(claims(&none, "{\"exp\":1700000001}") == 0);
    CHECK(claims(&none, "{\"exp\":1700000000}") == COIL__JWT_EXPIRED);
    CHECK(claims(&none, "{\"exp\":1700000000.5}") == 0);
    CHECK(claims(&none, "{\"exp\":1.7e9}") == COIL__JWT_EXPIRED);
    CHECK(claims(&none, "{\"exp\":17000000.01e2}") == 0);
    CHECK(claims(&lw, "{\"exp\":1699999941}") == 0);
    CHECK(claims(&lw, "{\"exp\":1699999940}") == COIL__JWT_EXPIRED);
    CHECK(claims(&lw, "{\"exp\":-1}") == COIL__JWT_EXPIRED);
    /* nbf: valid once nbf <= now (+ leeway) */
    CHECK(claims(&none, "{\"nbf\":1700000000}") == 0);
    CHECK(claims(&none, "{\"nbf\":1700000000.001}") == COIL__JWT_EARLY);
    CHECK(claims(&lw, "{\"nbf\":1700000060}") == 0);
    CHECK(claims(&lw, "{\"nbf\":1700000061}") == COIL__JWT_EARLY);
    CHECK(claims(&lw, "{\"nbf\":1699999000,\"exp\":1700001000}") == 0);
    /* mistyped or unreadable times */
    CHECK(claims(&none, "{\"exp\":\"1800000000\"}") == COIL__JWT_CLAIMS);
    CHECK(claims(&none, "{\"exp\":null}") == COIL__JWT_CLAIMS);
    CHECK(claims(&none, "{\"nbf\":[1]}") == COIL__JWT_CLAIMS);
    CHECK(claims(&none, "{\"exp\":1e400}") == COIL__JWT_CLAIMS);
    CHECK(claims(&none,
                 "{\"exp\":1800000000.00000000000000000000000000000000000000000000000000001}") ==
          COIL__JWT_CLAIMS);
    CHECK(claims(&none, "{\"exp\":1800000000,\"exp\":1}") == COIL__JWT_CLAIMS);
    CHECK(claims(&none, "{\"exp\":1,\"\\u0065xp\":1800000000}") == COIL__JWT_CLAIMS);
    CHECK(claims(&none, "[]") == COIL__JWT_CLAIMS);
    CHECK(claims(&none, "{\"exp\":1800000000") == COIL__JWT_CLAIMS);
    /* iss */
    struct coil__jwt_check iss = {.issuer = "https://idp.example/"};
    CHECK(claims(&iss, "{\"iss\":\"https://idp.example/\"}") == 0);
    CHECK(claims(&iss, "{\"iss\":\"https:\\/\\/idp.example\\/\"}") == 0);
    CHECK(claims(&iss, "{\"iss\":\"https://idp.example\"}") == COIL__JWT_ISSUER);
    CHECK(claims(&iss, "{\"iss\":\"https://idp.example/x\"}") == COIL__JWT_ISSUER);
    CHECK(claims(&iss, "{\"iss\":\"HTTPS://idp.example/\"}") == COIL__JWT_ISSUER);
    CHECK(claims(&iss, "{\"sub\":\"https://idp.example/\"}") == COIL__JWT_ISSUER);
    CHECK(claims(&iss, "{\"iss\":[\"https://idp.example/\"]}") == COIL__JWT_CLAIMS);
    CHECK(claims(&iss, "{\"iss\":\"https://idp.example/\",\"iss\":\"x\"}") == COIL__JWT_CLAIMS);
    CHECK(claims(&none, "{\"iss\":5}") == COIL__JWT_CLAIMS); /* typed even when not checked */
    /* aud */
    struct coil__jwt_check aud = {.audience = "api"};
    CHECK(claims(&aud, "{\"aud\":\"api\"}") == 0);
    CHECK(claims(&aud, "{\"aud\":[\"web\",\"api\"]}") == 0);
    CHECK(claims(&aud, "{\"aud\":[\"web\"]}") == COIL__JWT_AUDIENCE);
    CHECK(claims(&aud, "{\"aud\":[]}") == COIL__JWT_AUDIENCE);
    CHECK(claims(&aud, "{\"aud\":\"apix\"}") == COIL__JWT_AUDIENCE);
    CHECK(claims(&aud, "{\"aud\":\"ap\"}") == COIL__JWT_AUDIENCE);
    CHECK(claims(&aud, "{}") == COIL__JWT_AUDIENCE);
    CHECK(claims(&aud, "{\"aud\":[\"api\",1]}") == COIL__JWT_CLAIMS);
    CHECK(claims(&aud, "{\"aud\":{\"api\":1}}") == COIL__JWT_CLAIMS);
    CHECK(claims(&aud, "{\"aud\":[[\"api\"]]}") == COIL__JWT_CLAIMS);
    /* both, and the order of the checks: time first */
    struct coil__jwt_check both = {.issuer = "i", .audience = "a", .leeway_s = 0};
    CHECK(claims(&both, "{\"iss\":\"i\",\"aud\":\"a\",\"exp\":1800000000}") == 0);
    CHECK(claims(&both, "{\"iss\":\"x\",\"aud\":\"a\",\"exp\":1}") == COIL__JWT_EXPIRED);
    CHECK(claims(&both, "{\"iss\":\"x\",\"aud\":\"a\"}") == COIL__JWT_ISSUER);
    CHECK(claims(&both, "{\"iss\":\"i\",\"aud\":\"b\"}") == COIL__JWT_AUDIENCE);
    /* a claim longer than any issuer we compare */
    char longiss[600];
    snprintf(longiss, sizeof(longiss), "{\"iss\":\"%0300d\"}", 0);
    CHECK(claims(&both, longiss) == COIL__JWT_ISSUER);
}

/* ---- keys ------------------------------------------------------------------------------- */

static const char secret[] = "0123456789abcdef0123456789abcdef"; /* 32 bytes */

static void test_keys(EVP_PKEY *rsa, EVP_PKEY *ec)
{
    struct coil__jwt_key *k;
    k = key_ok(secret, 32, NULL);
    CHECK(!strcmp(coil__jwt_key_alg(k), "HS256"));
    coil__jwt_key_free(k);
    coil__jwt_key_free(key_ok(secret, 32, "HS256"));
    coil__jwt_key_free(key_ok(secret, 32, " hs256 ,HS256,"));
    key_refused(secret, 31, NULL, "at least 32");
    key_refused("0123456789abcdef0123456789abcde\n", 32, NULL, "31 bytes");
    key_refused("0123456789abcdef0123456789abcde\r\n", 33, NULL, "31 bytes");
    key_refused(secret, 32, "RS256", "does not fit the key");
    key_refused(secret, 32, "HS256,ES256", "does not fit the key");
    key_refused(secret, 32, "none", "never allowed");
    key_refused(secret, 32, "HS512", "not one of");

    char *pem = pem_of(rsa, false);
    k = key_ok(pem, strlen(pem), NULL);
    CHECK(!strcmp(coil__jwt_key_alg(k), "RS256"));
    coil__jwt_key_free(k);
    coil__jwt_key_free(key_ok(pem, strlen(pem), "RS256"));
    key_refused(pem, strlen(pem), "HS256", "does not fit the key");
    key_refused(pem, strlen(pem), "ES256", "does not fit the key");
    char *cut = strdup(pem);
    cut[strlen(cut) / 2] = 0;
    key_refused(cut, strlen(cut), NULL, "not a PEM public key");
    free(cut);
    free(pem);
    pem = pem_of(rsa, true);
    key_refused(pem, strlen(pem), NULL, "private key");
    free(pem);

    pem = pem_of(ec, false);
    k = key_ok(pem, strlen(pem), "ES256");
    CHECK(!strcmp(coil__jwt_key_alg(k), "ES256"));
    coil__jwt_key_free(k);
    key_refused(pem, strlen(pem), "RS256", "does not fit the key");
    free(pem);

    EVP_PKEY *small = keygen("RSA", "1024"), *p384 = keygen("EC", "P-384"),
             *ed = keygen("ED25519", NULL);
    pem = pem_of(small, false);
    key_refused(pem, strlen(pem), NULL, "1024 bits");
    free(pem);
    pem = pem_of(p384, false);
    key_refused(pem, strlen(pem), NULL, "not on P-256");
    free(pem);
    pem = pem_of(ed, false);
    key_refused(pem, strlen(pem), NULL, "ED25519 key");
    free(pem);
    EVP_PKEY_free(small);
    EVP_PKEY_free(p384);
    EVP_PKEY_free(ed);
    key_refused("-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n", 62, NULL,
                "not a PEM public key");
}

/* ---- whole tokens ----------------------------------------------------------------------- */

static const char hs_header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
static const char rs_header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\"}";
static const char es_header[] = "{\"alg\":\"ES256\"}";
static const char payload[] = "{\"sub\":\"alice\",\"iss\":\"idp\",\"aud\":[\"api\"],"
                              "\"exp\":1700000600,\"nbf\":1699999990,\"roles\":[\"admin\"]}";

/* tok with byte i changed to ch (a copy) */
static char *with(const char *tok, size_t i, char ch)
{
    char *t = strdup(tok);
    CHECK(t && i < strlen(t));
    t[i] = ch;
    return t;
}

static char flip(char ch)
{
    return ch == 'A' ? 'B' : 'A';
}

/* Everything that must be refused of a valid token tok for k. */
static void tamper(const struct coil__jwt_key *k, const struct coil__jwt_check *c, const char *tok)
{
    const char *d1 = strchr(tok, '.'), *d2 = strrchr(tok, '.');
    size_t len = strlen(tok), p = (size_t)(d1 - tok) + 3, s = (size_t)(d2 - tok) + 3;
    char *t;
    t = with(tok, p, flip(tok[p])); /* the payload */
    CHECK(verify(k, c, t, NULL) == COIL__JWT_SIGNATURE);
    free(t);
    t = with(tok, s, flip(tok[s])); /* the signature */
    CHECK(verify(k, c, t, NULL) == COIL__JWT_SIGNATURE);
    free(t);
    t = with(tok, len - 1, flip(tok[len - 1])); /* its last character */
    CHECK(verify(k, c, t, NULL) == COIL__JWT_SIGNATURE ||
          verify(k, c, t, NULL) == COIL__JWT_MALFORMED);
    free(t);
    /* whole groups of four characters (three bytes) of the signature only */
    t = strndup(tok, (size_t)(d2 - tok) + 1 + (len - (size_t)(d2 - tok) - 2) / 4 * 4);
    CHECK(verify(k, c, t, NULL) == COIL__JWT_SIGNATURE);
    free(t);
    t = strndup(tok, (size_t)(d2 - tok) + 1); /* no signature */
    CHECK(verify(k, c, t, NULL) == COIL__JWT_SIGNATURE);
    free(t);
    t = strndup(tok, (size_t)(d2 - tok)); /* two parts */
    CHECK(verify(k, c, t, NULL) == COIL__JWT_MALFORMED);
    free(t);
    t = join(tok, "", NULL); /* four parts */
    CHECK(verify(k, c, t, NULL) == COIL__JWT_MALFORMED);
    free(t);
    t = with(tok, s, '+'); /* base64, not base64url */
    CHECK(verify(k, c, t, NULL) == COIL__JWT_MALFORMED);
    free(t);
    t = malloc(len + 3);
    snprintf(t, len + 3, "%s==", tok); /* padding */
    CHECK(verify(k, c, t, NULL) == COIL__JWT_MALFORMED);
    free(t);
    t = with(tok, 1, '!'); /* the header */
    CHECK(verify(k, c, t, NULL) == COIL__JWT_MALFORMED);
    free(t);
}

static void test_tokens(EVP_PKEY *rsa, EVP_PKEY *ec)
{
    struct coil__jwt_check c = {.issuer = "idp", .audience = "api", .leeway_s = 60};
    char *cl;

    struct coil__jwt_key *hk = key_ok("0123456789abcdef0123456789abcdef\n", 33, NULL);
    char *t = token(NULL, secret, hs_header, payload);
    CHECK(verify(hk, &c, t, &cl) == 0);
    CHECK(!strcmp(cl, payload));
    free(cl);
    tamper(hk, &c, t);
    free(t);
    t = token(NULL, "0123456789abcdef0123456789abcdeX", hs_header, payload); /* another secret */
    CHECK(verify(hk, &c, t, NULL) == COIL__JWT_SIGNATURE);
    free(t);

    char *pem = pem_of(rsa, false);
    struct coil__jwt_key *rk = key_ok(pem, strlen(pem), NULL);
    t = token(rsa, NULL, rs_header, payload);
    CHECK(verify(rk, &c, t, &cl) == 0);
    CHECK(!strcmp(cl, payload));
    free(cl);
    tamper(rk, &c, t);
    CHECK(verify(hk, &c, t, NULL) == COIL__JWT_ALG); /* an RS256 token against a secret */
    free(t);
    /* key confusion: HS256 with the public key's PEM as the secret */
    t = token(NULL, pem, hs_header, payload);
    CHECK(verify(rk, &c, t, NULL) == COIL__JWT_ALG);
    free(t);
    /* alg none, with and without a signature */
    char *h = b64url("{\"alg\":\"none\"}", 14), *p = b64url(payload, strlen(payload));
    t = join(h, p, "");
    CHECK(verify(rk, &c, t, NULL) == COIL__JWT_ALG);
    CHECK(verify(hk, &c, t, NULL) == COIL__JWT_ALG);
    free(t);
    t = token(NULL, secret, "{\"alg\":\"none\"}", payload);
    CHECK(verify(hk, &c, t, NULL) == COIL__JWT_ALG);
    free(t);
    free(h);
    free(p);
    /* header checks come before the signature's */
    t = token(rsa, NULL, "{\"alg\":\"RS256\",\"crit\":[\"x\"],\"x\":1}", payload);
    CHECK(verify(rk, &c, t, NULL) == COIL__JWT_CRIT);
    free(t);
    t = token(rsa, NULL, "{\"alg\":\"RS256\",\"typ\":\"at+jwt\"}", payload);
    CHECK(verify(rk, &c, t, NULL) == COIL__JWT_TYP);
    free(t);
    /* claims, checked once signed */
    t = token(rsa, NULL, rs_header, "{\"iss\":\"idp\",\"aud\":\"api\",\"exp\":1699999900}");
    CHECK(verify(rk, &c, t, NULL) == COIL__JWT_EXPIRED);
    free(t);
    t = token(rsa, NULL, rs_header, "{\"iss\":\"idp\",\"aud\":\"api\",\"exp\":1699999950}");
    CHECK(verify(rk, &c, t, NULL) == 0); /* within the leeway */
    free(t);
    t = token(rsa, NULL, rs_header, "{\"iss\":\"idp\",\"aud\":\"api\",\"nbf\":1700000100}");
    CHECK(verify(rk, &c, t, NULL) == COIL__JWT_EARLY);
    free(t);
    t = token(rsa, NULL, rs_header, "{\"iss\":\"other\",\"aud\":\"api\"}");
    CHECK(verify(rk, &c, t, NULL) == COIL__JWT_ISSUER);
    free(t);
    t = token(rsa, NULL, rs_header, "{\"iss\":\"idp\",\"aud\":\"web\"}");
    CHECK(verify(rk, &c, t, NULL) == COIL__JWT_AUDIENCE);
    free(t);
    t = token(rsa, NULL, rs_header, "not json");
    CHECK(verify(rk, &c, t, NULL) == COIL__JWT_CLAIMS);
    free(t);

    free(pem);
    pem = pem_of(ec, false);
    struct coil__jwt_key *ek = key_ok(pem, strlen(pem), "ES256");
    /* many signatures, so r and s with and without their top bit set and leading zeros are
     * all converted to DER */
    for (int i = 0; i < 64; i++) {
        t = token(ec, NULL, es_header, payload);
        CHECK(verify(ek, &c, t, NULL) == 0);
        if (i == 0)
            tamper(ek, &c, t);
        free(t);
    }
    /* a signature in DER, as OpenSSL makes it, is not JWS's r||s */
    {
        char *hh = b64url(es_header, strlen(es_header)), *pp = b64url(payload, strlen(payload));
        char *in = join(hh, pp, NULL);
        unsigned char der[128];
        size_t n = sizeof(der);
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        CHECK(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, ec) == 1);
        CHECK(EVP_DigestSign(ctx, der, &n, (unsigned char *)in, strlen(in)) == 1);
        EVP_MD_CTX_free(ctx);
        char *ss = b64url(der, n);
        t = join(hh, pp, ss);
        CHECK(verify(ek, &c, t, NULL) == COIL__JWT_SIGNATURE);
        free(t);
        free(ss);
        free(in);
        free(hh);
        free(pp);
    }
    /* an all-zero r||s */
    {
        unsigned char zero[64] = {0};
        char *hh = b64url(es_header, strlen(es_header)), *pp = b64url(payload, strlen(payload));
        char *ss = b64url(zero, 64);
        t = join(hh, pp, ss);
        CHECK(verify(ek, &c, t, NULL) == COIL__JWT_SIGNATURE);
        free(t);
        free(ss);
        free(hh);
        free(pp);
    }
    CHECK(verify(ek, &c, "a.b.c", NULL) == COIL__JWT_MALFORMED);
    CHECK(verify(ek, &c, "..", NULL) == COIL__JWT_HEADER);
    CHECK(verify(ek, &c, "", NULL) == COIL__JWT_MALFORMED);
    CHECK(verify(ek, &c, "garbage", NULL) == COIL__JWT_MALFORMED);

    /* size: a token of COIL__JWT_MAX bytes is read, one more is not */
    char *big = malloc(COIL__JWT_MAX + 2);
    memset(big, 'A', COIL__JWT_MAX + 1);
    big[COIL__JWT_MAX + 1] = 0;
    big[10] = big[20] = '.';
    CHECK(verify(ek, &c, big, NULL) == COIL__JWT_TOO_LONG);
    big[COIL__JWT_MAX] = 0;
    CHECK(verify(ek, &c, big, NULL) == COIL__JWT_HEADER); /* read: "AAAAAAAAAA" is not JSON */
    free(big);

    free(pem);
    coil__jwt_key_free(hk);
    coil__jwt_key_free(rk);
    coil__jwt_key_free(ek);
}

static void test_reasons(void)
{
    for (int r = COIL__JWT_OK; r <= COIL__JWT_AUDIENCE; r++)
        CHECK(coil__jwt_reason(r) && strcmp(coil__jwt_reason(r), "internal error") != 0);
    CHECK(!strcmp(coil__jwt_reason(-ENOMEM), "internal error"));
    CHECK(!strcmp(coil__jwt_reason(COIL__JWT_AUDIENCE + 1), "internal error"));
}

int main(void)
{
    EVP_PKEY *rsa = keygen("RSA", "2048"), *ec = keygen("EC", "P-256");
    test_b64url();
    test_header();
    test_json_strict();
    test_claims();
    test_keys(rsa, ec);
    test_tokens(rsa, ec);
    test_reasons();
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    printf("test_jwt: ok\n");
    return 0;
}
#endif
