/* SPDX-License-Identifier: MIT */
/*
 * targets: turns URLs and vegeta-format targets files into prebuilt request bytes. Everything
 * a struct load_targets holds is malloc'd and owned by it until load_targets_free (start from
 * a zeroed struct); nothing is shared between targets, so each one frees alone. The first
 * target fixes host, port and authority; every later one must match them. Adding is
 * all-or-nothing: load_targets_add_url and load_targets_parse_file leave t as it was when they
 * fail, with the reason in err ("FILE:LINE: what" for files). Arrays grow in powers of two, so
 * their capacity follows from their count and needs no field. load_targets_finish is called
 * once, after every target is added (if it fails, t is only fit for load_targets_free); it appends
 * the -H headers after each target's own (a target's own header of the same name wins), resolves
 * Host (a Host header, else the URL's authority, always first) and adds Content-Length for bodies
 * unless the target framed its body itself. It never adds Connection: keep-alive is HTTP/1.1's
 * default.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "targets.h"

#define MSG_MAX 512  /* one error message before the FILE:LINE prefix */
#define MIN_CAP 4    /* first allocation of a growing array, in elements */
#define BLANKS " \t" /* what trimming removes, with '\r' at line ends */

enum block_state {
    BLOCK_NONE,    /* between targets: the next line must start one */
    BLOCK_HEADERS, /* after a target line: headers, '@body' or a blank line may follow */
    BLOCK_BODY,    /* after '@body': only a blank line (or the end) may follow */
};

struct file_ctx {
    const char *file; /* the targets file's name as given, for messages */
    size_t line;      /* 1-based number of the line being read */
    char *err;
    size_t errlen;
};

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int line_fail(const struct file_ctx *c, int rc, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, int rc, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return rc;
}

static int line_fail(const struct file_ctx *c, int rc, const char *fmt, ...)
{
    char msg[MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return fail(c->err, c->errlen, rc, "%s:%zu: %s", c->file, c->line, msg);
}

/* Makes room for element n of *v (n elements in use). Capacity is max(MIN_CAP, 2^k) for the
 * smallest such value above n, so a realloc is due only at n == 0 and at powers of two. */
static int grow(void **v, size_t n, size_t elem)
{
    if (n != 0 && (n < MIN_CAP || (n & (n - 1)) != 0))
        return 0;
    size_t cap = n ? 2 * n : MIN_CAP;
    if (cap > SIZE_MAX / elem)
        return -ENOMEM;
    void *p = realloc(*v, cap * elem);
    if (!p)
        return -ENOMEM;
    *v = p;
    return 0;
}

/* RFC 9110 tchar: what method and header names are made of. */
static bool is_tchar(unsigned char ch)
{
    if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9'))
        return true;
    return ch != '\0' && strchr("!#$%&'*+-.^_`|~", ch) != NULL;
}

static bool is_token(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_tchar((unsigned char)s[i]))
            return false;
    return true;
}

/* A header value may hold visible characters, spaces and tabs, never CR, LF or other CTLs. */
static bool is_field_value(const char *s)
{
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
            return false;
    }
    return true;
}

static char *trim(char *s)
{
    s += strspn(s, BLANKS);
    size_t n = strlen(s);
    while (n && strchr(BLANKS "\r", s[n - 1]))
        s[--n] = '\0';
    return s;
}

/* Reads all of path into a malloc'd buffer with a NUL after its last byte. */
static int slurp(const char *path, char **data, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    struct stat st;
    size_t cap = 4096, n = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode))
        cap = (size_t)st.st_size + 2; /* room for a final read of 0 without growing */
    char *buf = malloc(cap);
    int rc = buf ? 0 : -ENOMEM;
    while (rc == 0) {
        if (n + 1 >= cap) {
            char *p = cap <= SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!p) {
                rc = -ENOMEM;
                break;
            }
            buf = p;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + n, cap - n - 1);
        if (r == 0)
            break;
        if (r < 0 && errno != EINTR)
            rc = -errno;
        else if (r > 0)
            n += (size_t)r;
    }
    close(fd);
    if (rc) {
        free(buf);
        return rc;
    }
    buf[n] = '\0';
    *data = buf;
    *len = n;
    return 0;
}

