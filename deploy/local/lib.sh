# shellcheck shell=bash
# Shared helpers for deploy/local/*.sh and tests/integration/*.sh: messages, free loopback
# ports, waiting on a condition with a deadline, and processes tracked by PID files.
#
# A state directory holds, per component NAME: NAME.pid (the PID alone), NAME.log, and one
# line "NAME<TAB>STARTTIME" in the file `components`, in start order. Processes are only ever
# signalled through those PIDs, and only if /proc gives the same start time, so a recycled
# PID is never hit.

JP_PROG=${JP_PROG:-$(basename "$0")}
JP_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
JP_DEFAULT_STATE=$JP_LIB_DIR/state
# How often conditions are polled (seconds).
JP_POLL_INTERVAL=${JP_POLL_INTERVAL:-0.05}

jp_say() {
    printf '%s: %s\n' "$JP_PROG" "$*" >&2
}

jp_die() {
    jp_say "error: $*"
    exit 1
}

# Milliseconds since the epoch (bash 5 EPOCHREALTIME, else date).
jp_now_ms() {
    if [[ -n ${EPOCHREALTIME:-} ]]; then
        local t=${EPOCHREALTIME/[.,]/}
        printf '%s\n' "$((10#${t:0:${#t}-3}))"
    else
        date +%s%3N
    fi
}

