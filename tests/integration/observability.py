#!/usr/bin/env python3
"""Observability of the portico server (issue 18): the admin listener, /metrics, /status,
/status.json, /healthz and the SIGTERM drain, the JSON access log.

 1. /metrics parsed with python3-prometheus-client's text parser (Debian's package): every
    family typed, names by the conventions; requests by method and status class move by
    exactly what the test sends (two rounds, deltas), the histogram's count equals the
    requests and its buckets are cumulative, body bytes add up, nothing in flight after;
    scrapes do not count themselves; connections by state (silent, partial, idle) follow
    connections the test holds open; the backend info names PORTICO_BACKEND's backend.
 2. /status.json agrees with /metrics; /status is one self-contained page (no external URL).
 3. The page in headless Chromium (Debian's chromium): a screenshot that is not blank, and the
    "requests total" number read from the rendered page equals /status.json's.
 4. The allow-list: a source (bound to 127.0.0.2) outside --admin-allow 127.0.0.1/32 gets 403
    on every path and is counted; 127.0.0.1 is answered; the default allows 127.0.0.0/8.
    Methods other than GET/HEAD get 405, unknown paths 404.
 5. Drain: with --drain-delay, SIGTERM turns /healthz to 503 (portico_draining 1) while file
    requests still succeed (with Connection: close), then the process exits 0 after the delay;
    a second SIGTERM cuts the delay short; without --drain-delay SIGTERM stops at once.
 6. --access-log-format json: each line parses as JSON and matches its request (time, client,
    method, target, status, bytes, request_time_us, protocol, host, user agent, referer,
    escaped bytes); TLS requests log their TLS version, HTTP/2 ones (curl) their protocol;
    SIGHUP reopens the file.
 7. Bad values of the new options exit 2.

One TAP line per check. Runs once per backend (PORTICO_BACKEND) from tests/run.sh.
"""
import datetime
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ptest import (t, skip, failures, checks, read_text, sanitizer_clean, wait_for,  # noqa: E402
                   stop_process, make_certs)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
B = os.environ.get("PT_BUILD") or os.path.join(REPO, "build", "san")
PORTICO = os.path.join(B, "portico")
T0 = time.monotonic()
PROCS = []


def prometheus_parser():
    """prometheus_client.parser from Debian's python3-prometheus-client, also when this
    python is not Debian's (its dist-packages are then added to the path)."""
    try:
        from prometheus_client import parser
        return parser
    except ImportError:
        pass
    for d in ("/usr/lib/python3/dist-packages",):
        if os.path.isdir(os.path.join(d, "prometheus_client")) and d not in sys.path:
            sys.path.append(d)
    try:
        from prometheus_client import parser
        return parser
    except ImportError:
        return None


# ---- the server ----------------------------------------------------------------------------------

SERVING = re.compile(r"^portico: serving .* at (https?)://127\.0\.0\.1:(\d+)/$", re.M)
ADMIN = re.compile(r"^portico: admin at http://([0-9.]+):(\d+)/", re.M)


