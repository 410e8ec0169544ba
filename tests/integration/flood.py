#!/usr/bin/env python3
"""Connection floods past the descriptor limit against portico (issue 10), on both backends.

portico (PT_BUILD, the sanitizer build) runs with RLIMIT_NOFILE 1024, so its connection limit
is 921 (90 %), on a docroot holding hello.txt. The flood is 2000 silent connections (never a
byte sent) from 127.0.0.2-127.0.0.5, bound with IP_BIND_ADDRESS_NO_PORT.

1 shed (the default): while the flood is held, 20 requests, each on a new connection with a
  5 s budget, all get 200; the server holds no more descriptors than its limit; once the flood
  closes, its descriptor count returns to the baseline and it uses no CPU; a request after the
  flood gets 200; a rate-limited log line says it shed connections.
2 slowloris: 200 connections that send a partial request head and then one more header byte
  per second, plus the silent flood: the 20 requests still all get 200.
3 --when-full pause (the old behaviour, still available): requests beyond the limit wait in
  the listen backlog and may time out, and the descriptors held during the flood are reported,
  not judged; once the flood is gone the server answers again, its descriptors return to the
  baseline and it does not spin.
Every case ends with SIGTERM: exit status 0 and a sanitizer-clean stderr.
"""
import errno
import os
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ptest import t, failures, checks, read_text, sanitizer_clean, wait_for, stop_process  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
B = os.environ.get("PT_BUILD") or os.path.join(REPO, "build", "san")
PORTICO = os.path.join(B, "portico")
NOFILE = 1024
LIMIT = NOFILE * 9 // 10        # portico's --max-conns auto: 90 % of the descriptor limit
SPARE = 10                      # descriptors beyond baseline + LIMIT tolerated (in flight)
FLOOD = 2000
SOURCES = ["127.0.0.%d" % i for i in range(2, 6)]
SLOW_SOURCE = "127.0.0.6"
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
T0 = time.monotonic()

SERVERS, FLOODS = [], []        # cleaned up in main() whatever happens


class Server:
    """build/san/portico limited to NOFILE descriptors; stdout/stderr go to files."""

    def __init__(self, tmp, name, root, opts=()):
        self.out = os.path.join(tmp, name + ".out")
        self.err = os.path.join(tmp, name + ".err")

        def lim():
            resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, NOFILE))
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.p = subprocess.Popen([PORTICO, "-l", "127.0.0.1:0", "-w", "2", "--access-log",
                                       "off"] + list(opts) + [root], stdout=o, stderr=e,
                                      stdin=subprocess.DEVNULL, preexec_fn=lim)
        SERVERS.append(self)
        wait_for(lambda: "backend," in read_text(self.out) or self.p.poll() is not None, 10)
        m = re.search(r"at http://127\.0\.0\.1:(\d+)/", read_text(self.out))
        if not m or self.p.poll() is not None:
            raise RuntimeError("portico did not start: rc=%r stdout=%r stderr=%r" % (
                self.p.poll(), read_text(self.out), read_text(self.err)[-2000:]))
        self.port = int(m.group(1))

    def fds(self):
        try:
            return len(os.listdir("/proc/%d/fd" % self.p.pid))
        except OSError:
            return -1

    def stop(self, timeout=8):
        """SIGTERM; returns (exit status, stderr)."""
        return stop_process(self.p, None, timeout), read_text(self.err)

    def cpu_over(self, secs=1.0):
        """CPU seconds the server uses in the next secs seconds (a spinning loop shows here)."""
        def cpu():
            try:
                with open("/proc/%d/stat" % self.p.pid) as f:
                    v = f.read().rsplit(")", 1)[1].split()
                return (int(v[11]) + int(v[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, IndexError, ValueError):
                return 0.0
        c0 = cpu()
        time.sleep(secs)
        return cpu() - c0

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def fetch(port, budget=5.0, path="/hello.txt"):
    """One GET on a new connection; connect + request + the whole response within budget s.
    Returns (status or an error string, seconds)."""
    t0 = time.monotonic()
    deadline = t0 + budget
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=budget) as s:
            s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path)
                      .encode())
            buf = b""
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    return "timeout", time.monotonic() - t0
                s.settimeout(left)
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
                head, sep, body = buf.partition(b"\r\n\r\n")
                m = re.search(rb"\r\ncontent-length: *(\d+)", head, re.I)
                if sep and m and len(body) >= int(m.group(1)):
                    break
            status = int(buf.split(b" ", 2)[1]) if buf.startswith(b"HTTP/1.") else "garbage"
            return status, time.monotonic() - t0
    except socket.timeout:
        return "timeout", time.monotonic() - t0
    except OSError as e:
        return "error %s" % e, time.monotonic() - t0


