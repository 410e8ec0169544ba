#!/usr/bin/env python3
"""Soak test of the portico server (make soak; not part of make test).

Runs the release build (build/portico, or PT_RELEASE_BUILD/portico) on a loopback port with a
document root of small and large files, and drives it for SOAK_SECONDS (default 300) with
every class of client at once:

  well-behaved  keep-alive GET/HEAD/Range of small and large files; every body is verified
  slow          readers far below the link speed (but above --min-send-rate), requests sent
                in dribbles, keep-alive connections idle between requests (below the
                timeouts); all must succeed
  abusive       malformed requests (garbage, bare LF, CL+TE, huge and too many header
                fields, long targets, traversal), slowloris connections, pipelined bursts
                that are never read; each must be refused (4xx) or cut within its timeout
  resetting     resets (SO_LINGER 0) mid-response, right after connecting, mid-request

Every SAMPLE_SECONDS it samples the server's RSS and descriptors (/proc/PID). At the end it
stops the clients, waits for the server's connections to go, and reports RSS at start, after
the warm-up, peak and end; descriptors and sockets at the baseline and at the end; requests
per class and errors. It fails (exit 1) when:
  - a well-behaved or slow client saw any error, or an abusive client an unbounded answer;
  - the RSS at the end is above the RSS after the warm-up by more than 10% or 2 MiB;
  - the descriptor or socket count at the end is above the baseline;
  - the server died, or did not exit 0 on SIGTERM.
Env: SOAK_SECONDS, SOAK_WORKERS (server workers, default 2), PT_RELEASE_BUILD.
"""
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
from ptest import read_text, sanitizer_clean, wait_for, HttpConn  # noqa: E402

BUILD = os.environ.get("PT_RELEASE_BUILD") or os.path.join(REPO, "build")
PORTICO = os.path.join(BUILD, "portico")
SECONDS = float(os.environ.get("SOAK_SECONDS", "300"))
WORKERS = os.environ.get("SOAK_WORKERS", "2")
SAMPLE_SECONDS = 2.0
HEADER_TIMEOUT = 5
IDLE_TIMEOUT = 10
DRAIN_TIMEOUT = 5
OPTS = ["--header-timeout", str(HEADER_TIMEOUT), "--idle-timeout", str(IDLE_TIMEOUT),
        "--body-timeout", "5", "--drain-timeout", str(DRAIN_TIMEOUT), "--shutdown-timeout", "3"]
MIB = 1 << 20
STOP = threading.Event()


# ---- statistics ------------------------------------------------------------------------------------

class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.done = {}
        self.errors = {}
        self.samples = {}

    def ok(self, cls, n=1):
        with self.lock:
            self.done[cls] = self.done.get(cls, 0) + n

    def error(self, cls, what):
        with self.lock:
            self.errors.setdefault(cls, []).append(what)


STATS = Stats()


# ---- the document root ---------------------------------------------------------------------------

def build_root(tmp):
    root = os.path.join(tmp, "root")
    os.makedirs(os.path.join(root, "small"))
    os.makedirs(os.path.join(root, "large"))
    files = {}
    rnd = random.Random(1)
    for i in range(200):
        size = rnd.choice([0, 1, 100, 1000, 4000, 16384, 16385, 30000, 65536])
        data = os.urandom(size)
        rel = "/small/s%03d.bin" % i
        files[rel] = data
    for i, size in enumerate([MIB, 2 * MIB, 4 * MIB, 8 * MIB, 32 * MIB]):
        files["/large/l%d.bin" % i] = os.urandom(size)
    files["/index.html"] = b"<!DOCTYPE html><title>soak</title>\n"
    for rel, data in files.items():
        with open(os.path.join(root, rel.lstrip("/")), "wb") as f:
            f.write(data)
    small = sorted(k for k in files if k.startswith("/small/"))
    large = sorted(k for k in files if k.startswith("/large/"))
    return root, files, small, large


# ---- the server ----------------------------------------------------------------------------------------