/* ---- URLs ---- */

/* Accepts "http://" (any case) and points *rest after it. */
static int check_scheme(const char *url, const char **rest, char *err, size_t errlen)
{
    const char *sep = strstr(url, "://");
    size_t n = sep ? (size_t)(sep - url) : 0;
    if (n == 0 ||
        strspn(url, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.") < n)
        return fail(err, errlen, -EINVAL, "URL '%s' must start with http://", url);
    if (n == 5 && strncasecmp(url, "https", 5) == 0)
        return fail(err, errlen, -EINVAL, "https is not supported (http:// only)");
    if (n != 4 || strncasecmp(url, "http", 4) != 0)
        return fail(err, errlen, -EINVAL, "unsupported scheme '%.*s' in URL '%s' (http:// only)",
                    (int)n, url, url);
    *rest = sep + 3;
    return 0;
}

static int check_host(const char *url, const char *h, size_t n, char *err, size_t errlen)
{
    bool v6 = h[0] == '[';
    const char *ok = v6 ? "0123456789abcdefABCDEF:."
                        : "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                          "0123456789-._~";
    const char *in = v6 ? h + 1 : h;
    size_t in_n = v6 ? n - 2 : n;
    if (in_n == 0)
        return fail(err, errlen, -EINVAL, "URL '%s' has no host", url);
    for (size_t i = 0; i < in_n; i++)
        if (!strchr(ok, in[i]))
            return fail(err, errlen, -EINVAL, "invalid character '%c' in the host of URL '%s'",
                        in[i], url);
    if (v6 && !memchr(in, ':', in_n))
        return fail(err, errlen, -EINVAL, "'%.*s' in URL '%s' is not an IPv6 address", (int)n, h,
                    url);
    return 0;
}

static int parse_port(const char *url, const char *s, size_t n, uint16_t *port, char *err,
                      size_t errlen)
{
    if (n == 0)
        return fail(err, errlen, -EINVAL, "empty port in URL '%s'", url);
    if (strspn(s, "0123456789") < n)
        return fail(err, errlen, -EINVAL, "port '%.*s' in URL '%s' is not a number", (int)n, s,
                    url);
    unsigned long v = 0;
    for (size_t i = 0; i < n && v <= 65535; i++)
        v = v * 10 + (unsigned long)(s[i] - '0');
    if (v < 1 || v > 65535)
        return fail(err, errlen, -EINVAL, "port %.*s in URL '%s' is out of range (1..65535)",
                    (int)n, s, url);
    *port = (uint16_t)v;
    return 0;
}

/* Splits the authority a[0..n) into host (a[0..*hlen)) and port. */
static int split_authority(const char *url, const char *a, size_t n, size_t *hlen, uint16_t *port,
                           char *err, size_t errlen)
{
    if (n == 0)
        return fail(err, errlen, -EINVAL, "URL '%s' has no host", url);
    if (memchr(a, '@', n))
        return fail(err, errlen, -EINVAL, "user info in URL '%s' is not supported", url);
    if (a[0] == '[') {
        const char *close = memchr(a, ']', n);
        if (!close)
            return fail(err, errlen, -EINVAL, "unterminated '[' in the host of URL '%s'", url);
        *hlen = (size_t)(close - a) + 1;
        if (*hlen < n && a[*hlen] != ':')
            return fail(err, errlen, -EINVAL, "unexpected '%c' after the host of URL '%s'",
                        a[*hlen], url);
    } else {
        const char *colon = memchr(a, ':', n);
        *hlen = colon ? (size_t)(colon - a) : n;
    }
    int rc = check_host(url, a, *hlen, err, errlen);
    if (rc)
        return rc;
    *port = 80;
    if (*hlen == n)
        return 0;
    return parse_port(url, a + *hlen + 1, n - *hlen - 1, port, err, errlen);
}

int load_url_parse(const char *url, char **host, uint16_t *port, char **path, char *err,
                   size_t errlen)
{
    for (const unsigned char *s = (const unsigned char *)url; *s; s++)
        if (*s <= 0x20 || *s >= 0x7f)
            return fail(err, errlen, -EINVAL,
                        "URL '%s' contains a space, control or non-ASCII byte (percent-encode it)",
                        url);
    const char *rest = NULL;
    int rc = check_scheme(url, &rest, err, errlen);
    if (rc)
        return rc;
    size_t alen = strcspn(rest, "/?#"), hlen = 0;
    uint16_t p;
    rc = split_authority(url, rest, alen, &hlen, &p, err, errlen);
    if (rc)
        return rc;
    const char *ps = rest + alen;
    size_t plen = strcspn(ps, "#"); /* the fragment is the client's business, never sent */
    bool slash = ps[0] == '/';
    char *h = strndup(rest, hlen);
    char *pa = malloc(plen + 2);
    if (!h || !pa) {
        free(h);
        free(pa);
        return fail(err, errlen, -ENOMEM, "out of memory");
    }
    pa[0] = '/';
    memcpy(pa + !slash, ps, plen);
    pa[plen + !slash] = '\0';
    *host = h;
    *port = p;
    *path = pa;
    return 0;
}

/* ---- building up targets ---- */

static void target_free(struct load_target *tg)
{
    free(tg->method);
    free(tg->path);
    for (size_t i = 0; i < tg->nhdrs; i++) {
        free(tg->hdrs[i].name);
        free(tg->hdrs[i].value);
    }
    free(tg->hdrs);
    free(tg->body);
    free(tg->req);
    memset(tg, 0, sizeof(*tg));
}

/* Drops the targets added after the first n0; had_host false: also forgets host and port. */
static void truncate_targets(struct load_targets *t, size_t n0, bool had_host)
{
    while (t->n > n0)
        target_free(&t->v[--t->n]);
    if (!had_host) {
        free(t->host);
        free(t->authority);
        t->host = NULL;
        t->authority = NULL;
        t->port = 0;
    }
}

static const struct load_header *find_header(const struct load_target *tg, size_t n,
                                             const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(tg->hdrs[i].name, name) == 0)
            return &tg->hdrs[i];
    return NULL;
}

static size_t count_headers(const struct load_target *tg, const char *name)
{
    size_t k = 0;
    for (size_t i = 0; i < tg->nhdrs; i++)
        k += strcasecmp(tg->hdrs[i].name, name) == 0;
    return k;
}

static int add_header(struct load_target *tg, const char *name, size_t nlen, const char *value)
{
    if (grow((void **)&tg->hdrs, tg->nhdrs, sizeof(*tg->hdrs)))
        return -ENOMEM;
    char *n = strndup(name, nlen), *v = strdup(value);
    if (!n || !v) {
        free(n);
        free(v);
        return -ENOMEM;
    }
    tg->hdrs[tg->nhdrs++] = (struct load_header){.name = n, .value = v};
    return 0;
}

/* Checks that host:port is the one every target uses; the first target sets it and gets its
 * authority "host:port" in *auth. */
static int match_origin(struct load_targets *t, const char *host, uint16_t port, char **auth,
                        char *err, size_t errlen)
{
    size_t n = strlen(host) + sizeof(":65535");
    char *got = malloc(n);
    if (!got)
        return fail(err, errlen, -ENOMEM, "out of memory");
    snprintf(got, n, "%s:%u", host, (unsigned)port);
    if (!t->host) {
        *auth = got;
        return 0;
    }
    int rc = 0;
    if (strcasecmp(t->host, host) != 0 || t->port != port)
        rc = fail(err, errlen, -EINVAL,
                  "all targets must use the same host and port (got %s, expected %s)", got,
                  t->authority);
    free(got);
    return rc;
}

/* Appends one target; on failure t is unchanged. */
static int add_target(struct load_targets *t, const char *method, const char *url, char *err,
                      size_t errlen)
{
    if (!is_token(method, strlen(method)))
        return fail(err, errlen, -EINVAL, "method '%s' is not a token", method);
    char *host, *path, *auth = NULL, *m = NULL;
    uint16_t port;
    int rc = load_url_parse(url, &host, &port, &path, err, errlen);
    if (rc)
        return rc;
    rc = match_origin(t, host, port, &auth, err, errlen);
    if (rc == 0 && (grow((void **)&t->v, t->n, sizeof(*t->v)) || !(m = strdup(method))))
        rc = fail(err, errlen, -ENOMEM, "out of memory");
    if (rc) {
        free(host);
        free(path);
        free(auth);
        return rc;
    }
    t->v[t->n++] = (struct load_target){.method = m, .path = path};
    if (t->host) {
        free(host);
        return 0;
    }
    t->host = host;
    t->port = port;
    t->authority = auth;
    return 0;
}

int load_targets_add_url(struct load_targets *t, const char *method, const char *url, char *err,
                         size_t errlen)
{
    return add_target(t, method, url, err, errlen);
}

/* ---- targets files ---- */

/* The first whitespace-separated word of s, as a length. */
static size_t word_len(const char *s)
{
    return strcspn(s, BLANKS);
}

static bool word_has_scheme(const char *w)
{
    const char *sep = strstr(w, "://");
    return sep && (size_t)(sep - w) < word_len(w);
}

/* "Name: value" seen where a target must start (the first word holds a ':' that is no "://"). */
static bool looks_like_header(const char *s)
{
    const char *colon = strchr(s, ':');
    return colon && (size_t)(colon - s) < word_len(s) && strncmp(colon, "://", 3) != 0;
}

/* "METHOD scheme://..." seen where a header was expected. */
static bool looks_like_target(const char *s)
{
    size_t n = word_len(s);
    if (!is_token(s, n) || s[n] == '\0')
        return false;
    const char *next = s + n + strspn(s + n, BLANKS);
    return word_has_scheme(next);
}

/* "METHOD URL". The URL is the first later word holding "://" and the method is everything
 * before it, so "G ET http://h/" is reported as a bad method rather than a bad URL. Without
 * such a word the line must be exactly two words, the second then reported as a bad URL. */
static int parse_target_line(struct load_targets *t, const struct file_ctx *c, char *line)
{
    char *url = NULL, *second = NULL, *w = line + word_len(line);
    size_t words = 1;
    for (w += strspn(w, BLANKS); *w; w += strspn(w, BLANKS)) {
        second = second ? second : w;
        url = url || !word_has_scheme(w) ? url : w;
        words++;
        w += word_len(w);
    }
    if (!url && words != 2)
        return line_fail(c, -EINVAL, "expected 'METHOD URL'");
    url = url ? url : second;
    size_t ulen = word_len(url);
    if (url[ulen] != '\0')
        return line_fail(c, -EINVAL, "unexpected text after the URL: '%s'",
                         url + ulen + strspn(url + ulen, BLANKS));
    url[-1] = '\0';
    char msg[MSG_MAX];
    int rc = add_target(t, trim(line), url, msg, sizeof(msg));
    return rc ? line_fail(c, rc, "%s", msg) : 0;
}

static int parse_header_line(struct load_target *tg, const struct file_ctx *c, char *line)
{
    char *colon = strchr(line, ':');
    if (!colon)
        return line_fail(c, -EINVAL, "header line without ':'");
    size_t nlen = (size_t)(colon - line);
    if (nlen == 0)
        return line_fail(c, -EINVAL, "empty header name");
    if (!is_token(line, nlen))
        return line_fail(c, -EINVAL, "header name '%.*s' is not a token", (int)nlen, line);
    char *value = trim(colon + 1);
    if (!is_field_value(value))
        return line_fail(c, -EINVAL, "header '%.*s' has a control character in its value",
                         (int)nlen, line);
    *colon = '\0';
    if (strcasecmp(line, "Host") == 0 && find_header(tg, tg->nhdrs, "Host"))
        return line_fail(c, -EINVAL, "duplicate Host header");
    return add_header(tg, line, nlen, value) ? line_fail(c, -ENOMEM, "out of memory") : 0;
}

/* "@path": the body, from path relative to the directory of the targets file. */
static int parse_body_line(struct load_target *tg, const struct file_ctx *c, const char *line)
{
    const char *name = line + 1 + strspn(line + 1, BLANKS);
    if (*name == '\0')
        return line_fail(c, -EINVAL, "'@' without a body file name");
    const char *slash = strrchr(c->file, '/');
    size_t dlen = name[0] == '/' || !slash ? 0 : (size_t)(slash - c->file) + 1;
    char *full = malloc(dlen + strlen(name) + 1);
    if (!full)
        return line_fail(c, -ENOMEM, "out of memory");
    memcpy(full, c->file, dlen);
    strcpy(full + dlen, name);
    int rc = slurp(full, &tg->body, &tg->body_len);
    free(full);
    if (rc)
        return line_fail(c, rc, "cannot read body file '%s': %s", name, strerror(-rc));
    return 0;
}

static int parse_line(struct load_targets *t, const struct file_ctx *c, enum block_state *st,
                      char *line)
{
    line = trim(line);
    if (*line == '\0') {
        *st = BLOCK_NONE;
        return 0;
    }
    if (*line == '#')
        return 0;
    struct load_target *cur = t->n ? &t->v[t->n - 1] : NULL;
    switch (*st) {
    case BLOCK_NONE:
        if (*line == '@')
            return line_fail(c, -EINVAL, "body line '%s' before any target line", line);
        if (looks_like_header(line))
            return line_fail(c, -EINVAL, "header line before any target line ('METHOD URL')");
        *st = BLOCK_HEADERS;
        return parse_target_line(t, c, line);
    case BLOCK_HEADERS:
        if (*line == '@') {
            *st = BLOCK_BODY;
            return parse_body_line(cur, c, line);
        }
        if (looks_like_target(line))
            return line_fail(c, -EINVAL, "expected a blank line before the next target");
        return parse_header_line(cur, c, line);
    case BLOCK_BODY:
        break;
    }
    return line_fail(c, -EINVAL,
                     "the '@body' line must be the last line of a target "
                     "(expected a blank line)");
}

static int parse_buffer(struct load_targets *t, struct file_ctx *c, char *buf, size_t len)
{
    enum block_state st = BLOCK_NONE;
    char *p = buf, *end = buf + len;
    if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
        p += 3; /* a UTF-8 BOM from an editor would otherwise make the first method invalid */
    while (p < end) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        c->line++;
        if (memchr(p, '\0', (size_t)(le - p)))
            return line_fail(c, -EINVAL, "NUL byte in line");
        *le = '\0'; /* buf has a NUL after its last byte, so le == end is in bounds */
        int rc = parse_line(t, c, &st, p);
        if (rc)
            return rc;
        p = le + 1;
    }
    return 0;
}

