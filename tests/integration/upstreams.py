# SPDX-License-Identifier: MIT
"""upstreams: HTTP/1.1 servers that coil calls in test_fetch.py and test_proxy.py, run in threads
of the test process on 127.0.0.1, with faults on demand.

`FaultServer(handler)` accepts connections (one thread each), reads requests strictly (head up to
the empty line, then a Content-Length or chunked body) and asks handler(req) what to do: a list of
actions run in order (`send`, `sleep`, `close`, `reset`, `wait_close`, `wait_event`, `stream`).
When the list ends without closing, the connection stays open for the next request (keep-alive).
It records every connection (`conns`, with the requests each carried and whether the peer closed
it) and every request (`requests`), for tests that count connections or read what was forwarded.

Helpers build the common handlers: `canned` (keep-alive, Content-Length), `close_delimited`,
`chunked_response`, `MALFORMED` (raw responses that must be refused), `slow_head`,
`reset_before_head`, `reset_mid_body`, `close_first_reuse` (closes a reused keep-alive connection
on the request it carries, once, without answering), `hold` (answers nothing until the peer
closes). `refused_port()` is a port with nothing listening; `Blackhole` is a listening socket whose
accept queue is full, so connects to it neither succeed nor fail (SYNs are dropped) until the
connect timeout: Linux drops a SYN when the accept queue is full, syncookies or not, so the queue
is filled by connects that are never accepted until one stays pending; Blackhole checks that it
did and raises unittest.SkipTest otherwise.

Body patterns: `pattern_bytes(offset, n)` is the byte sequence i % 251, which `PatternChecker`
checks as it arrives without keeping it.
"""

import json
import re
import select
import socket
import struct
import threading
import time
import unittest

WAIT = 10.0      # bound on a wait the tests make on these servers (a guard against hangs)
IO_TIMEOUT = 60.0  # a server socket blocked longer than this gives up (also a guard)

# ---- body patterns -------------------------------------------------------------------------------

_BLOCK = bytes(i % 251 for i in range(251 * 1044))  # ~256 KiB, a whole number of periods


def pattern_bytes(offset, n):
    """n bytes of the pattern (byte i is i % 251) starting at offset."""
    out = bytearray()
    while n:
        start = offset % 251
        k = min(n, len(_BLOCK) - start)
        out += _BLOCK[start:start + k]
        offset += k
        n -= k
    return bytes(out)


class PatternChecker:
    """Checks a body of the pattern piece by piece, holding none of it."""

    def __init__(self):
        self.offset = 0

    def feed(self, data):
        view = memoryview(data)
        while view:
            start = self.offset % 251
            k = min(len(view), len(_BLOCK) - start)
            if view[:k] != _BLOCK[start:start + k]:
                bad = next(i for i in range(k) if view[i] != _BLOCK[start + i])
                raise AssertionError("body byte %d is %d, want %d"
                                     % (self.offset + bad, view[bad], (self.offset + bad) % 251))
            self.offset += k
            view = view[k:]


# ---- what the server saw -------------------------------------------------------------------------

