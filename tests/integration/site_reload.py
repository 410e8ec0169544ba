#!/usr/bin/env python3
"""Sites (issue 17), part 4: SIGHUP reloads the config file. Under load (keep-alive and new
connections on four threads) twenty reloads alternate two configurations with zero failed
requests, and both are seen; a new host block appears; a bad file (a bad line, a docroot that
does not open) keeps the running configuration and logs "FILE:LINE: reason"; a response in
progress when the configuration changes finishes with its bytes; a keep-alive connection's
next request is still served under the configuration it started with, and closes it (a new
connection gets the new one); settings that need a restart are named in a
warning. Runs once per backend.
"""
import os
import shutil
import sys
import tempfile
import threading
import time
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ptest import t, failures, read_text  # noqa: E402
from site_config import Conn, Server, get, write  # noqa: E402

CONF = """listen 127.0.0.1:0
host a.test {{
    root {root}/{which}
    header / X-Config {which}
}}
{extra}
"""


class Load:
    """Clients asking GET / of a.test in a loop until stopped; counts bodies and failures."""

    def __init__(self, port, threads=4):
        self.port, self.stop_flag = port, False
        self.seen, self.fails, self.count = set(), [], 0
        self.lock = threading.Lock()
        self.threads = [threading.Thread(target=self.loop, args=(i % 2 == 0,)) for i in range(threads)]
        for th in self.threads:
            th.start()

    def loop(self, keepalive):
        c = None
        while not self.stop_flag:
            try:
                if c is None:
                    c = Conn(self.port)
                r = c.request("/", "a.test")
                ok = r.status == 200 and r.body in (b"config A\n", b"config B\n") and \
                    r.h.get("x-config") == r.body[7:8].decode()
                with self.lock:
                    self.count += 1
                    self.seen.add(r.body)
                    if not ok:
                        self.fails.append(repr(r))
                if not keepalive or r.h.get("connection", "").lower() == "close":
                    c.close()     # a connection older than a reload is closed after it
                    c = None
            except Exception as e:  # noqa: BLE001 - every failure counts
                with self.lock:
                    self.fails.append(repr(e))
                if c is not None:
                    c.close()
                c = None
        if c is not None:
            c.close()

    def stop(self):
        self.stop_flag = True
        for th in self.threads:
            th.join(30)


def conf(root, which, extra=""):
    return CONF.format(root=root, which=which, extra=extra)


def check_under_load(s, root):
    load = Load(s.port)
    ok_reloads = 0
    try:
        for i in range(20):
            time.sleep(0.1)
            s.write(conf(root, "B" if i % 2 == 0 else "A"))
            ok_reloads += s.reload("configuration reloaded from") is not None
    finally:
        time.sleep(0.2)
        load.stop()
    t(ok_reloads == 20, "20 reloads under load, each logged", ok_reloads)
    t(not load.fails and load.count > 100,
      "zero failed requests during the reloads (%d requests)" % load.count, load.fails[:5])
    t(load.seen == {b"config A\n", b"config B\n"}, "both configurations were served", load.seen)
    r = get(s.port, "/", "a.test")
    t(r.body == b"config A\n" and r.h.get("x-config") == "A", "the last configuration is current", r)


def check_new_host(s, root):
    s.write(conf(root, "A", "host b.test {\n    root %s/B\n}\n" % root))
    line = s.reload("configuration reloaded from")
    r = get(s.port, "/", "b.test")
    t(line and "(2 sites)" in line and r.status == 200 and r.body == b"config B\n",
      "a reload adds a host block", (line, r))


def check_bad(s, root):
    s.write(conf(root, "B") + "host {\n}\n")
    line = s.reload("reload failed")
    want = "portico: reload failed, keeping the running configuration: %s:7: host: needs at least" % s.conf
    t(line and line.startswith(want), "a bad line: logged with FILE:LINE", line)
    r = get(s.port, "/", "b.test")
    t(r.body == b"config B\n" and get(s.port, "/", "a.test").body == b"config A\n",
      "a bad line: the running configuration stays", r)
    s.write(conf(root, "missing"))
    line = s.reload("reload failed")
    t(line and ("%s:3: docroot '%s/missing': No such file" % (s.conf, root)) in line,
      "a docroot that does not open: logged with FILE:LINE", line)
    t(get(s.port, "/", "a.test").body == b"config A\n", "... and the running configuration stays")


def check_in_progress(s, root):
    """A large response started under A finishes with A's bytes after B is current."""
    s.write(conf(root, "A"))
    s.reload("configuration reloaded from")
    c = Conn(s.port, timeout=30)     # 32 MiB: more than the socket buffers hold
    c.send(b"GET /big.bin HTTP/1.1\r\nHost: a.test\r\n\r\n")
    head = c.read_until(b"\r\n\r\n")
    s.write(conf(root, "B"))
    line = s.reload("configuration reloaded from")
    n = int([x for x in head.decode().split("\r\n") if x.lower().startswith("content-length")][0].split(":")[1])
    body = c.read_n(n)
    t(line and body == b"A" * (32 << 20), "a response in progress finishes under its configuration", len(body))
    c.send(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
    r = c.response()
    t(r.body == b"config A\n" and r.h.get("connection") == "close",
      "the same connection's next request is served under its configuration, and closes it", r)
    t(c.read_all() == b"", "... and the server closes that connection after it")
    c.close()
    r = get(s.port, "/", "a.test")
    t(r.body == b"config B\n", "a new connection uses the new configuration", r)


def check_static_warning(s, root):
    s.write("max-headers 50\nidle-timeout 30\n" + conf(root, "A"))
    line = s.reload("take effect only after a restart")
    t(line and "max-headers, idle-timeout changed" in line, "settings needing a restart are named", line)


def run(tmp):
    root = os.path.join(tmp, "www")
    write(root + "/A/index.html", "config A\n")
    write(root + "/B/index.html", "config B\n")
    write(root + "/A/big.bin", b"A" * (32 << 20))
    write(root + "/B/big.bin", b"B" * 10)
    s = Server(tmp, "reload", conf(root, "A"))
    try:
        check_under_load(s, root)
        check_new_host(s, root)
        check_bad(s, root)
        check_in_progress(s, root)
        check_static_warning(s, root)
        err = read_text(s.err)
        t("ERROR" not in err, "no errors logged", err[-2000:])
    finally:
        s.stop()


def main():
    tmp = tempfile.mkdtemp(prefix="pt-site-reload.")
    try:
        run(tmp)
    except Exception:
        t(False, "no exception", traceback.format_exc())
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failures() else 0)


if __name__ == "__main__":
    main()
