"""HTTP/2 clients for the integration tests, on Debian's python3-h2, python3-hyperframe and
python3-hpack (issue 16).

  H2Conn   a client connection on python-h2 (h2c with prior knowledge, or TLS with ALPN "h2"):
           requests, bodies under flow control, responses as Resp objects, GOAWAY and resets.
  RawH2    raw frames (hyperframe) over a socket, for what a well-behaved client never sends:
           floods, bad prefaces, oversized header blocks, window games.
  H2Sock   a socket look-alike that speaks HTTP/1.1 bytes to its caller and HTTP/2 on the wire:
           each request written to it becomes a stream, each response comes back as an
           HTTP/1.1 response in request order. ptest.connect() returns one when PT_H2=1, so
           the HTTP/1.1 black-box suites (portico.py) run unchanged over HTTP/2.

The Python on PATH may be one without Debian's packages: their directory is then appended to
sys.path (the three packages are pure Python). tests/integration/h2.py would shadow the h2
package for scripts run from that directory: such path entries are left out while importing."""
import collections
import http
import os
import socket
import sys
import time


def _import_h2():
    saved = sys.path[:]
    sys.path[:] = [p for p in saved if not os.path.isfile(os.path.join(p or ".", "h2.py"))]
    try:
        try:
            import h2.connection  # noqa: F401
        except ImportError:
            sys.path.append("/usr/lib/python3/dist-packages")
            saved.append("/usr/lib/python3/dist-packages")
        import h2.config  # noqa: F401
        import h2.events  # noqa: F401
        import h2.errors  # noqa: F401
        import h2.exceptions  # noqa: F401
        import h2.settings  # noqa: F401
        import hpack  # noqa: F401
        import hyperframe.frame  # noqa: F401
    finally:
        sys.path[:] = saved


_import_h2()
import h2.config  # noqa: E402
import h2.connection  # noqa: E402
import h2.errors  # noqa: E402
import h2.events as ev  # noqa: E402
import h2.exceptions  # noqa: E402
import h2.settings  # noqa: E402
import hpack  # noqa: E402
import hyperframe.frame as hf  # noqa: E402

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
ERR = h2.errors.ErrorCodes


def err_name(code):
    try:
        return ERR(code).name
    except ValueError:
        return "0x%x" % code


class _Conn(h2.connection.H2Connection):
    """python-h2 treats every frame after a GOAWAY as a protocol error; RFC 9113 6.8 says the
    streams up to its last_stream_id still complete. Frames are taken one at a time and the
    connection stays open for them after a GOAWAY."""

    def receive_data(self, data):
        events = []
        self.incoming_buffer.add_data(data)
        self.incoming_buffer.max_frame_size = self.max_inbound_frame_size
        for frame in self.incoming_buffer:
            got = self._receive_frame(frame)
            events.extend(got)
            if any(isinstance(e, ev.ConnectionTerminated) for e in got):
                self.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
        return events


class Resp:
    def __init__(self, sid):
        self.sid = sid
        self.status = None
        self.headers = []           # [(name, value)] as received (str)
        self.h = {}
        self.body = bytearray()
        self.info = []              # informational (1xx) statuses
        self.trailers = []
        self.ended = False
        self.reset = None           # RST_STREAM error code
        self.first_data_at = None

    def done(self):
        return self.ended or self.reset is not None

    def __repr__(self):
        return "<stream %d status %r headers %r body[%d]=%r%s%s>" % (
            self.sid, self.status, self.headers, len(self.body), bytes(self.body[:120]),
            " ended" if self.ended else "",
            " reset %s" % err_name(self.reset) if self.reset is not None else "")


