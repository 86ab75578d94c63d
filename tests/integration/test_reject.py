# SPDX-License-Identifier: MIT
"""Requests the server must refuse: each gets exactly one response with the exact status and
Connection: close, and then the server closes the connection. A valid request is pipelined
after most bad ones: it must not be answered (no request smuggling past a rejection)."""

from coil_harness import CoilTestCase, main, raw_until_eof, request

GOOD = request("GET", "/plaintext")


def head(*lines, version="HTTP/1.1", target="/plaintext", method="GET"):
    return ("%s %s %s\r\n" % (method, target, version)).encode() + b"".join(
        (l if isinstance(l, bytes) else l.encode("latin-1")) + b"\r\n" for l in lines) + b"\r\n"


class Reject(CoilTestCase):
    args = ()

    def setUp(self):
        self.srv = self.start(*self.args)

    def check(self, data, status, follow=True):
        res = raw_until_eof(self.srv.port, data + (GOOD if follow else b""))
        self.assertClosesAfter(res, status)
        return res.responses[0]

    def check_each(self, cases, status, follow=True):
        for data in cases:
            with self.subTest(request=data[:120]):
                self.check(data, status, follow)


class Malformed(Reject):
    def test_malformed_request_line_400(self):
        self.check_each([
            b"GARBAGE\r\n\r\n",
            b"GET\r\n\r\n",
            b"GET /plaintext\r\nHost: a\r\n\r\n",
            b"GET  /plaintext HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /plaintext  HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /plaintext HTTP/1.1 extra\r\nHost: a\r\n\r\n",
            b"GET /plain text HTTP/1.1\r\nHost: a\r\n\r\n",
            b"G(T /plaintext HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /plaintext http/1.1\r\nHost: a\r\n\r\n",
            b"GET /plaintext HTTP/1.x\r\nHost: a\r\n\r\n",
            b"GET /plaintext HTTP/11\r\nHost: a\r\n\r\n",
            b"GET /pl\x00aintext HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET /pl\x7faintext HTTP/1.1\r\nHost: a\r\n\r\n",
            b" GET /plaintext HTTP/1.1\r\nHost: a\r\n\r\n",
        ], 400)

    def test_garbage_is_rejected_without_waiting_for_a_blank_line(self):
        # A request line that cannot be valid is answered as soon as it is seen, even though
        # the head never ends (no "\r\n\r\n" is sent and we keep the connection open).
        res = raw_until_eof(self.srv.port, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
        self.assertClosesAfter(res, 400)

    def test_malformed_header_400(self):
        self.check_each([
            head("Host: a", "NoColonHere"),
            head("Host: a", ": empty-name"),
            head("Host: a", "Bad(Name: x"),
            head("Host: a", "Bad Name: x"),
            head("Host: a", "Bad\x00Name: x"),
        ], 400)

    def test_control_characters_in_value_400(self):
        self.check_each([head("Host: a", "X-Test: a\x01b"),
                         head("Host: a", "X-Test: a\x00b"),
                         head("Host: a", "X-Test: a\x7fb"),
                         head("Host: a", "X-Test: a\x1bb"),
                         head("Host: a", "X-Test: a\rb")], 400)

    def test_tab_and_obs_text_in_value_accepted(self):
        # HTAB is allowed in a field value, and so are obs-text bytes (RFC 9110 5.5).
        res = raw_until_eof(self.srv.port, head("Host: a", "X-Tab: a\tb", "X-Obs: caf\xe9",
                                                "Connection: close"))
        self.assertEqual([r.status for r in res.responses], [200], res)

    def test_whitespace_before_colon_400(self):
        self.check_each([head("Host : a"), head("Host: a", "X-Test : b"),
                         head("Host: a", "X-Test\t: b"),
                         head("Host: a", "Content-Length : 0")], 400)

    def test_obs_fold_400(self):
        self.check_each([head("Host: a", "X-Test: first", " folded"),
                         head("Host: a", "X-Test: first", "\tfolded")], 400)

    def test_bare_lf_400(self):
        self.check_each([
            b"GET /plaintext HTTP/1.1\nHost: a\n\n",
            b"GET /plaintext HTTP/1.1\r\nHost: a\nX-Test: b\r\n\r\n",
            b"GET /plaintext HTTP/1.1\r\nHost: a\r\n\n",
        ], 400)

    def test_bare_cr_400(self):
        self.check_each([b"GET /plaintext HTTP/1.1\rHost: a\r\n\r\n",
                         head("Host: a", "X-Test: a\rb: c")], 400)

    def test_missing_host_on_http11_400(self):
        self.check(head(), 400)

    def test_two_host_headers_400(self):
        self.check_each([head("Host: a", "Host: b"), head("Host: a", "Host: a")], 400)

    def test_content_length_and_transfer_encoding_400(self):
        self.check_each([
            head("Host: a", "Content-Length: 5", "Transfer-Encoding: chunked", method="POST",
                 target="/echo") + b"5\r\nhello\r\n0\r\n\r\n",
            head("Host: a", "Transfer-Encoding: chunked", "Content-Length: 0", method="POST",
                 target="/echo") + b"0\r\n\r\n",
        ], 400)

    def test_transfer_encoding_not_chunked_501(self):
        self.check_each([
            head("Host: a", "Transfer-Encoding: gzip", method="POST", target="/echo"),
            head("Host: a", "Transfer-Encoding: gzip, chunked", method="POST", target="/echo")
            + b"0\r\n\r\n",
            head("Host: a", "Transfer-Encoding: identity", method="POST", target="/echo"),
        ], 501)

    def test_transfer_encoding_on_http10_400(self):
        self.check(head("Transfer-Encoding: chunked", method="POST", target="/echo",
                        version="HTTP/1.0") + b"0\r\n\r\n", 400)

    def test_conflicting_content_length_400(self):
        post = dict(method="POST", target="/echo")
        self.check_each([
            head("Host: a", "Content-Length: 5", "Content-Length: 6", **post) + b"hello!",
            head("Host: a", "Content-Length: 5, 6", **post) + b"hello!",
        ], 400)

    def test_bad_content_length_400(self):
        post = dict(method="POST", target="/echo")
        self.check_each([
            head("Host: a", "Content-Length: abc", **post),
            head("Host: a", "Content-Length: -1", **post),
            head("Host: a", "Content-Length: +5", **post) + b"hello",
            head("Host: a", "Content-Length: 0x10", **post),
            head("Host: a", "Content-Length: 1 2", **post),
            head("Host: a", "Content-Length: ", **post),
        ], 400)

    def test_invalid_chunk_framing_400(self):
        te = head("Host: a", "Transfer-Encoding: chunked", method="POST", target="/echo")
        self.check_each([
            te + b"zz\r\nhello\r\n0\r\n\r\n",
            te + b"-5\r\nhello\r\n0\r\n\r\n",
            te + b";ext\r\nhello\r\n0\r\n\r\n",
            te + b"0x5\r\nhello\r\n0\r\n\r\n",
            te + b"5\r\nhelloXX0\r\n\r\n",
            te + b"5\nhello\r\n0\r\n\r\n",
        ], 400)

    def test_unsupported_version_505(self):
        self.check_each([head("Host: a", version="HTTP/2.0"),
                         head("Host: a", version="HTTP/1.2"),
                         head("Host: a", version="HTTP/3.0")], 505)

    def test_unknown_expectation_417(self):
        self.check_each([
            head("Host: a", "Expect: something-else", "Content-Length: 5", method="POST",
                 target="/echo") + b"hello",
            head("Host: a", "Expect: 200-ok"),
        ], 417)


class HeaderLimits(Reject):
    """--max-header-bytes 1024 --max-headers 10."""
    args = ("--max-header-bytes", "1024", "--max-headers", "10")

    def test_long_target_414(self):
        self.check(head("Host: a", target="/" + "a" * 2000), 414)

    def test_long_target_never_ending_414(self):
        # The request line alone passes the limit; its end is never sent.
        res = raw_until_eof(self.srv.port, b"GET /" + b"b" * 3000)
        self.assertClosesAfter(res, 414)

    def test_large_header_431(self):
        self.check(head("Host: a", "X-Big: " + "v" * 2000), 431)

    def test_headers_summing_over_limit_431(self):
        self.check(head("Host: a", *["X-H%d: %s" % (i, "w" * 150) for i in range(8)]), 431)

    def test_too_many_headers_431(self):
        self.check(head("Host: a", *["X-N%d: n" % i for i in range(10)]), 431)

    def test_at_header_count_limit_ok(self):
        data = head("Host: a", "Connection: close", *["X-N%d: n" % i for i in range(8)])
        res = raw_until_eof(self.srv.port, data)
        self.assertEqual([r.status for r in res.responses], [200], res)

    def test_under_byte_limit_ok(self):
        data = head("Host: a", "Connection: close", "X-Pad: " + "p" * 700)
        self.assertLess(len(data), 1024)
        res = raw_until_eof(self.srv.port, data)
        self.assertEqual([r.status for r in res.responses], [200], res)


class DefaultHeaderLimit(Reject):
    def test_target_over_8k_414(self):
        self.check(head("Host: a", target="/" + "c" * 9000), 414)

    def test_headers_over_8k_431(self):
        self.check(head("Host: a", *["X-H%d: %s" % (i, "d" * 1000) for i in range(9)]), 431)

    def test_head_just_under_8k_ok(self):
        pad = 8190 - len(head("Host: a", "Connection: close", "X-Pad: "))
        data = head("Host: a", "Connection: close", "X-Pad: " + "q" * pad)
        self.assertEqual(len(data), 8190)
        res = raw_until_eof(self.srv.port, data)
        self.assertEqual([r.status for r in res.responses], [200], res)

    def test_100_headers_ok(self):
        data = head("Host: a", "Connection: close", *["X-N%d: n" % i for i in range(98)])
        res = raw_until_eof(self.srv.port, data)
        self.assertEqual([r.status for r in res.responses], [200], res)

    def test_over_100_headers_431(self):
        self.check(head("Host: a", *["X-N%d: n" % i for i in range(100)]), 431)


class BodyLimit(Reject):
    args = ("--max-body-bytes", "100")

    def test_content_length_over_limit_413(self):
        self.check(head("Host: a", "Content-Length: 101", method="POST", target="/echo")
                   + b"x" * 101, 413)

    def test_chunked_over_limit_413(self):
        self.check(head("Host: a", "Transfer-Encoding: chunked", method="POST", target="/echo")
                   + b"40\r\n" + b"y" * 64 + b"\r\n40\r\n" + b"z" * 64 + b"\r\n0\r\n\r\n", 413)


class RejectionsCounted(Reject):
    def test_stats_rejected_counts(self):
        before = self.srv.stats()["rejected"]
        self.check(b"GARBAGE\r\n\r\n", 400)
        self.check(head("Host: a", version="HTTP/2.0"), 505)
        self.assertGreaterEqual(self.srv.stats()["rejected"] - before, 2)


if __name__ == "__main__":
    main()
