#!/usr/bin/env python3
"""HTTPS interoperability and abuse tests of portico (issue 14), on both backends.

build/san/portico (PT_BUILD) with TLS listeners on loopback and certificates made at test time
with the openssl CLI (a test CA; "a": ECDSA P-256 for a.test/localhost/127.0.0.1/::1, the
default; "b": RSA 2048 for b.test; "a2": a second ECDSA one for reloads; "c": c.test, signed
by an intermediate CA). Clients: Python's ssl
module, `openssl s_client`, curl, and raw sockets for the malformed traffic.

 1. start-up errors: mismatched certificate and key, a missing or garbage certificate file:
    exit 1 naming the file; bad TLS options: an error naming the option.
 2. main server (two certificates, --hsts): TLS 1.2 and 1.3 succeed, 1.0 and 1.1 are refused
    (Python, s_client, curl, and a raw 1.0 ClientHello answered by an alert, never a
    ServerHello); resumption by ticket (Python session=, s_client -sess_out/-sess_in) on 1.2 and
    1.3; ALPN (http/1.1 chosen, an unknown protocol alone fails the handshake, none offered is
    accepted); SNI picks the certificate (a.test, b.test, none and unknown: the default; c.test:
    a leaf sent with its intermediate);
    Strict-Transport-Security on TLS responses only; a several-MiB file byte-exact and ranges
    (single, suffix, far offsets, multipart) over TLS, concurrent downloads (one read slowly);
    record sizes on the wire; pipelined requests (300 in one record); no 0-RTT; Connection: close
    ends with close_notify; plaintext HTTP, garbage, truncated ClientHellos, alerts, corrupted,
    truncated and oversized records, a client close_notify and a client reset mid-download:
    each connection is closed and the server keeps serving; the TLS counters (SIGUSR1).
 3. --redirect-https: the plaintext port answers 301 to https://HOST:TLSPORT/TARGET, the TLS
    port serves; --tls-protocols TLSv1.3 refuses TLS 1.2; --header-timeout runs from accept: a
    stalled handshake (partial ClientHello) and a handshake followed by silence are closed.
    A configuration file (-c) with listen-tls, two tls-cert/tls-key pairs, tls-protocols and
    hsts: an HTTPS-only server.
 4. flood: --max-conns 64, 400 connections that each send a partial ClientHello and stall;
    20 real clients on new connections are all served within 5 s each.
 5. SIGHUP reload under load (4 client threads, full handshakes and keep-alive): no failed
    request; the new certificate is served after the reload; a ticket from before still
    resumes; a garbage certificate and a mismatched pair keep the current one (and are logged).
Every server is stopped with SIGTERM: exit 0 and no sanitizer report.
One TAP line per check. Runs once per backend (PORTICO_BACKEND) from tests/run.sh.
"""
import hashlib
import os
import random
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ptest import (t, skip, failures, checks, read_text, sanitizer_clean, wait_for,  # noqa: E402
                   stop_process, HttpConn, connect, tls_client_context, make_certs, cert_der)

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
B = os.environ.get("PT_BUILD") or os.path.join(REPO, "build", "san")
PORTICO = os.path.join(B, "portico")
BACKEND = os.environ.get("PORTICO_BACKEND", "")
CURL = "/usr/bin/curl"
OPENSSL = shutil.which("openssl") or "/usr/bin/openssl"
T0 = time.monotonic()
MIB = 1 << 20

SERVERS = []
CERTS = {}
V12, V13 = ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3


def has_ipv6():
    try:
        s = socket.socket(socket.AF_INET6)
        s.bind(("::1", 0))
        s.close()
        return True
    except OSError:
        return False


# ---- the server ----------------------------------------------------------------------------------

class Server:
    """build/san/portico with a plaintext listener on 127.0.0.1:0 (self.port) and TLS listeners
    on port 0 of tls_hosts (self.tls[i]: (host, port) from the start-up lines); stdout/stderr
    go to files."""

    def __init__(self, tmp, name, root, certs, opts=(), tls_hosts=("127.0.0.1",), plain=True,
                 cli_tls=True):
        self.out = os.path.join(tmp, name + ".out")
        self.err = os.path.join(tmp, name + ".err")
        args = [PORTICO, "-w", "2"] + (["-l", "127.0.0.1:0"] if plain else [])
        for h in tls_hosts if cli_tls else ():       # (else the listeners come from -c FILE)
            args += ["--listen-tls", ("[%s]:0" if ":" in h else "%s:0") % h]
        for c, k in certs:
            args += ["--tls-cert", c, "--tls-key", k]
        self.args = args + list(opts) + [root]
        with open(self.out, "wb") as o, open(self.err, "wb") as e:
            self.p = subprocess.Popen(self.args, stdout=o, stderr=e, stdin=subprocess.DEVNULL)
        SERVERS.append(self)
        wait_for(lambda: "backend," in read_text(self.out) or self.p.poll() is not None, 15)
        txt = read_text(self.out)
        m = re.search(r"at http://127\.0\.0\.1:(\d+)/", txt)
        if self.p.poll() is not None or "backend," not in txt or (plain and not m):
            raise RuntimeError("portico did not start: %r rc=%r stdout=%r stderr=%r" % (
                self.args, self.p.poll(), txt, read_text(self.err)[-2000:]))
        self.port = int(m.group(1)) if m else None
        self.announce = txt
        self.tls = []
        for h in tls_hosts:
            m = re.search(r"^portico: serving .* at https://%s:(\d+)/$" % re.escape(
                "[%s]" % h if ":" in h else h), txt, re.M)
            if not m:
                raise RuntimeError("no https://%s line in the start-up lines: %r" % (h, txt))
            self.tls.append((h, int(m.group(1))))
        self.tls_port = self.tls[0][1]

    def counters(self):
        """SIGUSR1, then the fields of the newest "portico: counters:" line as a dict."""
        before = read_text(self.err).count("portico: counters:")
        self.p.send_signal(signal.SIGUSR1)
        wait_for(lambda: read_text(self.err).count("portico: counters:") > before, 3)
        lines = [l for l in read_text(self.err).splitlines() if "portico: counters:" in l]
        if not lines:
            return {}
        # "shed N (silent N partial N idle N) ... tls_failed N (proto N plain N ...)": the names
        # in parentheses get the prefix of the field before them (shed_silent, tls_fail_proto)
        out, last, prefix = {}, "", ""
        for tok in re.findall(r"\(|\)|[a-z_]+ \d+", lines[-1].split("portico: counters:", 1)[1]):
            if tok == "(":
                prefix = (last[:-2] if last.endswith("failed") else last) + "_"
            elif tok == ")":
                prefix = ""
            else:
                k, v = tok.split()
                out[prefix + k] = int(v)
                last = k
        return out

    def stop(self, timeout=15):
        return stop_process(self.p, None, timeout), read_text(self.err)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()


def check_stop(srv, what):
    rc, err = srv.stop()
    t(rc == 0 and sanitizer_clean(err), "%s: SIGTERM -> exit 0, no sanitizer report" % what,
      (rc, err[-3000:]))


# ---- clients ---------------------------------------------------------------------------------------

def ctx_verify(alpn=None, min_version=None, max_version=None):
    return tls_client_context(CERTS["ca"], alpn, min_version, max_version)


def ctx_any(alpn=None, min_version=None, max_version=None):
    return tls_client_context(None, alpn, min_version, max_version)


def ctx_legacy(version):
    """A client that offers only TLS 1.0 or 1.1 (security level 0, so OpenSSL 3 still sends it)."""
    ctx = tls_client_context(None, None, version, version)
    ctx.set_ciphers("ALL:@SECLEVEL=0")
    return ctx