class Server:
    """portico with args on 127.0.0.1 port 0; ports read from the start-up lines."""

    def __init__(self, tmp, name, args):
        self.out = os.path.join(tmp, name + ".stdout")
        self.err = os.path.join(tmp, name + ".stderr")
        self.args = [PORTICO] + list(args)
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.p = subprocess.Popen(self.args, stdout=o, stderr=e, stdin=subprocess.DEVNULL)
        PROCS.append(self.p)
        txt = wait_for(lambda: self._started("--admin" in args), 15)
        self.ports = {m.group(1): int(m.group(2)) for m in SERVING.finditer(txt or "")}
        m = ADMIN.search(txt or "")
        self.admin = int(m.group(2)) if m else None
        if "http" not in self.ports and "https" not in self.ports:
            raise RuntimeError("portico did not start: rc=%r stdout=%r stderr=%r" % (
                self.p.poll(), txt, read_text(self.err)[-2000:]))
        self.port = self.ports.get("http")

    def _started(self, admin):
        """The start-up lines once they are all out (or portico exited), else None."""
        txt = read_text(self.out)
        if "backend," in txt and (not admin or "admin at" in txt):
            return txt
        return txt if self.p.poll() is not None else None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Sends sig and waits: (rc, seconds, stderr)."""
        t0 = time.monotonic()
        rc = stop_process(self.p, sig, timeout)
        return rc, time.monotonic() - t0, read_text(self.err)


def stopped_clean(srv, name):
    rc, _, err = srv.stop()
    t(rc == 0 and sanitizer_clean(err), "%s: exits 0, sanitizer-clean" % name,
      "rc=%r stderr=%s" % (rc, err[-3000:]))


# ---- HTTP over raw sockets -----------------------------------------------------------------------

def request(port, method="GET", target="/", hdrs=(), source=None, version="1.1", body=b"",
            timeout=10, keep=False, sock=None):
    """One request on a new connection (or sock). Returns (status, {field: value}, body,
    socket if keep else None)."""
    s = sock
    if s is None:
        s = socket.socket()
        s.settimeout(timeout)
        if source:
            s.bind((source, 0))
        s.connect(("127.0.0.1", port))
    h = "".join("%s: %s\r\n" % kv for kv in hdrs)
    conn = "" if keep else "Connection: close\r\n"
    s.sendall(("%s %s HTTP/%s\r\nHost: t\r\n%s%s" % (method, target, version, conn, h))
              .encode("latin1") + (b"Content-Length: %d\r\n\r\n" % len(body) if body else b"\r\n")
              + body)
    buf = b""
    while b"\r\n\r\n" not in buf:
        b = s.recv(65536)
        if not b:
            raise EOFError("no response head: %r" % buf[:200])
        buf += b
    head, _, rest = buf.partition(b"\r\n\r\n")
    lines = head.decode("latin1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        fields[k.strip().lower()] = v.strip()
    status = int(lines[0].split(" ")[1])
    n = 0 if method == "HEAD" or status in (204, 304) else int(fields.get("content-length", 0))
    while len(rest) < n:
        b = s.recv(65536)
        if not b:
            break
        rest += b
    if not keep:
        s.close()
        s = None
    return status, fields, rest[:n], s


def admin_get(port, path, source=None, method="GET"):
    return request(port, method, path, source=source)[:3]


def scrape(port, parser):
    """{(name, frozenset(labels)): value} and {family: type} from /metrics."""
    st, f, body = admin_get(port, "/metrics")
    if st != 200:
        raise RuntimeError("GET /metrics: %d %r" % (st, body[:200]))
    samples, types = {}, {}
    for fam in parser.text_string_to_metric_families(body.decode("utf-8")):
        types[fam.name] = fam.type
        for s in fam.samples:
            samples[(s.name, frozenset(s.labels.items()))] = s.value
    return samples, types, f


def val(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0)


def requests_by(samples):
    """{(method, class): count} of portico_http_requests_total."""
    out = {}
    for (name, labels), v in samples.items():
        if name == "portico_http_requests_total":
            d = dict(labels)
            out[(d["method"], d["code"])] = v
    return out


def docroot(tmp):
    root = os.path.join(tmp, "root")
    os.makedirs(os.path.join(root, "dir"))
    with open(os.path.join(root, "hello.txt"), "wb") as f:
        f.write(b"hello, world\n")
    with open(os.path.join(root, "page.html"), "wb") as f:
        f.write(b"<p>page</p>\n" * 100)
    with open(os.path.join(root, "big.bin"), "wb") as f:
        f.write(os.urandom(3 << 20))
    return root


# ---- 1. /metrics ----------------------------------------------------------------------------------

ROUND = [("GET", "/hello.txt", 200, 13), ("GET", "/hello.txt", 200, 13),
         ("GET", "/page.html", 200, 1200), ("GET", "/big.bin", 200, 3 << 20),
         ("GET", "/missing", 404, None), ("GET", "/missing2", 404, None),
         ("GET", "/dir", 301, None), ("HEAD", "/hello.txt", 200, 0),
         ("POST", "/hello.txt", 405, None), ("OPTIONS", "/hello.txt", 204, 0),
         ("DELETE", "/x", 405, None)]


def send_round(port):
    """The ROUND requests; returns ({(method, class): n}, body bytes) as sent."""
    want, nbytes = {}, 0
    for method, target, status, size in ROUND:
        st, _, body, _ = request(port, method, target, body=b"x" if method == "POST" else b"")
        if st != status or (size is not None and len(body) != size):
            raise RuntimeError("%s %s: %d, %d bytes" % (method, target, st, len(body)))
        key = (method, "%dxx" % (status // 100))
        want[key] = want.get(key, 0) + 1
        nbytes += len(body)
    return want, nbytes


def delta(a, b):
    keys = set(a) | set(b)
    return {k: b.get(k, 0) - a.get(k, 0) for k in keys if b.get(k, 0) - a.get(k, 0)}


def check_metrics(tmp, root, parser):
    srv = Server(tmp, "metrics", ["-l", "127.0.0.1:0", "--admin", "127.0.0.1:0", "-w", "2",
                                  root])
    s0, types, fields = scrape(srv.admin, parser)
    t(fields.get("content-type", "").startswith("text/plain; version=0.0.4"),
      "metrics: Content-Type is the text format 0.0.4", fields)
    bad = [n for n in types if not n.startswith(("portico_", "process_"))]
    t(not bad, "metrics: every family is portico_* or process_*", bad)
    ctr = [n for n, ty in types.items() if ty == "counter"]
    t(len(ctr) > 10, "metrics: counters are typed (%d counter families)" % len(ctr), types)
    need = ["portico_http_requests", "portico_http_request_duration_seconds",
            "portico_connections", "portico_connections_accepted", "portico_connections_shed",
            "portico_accept_pauses", "portico_tls_handshakes", "portico_tls_handshake_failures",
            "portico_http2_streams", "portico_http2_goaways", "portico_file_cache_lookups",
            "portico_compress_cache_lookups", "portico_backend_info", "portico_build_info",
            "process_start_time_seconds", "process_open_fds", "process_max_fds",
            "portico_worker_requests", "portico_admin_refused"]
    missing = [n for n in need if n not in types]
    t(not missing, "metrics: the families of the issue are there", missing)
    t(types.get("portico_http_request_duration_seconds") == "histogram",
      "metrics: the duration is a histogram", types.get("portico_http_request_duration_seconds"))
    be = {"uring": "io_uring", "epoll": "epoll"}.get(os.environ.get("PORTICO_BACKEND", ""))
    got_be = [dict(l).get("backend") for (n, l), v in s0.items() if n == "portico_backend_info"]
    t(be is None and len(got_be) == 1 or got_be == [be],
      "metrics: backend info names the backend in use (%s)" % got_be, got_be)
    t(val(s0, "process_max_fds") > val(s0, "process_open_fds") > 0,
      "metrics: descriptors open and their limit", (val(s0, "process_open_fds"),
                                                    val(s0, "process_max_fds")))
    total_before = sum(requests_by(s0).values())
    for rnd in (1, 2):
        before = scrape(srv.admin, parser)[0]
        want, nbytes = send_round(srv.port)
        n = sum(want.values())
        after = wait_for(lambda: (lambda s: s if sum(delta(requests_by(before),
                                                            requests_by(s)).values()) >= n
                                  else None)(scrape(srv.admin, parser)[0]), 5)
        after = after or scrape(srv.admin, parser)[0]
        d = delta(requests_by(before), requests_by(after))
        t(d == want, "metrics round %d: requests by method and class moved by exactly what "
          "was sent (%d)" % (rnd, n), "moved %r, sent %r" % (d, want))
        hc = "portico_http_request_duration_seconds_count"
        t(val(after, hc) - val(before, hc) == n and
          val(after, hc) == sum(requests_by(after).values()),
          "metrics round %d: the histogram's count equals the requests" % rnd,
          (val(before, hc), val(after, hc), requests_by(after)))
        bb = "portico_http_response_body_bytes_total"
        t(val(after, bb) - val(before, bb) == nbytes,
          "metrics round %d: body bytes moved by the bytes received" % rnd,
          (val(after, bb) - val(before, bb), nbytes))
    check_histogram(after)
    t(val(after, "portico_http_requests_in_flight") == 0, "metrics: nothing in flight after",
      val(after, "portico_http_requests_in_flight"))
    again = scrape(srv.admin, parser)[0]
    t(sum(requests_by(again).values()) == sum(requests_by(after).values()) ==
      total_before + 2 * len(ROUND),
      "metrics: scrapes are not counted as requests", requests_by(again))
    for _ in range(3):
        admin_get(srv.admin, "/healthz")
    n = val(scrape(srv.admin, parser)[0], "portico_admin_requests_total")
    t(n - val(again, "portico_admin_requests_total") == 4,
      "metrics: admin requests are counted (3 and the scrape)",
      (val(again, "portico_admin_requests_total"), n))
    import http.client
    hc0 = val(again, "portico_response_cache_hits_total")
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    bodies = []
    for _ in range(3):                    # one connection: one worker, so one cache
        conn.request("GET", "/hello.txt?rc")
        bodies.append(conn.getresponse().read())
    conn.close()
    rc = wait_for(lambda: (lambda s: s if val(s, "portico_response_cache_hits_total") >= hc0 + 2
                           else None)(scrape(srv.admin, parser)[0]), 5)
    t(rc is not None and val(rc, "portico_response_cache_hits_total") == hc0 + 2 and
      len(set(bodies)) == 1, "metrics: the response cache's hits (the same GET three times on "
      "one connection: 2)", (hc0, rc and val(rc, "portico_response_cache_hits_total")))
    again = rc or again
    # repeated GETs of a file are answered by the response cache, or else by the open-file
    # cache (a worker's first one, or the other worker)
    fc = val(again, "portico_file_cache_lookups_total", result="hit")
    t(fc + val(again, "portico_response_cache_hits_total") >= 2 and
      val(again, "portico_file_cache_lookups_total", result="miss") >= 3,
      "metrics: file cache hits (with the response cache's) and misses", fc)
    per = sum(v for (n, l), v in again.items() if n == "portico_worker_requests_total")
    t(per == sum(requests_by(again).values()), "metrics: per-worker requests add up", per)
    check_states(srv, parser)
    stopped_clean(srv, "metrics")


def check_histogram(s):
    name = "portico_http_request_duration_seconds_bucket"
    b = sorted(((float(dict(l)["le"]), v) for (n, l), v in s.items() if n == name))
    les = [le for le, _ in b]
    t(les[0] == 0.0001 and les[-2] == 10 and les[-1] == float("inf") and len(les) == 17,
      "metrics: buckets from 100 us to 10 s, then +Inf", les)
    t(all(b[i][1] <= b[i + 1][1] for i in range(len(b) - 1)) and
      b[-1][1] == val(s, "portico_http_request_duration_seconds_count"),
      "metrics: buckets are cumulative, +Inf equals the count", b)
    t(val(s, "portico_http_request_duration_seconds_sum") > 0, "metrics: durations add up",
      val(s, "portico_http_request_duration_seconds_sum"))


def conn_states(port, parser):
    s = scrape(port, parser)[0]
    return {st: val(s, "portico_connections", state=st)
            for st in ("silent", "partial", "idle", "busy", "closing")}


def check_states(srv, parser):
    """Connections the test holds: 2 silent, 1 with half a request head, 3 idle keep-alive."""
    silent = [socket.create_connection(("127.0.0.1", srv.port)) for _ in range(2)]
    partial = socket.create_connection(("127.0.0.1", srv.port))
    partial.sendall(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n")
    idle = [request(srv.port, "GET", "/hello.txt", keep=True)[3] for _ in range(3)]
    want = {"silent": 2, "partial": 1, "idle": 3, "busy": 0, "closing": 0}
    got = wait_for(lambda: (lambda g: g if g == want else None)(conn_states(srv.admin, parser)),
                   5) or conn_states(srv.admin, parser)
    t(got == want, "metrics: connections by state follow what the test holds", got)
    for s in silent + [partial] + idle:
        s.close()
    zero = dict.fromkeys(want, 0)
    got = wait_for(lambda: (lambda g: g if g == zero else None)(conn_states(srv.admin, parser)),
                   5) or conn_states(srv.admin, parser)
    t(got == zero, "metrics: every state back to 0 once they close", got)


# ---- 2. /status.json and /status -----------------------------------------------------------------

def check_status(tmp, root, parser):
    srv = Server(tmp, "status", ["-l", "127.0.0.1:0", "--admin", "127.0.0.1:0", root])
    send_round(srv.port)
    time.sleep(0.3)
    st, f, body = admin_get(srv.admin, "/status.json")
    doc = json.loads(body)
    m = scrape(srv.admin, parser)[0]
    t(st == 200 and f.get("content-type") == "application/json" and
      f.get("cache-control") == "no-store", "status.json: 200 application/json, no-store", f)
    t(doc["requests"] == sum(requests_by(m).values()) == len(ROUND),
      "status.json: requests agree with /metrics", (doc["requests"], requests_by(m)))
    t(doc["latency"]["buckets"][-1] == doc["requests"] and len(doc["latency"]["le"]) == 16,
      "status.json: the latency histogram counts every request", doc["latency"])
    t(len(doc["per_worker"]) == doc["workers"] and
      sum(w["requests"] for w in doc["per_worker"]) == doc["requests"],
      "status.json: per-worker requests add up", doc["per_worker"])
    t(doc["status"]["4xx"] == 4 and doc["status"]["2xx"] == 6 and doc["status"]["3xx"] == 1,
      "status.json: status classes", doc["status"])
    st, f, page = admin_get(srv.admin, "/status")
    text = page.decode("utf-8")
    ext = re.findall(r"""(?:src|href)\s*=\s*["']?(?:https?:)?//""", text) + \
        re.findall(r"@import|url\(\s*['\"]?https?:", text)
    t(st == 200 and f.get("content-type", "").startswith("text/html") and
      "<script>" in text and "status.json" in text and not ext,
      "status: one self-contained HTML page that polls status.json", (st, f, ext))
    st, f, _ = admin_get(srv.admin, "/")
    t(st == 302 and f.get("location") == "/status", "admin: / redirects to /status", (st, f))
    check_chromium(tmp, srv, doc)
    stopped_clean(srv, "status")


