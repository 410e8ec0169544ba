#!/usr/bin/env python3
"""PROXY protocol on portico's listeners (issue 21): --proxy-protocol --trusted-proxies.

 1. From a trusted source (127.0.0.1): v1 TCP4, v1 TCP6, v1 UNKNOWN, v2 TCP4 (with TLVs, and
    with a CRC32C TLV), v2 TCP6, v2 LOCAL each get their response, and the access log shows
    the header's client address (the real one for UNKNOWN and LOCAL); keep-alive requests on
    one proxied connection all log the header's address.
 2. The header split across reads (one byte per send, with pauses), and the header, the
    request and the next request in one send.
 3. Refused, closed without a response and counted in /metrics
    (portico_proxy_rejected_total): an untrusted source (bound to 127.0.0.2) with a valid
    header; malformed headers (v1 with a lone LF, a bad address, v2 with a truncated TLV or a
    bad CRC32C, too long); plain HTTP without a header; a header cut short by EOF; a slow
    header that misses --header-timeout (closed after it, not before).
 4. TLS after the PROXY header (v1 and v2) on --listen-tls: handshake, request, logged with the
    header's address.
 5. /metrics counts the accepted headers; the admin listener takes no header.
 6. --proxy-protocol without --trusted-proxies, and a bad CIDR, exit 2 naming the flag.
 7. The server exits 0 on SIGTERM, sanitizer-clean.

One TAP line per check. Runs once per backend (PORTICO_BACKEND) from tests/run.sh.
"""
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ptest import (t, failures, read_text, sanitizer_clean, wait_for,  # noqa: E402
                   stop_process, make_certs)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
B = os.environ.get("PT_BUILD") or os.path.join(REPO, "build", "san")
PORTICO = os.path.join(B, "portico")
SERVING = re.compile(r"^portico: serving .* at (https?)://127\.0\.0\.1:(\d+)/$", re.M)
ADMIN = re.compile(r"^portico: admin at http://[0-9.]+:(\d+)/", re.M)
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
HEADER_TIMEOUT = 2.0


def v2(cmd, fam, body):
    return SIG + bytes([0x20 | cmd, fam]) + struct.pack(">H", len(body)) + body


def v2_tcp4(src, sport, dst="10.0.0.1", dport=80, tlvs=b""):
    return v2(1, 0x11, socket.inet_aton(src) + socket.inet_aton(dst) +
              struct.pack(">HH", sport, dport) + tlvs)


def v2_tcp6(src, sport, dst="2001:db8::ff", dport=443):
    return v2(1, 0x21, socket.inet_pton(socket.AF_INET6, src) +
              socket.inet_pton(socket.AF_INET6, dst) + struct.pack(">HH", sport, dport))


def crc32c(data):
    crc = 0xffffffff
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82f63b78 if crc & 1 else 0)
    return crc ^ 0xffffffff


def v2_with_crc(src, sport, bad=False):
    addrs = socket.inet_aton(src) + socket.inet_aton("10.0.0.1") + struct.pack(">HH", sport, 80)
    hdr = v2(1, 0x11, addrs + b"\x03\x00\x04\x00\x00\x00\x00")
    crc = crc32c(hdr) ^ (1 if bad else 0)
    return hdr[:-4] + struct.pack(">I", crc)


def req(target="/hello.txt", close=True):
    return ("GET %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (
        target, "Connection: close\r\n" if close else "")).encode()


class Server:
    def __init__(self, tmp, args):
        self.out = os.path.join(tmp, "portico.stdout")
        self.err = os.path.join(tmp, "portico.stderr")
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.p = subprocess.Popen([PORTICO] + args, stdout=o, stderr=e,
                                      stdin=subprocess.DEVNULL)
        txt = wait_for(lambda: (lambda s: s if ("admin at" in s or self.p.poll() is not None)
                                else None)(read_text(self.out)), 15) or ""
        self.ports = {m.group(1): int(m.group(2)) for m in SERVING.finditer(txt)}
        m = ADMIN.search(txt)
        self.admin = int(m.group(1)) if m else None
        if "http" not in self.ports or not self.admin:
            raise RuntimeError("portico did not start: %r %r" % (txt, read_text(self.err)[-2000:]))


