# SPDX-License-Identifier: MIT
"""The rate-limit middleware (--rate-limit RATE[:BURST], --rate-limit-key) on the demo binary.

A key's bucket lives on one worker; requests arriving on the other are decided there through a
job call. So a client whose connections are spread over both workers (SO_REUSEPORT picks per
connection; GET /kv/... says which worker answered in X-Coil-Worker) must get exactly BURST
successes, then 429 with Retry-After and the RateLimit-* headers, whatever the order of its
connections. The rate in those tests is tiny (0.001/s) so no token comes back during a test.
Refill is checked without timing assertions: after a 429, a request sent after sleeping two
token intervals (a lower bound on the time that passed) must succeed.
"""

import os
import signal
import socket
import subprocess
import sys
import time

from coil_harness import (CoilTestCase, Conn, ConnectionClosed, ProtocolError, Server, clean_env,
                          coil_bin, main, request)

for _var in ("COIL_RATE_LIMIT", "COIL_RATE_LIMIT_KEY", "COIL_CORS_ORIGINS", "COIL_CORS_METHODS",
             "COIL_CORS_HEADERS", "COIL_CORS_EXPOSE", "COIL_CORS_CREDENTIALS",
             "COIL_CORS_MAX_AGE"):
    os.environ.pop(_var, None)

TOO_MANY = b"Too Many Requests\n"


class LimitCase(CoilTestCase):
    def spread(self, srv, workers, n=20, probe_header=None):
        """n connections covering every worker, ordered so that consecutive ones alternate
        workers. With probe_header, each is first asked which worker it is on, under a key of
        its own (probe_header: probe-i) that costs the tested keys nothing."""
        conns = [self.connect(srv) for _ in range(n)]
        if probe_header is None:
            return conns
        by_worker = {}
        for tries in range(64):
            for i, c in enumerate(conns):
                if getattr(c, "worker", None) is None:
                    r = c.request("GET", "/kv/probe", headers=[(probe_header, "probe-%d-%d"
                                                                % (tries, i))])
                    self.assertEqual(r.status, 404, r)
                    c.worker = int(r.header("X-Coil-Worker"))
                    by_worker.setdefault(c.worker, []).append(c)
            if len(by_worker) == workers:
                break
            conns = [self.connect(srv) for _ in range(4)]
        self.assertEqual(len(by_worker), workers, "connections reached only workers %s"
                         % sorted(by_worker))
        ordered = []
        lists = list(by_worker.values())
        while any(lists):
            for lst in lists:
                if lst:
                    ordered.append(lst.pop(0))
        return ordered

    def round_robin(self, conns, count, path="/plaintext", headers=()):
        """count GETs, one after another, each on the next connection."""
        return [conns[i % len(conns)].request("GET", path, headers=list(headers))
                for i in range(count)]

    def assertExactBudget(self, rs, burst, ok=200):
        statuses = [r.status for r in rs]
        self.assertEqual(statuses, [ok] * burst + [429] * (len(rs) - burst), statuses)
        for i, r in enumerate(rs[:burst]):
            self.assertEqual(r.header("RateLimit-Limit"), str(burst), r)
            self.assertEqual(r.header("RateLimit-Remaining"), str(burst - 1 - i), r)
            self.assertGreaterEqual(int(r.header("RateLimit-Reset")), 1, r)
            self.assertIsNone(r.header("Retry-After"), r)
        for r in rs[burst:]:
            self.assertLimited(r, burst)

    def assertLimited(self, r, burst):
        self.assertEqual(r.status, 429, r)
        self.assertEqual(r.body, TOO_MANY, r)
        self.assertTrue(r.header("Content-Type").startswith("text/plain"), r)
        self.assertEqual(r.header("RateLimit-Limit"), str(burst), r)
        self.assertEqual(r.header("RateLimit-Remaining"), "0", r)
        self.assertGreaterEqual(int(r.header("RateLimit-Reset")), 1, r)
        self.assertGreaterEqual(int(r.header("Retry-After")), 1, r)
        self.assertStandardHeaders(r, len(TOO_MANY))
        self.assertEqual(len(r.header_all("RateLimit-Limit")), 1, r)


