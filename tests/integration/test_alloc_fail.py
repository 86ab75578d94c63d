# SPDX-License-Identifier: MIT
"""Allocation-failure sweep: every heap allocation the engine makes while serving can fail once
without a crash, a leak or a hung connection.

COIL_TEST_ALLOC_FAIL=N makes the N-th allocation of the worker (counted from when it starts
serving) fail once, and the server logs "an allocation failed by injection" when it does. For
N = 1, 2, ... the same workload runs against a fresh one-worker server: keep-alive, pipelined,
bodies by length and chunked, a streamed upload, deferred responses with requests pipelined
behind them, a Server-Sent Events stream, a client that leaves while its response waits,
engine answers (404, 405, 400), 100-continue and the replicated store; then, on a server with
--proxy and --backend in front of a second coil, the upstream client's paths. Every request must get a
response or a closed connection, never silence (the reads are bounded); afterwards a fresh
request must be answered 200 (the worker lives), and the server must stop cleanly with exit
status 0 and no sanitizer report (LeakSanitizer runs at exit in the ASan build). The sweep ends
at the first N whose failure was never reached, which proves the whole workload was covered.
"""

import os
import signal
import socket
import sys
import time

from coil_harness import (CoilTestCase, Conn, ConnectionClosed, ProtocolError, Server, chunked,
                          main, request)

MAX_N = 600        # a bound on the sweep; the workload makes far fewer allocations
READ_TIMEOUT = 5.0  # a step that gets neither an answer nor a close within this has hung


def answered(conn, n=1, head=False):
    """Reads up to n responses; a close (or reset) instead is an acceptable answer to a failed
    allocation. Returns the responses read. A timeout raises: that is a hang."""
    out = []
    for _ in range(n):
        try:
            out.append(conn.read_response(head=head))
        except (ConnectionClosed, ProtocolError):
            break
        except (ConnectionResetError, BrokenPipeError):
            break
    return out


def send(conn, data):
    try:
        conn.send(data)
        return True
    except (ConnectionResetError, BrokenPipeError):
        return False


