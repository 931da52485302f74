#!/usr/bin/env bash
# The audit trail end to end: a worker on the local stack applies the demo story, is stopped and
# replaced by a worker of the same instance (a new stream that records where the old one
# ended; it replays the events, so "skipped" decisions are audited too). jiraprov-audit then
# verifies the real topic, reports on it and exports it; the export is checked against the
# schema with every MAC recomputed in Python, then tampered with in each way (a field edited,
# a record dropped, two swapped, one replayed, a forged one inserted, the old stream's tail cut,
# the wrong key) and verify must fail naming the stream and the line. Finally a forged and a
# replayed record are written into the topic itself and verify must name partition and offset.
#
# Environment (see lib_test.sh): JP_BUILD_DIR, JP_SOURCE_DIR. Exits 77 when kcat or
# redis-server is missing.
set -euo pipefail
JP_PROG=test_audit
# shellcheck source-path=SCRIPTDIR source=lib_test.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_test.sh"

jp_t_require kcat redis-server redis-cli
PY=/usr/bin/python3
AUDIT=$JP_BUILD_DIR/producers/jiraprov-audit
PRODUCE=$JP_BUILD_DIR/producers/jiraprov-produce
WORKER=$JP_BUILD_DIR/worker/jiraprov-worker
for bin in "$AUDIT" "$PRODUCE" "$WORKER" "$JP_BUILD_DIR/tests/emulator/jiraprov-jira-emulator"; do
    [[ -x $bin ]] || { jp_t_fail "$bin is not built"; exit 1; }
done
tmp=$JP_T_TMP
state=$tmp/stack

# ---- 0. the command line -------------------------------------------------------------------
out=$("$AUDIT" --help)
for word in verify report export --key-file --allow-unkeyed --since --until "Exit status"; do
    jp_t_check "--help documents $word" grep -q -- "$word" <<<"$out"
done
rc=0; "$AUDIT" >/dev/null 2>&1 || rc=$?
jp_t_eq "no subcommand is a usage error" 2 "$rc"
rc=0; "$AUDIT" export -i /dev/null >/dev/null 2>&1 || rc=$?
jp_t_eq "export without --format is a usage error" 2 "$rc"
out=$(AUDIT_KEY_FILE='' "$AUDIT" verify -i /dev/null 2>&1) && rc=0 || rc=$?
jp_t_eq "verify without a key is refused" 2 "$rc"
jp_t_check "it says where a key comes from" grep -q "verify needs the audit key" <<<"$out"
printf 'short\n' >"$tmp/short.key"
rc=0; "$AUDIT" verify -i /dev/null --key-file "$tmp/short.key" >/dev/null 2>&1 || rc=$?
jp_t_eq "a key under 16 bytes is refused" 2 "$rc"
printf 'a-key-of-enough-length-0001\n' >"$tmp/ok.key"
rc=0; "$AUDIT" verify -i /dev/null --key-file "$tmp/ok.key" >/dev/null 2>&1 || rc=$?
jp_t_eq "an input without any audit record fails verification" 1 "$rc"

if ! jp_t_up "$state" --workers 1 >"$tmp/up.log" 2>&1; then
    cat "$tmp/up.log"
    jp_t_fail "up.sh could not start the stack"
    exit 1
fi
set -a
# shellcheck source=/dev/null
. "$state/stack.env"
set +a
cfg=$state/worker-1.yaml

count() { # TOPIC: messages in it now
    kcat -C -q -b "$KAFKA_BOOTSTRAP" -t "$1" -e -o beginning -f 'x\n' 2>/dev/null | wc -l
}
# shellcheck disable=SC2317 # called through jp_wait_until
at_least() { # TOPIC N
    (($(count "$1") >= $2))
}

