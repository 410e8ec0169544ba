#!/usr/bin/env python3
"""`make bench`, scenario R1 (issue 22): handing an address over to a new server process under
load. Python 3 stdlib, wrk, nginx.

Load: wrk with 50 keep-alive connections and a second wrk with 20 connections that each make one
request (Connection: close), both on CPU 0, for DURATION seconds (default 10) on a 1 KiB file;
the servers run on CPU 1 with one worker. At 40% of the run the handover starts:

  portico  B starts on the same address (SO_REUSEPORT), then A gets SIGTERM (its graceful stop:
           listeners closed after accepting what was queued, the request in progress and the next
           one within --stop-grace answered with Connection: close, idle connections closed after
           it), with net.ipv4.tcp_migrate_req=1 as docs/OPERATIONS.md asks.
  nginx    the binary upgrade of its documentation: USR2 to the master (a new master starts
           from the same binary and inherits the listening sockets), then QUIT to the old
           master (graceful shutdown of the old workers). nginx runs daemonized here (started
           by its full path): with daemon off it ignores USR2 while its starter is its parent.
           If the new master does not come up, the run says so and fails.

Reported per server: requests failed during the run (wrk's socket errors: connect, read, write,
timeout; and non-2xx answers), the throughput dip (the lowest 100 ms bucket within 2 s after the
handover began, as a share of the median bucket before it), and how long the old process took to
exit. Each wrk records completions in 100 ms buckets of CLOCK_MONOTONIC (a Lua script through
LuaJIT's ffi), the clock this script stamps the handover with.

The run happens in a network namespace of its own (root: unshare), with loopback up and the
sysctl set there only. Env: DURATION=, ROUNDS= (default 2), SERVERS="portico nginx".
Results: a table on stdout and bench/results/handover.json.
"""
import ctypes
import fcntl
import json
import os
import shutil
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchproc as bp          # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("PT_RELEASE_BUILD") or os.path.join(ROOT, "build")
SERVER_CPU, CLIENT_CPU = "1", "0"
PROCS = []
NGINX_MASTERS = []          # daemonized: not our children

LUA = r"""
local ffi = require("ffi")
ffi.cdef[[
typedef struct { long tv_sec; long tv_nsec; } pt_timespec;
int clock_gettime(int clk, pt_timespec *ts);
]]
local ts = ffi.new("pt_timespec")
buckets = {}
function response(status, headers, body)
    ffi.C.clock_gettime(1, ts)
    local b = tonumber(ts.tv_sec) * 10 + math.floor(tonumber(ts.tv_nsec) / 100000000)
    buckets[b] = (buckets[b] or 0) + 1
end
local threads = {}
function setup(thread)
    table.insert(threads, thread)
end
function done(summary, latency, requests)
    for _, t in ipairs(threads) do
        for k, v in pairs(t:get("buckets")) do
            io.write(string.format("bucket %d %d\n", k, v))
        end
    end
    local e = summary.errors
    io.write(string.format("errors %d %d %d %d %d requests %d\n", e.connect, e.read, e.write,
                           e.timeout, e.status, summary.requests))
end
"""

NGINX_CONF = """worker_processes 1;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nodelay on;
    keepalive_timeout 600s;
    keepalive_requests 1000000000;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {docroot};
    }}
}}
"""


def private_netns():
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(0x40000000) != 0:              # CLONE_NEWNET
        return "unshare(CLONE_NEWNET): %s" % os.strerror(ctypes.get_errno())
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    ifr = fcntl.ioctl(s, 0x8913, struct.pack("16sH14x", b"lo", 0))        # SIOCGIFFLAGS
    flags = struct.unpack("16sH14x", ifr)[1]
    fcntl.ioctl(s, 0x8914, struct.pack("16sH14x", b"lo", flags | 1))      # SIOCSIFFLAGS
    s.close()
    with open("/proc/sys/net/ipv4/tcp_migrate_req", "w") as f:
        f.write("1\n")
    return None


def start(argv, out):
    p = subprocess.Popen(["taskset", "-c", SERVER_CPU] + argv, stdout=out, stderr=out,
                         stdin=subprocess.DEVNULL)
    PROCS.append(p)
    return p


