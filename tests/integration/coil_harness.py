# SPDX-License-Identifier: MIT
"""coil_harness: what every integration test shares.

It owns three things. `Server` starts the real coil binary on 127.0.0.1 with `--port 0`, waits for
its "coil: listening on ADDR:PORT with N workers" line, keeps the rest of its stdout/stderr in a
log, and stops it with a signal, checking the exit status and that no sanitizer spoke. `Conn` is a
raw TCP client with a strict HTTP/1.1 response reader (CRLF only, Content-Length, chunked, or
until EOF), used by `raw()` and `raw_until_eof()`. `CoilTestCase` ties them to unittest: servers
and connections a test opens are closed when it ends (connections first, so the drain is quick),
and a failing test prints the logs of its servers.

Waits are bounded (5-10 s) only so that a hang fails instead of blocking CI: no test asserts
that anything is fast. Only the Python standard library is used.
"""

import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))

# Environment variables the server reads its options from: removed from the environment the
# tests inherit, so a developer's own settings never change what a test sees.
OPTION_ENV = (
    "COIL_PORT", "COIL_BIND", "COIL_WORKERS", "COIL_MAX_CONNS", "COIL_MAX_HEADER_BYTES",
    "COIL_MAX_HEADERS", "COIL_MAX_BODY_BYTES", "COIL_HEADER_TIMEOUT", "COIL_BODY_TIMEOUT",
    "COIL_IDLE_TIMEOUT", "COIL_WRITE_TIMEOUT", "COIL_DRAIN_TIMEOUT", "COIL_HANDLER_TIMEOUT",
    "COIL_PROXY", "COIL_PROXY_CONNECT_TIMEOUT", "COIL_PROXY_READ_TIMEOUT",
    # the built-in middleware and logs
    "COIL_METRICS_PATH", "COIL_NO_METRICS", "COIL_ACCESS_LOG", "COIL_ACCESS_LOG_FORMAT",
    "COIL_LOG_FORMAT", "COIL_LOG_LEVEL", "COIL_REQUEST_ID", "COIL_CORS_ORIGINS",
    "COIL_CORS_METHODS", "COIL_CORS_HEADERS", "COIL_CORS_EXPOSE", "COIL_CORS_CREDENTIALS",
    "COIL_CORS_MAX_AGE", "COIL_RATE_LIMIT", "COIL_RATE_LIMIT_KEY", "COIL_API_KEYS",
    "COIL_JWT_KEY", "COIL_JWT_ALG", "COIL_JWT_ISSUER", "COIL_JWT_AUDIENCE", "COIL_JWT_LEEWAY",
    "COIL_AUTH_SKIP", "COIL_COMPRESS", "COIL_COMPRESS_LEVEL_GZIP", "COIL_COMPRESS_LEVEL_BR",
    "COIL_COMPRESS_MIN_BYTES", "COIL_COMPRESS_TYPES",
)

LISTEN_RE = re.compile(r"^coil: listening on (\S+):(\d+) with (\d+) workers?$")
TLS_LISTEN_RE = re.compile(r"^coil: listening for TLS on (\S+):(\d+) with (\d+) workers?$")
SANITIZER_RE = re.compile(
    r"ERROR: (Address|Leak|Thread|Memory|UndefinedBehavior)Sanitizer|runtime error:"
    r"|SUMMARY: \w+Sanitizer|WARNING: ThreadSanitizer")

READY_TIMEOUT = 10.0  # s to wait for the listening line
WAIT = 10.0           # s bound on any single wait for the server


def built_bin(env, *parts):
    """Path of a built program: $env (CTest sets it), else <source>/build/<parts>."""
    path = os.environ.get(env)
    if path:
        return path
    src = os.environ.get("COIL_SOURCE_DIR") or os.path.normpath(os.path.join(HERE, "..", ".."))
    return os.path.join(src, "build", *parts)


def coil_bin():
    return built_bin("COIL_BIN", "handlers", "coil")


def coil_load_bin():
    return built_bin("COIL_LOAD", "tools", "coil-load")


def testapp_bin():
    return built_bin("COIL_TESTAPP", "tests", "coil_testapp")


def whitebox_bin():
    return built_bin("COIL_WHITEBOX", "tests", "coil_whitebox")