# ---- 1. a worker applies the demo story; it is replaced by one of the same instance --------
demo=$JP_SOURCE_DIR/config/samples/demo.jsonl
events=$(grep -c '^{' "$demo")
"$PRODUCE" -q "$demo"
jp_t_check "every demo event has a result" jp_wait_until 40 at_least "$TOPIC_RESULTS" "$events"
jp_stop_pid "$(<"$state/worker-1.pid")" 20
# Same instance id and key, a new consumer group: it replays every event (already applied).
sed 's/^  group: .*/  group: "audit-replay"/' "$cfg" >"$tmp/replay.yaml"
chmod 600 "$tmp/replay.yaml"
"$WORKER" --config "$tmp/replay.yaml" 2>"$tmp/replay.log" &
replay=$!
jp_t_bg_pid "$replay"
jp_t_check "every demo event answered again by the second worker" \
    jp_wait_until 40 at_least "$TOPIC_RESULTS" "$((2 * events))"
jp_stop_pid "$replay" 20
wait "$replay" && rc=0 || rc=$?
jp_t_eq "the second worker drains and exits 0" 0 "$rc"

# ---- 2. the real topic verifies; report and export ---------------------------------------
out=$("$AUDIT" verify -c "$cfg" 2>&1) && rc=0 || rc=$?
printf '%s\n' "$out" >"$tmp/verify.txt"
jp_t_eq "verify of the audit topic exits 0" 0 "$rc"
jp_t_check "two streams, all chains intact" grep -q "^verified: .* in 2 stream(s) from $TOPIC_AUDIT" \
    <<<"$out"
jp_t_check "the first stream stopped cleanly and is continued by the second" \
    grep -q "stream local-worker-1:.*stopped.*: ok" <<<"$out"
jp_t_check "the second stream names the first as its predecessor" \
    grep -q "stream local-worker-1:.*, continues local-worker-1:.*: ok" <<<"$out"

report=$("$AUDIT" report -c "$cfg" --since 2000-01-01 --format json)
jp_t_check "report: actor alice@idhub.example, 12 replays skipped, no dead letter, mutations" \
    "$PY" -c '
import json, sys
r = json.loads(sys.argv[1])
a = r["byActor"]["alice@idhub.example"]
assert r["chain"] == "verified", r["chain"]
assert r["streams"] == 2 and r["events"] == int(sys.argv[2]), r
assert r["byOutcome"]["skipped"]["records"] >= int(sys.argv[2]) - 1, r["byOutcome"]
assert "deadlettered" not in r["byOutcome"], r["byOutcome"]  # the demo reconciliation completes
assert r["byOperation"]["scim.user.create"]["succeeded"] == 3, r["byOperation"]
assert r["bySite"]["demo"]["records"] == a["records"], r["bySite"]
' "$report" "$events"
empty=$("$AUDIT" report -c "$cfg" --since 2000-01-01 --until 2000-01-02 --format json)
jp_t_check "report: nothing in a range before the run" \
    "$PY" -c 'import json,sys; r=json.loads(sys.argv[1]); assert r["records"] == 0, r' "$empty"

export=$tmp/audit.jsonl
"$AUDIT" export -c "$cfg" --format jsonl -o "$export" 2>"$tmp/export.err"
total=$(count "$TOPIC_AUDIT")
jp_t_eq "the JSON Lines export holds every record of the topic" "$total" "$(wc -l <"$export")"
"$AUDIT" export -c "$cfg" --format csv -o "$tmp/audit.csv" 2>/dev/null
jp_t_eq "the CSV export has a header and a row per record" "$((total + 1))" \
    "$(wc -l <"$tmp/audit.csv")"
jp_t_check "CSV rows name stream, seq, actor and operation" \
    grep -q ',local-worker-1:[0-9]*:[0-9a-f]*,[0-9]*,local-worker-1,alice@idhub.example,.*,scim.user.create,' \
    "$tmp/audit.csv"