class Flood:
    """count silent connections, nonblocking, spread over source addresses; held until close().
    A connection the server closes or resets is counted and closed, never reopened."""

    def __init__(self, port, count, sources, timeout=15.0):
        self.socks, self.ep = {}, select.epoll()
        self.opened = self.failed = self.closed = 0
        FLOODS.append(self)
        pending = {}
        for i in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((sources[i % len(sources)], 0))
            err = s.connect_ex(("127.0.0.1", port))
            if err not in (0, errno.EINPROGRESS):
                s.close()
                self.failed += 1
                continue
            pending[s.fileno()] = s
            self.ep.register(s.fileno(), select.EPOLLOUT)
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            for fd, ev in self.ep.poll(0.1):
                s = pending.pop(fd, None)
                if s is None:
                    continue
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err in (0, errno.ECONNRESET):
                    self.opened += 1
                    self.socks[fd] = s
                    self.ep.modify(fd, select.EPOLLIN | select.EPOLLRDHUP)
                else:
                    self.ep.unregister(fd)
                    s.close()
                    self.failed += 1
        self.pending = len(pending)
        self.socks.update(pending)          # still connecting: held all the same

    def poll_closed(self, wait=0.0):
        """Collects the connections the server closed; returns how many in all."""
        for fd, ev in self.ep.poll(wait, 4096):
            s = self.socks.get(fd)
            if s is None or not (ev & (select.EPOLLIN | select.EPOLLRDHUP | select.EPOLLHUP |
                                       select.EPOLLERR)):
                continue
            try:
                gone = s.recv(4096) == b""
            except BlockingIOError:
                gone = False
            except OSError:
                gone = True
            if gone:
                self.closed += 1
                self.ep.unregister(fd)
                s.close()
                del self.socks[fd]
        return self.closed

    def held(self):
        self.poll_closed()
        return len(self.socks)

    def close(self):
        for s in self.socks.values():
            s.close()
        self.socks = {}
        self.ep.close()


class Slowloris:
    """count connections that send a partial head, then one more header byte per second."""

    def __init__(self, port, count, source):
        self.socks, self.stop_ev = [], threading.Event()
        FLOODS.append(self)
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
            s.bind((source, 0))
            s.settimeout(5)
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slowloris: ")
            s.setblocking(False)
            self.socks.append(s)
        self.closed = 0
        self.th = threading.Thread(target=self._trickle, daemon=True)
        self.th.start()

    def _trickle(self):
        while not self.stop_ev.wait(1.0):
            for i, s in enumerate(self.socks):
                if s is None:
                    continue
                try:
                    s.send(b"a")
                except BlockingIOError:
                    pass
                except OSError:
                    self.socks[i] = None
                    self.closed += 1
                    s.close()

    def still_open(self):
        n = 0
        for s in self.socks:
            if s is None:
                continue
            try:
                n += s.recv(1) != b""    # a response (408, 431...) or data: not silent
            except BlockingIOError:
                n += 1
            except OSError:
                pass
        return n

    def close(self):
        self.stop_ev.set()
        if self.th.is_alive():
            self.th.join(3)
        for s in self.socks:
            if s is not None:
                s.close()
        self.socks = []


def requests_ok(port, n, budget, spacing=0.0):
    results = []
    for _ in range(n):
        results.append(fetch(port, budget))
        time.sleep(spacing)
    ok = sum(1 for st, _ in results if st == 200)
    worst = max(dt for _, dt in results) if results else 0
    return ok, worst, [st for st, _ in results if st != 200]


def baseline(srv):
    """Descriptors of an idle server that has served once (its file cache may hold hello.txt)."""
    st, _ = fetch(srv.port)
    time.sleep(0.3)
    return st, srv.fds()


def finish(srv, what, want_shed_log=False):
    rc, err = srv.stop()
    t(rc == 0, "%s: clean exit on SIGTERM (%r)" % (what, rc), err[-3000:])
    t(sanitizer_clean(err), "%s: stderr sanitizer-clean" % what, err[-3000:])
    if want_shed_log:
        t(re.search(r"shed|making room", err, re.I),
          "%s: a log line says connections were shed" % what, err[-2000:] or "(empty stderr)")


def back_to(srv, base, timeout=8):
    return wait_for(lambda: 0 <= srv.fds() <= base + 3, timeout)


