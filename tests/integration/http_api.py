#!/usr/bin/env python3
"""The HTTP layer over real sockets, against tests/integration/http_testsrv.c (both backends).
Each check prints a TAP line; the server is stopped with SIGTERM and must exit 0 (ASan/LSan).
PT_WINE=1 (tests/win/run.sh): the Windows build's http_testsrv.exe under Wine, stopped by
closing its standard input (Wine gives a test no console event to send)."""
import os, re, signal, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ptest import t, failures, HttpConn  # noqa: E402

B = os.environ.get("PT_BUILD", "build/san")
WINE = os.environ.get("PT_WINE", "") not in ("", "0")


class Conn(HttpConn):
    def __init__(self, port):
        super().__init__(port, timeout=5)

    def response(self, head_only=False):
        """Returns (status, headers dict lower-case, body bytes)."""
        head = self.read_until(b"\r\n\r\n").decode("latin1")
        lines = head.split("\r\n")
        status = int(lines[0].split()[1])
        h = {}
        for l in lines[1:]:
            if l:
                k, v = l.split(":", 1)
                h[k.strip().lower()] = v.strip()
        if head_only or status in (204, 304) or 100 <= status < 200:
            return status, h, b""
        if h.get("transfer-encoding") == "chunked":
            body = b""
            while True:
                size = int(self.read_until(b"\r\n")[:-2], 16)
                if size == 0:
                    self.read_until(b"\r\n")
                    break
                body += self.read_n(size)
                self.read_n(2)
            return status, h, body
        if "content-length" in h:
            return status, h, self.read_n(int(h["content-length"]))
        return status, h, self.read_all()

def get(path, extra="", ver="1.1"):
    return "GET %s HTTP/%s\r\nHost: t\r\n%s\r\n" % (path, ver, extra)


def main():
    fd, fpath = tempfile.mkstemp()
    content = bytes((i * 7) % 256 for i in range(100000))
    os.write(fd, content)
    os.close(fd)
    cmd = ["wine", "build/win/tests/integration/http_testsrv.exe"] if WINE else \
        [B + "/tests/integration/http_testsrv"]
    srv = subprocess.Popen(cmd + [fpath], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.PIPE if WINE else None, text=True)
    try:
        line = srv.stdout.readline()
        while WINE and line and not line.startswith("listening"):
            line = srv.stdout.readline()       # Wine and the engine may log first
        port = int(line.strip().rsplit(":", 1)[1])
        run(port, content)
    finally:
        if WINE:
            srv.stdin.close()
        else:
            srv.send_signal(signal.SIGTERM)
        try:
            rc = srv.wait(15)
        except subprocess.TimeoutExpired:
            srv.kill()
            rc = -9
        err = srv.stderr.read()
        os.unlink(fpath)
    t(rc == 0, "server exits 0 after SIGTERM (no leaks)", err[-3000:])
    sys.exit(1 if failures() else 0)


def body_n(b):
    return int(b.decode().split("=")[1].rstrip("."))


