# SPDX-License-Identifier: MIT
"""The CORS middleware (--cors-origins and friends) on the demo binary, over raw sockets.

Preflights (OPTIONS with Origin and Access-Control-Request-Method) are answered 204 by the
middleware whatever the routes say: allowed ones carry the Access-Control-Allow-* permissions,
refused ones (origin, method or a header not allowed) none at all, and both carry Vary on the
three request fields. Other responses get Access-Control-Allow-Origin for an allowed Origin,
engine errors (404, 405) included, and Vary: Origin merged into the response's own Vary (seen on
responses proxied from an upstream that sends Vary lines). Origin patterns: exact, "*.domain"
(subdomains only, not the bare domain nor a lookalike), "null", "*". Configuration refused at
start: "*" with credentials (the Fetch standard forbids it), malformed origins and lists.
"""

import os
import subprocess

from coil_harness import CoilTestCase, clean_env, coil_bin, main, request, raw
from upstreams import FaultServer, canned

# A developer's own settings must not change what these tests see.
for _var in ("COIL_CORS_ORIGINS", "COIL_CORS_METHODS", "COIL_CORS_HEADERS", "COIL_CORS_EXPOSE",
             "COIL_CORS_CREDENTIALS", "COIL_CORS_MAX_AGE", "COIL_RATE_LIMIT",
             "COIL_RATE_LIMIT_KEY"):
    os.environ.pop(_var, None)

APP = "https://app.example.com"
PREFLIGHT_VARY = {"origin", "access-control-request-method", "access-control-request-headers"}


def acx(resp):
    """The Access-Control-* header names of a response, lowercased."""
    return {k.lower() for k, _ in resp.headers if k.lower().startswith("access-control-")}


def vary_tokens(resp):
    return [t.strip().lower() for v in resp.header_all("Vary") for t in v.split(",") if t.strip()]


class CorsCase(CoilTestCase):
    def server(self, *args, workers=1, env=None):
        return self.start("--workers", str(workers), *args, env=env)

    def ask(self, srv, method, path, headers=(), body=None):
        return self.connect(srv).request(method, path, body=body, headers=list(headers))

    def preflight(self, srv, origin, method="PUT", req_headers=None, path="/plaintext"):
        h = [("Origin", origin), ("Access-Control-Request-Method", method)]
        if req_headers is not None:
            h.append(("Access-Control-Request-Headers", req_headers))
        return self.ask(srv, "OPTIONS", path, h)

    def assertPreflightVary(self, r):
        self.assertEqual(len(r.header_all("Vary")), 1, r)
        self.assertEqual(set(vary_tokens(r)), PREFLIGHT_VARY, r)

    def assertRefusedPreflight(self, r):
        self.assertEqual(r.status, 204, r)
        self.assertEqual(acx(r), set(), "a refused preflight must carry no permission: %r" % r)
        self.assertPreflightVary(r)
        self.assertEqual(r.body, b"")


