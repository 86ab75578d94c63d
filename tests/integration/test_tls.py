# SPDX-License-Identifier: MIT
"""TLS termination (--tls-port), with real clients: curl, openssl s_client, Python's ssl module
(over memory BIOs, to choose what goes in each TCP send and each TLS record), wrk and h2load.

What is checked: HTTP over TLS behaves as over plain HTTP (routes, bodies, HEAD, keep-alive,
pipelining, requests split into 1-byte records, deferred and streamed responses, middleware,
drain); the certificate chain that follows the leaf is sent; TLS 1.0 and 1.1, every TLS 1.2
suite but ECDHE with AES-GCM or ChaCha20-Poly1305, groups other than X25519/P-256/P-384,
renegotiation and ALPN without http/1.1 are refused; the server's cipher preference; SNI (exact
and wildcard names, the default for unknown or no name); session resumption with TLS 1.2 and
1.3, also on another worker; close_notify both ways; the handshake bounded by --header-timeout;
failed handshakes (a plain HTTP request on the TLS port gets a plain 400) counted in /metrics
and logged only at debug level; start-up errors (exit 2 naming the problem); --no-http and the
COIL_TLS_* variables; SIGHUP reloading the certificates (and keeping them when the new files are
bad); wrk and h2load over TLS. testssl.sh's scan is in test_tls_scan.py (it takes as long as all
of this file).

The certificates are made once per run with the openssl tool (tlsutil.make_certs). Nothing
asserts on time: waits are bounds against hangs.
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from coil_harness import (HERE, CoilTestCase, Conn, clean_env, coil_bin, main, need_tool,
                          request, wait_until)
from test_arena import DATASET, DATASET_PATH
from test_metrics import scrape
from tlsutil import (TLSConn, client_context, make_certs, s_client, s_client_renegotiate,
                     tls_args)

# The server's own variables for what these tests set: a developer's settings must not leak in.
for _name in ("COIL_TLS_PORT", "COIL_TLS_CERT", "COIL_TLS_KEY", "COIL_TLS_SNI",
              "COIL_TLS_OFFLOAD", "COIL_NO_HTTP", "COIL_DATASET"):
    os.environ.pop(_name, None)

HELLO = b"Hello, World!"
JSON = b'{"message":"Hello, World!"}'
SETTLE = 0.5  # s for the server to read bytes we just sent, before we signal it

# TLS 1.2 suites coil may choose: ECDHE key exchange with AES-GCM or ChaCha20-Poly1305.
GOOD_TLS12 = re.compile(r"^ECDHE-(RSA|ECDSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$")

CERTS = None
_tmp = None


def setUpModule():
    global CERTS, _tmp
    need_tool("openssl")
    _tmp = tempfile.mkdtemp(prefix="coil-tls-")
    CERTS = make_certs(_tmp)


def tearDownModule():
    if _tmp:
        shutil.rmtree(_tmp, True)


def kernel_tls_available():
    """Whether this kernel has TLS offload: the "tls" upper-layer protocol on a connected TCP
    socket (TCP_ULP is 31), which is what coil's probe asks for too."""
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(1)
    client = socket.create_connection(lsock.getsockname())
    server, _ = lsock.accept()
    try:
        client.setsockopt(socket.IPPROTO_TCP, 31, b"tls")
        return True
    except OSError:
        return False
    finally:
        for s in (client, server, lsock):
            s.close()


def first_flight(ctx=None, server_hostname="localhost"):
    """The bytes of a ClientHello, as Python's ssl module sends it first."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = (ctx or client_context(CERTS)).wrap_bio(incoming, outgoing,
                                                 server_hostname=server_hostname)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


def stream_checksum(data):
    """testapp's POST /stream checksum: sum = sum * 31 + byte, modulo 2^64."""
    s = 0
    for b in data:
        s = (s * 31 + b) & 0xFFFFFFFFFFFFFFFF
    return s


class TLSCase(CoilTestCase):
    def start_tls(self, *args, cert="ec", app=False, **kw):
        """A server with leaf cert as its default certificate, TLS on a free port."""
        full = tls_args(CERTS, cert) + [str(a) for a in args]
        return self.start_app(*full, **kw) if app else self.start(*full, **kw)

    def ctx(self, **kw):
        return client_context(CERTS, **kw)

    def tconnect(self, srv, ctx=None, **kw):
        port = srv.tls_port if hasattr(srv, "tls_port") else srv
        conn = TLSConn(port, ctx or self.ctx(), **kw)
        self.addCleanup(conn.close)
        return conn

    def tempdir(self):
        d = tempfile.mkdtemp(prefix="coil-tls-test-", dir=_tmp)
        self.addCleanup(shutil.rmtree, d, True)
        return d

    def tls_metrics(self, srv):
        """(handshakes by version, resumed, failures, timeouts by kind) from /metrics, over the
        plain port."""
        s = scrape(srv.port)
        versions = {lb.get("version"): v for lb, v in s.series("coil_tls_handshakes_total")}
        kinds = {lb["kind"]: v for lb, v in s.series("coil_timeouts_total")}
        return (versions, s.value("coil_tls_resumed_total"),
                s.value("coil_tls_handshake_failures_total"), kinds)


# ---- curl ---------------------------------------------------------------------------------------

