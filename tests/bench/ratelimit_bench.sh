#!/usr/bin/env bash
# Rate-limited benchmark: 4 workers share a SCIM POST limit of 100/s, with the shared Redis
# budget and with sharing off, side by side. See ratelimit_bench.py and tests/bench/README.md.
#   tests/bench/ratelimit_bench.sh [--events N] [--workers N] [--limit R] [--out FILE.json]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
export JP_SOURCE_DIR=$root JP_BUILD_DIR=${JP_BUILD_DIR:-$root/build}
exec /usr/bin/python3 "$root/tests/bench/ratelimit_bench.py" "$@"