class Preflight(CorsCase):
    def setUp(self):
        self.srv = self.server("--cors-origins", APP + ", https://other.example.net:8443",
                               "--cors-max-age", "2m")

    def test_allowed(self):
        r = self.preflight(self.srv, APP, "PUT", "content-type, x-api-key")
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.body, b"")
        self.assertStandardHeaders(r)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), APP, r)
        methods = [m.strip() for m in r.header("Access-Control-Allow-Methods").split(",")]
        self.assertEqual(methods, ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"])
        self.assertEqual(r.header("Access-Control-Allow-Headers"), "content-type, x-api-key", r)
        self.assertEqual(r.header("Access-Control-Max-Age"), "120", r)
        self.assertIsNone(r.header("Access-Control-Allow-Credentials"), r)
        self.assertPreflightVary(r)
        self.assertEqual(len(r.header_all("Access-Control-Allow-Origin")), 1, r)

    def test_allowed_without_request_headers_lists_the_allowed_ones(self):
        r = self.preflight(self.srv, "https://other.example.net:8443", "DELETE")
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.header("Access-Control-Allow-Origin"),
                         "https://other.example.net:8443", r)
        allowed = {h.strip().lower() for h in r.header("Access-Control-Allow-Headers").split(",")}
        self.assertEqual(allowed, {"accept", "authorization", "content-type", "x-api-key",
                                   "x-request-id"}, r)

    def test_refused_origin(self):
        for origin in ("https://evil.example.net", "http://app.example.com",
                       "https://app.example.com:444", "https://other.example.net", "null",
                       "https://app.example.com/", "not an origin"):
            with self.subTest(origin=origin):
                self.assertRefusedPreflight(self.preflight(self.srv, origin, "PUT"))

    def test_refused_method(self):
        for method in ("PURGE", "put", "TRACE", "GET x"):
            with self.subTest(method=method):
                self.assertRefusedPreflight(self.preflight(self.srv, APP, method))

    def test_refused_header(self):
        for asked in ("x-custom", "content-type, x-custom", "content-type, bad header"):
            with self.subTest(asked=asked):
                self.assertRefusedPreflight(self.preflight(self.srv, APP, "POST", asked))

    def test_path_with_only_a_get_route(self):
        # No OPTIONS route: without CORS this is a 405 (and a 404 for an unknown path).
        for path in ("/plaintext", "/json", "/no/such/path"):
            with self.subTest(path=path):
                r = self.preflight(self.srv, APP, "GET", path=path)
                self.assertEqual(r.status, 204, r)
                self.assertEqual(r.header("Access-Control-Allow-Origin"), APP, r)

    def test_plain_options_is_not_a_preflight(self):
        # Without Access-Control-Request-Method the request goes to the routes: 405 here.
        r = self.ask(self.srv, "OPTIONS", "/plaintext", [("Origin", APP)])
        self.assertEqual(r.status, 405, r)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), APP, r)
        self.assertIsNone(r.header("Access-Control-Allow-Methods"), r)

    def test_preflights_on_one_keep_alive_connection(self):
        conn = self.connect(self.srv)
        for i in range(20):
            origin = APP if i % 2 else "https://evil.example.net"
            r = conn.request("OPTIONS", "/json", headers=[
                ("Origin", origin), ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type")])
            self.assertEqual(r.status, 204, r)
            self.assertEqual(r.header("Access-Control-Allow-Origin"),
                             APP if i % 2 else None, r)
        self.assertEqual(conn.request("GET", "/plaintext").status, 200)


class Simple(CorsCase):
    def setUp(self):
        self.srv = self.server("--cors-origins", APP, "--cors-expose", "X-Request-ID, X-Coil")

    def test_allowed_origin(self):
        r = self.ask(self.srv, "GET", "/plaintext", [("Origin", APP)])
        self.assertEqual((r.status, r.body), (200, b"Hello, World!"), r)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), APP, r)
        self.assertEqual(r.header("Access-Control-Expose-Headers"), "X-Request-ID, X-Coil", r)
        self.assertIsNone(r.header("Access-Control-Allow-Credentials"), r)
        self.assertIsNone(r.header("Access-Control-Allow-Methods"), r)
        self.assertEqual(vary_tokens(r), ["origin"], r)

    def test_refused_origin_gets_vary_only(self):
        r = self.ask(self.srv, "GET", "/plaintext", [("Origin", "https://evil.example.net")])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(acx(r), set(), r)
        self.assertEqual(vary_tokens(r), ["origin"], r)

    def test_no_origin_gets_vary_only(self):
        r = self.ask(self.srv, "GET", "/json")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(acx(r), set(), r)
        self.assertEqual(vary_tokens(r), ["origin"], r)

    def test_engine_errors_carry_cors_headers(self):
        cases = [("GET", "/no/such/path", 404), ("POST", "/plaintext", 405),
                 ("DELETE", "/json", 405)]
        for method, path, status in cases:
            with self.subTest(method=method, path=path):
                body = b"x" if method == "POST" else None
                r = self.ask(self.srv, method, path, [("Origin", APP)], body=body)
                self.assertEqual(r.status, status, r)
                self.assertEqual(r.header("Access-Control-Allow-Origin"), APP, r)
                self.assertEqual(vary_tokens(r), ["origin"], r)

    def test_post_with_body(self):
        r = self.ask(self.srv, "POST", "/echo", [("Origin", APP)], body=b"payload")
        self.assertEqual((r.status, r.body), (200, b"payload"), r)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), APP, r)

    def test_head(self):
        r = raw(self.srv.port, request("HEAD", "/plaintext", headers=[("Origin", APP)]),
                head=True)[0]
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), APP, r)


