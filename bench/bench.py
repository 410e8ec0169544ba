#!/usr/bin/env python3
"""`make bench`: Portico against nginx and the limit server (issue 8). Python 3 stdlib only.

Flow: build the docroot (cached), start every server once and check that it returns the right
bytes (size and sha256) for every file, then run ROUNDS rounds; each round runs every scenario
once on every server, so a slow minute of the machine hits all servers alike. Each run starts
its server fresh, pinned to CPU 1, with the client pinned to CPU 0, and stops it afterwards.
A run disturbed by other load (busy time on the two CPUs well above what the server and client
used) is repeated, at most twice. Results: a table on the terminal and bench/results/latest.json.

Env (or the matching options): QUICK=1 (one round of 3 s), ROUNDS=3, DURATION=10,
SCENARIOS="S1 S4" (S6 also selects S6b), SERVERS="portico nginx". --smoke: every scenario for
about a second against our own servers only (no nginx), for `make test`.

The flood scenarios (issue 10: S10, G1, G2; variants S10p, S10d, G1p that run only when named)
have fixed loads of their own (bench/flood.c) rather than DURATION, and run the server with
exactly 20 000 descriptors; they have their own table.

The TLS scenarios (issue 14: T1, T2, T3, T3r, T3m) run portico, nginx and h2o with one ECDSA
P-256 certificate made at bench time (openssl CLI, in the run's temporary directory) and the
Mozilla intermediate profile; T3* use bench/tlsload.c, a client that makes a full (or, T3r, a
resumed) handshake per connection, which wrk and h2load cannot.
"""
import argparse
import atexit
import datetime
import json
import os
import platform
import re
import resource
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchproc as bp          # noqa: E402
import benchreport as rep       # noqa: E402
import benchsrv as srvs         # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.join(ROOT, "bench")
DISTURBED_PCT = 20      # other busy time, % of one CPU over the run, that makes a run disturbed
MAX_REPEATS = 2

FILES_3 = ["portico", "nginx", "limit", "limit-uring"]  # limit-uring: an io_uring ceiling
TLS_3 = ["portico-tls", "nginx-tls", "h2o-tls"]
H2_3 = ["portico-tls", "nginx-h2", "h2o-tls"]


def _s(key, title, **kw):
    d = dict(key=key, title=title, tool="wrk", path="/hello.txt", conns=100, metric="rps",
             servers=FILES_3, ref="nginx", ceiling="limit", script="report.lua", headers=[],
             timeout=5, optional=False, scheme="http")
    d.update(kw)
    return key, d


def _tls(key, title, **kw):
    """A TLS scenario (issue 14): the same certificate (ECDSA P-256, made at bench time) and
    profile (Mozilla intermediate) for every server; `also`: a second metric shown beside the
    main one. smoke_servers: the servers --smoke runs (our own, and few: make test runs it)."""
    d = dict(scheme="https", servers=TLS_3, ref="nginx-tls", ceiling=None, smoke_servers=[])
    d.update(kw)
    return _s(key, title, **d)


def _flood(key, title, **kw):
    """A flood scenario (issue 10, bench/flood.c): the server runs with exactly `nofile`
    descriptors; silent connections past that limit, slowloris connections, then real clients
    on new connections, each with a budget. smoke/quick: smaller numbers for those modes."""
    d = dict(tool="flood", metric="served_pct", mode="http", silent=0, slow=0, requests=0,
             clients=0, seconds=30, budget=5, nofile=bp.NOFILE, ref="nginx", ceiling=None,
             settle=2.0)
    d.update(kw)
    return _s(key, title, **d)


# issue 10: the flood scenarios and their variants share their load
S10_LOAD = dict(silent=30000, slow=300, requests=200, seconds=30,
                smoke=dict(silent=300, slow=10, requests=10, seconds=2, settle=0.3),
                quick=dict(requests=70, seconds=10))
G1_LOAD = dict(mode="echo", silent=19000, clients=100, seconds=20, ref=None,
               smoke=dict(silent=300, clients=10, seconds=0.5, settle=0.3),
               quick=dict(seconds=5))

