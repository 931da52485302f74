#!/usr/bin/env bash
# The long fault suite: the model check (model_check.py) under each fault with a large workload,
# minutes per fault. Not part of tests/run.sh, which runs short versions (ctest -L faults).
#
#   tests/faults/run.sh [FAULT...]      crash rebalance redis-kept redis-wiped jira kafka (all)
#   environment: EVENTS (20000), WORKERS (3), SEED (random), JP_BUILD_DIR (build/)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
export JP_SOURCE_DIR=$root JP_BUILD_DIR=${JP_BUILD_DIR:-$root/build}
faults=("$@")
((${#faults[@]})) || faults=(crash rebalance redis-kept redis-wiped jira kafka)
seed_args=()
[[ -z ${SEED:-} ]] || seed_args=(--seed "$SEED")
failed=()
for fault in "${faults[@]}"; do
    printf '\n== %s\n' "$fault"
    if ! /usr/bin/python3 "$root/tests/faults/model_check.py" --fault "$fault" \
        --events "${EVENTS:-20000}" --workers "${WORKERS:-3}" --timeout 3600 "${seed_args[@]}"; then
        failed+=("$fault")
    fi
done
printf '\n%d fault(s) run, %d failed%s\n' "${#faults[@]}" "${#failed[@]}" \
    "${failed[*]:+: ${failed[*]}}"
((${#failed[@]} == 0))
