# SPDX-License-Identifier: MIT
"""The compression middleware (--compress and friends) on the demo binary.

Whole bodies (/json/:count, POST /echo with the client's Content-Type): gzip decoded here and br
decoded by curl give back exactly the body sent without Accept-Encoding; Accept-Encoding's
q-values, "*", identity and several lines pick the coding; Vary: Accept-Encoding goes on every
response that could have been compressed, whatever was asked; small bodies, types not listed,
HEAD and the engine's own small answers are left alone; levels and types come from the flags;
bad values stop the server with status 2. Streamed bodies (/events, Server-Sent Events) are
compressed as they go: each event can be decoded as soon as its chunk arrives. Responses from a
proxied upstream (streamed too) show what the handler's own headers change: a strong ETag made
weak, Vary merged, Cache-Control: no-transform and an existing Content-Encoding respected,
204/304/206 untouched; an upstream that fails mid-body and a client that leaves mid-stream end
the encoder without a leak (LeakSanitizer checks that in the ASan build). The last test fails
each allocation of a compressing workload in turn.
"""

import gzip
import json
import os
import subprocess
import tempfile
import threading
import zlib

from coil_harness import (CoilTestCase, Conn, ConnectionClosed, ProtocolError, coil_bin, main,
                          need_tool, request)
from test_arena import DATASET_PATH
from upstreams import FaultServer, canned, reset, response, send, wait_event

# A developer's own settings must not change what these tests see.
for _var in ("COIL_COMPRESS", "COIL_COMPRESS_LEVEL_GZIP", "COIL_COMPRESS_LEVEL_BR",
             "COIL_COMPRESS_MIN_BYTES", "COIL_COMPRESS_TYPES", "COIL_CORS_ORIGINS",
             "COIL_TEST_ALLOC_FAIL"):
    os.environ.pop(_var, None)

JSON50 = "/json/50?m=6"
# A JSON document shaped like /json/50's (an 8 KB array of items), for /echo to answer.
DOC = json.dumps({"items": [{"id": i, "name": "Item %d" % i, "category": ("tools", "toys")[i % 2],
                             "price": i * 37 % 500, "tags": ["sale", "new"][: i % 3],
                             "rating": {"score": i % 5, "count": i * 11}}
                            for i in range(60)]}).encode()
TEXT = (b"The quick brown fox jumps over the lazy dog; " * 100)  # 4500 bytes, very compressible


def events_text(n):
    """What GET /events?n=N sends (handlers/wait.c)."""
    return b"".join(event(i) for i in range(1, n + 1))


def event(i):
    return b'id: %d\ndata: {"n":%d}\n\n' % (i, i)


def vary_tokens(resp):
    return [t.strip().lower() for v in resp.header_all("Vary") for t in v.split(",") if t.strip()]


def curl(url, *args):
    """curl's response head (a list of (name, value)) and body; args are curl's."""
    exe = need_tool("curl")
    with tempfile.TemporaryDirectory() as d:
        head, body = os.path.join(d, "head"), os.path.join(d, "body")
        subprocess.run([exe, "-sS", "--max-time", "10", "-D", head, "-o", body, *args, url],
                       check=True)
        with open(head, "rb") as f:
            lines = f.read().decode("latin-1").split("\r\n")
        with open(body, "rb") as f:
            data = f.read()
    headers = [tuple(x.strip() for x in ln.split(":", 1)) for ln in lines[1:] if ":" in ln]
    return headers, data


def header_of(headers, name):
    vals = [v for k, v in headers if k.lower() == name.lower()]
    return vals[0] if vals else None