class Curl(TLSCase):
    """curl verifies the server against the test root only, by the name localhost: the chain
    must be sent and the name must match."""

    def setUp(self):
        need_tool("curl")
        self.srv = self.start_tls("--workers", "2", "--max-body-bytes", "4M",
                                  "--dataset", DATASET_PATH)
        self.base = "https://localhost:%d" % self.srv.tls_port
        self.dir = self.tempdir()

    def curl(self, *args):
        argv = ["curl", "-sS", "--http1.1", "--cacert", CERTS.root,
                "--resolve", "localhost:%d:127.0.0.1" % self.srv.tls_port] + list(args)
        p = subprocess.run(argv, capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, "%s\n%s" % (" ".join(argv), p.stderr.decode()))
        return p.stdout

    def test_routes_on_one_keep_alive_connection(self):
        # Several URLs in one curl run share one connection: one connect, then reuses.
        paths = ["/plaintext", "/json", "/healthz", "/json/3", "/plaintext"]
        argv = ["-w", "%{http_code} %{num_connects} %{http_version} %{ssl_verify_result} "
                "%{scheme}\\n", "--compressed"]
        files = []
        for i, p in enumerate(paths):
            files.append(os.path.join(self.dir, "body%d" % i))
            argv += [self.base + p, "-o", files[-1]]
        lines = self.curl(*argv).decode().split()
        got = [lines[i:i + 5] for i in range(0, len(lines), 5)]
        self.assertEqual(len(got), len(paths), lines)
        for i, (code, connects, version, verify, scheme) in enumerate(got):
            self.assertEqual((code, version, verify), ("200", "1.1", "0"), got[i])
            self.assertEqual(scheme.lower(), "https", got[i])
            self.assertEqual(connects, "1" if i == 0 else "0", "transfer %d: %r" % (i, got))
        bodies = []
        for f in files:
            with open(f, "rb") as fh:
                bodies.append(fh.read())
        self.assertEqual(bodies[0], HELLO)
        self.assertEqual(bodies[1], JSON)
        self.assertEqual(bodies[2], b"ok")
        doc = json.loads(bodies[3])
        self.assertEqual(doc["count"], 3, doc)
        self.assertEqual([it["id"] for it in doc["items"]], [it["id"] for it in DATASET[:3]])
        self.assertEqual(bodies[4], HELLO)

    def test_post_echo_1mib(self):
        body = os.urandom(1 << 20)
        src, dst = os.path.join(self.dir, "up"), os.path.join(self.dir, "down")
        with open(src, "wb") as f:
            f.write(body)
        out = self.curl("-w", "%{http_code}", "--data-binary", "@" + src,
                        "-H", "Content-Type: application/octet-stream",
                        self.base + "/echo", "-o", dst)
        self.assertEqual(out, b"200")
        with open(dst, "rb") as f:
            self.assertTrue(f.read() == body, "the 1 MiB echo over TLS differs")

    def test_head(self):
        out = self.curl("-I", self.base + "/plaintext").decode("latin-1")
        self.assertRegex(out, r"^HTTP/1\.1 200 ", out)
        self.assertRegex(out, r"(?mi)^Content-Length: 13\r$", out)
        self.assertNotIn("Hello", out)

    def test_ip_address_name(self):
        # The IP SAN: curl checks https://127.0.0.1 against it.
        out = subprocess.run(["curl", "-sS", "--http1.1", "--cacert", CERTS.root,
                              "https://127.0.0.1:%d/plaintext" % self.srv.tls_port],
                             capture_output=True, timeout=60)
        self.assertEqual((out.returncode, out.stdout), (0, HELLO), out.stderr)


# ---- openssl s_client ---------------------------------------------------------------------------

