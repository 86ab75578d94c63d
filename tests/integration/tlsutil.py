# SPDX-License-Identifier: MIT
"""tlsutil: what the TLS tests need besides coil_harness.

`make_certs()` writes a small PKI with the `openssl` command-line tool: a root CA, an
intermediate CA (so that a client trusting only the root verifies a server only if the server
sends the chain that follows the leaf in its certificate file) and leaf certificates signed by the
intermediate: ECDSA P-256 and RSA-2048 ones for `localhost` and 127.0.0.1, a second ECDSA one for
the same names with another subject and serial (a reload changes the certificate), two for
`api.example.test` (SNI, and its reload) and one for `*.wild.test` (a wildcard SNI name), a key
that belongs to none of them, and a file that is not PEM at all.

`TLSConn` is a TLS client on a raw socket that runs Python's ssl.SSLObject over memory BIOs,
so a test decides what goes into each TCP send and each TLS record: the ClientHello a byte per
send, a request a byte per record. It reads responses with coil_harness's reader, like Conn,
and tells how the server ended the stream: "close_notify" (the TLS alert, then EOF), "ragged"
(EOF without close_notify), "reset", or "error" (a fatal alert or a bad record).

`s_client()` runs `openssl s_client` and returns its output.
"""

import os
import re
import socket
import ssl
import subprocess
import threading
import time

from coil_harness import WAIT, ConnectionClosed, _Buffer, request

OPENSSL = "openssl"


def run_openssl(*args, cwd=None, input=None):
    """Runs the openssl tool; AssertionError with its output when it fails."""
    p = subprocess.run([OPENSSL] + [str(a) for a in args], cwd=cwd, input=input,
                       capture_output=True, timeout=60)
    if p.returncode != 0:
        raise AssertionError("openssl %s failed (%d): %s" % (" ".join(map(str, args)),
                                                              p.returncode,
                                                              (p.stdout + p.stderr).decode()))
    return p.stdout


class Certs:
    """Paths of the generated files (attributes) and the DER bytes of each leaf (der[name])."""

    def __init__(self, directory):
        self.dir = directory
        self.der = {}

    def path(self, name):
        return os.path.join(self.dir, name)


def _key(certs, name, kind):
    path = certs.path(name + ".key")
    if kind == "rsa":
        run_openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048",
                    "-out", path)
    else:
        run_openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-out", path)
    return path


def _sign(certs, name, subject, ext, issuer, serial, kind="ec", days=30):
    """A certificate for a new key (name.key, name.crt), signed by issuer (a name made by this
    module), or self-signed when issuer is None."""
    key = _key(certs, name, kind)
    crt = certs.path(name + ".crt")
    extfile = certs.path(name + ".ext")
    with open(extfile, "w") as f:
        f.write("[v3]\n" + "\n".join(ext) + "\n")
    csr = certs.path(name + ".csr")
    run_openssl("req", "-new", "-key", key, "-subj", subject, "-out", csr)
    if issuer is None:
        run_openssl("x509", "-req", "-in", csr, "-signkey", key, "-days", days, "-set_serial",
                    serial, "-extfile", extfile, "-extensions", "v3", "-out", crt)
    else:
        run_openssl("x509", "-req", "-in", csr, "-CA", certs.path(issuer + ".crt"),
                    "-CAkey", certs.path(issuer + ".key"), "-days", days, "-set_serial", serial,
                    "-extfile", extfile, "-extensions", "v3", "-out", crt)
    return crt


CA_EXT = ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign",
          "subjectKeyIdentifier=hash"]


def _leaf_ext(names, kind):
    usage = "digitalSignature,keyEncipherment" if kind == "rsa" else "digitalSignature"
    return ["basicConstraints=critical,CA:FALSE", "keyUsage=critical," + usage,
            "extendedKeyUsage=serverAuth", "subjectKeyIdentifier=hash",
            "authorityKeyIdentifier=keyid", "subjectAltName=" + ",".join(names)]


LOCAL = ["DNS:localhost", "IP:127.0.0.1"]

