# SPDX-License-Identifier: MIT
"""coil_cache, the per-worker cache of coil.h, through cacheapp (tests/integration/cacheapp.c says
what each route does), and the demo's crud item cache (handlers/db.c) against a real PostgreSQL.

Semantics checked: a miss, a put, a hit, a replacement (binary keys and values, an empty value);
each worker has its own table (a put is seen on its worker only) unless the cache replicates, which
fills every worker; coil_cache_invalidate drops a key on every worker before its done callback runs
(so a read on any worker right after the answer misses), with and without an owner request,
synchronously with one worker; stamps: a put whose stamp is not after the key's last invalidation
is refused (-ESTALE) on the invalidating worker and on the others, as is an older read than the
value held and a stamp already expired, while a fresh put after an invalidation is taken; a refused
put is not replicated and a replicated put cannot bring an invalidated value back; LRU eviction by
entries (a read refreshes), eviction by bytes, -E2BIG; a stale put still refused after the
invalidation's tombstone (or the newer value that replaced it) was evicted (fails today: the
eviction forgets the stamp); TTL expiry (reads do not extend it); clients leaving while an
invalidation is in flight; a mixed load from both workers. The demo with two workers: X-Cache MISS
then HIT on new connections and across workers, a PUT or a POST upsert answered only after every
worker dropped the item (the next GET anywhere is a MISS with the new row).

Waits are bounded polls (replication is asynchronous); nothing asserts how long anything took.
"""

import json
import os
import sys
import threading
import time
import unittest
import urllib.parse

from coil_harness import (CoilTestCase, Conn, Server, built_bin, conns_by_worker, main, request,
                          wait_until)

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.normpath(os.path.join(HERE, "..", "..", "tools")))
import services  # noqa: E402  (tools/services.py: PostgresServer, RedisServer)

# A developer's own settings must not reach the servers under test.
for _name in ("REDIS_URL", "COIL_REDIS_URL", "DATABASE_URL", "COIL_DATABASE_URL"):
    os.environ.pop(_name, None)

POLL = 10.0  # s: bound on every poll for something asynchronous


def cacheapp_bin():
    return built_bin("COIL_CACHEAPP", "tests", "coil_cacheapp")


def q(key):
    """A key as a path segment (any byte)."""
    if isinstance(key, str):
        key = key.encode()
    return urllib.parse.quote(key, safe="")


class CacheAppCase(CoilTestCase):
    """Starts cacheapp and talks to it; the base of test_redis.py's cases too."""

    def app(self, *args, workers=2, env=None, expect_exit=0):
        if not os.path.exists(cacheapp_bin()):
            raise AssertionError("cacheapp not found at %s (build it, or set COIL_CACHEAPP)"
                                 % cacheapp_bin())
        srv = Server(["--workers", str(workers), "--drain-timeout", "5s"] + [str(a) for a in args],
                     env=env, program=cacheapp_bin())
        self._servers.append(srv)
        self.addCleanup(self._stop_checked, srv, expect_exit)
        return srv

    def pinned(self, srv, workers=None):
        """{worker: Conn}: keep-alive connections, one served by each worker (new connections
        until each worker has answered one)."""
        workers = workers or srv.workers
        found = {}
        for _ in range(256):
            c = Conn(srv.port)
            r = c.request("GET", "/worker")
            self.assertEqual(r.status, 200, r)
            w = int(r.header("X-Worker"))
            self.assertEqual(json.loads(r.body)["worker"], w, r)
            if w in found:
                c.close()
                continue
            found[w] = c
            self.addCleanup(c.close)
            if len(found) == workers:
                return found
        self.fail("256 connections reached only workers %s of %d" % (sorted(found), workers))

    @staticmethod
    def worker_of(resp):
        return int(resp.header("X-Worker"))

    def app_stats(self, srv):
        c = Conn(srv.port)
        try:
            r = c.request("GET", "/stats", headers=["Connection: close"])
        finally:
            c.close()
        self.assertEqual(r.status, 200, r)
        return json.loads(r.body)

    def assertAppClean(self, srv):
        st = self.app_stats(srv)
        self.assertEqual(st["late"], 0, "a callback ran for a finished request: %r" % st)
        return st


