#!/usr/bin/env bash
# What one /metrics scrape costs the broker with few and with many open connections
# (docs/PERFORMANCE.md). Not a test.
#
#   bench/metrics_cost.sh BENCH_CLIENT BROKER_BIN [BROKER_BIN...]
#
# For each broker binary and each count in COUNTS (default "100 10000"): start the broker on a free
# loopback port (admission limits lifted), hold that many idle subscribed WebSocket connections
# with BENCH_CLIENT's idle scenario, and once they are all up, scrape /metrics SCRAPES times
# (default 2000) one after the other from one Python client (curl would spend its time starting). Prints one table row per binary and count: the broker's CPU
# (utime + stime from /proc/PID/stat) per scrape over those scrapes, and the wall time per scrape
# seen by the client. The idle connections send nothing meanwhile, so the CPU is the scrapes'.
set -euo pipefail

[ $# -ge 2 ] || { sed -n '5p' "$0" | sed 's/^# */usage: /' >&2; exit 2; }
client=$1
shift
counts=${COUNTS:-100 10000}
scrapes=${SCRAPES:-2000}
ticks=$(getconf CLK_TCK)

work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill -KILL "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$1/stat"; }

# Waits at most $3 seconds for file $1 to hold a line matching $2.
wait_line() {
    local i
    for i in $(seq $(($3 * 10))); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    echo "timed out waiting for '$2' in $1" >&2
    return 1
}

measure() { # measure BIN COUNT: prints "cpu_us_per_scrape wall_us_per_scrape"
    local bin=$1 n=$2
    "$bin" --threads "${STOMPWS_THREADS:-1}" --ws 127.0.0.1:0 --tcp off --log-level warn --set limits.connection_rate=0 \
        --set limits.max_connections_per_address=100000 >"$work/broker.out" 2>&1 &
    local broker=$!
    pids+=("$broker")
    wait_line "$work/broker.out" '^listening ws ' 10
    local port
    port=$(sed -n 's/^listening ws 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/broker.out" | head -n 1)
    "$client" --url "ws://127.0.0.1:$port/ws" --scenario idle --connections "$n" --procs 2 \
        --duration 600 --setup-timeout 120 >"$work/client.out" 2>&1 &
    local gen=$!
    pids+=("$gen")
    local i up=0
    for i in $(seq 1200); do # up to 120 s for every connection to be subscribed
        up=$(curl -s "http://127.0.0.1:$port/metrics" |
            awk '/^stompws_subscriptions / { print $2 }')
        [ "${up:-0}" -ge "$n" ] && break
        sleep 0.1
    done
    [ "${up:-0}" -ge "$n" ] || { echo "only ${up:-0} of $n connections came up" >&2; return 1; }
    local cpu0 t0 cpu1 t1
    cpu0=$(cpu_ticks "$broker")
    t0=$(date +%s%N)
    python3 - "$port" "$scrapes" <<'PY'
import http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
for _ in range(n):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    r = c.getresponse()
    assert r.status == 200 and b"stompws_connections" in r.read()
    c.close()
PY
    t1=$(date +%s%N)
    cpu1=$(cpu_ticks "$broker")
    kill -TERM "$gen" "$broker" 2>/dev/null || true
    wait "$gen" "$broker" 2>/dev/null || true
    pids=()
    awk -v c=$((cpu1 - cpu0)) -v hz="$ticks" -v w=$((t1 - t0)) -v s="$scrapes" \
        'BEGIN { printf "%.1f %.1f\n", c * 1e6 / hz / s, w / 1e3 / s }'
}

echo "| broker | connections | broker CPU per scrape (us) | wall time per scrape (us) |"
echo "|---|---:|---:|---:|"
for bin in "$@"; do
    for n in $counts; do
        read -r cpu wall < <(measure "$bin" "$n")
        echo "| \`$bin\` | $n | $cpu | $wall |"
    done
done
