#!/usr/bin/env python3
"""What the counters cost (issue 18): S1 of `make bench` (13-byte file, keep-alive, 100
connections, wrk) against the release portico with one worker, the admin listener off, on, and
on while scraped, measured as server CPU per request.

Each run starts the server fresh, pinned to CPU 1 with taskset (all its threads, the admin
worker's too), and wrk pinned to CPU 0; the server's CPU time is read from /proc (utime +
stime of every thread) over the load. Variants alternate within each round (off, on, scraped,
off, ...) so that a slow minute of the machine hits all alike; the median per variant is
reported. Python 3 stdlib only; a standalone script beside bench.py, not one of its scenarios.

    bench/admin_cost.py [--rounds 5] [--duration 10]
"""
import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HZ = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    total = 0
    for tid in os.listdir("/proc/%d/task" % pid):
        try:
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def start(build, docroot, admin):
    args = ["taskset", "-c", "1", os.path.join(build, "portico"), "-l", "127.0.0.1:0", "-w", "1",
            "--access-log", "off"] + (["--admin", "127.0.0.1:0"] if admin else []) + [docroot]
    out = tempfile.TemporaryFile()
    p = subprocess.Popen(args, stdout=out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        out.seek(0)
        txt = out.read().decode()
        if "backend," in txt and (not admin or "admin at" in txt):
            port = int(re.search(r"at http://127\.0\.0\.1:(\d+)/", txt).group(1))
            m = re.search(r"admin at http://127\.0\.0\.1:(\d+)/", txt)
            return p, port, int(m.group(1)) if m else None
        time.sleep(0.05)
    p.kill()
    raise RuntimeError("portico did not start")


def scraper(port, stop, every):
    """GET /metrics and /status.json every `every` seconds until stop is set."""
    op = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    n = 0
    while not stop.wait(every):
        for path in ("/metrics", "/status.json"):
            op.open("http://127.0.0.1:%d%s" % (port, path), timeout=5).read()
            n += 1
    return n


def run(build, docroot, variant, duration):
    p, port, admin = start(build, docroot, variant != "off")
    try:
        stop = threading.Event()
        th = None
        if variant == "scraped":
            th = threading.Thread(target=scraper, args=(admin, stop, 1.0), daemon=True)
            th.start()
        subprocess.run(["taskset", "-c", "0", "wrk", "-t1", "-c100", "-d1s",
                        "http://127.0.0.1:%d/hello.txt" % port], capture_output=True)  # warm-up
        c0 = cpu_ticks(p.pid)
        r = subprocess.run(["taskset", "-c", "0", "wrk", "-t1", "-c100", "-d%ds" % duration,
                            "http://127.0.0.1:%d/hello.txt" % port], capture_output=True,
                           text=True)
        c1 = cpu_ticks(p.pid)
        stop.set()
        if th:
            th.join(5)
        reqs = int(re.search(r"(\d+) requests in", r.stdout).group(1))
        rps = float(re.search(r"Requests/sec:\s+([\d.]+)", r.stdout).group(1))
        return (c1 - c0) / HZ * 1e6 / reqs, rps
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(20)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=10)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    a = ap.parse_args()
    docroot = tempfile.mkdtemp(prefix="pt-admin-cost-")
    with open(os.path.join(docroot, "hello.txt"), "w") as f:
        f.write("Hello, world\n")
    variants = ["off", "on", "scraped"]
    res = {v: [] for v in variants}
    for rnd in range(a.rounds):
        order = variants[rnd % 3:] + variants[:rnd % 3]
        for v in order:
            us, rps = run(a.build, docroot, v, a.duration)
            res[v].append((us, rps))
            print("round %d %-8s %.3f us/request  %.0f req/s" % (rnd + 1, v, us, rps), flush=True)
    print("\nS1 (13 B, keep-alive, 100 connections, 1 worker on CPU 1, wrk on CPU 0), "
          "median of %d rounds of %d s:" % (a.rounds, a.duration))
    base = statistics.median(u for u, _ in res["off"])
    for v in variants:
        us = statistics.median(u for u, _ in res[v])
        rps = statistics.median(r for _, r in res[v])
        print("  admin %-8s %.3f us CPU/request (%+.1f %%), %.0f req/s  [%s]" % (
            v, us, 100 * (us - base) / base, rps,
            " ".join("%.3f" % u for u, _ in res[v])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
