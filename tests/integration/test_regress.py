# SPDX-License-Identifier: MIT
"""Regression tests for bugs found by review, one per bug, named after what broke.

- A whole response body past COIL_BODY_MAX (1 GiB) was written through 32-bit buffer sizes,
  which could corrupt the framing; now it is refused with 500 (the log says to stream it), and
  coil_res_body refuses to copy it, and the connection stays usable.
"""

from coil_harness import CoilTestCase, main


class RegressTest(CoilTestCase):
    def test_body_over_limit_refused_not_corrupted(self):
        srv = self.start_app("--workers", "1")
        conn = self.connect(srv)
        for path in ("/huge/static", "/huge/copy"):
            r = conn.request("GET", path)
            self.assertEqual(r.status, 500, (path, r))
            self.assertEqual(r.body, b"Internal Server Error\n", (path, r))
            self.assertEqual(r.header("Content-Length"), str(len(r.body)), (path, r))
            r = conn.request("HEAD", path)
            self.assertEqual(r.status, 500, (path, r))
        r = conn.request("GET", "/status/200")
        self.assertEqual(r.status, 200, r)  # the same connection still works
        self.assertIn("stream it", srv.log_text())


if __name__ == "__main__":
    main()