def case_shed(tmp, root):
    srv = Server(tmp, "shed", root)
    st, base = baseline(srv)
    t(st == 200, "shed: serves before the flood (%r)" % st)
    fl = Flood(srv.port, FLOOD, SOURCES)
    t(fl.opened + fl.pending == FLOOD, "shed: %d flood connections made (%d open, %d connecting,"
      " %d failed)" % (FLOOD, fl.opened, fl.pending, fl.failed))
    # the server accepts them all, shedding the oldest silent ones past its limit
    wait_for(lambda: fl.poll_closed(0.05) >= FLOOD - 1000, 15)
    peak = srv.fds()
    t(0 < peak <= base + LIMIT + SPARE, "shed: the server holds no more than its connection "
      "limit (%d fds: baseline %d + limit %d; %d flood connections shed so far, %d held)"
      % (peak, base, LIMIT, fl.closed, fl.held()))
    ok, worst, bad = requests_ok(srv.port, 20, 5.0)
    t(ok == 20, "shed: 20 requests on new connections during the flood all get 200 (%d, slowest "
      "%.2f s)" % (ok, worst), "not 200: %r" % bad)
    t(fl.held() > 500, "shed: the flood is still held while the requests ran (%d connections)"
      % fl.held())
    fl.close()
    n = back_to(srv, base)
    t(n, "shed: descriptors return to the baseline after the flood (%d, baseline %d)"
      % (srv.fds(), base))
    st, dt = fetch(srv.port)
    t(st == 200, "shed: a request after the flood gets 200 (%r, %.2f s)" % (st, dt))
    used = srv.cpu_over(1.0)
    t(used < 0.3, "shed: idle after the flood (%.2f s CPU in 1 s)" % used)
    finish(srv, "shed", want_shed_log=True)


def case_slowloris(tmp, root):
    srv = Server(tmp, "slowloris", root)
    st, base = baseline(srv)
    slow = Slowloris(srv.port, 200, SLOW_SOURCE)
    fl = Flood(srv.port, FLOOD, SOURCES)
    wait_for(lambda: fl.poll_closed(0.05) >= FLOOD - 1000, 15)
    ok, worst, bad = requests_ok(srv.port, 20, 5.0, spacing=0.1)
    t(ok == 20, "slowloris: with 200 partial heads and %d silent connections, 20 requests all "
      "get 200 (%d, slowest %.2f s)" % (FLOOD, ok, worst), "not 200: %r" % bad)
    print("# slowloris: %d of 200 still open, %d flood connections held, %d shed"
          % (slow.still_open(), fl.held(), fl.closed), flush=True)
    slow.close()
    fl.close()
    t(back_to(srv, base), "slowloris: descriptors return to the baseline (%d, baseline %d)"
      % (srv.fds(), base))
    st, dt = fetch(srv.port)
    t(st == 200, "slowloris: a request after the flood gets 200 (%r)" % st)
    finish(srv, "slowloris")


def case_pause(tmp, root):
    srv = Server(tmp, "pause", root, ["--when-full", "pause"])
    st, base = baseline(srv)
    fl = Flood(srv.port, FLOOD, SOURCES)
    wait_for(lambda: srv.fds() >= base + 900, 10)
    time.sleep(0.5)
    held = srv.fds()
    # reported, not judged (this case checks only that the old behaviour still works and the
    # server recovers): the pause limit should hold it at baseline + LIMIT descriptors
    print("# pause: the server holds %d fds during the flood (baseline %d + limit %d%s)"
          % (held, base, LIMIT, "" if held <= base + LIMIT + SPARE else ": BEYOND ITS LIMIT"),
          flush=True)
    ok, worst, bad = requests_ok(srv.port, 3, 2.0)
    print("# pause: %d of 3 requests served during the flood (the rest wait in the backlog: %r);"
          " %d flood connections closed by the server" % (ok, bad, fl.poll_closed()), flush=True)
    fl.close()
    st = wait_for(lambda: fetch(srv.port, 2.0)[0] == 200, 8, interval=0.2)
    t(st, "pause: the server answers once the flood is gone")
    t(back_to(srv, base), "pause: descriptors return to the baseline (%d, baseline %d)"
      % (srv.fds(), base))
    t(srv.p.poll() is None, "pause: the server is still running")
    used = srv.cpu_over(1.0)
    t(used < 0.3, "pause: idle after the flood (%.2f s CPU in 1 s)" % used)
    finish(srv, "pause")


def section(name, fn, *args):
    try:
        fn(*args)
    except Exception:
        t(False, "%s: completed without an exception" % name, traceback.format_exc())
    finally:
        for f in FLOODS:
            f.close()
        FLOODS.clear()
        for s in SERVERS:
            s.kill()
        SERVERS.clear()


def main():
    if not os.access(PORTICO, os.X_OK):
        t(False, "portico binary exists", PORTICO)
        return 1
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard != resource.RLIM_INFINITY and hard < FLOOD + 500:
        t(False, "the test may open %d descriptors (hard limit %d)" % (FLOOD + 500, hard))
        return 1
    tmp = tempfile.mkdtemp(prefix="pt-flood-")
    try:
        root = os.path.join(tmp, "root")
        os.makedirs(root)
        with open(os.path.join(root, "hello.txt"), "wb") as f:
            f.write(b"Hello, World!")
        section("shed", case_shed, tmp, root)
        section("slowloris", case_slowloris, tmp, root)
        section("pause", case_pause, tmp, root)
    finally:
        for f in FLOODS:
            f.close()
        for s in SERVERS:
            s.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print("# %d checks in %.1f s (backend %s)" % (checks(), time.monotonic() - T0,
                                                  os.environ.get("PORTICO_BACKEND", "auto")),
          flush=True)
    return 1 if failures() else 0


if __name__ == "__main__":
    sys.exit(main())
