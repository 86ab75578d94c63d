# SPDX-License-Identifier: MIT
"""load_testserver: a small HTTP/1.1 server that the coil-load tests start in-process, so that
they can make it misbehave on purpose and count what it received.

It owns one listening socket on 127.0.0.1 (a free port) and two threads per connection: a reader
that parses requests as soon as they arrive (so pipelined requests are seen, and counted, while
an earlier one is still being answered) and a responder that answers them strictly in order.
Keep-alive is the default. What the responder does to the n-th request it answers is decided by
one counter shared by every connection (n = 1, 2, ...):

    delay_every=N, delay_ms=D   every N-th response is held back D ms before it is sent
    chunked=True                 bodies are sent chunked, a piece per write
    close_every=K                every K-th response carries "Connection: close", then the
                                 server closes the connection (requests pipelined behind it
                                 are dropped unanswered: the client must send them again)
    malformed_every=K            every K-th request gets MALFORMED instead of a response, then
                                 the server closes the connection

Every response that is not malformed is a 200 with the body "ok". A connection is closed the
way real servers do it (shutdown of our side, then reading until the client closes, bounded),
so a response is never lost to a reset caused by unread pipelined requests.

The counters (`answered`, `received`, `connections`, `by_target`, `max_in_flight`, ...) are read
by the test under `lock` or after `stop()`. A connection counts a response as written just
before writing it (after any delay), so the in-flight count the reader keeps (requests received
minus responses written on that connection) is never more than the client's own count of
requests awaiting a response, and a request held back by a delay stays in flight.
"""

import collections
import queue
import socket
import threading
import time

MALFORMED = b"HTTP/1.1 abc\r\n\r\n"
BODY = b"ok"
# The chunked body: pieces written one by one; the second chunk has an extension and a size
# with a hex letter, and the last chunk is followed by a trailer field (all valid HTTP/1.1).
CHUNKED_PIECES = (b"5\r\nhello\r\n", b"1a;ext=1\r\nabcdefghijklmnopqrstuvwxyz\r\n",
                  b"0\r\nX-Trailer: 1\r\n\r\n")
LINGER = 5.0  # s bound on reading until the client closes, after we closed our side


class Request:
    def __init__(self, method, target, version, headers, body, raw_len):
        self.method = method      # "GET"
        self.target = target      # "/plaintext"
        self.version = version    # "HTTP/1.1"
        self.headers = headers    # [(name, value)] as sent, str (latin-1)
        self.body = body          # bytes
        self.raw_len = raw_len    # bytes this request took on the wire

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]

    def __repr__(self):
        return "<Request %s %s %s headers=%r body=%r>" % (
            self.method, self.target, self.version, self.headers, self.body[:100])


class BadRequest(Exception):
    pass


