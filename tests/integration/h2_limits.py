#!/usr/bin/env python3
"""HTTP/2 limits and attacks (issue 16), with raw frames (hyperframe, hpack) against
http_testsrv on h2c (PT_H2C=1; short timeouts, MinSendRate 1 MiB/s, max_head 16 KiB).

Each attack checks what the server answers (RST_STREAM or GOAWAY and its error code, or the
connection closed) and that the server then still serves another client:
  - SETTINGS_MAX_CONCURRENT_STREAMS (100): the 101st open stream is refused (REFUSED_STREAM),
    the 100 complete;
  - header lists over max_head (one large field with CONTINUATION, many fields, an HPACK
    "bomb" of one large table entry referenced many times): 431 (with the reason as body; none
    for HEAD), the connection goes on;
  - HPACK table size: a dynamic table size update above our SETTINGS_HEADER_TABLE_SIZE
    (COMPRESSION_ERROR), a client asking for a huge encoder table (answers still decode);
  - rapid reset (CVE-2023-44487), HEADERS + RST_STREAM in one write and spread over many;
  - CONTINUATION flood (CVE-2024-27316 class), non-empty and empty frames;
  - SETTINGS, PING, empty DATA, WINDOW_UPDATE and PRIORITY floods: GOAWAY ENHANCE_YOUR_CALM;
  - zero-window stalls (the client advertises a window of 0): no DATA, bounded memory, the
    stalled streams are ended by the send-rate check;
  - a client that never reads: server memory (VmRSS) stays bounded, the connection is cut;
  - a bad preface (over TLS with ALPN h2, and on h2c), a first frame that is not SETTINGS;
  - garbage and malformed frames (each with its RFC 9113 error code); unknown frame types
    are ignored.
One TAP line per check; the server must exit 0 after SIGTERM (ASan/LSan)."""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "support"))
import ptest  # noqa: E402
from ptest import t, skip, failures, checks, make_certs, sanitizer_clean  # noqa: E402
from h2client import H2Conn, RawH2, ERR, err_name, hf, hpack, PREFACE, open_socket  # noqa: E402

REPO = os.path.dirname(os.path.dirname(HERE))
B = os.environ.get("PT_BUILD") or os.path.join(REPO, "build", "san")
BACKEND = os.environ.get("PORTICO_BACKEND", "")
T0 = time.monotonic()
PROCS = []
CALM = ERR.ENHANCE_YOUR_CALM


class Srv:
    def __init__(self, fpath, certs=None):
        env = dict(os.environ)
        if certs:
            env.update(PT_TLS="1", PT_TLS_CERT=certs["a"][0], PT_TLS_KEY=certs["a"][1])
        else:
            env.update(PT_H2C="1")
            env.pop("PT_TLS", None)
        self.tls = bool(certs)
        self.p = subprocess.Popen([os.path.join(B, "tests/integration/http_testsrv"), fpath],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        PROCS.append(self.p)
        m = re.search(r":(\d+)", self.p.stdout.readline())
        if not m:
            raise RuntimeError("http_testsrv did not start: %r" % self.p.stderr.read()[-2000:])
        self.port = int(m.group(1))

    def rss_kb(self):
        try:
            with open("/proc/%d/status" % self.p.pid) as f:
                return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))
        except (OSError, AttributeError):
            return -1

    def raw(self, **kw):
        return RawH2(self.port, tls=self.tls, **kw)

    def serves(self):
        """Another client still gets an answer (over h2, and on a fresh connection)."""
        try:
            c = H2Conn(self.port, tls=self.tls, timeout=5)
            r = c.get("/hello")
            c.close()
            return r.status == 200 and bytes(r.body) == b"Hello, World!"
        except Exception as e:
            return repr(e)

    def stop(self):
        rc = ptest.stop_process(self.p)
        return rc, self.p.stderr.read()


def goaway_code(c, timeout=5):
    """(GOAWAY error code or None, closed within timeout)."""
    g = c.goaway(timeout)
    closed = c.closed(timeout)
    return (g.error_code if g is not None else None), closed


def after(srv, name):
    t(srv.serves() is True, "%s: the server still serves other clients" % name)