class Exact(LimitCase):
    def test_two_workers_one_address_many_connections(self):
        srv = self.start("--workers", "2", "--rate-limit", "0.001:5")
        self.assertEqual(srv.workers, 2)
        rs = self.round_robin(self.spread(srv, 2), 40)
        self.assertExactBudget(rs, 5)
        r = rs[-1]
        # 1000 s per token: the next one is about 1000 s away (less what the test took).
        self.assertGreater(int(r.header("Retry-After")), 900, r)
        self.assertLessEqual(int(r.header("Retry-After")), 1000, r)
        self.assertGreater(int(r.header("RateLimit-Reset")), 4900, r)
        self.assertLessEqual(int(r.header("RateLimit-Reset")), 5000, r)

    def test_two_workers_known_spread(self):
        # The API key probes which worker each connection is on; requests without a key are
        # then counted under the address, from connections on both workers in turn.
        srv = self.start("--workers", "2", "--rate-limit", "0.001:5", "--rate-limit-key",
                         "apikey")
        conns = self.spread(srv, 2, probe_header="X-API-Key")
        self.assertEqual({c.worker for c in conns[:2]}, {0, 1})
        rs = self.round_robin(conns, 30, path="/kv/x")
        self.assertExactBudget(rs, 5, ok=404)  # no such key: the handler ran
        self.assertEqual({int(r.header("X-Coil-Worker")) for r in rs[:5]}, {0, 1},
                         "the successes came from both workers")

    def test_one_worker(self):
        srv = self.start("--workers", "1", "--rate-limit", "0.001:5")
        rs = self.round_robin(self.spread(srv, 1), 25)
        self.assertExactBudget(rs, 5)

    def test_pipelined_behind_a_waiting_request(self):
        # Many requests in one write, on a connection of each worker (so on one of them every
        # request waits for the other worker's verdict): the responses still come in order.
        srv = self.start("--workers", "2", "--rate-limit", "0.001:8", "--rate-limit-key",
                         "header:X-Client")
        conns = self.spread(srv, 2, probe_header="X-Client")
        data = b"".join(request("GET", "/plaintext", headers=[("X-Client", "me")])
                        for _ in range(6))
        rs = []
        for c in conns[:2]:
            c.send(data)
            rs += [c.read_response() for _ in range(6)]
        self.assertExactBudget(rs, 8)

    def test_bodies_survive_the_wait(self):
        # A request decided on the other worker waits with its body: the handler must still
        # get all of it (a buffered body echoed back; a streamed one counted by /upload).
        srv = self.start("--workers", "2", "--rate-limit", "0.001:40", "--rate-limit-key",
                         "header:X-Client")
        conns = self.spread(srv, 2, probe_header="X-Client")
        me = [("X-Client", "me")]
        for i, size in enumerate((1, 1000, 70000, 300000) * 2):
            c = conns[i % len(conns)]
            body = bytes((i + j) % 251 for j in range(size))
            r = c.request("POST", "/echo", body=body, headers=me)
            self.assertEqual((r.status, len(r.body)), (200, size), r)
            self.assertEqual(r.body, body)
            r = c.request("POST", "/upload", body=body, headers=me)
            self.assertEqual((r.status, r.body), (200, str(size).encode()), r)
            self.assertIsNotNone(r.header("RateLimit-Remaining"), r)

    def test_head_and_unknown_paths_count(self):
        srv = self.start("--workers", "2", "--rate-limit", "0.001:3")
        conn = self.connect(srv)
        self.assertEqual(conn.request("GET", "/no/such/path").status, 404)
        r = conn.request("HEAD", "/plaintext")
        self.assertEqual((r.status, r.header("RateLimit-Remaining")), (200, "1"), r)
        self.assertEqual(conn.request("POST", "/echo", body=b"x").status, 200)
        r = conn.request("HEAD", "/plaintext")
        self.assertEqual((r.status, r.body), (429, b""), r)
        self.assertEqual(r.header("Content-Length"), str(len(TOO_MANY)), r)


class Keys(LimitCase):
    def test_header_key_separate_budgets(self):
        srv = self.start("--workers", "2", "--rate-limit", "0.001:3", "--rate-limit-key",
                         "header:X-Client")
        conns = self.spread(srv, 2, probe_header="X-Client")
        alice = self.round_robin(conns, 12, headers=[("X-Client", "alice")])
        self.assertExactBudget(alice, 3)
        bob = self.round_robin(conns, 12, headers=[("X-Client", "bob")])
        self.assertExactBudget(bob, 3)
        # Without the header: the address, a budget of its own.
        anon = self.round_robin(conns, 6)
        self.assertExactBudget(anon, 3)
        # Alice is still out (the name's case does not matter; the value's does).
        r = conns[0].request("GET", "/plaintext", headers=[("x-client", "alice")])
        self.assertLimited(r, 3)
        r = conns[1].request("GET", "/plaintext", headers=[("X-Client", "Alice")])
        self.assertEqual(r.status, 200, r)

    def test_apikey_key(self):
        srv = self.start("--workers", "2", "--rate-limit", "0.001:4", "--rate-limit-key",
                         "apikey")
        conns = self.spread(srv, 2)
        # The same key in either header is one client.
        rs = []
        for i in range(8):
            h = ("X-API-Key", "k1") if i % 2 else ("Authorization", "Bearer k1")
            rs.append(conns[i % len(conns)].request("GET", "/plaintext", headers=[h]))
        self.assertExactBudget(rs, 4)
        rs = self.round_robin(conns, 6, headers=[("Authorization", "bearer   k2")])
        self.assertExactBudget(rs, 4)
        # No credential: the address.
        rs = self.round_robin(conns, 6, headers=[("Authorization", "Basic dTpw")])
        self.assertExactBudget(rs, 4)

    def test_from_the_environment(self):
        srv = self.start(env={"COIL_RATE_LIMIT": "0.001:2",
                              "COIL_RATE_LIMIT_KEY": "header:X-Tenant"})
        conn = self.connect(srv)
        rs = [conn.request("GET", "/plaintext", headers=[("X-Tenant", "t1")]) for _ in range(4)]
        self.assertExactBudget(rs, 2)
        self.assertEqual(conn.request("GET", "/plaintext",
                                      headers=[("X-Tenant", "t2")]).status, 200)


