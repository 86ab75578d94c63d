# SPDX-License-Identifier: MIT
"""Request bodies through POST /echo: Content-Length and chunked (with extensions and trailers),
bodies that arrive in fragments, Expect: 100-continue (raw and with curl), 413 with and without
Expect, and a 1 MiB echo."""

import os
import shutil
import subprocess
import tempfile
import threading
import time
import unittest

from coil_harness import CoilTestCase, chunked, main, raw, raw_until_eof, request

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def pattern(n):
    """n bytes covering every byte value, not periodic in any small power of two."""
    return (bytes(range(256)) * (n // 256 + 2))[7:n + 7] if n < 4096 else os.urandom(n)


class ContentLength(CoilTestCase):
    def setUp(self):
        self.srv = self.start()

    def test_echo_with_content_type(self):
        r = self.connect(self.srv).request("POST", "/echo", body=b"hello there",
                                           headers=["Content-Type: text/x-custom; a=b"])
        self.assertEqual((r.status, r.body), (200, b"hello there"), r)
        self.assertEqual(r.header("Content-Type"), "text/x-custom; a=b", r)
        self.assertStandardHeaders(r, 11)

    def test_echo_default_content_type(self):
        r = self.connect(self.srv).request("POST", "/echo", body=b"raw")
        self.assertEqual((r.status, r.body), (200, b"raw"), r)
        self.assertEqual(r.header("Content-Type"), "application/octet-stream", r)

    def test_echo_every_byte_value(self):
        body = bytes(range(256)) * 4
        r = self.connect(self.srv).request("POST", "/echo", body=body)
        self.assertEqual(r.body, body)

    def test_empty_bodies(self):
        conn = self.connect(self.srv)
        r = conn.request("POST", "/echo", body=b"")
        self.assertEqual((r.status, r.body, r.header("Content-Length")), (200, b"", "0"), r)
        # no Content-Length and no Transfer-Encoding on a request: no body
        r = conn.request("POST", "/echo")
        self.assertEqual((r.status, r.body), (200, b""), r)
        r = conn.request("GET", "/healthz")
        self.assertEqual((r.status, r.body), (200, b"ok"), r)

    def test_header_names_case_insensitive(self):
        r = self.connect(self.srv).request("POST", "/echo", body=b"hello", host=None,
                                           headers=["hOST: a", "content-length: 5",
                                                    "CONTENT-TYPE: text/x-case"])
        self.assertEqual((r.status, r.body), (200, b"hello"), r)
        self.assertEqual(r.header("Content-Type"), "text/x-case", r)

    def test_content_length_leading_zeros(self):
        r = self.connect(self.srv).request("POST", "/echo", body=b"hello",
                                           headers=["Content-Length: 0005"])
        self.assertEqual((r.status, r.body), (200, b"hello"), r)

    def test_content_type_value_trimmed(self):
        r = self.connect(self.srv).request("POST", "/echo", body=b"x",
                                           headers=["Content-Type: \t text/x-trim \t"])
        self.assertEqual(r.header("Content-Type"), "text/x-trim", r)
        self.assertNotIn(b"\t", r.head_bytes)

    def test_http10_post_with_keep_alive(self):
        conn = self.connect(self.srv)
        for body in (b"first", b"second"):
            r = conn.request("POST", "/echo", body=body, version="HTTP/1.0",
                             headers=["Connection: keep-alive"])
            self.assertEqual((r.status, r.body), (200, body), r)
            self.assertTrue(r.has_token("Connection", "keep-alive"), r)

    def test_http10_expect_is_not_answered_with_100(self):
        # RFC 9110 10.1.1: no 100 (Continue) to an HTTP/1.0 client.
        data = request("POST", "/echo", body=b"old", version="HTTP/1.0",
                       headers=["Expect: 100-continue"])
        res = raw_until_eof(self.srv.port, data)
        self.assertEqual([(r.status, r.body) for r in res.responses], [(200, b"old")], res)

    def test_body_in_fragments(self):
        conn = self.connect(self.srv)
        body = pattern(3000)
        conn.send(request("POST", "/echo", body=b"", headers=["Content-Length: 3000"]))
        for i in range(0, 3000, 700):
            time.sleep(0.01)
            conn.send(body[i:i + 700])
        r = conn.read_response()
        self.assertEqual((r.status, r.body), (200, body))

    def test_body_split_at_every_offset(self):
        conn = self.connect(self.srv)
        data = request("POST", "/echo", body=b"0123456789")
        for i in range(1, len(data)):
            conn.send(data[:i])
            time.sleep(0.003)
            conn.send(data[i:])
            r = conn.read_response()
            self.assertEqual((r.status, r.body), (200, b"0123456789"), "split at %d" % i)

    def test_large_one_mebibyte_echo(self):
        body = os.urandom(1 << 20)
        conn = self.connect(self.srv)
        sender = threading.Thread(target=conn.send, args=(request("POST", "/echo", body=body),))
        sender.start()  # the echo could start before the upload ends: send and read at once
        r = conn.read_response()
        sender.join(10)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(len(r.body), len(body))
        self.assertTrue(r.body == body, "1 MiB echo differs")
        # and the connection is still usable
        self.assertEqual(conn.request("GET", "/healthz").body, b"ok")

    def test_big_body_pipelined_between_requests(self):
        big = os.urandom(300_000)
        data = (request("GET", "/healthz") + request("POST", "/echo", body=big)
                + request("GET", "/json") + request("POST", "/echo", body=b"tail"))
        conn = self.connect(self.srv)
        sender = threading.Thread(target=conn.send, args=(data,))
        sender.start()
        rs = [conn.read_response() for _ in range(4)]
        sender.join(10)
        self.assertEqual([r.status for r in rs], [200] * 4, rs)
        self.assertEqual(rs[0].body, b"ok")
        self.assertTrue(rs[1].body == big, "300 KB echo differs")
        self.assertEqual(rs[2].body, b'{"message":"Hello, World!"}')
        self.assertEqual(rs[3].body, b"tail")

    def test_just_over_default_limit_413(self):
        res = raw_until_eof(self.srv.port, request("POST", "/echo", body=b"",
                                                   headers=["Content-Length: 1048577"]))
        self.assertClosesAfter(res, 413)


class Chunked(CoilTestCase):
    def setUp(self):
        self.srv = self.start()

    def echo(self, framed, headers=()):
        return self.connect(self.srv).request(
            "POST", "/echo", body=framed, headers=["Transfer-Encoding: chunked"] + list(headers))

    def test_simple(self):
        r = self.echo(chunked(b"hello", b" ", b"world"))
        self.assertEqual((r.status, r.body), (200, b"hello world"), r)
        self.assertStandardHeaders(r, 11)

    def test_content_type_copied(self):
        r = self.echo(chunked(b"x"), headers=["Content-Type: text/x-chunky"])
        self.assertEqual(r.header("Content-Type"), "text/x-chunky", r)

    def test_extensions_ignored(self):
        framed = b"5;name=value\r\nhello\r\n1;flag\r\n!\r\n3;a=1;b=2\r\nabc\r\n0;last=1\r\n\r\n"
        r = self.echo(framed)
        self.assertEqual((r.status, r.body), (200, b"hello!abc"), r)

    def test_extension_quoted_value_and_whitespace(self):
        # RFC 9112 7.1.1: BWS around ";" and "=", quoted-string values (which may hold ";").
        framed = b'5 ; q="a;b \\" c"\r\nhello\r\n3;x = y\r\nabc\r\n0\r\n\r\n'
        r = self.echo(framed)
        self.assertEqual((r.status, r.body), (200, b"helloabc"), r)

    def test_trailers_ignored(self):
        r = self.echo(chunked(b"body", trailers=b"X-Checksum: 123\r\nX-Other: a b c\r\n"))
        self.assertEqual((r.status, r.body), (200, b"body"), r)

    def test_hex_sizes_upper_and_lower_case(self):
        data = pattern(0x1AB + 0xcd)
        framed = (b"1AB\r\n" + data[:0x1AB] + b"\r\n" + b"cd\r\n" + data[0x1AB:] + b"\r\n"
                  + b"000\r\n\r\n")
        r = self.echo(framed)
        self.assertEqual((r.status, r.body), (200, data), r)

    def test_empty_chunked_body(self):
        r = self.echo(b"0\r\n\r\n")
        self.assertEqual((r.status, r.body), (200, b""), r)

    def test_chunked_then_pipelined_request(self):
        data = (request("POST", "/echo", body=chunked(b"abc", trailers=b"T: 1\r\n"),
                        headers=["Transfer-Encoding: chunked"])
                + request("GET", "/healthz"))
        rs = raw(self.srv.port, data, count=2)
        self.assertEqual([(r.status, r.body) for r in rs], [(200, b"abc"), (200, b"ok")])

    def test_chunked_split_at_every_offset(self):
        conn = self.connect(self.srv)
        data = request("POST", "/echo",
                       body=b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\n",
                       headers=["Transfer-Encoding: chunked"])
        for i in range(1, len(data)):
            conn.send(data[:i])
            time.sleep(0.003)
            conn.send(data[i:])
            r = conn.read_response()
            self.assertEqual((r.status, r.body), (200, b"abcde"), "split at %d: %r" % (i, r))

    def test_chunked_one_mebibyte(self):
        body = os.urandom(1 << 20)
        framed = chunked(*[body[i:i + 65536] for i in range(0, len(body), 65536)])
        conn = self.connect(self.srv)
        sender = threading.Thread(target=conn.send,
                                  args=(request("POST", "/echo", body=framed,
                                                headers=["Transfer-Encoding: chunked"]),))
        sender.start()
        r = conn.read_response()
        sender.join(10)
        self.assertEqual(r.status, 200, r)
        self.assertTrue(r.body == body, "chunked 1 MiB echo differs")

    def test_ten_thousand_one_byte_chunks(self):
        body = pattern(10000)
        framed = b"".join(b"1\r\n" + body[i:i + 1] + b"\r\n" for i in range(len(body)))
        r = self.echo(framed + b"0\r\n\r\n")
        self.assertEqual((r.status, r.body), (200, body))

    def test_transfer_encoding_case_insensitive(self):
        r = self.connect(self.srv).request("POST", "/echo", body=chunked(b"ok"),
                                           headers=["Transfer-Encoding: Chunked"])
        self.assertEqual((r.status, r.body), (200, b"ok"), r)


class Limits(CoilTestCase):
    """--max-body-bytes 1K: a body of 1024 bytes passes, 1025 does not."""

    def setUp(self):
        self.srv = self.start("--max-body-bytes", "1K")

    def test_at_limit_ok(self):
        body = pattern(1024)
        r = self.connect(self.srv).request("POST", "/echo", body=body)
        self.assertEqual((r.status, r.body), (200, body), r)

    def test_over_limit_413_head_only(self):
        res = raw_until_eof(self.srv.port, request("POST", "/echo", body=b"",
                                                   headers=["Content-Length: 1025"]))
        self.assertClosesAfter(res, 413)

    def test_over_limit_413_with_body_sent(self):
        res = raw_until_eof(self.srv.port, request("POST", "/echo", body=pattern(2000)))
        self.assertClosesAfter(res, 413)

    def test_chunked_over_limit_413(self):
        framed = chunked(pattern(600), pattern(600))
        res = raw_until_eof(self.srv.port, request("POST", "/echo", body=framed,
                                                   headers=["Transfer-Encoding: chunked"]))
        self.assertClosesAfter(res, 413)

    def test_chunked_at_limit_ok(self):
        body = pattern(1024)
        r = self.connect(self.srv).request("POST", "/echo", body=chunked(body[:1000], body[1000:]),
                                           headers=["Transfer-Encoding: chunked"])
        self.assertEqual((r.status, r.body), (200, body), r)

    def test_expect_over_limit_413_without_100(self):
        conn = self.connect(self.srv)
        conn.send(request("POST", "/echo", body=b"",
                          headers=["Content-Length: 5000", "Expect: 100-continue"]))
        r = conn.read_response()
        self.assertEqual(r.status, 413, "expected 413 and no 100 Continue: %r" % r)
        self.assertTrue(r.has_token("Connection", "close"), r)
        conn.wait_closed()


class ExpectContinue(CoilTestCase):
    def setUp(self):
        self.srv = self.start()

    def test_raw_100_continue(self):
        conn = self.connect(self.srv)
        conn.send(request("POST", "/echo", body=b"",
                          headers=["Content-Length: 11", "Expect: 100-continue",
                                   "Content-Type: text/x-exp"]))
        # The interim response must come before we send a single body byte.
        while len(conn.buf) < len(CONTINUE) and CONTINUE.startswith(bytes(conn.buf)):
            self.assertTrue(conn.fill(), "closed before 100 Continue: %r" % bytes(conn.buf))
        self.assertEqual(bytes(conn.buf[:len(CONTINUE)]), CONTINUE)
        del conn.buf[:len(CONTINUE)]
        conn.send(b"hello world")
        r = conn.read_response()
        self.assertEqual((r.status, r.body), (200, b"hello world"), r)
        self.assertEqual(r.header("Content-Type"), "text/x-exp", r)
        # the connection goes on
        self.assertEqual(conn.request("GET", "/healthz").body, b"ok")

    def test_100_continue_chunked(self):
        conn = self.connect(self.srv)
        conn.send(request("POST", "/echo", body=b"", headers=["Transfer-Encoding: chunked",
                                                             "Expect: 100-continue"]))
        r = conn.read_response()
        self.assertEqual(r.status, 100, r)
        self.assertEqual(r.head_bytes, CONTINUE)
        conn.send(chunked(b"after", b" continue"))
        r = conn.read_response()
        self.assertEqual((r.status, r.body), (200, b"after continue"), r)

    def test_body_sent_without_waiting(self):
        # A client may send the body without waiting: the answer is the same, possibly after a
        # 100 Continue.
        conn = self.connect(self.srv)
        conn.send(request("POST", "/echo", body=b"eager",
                          headers=["Expect: 100-continue"]))
        r = conn.read_response()
        if r.status == 100:
            r = conn.read_response()
        self.assertEqual((r.status, r.body), (200, b"eager"), r)

    @unittest.skipUnless(shutil.which("curl"), "curl is not installed")
    def test_curl_100_continue(self):
        with tempfile.NamedTemporaryFile() as f:
            body = os.urandom(200000)
            f.write(body)
            f.flush()
            p = subprocess.run(
                ["curl", "-sS", "-v", "--max-time", "20", "--expect100-timeout", "10",
                 "-H", "Expect: 100-continue", "--data-binary", "@" + f.name,
                 "http://127.0.0.1:%d/echo" % self.srv.port],
                capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0, p.stderr.decode(errors="replace"))
        self.assertIn(b"< HTTP/1.1 100 Continue", p.stderr)
        self.assertIn(b"< HTTP/1.1 200", p.stderr)
        self.assertTrue(p.stdout == body, "curl echo differs (%d bytes back)" % len(p.stdout))


if __name__ == "__main__":
    main()
