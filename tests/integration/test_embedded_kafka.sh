#!/usr/bin/env bash
# integration.embedded_kafka: jiraprov-embedded-kafka as a black box: option errors, topics
# created up front and on demand, the bootstrap line and file, the control FIFO, and a clean
# exit on SIGTERM and SIGINT.
set -euo pipefail
JP_PROG=test_embedded_kafka
# shellcheck source-path=SCRIPTDIR source=lib_test.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_test.sh"

jp_t_require kcat

bin=$JP_KAFKA_BIN
tmp=$JP_T_TMP

exit_code() { # CMD...: prints CMD's exit status
    local rc=0
    "$@" >/dev/null 2>&1 || rc=$?
    printf '%s\n' "$rc"
}

# ---- options
jp_t_check "--version names librdkafka" grep -q 'librdkafka 2\.' <<<"$("$bin" --version)"
jp_t_check "--help says ports cannot be chosen" grep -q 'cannot be' <<<"$("$bin" --help)"
jp_t_eq "unknown option" 2 "$(exit_code "$bin" --listen 127.0.0.1:9092)"
jp_t_eq "missing value" 2 "$(exit_code "$bin" --brokers)"
jp_t_eq "bad topic name" 2 "$(exit_code "$bin" --topic 'a b:3')"
jp_t_eq "zero partitions" 2 "$(exit_code "$bin" --topics ok:1,bad:0)"
jp_t_eq "partitions not a number" 2 "$(exit_code "$bin" --topic t:3x)"
jp_t_eq "duplicate topic" 2 "$(exit_code "$bin" --topic t:1 --topic t:2)"
jp_t_eq "replication above brokers" 2 "$(exit_code "$bin" --brokers 2 --replication 3)"
jp_t_eq "zero brokers" 2 "$(exit_code "$bin" --brokers 0)"

# ---- a three-broker cluster
out=$tmp/out
"$bin" --brokers 3 --replication 3 --topics jp.one:3,jp_two --topic jp-three:1 \
    --bootstrap-file "$tmp/bootstrap" --control-fifo "$tmp/ctl" >"$out" 2>"$tmp/err" &
pid=$!
jp_t_bg_pid "$pid"
jp_wait_ready "$pid" 10 grep -q '^bootstrap.servers=' "$out" || jp_die "broker did not start"
line=$(head -n 1 "$out")
bootstrap=${line#bootstrap.servers=}
jp_t_check "three bootstrap addresses on 127.0.0.1" \
    grep -Eq '^127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+,127\.0\.0\.1:[0-9]+$' <<<"$bootstrap"
jp_t_eq "bootstrap file matches stdout" "$bootstrap" "$(cat "$tmp/bootstrap")"
jp_t_check "FIFO created" test -p "$tmp/ctl"

meta=$(kcat -q -L -b "$bootstrap" -m 5)
jp_t_check "3 brokers" grep -q ' 3 brokers:' <<<"$meta"
jp_t_check "jp.one has 3 partitions" grep -q 'topic "jp.one" with 3 partitions' <<<"$meta"
jp_t_check "jp_two has the default 4" grep -q 'topic "jp_two" with 4 partitions' <<<"$meta"
jp_t_check "jp-three has 1 partition" grep -q 'topic "jp-three" with 1 partitions' <<<"$meta"

# Topics are auto-created on first produce.
printf 'k\tv\n' | kcat -q -P -b "$bootstrap" -t jp.auto -K $'\t'
jp_t_eq "auto-created topic keeps the message" "k v" \
    "$(kcat -q -C -b "$bootstrap" -t jp.auto -e -o beginning -f '%k %s\n')"
jp_t_check "auto-created topic has 4 partitions" \
    grep -q 'topic "jp.auto" with 4 partitions' <<<"$(kcat -q -L -b "$bootstrap" -t jp.auto)"

# ---- control FIFO
printf 'topic-error jp.one 3\nbroker-rtt 2 5\nno-such-command\n' >"$tmp/ctl"
jp_t_check "control commands answered" \
    jp_wait_until 5 grep -q "control 'no-such-command'" "$tmp/err"
jp_t_check "topic-error applied" grep -q "control 'topic-error jp.one 3': ok" "$tmp/err"
jp_t_check "broker-rtt applied" grep -q "control 'broker-rtt 2 5': ok" "$tmp/err"
jp_t_check "bad command reported" grep -q "'no-such-command': unknown or malformed" "$tmp/err"
jp_t_check "topic error visible in metadata" \
    grep -qi 'unknown topic' <<<"$(kcat -q -L -b "$bootstrap" -t jp.one -m 5 2>&1 || true)"
printf 'topic-error jp.one 0\n' >"$tmp/ctl"
jp_t_check "topic error cleared" \
    jp_wait_until 5 grep -q "control 'topic-error jp.one 0': ok" "$tmp/err"

# ---- SIGTERM: exit 0, files it made are removed
kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
jp_t_eq "exit status after SIGTERM" 0 "$rc"
jp_t_check "bootstrap file removed" test ! -e "$tmp/bootstrap"
jp_t_check "FIFO removed" test ! -e "$tmp/ctl"

# ---- SIGINT as well (the old files go first: the new process truncates them only once it
# runs, and a check must not read the first broker's lines meanwhile)
rm -f "$out" "$tmp/err"
"$bin" --topic x:1 >"$out" 2>"$tmp/err" &
pid=$!
jp_t_bg_pid "$pid"
jp_wait_ready "$pid" 10 grep -q '^bootstrap.servers=' "$out" || jp_die "broker did not start"
kill -INT "$pid"
rc=0
wait "$pid" || rc=$?
jp_t_eq "exit status after SIGINT" 0 "$rc"
jp_t_eq "nothing on stderr" "" "$(cat "$tmp/err")"

jp_t_finish
