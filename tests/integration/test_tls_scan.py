# SPDX-License-Identifier: MIT
"""TLS termination scanned by testssl.sh (Debian's package): no weak protocol, cipher category or
known vulnerability offered on the TLS port. In a file of its own because the scan takes as long
as all of test_tls.py (70-120 s on 2 loaded cores); it shares that file's certificates and
server set-up.
"""
import json
import os
import subprocess
import sys
import time

from coil_harness import main, need_tool
from test_tls import TLSCase, setUpModule, tearDownModule  # noqa: F401 (the module's fixtures)


# ---- testssl.sh ---------------------------------------------------------------------------------

# Findings about the test certificate's trust, not about the server: the test root is in no
# trust store, and the test certificates name no OCSP responder, CRL or CAA record. The scan
# does not run the certificate checks (-S), so none of these is expected; listed so that a
# flag change cannot make them fail the test.
TESTSSL_EXCLUDED = {
    "cert_chain_of_trust": "the test root is in no trust store",
    "cert_trust": "the test names are not public",
    "cert_revocation": "test certificates name no CRL or OCSP responder",
    "cert_ocspURL": "ditto",
    "cert_crlDistributionPoints": "ditto",
    "OCSP_stapling": "no OCSP responder to staple",
    "DNS_CAArecord": "no DNS for test names",
}
# testssl's ids of the vulnerability checks (-U), each of which must say not vulnerable
TESTSSL_VULNS = ("heartbleed", "CCS", "ticketbleed", "ROBOT", "secure_renego",
                 "secure_client_renego", "CRIME_TLS", "BREACH", "POODLE_SSL", "fallback_SCSV",
                 "SWEET32", "FREAK", "DROWN", "LOGJAM", "BEAST", "LUCKY13", "RC4")


class TestSSL(TLSCase):
    def test_testssl_finds_no_weakness(self):
        tool = need_tool("testssl")
        srv = self.start_tls("--workers", "2", cert="rsa")
        out_json = os.path.join(self.tempdir(), "testssl.json")
        # -p protocols, -s cipher categories, -U vulnerabilities; no DNS lookups (the target is
        # an address). The scan takes most of this file's time, hence the narrow choice.
        argv = [tool, "--warnings", "off", "--quiet", "--color", "0", "--nodns", "none",
                "--jsonfile", out_json, "-p", "-s", "-U", "127.0.0.1:%d" % srv.tls_port]
        t0 = time.monotonic()
        p = subprocess.run(argv, capture_output=True, text=True, timeout=240)
        elapsed = time.monotonic() - t0
        print("testssl took %.0fs" % elapsed, file=sys.stderr)
        out = p.stdout + p.stderr
        with open(out_json) as f:
            findings = json.load(f)
        by_id = {}
        for f in findings:
            by_id.setdefault(f["id"], []).append(f)
        problems = [f for f in findings if f["id"] not in TESTSSL_EXCLUDED
                    and f["severity"] in ("LOW", "MEDIUM", "HIGH", "CRITICAL", "FATAL", "WARN")]
        self.assertEqual(problems, [], out)

        def finding(name):
            self.assertIn(name, by_id, "testssl reported nothing for %s:\n%s" % (name, out))
            return by_id[name][0]["finding"]

        for name in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
            self.assertEqual(finding(name), "not offered", name)
        self.assertEqual(finding("TLS1_2"), "offered")
        self.assertTrue(finding("TLS1_3").startswith("offered"), finding("TLS1_3"))
        self.assertEqual(finding("ALPN"), "http/1.1")
        for cat in ("NULL", "aNULL", "EXPORT", "LOW", "3DES_IDEA", "AVERAGE"):
            self.assertEqual(finding("cipherlist_" + cat), "not offered", cat)
        self.assertEqual(finding("cipherlist_STRONG"), "offered")
        for name in TESTSSL_VULNS:
            sev = by_id.get(name, [{"severity": None}])[0]["severity"]
            self.assertIn(sev, ("OK", "INFO"), "%s: %r" % (name, by_id.get(name)))
        self.assertIn("not vulnerable", finding("heartbleed"))
        self.assertIn("not vulnerable", finding("CCS"))
        self.assertIn("not vulnerable", finding("secure_client_renego"))
        self.assertIn("not vulnerable", finding("CRIME_TLS"))



if __name__ == "__main__":
    main()