class Server:
    def __init__(self, tmp, root):
        self.out = os.path.join(tmp, "stdout")
        self.err = os.path.join(tmp, "stderr")
        args = [PORTICO, "-l", "127.0.0.1:0", "-w", WORKERS] + OPTS + [root]
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.p = subprocess.Popen(args, stdout=o, stderr=e, stdin=subprocess.DEVNULL)
        self.port = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and self.p.poll() is None:
            m = re.search(r"at http://127\.0\.0\.1:(\d+)/", read_text(self.out))
            if m and "backend," in read_text(self.out):
                self.port = int(m.group(1))
                return
            time.sleep(0.02)
        raise RuntimeError("portico did not start: %s" % read_text(self.err)[-2000:])

    def alive(self):
        return self.p.poll() is None

    def rss_kib(self):
        try:
            with open("/proc/%d/status" % self.p.pid) as f:
                return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1))
        except (OSError, AttributeError):
            return 0

    def fds(self):
        total = socks = 0
        d = "/proc/%d/fd" % self.p.pid
        try:
            for n in os.listdir(d):
                try:
                    link = os.readlink(os.path.join(d, n))
                except OSError:
                    continue
                total += 1
                socks += link.startswith("socket:")
        except OSError:
            pass
        return total, socks

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            return self.p.wait(20)
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return "killed"


# ---- a client --------------------------------------------------------------------------------------------

class Conn(HttpConn):
    def response(self, head_only=False):
        return self.header_response(head_only)


def req(method, path, extra=""):
    return ("%s %s HTTP/1.1\r\nHost: soak\r\n%s\r\n" % (method, path, extra)).encode("latin1")


def reset_close(s):
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    s.close()


# ---- client classes ------------------------------------------------------------------------------------

def well_behaved(port, files, small, large, seed):
    rnd = random.Random(seed)
    cls = "well-behaved"
    while not STOP.is_set():
        c = None
        try:
            c = Conn(port, timeout=30)
            for _ in range(rnd.randint(1, 40)):
                if STOP.is_set():
                    break
                path = rnd.choice(large) if rnd.random() < 0.05 else rnd.choice(small)
                data = files[path]
                kind = rnd.random()
                if kind < 0.05:
                    c.send(req("HEAD", path))
                    st, h, body = c.response(head_only=True)
                    good = st == 200 and h.get("content-length") == str(len(data))
                elif kind < 0.12 and len(data) > 10:
                    a = rnd.randrange(len(data))
                    z = rnd.randrange(a, len(data))
                    c.send(req("GET", path, "Range: bytes=%d-%d\r\n" % (a, z)))
                    st, h, body = c.response()
                    good = st == 206 and body == data[a:z + 1]
                else:
                    c.send(req("GET", path))
                    st, h, body = c.response()
                    good = st == 200 and (body == data if len(data) < MIB else
                                          hashlib.sha1(body).digest() == hashlib.sha1(data).digest())
                if not good:
                    STATS.error(cls, "%s: status %d, %d bytes" % (path, st, len(body)))
                    break
                STATS.ok(cls)
        except Exception as e:  # noqa: BLE001 - every failure of a good client counts
            if not STOP.is_set():
                STATS.error(cls, repr(e))
        finally:
            if c:
                c.close()


