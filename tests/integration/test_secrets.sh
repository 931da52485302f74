#!/usr/bin/env bash
# No configured secret in any log line, record, Redis value, metrics or CLI output: see
# secrets_e2e.py.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
for tool in kcat redis-server redis-cli /usr/bin/python3; do
    command -v "$tool" >/dev/null || { echo "test_secrets: $tool missing; skipped"; exit 77; }
done
exec /usr/bin/python3 "$here/secrets_e2e.py"
