#!/usr/bin/env python3
"""Memory after a burst (issue 19), against portico (both backends).

A burst of 1500 keep-alive connections (six blocks of connection objects), each with one GET,
the responses read only once every request is sent; then every connection closes. After the
housekeeping second the server must serve a second burst exactly as well (the blocks it gave
back are mapped again, their slots with new generations), and a request with more header
fields than a request object holds inline (the heap array) must be answered normally. On a
build without AddressSanitizer (whose quarantine keeps freed memory) RSS must also come back
to within 10 % (+ 128 KiB) of its pre-burst figure.

Bytes per idle keep-alive connection (issue 19: <= 256 B): against the release build
(PT_RELEASE_BUILD, when it is built), IDLE_N connections each answered and left open, with the
responses read at once (eager) and only once all are open (late); the RSS growth per connection
is printed for both and must stay under IDLE_MAX (make bench S7 measures the same against
nginx).
"""
import os, resource, shutil, signal, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ptest import t, skip, failures  # noqa: E402

B = os.environ.get("PT_BUILD", "build/san")
REL = os.environ.get("PT_RELEASE_BUILD", "build")
IDLE_N = 10000          # as make bench S7: fixed costs (buffer rings, free lists) spread out
IDLE_MAX = 280          # the 256 B plus slack for a loaded machine
N = 1500
REQ = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n"


def rss(pid):
    with open("/proc/%d/status" % pid) as f:
        for ln in f:
            if ln.startswith("VmRSS:"):
                return int(ln.split()[1]) * 1024
    return 0


def read_response(s):
    s.settimeout(10)
    got = b""
    while b"\r\n\r\n" not in got or not got.endswith(b"hello\n"):
        b = s.recv(4096)
        if not b:
            break
        got += b
    return got


def burst(port):
    """Opens N connections, sends a GET on each, then reads every response: (ok count, socks)."""
    socks = []
    for _ in range(N):
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(REQ)
        socks.append(s)
    ok = sum(1 for s in socks if read_response(s).startswith(b"HTTP/1.1 200"))
    return ok, socks


def start(build, root):
    p = subprocess.Popen([os.path.join(build, "portico"), "-l", "127.0.0.1:0", "-w", "1",
                          "--access-log", "off", root],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    return p, int(line.split("http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


def settled_rss(pid):
    prev = rss(pid)
    for _ in range(10):
        time.sleep(0.5)
        cur = rss(pid)
        if abs(cur - prev) <= 0.01 * prev:
            return cur
        prev = cur
    return prev


def idle_per_conn(root):
    """Issue 19: RSS per idle connection, both client patterns, on the release build."""
    if not os.path.exists(os.path.join(REL, "portico")):
        skip("bytes per idle connection", "no release build at %s" % REL)
        return
    if resource.getrlimit(resource.RLIMIT_NOFILE)[1] < IDLE_N + 200:   # each side has its own
        skip("bytes per idle connection", "RLIMIT_NOFILE too low for %d connections" % IDLE_N)
        return
    p, port = start(REL, root)
    try:
        time.sleep(0.3)
        rss0 = rss(p.pid)
        for late in (False, True):
            socks, ok = [], 0
            for _ in range(IDLE_N):
                s = socket.create_connection(("127.0.0.1", port), timeout=10)
                s.sendall(REQ)
                socks.append(s)
                if not late:
                    ok += read_response(s).startswith(b"HTTP/1.1 200")
            if late:
                ok = sum(1 for s in socks if read_response(s).startswith(b"HTTP/1.1 200"))
            time.sleep(3)       # as S7: the housekeeping (free lists, buffers) runs first
            per = (settled_rss(p.pid) - rss0) / max(ok, 1)
            name = "late" if late else "eager"
            print("# %s: %.0f B of RSS per idle connection (%d connections)" % (name, per, ok))
            t(ok == IDLE_N and per <= IDLE_MAX, "%s reads: <= %d B per idle connection" % (name, IDLE_MAX),
              "%d answered, %.0f B each" % (ok, per))
            for s in socks:
                s.close()
            time.sleep(2.5)     # the closes and the housekeeping second
    finally:
        stop(p)


def stop(p):
    """SIGTERM, then SIGKILL if the server is not gone within 10 s."""
    p.send_signal(signal.SIGTERM)
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * N + 200      # (the idle check needs more; it skips itself)
    if hard < need:
        skip("memory after a burst", "RLIMIT_NOFILE hard limit %d < %d" % (hard, need))
        return 0
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    root = tempfile.mkdtemp(prefix="pt-mem-")
    with open(os.path.join(root, "hello.txt"), "w") as f:
        f.write("hello\n")
    p = subprocess.Popen([os.path.join(B, "portico"), "-l", "127.0.0.1:0", "--access-log", "off",
                          root], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = p.stdout.readline()
        port = int(line.split("http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
        time.sleep(0.3)
        rss0 = rss(p.pid)
        ok, socks = burst(port)
        t(ok == N, "first burst: %d connections answered" % N, ok)
        for s in socks:
            s.close()
        time.sleep(3.5)         # the housekeeping second, twice, plus the closes
        rss1 = rss(p.pid)
        ok, socks = burst(port)
        t(ok == N, "second burst after the blocks were given back: all answered", ok)
        for s in socks:
            s.close()
        many = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n" + b"".join(
            b"X-F%d: %d\r\n" % (i, i) for i in range(40)) + b"\r\n"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
            s.sendall(many)
            r = read_response(s)
        t(r.startswith(b"HTTP/1.1 200"), "a request with 41 header fields is answered", r[:80])
        idle_per_conn(root)
        if "san" in os.path.basename(os.path.normpath(B)):
            skip("RSS given back after the burst", "AddressSanitizer build (quarantine)")
        else:
            print("# RSS before %d, after %d" % (rss0, rss1))
            t(rss1 <= rss0 * 1.10 + 128 * 1024, "RSS given back after the burst",
              "before %d, 3.5 s after closing %d" % (rss0, rss1))
    finally:
        stop(p)
        shutil.rmtree(root, True)
    return 1 if failures() else 0


if __name__ == "__main__":
    sys.exit(main())
