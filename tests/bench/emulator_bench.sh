#!/usr/bin/env bash
# Emulator speed benchmark: is jiraprov-jira-emulator ever the bottleneck?
#
# Starts the reference static server (jiraprov-bench-static-server, same
# libmicrohttpd threading as the emulator) and the emulator (demo seed, rate
# limits off), then runs wrk with keep-alive several times against:
#   static       GET /                                 (reference)
#   jira_user    GET /rest/api/3/user?accountId=...    (Basic auth)
#   scim_user    GET /scim/directory/{dir}/Users/{id}  (Bearer)
#   jira_issue   GET /rest/api/3/issue/DEMO-1          (Basic auth)
# and prints the median and min-max requests/s of each, the ratio to the
# static server, and whether the 30k requests/s target was met. Writes
# summary.json (an array of {scenario, metric, value, target, met}), meta.json
# (wrk settings), runs.jsonl (one line per wrk run) and the raw wrk outputs to
# the results directory. Exit status 1 if an emulator scenario misses the target.
#
# wrk runs on the same cores as the servers, so it uses 1 thread; on the
# 2-core machine that leaves roughly one core for the server under test.
#
# Not part of ctest. Needs: wrk (Debian package wrk), curl, /usr/bin/python3.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${JP_BUILD_DIR:-$REPO/build}
EMULATOR=${JP_EMULATOR:-}
STATIC=${JP_STATIC_SERVER:-}
OUT=""
RUNS=3
DURATION=5
CONNECTIONS=64
THREADS=1
TARGET=30000
PY=/usr/bin/python3

usage() {
    cat <<EOF
usage: tests/bench/emulator_bench.sh [options]
  --build DIR        build directory holding the binaries (default \$JP_BUILD_DIR or build/)
  --emulator BIN     emulator binary (default \$JP_EMULATOR or DIR/tests/emulator/jiraprov-jira-emulator)
  --static BIN       reference server (default \$JP_STATIC_SERVER or DIR/tests/bench/jiraprov-bench-static-server)
  --out DIR          results directory (default tests/bench/results/<UTC timestamp>)
  --runs N           wrk runs per scenario (default 3, at least 3)
  --duration S       seconds per run (default 5)
  --connections C    keep-alive connections (default 64)
  --threads T        wrk threads (default 1: wrk shares the cores with the server)
  --target RPS       requests/s each emulator scenario must reach (default 30000)
EOF
}

die() {
    echo "emulator_bench: $*" >&2
    exit 2
}

int_arg() { # name value
    if ! [[ $2 =~ ^[0-9]+$ ]] || (($2 == 0)); then
        die "$1 wants a positive integer, got '$2'"
    fi
}

while (($#)); do
    case $1 in
    --build) BUILD=${2:?}; shift 2 ;;
    --emulator) EMULATOR=${2:?}; shift 2 ;;
    --static) STATIC=${2:?}; shift 2 ;;
    --out) OUT=${2:?}; shift 2 ;;
    --runs) int_arg --runs "${2:-}"; RUNS=$2; shift 2 ;;
    --duration) int_arg --duration "${2:-}"; DURATION=$2; shift 2 ;;
    --connections) int_arg --connections "${2:-}"; CONNECTIONS=$2; shift 2 ;;
    --threads) int_arg --threads "${2:-}"; THREADS=$2; shift 2 ;;
    --target) int_arg --target "${2:-}"; TARGET=$2; shift 2 ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
    esac
done
((RUNS >= 3)) || die "--runs must be at least 3 (a median of fewer runs means little)"
EMULATOR=${EMULATOR:-$BUILD/tests/emulator/jiraprov-jira-emulator}
STATIC=${STATIC:-$BUILD/tests/bench/jiraprov-bench-static-server}
OUT=${OUT:-$REPO/tests/bench/results/$(date -u +%Y%m%dT%H%M%SZ)}
[[ -x $EMULATOR ]] || die "no emulator binary at $EMULATOR (build jiraprov-jira-emulator or pass --emulator)"
[[ -x $STATIC ]] || die "no static server at $STATIC (build jiraprov-bench-static-server or pass --static)"
command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
command -v curl >/dev/null || die "curl is not installed"
mkdir -p "$OUT"

# Credentials given explicitly so the bench does not depend on the defaults.
JIRA_EMAIL=bench@demo.example
JIRA_TOKEN=bench-jira-token
SCIM_KEY=bench-scim-key
DIRECTORY=bench-directory
BASIC="Basic $(printf '%s:%s' "$JIRA_EMAIL" "$JIRA_TOKEN" | base64 -w0)"

HZ=$(getconf CLK_TCK)
# cpu_ticks PID: user+system CPU time of a process so far, in clock ticks.
cpu_ticks() {
    awk '{ print $14 + $15 }' "/proc/$1/stat"
}

PIDS=()
cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
}
trap cleanup EXIT
# Signals would skip the EXIT trap; turn them into an exit so the servers stop.
trap 'exit 130' INT
trap 'exit 143' TERM HUP PIPE

