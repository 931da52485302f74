#!/usr/bin/env bash
# Retry-After, site quarantine and Redis loss end to end on the local stack: see limits_e2e.py.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
for tool in kcat redis-server /usr/bin/python3; do
    command -v "$tool" >/dev/null || { echo "test_limits: $tool missing; skipped"; exit 77; }
done
exec /usr/bin/python3 "$here/limits_e2e.py"
