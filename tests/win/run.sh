#!/usr/bin/env bash
# The Windows build under Wine (make test-windows): the engine tests of the Windows build
# (build/win/tests/*.exe, TAP), the HTTP layer's black-box test (tests/integration/http_api.py
# against http_testsrv.exe), portico.exe against tests/integration/portico.py's checks and the
# Windows names (tests/win/portico_win.py), then the echo example (echo.exe on the IOCP backend) driven
# from the Linux side over loopback by the Linux echo_stress client: many clients byte-exact,
# pipelining, clients that vanish, a client that never reads, shutdown with connections open.
# Wine runs in its own prefix under /tmp (created on first use: wineboot takes ~15 s), with
# WINEDEBUG=-all; every step has a time bound and the EXIT trap kills what the script started.
# Prints TAP and "N passed, N failed"; exit 0 when all passed.
set -u
cd "$(dirname "$0")/../.."
WB=build/win
ES=build/tests/integration/echo_stress
export WINEPREFIX=${WINEPREFIX:-/tmp/pt-wine-$(id -u)} WINEDEBUG=-all WINEDLLOVERRIDES="mscoree,mshtml="
tmp=$(mktemp -d /tmp/pt-win.XXXXXX)
pids=()
n=0 failed=0 t0=$SECONDS

cleanup() {
	for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null; done
	for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

tap() { # rc, name
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=$((failed + 1)); fi
}

step() { # name secs cmd...
	local name=$1 secs=$2 rc log=$tmp/step$((n + 1)).log; shift 2
	timeout -k 5 "$secs" "$@" >"$log" 2>&1
	rc=$?
	tap $rc "$name$([ $rc -ne 0 ] && echo " (exit $rc)")"
	sed 's/^/# /' "$log" | head -40
	return $rc
}

finish() {
	echo "1..$n"
	echo "# windows tests took $((SECONDS - t0)) s"
	echo "$((n - failed)) passed, $failed failed"
	exit $((failed != 0))
}

if [ ! -d "$WINEPREFIX/drive_c" ]; then
	echo "# creating the Wine prefix $WINEPREFIX"
	timeout -k 5 180 wineboot -i >/dev/null 2>&1
fi
[ -x "$ES" ] || make --no-print-directory B=build "$ES" >/dev/null || { tap 1 "build echo_stress"; finish; }

# tap_run PREFIX SECS CMD...: runs a TAP program, its lines renumbered into ours (a failing
# exit is one more failure, with the end of its output)
tap_run() {
	local prefix=$1 secs=$2 rc log=$tmp/run$((n + 1)).log; shift 2
	timeout -k 5 "$secs" "$@" >"$log" 2>&1
	rc=$?
	while IFS= read -r line; do
		case "$line" in
		"ok "*) tap 0 "$prefix: ${line#ok * - }" ;;
		"not ok "*) tap 1 "$prefix: ${line#not ok * - }" ;;
		"#"*) echo "$line" ;;
		esac
	done < <(tr -d '\r' <"$log")
	[ $rc -eq 0 ] || { tap 1 "$prefix exits 0 (exit $rc)"; tr -d '\r' <"$log" | tail -20 | sed 's/^/#   /'; }
}

# ---- the engine tests of the Windows build ----
for t in "$WB"/tests/*.exe; do
	[ -e "$t" ] && tap_run "${t##*/}" 120 wine "$t"
done

# ---- echo.exe from the Linux side ----
# start_echo NAME: SRV_PID, SRV_ADDR, and fd 7x open on its standard input (closing it stops
# the server: Wine has no SIGTERM -> console event path a test can rely on)
start_echo() {
	local name=$1 i port
	mkfifo "$tmp/$name.in"
	wine "$WB/examples/echo.exe" -l 127.0.0.1:0 -w 2 <"$tmp/$name.in" >"$tmp/$name.out" 2>"$tmp/$name.err" &
	SRV_PID=$!
	pids+=("$SRV_PID")
	exec {SRV_FD}>"$tmp/$name.in"
	for ((i = 0; i < 300; i++)); do
		port=$(tr -d '\r' <"$tmp/$name.out" | sed -n 's/^listening on 127\.0\.0\.1:\([0-9][0-9]*\).*/\1/p' | head -1)
		if [ -n "$port" ]; then SRV_ADDR=127.0.0.1:$port; return 0; fi
		kill -0 "$SRV_PID" 2>/dev/null || return 1
		sleep 0.1
	done
	return 1
}

