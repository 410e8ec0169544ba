#!/usr/bin/env python3
"""Slow and hostile clients against the portico server (build/portico of PT_BUILD), each with a
bounded duration. Only what portico.py, portico_ops.py, http_api.py and conformance.py do not
cover already:

 1. half-closed connections: a request then shutdown(SHUT_WR) still gets its whole response
    (small file, 1 MiB sendfile); a pipelined batch (files, 404s, HEAD) then SHUT_WR gets every
    response, in order, then EOF. The same with requests that wait behind an asynchronous one,
    against the HTTP layer's test server (tests/integration/http_testsrv.c).
 2. a pipelined flood: 20 000 tiny requests written as fast as possible while the client reads
    slowly: every response arrives, in order, byte-exact; server RSS stays bounded.
 3. pipelined GETs of a file larger than the send queue (20 MiB, 4 MiB queue): all answered;
    4 clients that pipeline and never read (a small file, a 404): the server stops reading (the
    clients' writes block after a bounded amount), RSS stays bounded, and the connections are
    closed (MinSendRate / timeouts) within a bounded time.
 4. abrupt resets mid-response: 50 x (GET of a 20 MiB file, then close with SO_LINGER 0, some
    before reading anything); the server keeps serving others, and its socket and descriptor
    counts (/proc/PID/fd) return to the baseline.
 5. slow request bodies (portico never reads one: it answers, then discards it under
    DrainEntityBody): a Content-Length body and a chunked body dribbled far below every
    per-byte timeout are cut at --drain-timeout, not held open.
 6. readers that never read a large file: RSS bounded, each cut by --min-send-rate.
 7. slowloris: heads dribbled one byte at a time are cut at --header-timeout while a normal
    client is served at once.
 8. errors while the client is still sending: a 1 MiB header line (431) and a body over
    --max-body (413), each sent in one write (also through a 16 KiB send buffer, so that the
    server answers long before the write ends): the write never fails (no reset from a close
    that met unread data) and the client reads the status, then EOF.
Finally every socket is gone, the descriptor count is back to the baseline, and SIGTERM gives
exit 0 with a sanitizer-clean stderr. One TAP line per check. Runs once per backend
(PORTICO_BACKEND) from tests/run.sh; under a minute per backend.

The server runs with ASAN_OPTIONS quarantine_size_mb=16 (added to the caller's options) so that
RSS reflects live memory rather than ASan's 256 MiB free-memory quarantine.
"""
import hashlib
import os
import re
import select
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ptest import t, skip, failures, checks, read_text, sanitizer_clean, wait_for, HttpConn, stop_process  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
B = os.environ.get("PT_BUILD") or os.path.join(REPO, "build", "san")
PORTICO = os.path.join(B, "portico")
TESTSRV = os.path.join(B, "tests", "integration", "http_testsrv")
MIB = 1 << 20
T0 = time.monotonic()

HEADER_TIMEOUT = 2.0
DRAIN_TIMEOUT = 2.0
MIN_SEND_RATE = 16384          # bytes/s, over 2-second windows
OPTS = ["--header-timeout", "%g" % HEADER_TIMEOUT, "--idle-timeout", "3",
        "--body-timeout", "2", "--drain-timeout", "%g" % DRAIN_TIMEOUT,
        "--min-send-rate", str(MIN_SEND_RATE), "--shutdown-timeout", "2"]
NFILES = 20
PROCS = []


def file_body(i):
    return b"small file number %d\n" % i


# ---- the server and what /proc says about it ---------------------------------------------------

def server_env():
    env = dict(os.environ)
    asan = env.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (asan + ":" if asan else "") + "quarantine_size_mb=16"
    return env


