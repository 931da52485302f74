#!/usr/bin/env bash
# Reconciliation benchmark: a full reconciliation of N users seeded in the Jira emulator, timed
# against the ideal (SCIM pages beyond the budget's burst / the allowed GET rate), with the
# worker's peak RSS.
#
# For each directory size (default 10000 and 100000, so that the peak RSS of a small and a large
# directory can be compared: memory must not grow with the number of accounts):
#   - the emulator is reset and seeded with exactly that many SCIM users (bulk seed), its GET
#     burst limit set to --get-per-s;
#   - a fresh worker starts with rate_limits.get_per_s = --get-per-s and
#     recon.page_concurrency = --concurrency, takes a one-user warm-up request (the consumer
#     group join is not measured), then the full request (accounts);
#   - time: the run's own durationMs from its `completed` record (request start to completed),
#     and the wall time from producing the request to its result;
#   - ideal: (pages - get_per_s) / get_per_s, pages = ceil(N / 100) SCIM pages (the budget's
#     bucket holds one second of its rate, so that many pages go at once);
#   - memory: VmHWM of the worker (/proc/PID/status) after the warm-up and after the run.
# Prints a table and writes summary.json (an array of {users, pages, get_per_s, ideal_s,
# run_s, wall_s, ratio, records_per_s, rate_limited, vmhwm_before_kib, vmhwm_after_kib}), the
# worker logs and the stack's logs to the results directory.
#
# Not part of ctest (tests/run.sh). Needs the build (worker, emulator, embedded Kafka, producers),
# redis-server, kcat, curl and /usr/bin/python3.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${JP_BUILD_DIR:-$REPO/build}
SIZES="10000 100000"
GET_PER_S=100
CONCURRENCY=4
OUT=""
PY=/usr/bin/python3

usage() {
    cat <<EOF
usage: tests/bench/recon_bench.sh [options]
  --build DIR          build directory (default \$JP_BUILD_DIR or build/)
  --users "N ..."      directory sizes, one run each (default "$SIZES")
  --get-per-s R        Jira's GET rate, set on the emulator and the worker (default $GET_PER_S)
  --concurrency C      recon.page_concurrency (default $CONCURRENCY)
  --out DIR            results directory (default tests/bench/results/recon-<UTC timestamp>)
EOF
}

die() {
    echo "recon_bench: $*" >&2
    exit 2
}

while (($#)); do
    case $1 in
    --build) BUILD=${2:?}; shift 2 ;;
    --users) SIZES=${2:?}; shift 2 ;;
    --get-per-s) GET_PER_S=${2:?}; shift 2 ;;
    --concurrency) CONCURRENCY=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
    esac
done
for n in $SIZES $GET_PER_S $CONCURRENCY; do
    [[ $n =~ ^[1-9][0-9]*$ ]] || die "expected positive integers, got '$n'"
done
OUT=${OUT:-$REPO/tests/bench/results/recon-$(date -u +%Y%m%dT%H%M%SZ)}
WORKER=$BUILD/worker/jiraprov-worker
PRODUCE=$BUILD/producers/jiraprov-produce
[[ -x $WORKER && -x $PRODUCE ]] || die "build the worker and the producers first (cmake --build $BUILD)"
for tool in kcat curl redis-server "$PY"; do
    command -v "$tool" >/dev/null || die "$tool is missing"
done
mkdir -p "$OUT"
STATE=$OUT/stack
export JP_BUILD_DIR=$BUILD
worker_pid=""

cleanup() {
    if [[ -n $worker_pid ]] && kill -0 "$worker_pid" 2>/dev/null; then
        kill "$worker_pid" 2>/dev/null || true
        wait "$worker_pid" 2>/dev/null || true
    fi
    "$REPO/deploy/local/down.sh" --state "$STATE" >/dev/null 2>&1 || true
}
trap cleanup EXIT

"$REPO/deploy/local/up.sh" --state "$STATE" --workers 0 >"$OUT/up.log" 2>&1 ||
    { cat "$OUT/up.log"; die "the stack did not start"; }
# shellcheck disable=SC1091
. "$STATE/stack.env"

control() { # METHOD PATH [BODY]
    curl -fsS -X "$1" -H 'Content-Type: application/json' ${3:+--data "$3"} \
        "$EMULATOR_CONTROL_URL$2" >/dev/null
}

request() { # EVENT_ID RECON_ID DATA_JSON
    printf '{"specversion":"1.0","id":"%s","source":"https://idhub.example/bench","type":"com.idhub.recon.request","subject":"%s","time":"2026-11-22T10:00:00Z","jirasite":"demo","idhubactor":"bench@idhub.example","data":%s}\n' \
        "$1" "$2" "$3" | "$PRODUCE" -q -b "$KAFKA_BOOTSTRAP" -t "$TOPIC_EVENTS" -
}

