# SPDX-License-Identifier: MIT
"""The replicated key-value store under /kv/:key, with two workers. A write through one worker
is seen through the other after replication (a bounded retry: replication is asynchronous)."""

import time

from coil_harness import CoilTestCase, conns_by_worker, main, raw, request

REPLICATION_WAIT = 5.0  # s


class KV(CoilTestCase):
    def setUp(self):
        self.srv = self.start("--workers", "2")
        self.w = conns_by_worker(self.srv.port, 2)
        for c in self.w.values():
            self.addCleanup(c.close)

    def req(self, worker, method, key, body=None, headers=()):
        r = self.w[worker].request(method, "/kv/" + key, body=body, headers=headers)
        self.assertEqual(r.header("X-Coil-Worker"), str(worker),
                         "X-Coil-Worker of %s /kv/%s: %r" % (method, key, r))
        self.assertStandardHeaders(r)
        return r

    def eventually(self, worker, key, status, body=None):
        """GET /kv/key on worker until it answers status (and body); returns the last answer."""
        deadline = time.monotonic() + REPLICATION_WAIT
        while True:
            r = self.req(worker, "GET", key)
            if r.status == status and (body is None or r.body == body):
                return r
            if time.monotonic() > deadline:
                self.fail("worker %d never answered %d %r for %s within %.0fs; last %r"
                          % (worker, status, body, key, REPLICATION_WAIT, r))
            time.sleep(0.05)

    def test_absent_key_404_on_both_workers(self):
        for w in (0, 1):
            r = self.req(w, "GET", "never-set")
            self.assertEqual(r.status, 404, r)
            r = self.req(w, "DELETE", "never-set")
            self.assertEqual(r.status, 404, r)

    def test_put_then_get_same_connection(self):
        r = self.req(0, "PUT", "local", body=b"value-0")
        self.assertEqual((r.status, r.body), (204, b""), r)
        r = self.req(0, "GET", "local")
        self.assertEqual((r.status, r.body), (200, b"value-0"), r)
        self.assertEqual(r.header("Content-Length"), "7", r)

    def test_replicated_put_overwrite_delete(self):
        self.assertEqual(self.req(0, "PUT", "shared", body=b"from-0").status, 204)
        self.eventually(1, "shared", 200, b"from-0")
        # overwrite through the other worker
        self.assertEqual(self.req(1, "PUT", "shared", body=b"from-1, longer").status, 204)
        self.eventually(0, "shared", 200, b"from-1, longer")
        # delete through worker 1, gone on worker 0
        r = self.req(1, "DELETE", "shared")
        self.assertEqual((r.status, r.body), (204, b""), r)
        self.eventually(0, "shared", 404)
        self.assertEqual(self.req(1, "GET", "shared").status, 404)
        # and a second delete finds nothing, on either worker
        self.assertEqual(self.req(1, "DELETE", "shared").status, 404)
        self.assertEqual(self.req(0, "DELETE", "shared").status, 404)

    def test_replicated_both_directions(self):
        self.assertEqual(self.req(1, "PUT", "from-one", body=b"1").status, 204)
        self.assertEqual(self.req(0, "PUT", "from-zero", body=b"0").status, 204)
        self.eventually(0, "from-one", 200, b"1")
        self.eventually(1, "from-zero", 200, b"0")

    def test_delete_replicated_from_other_worker(self):
        self.assertEqual(self.req(0, "PUT", "del-me", body=b"x").status, 204)
        self.eventually(1, "del-me", 200, b"x")
        self.assertEqual(self.req(0, "DELETE", "del-me").status, 204)
        self.eventually(1, "del-me", 404)

    def test_binary_and_empty_values(self):
        value = bytes(range(256)) * 4
        self.assertEqual(self.req(0, "PUT", "bin", body=value).status, 204)
        self.eventually(1, "bin", 200, value)
        self.assertEqual(self.req(1, "PUT", "empty", body=b"").status, 204)
        r = self.eventually(0, "empty", 200, b"")
        self.assertEqual(r.header("Content-Length"), "0", r)

    def test_many_keys_replicated(self):
        n = 200
        for i in range(n):
            self.assertEqual(self.req(i % 2, "PUT", "k%03d" % i, body=b"v%03d" % i).status, 204)
        for i in range(n):
            self.eventually((i + 1) % 2, "k%03d" % i, 200, b"v%03d" % i)

    def test_large_value_replicated(self):
        value = bytes(range(256)) * 1024  # 256 KiB
        self.assertEqual(self.req(0, "PUT", "large", body=value).status, 204)
        self.eventually(1, "large", 200, value)

    def test_burst_of_puts_all_replicated(self):
        # Thousands of PUTs pipelined on one worker: every one must reach the other worker,
        # however full the channel between them gets.
        n = 3000
        self.w[0].send(b"".join(request("PUT", "/kv/burst%04d" % i, body=b"b%04d" % i)
                                for i in range(n)))
        for i in range(n):
            r = self.w[0].read_response()
            self.assertEqual(r.status, 204, "PUT %d: %r" % (i, r))
        missing = list(range(n))
        deadline = time.monotonic() + REPLICATION_WAIT
        while missing:
            self.w[1].send(b"".join(request("GET", "/kv/burst%04d" % i) for i in missing))
            rs = [(i, self.w[1].read_response()) for i in missing]
            missing = [i for i, r in rs if (r.status, r.body) != (200, b"b%04d" % i)]
            if missing and time.monotonic() > deadline:
                self.fail("%d of %d keys never reached worker 1, e.g. burst%04d"
                          % (len(missing), n, missing[0]))
            time.sleep(0.05)

    def test_last_write_wins_on_one_worker(self):
        for v in (b"a", b"bb", b"ccc"):
            self.assertEqual(self.req(0, "PUT", "seq", body=v).status, 204)
        self.eventually(1, "seq", 200, b"ccc")

    def test_head(self):
        self.assertEqual(self.req(0, "PUT", "h", body=b"twelve bytes").status, 204)
        r = self.req(0, "HEAD", "h")
        self.assertEqual((r.status, r.body, r.header("Content-Length")), (200, b"", "12"), r)
        self.eventually(1, "h", 200)
        r = self.req(1, "HEAD", "h")
        self.assertEqual((r.status, r.header("Content-Length")), (200, "12"), r)

    def test_405_allow(self):
        # The engine answers 405 before the kv handler runs, so X-Coil-Worker is not required.
        r = self.w[0].request("POST", "/kv/x", body=b"v")
        self.assertEqual(r.status, 405, r)
        for m in ("GET", "PUT", "DELETE"):
            self.assertTrue(r.has_token("Allow", m), r)

    def test_jobs_run_counts_replication(self):
        before = self.srv.stats()["jobs_run"]
        self.assertEqual(self.req(0, "PUT", "job", body=b"j").status, 204)
        self.eventually(1, "job", 200, b"j")
        self.assertGreater(self.srv.stats()["jobs_run"], before)

    def test_204_has_no_content_length(self):
        # RFC 9110 8.6: "A server MUST NOT send a Content-Length header field in any response
        # with a status code of 1xx (Informational) or 204 (No Content)."
        r = self.req(0, "PUT", "cl", body=b"v")
        self.assertEqual(r.status, 204, r)
        self.assertIsNone(r.header("Content-Length"), r)
        r = self.req(0, "DELETE", "cl")
        self.assertEqual(r.status, 204, r)
        self.assertIsNone(r.header("Content-Length"), r)


class SingleWorker(CoilTestCase):
    def test_pipelined_put_get_delete(self):
        srv = self.start("--workers", "1")
        data = (request("PUT", "/kv/p", body=b"pv") + request("GET", "/kv/p")
                + request("DELETE", "/kv/p") + request("GET", "/kv/p"))
        rs = raw(srv.port, data, count=4)
        self.assertEqual([(r.status, r.body) for r in rs],
                         [(204, b""), (200, b"pv"), (204, b""), (404, rs[3].body)])
        self.assertTrue(all(r.header("X-Coil-Worker") == "0" for r in rs), rs)


if __name__ == "__main__":
    main()