# start NAME CMD... : runs CMD in the background and sets URL from its
# "listening on http://HOST:PORT" line (10 s deadline).
start() {
    local name=$1 log=$OUT/$1.log
    shift
    : >"$log" # exists before the child opens it, so polling never misses it
    "$@" >"$log" 2>&1 &
    PIDS+=("$!")
    local pid=$! deadline=$((SECONDS + 10))
    URL=""
    while ((SECONDS < deadline)); do
        URL=$(sed -n 's/^listening on \(http:[^ ]*\).*/\1/p' "$log" | head -n1)
        [[ -n $URL ]] && return 0
        kill -0 "$pid" 2>/dev/null || die "$name exited early: $(tail -n5 "$log")"
        sleep 0.05
    done
    die "$name did not report its address within 10 s"
}

start static "$STATIC" --port 0
STATIC_URL=$URL
STATIC_PID=${PIDS[-1]}
start emulator "$EMULATOR" --listen 127.0.0.1:0 --seed-demo --rate-limits off \
    --jira-email "$JIRA_EMAIL" --jira-token "$JIRA_TOKEN" --scim-key "$SCIM_KEY" \
    --directory-id "$DIRECTORY"
EMU_URL=$URL
EMU_PID=${PIDS[-1]}

# Targets from the demo seed: a Jira user, that user's SCIM id, an issue.
ACCOUNT_ID=5b10a2844c20165700ede21a
curl -sf -H "Authorization: $BASIC" "$EMU_URL/rest/api/3/user?accountId=$ACCOUNT_ID" >/dev/null ||
    die "the demo seed has no Jira user $ACCOUNT_ID"
SCIM_ID=$(curl -sf -H "Authorization: Bearer $SCIM_KEY" \
    "$EMU_URL/scim/directory/$DIRECTORY/Users?filter=userName%20eq%20%22alice%40demo.example%22" |
    $PY -c 'import json,sys; print(json.load(sys.stdin)["Resources"][0]["id"])') ||
    die "cannot find alice@demo.example in SCIM"
# The demo seed has projects but no issues: create DEMO-1 if it is missing.
ISSUE=DEMO-1
if ! curl -sf -o /dev/null -H "Authorization: $BASIC" "$EMU_URL/rest/api/3/issue/$ISSUE"; then
    ISSUE=$(curl -sf -H "Authorization: $BASIC" -H 'Content-Type: application/json' \
        -d '{"fields":{"project":{"key":"DEMO"},"issuetype":{"name":"Task"},"summary":"bench",
             "description":{"type":"doc","version":1,"content":[{"type":"paragraph",
             "content":[{"type":"text","text":"benchmark issue"}]}]},"labels":["bench"]}}' \
        "$EMU_URL/rest/api/3/issue" | $PY -c 'import json,sys; print(json.load(sys.stdin)["key"])') ||
        die "cannot create an issue in project DEMO"
fi

SCENARIOS=(static jira_user scim_user jira_issue)
declare -A TARGET_URL=(
    [static]="$STATIC_URL/"
    [jira_user]="$EMU_URL/rest/api/3/user?accountId=$ACCOUNT_ID"
    [scim_user]="$EMU_URL/scim/directory/$DIRECTORY/Users/$SCIM_ID"
    [jira_issue]="$EMU_URL/rest/api/3/issue/$ISSUE"
)
declare -A SERVER_PID=(
    [static]=$STATIC_PID
    [jira_user]=$EMU_PID
    [scim_user]=$EMU_PID
    [jira_issue]=$EMU_PID
)
declare -A AUTH=(
    [static]=""
    [jira_user]="$BASIC"
    [scim_user]="Bearer $SCIM_KEY"
    [jira_issue]="$BASIC"
)

LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
echo "wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s, keep-alive, $RUNS runs per scenario, $(nproc) CPUs, load $LOAD_BEFORE"
echo "results: $OUT"
RUNS_JSON=$OUT/runs.jsonl
: >"$RUNS_JSON"
# Scenarios are interleaved run by run so a noisy neighbour hurts all alike.
for ((run = 1; run <= RUNS; run++)); do
    for sc in "${SCENARIOS[@]}"; do
        raw=$OUT/wrk-$sc-$run.txt
        hdr=()
        [[ -n ${AUTH[$sc]} ]] && hdr=(-H "Authorization: ${AUTH[$sc]}")
        ticks0=$(cpu_ticks "${SERVER_PID[$sc]}")
        wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "${hdr[@]}" \
            "${TARGET_URL[$sc]}" >"$raw" 2>&1 || die "wrk failed for $sc: $(tail -n3 "$raw")"
        ticks1=$(cpu_ticks "${SERVER_PID[$sc]}")
        rps=$(sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p' "$raw")
        total=$(sed -n 's/^ *\([0-9]*\) requests in .*/\1/p' "$raw")
        # Server CPU time per request: robust against other load on the box.
        cpu_us=$(awk -v t=$((ticks1 - ticks0)) -v hz="$HZ" -v n="${total:-0}" \
            'BEGIN { printf "%.2f", (n > 0 ? t * 1e6 / hz / n : 0) }')
        [[ -n $rps ]] || die "no Requests/sec in $raw"
        bad=$(sed -n 's/^ *Non-2xx or 3xx responses: *\([0-9]*\).*/\1/p' "$raw")
        errs=$(sed -n 's/^ *Socket errors: *\(.*\)$/\1/p' "$raw")
        p99=$(awk '$1 == "99%" {print $2}' "$raw")
        printf '{"scenario":"%s","run":%d,"rps":%s,"requests":%s,"server_cpu_us_per_request":%s,"non2xx":%s,"p99":"%s","socket_errors":"%s"}\n' \
            "$sc" "$run" "$rps" "${total:-0}" "$cpu_us" "${bad:-0}" "$p99" "$errs" >>"$RUNS_JSON"
        printf '  run %d %-11s %10.0f req/s  %6.2f us CPU/req  p99 %-8s%s\n' "$run" "$sc" "$rps" \
            "$cpu_us" "$p99" \
            "${bad:+  non-2xx: $bad}"
    done
done

# Summary (median, min, max; ratio to static; target), printed and as JSON.
LOAD_AFTER=$(cut -d' ' -f1-3 /proc/loadavg)
$PY - "$RUNS_JSON" "$OUT/summary.json" "$TARGET" "$THREADS" "$CONNECTIONS" "$DURATION" \
    "$LOAD_BEFORE" "$LOAD_AFTER" "$(nproc)" <<'EOF'
import json, statistics, sys
runs_path, out_path, target = sys.argv[1], sys.argv[2], float(sys.argv[3])
threads, conns, duration, load_before, load_after, cpus = sys.argv[4:10]
runs = [json.loads(l) for l in open(runs_path) if l.strip()]
by = {}
for r in runs:
    by.setdefault(r["scenario"], []).append(r)
static_med = statistics.median(r["rps"] for r in by["static"])
entries, failed = [], False
print("\n%-11s %12s %25s %8s %12s %12s  %s" % ("scenario", "median/s", "min - max /s", "ratio",
                                               "CPU us/req", "1-core cap.", "target"))
for sc, rs in by.items():
    vals = [r["rps"] for r in rs]
    med = statistics.median(vals)
    non2xx = sum(r["non2xx"] for r in rs)
    cpu = statistics.median(r["server_cpu_us_per_request"] for r in rs)
    ratio = med / static_med if static_med else 0.0
    emu = sc != "static"
    met = bool(med >= target and non2xx == 0) if emu else None
    failed |= emu and not met
    verdict = ("met" if met else "NOT met") if emu else "reference"
    if non2xx:
        verdict += " (%d non-2xx responses)" % non2xx
    cap = 1e6 / cpu if cpu else 0.0
    print("%-11s %12.0f %12.0f - %-10.0f %8.2f %12.2f %12.0f  %s" % (
        sc, med, min(vals), max(vals), ratio, cpu, cap, verdict))
    entries.append({"scenario": sc, "metric": "requests_per_second_median", "value": round(med, 1),
                    "target": target if emu else None, "met": met})
    entries.append({"scenario": sc, "metric": "requests_per_second_min", "value": round(min(vals), 1),
                    "target": None, "met": None})
    entries.append({"scenario": sc, "metric": "requests_per_second_max", "value": round(max(vals), 1),
                    "target": None, "met": None})
    entries.append({"scenario": sc, "metric": "server_cpu_us_per_request_median",
                    "value": round(cpu, 2), "target": None, "met": None})
    # What one fully free core would serve at that cost: comparable across
    # runs even when other jobs share the machine.
    entries.append({"scenario": sc, "metric": "one_core_capacity_rps",
                    "value": round(1e6 / cpu, 0) if cpu else None, "target": None, "met": None})
    if emu:
        entries.append({"scenario": sc, "metric": "ratio_to_static", "value": round(ratio, 3),
                        "target": None, "met": None})
        entries.append({"scenario": sc, "metric": "non_2xx_responses", "value": non2xx,
                        "target": 0, "met": non2xx == 0})
with open(out_path, "w") as f:
    json.dump(entries, f, indent=1)
    f.write("\n")
with open(out_path.replace("summary.json", "meta.json"), "w") as f:
    json.dump({"wrk_threads": int(threads), "connections": int(conns), "duration_s": int(duration),
               "keep_alive": True, "runs_per_scenario": len(by["static"]), "cpus": int(cpus),
               "loadavg_before": load_before, "loadavg_after": load_after}, f, indent=1)
    f.write("\n")
print("\nwrk used %s thread(s) on the same %s CPUs; load average %s before, %s after"
      % (threads, cpus, load_before, load_after))
print("target %.0f req/s for every emulator scenario: %s" % (target, "NOT met" if failed else "met"))
sys.exit(1 if failed else 0)
EOF
