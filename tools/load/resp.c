/* SPDX-License-Identifier: MIT */
/*
 * resp.c: the load generator's response parser (see resp.h). Lines (status, headers, chunk
 * sizes, trailers) are gathered in a bounded buffer and handled when their LF arrives; body and
 * chunk bytes are only counted. The connection layer owns what the bytes mean for timing.
 */
#include "resp.h"

#include <string.h>
#include <strings.h>

enum {
    S_IDLE,       /* nothing of this response yet */
    S_STATUS,     /* in the status line */
    S_HEADER,     /* in the header lines */
    S_BODY,       /* Content-Length body */
    S_CHUNK_SIZE, /* chunk-size line */
    S_CHUNK_DATA,
    S_CHUNK_CRLF, /* the CRLF after chunk data: `remaining` bytes of it left */
    S_TRAILER,
    S_UNTIL_EOF, /* body delimited by the end of the connection */
};

void load_resp_start(struct load_resp *r, bool head)
{
    r->state = S_IDLE;
    r->head = head;
    r->chunked = r->has_length = r->close = false;
    r->status = 0;
    r->length = r->remaining = 0;
    r->line_len = 0;
}

bool load_resp_idle(const struct load_resp *r)
{
    return r->state == S_IDLE;
}

static int parse_status(struct load_resp *r, const char *l, size_t n)
{
    if (n < 12 || memcmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1') || l[8] != ' ')
        return -1;
    int s = 0;
    for (int i = 9; i < 12; i++) {
        if (l[i] < '0' || l[i] > '9')
            return -1;
        s = s * 10 + (l[i] - '0');
    }
    if (s < 100 || (n > 12 && l[12] != ' '))
        return -1;
    r->status = s;
    return 0;
}

static bool name_is(const char *l, size_t n, const char *name)
{
    size_t k = strlen(name);
    return n == k && strncasecmp(l, name, k) == 0;
}

static bool has_token(const char *v, size_t n, const char *tok)
{
    size_t k = strlen(tok);
    for (size_t i = 0; i + k <= n; i++)
        if (strncasecmp(v + i, tok, k) == 0 && (i == 0 || v[i - 1] == ' ' || v[i - 1] == ',') &&
            (i + k == n || v[i + k] == ' ' || v[i + k] == ','))
            return true;
    return false;
}

static int parse_header(struct load_resp *r, const char *l, size_t n)
{
    const char *colon = memchr(l, ':', n);
    if (!colon || colon == l)
        return -1;
    size_t nl = (size_t)(colon - l);
    const char *v = colon + 1, *end = l + n;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vn = (size_t)(end - v);
    if (name_is(l, nl, "content-length")) {
        uint64_t x = 0;
        if (vn == 0)
            return -1;
        for (size_t i = 0; i < vn; i++) {
            if (v[i] < '0' || v[i] > '9' || x > (UINT64_MAX - 9) / 10)
                return -1;
            x = x * 10 + (uint64_t)(v[i] - '0');
        }
        if (r->has_length && x != r->length)
            return -1;
        r->has_length = true;
        r->length = x;
    } else if (name_is(l, nl, "transfer-encoding")) {
        r->chunked = has_token(v, vn, "chunked");
    } else if (name_is(l, nl, "connection")) {
        if (has_token(v, vn, "close"))
            r->close = true;
    }
    return 0;
}

/* The empty line after the headers: how the body is framed. */
static int end_of_head(struct load_resp *r)
{
    if (r->status < 200) { /* interim: the real response follows */
        bool head = r->head;
        load_resp_start(r, head);
        return 0;
    }
    if (r->head || r->status == 204 || r->status == 304)
        return 1;
    if (r->chunked) {
        r->state = S_CHUNK_SIZE;
        return 0;
    }
    if (r->has_length) {
        r->remaining = r->length;
        r->state = S_BODY;
        return r->length == 0 ? 1 : 0;
    }
    r->state = S_UNTIL_EOF;
    return 0;
}

static int parse_chunk_size(struct load_resp *r, const char *l, size_t n)
{
    uint64_t x = 0;
    size_t i = 0;
    for (; i < n; i++) {
        char c = l[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                       : -1;
        if (d < 0)
            break;
        if (x >> 59)
            return -1;
        x = x * 16 + (uint64_t)d;
    }
    if (i == 0 || (i < n && l[i] != ';' && l[i] != ' ' && l[i] != '\t'))
        return -1;
    if (x == 0) {
        r->state = S_TRAILER;
    } else {
        r->remaining = x;
        r->state = S_CHUNK_DATA;
    }
    return 0;
}

/* A complete line (without CRLF). Returns 1 response complete, 0 continue, -1 malformed. */
static int on_line(struct load_resp *r, const char *l, size_t n)
{
    switch (r->state) {
    case S_STATUS:
        if (parse_status(r, l, n) < 0)
            return -1;
        r->state = S_HEADER;
        return 0;
    case S_HEADER:
        if (n == 0)
            return end_of_head(r);
        return parse_header(r, l, n);
    case S_CHUNK_SIZE:
        return parse_chunk_size(r, l, n);
    case S_TRAILER:
        return n == 0 ? 1 : 0;
    default:
        return -1;
    }
}

/* Gathers a line; returns 1 when one is complete (in r->line, CRLF stripped), 0 if more is
 * needed (all consumed), -1 if too long or a bare CR ends it. */
static int take_line(struct load_resp *r, const char *p, size_t n, size_t *used)
{
    const char *lf = memchr(p, '\n', n);
    size_t k = lf ? (size_t)(lf - p) : n;
    if (r->line_len + k > LOAD_RESP_MAX_LINE)
        return -1;
    memcpy(r->line + r->line_len, p, k);
    r->line_len += (uint32_t)k;
    if (!lf) {
        *used = n;
        return 0;
    }
    *used = k + 1;
    if (r->line_len == 0 || r->line[r->line_len - 1] != '\r')
        return -1; /* HTTP lines end in CRLF */
    r->line_len--;
    return 1;
}

int load_resp_feed(struct load_resp *r, const char *buf, size_t len, size_t *used)
{
    size_t off = 0;
    while (off < len) {
        const char *p = buf + off;
        size_t n = len - off, k;
        switch (r->state) {
        case S_BODY:
        case S_CHUNK_DATA:
            k = n < r->remaining ? n : (size_t)r->remaining;
            r->remaining -= k;
            off += k;
            if (r->remaining == 0) {
                if (r->state == S_BODY) {
                    *used = off;
                    return 1;
                }
                r->state = S_CHUNK_CRLF;
                r->remaining = 2;
            }
            continue;
        case S_CHUNK_CRLF:
            if (*p != (r->remaining == 2 ? '\r' : '\n'))
                return -1;
            off++;
            if (--r->remaining == 0)
                r->state = S_CHUNK_SIZE;
            continue;
        case S_UNTIL_EOF:
            off = len;
            continue;
        case S_IDLE:
            r->state = S_STATUS;
            /* fall through */
        default: {
            int t = take_line(r, p, n, &k);
            off += k;
            if (t < 0)
                return -1;
            if (t == 0)
                continue;
            int rc = on_line(r, r->line, r->line_len);
            r->line_len = 0;
            if (rc != 0) {
                *used = off;
                return rc;
            }
        }
        }
    }
    *used = len;
    return 0;
}

int load_resp_eof(struct load_resp *r)
{
    return r->state == S_UNTIL_EOF ? 1 : 0;
}