def counters(srv):
    """The server's HTTP/2 counters (http_testsrv /h2-counters): {"floods": n, ...}."""
    c = H2Conn(srv.port, tls=srv.tls, timeout=5)
    r = c.get("/h2-counters")
    c.close()
    w = bytes(r.body).decode().split()
    return {w[i]: int(w[i + 1]) for i in range(0, len(w), 2)}


def rst_of(c, sid, timeout=5):
    f = c.until(lambda f: isinstance(f, (hf.RstStreamFrame, hf.GoAwayFrame)) and
                (isinstance(f, hf.GoAwayFrame) or f.stream_id == sid), timeout)
    return f


def status_of(c, sid, timeout=5):
    """(:status, body bytes, end) of stream sid from raw frames."""
    status, body = None, b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        f = c.read_frame(max(0.0, deadline - time.monotonic()))
        if f is None:
            break
        if f.stream_id != sid:
            continue
        if isinstance(f, hf.HeadersFrame):
            h = dict(c.decode(f))
            status = int(h[":status"]) if ":status" in h and int(h[":status"]) >= 200 else status
        elif isinstance(f, hf.DataFrame):
            body += f.data
        elif isinstance(f, hf.RstStreamFrame):
            return status, body, "rst %s" % err_name(f.error_code)
        if "END_STREAM" in f.flags:
            return status, body, "end"
    return status, body, None


# ---- limits ------------------------------------------------------------------------------------

def max_streams(srv):
    # Before the client acknowledges our SETTINGS, nghttp2 refuses the stream over the limit
    # (REFUSED_STREAM); once it has, a client still over it breaks the connection (GOAWAY
    # PROTOCOL_ERROR: nghttp2 1.52 makes RFC 9113 5.1.2's stream error a connection error).
    c = srv.raw()
    c.until(lambda f: isinstance(f, hf.SettingsFrame))   # not acknowledged
    ids = list(range(1, 203, 2))                      # 101 streams
    frames = [c.headers(i, c.req_headers("/echo-body", "POST"), end_stream=False) for i in ids]
    c.send(*frames)
    f = rst_of(c, ids[-1])
    t(isinstance(f, hf.RstStreamFrame) and f.error_code == ERR.REFUSED_STREAM,
      "max concurrent streams: the 101st open stream gets RST_STREAM REFUSED_STREAM", f)
    ends = []
    for i in ids[:-1]:
        d = hf.DataFrame(i)
        d.data = b"x"
        d.flags.add("END_STREAM")
        ends.append(d)
    c.send(*ends)
    done = set()
    deadline = time.monotonic() + 10
    while len(done) < 100 and time.monotonic() < deadline:
        f = c.read_frame(1)
        if f is None and c.eof:
            break
        if isinstance(f, hf.DataFrame) and "END_STREAM" in f.flags:
            done.add(f.stream_id)
    t(len(done) == 100, "max concurrent streams: the first 100 complete (%d did)" % len(done))
    c.close()
    c = srv.raw()
    c.handshake()                                     # acknowledged
    c.send(*[c.headers(i, c.req_headers("/echo-body", "POST"), end_stream=False) for i in ids])
    code, closed = goaway_code(c)
    t(code in (ERR.PROTOCOL_ERROR, ERR.REFUSED_STREAM) and closed,
      "max concurrent streams, limit acknowledged: over it -> GOAWAY PROTOCOL_ERROR, closed",
      (err_name(code) if code is not None else None, closed))
    c.close()
    after(srv, "max streams")