class Wildcard(CorsCase):
    def setUp(self):
        self.srv = self.server("--cors-origins", "https://*.example.com,null")

    def origin_of(self, origin):
        r = self.ask(self.srv, "GET", "/plaintext", [("Origin", origin)])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(vary_tokens(r), ["origin"], r)
        return r.header("Access-Control-Allow-Origin")

    def test_subdomains(self):
        for origin in ("https://a.example.com", "https://a.b.example.com",
                       "https://API.Example.COM"):
            with self.subTest(origin=origin):
                self.assertEqual(self.origin_of(origin), origin)

    def test_not_the_bare_domain_nor_lookalikes(self):
        for origin in ("https://example.com", "https://evil-example.com",
                       "https://aexample.com", "http://a.example.com",
                       "https://a.example.com.evil.org", "https://a.example.com:8443"):
            with self.subTest(origin=origin):
                self.assertIsNone(self.origin_of(origin))

    def test_null_listed(self):
        self.assertEqual(self.origin_of("null"), "null")

    def test_wildcard_preflight(self):
        r = self.preflight(self.srv, "https://x.example.com", "PATCH", "authorization")
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "https://x.example.com", r)
        self.assertRefusedPreflight(self.preflight(self.srv, "https://example.com", "PATCH"))

    def test_null_not_listed_is_refused(self):
        srv = self.server("--cors-origins", APP)
        r = self.ask(srv, "GET", "/plaintext", [("Origin", "null")])
        self.assertIsNone(r.header("Access-Control-Allow-Origin"), r)


class Star(CorsCase):
    def test_any_origin_without_credentials(self):
        srv = self.server("--cors-origins", "*", "--cors-headers", "*", "--cors-methods", "*")
        r = self.ask(srv, "GET", "/plaintext", [("Origin", "https://anyone.test")])
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "*", r)
        self.assertEqual(r.header_all("Vary"), [], "the answer is the same for every origin")
        r = self.ask(srv, "GET", "/plaintext")
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "*", r)
        # "*" lists echo what the preflight asks for.
        r = self.preflight(srv, "https://anyone.test", "PURGE", "x-one, x-two")
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "*", r)
        self.assertEqual(r.header("Access-Control-Allow-Methods"), "PURGE", r)
        self.assertEqual(r.header("Access-Control-Allow-Headers"), "x-one, x-two", r)
        self.assertPreflightVary(r)


class Credentials(CorsCase):
    def test_credentials_header(self):
        srv = self.server("--cors-origins", APP, "--cors-credentials", "on")
        r = self.ask(srv, "GET", "/plaintext", [("Origin", APP)])
        self.assertEqual(r.header("Access-Control-Allow-Origin"), APP, r)
        self.assertEqual(r.header("Access-Control-Allow-Credentials"), "true", r)
        r = self.preflight(srv, APP, "POST", "authorization")
        self.assertEqual(r.header("Access-Control-Allow-Credentials"), "true", r)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), APP, r)
        r = self.ask(srv, "GET", "/plaintext", [("Origin", "https://evil.example.net")])
        self.assertEqual(acx(r), set(), r)

    def test_from_the_environment(self):
        srv = self.server(env={"COIL_CORS_ORIGINS": APP, "COIL_CORS_CREDENTIALS": "on",
                               "COIL_CORS_MAX_AGE": "30"})
        r = self.preflight(srv, APP, "GET")
        self.assertEqual(r.header("Access-Control-Allow-Credentials"), "true", r)
        self.assertEqual(r.header("Access-Control-Max-Age"), "30", r)


class Off(CorsCase):
    def test_without_origins_no_cors_headers(self):
        srv = self.server()
        r = self.ask(srv, "GET", "/plaintext", [("Origin", APP)])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(acx(r), set(), r)
        self.assertEqual(r.header_all("Vary"), [], r)
        r = self.preflight(srv, APP, "GET")
        self.assertEqual(r.status, 405, "no CORS: the routes answer the OPTIONS: %r" % r)
        self.assertEqual(acx(r), set(), r)


