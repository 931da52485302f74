#!/usr/bin/env bash
# Integration test of jiraprov-produce and jiraprov-loadgen against the Kafka broker of a local
# stack (deploy/local/up.sh --state TMP --workers 0, so nothing consumes the events). Messages
# are read back with kcat and checked: count, key = subject, body, content-type header; invalid
# input sends nothing; --dry-run sends nothing; loadgen output decodes and is paced.
#
# Environment (see lib_test.sh): JP_BUILD_DIR, the CMake build directory; JP_SOURCE_DIR.
# Exits 77 (skipped) when kcat, redis-server or /usr/bin/python3 is missing.
set -euo pipefail
JP_PROG=test_produce
# shellcheck source-path=SCRIPTDIR source=lib_test.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_test.sh"

jp_t_require kcat redis-server redis-cli
PY=/usr/bin/python3
if [[ ! -x $PY ]]; then
    jp_say "SKIP: $PY is not installed"
    exit "$JP_SKIP"
fi
PRODUCE=$JP_BUILD_DIR/producers/jiraprov-produce
LOADGEN=$JP_BUILD_DIR/producers/jiraprov-loadgen
SAMPLES=$JP_SOURCE_DIR/config/samples
tmp=$JP_T_TMP

tests=0
fail() {
    jp_t_fail "$*"
    exit 1
}
ok() {
    tests=$((tests + 1))
    jp_t_ok "$tests - $*"
}

for bin in "$PRODUCE" "$LOADGEN"; do
    [[ -x $bin ]] || fail "$bin is not built"
done
[[ -f $SAMPLES/demo.jsonl ]] || fail "$SAMPLES/demo.jsonl is missing"

state=$tmp/state
if ! jp_t_up "$state" --workers 0 >"$tmp/up.log" 2>&1; then
    cat "$tmp/up.log"
    fail "deploy/local/up.sh could not start the stack"
fi
# Exported, as the CLIs read KAFKA_BOOTSTRAP and TOPIC_EVENTS from their environment.
set -a
# shellcheck source=/dev/null
. "$state/stack.env"
set +a
[[ -n ${KAFKA_BOOTSTRAP:-} && -n ${TOPIC_EVENTS:-} ]] || fail "stack.env lacks KAFKA_BOOTSTRAP or TOPIC_EVENTS"

# consume TOPIC [kcat format args...]: every message of TOPIC, from the beginning.
consume() {
    local topic=$1
    shift
    kcat -C -q -b "$KAFKA_BOOTSTRAP" -t "$topic" -e -o beginning "${@:--f%k\t%s\n}" 2>"$tmp/kcat.err" ||
        { cat "$tmp/kcat.err"; return 1; }
}
count_messages() {
    consume "$1" -f 'x\n' | wc -l
}

# Verifies kcat -J output (stdin) against expected events: same multiset of JSON values, key =
# subject, the CloudEvents content-type header on every message. Extra arguments: files whose
# events are expected (.jsonl: one per non-blank, non-comment line; .json: object or array).
VERIFY_JSON_PY=$(
    cat <<'EOF'
import json, sys

def canon(v):
    return json.dumps(v, sort_keys=True, separators=(",", ":"))

expected = []
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as f:
        if path.endswith(".jsonl"):
            for line in f:
                if line.strip() and not line.lstrip().startswith("#"):
                    expected.append(json.loads(line))
        else:
            doc = json.load(f)
            expected.extend(doc if isinstance(doc, list) else [doc])
got = []
for line in sys.stdin:
    m = json.loads(line)
    body = json.loads(m["payload"])
    if m["key"] != body["subject"]:
        sys.exit("key %r is not the subject %r" % (m["key"], body["subject"]))
    headers = m.get("headers") or []
    if headers[:2] != ["content-type", "application/cloudevents+json"]:
        sys.exit("unexpected headers %r" % headers)
    got.append(body)
if sorted(map(canon, got)) != sorted(map(canon, expected)):
    sys.exit("received %d events that differ from the %d expected" % (len(got), len(expected)))
EOF
)
verify_json() {
    "$PY" -c "$VERIFY_JSON_PY" "$@"
}

# --- 1. demo.jsonl with nothing but stack.env: every line arrives byte for byte, keyed by subject
grep -v -e '^[[:space:]]*$' -e '^[[:space:]]*#' "$SAMPLES/demo.jsonl" | sort >"$tmp/demo.expected"
demo_count=$(wc -l <"$tmp/demo.expected")
"$PRODUCE" "$SAMPLES/demo.jsonl" 2>"$tmp/demo.err" || { cat "$tmp/demo.err"; fail "producing demo.jsonl"; }
grep -q "^produced $demo_count events (by type: .*) to $TOPIC_EVENTS in [0-9.]*s; invalid 0; failed 0$" \
    "$tmp/demo.err" || { cat "$tmp/demo.err"; fail "demo.jsonl summary"; }
