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

    def __init__(self, port, timeout=10, sock=None):
        # sock: an already connected (e.g. TLS) socket to use; else a new connection to port,
        # TLS when PT_TLS=1 (see connect() below)
        self.s = sock if sock is not None else connect(port, timeout)
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


# ---- TLS (issue 14) ----------------------------------------------------------------------------
# A suite's client connections are TLS when PT_TLS=1 (tests/integration/tls_suites.py sets it):
# connect() then wraps each socket with Python's ssl module, verifying the server against
# PT_TLS_CA (if set) for the name PT_TLS_NAME (default "localhost"), and tls_listen_args()
# gives the portico options of a TLS listener with PT_TLS_CERT / PT_TLS_KEY. Without PT_TLS
# nothing changes: connect() is socket.create_connection.

def tls_enabled():
    import os
    return os.environ.get("PT_TLS", "") not in ("", "0")


def _tls_socket_class():
    import ssl

    class TlsSocket(ssl.SSLSocket):
        """An SSLSocket that reads a TCP FIN without close_notify as EOF (b"", noted in
        unclean_eof) and reports a write to a closed connection as BrokenPipeError, like a
        plain socket, so the plaintext clients' EOF and error handling works unchanged."""
        unclean_eof = False

        def recv(self, n=1024, flags=0):
            try:
                return super().recv(n, flags)
            except ssl.SSLEOFError:
                self.unclean_eof = True
                return b""
            except ssl.SSLZeroReturnError:
                return b""

        def send(self, data, flags=0):
            try:
                return super().send(data, flags)
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as e:
                raise BrokenPipeError(str(e))

        def sendall(self, data, flags=0):
            try:
                return super().sendall(data, flags)
            except (ssl.SSLEOFError, ssl.SSLZeroReturnError) as e:
                raise BrokenPipeError(str(e))
    return TlsSocket


_TLS_CTX = {}