class Server:
    def __init__(self, tmp, docroot):
        self.out = os.path.join(tmp, "portico.stdout")
        self.err = os.path.join(tmp, "portico.stderr")
        args = [PORTICO, "-l", "127.0.0.1:0", "-w", "2"] + OPTS + [docroot]
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.p = subprocess.Popen(args, stdout=o, stderr=e, stdin=subprocess.DEVNULL,
                                      env=server_env())
        PROCS.append(self.p)
        self.port = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            txt = read_text(self.out)
            m = re.search(r"^portico: serving .* at http://127\.0\.0\.1:(\d+)/$", txt, re.M)
            if m and "backend," in txt:
                self.port = int(m.group(1))
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError("portico did not start: rc=%r stderr=%r" %
                           (self.p.poll(), read_text(self.err)[-2000:]))

    def alive(self):
        return self.p.poll() is None

    def rss_mib(self):
        try:
            with open("/proc/%d/status" % self.p.pid) as f:
                return int(re.search(r"^VmRSS:\s+(\d+)", f.read(), re.M).group(1)) / 1024.0
        except (OSError, AttributeError):
            return 0.0

    def fds(self):
        """(descriptors, of which sockets)."""
        total = socks = 0
        d = "/proc/%d/fd" % self.p.pid
        try:
            names = os.listdir(d)
        except OSError:
            return (0, 0)
        for n in names:
            try:
                link = os.readlink(os.path.join(d, n))
            except OSError:
                continue
            total += 1
            socks += link.startswith("socket:")
        return (total, socks)

    def stop(self, timeout=15):
        return stop_process(self.p, None, timeout), read_text(self.err)


class RssSampler:
    """Samples the server's RSS every 50 ms in a thread while a case runs."""

    def __init__(self, srv):
        self.srv, self.peak, self.stop_ = srv, srv.rss_mib(), False
        self.base = self.peak
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()

    def _run(self):
        while not self.stop_:
            self.peak = max(self.peak, self.srv.rss_mib())
            time.sleep(0.05)

    def done(self):
        self.stop_ = True
        self.th.join()
        return self.peak - self.base


# ---- a client ------------------------------------------------------------------------------------

class Conn(HttpConn):
    def response(self, head_only=False):
        return self.header_response(head_only)


def get(path, method="GET"):
    return ("%s %s HTTP/1.1\r\nHost: t\r\n\r\n" % (method, path)).encode()


def fetch(port, path, timeout=5):
    c = Conn(port, timeout)
    try:
        c.send(get(path))
        return c.response()
    finally:
        c.close()


def reset_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


def peer_closed(s):
    """The server closed or reset the connection, seen from the client's TCP state without
    reading anything (TCP_CLOSE after a reset, TCP_CLOSE_WAIT after a FIN)."""
    return s.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 8)[0] in (7, 8)


# ---- the document root ---------------------------------------------------------------------------

def build_root(tmp):
    root = os.path.join(tmp, "root")
    os.makedirs(root)
    for i in range(NFILES):
        with open(os.path.join(root, "f%d.txt" % i), "wb") as f:
            f.write(file_body(i))
    mid = os.urandom(MIB)
    with open(os.path.join(root, "mid.bin"), "wb") as f:
        f.write(mid)
    with open(os.path.join(root, "big.bin"), "wb") as f:
        for _ in range(20):
            f.write(os.urandom(MIB))
    return root, mid


def warm(srv):
    """Every file in both workers' caches (connections land on a worker at random), so that
    the descriptor baseline does not move when a cache fills later."""
    for _ in range(16):
        c = Conn(srv.port)
        c.send(b"".join(get(p, "HEAD") for p in
                        ["/f%d.txt" % i for i in range(NFILES)] + ["/mid.bin", "/big.bin", "/nope"]))
        for _ in range(NFILES + 3):
            c.response(head_only=True)
        c.close()


def settle(srv, base, secs=6.0):
    """Waits until the server holds no more sockets and descriptors than at the baseline."""
    return wait_for(lambda: (lambda f: f[1] <= base[1] and f[0] <= base[0])(srv.fds()), secs, 0.1)


# ---- 1. half-closed connections ------------------------------------------------------------------