jp_t_check "the export verifies (key from \$AUDIT_KEY_FILE)" "$AUDIT" verify -q -i "$export"
jp_t_check "every record matches the schema and its MAC recomputed in Python" \
    "$PY" "$JP_SOURCE_DIR/tests/schemas/check_records.py" "$JP_SOURCE_DIR" \
    --key-file "$AUDIT_KEY_FILE" "$export"
if grep -q '"Authorization"\|Basic \|Bearer ' "$export"; then
    jp_t_fail "an audit record carries a credential header"
else
    jp_t_ok "no credential header in any audit record"
fi

# ---- 3. the export tampered with in each way ---------------------------------------------
# The first stream.started naming a predecessor: s1 is the predecessor, s2 the new stream
# (member order is not part of the format: read the JSON).
read -r s1 s2 < <("$PY" - "$export" <<'PY'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line).get("data", {})
    if isinstance(d.get("previous"), dict) and d["previous"].get("stream"):
        print(d["previous"]["stream"], d["chain"]["stream"])
        break
PY
)
[[ -n ${s1:-} && -n ${s2:-} ]] || { jp_t_fail "no stream.started naming a predecessor in the export"; exit 1; }
line_of() { # STREAM SEQ: line number of that record in the export
    "$PY" - "$export" "$1" "$2" <<'PY'
import json, sys
for n, line in enumerate(open(sys.argv[1]), 1):
    c = json.loads(line).get("data", {}).get("chain", {})
    if c.get("stream") == sys.argv[2] and c.get("seq") == int(sys.argv[3]):
        print(n)
PY
}
# expect NAME FILE PATTERN: verify fails on FILE and its report has PATTERN (grep -E).
expect() {
    local out rc
    out=$("$AUDIT" verify -q -i "$2" 2>&1) && rc=0 || rc=$?
    if ((rc == 1)) && grep -Eq -- "$3" <<<"$out"; then
        jp_t_ok "$1"
    else
        jp_t_fail "$1: exit $rc, expected /$3/ in:"
        printf '%s\n' "$out" >&2
    fi
}
l3=$(line_of "$s1" 3)
l4=$(line_of "$s1" 4)
l5=$(line_of "$s1" 5)
n=$(wc -l <"$export")

f=$tmp/edit.jsonl
sed "${l3}s/alice@idhub.example/mallory@idhub.example/g" "$export" >"$f"
expect "an edited field is found: altered, stream, seq, line" "$f" \
    "^altered: $f:$l3: seq 3 of stream $s1 does not verify"

f=$tmp/drop.jsonl
sed "${l4}d" "$export" >"$f"
expect "a dropped record is found: seq 4 missing, between which lines" "$f" \
    "^dropped: stream $s1: seq 4 missing \(dropped\) between seq 3 at $f:$l3 and seq 5 at $f:$l4"

f=$tmp/reorder.jsonl
awk -v a="$l3" -v b="$l4" 'NR == a { hold = $0; next } { print } NR == b { print hold }' \
    "$export" >"$f"
expect "two records swapped are found: reordered, with the lines around" "$f" \
    "^reordered: $f:($l3|$l4): seq [34] of stream $s1 is out of order"

f=$tmp/replay.jsonl
{ cat "$export"; sed -n "${l5}p" "$export"; } >"$f"
expect "a replayed record is found: duplicate of which line" "$f" \
    "^duplicate: $f:$((n + 1)): seq 5 of stream $s1 is a second copy of the record at $f:$l5"

f=$tmp/forged.jsonl
awk -v a="$l5" '{ print } NR == a { gsub(/alice@idhub.example/, "eve@idhub.example"); print }' \
    "$export" >"$f"
expect "a forged record inserted is found: forged, and where the genuine one is" "$f" \
    "^forged: $f:$((l5 + 1)): record claiming seq 5 of stream $s1 .* genuine seq 5 is at $f:$l5"

