# SPDX-License-Identifier: MIT
"""HTTP/2 (engine/http2.c, on libnghttp2): h2 by ALPN on the TLS port, h2c with prior knowledge
on the plain port and on --h2c-port, with real clients (curl, nghttp, h2load, openssl s_client)
and two frame-level clients of our own making: LibConn drives the h2 library (python3-h2), an
independent implementation that also judges what the server sends (flow control, framing);
Wire writes and reads frames itself (HPACK through the hpack package) for what the h2 library
refuses to send: floods, bad frames, windows past 2^31-1, requests that break the rules.

What is checked: negotiation (ALPN h2, the http/1.1 fallback, --http2 off and COIL_HTTP2, h2c
beside HTTP/1.1 on the plain port, an HTTP/1.1 request on --h2c-port refused with a GOAWAY), the
SETTINGS the server advertises (defaults and the --h2-* flags), h2load's 20000 requests all 2xx;
per stream: deferred responses finishing out of order on one connection, a stream reset while
its handler waits (on_abort exactly once, the connection goes on), streamed and big synchronous
responses honouring a small client window (nothing past it until WINDOW_UPDATE), window overflow
(FLOW_CONTROL_ERROR), request bodies on many streams at once (buffered, streaming on_body,
early coil_req_read routes, echoes read after a defer), 413 over a route's limit, request
trailers, HEAD, response header hygiene (lower-case names, no connection-specific headers),
content-length mismatches and connection-specific request headers (stream errors only); abuse,
each on its own connection while an honest one keeps getting 200s: rapid reset, CONTINUATION,
PING, SETTINGS, PRIORITY and empty-DATA floods (GOAWAY and close, counted in
coil_h2_abuse_total{kind}), more than 100 concurrent streams (REFUSED_STREAM for the extras), a
header list over the limit (431 or a reset, the connection survives), zero-window stalls past
--write-timeout; the drain (GOAWAY, the stream in flight completes, then close, exit 0); and the
handler features per stream (proxy, static files, compression, CORS, server-sent events).

Nothing asserts on time: waits are bounds against hangs. Where a client must show that the
server sent nothing more (a closed window), it waits a moment and then reads everything up to a
PING's answer, so that whatever was sent before it has been read.
"""

import gzip
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
import unittest

from coil_harness import (TLS_LISTEN_RE, WAIT, StartError, main, need_tool, request, vm_rss_kib,
                          wait_until)
from test_metrics import scrape
from test_wait import WaitCase
from tlsutil import client_context, make_certs, s_client, tls_args

DEBIAN_PACKAGES = "/usr/lib/python3/dist-packages"
try:
    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions
    import h2.settings
    import hpack
except ImportError:
    # A python3 of its own ahead in PATH (pyenv, a venv) does not see Debian's python3-h2: the
    # library is pure Python, so Debian's directory serves any Python 3.11.
    sys.path.append(DEBIAN_PACKAGES)
    try:
        import h2.config
        import h2.connection
        import h2.events
        import h2.exceptions
        import h2.settings
        import hpack
    except ImportError:
        h2 = hpack = None

# The server's own variables for what these tests set: a developer's settings must not leak in.
for _name in ("COIL_HTTP2", "COIL_H2C_PORT", "COIL_H2_MAX_STREAMS", "COIL_H2_MAX_HEADER_LIST",
              "COIL_H2_HPACK_TABLE", "COIL_H2_WINDOW", "COIL_H2_MAX_CONTROL",
              "COIL_H2_RESET_BURST", "COIL_H2_RESET_RATE", "COIL_TLS_PORT", "COIL_TLS_CERT",
              "COIL_TLS_KEY", "COIL_TLS_SNI", "COIL_TLS_OFFLOAD", "COIL_NO_HTTP", "COIL_STATIC",
              "COIL_COMPRESS", "COIL_DATASET"):
    os.environ.pop(_name, None)

SANITIZED = bool(os.environ.get("COIL_SANITIZE_FLAGS", "").strip())
HELLO = b"Hello, World!"
MIB = 1 << 20
SETTLE = 0.3  # s given to a server to send what it should not, before we look

# ---- HTTP/2 on the wire ---------------------------------------------------------------------

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
(DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PUSH_PROMISE, PING, GOAWAY, WINDOW_UPDATE,
 CONTINUATION) = range(10)
FRAME_NAMES = ["DATA", "HEADERS", "PRIORITY", "RST_STREAM", "SETTINGS", "PUSH_PROMISE", "PING",
               "GOAWAY", "WINDOW_UPDATE", "CONTINUATION"]
F_END_STREAM = F_ACK = 0x1
F_END_HEADERS = 0x4
F_PADDED = 0x8
F_PRIORITY = 0x20

S_HEADER_TABLE_SIZE, S_ENABLE_PUSH, S_MAX_CONCURRENT_STREAMS = 1, 2, 3
S_INITIAL_WINDOW_SIZE, S_MAX_FRAME_SIZE, S_MAX_HEADER_LIST_SIZE = 4, 5, 6

ERROR_NAMES = ["NO_ERROR", "PROTOCOL_ERROR", "INTERNAL_ERROR", "FLOW_CONTROL_ERROR",
               "SETTINGS_TIMEOUT", "STREAM_CLOSED", "FRAME_SIZE_ERROR", "REFUSED_STREAM",
               "CANCEL", "COMPRESSION_ERROR", "CONNECT_ERROR", "ENHANCE_YOUR_CALM",
               "INADEQUATE_SECURITY", "HTTP_1_1_REQUIRED"]
(NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, SETTINGS_TIMEOUT, STREAM_CLOSED,
 FRAME_SIZE_ERROR, REFUSED_STREAM, CANCEL, COMPRESSION_ERROR, CONNECT_ERROR, ENHANCE_YOUR_CALM,
 INADEQUATE_SECURITY, HTTP_1_1_REQUIRED) = range(14)
MAX_WINDOW = (1 << 31) - 1

# Headers HTTP/2 forbids (RFC 9113 8.2.2), in requests and in responses.
CONNECTION_HEADERS = (b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding",
                      b"upgrade")


def err_name(code):
    if code is None:
        return "none"
    return ERROR_NAMES[code] if 0 <= code < len(ERROR_NAMES) else "0x%x" % code


def frame(ftype, flags, sid, payload=b""):
    """The bytes of one frame."""
    return (struct.pack(">I", len(payload))[1:] + bytes([ftype, flags])
            + struct.pack(">I", sid & 0x7FFFFFFF) + payload)


def settings_payload(pairs):
    return b"".join(struct.pack(">HI", k, v) for k, v in pairs.items())


def hpack_int(value, prefix_bits, first=0):
    """An HPACK integer with a prefix_bits prefix, first holding the bits above the prefix."""
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([first | value])
    out = bytearray([first | limit])
    value -= limit
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def hpack_literal(name, value):
    """A header field as a literal without indexing, new name, no Huffman coding: it changes
    no dynamic table, so it can be sent any number of times."""
    return (b"\x00" + hpack_int(len(name), 7) + name + hpack_int(len(value), 7) + value)


def parse_frames(data):
    """[(type, flags, stream id, payload)] of the whole frames in data."""
    out, pos = [], 0
    while len(data) - pos >= 9:
        length = int.from_bytes(data[pos:pos + 3], "big")
        if len(data) - pos < 9 + length:
            break
        out.append((data[pos + 3], data[pos + 4],
                    int.from_bytes(data[pos + 5:pos + 9], "big") & 0x7FFFFFFF,
                    bytes(data[pos + 9:pos + 9 + length])))
        pos += 9 + length
    return out


class H2Stream:
    """What a client saw of one stream."""

    def __init__(self, sid):
        self.id = sid
        self.status = None     # the final response's :status
        self.headers = []      # its other fields, [(name, value)] as bytes
        self.interim = []      # the header lists of 1xx responses
        self.trailers = None   # the trailing header list, if one came
        self.data = bytearray()
        self.data_frames = 0
        self.ended = False     # END_STREAM came from the server
        self.head_ended = False  # ... on the response's HEADERS (no DATA at all)
        self.reset = None      # the error code of a RST_STREAM from the server
        self.late_reset = None  # ... one that came after the stream's END_STREAM (allowed)
        self.send_window = 0   # Wire: what we may still send on it
        self.recv_window = 0   # Wire: what the server may still send on it

    @property
    def done(self):
        return self.ended or self.reset is not None

    def header(self, name):
        name = name.encode() if isinstance(name, str) else name
        for k, v in self.headers:
            if k == name:
                return v.decode("latin-1")
        return None

    def header_all(self, name):
        name = name.encode() if isinstance(name, str) else name
        return [v.decode("latin-1") for k, v in self.headers if k == name]

    def __repr__(self):
        body = bytes(self.data[:100]) + (b"..." if len(self.data) > 100 else b"")
        return ("<stream %d: status %s, %d body bytes in %d DATA frames %r, %s, reset %s, "
                "headers %r, trailers %r>" % (
                    self.id, self.status, len(self.data), self.data_frames, body,
                    "ended" if self.ended else "not ended", err_name(self.reset),
                    [(k.decode("latin-1"), v.decode("latin-1")[:80]) for k, v in self.headers],
                    self.trailers))


def check_fields(fields, where):
    """Problems with a response's header list: upper-case names, connection-specific fields."""
    problems = []
    for name, value in fields:
        if name != name.lower():
            problems.append("%s: header name %r is not lower-case" % (where, name))
        if name in CONNECTION_HEADERS:
            problems.append("%s: connection-specific header %r: %r" % (where, name, value))
        if name == b"te" and value.lower() != b"trailers":
            problems.append("%s: te: %r" % (where, value))
    return problems


class Goaway:
    def __init__(self, last_stream_id, error, debug):
        self.last_stream_id, self.error, self.debug = last_stream_id, error, debug

    def __repr__(self):
        return "<GOAWAY last_stream_id=%d %s %r>" % (self.last_stream_id, err_name(self.error),
                                                   self.debug[:100])