def header_limits(srv):
    c = srv.raw()
    c.handshake()
    block = c.block(c.req_headers(extra=[("x-big", "v" * 20000)]))
    h = c.headers(1, block=block[:16000], end_headers=False)
    k = hf.ContinuationFrame(1)
    k.data = block[16000:]
    k.flags.add("END_HEADERS")
    c.send(h, k)
    st, body, end = status_of(c, 1)
    t(st == 431 and body == b"Request Header Fields Too Large\n" and end == "end",
      "a 20 KB field (HEADERS + CONTINUATION) over max_head: 431 with its reason", (st, body, end))
    c.send(c.headers(3, c.req_headers(extra=[("x-f%d" % i, "v") for i in range(300)])))
    st, body, end = status_of(c, 3)
    t(st == 431, "300 fields: 431", (st, body, end))
    c.send(c.headers(5, c.req_headers(method="HEAD", extra=[("x-big", "v" * 17000)])))
    st, body, end = status_of(c, 5)
    t(st == 431 and body == b"" and end == "end", "HEAD over max_head: 431 without a body", (st, body, end))
    # HPACK bomb: one 4000-byte entry in the dynamic table, then referenced 200 times (one
    # byte each): 800 KB of fields from a tiny block
    c.send(c.headers(7, c.req_headers(extra=[("x-bomb", "b" * 4000)])))
    status_of(c, 7)
    # GET, http, "/" from the static table, :authority "t" not indexed (nothing is added to
    # the table), then index 62 (the newest dynamic entry: x-bomb) 200 times
    bomb = b"\x82\x86\x84\x01\x01t" + b"\xbe" * 200
    c.send(c.headers(9, block=bomb))
    t0 = time.monotonic()
    st, body, end = status_of(c, 9)
    t((st == 431 or (end or "").startswith("rst")) and time.monotonic() - t0 < 3,
      "HPACK bomb (one 4 KB entry referenced 200 times): refused (431 or reset)", (st, body, end))
    c.send(c.headers(11))
    st, body, end = status_of(c, 11)
    t(st == 200 and body == b"Hello, World!", "the connection goes on after the refused heads", (st, body, end))
    c.close()
    after(srv, "header limits")


def hpack_table(srv):
    c = srv.raw()
    c.handshake()
    c.enc.header_table_size = 1 << 20                 # emits a size update of 1 MiB
    c.send(c.headers(1))
    code, closed = goaway_code(c)
    t(code == ERR.COMPRESSION_ERROR and closed,
      "a dynamic table size update above SETTINGS_HEADER_TABLE_SIZE: GOAWAY COMPRESSION_ERROR",
      (err_name(code) if code is not None else None, closed))
    c.close()
    h = H2Conn(srv.port, tls=srv.tls, settings={1: 1 << 30})   # HEADER_TABLE_SIZE 1 GiB
    rs = [h.get("/status?200", [("x-n", str(i))]) for i in range(20)]
    t(all(r.status == 200 and r.h.get("x-test") == "1" for r in rs) and h.goaway is None,
      "a client asking for a 1 GiB encoder table: the server keeps its own bound, answers decode",
      rs[-1])
    h.close()
    after(srv, "hpack table")


# ---- floods ------------------------------------------------------------------------------------

def rapid_reset(srv):
    n0 = counters(srv)
    c = srv.raw()
    c.handshake()
    frames = []
    for i in range(1, 2 * 3000, 2):
        frames.append(c.headers(i, c.req_headers("/hello")))
        frames.append(hf.RstStreamFrame(i, error_code=ERR.CANCEL))
    t0 = time.monotonic()
    c.send(b"".join(f.serialize() for f in frames))
    g = c.goaway(8)
    closed = c.closed(5)
    code = g.error_code if g is not None else None
    # ENHANCE_YOUR_CALM from Portico's own limits, INTERNAL_ERROR from nghttp2's reset limiter
    # (burst 1000, then 33/s)
    t(code in (CALM, ERR.INTERNAL_ERROR) and closed and g.last_stream_id < 2 * 3000 - 1,
      "rapid reset, 3000 HEADERS+RST_STREAM in one write: GOAWAY (%s) naming stream %s, closed (%.2f s)"
      % (err_name(code) if code is not None else None, g.last_stream_id if g else None,
         time.monotonic() - t0), (err_name(code) if code is not None else None, closed))
    c.close()
    after(srv, "rapid reset")
    c = srv.raw()
    c.handshake()
    t0 = time.monotonic()
    sent = 0
    for i in range(1, 2 * 3000, 2):              # one pair per write: no single read is big
        if not c.send(c.headers(i, c.req_headers("/hello")), hf.RstStreamFrame(i, error_code=ERR.CANCEL)):
            break
        sent += 1
        if sent % 50 == 0:
            while c.read_frame(0) is not None:    # keep reading what comes back
                pass
            if c.eof or any(isinstance(f, hf.GoAwayFrame) for f in c.frames):
                break
    g = next((f for f in c.frames if isinstance(f, hf.GoAwayFrame)), None) or c.goaway(5)
    closed = c.closed(5)
    code = g.error_code if g else None
    last = g.last_stream_id if g is not None else None
    t(g is not None and code in (CALM, ERR.INTERNAL_ERROR) and closed and last < 2 * 3000 - 1,
      "rapid reset spread over many writes: GOAWAY (%s) naming stream %s of %d, closed (%.2f s)"
      % (err_name(code) if code is not None else None, last, 2 * 3000 - 1, time.monotonic() - t0),
      (err_name(code) if code is not None else None, sent, closed))
    c.close()
    after(srv, "rapid reset (spread)")
    n1 = counters(srv)
    bad = {k: n1[k] - n0[k] for k in ("floods", "protocol_errors")}
    t(sum(bad.values()) == 2, "rapid reset: both offending connections are counted", bad)


