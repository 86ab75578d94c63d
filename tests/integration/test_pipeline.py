# SPDX-License-Identifier: MIT
"""Pipelining: many requests in one write are answered in order; a request split at any byte
offset (or sent a byte at a time) is parsed the same; h2load with 16 requests in flight per
connection gets every answer."""

import re
import subprocess
import threading
import time

from coil_harness import CoilTestCase, main, need_tool, parse_all, raw, raw_until_eof, request

HELLO = b"Hello, World!"
JSON = b'{"message":"Hello, World!"}'


class Pipeline(CoilTestCase):
    def setUp(self):
        self.srv = self.start()

    def test_mixed_requests_in_one_write(self):
        reqs = [
            (request("GET", "/plaintext"), False, 200, HELLO),
            (request("GET", "/json"), False, 200, JSON),
            (request("POST", "/echo", body=b"first body"), False, 200, b"first body"),
            (request("HEAD", "/healthz"), True, 200, b""),
            (request("GET", "/nope"), False, 404, None),
            (request("POST", "/echo", body=b"", headers=["Content-Type: text/x-a"]), False, 200,
             b""),
            (request("GET", "/echo"), False, 405, None),
            (request("POST", "/echo", body=b"5\r\nchunk\r\n0\r\n\r\n",
                     headers=["Transfer-Encoding: chunked"]), False, 200, b"chunk"),
            (request("GET", "/healthz", version="HTTP/1.0", headers=["Connection: keep-alive"]),
             False, 200, b"ok"),
            (request("POST", "/echo", body=b"second body"), False, 200, b"second body"),
            (request("GET", "/readyz"), False, 200, b"ready"),
            (request("GET", "/json", headers=["Connection: close"]), False, 200, JSON),
        ]
        data = b"".join(r[0] for r in reqs)
        heads = {i for i, r in enumerate(reqs) if r[1]}
        res = raw_until_eof(self.srv.port, data, head=heads)
        self.assertEqual(len(res.responses), len(reqs), res)
        self.assertEqual(res.rest, b"")
        for i, (resp, (_, _, status, body)) in enumerate(zip(res.responses, reqs)):
            self.assertEqual(resp.status, status, "response %d: %r" % (i, resp))
            if body is not None:
                self.assertEqual(resp.body, body, "response %d: %r" % (i, resp))
        self.assertTrue(res.responses[-1].has_token("Connection", "close"))

    def test_order_of_distinct_echoes(self):
        n = 500
        data = b"".join(request("POST", "/echo", body=b"req-%05d" % i) for i in range(n))
        rs = raw(self.srv.port, data, count=n)
        self.assertEqual([r.body for r in rs], [b"req-%05d" % i for i in range(n)])

    def test_many_small_gets_in_one_write(self):
        n = 2000
        rs = raw(self.srv.port, request("GET", "/plaintext") * n, count=n)
        self.assertTrue(all(r.status == 200 and r.body == HELLO for r in rs))

    def test_close_delivers_everything_before_it(self):
        # Many answers still queued when the server reaches a Connection: close request, and
        # more requests (never to be answered) after it that the server has not read. Closing
        # with unread input makes the kernel send a reset that throws away the queued answers;
        # the server must let the client read all of them first (lingering close).
        n, junk = 20_000, 30_000
        data = (request("GET", "/plaintext") * n
                + request("GET", "/json", headers=["Connection: close"])
                + request("GET", "/healthz") * junk)
        conn = self.connect(self.srv, rcvbuf=16384, timeout=20)

        def send():
            try:
                conn.send(data)
            except OSError:
                pass  # the server may close before all the junk is sent

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        time.sleep(1.0)  # let the server queue output we are not reading yet
        got, how = conn.read_until_eof()
        rs, rest = parse_all(got)
        self.assertEqual(rest, b"", "answers cut short (closed: %s) after %d responses"
                         % (how, len(rs)))
        self.assertEqual(len(rs), n + 1, "closed: %s" % how)
        self.assertEqual(rs[-1].body, JSON)
        self.assertTrue(rs[-1].has_token("Connection", "close"), rs[-1])
        self.assertTrue(all(r.body == HELLO for r in rs[:-1]))
        sender.join(10)

    def test_split_at_every_offset(self):
        # One keep-alive connection; the request is sent in two pieces split at each offset.
        conn = self.connect(self.srv)
        for data, body in ((request("GET", "/json", headers=["X-Pad: abc"]), JSON),
                           (request("POST", "/echo", body=b"split-body",
                                    headers=["Content-Type: text/x-split"]), b"split-body")):
            for i in range(1, len(data)):
                conn.send(data[:i])
                time.sleep(0.003)  # so that the pieces arrive in separate reads
                conn.send(data[i:])
                r = conn.read_response()
                self.assertEqual((r.status, r.body), (200, body), "split at %d: %r" % (i, r))

    def test_two_pipelined_split_at_every_offset(self):
        # The boundary between two requests can fall anywhere in a read.
        conn = self.connect(self.srv)
        data = request("POST", "/echo", body=b"one") + request("GET", "/healthz")
        for i in range(1, len(data)):
            conn.send(data[:i])
            time.sleep(0.003)
            conn.send(data[i:])
            r1, r2 = conn.read_response(), conn.read_response()
            self.assertEqual((r1.status, r1.body, r2.status, r2.body), (200, b"one", 200, b"ok"),
                             "split at %d: %r %r" % (i, r1, r2))

    def test_one_byte_at_a_time(self):
        conn = self.connect(self.srv)
        for data, body in ((request("GET", "/plaintext"), HELLO),
                           (request("POST", "/echo", body=b"bytewise",
                                    headers=["Content-Type: a/b"]), b"bytewise"),
                           (request("POST", "/echo", body=b"3\r\nabc\r\n0\r\n\r\n",
                                    headers=["Transfer-Encoding: chunked"]), b"abc")):
            conn.send_slowly(data, step=1, pause=0.002)
            r = conn.read_response()
            self.assertEqual((r.status, r.body), (200, body), r)

    def test_h2load_pipelined(self):
        need_tool("h2load")
        url = "http://127.0.0.1:%d/plaintext" % self.srv.port
        p = subprocess.run(["h2load", "--h1", "-n", "20000", "-c", "8", "-m", "16", url],
                           capture_output=True, text=True, timeout=120)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, out)
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
        self.assertIsNotNone(m, out)
        total, _, done, ok, failed, errored, timeout = map(int, m.groups())
        self.assertEqual((total, done, ok, failed, errored, timeout),
                         (20000, 20000, 20000, 0, 0, 0), out)
        m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(int(m.group(1)), 20000, out)


if __name__ == "__main__":
    main()