int load_targets_parse_file(struct load_targets *t, const char *path, char *err, size_t errlen)
{
    char *buf;
    size_t len;
    int rc = slurp(path, &buf, &len);
    if (rc)
        return fail(err, errlen, rc, "%s: cannot read: %s", path, strerror(-rc));
    size_t n0 = t->n;
    bool had_host = t->host != NULL;
    struct file_ctx c = {.file = path, .err = err, .errlen = errlen};
    rc = parse_buffer(t, &c, buf, len);
    free(buf);
    if (rc == 0 && t->n == n0)
        rc = fail(err, errlen, -EINVAL, "%s: no targets", path);
    if (rc)
        truncate_targets(t, n0, had_host);
    return rc;
}

/* ---- finishing: bodies, extra headers, request bytes ---- */

static int check_extras(const struct load_header *extra, size_t nextra, char *err, size_t errlen)
{
    for (size_t i = 0; i < nextra; i++) {
        if (!is_token(extra[i].name, strlen(extra[i].name)))
            return fail(err, errlen, -EINVAL, "-H: header name '%s' is not a token", extra[i].name);
        if (!is_field_value(extra[i].value))
            return fail(err, errlen, -EINVAL,
                        "-H: header '%s' has a control character in its value", extra[i].name);
    }
    return 0;
}

