/* SPDX-License-Identifier: MIT */
/*
 * http_parse: the request-head parser and the chunked decoder declared in http_parse.h. The
 * head parser makes one forward pass over at most max_header_bytes bytes, classifying bytes
 * with compile-time tables (and SSE2 where available), and keeps no state between calls. Each
 * syntax error is reported at the byte that makes the prefix invalid, so the answer for a byte
 * sequence never depends on how it was split: a prefix of a buffer parses to 0 or to the same
 * result as the whole. Verdicts that need the whole head are taken only once the empty line is
 * read, in this order: Host count (400), Transfer-Encoding framing (400, then 501), body size
 * (413), expectation (417); a malformed head therefore always gets 400, never 413, 417 or 501.
 * "chunked" listed twice, or not last, or with parameters is 400 (the framing is ambiguous);
 * any other coding is 501. More than one Host is 400 on HTTP/1.0 as well (RFC 9112 3.2). Empty
 * lines before the request line are skipped (RFC 9112 2.2). Every slice points into the
 * caller's buffer, except the path of an absolute-form target without one, which is a static
 * "/". The chunked decoder is a byte-driven state machine whose only memory is struct
 * coil__chunked; it moves chunk data down over the framing, so out <= in always holds.
 */
#include "http_parse.h"

#include <assert.h>
#include <limits.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* ---- character classes -------------------------------------------------------------------- */

enum {
    CL_TOKEN = 1u << 0,  /* tchar (RFC 9110 5.6.2) */
    CL_TARGET = 1u << 1, /* request-target byte: 0x21-0x7E */
    CL_FIELD = 1u << 2,  /* field-value byte: HTAB, SP, 0x21-0x7E, obs-text 0x80-0xFF */
    CL_HOST = 1u << 3,   /* uri-host and port: unreserved, sub-delims, '%', ':', '[', ']' */
    CL_QDTEXT = 1u << 4, /* quoted-string text: field bytes but '"' and '\' */
    CL_OWS = 1u << 5,    /* SP or HTAB */
};

#define IS_DIGIT(c) ((c) >= '0' && (c) <= '9')
#define IS_ALPHA(c) (((c) >= 'A' && (c) <= 'Z') || ((c) >= 'a' && (c) <= 'z'))
#define IS_TCHAR(c)                                                                                \
    (IS_DIGIT(c) || IS_ALPHA(c) || (c) == '!' || (c) == '#' || (c) == '$' || (c) == '%' ||         \
     (c) == '&' || (c) == '\'' || (c) == '*' || (c) == '+' || (c) == '-' || (c) == '.' ||          \
     (c) == '^' || (c) == '_' || (c) == '`' || (c) == '|' || (c) == '~')
#define IS_HOSTC(c)                                                                                \
    (IS_DIGIT(c) || IS_ALPHA(c) || (c) == '-' || (c) == '.' || (c) == '_' || (c) == '~' ||         \
     (c) == '%' || (c) == '!' || (c) == '$' || (c) == '&' || (c) == '\'' || (c) == '(' ||          \
     (c) == ')' || (c) == '*' || (c) == '+' || (c) == ',' || (c) == ';' || (c) == '=' ||           \
     (c) == ':' || (c) == '[' || (c) == ']')
#define IS_FIELD(c) ((c) == '\t' || (c) == ' ' || ((c) >= 0x21 && (c) != 0x7F))
#define CLASS(c)                                                                                   \
    ((IS_TCHAR(c) ? CL_TOKEN : 0) | ((c) >= 0x21 && (c) <= 0x7E ? CL_TARGET : 0) |                 \
     (IS_FIELD(c) ? CL_FIELD : 0) | (IS_HOSTC(c) ? CL_HOST : 0) |                                  \
     (IS_FIELD(c) && (c) != '"' && (c) != '\\' ? CL_QDTEXT : 0) |                                  \
     ((c) == ' ' || (c) == '\t' ? CL_OWS : 0))
#define LOWER(c) ((c) >= 'A' && (c) <= 'Z' ? ((c) | 0x20) : (c))
#define HEXVAL(c)                                                                                  \
    (IS_DIGIT(c)                ? (c) - '0'                                                        \
     : (c) >= 'a' && (c) <= 'f' ? (c) - 'a' + 10                                                   \
     : (c) >= 'A' && (c) <= 'F' ? (c) - 'A' + 10                                                   \
                                : 0xFF)

