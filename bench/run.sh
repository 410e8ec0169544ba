#!/usr/bin/env bash
# `make bench` entry point: the harness is bench/bench.py (Python 3, standard library only).
# Env: QUICK=1, ROUNDS=, DURATION=, SCENARIOS="S1 S4", SERVERS="portico nginx"; options pass
# through (e.g. bench/run.sh --smoke, bench/run.sh --markdown bench/results/latest.json).
set -eu
cd "$(dirname "$0")/.."
exec python3 bench/bench.py "$@"