class CompressCase(CoilTestCase):
    def server(self, *args, workers=2, env=None):
        return self.start("--workers", str(workers), "--dataset", DATASET_PATH, *args, env=env)

    def ask(self, srv, method, path, headers=(), body=None):
        return self.connect(srv).request(method, path, body=body, headers=list(headers))

    def get(self, srv, path, ae=None):
        return self.ask(srv, "GET", path, [("Accept-Encoding", ae)] if ae is not None else [])

    def assertCoding(self, resp, coding, identity):
        """resp carries coding ("gzip", "br" or None) and, decoded, is identity."""
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.header("Content-Encoding"), coding, resp)
        self.assertEqual(len(resp.header_all("Content-Encoding")), 1 if coding else 0, resp)
        self.assertEqual(resp.header("Content-Length"), str(len(resp.body)), resp)
        if coding is None:
            self.assertEqual(resp.body, identity)
        else:
            self.assertLess(len(resp.body), len(identity), resp)
        if coding == "gzip":
            self.assertEqual(gzip.decompress(resp.body), identity)
        if coding == "br":
            self.assertNotEqual(resp.body, identity)

    def assertVary(self, resp, present=True):
        self.assertEqual(vary_tokens(resp).count("accept-encoding"), 1 if present else 0, resp)


class Whole(CompressCase):
    def setUp(self):
        self.srv = self.server("--compress", "br,gzip")
        self.identity = self.get(self.srv, JSON50).body
        self.assertGreater(len(self.identity), 4000)

    def test_gzip_round_trip(self):
        r = self.get(self.srv, JSON50, "gzip")
        self.assertCoding(r, "gzip", self.identity)
        self.assertVary(r)
        self.assertEqual(r.header("Content-Type"), "application/json", r)

    def test_br_round_trip_with_curl(self):
        url = "http://127.0.0.1:%d%s" % (self.srv.port, JSON50)
        head, decoded = curl(url, "--compressed", "-H", "Accept-Encoding: br")
        self.assertEqual(header_of(head, "Content-Encoding"), "br", head)
        self.assertEqual(decoded, self.identity)
        raw = self.get(self.srv, JSON50, "br")
        self.assertCoding(raw, "br", self.identity)
        self.assertVary(raw)

    def test_curl_compressed_defaults_to_br(self):
        # curl --compressed asks for every coding it has, at equal q: the server's order wins
        url = "http://127.0.0.1:%d%s" % (self.srv.port, JSON50)
        head, decoded = curl(url, "--compressed")
        self.assertEqual(header_of(head, "Content-Encoding"), "br", head)
        self.assertEqual(decoded, self.identity)

    def test_every_json_count_round_trips(self):
        for count in (5, 12, 25, 40, 50):
            path = "/json/%d?m=3" % count
            identity = self.get(self.srv, path).body
            r = self.get(self.srv, path, "gzip")
            if len(identity) < 256:
                self.assertCoding(r, None, identity)
            else:
                self.assertCoding(r, "gzip", identity)

    def test_no_accept_encoding_is_identity_with_vary(self):
        r = self.get(self.srv, JSON50)
        self.assertCoding(r, None, self.identity)
        self.assertVary(r)  # caches must know that another request could get another body

    def test_q_values(self):
        cases = [
            ("gzip;q=0", None),
            ("gzip;q=0, deflate", None),
            ("br;q=0.5, gzip;q=0.8", "gzip"),
            ("br;q=0.8, gzip;q=0.5", "br"),
            ("gzip, br", "br"),
            ("GZIP", "gzip"),
            ("x-gzip", "gzip"),
            ("*;q=0.1", "br"),
            ("*", "br"),
            ("*, br;q=0", "gzip"),
            ("*;q=0", None),
            ("identity;q=0", None),
            ("identity;q=0, gzip", "gzip"),
            ("gzip;q=0.5, identity", None),
            ("br;q=2, gzip", "gzip"),        # a malformed weight drops its element
            ("br;q=0.5x, gzip;q=0.1", "gzip"),
            ("deflate, zstd", None),
            ("", None),
        ]
        for ae, coding in cases:
            with self.subTest(accept_encoding=ae):
                r = self.get(self.srv, JSON50, ae)
                self.assertCoding(r, coding, self.identity)
                self.assertVary(r)

    def test_several_accept_encoding_lines(self):
        r = self.ask(self.srv, "GET", JSON50,
                     [("Accept-Encoding", "br;q=0"), ("Accept-Encoding", "gzip")])
        self.assertCoding(r, "gzip", self.identity)

    def test_keep_alive_mixes_codings(self):
        # the worker's gzip encoder is reused: each response must be whole and right
        conn = self.connect(self.srv)
        for ae in ("gzip", "br", None, "gzip", "gzip", "br;q=0.1, gzip;q=0.2", None, "gzip"):
            r = conn.request("GET", JSON50,
                             headers=[("Accept-Encoding", ae)] if ae is not None else [])
            self.assertCoding(r, {"br": "br", None: None}.get(ae, "gzip"), self.identity)

    def test_small_body_untouched_without_vary(self):
        r = self.get(self.srv, "/json/1?m=1", "gzip")
        self.assertLess(len(r.body), 256, r)
        self.assertIsNone(r.header("Content-Encoding"), r)
        self.assertVary(r, present=False)
        r = self.get(self.srv, "/plaintext", "gzip")
        self.assertEqual((r.body, r.header("Content-Encoding")), (b"Hello, World!", None), r)

    def test_type_not_listed_untouched(self):
        r = self.ask(self.srv, "POST", "/echo", [("Content-Type", "application/octet-stream"),
                                                  ("Accept-Encoding", "gzip")], TEXT)
        self.assertCoding(r, None, TEXT)
        self.assertVary(r, present=False)
        r = self.ask(self.srv, "POST", "/echo", [("Accept-Encoding", "gzip")], TEXT)
        self.assertCoding(r, None, TEXT)  # no Content-Type from the client: octet-stream

    def test_type_compared_without_case_or_parameters(self):
        for ct in ("text/plain", "TEXT/Plain; charset=utf-8", "text/csv;charset=x",
                   "Application/JSON", "image/svg+xml"):
            with self.subTest(content_type=ct):
                r = self.ask(self.srv, "POST", "/echo", [("Content-Type", ct),
                                                          ("Accept-Encoding", "gzip")], TEXT)
                self.assertCoding(r, "gzip", TEXT)
                self.assertEqual(r.header("Content-Type"), ct, r)

    def test_incompressible_body_sent_as_is(self):
        body = os.urandom(4000)
        r = self.ask(self.srv, "POST", "/echo", [("Content-Type", "text/plain"),
                                                  ("Accept-Encoding", "gzip")], body)
        self.assertCoding(r, None, body)
        self.assertVary(r)  # it could have been compressed: only its bytes said no
        r = self.ask(self.srv, "POST", "/echo", [("Content-Type", "text/plain"),
                                                  ("Accept-Encoding", "br")], body)
        self.assertCoding(r, None, body)

    def test_head_untouched(self):
        r = self.connect(self.srv).request("HEAD", JSON50, headers=[("Accept-Encoding", "gzip")])
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.header("Content-Encoding"), r)
        self.assertEqual(r.header("Content-Length"), str(len(self.identity)), r)
        self.assertEqual(r.body, b"")

    def test_engine_404_untouched(self):
        r = self.get(self.srv, "/no/such/path", "gzip, br")
        self.assertEqual((r.status, r.body), (404, b"Not Found\n"), r)
        self.assertIsNone(r.header("Content-Encoding"), r)
        self.assertStandardHeaders(r, len(r.body))

    def test_engine_400_untouched(self):
        conn = self.connect(self.srv)
        conn.send(b"GET /x HTTP/1.1\r\nHost: a\r\nAccept-Encoding: gzip\r\nBad Header\r\n\r\n")
        r = conn.read_response()
        self.assertEqual(r.status, 400, r)
        self.assertIsNone(r.header("Content-Encoding"), r)


