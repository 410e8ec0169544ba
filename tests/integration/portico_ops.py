#!/usr/bin/env python3
"""Operations tests of the portico server (build/portico of PT_BUILD): the parts of running it
in production that the black-box file tests (portico.py) do not cover.

 1. graceful stop: SIGTERM with a 50 MiB response in flight, read slowly: no new connection is
    served, the response finishes byte-exact, exit 0; SIGINT likewise, with a stalled client
    cut off at --shutdown-timeout.
 2. SO_REUSEPORT handover: B starts on A's port, A is stopped while it still drains a download,
    a loop of requests sees no failure.
 3. systemd socket activation (LISTEN_PID/LISTEN_FDS, descriptors from 3): the inherited sockets
    are served, no -l address is bound; the blocking sockets systemd passes by default
    (NonBlocking=no) work too; a restart on the same socket loses no connection; LISTEN_PID of
    another process is ignored.
 4. --user nobody (root only, else SKIP): binds a privileged port, then every thread runs as
    65534 without capabilities; a mode-600 root file gives 403.
 5. config file (-c): listen, index, cache-control, an on/off setting, comments and blank lines;
    the command line overrides it; a bad line exits 2 naming FILE:LINE.
 6. --error-log FILE: start-up errors go to the file, not to stderr.
 7. SIGHUP: the access log is reopened at its path (rotation); the error log too. SIGUSR1 logs
    the counters.

One TAP line per check. Runs once per backend (PORTICO_BACKEND) from tests/run.sh.
"""
import fcntl
import grp
import hashlib
import os
import pwd
import re
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
from ptest import t, skip, failures, checks, read_text, sanitizer_clean, wait_for, stop_process  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
B = os.environ.get("PT_BUILD") or os.path.join(REPO, "build", "san")
PORTICO = os.path.join(B, "portico")
T0 = time.monotonic()
MIB = 1 << 20

PROCS = []


def write(path, data, mode=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)
    if mode is not None:
        os.chmod(path, mode)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- HTTP over raw sockets ---------------------------------------------------------------------

def get(port, target, timeout=5, hdrs=()):
    """GET on a fresh connection (Connection: close). Returns (status, {field: value}, body)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        h = "".join("%s: %s\r\n" % kv for kv in hdrs)
        s.sendall(("GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n%s\r\n" % (target, h))
                  .encode("latin1"))
        buf = b""
        while True:
            b = s.recv(65536)
            if not b:
                break
            buf += b
    finally:
        s.close()
    head, sep, body = buf.partition(b"\r\n\r\n")
    if not sep:
        raise EOFError("no complete response head: %r" % buf[:200])
    lines = head.decode("latin1").split("\r\n")
    fields = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        fields.setdefault(k.strip().lower(), v.strip())
    status = int(lines[0].split(" ")[1])
    if "content-length" in fields and len(body) != int(fields["content-length"]):
        raise EOFError("body %d of %s bytes" % (len(body), fields["content-length"]))
    return status, fields, body


def try_get(port, target, timeout=5, hdrs=()):
    try:
        return get(port, target, timeout, hdrs)
    except Exception as e:
        return (repr(e), {}, b"")


class Download:
    """GET of a big file on its own connection, read by a thread at about rate bytes/s."""

    def __init__(self, port, target, rate, rcvbuf=None, timeout=30):
        self.s = socket.socket()
        if rcvbuf:
            self.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.s.settimeout(timeout)
        self.s.connect(("127.0.0.1", port))
        self.s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % target.encode())
        self.rate = rate
        self.got = 0
        self.h = hashlib.sha256()
        self.length = None
        self.status = None
        self.err = None
        self.done_at = None
        self.th = None
        self.base = (time.monotonic(), 0)

    def start(self):
        self.th = threading.Thread(target=self._run, daemon=True)
        self.th.start()
        return self

    def _run(self):
        buf = b""
        try:
            while b"\r\n\r\n" not in buf:
                b = self.s.recv(65536)
                if not b:
                    raise EOFError("closed before the head")
                buf += b
            head, _, rest = buf.partition(b"\r\n\r\n")
            self.status = int(head.split(b" ")[1])
            m = re.search(rb"(?im)^content-length:\s*(\d+)", head)
            self.length = int(m.group(1)) if m else None
            self.h.update(rest)
            self.got = len(rest)
            self.base = (time.monotonic(), self.got)
            while self.length is None or self.got < self.length:
                t0, got0 = self.base
                if self.rate:
                    ahead = (self.got - got0) / self.rate - (time.monotonic() - t0)
                    if ahead > 0:
                        time.sleep(min(ahead, 0.05))
                        continue
                b = self.s.recv(256 * 1024)
                if not b:
                    raise EOFError("closed after %d bytes" % self.got)
                self.h.update(b)
                self.got += len(b)
        except Exception as e:
            self.err = repr(e)
        self.done_at = time.monotonic()

    def set_rate(self, rate):
        self.rate = rate
        self.base = (time.monotonic(), self.got)

    def join(self, timeout):
        self.th.join(timeout)
        return not self.th.is_alive()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


# ---- the server under test ----------------------------------------------------------------------

ANNOUNCE = re.compile(r"^portico: serving (.*) at http://(.*):(\d+)/$", re.M)


class Server:
    """portico with args; waits for the announce lines. ports: one per announce line."""

    def __init__(self, tmp, name, args, env=None, preexec_fn=None, prefix=(), wait=10,
                 must_start=True):
        self.out = os.path.join(tmp, name + ".stdout")
        self.err = os.path.join(tmp, name + ".stderr")
        self.args = list(prefix) + [PORTICO] + list(args)
        self.ports = []
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.p = subprocess.Popen(self.args, stdout=o, stderr=e, stdin=subprocess.DEVNULL,
                                      env=env, preexec_fn=preexec_fn,
                                      close_fds=preexec_fn is None)
        PROCS.append(self.p)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            txt = read_text(self.out)
            if "backend," in txt:
                self.ports = [int(m.group(3)) for m in ANNOUNCE.finditer(txt)]
                self.announce = txt
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.02)
        self.announce = read_text(self.out)
        if must_start:
            raise RuntimeError("portico did not start: rc=%r args=%r stdout=%r stderr=%r" % (
                self.p.poll(), self.args, self.announce, read_text(self.err)[-2000:]))

    @property
    def port(self):
        return self.ports[0]

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Sends sig, waits; returns (rc, seconds, stderr)."""
        t0 = time.monotonic()
        rc = stop_process(self.p, sig, timeout)
        return rc, time.monotonic() - t0, read_text(self.err)


