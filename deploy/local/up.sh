#!/usr/bin/env bash
# Starts the local jiraprov stack in the background: the embedded Kafka broker, redis-server,
# the Jira emulator and N workers when they are built. Each component is tracked by PID in the
# state directory; deploy/local/down.sh stops them. Writes stack.env with every endpoint.
set -euo pipefail

JP_LOCAL_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
JP_ROOT=$(cd "$JP_LOCAL_DIR/../.." && pwd -P)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$JP_LOCAL_DIR/lib.sh"

READY_TIMEOUT=${JP_READY_TIMEOUT:-20}
BUILD_DIR=${JP_BUILD_DIR:-$JP_ROOT/build}
KAFKA_BIN=$BUILD_DIR/tests/kafka/jiraprov-embedded-kafka
EMULATOR_BIN=$BUILD_DIR/tests/emulator/jiraprov-jira-emulator
WORKER_BIN=$BUILD_DIR/worker/jiraprov-worker

TOPIC_EVENTS=idhub.events
TOPIC_RESULTS=jiraprov.results
TOPIC_RECON=jiraprov.recon
TOPIC_AUDIT=jiraprov.audit
TOPIC_DLQ=jiraprov.dlq
CONSUMER_GROUP=jiraprov
# Site endpoints when no emulator runs: a port nothing answers on, so calls fail fast.
NO_SITE_URL=http://127.0.0.1:1

usage() {
    cat <<EOF
Usage: $JP_PROG [--state DIR] [--workers N] [--partitions N] [--event-partitions N]
                [--redis-persist] [--brokers N] [--secrets DIR]
Starts the local stack from the binaries in \$JP_BUILD_DIR (default: $JP_ROOT/build).

  --state DIR           PIDs, logs, generated config and secrets [deploy/local/state]
  --workers N           workers to start if the worker is built [1]
  --event-partitions N  partitions of $TOPIC_EVENTS [8]
  --partitions N        partitions of the results, recon, audit and dead-letter topics [4]
  --redis-persist       let Redis keep an append-only file in DIR/redis (fsync on every write)
  --brokers N           brokers of the embedded Kafka cluster [1]
  --secrets DIR         secrets to use instead of the demo ones, one file each (any subset):
                        jira_api_token, scim_api_key, org_api_key (the emulator accepts them),
                        redis_password (Redis then requires it), audit_hmac_key (otherwise a
                        random key is generated at every start)
  -h, --help

Endpoints go to stack.env: deploy/local/stack.env for the default state, DIR/stack.env
otherwise. Stop the stack with deploy/local/down.sh [--state DIR].
EOF
}

# ---------------------------------------------------------------------------------------------
# Options

state=$JP_DEFAULT_STATE
workers=1
partitions=4
event_partitions=8
redis_persist=0
brokers=1
secrets_dir=''

need_count() { # OPTION VALUE MIN MAX
    if ! [[ $2 =~ ^[0-9]+$ ]] || (($2 < $3 || $2 > $4)); then
        jp_die "$1 must be an integer $3..$4"
    fi
}

while (($#)); do
    case $1 in
    --state | --workers | --partitions | --event-partitions | --brokers | --secrets)
        (($# >= 2)) || jp_die "$1 needs a value (see --help)"
        case $1 in
        --state) state=$2 ;;
        --secrets)
            [[ -d $2 ]] || jp_die "--secrets: $2 is not a directory"
            secrets_dir=$(cd "$2" && pwd -P)
            ;;
        --workers) need_count "$1" "$2" 0 32 && workers=$2 ;;
        --partitions) need_count "$1" "$2" 1 256 && partitions=$2 ;;
        --event-partitions) need_count "$1" "$2" 1 256 && event_partitions=$2 ;;
        --brokers) need_count "$1" "$2" 1 9 && brokers=$2 ;;
        esac
        shift 2
        ;;
    --redis-persist)
        redis_persist=1
        shift
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) jp_die "unknown option: $1 (see --help)" ;;
    esac
done

# ---------------------------------------------------------------------------------------------
# Components. To add one: a start_<name> function calling start_component with a readiness
# check, and a call in main below.

# start_component NAME READY_FN CMD...: runs CMD in the background (output in NAME.log, PID in
# NAME.pid) and polls "READY_FN PID" until it succeeds, the process exits or the deadline
# passes. On failure the process is stopped, its log tail shown, and 1 returned.
start_component() {
    local name=$1 ready=$2 pid
    shift 2
    : >"$state/$name.log"
    # fd 9 is the state lock: children must not keep it.
    "$@" </dev/null >>"$state/$name.log" 2>&1 9>&- &
    pid=$!
    jp_state_record "$state" "$name" "$pid"
    if ! jp_wait_ready "$pid" "$READY_TIMEOUT" "$ready" "$pid"; then
        jp_say "$name did not become ready"
        jp_log_tail "$state/$name.log"
        jp_stop_pid "$pid" 5 || true
        jp_state_forget "$state" "$name"
        return 1
    fi
    jp_say "$name ready (pid $pid)"
}