class Streamed(CompressCase):
    def setUp(self):
        self.srv = self.server("--compress", "br,gzip")

    def read_head(self, conn):
        while b"\r\n\r\n" not in conn.buf:
            self.assertTrue(conn.fill(), "closed before the head: %r" % bytes(conn.buf))
        i = conn.buf.index(b"\r\n\r\n")
        head = bytes(conn.buf[:i]).decode("latin-1").split("\r\n")
        del conn.buf[:i + 4]
        return head[0], [tuple(x.strip() for x in ln.split(":", 1)) for ln in head[1:]]

    def read_chunk(self, conn):
        while b"\r\n" not in conn.buf:
            self.assertTrue(conn.fill(), "closed inside a chunk size line")
        i = conn.buf.index(b"\r\n")
        size = int(bytes(conn.buf[:i]).split(b";")[0], 16)
        del conn.buf[:i + 2]
        while len(conn.buf) < size + 2:
            self.assertTrue(conn.fill(), "closed inside a chunk")
        data = bytes(conn.buf[:size])
        self.assertEqual(bytes(conn.buf[size:size + 2]), b"\r\n")
        del conn.buf[:size + 2]
        return data

    def test_sse_gzip_decodes_event_by_event(self):
        n = 4
        conn = self.connect(self.srv)
        conn.send(request("GET", "/events?n=%d&every=30" % n,
                          headers=[("Accept-Encoding", "gzip")]))
        status, head = self.read_head(conn)
        self.assertIn(" 200 ", status)
        self.assertEqual(header_of(head, "Content-Encoding"), "gzip", head)
        self.assertEqual(header_of(head, "Transfer-Encoding"), "chunked", head)
        self.assertIsNone(header_of(head, "Content-Length"), head)
        self.assertIn("accept-encoding", header_of(head, "Vary").lower(), head)
        d = zlib.decompressobj(wbits=31)
        for i in range(1, n + 1):
            # each event is flushed on its own: its chunk decodes to exactly that event
            self.assertEqual(d.decompress(self.read_chunk(conn)), event(i))
        rest = b""
        while True:
            chunk = self.read_chunk(conn)
            if not chunk:
                break
            rest += d.decompress(chunk)
        self.assertEqual(rest, b"")
        self.assertTrue(d.eof, "the gzip stream was not finished")
        self.assertEqual(d.unused_data, b"")

    def test_sse_prefers_gzip_at_equal_q(self):
        conn = self.connect(self.srv)
        conn.send(request("GET", "/events?n=1&every=0", headers=[("Accept-Encoding", "br, gzip")]))
        _, head = self.read_head(conn)
        self.assertEqual(header_of(head, "Content-Encoding"), "gzip", head)

    def test_sse_br_with_curl(self):
        url = "http://127.0.0.1:%d/events?n=5&every=10" % self.srv.port
        head, decoded = curl(url, "-N", "--compressed", "-H", "Accept-Encoding: br")
        self.assertEqual(header_of(head, "Content-Encoding"), "br", head)
        self.assertEqual(decoded, events_text(5))

    def test_sse_identity_without_accept_encoding(self):
        url = "http://127.0.0.1:%d/events?n=3&every=0" % self.srv.port
        head, body = curl(url, "-N")
        self.assertIsNone(header_of(head, "Content-Encoding"), head)
        self.assertIn("accept-encoding", header_of(head, "Vary").lower(), head)
        self.assertEqual(body, events_text(3))

    def test_client_leaves_mid_stream(self):
        # the encoder of a cut stream is ended by the done step (LeakSanitizer checks at exit)
        for ae in ("gzip", "br"):
            conn = Conn(self.srv.port)
            conn.send(request("GET", "/events?n=1000&every=20", headers=[("Accept-Encoding", ae)]))
            _, head = self.read_head(conn)
            self.assertEqual(header_of(head, "Content-Encoding"), ae, head)
            self.assertTrue(self.read_chunk(conn))
            conn.close()
        r = self.get(self.srv, JSON50, "gzip")  # still serving
        self.assertEqual(r.header("Content-Encoding"), "gzip", r)