def slow(port, files, small, large, seed):
    rnd = random.Random(seed)
    cls = "slow"
    while not STOP.is_set():
        kind = rnd.randrange(3)
        try:
            if kind == 0:                         # a slow reader: ~256 KB/s of a 1-2 MiB file
                path = rnd.choice(large[:2])
                c = Conn(port, timeout=30)
                c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
                c.send(req("GET", path))
                head = c.read_until(b"\r\n\r\n")
                n = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
                got = bytearray(c.buf)
                c.buf = bytearray()
                while len(got) < n and not STOP.is_set():
                    b = c.s.recv(min(16384, n - len(got)))
                    if not b:
                        raise EOFError("closed after %d of %d bytes" % (len(got), n))
                    got += b
                    time.sleep(0.06)
                if len(got) == n and bytes(got) != files[path]:
                    raise ValueError("%s: body differs" % path)
                c.close()
            elif kind == 1:                       # a request dribbled, 4 bytes every 50 ms
                path = rnd.choice(small)
                c = Conn(port, timeout=30)
                r = req("GET", path, "User-Agent: slow-sender/1.0\r\n")
                for i in range(0, len(r), 4):
                    c.send(r[i:i + 4])
                    time.sleep(0.05)
                st, h, body = c.response()
                if st != 200 or body != files[path]:
                    raise ValueError("%s: status %d" % (path, st))
                c.close()
            else:                                 # keep-alive, idle below --idle-timeout
                c = Conn(port, timeout=30)
                for _ in range(2):
                    path = rnd.choice(small)
                    c.send(req("GET", path))
                    st, h, body = c.response()
                    if st != 200 or body != files[path]:
                        raise ValueError("%s: status %d" % (path, st))
                    STOP.wait(IDLE_TIMEOUT * 0.4)
                c.close()
            STATS.ok(cls)
        except Exception as e:  # noqa: BLE001
            if not STOP.is_set():
                STATS.error(cls, "kind %d: %r" % (kind, e))


MALFORMED = [
    ("bare LF", b"GET / HTTP/1.1\nHost: x\n\n", (400,)),
    ("CL+TE", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
              b"0\r\n\r\n", (400,)),
    ("two Content-Length", b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2"
                           b"\r\n\r\nab", (400,)),
    ("obs-fold", b"GET / HTTP/1.1\r\nHost: x\r\nX: a\r\n b\r\n\r\n", (400,)),
    ("huge header", b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", (431,)),
    ("many headers", b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(150))
                     + b"\r\n", (431,)),
    ("long target", b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", (414,)),
    ("traversal", b"GET /../../etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    ("encoded traversal", b"GET /small/%2e%2e/%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    ("encoded slash", b"GET /small%2fs001.bin HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    ("no Host", b"GET / HTTP/1.1\r\n\r\n", (400,)),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", (400, 505)),
    ("bad version", b"GET / HTTP/1.7\r\nHost: x\r\n\r\n", (505, 400)),
    ("NUL", b"GET /\x00 HTTP/1.1\r\nHost: x\r\n\r\n", (400,)),
    ("dotfile", b"GET /.git/config HTTP/1.1\r\nHost: x\r\n\r\n", (404,)),
    ("method", b"DELETE /index.html HTTP/1.1\r\nHost: x\r\n\r\n", (405,)),
]


def abusive(port, files, small, large, seed):
    rnd = random.Random(seed)
    cls = "abusive"
    limit = HEADER_TIMEOUT + 5                    # every answer or cut must come before this
    while not STOP.is_set():
        kind = rnd.randrange(len(MALFORMED) + 2)
        s = None
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=limit)
            t0 = time.monotonic()
            if kind < len(MALFORMED):
                name, data, want = MALFORMED[kind]
                s.sendall(data)
                buf = b""
                try:
                    while True:
                        b = s.recv(65536)
                        if not b:
                            break
                        buf += b
                        if b"\r\n\r\n" in buf:  # the status is all we check
                            break
                except ConnectionResetError:
                    pass
                m = re.match(rb"HTTP/1\.1 (\d{3}) ", buf)
                if not m or int(m.group(1)) not in want:
                    STATS.error(cls, "%s: got %r" % (name, buf[:60]))
            elif kind == len(MALFORMED):          # garbage, then FIN: answered or closed
                s.sendall(bytes(rnd.randrange(256) for _ in range(rnd.randint(1, 3000))))
                s.shutdown(socket.SHUT_WR)
                while s.recv(65536):
                    pass
            else:                                 # a pipelined burst never read, then reset
                s.sendall(b"".join(req("GET", rnd.choice(small)) for _ in range(300)))
                time.sleep(0.2)
                reset_close(s)
                s = None
            if time.monotonic() - t0 > limit:
                STATS.error(cls, "kind %d took %.1f s" % (kind, time.monotonic() - t0))
            STATS.ok(cls)
        except socket.timeout:
            STATS.error(cls, "kind %d: no answer and no close within %d s" % (kind, limit))
        except (ConnectionResetError, BrokenPipeError):
            STATS.ok(cls)                         # refused by a reset: bounded, fine
        except Exception as e:  # noqa: BLE001
            if not STOP.is_set():
                STATS.error(cls, "kind %d: %r" % (kind, e))
        finally:
            if s:
                s.close()


def slowloris(port, count):
    """Keeps count connections that send a head one byte per second; each must be cut at
    --header-timeout (counted as "slowloris cut"), then it is replaced."""
    cls = "slowloris"
    head = b"GET /index.html HTTP/1.1\r\nHost: soak\r\nX-Slow: " + b"z" * 500
    conns = {}
    while not STOP.is_set():
        while len(conns) < count:
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=5)
                s.setblocking(False)
                conns[s] = [time.monotonic(), 0]
            except OSError as e:
                STATS.error(cls, "connect: %r" % e)
                break
        for s, st in list(conns.items()):
            gone = False
            try:
                s.send(head[st[1]:st[1] + 1])
                st[1] += 1
                if not s.recv(4096):
                    gone = True
            except BlockingIOError:
                pass
            except OSError:
                gone = True
            age = time.monotonic() - st[0]
            if gone:
                if age > HEADER_TIMEOUT + 3:
                    STATS.error(cls, "cut after %.1f s" % age)
                else:
                    STATS.ok(cls)
                s.close()
                del conns[s]
            elif age > HEADER_TIMEOUT + 3:
                STATS.error(cls, "still open after %.1f s" % age)
                s.close()
                del conns[s]
        STOP.wait(1.0)
    for s in conns:
        s.close()