consume "$TOPIC_EVENTS" >"$tmp/demo.got"
[[ $(wc -l <"$tmp/demo.got") -eq $demo_count ]] || fail "expected $demo_count messages in $TOPIC_EVENTS"
cut -f2- "$tmp/demo.got" | sort | cmp -s - "$tmp/demo.expected" ||
    fail "message bodies differ from the lines of demo.jsonl"
consume "$TOPIC_EVENTS" -J | verify_json "$SAMPLES/demo.jsonl" || fail "demo.jsonl keys or headers"
ok "demo.jsonl: $demo_count events byte-identical, keyed by subject (bootstrap from stack.env)"

# --- 2. every sample .json and a YAML file, through --config (the stack's worker config)
cat >"$tmp/events.yaml" <<'EOF'
# two events; the quoted "123" must stay a string and false a boolean
- specversion: "1.0"
  id: yaml-0001
  source: https://idhub.example/provisioning
  type: com.idhub.account.create
  subject: yaml.user@demo.example
  time: 2026-11-22T10:00:00Z
  jirasite: demo
  idhubactor: alice@idhub.example
  data:
    login: yaml.user@demo.example
    email: yaml.user@demo.example
    externalId: "123"
    active: true
- specversion: "1.0"
  id: yaml-0002
  source: https://idhub.example/provisioning
  type: com.idhub.account.update
  subject: yaml.user@demo.example
  time: 2026-11-22T10:00:01Z
  jirasite: demo
  idhubactor: alice@idhub.example
  data:
    login: yaml.user@demo.example
    active: false
EOF
cat >"$tmp/events.yaml.json" <<'EOF'
[{"specversion":"1.0","id":"yaml-0001","source":"https://idhub.example/provisioning",
  "type":"com.idhub.account.create","subject":"yaml.user@demo.example",
  "time":"2026-11-22T10:00:00Z","jirasite":"demo","idhubactor":"alice@idhub.example",
  "data":{"login":"yaml.user@demo.example","email":"yaml.user@demo.example",
          "externalId":"123","active":true}},
 {"specversion":"1.0","id":"yaml-0002","source":"https://idhub.example/provisioning",
  "type":"com.idhub.account.update","subject":"yaml.user@demo.example",
  "time":"2026-11-22T10:00:01Z","jirasite":"demo","idhubactor":"alice@idhub.example",
  "data":{"login":"yaml.user@demo.example","active":false}}]