def run_portico(args, timeout=15, env=None):
    """Runs portico to completion (start-up errors). Returns (rc, stdout, stderr)."""
    try:
        p = subprocess.run([PORTICO] + list(args), stdin=subprocess.DEVNULL, capture_output=True,
                           timeout=timeout, env=env)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        return "timeout", "", repr(e)


def listening_ports(pid):
    """TCP ports the process holds listening sockets on (from /proc/PID/fd and /proc/net/tcp*)."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            m = re.match(r"socket:\[(\d+)\]", os.readlink("/proc/%d/fd/%s" % (pid, fd)))
        except OSError:
            continue
        if m:
            inodes.add(m.group(1))
    ports = set()
    for tab in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in read_text(tab).splitlines()[1:]:
            f = line.split()
            if len(f) > 9 and f[3] == "0A" and f[9] in inodes:
                ports.add(int(f[1].rsplit(":", 1)[1], 16))
    return ports


def proc_status(path):
    d = {}
    for line in read_text(path).splitlines():
        k, _, v = line.partition(":")
        d[k] = v.split()
    return d


# ---- 1. graceful stop ---------------------------------------------------------------------------

def check_graceful(tmp, root, big_sha):
    srv = Server(tmp, "graceful", ["-l", "127.0.0.1:0", "-w", "2", "--shutdown-timeout", "15",
                                   root])
    port = srv.port
    t(try_get(port, "/small.txt")[0] == 200, "graceful: the server answers before the stop")
    dl = Download(port, "/big.bin", rate=20 * MIB).start()
    wait_for(lambda: dl.got >= 5 * MIB or dl.done_at, 10)
    at_signal = dl.got
    srv.p.send_signal(signal.SIGTERM)
    time.sleep(0.3)
    # a new connection after SIGTERM: refused, or accepted by the kernel but never answered
    alive = srv.alive()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=1.5)
        try:
            s.sendall(b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n")
            got = s.recv(100)
            outcome = "answered %r" % got[:60] if got else "closed without an answer"
        except socket.timeout:
            outcome = "no answer within 1.5 s"
        except (ConnectionResetError, BrokenPipeError):
            outcome = "reset"
        s.close()
    except (ConnectionRefusedError, socket.timeout) as e:
        outcome = "refused (%r)" % e
    t(alive and not outcome.startswith("answered"),
      "SIGTERM: a new connection is not served while the in-flight response drains",
      "server alive at the connect: %s; new connection: %s" % (alive, outcome))
    finished = dl.join(20)
    rc, _, err = srv.stop(timeout=20)
    exit_at = time.monotonic()
    t(dl.err is None and dl.status == 200 and dl.got == 50 * MIB and dl.h.digest() == big_sha,
      "SIGTERM: the 50 MiB response in flight (%.0f MiB read at the signal) finishes byte-exact"
      % (at_signal / MIB), (finished, dl.status, dl.got, dl.err))
    t(rc == 0 and sanitizer_clean(err), "SIGTERM: exit 0 after the response finished, no sanitizer "
      "report", (rc, err[-2000:]))
    t(dl.done_at is not None and exit_at >= dl.done_at - 0.05,
      "SIGTERM: the server did not exit before the response finished")
    dl.close()


def check_sigint(tmp, root, big_sha):
    """SIGINT, --shutdown-timeout 2: a client reading 8 MiB finishes; a stalled client on 50 MiB
    is cut off at the deadline (not by --min-send-rate, which is off) and the server exits 0."""
    srv = Server(tmp, "sigint", ["-l", "127.0.0.1:0", "-w", "2", "--shutdown-timeout", "2",
                                 "--min-send-rate", "off", root])
    port = srv.port
    stall = socket.create_connection(("127.0.0.1", port), timeout=10)
    stall.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stall.sendall(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    stall.recv(1024)
    dl = Download(port, "/mid.bin", rate=16 * MIB).start()
    wait_for(lambda: dl.got >= MIB or dl.done_at, 10)
    t0 = time.monotonic()
    srv.p.send_signal(signal.SIGINT)
    time.sleep(0.2)
    refused = False
    try:
        c = socket.create_connection(("127.0.0.1", port), timeout=1)
        c.sendall(b"GET /small.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        try:
            refused = c.recv(100) == b""
        except (socket.timeout, ConnectionResetError):
            refused = True
        c.close()
    except (ConnectionRefusedError, socket.timeout):
        refused = True
    t(refused, "SIGINT: a new connection is not served")
    dl.join(10)
    rc, _, err = srv.stop(signal.SIGINT, timeout=20)
    secs = time.monotonic() - t0
    mid = read_bytes(os.path.join(root, "mid.bin"))
    t(dl.err is None and dl.got == len(mid) and dl.h.digest() == hashlib.sha256(mid).digest(),
      "SIGINT: the 8 MiB response in flight finishes byte-exact", (dl.got, dl.err))
    # what the stalled client got: the connection must end short of 50 MiB
    stall.settimeout(5)
    total, how = 0, "eof"
    try:
        stall.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        while True:
            b = stall.recv(1 << 20)
            if not b:
                break
            total += len(b)
    except ConnectionResetError:
        how = "reset"
    except socket.timeout:
        how = "timeout"
    stall.close()
    t(how != "timeout" and total < 50 * MIB,
      "SIGINT: a stalled client is cut off at --shutdown-timeout (%s after %d bytes)" % (how, total))
    t(rc == 0 and sanitizer_clean(err) and 1.5 < secs < 10,
      "SIGINT: exit 0 at the deadline (%.2f s after the signal, deadline 2 s), no sanitizer report"
      % secs, (rc, err[-2000:]))


def read_bytes(path):
    with open(path, "rb") as f:
        return f.read()


# ---- 2. SO_REUSEPORT handover -------------------------------------------------------------------

def check_handover(tmp, big_sha):
    roots = {}
    for who in ("A", "B"):
        r = os.path.join(tmp, "hand" + who)
        write(os.path.join(r, "who.txt"), who.encode())
        os.link(os.path.join(tmp, "root", "big.bin"), os.path.join(r, "big.bin"))
        roots[who] = r
    a = Server(tmp, "handA", ["-l", "127.0.0.1:0", "-w", "2", "--shutdown-timeout", "15",
                              roots["A"]])
    port = a.port
    # A download A is still sending when it is told to stop (only A exists when it starts).
    dl = Download(port, "/big.bin", rate=4 * MIB).start()
    wait_for(lambda: dl.got >= MIB or dl.done_at, 10)
    try:
        b = Server(tmp, "handB", ["-l", "127.0.0.1:%d" % port, "-w", "2", roots["B"]])
    except RuntimeError as e:
        t(False, "handover: a second instance starts on the same port (SO_REUSEPORT)", e)
        a.stop()
        dl.close()
        return
    t(b.port == port, "handover: a second instance starts on the same port (SO_REUSEPORT)",
      b.announce)

    stats = {"ok": 0, "fail": [], "who": [], "after_a": set()}
    stop = threading.Event()
    a_gone = threading.Event()

    def loop():
        while not stop.is_set():
            gone = a_gone.is_set()
            r = try_get(port, "/who.txt", timeout=4)
            if r[0] == 200 and r[2] in (b"A", b"B"):
                stats["ok"] += 1
                stats["who"].append(r[2])
                if gone:
                    stats["after_a"].add(r[2])
            else:
                stats["fail"].append((round(time.monotonic() - T0, 2), r[0]))
    threads = [threading.Thread(target=loop, daemon=True) for _ in range(2)]
    for th in threads:
        th.start()
    time.sleep(0.5)
    before = list(stats["who"])
    at_stop = dl.got
    dl.set_rate(20 * MIB)   # about 2 s of drain for A
    rc, secs, err = a.stop(timeout=20)
    a_gone.set()
    time.sleep(0.7)
    stop.set()
    for th in threads:
        th.join(10)
    dl.join(10)
    t(b"A" in before and b"B" in before,
      "handover: both instances answer while both run (%d A, %d B)"
      % (before.count(b"A"), before.count(b"B")))
    # A closes its listeners when the stop begins; connections the kernel had already queued
    # on them are reset unless net.ipv4.tcp_migrate_req=1 (shared state: not set here), so a
    # handful may fail. Before the listeners closed early, every connection routed to A did.
    t(len(stats["fail"]) * 1000 <= stats["ok"] and stats["ok"] > 20,
      "handover: at most 0.1%% of requests fail while A stops (%d ok, %d failed; A took %.2f s)"
      % (stats["ok"], len(stats["fail"]), secs), stats["fail"][:20])
    t(stats["after_a"] == {b"B"}, "handover: after A exits, B answers every request",
      stats["after_a"])
    t(dl.err is None and dl.got == 50 * MIB and dl.h.digest() == big_sha,
      "handover: A's download in flight finishes byte-exact", (dl.got, dl.err))
    t(rc == 0 and sanitizer_clean(err), "handover: A exits 0", (rc, err[-2000:]))
    t(secs > 0.5, "handover: A drained its download for %.2f s after SIGTERM (%.0f MiB were "
      "left)" % (secs, (50 * MIB - at_stop) / MIB))
    r = try_get(port, "/who.txt")
    t(r[0] == 200 and r[2] == b"B", "handover: B still serves the port alone", r)
    rc, _, err = b.stop()
    t(rc == 0 and sanitizer_clean(err), "handover: B exits 0 after SIGTERM", (rc, err[-2000:]))
    dl.close()


# ---- 3. systemd socket activation ---------------------------------------------------------------

SD_WRAP = ["sh", "-c", 'LISTEN_PID=$$ LISTEN_FDS=%d exec "$0" "$@"']


def activated(tmp, name, socks, args, listen_pid=None, wait=10):
    """Starts portico with socks as descriptors 3, 4, ... and LISTEN_FDS set (LISTEN_PID the
    server's own pid, through a shell that execs it, or listen_pid)."""
    fds = [s.fileno() for s in socks]

    def pre():
        # in the child: copy the sockets above 100 (close-on-exec), then onto 3, 4, ...
        # (os.dup2 makes those inheritable; every other Python descriptor is close-on-exec)
        high = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100) for fd in fds]
        for i, fd in enumerate(high):
            os.dup2(fd, 3 + i)
    wrap = list(SD_WRAP)
    wrap[2] = wrap[2] % len(socks)
    if listen_pid is not None:
        wrap[2] = wrap[2].replace("LISTEN_PID=$$", "LISTEN_PID=%d" % listen_pid)
    return Server(tmp, name, args, preexec_fn=pre, prefix=wrap, wait=wait, must_start=False)


