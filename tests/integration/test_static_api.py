# SPDX-License-Identifier: MIT
"""coil_route_static's options from C (testapp's /files/ route sets every one, /plain/ none) and
the --static flags' refusals: a Cache-Control on 200, 206 and 304 answers; an empty index turns
directories into 404s, the default index.html serves them and a directory named without its
slash is redirected (query kept); hidden names served only when allowed, "." and ".." never;
precompressed siblings ignored when turned off (no Content-Encoding, no Vary); the route's own
content types before the built-in table (a leading dot in the extension is allowed); bad
patterns, roots and values refused by the API (testapp checks those itself and exits 1
otherwise); a --static root that is not a directory, or a PREFIX without its slash, stops the
demo with status 2 and a message; COIL_STATIC takes several routes."""

import email.utils
import gzip
import os
import shutil
import subprocess
import tempfile

from coil_harness import (CoilTestCase, Conn, Server, clean_env, coil_bin, get, main, raw,
                          request)


def write(root, rel, data):
    path = os.path.join(root, rel)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


class Options(CoilTestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(prefix="coil-static-api-")
        write(cls.root, "readme.md", b"# hello\n")
        write(cls.root, "site.css", b"body{color:red}\n" * 20)
        write(cls.root, "site.css.gz", gzip.compress(b"body{color:red}\n" * 20))
        write(cls.root, "docs/index.html", b"<h1>docs</h1>\n")
        write(cls.root, ".well-known/security.txt", b"Contact: mailto:a@b.c\n")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.srv = self.start_app("--workers", "1", env={"TESTAPP_FILES": self.root})
        self.port = self.srv.port

    def fetch(self, path, *headers, method="GET"):
        return raw(self.port, request(method, path, headers=list(headers) + ["Connection: close"]),
                   head=method == "HEAD")[0]

    def test_cache_control_on_200_206_304(self):
        r = self.fetch("/files/readme.md")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header("Cache-Control"), "public, max-age=600")
        self.assertEqual(r.body, b"# hello\n")
        etag = r.header("ETag")
        r = self.fetch("/files/readme.md", "Range: bytes=2-6")
        self.assertEqual((r.status, r.body), (206, b"hello"))
        self.assertEqual(r.header("Cache-Control"), "public, max-age=600")
        r = self.fetch("/files/readme.md", "If-None-Match: " + etag)
        self.assertEqual(r.status, 304)
        self.assertEqual(r.header("Cache-Control"), "public, max-age=600")
        self.assertEqual(r.header("ETag"), etag)
        # The default route sets none.
        self.assertIsNone(self.fetch("/plain/readme.md").header("Cache-Control"))

    def test_types_of_the_route_first(self):
        self.assertEqual(self.fetch("/files/readme.md").header("Content-Type"),
                         "text/markdown; charset=utf-8")
        self.assertEqual(self.fetch("/files/site.css").header("Content-Type"), "text/x-test-css")
        self.assertEqual(self.fetch("/plain/site.css").header("Content-Type"), "text/css")
        self.assertEqual(self.fetch("/plain/readme.md").header("Content-Type"), "text/markdown")

    def test_index(self):
        self.assertEqual(self.fetch("/files/docs/").status, 404)  # index ""
        self.assertEqual(self.fetch("/files/docs").status, 404)
        r = self.fetch("/plain/docs/")
        self.assertEqual((r.status, r.body), (200, b"<h1>docs</h1>\n"))
        self.assertEqual(r.header("Content-Type"), "text/html")
        r = self.fetch("/plain/docs?x=1")
        self.assertEqual(r.status, 301)
        self.assertEqual(r.header("Location"), "/plain/docs/?x=1")

    def test_hidden(self):
        r = self.fetch("/files/.well-known/security.txt")
        self.assertEqual((r.status, r.body), (200, b"Contact: mailto:a@b.c\n"))
        self.assertEqual(self.fetch("/plain/.well-known/security.txt").status, 404)
        for path in ("/files/..", "/files/.well-known/../readme.md", "/files/./readme.md",
                     "/files/%2e%2e/etc/passwd"):
            with self.subTest(path=path):
                self.assertEqual(self.fetch(path).status, 404)

    def test_precompressed_off(self):
        r = self.fetch("/files/site.css", "Accept-Encoding: gzip")
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.header("Content-Encoding"))
        self.assertIsNone(r.header("Vary"))
        self.assertEqual(r.body, b"body{color:red}\n" * 20)
        r = self.fetch("/plain/site.css", "Accept-Encoding: gzip")
        self.assertEqual(r.header("Content-Encoding"), "gzip")
        self.assertEqual(r.header("Vary"), "Accept-Encoding")
        self.assertEqual(gzip.decompress(r.body), b"body{color:red}\n" * 20)

    def test_methods(self):
        r = self.fetch("/plain/readme.md", method="DELETE")
        self.assertEqual(r.status, 405)
        self.assertEqual(set(t.strip() for t in r.header("Allow").split(",")), {"GET", "HEAD"})
        r = self.fetch("/plain/readme.md", method="HEAD")
        self.assertEqual((r.status, r.header("Content-Length"), r.body), (200, "8", b""))


