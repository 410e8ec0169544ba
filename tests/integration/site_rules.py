#!/usr/bin/env python3
"""Sites (issue 17), part 2: every per-site directive over real sockets, from the issue's
example config plus a wildcard block with its own certificate: the site chosen by Host
(exact, case, port, wildcards, default, no Host), header rules on 200, 206 and 304 (not on
errors), error pages (custom body with the original status, HEAD, 405 keeping Allow, a
missing page falling back to the built-in text), the SPA fallback (routes without an
extension only, conditional requests on it), redirects (prefix with the rest and the query,
the bare prefix, exact), CORS (*, a list of origins with Vary: Origin, preflights), and SNI
choosing the certificate by the names in the certificates. Runs once per backend.
"""
import os
import shutil
import ssl
import sys
import tempfile
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ptest import t, failures  # noqa: E402
from site_config import EXAMPLE, Server, get, make_cert, site_tree, write  # noqa: E402

EXTRA = """host *.other.test {{
    root {root}/other
    tls-cert {ocert}
    tls-key {okey}
    redirect 302 /go /there
    cors https://app.example https://b.example
    error-page 404 405 /err.html
    header /private/ Cache-Control no-store
}}
host nopage.test {{
    root {root}/default
    error-page 404 /nope.html
}}
"""


def check_hosts(port):
    for host, want in [("example.org", b"<h1>example</h1>\n"), ("WWW.Example.ORG:8080", b"<h1>example</h1>\n"),
                       ("example.org.", b"<h1>example</h1>\n"), ("a.other.test", b"other\n"),
                       ("x.y.other.test", b"other\n"), ("other.test", b"default site\n"),
                       ("unknown.example", b"default site\n")]:
        r = get(port, "/", host)
        t(r.status == 200 and r.body == want, "Host %s -> %r" % (host, want), r)
    r = get(port, "/", None)    # no Host: HTTP/1.1 requires one, the parser answers 400
    t(r.status == 400, "no Host field on HTTP/1.1: 400", r)


def check_headers(port):
    r = get(port, "/assets/app.css")
    t(r.status == 200 and r.h.get("cache-control") == "public, max-age=31536000, immutable"
      and r.h.get("x-content-type-options") == "nosniff" and len(r.all("cache-control")) == 1,
      "header: /assets/ prefix and / prefix on a 200", r)
    r = get(port, "/new/page.html")
    t(r.status == 200 and r.h.get("cache-control") == "no-cache" and r.h.get("x-content-type-options") == "nosniff",
      "header: *.html glob matches a file in a subdirectory", r)
    r = get(port, "/")
    t(r.h.get("cache-control") == "no-cache", "header: the index file's name matches *.html", r)
    etag = r.h.get("etag")
    r = get(port, "/", hdrs=[("If-None-Match", etag)])
    t(r.status == 304 and r.h.get("cache-control") == "no-cache" and r.h.get("x-content-type-options") == "nosniff",
      "header: rules on a 304", r)
    r = get(port, "/assets/app.css", hdrs=[("Range", "bytes=0-9")])
    t(r.status == 206 and r.body == b"body { col" and r.h.get("x-content-type-options") == "nosniff",
      "header: rules on a 206", r)
    r = get(port, "/missing.png")
    t(r.status == 404 and "x-content-type-options" not in r.h, "header: no rules on a 404", r)
    r = get(port, "/private/x.txt", "a.other.test")
    t(r.status == 200 and r.h.get("cache-control") == "no-store", "header: another site's rules", r)
    r = get(port, "/index.html", "a.other.test")
    t("cache-control" not in r.h and "x-content-type-options" not in r.h,
      "header: one site's rules do not leak to another", r)


def check_error_pages(port):
    r = get(port, "/missing.png")
    t(r.status == 404 and r.body == b"<h1>custom 404</h1>\n" and
      r.h.get("content-type", "").startswith("text/html") and "etag" not in r.h,
      "error-page 404: the file's body, status 404", r)
    r = get(port, "/missing.png", method="HEAD")
    t(r.status == 404 and r.h.get("content-length") == "20" and r.body == b"",
      "error-page on HEAD: the length, no body", r)
    r = get(port, "/.git/config")
    t(r.status == 404 and r.body == b"<h1>custom 404</h1>\n", "error-page for a dotfile's 404", r)
    r = get(port, "/x", "a.other.test", method="POST")
    t(r.status == 405 and r.body == b"oops\n" and r.h.get("allow") == "GET, HEAD, OPTIONS",
      "error-page 405 keeps Allow", r)
    r = get(port, "/missing", "nopage.test")
    t(r.status == 404 and r.body == b"404 Not Found\n", "error-page file missing: the built-in text", r)
    r = get(port, "/missing", "unknown.example")
    t(r.status == 404 and r.body == b"404 Not Found\n", "no error-page: the built-in text", r)


def check_fallback(port):
    r = get(port, "/app/some/route")
    t(r.status == 200 and r.body == b"<h1>example</h1>\n" and r.h.get("cache-control") == "no-cache",
      "fallback: a route without an extension gets /index.html, 200, its rules", r)
    r = get(port, "/app/some/route", hdrs=[("If-None-Match", r.h.get("etag", "x"))])
    t(r.status == 304, "fallback: conditional requests apply", r)
    r = get(port, "/app/route", method="HEAD")
    t(r.status == 200 and r.h.get("content-length") == "17" and r.body == b"", "fallback on HEAD", r)
    r = get(port, "/app/logo.png")
    t(r.status == 404 and r.body == b"<h1>custom 404</h1>\n", "fallback: a missing asset stays 404", r)
    r = get(port, "/assets/")
    t(r.status == 404, "fallback: a directory without an index stays 404", r)
    r = get(port, "/app/route", "unknown.example")
    t(r.status == 404, "fallback: not on a site without it", r)


