#!/usr/bin/env python3
"""Restarts that lose nothing (issue 22): the graceful stop of portico (build/portico of
PT_BUILD) hands its address over without failing a request.

 1. SO_REUSEPORT handover under load, five times in a row: 50 keep-alive clients and 20
    new-connection clients (Connection: close) run while instance N+1 starts on the address
    and instance N gets SIGTERM. Zero failed requests, zero connect errors, every response
    byte-exact; each old instance exits 0 within --stop-grace plus the longest response.
 2. A slow download in progress at SIGTERM completes byte-exact; the next request on its
    connection (sent as soon as it completes) is answered with Connection: close.
 3. An idle keep-alive connection that never sends again is closed after --stop-grace, not
    before; one that sends a request within it gets the answer, with Connection: close.
 4. The same handover through socket activation: the test holds the listening socket and
    passes it (LISTEN_FDS/LISTEN_PID) to two successive instances, systemd-style (the next
    starts when the old one has exited), under the same load: zero failures.
 5. SIGHUP config reloads under the same load: zero failures.
 6. The start-up warning when another socket listens on the address and
    net.ipv4.tcp_migrate_req is 0 (none when it is 1).
 7. HTTP/2 (h2c): a download across SIGTERM completes after a GOAWAY that names its stream,
    then the connection closes; an idle connection gets GOAWAY and is closed.
 8. TLS: a keep-alive request within the grace period is answered with Connection: close; a
    client that connected and never began its handshake does not hold the stop.

The script runs in a network namespace of its own (unshare, root), where it brings loopback up
and sets net.ipv4.tcp_migrate_req=1, as docs/OPERATIONS.md asks of a handover; without the
rights for that it is a reported skip. Load clients are threads on raw sockets.
Runs once per backend (PORTICO_BACKEND) from tests/run.sh.
"""
import ctypes
import fcntl
import os
import random
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
from ptest import t, skip, failures, read_text, sanitizer_clean, stop_process, announced_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
B = os.environ.get("PT_BUILD") or os.path.join(REPO, "build", "san")
PORTICO = os.path.join(B, "portico")
MIGRATE = "/proc/sys/net/ipv4/tcp_migrate_req"
GRACE = 1.0
PROCS = []

# ---- the network namespace -----------------------------------------------------------------


