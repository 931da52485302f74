#!/usr/bin/env bash
# integration.stack_components: up.sh's optional components, with stand-ins for the Jira
# emulator and the worker (the real ones are not needed): the emulator's address and the
# KEY=VALUE endpoints it prints reach stack.env, the worker configs and the secret files; each
# worker gets its own config, HTTP port, instance id and the stack's audit key; down.sh stops
# all of them; a worker that never becomes ready makes up.sh fail and stop everything it
# started; --secrets DIR replaces every demo secret (the emulator gets the site credentials in
# a private file, Redis requires the password).
set -euo pipefail
JP_PROG=test_stack_components
# shellcheck source-path=SCRIPTDIR source=lib_test.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib_test.sh"

jp_t_require kcat redis-server redis-cli /usr/bin/python3

# A build tree holding the real broker and the stand-ins.
fake=$JP_T_TMP/build
mkdir -p "$fake/tests/kafka" "$fake/tests/emulator" "$fake/worker"
ln -s "$JP_KAFKA_BIN" "$fake/tests/kafka/jiraprov-embedded-kafka"
cat >"$fake/tests/emulator/jiraprov-jira-emulator" <<'PY'
#!/usr/bin/python3
# Stand-in emulator: expects --listen 127.0.0.1:0 --seed-demo --credentials FILE, serves 404s;
# leaves the credentials it was given next to the file, for the test.
import http.server, json, os, shutil, sys
assert sys.argv[1:4] == ["--listen", "127.0.0.1:0", "--seed-demo"], sys.argv
assert sys.argv[4] == "--credentials" and len(sys.argv) == 6, sys.argv
assert os.stat(sys.argv[5]).st_mode & 0o077 == 0, "credentials file readable by others"
shutil.copy(sys.argv[5], sys.argv[5] + ".seen")
srv = http.server.HTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
print("listening on http://127.0.0.1:%d" % srv.server_port, flush=True)
srv.serve_forever()
PY
cat >"$fake/worker/jiraprov-worker" <<'PY'
#!/usr/bin/python3
# Stand-in worker: --config FILE; listens on http.listen unless the config says "never-ready".
import http.server, os, re, sys, time
cfg = open(sys.argv[2]).read()
open(sys.argv[2] + ".started", "w").write("%d\n" % os.getpid())
if "never-ready" in open(sys.argv[2] + ".mode").read():
    time.sleep(3600)
port = int(re.search(r'listen: "127\.0\.0\.1:(\d+)"', cfg).group(1))
http.server.HTTPServer(("127.0.0.1", port), http.server.BaseHTTPRequestHandler).serve_forever()
PY
chmod +x "$fake/tests/emulator/jiraprov-jira-emulator" "$fake/worker/jiraprov-worker"

state=$JP_T_TMP/state
mkdir -p "$state"
for i in 1 2; do echo ready >"$state/worker-$i.yaml.mode"; done
JP_BUILD_DIR=$fake jp_t_up "$state" --workers 2
env_file=$state/stack.env
get() { jp_t_env_get "$env_file" "$1"; }

jira=$(get JIRA_URL)
jp_t_check "JIRA_URL is the emulator's address" grep -Eq '^http://127\.0\.0\.1:[0-9]+$' <<<"$jira"
jp_t_eq "SCIM_URL" "$jira/scim/directory/demo-directory" "$(get SCIM_URL)"
jp_t_eq "ADMIN_URL" "$jira" "$(get ADMIN_URL)"
jp_t_eq "EMULATOR_CONTROL_URL" "$jira/__emulator" "$(get EMULATOR_CONTROL_URL)"
for key in JIRA_EMAIL JIRA_API_TOKEN SCIM_API_KEY ORG_API_KEY; do
    jp_t_check "stack.env has $key" test -n "$(get "$key")"
