#!/usr/bin/env python3
"""The deployment test (issue 21, `make deploy-test`): HAProxy in front of three portico
instances, each "machine" a network namespace of its own, joined by veth pairs.

    client ns            balancer ns                         server ns (x3)
    198.18.1.100 --veth-- 198.18.1.1  HAProxy  198.18.2.1 --bridge--veth-- 198.18.2.11..13
                                                                          portico :8080
                                                                          admin   :9000

Addresses come from 198.18.0.0/15 (reserved for benchmarking) and exist only inside the
namespaces this test creates; no namespace has a default route, so nothing leads out. HAProxy
(Debian's 2.6) balances round-robin with send-proxy-v2; its health checks ask each instance's
admin listener for /healthz (port 9000: no PROXY header there). The portico instances run with
--proxy-protocol --trusted-proxies 198.18.2.1, --drain-delay and an access log each.

Checks (TAP):
 1. Requests spread over all three instances (each has at least 20% of the access-log lines).
 2. Rolling restart under load (keep-alive and new-connection clients): each instance in turn
    gets SIGTERM, drains (/healthz 503: HAProxy takes it out), exits 0, starts again and is
    back in service before the next: zero failed requests.
 3. SIGKILL of one instance under load: HAProxy routes around it (requests after the kill
    succeed); the failed requests are counted and reported (only those in flight on it may
    fail).
 4. Every access-log line of every instance names the client namespace's address
    (198.18.1.100), never HAProxy's.
Skips (exit 0, "# SKIP") when not root, when namespaces cannot be created, or when haproxy is
missing. Every namespace and process it made is removed on any exit (finally + signals).
Env: PT_DEPLOY_BUILD (default build: the release portico), PT_DEPLOY_DRAIN (seconds, 2),
PT_DEPLOY_NO_RETRY=1 (HAProxy without retry-on: what a SIGKILL costs without L7 retries),
PT_DEPLOY_KEEP=1 (keep the temporary directory with the logs).
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(REPO, "tests", "support"))
from ptest import t, skip, failures, read_text, wait_for  # noqa: E402

B = os.environ.get("PT_DEPLOY_BUILD") or os.path.join(REPO, "build")
PORTICO = os.path.join(B, "portico")
DRAIN = float(os.environ.get("PT_DEPLOY_DRAIN", "2"))
TAG = "ptd%d" % os.getpid()                   # namespace names unique to this run
NS_C, NS_LB = TAG + "-c", TAG + "-lb"
NS_S = [TAG + "-s%d" % i for i in (1, 2, 3)]
CLIENT, LB_FRONT, LB_BACK = "198.18.1.100", "198.18.1.1", "198.18.2.1"
SRV = ["198.18.2.11", "198.18.2.12", "198.18.2.13"]
PORT, ADMIN = 8080, 9000
BODY = b"portico deploy test\n" * 20

created_ns = []
procs = []                                    # every Popen this test started


def sh(*args, check=True):
    return subprocess.run(list(args), check=check, capture_output=True, timeout=30,
                          stdin=subprocess.DEVNULL)


def in_ns(ns, *args):
    return ["ip", "netns", "exec", ns] + list(args)


# ---- the network ---------------------------------------------------------------------------------

def ns_add(name):
    sh("ip", "netns", "add", name)
    created_ns.append(name)
    sh("ip", "-n", name, "link", "set", "lo", "up")


def veth(ns_a, name_a, ns_b, name_b):
    """A veth pair created directly inside the two namespaces (no name in the root one)."""
    sh("ip", "link", "add", name_a, "netns", ns_a, "type", "veth", "peer", "name", name_b,
       "netns", ns_b)


def addr(ns, dev, cidr):
    sh("ip", "-n", ns, "addr", "add", cidr, "dev", dev)
    sh("ip", "-n", ns, "link", "set", dev, "up")


def build_network():
    for ns in [NS_C, NS_LB] + NS_S:
        ns_add(ns)
    veth(NS_C, "eth0", NS_LB, "front")
    addr(NS_C, "eth0", CLIENT + "/24")
    addr(NS_LB, "front", LB_FRONT + "/24")
    sh("ip", "-n", NS_LB, "link", "add", "br0", "type", "bridge")
    addr(NS_LB, "br0", LB_BACK + "/24")
    for i, ns in enumerate(NS_S):
        veth(ns, "eth0", NS_LB, "s%d" % (i + 1))
        addr(ns, "eth0", SRV[i] + "/24")
        sh("ip", "-n", NS_LB, "link", "set", "s%d" % (i + 1), "master", "br0")
        sh("ip", "-n", NS_LB, "link", "set", "s%d" % (i + 1), "up")
    # nothing leads out: no namespace has a default route
    for ns in created_ns:
        routes = sh("ip", "-n", ns, "route", "show", "default").stdout.strip()
        if routes:
            raise RuntimeError("%s has a default route: %r" % (ns, routes))


def cleanup():
    for p in procs:
        if p.poll() is None:
            try:
                p.kill()
            except OSError:
                pass
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            pass
    for ns in reversed(created_ns):
        sh("ip", "netns", "del", ns, check=False)
    created_ns.clear()


# ---- the processes -------------------------------------------------------------------------------

class Portico:
    def __init__(self, tmp, i):
        self.i, self.tmp = i, tmp
        self.log = os.path.join(tmp, "access-s%d.log" % (i + 1))
        self.p = None
        self.runs = 0

    def start(self, root):
        self.runs += 1
        out = os.path.join(self.tmp, "s%d.%d.out" % (self.i + 1, self.runs))
        self.err = os.path.join(self.tmp, "s%d.%d.err" % (self.i + 1, self.runs))
        args = [PORTICO, "-l", "%s:%d" % (SRV[self.i], PORT), "--proxy-protocol",
                "--trusted-proxies", LB_BACK + "/32", "--admin", "%s:%d" % (SRV[self.i], ADMIN),
                "--admin-allow", LB_BACK + "/32", "--drain-delay", str(DRAIN),
                "--access-log", self.log, "--workers", "1", root]
        with open(out, "wb") as o, open(self.err, "wb") as e:
            self.p = subprocess.Popen(in_ns(NS_S[self.i], *args), stdout=o, stderr=e,
                                      stdin=subprocess.DEVNULL)
        procs.append(self.p)
        if not wait_for(lambda: "admin at" in read_text(out) or self.p.poll() is not None, 15) \
                or self.p.poll() is not None:
            raise RuntimeError("portico s%d did not start: %s" % (self.i + 1, read_text(self.err)))

    def lines(self):
        return [ln for ln in read_text(self.log).splitlines() if ln.strip()]


HAPROXY_CFG = """# written by tests/deploy/deploy.py (see examples/haproxy.cfg)
global
    maxconn 4096
    stats socket {sock} mode 600 level admin

