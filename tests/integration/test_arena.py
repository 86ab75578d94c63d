# SPDX-License-Identifier: MIT
"""The HttpArena workloads (handlers/arena.c): every check HttpArena's validate.sh makes for the
baseline, pipelined, json and upload profiles (PROFILES.md sections 1, 3, 4 and 6), judged the
way validate.sh judges them, plus what the benchmark's load generator needs (Content-Length, at most
16 header lines, a head under 1 KiB), pipelining, chunked bodies, bad input (400), /json/:count
without a dataset (503) and malformed dataset files (exit 2).

The dataset is HttpArena's own file, beside the repository (../shared/httparena/dataset.json);
when it is not there, one of the same shape is generated instead, so the tests always run.
"""

import atexit
import base64
import json
import os
import random
import shutil
import subprocess
import tempfile
import time
import unittest

from coil_harness import (CoilTestCase, HERE, RawResult, SANITIZER_RE, clean_env, coil_bin, main,
                          parse_all, request)

# The server's own variable for the dataset: a developer's setting must not leak into the tests.
os.environ.pop("COIL_DATASET", None)

SOURCE_DIR = os.environ.get("COIL_SOURCE_DIR") or os.path.join(HERE, "..", "..")
ARENA_DATASET = os.path.join(SOURCE_DIR, "..", "shared", "httparena", "dataset.json")

FRAG_PAUSE = 0.005  # s between fragments; validate.sh uses 30 ms, 5 ms keeps the test quick
JSON_PAIRS = ((12, 3), (22, 7), (31, 2), (50, 5))  # validate.sh's (count, m) pairs
UPLOAD_SIZES = (512000, 2097152, 10485760, 20971520)  # validate.sh's random upload bodies
UPLOAD_MAX = 20 << 20
MAX_HEAD = 1023     # gcannon: status line + headers must fit its 1 KiB buffer
MAX_HEADER_LINES = 16

_tmpdir = tempfile.mkdtemp(prefix="coil-arena-")
atexit.register(shutil.rmtree, _tmpdir, True)


def write_temp(name, text):
    path = os.path.join(_tmpdir, name)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path


def make_dataset(n, seed=1, names=None):
    """n items of the HttpArena shape: 10 categories, integer prices, a rating object."""
    rnd = random.Random(seed)
    cats = ["electronics", "tools", "books", "garden", "toys", "food", "sports", "music",
            "office", "auto"]
    tags = ["sale", "heavy-duty", "popular", "fast", "new", "wireless", "eco", "limited"]
    items = []
    for i in range(n):
        items.append({
            "id": i + 1,
            "name": names[i % len(names)] if names else "Item %d" % (i + 1),
            "category": cats[i % len(cats)],
            "price": rnd.randint(10, 500),  # price*quantity >= 10: the m overflow cases need it
            "quantity": rnd.randint(1, 100),
            "active": rnd.random() < 0.7,
            "tags": rnd.sample(tags, rnd.randint(0, 4)),
            "rating": {"score": rnd.randint(0, 50), "count": rnd.randint(0, 500)},
        })
    return items


def arena_dataset():
    """(path, items): HttpArena's file if present, else a generated one of the same shape."""
    if os.path.exists(ARENA_DATASET):
        with open(ARENA_DATASET, encoding="utf-8") as f:
            return ARENA_DATASET, json.load(f)
    items = make_dataset(50)
    return write_temp("dataset.json", json.dumps(items, indent=2)), items


DATASET_PATH, DATASET = arena_dataset()


def validate_last_line(data):
    """What validate.sh's check() compares: `curl -s -D- ... | tail -1` inside $( )."""
    if data.endswith(b"\n"):
        data = data[:-1]
    return data.split(b"\n")[-1].rstrip(b"\n")


