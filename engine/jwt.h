/* SPDX-License-Identifier: MIT */
/*
 * jwt.h: verification of JSON Web Tokens in JWS compact form (jwt.c), for the authentication
 * middleware (mw_auth.c) and its unit test. Engine-internal; built only with libcrypto 3
 * (COIL_HAVE_AUTH).
 *
 * A key (coil__jwt_key) is made once on the main thread and is then read-only: every worker
 * verifies with it at once, each call in a scratch buffer of the caller's, with no state kept
 * between calls. It is freed after the workers have stopped.
 */
#ifndef COIL_JWT_H
#define COIL_JWT_H

#include <stddef.h>
#include <stdint.h>

#include "coil.h"

/* The algorithms (RFC 7518 section 3.1), one per kind of key. */
enum coil__jwt_alg {
    COIL__JWT_HS256 = 1, /* HMAC SHA-256: a shared secret of at least 32 bytes */
    COIL__JWT_RS256 = 2, /* RSASSA-PKCS1-v1_5 SHA-256: an RSA public key, 2048 bits or more */
    COIL__JWT_ES256 = 3, /* ECDSA P-256 SHA-256: an EC public key on P-256 */
};

#define COIL__JWT_MAX 8192      /* bytes of a compact token, at most */
#define COIL__JWT_CLAIM_MAX 256 /* bytes of the issuer and audience we compare, at most */

/*
 * Why a token was refused (coil__jwt_verify's positive returns), for the debug log only: the
 * client is told nothing more than that its token is invalid.
 */
enum coil__jwt_result {
    COIL__JWT_OK = 0,
    COIL__JWT_MALFORMED, /* not three base64url parts (no padding, canonical) */
    COIL__JWT_TOO_LONG,  /* over COIL__JWT_MAX */
    COIL__JWT_HEADER,    /* the header is not a JSON object with a string "alg" */
    COIL__JWT_ALG,       /* alg is not the key's ("none", another one, an unknown one) */
    COIL__JWT_CRIT,      /* the header has "crit": no extension is understood here */
    COIL__JWT_TYP,       /* typ is there and is not "JWT" */
    COIL__JWT_SIGNATURE, /* the signature does not verify */
    COIL__JWT_CLAIMS,    /* the payload is not a JSON object, or exp, nbf, iss, aud mistyped */
    COIL__JWT_EXPIRED,   /* exp is past, leeway included */
    COIL__JWT_EARLY,     /* nbf is ahead, leeway included */
    COIL__JWT_ISSUER,    /* iss is missing or not the one configured */
    COIL__JWT_AUDIENCE,  /* aud is missing or does not hold the one configured */
};
const char *coil__jwt_reason(int result);

struct coil__jwt_key;

/*
 * Makes a key from a key file's contents: a PEM public key ("BEGIN PUBLIC KEY": RSA for RS256,
 * EC P-256 for ES256), else an HS256 secret (the bytes, one trailing newline removed, at least
 * 32 of them). algs is --jwt-alg's comma list (NULL or "": the key's own algorithm): each one
 * must be the key's, as a key verifies its own algorithm only. 0 and *out, -EINVAL with why in
 * err (a line, no trailing newline), or -ENOMEM. Main thread.
 */
int coil__jwt_key_make(const void *data, size_t len, const char *algs, struct coil__jwt_key **out,
                       char *err, size_t errlen);
void coil__jwt_key_free(struct coil__jwt_key *k);
const char *coil__jwt_key_alg(const struct coil__jwt_key *k); /* "RS256", ... */

/* The claims checked beyond the signature. The strings are the caller's. */
struct coil__jwt_check {
    const char *issuer;   /* iss must equal it; NULL: not checked */
    const char *audience; /* aud (a string or an array of them) must hold it; NULL: not checked */
    uint32_t leeway_s;    /* clock skew allowed on exp and nbf */
};

/*
 * Verifies the compact token tok[0..len) with k at now (seconds since the epoch): 0 with
 * *claims set to the payload's JSON text (in scratch), a positive COIL__JWT_* saying why it was
 * refused, or -ENOMEM when OpenSSL could not work. scratch must hold len bytes. Any thread.
 */
int coil__jwt_verify(const struct coil__jwt_key *k, const struct coil__jwt_check *c,
                     const char *tok, size_t len, int64_t now, char *scratch,
                     struct coil_str *claims);

/* The steps of coil__jwt_verify, for the unit test. */

/* RFC 4648 section 5 without padding; unused trailing bits must be zero, so every value has one
 * encoding. out holds len * 3 / 4 bytes. 0 and *outlen, or -EINVAL. */
int coil__b64url_decode(const char *in, size_t len, unsigned char *out, size_t *outlen);
/* A JOSE header: 0 and *alg (a COIL__JWT_* alg, or 0 for any other, "none" included), or
 * COIL__JWT_HEADER, _CRIT or _TYP. */
int coil__jwt_header(const char *json, size_t len, unsigned *alg);
/* A claims set: COIL__JWT_OK, _CLAIMS, _EXPIRED, _EARLY, _ISSUER or _AUDIENCE. */
int coil__jwt_claims(const struct coil__jwt_check *c, const char *json, size_t len, int64_t now);

#endif
