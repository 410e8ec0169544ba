#!/usr/bin/env python3
"""Sites (issue 17), part 1: the config file as the real binary reads it, and the helpers the
other site_*.py scripts share (a server started from a config file, a raw HTTP client).

Run as a test: `portico --check-config FILE` on the issue's example (exit 0, "configuration
OK"), on each kind of bad line (exit 2, "FILE:LINE: reason"), on a docroot that does not open
and a certificate that does not load (exit 2 naming FILE:LINE); a server started with a bad
file exits 2 with the same message, one with a missing block root exits 1.
Backend-independent, so run once.  pt-test: once
"""
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ptest import t, failures, read_text, sanitizer_clean, HttpConn, stop_process  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
B = os.environ.get("PT_BUILD") or os.path.join(REPO, "build", "san")
PORTICO = os.path.join(B, "portico")

EXAMPLE = """listen 127.0.0.1:0
listen-tls 127.0.0.1:0
tls-cert {cert}
tls-key {key}
host example.org www.example.org {{
    root {root}/example
    header /assets/ Cache-Control "public, max-age=31536000, immutable"
    header *.html Cache-Control "no-cache"
    header / X-Content-Type-Options nosniff
    error-page 404 /404.html
    fallback /index.html
    redirect 301 /old/ /new/
    compress text/html text/css application/javascript application/json image/svg+xml
    cors *
}}
host default {{
    root {root}/default
}}
"""


# ---- helpers shared by the site_*.py scripts ---------------------------------------------------

class Resp:
    def __init__(self, status, headers, body):
        self.status, self.hl, self.body = status, headers, body
        self.h = {}
        for k, v in headers:
            self.h.setdefault(k.lower(), v)

    def all(self, name):
        return [v for k, v in self.hl if k.lower() == name.lower()]

    def __repr__(self):
        return "%d %r body[%d]=%r" % (self.status, self.hl, len(self.body), self.body[:120])


class Conn(HttpConn):
    # 30 s: the machine running the tests may be shared and busy (sanitizer builds, 2 CPUs)
    def __init__(self, port, timeout=30, tls_ctx=None, sni=None):
        sock = None
        if tls_ctx is not None:
            raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
            sock = tls_ctx.wrap_socket(raw, server_hostname=sni)
        super().__init__(port, timeout, sock=sock)

    def request(self, target, host="example.org", method="GET", hdrs=()):
        h = "".join("%s: %s\r\n" % kv for kv in hdrs)
        hostline = "Host: %s\r\n" % host if host is not None else ""
        self.send(("%s %s HTTP/1.1\r\n%s%s\r\n" % (method, target, hostline, h)).encode("latin1"))
        return self.response(head_only=(method == "HEAD"))

    def response(self, head_only=False):
        head = self.read_until(b"\r\n\r\n").decode("latin1").split("\r\n")
        status = int(head[0].split()[1])
        hl = [tuple(x.strip() for x in line.split(":", 1)) for line in head[1:] if line]
        r = Resp(status, hl, b"")
        if not head_only and status not in (204, 304):
            r.body = self.read_n(int(r.h.get("content-length", "0")))
        return r


def get(port, target, host="example.org", method="GET", hdrs=(), tls_ctx=None, sni=None):
    c = Conn(port, tls_ctx=tls_ctx, sni=sni)
    try:
        return c.request(target, host, method, hdrs)
    finally:
        c.close()


class Server:
    """portico -c CONF (plus args), on 127.0.0.1 port 0; ports read from the start-up lines."""

    def __init__(self, tmp, name, conf_text, args=(), workers=2):
        self.conf = os.path.join(tmp, name + ".conf")
        self.write(conf_text)
        self.out = os.path.join(tmp, name + ".stdout")
        self.err = os.path.join(tmp, name + ".stderr")
        cmd = [PORTICO, "-w", str(workers), "-c", self.conf] + list(args)
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.p = subprocess.Popen(cmd, stdout=o, stderr=e, stdin=subprocess.DEVNULL)
        self.port = self.tls_port = None
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            txt = read_text(self.out)
            if "backend," in txt:
                m = re.search(r"^portico: serving .* at http://127\.0\.0\.1:(\d+)/$", txt, re.M)
                self.port = int(m.group(1)) if m else None
                m = re.search(r"^portico: serving .* at https://127\.0\.0\.1:(\d+)/$", txt, re.M)
                self.tls_port = int(m.group(1)) if m else None
                return
            if self.p.poll() is not None:
                break
            time.sleep(0.02)
        raise RuntimeError("portico did not start: %s" % read_text(self.err)[-2000:])

    def write(self, text):
        tmp = self.conf + ".new"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.conf)            # a reload never sees half a file

    def reload(self, want, timeout=10):
        """SIGHUP, then waits for the line containing want in the error log; returns it."""
        before = len(read_text(self.err))
        self.p.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            new = read_text(self.err)[before:]
            for line in new.splitlines():
                if want in line:
                    return line
            time.sleep(0.02)
        return None

    def stop(self):
        rc = stop_process(self.p)
        err = read_text(self.err)
        t(rc == 0 and sanitizer_clean(err), "%s: graceful stop, exit 0, sanitizers clean" %
          os.path.basename(self.conf), "rc=%s %s" % (rc, err[-3000:]))