class Wire:
    """A client that writes and reads HTTP/2 frames itself. It sends the preface and a SETTINGS
    frame (ENABLE_PUSH 0 and settings), raises the connection's receive window by conn_window,
    and (wait_settings) reads until the server's SETTINGS came. It acknowledges the server's
    SETTINGS and PINGs and (auto_window) gives back every DATA frame's bytes at once with
    WINDOW_UPDATEs, unless told not to. Everything the server sends is parsed and kept: streams
    (H2Stream), goaways, settings, the frame log (type, flags, stream, length) in arrival order,
    and problems: what the server did that HTTP/2 forbids (DATA past a window, a frame before its
    SETTINGS, HPACK that does not decode, forbidden response headers, pushes)."""

    def __init__(self, port, tls=False, ctx=None, settings=None, conn_window=None,
                 auto_window=True, preface=True, wait_settings=True, timeout=WAIT,
                 host="127.0.0.1"):
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls:
                ctx = ctx or client_context(CERTS, alpn=["h2"])
                sock = ctx.wrap_socket(sock, server_hostname="localhost")
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        self.alpn = sock.selected_alpn_protocol() if tls else None
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.dec.max_header_list_size = 1 << 20
        self.buf = bytearray()
        self.streams = {}
        self.goaways = []
        self.settings = {}            # the server's, as they stand
        self.settings_frames = []     # each SETTINGS frame's pairs, in order
        self.settings_acks = 0
        self.ping_acks = []
        self.log = []                 # (type, flags, stream id, length)
        self.problems = []
        self.closed_how = None
        self.next_id = 1
        self.block = None             # (stream id, bytearray, END_STREAM) of a header block
        self.auto_window = auto_window
        self.ack_settings = self.ack_ping = True
        self.on_goaway = None         # called with each GOAWAY as it is read
        self.send_window = 65535      # connection: what we may send
        self.recv_window = 65535      # connection: what the server may send
        self.initial_recv = 65535     # a new stream's receive window (our SETTINGS)
        self.send_lock = threading.Lock()
        if preface:
            pairs = {S_ENABLE_PUSH: 0}
            pairs.update(settings or {})
            self.initial_recv = pairs.get(S_INITIAL_WINDOW_SIZE, 65535)
            self.send(PREFACE + frame(SETTINGS, 0, 0, settings_payload(pairs)))
            if conn_window:
                self.window_update(0, conn_window)
            if wait_settings:
                self.wait(lambda: self.settings_frames, "the server's SETTINGS")

    # -- sending
    def send(self, data):
        with self.send_lock:
            self.sock.sendall(data)

    def send_frame(self, ftype, flags, sid, payload=b""):
        self.send(frame(ftype, flags, sid, payload))

    def quiet(self):
        """No more automatic frames (ACKs, WINDOW_UPDATEs): for a thread that sends alone."""
        self.ack_settings = self.ack_ping = self.auto_window = False

    def new_id(self):
        sid = self.next_id
        self.next_id += 2
        return sid

    def stream(self, sid):
        st = self.streams.get(sid)
        if st is None:
            st = self.streams[sid] = H2Stream(sid)
            st.send_window = self.settings.get(S_INITIAL_WINDOW_SIZE, 65535)
            st.recv_window = self.initial_recv
        return st

    def encode(self, fields, never_index=False):
        fields = [(n.encode() if isinstance(n, str) else n, v.encode() if isinstance(v, str)
                   else v) for n, v in fields]
        if never_index:
            fields = [hpack.NeverIndexedHeaderTuple(n, v) for n, v in fields]
        return self.enc.encode(fields)

    def send_headers(self, sid, fields, end_stream=False, never_index=False):
        """HEADERS (with CONTINUATIONs past the server's frame size) carrying fields."""
        block = self.encode(fields, never_index)
        self.stream(sid)
        size = self.settings.get(S_MAX_FRAME_SIZE, 16384)
        pieces = [block[i:i + size] for i in range(0, len(block), size)] or [b""]
        out = bytearray()
        for i, piece in enumerate(pieces):
            flags = F_END_HEADERS if i == len(pieces) - 1 else 0
            if i == 0:
                out += frame(HEADERS, flags | (F_END_STREAM if end_stream else 0), sid, piece)
            else:
                out += frame(CONTINUATION, flags, sid, piece)
        self.send(bytes(out))
        return sid

    def request_fields(self, method, path, headers=(), scheme="http", authority="localhost"):
        return [(":method", method), (":scheme", scheme), (":authority", authority),
                (":path", path)] + list(headers)

    def request(self, method, path, headers=(), body=None, end=True, content_length=True,
                never_index=False, **kw):
        """Opens a stream with a request; body (bytes) follows in DATA frames. end=False leaves
        the stream open after what was sent. Returns the stream id."""
        sid = self.new_id()
        headers = list(headers)
        if (body is not None and content_length
                and not any(n.lower() == "content-length" for n, _ in headers)):
            headers.append(("content-length", str(len(body))))
        self.send_headers(sid, self.request_fields(method, path, headers, **kw),
                          end_stream=(body is None and end), never_index=never_index)
        if body is not None:
            self.send_data(sid, body, end=end)
        return sid

    def requests_at_once(self, method, path, count):
        """count requests without bodies, sent with one write; returns their stream ids."""
        out, sids = bytearray(), []
        for _ in range(count):
            sid = self.new_id()
            self.stream(sid)
            out += frame(HEADERS, F_END_HEADERS | F_END_STREAM, sid,
                         self.encode(self.request_fields(method, path)))
            sids.append(sid)
        self.send(bytes(out))
        return sids

    def send_data(self, sid, data, end=True):
        """DATA frames within the server's windows and frame size, reading while a window is
        closed. Returns False if the server ended or reset the stream before all was sent."""
        st = self.stream(sid)
        view = memoryview(data)
        while view:
            if st.done or self.goaways or self.closed_how:
                return False
            n = min(len(view), self.send_window, st.send_window,
                    self.settings.get(S_MAX_FRAME_SIZE, 16384))
            if n <= 0:
                self.pump()
                continue
            last = end and n == len(view)
            self.send_frame(DATA, F_END_STREAM if last else 0, sid, bytes(view[:n]))
            self.send_window -= n
            st.send_window -= n
            view = view[n:]
        if end and not data:
            self.send_frame(DATA, F_END_STREAM, sid)
        return True

    def trailers(self, sid, fields):
        self.send_headers(sid, fields, end_stream=True)

    def rst(self, sid, code=CANCEL):
        self.send_frame(RST_STREAM, 0, sid, struct.pack(">I", code))

    def window_update(self, sid, increment):
        self.send_frame(WINDOW_UPDATE, 0, sid, struct.pack(">I", increment & 0x7FFFFFFF))
        if sid == 0:
            self.recv_window += increment
        elif sid in self.streams:
            self.streams[sid].recv_window += increment

    def ping(self, data=b"coilping"):
        self.send_frame(PING, 0, 0, data)

    def ping_roundtrip(self, data=b"roundtr!"):
        """Sends a PING and reads until its ACK: everything sent before it has been read."""
        n = self.ping_acks.count(data)
        self.ping(data)
        self.wait(lambda: self.ping_acks.count(data) > n, "the PING's ACK")

    # -- receiving
    def pump(self):
        """Reads once and handles every whole frame; False once the connection ended."""
        if self.closed_how:
            return False
        try:
            chunk = self.sock.recv(1 << 16)
        except (ConnectionResetError, BrokenPipeError):
            self.closed_how = "reset"
            return False
        except socket.timeout:
            raise AssertionError("timed out after %.0fs waiting for coil; %s"
                                 % (self.sock.gettimeout(), self.summary())) from None
        except ssl.SSLError as e:
            self.closed_how = "tls error %s" % e
            return False
        if not chunk:
            self.closed_how = "eof"
            return False
        if not self.log and not self.buf and chunk.startswith(b"HTTP/"):
            raise AssertionError("coil answered with HTTP/1.x instead of HTTP/2: %r" % chunk[:300])
        self.buf += chunk
        pos = 0
        while len(self.buf) - pos >= 9:
            length = int.from_bytes(self.buf[pos:pos + 3], "big")
            if len(self.buf) - pos < 9 + length:
                break
            ftype, flags = self.buf[pos + 3], self.buf[pos + 4]
            sid = int.from_bytes(self.buf[pos + 5:pos + 9], "big") & 0x7FFFFFFF
            payload = bytes(self.buf[pos + 9:pos + 9 + length])
            pos += 9 + length
            self.on_frame(ftype, flags, sid, payload)
        del self.buf[:pos]
        return True

    def on_frame(self, ftype, flags, sid, payload):
        if not self.log and ftype != SETTINGS:
            self.problems.append("the first frame was %s, not SETTINGS" % self.fname(ftype))
        self.log.append((ftype, flags, sid, len(payload)))
        if self.block is not None and ftype != CONTINUATION:
            self.problems.append("%s inside a header block" % self.fname(ftype))
        if len(payload) > self.initial_max_frame():
            self.problems.append("a %s frame of %d bytes" % (self.fname(ftype), len(payload)))
        if ftype == DATA:
            self.on_data(flags, sid, payload)
        elif ftype == HEADERS:
            body = payload
            if flags & F_PADDED:
                body = body[1:len(body) - body[0]]
            if flags & F_PRIORITY:
                body = body[5:]
            if sid % 2 == 0 or sid == 0:
                self.problems.append("HEADERS on stream %d" % sid)
            self.block = (sid, bytearray(body), bool(flags & F_END_STREAM))
            if flags & F_END_HEADERS:
                self.end_block()
        elif ftype == CONTINUATION:
            if self.block is None or self.block[0] != sid:
                self.problems.append("CONTINUATION on stream %d outside a header block" % sid)
            else:
                self.block[1].extend(payload)
                if flags & F_END_HEADERS:
                    self.end_block()
        elif ftype == RST_STREAM:
            st = self.stream(sid)
            code = struct.unpack(">I", payload)[0]
            if st.ended:
                st.late_reset = code
            else:
                st.reset = code
        elif ftype == SETTINGS:
            if flags & F_ACK:
                self.settings_acks += 1
                return
            pairs = {}
            for i in range(0, len(payload) - len(payload) % 6, 6):
                k, v = struct.unpack(">HI", payload[i:i + 6])
                pairs[k] = v
            if S_INITIAL_WINDOW_SIZE in pairs:
                delta = pairs[S_INITIAL_WINDOW_SIZE] - self.settings.get(S_INITIAL_WINDOW_SIZE,
                                                                        65535)
                for st in self.streams.values():
                    st.send_window += delta
            if S_HEADER_TABLE_SIZE in pairs:
                self.enc.header_table_size = min(pairs[S_HEADER_TABLE_SIZE], 4096)
            self.settings.update(pairs)
            self.settings_frames.append(pairs)
            if self.ack_settings:
                self.send_frame(SETTINGS, F_ACK, 0)
        elif ftype == PING:
            if flags & F_ACK:
                self.ping_acks.append(payload)
            elif self.ack_ping:
                self.send_frame(PING, F_ACK, 0, payload)
        elif ftype == GOAWAY:
            last, code = struct.unpack(">II", payload[:8])
            self.goaways.append(Goaway(last & 0x7FFFFFFF, code, payload[8:]))
            if self.on_goaway:
                self.on_goaway(self.goaways[-1])
        elif ftype == WINDOW_UPDATE:
            inc = struct.unpack(">I", payload)[0] & 0x7FFFFFFF
            if sid == 0:
                self.send_window += inc
            else:
                self.stream(sid).send_window += inc
        elif ftype == PUSH_PROMISE:
            self.problems.append("PUSH_PROMISE on stream %d with pushes disabled" % sid)

    def initial_max_frame(self):
        return 16384  # we never raise SETTINGS_MAX_FRAME_SIZE

    def on_data(self, flags, sid, payload):
        st = self.streams.get(sid)
        if st is None or st.status is None:
            self.problems.append("DATA on stream %d before a response head" % sid)
            st = self.stream(sid)
        n = len(payload)
        self.recv_window -= n
        st.recv_window -= n
        if self.recv_window < 0:
            self.problems.append("DATA %d bytes past the connection's window" % -self.recv_window)
        if st.recv_window < 0:
            self.problems.append("DATA %d bytes past stream %d's window" % (-st.recv_window, sid))
        if flags & F_PADDED:
            payload = payload[1:len(payload) - payload[0]]
        st.data += payload
        st.data_frames += 1
        if flags & F_END_STREAM:
            st.ended = True
        if self.auto_window and n:
            self.window_update(0, n)
            if not st.ended:
                self.window_update(sid, n)

    def end_block(self):
        sid, block, end_stream = self.block
        self.block = None
        try:
            fields = self.dec.decode(bytes(block), raw=True)
        except Exception as e:  # hpack's errors, and anything a bad block makes it raise
            self.problems.append("stream %d: the header block does not decode: %r" % (sid, e))
            return
        st = self.stream(sid)
        pseudo = [n for n, _ in fields if n.startswith(b":")]
        regular = [(n, v) for n, v in fields if not n.startswith(b":")]
        self.problems += check_fields(regular, "stream %d" % sid)
        if st.status is None:
            if pseudo != [b":status"] or fields[0][0] != b":status":
                self.problems.append("stream %d: pseudo-headers %r" % (sid, pseudo))
            status = dict(fields).get(b":status", b"0")
            code = int(status) if status.isdigit() else 0
            if 100 <= code < 200:
                st.interim.append(fields)
            else:
                st.status = code
                st.headers = regular
                st.head_ended = end_stream
        else:
            if pseudo:
                self.problems.append("stream %d: pseudo-headers in trailers %r" % (sid, pseudo))
            st.trailers = regular
        if end_stream:
            st.ended = True

    def fname(self, ftype):
        return FRAME_NAMES[ftype] if ftype < len(FRAME_NAMES) else "type 0x%x" % ftype

    def wait(self, pred, what, timeout=None):
        """Reads until pred() holds; AssertionError if the connection ends first (or the socket
        timeout passes without a byte)."""
        deadline = time.monotonic() + (timeout or 60)
        while True:
            value = pred()
            if value:
                return value
            if self.closed_how:
                raise AssertionError("the connection ended (%s) before %s; %s"
                                     % (self.closed_how, what, self.summary()))
            if time.monotonic() > deadline:
                raise AssertionError("gave up waiting for %s; %s" % (what, self.summary()))
            self.pump()

    def response(self, sid, timeout=None):
        st = self.stream(sid)
        self.wait(lambda: st.done, "stream %d's end" % sid, timeout)
        return st

    def read_until_closed(self):
        """Reads (and handles) everything until the server closes; returns how it closed."""
        while self.pump():
            pass
        return self.closed_how

    def summary(self):
        frames = ["%s(%d)%s" % (self.fname(t), s, "+" if f & 1 else "") for t, f, s, _ in
                  self.log[-30:]]
        return ("%d frames (last: %s); goaways %r; streams %s; problems %r"
                % (len(self.log), " ".join(frames), self.goaways,
                   [self.streams[s] for s in sorted(self.streams)][-6:], self.problems[:5]))

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class LibConn:
    """The h2 library's client connection over a socket (TLS with ALPN h2 if tls). settings go
    in the client's first SETTINGS; with auto_ack every DATA frame read is acknowledged (the h2
    library sends WINDOW_UPDATEs as it sees fit). The library itself checks what the server
    sends (flow control, framing, stream states): a violation fails the test with its message.
    Inbound header validation is off so that the tests' own checks (check_fields) are the ones
    that speak."""

    def __init__(self, port, tls=False, settings=None, auto_ack=True, timeout=WAIT,
                 ctx=None):
        sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if tls:
                ctx = ctx or client_context(CERTS, alpn=["h2", "http/1.1"])
                sock = ctx.wrap_socket(sock, server_hostname="localhost")
                if sock.selected_alpn_protocol() != "h2":
                    raise AssertionError("ALPN chose %r, not h2" % sock.selected_alpn_protocol())
        except BaseException:
            sock.close()
            raise
        self.sock = sock
        cfg = h2.config.H2Configuration(client_side=True, header_encoding=None,
                                        validate_inbound_headers=False)
        self.h2 = h2.connection.H2Connection(config=cfg)
        initial = {h2.settings.SettingCodes.ENABLE_PUSH: 0}
        initial.update(settings or {})
        self.h2.local_settings = h2.settings.Settings(client=True, initial_values=initial)
        self.h2.initiate_connection()
        self.auto_ack = auto_ack
        self.streams = {}
        self.ended_order = []
        self.goaway = None
        self.settings_acked = False
        self.remote_settings = {}
        self.ping_acks = 0
        self.problems = []
        self.closed_how = None
        self.flush()

    def flush(self):
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)

    def stream(self, sid):
        st = self.streams.get(sid)
        if st is None:
            st = self.streams[sid] = H2Stream(sid)
        return st

    def pump(self):
        if self.closed_how:
            return False
        try:
            data = self.sock.recv(1 << 16)
        except (ConnectionResetError, BrokenPipeError):
            self.closed_how = "reset"
            return False
        except socket.timeout:
            raise AssertionError("timed out after %.0fs waiting for coil; streams %r"
                                 % (self.sock.gettimeout(), list(self.streams.values())[-6:]))
        if not data:
            self.closed_how = "eof"
            return False
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.FlowControlError as e:
            raise AssertionError("coil broke flow control (h2 library): %s" % e) from None
        except h2.exceptions.ProtocolError as e:
            raise AssertionError("the h2 library saw a protocol error from coil: %r" % e) from None
        for ev in events:
            self.on_event(ev)
        self.flush()
        return True

    def on_event(self, ev):
        E = h2.events
        if isinstance(ev, E.ResponseReceived):
            st = self.stream(ev.stream_id)
            pseudo = [n for n, _ in ev.headers if n.startswith(b":")]
            if pseudo != [b":status"] or ev.headers[0][0] != b":status":
                self.problems.append("stream %d: pseudo-headers %r" % (ev.stream_id, pseudo))
            st.status = int(dict(ev.headers)[b":status"])
            st.headers = [(n, v) for n, v in ev.headers if not n.startswith(b":")]
            self.problems += check_fields(st.headers, "stream %d" % ev.stream_id)
        elif isinstance(ev, E.InformationalResponseReceived):
            self.stream(ev.stream_id).interim.append(ev.headers)
        elif isinstance(ev, E.TrailersReceived):
            self.stream(ev.stream_id).trailers = list(ev.headers)
            self.problems += check_fields(ev.headers, "stream %d trailers" % ev.stream_id)
        elif isinstance(ev, E.DataReceived):
            st = self.stream(ev.stream_id)
            st.data += ev.data
            st.data_frames += 1
            if self.auto_ack and ev.flow_controlled_length:
                self.h2.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
        elif isinstance(ev, E.StreamEnded):
            st = self.stream(ev.stream_id)
            st.ended = True
            st.head_ended = st.data_frames == 0
            self.ended_order.append(ev.stream_id)
        elif isinstance(ev, E.StreamReset):
            if ev.remote_reset:
                st = self.stream(ev.stream_id)
                if st.ended:
                    st.late_reset = ev.error_code
                else:
                    st.reset = ev.error_code
        elif isinstance(ev, E.ConnectionTerminated):
            self.goaway = Goaway(ev.last_stream_id or 0, ev.error_code, ev.additional_data or b"")
        elif isinstance(ev, E.RemoteSettingsChanged):
            for k, v in ev.changed_settings.items():
                self.remote_settings[int(k)] = v.new_value
        elif isinstance(ev, E.SettingsAcknowledged):
            self.settings_acked = True
        elif isinstance(ev, E.PingAckReceived):
            self.ping_acks += 1

    def wait(self, pred, what, timeout=60):
        deadline = time.monotonic() + timeout
        while not pred():
            if self.closed_how:
                raise AssertionError("the connection ended (%s) before %s; goaway %r; streams %r"
                                     % (self.closed_how, what, self.goaway,
                                        list(self.streams.values())[-6:]))
            if time.monotonic() > deadline:
                raise AssertionError("gave up waiting for %s; streams %r"
                                     % (what, list(self.streams.values())[-6:]))
            self.pump()

    def ping_roundtrip(self):
        n = self.ping_acks
        self.h2.ping(b"coil-rtt")
        self.flush()
        self.wait(lambda: self.ping_acks > n, "the PING's ACK")

    def request(self, method, path, headers=(), body=None, trailers=None, end=True,
                authority="localhost", scheme="http"):
        """Sends a request and returns its stream id (the body, if any, sent at once within the
        windows; see send_bodies for several streams at once)."""
        sid = self.h2.get_next_available_stream_id()
        self.stream(sid)
        fields = [(":method", method), (":scheme", scheme), (":authority", authority),
                  (":path", path)] + list(headers)
        fields = [(n.encode() if isinstance(n, str) else n, v.encode() if isinstance(v, str)
                   else v) for n, v in fields]
        self.h2.send_headers(sid, fields, end_stream=(body is None and trailers is None and end))
        self.flush()
        if body is not None:
            self.send_bodies({sid: body}, end=(end and trailers is None))
        if trailers is not None:
            self.h2.send_headers(sid, [(n.encode(), v.encode()) for n, v in trailers],
                                 end_stream=True)
            self.flush()
        return sid

    def send_bodies(self, bodies, end=True, piece=16384):
        """Sends the bodies ({stream id: bytes}) interleaved, piece bytes of each in turn, within
        the windows (reading while they are closed), then ends each stream. A stream the server
        answered or reset first gets no more of its body. Returns the ids sent whole."""
        pos = {sid: 0 for sid in bodies}
        pending = list(bodies)
        whole = []
        while pending:
            progressed = False
            for sid in list(pending):
                st = self.streams[sid]
                data = bodies[sid]
                if st.done:
                    pending.remove(sid)
                    try:  # the server answered first: what is left of the body is not sent
                        self.h2.end_stream(sid)
                    except h2.exceptions.H2Error:
                        pass
                    continue
                try:
                    if pos[sid] >= len(data):
                        if end:
                            self.h2.end_stream(sid)
                        pending.remove(sid)
                        whole.append(sid)
                        progressed = True
                        continue
                    n = min(self.h2.local_flow_control_window(sid),
                            self.h2.max_outbound_frame_size, piece, len(data) - pos[sid])
                    if n <= 0:
                        continue
                    self.h2.send_data(sid, data[pos[sid]:pos[sid] + n])
                except h2.exceptions.StreamClosedError:
                    pending.remove(sid)
                    continue
                pos[sid] += n
                progressed = True
            self.flush()
            if pending and not progressed:
                if not self.pump():
                    raise AssertionError("the connection ended (%s) while sending bodies"
                                         % self.closed_how)
        self.flush()
        return whole

    def reset(self, sid, code=CANCEL):
        self.h2.reset_stream(sid, error_code=code)
        self.flush()

    def response(self, sid, timeout=60):
        st = self.stream(sid)
        self.wait(lambda: st.done, "stream %d's end" % sid, timeout)
        return st

    def get(self, path, headers=()):
        return self.response(self.request("GET", path, headers))

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