defaults
    mode http
    timeout connect 2s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s
    option http-keep-alive
    retries 3
    option redispatch 1
    retry-on all-retryable-errors

frontend web
    bind {front}:80
    default_backend portico

backend portico
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server send-proxy-v2 check port {admin} inter 300ms fall 2 rise 2
{servers}
"""


def start_haproxy(tmp):
    sock = os.path.join(tmp, "haproxy.sock")
    servers = "".join("    server s%d %s:%d\n" % (i + 1, a, PORT) for i, a in enumerate(SRV))
    cfg = os.path.join(tmp, "haproxy.cfg")
    text = HAPROXY_CFG.format(sock=sock, front=LB_FRONT, admin=ADMIN, servers=servers)
    if os.environ.get("PT_DEPLOY_NO_RETRY"):      # to measure what the L7 retries save
        text = text.replace("    retry-on all-retryable-errors\n", "")
    with open(cfg, "w") as f:
        f.write(text)
    r = sh("haproxy", "-c", "-f", cfg, check=False)
    if r.returncode != 0:
        raise RuntimeError("haproxy -c: %s" % r.stderr.decode())
    err = open(os.path.join(tmp, "haproxy.err"), "wb")
    p = subprocess.Popen(in_ns(NS_LB, "haproxy", "-db", "-f", cfg), stdout=err, stderr=err,
                         stdin=subprocess.DEVNULL)
    procs.append(p)
    return p, sock


def haproxy_cmd(sock, cmd):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(5)
    s.connect(sock)
    s.sendall(cmd.encode() + b"\n")
    out = b""
    while True:
        b = s.recv(65536)
        if not b:
            break
        out += b
    s.close()
    return out.decode()


def server_status(sock):
    """{"s1": "UP", ...} from HAProxy's "show stat"."""
    try:
        csv = haproxy_cmd(sock, "show stat")
    except OSError:
        return {}
    lines = csv.splitlines()
    if not lines or not lines[0].startswith("# "):
        return {}
    cols = lines[0][2:].split(",")
    out = {}
    for ln in lines[1:]:
        f = dict(zip(cols, ln.split(",")))
        if f.get("pxname") == "portico" and f.get("svname", "").startswith("s"):
            out[f["svname"]] = f.get("status", "")
    return out


