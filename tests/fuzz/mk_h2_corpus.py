#!/usr/bin/env python3
"""Writes the seed corpus of fuzz_h2 (tests/fuzz/corpus/fuzz_h2/) with Debian's python3-hpack
and python3-hyperframe. Each seed's first byte is fuzz_h2's mode: 0x00 the rest is all the
client sends (a preface, SETTINGS, HEADERS...), 0x01 the harness sends the preface and opens
the windows first, the rest is frames. Run it again after changing the seeds; the files are
committed (the fuzzer and tests/run.sh's replay need no Python)."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import h2client  # noqa: E402,F401  (finds Debian's packages)
import hpack  # noqa: E402
import hyperframe.frame as hf  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "fuzz_h2")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


class Seed:
    def __init__(self):
        self.enc = hpack.Encoder()
        self.out = b""

    def add(self, *frames):
        for f in frames:
            self.out += f if isinstance(f, bytes) else f.serialize()
        return self

    def headers(self, sid, path="/", method="GET", extra=(), end=True, end_headers=True):
        f = hf.HeadersFrame(sid)
        f.data = self.enc.encode([(":method", method), (":scheme", "http"), (":authority", "f"),
                                  (":path", path)] + list(extra))
        if end:
            f.flags.add("END_STREAM")
        if end_headers:
            f.flags.add("END_HEADERS")
        return f

    def data(self, sid, payload, end=True):
        f = hf.DataFrame(sid)
        f.data = payload
        if end:
            f.flags.add("END_STREAM")
        return f


def settings(**kv):
    f = hf.SettingsFrame(0)
    for k, v in kv.items():
        f.settings[getattr(hf.SettingsFrame, k)] = v
    return f


def raw(s):
    return b"\x00" + PREFACE + s.out


def opened(s):
    return b"\x01" + s.out


def seeds():
    s = Seed()
    yield "get-root", raw(s.add(settings(), s.headers(1)))
    s = Seed()
    yield "get-root-opened", opened(s.add(s.headers(1)))
    s = Seed()
    paths = ["/", "/stream?A", "/stream?\x07", "/async", "/sync/x", "/file?10-99", "/big", "/nothing"]
    yield "routes", opened(s.add(*[s.headers(2 * i + 1, p) for i, p in enumerate(paths)]))
    s = Seed()
    yield "post-echo", opened(s.add(s.headers(1, "/echo", "POST", [("content-length", "10")], end=False),
                                    s.data(1, b"01234", False), s.data(1, b"56789")))
    s = Seed()
    yield "post-echo-trailers", opened(s.add(s.headers(1, "/echo", "POST", end=False), s.data(1, b"abc", False),
                                             _trailers(s, 1)))
    s = Seed()
    yield "expect-continue", opened(s.add(s.headers(1, "/echo", "POST", [("expect", "100-continue")], end=False),
                                          s.data(1, b"x" * 100)))
    s = Seed()
    h = s.headers(1, "/", extra=[("x-a", "1" * 40)], end=True, end_headers=False)
    block = h.data
    h.data = block[:10]
    k = hf.ContinuationFrame(1)
    k.data = block[10:]
    k.flags.add("END_HEADERS")
    yield "continuation", opened(s.add(h, k))
    s = Seed()
    yield "rst-after-headers", opened(s.add(s.headers(1, "/big"), hf.RstStreamFrame(1, error_code=8),
                                            s.headers(3, "/")))
    s = Seed()
    yield "control-frames", opened(s.add(hf.PingFrame(0, opaque_data=b"abcdefgh"),
                                         hf.WindowUpdateFrame(0, window_increment=1000),
                                         hf.PriorityFrame(3, depends_on=1, stream_weight=200),
                                         settings(HEADER_TABLE_SIZE=100, MAX_FRAME_SIZE=20000),
                                         s.headers(1, "/stream?B"),
                                         hf.GoAwayFrame(0, last_stream_id=0, error_code=0)))
    s = Seed()
    yield "window-zero", raw(s.add(settings(INITIAL_WINDOW_SIZE=0), s.headers(1, "/file"),
                                   hf.WindowUpdateFrame(1, window_increment=50000)))
    s = Seed()
    yield "cookies-host", opened(s.add(s.headers(1, "/", extra=[("cookie", "a=1"), ("cookie", "b=2"),
                                                                ("host", "f")])))
    s = Seed()
    yield "bad-headers", opened(s.add(s.headers(1, "/", extra=[("connection", "close")]),
                                      s.headers(3, "/", extra=[("Upper", "x")]),
                                      s.headers(5, "/a b"),
                                      s.headers(7, "/", "CONNECT")))
    s = Seed()
    yield "http11-on-h2c", b"\x00GET / HTTP/1.1\r\nHost: f\r\n\r\n"


def _trailers(s, sid):
    f = hf.HeadersFrame(sid)
    f.data = s.enc.encode([("x-trailer", "1")])
    f.flags.add("END_STREAM")
    f.flags.add("END_HEADERS")
    return f


def main():
    os.makedirs(OUT, exist_ok=True)
    for name, data in seeds():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
        print("%-22s %5d bytes" % (name, len(data)))


if __name__ == "__main__":
    main()
