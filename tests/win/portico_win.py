#!/usr/bin/env python3
"""portico.exe (the Windows build) under Wine, driven from the Linux side over loopback
(tests/win/run.sh, make test-windows).

Reuses tests/integration/portico.py, with the server command passed in (PT_PORTICO_CMD=
"wine build/win/portico.exe", PT_WINE=1: stopped and reloaded through its standard input):
the same document tree and the same byte-exact checks (files, MIME types, path safety,
dotfiles, symbolic links in and out of the docroot, directories and listings, conditional
requests, ranges, precompressed variants, methods, big and small files, changes on disk, curl,
the access log and its reopening), then what only Windows has: names Windows would read as
something else (trailing dots and spaces, alternate data streams, drive letters, device
names, 8.3 short names, backslashes), each 400 or 404 and never a byte from outside the
docroot; www/ served byte-exact to curl; a graceful stop with a download in progress, at
the end of standard input and at SIGINT (which Wine turns into CTRL_C_EVENT).
Two adjustments to the tree, both Windows' rules: the odd file name has no < > " (Windows
names cannot hold them), and an ETag's time has 100 ns resolution (FILETIME). The tree's Unix
FIFO, which Wine opens as a pipe, is 403 as on Linux."""
import gzip
import hashlib
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
EXE = os.path.join(REPO, "build", "win", "portico.exe")
os.environ.setdefault("PT_PORTICO_CMD", "wine " + EXE)
os.environ["PT_WINE"] = "1"
sys.path.insert(0, os.path.join(REPO, "tests", "integration"))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
import portico as P  # noqa: E402
from ptest import t, read_text  # noqa: E402

P.ODD_NAME = "a&b'c.txt"


