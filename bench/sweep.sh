#!/usr/bin/env bash
# How cost grows with work (docs/PERFORMANCE.md, "Sweeps"). Not a test.
#
#   bench/sweep.sh [BUILDDIR [OUTDIR]]      default build and docs
#   PLOT_ONLY=1 bench/sweep.sh ...          redraw the PNGs from the .dat files
#
# 1. Fan-out to S = 10, 100, 1,000, 10,000 WebSocket subscribers of one topic (100-byte bodies):
#    deliveries/s with a saturating publisher, and p99 latency at 10 msgs/s.
# 2. Broker RSS per idle subscribed WebSocket as N = 1,000 .. 18,000 connections are held (this
#    machine allows 20,000 open files per process, the broker's listener and logs included).
# Writes OUTDIR/sweep-fanout.dat and OUTDIR/sweep-idle.dat (whitespace-separated columns, a
# comment line naming them) and, with gnuplot, OUTDIR/sweep-fanout.png and OUTDIR/sweep-idle.png.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 2
build=${1:-build}
out=${2:-docs}
broker_bin=$build/broker/stompws
bench_bin=$build/bench/stompws-bench
if [ "${PLOT_ONLY:-0}" != 1 ] && { [ ! -x "$broker_bin" ] || [ ! -x "$bench_bin" ]; }; then
    echo "sweep.sh: build $build first" >&2
    exit 2
fi

tmp=$(mktemp -d)
broker_pid=
cleanup() {
    [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null && wait "$broker_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT

start_broker() {
    "$broker_bin" --ws 127.0.0.1:0 --tcp off --log-level warn \
        --set limits.max_connections_per_address=100000 --set limits.connection_rate=0 \
        --set limits.publish_rate=0 >"$tmp/broker.out" 2>"$tmp/broker.err" &
    broker_pid=$!
    for _ in $(seq 100); do
        port=$(sed -n 's/^listening ws 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/broker.out")
        [ -n "$port" ] && return 0
        sleep 0.05
    done
    echo "sweep.sh: the broker did not start" >&2
    cat "$tmp/broker.err" >&2
    exit 1
}

stop_broker() {
    kill "$broker_pid" 2>/dev/null
    wait "$broker_pid" 2>/dev/null
    true
    broker_pid=
}

# json FIELD < the generator's JSON line: one number from it.
json() {
    python3 -c 'import json,sys; d=json.loads(sys.stdin.read().strip().splitlines()[-1]); v=d
for k in sys.argv[1].split("."): v=v[k]
print(v)' "$1"
}

fanout() { # fanout SUBSCRIBERS RATE
    "$bench_bin" --url "ws://127.0.0.1:$port/ws" --scenario fanout --publishers 1 \
        --subscribers "$1" --size 100 --rate "$2" --warmup 2 --duration 5 --json 2>/dev/null
}

measure() {
echo "# subscribers deliveries_per_s_saturating p99_ms_at_10_msgs_per_s" >"$out/sweep-fanout.dat"
for s in 10 100 1000 10000; do
    start_broker
    sat=$(fanout "$s" 0 | json deliveries_per_s)
    p99=$(fanout "$s" 10 | json latency_ms.p99)
    stop_broker
    echo "$s $sat $p99" | tee -a "$out/sweep-fanout.dat"
done

echo "# connections broker_rss_kib_per_connection" >"$out/sweep-idle.dat"
for n in 1000 5000 10000 18000; do
    per=$(bench/idle_rss.sh "$broker_bin" "$bench_bin" "$n" 2 |
        sed -n 's/^broker RSS growth: .* in all, \([0-9.]*\) KiB .*/\1/p')
    echo "$n $per" | tee -a "$out/sweep-idle.dat"
done
}
[ "${PLOT_ONLY:-0}" = 1 ] || measure

command -v gnuplot >/dev/null || { echo "sweep.sh: no gnuplot: data files only" >&2; exit 0; }
gnuplot <<EOF
set terminal pngcairo size 900,420 font ",10"
set output "$out/sweep-fanout.png"
set multiplot layout 1,2 title "stompws fan-out, 1 publisher, 100-byte bodies (bench/sweep.sh)"
set logscale x
set xlabel "WebSocket subscribers"
set grid
set ylabel "deliveries/s"
set format y "%.1s%c"
plot "$out/sweep-fanout.dat" using 1:2 with linespoints title "saturating publisher"
set ylabel "p99 latency (ms, log scale)"
set format y "%g"
set logscale y
plot "$out/sweep-fanout.dat" using 1:3 with linespoints title "10 msgs/s"
unset multiplot
set output "$out/sweep-idle.png"
unset logscale
set format y "%g"
set title "stompws broker memory per idle subscribed WebSocket (bench/sweep.sh)"
set xlabel "idle connections held"
set ylabel "RSS growth per connection (KiB)"
set yrange [0:*]
plot "$out/sweep-idle.dat" using 1:2 with linespoints title "broker RSS / connection"
EOF
echo "wrote $out/sweep-fanout.png $out/sweep-idle.png"