def continuation_flood(srv):
    for empty in (False, True):
        name = "CONTINUATION flood (%s frames)" % ("empty" if empty else "1-byte")
        c = srv.raw()
        c.handshake()
        block = c.block(c.req_headers())
        h = c.headers(1, block=block, end_headers=False)
        ks = []
        for _ in range(5000):
            k = hf.ContinuationFrame(1)
            k.data = b"" if empty else b"\x40"        # an incomplete literal: never decodes
            ks.append(k)
        c.send(h, b"".join(k.serialize() for k in ks))
        code, closed = goaway_code(c)
        t(closed and code is not None, "%s: GOAWAY (%s), closed" % (name, err_name(code) if code is not None else None),
          (code, closed))
        c.close()
        after(srv, name)


def floods(srv):
    # n: just past the budget of frames that carry no request data (h2.c H2_IDLE_FRAMES,
    # 10000, plus 64 per request; our SETTINGS and its ACK count too), and then the client
    # stops: one that keeps writing after the server closed gets a reset that destroys the
    # GOAWAY on its way (the server lingers only for input already there)
    n0 = counters(srv)
    calm = []

    def flood(name, make, n=None, stream=False):
        n = n or 10000 + (64 if stream else 0)
        c = srv.raw()
        c.handshake()
        pre = []
        if stream:
            pre = [c.headers(1, c.req_headers("/echo-body", "POST"), end_stream=False)]
        c.send(*pre)
        t0 = time.monotonic()
        for k in range(0, n, 500):                    # reading the answers between batches
            if not c.send(b"".join(make(i).serialize() for i in range(k, min(n, k + 500)))):
                break
            while c.read_frame(0) is not None:
                pass
            if c.eof or any(isinstance(f, hf.GoAwayFrame) for f in c.frames):
                break
        g = next((f for f in c.frames if isinstance(f, hf.GoAwayFrame)), None)
        code, closed = goaway_code(c, 8)
        code = g.error_code if g is not None else code
        calm.append(code == CALM)
        t(code == CALM and closed, "%s flood (%d frames): GOAWAY ENHANCE_YOUR_CALM, closed (%.2f s)"
          % (name, n, time.monotonic() - t0), (err_name(code) if code is not None else None, closed))
        c.close()
        after(srv, name + " flood")

    def settings(i):
        f = hf.SettingsFrame(0)
        f.settings[hf.SettingsFrame.ENABLE_PUSH] = 0
        return f

    def ping(i):
        return hf.PingFrame(0, opaque_data=i.to_bytes(8, "big"))

    def empty_data(i):
        return hf.DataFrame(1)

    def wupdate(i):
        return hf.WindowUpdateFrame(0, window_increment=1)

    def priority(i):
        return hf.PriorityFrame(2 * i + 101, depends_on=0, stream_weight=16)
    flood("SETTINGS", settings)
    flood("PING", ping)
    flood("empty DATA", empty_data, stream=True)
    flood("WINDOW_UPDATE", wupdate)
    flood("PRIORITY", priority)
    c = srv.raw()
    c.handshake()
    f = hf.SettingsFrame(0)
    f.settings = {}
    big = b"".join(bytes([0, 3]) + (100).to_bytes(4, "big") for _ in range(40))
    raw = len(big).to_bytes(3, "big") + b"\x04\x00" + b"\x00\x00\x00\x00" + big
    c.send(raw)
    code, closed = goaway_code(c)
    calm.append(code == CALM)
    t(code == CALM and closed, "one SETTINGS frame with 40 entries (over 32): GOAWAY ENHANCE_YOUR_CALM",
      (err_name(code) if code is not None else None, closed))
    c.close()
    after(srv, "SETTINGS entries")
    n1 = counters(srv)
    got = {k: n1[k] - n0[k] for k in ("floods", "protocol_errors")}
    t(got == {"floods": sum(calm), "protocol_errors": 0},
      "flood offenders are counted: one flood per ENHANCE_YOUR_CALM connection (%d)" % sum(calm), got)