def tls_client_context(cafile=None, alpn=None, min_version=None, max_version=None):
    """A client context: verifies against cafile (hostname checked), or verifies nothing when
    cafile is None. min/max_version are ssl.TLSVersion values."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if cafile:
        ctx.load_verify_locations(cafile)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if min_version is not None:
        ctx.minimum_version = min_version
    if max_version is not None:
        ctx.maximum_version = max_version
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    ctx.sslsocket_class = _tls_socket_class()
    return ctx


def connect(port, timeout=10, host="127.0.0.1", tls=None, context=None, server_hostname=None,
            session=None):
    """A connected socket to host:port. tls None follows PT_TLS; True wraps it with context
    (default: PT_TLS_CA / PT_TLS_NAME from the environment), handshake done."""
    import os
    import socket
    s = socket.create_connection((host, port), timeout=timeout)
    if tls is None:
        tls = tls_enabled()
    h2 = h2_enabled() and context is None
    if not tls:
        return _h2_wrap(s, "http") if h2 else s
    if context is None:
        ca = os.environ.get("PT_TLS_CA") or None
        context = _TLS_CTX.get((ca, h2))
        if context is None:
            context = _TLS_CTX[(ca, h2)] = tls_client_context(ca, alpn=["h2"] if h2 else None)
    if server_hostname is None:
        server_hostname = os.environ.get("PT_TLS_NAME", "localhost")
    try:
        ts = context.wrap_socket(s, server_hostname=server_hostname or None, session=session)
    except BaseException:
        s.close()
        raise
    if h2 and ts.selected_alpn_protocol() != "h2":
        ts.close()
        raise ConnectionError("PT_H2: the server chose ALPN %r, not h2" % ts.selected_alpn_protocol())
    return _h2_wrap(ts, "https") if h2 else ts


# ---- HTTP/2 (issue 16) ---------------------------------------------------------------------------
# PT_H2=1 (tests/integration/h2.py sets it): connect() returns an h2client.H2Sock, which takes
# the suite's HTTP/1.1 request bytes and sends each request as an HTTP/2 stream (h2c with prior
# knowledge, or ALPN "h2" under PT_TLS), and gives the responses back as HTTP/1.1 bytes.

def h2_enabled():
    import os
    return os.environ.get("PT_H2", "") not in ("", "0")


def _h2_wrap(sock, scheme):
    from h2client import H2Sock
    try:
        return H2Sock(sock, scheme)
    except BaseException:
        sock.close()
        raise


def tls_listen_args(addr="127.0.0.1:0"):
    """portico options for a TLS listener on addr with PT_TLS_CERT / PT_TLS_KEY."""
    import os
    return ["--listen-tls", addr, "--tls-cert", os.environ["PT_TLS_CERT"],
            "--tls-key", os.environ["PT_TLS_KEY"]]


def free_port(host="127.0.0.1"):
    import socket
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam)
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def announced_port(text, scheme, host="127.0.0.1"):
    """The port of the first "portico: serving DOCROOT at SCHEME://HOST:PORT/" line, or None."""
    import re
    m = re.search(r"^portico: serving .* at %s://%s:(\d+)/$" % (scheme, re.escape(host)), text,
                  re.M)
    return int(m.group(1)) if m else None


def make_certs(d, days=3, revocation=False):
    """Test certificates made with the openssl CLI into directory d (nothing is committed):
    a CA (ECDSA P-256) and leaves signed by it: "a" ECDSA P-256 for a.test, localhost,
    127.0.0.1 and ::1; "b" RSA 2048 for b.test; "a2" a second ECDSA P-256 one for the same
    names as "a" (certificate reload); "c" ECDSA P-256 for c.test signed by an intermediate CA,
    its file holding the leaf then the intermediate (a chain to send). Valid for days; with
    revocation the leaves name a CRL and an OCSP responder (never contacted: for scanners that
    rate their absence). Returns {"ca": path, "a": (cert, key), ...}."""
    import os
    import subprocess

    def ossl(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    os.makedirs(d, exist_ok=True)
    ossl("req", "-x509", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", "ca.key", "-out", "ca.pem", "-days", str(days), "-subj",
         "/CN=Portico Test CA", "-addext", "basicConstraints=critical,CA:TRUE",
         "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    out = {"ca": os.path.join(d, "ca.pem")}
    leaves = [("a", ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "a.test",
               "DNS:a.test,DNS:localhost,IP:127.0.0.1,IP:::1", "digitalSignature"),
              ("b", ["rsa:2048"], "b.test", "DNS:b.test", "digitalSignature,keyEncipherment"),
              ("a2", ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "a.test",
               "DNS:a.test,DNS:localhost,IP:127.0.0.1,IP:::1", "digitalSignature")]
    with open(os.path.join(d, "int.ext"), "w") as f:
        f.write("basicConstraints=critical,CA:TRUE,pathlen:0\nkeyUsage=critical,keyCertSign,cRLSign\n")
    ossl("req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", "int.key", "-out", "int.csr", "-subj", "/CN=Portico Test Intermediate")
    ossl("x509", "-req", "-in", "int.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
         "-days", str(days), "-extfile", "int.ext", "-out", "int.pem")
    leaves.append(("c", ["ec", "-pkeyopt", "ec_paramgen_curve:P-256"], "c.test", "DNS:c.test",
                   "digitalSignature"))
    for name, alg, cn, san, ku in leaves:
        issuer = "int" if name == "c" else "ca"
        with open(os.path.join(d, name + ".ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,%s\nextendedKeyUsage=serverAuth\n"
                    "subjectAltName=%s\n" % (ku, san))
            if revocation:
                f.write("crlDistributionPoints=URI:http://127.0.0.1:9/ca.crl\n"
                        "authorityInfoAccess=OCSP;URI:http://127.0.0.1:9/ocsp\n")
        ossl("req", "-new", "-newkey", *alg, "-nodes", "-keyout", name + ".key",
             "-out", name + ".csr", "-subj", "/CN=" + cn)
        ossl("x509", "-req", "-in", name + ".csr", "-CA", issuer + ".pem", "-CAkey", issuer + ".key",
             "-CAcreateserial", "-days", str(days), "-extfile", name + ".ext", "-out", name + ".pem")
        out[name] = (os.path.join(d, name + ".pem"), os.path.join(d, name + ".key"))
    with open(os.path.join(d, "c-chain.pem"), "wb") as f:
        for part in ("c.pem", "int.pem"):
            with open(os.path.join(d, part), "rb") as g:
                f.write(g.read())
    out["c-chain"] = (os.path.join(d, "c-chain.pem"), out["c"][1])
    out["int"] = os.path.join(d, "int.pem")
    return out


def cert_der(pem_path):
    """The DER bytes of the first certificate of a PEM file (compare with getpeercert(True))."""
    import ssl
    with open(pem_path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())
