# SPDX-License-Identifier: MIT
"""The authentication middleware (--api-keys, --jwt-*, --auth-skip) against the demo.

Keys are made here with the openssl CLI in a temporary directory (an HS256 secret, RSA 2048
and EC P-256 key pairs, and the wrong kinds for start-up refusals) and tokens are signed here:
HS256 with hmac, RS256 and ES256 with `openssl dgst -sha256 -sign` (ES256's DER signature
turned into JWS's raw r||s). Valid tokens of each algorithm pass; expired (beyond the leeway),
not yet valid, wrongly issued or addressed, tampered, unsigned (alg none), key-confused (HS256
with the RSA public key as the secret) and malformed ones get 401 with error="invalid_token",
the reason going to the debug log and never to the client. API keys pass in either header,
a key sharing a long prefix with a real one does not, comments and blanks in the key file are
ignored; the skip list passes without a credential; key files that cannot be used stop coil
with status 2 and a message. Skipped when coil was built without libcrypto 3."""

import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from coil_harness import CoilTestCase, clean_env, coil_bin, main, wait_until

HELLO = b"Hello, World!"
CHALLENGE = 'Bearer realm="coil"'
INVALID = 'Bearer realm="coil", error="invalid_token"'
KEYS = None  # the temporary directory's files, made once


def setUpModule():
    global KEYS
    if not shutil.which("openssl"):
        raise unittest.SkipTest("the openssl CLI is not installed (apt-get install openssl)")
    helptext = subprocess.run([coil_bin(), "--help"], capture_output=True, text=True,
                              env=clean_env(), timeout=10).stdout
    if "--api-keys" not in helptext:
        raise unittest.SkipTest("coil was built without libcrypto 3: no authentication")
    KEYS = Keys()


def tearDownModule():
    if KEYS:
        shutil.rmtree(KEYS.dir, ignore_errors=True)


def openssl(*args, data=None):
    return subprocess.run(["openssl"] + list(args), input=data, capture_output=True,
                          check=True, timeout=60).stdout