class UpRequest:
    """One request as the upstream read it."""

    def __init__(self, conn, seq, method, target, version, headers, body, chunked, raw_head):
        self.conn = conn          # the UpConn it came on
        self.seq = seq            # 0 for the first request on that connection
        self.method = method
        self.target = target
        self.version = version
        self.headers = headers    # [(name, value)] as received (str, latin-1)
        self.body = body          # bytes, decoded if chunked
        self.chunked = chunked    # it came with Transfer-Encoding: chunked
        self.raw_head = raw_head  # the bytes of the head

    def header(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def names(self):
        return {k.lower() for k, _ in self.headers}

    def __repr__(self):
        return "<UpRequest %s %s conn=%d seq=%d headers=%r body=%r>" % (
            self.method, self.target, self.conn.index, self.seq, self.headers, self.body[:100])


class UpConn:
    """One accepted connection."""

    def __init__(self, index, sock):
        self.index = index
        self.sock = sock
        self.requests = []
        self.peer_closed = threading.Event()  # we saw EOF or a reset from coil's side
        self.ended = threading.Event()        # the connection is over (either side)
        self.sent = 0                          # body bytes a stream action sent
        self.buf = bytearray()


class PeerGone(Exception):
    pass


# ---- actions -------------------------------------------------------------------------------------
# An action is a callable (server, conn) -> True to go on, False when the connection is over.

def send(data):
    data = data.encode("latin-1") if isinstance(data, str) else data

    def act(srv, conn):
        try:
            conn.sock.sendall(data)
        except OSError:
            conn.peer_closed.set()
            return False
        return True
    return act


def sleep(seconds):
    def act(srv, conn):
        time.sleep(seconds)
        return True
    return act


def close():
    """An orderly close (FIN) after what was sent."""
    def act(srv, conn):
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        return False
    return act


def reset():
    """An abortive close: SO_LINGER 0 makes close() send a RST."""
    def act(srv, conn):
        try:
            conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        conn.sock.close()
        return False
    return act


def wait_close(timeout=IO_TIMEOUT):
    """Reads (and drops) until coil closes the connection; records it in conn.peer_closed."""
    def act(srv, conn):
        _wait_peer_close(conn, timeout)
        return False
    return act


def wait_event(event, timeout=IO_TIMEOUT):
    """Waits until the test sets event (or the server is closed)."""
    def act(srv, conn):
        deadline = time.monotonic() + timeout
        while not event.wait(0.05):
            if srv.closing.is_set() or time.monotonic() > deadline:
                return False
        return True
    return act


def stream(total, piece=256 * 1024, chunked=False):
    """Sends total bytes of the pattern as the body (chunked: one chunk per piece, then the last
    chunk), counting them in conn.sent; stops when coil closes (conn.peer_closed)."""
    def act(srv, conn):
        off = 0
        try:
            while off < total:
                n = min(piece, total - off)
                data = pattern_bytes(off, n)
                if chunked:
                    data = b"%x\r\n" % n + data + b"\r\n"
                conn.sock.sendall(data)
                off += n
                conn.sent = off
            if chunked:
                conn.sock.sendall(b"0\r\n\r\n")
        except OSError:
            conn.peer_closed.set()
            return False
        return True
    return act


def _wait_peer_close(conn, timeout):
    conn.sock.settimeout(timeout)
    try:
        while conn.sock.recv(65536):
            pass
    except socket.timeout:
        return
    except OSError:
        pass
    conn.peer_closed.set()


# ---- the server ----------------------------------------------------------------------------------

class FaultServer:
    """A raw HTTP/1.1 server on 127.0.0.1 (or host, "::1" for IPv6). handler(req) -> [actions];
    port 0 picks a free port.
    Use as a context manager or call close()."""

    def __init__(self, handler, port=0, backlog=128, host="127.0.0.1"):
        self.handler = handler
        self.lock = threading.Lock()
        self.conns = []
        self.requests = []
        self.errors = []  # requests that could not be parsed: a bug in what coil sent
        self.closing = threading.Event()
        v6 = ":" in host
        self.lsock = socket.socket(socket.AF_INET6 if v6 else socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, port))
        self.lsock.listen(backlog)
        self.lsock.settimeout(0.1)
        self.port = self.lsock.getsockname()[1]
        self.authority = "[%s]:%d" % (host, self.port) if v6 else "%s:%d" % (host, self.port)
        self.url = "http://" + self.authority
        self.threads = []
        self.acceptor = threading.Thread(target=self._accept, daemon=True)
        self.acceptor.start()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # counts, safe to read from the test
    def conn_count(self):
        with self.lock:
            return len(self.conns)

    def request_count(self):
        with self.lock:
            return len(self.requests)

    def wait_requests(self, n, timeout=WAIT):
        _wait(lambda: self.request_count() >= n, timeout,
              "%d requests at the upstream (have %d)" % (n, self.request_count()))
        with self.lock:
            return list(self.requests)

    def wait_conns(self, n, timeout=WAIT):
        _wait(lambda: self.conn_count() >= n, timeout,
              "%d connections at the upstream (have %d)" % (n, self.conn_count()))
        with self.lock:
            return list(self.conns)

    def last(self):
        with self.lock:
            return self.requests[-1]

    def close(self):
        self.closing.set()
        try:
            self.lsock.close()
        except OSError:
            pass
        self.acceptor.join(5)
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            try:
                c.sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in list(self.threads):
            t.join(5)
        for c in conns:
            try:
                c.sock.close()
            except OSError:
                pass

    def _accept(self):
        while not self.closing.is_set():
            try:
                sock, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                conn = UpConn(len(self.conns), sock)
                self.conns.append(conn)
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(t)
            t.start()

    def _serve(self, conn):
        conn.sock.settimeout(IO_TIMEOUT)
        try:
            while not self.closing.is_set():
                try:
                    req = self._read_request(conn)
                except PeerGone:
                    conn.peer_closed.set()
                    return
                except ValueError as e:
                    with self.lock:
                        self.errors.append("connection %d: %s" % (conn.index, e))
                    return
                if req is None:
                    return
                with self.lock:
                    self.requests.append(req)
                conn.requests.append(req)
                for act in self.handler(req) or ():
                    if not act(self, conn):
                        return
        except OSError:
            conn.peer_closed.set()
        finally:
            conn.ended.set()
            try:
                conn.sock.close()
            except OSError:
                pass

    def _fill(self, conn):
        try:
            data = conn.sock.recv(65536)
        except socket.timeout:
            return None
        except OSError:
            raise PeerGone()
        if not data:
            raise PeerGone()
        conn.buf += data
        return True

    def _line(self, conn):
        while True:
            i = conn.buf.find(b"\r\n")
            if i >= 0:
                line = bytes(conn.buf[:i])
                del conn.buf[:i + 2]
                return line
            if len(conn.buf) > 65536 or not self._fill(conn):
                raise ValueError("no CRLF line: %r" % bytes(conn.buf[:100]))

    def _exact(self, conn, n):
        while len(conn.buf) < n:
            if not self._fill(conn):
                raise ValueError("timed out in a body")
        data = bytes(conn.buf[:n])
        del conn.buf[:n]
        return data

    def _read_request(self, conn):
        while b"\r\n\r\n" not in conn.buf:
            if len(conn.buf) > (1 << 20):
                raise ValueError("request head over 1 MiB")
            if self._fill(conn) is None:
                return None  # idle past IO_TIMEOUT: give up on this connection
        i = conn.buf.find(b"\r\n\r\n")
        raw_head = bytes(conn.buf[:i + 4])
        del conn.buf[:i + 4]
        lines = raw_head[:-4].split(b"\r\n")
        m = re.fullmatch(rb"([A-Z]+) (\S+) (HTTP/1\.[01])", lines[0])
        if not m:
            raise ValueError("bad request line %r" % lines[0])
        headers = []
        for ln in lines[1:]:
            name, sep, value = ln.partition(b":")
            if not sep or not re.fullmatch(rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name) or \
                    re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", value):
                raise ValueError("bad header line %r" % ln)
            headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
        method, target, version = (g.decode("latin-1") for g in m.groups())
        req = UpRequest(conn, len(conn.requests), method, target, version, headers, b"", False,
                        raw_head)
        te, cl = req.header("Transfer-Encoding"), req.header_all("Content-Length")
        if te is not None:
            if te.lower() != "chunked":
                raise ValueError("Transfer-Encoding %r" % te)
            req.chunked = True
            body = bytearray()
            while True:
                size = int(self._line(conn).split(b";")[0], 16)
                if size == 0:
                    while self._line(conn):
                        pass
                    break
                body += self._exact(conn, size)
                if self._exact(conn, 2) != b"\r\n":
                    raise ValueError("chunk not followed by CRLF")
            req.body = bytes(body)
        elif cl:
            if len(set(cl)) != 1 or not cl[0].isdigit():
                raise ValueError("Content-Length %r" % cl)
            req.body = self._exact(conn, int(cl[0]))
        return req