def connect(port, source=None):
    s = socket.socket()
    s.settimeout(10)
    if source:
        s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


LEFT = {}   # bytes read past a response, per socket (pipelined responses)


def read_response(s):
    """(status, body) of one response framed by Content-Length, or None at EOF/reset."""
    buf = LEFT.pop(id(s), b"")
    try:
        while b"\r\n\r\n" not in buf:
            b = s.recv(65536)
            if not b:
                return None
            buf += b
        head, _, rest = buf.partition(b"\r\n\r\n")
        m = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
        n = int(m.group(1)) if m else 0
        while len(rest) < n:
            b = s.recv(65536)
            if not b:
                break
            rest += b
        LEFT[id(s)] = rest[n:]
        return int(head.split(b" ")[1]), rest[:n]
    except (ConnectionResetError, BrokenPipeError):
        return None


def closed_without_response(s, wait=5.0):
    """True when the server closes s (EOF or reset) without sending a byte."""
    s.settimeout(wait)
    try:
        return s.recv(100) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def one(port, data, source=None):
    s = connect(port, source)
    try:
        s.sendall(data)
        return read_response(s)
    finally:
        s.close()


def log_lines(path):
    return [ln for ln in read_text(path).splitlines() if ln.strip()]


def wait_log(path, n):
    return wait_for(lambda: len(log_lines(path)) >= n, 5) and log_lines(path)


def metrics(port):
    s = connect(port)
    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    st, body = read_response(s)
    s.close()
    out = {}
    for m in re.finditer(r'^(portico_proxy_\w+)(?:\{reason="(\w+)"\})? (\d+)', body.decode(), re.M):
        out[m.group(1) + (":" + m.group(2) if m.group(2) else "")] = int(m.group(3))
    return out


def check_trusted(srv, log):
    port = srv.ports["http"]
    cases = [
        ("v1 TCP4", b"PROXY TCP4 198.18.0.9 198.19.0.1 56324 80\r\n", "198.18.0.9"),
        ("v1 TCP6", b"PROXY TCP6 2001:db8::7 2001:db8::1 4000 80\r\n", "2001:db8::7"),
        ("v1 UNKNOWN", b"PROXY UNKNOWN\r\n", "127.0.0.1"),
        ("v2 TCP4 with TLVs", v2_tcp4("198.18.3.4", 1111, tlvs=b"\x01\x00\x02h2\x04\x00\x01z"
                                      b"\x20\x00\x05\x01\x00\x00\x00\x00"), "198.18.3.4"),
        ("v2 TCP4 with CRC32C", v2_with_crc("198.18.3.5", 1112), "198.18.3.5"),
        ("v2 TCP6", v2_tcp6("2001:db8::8", 2222), "2001:db8::8"),
        ("v2 LOCAL", v2(0, 0, b""), "127.0.0.1"),
    ]
    n0 = len(log_lines(log))
    for i, (name, hdr, addr) in enumerate(cases):
        r = one(port, hdr + req())
        t(r is not None and r[0] == 200 and r[1] == b"hello\n", "trusted %s: 200" % name, r)
        lines = wait_log(log, n0 + i + 1) or []
        last = lines[-1] if lines else ""
        t(last.startswith(addr + " "), "trusted %s: access log shows %s" % (name, addr), last)
    # keep-alive: three requests in one send and one more later, on one proxied connection
    n0 = len(log_lines(log))
    s = connect(port)
    s.sendall(b"PROXY TCP4 198.18.7.7 10.0.0.1 7 80\r\n" + req(close=False) * 3)
    rs = [read_response(s) for _ in range(3)]
    s.sendall(req())
    rs.append(read_response(s))
    LEFT.pop(id(s), None)
    s.close()
    t(all(r and r[0] == 200 for r in rs), "keep-alive: 4 requests answered after one header", rs)
    lines = (wait_log(log, n0 + 4) or [])[n0:]
    t(len(lines) == 4 and all(ln.startswith("198.18.7.7 ") for ln in lines),
      "keep-alive: every request logged with the header's address", lines)


