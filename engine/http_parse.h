/* SPDX-License-Identifier: MIT */
/*
 * http_parse: the HTTP/1.1 request-head parser and the chunked body decoder (RFC 9112).
 *
 * Contract of coil__http_parse_head (one comment, picohttpparser-style):
 *   returns  > 0  the head is complete; the value is its length, through the empty line;
 *            = 0  the bytes so far are a valid prefix: call again with more;
 *            < 0  -status: the request must be answered with that status and the connection
 *                 closed (-400, -413, -414, -431, -501, -505).
 * It never reads past buf[len - 1] and keeps no state between calls: call it again with the
 * same bytes plus more. Every string in the result is a slice of buf (zero copy). A prefix is
 * rejected as soon as it cannot start a valid request (a bad request line is reported before
 * the headers end), so garbage never waits for a timeout.
 *
 * The chunked decoder is resumable: it keeps its state in struct coil__chunked and decodes in
 * place, writing the body over the chunk framing (the write offset never passes the read
 * offset), so a body split across any number of reads needs no second buffer.
 */
#ifndef COIL_HTTP_PARSE_H
#define COIL_HTTP_PARSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "coil.h"

struct coil__http_limits {
    uint32_t max_header_bytes; /* request line + headers + empty line; beyond: 414 or 431 */
    uint32_t max_headers;      /* header lines; beyond: 431 */
    uint64_t max_body_bytes;   /* Content-Length above this: 413 */
};

struct coil__http_header {
    struct coil_str name;  /* token, as sent */
    struct coil_str value; /* leading/trailing SP/HTAB trimmed */
};

enum {
    COIL_HTTP_KEEP_ALIVE = 1u << 0, /* the connection may stay open after this request */
    COIL_HTTP_CHUNKED = 1u << 1,    /* Transfer-Encoding: chunked */
    COIL_HTTP_HAS_LENGTH = 1u << 2, /* Content-Length present */
    COIL_HTTP_EXPECT_100 = 1u << 3, /* Expect: 100-continue */
    COIL_HTTP_HEAD = 1u << 4,       /* method is HEAD */
    COIL_HTTP_V2 = 1u << 5,         /* came over HTTP/2 (http2.c builds it; never the parser) */
};

struct coil__http_req {
    struct coil_str method;            /* token */
    struct coil_str target;            /* as sent */
    struct coil_str path;              /* origin-form path (from absolute-form: the path part) */
    struct coil_str query;             /* after '?', without it; empty if none */
    struct coil_str host;              /* Host header value (or absolute-form authority) */
    uint8_t minor;                     /* HTTP/1.<minor>: 0 or 1 */
    uint32_t flags;                    /* COIL_HTTP_* */
    uint64_t content_length;           /* valid with COIL_HTTP_HAS_LENGTH */
    uint32_t nheaders;                 /* entries used in headers[] */
    struct coil__http_header *headers; /* caller's array of limits->max_headers entries */
};

/*
 * Parses a request head from buf[0..len). req->headers must point to an array of
 * lim->max_headers entries; the other fields are outputs.
 * Rules: request-line "method SP target SP HTTP/1.x CRLF" with single spaces; method a token;
 * target origin-form ("/..."), absolute-form ("http://host/...") or "*" (OPTIONS only); no
 * CTL, SP or non-ASCII byte in the target; HTTP/1.0 and 1.1 only (other versions 505, junk
 * 400). Lines end in CRLF: a bare LF or bare CR is 400. Header: token ":" OWS value OWS; no
 * whitespace before the colon, no obs-fold, no CTL but HTAB in values (obs-text allowed).
 * HTTP/1.1 needs exactly one Host (none or several: 400). Content-Length: digits only, repeated
 * values (in one header as a list, or several headers) must agree, else 400; above
 * max_body_bytes: 413. Transfer-Encoding: "chunked" (case-insensitive) is the only coding
 * accepted (others 501); with Content-Length: 400; on HTTP/1.0: 400. Expect: 100-continue sets
 * the flag (only on 1.1); another expectation: 417.
 * Keep-alive: 1.1 unless "Connection: close"; 1.0 only with "Connection: keep-alive"
 * (Connection is a comma list, case-insensitive).
 * Size: a head over max_header_bytes is 431, or 414 when the request line alone does not end
 * within max_header_bytes; more than max_headers headers is 431.
 */
int coil__http_parse_head(const char *buf, size_t len, struct coil__http_req *req,
                          const struct coil__http_limits *lim);

/* A response head (the upstream client's side). */
struct coil__http_resp {
    int status;                        /* 100-999 */
    uint8_t minor;                     /* HTTP/1.<minor> */
    uint32_t flags;                    /* COIL_HTTP_KEEP_ALIVE, _CHUNKED, _HAS_LENGTH */
    uint64_t content_length;           /* with COIL_HTTP_HAS_LENGTH */
    struct coil_str reason;            /* may be empty */
    uint32_t nheaders;                 /* entries used in headers[] */
    struct coil__http_header *headers; /* caller's array of max_headers entries */
};

/*
 * Parses a response head from buf[0..len): head length, 0 if more bytes are needed, -1 if it is
 * malformed. The status line is "HTTP/1.0" or "HTTP/1.1", SP, three digits (100-999), SP, a
 * reason of field bytes, CRLF. Fields follow the request parser's rules (no obs-fold, CRLF only,
 * agreeing Content-Length values), and a response is refused when its framing is ambiguous:
 * Transfer-Encoding with Content-Length, on HTTP/1.0, or anything but a single "chunked".
 * Over max_header_bytes or max_headers is malformed too. Keep-alive as for requests.
 */
int coil__http_parse_resp_head(const char *buf, size_t len, struct coil__http_resp *r,
                               uint32_t max_header_bytes, uint32_t max_headers);

/* A token (RFC 9110 5.6.2: a method, a field name), and a field value's bytes (HTAB, SP,
 * visible ASCII, obs-text), by the parser's own tables. */
bool coil__http_is_token(struct coil_str s);
bool coil__http_is_field_value(struct coil_str s);

/* Case-insensitive comparison of a slice with a NUL-terminated lower-case ASCII name. */
bool coil__http_name_eq(struct coil_str s, const char *lower);

struct coil__chunked {
    uint8_t state;          /* decoder state (private) */
    uint64_t remaining;     /* data bytes left in the current chunk */
    size_t in;              /* read offset into the body buffer */
    size_t out;             /* write offset: decoded bytes so far (out <= in) */
    uint32_t line_bytes;    /* bytes in the current size/extension/trailer line (bounded) */
    uint32_t trailer_bytes; /* bytes of trailer section so far (bounded by max_header_bytes) */
};

void coil__chunked_init(struct coil__chunked *c);

/*
 * Decodes buf[c->in .. len) in place, where buf starts at the first body byte and still holds
 * the bytes of earlier calls. Returns 1 when the last chunk and trailers are read (c->in is
 * then the framed length consumed, c->out the body length, body in buf[0 .. c->out)), 0 when
 * more bytes are needed, -400 for bad framing (size not hex, overflow, missing CRLF after data,
 * a line over max_line bytes, trailers over max_header_bytes), -413 if the decoded body would
 * pass max_body. Chunk extensions and trailer fields are parsed and ignored.
 */
int coil__chunked_decode(struct coil__chunked *c, char *buf, size_t len, uint64_t max_body,
                         uint32_t max_header_bytes);

#endif
