/* SPDX-License-Identifier: MIT */
/*
 * mw_auth.c: the authentication middleware (coil_mw_auth and coil_jwt_claims, coil_mw.h) and its
 * engine options (--api-keys, --jwt-*, --auth-skip). A before step that lets a request through
 * when it carries a known API key or a valid JWT (jwt.c verifies those), and otherwise answers
 * 401 itself, the handler never running.
 *
 * Everything the step reads is made on the main thread by coil_mw_auth, key files included, and
 * is read-only afterwards, shared by every worker without locks: the API keys' SHA-256 digests
 * (their text is wiped once hashed), the JWT key, the paths that need no credential. It is
 * freed by a done hook once the workers have stopped. Per request, a verified JWT's claims are
 * copied nowhere: they stay where they were decoded, in the request arena, and are handed to
 * handlers through coil_req_set. Why a credential was refused is logged at debug level only;
 * the client learns nothing but that it was.
 */
#ifdef COIL_HAVE_AUTH
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>

#include "coil_mw.h"
#include "internal.h"
#include "jwt.h"

#define DIGEST_LEN 32                /* SHA-256 */
#define JWT_KEY_FILE_MAX (64 * 1024) /* a PEM public key or a secret is far smaller */
#define API_KEY_FILE_MAX (16u << 20) /* some hundred thousand keys */
#define CHALLENGE "Bearer realm=\"coil\""
#define UNAUTHORIZED "Unauthorized\n"
/* Probes need no credential; nor does the metrics path (coil__metrics_path), added to these. */
#define DEFAULT_SKIP "/healthz,/readyz"

struct auth {
    unsigned char (*digests)[DIGEST_LEN]; /* the API keys' SHA-256, nkeys of them */
    size_t nkeys;                         /* 0: no API keys */
    EVP_MD *sha256;                       /* fetched once, for the keys presented */
    struct coil__jwt_key *jwt;            /* NULL: no JWT */
    struct coil__jwt_check check;         /* its issuer and audience point to ours below */
    char *issuer, *audience;
    struct coil_str *skip; /* exact paths, into skip_text; nskip of them */
    size_t nskip;
    char *skip_text;
};

/* The key under which a request's verified claims (a struct coil_str) are kept: its address. */
static const char claims_key;

/* ---- credentials ------------------------------------------------------------------------ */

/* The token of "Bearer TOKEN" (the scheme without case, RFC 9110 11.1), or false for none or
 * another scheme: a Basic credential is not a bearer token that was refused. */
static bool bearer_token(struct coil_str h, struct coil_str *tok)
{
    if (h.len < 6 || strncasecmp(h.ptr, "Bearer", 6) != 0)
        return false;
    if (h.len > 6 && h.ptr[6] != ' ' && h.ptr[6] != '\t')
        return false;
    size_t i = 6;
    while (i < h.len && (h.ptr[i] == ' ' || h.ptr[i] == '\t'))
        i++;
    *tok = (struct coil_str){h.ptr + i, h.len - i};
    return true;
}

/*
 * 1 when key is one of the API keys, 0 when not (*why says so), -ENOMEM.
 *
 * The key presented is hashed, and its digest compared with every stored one, each with
 * CRYPTO_memcmp and none skipped after a match: the time taken depends on the number of keys
 * alone, never on how much of a stored key (or of its digest) a guess got right. A hash table or
 * a sorted array keyed by digest would be safe too (what its timing could tell is the position of
 * a guess's digest among the stored digests, which says nothing about any key's text), but the
 * full scan is the one whose constant time shows at a glance, and at some 20 ns a key it costs
 * less than the hashing below until a file holds thousands of keys.
 */
static int check_api_key(const struct auth *a, struct coil_str key, const char **why)
{
    if (!a->nkeys) {
        *why = a->jwt ? "not a JWT (no API keys are configured)" : "no API keys are configured";
        return 0;
    }
    unsigned char d[DIGEST_LEN];
    if (EVP_Digest(key.ptr, key.len, d, NULL, a->sha256, NULL) != 1) {
        ERR_clear_error();
        return -ENOMEM;
    }
    unsigned found = 0;
    for (size_t i = 0; i < a->nkeys; i++)
        found |= CRYPTO_memcmp(d, a->digests[i], DIGEST_LEN) == 0;
    if (!found)
        *why = "unknown API key";
    return (int)found;
}

