#!/usr/bin/env bash
# jiraprov-worker's command line: --help, --version, --check-config (valid, invalid with
# file:line:column, unknown librdkafka property, secrets never printed), bad usage.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib_test.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_test.sh"

worker=$JP_BUILD_DIR/worker/jiraprov-worker
[[ -x $worker ]] || { jp_say "worker not built; skipped"; exit "$JP_SKIP"; }
tmp=$JP_T_TMP

out=$("$worker" --help)
# Every long option the parser knows (worker/main.c), and its short form, is in --help.
mapfile -t flags < <(grep -oE '\{"[a-z-]+", (no|required)_argument, NULL, .[a-zA-Z].\}' \
    "$JP_SOURCE_DIR/worker/main.c" | sed -E 's/^\{"([a-z-]+)".*/--\1/')
jp_t_check "the option table was found" test "${#flags[@]}" -ge 6
for flag in "${flags[@]}"; do
    jp_t_check "--help documents $flag" grep -qE -- "(^|[ ,])$flag( |,|$)" <<<"$out"
done
out=$("$worker" --list-metrics)
jp_t_check "--list-metrics names every family with type and labels" \
    grep -qP '^jiraprov_jira_requests_total\tcounter\tsite,api,endpoint_class,method,status\t' <<<"$out"
jp_t_check "--version names the version" grep -q '^jiraprov-worker [0-9]' <<<"$("$worker" --version)"

rc=0; "$worker" >/dev/null 2>&1 || rc=$?
jp_t_eq "no --config is a usage error" 2 "$rc"

secret=distinctive-Secret-4711
printf '%s\n' "$secret" >"$tmp/token"
printf '%s\n' "$secret-audit-key" >"$tmp/audit-key"
chmod 600 "$tmp/token" "$tmp/audit-key"
cat >"$tmp/nokey.yaml" <<YAML
kafka:
  bootstrap.servers: 127.0.0.1:9092
redis:
  url: redis://127.0.0.1:6379/0
sites:
  - name: acme
    jira_url: https://acme.atlassian.net
    email: bot@acme.example
    api_token_file: $tmp/token
    scim_url: https://api.atlassian.com/scim/directory/x
    scim_api_key: \${SCIM_KEY}
YAML
{ cat "$tmp/nokey.yaml"; printf 'audit:\n  hmac_key_file: %s\n' "$tmp/audit-key"; } >"$tmp/ok.yaml"
out=$(SCIM_KEY=$secret-2 "$worker" --check-config -c "$tmp/ok.yaml" 2>&1) && rc=0 || rc=$?
jp_t_eq "a valid config checks out" 0 "$rc"
jp_t_check "the dump shows the effective values" grep -q 'jira_url: "https://acme.atlassian.net"' <<<"$out"
if grep -q "$secret" <<<"$out"; then jp_t_fail "a secret appears in the dump"; else jp_t_ok "no secret in the dump"; fi

out=$(SCIM_KEY=x "$worker" --check-config -c "$tmp/nokey.yaml" 2>&1) && rc=0 || rc=$?
jp_t_eq "a config without an audit key fails the check" 2 "$rc"
jp_t_check "it says the key is required and how to run without one" \
    grep -q "audit.hmac_key (or audit.hmac_key_file) is required.*audit.unkeyed: true" <<<"$out"
{ cat "$tmp/nokey.yaml"; printf 'audit:\n  unkeyed: true\n'; } >"$tmp/unkeyed.yaml"
out=$(SCIM_KEY=x "$worker" --check-config -c "$tmp/unkeyed.yaml" 2>&1) && rc=0 || rc=$?
jp_t_eq "audit.unkeyed: true runs without a key" 0 "$rc"

printf 'kafka:\n  bootstrap.servers: x\nredis:\n  url: redis://h\n  timeot_ms: 3\n' >"$tmp/typo.yaml"
out=$("$worker" --check-config -c "$tmp/typo.yaml" 2>&1) && rc=0 || rc=$?
jp_t_eq "an unknown key fails the check" 2 "$rc"
jp_t_check "the error has file:line:column and the expected keys" \
    grep -q "typo.yaml:5:3: redis.timeot_ms: unknown key (expected one of: url" <<<"$out"

sed 's/  bootstrap.servers: 127.0.0.1:9092/  bootstrap.servers: 127.0.0.1:9092\n  linger.mss: 5/' \
    "$tmp/ok.yaml" >"$tmp/kafka.yaml"
out=$(SCIM_KEY=x "$worker" --check-config -c "$tmp/kafka.yaml" 2>&1) && rc=0 || rc=$?
jp_t_eq "an unknown librdkafka property fails the check" 2 "$rc"
jp_t_check "it is named with its position" \
    grep -q "kafka.yaml:3:3: kafka.linger.mss: unknown librdkafka property" <<<"$out"

rc=0; "$worker" -c "$tmp/typo.yaml" 2>/dev/null || rc=$?
jp_t_eq "the daemon refuses to start on a bad config" 2 "$rc"
jp_t_finish