stop_echo() { # fd pid secs: close its input, wait for the exit status (124: killed)
	local i
	eval "exec $1>&-"
	for ((i = 0; i < $3 * 10; i++)); do
		kill -0 "$2" 2>/dev/null || { wait "$2"; return $?; }
		sleep 0.1
	done
	kill -KILL "$2" 2>/dev/null
	wait "$2" 2>/dev/null
	return 124
}

# the HTTP layer on IOCP: tests/integration/http_api.py against http_testsrv.exe
tap_run http_api 180 env PT_WINE=1 python3 tests/integration/http_api.py
# portico.exe: tests/integration/portico.py's checks and the Windows names
tap_run portico.exe 240 python3 tests/win/portico_win.py

if ! start_echo srvA; then
	tap 1 "echo.exe starts under wine and prints its port within 30 s"
	tr -d '\r' <"$tmp/srvA.err" | sed 's/^/#   /'
	finish
fi
echo "# $(tr -d '\r' <"$tmp/srvA.out" | head -1)"
A=$SRV_ADDR A_PID=$SRV_PID A_FD=$SRV_FD
step "concurrent 200 clients 1B..1MiB byte-exact" 120 \
	"$ES" concurrent -c 200 --min 1 --max 1048576 --seed 1 --timeout 100 "$A"
step "concurrent 1000 clients 1B..64KiB byte-exact" 120 \
	"$ES" concurrent -c 1000 --min 1 --max 65536 --seed 7 --timeout 100 "$A"
step "pipeline 50 clients x 2000 messages of 1..64B in order" 60 \
	"$ES" pipeline -c 50 -n 2000 --seed 2 --timeout 50 "$A"
step "abort: 200 clients RST/close mid-transfer, then a normal client is echoed" 60 \
	"$ES" abort -c 200 --seed 3 --timeout 50 "$A"
step "noread: server RSS bounded (64MiB growth) while a client never reads, then all echoed" 60 \
	"$ES" noread --bytes 268435456 --pid "$A_PID" --max-rss-growth 67108864 \
	--block-ms 2000 --seed 4 --timeout 50 "$A"
stop_echo "$A_FD" "$A_PID" 20
rc=$?
tap $rc "echo.exe exits 0 when its input closes$([ $rc -ne 0 ] && echo " (exit $rc)")"
tr -d '\r' <"$tmp/srvA.err" | sed 's/^/# srvA: /' | tail -5

if ! start_echo srvB; then
	tap 1 "second echo.exe starts"
	finish
fi
B=$SRV_ADDR B_PID=$SRV_PID B_FD=$SRV_FD
hold_log=$tmp/hold.log
# (the clients must not inherit the server's input, or closing it would not end the input)
(eval "exec $B_FD>&-"; exec "$ES" idle -c 200 --hold --seed 6 --timeout 60 "$B") >"$hold_log" 2>&1 &
H_PID=$!
pids+=("$H_PID")
for ((i = 0; i < 300; i++)); do
	grep -q '^holding' "$hold_log" 2>/dev/null && break
	kill -0 "$H_PID" 2>/dev/null || break
	sleep 0.1
done
if grep -q '^holding' "$hold_log"; then
	stop_echo "$B_FD" "$B_PID" 20
	rc=$?
else
	rc=125
fi
for ((i = 0; i < 150 && rc == 0; i++)); do kill -0 "$H_PID" 2>/dev/null || break; sleep 0.1; done
kill -KILL "$H_PID" 2>/dev/null
wait "$H_PID"
hrc=$?
tap $((rc != 0 || hrc != 0)) "shutdown with 200 connections open: echo.exe exits 0 in 20 s, clients see EOF$(
	[ $rc -ne 0 ] || [ $hrc -ne 0 ] && echo " (server exit $rc, clients exit $hrc)")"
sed 's/^/# /' "$hold_log" | head -10
finish
