/* SPDX-License-Identifier: MIT */
/*
 * test_static_path: how a static route turns the wildcard's raw bytes into a path under its
 * root (coil__static_path): percent-decoding (an encoded slash is a slash), merged slashes,
 * directories (a trailing slash, or nothing), and every refusal: "." and ".." however encoded,
 * hidden names unless allowed, NUL and control bytes, malformed escapes (400), a segment over
 * 255 bytes and a path longer than the buffer. Inputs are copied into exactly sized heap
 * buffers so that ASan catches any read past their end.
 */
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "internal.h"

static char out[COIL__STATIC_PATH_MAX];

/* The status for raw; on 0 or COIL__STATIC_DIR, out holds the path. */
static int run(const char *raw, size_t n, bool hidden)
{
    char *p = malloc(n ? n : 1);
    CHECK(p);
    memcpy(p, raw, n);
    size_t len = 12345;
    memset(out, 'x', sizeof(out));
    int st = coil__static_path(p, n, hidden, out, sizeof(out), &len);
    free(p);
    if (st == 0 || st == COIL__STATIC_DIR)
        CHECK(len == strlen(out));
    return st;
}

static void ok(const char *raw, const char *want)
{
    CHECK(run(raw, strlen(raw), false) == 0);
    CHECK(!strcmp(out, want));
}

static void dir(const char *raw, const char *want)
{
    CHECK(run(raw, strlen(raw), false) == COIL__STATIC_DIR);
    CHECK(!strcmp(out, want));
}

static void refused(const char *raw, int status)
{
    CHECK(run(raw, strlen(raw), false) == status);
}

int main(void)
{
    ok("app.js", "app.js");
    ok("css/site.css", "css/site.css");
    ok("a//b///c.txt", "a/b/c.txt");
    ok("/lead.txt", "lead.txt");
    ok("a%2Fb.txt", "a/b.txt"); /* as nginx: %2F is a slash */
    ok("%41%62c", "Abc");
    ok("sp%20ace", "sp ace");
    ok("a..b", "a..b");
    ok("back\\slash", "back\\slash"); /* an ordinary byte on Linux */
    ok("%252e%252e", "%2e%2e");       /* decoded once: a literal name */
    ok("caf%C3%A9", "caf\xc3\xa9");
    dir("", "");
    dir("/", "");
    dir("docs/", "docs");
    dir("docs//", "docs");
    dir("a/b/", "a/b");

    refused("..", 404);
    refused("../etc/passwd", 404);
    refused("a/../../etc/passwd", 404);
    refused("a/./b", 404);
    refused(".", 404);
    refused("%2e%2e/x", 404);
    refused("%2E%2E%2Fx", 404);
    refused("..%2fx", 404);
    refused(".%2e/x", 404);
    refused("a/%2e", 404);
    refused(".env", 404);
    refused("..a", 404); /* not a parent, but a hidden name */
    refused(".git/config", 404);
    refused("%2ehidden", 404);
    refused("a/.htaccess", 404);
    refused("x%00.txt", 404);
    refused("x%0a.txt", 404);
    refused("x%7f", 404);
    refused("x\x01y", 404);
    refused("%zz", 400);
    refused("%4", 400);
    refused("abc%", 400);
    refused("%%41", 400);
    CHECK(run("x\0y", 3, false) == 404);

    /* Hidden names when allowed; never "." or "..". */
    CHECK(run(".well-known/a", 13, true) == 0 && !strcmp(out, ".well-known/a"));
    CHECK(run("..", 2, true) == 404);
    CHECK(run("a/./b", 5, true) == 404);
    CHECK(run("..a", 3, true) == 0);

    /* A segment over 255 bytes, a path over the buffer. */
    char seg[300];
    memset(seg, 'a', sizeof(seg));
    CHECK(run(seg, 255, false) == 0);
    CHECK(run(seg, 256, false) == 404);
    static char big[COIL__STATIC_PATH_MAX + 8];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = i % 100 == 99 ? '/' : 'b';
    CHECK(run(big, COIL__STATIC_PATH_MAX - 1, false) == 0);
    CHECK(run(big, COIL__STATIC_PATH_MAX, false) == 404);
    CHECK(run(big, sizeof(big), false) == 404);
    return 0;
}
