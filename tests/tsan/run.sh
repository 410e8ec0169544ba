#!/usr/bin/env bash
# Runs each case of the ThreadSanitizer test programs (build/tsan/tests/tsan/*, built by
# make tsan) once per backend, each case in a process of its own so that a race reported in
# one (TSan stops the process at the first report) does not hide the others. Prints one TAP
# line per case and backend, the TSan report or failed check as "# " lines under a failure,
# then "tsan: N passed, N failed"; exits non-zero on any failure.
# Known races still to fix are suppressed (tests/tsan/known-races.supp) in every case except
# the one the file names for each ("# case: NAME"), which keeps failing until the fix.
# Env: BACKENDS="uring epoll" (default), TESTS=<substring> runs only matching cases.
set -u
cd "$(dirname "$0")/../.."
BACKENDS=${BACKENDS:-uring epoll}
KNOWN=$PWD/tests/tsan/known-races.supp
base="halt_on_error=1 second_deadlock_stack=1 history_size=4"
n=0 pass=0 fail=0 t0=$(date +%s)
out=$(mktemp /tmp/pt-tsan.XXXXXX)
supp=$(mktemp /tmp/pt-tsan-supp.XXXXXX)
trap 'rm -f "$out" "$supp"' EXIT
for prog in build/tsan/tests/tsan/*; do
	[ -x "$prog" ] || continue
	for case in $("$prog" --list); do
		[ -z "${TESTS:-}" ] || [[ "$case" == *"$TESTS"* ]] || continue
		# the known races, minus the ones this case is there to show
		awk -v c="$case" '/^# case: /{skip = ($3 == c); next} !skip' "$KNOWN" >"$supp"
		opts="$base suppressions=$supp"
		for be in $BACKENDS; do
			n=$((n + 1))
			s=$(date +%s.%N)
			TSAN_OPTIONS="$opts" PORTICO_BACKEND=$be timeout -k 5 120 "$prog" "$case" >"$out" 2>&1
			rc=$?
			secs=$(echo "$(date +%s.%N) - $s" | bc)
			if [ $rc -eq 0 ] && ! grep -q "ThreadSanitizer" "$out"; then
				pass=$((pass + 1))
				printf 'ok %d - tsan %s [%s] (%.1f s)\n' $n "$case" "$be" "$secs"
			else
				fail=$((fail + 1))
				why="exit $rc"
				[ $rc -eq 66 ] && why="ThreadSanitizer report"
				[ $rc -eq 124 ] && why="timed out after 120 s"
				printf 'not ok %d - tsan %s [%s] (%s)\n' $n "$case" "$be" "$why"
				grep -vE '^\s*$' "$out" | grep -vE 'libtsan|tsan_interceptors' | head -45 | sed 's/^/# /'
			fi
		done
	done
done
echo "tsan: $pass passed, $fail failed ($(( $(date +%s) - t0 )) s)"
[ $fail -eq 0 ] && [ $pass -gt 0 ]
