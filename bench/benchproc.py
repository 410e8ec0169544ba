"""Processes for `make bench`: start pinned, find their PIDs, account their CPU and memory, stop.

Every process the harness starts goes through start() and is recorded in STARTED. Each runs in
its own session (so its whole process group can be signalled, nginx workers included) and gets
PR_SET_PDEATHSIG, so even a harness killed with SIGKILL does not leave a server behind.
stop_all() runs from atexit and from the SIGINT/SIGTERM/SIGHUP path in bench.py.

CPU time comes from /proc/PID/stat (utime + stime of the whole process, all threads), in clock
ticks; a client's CPU time comes from wait4()'s rusage once it has exited.
"""
import ctypes
import os
import re
import resource
import signal
import socket
import subprocess
import threading
import time

HZ = os.sysconf("SC_CLK_TCK")
NOFILE = 20000          # S7 holds 10 000 connections; issue 8: servers get >= 20 000 descriptors

STARTED = []            # every Popen the harness created, in order
_libc = ctypes.CDLL(None, use_errno=True)
_PR_SET_PDEATHSIG = 1


def cpus():
    """(server_cpu, client_cpu): 1 and 0, or 0 and 0 on a one-CPU machine."""
    return (1, 0) if os.cpu_count() and os.cpu_count() >= 2 else (0, 0)


def _preexec():
    _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(hard, NOFILE) if hard != resource.RLIM_INFINITY else NOFILE
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
    except (ValueError, OSError):       # not root: the hard limit is the most we get
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


_ledger = None          # file listing "pgid program" of each process group this run started


def open_ledger(directory):
    """Records every process group this harness starts in DIR/bench-run.PID.pids, and first
    stops the groups left by harnesses that died without cleaning up (SIGKILL: PDEATHSIG ends
    their direct children, but not an nginx worker, whose parent is the nginx master)."""
    global _ledger
    os.makedirs(directory, exist_ok=True)
    for name in os.listdir(directory):
        m = re.fullmatch(r"bench-run\.(\d+)\.pids", name)
        if not m or alive(int(m.group(1))):
            continue
        path = os.path.join(directory, name)
        with open(path) as f:
            for line in f:
                pgid, _, prog = line.strip().partition(" ")
                _kill_leftover_group(int(pgid), os.path.basename(prog))
        os.unlink(path)
    _ledger = os.path.join(directory, f"bench-run.{os.getpid()}.pids")
    open(_ledger, "w").close()


def close_ledger():
    if _ledger and os.path.exists(_ledger):
        os.unlink(_ledger)


def _kill_leftover_group(pgid, prog):
    for pid in _all_pids():
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().split(b"\0")[0].decode(errors="replace")
            if os.getpgid(pid) == pgid and prog in cmd and alive(pid):
                os.kill(pid, signal.SIGKILL)
        except (OSError, ProcessLookupError):
            pass


def start(argv, cpu, stdout, stderr, env=None, stdin=subprocess.DEVNULL):
    """Starts argv pinned to one CPU (taskset execs, so the PID is the program's own)."""
    p = subprocess.Popen(["taskset", "-c", str(cpu)] + list(argv), stdin=stdin, stdout=stdout,
                         stderr=stderr, env=env, start_new_session=True, preexec_fn=_preexec)
    STARTED.append(p)
    if _ledger:
        with open(_ledger, "a") as f:
            f.write(f"{p.pid} {argv[0]}\n")
    return p


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


def stop(p, grace=3.0):
    """SIGTERM to the process group, then SIGKILL after grace seconds; reaps the leader."""
    if getattr(p, "bench_stopped", False):
        return
    if p.returncode is not None and not _group_alive(p.pid):
        p.bench_stopped = True
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 2.0)):
        try:
            os.killpg(p.pid, sig)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if p.returncode is None:
                try:
                    p.wait(timeout=0.05)
                except subprocess.TimeoutExpired:
                    continue
                except ChildProcessError:
                    p.returncode = -1
            if not _group_alive(p.pid):
                p.bench_stopped = True
                return
            time.sleep(0.05)