def chromium():
    for c in ("chromium", "chromium-browser", "google-chrome"):
        p = shutil.which(c)
        if p:
            return p
    return None


def run_chromium(tmp, args, timeout=90):
    exe = chromium()
    prof = tempfile.mkdtemp(prefix="chr-", dir=tmp)
    argv = [exe, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-proxy-server",
            "--no-first-run", "--disable-extensions", "--user-data-dir=" + prof] + args
    return subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout)


def png_size_and_colours(path):
    """(width, height, distinct colours in a sample of the decoded pixels)."""
    import struct
    import zlib
    data = open(path, "rb").read()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        return 0, 0, 0
    w, h, depth, ctype = struct.unpack(">IIBB", data[16:26])
    idat, i = b"", 8
    while i < len(data):
        n = struct.unpack(">I", data[i:i + 4])[0]
        if data[i + 4:i + 8] == b"IDAT":
            idat += data[i + 8:i + 8 + n]
        i += 12 + n
    raw = zlib.decompress(idat)
    return w, h, len(set(raw[j:j + 3] for j in range(0, min(len(raw), 400000), 97)))


def check_chromium(tmp, srv, doc):
    if not chromium():
        skip("status page in headless Chromium", "chromium is not installed")
        return
    url = "http://127.0.0.1:%d/status" % srv.admin
    shot = os.path.join(tmp, "status.png")
    r = run_chromium(tmp, ["--window-size=1280,1000", "--virtual-time-budget=5000",
                           "--screenshot=" + shot, url])
    ok = os.path.exists(shot)
    w, h, colours = png_size_and_colours(shot) if ok else (0, 0, 0)
    t(ok and w == 1280 and h == 1000 and colours > 20,
      "status page: Chromium takes a screenshot of a rendered page (%dx%d, %d colours)"
      % (w, h, colours), r.stderr.decode("utf-8", "replace")[-1500:])
    keep = os.environ.get("PT_SCREENSHOT")
    if ok and keep:
        shutil.copy(shot, keep)
    r = run_chromium(tmp, ["--virtual-time-budget=5000", "--dump-dom", url])
    dom = r.stdout.decode("utf-8", "replace")
    m = re.search(r'id="requests-total">(\d+)<', dom)
    fresh = json.loads(admin_get(srv.admin, "/status.json")[2])
    t(m and int(m.group(1)) == fresh["requests"] == doc["requests"],
      "status page: the requests total shown (%s) matches /status.json (%d)"
      % (m.group(1) if m else None, fresh["requests"]),
      dom[:1500] or r.stderr.decode("utf-8", "replace")[-1500:])
    m = re.search(r'id="state" class="(\w+)">(\w+)<', dom)
    t(m and m.groups() == ("ok", "serving"), "status page: shows the server serving",
      m.groups() if m else dom[:500])


