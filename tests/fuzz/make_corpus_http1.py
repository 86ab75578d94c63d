#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the seed corpus of fuzz_http1 (tests/fuzz/corpus_http1/): programs in the encoding
described at the top of fuzz_http1.c. Run it again after changing the encoding:
    python3 tests/fuzz/make_corpus_http1.py
The h2_* seeds speak HTTP/2 with prior knowledge in RAW bytes (frames built here, header blocks
encoded with the hpack package: Debian's python3-hpack); without hpack they are left as they
are.
"""
import os
import struct
import sys

try:
    import hpack
except ImportError:
    # pyenv's python3 (or a venv), first in PATH, does not see Debian's packages
    sys.path.append('/usr/lib/python3/dist-packages')
    try:
        import hpack
    except ImportError:
        hpack = None

ACCEPT, SELECT, RAW, REQ, RECV, RECV_ALL, CLOCK, SEND, SEND_ALL, EOF, RESET, BATCH, DRAIN, \
    FORCE, ENOBUFS, SQEFAIL, SEND_ERR, PUMP, ALLOCFAIL = range(19)

# routes (enum route in fuzz_http1.c)
TEXT, JSON, ECHO, UPLOAD, DEFER, NOW, STREAM, HANG, ENOMEM, UNOWNED, NOPE, DELETE, SMALL, \
    PARAM, FAIL, STREAMNOW, EARLY, EARLYNOW = range(18)

# REQ flags
F_HEAD, F_10, F_CLOSE, F_KA, F_EXPECT, F_CHUNKED, F_BIG, F_FILL = (1 << i for i in range(8))

# EARLY operand b (op_req in fuzz_http1.c): the reader's pause mode (0 never, 1 every other
# call, 2 each new piece once, 3 the first piece twice), the resume timer (stream_ms), answer
# from a timer after the end, start reading from a timer, the 64-byte route /earlys; b & 128
# with a & 1: the handler returns -EIO after coil_req_read.
def early_b(pause=0, rms=0, fin=False, late=False, small=False, rc=False):
    return pause | rms << 2 | fin << 4 | late << 5 | small << 6 | rc << 7


# EARLYNOW operands: b: the new piece it answers at (0: in the handler), fail, sync (no defer),
# -EIO from the handler, COIL_BODY_PAUSE from the answering call, answer from the timer of a
# pause at that piece; a: the fail status (400, 413, 502, 504), the pause mode, the resume timer.
def earlynow_ab(after=0, fail=None, sync=False, rc=False, pp=False, ap=False, pause=0, rms=0):
    b = after | (fail is not None) << 2 | sync << 3 | rc << 4 | pp << 5 | ap << 6
    a = (fail or 0) | pause << 2 | rms << 4
    return a, b


def req(route, flags=0, length=0, a=0, b=0, chunk=0):
    return bytes([REQ, route, flags]) + struct.pack('<H', length) + bytes([a, b, chunk])


def raw(data):
    return bytes([RAW]) + struct.pack('<H', len(data)) + data


def recv(n, race=False, last=False):
    """One recv completion of up to n bytes (n < 0x4000; 0: 16384); last: without
    IORING_CQE_F_MORE."""
    return bytes([RECV]) + struct.pack('<H', n | (0x8000 if race else 0) | (0x4000 if last else 0))


# SQEFAIL with the high bit: the multishot accept fails with one of these (accept_errs)
EMFILE, ENFILE, ENOBUFS_, ENOMEM_, ECONNABORTED, EINTR, EAGAIN, EPERM = range(8)


def accept_err(err, more=False):
    return bytes([SQEFAIL, 0x80 | err | (8 if more else 0)])


def recv_all(piece=0):
    return bytes([RECV_ALL, piece])


def clock(t):
    return bytes([CLOCK, t])


def send(k=0):
    return bytes([SEND]) + struct.pack('<H', k)


def op(*codes):
    return bytes(codes)


def ms(n):
    """The CLOCK operand for about n milliseconds (see ms_of in fuzz_http1.c)."""
    if n < 64:
        return n
    if n < 6400:
        return 64 + n // 100
    if n < 64000:
        return 128 + n // 1000
    return min(255, 192 + n // 10000)


SEEDS = {
    'pipelined_gets': req(TEXT) + req(JSON, a=5) + req(TEXT, F_HEAD) + req(PARAM, a=0x41, b=1)
    + req(TEXT, F_CLOSE) + op(PUMP),
    'chunked_post_small_pieces': req(ECHO, F_CHUNKED, 300, chunk=7) + req(ECHO, 0, 40)
    + recv_all(3) + op(BATCH, SEND_ALL, PUMP),
    'expect_100_continue': req(ECHO, F_EXPECT, 2000) + recv(60) + op(BATCH) + send(10)
    + op(SEND_ALL) + recv_all(100) + op(PUMP),
    'deferred_pipelined': req(DEFER, 0, 0, a=20) + req(TEXT) + req(DEFER, 0, 500, a=5, b=4)
    + req(UNOWNED, a=3) + req(DEFER, 0, 0, a=1, b=3) + op(PUMP)
    + (clock(ms(30)) + op(SEND_ALL, PUMP)) * 4,
    'stream_timers_chunked': req(STREAM, a=5, b=4 | (2 << 3)) + req(TEXT) + op(PUMP)
    + (clock(ms(10)) + op(SEND_ALL)) * 8 + op(PUMP),
    'stream_backpressure': req(STREAM, a=32, b=7) + req(STREAM, a=4, b=5 | (1 << 5)) + op(PUMP)
    + (send(5000) + op(BATCH)) * 6 + op(SEND_ALL, PUMP, SEND_ALL),
    'upload_streaming': req(UPLOAD, F_CHUNKED, 40000, chunk=100) + req(UPLOAD, 0, 65000, a=3, b=8)
    + recv_all(200) + op(BATCH) + clock(ms(10)) + op(SEND_ALL, PUMP)
    + req(UPLOAD, 0, 5000, a=2, b=1 | (2 << 1)) + op(PUMP),
    'hang_handler_timeout': req(HANG, b=1) + req(TEXT) + op(PUMP) + clock(ms(31000))
    + op(SEND_ALL, PUMP),
    'engine_answers': req(ENOMEM) + req(ENOMEM, b=1) + req(NOW) + req(NOW, b=1) + req(FAIL)
    + req(NOPE, a=9) + req(DELETE) + req(STREAMNOW) + req(JSON, b=1) + req(SMALL, 0, 10)
    + req(SMALL, 0, 100) + op(PUMP),
    'garbage': raw(b'GET /text HTTP/1.1\r\nHost: x\r\n\r\nGARBAGE \x00\xff\r\n\r\n') + op(PUMP)
    + op(ACCEPT) + raw(b'POST /echo HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nab')
    + op(PUMP) + clock(ms(31000)) + op(SEND_ALL, PUMP),
    'http10_stream_and_head': req(TEXT, F_10 | F_KA) + req(STREAM, F_10 | F_KA, a=3, b=2)
    + op(PUMP) + (clock(ms(1)) + op(SEND_ALL)) * 4 + op(ACCEPT) + req(STREAM, F_HEAD, a=2, b=2)
    + req(DEFER, F_HEAD, a=2) + op(PUMP) + (clock(ms(3)) + op(SEND_ALL)) * 3,
    'conns_drain_eof_reset': req(DEFER, a=50) + req(TEXT) + op(ACCEPT) + req(HANG) + op(ACCEPT)
    + req(TEXT) + op(EOF) + op(SELECT, 0) + recv_all() + op(SELECT, 1) + recv_all()
    + op(RESET) + op(SELECT, 2) + recv_all() + op(BATCH, DRAIN) + clock(ms(60))
    + op(SEND_ALL) + clock(ms(31000)) + op(SEND_ALL),
    'alloc_failures': op(ALLOCFAIL, 3) + req(DEFER, 0, 100, a=2, b=4) + req(STREAM, a=3, b=3)
    + op(PUMP) + clock(ms(5)) + op(ALLOCFAIL, 1) + op(SEND_ALL) + clock(ms(5)) + op(PUMP),
    'body_too_large': req(ECHO, F_BIG, 40000) + recv_all() + op(BATCH, SEND_ALL)
    + op(ACCEPT) + req(UPLOAD, F_CHUNKED | F_BIG, 60000, chunk=0) + op(PUMP),
    'pause_and_cancel_race': req(TEXT, 0, 0, a=255, b=8) + req(TEXT, 0, 0, a=255, b=8)
    + req(TEXT) + recv(0) + recv(100, race=True) + op(BATCH) + op(ENOBUFS) + send(1000)
    + op(SQEFAIL, 0, SEND_ALL, PUMP),
    # the listener: accept errors pause accepting (ACCEPT finds nothing armed) until the timer
    'accept_errors_pause': accept_err(EMFILE) + op(ACCEPT) + clock(ms(50)) + op(ACCEPT)
    + clock(ms(100)) + op(ACCEPT) + req(TEXT) + accept_err(ENFILE, more=True) + op(BATCH, ACCEPT)
    + clock(ms(200)) + accept_err(ECONNABORTED) + accept_err(EINTR, more=True) + accept_err(EPERM)
    + op(ACCEPT) + req(JSON) + op(PUMP),
    # a fifth connection while four are open: the engine refuses it (max_conns)
    'max_conns_refused': op(ACCEPT, ACCEPT, ACCEPT, ACCEPT) + op(SELECT, 3) + req(TEXT)
    + op(SELECT, 0) + req(TEXT) + op(PUMP, FORCE, BATCH, ACCEPT) + req(TEXT) + op(PUMP),
    # data completions that end the multishot recv (CQ overflow): it is re-armed
    'recv_without_more': req(ECHO, 0, 3000) + recv(100, last=True) + recv(1000) + recv(50, last=True)
    + op(BATCH) + recv(0, last=True) + req(UPLOAD, 0, 20000, a=1) + recv(5000, last=True)
    + op(PUMP),
    # the connection fails under coil_res_stream inside the handler (the flush list cannot
    # grow): -EPIPE, on_abort ran, res is gone (found by the fuzzer: the harness expected it not)
    'streamnow_conn_fails': req(STREAMNOW, F_HEAD | F_10, 63, a=11, b=7, chunk=0xf3)
    + op(ALLOCFAIL, 7) + recv_all(3),
    # the accept's cancel finds no SQE at the drain: a connection still arrives and is closed
    'drain_accept_race': req(DEFER, a=20) + op(RECV_ALL, 0, SQEFAIL, 0, DRAIN, ACCEPT, ACCEPT)
    + clock(ms(30)) + op(SEND_ALL, PUMP) + clock(ms(31000)) + op(SEND_ALL),
    # early routes (the handler runs at the head, then reads the body with coil_req_read):
    # pausing readers resumed by timers, Content-Length and chunked bodies, pipelined requests
    # held behind the body and answered after the early request
    'early_pipelined': req(EARLY, 0, 3000, b=early_b(pause=1)) + req(TEXT)
    + req(EARLY, F_CHUNKED, 2000, b=early_b(pause=2, rms=1), chunk=50) + req(ECHO, 0, 10)
    + req(EARLY, 0, 0, b=early_b(fin=True)) + req(JSON) + recv_all(100) + op(BATCH)
    + (clock(ms(1)) + op(SEND_ALL, PUMP)) * 8,
    'early_expect_100': req(EARLY, F_EXPECT, 5000, b=early_b(pause=3))
    + req(EARLY, F_EXPECT | F_CHUNKED, 700, chunk=13 | 0x80, b=early_b(pause=2, rms=2, fin=True))
    + req(TEXT) + recv(80) + op(BATCH) + op(SEND_ALL) + recv_all(200)
    + (clock(ms(10)) + op(SEND_ALL, PUMP)) * 6,
    # answered before the body is read: the connection closes after the answer and what was
    # pipelined behind the body is never parsed
    'early_answer_unread': req(EARLYNOW, 0, 4000, b=1) + req(TEXT) + recv_all(100) + op(PUMP)
    + op(ACCEPT) + req(EARLYNOW, F_CHUNKED, 500, chunk=20) + req(TEXT) + op(PUMP)
    + op(ACCEPT) + req(EARLYNOW, 0, 100, *earlynow_ab(sync=True)) + req(TEXT) + op(PUMP)
    + op(ACCEPT) + req(EARLYNOW, F_EXPECT, 30, *earlynow_ab(after=2)) + req(TEXT)
    + op(PUMP),
    'early_fail_pause_answer': req(EARLYNOW, 0, 3000, *earlynow_ab(after=2, fail=2))
    + req(TEXT) + recv_all(131) + op(PUMP)
    + op(ACCEPT) + req(EARLYNOW, 0, 2000, *earlynow_ab(after=1, ap=True, rms=2))
    + recv_all(130) + op(BATCH) + clock(ms(10)) + op(PUMP)
    + op(ACCEPT) + req(EARLYNOW, F_CHUNKED, 300, *earlynow_ab(after=1, pp=True, pause=2),
                       chunk=30) + req(TEXT) + recv_all(40) + op(BATCH, PUMP)
    + op(ACCEPT) + req(EARLYNOW, 0, 0, *earlynow_ab(fail=3, rc=True)) + req(TEXT)
    + op(PUMP),
    'early_late_read_small': req(EARLY, 0, 2000, b=early_b(late=True, rms=2)) + req(TEXT)
    + recv_all(100) + op(BATCH) + clock(ms(10)) + op(SEND_ALL, PUMP)
    + req(EARLY, 0, 60, b=early_b(small=True)) + req(EARLY, F_CHUNKED, 200, chunk=10,
                                                      b=early_b(small=True, pause=1))
    + op(PUMP) + op(ACCEPT) + req(EARLY, 0, 100, b=early_b(small=True)) + op(PUMP)
    + op(ACCEPT) + req(EARLY, 0, 100, a=1, b=early_b(rc=True)) + req(TEXT) + op(PUMP),
    # a reader paused when the client goes away, the handler timeout, a drain
    'early_abort_drain': req(EARLY, 0, 8000, b=early_b(pause=2, rms=3)) + recv_all(135)
    + op(BATCH, EOF) + recv_all() + op(ACCEPT) + req(EARLY, F_CHUNKED, 5000, chunk=0,
                                                    b=early_b(pause=1, rms=3))
    + recv(200) + op(BATCH, DRAIN) + clock(ms(100)) + op(PUMP) + op(ACCEPT)
    + req(EARLY, 0, 500, b=early_b(late=True, rms=3)) + recv(100) + clock(ms(31000))
    + op(SEND_ALL, PUMP),
}


# ---- HTTP/2 (RFC 9113): frames, in RAW bytes ------------------------------------------------

PREFACE = b'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
# frame types and flags
DATA_, HEADERS_, PRIORITY_, RST_STREAM_, SETTINGS_, PUSH_PROMISE_, PING_, GOAWAY_, \
    WINDOW_UPDATE_, CONTINUATION_ = range(10)
END_STREAM, ACK_, END_HEADERS, PADDED, PRIORITY_FLAG = 0x1, 0x1, 0x4, 0x8, 0x20
# settings
HEADER_TABLE_SIZE, ENABLE_PUSH, MAX_CONCURRENT_STREAMS, INITIAL_WINDOW_SIZE, MAX_FRAME_SIZE, \
    MAX_HEADER_LIST_SIZE = range(1, 7)
# error codes
NO_ERROR, PROTOCOL_ERROR, INTERNAL_ERROR, FLOW_CONTROL_ERROR, CANCEL = 0, 1, 2, 3, 8


def frame(ftype, flags, sid, payload=b''):
    return struct.pack('>I', len(payload))[1:] + bytes([ftype, flags]) + struct.pack('>I', sid) \
        + payload


def settings(ack=False, **kv):
    ids = {'table': HEADER_TABLE_SIZE, 'push': ENABLE_PUSH, 'streams': MAX_CONCURRENT_STREAMS,
           'window': INITIAL_WINDOW_SIZE, 'frame': MAX_FRAME_SIZE, 'hlist': MAX_HEADER_LIST_SIZE}
    return frame(SETTINGS_, ACK_ if ack else 0, 0,
                 b''.join(struct.pack('>HI', ids[k], v) for k, v in kv.items()))


def data(sid, payload, end=False, pad=None):
    if pad is not None:
        return frame(DATA_, PADDED | (END_STREAM if end else 0), sid,
                     bytes([pad]) + payload + bytes(pad))
    return frame(DATA_, END_STREAM if end else 0, sid, payload)


def body(n, seed=1):
    """n bytes of a repeatable pattern"""
    return bytes((seed * 7 + i * 13) & 0xff for i in range(n))


def rst(sid, code=CANCEL):
    return frame(RST_STREAM_, 0, sid, struct.pack('>I', code))


def window_update(sid, inc):
    return frame(WINDOW_UPDATE_, 0, sid, struct.pack('>I', inc))


def ping(opaque=b'pingpong', ack=False):
    return frame(PING_, ACK_ if ack else 0, 0, opaque)


def goaway(last=0, code=NO_ERROR):
    return frame(GOAWAY_, 0, 0, struct.pack('>II', last, code))


def priority(sid, dep=0, weight=16):
    return frame(PRIORITY_, 0, sid, struct.pack('>IB', dep, weight))


class H2:
    """One client connection: its HPACK encoder (the server's decoder follows it). Strings are
    literal unless huffman: the fuzzer can then edit paths, queries and methods in place."""

    def __init__(self, huffman=False):
        self.enc = hpack.Encoder()
        self.huffman = huffman

    def block(self, method, path, extra=(), authority='fuzz'):
        hdrs = [(':method', method), (':scheme', 'http'), (':path', path)] \
            + ([(':authority', authority)] if authority else []) + list(extra)
        return self.enc.encode(hdrs, huffman=self.huffman)

    def req(self, sid, method, path, extra=(), end=True, pad=None, authority='fuzz'):
        """HEADERS with the whole block (END_STREAM unless end is False)"""
        flags = END_HEADERS | (END_STREAM if end else 0)
        blk = self.block(method, path, extra, authority)
        if pad is not None:
            return frame(HEADERS_, flags | PADDED | PRIORITY_FLAG, sid,
                         bytes([pad]) + struct.pack('>IB', 0, 200) + blk + bytes(pad))
        return frame(HEADERS_, flags, sid, blk)

    def post(self, sid, path, payload, pieces=1, length=True, extra=()):
        """HEADERS then the body in DATA frames, the last with END_STREAM"""
        hdrs = list(extra) + ([('content-length', str(len(payload)))] if length else [])
        out = self.req(sid, 'POST', path, hdrs, end=not payload)
        step = max(1, -(-len(payload) // pieces))
        for i in range(0, len(payload), step):
            out += data(sid, payload[i:i + step], end=i + step >= len(payload))
        return out

    def split(self, sid, method, path, extra=(), parts=3, end=True):
        """HEADERS and CONTINUATION frames: the block in parts"""
        blk = self.block(method, path, extra)
        step = max(1, -(-len(blk) // parts))
        chunks = [blk[i:i + step] for i in range(0, len(blk), step)]
        out = frame(HEADERS_, END_STREAM if end else 0, sid, chunks[0])
        for i, c in enumerate(chunks[1:], 1):
            out += frame(CONTINUATION_, END_HEADERS if i == len(chunks) - 1 else 0, sid, c)
        return out

    def trailers(self, sid, extra=(('x-trailer', 't'),)):
        return frame(HEADERS_, END_HEADERS | END_STREAM, sid,
                     self.enc.encode(list(extra), huffman=self.huffman))

    def open(self, ack=True, **kv):
        """the preface, our SETTINGS and the ACK of the server's (sent ahead: nghttp2 counts
        it against the SETTINGS it submitted when the session was made)"""
        return PREFACE + settings(**kv) + (settings(ack=True) if ack else b'')


def h2_seeds():
    seeds = {}
    # GETs answered at once: text (an echoed header), HEAD, JSON, params, 404, 405; the
    # client's GOAWAY after (Huffman-coded strings here, literal in the other seeds)
    c = H2(huffman=True)
    seeds['h2_get_text_head_json'] = raw(
        c.open() + c.req(1, 'GET', '/text?hdr=a%20b', [('x-seq', '0'), ('cookie', 'a=1'),
                                                         ('cookie', 'b=2')])
        + c.req(3, 'HEAD', '/text') + c.req(5, 'GET', '/json?n=7&s=%E2%82%AC')
        + c.req(7, 'GET', '/p/%41x/a%2Fb/c/d') + c.req(9, 'GET', '/nope/1')
        + c.req(11, 'DELETE', '/text') + c.req(13, 'GET', '/text?status=204')
        + c.req(15, 'GET', '/text?status=100')) + op(PUMP) \
        + raw(c.req(17, 'GET', '/json?bad=1') + c.req(19, 'GET', '/fail')) + op(PUMP) \
        + raw(goaway(0)) + op(PUMP)
    # request bodies: echo in pieces (with and without content-length, padded), the 16-byte
    # route (413), PUT, read in small recv pieces so frames are cut anywhere
    c = H2()
    seeds['h2_post_echo_pieces'] = raw(
        c.open() + c.post(1, '/echo', body(300), pieces=3)
        + c.post(3, '/echo', body(50, 2), length=False)
        + c.req(5, 'POST', '/echo', [('content-length', '20')], end=False)
        + data(5, body(20, 3), end=True, pad=7)
        + c.post(7, '/small', body(100, 4), pieces=2)
        + c.post(9, '/small', body(10, 5)) + c.req(11, 'PUT', '/text', end=False)
        + data(11, b'', end=True)) + recv_all(5) + op(BATCH, SEND_ALL, PUMP)
    # deferred answers from timers, the handler's own defer, 201 now, an unowned defer, a hang
    # reset by the client
    c = H2()
    seeds['h2_deferred_timers'] = raw(
        c.open() + c.req(1, 'GET', '/defer?ms=20') + c.post(3, '/defer?ms=5&cancel=1', body(40))
        + c.req(5, 'GET', '/defer?ms=1&json=1') + c.req(7, 'GET', '/unowned?ms=3')
        + c.req(9, 'GET', '/now') + c.req(11, 'GET', '/now?rc=1')
        + c.req(13, 'GET', '/hang?t=1')) + op(PUMP) + clock(ms(10)) + op(SEND_ALL) \
        + clock(ms(30)) + op(SEND_ALL, PUMP) + raw(rst(13)) + op(PUMP) + clock(ms(100)) \
        + op(SEND_ALL)
    # streamed responses: timers, a declared length (exact, one over: reset, one short), 204,
    # a 1xx that cannot stream, streamnow, its error after the head
    c = H2()
    seeds['h2_stream_routes'] = raw(
        c.open() + c.req(1, 'GET', '/stream?n=8&size=1000&ms=1&len=1')
        + c.req(3, 'GET', '/stream?n=4&size=100&len=2')
        + c.req(5, 'GET', '/stream?n=4&size=16&len=3')
        + c.req(7, 'GET', '/stream?n=2&now=1&status=204') + c.req(9, 'GET', '/stream?status=101')
        + c.req(11, 'GET', '/streamnow') + c.req(13, 'GET', '/streamnow?err=1')
        + c.req(15, 'GET', '/stream?n=3&ms=1&size=0')) + op(PUMP) \
        + (clock(ms(1)) + op(SEND_ALL)) * 10 + op(PUMP)
    # a small window (our SETTINGS) and big answers: DATA as WINDOW_UPDATEs come, a writer
    # waiting for room, then a stall past the write timeout (RST_STREAM CANCEL)
    c = H2()
    seeds['h2_small_window_big'] = raw(
        c.open(window=100) + c.req(1, 'GET', '/text?big=65536')
        + c.req(3, 'GET', '/stream?n=16&size=4096') + c.req(5, 'GET', '/text?big=1')) \
        + op(PUMP) + raw(window_update(1, 3000) + window_update(0, 20000)) + op(PUMP) \
        + raw(window_update(3, 70000) + window_update(0, 70000)) + op(PUMP) \
        + raw(settings(window=1000)) + op(PUMP) + (clock(ms(10000)) + op(SEND_ALL)) * 5 \
        + op(PUMP)
    # a writer past COIL_STREAM_HIGH while the window is shut (-EAGAIN, coil_res_on_writable),
    # woken as WINDOW_UPDATEs open it and the output drains; a client that stops reading
    c = H2()
    seeds['h2_stream_backpressure'] = raw(
        c.open(window=0) + c.req(1, 'GET', '/stream?n=32&size=32768')
        + c.req(3, 'GET', '/stream?n=12&size=32768&ms=1')) + op(PUMP) \
        + (clock(ms(1)) + op(BATCH)) * 4 \
        + raw(window_update(0, 0x7fff0000) + window_update(1, 0x7fff0000)) + op(PUMP) \
        + (send(20000) + op(BATCH)) * 4 + op(SEND_ALL, PUMP) \
        + raw(window_update(3, 0x7fff0000)) + (clock(ms(1)) + op(PUMP)) * 6 + op(EOF, PUMP)
    # early routes: a pausing reader fed DATA across recvs, the 64-byte route, an answer
    # before the body, a late reader, an empty body
    c = H2()
    seeds['h2_early_pieces'] = raw(
        c.open() + c.req(1, 'POST', '/early?pause=1&rms=1', [('content-length', '3000')],
                         end=False) + data(1, body(1000)))
    seeds['h2_early_pieces'] += recv_all(0) + op(BATCH) + clock(ms(1)) \
        + raw(data(1, body(1000, 2))) \
        + recv_all(0) + clock(ms(1)) + raw(data(1, body(1000, 3), end=True)) + recv_all(0) \
        + (clock(ms(1)) + op(SEND_ALL)) * 4 \
        + raw(c.post(3, '/earlys', body(100)) + c.post(5, '/earlynow?after=1', body(500), 2)
              + c.post(7, '/early?late=1&rms=10', body(300), 3)
              + c.req(9, 'POST', '/early?fin=1&rms=1')
              + c.post(11, '/earlynow?after=0&fail=413', body(200), 2)
              + c.post(13, '/early?pause=2&rms=1', body(2000), 4, length=False)) \
        + op(PUMP) + (clock(ms(10)) + op(SEND_ALL, PUMP)) * 4
    # streams interleaved: bodies in turns, trailers ending one, a body on the on_body route
    c = H2()
    seeds['h2_interleaved_trailers'] = raw(
        c.open() + c.req(1, 'POST', '/echo', end=False)
        + c.req(3, 'POST', '/upload?defer=1&ms=2', end=False)
        + c.req(5, 'POST', '/defer?ms=2', end=False) + data(3, body(100)) + data(1, body(30))
        + data(5, body(7)) + data(1, body(30, 2), end=True) + data(3, body(100, 2))
        + c.trailers(3) + data(5, b'', end=True)
        + c.req(7, 'GET', '/text', [('x-a', 'b')]) + c.req(9, 'POST', '/upload?fail=50&code=413',
                                                           end=False)
        + data(9, body(100)) + data(9, body(100), end=True)) + recv_all(20) \
        + op(BATCH) + clock(ms(5)) + op(SEND_ALL, PUMP)
    # resets of waiting streams (a hang, a timer, a stream between pieces, a paused reader),
    # then rapid reset: HEADERS + RST_STREAM past the burst (GOAWAY)
    c = H2()
    seeds['h2_rst_waiting'] = raw(
        c.open() + c.req(1, 'GET', '/hang') + c.req(3, 'GET', '/defer?ms=1000')
        + c.req(5, 'GET', '/stream?n=10&ms=100')
        + c.req(7, 'POST', '/early?pause=2&rms=3', [('content-length', '500')], end=False)
        + data(7, body(200))) + op(PUMP) + raw(rst(1) + rst(3, NO_ERROR)) + op(PUMP) \
        + clock(ms(100)) + op(SEND_ALL) + raw(rst(5) + rst(7)) + op(PUMP) \
        + raw(b''.join(c.req(i, 'GET', '/hang') + rst(i) for i in range(9, 41, 2))) + op(PUMP)
    # control frame floods (--h2-max-control 10 in the harness): PING, PRIORITY, empty DATA,
    # SETTINGS, one connection each
    c = H2()
    flood = raw(c.open() + ping() * 12) + op(PUMP)
    c = H2()
    flood += op(ACCEPT) + raw(c.open() + b''.join(priority(i) for i in range(1, 25, 2))) + op(PUMP)
    c = H2()
    flood += op(ACCEPT) + raw(c.open() + c.req(1, 'POST', '/echo', end=False)
                              + data(1, b'') * 12) + op(PUMP)
    c = H2()
    flood += op(ACCEPT) + raw(c.open() + settings(table=100) * 12) + op(PUMP)
    seeds['h2_control_floods'] = flood
    # under the limit in each second: the count starts again
    c = H2()
    seeds['h2_control_each_second'] = raw(c.open() + ping() * 8 + priority(1) * 8) + op(PUMP) \
        + clock(ms(1000)) + raw(ping() * 8 + c.req(1, 'GET', '/text')) + op(PUMP)
    # bodies past a route's limit without a content-length (the 64-byte early route, the
    # 16-byte route), more fields than --max-headers (431), host instead of :authority
    c = H2()
    seeds['h2_limits_bodies'] = raw(
        c.open() + c.post(1, '/earlys', body(100), pieces=2, length=False)
        + c.post(3, '/small', body(100), pieces=3, length=False)
        + c.req(5, 'GET', '/text', [('x-h%d' % i, 'v') for i in range(101)])
        + c.req(7, 'GET', '/text', [('host', 'example')], authority=None)
        + c.req(9, 'GET', '/text', [('cookie', 'a=1'), ('x-a', 'b'), ('cookie', 'b=2'),
                                    ('cookie', 'c=3')])) + op(PUMP)
    # graceful shutdown: streams in flight, GOAWAY (max id) and PING, the client's ACK and a
    # new stream, the final GOAWAY; a second connection that never answers the PING
    c = H2()
    d = H2()
    seeds['h2_goaway_drain'] = raw(
        c.open() + c.req(1, 'GET', '/defer?ms=50') + c.req(3, 'GET', '/stream?n=4&ms=20')) \
        + op(PUMP) + op(ACCEPT) + raw(d.open() + d.req(1, 'GET', '/defer?ms=2000')) + op(PUMP) \
        + op(DRAIN, SEND_ALL) + op(SELECT, 0) + raw(ping(bytes(8), ack=True)
                                                    + c.req(5, 'GET', '/text')) \
        + op(PUMP) + clock(ms(60)) + op(SEND_ALL, PUMP) + clock(ms(1100)) + op(SEND_ALL, PUMP) \
        + clock(ms(3000)) + op(SEND_ALL, PUMP)
    # header blocks: CONTINUATIONs, a list past the limit (431), expect 100-continue, an
    # unknown expectation (417), a bad content-length, then too many CONTINUATIONs (GOAWAY)
    c = H2()
    blk_big = [('x-big', 'a' * 9000)]
    cont = c.open() + c.split(1, 'GET', '/text', [('x-a', 'b' * 40)], parts=3) \
        + c.req(3, 'GET', '/text', blk_big) \
        + c.req(5, 'POST', '/echo', [('expect', '100-continue'), ('content-length', '10')],
                end=False) + data(5, body(10), end=True) \
        + c.req(7, 'POST', '/echo', [('expect', 'nope')], end=False) + data(7, b'', end=True) \
        + c.req(9, 'POST', '/echo', [('content-length', '1x')])
    blk = c.block('GET', '/json', [('x-%d' % i, 'v') for i in range(12)])
    flood = frame(HEADERS_, END_STREAM, 11, blk[:1]) \
        + b''.join(frame(CONTINUATION_, 0, 11, blk[i:i + 1]) for i in range(1, 12)) \
        + frame(CONTINUATION_, END_HEADERS, 11, blk[12:])
    seeds['h2_continuation_limits'] = raw(cont) + op(PUMP) + raw(flood) + op(PUMP)
    # protocol errors, one connection each: the preface cut across recvs then an even stream
    # id; a stream id below one opened (skipped); a preface that is not (HTTP/1.1 then); DATA
    # on stream 0; DATA past the window
    c = H2()
    perr = raw(c.open() + c.req(1, 'GET', '/text') + c.req(2, 'GET', '/text')) + recv(10) \
        + recv(9) + recv(30) + op(PUMP)
    c = H2()
    perr += op(ACCEPT) + raw(c.open() + c.req(5, 'GET', '/text') + c.req(3, 'GET', '/text')) \
        + op(PUMP)
    perr += op(ACCEPT) + raw(PREFACE[:16] + b'XX\r\n\r\nGET /text HTTP/1.1\r\nHost: a\r\n\r\n') \
        + op(PUMP)
    c = H2()
    perr += op(ACCEPT) + raw(c.open() + data(0, b'x')) + op(PUMP)
    c = H2()
    perr += op(ACCEPT) + raw(c.open() + c.req(1, 'POST', '/early?pause=2&rms=3', end=False)
                             + data(1, body(4000)) + data(1, body(4000))) + op(PUMP)
    seeds['h2_protocol_errors'] = perr
    # past SETTINGS_MAX_CONCURRENT_STREAMS (8 in the harness) before our SETTINGS are
    # acknowledged: REFUSED_STREAM; then aborted; and after the ACK: a connection error
    c = H2()
    seeds['h2_max_streams'] = raw(c.open(ack=False) + b''.join(c.req(i, 'GET', '/hang?t=1')
                                                               for i in range(1, 22, 2))) \
        + op(PUMP) + raw(c.req(23, 'GET', '/text')) + op(PUMP, FORCE, BATCH)
    c = H2()
    seeds['h2_max_streams'] += op(ACCEPT) + raw(
        c.open() + b''.join(c.req(i, 'GET', '/hang') for i in range(1, 20, 2))) + op(PUMP)
    # out of memory: the session (h2_create), a stream, a head, a body, the answer
    prog = b''
    for i, n in enumerate((0, 1, 2, 3, 5, 8, 13, 21)):
        c = H2()
        prog += (op(ACCEPT) if i else b'') + op(ALLOCFAIL, n) \
            + raw(c.open() + c.req(1, 'GET', '/text') + c.post(3, '/echo', body(100))
                  + c.req(5, 'GET', '/defer?ms=1')) + op(PUMP) + clock(ms(2)) + op(SEND_ALL) \
            + (op(FORCE, BATCH) if i % 4 == 3 else b'')
    seeds['h2_alloc_failures'] = prog
    # the client leaves: EOF with a stream waiting, a reset, a send that fails, a drain forced
    c = H2()
    prog = raw(c.open() + c.req(1, 'GET', '/defer?ms=100')) + op(PUMP, EOF) + recv_all()
    c = H2()
    prog += op(ACCEPT) + raw(c.open() + c.req(1, 'GET', '/stream?n=30&size=4096')) \
        + recv_all() + op(BATCH) + send(100) + op(RESET)
    c = H2()
    prog += op(ACCEPT) + raw(c.open() + c.req(1, 'GET', '/text?big=32768')) + recv_all() \
        + op(BATCH, SEND_ERR)
    c = H2()
    prog += op(ACCEPT) + raw(c.open() + c.req(1, 'GET', '/hang')) + op(PUMP, DRAIN) \
        + clock(ms(31000)) + op(FORCE, BATCH)
    seeds['h2_eof_reset_force'] = prog
    # timeouts: no preface in time (a part of it), idle, a body that does not come
    c = H2()
    seeds['h2_timeouts'] = raw(PREFACE[:8]) + op(PUMP) + clock(ms(11000)) + op(SEND_ALL) \
        + op(ACCEPT) + raw(c.open()) + op(PUMP) + clock(ms(61000)) + op(SEND_ALL, PUMP) \
        + op(ACCEPT) + raw(H2().open() + H2().req(1, 'POST', '/echo', end=False)) + op(PUMP) \
        + clock(ms(31000)) + op(SEND_ALL, PUMP)
    return seeds


def main():
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'corpus_http1')
    os.makedirs(out, exist_ok=True)
    seeds = dict(SEEDS)
    if hpack:
        seeds.update(h2_seeds())
    else:
        print('make_corpus_http1.py: no hpack (apt-get install python3-hpack): the h2_* seeds '
              'are left as they are', file=sys.stderr)
    for name, data in seeds.items():
        with open(os.path.join(out, name), 'wb') as f:
            f.write(data)


if __name__ == '__main__':
    main()
