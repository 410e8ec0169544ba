#!/usr/bin/env python3
"""loadcmp: portico-load against wrk, requests per second of client CPU (issue 19).

The limit server (build/bench/limit, epoll or -u io_uring) runs pinned to one CPU, the client
pinned to the other (taskset). One client thread, the same connections and path; each round
runs every client (wrk, portico-load, optionally a second portico-load build) against each
server, the order rotating from round to round. For each run it reports the request rate, the
client's CPU time (user + system from wait4()'s rusage, all threads), requests per client
CPU-second, the client's and the server's share of their cores (the server's from
/proc/PID/stat over the run), the 1-minute load average at the start, and the CPU time other
processes used on the two CPUs during the run (/proc/stat busy time minus client and server,
in cores; a run above --max-other is marked '!': something else competed, and its round is
left out of the ratio unless --include-loaded). The summary gives, per server, the median
and range of each client's requests per CPU-second and of the per-round ratio to wrk.

    bench/loadcmp.py                        # S1: 100 connections, both limit servers, 5 rounds
    bench/loadcmp.py --servers uring --rounds 9 --duration 5
    bench/loadcmp.py --load-args='--pipeline 16' --wrk-script bench/pipeline.lua
    bench/loadcmp.py --base-bin /tmp/old/build/portico-load   # before/after in the same rounds

Needs build/portico-load, build/bench/limit (make) and wrk. Every process it starts is
stopped by PID at the end (and gets PR_SET_PDEATHSIG, so a killed harness leaves nothing).
"""
import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import benchproc  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SERVER_CPU, CLIENT_CPU = benchproc.cpus()


def start_limit(kind, limit_bin):
    argv = [limit_bin, "-l", "127.0.0.1:0"] + (["-u"] if kind == "uring" else [])
    p = benchproc.start(argv, SERVER_CPU, subprocess.PIPE, subprocess.DEVNULL)
    line = p.stdout.readline().decode()
    p.stdout.close()            # limit prints nothing more
    m = re.search(r"listening on [\d.]+:(\d+)", line)
    if not m:
        raise SystemExit(f"limit did not start: {line!r}")
    return p, int(m.group(1))


def run_client(argv):
    """Runs argv pinned to the client CPU; returns (stdout, cpu seconds, wall seconds)."""
    t0 = time.monotonic()
    p = benchproc.start(argv, CLIENT_CPU, subprocess.PIPE, subprocess.PIPE)
    out = p.stdout.read().decode(errors="replace")
    err = p.stderr.read().decode(errors="replace")
    p.stdout.close()
    p.stderr.close()
    _, status, ru = os.wait4(p.pid, 0)
    p.returncode = os.waitstatus_to_exitcode(status)
    p.bench_stopped = True
    wall = time.monotonic() - t0
    if p.returncode != 0:
        raise SystemExit(f"{argv[0]} failed ({p.returncode}): {err.strip()[-400:]}")
    return out, ru.ru_utime + ru.ru_stime, wall


def run_wrk(port, a):
    argv = ["wrk", "-t1", f"-c{a.connections}", f"-d{a.duration}s",
            f"http://127.0.0.1:{port}{a.path}"]
    if a.wrk_script:
        argv[1:1] = ["-s", a.wrk_script]
    out, cpu, wall = run_client(argv)
    m = re.search(r"(\d+) requests in ([\d.]+)(m?s)", out)
    if not m:
        raise SystemExit(f"wrk output not understood: {out!r}")
    secs = float(m.group(2)) / (1000 if m.group(3) == "ms" else 1)
    return int(m.group(1)), secs, cpu, wall


def run_load(port, a, binary, extra):
    argv = [binary, "-t", "1", "-c", str(a.connections), "-d", str(a.duration), "-q",
            "--json", "-"] + extra.split() + [f"http://127.0.0.1:{port}{a.path}"]
    out, cpu, wall = run_client(argv)
    j = json.loads(out.strip().splitlines()[-1])
    errs = sum(j["errors"].values())
    if errs:
        print(f"  portico-load errors: {j['errors']}", file=sys.stderr)
    return j["requests"], j["seconds"], cpu, wall


def one(kind, client, port, srv, a, rnd):
    load = os.getloadavg()[0]
    s0 = benchproc.cpu_ticks([srv.pid])
    b0 = benchproc.system_cpu([SERVER_CPU, CLIENT_CPU])["busy"]
    t0 = time.monotonic()
    if client == "wrk":
        reqs, secs, cpu, wall = run_wrk(port, a)
    else:
        base = client == "base"
        reqs, secs, cpu, wall = run_load(port, a, a.base_bin if base else a.load_bin,
                                         a.base_args if base else a.load_args)
    el = time.monotonic() - t0
    srv_cpu = (benchproc.cpu_ticks([srv.pid]) - s0) / benchproc.HZ
    busy = (benchproc.system_cpu([SERVER_CPU, CLIENT_CPU])["busy"] - b0) / benchproc.HZ
    srv_share, other = srv_cpu / el, max(0.0, (busy - srv_cpu - cpu) / el)
    r = {"server": kind, "client": client, "requests": reqs, "rps": reqs / secs,
         "cpu_s": cpu, "per_cpu_s": reqs / cpu if cpu else 0.0, "cli_share": cpu / wall,
         "srv_share": srv_share, "other": other, "load": load, "loaded": other > a.max_other}
    print(f"{rnd:2} {kind:5} {client:12} {r['rps']:10.0f} req/s  cpu {cpu:6.2f} s  "
          f"{r['per_cpu_s']:9.0f} req/cpu-s  {1e6 / r['per_cpu_s']:5.2f} us/req  "
          f"client {100 * r['cli_share']:5.1f} %  server {100 * srv_share:5.1f} %  "
          f"others {100 * other:5.1f} %  load {load:4.2f}{' !' if r['loaded'] else ''}", flush=True)
    return r