SCENARIOS = dict([
    _s("S1", "13-byte file, keep-alive, 100 connections", tool="pload"),
    _s("S1w", "S1 with wrk as the client (cross-check of portico-load)", smoke_servers=[]),
    _s("S2", "13-byte file, keep-alive, 1000 connections", conns=1000, tool="pload"),
    _s("S2w", "S2 with wrk as the client (cross-check of portico-load)", conns=1000,
       smoke_servers=[]),     # --smoke: S1 and S2 cover the harness, other rows cover wrk
    _s("S3", "13-byte file, a new connection per request (Connection: close), 100 clients",
       headers=["Connection: close"]),
    _s("S4", "13-byte file, 16 requests pipelined per connection, 100 connections",
       script="pipeline.lua"),
    _s("S4p", "S4 with portico-load as the client (--pipeline 16): wrk saturates its core in S4, "
       "this client does not, so the server is the limit", tool="pload", pipeline=16,
       smoke_servers=[]),
    _s("S5", "64 KiB file, keep-alive, 100 connections", path="/64k.bin", metric="mbps",
       servers=["portico", "nginx"], ceiling=None),
    _s("S6", "100 MiB file, 8 connections, wrk", path="/100m.bin", conns=8, metric="mbps",
       servers=["portico", "nginx"], ceiling=None, timeout=30),
    _s("S6b", "100 MiB file, 8 connections, our client reading 1 MiB per recv", tool="bigread",
       path="/100m.bin", conns=8, metric="mbps", servers=["portico", "nginx"], ceiling=None),
    _s("S7", "10 000 idle keep-alive connections: server RSS growth per connection (the worse "
       "of reading each response at once and reading them only after all are open), and RSS "
       "over the pre-burst figure 10 s after they closed",
       tool="idle", conns=10000, metric="rss_per_conn_bytes",
       servers=["portico", "portico-epoll", "nginx"], ceiling=None, smoke_servers=["portico"]),
    _s("S8", "HTTP layer alone: hello handler vs nginx `return 200`, keep-alive, 100 conns",
       path="/", servers=["hello", "nginx", "limit"]),
    _s("S8p", "HTTP layer alone, 16 requests pipelined per connection", path="/",
       servers=["hello", "nginx", "limit"], script="pipeline.lua"),
    _s("S1m", "S1 with the admin listener on (metrics counted per request) vs off",
       servers=["portico", "portico-admin"], ref="portico", ceiling=None),
    _s("C1", "100 KiB JavaScript file, Accept-Encoding: gzip, br; portico --compress vs nginx "
       "gzip on (level 6); keep-alive, 100 connections", path="/app.js", also="resp_bytes",
       headers=["Accept-Encoding: gzip, br"], servers=["portico-gzip", "nginx-gzip"],
       ref="nginx-gzip", ceiling=None),
    _s("S9", "S1 on Portico's epoll backend vs its io_uring backend",
       servers=["portico", "portico-epoll"], ref="portico", ceiling=None),
    _s("S9b", "S5 on Portico's epoll backend vs its io_uring backend", path="/64k.bin",
       metric="mbps", servers=["portico", "portico-epoll"], ref="portico", ceiling=None),
    _tls("T1", "S1 over TLS: 13-byte file, keep-alive, 100 connections (wrk, https)",
         also="mbps", smoke_servers=["portico-tls"]),
    _tls("T2", "64 KiB file over TLS, keep-alive, 100 connections (wrk, https)",
         path="/64k.bin", metric="mbps", also="rps"),
    _tls("T3", "a new TLS connection per request: full handshake + one GET (Connection: "
         "close), 100 in flight, no resumption; 1 and 2 workers", tool="tlsload",
         tls_mode="full", servers=["portico-tls", "portico-tls-w2", "nginx-tls", "h2o-tls"],
         smoke_servers=["portico-tls"]),
    _tls("T3r", "T3 with resumed handshakes: each connection offers the newest session ticket "
         "its slot got (once)", tool="tlsload", tls_mode="resume"),
    _tls("T3m", "T3 with the server and the client sharing both CPUs: 1 against 2 workers "
         "(OpenSSL 3.0 lock contention); nginx with 2 worker processes as the reference",
         tool="tlsload", tls_mode="full", cpus=("0,1", "0,1"),
         servers=["portico-tls", "portico-tls-w2", "nginx-tls-w2"], ref="nginx-tls-w2"),
    _tls("H1", "HTTP/2 over TLS (h2load): 13-byte file, 10 connections x 100 streams",
         tool="h2load", conns=10, streams=100, servers=H2_3, ref="h2o-tls",
         smoke_servers=["portico-tls"]),
    _tls("H2", "HTTP/2 over TLS (h2load): 64 KiB file, 10 connections x 100 streams",
         tool="h2load", conns=10, streams=100, path="/64k.bin", metric="mbps", also="rps",
         servers=H2_3, ref="h2o-tls"),
    _tls("H2p", "H2 with portico-load as the client (--h2 --streams 100): h2load saturates its "
         "core in H2, so H2's rate is mostly the client's", tool="pload", h2=True, conns=10,
         streams=100, path="/64k.bin", metric="mbps", also="rps", servers=H2_3, ref="h2o-tls"),
    _flood("S10", "flood: 30 000 silent + 300 slowloris connections, 200 new-connection "
           "requests over 30 s with a 5 s budget; server limited to 20 000 descriptors",
           servers=["portico", "portico-epoll", "nginx"], **S10_LOAD),
    _flood("S10p", "S10 with --when-full pause: the shedding defence off (the old behaviour)",
           servers=["portico-pause"], optional=True, base="S10", **S10_LOAD),
    _flood("S10d", "S10 with --defer-accept 1: the kernel holds silent connections back",
           servers=["portico-defer"], optional=True, base="S10", **S10_LOAD),
    _s("E1", "engine echo: 100 connections, 1 message of 64 B in flight each", tool="echo",
       conns=100, depth=1, size=64, servers=["echo", "echo-epoll", "echo-loop"],
       ref="echo-loop", ceiling="echo-loop"),
    _s("E2", "engine echo: 1000 connections, 4 messages of 64 B in flight each", tool="echo",
       conns=1000, depth=4, size=64, servers=["echo", "echo-epoll", "echo-loop"],
       ref="echo-loop", ceiling="echo-loop"),
    _flood("G1", "engine echo under a flood: 19 000 silent connections, 100 echo clients (64 B, "
           "a new connection per round trip) for 20 s; server limited to 20 000 descriptors",
           servers=["echo", "echo-epoll"], **G1_LOAD),
    _flood("G1p", "G1 with --when-full pause: the shedding defence off",
           servers=["echo-pause"], optional=True, base="G1", **G1_LOAD),
    _flood("G2", "engine echo: 5 000 slowloris connections (1 B/s) + 100 echo clients (64 B, a "
           "new connection per round trip) for 20 s", mode="echo", slow=5000, clients=100,
           seconds=20, servers=["echo", "echo-epoll"], ref=None,
           smoke=dict(slow=100, clients=10, seconds=0.5, settle=0.3), quick=dict(seconds=5)),
])


# ---- one run ---------------------------------------------------------------------------------

class Ctx:
    def __init__(self, args, build, tmp, docroot, files):
        self.args, self.build, self.tmp = args, build, tmp
        self.docroot, self.files = docroot, files
        self.server_cpu, self.client_cpu = bp.cpus()
        self.tool = lambda name: os.path.join(build, "bench", name)