def fetchapp_bin():
    return built_bin("COIL_FETCHAPP", "tests", "coil_fetchapp")


def clean_env(extra=None):
    env = {k: v for k, v in os.environ.items() if k not in OPTION_ENV}
    if extra:
        env.update(extra)
    return env


def need_tool(name):
    """Skips the calling test when an external client is not installed (and says so)."""
    path = shutil.which(name)
    if not path:
        msg = "%s is not installed (apt-get install %s): skipping" % (
            name, {"ab": "apache2-utils", "h2load": "nghttp2-client"}.get(name, name))
        print("coil_harness: " + msg, file=sys.stderr)
        raise unittest.SkipTest(msg)
    return path


def wait_until(pred, timeout=5.0, interval=0.05, what="condition"):
    """Polls pred() until it returns a true value, which is returned; AssertionError after
    timeout seconds (a bound against hangs, not a speed requirement)."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError("gave up after %.1fs waiting for %s" % (timeout, what))
        time.sleep(interval)


def vm_rss_kib(pid):
    """Resident set size of a process in KiB, from /proc/PID/status."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/%d/status" % pid)


# ---- the server ---------------------------------------------------------------------------------

_live = []  # servers not yet reaped: killed at interpreter exit whatever happened


@atexit.register
def _kill_leftovers():
    for srv in list(_live):
        if srv.proc.poll() is None:
            srv.proc.kill()
            srv.proc.wait()


class StartError(AssertionError):
    pass


class Server:
    """One coil process. args are passed as given, followed by --port 0 --bind 127.0.0.1 unless
    add_addr is False; env entries are added to a cleaned copy of the environment."""

    def __init__(self, args=(), env=None, add_addr=True, ready_timeout=READY_TIMEOUT,
                 program=None):
        # program: another binary built on the engine (testapp_bin()); the demo by default
        self.argv = [program or coil_bin()] + [str(a) for a in args]
        if add_addr:
            self.argv += ["--port", "0", "--bind", "127.0.0.1"]
        self.log = []  # lines of stdout ("out| ") and stderr, in arrival order
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self.addr = self.port = self.workers = None
        self.tls_port = None  # from the "listening for TLS" line, printed before the plain one
        self._tls_only = "--no-http" in self.argv  # no plain line then: ready after the TLS one
        self.code = None
        if not os.path.exists(self.argv[0]):
            raise StartError("coil binary not found at %s (set COIL_BIN or build it)"
                             % self.argv[0])
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, env=clean_env(env))
        _live.append(self)
        self._pumps = [threading.Thread(target=self._pump, args=(stream, tag), daemon=True)
                       for stream, tag in ((self.proc.stderr, ""), (self.proc.stdout, "out| "))]
        for t in self._pumps:
            t.start()
        self._wait_ready(ready_timeout)

    @property
    def pid(self):
        return self.proc.pid

    def _pump(self, stream, tag):
        for line in iter(stream.readline, b""):
            text = line.decode("utf-8", "replace").rstrip("\r\n")
            with self._lock:
                self.log.append(tag + text)
            if not tag and not self._ready.is_set():
                m = LISTEN_RE.match(text)
                if m:
                    self.addr = m.group(1)
                    self.port, self.workers = int(m.group(2)), int(m.group(3))
                    self._ready.set()
                m = TLS_LISTEN_RE.match(text)
                if m:
                    self.tls_port = int(m.group(2))
                    if self._tls_only:
                        self.addr, self.workers = m.group(1), int(m.group(3))
                        self._ready.set()
        stream.close()

    def _wait_ready(self, timeout):
        deadline = time.monotonic() + timeout
        while not self._ready.wait(0.05):
            if self.proc.poll() is not None:
                self._reap()
                raise StartError("coil exited with %s before listening; argv %s\n%s"
                                 % (self.code, self.argv, self.log_text()))
            if time.monotonic() > deadline:
                self.proc.kill()
                self._reap()
                raise StartError("coil printed no listening line within %.0fs; argv %s\n%s"
                                 % (timeout, self.argv, self.log_text()))

    def _reap(self):
        self.code = self.proc.wait()
        for t in self._pumps:
            t.join(5)
        if self in _live:
            _live.remove(self)
        return self.code

    def log_text(self):
        with self._lock:
            return "\n".join(self.log)

    def running(self):
        return self.proc.poll() is None

    def send_signal(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)

    def wait_exit(self, timeout=15.0):
        """Waits for the process to exit; returns its exit status (negative: killed by that
        signal). If it is still running after timeout it is killed and AssertionError raised."""
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.send_signal(signal.SIGABRT)  # a core / ASan stack says where it hung
            try:
                self.proc.wait(3)
            except subprocess.TimeoutExpired:
                self.proc.kill()
            self._reap()
            raise AssertionError("coil did not exit within %.0fs\n%s" % (timeout, self.log_text()))
        return self._reap()

    def stop(self, sig=signal.SIGTERM, timeout=15.0):
        """Sends sig (if still running) and waits; returns the exit status."""
        if self.code is not None:
            return self.code
        self.send_signal(sig)
        return self.wait_exit(timeout)

    def sanitizer_lines(self):
        with self._lock:
            return [l for l in self.log if SANITIZER_RE.search(l)]

    def stats(self):
        return get_stats(self.port)