def listener(blocking):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(128)
    s.setblocking(blocking)
    return s


def check_activation(tmp, root, big_sha):
    # Two sockets, non-blocking (NonBlocking=yes), no -l given: the default 0.0.0.0:8080 must
    # not be bound.
    socks = [listener(False), listener(False)]
    ports = [s.getsockname()[1] for s in socks]
    srv = activated(tmp, "sa1", socks, ["-w", "2", root])
    for s in socks:
        s.close()
    if not t(srv.alive() and srv.ports, "activation: portico starts with LISTEN_FDS=2",
             (srv.announce, read_text(srv.err)[-1500:])):
        srv.stop()
        return
    for i, p in enumerate(ports):
        r = try_get(p, "/small.txt")
        t(r[0] == 200 and r[2] == SMALL, "activation: the socket at fd %d (port %d) is served"
          % (3 + i, p), r)
    lp = listening_ports(srv.p.pid)
    t(lp == set(ports), "activation: the process listens on the inherited sockets only, "
      "not on the default address", "listening on %s, inherited %s" % (sorted(lp), ports))
    announced = [int(x) for x in re.findall(r"at http://[^ ]*:(-?\d+)/", srv.announce)]
    t(sorted(announced) == sorted(ports) and "0.0.0.0" not in srv.announce,
      "activation: one start-up line per inherited socket, with its address",
      "inherited 127.0.0.1:%s; printed %r" % (ports, srv.announce))
    rc, _, err = srv.stop()
    t(rc == 0 and sanitizer_clean(err), "activation: exit 0 after SIGTERM", (rc, err[-2000:]))

    # One blocking socket, as systemd passes it by default (NonBlocking=no), and -l given too:
    # the -l address is not bound.
    s = listener(True)
    port, other = s.getsockname()[1], free_port()
    srv = activated(tmp, "sa2", [s], ["-l", "127.0.0.1:%d" % other, "-w", "2", root])
    s.close()
    if not t(srv.alive() and srv.ports, "activation: portico starts on a blocking socket",
             (srv.announce, read_text(srv.err)[-1500:])):
        srv.stop()
        return
    res = [try_get(port, "/small.txt", timeout=2) for _ in range(3)]
    t(all(r[0] == 200 for r in res),
      "activation: a blocking inherited socket (systemd's default) is served", res)
    lp = listening_ports(srv.p.pid)
    t(lp == {port}, "activation: the -l address is not bound when sockets are passed",
      "listening on %s, inherited %d, -l %d" % (sorted(lp), port, other))
    rc, secs, err = srv.stop(timeout=6)
    t(rc == 0 and sanitizer_clean(err), "activation: exit 0 after SIGTERM (blocking socket, "
      "%.2f s)" % secs, (rc, err[-2000:]))

    # A restart under systemd: the socket stays open (here: held by the test) while the old
    # instance drains a download; connections arriving meanwhile are served by the next one.
    s = listener(False)
    port = s.getsockname()[1]
    a = activated(tmp, "sa-restart-a", [s], ["-w", "2", "--shutdown-timeout", "15", root])
    if t(a.alive() and a.ports, "activation restart: the first instance starts",
         (a.announce, read_text(a.err)[-1500:])):
        dl = Download(port, "/big.bin", rate=4 * MIB).start()
        wait_for(lambda: dl.got >= MIB or dl.done_at, 10)
        dl.set_rate(40 * MIB)
        a.p.send_signal(signal.SIGTERM)
        time.sleep(0.3)
        results = {}

        def late(i):
            results[i] = try_get(port, "/small.txt?late-%d" % i, timeout=20)
        ths = [threading.Thread(target=late, args=(i,), daemon=True) for i in range(3)]
        for th in ths:
            th.start()
        rc, secs, err = a.stop(timeout=20)
        b = activated(tmp, "sa-restart-b", [s], ["-w", "2", root])
        for th in ths:
            th.join(20)
        dl.join(10)
        t(rc == 0 and dl.got == 50 * MIB and dl.h.digest() == big_sha,
          "activation restart: the old instance finishes its download and exits 0 (%.2f s)" % secs,
          (rc, dl.got, dl.err, err[-1000:]))
        t(len(results) == 3 and all(r[0] == 200 and r[2] == SMALL for r in results.values()),
          "activation restart: connections made during the restart are served by the next "
          "instance", results)
        rc, _, err = b.stop()
        t(rc == 0, "activation restart: the next instance exits 0", (rc, err[-1000:]))
        dl.close()
    else:
        a.stop()
    s.close()

    # LISTEN_PID naming another process: the variables are not for us; -l is used.
    s = listener(False)
    port = s.getsockname()[1]
    srv = activated(tmp, "sa3", [s], ["-l", "127.0.0.1:0", "-w", "2", root], listen_pid=1)
    s.close()
    ok = srv.alive() and srv.ports and srv.port != port
    t(ok and try_get(srv.port, "/small.txt")[0] == 200,
      "activation: LISTEN_PID of another process is ignored (the -l address is served)",
      (srv.announce, read_text(srv.err)[-1000:]))
    r = try_get(port, "/small.txt", timeout=1)
    t(r[0] != 200, "activation: ... and the socket at fd 3 is not served then", r)
    rc, _, err = srv.stop()
    t(rc == 0, "activation: exit 0 (LISTEN_PID ignored)", (rc, err[-1000:]))


