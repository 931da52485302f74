#!/usr/bin/env bash
# integration.stack: deploy/local/up.sh brings up the embedded Kafka and Redis, keyed messages
# go through the events topic intact and land on one partition per key, Redis answers, a
# second up.sh on the same state is refused, a failed start cleans up after itself, and
# down.sh leaves no recorded process running.
set -euo pipefail
JP_PROG=test_stack
# shellcheck source-path=SCRIPTDIR source=lib_test.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_test.sh"

jp_t_require kcat redis-server redis-cli

KEYS=24
PER_KEY=5

# produce_batch FIRST_SEQ LAST_SEQ: one kcat producer run; message SEQ goes to key user-(SEQ%KEYS).
produce_batch() {
    local seq
    for ((seq = $1; seq <= $2; seq++)); do
        printf 'user-%02d\t{"seq":%d,"subject":"user-%02d","note":"a b  c"}\n' \
            $((seq % KEYS)) "$seq" $((seq % KEYS))
    done | kcat -q -P -b "$KAFKA_BOOTSTRAP" -t "$TOPIC_EVENTS" -K $'\t'
}

expected_lines() {
    local seq
    for ((seq = 1; seq <= KEYS * PER_KEY; seq++)); do
        printf 'user-%02d {"seq":%d,"subject":"user-%02d","note":"a b  c"}\n' \
            $((seq % KEYS)) "$seq" $((seq % KEYS))
    done
}

consume_all() { # FORMAT
    kcat -q -C -b "$KAFKA_BOOTSTRAP" -t "$TOPIC_EVENTS" -e -o beginning -f "$1"
}

# shellcheck disable=SC2317 # called through jp_t_check
# Checks that every key's sequence numbers arrive in increasing order (input: "key body").
per_key_order_kept() {
    awk '{ match($0, /"seq":[0-9]+/); s = substr($0, RSTART + 6, RLENGTH - 6) + 0
           if ($1 in last && s <= last[$1]) bad = 1; last[$1] = s }
         END { exit bad }'
}

tmp=$JP_T_TMP
state=$tmp/state

# ---- up.sh refuses to run without the broker binary, naming what to do.
out=$(JP_BUILD_DIR=$tmp/no-build "$JP_UP" --state "$tmp/nobuild" 2>&1) && rc=0 || rc=$?
jp_t_check "up.sh without binaries fails" test "$rc" -ne 0
jp_t_check "up.sh without binaries says to build" grep -q 'build' <<<"$out"

# ---- start
t0=$(jp_now_ms)
jp_t_up "$state" --workers 0
jp_say "stack start-up took $(($(jp_now_ms) - t0)) ms"
env_file=$state/stack.env
jp_t_check "stack.env written" test -s "$env_file"
# shellcheck disable=SC1090
. "$env_file"
for key in KAFKA_BOOTSTRAP REDIS_URL TOPIC_EVENTS TOPIC_RESULTS TOPIC_RECON TOPIC_AUDIT \
    TOPIC_DLQ WORKER_CONFIG STACK_STATE; do
    jp_t_check "stack.env has $key" test -n "$(jp_t_env_get "$env_file" "$key")"
done
jp_t_eq "events topic name" idhub.events "$TOPIC_EVENTS"
jp_t_eq "STACK_STATE" "$(jp_abspath "$state")" "$STACK_STATE"
jp_t_check "worker config generated" grep -q "bootstrap.servers: \"$KAFKA_BOOTSTRAP\"" \
    "$WORKER_CONFIG"
jp_t_check "worker config has the redis url" grep -q "url: \"$REDIS_URL\"" "$WORKER_CONFIG"
jp_t_eq "worker config is private" 600 "$(stat -c %a "$WORKER_CONFIG")"
jp_t_eq "secret file is private" 600 "$(stat -c %a "$state/secrets/org_api_key")"
if command -v yamllint >/dev/null 2>&1; then
    jp_t_check "worker config is valid YAML" \
        yamllint -d '{extends: relaxed, rules: {line-length: disable}}' "$WORKER_CONFIG"