# ---- HTTP on raw sockets ------------------------------------------------------------------------

class ConnectionClosed(Exception):
    """The peer closed (how = "eof" or "reset") before a response started."""

    def __init__(self, how, partial=b""):
        super().__init__("connection closed (%s) before a response%s" % (
            how, (": partial %r" % partial[:200]) if partial else ""))
        self.how = how
        self.partial = partial


class ProtocolError(AssertionError):
    """The server sent something that is not a valid HTTP/1.1 response."""


class Response:
    def __init__(self, version, status, reason, headers, body, head_bytes):
        self.version = version    # "HTTP/1.1"
        self.status = status      # int
        self.reason = reason      # str
        self.headers = headers    # [(name, value)] in order, as str (latin-1)
        self.body = body          # bytes
        self.head_bytes = head_bytes

    def header(self, name):
        """First value of a header (case-insensitive name), or None."""
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def has_token(self, name, token):
        """True if a comma-list header (Connection, Allow) contains token, case-insensitively."""
        token = token.lower()
        return any(t.strip().lower() == token
                   for v in self.header_all(name) for t in v.split(","))

    def __repr__(self):
        body = self.body if len(self.body) <= 120 else self.body[:120] + b"..."
        return "<Response %s %d %r headers=%r body=%r>" % (
            self.version, self.status, self.reason, self.headers, body)


class _Buffer:
    """A byte source for the response reader: buf holds unread bytes, fill() adds more and
    returns False at EOF (setting closed_how)."""

    def __init__(self, data=b""):
        self.buf = bytearray(data)
        self.closed_how = None

    def fill(self):
        self.closed_how = self.closed_how or "eof"
        return False

    def read_response(self, head=False):
        return read_response(self, head)

    def read_until_eof(self):
        """Everything until the server closes; returns (bytes, how it closed)."""
        while self.fill():
            pass
        data = bytes(self.buf)
        del self.buf[:]
        return data, self.closed_how


def _read_exact(src, n):
    while len(src.buf) < n:
        if not src.fill():
            raise ProtocolError("closed (%s) after %d of %d body bytes"
                                % (src.closed_how, len(src.buf), n))
    data = bytes(src.buf[:n])
    del src.buf[:n]
    return data


def _read_line(src, limit=65536):
    while True:
        i = src.buf.find(b"\r\n")
        if i >= 0:
            line = bytes(src.buf[:i])
            del src.buf[:i + 2]
            return line
        if len(src.buf) > limit or not src.fill():
            raise ProtocolError("no CRLF-terminated line in chunked body: %r"
                                % bytes(src.buf[:100]))


def _read_chunked(src):
    body = bytearray()
    while True:
        line = _read_line(src)
        size_txt = line.split(b";", 1)[0].strip()
        if not re.fullmatch(rb"[0-9a-fA-F]+", size_txt):
            raise ProtocolError("bad chunk size line %r" % line)
        size = int(size_txt, 16)
        if size == 0:
            while _read_line(src):  # trailers up to the empty line
                pass
            return bytes(body)
        body += _read_exact(src, size)
        if _read_exact(src, 2) != b"\r\n":
            raise ProtocolError("chunk data not followed by CRLF")


