#!/usr/bin/env bash
# Installs the Debian packages jiraprov needs, only those that are missing.
# Idempotent and silent when everything is present.
#   install-deps.sh            build and run (worker, producers, local stack)
#   install-deps.sh --test     + what tests/run.sh needs
#   install-deps.sh --bench    + what tests/bench/run.sh needs
set -euo pipefail

runtime=(gcc make cmake pkg-config librdkafka-dev libcurl4-openssl-dev libjansson-dev
         libyaml-dev libhiredis-dev libuv1-dev libmicrohttpd-dev libssl-dev
         redis-server redis-tools kcat python3 ca-certificates)
# prometheus brings promtool, which checks the alert rules and the dashboard's queries.
testing=(check python3-jsonschema python3-yaml clang-format shellcheck yamllint clang
         libclang-rt-14-dev prometheus)
bench=(wrk gnuplot-nox valgrind)

wanted=("${runtime[@]}")
for arg in "$@"; do
    case "$arg" in
    --test) wanted+=("${testing[@]}") ;;
    --bench) wanted+=("${testing[@]}" "${bench[@]}") ;;
    -h | --help)
        sed -n '2,6p' "$0"
        exit 0
        ;;
    *)
        echo "install-deps.sh: unknown option $arg" >&2
        exit 2
        ;;
    esac
done

missing=()
for pkg in "${wanted[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    [ "$status" = installed ] || missing+=("$pkg")
done
[ ${#missing[@]} -eq 0 ] && exit 0

sudo=()
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || {
        echo "install-deps.sh: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    }
    sudo=(sudo)
fi
echo "install-deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# RUNLEVEL=1 keeps invoke-rc.d from starting redis-server as a system service:
# the project starts its own servers on free ports and stops them by PID.
"${sudo[@]}" env RUNLEVEL=1 apt-get update -qq >/dev/null
"${sudo[@]}" env RUNLEVEL=1 DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