# ---- flow control and slow readers -----------------------------------------------------------

def zero_window(srv):
    rss0 = srv.rss_kb()
    # the connection window shut (stream windows open): only 65535 bytes ever leave; waits
    # alongside the first case
    c2 = srv.raw(settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: (1 << 31) - 1})
    c2.handshake()
    c2.send(c2.headers(1, c2.req_headers("/big")))
    data2, t2 = 0, time.monotonic()
    while data2 < 65535 and time.monotonic() - t2 < 3 and not c2.eof:
        f = c2.read_frame(0.5)
        if isinstance(f, hf.DataFrame):
            data2 += len(f.data)
    c = srv.raw(settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: 0})
    c.handshake()
    c.send(*[c.headers(i, c.req_headers("/big" if i % 4 == 1 else "/file")) for i in range(1, 80, 2)])
    t0 = time.monotonic()
    data = 0
    heads = set()
    ended = {}
    while time.monotonic() - t0 < 8 and not c.eof and len(ended) < 40:
        f = c.read_frame(0.5)
        if isinstance(f, hf.DataFrame):
            data += len(f.data)
        elif isinstance(f, hf.HeadersFrame):
            heads.add(f.stream_id)
        elif isinstance(f, hf.RstStreamFrame):
            ended[f.stream_id] = err_name(f.error_code)
        elif isinstance(f, hf.GoAwayFrame):
            ended["goaway"] = err_name(f.error_code)
    dt = time.monotonic() - t0
    rss1 = srv.rss_kb()
    t(len(heads) == 40 and data == 0, "window 0: 40 streams get their HEADERS and no DATA", (len(heads), data))
    t(rss1 - rss0 < 20000, "window 0: server memory stays bounded (VmRSS %+d KB)" % (rss1 - rss0), (rss0, rss1))
    t((len(ended) >= 40 or c.eof or "goaway" in ended) and dt < 8,
      "window 0: the stalled responses are cut by the send-rate check (%.1f s)" % dt, ended)
    c.close()
    after(srv, "zero window")
    c = c2
    cut = False
    while time.monotonic() - t2 < 8 and not c.eof:
        f = c.read_frame(0.5)
        if isinstance(f, hf.DataFrame):
            data2 += len(f.data)
        if isinstance(f, (hf.RstStreamFrame, hf.GoAwayFrame)):
            cut = True
            break
    cut = cut or c.eof
    t(data2 == 65535 and cut and time.monotonic() - t2 < 8,
      "connection window never opened: 65535 bytes, then the stream is cut (%.1f s)" % (time.monotonic() - t2),
      (data2, cut))
    c.close()
    after(srv, "shut connection window")


def half_open(srv):
    """Requests that never end (HEADERS without END_STREAM, then silence) on routes that
    answer without reading: RFC 9113 8.1's RST_STREAM NO_ERROR after each response, and the
    connection, idle then, is closed by IdleConnection instead of staying busy forever."""
    c = srv.raw()
    c.handshake()
    c.send(*[c.headers(i, c.req_headers(p, "POST"), end_stream=False)
             for i, p in ((1, "/hello"), (3, "/ignore-body"), (5, "/status?204"))])
    t0 = time.monotonic()
    rst = {}
    while not c.eof and time.monotonic() - t0 < 6:
        f = c.read_frame(0.5)
        if isinstance(f, hf.RstStreamFrame):
            rst[f.stream_id] = err_name(f.error_code)
    dt = time.monotonic() - t0
    t(rst == {1: "NO_ERROR", 3: "NO_ERROR", 5: "NO_ERROR"},
      "responses to requests that never end: each followed by RST_STREAM NO_ERROR", rst)
    t(c.eof and dt < 4, "then the connection idles out (closed after %.1f s)" % dt)
    c.close()
    after(srv, "half-open streams")