def client_argv(ctx, scen, srv, port):
    path = srv.path_for(scen["path"])
    d = ctx.args.duration
    if scen["tool"] == "wrk":
        argv = ["wrk", "-t1", f"-c{scen['conns']}", f"-d{d:g}s", f"--timeout={scen['timeout']}s",
                "-s", os.path.join(HERE, scen["script"])]
        for h in scen["headers"]:
            argv += ["-H", h]
        return argv + [f"{scen['scheme']}://127.0.0.1:{port}{path}"]
    if scen["tool"] == "pload":     # portico-load (tools/load/): a client that is not the limit
        argv = [os.path.join(ctx.build, "portico-load"), "-t1", f"-c{scen['conns']}", f"-d{d:g}",
                f"--timeout={scen['timeout'] * 1000}", "--json=-", "-q"]
        if scen.get("pipeline"):
            argv.append(f"--pipeline={scen['pipeline']}")
        if scen.get("h2"):
            argv += ["--h2", f"--streams={scen['streams']}"]
        for h in scen["headers"]:
            argv += ["-H", h]
        return argv + [f"{scen['scheme']}://127.0.0.1:{port}{path}"]
    if scen["tool"] == "bigread":
        size = ctx.files[path][0]
        return [ctx.tool("bigread"), "-c", str(scen["conns"]), "-t", f"{d:g}", "-p", path,
                "-e", str(size), f"127.0.0.1:{port}"]
    if scen["tool"] == "tlsload":
        return [ctx.tool("tlsload"), "-c", str(scen["conns"]), "-t", f"{d:g}", "-m",
                scen["tls_mode"], "-p", path, "-e", str(ctx.files[path][0]), f"127.0.0.1:{port}"]
    if scen["tool"] == "h2load":       # HTTP/2 by ALPN; -D: a timed run like the others
        return ["h2load", "-t1", f"-c{scen['conns']}", f"-m{scen['streams']}", f"-D{d:g}",
                f"{scen['scheme']}://127.0.0.1:{port}{path}"]
    if scen["tool"] == "echo":
        return [ctx.tool("echo_load"), "-c", str(scen["conns"]), "-d", str(scen["depth"]),
                "-s", str(scen["size"]), "-t", f"{d:g}", f"127.0.0.1:{port}"]
    raise ValueError(scen["tool"])


def parse_h2load(rc, out, err):
    """h2load's text report -> (metrics). Raises RuntimeError when it failed or did not speak
    HTTP/2 ("Application protocol: h2")."""
    fin = re.search(r"finished in ([\d.]+)s, ([\d.]+) req/s", out)
    req = re.search(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, "
                    r"(\d+) failed, (\d+) errored, (\d+) timeout", out)
    st = re.search(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out)
    tr = re.search(r"traffic: .*?\((\d+)\) total", out)
    if rc != 0 or not (fin and req and st and tr):
        raise RuntimeError(f"h2load exited {rc}: {(err or out).strip()[-300:]}")
    if "Application protocol: h2" not in out:
        raise RuntimeError("h2load did not negotiate h2: " + out.strip()[-300:])
    secs, done = float(fin.group(1)), int(req.group(3))
    m = dict(requests=done, rps=done / secs if secs else 0.0,
             mbps=int(tr.group(1)) / secs / 1e6 if secs else 0.0,
             errors=int(req.group(5)) + int(req.group(6)) + int(req.group(7)),
             non2xx=sum(int(st.group(i)) for i in (2, 3, 4)), p50_us=None, p99_us=None)
    return m


def parse_client(scen, rc, out, err):
    """The client's JSON line -> (requests, metrics). Raises RuntimeError when it failed."""
    if scen["tool"] == "h2load":
        return parse_h2load(rc, out, err)
    line = next((ln for ln in out.splitlines() if ln.startswith(("BENCHJSON ", "{"))), None)
    if rc != 0 or line is None:
        raise RuntimeError(f"{scen['tool']} exited {rc}: {(err or out).strip()[-300:]}")
    j = json.loads(line.split(" ", 1)[1] if line.startswith("BENCHJSON") else line)
    if scen["tool"] == "wrk":
        secs = j["duration_us"] / 1e6
        m = dict(requests=j["requests"], rps=j["requests"] / secs, mbps=j["bytes"] / secs / 1e6,
                 resp_bytes=j["bytes"] / j["requests"] if j["requests"] else None,
                 errors=j["connect"] + j["read"] + j["write"] + j["timeout"], non2xx=j["status"])
    elif scen["tool"] == "pload":
        m = dict(requests=j["requests"], rps=j["rps"], mbps=j["bytes_in"] / j["seconds"] / 1e6,
                 errors=sum(j["errors"].values()), non2xx=j["requests"] - j["status"]["2xx"])
        j = dict(p50_us=j["latency_us"]["p50"], p99_us=j["latency_us"]["p99"])
    elif scen["tool"] == "tlsload":    # a "request" is a handshake that carried a GET
        hs = j["handshakes"]
        m = dict(requests=hs, rps=j["hps"], responses=j["requests"], errors=j["errors"],
                 non2xx=j["non2xx"], resumed=j["resumed"],
                 resumed_pct=100.0 * j["resumed"] / hs if hs else None,
                 tls=" ".join(x for x in (j["protocol"], j["cipher"], j["group"]) if x),
                 hs_p50_us=j["hs_p50_us"], hs_p99_us=j["hs_p99_us"],
                 first_error=j["first_error"] or None,
                 fails={k: j[k] for k in ("fail_connect", "fail_handshake", "fail_io",
                                          "timeouts", "drain_timeouts")})
    elif scen["tool"] == "bigread":
        m = dict(requests=j["requests"], rps=j["requests"] / j["duration_s"], mbps=j["mbps"],
                 errors=j["errors"], non2xx=j["non2xx"])
    else:
        m = dict(requests=j["round_trips"], rps=j["rps"], errors=j["errors"], non2xx=0)
    for k in ("p50_us", "p99_us"):
        m[k] = j[k] if j.get(k, -1) >= 0 else None
    return m


