/* SPDX-License-Identifier: MIT */
/*
 * test_cors_origin: origin parsing and matching for CORS (mw_cors.h). Exact origins (case of
 * scheme and host, default and explicit ports), wildcard subdomains against the bare domain,
 * lookalikes and suffix tricks, "null", IP literals, and the patterns and origins that must be
 * refused. Every input is copied into an exactly sized heap buffer so ASan catches a read past
 * its end.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "mw_cors.h"

#include "check.h"

static struct coil_str exact(const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n ? n : 1);
    CHECK(p);
    memcpy(p, s, n);
    return (struct coil_str){p, n};
}

static int parse(const char *s, bool pattern, struct coil__cors_origin *o)
{
    struct coil_str x = exact(s);
    int rc = coil__cors_origin_parse(x, pattern, o);
    free((void *)x.ptr);
    return rc;
}

/* Does origin match pattern? The pattern must parse. */
static bool matches(const char *pattern, const char *origin)
{
    struct coil_str p = exact(pattern), o = exact(origin);
    struct coil__cors_origin a;
    CHECK(coil__cors_origin_parse(p, true, &a) == 0);
    bool m = coil__cors_origin_match(&a, o);
    free((void *)p.ptr);
    free((void *)o.ptr);
    return m;
}

static void test_parse(void)
{
    struct coil__cors_origin o;
    static const char text[] = "https://App.Example.com";
    CHECK(coil__cors_origin_parse((struct coil_str){text, sizeof(text) - 1}, false, &o) == 0);
    CHECK(o.scheme.ptr == text && o.scheme.len == 5);
    CHECK(o.host.ptr == text + 8 && o.host.len == 15);
    CHECK(o.port == 443 && !o.wildcard && !o.null);
    CHECK(parse("http://localhost:3000", false, &o) == 0 && o.port == 3000);
    CHECK(parse("http://a.example", false, &o) == 0 && o.port == 80);
    CHECK(parse("ws://a.example", false, &o) == 0 && o.port == 80);
    CHECK(parse("wss://a.example", false, &o) == 0 && o.port == 443);
    CHECK(parse("app://x", false, &o) == 0 && o.port == 0); /* no default: as given */
    CHECK(parse("chrome-extension://abcdef", false, &o) == 0);
    CHECK(parse("http://[::1]:8080", false, &o) == 0 && o.port == 8080 && o.host.len == 5);
    CHECK(parse("http://192.0.2.7", false, &o) == 0);
    CHECK(parse("null", false, &o) == 0 && o.null);
    CHECK(parse("https://*.example.com", true, &o) == 0 && o.wildcard && o.host.len == 11);
    CHECK(parse("https://*.example.com:8443", true, &o) == 0 && o.port == 8443);

    const char *bad[] = {
        "",
        "example.com",
        "https://",
        "https:/a.com",
        "https//a.com",
        "https://a.com/",
        "https://a.com/path",
        "https://a.com?x",
        "https://a.com#f",
        "https://user@a.com",
        "https://a.com:",
        "https://a.com:0",
        "https://a.com:65536",
        "https://a.com:123456",
        "https://a.com:80a",
        "https://a.com:-1",
        "https://a..com",
        "https://.a.com",
        "https://a.com.",
        "https://a b.com",
        "https://a.com\r\n",
        "1http://a.com",
        "*://a.com",
        "https://[::1",
        "https://[]",
        "https://[::g]",
        "https://*.example.com", /* as an origin: a wildcard is never sent */
        " https://a.com",
        "nul",
        "nulls",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        CHECK(parse(bad[i], false, &o) == -EINVAL);
    const char *bad_patterns[] = {
        "https://*",         "https://*.",       "https://*.*.example.com",
        "https://a.*.com",   "https://*a.com",   "https://*.[::1]",
        "https://**.a.com",  "https://*.a.com/", "*",
        "https://*.a.com:0", "*.example.com",
    };
    for (size_t i = 0; i < sizeof(bad_patterns) / sizeof(bad_patterns[0]); i++)
        CHECK(parse(bad_patterns[i], true, &o) == -EINVAL);
}

static void test_exact(void)
{
    const char *p = "https://app.example.com";
    CHECK(matches(p, "https://app.example.com"));
    CHECK(matches(p, "HTTPS://APP.EXAMPLE.COM"));
    CHECK(matches(p, "https://app.example.com:443"));
    CHECK(!matches(p, "http://app.example.com"));
    CHECK(!matches(p, "https://app.example.com:8443"));
    CHECK(!matches(p, "https://app.example.com/"));
    CHECK(!matches(p, "https://app.example.com.evil.org"));
    CHECK(!matches(p, "https://evilapp.example.com"));
    CHECK(!matches(p, "https://x.app.example.com")); /* not a wildcard */
    CHECK(!matches(p, "https://app.example.co"));
    CHECK(!matches(p, "https://app.example.comm"));
    CHECK(!matches(p, "null"));
    CHECK(!matches(p, ""));
    CHECK(matches("https://app.example.com:443", "https://app.example.com"));
    CHECK(matches("http://localhost:3000", "http://localhost:3000"));
    CHECK(!matches("http://localhost:3000", "http://localhost"));
    CHECK(!matches("http://localhost:3000", "http://localhost:30000"));
    CHECK(!matches("http://localhost:3000", "http://localhost:300"));
    CHECK(matches("http://[::1]:8080", "http://[::1]:8080"));
    CHECK(!matches("http://[::1]:8080", "http://[::2]:8080"));
}

static void test_wildcard(void)
{
    const char *p = "https://*.example.com";
    CHECK(matches(p, "https://a.example.com"));
    CHECK(matches(p, "https://a.b.example.com"));
    CHECK(matches(p, "https://A.Example.COM"));
    CHECK(matches(p, "https://x-1.example.com:443"));
    CHECK(!matches(p, "https://example.com")); /* the bare domain is not a subdomain */
    CHECK(!matches(p, "https://evil-example.com"));
    CHECK(!matches(p, "https://aexample.com"));
    CHECK(!matches(p, "https://.example.com"));
    CHECK(!matches(p, "https://a..example.com"));
    CHECK(!matches(p, "http://a.example.com"));
    CHECK(!matches(p, "https://a.example.com:444"));
    CHECK(!matches(p, "https://a.example.com.evil.org"));
    CHECK(!matches(p, "https://a.example.co"));
    CHECK(!matches(p, "https://a.example.com/"));
    CHECK(!matches(p, "null"));
    CHECK(matches("http://*.local.test:8080", "http://dev.local.test:8080"));
    CHECK(!matches("http://*.local.test:8080", "http://dev.local.test"));
}

static void test_null(void)
{
    CHECK(matches("null", "null"));
    CHECK(matches("null", "NULL"));
    CHECK(!matches("null", "https://a.example.com"));
    CHECK(!matches("null", ""));
    CHECK(!matches("null", "nul"));
    CHECK(!matches("https://a.example.com", "null"));
}

int main(void)
{
    test_parse();
    test_exact();
    test_wildcard();
    test_null();
    return 0;
}
