#!/usr/bin/env python3
"""portico-load against the portico server (issue 19), briefly in each mode: HTTP/1.1
keep-alive, pipelining, a new connection per request, each over plaintext and TLS, and HTTP/2
(h2 by ALPN over TLS, h2c with prior knowledge), one stream and several per connection, and a
new connection per stream. For every mode portico-load's JSON must show responses and no
error, its body bytes must be 13 per completed response, and the server's access log must hold
between "requests" (completed) and "sent" new lines (requests still in flight when the run
stopped may or may not have been answered). Two more runs set --batch (the engine's
batch_wait: a batch larger than what is outstanding, woken by --batch-us; and off). Also: --help, bad usage (exit 2), nothing
listening (connect errors counted, no response: exit 1). One TAP line per check; the server must exit 0 after
SIGTERM (ASan/LSan clean)."""
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import ptest  # noqa: E402
from ptest import t, failures, make_certs, sanitizer_clean, free_port  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
B = os.environ.get("PT_BUILD") or os.path.join(REPO, "build", "san")
LOAD = os.path.join(B, "portico-load")
BODY = b"Hello, World!"
MODES = [
    ("http", [], "keep-alive"),
    ("http", ["--pipeline", "8"], "pipeline 8"),
    ("http", ["--new-conn"], "new connection per request"),
    ("https", [], "TLS keep-alive"),
    ("https", ["--pipeline", "4"], "TLS pipeline 4"),
    ("https", ["--new-conn"], "TLS new connection per request (resumption)"),
    ("https", ["--h2", "--streams", "4"], "h2 (ALPN), 4 streams"),
    ("http", ["--h2"], "h2c prior knowledge, 1 stream"),
    ("http", ["--h2", "--streams", "8"], "h2c prior knowledge, 8 streams"),
    ("https", ["--h2", "--new-conn"], "h2, a new connection per stream"),
    ("http", ["--batch", "3", "--batch-us", "300"],
     "keep-alive, --batch 3 with 2 requests outstanding per worker (woken by the batch time)"),
    ("http", ["--pipeline", "8", "--batch", "0"], "pipeline 8, --batch 0 (a wake per completion)"),
]


def log_lines(path):
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def settled_lines(path, timeout=8.0):
    """The access log's line count once it has stopped growing (the server writes late lines
    of requests that were in flight when the client stopped)."""
    last, since = log_lines(path), time.monotonic()
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        time.sleep(0.2)
        n = log_lines(path)
        if n != last:
            last, since = n, time.monotonic()
        elif time.monotonic() - since >= 1.5:   # the log is flushed within a second
            break
    return last


def run_load(args, timeout=60):
    p = subprocess.run([LOAD] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=timeout, text=True)
    return p.returncode, p.stdout, p.stderr


def check_mode(ports, alog, scheme, extra, name, tmp):
    before = settled_lines(alog)
    out = os.path.join(tmp, "r.json")
    url = "%s://127.0.0.1:%d/hello.txt" % (scheme, ports[scheme])
    rc, so, se = run_load(["-c", "4", "-t", "2", "-d", "1", "--json", out] + extra + [url])
    try:
        with open(out) as f:
            r = json.load(f)
    except (OSError, ValueError) as e:
        t(False, "%s: portico-load ran (exit %d)" % (name, rc), "%r %s %s" % (e, so, se[-2000:]))
        return
    errs = {k: v for k, v in r["errors"].items() if v}
    t(rc == 0 and r["requests"] > 0 and not errs and r["status"]["2xx"] == r["requests"],
      "%s: %d responses, all 2xx, no errors, exit 0" % (name, r["requests"]),
      "rc %d %s %s" % (rc, r, se[-2000:]))
    lo, hi = r["requests"] * len(BODY), r["sent"] * len(BODY)
    t(lo <= r["body_bytes"] <= hi, "%s: body bytes %d, 13 per response" % (name, r["body_bytes"]),
      (lo, hi))
    got = settled_lines(alog) - before
    t(r["requests"] <= got <= r["sent"],
      "%s: the server logged %d requests (portico-load: %d completed, %d sent)" %
      (name, got, r["requests"], r["sent"]))
    if "--new-conn" in extra:
        t(r["connects"] >= r["requests"], "%s: %d connections for %d responses" %
          (name, r["connects"], r["requests"]))
    want = next((int(extra[i + 1]) for i, a in enumerate(extra) if a == "--batch"), None)
    if want is not None:
        t(r["batch"] == (want if want > 1 else 0), "%s: JSON batch %d" % (name, r["batch"]), r)
    lat = r["latency_us"]
    t(lat["count"] == r["requests"] and lat["p50"] <= lat["p90"] <= lat["p99"] <= lat["max"],
      "%s: latency histogram consistent (p50 %d, p99 %d, max %d us)" %
      (name, lat["p50"], lat["p99"], lat["max"]), lat)