def read_response(src, head=False):
    """Reads one response from src (a Conn or _Buffer). head: it answers a HEAD request (no
    body). Interim 1xx responses are returned as they are, with an empty body."""
    while True:
        i = src.buf.find(b"\r\n\r\n")
        if i >= 0:
            break
        if len(src.buf) > (1 << 20):
            raise ProtocolError("response head over 1 MiB: %r" % bytes(src.buf[:200]))
        if not src.fill():
            if not src.buf:
                raise ConnectionClosed(src.closed_how)
            raise ProtocolError("closed (%s) inside a response head: %r"
                                % (src.closed_how, bytes(src.buf[:300])))
    head_bytes = bytes(src.buf[:i + 4])
    del src.buf[:i + 4]
    lines = head_bytes[:-4].split(b"\r\n")
    m = re.fullmatch(rb"(HTTP/1\.[01]) ([1-5]\d\d) ([^\r\n]*)", lines[0])
    if not m:
        raise ProtocolError("bad status line %r" % lines[0])
    version, status, reason = m.group(1).decode(), int(m.group(2)), m.group(3).decode("latin-1")
    headers = []
    for ln in lines[1:]:
        name, sep, value = ln.partition(b":")
        if (not sep or not re.fullmatch(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name)
                or re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", value)):
            raise ProtocolError("bad header line %r in %r" % (ln, head_bytes))
        headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
    resp = Response(version, status, reason, headers, b"", head_bytes)
    if head or status < 200 or status in (204, 304):
        return resp
    te = resp.header("Transfer-Encoding")
    cl = resp.header_all("Content-Length")
    if te is not None:
        if te.strip().lower() != "chunked":
            raise ProtocolError("unexpected Transfer-Encoding %r" % te)
        resp.body = _read_chunked(src)
    elif cl:
        if len(cl) != 1 or not cl[0].isdigit():
            raise ProtocolError("bad Content-Length %r" % cl)
        resp.body = _read_exact(src, int(cl[0]))
    else:
        while src.fill():
            pass
        resp.body = bytes(src.buf)
        del src.buf[:]
    return resp


def request(method, path, body=None, headers=(), version="HTTP/1.1", host="coil.test"):
    """Bytes of one request. A Content-Length is added for a body unless headers already frame
    it; host=None omits Host. headers: [(name, value)] or ["Name: value"]."""
    lines = ["%s %s %s" % (method, path, version)]
    if host is not None:
        lines.append("Host: " + host)
    names = set()
    for h in headers:
        line = h if isinstance(h, str) else "%s: %s" % h
        names.add(line.split(":", 1)[0].strip().lower())
        lines.append(line)
    if body is not None and not names & {"content-length", "transfer-encoding"}:
        lines.append("Content-Length: %d" % len(body))
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
    if body is not None:
        data += body if isinstance(body, bytes) else body.encode()
    return data


def chunked(*pieces, ext=b"", trailers=b""):
    """A chunked body: one chunk per piece, then the last chunk, trailers and the empty line."""
    out = bytearray()
    for p in pieces:
        p = p if isinstance(p, bytes) else p.encode()
        out += b"%x%s\r\n%s\r\n" % (len(p), ext, p)
    return bytes(out) + b"0\r\n" + trailers + b"\r\n"


class Conn(_Buffer):
    """A client connection to 127.0.0.1:port with the response reader. timeout bounds every
    blocking call. rcvbuf/sndbuf set SO_RCVBUF/SO_SNDBUF before connecting."""

    def __init__(self, port, timeout=WAIT, rcvbuf=None, sndbuf=None, host="127.0.0.1"):
        super().__init__()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            if rcvbuf:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            if sndbuf:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            self.sock.close()
            raise

    def fill(self):
        if self.closed_how:
            return False
        try:
            chunk = self.sock.recv(1 << 16)
        except ConnectionResetError:
            self.closed_how = "reset"
            return False
        except socket.timeout:
            raise AssertionError("timed out after %.0fs waiting for coil to send more or close;"
                                 " unread so far: %r" % (self.sock.gettimeout(),
                                                         bytes(self.buf[:300]))) from None
        if not chunk:
            self.closed_how = "eof"
            return False
        self.buf += chunk
        return True

    def send(self, data):
        self.sock.sendall(data)
        return self

    def send_slowly(self, data, step=1, pause=0.002):
        """Sends data in pieces of step bytes, pausing between them so that each piece is likely
        to reach the server in a read of its own."""
        for i in range(0, len(data), step):
            self.sock.sendall(data[i:i + step])
            time.sleep(pause)
        return self

    def request(self, method, path, body=None, headers=(), version="HTTP/1.1", **kw):
        """Sends one request and reads its response."""
        self.send(request(method, path, body, headers, version, **kw))
        return self.read_response(head=(method == "HEAD"))

    def send_until_closed(self, data):
        """Sends data from a thread while reading everything until the server closes, for a
        server that answers before the body ends and then closes (the rest of the send may
        then fail: expected). Returns a RawResult."""
        def send():
            try:
                self.sock.sendall(data)
            except OSError:
                pass

        sender = threading.Thread(target=send)
        sender.start()
        out, how = self.read_until_eof()
        sender.join()
        return RawResult(*parse_all(out), how)

    def wait_closed(self):
        """Asserts the server closes without sending anything more; returns "eof" or "reset"."""
        data, how = self.read_until_eof()
        if data:
            raise AssertionError("expected the server to close, got %r" % data[:300])
        return how

    def shut_wr(self):
        self.sock.shutdown(socket.SHUT_WR)

    def close(self):
        # shutdown() first: a thread blocked in send() on this socket keeps it open past a plain
        # close(); shutdown() wakes it (EPIPE) so the connection really ends.
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def raw(port, data, count=1, head=False, timeout=WAIT):
    """Sends data on a new connection and reads count responses (head: bool for all, or a set
    of the indexes answering HEAD). Returns the list of responses; the connection is closed."""
    conn = Conn(port, timeout=timeout)
    try:
        conn.send(data)
        return [conn.read_response(head=(i in head) if isinstance(head, (set, list, tuple))
                                   else head) for i in range(count)]
    finally:
        conn.close()


class RawResult:
    def __init__(self, responses, rest, how):
        self.responses = responses  # every complete response read before the close
        self.rest = rest            # bytes after them that do not form a response
        self.how = how              # "eof" or "reset"

    def __repr__(self):
        return "<RawResult %r rest=%r closed=%s>" % (self.responses, self.rest[:200], self.how)


def parse_all(data, head=False):
    """Parses every response in data. Returns (responses, unparsed rest)."""
    src = _Buffer(data)
    out = []
    while src.buf:
        keep = bytes(src.buf)
        try:
            out.append(read_response(src, head=(len(out) in head)
                                     if isinstance(head, (set, list, tuple)) else head))
        except (ProtocolError, ConnectionClosed):
            return out, keep
    return out, b""


def raw_until_eof(port, data, head=False, timeout=WAIT, shut_wr=False):
    """Sends data on a new connection and reads until the server closes it (an AssertionError
    if it does not within timeout). shut_wr half-closes our side after sending."""
    conn = Conn(port, timeout=timeout)
    try:
        conn.send(data)
        if shut_wr:
            conn.shut_wr()
        got, how = conn.read_until_eof()
    finally:
        conn.close()
    responses, rest = parse_all(got, head)
    return RawResult(responses, rest, how)


def get(port, path, **kw):
    """GET on a fresh connection that asks to be closed; returns the response."""
    return raw(port, request("GET", path, headers=["Connection: close"], **kw))[0]


def get_stats(port):
    resp = get(port, "/stats")
    if resp.status != 200:
        raise AssertionError("GET /stats: %r" % resp)
    return json.loads(resp.body)


def conns_by_worker(port, workers, tries=64):
    """Opens connections until one is served by each of range(workers), as told by the
    X-Coil-Worker header of GET /kv/..; returns {worker: Conn} (the others are closed)."""
    found = {}
    for _ in range(tries):
        conn = Conn(port)
        resp = conn.request("GET", "/kv/coil-harness-probe")
        w = resp.header("X-Coil-Worker")
        if w is None:
            conn.close()
            raise AssertionError("no X-Coil-Worker header on %r" % resp)
        w = int(w)
        if w in found or w not in range(workers):
            conn.close()
        else:
            found[w] = conn
            if len(found) == workers:
                return found
    for c in found.values():
        c.close()
    raise AssertionError("%d connections reached only workers %s of %d"
                         % (tries, sorted(found), workers))


# ---- unittest glue ------------------------------------------------------------------------------

class CoilTestCase(unittest.TestCase):
    """Base class: start() a server, connect() clients; both are cleaned up when the test ends
    and the server is checked to exit 0 after SIGTERM (unless the test already stopped it)."""

    maxDiff = 4000

    def run(self, result=None):
        self._servers = []
        if result is None:
            return super().run(result)
        before = len(result.failures) + len(result.errors)
        out = super().run(result)
        if len(result.failures) + len(result.errors) > before:
            for srv in self._servers:
                sys.stderr.write("\n---- coil log (%s, argv %s, exit %s) ----\n%s\n---- end ----\n"
                                 % (self.id(), " ".join(srv.argv[1:]), srv.code, srv.log_text()))
        return out

    def start(self, *args, env=None, add_addr=True, expect_exit=0):
        srv = Server(args, env=env, add_addr=add_addr)
        self._servers.append(srv)
        self.addCleanup(self._stop_checked, srv, expect_exit)
        return srv

    def start_app(self, *args, env=None, add_addr=True, expect_exit=0):
        """Like start(), for testapp (tests/integration/testapp.c) instead of the demo."""
        srv = Server(args, env=env, add_addr=add_addr, program=testapp_bin())
        self._servers.append(srv)
        self.addCleanup(self._stop_checked, srv, expect_exit)
        return srv

    def start_fetchapp(self, *args, env=None, add_addr=True, expect_exit=0):
        """Like start(), for fetchapp (tests/integration/fetchapp.c): coil_fetch from handlers."""
        srv = Server(args, env=env, add_addr=add_addr, program=fetchapp_bin())
        self._servers.append(srv)
        self.addCleanup(self._stop_checked, srv, expect_exit)
        return srv

    def _stop_checked(self, srv, expect_exit):
        code = srv.stop()
        if expect_exit is not None:
            self.assertEqual(code, expect_exit, "coil exit status after SIGTERM")
        self.assertEqual(srv.sanitizer_lines(), [], "sanitizer reports in coil's log")

    def stop(self, srv, sig=signal.SIGTERM, timeout=15.0, expect=0):
        """Stops srv now and checks its exit status."""
        code = srv.stop(sig, timeout)
        self.assertEqual(code, expect, "coil exit status after %s" % signal.Signals(sig).name)
        self.assertEqual(srv.sanitizer_lines(), [], "sanitizer reports in coil's log")
        return code

    def connect(self, srv_or_port, **kw):
        port = srv_or_port.port if isinstance(srv_or_port, Server) else srv_or_port
        conn = Conn(port, **kw)
        self.addCleanup(conn.close)
        return conn

    def assertStandardHeaders(self, resp, body_len=None):
        """Date, Server: coil and (unless 1xx/204) Content-Length, equal to body_len if given."""
        self.assertIsNotNone(resp.header("Date"), resp)
        self.assertRegex(resp.header("Date"),
                         r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug"
                         r"|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$")
        self.assertEqual(resp.header("Server"), "coil", resp)
        self.assertEqual(len(resp.header_all("Date")), 1, resp)
        if resp.status >= 200 and resp.status != 204:
            self.assertEqual(len(resp.header_all("Content-Length")), 1, resp)
            if body_len is not None:
                self.assertEqual(resp.header("Content-Length"), str(body_len), resp)

    def assertClosesAfter(self, result, status, count=1):
        """result (RawResult): exactly count responses, the last with status and
        Connection: close, nothing after it, and the server closed the connection."""
        self.assertEqual(len(result.responses), count, result)
        last = result.responses[-1]
        self.assertEqual(last.status, status, result)
        self.assertTrue(last.has_token("Connection", "close"), "no Connection: close: %r" % last)
        self.assertEqual(result.rest, b"", result)
        self.assertStandardHeaders(last)


def main():
    """unittest.main, but exit 77 (CTest's skip) when every test was skipped."""
    if not os.path.exists(coil_bin()):
        print("coil_harness: coil binary not found at %s (build it, or set COIL_BIN)" % coil_bin(),
              file=sys.stderr)
        sys.exit(1)
    prog = unittest.main(exit=False, verbosity=2)
    res = prog.result
    if not res.wasSuccessful():
        sys.exit(1)
    if res.testsRun and len(res.skipped) == res.testsRun:
        sys.exit(77)
    sys.exit(0)