/* Gives every target without a body its own copy of body_file's contents. */
static int apply_body_file(struct load_targets *t, const char *body_file, char *err, size_t errlen)
{
    char *data;
    size_t len;
    int rc = slurp(body_file, &data, &len);
    if (rc)
        return fail(err, errlen, rc, "cannot read body file '%s': %s", body_file, strerror(-rc));
    for (size_t i = 0; i < t->n && rc == 0; i++) {
        struct load_target *tg = &t->v[i];
        if (tg->body)
            continue;
        tg->body = malloc(len + 1);
        if (!tg->body) {
            rc = fail(err, errlen, -ENOMEM, "out of memory");
            break;
        }
        memcpy(tg->body, data, len + 1);
        tg->body_len = len;
    }
    free(data);
    return rc;
}

/* Appends the extras the target does not set itself (compared with its own headers only, so
 * two -H of one name both go out, as two -H on curl would). */
static int add_extras(struct load_target *tg, const struct load_header *extra, size_t nextra)
{
    size_t own = tg->nhdrs;
    for (size_t i = 0; i < nextra; i++) {
        if (find_header(tg, own, extra[i].name))
            continue;
        if (add_header(tg, extra[i].name, strlen(extra[i].name), extra[i].value))
            return -ENOMEM;
    }
    return 0;
}