def _wait(pred, timeout, what):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("gave up after %.0fs waiting for %s" % (timeout, what))
        time.sleep(0.02)


# ---- responses and handlers ----------------------------------------------------------------------

def response(status=200, body=b"", headers=(), reason=None, length=True):
    """Bytes of a response; a Content-Length is added unless length is False or headers frame
    it."""
    body = body.encode() if isinstance(body, str) else body
    reasons = {200: "OK", 204: "No Content", 304: "Not Modified", 404: "Not Found",
               500: "Internal Server Error"}
    lines = ["HTTP/1.1 %d %s" % (status, reason or reasons.get(status, "Whatever"))]
    names = set()
    for h in headers:
        line = h if isinstance(h, str) else "%s: %s" % h
        names.add(line.split(":", 1)[0].strip().lower())
        lines.append(line)
    if length and not names & {"content-length", "transfer-encoding"}:
        lines.append("Content-Length: %d" % len(body))
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def echo_json(req):
    """A JSON description of a request, for a body: what the upstream saw."""
    return json.dumps({"method": req.method, "target": req.target, "headers": req.headers,
                       "body": req.body.decode("latin-1"), "conn": req.conn.index,
                       "seq": req.seq}).encode()


def canned(body=b"ok", status=200, headers=()):
    """Answers every request with the same keep-alive response (no body for HEAD)."""
    def handler(req):
        data = response(status, body, headers)
        if req.method == "HEAD":
            data = data[:data.index(b"\r\n\r\n") + 4]
        return [send(data)]
    return handler