def wait_port(port, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("nothing listens on port %d" % port)


def wait_line(path, text, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with open(path, "rb") as f:
            if text.encode() in f.read():
                return
        time.sleep(0.02)
    raise RuntimeError("no %r in %s" % (text, path))


def wrk(port, conns, close, secs, lua, out):
    argv = ["taskset", "-c", CLIENT_CPU, "wrk", "-t1", "-c%d" % conns, "-d%ds" % secs,
            "--timeout", "5s", "-s", lua]
    if close:
        argv += ["-H", "Connection: close"]
    p = subprocess.Popen(argv + ["http://127.0.0.1:%d/file.bin" % port], stdout=out,
                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    PROCS.append(p)
    return p


def parse_wrk(path):
    buckets, errors, requests = {}, None, 0
    with open(path) as f:
        for line in f:
            w = line.split()
            if w[:1] == ["bucket"]:
                buckets[int(w[1])] = buckets.get(int(w[1]), 0) + int(w[2])
            elif w[:1] == ["errors"]:
                errors = dict(zip(("connect", "read", "write", "timeout", "status"),
                                  map(int, w[1:6])))
                requests = int(w[7])
    if errors is None:
        raise RuntimeError("wrk printed no summary: %s" % open(path).read()[-500:])
    return buckets, errors, requests


def handover_portico(tmp, port, docroot, log):
    portico = os.path.join(BUILD, "portico")
    args = ["-l", "127.0.0.1:%d" % port, "-w", "1", docroot]
    a = start([portico] + args, open(os.path.join(tmp, "a.out"), "wb"))
    wait_line(os.path.join(tmp, "a.out"), "backend,")

    def go():
        b = start([portico] + args, open(os.path.join(tmp, "b.out"), "wb"))
        wait_line(os.path.join(tmp, "b.out"), "backend,")
        t0 = time.monotonic()
        a.send_signal(signal.SIGTERM)
        a.wait(30)
        return t0, time.monotonic() - t0, a.returncode, b
    return go


def pid_gone(pid, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if not os.path.exists("/proc/%d" % pid):
            return True
        time.sleep(0.01)
    return False


def read_pid(path):
    try:
        return int(open(path).read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def handover_nginx(tmp, port, docroot, log):
    """nginx daemonized, as in production: its binary upgrade ignores USR2 while the process
    that started it is still its parent (ngx_parent), which rules out daemon off."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    conf = os.path.join(tmp, "nginx.conf")
    with open(conf, "w") as f:
        f.write(NGINX_CONF.format(tmp=tmp, port=port, docroot=docroot))
    pidfile = os.path.join(tmp, "nginx.pid")
    launcher = start([nginx, "-p", tmp + "/", "-e", os.path.join(tmp, "nginx-error.log"),
                      "-c", conf], open(os.path.join(tmp, "nginx.out"), "wb"))
    launcher.wait(10)
    wait_port(port)
    old = read_pid(pidfile)
    if old is None:
        raise RuntimeError("nginx: no pid file")
    NGINX_MASTERS.append(old)
    time.sleep(0.3)

    def go():
        t0 = time.monotonic()
        os.kill(old, signal.SIGUSR2)              # a new master from the same binary
        end, new = time.monotonic() + 10, None
        while time.monotonic() < end and new is None:
            pid = read_pid(pidfile)
            if pid not in (None, old) and os.path.exists(pidfile + ".oldbin"):
                new = pid
            time.sleep(0.01)
        if new is None:
            raise RuntimeError("nginx: no new master after USR2: %s" % open(
                os.path.join(tmp, "nginx-error.log")).read()[-500:])
        NGINX_MASTERS.append(new)
        time.sleep(0.2)                           # its worker is up
        os.kill(old, signal.SIGQUIT)              # the old master shuts down gracefully
        gone = pid_gone(old, 30)
        return t0, time.monotonic() - t0, 0 if gone else "still running", new
    return go


def kill_masters():
    for pid in NGINX_MASTERS:
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            if pid_gone(pid, 5):
                break
    NGINX_MASTERS.clear()


def run(name, tmp, docroot, secs):
    port = bp.free_port()
    lua = os.path.join(tmp, "buckets.lua")
    with open(lua, "w") as f:
        f.write(LUA)
    go = (handover_portico if name == "portico" else handover_nginx)(tmp, port, docroot, None)
    outs = [os.path.join(tmp, "wrk-ka.out"), os.path.join(tmp, "wrk-close.out")]
    ws = [wrk(port, 50, False, secs, lua, open(outs[0], "w")),
          wrk(port, 20, True, secs, lua, open(outs[1], "w"))]
    time.sleep(secs * 0.4)
    t0, exit_s, rc, new = go()
    for w in ws:
        w.wait(secs + 30)
    # the new server: stop it
    if isinstance(new, int):                      # nginx's new master: not our child
        kill_masters()
    else:
        new.send_signal(signal.SIGTERM)
        new.wait(30)
    buckets, failed, total = {}, {}, 0
    for o in outs:
        b, e, n = parse_wrk(o)
        total += n
        for k, v in b.items():
            buckets[k] = buckets.get(k, 0) + v
        for k, v in e.items():
            failed[k] = failed.get(k, 0) + v
    hb = int(t0 * 10)
    keys = sorted(buckets)
    before = [buckets.get(k, 0) for k in range(keys[0] + 5, hb)]   # skip the first 0.5 s
    after = [buckets.get(k, 0) for k in range(hb, hb + 20)]
    med = statistics.median(before) if before else 0
    return {"requests": total, "failed": sum(failed.values()), "errors": failed,
            "rps_before": med * 10, "dip_min_pct": round(100.0 * min(after) / med, 1) if med else None,
            "dip_mean_pct": round(100.0 * statistics.mean(after) / med, 1) if med else None,
            "old_exit_s": round(exit_s, 3), "old_rc": rc}


def main():
    why = private_netns() if os.geteuid() == 0 else "not root"
    if why:
        print("bench R1 (handover): skipped: %s" % why)
        return 0
    secs = int(float(os.environ.get("DURATION", "10")))
    rounds = int(os.environ.get("ROUNDS", "2"))
    servers = [s for s in os.environ.get("SERVERS", "").split() if s in ("portico", "nginx")]
    servers = servers or ["portico", "nginx"]
    if not os.access(os.path.join(BUILD, "portico"), os.X_OK):
        raise SystemExit("bench R1: %s/portico missing: run make" % BUILD)
    results = {s: [] for s in servers}
    try:
        for rnd in range(1, rounds + 1):
            for name in servers:
                tmp = tempfile.mkdtemp(prefix="pt-handover-")
                os.chmod(tmp, 0o755)
                docroot = os.path.join(tmp, "www")
                os.makedirs(docroot)
                os.chmod(docroot, 0o755)
                with open(os.path.join(docroot, "file.bin"), "wb") as f:
                    f.write(os.urandom(1024))
                os.chmod(os.path.join(docroot, "file.bin"), 0o644)
                try:
                    r = run(name, tmp, docroot, secs)
                except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
                    r = {"error": str(e)}
                finally:
                    kill_masters()
                    for p in PROCS:
                        if p.poll() is None:
                            p.kill()
                            p.wait()
                    PROCS.clear()
                    shutil.rmtree(tmp, True)
                results[name].append(r)
                print("  [%d/%d] R1 %-8s %s" % (rnd, rounds, name, r), flush=True)
    finally:
        for p in PROCS:
            if p.poll() is None:
                p.kill()
    print("\nR1 handover under 50 keep-alive + 20 new-connection clients (%d s, %d rounds):"
          % (secs, rounds))
    print("%-8s %10s %14s %16s %16s %10s" % ("server", "failed", "req/s before", "dip min 100ms",
                                            "dip mean 2 s", "old exit"))
    for name, rs in results.items():
        for r in rs:
            if "error" in r:
                print("%-8s FAILED: %s" % (name, r["error"]))
                continue
            print("%-8s %10d %14.0f %15s%% %15s%% %9.2fs" % (
                name, r["failed"], r["rps_before"], r["dip_min_pct"], r["dip_mean_pct"],
                r["old_exit_s"]))
    out = os.path.join(ROOT, "bench", "results", "handover.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w") as f:
        json.dump({"duration_s": secs, "rounds": rounds, "results": results}, f, indent=1)
    return 1 if any("error" in r for rs in results.values() for r in rs) else 0


if __name__ == "__main__":
    sys.exit(main())
