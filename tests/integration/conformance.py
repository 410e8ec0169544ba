#!/usr/bin/env python3
"""RFC 9110/9112 conformance table, checked against tests/integration/http_testsrv.c (both backends).

Each entry of TABLE is one raw request (or a pipelined sequence) sent on a fresh connection,
with the responses it must get, the rule it comes from and a short name. After the expected
responses the connection must be closed (after an error: no further response, e.g. never an
answer to a smuggled request) or still usable and in step (a probe request gets its own answer
next). One TAP line per entry, then a summary by category as TAP comments, then the server is
stopped with SIGTERM and must exit 0 (ASan/LSan).

Where the parser is deliberately stricter than an RFC "MAY" (src/http/parse.h, chunked.c),
the entry expects the documented behaviour and its rule says so ("portico: ...").

Test server facts used here: max_body 1 MiB; head limits 16 KiB / 8 KiB target / 8 KiB field
line / 100 fields; HeaderWait and EntityBody 400 ms. /echo-body answers "<len> <checksum>", or
400 "error <-errno>" when reading the body failed (-71 EPROTO: malformed chunked framing,
-90 EMSGSIZE: over max_body, -110 ETIMEDOUT). A chunked body whose framing is already broken
in the bytes that come with the head is answered by the layer itself before any handler runs
(400, 413 over max_body, 431 for a long trailer section; RFC 9112 7.1, 9.6), whatever the
handler would do with the body.
"""
import os, re, signal, socket, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ptest import connect, tls_enabled  # noqa: E402  (PT_TLS=1: the same table over TLS)

B = os.environ.get("PT_BUILD", "build/san")
CRLF = b"\r\n"
READ_TIMEOUT = 2.0        # a response that does not come within this is a failure
CLOSE_WAIT = 0.3          # errors close at once; well below HeaderWait (400 ms) and IdleConnection (600 ms)
PARSER_ERRORS = (400, 413, 414, 417, 431, 501, 505)

# ---- building requests ---------------------------------------------------------------------


def req(line, *headers, body=b""):
    """line CRLF, each header CRLF, CRLF, body."""
    return line + CRLF + b"".join(h + CRLF for h in headers) + CRLF + body


def get(path=b"/hello", *headers, ver=b"1.1"):
    return req(b"GET " + path + b" HTTP/" + ver, b"Host: t", *headers)


def post(path, headers, body=b"", ver=b"1.1"):
    return req(b"POST " + path + b" HTTP/" + ver, b"Host: t", *headers, body=body)


def cl(body, path=b"/echo-body", extra=(), ver=b"1.1"):
    return post(path, [b"Content-Length: %d" % len(body)] + list(extra), body, ver)


def te(enc, path=b"/echo-body", extra=(), coding=b"chunked"):
    return post(path, [b"Transfer-Encoding: " + coding] + list(extra), enc)


def chunk(data, ext=b""):
    return b"%x%s\r\n%s\r\n" % (len(data), ext, data)


def chunks(*parts):
    return b"".join(chunk(p) for p in parts) + LAST


LAST = b"0\r\n\r\n"
HELLO_REQ = get()
# A request hidden inside another one's body: the server must never answer it (status 299).
HIDDEN = get(b"/status?299")


def checksum(data):
    ck = 0
    for b in data:
        ck = (ck * 31 + b) & 0xffffffff
    return ck


# ---- expected responses --------------------------------------------------------------------
# A spec is an int (status), (status, body bytes), (status, predicate(body)) or a predicate
# (status, headers, body) -> bool.

HELLO = (200, b"Hello, World!")
NOTFOUND = (404, b"Not Found\n")
EPROTO = (400, b"error -71")       # /echo-body: the layer reported malformed chunked framing
EMSGSIZE = (400, b"error -90")     # /echo-body: the chunked total passed max_body
ETIMEDOUT = (400, b"error -110")   # /echo-body: the body stalled (EntityBody)
BODY_ERR = (400, lambda b: b.startswith(b"error -"))
L400 = (400, b"Bad Request\n")     # the layer's own answers (no handler ran)
L413 = (413, b"Content Too Large\n")
L431 = (431, b"Request Header Fields Too Large\n")


def echo(data):
    return (200, ("%d %d" % (len(data), checksum(data))).encode())


def spec_status(spec):
    if isinstance(spec, int):
        return spec
    if isinstance(spec, tuple):
        return spec[0]
    return None


def spec_ok(spec, st, hdrs, body):
    if isinstance(spec, int):
        return st == spec
    if isinstance(spec, tuple):
        want_st, want_body = spec
        if st != want_st:
            return False
        return want_body(body) if callable(want_body) else body == want_body
    return bool(spec(st, hdrs, body))


def spec_str(spec):
    if isinstance(spec, tuple):
        b = spec[1]
        return "%d %s" % (spec[0], "<predicate>" if callable(b) else repr(b[:60]))
    return str(spec) if isinstance(spec, int) else "<predicate>"


# ---- the table -----------------------------------------------------------------------------

TABLE = []
EXPECT100 = "expect-100"   # in a send list: read a 100 (Continue) interim response here


def E(cat, name, rfc, send, want, after=None, head=(), interim=None):
    """send: bytes, or a list of bytes / delays in seconds / EXPECT100.
    want: one spec or a list of specs, one per final response, in order.
    after: "close" (no further byte, then EOF) or "open" (a probe request is answered next);
    default: "close" if the last expected status is >= 400 (but 404), else "open".
    head: indices of responses to HEAD requests (no body). interim: the 1xx statuses that
    must have come before the final responses (None: not checked)."""
    want = want if isinstance(want, list) else [want]
    if after is None:
        st = spec_status(want[-1])
        after = "close" if st is not None and st >= 400 and st != 404 else "open"
    TABLE.append(dict(cat=cat, name=name, rfc=rfc, send=send, want=want, after=after,
                      head=set(head), interim=interim))


def fill_head(total, line=b"GET /hello HTTP/1.1", lead=b""):
    """A complete head of exactly total bytes (leading CRLFs included), padded with X-Fill fields."""
    base = len(lead) + len(line) + 2 + len(b"Host: t\r\n") + 2
    left = total - base
    fields = []
    i = 0
    while left > 0:
        name = b"X-Fill-%d: " % i
        n = min(4000, left - len(name) - 2)
        if n < 0:
            raise ValueError("cannot pad")
        fields.append(name + b"a" * n)
        left -= len(name) + n + 2
        i += 1
    out = lead + req(line, b"Host: t", *fields)
    assert len(out) == total, (len(out), total)
    return out


def field_line(n):
    """One field line of exactly n bytes from name to the end of the value (CRLF not counted)."""
    return b"X-Long: " + b"v" * (n - 8)