class Protocols(TLSCase):
    """Versions, ciphers, ALPN and renegotiation with s_client, against an RSA certificate (so
    that RSA key exchange and ECDHE-RSA CBC suites could be chosen if allowed) and an ECDSA one."""

    def setUp(self):
        self.rsa = self.start_tls("--workers", "1", cert="rsa")
        self.ec = self.start_tls("--workers", "1")

    def test_tls10_and_11_refused(self):
        for srv in (self.rsa, self.ec):
            for flag in ("-tls1", "-tls1_1"):
                # SECLEVEL=0: OpenSSL 3 would not offer these versions' SHA-1 signatures at all
                r = s_client(srv.tls_port, flag, "-cipher", "DEFAULT:@SECLEVEL=0", certs=CERTS)
                self.assertGreater(r.written, 0, "s_client sent nothing: %r" % r)
                self.assertFalse(r.handshake_ok, r)
                self.assertNotIn("Hello, World!", r.out)
                self.assertNotEqual(r.code, 0, r)

    def test_tls12_and_13_accepted(self):
        for srv in (self.rsa, self.ec):
            for flag, version in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
                r = s_client(srv.tls_port, flag, certs=CERTS)
                self.assertTrue(r.handshake_ok, r)
                self.assertEqual(r.negotiated, version, r)
                # "Protocol  : TLSv1.x": for TLS 1.3 printed only once a session ticket came
                self.assertEqual(r.protocol, version, r)
                self.assertTrue(r.verify_ok, "the chain did not verify: %r" % r)
                self.assertIn("HTTP/1.1 200 OK", r.out)
                self.assertIn("Hello, World!", r.out)
                if version == "TLSv1.2":
                    self.assertRegex(r.cipher, GOOD_TLS12, r)
                self.assertEqual(r.code, 0, r)

    def test_tls12_cipher_suites(self):
        # Every TLS 1.2 suite this OpenSSL can offer (SECLEVEL=0: also the weak ones), each
        # alone, to the server whose key it needs: only ECDHE with AES-GCM or ChaCha20-Poly1305
        # completes. PSK and SRP suites are left out: they need a shared secret to be offered.
        listing = subprocess.run(["openssl", "ciphers", "-tls1_2",
                                  "ALL:COMPLEMENTOFALL:@SECLEVEL=0"],
                                 capture_output=True, text=True, timeout=30)
        suites = [c for c in listing.stdout.strip().split(":")
                  if not c.startswith("TLS_") and "PSK" not in c and "SRP" not in c]
        self.assertGreater(len(suites), 50, listing)

        def attempt(suite):
            srv = self.ec if "ECDSA" in suite else self.rsa
            return suite, s_client(srv.tls_port, "-tls1_2", "-cipher", suite + ":@SECLEVEL=0",
                                   certs=CERTS)

        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(attempt, suites))
        accepted = set()
        for suite, r in results:
            with self.subTest(suite=suite):
                self.assertGreater(r.written, 0, "s_client could not offer %s: %r" % (suite, r))
                if r.handshake_ok:
                    accepted.add(suite)
                    self.assertEqual(r.cipher, suite, r)
                    self.assertIn("Hello, World!", r.out)
                else:
                    self.assertNotIn("Hello, World!", r.out)
        self.assertEqual(accepted, {s for s in suites if GOOD_TLS12.match(s)})
        self.assertEqual(len(accepted), 6, accepted)

    def test_key_exchange_groups(self):
        # X25519, P-256 and P-384 only: no P-521, X448 or finite-field groups. TLS 1.2 against
        # the RSA key: there the groups a client names also bound the curve of an ECDSA key.
        for flag, srv in (("-tls1_2", self.rsa), ("-tls1_3", self.ec)):
            for group, ok in (("X25519", True), ("P-256", True), ("P-384", True),
                              ("P-521", False), ("X448", False), ("ffdhe2048", False)):
                if flag == "-tls1_2" and group.startswith("ffdhe"):
                    continue  # TLS 1.2 finite-field groups are DHE suites: covered above
                with self.subTest(version=flag, group=group):
                    r = s_client(srv.tls_port, flag, "-groups", group, certs=CERTS)
                    self.assertGreater(r.written, 0, r)
                    self.assertEqual(r.handshake_ok, ok, r)
                    if ok:
                        name = {"P-256": "prime256v1", "P-384": "secp384r1"}.get(group, group)
                        self.assertRegex(r.out, r"Server Temp Key: (ECDH, )?%s\b" % name, r)

    def test_server_preference(self):
        # The same suite whatever the client's order: the server's preference decides. (Not
        # with ChaCha20 among them: a server may choose it for a client that prefers it, as
        # OpenSSL's PRIORITIZE_CHACHA does for clients without AES hardware.)
        for srv, kind in ((self.rsa, "RSA"), (self.ec, "ECDSA")):
            pair = ["ECDHE-%s-AES128-GCM-SHA256" % kind, "ECDHE-%s-AES256-GCM-SHA384" % kind]
            chosen = set()
            for order in (pair, pair[::-1]):
                r = s_client(srv.tls_port, "-tls1_2", "-cipher", ":".join(order), certs=CERTS)
                self.assertTrue(r.handshake_ok, r)
                chosen.add(r.cipher)
            self.assertEqual(len(chosen), 1, chosen)

    def test_alpn(self):
        r = s_client(self.ec.tls_port, "-alpn", "http/1.1", certs=CERTS)
        self.assertTrue(r.handshake_ok, r)
        self.assertEqual(r.alpn, "http/1.1", r)
        self.assertIn("Hello, World!", r.out)
        # HTTP/2 is offered first (test_http2.py has the rest): h2 when the client offers it
        r = s_client(self.ec.tls_port, "-alpn", "http/1.1,h2", certs=CERTS)
        self.assertEqual(r.alpn, "h2", r)
        r = s_client(self.ec.tls_port, "-alpn", "h2", certs=CERTS)
        self.assertEqual(r.alpn, "h2", r)
        # nothing we speak: a fatal no_application_protocol alert, nothing served
        r = s_client(self.ec.tls_port, "-alpn", "spdy/3,h3", certs=CERTS)
        self.assertFalse(r.handshake_ok, r)
        self.assertIn("no application protocol", r.out, r)
        self.assertNotIn("Hello, World!", r.out)
        # no ALPN at all: HTTP/1.1
        r = s_client(self.ec.tls_port, certs=CERTS)
        self.assertTrue(r.handshake_ok, r)
        self.assertIn("No ALPN negotiated", r.out, r)
        self.assertIn("Hello, World!", r.out)

    def test_alpn_python(self):
        conn = self.tconnect(self.ec, self.ctx(alpn=["spdy/3", "http/1.1"]))
        self.assertEqual(conn.tls.selected_alpn_protocol(), "http/1.1")
        self.assertEqual(conn.request("GET", "/plaintext").body, HELLO)
        with self.assertRaisesRegex(ssl.SSLError, "(?i)no.application.protocol"):
            TLSConn(self.ec.tls_port, self.ctx(alpn=["spdy/3"])).close()

    def test_renegotiation_refused(self):
        for srv in (self.rsa, self.ec):
            hellos, server_hellos, out = s_client_renegotiate(srv.tls_port, CERTS)
            self.assertEqual(hellos, 2, "the renegotiation was not attempted:\n" + out)
            self.assertEqual(server_hellos, 1, "the server renegotiated:\n" + out)
        # and the server is fine afterwards
        self.assertEqual(self.tconnect(self.rsa).request("GET", "/healthz").body, b"ok")


class SNI(TLSCase):
    def setUp(self):
        sni = ["--tls-sni", "api.example.test=%s:%s" % (CERTS.path("api.pem"),
                                                       CERTS.path("api.key")),
               "--tls-sni", "*.wild.test=%s:%s" % (CERTS.path("wild.pem"),
                                                   CERTS.path("wild.key"))]
        self.srv = self.start_tls("--workers", "2", *sni)

    def test_s_client_names(self):
        cases = [("api.example.test", "CN = api.example.test"),
                 ("x.wild.test", "CN = *.wild.test"),
                 ("a.b.wild.test", "CN = localhost"),  # a wildcard covers one label
                 ("wild.test", "CN = localhost"),
                 ("unknown.example.test", "CN = localhost"),
                 ("localhost", "CN = localhost")]
        for name, cn in cases:
            with self.subTest(name=name):
                r = s_client(self.srv.tls_port, "-servername", name, certs=CERTS)
                self.assertTrue(r.handshake_ok, r)
                self.assertIsNotNone(r.subject, r)
                self.assertTrue(r.subject.endswith(cn), r)
                self.assertTrue(r.verify_ok, "the chain of %s did not verify: %r" % (name, r))
                self.assertIn("Hello, World!", r.out)
        r = s_client(self.srv.tls_port, "-noservername", certs=CERTS)
        self.assertTrue(r.handshake_ok, r)
        self.assertTrue(r.subject.endswith("OU = server A, CN = localhost"), r)

    def test_python_checks_hostname(self):
        conn = self.tconnect(self.srv, server_hostname="api.example.test")
        self.assertEqual(conn.peer_der(), CERTS.der["api"])
        self.assertEqual(conn.request("GET", "/plaintext").body, HELLO)
        conn = self.tconnect(self.srv, server_hostname="x.wild.test")
        self.assertEqual(conn.peer_der(), CERTS.der["wild"])
        conn = self.tconnect(self.srv)
        self.assertEqual(conn.peer_der(), CERTS.der["ec"])