/* As check_api_key, for a JWT; its claims are kept with the request when it is valid. */
static int check_jwt(const struct auth *a, struct coil_req *req, struct coil_str tok,
                     const char **why)
{
    if (tok.len > COIL__JWT_MAX) {
        *why = coil__jwt_reason(COIL__JWT_TOO_LONG);
        return 0;
    }
    char *scratch = coil_req_alloc(req, tok.len + 1);
    struct coil_str *claims = coil_req_alloc(req, sizeof(*claims));
    if (!scratch || !claims)
        return -ENOMEM;
    int r =
        coil__jwt_verify(a->jwt, &a->check, tok.ptr, tok.len, (int64_t)time(NULL), scratch, claims);
    if (r < 0)
        return r;
    if (r > 0) {
        *why = coil__jwt_reason(r);
        return 0;
    }
    return coil_req_set(req, &claims_key, claims) < 0 ? -ENOMEM : 1;
}

static size_t count_dots(struct coil_str s)
{
    size_t n = 0;
    for (const char *p = s.ptr; (p = memchr(p, '.', (size_t)(s.ptr + s.len - p))); p++)
        n++;
    return n;
}

/* A bearer token is a JWT if it has the shape of one (two dots) and JWTs are configured, else
 * an API key: so with both configured, an API key with two dots goes in X-API-Key. */
static int check_bearer(const struct auth *a, struct coil_req *req, struct coil_str tok,
                        const char **why)
{
    if (a->jwt && count_dots(tok) == 2)
        return check_jwt(a, req, tok, why);
    return check_api_key(a, tok, why);
}

static bool skipped(const struct auth *a, struct coil_str path)
{
    for (size_t i = 0; i < a->nskip; i++)
        if (a->skip[i].len == path.len && memcmp(a->skip[i].ptr, path.ptr, path.len) == 0)
            return true;
    return false;
}

/* 401 with the challenge of RFC 6750 section 3: error="invalid_token" only when a credential
 * was given, as a client that sent none has nothing to correct but that. */
static int refuse(struct coil_req *req, struct coil_res *res, bool given, const char *why)
{
    if (coil__debugging()) {
        struct coil_str m = coil_req_method(req), p = coil_req_path(req);
        struct coil_str peer = coil_req_peer(req);
        coil__debug("auth: %.*s %.*s from %.*s refused: %s", (int)m.len, m.ptr,
                    (int)(p.len < 200 ? p.len : 200), p.ptr, (int)peer.len, peer.ptr, why);
    }
    coil_res_status(res, 401);
    int r = coil_res_header(res, "WWW-Authenticate",
                            given ? CHALLENGE ", error=\"invalid_token\"" : CHALLENGE);
    if (r == 0)
        r = coil_res_header(res, "Content-Type", "text/plain");
    if (r == 0)
        r = coil_res_body_static(res, UNAUTHORIZED, sizeof(UNAUTHORIZED) - 1);
    return r < 0 ? r : COIL_MW_DONE;
}

/* The step: either credential will do (Authorization's bearer token, X-API-Key's key). */
static int auth_before(struct coil_req *req, struct coil_res *res, void *ud)
{
    const struct auth *a = ud;
    if (skipped(a, coil_req_path(req)))
        return COIL_MW_NEXT;
    struct coil_str tok, key = coil_req_header(req, "X-API-Key");
    bool bearer = bearer_token(coil_req_header(req, "Authorization"), &tok);
    const char *why = "no credential";
    int r = 0;
    if (bearer)
        r = check_bearer(a, req, tok, &why);
    if (r == 0 && key.ptr)
        r = check_api_key(a, key, &why);
    if (r < 0)
        return r;
    if (r > 0)
        return COIL_MW_NEXT;
    return refuse(req, res, bearer || key.ptr, why);
}

struct coil_str coil_jwt_claims(const struct coil_req *req)
{
    const struct coil_str *c = coil_req_get(req, &claims_key);
    return c ? *c : (struct coil_str){"", 0};
}