def tconn(port, ctx=None, sni="localhost", session=None, timeout=10, host="127.0.0.1"):
    s = connect(port, timeout, host=host, tls=True, context=ctx or ctx_verify(),
                server_hostname=sni, session=session)
    return HttpConn(port, sock=s)


def req(target, method="GET", hdrs=(), host="localhost", close=False):
    h = "".join("%s: %s\r\n" % kv for kv in hdrs)
    return ("%s %s HTTP/1.1\r\nHost: %s\r\n%s%s\r\n" % (
        method, target, host, "Connection: close\r\n" if close else "", h)).encode("latin1")


def tget(port, target="/a.txt", ctx=None, sni="localhost", session=None, hdrs=(), method="GET",
         host="127.0.0.1"):
    """One request over a new TLS connection: (status, headers, body, info); info: version,
    cipher, alpn, cert (DER of the server's leaf), resumed, session."""
    c = tconn(port, ctx, sni, session, host=host)
    try:
        c.send(req(target, method, hdrs))
        st, h, body = c.header_response(head_only=(method == "HEAD"))
        info = dict(version=c.s.version(), cipher=c.s.cipher()[0],
                    alpn=c.s.selected_alpn_protocol(), cert=c.s.getpeercert(True),
                    resumed=c.s.session_reused, session=c.s.session)
        return st, h, body, info
    finally:
        c.close()


def try_tget(*a, **kw):
    try:
        return tget(*a, **kw)
    except Exception as e:
        return (repr(e), {}, b"", {})


def handshake_error(port, ctx, sni="localhost"):
    """None when the handshake succeeds (connection closed again), else the exception text."""
    try:
        s = connect(port, 5, tls=True, context=ctx, server_hostname=sni)
    except (ssl.SSLError, OSError) as e:
        return repr(e)
    s.close()
    return None


def plain_get(port, target, hdrs=(), method="GET", host="t"):
    c = HttpConn(port, sock=socket.create_connection(("127.0.0.1", port), timeout=10))
    try:
        c.send(req(target, method, hdrs, host=host))
        return c.header_response(head_only=(method == "HEAD"))
    finally:
        c.close()


def client_hello(version_min=None, version_max=None, sni="localhost", ciphers=None):
    """The bytes of a real ClientHello record from Python's ssl (memory BIOs, never sent)."""
    ctx = ctx_any(min_version=version_min, max_version=version_max)
    if ciphers:
        ctx.set_ciphers(ciphers)
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(inc, out, server_hostname=sni)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


class RawTls:
    """A TLS client over memory BIOs on a plain socket: the test sees (and can damage) every
    ciphertext byte it sends."""

    def __init__(self, port, ctx=None, sni="localhost"):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.inc, self.out = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = (ctx or ctx_any()).wrap_bio(self.inc, self.out, server_hostname=sni)
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.flush()
                b = self.sock.recv(65536)
                if not b:
                    raise EOFError("closed during the handshake")
                self.inc.write(b)
        self.flush()

    def flush(self):
        data = self.out.read()
        if data:
            self.sock.sendall(data)

    def records(self, plaintext):
        """The ciphertext records of plaintext (not sent)."""
        self.obj.write(plaintext)
        return self.out.read()

    def closed(self, wait=3.0):
        """True when the server closes (EOF or reset) within wait seconds; what it sent before
        is kept in self.tail."""
        self.tail = b""
        deadline = time.monotonic() + wait
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.sock.settimeout(left)
            try:
                b = self.sock.recv(65536)
            except (ConnectionResetError, BrokenPipeError):
                return True
            except socket.timeout:
                return False
            if not b:
                return True
            self.tail += b

    def close(self):
        self.sock.close()


def records(data):
    """[(content type, fragment)] of a byte string of whole plaintext TLS records, or None."""
    out = []
    while data:
        if len(data) < 5 or len(data) < 5 + int.from_bytes(data[3:5], "big"):
            return None
        n = int.from_bytes(data[3:5], "big")
        out.append((data[0], data[5:5 + n]))
        data = data[5 + n:]
    return out


def raw_closed(sock, wait=3.0):
    """(closed within wait seconds, bytes received before)."""
    got = b""
    deadline = time.monotonic() + wait
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return False, got
        sock.settimeout(left)
        try:
            b = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            return True, got
        except socket.timeout:
            return False, got
        if not b:
            return True, got
        got += b


def run(args, inp=b"", timeout=20):
    try:
        p = subprocess.run(args, input=inp, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           timeout=timeout)
        return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")
    except subprocess.TimeoutExpired as e:
        return "timeout", (e.stdout or b"").decode("utf-8", "replace"), ""


def s_client(port, *args, inp=None, sni="localhost"):
    inp = inp if inp is not None else req("/a.txt", host="localhost", close=True)
    return run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % port, "-servername", sni,
                "-CAfile", CERTS["ca"], "-ign_eof"] + list(args), inp)


def curl(*args):
    return run([CURL, "-s", "--max-time", "20", "--cacert", CERTS["ca"]] + list(args), timeout=30)


# ---- the document root ---------------------------------------------------------------------------

A_TXT = b"hello over tls\n"


def build_root(tmp):
    root = os.path.join(tmp, "root")
    os.makedirs(os.path.join(root, "sub"))

    def w(rel, data):
        with open(os.path.join(root, rel), "wb") as f:
            f.write(data)
    w("index.html", b"<!DOCTYPE html>\n<title>tls</title>\n")
    w("a.txt", A_TXT)
    w("sub/page.txt", b"sub page\n")
    rnd = random.Random(14)
    w("big.bin", rnd.randbytes(6 * MIB + 12345))
    w("mid.bin", rnd.randbytes(300000))
    return root


def fbytes(root, rel):
    with open(os.path.join(root, rel), "rb") as f:
        return f.read()


# ---- 1. start-up errors ---------------------------------------------------------------------------