def parse_request(buf):
    """Parses one request from the front of buf (a bytearray). Returns a Request and removes its
    bytes, or None if buf holds only part of one. BadRequest if it is not HTTP/1.1."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        if len(buf) > 65536:
            raise BadRequest("request head over 64 KiB")
        return None
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise BadRequest("bad request line %r" % lines[0])
    headers = []
    for ln in lines[1:]:
        name, sep, value = ln.partition(":")
        if not sep or not name or name != name.strip():
            raise BadRequest("bad header line %r" % ln)
        headers.append((name, value.strip(" \t")))
    names = [k.lower() for k, _ in headers]
    if "transfer-encoding" in names:
        raise BadRequest("chunked request bodies are not expected from coil-load")
    length = 0
    if "content-length" in names:
        cls = [v for k, v in headers if k.lower() == "content-length"]
        if len(cls) != 1 or not cls[0].isdigit():
            raise BadRequest("bad Content-Length %r" % cls)
        length = int(cls[0])
    total = end + 4 + length
    if len(buf) < total:
        return None
    req = Request(parts[0], parts[1], parts[2], headers, bytes(buf[end + 4:total]), total)
    del buf[:total]
    return req


class TestServer:
    def __init__(self, delay_every=0, delay_ms=0, chunked=False, close_every=0,
                 malformed_every=0):
        self.delay_every, self.delay_ms = delay_every, delay_ms
        self.chunked = chunked
        self.close_every = close_every
        self.malformed_every = malformed_every
        self.lock = threading.Lock()
        self.answered = 0          # requests answered (n of the last one), malformed included
        self.received = 0          # requests parsed, answered or not
        self.received_bytes = 0    # wire bytes of the requests parsed
        self.connections = 0       # connections accepted
        self.delayed = 0           # responses held back
        self.closed = 0            # responses with Connection: close
        self.malformed = 0         # malformed responses sent
        self.bad_requests = []     # what was wrong with requests that did not parse
        self.by_target = collections.Counter()  # (method, target) -> requests received
        self.samples = {}          # (method, target) -> the first Request received
        self.max_in_flight = 0     # most requests received but not answered on one connection
        self._socks = set()
        self._stopping = False
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(256)
        self.port = self.listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop, daemon=True)
        self._acceptor.start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.port

    def stop(self):
        """Stops accepting and ends every connection; the counters stay readable."""
        self._stopping = True
        try:
            self.listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.listener.close()
        self._acceptor.join(5)
        with self.lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    # ---- connections ----------------------------------------------------------------------

    def _accept_loop(self):
        while not self._stopping:
            try:
                sock, _ = self.listener.accept()
            except OSError:
                return
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self.lock:
                self.connections += 1
                self._socks.add(sock)
            Connection(self, sock).start()

    def _count_received(self, conn, req):
        with self.lock:
            self.received += 1
            self.received_bytes += req.raw_len
            key = (req.method, req.target)
            self.by_target[key] += 1
            self.samples.setdefault(key, req)
            conn.received += 1
            self.max_in_flight = max(self.max_in_flight, conn.received - conn.answered)

    def _next(self):
        """Numbers the next answer (on any connection); returns what to do with it: "malformed",
        "close" or "keep", and the delay in seconds."""
        with self.lock:
            self.answered += 1
            n = self.answered
            delay = 0.0
            if self.delay_every and n % self.delay_every == 0:
                self.delayed += 1
                delay = self.delay_ms / 1000.0
            if self.malformed_every and n % self.malformed_every == 0:
                self.malformed += 1
                return "malformed", delay
            if self.close_every and n % self.close_every == 0:
                self.closed += 1
                return "close", delay
            return "keep", delay

    def _forget(self, sock):
        with self.lock:
            self._socks.discard(sock)


class Connection:
    """One accepted connection: the reader thread feeds parsed requests to the responder (this
    object's queue); None in the queue means the client closed or sent garbage."""

    def __init__(self, server, sock):
        self.srv = server
        self.sock = sock
        self.q = queue.Queue()
        self.received = 0      # requests parsed; under srv.lock
        self.answered = 0      # responses about to be written; under srv.lock
        self.closing = False   # the responder decided to close: the reader only drains
        self.reader = threading.Thread(target=self._read_loop, daemon=True)
        self.responder = threading.Thread(target=self._respond_loop, daemon=True)

    def start(self):
        self.reader.start()
        self.responder.start()

    def _read_loop(self):
        buf = bytearray()
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                if self.closing:
                    continue
                buf += data
                while not self.closing:
                    req = parse_request(buf)
                    if req is None:
                        break
                    self.srv._count_received(self, req)
                    self.q.put(req)
        except BadRequest as e:
            with self.srv.lock:
                self.srv.bad_requests.append(str(e))
        except OSError:
            pass
        self.q.put(None)

    def _respond_loop(self):
        try:
            while True:
                req = self.q.get()
                if req is None:
                    break
                action, delay = self.srv._next()
                if delay:
                    time.sleep(delay)
                with self.srv.lock:
                    self.answered += 1
                if action == "malformed":
                    self.sock.sendall(MALFORMED)
                    self._close_gracefully()
                    return
                self._send_ok(close=(action == "close"))
                if action == "close":
                    self._close_gracefully()
                    return
        except OSError:
            pass
        self._finish()

    def _send_ok(self, close):
        head = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
        if close:
            head += "Connection: close\r\n"
        if self.srv.chunked:
            self.sock.sendall((head + "Transfer-Encoding: chunked\r\n\r\n").encode())
            for piece in CHUNKED_PIECES:
                self.sock.sendall(piece)
        else:
            head += "Content-Length: %d\r\n\r\n" % len(BODY)
            self.sock.sendall(head.encode() + BODY)

    def _close_gracefully(self):
        """Closes our side, then lets the reader drain until the client closes (bounded), so
        that unread pipelined requests do not turn into a reset that could destroy the last
        response before the client reads it."""
        self.closing = True
        try:
            self.sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        self.reader.join(LINGER)
        self._finish()

    def _finish(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.reader.join(LINGER)
        self.srv._forget(self.sock)
        self.sock.close()