class Proxied(CompressCase):
    """Responses from an upstream: streamed, with the headers the test chooses."""

    def proxy(self, handler, *args):
        up = FaultServer(handler)
        self.addCleanup(up.close)
        return self.server("--compress", "br,gzip", "--proxy", "/up/=%s" % up.url, *args,
                           workers=1)

    def upstream_says(self, headers, status=200, body=TEXT):
        return canned(body, status, ["Content-Type: text/plain"] + list(headers))

    def test_streamed_body_compressed(self):
        srv = self.proxy(self.upstream_says([]))
        r = self.get(srv, "/up/x", "gzip")
        self.assertEqual(r.header("Content-Encoding"), "gzip", r)
        self.assertEqual(gzip.decompress(r.body), TEXT)
        self.assertIsNone(r.header("Content-Length"), r)  # its declared length is dropped
        self.assertVary(r)
        head, decoded = curl("http://127.0.0.1:%d/up/x" % srv.port, "--compressed", "-H",
                             "Accept-Encoding: br")
        self.assertEqual(header_of(head, "Content-Encoding"), "br", head)
        self.assertEqual(decoded, TEXT)

    def test_strong_etag_made_weak(self):
        srv = self.proxy(self.upstream_says(['ETag: "v1"']))
        r = self.get(srv, "/up/x", "gzip")
        self.assertEqual(r.header_all("ETag"), ['W/"v1"'], r)
        r = self.get(srv, "/up/x")
        self.assertEqual(r.header_all("ETag"), ['"v1"'], r)  # identity keeps the strong one

    def test_weak_etag_kept(self):
        srv = self.proxy(self.upstream_says(['ETag: W/"v1"']))
        r = self.get(srv, "/up/x", "gzip")
        self.assertEqual(r.header("Content-Encoding"), "gzip", r)
        self.assertEqual(r.header_all("ETag"), ['W/"v1"'], r)

    def test_vary_merged(self):
        for given, want in (("Origin", ["origin", "accept-encoding"]),
                            ("Origin, ACCEPT-ENCODING", ["origin", "accept-encoding"]),
                            ("*", ["*"])):
            with self.subTest(vary=given):
                srv = self.proxy(self.upstream_says(["Vary: " + given]))
                for ae in ("gzip", None):
                    r = self.get(srv, "/up/x", ae)
                    self.assertEqual(vary_tokens(r), want, r)
                    self.assertEqual(len(r.header_all("Vary")), 1, r)

    def test_no_transform_untouched(self):
        srv = self.proxy(self.upstream_says(["Cache-Control: public, No-Transform"]))
        r = self.get(srv, "/up/x", "gzip")
        self.assertCoding(r, None, TEXT)
        self.assertVary(r, present=False)

    def test_existing_content_encoding_untouched(self):
        packed = gzip.compress(TEXT)
        srv = self.proxy(self.upstream_says(["Content-Encoding: gzip"], body=packed))
        r = self.get(srv, "/up/x", "gzip, br")
        self.assertEqual(r.header_all("Content-Encoding"), ["gzip"], r)
        self.assertEqual(r.body, packed)

    def test_statuses_without_a_body_untouched(self):
        for status in (204, 304):
            with self.subTest(status=status):
                srv = self.proxy(self.upstream_says(['ETag: "e"'], status=status, body=b""))
                r = self.get(srv, "/up/x", "gzip")
                self.assertEqual(r.status, status, r)
                self.assertIsNone(r.header("Content-Encoding"), r)
                self.assertEqual(r.header_all("ETag"), ['"e"'], r)

    def test_partial_content_untouched(self):
        part = TEXT[:1000]
        srv = self.proxy(self.upstream_says(["Content-Range: bytes 0-999/4500"], status=206,
                                            body=part))
        r = self.get(srv, "/up/x", "gzip")
        self.assertEqual((r.status, r.body), (206, part), r)
        self.assertIsNone(r.header("Content-Encoding"), r)

    def test_head_untouched(self):
        srv = self.proxy(self.upstream_says([]))
        r = self.connect(srv).request("HEAD", "/up/x", headers=[("Accept-Encoding", "gzip")])
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.header("Content-Encoding"), r)

    def test_upstream_fails_mid_body(self):
        # the stream is cut: the client's connection closes, the encoder ends in the done step
        go = threading.Event()
        head = response(200, b"", ["Content-Type: text/plain", "Content-Length: 100000"])

        def handler(req):
            return [send(head + TEXT[:3000]), wait_event(go), reset()]
        for ae in ("gzip", "br"):
            with self.subTest(coding=ae):
                srv = self.proxy(handler)
                conn = self.connect(srv)
                conn.send(request("GET", "/up/x", headers=[("Accept-Encoding", ae)]))
                while b"\r\n\r\n" not in conn.buf:
                    self.assertTrue(conn.fill())
                self.assertIn(b"Content-Encoding: " + ae.encode(), bytes(conn.buf))
                go.set()
                data, _ = conn.read_until_eof()
                self.assertFalse(data.endswith(b"0\r\n\r\n"), "a cut body must not end cleanly")
                go.clear()
                self.stop(srv)


