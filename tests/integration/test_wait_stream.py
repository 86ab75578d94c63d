# SPDX-License-Identifier: MIT
"""Streamed responses of deferred handlers (coil_res_stream / coil_res_write): the demo's
Server-Sent Events (/events) reach the client event by event, chunked on HTTP/1.1 with exact
framing (close-delimited on HTTP/1.0), and the connection is reused after the stream; testapp's
/stream sends 1 GiB to a slow reader with the server's memory staying bounded (coil_res_write
says -EAGAIN and on_writable resumes), with chunked or Content-Length framing, and a client
that leaves mid-stream aborts it once.

Nothing asserts on time: "incremental" is shown by order (the first event is read while the
stream has not ended yet), memory by RSS samples taken while the body is read."""

import os
import subprocess
import time

from coil_harness import Conn, _read_line, main, need_tool, request, vm_rss_kib
from test_wait import WaitCase

SANITIZED = bool(os.environ.get("COIL_SANITIZE_FLAGS", "").strip())
MIB = 1 << 20


def event(i):
    return b'id: %d\ndata: {"n":%d}\n\n' % (i, i)


def events(n):
    return b"".join(event(i) for i in range(1, n + 1))


PATTERN = bytes(i % 251 for i in range(251 * 600))  # > 64 KiB + 251


class BodyChecker:
    """Checks a body of testapp's pattern (byte i is i % 251) piece by piece, holding none of
    it."""

    def __init__(self):
        self.offset = 0

    def feed(self, data):
        view = memoryview(data)
        step = len(PATTERN) - 251
        while view:
            piece = view[:step]
            start = self.offset % 251
            if piece != PATTERN[start:start + len(piece)]:
                bad = next(k for k in range(len(piece)) if piece[k] != PATTERN[start + k])
                raise AssertionError("body byte %d is %d, want %d" % (
                    self.offset + bad, piece[bad], (self.offset + bad) % 251))
            self.offset += len(piece)
            view = view[len(piece):]


def take(conn, n, sink):
    """Passes the next n bytes of conn to sink, as they arrive."""
    while n:
        if not conn.buf and not conn.fill():
            raise AssertionError("closed (%s) with %d body bytes still to come"
                                 % (conn.closed_how, n))
        k = min(n, len(conn.buf))
        sink(bytes(conn.buf[:k]))
        del conn.buf[:k]
        n -= k


def read_chunked_body(conn, sink, on_chunk=None):
    """Decodes a chunked body from conn, strictly (hex size, CRLF after the data, no trailers),
    passing the data to sink as it arrives. Returns the number of chunks (not the last)."""
    chunks = 0
    while True:
        line = _read_line(conn)
        if not line or not all(c in b"0123456789abcdefABCDEF" for c in line):
            raise AssertionError("bad chunk size line %r" % line)
        size = int(line, 16)
        if size == 0:
            end = _read_line(conn)
            if end != b"":
                raise AssertionError("trailer or junk after the last chunk: %r" % end)
            return chunks
        chunks += 1
        take(conn, size, sink)
        if on_chunk:
            on_chunk()
        crlf = bytearray()
        take(conn, 2, crlf.extend)
        if crlf != b"\r\n":
            raise AssertionError("chunk data not followed by CRLF: %r" % bytes(crlf))


