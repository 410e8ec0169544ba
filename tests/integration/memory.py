#!/usr/bin/env python3
"""Memory after a burst (issue 19), against portico (both backends).

A burst of 1500 keep-alive connections (six blocks of connection objects), each with one GET,
the responses read only once every request is sent; then every connection closes. After the
housekeeping second the server must serve a second burst exactly as well (the blocks it gave
back are mapped again, their slots with new generations), and a request with more header
fields than a request object holds inline (the heap array) must be answered normally. On a
build without AddressSanitizer (whose quarantine keeps freed memory) RSS must also come back
to within 10 % (+ 128 KiB) of its pre-burst figure.
"""
import os, resource, shutil, signal, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ptest import t, skip, failures  # noqa: E402

B = os.environ.get("PT_BUILD", "build/san")
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


def main():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 2 * N + 200
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
        if "san" in os.path.basename(os.path.normpath(B)):
            skip("RSS given back after the burst", "AddressSanitizer build (quarantine)")
        else:
            print("# RSS before %d, after %d" % (rss0, rss1))
            t(rss1 <= rss0 * 1.10 + 128 * 1024, "RSS given back after the burst",
              "before %d, 3.5 s after closing %d" % (rss0, rss1))
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        shutil.rmtree(root, True)
    return 1 if failures() else 0


if __name__ == "__main__":
    sys.exit(main())