def check_startup_errors(tmp, root):
    a, b = CERTS["a"], CERTS["b"]
    garbage = os.path.join(tmp, "garbage.pem")
    with open(garbage, "wb") as f:
        f.write(b"-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
    missing = os.path.join(tmp, "no-such-cert.pem")

    def start(extra):
        return run([PORTICO, "-l", "127.0.0.1:0", "--listen-tls", "127.0.0.1:0"] + extra
                   + [root], timeout=15)
    rc, out, err = start(["--tls-cert", a[0], "--tls-key", b[1]])
    t(rc == 1 and (os.path.basename(a[0]) in err or os.path.basename(b[1]) in err),
      "certificate with another certificate's key: exit 1 naming the file", (rc, err[-1500:]))
    t(sanitizer_clean(err), "mismatched pair: no sanitizer report on the error path", err[-2000:])
    rc, out, err = start(["--tls-cert", missing, "--tls-key", a[1]])
    t(rc == 1 and missing in err, "missing certificate file: exit 1 naming it", (rc, err[-1500:]))
    rc, out, err = start(["--tls-cert", a[0], "--tls-key", missing])
    t(rc == 1 and missing in err, "missing key file: exit 1 naming it", (rc, err[-1500:]))
    rc, out, err = start(["--tls-cert", garbage, "--tls-key", a[1]])
    t(rc == 1 and garbage in err, "garbage certificate file: exit 1 naming it", (rc, err[-1500:]))
    rc, out, err = start(["--tls-cert", a[0], "--tls-key", a[1], "--tls-cert", b[0], "--tls-key", a[1]])
    t(rc == 1 and (b[0] in err or a[1] in err),
      "second pair mismatched (first fine): exit 1 naming the file", (rc, err[-1500:]))
    rc, out, err = start([])
    t(rc in (1, 2) and "--tls-cert" in err, "--listen-tls without --tls-cert: refused, naming --tls-cert",
      (rc, err[-1500:]))
    rc, out, err = start(["--tls-cert", a[0]])
    t(rc in (1, 2) and "--tls-key" in err, "--tls-cert without --tls-key: refused, naming --tls-key",
      (rc, err[-1500:]))
    rc, out, err = start(["--tls-cert", a[0], "--tls-key", a[1], "--tls-protocols", "TLSv1.1"])
    t(rc == 2 and "--tls-protocols" in err, "--tls-protocols TLSv1.1: exit 2 naming the option",
      (rc, err[-1500:]))
    rc, out, err = start(["--tls-cert", a[0], "--tls-key", a[1], "--hsts", "soon"])
    t(rc == 2 and "--hsts" in err, "--hsts with a bad value: exit 2 naming the option", (rc, err[-1500:]))


# ---- 2. the main server ---------------------------------------------------------------------------

def check_versions(srv):
    port = srv.tls_port
    st, h, body, i = tget(port, ctx=ctx_verify(min_version=V13))
    t(st == 200 and body == A_TXT and i["version"] == "TLSv1.3",
      "Python ssl, TLS 1.3: 200 and the file (certificate verified for localhost)", (st, i.get("version")))
    t(i["cipher"] in ("TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256"),
      "TLS 1.3 cipher is an AEAD suite (%s)" % i["cipher"], i["cipher"])
    t(i["cert"] == cert_der(CERTS["a"][0]), "TLS 1.3 serves the default (ECDSA) certificate")
    st, h, body, i = tget(port, ctx=ctx_verify(max_version=V12))
    t(st == 200 and body == A_TXT and i["version"] == "TLSv1.2",
      "Python ssl, TLS 1.2: 200 and the file", (st, i.get("version")))
    t(re.match(r"^ECDHE-ECDSA-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$", i["cipher"]) is not None,
      "TLS 1.2 with the ECDSA certificate: ECDHE with an AEAD cipher (%s)" % i["cipher"], i["cipher"])
    st, h, body, i = tget(port, ctx=ctx_verify(max_version=V12), sni="b.test")
    t(st == 200 and i["version"] == "TLSv1.2" and re.match(
        r"^ECDHE-RSA-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$", i["cipher"]) is not None,
      "TLS 1.2 with the RSA certificate (SNI b.test): ECDHE-RSA with an AEAD cipher (%s)" % i.get("cipher"),
      (st, i))
    # CBC, RSA key exchange and the like are not offered (Mozilla intermediate).
    for name, cipher in [("AES-CBC", "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES256-SHA"),
                         ("static RSA key exchange", "AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA")]:
        ctx = ctx_any(max_version=V12)
        try:
            ctx.set_ciphers(cipher)
        except ssl.SSLError:
            skip("TLS 1.2 client offering only %s is refused" % name, "this OpenSSL cannot offer it")
            continue
        errs = [handshake_error(port, ctx, sni) for sni in ("localhost", "b.test")]
        t(all(errs), "TLS 1.2 client offering only %s is refused (both certificates)" % name, errs)
    for v in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        err = handshake_error(port, ctx_legacy(v))
        t(err is not None, "Python ssl offering only %s: handshake refused" % v.name, err)
    # A raw TLS 1.0 ClientHello: the answer is an alert (or a close), never a ServerHello.
    for v in (ssl.TLSVersion.TLSv1, ssl.TLSVersion.TLSv1_1):
        hello = client_hello(v, v, ciphers="ALL:@SECLEVEL=0")
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            s.sendall(hello)
            closed, got = raw_closed(s, 3)
        finally:
            s.close()
        recs = records(got)
        t(closed and recs is not None and all(r[0] == 21 for r in recs),
          "raw %s ClientHello: answered by an alert (or nothing) and closed, no ServerHello" % v.name,
          (closed, got[:40]))
        fatal = [r[1][1] for r in recs or [] if r[0] == 21 and len(r[1]) == 2 and r[1][0] == 2]
        if recs:
            t(fatal and fatal[-1] in (70, 40), "  with a fatal protocol_version (70) or handshake_failure (40) alert",
              got[:40])
    for ver in ("-tls1_2", "-tls1_3"):
        rc, out, err = s_client(port, ver, "-verify_return_error", "-verify_hostname", "localhost")
        want = "TLSv1.2" if ver == "-tls1_2" else "TLSv1.3"
        t(rc == 0 and re.search(r"(New|Reused), %s, Cipher is" % want, out) and "Verify return code: 0 (ok)" in out
          and "HTTP/1.1 200 OK" in out and A_TXT.decode() in out,
          "openssl s_client %s: handshake, verified chain, 200 and the file" % ver, (rc, out[-1500:], err[-500:]))
    for ver in ("-tls1", "-tls1_1"):
        rc, out, err = s_client(port, ver, "-cipher", "DEFAULT:@SECLEVEL=0")
        t(rc != 0 and "HTTP/1.1" not in out, "openssl s_client %s: refused" % ver, (rc, out[-800:], err[-800:]))
    if os.access(CURL, os.X_OK):
        base = "https://localhost:%d" % port
        for flags, want in ((["--tlsv1.3"], "1.3"), (["--tlsv1.2", "--tls-max", "1.2"], "1.2")):
            rc, out, err = curl(*flags, "-o", "/dev/null", "-w", "%{http_code} %{ssl_verify_result}",
                                base + "/a.txt")
            t(rc == 0 and out == "200 0", "curl TLS %s with the CA: 200, verified" % want, (rc, out, err))
        rc, out, err = curl("--tlsv1.0", "--tls-max", "1.1", "--ciphers", "DEFAULT:@SECLEVEL=0",
                            base + "/a.txt")
        t(rc == 35, "curl limited to TLS 1.0-1.1: handshake fails (exit 35)", (rc, out[:200], err))
        rc, out, err = run([CURL, "-s", "--max-time", "20", base + "/a.txt"], timeout=30)
        t(rc == 60, "curl without the test CA: certificate rejected (exit 60), so verification is real",
          (rc, err))
    else:
        skip("curl TLS checks", "no " + CURL)


def check_resumption(srv):
    port = srv.tls_port
    for ver, ctxf in (("TLS 1.3", lambda: ctx_verify(min_version=V13)),
                      ("TLS 1.2", lambda: ctx_verify(max_version=V12))):
        ctx = ctxf()
        st, h, body, i = tget(port, ctx=ctx)
        sess = i.get("session")
        t(st == 200 and sess is not None and not i["resumed"] and sess.has_ticket,
          "%s: a full handshake issues a session ticket" % ver, (st, i.get("resumed"), sess and sess.has_ticket))
        st2, h2, body2, i2 = try_tget(port, ctx=ctx, session=sess)
        t(st2 == 200 and body2 == A_TXT and i2.get("resumed") is True,
          "%s: a second connection resumes with the ticket (session_reused), 200" % ver, (st2, i2.get("resumed")))
        # a resumed session works for a third connection too (new ticket or the same)
        st3, _, _, i3 = try_tget(port, ctx=ctx, session=i2.get("session") or sess)
        t(st3 == 200 and i3.get("resumed") is True, "%s: and again on a third connection" % ver, (st3, i3.get("resumed")))
    tmp = tempfile.mkdtemp(prefix="pt-tls-sess-")
    try:
        for ver in ("-tls1_3", "-tls1_2"):
            f = os.path.join(tmp, "sess" + ver)
            rc, out, err = s_client(port, ver, "-sess_out", f)
            rc2, out2, err2 = s_client(port, ver, "-sess_in", f)
            t(rc == 0 and rc2 == 0 and re.search(r"^New, TLSv1\.[23]", out, re.M)
              and re.search(r"^Reused, TLSv1\.[23]", out2, re.M) and "HTTP/1.1 200 OK" in out2,
              "openssl s_client %s: -sess_out then -sess_in resumes (Reused)" % ver,
              (rc, rc2, re.findall(r"^(?:New|Reused).*$", out + out2, re.M), err2[-300:]))
            if ver == "-tls1_3":
                # no 0-RTT: the tickets allow no early data, so a client never sends any
                early = os.path.join(tmp, "early.txt")
                with open(early, "wb") as fh:
                    fh.write(req("/a.txt?early", host="localhost", close=True))
                rc3, out3, err3 = s_client(port, ver, "-sess_in", f, "-early_data", early)
                t(re.search(r"Max Early Data: 0\b", out) and "Early data was accepted" not in out3
                  and "HTTP/1.1 200 OK" in out3,
                  "TLS 1.3 tickets allow no early data (Max Early Data: 0): s_client -early_data is "
                  "answered only after the handshake", (rc3, re.findall(r"(?i)^.*early.*$", out + out3, re.M)))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_alpn(srv):
    port = srv.tls_port
    for offer in (["http/1.1"], ["spdy/3", "http/1.1"]):
        st, h, body, i = try_tget(port, ctx=ctx_verify(alpn=offer))
        t(st == 200 and i.get("alpn") == "http/1.1", "ALPN %s offered: http/1.1 negotiated, 200" % offer,
          (st, i.get("alpn")))
    for offer in (["h2", "http/1.1"], ["http/1.1", "h2"]):   # HTTP/2 is on by default (--http2)
        s = connect(port, 5, tls=True, context=ctx_verify(alpn=offer), server_hostname="localhost")
        got = s.selected_alpn_protocol()
        s.close()
        t(got == "h2", "ALPN %s offered: h2 negotiated (the server's preference)" % offer, got)
    for v in (V13, V12):
        err = handshake_error(port, ctx_verify(alpn=["foo/1"], min_version=v, max_version=v))
        t(err is not None and ("NO_APPLICATION_PROTOCOL" in err.upper() or "ALERT" in err.upper()),
          "ALPN with only an unknown protocol (%s): handshake fails (no_application_protocol)" % v.name, err)
    st, h, body, i = try_tget(port, ctx=ctx_verify())
    t(st == 200 and i.get("alpn") is None, "no ALPN offered: accepted, none negotiated", (st, i.get("alpn")))
    rc, out, err = s_client(port, "-alpn", "http/1.1")
    t(rc == 0 and "ALPN protocol: http/1.1" in out, "openssl s_client -alpn http/1.1: negotiated",
      (rc, out[-600:]))
    rc, out, err = s_client(port, "-alpn", "foo/1")
    t(rc != 0 and "HTTP/1.1 200" not in out and "no application protocol" in (out + err).lower(),
      "openssl s_client -alpn foo/1: no_application_protocol alert", (rc, out[-400:], err[-400:]))


def check_sni(srv):
    port = srv.tls_port
    a, b = cert_der(CERTS["a"][0]), cert_der(CERTS["b"][0])
    cases = [("a.test", a, ctx_verify()), ("b.test", b, ctx_verify()), ("A.TEST", a, ctx_any()),
             ("B.Test", b, ctx_any()), ("unknown.test", a, ctx_any()), ("127.0.0.1", a, ctx_verify())]
    for sni, want, ctx in cases:
        for v in (V13, V12):
            ctx.minimum_version = ctx.maximum_version = v
            st, h, body, i = try_tget(port, ctx=ctx, sni=sni)
            what = "no SNI (IP literal)" if sni == "127.0.0.1" else "SNI %s" % sni
            t(st == 200 and i.get("cert") == want, "%s, %s: the %s certificate" % (
                what, v.name, "b.test RSA" if want == b else "default a.test ECDSA"), (st, i.get("version")))
    for v in (V13, V12):
        st, h, body, i = try_tget(port, ctx=ctx_verify(min_version=v, max_version=v), sni="c.test")
        t(st == 200 and i.get("cert") == cert_der(CERTS["c"][0]),
          "SNI c.test, %s: its leaf and intermediate are sent (verified with the root CA alone)" % v.name,
          (st, i.get("version")))
    rc, out, err = s_client(port, "-showcerts", sni="c.test")
    t(rc == 0 and out.count("-----BEGIN CERTIFICATE-----") == 2 and "Verify return code: 0 (ok)" in out,
      "openssl s_client -showcerts -servername c.test: a chain of two certificates, verified", (rc, out[-600:]))
    rc, out, err = s_client(port, "-verify_return_error", "-verify_hostname", "b.test", sni="b.test")
    t(rc == 0 and re.search(r"subject=CN ?= ?b\.test", out) and "Verify return code: 0 (ok)" in out,
      "openssl s_client -servername b.test: the b.test certificate, verified", (rc, out[-800:]))
    if os.access(CURL, os.X_OK):
        rc, out, err = curl("--resolve", "b.test:%d:127.0.0.1" % port, "-o", "/dev/null", "-w",
                            "%{http_code}", "https://b.test:%d/a.txt" % port)
        t(rc == 0 and out == "200", "curl https://b.test (SNI, verified against b.test's name): 200", (rc, out, err))


def check_hsts(srv):
    st, h, body, i = tget(srv.tls_port)
    t(st == 200 and h.get("strict-transport-security", "").startswith("max-age=31536000"),
      "--hsts 31536000: Strict-Transport-Security on a TLS response", h)
    st, h, body, i = tget(srv.tls_port, "/nope")
    t(st == 404 and h.get("strict-transport-security", "").startswith("max-age=31536000"),
      "  ... on a TLS 404 too", h)
    st, h, body = plain_get(srv.port, "/a.txt")
    t(st == 200 and body == A_TXT and "strict-transport-security" not in h,
      "no Strict-Transport-Security on the plaintext port", h)
    if os.access(CURL, os.X_OK):
        rc, out, err = curl("-I", "https://localhost:%d/a.txt" % srv.tls_port)
        t(rc == 0 and re.search(r"(?im)^strict-transport-security: max-age=31536000", out),
          "curl -I over TLS sees Strict-Transport-Security", (rc, out))


def check_files(srv, root):
    port = srv.tls_port
    big = fbytes(root, "big.bin")
    c = tconn(port, timeout=30)
    try:
        c.send(req("/big.bin"))
        st, h, body = c.header_response()
        t(st == 200 and len(body) == len(big) and hashlib.sha256(body).digest() == hashlib.sha256(big).digest(),
          "GET of a %.1f MiB file over TLS: byte-exact (sha256)" % (len(big) / MIB), (st, len(body)))
        ranges = [("bytes=1000-2999", big[1000:3000]), ("bytes=-777", big[-777:]),
                  ("bytes=5000000-5100000", big[5000000:5100001]), ("bytes=%d-" % (len(big) - 70000), big[-70000:]),
                  ("bytes=0-0", big[:1]), ("bytes=16380-16390", big[16380:16391])]
        for spec, want in ranges:
            c.send(req("/big.bin", hdrs=[("Range", spec)]))
            st, h, body = c.header_response()
            t(st == 206 and body == want, "range %s over TLS (same keep-alive connection): 206, exact bytes" % spec,
              (st, len(body), len(want), h.get("content-range")))
        c.send(req("/big.bin", hdrs=[("Range", "bytes=0-99,3000000-3000099,-50")]))
        st, h, body = c.header_response()
        m = re.match(r"multipart/byteranges; boundary=(\S+)$", h.get("content-type", ""))
        parts = []
        if m:
            for p in body.split(b"--" + m.group(1).encode())[1:-1]:
                ph, _, pb = p.partition(b"\r\n\r\n")
                parts.append(pb[:-2] if pb.endswith(b"\r\n") else pb)
        t(st == 206 and parts == [big[:100], big[3000000:3000100], big[-50:]],
          "multipart range over TLS: three parts, exact bytes", (st, h.get("content-type"), [len(p) for p in parts]))
        c.send(req("/big.bin", hdrs=[("Range", "bytes=%d-" % (len(big) + 5))]))
        st, h, body = c.header_response()
        t(st == 416, "unsatisfiable range over TLS: 416", st)
        c.send(req("/a.txt"))
        st, h, body = c.header_response()
        t(st == 200 and body == A_TXT, "the connection is still in step after the ranges", (st, body))
    finally:
        c.close()
    if os.access(CURL, os.X_OK):
        p = subprocess.run([CURL, "-s", "--max-time", "30", "--cacert", CERTS["ca"],
                            "https://localhost:%d/big.bin" % port], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=40)
        t(p.returncode == 0 and hashlib.sha256(p.stdout).digest() == hashlib.sha256(big).digest(),
          "curl downloads the big file over TLS byte-exact", (p.returncode, len(p.stdout)))
        p = subprocess.run([CURL, "-s", "--max-time", "30", "--cacert", CERTS["ca"], "-r", "4000000-4099999",
                            "https://localhost:%d/big.bin" % port], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=40)
        t(p.returncode == 0 and p.stdout == big[4000000:4100000], "curl -r over TLS: exact bytes",
          (p.returncode, len(p.stdout)))


def check_parallel(srv, root):
    """Concurrent large downloads (file chunks are encrypted through a per-worker buffer: one
    connection's bytes must never show up in another's)."""
    port = srv.tls_port
    big, mid = fbytes(root, "big.bin"), fbytes(root, "mid.bin")
    jobs = [("/big.bin", None, big), ("/big.bin", "bytes=1000000-4999999", big[1000000:5000000]),
            ("/mid.bin", None, mid), ("/big.bin", "bytes=-2500000", big[-2500000:]),
            ("/big.bin", None, big), ("/mid.bin", "bytes=1-299998", mid[1:299999])]
    res = [None] * len(jobs)

    def one(i):
        path, rng, want = jobs[i]
        try:
            c = tconn(port, timeout=30)
            c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768 + i * 8192)
            c.send(req(path, hdrs=[("Range", rng)] if rng else ()))
            if i == 0:          # a slow reader: 16 KiB then 2 ms, so its sends block and resume
                head = c.read_until(b"\r\n\r\n")
                n = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
                body = bytearray()
                while len(body) < n:
                    if not c.buf:
                        c._fill()
                    take = bytes(c.buf[:16384])
                    del c.buf[:16384]
                    body += take
                    time.sleep(0.002)
                c.close()
                res[i] = (int(head.split(b" ")[1]), hashlib.sha256(body[:n]).digest() == hashlib.sha256(want).digest(),
                          len(body))
                return
            st, h, body = c.header_response()
            c.close()
            res[i] = (st, hashlib.sha256(body).digest() == hashlib.sha256(want).digest(), len(body))
        except Exception as e:
            res[i] = repr(e)
    ths = [threading.Thread(target=one, args=(i,)) for i in range(len(jobs))]
    for th in ths:
        th.start()
    for th in ths:
        th.join(60)
    t(all(isinstance(r, tuple) and r[0] in (200, 206) and r[1] for r in res),
      "%d concurrent large downloads and ranges over TLS (one read slowly): each byte-exact" % len(jobs), res)