def check_half_close(srv, mid):
    for path, want in [("/f3.txt", file_body(3)), ("/mid.bin", mid)]:
        c = Conn(srv.port)
        try:
            c.send(get(path))
            c.s.shutdown(socket.SHUT_WR)
            st, h, body = c.response()
            eof = c.closed(5)
        except (EOFError, OSError, ValueError) as e:
            st, body, eof = repr(e), b"", False
        t(st == 200 and body == want and eof,
          "half-close after GET %s: the whole response (%d bytes), then EOF" % (path, len(want)),
          (st, len(body), eof))
        c.close()

    batch, want = [], []
    for i in range(60):
        if i in (19, 49):                         # 2 MiB in all: below the 4 MiB send queue
            batch.append(("GET", "/mid.bin"))
            want.append((200, mid))
        elif i % 7 == 3:
            batch.append(("GET", "/missing-%d" % i))
            want.append((404, None))
        elif i % 11 == 5:
            batch.append(("HEAD", "/f%d.txt" % (i % NFILES)))
            want.append((200, b""))
        else:
            batch.append(("GET", "/f%d.txt" % (i % NFILES)))
            want.append((200, file_body(i % NFILES)))
    c = Conn(srv.port, timeout=10)
    got, err = [], None
    try:
        c.send(b"".join(get(p, m) for m, p in batch))
        c.s.shutdown(socket.SHUT_WR)
        for (m, _), _w in zip(batch, want):
            got.append(c.response(head_only=(m == "HEAD")))
        eof = c.closed(5)
    except (EOFError, OSError, ValueError) as e:
        err, eof = repr(e), False
    ok = len(got) == len(want) and all(
        g[0] == w[0] and (w[1] is None or g[2] == w[1]) for g, w in zip(got, want))
    t(ok and eof, "half-close after 60 pipelined requests (files, 1 MiB files, 404s, HEAD): all "
      "60 responses in order, byte-exact, then EOF",
      "%d of 60 responses, eof=%s, err=%s, first mismatch=%s" % (
          len(got), eof, err,
          next(((k, g[0], w[0]) for k, (g, w) in enumerate(zip(got, want))
                if g[0] != w[0] or (w[1] is not None and g[2] != w[1])), None)))
    c.close()


def check_half_close_async(tmp):
    """The HTTP layer itself: requests pipelined behind an asynchronous response (/async
    answers 50 ms later from a timer) must still be answered after the client's FIN."""
    if not os.access(TESTSRV, os.X_OK):
        skip("half-close behind an asynchronous response (http_testsrv)", "%s not built" % TESTSRV)
        return
    f = os.path.join(tmp, "testsrv.file")
    with open(f, "wb") as fh:
        fh.write(b"x" * 100)
    p = subprocess.Popen([TESTSRV, f], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=server_env())
    PROCS.append(p)
    try:
        port = int(p.stdout.readline().rsplit(":", 1)[1])
        c = Conn(port, timeout=5)
        c.send(get("/async") * 3 + get("/hello") + get("/sync/x"))
        c.s.shutdown(socket.SHUT_WR)
        got = []
        try:
            for _ in range(5):
                got.append(c.response())
        except (EOFError, OSError, ValueError):
            pass
        bodies = [g[2] for g in got]
        t(len(got) == 5 and bodies[3] == b"Hello, World!",
          "half-close behind asynchronous responses (http_testsrv): all 5 pipelined requests "
          "answered", "%d of 5 answered: %r (requests still buffered when the FIN arrived were "
          "dropped)" % (len(got), bodies))
        c.close()
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = p.wait()
        err = p.stderr.read()
        t(rc == 0 and sanitizer_clean(err), "http_testsrv exits 0 after SIGTERM, sanitizer-clean",
          (rc, err[-2000:]))


# ---- 2. a pipelined flood with a slow reader ---------------------------------------------------

def check_flood(srv):
    n = 20000
    reqs = b"".join(get("/f%d.txt" % (i % NFILES)) for i in range(n))
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    werr = []

    def writer():
        try:
            s.sendall(reqs)
        except OSError as e:
            werr.append(repr(e))
    rss = RssSampler(srv)
    th = threading.Thread(target=writer, daemon=True)
    t0 = time.monotonic()
    th.start()
    buf = bytearray()
    done, bad, err = 0, None, None
    try:
        while done < n and time.monotonic() - t0 < 30:
            b = s.recv(16384)                     # slowly: about 1.6 MB/s at most
            if not b:
                err = "EOF"
                break
            buf += b
            while True:                           # parse complete responses
                he = buf.find(b"\r\n\r\n")
                if he < 0:
                    break
                m = re.search(rb"\r\nContent-Length: (\d+)\r\n", buf[:he + 2], re.I)
                if not m or len(buf) < he + 4 + int(m.group(1)):
                    break
                end = he + 4 + int(m.group(1))
                if bad is None and (not buf.startswith(b"HTTP/1.1 200 ") or
                                    buf[he + 4:end] != file_body(done % NFILES)):
                    bad = (done, bytes(buf[:end][:200]))
                del buf[:end]
                done += 1
            time.sleep(0.01)
    except OSError as e:
        err = repr(e)
    secs = time.monotonic() - t0
    th.join(5)
    grew = rss.done()
    t(done == n and bad is None,
      "pipelined flood: %d tiny requests written at once, read slowly: all answered in order, "
      "byte-exact (%.1f s)" % (n, secs),
      "%d of %d responses; first wrong: %s; reader: %s; writer: %s" % (done, n, bad, err, werr))
    t(grew < 64, "pipelined flood: server RSS grew %.1f MiB (bound 64)" % grew)
    s.close()
    t(srv.alive(), "server alive after the flood")