#define ROW(F, r)                                                                                  \
    F((r) + 0x0), F((r) + 0x1), F((r) + 0x2), F((r) + 0x3), F((r) + 0x4), F((r) + 0x5),            \
        F((r) + 0x6), F((r) + 0x7), F((r) + 0x8), F((r) + 0x9), F((r) + 0xA), F((r) + 0xB),        \
        F((r) + 0xC), F((r) + 0xD), F((r) + 0xE), F((r) + 0xF)
#define TABLE(F)                                                                                   \
    {                                                                                              \
        ROW(F, 0x00), ROW(F, 0x10), ROW(F, 0x20), ROW(F, 0x30), ROW(F, 0x40), ROW(F, 0x50),        \
            ROW(F, 0x60), ROW(F, 0x70), ROW(F, 0x80), ROW(F, 0x90), ROW(F, 0xA0), ROW(F, 0xB0),    \
            ROW(F, 0xC0), ROW(F, 0xD0), ROW(F, 0xE0), ROW(F, 0xF0)                                 \
    }

static const uint8_t classes[256] = TABLE(CLASS);
static const uint8_t lower[256] = TABLE(LOWER);
static const uint8_t hexval[256] = TABLE(HEXVAL);

static inline bool is(char c, unsigned cl)
{
    return (classes[(uint8_t)c] & cl) != 0;
}

/* a[0..n) equals the lower-case ASCII lc[0..n), ignoring case. */
static inline bool same_lower(const char *a, const char *lc, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lower[(uint8_t)a[i]] != (uint8_t)lc[i])
            return false;
    return true;
}

