#!/usr/bin/env bash
# Runs each libFuzzer target in build/fuzz for $1 seconds (default 60) from its seed corpus.
# New inputs go to a scratch directory, never into the repository. A crash, leak or sanitizer
# report fails the run; the reproducer is copied to tests/fuzz/regress/<target>/ for triage.
set -u
cd "$(dirname "$0")/../.."
secs=${1:-60}
status=0
for fz in build/fuzz/fuzz_*; do
	[ -x "$fz" ] || continue
	name=${fz##*/}
	work=$(mktemp -d /tmp/pt-fuzz.XXXXXX)
	mkdir -p "$work/corpus" "$work/art"
	cp tests/fuzz/corpus/$name/* "$work/corpus/" 2>/dev/null || true
	echo "== $name for ${secs}s"
	if ! "$fz" -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$work/art/" "$work/corpus" >"$work/log" 2>&1; then
		status=1
		tail -40 "$work/log"
		mkdir -p tests/fuzz/regress/$name
		cp "$work"/art/* tests/fuzz/regress/$name/ 2>/dev/null || true
		echo "FAIL $name (reproducer copied to tests/fuzz/regress/$name/)"
	else
		grep -E 'stat::number_of_executed_units|cov:' "$work/log" | tail -2
	fi
	rm -rf "$work"
done
exit $status
