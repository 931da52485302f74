#!/usr/bin/env bash
# Builds the fuzz targets with clang (libFuzzer + ASan + UBSan, JP_FUZZ=ON, in their own build
# directory) and runs each for a while, starting from the seed corpus (seeds.sh), the checked-in
# crash reproducers (regressions/<target>/) and the corpus earlier runs grew in the build
# directory. A crash, leak, sanitizer report or broken invariant fails the run and leaves the
# input in BUILD-DIR/artifacts/.
#
#   tests/fuzz/run.sh [--seconds N] [--jobs N] [--build-dir DIR] [TARGET...]
#
#   --seconds N     per target (default 60); tests/run.sh runs 15 (the ctest test fuzz.short)
#   --jobs N        targets fuzzed at once (default: the number of cores)
#   --build-dir DIR default build-fuzz/ at the top of the repository
#   TARGET          event, config, jira, request, mapping (default: all)
#
# Exit status: 0 when every target ran clean, 1 when one failed, 77 when clang cannot build
# libFuzzer targets here (the ctest test is then skipped), 2 on a bad command line.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
seconds=60 jobs=$(nproc 2>/dev/null || echo 2) dir=$root/build-fuzz targets=()
while [ $# -gt 0 ]; do
    case "$1" in
    --seconds) seconds=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    --build-dir) dir=$2; shift ;;
    -h | --help) sed -n '2,16p' "$0"; exit 0 ;;
    -*) echo "run.sh: unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1") ;;
    esac
    shift
done
if [ ${#targets[@]} -eq 0 ]; then
    for f in "$here"/fuzz_*.c; do
        t=$(basename "$f" .c)
        targets+=("${t#fuzz_}")
    done
fi
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 && $jobs =~ ^[0-9]+$ && $jobs -gt 0 ]] ||
    { echo "run.sh: --seconds and --jobs take positive integers" >&2; exit 2; }

cc=${JP_FUZZ_CC:-clang}
mkdir -p "$dir"
probe=$dir/probe.c
printf '#include <stddef.h>\n#include <stdint.h>\nint LLVMFuzzerTestOneInput(const uint8_t *d, size_t n) { return d && n ? 0 : 0; }\n' >"$probe"
if ! command -v "$cc" >/dev/null || ! "$cc" -fsanitize=fuzzer,address,undefined "$probe" -o "$dir/probe" 2>/dev/null; then
    echo "fuzz: $cc cannot build libFuzzer targets here; skipped"
    exit 77
fi

start=$(date +%s)
echo "== fuzz: building ${targets[*]} with $cc in $dir"
if ! CC=$cc cmake -S "$root" -B "$dir" -DJP_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    >"$dir/cmake.log" 2>&1; then
    cat "$dir/cmake.log"
    exit 1
fi
build_targets=()
for t in "${targets[@]}"; do build_targets+=(--target "fuzz_$t"); done
if ! cmake --build "$dir" -j"$jobs" "${build_targets[@]}" >"$dir/build.log" 2>&1; then
    grep -vE '^\[ *[0-9]+%\]' "$dir/build.log"
    exit 1
fi
echo "   built in $(($(date +%s) - start)) s"
bash "$here/seeds.sh" "$dir/seeds" "${targets[@]}"

# Leaks are checked once per run (at exit) and per input by libFuzzer's -detect_leaks.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:symbolize=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

fuzz_one() { # target
    local t=$1 bin=$dir/tests/fuzz/fuzz_$1
    local corpus=$dir/corpus/$t art=$dir/artifacts/$t/ log=$dir/logs/$t.log
    mkdir -p "$corpus" "$art" "$dir/logs"
    local dirs=("$corpus" "$dir/seeds/$t")
    [ -d "$here/regressions/$t" ] && dirs+=("$here/regressions/$t")
    local dict=()
    local d=$t
    [ "$t" = mapping ] && d=jira # SCIM users: the same members as the responses
    [ -f "$here/$d.dict" ] && dict=(-dict="$here/$d.dict")
    "$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix="$art" "${dict[@]}" "${dirs[@]}" >"$log" 2>&1
}

declare -A pid_of=()
failed=()
reap() { # target
    local t=$1 log=$dir/logs/$1.log
    if wait "${pid_of[$t]}"; then
        local execs cov units
        execs=$(sed -nE 's/^stat::number_of_executed_units: *([0-9]+)/\1/p' "$log" | tail -1)
        cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1)
        units=$(find "$dir/corpus/$t" -type f | wc -l)
        printf '   %-8s ok: %s runs in %s s, %s, corpus %s\n' "$t" "${execs:-?}" "$seconds" \
            "${cov:-cov ?}" "$units"
    else
        failed+=("$t")
        printf '   %-8s FAILED (log %s)\n' "$t" "$log"
        grep -E 'ERROR|invariant|SUMMARY|Test unit written' "$log" | head -20 | sed 's/^/      /'
    fi
}

echo "== fuzz: ${#targets[@]} targets, $seconds s each, $jobs at a time"
running=()
for t in "${targets[@]}"; do
    if [ ${#running[@]} -ge "$jobs" ]; then
        reap "${running[0]}"
        running=("${running[@]:1}")
    fi
    fuzz_one "$t" &
    pid_of[$t]=$!
    running+=("$t")
done
for t in "${running[@]}"; do reap "$t"; done

echo "== fuzz: done in $(($(date +%s) - start)) s"
if [ ${#failed[@]} -gt 0 ]; then
    echo "fuzz: failed: ${failed[*]}. Reproduce with BUILD-DIR/tests/fuzz/fuzz_<target> FILE;" \
        "once fixed, add the input to tests/fuzz/regressions/<target>/ (replayed by ctest" \
        "fuzz.replay.<target> in every build)." >&2
    exit 1
fi