class ReviewFixes(CoilTestCase):
    """Defects a review of the first version found, each with the case that showed it."""

    def setUp(self):
        self.root = tempfile.mkdtemp(prefix="coil-static-fix-")
        self.addCleanup(shutil.rmtree, self.root, True)

    def ask(self, port, path, *headers):
        return raw(port, request("GET", path, headers=list(headers) + ["Connection: close"]))[0]

    def test_416_describes_no_representation(self):
        write(self.root, "a.txt", b"x" * 50)
        write(self.root, "a.txt.br", b"y" * 10)
        srv = self.start("--workers", "1", "--static", "/s/=" + self.root)
        r = self.ask(srv.port, "/s/a.txt", "Range: bytes=100-", "Accept-Encoding: br")
        self.assertEqual(r.status, 416, r)
        self.assertEqual(r.header_all("Content-Type"), ["text/plain"], r)
        self.assertIsNone(r.header("Content-Encoding"), r)
        self.assertEqual(r.header("Content-Range"), "bytes */10", r)

    def test_index_that_is_a_directory_is_not_a_redirect_loop(self):
        os.makedirs(os.path.join(self.root, "d", "index.html"))
        srv = self.start("--workers", "1", "--static", "/s/=" + self.root)
        self.assertEqual(self.ask(srv.port, "/s/d/").status, 404)
        r = self.ask(srv.port, "/s/d")
        self.assertEqual((r.status, r.header("Location")), (301, "/s/d/"))

    def test_redirect_stays_on_this_host(self):
        os.makedirs(os.path.join(self.root, "evil.example"))
        srv = self.start("--workers", "1", "--static", "/=" + self.root)
        r = self.ask(srv.port, "//evil.example")
        self.assertEqual((r.status, r.header("Location")), (301, "/evil.example/"), r)

    def test_last_modified_never_after_date(self):
        write(self.root, "future.txt", b"later\n")
        future = 1893456000  # 2030-01-01
        os.utime(os.path.join(self.root, "future.txt"), (future, future))
        srv = self.start("--workers", "1", "--static", "/s/=" + self.root)
        r = self.ask(srv.port, "/s/future.txt")
        self.assertEqual(r.status, 200)
        lm = email.utils.parsedate_to_datetime(r.header("Last-Modified"))
        date = email.utils.parsedate_to_datetime(r.header("Date"))
        self.assertLessEqual(lm, date, r)

    def test_descriptors_are_bounded(self):
        """With 256 descriptors and every body read from disk (--static-cache 0), 400 files and
        400 empty ones, each asked for once, all get 200 and the server still accepts: the
        cache gives back descriptors instead of running the process out of them."""
        for i in range(400):
            write(self.root, "f%03d.txt" % i, b"file %d\n" % i)
            write(self.root, "e%03d.txt" % i, b"")
        prlimit = shutil.which("prlimit")
        srv = Server(["--nofile=256:256", coil_bin(), "--workers", "1", "--static-cache", "0",
                      "--static", "/s/=" + self.root], program=prlimit)
        self._servers.append(srv)
        self.addCleanup(self._stop_checked, srv, 0)
        c = Conn(srv.port)
        self.addCleanup(c.close)
        for i in range(400):
            r = c.request("GET", "/s/f%03d.txt" % i)
            self.assertEqual((r.status, r.body), (200, b"file %d\n" % i))
            r = c.request("GET", "/s/e%03d.txt" % i)
            self.assertEqual((r.status, r.body), (200, b""))
        for i in (0, 399):
            r = get(srv.port, "/s/f%03d.txt" % i)  # a new connection: accepts still work
            self.assertEqual((r.status, r.body), (200, b"file %d\n" % i))


class Flags(CoilTestCase):
    def run_coil(self, args, env=None):
        return subprocess.run([coil_bin(), "--port", "0"] + args, capture_output=True, text=True,
                              timeout=10, env=clean_env(env), stdin=subprocess.DEVNULL)

    def test_refused(self):
        with tempfile.NamedTemporaryFile() as f:
            for args, said in ((["--static", "/s/=/nonexistent-dir"], "/nonexistent-dir"),
                               (["--static", "/s/=" + f.name], f.name),
                               (["--static", "/s=/tmp"], "PREFIX"),
                               (["--static", "/s/="], "PREFIX"),
                               (["--static", "/s/=/tmp", "--static", "/s/=/tmp"], "already"),
                               (["--static-cache", "lots"], "--static-cache")):
                with self.subTest(args=args):
                    p = self.run_coil(args)
                    self.assertEqual(p.returncode, 2, p.stderr)
                    self.assertIn(said, p.stderr)

    def test_env_takes_several(self):
        a = tempfile.mkdtemp(prefix="coil-static-a-")
        b = tempfile.mkdtemp(prefix="coil-static-b-")
        self.addCleanup(shutil.rmtree, a, True)
        self.addCleanup(shutil.rmtree, b, True)
        write(a, "x.txt", b"from a\n")
        write(b, "x.txt", b"from b\n")
        srv = self.start("--workers", "1", env={"COIL_STATIC": "/a/=%s /b/=%s" % (a, b),
                                                "COIL_STATIC_CACHE_CONTROL": "no-cache"})
        ra, rb = get(srv.port, "/a/x.txt"), get(srv.port, "/b/x.txt")
        self.assertEqual((ra.status, ra.body, rb.status, rb.body),
                         (200, b"from a\n", 200, b"from b\n"))
        self.assertEqual(ra.header("Cache-Control"), "no-cache")


if __name__ == "__main__":
    main()
