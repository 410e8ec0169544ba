#!/usr/bin/env python3
"""testssl.sh (Debian package testssl.sh) against portico's TLS listener (issue 14).

pt-test: once (the TLS configuration does not depend on the engine backend; testssl is slow)

build/san/portico serves a small docroot over TLS with the default options and --hsts, with
an ECDSA P-256 certificate (and an RSA one for SNI) from a test CA made here with the openssl
CLI (valid a year, naming a CRL and an OCSP responder, so that a certificate check rates the
server and not the test certificate). testssl runs once with the checks
that concern the server's TLS: protocols (-p), cipher categories (-s), forward secrecy (-f),
server preferences (-P) and vulnerabilities (-U), --fast, trusting the test CA, bounded by
TIMEOUT seconds. (Certificate details, -S, rate the test certificate more than the server, and
tests/integration/tls.py checks the chain, tickets, HSTS and redirects itself.)

Checks: testssl finishes; protocols SSLv2, SSLv3, TLS 1.0 and 1.1 are not offered and TLS 1.2
and 1.3 are; no finding is rated "NOT ok", "VULNERABLE" or CRITICAL (the text report and the
JSON severities); the server exits 0 after SIGTERM with no sanitizer report. HIGH and MEDIUM
JSON findings are listed as TAP comments for information.
"""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ptest import t, skip, failures, checks, read_text, sanitizer_clean, wait_for, stop_process, \
    make_certs, announced_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
B = os.environ.get("PT_BUILD") or os.path.join(REPO, "build", "san")
PORTICO = os.path.join(B, "portico")
TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")
TIMEOUT = int(os.environ.get("PT_TESTSSL_TIMEOUT", "400"))
T0 = time.monotonic()


def main():
    if not TESTSSL:
        skip("testssl.sh finds nothing NOT ok, VULNERABLE or CRITICAL",
             "testssl.sh is not installed (scripts/deps.sh test installs it)")
        return 0
    if not os.access(PORTICO, os.X_OK):
        t(False, "portico binary exists", PORTICO)
        return 1
    tmp = tempfile.mkdtemp(prefix="pt-testssl-")
    srv = None
    try:
        certs = make_certs(os.path.join(tmp, "certs"), days=365, revocation=True)
        root = os.path.join(tmp, "root")
        os.makedirs(root)
        with open(os.path.join(root, "index.html"), "wb") as f:
            f.write(b"<!DOCTYPE html>\n<title>testssl</title>\n")
        out, err = os.path.join(tmp, "portico.out"), os.path.join(tmp, "portico.err")
        args = [PORTICO, "-w", "2", "-l", "127.0.0.1:0", "--listen-tls", "127.0.0.1:0",
                "--tls-cert", certs["a"][0], "--tls-key", certs["a"][1],
                "--tls-cert", certs["b"][0], "--tls-key", certs["b"][1],
                "--hsts", "31536000", root]
        with open(out, "wb") as o, open(err, "wb") as e:
            srv = subprocess.Popen(args, stdout=o, stderr=e, stdin=subprocess.DEVNULL)
        wait_for(lambda: "backend," in read_text(out) or srv.poll() is not None, 15)
        port = announced_port(read_text(out), "https")
        if srv.poll() is not None or "backend," not in read_text(out) or not port:
            t(False, "portico starts with a TLS listener", (srv.poll(), read_text(out), read_text(err)[-2000:]))
            return 1
        jsonf = os.path.join(tmp, "testssl.json")
        cmd = [TESTSSL, "--quiet", "--color", "0", "--warnings", "off", "--fast", "--nodns", "min",
               "--ip", "127.0.0.1", "--add-ca", certs["ca"], "--connect-timeout", "10",
               "--openssl-timeout", "10", "--jsonfile", jsonf,
               "-p", "-s", "-f", "-P", "-U", "https://localhost:%d/" % port]
        t1 = time.monotonic()
        p = subprocess.Popen(cmd, cwd=tmp, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            raw, _ = p.communicate(timeout=TIMEOUT)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            raw, _ = p.communicate()
            rc = "timeout after %d s" % TIMEOUT
        text = raw.decode("utf-8", "replace")
        secs = time.monotonic() - t1
        done = re.search(r"^ Done .*-->> 127\.0\.0\.1:%d" % port, text, re.M) is not None
        t(rc == 0 and done, "testssl %s finishes (%.0f s)" % (" ".join(cmd[cmd.index("-p"):-1]), secs),
          (rc, text[-3000:]))
        try:
            with open(jsonf) as f:
                findings = json.load(f)
        except (OSError, ValueError) as e:
            findings = []
            t(False, "testssl wrote its JSON report", repr(e))

        proto = {}
        for name in ("SSLv2", "SSLv3", "TLS 1", "TLS 1.1", "TLS 1.2", "TLS 1.3"):
            m = re.search(r"^ %s\s+(.*)$" % re.escape(name), text, re.M)
            proto[name] = m.group(1).strip() if m else None
        t(all(proto[n] and proto[n].startswith("not offered") for n in ("SSLv2", "SSLv3", "TLS 1", "TLS 1.1"))
          and all(proto[n] and proto[n].startswith("offered") for n in ("TLS 1.2", "TLS 1.3")),
          "testssl: only TLS 1.2 and TLS 1.3 offered", proto)
        bad_lines = [l.strip() for l in text.splitlines()
                     if "NOT ok" in l or "CRITICAL" in l or re.search(r"(?<!not )VULNERABLE", l)]
        t(not bad_lines, "testssl: no finding rated NOT ok, VULNERABLE or CRITICAL (text report)",
          "\n".join(bad_lines))
        crit = [x for x in findings if x.get("severity") == "CRITICAL"]
        t(not crit, "testssl: no CRITICAL finding (JSON report, %d findings)" % len(findings),
          "\n".join("%s: %s" % (x.get("id"), x.get("finding")) for x in crit))
        for x in findings:
            if x.get("severity") in ("HIGH", "MEDIUM"):
                print("# testssl %s %s: %s" % (x["severity"], x.get("id"), x.get("finding")), flush=True)
        rc2 = stop_process(srv, None, 15)
        e = read_text(err)
        t(rc2 == 0 and sanitizer_clean(e), "portico after testssl: SIGTERM -> exit 0, no sanitizer report",
          (rc2, e[-3000:]))
    finally:
        if srv is not None and srv.poll() is None:
            srv.kill()
            srv.wait()
        shutil.rmtree(tmp, ignore_errors=True)
        print("# %d checks in %.1f s" % (checks(), time.monotonic() - T0), flush=True)
    return 1 if failures() else 0


if __name__ == "__main__":
    sys.exit(main())
