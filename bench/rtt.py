#!/usr/bin/env python3
"""Throughput against round-trip time for the three application I/O models, with and without
BUFFER (the second source document, "Buffering in HTTP.SYS"). Not part of `make test`.

    make && bench/rtt.py [--rtts 1,10,25,50,75,100] [--rate-mbit 100] [--size-mib 4]
                         [--max-seconds 3] [--reps 2] [--out docs/rtt] [--plot-only]

Network: two network namespaces, ptrttA (the server, 198.18.0.1) and ptrttB (the client,
198.18.0.2), joined by bench/rttrelay, a userspace delay line between a TUN device in each (this
kernel has no netem; tbf/htb shape rate but add no fixed delay). Each direction holds every
packet for RTT/2 and is a --rate-mbit link; TCP runs end to end between the two kernels. The
namespaces, devices and processes are removed on exit, also on error or Ctrl-C.

Server: build/examples/three_models (release build, io_uring backend, one worker) in ptrttA.
For each RTT, each of the six routes (/sync, /sync-buffer, /async1, /async1-buffer, /asyncN,
/asyncN-buffer; 4 KiB pieces, depth 8) is fetched twice: with Portico's default sends, which
complete when the bytes are in the kernel's socket buffer, and with zc=1, where the unbuffered
sends are zero-copy and complete only when the kernel releases the pages, i.e. once the peer has
acknowledged them, which is when an unbuffered send completes in HTTP.SYS. Each measurement: a
new connection, a 1 MiB warm-up fetch on it (opens the congestion window), then one fetch of
--size-mib MiB, cut off after --max-seconds; rate = body bytes / time from the request to the
last byte read. The median of --reps is kept.

Writes OUT.dat (one row per RTT, one column per series), OUT.gp and OUT.svg (gnuplot), and
prints a Markdown table."""
import argparse
import atexit
import ctypes
import os
import signal
import socket
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SRV = os.path.join(ROOT, "build", "examples", "three_models")
RELAY = os.path.join(ROOT, "build", "bench", "rttrelay")
NS_A, NS_B, TUN_A, TUN_B = "ptrttA", "ptrttB", "ptrtt0", "ptrtt1"
ADDR_A, ADDR_B = "198.18.0.1", "198.18.0.2"        # RFC 2544 benchmarking range
PORT = 8080
ROUTES = ["sync", "sync-buffer", "async1", "async1-buffer", "asyncN", "asyncN-buffer"]
CLONE_NEWNET = 0x40000000
PROCS = []


def sh(*cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if r.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), r.stdout.strip()))


def cleanup():
    for p in PROCS:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
    for ns in (NS_A, NS_B):
        subprocess.run(["ip", "netns", "del", ns], stderr=subprocess.DEVNULL)


def on_signal(signum, frame):
    sys.exit(128 + signum)          # atexit runs cleanup()


def net_up():
    cleanup()
    atexit.register(cleanup)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    for ns, tun, me, peer in ((NS_A, TUN_A, ADDR_A, ADDR_B), (NS_B, TUN_B, ADDR_B, ADDR_A)):
        sh("ip", "netns", "add", ns)
        sh("ip", "-n", ns, "link", "set", "lo", "up")
        sh("ip", "-n", ns, "tuntap", "add", "dev", tun, "mode", "tun")
        sh("ip", "-n", ns, "addr", "add", me, "peer", peer, "dev", tun)
        sh("ip", "-n", ns, "link", "set", tun, "up")


def start(argv, ready, netns=None):
    cmd = (["ip", "netns", "exec", netns] if netns else []) + argv
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    PROCS.append(p)
    line = p.stdout.readline()
    if ready not in line:
        raise RuntimeError("%s did not start: %r %s" % (argv[0], line, p.stderr.read()[-500:]))
    return p


def stop(p):
    p.terminate()
    try:
        p.wait(10)
    except subprocess.TimeoutExpired:
        p.kill()
    PROCS.remove(p)


