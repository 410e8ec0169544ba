#!/usr/bin/env bash
# Black-box stress test of the echo example (examples/echo.c) on the backend
# named by PORTICO_BACKEND (tests/run.sh runs it once per backend).
# Server A takes the traffic modes of echo_stress, then SIGTERM: exit 0 (ASan's
# leak check runs at exit, so a leak is a nonzero exit). Server B starts fresh so
# the idle-RSS figure is not blurred by earlier traffic, then is shut down with
# connections open. Prints TAP; every step has a time bound; the EXIT trap
# kills whatever this script started. Env: PT_BUILD (from tests/run.sh).
# Time: about 12 s when all pass under ASan (2 cores); the deadlines are 30-50x
# the measured durations, so even a run where every step stalls ends in ~5 min.
# shellcheck disable=SC2317  # cleanup and stress_loop run via trap and bash -c
set -u
: "${PT_BUILD:?PT_BUILD is not set (run through tests/run.sh)}"
ECHO=$PT_BUILD/examples/echo
ES=$PT_BUILD/tests/integration/echo_stress
if [ ! -x "$ECHO" ]; then echo "not ok 1 - echo example not built"; exit 1; fi
if [ ! -x "$ES" ]; then echo "not ok 1 - echo_stress not built"; exit 1; fi

IDLE_CONNS=${IDLE_CONNS:-10000}
IDLE_MAX_PER_CONN=${IDLE_MAX_PER_CONN:-8192}	# generous: catches a leak, not a benchmark
tmp=$(mktemp -d /tmp/pt-echo.XXXXXX)
pids=()
n=0 failed=0

cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

ulimit -n "$(ulimit -Hn)" 2>/dev/null
nofile=$(ulimit -n)
if [ "$nofile" != unlimited ] && [ $((IDLE_CONNS + 200)) -gt "$nofile" ]; then
	IDLE_CONNS=$((nofile - 200))
	echo "# idle: RLIMIT_NOFILE $nofile, using $IDLE_CONNS connections"
fi

tap() { # ok?, name
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}

# alive PID: running, not a zombie
alive() { [ -r "/proc/$1/stat" ] && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]; }

# start_server NAME [env...]: sets SRV_PID, SRV_ADDR; logs in $tmp/NAME.{out,err}
start_server() {
	local name=$1 i port; shift
	env "$@" "$ECHO" -l 127.0.0.1:0 -w 2 >"$tmp/$name.out" 2>"$tmp/$name.err" &
	SRV_PID=$!
	pids+=("$SRV_PID")
	for ((i = 0; i < 100; i++)); do
		# "listening on 127.0.0.1:PORT", maybe followed by " (details)"
		port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\)\( .*\)\{0,1\}$/\1/p' \
			"$tmp/$name.out" 2>/dev/null | head -1)
		if [ -n "$port" ]; then SRV_ADDR=127.0.0.1:$port; return 0; fi
		alive "$SRV_PID" || return 1
		sleep 0.1
	done
	return 1
}

# stop_server PID SECS: SIGTERM, then the exit status, or 124 after SECS
stop_server() {
	local pid=$1 i
	kill -TERM "$pid" 2>/dev/null
	for ((i = 0; i < $2 * 10; i++)); do
		alive "$pid" || { wait "$pid"; return $?; }
		sleep 0.1
	done
	kill -KILL "$pid" 2>/dev/null
	wait "$pid" 2>/dev/null
	return 124
}

# step NAME SECS CMD...: one TAP case; output kept as comments
step() {
	local name=$1 secs=$2 rc log=$tmp/step$((n + 1)).log; shift 2
	timeout -k 5 "$secs" "$@" >"$log" 2>&1
	rc=$?
	tap $rc "$name$([ $rc -ne 0 ] && echo " (exit $rc)")"
	sed 's/^/# /' "$log" | head -40
	return $rc
}

# server_logs: each server's output; a long one (an ASan report) as its first
# 30 lines, where the first stack is, and its last 3, where the SUMMARY is.
server_logs() {
	local f
	for f in "$tmp"/srv*.out "$tmp"/srv*.err; do
		[ -s "$f" ] || continue
		echo "# --- ${f##*/}"
		if [ "$(wc -l <"$f")" -le 40 ]; then
			sed 's/^/#   /' "$f"
		else
			{ head -30 "$f"; echo "..."; tail -3 "$f"; } | sed 's/^/#   /'
		fi
	done
}