static char *put(char *p, const char *s, size_t n)
{
    memcpy(p, s, n);
    return p + n;
}

static char *put_str(char *p, const char *s)
{
    return put(p, s, strlen(s));
}

/* Lays out the request: request line, Host first, the other headers in order, then
 * Content-Length when the body is not framed by the target's own headers, then the body. */
static int build_req(struct load_target *tg, const char *authority)
{
    const struct load_header *host = find_header(tg, tg->nhdrs, "Host");
    bool framed = find_header(tg, tg->nhdrs, "Content-Length") ||
                  find_header(tg, tg->nhdrs, "Transfer-Encoding");
    char clen[48] = "";
    if (tg->body && !framed)
        snprintf(clen, sizeof(clen), "Content-Length: %zu\r\n", tg->body_len);
    const char *hval = host ? host->value : authority;
    size_t len = strlen(tg->method) + 1 + strlen(tg->path) + sizeof(" HTTP/1.1\r\n") - 1;
    len += sizeof("Host: \r\n") - 1 + strlen(hval);
    for (size_t i = 0; i < tg->nhdrs; i++)
        if (&tg->hdrs[i] != host)
            len += strlen(tg->hdrs[i].name) + 2 + strlen(tg->hdrs[i].value) + 2;
    len += strlen(clen) + 2 + tg->body_len;
    char *req = malloc(len + 1), *p = req;
    if (!req)
        return -ENOMEM;
    p = put_str(put_str(put_str(put_str(p, tg->method), " "), tg->path), " HTTP/1.1\r\n");
    p = put_str(put_str(put_str(p, "Host: "), hval), "\r\n");
    for (size_t i = 0; i < tg->nhdrs; i++)
        if (&tg->hdrs[i] != host)
            p = put_str(put_str(put_str(put_str(p, tg->hdrs[i].name), ": "), tg->hdrs[i].value),
                        "\r\n");
    p = put_str(put_str(p, clen), "\r\n");
    if (tg->body_len)
        p = put(p, tg->body, tg->body_len);
    *p = '\0';
    free(tg->req);
    tg->req = req;
    tg->req_len = len;
    tg->head = strcmp(tg->method, "HEAD") == 0;
    return 0;
}

int load_targets_finish(struct load_targets *t, const struct load_header *extra, size_t nextra,
                        const char *body_file, char *err, size_t errlen)
{
    if (t->n == 0)
        return fail(err, errlen, -EINVAL, "no targets");
    int rc = check_extras(extra, nextra, err, errlen);
    if (rc == 0 && body_file)
        rc = apply_body_file(t, body_file, err, errlen);
    for (size_t i = 0; i < t->n && rc == 0; i++) {
        struct load_target *tg = &t->v[i];
        if (add_extras(tg, extra, nextra))
            return fail(err, errlen, -ENOMEM, "out of memory");
        if (count_headers(tg, "Host") > 1)
            return fail(err, errlen, -EINVAL, "%s %s: more than one Host header", tg->method,
                        tg->path);
        rc = build_req(tg, t->authority) ? fail(err, errlen, -ENOMEM, "out of memory") : 0;
    }
    return rc;
}

void load_targets_free(struct load_targets *t)
{
    truncate_targets(t, 0, false);
    free(t->v);
    t->v = NULL;
}