/* ---- making it (main thread) ------------------------------------------------------------ */

/* The whole file, at most max bytes: 0, -ENOENT or -EINVAL after saying why, or -ENOMEM. The
 * caller wipes and frees *out. */
static int read_file(const char *path, size_t max, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "coil: auth: cannot read %s: %s\n", path, strerror(errno));
        return -ENOENT;
    }
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    int err = ferror(f) ? errno : 0;
    fclose(f);
    if (!buf)
        return -ENOMEM;
    if (err || n > max) {
        if (err)
            fprintf(stderr, "coil: auth: cannot read %s: %s\n", path, strerror(err));
        else
            fprintf(stderr, "coil: auth: %s is larger than %zu bytes\n", path, max);
        OPENSSL_cleanse(buf, n);
        free(buf);
        return err ? -ENOENT : -EINVAL;
    }
    *out = buf;
    *len = n;
    return 0;
}

static bool blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

/* One key a line, trimmed; blank lines and '#' comments skipped; a key with a control character
 * could never arrive in a header, so it is refused rather than never matched. */
static int hash_keys(struct auth *a, const char *path, const char *text, size_t len)
{
    size_t lines = 1;
    for (const char *p = text; (p = memchr(p, '\n', (size_t)(text + len - p))); p++)
        lines++;
    a->digests = malloc(lines * DIGEST_LEN);
    if (!a->digests)
        return -ENOMEM;
    const char *p = text, *end = text + len;
    for (size_t line = 1; p < end; line++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p)), *e = nl ? nl : end, *s = p;
        p = nl ? nl + 1 : end;
        while (s < e && blank(*s))
            s++;
        while (e > s && blank(e[-1]))
            e--;
        if (s == e || *s == '#')
            continue;
        for (const char *c = s; c < e; c++)
            if ((unsigned char)*c < 0x20 || *c == 0x7f) {
                fprintf(stderr, "coil: auth: %s line %zu: a key with a control character\n", path,
                        line);
                return -EINVAL;
            }
        if (EVP_Digest(s, (size_t)(e - s), a->digests[a->nkeys], NULL, a->sha256, NULL) != 1)
            return -ENOMEM;
        a->nkeys++;
    }
    if (!a->nkeys) {
        fprintf(stderr, "coil: auth: %s holds no API key\n", path);
        return -EINVAL;
    }
    return 0;
}

static int load_api_keys(struct auth *a, const char *path)
{
    char *text;
    size_t len;
    int r = read_file(path, API_KEY_FILE_MAX, &text, &len);
    if (r < 0)
        return r;
    r = hash_keys(a, path, text, len);
    OPENSSL_cleanse(text, len); /* only the digests are kept */
    free(text);
    return r;
}

static int load_jwt_key(struct auth *a, const char *path, const char *algs)
{
    char *data, err[160];
    size_t len;
    int r = read_file(path, JWT_KEY_FILE_MAX, &data, &len);
    if (r < 0)
        return r;
    r = coil__jwt_key_make(data, len, algs, &a->jwt, err, sizeof(err));
    OPENSSL_cleanse(data, len); /* an HS256 secret: the key keeps its own copy */
    free(data);
    if (r == -EINVAL)
        fprintf(stderr, "coil: auth: %s: %s\n", path, err);
    return r;
}

/* The comma list of exact paths, each starting with '/'. */
static int parse_skip(struct auth *a, const char *list)
{
    a->skip_text = strdup(list);
    a->skip = calloc(strlen(list) / 2 + 1, sizeof(*a->skip)); /* "/," per path at least */
    if (!a->skip_text || !a->skip)
        return -ENOMEM;
    for (char *p = a->skip_text; *p;) {
        size_t n = strcspn(p, ",");
        char *s = p;
        p += n + (p[n] == ',');
        while (n && (*s == ' ' || *s == '\t')) {
            s++;
            n--;
        }
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (!n)
            continue;
        if (*s != '/') {
            fprintf(stderr, "coil: auth: skip path '%.*s' does not start with '/'\n", (int)n, s);
            return -EINVAL;
        }
        a->skip[a->nskip++] = (struct coil_str){s, n};
    }
    return 0;
}