# name: (subject, SAN entries, key type, serial)
LEAVES = {
    "ec": ("/O=coil tests/OU=server A/CN=localhost", LOCAL, "ec", 0x1001),
    "ec_b": ("/O=coil tests/OU=server B/CN=localhost", LOCAL, "ec", 0x2002),
    "rsa": ("/O=coil tests/OU=server RSA/CN=localhost", LOCAL, "rsa", 0x3003),
    "api": ("/O=coil tests/OU=api/CN=api.example.test", ["DNS:api.example.test"], "ec", 0x4004),
    "api_b": ("/O=coil tests/OU=api B/CN=api.example.test", ["DNS:api.example.test"], "ec",
              0x4114),
    "wild": ("/O=coil tests/OU=wildcard/CN=*.wild.test", ["DNS:*.wild.test"], "ec", 0x5005),
}


def make_certs(directory):
    """Writes the PKI described in the module docstring into directory. For each leaf NAME:
    NAME.key, NAME.crt (the leaf alone) and NAME.pem (the leaf then the intermediate: what the
    server is given). Also root.crt (what clients trust), other.key (matches no certificate)
    and garbage.pem. Returns a Certs."""
    certs = Certs(directory)
    _sign(certs, "root", "/O=coil tests/CN=coil test root CA", CA_EXT, None, 1, days=60)
    _sign(certs, "inter", "/O=coil tests/CN=coil test intermediate CA", CA_EXT, "root", 2,
          days=60)
    with open(certs.path("inter.crt"), "rb") as f:
        inter = f.read()
    for name, (subject, names, kind, serial) in LEAVES.items():
        crt = _sign(certs, name, subject, _leaf_ext(names, kind), "inter", serial, kind)
        with open(crt, "rb") as f:
            leaf = f.read()
        with open(certs.path(name + ".pem"), "wb") as f:
            f.write(leaf + inter)
        certs.der[name] = ssl.PEM_cert_to_DER_cert(leaf.decode())
    _key(certs, "other", "ec")
    with open(certs.path("garbage.pem"), "wb") as f:
        f.write(b"-----BEGIN CERTIFICATE-----\nthis is not base64 at all\n"
                b"-----END CERTIFICATE-----\n")
    certs.root = certs.path("root.crt")
    return certs


def tls_args(certs, name="ec"):
    """Server options for leaf name as the default certificate."""
    return ["--tls-port", "0", "--tls-cert", certs.path(name + ".pem"),
            "--tls-key", certs.path(name + ".key")]


