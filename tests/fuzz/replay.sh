#!/usr/bin/env bash
# Runs one fuzz target's replay binary (the normal build's jiraprov-fuzz-replay-<target>) over
# the target's seed corpus and its checked-in crash reproducers (tests/fuzz/regressions/<target>/).
# The ctest tests fuzz.replay.<target> call it.
#
#   tests/fuzz/replay.sh REPLAY-BINARY TARGET
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${1:?usage: replay.sh REPLAY-BINARY TARGET}
target=${2:?usage: replay.sh REPLAY-BINARY TARGET}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/jp-fuzz-replay.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

bash "$here/seeds.sh" "$tmp/seeds" "$target" >/dev/null
inputs=("$tmp/seeds/$target")
[ -d "$here/regressions/$target" ] && inputs+=("$here/regressions/$target")
"$bin" "${inputs[@]}"
