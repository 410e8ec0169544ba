#!/usr/bin/env python3
"""Black-box tests of the portico static-file server (build/portico of PT_BUILD).

Starts the server on a free loopback port with temporary document roots and checks the exact
responses over raw sockets: path safety (traversal, encoded slashes, backslashes, overlong
UTF-8, symlinks out of the root, a docroot that is itself a symlink), dotfiles, directories
(index, 301 keeping the query, autoindex, 404), MIME types, validators and conditional
requests, ranges (single, suffix, open-ended, multipart/byteranges parsed byte-exact,
If-Range, 416), precompressed variants chosen by Accept-Encoding, methods, a 20 MiB file
(sendfile) and small files (memory cache), files changed on disk, Cache-Control, the access
log (Combined Log Format, SIGHUP reopen, flush on SIGTERM), graceful SIGTERM (exit 0 under
ASan/LSan) and the command line (exit codes, --help against docs/portico.1), plus curl smoke
tests. One TAP line per check. Runs once per backend (PORTICO_BACKEND) from tests/run.sh.
"""
import email.utils
import gzip
import hashlib
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
import traceback
import urllib.parse
from datetime import datetime, timezone

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ptest import t, skip, failures, checks, read_text, sanitizer_clean, wait_for, HttpConn, stop_process  # noqa: E402
from ptest import tls_enabled, tls_listen_args, announced_port, h2_enabled  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
B = os.environ.get("PT_BUILD") or os.path.join(REPO, "build", "san")
PORTICO = os.path.join(B, "portico")
# PT_PORTICO_CMD (tests/win/portico_win.py): the command that runs the server, split on
# blanks ("wine build/win/portico.exe"), in place of PORTICO. PT_WINE=1: the server is stopped
# by closing its standard input (Wine gives a test no console event to send; see sys.h).
PORTICO_CMD = os.environ.get("PT_PORTICO_CMD", "").split() or [PORTICO]
WINE = os.environ.get("PT_WINE", "") not in ("", "0")
BACKEND = os.environ.get("PORTICO_BACKEND", "")
CURL = "/usr/bin/curl"
# PT_TLS=1 (tests/integration/tls_suites.py): every server also has a TLS listener, and the
# checks run over it (ptest.connect wraps the client sockets; curl uses https).
TLS = tls_enabled()
SCHEME = "https" if TLS else "http"
# PT_H2=1 (tests/integration/h2.py): the clients speak HTTP/2 (ptest.connect gives an H2Sock
# translating the HTTP/1.1 bytes; ALPN h2 over TLS, else h2c with prior knowledge: --h2c).
H2 = h2_enabled()

T0 = time.monotonic()


# ---- a small HTTP/1.1 client ----------------------------------------------------------------

class Resp:
    def __init__(self, status, reason, hl, body, head):
        self.status, self.reason, self.hl, self.body, self.head = status, reason, hl, body, head
        self.h = {}
        for k, v in hl:
            self.h.setdefault(k.lower(), v)

    def names(self):
        return sorted(k.lower() for k, _ in self.hl)

    def __repr__(self):
        return "%d %s %r body[%d]=%r" % (self.status, self.reason, self.hl, len(self.body),
                                          self.body[:200])


class Conn(HttpConn):
    def response(self, head_only=False):
        head = self.read_until(b"\r\n\r\n")
        lines = head.decode("latin1").split("\r\n")
        parts = lines[0].split(" ", 2)
        status = int(parts[1])
        hl = []
        for l in lines[1:]:
            if l:
                k, v = l.split(":", 1)
                hl.append((k.strip(), v.strip()))
        r = Resp(status, parts[2] if len(parts) > 2 else "", hl, b"", head)
        if head_only or status in (204, 304) or 100 <= status < 200:
            return r
        if r.h.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.read_until(b"\r\n")[:-2].split(b";")[0], 16)
                if size == 0:
                    while self.read_until(b"\r\n") != b"\r\n":
                        pass
                    break
                body += self.read_n(size)
                self.read_n(2)
            r.body = body
        elif "content-length" in r.h:
            r.body = self.read_n(int(r.h["content-length"]))
        else:
            r.body = self.read_all()
        return r

def req_bytes(method, target, hdrs=(), body=b""):
    h = "".join("%s: %s\r\n" % kv for kv in hdrs)
    if body:
        h += "Content-Length: %d\r\n" % len(body)
    return ("%s %s HTTP/1.1\r\nHost: t\r\n%s\r\n" % (method, target, h)).encode("latin1") + body


def fetch(port, target, hdrs=(), method="GET", body=b""):
    """One request on a fresh connection."""
    c = Conn(port)
    try:
        c.send(req_bytes(method, target, hdrs, body))
        return c.response(head_only=(method == "HEAD"))
    finally:
        c.close()


# ---- the server under test --------------------------------------------------------------------

PROCS = []