def validate_header(head, name):
    """What validate.sh's check_header() sees: the first `^Name:` line (case-insensitive), its
    value with leading spaces and the CR removed; None if there is no such line."""
    prefix = name.lower().encode() + b":"
    for line in head.split(b"\n")[1:]:
        if line.lower().startswith(prefix):
            return line[len(prefix):].lstrip(b" ").replace(b"\r", b"").decode("latin-1")
    return None


def header_passes(value, expected):
    return value is not None and (value == expected or value.startswith(expected + ";"))


class Arena(CoilTestCase):
    """Shared checks on responses."""

    def assertGcannonSafe(self, resp):
        """gcannon counts a response only with a length, <= 16 header lines, head <= 1023 bytes."""
        self.assertEqual(len(resp.header_all("Content-Length")), 1, resp)
        self.assertEqual(resp.header("Content-Length"), str(len(resp.body)), resp)
        self.assertLessEqual(len(resp.head_bytes) - 2, MAX_HEAD, resp)  # without the blank line
        self.assertLessEqual(len(resp.headers), MAX_HEADER_LINES, resp)

    def assertText(self, resp, status, body):
        self.assertEqual((resp.status, resp.body), (status, body), resp)
        self.assertTrue(header_passes(validate_header(resp.head_bytes, "Content-Type"),
                                      "text/plain"), resp)
        self.assertGcannonSafe(resp)

    def assertJsonItems(self, resp, count, m, dataset):
        """validate.sh's json check, and more: exactly the first count items, every field."""
        self.assertEqual(resp.status, 200, resp)
        self.assertTrue(header_passes(validate_header(resp.head_bytes, "Content-Type"),
                                      "application/json"), resp)
        self.assertGcannonSafe(resp)
        self.assertIsNone(resp.header("Content-Encoding"), resp)
        doc = json.loads(resp.body)
        self.assertEqual(set(doc), {"items", "count"}, doc)
        self.assertEqual(doc["count"], count)
        self.assertTrue(doc["items"], "validate.sh fails an empty items list")
        for item in doc["items"]:  # validate.sh's own test
            self.assertEqual(item["total"], item["price"] * item["quantity"] * m, item)
        want = [dict(it, total=it["price"] * it["quantity"] * m) for it in dataset[:count]]
        self.assertEqual(doc["items"], want)
        for item in doc["items"]:
            self.assertIsInstance(item["total"], int, "total must be an integer: %r" % item)

    def fragmented(self, srv, *frags):
        """validate.sh's check_fragmented: TCP_NODELAY, fragments sent apart, read until EOF,
        decode by Content-Length or chunked, strip. Returns the stripped body."""
        conn = self.connect(srv, timeout=5)
        for i, frag in enumerate(frags):
            if i:
                time.sleep(FRAG_PAUSE)
            conn.send(frag)
        data, how = conn.read_until_eof()
        self.assertEqual(how, "eof", data)
        responses, rest = parse_all(data)
        self.assertEqual((len(responses), rest), (1, b""), data)
        self.assertGcannonSafe(responses[0])
        return responses[0].body.strip()


# ---- baseline (PROFILES.md section 1) ----------------------------------------------------------