class Events(WaitCase):
    """The demo's GET /events?n=&every=: Server-Sent Events from a timer."""

    def setUp(self):
        self.srv = self.start("--workers", "1")

    def url(self, query):
        return "http://127.0.0.1:%d/events?%s" % (self.srv.port, query)

    def test_curl_receives_events_incrementally(self):
        need_tool("curl")
        n = 5
        p = subprocess.Popen(["curl", "-N", "-s", "--max-time", "60", self.url("n=%d&every=300" % n)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.addCleanup(p.wait, 10)
        self.addCleanup(p.kill)
        first = b"".join(p.stdout.readline() for _ in range(3))
        self.assertEqual(first, event(1))
        # the first event was readable while the stream still had four to go
        self.assertIsNone(p.poll(), "curl ended before reading more than the first event")
        rest, err = p.communicate(timeout=60)
        self.assertEqual(p.returncode, 0, err)
        self.assertEqual(first + rest, events(n))

    def test_raw_chunked_framing_and_reuse(self):
        c = self.connect(self.srv)
        c.send(request("GET", "/events?n=4&every=50"))
        r = c.read_response(head=True)  # the head only: the body is read below
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "text/event-stream", r)
        self.assertEqual(r.header("Cache-Control"), "no-cache", r)
        self.assertEqual(r.header("Transfer-Encoding"), "chunked", r)
        self.assertIsNone(r.header("Content-Length"), r)
        self.assertFalse(r.has_token("Connection", "close"), r)
        self.assertIsNotNone(r.header("Date"), r)
        body = bytearray()
        chunks = read_chunked_body(c, body.extend)
        self.assertEqual(bytes(body), events(4))
        self.assertGreaterEqual(chunks, 1)
        self.assertEqual(c.buf, b"", "bytes after the last chunk")
        # the connection is reused after the stream
        r = c.request("GET", "/plaintext")
        self.assertEqual((r.status, r.body), (200, b"Hello, World!"), r)
        r = c.request("GET", "/events?n=2&every=0")
        self.assertEqual((r.status, r.body), (200, events(2)), r)
        self.assertEqual(r.header("Transfer-Encoding"), "chunked", r)

    def test_first_event_before_end_raw(self):
        # Read the first event; the terminating chunk must not have been sent yet (the other
        # events are still to come from their timers).
        c = self.connect(self.srv)
        c.send(request("GET", "/events?n=3&every=400"))
        c.read_response(head=True)
        body = bytearray()
        while len(body) < len(event(1)):
            line = _read_line(c)
            size = int(line, 16)
            self.assertNotEqual(size, 0, "stream ended after %r" % bytes(body))
            take(c, size, body.extend)
            take(c, 2, lambda crlf: None)
        self.assertEqual(bytes(body[:len(event(1))]), event(1))
        self.assertNotIn(event(3), bytes(c.buf), "the last event arrived with the first")
        self.assertNotIn(b"0\r\n\r\n", bytes(c.buf), "the end arrived with the first event")
        read_chunked_body(c, body.extend)
        self.assertEqual(bytes(body), events(3))

    def test_pipelined_behind_stream(self):
        # Requests sent behind a stream are answered after its end, in order.
        c = self.connect(self.srv)
        c.send(request("GET", "/events?n=3&every=50") + request("GET", "/plaintext")
               + request("GET", "/events?n=2&every=0") + request("GET", "/delay/20")
               + request("GET", "/json"))
        got = [c.read_response() for _ in range(5)]
        self.assertEqual([(r.status, r.body) for r in got],
                         [(200, events(3)), (200, b"Hello, World!"), (200, events(2)),
                          (200, b'{"delayed_ms":20}'), (200, b'{"message":"Hello, World!"}')])

    def test_many_events_in_order(self):
        c = self.connect(self.srv, timeout=30)
        r = c.request("GET", "/events?n=2000&every=0")
        self.assertEqual((r.status, r.body), (200, events(2000)), r)
        r = c.request("GET", "/events?every=0")  # n defaults to 10
        self.assertEqual((r.status, r.body), (200, events(10)), r)

    def test_http10_close_delimited(self):
        c = self.connect(self.srv)
        c.send(request("GET", "/events?n=3&every=20", version="HTTP/1.0"))
        r = c.read_response(head=True)
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.header("Transfer-Encoding"), r)
        self.assertIsNone(r.header("Content-Length"), r)
        data, how = c.read_until_eof()
        self.assertEqual(data, events(3))

    def test_validation(self):
        c = self.connect(self.srv)
        for q in ("n=0", "n=100001", "n=abc", "n=-1", "every=60001", "every=-5", "every=x",
                  "n=5&every=1.5"):
            r = c.request("GET", "/events?" + q)
            self.assertEqual(r.status, 400, "/events?%s: %r" % (q, r))
        r = c.request("GET", "/events?n=1&every=0")
        self.assertEqual((r.status, r.body), (200, events(1)), r)

    def test_client_gone_mid_stream(self):
        conns = [Conn(self.srv.port) for _ in range(5)]
        for c in conns:
            c.send(request("GET", "/events?n=100&every=50"))
            c.read_response(head=True)
            _read_line(c)  # the first chunk's size: the stream is under way
        for c in conns:
            c.close()
        st = self.wait_stat(self.srv, "aborted", 5)
        self.assertEqual(st["waiting"], 0, st)
        r = self.connect(self.srv).request("GET", "/events?n=2&every=0")
        self.assertEqual((r.status, r.body), (200, events(2)), r)
        self.stop(self.srv)