# ---- 4. --user ----------------------------------------------------------------------------------

def privileged_free_port():
    for p in range(900, 1000):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
            return p
        except OSError:
            continue
        finally:
            s.close()
    return None


def check_user(tmp):
    names = ["--user: binds a privileged port, then serves as nobody",
             "--user: every thread runs as uid/gid 65534 with exactly nobody's groups (initgroups), none of root's",
             "--user: no capabilities left in any thread",
             "--user: a file readable by others is served",
             "--user: a mode-600 root file gives 403",
             "--user: exit 0 after SIGTERM"]
    if os.geteuid() != 0:
        for nm in names:
            skip(nm, "needs root")
        return
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        for nm in names:
            skip(nm, "no user nobody")
        return
    root = os.path.join(tmp, "userroot")
    write(os.path.join(root, "pub.txt"), b"public\n", 0o644)
    write(os.path.join(root, "secret.txt"), b"root only\n", 0o600)
    os.chmod(root, 0o755)
    port = privileged_free_port() or 0
    srv = Server(tmp, "user", ["-l", "127.0.0.1:%d" % port, "-w", "2", "--user", "nobody", root],
                 must_start=False)
    if not t(srv.alive() and srv.ports, names[0] + " (port %d)" % port,
             (srv.announce, read_text(srv.err)[-1500:])):
        srv.stop()
        return
    pid = srv.p.pid
    allowed_groups = {"65534"} | {str(g.gr_gid) for g in grp.getgrall() if "nobody" in g.gr_mem}
    tasks = sorted(os.listdir("/proc/%d/task" % pid))
    bad, caps = [], []
    for tid in tasks:
        st = proc_status("/proc/%d/task/%s/status" % (pid, tid))
        if (st.get("Uid") != ["65534"] * 4 or st.get("Gid") != ["65534"] * 4 or
                set(st.get("Groups", [])) != allowed_groups):
            bad.append((tid, st.get("Uid"), st.get("Gid"), st.get("Groups")))
        if any(int(st.get(k, ["1"])[0], 16) for k in ("CapEff", "CapPrm")):
            caps.append((tid, st.get("CapEff"), st.get("CapPrm")))
    t(len(tasks) >= 3 and not bad, names[1] + " (%d threads)" % len(tasks), bad)
    t(not caps, names[2], caps)
    r = try_get(srv.port, "/pub.txt")
    t(r[0] == 200 and r[2] == b"public\n", names[3], r)
    r = try_get(srv.port, "/secret.txt")
    t(r[0] == 403 and b"root only" not in r[2], names[4], r)
    rc, _, err = srv.stop()
    t(rc == 0 and sanitizer_clean(err), names[5], (rc, err[-2000:]))