EOF
json_samples=("$SAMPLES"/*.json)
[[ ${#json_samples[@]} -gt 0 && -f ${json_samples[0]} ]] || fail "no config/samples/*.json"
want=$((${#json_samples[@]} + 2))
"$PRODUCE" --config "$WORKER_CONFIG" -t produce.samples "${json_samples[@]}" "$tmp/events.yaml" \
    2>"$tmp/samples.err" || { cat "$tmp/samples.err"; fail "producing the samples"; }
grep -q "^produced $want events .* to produce.samples in .*; invalid 0; failed 0$" "$tmp/samples.err" ||
    { cat "$tmp/samples.err"; fail "samples summary"; }
[[ $(count_messages produce.samples) -eq $want ]] || fail "expected $want messages in produce.samples"
consume produce.samples -J | verify_json "${json_samples[@]}" "$tmp/events.yaml.json" ||
    fail "sample .json / YAML events differ"
ok "${#json_samples[@]} sample .json files and 2 YAML events (types preserved) via --config"

# --- 3. --dry-run validates and sends nothing, without even connecting
"$PRODUCE" --dry-run -b 127.0.0.1:1 -t produce.dry "$SAMPLES/demo.jsonl" 2>"$tmp/dry.err" ||
    { cat "$tmp/dry.err"; fail "dry run failed"; }
grep -q "^dry run: would produce $demo_count events" "$tmp/dry.err" || { cat "$tmp/dry.err"; fail "dry-run summary"; }
"$PRODUCE" --dry-run -t produce.dry "$SAMPLES/demo.jsonl" 2>/dev/null || fail "dry run with stack.env"
[[ $(count_messages produce.dry) -eq 0 ]] || fail "--dry-run sent messages"
ok "--dry-run sends nothing"

# --- 4. one invalid event among valid ones: reported as FILE:LINE, nothing sent, exit 1
{
    head -n 3 "$tmp/demo.expected"
    echo
    echo '{"specversion":"1.0","id":"bad-1","source":"/idhub","type":"com.idhub.account.create","subject":"x@demo.example","time":"2026-11-22T09:00:00Z","jirasite":"demo","idhubactor":"a","data":{"login":"x@demo.example","email":"not-an-email"}}'
    tail -n 2 "$tmp/demo.expected"
} >"$tmp/mixed.jsonl"
set +e
"$PRODUCE" -t produce.invalid "$tmp/mixed.jsonl" 2>"$tmp/invalid.err"
rc=$?
set -e
[[ $rc -eq 1 ]] || { cat "$tmp/invalid.err"; fail "invalid input: exit $rc, expected 1"; }
grep -q "^$tmp/mixed.jsonl:5: data.email: expected an email address" "$tmp/invalid.err" ||
    { cat "$tmp/invalid.err"; fail "the invalid event is not reported as FILE:LINE: reason"; }
[[ $(count_messages produce.invalid) -eq 0 ]] || fail "an input with an invalid event sent messages"
ok "an invalid event: FILE:LINE reported, nothing sent, exit 1"

set +e
"$PRODUCE" --skip-invalid -t produce.skip "$tmp/mixed.jsonl" 2>"$tmp/skip.err"
rc=$?
set -e
[[ $rc -eq 1 ]] || { cat "$tmp/skip.err"; fail "--skip-invalid: exit $rc, expected 1"; }
grep -q "^produced 5 events .*; invalid 1; failed 0$" "$tmp/skip.err" || { cat "$tmp/skip.err"; fail "--skip-invalid summary"; }
{ head -n 3 "$tmp/demo.expected"; tail -n 2 "$tmp/demo.expected"; } >"$tmp/skip.jsonl"
consume produce.skip -J | verify_json "$tmp/skip.jsonl" || fail "--skip-invalid sent the wrong events"
ok "--skip-invalid sends the 5 valid events and exits 1"

# --- 5. loadgen: 10k events as fast as possible, all arrive, keyed, unique, contract-valid
"$LOADGEN" -t produce.load -n 10000 --seed 42 --subjects 500 \
    --mix account.create=2,account.update=5,account.delete=1,account.enable=1,account.disable=1,entitlement.grant=2,entitlement.revoke=1,issue.create=2,issue.update=1,issue.delete=1,issue.transition=1,recon.request=1 \
    2>"$tmp/load.err" || { cat "$tmp/load.err"; fail "loadgen failed"; }
grep -q "^produced 10000 events .*; delivered 10000; failed 0; seed 42$" "$tmp/load.err" ||
    { cat "$tmp/load.err"; fail "loadgen summary"; }
consume produce.load >"$tmp/load.got"
[[ $(wc -l <"$tmp/load.got") -eq 10000 ]] || fail "expected 10000 loadgen messages, got $(wc -l <"$tmp/load.got")"
cut -f2- "$tmp/load.got" >"$tmp/load.jsonl"
"$PRODUCE" --dry-run "$tmp/load.jsonl" 2>"$tmp/load-check.err" ||
    { head -n 5 "$tmp/load-check.err"; fail "loadgen events do not decode"; }
grep -q "^dry run: would produce 10000 events .*; invalid 0;" "$tmp/load-check.err" || fail "loadgen decode summary"
"$PY" - "$tmp/load.got" <<'EOF' || fail "loadgen keys or ids"
import json, sys
ids = set()
types = set()
for line in open(sys.argv[1], encoding="utf-8"):
    key, body = line.rstrip("\n").split("\t", 1)
    ev = json.loads(body)
    if ev["subject"] != key:
        sys.exit("key %r is not the subject %r" % (key, ev["subject"]))
    ids.add(ev["id"])
    types.add(ev["type"])
if len(ids) != 10000:
    sys.exit("%d distinct ids in 10000 events" % len(ids))
if len(types) != 12:
    sys.exit("only %d event types generated" % len(types))
EOF
ok "loadgen: 10000 events delivered, keyed by subject, unique ids, all 12 types valid"

# --- 6. loadgen pacing: 4000 events at 2000/s take about 2 s
start_ns=$(date +%s%N)
"$LOADGEN" -t produce.rate -n 4000 --rate 2000 2>"$tmp/rate.err" || { cat "$tmp/rate.err"; fail "paced loadgen failed"; }
elapsed_ms=$((($(date +%s%N) - start_ns) / 1000000))
achieved=$(sed -n 's/.*rate: achieved \([0-9.]*\) ev\/s (target 2000).*/\1/p' "$tmp/rate.err")
[[ -n $achieved ]] || { cat "$tmp/rate.err"; fail "no achieved rate in the summary"; }
awk -v a="$achieved" 'BEGIN { exit !(a >= 1700 && a <= 2300) }' ||
    fail "achieved rate $achieved ev/s is not within 15% of 2000"
((elapsed_ms >= 1700 && elapsed_ms <= 6000)) || fail "4000 events at 2000/s took ${elapsed_ms} ms"
[[ $(count_messages produce.rate) -eq 4000 ]] || fail "paced loadgen: not all 4000 events arrived"
ok "loadgen --rate 2000 -n 4000: achieved $achieved ev/s in ${elapsed_ms} ms"

jp_t_finish
