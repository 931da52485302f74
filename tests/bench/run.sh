#!/usr/bin/env bash
# jiraprov benchmarks against the limits of the machine: see tests/bench/README.md.
#   tests/bench/run.sh [--quick] [--runs N] [--out DIR] [--keep] [SCENARIO...]
# SCENARIO: 1-7 or overhead, latency, ratelimit, isolation, memory, added-latency, cost.
# Starts its own stack; writes report.md, PNG plots and summary.json to the results folder.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
export JP_SOURCE_DIR=$root JP_BUILD_DIR=${JP_BUILD_DIR:-$root/build}
exec /usr/bin/python3 -B "$root/tests/bench/bench.py" "$@"