static int copy_claim(const char *s, const char *what, char **out)
{
    if (!s)
        return 0;
    if (!*s || strlen(s) > COIL__JWT_CLAIM_MAX) {
        fprintf(stderr, "coil: auth: the %s must have 1 to %d bytes\n", what, COIL__JWT_CLAIM_MAX);
        return -EINVAL;
    }
    *out = strdup(s);
    return *out ? 0 : -ENOMEM;
}

static void auth_free(void *ud)
{
    struct auth *a = ud;
    free(a->digests);
    EVP_MD_free(a->sha256);
    coil__jwt_key_free(a->jwt);
    free(a->issuer);
    free(a->audience);
    free(a->skip);
    free(a->skip_text);
    free(a);
}

static int auth_build(struct auth *a, const struct coil_auth_opts *o)
{
    int r;
    if (!o->api_keys_path && !o->jwt_key_path) {
        fprintf(stderr, "coil: auth: neither API keys nor a JWT key were given\n");
        return -EINVAL;
    }
    if (!o->jwt_key_path && (o->jwt_algs || o->issuer || o->audience)) {
        fprintf(stderr, "coil: auth: a JWT alg, issuer or audience without a JWT key\n");
        return -EINVAL;
    }
    if ((r = copy_claim(o->issuer, "issuer", &a->issuer)) < 0 ||
        (r = copy_claim(o->audience, "audience", &a->audience)) < 0 ||
        (r = parse_skip(a, o->skip ? o->skip : "")) < 0)
        return r;
    a->check = (struct coil__jwt_check){a->issuer, a->audience, o->leeway_s};
    if (o->api_keys_path) {
        a->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (!a->sha256)
            return -ENOMEM;
        if ((r = load_api_keys(a, o->api_keys_path)) < 0)
            return r;
    }
    if (o->jwt_key_path && (r = load_jwt_key(a, o->jwt_key_path, o->jwt_algs)) < 0)
        return r;
    return 0;
}

int coil_mw_auth(struct coil_app *app, const struct coil_auth_opts *o, struct coil_mw *out)
{
    if (!app || !o || !out)
        return -EINVAL;
    struct auth *a = calloc(1, sizeof(*a));
    int r = a ? auth_build(a, o) : -ENOMEM;
    if (r == 0 && coil_app_on_run(app, NULL, auth_free, a) < 0)
        r = -ENOMEM;
    if (r < 0) {
        if (r == -ENOMEM)
            fprintf(stderr, "coil: auth: out of memory\n");
        if (a)
            auth_free(a);
        ERR_clear_error();
        return r;
    }
    if (a->nkeys)
        coil__log("auth: %zu API keys from %s", a->nkeys, o->api_keys_path);
    if (a->jwt)
        coil__log("auth: JWT %s with the key in %s", coil__jwt_key_alg(a->jwt), o->jwt_key_path);
    *out = (struct coil_mw){.name = "auth", .before = auth_before, .ud = a};
    return 0;
}

/* ---- the engine options ----------------------------------------------------------------- */

/* The options' values, set while coil_app_run parses them and used up by coil__auth_install,
 * both on the main thread. Static, like coil__app (one app runs per process): a run that stops
 * before install (a bad option elsewhere) exits with them still held here, not lost. */
static struct {
    char *api_keys, *jwt_key, *jwt_alg, *issuer, *audience, *skip;
    uint32_t leeway_s;
    bool leeway_set;
} flags;

static void flags_clear(void)
{
    free(flags.api_keys);
    free(flags.jwt_key);
    free(flags.jwt_alg);
    free(flags.issuer);
    free(flags.audience);
    free(flags.skip);
    memset(&flags, 0, sizeof(flags));
}

/* A string option: an empty value is refused, not taken as "off", so that a variable set to ""
 * by mistake cannot turn authentication off unnoticed. */
static int set_string(const char *v, void *ud)
{
    char **slot = ud;
    char *s = *v ? strdup(v) : NULL;
    if (!s)
        return -1;
    free(*slot);
    *slot = s;
    return 0;
}