class Resumption(TLSCase):
    def test_s_client_resumes(self):
        srv = self.start_tls("--workers", "1")
        d = self.tempdir()
        for flag in ("-tls1_3", "-tls1_2"):
            with self.subTest(version=flag):
                sess = os.path.join(d, "sess" + flag)
                r = s_client(srv.tls_port, flag, "-sess_out", sess, certs=CERTS)
                self.assertEqual(r.session, "New", r)
                self.assertTrue(os.path.getsize(sess) > 0, "no session was saved: %r" % r)
                for _ in range(3):
                    r = s_client(srv.tls_port, flag, "-sess_in", sess, certs=CERTS)
                    self.assertEqual(r.session, "Reused", r)
                    self.assertIn("Hello, World!", r.out)

    def test_resumed_on_another_worker(self):
        # Ticket keys are shared by the workers: every resumption succeeds wherever it lands.
        # /kv's X-Coil-Worker tells which worker served the connection.
        srv = self.start_tls("--workers", "2")
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            with self.subTest(version=version.name):
                ctx = self.ctx(maximum=version)
                first = self.tconnect(srv, ctx)
                r = first.request("GET", "/kv/tls-probe")
                origin = int(r.header("X-Coil-Worker"))
                session = first.tls.session  # with TLS 1.3, its ticket came with the response
                first.close()
                seen = set()
                for i in range(24):
                    c = self.tconnect(srv, ctx, session=session)
                    self.assertTrue(c.session_reused(), "connection %d not resumed" % i)
                    self.assertEqual(c.version, version.name.replace("_", "."))
                    seen.add(int(c.request("GET", "/kv/tls-probe").header("X-Coil-Worker")))
                    c.close()
                    if len(seen) == 2 and i >= 5:
                        break
                self.assertIn(1 - origin, seen, "no resumed connection reached the other worker")

    def test_s_client_resumes_on_both_workers(self):
        srv = self.start_tls("--workers", "2")
        sess = os.path.join(self.tempdir(), "sess")
        r = s_client(srv.tls_port, "-tls1_3", "-sess_out", sess, certs=CERTS)
        self.assertEqual(r.session, "New", r)
        for i in range(8):
            r = s_client(srv.tls_port, "-tls1_3", "-sess_in", sess, certs=CERTS)
            self.assertEqual(r.session, "Reused", "run %d: %r" % (i, r))

    def test_ticket_keys_rotate(self):
        # With a 1 s rotation, a ticket opens right after it was issued (its key is the current
        # one, or the one before it if a rotation just happened), and no longer once two
        # periods have passed: both keys it could have been sealed with are gone.
        srv = self.start_tls("--workers", "2", "--tls-ticket-rotate", "1s")
        d = self.tempdir()
        for flag in ("-tls1_3", "-tls1_2"):
            with self.subTest(version=flag):
                sess = os.path.join(d, "rot" + flag)
                r = s_client(srv.tls_port, flag, "-sess_out", sess, certs=CERTS)
                self.assertEqual(r.session, "New", r)
                issued = time.monotonic()
                r = s_client(srv.tls_port, flag, "-sess_in", sess, certs=CERTS)
                self.assertEqual(r.session, "Reused", r)
                time.sleep(max(0.0, issued + 2.5 - time.monotonic()))
                r = s_client(srv.tls_port, flag, "-sess_in", sess, certs=CERTS)
                self.assertEqual(r.session, "New", r)
                self.assertIn("Hello, World!", r.out)

    def test_counted(self):
        srv = self.start_tls("--workers", "2")
        # a session is resumed only with the context that made it
        ctx13, ctx12 = (self.ctx(maximum=ssl.TLSVersion.TLSv1_3),
                        self.ctx(maximum=ssl.TLSVersion.TLSv1_2))
        c13 = self.tconnect(srv, ctx13)
        c13.request("GET", "/healthz")
        c12 = self.tconnect(srv, ctx12)
        c12.request("GET", "/healthz")
        s13, s12 = c13.tls.session, c12.tls.session
        for _ in range(2):
            c = self.tconnect(srv, ctx13, session=s13)
            self.assertTrue(c.session_reused())
            c.request("GET", "/healthz")
        c = self.tconnect(srv, ctx12, session=s12)
        self.assertTrue(c.session_reused())
        c.request("GET", "/healthz")
        versions, resumed, failures, _ = self.tls_metrics(srv)
        self.assertEqual(versions, {"TLSv1.3": 3, "TLSv1.2": 2})
        self.assertEqual((resumed, failures), (3, 0))


# ---- Python's ssl: records, sends and the end of the stream -------------------------------------

