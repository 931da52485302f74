#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test of jiraprov:
# static checks, then the whole ctest suite twice: a normal build and an
# AddressSanitizer+UndefinedBehaviorSanitizer build.
#
#   tests/run.sh                 everything (what CI runs)
#   tests/run.sh --no-asan       skip the sanitizer build
#   tests/run.sh --no-install    do not check Debian packages
#   tests/run.sh -R REGEX        only ctest tests matching REGEX (e.g. -R unit)
#   tests/run.sh --checks-only   only the static checks (format, lint, banned calls, deploy/)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"

asan=1 install=1 checks_only=0 filter=()
while [ $# -gt 0 ]; do
    case "$1" in
    --no-asan) asan=0 ;;
    --no-install) install=0 ;;
    --checks-only) checks_only=1 ;;
    -R)
        filter=(-R "$2")
        shift
        ;;
    -h | --help)
        sed -n '2,11p' "$0"
        exit 0
        ;;
    *)
        echo "tests/run.sh: unknown option $1" >&2
        exit 2
        ;;
    esac
    shift
done

jobs=$(nproc 2>/dev/null || echo 2)
step() { printf '\n== %s\n' "$*"; }

if [ "$install" = 1 ]; then
    step "dependencies"
    deploy/local/install-deps.sh --test
fi

# Files to check: tracked ones in a git checkout, else everything.
list_files() {
    if git rev-parse --git-dir >/dev/null 2>&1; then
        git ls-files --cached --others --exclude-standard -- "$@"
    else
        find . -path ./build -prune -o -type f \( -name "${1#\*}" \) -print
    fi
}

step "static checks"
mapfile -t c_files < <(list_files '*.c' '*.h' | while read -r f; do [ -f "$f" ] && echo "$f"; done)
bad=()
for f in "${c_files[@]}"; do
    clang-format --dry-run --Werror "$f" >/dev/null 2>&1 || bad+=("$f")
done
if [ ${#bad[@]} -gt 0 ]; then
    echo "not clang-formatted (run clang-format -i): ${bad[*]}" >&2
    exit 1
fi
echo "clang-format: ${#c_files[@]} files ok"

# Banned calls: unbounded string functions and atoi (no error reporting).
if grep -nE '\b(sprintf|vsprintf|strcpy|strcat|atoi|atol|gets)\s*\(' "${c_files[@]}"; then
    echo "banned function used (see above); use snprintf/memcpy/strtol" >&2
    exit 1
fi
echo "banned calls: none"

mapfile -t sh_files < <(list_files '*.sh' .ci/run | while read -r f; do [ -f "$f" ] && echo "$f"; done)
shellcheck -x "${sh_files[@]}"
echo "shellcheck: ${#sh_files[@]} scripts ok"

mapfile -t yaml_files < <(list_files '*.yml' '*.yaml' | while read -r f; do [ -f "$f" ] && echo "$f"; done)
if [ ${#yaml_files[@]} -gt 0 ]; then
    yamllint -s -c .yamllint "${yaml_files[@]}"
    echo "yamllint: ${#yaml_files[@]} files ok"
fi
# Deployment files against each other: ports, paths, mounts, secrets, metric names, PromQL
# (ctest integration.deploy repeats this with the built worker).
/usr/bin/python3 tests/integration/deploy_check.py --static --quiet
[ "$checks_only" = 1 ] && exit 0

passed=0 failed=0
run_suite() { # name build-dir cmake-args...
    local name=$1 dir=$2
    shift 2
    step "build ($name)"
    cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo "$@" >"$dir.cmake.log" 2>&1 ||
        { cat "$dir.cmake.log"; exit 1; }
    if ! cmake --build "$dir" -j"$jobs" >"$dir/build.log" 2>&1; then
        grep -vE '^\[ *[0-9]+%\]' "$dir/build.log"
        exit 1
    fi
    step "test ($name)"
    local log="$dir/ctest.log" rc=0
    (cd "$dir" && ctest -j"$jobs" --output-on-failure --timeout 600 "${filter[@]}") 2>&1 |
        tee "$log" || rc=$?
    local line total nfail
    line=$(grep -E '[0-9]+% tests passed, [0-9]+ tests? failed out of [0-9]+' "$log" | tail -1)
    total=$(sed -E 's/.*out of ([0-9]+).*/\1/' <<<"$line")
    nfail=$(sed -E 's/.* ([0-9]+) tests? failed.*/\1/' <<<"$line")
    passed=$((passed + ${total:-0} - ${nfail:-0}))
    failed=$((failed + ${nfail:-0}))
    [ -n "$line" ] || failed=$((failed + 1))
    return "$rc"
}

mkdir -p build
status=0
run_suite normal build || status=1
if [ "$asan" = 1 ]; then
    mkdir -p build-asan
    # Leak checks stay on; the mock cluster and libraries are clean at exit.
    ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0} \
    UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1} \
        run_suite "asan+ubsan" build-asan -DJP_SANITIZE=ON || status=1
fi
printf '\n%d passed, %d failed\n' "$passed" "$failed"
exit "$status"