static int set_leeway(const char *v, void *ud)
{
    (void)ud;
    uint64_t ms;
    if (coil__parse_duration_ms(v, &ms) < 0 || ms > 86400000) /* a day: more is no expiry */
        return -1;
    flags.leeway_s = (uint32_t)(ms / 1000);
    flags.leeway_set = true;
    return 0;
}

int coil__auth_setup(struct coil_app *app)
{
    int err = 0;
    flags_clear();
    err |= coil_app_option(app, "api-keys", "COIL_API_KEYS", "PATH",
                           "require an API key (Authorization: Bearer KEY or X-API-Key: KEY) "
                           "from this file, one a line ('#' comments)",
                           set_string, &flags.api_keys);
    err |= coil_app_option(app, "jwt-key", "COIL_JWT_KEY", "PATH",
                           "require a JWT (Authorization: Bearer) signed with this key: a PEM "
                           "public key (RS256, ES256) or an HS256 secret",
                           set_string, &flags.jwt_key);
    err |= coil_app_option(app, "jwt-alg", "COIL_JWT_ALG", "LIST",
                           "JWT algorithms allowed: HS256, RS256, ES256 [the key's]", set_string,
                           &flags.jwt_alg);
    err |= coil_app_option(app, "jwt-issuer", "COIL_JWT_ISSUER", "S",
                           "a JWT's iss must be S [not checked]", set_string, &flags.issuer);
    err |=
        coil_app_option(app, "jwt-audience", "COIL_JWT_AUDIENCE", "S",
                        "a JWT's aud must be or hold S [not checked]", set_string, &flags.audience);
    err |= coil_app_option(app, "jwt-leeway", "COIL_JWT_LEEWAY", "DUR",
                           "clock skew allowed on a JWT's exp and nbf [60s]", set_leeway, NULL);
    err |= coil_app_option(app, "auth-skip", "COIL_AUTH_SKIP", "LIST",
                           "paths that need no credential [" DEFAULT_SKIP " and the metrics path]",
                           set_string, &flags.skip);
    return err ? -1 : 0;
}

/* The first JWT option given without --jwt-key, or NULL. */
static const char *orphan_jwt_option(void)
{
    return flags.jwt_alg      ? "--jwt-alg"
           : flags.issuer     ? "--jwt-issuer"
           : flags.audience   ? "--jwt-audience"
           : flags.leeway_set ? "--jwt-leeway"
                              : NULL;
}

/* Makes the middleware the flags describe and adds it: 0, or -1 having said why. */
static int install(struct coil_app *app)
{
    /* metrics is installed first (coil_mw.h's order), so its path is settled */
    const char *mp = coil__metrics_path(app);
    char *skip = NULL;
    if (!flags.skip && asprintf(&skip, DEFAULT_SKIP "%s%s", mp ? "," : "", mp ? mp : "") < 0) {
        fprintf(stderr, "coil: auth: out of memory\n");
        return -1;
    }
    struct coil_auth_opts o = {
        .api_keys_path = flags.api_keys,
        .jwt_key_path = flags.jwt_key,
        .jwt_algs = flags.jwt_alg,
        .issuer = flags.issuer,
        .audience = flags.audience,
        .leeway_s = flags.leeway_set ? flags.leeway_s : 60,
        .skip = flags.skip ? flags.skip : skip,
    };
    struct coil_mw mw;
    int r = coil_mw_auth(app, &o, &mw);
    free(skip);
    if (r == 0 && coil__use_builtin(app, &mw) < 0) {
        fprintf(stderr, "coil: auth: out of memory\n");
        r = -1;
    }
    return r < 0 ? -1 : 0;
}

int coil__auth_install(struct coil_app *app)
{
    int r = 0;
    const char *orphan = flags.jwt_key ? NULL : orphan_jwt_option();
    if (orphan) {
        fprintf(stderr, "coil: %s needs --jwt-key\n", orphan);
        r = -1;
    } else if (flags.skip && !flags.api_keys && !flags.jwt_key) {
        fprintf(stderr, "coil: --auth-skip needs --api-keys or --jwt-key\n");
        r = -1;
    } else if (flags.api_keys || flags.jwt_key) {
        r = install(app);
    }
    flags_clear();
    return r;
}
#endif /* COIL_HAVE_AUTH */
