# SPDX-License-Identifier: MIT
"""coil as a library: `cmake --install` puts libcoil.a, coil.h and coil.pc in a prefix, and the
complete program shown in README.md compiles against them with pkg-config and serves requests."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from coil_harness import Conn, Server


def readme_program(src_dir):
    with open(os.path.join(src_dir, "README.md"), encoding="utf-8") as f:
        text = f.read()
    blocks = re.findall(r"```c\n(.*?)```", text, re.S)
    assert blocks, "README.md has no C program"
    return blocks[0]


class Install(unittest.TestCase):
    def test_readme_program_builds_against_installed_library(self):
        build = os.environ.get("COIL_BUILD_DIR")
        src = os.environ.get("COIL_SOURCE_DIR")
        if not build or not src:
            self.skipTest("COIL_BUILD_DIR and COIL_SOURCE_DIR are set by CTest")
        prefix = tempfile.mkdtemp(prefix="coil-install-")
        self.addCleanup(shutil.rmtree, prefix)
        subprocess.run(["cmake", "--install", build, "--prefix", prefix], check=True,
                       capture_output=True)
        libdir = [d for d in ("lib", "lib64", "lib/x86_64-linux-gnu", "lib/aarch64-linux-gnu")
                  if os.path.exists(os.path.join(prefix, d, "libcoil.a"))]
        self.assertTrue(libdir, "libcoil.a not installed under %s" % prefix)
        self.assertTrue(os.path.exists(os.path.join(prefix, "include", "coil.h")))
        pcdir = os.path.join(prefix, libdir[0], "pkgconfig")
        self.assertTrue(os.path.exists(os.path.join(pcdir, "coil.pc")))

        prog = os.path.join(prefix, "hello.c")
        with open(prog, "w") as f:
            f.write(readme_program(src))
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
        try:
            c = Conn(srv.port)
            r = c.request("GET", "/hello/world")
            self.assertEqual(r.status, 200)
            self.assertEqual(r.body, b'{"hello":"world"}')
            self.assertEqual(c.request("GET", "/nope").status, 404)
            c.close()
        finally:
            self.assertEqual(srv.stop(), 0, srv.log_text())


if __name__ == "__main__":
    unittest.main()