def private_netns():
    """Moves this (still single-threaded) process into a new network namespace with loopback
    up. Returns None, or why it could not."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x40000000) != 0:              # CLONE_NEWNET
        return "unshare(CLONE_NEWNET): %s" % os.strerror(ctypes.get_errno())
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ifr = fcntl.ioctl(s, 0x8913, struct.pack("16sH14x", b"lo", 0))        # SIOCGIFFLAGS
    flags = struct.unpack("16sH14x", ifr)[1]
    fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", flags | 1))      # SIOCSIFFLAGS, IFF_UP
    s.close()
    return None


def set_migrate(on):
    with open(MIGRATE, "w") as f:
        f.write("1\n" if on else "0\n")


# ---- servers -------------------------------------------------------------------------------

SD_WRAP = 'LISTEN_PID=$$ LISTEN_FDS=1 exec "$0" "$@"'


class Server:
    """portico with args (a port or "127.0.0.1:0" in them); waits for its start-up lines."""

    def __init__(self, tmp, name, args, sock=None, wait=15):
        self.name = name
        self.err = os.path.join(tmp, name + ".stderr")
        out = os.path.join(tmp, name + ".stdout")
        prefix, pre = [], None
        if sock is not None:                      # socket activation: sock becomes fd 3
            fd = sock.fileno()
            prefix = ["sh", "-c", SD_WRAP]

            def pre():
                os.dup2(fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 100), 3)
        with open(out, "wb") as o, open(self.err, "wb") as e:
            self.p = subprocess.Popen(prefix + [PORTICO] + args, stdout=o, stderr=e,
                                      stdin=subprocess.DEVNULL, preexec_fn=pre,
                                      close_fds=pre is None)
        PROCS.append(self.p)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and self.p.poll() is None:
            if "backend," in read_text(out):
                break
            time.sleep(0.02)
        self.port = announced_port(read_text(out), "http")
        self.tls_port = announced_port(read_text(out), "https")
        if self.port is None and self.tls_port is None:
            raise RuntimeError("%s did not start: %r %r" % (name, read_text(out),
                                                             read_text(self.err)[-2000:]))

    def term(self):
        self.t_sig = time.monotonic()
        self.p.send_signal(signal.SIGTERM)

    def wait(self, timeout=30):
        """After term(): (rc, seconds from the signal to the exit, stderr)."""
        rc = stop_process(self.p, signal.SIGTERM, timeout)
        return rc, time.monotonic() - self.t_sig, read_text(self.err)


def server_args(root, port, extra=()):
    return (["-l", "127.0.0.1:%s" % port] if port is not None else []) + \
        ["-w", "2", "--stop-grace", str(GRACE), "--shutdown-timeout", "20"] + list(extra) + [root]


# ---- load ----------------------------------------------------------------------------------

class Load:
    """keepalive clients that reuse their connection (reconnecting after Connection: close)
    and fresh clients that make one request per connection, all checking every byte."""

    def __init__(self, port, files, keepalive=50, fresh=20, timeout=20):
        self.port, self.files, self.timeout = port, files, timeout
        self.paths = sorted(files)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.ok = 0
        self.closes = 0                      # responses with Connection: close
        self.failed = []                     # (time, kind, path, detail)
        self.connect_errors = []
        self.threads = [threading.Thread(target=self.keepalive, args=(i,), daemon=True)
                        for i in range(keepalive)]
        self.threads += [threading.Thread(target=self.fresh, args=(i,), daemon=True)
                         for i in range(fresh)]

    def start(self):
        for th in self.threads:
            th.start()
        return self

    def finish(self):
        self.stop.set()
        for th in self.threads:
            th.join(self.timeout + 5)

    def count(self, ok, close=False, fail=None):
        with self.lock:
            self.ok += ok
            self.closes += close
            if fail:
                self.failed.append((round(time.monotonic() - T0, 3),) + fail)

    def connect(self):
        try:
            return socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
        except OSError as e:
            with self.lock:
                self.connect_errors.append((round(time.monotonic() - T0, 3), repr(e)))
            time.sleep(0.01)
            return None

    def check(self, path, status, head, body):
        if status != 200 or body != self.files[path]:
            return ("wrong response", path, "status %s, %d bytes, want %d: %r" % (
                status, len(body), len(self.files[path]), head[:200]))
        return None

    def keepalive(self, i):
        rnd, s, buf = random.Random(i), None, b""
        while not self.stop.is_set():
            if s is None:
                s, buf = self.connect(), b""
                if s is None:
                    continue
            path = rnd.choice(self.paths)
            try:
                s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\n\r\n" % path.encode())
                status, head, body, buf = read_response(s, buf)
            except (OSError, EOFError, ValueError) as e:
                self.count(0, fail=("keep-alive request", path, repr(e)))
                s.close()
                s = None
                continue
            close = b"\r\nconnection: close\r\n" in head.lower()
            self.count(1, close, self.check(path, status, head, body))
            if close:
                s.close()
                s = None
        if s:
            s.close()

    def fresh(self, i):
        rnd = random.Random(1000 + i)
        while not self.stop.is_set():
            s = self.connect()
            if s is None:
                continue
            path = rnd.choice(self.paths)
            try:
                s.sendall(b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n" % path.encode())
                status, head, body, rest = read_response(s, b"")
                if rest or s.recv(1):
                    raise ValueError("bytes after the response")
            except (OSError, EOFError, ValueError) as e:
                self.count(0, fail=("new-connection request", path, repr(e)))
                s.close()
                continue
            s.close()
            self.count(1, True, self.check(path, status, head, body))

    def verdict(self, minimum, what):
        t(not self.failed and not self.connect_errors and self.ok > minimum,
          "%s: zero failed requests, zero connect errors, every response byte-exact (%s)"
          % (what, self.summary()), (self.failed[:10], self.connect_errors[:10]))

    def summary(self):
        return "%d ok (%d with Connection: close), %d failed, %d connect errors" % (
            self.ok, self.closes, len(self.failed), len(self.connect_errors))


def read_response(s, buf):
    """One response with a Content-Length from s (buf: bytes already read). Returns (status,
    head, body, what follows)."""
    while b"\r\n\r\n" not in buf:
        d = s.recv(65536)
        if not d:
            raise EOFError("connection closed before the head (%d bytes)" % len(buf))
        buf += d
    head, _, rest = buf.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    cl = None
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == b"content-length":
            cl = int(v.strip())
    if cl is None:
        raise ValueError("no Content-Length: %r" % head[:200])
    while len(rest) < cl:
        d = s.recv(max(65536, cl - len(rest)))
        if not d:
            raise EOFError("connection closed after %d of %d body bytes" % (len(rest), cl))
        rest += d
    return status, head + b"\r\n\r\n", rest[:cl], rest[cl:]


T0 = time.monotonic()


def last_exits(srv, what):
    srv.term()
    rc, _, err = srv.wait()
    t(rc == 0 and sanitizer_clean(err), "%s: the last instance exits 0" % what, (rc, err[-2000:]))


# ---- 1. SO_REUSEPORT handover, five times ----------------------------------------------------

def check_handover(tmp, root, files):
    first = Server(tmp, "reuse0", server_args(root, 0))
    port = first.port
    load = Load(port, files).start()
    time.sleep(1.0)
    old, secs_all = first, []
    for i in range(1, 6):
        ok0 = load.ok
        try:
            new = Server(tmp, "reuse%d" % i, server_args(root, port))
        except RuntimeError as e:
            t(False, "handover %d: the next instance starts on the same address" % i, e)
            break
        time.sleep(0.6)                            # both serve
        old.term()
        rc, secs, err = old.wait()
        secs_all.append(secs)
        time.sleep(0.4)                            # the new one alone
        t(rc == 0 and sanitizer_clean(err) and secs <= GRACE + 2.5,
          "handover %d: the old instance exits 0 within --stop-grace plus the longest response "
          "(%.2f s; %d requests in the round)" % (i, secs, load.ok - ok0), (rc, err[-2000:]))
        old = new
    load.finish()
    load.verdict(1000, "handover x5 under 50 keep-alive and 20 new-connection clients")
    last_exits(old, "handover")


# ---- 2. a slow download in progress ----------------------------------------------------------

def check_download(tmp, root, big):
    srv = Server(tmp, "download", server_args(root, 0))
    s = socket.create_connection(("127.0.0.1", srv.port), timeout=20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    buf = b""
    while b"\r\n\r\n" not in buf:
        buf += s.recv(65536)
    head, _, body = buf.partition(b"\r\n\r\n")
    got, rate, t_start, signalled = bytearray(body), 6 << 20, time.monotonic(), False
    try:
        while len(got) < len(big):
            if not signalled and len(got) >= 1 << 20:
                srv.term()
                signalled = True
            d = s.recv(min(65536, len(big) - len(got)))
            if not d:
                break
            got += d
            ahead = len(got) / rate - (time.monotonic() - t_start)
            if ahead > 0:
                time.sleep(ahead)
        done = time.monotonic()
        err = None
    except OSError as e:
        done, err = time.monotonic(), repr(e)
    t(b" 200 " in head.split(b"\r\n")[0] and bytes(got) == big and signalled,
      "a 20 MiB download read slowly across SIGTERM completes byte-exact (%.2f s after the "
      "signal)" % (done - srv.t_sig if signalled else -1), (len(got), err))
    # the next request, sent as soon as the download is complete: answered, Connection: close
    try:
        s.sendall(b"GET /f1.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        status, h2, body2, rest = read_response(s, b"")
        eof = not rest and s.recv(1) == b""
        r = (status, b"connection: close" in h2.lower(), body2 == FILES["/f1.bin"], eof)
    except (OSError, EOFError, ValueError) as e:
        r = repr(e)
    t(r == (200, True, True, True), "the next request on the download's connection is answered "
      "with Connection: close, then the connection closes", r)
    s.close()
    rc, secs, errtxt = srv.wait()
    t(rc == 0 and sanitizer_clean(errtxt) and secs <= (done - srv.t_sig) + GRACE + 2.5,
      "SIGTERM with a download in progress: exit 0 %.2f s after the signal (the download took "
      "%.2f s of it)" % (secs, done - srv.t_sig), (rc, errtxt[-2000:]))


# ---- 3. idle connections ---------------------------------------------------------------------

def check_idle(tmp, root):
    grace = 1.5
    srv = Server(tmp, "idle", server_args(root, 0, ["--stop-grace", str(grace)]))
    conns = []
    for _ in range(2):
        c = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        c.sendall(b"GET /f0.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        read_response(c, b"")
        conns.append(c)
    silent = socket.create_connection(("127.0.0.1", srv.port), timeout=10)  # never sends
    time.sleep(0.2)
    srv.term()
    time.sleep(0.3)
    try:                                       # within the grace period: answered
        conns[1].sendall(b"GET /f2.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        status, head, body, rest = read_response(conns[1], b"")
        r = (status, b"connection: close" in head.lower(), body == FILES["/f2.bin"],
             not rest and conns[1].recv(1) == b"")
    except (OSError, EOFError, ValueError) as e:
        r = repr(e)
    t(r == (200, True, True, True), "a request on an idle keep-alive connection within "
      "--stop-grace after SIGTERM is answered with Connection: close, then it closes", r)
    closed = {}
    for name, c in (("keep-alive", conns[0]), ("new, silent", silent)):
        try:
            d = c.recv(1)
            closed[name] = (d, round(time.monotonic() - srv.t_sig, 2))
        except OSError as e:
            closed[name] = (repr(e), round(time.monotonic() - srv.t_sig, 2))
        c.close()
    t(all(v[0] == b"" and grace - 0.2 <= v[1] <= grace + 2.0 for v in closed.values()),
      "connections silent through --stop-grace %.1f are closed (FIN) then, not before" % grace,
      closed)
    conns[1].close()
    rc, secs, err = srv.wait()
    t(rc == 0 and sanitizer_clean(err) and secs <= grace + 2.5,
      "SIGTERM with idle connections: exit 0 after the grace period (%.2f s)" % secs,
      (rc, err[-2000:]))


# ---- 4. socket activation --------------------------------------------------------------------

def check_activation(tmp, root, files):
    ls = socket.socket()
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", 0))
    ls.listen(4096)
    ls.setblocking(False)
    port = ls.getsockname()[1]
    srv = Server(tmp, "activated0", server_args(root, None), sock=ls)
    load = Load(port, files).start()
    time.sleep(1.0)
    for i in (1, 2):
        ok0 = load.ok
        srv.term()
        rc, secs, err = srv.wait()
        t(rc == 0 and sanitizer_clean(err) and secs <= GRACE + 2.5,
          "socket activation %d: the old instance exits 0 (%.2f s)" % (i, secs), (rc, err[-2000:]))
        try:
            srv = Server(tmp, "activated%d" % i, server_args(root, None), sock=ls)
        except RuntimeError as e:
            t(False, "socket activation %d: the next instance starts on the socket" % i, e)
            break
        time.sleep(1.0)
        t(load.ok > ok0, "socket activation %d: requests are served across the restart (%d)"
          % (i, load.ok - ok0))
    load.finish()
    load.verdict(300, "socket activation, two restarts on the socket the test holds under load")
    last_exits(srv, "socket activation")
    ls.close()


# ---- 5. SIGHUP reloads -----------------------------------------------------------------------

def check_reload(tmp, root, files):
    conf = os.path.join(tmp, "reload.conf")
    with open(conf, "w") as f:
        f.write("idle-timeout 30\n")
    srv = Server(tmp, "reload", ["-c", conf] + server_args(root, 0))
    load = Load(srv.port, files).start()
    time.sleep(0.5)
    for i in range(3):
        with open(conf, "w") as f:
            f.write("idle-timeout %d\n" % (30 + i))
        srv.p.send_signal(signal.SIGHUP)
        time.sleep(0.5)
    load.finish()
    err = read_text(srv.err)
    t(not load.failed and not load.connect_errors and load.ok > 100 and
      "reload failed" not in err,
      "three SIGHUP reloads under load: zero failed requests, zero connect errors (%s)"
      % load.summary(), (load.failed[:10], load.connect_errors[:10], err[-1000:]))
    srv.term()
    rc, _, err = srv.wait()
    t(rc == 0 and sanitizer_clean(err), "reload: exit 0", (rc, err[-2000:]))


# ---- 6. the hint -----------------------------------------------------------------------------

def check_hint(tmp, root):
    res = {}
    for on in (False, True):
        set_migrate(on)
        a = Server(tmp, "hint-a-%d" % on, server_args(root, 0))
        b = Server(tmp, "hint-b-%d" % on, server_args(root, a.port))
        res[on] = ("tcp_migrate_req" in read_text(a.err), "tcp_migrate_req" in read_text(b.err))
        for s in (b, a):
            s.term()
            s.wait()
    set_migrate(True)
    t(res[False] == (False, True) and res[True] == (False, False),
      "a second instance on the address warns about net.ipv4.tcp_migrate_req=0, only then",
      res)


# ---- 7. HTTP/2 ---------------------------------------------------------------------------------

def check_h2(tmp, root, big):
    try:
        from h2client import H2Conn
    except ImportError as e:
        skip("HTTP/2: a download across SIGTERM", "python3-h2 missing: %s" % e)
        return
    srv = Server(tmp, "h2", server_args(root, 0, ["--h2c"]))
    dl, idle = H2Conn(srv.port, timeout=20), H2Conn(srv.port, timeout=20)
    r0 = idle.get("/f1.bin")
    sid = dl.request("GET", "/big.bin")
    r = dl.streams[sid]
    dl.wait(lambda: len(r.body) >= 1 << 20, 20)
    srv.term()
    t_idle = idle.closed(10) and time.monotonic() - srv.t_sig
    while not r.done() and not dl.eof:               # read on, slowly
        dl.pump(1.0)
        time.sleep(0.002)
    done = time.monotonic() - srv.t_sig
    g = dl.goaway
    t(r.status == 200 and bytes(r.body) == big and g is not None and g.error_code == 0 and
      g.last_stream_id >= sid, "HTTP/2: a 20 MiB download across SIGTERM completes byte-exact "
      "after GOAWAY NO_ERROR naming its stream (%.2f s after the signal)" % done,
      (r.status, len(r.body), r.reset, g))
    t(dl.closed(5), "HTTP/2: the connection closes once its stream is done")
    t(r0.status == 200 and bytes(r0.body) == FILES["/f1.bin"] and idle.goaway is not None and
      t_idle is not False and t_idle < 3, "HTTP/2: an idle connection gets GOAWAY and is closed "
      "(%s s after the signal)" % (round(t_idle, 2) if t_idle else t_idle), idle.goaway)
    dl.close()
    idle.close()
    rc, secs, err = srv.wait()
    t(rc == 0 and sanitizer_clean(err), "HTTP/2: exit 0 %.2f s after the signal" % secs,
      (rc, err[-2000:]))


# ---- 8. TLS ------------------------------------------------------------------------------------

def check_tls(tmp, root):
    import ssl
    from ptest import make_certs
    certs = make_certs(os.path.join(tmp, "certs"))
    srv = Server(tmp, "tls", ["--listen-tls", "127.0.0.1:0", "--tls-cert", certs["a"][0],
                              "--tls-key", certs["a"][1], "--http2=off"] +
                 server_args(root, 0), wait=20)
    ctx = ssl.create_default_context(cafile=certs["ca"])
    port = srv.tls_port
    c = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                        server_hostname="localhost")
    c.sendall(b"GET /f2.bin HTTP/1.1\r\nHost: t\r\n\r\n")
    first = read_response(c, b"")
    raw = socket.create_connection(("127.0.0.1", port), timeout=10)   # never starts TLS
    time.sleep(0.2)
    srv.term()
    time.sleep(0.3)
    try:
        c.sendall(b"GET /f3.bin HTTP/1.1\r\nHost: t\r\n\r\n")
        status, head, body, rest = read_response(c, b"")
        r = (status, b"connection: close" in head.lower(), body == FILES["/f3.bin"])
    except (OSError, EOFError, ValueError) as e:
        r = repr(e)
    t(first[0] == 200 and r == (200, True, True), "TLS: a request on a keep-alive connection "
      "within --stop-grace after SIGTERM is answered with Connection: close", r)
    rc, secs, err = srv.wait()
    t(rc == 0 and sanitizer_clean(err) and secs <= GRACE + 2.5, "TLS: a client that connected "
      "and never began its handshake does not hold the stop beyond --stop-grace (exit 0 "
      "after %.2f s)" % secs, (rc, err[-2000:]))
    c.close()
    raw.close()


FILES = {}


def main():
    if not os.path.exists(PORTICO):
        print("1..0 # SKIP %s not built" % PORTICO)
        return 0
    why = private_netns() if os.geteuid() == 0 else "not root"
    if why or not os.path.exists(MIGRATE):
        skip("restarts that lose nothing", why or "no net.ipv4.tcp_migrate_req (Linux < 5.14)")
        return 0
    set_migrate(True)
    rnd = random.Random(22)
    tmp = tempfile.mkdtemp(prefix="pt-restart.")
    root = os.path.join(tmp, "root")
    os.makedirs(root)
    for i, n in enumerate((1, 100, 1500, 4096, 16384, 65536, 200000)):
        FILES["/f%d.bin" % i] = rnd.randbytes(n)
    big = rnd.randbytes(20 << 20)
    for path, data in list(FILES.items()) + [("/big.bin", big)]:
        with open(root + path, "wb") as f:
            f.write(data)
    sections = [("handover", check_handover, (tmp, root, FILES)),
                ("download", check_download, (tmp, root, big)),
                ("idle", check_idle, (tmp, root)),
                ("activation", check_activation, (tmp, root, FILES)),
                ("reload", check_reload, (tmp, root, FILES)),
                ("hint", check_hint, (tmp, root)),
                ("h2", check_h2, (tmp, root, big)),
                ("tls", check_tls, (tmp, root))]
    try:
        for name, fn, args in sections:
            t0 = time.monotonic()
            try:
                fn(*args)
            except Exception:  # noqa: BLE001 - a crash of a section is one failed check
                t(False, "%s: ran to the end" % name, traceback.format_exc())
            print("# %s: %.1f s" % (name, time.monotonic() - t0), flush=True)
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
        subprocess.run(["rm", "-rf", tmp])
    return 1 if failures() else 0


if __name__ == "__main__":
    sys.exit(main())
