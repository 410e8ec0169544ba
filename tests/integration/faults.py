#!/usr/bin/env python3
"""portico under injected faults (PORTICO_FAULTS, sanitizer build only; both backends).

The sanitizer build of portico runs with accept failing with EMFILE, receives with
ECONNRESET and kernel sends with EPIPE, each at a rate and at most a number of times
(tests/support/fault.c, docs/ENGINE.md "Fault injection"). Sequential and parallel clients fetch
three files (in memory, sendfile, large sendfile), one request per connection and several per
keep-alive connection. While faults are injected some requests fail (the connection is reset
or closed early), but none may hang, and every response that does arrive complete is
byte-exact. The server must stay up; once every rule has spent its count (the server says so
on stderr) every request succeeds byte-exact; the descriptor count of the process returns to
its baseline once the clients are gone; SIGTERM ends it with status 0 and a stderr free of
sanitizer reports. A malformed PORTICO_FAULTS stops portico at startup with status 2 and a
message naming the bad rule.
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ptest import t, skip, failures, read_text, sanitizer_clean, wait_for, HttpConn  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
B = os.environ.get("PT_BUILD") or os.path.join(REPO, "build", "san")
PORTICO = os.path.join(B, "portico")

COUNT = 15
FAULTS = ("accept=EMFILE@rate:100000/count:%d,recv=ECONNRESET@rate:50000/count:%d,"
          "send=EPIPE@rate:50000/count:%d,seed=3" % (COUNT, COUNT, COUNT))
RULES = ("accept", "recv", "send")


class Conn(HttpConn):
    def response(self):
        """(status, body) of one response framed by Content-Length."""
        head = self.read_until(b"\r\n\r\n").decode("latin1")
        status = int(head.split(" ", 2)[1])
        m = re.search(r"\r\ncontent-length:\s*(\d+)", head, re.I)
        if not m:
            raise ValueError("no Content-Length: %r" % head[:300])
        return status, self.read_n(int(m.group(1)))


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.ok = self.failed = self.hung = 0
        self.wrong = []

    def add(self, what, detail=None):
        with self.lock:
            if what == "wrong":
                self.wrong.append(detail)
            else:
                setattr(self, what, getattr(self, what) + 1)

    def __repr__(self):
        return "%d ok, %d failed, %d hung, %d wrong" % (self.ok, self.failed, self.hung, len(self.wrong))


def session(port, files, names, st):
    """One connection, len(names) requests on it (keep-alive); records each outcome."""
    c = None
    done = 0
    try:
        c = Conn(port, timeout=10)
        for n in names:
            c.send("GET /%s HTTP/1.1\r\nHost: t\r\n\r\n" % n)
            status, body = c.response()
            if status != 200 or body != files[n]:
                st.add("wrong", "%s: %d, %d bytes" % (n, status, len(body)))
            else:
                st.add("ok")
            done += 1
    except socket.timeout:
        st.add("hung")
        done += 1
    except (EOFError, ConnectionError, OSError, ValueError, IndexError):
        pass
    finally:
        if c:
            c.close()
    for _ in names[done:]:
        st.add("failed")


def load(port, files, st, threads=8, rounds=6):
    """Sequential sessions, then parallel ones: single requests and keep-alive runs of three."""
    names = sorted(files)
    for i in range(12):
        session(port, files, [names[i % len(names)]], st)

    def worker(k):
        for r in range(rounds):
            if (k + r) % 2:
                session(port, files, [names[(k + r) % len(names)]], st)
            else:
                session(port, files, [names[(k + r + j) % len(names)] for j in range(3)], st)
    ths = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for th in ths:
        th.start()
    for th in ths:
        th.join()


def fds_of(pid):
    try:
        return os.listdir("/proc/%d/fd" % pid)
    except FileNotFoundError:
        return []


def sockets_of(pid):
    n = 0
    for fd in fds_of(pid):
        try:
            n += os.readlink("/proc/%d/fd/%s" % (pid, fd)).startswith("socket:")
        except OSError:
            pass
    return n


def start(tmp, root, env):
    out, err = os.path.join(tmp, "stdout"), os.path.join(tmp, "stderr")
    with open(out, "wb") as o, open(err, "wb") as e:
        p = subprocess.Popen([PORTICO, "-l", "127.0.0.1:0", "-w", "2", root], stdout=o, stderr=e,
                             stdin=subprocess.DEVNULL, env=env)
    def announced():
        txt = read_text(out)
        m = re.search(r"^portico: serving .* at http://127\.0\.0\.1:(\d+)/$", txt, re.M)
        return m if m and "backend," in txt else p.poll() is not None
    m = wait_for(announced, 10)
    if not isinstance(m, re.Match):
        raise RuntimeError("portico did not start: rc=%r stderr=%r" % (p.poll(), read_text(err)[-2000:]))
    return p, int(m.group(1)), err


def main():
    if not os.path.exists(PORTICO):
        skip("portico under faults", "%s is not built" % PORTICO)
        return
    tmp = tempfile.mkdtemp(prefix="pt-faults-")
    p = None
    try:
        root = os.path.join(tmp, "root")
        os.makedirs(root)
        files = {"small.txt": b"".join(b"line %d\n" % i for i in range(120)),
                 "mid.bin": os.urandom(64 << 10),
                 "big.bin": os.urandom(3 << 20)}
        for n, data in files.items():
            with open(os.path.join(root, n), "wb") as f:
                f.write(data)

        # a malformed rule: refused at startup, naming the bad part
        env = dict(os.environ, PORTICO_FAULTS="accept=EMFILE@nth:2,recv=EBOGUS")
        r = subprocess.run([PORTICO, "-l", "127.0.0.1:0", "-w", "1", root], env=env,
                           stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=20)
        if "PORTICO_FAULTS" not in r.stderr and r.returncode == 0:
            skip("malformed PORTICO_FAULTS", "this build has no fault injection (not PT_TESTING)")
            return
        t(r.returncode == 2 and "'recv=EBOGUS'" in r.stderr and "unknown errno 'EBOGUS'" in r.stderr,
          "a malformed PORTICO_FAULTS stops portico with status 2 naming the bad rule",
          "rc=%r stderr=%r" % (r.returncode, r.stderr[-500:]))

        p, port, errf = start(tmp, root, dict(os.environ, PORTICO_FAULTS=FAULTS))
        t("fault injection: PORTICO_FAULTS=" in read_text(errf), "the server announces its faults")

        # under faults: load until every rule has spent its count
        st = Stats()
        deadline = time.monotonic() + 120
        spent = []
        while time.monotonic() < deadline and p.poll() is None:
            load(port, files, st)
            err = read_text(errf)
            spent = [r for r in RULES if "fault injection: %s: all %d failures injected" % (r, COUNT) in err]
            if len(spent) == len(RULES):
                break
        t(p.poll() is None, "the server stays up under faults", read_text(errf)[-2000:])
        t(len(spent) == len(RULES), "every rule spent its %d failures (%s)" % (COUNT, ", ".join(spent)),
          "stats: %r" % st)
        t(st.failed > 0, "some requests failed while faults were injected (%r)" % st)
        t(st.hung == 0, "no request hung under faults (%r)" % st)
        t(not st.wrong, "every complete response under faults is byte-exact", st.wrong[:5])

        # baseline: at rest after the fault phase (file cache warm, clients gone)
        def settled():
            a = len(fds_of(p.pid))
            time.sleep(0.3)
            return a == len(fds_of(p.pid)) and a
        base = wait_for(settled, 10)
        base_socks = sockets_of(p.pid)
        t(base_socks == 2, "at rest only the 2 listening sockets are open (%d sockets)" % base_socks)

        # faults spent: everything succeeds, byte-exact
        st2 = Stats()
        load(port, files, st2, threads=8, rounds=8)
        t(st2.ok > 0 and st2.failed == 0 and st2.hung == 0 and not st2.wrong,
          "after the faults every request succeeds byte-exact (%r)" % st2, st2.wrong[:5])

        n = wait_for(lambda: len(fds_of(p.pid)) == base and len(fds_of(p.pid)), 10)
        t(n == base, "the descriptor count returns to its baseline (%d, now %d)" % (base, len(fds_of(p.pid))))
        t(sockets_of(p.pid) == 2, "no connection socket is left open (%d sockets)" % sockets_of(p.pid))
        t(p.poll() is None, "the server is still up")

        p.send_signal(signal.SIGTERM)
        try:
            rc = p.wait(20)
        except subprocess.TimeoutExpired:
            p.kill()
            rc = "killed"
        err = read_text(errf)
        t(rc == 0, "SIGTERM: clean exit (%r)" % rc, err[-2000:])
        t(sanitizer_clean(err), "stderr is sanitizer-clean", err[-3000:])
        p = None

        # an open that fails for lack of descriptors: 503 with Retry-After, not remembered
        p, port, errf = start(tmp, root, dict(os.environ, PORTICO_FAULTS="open=EMFILE@nth:1"))
        name = sorted(files)[0]
        c = Conn(port)
        c.send(("GET /%s HTTP/1.1\r\nHost: t\r\n\r\n" % name).encode())
        head = c.read_until(b"\r\n\r\n").decode("latin1")
        t(head.startswith("HTTP/1.1 503 ") and "\r\nRetry-After: 1" in head,
          "an open failing with EMFILE is answered 503 with Retry-After", head[:300])
        c.close()
        c = Conn(port)
        c.send(("GET /%s HTTP/1.1\r\nHost: t\r\n\r\n" % name).encode())
        status, body = c.response()
        t(status == 200 and body == files[name], "the next request opens the file again: 200")
        c.close()
        p.send_signal(signal.SIGTERM)
        p.wait(20)
        p = None
    finally:
        if p is not None and p.poll() is None:
            p.kill()
            p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


main()
sys.exit(1 if failures() else 0)
