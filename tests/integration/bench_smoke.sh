#!/usr/bin/env bash
# Smoke check of the benchmark harness (issue 8), so `make bench` cannot rot between runs.
# Runs `bench/run.sh --smoke`: every scenario for about a second against our own servers that
# exist (the limit server and the plain echo loop always; Portico and the examples once built),
# no nginx. The numbers are not judged; this checks that the harness itself works:
#   1 the harness exits 0 (every server started, passed the byte check, every client ran)
#   2 it wrote its JSON, with measurements for the limit server and the echo loop
#   3 no process it started is still alive afterwards
#   4 interrupted with SIGINT halfway, it stops every process it had started
# Uses the release build (PT_RELEASE_BUILD from tests/run.sh, else build/). Needs wrk: without
# it, an honest skip.
# pt-test: once -- the harness covers both engine backends itself (S9 and E1/E2 start the servers
# with --backend epoll / PORTICO_BACKEND=epoll next to the default), so one run is enough.
set -u
cd "$(dirname "$0")/../.."
B=${PT_RELEASE_BUILD:-$PWD/build}
export PT_RELEASE_BUILD=$B

if ! command -v wrk >/dev/null; then
	echo "ok 1 # SKIP wrk not installed (scripts/deps.sh bench installs it)"
	exit 0
fi
for t in limit echo_epoll echo_load bigread idle; do
	if [ ! -x "$B/bench/$t" ]; then
		echo "not ok 1 - $B/bench/$t missing: build first (make, or make test-build)"
		exit 1
	fi
done

tmp=$(mktemp -d /tmp/pt-bench-smoke.XXXXXX)
trap 'rm -rf "$tmp"' EXIT

# dead: no such process, or a zombie (PID 1 here may not reap what it inherits)
all_dead() {
	local pid st
	for pid in "$@"; do
		st=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || continue
		[ -z "$st" ] || [ "$st" = Z ] || { echo "pid $pid still running: $(tr '\0' ' ' </proc/$pid/cmdline)"; return 1; }
	done
	return 0
}

timeout -k 5 180 bench/run.sh --smoke --out "$tmp/smoke.json" >"$tmp/out" 2>&1
rc=$?
if [ $rc -eq 0 ]; then
	echo "ok 1 - harness ran every scenario (--smoke)"
else
	echo "not ok 1 - harness exited $rc"
	sed 's/^/# /' "$tmp/out" | tail -40
fi

if python3 - "$tmp/smoke.json" >"$tmp/check" 2>&1 <<'EOF'
import json, sys
d = json.load(open(sys.argv[1]))
s = d["scenarios"]
assert s["S1"]["limit"]["rps"] > 0, "no S1 limit measurement"
assert any(m.get("rss_per_conn_bytes") is not None for m in s["S7"].values()), "no S7 measurement"
assert s["E1"]["echo-loop"]["rps"] > 0, "no E1 echo-loop measurement"
assert "machine" in d and "date" in d
print(" ".join(str(p) for p in d["pids_started"]))
EOF
then
	echo "ok 2 - JSON written with limit, S7 and echo-loop measurements"
	pids=$(cat "$tmp/check")
	if out=$(all_dead $pids); then
		echo "ok 3 - none of the $(echo $pids | wc -w) processes it started is left"
	else
		echo "not ok 3 - leftover process: $out"
	fi
else
	echo "not ok 2 - JSON missing or incomplete"
	sed 's/^/# /' "$tmp/check"
	echo "not ok 3 - cannot check leftovers without the JSON"
fi

# Interrupt a run while a load generator is running; the ledger lists what it started. The
# harness is the python3 process running bench.py (a python3 found through a shim, e.g. pyenv's,
# may run it as a child of the PID we started).
DURATION=5 bench/run.sh --smoke --scenarios "S1 S7" --out "$tmp/int.json" >"$tmp/int.out" 2>&1 &
hp=$!
py=""
for _ in $(seq 60); do
	py=$(pgrep -n -f "bench/bench.py --smoke --scenarios S1 S7 --out $tmp/int.json")
	[ -n "$py" ] && { pgrep -P "$py" -x wrk || pgrep -P "$py" -x portico-load; } >/dev/null && break
	sleep 0.1
done
py=${py:-$hp}
ledger="$B/bench-run.$py.pids"
pids=$(awk '{print $1}' "$ledger" 2>/dev/null)
kill -INT "$py"
wait "$hp"
irc=$?
sleep 0.3
if [ -z "$pids" ]; then
	echo "not ok 4 - no ledger $ledger while the harness ran"
elif out=$(all_dead $pids) && [ $irc -eq 130 ] && [ ! -e "$ledger" ]; then
	echo "ok 4 - SIGINT stopped all $(echo $pids | wc -w) processes it had started"
else
	echo "not ok 4 - after SIGINT: exit $irc, ${out:-ledger left behind}"
	sed 's/^/# /' "$tmp/int.out" | tail -20
fi
