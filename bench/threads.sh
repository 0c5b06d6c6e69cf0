#!/usr/bin/env bash
# Fan-out with one event loop and with two (`--threads`, docs/PERFORMANCE.md "Threads"). Not a test.
#
#   bench/threads.sh [BROKER_BIN [BENCH_BIN [DURATION_S]]]
#
# For 1 000 and 100 WebSocket subscribers, saturating (`--rate 0`) and at 10 msgs/s, runs
# `stompws-bench --scenario fanout --publishers 1 --procs 2` against a fresh broker with
# `--threads 1` and one with `--threads 2`, alternating, and prints one line per run: deliveries/s,
# p50/p99 (ms), the broker's CPU seconds over the run (utime + stime from /proc/PID/stat, both
# threads) and the generator's own (its children: the --procs workers), and the wall time. The
# generator runs on the same cores as the broker: both lines of CPU say how they were shared.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
broker=${1:-$here/../build/server/stompws}
bench=${2:-$here/../build/bench/stompws-bench}
duration=${3:-10}

tmp=$(mktemp -d)
broker_pid=
cleanup() {
    if [ -n "$broker_pid" ]; then
        kill "$broker_pid" 2>/dev/null || true
        wait "$broker_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE # a signal would skip the EXIT trap and leave the broker running

tick=$(getconf CLK_TCK)
cpu_s() { awk -v t="$tick" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"; }
# CPU of this shell's waited-for children (the generator and its workers), in seconds.
children_s() { awk -v t="$tick" '{ printf "%.2f", ($16 + $17) / t }' "/proc/$$/stat"; }

start_broker() {
    : >"$tmp/broker.out"
    "$broker" --threads "$1" --ws 127.0.0.1:0 --tcp off --log-level warn \
        --set limits.publish_rate=0 --set limits.connection_rate=0 \
        --set limits.max_connections_per_address=100000 \
        >"$tmp/broker.out" 2>"$tmp/broker.err" &
    broker_pid=$!
    port=
    for _ in $(seq 100); do
        port=$(sed -n 's/^listening ws 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/broker.out")
        [ -n "$port" ] && break
        sleep 0.1
    done
    [ -n "$port" ] || { echo "threads.sh: the broker did not start:" >&2; cat "$tmp/broker.err" >&2; exit 1; }
}

stop_broker() {
    kill "$broker_pid"
    wait "$broker_pid" || true
    broker_pid=
}

# run THREADS SUBSCRIBERS RATE
run() {
    start_broker "$1"
    local b0 g0 t0 b1 g1 t1
    b0=$(cpu_s "$broker_pid"); g0=$(children_s); t0=$(date +%s.%N)
    "$bench" --url "ws://127.0.0.1:$port/ws" --scenario fanout --publishers 1 --subscribers "$2" \
        --size 100 --rate "$3" --duration "$duration" --warmup 2 --procs 2 --json >"$tmp/run.json"
    b1=$(cpu_s "$broker_pid"); g1=$(children_s); t1=$(date +%s.%N)
    stop_broker
    /usr/bin/python3 - "$tmp/run.json" "$1" "$2" "$3" "$b0" "$b1" "$g0" "$g1" "$t0" "$t1" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
threads, subs, rate = sys.argv[2:5]
b0, b1, g0, g1, t0, t1 = map(float, sys.argv[5:11])
lat = r.get("latency_ms", r.get("latency", {}))
print(f"threads {threads}  subscribers {subs:>5}  rate {rate:>3}  "
      f"deliveries/s {r['deliveries_per_s']:>10.0f}  p50 {lat.get('p50', float('nan')):>8.1f} ms  "
      f"p99 {lat.get('p99', float('nan')):>8.1f} ms  broker CPU {b1 - b0:6.2f} s  "
      f"generator CPU {g1 - g0:6.2f} s  wall {t1 - t0:5.1f} s")
PY
}

for subs in 1000 100; do
    for threads in 1 2; do
        run "$threads" "$subs" 0
    done
done
for threads in 1 2; do
    run "$threads" 1000 10
done