def stalled_header_block(srv):
    """A header block that never ends (HEADERS without END_HEADERS, then silence; or a
    CONTINUATION announcing more than it sends): only CONTINUATION frames may follow, so the
    connection waits on it; HeaderWait (400 ms here, checked every 2 s) closes it."""
    cases = []
    for name, tail in (("HEADERS without END_HEADERS", b""),
                       ("a CONTINUATION announcing 16 MB", b"\xff\x00\x1b\x09\x04\x00\x00\x00\x01" + b"\x42" * 20)):
        c = srv.raw()
        c.handshake()
        c.send(c.headers(1, c.req_headers("/hello"), end_headers=False), tail)
        cases.append((name, c))
    t0 = time.monotonic()                             # both wait at once
    for name, c in cases:
        closed = c.closed(max(0.1, 6 - (time.monotonic() - t0)))
        dt = time.monotonic() - t0
        t(closed and dt < 5, "%s, then silence: closed by HeaderWait (%.1f s)" % (name, dt))
        c.close()
    after(srv, "stalled header block")


def never_reads(srv):
    rss0 = srv.rss_kb()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", srv.port))
    c = RawH2(srv.port, sock=s, settings={hf.SettingsFrame.INITIAL_WINDOW_SIZE: (1 << 31) - 1})
    w = hf.WindowUpdateFrame(0, window_increment=(1 << 31) - 1 - 65535)
    c.send(w, *[c.headers(i, c.req_headers("/big")) for i in range(1, 40, 2)])
    t0 = time.monotonic()
    peak = rss0
    s.setblocking(False)
    pings = 0
    cut = False
    while time.monotonic() - t0 < 7 and not cut:     # keep writing PINGs, never read
        try:
            s.send(hf.PingFrame(0, opaque_data=pings.to_bytes(8, "big")).serialize())
            pings += 1
        except BlockingIOError:
            pass
        except (BrokenPipeError, ConnectionResetError):
            cut = True
        try:
            cut = cut or s.recv(1, socket.MSG_PEEK) == b""
        except BlockingIOError:
            pass
        except (ConnectionResetError, BrokenPipeError):
            cut = True
        peak = max(peak, srv.rss_kb())
        time.sleep(0.01)
    dt = time.monotonic() - t0
    t(peak - rss0 < 30000, "a client that never reads (20 x 32 MiB asked, PINGs sent): VmRSS %+d KB"
      % (peak - rss0), (rss0, peak, pings))
    t(cut and dt < 6.5, "the reader that stalled is disconnected by the send-rate check (%.1f s)" % dt)
    c.close()
    after(srv, "never reads")


# ---- prefaces and garbage ---------------------------------------------------------------------

def prefaces(srv, tsrv):
    if tsrv:
        s = open_socket(tsrv.port, tls=True)
        s.sendall(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        s.settimeout(3)
        data = b""
        try:
            while True:
                b = s.recv(65536)
                if not b:
                    break
                data += b
        except (OSError, socket.timeout):
            pass
        t(s.selected_alpn_protocol() == "h2" and b"HTTP/1.1 200" not in data and b"Hello" not in data,
          "ALPN h2, then HTTP/1.1 bytes instead of the preface: no answer, closed", data[:200])
        s.close()
        after(tsrv, "bad preface (TLS)")
    c = srv.raw(preface=False)
    c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + bytes(9))
    data = b""
    c.s.settimeout(3)
    try:
        while True:
            b = c.s.recv(65536)
            if not b:
                break
            data += b
    except (OSError, socket.timeout):
        pass
    t(b"Hello" not in data and (data == b"" or data.startswith(b"HTTP/1.1 4") or data.startswith(b"HTTP/1.1 5")
                                or data[3:4] == b"\x04"),
      "h2c: a damaged preface is refused (closed, or an HTTP/1.1 error)", data[:120])
    c.close()
    # the preface split across reads (TCP may cut it anywhere)
    c = srv.raw(preface=False)
    c.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    c.send(PREFACE[:10])
    time.sleep(0.1)
    c.send(PREFACE[10:], hf.SettingsFrame(0))
    f = c.read_frame(2)
    t(isinstance(f, hf.SettingsFrame), "h2c: a client preface split across reads is recognised",
      bytes(c.buf[:40]) or f)
    c.close()
    c = srv.raw(preface=False)
    c.send(PREFACE, hf.PingFrame(0, opaque_data=b"12345678"))
    code, closed = goaway_code(c)
    t(code == ERR.PROTOCOL_ERROR and closed, "a first frame that is not SETTINGS: GOAWAY PROTOCOL_ERROR",
      (err_name(code) if code is not None else None, closed))
    c.close()
    after(srv, "prefaces")