class Baseline(Arena):
    def setUp(self):
        self.srv = self.start("--workers", "2", "--dataset", DATASET_PATH)
        self.conn = self.connect(self.srv)

    def get(self, query):
        return self.conn.request("GET", "/baseline11?" + query)

    def post(self, query, body, headers=()):
        return self.conn.request("POST", "/baseline11?" + query, body=body, headers=headers)

    def test_get_sum(self):
        self.assertText(self.get("a=13&b=42"), 200, b"55")

    def test_post_content_length(self):
        r = self.post("a=13&b=42", b"20", headers=["Content-Type: text/plain"])
        self.assertText(r, 200, b"75")

    def test_post_no_content_type(self):
        # The benchmark's post_cl.raw: no Content-Type, no CRLF after the body.
        self.assertText(self.post("a=13&b=42", b"20"), 200, b"75")

    def test_post_chunked_as_curl_sends_it(self):
        r = self.post("a=13&b=42", b"2\r\n20\r\n0\r\n\r\n", headers=["Transfer-Encoding: chunked"])
        self.assertText(r, 200, b"75")

    def test_post_chunked_in_pieces(self):
        r = self.post("a=13&b=42", b"1\r\n2\r\n1\r\n0\r\n0\r\n\r\n",
                      headers=["Transfer-Encoding: chunked"])
        self.assertText(r, 200, b"75")

    def test_last_line_is_the_sum(self):
        # validate.sh compares the last line of `curl -s -D-`: no newline, no CR, no spaces.
        self.conn.send(request("GET", "/baseline11?a=13&b=42"))
        r = self.conn.read_response()
        self.assertEqual(validate_last_line(r.head_bytes + r.body), b"55", r)

    def test_anti_cheat_random_query(self):
        for _ in range(5):
            a, b = random.randint(100, 999), random.randint(100, 999)
            self.assertText(self.get("a=%d&b=%d" % (a, b)), 200, str(a + b).encode())

    def test_anti_cheat_random_bodies(self):
        # Same URL, different bodies: an answer cached by URL fails.
        x = random.randint(100, 999)
        y = random.choice([v for v in range(100, 1000) if v != x])
        for v in (x, y, x):
            r = self.post("a=13&b=42", str(v).encode(), headers=["Content-Type: text/plain"])
            self.assertText(r, 200, str(55 + v).encode())

    def test_negative_and_extreme_values(self):
        cases = [("a=-5&b=2", b"-3"), ("a=-13&b=-42", b"-55"), ("a=0&b=0", b"0"),
                 ("a=007&b=-0", b"7"), ("a=%2B5&b=1", b"6"), ("b=2&a=1", b"3"),
                 ("a=9223372036854775807&b=0", b"9223372036854775807"),
                 ("a=-9223372036854775808&b=0", b"-9223372036854775808"),
                 ("a=9223372036854775807&b=-9223372036854775808", b"-1")]
        for query, want in cases:
            with self.subTest(query=query):
                self.assertText(self.get(query), 200, want)

    def test_body_whitespace_and_empty(self):
        cases = [(b" 20 ", b"75"), (b"20\r\n", b"75"), (b"\t\n-20\n", b"35"), (b"", b"55"),
                 (b"  ", b"55")]
        for body, want in cases:
            with self.subTest(body=body):
                self.assertText(self.post("a=13&b=42", body), 200, want)

    def test_bad_query_400(self):
        for query in ("b=1", "a=1", "", "a=&b=1", "a=1&b=", "a=abc&b=1", "a=1&b=2x",
                      "a=1.5&b=1", "a=+1&b=1", "a=1e3&b=1", "a=0x10&b=1", "a=-&b=1",
                      "a=%zz&b=1", "a=9223372036854775808&b=0",
                      "a=-9223372036854775809&b=0", "a=9223372036854775807&b=1",
                      "a=-9223372036854775808&b=-1"):
            with self.subTest(query=query):
                r = self.get(query)
                self.assertEqual(r.status, 400, r)
                self.assertTrue(r.body, "a 400 says what is wrong: %r" % r)
                self.assertText(r, 400, r.body)

    def test_bad_body_400(self):
        for body in (b"abc", b"1 2", b"0x10", b"2.5", b"-", b"20abc", b"\x00",
                     b"99999999999999999999"):
            with self.subTest(body=body):
                r = self.post("a=13&b=42", body)
                self.assertEqual(r.status, 400, r)
                self.assertText(r, 400, r.body)
        r = self.post("a=9223372036854775806&b=0", b"2")
        self.assertEqual(r.status, 400, "a sum that overflows: %r" % r)

    def test_connection_survives_400(self):
        self.assertEqual(self.get("a=x&b=1").status, 400)
        self.assertText(self.get("a=1&b=1"), 200, b"2")

    def test_fragmented_mid_path(self):
        body = self.fragmented(self.srv, b"GET /baseli", b"ne11?a=13&b=42 HTTP/1.1\r\n",
                               b"Host: localhost\r\nConnection: close\r\n\r\n")
        self.assertEqual(body, b"55")

    def test_fragmented_header_lines(self):
        body = self.fragmented(self.srv, b"GET /baseline11?a=13&b=42 HTTP/1.1\r\n",
                               b"Host: localhost\r\n", b"User-Agent: arena-frag/1.0\r\n",
                               b"Connection: close\r\n\r\n")
        self.assertEqual(body, b"55")

    def test_fragmented_body_after_head(self):
        head = (b"POST /baseline11?a=13&b=42 HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n")
        self.assertEqual(self.fragmented(self.srv, head, b"20"), b"75")

    def test_fragmented_body_byte_by_byte(self):
        head = (b"POST /baseline11?a=13&b=42 HTTP/1.1\r\nHost: localhost\r\n"
                b"Content-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\n")
        self.assertEqual(self.fragmented(self.srv, head, b"2", b"0"), b"75")

    def test_head_request(self):
        r = self.conn.request("HEAD", "/baseline11?a=13&b=42")
        self.assertEqual((r.status, r.body, r.header("Content-Length")), (200, b"", "2"), r)

    def test_other_method_405(self):
        r = self.conn.request("PUT", "/baseline11?a=1&b=1", body=b"1")
        self.assertEqual(r.status, 405, r)
        self.assertTrue(r.has_token("Allow", "GET") and r.has_token("Allow", "POST"), r)