def build_table():
    V, P, CLN, TE, CH, SM, FS, RL, HO, EX, LM = ("valid", "pipeline", "content-length",
                                               "transfer-encoding", "chunked-body", "smuggling",
                                               "field-syntax", "request-line", "host",
                                               "expect", "limits")
    data70k = bytes((i * 7 + 3) % 256 for i in range(70000))

    # ---------------------------------------------------------------- valid requests
    E(V, "GET origin-form", "RFC 9112 3.2.1", HELLO_REQ, HELLO)
    E(V, "HTTP/1.0 without Host: accepted, then closed", "RFC 9112 3.2, 9.3",
      b"GET /hello HTTP/1.0\r\n\r\n", HELLO, after="close")
    E(V, "HTTP/1.0 Connection: keep-alive stays open", "RFC 9112 9.3",
      b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
      lambda st, h, b: st == 200 and h.get("connection", "").lower() == "keep-alive")
    E(V, "HTTP/1.0 with Host", "RFC 9110 7.2", b"GET /hello HTTP/1.0\r\nHost: t\r\n\r\n", HELLO,
      after="close")
    E(V, "absolute-form with Host", "RFC 9112 3.2.2",
      b"GET http://t/hello HTTP/1.1\r\nHost: t\r\n\r\n", HELLO)
    E(V, "absolute-form: the target's authority wins over a different Host", "RFC 9112 3.2.2",
      b"GET http://example.com/hello HTTP/1.1\r\nHost: other.example\r\n\r\n", HELLO)
    E(V, "absolute-form https", "RFC 9110 4.2.2",
      b"GET https://t/hello HTTP/1.1\r\nHost: t\r\n\r\n", HELLO)
    E(V, "absolute-form with port", "RFC 9112 3.2.2",
      b"GET http://t:8080/hello HTTP/1.1\r\nHost: t:8080\r\n\r\n", HELLO)
    E(V, "absolute-form scheme is case-insensitive", "RFC 9110 4.2.3, RFC 3986 3.1",
      b"GET HTTP://t/hello HTTP/1.1\r\nHost: t\r\n\r\n", HELLO)
    E(V, "absolute-form with IP-literal host", "RFC 9110 4.2.1, RFC 3986 3.2.2",
      b"GET http://[::1]:8080/hello HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", HELLO)
    E(V, "absolute-form with an empty port", "RFC 3986 3.2.3, RFC 9110 4.2.3",
      b"GET http://t:/hello HTTP/1.1\r\nHost: t\r\n\r\n", HELLO)
    E(V, "absolute-form with query", "RFC 9112 3.2.2",
      b"GET http://t/status?204 HTTP/1.1\r\nHost: t\r\n\r\n", 204)
    E(V, "absolute-form without path (means /): parsed, no route", "RFC 9112 3.2.2, RFC 9110 4.2.3",
      b"GET http://t HTTP/1.1\r\nHost: t\r\n\r\n", NOTFOUND)
    E(V, "absolute-form on HTTP/1.0 without Host", "RFC 9112 3.2.2",
      b"GET http://t/hello HTTP/1.0\r\n\r\n", HELLO, after="close")
    E(V, "OPTIONS * (asterisk-form) is accepted (no route: 404)", "RFC 9112 3.2.4",
      b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n", NOTFOUND)
    E(V, "CONNECT authority-form is accepted (no route: 404)", "RFC 9112 3.2.3",
      b"CONNECT t:443 HTTP/1.1\r\nHost: t:443\r\n\r\n", NOTFOUND)
    E(V, "one leading CRLF before the request line", "RFC 9112 2.2", CRLF + HELLO_REQ, HELLO)
    E(V, "four leading CRLFs", "RFC 9112 2.2", CRLF * 4 + HELLO_REQ, HELLO)
    E(V, "trailing CRLFs after a request are skipped", "RFC 9112 2.2", HELLO_REQ + CRLF * 2, HELLO)
    E(V, "chunked with extensions", "RFC 9112 7.1.1",
      te(b"5;ext=1\r\nhello\r\n6;a;b=c\r\n world\r\n0;last\r\n\r\n"), echo(b"hello world"))
    E(V, "chunked extension quoted-string with quoted-pair", "RFC 9112 7.1.1, RFC 9110 5.6.4",
      te(b'5;a="x\\"y; z"\r\nhello\r\n0\r\n\r\n'), echo(b"hello"))
    E(V, "chunked extension with BWS around ; and =", "RFC 9112 7.1.1",
      te(b"5 ; a = b\r\nhello\r\n0\r\n\r\n"), echo(b"hello"))
    E(V, "chunked with trailer fields", "RFC 9112 7.1.2",
      te(b"5\r\nhello\r\n0\r\nX-Trailer: v\r\nX-Other: w\r\n\r\n"), echo(b"hello"))
    E(V, "chunked upper- and lower-case hex sizes", "RFC 9112 7.1",
      te(b"A\r\n0123456789\r\nb\r\nabcdefghijk\r\n0\r\n\r\n"), echo(b"0123456789abcdefghijk"))
    E(V, "chunk size with leading zeros", "RFC 9112 7.1", te(b"0005\r\nhello\r\n000\r\n\r\n"),
      echo(b"hello"))
    E(V, "chunked: only the last chunk (empty body)", "RFC 9112 7.1", te(LAST), echo(b""))
    E(V, "chunk data is opaque (NUL, CR, LF inside)", "RFC 9112 7.1",
      te(chunks(b"a\x00b\r\nc\nd\re")), echo(b"a\x00b\r\nc\nd\re"))
    E(V, "many one-byte chunks", "RFC 9112 7.1", te(b"".join(chunk(bytes([c])) for c in b"abcdefghij") + LAST),
      echo(b"abcdefghij"))
    E(V, "70000-byte chunked body in three chunks", "RFC 9112 7.1",
      te(chunks(data70k[:1000], data70k[1000:1001], data70k[1001:])), echo(data70k))
    E(V, "Content-Length: 0", "RFC 9110 8.6", cl(b""), echo(b""))
    E(V, "POST without Content-Length or Transfer-Encoding has no body", "RFC 9112 6.3 (7)",
      post(b"/echo-body", []), (200, b"0 0"))
    E(V, "Content-Length with leading zeros", "RFC 9110 8.6",
      post(b"/echo-body", [b"Content-Length: 005"], b"hello"), echo(b"hello"))
    E(V, "Content-Length with OWS (SP, HTAB) around the value", "RFC 9110 5.5, RFC 9112 5.1",
      post(b"/echo-body", [b"Content-Length: \t5 \t"], b"hello"), echo(b"hello"))
    E(V, "obs-text in a field value", "RFC 9110 5.5",
      get(b"/hello", b"X-Obs: caf\xe9 \x80\xff"), HELLO)
    E(V, "HTAB inside a field value", "RFC 9110 5.5", get(b"/hello", b"X-Tab: a\tb"), HELLO)
    E(V, "empty field value", "RFC 9110 5.5", get(b"/hello", b"X-Empty:"), HELLO)
    E(V, "no whitespace after the colon", "RFC 9112 5.1", get(b"/hello", b"X-A:v"), HELLO)
    E(V, "many different fields", "RFC 9110 5",
      get(b"/hello", *[b"X-Field-%d: value %d" % (i, i) for i in range(20)]), HELLO)
    E(V, "repeated list field lines", "RFC 9110 5.3",
      get(b"/hello", b"Accept: text/plain", b"Accept: text/html", b"Cache-Control: no-cache",
          b"Cache-Control: max-age=0"), HELLO)
    E(V, "field names are case-insensitive (hOsT, cOnTeNt-LeNgTh)", "RFC 9110 5.1",
      req(b"POST /echo-body HTTP/1.1", b"hOsT: t", b"cOnTeNt-LeNgTh: 5", body=b"hello"),
      echo(b"hello"))
    E(V, "field name made of every tchar", "RFC 9110 5.6.2",
      get(b"/hello", b"!#$%&'*+-.^_`|~09AZaz: v"), HELLO)
    E(V, "field value with quotes, backslash and delimiters", "RFC 9110 5.5",
      get(b"/hello", b'X-V: "a\\b" (c) <d> {e} [f] ~!@#$%^&*=;,/?'), HELLO)
    E(V, "query with sub-delims, ':' '@' '/' '?'", "RFC 9112 3.2.1, RFC 3986 3.4",
      get(b"/hello?a=b&c=d;e,f:g@h/i?j!$'()*+"), HELLO)
    E(V, "empty query", "RFC 9112 3.2.1, RFC 3986 3.4", get(b"/hello?"), HELLO)
    E(V, "percent-encoded path", "RFC 9112 3.2.1, RFC 3986 2.1", get(b"/hello/%41%2f%7e"), HELLO)
    E(V, "method names are case-sensitive tokens: 'get' is another method", "RFC 9110 9.1",
      b"get /hello HTTP/1.1\r\nHost: t\r\n\r\n", HELLO)
    E(V, "unregistered method token reaches the handler", "RFC 9110 9.1, RFC 9112 3.1",
      b"PURGE-X /hello HTTP/1.1\r\nHost: t\r\n\r\n", HELLO)
    E(V, "longest registered method (UPDATEREDIRECTREF)", "RFC 9112 3.1",
      b"UPDATEREDIRECTREF /hello HTTP/1.1\r\nHost: t\r\n\r\n", HELLO)
    E(V, "Upgrade request may be ignored", "RFC 9110 7.8",
      get(b"/hello", b"Connection: Upgrade", b"Upgrade: h2c"), HELLO)
    E(V, "TE: trailers request field", "RFC 9110 10.1.4", get(b"/hello", b"TE: trailers"), HELLO)
    E(V, "empty elements in a Connection list are ignored ('Connection: ,, close')", "RFC 9110 5.6.1, 7.6.1",
      get(b"/hello", b"Connection: ,, close"), HELLO, after="close")
    E(V, "percent-encoded NUL stays encoded in the path", "RFC 3986 2.1", get(b"/hello/%00"), HELLO)
    E(V, "chunk extension quoted-string with obs-text", "RFC 9112 7.1.1, RFC 9110 5.6.4",
      te(b'5;a="caf\xe9"\r\nhello\r\n0\r\n\r\n'), echo(b"hello"))
    E(V, "HEAD: headers only", "RFC 9110 9.3.2", b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n",
      lambda st, h, b: st == 200 and h.get("content-length") == "13" and b == b"", head=[0])
    E(V, "Connection: close closes after the response", "RFC 9112 9.6",
      get(b"/hello", b"Connection: close"), HELLO, after="close")
    E(V, "Connection: keep-alive, close (list)", "RFC 9112 9.6, RFC 9110 7.6.1",
      get(b"/hello", b"Connection: keep-alive, close"), HELLO, after="close")
    E(V, "Connection option is case-insensitive (CLOSE)", "RFC 9110 7.6.1",
      get(b"/hello", b"Connection: CLOSE"), HELLO, after="close")
    E(V, "HTTP/1.0 POST with Content-Length", "RFC 9112 6.3 (6)",
      cl(b"hello", ver=b"1.0"), echo(b"hello"), after="close")
    E(V, "HTTP/1.0 POST without Content-Length has no body", "RFC 9112 6.3 (7)",
      b"POST /echo-body HTTP/1.0\r\n\r\n", (200, b"0 0"), after="close")
    E(V, "GET with a Content-Length body: framed as its body", "RFC 9110 9.3.1, RFC 9112 6.3",
      req(b"GET /echo-body HTTP/1.1", b"Host: t", b"Content-Length: 3", body=b"abc"), echo(b"abc"))
    E(V, "DELETE with a chunked body", "RFC 9110 9.3.5, RFC 9112 7.1",
      req(b"DELETE /echo-body HTTP/1.1", b"Host: t", b"Transfer-Encoding: chunked",
          body=chunks(b"xyz")), echo(b"xyz"))
    E(V, "body the handler does not read is discarded by its framing", "RFC 9112 6.3",
      cl(b"0123456789", path=b"/ignore-body"), (200, b"ignored"))
    E(V, "204 from the handler, connection stays usable", "RFC 9110 15.3.5", get(b"/status?204"),
      lambda st, h, b: st == 204 and b == b"")
    E(V, "404 for an unknown path keeps the connection", "RFC 9110 15.5.5", get(b"/nothing"),
      NOTFOUND)

    # ---------------------------------------------------------------- pipelining
    E(P, "three GETs in one write", "RFC 9112 9.3.2", HELLO_REQ * 3, [HELLO] * 3)
    E(P, "POST with Content-Length, then GET", "RFC 9112 9.3.2, 6.3",
      cl(b"hello") + HELLO_REQ, [echo(b"hello"), HELLO])
    E(P, "chunked POST, GET, Content-Length POST", "RFC 9112 9.3.2, 7.1",
      te(chunks(b"abc", b"defg")) + HELLO_REQ + cl(b"xyz"),
      [echo(b"abcdefg"), HELLO, echo(b"xyz")])
    E(P, "GET, unknown path, GET", "RFC 9112 9.3.2", HELLO_REQ + get(b"/nothing") + HELLO_REQ,
      [HELLO, NOTFOUND, HELLO])
    E(P, "Connection: close in the middle: later requests are not processed", "RFC 9112 9.6",
      HELLO_REQ + get(b"/hello", b"Connection: close") + HIDDEN, [HELLO, HELLO], after="close")
    E(P, "HTTP/1.0 request, then another: only the first is answered", "RFC 9112 9.3",
      b"GET /hello HTTP/1.0\r\n\r\n" + HIDDEN, [HELLO], after="close")
    E(P, "valid request, then an invalid one", "RFC 9112 9.3.2, 3",
      HELLO_REQ + b"GET /hello HTTP/1.1\r\n\r\n" + HIDDEN, [HELLO, 400])
    E(P, "unread body drained, then the next request", "RFC 9112 6.3, 9.3.2",
      cl(b"0123456789", path=b"/ignore-body") + HELLO_REQ, [(200, b"ignored"), HELLO])
    E(P, "unread chunked body drained, then the next request", "RFC 9112 7.1, 9.3.2",
      te(chunks(b"01234", b"56789"), path=b"/ignore-body") + HELLO_REQ, [(200, b"ignored"), HELLO])
    E(P, "HEAD, then GET: no stray body bytes", "RFC 9110 9.3.2",
      b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n" + HELLO_REQ, [200, HELLO], head=[0])
    E(P, "204, 304, then GET: no stray body bytes", "RFC 9110 6.4.1",
      get(b"/status?204") + get(b"/status?304") + HELLO_REQ, [204, 304, HELLO])
    mix = [HELLO_REQ, cl(b"abc"), get(b"/status?201"), te(chunks(b"q" * 100)), get(b"/a/b/x"),
           b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\n", get(b"/a/y"), cl(b"", path=b"/ignore-body")]
    mix_want = [HELLO, echo(b"abc"), 201, echo(b"q" * 100), (200, b"ab"), 200, (200, b"a"),
                (200, b"ignored")]
    E(P, "24 mixed requests in one write, answered in order", "RFC 9112 9.3.2",
      b"".join(mix * 3), mix_want * 3, head=[5, 13, 21])
    E(P, "CRLF after a body, before the next request", "RFC 9112 2.2",
      cl(b"abc") + CRLF + HELLO_REQ, [echo(b"abc"), HELLO])
    E(P, "head split inside a field line (two writes)", "RFC 9112 2.1",
      [b"GET /hello HTTP/1.1\r\nHo", 0.05, b"st: t\r\n\r\n"], HELLO)
    E(P, "head split between CR and LF (two writes)", "RFC 9112 2.2",
      [b"GET /hello HTTP/1.1\r", 0.05, b"\nHost: t\r\n\r\n"], HELLO)
    E(P, "head split between the last CR and LF", "RFC 9112 2.2",
      [b"GET /hello HTTP/1.1\r\nHost: t\r\n\r", 0.05, b"\n"], HELLO)
    E(P, "chunk-size line split (two writes)", "RFC 9112 7.1",
      [te(b"1"), 0.05, b"0\r\n" + b"x" * 16 + b"\r\n0\r\n\r\n"],
      echo(b"x" * 16))
    E(P, "split between chunk data and its CRLF", "RFC 9112 7.1",
      [te(b"5\r\nhello"), 0.05, b"\r\n0\r\n\r\n"], echo(b"hello"))
    E(P, "Content-Length body in two writes", "RFC 9112 6.2",
      [post(b"/echo-body", [b"Content-Length: 10"], b"01234"), 0.05, b"56789"],
      echo(b"0123456789"))
    E(P, "body text that looks like a request is not a request", "RFC 9112 6.3",
      cl(HELLO_REQ) + HELLO_REQ, [echo(HELLO_REQ), HELLO])

    # ---------------------------------------------------------------- Content-Length
    E(CLN, "two identical Content-Length fields", "RFC 9110 8.6 (portico: exactly one field)",
      post(b"/echo-body", [b"Content-Length: 5", b"Content-Length: 5"], b"hello"), 400)
    E(CLN, "Content-Length list of identical values '5, 5'", "RFC 9110 8.6 (portico: one value)",
      post(b"/echo-body", [b"Content-Length: 5, 5"], b"hello"), 400)
    E(CLN, "conflicting Content-Length fields", "RFC 9112 6.3 (5)",
      post(b"/echo-body", [b"Content-Length: 5", b"Content-Length: 6"], b"hello!"), 400)
    E(CLN, "conflicting Content-Length list '5, 6'", "RFC 9112 6.3 (5)",
      post(b"/echo-body", [b"Content-Length: 5, 6"], b"hello!"), 400)
    E(CLN, "Content-Length fields differing in name case", "RFC 9110 5.1, 8.6",
      post(b"/echo-body", [b"Content-Length: 5", b"content-length: 5"], b"hello"), 400)
    for v, why in [(b"+5", "sign"), (b"-1", "negative"), (b"0x5", "hex"), (b"5.0", "decimal point"),
                   (b"", "empty"), (b"5 5", "two numbers"), (b"1e3", "exponent"), (b"5,", "trailing comma"),
                   (b"five", "letters"), (b"\xd9\xa5", "non-ASCII digit")]:
        E(CLN, "Content-Length %s (%r)" % (why, v), "RFC 9110 8.6, RFC 9112 6.3 (5)",
          post(b"/echo-body", [b"Content-Length: " + v], b"hello"), 400)
    E(CLN, "Content-Length 25 digits with leading zeros", "RFC 9110 8.6",
      post(b"/echo-body", [b"Content-Length: " + b"0" * 24 + b"5"], b"hello"), echo(b"hello"))
    E(CLN, "Content-Length INT64_MAX", "RFC 9110 15.5.14 (portico: > max_body is 413)",
      post(b"/echo-body", [b"Content-Length: 9223372036854775807"]), 413)
    E(CLN, "Content-Length INT64_MAX + 1", "RFC 9112 6.3 (portico: > INT64_MAX is 413)",
      post(b"/echo-body", [b"Content-Length: 9223372036854775808"]), 413)
    E(CLN, "Content-Length of 40 digits", "RFC 9112 6.3 (portico: > INT64_MAX is 413)",
      post(b"/echo-body", [b"Content-Length: " + b"9" * 40]), 413)
    E(CLN, "Content-Length shorter than the data: the rest is the next request", "RFC 9112 6.3 (6)",
      post(b"/echo-body", [b"Content-Length: 3"], b"abc") + HELLO_REQ, [echo(b"abc"), HELLO])
    E(CLN, "Content-Length: 0 and Content-Length: 5", "RFC 9112 6.3 (5)",
      post(b"/echo-body", [b"Content-Length: 0", b"Content-Length: 5"], b"hello"), 400)

    # ---------------------------------------------------------------- Transfer-Encoding
    E(TE, "Transfer-Encoding and Content-Length", "RFC 9112 6.3 (3) (portico: 400)",
      post(b"/echo-body", [b"Transfer-Encoding: chunked", b"Content-Length: 5"], chunks(b"x")), 400)
    E(TE, "Content-Length then Transfer-Encoding", "RFC 9112 6.3 (3) (portico: 400)",
      post(b"/echo-body", [b"Content-Length: 5", b"Transfer-Encoding: chunked"], chunks(b"x")), 400)
    E(TE, "chunked applied twice ('chunked, chunked')", "RFC 9112 7",
      te(chunks(b"x"), coding=b"chunked, chunked"), 400)
    E(TE, "two Transfer-Encoding: chunked fields", "RFC 9112 7, RFC 9110 5.3",
      post(b"/echo-body", [b"Transfer-Encoding: chunked", b"Transfer-Encoding: chunked"], chunks(b"x")), 400)
    E(TE, "unknown coding before chunked ('gzip, chunked')", "RFC 9112 6.1 (501)",
      te(chunks(b"x"), coding=b"gzip, chunked"), 501)
    E(TE, "codings split over two fields ('gzip' + 'chunked')", "RFC 9112 6.1, RFC 9110 5.3",
      post(b"/echo-body", [b"Transfer-Encoding: gzip", b"Transfer-Encoding: chunked"], chunks(b"x")), 501)
    E(TE, "'identity, chunked'", "RFC 9112 6.1 (501)", te(chunks(b"x"), coding=b"identity, chunked"), 501)
    E(TE, "chunked not final ('chunked, gzip')", "RFC 9112 6.3 (4)",
      te(chunks(b"x"), coding=b"chunked, gzip"), 400)
    E(TE, "'gzip' alone (no chunked)", "RFC 9112 6.3 (4)", te(b"xxxxx", coding=b"gzip"), 400)
    E(TE, "'identity' alone", "RFC 9112 6.3 (4)", te(b"xxxxx", coding=b"identity"), 400)
    E(TE, "'xchunked'", "RFC 9112 6.3 (4)", te(chunks(b"x"), coding=b"xchunked"), 400)
    E(TE, "'chunked, identity'", "RFC 9112 6.3 (4)", te(chunks(b"x"), coding=b"chunked, identity"), 400)
    E(TE, "empty Transfer-Encoding value", "RFC 9112 6.3 (4)", te(chunks(b"x"), coding=b""), 400)
    E(TE, "Transfer-Encoding on HTTP/1.0", "RFC 9112 6.1 (portico: 400)",
      b"POST /echo-body HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks(b"x"), 400)
    E(TE, "Transfer-Encoding with Content-Length on HTTP/1.0", "RFC 9112 6.1",
      b"POST /echo-body HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 6\r\n\r\n" + chunks(b"x"), 400)
    E(TE, "'Chunked' (coding names are case-insensitive)", "RFC 9112 7",
      te(chunks(b"hello"), coding=b"Chunked"), echo(b"hello"))
    E(TE, "'CHUNKED'", "RFC 9112 7", te(chunks(b"hello"), coding=b"CHUNKED"), echo(b"hello"))
    E(TE, "'chunked' with trailing OWS", "RFC 9110 5.5",
      te(chunks(b"hello"), coding=b"chunked \t"), echo(b"hello"))
    E(TE, "'chunked,' (empty list element)", "RFC 9110 5.6.1 (portico: no empty elements, 400)",
      te(chunks(b"x"), coding=b"chunked,"), 400)
    E(TE, "', chunked' (empty list element)", "RFC 9110 5.6.1 (portico: no empty elements, 400)",
      te(chunks(b"x"), coding=b", chunked"), 400)
    E(TE, "'chunked;q=1' (parameter)", "RFC 9110 10.1.4 (portico: tokens only, 400)",
      te(chunks(b"x"), coding=b"chunked;q=1"), 400)
    E(TE, "quoted '\"chunked\"'", "RFC 9112 6.1", te(chunks(b"x"), coding=b'"chunked"'), 400)
    E(TE, "vertical tab after chunked", "RFC 9110 5.5", te(chunks(b"x"), coding=b"chunked\x0b"), 400)
    E(TE, "form feed before chunked", "RFC 9110 5.5", te(chunks(b"x"), coding=b"\x0cchunked"), 400)
    E(TE, "NUL after chunked", "RFC 9110 5.5", te(chunks(b"x"), coding=b"chunked\x00"), 400)
    E(TE, "chunked body on GET to a handler that ignores it", "RFC 9112 6.3 (4)",
      req(b"GET /hello HTTP/1.1", b"Host: t", b"Transfer-Encoding: chunked", body=chunks(b"abc")), HELLO)

    # ---------------------------------------------------------------- chunked body framing
    for name, body, want, rfc, *rest in [
        ("non-hex chunk size", b"g\r\nhello\r\n0\r\n\r\n", EPROTO, "RFC 9112 7.1"),
        ("chunk size '0x5'", b"0x5\r\nhello\r\n0\r\n\r\n", EPROTO, "RFC 9112 7.1"),
        ("whitespace before the chunk size", b" 5\r\nhello\r\n0\r\n\r\n", EPROTO, "RFC 9112 7.1"),
        ("negative chunk size", b"-5\r\nhello\r\n0\r\n\r\n", EPROTO, "RFC 9112 7.1"),
        ("empty chunk-size line", b"\r\nhello\r\n0\r\n\r\n", EPROTO, "RFC 9112 7.1"),
        ("whitespace after the size without an extension", b"5 \r\nhello\r\n0\r\n\r\n", EPROTO,
         "RFC 9112 7.1.1"),
        ("missing CRLF after chunk data", b"5\r\nhelloX0\r\n\r\n", EPROTO, "RFC 9112 7.1"),
        ("chunk data longer than its size", b"3\r\nhello\r\n0\r\n\r\n", EPROTO, "RFC 9112 7.1"),
        ("bare LF after the chunk size", b"5\nhello\r\n0\r\n\r\n", EPROTO,
         "RFC 9112 7.1, 2.2 (portico: CRLF only)"),
        ("bare LF after chunk data", b"5\r\nhello\n0\r\n\r\n", EPROTO,
         "RFC 9112 7.1, 2.2 (portico: CRLF only)"),
        ("bare CR after the chunk size", b"5\rhello\r\n0\r\n\r\n", EPROTO, "RFC 9112 2.2"),
        ("bare LF after the last chunk", b"5\r\nhello\r\n0\n\r\n", EPROTO,
         "RFC 9112 7.1, 2.2 (portico: CRLF only)"),
        ("bare LF ending the chunked body", b"5\r\nhello\r\n0\r\n\n", EPROTO,
         "RFC 9112 7.1, 2.2 (portico: CRLF only)"),
        ("chunk extension without a name", b"5;=x\r\nhello\r\n0\r\n\r\n", EPROTO, "RFC 9112 7.1.1"),
        ("chunk extension ';' alone", b"5;\r\nhello\r\n0\r\n\r\n", EPROTO, "RFC 9112 7.1.1"),
        ("chunk extension value with a space", b"5;a=b c\r\nhello\r\n0\r\n\r\n", EPROTO, "RFC 9112 7.1.1"),
        ("unterminated quoted chunk extension", b'5;a="b\r\nhello\r\n0\r\n\r\n', EPROTO,
         "RFC 9112 7.1.1, RFC 9110 5.6.4"),
        ("NUL in a chunk extension", b"5;a\x00=b\r\nhello\r\n0\r\n\r\n", EPROTO, "RFC 9112 7.1.1"),
        ("chunk-size line over 4 KiB (long extension)", b"5;a=" + b"x" * 5000 + b"\r\nhello\r\n0\r\n\r\n",
         EPROTO, "RFC 9112 7.1.1 (portico: size line bounded, 400)"),
        ("chunk size of 17 hex digits", b"10000000000000000\r\nhello\r\n0\r\n\r\n", BODY_ERR,
         "RFC 9112 7.1 (portico: at most 16 digits; over max_body first: 413)", L413),
        ("chunk size 5 zero-padded to 17 digits", b"00000000000000005\r\nhello\r\n0\r\n\r\n", EPROTO,
         "RFC 9112 7.1 (portico chunked.c: at most 16 hex digits)"),
        ("chunk size FFFFFFFFFFFFFFFF (over max_body)", b"FFFFFFFFFFFFFFFF\r\nhello\r\n0\r\n\r\n", EMSGSIZE,
         "RFC 9112 7.1, RFC 9110 15.5.14", L413),
        ("chunk size 0x100001 (just over max_body)", b"100001\r\nhello", EMSGSIZE,
         "RFC 9110 15.5.14", L413),
        ("obs-fold in the trailer section", b"0\r\nX-T: a\r\n b\r\n\r\n", EPROTO, "RFC 9112 7.1.2, 5.2"),
        ("bare LF in the trailer section", b"0\r\nX-T: a\n\r\n", EPROTO, "RFC 9112 7.1.2, 2.2"),
        ("invalid trailer field name 'X Y'", b"0\r\nX Y: a\r\n\r\n", EPROTO, "RFC 9112 7.1.2, RFC 9110 5.1"),
        ("whitespace before the colon in a trailer field", b"0\r\nX-T : a\r\n\r\n", EPROTO,
         "RFC 9112 7.1.2, 5.1"),
        ("trailer line without a colon", b"0\r\nNoColon\r\n\r\n", EPROTO, "RFC 9112 7.1.2, 5"),
        ("NUL in a trailer value", b"0\r\nX-T: a\x00b\r\n\r\n", EPROTO, "RFC 9112 7.1.2, RFC 9110 5.5"),
        ("whitespace before a trailer field", b"0\r\n X-T: a\r\n\r\n", EPROTO, "RFC 9112 7.1.2, 5.2"),
        ("trailer section over 8 KiB", b"0\r\n" + b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 1000) for i in range(10)) + CRLF,
         EPROTO, "RFC 9112 7.1.2 (portico: 8 KiB trailer bound: 431; the handler sees -EPROTO)", L431),
    ]:
        layer = rest[0] if rest else L400
        # the whole request in one write: the framing error is in hand before any handler runs,
        # unless it lies beyond the first receive buffer (io_uring: 2 KiB), then the reader hears
        if len(te(body)) > 2048:
            layer_or_reader = (lambda lay, w: lambda st, h, b: (st, b) in (lay, w))(layer, want)
            E(CH, name + " (with the head: %d or the reader's error)" % layer[0], rfc + ", 9.6",
              te(body), layer_or_reader, after="close")
        else:
            E(CH, name + " (with the head: %d)" % layer[0], rfc + ", 9.6", te(body), layer)
        # the body after the head: the handler reads it and hears of the error
        E(CH, name + " (after the head: the reader sees it)", rfc, [te(b""), 0.05, body], want)
    for name, body, want in [("bad chunk size", b"zz\r\nhello\r\n0\r\n\r\n", L400),
                             ("chunk size overflowing 64 bits", b"1" * 17 + b"\r\nhello\r\n0\r\n\r\n", L413),
                             ("garbage chunk extension", b"5;\x01\x02\r\nhello\r\n0\r\n\r\n", L400)]:
        E(CH, name + " in hand, to a handler that ignores the body: %d, not 200" % want[0],
          "RFC 9112 7.1, 9.6", te(body, path=b"/hello"), want)
    E(CH, "chunked body that stops after the last chunk (no final CRLF)", "RFC 9112 7.1 (EntityBody timeout)",
      te(b"5\r\nhello\r\n0\r\n"), ETIMEDOUT)
    E(CH, "framing error response announces Connection: close", "RFC 9112 9.6 (SHOULD)",
      te(b"zz\r\n"), lambda st, h, b: st == 400 and h.get("connection", "").lower() == "close",
      after="close")

    # ---------------------------------------------------------------- request smuggling
    E(SM, "CL.TE: Content-Length 6 + chunked, 'G' left over", "RFC 9112 6.3 (3), 11.2",
      post(b"/hello", [b"Content-Length: 6", b"Transfer-Encoding: chunked"], b"0\r\n\r\nG"), 400)
    E(SM, "CL.TE: request hidden after the last chunk", "RFC 9112 6.3 (3), 11.2",
      post(b"/hello", [b"Content-Length: %d" % (5 + len(HIDDEN)), b"Transfer-Encoding: chunked"],
           LAST + HIDDEN), 400)
    E(SM, "TE.CL: request hidden inside a chunk", "RFC 9112 6.3 (3), 11.2",
      post(b"/hello", [b"Transfer-Encoding: chunked", b"Content-Length: 4"],
           b"%x\r\n%s\r\n0\r\n\r\n" % (len(HIDDEN), HIDDEN)), 400)
    E(SM, "CL.TE sent in two parts (rejected before the body)", "RFC 9112 6.3 (3), 11.2",
      [post(b"/hello", [b"Content-Length: %d" % (5 + len(HIDDEN)), b"Transfer-Encoding: chunked"]),
       0.05, LAST + HIDDEN], 400)
    E(SM, "TE.TE: 'chunked' + 'cow' fields, with Content-Length", "RFC 9112 6.3 (3)",
      post(b"/hello", [b"Transfer-Encoding: chunked", b"Transfer-Encoding: cow", b"Content-Length: 4"],
           b"5c\r\n" + HIDDEN), 400)
    E(SM, "TE.TE: 'chunked' + 'identity' fields", "RFC 9112 6.3 (4)",
      post(b"/hello", [b"Transfer-Encoding: chunked", b"Transfer-Encoding: identity"], LAST + HIDDEN), 400)
    E(SM, "TE.TE: 'xchunked' with Content-Length", "RFC 9112 6.3 (3)",
      post(b"/hello", [b"Transfer-Encoding: xchunked", b"Content-Length: 4"], b"5c\r\n" + HIDDEN), 400)
    E(SM, "TE.TE: space before the colon", "RFC 9112 5.1",
      post(b"/hello", [b"Transfer-Encoding : chunked", b"Content-Length: 4"], b"5c\r\n" + HIDDEN), 400)
    E(SM, "TE.TE: whitespace before the first field", "RFC 9112 2.2",
      b"POST /hello HTTP/1.1\r\n Transfer-Encoding: chunked\r\nHost: t\r\nContent-Length: 4\r\n\r\n5c\r\n" + HIDDEN, 400)
    E(SM, "TE.TE: Transfer-Encoding in an obs-fold continuation", "RFC 9112 5.2",
      post(b"/hello", [b"X: y", b" Transfer-Encoding: chunked", b"Content-Length: 4"], b"5c\r\n" + HIDDEN), 400)
    E(SM, "TE.TE: value folded onto the next line", "RFC 9112 5.2",
      post(b"/hello", [b"Transfer-Encoding:", b" chunked", b"Content-Length: 4"], b"5c\r\n" + HIDDEN), 400)
    E(SM, "TE.TE: vertical tab before 'chunked'", "RFC 9110 5.5",
      post(b"/hello", [b"Transfer-Encoding: \x0bchunked", b"Content-Length: 4"], b"5c\r\n" + HIDDEN), 400)
    E(SM, "TE.TE: NUL inside the field name", "RFC 9110 5.1",
      post(b"/hello", [b"Transfer-Encoding\x00: chunked", b"Content-Length: 4"], b"5c\r\n" + HIDDEN), 400)
    E(SM, "TE.TE: field name on a bare-LF line", "RFC 9112 2.2 (portico: CRLF only)",
      post(b"/hello", [b"X: y\nTransfer-Encoding: chunked", b"Content-Length: 4"], b"5c\r\n" + HIDDEN), 400)
    E(SM, "TE.TE: field name after a bare CR", "RFC 9112 2.2",
      post(b"/hello", [b"X: y\rTransfer-Encoding: chunked", b"Content-Length: 4"], b"5c\r\n" + HIDDEN), 400)
    E(SM, "TE.TE: lower-case transfer-encoding with Content-Length", "RFC 9110 5.1, RFC 9112 6.3 (3)",
      post(b"/hello", [b"transfer-encoding: chunked", b"Content-Length: 4"], b"5c\r\n" + HIDDEN), 400)
    E(SM, "TE.TE: 'Transfer_Encoding' is another field: no body", "RFC 9110 5.1, RFC 9112 6.3 (7)",
      post(b"/echo-body", [b"Transfer_Encoding: chunked"], b"0\r\n\r\n"), [(200, b"0 0"), 400])
    E(SM, "TE + Content-Length: 0", "RFC 9112 6.3 (3)",
      post(b"/hello", [b"Transfer-Encoding: chunked", b"Content-Length: 0"], LAST + HIDDEN), 400)
    E(SM, "TE on HTTP/1.0 with a hidden request", "RFC 9112 6.1",
      b"POST /hello HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + HIDDEN, 400)
    E(SM, "CL.CL: 0 and 33 with a hidden request", "RFC 9112 6.3 (5)",
      post(b"/hello", [b"Content-Length: 0", b"Content-Length: %d" % len(HIDDEN)], HIDDEN), 400)
    E(SM, "CL list '0, N' with a hidden request", "RFC 9112 6.3 (5)",
      post(b"/hello", [b"Content-Length: 0, %d" % len(HIDDEN)], HIDDEN), 400)
    E(SM, "chunk size wrapping 64 bits", "RFC 9112 7.1",
      te(b"10000000000000005\r\nhello\r\n0\r\n\r\n" + HIDDEN), L413)
    E(SM, "chunk size '0x0' then a hidden request", "RFC 9112 7.1", te(b"0x0\r\n\r\n" + HIDDEN), L400)
    E(SM, "bare LF in the last chunk then a hidden request", "RFC 9112 7.1 (portico: CRLF only)",
      te(b"0\n\r\n" + HIDDEN), L400)
    E(SM, "quoted extension hiding CRLFs and a request", "RFC 9112 7.1.1",
      te(b'0;a="\r\n\r\n' + HIDDEN + b'"\r\n\r\n'), L400)
    E(SM, "malformed chunk with the head, handler ignores the body: 400", "RFC 9112 7.1, 9.6",
      te(b"zz\r\n" + HIDDEN, path=b"/hello"), L400)
    E(SM, "malformed chunk after the handler answered: 200, then close", "RFC 9112 7.1, 9.6",
      [te(b"", path=b"/hello"), 0.05, b"zz\r\n" + HIDDEN], HELLO, after="close")
    E(SM, "malformed chunk behind a valid one, after the answer: 200, then close", "RFC 9112 7.1, 9.6",
      [te(b"5\r\nhello\r\n", path=b"/hello"), 0.05, b"zz\r\n" + HIDDEN], HELLO, after="close")
    E(SM, "request inside a Content-Length body is data", "RFC 9112 6.3 (6)",
      cl(HIDDEN), echo(HIDDEN))
    E(SM, "request inside an unread GET body is discarded", "RFC 9112 6.3 (6)",
      req(b"GET /hello HTTP/1.1", b"Host: t", b"Content-Length: %d" % len(HIDDEN), body=HIDDEN), HELLO)
    E(SM, "request inside an unread HEAD body is discarded", "RFC 9112 6.3 (6)",
      req(b"HEAD /hello HTTP/1.1", b"Host: t", b"Content-Length: %d" % len(HIDDEN), body=HIDDEN), 200,
      head=[0])
    E(SM, "request inside chunk data is data", "RFC 9112 7.1", te(chunks(HIDDEN)), echo(HIDDEN))
    E(SM, "HTTP/1.0 keep-alive body hiding a request", "RFC 9112 6.3 (6)",
      cl(HIDDEN, ver=b"1.0", extra=[b"Connection: keep-alive"]), echo(HIDDEN))
    E(SM, "Content-Length in the trailer section does not frame anything", "RFC 9112 7.1.2",
      te(b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n") + HIDDEN, [echo(b"hello"), 299])
    E(SM, "Transfer-Encoding in the trailer section is ignored", "RFC 9112 7.1.2",
      te(b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n") + HELLO_REQ, [echo(b"hello"), HELLO])
    E(SM, "chunked body ends at the last chunk; the rest is the next request", "RFC 9112 7.1",
      te(chunks(b"abc")) + HIDDEN, [echo(b"abc"), 299])
    E(SM, "Content-Length and TE on a GET", "RFC 9112 6.3 (3)",
      req(b"GET /hello HTTP/1.1", b"Host: t", b"Content-Length: 5", b"Transfer-Encoding: chunked",
          body=LAST + HIDDEN), 400)

    # ---------------------------------------------------------------- field syntax
    for name, line, rfc in [
        ("space inside a field name", b"X Y: v", "RFC 9110 5.1, 5.6.2"),
        ("'(' in a field name", b"X(Y): v", "RFC 9110 5.6.2"),
        ("'@' in a field name", b"X@Y: v", "RFC 9110 5.6.2"),
        ("'/' in a field name", b"X/Y: v", "RFC 9110 5.6.2"),
        ("'[' in a field name", b"X[Y]: v", "RFC 9110 5.6.2"),
        ("',' in a field name", b"X,Y: v", "RFC 9110 5.6.2"),
        ("'=' in a field name", b"X=Y: v", "RFC 9110 5.6.2"),
        ("'\"' in a field name", b'X"Y: v', "RFC 9110 5.6.2"),
        ("non-ASCII byte in a field name", b"X\xe9Y: v", "RFC 9110 5.6.2"),
        ("NUL in a field name", b"X\x00Y: v", "RFC 9110 5.6.2"),
        ("empty field name", b": v", "RFC 9112 5"),
        ("field line without a colon", b"NoColon", "RFC 9112 5"),
        ("space before the colon", b"X-A : v", "RFC 9112 5.1"),
        ("HTAB before the colon", b"X-A\t: v", "RFC 9112 5.1"),
        ("NUL in a field value", b"X-A: a\x00b", "RFC 9110 5.5"),
        ("CTL 0x01 in a field value", b"X-A: a\x01b", "RFC 9110 5.5"),
        ("ESC in a field value", b"X-A: a\x1bb", "RFC 9110 5.5"),
        ("DEL in a field value", b"X-A: a\x7fb", "RFC 9110 5.5"),
        ("bare CR in a field value", b"X-A: a\rb", "RFC 9112 2.2"),
        ("bare CR ending a field line", b"X-A: a\r\r", "RFC 9112 2.2"),
        ("bare LF ending a field line", b"X-A: a\nX-B: b", "RFC 9112 2.2 (portico: CRLF only)"),
        ("NUL in the Host value", b"X-H: t\x00.example", "RFC 9110 5.5"),
    ]:
        E(FS, name, rfc, req(b"GET /hello HTTP/1.1", b"Host: t", line), 400)
    E(FS, "Connection option that is not a token ('a b')", "RFC 9110 7.6.1, 2.3 (invalid value rejected)",
      get(b"/hello", b"Connection: a b"), 400)
    E(FS, "obs-fold (SP continuation)", "RFC 9112 5.2 (portico: obs-fold is 400)",
      get(b"/hello", b"X-A: a", b" b"), 400)
    E(FS, "obs-fold (HTAB continuation)", "RFC 9112 5.2 (portico: obs-fold is 400)",
      get(b"/hello", b"X-A: a", b"\tb"), 400)
    E(FS, "whitespace before the first field", "RFC 9112 2.2",
      b"GET /hello HTTP/1.1\r\n X-A: a\r\nHost: t\r\n\r\n", 400)
    E(FS, "bare LF ending the head", "RFC 9112 2.2 (portico: CRLF only)",
      b"GET /hello HTTP/1.1\r\nHost: t\r\n\n", 400)
    E(FS, "bare CR as the empty line", "RFC 9112 2.2", b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\r\n", 400)
    E(FS, "LF CR LF as the empty line", "RFC 9112 2.2", b"GET /hello HTTP/1.1\r\nHost: t\n\r\n", 400)

    # ---------------------------------------------------------------- request line
    for name, raw, want, rfc in [
        ("HTTP/1.2", b"GET /hello HTTP/1.2\r\nHost: t\r\n\r\n", 505,
         "RFC 9110 2.5, 15.6.6 (portico: only 1.0 and 1.1, else 505)"),
        ("HTTP/2.0", b"GET /hello HTTP/2.0\r\nHost: t\r\n\r\n", 505, "RFC 9110 15.6.6"),
        ("HTTP/3.0", b"GET /hello HTTP/3.0\r\nHost: t\r\n\r\n", 505, "RFC 9110 15.6.6"),
        ("HTTP/0.9 (no version)", b"GET /hello\r\n\r\n", 400, "RFC 9112 3"),
        ("lower-case 'http/1.1'", b"GET /hello http/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 2.3"),
        ("version 'HTTP/1.10'", b"GET /hello HTTP/1.10\r\nHost: t\r\n\r\n", 400, "RFC 9112 2.3"),
        ("version 'HTTP/11'", b"GET /hello HTTP/11\r\nHost: t\r\n\r\n", 400, "RFC 9112 2.3"),
        ("version 'HTTP/1'", b"GET /hello HTTP/1\r\nHost: t\r\n\r\n", 400, "RFC 9112 2.3"),
        ("space after the version", b"GET /hello HTTP/1.1 \r\nHost: t\r\n\r\n", 400, "RFC 9112 3"),
        ("two spaces after the method", b"GET  /hello HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3"),
        ("two spaces before the version", b"GET /hello  HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3"),
        ("HTAB separators", b"GET\t/hello\tHTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3"),
        ("space before the method", b" GET /hello HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3"),
        ("missing request-target", b"GET HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3"),
        ("'(' in the method", b"GE(T /hello HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9110 9.1"),
        ("NUL in the method", b"G\x00ET /hello HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9110 9.1"),
        ("method of 40 characters", b"A" * 40 + b" /hello HTTP/1.1\r\nHost: t\r\n\r\n", 501, "RFC 9112 3"),
        ("target without a leading '/'", b"GET hello HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3.2"),
        ("fragment in the target", b"GET /hello#frag HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3.2"),
        ("'\"' in the target", b'GET /hello"x HTTP/1.1\r\nHost: t\r\n\r\n', 400, "RFC 9112 3.2, RFC 3986 3.3"),
        ("'<' '>' in the target", b"GET /hello<x> HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3.2, RFC 3986 3.3"),
        ("'{' in the target", b"GET /hello{x HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3.2, RFC 3986 3.3"),
        ("'\\' in the target", b"GET /hello\\x HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3.2, RFC 3986 3.3"),
        ("'|' in the target", b"GET /hello|x HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3.2, RFC 3986 3.3"),
        ("'[' in an origin-form path", b"GET /hello[1] HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3.2.1, RFC 3986 3.3"),
        ("lone '%' in the target", b"GET /hello% HTTP/1.1\r\nHost: t\r\n\r\n", 400,
         "RFC 3986 2.1 (portico: malformed %XX is 400)"),
        ("'%2' at the end of the target", b"GET /hello%2 HTTP/1.1\r\nHost: t\r\n\r\n", 400,
         "RFC 3986 2.1 (portico: malformed %XX is 400)"),
        ("'%GG' in the query", b"GET /hello?a=%GG HTTP/1.1\r\nHost: t\r\n\r\n", 400,
         "RFC 3986 2.1 (portico: malformed %XX is 400)"),
        ("non-ASCII byte in the target", b"GET /h\xe9llo HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3.2"),
        ("NUL in the target", b"GET /hel\x00lo HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3.2"),
        ("space inside the target", b"GET /hel lo HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3"),
        ("'*' with GET", b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3.2.4"),
        ("authority-form with GET", b"GET t:80 HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3.2.3"),
        ("CONNECT with origin-form", b"CONNECT /hello HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3.2.3"),
        ("CONNECT without a port", b"CONNECT t HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3.2.3"),
        ("CONNECT with absolute-form", b"CONNECT http://t/ HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3.2.3"),
        ("absolute-form with userinfo", b"GET http://u:p@t/hello HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9110 4.2.4"),
        ("absolute-form with empty userinfo", b"GET http://@t/hello HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9110 4.2.4"),
        ("absolute-form with an empty host", b"GET http:///hello HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9110 4.2.1"),
        ("absolute-form with a non-http scheme", b"GET ftp://t/hello HTTP/1.1\r\nHost: t\r\n\r\n", 400,
         "RFC 9112 3.2.2 (portico: http and https only)"),
        ("absolute-form with an invalid IP-literal", b"GET http://[zzz]/hello HTTP/1.1\r\nHost: t\r\n\r\n", 400,
         "RFC 9112 3.2, 3.2.2, RFC 3986 3.2.2"),
        ("'http:/hello' (missing '//')", b"GET http:/hello HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 3.2.2"),
        ("absolute-form with a bad port", b"GET http://t:8x/hello HTTP/1.1\r\nHost: t\r\n\r\n", 400,
         "RFC 9112 3.2.2, RFC 3986 3.2.3"),
        ("bare CR inside the request line", b"GET /hello\rHTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 2.2"),
        ("CR CR LF ending the request line", b"GET /hello HTTP/1.1\r\r\nHost: t\r\n\r\n", 400, "RFC 9112 2.2"),
        ("bare LF ending the request line", b"GET /hello HTTP/1.1\nHost: t\r\n\r\n", 400,
         "RFC 9112 2.2 (portico: CRLF only)"),
        ("bare LF before the request line", b"\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n", 400,
         "RFC 9112 2.2 (portico: CRLF only)"),
        ("bare CR before the request line", b"\rGET /hello HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 2.2"),
        ("five leading CRLFs", CRLF * 5 + HELLO_REQ, 400,
         "RFC 9112 2.2 (portico parse.c: at most 4 empty lines)"),
        ("SP before the request line", b" \r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n", 400, "RFC 9112 2.2, 3"),
    ]:
        E(RL, name, rfc, raw, want)
    E(RL, "parser error response announces Connection: close", "RFC 9112 9.6 (SHOULD)",
      b"GET /hello HTTP/1.1\r\nHost: t\r\nX Y: z\r\n\r\n",
      lambda st, h, b: st == 400 and h.get("connection", "").lower() == "close", after="close")

    # ---------------------------------------------------------------- Host
    for name, raw, want, rfc in [
        ("HTTP/1.1 without Host", b"GET /hello HTTP/1.1\r\n\r\n", 400, "RFC 9112 3.2"),
        ("two identical Host fields", get(b"/hello", b"Host: t"), 400, "RFC 9112 3.2"),
        ("two different Host fields", get(b"/hello", b"Host: u"), 400, "RFC 9112 3.2"),
        ("two Host fields on HTTP/1.0", b"GET /hello HTTP/1.0\r\nHost: t\r\nHost: t\r\n\r\n", 400, "RFC 9112 3.2"),
        ("absolute-form without Host on HTTP/1.1", b"GET http://t/hello HTTP/1.1\r\n\r\n", 400, "RFC 9112 3.2"),
        ("absolute-form with an invalid Host", b"GET http://t/hello HTTP/1.1\r\nHost: t t\r\n\r\n", 400, "RFC 9112 3.2"),
        ("Host with a path", b"GET /hello HTTP/1.1\r\nHost: t/x\r\n\r\n", 400, "RFC 9112 3.2, RFC 9110 7.2"),
        ("Host with userinfo", b"GET /hello HTTP/1.1\r\nHost: u@t\r\n\r\n", 400, "RFC 9110 7.2, 4.2.4"),
        ("Host with a space", b"GET /hello HTTP/1.1\r\nHost: t t\r\n\r\n", 400, "RFC 9110 7.2"),
        ("Host list 't, u'", b"GET /hello HTTP/1.1\r\nHost: t, u\r\n\r\n", 400, "RFC 9112 3.2"),
        ("Host with an unclosed IP-literal", b"GET /hello HTTP/1.1\r\nHost: [::1\r\n\r\n", 400, "RFC 3986 3.2.2"),
        ("Host with an empty IP-literal", b"GET /hello HTTP/1.1\r\nHost: []\r\n\r\n", 400, "RFC 3986 3.2.2"),
        ("Host with an unbracketed IPv6 address", b"GET /hello HTTP/1.1\r\nHost: ::1\r\n\r\n", 400, "RFC 3986 3.2.2"),
        ("Host with a non-numeric port", b"GET /hello HTTP/1.1\r\nHost: t:abc\r\n\r\n", 400, "RFC 3986 3.2.3"),
        ("Host with two ports", b"GET /hello HTTP/1.1\r\nHost: t:80:80\r\n\r\n", 400, "RFC 3986 3.2.3"),
        ("Host with a malformed %XX", b"GET /hello HTTP/1.1\r\nHost: t%zz\r\n\r\n", 400, "RFC 3986 2.1"),
        ("Host folded (obs-fold)", b"GET /hello HTTP/1.1\r\nHost:\r\n t\r\n\r\n", 400, "RFC 9112 5.2"),
        ("invalid Host on HTTP/1.0", b"GET /hello HTTP/1.0\r\nHost: t/x\r\n\r\n", 400, "RFC 9112 3.2"),
        ("Host fields differing in name case", b"GET /hello HTTP/1.1\r\nHost: t\r\nhost: t\r\n\r\n", 400,
         "RFC 9112 3.2, RFC 9110 5.1"),
        ("Host IP-literal that is neither IPv6 nor IPvFuture '[zzz]'", b"GET /hello HTTP/1.1\r\nHost: [zzz]\r\n\r\n",
         400, "RFC 9112 3.2, RFC 3986 3.2.2"),
        ("Host IP-literal '[1.2.3]'", b"GET /hello HTTP/1.1\r\nHost: [1.2.3]\r\n\r\n", 400,
         "RFC 9112 3.2, RFC 3986 3.2.2"),
        ("Host IP-literal with too few IPv6 groups '[1:2:3]'", b"GET /hello HTTP/1.1\r\nHost: [1:2:3]\r\n\r\n",
         400, "RFC 9112 3.2, RFC 3986 3.2.2"),
        ("Host with junk after the IP-literal", b"GET /hello HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 400,
         "RFC 9112 3.2, RFC 3986 3.2.2"),
        ("Host with a port", b"GET /hello HTTP/1.1\r\nHost: t:8080\r\n\r\n", HELLO, "RFC 9110 7.2"),
        ("Host as an IPv4-mapped IPv6 literal", b"GET /hello HTTP/1.1\r\nHost: [::ffff:1.2.3.4]\r\n\r\n", HELLO,
         "RFC 3986 3.2.2"),
        ("Host as an IPv4 address", b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n", HELLO, "RFC 9110 7.2, RFC 3986 3.2.2"),
        ("Host as an IP-literal", b"GET /hello HTTP/1.1\r\nHost: [::1]:80\r\n\r\n", HELLO, "RFC 9110 7.2, RFC 3986 3.2.2"),
        ("Host as an IPvFuture literal", b"GET /hello HTTP/1.1\r\nHost: [v1.x]\r\n\r\n", HELLO, "RFC 3986 3.2.2"),
        ("empty Host on HTTP/1.1", b"GET /hello HTTP/1.1\r\nHost:\r\n\r\n", HELLO, "RFC 9112 3.2"),
        ("Host with an empty port", b"GET /hello HTTP/1.1\r\nHost: t:\r\n\r\n", HELLO, "RFC 3986 3.2.3"),
        ("Host with percent-encoding", b"GET /hello HTTP/1.1\r\nHost: t%41\r\n\r\n", HELLO, "RFC 3986 3.2.2"),
        ("Host with sub-delims", b"GET /hello HTTP/1.1\r\nHost: a!$&'()*+,;=b\r\n\r\n", HELLO, "RFC 3986 3.2.2"),
        ("Host name case 'HoSt'", b"GET /hello HTTP/1.1\r\nHoSt: t\r\n\r\n", HELLO, "RFC 9110 5.1"),
    ]:
        E(HO, name, rfc, raw, want)

    # ---------------------------------------------------------------- Expect
    E(EX, "100-continue: 100 before the body is sent", "RFC 9110 10.1.1, 15.2.1",
      [post(b"/echo-body", [b"Content-Length: 5", b"Expect: 100-continue"]), EXPECT100, b"hello"],
      echo(b"hello"))
    E(EX, "'100-Continue' is case-insensitive", "RFC 9110 10.1.1",
      [post(b"/echo-body", [b"Content-Length: 5", b"Expect: 100-Continue"]), EXPECT100, b"hello"],
      echo(b"hello"))
    E(EX, "100-continue with chunked body", "RFC 9110 10.1.1",
      [post(b"/echo-body", [b"Transfer-Encoding: chunked", b"Expect: 100-continue"]), EXPECT100,
       chunks(b"hello")], echo(b"hello"))
    E(EX, "100-continue with the body already sent", "RFC 9110 10.1.1",
      post(b"/echo-body", [b"Content-Length: 5", b"Expect: 100-continue"], b"hello"), echo(b"hello"))
    E(EX, "100-continue, handler answers without reading: no 100, close announced",
      "RFC 9110 10.1.1, RFC 9112 9.6",
      post(b"/ignore-body", [b"Content-Length: 5", b"Expect: 100-continue"], b"hello"),
      lambda st, h, b: st == 200 and b == b"ignored" and h.get("connection", "").lower() == "close",
      after="close", interim=[])
    E(EX, "100-continue over max_body: 413, no 100", "RFC 9110 10.1.1, 15.5.14",
      post(b"/echo-body", [b"Content-Length: 2000000", b"Expect: 100-continue"]), 413, interim=[])
    E(EX, "unknown expectation", "RFC 9110 10.1.1 (417)", get(b"/hello", b"Expect: foo"), 417)
    E(EX, "100-continue plus an unknown expectation", "RFC 9110 10.1.1 (417)",
      get(b"/hello", b"Expect: 100-continue, foo"), 417)
    E(EX, "Expect with a parameter '100-continue;x=1'", "RFC 9110 10.1.1 (417)",
      get(b"/hello", b"Expect: 100-continue;x=1"), 417)
    E(EX, "empty Expect value is no expectation", "RFC 9110 10.1.1, 5.6.1",
      get(b"/hello", b"Expect:"), HELLO)
    E(EX, "Expect: 100-continue on HTTP/1.0 is ignored (no 100)", "RFC 9110 10.1.1",
      cl(b"hello", ver=b"1.0", extra=[b"Expect: 100-continue"]), echo(b"hello"), after="close", interim=[])
    E(EX, "unknown expectation on HTTP/1.0 is ignored", "RFC 9110 10.1.1",
      b"GET /hello HTTP/1.0\r\nExpect: foo\r\n\r\n", HELLO, after="close")

    # ---------------------------------------------------------------- limits
    t8k = b"/hello?" + b"a" * (8192 - 7)
    E(LM, "target of exactly 8 KiB", "RFC 9112 3 (portico: max_target 8192)", get(t8k), HELLO)
    E(LM, "target of 8 KiB + 1", "RFC 9112 3, RFC 9110 15.5.15 (414)", get(t8k + b"a"), 414)
    E(LM, "target of 20000 bytes", "RFC 9110 15.5.15 (414)", get(b"/" + b"a" * 19999), 414)
    E(LM, "absolute-form target of 8 KiB + 1", "RFC 9110 15.5.15 (414)",
      get(b"http://t" + t8k + b"a"), 414)
    E(LM, "field line of exactly 8 KiB", "RFC 9112 5 (portico: max_field 8192)",
      get(b"/hello", field_line(8192)), HELLO)
    E(LM, "field line of 8 KiB + 1", "RFC 6585 5 (431)", get(b"/hello", field_line(8193)), 431)
    E(LM, "100 field lines", "RFC 9112 5 (portico: max_headers 100)",
      get(b"/hello", *[b"X-%d: v" % i for i in range(99)]), HELLO)
    E(LM, "101 field lines", "RFC 6585 5 (431)", get(b"/hello", *[b"X-%d: v" % i for i in range(100)]), 431)
    E(LM, "1000 field lines", "RFC 6585 5 (431)", get(b"/hello", *[b"X-%d: v" % i for i in range(1000)]), 431)
    E(LM, "head of exactly 16 KiB", "RFC 9112 2.2 (portico: max_head 16384)", fill_head(16384), HELLO)
    E(LM, "head of 16 KiB + 1", "RFC 6585 5 (431)", fill_head(16385), 431)
    E(LM, "head of 16 KiB with leading CRLFs", "RFC 9112 2.2 (portico: leading CRLFs count)",
      fill_head(16384, lead=CRLF * 2), HELLO)
    E(LM, "head of 16 KiB + 1 counting leading CRLFs", "RFC 6585 5 (431)",
      fill_head(16385, lead=CRLF * 2), 431)
    E(LM, "head of 40 KiB", "RFC 6585 5 (431)",
      get(b"/hello", *[b"X-%d: %s" % (i, b"v" * 4000) for i in range(10)]), 431)
    mib = bytes((i * 13 + 5) % 256 for i in range(1 << 20))
    E(LM, "Content-Length body of exactly 1 MiB", "RFC 9110 8.6 (max_body 1 MiB)", cl(mib), echo(mib))
    E(LM, "Content-Length of 1 MiB + 1", "RFC 9110 15.5.14 (413)",
      post(b"/echo-body", [b"Content-Length: %d" % ((1 << 20) + 1)]), 413)
    E(LM, "chunked body of exactly 1 MiB", "RFC 9112 7.1 (max_body 1 MiB)",
      te(chunks(mib[:1 << 19], mib[1 << 19:])), echo(mib))
    E(LM, "chunked body of 1 MiB + 1", "RFC 9110 15.5.14 (413 when in hand, else the handler's -EMSGSIZE)",
      te(chunk(mib) + b"1\r\nx\r\n0\r\n\r\n"), lambda st, h, b: (st, b) in (L413, EMSGSIZE), after="close")
    E(LM, "chunked body of 1 MiB + 1 after the head", "RFC 9110 15.5.14 (handler sees -EMSGSIZE)",
      [te(b""), 0.05, chunk(mib) + b"1\r\nx\r\n0\r\n\r\n"], EMSGSIZE)
    E(LM, "trailer section just under 8 KiB", "RFC 9112 7.1.2 (portico: 8 KiB trailer bound)",
      te(b"5\r\nhello\r\n0\r\n" + b"".join(b"X-T%d: %s\r\n" % (i, b"v" * 1000) for i in range(7)) + CRLF),
      echo(b"hello"))


# ---- the client ----------------------------------------------------------------------------


class Client:
    def __init__(self, port):
        self.s = connect(port, READ_TIMEOUT)     # TLS when PT_TLS=1 (tls_suites.py)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.eof = False
        self.reset = False

    def send(self, data):
        try:
            self.s.sendall(data)
            return True
        except (BrokenPipeError, ConnectionResetError):
            return False

    def fill(self):
        if self.eof:
            return False
        try:
            b = self.s.recv(65536)
        except ConnectionResetError:
            self.reset = True
            b = b""
        if not b:
            self.eof = True
            return False
        self.buf += b
        return True

    def take_until(self, sep):
        while sep not in self.buf:
            if not self.fill():
                raise EOFError("connection closed (%d bytes pending: %r)" % (len(self.buf), self.buf[:80]))
        i = self.buf.index(sep) + len(sep)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def take(self, n):
        while len(self.buf) < n:
            if not self.fill():
                raise EOFError("connection closed inside a body")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def response(self, no_body=False, interim_ok=False):
        """(status, headers with lower-case names, body, [interim 1xx statuses]); with
        interim_ok a 1xx response is returned as it is instead of being skipped."""
        interim = []
        while True:
            head = self.take_until(b"\r\n\r\n").decode("latin1")
            lines = head.split("\r\n")
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or parts[0] != "HTTP/1.1" or not parts[1].isdigit():
                raise ValueError("bad status line %r" % lines[0])
            st = int(parts[1])
            h = {}
            for l in lines[1:]:
                if l:
                    k, v = l.split(":", 1)
                    h[k.strip().lower()] = v.strip()
            if 100 <= st < 200 and not interim_ok:
                interim.append(st)
                continue
            break
        if no_body or st in (204, 304) or 100 <= st < 200:
            return st, h, b"", interim
        if h.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.take_until(b"\r\n")[:-2].split(b";")[0], 16)
                if size == 0:
                    while self.take_until(b"\r\n") != b"\r\n":
                        pass
                    return st, h, body, interim
                body += self.take(size)
                self.take(2)
        if "content-length" in h:
            return st, h, self.take(int(h["content-length"])), interim
        while self.fill():
            pass
        body, self.buf = self.buf, b""
        return st, h, body, interim

    def rest(self, wait):
        """Everything that arrives until EOF (True) or until wait seconds pass (False)."""
        deadline = time.monotonic() + wait
        while not self.eof:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self.s.settimeout(left)
            try:
                self.fill()
            except socket.timeout:
                return False
        return True

    def close(self):
        self.s.close()


def run_entry(port, e):
    """(ok, detail) for one entry."""
    c = Client(port)
    got = []
    try:
        sends = e["send"] if isinstance(e["send"], list) else [e["send"]]
        for part in sends:
            if isinstance(part, float):
                time.sleep(part)
            elif part == EXPECT100:
                st, h, body, interim = c.response(interim_ok=True)
                if st != 100:
                    return False, "expected 100 Continue before the body, got %d %r" % (st, body[:80])
            else:
                c.send(part)
        interim_all = []
        for i, spec in enumerate(e["want"]):
            try:
                st, h, body, interim = c.response(no_body=i in e["head"])
            except socket.timeout:
                return False, "response %d: timed out; got %s" % (i + 1, got)
            except EOFError as ex:
                return False, "response %d: %s; got %s" % (i + 1, ex, got)
            interim_all += interim
            got.append((st, body[:60]))
            if not spec_ok(spec, st, h, body):
                return False, "response %d: want %s, got %d %r headers %s; all %s" % (
                    i + 1, spec_str(spec), st, body[:120], h, got)
        if e["interim"] is not None and interim_all != e["interim"]:
            return False, "interim responses %s, want %s" % (interim_all, e["interim"])
        if e["after"] == "close":
            closed = c.rest(CLOSE_WAIT)
            if c.buf:
                return False, "%d extra bytes after the expected responses (a smuggled response?): %r" % (
                    len(c.buf), c.buf[:200])
            if not closed:
                return False, "connection not closed within %.1f s" % CLOSE_WAIT
        else:
            probe = get(b"/status?298")
            if not c.send(probe):
                return False, "connection closed (send failed) when it should stay open"
            try:
                st, h, body, _ = c.response()
            except (EOFError, socket.timeout) as ex:
                return False, "probe: %s (connection should be open and in step)" % ex
            if st != 298:
                return False, "probe answered %d %r: out of step (extra response?)" % (st, body[:120])
            c.rest(0.01)
            if c.buf:
                return False, "extra bytes after the probe: %r" % c.buf[:200]
        return True, ""
    finally:
        c.close()


def main():
    t_start = time.monotonic()
    build_table()
    fd, fpath = tempfile.mkstemp()
    os.write(fd, b"conformance\n")
    os.close(fd)
    srv = subprocess.Popen([B + "/tests/integration/http_testsrv", fpath], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)
    n = 0
    failed = 0
    cats = {}
    try:
        line = srv.stdout.readline()
        port = int(re.search(r"127\.0\.0\.1:(\d+)", line).group(1))
        if tls_enabled() and "(tls)" not in line:
            print("1..1\nok 1 - the conformance table over TLS # SKIP http_testsrv has no TLS "
                  "listener (it says %r)" % line.strip(), flush=True)
            return
        print("1..%d" % (len(TABLE) + 1), flush=True)
        for e in TABLE:
            n += 1
            try:
                ok, detail = run_entry(port, e)
            except Exception as ex:          # a client-side surprise is a failure, not a crash
                ok, detail = False, "%s: %s" % (type(ex).__name__, ex)
            cat = cats.setdefault(e["cat"], [0, 0])
            cat[0] += 1
            if ok:
                cat[1] += 1
            else:
                failed += 1
            print("%s %d - %s [%s]" % ("ok" if ok else "not ok", n, e["name"], e["rfc"]), flush=True)
            if not ok:
                raw = e["send"] if isinstance(e["send"], bytes) else b"".join(
                    p for p in e["send"] if isinstance(p, bytes))
                print("#   sent: %r%s" % (raw[:300], "..." if len(raw) > 300 else ""), flush=True)
                print("#   " + detail[:800].replace("\n", "\n#   "), flush=True)
    finally:
        srv.send_signal(signal.SIGTERM)
        try:
            rc = srv.wait(15)
        except subprocess.TimeoutExpired:
            srv.kill()
            rc = -9
        err = srv.stderr.read()
        os.unlink(fpath)
    n += 1
    ok = rc == 0
    print("%s %d - server exits 0 after SIGTERM (no leaks)" % ("ok" if ok else "not ok", n), flush=True)
    if not ok:
        failed += 1
        print("# exit %d\n# %s" % (rc, err[-3000:].replace("\n", "\n# ")), flush=True)
    print("# %-20s %7s %7s %7s" % ("category", "entries", "passed", "failed"))
    for k, (total, passed) in cats.items():
        print("# %-20s %7d %7d %7d" % (k, total, passed, total - passed))
    print("# %-20s %7d %7d %7d" % ("total", len(TABLE), sum(v[1] for v in cats.values()),
                                   len(TABLE) - sum(v[1] for v in cats.values())))
    print("# backend %s, %.1f s" % (os.environ.get("PORTICO_BACKEND", "default"), time.monotonic() - t_start))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