def check_split(srv, log):
    port = srv.ports["http"]
    for name, hdr, addr in (("v1", b"PROXY TCP4 198.18.9.1 10.0.0.1 9 80\r\n", "198.18.9.1"),
                            ("v2", v2_tcp4("198.18.9.2", 9), "198.18.9.2")):
        n0 = len(log_lines(log))
        s = connect(port)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(len(hdr)):
            s.send(hdr[i:i + 1])
            time.sleep(0.005)
        s.sendall(req())
        r = read_response(s)
        s.close()
        lines = wait_log(log, n0 + 1) or [""]
        t(r and r[0] == 200 and lines[-1].startswith(addr + " "),
          "%s header one byte per send: 200, logged as %s" % (name, addr), (r, lines[-1]))
    # the last header byte with the request in the same send
    s = connect(port)
    s.sendall(b"PROXY TCP4 198.18.9.3 10.0.0.1 9 80\r")
    time.sleep(0.05)
    s.sendall(b"\n" + req())
    r = read_response(s)
    s.close()
    t(r and r[0] == 200, "header end and request in one send: 200", r)


def check_refused(srv):
    port = srv.ports["http"]
    before = metrics(srv.admin)
    s = connect(port, source="127.0.0.2")
    ok = closed_without_response(s)
    s.close()
    t(ok, "untrusted source 127.0.0.2: closed at once (before it sends)")
    try:
        r = one(port, b"PROXY TCP4 198.18.0.1 10.0.0.1 1 80\r\n" + req(), source="127.0.0.2")
    except (ConnectionResetError, BrokenPipeError):
        r = None
    t(r is None, "untrusted source with a valid header: no response", r)
    bad = [("v1 lone LF", b"PROXY TCP4 198.18.0.1 10.0.0.1 1 80\n"),
           ("v1 bad address", b"PROXY TCP4 198.18.0.256 10.0.0.1 1 80\r\n"),
           ("v1 without CRLF in 107 bytes", b"PROXY UNKNOWN " + b"x" * 120),
           ("v2 truncated TLV", v2_tcp4("198.18.0.1", 1, tlvs=b"\x01\x00\x09h2")),
           ("v2 bad CRC32C", v2_with_crc("198.18.0.1", 1, bad=True)),
           ("v2 version 1", SIG + b"\x11\x11\x00\x0c" + bytes(12)),
           ("v2 too long", SIG + b"\x21\x11\xff\xff"),
           ("plain HTTP", b""),
           ("TLS ClientHello", b"\x16\x03\x01\x00\x05hello")]
    for name, hdr in bad:
        s = connect(port)
        try:
            s.sendall(hdr + req())
        except (ConnectionResetError, BrokenPipeError):
            pass
        ok = closed_without_response(s)
        s.close()
        t(ok, "malformed (%s): closed without a response" % name)
    s = connect(port)
    s.sendall(b"PROXY TCP4 198.18.0.1 10.0")
    s.shutdown(socket.SHUT_WR)
    ok = closed_without_response(s)
    s.close()
    t(ok, "header cut short by EOF: closed")
    # slow: part of the header, then nothing: closed by --header-timeout, not before
    s = connect(port)
    t0 = time.monotonic()
    s.sendall(b"PROXY TCP4 198.18.0.1 ")
    ok = closed_without_response(s, wait=HEADER_TIMEOUT + 8)
    dt = time.monotonic() - t0
    s.close()
    t(ok and dt >= HEADER_TIMEOUT - 0.1, "slow header: closed after --header-timeout "
      "(%.1f s, limit %.1f s)" % (dt, HEADER_TIMEOUT), dt)
    after = wait_for(lambda: (lambda m: m if m.get("portico_proxy_rejected_total:timeout", 0) >
                              before.get("portico_proxy_rejected_total:timeout", 0) else None)(
        metrics(srv.admin)), 5) or metrics(srv.admin)

    def d(k):
        return after.get(k, 0) - before.get(k, 0)
    t(d("portico_proxy_rejected_total:untrusted") == 2, "metrics: 2 untrusted", (before, after))
    t(d("portico_proxy_rejected_total:malformed") == len(bad) + 1,
      "metrics: %d malformed (with the EOF)" % (len(bad) + 1), (before, after))
    t(d("portico_proxy_rejected_total:timeout") == 1, "metrics: 1 timeout", (before, after))