def etag_win(path):
    st = os.stat(path)
    return '"%x-%x-%x"' % (st.st_ino, st.st_size, st.st_mtime_ns // 100 * 100)


P.etag_of = etag_win

# (request-target, what it must not be): every one is 400 or 404
WIN_NAMES = [
    "/a.txt.", "/a.txt..", "/a.txt%20", "/a.txt.%20", "/a.txt%2e", "/sub./page.txt",
    "/sub%20/page.txt", "/sub.%20./page.txt", "/index.html.",
    "/a.txt::$DATA", "/a.txt:$DATA", "/a.txt%3a%3a$DATA", "/a.txt::%24DATA", "/sub:x/page.txt",
    "/sub::$INDEX_ALLOCATION/page.txt", "/.env::$DATA", "/.env.", "/.env%20",
    "/C:", "/C:/windows/win.ini", "/c:/windows/win.ini", "/C%3a/windows/win.ini",
    "/Z:/etc/passwd", "/z:%2fetc%2fpasswd", "/C:..%5cwindows%5cwin.ini",
    "/NUL", "/nul", "/NUL.txt", "/CON", "/con.html", "/AUX", "/PRN", "/COM1", "/com9.txt",
    "/LPT1", "/lpt3.log", "/CONIN$", "/CONOUT$", "/COM%C2%B9", "/sub/NUL", "/sub/con/page.txt",
    "/NUL%20", "/NUL.", "/CON%20.txt",
    "/SUB~1/page.txt", "/INDEX~1.HTM", "/ENV~1", "/GIT~1/config", "/PRE~1/text.txt",
    "/..\\outside\\secret.txt", "/sub\\..\\..\\outside\\secret.txt", "/..%5coutside%5csecret.txt",
    "/%5c%5c.%5cC:%5cwindows%5cwin.ini", "/\\\\?\\C:\\windows\\win.ini",
    "/%2e%2e/outside/secret.txt", "/sub/%2e%2e/%2e%2e/outside/secret.txt", "/...",
    "/.../outside/secret.txt", "/sub/.../a.txt", "/dir_out/secret.txt", "/rel_out",
    "/abs_out", "/passwd_link", "/a.txt%00", "/a%3f.txt", "/a*.txt", "/a%22.txt", "/a%3c.txt",
    "/a%7c.txt", "/A.TXT", "/Sub/page.txt",
]


def check_win_names(port):
    for target in WIN_NAMES:
        try:
            r = P.fetch(port, target)
        except (EOFError, ConnectionResetError) as e:
            t(True, "Windows name %r: refused (connection closed by the parser)" % target, e)
            continue
        bad = (P.SECRET in r.body or b"root:" in r.body or b"[fonts]" in r.body
               or b"for 16-bit app support" in r.body or P.A_TXT == r.body)
        t(r.status in (400, 404) and not bad, "Windows name %r -> %d (400 or 404)" % (target, r.status),
          (r.status, r.body[:80]))
    for target in ["/A.TXT", "/A.txt", "/SUB/page.txt", "/sub/PAGE.TXT", "/.ENV", "/Index.html"]:
        r = P.fetch(port, target)
        t(r.status == 404 and P.A_TXT != r.body and P.DOT_SECRET not in r.body,
          "names match exactly, as on Linux: %s -> 404 (Windows would find it in another case)" % target, r)


def check_www(port):
    www = os.path.join(REPO, "www")
    for dirpath, _, files in os.walk(www):
        for f in sorted(files):
            path = os.path.join(dirpath, f)
            rel = os.path.relpath(path, www).replace(os.sep, "/")
            p = subprocess.run([P.CURL, "-s", "--max-time", "20", "http://127.0.0.1:%d/%s" % (port, rel)],
                               stdout=subprocess.PIPE, timeout=30)
            want = open(path, "rb").read()
            t(p.returncode == 0 and p.stdout == want,
              "www/%s served byte-exact to curl (%d bytes)" % (rel, len(want)), (p.returncode, len(p.stdout)))
    p = subprocess.run([P.CURL, "-s", "--max-time", "20", "http://127.0.0.1:%d/" % port],
                       stdout=subprocess.PIPE, timeout=30)
    t(p.stdout == open(os.path.join(www, "index.html"), "rb").read(), "www/: / serves index.html", len(p.stdout))


def check_compress(port, root):
    """--compress on Windows: gzip only (win/compress.c); br or zstd alone get the identity."""
    text = b"".join(b"compress me %d: the quick brown fox jumps over the lazy dog\n" % i for i in range(2000))
    P.write(os.path.join(root, "z", "big.txt"), text)
    deadline, r = time.monotonic() + 15, None
    while time.monotonic() < deadline:
        r = P.fetch(port, "/z/big.txt", [("Accept-Encoding", "gzip")])
        if r.h.get("content-encoding") == "gzip":
            break
        time.sleep(0.1)
    t(r.status == 200 and r.h.get("content-encoding") == "gzip" and gzip.decompress(r.body) == text
      and len(r.body) < len(text) // 4,
      "--compress: gzip copy made once, decompressed equal (%d -> %d bytes)" % (len(text), len(r.body)), r)
    for enc in ["br", "zstd", "br, zstd"]:
        r = P.fetch(port, "/z/big.txt", [("Accept-Encoding", enc)])
        t(r.status == 200 and "content-encoding" not in r.h and r.body == text,
          "--compress, Accept-Encoding %s: the identity body (no brotli or zstd on Windows)" % enc, r)


def graceful_stop(a, root, log, sigint=False):
    """A download of 20 MiB in progress when standard input closes (the Windows SIGTERM), or
    at SIGINT, which Wine delivers to the program as CTRL_C_EVENT (its console handler)."""
    how = "SIGINT (CTRL_C_EVENT)" if sigint else "end of standard input"
    dl = P.Download(a.port, "/big.bin?during-stop", timeout=30)
    if sigint:
        a.p.send_signal(P.signal.SIGINT)
    else:
        a.signal(P.signal.SIGTERM)
    dl.start()
    body, dl_err = dl.finish(40)
    t0 = time.monotonic()
    rc = P.stop_process(a.p, 0, 30)
    secs = time.monotonic() - t0
    big = P.fbytes(root, "big.bin")
    t(rc == 0, "%s: graceful stop, exit 0 (%.2f s)" % (how, secs), (rc, read_text(a.err)[-2000:]))
    t(dl.head.status == 200 and hashlib.sha256(body).digest() == hashlib.sha256(big).digest(),
      "%s: the 20 MiB download in progress finishes byte-exact" % how, (len(body), dl_err))
    if log:
        t("GET /big.bin?during-stop HTTP/1.1\" 200 %d" % len(big) in read_text(log),
          "the download is in the access log, flushed at exit", read_text(log)[-300:])


def cli(tmp):
    def run(args):
        p = subprocess.run(P.PORTICO_CMD + args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=60)
        return p.returncode, p.stderr.decode("utf-8", "replace").replace("\r\n", "\n")
    for flag, args in [("--listen-tls", ["--listen-tls", "127.0.0.1:0", "--tls-cert", "c", "--tls-key", "k"]),
                       ("--h2c", ["--h2c"]), ("--user", ["--user", "nobody"])]:
        rc, err = run(["-l", "127.0.0.1:0"] + args + [tmp])
        t(rc == 1 and flag in err, "%s on Windows: exit 1 naming the option" % flag, (rc, err[-400:]))
    rc, err = run(["-l", "127.0.0.1:0", os.path.join(tmp, "no-such-dir")])
    t(rc == 1 and "no-such-dir" in err, "a missing docroot: exit 1 naming it", (rc, err[-300:]))


def run_all(tmp):
    root, rootlink, outside = P.build_tree(tmp)
    log = os.path.join(tmp, "access.log")
    cc = "public, max-age=60"
    P.section("cli", cli, tmp)
    a = P.Server(tmp, "a", root, ["--cache-control", cc, "--access-log", log,
                                  "--shutdown-timeout", "10", "--min-send-rate", "off"])
    t("iocp backend" in a.announce, "portico.exe runs on the IOCP backend", a.announce)
    for name, fn, args in [("basic", P.check_basic, (root, cc)), ("mime", P.check_mime, ()),
                           ("paths", P.check_paths, ()), ("dotfiles", P.check_dotfiles, ()),
                           ("special", P.check_special, ()),
                           ("symlinks", P.check_symlinks, (False,)), ("dirs", P.check_dirs, (False, root)),
                           ("conditional", P.check_conditional, (root, cc)),
                           ("ranges", P.check_ranges, (root,)), ("precompressed", P.check_precompressed, (root,)),
                           ("methods", P.check_methods, (root,)), ("files", P.check_files, (root,)),
                           ("curl", P.check_curl, (root,)), ("windows names", check_win_names, ())]:
        P.section(name, fn, a.port, *args)
    P.section("log", P.check_log_format, log, a.port)
    P.section("reload", P.check_sighup, a, log)
    b = P.Server(tmp, "b", rootlink, ["--autoindex", "--follow-symlinks", "--shutdown-timeout", "1"])
    for name, fn, args in [("b-paths", P.check_paths, ()), ("b-symlinks", P.check_symlinks, (True,)),
                           ("b-dirs", P.check_dirs, (True, root)), ("b-dotfiles", P.check_dotfiles, ()),
                           ("b-windows names", check_win_names, ()), ("b-fresh", P.check_fresh, (root,))]:
        P.section(name, fn, b.port, *args)
    rc, secs, err = b.stop()
    t(rc == 0, "server B: exit 0 at the end of its input (%.2f s)" % secs, (rc, err[-2000:]))
    w = P.Server(tmp, "www", os.path.join(REPO, "www"), ["--compress", "text/*"])
    P.section("www", check_www, w.port)
    rc, secs, err = w.stop()
    t(rc == 0, "www server: exit 0 at the end of its input", (rc, err[-2000:]))
    P.section("graceful stop", graceful_stop, a, root, log)
    c = P.Server(tmp, "c", root, ["--min-send-rate", "off", "--shutdown-timeout", "10",
                                  "--compress", "text/plain"])
    P.section("compress", check_compress, c.port, root)
    P.section("SIGINT stop", graceful_stop, c, root, None, True)


if __name__ == "__main__":
    sys.exit(P.main(run_all, EXE))