def make_cert(d, name, sans):
    """A self-signed ECDSA certificate for the DNS names sans: (cert, key)."""
    cert, key = os.path.join(d, name + ".pem"), os.path.join(d, name + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=" + sans[0],
                    "-addext", "subjectAltName=" + ",".join("DNS:" + s for s in sans)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    return cert, key


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def site_tree(root):
    """The example's two docroots."""
    write(root + "/example/index.html", "<h1>example</h1>\n")
    write(root + "/example/404.html", "<h1>custom 404</h1>\n")
    write(root + "/example/assets/app.css", "body { color: red }\n" * 50)
    write(root + "/example/new/page.html", "new page\n")
    write(root + "/default/index.html", "default site\n")


# ---- the tests of this script ------------------------------------------------------------------

def check_config(conf_path):
    p = subprocess.run([PORTICO, "--check-config", conf_path], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=60)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


BAD_LINES = [
    ("host {", "needs at least one name"),
    ("host a.example", "expected 'host NAME... {'"),
    ("host a {\nhost b {", "blocks cannot nest"),
    ("}", "'}' without a host block"),
    ("host a {\n}\nhost a {\n}", "'a' is already used at line"),
    ("host default {\n}\nhost default {\n}", "a second default"),
    ("host a..b {\n}", "expected a host name without empty labels"),
    ("host a {\nworkers 2\n}", "workers: a server-wide setting, not allowed inside a host block"),
    ("host a {\nbogus x\n}", "unknown setting 'bogus'"),
    ("header /x/ Content-Length 1", "header: Content-Length is set by the server itself"),
    ("header /x/ Bad:Name v", "header: 'Bad:Name' is not a field name"),
    ("header x/y N v", "header: pattern 'x/y' is neither a path"),
    ("error-page 200 /x.html", "error-page: '200' is not a status from 400 to 599"),
    ("error-page 404 /../x.html", "error-page: '/../x.html': expected a valid path"),
    ("fallback index.html", "fallback: 'index.html': expected a path that starts with '/'"),
    ("redirect 305 /a /b", "redirect: '305' is not 301, 302, 303, 307 or 308"),
    ("redirect 301 a /b", "redirect: FROM 'a'"),
    ("compress text", "compress: 'text' is not a media type"),
    ("cors ftp:x", "cors: 'ftp:x' is not *, off or an origin"),
    ("workers many", "workers: invalid value 'many'"),
]


def run_checks(tmp):
    root = os.path.join(tmp, "www")
    site_tree(root)
    cert, key = make_cert(tmp, "ex", ["example.org", "www.example.org"])
    good = os.path.join(tmp, "good.conf")
    write(good, EXAMPLE.format(cert=cert, key=key, root=root))
    rc, out, err = check_config(good)
    t(rc == 0 and "portico: %s: configuration OK (2 sites)" % good in out,
      "--check-config: the example of issue 17 is good (exit 0)", (rc, out, err))
    # each kind of bad line, on line 3 (after two good lines)
    for i, (line, want) in enumerate(BAD_LINES):
        path = os.path.join(tmp, "bad%d.conf" % i)
        write(path, "# a comment\nworkers 2\n" + line + "\n")
        rc, out, err = check_config(path)
        m = re.search(r"%s:(\d+): (.*)" % re.escape(path), err)
        t(rc == 2 and m and int(m.group(1)) >= 3 and want in m.group(2) and not out,
          "--check-config: bad line %r: exit 2 with FILE:LINE: %s" % (line.split("\n")[-1], want),
          (rc, out, err))
    # a block root that does not exist: the line of its root
    path = os.path.join(tmp, "noroot.conf")
    write(path, "host a {\n  root %s/missing\n}\n" % tmp)
    rc, out, err = check_config(path)
    t(rc == 2 and "%s:2: docroot '%s/missing': No such file or directory" % (path, tmp) in err,
      "--check-config: a missing block root is FILE:LINE of its root line", (rc, err))
    # a certificate that does not load
    path = os.path.join(tmp, "nocert.conf")
    write(path, "listen-tls 127.0.0.1:0\ndocroot %s\nhost a {\n  tls-cert %s/none.pem\n"
          "  tls-key %s/none.key\n}\n" % (root, tmp, tmp))
    rc, out, err = check_config(path)
    t(rc == 2 and "%s:4:" % path in err and "none.pem" in err,
      "--check-config: a certificate that does not load: exit 2 naming FILE:LINE and the file",
      (rc, err))
    # a key without its certificate in a block
    path = os.path.join(tmp, "pair.conf")
    write(path, "docroot %s\nhost a {\n  tls-key %s\n}\n" % (root, key))
    rc, out, err = check_config(path)
    t(rc == 2 and "%s:2: host block: 0 tls-cert but 1 tls-key" % path in err,
      "--check-config: unpaired tls-key in a block: exit 2 with FILE:LINE", (rc, err))
    # starting with a bad file: exit 2 and the same message; a missing root: exit 1
    bad = os.path.join(tmp, "bad0.conf")
    p = subprocess.run([PORTICO, "-c", bad], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=60)
    t(p.returncode == 2 and ("%s:3: host: needs at least one name" % bad) in p.stderr.decode(),
      "start with a bad file: exit 2 with FILE:LINE", p.stderr)
    p = subprocess.run([PORTICO, "-c", os.path.join(tmp, "noroot.conf"), "-l", "127.0.0.1:0"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    t(p.returncode == 1 and b":2: docroot '" in p.stderr,
      "start with a missing block root: exit 1 with FILE:LINE", p.stderr)


def main():
    tmp = tempfile.mkdtemp(prefix="pt-site-config.")
    try:
        run_checks(tmp)
    except Exception:
        t(False, "no exception", traceback.format_exc())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failures() else 0)


if __name__ == "__main__":
    main()
