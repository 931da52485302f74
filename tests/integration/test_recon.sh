#!/usr/bin/env bash
# Reconciliation end to end on the local stack: see recon_e2e.py.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
for tool in kcat redis-server redis-cli /usr/bin/python3; do
    command -v "$tool" >/dev/null || { echo "test_recon: $tool missing; skipped"; exit 77; }
done
exec /usr/bin/python3 "$here/recon_e2e.py"
