# shellcheck shell=bash
# Helpers for the shell integration tests: locating the tree and the build, temporary state
# directories that are always torn down (stacks stopped by PID through down.sh), assertions.
# Sourced by tests/integration/test_*.sh, which run under ctest with JP_BUILD_DIR and
# JP_SOURCE_DIR set, or by hand (defaults: this tree and its build/).

JP_TEST_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
JP_SOURCE_DIR=${JP_SOURCE_DIR:-$(cd "$JP_TEST_DIR/../.." && pwd -P)}
JP_BUILD_DIR=${JP_BUILD_DIR:-$JP_SOURCE_DIR/build}
export JP_SOURCE_DIR JP_BUILD_DIR
JP_UP=$JP_SOURCE_DIR/deploy/local/up.sh
JP_DOWN=$JP_SOURCE_DIR/deploy/local/down.sh
JP_KAFKA_BIN=$JP_BUILD_DIR/tests/kafka/jiraprov-embedded-kafka
JP_SKIP=77

# shellcheck source-path=SCRIPTDIR source=../../deploy/local/lib.sh
. "$JP_SOURCE_DIR/deploy/local/lib.sh"

jp_t_failures=0
jp_t_states=()
jp_t_pids=()
# Scratch directory of the test (state directories go below it); removed at exit.
JP_T_TMP=$(mktemp -d "${TMPDIR:-/tmp}/jiraprov-it.XXXXXX")

jp_t_fail() {
    jp_say "FAIL: $*"
    jp_t_failures=$((jp_t_failures + 1))
}

jp_t_ok() {
    jp_say "ok: $*"
}

# jp_t_check DESCRIPTION CMD...: records a failure unless CMD succeeds.
jp_t_check() {
    local what=$1
    shift
    if "$@"; then
        jp_t_ok "$what"
    else
        jp_t_fail "$what"
    fi
}

# jp_t_eq DESCRIPTION EXPECTED ACTUAL
jp_t_eq() {
    if [[ $2 == "$3" ]]; then
        jp_t_ok "$1"
    else
        jp_t_fail "$1: expected '$2', got '$3'"
    fi
}

# jp_t_require TOOL...: skips the test when a tool or the embedded broker is missing.
jp_t_require() {
    local tool
    for tool in "$@"; do
        if ! command -v "$tool" >/dev/null 2>&1; then
            jp_say "SKIP: $tool is not installed"
            exit "$JP_SKIP"
        fi
    done
    if [[ ! -x $JP_KAFKA_BIN ]]; then
        jp_say "FAIL: $JP_KAFKA_BIN is not built (cmake --build $JP_BUILD_DIR)"
        exit 1
    fi
}

# jp_t_up STATE [up.sh options...]: starts a stack; down.sh runs on it at exit whatever happens.
jp_t_up() {
    local state=$1
    shift
    jp_t_states+=("$state")
    "$JP_UP" --state "$state" "$@"
}

# jp_t_bg_pid PID: a background process of the test itself, killed at exit if still running.
jp_t_bg_pid() {
    jp_t_pids+=("$1")
}

jp_t_cleanup() {
    local rc=$? s p
    trap - EXIT
    for p in "${jp_t_pids[@]}"; do
        jp_stop_pid "$p" 5 || true
    done
    for s in "${jp_t_states[@]}"; do
        "$JP_DOWN" --state "$s" >/dev/null 2>&1 || jp_say "cleanup: down.sh --state $s failed"
    done
    if ((rc != 0 || jp_t_failures != 0)); then
        for s in "${jp_t_states[@]}"; do
            for p in "$s"/*.log; do
                [[ -f $p ]] && jp_log_tail "$p" 15
            done
        done
    fi
    if [[ -z ${JP_KEEP_TMP:-} ]]; then
        rm -rf "$JP_T_TMP"
    else
        jp_say "kept $JP_T_TMP"
    fi
    exit "$rc"
}
trap jp_t_cleanup EXIT

# jp_t_finish: exit status of the test from the recorded failures.
jp_t_finish() {
    if ((jp_t_failures > 0)); then
        jp_say "$jp_t_failures check(s) failed"
        exit 1
    fi
    jp_say "all checks passed"
    exit 0
}

# jp_t_env_get FILE KEY: value of KEY in a stack.env file (read in a subshell, not sourced here).
jp_t_env_get() {
    (
        # shellcheck disable=SC1090
        . "$1"
        printf '%s\n' "${!2:-}"
    )
}