class Refill(LimitCase):
    def test_a_token_comes_back(self):
        rate = 50.0
        srv = self.start("--workers", "2", "--rate-limit", "%g:1" % rate)
        conns = self.spread(srv, 2)
        limited = None
        for i in range(2000):  # requests faster than one per 20 ms soon find the bucket empty
            r = conns[i % len(conns)].request("GET", "/plaintext")
            self.assertIn(r.status, (200, 429), r)
            if r.status == 429:
                limited = r
                break
        self.assertIsNotNone(limited, "2000 requests and never a 429")
        self.assertLimited(limited, 1)
        self.assertEqual(limited.header("Retry-After"), "1", limited)  # 20 ms, rounded up
        time.sleep(2 / rate)  # at least two tokens' worth of time: the bucket has one
        r = conns[0].request("GET", "/plaintext")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("RateLimit-Limit"), "1", r)
        self.assertEqual(r.header("RateLimit-Remaining"), "0", r)


class V6Conn(Conn):
    """Conn over IPv6 loopback."""

    def __init__(self, port):
        super(Conn, self).__init__()  # the reader's buffer, without Conn's IPv4 socket
        self.sock = socket.create_connection(("::1", port), timeout=10)


class Addresses(LimitCase):
    def v6_server(self, bind):
        try:
            with socket.socket(socket.AF_INET6) as probe:
                probe.bind(("::1", 0))
        except OSError as e:
            self.skipTest("no IPv6 loopback: %s" % e)
        return self.start("--workers", "2", "--rate-limit", "0.001:3", "--port", "0",
                          "--bind", bind, add_addr=False)

    def v6_conns(self, srv, n):
        conns = [V6Conn(srv.port) for _ in range(n)]
        for c in conns:
            self.addCleanup(c.close)
        return conns

    def test_ipv6_client(self):
        srv = self.v6_server("::1")
        self.assertExactBudget(self.round_robin(self.v6_conns(srv, 8), 10), 3)

    def test_ipv4_mapped_and_ipv6_clients_are_apart(self):
        srv = self.v6_server("::")
        try:
            v4 = [self.connect(srv.port) for _ in range(8)]
        except OSError as e:
            self.skipTest("[::] takes no IPv4 here (bindv6only): %s" % e)
        self.assertExactBudget(self.round_robin(v4, 10), 3)
        self.assertExactBudget(self.round_robin(self.v6_conns(srv, 8), 10), 3)


class WithCors(LimitCase):
    def test_preflights_free_and_429_readable_by_the_page(self):
        origin = "https://app.example.com"
        srv = self.start("--workers", "2", "--rate-limit", "0.001:2", "--cors-origins", origin)
        conns = self.spread(srv, 2)
        for i in range(6):
            r = conns[i % len(conns)].request("OPTIONS", "/plaintext", headers=[
                ("Origin", origin), ("Access-Control-Request-Method", "GET")])
            self.assertEqual(r.status, 204, r)
            self.assertIsNone(r.header("RateLimit-Limit"), "a preflight costs no token: %r" % r)
        rs = self.round_robin(conns, 4, headers=[("Origin", origin)])
        self.assertExactBudget(rs, 2)
        for r in rs:
            self.assertEqual(r.header("Access-Control-Allow-Origin"), origin, r)


class Off(LimitCase):
    def test_no_limit_without_the_option(self):
        srv = self.start("--workers", "2")
        rs = self.round_robin(self.spread(srv, 2), 50)
        self.assertEqual({r.status for r in rs}, {200})
        self.assertEqual([r.header("RateLimit-Limit") for r in rs], [None] * 50)