def check_records(srv, root):
    """Record sizes on the wire: small records (about one TCP segment) at the start of a
    response and after an idle second, 16 KiB records in bulk, none over the RFC limit."""
    port = srv.tls_port
    size = len(fbytes(root, "big.bin"))
    for v in (V13, V12):
        r = RawTls(port, ctx_any(min_version=v, max_version=v))
        lens, pending, plain = [], bytearray(), bytearray()

        def pump(want):
            while not (b"\r\n\r\n" in plain and len(plain) - plain.index(b"\r\n\r\n") - 4 >= want):
                b = r.sock.recv(1 << 20)
                if not b:
                    raise EOFError("closed after %d plaintext bytes" % len(plain))
                pending.extend(b)
                while len(pending) >= 5 and len(pending) >= 5 + int.from_bytes(pending[3:5], "big"):
                    n = int.from_bytes(pending[3:5], "big")
                    lens.append((pending[0], n))
                    r.inc.write(bytes(pending[:5 + n]))
                    del pending[:5 + n]
                try:
                    while True:
                        plain.extend(r.obj.read(1 << 20))
                except ssl.SSLWantReadError:
                    pass
        try:
            r.sock.settimeout(20)
            r.sock.sendall(r.records(req("/big.bin")))
            pump(size)
            limit = 16384 + (256 if v == V13 else 2048)
            app = [n for typ, n in lens if typ == 23]
            # (TLS 1.3: the first records may be session tickets, also type 23)
            head = app[:8]
            t(max(app) <= limit, "%s: every record of a %.1f MiB response is within the RFC limit (%d)"
              % (v.name, size / MIB, limit), max(app))
            t(sorted(head)[len(head) // 2] <= 2048, "%s: the response starts with small records (%s)" % (v.name, head),
              head)
            bulk = sum(n for n in app if n >= 16384)
            t(bulk >= size * 0.9, "%s: the bulk goes in full 16 KiB records (%.0f%% of the bytes)" % (
                v.name, 100.0 * bulk / size), sorted(set(app))[-5:])
            if v == V13:
                time.sleep(1.2)
                lens.clear()
                del plain[:]
                r.sock.sendall(r.records(req("/mid.bin")))
                pump(300000)
                app = [n for typ, n in lens if typ == 23]
                t(app and app[0] <= 2048, "%s: after an idle second, small records again (%s)" % (v.name, app[:4]),
                  app[:10])
        finally:
            r.close()


def check_pipelining(srv, root):
    port = srv.tls_port
    mid = fbytes(root, "mid.bin")
    seq = []
    for i in range(30):
        k = i % 5
        seq.append([("/a.txt?%d" % i, "GET", A_TXT), ("/mid.bin", "GET", mid), ("/sub/page.txt", "HEAD", b""),
                    ("/missing-%d" % i, "GET", None), ("/big.bin", "GET", None)][k])
    seq = [s for s in seq if s[0] != "/big.bin"] + [("/a.txt?last", "GET", A_TXT)]
    c = tconn(port, timeout=30)
    try:
        c.send(b"".join(req(p, m) for p, m, _ in seq))   # one write: many requests per record
        bad = []
        for i, (p, m, want) in enumerate(seq):
            st, h, body = c.header_response(head_only=(m == "HEAD"))
            ok = (st == 404) if want is None else (st == 200 and body == want)
            if m == "HEAD":
                ok = st == 200 and h.get("content-length") == "9" and body == b""
            if not ok:
                bad.append((i, p, st, len(body)))
        t(not bad, "%d pipelined requests in one TLS write: every response in order and exact" % len(seq), bad)
        # 300 small requests in one write (one TLS record holds them all: the HTTP layer's
        # pipelining pause must resume on plaintext already decrypted, with no new bytes)
        c.send(b"".join(req("/a.txt?p%d" % i) for i in range(300)))
        got = 0
        for i in range(300):
            st, h, body = c.header_response()
            if st != 200 or body != A_TXT:
                break
            got += 1
        t(got == 300, "300 pipelined requests in one TLS record: all answered in order", got)
        c.send(b"".join(req("/mid.bin?p%d" % i) for i in range(30)))
        got = 0
        for i in range(30):
            st, h, body = c.header_response()
            if st != 200 or body != mid:
                break
            got += 1
        t(got == 30, "30 pipelined requests for a 300 KB file (9 MB of responses): all exact", got)
        # and byte by byte: each request split over many tiny records
        data = req("/a.txt?split") + req("/sub/page.txt")
        for i in range(0, len(data), 7):
            c.send(data[i:i + 7])
        r1, r2 = c.header_response(), c.header_response()
        t(r1[0] == 200 and r1[2] == A_TXT and r2[0] == 200 and r2[2] == b"sub page\n",
          "two requests sent in 7-byte TLS records: both answered", (r1[0], r2[0]))
    finally:
        c.close()


def check_close(srv):
    c = tconn(srv.tls_port)
    try:
        c.send(req("/a.txt", close=True))
        st, h, body = c.header_response()
        closed = c.closed(3)
        t(st == 200 and body == A_TXT and closed and not c.s.unclean_eof,
          "Connection: close over TLS: the server sends close_notify before closing",
          (st, closed, "unclean EOF" if c.s.unclean_eof else ""))
    finally:
        c.close()
    c = tconn(srv.tls_port)
    try:
        c.send(req("/a.txt"))
        st, h, body = c.header_response()
        c.s.settimeout(3)
        try:
            c.s.unwrap()       # our close_notify; the server answers with its own and closes
            ok = True
            detail = ""
        except (ssl.SSLError, OSError) as e:
            ok, detail = False, repr(e)
        t(st == 200 and ok, "client close_notify on a keep-alive connection: the server answers with close_notify",
          detail)
    finally:
        c.close()


def still_serves(srv, what):
    st, h, body, i = try_tget(srv.tls_port)
    t(st == 200 and body == A_TXT, "%s: the server still serves TLS clients" % what, st)


def check_abuse(srv):
    port = srv.tls_port
    # plaintext HTTP on the TLS port
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.sendall(b"GET /a.txt HTTP/1.1\r\nHost: localhost\r\n\r\n")
    closed, got = raw_closed(s, 3)
    s.close()
    t(closed and A_TXT not in got and not got.startswith(b"\x16"),
      "plaintext HTTP sent to the TLS port: the connection is closed (no file, no handshake)", (closed, got[:100]))
    if got.startswith(b"HTTP/1."):
        t(got.split(b" ", 2)[1] == b"400", "  and the plaintext answer is a 400", got[:100])
    still_serves(srv, "after plaintext HTTP")
    hello = client_hello()
    cases = [
        ("random garbage", os.urandom(600), True),
        ("a handshake record header with a 64 KiB length", b"\x16\x03\x01\xff\xff" + os.urandom(300), True),
        ("a record of unknown type 0x63", b"\x63\x03\x03\x00\x10" + b"x" * 16, True),
        ("a fatal alert instead of a ClientHello", b"\x15\x03\x03\x00\x02\x02\x28", True),
        ("a ClientHello with its body garbled", hello[:9] + bytes(b ^ 0x5a for b in hello[9:]), True),
        ("a ClientHello cut after 40 bytes, then FIN", hello[:40], "fin"),
        ("a ClientHello cut after 3 bytes, then FIN", hello[:3], "fin"),
        ("a ClientHello followed by a fatal alert", hello + b"\x15\x03\x03\x00\x02\x02\x28", "hello"),
        ("an SSLv2-style ClientHello", bytes.fromhex("802b0103010012000000100100800300800700c0060040"
                                                     "0200800400800000000000000000000000000000"), True),
        ("40 empty handshake records", b"\x16\x03\x01\x00\x00" * 40, True),
    ]
    for name, data, how in cases:
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        try:
            s.sendall(data)
            if how == "fin":
                s.shutdown(socket.SHUT_WR)
            closed, got = raw_closed(s, 3)
        except (ConnectionResetError, BrokenPipeError):
            closed, got = True, b""
        finally:
            s.close()
        # (a complete ClientHello may get its ServerHello flight before the alert is read)
        t(closed and (how == "hello" or not got.startswith(b"\x16\x03\x03")) and b"HTTP/" not in got,
          "%s: connection closed within 3 s%s" % (name, "" if how == "hello" else ", no handshake reply"),
          (closed, got[:40]))
    still_serves(srv, "after garbage handshakes")

    # damaged records after a completed handshake
    for v in (V13, V12):
        def rt():
            return RawTls(port, ctx_any(min_version=v, max_version=v))
        r = rt()
        rec = bytearray(r.records(req("/a.txt")))
        rec[len(rec) // 2] ^= 0x01
        r.sock.sendall(bytes(rec))
        closed = r.closed()
        r.close()
        t(closed and b"HTTP/1.1" not in r.tail,
          "%s: a record with a flipped ciphertext bit closes the connection, unanswered" % v.name, r.tail[:40])
        r = rt()
        rec = r.records(req("/a.txt"))
        r.sock.sendall(rec[:len(rec) - 5])
        r.sock.shutdown(socket.SHUT_WR)
        closed = r.closed()
        r.close()
        t(closed, "%s: a truncated record then FIN: connection closed" % v.name)
        r = rt()
        r.sock.sendall(b"\x17\x03\x03\x48\x01" + os.urandom(200))   # 18433 bytes: too long
        closed = r.closed()
        r.close()
        t(closed, "%s: a record header announcing 18433 bytes: connection closed" % v.name)
        r = rt()
        r.sock.sendall(b"\x16\x03\x03\x00\x04\x00\x00\x00\x00")    # HelloRequest from a client
        closed = r.closed()
        r.close()
        t(closed, "%s: an unencrypted handshake record after the handshake: connection closed" % v.name)
        r = rt()
        r.sock.sendall(r.records(req("/a.txt")))
        ok = False
        try:
            # answer comes as records; decrypt them
            deadline = time.monotonic() + 3
            plain = b""
            while b"\r\n\r\n" not in plain and time.monotonic() < deadline:
                r.sock.settimeout(3)
                b = r.sock.recv(65536)
                if not b:
                    break
                r.inc.write(b)
                try:
                    while True:
                        plain += r.obj.read(65536)
                except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                    pass
            ok = plain.startswith(b"HTTP/1.1 200")
        finally:
            r.close()
        t(ok, "%s: the memory-BIO client itself works (control for the cases above)" % v.name)
    still_serves(srv, "after damaged records")

    # a client that resets the connection in the middle of a large response
    c = tconn(port, timeout=10)
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    c.send(req("/big.bin"))
    c.read_until(b"\r\n\r\n")
    c.read_n(20000)
    import struct
    c.s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    c.s.close()
    # many clients that connect and close at once, during and right after the handshake
    for i in range(30):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        if i % 3 == 1:
            s.sendall(hello)
        if i % 3 == 2:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.close()
    time.sleep(0.2)
    still_serves(srv, "after resets mid-download and mid-handshake")


def check_counters(srv):
    n = srv.counters()
    if "tls_handshakes" not in n:
        skip("TLS counters in the SIGUSR1 line", "portico's counters line has no tls_* fields: %r" % sorted(n)[:30])
        return
    t(n["tls_handshakes"] >= 20, "SIGUSR1: tls_handshakes counts the full handshakes (%d)" % n["tls_handshakes"], n)
    t(n.get("tls_resumed", 0) >= 4, "SIGUSR1: tls_resumed counts the resumptions (%d)" % n.get("tls_resumed", 0), n)
    t(n.get("tls_failed", 0) >= 15, "SIGUSR1: tls_failed counts the failed handshakes (%d)" % n.get("tls_failed", 0), n)
    t(n.get("tls_fail_plain", 0) >= 1, "SIGUSR1: tls_fail_plain counts plaintext on the TLS port (%d)" %
      n.get("tls_fail_plain", 0), n)
    t(n.get("tls_fail_proto", 0) >= 4, "SIGUSR1: tls_fail_proto counts version/cipher/ALPN failures (%d)" %
      n.get("tls_fail_proto", 0), n)
    t(n.get("tls_errors", 0) >= 2, "SIGUSR1: tls_errors counts established connections ended by bad records (%d)" %
      n.get("tls_errors", 0), n)


def check_ipv6(srv):
    if len(srv.tls) < 2:
        return
    host, port = srv.tls[1]
    st, h, body, i = try_tget(port, host=host, sni="localhost")
    t(st == 200 and body == A_TXT, "TLS listener on [::1]: 200", st)
    if os.access(CURL, os.X_OK):
        rc, out, err = curl("-g", "-o", "/dev/null", "-w", "%{http_code}", "https://[::1]:%d/a.txt" % port)
        t(rc == 0 and out == "200", "curl https://[::1]:PORT/ (certificate names ::1): 200", (rc, out, err))


def check_backend(srv):
    if BACKEND in ("uring", "epoll"):
        want = "io_uring backend" if BACKEND == "uring" else "epoll backend"
        t(want in srv.announce, "PORTICO_BACKEND=%s is used (%s)" % (BACKEND, want), srv.announce)
    t(re.search(r"https://127\.0\.0\.1:%d/" % srv.tls_port, srv.announce) is not None,
      "the start-up lines name the TLS listener (https://127.0.0.1:%d/)" % srv.tls_port, srv.announce)


# ---- 3. redirect, protocols, header timeout --------------------------------------------------------

def check_redirect(srv):
    tp = srv.tls_port
    for host, target, want in [("example.test", "/a.txt?x=1&y=%20z", "https://example.test:%d/a.txt?x=1&y=%%20z" % tp),
                               ("example.test:8080", "/sub/", "https://example.test:%d/sub/" % tp),
                               ("[::1]:80", "/", "https://[::1]:%d/" % tp)]:
        st, h, body = plain_get(srv.port, target, host=host)
        t(st == 301 and h.get("location") == want and "strict-transport-security" not in h,
          "--redirect-https: plaintext GET %s (Host %s) -> 301 %s, no HSTS" % (target, host, want), (st, h))
    st, h, body = plain_get(srv.port, "/a.txt", method="HEAD", host="example.test")
    t(st == 301 and h.get("location") == "https://example.test:%d/a.txt" % tp, "--redirect-https: HEAD too", (st, h))
    st, h, body, i = tget(tp)
    t(st == 200 and body == A_TXT, "--redirect-https: the TLS port serves the file (no redirect loop)", st)


def check_protocols13(srv):
    port = srv.tls_port
    err = handshake_error(port, ctx_verify(max_version=V12))
    t(err is not None, "--tls-protocols TLSv1.3: a TLS 1.2 client is refused", err)
    st, h, body, i = try_tget(port, ctx=ctx_verify(min_version=V13))
    t(st == 200 and i.get("version") == "TLSv1.3", "--tls-protocols TLSv1.3: TLS 1.3 works", (st, i.get("version")))


def check_header_timeout(srv):
    """--header-timeout 1: from accept, handshake included."""
    port = srv.tls_port
    hello = client_hello()
    t0 = time.monotonic()
    s1 = socket.create_connection(("127.0.0.1", port), timeout=5)
    s1.sendall(hello[:50])
    s2 = socket.create_connection(("127.0.0.1", port), timeout=5)
    r3 = RawTls(port)                      # handshake done, then no request
    s4 = socket.create_connection(("127.0.0.1", port), timeout=5)
    dribble_closed = None
    for i in range(0, min(len(hello), 35)):  # a ClientHello dribbled a byte every 100 ms
        try:
            s4.sendall(hello[i:i + 1])
        except (ConnectionResetError, BrokenPipeError):
            dribble_closed = (True, round(time.monotonic() - t0, 2))
            break
        time.sleep(0.1)
    res = []
    for s in (s1, s2, r3.sock, s4):
        if s is s4 and dribble_closed:
            res.append(dribble_closed)
            continue
        closed, got = raw_closed(s, max(0.5, 4 - (time.monotonic() - t0)))
        res.append((closed, round(time.monotonic() - t0, 2)))
    for s in (s1, s2, s4):
        s.close()
    r3.close()
    names = ["a partial ClientHello then nothing", "a silent connection on the TLS port",
             "a completed handshake then no request", "a ClientHello dribbled a byte per 100 ms"]
    for (closed, when), name in zip(res, names):
        t(closed and when < 4, "--header-timeout 1 (from accept): %s is closed (%.1f s)" % (name, when), res)


def check_config_file(tmp, root):
    """The TLS settings from a configuration file (-c), an HTTPS-only server (no plaintext
    listener)."""
    a, b = CERTS["a"], CERTS["b"]
    conf = os.path.join(tmp, "tls.conf")
    with open(conf, "w") as f:
        f.write("# HTTPS only\nlisten-tls 127.0.0.1:0\ntls-cert %s\ntls-key %s\ntls-cert %s\n"
                "tls-key %s\ntls-protocols TLSv1.3\nhsts 600\n" % (a[0], a[1], b[0], b[1]))
    try:
        srv = Server(tmp, "conf", root, [], ["-c", conf], plain=False, cli_tls=False)
    except RuntimeError as e:
        t(False, "config file with listen-tls, tls-cert/tls-key pairs, tls-protocols, hsts: server starts", e)
        return
    t("http://" not in srv.announce, "HTTPS-only configuration: no plaintext listener announced", srv.announce)
    st, h, body, i = try_tget(srv.tls_port, sni="b.test")
    t(st == 200 and i.get("cert") == cert_der(b[0]) and h.get("strict-transport-security", "").startswith("max-age=600"),
      "config file: the second tls-cert/tls-key pair is picked by SNI, hsts 600 sent", (st, h))
    err = handshake_error(srv.tls_port, ctx_verify(max_version=V12))
    t(err is not None, "config file: tls-protocols TLSv1.3 refuses a TLS 1.2 client", err)
    check_stop(srv, "HTTPS-only server from a config file")


# ---- 4. stalled handshakes flood -----------------------------------------------------------------

def check_flood(srv):
    port = srv.tls_port
    hello = client_hello()
    flood = []
    errors = 0
    try:
        for i in range(400):
            if i < 120:
                time.sleep(0.005)    # paced: the server reads each partial hello before the next
            try:
                s = socket.create_connection(("127.0.0.1", port), timeout=3)
                s.setblocking(False)
                try:
                    s.send(hello[:30 + i % 60])
                except OSError:
                    pass
                flood.append(s)
            except OSError:
                errors += 1
        time.sleep(0.3)
        results = []
        for i in range(20):
            t0 = time.monotonic()
            try:
                c = tconn(port, timeout=5)
                c.s.settimeout(max(0.1, 5 - (time.monotonic() - t0)))
                c.send(req("/a.txt"))
                st, h, body = c.header_response()
                c.close()
                results.append(st if body == A_TXT else "short body")
            except Exception as e:
                results.append(repr(e)[:80])
            results[-1] = (results[-1], round(time.monotonic() - t0, 2))
        ok = all(r[0] == 200 and r[1] < 5 for r in results)
        t(ok, "400 stalled partial ClientHellos (120 paced, 280 at once), --max-conns 64: 20 real TLS clients all served (worst %.2f s)"
          % max(r[1] for r in results), (errors, results))
        n = srv.counters()
        t(n.get("shed_partial", 0) + n.get("tls_fail_shed", 0) >= 30,
          "the stalled handshakes were shed as partial connections (shed %s: silent %s, partial %s; "
          "tls_fail_shed %s)" % (n.get("shed"), n.get("shed_silent"), n.get("shed_partial"),
                                 n.get("tls_fail_shed")), n)
    finally:
        for s in flood:
            s.close()
    time.sleep(0.3)
    st, h, body, i = try_tget(port)
    t(st == 200, "after the flood closes: 200", st)


# ---- 5. reload under load --------------------------------------------------------------------------

def install_pair(cur, cert, key):
    for src, dst in ((cert, cur[0]), (key, cur[1])):
        with open(src, "rb") as f:
            data = f.read()
        with open(dst + ".tmp", "wb") as f:
            f.write(data)
        os.replace(dst + ".tmp", dst)


def check_reload(srv, cur):
    port = srv.tls_port
    a_der, a2_der = cert_der(CERTS["a"][0]), cert_der(CERTS["a2"][0])
    stop = threading.Event()
    stats = {"ok": 0, "fail": [], "certs": set()}
    lock = threading.Lock()

    def loader(k):
        ctx = ctx_verify(max_version=V12 if k % 2 else None)
        while not stop.is_set():
            try:
                c = tconn(port, ctx=ctx, timeout=5)
                der = c.s.getpeercert(True)
                for j in range(3):
                    c.send(req("/a.txt?load%d" % k))
                    st, h, body = c.header_response()
                    if st != 200 or body != A_TXT:
                        raise ValueError("status %s body %r" % (st, body[:40]))
                    with lock:
                        stats["ok"] += 1
                c.close()
                with lock:
                    stats["certs"].add(der)
            except Exception as e:
                with lock:
                    stats["fail"].append(repr(e)[:120])
    ctx13 = ctx_verify(min_version=V13)
    st0, _, _, i0 = tget(port, ctx=ctx13)
    sess13 = i0.get("session")
    ka = tconn(port)                                   # a keep-alive connection across the reload
    ka.send(req("/a.txt"))
    ka_ok = ka.header_response()[0] == 200
    threads = [threading.Thread(target=loader, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    try:
        time.sleep(0.7)
        install_pair(cur, *CERTS["a2"])
        srv.p.send_signal(signal.SIGHUP)
        got = wait_for(lambda: try_tget(port, ctx=ctx_verify())[3].get("cert") == a2_der, 4)
        t(got, "SIGHUP with a new certificate on disk: new handshakes get the new certificate")
        time.sleep(0.5)
        install_pair(cur, *CERTS["a"])       # and back, while the load runs
        srv.p.send_signal(signal.SIGHUP)
        got = wait_for(lambda: try_tget(port, ctx=ctx_verify())[3].get("cert") == a_der, 4)
        t(got, "a second SIGHUP reload (back to the first certificate) under load")
        time.sleep(0.5)
    finally:
        stop.set()
        for th in threads:
            th.join(15)
    t(stats["ok"] > 40 and not stats["fail"],
      "4 clients (full handshakes, 3 requests each) through two reloads: %d requests, no failure" % stats["ok"],
      stats["fail"][:10])
    t(len(stats["certs"]) == 2, "the load saw both certificates", len(stats["certs"]))
    ka.send(req("/a.txt"))
    st, h, body = ka.header_response()
    t(ka_ok and st == 200 and body == A_TXT, "a keep-alive connection opened before the reloads still works", st)
    ka.close()
    st, _, _, i = try_tget(port, ctx=ctx13, session=sess13)
    t(st == 200 and i.get("resumed") is True, "a session ticket issued before the reloads still resumes",
      (st, i.get("resumed")))

    # bad certificates: the current one stays
    err_before = len(read_text(srv.err))
    with open(cur[0], "wb") as f:
        f.write(b"-----BEGIN CERTIFICATE-----\ngarbage\n-----END CERTIFICATE-----\n")
    srv.p.send_signal(signal.SIGHUP)
    logged = wait_for(lambda: cur[0] in read_text(srv.err)[err_before:], 3)
    st, _, _, i = try_tget(port)
    t(st == 200 and i.get("cert") == a_der and srv.p.poll() is None,
      "SIGHUP with a garbage certificate: the old certificate is still served", (st, srv.p.poll()))
    t(logged, "  and the error log names the bad file", read_text(srv.err)[err_before:][-600:])
    err_before = len(read_text(srv.err))
    install_pair(cur, CERTS["a2"][0], CERTS["b"][1])   # mismatched pair
    srv.p.send_signal(signal.SIGHUP)
    logged = wait_for(lambda: len(read_text(srv.err)) > err_before, 3)
    st, _, _, i = try_tget(port)
    t(st == 200 and i.get("cert") == a_der, "SIGHUP with a mismatched certificate and key: the old pair stays",
      (st, i.get("cert") == a2_der))
    t(logged, "  and the error is logged", read_text(srv.err)[err_before:][-600:])
    install_pair(cur, *CERTS["a2"])
    srv.p.send_signal(signal.SIGHUP)
    got = wait_for(lambda: try_tget(port, ctx=ctx_verify())[3].get("cert") == a2_der, 4)
    t(got, "fixed on disk, the next SIGHUP loads it")


# ---- main ------------------------------------------------------------------------------------------

def section(name, fn, *args):
    try:
        fn(*args)
    except Exception:
        t(False, "%s: completed without an exception" % name, traceback.format_exc())


def run_all(tmp):
    CERTS.update(make_certs(os.path.join(tmp, "certs")))
    root = build_root(tmp)
    a, b = CERTS["a"], CERTS["b"]
    section("start-up errors", check_startup_errors, tmp, root)

    hosts = ("127.0.0.1", "::1") if has_ipv6() else ("127.0.0.1",)
    srv = Server(tmp, "main", root, [a, b, CERTS["c-chain"]], ["--hsts", "31536000"], tls_hosts=hosts)
    check_backend(srv)
    section("versions", check_versions, srv)
    section("resumption", check_resumption, srv)
    section("alpn", check_alpn, srv)
    section("sni", check_sni, srv)
    section("hsts", check_hsts, srv)
    section("files", check_files, srv, root)
    section("parallel", check_parallel, srv, root)
    section("records", check_records, srv, root)
    section("pipelining", check_pipelining, srv, root)
    section("close", check_close, srv)
    section("abuse", check_abuse, srv)
    section("ipv6", check_ipv6, srv)
    section("counters", check_counters, srv)
    check_stop(srv, "main TLS server")

    try:
        srv = Server(tmp, "redirect", root, [a], ["--redirect-https", "--tls-protocols", "TLSv1.3",
                                                  "--header-timeout", "1"])
        section("redirect", check_redirect, srv)
        section("protocols", check_protocols13, srv)
        section("header-timeout", check_header_timeout, srv)
        check_stop(srv, "redirect server")
    except RuntimeError as e:
        t(False, "redirect server starts", e)

    section("config file", check_config_file, tmp, root)

    try:
        srv = Server(tmp, "flood", root, [a], ["--max-conns", "64", "--header-timeout", "30"])
        section("flood", check_flood, srv)
        check_stop(srv, "flood server")
    except RuntimeError as e:
        t(False, "flood server starts", e)

    cur = (os.path.join(tmp, "certs", "cur.pem"), os.path.join(tmp, "certs", "cur.key"))
    install_pair(cur, *a)
    try:
        srv = Server(tmp, "reload", root, [cur], ["--access-log", os.path.join(tmp, "reload.log")])
        section("reload", check_reload, srv, cur)
        check_stop(srv, "reload server")
    except RuntimeError as e:
        t(False, "reload server starts", e)


def main():
    if not os.access(PORTICO, os.X_OK):
        t(False, "portico binary exists", PORTICO)
        return 1
    tmp = tempfile.mkdtemp(prefix="pt-tls-")
    try:
        run_all(tmp)
    except Exception:
        t(False, "test run completed", traceback.format_exc())
    finally:
        for s in SERVERS:
            s.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    print("# %d checks in %.1f s (backend %s)" % (checks(), time.monotonic() - T0, BACKEND or "default"),
          flush=True)
    return 1 if failures() else 0


if __name__ == "__main__":
    sys.exit(main())