def check_pipelined_large(srv, big_sha):
    """Two pipelined GETs of a file larger than the connection's send queue (4 MiB): the second
    response must wait for the first, not end the connection."""
    c = Conn(srv.port, timeout=10)
    got, err = [], None
    try:
        c.send(get("/big.bin") + get("/f4.txt") + get("/big.bin"))
        for _ in range(3):
            st, h, body = c.response()
            got.append((st, hashlib.sha256(body).hexdigest() if len(body) > 100 else body))
    except (EOFError, OSError, ValueError) as e:
        err = repr(e)
    c.close()
    t(got == [(200, big_sha), (200, file_body(4)), (200, big_sha)],
      "3 pipelined GETs (20 MiB file, small file, 20 MiB file): all answered byte-exact",
      "%d of 3 answered (%s)" % (len(got), err))


# ---- 3. pipelining without ever reading ----------------------------------------------------------

NEVER_READERS = 4


def check_never_reads(srv, path):
    """NEVER_READERS connections pipeline GET path as fast as they can and never read."""
    socks = []
    for _ in range(NEVER_READERS):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.setblocking(False)
        socks.append(s)
    chunk = get(path) * 500
    rss = RssSampler(srv)
    t0 = time.monotonic()
    wrote = {s: 0 for s in socks}
    closed = {}
    last_write = t0
    while len(closed) < len(socks) and time.monotonic() - t0 < 20:
        for s in socks:
            if s in closed:
                continue
            try:
                wrote[s] += s.send(chunk)
                last_write = time.monotonic()
            except BlockingIOError:
                pass
            except OSError:
                closed[s] = time.monotonic() - t0
        open_ = [s for s in socks if s not in closed]
        r, _, x = select.select(open_, [], open_, 0.05)
        for s in set(r) | set(x):                # EOF or reset shows up as readable
            try:
                if not s.recv(1 << 16):
                    closed[s] = time.monotonic() - t0
            except BlockingIOError:
                pass
            except OSError:
                closed[s] = time.monotonic() - t0
    grew = rss.done()
    for s in socks:
        s.close()
    most = max(wrote.values())
    t(most < 32 * MIB, "%d clients pipeline GET %s and never read: the server stops reading "
      "(at most %.1f MiB written by one; the last write %.1f s after the start)" %
      (NEVER_READERS, path, most / MIB, last_write - t0), wrote)
    t(len(closed) == len(socks) and max(closed.values()) < 15,
      "%d clients pipeline GET %s and never read: all closed by the server (%s)" %
      (NEVER_READERS, path, "the last after %.1f s" % max(closed.values())
       if len(closed) == len(socks) else "%d of %d within 20 s" % (len(closed), len(socks))))
    t(grew < 80, "%d clients pipeline GET %s and never read: server RSS grew %.1f MiB (bound 80)"
      % (NEVER_READERS, path, grew),
      "queued responses pin server memory well beyond the send-queue bound")


# ---- 4. abrupt resets mid-response ---------------------------------------------------------------

def check_resets(srv, base):
    served, errors = 0, []
    for i in range(50):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        s.sendall(get("/big.bin"))
        if i % 2:
            got = 0
            while got < 256 * 1024:               # part of the response, then the reset
                b = s.recv(65536)
                if not b:
                    break
                got += len(b)
        else:
            time.sleep(0.005)                     # before reading anything
        reset_close(s)
        if i % 10 == 9:
            try:
                st, _, body = fetch(srv.port, "/f1.txt")
                served += st == 200 and body == file_body(1)
            except (OSError, EOFError, ValueError) as e:
                errors.append(repr(e))
    t(served == 5 and srv.alive(), "50 resets mid-response (20 MiB file): the server kept "
      "serving others (%d of 5)" % served, errors)
    ok = settle(srv, base)
    t(ok, "after the resets the socket and descriptor counts return to the baseline",
      "now %r, baseline %r" % (srv.fds(), base))


# ---- 5. slow request bodies ----------------------------------------------------------------------