def spread(xs):
    f = (lambda x: f"{x:.0f}") if max(xs) >= 100 else (lambda x: f"{x:.1f}")
    return f"{f(statistics.median(xs))} [{f(min(xs))}-{f(max(xs))}]"


def clients(a):
    return ["wrk", "portico-load"] + (["base"] if a.want_base else [])


def summary(results, a):
    print()
    for kind in a.servers:
        rows = [r for r in results if r["server"] == kind]
        ratios, every, loaded = {c: [] for c in clients(a) if c != "wrk"}, {}, 0
        for rnd in range(a.rounds):
            rr = {r["client"]: r for r in rows if r["round"] == rnd}
            noisy = any(r["loaded"] for r in rr.values())
            loaded += noisy
            for c in ratios:
                x = rr[c]["per_cpu_s"] / rr["wrk"]["per_cpu_s"]
                every.setdefault(c, []).append(x)
                if a.include_loaded or not noisy:
                    ratios[c].append(x)
        print(f"limit {kind}: {a.rounds} rounds ({loaded} with a run where other processes used "
              f"> {a.max_other:.2f} of a core"
              f"{', counted' if a.include_loaded else ', left out of the ratio'})")
        for client in clients(a):
            cr = [r for r in rows if r["client"] == client]
            print(f"  {client:12} req/s {spread([r['rps'] for r in cr])}  "
                  f"req per client CPU-s {spread([r['per_cpu_s'] for r in cr])}  "
                  f"client {spread([100 * r['cli_share'] for r in cr])} %  "
                  f"server {spread([100 * r['srv_share'] for r in cr])} %")
        for c, rs in ratios.items():
            for what, xs in (("quiet", rs), ("all", every[c])):
                if xs and (what == "quiet" or len(xs) != len(rs)):
                    print(f"  ratio {c} / wrk per client CPU-s ({what} rounds): median "
                          f"{statistics.median(xs):.2f} [{min(xs):.2f}-{max(xs):.2f}] over "
                          f"{len(xs)} rounds")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--servers", nargs="+", default=["uring", "epoll"], choices=["uring", "epoll"])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--duration", type=int, default=5, help="seconds per run")
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--path", default="/hello.txt")
    ap.add_argument("--load-args", default="", help="extra portico-load options")
    ap.add_argument("--wrk-script", default=None, help="wrk -s script (e.g. bench/pipeline.lua)")
    ap.add_argument("--max-other", type=float, default=0.15,
                    help="CPU time of other processes on the two CPUs during a run, in cores, "
                         "above which the run is marked noisy (default 0.15)")
    ap.add_argument("--include-loaded", action="store_true",
                    help="count marked rounds in the ratio too")
    ap.add_argument("--load-bin", default=os.path.join(ROOT, "build", "portico-load"))
    ap.add_argument("--limit-bin", default=os.path.join(ROOT, "build", "bench", "limit"))
    ap.add_argument("--base-bin", help="a second portico-load binary (e.g. an older build), "
                    "run as client 'base' in every round")
    ap.add_argument("--base-args", default=None, help="portico-load options of client 'base' "
                    "(default: --load-args); with no --base-bin, 'base' is the same build")
    ap.add_argument("--json", help="append every run as a JSON line to this file")
    a = ap.parse_args()
    a.want_base = a.base_bin is not None or a.base_args is not None  # before the defaults below
    if a.base_args is not None and not a.base_bin:
        a.base_bin = a.load_bin
    if a.base_args is None:
        a.base_args = a.load_args

    results = []
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):   # stop the servers on the way out
        signal.signal(sig, lambda *_: sys.exit(1))
    try:
        servers = {kind: start_limit(kind, a.limit_bin) for kind in a.servers}
        time.sleep(0.3)
        for rnd in range(a.rounds):         # an idle limit server waits in epoll/io_uring
            order = clients(a)[rnd % len(clients(a)):] + clients(a)[:rnd % len(clients(a))]
            for kind, (srv, port) in servers.items():
                for client in order:
                    r = one(kind, client, port, srv, a, rnd)
                    r["round"] = rnd
                    results.append(r)
                    if a.json:
                        with open(a.json, "a") as f:
                            f.write(json.dumps(r) + "\n")
                    time.sleep(0.5)
    finally:
        benchproc.stop_all()
    summary(results, a)


if __name__ == "__main__":
    main()
