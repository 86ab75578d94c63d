# SPDX-License-Identifier: MIT
"""Static files (engine/static.c): `--static PREFIX=DIR` and its options on the demo binary.

What is checked: HttpArena's static checks (PROFILES.md §7) on tools/staticdata's data (the
three checked Content-Types, the 20 files byte-exact with plain curl and decoded right with
`curl --compressed`, the benchmark's Accept-Encoding choosing the .br sibling, 404 for an unknown
name), and on the generator's own output as a clone without ../shared makes it; the .br/.gz
negotiation (q-values, "*", identity), Vary, and a sibling that is not a regular file inside the
root ignored; the Content-Type table; traversal attempts over raw sockets (dot segments plain and
encoded, backslashes, NUL and control bytes, empty segments, hidden names, symlinks leaving the
root or absolute, FIFOs, sockets, devices, overlong names, malformed escapes) refused without a
byte of the secret files beside the root, and what must still work (relative symlinks inside,
ConfigMap-style layouts, index.html, the 301 to a directory's slash); ETag and Last-Modified,
conditional requests (304, 412), ranges (206, 416, several or garbled ones, If-Range) on the
file and on its .br; HEAD; 405 with Allow; files changed, replaced (also by what must be
refused), removed and created while the server runs; a 1 GiB sparse file streamed with the
server's memory bounded, slowly read at first; clients leaving mid-download; files over 1 MiB
pipelined whole and in ranges; a file truncated, appended to or replaced while it is sent;
--static-cache 0 and what the cache keeps; 200 keep-alive clients and wrk on one worker; the
coil_static_* metrics; the options and their errors. A 403 needs a server that is not root.

Waits are bounded polls against hangs; nothing asserts on time. Under the sanitizers
(COIL_SANITIZE_FLAGS set, everything ~3x slower) the big file is 256 MiB instead of 1 GiB.
"""

import atexit
import email.utils
import gzip
import hashlib
import os
import random
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import time
import unittest

from coil_harness import (HERE, CoilTestCase, Conn, Server, clean_env, coil_bin, get, main,
                          need_tool, raw, request, vm_rss_kib, wait_until)

# A developer's own settings must not change what these tests see.
for _var in ("COIL_STATIC", "COIL_STATIC_CACHE_CONTROL", "COIL_STATIC_CACHE", "COIL_COMPRESS",
             "COIL_METRICS_PATH", "COIL_NO_METRICS"):
    os.environ.pop(_var, None)