# The second stream's stream.started says how far the first got: cutting the first's tail shows.
# chain_filter STREAM FROM [TO]: the export without that stream's records FROM..TO (default: on).
chain_filter() {
    "$PY" - "$export" "$@" <<'PY'
import json, sys
stream, lo = sys.argv[2], int(sys.argv[3])
hi = int(sys.argv[4]) if len(sys.argv) > 4 else float("inf")
for line in open(sys.argv[1]):
    c = json.loads(line).get("data", {}).get("chain", {})
    if not (c.get("stream") == stream and lo <= c.get("seq", -1) <= hi):
        sys.stdout.write(line)
PY
}
read -r anchor stop_line < <("$PY" - "$export" "$s1" <<'PY'
import json, sys
anchor = stop = None
for n, line in enumerate(open(sys.argv[1]), 1):
    d = json.loads(line).get("data", {})
    if (d.get("previous") or {}).get("stream") == sys.argv[2]:
        anchor = d["previous"]["seq"]
    if d.get("operation") == "stream.stopped" and d.get("chain", {}).get("stream") == sys.argv[2]:
        stop = n
print(anchor, stop)
PY
)
jp_t_eq "the second stream anchors on the first one's stream.stopped" "$stop_line" \
    "$(line_of "$s1" "$anchor")"
f=$tmp/tail.jsonl
chain_filter "$s1" "$anchor" >"$f"
expect "the first stream's last record cut is found: truncated, by the successor's anchor" "$f" \
    "^truncated: stream $s1 ends at seq $((anchor - 1)) .* its successor $s2 .* reached seq $anchor"

f=$tmp/head.jsonl
chain_filter "$s2" 0 0 >"$f"
expect "the second stream's first record cut is found" "$f" \
    "^dropped: stream $s2 begins at seq 1"

head -c 40 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$tmp/other.key"
out=$("$AUDIT" verify -q -i "$export" --key-file "$tmp/other.key" 2>&1) && rc=0 || rc=$?
jp_t_eq "another key does not verify" 1 "$rc"
jp_t_check "it says which key the streams need" grep -q "^unknown-key: stream $s1: .* key id" <<<"$out"

# ---- 4. the topic itself: a forged and a replayed record -----------------------------------
copy=$(sed -n "${l5}p" "$export")
{
    printf '%s\t%s\n' "$s1" "${copy//alice@idhub.example/eve@idhub.example}"
    printf '%s\t%s\n' "$s1" "$copy"
} | kcat -P -q -b "$KAFKA_BOOTSTRAP" -t "$TOPIC_AUDIT" -K $'\t'
read -r part off < <(kcat -C -q -b "$KAFKA_BOOTSTRAP" -t "$TOPIC_AUDIT" -o beginning -e \
    -f '%k %p %o\n' | grep "^$s1 " | tail -1 | cut -d' ' -f2-)
out=$("$AUDIT" verify -q -c "$cfg" 2>&1) && rc=0 || rc=$?
jp_t_eq "verify of the tampered topic exits 1" 1 "$rc"
jp_t_check "the forged record is located by partition and offset" \
    grep -q "^forged: $TOPIC_AUDIT partition $part offset $((off - 1)): record claiming seq 5 of stream $s1" \
    <<<"$out"
jp_t_check "the replayed record is located by partition and offset" \
    grep -q "^duplicate: $TOPIC_AUDIT partition $part offset $off: seq 5 of stream $s1" <<<"$out"
out=$("$AUDIT" verify -c "$cfg" --format json 2>&1) || true
jp_t_check "the JSON report has both problems with their positions" "$PY" -c '
import json, sys
r = json.loads(sys.argv[1])
got = {(p["kind"], p["position"]["partition"], p["position"]["offset"]) for p in r["problems"]}
want = {("forged", int(sys.argv[2]), int(sys.argv[3]) - 1), ("duplicate", int(sys.argv[2]),
        int(sys.argv[3]))}
assert not r["ok"] and got == want, got
' "$out" "$part" "$off"
jp_t_finish
