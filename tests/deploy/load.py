#!/usr/bin/env python3
"""HTTP load for tests/deploy/deploy.py, run inside the client namespace.

    load.py HOST PORT PATH BODY_FILE --keepalive K --fresh N --stop-file F --out OUT.json

K threads send requests over keep-alive connections (a new connection only after the server
closed one, which is not a failure when it says Connection: close first), N threads open a new
connection for each request (Connection: close). Every response must be 200 with the exact
body. Runs until F exists (or --seconds pass), then writes {"ok", "failed", "errors": [...]}
to OUT. Python's standard library only.
"""
import argparse
import http.client
import json
import os
import socket
import threading
import time

lock = threading.Lock()
stats = {"ok": 0, "failed": 0, "errors": [], "keepalive_ok": 0, "fresh_ok": 0}


def record(ok, kind, err=None):
    with lock:
        if ok:
            stats["ok"] += 1
            stats[kind + "_ok"] += 1
        else:
            stats["failed"] += 1
            if len(stats["errors"]) < 30:
                stats["errors"].append("%.3f %s: %s" % (time.time(), kind, err))


def keepalive(a, want, stop):
    conn = None
    while not stop():
        try:
            if conn is None:
                conn = http.client.HTTPConnection(a.host, a.port, timeout=10)
            conn.request("GET", a.path, headers={"Host": "deploy.test"})
            r = conn.getresponse()
            body = r.read()
            ok = r.status == 200 and body == want
            record(ok, "keepalive", None if ok else "status %d, %d bytes" % (r.status, len(body)))
            if r.will_close:
                conn.close()
                conn = None
        except (OSError, http.client.HTTPException) as e:
            record(False, "keepalive", repr(e))
            if conn:
                conn.close()
            conn = None
            time.sleep(0.01)
    if conn:
        conn.close()


def fresh(a, want, stop):
    req = ("GET %s HTTP/1.1\r\nHost: deploy.test\r\nConnection: close\r\n\r\n" % a.path).encode()
    while not stop():
        try:
            s = socket.create_connection((a.host, a.port), timeout=10)
            s.sendall(req)
            buf = b""
            while True:
                b = s.recv(65536)
                if not b:
                    break
                buf += b
            s.close()
            head, _, body = buf.partition(b"\r\n\r\n")
            ok = head.startswith(b"HTTP/1.1 200 ") and body == want
            record(ok, "fresh", None if ok else "%r / %d bytes" % (head[:40], len(body)))
        except OSError as e:
            record(False, "fresh", repr(e))
            time.sleep(0.01)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("path")
    p.add_argument("body_file")
    p.add_argument("--keepalive", type=int, default=4)
    p.add_argument("--fresh", type=int, default=4)
    p.add_argument("--stop-file", required=True)
    p.add_argument("--seconds", type=float, default=120)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    with open(a.body_file, "rb") as f:
        want = f.read()
    end = time.monotonic() + a.seconds

    def stop():
        return os.path.exists(a.stop_file) or time.monotonic() > end
    th = [threading.Thread(target=keepalive, args=(a, want, stop)) for _ in range(a.keepalive)]
    th += [threading.Thread(target=fresh, args=(a, want, stop)) for _ in range(a.fresh)]
    for x in th:
        x.start()
    for x in th:
        x.join()
    with open(a.out + ".tmp", "w") as f:
        json.dump(stats, f)
    os.rename(a.out + ".tmp", a.out)


if __name__ == "__main__":
    main()