# ---- pipelined (PROFILES.md section 3) ---------------------------------------------------------

class Pipeline(Arena):
    def setUp(self):
        self.srv = self.start("--workers", "2")

    def test_ok(self):
        r = self.connect(self.srv).request("GET", "/pipeline")
        self.assertText(r, 200, b"ok")
        self.assertEqual(validate_last_line(r.head_bytes + r.body), b"ok")

    def test_sixteen_in_one_write(self):
        # gcannon -p 16: the 48-byte request copied 16 times into one write, then refilled.
        req = b"GET /pipeline HTTP/1.1\r\nHost: localhost:8080\r\n\r\n"
        self.assertEqual(len(req), 48)
        conn = self.connect(self.srv)
        conn.send(req * 16)
        for _ in range(16):
            self.assertText(conn.read_response(), 200, b"ok")
        for k in (1, 5, 16):  # k responses in, k requests out
            conn.send(req * k)
            for _ in range(k):
                self.assertText(conn.read_response(), 200, b"ok")

    def test_pipelined_answers_in_order(self):
        conn = self.connect(self.srv)
        conn.send(b"".join(request("GET", "/baseline11?a=%d&b=1000" % i) for i in range(16)))
        for i in range(16):
            self.assertText(conn.read_response(), 200, str(i + 1000).encode())

    def test_mixed_pipeline(self):
        conn = self.connect(self.srv)
        conn.send(request("GET", "/pipeline") +
                  request("POST", "/baseline11?a=1&b=2", body=b"3") +
                  request("POST", "/baseline11?a=1&b=2", body=b"2\r\n20\r\n0\r\n\r\n",
                          headers=["Transfer-Encoding: chunked"]) +
                  request("GET", "/pipeline"))
        for want in (b"ok", b"6", b"23", b"ok"):
            self.assertText(conn.read_response(), 200, want)


# ---- json (PROFILES.md section 4) --------------------------------------------------------------