def check_cache(port):
    """The response cache (pt_http_req_cache): one connection, so one worker's cache."""
    def stats():
        c2 = Conn(port)
        c2.send(get("/cache-stats"))
        f = c2.response()[2].decode().split()
        c2.close()
        return dict(zip(f[::2], map(int, f[1::2])))

    c = Conn(port)
    s0 = stats()
    c.send(get("/cached"))
    st, h, b1 = c.response()
    c.send(get("/cached"))
    st2, h2, b2 = c.response()
    s1 = stats()
    t(st == st2 == 200 and b1 == b2 and h2.get("x-cached-route") == "1" and "date" in h2 and
      h2.get("content-length") == str(len(b1)) and s1["calls"] == s0["calls"] + 1 and
      s1["hits"] == s0["hits"] + 1 and s1["hook"] == s0["hook"] + 1,
      "a repeated GET is answered from the cache: same body, fields, a Date; no handler call",
      (b1, b2, h2, s0, s1))
    for _ in range(50):       # it runs once the bytes are with the kernel, which may be after
        if s1["sent"] != s0["sent"]:        # the client has them (another worker answers stats)
            break
        time.sleep(0.02)
        s1 = stats()
    t(s1["sent"] == s0["sent"] + 1, "the hook's send callback ran once for the hit", (s0, s1))
    c.send("HEAD /cached HTTP/1.1\r\nHost: t\r\n\r\n")
    st, h, b = c.response(head_only=True)
    c.send(get("/hello"))
    hb = c.response()[2]
    t(st == 200 and h.get("content-length") == str(len(b1)) and hb == b"Hello, World!",
      "HEAD from the cache: the Content-Length of the GET, no body", (st, h, hb))
    n0 = body_n(b1)
    c.send(get("/cached", "X-Vary: 1\r\n"))
    b = c.response()[2]
    t(body_n(b) == n0 + 1, "a request with a field the policy names goes to the handler", b)
    c.send(get("/cached", "x-vary: 1\r\n"))
    b = c.response()[2]
    t(body_n(b) == n0 + 2, "... matched case-insensitively", b)
    c.send(get("/cached", "X-Decline: 1\r\n"))
    b = c.response()[2]
    t(body_n(b) == n0 + 3, "the server's hook can decline a hit: the handler answers", b)
    c.send(get("/cached?other"))
    b = c.response()[2]
    t(body_n(b) == n0 + 4, "another target (query) is another key", b)
    c.send("GET /cached HTTP/1.1\r\nHost: other\r\n\r\n")
    b = c.response()[2]
    t(body_n(b) == n0 + 5, "another Host is another key", b)
    c.send(get("/cached"))
    b = c.response()[2]
    t(body_n(b) == n0 + 3, "the copy is the declined request's response (a handler "
      "response replaces it); those made for requests with X-Vary, another target or "
      "another Host are not served here", (b, n0))
    time.sleep(0.4)
    c.send(get("/cached"))
    b = c.response()[2]
    c.send(get("/cached"))
    b2 = c.response()[2]
    t(body_n(b) == n0 + 6 and b2 == b, "after its time to live the handler answers again, and "
      "that response is kept", (b, b2))
    c.send(get("/cache-flush"))
    c.response()
    c.send(get("/cached"))
    b = c.response()[2]
    t(body_n(b) == n0 + 7, "pt_http_cache_flush: the next request goes to the handler", b)
    # pipelined: hits and misses in one write, answered in order
    c.send(get("/cached") + get("/cached", "X-Vary: 1\r\n") + get("/cached") + get("/hello"))
    rs = [c.response()[2] for _ in range(4)]
    t(rs[0] == rs[2] == b and body_n(rs[1]) == n0 + 8 and rs[3] == b"Hello, World!",
      "pipelined hits and misses answered in order", rs)
    # 40 pipelined hits in one write: one engine send grows with each (up to 32), and each
    # hit's callback still runs once, with its own response's byte count
    def settled(before, n):
        for _ in range(50):
            s = stats()
            if s["sent"] >= before["sent"] + n:
                return s
            time.sleep(0.02)
        return s
    sa = stats()
    c.send(get("/cached"))
    c.response()
    sb = settled(sa, 1)
    one = sb["sentb"] - sa["sentb"]
    c.send(get("/cached") * 40)
    rs = [c.response() for _ in range(40)]
    sc = settled(sb, 40)
    t(all(x[0] == 200 and x[2] == b for x in rs) and sc["hits"] == sb["hits"] + 40 and
      sc["calls"] == sb["calls"], "40 pipelined hits answered in order from the cache",
      (sb, sc, rs[:2]))
    t(sc["sent"] == sb["sent"] + 40 and one > len(b) and sc["sentb"] - sb["sentb"] == 40 * one,
      "... each hit's send callback ran once with its own response's bytes (joined sends)",
      (one, sb, sc))
    for path in ("/cached-more", "/cached-big"):
        c.send(get(path))
        x1 = c.response()[2]
        c.send(get(path))
        x2 = c.response()[2]
        t(body_n(x2) == body_n(x1) + 1, "%s is not kept (%s)" % (
            path, "PT_HTTP_MORE" if "more" in path else "body over cache_max_body"), (x1, x2))
    c.send(get("/cached", "Connection: close\r\n"))
    st, h, b2 = c.response()
    t(b2 == b and h.get("connection") == "close" and c.closed(),
      "a hit for a request with Connection: close closes the connection", (h, b2))
    c = Conn(port)
    c.send(get("/cached"))
    c.response()
    c.send(get("/cached"))
    c.response()
    c.send(get("/cached", ver="1.0"))
    st, h, b2 = c.response()
    t(st == 200 and h.get("connection") == "close" and c.closed(),
      "an HTTP/1.0 hit without keep-alive closes the connection", (h, b2))