def scen_cpus(ctx, scen):
    """(server CPUs, client CPUs) for taskset: the usual pinning, or the scenario's own (T3m
    spreads both over CPUs 0 and 1) when the machine has them."""
    if scen.get("cpus") and (os.cpu_count() or 1) >= 2:
        return scen["cpus"]
    return ctx.server_cpu, ctx.client_cpu


def measure_load(ctx, scen, run):
    pids = run.refresh_pids()
    cpu0, sys0, t0 = bp.cpu_ticks(pids), bp.system_cpu([0, 1]), time.monotonic()
    rc, out, err, cli_cpu = bp.run_client(client_argv(ctx, scen, run.srv, run.port),
                                          scen_cpus(ctx, scen)[1],
                                          timeout=ctx.args.duration + 60)
    cpu1, sys1, t1 = bp.cpu_ticks(pids), bp.system_cpu([0, 1]), time.monotonic()
    m = parse_client(scen, rc, out, err)
    wall, srv_s = t1 - t0, (cpu1 - cpu0) / bp.HZ
    other = (sys1["busy"] - sys0["busy"]) / bp.HZ - srv_s - cli_cpu
    steal = (sys1["steal"] - sys0["steal"]) / bp.HZ
    m.update(server_cpu_pct=100 * srv_s / wall, client_cpu_pct=100 * cli_cpu / wall,
             other_cpu_pct=100 * other / wall, steal_pct=100 * steal / wall,
             cpu_us_per_req=(srv_s * 1e6 / m["requests"]) if m["requests"] else None)
    m["disturbed"] = max(m["other_cpu_pct"], m["steal_pct"]) > DISTURBED_PCT
    return m


IDLE_PATTERNS = (("eager", []), ("late", ["-L"]))   # bench/idle.c: each response read at once,
                                                    # or only once every connection is open
GIVEBACK_S = 10         # issue 19: RSS within 10 % of the pre-burst figure this long after


def measure_idle(ctx, scen, run):
    """S7: RSS of the server's processes before and after N idle keep-alive connections, with
    both client patterns in turn on the same server (issue 19), and how much of it is given
    back GIVEBACK_S seconds after the connections closed (giveback_over_pct: RSS then over the
    pre-burst figure, the worse pattern). The metric is the worse pattern's bytes/connection."""
    n = 1000 if ctx.args.smoke else scen["conns"]
    patterns = IDLE_PATTERNS[:1] if ctx.args.smoke else IDLE_PATTERNS
    time.sleep(0.2)
    rss_start = bp.rss_bytes(run.refresh_pids())
    m = dict(errors=0, non2xx=0, rss_before=rss_start)
    rss0 = rss_start        # both patterns against the pre-burst figure: memory the first
    for name, flags in patterns:     # burst kept counts against the second too
        ok, failed, rss1 = _idle_burst(ctx, scen, run, n, flags)
        wait = 0.2 if ctx.args.smoke else GIVEBACK_S
        time.sleep(wait)
        rss2 = bp.rss_bytes(run.refresh_pids())
        m["errors"] += failed
        m[f"rss_per_conn_{name}"] = (rss1 - rss0) / ok if ok else None
        m[f"rss_after_{name}"] = rss1
        m[f"giveback_over_pct_{name}"] = 100.0 * (rss2 - rss0) / rss0 if rss0 else None
        m["conns"] = ok
    per = [m[f"rss_per_conn_{p}"] for p, _ in patterns if m[f"rss_per_conn_{p}"] is not None]
    over = [m[f"giveback_over_pct_{p}"] for p, _ in patterns
            if m[f"giveback_over_pct_{p}"] is not None]
    m["rss_per_conn_bytes"] = max(per) if per else None
    m["giveback_over_pct"] = max(over) if over else None
    m["giveback_s"] = wait
    return m


def _idle_burst(ctx, scen, run, n, flags):
    """One burst of n idle connections (bench/idle.c): (ok, failed, settled RSS while they are
    open). The connections are closed when it returns."""
    errlog = open(os.path.join(ctx.tmp, "idle.err"), "wb")
    p = bp.start([ctx.tool("idle"), "-c", str(n)] + flags +
                 ["-p", run.srv.path_for(scen["path"]), "-T", "60", f"127.0.0.1:{run.port}"],
                 ctx.client_cpu, subprocess.PIPE, errlog, stdin=subprocess.PIPE)
    try:
        line = _read_line(p.stdout, 90)
        if not line.startswith("ready"):
            raise RuntimeError(f"idle client: no 'ready' line within 90 s (got {line!r})")
        ok, failed = (int(x) for x in line.split()[1:3])
        rss1 = _settled_rss(run, 0.3 if ctx.args.smoke else 3.0)   # idle: steady state, every server alike
        return ok, failed, rss1
    finally:
        p.stdin.close()             # EOF: the client closes its connections and exits
        try:
            p.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass
        bp.stop(p)
        p.stdout.close()
        errlog.close()


def _read_line(f, timeout):
    deadline, buf = time.monotonic() + timeout, b""
    while b"\n" not in buf and time.monotonic() < deadline:
        r, _, _ = select.select([f], [], [], 0.5)
        if r:
            chunk = os.read(f.fileno(), 4096)
            if not chunk:
                break
            buf += chunk
    return buf.decode(errors="replace").strip()


def _settled_rss(run, first_wait):
    time.sleep(first_wait)
    prev = bp.rss_bytes(run.refresh_pids())
    for _ in range(10):
        time.sleep(0.5)
        cur = bp.rss_bytes(run.refresh_pids())
        if abs(cur - prev) <= 0.01 * max(prev, 1):
            return cur
        prev = cur
    return prev


def fd_count(pids):
    """Open descriptors of the given processes (nginx: master plus workers), from /proc."""
    total = 0
    for pid in pids:
        try:
            total += len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            pass
    return total