def check_redirects(port):
    r = get(port, "/old/a/b.html?x=1&y=2")
    t(r.status == 301 and r.h.get("location") == "/new/a/b.html?x=1&y=2",
      "redirect prefix: the rest and the query appended", r)
    r = get(port, "/old")
    t(r.status == 301 and r.h.get("location") == "/new/", "redirect: the bare prefix", r)
    r = get(port, "/old/%C3%A9%20x")
    t(r.status == 301 and r.h.get("location") == "/new/%C3%A9%20x", "redirect: the rest re-encoded", r)
    r = get(port, "/oldx")
    t(r.status == 200 and r.body == b"<h1>example</h1>\n", "redirect: /oldx is not under /old/ (fallback)", r)
    r = get(port, "/go?q", "z.other.test")
    t(r.status == 302 and r.h.get("location") == "/there?q", "redirect 302 exact", r)
    r = get(port, "/go/", "z.other.test")
    t(r.status == 404, "redirect exact: /go/ is not /go", r)


def check_cors(port):
    r = get(port, "/index.html")
    t(r.h.get("access-control-allow-origin") == "*" and "origin" not in r.h.get("vary", "").lower(),
      "cors *: on a 200, no Vary: Origin", r)
    r = get(port, "/missing.png")
    t(r.h.get("access-control-allow-origin") == "*", "cors *: on a 404 too", r)
    r = get(port, "/index.html", method="OPTIONS",
            hdrs=[("Origin", "https://x.example"), ("Access-Control-Request-Method", "GET"),
                  ("Access-Control-Request-Headers", "range, if-none-match")])
    t(r.status == 204 and r.h.get("access-control-allow-methods") == "GET, HEAD" and
      r.h.get("access-control-allow-origin") == "*" and
      r.h.get("access-control-allow-headers") == "range, if-none-match",
      "cors preflight: 204 with the methods and headers", r)
    r = get(port, "/", "q.other.test", hdrs=[("Origin", "https://b.example")])
    t(r.h.get("access-control-allow-origin") == "https://b.example" and "Origin" in r.all("vary"),
      "cors list: the listed origin echoed, Vary: Origin", r)
    r = get(port, "/", "q.other.test", hdrs=[("Origin", "https://evil.example")])
    t("access-control-allow-origin" not in r.h and "Origin" in r.all("vary"),
      "cors list: another origin gets none", r)
    r = get(port, "/", "q.other.test", method="OPTIONS",
            hdrs=[("Origin", "https://evil.example"), ("Access-Control-Request-Method", "GET")])
    t(r.status == 204 and "access-control-allow-methods" not in r.h, "cors list: no preflight for others", r)
    r = get(port, "/", "unknown.example")
    t("access-control-allow-origin" not in r.h, "cors: off on a site without it", r)


def tls_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())


def check_sni(tls_port, ex_cert, o_cert):
    ctx = tls_context()
    for sni, cert, host, body in [("example.org", ex_cert, "example.org", b"<h1>example</h1>\n"),
                                  ("www.example.org", ex_cert, "www.example.org", b"<h1>example</h1>\n"),
                                  ("a.other.test", o_cert, "a.other.test", b"other\n"),
                                  (None, ex_cert, "example.org", b"<h1>example</h1>\n")]:
        from site_config import Conn
        c = Conn(tls_port, tls_ctx=ctx, sni=sni)
        try:
            peer = c.s.getpeercert(binary_form=True)
            r = c.request("/", host)
        finally:
            c.close()
        t(peer == der(cert) and r.status == 200 and r.body == body,
          "SNI %s: the certificate naming it, and the site of Host %s" % (sni, host), r)


def run(tmp):
    root = os.path.join(tmp, "www")
    site_tree(root)
    write(root + "/other/index.html", "other\n")
    write(root + "/other/err.html", "oops\n")
    write(root + "/other/private/x.txt", "secret\n")
    ex_cert, ex_key = make_cert(tmp, "ex", ["example.org", "www.example.org"])
    o_cert, o_key = make_cert(tmp, "other", ["*.other.test"])
    conf = EXAMPLE.format(cert=ex_cert, key=ex_key, root=root)
    conf += EXTRA.format(root=root, ocert=o_cert, okey=o_key)
    # the default block must be found wherever it is: move it last
    s = Server(tmp, "rules", conf)
    try:
        t(s.port and s.tls_port, "started with HTTP and HTTPS listeners", (s.port, s.tls_port))
        check_hosts(s.port)
        check_headers(s.port)
        check_error_pages(s.port)
        check_fallback(s.port)
        check_redirects(s.port)
        check_cors(s.port)
        check_sni(s.tls_port, ex_cert, o_cert)
    finally:
        s.stop()


def main():
    tmp = tempfile.mkdtemp(prefix="pt-site-rules.")
    try:
        run(tmp)
    except Exception:
        t(False, "no exception", traceback.format_exc())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failures() else 0)


if __name__ == "__main__":
    main()