class CacheCase(CacheAppCase):
    # ---- routes

    def put(self, conn, key, value, c="main", stamp=None):
        path = "/cache/%s?c=%s" % (q(key), c)
        if stamp is not None:
            path += "&stamp=%s" % stamp
        r = conn.request("PUT", path, body=value if isinstance(value, bytes) else value.encode())
        doc = json.loads(r.body)
        self.assertEqual(doc["worker"], self.worker_of(r), r)
        return r.status, doc["rc"]

    def get(self, conn, key, c="main"):
        """(status, value or None)."""
        r = conn.request("GET", "/cache/%s?c=%s" % (q(key), c))
        if r.status == 404:
            self.assertEqual(json.loads(r.body)["miss"], True, r)
            return 404, None
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.header("Content-Type"), "application/octet-stream", r)
        return 200, r.body

    def delete(self, conn, key, c="main", owner=True):
        r = conn.request("DELETE", "/cache/%s?c=%s%s" % (q(key), c, "" if owner else "&owner=0"))
        self.assertEqual(r.status, 200, r)
        doc = json.loads(r.body)
        self.assertEqual(doc["worker"], self.worker_of(r), r)
        return doc

    def stamp(self, conn):
        r = conn.request("GET", "/stamp")
        self.assertEqual(r.status, 200, r)
        return int(r.body)

    def ok_put(self, conn, key, value, c="main", stamp=None):
        self.assertEqual(self.put(conn, key, value, c, stamp), (200, 0), "put %r" % key)

    def hit(self, conn, key, value, c="main"):
        self.assertEqual(self.get(conn, key, c), (200, value if isinstance(value, bytes)
                                                   else value.encode()), "get %r" % key)

    def miss(self, conn, key, c="main"):
        self.assertEqual(self.get(conn, key, c), (404, None), "get %r" % key)

    def eventually_hit(self, conn, key, value, c="main"):
        value = value if isinstance(value, bytes) else value.encode()
        wait_until(lambda: self.get(conn, key, c) == (200, value), POLL, 0.02,
                   "%r = %r in cache %s on another worker" % (key, value, c))

    def barrier(self, src, dst):
        """Returns once a replicated put made through src has reached dst: jobs from one worker
        to another run in the order posted, so whatever src posted before has run on dst."""
        key = "barrier-%d" % time.monotonic_ns()
        self.ok_put(src, key, "b", c="repl")
        self.eventually_hit(dst, key, "b", c="repl")


# ---- one worker's table ---------------------------------------------------------------------

class Basics(CacheCase):
    def setUp(self):
        self.srv = self.app(workers=2)
        self.w = self.pinned(self.srv)

    def test_miss_put_hit_replace(self):
        c = self.w[0]
        self.miss(c, "k")
        self.ok_put(c, "k", "one")
        self.hit(c, "k", "one")
        self.ok_put(c, "k", "two, longer than one")
        self.hit(c, "k", "two, longer than one")
        self.ok_put(c, "k", "3")
        self.hit(c, "k", "3")
        self.miss(c, "K")  # keys are bytes, compared exactly
        self.miss(c, "k2")
        self.assertAppClean(self.srv)

    def test_binary_keys_and_values(self):
        c = self.w[1]
        key = b"a\x00b\r\nc\xff"
        value = b"\x00\r\n\r\nHTTP/1.1 200 OK\r\n\xff\xfe" + bytes(range(256))
        self.ok_put(c, key, value)
        self.hit(c, key, value)
        self.miss(c, b"a\x00b\r\nc")  # a prefix of the key is another key
        self.miss(c, b"a")
        self.ok_put(c, "empty", b"")
        self.hit(c, "empty", b"")  # an empty value is a hit, not a miss
        big = os.urandom(200000)
        self.ok_put(c, "big", big)
        self.hit(c, "big", big)

    def test_many_keys_grow_the_table(self):
        c = self.w[0]
        for i in range(600):  # past the first few bucket-array doublings
            self.ok_put(c, "key-%d" % i, "value-%d" % i)
        for i in range(600):
            self.hit(c, "key-%d" % i, "value-%d" % i)
        self.miss(c, "key-600")

    def test_each_worker_has_its_own_table(self):
        w0, w1 = self.w[0], self.w[1]
        self.ok_put(w0, "mine", "from 0")
        self.barrier(w0, w1)  # anything worker 0 could have sent worker 1 has run there
        self.miss(w1, "mine")
        self.ok_put(w1, "mine", "from 1")
        self.hit(w0, "mine", "from 0")
        self.hit(w1, "mine", "from 1")
        self.barrier(w1, w0)
        self.hit(w0, "mine", "from 0")

    def test_bad_cache_name_and_stamp(self):
        c = self.w[0]
        self.assertEqual(c.request("GET", "/cache/k?c=nope").status, 400)
        for bad in ("x", "12x", "0", "-5"):
            r = c.request("PUT", "/cache/k?stamp=" + bad, body=b"v")
            self.assertEqual(r.status, 400, (bad, r))
        self.miss(c, "k")