class Honest:
    """A well-behaved h2 connection that keeps asking for /plaintext from a thread while an
    attack runs on another connection. statuses: what each request got."""

    def __init__(self, port):
        self.conn = LibConn(port, timeout=30)
        self.statuses = []
        self.errors = []
        self.stop_flag = threading.Event()
        self.thread = None
        self.ask()

    def ask(self):
        st = self.conn.get("/plaintext")
        self.statuses.append((st.status, bytes(st.data), st.reset))

    def start(self):
        def loop():
            try:
                while not self.stop_flag.is_set():
                    self.ask()
                    time.sleep(0.02)
            except BaseException as e:  # reported by finish()
                self.errors.append(e)

        self.thread = threading.Thread(target=loop, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stop_flag.set()
        if self.thread:
            self.thread.join(60)
        self.conn.close()

    def finish(self, case):
        """Stops the loop, asks once more, and checks every answer was a whole 200."""
        self.stop_flag.set()
        self.thread.join(60)
        case.assertFalse(self.thread.is_alive(), "the honest connection's loop hung")
        case.assertEqual(self.errors, [], "the honest connection failed during the attack")
        self.ask()
        bad = [s for s in self.statuses if s != (200, HELLO, None)]
        case.assertEqual(bad, [], "the honest connection got other answers than 200 %r "
                         "(of %d requests)" % (HELLO, len(self.statuses)))
        case.assertIsNone(self.conn.goaway, "the honest connection got a GOAWAY")
        case.assertEqual(self.conn.problems, [])
        self.conn.close()


# ---- module set-up and shared checks --------------------------------------------------------

CERTS = None
_tmp = None
H2C_RE = re.compile(r"listening for h2c on (\S+):(\d+)")


def setUpModule():
    global CERTS, _tmp
    if h2 is None:
        raise unittest.SkipTest("python3-h2 is not installed (apt-get install python3-h2)")
    need_tool("openssl")
    _tmp = tempfile.mkdtemp(prefix="coil-h2-")
    CERTS = make_certs(_tmp)


def tearDownModule():
    if _tmp:
        shutil.rmtree(_tmp, True)


def pattern_ok(data, offset=0):
    """Whether data is testapp's pattern (byte i is i % 251) from offset."""
    period = bytes(i % 251 for i in range(251))
    start = offset % 251
    first = period[start:] + period[:start]
    reps = len(data) // 251 + 2
    return bytes(data) == (first * reps)[:len(data)]


def checksum(data):
    """testapp's checksum: sum = sum * 31 + byte, modulo 2^64."""
    s = 0
    for b in data:
        s = (s * 31 + b) & 0xFFFFFFFFFFFFFFFF
    return s


def h2_metrics(port):
    """coil's HTTP/2 counters from /metrics (over HTTP/1.1 on the plain port)."""
    s = scrape(port)
    return {"connections": s.value("coil_h2_connections_total"),
            "streams": s.value("coil_h2_streams_total"),
            "resets": s.value("coil_h2_resets_received_total"),
            "abuse": {lb.get("kind"): v for lb, v in s.series("coil_h2_abuse_total")},
            "types": {k: v for k, v in s.types.items() if k.startswith("coil_h2_")}}


class H2Case(WaitCase):
    def wire(self, port, **kw):
        c = Wire(port, **kw)
        self.addCleanup(c.close)
        return c

    def lib(self, port, **kw):
        c = LibConn(port, **kw)
        self.addCleanup(c.close)
        return c

    def start_tls(self, *args, app=False, **kw):
        full = tls_args(CERTS) + [str(a) for a in args]
        return self.start_app(*full, **kw) if app else self.start(*full, **kw)

    def h2c_port(self, srv):
        def find():
            for line in srv.log_text().splitlines():
                m = H2C_RE.search(line)
                if m:
                    return int(m.group(2))
            return None
        return wait_until(find, timeout=5, what="the 'listening for h2c on ADDR:PORT' line")

    def assertStream(self, st, status=200, body=None, conn=None):
        """The stream ended normally with status (and body); no problem seen on conn."""
        self.assertIsNone(st.reset, "stream reset by coil: %r" % st)
        self.assertTrue(st.ended, "stream not ended: %r" % st)
        self.assertEqual(st.status, status, st)
        if body is not None:
            self.assertEqual(bytes(st.data), body, st)
        if conn is not None:
            self.assertEqual(conn.problems, [], "protocol problems seen from coil")

    def abuse_delta(self, srv, before, kind):
        after = h2_metrics(srv.port)
        return after["abuse"].get(kind, 0) - before["abuse"].get(kind, 0), after

    def curl(self, *args, ok=True):
        need_tool("curl")
        argv = ["curl", "-sS", "--max-time", "60"] + [str(a) for a in args]
        p = subprocess.run(argv, capture_output=True, timeout=90)
        if ok:
            self.assertEqual(p.returncode, 0, "%s\n%s" % (" ".join(argv), p.stderr.decode()))
        return p


# ---- negotiation: ALPN, h2c, the fallbacks, --http2 off ------------------------------------

class Negotiation(H2Case):
    def test_curl_alpn_h2_over_tls(self):
        srv = self.start_tls("--workers", "2", "--max-body-bytes", "4M")
        base = "https://localhost:%d" % srv.tls_port
        common = ["--cacert", CERTS.root, "--resolve", "localhost:%d:127.0.0.1" % srv.tls_port]
        d = tempfile.mkdtemp(dir=_tmp)
        paths = ["/plaintext", "/json", "/healthz", "/plaintext"]
        argv = ["--http2", "-w", "%{http_code} %{http_version} %{num_connects}\\n"] + common
        files = []
        for i, p in enumerate(paths):
            files.append(os.path.join(d, "b%d" % i))
            argv += [base + p, "-o", files[-1]]
        out = self.curl(*argv).stdout.decode().split("\n")
        got = [l.split() for l in out if l.strip()]
        self.assertEqual([g[:2] for g in got], [["200", "2"]] * len(paths), out)
        # one connection for all: the first transfer connected, the others reused it
        self.assertEqual([g[2] for g in got], ["1"] + ["0"] * (len(paths) - 1), out)
        bodies = []
        for name in files:
            with open(name, "rb") as f:
                bodies.append(f.read())
        self.assertEqual(bodies, [HELLO, b'{"message":"Hello, World!"}', b"ok", HELLO])
        # a 1 MiB POST over h2
        body = os.urandom(MIB)
        src, dst = os.path.join(d, "up"), os.path.join(d, "down")
        with open(src, "wb") as f:
            f.write(body)
        out = self.curl("--http2", "-w", "%{http_code} %{http_version}", "--data-binary",
                        "@" + src, "-H", "Content-Type: application/octet-stream", *common,
                        base + "/echo", "-o", dst).stdout
        self.assertEqual(out, b"200 2")
        with open(dst, "rb") as f:
            self.assertTrue(f.read() == body, "the 1 MiB echo over h2 differs")

    def test_curl_http11_fallback_on_tls(self):
        srv = self.start_tls("--workers", "1")
        p = self.curl("--http1.1", "-w", " %{http_version}", "--cacert", CERTS.root,
                      "--resolve", "localhost:%d:127.0.0.1" % srv.tls_port,
                      "https://localhost:%d/plaintext" % srv.tls_port)
        self.assertEqual(p.stdout, HELLO + b" 1.1")

    def test_python_ssl_alpn_h2_with_h2_library(self):
        srv = self.start_tls("--workers", "1", app=True)
        c = self.lib(srv.tls_port, tls=True)
        sids = [c.request("GET", "/later/%d" % ms) for ms in (300, 0, 150)]
        sids.append(c.request("POST", "/small", body=b"x" * 5000))
        sts = [c.response(s) for s in sids]
        for st, ms in zip(sts, (300, 0, 150)):
            self.assertStream(st, 200, b"later %d" % ms)
        self.assertStream(sts[3], 200, b"5000 %d" % checksum(b"x" * 5000))
        self.assertEqual([s for s in c.ended_order if s in sids[:3]],
                         [sids[1], sids[2], sids[0]])
        self.assertEqual(c.problems, [])
        # and with our own frames, over TLS too
        w = self.wire(srv.tls_port, tls=True)
        self.assertEqual(w.alpn, "h2")
        self.assertStream(w.response(w.request("GET", "/greeting", scheme="https")), 200,
                          b"hello", w)

    def test_two_tls_ports(self):
        # --tls-port N,M: both ports serve h2 and HTTP/1.1 with the same certificates
        # (HttpArena: HTTP/1.1 over TLS on 8081 and h2 on 8443 from one process)
        srv = self.start_tls("--workers", "1", "--tls-port", "0,0")
        ports = wait_until(lambda: [int(m.group(2)) for m in map(TLS_LISTEN_RE.match,
                                                                  srv.log_text().splitlines())
                                    if m] or None, timeout=5, what="the TLS listening lines")
        self.assertEqual(len(ports), 2, srv.log_text())
        self.assertNotEqual(ports[0], ports[1])
        for port in ports:
            for flag, version in (("--http2", b"2"), ("--http1.1", b"1.1")):
                p = self.curl(flag, "-w", " %{http_version}", "--cacert", CERTS.root,
                              "--resolve", "localhost:%d:127.0.0.1" % port,
                              "https://localhost:%d/plaintext" % port)
                self.assertEqual(p.stdout, HELLO + b" " + version, (port, flag))
        # a second port equal to the first is refused
        with self.assertRaises(StartError):
            self.start_tls("--workers", "1", "--tls-port", "%d,%d" % (ports[0], ports[0]))

    def test_s_client_alpn(self):
        srv = self.start_tls("--workers", "1")
        r = s_client(srv.tls_port, "-alpn", "h2", certs=CERTS, send=b"")
        self.assertTrue(r.handshake_ok, r)
        self.assertEqual(r.alpn, "h2", r)
        r = s_client(srv.tls_port, "-alpn", "h2,http/1.1", certs=CERTS, send=b"")
        self.assertEqual(r.alpn, "h2", r)
        r = s_client(srv.tls_port, "-alpn", "http/1.1", certs=CERTS)
        self.assertEqual(r.alpn, "http/1.1", r)
        self.assertIn("Hello, World!", r.out)

    def test_http2_off(self):
        for how in ("flag", "env"):
            with self.subTest(how=how):
                if how == "flag":
                    srv = self.start_tls("--workers", "1", "--http2", "off")
                else:
                    srv = self.start_tls("--workers", "1", env={"COIL_HTTP2": "off"})
                # ALPN: no h2
                r = s_client(srv.tls_port, "-alpn", "h2,http/1.1", certs=CERTS)
                self.assertEqual(r.alpn, "http/1.1", r)
                self.assertIn("Hello, World!", r.out)
                r = s_client(srv.tls_port, "-alpn", "h2", certs=CERTS, send=b"")
                self.assertNotEqual(r.alpn, "h2", r)
                p = self.curl("--http2", "-w", " %{http_version}", "--cacert", CERTS.root,
                              "--resolve", "localhost:%d:127.0.0.1" % srv.tls_port,
                              "https://localhost:%d/plaintext" % srv.tls_port)
                self.assertEqual(p.stdout, HELLO + b" 1.1")
                # the preface on the plain port is not HTTP/2 there: an HTTP/1.1 error
                c = self.connect(srv)
                c.send(PREFACE + frame(SETTINGS, 0, 0))
                r = c.read_response()  # an HTTP/2 SETTINGS frame would not parse
                self.assertEqual(r.version, "HTTP/1.1", r)
                self.assertGreaterEqual(r.status, 400, r)
                # HTTP/1.1 still works
                r = self.connect(srv).request("GET", "/plaintext")
                self.assertEqual((r.status, r.body), (200, HELLO))
                self.stop(srv)

    def test_h2c_prior_knowledge_beside_http11_on_plain_port(self):
        srv = self.start("--workers", "1")
        w = self.wire(srv.port)
        sid = w.request("GET", "/plaintext")
        self.assertStream(w.response(sid), 200, HELLO, w)
        # HTTP/1.1 on another connection to the same port, while the h2 one stays open
        c = self.connect(srv)
        r = c.request("GET", "/plaintext")
        self.assertEqual((r.version, r.status, r.body), ("HTTP/1.1", 200, HELLO))
        r = c.request("POST", "/echo", body=b"abc")
        self.assertEqual((r.status, r.body), (200, b"abc"))
        self.assertStream(w.response(w.request("GET", "/json")), 200,
                          b'{"message":"Hello, World!"}', w)
        p = self.curl("--http2-prior-knowledge", "-w", " %{http_version}",
                      "http://127.0.0.1:%d/plaintext" % srv.port)
        self.assertEqual(p.stdout, HELLO + b" 2")
        p = self.curl("--http1.1", "-w", " %{http_version}",
                      "http://127.0.0.1:%d/plaintext" % srv.port)
        self.assertEqual(p.stdout, HELLO + b" 1.1")

    def test_h2c_port(self):
        srv = self.start("--workers", "1", "--h2c-port", "0")
        port = self.h2c_port(srv)
        self.assertNotEqual(port, srv.port)
        p = self.curl("--http2-prior-knowledge", "-w", " %{http_version}",
                      "http://127.0.0.1:%d/plaintext" % port)
        self.assertEqual(p.stdout, HELLO + b" 2")
        w = self.wire(port)
        self.assertStream(w.response(w.request("GET", "/plaintext")), 200, HELLO, w)
        # HTTP/1.1 there: a GOAWAY PROTOCOL_ERROR and the close, never an HTTP/1.1 answer
        c = self.connect(port)
        c.send(request("GET", "/plaintext"))
        data, how = c.read_until_eof()
        self.assertFalse(data.startswith(b"HTTP/"), "an HTTP/1.1 answer on --h2c-port: %r"
                         % data[:200])
        self.assertNotIn(b"HTTP/1.1 200", data)
        frames = parse_frames(data)
        goaways = [struct.unpack(">II", p[:8]) for t, _, _, p in frames if t == GOAWAY]
        self.assertTrue(goaways, "no GOAWAY before the close: %r" % data[:200])
        self.assertEqual(goaways[-1][1], PROTOCOL_ERROR, "GOAWAY %s"
                         % err_name(goaways[-1][1]))
        # the plain port still speaks both
        r = self.connect(srv).request("GET", "/plaintext")
        self.assertEqual((r.status, r.body), (200, HELLO))


# ---- SETTINGS: nghttp's view ------------------------------------------------------------------

NGHTTP_SETTING_RE = re.compile(r"\[SETTINGS_([A-Z_]+)\(0x[0-9a-f]+\):(\d+)\]")


def nghttp_settings(out):
    """The settings of the server's first SETTINGS frame in `nghttp -nv` output."""
    m = re.search(r"recv SETTINGS frame <length=\d+, flags=0x00, stream_id=0>\n"
                  r"\s*\(niv=(\d+)\)\n((?:\s*\[SETTINGS_.*\]\n)*)", out)
    if not m:
        raise AssertionError("no SETTINGS frame from the server in nghttp's output:\n%s" % out)
    return {k: int(v) for k, v in NGHTTP_SETTING_RE.findall(m.group(2))}


class Settings(H2Case):
    def nghttp(self, *args):
        need_tool("nghttp")
        argv = ["nghttp", "-nv"] + [str(a) for a in args]
        p = subprocess.run(argv, capture_output=True, timeout=60)
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, "%s\n%s" % (" ".join(argv), out))
        return out

    def test_defaults(self):
        srv = self.start_tls("--workers", "1")
        for url in ("http://127.0.0.1:%d/plaintext" % srv.port,
                    "https://127.0.0.1:%d/plaintext" % srv.tls_port):
            with self.subTest(url=url):
                out = self.nghttp(url, "http://127.0.0.1:%d/json" % srv.port
                                  if url.startswith("http:") else
                                  "https://127.0.0.1:%d/json" % srv.tls_port)
                s = nghttp_settings(out)
                self.assertEqual(s.get("MAX_CONCURRENT_STREAMS"), 100, out)
                self.assertEqual(s.get("INITIAL_WINDOW_SIZE"), 256 * 1024, out)
                self.assertEqual(s.get("HEADER_TABLE_SIZE", 4096), 4096, out)
                self.assertEqual(s.get("MAX_HEADER_LIST_SIZE"), 8192, out)
                self.assertEqual(len(re.findall(r"recv \(stream_id=\d+\) :status: 200", out)),
                                 2, out)
                # -n discards the bodies: their DATA frames show (13 and 27 bytes)
                self.assertRegex(out, r"recv DATA frame <length=13, flags=0x01", out)
                self.assertRegex(out, r"recv DATA frame <length=27, flags=0x01", out)

    def test_flags(self):
        srv = self.start("--workers", "1", "--h2-max-streams", "7", "--h2-window", "100000",
                         "--h2-hpack-table", "1024", "--h2-max-header-list", "16K")
        out = self.nghttp("http://127.0.0.1:%d/plaintext" % srv.port)
        s = nghttp_settings(out)
        self.assertEqual(s.get("MAX_CONCURRENT_STREAMS"), 7, out)
        self.assertEqual(s.get("INITIAL_WINDOW_SIZE"), 100000, out)
        self.assertEqual(s.get("HEADER_TABLE_SIZE"), 1024, out)
        self.assertEqual(s.get("MAX_HEADER_LIST_SIZE"), 16384, out)
        # the same seen by our own client
        w = self.wire(srv.port)
        self.assertEqual(w.settings.get(S_MAX_CONCURRENT_STREAMS), 7)
        self.assertEqual(w.settings.get(S_INITIAL_WINDOW_SIZE), 100000)

    def test_max_streams_flag_enforced(self):
        # --h2-max-streams 7: advertised; 7 at once are served, the 8th breaks the connection
        srv = self.start("--workers", "1", "--h2-max-streams", "7")
        w = self.wire(srv.port)
        self.assertEqual(w.settings.get(S_MAX_CONCURRENT_STREAMS), 7)
        sids = w.requests_at_once("GET", "/delay/300", 7)
        for s in sids:
            self.assertStream(w.response(s), 200, b'{"delayed_ms":300}', w)
        w2 = self.wire(srv.port)
        w2.requests_at_once("GET", "/delay/300", 8)
        w2.read_until_closed()
        self.assertTrue(w2.goaways, w2.summary())
        self.assertEqual(err_name(w2.goaways[-1].error), err_name(PROTOCOL_ERROR), w2.goaways)