def _group_alive(pgid):
    for pid in _all_pids():
        try:
            if os.getpgid(pid) == pgid and alive(pid):
                return True
        except (ProcessLookupError, PermissionError):
            pass
    return False


def stop_all():
    for p in reversed(STARTED):
        stop(p, grace=1.0)
    if all(getattr(p, "bench_stopped", False) for p in STARTED):
        close_ledger()          # else keep it: the next harness run stops what is left


def _all_pids():
    return [int(d) for d in os.listdir("/proc") if d.isdigit()]


def _stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()   # comm may contain spaces or ')'


def tree(pid):
    """pid and all its descendants (nginx: master and workers)."""
    parents = {}
    for q in _all_pids():
        try:
            parents[q] = int(_stat_fields(q)[1])
        except (OSError, IndexError, ValueError):
            pass
    out, todo = [], [pid]
    while todo:
        q = todo.pop()
        out.append(q)
        todo.extend(c for c, pp in parents.items() if pp == q)
    return out


def cpu_ticks(pids):
    """utime + stime of each process (all its threads), summed, in clock ticks."""
    total = 0
    for pid in pids:
        try:
            f = _stat_fields(pid)
            total += int(f[11]) + int(f[12])    # fields 14 and 15 of proc(5), after comm
        except (OSError, IndexError, ValueError):
            pass
    return total


def rss_bytes(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/status") as f:
                m = re.search(r"^VmRSS:\s+(\d+) kB", f.read(), re.M)
            total += int(m.group(1)) * 1024 if m else 0
        except OSError:
            pass
    return total


def system_cpu(cpu_ids):
    """{'busy': ticks, 'steal': ticks, 'irq': ticks} summed over the given CPUs, from /proc/stat.
    busy counts user, nice, system, irq and softirq time. irq and softirq are in because the
    loopback network stack runs in softirq context inside the measured processes and their own
    utime + stime include it, while /proc/stat files the same time under softirq."""
    out = {"busy": 0, "steal": 0, "irq": 0}
    names = {f"cpu{c}" for c in cpu_ids}
    with open("/proc/stat") as f:
        for line in f:
            parts = line.split()
            if parts and parts[0] in names:
                v = [int(x) for x in parts[1:9]]
                out["busy"] += v[0] + v[1] + v[2] + v[5] + v[6]
                out["irq"] += v[5] + v[6]
                out["steal"] += v[7]
    return out


def wait_listening(path, p, timeout=10.0):
    """Waits for "listening on ADDR:PORT" in the file the server's stdout goes to. The portico
    binary announces itself as "portico: serving DOCROOT at http://ADDR:PORT/": accepted too."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                m = re.search(r"(?:listening on |serving .* at http://)([\d.]+):(\d+)", f.read())
            if m:
                return int(m.group(2))
        except FileNotFoundError:
            pass
        if p.poll() is not None:
            raise RuntimeError(f"exited with status {p.returncode} before listening")
        time.sleep(0.02)
    raise RuntimeError(f"no 'listening on' line within {timeout:.0f} s")


def wait_port(port, p, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if p.poll() is not None:
            raise RuntimeError(f"exited with status {p.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return port
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"port {port} not accepting within {timeout:.0f} s")


def free_port():
    """A port free right now (bound to 0, then released): for servers that cannot take port 0."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_client(argv, cpu, timeout, env=None):
    """Runs a client pinned to cpu until it exits. Returns (exit code, stdout, stderr, CPU s).
    The CPU time is the client's own user + system time from wait4()."""
    p = start(argv, cpu, subprocess.PIPE, subprocess.PIPE, env=env)
    timer = threading.Timer(timeout, lambda: _kill_group(p.pid))
    timer.start()
    try:
        err_box = []
        t = threading.Thread(target=lambda: err_box.append(p.stderr.read()))
        t.start()
        out = p.stdout.read()
        t.join()
        _, status, ru = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
    finally:
        timer.cancel()
        p.stdout.close()
        p.stderr.close()
    return p.returncode, out.decode(errors="replace"), (err_box[0] if err_box else b"").decode(
        errors="replace"), ru.ru_utime + ru.ru_stime


def _kill_group(pid):
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
