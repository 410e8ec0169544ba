#!/usr/bin/env python3
"""Descriptor exhaustion and the connection limit, against the echo example (both backends).

1. --max-conns above the fd limit: accept hits EMFILE. The server must not spin (CPU stays low
   while the flood is held), must keep serving the connections it has, and must accept the
   waiting clients once descriptors are free again.
2. The connection limit (default 90% of the fd limit): clients beyond it wait in the backlog and
   are served once others leave.
"""
import os, re, resource, signal, socket, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from ptest import t, failures  # noqa: E402

B = os.environ.get("PT_BUILD", "build/san")


def start(args, nofile):
    def lim():
        resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))
    p = subprocess.Popen([B + "/examples/echo", "-l", "127.0.0.1:0", "-w", "1"] + args,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, preexec_fn=lim, text=True)
    line = p.stdout.readline()
    port = int(line.split()[2].rsplit(":", 1)[1])
    return p, port


def cpu_seconds(pid):
    f = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")


def echo_ok(s, payload=b"ping"):
    s.settimeout(5)
    s.sendall(payload)
    got = b""
    while len(got) < len(payload):
        b = s.recv(100)
        if not b:
            return False
        got += b
    return got == payload


def flood(port, count):
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        socks.append(s)
    return socks


def stop(p):
    p.send_signal(signal.SIGTERM)
    try:
        rc = p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
        rc = -9
    err = p.stderr.read()
    return rc, err


resource.setrlimit(resource.RLIMIT_NOFILE, (4096, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))

# --- 1: EMFILE ---
p, port = start(["--max-conns", "1000"], 64)
try:
    first = socket.create_connection(("127.0.0.1", port), timeout=5)
    t(echo_ok(first), "serves before the flood")
    socks = flood(port, 150)          # the server has 64 descriptors
    time.sleep(0.3)
    c0 = cpu_seconds(p.pid)
    time.sleep(1.0)
    used = cpu_seconds(p.pid) - c0
    t(used < 0.3, "no spinning on EMFILE (%.2f s CPU in 1 s)" % used)
    t(echo_ok(first, b"still here"), "an accepted connection keeps working during EMFILE")
    for s in socks[:100]:
        s.close()
    late = socks[-1]
    t(echo_ok(late, b"late"), "a client that waited in the backlog is served after recovery")
    for s in socks[100:]:
        s.close()
    fresh = socket.create_connection(("127.0.0.1", port), timeout=5)
    t(echo_ok(fresh), "a new client is served after the flood")
    fresh.close()
    first.close()
finally:
    rc, err = stop(p)
t(rc == 0, "clean exit (%d)" % rc)
t("accept failed: Too many open files" in err, "one rate-limited log line names EMFILE")
t(err.count("accept failed") <= 3, "the log is rate-limited (%d lines)" % err.count("accept failed"))
t(re.search(r"fd_reserve_used [1-9]", err) and re.search(r"shed [1-9]", err),
  "the spare descriptor was given up and connections were shed (counters)", err[-300:])
t("out of descriptors: shedding connections that sent nothing" in err,
  "out of descriptors, silent connections are shed to make room", err[-800:])

# --- 2: connection limit, pause policy ---
p, port = start(["--when-full", "pause"], 64)      # default max_conns = 90% of 64 = 57
try:
    socks = flood(port, 70)
    served = 0
    for s in socks[:50]:
        served += echo_ok(s)
    t(served == 50, "the first 50 are served (%d)" % served)
    waiting = socks[65]
    waiting.settimeout(0.3)
    waiting.sendall(b"x")
    try:
        got = waiting.recv(1)
    except socket.timeout:
        got = None
    t(got is None, "a client beyond the limit waits in the backlog")
    for s in socks[:50]:
        s.close()
    waiting.settimeout(5)
    try:
        got = waiting.recv(1)
    except socket.timeout:
        got = None
    t(got == b"x", "it is served once others leave")
    for s in socks[50:]:
        s.close()
finally:
    rc, err = stop(p)
t(rc == 0, "clean exit (%d)" % rc)

# --- 3: connection limit, shed policy (the default): room is made for new clients ---
p, port = start(["--max-conns", "20"], 64)
try:
    talkers = flood(port, 5)
    for s in talkers:
        echo_ok(s)
    silent = flood(port, 15)          # now at the limit: 5 active + 15 silent
    time.sleep(0.2)
    late = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(5)]
    served = sum(echo_ok(s) for s in late)
    t(served == 5, "beyond the limit new clients are served at once (%d of 5)" % served)
    shed = 0
    for s in silent:
        s.settimeout(2)
        try:
            shed += s.recv(1) == b""
        except (ConnectionResetError, socket.timeout) as e:
            shed += isinstance(e, ConnectionResetError)
    t(shed == 5, "the oldest silent connections were shed to make room (%d)" % shed)
    alive = sum(echo_ok(s, b"again") for s in talkers)
    t(alive == 5, "connections that talk are kept (%d of 5)" % alive)
    for s in talkers + silent + late:
        s.close()
finally:
    rc, err = stop(p)
t(rc == 0, "clean exit (%d)" % rc)
if failures():
    sys.stderr.write(err)
sys.exit(1 if failures() else 0)