def connect_in(ns):
    """A TCP connection to the server made from inside namespace ns."""
    libc = ctypes.CDLL(None, use_errno=True)
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    there = os.open("/run/netns/" + ns, os.O_RDONLY)
    try:
        if libc.setns(there, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        try:
            return socket.create_connection((ADDR_A, PORT), timeout=30)
        finally:
            libc.setns(home, CLONE_NEWNET)
    finally:
        os.close(home)
        os.close(there)


def fetch(s, target, size, limit):
    """Body bytes/s of one GET on s, cut off after limit seconds. Returns (rate, complete)."""
    t0 = time.monotonic()
    s.sendall(("GET %s HTTP/1.1\r\nHost: rtt\r\n\r\n" % target).encode())
    buf = b""
    while b"\r\n\r\n" not in buf:
        k = s.recv(65536)
        if not k:
            raise EOFError("closed before the head")
        buf += k
    got = len(buf) - buf.index(b"\r\n\r\n") - 4
    view = bytearray(1 << 20)
    s.settimeout(0.2)
    while got < size and time.monotonic() - t0 < limit:
        try:
            k = s.recv_into(view)
        except socket.timeout:
            continue
        if k == 0:
            raise EOFError("closed with %d bytes to go" % (size - got))
        got += k
    s.settimeout(30)
    return got / (time.monotonic() - t0), got >= size


def measure(route, zc, args):
    rates = []
    for _ in range(args.reps):
        s = connect_in(NS_B)
        try:
            fetch(s, "/asyncN?size=%d" % (1 << 20), 1 << 20, 60)       # warm-up
            q = "/%s?size=%d%s" % (route, args.size_mib << 20, "&zc=1" if zc else "")
            rates.append(fetch(s, q, args.size_mib << 20, args.max_seconds)[0] / 1e6)
        finally:
            s.close()
    return statistics.median(rates)


def gnuplot(out, series, args):
    gp = out + ".gp"
    with open(gp, "w") as f:
        f.write("""# made by bench/rtt.py: gnuplot %s.gp > %s.svg
set terminal svg size 1100,480 dynamic font "sans,12" noenhanced
set datafile separator "\\t"
set multiplot layout 1,2 title "examples/three_models over a %g Mbit/s link, %d MiB responses in 4 KiB pieces (rttrelay, two namespaces)"
set xlabel "round-trip time (ms)"
set ylabel "MB/s (log scale)"
set logscale y
set yrange [0.02:30]
set key right center font "sans,10"
set grid
""" % (os.path.basename(out), os.path.basename(out), args.rate_mbit, args.size_mib))
        for panel, zc in (("Portico's sends (complete when in the socket buffer)", 0),
                          ("zc=1: unbuffered sends complete on ACK (as in HTTP.SYS)", 1)):
            f.write('set title "%s"\nplot ' % panel)
            cols = [i for i, (_, z) in enumerate(series) if z == zc]
            f.write(", \\\n     ".join(
                '"%s.dat" using 1:%d with linespoints title "%s" lw 2 pt %d dt %d' %
                (os.path.basename(out), i + 2, series[i][0], 5 + (k // 2), 1 if k % 2 == 0 else 2)
                for k, i in enumerate(cols)))
            f.write("\n")
        f.write("unset multiplot\n")
    with open(out + ".svg", "w") as svg:
        subprocess.run(["gnuplot", os.path.basename(gp)], cwd=os.path.dirname(out) or ".",
                       stdout=svg, check=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rtts", default="1,10,25,50,75,100")
    ap.add_argument("--rate-mbit", type=float, default=100.0)
    ap.add_argument("--size-mib", type=int, default=4)
    ap.add_argument("--max-seconds", type=float, default=3.0)
    ap.add_argument("--reps", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(ROOT, "docs", "rtt"))
    ap.add_argument("--plot-only", action="store_true", help="redraw OUT.svg from OUT.dat")
    args = ap.parse_args()
    if args.plot_only:
        with open(args.out + ".dat") as f:
            names = f.readline().split()[2:]
        gnuplot(args.out, [(n.replace("_", " "), int(n.endswith("_zc"))) for n in names], args)
        return
    for b in (SRV, RELAY):
        if not os.access(b, os.X_OK):
            sys.exit("%s missing: run `make` first" % b)
    if os.geteuid() != 0:
        sys.exit("rtt.py needs root (network namespaces)")
    net_up()
    env = dict(os.environ, PORTICO_BACKEND="uring")
    srv = subprocess.Popen(["ip", "netns", "exec", NS_A, "taskset", "-c", "1", SRV, "-l",
                            "%s:%d" % (ADDR_A, PORT), "-w", "1"], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True, env=env)
    PROCS.append(srv)
    if "listening" not in srv.stdout.readline():
        sys.exit("three_models did not start: " + srv.stderr.read()[-500:])
    series = [(r + (" zc" if zc else ""), zc) for zc in (0, 1) for r in ROUTES]
    rows = []
    for rtt in [float(x) for x in args.rtts.split(",")]:
        relay = start(["taskset", "-c", "0", RELAY, "-a", "%s:%s" % (NS_A, TUN_A), "-b",
                       "%s:%s" % (NS_B, TUN_B), "-d", "%g" % (rtt / 2), "-r",
                       "%g" % args.rate_mbit], "ready")
        row = [rtt]
        for name, zc in series:
            row.append(measure(name.split()[0], zc, args))
            print("# rtt %g ms  %-20s %8.3f MB/s" % (rtt, name, row[-1]), file=sys.stderr,
                  flush=True)
        stop(relay)
        rows.append(row)
    with open(args.out + ".dat", "w") as f:
        f.write("# rtt_ms\t" + "\t".join(n.replace(" ", "_") for n, _ in series) + "\n")
        for row in rows:
            f.write("\t".join("%g" % row[0:1][0] if i == 0 else "%.4f" % v
                              for i, v in enumerate(row)) + "\n")
    gnuplot(args.out, series, args)
    print("| RTT ms | " + " | ".join(n for n, _ in series) + " |")
    print("|---:|" + "---:|" * len(series))
    for row in rows:
        print("| %g | " % row[0] + " | ".join("%.2f" % v for v in row[1:]) + " |")


if __name__ == "__main__":
    main()