# ---- 5. config file -----------------------------------------------------------------------------

def check_config(tmp, root):
    port = free_port()
    conf = os.path.join(tmp, "portico.conf")
    write(conf, ("# portico test configuration\n"
                 "\n"
                 "listen 127.0.0.1:%d\n"
                 "   # an indented comment\n"
                 "workers 2\r\n"
                 "index home.html   \n"
                 "\t\n"
                 "cache-control max-age=60\n"
                 "autoindex\n"
                 "docroot %s\n" % (port, root)).encode())
    srv = Server(tmp, "conf1", ["-c", conf], must_start=False)
    if not t(srv.alive() and srv.ports == [port], "config: listen from the file (port %d)" % port,
             (srv.announce, read_text(srv.err)[-1500:])):
        srv.stop()
        return
    r = try_get(port, "/")
    t(r[0] == 200 and r[2] == HOME, "config: index home.html serves /home.html for /", r)
    r = try_get(port, "/small.txt")
    t(r[0] == 200 and r[1].get("cache-control") == "max-age=60",
      "config: cache-control max-age=60 is sent", r[:2])
    r = try_get(port, "/noindex/")
    t(r[0] == 200 and b"x.txt" in r[2], "config: 'autoindex' alone turns the listing on", r)
    rc, _, err = srv.stop()
    t(rc == 0 and sanitizer_clean(err), "config: exit 0 after SIGTERM", (rc, err[-2000:]))

    # the command line overrides the file, whatever the order
    srv = Server(tmp, "conf2", ["--cache-control", "no-store", "-l", "127.0.0.1:0", "-c", conf,
                                "--index", "off", "--autoindex=off"], must_start=False)
    if not t(srv.alive() and srv.ports and srv.port != port,
             "config: -l on the command line replaces the file's listen",
             (srv.announce, read_text(srv.err)[-1500:])):
        srv.stop()
        return
    t(port not in listening_ports(srv.p.pid), "config: the file's address is not bound then")
    r = try_get(srv.port, "/small.txt")
    t(r[0] == 200 and r[1].get("cache-control") == "no-store",
      "config: --cache-control overrides the file", r[:2])
    r = try_get(srv.port, "/")
    t(r[0] == 404, "config: --index off and --autoindex=off override the file", r)
    rc, _, err = srv.stop()
    t(rc == 0 and sanitizer_clean(err), "config: exit 0 (overrides)", (rc, err[-2000:]))

    # bad lines: exit 2, the message names FILE:LINE
    cases = [("max-conns lots", "max-conns"), ("no-such-setting 1", "no-such-setting"),
             ("listen 127.0.0.1", "listen"), ("timeout", "timeout"), ("index", "index"),
             ("config other.conf", "config")]
    for bad, word in cases:
        path = os.path.join(tmp, "bad.conf")
        write(path, ("# line 1\n\nworkers 2\n%s\nindex a.html\n" % bad).encode())
        rc, out, err = run_portico(["-c", path, root])
        t(rc == 2 and ("%s:4:" % path) in err and word in err,
          "config: bad line '%s' exits 2 naming FILE:4" % bad, (rc, err[-800:]))
    rc, out, err = run_portico(["-c", os.path.join(tmp, "missing.conf"), root])
    t(rc == 2 and "missing.conf" in err, "config: a missing file exits 2 naming it", (rc, err))