def resetting(port, files, small, large, seed):
    rnd = random.Random(seed)
    cls = "resetting"
    while not STOP.is_set():
        kind = rnd.randrange(4)
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=10)
            if kind == 0:                         # mid-response
                s.sendall(req("GET", rnd.choice(large)))
                want, got = rnd.randrange(512 * 1024), 0
                while got < want:
                    b = s.recv(65536)
                    if not b:
                        break
                    got += len(b)
            elif kind == 1:                       # right after connecting
                pass
            elif kind == 2:                       # mid-request head
                s.sendall(b"GET /small/s001.bin HTTP/1.1\r\nHo")
            else:                                 # mid-body
                s.sendall(b"POST /index.html HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n"
                          + b"x" * rnd.randrange(50000))
            reset_close(s)
            STATS.ok(cls)
        except OSError as e:
            if not STOP.is_set():
                STATS.error(cls, "kind %d: %r" % (kind, e))
        time.sleep(0.01)


# ---- main ---------------------------------------------------------------------------------------------

def warm(srv, files):
    """Every file through both workers (so the open-file caches are full before the baseline)."""
    for _ in range(16):
        c = Conn(srv.port, timeout=30)
        for p in files:
            c.send(req("HEAD", p))
            c.response(head_only=True)
        c.close()


def sampler(srv, samples, t0):
    while not STOP.is_set():
        total, socks = srv.fds()
        samples.append((time.monotonic() - t0, srv.rss_kib(), total, socks))
        if len(samples) % 15 == 0:
            with STATS.lock:
                done = dict(STATS.done)
            print("soak: %4.0f s  RSS %6.1f MiB  fds %4d  sockets %4d  %s" % (
                samples[-1][0], samples[-1][1] / 1024, total, socks,
                " ".join("%s=%d" % kv for kv in sorted(done.items()))), flush=True)
        STOP.wait(SAMPLE_SECONDS)