# ---- 4. allow-list ---------------------------------------------------------------------------------

def check_allow(tmp, root, parser):
    srv = Server(tmp, "allow", ["-l", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                "--admin-allow", "127.0.0.1/32, ::1", root])
    refused = [admin_get(srv.admin, p, source="127.0.0.2")[0]
               for p in ("/metrics", "/status", "/status.json", "/healthz", "/nope")]
    t(refused == [403] * 5, "allow-list: 127.0.0.2 outside 127.0.0.1/32 gets 403 everywhere",
      refused)
    st = admin_get(srv.admin, "/healthz", source="127.0.0.1")[0]
    t(st == 200, "allow-list: 127.0.0.1 inside it is answered", st)
    s = scrape(srv.admin, parser)[0]
    t(val(s, "portico_admin_refused_total") == 5, "allow-list: the refusals are counted",
      val(s, "portico_admin_refused_total"))
    st = [admin_get(srv.admin, "/metrics", method=m)[0] for m in ("POST", "DELETE")]
    t(st == [405, 405], "admin: other methods than GET and HEAD get 405", st)
    st, _, body = admin_get(srv.admin, "/metrics", method="HEAD")
    t(st == 200 and body == b"", "admin: HEAD /metrics", st)
    t(admin_get(srv.admin, "/index.html")[0] == 404, "admin: other paths get 404")
    t(request(srv.port, "GET", "/metrics")[0] == 404,
      "admin: the file listener does not answer /metrics")
    stopped_clean(srv, "allow-list")
    srv = Server(tmp, "allow-default", ["-l", "127.0.0.1:0", "--admin", "127.0.0.1:0", root])
    st = admin_get(srv.admin, "/healthz", source="127.0.0.2")[0]
    t(st == 200, "allow-list: the default allows 127.0.0.0/8", st)
    stopped_clean(srv, "allow-default")