def echo():
    """Answers every request with echo_json(request), keep-alive (no body for HEAD)."""
    def handler(req):
        data = response(200, echo_json(req), ["Content-Type: application/json"])
        if req.method == "HEAD":
            data = data[:data.index(b"\r\n\r\n") + 4]
        return [send(data)]
    return handler


def close_delimited(body, headers=()):
    """A response without Content-Length or Transfer-Encoding: the body ends with the close."""
    return lambda req: [send(response(200, b"", ["Connection: close"] + list(headers),
                                      length=False)),
                        send(body), close()]


def chunked_response(pieces, trailers=b"", headers=()):
    """A chunked keep-alive response: one chunk per piece."""
    def handler(req):
        acts = [send(response(200, b"", ["Transfer-Encoding: chunked"] + list(headers)))]
        for p in pieces:
            p = p.encode() if isinstance(p, str) else p
            acts.append(send(b"%x\r\n%s\r\n" % (len(p), p)))
        acts.append(send(b"0\r\n" + trailers + b"\r\n"))
        return acts
    return handler


def big(total, chunked=False, piece=256 * 1024):
    """A keep-alive response of total pattern bytes (Content-Length, or chunked)."""
    def handler(req):
        if chunked:
            head = response(200, b"", ["Transfer-Encoding: chunked",
                                       "Content-Type: application/octet-stream"])
        else:
            head = response(200, b"", ["Content-Length: %d" % total,
                                       "Content-Type: application/octet-stream"])
        if req.method == "HEAD":
            return [send(head)]
        return [send(head), stream(total, piece, chunked)]
    return handler


def slow_head(event, then=b"late"):
    """Sends nothing until the test sets event (or coil closes: recorded), then a response."""
    def handler(req):
        return [wait_event(event), send(response(200, then))]
    return handler


def hold():
    """Never answers: waits for coil to close the connection (conn.peer_closed)."""
    return lambda req: [wait_close()]


def reset_before_head():
    return lambda req: [reset()]


def close_before_head():
    return lambda req: [close()]


def reset_mid_body(declared, sent, event=None, chunked=False):
    """Head (Content-Length declared, or chunked), sent pattern bytes, then (once event is set,
    if given) a reset."""
    def handler(req):
        if chunked:
            head = response(200, b"", ["Transfer-Encoding: chunked"])
            body = b"%x\r\n%s\r\n" % (sent, pattern_bytes(0, sent))
        else:
            head = response(200, b"", ["Content-Length: %d" % declared])
            body = pattern_bytes(0, sent)
        acts = [send(head + body)]
        if event is not None:
            acts.append(wait_event(event))
        return acts + [reset()]
    return handler


