/* SPDX-License-Identifier: MIT */
/*
 * coil_mw.h: the built-in middleware (the chain itself is in coil.h: struct coil_mw,
 * coil_app_use, coil_route_use).
 *
 * Every coil program has these as engine options (flags and variables, in --help); an option
 * left unset leaves its middleware out. They are installed in this order, outermost first,
 * ahead of the application's own coil_app_use middleware: metrics, access log, request ID,
 * CORS, rate limit, authentication (API keys, JWT), compression. From C, fill the options
 * and add what coil_mw_* makes with coil_app_use (every request) or coil_route_use (one
 * route), before coil_app_run. Each returns 0, -EINVAL (bad options, logged), -ENOENT (a key
 * file that cannot be read), -ENOMEM, or -ENOTSUP when coil was built without the library
 * the middleware needs (libcrypto for auth; zlib and libbrotli for compression); what it made
 * lives until coil_app_run returns.
 * Options (engine ones included) are parsed in coil_app_run, so a program that wants a
 * middleware whatever its flags says so in C.
 */
#ifndef COIL_MW_H
#define COIL_MW_H

#include "coil.h"

#ifdef __cplusplus
extern "C" {
#endif

/* X-Request-ID on every response: coil_req_id (coil.h). --request-id on|off [on]. */
int coil_mw_request_id(struct coil_app *app, struct coil_mw *out);

/*
 * CORS (the Fetch standard's CORS protocol). A response to a request with an Origin the list
 * allows gets Access-Control-Allow-Origin (the origin itself), -Allow-Credentials and
 * -Expose-Headers when configured, replacing any the handler set; every response gets
 * Vary: Origin, merged into the response's own Vary lines as one. With the list "*" every
 * response (Origin or not) gets Access-Control-Allow-Origin: * and no Vary, being the same for
 * everyone; "*" with credentials is refused (-EINVAL): the Fetch standard forbids it, and
 * allowing any origin with credentials would let every site read what a user sees. The engine's
 * own answers (404, 405, a 401 or 429 from a later middleware) get the headers too, so the page
 * can read them. A preflight (OPTIONS with Origin and Access-Control-Request-Method) is answered
 * 204 by the middleware whatever the routes (a path with no OPTIONS route included), never by a
 * handler, with Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers: when
 * the origin, the method and every header asked for are allowed, with -Allow-Origin,
 * -Allow-Credentials, -Allow-Methods (the list), -Allow-Headers (what was asked, else the list)
 * and -Max-Age; else without any Access-Control-Allow-* header (the browser then blocks).
 * Origins: exact ("https://app.example.com"; scheme and host without case, the port exactly,
 * ":443" for https being no port), one leading wildcard label ("https://" then "*." then
 * "example.com" matches one or more labels in front of ".example.com", not the bare domain nor
 * "evil-example.com"), or "null", allowed only when listed. Methods compare exactly, header
 * names without case; "*" as methods or headers allows whatever a preflight asks (echoed).
 * Flags: --cors-origins LIST (enables it), --cors-methods LIST, --cors-headers LIST,
 * --cors-expose LIST, --cors-credentials on|off, --cors-max-age DUR (whole seconds).
 */
struct coil_cors_opts {
    const char *origins; /* comma-separated, or "*" alone (required) */
    const char *methods; /* [GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS]; "*": any */
    const char *headers; /* allowed request headers [Accept, Authorization, Content-Type,
                          * X-API-Key, X-Request-ID]; "*" allows whatever is asked */
    const char *expose;  /* Access-Control-Expose-Headers [none]; "*" only without
                          * credentials */
    bool credentials;    /* Access-Control-Allow-Credentials: true [false] */
    uint32_t max_age_s;  /* Access-Control-Max-Age [0: 600] */
};
int coil_mw_cors(struct coil_app *app, const struct coil_cors_opts *o, struct coil_mw *out);

/*
 * Rate limiting: a token bucket per key. A request takes one token; an empty bucket answers
 * 429 "Too Many Requests" with Retry-After (seconds until a token is back, at least 1), and
 * every request that passed or was refused carries RateLimit-Limit (burst),
 * RateLimit-Remaining (tokens left) and RateLimit-Reset (seconds until the bucket is full)
 * (draft-ietf-httpapi-ratelimit-headers). Across workers, each key belongs to one worker (a
 * hash of the key): the others ask it (coil_job_call) and carry on with coil_mw_next, so a
 * client whose connections land on every worker gets exactly rate and burst: in any span of T
 * seconds at most burst + rate * T requests pass, per process. Beyond that margin only what
 * the process cannot see: a restart starts every bucket full, and each process (or replica)
 * behind one address counts on its own. If the channel to the owner is full, the request gets
 * 503 with Retry-After: 1 rather than a local guess that could pass the limit.
 * Keys: the client address (an IPv6 one by its /64, which a single host usually holds), a
 * request header's value, or an API key (X-API-Key, else the Bearer token) kept only as a
 * keyed hash; without the header or credential, the address. Header and API-key values are
 * the client's to choose: a made-up key is a fresh bucket (authentication, which runs after,
 * refuses unknown API keys; to slow guessing, key by address). Idle keys (bucket full again)
 * are dropped; at max_keys live keys a worker answers requests with new keys 503 (logged) rather
 * than grow.
 * Flags: --rate-limit RATE[:BURST] (per second, decimal; enables it), --rate-limit-key
 * ip|header:NAME|apikey [ip].
 */
enum coil_ratelimit_key { COIL_RL_IP, COIL_RL_HEADER, COIL_RL_APIKEY };
struct coil_ratelimit_opts {
    double rate;                 /* tokens per second (required, > 0, at most 1e9) */
    uint32_t burst;              /* bucket size [0: rate rounded up] */
    enum coil_ratelimit_key key; /* [COIL_RL_IP] */
    const char *header;          /* COIL_RL_HEADER: its name (absent: the client address) */
    uint32_t max_keys;           /* per worker [0: 100000] */
};
int coil_mw_ratelimit(struct coil_app *app, const struct coil_ratelimit_opts *o,
                      struct coil_mw *out);

/*
 * Authentication: API keys and/or JWTs. A request passes with a known API key (in
 * "Authorization: Bearer KEY" or "X-API-Key: KEY") or a valid JWT ("Authorization: Bearer
 * JWT"), whichever are configured; else 401 with WWW-Authenticate (Bearer, and error="
 * invalid_token" when a credential was given but refused; another Authorization scheme counts
 * as none). With both configured, a bearer token with two dots is taken for a JWT, anything
 * else for an API key, and X-API-Key always holds an API key. Why a token was refused goes to
 * the log at debug level, never to the client. Paths in skip (exact, as sent, without the
 * query) pass without a credential.
 * API keys: one per line in a file (trimmed; blank lines and '#' comments ignored), kept only
 * as SHA-256 hashes, compared in constant time. A file with no key is refused.
 * JWT (compact JWS, at most 8 KiB): HS256 (the key file holds the secret, one trailing newline
 * removed, at least 32 bytes), RS256 (a PEM public key, RSA of 2048 bits or more) and ES256 (a
 * PEM public key on P-256); a key verifies its own alg only, so --jwt-alg may only name it
 * ("none" never). A header with "crit", or a "typ" other than "JWT", is refused. exp and nbf
 * (numbers) checked with leeway; iss and aud (a string or an array holding it) when configured,
 * and then required. The verified claims (the payload's JSON text, valid JSON) are readable by
 * handlers with coil_jwt_claims.
 * Key files are read by coil_mw_auth (-ENOENT when one cannot be read, -EINVAL when it holds no
 * usable key).
 * Flags: --api-keys PATH, --jwt-key PATH, --jwt-alg LIST [the key's], --jwt-issuer S,
 * --jwt-audience S, --jwt-leeway DUR [60s], --auth-skip LIST [/healthz,/readyz and the metrics
 * path].
 */
struct coil_auth_opts {
    const char *api_keys_path; /* NULL: no API keys */
    const char *jwt_key_path;  /* NULL: no JWT */
    const char *jwt_algs;      /* comma list of HS256, RS256, ES256 [what the key is for] */
    const char *issuer;        /* iss must equal it (at most 256 bytes) [not checked] */
    const char *audience;      /* aud must be or contain it (at most 256 bytes) [not checked] */
    uint32_t leeway_s;         /* seconds of clock skew allowed on exp and nbf (0: none; the
                                * flag's default is 60) */
    const char *skip;          /* comma list of exact paths [none] */
};
int coil_mw_auth(struct coil_app *app, const struct coil_auth_opts *o, struct coil_mw *out);
/* The verified JWT's claims as JSON text (valid as long as req); empty (length 0) if none. */
struct coil_str coil_jwt_claims(const struct coil_req *req);

/*
 * Compression of responses: br (libbrotli) or gzip (zlib), chosen from every Accept-Encoding
 * line (RFC 9110 §12.5.3): codings without case, x-gzip as gzip, q-values (q=0 refuses; an
 * element with a malformed weight counts as absent), "*" for the codings not listed; the
 * acceptable coding with the highest q wins, the list's order breaking ties (br first in the
 * default "br,gzip"), and identity only when the client ranks it higher. No Accept-Encoding, or
 * nothing acceptable: sent as it is. Vary: Accept-Encoding (merged into a Vary already there) goes
 * on every response it could have compressed, compressed or not. Left alone: bodies under
 * min_bytes, types not in the list (the Content-Type's media type against each prefix,
 * without case), responses with Content-Encoding or Content-Range, Cache-Control: no-transform,
 * HEAD, 1xx, 204, 206 and 304. A whole body is replaced only if it comes out smaller; a strong
 * ETag becomes weak (W/) on a compressed response. Streamed bodies are compressed as they go (a
 * filter, flushed per write, so Server-Sent Events are not held back), with smaller windows
 * (gzip 8 KB, br 64 KB at a quality of at most 5) and gzip preferred at equal q: each open stream
 * holds its encoder (about 55 KB for gzip, 0.3-0.8 MB for br).
 * The default levels are the best HttpArena json-comp score (rps x (min_bpr/bpr)^2) measured on
 * its /json/25, /40 and /50 bodies: br 2 (1276 bytes, 21 us on average) beat 3 (1229 bytes,
 * 27 us) and 5 (1129 bytes, 53 us) once the server's own ~20 us per request is counted.
 * Flags: --compress LIST (br,gzip; enables it; "off"), --compress-level-gzip N (1-9),
 * --compress-level-br N (0-11), --compress-min-bytes BYTES, --compress-types LIST.
 */
struct coil_compress_opts {
    const char *encodings; /* comma list of br and gzip, most preferred first [br,gzip] */
    int gzip_level;        /* 1-9 [3] */
    int br_level;          /* 1-11 [2] (0 takes the default here; the flag can ask for 0) */
    uint32_t min_bytes;    /* [256] (0 takes the default here; the flag can ask for 0) */
    const char *types;     /* comma list of media type prefixes [text/, application/json,
                            * application/javascript, application/xml, image/svg+xml,
                            * application/wasm] */
};
int coil_mw_compress(struct coil_app *app, const struct coil_compress_opts *o, struct coil_mw *out);

#ifdef __cplusplus
}
#endif
#endif /* COIL_MW_H */