def garbage(srv):
    def case(name, frames, want, handshake=True):
        c = srv.raw()
        if handshake:
            c.handshake()
        c.send(*frames)
        code, closed = goaway_code(c)
        ok = closed and (code in want if want else code is None)
        t(ok, "%s: GOAWAY %s, closed" % (name, "/".join(err_name(w) for w in want) if want else "-"),
          (err_name(code) if code is not None else None, closed))
        c.close()

    case("random bytes after the preface", [os.urandom(64)],
         [ERR.PROTOCOL_ERROR, ERR.FRAME_SIZE_ERROR, ERR.COMPRESSION_ERROR, ERR.FLOW_CONTROL_ERROR])
    d = hf.DataFrame(1)
    d.data = b"x"
    d0 = b"\x00\x00\x01\x00\x00\x00\x00\x00\x00x"   # DATA on stream 0
    case("DATA on stream 0", [d0], [ERR.PROTOCOL_ERROR])
    case("DATA on an idle stream", [d], [ERR.PROTOCOL_ERROR, ERR.STREAM_CLOSED])
    blk = hpack.Encoder().encode(RawH2.req_headers())
    even = len(blk).to_bytes(3, "big") + b"\x01\x05" + (2).to_bytes(4, "big") + blk
    case("HEADERS on an even (server) stream id", [even], [ERR.PROTOCOL_ERROR])
    big = (20000).to_bytes(3, "big") + b"\x00\x00" + (1).to_bytes(4, "big") + bytes(20000)
    case("a frame over SETTINGS_MAX_FRAME_SIZE", [big], [ERR.FRAME_SIZE_ERROR])
    wu = hf.WindowUpdateFrame(0, window_increment=(1 << 31) - 1)
    case("WINDOW_UPDATE past 2^31-1", [wu], [ERR.FLOW_CONTROL_ERROR])
    bad_ping = (7).to_bytes(3, "big") + b"\x06\x00" + bytes(4) + bytes(7)
    case("a 7-byte PING", [bad_ping], [ERR.FRAME_SIZE_ERROR])
    # a lower stream id than the last: nghttp2 cannot tell idle from closed and ignores the
    # block (RFC 9113 5.1.1 says PROTOCOL_ERROR); the stream gets nothing, the next one works
    c = srv.raw()
    c.handshake()
    c.send(c.headers(3, c.req_headers("/hello")), c.headers(1, c.req_headers("/hello")),
           c.headers(5, c.req_headers("/hello")))
    got = {}
    deadline = time.monotonic() + 3
    while 5 not in got and time.monotonic() < deadline:
        f = c.read_frame(max(0.0, deadline - time.monotonic()))
        if f is None:
            break
        if isinstance(f, hf.DataFrame):
            got[f.stream_id] = f.data
    t(got.get(3) == got.get(5) == b"Hello, World!" and 1 not in got,
      "a HEADERS with a stream id lower than the last: ignored, later streams served", got)
    c.close()
    c = srv.raw()
    c.handshake()
    chunk = hf.DataFrame(1)
    chunk.data = bytes(16384)
    # a body nobody reads (answered 50 ms later): 98304 bytes into a 65535 window, one write
    c.send(c.headers(1, c.req_headers("/async/x", "POST"), end_stream=False), *[chunk] * 6)
    f = c.until(lambda f: isinstance(f, (hf.RstStreamFrame, hf.GoAwayFrame)))
    t(f is not None and f.error_code == ERR.FLOW_CONTROL_ERROR,
      "DATA beyond the advertised window: FLOW_CONTROL_ERROR", f)
    c.close()
    c = srv.raw()
    c.handshake()
    x = b"\x00\x00\x08\xfa\x00\x00\x00\x00\x00whatever"   # type 0xfa (hyperframe's
    c.send(x, c.headers(1, c.req_headers("/hello")))             # ExtensionFrame omits the length)
    st, body, end = status_of(c, 1)
    t(st == 200 and body == b"Hello, World!", "an unknown frame type is ignored", (st, body, end))
    c.close()
    after(srv, "garbage frames")


