# SPDX-License-Identifier: MIT
"""Short load runs with real clients: ab with keep-alive (HTTP/1.0 keep-alive), wrk with a Lua
script that checks every response, and a steady state that allocates nothing (/stats
heap_allocs unchanged over 2000 keep-alive requests). Correctness only: no throughput numbers
are asserted (those belong in perf/). The ab and wrk tests are skipped if the tool is missing."""

import json
import os
import re
import subprocess

from coil_harness import HERE, CoilTestCase, main, need_tool, request

HELLO = b"Hello, World!"


class Load(CoilTestCase):
    def setUp(self):
        self.srv = self.start("--workers", "2")
        self.url = "http://127.0.0.1:%d" % self.srv.port

    def test_ab_keep_alive(self):
        need_tool("ab")
        p = subprocess.run(["ab", "-k", "-n", "5000", "-c", "16", "-s", "10",
                            self.url + "/plaintext"],
                           capture_output=True, text=True, timeout=120)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, out)

        def field(name):
            m = re.search(r"^%s:\s+(\d+)" % re.escape(name), out, re.M)
            self.assertIsNotNone(m, "no %r in ab output:\n%s" % (name, out))
            return int(m.group(1))

        self.assertEqual(field("Complete requests"), 5000, out)
        self.assertEqual(field("Failed requests"), 0, out)
        self.assertEqual(field("Keep-Alive requests"), 5000, out)
        self.assertEqual(field("Document Length"), len(HELLO), out)
        self.assertNotIn("Non-2xx responses", out)

    def test_wrk_every_response_correct(self):
        need_tool("wrk")
        script = os.path.join(HERE, "wrk_check.lua")
        env = dict(os.environ, WRK_EXPECT_BODY=HELLO.decode())
        p = subprocess.run(["wrk", "-t1", "-c32", "-d3s", "--timeout", "10s", "-s", script,
                            self.url + "/plaintext"],
                           capture_output=True, text=True, timeout=60, env=env)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, out)
        m = re.search(r"wrk_check: responses=(\d+) wrong=(\d+)", out)
        self.assertIsNotNone(m, "the Lua script printed no count:\n" + out)
        responses, wrong = int(m.group(1)), int(m.group(2))
        self.assertEqual(wrong, 0, out)
        self.assertGreater(responses, 0, out)
        m = re.search(r"(\d+) requests in", out)
        self.assertIsNotNone(m, out)
        self.assertGreater(int(m.group(1)), 0, out)
        self.assertNotIn("Non-2xx", out)
        m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
        if m:
            self.assertEqual(int(m.group(1)), 0, "connect errors:\n" + out)
            self.assertEqual(int(m.group(4)), 0, "timeouts:\n" + out)

    def test_steady_state_allocates_nothing(self):
        # Connections opened and warmed up first; then 2000 more requests on them must not touch
        # the heap.
        conns = [self.connect(self.srv) for _ in range(4)]
        batch = request("GET", "/plaintext") * 50

        def run(rounds):
            for c in conns:
                for _ in range(rounds):
                    c.send(batch)
                    for _ in range(50):
                        r = c.read_response()
                        if r.status != 200 or r.body != HELLO:
                            self.fail("bad response %r" % r)

        def stats():
            r = conns[0].request("GET", "/stats")
            self.assertEqual(r.status, 200, r)
            return json.loads(r.body)

        run(4)
        stats()  # the stats route warmed up too
        before = stats()
        run(10)  # 4 connections x 10 rounds x 50 = 2000 requests
        after = stats()
        self.assertEqual(after["heap_allocs"], before["heap_allocs"],
                         "heap allocations during 2000 keep-alive requests: before %r after %r"
                         % (before, after))
        self.assertGreaterEqual(after["requests"] - before["requests"], 2000, (before, after))


if __name__ == "__main__":
    main()
