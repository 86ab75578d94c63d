# SPDX-License-Identifier: MIT
"""coil as a library: `cmake --install` puts libcoil.a, coil.h and coil.pc in a prefix, and the
complete programs shown in README.md (the first, and the middleware one) compile against them
with pkg-config and serve requests."""
import json
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from coil_harness import Conn, Server


def readme_program(src_dir, marker=None):
    """The first C block of README.md, or the first one holding marker."""
    with open(os.path.join(src_dir, "README.md"), encoding="utf-8") as f:
        text = f.read()
    blocks = [b for b in re.findall(r"```c\n(.*?)```", text, re.S) if not marker or marker in b]
    assert blocks, "README.md has no C program" + (" with " + marker if marker else "")
    return blocks[0]


class Install(unittest.TestCase):
    def setUp(self):
        self.build = os.environ.get("COIL_BUILD_DIR")
        self.src = os.environ.get("COIL_SOURCE_DIR")
        if not self.build or not self.src:
            self.skipTest("COIL_BUILD_DIR and COIL_SOURCE_DIR are set by CTest")

    def serve_readme_program(self, marker=None):
        """Installs libcoil in a temp prefix, builds README's program with pkg-config and
        starts it: the Server."""
        prefix = tempfile.mkdtemp(prefix="coil-install-")
        self.addCleanup(shutil.rmtree, prefix)
        subprocess.run(["cmake", "--install", self.build, "--prefix", prefix], check=True,
                       capture_output=True)
        libdir = [d for d in ("lib", "lib64", "lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu")
                  if os.path.exists(os.path.join(prefix, d, "libcoil.a"))]
        self.assertTrue(libdir, "libcoil.a not installed under %s" % prefix)
        self.assertTrue(os.path.exists(os.path.join(prefix, "include", "coil.h")))
        self.assertTrue(os.path.exists(os.path.join(prefix, "include", "coil_mw.h")))
        pcdir = os.path.join(prefix, libdir[0], "pkgconfig")
        self.assertTrue(os.path.exists(os.path.join(pcdir, "coil.pc")))

        prog = os.path.join(prefix, "hello.c")
        with open(prog, "w") as f:
            f.write(readme_program(self.src, marker))
        env = dict(os.environ, PKG_CONFIG_PATH=pcdir)
        flags = subprocess.run(["pkg-config", "--cflags", "--libs", "coil"], env=env, check=True,
                               capture_output=True, text=True).stdout.split()
        # Sanitizer builds of libcoil need the same runtime in the program.
        san = os.environ.get("COIL_SANITIZE_FLAGS", "").split()
        exe = os.path.join(prefix, "hello")
        cc = subprocess.run(["cc", "-O2", prog] + flags + san + ["-o", exe], env=env,
                            capture_output=True, text=True)
        self.assertEqual(cc.returncode, 0, cc.stderr)

        os.environ["COIL_BIN"], saved = exe, os.environ.get("COIL_BIN")
        try:
            srv = Server(["--workers", "1"])
        finally:
            if saved is not None:
                os.environ["COIL_BIN"] = saved
        self.addCleanup(lambda: self.assertEqual(srv.stop(), 0, srv.log_text()))
        return srv

    def test_readme_program_builds_against_installed_library(self):
        srv = self.serve_readme_program()
        c = Conn(srv.port)
        r = c.request("GET", "/hello/world")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b'{"hello":"world"}')
        self.assertEqual(c.request("GET", "/nope").status, 404)
        c.close()

    def test_readme_middleware_program(self):
        srv = self.serve_readme_program("coil_app_use")
        c = Conn(srv.port)
        r = c.request("GET", "/orders/17", headers=["X-Tenant: acme", "X-Request-ID: rq-1"])
        self.assertEqual(r.status, 200, r)
        self.assertEqual(json.loads(r.body), {"order": "17", "request_id": "rq-1"})
        self.assertEqual(r.header("X-Served-By"), "coil", r)
        r = c.request("GET", "/orders/17")
        self.assertEqual((r.status, r.body), (400, b"X-Tenant required\n"), r)
        self.assertEqual(r.header("X-Served-By"), "coil", "after steps see early answers")
        r = c.request("GET", "/nope")
        self.assertEqual(r.status, 404)
        self.assertEqual(r.header("X-Served-By"), "coil", "and the engine's own")
        c.close()


if __name__ == "__main__":
    unittest.main()