def section(name, fn, *args):
    t1 = time.monotonic()
    try:
        fn(*args)
    except Exception:
        t(False, "%s: completed without an exception" % name, traceback.format_exc())
    print("# %s: %.1f s" % (name, time.monotonic() - t1), flush=True)


def main():
    tmp = tempfile.mkdtemp(prefix="pt-h2l-")
    try:
        certs = make_certs(os.path.join(tmp, "certs"))
        fpath = os.path.join(tmp, "file.bin")
        with open(fpath, "wb") as f:
            f.write(os.urandom(100000))
        srv = Srv(fpath)
        tsrv = Srv(fpath, certs)
        for name, fn, args in [("max streams", max_streams, (srv,)), ("header limits", header_limits, (srv,)),
                               ("hpack table", hpack_table, (srv,)), ("rapid reset", rapid_reset, (srv,)),
                               ("continuation", continuation_flood, (srv,)), ("floods", floods, (srv,)),
                               ("zero window", zero_window, (srv,)), ("half-open", half_open, (srv,)),
                               ("stalled head", stalled_header_block, (srv,)),
                               ("never reads", never_reads, (srv,)),
                               ("prefaces", prefaces, (srv, tsrv)), ("garbage", garbage, (srv,)),
                               ("tls flood", floods_tls, (tsrv,)), ("unread acks", ack_flood_unread, (srv,))]:
            section(name, fn, *args)
        for s, tag in ((srv, "h2c"), (tsrv, "tls")):
            rc, err = s.stop()
            t(rc == 0 and sanitizer_clean(err), "%s server exits 0 after SIGTERM (no leaks)" % tag,
              (rc, err[-3000:]))
    except Exception:
        t(False, "h2 limit tests completed", traceback.format_exc())
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    print("# %d checks in %.1f s (backend %s)" % (checks(), time.monotonic() - T0, BACKEND or "default"),
          flush=True)
    return 1 if failures() else 0


def floods_tls(tsrv):
    """One flood over TLS (the connection-level paths are shared): PING."""
    c = tsrv.raw()
    c.handshake()
    for k in range(0, 10000, 500):                      # see floods()
        if not c.send(b"".join(hf.PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize()
                               for i in range(k, min(10000, k + 500)))):
            break
        while c.read_frame(0) is not None:
            pass
        if c.eof or any(isinstance(f, hf.GoAwayFrame) for f in c.frames):
            break
    g = next((f for f in c.frames if isinstance(f, hf.GoAwayFrame)), None) or c.goaway(5)
    closed = c.closed(5)
    t(g is not None and g.error_code == CALM and closed, "TLS: PING flood: GOAWAY ENHANCE_YOUR_CALM, closed",
      (g, closed))
    c.close()
    after(tsrv, "TLS PING flood")


def ack_flood_unread(srv):
    """PINGs whose ACKs are never read: nghttp2's bound on queued ACKs (1000) and the paused
    input keep memory bounded; the connection is dropped (its GOAWAY may never get out)."""
    rss0 = srv.rss_kb()
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.connect(("127.0.0.1", srv.port))
    c = RawH2(srv.port, sock=s)
    s.settimeout(5)
    t0 = time.monotonic()
    sent = 0
    try:
        while sent < 100000 and time.monotonic() - t0 < 5:
            s.sendall(b"".join(hf.PingFrame(0, opaque_data=i.to_bytes(8, "big")).serialize()
                               for i in range(sent, sent + 1000)))
            sent += 1000
    except (OSError, socket.timeout):
        pass
    rss1 = srv.rss_kb()
    closed = c.closed(8)
    t(closed and rss1 - rss0 < 20000,
      "PING flood with the ACKs never read: dropped (%d PINGs written), VmRSS %+d KB" % (sent, rss1 - rss0),
      (closed, rss0, rss1))
    c.close()
    after(srv, "unread PING flood")


if __name__ == "__main__":
    sys.exit(main())