def dribble_body(srv, head, piece, want_status, results, key):
    """Sends head, then piece every 200 ms; records (status, seconds until the server closed)."""
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
    s.sendall(head)
    s.setblocking(False)
    t0 = time.monotonic()
    buf, closed = b"", None
    while time.monotonic() - t0 < 12:
        try:
            s.send(piece)
        except BlockingIOError:
            pass
        except OSError:
            closed = time.monotonic() - t0
            break
        time.sleep(0.2)
        try:
            b = s.recv(65536)
            if not b:
                closed = time.monotonic() - t0
                break
            buf += b
        except BlockingIOError:
            pass
        except OSError:
            closed = time.monotonic() - t0
            break
    s.close()
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", buf)
    results[key] = (int(m.group(1)) if m else None, closed)


def check_slow_bodies(srv):
    res = {}
    cases = {
        "POST, Content-Length body": (b"POST /f1.txt HTTP/1.1\r\nHost: t\r\nContent-Length: 100000"
                                      b"\r\n\r\n", b"x", 405),
        "GET, chunked body": (b"GET /f1.txt HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
                              b"1\r\nx\r\n", 200),
    }
    ths = [threading.Thread(target=dribble_body, args=(srv, h, p, w, res, k))
           for k, (h, p, w) in cases.items()]
    for x in ths:
        x.start()
    for x in ths:
        x.join(20)
    for k, (_, _, want) in cases.items():
        st, closed = res.get(k, (None, None))
        t(st == want and closed is not None and DRAIN_TIMEOUT - 0.5 <= closed <= DRAIN_TIMEOUT + 3,
          "slow body (%s, one piece per 200 ms): answered %d, then cut at --drain-timeout %gs "
          "(closed after %s s)" % (k, want, DRAIN_TIMEOUT, "%.1f" % closed if closed else "-"),
          (st, closed))


# ---- 6. readers that never read a large file -----------------------------------------------------

def check_stalled_readers(srv):
    rss = RssSampler(srv)
    socks = []
    for _ in range(8):
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(get("/big.bin"))
        socks.append(s)
    t0 = time.monotonic()
    st, _, body = fetch(srv.port, "/f2.txt")
    quick = time.monotonic() - t0
    t(st == 200 and body == file_body(2) and quick < 1.0,
      "8 stalled readers of a 20 MiB file: another client is served at once (%.2f s)" % quick)
    # never read: MinSendRate (16 KiB/s over 2 s windows) must cut them within a few windows
    deadline = time.monotonic() + 12
    closed = []
    while socks and time.monotonic() < deadline:
        for s in list(socks):
            if peer_closed(s):
                closed.append(time.monotonic() - t0)
                socks.remove(s)
                s.close()
        time.sleep(0.1)
    grew = rss.done()
    t(not socks, "8 readers that never read a 20 MiB file: all cut by --min-send-rate (%s)" %
      ("last after %.1f s" % max(closed) if closed else "none"), "%d still open" % len(socks))
    for s in socks:
        s.close()
    t(grew < 32, "stalled readers: server RSS grew %.1f MiB (bound 32; files go out with sendfile)"
      % grew)


# ---- 7. slowloris ----------------------------------------------------------------------------------

def check_slowloris(srv):
    head = b"GET /f0.txt HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"a" * 200 + b"\r\n\r\n"
    socks = [socket.create_connection(("127.0.0.1", srv.port), timeout=5) for _ in range(40)]
    t0 = time.monotonic()
    pos, alive, closed = 0, list(socks), []
    quick = None
    while alive and time.monotonic() - t0 < HEADER_TIMEOUT + 4:
        for s in list(alive):
            try:
                s.send(head[pos:pos + 1])
            except OSError:
                alive.remove(s)
                closed.append(time.monotonic() - t0)
        pos += 1
        r, _, _ = select.select(alive, [], [], 0.25)
        for s in r:
            try:
                if s.recv(4096):
                    continue
            except OSError:
                pass
            alive.remove(s)
            closed.append(time.monotonic() - t0)
        if quick is None and time.monotonic() - t0 > 0.5:
            q0 = time.monotonic()
            try:
                st, _, body = fetch(srv.port, "/f0.txt")
                quick = time.monotonic() - q0 if st == 200 and body == file_body(0) else -1
            except (OSError, EOFError, ValueError):
                quick = -1
    for s in socks:
        s.close()
    t(quick is not None and 0 <= quick < 1.0,
      "40 slowloris connections: a normal client is served at once (%s s)" %
      ("%.2f" % quick if quick is not None else "-"))
    t(not alive and closed and max(closed) <= HEADER_TIMEOUT + 1.5 and pos < len(head),
      "slowloris heads (one byte per 250 ms) are cut at --header-timeout %gs (all 40 by %s s, "
      "after %d of %d bytes)" % (HEADER_TIMEOUT, "%.1f" % max(closed) if closed else "-", pos,
                                 len(head)), "%d still open" % len(alive))