# jp_port_in_use PORT: true if any TCP socket on this host uses PORT locally.
jp_port_in_use() {
    local port=$1
    if command -v ss >/dev/null 2>&1; then
        [[ -n $(ss -Htan "sport = :$port" 2>/dev/null) ]]
    else
        (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null
    fi
}

# jp_free_port: prints a TCP port nobody uses now, below the kernel's ephemeral range so that
# outgoing connections do not take it meanwhile. Callers that bind it must retry on EADDRINUSE.
jp_free_port() {
    local lo=32768 span port tries
    if [[ -r /proc/sys/net/ipv4/ip_local_port_range ]]; then
        read -r lo _ </proc/sys/net/ipv4/ip_local_port_range || true
    fi
    if ((lo > 21000)); then
        span=$((lo - 20000))
        lo=20000
    else
        lo=10000
        span=10000
    fi
    for ((tries = 0; tries < 200; tries++)); do
        port=$((lo + (RANDOM * 32768 + RANDOM) % span))
        if ! jp_port_in_use "$port"; then
            printf '%s\n' "$port"
            return 0
        fi
    done
    jp_say "no free TCP port found"
    return 1
}

# jp_port_open HOST PORT: true if something accepts connections there.
jp_port_open() {
    (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null
}

# jp_pid_alive PID: true if PID is a running process (zombies count as gone).
jp_pid_alive() {
    local pid=$1 stat
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r /proc/$pid/stat ]]; then
        stat=$(<"/proc/$pid/stat") 2>/dev/null || return 1
        stat=${stat##*) }
        [[ ${stat%% *} != Z ]] || return 1
    fi
    return 0
}

# jp_pid_starttime PID: the process start time (clock ticks since boot, /proc/PID/stat field
# 22), which with the PID identifies one process; "-" where /proc cannot tell.
jp_pid_starttime() {
    local stat fields
    if stat=$(<"/proc/$1/stat") 2>/dev/null; then
        # Fields after the command name, which is in parentheses and may hold spaces.
        read -r -a fields <<<"${stat##*) }"
        printf '%s\n' "${fields[19]}"
    else
        printf '%s\n' -
    fi
}

# jp_pid_runs PID STARTTIME: true if PID is alive and is still the process that was recorded
# (same start time), so a recycled PID is never taken for it.
jp_pid_runs() {
    local pid=$1 start=$2
    jp_pid_alive "$pid" || return 1
    [[ $start == - ]] && return 0
    [[ $(jp_pid_starttime "$pid") == "$start" ]]
}

# jp_wait_until TIMEOUT_S CMD...: polls CMD until it succeeds; false after TIMEOUT_S seconds.
jp_wait_until() {
    local timeout=$1 deadline
    shift
    deadline=$(($(jp_now_ms) + timeout * 1000))
    while ! "$@"; do
        if (($(jp_now_ms) >= deadline)); then
            return 1
        fi
        sleep "$JP_POLL_INTERVAL"
    done
}

# jp_wait_ready PID TIMEOUT_S CMD...: like jp_wait_until, but gives up at once if PID exits.
jp_wait_ready() {
    local pid=$1 timeout=$2 deadline
    shift 2
    deadline=$(($(jp_now_ms) + timeout * 1000))
    while ! "$@"; do
        if ! jp_pid_alive "$pid"; then
            jp_say "process $pid exited before it was ready"
            return 1
        fi
        if (($(jp_now_ms) >= deadline)); then
            jp_say "not ready after ${timeout}s"
            return 1
        fi
        sleep "$JP_POLL_INTERVAL"
    done
}

# jp_stop_pid PID TIMEOUT_S: SIGTERM, wait up to TIMEOUT_S, then SIGKILL. False if it survived.
jp_stop_pid() {
    local pid=$1 timeout=$2
    jp_pid_alive "$pid" || return 0
    kill -TERM "$pid" 2>/dev/null || true
    if jp_wait_until "$timeout" jp_pid_gone "$pid"; then
        return 0
    fi
    jp_say "pid $pid ignored SIGTERM for ${timeout}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
    jp_wait_until 5 jp_pid_gone "$pid"
}

jp_pid_gone() {
    ! jp_pid_alive "$1"
}

# jp_state_record DIR NAME PID: remembers a started component and which process it is.
jp_state_record() {
    local dir=$1 name=$2 pid=$3
    printf '%s\n' "$pid" >"$dir/$name.pid"
    printf '%s\t%s\n' "$name" "$(jp_pid_starttime "$pid")" >>"$dir/components"
}

# jp_state_components DIR: prints "NAME<TAB>STARTTIME" lines, last started first.
jp_state_components() {
    local dir=$1
    [[ -f $dir/components ]] || return 0
    tac "$dir/components"
}

# jp_state_live DIR: prints "NAME PID" for every recorded component still running.
jp_state_live() {
    local dir=$1 name start pid
    while IFS=$'\t' read -r name start; do
        [[ -n $name && -f $dir/$name.pid ]] || continue
        pid=$(<"$dir/$name.pid")
        if jp_pid_runs "$pid" "$start"; then
            printf '%s %s\n' "$name" "$pid"
        fi
    done < <(jp_state_components "$dir")
}

# jp_state_forget DIR NAME: drops NAME's PID file and its line in `components`.
jp_state_forget() {
    local dir=$1 name=$2 rest
    rm -f "$dir/$name.pid"
    [[ -f $dir/components ]] || return 0
    rest=$(awk -F '\t' -v n="$name" '$1 != n' "$dir/components")
    if [[ -n $rest ]]; then
        printf '%s\n' "$rest" >"$dir/components"
    else
        rm -f "$dir/components"
    fi
}

# jp_state_stop DIR [TIMEOUT_S]: stops every recorded component, newest first, and removes
# the PID files. Logs stay. False if some process could not be stopped.
jp_state_stop() {
    local dir=$1 timeout=${2:-10} line name start pid rc=0 lines=()
    [[ -d $dir ]] || return 0
    # Read the list first: jp_state_forget rewrites the file while we go.
    mapfile -t lines < <(jp_state_components "$dir")
    for line in "${lines[@]}"; do
        name=${line%%$'\t'*}
        start=${line#*$'\t'}
        [[ -n $name ]] || continue
        if [[ -f $dir/$name.pid ]]; then
            pid=$(<"$dir/$name.pid")
            if jp_pid_runs "$pid" "$start"; then
                if jp_stop_pid "$pid" "$timeout"; then
                    jp_say "stopped $name (pid $pid)"
                else
                    jp_say "could not stop $name (pid $pid)"
                    rc=1
                    continue
                fi
            fi
        fi
        jp_state_forget "$dir" "$name"
    done
    return "$rc"
}

# jp_log_tail FILE [LINES]: shows the end of a component log on stderr.
jp_log_tail() {
    local file=$1 count=${2:-20}
    [[ -f $file ]] || return 0
    printf -- '--- last %s lines of %s ---\n' "$count" "$file" >&2
    tail -n "$count" "$file" >&2 || true
    printf -- '---\n' >&2
}

# jp_abspath PATH: absolute form of PATH (which may not exist yet; its parent must).
jp_abspath() {
    local p=$1
    if [[ -d $p ]]; then
        (cd "$p" && pwd -P)
    else
        printf '%s/%s\n' "$(cd "$(dirname "$p")" && pwd -P)" "$(basename "$p")"
    fi
}

# jp_env_file_for STATE_DIR: where up.sh writes stack.env for that state directory: next to
# the scripts for the default state, inside the state directory otherwise.
jp_env_file_for() {
    local state
    state=$(jp_abspath "$1")
    if [[ $state == "$(jp_abspath "$JP_DEFAULT_STATE")" ]]; then
        printf '%s\n' "$JP_LIB_DIR/stack.env"
    else
        printf '%s\n' "$state/stack.env"
    fi
}

# jp_state_lock DIR WAIT_S: takes the state directory's lock on fd 9 (closed for children by
# the callers), so that up.sh and down.sh never run at once on one directory.
jp_state_lock() {
    local dir=$1 wait=$2
    command -v flock >/dev/null 2>&1 || return 0
    exec 9>>"$dir/.lock"
    flock -w "$wait" 9
}