def flood_params(ctx, scen):
    p = {k: scen[k] for k in ("mode", "silent", "slow", "requests", "clients", "seconds",
                              "budget", "settle")}
    p.update(scen.get("smoke", {}) if ctx.args.smoke else
             scen.get("quick", {}) if ctx.args.quick else {})
    return p


def _after_request(run, mode, path, timeout=5.0):
    """One ordinary client right after the flood: (status or 'echo ok'/error text, ms)."""
    t0 = time.monotonic()
    try:
        if mode == "echo":
            msg = os.urandom(64)
            with socket.create_connection(("127.0.0.1", run.port), timeout=timeout) as s:
                s.sendall(msg)
                got = b""
                while len(got) < len(msg):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    got += chunk
            res = "echo ok" if got == msg else f"echoed {len(got)} of 64 B"
        else:
            res = srvs.http_get(run.port, path, timeout=timeout)[0]
    except (OSError, RuntimeError, ValueError, IndexError) as e:
        res = f"error: {e}"
    return res, (time.monotonic() - t0) * 1e3


def _log_excerpt(paths_offsets, pattern=r"shed|making room|accept|worker_connections|"
                 r"too many open files|limit"):
    """Lines of the server's logs written during the run that are about the flood: count and
    up to 4 distinct ones (numbers masked), so the JSON shows what the server said."""
    lines = []
    for path, off in paths_offsets:
        try:
            with open(path, "rb") as f:
                f.seek(off)
                lines += f.read().decode(errors="replace").splitlines()
        except OSError:
            pass
    counters = next((ln.strip() for ln in reversed(lines) if re.search(r"counters", ln)), None)
    hits = [ln.strip() for ln in lines if re.search(pattern, ln, re.I) and "counters:" not in ln]
    distinct = []
    for ln in hits:
        key = re.sub(r"\d+", "N", ln)
        if key not in (re.sub(r"\d+", "N", d) for d in distinct):
            distinct.append(ln[:200])
    return len(hits), distinct[:4], counters


def _has_counters(srv):
    """portico logs its engine counters on SIGUSR1 (builds that know it; to others, and to the
    echo example, SIGUSR1 is fatal, so it is only sent when the binary has that line)."""
    if os.path.basename(srv.program) != "portico":
        return False
    if not hasattr(srv, "_counters"):
        try:
            with open(srv.program, "rb") as f:
                srv._counters = b"portico: counters:" in f.read()
        except OSError:
            srv._counters = False
    return srv._counters


def _counters(run, log_path):
    """SIGUSR1, then the counters line it logs, as a dict (None when there is none)."""
    off = _size(log_path)
    try:
        os.kill(run.proc.pid, signal.SIGUSR1)
    except OSError:
        return None
    for _ in range(20):
        time.sleep(0.05)
        with open(log_path, "rb") as f:
            f.seek(off)
            m = re.search(r"counters: (.*)", f.read().decode(errors="replace"))
        if m:
            return {("shed_" + k if k in ("silent", "partial", "idle") else k): int(v)
                    for k, v in re.findall(r"([a-z_]+) (\d+)", m.group(1))}
    return None


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def measure_flood(ctx, scen, run):
    """S10, G1, G2: bench/flood.c against a server limited to scen['nofile'] descriptors.
    Records the client's counts and latencies, the server's descriptors before the flood, at
    its peak, when the real clients start and `settle` s after the flood is gone (and how long
    they took to come back to the baseline), and one ordinary request right after the flood."""
    p = flood_params(ctx, scen)
    path = run.srv.path_for(scen["path"])
    time.sleep(0.2)
    pids = run.refresh_pids()
    fds0 = fd_count(pids)
    logs = [(run.log, _size(run.log))]
    if run.srv.ready == "port":         # nginx writes its errors to its own log
        nlog = os.path.join(ctx.tmp, "nginx-error.log")
        logs.append((nlog, _size(nlog)))
    argv = [ctx.tool("flood"), "-a", f"127.0.0.1:{run.port}", "--mode", p["mode"],
            "-n", str(p["silent"]), "-s", str(p["slow"]), "-t", f"{p['seconds']:g}",
            "-b", f"{p['budget']:g}"]
    argv += (["-c", str(p["clients"])] if p["mode"] == "echo" else
             ["-r", str(p["requests"]), "-P", path])
    tag = f"flood-{len(bp.STARTED)}"
    out_path, err_path = (os.path.join(ctx.tmp, tag + x) for x in (".out", ".err"))
    limit = 15 + 10 + 10 + p["seconds"] + p["budget"] + 30     # flood.c's own bounds + margin
    cpu0, t0 = bp.cpu_ticks(pids), time.monotonic()
    sys0, ru0 = bp.system_cpu([0, 1]), resource.getrusage(resource.RUSAGE_CHILDREN)
    kso = _ksoftirqd([0, 1])
    kso0 = bp.cpu_ticks(kso)
    peak, fds_legit, cnt_during = fds0, None, None
    with open(out_path, "wb") as fo, open(err_path, "wb") as fe:
        cl = bp.start(argv, ctx.client_cpu, fo, fe)
    try:
        while cl.poll() is None:
            if time.monotonic() - t0 > limit:
                raise RuntimeError(f"flood client still running after {limit:.0f} s")
            n = fd_count(run.refresh_pids())
            peak = max(peak, n)
            if fds_legit is None and "legit:" in _read(err_path):
                fds_legit = n
                if _has_counters(run.srv):
                    cnt_during = _counters(run, run.log)
            time.sleep(0.25)
    finally:
        bp.stop(cl)
    t_end = time.monotonic()
    # other load on the two CPUs during the flood: busy time minus the server's, the
    # client's (the client and its flood processes, reaped: the harness's RUSAGE_CHILDREN) and
    # the kernel's softirq threads', which do much of the loopback TCP work of a flood
    sys1, ru1 = bp.system_cpu([0, 1]), resource.getrusage(resource.RUSAGE_CHILDREN)
    cli_s = (ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime)
    kso_s = (bp.cpu_ticks(kso) - kso0) / bp.HZ
    wall = t_end - t0
    other_pct = 100 * ((sys1["busy"] - sys0["busy"]) / bp.HZ - cli_s - kso_s -
                       (bp.cpu_ticks(run.refresh_pids()) - cpu0) / bp.HZ) / wall
    steal_pct = 100 * (sys1["steal"] - sys0["steal"]) / bp.HZ / wall
    after, after_ms = _after_request(run, p["mode"], path)
    time.sleep(max(0.0, t_end + p["settle"] - time.monotonic()))
    pids = run.refresh_pids()
    fds_after = fd_count(pids)
    back_s, n = None, fds_after
    while time.monotonic() - t_end < p["settle"] + 10:
        if n <= fds0 + 2:
            back_s = time.monotonic() - t_end
            break
        time.sleep(0.1)
        n = fd_count(run.refresh_pids())
    srv_cpu = (bp.cpu_ticks(pids) - cpu0) / bp.HZ
    window = 0.2 if ctx.args.smoke else 1.0     # a server that spins after the flood shows here
    c1 = bp.cpu_ticks(pids)
    time.sleep(window)
    idle_pct = 100 * (bp.cpu_ticks(run.refresh_pids()) - c1) / bp.HZ / window
    alive = run.proc.poll() is None
    cnt_after = _counters(run, run.log) if alive and _has_counters(run.srv) else None
    stop_s, exit_code = _stop_timed(run) if alive else (None, run.proc.returncode)
    out = _read(out_path)
    line = next((ln for ln in out.splitlines() if ln.startswith("BENCHJSON ")), None)
    if cl.returncode != 0 or line is None:
        raise RuntimeError(f"flood exited {cl.returncode}: {(_read(err_path) or out)[-300:]}")
    j = json.loads(line.split(" ", 1)[1])
    nlog, excerpt, counters = _log_excerpt(logs)
    m = dict(j, fds_before=fds0, fds_peak=peak, fds_at_legit=fds_legit, fds_after=fds_after,
             fds_back_s=back_s, fds_back=back_s is not None, after_flood=after,
             after_flood_ms=after_ms, after_flood_ok=after in (200, "echo ok"),
             server_alive=alive, server_cpu_s=srv_cpu, server_log_lines=nlog,
             server_log=excerpt, server_counters_line=counters,
             server_counters_during=cnt_during, server_counters_after=cnt_after,
             client_cpu_pct=100 * cli_s / wall, other_cpu_pct=other_pct, steal_pct=steal_pct,
             softirq_thread_cpu_pct=100 * kso_s / wall,
             # noted in the table, not repeated (a flood run is long): see docs/BENCHMARKS.md
             load_disturbed=max(other_pct, steal_pct) > DISTURBED_PCT,
             settle_s=p["settle"], idle_cpu_pct_after=idle_pct, stop_s=stop_s,
             server_exit=exit_code, client_log=_read(err_path)[-600:])
    m["requests"] = j["requests"]
    m["errors"] = j["failed"] + j["timeouts"]
    m["p50_us"] = j["p50_ms"] * 1e3 if j["p50_ms"] >= 0 else None
    m["p99_us"] = j["p99_ms"] * 1e3 if j["p99_ms"] >= 0 else None
    return m