def wait_status(sock, name, want, timeout=20):
    return wait_for(lambda: server_status(sock).get(name, "").startswith(want), timeout, 0.1)


class Load:
    def __init__(self, tmp, name, keepalive=4, fresh=4):
        self.stop_file = os.path.join(tmp, name + ".stop")
        self.out = os.path.join(tmp, name + ".json")
        body = os.path.join(tmp, "body")
        self.p = subprocess.Popen(in_ns(NS_C, sys.executable, os.path.join(HERE, "load.py"),
                                        LB_FRONT, "80", "/page.txt", body, "--keepalive",
                                        str(keepalive), "--fresh", str(fresh), "--stop-file",
                                        self.stop_file, "--out", self.out),
                                  stdin=subprocess.DEVNULL)
        procs.append(self.p)

    def finish(self):
        open(self.stop_file, "w").close()
        self.p.wait(60)
        with open(self.out) as f:
            return json.load(f)


# ---- the checks ----------------------------------------------------------------------------------

def check_spread(tmp, servers):
    before = [len(s.lines()) for s in servers]
    ld = Load(tmp, "spread", keepalive=2, fresh=4)
    time.sleep(3)
    r = ld.finish()

    def counts():            # the access logs are written in batches: wait for every line
        c = [len(s.lines()) - b for s, b in zip(servers, before)]
        return c if sum(c) >= r["ok"] else None
    got = wait_for(counts, 10) or [len(s.lines()) - b for s, b in zip(servers, before)]
    total = sum(got)
    t(r["failed"] == 0 and r["ok"] > 50, "load through HAProxy: %d requests, none failed" % r["ok"],
      r)
    t(total >= r["ok"] and all(g >= 0.2 * total for g in got),
      "requests spread over all three instances: %s of %d (access logs)" % (got, total), got)


def check_rolling(tmp, servers, root, sock):
    ld = Load(tmp, "rolling")
    time.sleep(1)
    steps = []
    for s in servers:
        name = "s%d" % (s.i + 1)
        t0 = time.monotonic()
        s.p.send_signal(signal.SIGTERM)
        down = wait_status(sock, name, "DOWN", DRAIN + 10)
        try:
            rc = s.p.wait(DRAIN + 20)
        except subprocess.TimeoutExpired:
            rc = "still running"
        stopped = time.monotonic() - t0
        s.start(root)
        up = wait_status(sock, name, "UP", 20)
        steps.append("%s: marked down %s, exit %s after %.1f s, back up %s" % (
            name, bool(down), rc, stopped, bool(up)))
        t(down and rc == 0 and up, "rolling restart %s: HAProxy marks it down while it drains, "
          "it exits 0, restarts and is back UP" % name, steps[-1])
        time.sleep(0.5)
    time.sleep(1)
    r = ld.finish()
    print("# rolling restart: %d requests (%d keep-alive, %d new-connection), %d failed" % (
        r["ok"] + r["failed"], r["keepalive_ok"], r["fresh_ok"], r["failed"]), flush=True)
    t(r["failed"] == 0 and r["keepalive_ok"] > 0 and r["fresh_ok"] > 0,
      "rolling restart under keep-alive and new-connection load: 0 failed of %d" % (
          r["ok"] + r["failed"]), r)