class Stream(TLSCase):
    def setUp(self):
        self.srv = self.start_tls("--workers", "2")

    def test_pipelined_in_one_write(self):
        reqs = []
        for i in range(16):
            if i % 4 == 0:
                reqs.append((request("POST", "/echo", body=b"body %02d" % i), b"body %02d" % i))
            elif i % 4 == 1:
                reqs.append((request("GET", "/plaintext"), HELLO))
            elif i % 4 == 2:
                reqs.append((request("GET", "/json"), JSON))
            else:
                reqs.append((request("GET", "/healthz"), b"ok"))
        conn = self.tconnect(self.srv)
        conn.send(b"".join(r for r, _ in reqs))  # one TLS write: one or a few records
        for i, (_, body) in enumerate(reqs):
            r = conn.read_response()
            self.assertEqual((r.status, r.body), (200, body), "response %d: %r" % (i, r))
            self.assertStandardHeaders(r, len(body))

    def test_many_pipelined(self):
        n = 500
        conn = self.tconnect(self.srv)
        conn.send(b"".join(request("POST", "/echo", body=b"req-%04d" % i) for i in range(n)))
        self.assertEqual([conn.read_response().body for _ in range(n)],
                         [b"req-%04d" % i for i in range(n)])

    def test_one_byte_records(self):
        # Every byte of the request in a TLS record (and a TCP send) of its own.
        conn = self.tconnect(self.srv)
        body = b"split into one-byte records"
        data = request("POST", "/echo", body=body, headers=["Content-Type: text/x-split"])
        conn.send(data, record=1)
        r = conn.read_response()
        self.assertEqual((r.status, r.body), (200, body), r)
        self.assertEqual(r.header("Content-Type"), "text/x-split", r)
        conn.send(request("GET", "/json"), record=1, pause=0.001)
        self.assertEqual(conn.read_response().body, JSON)

    def test_records_of_odd_sizes(self):
        conn = self.tconnect(self.srv)
        body = os.urandom(100_000)
        conn.send(request("POST", "/echo", body=body), record=1_337)
        r = conn.read_response()
        self.assertTrue(r.status == 200 and r.body == body, "echo over 1337-byte records")

    def test_client_hello_one_byte_per_send(self):
        conn = self.tconnect(self.srv, hello_step=1)
        self.assertIn(conn.version, ("TLSv1.2", "TLSv1.3"))
        self.assertEqual(conn.request("GET", "/plaintext").body, HELLO)
        conn12 = self.tconnect(self.srv, self.ctx(maximum=ssl.TLSVersion.TLSv1_2), hello_step=1)
        self.assertEqual(conn12.version, "TLSv1.2")
        self.assertEqual(conn12.request("GET", "/plaintext").body, HELLO)

    def test_close_notify_after_connection_close(self):
        for version in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
            with self.subTest(version=version.name):
                conn = self.tconnect(self.srv, self.ctx(maximum=version))
                r = conn.request("GET", "/plaintext", headers=["Connection: close"])
                self.assertEqual(r.body, HELLO)
                data, how = conn.read_until_eof()
                self.assertEqual((data, how), (b"", "close_notify"), conn.error)

    def test_close_notify_ssl_socket(self):
        # The same with an ordinary SSLSocket that reports a ragged EOF as an error.
        ctx = self.ctx()
        raw = socket.create_connection(("127.0.0.1", self.srv.tls_port), timeout=10)
        with ctx.wrap_socket(raw, server_hostname="localhost",
                             suppress_ragged_eofs=False) as s:
            s.sendall(request("GET", "/json", headers=["Connection: close"]))
            got = bytearray()
            while True:
                chunk = s.recv(65536)  # SSLEOFError here if the server did not send close_notify
                if not chunk:
                    break
                got += chunk
            self.assertTrue(got.startswith(b"HTTP/1.1 200 "), got)
            self.assertTrue(got.endswith(JSON), got)

    def test_client_close_notify_is_eof(self):
        conn = self.tconnect(self.srv)
        self.assertEqual(conn.request("GET", "/plaintext").body, HELLO)
        conn.close_notify()
        data, how = conn.read_until_eof()
        self.assertEqual(data, b"")
        self.assertIn(how, ("close_notify", "ragged"), conn.error)
        # requests sent before our close_notify are answered first, as before a FIN
        conn = self.tconnect(self.srv)
        conn.send(request("GET", "/plaintext") * 3)
        conn.close_notify()
        for _ in range(3):
            self.assertEqual(conn.read_response().body, HELLO)
        data, how = conn.read_until_eof()
        self.assertEqual(data, b"")
        self.assertIn(how, ("close_notify", "ragged"), conn.error)
        _, _, failures, _ = self.tls_metrics(self.srv)
        self.assertEqual(failures, 0)
        self.assertEqual(self.tconnect(self.srv).request("GET", "/healthz").body, b"ok")

    def test_large_response_to_slow_reader(self):
        conn = self.tconnect(self.srv)
        body = os.urandom(900_000)
        conn.send(request("POST", "/echo", body=body))
        time.sleep(0.3)  # let the answer back up behind our unread socket
        r = conn.read_response()
        self.assertTrue(r.status == 200 and r.body == body, "900 kB echo back")


# ---- timeouts and failed handshakes -------------------------------------------------------------