# ---- replication and invalidation across workers --------------------------------------------

class AcrossWorkers(CacheCase):
    def setUp(self):
        self.srv = self.app(workers=2)
        self.w = self.pinned(self.srv)

    def test_replicated_put_fills_every_worker(self):
        w0, w1 = self.w[0], self.w[1]
        self.ok_put(w0, "shared", "v1", c="repl")
        self.hit(w0, "shared", "v1", c="repl")
        self.eventually_hit(w1, "shared", "v1", c="repl")
        self.ok_put(w1, "shared", "v2 from worker 1", c="repl")
        self.eventually_hit(w0, "shared", "v2 from worker 1", c="repl")
        self.hit(w1, "shared", "v2 from worker 1", c="repl")
        # the same key in the non-replicated cache is another entry
        self.miss(w0, "shared")
        self.miss(w1, "shared")

    def test_non_replicated_put_stays_on_its_worker(self):
        w0, w1 = self.w[0], self.w[1]
        for i in range(20):
            self.ok_put(w0, "only-0-%d" % i, "v")
        self.barrier(w0, w1)
        for i in range(20):
            self.miss(w1, "only-0-%d" % i)
            self.hit(w0, "only-0-%d" % i, "v")

    def test_invalidate_reaches_every_worker_before_the_answer(self):
        w0, w1 = self.w[0], self.w[1]
        for i in range(40):
            key = "inval-%d" % i
            src, other = (w0, w1) if i % 2 == 0 else (w1, w0)
            owner = i % 4 < 2
            self.ok_put(w0, key, "on 0")
            self.ok_put(w1, key, "on 1")
            self.ok_put(w0, key, "repl", c="repl")
            self.eventually_hit(w1, key, "repl", c="repl")
            doc = self.delete(src, key, owner=owner)
            self.assertEqual(doc["err"], 0, doc)
            self.assertFalse(doc["sync"], "with two workers done waits for the other: %r" % doc)
            # no poll: the answer came after every worker had dropped it
            self.miss(other, key)
            self.miss(src, key)
            self.hit(other, key, "repl", c="repl")  # the other cache is untouched
            doc = self.delete(other, key, c="repl", owner=not owner)
            self.assertEqual(doc["err"], 0, doc)
            self.miss(src, key, c="repl")
            self.miss(other, key, c="repl")
        self.assertEqual(self.assertAppClean(self.srv)["gone"], 0)

    def test_invalidating_an_absent_key(self):
        w0, w1 = self.w[0], self.w[1]
        for owner in (True, False):
            doc = self.delete(w1, "never-put", owner=owner)
            self.assertEqual((doc["err"], doc["sync"]), (0, False), doc)
        self.miss(w0, "never-put")
        self.ok_put(w0, "never-put", "now it is")  # a fresh read after the invalidation
        self.hit(w0, "never-put", "now it is")

    def test_stale_put_after_invalidation_is_refused_on_every_worker(self):
        w0, w1 = self.w[0], self.w[1]
        self.ok_put(w0, "row", "old row")
        before = self.stamp(w0)  # a read of the old row begins...
        doc = self.delete(w1, "row")  # ...the row is written and invalidated through worker 1
        self.assertEqual(doc["err"], 0, doc)
        # ...and the slow read's put comes after the invalidation: refused on both workers
        self.assertEqual(self.put(w0, "row", "old row", stamp=before), (409, "ESTALE"))
        self.assertEqual(self.put(w1, "row", "old row", stamp=before), (409, "ESTALE"))
        self.miss(w0, "row")
        self.miss(w1, "row")
        # a read that began after the invalidation is taken
        after = self.stamp(w0)
        self.assertGreater(after, before)
        self.ok_put(w0, "row", "new row", stamp=after)
        self.hit(w0, "row", "new row")
        self.ok_put(w1, "row", "new row")  # stamp 0: now
        self.hit(w1, "row", "new row")
        # the same on the invalidating worker itself
        before = self.stamp(w1)
        self.delete(w1, "row")
        self.assertEqual(self.put(w1, "row", "old", stamp=before), (409, "ESTALE"))
        self.miss(w1, "row")

    def test_older_read_does_not_replace_a_newer_value(self):
        w0 = self.w[0]
        first = self.stamp(w0)
        second = self.stamp(w0)
        self.assertGreater(second, first)
        self.ok_put(w0, "k", "newer", stamp=second)
        self.assertEqual(self.put(w0, "k", "older", stamp=first), (409, "ESTALE"))
        self.hit(w0, "k", "newer")
        third = self.stamp(w0)
        self.ok_put(w0, "k", "newest", stamp=third)
        self.hit(w0, "k", "newest")

    def test_expired_stamp_is_refused(self):
        w0 = self.w[0]
        now = self.stamp(w0)
        # the ttl cache keeps values 300 ms after their stamp: 5 s ago is expired already
        self.assertEqual(self.put(w0, "k", "v", c="ttl", stamp=now - 5 * 10**9), (409, "ESTALE"))
        self.miss(w0, "k", c="ttl")
        self.assertEqual(self.put(w0, "k", "v", c="main", stamp=1), (409, "ESTALE"))
        self.miss(w0, "k")

    def test_refused_put_is_not_replicated(self):
        w0, w1 = self.w[0], self.w[1]
        before = self.stamp(w0)
        self.delete(w1, "r", c="repl")
        self.assertEqual(self.put(w0, "r", "stale", c="repl", stamp=before), (409, "ESTALE"))
        self.barrier(w0, w1)
        self.miss(w1, "r", c="repl")
        self.miss(w0, "r", c="repl")

    def test_replicated_put_cannot_bring_back_an_invalidated_value(self):
        """A put replicated from worker 0, then an invalidation through worker 1 at once: whatever
        order worker 1 runs them in, the value is gone everywhere once the DELETE is answered,
        and it stays gone (the replica's stamp is older than the tombstone)."""
        w0, w1 = self.w[0], self.w[1]
        for i in range(30):
            key = "race-%d" % i
            self.ok_put(w0, key, "v", c="repl")
            doc = self.delete(w1, key, c="repl")
            self.assertEqual(doc["err"], 0, doc)
            self.miss(w0, key, c="repl")
            self.miss(w1, key, c="repl")
        self.barrier(w0, w1)
        self.barrier(w1, w0)
        for i in range(30):
            self.miss(w0, "race-%d" % i, c="repl")
            self.miss(w1, "race-%d" % i, c="repl")

    def test_clients_leaving_during_invalidations(self):
        """DELETEs whose clients close at once: done is dropped with its owner, or finds its
        request gone (owner=0); the server goes on, and nothing runs for a finished request."""
        port = self.srv.port
        for i in range(60):
            conn = Conn(port)
            conn.send(request("DELETE", "/cache/leave-%d?owner=%d" % (i, i % 2)))
            conn.close()
        w0, w1 = self.w[0], self.w[1]
        self.ok_put(w0, "after", "fine")
        self.hit(w0, "after", "fine")
        doc = self.delete(w1, "after")
        self.assertEqual(doc["err"], 0, doc)
        self.miss(w0, "after")
        wait_until(lambda: self.app_stats(self.srv)["waiting"] == 0, POLL,
                   what="no response waiting")
        self.assertAppClean(self.srv)

    def test_mixed_load_from_both_workers(self):
        """Threads put, get and invalidate a small key set in both caches through both workers;
        then every key is invalidated and must miss everywhere."""
        port = self.srv.port
        keys = ["mix-%d" % i for i in range(16)]
        errors = []
        stop = time.monotonic() + 3.0

        def client(seed):
            conn = None
            try:
                conn = Conn(port)
                i = seed
                while time.monotonic() < stop:
                    i += 7
                    key = keys[i % len(keys)]
                    cache = "repl" if i % 3 else "main"
                    op = i % 5
                    if op in (0, 1):
                        r = conn.request("PUT", "/cache/%s?c=%s" % (key, cache),
                                         body=("%s=%d" % (key, i)).encode())
                        if r.status not in (200, 409):
                            errors.append(r)
                    elif op in (2, 3):
                        r = conn.request("GET", "/cache/%s?c=%s" % (key, cache))
                        if r.status == 200 and not r.body.startswith(key.encode() + b"="):
                            errors.append(r)
                        elif r.status not in (200, 404):
                            errors.append(r)
                    else:
                        r = conn.request("DELETE", "/cache/%s?c=%s" % (key, cache))
                        if r.status != 200 or json.loads(r.body)["err"] != 0:
                            errors.append(r)
            except Exception as e:  # noqa: BLE001  (reported below)
                errors.append(e)
            finally:
                if conn:
                    conn.close()

        threads = [threading.Thread(target=client, args=(s,)) for s in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        self.assertEqual(errors[:5], [])
        w0, w1 = self.w[0], self.w[1]
        for key in keys:
            for cache in ("main", "repl"):
                self.delete(w0, key, c=cache)
        self.barrier(w0, w1)
        self.barrier(w1, w0)
        for key in keys:
            for cache in ("main", "repl"):
                self.miss(w0, key, c=cache)
                self.miss(w1, key, c=cache)
        self.assertAppClean(self.srv)


class OneWorker(CacheCase):
    def test_invalidate_with_one_worker_is_done_at_once(self):
        srv = self.app(workers=1)
        c = self.pinned(srv)[0]
        for owner in (True, False):
            self.ok_put(c, "k", "v")
            doc = self.delete(c, "k", owner=owner)
            self.assertEqual((doc["err"], doc["sync"], doc["worker"]), (0, True, 0), doc)
            self.miss(c, "k")
        self.ok_put(c, "r", "v", c="repl")  # replicate with one worker: nothing to send
        self.hit(c, "r", "v", c="repl")
        self.assertAppClean(srv)


# ---- bounds and expiry ----------------------------------------------------------------------

class Bounds(CacheCase):
    """The small cache: max_entries 4, max_bytes 1024 (keys, values and about 64 bytes a
    entry), per worker. Everything goes through one worker's connection."""

    def setUp(self):
        self.srv = self.app(workers=1)
        self.c = self.pinned(self.srv)[0]

    def test_lru_eviction_by_entries(self):
        c = self.c
        for k in ("k1", "k2", "k3", "k4"):
            self.ok_put(c, k, "v" + k, c="small")
        for k in ("k1", "k2", "k3", "k4"):
            self.hit(c, k, "v" + k, c="small")
        self.hit(c, "k1", "vk1", c="small")  # k2 is now the least recently used
        self.ok_put(c, "k5", "vk5", c="small")
        self.miss(c, "k2", c="small")
        for k in ("k1", "k3", "k4", "k5"):
            self.hit(c, k, "v" + k, c="small")
        # replacing a key does not evict another
        self.ok_put(c, "k3", "new k3", c="small")
        for k in ("k1", "k4", "k5"):
            self.hit(c, k, "v" + k, c="small")
        self.hit(c, "k3", "new k3", c="small")
        # order now (most recent first): k3 k5 k4 k1; two more puts evict k1 then k4
        self.ok_put(c, "k6", "vk6", c="small")
        self.miss(c, "k1", c="small")
        self.ok_put(c, "k7", "vk7", c="small")
        self.miss(c, "k4", c="small")
        for k in ("k5", "k6", "k7"):
            self.hit(c, k, "v" + k, c="small")

    def test_eviction_by_bytes(self):
        c = self.c
        v = lambda ch: ch * 300  # noqa: E731  (about 366 bytes an entry: two fit in 1024)
        self.ok_put(c, "b1", v("1"), c="small")
        self.ok_put(c, "b2", v("2"), c="small")
        self.hit(c, "b1", v("1"), c="small")
        self.hit(c, "b2", v("2"), c="small")
        self.ok_put(c, "b3", v("3"), c="small")  # over 1024 bytes: the LRU (b1) goes
        self.miss(c, "b1", c="small")
        self.hit(c, "b2", v("2"), c="small")
        self.hit(c, "b3", v("3"), c="small")
        self.ok_put(c, "big", "B" * 800, c="small")  # fits alone: both others go
        self.hit(c, "big", "B" * 800, c="small")
        self.miss(c, "b2", c="small")
        self.miss(c, "b3", c="small")
        self.ok_put(c, "s", "small", c="small")  # 800 + small still fit
        self.hit(c, "big", "B" * 800, c="small")
        self.hit(c, "s", "small", c="small")

    def test_value_larger_than_the_cache_is_e2big(self):
        c = self.c
        self.ok_put(c, "k", "kept", c="small")
        self.ok_put(c, "other", "stays", c="small")
        for size in (1024, 1025, 2000, 100000):
            self.assertEqual(self.put(c, "k", "x" * size, c="small"), (413, "E2BIG"), size)
        self.hit(c, "k", "kept", c="small")  # the old value is not dropped
        self.hit(c, "other", "stays", c="small")  # and nothing was evicted for it
        self.assertEqual(self.put(c, "x" * 1000, "", c="small"), (413, "E2BIG"))  # key bytes count
        self.ok_put(c, "k", "x" * 512, c="small")
        self.hit(c, "k", "x" * 512, c="small")

    def test_stale_put_refused_after_its_tombstone_was_evicted(self):
        """coil.h: "a put whose stamp is not after the key's last invalidation is refused
        (-ESTALE)". The invalidation's tombstone is an entry like any other: four puts of other
        keys evict it (it is never read, so it is the least recently used), and then the slow
        read's put of the old value is taken: a stale value served until it expires."""
        c = self.c
        self.ok_put(c, "row", "old row", c="small")
        before = self.stamp(c)  # a read of the old row begins...
        self.assertEqual(self.delete(c, "row", c="small")["err"], 0)  # ...the row is written
        self.assertEqual(self.put(c, "row", "old row", c="small", stamp=before),
                         (409, "ESTALE"))  # refused while the tombstone is there
        for k in ("e1", "e2", "e3", "e4"):  # other keys: the tombstone is evicted
            self.ok_put(c, k, "v", c="small")
        # ...and the slow read's put comes after: it must still be refused
        self.assertEqual(self.put(c, "row", "old row", c="small", stamp=before),
                         (409, "ESTALE"), "a stale put taken once its tombstone was evicted")
        self.miss(c, "row", c="small")

    def test_stale_put_refused_after_the_newer_value_was_evicted(self):
        """The same through a newer value: a read that began after the invalidation puts the
        new row (replacing the tombstone), that entry is evicted, and then a read that began
        before the invalidation puts the old row."""
        c = self.c
        before = self.stamp(c)
        self.assertEqual(self.delete(c, "row", c="small")["err"], 0)
        self.ok_put(c, "row", "new row", c="small")
        for k in ("e1", "e2", "e3", "e4"):
            self.ok_put(c, k, "v", c="small")
        self.miss(c, "row", c="small")
        self.assertEqual(self.put(c, "row", "old row", c="small", stamp=before),
                         (409, "ESTALE"), "a read older than the invalidation was taken")
        self.miss(c, "row", c="small")

    def test_ttl_expiry(self):
        c = self.c
        for round_ in range(3):
            key = "t%d" % round_
            self.ok_put(c, key, "short-lived", c="ttl")
            put_at = time.monotonic()
            first = self.get(c, key, c="ttl")
            if time.monotonic() - put_at < 0.15:  # well within its 300 ms
                self.assertEqual(first, (200, b"short-lived"))
            # reads do not extend it: polling reads until it goes
            wait_until(lambda: self.get(c, key, c="ttl") == (404, None), POLL, 0.02,
                       "%s to expire" % key)
            self.miss(c, key, c="ttl")
        self.ok_put(c, "long", "stays", c="main")  # the 60 s cache keeps it meanwhile
        self.hit(c, "long", "stays")
        self.assertAppClean(self.srv)


# ---- the demo's crud cache against PostgreSQL -----------------------------------------------

_pg = None
_pg_error = None


def postgres():
    """One seeded PostgreSQL for this module's demo tests (started on first use)."""
    global _pg, _pg_error
    if _pg is None and _pg_error is None:
        try:
            _pg = services.PostgresServer(rows=300).start()
        except services.ServiceError as e:
            _pg_error = str(e)
    if _pg is None:
        if "no PostgreSQL server binaries" in _pg_error:
            raise unittest.SkipTest("PostgreSQL is not installed (apt-get install postgresql-15)")
        raise AssertionError("PostgreSQL would not start: %s" % _pg_error)
    return _pg


def tearDownModule():
    if _pg is not None:
        _pg.stop()


def item_json(pg, item_id):
    """The row as PostgreSQL has it now: (name, price, quantity)."""
    out = pg.psql("SELECT name, price, quantity FROM items WHERE id = %d;" % item_id).strip()
    name, price, quantity = out.split("|")
    return name, int(price), int(quantity)


class DemoCrudCache(CacheAppCase):
    """The demo (handlers/db.c) with two workers and its in-process cache (no --redis-url)."""

    def setUp(self):
        self.pg = postgres()
        self.srv = self.start("--workers", "2", "--database-url", self.pg.url)
        # ready once every worker has its database connection (503 until then)
        wait_until(lambda: self.fresh("GET", "/readyz").status == 200, POLL,
                   what="the demo to reach PostgreSQL")

    def fresh(self, method, path, body=None):
        """One request on a new connection, as HttpArena's checks do."""
        c = Conn(self.srv.port)
        try:
            return c.request(method, path, body=body, headers=["Connection: close"])
        finally:
            c.close()

    def item(self, resp):
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.header("Content-Type"), "application/json", resp)
        return json.loads(resp.body)

    def miss_then_hits(self, item_id, get):
        """A GET (MISS) then GETs that must be HITs with the same body, with get(path) making
        each request. The item lives 200 ms in the cache: a round where the hits came later than
        that is tried again, so only a MISS well within the TTL fails."""
        path = "/crud/items/%d" % item_id
        for _ in range(10):
            time.sleep(0.25)  # whatever an earlier read cached has expired
            first = get(path, 0)
            self.assertEqual(first.header("X-Cache"), "MISS", first)
            doc = self.item(first)
            self.assertEqual(doc["id"], item_id, doc)
            t0 = time.monotonic()
            later = [get(path, i) for i in range(1, 5)]
            elapsed = time.monotonic() - t0
            for r in later:
                self.assertEqual(self.item(r), doc, r)
            seen = [r.header("X-Cache") for r in later]
            if seen == ["HIT"] * 4:
                return doc
            self.assertGreater(elapsed, 0.1, "a MISS within the item's 200 ms: %s" % seen)
        self.fail("never four HITs in a row for %s" % path)

    def test_miss_then_hit_on_new_connections(self):
        doc = self.miss_then_hits(7, lambda path, i: self.fresh("GET", path))
        name, price, quantity = item_json(self.pg, 7)
        self.assertEqual((doc["name"], doc["price"], doc["quantity"]), (name, price, quantity))
        self.assertEqual(sorted(doc), ["active", "category", "id", "name", "price", "quantity",
                                       "rating", "tags"])

    def pinned_demo(self):
        w = conns_by_worker(self.srv.port, 2)
        for c in w.values():
            self.addCleanup(c.close)
        return w

    def test_miss_then_hit_across_workers(self):
        w = self.pinned_demo()
        # the read through one worker is replicated: the next GET through the other is a HIT
        for a in (0, 1):
            self.miss_then_hits(8 + a, lambda path, i: w[(a + i) % 2].request("GET", path))

    def cached_on(self, w, item_id, reader):
        """Brings the item into the cache, until a GET through reader is a HIT (a bounded
        retry: it lives 200 ms)."""
        path = "/crud/items/%d" % item_id
        for _ in range(10):
            self.miss_then_hits(item_id, lambda p, i: w[(reader + 1 + i) % 2].request("GET", p))
            r = w[reader].request("GET", path)
            if r.header("X-Cache") == "HIT":
                return self.item(r)
        self.fail("%s never a HIT through worker %d" % (path, reader))

    def test_put_then_miss_everywhere(self):
        w = self.pinned_demo()
        item_id = 11
        path = "/crud/items/%d" % item_id
        for round_, (writer, reader) in enumerate(((0, 1), (1, 0), (0, 0))):
            old = self.cached_on(w, item_id, reader)
            body = {"name": "renamed %d" % round_, "category": "tools", "price": 100 + round_,
                    "quantity": 5 + round_}
            self.assertNotEqual(old["name"], body["name"])
            r = w[writer].request("PUT", path, body=json.dumps(body))
            doc = self.item(r)
            self.assertEqual((doc["id"], doc["name"], doc["price"]),
                             (item_id, body["name"], body["price"]), doc)
            # answered once every worker dropped the item: the next read anywhere is the new row
            r = w[reader].request("GET", path)
            self.assertEqual(r.header("X-Cache"), "MISS", r)
            self.assertEqual(self.item(r)["name"], body["name"], r)
            self.assertEqual(item_json(self.pg, item_id)[0], body["name"])
        r = w[0].request("PUT", "/crud/items/999999", body=json.dumps(body))
        self.assertEqual(r.status, 404, r)

    def test_post_upsert_invalidates(self):
        w = self.pinned_demo()
        item_id = 12
        path = "/crud/items/%d" % item_id
        self.cached_on(w, item_id, 1)
        body = {"id": item_id, "name": "upserted", "category": "garden", "price": 321,
                "quantity": 9}
        r = w[0].request("POST", "/crud/items", body=json.dumps(body))
        self.assertEqual(r.status, 201, r)
        self.assertEqual(json.loads(r.body)["name"], "upserted", r)
        r = w[1].request("GET", path)
        self.assertEqual(r.header("X-Cache"), "MISS", r)
        self.assertEqual((self.item(r)["name"], self.item(r)["price"]), ("upserted", 321))
        # a new id: inserted, then read through the cache like any other
        new_id = 100000 + os.getpid() % 1000
        body = dict(body, id=new_id, name="brand new")
        r = w[1].request("POST", "/crud/items", body=json.dumps(body))
        self.assertEqual(r.status, 201, r)
        doc = self.miss_then_hits(new_id, lambda p, i: w[i % 2].request("GET", p))
        self.assertEqual(doc["name"], "brand new")

    def test_absent_item_is_not_cached(self):
        for _ in range(3):
            r = self.fresh("GET", "/crud/items/999999")
            self.assertEqual((r.status, r.header("X-Cache")), (404, "MISS"), r)


if __name__ == "__main__":
    main()