done
jp_t_eq "scim key secret file" "$(get SCIM_API_KEY)" "$(cat "$state/secrets/scim_api_key")"
jp_t_eq "jira token secret file" "$(get JIRA_API_TOKEN)" "$(cat "$state/secrets/jira_api_token")"
jp_t_eq "org key secret file" "$(get ORG_API_KEY)" "$(cat "$state/secrets/org_api_key")"
jp_t_eq "stack.env is private" 600 "$(stat -c %a "$env_file")"
creds=$state/secrets/emulator.json.seen
jp_t_check "the emulator got the site credentials of stack.env" /usr/bin/python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))
assert [c["jira_token"], c["scim_key"], c["org_key"]] == sys.argv[2:], c
' "$creds" "$(get JIRA_API_TOKEN)" "$(get SCIM_API_KEY)" "$(get ORG_API_KEY)"
key=$(cat "$state/secrets/audit_hmac_key")
jp_t_check "a random 32-byte audit key (hex)" grep -Eq '^[0-9a-f]{64}$' <<<"$key"
jp_t_eq "stack.env names the audit key file" "$state/secrets/audit_hmac_key" "$(get AUDIT_KEY_FILE)"
for i in 1 2; do
    jp_t_check "worker-$i config points at the emulator" \
        grep -q "jira_url: \"$jira\"" "$state/worker-$i.yaml"
    port=$(sed -n 's/^  listen: "127\.0\.0\.1:\([0-9]*\)"$/\1/p' "$state/worker-$i.yaml")
    jp_t_check "worker-$i answers on its HTTP port $port" jp_port_open 127.0.0.1 "$port"
    jp_t_check "worker-$i has instance id local-worker-$i" \
        grep -q "instance_id: \"local-worker-$i\"" "$state/worker-$i.yaml"
    jp_t_check "worker-$i seals audit records with the stack's key" \
        grep -q "hmac_key_file: \"$state/secrets/audit_hmac_key\"" "$state/worker-$i.yaml"
done
ports=$(grep -ho 'listen: "[^"]*"' "$state"/worker*.yaml | sort -u | wc -l)
jp_t_eq "worker.yaml, worker-1 and worker-2 have distinct HTTP ports" 3 "$ports"
jp_t_eq "five components recorded" "kafka redis emulator worker-1 worker-2" \
    "$(cut -f1 "$state/components" | paste -sd ' ' -)"

pids=$(cat "$state"/*.pid)
"$JP_DOWN" --state "$state"
for pid in $pids; do
    jp_t_check "pid $pid gone after down.sh" jp_pid_gone "$pid"
done

# A worker that never listens: up.sh gives up at the deadline and stops everything.
rm -f "$state"/*.started
echo never-ready >"$state/worker-2.yaml.mode"
out=$(JP_BUILD_DIR=$fake JP_READY_TIMEOUT=2 "$JP_UP" --state "$state" --workers 2 2>&1) &&
    rc=0 || rc=$?
jp_t_check "up.sh fails when a worker is never ready" test "$rc" -ne 0
jp_t_check "the failure names worker-2" grep -q 'worker-2 did not become ready' <<<"$out"
for i in 1 2; do
    pid=$(cat "$state/worker-$i.yaml.started")
    jp_t_check "worker-$i (pid $pid) of the failed start stopped" jp_pid_gone "$pid"
done
jp_t_check "kafka of the failed start stopped" test ! -e "$state/kafka.bootstrap"
jp_t_check "no pid files left" test -z "$(find "$state" -name '*.pid')"

# --secrets DIR: every secret from files; Redis then requires its password.
sec=$JP_T_TMP/secrets
mkdir -p "$sec"
for name in jira_api_token scim_api_key org_api_key redis_password audit_hmac_key; do
    printf 'S3cret-%s-"x\\y' "$name" >"$sec/$name"
done
echo ready >"$state/worker-2.yaml.mode"
JP_BUILD_DIR=$fake jp_t_up "$state" --workers 1 --secrets "$sec" >/dev/null 2>&1
for pair in JIRA_API_TOKEN:jira_api_token SCIM_API_KEY:scim_api_key ORG_API_KEY:org_api_key \
    REDISCLI_AUTH:redis_password; do
    jp_t_eq "--secrets: ${pair%%:*}" "$(cat "$sec/${pair#*:}")" "$(get "${pair%%:*}")"
done
jp_t_eq "--secrets: the audit key" "$(cat "$sec/audit_hmac_key")" \
    "$(cat "$state/secrets/audit_hmac_key")"
redis_port=$(get REDIS_URL | sed 's/.*:\([0-9]*\)\/0$/\1/')
jp_t_check "--secrets: Redis refuses clients without the password" \
    grep -q NOAUTH <<<"$(redis-cli -h 127.0.0.1 -p "$redis_port" get x 2>&1)"
jp_t_eq "--secrets: Redis accepts the password" PONG \
    "$(REDISCLI_AUTH=$(get REDISCLI_AUTH) redis-cli --no-auth-warning -h 127.0.0.1 -p "$redis_port" ping)"
jp_t_check "--secrets: workers read the Redis password from its file" \
    grep -q "password_file: \"$state/secrets/redis_password\"" "$state/worker-1.yaml"
if grep -rqF "S3cret-" "$state"/*.yaml "$state"/*.log; then
    jp_t_fail "--secrets: a secret is written inline in a config or a log"
else
    jp_t_ok "--secrets: no secret inline in configs or logs"
fi
"$JP_DOWN" --state "$state" >/dev/null

jp_t_finish