def check_cli(ports):
    rc, so, _ = run_load(["--help"])
    t(rc == 0 and "SYNOPSIS" in so and "--pipeline" in so and "--h2" in so, "--help: usage text")
    bad = [["-c", "0", "http://127.0.0.1:1/"], ["ftp://x/"], ["--pipeline", "2000", "http://a/"],
           [], ["http://127.0.0.1:%d/" % ports["http"], "https://127.0.0.1:%d/" % ports["https"]]]
    rcs = [run_load(a)[0] for a in bad]
    t(rcs == [2] * len(bad), "bad usage exits 2 with a message", rcs)
    dead = free_port()
    rc, so, se = run_load(["-c", "2", "-d", "0.5", "--timeout", "1000", "--json", "-", "-q",
                           "http://127.0.0.1:%d/" % dead])
    try:
        r = json.loads(so)
    except ValueError:
        r = {"errors": {}, "requests": -1}
    t(rc == 1 and r["requests"] == 0 and r["errors"].get("connect", 0) > 0,
      "nothing listening: connect errors counted, exit 1", (rc, so, se[-500:]))


def main():
    if not os.access(LOAD, os.X_OK):
        t(False, "portico-load built", LOAD)
        sys.exit(1)
    tmp = tempfile.mkdtemp(prefix="ptload.")
    srv = None
    try:
        certs = make_certs(os.path.join(tmp, "certs"))
        root = os.path.join(tmp, "www")
        os.mkdir(root)
        with open(os.path.join(root, "hello.txt"), "wb") as f:
            f.write(BODY)
        alog = os.path.join(tmp, "access.log")
        open(alog, "w").close()
        srv = subprocess.Popen([os.path.join(B, "portico"), "-w", "2", "-l", "127.0.0.1:0",
                                "--listen-tls", "127.0.0.1:0", "--tls-cert", certs["a"][0],
                                "--tls-key", certs["a"][1], "--h2c", "--access-log", alog, root],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        text = ""
        ports = {}
        deadline = time.monotonic() + 20
        while len(ports) < 2 and time.monotonic() < deadline:
            line = srv.stdout.readline()
            if not line:
                break
            text += line
            m = re.search(r"at (https?)://127\.0\.0\.1:(\d+)/", line)
            if m:
                ports[m.group(1)] = int(m.group(2))
        if len(ports) < 2:
            t(False, "portico started", text + srv.stderr.read()[-2000:] if srv.poll() else text)
            return
        for scheme, extra, name in MODES:
            check_mode(ports, alog, scheme, extra, name, tmp)
        check_cli(ports)
    finally:
        if srv:
            rc = ptest.stop_process(srv)
            err = srv.stderr.read()
            t(rc == 0 and sanitizer_clean(err), "portico exits 0 after SIGTERM, sanitizers clean",
              "rc %s %s" % (rc, err[-3000:]))
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failures() else 0)


if __name__ == "__main__":
    main()