# ---- 5. drain -------------------------------------------------------------------------------------

def check_drain(tmp, root, parser):
    srv = Server(tmp, "drain", ["-l", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                "--drain-delay", "2", root])
    st, _, body = admin_get(srv.admin, "/healthz")
    t(st == 200 and body == b"ok\n", "drain: /healthz is 200 while serving", (st, body))
    ka = request(srv.port, "GET", "/hello.txt", keep=True)
    t(ka[0] == 200 and ka[1].get("connection") != "close", "drain: keep-alive before SIGTERM")
    t0 = time.monotonic()
    srv.p.send_signal(signal.SIGTERM)
    st = wait_for(lambda: admin_get(srv.admin, "/healthz")[0] == 503, 1.5)
    t(st, "drain: /healthz turns 503 on SIGTERM")
    s = scrape(srv.admin, parser)[0]
    t(val(s, "portico_draining") == 1, "drain: portico_draining is 1")
    codes, closes = [], []
    while time.monotonic() - t0 < 1.5:
        st, f, body, _ = request(srv.port, "GET", "/hello.txt")
        codes.append(st)
        time.sleep(0.1)
    st, f, body, _ = request(srv.port, "GET", "/hello.txt", sock=ka[3], keep=True)
    closes.append(f.get("connection"))
    t(codes and set(codes) == {200} and len(codes) >= 5,
      "drain: file requests still succeed during the delay (%d)" % len(codes), codes)
    t(closes == ["close"], "drain: responses close their connections", closes)
    ka[3].close()
    try:
        rc = srv.p.wait(20)
    except subprocess.TimeoutExpired:
        rc = stop_process(srv.p, signal.SIGKILL, 5)
    took = time.monotonic() - t0
    err = read_text(srv.err)
    t(rc == 0 and 1.9 <= took < 8 and sanitizer_clean(err),
      "drain: exits 0 after the delay (%.2f s)" % took, (rc, err[-2000:]))
    t("draining for 2.000 s" in err, "drain: the error log says it drains", err[-500:])
    # a second SIGTERM cuts it short
    srv = Server(tmp, "drain2", ["-l", "127.0.0.1:0", "--admin", "127.0.0.1:0",
                                 "--drain-delay", "30", root])
    t0 = time.monotonic()
    srv.p.send_signal(signal.SIGTERM)
    wait_for(lambda: admin_get(srv.admin, "/healthz")[0] == 503, 2)
    srv.p.send_signal(signal.SIGTERM)
    rc = stop_process(srv.p, None, 20)
    took = time.monotonic() - t0
    t(rc == 0 and took < 5, "drain: a second SIGTERM ends it early (%.2f s)" % took, rc)
    # no delay: stops at once
    srv = Server(tmp, "nodrain", ["-l", "127.0.0.1:0", "--admin", "127.0.0.1:0", root])
    rc, took, err = srv.stop()
    t(rc == 0 and took < 3, "drain: without --drain-delay SIGTERM stops at once (%.2f s)" % took,
      err[-1000:])