# ---- 8. errors while the client is still sending ------------------------------------------------

def send_then_read(port, payload, sndbuf=None):
    """One sendall of payload, then everything until EOF: the status line, or what failed."""
    s = socket.socket()
    try:
        if sndbuf:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        s.settimeout(10)
        s.connect(("127.0.0.1", port))
        try:
            s.sendall(payload)
        except OSError as e:
            return "send failed: %s" % e.__class__.__name__
        data = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
        except OSError as e:
            return "read failed: %s after %r" % (e.__class__.__name__, data[:40])
        return data.split(b"\r\n", 1)[0].decode("latin1")
    finally:
        s.close()


def check_error_while_sending(srv):
    line = b"GET /f0.txt HTTP/1.1\r\nHost: t\r\nX-Long: " + b"v" * MIB + b"\r\n\r\n"
    big = MIB + 1                                  # over --max-body (1 MiB), under --max-drain
    body = b"POST /f0.txt HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % big + b"b" * big
    for name, payload, want in [("1 MiB header line", line, "431"),
                                ("body over --max-body", body, "413")]:
        got = {}
        for i in range(16):
            r = send_then_read(srv.port, payload, 16384 if i % 2 else None)
            got[r] = got.get(r, 0) + 1
        ok = list(got) == ["HTTP/1.1 %s %s" % (want, {"431": "Request Header Fields Too Large",
                                                    "413": "Content Too Large"}[want])]
        t(ok, "%s in one write, 16 times (half through a 16 KiB send buffer): the write "
          "completes and %s arrives, then EOF" % (name, want), repr(got))


# ---- main ----------------------------------------------------------------------------------------

def section(name, fn, *args):
    t1 = time.monotonic()
    try:
        fn(*args)
    except Exception:
        t(False, "%s: completed without an exception" % name, traceback.format_exc())
    print("# %s: %.1f s" % (name, time.monotonic() - t1), flush=True)


def run(tmp):
    root, mid = build_root(tmp)
    with open(os.path.join(root, "big.bin"), "rb") as f:
        big_sha = hashlib.sha256(f.read()).hexdigest()
    srv = Server(tmp, root)
    warm(srv)
    time.sleep(0.3)
    base = srv.fds()
    print("# baseline: %d descriptors, %d sockets, RSS %.1f MiB" % (base[0], base[1], srv.rss_mib()),
          flush=True)
    section("half-close", check_half_close, srv, mid)
    section("half-close (http_testsrv)", check_half_close_async, tmp)
    section("pipelined flood", check_flood, srv)
    section("pipelined large files", check_pipelined_large, srv, big_sha)
    section("never reads (file)", check_never_reads, srv, "/f5.txt")
    section("never reads (404)", check_never_reads, srv, "/not-there")
    section("resets", check_resets, srv, base)
    section("slow bodies", check_slow_bodies, srv)
    section("stalled readers", check_stalled_readers, srv)
    section("slowloris", check_slowloris, srv)
    section("errors while sending", check_error_while_sending, srv)
    ok = settle(srv, base, 8)
    t(ok and srv.alive(), "at the end: no socket left but the listeners, descriptors back to the "
      "baseline", "now %r, baseline %r" % (srv.fds(), base))
    rc, err = srv.stop()
    t(rc == 0 and sanitizer_clean(err), "exits 0 after SIGTERM, sanitizer-clean stderr",
      (rc, err[-3000:]))


def main():
    if not os.access(PORTICO, os.X_OK):
        t(False, "portico binary exists", PORTICO)
        return 1
    tmp = tempfile.mkdtemp(prefix="pt-hostile-")
    try:
        run(tmp)
    except Exception:
        t(False, "test run completed", traceback.format_exc())
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("# %d checks in %.1f s" % (checks(), time.monotonic() - T0), flush=True)
    return 1 if failures() else 0


if __name__ == "__main__":
    sys.exit(main())
