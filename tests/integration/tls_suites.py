#!/usr/bin/env python3
"""The HTTP/1.1 black-box suites rerun over TLS (issue 14): portico.py (the static-file
server) and conformance.py (the RFC 9110/9112 table against http_testsrv), each started with
PT_TLS=1, so that every client connection they open is wrapped by Python's ssl module
(ptest.connect, verified against a test CA for "localhost") and their servers listen with TLS
(portico: --listen-tls with an ECDSA P-256 certificate made here with the openssl CLI;
http_testsrv: a TLS listener when PT_TLS=1). Nothing of the suites is duplicated: this script
only runs them and relays their TAP lines, renumbered and prefixed with "tls/<suite>: ".
Runs once per backend (PORTICO_BACKEND) from tests/run.sh, like the suites themselves.
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import ptest  # noqa: E402
from ptest import t, failures, checks, make_certs  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
SUITES = [("portico.py", 400), ("conformance.py", 300)]     # (script, seconds allowed)
T0 = time.monotonic()


def relay(name, out, rc):
    """Prints the suite's TAP lines as our own; returns (passed, failed)."""
    passed = failed = 0
    for line in out.splitlines():
        m = re.match(r"^(ok|not ok) \d+ - ?(.*)$", line)
        if m:
            ok = m.group(1) == "ok"
            print("%s %d - tls/%s: %s" % (m.group(1), checks() + 1, name, m.group(2)), flush=True)
            ptest._n += 1               # keep ptest's counts in step with the relayed lines
            if not ok:
                ptest._failed += 1
            passed, failed = passed + ok, failed + (not ok)
        elif line.startswith("#"):
            print(line, flush=True)
        elif re.match(r"^\d+\.\.\d+$", line):
            continue
        elif line.strip():
            print("# " + line, flush=True)
    if rc != 0 and failed == 0:
        t(False, "tls/%s: exits 0" % name, "exit %r" % rc)
    return passed, failed


def main():
    tmp = tempfile.mkdtemp(prefix="pt-tls-suites-")
    try:
        certs = make_certs(os.path.join(tmp, "certs"))
        env = dict(os.environ, PT_TLS="1", PT_TLS_CERT=certs["a"][0], PT_TLS_KEY=certs["a"][1],
                   PT_TLS_CA=certs["ca"], PT_TLS_NAME="localhost")
        for name, limit in SUITES:
            t1 = time.monotonic()
            # its own process group: on a timeout the suite and the servers it started are killed
            p = subprocess.Popen([sys.executable, os.path.join(HERE, name)], env=env,
                                 stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
            try:
                raw, _ = p.communicate(timeout=limit)
                rc = p.returncode
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                raw, _ = p.communicate()
                rc = "timeout after %d s" % limit
            out = raw.decode("utf-8", "replace")
            passed, failed = relay(name, out, rc)
            print("# tls/%s: %d passed, %d failed in %.1f s" % (name, passed, failed, time.monotonic() - t1),
                  flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print("# %d checks in %.1f s (backend %s)" % (checks(), time.monotonic() - T0,
                                                 os.environ.get("PORTICO_BACKEND", "default")), flush=True)
    return 1 if failures() else 0


if __name__ == "__main__":
    sys.exit(main())
