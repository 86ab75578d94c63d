/* SPDX-License-Identifier: MIT */
/*
 * test_load_targets: coil-load's targets. URL splitting (ports, IPv6, queries, fragments, every
 * rejection with its message and the outputs left alone); targets files written into a fresh
 * mkdtemp directory and parsed (several targets, headers, comments, CRLF, blank lines at either
 * end, no final newline, bodies relative to the file's directory, binary bodies); every
 * malformed form, with the exact "FILE:LINE: what" message and t left as it was; and the
 * request bytes load_targets_finish builds, compared whole (Host first or overridden, -H
 * extras after the target's own headers and losing to them, -body files, Content-Length only
 * when the target does not frame its body itself, HEAD). Run under ASan/LSan everything must
 * be freed.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "targets.h"

#include "check.h"

#define CHECK_STR(got, want)                                                                       \
    do {                                                                                           \
        const char *g_ = (got), *w_ = (want);                                                      \
        if (!g_ || strcmp(g_, w_) != 0) {                                                          \
            fprintf(stderr, "%s:%d: CHECK_STR failed:\n  got:  '%s'\n  want: '%s'\n", __FILE__,    \
                    __LINE__, g_ ? g_ : "(null)", w_);                                             \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

/* Compares request bytes (which may hold NULs) with a string literal. */
#define CHECK_REQ(tg, want) check_bytes(__LINE__, (tg)->req, (tg)->req_len, want, sizeof(want) - 1)

static void check_bytes(int line, const char *got, size_t got_len, const char *want,
                        size_t want_len)
{
    if (got && got_len == want_len && memcmp(got, want, want_len) == 0 && got[got_len] == '\0')
        return;
    fprintf(stderr, "%s:%d: request bytes differ:\n  got (%zu):  '%.*s'\n  want (%zu): '%.*s'\n",
            __FILE__, line, got_len, (int)got_len, got ? got : "", want_len, (int)want_len, want);
    exit(1);
}

#define MAX_FILES 32

static char dir[64];           /* the mkdtemp directory */
static char *files[MAX_FILES]; /* paths created in it, removed at the end */
static size_t nfiles;

/* Writes data[0..len) to dir/name (creating it once) and returns its path. */
static const char *write_file(const char *name, const char *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    CHECK(f);
    CHECK(fwrite(data, 1, len, f) == len);
    CHECK(fclose(f) == 0);
    for (size_t i = 0; i < nfiles; i++)
        if (strcmp(files[i], path) == 0)
            return files[i];
    CHECK(nfiles < MAX_FILES);
    files[nfiles] = strdup(path);
    CHECK(files[nfiles]);
    return files[nfiles++];
}

#define WRITE(name, lit) write_file((name), (lit), sizeof(lit) - 1)

/* ---- URLs ---- */

static void url_ok(const char *url, const char *host, uint16_t port, const char *path)
{
    char *h = NULL, *p = NULL, err[256] = "";
    uint16_t pt = 0;
    int rc = load_url_parse(url, &h, &pt, &p, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "url '%s': %s\n", url, err);
    CHECK(rc == 0);
    CHECK_STR(h, host);
    CHECK(pt == port);
    CHECK_STR(p, path);
    free(h);
    free(p);
}