def stall_mid_body(declared, sent):
    """Head with Content-Length declared, sent bytes of it, then nothing until coil closes."""
    return lambda req: [send(response(200, b"", ["Content-Length: %d" % declared])
                             + pattern_bytes(0, sent)), wait_close()]


def close_first_reuse(body=b"fresh"):
    """Answers the first request of each connection (keep-alive); the first time a request
    arrives on a reused connection, closes it without answering (after reading the request)."""
    state = {"done": False, "lock": threading.Lock()}

    def handler(req):
        with state["lock"]:
            drop = req.seq > 0 and not state["done"]
            if drop:
                state["done"] = True
        if drop:
            return [close()]
        return [send(response(200, body + b" %d" % req.conn.index))]
    return handler


# Responses coil must refuse (-EPROTO / 502), each with the marker "LEAK" somewhere in what
# would be its body or headers, so a test can check none of it reached the client.
MALFORMED = {
    "bad_status_code": b"HTTP/1.1 2000 OK\r\nContent-Length: 4\r\n\r\nLEAK",
    "bad_version": b"HTTX/1.1 200 OK\r\nContent-Length: 4\r\n\r\nLEAK",
    "status_line_bare_lf": b"HTTP/1.1 200 OK\nContent-Length: 4\r\n\r\nLEAK",
    "cl_and_te": b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
                 b"4\r\nLEAK\r\n0\r\n\r\n",
    "two_lengths": b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nLEAK!",
    "negative_length": b"HTTP/1.1 200 OK\r\nContent-Length: -4\r\n\r\nLEAK",
    "header_bare_lf": b"HTTP/1.1 200 OK\r\nX-A: 1\nX-Leak: LEAK\r\nContent-Length: 4\r\n\r\nLEAK",
    "header_space_in_name": b"HTTP/1.1 200 OK\r\nX Leak: LEAK\r\nContent-Length: 4\r\n\r\nLEAK",
    "header_obs_fold": b"HTTP/1.1 200 OK\r\nX-Leak: a\r\n LEAK\r\nContent-Length: 4\r\n\r\nLEAK",
    "header_nul": b"HTTP/1.1 200 OK\r\nX-Leak: LE\x00AK\r\nContent-Length: 4\r\n\r\nLEAK",
    "te_not_chunked": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\nLEAK",
    "unsolicited_101": b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: leak\r\n"
                       b"Connection: Upgrade\r\n\r\n\x16\x03\x01LEAK\r\n\r\n",
}

# Malformed only in the body framing, which coil may find after it has reported the head.
MALFORMED_BODY = {
    "bad_chunk_size": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nLEAK\r\n"
                      b"0\r\n\r\n",
    "chunk_without_crlf": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nLEAKXX"
                          b"0\r\n\r\n",
}


def raw_then_wait(data):
    """Sends data as it is, then waits for coil to close."""
    return lambda req: [send(data), wait_close()]


# ---- ports where no server answers ------------------------------------------------------------

def refused_port():
    """A loopback port with nothing listening (bound, then closed): connects are refused."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Blackhole:
    """A listening socket (backlog 0) whose accept queue is kept full, so a connect to it stays
    pending (its SYNs are dropped) until the client's own timeout. Close it when done."""

    def __init__(self, max_fill=16):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(0)
        self.port = self.lsock.getsockname()[1]
        self.url = "http://127.0.0.1:%d" % self.port
        self.fillers = []
        for _ in range(max_fill):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", self.port))
            self.fillers.append(s)
            _, w, _ = select.select([], [s], [], 0.5)
            if not w:
                return  # this one is pending: the queue is full
        self.close()
        raise unittest.SkipTest("could not fill a listen queue to make connects hang")

    def close(self):
        for s in self.fillers:
            s.close()
        self.lsock.close()
