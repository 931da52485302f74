#!/usr/bin/env bash
# deploy/ against the built worker: see deploy_check.py.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
worker=${JP_BUILD_DIR:?}/worker/jiraprov-worker
[[ -x $worker ]] || { echo "test_deploy: $worker not built"; exit 1; }
/usr/bin/python3 -c 'import yaml' 2>/dev/null || { echo "test_deploy: python3-yaml missing; skipped"; exit 77; }
exec /usr/bin/python3 "$here/deploy_check.py" --worker "$worker"
