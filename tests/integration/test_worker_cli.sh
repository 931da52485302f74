#!/usr/bin/env bash
# jiraprov-worker's command line: --help, --version, --check-config (valid, invalid with
# file:line:column, unknown librdkafka property, secrets never printed), bad usage; security
# opt-outs logged by --check-config and at start; world-readable files with inline secrets refused.
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

# Security opt-outs are never silent: each is a warning, from --check-config and at start.
sed -e 's|    scim_api_key: .*|&\n    tls_verify: false|' \
    -e 's|  bootstrap.servers: 127.0.0.1:9092|&\n  security.protocol: ssl\n  ssl.endpoint.identification.algorithm: none|' \
    "$tmp/ok.yaml" >"$tmp/insecure.yaml"
out=$(SCIM_KEY=x "$worker" --check-config -c "$tmp/insecure.yaml" 2>&1) && rc=0 || rc=$?
jp_t_eq "an opt-out is a valid config" 0 "$rc"
jp_t_check "--check-config warns that the site's TLS verification is off" \
    grep -q '"level":"warn".*site acme: TLS certificate verification is OFF (sites\[0\].tls_verify: false' <<<"$out"
jp_t_check "--check-config warns that Kafka's host name check is off, with its position" \
    grep -q 'kafka: broker host name verification is OFF (kafka.ssl.endpoint.identification.algorithm: none at [^ ]*insecure.yaml:4:3)' <<<"$out"
out=$(SCIM_KEY=x "$worker" --check-config -c "$tmp/ok.yaml" 2>&1)
if grep -q '"level":"warn"' <<<"$out"; then jp_t_fail "warnings for a secure config: $out"; else jp_t_ok "a secure config gives no warning"; fi

# The daemon logs the same at start, before it connects anywhere (nothing listens on port 9).
sed -e 's|127.0.0.1:9092|127.0.0.1:9|' -e 's|redis://127.0.0.1:6379/0|redis://127.0.0.1:9/0|' \
    "$tmp/insecure.yaml" >"$tmp/insecure-run.yaml"
printf 'http:\n  listen: ""\n' >>"$tmp/insecure-run.yaml"
SCIM_KEY=x "$worker" -c "$tmp/insecure-run.yaml" 2>"$tmp/run.log" &
pid=$!
jp_t_bg_pid "$pid"
jp_wait_until 20 grep -q 'broker host name verification is OFF' "$tmp/run.log" || true
jp_t_check "the daemon warns at start that the site's TLS verification is off" \
    grep -q 'site acme: TLS certificate verification is OFF' "$tmp/run.log"
jp_t_check "the daemon warns at start that Kafka's host name check is off" \
    grep -q 'kafka: broker host name verification is OFF' "$tmp/run.log"
jp_stop_pid "$pid" 10 || true

# A world-readable file with a secret written inline is refused, saying where and what to do.
sed 's|    scim_api_key: .*|    scim_api_key: inline-Secret-4711|' "$tmp/ok.yaml" >"$tmp/inline.yaml"
chmod 644 "$tmp/inline.yaml"
out=$("$worker" --check-config -c "$tmp/inline.yaml" 2>&1) && rc=0 || rc=$?
jp_t_eq "a world-readable file with an inline secret is refused" 2 "$rc"
jp_t_check "the refusal names the line and the remedy" \
    grep -qF "inline.yaml:11:19: sites[0].scim_api_key: secret written inline in a world-readable file (mode 0644); use scim_api_key_file or \${VAR}, or make the file unreadable to others (chmod o-r)" <<<"$out"
if grep -q 'inline-Secret-4711' <<<"$out"; then jp_t_fail "the refusal shows the secret"; else jp_t_ok "the refusal does not show the secret"; fi
chmod 600 "$tmp/inline.yaml"
rc=0; "$worker" --check-config -c "$tmp/inline.yaml" >/dev/null 2>&1 || rc=$?
jp_t_eq "the same file, private, loads" 0 "$rc"
jp_t_finish