class Load(H2Case):
    def h2load(self, *args):
        need_tool("h2load")
        argv = ["h2load"] + [str(a) for a in args]
        if shutil.which("taskset") and (os.cpu_count() or 1) > 1:
            argv = ["taskset", "-c", "1"] + argv
        p = subprocess.run(argv, capture_output=True, timeout=240)
        out = (p.stdout + p.stderr).decode("utf-8", "replace")
        self.assertEqual(p.returncode, 0, "%s\n%s" % (" ".join(argv), out))
        return out

    def check(self, out, n):
        m = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(tuple(int(x) for x in m.groups()), (n, 0, 0, 0), out)
        m = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                      r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
        self.assertIsNotNone(m, out)
        self.assertEqual(tuple(int(x) for x in m.groups()), (n, n, n, n, 0, 0, 0), out)

    def test_h2load_h2c(self):
        srv = self.start("--workers", "1")
        before = h2_metrics(srv.port)
        out = self.h2load("-n", "20000", "-c", "8", "-m", "32",
                          "http://127.0.0.1:%d/plaintext" % srv.port)
        self.check(out, 20000)
        after = h2_metrics(srv.port)
        self.assertEqual(after["connections"] - before["connections"], 8, after)
        self.assertEqual(after["streams"] - before["streams"], 20000, after)

    def test_h2load_tls(self):
        srv = self.start_tls("--workers", "1")
        out = self.h2load("-n", "4000", "-c", "4", "-m", "16",
                          "https://127.0.0.1:%d/plaintext" % srv.tls_port)
        self.assertIn("Application protocol: h2", out)
        self.check(out, 4000)