def _ksoftirqd(cpus):
    """PIDs of the kernel's ksoftirqd threads of the given CPUs."""
    names = {f"ksoftirqd/{c}" for c in cpus}
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() in names:
                        out.append(int(d))
            except OSError:
                pass
    return out


def _stop_timed(run, timeout=10.0):
    """SIGTERM to the server's group: (seconds to exit, exit status), or (None, "hung") when it
    is still running after timeout s (run.stop() then kills it)."""
    t0 = time.monotonic()
    try:
        os.killpg(run.proc.pid, signal.SIGTERM)
        rc = run.proc.wait(timeout)
    except subprocess.TimeoutExpired:
        return None, "hung"
    except ProcessLookupError:
        rc = run.proc.poll()
    return time.monotonic() - t0, rc


def _read(path):
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return ""


def run_one(ctx, scen, srv):
    run = srvs.start(srv, ctx.tmp, ctx.docroot, scen_cpus(ctx, scen)[0],
                     nofile=scen.get("nofile"))
    try:
        if scen["tool"] == "idle":
            return measure_idle(ctx, scen, run)
        if scen["tool"] == "flood":
            return measure_flood(ctx, scen, run)
        return measure_load(ctx, scen, run)
    finally:
        run.stop()


def run_with_repeats(ctx, scen, srv):
    attempts = 1 if ctx.args.smoke else 1 + MAX_REPEATS
    for i in range(attempts):
        m = run_one(ctx, scen, srv)
        m["attempts"] = i + 1
        if not m.get("disturbed"):
            break
        log(f"    disturbed (other load {m['other_cpu_pct']:.0f} % of a CPU, steal "
            f"{m['steal_pct']:.0f} %)" + (": repeating" if i + 1 < attempts else ""))
    return m


# ---- the whole bench -------------------------------------------------------------------------

def log(msg):
    print(msg, file=sys.stderr, flush=True)


def select_scenarios(spec):
    """The default set, or the named ones. A name also selects its lettered variants (S6: S6b),
    except the optional ones (S10p, S10d, G1p), which run only when named exactly."""
    if not spec:
        return {k: v for k, v in SCENARIOS.items() if not v["optional"]}
    want = spec.replace(",", " ").split()

    def picked(k, w):
        return k == w or (k[:-1] == w and k[-1].isalpha() and not SCENARIOS[k]["optional"])
    bad = [w for w in want if not any(picked(k, w) for k in SCENARIOS)]
    if bad:
        raise SystemExit(f"bench: unknown scenario(s) {bad}; known: {' '.join(SCENARIOS)}")
    return {k: v for k, v in SCENARIOS.items() if any(picked(k, w) for w in want)}