finish() {
	[ $failed -ne 0 ] && server_logs
	echo "1..$n"
	exit $((failed != 0))
}

stress_loop() { # ADDR: 10 rounds of 300 clients with small payloads, new seed each
	local i
	for ((i = 1; i <= 10; i++)); do
		"$ES" concurrent -c 300 --min 1 --max 65536 --seed "$((1000 + i))" --timeout 10 "$1" || return 1
	done
}

echo "# backend: ${PORTICO_BACKEND:-default}"
t0=$SECONDS

# ---- server A: traffic -------------------------------------------------------
if ! start_server srvA; then
	tap 1 "echo server starts and prints its port within 10 s"
	finish
fi
echo "# server A: pid $SRV_PID on $SRV_ADDR"
A_PID=$SRV_PID A=$SRV_ADDR

step "concurrent 1000 clients 1B..1MiB byte-exact" 45 \
	"$ES" concurrent -c 1000 --min 1 --max 1048576 --seed 1 --timeout 40 "$A"
export ES
export -f stress_loop
# shellcheck disable=SC2016  # $0 is for the inner bash
step "stress: 10 x 300 concurrent clients 1B..64KiB byte-exact" 60 \
	bash -c 'stress_loop "$0"' "$A"
step "pipeline 50 clients x 2000 messages of 1..64B in order" 30 \
	"$ES" pipeline -c 50 -n 2000 --seed 2 --timeout 25 "$A"
step "abort: 200 clients RST/close mid-transfer, then a normal client is echoed" 30 \
	"$ES" abort -c 200 --seed 3 --timeout 25 "$A"
step "noread: server RSS bounded (64MiB) while a client never reads, then all echoed" 30 \
	"$ES" noread --bytes 268435456 --pid "$A_PID" --max-rss-growth 67108864 \
	--block-ms 2000 --seed 4 --timeout 25 "$A"
stop_server "$A_PID" 10
rc=$?
tap $rc "server exits 0 on SIGTERM within 10 s (no leaks)$([ $rc -ne 0 ] && echo " (exit $rc)")"

# ---- server B: idle memory, then shutdown with connections open --------------
# A small ASan quarantine keeps freed-but-quarantined memory (up to 256 MiB by
# default) out of the per-connection figure; leak and overflow checks stay on.
if ! start_server srvB ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=4"; then
	tap 1 "second echo server starts"
	finish
fi
echo "# server B: pid $SRV_PID on $SRV_ADDR"
B_PID=$SRV_PID B=$SRV_ADDR
step "idle: $IDLE_CONNS connections held, under $IDLE_MAX_PER_CONN B of server RSS each" 45 \
	"$ES" idle -c "$IDLE_CONNS" --pid "$B_PID" --max-per-conn "$IDLE_MAX_PER_CONN" \
	--settle-ms 1000 --seed 5 --timeout 40 "$B"
grep -h '^idle_conns=' "$tmp"/step$n.log | sed 's/^/# idle: /'

hold_log=$tmp/hold.log
"$ES" idle -c 200 --hold --seed 6 --timeout 40 "$B" >"$hold_log" 2>&1 &
H_PID=$!
pids+=("$H_PID")
for ((i = 0; i < 200; i++)); do
	grep -q '^holding' "$hold_log" 2>/dev/null && break
	alive "$H_PID" || break
	sleep 0.1
done
if grep -q '^holding' "$hold_log"; then
	stop_server "$B_PID" 10
	rc=$?
else
	rc=125		# the clients never got their connections up
fi
for ((i = 0; i < 150 && rc == 0; i++)); do alive "$H_PID" || break; sleep 0.1; done
kill -KILL "$H_PID" 2>/dev/null
wait "$H_PID"
hrc=$?
tap $((rc != 0 || hrc != 0)) "shutdown with 200 connections open: server exits 0 in 10 s, clients see EOF$(
	[ $rc -ne 0 ] || [ $hrc -ne 0 ] && echo " (server exit $rc, clients exit $hrc)")"
sed 's/^/# /' "$hold_log" | head -20
[ $rc -eq 125 ] && stop_server "$B_PID" 10 >/dev/null

echo "# echo.sh took $((SECONDS - t0)) s"
finish