class Proxied(CorsCase):
    """Responses that already carry Vary and CORS headers: from an upstream, through --proxy."""

    def proxied(self, headers):
        up = FaultServer(canned(b"up", headers=headers))
        self.addCleanup(up.close)
        srv = self.server("--cors-origins", APP, "--proxy", "/up/=%s" % up.url)
        return srv, up

    def test_vary_lines_merged_into_one(self):
        srv, _ = self.proxied(["Vary: Accept-Encoding", "Vary: Accept-Language, Cookie"])
        r = self.ask(srv, "GET", "/up/x", [("Origin", APP)])
        self.assertEqual((r.status, r.body), (200, b"up"), r)
        self.assertEqual(len(r.header_all("Vary")), 1, r)
        self.assertEqual(vary_tokens(r), ["accept-encoding", "accept-language", "cookie",
                                          "origin"], r)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), APP, r)

    def test_vary_already_naming_origin_or_star_is_kept(self):
        for line, want in (("Vary: origin, Accept", ["origin", "accept"]), ("Vary: *", ["*"])):
            with self.subTest(line=line):
                srv, _ = self.proxied([line])
                r = self.ask(srv, "GET", "/up/x", [("Origin", APP)])
                self.assertEqual(vary_tokens(r), want, r)

    def test_upstream_cors_headers_replaced(self):
        srv, _ = self.proxied(["Access-Control-Allow-Origin: https://upstream.test"])
        r = self.ask(srv, "GET", "/up/x", [("Origin", APP)])
        self.assertEqual(r.header_all("Access-Control-Allow-Origin"), [APP], r)

    def test_preflight_never_reaches_the_upstream(self):
        srv, up = self.proxied([])
        r = self.preflight(srv, APP, "PUT", "content-type", path="/up/items")
        self.assertEqual(r.status, 204, r)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), APP, r)
        self.assertEqual(up.requests, [], "the preflight was forwarded")
        r = self.ask(srv, "PUT", "/up/items", [("Origin", APP)], body=b"{}")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(up.requests), 1)


def run(args, env=None):
    return subprocess.run([coil_bin(), "--port", "0", "--bind", "127.0.0.1"] + list(args),
                          capture_output=True, text=True, timeout=20, env=clean_env(env),
                          stdin=subprocess.DEVNULL)


class Refused(CoilTestCase):
    def assertRefused(self, args, words, env=None):
        try:
            p = run(args, env)
        except subprocess.TimeoutExpired:
            self.fail("coil %s started instead of refusing" % args)
        self.assertEqual(p.returncode, 2, "coil %s: exit %d, stderr %r"
                         % (args, p.returncode, p.stderr))
        for w in words:
            self.assertIn(w, p.stderr, "coil %s: %r" % (args, p.stderr))
        self.assertNotRegex(p.stderr, r"Sanitizer|runtime error", p.stderr)

    def test_star_with_credentials(self):
        self.assertRefused(["--cors-origins", "*", "--cors-credentials", "on"],
                           ["credentials", "Fetch"])
        self.assertRefused([], ["credentials"],
                           env={"COIL_CORS_ORIGINS": "*", "COIL_CORS_CREDENTIALS": "on"})

    def test_bad_values(self):
        cases = [
            (["--cors-origins", "app.example.com"], ["app.example.com", "not an origin"]),
            (["--cors-origins", "https://app.example.com/"], ["not an origin"]),
            (["--cors-origins", "https://a.*.example.com"], ["not an origin"]),
            (["--cors-origins", "https://*.example.com/"], ["not an origin"]),
            (["--cors-origins", "*, https://a.example.com"], ["alone"]),
            (["--cors-origins", " , "], ["no origin"]),
            (["--cors-origins", APP, "--cors-methods", "GET, BAD METHOD"], ["token"]),
            (["--cors-origins", APP, "--cors-methods", ""], ["no method"]),
            (["--cors-origins", APP, "--cors-headers", "a\tb"], ["token"]),
            (["--cors-origins", APP, "--cors-credentials", "yes"], ["--cors-credentials"]),
            (["--cors-origins", APP, "--cors-max-age", "1500ms"], ["--cors-max-age"]),
            (["--cors-origins", APP, "--cors-max-age", "0"], ["--cors-max-age"]),
            (["--cors-origins", APP, "--cors-max-age", "soon"], ["--cors-max-age"]),
            (["--cors-origins", APP, "--cors-credentials", "on", "--cors-expose", "*"],
             ["expose"]),
        ]
        for args, words in cases:
            with self.subTest(args=args):
                self.assertRefused(args, words)

    def test_options_without_origins_warn(self):
        srv = self.start("--cors-credentials", "on")
        self.assertIn("no effect without --cors-origins", srv.log_text())


if __name__ == "__main__":
    main()