# ---- 6. --error-log -----------------------------------------------------------------------------

def check_error_log(tmp, root):
    elog = os.path.join(tmp, "elog", "error.log")
    os.makedirs(os.path.dirname(elog))
    bad_alog = os.path.join(tmp, "no-such-dir", "access.log")
    rc, out, err = run_portico(["-l", "127.0.0.1:0", "-w", "2", "--error-log", elog,
                                "--access-log", bad_alog, root])
    txt = read_text(elog)
    t(rc == 1 and bad_alog in txt and "No such file" in txt,
      "--error-log: an unusable --access-log exits 1 with the reason in the error log",
      (rc, txt, err))
    t(not re.sub(r"(?m)^==\d+==.*\n?", "", err).strip() and "serving" not in out,
      "--error-log: nothing on stderr or stdout then", (out, err))
    rc, out, err = run_portico(["-l", "127.0.0.1:0", "--error-log", elog,
                                os.path.join(tmp, "no-such-root")])
    t(rc == 1 and "no-such-root" in read_text(elog) and "no-such-root" not in err,
      "--error-log: a missing docroot is reported in the error log (exit 1)",
      (rc, read_text(elog), err))
    rc, out, err = run_portico(["-l", "127.0.0.1:0", "--error-log",
                                os.path.join(tmp, "no-such-dir", "e.log"), root])
    t(rc == 1 and "no-such-dir/e.log" in err,
      "--error-log: an unusable error log exits 1, reported on stderr", (rc, err))
    rc, out, err = run_portico(["--error-log", "off", root])
    t(rc == 2 and "error-log" in err, "--error-log off is refused (exit 2)", (rc, err))


