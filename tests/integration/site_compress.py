#!/usr/bin/env python3
"""Sites (issue 17), part 3: `compress` over real sockets. The first request for a file gets
the identity body (compression runs on the server's own threads, never on the request path)
with Vary: Accept-Encoding; then brotli, zstd and gzip copies chosen by Accept-Encoding
q-values, each decompressed (brotli and zstd command-line tools, Python's gzip) and compared
byte for byte; each copy's own strong ETag (304 on it, 200 on the identity tag); HEAD; byte
ranges and multipart ranges of the compressed representation, If-Range; precompressed
files on disk winning; types not listed, tiny files and sites without compress untouched; a
changed file compressed again. Runs once per backend.
"""
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ptest import t, skip, failures  # noqa: E402
from site_config import Server, get, write  # noqa: E402

CONF = """listen 127.0.0.1:0
compress-cache 32m
host example.org {{
    root {root}/a
    compress text/html text/css application/javascript
}}
host plain.test {{
    root {root}/a
}}
"""


def js_text(n, seed=0):
    out, i = [], 0
    while sum(len(x) for x in out) < n:
        out.append("function f%d_%d(a, b) { return a * %d + b; } // portico\n" % (seed, i, i % 97))
        i += 1
    return "".join(out)[:n].encode()


def decode(enc, body):
    if enc == "gzip":
        return gzip.decompress(body)
    tool = {"br": ["brotli", "-d", "-c"], "zstd": ["zstd", "-d", "-c", "-q"]}[enc]
    return subprocess.run(tool, input=body, stdout=subprocess.PIPE, check=True, timeout=60).stdout


def wait_coded(port, path, ae, enc, host="example.org", timeout=20):
    """Asks until the response is coded enc (the copy is ready); returns it, or the last one."""
    deadline = time.monotonic() + timeout
    while True:
        r = get(port, path, host, hdrs=[("Accept-Encoding", ae)])
        if r.h.get("content-encoding") == enc or time.monotonic() > deadline:
            return r
        time.sleep(0.05)


def check_first(port, big):
    t0 = time.monotonic()
    r = get(port, "/big.js", hdrs=[("Accept-Encoding", "br, gzip")])
    took = time.monotonic() - t0
    t(r.status == 200 and "content-encoding" not in r.h and r.body == big and
      r.h.get("vary") == "Accept-Encoding",
      "first request: the identity body at once (%.3f s for 3 MiB), Vary: Accept-Encoding" % took, r)


def check_codings(port, js):
    for ae, enc in [("gzip, deflate, br", "br"), ("zstd", "zstd"), ("gzip", "gzip"),
                    ("gzip;q=0.5, br;q=0.1", "gzip"), ("x-gzip", "gzip")]:
        r = wait_coded(port, "/app.js", ae, enc)
        ok = r.status == 200 and r.h.get("content-encoding") == enc
        same = ok and decode(enc, r.body) == js
        t(ok and same and len(r.body) < len(js) // 3 and r.h.get("vary") == "Accept-Encoding" and
          r.h.get("etag", "").endswith('-%s"' % {"br": "br", "zstd": "zst", "gzip": "gz"}[enc]),
          "Accept-Encoding %r: %s, decompressed equal (%d -> %d bytes), own ETag" %
          (ae, enc, len(js), len(r.body)), r)
    for ae in [None, "identity", "br;q=0, gzip;q=0, zstd;q=0"]:
        r = get(port, "/app.js", hdrs=[("Accept-Encoding", ae)] if ae else [])
        t(r.status == 200 and "content-encoding" not in r.h and r.body == js and
          r.h.get("vary") == "Accept-Encoding", "Accept-Encoding %r: identity, with Vary" % ae, r)


