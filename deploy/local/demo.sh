#!/usr/bin/env bash
# jiraprov's main job on the embedded local stack, end to end:
# installs what is missing, builds, starts embedded Kafka + Redis + the Jira
# emulator (+ workers once built), publishes the sample events, shows what
# happened to each, and stops everything it started.
#
#   deploy/local/demo.sh           run the demo and stop the stack
#   deploy/local/demo.sh --keep    leave the stack running (prints how to stop it)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$root"
keep=0
for arg in "$@"; do
    case "$arg" in
    --keep) keep=1 ;;
    -h | --help)
        sed -n '2,9p' "$0"
        exit 0
        ;;
    *)
        echo "demo.sh: unknown option $arg" >&2
        exit 2
        ;;
    esac
done

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "dependencies"
deploy/local/install-deps.sh
echo "all Debian packages present"

say "build"
build=${JP_BUILD_DIR:-$root/build}
cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=RelWithDebInfo >"$build.cmake.log" 2>&1 ||
    { cat "$build.cmake.log"; exit 1; }
cmake --build "$build" -j"$(nproc)" >"$build.build.log" 2>&1 ||
    { grep -vE '^\[ *[0-9]+%\]' "$build.build.log"; exit 1; }
echo "built in $build"
export JP_BUILD_DIR=$build

state=$(mktemp -d "${TMPDIR:-/tmp}/jiraprov-demo.XXXXXX")
stop_stack() { deploy/local/down.sh --state "$state" >/dev/null 2>&1 || true; }
if [ "$keep" = 0 ]; then
    trap stop_stack EXIT
fi

say "local stack"
workers=0
[ -x "$build/worker/jiraprov-worker" ] && workers=2
deploy/local/up.sh --state "$state" --workers "$workers"
# shellcheck source=/dev/null
. "$state/stack.env"

say "publish config/samples/demo.jsonl to $TOPIC_EVENTS"
"$build/producers/jiraprov-produce" -b "$KAFKA_BOOTSTRAP" -t "$TOPIC_EVENTS" \
    config/samples/demo.jsonl
expected=$(grep -cv -E '^\s*(#|$)' config/samples/demo.jsonl)

say "invalid events are refused before anything is sent (config/samples/invalid.jsonl)"
if "$build/producers/jiraprov-produce" -b "$KAFKA_BOOTSTRAP" -t "$TOPIC_EVENTS" \
    config/samples/invalid.jsonl; then
    echo "demo.sh: the producer accepted invalid events" >&2
    exit 1
fi

# Reads a topic from the beginning until `want` records arrived or the
# deadline passed; prints partition, offset, key and value, tab-separated.
read_topic() { # topic want timeout-seconds
    local topic=$1 want=$2 deadline=$((SECONDS + $3)) out
    while :; do
        out=$(kcat -C -b "$KAFKA_BOOTSTRAP" -t "$topic" -o beginning -e -q \
            -f '%p\t%o\t%k\t%s\n' 2>/dev/null || true)
        if [ "$(printf '%s' "$out" | grep -c .)" -ge "$want" ] || [ $SECONDS -ge $deadline ]; then
            printf '%s\n' "$out"
            return
        fi
        sleep 0.5
    done
}

table() { # mode: events|results
    /usr/bin/python3 -c '
import json, sys
mode = sys.argv[1]
rows = []
for line in sys.stdin:
    if not line.strip():
        continue
    part, off, key, value = line.rstrip("\n").split("\t", 3)
    try:
        ev = json.loads(value)
    except ValueError:
        continue
    if mode == "events":
        rows.append((part + ":" + off, ev.get("type", "").removeprefix("com.idhub."), key, ev.get("id", "")))
    else:
        d = ev.get("data", {})
        jira = d.get("jira") or {}
        ids = " ".join(f"{k}={v}" for k, v in jira.items() if k in ("issueKey", "accountId"))
        detail = (d.get("error") or {}).get("message") or " ".join(
            x for x in (d.get("detail"), ids) if x)
        rows.append((d.get("eventType", ""), key, d.get("status", "?"), detail[:70]))
head = ("partition:offset", "type", "key (subject)", "event id") if mode == "events" else \
       ("event type", "subject", "status", "detail")
widths = [max(len(str(r[i])) for r in rows + [head]) for i in range(4)]
for r in [head] + rows:
    print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
print(f"({len(rows)} records)")
' "$1"
}

if [ "$workers" -gt 0 ]; then
    say "outcomes on $TOPIC_RESULTS (2 workers)"
    read_topic "$TOPIC_RESULTS" "$expected" 60 | table results
    say "the audit trail on $TOPIC_AUDIT, verified (key: $AUDIT_KEY_FILE)"
    "$build/producers/jiraprov-audit" verify -c "$WORKER_CONFIG"
    "$build/producers/jiraprov-audit" report -c "$WORKER_CONFIG" | sed -n '/^operation/,/^$/p'
else
    say "events on $TOPIC_EVENTS (the worker is not built yet: nothing applies them)"
    read_topic "$TOPIC_EVENTS" "$expected" 30 | table events
fi

if [ "$keep" = 1 ]; then
    say "the stack keeps running"
    echo "endpoints:  $state/stack.env   (. $state/stack.env)"
    echo "stop it:    deploy/local/down.sh --state $state"
fi