def check_kill(tmp, servers, sock):
    ld = Load(tmp, "kill")
    time.sleep(1.5)
    victim = servers[1]
    victim.p.send_signal(signal.SIGKILL)
    victim.p.wait(10)
    t_kill = time.time()
    down = wait_status(sock, "s2", "DOWN", 10)
    time.sleep(2)
    before_end = len(servers[0].lines()) + len(servers[2].lines())
    time.sleep(1.5)
    after = len(servers[0].lines()) + len(servers[2].lines())
    r = ld.finish()
    late = [e for e in r["errors"] if float(e.split()[0]) > t_kill + 3]
    print("# SIGKILL of s2: %d requests, %d failed (%s)" % (r["ok"] + r["failed"], r["failed"],
                                                          "; ".join(r["errors"][:5])), flush=True)
    t(down and after > before_end and not late,
      "SIGKILL of s2: HAProxy marks it DOWN and routes around it (%d failed of %d, none after "
      "the kill settled)" % (r["failed"], r["ok"] + r["failed"]), (down, late, r))
    t(r["failed"] <= 8, "SIGKILL of s2: at most the requests in flight failed (8 clients): %d"
      % r["failed"], r)


def check_client_address(servers):
    bad, n = [], 0
    for s in servers:
        for ln in s.lines():
            n += 1
            if not ln.startswith(CLIENT + " "):
                bad.append(ln)
    t(n > 0 and not bad, "all %d access-log lines name the client %s, not HAProxy's %s" % (
        n, CLIENT, LB_BACK), bad[:5])


def preflight():
    if os.geteuid() != 0:
        return "not root: network namespaces need CAP_SYS_ADMIN"
    if not shutil.which("haproxy"):
        return "haproxy is not installed (scripts/deps.sh deploy installs it)"
    if not os.access(PORTICO, os.X_OK):
        return "%s is not built" % PORTICO
    probe = TAG + "-probe"
    r = sh("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return "cannot create a network namespace: %s" % r.stderr.decode().strip()
    sh("ip", "netns", "del", probe, check=False)
    return None


def main():
    why = preflight()
    if why:
        skip("deployment through HAProxy", why)
        return 0
    tmp = tempfile.mkdtemp(prefix="pt-deploy.")
    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    try:
        root = os.path.join(tmp, "root")
        os.makedirs(root)
        for p in (os.path.join(root, "page.txt"), os.path.join(tmp, "body")):
            with open(p, "wb") as f:
                f.write(BODY)
        build_network()
        servers = [Portico(tmp, i) for i in range(3)]
        for s in servers:
            s.start(root)
        hp, sock = start_haproxy(tmp)
        ok = all(wait_status(sock, "s%d" % i, "UP", 20) for i in (1, 2, 3))
        t(ok, "HAProxy 2.6 up in its namespace, all three instances UP by /healthz",
          (server_status(sock), read_text(os.path.join(tmp, "haproxy.err"))[-2000:]))
        if not ok:
            return 1
        for fn, args in ((check_spread, (tmp, servers)),
                         (check_rolling, (tmp, servers, root, sock)),
                         (check_kill, (tmp, servers, sock)),
                         (check_client_address, (servers,))):
            try:
                fn(*args)
            except Exception:
                t(False, fn.__name__ + " raised", traceback.format_exc())
        errs = [read_text(s.err) for s in servers]
        t(hp.poll() is None, "HAProxy still running", read_text(os.path.join(tmp, "haproxy.err")))
        for s in servers:
            if s.p.poll() is None:
                s.p.send_signal(signal.SIGTERM)
        rcs = []
        for s in servers:
            try:
                rcs.append(s.p.wait(DRAIN + 20))
            except subprocess.TimeoutExpired:
                rcs.append("hung")
        t(rcs[0] == 0 and rcs[2] == 0, "the surviving instances exit 0 on SIGTERM", (rcs, errs))
    finally:
        cleanup()
        left = [ns for ns in sh("ip", "netns", "list").stdout.decode().split() if ns.startswith(TAG)]
        if left:
            print("# namespaces left behind: %s" % left)
        if os.environ.get("PT_DEPLOY_KEEP"):
            print("# kept %s" % tmp)
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    return 1 if failures() else 0


if __name__ == "__main__":
    sys.exit(main())