def tls_context(alpn=("h2",)):
    """A client TLS context verifying nothing (test certificates), offering alpn."""
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def open_socket(port, tls=False, timeout=10, host="127.0.0.1", ctx=None):
    s = socket.create_connection((host, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if not tls:
        return s
    try:
        return (ctx or tls_context()).wrap_socket(s, server_hostname="localhost")
    except BaseException:
        s.close()
        raise


class H2Conn:
    """One HTTP/2 client connection. window: the stream and connection receive windows to
    advertise (None: the protocol's 65535). All calls block at most timeout seconds per read."""

    def __init__(self, port, tls=False, timeout=10, window=None, sock=None, settings=None,
                 ctx=None, auto_ack=True):
        self.s = sock if sock is not None else open_socket(port, tls, timeout, ctx=ctx)
        self.timeout = timeout
        if tls and sock is None:
            alpn = self.s.selected_alpn_protocol()
            if alpn != "h2":
                self.s.close()
                raise ConnectionError("ALPN chose %r, not h2" % alpn)
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8",
                                        validate_outbound_headers=False,
                                        normalize_outbound_headers=False,
                                        validate_inbound_headers=False)
        self.c = _Conn(config=cfg)
        self.c.initiate_connection()
        st = dict(settings or {})
        if window is not None:
            st[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE] = window
            if window > 65535:
                self.c.increment_flow_control_window(window - 65535)
        if st:
            self.c.update_settings(st)
        self.auto_ack = auto_ack
        self.streams = {}
        self.goaway = None          # the ConnectionTerminated event
        self.eof = False
        self.events = []            # every event, in order
        self.remote_settings = {}
        self.flush()

    # ---- output ----
    def flush(self):
        data = self.c.data_to_send()
        if data:
            self.s.sendall(data)

    def request(self, method, path, headers=(), body=None, end=True, authority="t",
                scheme=None):
        """Opens a stream: HEADERS (END_STREAM when there is no body and end), then the body
        (under flow control). Returns the stream id."""
        if scheme is None:
            scheme = "https" if hasattr(self.s, "selected_alpn_protocol") else "http"
        sid = self.c.get_next_available_stream_id()
        hdrs = [(":method", method), (":scheme", scheme)]
        if authority is not None:
            hdrs.append((":authority", authority))
        if path is not None:
            hdrs.append((":path", path))
        hdrs += list(headers)
        self.streams[sid] = Resp(sid)
        self.c.send_headers(sid, hdrs, end_stream=(body is None and end))
        self.flush()
        if body is not None:
            self.send_body(sid, body, end)
        return sid

    def send_body(self, sid, data, end=True, deadline=None):
        """Sends data on stream sid as the peer's windows allow (reading while they are shut)."""
        data = memoryview(bytes(data))
        deadline = deadline or time.monotonic() + self.timeout
        while len(data):
            w = min(self.c.local_flow_control_window(sid), self.c.max_outbound_frame_size)
            if self.streams.get(sid) and self.streams[sid].reset is not None:
                return
            if w <= 0:
                if time.monotonic() > deadline:
                    raise TimeoutError("the window of stream %d stayed shut" % sid)
                if not self.pump(0.5) and self.eof:
                    raise ConnectionError("closed while sending a body")
                if self.streams.get(sid) and self.streams[sid].done():
                    return
                continue
            try:
                self.c.send_data(sid, bytes(data[:w]))
            except h2.exceptions.StreamClosedError:
                return                  # reset (RST_STREAM NO_ERROR after a whole response)
            data = data[w:]
            self.flush()
        if end:
            try:
                self.c.end_stream(sid)
            except h2.exceptions.StreamClosedError:
                return
            self.flush()

    def ping(self, payload=b"12345678"):
        self.c.ping(payload)
        self.flush()

    # ---- input ----
    def pump(self, timeout=None):
        """Reads once (up to timeout seconds) and handles the events. False on EOF or when
        nothing came."""
        if self.eof:
            return False
        self.s.settimeout(self.timeout if timeout is None else timeout)
        try:
            data = self.s.recv(1 << 20)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.handle(self.c.receive_data(data))
        try:
            self.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        return True

    def handle(self, events):
        for e in events:
            self.events.append(e)
            sid = getattr(e, "stream_id", None)
            r = self.streams.get(sid) if sid else None
            if r is None and sid and not isinstance(e, ev.ConnectionTerminated):
                r = self.streams[sid] = Resp(sid)
            if isinstance(e, ev.ResponseReceived):
                r.status = int(dict(e.headers)[":status"])
                r.headers = [(k, v) for k, v in e.headers if not k.startswith(":")]
                r.h = {}
                for k, v in r.headers:
                    r.h.setdefault(k.lower(), v)
            elif isinstance(e, ev.InformationalResponseReceived):
                r.info.append(int(dict(e.headers)[":status"]))
            elif isinstance(e, ev.TrailersReceived):
                r.trailers = list(e.headers)
            elif isinstance(e, ev.DataReceived):
                if r.first_data_at is None:
                    r.first_data_at = time.monotonic()
                r.body += e.data
                if self.auto_ack and e.flow_controlled_length:
                    self.c.acknowledge_received_data(e.flow_controlled_length, sid)
            elif isinstance(e, ev.StreamEnded):
                r.ended = True
            elif isinstance(e, ev.StreamReset):
                r.reset = e.error_code
            elif isinstance(e, ev.ConnectionTerminated):
                self.goaway = e
            elif isinstance(e, ev.RemoteSettingsChanged):
                for k, v in e.changed_settings.items():
                    self.remote_settings[int(k)] = v.new_value

    def wait(self, pred, timeout=None):
        """Reads until pred() is true, EOF, or timeout seconds; returns pred()."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not pred():
            left = deadline - time.monotonic()
            if left <= 0 or self.eof:
                break
            self.pump(min(left, 1.0))
        return pred()

    def response(self, sid, timeout=None):
        """The response of stream sid once it ended or was reset (or the connection ended)."""
        r = self.streams[sid]
        self.wait(lambda: r.done() or self._refused(sid), timeout)
        return r

    def _refused(self, sid):
        return self.goaway is not None and sid > self.goaway.last_stream_id

    def get(self, path, headers=(), method="GET", body=None, timeout=None):
        return self.response(self.request(method, path, headers, body), timeout)

    def closed(self, timeout=3):
        """True when the server closes the connection within timeout seconds."""
        self.wait(lambda: self.eof, timeout)
        return self.eof

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


# ---- raw frames ---------------------------------------------------------------------------------

class RawH2:
    """Frames written and read by hand: nothing checks what is sent. preface: send the client
    preface and an empty SETTINGS (or settings given as {id: value})."""

    def __init__(self, port, tls=False, preface=True, settings=None, timeout=5, sock=None):
        self.s = sock if sock is not None else open_socket(port, tls, timeout)
        self.timeout = timeout
        self.enc = hpack.Encoder()
        self.dec = hpack.Decoder()
        self.buf = bytearray()
        self.eof = False
        self.frames = []            # every frame read
        if preface:
            f = hf.SettingsFrame(0)
            for k, v in (settings or {}).items():
                f.settings[k] = v
            self.send(PREFACE, f)

    def handshake(self):
        """Reads the server's SETTINGS and acknowledges them. The frame, or None."""
        f = self.until(lambda f: isinstance(f, hf.SettingsFrame) and "ACK" not in f.flags)
        if f is not None:
            ack = hf.SettingsFrame(0)
            ack.flags.add("ACK")
            self.send(ack)
        return f

    def send(self, *parts):
        """Writes frames (hyperframe objects) and raw bytes. False when the peer is gone."""
        data = b"".join(p if isinstance(p, (bytes, bytearray)) else p.serialize() for p in parts)
        try:
            self.s.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError, OSError):
            return False

    def block(self, hdrs):
        """An HPACK header block."""
        return self.enc.encode(list(hdrs))

    @staticmethod
    def req_headers(path="/hello", method="GET", authority="t", extra=()):
        return [(":method", method), (":scheme", "http"), (":authority", authority),
                (":path", path)] + list(extra)

    def headers(self, sid, hdrs=None, end_stream=True, end_headers=True, block=None):
        f = hf.HeadersFrame(sid)
        f.data = block if block is not None else self.block(hdrs or self.req_headers())
        if end_stream:
            f.flags.add("END_STREAM")
        if end_headers:
            f.flags.add("END_HEADERS")
        return f

    def read_frame(self, timeout=None):
        """The next frame, or None (EOF, reset, or nothing within timeout)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            if len(self.buf) >= 9:
                f, length = hf.Frame.parse_frame_header(memoryview(bytes(self.buf[:9])))
                if len(self.buf) >= 9 + length:
                    f.parse_body(memoryview(bytes(self.buf[9:9 + length])))
                    del self.buf[:9 + length]
                    self.frames.append(f)
                    return f
            if self.eof:
                return None
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.s.settimeout(left)
            try:
                data = self.s.recv(1 << 20)
            except socket.timeout:
                return None
            except (ConnectionResetError, BrokenPipeError, OSError):
                data = b""
            if not data:
                self.eof = True
                continue
            self.buf += data

    def until(self, pred, timeout=None):
        """Reads frames until pred(frame) is true (returns that frame) or EOF/timeout (None)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            f = self.read_frame(max(0.0, deadline - time.monotonic()))
            if f is None:
                return None
            if pred(f):
                return f

    def goaway(self, timeout=None):
        return self.until(lambda f: isinstance(f, hf.GoAwayFrame), timeout)

    def closed(self, timeout=None):
        """Drains frames until EOF: True if the server closed within timeout seconds."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while not self.eof and time.monotonic() < deadline:
            self.read_frame(max(0.0, deadline - time.monotonic()))
        return self.eof

    def decode(self, f):
        return [(k.decode() if isinstance(k, bytes) else k, v.decode() if isinstance(v, bytes) else v)
                for k, v in self.dec.decode(bytes(f.data))]

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


# ---- HTTP/1.1 bytes in, HTTP/2 on the wire ------------------------------------------------------

_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "host"}


class H2Sock:
    """A connected-socket look-alike for HTTP/1.1 clients: sendall() takes HTTP/1.1 request
    bytes and sends each request as an HTTP/2 stream (Host becomes :authority, hop-by-hop
    fields are dropped, Content-Length bodies go out as they are written, chunked ones once
    complete); recv() returns the responses as HTTP/1.1 bytes in request order, each with the
    status code's standard reason phrase, its fields as received, and its body framed by the
    Content-Length received (or chunked when there is none). A stream reset ends the byte
    stream (as a reset connection would); so does the server's closing. Anything that is not
    HTTP/1.1 request syntax raises ValueError."""

    def __init__(self, sock, scheme):
        self.s = sock
        self.conn = H2Conn(0, sock=sock, window=1 << 24)
        self.scheme = scheme
        self.inbuf = bytearray()
        self.cur = None             # [sid, body bytes still to come] of a request being written
        self.order = collections.deque()   # (sid, head_only) in request order
        self.emitted = {}           # sid -> [1xx and heads sent, -, chunked]
        self.out = bytearray()
        self.dead = False

    # the socket API the tests use
    def settimeout(self, t):
        self.conn.timeout = t if t is not None else 3600
        self.s.settimeout(t)

    def setsockopt(self, *a):
        return self.s.setsockopt(*a)

    def getsockopt(self, *a):
        return self.s.getsockopt(*a)

    def fileno(self):
        return self.s.fileno()

    def close(self):
        self.conn.close()

    def shutdown(self, how):
        try:
            self.s.shutdown(how)
        except OSError:
            pass

    def send(self, data):
        self.sendall(data)
        return len(data)

    def sendall(self, data):
        self.inbuf += data
        while self._one():
            pass

    def recv(self, n=1 << 16, flags=0):
        while not self.out:
            self._emit()
            if self.out or self.dead:
                break
            if self.conn.eof:
                self.dead = True
                break
            if not self.conn.pump():
                if not self.conn.eof:
                    raise socket.timeout("timed out")
        out = bytes(self.out[:n])
        del self.out[:n]
        return out

    # requests
    def _one(self):
        if self.cur is not None:                    # a Content-Length body being written
            sid, left = self.cur
            k = min(left, len(self.inbuf))
            if k:
                data = bytes(self.inbuf[:k])
                del self.inbuf[:k]
                self.conn.send_body(sid, data, end=(k == left))
            self.cur = None if k == left else [sid, left - k]
            return self.cur is None and len(self.inbuf) > 0
        i = self.inbuf.find(b"\r\n\r\n")
        if i < 0:
            return False
        head = bytes(self.inbuf[:i]).decode("latin1").split("\r\n")
        parts = head[0].split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise ValueError("not an HTTP/1.1 request line: %r" % head[0][:80])
        method, target = parts[0], parts[1]
        fields, authority, length, chunked = [], None, 0, False
        for line in head[1:]:
            k, sep, v = line.partition(":")
            if not sep:
                raise ValueError("not a header line: %r" % line[:80])
            name, v = k.strip().lower(), v.strip()
            if name == "host":
                authority = v
            elif name == "content-length":
                length = int(v)
            elif name == "transfer-encoding":
                chunked = "chunked" in v.lower()
            if name == "te" and v.lower() != "trailers" or name in _HOP:
                continue
            fields.append((name, v))
        body_at = i + 4
        if chunked:
            body, end = _dechunk(self.inbuf, body_at)
            if body is None:
                return False                        # wait for the rest
            fields.append(("content-length", str(len(body))))
            del self.inbuf[:end]
            sid = self.conn.request(method, target, fields, body if body else None,
                                    authority=authority, scheme=self.scheme)
        else:
            del self.inbuf[:body_at]
            sid = self.conn.request(method, target, fields, None, end=(length == 0),
                                    authority=authority, scheme=self.scheme)
            if length:
                self.cur = [sid, length]
        self.order.append((sid, method == "HEAD"))
        return True

    # responses
    def _emit(self):
        while self.order:
            sid, head_only = self.order[0]
            r = self.conn.streams[sid]
            e = self.emitted.setdefault(sid, [0, 0, False])
            while e[0] < len(r.info):                 # 1xx responses
                self.out += b"HTTP/1.1 %d %s\r\n\r\n" % (r.info[e[0]], _reason(r.info[e[0]]))
                e[0] += 1
            if r.status is None:
                if r.reset is not None or self.conn._refused(sid) or self.conn.eof:
                    self.dead = True                  # no response: as a reset connection
                    self.order.clear()
                return
            if e[0] == len(r.info):
                e[0] += 1
                lines = ["HTTP/1.1 %d %s" % (r.status, _reason(r.status).decode())]
                lines += ["%s: %s" % kv for kv in r.headers]
                no_body = head_only or r.status in (204, 304) or r.status < 200
                if "content-length" not in r.h and not no_body:
                    lines.append("transfer-encoding: chunked")
                    e[2] = True
                self.out += ("\r\n".join(lines) + "\r\n\r\n").encode("latin1")
            new = bytes(r.body)
            r.body.clear()                            # handed on
            if new:
                self.out += b"%x\r\n%s\r\n" % (len(new), new) if e[2] else new
            if r.reset is not None and not r.ended:
                self.dead = True                      # cut short: the byte stream ends here
                self.order.clear()
                return
            if not r.ended:
                return
            if e[2]:
                self.out += b"0\r\n\r\n"
            self.order.popleft()
            del self.conn.streams[sid], self.emitted[sid]


def _reason(status):
    try:
        return http.HTTPStatus(status).phrase.encode()
    except ValueError:
        return b"Unknown"


def _dechunk(buf, at):
    """(body, end offset) of a complete chunked body starting at buf[at:], or (None, 0)."""
    body = bytearray()
    while True:
        eol = buf.find(b"\r\n", at)
        if eol < 0:
            return None, 0
        size = int(bytes(buf[at:eol]).split(b";")[0], 16)
        at = eol + 2
        if size == 0:
            while True:                               # trailer section
                eol = buf.find(b"\r\n", at)
                if eol < 0:
                    return None, 0
                at, empty = eol + 2, eol == at
                if empty:
                    return bytes(body), at
        if len(buf) < at + size + 2:
            return None, 0
        body += buf[at:at + size]
        at += size + 2