# ---- 6. JSON access log ----------------------------------------------------------------------------

def json_lines(path, n, timeout=5):
    def get():
        lines = [l for l in read_text(path).splitlines() if l.strip()]
        return lines if len(lines) >= n else None
    return wait_for(get, timeout) or [l for l in read_text(path).splitlines() if l.strip()]


def slow_download(port):
    """GET /big.bin on a connection with a small receive buffer, read after 0.6 s: the
    server's last send completes only then. Returns the seconds from request to last byte."""
    s = socket.socket()
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.settimeout(20)
    s.connect(("127.0.0.1", port))
    t0 = time.monotonic()
    s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    time.sleep(0.6)
    n = 0
    while True:
        b = s.recv(65536)
        if not b:
            break
        n += len(b)
    s.close()
    return time.monotonic() - t0


def check_json_log(tmp, root, parser):
    log = os.path.join(tmp, "access.json")
    srv = Server(tmp, "jsonlog", ["-l", "127.0.0.1:0", "--access-log", log,
                                  "--access-log-format", "json", root])
    ua = 'agent "quoted" \\ back\xe9t\xc3\xa9\tend'      # sent as latin1 bytes: E9 is not UTF-8
    sent = [("GET", "/hello.txt", (("User-Agent", ua), ("Referer", "http://r.test/?a=1")),
             "1.1", 200, 13),
            ("HEAD", "/page.html?x=%22y%22", (), "1.1", 200, 0),
            ("GET", "/missing", (), "1.0", 404, None),
            ("GET", "/big.bin", (), "1.1", 200, 3 << 20)]
    got_bytes = []
    for method, target, hdrs, ver, status, size in sent:
        st, f, body, _ = request(srv.port, method, target, hdrs=[(k, v) for k, v in hdrs],
                                 version=ver)
        got_bytes.append(len(body))
    lines = json_lines(log, len(sent))
    docs = []
    for l in lines:
        try:
            docs.append(json.loads(l))
        except ValueError:
            docs.append(None)
    t(len(docs) == len(sent) and None not in docs, "json log: one JSON object per line (%d)"
      % len(docs), lines)
    if len(docs) != len(sent) or None in docs:
        srv.stop()
        return
    # lines are written per worker when each response completes: match them by request
    docs.sort(key=lambda d: [(m, tg) for m, tg, *_ in sent].index((d["method"], d["target"])))
    keys = {"time", "client", "method", "target", "status", "bytes", "request_time_us",
            "protocol", "tls", "host", "user_agent", "referer"}
    t(all(set(d) == keys for d in docs), "json log: the fields of the issue", docs[0])
    for d, (method, target, hdrs, ver, status, size), nb in zip(docs, sent, got_bytes):
        ok = (d["method"] == method and d["target"] == target and d["status"] == status and
              d["bytes"] == nb and d["protocol"] == "HTTP/" + ver and d["client"] == "127.0.0.1"
              and d["host"] == "t" and d["tls"] is None and
              isinstance(d["request_time_us"], int) and d["request_time_us"] >= 0)
        t(ok, "json log: %s %s %d matches its request" % (method, target, status), d)
    t(docs[0]["user_agent"] == 'agent "quoted" \\ back\xe9t\xe9\tend' and
      docs[0]["referer"] == "http://r.test/?a=1" and docs[1]["user_agent"] is None, "json log: user agent (escaped bytes) and referer", docs[0])
    raw = open(log, "rb").read()
    t(b"back\\u00e9t\xc3\xa9\\u0009end" in raw,
      "json log: UTF-8 kept, other bytes and controls as \\u00XX", raw[:300])
    try:
        ts = [datetime.datetime.fromisoformat(d["time"]) for d in docs]
        ok = all(x.tzinfo is not None for x in ts) and \
            abs(ts[0].timestamp() - time.time()) < 60
    except ValueError as e:
        ok, ts = False, e
    t(ok, "json log: time is ISO 8601 with milliseconds and zone", ts)
    slow = slow_download(srv.port)
    docs = [json.loads(l) for l in json_lines(log, len(sent) + 1)]
    big = max((d for d in docs if d["target"] == "/big.bin"), key=lambda d: d["request_time_us"])
    us = big["request_time_us"]
    t(len(docs) == len(sent) + 1 and big["bytes"] == 3 << 20 and 400000 <= us <= slow * 1e6 + 1e5,
      "json log: request time runs until the last byte is sent (%s us; the client read for "
      "%.2f s)" % (us, slow), docs)
    os.rename(log, log + ".1")
    srv.p.send_signal(signal.SIGHUP)
    time.sleep(0.5)
    request(srv.port, "GET", "/hello.txt")
    lines = json_lines(log, 1)
    t(len(lines) == 1 and json.loads(lines[0])["target"] == "/hello.txt",
      "json log: SIGHUP reopens the file", lines)
    stopped_clean(srv, "json log")
    check_json_tls(tmp, root, parser)