# ---- streams of one connection ----------------------------------------------------------------

class Streams(H2Case):
    """testapp's routes (tests/integration/testapp.c), several streams on one connection."""

    def setUp(self):
        self.srv = self.start_app("--workers", "1", "--write-timeout", "60s")

    def test_deferred_responses_finish_out_of_order(self):
        c = self.lib(self.srv.port)
        delays = [750, 150, 450, 0, 300, 600]
        sids = {c.request("GET", "/later/%d" % ms): ms for ms in delays}
        c.wait(lambda: all(c.streams[s].done for s in sids), "every /later", 60)
        self.assertEqual([sids[s] for s in c.ended_order], sorted(delays),
                         "the order the streams ended in (by their delays)")
        for sid, ms in sids.items():
            st = c.streams[sid]
            self.assertStream(st, 200, b"later %d" % ms, c)
            self.assertEqual(st.header("x-worker"), "0", st)
            self.assertEqual(st.header("content-length"), str(len(b"later %d" % ms)), st)
        self.assertAppClean(self.srv, errors=0)

    def test_no_request_slot_costs_the_stream(self):
        # --max-conns 1: four request slots; the fifth waiting stream gets 503, the connection
        # and the four go on (over HTTP/1.1 the connection would close)
        srv = self.start_app("--workers", "1", "--max-conns", "1")
        c = self.lib(srv.port)
        sids = [c.request("GET", "/later/400") for _ in range(6)]
        c.wait(lambda: all(c.streams[s].done for s in sids), "every /later", 60)
        got = sorted(c.streams[s].status for s in sids)
        self.assertEqual(got, [200] * 4 + [503] * 2, [c.streams[s] for s in sids])
        self.assertStream(c.response(c.request("GET", "/greeting")), 200, b"hello", c)

    def test_many_interleaved_streams(self):
        # 60 deferred responses with three delays plus synchronous ones between them
        c = self.lib(self.srv.port)
        want = {}
        for i in range(60):
            ms = (0, 200, 400)[i % 3]
            want[c.request("GET", "/later/%d" % ms)] = (200, b"later %d" % ms)
            if i % 10 == 0:
                want[c.request("GET", "/greeting")] = (200, b"hello")
                want[c.request("GET", "/status/404")] = (404, b"status 404")
        c.wait(lambda: all(c.streams[s].done for s in want), "every stream", 60)
        for sid, (status, body) in want.items():
            self.assertStream(c.streams[sid], status, body, c)
        ends = [bytes(c.streams[s].data) for s in c.ended_order if s in want]
        later = [b for b in ends if b.startswith(b"later")]
        self.assertEqual(later, sorted(later, key=lambda b: int(b.split()[1])))

    def test_reset_while_waiting(self):
        c = self.lib(self.srv.port)
        before = h2_metrics(self.srv.port)
        hang = c.request("GET", "/hang")
        slow = c.request("GET", "/later/5000")
        done = c.request("GET", "/later/1500")
        self.wait_stat(self.srv, "waiting", 3)
        c.reset(hang, CANCEL)
        self.wait_stat(self.srv, "aborts", 1)
        c.reset(slow, CANCEL)
        self.wait_stat(self.srv, "aborted", 2)
        # the connection goes on
        self.assertStream(c.get("/greeting"), 200, b"hello", c)
        self.assertStream(c.response(done), 200, b"later 1500", c)
        self.assertIsNone(c.goaway)
        self.assertEqual(c.streams[hang].status, None)
        c.close()
        # the close aborts nothing more: wait until the connection is gone, then count again
        wait_until(lambda: self.srv.stats()["open"] <= 1, what="the h2 connection closed")
        self.assertAppClean(self.srv, aborts=1, aborted=2, waiting=0)
        after = h2_metrics(self.srv.port)
        self.assertEqual(after["resets"] - before["resets"], 2, after)

    def test_streamed_responses_arrive_whole(self):
        c = self.lib(self.srv.port, timeout=60)
        sids = {c.request("GET", "/stream?mb=4"): (4 * MIB, None),
                c.request("GET", "/stream-len?mb=4"): (4 * MIB, str(4 * MIB)),
                c.request("GET", "/pattern/2048"): (2 * MIB, str(2 * MIB)),
                c.request("GET", "/stream?mb=0"): (0, None),
                c.request("GET", "/stream-len?mb=0"): (0, "0")}
        g = c.request("GET", "/greeting")
        c.wait(lambda: all(c.streams[s].done for s in sids), "the streams", 120)
        for sid, (size, length) in sids.items():
            st = c.streams[sid]
            self.assertStream(st, 200, None, c)
            self.assertEqual(len(st.data), size, st)
            self.assertTrue(pattern_ok(st.data), "stream %d: the body is not the pattern" % sid)
            self.assertEqual(st.header("content-length"), length, st)
            self.assertIsNone(st.header("transfer-encoding"), st)
        self.assertStream(c.response(g), 200, b"hello", c)
        self.assertAppClean(self.srv, stream_aborts=0, waiting=0)

    def small_window(self, path, size):
        """A client window of 1024 bytes: coil sends exactly that much and waits; after a
        WINDOW_UPDATE the rest comes."""
        c = self.lib(self.srv.port, timeout=60, auto_ack=False,
                     settings={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1024})
        sid = c.request("GET", path)
        st = c.stream(sid)
        c.wait(lambda: len(st.data) >= 1024, "the first 1024 bytes of %s" % path)
        time.sleep(SETTLE)
        c.ping_roundtrip()  # anything sent before the PING's answer has been read now
        self.assertEqual(len(st.data), 1024, "coil sent past a 1024-byte window: %r" % st)
        self.assertFalse(st.done, st)
        self.assertTrue(pattern_ok(st.data), st)
        # open the windows: the rest comes
        c.h2.increment_flow_control_window(64 * MIB, stream_id=sid)
        c.h2.increment_flow_control_window(64 * MIB)
        c.auto_ack = True
        c.flush()
        c.response(sid, 120)
        self.assertStream(st, 200, None, c)
        self.assertEqual(len(st.data), size, st)
        self.assertTrue(pattern_ok(st.data), "%s: the body is not the pattern" % path)
        # and the connection goes on with the small window for new streams
        self.assertStream(c.get("/greeting"), 200, b"hello", c)

    def test_small_window_stream(self):
        self.small_window("/stream?mb=1", MIB)

    def test_small_window_stream_len(self):
        self.small_window("/stream-len?mb=1", MIB)

    def test_small_window_big_sync_response(self):
        self.small_window("/pattern/1024", MIB)

    def test_head(self):
        w = self.wire(self.srv.port)
        for path, length in (("/greeting", "5"), ("/stream-len?mb=1", str(MIB)),
                             ("/pattern/4", "4096")):
            with self.subTest(path=path):
                st = w.response(w.request("HEAD", path))
                self.assertStream(st, 200, b"", w)
                self.assertEqual(st.header("content-length"), length, st)
                self.assertTrue(st.head_ended, "HEAD: END_STREAM not on the HEADERS: %r" % st)
                self.assertEqual(st.data_frames, 0, st)
        self.assertStream(w.response(w.request("GET", "/greeting")), 200, b"hello", w)

    def test_response_headers(self):
        # lower-case names, no connection-specific fields, date and server, on every kind
        # of answer
        w = self.wire(self.srv.port)
        paths = [("GET", "/greeting", 200), ("GET", "/later/0", 200), ("GET", "/stream?mb=0", 200),
                 ("GET", "/stream-len?mb=0", 200), ("GET", "/status/204", 204),
                 ("GET", "/status/304", 304), ("GET", "/status/503", 503),
                 ("GET", "/no/such/path", 404), ("DELETE", "/greeting", 405),
                 ("GET", "/defer-fail", 500), ("GET", "/huge/copy", 500),
                 ("HEAD", "/greeting", 200),
                 # a streamed head that ends the stream closes it at once: the request must
                 # outlive that (it was freed under coil_res_stream; fuzz_http1 found it)
                 ("HEAD", "/stream?mb=1", 200), ("HEAD", "/stream-len?mb=1", 200)]
        for method, path, status in paths:
            with self.subTest(path=path):
                st = w.response(w.request(method, path))
                self.assertStream(st, status, None)
                names = [n for n, _ in st.headers]
                self.assertEqual(names, [n.lower() for n in names], st)
                for n in CONNECTION_HEADERS:
                    self.assertNotIn(n, names, st)
                self.assertEqual(st.header("server"), "coil", st)
                self.assertEqual(len(st.header_all("date")), 1, st)
                if status in (204, 304) or method == "HEAD":
                    self.assertEqual(len(st.data), 0, st)
                if status == 405:
                    self.assertIsNotNone(st.header("allow"), st)
        self.assertEqual(w.problems, [])
        # the streamed HEADs ended whole: their requests were not aborted under them
        self.assertAppClean(self.srv, stream_aborts=0, waiting=0)

    def test_window_overflow(self):
        # a stream's window past 2^31-1: that stream (or the connection) ends in
        # FLOW_CONTROL_ERROR
        w = self.wire(self.srv.port)
        sid = w.request("GET", "/later/3000")
        self.wait_stat(self.srv, "waiting", 1)
        w.window_update(sid, MAX_WINDOW)
        w.wait(lambda: w.streams[sid].reset is not None or w.goaways, "a reset or a GOAWAY")
        if w.goaways:
            self.assertEqual(w.goaways[-1].error, FLOW_CONTROL_ERROR, w.goaways)
        else:
            self.assertEqual(w.streams[sid].reset, FLOW_CONTROL_ERROR, w.streams[sid])
            self.assertStream(w.response(w.request("GET", "/greeting")), 200, b"hello", w)
        # the connection's window: a connection error
        w2 = self.wire(self.srv.port)
        w2.window_update(0, MAX_WINDOW)
        w2.read_until_closed()
        self.assertTrue(w2.goaways, "no GOAWAY: %s" % w2.summary())
        self.assertEqual(w2.goaways[-1].error, FLOW_CONTROL_ERROR, w2.goaways)
        # a window already at its maximum, raised by 1 on an open stream
        w3 = self.wire(self.srv.port)
        sid = w3.request("GET", "/later/3000")
        w3.window_update(sid, MAX_WINDOW - 65535)
        w3.window_update(sid, 1)
        w3.wait(lambda: w3.streams[sid].reset is not None or w3.goaways, "a reset or a GOAWAY")
        code = w3.goaways[-1].error if w3.goaways else w3.streams[sid].reset
        self.assertEqual(code, FLOW_CONTROL_ERROR, w3.summary())
        self.assertAppClean(self.srv)


