#!/usr/bin/env bash
# `make bench` entry point: the harness is bench/bench.py (Python 3, standard library only), then
# the handover scenario R1 (bench/handover.py: portico's SIGTERM handover against nginx's binary
# upgrade, under load). Env: QUICK=1, ROUNDS=, DURATION=, SCENARIOS="S1 S4" (R1 alone:
# SCENARIOS=R1; other names leave it out), SERVERS="portico nginx"; options pass through to
# bench.py (e.g. bench/run.sh --smoke, bench/run.sh --markdown bench/results/latest.json), and
# R1 runs only without options.
set -u
cd "$(dirname "$0")/.."
scen=" ${SCENARIOS:-} "
rest=$(echo "$scen" | sed 's/ R1 / /g; s/^ *//; s/ *$//')
rc=0
if [ -z "${SCENARIOS:-}" ] || [ -n "$rest" ]; then
	SCENARIOS=$rest python3 bench/bench.py "$@" || rc=$?
fi
if [ $# -eq 0 ] && { [ -z "${SCENARIOS:-}" ] || [[ "$scen" == *" R1 "* ]]; }; then
	python3 bench/handover.py || rc=1
fi
exit $rc
