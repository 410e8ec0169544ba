#!/usr/bin/env bash
# Runs every test of the sanitizer build and prints "N passed, N failed".
# Each test program prints TAP lines ("ok N - name" / "not ok N - name"); each such line counts as
# one test. A program that prints none counts as one test, judged by its exit status.
# Programs whose source contains the marker "pt-test: backends" run once per engine backend
# (PORTICO_BACKEND=uring and epoll); integration scripts always do, unless they say
# "pt-test: once" (backend-independent checks).
# Env: TESTS=<substring> runs only matching programs; BACKENDS="uring epoll" overrides the set.
set -u
cd "$(dirname "$0")/.."
B=build/san
export CMOCKA_MESSAGE_OUTPUT=TAP
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export PT_BUILD=$PWD/$B PT_RELEASE_BUILD=$PWD/build
BACKENDS=${BACKENDS:-uring epoll}
pass=0 fail=0 skipped=0 failed_names=()
log=$(mktemp -d /tmp/pt-test.XXXXXX)
trap 'rm -rf "$log"' EXIT

run_one() { # name, cmd...
	local name=$1; shift
	local out="$log/out" rc
	timeout -k 5 600 "$@" >"$out" 2>&1; rc=$?
	local ok nok sk
	sk=$(grep -cE '^(not )?ok [0-9]+.*# *SKIP' "$out")
	ok=$(grep -E '^ok [0-9]+' "$out" | grep -vcE '# *SKIP'); nok=$(grep -E '^not ok [0-9]+' "$out" | grep -vcE '# *SKIP')
	skipped=$((skipped + sk))
	if [ "$ok" -eq 0 ] && [ "$nok" -eq 0 ]; then
		if [ $rc -eq 0 ]; then ok=1; else nok=1; fi
	elif [ $rc -ne 0 ] && [ "$nok" -eq 0 ]; then
		nok=1   # crashed or leaked after its cases passed
	fi
	pass=$((pass + ok)); fail=$((fail + nok))
	if [ "$nok" -ne 0 ]; then
		failed_names+=("$name")
		printf 'FAIL %-50s (%d ok, %d failed, exit %d)\n' "$name" "$ok" "$nok" "$rc"
		sed 's/^/    | /' "$out" | tail -60
	else
		printf 'ok   %-50s (%d)\n' "$name" "$ok"
	fi
}

matches() { [ -z "${TESTS:-}" ] || [[ "$1" == *"$TESTS"* ]]; }

for bin in $(find $B/tests/unit -type f -executable 2>/dev/null | sort); do
	rel=${bin#$B/tests/unit/}; src=tests/unit/$rel.c
	matches "$rel" || continue
	if grep -q 'pt-test: backends' "$src" 2>/dev/null; then
		for be in $BACKENDS; do PORTICO_BACKEND=$be run_one "unit/$rel [$be]" "$bin"; done
	else
		run_one "unit/$rel" "$bin"
	fi
done

for t in $(ls tests/integration/*.sh tests/integration/*.py 2>/dev/null | sort); do
	matches "$t" || continue
	if grep -q 'pt-test: once' "$t"; then
		run_one "${t#tests/}" "$t"
		continue
	fi
	for be in $BACKENDS; do PORTICO_BACKEND=$be run_one "${t#tests/} [$be]" "$t"; done
done

# Fuzz regressions and seed corpora: each target replays its files once (no fuzzing).
for fz in $(ls build/fuzz/fuzz_* 2>/dev/null | sort); do
	name=${fz##*/}
	matches "$name" || continue
	files=$(ls -d tests/fuzz/regress/$name/* tests/fuzz/corpus/$name/* 2>/dev/null)
	[ -n "$files" ] || continue
	run_one "fuzz-replay/$name" "$fz" $files
done

# ThreadSanitizer: the threaded cases against build/tsan (built by make test-build), both
# backends (tests/tsan/run.sh prints a TAP line per case and backend).
if ls build/tsan/tests/tsan/* >/dev/null 2>&1 && matches "tsan"; then
	run_one "tsan (posting, sync pool, counters)" env BACKENDS="$BACKENDS" tests/tsan/run.sh
fi

echo
if [ $fail -ne 0 ]; then echo "failed: ${failed_names[*]}"; fi
[ $skipped -ne 0 ] && echo "$skipped skipped (reported by the tests; see their output)"
echo "$pass passed, $fail failed"
[ $fail -eq 0 ] && [ $pass -gt 0 ]