# ---- request bodies -------------------------------------------------------------------------

class Bodies(H2Case):
    def setUp(self):
        self.srv = self.start_app("--workers", "1", "--max-body-bytes", "64K")

    def test_bodies_on_many_streams_at_once(self):
        c = self.lib(self.srv.port, timeout=60)
        expect = {}
        bodies = {}
        for i in range(3):
            b = os.urandom(60000 - i)
            sid = c.request("POST", "/small", [("content-length", str(len(b)))], end=False)
            bodies[sid], expect[sid] = b, b"%d %d" % (len(b), checksum(b))
            b = os.urandom(3 * MIB + i)
            sid = c.request("POST", "/big", [("content-length", str(len(b)))], end=False)
            bodies[sid], expect[sid] = b, b"%d %d" % (len(b), checksum(b))
            b = os.urandom(2 * MIB + 7 * i)
            sid = c.request("POST", "/stream", end=False)  # no content-length
            bodies[sid], expect[sid] = b, ("stream", len(b), checksum(b))
            b = os.urandom(700 * 1024 + i)
            sid = c.request("POST", "/early", [("content-length", str(len(b)))], end=False)
            bodies[sid], expect[sid] = b, b"%d %d" % (len(b), checksum(b))
            b = os.urandom(60000 + i)  # under --max-body-bytes 64K
            sid = c.request("POST", "/echo-later/%d?q=v%d" % (100 * i, i),
                            [("x-tag", "t%d" % i)], end=False)
            bodies[sid], expect[sid] = b, ("echo", b, "t%d" % i, "v%d" % i)
            sid = c.request("POST", "/early", end=True)  # no body at all
            expect[sid] = b"0 0"
        whole = c.send_bodies(bodies)
        self.assertEqual(sorted(whole), sorted(bodies), "bodies the server cut short")
        c.wait(lambda: all(c.streams[s].done for s in expect), "every answer", 120)
        for sid, want in expect.items():
            st = c.streams[sid]
            with self.subTest(stream=sid):
                self.assertStream(st, 200, None, c)
                if isinstance(want, bytes):
                    self.assertEqual(bytes(st.data), want, st)
                elif want[0] == "stream":
                    n, s, pieces = bytes(st.data).split()
                    self.assertEqual((int(n), int(s)), want[1:], st)
                    self.assertGreaterEqual(int(pieces), 1)
                else:
                    self.assertTrue(bytes(st.data) == want[1], "echo-later body differs: %r" % st)
                    self.assertEqual(st.header("x-tag"), want[2], st)
                    self.assertEqual(st.header("x-q"), want[3], st)
                    self.assertTrue(st.header("x-path").startswith("/echo-later/"), st)
        self.assertAppClean(self.srv, waiting=0)

    def test_demo_echo_on_many_streams(self):
        srv = self.start("--workers", "1")
        c = self.lib(srv.port, timeout=60)
        bodies = {}
        for i in range(20):
            b = os.urandom(1000 * i + 1)
            bodies[c.request("POST", "/echo", [("content-type", "application/x-%d" % i),
                                               ("content-length", str(len(b)))], end=False)] = b
        c.send_bodies(bodies, piece=700)
        for i, (sid, b) in enumerate(bodies.items()):
            st = c.response(sid)
            self.assertStream(st, 200, None, c)
            self.assertTrue(bytes(st.data) == b, "stream %d's echo differs" % sid)
            self.assertEqual(st.header("content-type"), "application/x-%d" % i)

    def test_body_over_route_limit_413(self):
        c = self.lib(self.srv.port, timeout=60)
        cases = [
            ("/small", 70000, True),         # --max-body-bytes 64K, declared
            ("/small", 70000, False),        # ... found out while reading
            ("/big", 4 * MIB + 1, True),     # the route's own 4 MiB
            ("/big", 4 * MIB + 1, False),
            ("/early", MIB + 1, True),       # early route, 1 MiB
            ("/early", MIB + 1, False),
        ]
        for path, size, declared in cases:
            with self.subTest(path=path, size=size, declared=declared):
                headers = [("content-length", str(size))] if declared else []
                sid = c.request("POST", path, headers, end=False)
                c.send_bodies({sid: b"z" * size})
                st = c.response(sid)
                self.assertIsNone(st.reset, st)
                self.assertEqual(st.status, 413, st)
                self.assertStream(c.get("/greeting"), 200, b"hello", c)
        # within the limits, on the same connection
        sid = c.request("POST", "/small", body=b"q" * 65536)
        self.assertStream(c.response(sid), 200, b"65536 %d" % checksum(b"q" * 65536), c)
        self.assertIsNone(c.goaway)
        self.assertAppClean(self.srv, waiting=0)

    def test_request_trailers(self):
        c = self.lib(self.srv.port)
        body = b"trailing body " * 100
        for path, want in (("/small", b"%d %d" % (len(body), checksum(body))),
                           ("/early", b"%d %d" % (len(body), checksum(body))),
                           ("/echo-later/0", body)):
            with self.subTest(path=path):
                sid = c.request("POST", path, body=body,
                                trailers=[("x-checksum", "abc"), ("x-more", "1")])
                st = c.response(sid)
                self.assertStream(st, 200, want if path != "/stream" else None, c)
        sid = c.request("POST", "/stream", body=body, trailers=[("x-checksum", "abc")])
        st = c.response(sid)
        self.assertStream(st, 200, None, c)
        self.assertEqual(bytes(st.data).split()[:2],
                         [b"%d" % len(body), b"%d" % checksum(body)], st)
        # trailers right after the head: an empty body
        sid = c.request("POST", "/small", trailers=[("x-checksum", "none")])
        self.assertStream(c.response(sid), 200, b"0 0", c)

    def test_content_length_mismatch(self):
        srv = self.start("--workers", "1")
        w = self.wire(srv.port)
        for declared, sent in ((10, 5), (3, 5), (0, 1)):
            with self.subTest(declared=declared, sent=sent):
                sid = w.request("POST", "/echo", [("content-length", str(declared))],
                                content_length=False, end=False)
                w.send_data(sid, b"x" * sent, end=True)
                st = w.response(sid)
                self.assertEqual(st.reset, PROTOCOL_ERROR, st)
                self.assertNotEqual(st.status, 200, st)
                self.assertStream(w.response(w.request("GET", "/plaintext")), 200, HELLO, w)
        self.assertEqual(w.goaways, [])

    def test_connection_specific_request_headers(self):
        srv = self.start("--workers", "1")
        w = self.wire(srv.port)
        bad = [("connection", "keep-alive"), ("keep-alive", "timeout=5"),
               ("proxy-connection", "keep-alive"), ("transfer-encoding", "chunked"),
               ("upgrade", "h2c"), ("te", "gzip"), ("X-Upper", "1")]
        for name, value in bad:
            with self.subTest(header=name):
                st = w.response(w.request("GET", "/plaintext", [(name, value)]))
                self.assertEqual(st.reset, PROTOCOL_ERROR, st)
                self.assertIsNone(st.status, st)
                self.assertStream(w.response(w.request("GET", "/plaintext")), 200, HELLO, w)
        # te: trailers is the one allowed
        st = w.response(w.request("GET", "/plaintext", [("te", "trailers")]))
        self.assertStream(st, 200, HELLO, w)
        self.assertEqual(w.goaways, [])


