# SPDX-License-Identifier: MIT
"""The API a user program has beyond the demo, through testapp.c: a per-route body limit above
--max-body-bytes (bodies up to it are read whole, beyond it 413), streaming routes (the body
reaches on_body in pieces, whatever its framing or however it is split, with fresh per-request
state, never buffered whole; on_body's error status; limits), application options from the
command line and the environment, and the per-worker start hook."""
import os
import random
import signal
import subprocess
import threading
import time

from coil_harness import (CoilTestCase, RawResult, Server, chunked, main, parse_all, request,
                          testapp_bin)


class AppCase(CoilTestCase):
    def start_app(self, *args, env=None):
        saved = os.environ.get("COIL_BIN")
        os.environ["COIL_BIN"] = testapp_bin()
        try:
            srv = Server(list(args), env=env)
        finally:
            if saved is None:
                del os.environ["COIL_BIN"]
            else:
                os.environ["COIL_BIN"] = saved
        self.addCleanup(lambda: self.assertEqual(srv.stop(), 0, srv.log_text()))
        return srv


def checksum(data):
    """The sum testapp's /big and /stream answer with."""
    s = 0
    for b in data:
        s = (s * 31 + b) % (1 << 64)
    return s


class AppApi(AppCase):
    def test_route_body_limit_above_global(self):
        srv = self.start_app("--workers", "1", "--max-body-bytes", "1M")
        body = os.urandom(3 << 20)  # over the global limit, under /big's 4 MiB
        c = self.connect(srv)
        r = c.request("POST", "/big", body=body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"%d %d" % (len(body), checksum(body)))
        # the same connection keeps working after a multi-megabyte body
        self.assertEqual(c.request("POST", "/big", body=b"abc").status, 200)
        # the global limit still applies to other routes
        c2 = self.connect(srv)
        r = c2.request("POST", "/small", body=os.urandom((1 << 20) + 1))
        self.assertEqual(r.status, 413, r)
        # and /big's own limit to /big
        c3 = self.connect(srv)
        r = c3.request("POST", "/big", body=os.urandom((4 << 20) + 1))
        self.assertEqual(r.status, 413, r)

    def test_route_body_limit_chunked(self):
        srv = self.start_app("--workers", "1", "--max-body-bytes", "64K")
        data = os.urandom(2 << 20)
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + 70000]), data[i:i + 70000])
                          for i in range(0, len(data), 70000))
        c = self.connect(srv)
        c.send(b"POST /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks +
               b"0\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"%d %d" % (len(data), checksum(data)))

    def test_option_from_flag_and_env(self):
        srv = self.start_app("--workers", "1", "--greeting", "from-flag")
        self.assertEqual(self.connect(srv).request("GET", "/greeting").body, b"from-flag")
        srv2 = self.start_app("--workers", "1", env={"TESTAPP_GREETING": "from-env"})
        self.assertEqual(self.connect(srv2).request("GET", "/greeting").body, b"from-env")

    def test_refused_option_exits_2_and_help_lists_it(self):
        p = subprocess.run([testapp_bin(), "--greeting", ""], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--greeting", p.stderr)
        p = subprocess.run([testapp_bin(), "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        self.assertIn("--greeting TEXT", p.stdout)
        self.assertIn("TESTAPP_GREETING", p.stdout)

    def test_start_hook_runs_on_every_worker(self):
        srv = self.start_app("--workers", "2")
        self.assertEqual(self.connect(srv).request("GET", "/started").body, b"2")


def vm_hwm_kib(pid):
    """Peak resident set size in KiB (VmHWM)."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM")


class Streaming(AppCase):
    """POST /stream: a streaming route (coil_route_stream) that checksums what on_body gets."""

    STREAM_LIMIT = 32 << 20

    def setUp(self):
        self.srv = self.start_app("--workers", "1", "--max-body-bytes", "64K")

    def expect(self, resp, data, min_pieces=1):
        self.assertEqual(resp.status, 200, resp)
        length, total, pieces = (int(x) for x in resp.body.split())
        self.assertEqual((length, total), (len(data), checksum(data)), resp)
        self.assertGreaterEqual(pieces, min_pieces if data else 0, resp)
        return pieces

    def send_in_pieces(self, conn, data, seed):
        """Sends data in random-sized writes with short pauses, so reads split it anywhere."""
        rnd = random.Random(seed)
        i = 0
        while i < len(data):
            n = rnd.choice((1, 7, 100, 1500, 16384, 70000))
            conn.send(data[i:i + n])
            i += n
            if rnd.random() < 0.05:
                time.sleep(0.002)

    def test_content_length_body_streams_in_pieces(self):
        # Over the global limit (64K) and over one receive buffer: only a streaming route
        # accepts it, and it must arrive in several on_body calls.
        data = os.urandom(1 << 20)
        c = self.connect(self.srv)
        c.send(request("POST", "/stream", body=data)[:-len(data)])
        self.send_in_pieces(c, data, 1)
        self.expect(c.read_response(), data, min_pieces=2)
        # the connection stays usable, and the next request's state starts from zero
        self.expect(c.request("POST", "/stream", body=b"abc"), b"abc")

    def test_head_split_byte_by_byte_then_body(self):
        data = os.urandom(5000)
        c = self.connect(self.srv)
        c.send_slowly(request("POST", "/stream", body=data)[:-len(data)], step=1, pause=0.001)
        c.send(data)
        self.expect(c.read_response(), data)

    def test_chunked_any_split(self):
        rnd = random.Random(2)
        pieces = [os.urandom(rnd.randint(1, 3000)) for _ in range(200)]
        data = b"".join(pieces)
        body = chunked(*pieces, ext=b";name=value", trailers=b"X-Trailer: yes\r\n")
        c = self.connect(self.srv)
        c.send(b"POST /stream HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        self.send_in_pieces(c, body, 3)
        self.expect(c.read_response(), data, min_pieces=2)
        # byte by byte through the framing of a small one
        c.send(b"POST /stream HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        c.send_slowly(chunked(b"hello", b" ", b"world"), step=1, pause=0.001)
        self.expect(c.read_response(), b"hello world")

    def test_pipelined_bodies_get_fresh_state(self):
        a, b = os.urandom(40000), os.urandom(3)
        c = self.connect(self.srv)
        c.send(request("POST", "/stream", body=a) +
               request("POST", "/stream", body=chunked(b, b"xyz"),
                       headers=["Transfer-Encoding: chunked"]) +
               request("POST", "/stream", body=b"") +
               request("GET", "/greeting"))
        self.expect(c.read_response(), a)
        self.expect(c.read_response(), b + b"xyz")
        self.assertEqual(c.read_response().body, b"0 0 0")
        self.assertEqual(c.read_response().body, b"hello")

    def test_body_held_back_by_backpressure(self):
        # 3000 pipelined answers unread pass the output bound, so reading pauses with the
        # upload's head and first bytes held aside; they are passed on from there once output
        # drains, and the rest of the body straight from the receive buffers.
        data = os.urandom(2000000)
        c = self.connect(self.srv, rcvbuf=4096)
        payload = request("GET", "/greeting") * 3000 + request("POST", "/stream", body=data)
        sender = threading.Thread(target=c.send, args=(payload,))
        sender.start()
        time.sleep(0.3)
        for _ in range(3000):
            self.assertEqual(c.read_response().body, b"hello")
        self.expect(c.read_response(), data, min_pieces=2)
        sender.join()

    def test_no_body(self):
        r = self.connect(self.srv).request("POST", "/stream")
        self.assertEqual((r.status, r.body), (200, b"0 0 0"), r)

    def test_expect_100_continue(self):
        data = os.urandom(300000)
        c = self.connect(self.srv)
        c.send(b"POST /stream HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % len(data))
        interim = c.read_response()
        self.assertEqual(interim.status, 100, interim)
        c.send(data)
        self.expect(c.read_response(), data)

    def test_on_body_status_answers_and_closes(self):
        data = os.urandom(2 << 20)
        for status_header, want in ((None, 422), ("413", 413), ("7", 500)):
            with self.subTest(status=status_header):
                headers = ["X-Fail-After: 100000"]
                if status_header:
                    headers.append("X-Fail-Status: " + status_header)
                c = self.connect(self.srv)
                head = request("POST", "/stream", body=data, headers=headers)[:-len(data)]
                c.send(head)
                # The server answers mid-body and discards the rest until we stop sending.
                self.assertClosesAfter(c.send_until_closed(data), want)
        self.assertEqual(self.connect(self.srv).request("POST", "/stream", body=b"ok").status, 200)

    def test_limits(self):
        # Content-Length over the route's limit: 413 before any body is read.
        c = self.connect(self.srv)
        c.send(b"POST /stream HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
               % (self.STREAM_LIMIT + 1))
        out, how = c.read_until_eof()
        self.assertClosesAfter(RawResult(*parse_all(out), how), 413)
        # Exactly the limit is accepted.
        data = bytes(self.STREAM_LIMIT)
        c = self.connect(self.srv, timeout=60)
        r = c.request("POST", "/stream", body=data)
        self.assertEqual(r.body.split()[0], str(self.STREAM_LIMIT).encode(), r)
        # Chunked: 413 once the decoded body passes the limit, mid-stream.
        c = self.connect(self.srv, timeout=60)
        c.send(b"POST /stream HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        block = b"%x\r\n%s\r\n" % (1 << 20, bytes(1 << 20))
        self.assertClosesAfter(
            c.send_until_closed(block * (self.STREAM_LIMIT // (1 << 20) + 1)), 413)
        # Bad chunk framing mid-stream: 400.
        c = self.connect(self.srv)
        c.send(b"POST /stream HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"5\r\nhello\r\nzz\r\n")
        out, how = c.read_until_eof()
        self.assertClosesAfter(RawResult(*parse_all(out), how), 400)

    def test_stalled_body_times_out(self):
        srv = self.start_app("--workers", "1", "--body-timeout", "300ms")
        c = self.connect(srv)
        c.send(b"POST /stream HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n" +
               os.urandom(50000))
        out, how = c.read_until_eof()
        self.assertClosesAfter(RawResult(*parse_all(out), how), 408)

    def test_drain_finishes_an_upload_in_progress(self):
        srv = self.start_app("--workers", "1")
        data = os.urandom(3 << 20)
        c = self.connect(srv, timeout=30)
        c.send(request("POST", "/stream", body=data)[:-len(data)] + data[:1 << 20])
        time.sleep(0.2)
        srv.send_signal(signal.SIGTERM)
        time.sleep(0.2)
        c.send(data[1 << 20:])
        out, how = c.read_until_eof()
        responses, rest = parse_all(out)
        self.assertClosesAfter(RawResult(responses, rest, how), 200)
        self.expect(responses[0], data)
        self.assertEqual(srv.wait_exit(), 0, srv.log_text())

    def test_bodies_are_not_buffered(self):
        # Three 30 MiB uploads (two at once) leave the peak RSS where it was: a buffering engine
        # would grow by the body size. A first upload warms up: it touches every buffer of the
        # receive ring (8 MiB by default), which then stays resident.
        data = bytes(30 << 20)
        c = self.connect(self.srv, timeout=60)
        self.assertEqual(c.request("POST", "/stream", body=data).status, 200)
        before = vm_hwm_kib(self.srv.pid)
        results = []

        def upload():
            conn = self.connect(self.srv, timeout=60)
            results.append(conn.request("POST", "/stream", body=data))

        for batch in (2, 1):
            threads = [threading.Thread(target=upload) for _ in range(batch)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        self.assertEqual([r.body.split()[0] for r in results], [str(len(data)).encode()] * 3)
        grown = vm_hwm_kib(self.srv.pid) - before
        self.assertLess(grown, 4096, "peak RSS grew %d KiB over three 30 MiB uploads" % grown)


if __name__ == "__main__":
    main()