def check_validators(port, js):
    br = wait_coded(port, "/app.js", "br", "br")
    ident = get(port, "/app.js")
    tag, itag = br.h.get("etag"), ident.h.get("etag")
    t(tag and itag and tag != itag and tag.startswith(itag[:-1]), "copy and file have different strong tags",
      (tag, itag))
    r = get(port, "/app.js", hdrs=[("Accept-Encoding", "br"), ("If-None-Match", tag)])
    t(r.status == 304 and r.h.get("etag") == tag, "If-None-Match with the copy's tag: 304", r)
    r = get(port, "/app.js", hdrs=[("Accept-Encoding", "br"), ("If-None-Match", itag)])
    t(r.status == 200 and r.h.get("content-encoding") == "br", "the identity tag does not match the copy", r)
    r = get(port, "/app.js", method="HEAD", hdrs=[("Accept-Encoding", "br")])
    t(r.status == 200 and r.h.get("content-length") == str(len(br.body)) and r.body == b"",
      "HEAD: the copy's length", r)
    r = get(port, "/app.js", hdrs=[("Accept-Encoding", "br"), ("Range", "bytes=0-99")])
    t(r.status == 206 and r.h.get("content-encoding") == "br" and r.body == br.body[:100] and
      r.h.get("content-range") == "bytes 0-99/%d" % len(br.body), "Range on the copy", r)
    r = get(port, "/app.js", hdrs=[("Accept-Encoding", "br"), ("Range", "bytes=-10"), ("If-Range", tag)])
    t(r.status == 206 and r.body == br.body[-10:], "If-Range with the copy's tag: 206", r)
    r = get(port, "/app.js", hdrs=[("Accept-Encoding", "br"), ("Range", "bytes=0-9,200-209")])
    ok = r.status == 206 and r.h.get("content-type", "").startswith("multipart/byteranges")
    t(ok and br.body[:10] in r.body and br.body[200:210] in r.body, "multipart ranges of the copy", r)
    r = get(port, "/app.js", hdrs=[("Accept-Encoding", "br"), ("Range", "bytes=%d-" % (len(br.body) + 5))])
    t(r.status == 416 and r.h.get("content-range") == "bytes */%d" % len(br.body), "416 against the copy's length", r)


def check_others(port, root, js):
    with open(root + "/a/pre.js.gz", "rb") as f:
        pre = f.read()
    r = wait_coded(port, "/pre.js", "br, gzip", "gzip")
    time.sleep(0.3)
    r = get(port, "/pre.js", hdrs=[("Accept-Encoding", "br, gzip")])
    t(r.status == 200 and r.h.get("content-encoding") == "gzip" and r.body == pre,
      "a precompressed file on disk wins over a copy", r)
    r = get(port, "/pic.png", hdrs=[("Accept-Encoding", "br")])
    t(r.status == 200 and "content-encoding" not in r.h and "vary" not in r.h, "a type not listed: as it is", r)
    r = get(port, "/tiny.css", hdrs=[("Accept-Encoding", "br")])
    time.sleep(0.3)
    r = get(port, "/tiny.css", hdrs=[("Accept-Encoding", "br")])
    t(r.status == 200 and "content-encoding" not in r.h and r.body == b"a{}\n" and r.h.get("vary"),
      "a tiny file: as it is (with Vary)", r)
    r = get(port, "/app.js", "plain.test", hdrs=[("Accept-Encoding", "br")])
    t(r.status == 200 and "content-encoding" not in r.h and "vary" not in r.h and r.body == js,
      "a site without compress: as it is", r)
    r = wait_coded(port, "/page.html", "br", "br")
    t(r.h.get("content-encoding") == "br" and decode("br", r.body) == js * 2, "text/html compressed", r)


def check_change(port, root):
    js2 = js_text(150000, seed=7)
    tmp = root + "/a/app.js.tmp"
    write(tmp, js2)
    os.replace(tmp, root + "/a/app.js")
    r = wait_coded(port, "/app.js", "zstd", "zstd")
    deadline = time.monotonic() + 10
    while decode("zstd", r.body) != js2 and time.monotonic() < deadline:
        time.sleep(0.1)
        r = wait_coded(port, "/app.js", "zstd", "zstd")
    t(r.h.get("content-encoding") == "zstd" and decode("zstd", r.body) == js2,
      "a changed file is compressed again (the new content)", r)


def run(tmp):
    for tool in ("brotli", "zstd"):
        if not shutil.which(tool):
            skip("compress", "no %s tool (scripts/deps.sh test installs it)" % tool)
            return
    root = os.path.join(tmp, "www")
    js = js_text(100 * 1024)
    big = js_text(3 << 20, seed=3)
    write(root + "/a/app.js", js)
    write(root + "/a/big.js", big)
    write(root + "/a/page.html", js * 2)
    write(root + "/a/pre.js", js)
    write(root + "/a/pre.js.gz", gzip.compress(js, 1))
    write(root + "/a/pic.png", bytes(range(256)) * 40)
    write(root + "/a/tiny.css", "a{}\n")
    s = Server(tmp, "compress", CONF.format(root=root))
    try:
        check_first(s.port, big)
        check_codings(s.port, js)
        check_validators(s.port, js)
        check_others(s.port, root, js)
        check_change(s.port, root)
    finally:
        s.stop()


def main():
    tmp = tempfile.mkdtemp(prefix="pt-site-compress.")
    try:
        run(tmp)
    except Exception:
        t(False, "no exception", traceback.format_exc())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failures() else 0)


if __name__ == "__main__":
    main()