# wait_result EVENT_ID TIMEOUT_S: prints the result's data (JSON) once it is on the results topic.
wait_result() {
    local deadline=$((SECONDS + $2)) line
    while ((SECONDS < deadline)); do
        line=$(kcat -C -q -b "$KAFKA_BOOTSTRAP" -t "$TOPIC_RESULTS" -o beginning -e 2>/dev/null |
            grep -F "\"eventId\":\"$1\"" | head -n1 || true)
        if [[ -n $line ]]; then
            printf '%s\n' "$line"
            return 0
        fi
        sleep 0.5
    done
    return 1
}

hwm_kib() {
    awk '/^VmHWM:/ {print $2}' "/proc/$1/status"
}

rows=()
for users in $SIZES; do
    echo "recon_bench: $users users"
    control POST /reset '{"seed_demo":false}'
    control PUT /rate-limits "{\"enabled\":true,\"burst\":{\"enabled\":true,\"GET\":$GET_PER_S}}"
    control POST /seed "{\"bulk_users\":{\"count\":$users,\"prefix\":\"u\",\"domain\":\"bench.example\"}}"
    control POST /counters/reset

    cfg=$OUT/worker-$users.yaml
    sed -e "s/^\(\s*group:\).*/\1 \"bench-$users\"/" -e 's/^\(\s*listen:\).*/\1 "127.0.0.1:0"/' \
        -e 's/^\(\s*level:\).*/\1 warn/' "$WORKER_CONFIG" >"$cfg"
    printf 'rate_limits:\n  get_per_s: %s\nrecon:\n  page_concurrency: %s\n' \
        "$GET_PER_S" "$CONCURRENCY" >>"$cfg"
    chmod 600 "$cfg"
    "$WORKER" --config "$cfg" 2>"$OUT/worker-$users.log" &
    worker_pid=$!

    request "warm-$users" "warm-$users" \
        '{"reconId":"warm-'"$users"'","mode":"filtered","resources":["accounts"],"filter":{"userName":"u1@bench.example"}}'
    wait_result "warm-$users" 120 >/dev/null || die "the warm-up request got no result"
    before=$(hwm_kib "$worker_pid")

    start=$(date +%s.%N)
    request "full-$users" "full-$users" '{"reconId":"full-'"$users"'","mode":"full","resources":["accounts"],"scope":"bench-'"$users"'"}'
    result=$(wait_result "full-$users" 3600) || die "the full run got no result"
    end=$(date +%s.%N)
    after=$(hwm_kib "$worker_pid")
    completed=$(kcat -C -q -b "$KAFKA_BOOTSTRAP" -t "$TOPIC_RECON" -o beginning -e 2>/dev/null |
        grep -F '"id":"demo:full-'"$users"':completed"' | tail -n1)
    limited=$(curl -fsS "$EMULATOR_CONTROL_URL/counters" |
        "$PY" -c 'import json,sys; print(json.load(sys.stdin)["rate_limited"]["total"])')
    kill "$worker_pid"
    wait "$worker_pid" || true
    worker_pid=""

    rows+=("$("$PY" - "$users" "$GET_PER_S" "$start" "$end" "$before" "$after" "$limited" \
        "$result" "$completed" <<'EOF'
import json, math, sys
users, rate = int(sys.argv[1]), int(sys.argv[2])
start, end = float(sys.argv[3]), float(sys.argv[4])
before, after, limited = int(sys.argv[5]), int(sys.argv[6]), int(sys.argv[7])
result = json.loads(sys.argv[8])["data"]
done = json.loads(sys.argv[9])["data"]
assert result["status"] == "succeeded", result
assert done["counts"]["emitted"] == users, done
pages = math.ceil(users / 100)
# The site's bucket holds one second of its rate: that many pages go at once.
ideal = max(pages - rate, 0) / rate
run = done["durationMs"] / 1000.0
print(json.dumps({"users": users, "pages": pages, "get_per_s": rate, "ideal_s": round(ideal, 2),
                  "run_s": round(run, 2), "wall_s": round(end - start, 2),
                  "ratio": round(run / ideal, 3) if ideal else None,
                  "records_per_s": round(users / run),
                  "rate_limited": limited, "vmhwm_before_kib": before,
                  "vmhwm_after_kib": after}))
EOF
)")
    echo "recon_bench:   ${rows[-1]}"
done

printf '%s\n' "${rows[@]}" | "$PY" -c '
import json, sys
rows = [json.loads(l) for l in sys.stdin if l.strip()]
json.dump(rows, open(sys.argv[1], "w"), indent=2)
print("%9s %7s %6s %8s %8s %8s %6s %10s %5s %13s %13s" % (
    "users", "pages", "GET/s", "ideal s", "run s", "wall s", "ratio", "records/s", "429s",
    "peak RSS MiB", "before MiB"))
for r in rows:
    print("%9d %7d %6d %8.2f %8.2f %8.2f %6s %10d %5d %13.1f %13.1f" % (
        r["users"], r["pages"], r["get_per_s"], r["ideal_s"], r["run_s"], r["wall_s"],
        "%.3f" % r["ratio"] if r["ratio"] else "-", r["records_per_s"], r["rate_limited"], r["vmhwm_after_kib"] / 1024,
        r["vmhwm_before_kib"] / 1024))
' "$OUT/summary.json"
echo "recon_bench: results in $OUT"