fi

# ---- topics and partition counts
meta=$(kcat -q -L -b "$KAFKA_BOOTSTRAP" -m 5)
for t in "$TOPIC_EVENTS:8" "$TOPIC_RESULTS:4" "$TOPIC_RECON:4" "$TOPIC_AUDIT:4" "$TOPIC_DLQ:4"; do
    jp_t_check "topic ${t%%:*} has ${t##*:} partitions" \
        grep -q "topic \"${t%%:*}\" with ${t##*:} partitions" <<<"$meta"
done

# ---- keyed messages round-trip, from two separate producer runs
half=$((KEYS * PER_KEY / 2))
produce_batch 1 "$half"
produce_batch $((half + 1)) $((KEYS * PER_KEY))
got=$(consume_all '%k %s\n')
jp_t_eq "message count" $((KEYS * PER_KEY)) "$(grep -c . <<<"$got")"
jp_t_check "keys and bodies intact" \
    diff <(expected_lines | sort) <(sort <<<"$got")
jp_t_check "per-key order kept" per_key_order_kept <<<"$got"

parts=$(consume_all '%k %p\n' | sort -u)
jp_t_eq "each key on exactly one partition" "$KEYS" "$(wc -l <<<"$parts")"
jp_t_check "keys spread over several partitions" \
    test "$(awk '{print $2}' <<<"$parts" | sort -u | wc -l)" -gt 1

# ---- redis
jp_t_eq "redis PING" PONG "$(redis-cli -u "$REDIS_URL" ping)"
jp_t_eq "redis SET/GET" v1 "$(redis-cli -u "$REDIS_URL" set jp:test v1 >/dev/null &&
    redis-cli -u "$REDIS_URL" get jp:test)"

# ---- a second up.sh on the same state is refused and leaves the stack alone
out=$("$JP_UP" --state "$state" --workers 0 2>&1) && rc=0 || rc=$?
jp_t_check "second up.sh refused" test "$rc" -ne 0
jp_t_check "refusal names down.sh" grep -q 'already running.*down.sh' <<<"$out"
jp_t_eq "stack still answers after the refusal" PONG "$(redis-cli -u "$REDIS_URL" ping)"

# ---- down.sh stops every recorded PID
pids=$(cat "$state"/*.pid)
# Kafka and Redis always; the emulator too when it is built.
expected_components=2
[[ -x $JP_BUILD_DIR/tests/emulator/jiraprov-jira-emulator ]] && expected_components=3
jp_t_eq "every component recorded" "$expected_components" "$(wc -w <<<"$pids")"
"$JP_DOWN" --state "$state"
for pid in $pids; do
    jp_t_check "pid $pid gone after down.sh" jp_pid_gone "$pid"
done
jp_t_check "pid files removed" test -z "$(find "$state" -name '*.pid')"
jp_t_check "stack.env removed" test ! -e "$env_file"
jp_t_check "logs kept" test -s "$state/kafka.log"
jp_t_check "kafka exited cleanly (bootstrap file removed)" test ! -e "$state/kafka.bootstrap"

# ---- a component that fails to start takes the others down with it
fakebin=$tmp/fakebin
mkdir -p "$fakebin"
printf '#!/bin/sh\necho "fake redis-server: refusing to start" >&2\nexit 3\n' \
    >"$fakebin/redis-server"
chmod +x "$fakebin/redis-server"
out=$(PATH=$fakebin:$PATH "$JP_UP" --state "$tmp/broken" --workers 0 2>&1) && rc=0 || rc=$?
jp_t_check "start-up with a broken redis fails" test "$rc" -ne 0
jp_t_check "failure shows the component log" grep -q 'fake redis-server: refusing' <<<"$out"
jp_t_check "nothing left running after the failed start" \
    test -z "$(jp_state_live "$tmp/broken")"
jp_t_check "kafka of the failed start was stopped" test ! -e "$tmp/broken/kafka.bootstrap"
jp_t_check "no stack.env after the failed start" test ! -e "$tmp/broken/stack.env"

jp_t_finish
