#!/usr/bin/env bash
# The worker's operations surface on the local stack: see worker_ops.py.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
for tool in kcat redis-server /usr/bin/python3; do
    command -v "$tool" >/dev/null || { echo "test_worker_ops: $tool missing; skipped"; exit 77; }
done
exec /usr/bin/python3 "$here/worker_ops.py"