# ---- 7. SIGHUP ----------------------------------------------------------------------------------

def check_sighup(tmp, root):
    logs = os.path.join(tmp, "logs")
    os.makedirs(logs)
    alog, elog = os.path.join(logs, "access.log"), os.path.join(logs, "error.log")
    srv = Server(tmp, "hup", ["-l", "127.0.0.1:0", "-w", "2", "--access-log", alog,
                              "--error-log", elog, root])
    port = srv.port
    for i in range(3):
        try_get(port, "/small.txt?before-%d" % i)
    t(wait_for(lambda: read_text(alog).count("before-") == 3, 5),
      "SIGHUP: requests are logged to --access-log", read_text(alog))
    os.rename(alog, alog + ".1")
    srv.p.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    for i in range(3):
        try_get(port, "/small.txt?after-%d" % i)
    ok = wait_for(lambda: read_text(alog).count("after-") == 3, 5)
    new, old = read_text(alog), read_text(alog + ".1")
    t(ok and "before-" not in new, "SIGHUP: new requests go to a new file at the original path",
      (new, old))
    t(old.count("before-") == 3 and "after-" not in old,
      "SIGHUP: the moved file keeps the old lines and gets no new ones", old)
    t(srv.alive() and try_get(port, "/small.txt")[0] == 200, "SIGHUP: the server keeps serving")

    # The error log is a log file too: after it is moved and SIGHUP is sent, messages must go to
    # a new file at its path. A failed access-log reopen (its path is now a directory) makes one.
    os.rename(elog, elog + ".1")
    os.rename(alog, alog + ".2")
    os.mkdir(alog)
    srv.p.send_signal(signal.SIGHUP)
    time.sleep(0.3)
    wait_for(lambda: "reopen" in read_text(elog) + read_text(elog + ".1"), 3)
    new, old = read_text(elog), read_text(elog + ".1")
    t("reopen" in new + old, "SIGHUP: a failed access-log reopen is reported in the error log",
      (new, old))
    t("reopen" in new and "reopen" not in old,
      "SIGHUP: the error log is reopened at its path too (message in the new file)",
      "new %r; moved %r" % (new[-300:], old[-300:]))
    t(srv.alive() and try_get(port, "/small.txt?after-failed-reopen")[0] == 200,
      "SIGHUP: a failed reopen does not stop the server")
    srv.p.send_signal(signal.SIGUSR1)
    line = [ln for ln in (wait_for(lambda: "counters:" in read_text(elog), 3) and
                          read_text(elog).splitlines()) or [] if "counters:" in ln]
    t(bool(line) and all(k in line[0] for k in ("accepts", "shed", "silent", "fd_reserve_used"))
      and int(line[0].split("accepts ")[1].split()[0]) >= 8,
      "SIGUSR1: the engine counters are logged as one line", read_text(elog)[-500:])
    rc, _, err = srv.stop()
    t(rc == 0 and sanitizer_clean(err), "SIGHUP: exit 0 after SIGTERM", (rc, err[-2000:]))
    t("after-failed-reopen" in read_text(alog + ".2"),
      "SIGHUP: after a failed reopen, logging goes on into the file still open",
      read_text(alog + ".2")[-300:])