class Options(CompressCase):
    """The flags, on /echo's whole JSON body: the demo compresses /json/:count with its own
    route middleware whatever the flags say."""

    def json_echo(self, srv, ae=None):
        headers = [("Content-Type", "application/json")]
        if ae is not None:
            headers.append(("Accept-Encoding", ae))
        return self.ask(srv, "POST", "/echo", headers, DOC)

    def test_without_compress_nothing_changes(self):
        srv = self.server()
        r = self.json_echo(srv, "gzip, br")
        self.assertIsNone(r.header("Content-Encoding"), r)
        self.assertVary(r, present=False)
        # ... but for the route the demo compresses on its own (coil_route_use, json-comp)
        identity = self.get(srv, JSON50).body
        self.assertCoding(self.get(srv, JSON50, "gzip, br"), "br", identity)

    def test_off(self):
        srv = self.server("--compress", "off")
        self.assertIsNone(self.json_echo(srv, "gzip").header("Content-Encoding"))

    def test_gzip_only(self):
        srv = self.server("--compress", "gzip")
        identity = DOC
        self.assertCoding(self.json_echo(srv, "br, gzip"), "gzip", identity)
        self.assertCoding(self.json_echo(srv, "br"), None, identity)

    def test_list_order_is_the_preference(self):
        srv = self.server("--compress", "gzip,br")
        identity = DOC
        self.assertCoding(self.json_echo(srv, "br, gzip"), "gzip", identity)
        self.assertCoding(self.json_echo(srv, "br"), "br", identity)

    def test_from_the_environment(self):
        srv = self.server(env={"COIL_COMPRESS": "gzip", "COIL_COMPRESS_MIN_BYTES": "1K"})
        self.assertEqual(self.json_echo(srv, "gzip").header("Content-Encoding"), "gzip")
        r = self.ask(srv, "POST", "/echo", [("Content-Type", "text/plain"),
                                             ("Accept-Encoding", "gzip")], TEXT[:1000])
        self.assertCoding(r, None, TEXT[:1000])

    def test_levels(self):
        sizes = {}
        for coding, flag, low, high in (("gzip", "--compress-level-gzip", 1, 9),
                                        ("br", "--compress-level-br", 0, 11)):
            for level in (low, high):
                srv = self.server("--compress", coding, flag, str(level), workers=1)
                sizes[coding, level] = len(self.json_echo(srv, coding).body)
                self.stop(srv)
            self.assertLess(sizes[coding, high], sizes[coding, low], sizes)

    def test_min_bytes(self):
        srv = self.server("--compress", "gzip", "--compress-min-bytes", "100000")
        r = self.json_echo(srv, "gzip")
        self.assertIsNone(r.header("Content-Encoding"), r)
        self.assertVary(r, present=False)
        srv = self.server("--compress", "gzip", "--compress-min-bytes", "0")
        tiny = b"0123456789abcdefghij"
        r = self.ask(srv, "POST", "/echo", [("Content-Type", "text/plain"),
                                             ("Accept-Encoding", "gzip")], tiny)
        self.assertCoding(r, None, tiny)  # gzip's own 18 bytes make it no smaller
        self.assertVary(r)
        r = self.ask(srv, "POST", "/echo", [("Content-Type", "text/plain"),
                                             ("Accept-Encoding", "gzip")], b"a" * 100)
        self.assertCoding(r, "gzip", b"a" * 100)

    def test_types(self):
        srv = self.server("--compress", "gzip", "--compress-types", " Text/Csv , application/x-")
        for ct, coding in (("text/csv", "gzip"), ("text/plain", None), ("application/json", None),
                           ("application/x-ndjson", "gzip")):
            with self.subTest(content_type=ct):
                r = self.ask(srv, "POST", "/echo", [("Content-Type", ct),
                                                     ("Accept-Encoding", "gzip")], TEXT)
                self.assertCoding(r, coding, TEXT)

    def test_bad_values_refused(self):
        bad = [("--compress", "zstd"), ("--compress", "br,br"), ("--compress", ""),
               ("--compress", "br,"), ("--compress", "gzip,,br"), ("--compress", "identity"),
               ("--compress-level-gzip", "0"), ("--compress-level-gzip", "10"),
               ("--compress-level-gzip", "x"), ("--compress-level-br", "12"),
               ("--compress-level-br", "-1"), ("--compress-min-bytes", "abc"),
               ("--compress-min-bytes", "5G"), ("--compress-min-bytes", "K"),
               ("--compress-types", ""), ("--compress-types", "text/,,application/json"),
               ("--compress-types", "text plain")]
        for flag, value in bad:
            with self.subTest(flag=flag, value=value):
                p = subprocess.run([coil_bin(), "--compress", "br", flag, value, "--port", "0",
                                    "--bind", "127.0.0.1"],
                                   stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
                self.assertEqual(p.returncode, 2, p)
                self.assertIn(b"compress", p.stderr, p.stderr)

    def test_with_cors_vary_lists_both_once(self):
        srv = self.server("--compress", "br,gzip", "--cors-origins", "https://a.example")
        for ae in ("gzip", None):
            r = self.ask(srv, "GET", JSON50, [("Origin", "https://a.example")] +
                         ([("Accept-Encoding", ae)] if ae else []))
            self.assertEqual(sorted(vary_tokens(r)), ["accept-encoding", "origin"], r)


class AllocationFailures(CompressCase):
    """Each heap allocation of a compressing workload fails once in turn (COIL_TEST_ALLOC_FAIL):
    every answer is a right one, compressed or not, or a closed connection."""

    def answer(self, port, path, ae):
        """The response to GET path, or None if the connection closed instead."""
        conn = Conn(port, timeout=5)
        try:
            return conn.request("GET", path, headers=[("Accept-Encoding", ae)])
        except (ConnectionClosed, ProtocolError):
            return None
        finally:
            conn.close()

    def check(self, r, ae, identity):
        if r is None:
            return
        if r.status != 200:
            self.assertEqual(r.status, 503, r)
        elif r.header("Content-Encoding") is None:
            self.assertEqual(r.body, identity)
        else:
            self.assertEqual(r.header("Content-Encoding"), ae, r)
            if ae == "gzip":
                self.assertEqual(gzip.decompress(r.body), identity)

    def workload(self, srv, identity):
        for ae in ("gzip", "br", "gzip"):
            self.check(self.answer(srv.port, JSON50, ae), ae, identity)
        for ae in ("gzip", "br"):
            self.check(self.answer(srv.port, "/events?n=3&every=0", ae), ae, events_text(3))

    def test_sweep(self):
        plain = self.server(workers=1)
        identity = self.get(plain, JSON50).body
        self.stop(plain)
        for n in range(1, 400):
            srv = self.server("--compress", "br,gzip", workers=1,
                              env={"COIL_TEST_ALLOC_FAIL": str(n)})
            self.workload(srv, identity)
            r = self.get(srv, JSON50, "gzip")
            self.assertEqual(r.header("Content-Encoding"), "gzip", r)
            self.assertEqual(gzip.decompress(r.body), identity)
            self.stop(srv)
            if "failed by injection" not in srv.log_text():
                break  # the whole workload ran without reaching the n-th allocation
        else:
            self.fail("the sweep did not reach the end of the workload")
        # brotli's streams alone allocate dozens of times: fewer failures prove nothing
        self.assertGreater(n, 30)


if __name__ == "__main__":
    main()