def main():
    if not os.access(PORTICO, os.X_OK):
        print("soak: %s not built (make B=build build/portico)" % PORTICO)
        return 2
    tmp = tempfile.mkdtemp(prefix="pt-soak-")
    srv = None
    try:
        root, files, small, large = build_root(tmp)
        srv = Server(tmp, root)
        rss_start = srv.rss_kib()
        warm(srv, files)
        time.sleep(1.5)                           # open-file cache revalidation settles
        base = srv.fds()
        print("soak: %s, %s workers, %.0f s; baseline %d descriptors, %d sockets, RSS %.1f MiB" % (
            PORTICO, WORKERS, SECONDS, base[0], base[1], srv.rss_kib() / 1024), flush=True)
        samples = []
        t0 = time.monotonic()
        ths = [threading.Thread(target=sampler, args=(srv, samples, t0))]
        for i in range(4):
            ths.append(threading.Thread(target=well_behaved, args=(srv.port, files, small, large, 10 + i)))
        for i in range(2):
            ths.append(threading.Thread(target=slow, args=(srv.port, files, small, large, 20 + i)))
        for i in range(2):
            ths.append(threading.Thread(target=abusive, args=(srv.port, files, small, large, 30 + i)))
        ths.append(threading.Thread(target=slowloris, args=(srv.port, 20)))
        ths.append(threading.Thread(target=resetting, args=(srv.port, files, small, large, 40)))
        for x in ths:
            x.daemon = True
            x.start()
        warmup = min(60.0, max(10.0, SECONDS * 0.15))
        STOP.wait(warmup)
        rss_warm = srv.rss_kib()
        while time.monotonic() - t0 < SECONDS and srv.alive():
            time.sleep(0.5)
        STOP.set()
        for x in ths:
            x.join(60)
        stuck = [x.name for x in ths if x.is_alive()]
        # the server's side of the connections goes within its timeouts
        settled = wait_for(lambda: (lambda f: f[0] <= base[0] and f[1] <= base[1])(srv.fds()),
                           max(HEADER_TIMEOUT, IDLE_TIMEOUT, DRAIN_TIMEOUT) + 10, 0.2)
        time.sleep(1.0)
        end = srv.fds()
        rss_end = srv.rss_kib()
        peak = max([s[1] for s in samples] + [rss_end])
        alive = srv.alive()
        rc = srv.stop()
        err = read_text(srv.err)

        print()
        print("soak results (%.0f s, %s workers, release build)" % (time.monotonic() - t0, WORKERS))
        print("  RSS: start %.1f MiB, after warm-up (%.0f s) %.1f MiB, peak %.1f MiB, end %.1f MiB"
              % (rss_start / 1024, warmup, rss_warm / 1024, peak / 1024, rss_end / 1024))
        print("  descriptors: baseline %d, end %d; sockets: baseline %d, end %d%s" % (
            base[0], end[0], base[1], end[1], "" if settled else " (did not settle)"))
        for cls in ["well-behaved", "slow", "abusive", "slowloris", "resetting"]:
            errs = STATS.errors.get(cls, [])
            print("  %-13s %8d done, %d errors%s" % (cls, STATS.done.get(cls, 0), len(errs),
                                                     (": " + "; ".join(errs[:5])) if errs else ""))
        flat = rss_end <= rss_warm + max(2048, rss_warm * 0.10)
        checks = [
            ("no error for well-behaved and slow clients",
             not STATS.errors.get("well-behaved") and not STATS.errors.get("slow")),
            ("abusive clients answered or cut within their bounds",
             not STATS.errors.get("abusive") and not STATS.errors.get("slowloris")
             and not STATS.errors.get("resetting")),
            ("every class made progress", all(STATS.done.get(c, 0) > 0 for c in
                                              ["well-behaved", "slow", "abusive", "slowloris", "resetting"])),
            ("RSS flat: end within 10%% or 2 MiB of the value after warm-up (%+.1f MiB)" %
             ((rss_end - rss_warm) / 1024), flat),
            ("descriptors and sockets back to the baseline", end[0] <= base[0] and end[1] <= base[1]),
            ("server alive to the end, exit 0 on SIGTERM, nothing on stderr but start-up lines",
             alive and rc == 0 and sanitizer_clean(err) and not stuck),
        ]
        for name, ok in checks:
            print("  %s %s" % ("PASS" if ok else "FAIL", name))
        if err.strip():
            print("  server stderr (last lines):\n    " + "\n    ".join(err.strip().splitlines()[-5:]))
        if stuck:
            print("  client threads still running: %s" % stuck)
        return 0 if all(ok for _, ok in checks) else 1
    finally:
        STOP.set()
        if srv and srv.alive():
            srv.p.kill()
            srv.p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
