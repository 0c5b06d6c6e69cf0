#!/usr/bin/env bash
# The README's two quick-start commands on a fresh Debian 12 machine:
#   ./quickstart.sh run [stompws flags...]   install what is missing, build, run the broker
#                                            (with the history policies of examples/)
#   ./quickstart.sh test [--sanitize]        install what is missing, build, run every test
set -euo pipefail
cd "$(dirname "$0")"

packages=(gcc meson ninja-build pkg-config libevent-dev libssl-dev libhiredis-dev libinih-dev libjansson-dev zlib1g-dev check
          redis-server redis-sentinel python3 python3-stomp openssl
          iproute2   # ip netns + tc netem: the slow-link case of tests/integration/cluster_faults.test.mjs
          chromium curl)  # the browser tests of examples/ (chromium via playwright-core; curl in notify.sh)

install_missing() {
    local missing=()
    for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed' || missing+=("$p")
    done
    # Node.js runs the @stomp/stompjs integration tests; any recent one will do.
    command -v node >/dev/null || missing+=(nodejs)
    command -v npm >/dev/null || missing+=(npm)
    [ ${#missing[@]} -eq 0 ] && return 0
    local sudo=""
    [ "$(id -u)" -ne 0 ] && sudo="sudo"
    echo "installing: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
}

build() {
    local dir=$1; shift
    [ -f "$dir/build.ninja" ] || meson setup "$dir" "$@" >/dev/null
    ninja -C "$dir" >&2
}

# `run` adds the history policies the examples rely on (docs/HISTORY.md): the dashboard's last
# price per symbol, and the notification feed's last 100 per user for an hour, so that a page
# resumes after a reconnect. They go after the user's own flags: the first matching pattern
# wins, so a --history given by the user takes precedence. None with --config (the file says
# what it wants) or --redis (every node of a cluster must be given the same policies: the
# user's to choose).
wants_example_history() {
    local arg
    for arg in "$@"; do
        case "$arg" in
        --config | --config=* | --redis | --redis=*) return 1 ;;
        esac
    done
    return 0
}

cmd=${1:-}
shift || true
case "$cmd" in
run)
    install_missing
    build build
    history=()
    wants_example_history "$@" && history=(--history '/topic/stocks.*=1' --history '/topic/notifications.*=100/1h')
    exec build/server/stompws "$@" "${history[@]}"
    ;;
test)
    install_missing
    if [ "${1:-}" = "--sanitize" ]; then
        build build-san -Db_sanitize=address,undefined -Db_lundef=false
        exec tests/run build-san
    fi
    build build
    exec tests/run build
    ;;
*)
    echo "usage: $0 run [stompws flags...] | $0 test [--sanitize]" >&2
    exit 2
    ;;
esac