def run(port, content):
    c = Conn(port)
    for i in range(3):
        c.send(get("/hello"))
        st, h, body = c.response()
        if i == 0:
            t(st == 200 and body == b"Hello, World!", "GET /hello", (st, h, body))
            t(re.match(r"^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$", h.get("date", "")),
              "Date header in IMF-fixdate", h)
            t(h.get("server") == "portico-test" and h.get("content-length") == "13", "Server and Content-Length", h)
    t(True, "three requests on one keep-alive connection")
    c.close()

    # pipelining: 16 requests in one write, answered in order, including async ones
    c = Conn(port)
    reqs = "".join(get(p) for p in ["/a/x", "/async/1", "/a/b/y", "/async/2", "/hello"] * 3 + ["/a/b/"])
    c.send(reqs)
    got = [c.response()[2] for _ in range(16)]
    want = [b"a", b"async /async/1", b"ab", b"async /async/2", b"Hello, World!"] * 3 + [b"ab"]
    t(got == want, "16 pipelined requests (async among them) answered in order", got)
    c.close()

    c = Conn(port)
    c.send(get("/nothing-here"))
    st, h, body = c.response()
    t(st == 404, "no route: 404", st)
    c.send("HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n")
    st, h, body = c.response(head_only=True)
    t(st == 200 and h.get("content-length") == "13", "HEAD: Content-Length, no body", h)
    c.send(get("/status?204"))
    st, h, body = c.response()
    t(st == 204 and "content-length" not in h, "204: no body, no Content-Length", h)
    c.send(get("/status?304"))
    st, h, body = c.response()
    t(st == 304 and h.get("x-test") == "1", "304: no body", h)
    c.send(get("/hello"))
    t(c.response()[2] == b"Hello, World!", "connection intact after HEAD/204/304 (no stray body bytes)")
    c.close()

    # HTTP/1.0 and Connection: close
    c = Conn(port)
    c.send(get("/hello", ver="1.0"))
    st, h, body = c.response()
    t(h.get("connection") == "close" and c.closed(), "HTTP/1.0 without keep-alive: closed", h)
    c = Conn(port)
    c.send(get("/hello", "Connection: keep-alive\r\n", ver="1.0"))
    st, h, body = c.response()
    c.send(get("/hello", "Connection: keep-alive\r\n", ver="1.0"))
    st2, h2, body2 = c.response()
    t(h.get("connection") == "keep-alive" and body2 == b"Hello, World!", "HTTP/1.0 keep-alive", h)
    c.close()
    c = Conn(port)
    c.send(get("/hello", "Connection: close\r\n") + get("/hello"))
    st, h, body = c.response()
    t(h.get("connection") == "close" and c.closed(), "Connection: close closes; the pipelined rest is dropped", h)

    # request bodies
    c = Conn(port)
    data = os.urandom(300000)
    ck = 0
    for b in data:
        ck = (ck * 31 + b) & 0xffffffff
    c.send("POST /echo-body HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(data))
    c.send(data)
    st, h, body = c.response()
    t(body == ("%d %d" % (len(data), ck)).encode(), "Content-Length body streamed to the handler", body)
    chunks = [data[:1000], data[1000:1001], data[1001:70000]]
    enc = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(x), x) for x in chunks) + b"0\r\nTrailer: x\r\n\r\n"
    ck2 = 0
    for b in data[:70000]:
        ck2 = (ck2 * 31 + b) & 0xffffffff
    c.send("POST /echo-body HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
    for i in range(0, len(enc), 777):        # split at odd places
        c.send(enc[i:i + 777])
    st, h, body = c.response()
    t(body == ("70000 %d" % ck2).encode(), "chunked body decoded across splits", body)
    c.send("POST /echo-body HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n")
    st, h, _ = c.response(head_only=True)
    t(st == 100, "Expect: 100-continue gets 100 Continue when the handler reads", st)
    c.send("abcde")
    st, h, body = c.response()
    t(st == 200 and body.startswith(b"5 "), "then the final response", body)
    c.send("POST /ignore-body HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n0123456789" + get("/hello"))
    r1 = c.response()[2]
    r2 = c.response()[2]
    t(r1 == b"ignored" and r2 == b"Hello, World!", "an unread body is drained; the next request works", (r1, r2))
    c.send("POST /echo-body HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n")
    st, h, body = c.response()
    t(st == 413 and c.closed(), "body over max_body: 413 and close", (st, body))

    # streaming responses
    c = Conn(port)
    c.send(get("/stream"))
    st, h, body = c.response()
    t(h.get("transfer-encoding") == "chunked" and body == b"one,two,three", "MORE without a length: chunked", (h, body))
    c.send(get("/stream-cl"))
    st, h, body = c.response()
    t(h.get("content-length") == "13" and body == b"one,two,three", "MORE under a declared Content-Length", (h, body))
    c.send(get("/buffer"))
    st, h, body = c.response()
    t(body == b"buffered-1,buffered-2", "BUFFER copies before returning", body)
    c.send(get("/file"))
    st, h, body = c.response()
    t(body == content, "file chunk (sendfile path), %d bytes" % len(content), len(body))
    c.send(get("/file-range"))
    t(c.response()[2] == content[10:30], "file range")
    c.send(get("/frag"))
    t(c.response()[2] == b"<fragment>", "fragment from the cache")
    c.send(get("/frag-missing"))
    st, h, body = c.response()
    t(st == 404 and body == b"fragment missing", "missing fragment: -ENOENT, nothing sent, fallback works", body)
    c.send(get("/api-errors"))
    st, h, body = c.response()
    t(body == b"xx", "API error returns (status, headers, order, after final)", (st, body))
    check_cache(port)
    c = Conn(port)
    c.send(get("/prepared"))
    st, h, body = c.response()
    names = list(h)
    t(st == 200 and body == b"prepared" and h.get("x-pre-one") == "1" and
      h.get("cache-control") == "max-age=60" and h.get("x-extra") == "2" and
      h.get("content-length") == "8" and "date" in h and
      names.index("x-pre-one") < names.index("cache-control") < names.index("x-extra"),
      "prepared fields: sent before the call's own, with Date and Content-Length", (st, h, body))
    c.send(get("/hello"))
    st, h, body = c.response()
    t(body == b"Hello, World!", "the connection carries on after a prepared response", body)
    c.send(get("/prepared?close"))
    st, h, body = c.response()
    t(body == b"prepared" and h.get("connection") == "close" and c.closed(),
      "a prepared Connection: close closes after the response", (h, body))
    c = Conn(port)
    c.send(get("/disconnect"))
    st, h, body = c.response()
    t(body == b"bye" and h.get("connection") == "close" and c.closed(), "DISCONNECT closes after the response")
    c = Conn(port)
    c.send(get("/stream", ver="1.0"))
    st, h, body = c.response()
    t("transfer-encoding" not in h and body == b"one,two,three", "HTTP/1.0 stream: close-delimited", (h, body))

    # responses from another thread, decoded paths, fragment time-to-live
    c = Conn(port)
    c.send(get("/thread") + get("/hello"))
    r1, r2 = c.response()[2], c.response()[2]
    t(r1 == b"from another thread" and r2 == b"Hello, World!",
      "response from another thread (kept request), pipelined request after it in order", (r1, r2))
    c.send(get("/decoded/a%20b%2Fc%C3%A9"))
    st, h, body = c.response()
    t(body == "/decoded/a b/cé".encode(), "decoded path", body)
    c.send(get("/decoded/x%00y"))
    st, h, body = c.response()
    t(st == 400, "decoded path refuses %00", (st, body))
    c.send(get("/frag-put"))
    c.response()
    c.send(get("/frag-short"))
    st1, _, b1 = c.response()
    time.sleep(0.35)
    c.send(get("/frag-short"))
    st2, _, b2 = c.response()
    t(st1 == 200 and b1 == b"short-lived" and st2 == 404, "fragment time-to-live", (st1, b1, st2, b2))
    c.close()

    # strictness (a sample; the conformance table is elsewhere)
    for raw, want in [("GET / HTTP/1.1\r\n\r\n", 400), ("GET / HTTP/1.1\nHost: t\n\n", 400),
                      ("GET / HTTP/2.0\r\nHost: t\r\n\r\n", 505),
                      ("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
                      ("GET /" + "a" * 9000 + " HTTP/1.1\r\nHost: t\r\n\r\n", 414)]:
        c = Conn(port)
        c.send(raw)
        st, h, body = c.response()
        t(st == want and c.closed(), "bad request -> %d and close" % want, (raw[:60], st))

    # sync pool: one thread, queue of one
    c = Conn(port)
    c.send(get("/sync/x"))
    t(c.response()[2] == b"sync /sync/x", "sync handler on the pool (blocking send)")
    a, b_, d = Conn(port), Conn(port), Conn(port)
    a.send(get("/sync/sleep"))
    time.sleep(0.05)
    b_.send(get("/sync/q"))                   # queued (queue length 1) ...
    time.sleep(0.05)
    d.send(get("/sync/over"))                 # ... and this one finds the queue full
    st, h, _ = d.response()
    t(st == 503 and h.get("retry-after") == "1", "queue full: 503 with Retry-After", (st, h))
    t(a.response()[2] == b"sync /sync/sleep", "the blocking handler finishes")
    st, h, body = b_.response()
    t(st == 503, "waited longer than RequestQueue (200 ms): 503", (st, body))

    # timeouts (short in the test server)
    c = Conn(port)
    c.send("GET /hello HTTP/1.1\r\nHo")
    t0 = time.time()
    t(c.closed(3) and time.time() - t0 < 2, "HeaderWait: partial head then silence -> closed")
    c = Conn(port)
    t0 = time.time()
    if WINE:   # IOCP: it waits in AcceptEx, unseen by HTTP, reaped by SO_CONNECT_TIME (10 s)
        t(c.closed(20) and 8 < time.time() - t0 < 16,
          "IOCP: a silent new connection is reaped by SO_CONNECT_TIME after 10 s", time.time() - t0)
    else:
        t(c.closed(3) and time.time() - t0 < 2, "HeaderWait: a silent new connection is closed")
    c = Conn(port)
    c.send(get("/hello"))
    c.response()
    t0 = time.time()
    ok = c.closed(3)
    t(ok and 0.4 < time.time() - t0 < 2, "IdleConnection: keep-alive idle -> closed", time.time() - t0)
    c = Conn(port)
    c.send("POST /echo-body HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
    st, h, body = c.response()
    t(st == 400 and b"error" in body and c.closed(), "EntityBody: a stalled body -> error, closed", body)
    c = Conn(port)
    c.send("POST /ignore-body HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
    c.response()
    t(c.closed(3), "DrainEntityBody: an unread body that stalls -> closed")
    c = Conn(port)
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    c.send(get("/big"))
    got = 0
    t0 = time.time()
    while time.time() - t0 < 5:            # one byte per half second: far below 1 MiB/s
        try:
            c.s.settimeout(0.5)
            b = c.s.recv(1)
            if not b:
                break
            got += 1
            time.sleep(0.5)
        except (ConnectionResetError, BrokenPipeError):
            break
        except socket.timeout:
            pass
    c.s.settimeout(5)
    try:                                   # then read fast: a dropped response is short
        while True:
            b = c.s.recv(1 << 20)
            if not b:
                break
            got += len(b)
    except (ConnectionResetError, BrokenPipeError, socket.timeout):
        pass
    t(got < (32 << 20), "MinSendRate: a client reading slower than the minimum is disconnected (%d of %d bytes)" % (got, 32 << 20))


if __name__ == "__main__":
    main()
