#!/usr/bin/env bash
# integration.stack_pair: two stacks side by side (two state directories) get their own ports,
# do not see each other's messages, and are stopped independently.
set -euo pipefail
JP_PROG=test_stack_pair
# shellcheck source-path=SCRIPTDIR source=lib_test.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_test.sh"

jp_t_require kcat redis-server redis-cli

a=$JP_T_TMP/a
b=$JP_T_TMP/b
jp_t_up "$a" --workers 0 --partitions 2
jp_t_up "$b" --workers 0

env_a=$a/stack.env
env_b=$b/stack.env
kafka_a=$(jp_t_env_get "$env_a" KAFKA_BOOTSTRAP)
kafka_b=$(jp_t_env_get "$env_b" KAFKA_BOOTSTRAP)
redis_a=$(jp_t_env_get "$env_a" REDIS_URL)
redis_b=$(jp_t_env_get "$env_b" REDIS_URL)
http_a=$(grep -o 'listen: "[^"]*"' "$a/worker.yaml")
http_b=$(grep -o 'listen: "[^"]*"' "$b/worker.yaml")

jp_t_check "kafka ports differ ($kafka_a, $kafka_b)" test "$kafka_a" != "$kafka_b"
jp_t_check "redis ports differ ($redis_a, $redis_b)" test "$redis_a" != "$redis_b"
jp_t_check "worker http ports differ" test "$http_a" != "$http_b"
jp_t_check "--partitions applies to the results topic" \
    grep -q 'topic "jiraprov.results" with 2 partitions' \
    <<<"$(kcat -q -L -b "$kafka_a" -t jiraprov.results -m 5)"
jp_t_check "--partitions leaves the events topic at 8" \
    grep -q 'topic "idhub.events" with 8 partitions' \
    <<<"$(kcat -q -L -b "$kafka_a" -t idhub.events -m 5)"

# Isolation: a message produced to A is not in B, a Redis key set in A is not in B.
printf 'k1\tonly-in-a\n' | kcat -q -P -b "$kafka_a" -t idhub.events -K $'\t'
jp_t_eq "A has its message" "k1 only-in-a" \
    "$(kcat -q -C -b "$kafka_a" -t idhub.events -e -o beginning -f '%k %s\n')"
jp_t_eq "B's events topic is empty" "" \
    "$(kcat -q -C -b "$kafka_b" -t idhub.events -e -o beginning -f '%k %s\n')"
redis-cli -u "$redis_a" set jp:pair a >/dev/null
jp_t_eq "B's redis does not see A's key" "" "$(redis-cli -u "$redis_b" get jp:pair)"

# Stopping A leaves B running.
pids_a=$(cat "$a"/*.pid)
"$JP_DOWN" --state "$a"
for pid in $pids_a; do
    jp_t_check "A's pid $pid gone" jp_pid_gone "$pid"
done
jp_t_eq "B still answers" PONG "$(redis-cli -u "$redis_b" ping)"
jp_t_check "B's kafka still answers" \
    grep -q 'topic "idhub.events"' <<<"$(kcat -q -L -b "$kafka_b" -t idhub.events -m 5)"

pids_b=$(cat "$b"/*.pid)
"$JP_DOWN" --state "$b"
for pid in $pids_b; do
    jp_t_check "B's pid $pid gone" jp_pid_gone "$pid"
done

jp_t_finish