class Json(Arena):
    def setUp(self):
        self.srv = self.start("--workers", "2", "--dataset", DATASET_PATH)
        self.conn = self.connect(self.srv)

    def get(self, path):
        return self.conn.request("GET", path)

    def test_validate_pairs(self):
        for count, m in JSON_PAIRS:
            with self.subTest(count=count, m=m):
                self.assertJsonItems(self.get("/json/%d?m=%d" % (count, m)), count, m, DATASET)

    def test_content_type(self):
        self.assertJsonItems(self.get("/json/50?m=1"), 50, 1, DATASET)

    def test_without_m(self):
        # The benchmark's readiness probe is /json/1; gateway checks call /json/50, /json/25.
        for count in (1, 25, 50):
            with self.subTest(count=count):
                self.assertJsonItems(self.get("/json/%d" % count), count, 1, DATASET)

    def test_benchmark_paths(self):
        for count, m in ((1, 3), (5, 7), (10, 2), (15, 5), (25, 4), (40, 8), (50, 6)):
            with self.subTest(count=count, m=m):
                self.assertJsonItems(self.get("/json/%d?m=%d" % (count, m)), count, m, DATASET)

    def test_every_count(self):
        for count in range(1, len(DATASET) + 1):
            self.assertJsonItems(self.get("/json/%d?m=2" % count), count, 2, DATASET)

    def test_other_m(self):
        for m in (0, -2, 1000000, random.randint(2, 99)):
            with self.subTest(m=m):
                self.assertJsonItems(self.get("/json/7?m=%d" % m), 7, m, DATASET)

    def test_bad_count_400(self):
        for count in ("0", str(len(DATASET) + 1), "51", "abc", "-1", "1.5", "99999999999999999999",
                      "%20"):
            with self.subTest(count=count):
                r = self.get("/json/" + count)
                self.assertEqual(r.status, 400, r)
                self.assertText(r, 400, r.body)

    def test_bad_m_400(self):
        for q in ("m=", "m=abc", "m=1.5", "m=2x", "m=%zz", "m=9223372036854775807",
                  "m=-9223372036854775808"):
            with self.subTest(q=q):
                r = self.get("/json/3?" + q)
                self.assertEqual(r.status, 400, r)
                self.assertText(r, 400, r.body)

    def test_tech_empower_json_unchanged(self):
        r = self.get("/json")
        self.assertEqual((r.status, r.body), (200, b'{"message":"Hello, World!"}'), r)

    def test_steady_state_allocates_nothing(self):
        # The JSON body is built in the request arena: once warmed up, serving every workload on
        # a keep-alive connection takes nothing from the heap.
        conn = self.connect(self.srv)
        batch = (request("GET", "/json/50?m=6") + request("GET", "/json/1") +
                 request("POST", "/baseline11?a=13&b=42", body=b"20") +
                 request("POST", "/baseline11?a=13&b=42", body=b"2\r\n20\r\n0\r\n\r\n",
                         headers=["Transfer-Encoding: chunked"]) +
                 request("GET", "/pipeline") * 4 + request("GET", "/json/0"))

        def run(rounds):
            for _ in range(rounds):
                conn.send(batch)
                for want in (200, 200, 200, 200, 200, 200, 200, 200, 400):
                    r = conn.read_response()
                    if r.status != want:
                        self.fail("bad response %r" % r)

        def heap_allocs():
            return json.loads(conn.request("GET", "/stats").body)["heap_allocs"]

        # A buffer pool may still grow to the connection's working set once in a while, as
        # completions interleave (a CI run under load saw 4 allocations in 100 rounds; not
        # reproduced here). Such growth is bounded and stops; a per-request allocation shows in
        # every phase. So steady state is: some phase of 100 rounds, of up to four, takes
        # nothing from the heap.
        run(5)
        heap_allocs()
        deltas = []
        for _ in range(4):
            before = heap_allocs()
            run(100)
            deltas.append(heap_allocs() - before)
            if deltas[-1] == 0:
                break
        self.assertEqual(deltas[-1], 0,
                         "heap allocations in every phase of 100 rounds: %r" % deltas)

    def test_not_cached(self):
        # Two different m on the same count: bodies differ, each correct.
        a, b = self.get("/json/12?m=3"), self.get("/json/12?m=4")
        self.assertNotEqual(a.body, b.body)
        self.assertJsonItems(a, 12, 3, DATASET)
        self.assertJsonItems(b, 12, 4, DATASET)