def check_json_tls(tmp, root, parser):
    certs = make_certs(os.path.join(tmp, "certs"))
    log = os.path.join(tmp, "tls.json")
    cert, key = certs["a"]
    srv = Server(tmp, "jsontls", ["--listen-tls", "127.0.0.1:0", "--tls-cert", cert,
                                  "--tls-key", key, "--admin", "127.0.0.1:0",
                                  "--access-log", log, "--access-log-format", "json", root])
    port = srv.ports["https"]
    for ver in (ssl.TLSVersion.TLSv1_3, ssl.TLSVersion.TLSv1_2):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.load_verify_locations(certs["ca"])
        ctx.minimum_version = ctx.maximum_version = ver
        s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10),
                            server_hostname="localhost")
        request(port, "GET", "/hello.txt", sock=s)
        s.close()
    docs = [json.loads(l) for l in json_lines(log, 2)]
    t(sorted(d["tls"] for d in docs) == ["TLSv1.2", "TLSv1.3"], "json log: the TLS version",
      [d.get("tls") for d in docs])
    if b"HTTP2" in subprocess.run(["curl", "-V"], capture_output=True).stdout:
        r = subprocess.run(["curl", "-s", "--noproxy", "*", "--http2", "--cacert", certs["ca"],
                            "-o", "/dev/null", "-w", "%{http_version}",
                            "https://localhost:%d/hello.txt" % port,
                            "--resolve", "localhost:%d:127.0.0.1" % port],
                           capture_output=True, timeout=30)
        docs = [json.loads(l) for l in json_lines(log, 3)]
        t(r.stdout == b"2" and len(docs) == 3 and docs[2]["protocol"] == "HTTP/2" and
          docs[2]["status"] == 200, "json log: an HTTP/2 request says HTTP/2", (r.stdout, docs))
    else:
        skip("json log: an HTTP/2 request says HTTP/2", "curl without HTTP/2")
    s = scrape(srv.admin, parser)[0]
    t(val(s, "portico_tls_handshakes_total", result="full") == len(docs),
      "metrics: TLS handshakes by outcome", val(s, "portico_tls_handshakes_total",
                                                result="full"))
    stopped_clean(srv, "json tls")


# ---- 6b. what the HTTP layer counts: refused requests, HTTP/2 ------------------------------------

