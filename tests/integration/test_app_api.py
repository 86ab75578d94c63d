# SPDX-License-Identifier: MIT
"""The API a user program has beyond the demo, through testapp.c: a per-route body limit above
--max-body-bytes (bodies up to it are read whole, beyond it 413), application options from the
command line and the environment, and the per-worker start hook."""
import os
import subprocess

from coil_harness import CoilTestCase, Server, main, request


def testapp():
    path = os.environ.get("COIL_TESTAPP")
    if not path:
        raise AssertionError("COIL_TESTAPP is set by CTest")
    return path


class AppApi(CoilTestCase):
    def start_app(self, *args, env=None):
        saved = os.environ.get("COIL_BIN")
        os.environ["COIL_BIN"] = testapp()
        try:
            srv = Server(list(args), env=env)
        finally:
            if saved is None:
                del os.environ["COIL_BIN"]
            else:
                os.environ["COIL_BIN"] = saved
        self.addCleanup(lambda: self.assertEqual(srv.stop(), 0, srv.log_text()))
        return srv

    @staticmethod
    def checksum(data):
        s = 0
        for b in data:
            s = (s * 31 + b) % (1 << 64)
        return s

    def test_route_body_limit_above_global(self):
        srv = self.start_app("--workers", "1", "--max-body-bytes", "1M")
        body = os.urandom(3 << 20)  # over the global limit, under /big's 4 MiB
        c = self.connect(srv)
        r = c.request("POST", "/big", body=body)
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"%d %d" % (len(body), self.checksum(body)))
        # the same connection keeps working after a multi-megabyte body
        self.assertEqual(c.request("POST", "/big", body=b"abc").status, 200)
        # the global limit still applies to other routes
        c2 = self.connect(srv)
        r = c2.request("POST", "/small", body=os.urandom((1 << 20) + 1))
        self.assertEqual(r.status, 413, r)
        # and /big's own limit to /big
        c3 = self.connect(srv)
        r = c3.request("POST", "/big", body=os.urandom((4 << 20) + 1))
        self.assertEqual(r.status, 413, r)

    def test_route_body_limit_chunked(self):
        srv = self.start_app("--workers", "1", "--max-body-bytes", "64K")
        data = os.urandom(2 << 20)
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + 70000]), data[i:i + 70000])
                          for i in range(0, len(data), 70000))
        c = self.connect(srv)
        c.send(b"POST /big HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks +
               b"0\r\n\r\n")
        r = c.read_response()
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.body, b"%d %d" % (len(data), self.checksum(data)))

    def test_option_from_flag_and_env(self):
        srv = self.start_app("--workers", "1", "--greeting", "from-flag")
        self.assertEqual(self.connect(srv).request("GET", "/greeting").body, b"from-flag")
        srv2 = self.start_app("--workers", "1", env={"TESTAPP_GREETING": "from-env"})
        self.assertEqual(self.connect(srv2).request("GET", "/greeting").body, b"from-env")

    def test_refused_option_exits_2_and_help_lists_it(self):
        p = subprocess.run([testapp(), "--greeting", ""], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn("--greeting", p.stderr)
        p = subprocess.run([testapp(), "--help"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0)
        self.assertIn("--greeting TEXT", p.stdout)
        self.assertIn("TESTAPP_GREETING", p.stdout)

    def test_start_hook_runs_on_every_worker(self):
        srv = self.start_app("--workers", "2")
        self.assertEqual(self.connect(srv).request("GET", "/started").body, b"2")


if __name__ == "__main__":
    main()