class Handshake(TLSCase):
    def test_silent_and_stalled_clients_closed(self):
        srv = self.start_tls("--workers", "1", "--header-timeout", "1s", "--idle-timeout", "60s")
        silent = self.connect(srv.tls_port)
        stalled = self.connect(srv.tls_port)
        hello = first_flight()
        stalled.send(hello[:len(hello) // 2])
        for conn in (silent, stalled):
            data, how = conn.read_until_eof()  # AssertionError if never closed
            self.assertFalse(data.startswith(b"HTTP/"), data)
        kinds = wait_until(lambda: (lambda k: k if k.get("tls_handshake") == 2 else None)(
            self.tls_metrics(srv)[3]), timeout=5, what="two tls_handshake timeouts counted")
        self.assertEqual(kinds.get("header"), 0, "a handshake time-out counted as a header one")
        # and the server still serves TLS
        self.assertEqual(self.tconnect(srv).request("GET", "/plaintext").body, HELLO)

    def test_header_timeout_after_handshake_408(self):
        srv = self.start_tls("--workers", "1", "--header-timeout", "1s")
        conn = self.tconnect(srv)
        conn.send(b"GET /plaintext HTTP/1.1\r\nHo")
        r = conn.read_response()
        self.assertEqual(r.status, 408, r)
        self.assertTrue(r.has_token("Connection", "close"), r)
        data, how = conn.read_until_eof()
        self.assertEqual((data, how), (b"", "close_notify"))

    def test_idle_timeout_closes(self):
        srv = self.start_tls("--workers", "1", "--idle-timeout", "1s")
        conn = self.tconnect(srv)
        self.assertEqual(conn.request("GET", "/healthz").body, b"ok")
        data, how = conn.read_until_eof()
        self.assertEqual(data, b"")
        self.assertIn(how, ("close_notify", "ragged"))

    def test_plain_http_to_tls_port(self):
        # A request in plain HTTP is answered in plain HTTP (what a browser would show), then
        # the connection is closed; bytes that are neither get the connection closed, with at
        # most a TLS alert. Each counts as a failed handshake; TLS and HTTP go on.
        srv = self.start_tls("--workers", "2")
        before = self.tls_metrics(srv)[2]
        conn = self.connect(srv.tls_port)
        res = conn.send_until_closed(request("GET", "/plaintext"))
        self.assertEqual(len(res.responses), 1, res)
        r = res.responses[0]
        self.assertEqual(r.status, 400, r)
        self.assertIn(b"https://", r.body, r)
        self.assertTrue(r.has_token("Connection", "close"), r)
        self.assertEqual(res.rest, b"", res)
        hello = first_flight()
        junks = (b"\x00" * 64,                          # no TLS record at all
                 b"\x16\x03\x01\x00\x05hello",           # a handshake record, not a ClientHello
                 hello[:9] + b"\x01\x01" + hello[11:])    # a ClientHello of version 0x0101
        for junk in junks:
            data = self.connect(srv.tls_port).send_until_closed(junk).rest
            if data:  # at most a TLS alert record
                self.assertEqual(data[:1], b"\x15", data)
        wait_until(lambda: self.tls_metrics(srv)[2] == before + 4, timeout=5,
                   what="four handshake failures to be counted")
        self.assertEqual(self.tconnect(srv).request("GET", "/plaintext").body, HELLO)
        self.assertEqual(self.connect(srv).request("GET", "/plaintext").body, HELLO)

    def test_failure_logged_only_at_debug(self):
        quiet = self.start_tls("--workers", "1")
        loud = self.start_tls("--workers", "1", "--log-level", "debug")
        failures = [("plain HTTP", request("GET", "/plaintext")),
                    ("not TLS", b"\x00" * 64),
                    ("ALPN spdy/3 only", first_flight(self.ctx(alpn=["spdy/3"])))]
        for what, data in failures:
            with self.subTest(failure=what):
                marks = {}
                for srv in (loud, quiet):
                    before = self.tls_metrics(srv)[2]
                    marks[srv] = len(srv.log)
                    self.connect(srv.tls_port).send_until_closed(data)
                    wait_until(lambda: self.tls_metrics(srv)[2] == before + 1, timeout=5,
                               what="the failure to be counted")

                def lines(srv):
                    return [l for l in srv.log[marks[srv]:]
                            if re.search(r"(?i)handshake|tls|ssl|https", l)]

                # the debug server first: once its line is in, the other's would be too
                wait_until(lambda: lines(loud), timeout=5, what="a debug line about the failure")
                self.assertEqual(lines(quiet), [], "logged at the default level")


# ---- start-up -----------------------------------------------------------------------------------

class StartUp(TLSCase):
    def run_coil(self, *args, timeout=15):
        """Runs coil with args (and a plain listener on a free port); returns (exit, stderr).
        A coil that starts instead of exiting is stopped, and the test fails."""
        argv = [coil_bin()] + [str(a) for a in args] + ["--port", "0", "--bind", "127.0.0.1"]
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, env=clean_env())
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            self.fail("coil %s did not exit:\n%s" % (" ".join(args), err.decode()))
        return p.returncode, err.decode("utf-8", "replace")

    def assertRefused(self, args, *needles):
        code, err = self.run_coil(*args)
        self.assertEqual(code, 2, "%s: %s" % (args, err))
        for n in needles:
            self.assertRegex(err, n, args)
        self.assertNotIn("listening", err)

    def test_ticket_rotate_bounds(self):
        for bad in ("0", "500ms", "8d", "soon"):
            with self.subTest(value=bad):
                self.assertRefused(tls_args(CERTS, "ec") + ["--tls-ticket-rotate", bad],
                                   "tls-ticket-rotate")

    def test_tls_port_needs_cert_and_key(self):
        self.assertRefused(["--tls-port", "0"], r"tls-cert")
        self.assertRefused(["--tls-port", "0", "--tls-cert", CERTS.path("ec.pem")], r"tls-key")
        self.assertRefused(["--tls-port", "0", "--tls-key", CERTS.path("ec.key")], r"tls-cert")

    def test_missing_files(self):
        missing = os.path.join(_tmp, "no-such.pem")
        self.assertRefused(["--tls-port", "0", "--tls-cert", missing,
                            "--tls-key", CERTS.path("ec.key")], re.escape(missing))
        self.assertRefused(["--tls-port", "0", "--tls-cert", CERTS.path("ec.pem"),
                            "--tls-key", missing], re.escape(missing))

    def test_bad_files(self):
        garbage = CERTS.path("garbage.pem")
        self.assertRefused(["--tls-port", "0", "--tls-cert", garbage,
                            "--tls-key", CERTS.path("ec.key")], re.escape(garbage))
        self.assertRefused(["--tls-port", "0", "--tls-cert", CERTS.path("ec.pem"),
                            "--tls-key", CERTS.path("garbage.pem")],
                           re.escape(CERTS.path("garbage.pem")))

    def test_mismatched_key(self):
        for key in ("other.key", "rsa.key"):
            self.assertRefused(["--tls-port", "0", "--tls-cert", CERTS.path("ec.pem"),
                                "--tls-key", CERTS.path(key)], r"(?i)match|key")

    def test_bad_sni(self):
        self.assertRefused(tls_args(CERTS) + ["--tls-sni", "api.example.test=%s:%s"
                                              % (CERTS.path("api.pem"), CERTS.path("other.key"))],
                           r"(?i)api\.example\.test|match|key")
        self.assertRefused(tls_args(CERTS) + ["--tls-sni", "no-equals-sign"], r"(?i)sni")

    def test_offload(self):
        self.assertRefused(tls_args(CERTS) + ["--tls-offload", "sometimes"], r"offload")
        srv = self.start_tls("--tls-offload", "user")
        self.assertRegex(srv.log_text(), r"(?m)^coil: TLS record layer: user space")
        self.assertEqual(self.tconnect(srv).request("GET", "/plaintext").body, HELLO)
        if kernel_tls_available():
            srv = self.start_tls("--tls-offload", "kernel")
            self.assertRegex(srv.log_text(), r"(?m)^coil: TLS record layer: kernel")
            self.assertEqual(self.tconnect(srv).request("GET", "/plaintext").body, HELLO)
            auto = r"(?m)^coil: TLS record layer: kernel"
        else:
            code, err = self.run_coil(*tls_args(CERTS), "--tls-offload", "kernel")
            self.assertEqual(code, 2, err)
            self.assertRegex(err, r"(?i)kernel", err)
            self.assertNotIn("listening", err)
            auto = r"(?m)^coil: TLS record layer: user space \(.+\)$"
        srv = self.start_tls()
        self.assertRegex(srv.log_text(), auto)

    def test_startup_lines(self):
        srv = self.start_tls("--workers", "2")
        lines = srv.log_text().splitlines()
        tls = [i for i, l in enumerate(lines) if re.match(
            r"^coil: listening for TLS on 127\.0\.0\.1:%d with 2 workers$" % srv.tls_port, l)]
        plain = [i for i, l in enumerate(lines) if l.startswith("coil: listening on ")]
        self.assertEqual(len(tls), 1, lines)
        self.assertEqual(len(plain), 1, lines)
        self.assertLess(tls[0], plain[0], lines)
        self.assertNotEqual(srv.tls_port, srv.port)

    def test_no_http(self):
        probe = socket.socket()
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
        probe.close()
        srv = self.start_tls("--no-http", "--port", port, "--bind", "127.0.0.1", add_addr=False)
        self.assertIsNotNone(srv.tls_port)
        self.assertNotIn("coil: listening on ", srv.log_text())
        with self.assertRaises(ConnectionRefusedError):
            Conn(port).close()
        self.assertEqual(self.tconnect(srv).request("GET", "/plaintext").body, HELLO)

    def test_options_from_the_environment(self):
        env = {"COIL_TLS_PORT": "0", "COIL_TLS_CERT": CERTS.path("ec.pem"),
               "COIL_TLS_KEY": CERTS.path("ec.key"),
               "COIL_TLS_SNI": "api.example.test=%s:%s" % (CERTS.path("api.pem"),
                                                          CERTS.path("api.key"))}
        srv = self.start(env=env)
        self.assertIsNotNone(srv.tls_port)
        self.assertEqual(self.tconnect(srv).peer_der(), CERTS.der["ec"])
        conn = self.tconnect(srv, server_hostname="api.example.test")
        self.assertEqual(conn.peer_der(), CERTS.der["api"])


# ---- the engine's features over TLS -------------------------------------------------------------

class Engine(TLSCase):
    def test_deferred_and_streamed_responses(self):
        srv = self.start_tls("--workers", "2", app=True)
        conn = self.tconnect(srv)
        r = conn.request("GET", "/later/100")
        self.assertEqual((r.status, r.body), (200, b"later 100"), r)
        # pipelined behind deferred responses, answered in order
        conn.send(request("GET", "/later/300") + request("GET", "/status/201")
                  + request("GET", "/later/50") + request("GET", "/greeting")
                  + request("POST", "/echo-later/20", body=b"posted", headers=["X-Tag: t1"]))
        got = [conn.read_response() for _ in range(5)]
        self.assertEqual([(r.status, r.body) for r in got],
                         [(200, b"later 300"), (201, b"status 201"), (200, b"later 50"),
                          (200, b"hello"), (200, b"posted")], got)
        self.assertEqual(got[4].header("X-Tag"), "t1")
        # streamed, chunked and with a length
        pattern = bytes(i % 251 for i in range(251))
        for path, mb in (("/stream", 4), ("/stream-len", 2)):
            r = conn.request("GET", "%s?mb=%d" % (path, mb))
            self.assertEqual(r.status, 200, r)
            want = (pattern * ((mb << 20) // 251 + 1))[:mb << 20]
            self.assertTrue(r.body == want, "%s?mb=%d body differs (%d bytes)"
                            % (path, mb, len(r.body)))
            if path == "/stream":
                self.assertEqual(r.header("Transfer-Encoding"), "chunked", r)
            else:
                self.assertEqual(r.header("Content-Length"), str(mb << 20), r)
        # a streamed request body
        body = os.urandom(1 << 20)
        r = conn.request("POST", "/stream", body=body)
        self.assertEqual(r.status, 200, r)
        length, checksum, pieces = r.body.split()
        self.assertEqual((int(length), int(checksum)), (len(body), stream_checksum(body)), r)
        stats = json.loads(conn.request("GET", "/stats").body)
        self.assertEqual(stats["errors"], 0, stats)

    def test_request_id_echoed(self):
        srv = self.start_tls()
        conn = self.tconnect(srv)
        r = conn.request("GET", "/plaintext", headers=["X-Request-ID: tls-test.0001"])
        self.assertEqual(r.header_all("X-Request-ID"), ["tls-test.0001"], r)
        r = conn.request("GET", "/plaintext")
        self.assertRegex(r.header("X-Request-ID") or "", r"^[0-9a-f]+-\d+-\d+$", r)

    def test_metrics_count_tls_requests(self):
        srv = self.start_tls("--workers", "1")
        conn = self.tconnect(srv)
        for _ in range(5):
            self.assertEqual(conn.request("GET", "/json").body, JSON)
        self.assertEqual(scrape(srv.port).requests().get(("/json", "GET", "2xx")), 5)

    def test_drain_with_tls_request_in_flight(self):
        srv = self.start_tls("--workers", "1", "--drain-timeout", "30s", app=False)
        sentinel = self.connect(srv)  # plain and idle: closed when the drain begins
        self.assertEqual(sentinel.request("GET", "/healthz").status, 200)
        idle = self.tconnect(srv)
        self.assertEqual(idle.request("GET", "/healthz").status, 200)
        busy = self.tconnect(srv)
        busy.send(request("POST", "/echo", body=b"", headers=["Content-Length: 8"]) + b"abcd")
        time.sleep(SETTLE)
        srv.send_signal(signal.SIGTERM)
        sentinel.wait_closed()
        idle_end = idle.read_until_eof()  # closed at once: idle
        busy.send(b"efgh")
        r = busy.read_response()
        self.assertEqual((r.status, r.body), (200, b"abcdefgh"), r)
        self.assertTrue(r.has_token("Connection", "close"), r)
        data, how = busy.read_until_eof()
        self.assertEqual((data, how), (b"", "close_notify"), busy.error)
        self.assertEqual(srv.wait_exit(15), 0)
        # the drain closes the idle connection gracefully too
        self.assertEqual(idle_end, (b"", "close_notify"), idle.error)

    def test_drain_with_deferred_tls_response(self):
        srv = self.start_tls("--workers", "1", "--drain-timeout", "30s", app=True)
        sentinel = self.connect(srv)
        self.assertEqual(sentinel.request("GET", "/greeting").status, 200)
        conn = self.tconnect(srv)
        conn.send(request("GET", "/later/1500"))
        time.sleep(SETTLE)
        srv.send_signal(signal.SIGTERM)
        sentinel.wait_closed()
        r = conn.read_response()
        self.assertEqual((r.status, r.body), (200, b"later 1500"), r)
        self.assertTrue(r.has_token("Connection", "close"), r)
        self.assertEqual(conn.read_until_eof(), (b"", "close_notify"))
        self.assertEqual(srv.wait_exit(15), 0)


# ---- SIGHUP -------------------------------------------------------------------------------------

class Reload(TLSCase):
    LOADED = "coil: TLS reload: certificates loaded"
    KEEPING = re.compile(r"^coil: TLS reload: .+; keeping the certificates in use$")

    def put(self, dst, src):
        """Replaces dst with a copy of src at once (rename), as a deployment would."""
        tmp = dst + ".new"
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)

    def count(self, srv, what):
        lines = srv.log_text().splitlines()
        if isinstance(what, str):
            return sum(1 for l in lines if l == what)
        return sum(1 for l in lines if what.match(l))

    def hup_and_wait(self, srv, what):
        n = self.count(srv, what)
        srv.send_signal(signal.SIGHUP)
        wait_until(lambda: self.count(srv, what) > n, timeout=10, what="the reload's log line")

    def test_reload(self):
        d = self.tempdir()
        cert, key = os.path.join(d, "live.pem"), os.path.join(d, "live.key")
        api_cert, api_key = os.path.join(d, "api.pem"), os.path.join(d, "api.key")
        self.put(cert, CERTS.path("ec.pem"))
        self.put(key, CERTS.path("ec.key"))
        self.put(api_cert, CERTS.path("api.pem"))
        self.put(api_key, CERTS.path("api.key"))
        srv = self.start("--workers", "2", "--tls-port", "0", "--tls-cert", cert, "--tls-key", key,
                         "--tls-sni", "api.example.test=%s:%s" % (api_cert, api_key))
        old = self.tconnect(srv)
        self.assertEqual(old.peer_der(), CERTS.der["ec"])
        self.assertEqual(old.request("GET", "/plaintext").body, HELLO)

        # B replaces A (and api_b replaces api): new handshakes get them, old connections go on
        self.put(cert, CERTS.path("ec_b.pem"))
        self.put(key, CERTS.path("ec_b.key"))
        self.put(api_cert, CERTS.path("api_b.pem"))
        self.put(api_key, CERTS.path("api_b.key"))
        self.hup_and_wait(srv, self.LOADED)
        for _ in range(4):  # whichever worker takes it
            c = self.tconnect(srv)
            self.assertEqual(c.peer_der(), CERTS.der["ec_b"])
            self.assertEqual(c.request("GET", "/plaintext").body, HELLO)
            c.close()
        c = self.tconnect(srv, server_hostname="api.example.test")
        self.assertEqual(c.peer_der(), CERTS.der["api_b"])
        r = s_client(srv.tls_port, "-servername", "localhost", certs=CERTS)
        self.assertTrue(r.subject.endswith("OU = server B, CN = localhost"), r)
        self.assertEqual(old.request("GET", "/json").body, JSON)

        # a bad certificate file, then a key that does not match: B stays
        for bad_cert, bad_key in ((CERTS.path("garbage.pem"), CERTS.path("ec_b.key")),
                                  (CERTS.path("ec_b.pem"), CERTS.path("other.key"))):
            self.put(cert, bad_cert)
            self.put(key, bad_key)
            self.hup_and_wait(srv, self.KEEPING)
            for _ in range(4):
                c = self.tconnect(srv)
                self.assertEqual(c.peer_der(), CERTS.der["ec_b"])
                self.assertEqual(c.request("GET", "/plaintext").body, HELLO)
                c.close()
            self.assertEqual(old.request("GET", "/healthz").body, b"ok")
        # a missing file too
        os.unlink(cert)
        self.hup_and_wait(srv, self.KEEPING)
        self.assertEqual(self.tconnect(srv).peer_der(), CERTS.der["ec_b"])
        self.assertEqual(old.request("GET", "/plaintext").body, HELLO)


# ---- load ---------------------------------------------------------------------------------------

class Load(TLSCase):
    def setUp(self):
        self.srv = self.start_tls("--workers", "2", cert="rsa")
        self.url = "https://127.0.0.1:%d/plaintext" % self.srv.tls_port

    def test_wrk(self):
        need_tool("wrk")
        env = dict(os.environ, WRK_EXPECT_BODY=HELLO.decode())
        p = subprocess.run(["wrk", "-t1", "-c32", "-d2s", "--timeout", "10s",
                            "-s", os.path.join(HERE, "wrk_check.lua"), self.url],
                           capture_output=True, text=True, timeout=60, env=env)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, out)
        m = re.search(r"wrk_check: responses=(\d+) wrong=(\d+)", out)
        self.assertIsNotNone(m, out)
        self.assertGreater(int(m.group(1)), 0, out)
        self.assertEqual(int(m.group(2)), 0, out)
        self.assertNotIn("Socket errors", out)
        self.assertNotIn("Non-2xx", out)
        self.assertEqual(self.tls_metrics(self.srv)[2], 0, "handshake failures under wrk")

    def test_h2load(self):
        need_tool("h2load")
        p = subprocess.run(["h2load", "--h1", "-n", "2000", "-c", "16", self.url],
                           capture_output=True, text=True, timeout=120)
        out = p.stdout + p.stderr
        self.assertEqual(p.returncode, 0, out)
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(tuple(map(int, m.groups())), (2000, 2000, 2000, 2000, 0, 0, 0), out)
        m = re.search(r"status codes: (\d+) 2xx", out)
        self.assertEqual(int(m.group(1)), 2000, out)
        self.assertRegex(out, r"(?m)^TLS Protocol: TLSv1\.3$")
        versions, _, failures, _ = self.tls_metrics(self.srv)
        self.assertEqual(failures, 0)
        self.assertEqual(sum(versions.values()), 16, versions)
        # pipelined: 16 requests in flight per connection
        p = subprocess.run(["h2load", "--h1", "-n", "4000", "-c", "4", "-m", "16", self.url],
                           capture_output=True, text=True, timeout=120)
        out = p.stdout + p.stderr
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(tuple(map(int, m.groups())), (4000, 4000, 4000, 4000, 0, 0, 0), out)


if __name__ == "__main__":
    main()