ready_kafka() {
    [[ -s $state/kafka.bootstrap ]] || return 1
    KAFKA_BOOTSTRAP=$(<"$state/kafka.bootstrap")
    kcat -q -b "$KAFKA_BOOTSTRAP" -L -t "$TOPIC_EVENTS" -m 2 >/dev/null 2>&1
}

start_kafka() {
    rm -f "$state/kafka.bootstrap"
    start_component kafka ready_kafka "$KAFKA_BIN" --brokers "$brokers" \
        --topic "$TOPIC_EVENTS:$event_partitions" \
        --topic "$TOPIC_RESULTS:$partitions" --topic "$TOPIC_RECON:$partitions" \
        --topic "$TOPIC_AUDIT:$partitions" --topic "$TOPIC_DLQ:$partitions" \
        --bootstrap-file "$state/kafka.bootstrap" --control-fifo "$state/kafka.control"
}

ready_redis() {
    [[ $(REDISCLI_AUTH=$REDIS_PASSWORD redis-cli --no-auth-warning -h 127.0.0.1 \
        -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]
}

# redis-server cannot bind port 0 and report it, so a free port is probed, and taken again if
# someone else binds it in between.
start_redis() {
    local attempt args
    for ((attempt = 1; attempt <= 5; attempt++)); do
        REDIS_PORT=$(jp_free_port)
        args=()
        if [[ -n $REDIS_PASSWORD ]]; then
            # In a mode-0600 file, not on the command line where ps would show it.
            printf 'requirepass %s\n' "$(json_str "$REDIS_PASSWORD")" |
                write_file_atomic "$state/secrets/redis.conf" 600
            args+=("$state/secrets/redis.conf")
        fi
        args+=(--bind 127.0.0.1 --port "$REDIS_PORT" --daemonize no --logfile "")
        if ((redis_persist)); then
            mkdir -p "$state/redis"
            args+=(--dir "$state/redis" --appendonly yes --appendfsync always)
        else
            args+=(--dir "$state" --save "" --appendonly no)
        fi
        if start_component redis ready_redis "$REDIS_BIN" "${args[@]}"; then
            REDIS_URL=redis://127.0.0.1:$REDIS_PORT/0
            return 0
        fi
        grep -q 'Address already in use' "$state/redis.log" || return 1
        jp_say "port $REDIS_PORT was taken meanwhile; trying another"
    done
    return 1
}

ready_emulator() {
    local line
    line=$(grep -m1 -o 'listening on http://[0-9.]*:[0-9]*' "$state/emulator.log" 2>/dev/null) ||
        return 1
    EMULATOR_URL=${line#listening on }
    jp_port_open 127.0.0.1 "${EMULATOR_URL##*:}"
}

# The emulator runs with its default demo credentials (tests/emulator/main.c, --help), so that
# no secret appears on a command line; the site config and stack.env repeat them.
start_emulator() {
    if [[ ! -x $EMULATOR_BIN ]]; then
        jp_say "note: no Jira emulator at $EMULATOR_BIN; the demo site points to $NO_SITE_URL"
        return 0
    fi
    JIRA_EMAIL=jiraprov-bot@demo.example
    JIRA_API_TOKEN=$(secret_or jira_api_token demo-jira-api-token)
    SCIM_API_KEY=$(secret_or scim_api_key demo-scim-key)
    ORG_API_KEY=$(secret_or org_api_key demo-org-key)
    {
        printf '{"jira_email": %s, "jira_token": %s, ' "$(json_str "$JIRA_EMAIL")" \
            "$(json_str "$JIRA_API_TOKEN")"
        printf '"scim_key": %s, "org_key": %s}\n' "$(json_str "$SCIM_API_KEY")" \
            "$(json_str "$ORG_API_KEY")"
    } | write_file_atomic "$state/secrets/emulator.json" 600
    start_component emulator ready_emulator "$EMULATOR_BIN" --listen 127.0.0.1:0 --seed-demo \
        --credentials "$state/secrets/emulator.json"
    JIRA_URL=$EMULATOR_URL
    SCIM_URL=$EMULATOR_URL/scim/directory/demo-directory
    ADMIN_URL=$EMULATOR_URL
    EMULATOR_CONTROL_URL=$EMULATOR_URL/__emulator
}

ready_worker() {
    jp_port_open 127.0.0.1 "$WORKER_HTTP_PORT"
}

start_workers() {
    local i
    ((workers > 0)) || return 0
    if [[ ! -x $WORKER_BIN ]]; then
        jp_say "note: the worker is not built yet ($WORKER_BIN); starting no worker"
        return 0
    fi
    for ((i = 1; i <= workers; i++)); do
        WORKER_HTTP_PORT=$(jp_free_port)
        write_worker_config "$state/worker-$i.yaml" "$WORKER_HTTP_PORT" "local-worker-$i"
        start_component "worker-$i" ready_worker "$WORKER_BIN" --config "$state/worker-$i.yaml"
        ((i > 1)) || WORKER_METRICS_URL=http://127.0.0.1:$WORKER_HTTP_PORT/metrics
    done
}

# ---------------------------------------------------------------------------------------------
# Generated files

yaml_str() { # double-quoted YAML scalar
    local s=${1//\\/\\\\}
    printf '"%s"' "${s//\"/\\\"}"
}

json_str() { # JSON string (the values here have no control characters; see secret_or)
    local s=${1//\\/\\\\}
    printf '"%s"' "${s//\"/\\\"}"
}

# secret_or NAME DEFAULT: the content of --secrets DIR/NAME (trailing newlines dropped) if
# there is one, else DEFAULT.
secret_or() {
    local f=$secrets_dir/$1 v
    if [[ -n $secrets_dir && -f $f ]]; then
        v=$(<"$f")
        [[ -n $v && $v != *[[:cntrl:]]* ]] || jp_die "--secrets: $f is empty or has control characters"
        printf '%s' "$v"
    else
        printf '%s' "$2"
    fi
}

# A fresh audit key per start: the local topics start empty every time too.
random_key() {
    od -An -tx1 -N32 /dev/urandom | tr -d ' \n'
}

# write_file_atomic PATH MODE: stdin to PATH through a temporary file.
write_file_atomic() {
    local tmp=$1.tmp.$$
    (umask 077 && cat >"$tmp")
    chmod "$2" "$tmp"
    mv -f "$tmp" "$1"
}

write_secrets() {
    mkdir -p "$state/secrets"
    chmod 700 "$state/secrets"
    printf '%s' "$JIRA_API_TOKEN" | write_file_atomic "$state/secrets/jira_api_token" 600
    printf '%s' "$SCIM_API_KEY" | write_file_atomic "$state/secrets/scim_api_key" 600
    printf '%s' "$ORG_API_KEY" | write_file_atomic "$state/secrets/org_api_key" 600
    printf '%s' "$AUDIT_HMAC_KEY" | write_file_atomic "$state/secrets/audit_hmac_key" 600
    if [[ -n $REDIS_PASSWORD ]]; then
        printf '%s' "$REDIS_PASSWORD" | write_file_atomic "$state/secrets/redis_password" 600
    fi
}

# write_worker_config PATH HTTP_PORT INSTANCE_ID
write_worker_config() {
    local redis_password=''
    if [[ -n $REDIS_PASSWORD ]]; then
        redis_password="
  password_file: $(yaml_str "$state/secrets/redis_password")"
    fi
    write_file_atomic "$1" 600 <<EOF
# Generated by deploy/local/up.sh at every start of the stack in
# $state
kafka:
  bootstrap.servers: $(yaml_str "$KAFKA_BOOTSTRAP")
topics:
  events: $(yaml_str "$TOPIC_EVENTS")
  results: $(yaml_str "$TOPIC_RESULTS")
  recon: $(yaml_str "$TOPIC_RECON")
  audit: $(yaml_str "$TOPIC_AUDIT")
  dead_letter: $(yaml_str "$TOPIC_DLQ")
consumer:
  group: $(yaml_str "$CONSUMER_GROUP")
redis:
  url: $(yaml_str "$REDIS_URL")$redis_password
sites:
  - name: demo
    jira_url: $(yaml_str "$JIRA_URL")
    email: $(yaml_str "$JIRA_EMAIL")
    api_token_file: $(yaml_str "$state/secrets/jira_api_token")
    scim_url: $(yaml_str "$SCIM_URL")
    scim_api_key_file: $(yaml_str "$state/secrets/scim_api_key")
    admin_url: $(yaml_str "$ADMIN_URL")
    org_api_key_file: $(yaml_str "$state/secrets/org_api_key")
    tls_verify: true
http:
  listen: $(yaml_str "127.0.0.1:$2")
log:
  level: info
worker:
  instance_id: $(yaml_str "$3")
audit:
  hmac_key_file: $(yaml_str "$state/secrets/audit_hmac_key")
EOF
}

env_line() { # NAME VALUE, quoted for bash and exported so that programs see it
    printf 'export %s=%q\n' "$1" "$2"
}

write_env() {
    {
        printf '# Written by deploy/local/up.sh; stack state in %s. Source it: . %s\n' \
            "$state" "$env_file"
        env_line KAFKA_BOOTSTRAP "$KAFKA_BOOTSTRAP"
        env_line REDIS_URL "$REDIS_URL"
        env_line TOPIC_EVENTS "$TOPIC_EVENTS"
        env_line TOPIC_RESULTS "$TOPIC_RESULTS"
        env_line TOPIC_RECON "$TOPIC_RECON"
        env_line TOPIC_AUDIT "$TOPIC_AUDIT"
        env_line TOPIC_DLQ "$TOPIC_DLQ"
        env_line WORKER_CONFIG "$WORKER_CONFIG"
        env_line AUDIT_KEY_FILE "$state/secrets/audit_hmac_key"
        # redis-cli reads the password from here (REDIS_URL carries none).
        [[ -z $REDIS_PASSWORD ]] || env_line REDISCLI_AUTH "$REDIS_PASSWORD"
        env_line STACK_STATE "$state"
        env_line KAFKA_CONTROL_FIFO "$state/kafka.control"
        [[ -z ${WORKER_METRICS_URL:-} ]] || env_line WORKER_METRICS_URL "$WORKER_METRICS_URL"
        if [[ -n $EMULATOR_URL ]]; then
            env_line JIRA_URL "$JIRA_URL"
            env_line JIRA_EMAIL "$JIRA_EMAIL"
            env_line JIRA_API_TOKEN "$JIRA_API_TOKEN"
            env_line SCIM_URL "$SCIM_URL"
            env_line SCIM_API_KEY "$SCIM_API_KEY"
            env_line ADMIN_URL "$ADMIN_URL"
            env_line ORG_API_KEY "$ORG_API_KEY"
            env_line EMULATOR_CONTROL_URL "$EMULATOR_CONTROL_URL"
        fi
    } | write_file_atomic "$env_file" 600
}

# ---------------------------------------------------------------------------------------------
# Main

preflight() {
    local tool
    for tool in kcat redis-server redis-cli; do
        command -v "$tool" >/dev/null 2>&1 ||
            jp_die "$tool not found; install it (deploy/local/install-deps.sh)"
    done
    REDIS_BIN=$(command -v redis-server)
    [[ -x $KAFKA_BIN ]] ||
        jp_die "$KAFKA_BIN is missing: build first (cmake -S $JP_ROOT -B $BUILD_DIR &&" \
            "cmake --build $BUILD_DIR), or run deploy/local/demo.sh"
}

on_exit() {
    local rc=$?
    if ((rc != 0)); then
        jp_say "start-up failed; stopping what was started"
        jp_state_stop "$state" 5 || true
        rm -f "$env_file"
    fi
    exit "$rc"
}

main() {
    local t0 live
    t0=$(jp_now_ms)
    preflight
    mkdir -p "$state"
    state=$(jp_abspath "$state")
    env_file=$(jp_env_file_for "$state")
    jp_state_lock "$state" 0 || jp_die "another up.sh or down.sh is working on $state"

    live=$(jp_state_live "$state")
    if [[ -n $live ]]; then
        jp_die "stack already running in $state ($(printf '%s' "$live" | paste -sd ',' -));" \
            "run deploy/local/down.sh --state $state"
    fi
    rm -f "$state"/*.pid "$state/components" "$env_file"

    KAFKA_BOOTSTRAP='' REDIS_URL='' EMULATOR_URL=''
    JIRA_URL=$NO_SITE_URL JIRA_EMAIL=nobody@localhost JIRA_API_TOKEN=unset
    SCIM_URL=$NO_SITE_URL/scim/directory/none SCIM_API_KEY=unset
    ADMIN_URL=$NO_SITE_URL ORG_API_KEY=unset
    EMULATOR_CONTROL_URL=''
    WORKER_CONFIG=$state/worker.yaml
    REDIS_PASSWORD=$(secret_or redis_password '')
    AUDIT_HMAC_KEY=$(secret_or audit_hmac_key "$(random_key)")
    mkdir -p "$state/secrets"
    chmod 700 "$state/secrets"

    trap on_exit EXIT
    trap 'exit 130' INT TERM
    start_kafka
    start_redis
    start_emulator
    write_secrets
    write_worker_config "$WORKER_CONFIG" "$(jp_free_port)" local-worker
    start_workers
    write_env

    jp_say "stack up in $(($(jp_now_ms) - t0)) ms; state $state"
    jp_say "  kafka  $KAFKA_BOOTSTRAP"
    jp_say "  redis  $REDIS_URL"
    if [[ -n $EMULATOR_URL ]]; then
        jp_say "  jira   $EMULATOR_URL"
    fi
    jp_say "  env    $env_file"
}

main