def preflight(ctx, servers, needed):
    """Starts each server once and checks every answer it will give; marks the ones that fail."""
    failures = []
    for name in needed:
        srv = servers[name]
        if srv.missing:
            log(f"  {name}: skipped, {srv.missing}")
            continue
        try:
            run = srvs.start(srv, ctx.tmp, ctx.docroot, ctx.server_cpu)
            try:
                srvs.check(run, ctx.files)
            finally:
                run.stop()
            log(f"  {name}: ok (right bytes for every file)")
        except (RuntimeError, OSError, ValueError) as e:
            srv.missing = f"failed the pre-check: {e}"
            failures.append(srv.missing)
            log(f"  {name}: {srv.missing}")
    return failures


def progress(rnd, rounds, key, name, m):
    metric = SCENARIOS[key]["metric"]
    if metric == "served_pct":
        log(f"  [{rnd}/{rounds}] {key:4} {name:14} served {m['served']}/{m['requests']} "
            f"(failed {m['failed']}, timed out {m['timeouts']}), p50 {m['p50_ms']:.1f} ms, "
            f"p99 {m['p99_ms']:.1f} ms, max {m['max_ms']:.1f} ms; flood held "
            f"{m['flood_held']} of {m['flood_target']}, slowloris open {m['slowloris_open']}; "
            f"fds {m['fds_before']} / peak {m['fds_peak']} / {m['fds_after']} after "
            f"{m['settle_s']:g} s; after the flood: {m['after_flood']}")
        return
    unit = {"rps": " req/s", "mbps": " MB/s", "rss_per_conn_bytes": " B/conn"}[metric]
    if metric == "rss_per_conn_bytes":
        unit += " (" + ", ".join(f"{p} {rep.num(m.get('rss_per_conn_' + p))}"
                                 for p, _ in IDLE_PATTERNS if m.get("rss_per_conn_" + p)
                                 is not None) + \
            f"; {rep.num(m.get('giveback_over_pct'))} % over the start {m.get('giveback_s')} s " \
            "after closing)"
    extra = "" if m.get("cpu_us_per_req") is None else f", CPU {m['cpu_us_per_req']:.2f} µs/req"
    cli = "" if m.get("client_cpu_pct") is None else f", client {m['client_cpu_pct']:.0f} %"
    err = f", errors {m.get('errors')}" + (f" non-2xx {m['non2xx']}" if m.get("non2xx") else "")
    if m.get("tls"):
        err += f", {m['tls']}, resumed {m['resumed_pct']:.0f} %" if m.get("resumed_pct") \
            is not None else f", {m['tls']}"
        if m.get("first_error"):
            err += f" (first error: {m['first_error']})"
    log(f"  [{rnd}/{rounds}] {key:4} {name:14} {rep.num(m.get(metric))}{unit}{extra}{cli}{err}")


def machine_info(build):
    info = {"cpu": None, "cpus": os.cpu_count(), "kernel": platform.release(),
            "mem_gib": None, "python": platform.python_version()}
    try:
        with open("/proc/cpuinfo") as f:
            info["cpu"] = next((ln.split(":", 1)[1].strip() for ln in f
                                if ln.startswith("model name")), None)
        with open("/proc/meminfo") as f:
            info["mem_gib"] = round(int(f.readline().split()[1]) / 2**20, 1)
        with open("/etc/os-release") as f:
            info["os"] = next((ln.split("=", 1)[1].strip().strip('"') for ln in f
                               if ln.startswith("PRETTY_NAME=")), None)
    except OSError:
        pass
    info.update(srvs.versions(shutil.which("nginx", path="/usr/sbin:/usr/bin") or "nginx"))
    try:
        info["portico_commit"] = subprocess.run(    # of the tree the measured build came from
            ["git", "-C", os.path.dirname(os.path.abspath(build)), "rev-parse", "--short",
             "HEAD"], capture_output=True,
            text=True, timeout=5).stdout.strip() or None
    except (OSError, subprocess.TimeoutExpired):
        info["portico_commit"] = None
    info["build"] = build
    info["pinning"] = "server CPU %d, client CPU %d" % bp.cpus()
    return info


def parse_args(argv):
    env = os.environ
    quick = env.get("QUICK", "") not in ("", "0")
    ap = argparse.ArgumentParser(description="Portico vs nginx vs the limit server (issue 8)")
    ap.add_argument("--smoke", action="store_true", help="every scenario ~1 s, our servers only")
    ap.add_argument("--quick", action="store_true", default=quick, help="1 round of 3 s")
    ap.add_argument("--rounds", type=int, default=int(env["ROUNDS"]) if env.get("ROUNDS") else None)
    ap.add_argument("--duration", type=float,
                    default=float(env["DURATION"]) if env.get("DURATION") else None)
    ap.add_argument("--scenarios", default=env.get("SCENARIOS", ""))
    ap.add_argument("--servers", default=env.get("SERVERS", ""))
    ap.add_argument("--out", default=None, help="JSON path (default bench/results/latest.json)")
    ap.add_argument("--markdown", metavar="JSON", help="print the Markdown table of a result file")
    a = ap.parse_args(argv)
    fast = a.smoke or a.quick
    a.rounds = a.rounds or (1 if fast else 3)
    a.duration = a.duration or (1.0 if a.smoke else 3.0 if a.quick else 10.0)
    if a.out is None:
        a.out = os.path.join(HERE, "results", "smoke.json" if a.smoke else "latest.json")
    return a


def plan(args, servers, scens):
    only = set(args.servers.replace(",", " ").split())
    for name in only - set(servers):
        raise SystemExit(f"bench: unknown server '{name}'; known: {' '.join(servers)}")
    out = {}
    for key, scen in scens.items():
        names = [n for n in scen["servers"] if (not only or n in only)]
        if args.smoke:              # our own servers only, and for TLS only the few named;
            names = [n for n in names if not n.startswith(("nginx", "h2o")) and   # one limit
                     n in scen.get("smoke_servers", names) and n != "limit-uring"]
        if names:
            out[key] = names
    return out