class Server:
    def __init__(self, tmp, name, docroot, opts=(), env=None):
        self.out = os.path.join(tmp, name + ".stdout")
        self.err = os.path.join(tmp, name + ".stderr")
        self.args = PORTICO_CMD + ["-l", "127.0.0.1:0", "-w", "2"] + list(opts) + [docroot]
        if TLS:
            self.args[len(PORTICO_CMD):len(PORTICO_CMD)] = tls_listen_args("127.0.0.1:0")
        elif H2:
            self.args[len(PORTICO_CMD):len(PORTICO_CMD)] = ["--h2c"]
        self.port = None
        self.announce = ""
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.p = subprocess.Popen(self.args, stdout=o, stderr=e, env=env,
                                      stdin=subprocess.PIPE if WINE else subprocess.DEVNULL)
        PROCS.append(self.p)
        deadline = time.monotonic() + (30 if WINE else 10)
        while time.monotonic() < deadline:
            txt = read_text(self.out).replace("\r\n", "\n")
            m = re.search(r"^portico: serving (.*) at http://127\.0\.0\.1:(\d+)/$", txt, re.M)
            if m and "backend," in txt:
                self.port, self.announce = int(m.group(2)), txt
                if TLS:
                    self.port = announced_port(txt, "https")
                if self.port:
                    return
            if self.p.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError("portico did not start: rc=%r stdout=%r stderr=%r" %
                           (self.p.poll(), read_text(self.out), read_text(self.err)[-2000:]))

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Sends sig, waits; returns (rc, seconds, stderr)."""
        t0 = time.monotonic()
        if WINE:
            self.signal(sig)
            sig = 0
        rc = stop_process(self.p, sig, timeout)
        return rc, time.monotonic() - t0, read_text(self.err)

    def signal(self, sig):
        """Sends sig; under Wine its standard-input twin (sys.h): SIGTERM/SIGINT close it."""
        if not WINE:
            self.p.send_signal(sig)
        elif sig in (signal.SIGHUP, signal.SIGUSR1):
            self.p.stdin.write(b"reload\n" if sig == signal.SIGHUP else b"counters\n")
            self.p.stdin.flush()
        elif not self.p.stdin.closed:
            self.p.stdin.close()


class Download:
    """A GET whose head is read now and whose body a thread of its own reads once start()ed
    (a big response across a server's stop)."""

    def __init__(self, port, target, hdrs=(), timeout=20):
        self.c = Conn(port, timeout=timeout)
        self.c.send(req_bytes("GET", target, hdrs))
        self.head = self.c.response(head_only=True)
        self.got = {}
        self.th = threading.Thread(target=self._read)

    def _read(self):
        try:
            self.got["body"] = self.c.read_n(int(self.head.h.get("content-length", "0")))
        except Exception as e:
            self.got["err"] = repr(e)

    def start(self):
        self.th.start()

    def finish(self, secs):
        """Waits up to secs for the body: (body bytes, error or None)."""
        self.th.join(secs)
        self.c.close()
        return self.got.get("body", b""), self.got.get("err")


def etag_of(path):
    st = os.stat(path)
    return '"%x-%x-%x"' % (st.st_ino, st.st_size, st.st_mtime_ns)


def lastmod_of(path):
    return email.utils.formatdate(int(os.stat(path).st_mtime), usegmt=True)


def http_date(ts):
    return email.utils.formatdate(ts, usegmt=True)


DATE_RE = r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d\d (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d\d:\d\d:\d\d GMT$"


# ---- the document root -------------------------------------------------------------------------

SECRET = b"TOPSECRET-outside-the-docroot\n"
DOT_SECRET = b"DOTSECRET=1\n"
HOME = b"<!DOCTYPE html>\n<title>home</title>\n"
SUB_INDEX = b"<!DOCTYPE html>\n<title>sub</title>\n"
A_TXT = b"hello\n"
ODD_NAME = "a<b>&\"c'.txt"


def build_tree(tmp):
    root = os.path.join(tmp, "root")
    outside = os.path.join(tmp, "outside")
    os.makedirs(outside)
    os.makedirs(root)
    w = lambda rel, data: write(os.path.join(root, rel), data)
    write(os.path.join(outside, "secret.txt"), SECRET)
    w("index.html", HOME)
    w("a.txt", A_TXT)
    w("UPPER.TXT", b"upper\n")
    w("style.css", b"body{color:red}\n")
    w("app.js", b"console.log(1);\n")
    w("data.json", b'{"a":1}\n')
    w("pic.svg", b"<svg xmlns='http://www.w3.org/2000/svg'/>\n")
    w("img.png", b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    w("blob.unknownext", b"\x00\x01\x02")
    w("README", b"no extension\n")
    w("empty.txt", b"")
    rnd = os.urandom
    w("r.bin", rnd(1000))
    w("s65536.bin", rnd(65536))
    w("s65537.bin", rnd(65537))
    w("big.bin", rnd(20 << 20))
    w("sub/index.html", SUB_INDEX)
    w("sub/page.txt", b"sub page\n")
    w("sp ace/index.html", b"space dir\n")
    w("list/plain.txt", b"plain\n")
    w("list/" + ODD_NAME, b"odd name\n")
    w("list/\u00e9t\u00e9.txt", "été\n".encode())
    w("list/.hidden", b"hidden\n")
    os.makedirs(os.path.join(root, "list", "d&ir"))
    w(".env", DOT_SECRET)
    w(".git/config", DOT_SECRET)
    w("sub/.htpasswd", DOT_SECRET)
    # precompressed variants
    text = b"".join(b"line %d: the quick brown fox jumps over the lazy dog\n" % i for i in range(200))
    w("pre/text.txt", text)
    w("pre/text.txt.gz", gzip.compress(text, mtime=0))
    w("pre/text.txt.br", b"BR-VARIANT-BYTES" + rnd(100))
    w("pre/text.txt.zst", b"ZST-VARIANT-BYTES" + rnd(120))
    gz_only = b"".join(b"gz only line %d\n" % i for i in range(300))
    w("pre/gzonly.txt", gz_only)
    w("pre/gzonly.txt.gz", gzip.compress(gz_only, mtime=0))
    w("pre/plain.txt", b"no variants here\n")
    w("change.txt", b"version 1\n")
    w("replace.txt", b"old content\n")
    w("doomed.txt", b"about to be deleted\n")
    # special files and symlinks
    os.mkfifo(os.path.join(root, "fifo"))
    os.symlink("a.txt", os.path.join(root, "in_link"))
    os.symlink("sub", os.path.join(root, "in_dirlink"))
    os.symlink(os.path.join(outside, "secret.txt"), os.path.join(root, "abs_out"))
    os.symlink("../outside/secret.txt", os.path.join(root, "rel_out"))
    os.symlink("sub/../../outside/secret.txt", os.path.join(root, "rel_out2"))
    os.symlink("../outside", os.path.join(root, "dir_out"))
    os.symlink("/etc/passwd", os.path.join(root, "passwd_link"))
    rootlink = os.path.join(tmp, "rootlink")
    os.symlink(root, rootlink)
    return root, rootlink, outside


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def fbytes(root, rel):
    with open(os.path.join(root, rel), "rb") as f:
        return f.read()


# ---- checks --------------------------------------------------------------------------------------

def check_basic(port, root, cache_control):
    r = fetch(port, "/a.txt")
    want_names = ["accept-ranges", "content-length", "content-type", "date", "etag",
                  "last-modified", "server"] + (["cache-control"] if cache_control else [])
    t(r.status == 200 and r.reason == "OK" and r.body == A_TXT, "GET /a.txt: 200 OK, body", r)
    t(r.names() == sorted(want_names), "GET /a.txt: exactly the expected header fields", r.names())
    t(r.h.get("content-type") == "text/plain; charset=utf-8" and r.h.get("content-length") == "6"
      and r.h.get("accept-ranges") == "bytes" and r.h.get("server") == "portico",
      "GET /a.txt: Content-Type, Content-Length, Accept-Ranges, Server values", r.hl)
    t(r.h.get("etag") == etag_of(os.path.join(root, "a.txt")),
      "strong ETag \"<ino>-<size>-<mtime ns>\" of the file", (r.h.get("etag"), etag_of(os.path.join(root, "a.txt"))))
    t(r.h.get("last-modified") == lastmod_of(os.path.join(root, "a.txt")),
      "Last-Modified is the file's mtime as IMF-fixdate", (r.h.get("last-modified"), lastmod_of(os.path.join(root, "a.txt"))))
    t(re.match(DATE_RE, r.h.get("date", "")) is not None, "Date header in IMF-fixdate", r.h.get("date"))
    if cache_control:
        t(r.h.get("cache-control") == cache_control, "Cache-Control from --cache-control", r.hl)
    else:
        t("cache-control" not in r.h, "no Cache-Control without --cache-control", r.hl)

    r = fetch(port, "/")
    t(r.status == 200 and r.body == HOME and r.h.get("content-type") == "text/html; charset=utf-8"
      and r.h.get("etag") == etag_of(os.path.join(root, "index.html")),
      "GET / serves index.html (text/html; charset=utf-8, its ETag)", r)
    r = fetch(port, "/index.html")
    t(r.status == 200 and r.body == HOME, "GET /index.html", r)
    r = fetch(port, "/empty.txt")
    t(r.status == 200 and r.body == b"" and r.h.get("content-length") == "0",
      "empty file: 200 with Content-Length: 0", r)
    r = fetch(port, "/no-such-file.txt")
    t(r.status == 404 and r.body == b"404 Not Found\n" and
      r.h.get("content-type") == "text/plain; charset=utf-8" and r.h.get("content-length") == "14",
      "missing file: 404 with text body", r)
    r = fetch(port, "/a.txt/")
    t(r.status == 404, "a file asked for as a directory (/a.txt/): 404", r)
    r = fetch(port, "/a.txt?x=1&y=%20")
    t(r.status == 200 and r.body == A_TXT, "a query string is ignored for files", r)


def check_mime(port):
    cases = [("/a.txt", "text/plain; charset=utf-8"), ("/UPPER.TXT", "text/plain; charset=utf-8"),
             ("/index.html", "text/html; charset=utf-8"), ("/style.css", "text/css; charset=utf-8"),
             ("/app.js", "text/javascript; charset=utf-8"),
             ("/data.json", "application/json; charset=utf-8"),
             ("/pic.svg", "image/svg+xml; charset=utf-8"), ("/img.png", "image/png"),
             ("/blob.unknownext", "application/octet-stream"), ("/README", "application/octet-stream"),
             ("/r.bin", "application/octet-stream")]
    for path, want in cases:
        r = fetch(port, path)
        t(r.status == 200 and r.h.get("content-type") == want,
          "MIME type of %s is %s" % (path, want), r.hl)


def check_paths(port):
    # (raw request-target, expected status, expected body or None)
    cases = [
        ("/../outside/secret.txt", 400, None),
        ("/../../../../etc/passwd", 400, None),
        ("/sub/../../outside/secret.txt", 400, None),
        ("/%2e%2e/outside/secret.txt", 400, None),
        ("/%2E%2e/outside/secret.txt", 400, None),
        ("/.%2e/outside/secret.txt", 400, None),
        ("/sub/%2e%2e/%2e%2e/outside/secret.txt", 400, None),
        ("/..", 400, None),
        ("/..%2foutside%2fsecret.txt", 400, None),
        ("/sub%2fpage.txt", 400, None),
        ("/sub%2Fpage.txt", 400, None),
        ("/..%5coutside%5csecret.txt", 400, None),
        ("/sub%5Cpage.txt", 400, None),
        ("/..\\outside\\secret.txt", 400, None),
        ("/sub\\page.txt", 400, None),
        ("/%c0%ae%c0%ae/outside/secret.txt", 400, None),
        ("/%C0%AE%C0%AE%C0%AFoutside%C0%AFsecret.txt", 400, None),
        ("/%e0%80%ae%e0%80%ae/outside/secret.txt", 400, None),
        ("/%c0%afetc%c0%afpasswd", 400, None),
        ("/%ff.txt", 400, None),
        ("/a.txt%00.html", 400, None),
        ("/a%0a.txt", 400, None),
        ("/a%7f.txt", 400, None),
        ("/a%zz.txt", 400, None),
        ("/a%2.txt", 400, None),
        ("//a.txt", 200, A_TXT),
        ("/sub//page.txt", 200, b"sub page\n"),
        ("///sub///page.txt", 200, b"sub page\n"),
        ("/./a.txt", 200, A_TXT),
        ("/sub/../a.txt", 200, A_TXT),
        ("/sub/%2e%2e/a.txt", 200, A_TXT),
        ("/sub/./page.txt", 200, b"sub page\n"),
        ("/%61.txt", 200, A_TXT),
        ("/sub/..", 200, HOME),
        ("/list/%C3%A9t%C3%A9.txt", 200, "été\n".encode()),
    ]
    for target, want, body in cases:
        try:
            r = fetch(port, target)
        except (EOFError, ConnectionResetError) as e:
            t(want == 400, "path %r: %d (connection closed without a response)" % (target, want), e)
            continue
        ok = r.status == want and SECRET not in r.body and b"root:" not in r.body
        if body is not None:
            ok = ok and r.body == body
        if want == 400:   # from the handler, or from the HTTP parser (which also closes)
            ok = ok and r.body in (b"400 Bad Request\n", b"Bad Request\n")
        t(ok, "path %r -> %d" % (target, want), r)


def check_dotfiles(port):
    for target in ["/.env", "/.git/config", "/.git/", "/.git", "/sub/.htpasswd", "/%2eenv",
                   "/list/.hidden", "/sub/../.env", "/.nonexistent"]:
        r = fetch(port, target)
        t(r.status == 404 and r.body == b"404 Not Found\n" and DOT_SECRET not in r.body,
          "dotfile %s -> 404" % target, r)


def check_special(port):
    t0 = time.monotonic()
    r = fetch(port, "/fifo")
    dt = time.monotonic() - t0
    t(r.status == 403 and r.body == b"403 Forbidden\n" and dt < 3,
      "a FIFO in the docroot -> 403 at once (no blocking open)", (r, dt))


def check_symlinks(port, follow):
    # links out of the root are refused whether or not --follow-symlinks is given
    for target in ["/abs_out", "/rel_out", "/rel_out2", "/dir_out/secret.txt", "/dir_out/",
                   "/passwd_link"]:
        r = fetch(port, target)
        t(r.status == 404 and SECRET not in r.body and b"root:" not in r.body,
          "symlink out of the docroot %s -> 404%s" % (target, " (with --follow-symlinks)" if follow else ""), r)
    r = fetch(port, "/in_link")
    r2 = fetch(port, "/in_dirlink/page.txt")
    if follow:
        t(r.status == 200 and r.body == A_TXT, "--follow-symlinks: a link inside the docroot is served", r)
        t(r2.status == 200 and r2.body == b"sub page\n",
          "--follow-symlinks: a directory link inside the docroot is served", r2)
    else:
        t(r.status == 404, "without --follow-symlinks a link inside the docroot is 404", r)
        t(r2.status == 404, "without --follow-symlinks a directory link is 404", r2)


def check_dirs(port, autoindex, root):
    r = fetch(port, "/sub")
    t(r.status == 301 and r.h.get("location") == "/sub/" and r.body == b"301 Moved Permanently\n",
      "directory without slash: 301 to /sub/", r)
    r = fetch(port, "/sub?x=1&y=a%20b")
    t(r.status == 301 and r.h.get("location") == "/sub/?x=1&y=a%20b",
      "301 keeps the query string", r)
    r = fetch(port, "/sp%20ace")
    t(r.status == 301 and r.h.get("location") == "/sp%20ace/", "301 Location re-encodes a space", r)
    r = fetch(port, "/sp%20ace/")
    t(r.status == 200 and r.body == b"space dir\n", "directory with a space: index served", r)
    r = fetch(port, "/sub/")
    t(r.status == 200 and r.body == SUB_INDEX and r.h.get("content-type") == "text/html; charset=utf-8",
      "/sub/ serves sub/index.html", r)
    r = fetch(port, "/list")
    t(r.status == 301 and r.h.get("location") == "/list/", "/list (no index): 301 to /list/", r)
    r = fetch(port, "/list/")
    if not autoindex:
        t(r.status == 404 and r.body == b"404 Not Found\n",
          "directory without index.html and without --autoindex: 404", r)
        return
    names = [(n.encode(), False) for n in ["plain.txt", ODD_NAME, "\u00e9t\u00e9.txt"]] + [(b"d&ir", True)]
    want = listing(b"/list/", names)
    want_alt = listing(b"/list", names)
    t(r.status == 200 and r.h.get("content-type") == "text/html; charset=utf-8"
      and r.body in (want, want_alt), "--autoindex: exact listing of /list/ (names HTML- and URL-escaped, dotfiles hidden, sorted)",
      "%r\n--- want ---\n%r" % (r, want))
    if "<" in ODD_NAME:     # (tests/win/portico_win.py: Windows names cannot hold < > ")
        t(b"<a href=\"a%3Cb%3E%26%22c%27.txt\">a&lt;b&gt;&amp;&quot;c&#39;.txt</a>" in r.body
          and b"<b>" not in r.body, "--autoindex: a name with <>&\"' is escaped", r.body)
    t(b".hidden" not in r.body, "--autoindex: dotfiles are not listed", r.body)
    r = fetch(port, "/list/" + urllib.parse.quote(ODD_NAME, safe=""))
    t(r.status == 200 and r.body == b"odd name\n", "the escaped link of the odd name resolves", r)
    r = fetch(port, "/")
    t(r.status == 200 and r.body == HOME, "--autoindex: index.html still wins", r)


def listing(path, names):
    def hesc(b):
        return (b.replace(b"&", b"&amp;").replace(b"<", b"&lt;").replace(b">", b"&gt;")
                .replace(b'"', b"&quot;").replace(b"'", b"&#39;"))

    def uesc(b):
        return b"".join(bytes([c]) if (chr(c).isascii() and (chr(c).isalnum() or chr(c) in "-._~"))
                        else b"%%%02X" % c for c in b)
    ents = sorted(nm + (b"/" if d else b"") for nm, d in names)
    out = (b'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>Index of ' + hesc(path)
           + b"</title></head>\n<body><h1>Index of " + hesc(path)
           + b'</h1>\n<ul>\n<li><a href="../">../</a></li>\n')
    for e in ents:
        d = e.endswith(b"/")
        nm = e[:-1] if d else e
        out += (b'<li><a href="' + uesc(nm) + (b'/">' if d else b'">') + hesc(nm)
                + (b"/</a></li>\n" if d else b"</a></li>\n"))
    return out + b"</ul></body></html>\n"


def check_conditional(port, root, cc):
    p = os.path.join(root, "a.txt")
    et, lm = etag_of(p), lastmod_of(p)
    mtime = int(os.stat(p).st_mtime)
    past, future = http_date(mtime - 3600), http_date(mtime + 3600)

    def c(hdrs, want, name, method="GET"):
        r = fetch(port, "/a.txt", hdrs, method)
        ok = r.status == want
        if want == 304:
            ok = (ok and r.body == b"" and r.h.get("etag") == et and r.h.get("last-modified") == lm
                  and r.h.get("cache-control") == cc)
        elif want == 412:
            ok = ok and r.body == b""
        elif want == 200:
            ok = ok and r.body == (A_TXT if method == "GET" else b"")
        t(ok, name, r)
        return r

    c([("If-None-Match", et)], 304, "If-None-Match: current ETag -> 304 (ETag, Last-Modified, Cache-Control, no body)")
    c([("If-None-Match", '"nope"')], 200, "If-None-Match: other ETag -> 200")
    c([("If-None-Match", '"nope", ' + et)], 304, "If-None-Match: list containing the ETag -> 304")
    c([("If-None-Match", "W/" + et)], 304, "If-None-Match: weak form of the ETag -> 304 (weak comparison)")
    c([("If-None-Match", "*")], 304, "If-None-Match: * -> 304")
    c([("If-None-Match", et)], 304, "HEAD with If-None-Match -> 304", "HEAD")
    c([("If-Modified-Since", lm)], 304, "If-Modified-Since: Last-Modified -> 304")
    c([("If-Modified-Since", future)], 304, "If-Modified-Since: later date -> 304")
    c([("If-Modified-Since", past)], 200, "If-Modified-Since: earlier date -> 200")
    c([("If-Modified-Since", "garbage")], 200, "If-Modified-Since: invalid date ignored -> 200")
    c([("If-None-Match", '"nope"'), ("If-Modified-Since", future)], 200,
      "If-None-Match takes precedence over If-Modified-Since -> 200")
    c([("If-Match", et)], 200, "If-Match: current ETag -> 200")
    c([("If-Match", "*")], 200, "If-Match: * -> 200")
    c([("If-Match", '"nope"')], 412, "If-Match: other ETag -> 412")
    c([("If-Match", "W/" + et)], 412, "If-Match: weak ETag -> 412 (strong comparison)")
    c([("If-Unmodified-Since", past)], 412, "If-Unmodified-Since: earlier date -> 412")
    c([("If-Unmodified-Since", lm)], 200, "If-Unmodified-Since: Last-Modified -> 200")
    c([("If-Unmodified-Since", future)], 200, "If-Unmodified-Since: later date -> 200")
    c([("If-Match", et), ("If-Unmodified-Since", past)], 200,
      "If-Match takes precedence over If-Unmodified-Since -> 200")
    c([("If-Match", '"nope"'), ("If-None-Match", et)], 412, "If-Match fails before If-None-Match -> 412")
    c([("If-Unmodified-Since", "Sunday, 06-Nov-94 08:49:37 GMT")], 412,
      "If-Unmodified-Since in RFC 850 form -> 412")
    c([("If-Modified-Since", time.strftime("%a %b %e %H:%M:%S %Y", time.gmtime(mtime + 10)))], 304,
      "If-Modified-Since in asctime form -> 304")


def parse_multipart(body, boundary):
    """Returns [(headers dict, data)] or raises ValueError."""
    d = b"--" + boundary.encode()
    i = body.find(d)
    if i < 0 or body[:i].strip(b"\r\n") != b"":
        raise ValueError("no first delimiter")
    i += len(d)
    parts = []
    while True:
        if body[i:i + 2] == b"--":
            if body[i + 2:] not in (b"", b"\r\n"):
                raise ValueError("epilogue %r" % body[i + 2:])
            return parts
        if body[i:i + 2] != b"\r\n":
            raise ValueError("bad delimiter line at %d" % i)
        j = body.index(b"\r\n\r\n", i + 2)
        hdrs = {}
        for l in body[i + 2:j].decode("latin1").split("\r\n"):
            k, v = l.split(":", 1)
            hdrs[k.strip().lower()] = v.strip()
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+)", hdrs.get("content-range", ""))
        if not m:
            raise ValueError("part without Content-Range: %r" % hdrs)
        a, z = int(m.group(1)), int(m.group(2))
        data = body[j + 4:j + 4 + (z - a + 1)]
        i = j + 4 + (z - a + 1)
        if body[i:i + 2 + len(d)] != b"\r\n" + d:
            raise ValueError("no delimiter after part data at %d" % i)
        i += 2 + len(d)
        parts.append((hdrs, data))


def check_ranges(port, root):
    data = fbytes(root, "r.bin")
    size = len(data)
    et, lm = etag_of(os.path.join(root, "r.bin")), lastmod_of(os.path.join(root, "r.bin"))

    def single(spec, a, z, name, hdrs=(), path="/r.bin", blob=data):
        r = fetch(port, path, [("Range", spec)] + list(hdrs))
        t(r.status == 206 and r.h.get("content-range") == "bytes %d-%d/%d" % (a, z, len(blob))
          and r.h.get("content-length") == str(z - a + 1) and r.body == blob[a:z + 1], name, r)

    single("bytes=0-9", 0, 9, "Range bytes=0-9 -> 206, Content-Range, first 10 bytes")
    single("bytes=100-199", 100, 199, "Range bytes=100-199 -> 206 middle bytes")
    single("bytes=-10", size - 10, size - 1, "suffix range bytes=-10 -> last 10 bytes")
    single("bytes=990-", 990, size - 1, "open-ended range bytes=990- -> 206")
    single("bytes=995-5000", 995, size - 1, "range past the end is clamped")
    single("bytes=-5000", 0, size - 1, "suffix longer than the file -> whole file as 206")
    single("BYTES=0-0", 0, 0, "unit is case-insensitive, one byte")
    single("bytes=0-9,20-29", 0, 29, "ranges closer than 80 bytes are coalesced into one")

    r = fetch(port, "/r.bin", [("Range", "bytes=0-9,500-509,-5")])
    ok = False
    detail = r
    try:
        m = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", r.h.get("content-type", ""))
        parts = parse_multipart(r.body, m.group(1))
        want = [(0, 9), (500, 509), (size - 5, size - 1)]
        ok = (r.status == 206 and "content-range" not in r.h and len(parts) == 3 and
              int(r.h["content-length"]) == len(r.body) and
              all(h.get("content-type") == "application/octet-stream" and
                  h.get("content-range") == "bytes %d-%d/%d" % (a, z, size) and d == data[a:z + 1]
                  for (h, d), (a, z) in zip(parts, want)))
        detail = (r, parts)
    except Exception as e:
        detail = (r, repr(e))
    t(ok, "several ranges -> 206 multipart/byteranges, parts parsed and byte-exact", detail)

    r = fetch(port, "/a.txt", [("Range", "bytes=0-0,4-5")])
    t(r.status == 206 and r.h.get("content-range") == "bytes 0-5/6" and r.body == A_TXT
      and r.h.get("content-type") == "text/plain; charset=utf-8",
      "close ranges on a text file coalesce into a single 206 (its own Content-Type)", r)
    r = fetch(port, "/r.bin", [("Range", "bytes=1000-2000")])
    t(r.status == 416 and r.h.get("content-range") == "bytes */%d" % size
      and r.body == b"416 Range Not Satisfiable\n",
      "unsatisfiable range -> 416 with Content-Range: bytes */LENGTH", r)
    r = fetch(port, "/r.bin", [("Range", "bytes=5000-,6000-7000")])
    t(r.status == 416 and r.h.get("content-range") == "bytes */%d" % size,
      "all ranges unsatisfiable -> 416", r)
    for spec, name in [("bytes=5-3", "invalid range 5-3 ignored -> 200"),
                       ("items=0-5", "unknown range unit ignored -> 200"),
                       ("bytes=abc", "malformed Range ignored -> 200"),
                       (",".join(["bytes=0-0"] + ["%d-%d" % (i * 100, i * 100) for i in range(1, 20)]),
                        "more than 16 ranges ignored -> 200")]:
        r = fetch(port, "/r.bin", [("Range", spec)])
        t(r.status == 200 and r.body == data and "content-range" not in r.h, name, r)
    r = fetch(port, "/empty.txt", [("Range", "bytes=0-0")])
    t(r.status == 200 and r.body == b"", "Range on an empty file ignored -> 200", r)

    single("bytes=0-9", 0, 9, "If-Range with the current ETag -> 206", [("If-Range", et)])
    single("bytes=0-9", 0, 9, "If-Range with the Last-Modified date -> 206", [("If-Range", lm)])
    for v, name in [('"old"', "If-Range with another ETag -> 200 full"),
                    ("W/" + et, "If-Range with a weak ETag -> 200 full"),
                    (http_date(int(os.stat(os.path.join(root, "r.bin")).st_mtime) - 10),
                     "If-Range with another date -> 200 full")]:
        r = fetch(port, "/r.bin", [("Range", "bytes=0-9"), ("If-Range", v)])
        t(r.status == 200 and r.body == data, name, r)

    # ranges of a file sent with sendfile (not from the memory cache)
    big = fbytes(root, "big.bin")
    single("bytes=10000000-10000099", 10000000, 10000099, "Range in the 20 MiB file (sendfile) byte-exact",
           path="/big.bin", blob=big)
    single("bytes=-100", len(big) - 100, len(big) - 1, "suffix range of the 20 MiB file", path="/big.bin", blob=big)
    r = fetch(port, "/big.bin", [("Range", "bytes=0-99,5000000-5000099,-1000")])
    ok = False
    try:
        m = re.fullmatch(r"multipart/byteranges; boundary=(\S+)", r.h.get("content-type", ""))
        parts = parse_multipart(r.body, m.group(1))
        want = [(0, 99), (5000000, 5000099), (len(big) - 1000, len(big) - 1)]
        ok = r.status == 206 and len(parts) == 3 and all(
            h.get("content-range") == "bytes %d-%d/%d" % (a, z, len(big)) and d == big[a:z + 1]
            for (h, d), (a, z) in zip(parts, want))
    except Exception as e:
        r = (r, repr(e))
    t(ok, "multipart/byteranges of the 20 MiB file byte-exact", r)
    r = fetch(port, "/big.bin", [("Range", "bytes=0-"), ("If-Range", etag_of(os.path.join(root, "big.bin")))])
    t(r.status == 206 and hashlib.sha256(r.body).digest() == hashlib.sha256(big).digest()
      and r.h.get("content-range") == "bytes 0-%d/%d" % (len(big) - 1, len(big)),
      "bytes=0- of the 20 MiB file -> 206 whole file", (r.status, r.hl))


def check_precompressed(port, root):
    d = os.path.join(root, "pre")
    text, gz, br, zst = (fbytes(d, x) for x in ["text.txt", "text.txt.gz", "text.txt.br", "text.txt.zst"])
    ident_et = etag_of(os.path.join(d, "text.txt"))
    ets = {"gzip": etag_of(os.path.join(d, "text.txt.gz")), "br": etag_of(os.path.join(d, "text.txt.br")),
           "zstd": etag_of(os.path.join(d, "text.txt.zst"))}
    blobs = {"gzip": gz, "br": br, "zstd": zst, None: text}

    def enc(ae, want, name, path="/pre/text.txt"):
        hdrs = [] if ae is None else [("Accept-Encoding", ae)]
        r = fetch(port, path, hdrs)
        ok = (r.status == 200 and r.h.get("vary") == "Accept-Encoding" and
              r.h.get("content-type") == "text/plain; charset=utf-8" and
              r.h.get("content-encoding") == want and r.body == blobs[want] and
              r.h.get("etag") == (ets[want] if want else ident_et) and
              r.h.get("content-length") == str(len(blobs[want])))
        t(ok, name, r)
        return r

    enc(None, None, "precompressed: no Accept-Encoding -> identity, Vary: Accept-Encoding")
    enc("gzip", "gzip", "Accept-Encoding: gzip -> file.gz, Content-Encoding: gzip, its own ETag")
    enc("br", "br", "Accept-Encoding: br -> file.br")
    enc("zstd", "zstd", "Accept-Encoding: zstd -> file.zst")
    enc("gzip, deflate, br, zstd", "br", "all codings equal -> br preferred")
    enc("zstd, gzip", "zstd", "zstd, gzip -> zstd preferred over gzip")
    enc("gzip;q=1.0, br;q=0.5, zstd;q=0.4", "gzip", "q-values: gzip;q=1 beats br;q=0.5")
    enc("br;q=0, zstd;q=0, gzip;q=0.1", "gzip", "q=0 excludes a coding")
    enc("gzip;q=0", None, "gzip;q=0 only -> identity")
    enc("identity", None, "Accept-Encoding: identity -> identity")
    enc("identity;q=1, gzip;q=0.5", None, "identity with a higher q than gzip -> identity")
    enc("*", "br", "Accept-Encoding: * -> br")
    enc("*;q=0.5, br;q=0", "zstd", "*;q=0.5, br;q=0 -> zstd")
    enc("GZIP", "gzip", "coding names are case-insensitive")
    enc("x-gzip", "gzip", "x-gzip is gzip")
    enc("deflate", None, "only an unavailable coding -> identity")
    enc("", None, "empty Accept-Encoding -> identity")
    t(len({ident_et, *ets.values()}) == 4, "the ETags of identity, gz, br and zst all differ",
      (ident_et, ets))

    r = fetch(port, "/pre/plain.txt", [("Accept-Encoding", "gzip, br")])
    t(r.status == 200 and "vary" not in r.h and "content-encoding" not in r.h
      and r.body == b"no variants here\n", "file without variants: no Vary, no Content-Encoding", r)
    r = fetch(port, "/pre/gzonly.txt", [("Accept-Encoding", "br, zstd")])
    t(r.status == 200 and r.h.get("vary") == "Accept-Encoding" and "content-encoding" not in r.h
      and r.body == fbytes(d, "gzonly.txt"), "only .gz exists, br/zstd asked -> identity with Vary", r)
    r = fetch(port, "/pre/gzonly.txt", [("Accept-Encoding", "gzip")])
    t(r.status == 200 and r.h.get("content-encoding") == "gzip" and
      gzip.decompress(r.body) == fbytes(d, "gzonly.txt"), "gzip variant decompresses to the file", r)

    r = fetch(port, "/pre/text.txt", [("Accept-Encoding", "gzip"), ("If-None-Match", ets["gzip"])])
    t(r.status == 304 and r.h.get("etag") == ets["gzip"] and r.h.get("vary") == "Accept-Encoding",
      "If-None-Match with the gz ETag and gzip accepted -> 304 with Vary", r)
    r = fetch(port, "/pre/text.txt", [("Accept-Encoding", "gzip"), ("If-None-Match", ident_et)])
    t(r.status == 200 and r.body == gz, "If-None-Match with the identity ETag, gzip accepted -> 200 gz", r)
    r = fetch(port, "/pre/text.txt", [("If-None-Match", ets["gzip"])])
    t(r.status == 200 and r.body == text, "If-None-Match with the gz ETag, no gzip -> 200 identity", r)
    r = fetch(port, "/pre/text.txt", [("Accept-Encoding", "gzip"), ("Range", "bytes=0-3")])
    t(r.status == 206 and r.h.get("content-encoding") == "gzip" and r.body == gz[:4]
      and r.h.get("content-range") == "bytes 0-3/%d" % len(gz),
      "Range with gzip: bytes of the .gz, Content-Range of its length", r)
    r = fetch(port, "/pre/text.txt.gz")
    t(r.status == 200 and r.body == gz and r.h.get("content-type") == "application/gzip"
      and "content-encoding" not in r.h, "the .gz asked for by name: application/gzip, no Content-Encoding", r)


def check_methods(port, root):
    c = Conn(port)
    try:
        c.send(req_bytes("HEAD", "/a.txt") + req_bytes("GET", "/a.txt"))
        h = c.response(head_only=True)
        g = c.response()
        hh = [(k, v) for k, v in h.hl if k.lower() != "date"]
        gh = [(k, v) for k, v in g.hl if k.lower() != "date"]
        t(h.status == 200 and hh == gh and g.body == A_TXT,
          "HEAD: same status and headers as GET, no body (next pipelined response intact)", (h, g))
        c.send(req_bytes("HEAD", "/big.bin") + req_bytes("GET", "/a.txt"))
        h = c.response(head_only=True)
        g = c.response()
        t(h.status == 200 and h.h.get("content-length") == str(20 << 20) and g.body == A_TXT,
          "HEAD of the 20 MiB file: Content-Length, no body", (h, g))
        c.send(req_bytes("HEAD", "/nothing") + req_bytes("GET", "/a.txt"))
        h = c.response(head_only=True)
        g = c.response()
        t(h.status == 404 and h.h.get("content-length") == "14" and g.body == A_TXT,
          "HEAD of a missing file: 404 headers, no body", (h, g))
    finally:
        c.close()
    r = fetch(port, "/a.txt", method="OPTIONS")
    t(r.status in (200, 204) and r.h.get("allow") == "GET, HEAD, OPTIONS" and r.body == b"",
      "OPTIONS -> Allow: GET, HEAD, OPTIONS", r)
    for m in ["POST", "PUT", "DELETE", "PATCH"]:
        r = fetch(port, "/a.txt", method=m, body=b"hello" if m in ("POST", "PUT") else b"")
        t(r.status == 405 and r.h.get("allow") == "GET, HEAD, OPTIONS" and r.body == b"405 Method Not Allowed\n",
          "%s -> 405 with Allow" % m, r)
    c = Conn(port)
    try:
        c.send(req_bytes("POST", "/a.txt", body=b"x" * 1000) + req_bytes("GET", "/a.txt"))
        r1, r2 = c.response(), c.response()
        t(r1.status == 405 and r2.status == 200 and r2.body == A_TXT,
          "after a 405 with a body the connection still serves the next request", (r1, r2))
    except Exception as e:
        t(False, "after a 405 with a body the connection still serves the next request", repr(e))
    finally:
        c.close()
    f = os.path.join(root, "a.txt")
    with open(f, "rb") as fh:
        before = fh.read()
    t(before == A_TXT, "PUT/DELETE did not change the file", before)


def check_files(port, root):
    big = fbytes(root, "big.bin")
    want = hashlib.sha256(big).hexdigest()
    t0 = time.monotonic()
    r = fetch(port, "/big.bin")
    t(r.status == 200 and r.h.get("content-length") == str(len(big)) and
      hashlib.sha256(r.body).hexdigest() == want, "20 MiB file byte-exact (sha256)",
      (r.status, r.hl, len(r.body), time.monotonic() - t0))
    results = [None] * 3

    def dl(i):
        try:
            results[i] = hashlib.sha256(fetch(port, "/big.bin").body).hexdigest()
        except Exception as e:
            results[i] = repr(e)
    th = [threading.Thread(target=dl, args=(i,)) for i in range(3)]
    for x in th:
        x.start()
    # small requests are answered while the big ones are sent
    small_ok = all(fetch(port, "/a.txt").body == A_TXT for _ in range(5))
    for x in th:
        x.join(30)
    t(results == [want] * 3, "three concurrent 20 MiB downloads byte-exact", results)
    t(small_ok, "small files answered during big downloads")
    for name in ["s65536.bin", "s65537.bin", "r.bin", "img.png"]:
        data = fbytes(root, name)
        rs = []
        c = Conn(port)
        try:
            for _ in range(3):   # the first fills the cache, the next come from it
                c.send(req_bytes("GET", "/" + name))
                rs.append(c.response())
        finally:
            c.close()
        t(all(r.status == 200 and r.body == data and r.h.get("content-length") == str(len(data)) for r in rs),
          "%s (%d bytes) byte-exact three times on one connection" % (name, len(data)), rs[0])


def check_rcache(port, root, log):
    """The response cache (--response-cache, on by default): repeated GETs of a small file on
    one connection (one worker) come from it; what must not, does not; every hit is logged."""
    et = etag_of(os.path.join(root, "a.txt"))
    c = Conn(port)
    rs = []
    try:
        for hdrs in [(), (), (), (("If-None-Match", et),), (("Range", "bytes=0-1"),),
                     (("If-Modified-Since", lastmod_of(os.path.join(root, "a.txt"))),), ()]:
            c.send(req_bytes("GET", "/a.txt?rc-log", hdrs))
            rs.append(c.response())
        c.send(req_bytes("HEAD", "/a.txt?rc-log"))
        rs.append(c.response(head_only=True))
    finally:
        c.close()
    t(all(r.status == 200 and r.body == A_TXT and r.h.get("etag") == et and "date" in r.h
          for r in rs[:3] + rs[6:7]), "the same GET three times on one connection: the same "
      "response each time (the later ones from the response cache)", rs[:3])
    t(rs[3].status == 304 and rs[4].status == 206 and rs[4].body == A_TXT[:2] and
      rs[5].status == 304, "conditional and Range requests after hits are still evaluated "
      "(304, 206, 304)", rs[3:6])
    t(rs[7].status == 200 and rs[7].body == b"" and
      rs[7].h.get("content-length") == str(len(A_TXT)), "HEAD after hits: the length, no body",
      rs[7])
    lines = wait_for(lambda: [l for l in read_text(log).splitlines() if "rc-log" in l]
                     if len([l for l in read_text(log).splitlines() if "rc-log" in l]) >= 8
                     else None, 3)
    t(lines and len(lines) == 8 and sum('" 200 ' in l for l in lines) == 5,
      "every response is in the access log, hits included (8 lines, five 200)", lines)


def check_fresh(port, root):
    p = os.path.join(root, "change.txt")
    q = os.path.join(root, "replace.txt")
    gone = os.path.join(root, "doomed.txt")
    newf = os.path.join(root, "new.txt")
    late = b"".join(b"late variant %d\n" % i for i in range(100))
    late_gz = gzip.compress(late, mtime=0)
    write(os.path.join(root, "pre", "late.txt"), late)
    write(os.path.join(root, "pre", "gone.txt"), late)
    write(os.path.join(root, "pre", "gone.txt.gz"), late_gz)
    gz = [("Accept-Encoding", "gzip")]
    for _ in range(4):     # fill the caches of both workers
        for x in ["/change.txt", "/replace.txt", "/doomed.txt", "/new.txt"]:
            fetch(port, x)
        fetch(port, "/pre/late.txt", gz), fetch(port, "/pre/gone.txt", gz)
        fetch(port, "/pre/late.txt"), fetch(port, "/pre/gone.txt")
    plain = [fetch(port, "/pre/late.txt"), fetch(port, "/pre/gone.txt")]
    old_et = etag_of(p)
    time.sleep(0.02)
    with open(p, "r+b") as f:              # rewrite in place (same inode)
        f.write(b"version two, longer\n")
    tmpf = q + ".tmp"
    write(tmpf, b"new content!\n")
    os.replace(tmpf, q)                    # atomic replacement (new inode)
    os.unlink(gone)
    write(newf, b"brand new\n")
    write(os.path.join(root, "pre", "late.txt.gz"), late_gz)
    os.unlink(os.path.join(root, "pre", "gone.txt.gz"))
    t_mod = time.monotonic()
    new_et, new_q_et = etag_of(p), etag_of(q)

    def fresh():
        return all(fetch(port, "/change.txt").body == b"version two, longer\n" for _ in range(2))
    wait_for(fresh, 1.5, 0.05)
    first = time.monotonic() - t_mod
    # every worker revalidates an entry at most 1 s after it last checked it (before the change)
    time.sleep(max(0.0, t_mod + 1.5 - time.monotonic()))
    rs = [fetch(port, "/change.txt") for _ in range(6)]
    t(all(r.h.get("etag") == new_et and r.body == b"version two, longer\n" for r in rs) and old_et != new_et,
      "file rewritten in place: new content and ETag from every worker 1.5 s after the change "
      "(first seen after %.2f s)" % first, rs)
    rs = [fetch(port, "/replace.txt") for _ in range(6)]
    t(all(r.h.get("etag") == new_q_et and r.body == b"new content!\n" for r in rs),
      "file replaced by rename: new content and ETag within 1.5 s", rs)
    rs = [fetch(port, "/doomed.txt") for _ in range(6)]
    t(all(r.status == 404 for r in rs), "deleted file -> 404 within 1.5 s", rs)
    rs = [fetch(port, "/new.txt") for _ in range(6)]
    t(all(r.status == 200 and r.body == b"brand new\n" for r in rs),
      "file created after a 404 is served within 1.5 s", rs)
    rs = [fetch(port, "/pre/gone.txt", gz) for _ in range(6)]
    t(all(r.status == 200 and r.body == late and "content-encoding" not in r.h for r in rs),
      "precompressed .gz deleted -> identity within 1.5 s", rs)
    rs = [fetch(port, "/pre/late.txt", gz) for _ in range(6)]
    t(all(r.body == late_gz and r.h.get("content-encoding") == "gzip" and r.h.get("vary") == "Accept-Encoding"
          for r in rs), "a .gz created next to an already served file is used within 1.5 s", rs[0])
    # the fields of a whole 200 are prepared once per cache entry (files.c plain_fields):
    # Vary must follow the variants that exist now, not those of the first response
    rs = [fetch(port, "/pre/late.txt") for _ in range(6)]
    t("vary" not in plain[0].h and
      all(r.body == late and "content-encoding" not in r.h and r.h.get("vary") == "Accept-Encoding"
          for r in rs), "identity response gains Vary: Accept-Encoding when a .gz appears", rs[0])
    rs = [fetch(port, "/pre/gone.txt") for _ in range(6)]
    t(plain[1].h.get("vary") == "Accept-Encoding" and
      all(r.body == late and "vary" not in r.h for r in rs),
      "identity response loses Vary when its only variant is deleted", rs[0])


CLF = re.compile(r'^(\S+) (\S+) (\S+) \[(\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] '
                 r'"((?:[^"\\]|\\.)*)" (\d{3}) (\d+|-) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"$')


def check_log_format(log, port):
    proto = "HTTP/2.0" if H2 else "HTTP/1.1"   # as nginx writes HTTP/2 requests
    ua = 'pt-test/1.0 "quoted" agent'
    ref = "http://ref.example/page?x=1"
    fetch(port, "/a.txt?log-get", [("User-Agent", ua), ("Referer", ref)])
    fetch(port, "/a.txt?log-head", method="HEAD")
    fetch(port, "/missing?log-404")
    t0 = time.monotonic()
    got = wait_for(lambda: all(s in read_text(log) for s in ["log-get", "log-head", "log-404"]), 2.5)
    t(got, "access log lines appear within ~2 s (%.2f s)" % (time.monotonic() - t0), read_text(log))
    lines = read_text(log).splitlines()
    bad = [l for l in lines if not CLF.match(l)]
    t(lines and not bad, "every access log line matches the Combined Log Format", bad[:5] or lines)
    line = next((l for l in lines if "log-get" in l), "")
    m = CLF.match(line)
    ok = False
    if m:
        try:
            ts = datetime.strptime(m.group(4), "%d/%b/%Y:%H:%M:%S %z")
            age = abs((datetime.now(timezone.utc) - ts).total_seconds())
        except ValueError:
            age = 1e9
        ok = (m.group(1) == "127.0.0.1" and m.group(2) == "-" and m.group(3) == "-" and age < 120 and
              m.group(5) == "GET /a.txt?log-get " + proto and m.group(6) == "200" and
              m.group(7) == "6" and m.group(8) == ref and
              m.group(9) in ('pt-test/1.0 \\"quoted\\" agent', "pt-test/1.0 \\x22quoted\\x22 agent"))
    t(ok, "log line fields: client, time, request line, status, bytes, Referer, escaped User-Agent", line)
    line = next((l for l in lines if "log-head" in l), "")
    m = CLF.match(line)
    t(m and m.group(5) == "HEAD /a.txt?log-head " + proto and m.group(6) == "200" and m.group(7) in ("0", "-")
      and m.group(8) == "-" and m.group(9) == "-", "HEAD logged with 0 bytes and - for absent fields", line)
    line = next((l for l in lines if "log-404" in l), "")
    m = CLF.match(line)
    t(m and m.group(6) == "404" and m.group(7) == "14", "404 logged with its status and body size", line)


def check_sighup(srv, log):
    rotated = log + ".1"
    os.rename(log, rotated)
    srv.signal(signal.SIGHUP)
    ok = wait_for(lambda: os.path.exists(log), 2)
    t(ok, "SIGHUP: the access log is reopened at its path (file recreated)")
    time.sleep(0.1)
    fetch(srv.port, "/a.txt?after-hup")
    got = wait_for(lambda: "after-hup" in read_text(log), 2.5)
    t(got and "after-hup" not in read_text(rotated),
      "after SIGHUP new lines go to the new file, not the renamed one",
      (read_text(log), read_text(rotated)[-300:]))
    t(srv.p.poll() is None, "SIGHUP does not stop the server")


def check_cli(tmp, root):
    def run(args, timeout=10):
        p = subprocess.run([PORTICO] + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=timeout)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")

    rc, out, err = run(["--no-such-flag", root])
    t(rc == 2 and "--no-such-flag" in err, "unknown flag: exit 2, message names it", (rc, err))
    rc, out, err = run(["-Z", root])
    t(rc == 2 and "-Z" in err, "unknown short flag: exit 2, message names it", (rc, err))
    rc, out, err = run(["--workers", "lots", root])
    t(rc == 2 and "--workers" in err and "lots" in err, "bad value: exit 2, message names the option and value", (rc, err))
    rc, out, err = run(["-l", "127.0.0.1:99999", root])
    t(rc == 2 and "99999" in err, "bad listen port: exit 2, message names it", (rc, err))
    rc, out, err = run(["--cache-control", "a\nb", root])
    t(rc == 2 and "--cache-control" in err, "control character in --cache-control: exit 2", (rc, err))
    rc, out, err = run(["--autoindex=maybe", root])
    t(rc == 2 and "--autoindex" in err and "maybe" in err, "bad on/off value: exit 2", (rc, err))
    rc, out, err = run(["--workers", root])
    t(rc == 2, "option missing its value: exit 2", (rc, err))
    rc, out, err = run([root, root])
    t(rc == 2 and "DOCROOT" in err, "two docroots: exit 2", (rc, err))
    missing = os.path.join(tmp, "no-such-dir")
    rc, out, err = run(["-l", "127.0.0.1:0", missing])
    t(rc == 1 and missing in err and "No such file or directory" in err,
      "missing docroot: exit 1 with a clear message", (rc, err))
    rc, out, err = run(["-l", "127.0.0.1:0", os.path.join(root, "a.txt")])
    t(rc == 1 and "a.txt" in err and "Not a directory" in err, "docroot that is a file: exit 1", (rc, err))
    rc, out, err = run(["--version"])
    t(rc == 0 and re.match(r"^portico \S+\n$", out) is not None and err == "", "--version: exit 0, one line", (rc, out, err))
    rc, help_out, err = run(["--help"])
    t(rc == 0 and help_out.startswith("Usage: portico") and err == "", "--help: exit 0, usage on stdout", (rc, err))
    rc2, out2, _ = run(["-h"])
    t(rc2 == 0 and out2 == help_out, "-h prints the same help", rc2)
    help_opts = set(re.findall(r"^\s+(?:-\w, )?--([a-z][a-z0-9-]*)", help_out, re.M))
    man = os.path.join(REPO, "docs", "portico.1")
    if os.path.exists(man):
        text = read_text(man).splitlines()
        man_opts = set()
        for i, l in enumerate(text[:-1]):
            if l.strip() == ".TP" and i < len(text) - 1:
                for m in re.finditer(r"\\-\\-((?:[a-z0-9]|\\-)+)", text[i + 1]):
                    man_opts.add(m.group(1).replace("\\-", "-"))
        t(man_opts and man_opts == help_opts,
          "every long option of docs/portico.1 is in --help and vice versa (%d options)" % len(help_opts),
          "only in man: %s; only in help: %s" % (sorted(man_opts - help_opts), sorted(help_opts - man_opts)))
    else:
        skip("--help and docs/portico.1 list the same options", "no docs/portico.1")


def check_curl(port, root):
    if not os.access(CURL, os.X_OK):
        for name in ["curl -sf", "curl --compressed", "curl -r 0-9", "curl -sf on 404"]:
            skip(name, "no " + CURL)
        return
    base = "%s://%s:%d" % (SCHEME, "localhost" if TLS else "127.0.0.1", port)
    tls_args = ["--cacert", os.environ["PT_TLS_CA"]] if TLS else []
    if H2:
        tls_args.append("--http2" if TLS else "--http2-prior-knowledge")

    def curl(*args):
        p = subprocess.run([CURL, "-s", "--max-time", "20"] + tls_args + list(args), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=30)
        return p.returncode, p.stdout
    rc, out = curl("-f", base + "/")
    t(rc == 0 and out == HOME, "curl -sf / gets index.html", (rc, out[:100]))
    rc, out = curl("-f", "-D", "-", "--compressed", base + "/pre/gzonly.txt")
    head, _, body = out.partition(b"\r\n\r\n")
    t(rc == 0 and re.search(rb"(?im)^content-encoding: gzip\r?$", head) is not None
      and body == fbytes(root, "pre/gzonly.txt"), "curl --compressed picks the .gz and decodes it", (rc, head))
    rc, out = curl("-f", "-r", "0-9", base + "/r.bin")
    t(rc == 0 and out == fbytes(root, "r.bin")[:10], "curl -r 0-9 gets the first 10 bytes", (rc, out))
    rc, out = curl("-f", "-o", "/dev/null", "-w", "%{http_code}", base + "/nope")
    t(rc == 22 and out == b"404", "curl -sf on a missing file fails with 404", (rc, out))
    rc, out = curl("-f", "-I", base + "/a.txt")
    t(rc == 0 and re.search(rb"(?im)^content-length: 6\r?$", out) is not None, "curl -I (HEAD) works", (rc, out))
    rc, out = curl("-f", base + "/big.bin")
    t(rc == 0 and hashlib.sha256(out).digest() == hashlib.sha256(fbytes(root, "big.bin")).digest(),
      "curl downloads the 20 MiB file byte-exact", rc)


def check_backend_line(srv):
    if BACKEND in ("uring", "epoll"):
        want = "io_uring backend" if BACKEND == "uring" else "epoll backend"
        t(want in srv.announce, "PORTICO_BACKEND=%s is used (%s)" % (BACKEND, want), srv.announce)


def isolated(tmp, name, docroot, opts, fn, what):
    """Runs fn(server) on a server of its own, then stops it and checks its exit. Returns its
    stdout."""
    try:
        srv = Server(tmp, name, docroot, opts)
    except Exception:
        t(False, "%s starts" % what, traceback.format_exc())
        return ""
    section(what, fn, srv)
    rc, secs, err = srv.stop()
    t(rc == 0 and sanitizer_clean(err), "%s exits 0 after SIGTERM, no sanitizer report" % what,
      (rc, err[-3000:]))
    return read_text(srv.out)


def section(name, fn, *args):
    try:
        fn(*args)
    except Exception:
        t(False, "%s: completed without an exception" % name, traceback.format_exc())


def main(run=None, binary=PORTICO):
    """Runs run(tmp) (run_all by default: tests/win/portico_win.py passes its own) in a
    temporary directory, then stops every server left; 0 if every check passed."""
    if not os.access(binary, os.R_OK):
        t(False, "portico binary exists", binary)
        return 1
    tmp = tempfile.mkdtemp(prefix="pt-portico-")
    try:
        (run or run_all)(tmp)
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


def run_all(tmp):
    root, rootlink, outside = build_tree(tmp)
    log = os.path.join(tmp, "access.log")
    cc = "public, max-age=60"

    if not H2:                     # the command line does not change over HTTP/2
        section("cli", check_cli, tmp, root)

    # Server A: defaults, plus Cache-Control and an access log.
    # The 20 MiB download at the graceful stop below is not read from its head until the
    # signal: --min-send-rate off, else on a loaded machine (a slow fetch before the signal)
    # the client's silence of 2 to 4 s is a MinSendRate violation and the download is reset
    # (one cause of the flaky HTTP/2 run of that check); --shutdown-timeout 10: it must
    # finish even at 2 MB/s (HTTP/2 under ASan on a loaded machine reads at a few MB/s), and
    # the stop below waits 15 s (an HTTP/2 connection whose client never closes lingers in
    # the engine's graceful close until the deadline).
    a = Server(tmp, "a", root, ["--cache-control", cc, "--access-log", log,
                                "--shutdown-timeout", "10", "--min-send-rate", "off"])
    first = "portico: serving %s at %s://127.0.0.1:%d/" % (root, SCHEME, a.port)
    t(a.announce.startswith(first) if not TLS else "\n" + first + "\n" in "\n" + a.announce,
      "start-up line names the docroot and port", a.announce)
    check_backend_line(a)
    section("basic", check_basic, a.port, root, cc)
    section("mime", check_mime, a.port)
    section("paths", check_paths, a.port)
    section("dotfiles", check_dotfiles, a.port)
    section("special", check_special, a.port)
    section("symlinks", check_symlinks, a.port, False)
    section("dirs", check_dirs, a.port, False, root)
    section("conditional", check_conditional, a.port, root, cc)
    section("ranges", check_ranges, a.port, root)
    section("precompressed", check_precompressed, a.port, root)
    section("methods", check_methods, a.port, root)
    section("files", check_files, a.port, root)
    section("rcache", check_rcache, a.port, root, log)
    section("curl", check_curl, a.port, root)
    section("log", check_log_format, log, a.port)
    section("sighup", check_sighup, a, log)

    # Server B: docroot given as a symlink, --autoindex, --follow-symlinks, no Cache-Control.
    b = Server(tmp, "b", rootlink, ["--autoindex", "--follow-symlinks", "--shutdown-timeout", "1"])
    t("serving %s at" % rootlink in b.announce, "docroot that is a symlink: server starts", b.announce)
    r = fetch(b.port, "/a.txt")
    t(r.status == 200 and r.body == A_TXT and "cache-control" not in r.h,
      "docroot that is a symlink: files served (no Cache-Control by default)", r)
    section("b-paths", check_paths, b.port)
    section("b-symlinks", check_symlinks, b.port, True)
    section("b-dirs", check_dirs, b.port, True, root)
    section("b-dotfiles", check_dotfiles, b.port)
    section("b-fresh", check_fresh, b.port, root)

    # Server C: --autoindex with a docroot without index.html, and the access log on stdout.
    # (Each directory is listed only once per worker here: see server D.)
    cdoc = os.path.join(tmp, "cdoc")
    write(os.path.join(cdoc, "x.txt"), b"x\n")
    write(os.path.join(cdoc, "s", "y.txt"), b"y\n")
    names = [(x.encode(), False) for x in ["plain.txt", ODD_NAME, "\u00e9t\u00e9.txt"]] + [(b"d&ir", True)]

    def c_checks(c):
        r = fetch(c.port, "/?c-listing", [("User-Agent", "c-agent")])
        t(r.status == 200 and r.body == listing(b"/", [(b"x.txt", False), (b"s", True)]),
          "--autoindex: listing of the docroot itself", r)
        h = fetch(c.port, "/s/", method="HEAD")
        t(h.status == 200 and h.h.get("content-length") == str(len(listing(b"/s", [(b"y.txt", False)])))
          and h.h.get("content-type") == "text/html; charset=utf-8" and h.body == b"",
          "HEAD of a listing: Content-Type, Content-Length, no body", h)
    out = isolated(tmp, "c", cdoc, ["--autoindex", "--access-log", "-"], c_checks, "autoindex server")
    line = next((l for l in out.splitlines() if "c-listing" in l), "")
    m = CLF.match(line)
    t(m is not None and m.group(5) == "GET /?c-listing " + ("HTTP/2.0" if H2 else "HTTP/1.1") and m.group(9) == "c-agent",
      "--access-log -: Combined Log Format lines on stdout, flushed at exit", out[-500:])

    # Server D: the same directory listed several times by one worker.
    def d_checks(d):
        want = listing(b"/list/", names)
        alt = listing(b"/list", names)
        rs = []
        c = Conn(d.port)
        try:
            for _ in range(3):
                c.send(req_bytes("GET", "/list/"))
                rs.append(c.response())
        except Exception as e:
            rs.append(repr(e))
        finally:
            c.close()
        t(all(not isinstance(r, str) and r.status == 200 and r.body in (want, alt) for r in rs) and len(rs) == 3,
          "--autoindex: a directory listed three times on one connection lists its files every time", rs)
    isolated(tmp, "d", root, ["--autoindex"], d_checks, "repeated-listing server")

    # Server E: an empty directory listed.
    def e_checks(e):
        try:
            r = fetch(e.port, "/list/d%26ir/")
        except Exception as ex:
            r = repr(ex)
        t(not isinstance(r, str) and r.status == 200 and
          r.body in (listing(b"/list/d&ir/", []), listing(b"/list/d&ir", [])),
          "--autoindex: empty directory listing (title escaped)", r)
    isolated(tmp, "e", root, ["--autoindex"], e_checks, "empty-listing server")

    # Server F: the slash redirect of a directory with a long query string.
    def f_checks(f):
        q = "q=" + "A" * 5000
        try:
            r = fetch(f.port, "/sub?" + q)
        except Exception as ex:
            r = repr(ex)
        t(not isinstance(r, str) and ((r.status == 301 and r.h.get("location") == "/sub/?" + q) or r.status == 414),
          "directory redirect with a 5000-byte query: 301 keeping it whole (or 414)",
          r if isinstance(r, str) else (r.status, r.h.get("location", "")[:80], len(r.h.get("location", ""))))
        try:
            r = fetch(f.port, "/a.txt")
        except Exception as ex:
            r = repr(ex)
        t(not isinstance(r, str) and r.status == 200, "server still answers after the long redirect", r)
    isolated(tmp, "f", root, [], f_checks, "long-redirect server")

    # Graceful stop of A: a keep-alive connection idle, a big download in progress (read by a
    # thread while the server stops), and a log line written just before the signal.
    idle = Conn(a.port)
    idle.send(req_bytes("GET", "/a.txt"))
    r = idle.response()
    dl = Download(a.port, "/big.bin?during-stop", [("User-Agent", "stopper")])
    fetch(a.port, "/a.txt?before-term")
    t0 = time.monotonic()
    a.signal(signal.SIGTERM)
    dl.start()
    t(r.status == 200 and idle.closed(3), "SIGTERM closes an idle keep-alive connection",
      "%.2f s" % (time.monotonic() - t0))
    body, dl_err = dl.finish(30)
    rc, _, err = a.stop()
    secs = time.monotonic() - t0
    big = fbytes(root, "big.bin")
    t(rc == 0 and sanitizer_clean(err),
      "SIGTERM with a keep-alive connection and a download open: exit 0, no sanitizer report (%.2f s)" % secs,
      (rc, err[-3000:]))
    t(dl.head.status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(big).digest(),
      "graceful stop lets the 20 MiB download in progress finish byte-exact", (len(body), dl_err))
    idle.close()
    logtxt = read_text(log)
    t("before-term" in logtxt, "access log line written just before SIGTERM is flushed on exit", logtxt[-500:])
    t("GET /big.bin?during-stop %s\" 200 %d" % ("HTTP/2.0" if H2 else "HTTP/1.1", len(big)) in logtxt,
      "the download in progress at SIGTERM is logged with its size", logtxt[-500:])

    # Stop of B with a client that does not read a 20 MiB response: --shutdown-timeout 1.
    stall = Conn(b.port)
    stall.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    stall.send(req_bytes("GET", "/big.bin"))
    stall.read_until(b"\r\n\r\n")
    time.sleep(0.2)
    rc, secs, err = b.stop()
    stall.close()
    t(rc == 0 and sanitizer_clean(err) and secs < 6,
      "SIGTERM with a stalled 20 MiB response: exit 0 after --shutdown-timeout 1 (%.2f s), no leaks" % secs,
      (rc, err[-3000:]))


if __name__ == "__main__":
    sys.exit(main())