class Stream(WaitCase):
    """testapp's /stream and /stream-len: big bodies written with coil_res_write."""

    def setUp(self):
        env = None
        if SANITIZED:
            # ASan keeps freed memory in quarantine (256 MiB by default): every piece written
            # would count as growth. A small quarantine keeps the RSS bound meaningful.
            opts = os.environ.get("ASAN_OPTIONS", "")
            env = {"ASAN_OPTIONS": (opts + ":" if opts else "") + "quarantine_size_mb=4"}
        self.srv = self.start_app("--workers", "1", "--write-timeout", "60s", env=env)

    def read_stream(self, conn, mb, framing, slow_reads=0, rss=None):
        """Reads a /stream body of mb MiB (chunked or length framing), checking the pattern
        as it comes; the first slow_reads reads are spaced out. rss: a list the server's RSS
        (KiB) is sampled into, every 8 MiB."""
        checker = BodyChecker()
        state = {"next_sample": 0, "reads": 0}

        def sink(data):
            checker.feed(data)
            state["reads"] += 1
            if state["reads"] <= slow_reads:
                time.sleep(0.05)
            if rss is not None and checker.offset >= state["next_sample"]:
                rss.append(vm_rss_kib(self.srv.pid))
                state["next_sample"] += 8 * MIB

        if framing == "chunked":
            read_chunked_body(conn, sink)
        else:
            take(conn, mb * MIB, sink)
        self.assertEqual(checker.offset, mb * MIB)

    def test_big_stream_to_slow_reader_memory_bounded(self):
        mb = 256 if SANITIZED else 1024  # either way, well above the bound on growth
        # warm up: the first stream's allocations are not growth
        c0 = self.connect(self.srv)
        r = c0.request("GET", "/stream?mb=1")
        self.assertEqual(len(r.body), MIB, r)
        baseline = vm_rss_kib(self.srv.pid)
        c = self.connect(self.srv, rcvbuf=64 * 1024, timeout=60)
        c.send(request("GET", "/stream?mb=%d" % mb))
        r = c.read_response(head=True)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Transfer-Encoding"), "chunked", r)
        self.assertEqual(r.header("Content-Type"), "application/octet-stream", r)
        samples = []
        self.read_stream(c, mb, "chunked", slow_reads=60, rss=samples)
        samples.append(vm_rss_kib(self.srv.pid))
        growth_mib = (max(samples) - baseline) / 1024
        self.assertLess(growth_mib, 64, "server RSS grew by %.0f MiB while streaming %d MiB "
                        "(baseline %d KiB, samples %s)" % (growth_mib, mb, baseline, samples[:40]))
        st = self.assertAppClean(self.srv, waiting=0, stream_aborts=0)
        self.assertGreater(st["writable"], 0, "coil_res_write never said -EAGAIN: %r" % st)
        # the connection goes on
        self.assertEqual(c.request("GET", "/greeting").body, b"hello")

    def test_stream_with_content_length(self):
        mb = 64
        c = self.connect(self.srv, timeout=60)
        c.send(request("GET", "/stream-len?mb=%d" % mb))
        r = c.read_response(head=True)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Length"), str(mb * MIB), r)
        self.assertIsNone(r.header("Transfer-Encoding"), r)
        self.read_stream(c, mb, "length")
        self.assertEqual(c.request("GET", "/greeting").body, b"hello")
        self.assertAppClean(self.srv, waiting=0)

    def test_small_and_empty_streams(self):
        c = self.connect(self.srv)
        for path, framing in (("/stream", "chunked"), ("/stream-len", "length")):
            for mb in (0, 1, 3):
                r = c.request("GET", "%s?mb=%d" % (path, mb))
                self.assertEqual(r.status, 200, r)
                self.assertEqual(len(r.body), mb * MIB, r)
                BodyChecker().feed(r.body)
                if framing == "chunked":
                    self.assertEqual(r.header("Transfer-Encoding"), "chunked", r)
                else:
                    self.assertEqual(r.header("Content-Length"), str(mb * MIB), r)
            r = c.request("GET", path + "?mb=2049")
            self.assertEqual(r.status, 400, r)
        self.assertAppClean(self.srv, waiting=0)

    def test_pipelined_behind_big_stream(self):
        c = self.connect(self.srv, timeout=30)
        c.send(request("GET", "/stream?mb=8") + request("GET", "/greeting")
               + request("GET", "/stream-len?mb=3") + request("GET", "/later/5"))
        r = c.read_response()
        self.assertEqual(len(r.body), 8 * MIB, r)
        BodyChecker().feed(r.body)
        self.assertEqual(c.read_response().body, b"hello")
        r = c.read_response()
        self.assertEqual(len(r.body), 3 * MIB, r)
        BodyChecker().feed(r.body)
        self.assertEqual(c.read_response().body, b"later 5")
        self.assertAppClean(self.srv, waiting=0)

    def test_head_of_streamed_length(self):
        c = self.connect(self.srv)
        r = c.request("HEAD", "/stream-len?mb=1")
        self.assertEqual((r.status, r.body), (200, b""), r)
        self.assertEqual(r.header("Content-Length"), str(MIB), r)
        # nothing of the body followed: the next answer is the next request's
        r = c.request("GET", "/greeting")
        self.assertEqual((r.status, r.body), (200, b"hello"), r)
        self.assertAppClean(self.srv, waiting=0)

    def test_http10_stream_close_delimited(self):
        c = self.connect(self.srv)
        c.send(request("GET", "/stream?mb=2", version="HTTP/1.0"))
        r = c.read_response(head=True)
        self.assertEqual(r.status, 200, r)
        self.assertIsNone(r.header("Transfer-Encoding"), r)
        data, how = c.read_until_eof()
        self.assertEqual(len(data), 2 * MIB)
        BodyChecker().feed(data)

    def test_write_timeout_ends_stream_to_stalled_client(self):
        # A client that stops reading: the write timeout closes the connection, which aborts
        # the stream once (on_abort), and the worker goes on.
        srv = self.start_app("--workers", "1", "--write-timeout", "1s")
        c = Conn(srv.port, rcvbuf=16 * 1024, timeout=30)
        self.addCleanup(c.close)
        c.send(request("GET", "/stream?mb=512"))
        st = self.wait_stat(srv, "stream_aborts", 1, timeout=20)
        self.assertEqual(st["waiting"], 0, st)
        self.assertEqual(st["aborted"], 1, st)
        r = self.connect(srv).request("GET", "/stream?mb=1")
        self.assertEqual(len(r.body), MIB, r)
        self.assertAppClean(srv, stream_aborts=1)
        self.stop(srv)

    def test_client_gone_mid_stream(self):
        c = Conn(self.srv.port, rcvbuf=32 * 1024)
        c.send(request("GET", "/stream?mb=512"))
        c.read_response(head=True)
        size = int(_read_line(c), 16)
        self.assertGreater(size, 0)
        take(c, min(size, 1000), BodyChecker().feed)
        c.close()
        st = self.wait_stat(self.srv, "stream_aborts", 1)
        self.assertEqual(st["waiting"], 0, st)
        self.assertEqual(st["aborted"], 1, st)
        r = self.connect(self.srv).request("GET", "/stream?mb=1")
        self.assertEqual(len(r.body), MIB, r)
        self.assertAppClean(self.srv, stream_aborts=1)
        self.stop(self.srv)


if __name__ == "__main__":
    main()