static void url_bad(const char *url, const char *msg)
{
    char *h = (char *)"untouched", *p = (char *)"untouched", err[256] = "";
    uint16_t pt = 7;
    CHECK(load_url_parse(url, &h, &pt, &p, err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, msg);
    CHECK(strcmp(h, "untouched") == 0 && strcmp(p, "untouched") == 0 && pt == 7);
}

static void test_url(void)
{
    url_ok("http://localhost:8080/plaintext", "localhost", 8080, "/plaintext");
    url_ok("http://127.0.0.1/", "127.0.0.1", 80, "/");
    url_ok("http://h", "h", 80, "/");
    url_ok("http://h:1", "h", 1, "/");
    url_ok("http://h:65535/x", "h", 65535, "/x");
    url_ok("http://h:08080/x", "h", 8080, "/x");
    url_ok("http://h?x=1&y=2", "h", 80, "/?x=1&y=2");
    url_ok("http://h:81?x", "h", 81, "/?x");
    url_ok("http://h/a/b?c=d#frag", "h", 80, "/a/b?c=d");
    url_ok("http://h#frag", "h", 80, "/");
    url_ok("http://h/a%20b", "h", 80, "/a%20b");
    url_ok("http://[::1]:9000/x", "[::1]", 9000, "/x");
    url_ok("http://[::1]", "[::1]", 80, "/");
    url_ok("http://[2001:db8::1]:65535/?q", "[2001:db8::1]", 65535, "/?q");
    url_ok("http://[::ffff:127.0.0.1]/", "[::ffff:127.0.0.1]", 80, "/");
    url_ok("HTTP://Example.COM:80/A", "Example.COM", 80, "/A");
    url_ok("http://my-host.example_1~/", "my-host.example_1~", 80, "/");

    url_bad("https://h/", "https is not supported (http:// only)");
    url_bad("HTTPS://h:443/", "https is not supported (http:// only)");
    url_bad("ftp://h/", "unsupported scheme 'ftp' in URL 'ftp://h/' (http:// only)");
    url_bad("localhost:8080/x", "URL 'localhost:8080/x' must start with http://");
    url_bad("/plaintext", "URL '/plaintext' must start with http://");
    url_bad("://h/", "URL '://h/' must start with http://");
    url_bad("", "URL '' must start with http://");
    url_bad("ht tp://h/", "URL 'ht tp://h/' contains a space, control or non-ASCII byte "
                          "(percent-encode it)");
    url_bad("http:///x", "URL 'http:///x' has no host");
    url_bad("http://", "URL 'http://' has no host");
    url_bad("http://:8080/", "URL 'http://:8080/' has no host");
    url_bad("http://?x", "URL 'http://?x' has no host");
    url_bad("http://h:0/", "port 0 in URL 'http://h:0/' is out of range (1..65535)");
    url_bad("http://h:70000/", "port 70000 in URL 'http://h:70000/' is out of range (1..65535)");
    url_bad("http://h:99999999999999999999999/",
            "port 99999999999999999999999 in URL 'http://h:99999999999999999999999/' is out of "
            "range (1..65535)");
    url_bad("http://h:abc/", "port 'abc' in URL 'http://h:abc/' is not a number");
    url_bad("http://h:-1/", "port '-1' in URL 'http://h:-1/' is not a number");
    url_bad("http://h:/", "empty port in URL 'http://h:/'");
    url_bad("http://h:80:81/", "port '80:81' in URL 'http://h:80:81/' is not a number");
    url_bad("http://user@h/", "user info in URL 'http://user@h/' is not supported");
    url_bad("http://h%41/", "invalid character '%' in the host of URL 'http://h%41/'");
    url_bad("http://[::1/", "unterminated '[' in the host of URL 'http://[::1/'");
    url_bad("http://[::1]x/", "unexpected 'x' after the host of URL 'http://[::1]x/'");
    url_bad("http://[]/", "URL 'http://[]/' has no host");
    url_bad("http://[zz::1]/", "invalid character 'z' in the host of URL 'http://[zz::1]/'");
    url_bad("http://[1.2.3.4]/", "'[1.2.3.4]' in URL 'http://[1.2.3.4]/' is not an IPv6 address");
    url_bad("http://h/a b", "URL 'http://h/a b' contains a space, control or non-ASCII byte "
                            "(percent-encode it)");
    url_bad("http://h/a\tb", "URL 'http://h/a\tb' contains a space, control or non-ASCII byte "
                             "(percent-encode it)");
    url_bad("http://h/\xc3\xa9", "URL 'http://h/\xc3\xa9' contains a space, control or "
                                 "non-ASCII byte (percent-encode it)");

    /* A short or missing error buffer is never overrun. */
    char *h, *p, small[8];
    uint16_t pt;
    memset(small, 'x', sizeof(small));
    CHECK(load_url_parse("https://h/", &h, &pt, &p, small, sizeof(small)) == -EINVAL);
    CHECK_STR(small, "https i");
    CHECK(load_url_parse("https://h/", &h, &pt, &p, NULL, 0) == -EINVAL);
}

/* ---- single URLs ---- */

static void test_add_url(void)
{
    struct load_targets t = {0};
    char err[256] = "";
    CHECK(load_targets_add_url(&t, "GET", "http://localhost:8080/a?b=1#c", err, sizeof(err)) == 0);
    CHECK(t.n == 1);
    CHECK_STR(t.host, "localhost");
    CHECK(t.port == 8080);
    CHECK_STR(t.authority, "localhost:8080");
    CHECK_STR(t.v[0].method, "GET");
    CHECK_STR(t.v[0].path, "/a?b=1");
    CHECK(t.v[0].nhdrs == 0 && t.v[0].body == NULL && t.v[0].req == NULL);

    /* Host names compare without case; the first spelling stays. */
    CHECK(load_targets_add_url(&t, "POST", "http://LocalHost:8080", err, sizeof(err)) == 0);
    CHECK(t.n == 2);
    CHECK_STR(t.v[1].path, "/");
    CHECK_STR(t.authority, "localhost:8080");

    CHECK(load_targets_add_url(&t, "GET", "http://localhost/", err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, "all targets must use the same host and port (got localhost:80, expected "
                   "localhost:8080)");
    CHECK(load_targets_add_url(&t, "GET", "http://127.0.0.1:8080/", err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, "all targets must use the same host and port (got 127.0.0.1:8080, expected "
                   "localhost:8080)");
    CHECK(load_targets_add_url(&t, "G ET", "http://localhost:8080/", err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, "method 'G ET' is not a token");
    CHECK(load_targets_add_url(&t, "", "http://localhost:8080/", err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, "method '' is not a token");
    CHECK(load_targets_add_url(&t, "GET", "https://localhost:8080/", err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, "https is not supported (http:// only)");
    CHECK(t.n == 2); /* failures add nothing */
    load_targets_free(&t);
    CHECK(t.n == 0 && t.v == NULL && t.host == NULL && t.authority == NULL);

    /* Default port: the authority still names it; IPv6 keeps its brackets. */
    CHECK(load_targets_add_url(&t, "GET", "http://example.com/x", err, sizeof(err)) == 0);
    CHECK_STR(t.authority, "example.com:80");
    load_targets_free(&t);
    CHECK(load_targets_add_url(&t, "M-SEARCH", "http://[::1]:9000/x", err, sizeof(err)) == 0);
    CHECK_STR(t.host, "[::1]");
    CHECK_STR(t.authority, "[::1]:9000");
    /* Many targets: the arrays grow past their first sizes. */
    for (int i = 0; i < 100; i++)
        CHECK(load_targets_add_url(&t, "GET", "http://[::1]:9000/y", err, sizeof(err)) == 0);
    CHECK(t.n == 101);
    CHECK_STR(t.v[100].path, "/y");
    CHECK(load_targets_finish(&t, NULL, 0, NULL, err, sizeof(err)) == 0);
    CHECK_REQ(&t.v[0], "M-SEARCH /x HTTP/1.1\r\nHost: [::1]:9000\r\n\r\n");
    CHECK_REQ(&t.v[100], "GET /y HTTP/1.1\r\nHost: [::1]:9000\r\n\r\n");
    load_targets_free(&t);
}

/* ---- valid files ---- */

static void test_file_valid(void)
{
    char err[512] = "";
    WRITE("body.txt", "hello");
    WRITE("sub/.keep", ""); /* fails unless the directory exists: made in main */
    write_file("sub/bin.dat", "a\0b\r\n", 5);
    /* Blank lines and comments first, comments inside blocks, an indented comment, trailing
     * spaces, a tab before a value, lower-case names kept as written, a query, a binary body
     * from a subdirectory, no final newline. */
    const char *f = WRITE("t.txt", "\n"
                                   "   \n"
                                   "# leading comment\n"
                                   "GET http://localhost:8080/plaintext\n"
                                   "X-A: 1\n"
                                   "\n"
                                   "\n"
                                   "  # indented comment\n"
                                   "POST   http://localhost:8080/echo?x=1#frag  \n"
                                   "content-type:\t text/plain  \n"
                                   "# between\n"
                                   "X-Empty:\n"
                                   "@body.txt\n"
                                   "\n"
                                   "PUT http://LOCALHOST:8080/bin\n"
                                   "@ sub/bin.dat\n"
                                   "# after the body\n"
                                   "\n"
                                   "HEAD http://localhost:8080\n"
                                   "Accept: */*");
    struct load_targets t = {0};
    int rc = load_targets_parse_file(&t, f, err, sizeof(err));
    if (rc)
        fprintf(stderr, "%s\n", err);
    CHECK(rc == 0);
    CHECK(t.n == 4);
    CHECK_STR(t.authority, "localhost:8080");
    CHECK_STR(t.v[0].method, "GET");
    CHECK_STR(t.v[0].path, "/plaintext");
    CHECK(t.v[0].nhdrs == 1);
    CHECK_STR(t.v[0].hdrs[0].name, "X-A");
    CHECK_STR(t.v[0].hdrs[0].value, "1");
    CHECK(t.v[0].body == NULL);
    CHECK_STR(t.v[1].path, "/echo?x=1");
    CHECK(t.v[1].nhdrs == 2);
    CHECK_STR(t.v[1].hdrs[0].name, "content-type");
    CHECK_STR(t.v[1].hdrs[0].value, "text/plain");
    CHECK_STR(t.v[1].hdrs[1].value, "");
    CHECK(t.v[1].body_len == 5 && memcmp(t.v[1].body, "hello", 5) == 0);
    CHECK(t.v[2].body_len == 5 && memcmp(t.v[2].body, "a\0b\r\n", 5) == 0);
    CHECK(t.v[3].nhdrs == 1);
    CHECK_STR(t.v[3].hdrs[0].value, "*/*");

    CHECK(load_targets_finish(&t, NULL, 0, NULL, err, sizeof(err)) == 0);
    CHECK_REQ(&t.v[0], "GET /plaintext HTTP/1.1\r\nHost: localhost:8080\r\nX-A: 1\r\n\r\n");
    CHECK_REQ(&t.v[1], "POST /echo?x=1 HTTP/1.1\r\nHost: localhost:8080\r\n"
                       "content-type: text/plain\r\nX-Empty: \r\nContent-Length: 5\r\n\r\nhello");
    CHECK_REQ(&t.v[2], "PUT /bin HTTP/1.1\r\nHost: localhost:8080\r\nContent-Length: 5\r\n\r\n"
                       "a\0b\r\n");
    CHECK_REQ(&t.v[3], "HEAD / HTTP/1.1\r\nHost: localhost:8080\r\nAccept: */*\r\n\r\n");
    CHECK(!t.v[0].head && !t.v[1].head && !t.v[2].head && t.v[3].head);
    load_targets_free(&t);

    /* A UTF-8 BOM before the first target. */
    f = WRITE("bom.txt", "\xef\xbb\xbfGET http://h/bom\n");
    CHECK(load_targets_parse_file(&t, f, err, sizeof(err)) == 0);
    CHECK(t.n == 1);
    CHECK_STR(t.v[0].method, "GET");
    load_targets_free(&t);

    /* CRLF line endings, an absolute body path, blank lines at the end. */
    char text[512];
    snprintf(text, sizeof(text),
             "GET http://127.0.0.1:81/a\r\nX-B:  2 \r\n\r\nPOST http://127.0.0.1:81/b\r\n"
             "Content-Type: x\r\n@%s/body.txt\r\n\r\n\r\n",
             dir);
    f = write_file("crlf.txt", text, strlen(text));
    CHECK(load_targets_parse_file(&t, f, err, sizeof(err)) == 0);
    CHECK(t.n == 2);
    CHECK_STR(t.v[0].hdrs[0].value, "2");
    CHECK(load_targets_finish(&t, NULL, 0, NULL, err, sizeof(err)) == 0);
    CHECK_REQ(&t.v[0], "GET /a HTTP/1.1\r\nHost: 127.0.0.1:81\r\nX-B: 2\r\n\r\n");
    CHECK_REQ(&t.v[1], "POST /b HTTP/1.1\r\nHost: 127.0.0.1:81\r\nContent-Type: x\r\n"
                       "Content-Length: 5\r\n\r\nhello");
    load_targets_free(&t);

    /* A file read after a URL from the command line joins it; any token method goes. */
    CHECK(load_targets_add_url(&t, "GET", "http://127.0.0.1:81/first", err, sizeof(err)) == 0);
    f = WRITE("more.txt", "PATCH http://127.0.0.1:81/p\nX-1: a\n\nPURGE http://127.0.0.1:81/q\n"
                          "\nget http://127.0.0.1:81/r\n");
    CHECK(load_targets_parse_file(&t, f, err, sizeof(err)) == 0);
    CHECK(t.n == 4);
    CHECK_STR(t.v[1].method, "PATCH");
    CHECK_STR(t.v[2].method, "PURGE");
    CHECK_STR(t.v[3].method, "get");
    load_targets_free(&t);
}

/* ---- malformed files ---- */

/* Parses content as dir/t.txt into a targets set already holding one URL and expects rc and
 * the message "dir/t.txt" + suffix, with the set left as it was. */
static void file_bad(int line, const char *content, size_t len, int want_rc, const char *suffix)
{
    const char *f = write_file("t.txt", content, len);
    char want[512], err[512] = "";
    snprintf(want, sizeof(want), "%s%s", f, suffix);
    for (int pre = 0; pre < 2; pre++) {
        struct load_targets t = {0};
        if (pre)
            CHECK(load_targets_add_url(&t, "GET", "http://h/pre", err, sizeof(err)) == 0);
        int rc = load_targets_parse_file(&t, f, err, sizeof(err));
        if (rc != want_rc || strcmp(err, want) != 0) {
            fprintf(stderr, "%s:%d: got %d '%s'\n  want %d '%s'\n", __FILE__, line, rc, err,
                    want_rc, want);
            exit(1);
        }
        CHECK(t.n == (size_t)pre);
        CHECK(pre ? strcmp(t.host, "h") == 0 && strcmp(t.authority, "h:80") == 0 && t.port == 80
                  : t.host == NULL && t.authority == NULL && t.port == 0);
        load_targets_free(&t);
    }
}

#define FILE_BAD(lit, rc, suffix) file_bad(__LINE__, (lit), sizeof(lit) - 1, (rc), (suffix))

static void test_file_malformed(void)
{
    FILE_BAD("GET\n", -EINVAL, ":1: expected 'METHOD URL'");
    FILE_BAD("http://h/\n", -EINVAL, ":1: expected 'METHOD URL'");
    FILE_BAD("GET http://h/ HTTP/1.1\n", -EINVAL, ":1: unexpected text after the URL: 'HTTP/1.1'");
    FILE_BAD("GET /x HTTP/1.1\n", -EINVAL, ":1: expected 'METHOD URL'");
    FILE_BAD("\n\nGET /x\n", -EINVAL, ":3: URL '/x' must start with http://");
    FILE_BAD("G ET http://h/\n", -EINVAL, ":1: method 'G ET' is not a token");
    FILE_BAD("GET http://h/\n\nG(T http://h/\n", -EINVAL, ":3: method 'G(T' is not a token");
    FILE_BAD("GET https://h/\n", -EINVAL, ":1: https is not supported (http:// only)");
    FILE_BAD("GET ftp://h/\n", -EINVAL,
             ":1: unsupported scheme 'ftp' in URL 'ftp://h/' "
             "(http:// only)");
    FILE_BAD("GET http://h:0/\n", -EINVAL,
             ":1: port 0 in URL 'http://h:0/' is out of range "
             "(1..65535)");
    FILE_BAD("GET http://h/\nX-A: 1\nX-A b\n", -EINVAL, ":3: header line without ':'");
    FILE_BAD("GET http://h/\n# c\n\nPOST http://h/\nX-A b\n", -EINVAL,
             ":5: header line without ':'");
    FILE_BAD("GET http://h/\nBad Name: x\n", -EINVAL, ":2: header name 'Bad Name' is not a token");
    FILE_BAD("GET http://h/\nX-A : x\n", -EINVAL, ":2: header name 'X-A ' is not a token");
    FILE_BAD("GET http://h/\n: v\n", -EINVAL, ":2: empty header name");
    FILE_BAD("GET http://h/\nX: a\rb\n", -EINVAL,
             ":2: header 'X' has a control character in its value");
    FILE_BAD("GET http://h/\nHost: a\nhost: b\n", -EINVAL, ":3: duplicate Host header");
    FILE_BAD("X-A: 1\nGET http://h/\n", -EINVAL,
             ":1: header line before any target line ('METHOD URL')");
    FILE_BAD("GET http://h/\n\nX-A: 1\n", -EINVAL,
             ":3: header line before any target line ('METHOD URL')");
    FILE_BAD("@body.txt\nGET http://h/\n", -EINVAL,
             ":1: body line '@body.txt' before any target "
             "line");
    FILE_BAD("GET http://h/\n\n@body.txt\n", -EINVAL,
             ":3: body line '@body.txt' before any "
             "target line");
    FILE_BAD("\n# c\nPOST http://h/\n@missing.bin\n", -ENOENT,
             ":4: cannot read body file 'missing.bin': No such file or directory");
    FILE_BAD("POST http://h/\n@sub\n", -EISDIR, ":2: cannot read body file 'sub': Is a directory");
    FILE_BAD("POST http://h/\n@  \n", -EINVAL, ":2: '@' without a body file name");
    FILE_BAD("POST http://h/\n@body.txt\nX-A: 1\n", -EINVAL,
             ":3: the '@body' line must be the last line of a target (expected a blank line)");
    FILE_BAD("POST http://h/\n@body.txt\n@body.txt\n", -EINVAL,
             ":3: the '@body' line must be the last line of a target (expected a blank line)");
    FILE_BAD("POST http://h/\n@body.txt\nGET http://h/\n", -EINVAL,
             ":3: the '@body' line must be the last line of a target (expected a blank line)");
    FILE_BAD("GET http://h/\nGET http://h/x\n", -EINVAL,
             ":2: expected a blank line before the next target");
    FILE_BAD("GET http://h/\n\nGET http://b/\n", -EINVAL,
             ":3: all targets must use the same host and port (got b:80, expected h:80)");
    FILE_BAD("GET http://h/\n\nGET http://h:8080/\n", -EINVAL,
             ":3: all targets must use the same host and port (got h:8080, expected h:80)");
    FILE_BAD("GET http://h/\nX: a\0b\n", -EINVAL, ":2: NUL byte in line");
    FILE_BAD("GET http://h/\r\n\r\nfoo\r\n", -EINVAL, ":3: expected 'METHOD URL'");
    FILE_BAD("GET http://h/\r\nX-A b", -EINVAL, ":2: header line without ':'");

    /* A UTF-8 BOM is skipped, so the first line's errors are about what follows it. */
    FILE_BAD("\xef\xbb\xbfG ET http://h/\n", -EINVAL, ":1: method 'G ET' is not a token");

    /* No targets at all: the message names the file without a line. */
    FILE_BAD("", -EINVAL, ": no targets");
    FILE_BAD("\n\n# only comments\n  \r\n", -EINVAL, ": no targets");

    /* The targets file itself missing. */
    struct load_targets t = {0};
    char path[128], want[256], err[256];
    snprintf(path, sizeof(path), "%s/nope.txt", dir);
    snprintf(want, sizeof(want), "%s: cannot read: No such file or directory", path);
    CHECK(load_targets_parse_file(&t, path, err, sizeof(err)) == -ENOENT);
    CHECK_STR(err, want);
    CHECK(t.n == 0 && t.host == NULL);
    load_targets_free(&t);
}

/* A body file named relative to a targets file given by a relative path. */
static void test_relative_dir(void)
{
    char cwd[512], err[256] = "";
    CHECK(getcwd(cwd, sizeof(cwd)));
    CHECK(chdir("/tmp") == 0);
    WRITE("rel.txt", "POST http://h/\n@body.txt\n");
    char rel[128];
    snprintf(rel, sizeof(rel), "%s/rel.txt", dir + strlen("/tmp/"));
    struct load_targets t = {0};
    CHECK(load_targets_parse_file(&t, rel, err, sizeof(err)) == 0);
    CHECK(t.v[0].body_len == 5);
    load_targets_free(&t);
    /* From inside the directory: the file has no '/' in its name. */
    CHECK(chdir(dir) == 0);
    CHECK(load_targets_parse_file(&t, "rel.txt", err, sizeof(err)) == 0);
    CHECK(t.v[0].body_len == 5);
    load_targets_free(&t);
    WRITE("rel2.txt", "POST http://h/\n@nothere\n");
    CHECK(load_targets_parse_file(&t, "rel2.txt", err, sizeof(err)) == -ENOENT);
    CHECK_STR(err, "rel2.txt:2: cannot read body file 'nothere': No such file or directory");
    CHECK(t.n == 0);
    load_targets_free(&t);
    CHECK(chdir(cwd) == 0);
}

/* ---- finishing: extra headers, -body, Host, framing ---- */

static void test_finish(void)
{
    char err[256] = "";
    WRITE("body.txt", "hello");
    WRITE("empty.txt", "");
    const char *f = WRITE("t.txt", "GET http://h:8080/a\n"
                                   "X-A: own\n"
                                   "\n"
                                   "POST http://h:8080/b\n"
                                   "x-a: own-lower\n"
                                   "Host: example.com\n"
                                   "@body.txt\n"
                                   "\n"
                                   "POST http://h:8080/c\n"
                                   "Content-Length: 3\n"
                                   "\n"
                                   "PUT http://h:8080/d\n"
                                   "Transfer-Encoding: chunked\n"
                                   "\n"
                                   "DELETE http://h:8080/e\n");
    struct load_targets t = {0};
    CHECK(load_targets_parse_file(&t, f, err, sizeof(err)) == 0);
    CHECK(t.n == 5);
    const struct load_header extra[] = {
        {"X-A", "extra"},
        {"User-Agent", "coil-load"},
        {"Accept", "a"},
        {"Accept", "b"},
    };
    char body[128];
    snprintf(body, sizeof(body), "%s/body.txt", dir);
    /* -body fills only the targets without one; the target's own '@' body stays. */
    WRITE("other.txt", "xyz");
    char other[128];
    snprintf(other, sizeof(other), "%s/other.txt", dir);
    CHECK(load_targets_finish(&t, extra, 4, other, err, sizeof(err)) == 0);
    CHECK_REQ(&t.v[0], "GET /a HTTP/1.1\r\nHost: h:8080\r\nX-A: own\r\nUser-Agent: coil-load\r\n"
                       "Accept: a\r\nAccept: b\r\nContent-Length: 3\r\n\r\nxyz");
    CHECK_REQ(&t.v[1], "POST /b HTTP/1.1\r\nHost: example.com\r\nx-a: own-lower\r\n"
                       "User-Agent: coil-load\r\nAccept: a\r\nAccept: b\r\n"
                       "Content-Length: 5\r\n\r\nhello");
    CHECK_REQ(&t.v[2], "POST /c HTTP/1.1\r\nHost: h:8080\r\nContent-Length: 3\r\nX-A: extra\r\n"
                       "User-Agent: coil-load\r\nAccept: a\r\nAccept: b\r\n\r\nxyz");
    CHECK_REQ(&t.v[3], "PUT /d HTTP/1.1\r\nHost: h:8080\r\nTransfer-Encoding: chunked\r\n"
                       "X-A: extra\r\nUser-Agent: coil-load\r\nAccept: a\r\nAccept: b\r\n\r\nxyz");
    CHECK_REQ(&t.v[4], "DELETE /e HTTP/1.1\r\nHost: h:8080\r\nX-A: extra\r\n"
                       "User-Agent: coil-load\r\nAccept: a\r\nAccept: b\r\n"
                       "Content-Length: 3\r\n\r\nxyz");
    for (size_t i = 0; i < t.n; i++)
        CHECK(t.v[i].head == 0 && strstr(t.v[i].req, "Connection") == NULL);
    load_targets_free(&t);

    /* -H Host overrides the URL's authority, loses to a target's own Host, goes first. */
    CHECK(load_targets_add_url(&t, "GET", "http://h/x", err, sizeof(err)) == 0);
    f = WRITE("t.txt", "HEAD http://h/y\nhost: own.example\nX-Z: z\n");
    CHECK(load_targets_parse_file(&t, f, err, sizeof(err)) == 0);
    const struct load_header host[] = {{"X-Before", "1"}, {"Host", "cli.example"}};
    CHECK(load_targets_finish(&t, host, 2, NULL, err, sizeof(err)) == 0);
    CHECK_REQ(&t.v[0], "GET /x HTTP/1.1\r\nHost: cli.example\r\nX-Before: 1\r\n\r\n");
    CHECK_REQ(&t.v[1], "HEAD /y HTTP/1.1\r\nHost: own.example\r\nX-Z: z\r\nX-Before: 1\r\n\r\n");
    CHECK(t.v[0].head == 0 && t.v[1].head == 1);
    load_targets_free(&t);

    /* An empty -body file still frames the request: Content-Length: 0. */
    CHECK(load_targets_add_url(&t, "POST", "http://h/x", err, sizeof(err)) == 0);
    char empty[128];
    snprintf(empty, sizeof(empty), "%s/empty.txt", dir);
    CHECK(load_targets_finish(&t, NULL, 0, empty, err, sizeof(err)) == 0);
    CHECK_REQ(&t.v[0], "POST /x HTTP/1.1\r\nHost: h:80\r\nContent-Length: 0\r\n\r\n");
    load_targets_free(&t);

    /* Errors: no targets, bad -H, missing -body file, two Hosts from -H. */
    CHECK(load_targets_finish(&t, NULL, 0, NULL, err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, "no targets");
    CHECK(load_targets_add_url(&t, "POST", "http://h/x", err, sizeof(err)) == 0);
    const struct load_header bad_name[] = {{"X Y", "1"}};
    CHECK(load_targets_finish(&t, bad_name, 1, NULL, err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, "-H: header name 'X Y' is not a token");
    const struct load_header bad_value[] = {{"X-Y", "a\r\nInjected: 1"}};
    CHECK(load_targets_finish(&t, bad_value, 1, NULL, err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, "-H: header 'X-Y' has a control character in its value");
    snprintf(body, sizeof(body), "%s/missing", dir);
    char want[256];
    snprintf(want, sizeof(want), "cannot read body file '%s': No such file or directory", body);
    CHECK(load_targets_finish(&t, NULL, 0, body, err, sizeof(err)) == -ENOENT);
    CHECK_STR(err, want);
    const struct load_header two_hosts[] = {{"Host", "a"}, {"host", "b"}};
    CHECK(load_targets_finish(&t, two_hosts, 2, NULL, err, sizeof(err)) == -EINVAL);
    CHECK_STR(err, "POST /x: more than one Host header");
    load_targets_free(&t);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/test_load_targets.XXXXXX");
    CHECK(mkdtemp(dir));
    char sub[128];
    snprintf(sub, sizeof(sub), "%s/sub", dir);
    CHECK(mkdir(sub, 0700) == 0);

    test_url();
    test_add_url();
    test_file_valid();
    test_file_malformed();
    test_relative_dir();
    test_finish();

    for (size_t i = 0; i < nfiles; i++) {
        CHECK(unlink(files[i]) == 0);
        free(files[i]);
    }
    CHECK(rmdir(sub) == 0);
    CHECK(rmdir(dir) == 0);
    printf("test_load_targets: ok\n");
    return 0;
}
