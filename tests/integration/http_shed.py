#!/usr/bin/env python3
"""Shedding through the HTTP layer (both backends): at the connection limit a new client gets in
and the engine closes, in order, a connection whose request body arrives slower than the minimum
rate (partial), then an idle keep-alive one; never a connection whose body arrives fast enough.

The test server runs with one worker, max_conns 3 and a minimum rate of 1000 B/s.
"""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ptest import t, failures, sanitizer_clean  # noqa: E402

B = os.environ.get("PT_BUILD", "build/san")
FAST_LEN = 60000


def connect(port):
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    return s


def read_response(s):
    """Whole response (Content-Length bodies) or b'' when the connection was closed or reset."""
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            k = s.recv(4096)
            if not k:
                return b""
            data += k
        head, body = data.split(b"\r\n\r\n", 1)
        n = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                n = int(line.split(b":")[1])
        while len(body) < n:
            k = s.recv(4096)
            if not k:
                return b""
            body += k
        return head + b"\r\n\r\n" + body
    except (ConnectionResetError, socket.timeout):
        return b""


def closed_by_server(s):
    s.settimeout(3)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class Dribble(threading.Thread):
    """Sends a POST body of `total` bytes in pieces of `piece` every `every` s, then reads."""

    def __init__(self, port, total, piece, every):
        super().__init__(daemon=True)
        self.s = connect(port)
        self.total, self.piece, self.every = total, piece, every
        self.stop = False
        self.response = None
        self.s.sendall(b"POST /echo-body HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n"
                       % total)

    def run(self):
        sent = 0
        try:
            while sent < self.total and not self.stop:
                k = min(self.piece, self.total - sent)
                self.s.sendall(b"x" * k)
                sent += k
                time.sleep(self.every)
            if not self.stop:
                self.response = read_response(self.s)
        except OSError:
            self.response = b""


def run(port):
    slow = Dribble(port, 1000, 1, 0.2)             # 5 B/s: below the 1000 B/s minimum
    fast = Dribble(port, FAST_LEN, 2000, 0.1)      # 20 KB/s for 3 s
    idle = connect(port)
    idle.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    t(b" 200 " in read_response(idle), "the keep-alive connection is served, then idles")
    slow.start()
    fast.start()
    time.sleep(2.5)                                # a rate window has judged both bodies
    n1 = connect(port)
    n1.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    t(b" 200 " in read_response(n1), "a new client at the limit is served at once")
    slow.stop = True
    t(closed_by_server(slow.s), "the slow body (partial) was shed first")
    n2 = connect(port)
    n2.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    t(b" 200 " in read_response(n2), "a second new client is served at once")
    t(closed_by_server(idle), "then the idle keep-alive connection was shed")
    fast.join(10)
    r = fast.response or b""
    t(b" 200 " in r and r.split(b"\r\n\r\n", 1)[1].startswith(b"%d " % FAST_LEN),
      "the connection whose body arrived fast enough was never shed", r[:200])
    for s in (idle, n1, n2, slow.s, fast.s):
        s.close()


def main():
    fd, fpath = tempfile.mkstemp()
    os.write(fd, b"file\n")
    os.close(fd)
    srv = subprocess.Popen([B + "/tests/integration/http_testsrv", fpath, "3"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = int(srv.stdout.readline().rsplit(":", 1)[1])
        run(port)
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            rc = srv.wait(15)
        except subprocess.TimeoutExpired:
            srv.kill()
            rc = -9
        err = srv.stderr.read()
        os.unlink(fpath)
    t(rc == 0 and sanitizer_clean(err), "server exits 0, sanitizer-clean", err[-3000:])
    t("partial or slow request" in err and "idle between requests" in err,
      "one log line per shed cause", err[-1500:])
    sys.exit(1 if failures() else 0)


main()