# ---- main ---------------------------------------------------------------------------------------

SMALL = b"small file\n"
HOME = b"<!DOCTYPE html>\n<title>home</title>\n"


def build_root(tmp):
    root = os.path.join(tmp, "root")
    write(os.path.join(root, "small.txt"), SMALL)
    write(os.path.join(root, "home.html"), HOME)
    write(os.path.join(root, "index.html"), b"index\n")
    write(os.path.join(root, "noindex", "x.txt"), b"x\n")
    write(os.path.join(root, "mid.bin"), os.urandom(8 * MIB))
    big = os.urandom(MIB) * 50
    write(os.path.join(root, "big.bin"), big)
    return root, hashlib.sha256(big).digest()


def section(name, fn, *args):
    try:
        fn(*args)
    except Exception:
        t(False, "%s: completed without an exception" % name, traceback.format_exc())


def main():
    if not os.access(PORTICO, os.X_OK):
        t(False, "portico binary exists", PORTICO)
        return 1
    tmp = tempfile.mkdtemp(prefix="pt-ops-")
    os.chmod(tmp, 0o755)
    try:
        root, big_sha = build_root(tmp)
        section("graceful", check_graceful, tmp, root, big_sha)
        section("sigint", check_sigint, tmp, root, big_sha)
        section("handover", check_handover, tmp, big_sha)
        section("activation", check_activation, tmp, root, big_sha)
        section("user", check_user, tmp)
        section("config", check_config, tmp, root)
        section("error-log", check_error_log, tmp, root)
        section("sighup", check_sighup, tmp, root)
    except Exception:
        t(False, "test run completed", traceback.format_exc())
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("# %d checks in %.1f s (backend %s)" % (checks(), time.monotonic() - T0,
                                                  os.environ.get("PORTICO_BACKEND", "auto")),
          flush=True)
    return 1 if failures() else 0


if __name__ == "__main__":
    sys.exit(main())