def workload(port):
    """Runs every step; returns the list of statuses seen (for the record)."""
    seen = []

    def step(data, n=1, pieces=1, pause=0.0):
        c = Conn(port, timeout=READ_TIMEOUT)
        try:
            size = max(1, len(data) // pieces)
            for i in range(0, len(data), size):
                if not send(c, data[i:i + size]):
                    break
                if pause:
                    time.sleep(pause)
            seen.extend(r.status for r in answered(c, n))
        finally:
            c.close()

    keep = b"".join(request("GET", "/plaintext") for _ in range(3))
    step(keep, 3)
    step(b"".join(request("GET", "/json") for _ in range(8)), 8)
    big = b"x" * 40000
    step(request("POST", "/echo", body=big), 1, pieces=3, pause=0.01)
    step(request("POST", "/echo", body=chunked(b"a" * 100, b"b" * 5000, b"c", b"d" * 20000, b"e"),
                 headers=["Transfer-Encoding: chunked"]), 1, pieces=4, pause=0.01)
    step(request("POST", "/upload", body=b"u" * 100000), 1, pieces=5, pause=0.01)
    step(request("GET", "/delay/5") + request("GET", "/plaintext") + request("GET", "/delay/0"),
         3)
    step(request("GET", "/events?n=3&every=2"), 1)
    step(request("GET", "/nope") + request("DELETE", "/plaintext"), 2)
    step(b"GET /bad request\r\n\r\n", 1)
    step(request("POST", "/echo", body=b"", headers=["Expect: 100-continue",
                                                       "Content-Length: 5"]) + b"hello", 1)
    step(request("PUT", "/kv/k", body=b"v") + request("GET", "/kv/k"), 2)
    # Several waiting at once, then one that leaves while its response waits.
    conns = [Conn(port, timeout=READ_TIMEOUT) for _ in range(6)]
    try:
        for c in conns:
            send(c, request("GET", "/delay/3"))
        for c in conns:
            seen.extend(r.status for r in answered(c))
    finally:
        for c in conns:
            c.close()
    gone = Conn(port, timeout=READ_TIMEOUT)
    send(gone, request("GET", "/delay/2000"))
    time.sleep(0.02)
    gone.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    gone.close()  # a reset: the waiting request is aborted
    time.sleep(0.02)
    return seen


class AllocFailTest(CoilTestCase):
    def test_every_allocation_can_fail_once(self):
        injected_runs = 0
        for n in range(1, MAX_N + 1):
            srv = Server(["--workers", "1", "--drain-timeout", "5s"],
                         env={"COIL_TEST_ALLOC_FAIL": str(n)})
            try:
                seen = workload(srv.port)
                c = Conn(srv.port, timeout=READ_TIMEOUT)
                r = c.request("GET", "/plaintext")
                c.close()
                self.assertEqual(r.status, 200, "after failing allocation %d: %r" % (n, r))
                code = srv.stop(signal.SIGTERM, timeout=20)
            except BaseException:
                srv.stop(signal.SIGKILL)
                print("allocation %d; server log:\n%s" % (n, srv.log_text()), file=sys.stderr)
                raise
            self.assertEqual(code, 0, "allocation %d: exit status\n%s" % (n, srv.log_text()))
            self.assertEqual(srv.sanitizer_lines(), [],
                             "allocation %d:\n%s" % (n, srv.log_text()))
            fired = "an allocation failed by injection" in srv.log_text()
            if not fired:
                break
            injected_runs += 1
            self.assertTrue(all(s in (200, 204, 404, 405, 400, 503) for s in seen),
                            "allocation %d: statuses %r" % (n, seen))
        else:
            self.fail("the workload still reached allocation %d" % MAX_N)
        # The workload allocates: the sweep must have failed some allocations, or it proves
        # nothing.
        self.assertGreater(injected_runs, 10)
        print("swept %d allocations" % injected_runs, file=sys.stderr)


def proxy_workload(port):
    """The upstream client's paths: proxied requests kept alive and pipelined, bodies both ways
    (by length and chunked, streamed through), a handler's own fetch (/relay), a client that
    leaves while its proxied request waits."""
    seen = []

    def step(data, n=1):
        c = Conn(port, timeout=READ_TIMEOUT)
        try:
            if send(c, data):
                seen.extend(r.status for r in answered(c, n))
        finally:
            c.close()

    step(b"".join(request("GET", "/up/plaintext") for _ in range(3)), 3)
    step(request("POST", "/up/echo", body=b"p" * 30000), 1)
    step(request("POST", "/up/echo", body=chunked(b"a" * 100, b"b" * 20000, b"c"),
                 headers=["Transfer-Encoding: chunked"]), 1)
    step(request("GET", "/up/json") + request("GET", "/relay/plaintext"), 2)
    step(request("GET", "/up/events?n=3&every=2"), 1)
    gone = Conn(port, timeout=READ_TIMEOUT)
    send(gone, request("GET", "/up/delay/2000"))
    time.sleep(0.05)
    gone.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    gone.close()
    time.sleep(0.02)
    return seen


class ProxyAllocFailTest(CoilTestCase):
    def test_every_allocation_of_a_proxied_request_can_fail_once(self):
        back = Server(["--workers", "1", "--max-body-bytes", "1M"])
        self.addCleanup(back.stop)
        url = "http://127.0.0.1:%d/" % back.port
        injected_runs = 0
        for n in range(1, MAX_N + 1):
            srv = Server(["--workers", "1", "--drain-timeout", "5s", "--proxy", "/up/=" + url,
                          "--backend", url], env={"COIL_TEST_ALLOC_FAIL": str(n)})
            try:
                seen = proxy_workload(srv.port)
                # Proxied requests allocate, so the one failure may fall on one of these (a
                # 503); every other one must be answered in full: the worker lives.
                c = Conn(srv.port, timeout=READ_TIMEOUT)
                after = [c.request("GET", "/up/plaintext") for _ in range(3)]
                c.close()
                ok = [r for r in after if (r.status, r.body) == (200, b"Hello, World!")]
                self.assertGreaterEqual(len(ok), 2, "after failing allocation %d: %r" % (n, after))
                self.assertTrue(all(r.status in (200, 503) for r in after), after)
                code = srv.stop(signal.SIGTERM, timeout=20)
            except BaseException:
                srv.stop(signal.SIGKILL)
                print("allocation %d; server log:\n%s" % (n, srv.log_text()), file=sys.stderr)
                raise
            self.assertEqual(code, 0, "allocation %d: exit status\n%s" % (n, srv.log_text()))
            self.assertEqual(srv.sanitizer_lines(), [],
                             "allocation %d:\n%s" % (n, srv.log_text()))
            if "an allocation failed by injection" not in srv.log_text():
                break
            injected_runs += 1
            self.assertTrue(all(s in (200, 502, 503) for s in seen),
                            "allocation %d: statuses %r" % (n, seen))
        else:
            self.fail("the workload still reached allocation %d" % MAX_N)
        self.assertGreater(injected_runs, 10)
        print("swept %d allocations of the proxy" % injected_runs, file=sys.stderr)


if __name__ == "__main__":
    main()