def client_context(certs, minimum=None, maximum=None, alpn=None, tickets=True):
    """A verifying client context that trusts only the test root."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(certs.root)
    if minimum:
        ctx.minimum_version = minimum
    if maximum:
        ctx.maximum_version = maximum
    if alpn:
        ctx.set_alpn_protocols(alpn)
    if not tickets:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


# ---- a TLS client with control over records and sends -------------------------------------------

class TLSConn(_Buffer):
    """A TLS connection to 127.0.0.1:port with coil_harness's response reader (read_response,
    request, read_until_eof like Conn). hello_step: send the first flight (the ClientHello) in
    TCP pieces of this many bytes, pausing hello_pause between them. handshake=False leaves the
    handshake to the caller (do_handshake())."""

    def __init__(self, port, ctx, server_hostname="localhost", timeout=WAIT, host="127.0.0.1",
                 session=None, handshake=True, hello_step=None, hello_pause=0.003):
        super().__init__()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            self.sock.settimeout(timeout)
            self.sock.connect((host, port))
            self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            self.sock.close()
            raise
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = ctx.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname,
                                session=session)
        self.tcp_closed = None  # "eof" or "reset" once the socket said so
        self.error = None       # the ssl.SSLError that ended the stream, if one did
        self.hello_step, self.hello_pause = hello_step, hello_pause
        if handshake:
            try:
                self.do_handshake()
            except BaseException:
                self.close()
                raise

    # -- the socket side
    def flush(self, step=None, pause=0.0):
        """Sends everything the TLS layer has produced, in pieces of step bytes if given."""
        data = self.outgoing.read()
        if not data:
            return 0
        if step:
            for i in range(0, len(data), step):
                self.sock.sendall(data[i:i + step])
                time.sleep(pause)
        else:
            self.sock.sendall(data)
        return len(data)

    def _recv(self):
        """Moves what the socket has into the incoming BIO; False (and the BIO at EOF) once the
        socket ended."""
        if self.tcp_closed:
            return False
        try:
            chunk = self.sock.recv(1 << 16)
        except ConnectionResetError:
            chunk, self.tcp_closed = b"", "reset"
        except socket.timeout:
            raise AssertionError("timed out after %.0fs waiting for coil to send more or close"
                                 % self.sock.gettimeout()) from None
        if not chunk:
            self.tcp_closed = self.tcp_closed or "eof"
            self.incoming.write_eof()
            return False
        self.incoming.write(chunk)
        return True

    # -- the TLS side
    def do_handshake(self):
        first = True
        while True:
            try:
                self.tls.do_handshake()
                self.flush()
                return
            except ssl.SSLWantReadError:
                if first:
                    self.flush(self.hello_step, self.hello_pause if self.hello_step else 0.0)
                    first = False
                else:
                    self.flush()
                if not self._recv() and self.tcp_closed == "reset":
                    raise ConnectionClosed("reset")

    @property
    def version(self):
        return self.tls.version()

    def session_reused(self):
        return self.tls.session_reused

    def peer_der(self):
        return self.tls.getpeercert(binary_form=True)

    def send(self, data, record=None, pause=0.0):
        """Writes data; record: at most this many bytes per TLS record, each record flushed to
        the socket with its own send (pausing pause seconds between them)."""
        step = record or len(data) or 1
        for i in range(0, len(data), step):
            piece = memoryview(data)[i:i + step]
            while piece:
                n = self.tls.write(piece)
                piece = piece[n:]
            self.flush()
            if pause:
                time.sleep(pause)
        return self

    def fill(self):
        if self.closed_how:
            return False
        while True:
            try:
                data = self.tls.read(1 << 16)
            except ssl.SSLWantReadError:
                self.flush()
                self._recv()
                continue
            except ssl.SSLZeroReturnError:
                self.closed_how = "close_notify"
                return False
            except ssl.SSLEOFError:
                self.closed_how = "reset" if self.tcp_closed == "reset" else "ragged"
                return False
            except ssl.SSLError as e:
                self.error = e
                self.closed_how = "reset" if self.tcp_closed == "reset" else "error"
                return False
            if not data:
                # The ssl module returns b"" (no exception) when the peer's close_notify came
                # before we sent ours; SSLZeroReturnError when we had sent ours already.
                self.closed_how = "close_notify"
                return False
            self.buf += data
            return True

    def request(self, method, path, body=None, headers=(), version="HTTP/1.1", record=None,
                **kw):
        self.send(request(method, path, body, headers, version, **kw), record=record)
        return self.read_response(head=(method == "HEAD"))

    def close_notify(self):
        """Sends our close_notify (without waiting for the server's)."""
        try:
            self.tls.unwrap()
        except ssl.SSLWantReadError:
            pass
        self.flush()

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()


def tls_get(port, certs, path, ctx=None, **kw):
    """GET on a fresh TLS connection that asks to be closed; returns the response."""
    conn = TLSConn(port, ctx or client_context(certs), **kw)
    try:
        return conn.request("GET", path, headers=["Connection: close"])
    finally:
        conn.close()


# ---- openssl s_client ---------------------------------------------------------------------------

# An HTTP request s_client sends after its handshake (with -ign_eof it then reads to the close):
# the server answers and closes, so every run ends by itself.
HTTP_CLOSE = b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"


class SClient:
    """The result of one s_client run: out (stdout and stderr), code, and what was parsed:
    negotiated ("TLSv1.3" from the "New, TLSv1.3, Cipher is X" line), session ("New" or
    "Reused"), cipher, handshake_ok, protocol (the "Protocol  :" line of the session print,
    which for TLS 1.3 comes only with a session ticket), alpn, subject (of the server's leaf),
    verify_ok, written (bytes s_client sent: 0 if it had nothing it could offer)."""

    def __init__(self, argv, code, out):
        self.argv, self.code, self.out = argv, code, out
        m = re.search(r"^(New|Reused), (\S+), Cipher is (\S+)", out, re.M)
        self.session = m.group(1) if m else None
        self.negotiated = m.group(2) if m else None
        self.cipher = m.group(3) if m else None
        self.handshake_ok = bool(m) and self.cipher != "(NONE)"
        m = re.search(r"^\s*Protocol\s*:\s*(\S+)", out, re.M)
        self.protocol = m.group(1) if m else None
        m = re.search(r"^ALPN protocol: (\S+)", out, re.M)
        self.alpn = m.group(1) if m else None
        m = re.search(r"^subject=(.*)$", out, re.M)
        self.subject = m.group(1).strip() if m else None
        self.verify_ok = "Verify return code: 0 (ok)" in out
        m = re.search(r"SSL handshake has read (\d+) bytes and written (\d+) bytes", out)
        self.written = int(m.group(2)) if m else 0

    def __repr__(self):
        return "<s_client %s: exit %d>\n%s" % (" ".join(self.argv[1:]), self.code, self.out)


def s_client(port, *args, certs=None, send=HTTP_CLOSE, timeout=30, host="127.0.0.1"):
    """Runs `openssl s_client -connect host:port [-CAfile root] ARGS`, with send on its stdin
    and -ign_eof (so it reads until the server closes) unless send is empty. Returns an
    SClient."""
    argv = [OPENSSL, "s_client", "-connect", "%s:%d" % (host, port)]
    if certs is not None:
        argv += ["-CAfile", certs.root]
    if send:
        argv.append("-ign_eof")
    argv += [str(a) for a in args]
    p = subprocess.run(argv, input=send, capture_output=True, timeout=timeout)
    return SClient(argv, p.returncode, (p.stdout + p.stderr).decode("utf-8", "replace"))


def s_client_renegotiate(port, certs, timeout=20):
    """A TLS 1.2 s_client that, once its handshake is done, asks to renegotiate (its "R"
    command) and then sends a request, which makes it start the new handshake. Returns
    (client hellos sent, server hellos received, output), counted from -msg's trace."""
    argv = [OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, "-CAfile", certs.root,
            "-tls1_2", "-msg"]
    p = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT)
    out = bytearray()
    lock = threading.Lock()

    def pump():
        for chunk in iter(lambda: p.stdout.read1(4096), b""):
            with lock:
                out.extend(chunk)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()

    def wait_for(*texts):
        """True once out holds any of texts; False if s_client ended or time ran out first."""
        deadline = time.monotonic() + timeout
        while True:
            ended = p.poll() is not None
            with lock:
                if any(t in out for t in texts):
                    return True
            if ended or time.monotonic() > deadline:
                return False
            time.sleep(0.02)

    try:
        # "R" is read as a command only when it starts a read of stdin of its own: sent once
        # the handshake is over, and the request only after s_client has taken the command.
        if wait_for(b"Verify return code"):
            p.stdin.write(b"R\n")
            p.stdin.flush()
            if wait_for(b"RENEGOTIATING"):
                p.stdin.write(b"GET /plaintext HTTP/1.1\r\nHost: localhost\r\n\r\n")
                p.stdin.flush()
                # the new handshake's answer: a ServerHello or an alert, or the end
                wait_for(b"Alert", b"Hello, World!")
    except BrokenPipeError:
        pass  # s_client ended (the server closed)
    try:
        p.stdin.close()
    except BrokenPipeError:
        pass
    try:
        p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
    reader.join(5)
    p.stdout.close()
    text = out.decode("utf-8", "replace")
    hellos = len(re.findall(r"^>>> .*Handshake .*ClientHello$", text, re.M))
    server_hellos = len(re.findall(r"^<<< .*Handshake .*ServerHello$", text, re.M))
    return hellos, server_hellos, text
