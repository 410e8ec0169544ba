"""TAP output and small helpers shared by the Python integration tests (tests/integration/).

t(ok, name, detail) prints one TAP line ("ok N - name" / "not ok N - name", the detail as
"# " comments) and returns ok; skip() prints an honest "# SKIP"; failures() counts the failed
lines, so a script ends with sys.exit(1 if failures() else 0)."""
import re
import time

_n = 0
_failed = 0


def t(ok, name, detail=""):
    global _n, _failed
    _n += 1
    print(("ok %d - %s" if ok else "not ok %d - %s") % (_n, name), flush=True)
    if not ok:
        _failed += 1
        if detail != "":
            print("# " + str(detail)[:2000].replace("\n", "\n# "), flush=True)
    return bool(ok)


def skip(name, why):
    global _n
    _n += 1
    print("ok %d - %s # SKIP %s" % (_n, name, why), flush=True)


def failures():
    return _failed


def checks():
    """TAP lines printed so far."""
    return _n


def read_text(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except (FileNotFoundError, IsADirectoryError):
        return ""


def sanitizer_clean(err):
    return not re.search(r"ERROR: (Address|Leak|Thread)Sanitizer|runtime error:|SUMMARY: ", err)


def stop_process(p, sig=None, timeout=15):
    """Sends sig (default SIGTERM) unless p has exited, waits up to timeout seconds, kills it
    after that. Returns the exit status, or "killed after N s"."""
    import signal
    import subprocess
    if p.poll() is None:
        p.send_signal(sig if sig is not None else signal.SIGTERM)
    try:
        return p.wait(timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait()
        return "killed after %s s" % timeout


def wait_for(fn, timeout, interval=0.05):
    """Calls fn until it returns something true or timeout seconds pass; returns its last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


class HttpConn:
    """A loopback connection with a byte buffer: the reading half of the tests' HTTP clients
    (each test adds the response() parser it needs)."""

    def __init__(self, port, timeout=10):
        import socket
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()

    def send(self, data):
        self.s.sendall(data.encode("latin1") if isinstance(data, str) else data)

    def _fill(self):
        b = self.s.recv(1 << 20)
        if not b:
            raise EOFError("connection closed")
        self.buf += b

    def read_until(self, sep):
        while True:
            i = self.buf.find(sep)
            if i >= 0:
                out = bytes(self.buf[:i + len(sep)])
                del self.buf[:i + len(sep)]
                return out
            self._fill()

    def read_n(self, k):
        while len(self.buf) < k:
            self._fill()
        out = bytes(self.buf[:k])
        del self.buf[:k]
        return out

    def read_all(self):
        try:
            while True:
                self._fill()
        except (EOFError, ConnectionResetError):
            pass
        out = bytes(self.buf)
        self.buf = bytearray()
        return out

    def header_response(self, head_only=False):
        """(status, headers dict with lower-case names, body framed by Content-Length)."""
        head = self.read_until(b"\r\n\r\n").decode("latin1")
        lines = head.split("\r\n")
        if not lines[0].startswith("HTTP/1.1 "):
            raise ValueError("bad status line %r" % lines[0][:80])
        status = int(lines[0].split()[1])
        h = {}
        for line in lines[1:]:
            if line:
                k, v = line.split(":", 1)
                h[k.strip().lower()] = v.strip()
        if head_only or status in (204, 304) or status < 200:
            return status, h, b""
        return status, h, self.read_n(int(h.get("content-length", "0")))

    def closed(self, wait=2.0):
        """True when the peer closed (EOF or reset) within wait seconds."""
        import socket
        self.s.settimeout(wait)
        try:
            return self.s.recv(1) == b""
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.s.close()