static inline uint64_t load64(const char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

static inline uint32_t load32(const char *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

/*
 * same_lower for n >= 4 with word loads: setting bit 0x20 folds upper case onto lower case.
 * Exact only because lc holds just lower-case letters, digits and '-', and a holds bytes already
 * checked to be tchar or field-value bytes: the other bytes that fold onto those (0x0D, 0x10-0x19)
 * are control bytes, refused before any comparison.
 */
static inline bool same_folded(const char *a, const char *lc, size_t n)
{
    assert(n >= 4);
    if (n < 8)
        return (((load32(a) | 0x20202020u) ^ load32(lc)) |
                ((load32(a + n - 4) | 0x20202020u) ^ load32(lc + n - 4))) == 0;
    const uint64_t fold = 0x2020202020202020u;
    uint64_t diff = (load64(a + n - 8) | fold) ^ load64(lc + n - 8);
    for (size_t i = 0; i + 8 < n; i += 8)
        diff |= (load64(a + i) | fold) ^ load64(lc + i);
    return diff == 0;
}

bool coil__http_name_eq(struct coil_str s, const char *lc)
{
    assert(lc != NULL);
    for (size_t i = 0; i < s.len; i++)
        if (lc[i] == '\0' || lower[(uint8_t)s.ptr[i]] != (uint8_t)lc[i])
            return false;
    return lc[s.len] == '\0';
}

/* ---- scanners ----------------------------------------------------------------------------- */

/* The first byte of [p, end) that is not a field-value byte (so CR, LF, another CTL or DEL). */
static inline const char *skip_field(const char *p, const char *end)
{
#ifdef __SSE2__
    const __m128i ctl = _mm_set1_epi8(0x1F), tab = _mm_set1_epi8('\t');
    const __m128i del = _mm_set1_epi8(0x7F);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        __m128i low = _mm_cmpeq_epi8(_mm_min_epu8(v, ctl), v); /* v <= 0x1F, unsigned */
        __m128i bad = _mm_andnot_si128(_mm_cmpeq_epi8(v, tab), low);
        bad = _mm_or_si128(bad, _mm_cmpeq_epi8(v, del));
        unsigned m = (unsigned)_mm_movemask_epi8(bad);
        if (m != 0)
            return p + __builtin_ctz(m);
        p += 16;
    }
#endif
    while (p < end && is(*p, CL_FIELD))
        p++;
    return p;
}

/* The first byte of [p, end) that cannot be in a request-target (SP, CTL, DEL, non-ASCII). */
static inline const char *skip_target(const char *p, const char *end)
{
#ifdef __SSE2__
    const __m128i lo = _mm_set1_epi8(0x21), del = _mm_set1_epi8(0x7F);
    while (end - p >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
        /* signed compare: 0x80-0xFF are negative, so they test below 0x21 as well */
        __m128i bad = _mm_or_si128(_mm_cmplt_epi8(v, lo), _mm_cmpeq_epi8(v, del));
        unsigned m = (unsigned)_mm_movemask_epi8(bad);
        if (m != 0)
            return p + __builtin_ctz(m);
        p += 16;
    }
#endif
    while (p < end && is(*p, CL_TARGET))
        p++;
    return p;
}

static inline const char *skip_token(const char *p, const char *end)
{
    for (; end - p >= 4; p += 4) { /* unrolled: one bound check per four bytes */
        if (!is(p[0], CL_TOKEN))
            return p;
        if (!is(p[1], CL_TOKEN))
            return p + 1;
        if (!is(p[2], CL_TOKEN))
            return p + 2;
        if (!is(p[3], CL_TOKEN))
            return p + 3;
    }
    while (p < end && is(*p, CL_TOKEN))
        p++;
    return p;
}

static inline const char *skip_ows(const char *p, const char *end)
{
    while (p < end && is(*p, CL_OWS))
        p++;
    return p;
}

static inline struct coil_str slice(const char *p, const char *end)
{
    return (struct coil_str){p, (size_t)(end - p)};
}

bool coil__http_is_token(struct coil_str s)
{
    return s.len && skip_token(s.ptr, s.ptr + s.len) == s.ptr + s.len;
}

bool coil__http_is_field_value(struct coil_str s)
{
    return skip_field(s.ptr, s.ptr + s.len) == s.ptr + s.len;
}

/* ---- request line ------------------------------------------------------------------------- */

enum { AGAIN = 1, END = 2 }; /* internal results: the buffer ended early; the head ended */

/* What the fields said, for the verdicts taken once the head has ended. */
struct seen {
    uint32_t hosts;       /* Host field lines */
    uint32_t te_codings;  /* transfer codings listed, over all Transfer-Encoding lines */
    uint32_t te_chunked;  /* how many of them are "chunked" */
    bool te;              /* a Transfer-Encoding line was seen */
    bool te_last_chunked; /* the last coding listed is "chunked" */
    bool te_bad_chunked;  /* "chunked" came with parameters */
    bool te_other;        /* a coding other than chunked was listed */
    bool abs_form;        /* req->host comes from the target, not from Host */
    bool expect_100;      /* Expect: 100-continue */
    bool expect_other;    /* any other expectation */
    bool conn_close;      /* Connection lists "close" */
    bool conn_keep_alive; /* Connection lists "keep-alive" */
    bool response;        /* parsing a response head: Host and Expect mean nothing */
};

static const char root_path[] = "/";

/* Sets path and query from an origin-form part "/path?query" of n bytes. */
static void split_query(struct coil__http_req *req, const char *p, size_t n)
{
    const char *q = memchr(p, '?', n);
    if (q == NULL) {
        req->path = (struct coil_str){p, n};
        req->query = (struct coil_str){p + n, 0};
    } else {
        req->path = slice(p, q);
        req->query = slice(q + 1, p + n);
    }
}

/* t[0..n) equals a prefix of lc (or lc is a prefix of it, for n > k), ignoring case. */
static bool prefix_ieq(const char *t, size_t n, const char *lc, size_t k)
{
    return same_lower(t, lc, n < k ? n : k);
}

/* "http://authority[/path][?query]", scheme case-insensitive; complete says t[n] ended it. */
static int check_absolute(struct coil__http_req *req, struct seen *s, const char *t, size_t n,
                          bool complete)
{
    size_t k;
    if (prefix_ieq(t, n, "http://", 7))
        k = 7;
    else if (prefix_ieq(t, n, "https://", 8))
        k = 8;
    else
        return -400;
    if (!complete)
        return 0;
    if (n < k)
        return -400;
    const char *a = t + k, *e = t + n, *q = a;
    while (q < e && *q != '/' && *q != '?')
        q++;
    if (q == a)
        return -400; /* an http URI needs a host */
    for (const char *x = a; x < q; x++)
        if (!is(*x, CL_HOST))
            return -400; /* userinfo ('@') included: RFC 9110 4.2.4 */
    req->host = slice(a, q);
    s->abs_form = true;
    if (q < e && *q == '/') {
        split_query(req, q, (size_t)(e - q));
    } else {
        req->path = (struct coil_str){root_path, 1};
        req->query = q < e ? slice(q + 1, e) : slice(e, e);
    }
    return 0;
}

/* Checks the target t[0..n), as far as it has arrived; complete says that SP ended it. */
static int check_target(struct coil__http_req *req, struct seen *s, const char *t, size_t n,
                        bool complete)
{
    if (n == 0)
        return complete ? -400 : 0;
    switch (t[0]) {
    case '/':
        if (complete)
            split_query(req, t, n);
        return 0;
    case '*':
        if (n > 1 || req->method.len != 7 || memcmp(req->method.ptr, "OPTIONS", 7) != 0)
            return -400;
        req->path = (struct coil_str){t, 1};
        req->query = (struct coil_str){t + 1, 0};
        return 0;
    case 'h':
    case 'H':
        return check_absolute(req, s, t, n, complete);
    default:
        return -400;
    }
}

/* Why n bytes at p do not start "HTTP/1.0" or "HTTP/1.1": AGAIN (too few), -400 or -505. */
static int check_version_prefix(const char *p, size_t n)
{
    static const char proto[] = "HTTP/";
    for (size_t i = 0; i < 5; i++) {
        if (i == n)
            return AGAIN;
        if (p[i] != proto[i])
            return -400;
    }
    if (n < 6)
        return AGAIN;
    if (!IS_DIGIT(p[5]))
        return -400;
    if (n < 7)
        return AGAIN;
    if (p[6] != '.')
        return -400;
    if (n < 8)
        return AGAIN;
    if (!IS_DIGIT(p[7]))
        return -400;
    assert(p[5] != '1' || (p[7] != '0' && p[7] != '1'));
    return -505; /* a well-formed HTTP/d.d, as soon as its 8 bytes are in */
}

/* "HTTP/1.0" or "HTTP/1.1", then CRLF, at p. */
static int parse_version(const char *p, const char *end, struct coil__http_req *req)
{
    size_t n = (size_t)(end - p);
    if (n < 8 || memcmp(p, "HTTP/1.", 7) != 0 || (p[7] != '0' && p[7] != '1'))
        return check_version_prefix(p, n);
    if (n < 9)
        return AGAIN;
    if (p[8] != '\r')
        return -400;
    if (n < 10)
        return AGAIN;
    if (p[9] != '\n')
        return -400;
    req->minor = (uint8_t)(p[7] - '0');
    return 0;
}

static int parse_request_line(const char **pp, const char *end, struct coil__http_req *req,
                              struct seen *s)
{
    const char *p = *pp;
    while (p < end && *p == '\r') { /* empty lines before the request line are ignored */
        if (end - p < 2)
            return AGAIN;
        if (p[1] != '\n')
            return -400;
        p += 2;
    }
    const char *m = p;
    p = skip_token(p, end);
    if (p == end)
        return AGAIN;
    if (*p != ' ' || p == m)
        return -400;
    req->method = slice(m, p);
    if (p - m == 4 && memcmp(m, "HEAD", 4) == 0)
        req->flags |= COIL_HTTP_HEAD;

    const char *t = ++p;
    p = skip_target(p, end);
    bool complete = p < end;
    if (complete && *p != ' ')
        return -400;
    int r = check_target(req, s, t, (size_t)(p - t), complete);
    if (r != 0)
        return r;
    if (!complete)
        return AGAIN;
    req->target = slice(t, p);

    p++;
    r = parse_version(p, end, req);
    if (r != 0)
        return r;
    *pp = p + 10;
    return 0;
}

/* ---- fields ------------------------------------------------------------------------------- */

static int on_host(struct coil__http_req *req, struct seen *s, struct coil_str v)
{
    for (size_t i = 0; i < v.len; i++)
        if (!is(v.ptr[i], CL_HOST))
            return -400;
    if (++s->hosts > 1)
        return -400;
    if (!s->abs_form)
        req->host = v;
    return 0;
}

/* 1#DIGIT list whose members all agree (RFC 9110 8.6), also with earlier Content-Length lines. */
static int on_content_length(struct coil__http_req *req, struct coil_str v)
{
    const char *p = v.ptr, *e = p + v.len;
    for (;;) {
        if (p == e || !IS_DIGIT(*p))
            return -400;
        uint64_t n = 0;
        for (; p < e && IS_DIGIT(*p); p++) {
            unsigned d = (unsigned)(*p - '0');
            if (n > (UINT64_MAX - d) / 10)
                return -400;
            n = n * 10 + d;
        }
        if ((req->flags & COIL_HTTP_HAS_LENGTH) && n != req->content_length)
            return -400;
        req->content_length = n;
        req->flags |= COIL_HTTP_HAS_LENGTH;
        p = skip_ows(p, e);
        if (p == e)
            return 0;
        if (*p != ',')
            return -400;
        p = skip_ows(p + 1, e);
    }
}

/*
 * A list of transfer-coding [ OWS ";" parameters ]; empty members are skipped (RFC 9110 5.6.1).
 * Only the tally is kept: the verdict needs every line, so it waits for the end of the head.
 */
static int on_transfer_encoding(struct seen *s, struct coil_str v)
{
    const char *p = v.ptr, *e = p + v.len;
    s->te = true;
    while (p < e) {
        if (*p == ',' || is(*p, CL_OWS)) {
            p++;
            continue;
        }
        const char *t = p;
        p = skip_token(p, e);
        if (p == t)
            return -400;
        bool chunked = p - t == 7 && same_folded(t, "chunked", 7);
        p = skip_ows(p, e);
        if (p < e && *p == ';') {
            s->te_bad_chunked |= chunked; /* chunked takes none; other codings are 501 anyway */
            while (p < e && *p != ',')
                p++;
        }
        if (p < e && *p != ',')
            return -400;
        s->te_codings++;
        s->te_chunked += chunked;
        s->te_other |= !chunked;
        s->te_last_chunked = chunked;
    }
    return 0;
}

static void on_connection(struct seen *s, struct coil_str v)
{
    const char *p = v.ptr, *e = p + v.len;
    while (p < e) {
        if (*p == ',' || is(*p, CL_OWS)) {
            p++;
            continue;
        }
        const char *t = p;
        while (p < e && *p != ',')
            p++;
        const char *te = p;
        while (is(te[-1], CL_OWS))
            te--;
        size_t n = (size_t)(te - t);
        if (n == 5 && same_folded(t, "close", 5))
            s->conn_close = true;
        else if (n == 10 && same_folded(t, "keep-alive", 10))
            s->conn_keep_alive = true;
    }
}

/* Acts on the fields the parser cares about; names are told apart by length first. */
static int apply_field(struct coil__http_req *req, struct seen *s, struct coil_str name,
                       struct coil_str value)
{
    switch (name.len) {
    case 4:
        return !s->response && same_folded(name.ptr, "host", 4) ? on_host(req, s, value) : 0;
    case 6:
        if (!s->response && same_folded(name.ptr, "expect", 6)) {
            if (value.len == 12 && same_folded(value.ptr, "100-continue", 12))
                s->expect_100 = true;
            else
                s->expect_other = true;
        }
        return 0;
    case 10:
        if (same_folded(name.ptr, "connection", 10))
            on_connection(s, value);
        return 0;
    case 14:
        return same_folded(name.ptr, "content-length", 14) ? on_content_length(req, value) : 0;
    case 17:
        return same_folded(name.ptr, "transfer-encoding", 17) ? on_transfer_encoding(s, value) : 0;
    default:
        return 0;
    }
}

/* One field line "name: value" CRLF, or the empty line (END). */
static int parse_field(const char **pp, const char *end, struct coil__http_req *req,
                       const struct coil__http_limits *lim, struct seen *s)
{
    const char *p = *pp;
    if (p == end)
        return AGAIN;
    if (*p == '\r') {
        if (end - p < 2)
            return AGAIN;
        if (p[1] != '\n')
            return -400;
        *pp = p + 2;
        return END;
    }
    if (req->nheaders == lim->max_headers)
        return -431;
    const char *n = p;
    p = skip_token(p, end);
    if (p == end)
        return AGAIN;
    if (*p != ':' || p == n)
        return -400; /* empty name, space before ':', obs-fold, bare LF, bad byte */
    const char *ne = p;
    const char *v = p = skip_ows(p + 1, end);
    p = skip_field(p, end);
    if (p == end)
        return AGAIN;
    if (*p != '\r')
        return -400;
    if (end - p < 2)
        return AGAIN;
    if (p[1] != '\n')
        return -400;
    const char *ve = p;
    while (ve > v && is(ve[-1], CL_OWS))
        ve--;
    struct coil__http_header *h = &req->headers[req->nheaders++];
    h->name = slice(n, ne);
    h->value = slice(v, ve);
    *pp = p + 2;
    return apply_field(req, s, h->name, h->value);
}

/* The verdicts that need the whole head, in the order documented at the top of the file. */
static int finish_head(struct coil__http_req *req, const struct seen *s,
                       const struct coil__http_limits *lim)
{
    if (s->hosts == 0 && req->minor == 1)
        return -400;
    if (s->te) {
        if (req->minor == 0 || (req->flags & COIL_HTTP_HAS_LENGTH))
            return -400;
        if (s->te_codings == 0 || s->te_chunked > 1 || (s->te_chunked && !s->te_last_chunked) ||
            s->te_bad_chunked)
            return -400;
        if (s->te_other)
            return -501;
        req->flags |= COIL_HTTP_CHUNKED;
    }
    if ((req->flags & COIL_HTTP_HAS_LENGTH) && req->content_length > lim->max_body_bytes)
        return -413;
    if (s->expect_other)
        return -417;
    if (s->expect_100 && req->minor == 1)
        req->flags |= COIL_HTTP_EXPECT_100;
    if (req->minor == 1 ? !s->conn_close : (s->conn_keep_alive && !s->conn_close))
        req->flags |= COIL_HTTP_KEEP_ALIVE;
    return 0;
}

int coil__http_parse_head(const char *buf, size_t len, struct coil__http_req *req,
                          const struct coil__http_limits *lim)
{
    assert(buf != NULL || len == 0);
    assert(req->headers != NULL || lim->max_headers == 0);
    size_t max = lim->max_header_bytes < INT_MAX ? lim->max_header_bytes : INT_MAX;
    const char *p = buf, *end = buf + (len < max ? len : max);
    bool at_limit = len >= max; /* no more bytes can help: running out is a size error */

    req->method = req->target = req->path = req->query = req->host = (struct coil_str){NULL, 0};
    req->minor = 0;
    req->flags = 0;
    req->content_length = 0;
    req->nheaders = 0;

    struct seen s = {0};
    int r = parse_request_line(&p, end, req, &s);
    if (r == AGAIN)
        return at_limit ? -414 : 0;
    if (r < 0)
        return r;
    do {
        r = parse_field(&p, end, req, lim, &s);
        if (r == AGAIN)
            return at_limit ? -431 : 0;
        if (r < 0)
            return r;
    } while (r != END);
    r = finish_head(req, &s, lim);
    if (r < 0)
        return r;
    assert(p > buf && (size_t)(p - buf) <= max);
    return (int)(p - buf);
}

/* ---- response head ------------------------------------------------------------------------ */

/* "HTTP/1.x SP 3DIGIT SP reason CRLF" (the SP before an empty reason is required). */
static int parse_status_line(const char **pp, const char *end, struct coil__http_resp *r)
{
    const char *p = *pp;
    size_t n = (size_t)(end - p);
    static const char proto[] = "HTTP/1.";
    for (size_t i = 0; i < 7; i++) {
        if (i == n)
            return AGAIN;
        if (p[i] != proto[i])
            return -1;
    }
    if (n < 13)
        return AGAIN;
    if ((p[7] != '0' && p[7] != '1') || p[8] != ' ' || !IS_DIGIT(p[9]) || !IS_DIGIT(p[10]) ||
        !IS_DIGIT(p[11]) || p[12] != ' ' || p[9] == '0')
        return -1;
    r->minor = (uint8_t)(p[7] - '0');
    r->status = (p[9] - '0') * 100 + (p[10] - '0') * 10 + (p[11] - '0');
    const char *q = skip_field(p + 13, end);
    if (q == end)
        return AGAIN;
    if (*q != '\r')
        return -1;
    if (end - q < 2)
        return AGAIN;
    if (q[1] != '\n')
        return -1;
    r->reason = slice(p + 13, q);
    *pp = q + 2;
    return 0;
}

int coil__http_parse_resp_head(const char *buf, size_t len, struct coil__http_resp *r,
                               uint32_t max_header_bytes, uint32_t max_headers)
{
    size_t max = max_header_bytes < INT_MAX ? max_header_bytes : INT_MAX;
    const char *p = buf, *end = buf + (len < max ? len : max);
    bool at_limit = len >= max;
    struct coil__http_req h = {.headers = r->headers};
    struct coil__http_limits lim = {.max_header_bytes = max_header_bytes,
                                    .max_headers = max_headers};
    struct seen s = {.response = true};
    r->status = 0;
    r->flags = 0;
    r->nheaders = 0;
    int rc = parse_status_line(&p, end, r);
    if (rc == AGAIN)
        return at_limit ? -1 : 0;
    if (rc < 0)
        return -1;
    do {
        rc = parse_field(&p, end, &h, &lim, &s);
        if (rc == AGAIN)
            return at_limit ? -1 : 0;
        if (rc < 0)
            return -1;
    } while (rc != END);
    r->nheaders = h.nheaders;
    r->content_length = h.content_length;
    r->flags = h.flags & COIL_HTTP_HAS_LENGTH;
    if (s.te) {
        /* Transfer-Encoding with Content-Length is how responses are smuggled (RFC 9112 6.1);
         * a coding other than a final "chunked" cannot be framed by us. */
        if (r->minor == 0 || (r->flags & COIL_HTTP_HAS_LENGTH) || s.te_codings != 1 ||
            s.te_chunked != 1 || s.te_bad_chunked)
            return -1;
        r->flags |= COIL_HTTP_CHUNKED;
    }
    if (r->minor == 1 ? !s.conn_close : (s.conn_keep_alive && !s.conn_close))
        r->flags |= COIL_HTTP_KEEP_ALIVE;
    return (int)(p - buf);
}

/* ---- chunked decoder ---------------------------------------------------------------------- */

#define CHUNK_LINE_MAX 4096u               /* bytes of a chunk-size line before its CRLF */
#define CHUNK_SIZE_MAX (UINT64_C(1) << 60) /* larger chunk sizes are refused as overflow */

enum {
    /* chunk-size line: 1*HEXDIG *( BWS ";" BWS name [ BWS "=" BWS value ] ) CRLF */
    CK_SIZE0,       /* the first hex digit */
    CK_SIZE,        /* more digits, or what follows them */
    CK_BWS_SEMI,    /* whitespace that must lead to ';' */
    CK_NAME0,       /* after ';': whitespace, then an extension name */
    CK_NAME,        /* in the name */
    CK_BWS_NAME,    /* whitespace after the name: '=' or ';' must follow */
    CK_VAL0,        /* after '=': whitespace, then a token or a quoted string */
    CK_TOKEN,       /* in a token value */
    CK_QUOTED,      /* in a quoted value */
    CK_QPAIR,       /* after a backslash in a quoted value */
    CK_AFTER_QUOTE, /* after the closing quote */
    CK_SIZE_LF,     /* the LF ending the size line; states above count toward line_bytes */
    CK_DATA,        /* remaining data bytes of the chunk */
    CK_DATA_CR,     /* CRLF after the data */
    CK_DATA_LF,
    CK_TRAILER0, /* start of a trailer line, or the CR of the final empty line */
    CK_TRAILER_NAME,
    CK_TRAILER_VALUE,
    CK_TRAILER_LF,
    CK_FINAL_LF,
    CK_DONE,    /* sticky: complete */
    CK_BAD,     /* sticky: -400 */
    CK_TOO_BIG, /* sticky: -413 */
};

void coil__chunked_init(struct coil__chunked *c)
{
    memset(c, 0, sizeof(*c));
    c->state = CK_SIZE0;
}

/* Where a byte after a size, name, or value leads: more extensions or the end of the line. */
static int after_ext(struct coil__chunked *c, char ch)
{
    if (ch == ';')
        c->state = CK_NAME0;
    else if (ch == '\r')
        c->state = CK_SIZE_LF;
    else if (is(ch, CL_OWS))
        c->state = CK_BWS_SEMI;
    else
        return -400;
    return 0;
}

static int add_hex_digit(struct coil__chunked *c, unsigned d, uint64_t max_body)
{
    if (c->remaining > CHUNK_SIZE_MAX >> 4)
        return -400;
    c->remaining = c->remaining << 4 | d;
    if (c->remaining > CHUNK_SIZE_MAX)
        return -400;
    if (c->remaining > max_body - c->out)
        return -413;
    c->state = CK_SIZE;
    return 0;
}

/* Consumes one framing byte (every state but CK_DATA and the sticky ones). */
static int step(struct coil__chunked *c, char ch, uint64_t max_body, uint32_t max_header_bytes)
{
    if (c->state < CK_SIZE_LF && ch != '\r' && ++c->line_bytes > CHUNK_LINE_MAX)
        return -400;
    bool in_field = c->state >= CK_TRAILER0 && c->state <= CK_TRAILER_LF;
    if (in_field && !(c->state == CK_TRAILER0 && ch == '\r')) { /* the final CRLF is not counted */
        if (c->trailer_bytes == max_header_bytes)
            return -400;
        c->trailer_bytes++;
    }
    bool ows = is(ch, CL_OWS), tchar = is(ch, CL_TOKEN);
    switch (c->state) {
    case CK_SIZE0:
    case CK_SIZE: {
        unsigned d = hexval[(uint8_t)ch];
        if (d < 16)
            return add_hex_digit(c, d, max_body);
        return c->state == CK_SIZE ? after_ext(c, ch) : -400;
    }
    case CK_BWS_SEMI:
        if (ch == ';')
            c->state = CK_NAME0;
        else if (!ows)
            return -400;
        return 0;
    case CK_NAME0:
        if (tchar)
            c->state = CK_NAME;
        else if (!ows)
            return -400;
        return 0;
    case CK_NAME:
        if (tchar)
            return 0;
        if (ch == '=')
            c->state = CK_VAL0;
        else if (ows)
            c->state = CK_BWS_NAME;
        else
            return after_ext(c, ch);
        return 0;
    case CK_BWS_NAME:
        if (ch == '=')
            c->state = CK_VAL0;
        else if (ch == ';')
            c->state = CK_NAME0;
        else if (!ows)
            return -400;
        return 0;
    case CK_VAL0:
        if (tchar)
            c->state = CK_TOKEN;
        else if (ch == '"')
            c->state = CK_QUOTED;
        else if (!ows)
            return -400;
        return 0;
    case CK_TOKEN:
        return tchar ? 0 : after_ext(c, ch);
    case CK_QUOTED:
        if (ch == '"')
            c->state = CK_AFTER_QUOTE;
        else if (ch == '\\')
            c->state = CK_QPAIR;
        else if (!is(ch, CL_QDTEXT))
            return -400;
        return 0;
    case CK_QPAIR:
        if (!is(ch, CL_FIELD))
            return -400;
        c->state = CK_QUOTED;
        return 0;
    case CK_AFTER_QUOTE:
        return after_ext(c, ch);
    case CK_SIZE_LF:
        if (ch != '\n')
            return -400;
        c->line_bytes = 0;
        c->state = c->remaining == 0 ? CK_TRAILER0 : CK_DATA;
        return 0;
    case CK_DATA_CR:
        if (ch != '\r')
            return -400;
        c->state = CK_DATA_LF;
        return 0;
    case CK_DATA_LF:
        if (ch != '\n')
            return -400;
        c->state = CK_SIZE0;
        return 0;
    case CK_TRAILER0:
        if (ch == '\r')
            c->state = CK_FINAL_LF;
        else if (tchar)
            c->state = CK_TRAILER_NAME;
        else
            return -400;
        return 0;
    case CK_TRAILER_NAME:
        if (ch == ':')
            c->state = CK_TRAILER_VALUE;
        else if (!tchar)
            return -400;
        return 0;
    case CK_TRAILER_VALUE:
        if (ch == '\r')
            c->state = CK_TRAILER_LF;
        else if (!is(ch, CL_FIELD))
            return -400;
        return 0;
    case CK_TRAILER_LF:
        if (ch != '\n')
            return -400;
        c->state = CK_TRAILER0;
        return 0;
    case CK_FINAL_LF:
        if (ch != '\n')
            return -400;
        c->state = CK_DONE;
        return 0;
    default:
        assert(!"unreachable chunked state");
        return -400;
    }
}

int coil__chunked_decode(struct coil__chunked *c, char *buf, size_t len, uint64_t max_body,
                         uint32_t max_header_bytes)
{
    assert(c->out <= c->in && c->in <= len);
    for (;;) {
        switch (c->state) {
        case CK_DONE:
            return 1;
        case CK_BAD:
            return -400;
        case CK_TOO_BIG:
            return -413;
        default:
            break;
        }
        if (c->in == len)
            return 0;
        if (c->state == CK_DATA) {
            size_t n = len - c->in;
            if (n > c->remaining)
                n = (size_t)c->remaining;
            assert(c->out + n <= max_body);
            if (c->out != c->in)
                memmove(buf + c->out, buf + c->in, n);
            c->out += n;
            c->in += n;
            c->remaining -= n;
            if (c->remaining == 0)
                c->state = CK_DATA_CR;
            continue;
        }
        int r = step(c, buf[c->in], max_body, max_header_bytes);
        if (r < 0) {
            c->state = r == -413 ? CK_TOO_BIG : CK_BAD;
            return r;
        }
        c->in++;
    }
}