# ---- abuse ----------------------------------------------------------------------------------

class Attacks(H2Case):
    """Each attack on a connection of its own, on the one worker that also serves an honest
    connection; after each, that kind of abuse is counted once in coil_h2_abuse_total."""

    def setUp(self):
        env = None
        if SANITIZED:
            # ASan's quarantine would count every freed buffer as growth (see test_wait_stream)
            opts = os.environ.get("ASAN_OPTIONS", "")
            env = {"ASAN_OPTIONS": (opts + ":" if opts else "") + "quarantine_size_mb=4"}
        self.srv = self.start("--workers", "1", env=env)
        self.before = h2_metrics(self.srv.port)
        self.honest = Honest(self.srv.port).start()
        self.addCleanup(self.honest.stop)

    def flood(self, data, setup=None, read_during=True):
        """A new connection sends data (from a thread) while we read until coil closes it;
        returns (the Wire, bytes the thread had sent when the first GOAWAY was read, or None).
        (Not what was sent in all: after its GOAWAY coil reads and discards input for a while,
        the lingering close, so that the peer sees the GOAWAY before any reset.)
        read_during=False: nothing is read until the whole flood was sent (or the send failed),
        like a client that never reads what it is sent."""
        w = Wire(self.srv.port, timeout=60)
        self.addCleanup(w.close)
        if setup:
            setup(w)
        w.quiet()
        sent = {"n": 0, "error": None, "at_goaway": None}

        def goaway_seen(g):
            if sent["at_goaway"] is None:
                sent["at_goaway"] = sent["n"]

        w.on_goaway = goaway_seen

        def send():
            view = memoryview(data)
            try:
                while view:
                    n = w.sock.send(view[:1 << 16])
                    sent["n"] += n
                    view = view[n:]
            except OSError as e:
                sent["error"] = e

        t = threading.Thread(target=send, daemon=True)
        t.start()
        if not read_during:
            t.join(90)
        w.read_until_closed()
        t.join(30)
        self.assertFalse(t.is_alive(), "the flood's sender did not end after the close")
        return w, sent["at_goaway"]

    def assertCalmedDown(self, w, kind, code=None):
        """GOAWAY (with code, else any error but NO_ERROR), the close, the honest connection
        served throughout, the kind counted once."""
        self.assertTrue(w.goaways, "no GOAWAY before the close (%s): %s"
                        % (w.closed_how, w.summary()))
        g = w.goaways[-1]
        if code is None:
            self.assertNotEqual(g.error, NO_ERROR, w.goaways)
        else:
            self.assertEqual(err_name(g.error), err_name(code), w.goaways)
        self.assertIsNotNone(w.closed_how)
        self.honest.finish(self)
        delta, after = self.abuse_delta(self.srv, self.before, kind)
        self.assertEqual(delta, 1, "coil_h2_abuse_total{kind=%r} went up by %s; abuse now %r; "
                         "GOAWAY %r" % (kind, delta, after["abuse"], w.goaways))
        self.assertEqual(after["types"].get("coil_h2_abuse_total"), "counter", after["types"])
        self.assertTrue(self.srv.running())

    def test_rapid_reset(self):
        enc_w = Wire(self.srv.port, timeout=60)
        self.addCleanup(enc_w.close)
        enc_w.quiet()
        out = bytearray()
        for i in range(2000):
            sid = 1 + 2 * i
            block = enc_w.encode(enc_w.request_fields("GET", "/delay/10000"))
            out += frame(HEADERS, F_END_HEADERS | F_END_STREAM, sid, block)
            out += frame(RST_STREAM, 0, sid, struct.pack(">I", CANCEL))
        sender = threading.Thread(target=lambda: self._send_ignoring(enc_w, bytes(out)),
                                  daemon=True)
        sender.start()
        enc_w.read_until_closed()
        sender.join(30)
        self.assertCalmedDown(enc_w, "rapid_reset")
        resets = h2_metrics(self.srv.port)["resets"] - self.before["resets"]
        self.assertGreaterEqual(resets, 1)
        self.assertLessEqual(resets, 2000)

    def _send_ignoring(self, w, data):
        try:
            w.sock.sendall(data)
        except OSError:
            pass

    def test_continuation_flood(self):
        field_size = 4096
        value_len = field_size - 1 - 1 - len(b"x-flood") - 3
        field = hpack_literal(b"x-flood", b"v" * value_len)
        self.assertEqual(len(field), field_size)
        piece = field * (16384 // field_size)
        nframes = 2048 if SANITIZED else 4096  # 32 or 64 MiB of header block
        baseline = vm_rss_kib(self.srv.pid)
        samples = []
        sampling = threading.Event()

        def sample():
            while not sampling.is_set():
                samples.append(vm_rss_kib(self.srv.pid))
                time.sleep(0.02)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()

        def setup(w):
            first = w.encode(w.request_fields("GET", "/plaintext"))
            w.send_frame(HEADERS, F_END_STREAM, 1, first)  # no END_HEADERS

        one = frame(CONTINUATION, 0, 1, piece)
        data = one * nframes
        w, sent = self.flood(data, setup)
        sampling.set()
        sampler.join(10)
        samples.append(vm_rss_kib(self.srv.pid))
        # nghttp2 stops a header block after 8 CONTINUATION frames: the GOAWAY comes while
        # most of the flood is still to be sent (what sits in socket buffers aside)
        self.assertIsNotNone(sent, "no GOAWAY: %s" % w.summary())
        self.assertLess(sent, 16 * MIB, "the GOAWAY came only after %d MiB of CONTINUATION "
                        "frames had been sent" % (sent >> 20))
        growth = (max(samples) - baseline) / 1024
        self.assertLess(growth, 16, "server RSS grew by %.0f MiB (baseline %d KiB)"
                        % (growth, baseline))
        self.assertNotIn(1, [s for s in w.streams if w.streams[s].status], w.summary())
        self.assertCalmedDown(w, "continuation")

    def test_ping_flood(self):
        data = b"".join(frame(PING, 0, 0, struct.pack(">Q", i)) for i in range(5000))
        w, _ = self.flood(data, read_during=False)
        self.assertLess(len(w.ping_acks), 5000, "every PING was answered")
        self.assertCalmedDown(w, "ping", ENHANCE_YOUR_CALM)

    def test_settings_flood(self):
        one = frame(SETTINGS, 0, 0, settings_payload({S_ENABLE_PUSH: 0}))
        w, _ = self.flood(one * 5000, read_during=False)
        self.assertCalmedDown(w, "settings", ENHANCE_YOUR_CALM)

    def test_priority_flood(self):
        prio = struct.pack(">IB", 0, 15)
        data = b"".join(frame(PRIORITY, 0, 3 + 2 * i, prio) for i in range(5000))
        w, _ = self.flood(data)
        self.assertCalmedDown(w, "priority", ENHANCE_YOUR_CALM)

    def test_empty_data_flood(self):
        def setup(w):
            w.request("POST", "/echo", end=False)

        w, _ = self.flood(frame(DATA, 0, 1) * 5000, setup)
        self.assertCalmedDown(w, "empty_data", ENHANCE_YOUR_CALM)

    def test_more_than_100_streams(self):
        # A client that opens more streams than the limit it acknowledged breaks the protocol:
        # nghttp2 makes that a connection error (RFC 9113 5.4.1 allows treating the stream error
        # as one), GOAWAY PROTOCOL_ERROR, counted as max_streams; the honest connection is served.
        w = self.wire(self.srv.port, timeout=60)
        self.assertEqual(w.settings.get(S_MAX_CONCURRENT_STREAMS), 100)
        sids = w.requests_at_once("GET", "/delay/1500", 110)
        w.read_until_closed()
        self.assertCalmedDown(w, "max_streams", PROTOCOL_ERROR)
        self.assertLess(w.goaways[-1].last_stream_id, sids[100], w.goaways)
        # within the limit, the same client is served
        w2 = self.wire(self.srv.port, timeout=60)
        sids = w2.requests_at_once("GET", "/delay/200", 100)
        for s in sids:
            self.assertStream(w2.response(s), 200, b'{"delayed_ms":200}', w2)
        self.assertEqual(w2.goaways, [])

    def test_header_list_over_limit(self):
        w = self.wire(self.srv.port)
        self.assertEqual(w.settings.get(S_MAX_HEADER_LIST_SIZE), 8192)
        sid = w.request("GET", "/plaintext", [("x-big", "b" * 9000)], never_index=True)
        st = w.response(sid)
        self.assertTrue(st.status == 431 or st.reset is not None,
                        "a 9000-byte header got %r" % st)
        # 150 small headers (over --max-headers 100)
        sid = w.request("GET", "/plaintext", [("x-h%d" % i, "v") for i in range(150)],
                        never_index=True)
        st = w.response(sid)
        self.assertTrue(st.status == 431 or st.reset is not None,
                        "150 headers got %r" % st)
        # the connection survives, and a header list within the limit is fine
        self.assertStream(w.response(w.request("GET", "/plaintext", [("x-ok", "o" * 4000)],
                                               never_index=True)), 200, HELLO, w)
        self.assertEqual(w.goaways, [])
        self.honest.finish(self)


class Stall(H2Case):
    """A client whose window stays 0 longer than --write-timeout."""

    def test_stream_window_zero(self):
        srv = self.start("--workers", "1", "--write-timeout", "1s")
        before = h2_metrics(srv.port)
        honest = Honest(srv.port).start()
        self.addCleanup(honest.stop)
        w = self.wire(srv.port, timeout=30, settings={S_INITIAL_WINDOW_SIZE: 0},
                      auto_window=False)
        sid = w.request("GET", "/plaintext")
        st = w.response(sid, timeout=30)
        self.assertIsNotNone(st.reset, "the stalled stream was not reset: %r" % st)
        self.assertEqual(len(st.data), 0, st)
        self.assertEqual(w.problems, [])
        honest.finish(self)
        delta, after = self.abuse_delta(srv, before, "stall")
        self.assertEqual(delta, 1, after["abuse"])

    def test_connection_window_zero(self):
        srv = self.start_app("--workers", "1", "--write-timeout", "1s")
        before = h2_metrics(srv.port)
        w = self.wire(srv.port, timeout=30, settings={S_INITIAL_WINDOW_SIZE: 16 * MIB},
                      auto_window=False)
        sid = w.request("GET", "/pattern/256")
        st = w.stream(sid)
        w.wait(lambda: len(st.data) >= 65535, "the connection window's worth")
        w.wait(lambda: st.reset is not None or w.goaways or w.closed_how, "the stall's end", 30)
        self.assertEqual(len(st.data), 65535, st)
        self.assertEqual(w.problems, [])
        self.assertFalse(st.ended, st)
        delta, after = self.abuse_delta(srv, before, "stall")
        self.assertGreaterEqual(delta, 1, after["abuse"])
        r = self.connect(srv).request("GET", "/greeting")
        self.assertEqual((r.status, r.body), (200, b"hello"))


# ---- drain ----------------------------------------------------------------------------------

class Drain(H2Case):
    def test_sigterm_with_stream_in_flight(self):
        srv = self.start_app("--workers", "1", "--drain-timeout", "20s")
        w = self.wire(srv.port, timeout=30)
        self.assertStream(w.response(w.request("GET", "/greeting")), 200, b"hello", w)
        sid = w.request("GET", "/later/1500")
        self.wait_stat(srv, "waiting", 1)
        srv.send_signal(signal.SIGTERM)
        st = w.response(sid, timeout=30)
        self.assertStream(st, 200, b"later 1500", w)
        w.read_until_closed()
        self.assertTrue(w.goaways, "no GOAWAY: %s" % w.summary())
        self.assertEqual([g.error for g in w.goaways], [NO_ERROR] * len(w.goaways), w.goaways)
        self.assertEqual(w.goaways[0].last_stream_id, MAX_WINDOW, w.goaways)
        self.assertGreaterEqual(len(w.goaways), 2, w.goaways)
        self.assertEqual(w.goaways[-1].last_stream_id, sid, w.goaways)
        # the first GOAWAY came before the stream's end
        first_goaway = next(i for i, f in enumerate(w.log) if f[0] == GOAWAY)
        end = next(i for i, f in enumerate(w.log) if f[2] == sid and f[1] & F_END_STREAM
                   and f[0] in (DATA, HEADERS))
        self.assertLess(first_goaway, end, w.summary())
        self.assertEqual(srv.wait_exit(30), 0, srv.log_text())
        self.assertEqual(srv.sanitizer_lines(), [])


# ---- the handler features, per stream ---------------------------------------------------------

class Features(H2Case):
    def test_proxy_h2_in_front_of_http11(self):
        up = self.start("--workers", "1")
        front = self.start("--workers", "1", "--proxy", "/up/=http://127.0.0.1:%d/" % up.port)
        c = self.lib(front.port, timeout=60)
        body = os.urandom(200 * 1024)
        sids = {c.request("GET", "/up/plaintext"): HELLO,
                c.request("POST", "/up/echo", [("content-type", "application/octet-stream"),
                                               ("content-length", str(len(body)))],
                          body=body): body}
        for i in range(10):
            sids[c.request("GET", "/up/delay/%d" % (50 * i))] = b'{"delayed_ms":%d}' % (50 * i)
        for sid, want in sids.items():
            st = c.response(sid)
            self.assertStream(st, 200, None, c)
            self.assertTrue(bytes(st.data) == want, "stream %d: %r" % (sid, st))

    def test_static_files(self):
        d = tempfile.mkdtemp(dir=_tmp)
        blob = os.urandom(300 * 1024)
        with open(os.path.join(d, "a.bin"), "wb") as f:
            f.write(blob)
        with open(os.path.join(d, "s.css"), "w") as f:
            f.write("body { color: red }\n" * 100)
        srv = self.start("--workers", "1", "--static", "/s/=" + d)
        w = self.wire(srv.port)
        st = w.response(w.request("GET", "/s/a.bin"))
        self.assertStream(st, 200, None, w)
        self.assertTrue(bytes(st.data) == blob, "the static file differs: %r" % st)
        self.assertEqual(st.header("content-length"), str(len(blob)))
        st = w.response(w.request("GET", "/s/a.bin", [("range", "bytes=100-199")]))
        self.assertStream(st, 206, blob[100:200], w)
        self.assertEqual(st.header("content-range"), "bytes 100-199/%d" % len(blob))
        st = w.response(w.request("HEAD", "/s/s.css"))
        self.assertStream(st, 200, b"", w)
        self.assertEqual(st.header("content-type").split(";")[0], "text/css", st)
        self.assertEqual(st.data_frames, 0)
        st = w.response(w.request("GET", "/s/nope"))
        self.assertStream(st, 404, None, w)

    def test_compression(self):
        srv = self.start("--workers", "1", "--compress", "gzip")
        w = self.wire(srv.port)
        text = b"compress me, please; " * 1000
        st = w.response(w.request("POST", "/echo", [("content-type", "text/plain"),
                                                    ("accept-encoding", "gzip")], body=text))
        self.assertStream(st, 200, None, w)
        self.assertEqual(st.header("content-encoding"), "gzip", st)
        self.assertEqual(gzip.decompress(bytes(st.data)), text)
        self.assertLess(len(st.data), len(text))
        st = w.response(w.request("POST", "/echo", [("content-type", "text/plain")], body=text))
        self.assertStream(st, 200, text, w)
        self.assertIsNone(st.header("content-encoding"))

    def test_cors_middleware_and_events(self):
        srv = self.start("--workers", "1", "--cors-origins", "https://app.test")
        w = self.wire(srv.port)
        st = w.response(w.request("GET", "/plaintext", [("origin", "https://app.test")]))
        self.assertStream(st, 200, HELLO, w)
        self.assertEqual(st.header("access-control-allow-origin"), "https://app.test", st)
        st = w.response(w.request("OPTIONS", "/plaintext", [
            ("origin", "https://app.test"), ("access-control-request-method", "GET")]))
        self.assertIn(st.status, (200, 204), st)
        self.assertEqual(st.header("access-control-allow-origin"), "https://app.test", st)
        # server-sent events: a streamed deferred response, two at once
        a = w.request("GET", "/events?n=5&every=50")
        b = w.request("GET", "/events?n=3&every=0")
        events = lambda n: b"".join(b'id: %d\ndata: {"n":%d}\n\n' % (i, i)
                                    for i in range(1, n + 1))
        self.assertStream(w.response(a), 200, events(5), w)
        self.assertStream(w.response(b), 200, events(3), w)
        self.assertEqual(w.streams[a].header("content-type"), "text/event-stream")
        self.assertIsNotNone(w.streams[a].header("x-request-id"))

    def test_metrics_count_connections_and_streams(self):
        srv = self.start("--workers", "2")
        before = h2_metrics(srv.port)
        for _ in range(3):
            w = Wire(srv.port)
            for _ in range(4):
                self.assertStream(w.response(w.request("GET", "/plaintext")), 200, HELLO, w)
            w.close()
        wait_until(lambda: h2_metrics(srv.port)["streams"] - before["streams"] >= 12,
                   what="the streams counted")
        after = h2_metrics(srv.port)
        self.assertEqual(after["connections"] - before["connections"], 3, after)
        self.assertEqual(after["streams"] - before["streams"], 12, after)
        for name, kind in (("coil_h2_connections_total", "counter"),
                           ("coil_h2_streams_total", "counter"),
                           ("coil_h2_resets_received_total", "counter"),
                           ("coil_h2_abuse_total", "counter")):
            self.assertEqual(after["types"].get(name), kind, after["types"])
        # HTTP/1.1 requests are not h2 streams
        self.connect(srv).request("GET", "/plaintext")
        self.assertEqual(h2_metrics(srv.port)["streams"], after["streams"])


if __name__ == "__main__":
    main()