def answered(conn, data, n):
    """Sends data and reads up to n responses; a close or reset instead is an acceptable answer
    to a failed allocation (a timeout is not: that is a hang). Returns the statuses read."""
    out = []
    try:
        conn.send(data)
        for _ in range(n):
            out.append(conn.read_response().status)
    except (ConnectionClosed, ProtocolError, ConnectionResetError, BrokenPipeError):
        pass
    return out


def limited_workload(port):
    """Preflights and CORS answers, one address over connections on both workers (decisions
    asked of the other worker: defer, job call, reply, continue or 429), pipelined requests
    waiting behind one that waits for its verdict. Returns the statuses seen."""
    origin = ("Origin", "https://app.example.com")
    conns = [Conn(port, timeout=5) for _ in range(6)]
    seen = []
    try:
        for i in range(12):
            c = conns[i % len(conns)]
            if i % 4 == 0:
                data = request("OPTIONS", "/json", headers=[
                    origin, ("Access-Control-Request-Method", "PUT"),
                    ("Access-Control-Request-Headers", "content-type")])
            else:
                data = request("GET", "/plaintext", headers=[origin])
            seen += answered(c, data, 1)
        seen += answered(conns[0], b"".join(request("GET", "/json") for _ in range(6)), 6)
    finally:
        for c in conns:
            c.close()
    return seen


class AllocFail(CoilTestCase):
    def test_every_allocation_can_fail_once(self):
        # COIL_TEST_ALLOC_FAIL=N fails the N-th allocation of each worker once it serves
        # (see test_alloc_fail.py); the sweep ends at the first N never reached.
        injected = 0
        for n in range(1, 400):
            srv = Server(["--workers", "2", "--drain-timeout", "5s", "--rate-limit", "0.001:8",
                          "--cors-origins", "https://app.example.com"],
                         env={"COIL_TEST_ALLOC_FAIL": str(n)})
            try:
                seen = limited_workload(srv.port)
                # Both workers live: fresh connections are answered (a hang raises), all but
                # the ones an injected failure (one per worker) may still close.
                after = []
                for _ in range(6):
                    c = Conn(srv.port, timeout=5)
                    after += answered(c, request("GET", "/plaintext"), 1)
                    c.close()
                code = srv.stop(signal.SIGTERM, timeout=20)
            except BaseException:
                srv.stop(signal.SIGKILL)
                print("allocation %d; server log:\n%s" % (n, srv.log_text()), file=sys.stderr)
                raise
            self.assertEqual(code, 0, "allocation %d: exit status\n%s" % (n, srv.log_text()))
            self.assertEqual(srv.sanitizer_lines(), [], "allocation %d:\n%s"
                             % (n, srv.log_text()))
            self.assertTrue(all(s in (200, 204, 429, 500, 503) for s in seen),
                            "allocation %d: statuses %r" % (n, seen))
            self.assertGreaterEqual(len(after), 4, "allocation %d: after %r" % (n, after))
            self.assertTrue(set(after) <= {200, 429, 503}, "allocation %d: after %r" % (n, after))
            if "an allocation failed by injection" not in srv.log_text():
                break
            injected += 1
        else:
            self.fail("the workload still reached allocation %d" % n)
        self.assertGreater(injected, 5, "the sweep failed too few allocations to prove anything")
        print("swept %d allocations" % injected, file=sys.stderr)


def run(args, env=None):
    return subprocess.run([coil_bin(), "--port", "0", "--bind", "127.0.0.1"] + list(args),
                          capture_output=True, text=True, timeout=20, env=clean_env(env),
                          stdin=subprocess.DEVNULL)


class Refused(CoilTestCase):
    def test_bad_values(self):
        cases = [["--rate-limit", v] for v in ("0", "abc", "1:0", "-1", "1e3", "0.5:", ":5",
                                              "1:2:3", "", "2000000000", "0.0000000001")]
        cases += [["--rate-limit", "1", "--rate-limit-key", v]
                  for v in ("cookie", "header:", "header:bad name", "IP", "")]
        for args in cases:
            with self.subTest(args=args):
                p = run(args)
                self.assertEqual(p.returncode, 2, "coil %s: exit %d, stderr %r"
                                 % (args, p.returncode, p.stderr))
                self.assertIn("--rate-limit", p.stderr, p.stderr)
                self.assertNotRegex(p.stderr, r"Sanitizer|runtime error", p.stderr)

    def test_key_without_limit_warns(self):
        srv = self.start("--rate-limit-key", "apikey")
        self.assertIn("no effect without --rate-limit", srv.log_text())
        r = self.connect(srv).request("GET", "/plaintext")
        self.assertIsNone(r.header("RateLimit-Limit"), r)


if __name__ == "__main__":
    main()