def check_tls(srv, log):
    port = srv.ports["https"]
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    for name, hdr, addr in (("v1", b"PROXY TCP4 198.18.5.1 10.0.0.1 5 443\r\n", "198.18.5.1"),
                            ("v2", v2_tcp6("2001:db8::55", 5), "2001:db8::55")):
        n0 = len(log_lines(log))
        raw = connect(port)
        raw.sendall(hdr)
        r = None
        try:
            ts = ctx.wrap_socket(raw, server_hostname="localhost")
            ts.sendall(req())
            r = read_response(ts)
            ts.close()
        except (ssl.SSLError, OSError) as e:
            r = repr(e)
        lines = wait_log(log, n0 + 1) or [""]
        t(isinstance(r, tuple) and r[0] == 200 and lines[-1].startswith(addr + " "),
          "TLS after a %s header: 200, logged as %s" % (name, addr), (r, lines[-1]))


def check_options(tmp):
    for args, want in ((["--proxy-protocol"], "--trusted-proxies"),
                       (["--proxy-protocol", "--trusted-proxies", "10.0.0.0/33"],
                        "--trusted-proxies")):
        p = subprocess.run([PORTICO, "-l", "127.0.0.1:0"] + args + [tmp], capture_output=True,
                           timeout=20, stdin=subprocess.DEVNULL)
        err = p.stderr.decode(errors="replace")
        t(p.returncode == 2 and want in err, "%s: exit 2 naming %s" % (" ".join(args), want),
          (p.returncode, err))


def main():
    if not os.access(PORTICO, os.X_OK):
        print("1..0 # SKIP %s not built" % PORTICO)
        return 0
    tmp = tempfile.mkdtemp(prefix="pt-proxy.")
    srv = None
    try:
        root = os.path.join(tmp, "root")
        os.makedirs(root)
        with open(os.path.join(root, "hello.txt"), "wb") as f:
            f.write(b"hello\n")
        certs = make_certs(os.path.join(tmp, "certs"))
        log = os.path.join(tmp, "access.log")
        srv = Server(tmp, ["-l", "127.0.0.1:0", "--listen-tls", "127.0.0.1:0",
                           "--tls-cert", certs["a"][0], "--tls-key", certs["a"][1],
                           "--proxy-protocol", "--trusted-proxies", "127.0.0.1/32,::1",
                           "--header-timeout", str(HEADER_TIMEOUT), "--admin", "127.0.0.1:0",
                           "--access-log", log, "--workers", "2", root])
        for fn, args in ((check_trusted, (srv, log)), (check_split, (srv, log)),
                         (check_refused, (srv,)), (check_tls, (srv, log))):
            try:
                fn(*args)
            except Exception:
                t(False, fn.__name__ + " raised", traceback.format_exc())
        m = metrics(srv.admin)
        t(m.get("portico_proxy_headers_total", 0) >= 13,
          "metrics: accepted headers counted (portico_proxy_headers_total)", m)
        check_options(root)
        rc = stop_process(srv.p, signal.SIGTERM, 20)
        err = read_text(srv.err)
        t(rc == 0 and sanitizer_clean(err), "exits 0 on SIGTERM, sanitizer-clean",
          (rc, err[-3000:]))
        srv = None
    finally:
        if srv:
            stop_process(srv.p, signal.SIGKILL, 5)
        shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures() else 0


if __name__ == "__main__":
    sys.exit(main())
