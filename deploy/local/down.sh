#!/usr/bin/env bash
# Stops the local stack started by up.sh: every process recorded in the state directory, by
# PID (SIGTERM, then SIGKILL after a deadline). Never looks processes up by name. Logs stay.
set -euo pipefail

JP_LOCAL_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
# shellcheck source-path=SCRIPTDIR source=lib.sh
. "$JP_LOCAL_DIR/lib.sh"

STOP_TIMEOUT=${JP_STOP_TIMEOUT:-10}

usage() {
    cat <<EOF
Usage: $JP_PROG [--state DIR]
Stops the stack whose state is in DIR [deploy/local/state]: each recorded PID gets SIGTERM,
then SIGKILL after ${STOP_TIMEOUT}s (JP_STOP_TIMEOUT). Removes PID files and stack.env; keeps logs.
EOF
}

state=$JP_DEFAULT_STATE
while (($#)); do
    case $1 in
    --state)
        (($# >= 2)) || jp_die "--state needs a directory"
        state=$2
        shift 2
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) jp_die "unknown option: $1 (see --help)" ;;
    esac
done

if [[ ! -d $state ]]; then
    jp_say "no stack state in $state; nothing to stop"
    exit 0
fi
state=$(jp_abspath "$state")
jp_state_lock "$state" 30 || jp_die "timed out waiting for another up.sh or down.sh on $state"

rc=0
jp_state_stop "$state" "$STOP_TIMEOUT" || rc=1

# PID files no component line vouches for (an interrupted start): drop them if dead, else warn.
for f in "$state"/*.pid; do
    [[ -e $f ]] || continue
    pid=$(<"$f")
    if jp_pid_alive "$pid"; then
        jp_say "$f names live pid $pid of unknown origin; left alone"
        rc=1
    else
        rm -f "$f"
    fi
done

if ((rc == 0)); then
    rm -f "$(jp_env_file_for "$state")" "$state/components"
    jp_say "stack in $state stopped"
fi
exit "$rc"
