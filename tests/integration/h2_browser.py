#!/usr/bin/env python3
"""HTTP/2 in a browser (issue 16): headless Chromium loads www/ from portico over TLS (ALPN
h2), and its net log (--log-net-log) must show an HTTP/2 session that carried the page and its
stylesheet, each answered 200. A skip when Chromium is missing (scripts/deps.sh test installs
it). The browser's side does not depend on the engine backend: pt-test: once."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import ptest  # noqa: E402
from ptest import t, skip, failures, make_certs, read_text, sanitizer_clean  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
B = os.environ.get("PT_BUILD") or os.path.join(REPO, "build", "san")
PROCS = []


def chromium(tmp, certs):
    exe = shutil.which("chromium")
    if not exe:
        skip("Chromium loads www/ over HTTP/2", "no chromium (scripts/deps.sh test installs it)")
        return
    out = os.path.join(tmp, "chr.out")
    with open(out, "wb") as o, open(os.path.join(tmp, "chr.err"), "wb") as e:
        p = subprocess.Popen([os.path.join(B, "portico"), "--listen-tls", "127.0.0.1:0",
                              "--tls-cert", certs["a"][0], "--tls-key", certs["a"][1],
                              "-l", "127.0.0.1:0", "-w", "2", os.path.join(REPO, "www")],
                             stdout=o, stderr=e, stdin=subprocess.DEVNULL)
    PROCS.append(p)
    port = ptest.wait_for(lambda: ptest.announced_port(read_text(out), "https"), 10)
    if not port:
        t(False, "portico for Chromium starts", read_text(out))
        return
    netlog = os.path.join(tmp, "netlog.json")
    try:
        c = subprocess.run([exe, "--headless=new", "--no-sandbox", "--disable-gpu",
                            "--ignore-certificate-errors", "--no-first-run", "--disable-extensions",
                            "--user-data-dir=" + os.path.join(tmp, "chrprof"),
                            "--log-net-log=" + netlog, "--dump-dom",
                            "https://127.0.0.1:%d/" % port],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        dom, rc = c.stdout.decode("utf-8", "replace"), c.returncode
    except subprocess.TimeoutExpired:
        dom, rc = "", "timeout"
    t(rc == 0 and "<h1>Portico</h1>" in dom, "headless Chromium loads www/ over TLS", (rc, dom[:300]))
    sent, recv, proto = [], [], None
    try:
        with open(netlog) as f:
            d = json.load(f)
        names = {v: k for k, v in d["constants"]["logEventTypes"].items()}
        for e in d["events"]:
            n, prm = names.get(e["type"]), e.get("params") or {}
            if n == "HTTP2_SESSION_INITIALIZED":
                proto = prm.get("protocol")
            elif n == "HTTP2_SESSION_SEND_HEADERS":
                sent += [h[7:] for h in prm.get("headers", []) if h.startswith(":path: ")]
            elif n == "HTTP2_SESSION_RECV_HEADERS":
                recv += [h for h in prm.get("headers", []) if h.startswith(":status: ")]
    except (OSError, ValueError, KeyError) as ex:
        proto = repr(ex)
    t(proto == "h2" and "/" in sent and "/style.css" in sent and recv.count(":status: 200") >= 2,
      "Chromium's net log: an h2 session carried / and /style.css (200 each)", (proto, sent, recv))
    rc = ptest.stop_process(p)
    err = read_text(os.path.join(tmp, "chr.err"))
    t(rc == 0 and sanitizer_clean(err), "portico (Chromium's server) exits 0 after SIGTERM", (rc, err[-2000:]))


def main():
    tmp = tempfile.mkdtemp(prefix="pt-h2b-")
    try:
        chromium(tmp, make_certs(os.path.join(tmp, "certs")))
    except Exception:
        t(False, "browser test completed", traceback.format_exc())
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures() else 0


if __name__ == "__main__":
    sys.exit(main())