def raw_status(port, data):
    """Sends data on a new connection; the status of the first response line (0 if none)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(data)
        buf = b""
        while b"\r\n" not in buf:
            b = s.recv(4096)
            if not b:
                break
            buf += b
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", buf)
    return int(m.group(1)) if m else 0


def drained(sock, timeout):
    """Reads sock until EOF: True if the peer closed within timeout seconds."""
    end = time.monotonic() + timeout
    try:
        while time.monotonic() < end:
            sock.settimeout(max(0.05, end - time.monotonic()))
            if not sock.recv(65536):
                return True
    except socket.timeout:
        return False
    except OSError:
        return True
    return False


def check_http_layer(tmp, root, parser):
    import h2client
    import hyperframe.frame as hf
    log = os.path.join(tmp, "h2c.json")
    srv = Server(tmp, "h2", ["-l", "127.0.0.1:0", "--h2c", "--admin", "127.0.0.1:0",
                             "--access-log", log, "--access-log-format", "json", root])
    s0 = scrape(srv.admin, parser)[0]
    bad = [(b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n", 400),
           (b"GET / HTTP/1.1\r\nHost: t\r\nX: " + b"a" * 70000 + b"\r\n\r\n", 431),
           (b"GET / HTTP/3.0\r\nHost: t\r\n\r\n", 505),
           (b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n", 200)]
    got = [raw_status(srv.port, d) for d, _ in bad]
    t(got == [st for _, st in bad], "http layer: bad heads answered 400, 431, 505", got)
    s1 = scrape(srv.admin, parser)[0]
    rej = {c: val(s1, "portico_http_requests_rejected_total", code=c) -
           val(s0, "portico_http_requests_rejected_total", code=c)
           for c in ("400", "413", "414", "431", "501", "503", "505", "other")}
    t(rej == {"400": 1, "413": 0, "414": 0, "431": 1, "501": 0, "503": 0, "505": 1, "other": 0},
      "metrics: refused requests counted by status, exactly", rej)
    # one HTTP/2 connection: 3 requests, one stream reset by the client, a GOAWAY from it
    c = h2client.H2Conn(srv.port)
    codes = [c.get("/hello.txt").status for _ in range(3)]
    sid = c.request("GET", "/hello.txt", end=False)
    c.c.reset_stream(sid)
    c.flush()
    c.c.close_connection()
    c.flush()
    closed = drained(c.s, 10)      # raw: frames may still come for the reset stream
    c.close()
    # a PING flood: the server ends it with GOAWAY ENHANCE_YOUR_CALM
    r = h2client.RawH2(srv.port)
    r.handshake()
    r.send(*[hf.PingFrame(0) for _ in range(20000)])
    g = r.goaway(10)
    r.close()
    s2 = scrape(srv.admin, parser)[0]
    d = {k: val(s2, n, **lb) - val(s1, n, **lb) for k, n, lb in (
        ("conns", "portico_http2_connections_total", {}),
        ("streams", "portico_http2_streams_total", {}),
        ("rst_client", "portico_http2_stream_resets_total", {"by": "client"}),
        ("goaway_recv", "portico_http2_goaways_total", {"direction": "received"}),
        ("goaway_sent", "portico_http2_goaways_total", {"direction": "sent"}),
        ("floods", "portico_http2_connection_errors_total", {"reason": "flood"}),
        ("proto", "portico_http2_connection_errors_total", {"reason": "protocol_error"}))}
    t(codes == [200] * 3 and closed and g is not None and g.error_code == 11,
      "http2: requests answered, the client's GOAWAY closes, the flood gets CALM",
      (codes, closed, g))
    t(d == {"conns": 2, "streams": 4, "rst_client": 1, "goaway_recv": 1, "goaway_sent": 1,
            "floods": 1, "proto": 0},
      "metrics: HTTP/2 connections, streams, resets, GOAWAYs and floods, exactly", d)
    # each worker buffers its own lines: their order in the file is not the requests' order;
    # the reset stream's line may be there too
    docs = [json.loads(l) for l in json_lines(log, 4)]
    protos = sorted(d["protocol"] for d in docs)
    t(protos.count("HTTP/1.1") == 1 and protos.count("HTTP/2") in (3, 4) and
      len(protos) in (4, 5),
      "json log: h2c requests say HTTP/2, HTTP/1.1 ones HTTP/1.1", docs)
    doc = json.loads(admin_get(srv.admin, "/status.json")[2])
    t(doc.get("http2", {}).get("connections") == val(s2, "portico_http2_connections_total") and
      doc["http2"]["streams"] == val(s2, "portico_http2_streams_total"),
      "status.json: the HTTP/2 numbers match /metrics", doc.get("http2"))
    stopped_clean(srv, "http layer")


# ---- 7. options -------------------------------------------------------------------------------------

def check_options(tmp, root):
    for args in (["--admin", "nope"], ["--admin", "127.0.0.1:99999"],
                 ["--admin-allow", "300.0.0.0/8"], ["--admin-allow", "10.0.0.0/33"],
                 ["--admin-allow", ""], ["--access-log-format", "xml"],
                 ["--drain-delay", "-1"]):
        p = subprocess.run([PORTICO] + args + [root], capture_output=True, timeout=15,
                           stdin=subprocess.DEVNULL)
        err = p.stderr.decode("utf-8", "replace")
        t(p.returncode == 2 and "--" + args[0].lstrip("-") in err,
          "options: %s exits 2 naming the option" % " ".join(args), err)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    p = subprocess.run([PORTICO, "-l", "127.0.0.1:0", "--admin",
                        "127.0.0.1:%d" % busy.getsockname()[1], root], capture_output=True,
                       timeout=15, stdin=subprocess.DEVNULL)
    busy.close()
    t(p.returncode == 1 and b"admin listener" in p.stderr,
      "options: a busy admin port fails the start (exit 1)", p.stderr[-500:])


def section(name, fn, *args):
    try:
        fn(*args)
    except Exception:
        t(False, "%s: completed without an exception" % name, traceback.format_exc())


def main():
    if not os.access(PORTICO, os.X_OK):
        t(False, "portico binary exists", PORTICO)
        return 1
    parser = prometheus_parser()
    tmp = tempfile.mkdtemp(prefix="pt-obs-")
    try:
        root = docroot(tmp)
        if parser is None:
            t(False, "python3-prometheus-client is installed (scripts/deps.sh test)")
        else:
            section("metrics", check_metrics, tmp, root, parser)
            section("status", check_status, tmp, root, parser)
            section("allow", check_allow, tmp, root, parser)
            section("drain", check_drain, tmp, root, parser)
            section("json log", check_json_log, tmp, root, parser)
            section("http layer", check_http_layer, tmp, root, parser)
        section("options", check_options, tmp, root)
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