class Keys:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="coil-auth-")
        self.secret = os.urandom(24).hex().encode()  # 48 bytes of text
        self.hs = self.write("hs.key", self.secret + b"\n")
        self.rsa, self.rsa_pub = self.pair("rsa", "-algorithm", "RSA",
                                           "-pkeyopt", "rsa_keygen_bits:2048")
        self.ec, self.ec_pub = self.pair("ec", "-algorithm", "EC",
                                         "-pkeyopt", "ec_paramgen_curve:P-256")
        self.rsa_small, self.rsa_small_pub = self.pair("rsa1024", "-algorithm", "RSA",
                                                       "-pkeyopt", "rsa_keygen_bits:1024")
        self.p384, self.p384_pub = self.pair("p384", "-algorithm", "EC",
                                             "-pkeyopt", "ec_paramgen_curve:P-384")
        # A key file as people write them: comments, blank lines, spaces, CRLF, a key with
        # dots; "k" * 40 + "1" shares 40 bytes with the key a test presents.
        self.api_keys = ["alpha-key-0001", "beta key with spaces", "k" * 40 + "1", "a.b.c"]
        self.api = self.write("api.keys", (
            "# API keys for the tests\n\n"
            "   alpha-key-0001   \n"
            "\t# an indented comment\n"
            "beta key with spaces\r\n"
            "\n   \n"
            + "k" * 40 + "1\n"
            "a.b.c").encode())

    def write(self, name, data):
        path = os.path.join(self.dir, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def pair(self, name, *genpkey):
        priv = os.path.join(self.dir, name + ".pem")
        pub = os.path.join(self.dir, name + ".pub")
        openssl("genpkey", *genpkey, "-out", priv)
        openssl("pkey", "-in", priv, "-pubout", "-out", pub)
        return priv, pub


# ---- tokens -------------------------------------------------------------------------------------

def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def der_to_raw(der):
    """ECDSA-Sig-Value (DER) -> r||s, 32 bytes each (RFC 7518 3.4)."""
    assert der[0] == 0x30 and der[1] < 0x80, der.hex()
    i, out = 2, b""
    for _ in range(2):
        assert der[i] == 0x02, der.hex()
        n = der[i + 1]
        out += der[i + 2:i + 2 + n].lstrip(b"\0").rjust(32, b"\0")
        i += 2 + n
    return out


def sign(alg, signing_input, key=None):
    """The JWS signature of signing_input (bytes) for alg; key: the HMAC secret or the PEM
    private key's path (the module's keys by default)."""
    if alg == "HS256":
        return hmac.new(key or KEYS.secret, signing_input, hashlib.sha256).digest()
    sig = openssl("dgst", "-sha256", "-sign", key or (KEYS.rsa if alg == "RS256" else KEYS.ec),
                  data=signing_input)
    return der_to_raw(sig) if alg == "ES256" else sig


def jwt(claims, alg="RS256", header=None, key=None, sign_as=None):
    """A compact token. header replaces {"alg": alg, "typ": "JWT"}; sign_as signs with another
    algorithm than the header names (or "none": no signature)."""
    h = header if header is not None else {"alg": alg, "typ": "JWT"}
    hp = b64url(json.dumps(h).encode()) + "." + b64url(json.dumps(claims).encode())
    how = sign_as or alg
    sig = b"" if how == "none" else sign(how, hp.encode(), key)
    return hp + "." + b64url(sig)


def claims(**kw):
    c = {"sub": "alice", "iss": "idp.example", "aud": "api", "exp": int(time.time()) + 600}
    c.update(kw)
    return {k: v for k, v in c.items() if v is not None}


# ---- helpers ------------------------------------------------------------------------------------

class AuthCase(CoilTestCase):
    def get(self, path="/plaintext", token=None, api_key=None, headers=(), method="GET"):
        h = list(headers)
        if token is not None:
            h.append(("Authorization", "Bearer " + token))
        if api_key is not None:
            h.append(("X-API-Key", api_key))
        return self.connect(self.srv).request(method, path, headers=h)

    def assertPasses(self, resp):
        self.assertEqual((resp.status, resp.body), (200, HELLO), resp)
        self.assertIsNone(resp.header("WWW-Authenticate"), resp)

    def assertRefused(self, resp, given=True):
        self.assertEqual(resp.status, 401, resp)
        self.assertEqual(resp.body, b"Unauthorized\n", resp)
        self.assertEqual(resp.header_all("WWW-Authenticate"), [INVALID if given else CHALLENGE],
                         resp)

    def assertLogged(self, reason):
        """The debug log says why (the client never does). The line may reach us after the
        response: the log is read from coil's stderr by another thread."""
        want = "refused: " + reason
        wait_until(lambda: any(want in line for line in self.srv.log_text().splitlines()),
                   what="%r in the log" % want)


# ---- JWT ----------------------------------------------------------------------------------------

class Rs256(AuthCase):
    """RS256 with iss and aud checked, and API keys configured too."""

    def setUp(self):
        self.srv = self.start("--workers", "2", "--log-level", "debug", "--jwt-key", KEYS.rsa_pub,
                              "--jwt-issuer", "idp.example", "--jwt-audience", "api",
                              "--api-keys", KEYS.api)

    def test_valid(self):
        self.assertPasses(self.get(token=jwt(claims())))
        self.assertPasses(self.get(token=jwt(claims(exp=int(time.time()) + 600.5))))
        self.assertPasses(self.get(token=jwt(claims(aud=["web", "api"]))))
        self.assertPasses(self.get(token=jwt(claims(exp=None))))  # exp is optional
        self.assertPasses(self.get(token=jwt(claims(), header={"alg": "RS256"})))  # no typ
        self.assertPasses(self.get(token=jwt(claims(), header={"alg": "RS256", "typ": "jwt"})))
        self.assertPasses(self.get(headers=[("Authorization", "bearer   " + jwt(claims()))]))

    def test_expired(self):
        r = self.get(token=jwt(claims(exp=int(time.time()) - 600)))
        self.assertRefused(r)
        self.assertNotIn(b"expired", r.body)
        self.assertLogged("expired")

    def test_expired_within_leeway(self):
        self.assertPasses(self.get(token=jwt(claims(exp=int(time.time()) - 20))))

    def test_not_before(self):
        self.assertRefused(self.get(token=jwt(claims(nbf=int(time.time()) + 600))))
        self.assertLogged("not valid yet (nbf)")
        self.assertPasses(self.get(token=jwt(claims(nbf=int(time.time()) + 20))))
        self.assertPasses(self.get(token=jwt(claims(nbf=int(time.time()) - 20.25))))

    def test_issuer_and_audience(self):
        self.assertRefused(self.get(token=jwt(claims(iss="evil.example"))))
        self.assertLogged("issuer mismatch")
        self.assertRefused(self.get(token=jwt(claims(iss=None))))
        self.assertRefused(self.get(token=jwt(claims(aud="other"))))
        self.assertLogged("audience mismatch")
        self.assertRefused(self.get(token=jwt(claims(aud=["web", "apix"]))))
        self.assertRefused(self.get(token=jwt(claims(aud=None))))
        self.assertRefused(self.get(token=jwt(claims(aud=[1]))))
        self.assertRefused(self.get(token=jwt(claims(exp="never"))))
        self.assertLogged("bad claims")

    def test_key_confusion(self):
        """HS256 signed with the RSA public key's PEM as the secret: the classic attack."""
        with open(KEYS.rsa_pub, "rb") as f:
            pem = f.read()
        for secret in (pem, pem.rstrip(b"\n")):
            self.assertRefused(self.get(token=jwt(claims(), alg="HS256", key=secret)))
        self.assertLogged("alg not allowed")

    def test_alg_none(self):
        for alg in ("none", "None", "NONE"):
            t = jwt(claims(), header={"alg": alg, "typ": "JWT"}, sign_as="none")
            self.assertRefused(self.get(token=t))
            # and with an RS256 signature left on it
            t = jwt(claims(), header={"alg": alg}, sign_as="RS256")
            self.assertRefused(self.get(token=t))
        self.assertLogged("alg not allowed")

    def test_other_algs(self):
        self.assertRefused(self.get(token=jwt(claims(), alg="ES256")))  # an EC-signed token
        self.assertRefused(self.get(token=jwt(claims(), header={"alg": "RS512"},
                                              sign_as="RS256")))
        self.assertRefused(self.get(token=jwt(claims(), header={"typ": "JWT"},
                                              sign_as="RS256")))  # no alg
        self.assertLogged("bad header")

    def test_crit_and_typ(self):
        self.assertRefused(self.get(token=jwt(claims(), header={"alg": "RS256", "crit": ["exp"]})))
        self.assertLogged("header has crit")
        self.assertRefused(self.get(token=jwt(claims(), header={"alg": "RS256", "typ": "JOSE"})))
        self.assertLogged("typ is not JWT")

    def test_tampered(self):
        t = jwt(claims())
        h, p, s = t.split(".")
        forged = b64url(json.dumps(claims(sub="admin")).encode())
        self.assertRefused(self.get(token=h + "." + forged + "." + s))
        sig = bytearray(base64.urlsafe_b64decode(s + "=" * (-len(s) % 4)))
        sig[10] ^= 1
        self.assertRefused(self.get(token=h + "." + p + "." + b64url(bytes(sig))))
        self.assertRefused(self.get(token=h + "." + p + "." + b64url(bytes(sig[:-1]))))
        self.assertRefused(self.get(token=h + "." + p + "."))
        self.assertLogged("bad signature")
        self.assertPasses(self.get(token=t))  # the untouched one still does

    def test_malformed(self):
        t = jwt(claims())
        h, p, s = t.split(".")
        for bad in (h + "." + p + "." + s + "==",  # padding
                    h + "." + p + "." + s.replace("-", "+").replace("_", "/") + "+/",
                    "!" + t[1:],
                    h + "." + p + "." + s + ".x",  # four parts: tried as an API key
                    h + ".." + s,
                    "..",
                    "not-a-token",
                    "Zm9v.YmFy.YmF6",
                    ""):
            self.assertRefused(self.get(headers=[("Authorization", "Bearer " + bad)]))
        self.assertLogged("not three base64url parts")
        self.assertLogged("unknown API key")

    def test_no_credential(self):
        r = self.get()
        self.assertRefused(r, given=False)
        self.assertLogged("no credential")
        # another scheme is not a bearer token that was refused
        self.assertRefused(self.get(headers=[("Authorization", "Basic YWxpY2U6cHc=")]),
                           given=False)
        self.assertRefused(self.get(headers=[("Authorization", "Bearerx " + jwt(claims()))]),
                           given=False)

    def test_either_credential(self):
        good, bad = jwt(claims()), jwt(claims(exp=1))
        self.assertPasses(self.get(token=bad, api_key="alpha-key-0001"))
        self.assertPasses(self.get(token=good, api_key="wrong"))
        self.assertPasses(self.get(token="alpha-key-0001"))
        self.assertRefused(self.get(token=bad, api_key="wrong"))

    def test_unrouted_and_head(self):
        self.assertRefused(self.get("/no/such/route"), given=False)  # not 404: nothing leaks
        r = self.get(method="HEAD", token=jwt(claims()))
        self.assertEqual(r.status, 200, r)

    def test_skip_defaults(self):
        for path in ("/healthz", "/readyz", "/metrics", "/healthz?probe=1"):
            r = self.get(path)
            self.assertEqual(r.status, 200, (path, r))
        for path in ("/healthz/", "/Healthz", "/healthz/x", "//healthz"):
            self.assertIn(self.get(path).status, (401,), path)

    def test_claims_readable_by_handler(self):
        """Asks the demo's /whoami (coil_jwt_claims as the body)."""
        c = claims(roles=["admin"], n=1.5)
        t = jwt(c)
        r = self.get("/whoami", token=t)
        if r.status == 404:
            self.skipTest("the demo has no GET /whoami route yet")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(json.loads(r.body), c)
        p = t.split(".")[1]
        self.assertEqual(r.body, base64.urlsafe_b64decode(p + "=" * (-len(p) % 4)))
        # a request let in by an API key has no claims
        r = self.get("/whoami", api_key="alpha-key-0001")
        self.assertEqual(r.status, 200, r)
        self.assertIn(r.body, (b"", b"{}"))


class Hs256(AuthCase):
    def setUp(self):
        self.srv = self.start("--log-level", "debug", "--jwt-key", KEYS.hs,
                              "--jwt-alg", "HS256", "--jwt-leeway", "0")

    def test_valid(self):
        self.assertPasses(self.get(token=jwt(claims(), alg="HS256")))

    def test_newline_not_part_of_secret(self):
        t = jwt(claims(), alg="HS256", key=KEYS.secret + b"\n")
        self.assertRefused(self.get(token=t))

    def test_other_secret_and_alg(self):
        self.assertRefused(self.get(token=jwt(claims(), alg="HS256", key=b"x" * 48)))
        self.assertRefused(self.get(token=jwt(claims(), alg="RS256")))
        self.assertLogged("alg not allowed")

    def test_no_leeway(self):
        self.assertRefused(self.get(token=jwt(claims(exp=int(time.time()) - 5), alg="HS256")))
        self.assertLogged("expired")

    def test_api_key_not_configured(self):
        self.assertRefused(self.get(api_key="alpha-key-0001"))
        self.assertRefused(self.get(token="alpha-key-0001"))
        self.assertLogged("not a JWT (no API keys are configured)")


class Es256(AuthCase):
    def setUp(self):
        self.srv = self.start("--jwt-key", KEYS.ec_pub, "--log-level", "debug")

    def test_valid(self):
        # several signatures: r and s with and without their top bit set
        for i in range(8):
            self.assertPasses(self.get(token=jwt(claims(n=i), alg="ES256")))

    def test_der_signature_refused(self):
        hp = b64url(b'{"alg":"ES256"}') + "." + b64url(json.dumps(claims()).encode())
        der = openssl("dgst", "-sha256", "-sign", KEYS.ec, data=hp.encode())
        self.assertRefused(self.get(token=hp + "." + b64url(der)))
        self.assertPasses(self.get(token=hp + "." + b64url(der_to_raw(der))))

    def test_rs256_refused(self):
        self.assertRefused(self.get(token=jwt(claims(), alg="RS256")))


# ---- API keys -----------------------------------------------------------------------------------

class ApiKeys(AuthCase):
    def setUp(self):
        self.srv = self.start("--workers", "2", "--log-level", "debug", "--api-keys", KEYS.api)

    def test_every_key_in_both_headers(self):
        for key in KEYS.api_keys:
            self.assertPasses(self.get(token=key))
            self.assertPasses(self.get(api_key=key))
        for scheme in ("bearer", "BEARER", "BeArEr"):
            self.assertPasses(self.get(headers=[("Authorization", scheme + " alpha-key-0001")]))

    def test_wrong_key(self):
        self.assertRefused(self.get(token="alpha-key-0002"))
        self.assertRefused(self.get(api_key="alpha-key-0002"))
        self.assertLogged("unknown API key")

    def test_no_key(self):
        self.assertRefused(self.get(), given=False)
        self.assertRefused(self.get(headers=[("X-API-Key", "")]))

    def test_shared_prefix(self):
        """Only the whole key matches (the comparison is of SHA-256 digests, every stored one
        compared with CRYPTO_memcmp: see check_api_key in engine/mw_auth.c)."""
        for near in ("k" * 40 + "2", "k" * 40, "k" * 40 + "1x", "k" * 41, "alpha-key-000",
                     "alpha-key-00011", "Alpha-key-0001"):
            self.assertRefused(self.get(api_key=near))
            self.assertRefused(self.get(token=near))

    def test_comments_and_blanks_are_not_keys(self):
        for not_key in ("# API keys for the tests", "#", "# an indented comment",
                        "API keys for the tests", ""):
            self.assertRefused(self.get(api_key=not_key))
        # leading and trailing spaces are not the key's, in the file or in the header
        self.assertPasses(self.get(headers=[("X-API-Key", "   alpha-key-0001   ")]))

    def test_jwt_shaped_bearer_is_a_key(self):
        self.assertPasses(self.get(token="a.b.c"))  # no JWT configured: tried as an API key
        self.assertRefused(self.get(token=jwt(claims())))

    def test_skip_list(self):
        self.assertEqual(self.get("/healthz").status, 200)
        self.assertEqual(self.get("/readyz").status, 200)
        self.assertRefused(self.get("/json"), given=False)


class Options(AuthCase):
    def test_token_size(self):
        """Up to 8 KiB a token is read; beyond, refused (with headers allowed to be larger)."""
        self.srv = self.start("--log-level", "debug", "--jwt-key", KEYS.ec_pub,
                              "--max-header-bytes", "32768")
        base = len(jwt(claims(pad=""), alg="ES256"))
        fits = jwt(claims(pad="x" * ((8192 - base) * 3 // 4)), alg="ES256")
        self.assertLessEqual(len(fits), 8192)
        self.assertGreater(len(fits), 8180)
        self.assertPasses(self.get(token=fits))
        t = jwt(claims(pad="x" * 6200), alg="ES256")
        self.assertGreater(len(t), 8192)
        self.assertRefused(self.get(token=t))
        self.assertLogged("token too long")

    def test_custom_skip(self):
        self.srv = self.start("--api-keys", KEYS.api, "--auth-skip", " /plaintext , /json")
        self.assertPasses(self.get("/plaintext"))
        self.assertEqual(self.get("/json").status, 200)
        self.assertRefused(self.get("/healthz"), given=False)

    def test_metrics_path_follows_its_option(self):
        self.srv = self.start("--api-keys", KEYS.api, "--metrics-path", "/_m")
        self.assertEqual(self.get("/_m").status, 200)
        self.assertRefused(self.get("/metrics"), given=False)

    def test_environment(self):
        self.srv = self.start(env={"COIL_API_KEYS": KEYS.api, "COIL_JWT_KEY": KEYS.ec_pub,
                                   "COIL_JWT_AUDIENCE": "api", "COIL_AUTH_SKIP": "/json"})
        self.assertPasses(self.get(api_key="alpha-key-0001"))
        self.assertPasses(self.get(token=jwt(claims(), alg="ES256")))
        self.assertRefused(self.get(token=jwt(claims(aud="web"), alg="ES256")))
        self.assertEqual(self.get("/json").status, 200)


# ---- start-up refusals --------------------------------------------------------------------------

class Refusals(unittest.TestCase):
    def refused(self, *args, says, env=None):
        p = subprocess.run([coil_bin(), "--port", "0", "--bind", "127.0.0.1"] + list(args),
                           capture_output=True, text=True, timeout=20, env=clean_env(env),
                           stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 2, "coil %s: exit %d\n%s" % (args, p.returncode, p.stderr))
        self.assertIn(says, p.stderr, args)
        self.assertNotRegex(p.stderr, r"Sanitizer|runtime error", args)
        return p

    def test_unreadable_files(self):
        missing = os.path.join(KEYS.dir, "no-such-file")
        self.refused("--api-keys", missing, says="cannot read " + missing)
        self.refused("--jwt-key", missing, says="cannot read " + missing)
        self.refused("--api-keys", KEYS.dir, says="cannot read " + KEYS.dir)

    def test_no_api_key_in_file(self):
        for text in (b"", b"\n\n", b"# only\n  # comments\n\n"):
            path = KEYS.write("empty.keys", text)
            self.refused("--api-keys", path, says="holds no API key")

    def test_control_character_in_key(self):
        path = KEYS.write("ctl.keys", b"good-key\nbad\x01key\n")
        self.refused("--api-keys", path, says="line 2")

    def test_bad_jwt_keys(self):
        self.refused("--jwt-key", KEYS.write("short.key", b"x" * 31 + b"\n"),
                     says="at least 32")
        self.refused("--jwt-key", KEYS.rsa_small_pub, says="1024 bits")
        self.refused("--jwt-key", KEYS.p384_pub, says="P-256")
        self.refused("--jwt-key", KEYS.rsa, says="private key")
        self.refused("--jwt-key", KEYS.write("bad.pem", b"-----BEGIN PUBLIC KEY-----\nAAAA\n"),
                     says="not a PEM public key")

    def test_bad_algs(self):
        self.refused("--jwt-key", KEYS.rsa_pub, "--jwt-alg", "none", says="never allowed")
        self.refused("--jwt-key", KEYS.rsa_pub, "--jwt-alg", "HS256", says="does not fit")
        self.refused("--jwt-key", KEYS.hs, "--jwt-alg", "RS256", says="does not fit")
        self.refused("--jwt-key", KEYS.hs, "--jwt-alg", "HS384", says="not one of")

    def test_options_without_keys(self):
        self.refused("--jwt-issuer", "idp", says="--jwt-issuer needs --jwt-key")
        self.refused("--api-keys", KEYS.api, "--jwt-alg", "RS256", says="--jwt-alg needs")
        self.refused("--jwt-leeway", "10s", says="--jwt-leeway needs")
        self.refused("--auth-skip", "/x", says="--auth-skip needs")
        self.refused("--api-keys", KEYS.api, "--auth-skip", "x", says="does not start with '/'")

    def test_bad_values(self):
        self.refused("--api-keys", "", says="refused")
        self.refused("--jwt-key", KEYS.hs, "--jwt-leeway", "forever", says="refused")
        self.refused("--jwt-key", KEYS.hs, "--jwt-issuer", "i" * 300, says="1 to 256 bytes")


if __name__ == "__main__":
    main()