class DatasetShapes(Arena):
    def test_small_dataset_bounds_count(self):
        items = make_dataset(7, seed=7)
        srv = self.start("--dataset", write_temp("small.json", json.dumps(items)))
        conn = self.connect(srv)
        self.assertJsonItems(conn.request("GET", "/json/7?m=3"), 7, 3, items)
        self.assertEqual(conn.request("GET", "/json/8").status, 400)

    def test_strings_escaped_and_unicode(self):
        names = ['quote " and \\ backslash', "tab\tnewline\n", "caf\u00e9 \u2603 \U0001f600",
                 "</script>", "nul \u0000 inside"]
        items = make_dataset(5, seed=3, names=names)
        items[0]["tags"] = ["a\"b", "\u00fc"]
        srv = self.start("--dataset", write_temp("strings.json", json.dumps(items)))
        resp = self.connect(srv).request("GET", "/json/5?m=2")
        self.assertJsonItems(resp, 5, 2, items)

    def test_env_variable_and_flag_wins(self):
        env_items = make_dataset(3, seed=11)
        env = {"COIL_DATASET": write_temp("env.json", json.dumps(env_items))}
        srv = self.start(env=env)
        self.assertJsonItems(self.connect(srv).request("GET", "/json/3"), 3, 1, env_items)
        srv = self.start("--dataset", DATASET_PATH, env=env)
        self.assertJsonItems(self.connect(srv).request("GET", "/json/5"), 5, 1, DATASET)

    def test_no_dataset_503(self):
        srv = self.start()
        conn = self.connect(srv)
        for path in ("/json/5", "/json/1?m=2", "/json/0"):
            with self.subTest(path=path):
                r = conn.request("GET", path)
                self.assertEqual((r.status, r.body), (503, b"no dataset loaded (--dataset)"), r)
                self.assertGcannonSafe(r)
        self.assertText(conn.request("GET", "/baseline11?a=1&b=2"), 200, b"3")

    def test_help_mentions_dataset(self):
        p = subprocess.run([coil_bin(), "--help"], capture_output=True, text=True, timeout=10,
                           env=clean_env(), stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("--dataset", p.stdout)
        self.assertIn("COIL_DATASET", p.stdout)


class MalformedDataset(Arena):
    def assertRefused(self, args, env=None, mention=None):
        try:
            p = subprocess.run([coil_bin()] + args + ["--port", "0", "--bind", "127.0.0.1"],
                               capture_output=True, text=True, timeout=10, env=clean_env(env),
                               stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            self.fail("coil %s (env %s) started instead of refusing the dataset" % (args, env))
        self.assertEqual(p.returncode, 2, "coil %s: exit %d, stderr %r"
                         % (args, p.returncode, p.stderr))
        self.assertIn("dataset", p.stderr)
        self.assertIsNone(SANITIZER_RE.search(p.stderr), p.stderr)
        if mention:
            self.assertIn(mention, p.stderr)
        return p

    def test_bad_files_exit_2(self):
        good = DATASET[0]

        def item(**change):
            it = json.loads(json.dumps(good))
            for k, v in change.items():
                if v is None:
                    del it[k]
                else:
                    it[k] = v
            return json.dumps([it])

        cases = {
            "truncated": ('[{"id": 1,', "line"),
            "not json": ("hello", "line"),
            "empty file": ("", None),
            "object": ('{"id": 1}', "array"),
            "empty array": ("[]", "array"),
            "item not object": ("[1, 2]", "items[0]"),
            "missing price": (item(price=None), "price"),
            "price string": (item(price="328"), "price"),
            "price real": (item(price=3.5), "price"),
            "name number": (item(name=5), "name"),
            "active string": (item(active="yes"), "active"),
            "tags not array": (item(tags="sale"), "tags"),
            "tag not string": (item(tags=["ok", 3]), "tags"),
            "rating missing": (item(rating=None), "rating"),
            "rating score real": (item(rating={"score": 4.5, "count": 1}), "score"),
            "unknown field": (item(colour="red"), "colour"),
            "duplicate key": ('[{"id": 1, "id": 2}]', "line"),
            "second item bad": (json.dumps([good, dict(good, quantity=None)]), "items[1]"),
        }
        for name, (text, mention) in cases.items():
            with self.subTest(case=name):
                path = write_temp("bad.json", text)
                self.assertRefused(["--dataset", path], mention=mention)

    def test_missing_file_exit_2(self):
        path = os.path.join(_tmpdir, "no-such-file.json")
        self.assertRefused(["--dataset", path], mention=path)
        self.assertRefused(["--dataset", ""])
        self.assertRefused(["--dataset", _tmpdir])

    def test_bad_env_exit_2(self):
        self.assertRefused([], env={"COIL_DATASET": write_temp("env-bad.json", "[")})


# ---- upload (PROFILES.md section 6) ------------------------------------------------------------

class Upload(Arena):
    def setUp(self):
        self.srv = self.start("--workers", "2")

    def upload(self, conn, body, headers=()):
        return conn.request("POST", "/upload", body=body, headers=headers)

    def test_counts_bytes_read(self):
        c = self.connect(self.srv, timeout=60)
        self.assertText(self.upload(c, b"Hello, HttpArena!",
                                    ["Content-Type: application/octet-stream"]), 200, b"17")
        for size in UPLOAD_SIZES:  # the benchmark's templates: no Content-Type, no Expect
            self.assertText(self.upload(c, os.urandom(size)), 200, str(size).encode())
        self.assertText(self.upload(c, b""), 200, b"0")

    def test_chunked_counts_decoded_bytes(self):
        c = self.connect(self.srv)
        body = b"".join(b"%x\r\n%s\r\n" % (n, os.urandom(n)) for n in (1, 4096, 70000, 3))
        r = self.upload(c, body + b"0\r\n\r\n", ["Transfer-Encoding: chunked"])
        self.assertText(r, 200, str(1 + 4096 + 70000 + 3).encode())

    def test_pipelined_after_upload(self):
        # gcannon -r 5 keeps the connection for five uploads in a row, sent back to back.
        c = self.connect(self.srv, timeout=60)
        bodies = [os.urandom(n) for n in (70000, 1, 300000, 17, 5)]
        c.send(b"".join(request("POST", "/upload", body=b) for b in bodies) +
               request("GET", "/pipeline"))
        for b in bodies:
            self.assertText(c.read_response(), 200, str(len(b)).encode())
        self.assertText(c.read_response(), 200, b"ok")

    def test_expect_100_continue(self):
        # curl sends Expect: 100-continue above 1 MiB and waits for the interim answer.
        c = self.connect(self.srv, timeout=60)
        size = 2097152
        c.send(b"POST /upload HTTP/1.1\r\nHost: localhost:8080\r\nExpect: 100-continue\r\n"
               b"Content-Length: %d\r\n\r\n" % size)
        self.assertEqual(c.read_response().status, 100)
        c.send(os.urandom(size))
        self.assertText(c.read_response(), 200, str(size).encode())

    def test_over_20_mib_is_413(self):
        c = self.connect(self.srv)
        c.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
               % (UPLOAD_MAX + 1))
        out, how = c.read_until_eof()
        self.assertClosesAfter(RawResult(*parse_all(out), how), 413)
        # chunked: refused once the decoded bytes pass the limit
        c = self.connect(self.srv, timeout=60)
        c.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        block = b"100000\r\n" + bytes(1 << 20) + b"\r\n"
        self.assertClosesAfter(c.send_until_closed(block * 21), 413)

    def test_only_post(self):
        r = self.connect(self.srv).request("GET", "/upload")
        self.assertEqual(r.status, 405, r)
        self.assertEqual(r.header("Allow"), "POST", r)


# ---- with curl, exactly as validate.sh runs it -------------------------------------------------

@unittest.skipUnless(shutil.which("curl"), "curl is not installed")
class Curl(Arena):
    def setUp(self):
        self.srv = self.start("--dataset", DATASET_PATH)
        self.url = "http://127.0.0.1:%d" % self.srv.port

    def curl(self, *args):
        p = subprocess.run(["curl", "-s", "--max-time", "10"] + list(args), capture_output=True,
                           timeout=20)
        self.assertEqual(p.returncode, 0, "curl %s: %s" % (args, p.stderr.decode()))
        return p.stdout

    def check(self, expected, *args):
        """validate.sh's check(): the last line of `curl -s -D- ...` equals expected."""
        self.assertEqual(validate_last_line(self.curl("-D-", *args)), expected, args)

    def check_header(self, name, value, *args):
        out = self.curl("-D-", "-o", "/dev/null", *args)
        self.assertTrue(header_passes(validate_header(out, name), value), out)

    def test_baseline_checks(self):
        url = self.url + "/baseline11?a=13&b=42"
        self.check(b"55", url)
        self.check(b"75", "-X", "POST", "-H", "Content-Type: text/plain", "-d", "20", url)
        self.check(b"75", "-X", "POST", "-H", "Transfer-Encoding: chunked", "-d", "20", url)
        self.check_header("Content-Type", "text/plain", url)
        self.check_header("Content-Type", "text/plain", "-X", "POST", "-H",
                          "Content-Type: text/plain", "-d", "20", url)
        a, b, x = (random.randint(100, 999) for _ in range(3))
        self.check(str(a + b).encode(), "%s/baseline11?a=%d&b=%d" % (self.url, a, b))
        self.check(str(55 + x).encode(), "-X", "POST", "-H", "Content-Type: text/plain", "-d",
                   str(x), url)

    def test_pipeline_checks(self):
        self.check(b"ok", self.url + "/pipeline")
        self.check_header("Content-Type", "text/plain", self.url + "/pipeline")

    def test_json_checks(self):
        for count, m in JSON_PAIRS:
            doc = json.loads(self.curl("%s/json/%d?m=%d" % (self.url, count, m)))
            self.assertEqual(doc["count"], count)
            self.assertTrue(doc["items"])
            for item in doc["items"]:
                self.assertEqual(item["total"], item["price"] * item["quantity"] * m, item)
        self.check_header("Content-Type", "application/json", self.url + "/json/50?m=1")
        code = self.curl("-o", "/dev/null", "-w", "%{http_code}", self.url + "/json/1")
        self.assertEqual(code, b"200")

    def test_upload_checks(self):
        url = self.url + "/upload"
        self.check(b"17", "-X", "POST", "-H", "Content-Type: application/octet-stream",
                   "--data-binary", "Hello, HttpArena!", url)
        text = base64.b64encode(os.urandom(36))  # 48 characters
        self.assertEqual(self.curl("-X", "POST", "--data-binary", text, url), b"48")
        for size in UPLOAD_SIZES:  # piped from dd as validate.sh does; curl sends Expect > 1 MiB
            dd = subprocess.Popen(["dd", "if=/dev/urandom", "bs=%d" % size, "count=1",
                                   "iflag=fullblock", "status=none"], stdout=subprocess.PIPE)
            p = subprocess.run(["curl", "-s", "--max-time", "60", "--data-binary", "@-", url],
                               stdin=dd.stdout, capture_output=True, timeout=70)
            dd.stdout.close()
            self.assertEqual(dd.wait(), 0)
            self.assertEqual((p.returncode, p.stdout), (0, str(size).encode()), size)


if __name__ == "__main__":
    main()