def bench(args):
    build = os.environ.get("PT_RELEASE_BUILD") or os.path.join(ROOT, "build")
    for tool in ("limit", "echo_epoll", "echo_load", "bigread", "idle", "flood", "tlsload"):
        if not os.access(os.path.join(build, "bench", tool), os.X_OK):
            raise SystemExit(f"bench: {build}/bench/{tool} missing: run `make` (or make bench)")
    if not os.access(os.path.join(build, "portico-load"), os.X_OK):
        raise SystemExit(f"bench: {build}/portico-load missing: run `make` (or make bench)")
    if not shutil.which("wrk"):
        raise SystemExit("bench: wrk not installed (make bench installs it: scripts/deps.sh bench)")
    scens = select_scenarios(args.scenarios)
    servers = srvs.definitions(build, os.path.join(build, "bench-docroot"))
    todo = plan(args, servers, scens)
    bp.open_ledger(build)
    tmp = tempfile.mkdtemp(prefix="pt-bench-")
    atexit.register(shutil.rmtree, tmp, True)
    log(f"bench: docroot {build}/bench-docroot (created once, then reused)")
    files, warn = srvs.make_docroot(os.path.join(build, "bench-docroot"))
    if warn:
        log(f"bench: warning: {warn}")
    ctx = Ctx(args, build, tmp, os.path.join(build, "bench-docroot"), files)
    if any(servers[n].tls and not servers[n].missing for names in todo.values() for n in names):
        srvs.make_tls(tmp)          # one ECDSA P-256 certificate for every TLS server
    log(f"bench: {args.rounds} round(s) x {args.duration:g} s; scenarios {' '.join(todo)}; "
        f"server on CPU {ctx.server_cpu}, client on CPU {ctx.client_cpu}")
    log("bench: checking every server's answers before measuring")
    needed = [n for n in servers if any(n in names for names in todo.values())]
    failures = preflight(ctx, servers, needed)

    runs = {k: {n: [] for n in names} for k, names in todo.items()}
    errs = {k: {n: [] for n in names} for k, names in todo.items()}
    for rnd in range(1, args.rounds + 1):
        for key, names in todo.items():
            # the servers' order alternates from round to round, so none is always first
            for name in (names if rnd % 2 else list(reversed(names))):
                if servers[name].missing:
                    continue
                try:
                    m = run_with_repeats(ctx, scens[key], servers[name])
                    m["round"] = rnd
                    runs[key][name].append(m)
                    progress(rnd, args.rounds, key, name, m)
                except (RuntimeError, OSError, ValueError, KeyError) as e:
                    errs[key][name].append(str(e))
                    failures.append(f"{key} {name}: {e}")
                    log(f"  [{rnd}/{args.rounds}] {key:4} {name:14} FAILED: {e}")

    results = {}
    for key, names in todo.items():
        rows = {n: rep.summarize(scens[key], runs[key][n], errs[key][n], servers[n].missing)
                for n in names}
        results[key] = rows
    for key in todo:                    # after all: a variant's reference is in its base scenario
        rep.add_ratios(scens[key], results[key], results.get(scens[key].get("base")))
        rep.add_paired(scens[key], results[key])
    tls_info = {n: s.tls_info for n, s in servers.items() if s.tls_info}
    doc = {"scenarios": results, "machine": machine_info(build), "tls": tls_info,
           "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
           "settings": {"rounds": args.rounds, "duration_s": args.duration, "smoke": args.smoke,
                        "quick": args.quick, "server_order": "alternating (reversed on even "
                                                             "rounds)"},
           "scenario_titles": {k: scens[k]["title"] for k in todo},
           "failures": failures,
           "pids_started": [p.pid for p in bp.STARTED]}
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
        json.dump(doc, f, indent=1, default=str)
    os.replace(args.out + ".tmp", args.out)
    if os.path.basename(args.out) == "latest.json":   # keep every run: a quick look later
        stamp = doc["date"][:19].replace(":", "")      # must not erase a full run
        shutil.copyfile(args.out, os.path.join(os.path.dirname(args.out), f"run-{stamp}.json"))
    print(rep.terminal(results, scens))
    if tls_info:
        print("\n" + rep.tls_summary(tls_info, results))
    print(f"\nresults: {args.out}   (ratios: ×ref = throughput / the reference "
          "server's: nginx, or the plain loop for E*, or io_uring Portico for S9; "
          "CPU ×ref likewise for CPU per request; floods: p99 ×ref = p99 / nginx's p99, "
          "lower is better)")
    return 1 if failures else 0


def _on_signal(signum, frame):
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv):
    args = parse_args(argv)
    if args.markdown:
        with open(args.markdown) as f:
            doc = json.load(f)
        m, st = doc["machine"], doc["settings"]
        print(f"Run of {doc['date']}: {st['rounds']} round(s) x {st['duration_s']:g} s, "
              f"Portico commit {m.get('portico_commit')}. Machine: {m.get('os')}, kernel "
              f"{m.get('kernel')}, {m.get('cpus')} x {m.get('cpu')}, {m.get('mem_gib')} GiB; "
              f"{m.get('nginx')}; {m.get('wrk')}; {m.get('pinning')}.\n")
        print(rep.markdown(doc["scenarios"], {k: SCENARIOS[k] for k in doc["scenarios"]}))
        if doc.get("tls"):
            print(f"\n{m.get('openssl')}; {m.get('h2o')}. " +
                  rep.tls_summary(doc["tls"], doc["scenarios"]))
        return 0
    atexit.register(bp.stop_all)
    for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(s, _on_signal)
    try:
        return bench(args)
    except KeyboardInterrupt:
        log("\nbench: interrupted; stopping every process it started")
        return 130
    finally:
        bp.stop_all()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