SANITIZED = bool(os.environ.get("COIL_SANITIZE_FLAGS", "").strip())
MIB = 1 << 20
SOURCE = os.environ.get("COIL_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
STATICDATA = os.path.join(SOURCE, "tools", "staticdata")

# PROFILES.md §7: (name, bytes, Content-Type coil sends), in the benchmark's rotation order.
ARENA = [
    ("reset.css", 8192, "text/css"), ("layout.css", 25600, "text/css"),
    ("theme.css", 18432, "text/css"), ("components.css", 204800, "text/css"),
    ("utilities.css", 61440, "text/css"), ("analytics.js", 12288, "application/javascript"),
    ("helpers.js", 22528, "application/javascript"), ("app.js", 204800, "application/javascript"),
    ("vendor.js", 307200, "application/javascript"),
    ("router.js", 35840, "application/javascript"), ("header.html", 122880, "text/html"),
    ("footer.html", 56320, "text/html"), ("regular.woff2", 18432, "font/woff2"),
    ("bold.woff2", 22528, "font/woff2"), ("logo.svg", 15344, "image/svg+xml"),
    ("icon-sprite.svg", 71680, "image/svg+xml"), ("hero.webp", 46080, "image/webp"),
    ("thumb1.webp", 8192, "image/webp"), ("thumb2.webp", 6144, "image/webp"),
    ("manifest.json", 2883, "application/json"),
]
BENCH_AE = "br;q=1, gzip;q=0.8"  # the benchmark's Accept-Encoding


def has_siblings(name):
    return not name.endswith((".woff2", ".webp"))


# ---- data and helpers ---------------------------------------------------------------------------

_data = {}


def _cleanup_data():
    if "tmp" in _data:
        shutil.rmtree(_data["tmp"], ignore_errors=True)


atexit.register(_cleanup_data)


def arena_dirs():
    """The directories HttpArena's checks run on: `tools/staticdata --path` (HttpArena's own
    files when ../shared holds them) and what the generator writes in a clone without
    ../shared; once if they are the same. Made once per run."""
    if "dirs" not in _data:
        need_tool("brotli")
        _data["tmp"] = tmp = tempfile.mkdtemp(prefix="coil-static-data-")
        clone = os.path.join(tmp, "clone", "tools")
        os.makedirs(clone)
        shutil.copy(STATICDATA, clone)
        gen = os.path.join(tmp, "gen")

        def run(exe):
            return subprocess.run([exe, "--path", gen], check=True, capture_output=True,
                                  text=True, timeout=120).stdout.strip()

        printed = run(os.path.join(clone, "staticdata"))
        assert printed == gen, (printed, gen)
        _data["gen"] = gen
        _data["dirs"] = list(dict.fromkeys([run(STATICDATA), gen]))
    return _data["dirs"]


def read(path):
    with open(path, "rb") as f:
        return f.read()


def write(path, data, mtime_ns=None):
    with open(path, "wb") as f:
        f.write(data)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


def etag_of(path):
    st = os.stat(path)
    return '"%x-%x-%x"' % (st.st_size, st.st_mtime_ns, st.st_ino)


def http_date(seconds):
    return email.utils.formatdate(seconds, usegmt=True)


def vary_tokens(resp):
    return [t.strip().lower() for v in resp.header_all("Vary") for t in v.split(",") if t.strip()]


def metric(text, name):
    """The sum of a metric's samples (over labels) in an exposition; None if absent."""
    vals = [float(m.group(1)) for m in re.finditer(
        r"^%s(?:\{[^}]*\})? (\S+)$" % re.escape(name), text, re.M)]
    return sum(vals) if vals else None


def curl(url, *args):
    """(status, [(name, value)], body, size_download) of one curl run; args are curl's."""
    exe = need_tool("curl")
    with tempfile.TemporaryDirectory() as d:
        head, body = os.path.join(d, "head"), os.path.join(d, "body")
        p = subprocess.run([exe, "-sS", "--max-time", "20", "-D", head, "-o", body,
                            "-w", "%{http_code} %{size_download}", *args, url],
                           check=True, capture_output=True, text=True)
        lines = read(head).decode("latin-1").split("\r\n")
        data = read(body)
    status, size = (int(x) for x in p.stdout.split())
    headers = [tuple(x.strip() for x in ln.split(":", 1)) for ln in lines[1:] if ":" in ln]
    return status, headers, data, size


def header_of(headers, name):
    vals = [v for k, v in headers if k.lower() == name.lower()]
    return vals[0] if vals else None


def stream_body(conn, length, on_chunk=None, pace=None):
    """Reads up to length body bytes after conn.read_response(head=True) without keeping them,
    calling on_chunk(memoryview) for each piece and pace(bytes so far) after it. Returns the count
    read before length or the end of the connection."""
    got = 0
    if conn.buf:
        first = bytes(conn.buf[:length])
        del conn.buf[:len(first)]
        got = len(first)
        if on_chunk:
            on_chunk(memoryview(first))
    buf = bytearray(1 << 20)
    view = memoryview(buf)
    while got < length:
        try:
            n = conn.sock.recv_into(buf, min(len(buf), length - got))
        except ConnectionResetError:
            n = 0
        if n == 0:
            break
        got += n
        if on_chunk:
            on_chunk(view[:n])
        if pace:
            pace(got)
    return got


class StaticCase(CoilTestCase):
    def tree(self):
        """A fresh temporary directory (removed when the test ends)."""
        d = tempfile.mkdtemp(prefix="coil-static-")
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def serve(self, root, *args, prefix="/s/", workers=1, env=None):
        return self.start("--workers", str(workers), "--static", "%s=%s" % (prefix, root), *args,
                          env=env)

    def ask(self, srv, path, *headers, method="GET"):
        """One request on a fresh connection; headers are "Name: value" strings."""
        return raw(srv.port, request(method, path, headers=list(headers)),
                   head=(method == "HEAD"))[0]

    def poll(self, srv, path, pred, *headers, what="the new state"):
        """The first response to GET path that satisfies pred (5 s bound: a hang fails)."""
        def once():
            r = self.ask(srv, path, *headers)
            return r if pred(r) else None
        return wait_until(once, timeout=5.0, interval=0.05, what="%s of %s" % (what, path))

    def assertFile(self, resp, data, ctype=None, coding=None):
        self.assertEqual(resp.status, 200, resp)
        self.assertEqual(resp.header("Content-Encoding"), coding, resp)
        self.assertEqual(resp.header("Content-Length"), str(len(data)), resp)
        self.assertTrue(resp.body == data, "%s: body differs from the file" % resp)
        if ctype:
            self.assertEqual(resp.header("Content-Type"), ctype, resp)

    def assertVary(self, resp, present):
        self.assertEqual(vary_tokens(resp).count("accept-encoding"), 1 if present else 0, resp)


# ---- HttpArena's checks -------------------------------------------------------------------------

class Arena(StaticCase):
    def servers(self):
        """(data dir, server with --static /static/=dir) for each of arena_dirs()."""
        return [(d, self.serve(d, prefix="/static/", workers=2)) for d in arena_dirs()]

    def url(self, srv, name):
        return "http://127.0.0.1:%d/static/%s" % (srv.port, name)

    def test_checked_content_types(self):
        for d, srv in self.servers():
            for name, want in (("reset.css", "text/css"), ("app.js", "application/javascript"),
                               ("manifest.json", "application/json")):
                with self.subTest(dir=d, name=name):
                    status, head, _, _ = curl(self.url(srv, name))
                    self.assertEqual((status, header_of(head, "Content-Type")), (200, want), head)

    def test_every_content_type(self):
        for d, srv in self.servers():
            for name, _, ctype in ARENA:
                with self.subTest(dir=d, name=name):
                    self.assertEqual(self.ask(srv, "/static/" + name).header("Content-Type"),
                                     ctype)

    def test_plain_curl_gets_every_file_whole(self):
        for d, srv in self.servers():
            for name, size, _ in ARENA:
                with self.subTest(dir=d, name=name):
                    status, head, body, downloaded = curl(self.url(srv, name))
                    self.assertEqual(status, 200, head)
                    self.assertEqual(os.path.getsize(os.path.join(d, name)), size)
                    self.assertEqual(downloaded, size, head)
                    self.assertIsNone(header_of(head, "Content-Encoding"), head)
                    self.assertTrue(body == read(os.path.join(d, name)), name)

    def test_curl_compressed_decodes_to_every_file(self):
        for d, srv in self.servers():
            compressed = 0
            for name, size, _ in ARENA:
                with self.subTest(dir=d, name=name):
                    status, head, body, downloaded = curl(self.url(srv, name), "--compressed")
                    self.assertEqual(status, 200, head)
                    coding = header_of(head, "Content-Encoding")
                    # curl asks "deflate, gzip, br, zstd": br wins at equal q
                    self.assertEqual(coding, "br" if has_siblings(name) else None, head)
                    self.assertTrue(body == read(os.path.join(d, name)), name)
                    if coding:
                        compressed += 1
                        self.assertEqual(downloaded,
                                         os.path.getsize(os.path.join(d, name + ".br")), head)
            self.assertEqual(compressed, 15, d)

    def test_negotiation_picks_the_sibling(self):
        for d, srv in self.servers():
            conn = self.connect(srv)
            for name, _, ctype in ARENA:
                path = os.path.join(d, name)
                plain = read(path)
                for ae, coding in ((BENCH_AE, "br"), ("gzip", "gzip"),
                                   ("br;q=0, gzip;q=0", None), (None, None)):
                    with self.subTest(dir=d, name=name, accept_encoding=ae):
                        r = conn.request("GET", "/static/" + name,
                                         headers=["Accept-Encoding: " + ae] if ae else [])
                        coding = coding if has_siblings(name) else None
                        want = read(path + {"br": ".br", "gzip": ".gz", None: ""}[coding])
                        self.assertFile(r, want, ctype, coding)
                        self.assertVary(r, has_siblings(name))
                        if coding == "gzip":
                            self.assertTrue(gzip.decompress(r.body) == plain, name)
                        self.assertEqual(r.header("ETag"), etag_of(
                            path + {"br": ".br", "gzip": ".gz", None: ""}[coding]), r)

    def test_nonexistent_is_404(self):
        for d, srv in self.servers():
            status, head, _, _ = curl(self.url(srv, "nonexistent.txt"))
            self.assertEqual(status, 404, head)
            self.assertIsNone(header_of(head, "Vary"), head)


class Generator(unittest.TestCase):
    """tools/staticdata itself (what arena_dirs() had it write): sizes, siblings that decode to
    their file, and a second run changing nothing."""

    def test_writes_the_table_and_is_idempotent(self):
        arena_dirs()
        d = _data["gen"]
        expect = {n for n, _, _ in ARENA} | {n + s for n, _, _ in ARENA if has_siblings(n)
                                             for s in (".gz", ".br")}
        self.assertEqual(set(os.listdir(d)), expect)
        for name, size, _ in ARENA:
            data = read(os.path.join(d, name))
            self.assertEqual(len(data), size, name)
            if has_siblings(name):
                self.assertEqual(gzip.decompress(read(os.path.join(d, name + ".gz"))), data)
                br = subprocess.run(["brotli", "-d", "-c", os.path.join(d, name + ".br")],
                                    check=True, capture_output=True).stdout
                self.assertEqual(br, data, name)
                self.assertLess(len(read(os.path.join(d, name + ".br"))), size // 3, name)

        def state():
            return {n: (os.stat(os.path.join(d, n)).st_mtime_ns, read(os.path.join(d, n)))
                    for n in expect}

        before = state()
        subprocess.run([STATICDATA, "-o", d], check=True, timeout=120)
        self.assertTrue(before == state(), "a second run changed files")


# ---- negotiation, types, siblings ---------------------------------------------------------------

class Representations(StaticCase):
    def setUp(self):
        self.root = root = self.tree()
        self.plain = b"body{color:#123456}\n" * 200
        write(os.path.join(root, "both.css"), self.plain)
        write(os.path.join(root, "both.css.gz"), gzip.compress(self.plain, 9, mtime=0))
        # the server never decodes a sibling: any bytes stand for brotli's
        self.br = b"BR" + random.Random(1).randbytes(300)
        write(os.path.join(root, "both.css.br"), self.br)
        write(os.path.join(root, "gzonly.js"), self.plain)
        write(os.path.join(root, "gzonly.js.gz"), gzip.compress(self.plain, 9, mtime=0))
        write(os.path.join(root, "bronly.js"), self.plain)
        write(os.path.join(root, "bronly.js.br"), self.br)
        self.srv = self.serve(root)

    def test_q_values(self):
        # the compression middleware's cases (test_mw_compress.py), both siblings present
        cases = [
            ("gzip;q=0", None), ("gzip;q=0, deflate", None), ("br;q=0.5, gzip;q=0.8", "gzip"),
            ("br;q=0.8, gzip;q=0.5", "br"), ("gzip, br", "br"), ("GZIP", "gzip"),
            ("x-gzip", "gzip"), ("*;q=0.1", "br"), ("*", "br"), ("*, br;q=0", "gzip"),
            ("*;q=0", None), ("identity;q=0", None), ("identity;q=0, gzip", "gzip"),
            ("gzip;q=0.5, identity", None), ("br;q=2, gzip", "gzip"),
            ("br;q=0.5x, gzip;q=0.1", "gzip"), ("deflate, zstd", None), ("", None),
            ("br;q=0, gzip;q=0", None), (BENCH_AE, "br"),
        ]
        bodies = {None: self.plain, "gzip": read(os.path.join(self.root, "both.css.gz")),
                  "br": self.br}
        for ae, coding in cases:
            with self.subTest(accept_encoding=ae):
                r = self.ask(self.srv, "/s/both.css", "Accept-Encoding: " + ae)
                self.assertFile(r, bodies[coding], "text/css", coding)
                self.assertVary(r, True)

    def test_several_accept_encoding_lines(self):
        r = self.ask(self.srv, "/s/both.css", "Accept-Encoding: br;q=0", "Accept-Encoding: gzip")
        self.assertEqual(r.header("Content-Encoding"), "gzip", r)

    def test_one_sibling(self):
        gz = read(os.path.join(self.root, "gzonly.js.gz"))
        self.assertFile(self.ask(self.srv, "/s/gzonly.js", "Accept-Encoding: br, gzip"), gz,
                        "application/javascript", "gzip")
        r = self.ask(self.srv, "/s/gzonly.js", "Accept-Encoding: br")
        self.assertFile(r, self.plain, "application/javascript")
        self.assertVary(r, True)
        self.assertFile(self.ask(self.srv, "/s/bronly.js", "Accept-Encoding: gzip;q=1, br;q=0.5"),
                        self.br, "application/javascript", "br")
        self.assertFile(self.ask(self.srv, "/s/bronly.js", "Accept-Encoding: gzip"), self.plain)

    def test_sibling_named_directly_is_sent_as_is(self):
        gz = read(os.path.join(self.root, "both.css.gz"))
        for ae in ("gzip", "br, gzip", None):
            with self.subTest(accept_encoding=ae):
                r = self.ask(self.srv, "/s/both.css.gz",
                             *(["Accept-Encoding: " + ae] if ae else []))
                self.assertFile(r, gz, "application/gzip", None)
        r = self.ask(self.srv, "/s/both.css.br", "Accept-Encoding: br")
        self.assertFile(r, self.br, "application/x-brotli", None)

    def test_head_of_a_sibling(self):
        r = self.ask(self.srv, "/s/both.css", "Accept-Encoding: br", method="HEAD")
        self.assertEqual((r.status, r.header("Content-Encoding")), (200, "br"), r)
        self.assertEqual(r.header("Content-Length"), str(len(self.br)), r)
        self.assertEqual(r.body, b"")

    def test_sibling_not_a_regular_file_inside_the_root_is_ignored(self):
        outside = self.tree()
        secret = b"coil-static-secret-%x" % random.getrandbits(64)
        write(os.path.join(outside, "secret.br"), secret)
        write(os.path.join(self.root, "leak.css"), self.plain)
        os.symlink(os.path.join(outside, "secret.br"), os.path.join(self.root, "leak.css.br"))
        os.mkdir(os.path.join(self.root, "leak.css.gz"))
        rel = os.path.relpath(os.path.join(outside, "secret.br"), self.root)
        write(os.path.join(self.root, "rel.css"), self.plain)
        os.symlink(rel, os.path.join(self.root, "rel.css.br"))
        for path in ("/s/leak.css", "/s/rel.css"):
            with self.subTest(path=path):
                r = self.ask(self.srv, path, "Accept-Encoding: br, gzip")
                self.assertFile(r, self.plain, "text/css", None)
                self.assertNotIn(secret, r.head_bytes + r.body)

    def test_content_type_table(self):
        table = {
            "html": "text/html", "htm": "text/html", "css": "text/css",
            "js": "application/javascript", "mjs": "application/javascript",
            "json": "application/json", "map": "application/json",
            "webmanifest": "application/manifest+json", "xml": "text/xml", "txt": "text/plain",
            "md": "text/markdown", "csv": "text/csv", "svg": "image/svg+xml", "png": "image/png",
            "jpg": "image/jpeg", "jpeg": "image/jpeg", "gif": "image/gif", "webp": "image/webp",
            "avif": "image/avif", "ico": "image/x-icon", "woff": "font/woff",
            "woff2": "font/woff2", "ttf": "font/ttf", "otf": "font/otf",
            "wasm": "application/wasm", "pdf": "application/pdf", "zip": "application/zip",
            "gz": "application/gzip", "br": "application/x-brotli", "mp4": "video/mp4",
            "webm": "video/webm", "mp3": "audio/mpeg",
            "ogg": ("audio/ogg", "application/ogg"), "wav": ("audio/wav", "audio/x-wav",
                                                            "audio/wave"),
            "yaml": ("application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml"),
            "yml": ("application/yaml", "text/yaml", "application/x-yaml", "text/x-yaml"),
        }
        names = {"t." + ext: want for ext, want in table.items()}
        names.update({"UPPER.CSS": "text/css", "Mixed.Js": "application/javascript",
                      "archive.tar.gz": "application/gzip", "page.html.txt": "text/plain",
                      "noext": "application/octet-stream",
                      "t.unknownext": "application/octet-stream",
                      "t.css.bak": "application/octet-stream"})
        for name in names:
            write(os.path.join(self.root, name), b"x")
        for name, want in names.items():
            with self.subTest(name=name):
                ctype = self.ask(self.srv, "/s/" + name).header("Content-Type")
                if isinstance(want, tuple):
                    self.assertIn(ctype, want)
                else:
                    self.assertEqual(ctype, want)


# ---- traversal and what must still work ----------------------------------------------------------

class Traversal(StaticCase):
    def setUp(self):
        self.top = top = self.tree()
        self.secret = b"coil-static-secret-%x" % random.getrandbits(64)
        write(os.path.join(top, "secret.txt"), self.secret)
        os.mkdir(os.path.join(top, "outside"))
        write(os.path.join(top, "outside", "secret2.txt"), self.secret)
        self.root = root = os.path.join(top, "root")
        os.mkdir(root)
        j = lambda *p: os.path.join(root, *p)
        write(j("hello.txt"), b"hello\n")
        os.makedirs(j("sub"))
        write(j("sub", "index.html"), b"<p>index</p>\n")
        write(j("sub", "page.txt"), b"page\n")
        os.makedirs(j("noindex"))
        write(j("noindex", "a.txt"), b"a\n")
        write(j(".env"), self.secret)
        os.makedirs(j(".git"))
        write(j(".git", "config"), self.secret)
        write(j("sub", ".hidden"), self.secret)
        write(j("caf\u00e9 menu.txt"), b"cafe\n")
        write(j("b" * 255), b"long name\n")
        os.makedirs(j("%2e%2e"))  # a literal name: what a double-encoded ".." decodes to once
        write(j("%2e%2e", "secret.txt"), b"literal\n")
        # symlinks: relative ones staying inside are followed; the others refused
        os.symlink("sub/page.txt", j("rel_ok"))
        os.symlink("sub", j("rel_dir"))
        os.symlink(j("hello.txt"), j("abs_inside"))
        os.symlink(os.path.join(top, "secret.txt"), j("abs_secret"))
        os.symlink("../secret.txt", j("rel_escape"))
        os.symlink("../outside", j("dir_escape"))
        os.symlink("../../secret.txt", j("sub", "up"))
        os.symlink("/dev/null", j("devnull_link"))
        # Kubernetes ConfigMap volume: ..data -> ..2024_01_01, name -> ..data/name
        os.makedirs(j("..2024_01_01"))
        write(j("..2024_01_01", "config.yaml"), b"key: value\n")
        os.symlink("..2024_01_01", j("..data"))
        os.symlink("..data/config.yaml", j("config.yaml"))
        os.mkfifo(j("fifo"))
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(j("sock"))
        sock.close()
        try:
            os.mknod(j("null"), 0o666 | stat.S_IFCHR, os.makedev(1, 3))
            self.have_device = True
        except OSError:
            self.have_device = False  # unprivileged: devnull_link stands for it
        self.srv = self.serve(root)

    def test_attempts_are_refused_without_leaking(self):
        abs_secret = os.path.join(self.top, "secret.txt")
        cases = [
            ("/s/../secret.txt", 404), ("/s/../../secret.txt", 404),
            ("/s/sub/../../secret.txt", 404), ("/s/sub/../hello.txt", 404),
            ("/s/./hello.txt", 404), ("/s/%2e%2e/secret.txt", 404),
            ("/s/%2E%2E%2Fsecret.txt", 404), ("/s/..%2fsecret.txt", 404),
            ("/s/..%2Fsecret.txt", 404), ("/s/.%2e/secret.txt", 404),
            ("/s/%2e./secret.txt", 404), ("/s/sub%2f..%2f..%2fsecret.txt", 404),
            ("/s/%252e%252e/secret2.txt", 404), ("/s/..\\..\\secret.txt", 404),
            ("/s/..\\secret.txt", 404), ("/s/sub\\..\\..\\secret.txt", 404),
            ("/s/hello.txt%00", 404), ("/s/hello.txt%00.html", 404), ("/s/%00", 404),
            ("/s/hello%01.txt", 404), ("/s/hello.txt%0d%0a", 404), ("/s/hello%7f.txt", 404),
            ("/s/hello%1f.txt", 404), ("/s//etc/passwd", 404), ("/s/%2Fetc%2Fpasswd", 404),
            ("/s/" + abs_secret, 404), ("/s//" + abs_secret, 404),
            ("/s/%2F" + abs_secret.lstrip("/"), 404),
            ("/s/.env", 404), ("/s/.git/config", 404), ("/s/%2eenv", 404),
            ("/s/%2Egit%2Fconfig", 404), ("/s/sub/.hidden", 404), ("/s/sub/%2ehidden", 404),
            ("/s/..data/config.yaml", 404), ("/s/..2024_01_01/config.yaml", 404),
            ("/s/abs_inside", 404), ("/s/abs_secret", 404), ("/s/rel_escape", 404),
            ("/s/sub/up", 404), ("/s/dir_escape/secret2.txt", 404), ("/s/dir_escape/", 404),
            ("/s/dir_escape", 404), ("/s/devnull_link", 404), ("/s/fifo", 404),
            ("/s/sock", 404), ("/s/noindex/", 404), ("/s/nonexistent.txt", 404),
            ("/s/" + "a" * 256, 404), ("/s/" + "/".join(["d" * 200] * 22), 404),
            ("/s/%zz", 400), ("/s/%4", 400), ("/s/hello.txt%", 400), ("/s/%4g.txt", 400),
            ("/s/%%32e", 400), ("/s/sub/%g", 400),
        ]
        if self.have_device:
            cases.append(("/s/null", 404))
        self.assertGreaterEqual(len(cases), 20)
        for target, status in cases:
            with self.subTest(target=target[:120]):
                r = self.ask(self.srv, target)
                self.assertEqual(r.status, status, r)
                self.assertNotIn(self.secret, r.head_bytes + r.body)
        self.assertTrue(self.srv.running())

    def test_what_must_still_work(self):
        for target, body in (
                ("/s/hello.txt", b"hello\n"), ("/s/rel_ok", b"page\n"),
                ("/s/rel_dir/page.txt", b"page\n"), ("/s/config.yaml", b"key: value\n"),
                ("/s/sub%2Fpage.txt", b"page\n"), ("/s/sub//page.txt", b"page\n"),
                ("/s//hello.txt", b"hello\n"), ("/s/%73ub/page.txt", b"page\n"),
                ("/s/hello.txt?x=../../secret.txt", b"hello\n"),
                ("/s/caf%C3%A9%20menu.txt", b"cafe\n"), ("/s/" + "b" * 255, b"long name\n"),
                ("/s/%252e%252e/secret.txt", b"literal\n"),
                ("/s/sub/", b"<p>index</p>\n"), ("/s/rel_dir/", b"<p>index</p>\n")):
            with self.subTest(target=target[:80]):
                r = self.ask(self.srv, target)
                self.assertEqual((r.status, r.body), (200, body), r)
        self.assertEqual(self.ask(self.srv, "/s/sub/").header("Content-Type"), "text/html")

    def test_directory_without_slash_redirects(self):
        for target, location in (("/s/sub", "/s/sub/"), ("/s/sub?x=1&y", "/s/sub/?x=1&y"),
                                 ("/s/rel_dir", "/s/rel_dir/"), ("/s/noindex", "/s/noindex/")):
            with self.subTest(target=target):
                r = self.ask(self.srv, target)
                self.assertEqual((r.status, r.header("Location")), (301, location), r)

    def test_unreadable_is_403(self):
        path = os.path.join(self.root, "locked.txt")
        write(path, self.secret)
        os.chmod(path, 0)
        srv = self.srv
        if os.geteuid() == 0:
            # Root reads a mode-000 file: run this server as nobody (setpriv, util-linux), so
            # the open meets EACCES as any unprivileged deployment's would.
            for d, _, _ in os.walk(os.path.dirname(self.root)):
                os.chmod(d, 0o755)
            srv = Server(["--reuid=65534", "--regid=65534", "--clear-groups", coil_bin(),
                          "--workers", "1", "--static", "/s/=" + self.root],
                         program=shutil.which("setpriv"))
            self._servers.append(srv)
            self.addCleanup(self._stop_checked, srv, 0)
        r = self.ask(srv, "/s/locked.txt")
        self.assertEqual(r.status, 403, r)
        self.assertNotIn(self.secret, r.body)

    def test_methods(self):
        for method in ("POST", "PUT", "DELETE", "PATCH"):
            with self.subTest(method=method):
                r = raw(self.srv.port, request(method, "/s/hello.txt", body=b"x"))[0]
                self.assertEqual(r.status, 405, r)
                self.assertTrue(r.has_token("Allow", "GET") and r.has_token("Allow", "HEAD"), r)

    def test_no_cache_control_unless_configured(self):
        r = self.ask(self.srv, "/s/hello.txt")
        self.assertIsNone(r.header("Cache-Control"), r)
        self.assertIsNone(r.header("Vary"), r)


# ---- validators, conditionals, ranges, HEAD ------------------------------------------------------

MTIME_NS = 1_700_000_000_123_456_789  # Tue, 14 Nov 2023 22:13:20.123 GMT
MTIME_S = MTIME_NS // 10**9
CACHE_CONTROL = "public, max-age=60"


class Conditionals(StaticCase):
    def setUp(self):
        self.root = root = self.tree()
        self.data = bytes(random.Random(2).randbytes(1000))
        self.path = os.path.join(root, "a.txt")
        write(self.path, self.data, MTIME_NS)
        write(os.path.join(root, "empty.txt"), b"", MTIME_NS)
        self.css = b".a{color:red}\n" * 300
        self.br = b"BR" + random.Random(3).randbytes(700)
        write(os.path.join(root, "p.css"), self.css, MTIME_NS)
        write(os.path.join(root, "p.css.br"), self.br, MTIME_NS + 10**9)
        self.srv = self.serve(root, "--static-cache-control", CACHE_CONTROL)
        self.etag = etag_of(self.path)
        self.lm = http_date(MTIME_S)

    def get(self, *headers, path="/s/a.txt", method="GET"):
        return self.ask(self.srv, path, *headers, method=method)

    def assertWhole(self, r):
        self.assertFile(r, self.data, "text/plain")
        self.assertIsNone(r.header("Content-Range"), r)

    def assertNotModified(self, r, etag=None):
        self.assertEqual(r.status, 304, r)
        self.assertEqual(r.header("ETag"), etag or self.etag, r)
        self.assertEqual(r.header("Last-Modified"), self.lm, r)
        self.assertEqual(r.header("Cache-Control"), CACHE_CONTROL, r)
        self.assertIsNone(r.header("Content-Length"), r)

    def assertPartial(self, r, first, last, data=None):
        data = self.data if data is None else data
        self.assertEqual(r.status, 206, r)
        self.assertEqual(r.header("Content-Range"), "bytes %d-%d/%d" % (first, last, len(data)), r)
        self.assertEqual(r.header("Content-Length"), str(last - first + 1), r)
        self.assertTrue(r.body == data[first:last + 1], r)
        self.assertEqual(r.header("Cache-Control"), CACHE_CONTROL, r)

    def test_200_headers(self):
        r = self.get()
        self.assertWhole(r)
        self.assertStandardHeaders(r, len(self.data))
        self.assertRegex(self.etag, r'^"[0-9a-f]+-[0-9a-f]+-[0-9a-f]+"$')
        self.assertEqual(r.header("ETag"), self.etag, r)
        self.assertEqual(r.header("Last-Modified"), self.lm, r)
        self.assertEqual(r.header("Accept-Ranges"), "bytes", r)
        self.assertEqual(r.header("Cache-Control"), CACHE_CONTROL, r)
        self.assertIsNone(r.header("Vary"), r)
        self.assertIsNone(self.ask(self.srv, "/s/missing").header("Cache-Control"))

    def test_304(self):
        later, earlier = http_date(MTIME_S + 3600), http_date(MTIME_S - 3600)
        for headers in (["If-None-Match: " + self.etag],
                        ['If-None-Match: "x", %s , "y"' % self.etag],
                        ['If-None-Match: "x"', "If-None-Match: " + self.etag],
                        ["If-None-Match: *"], ["If-None-Match: W/" + self.etag],
                        ["If-Modified-Since: " + self.lm], ["If-Modified-Since: " + later],
                        ["If-None-Match: " + self.etag, "If-Modified-Since: " + earlier],
                        ["If-None-Match: " + self.etag, "Range: bytes=0-9"]):
            with self.subTest(headers=headers):
                self.assertNotModified(self.get(*headers))
        self.assertNotModified(self.get("If-None-Match: " + self.etag, method="HEAD"))

    def test_not_304(self):
        earlier = http_date(MTIME_S - 1)
        for headers in (['If-None-Match: "x"'], ['If-None-Match: "%s"' % self.etag[1:-2]],
                        ["If-Modified-Since: " + earlier],
                        ["If-Modified-Since: not a date"],
                        # If-None-Match wins: If-Modified-Since is not looked at
                        ['If-None-Match: "x"', "If-Modified-Since: " + self.lm]):
            with self.subTest(headers=headers):
                self.assertWhole(self.get(*headers))

    def test_304_keeps_the_connection(self):
        conn = self.connect(self.srv)
        conn.send(request("GET", "/s/a.txt", headers=["If-None-Match: " + self.etag]) +
                  request("GET", "/s/a.txt"))
        self.assertNotModified(conn.read_response())
        self.assertWhole(conn.read_response())

    def test_412(self):
        for headers in (['If-Match: "x"'], ["If-Match: W/" + self.etag],
                        ["If-Unmodified-Since: " + http_date(MTIME_S - 1)],
                        # If-Match first: a mismatch is 412 whatever comes after
                        ['If-Match: "x"', "If-None-Match: " + self.etag]):
            with self.subTest(headers=headers):
                self.assertEqual(self.get(*headers).status, 412)

    def test_preconditions_that_hold(self):
        for headers in (["If-Match: " + self.etag], ['If-Match: "x", ' + self.etag],
                        ['If-Match: "x"', "If-Match: " + self.etag], ["If-Match: *"], ["If-Unmodified-Since: " + self.lm],
                        ["If-Unmodified-Since: " + http_date(MTIME_S + 3600)]):
            with self.subTest(headers=headers):
                self.assertWhole(self.get(*headers))
        self.assertNotModified(self.get("If-Match: " + self.etag,
                                        "If-None-Match: " + self.etag))

    def test_ranges(self):
        for spec, first, last in (("0-9", 0, 9), ("990-", 990, 999), ("-5", 995, 999),
                                  ("995-5000", 995, 999), ("0-0", 0, 0), ("999-999", 999, 999),
                                  ("-5000", 0, 999), ("0-", 0, 999), ("100-199", 100, 199)):
            with self.subTest(range=spec):
                self.assertPartial(self.get("Range: bytes=" + spec), first, last)

    def test_416(self):
        for path, spec, size in (("/s/a.txt", "1000-", 1000), ("/s/a.txt", "2000-3000", 1000),
                                 ("/s/a.txt", "-0", 1000), ("/s/empty.txt", "0-", 0),
                                 ("/s/empty.txt", "-1", 0)):
            with self.subTest(path=path, range=spec):
                r = self.get("Range: bytes=" + spec, path=path)
                self.assertEqual(r.status, 416, r)
                self.assertEqual(r.header("Content-Range"), "bytes */%d" % size, r)

    def test_ranges_answered_whole(self):
        for spec in ("bytes=0-1,5-6", "bytes=0-9, 20-29", "items=0-9", "bytes=abc", "bytes=",
                     "bytes=5-2", "bytes 0-9", "bytes=--5", "bytes=0-9x"):
            with self.subTest(range=spec):
                self.assertWhole(self.get("Range: " + spec))

    def test_if_range(self):
        rng = "Range: bytes=0-9"
        self.assertPartial(self.get(rng, "If-Range: " + self.etag), 0, 9)
        self.assertPartial(self.get(rng, "If-Range: " + self.lm), 0, 9)
        for value in ('"x"', "W/" + self.etag, http_date(MTIME_S + 1), http_date(MTIME_S - 1)):
            with self.subTest(if_range=value):
                self.assertWhole(self.get(rng, "If-Range: " + value))

    def test_representation_br(self):
        br_path = os.path.join(self.root, "p.css.br")
        br_etag = etag_of(br_path)
        self.assertNotEqual(br_etag, etag_of(os.path.join(self.root, "p.css")))
        r = self.get("Accept-Encoding: br", path="/s/p.css")
        self.assertFile(r, self.br, "text/css", "br")
        self.assertEqual(r.header("ETag"), br_etag, r)
        self.assertEqual(r.header("Last-Modified"), http_date(MTIME_S + 1), r)
        self.assertVary(r, True)
        r = self.get("Accept-Encoding: br", "Range: bytes=10-99", path="/s/p.css")
        self.assertPartial(r, 10, 99, self.br)
        self.assertEqual(r.header("Content-Encoding"), "br", r)
        self.assertVary(r, True)
        r = self.get("Accept-Encoding: br", "Range: bytes=-7", path="/s/p.css")
        self.assertPartial(r, len(self.br) - 7, len(self.br) - 1, self.br)
        r = self.get("Range: bytes=10-99", path="/s/p.css")
        self.assertPartial(r, 10, 99, self.css)
        self.assertIsNone(r.header("Content-Encoding"), r)
        # each representation answers for its own ETag
        r = self.get("Accept-Encoding: br", "If-None-Match: " + br_etag, path="/s/p.css")
        self.assertEqual((r.status, r.header("ETag")), (304, br_etag), r)
        self.assertVary(r, True)
        r = self.get("Accept-Encoding: br", "If-None-Match: " + etag_of(
            os.path.join(self.root, "p.css")), path="/s/p.css")
        self.assertFile(r, self.br, "text/css", "br")
        r = self.get("If-None-Match: " + br_etag, path="/s/p.css")
        self.assertFile(r, self.css, "text/css", None)

    def test_head_has_get_headers(self):
        for headers in ([], ["Accept-Encoding: br"], ["Range: bytes=0-9"]):
            for path in ("/s/a.txt", "/s/p.css"):
                with self.subTest(path=path, headers=headers):
                    g = self.get(*[h for h in headers if not h.startswith("Range")], path=path)
                    h = self.get(*headers, path=path, method="HEAD")
                    self.assertEqual(h.status, 200, h)  # HEAD ignores Range
                    drop = lambda hs: sorted((k.lower(), v) for k, v in hs
                                             if k.lower() not in ("date", "x-request-id"))
                    self.assertEqual(drop(h.headers), drop(g.headers))
                    self.assertEqual(h.header("Content-Length"), str(len(g.body)), h)

    def test_head_pipelined_sends_no_body(self):
        conn = self.connect(self.srv)
        conn.send(request("HEAD", "/s/a.txt") + request("GET", "/s/a.txt") +
                  request("HEAD", "/s/p.css", headers=["Accept-Encoding: br"]) +
                  request("GET", "/s/empty.txt"))
        h = conn.read_response(head=True)
        self.assertEqual((h.status, h.header("Content-Length")), (200, "1000"), h)
        while len(conn.buf) < 9 and conn.fill():
            pass
        self.assertTrue(conn.buf.startswith(b"HTTP/1.1 "), "after HEAD: %r" % conn.buf[:100])
        self.assertWhole(conn.read_response())
        h = conn.read_response(head=True)
        self.assertEqual((h.status, h.header("Content-Encoding")), (200, "br"), h)
        r = conn.read_response()
        self.assertEqual((r.status, r.body, r.header("Content-Length")), (200, b"", "0"), r)
        conn.send(request("GET", "/s/a.txt", headers=["Range: bytes=-1"]))
        self.assertPartial(conn.read_response(), 999, 999)


# ---- changes while the server runs ---------------------------------------------------------------

class Freshness(StaticCase):
    def setUp(self):
        self.root = self.tree()
        self.old_ns = time.time_ns() - 100 * 10**9  # an edit now gets another mtime
        self.srv = self.serve(self.root)

    def path(self, name):
        return os.path.join(self.root, name)

    def cached(self, name, data, *headers):
        """Serves name twice (so that it is in the cache) and returns the response."""
        for _ in range(2):
            r = self.ask(self.srv, "/s/" + name, *headers)
            self.assertEqual((r.status, r.body), (200, data), r)
        return r

    def test_modified_in_place_same_size(self):
        write(self.path("f.txt"), b"A" * 100, self.old_ns)
        before = self.cached("f.txt", b"A" * 100).header("ETag")
        with open(self.path("f.txt"), "r+b") as f:
            f.write(b"B" * 100)
        r = self.poll(self.srv, "/s/f.txt", lambda r: r.body == b"B" * 100)
        self.assertNotEqual(r.header("ETag"), before)
        self.assertEqual(r.header("ETag"), etag_of(self.path("f.txt")), r)

    def test_modified_other_size(self):
        write(self.path("f.txt"), b"A" * 100, self.old_ns)
        self.cached("f.txt", b"A" * 100)
        for data in (b"C" * 5000, b"D" * 10):
            with open(self.path("f.txt"), "wb") as f:
                f.write(data)
            r = self.poll(self.srv, "/s/f.txt", lambda r: r.body == data)
            self.assertFile(r, data)
            self.assertEqual(r.header("ETag"), etag_of(self.path("f.txt")), r)

    def test_replaced_by_rename(self):
        write(self.path("f.txt"), b"old\n", self.old_ns)
        before = self.cached("f.txt", b"old\n").header("ETag")
        write(self.path("f.tmp"), b"new\n", self.old_ns)  # even with the old mtime
        os.replace(self.path("f.tmp"), self.path("f.txt"))
        r = self.poll(self.srv, "/s/f.txt", lambda r: r.body == b"new\n")
        self.assertNotEqual(r.header("ETag"), before)

    def test_deleted(self):
        write(self.path("f.txt"), b"here\n")
        self.cached("f.txt", b"here\n")
        os.unlink(self.path("f.txt"))
        self.poll(self.srv, "/s/f.txt", lambda r: r.status == 404)

    def test_replaced_by_what_is_refused(self):
        secret = b"coil-static-secret-%x" % random.getrandbits(64)
        outside = self.tree()
        write(os.path.join(outside, "secret.txt"), secret)
        for name, make in (
                ("rel.txt", lambda p: os.symlink(os.path.relpath(
                    os.path.join(outside, "secret.txt"), self.root), p)),
                ("abs.txt", lambda p: os.symlink(os.path.join(outside, "secret.txt"), p)),
                ("fifo.txt", os.mkfifo), ("dir.txt", os.mkdir)):
            with self.subTest(name=name):
                write(self.path(name), b"harmless\n", self.old_ns)
                self.cached(name, b"harmless\n")
                os.unlink(self.path(name))
                make(self.path(name))
                r = self.poll(self.srv, "/s/" + name, lambda r: r.status != 200)
                self.assertEqual(r.status, 301 if name == "dir.txt" else 404, r)
                self.assertNotIn(secret, r.head_bytes + r.body)

    def test_created(self):
        for _ in range(2):
            self.assertEqual(self.ask(self.srv, "/s/new.txt").status, 404)
        write(self.path("new.txt"), b"born\n")
        self.poll(self.srv, "/s/new.txt", lambda r: r.status == 200 and r.body == b"born\n")

    def test_sibling_created_and_removed(self):
        css = b".x{margin:0}\n" * 100
        write(self.path("x.css"), css, self.old_ns)
        r = self.cached("x.css", css, "Accept-Encoding: br, gzip")
        self.assertVary(r, False)
        br = b"BR" + random.Random(4).randbytes(200)
        write(self.path("x.css.br"), br)
        r = self.poll(self.srv, "/s/x.css", lambda r: r.header("Content-Encoding") == "br",
                      "Accept-Encoding: br, gzip")
        self.assertFile(r, br, "text/css", "br")
        self.assertVary(r, True)
        self.assertVary(self.ask(self.srv, "/s/x.css"), True)
        gz = gzip.compress(css, 9, mtime=0)
        write(self.path("x.css.gz"), gz)
        r = self.poll(self.srv, "/s/x.css", lambda r: r.header("Content-Encoding") == "gzip",
                      "Accept-Encoding: gzip")
        self.assertFile(r, gz, "text/css", "gzip")
        os.unlink(self.path("x.css.br"))
        os.unlink(self.path("x.css.gz"))
        r = self.poll(self.srv, "/s/x.css", lambda r: r.header("Content-Encoding") is None,
                      "Accept-Encoding: br, gzip")
        self.assertFile(r, css, "text/css", None)
        self.poll(self.srv, "/s/x.css", lambda r: not vary_tokens(r), what="no Vary")


# ---- large files ---------------------------------------------------------------------------------

def asan_env():
    if not SANITIZED:
        return None
    # ASan's quarantine would count every freed buffer as growth (as in test_proxy)
    opts = os.environ.get("ASAN_OPTIONS", "")
    return {"ASAN_OPTIONS": (opts + ":" if opts else "") + "quarantine_size_mb=4"}


class BigFile(StaticCase):
    # 1 GiB; 256 MiB under the sanitizers, where the server is ~3x slower
    SIZE = (256 if SANITIZED else 1024) * MIB
    BOUND_MIB = 64

    def setUp(self):
        root = self.tree()
        with open(os.path.join(root, "big.bin"), "wb") as f:
            f.truncate(self.SIZE)  # sparse: costs no disk
        write(os.path.join(root, "small.txt"), b"small\n")
        self.srv = self.serve(root, "--write-timeout", "60s", env=asan_env())
        self.assertEqual(get(self.srv.port, "/s/small.txt").body, b"small\n")
        self.baseline = vm_rss_kib(self.srv.pid)
        self.samples = []

    def sample(self, *_):
        self.samples.append(vm_rss_kib(self.srv.pid))

    def assertBounded(self, what):
        growth = (max(self.samples) - self.baseline) / 1024
        self.assertLess(growth, self.BOUND_MIB, "RSS grew by %.0f MiB %s (baseline %d KiB, "
                        "samples %s)" % (growth, what, self.baseline, self.samples[:40]))

    def test_download_with_a_slow_phase_memory_bounded(self):
        conn = self.connect(self.srv, rcvbuf=64 * 1024, timeout=30)
        conn.send(request("GET", "/s/big.bin"))
        r = conn.read_response(head=True)
        self.assertEqual((r.status, r.header("Content-Length")), (200, str(self.SIZE)), r)
        zeros = memoryview(bytes(1 << 20))
        state = {"reads": 0, "nonzero": 0}

        def check(view):
            if view != zeros[:len(view)]:
                state["nonzero"] += 1

        def pace(got):  # ~2 s of paced reads first (a slow reader), then full speed
            state["reads"] += 1
            if state["reads"] <= 100:
                time.sleep(0.02)
                if state["reads"] % 10 == 0:
                    self.sample()
            elif state["reads"] % 256 == 0:
                self.sample()

        got = stream_body(conn, self.SIZE, check, pace)
        self.sample()
        self.assertEqual(got, self.SIZE)
        self.assertEqual(state["nonzero"], 0, "reads with non-zero bytes from a sparse file")
        self.assertBounded("sending %d MiB, slowly at first" % (self.SIZE // MIB))
        conn.send(request("GET", "/s/small.txt"))  # the connection is still good
        self.assertEqual(conn.read_response().body, b"small\n")

    def test_clients_leaving_mid_download(self):
        for _ in range(8):
            conn = Conn(self.srv.port, rcvbuf=16 * 1024)
            conn.send(request("GET", "/s/big.bin"))
            self.assertEqual(conn.read_response(head=True).status, 200)
            stream_body(conn, 4 * MIB)
            conn.close()
            self.sample()
        self.assertBounded("with clients leaving mid-download")
        self.assertEqual(get(self.srv.port, "/s/small.txt").body, b"small\n")


class ChangedDuringDownload(StaticCase):
    SIZE = 64 * MIB

    def setUp(self):
        self.root = self.tree()
        self.path = os.path.join(self.root, "f.bin")
        self.data = random.Random(5).randbytes(self.SIZE)
        write(self.path, self.data)
        self.srv = self.serve(self.root, "--write-timeout", "60s")

    def start_download(self):
        conn = self.connect(self.srv, rcvbuf=64 * 1024, timeout=15)
        conn.send(request("GET", "/s/f.bin"))
        r = conn.read_response(head=True)
        self.assertEqual((r.status, r.header("Content-Length")), (200, str(self.SIZE)), r)
        return conn

    def test_truncated_closes_short(self):
        conn = self.start_download()
        digest = hashlib.sha256()
        got = stream_body(conn, MIB, digest.update)
        os.truncate(self.path, self.SIZE // 2)
        got += stream_body(conn, self.SIZE - got, digest.update)
        self.assertLess(got, self.SIZE, "a whole body from a file truncated to half")
        self.assertLessEqual(got, self.SIZE // 2)
        self.assertEqual(digest.hexdigest(), hashlib.sha256(self.data[:got]).hexdigest(),
                         "the bytes sent are not the file's")
        # the connection ended: nothing more comes, no other response
        data, _ = conn.read_until_eof()
        self.assertEqual(data, b"")

    def test_appended_sends_content_length(self):
        conn = self.start_download()
        digest = hashlib.sha256()
        got = stream_body(conn, MIB, digest.update)
        with open(self.path, "ab") as f:
            f.write(b"appended\n" * 100000)
        got += stream_body(conn, self.SIZE - got, digest.update)
        self.assertEqual(got, self.SIZE)
        self.assertEqual(digest.hexdigest(), hashlib.sha256(self.data).hexdigest())
        conn.send(request("GET", "/s/missing"))  # nothing more came before this answer
        self.assertEqual(conn.read_response().status, 404)

    def test_replaced_finishes_with_old_bytes(self):
        conn = self.start_download()
        digest = hashlib.sha256()
        got = stream_body(conn, MIB, digest.update)
        new = b"new content\n" * 1000
        write(self.path + ".tmp", new)
        os.replace(self.path + ".tmp", self.path)
        got += stream_body(conn, self.SIZE - got, digest.update)
        self.assertEqual(got, self.SIZE)
        self.assertEqual(digest.hexdigest(), hashlib.sha256(self.data).hexdigest())
        conn.send(request("GET", "/s/missing"))
        self.assertEqual(conn.read_response().status, 404)  # the connection is still good
        self.poll(self.srv, "/s/f.bin", lambda r: r.body == new)


class Streamed(StaticCase):
    def test_pipelined_mix_on_one_connection(self):
        # a file over 1 MiB (read from disk in pieces) between cached ones, whole, in ranges
        # across the reads' boundaries, and as HEAD, all pipelined
        root = self.tree()
        big = random.Random(6).randbytes(3 * MIB + 12345)
        write(os.path.join(root, "big.bin"), big)
        write(os.path.join(root, "small.txt"), b"small\n")
        srv = self.serve(root)
        ranges = ((0, 131071), (131000, 400000), (MIB - 1, 2 * MIB + 1), (len(big) - 10, None))
        reqs = [("GET", "/s/big.bin", []), ("GET", "/s/small.txt", []),
                ("HEAD", "/s/big.bin", [])]
        reqs += [("GET", "/s/big.bin", ["Range: bytes=%d-%s" % (a, "" if b is None else b)])
                 for a, b in ranges]
        reqs += [("GET", "/s/big.bin", []), ("GET", "/s/small.txt", [])]
        conn = self.connect(srv, timeout=30)
        conn.send(b"".join(request(m, p, headers=h) for m, p, h in reqs))
        got = [conn.read_response(head=(m == "HEAD")) for m, _, _ in reqs]
        self.assertFile(got[0], big)
        self.assertFile(got[1], b"small\n")
        self.assertEqual((got[2].status, got[2].header("Content-Length"), got[2].body),
                         (200, str(len(big)), b""), got[2])
        for r, (a, b) in zip(got[3:7], ranges):
            b = len(big) - 1 if b is None else b
            self.assertEqual(r.status, 206, r)
            self.assertEqual(r.header("Content-Range"), "bytes %d-%d/%d" % (a, b, len(big)), r)
            self.assertTrue(r.body == big[a:b + 1], (a, b))
        self.assertFile(got[7], big)
        self.assertFile(got[8], b"small\n")


# ---- the cache -----------------------------------------------------------------------------------

class NoCache(StaticCase):
    def test_every_body_from_disk(self):
        for d in arena_dirs():
            srv = self.serve(d, "--static-cache", "0", prefix="/static/")
            conn = self.connect(srv)
            for name, _, ctype in ARENA:
                with self.subTest(dir=d, name=name):
                    data = read(os.path.join(d, name))
                    self.assertFile(conn.request("GET", "/static/" + name), data, ctype)
                    r = conn.request("GET", "/static/" + name,
                                     headers=["Accept-Encoding: " + BENCH_AE])
                    sib = name + ".br" if has_siblings(name) else name
                    self.assertFile(r, read(os.path.join(d, sib)), ctype,
                                    "br" if has_siblings(name) else None)
                    for spec, sl in (("100-199", slice(100, 200)), ("-50", slice(-50, None)),
                                     ("1000-", slice(1000, None))):
                        r = conn.request("GET", "/static/" + name,
                                         headers=["Range: bytes=" + spec])
                        self.assertEqual(r.status, 206, r)
                        self.assertTrue(r.body == data[sl], (name, spec))
            text = conn.request("GET", "/metrics").body.decode()
            self.assertEqual(metric(text, "coil_static_cache_bytes"), 0, text)


class Metrics(StaticCase):
    def test_cache_hits_open_nothing(self):
        root = self.tree()
        write(os.path.join(root, "m.txt"), b"metrics\n" * 100)
        srv = self.serve(root)
        conn = self.connect(srv)

        def scrape():
            return conn.request("GET", "/metrics").body.decode()

        self.assertEqual(conn.request("GET", "/s/m.txt").status, 200)
        first = scrape()
        opens = metric(first, "coil_static_opens_total")
        self.assertGreaterEqual(opens, 1, first)
        for _ in range(5):
            self.assertEqual(conn.request("GET", "/s/m.txt").status, 200)
        text = scrape()
        self.assertEqual(metric(text, "coil_static_opens_total"), opens, text)
        self.assertGreater(metric(text, "coil_static_cache_entries"), 0, text)
        self.assertGreater(metric(text, "coil_static_cache_bytes"), 0, text)

    def test_what_the_cache_keeps(self):
        # files up to 1 MiB and 1/8 of --static-cache are kept; the others are streamed
        root = self.tree()
        sizes = {"kept.bin": 100 * 1024, "eighth.bin": 200 * 1024, "big.bin": 2 * MIB}
        for name, size in sizes.items():
            write(os.path.join(root, name), random.Random(name).randbytes(size))
        for cache, kept in (("1M", {"kept.bin"}), ("32M", {"kept.bin", "eighth.bin"})):
            with self.subTest(static_cache=cache):
                srv = self.serve(root, "--static-cache", cache)
                conn = self.connect(srv)
                total = 0
                for name, size in sizes.items():
                    r = conn.request("GET", "/s/" + name)
                    self.assertFile(r, read(os.path.join(root, name)))
                    total += size if name in kept else 0
                    text = conn.request("GET", "/metrics").body.decode()
                    self.assertEqual(metric(text, "coil_static_cache_bytes"), total,
                                     "after %s:\n%s" % (name, text))
                self.stop(srv)


# ---- many clients --------------------------------------------------------------------------------

WRK_SCRIPT = """
-- the benchmark's rotation: the 20 files in order, Accept-Encoding %(ae)s; a response other
-- than 200 or whose length is not one the rotation can give counts as wrong
local paths = {%(paths)s}
local sizes = {%(sizes)s}
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) i = 0; responses = 0; wrong = 0 end
function request()
  i = i %% #paths + 1
  return wrk.format("GET", "/static/" .. paths[i], {["Accept-Encoding"] = "%(ae)s"})
end
function response(status, headers, body)
  responses = responses + 1
  if status ~= 200 or not sizes[#body] then wrong = wrong + 1 end
end
function done(summary, latency, requests)
  local total, bad = 0, 0
  for _, t in ipairs(threads) do total = total + t:get("responses"); bad = bad + t:get("wrong") end
  io.write(string.format("wrk_check: responses=%%d wrong=%%d\\n", total, bad))
end
"""


class ManyClients(StaticCase):
    def test_200_keep_alive_clients_on_one_worker(self):
        d = arena_dirs()[0]
        srv = self.serve(d, prefix="/static/")
        want = {}
        for name, _, _ in ARENA:
            for ae, sib in ((None, ""), ("gzip", ".gz"), (BENCH_AE, ".br")):
                want[name, ae] = read(os.path.join(d, name + (sib if has_siblings(name) else "")))
        conns = [self.connect(srv, timeout=60) for _ in range(200)]
        errors = []

        def client(i, conn):
            rnd = random.Random(i)
            try:
                for _ in range(6):
                    name = rnd.choice(ARENA)[0]
                    ae = rnd.choice((None, "gzip", BENCH_AE))
                    r = conn.request("GET", "/static/" + name,
                                     headers=["Accept-Encoding: " + ae] if ae else [])
                    if r.status != 200 or r.body != want[name, ae]:
                        errors.append("client %d: %s (%s): %r" % (i, name, ae, r))
            except Exception as e:  # reported below with the others
                errors.append("client %d: %r" % (i, e))

        threads = [threading.Thread(target=client, args=(i, c)) for i, c in enumerate(conns)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(errors, [])

    def test_wrk_rotation(self):
        need_tool("wrk")
        d = arena_dirs()[0]
        srv = self.serve(d, prefix="/static/")
        sizes = {os.path.getsize(os.path.join(d, n + (".br" if has_siblings(n) else "")))
                 for n, _, _ in ARENA}
        script = os.path.join(self.tree(), "rotate.lua")
        with open(script, "w") as f:
            f.write(WRK_SCRIPT % {"ae": BENCH_AE,
                                  "paths": ", ".join('"%s"' % n for n, _, _ in ARENA),
                                  "sizes": ", ".join("[%d] = true" % s for s in sorted(sizes))})
        p = subprocess.run(["wrk", "-t1", "-c32", "-d2s", "--timeout", "10s", "-s", script,
                            "http://127.0.0.1:%d" % srv.port],
                           capture_output=True, text=True, timeout=60)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, out)
        m = re.search(r"wrk_check: responses=(\d+) wrong=(\d+)", out)
        self.assertIsNotNone(m, "the Lua script printed no count:\n" + out)
        self.assertGreater(int(m.group(1)), 0, out)
        self.assertEqual(int(m.group(2)), 0, out)
        self.assertNotIn("Non-2xx", out)
        self.assertNotIn("Socket errors", out)


# ---- options -------------------------------------------------------------------------------------

class Options(StaticCase):
    def run_coil(self, *args):
        """(exit status, stderr) of a coil that is expected to stop by itself."""
        p = subprocess.run([coil_bin(), *args, "--port", "0", "--bind", "127.0.0.1"],
                           capture_output=True, text=True, timeout=15, env=clean_env(),
                           stdin=subprocess.DEVNULL)
        return p.returncode, p.stderr

    def test_root_must_be_a_directory(self):
        top = self.tree()
        write(os.path.join(top, "file"), b"x")
        for root in (os.path.join(top, "missing"), os.path.join(top, "file")):
            with self.subTest(root=root):
                code, err = self.run_coil("--static", "/s/=" + root)
                self.assertEqual(code, 2, err)
                self.assertIn(root, err)

    def test_prefix_must_end_in_slash(self):
        code, err = self.run_coil("--static", "/s=" + self.tree())
        self.assertEqual(code, 2, err)

    def test_several_prefixes(self):
        a, b = self.tree(), self.tree()
        write(os.path.join(a, "x.txt"), b"a\n")
        write(os.path.join(b, "x.txt"), b"b\n")
        for args, env in ((["--static", "/a/=" + a, "--static", "/b/=" + b], None),
                          ([], {"COIL_STATIC": "/a/=%s /b/=%s" % (a, b)})):
            with self.subTest(args=args, env=env):
                srv = self.start("--workers", "1", *args, env=env)
                self.assertEqual(get(srv.port, "/a/x.txt").body, b"a\n")
                self.assertEqual(get(srv.port, "/b/x.txt").body, b"b\n")
                self.stop(srv)

    def test_cache_control_from_the_environment(self):
        root = self.tree()
        write(os.path.join(root, "x.txt"), b"x\n")
        srv = self.start("--workers", "1", env={"COIL_STATIC": "/s/=" + root,
                                                "COIL_STATIC_CACHE_CONTROL": "no-cache",
                                                "COIL_STATIC_CACHE": "1M"})
        self.assertEqual(get(srv.port, "/s/x.txt").header("Cache-Control"), "no-cache")


if __name__ == "__main__":
    main()
