#!/usr/bin/env bash
# How cost grows with work (docs/PERFORMANCE.md, "Sweeps"). Not a test.
#
#   bench/sweep.sh [BUILDDIR [OUTDIR]]      default build and docs
#   PLOT_ONLY=1 bench/sweep.sh ...          redraw the PNGs from the .dat files
#   ONLY=fanout|idle bench/sweep.sh ...     one of the two sweeps and its plot
#
# 1. Fan-out to S = 10, 100, 1,000, 10,000 WebSocket subscribers of one topic (100-byte bodies):
#    deliveries/s with a saturating publisher, and p99 latency at 10 msgs/s.
# 2. Broker RSS as N = 1,000 .. 100,000 idle subscribed WebSockets are held, each then getting
#    one broadcast (bench/idle_rss.sh): up to 19,000 on one node, beyond that on six nodes of one
#    cluster (this machine allows 20,000 open files per process).
# Writes OUTDIR/sweep-fanout.dat and OUTDIR/sweep-idle.dat (whitespace-separated columns, a
# comment line naming them) and, with gnuplot, OUTDIR/sweep-fanout.png and OUTDIR/sweep-idle.png.
set -euo pipefail
cd "$(dirname "$0")/.." || exit 2
build=${1:-build}
out=${2:-docs}
broker_bin=$build/server/stompws
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
    "$broker_bin" --threads "${STOMPWS_THREADS:-1}" --ws 127.0.0.1:0 --tcp off --log-level warn \
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

measure_fanout() {
echo "# subscribers deliveries_per_s_saturating p99_ms_at_10_msgs_per_s" >"$out/sweep-fanout.dat"
for s in 10 100 1000 10000; do
    start_broker
    sat=$(fanout "$s" 0 | json deliveries_per_s)
    p99=$(fanout "$s" 10 | json latency_ms.p99)
    stop_broker
    echo "$s $sat $p99" | tee -a "$out/sweep-fanout.dat"
done
}

measure_idle() {
echo "# connections nodes broker_rss_mib_sum broker_rss_kib_per_connection" \
    "kernel_slab_kib_per_connection_both_ends broadcast_received broadcast_last_ms" >"$out/sweep-idle.dat"
for point in 1000:1 5000:1 10000:1 19000:1 40000:6 70000:6 100000:6; do
    n=${point%:*}
    summary=$(bench/idle_rss.sh --nodes "${point#*:}" "$broker_bin" "$bench_bin" "$n" 5 | grep '^summary ')
    echo "$summary" | awk -v RS=' ' -F= '{ v[$1] = $2 } END {
        printf "%d %d %.1f %.2f %.2f %d %.0f\n", v["connections"], v["nodes"], v["rss_kib"] / 1024,
            (v["rss_kib"] - v["rss_before_kib"]) / v["connections"], v["slab_bytes_per_connection"] / 1024,
            v["received"], v["broadcast_latency_max_ms"] }' | tee -a "$out/sweep-idle.dat"
done
}
only=${ONLY:-both}
case "$only" in both | fanout | idle) ;; *) echo "sweep.sh: ONLY=$only: fanout or idle" >&2; exit 2 ;; esac
if [ "${PLOT_ONLY:-0}" != 1 ]; then
    [ "$only" = idle ] || measure_fanout
    [ "$only" = fanout ] || measure_idle
fi

command -v gnuplot >/dev/null || { echo "sweep.sh: no gnuplot: data files only" >&2; exit 0; }
plot_fanout() {
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
EOF
echo "wrote $out/sweep-fanout.png"
}
plot_idle() {
gnuplot <<EOF
set terminal pngcairo size 1200,420 font ",10"
set output "$out/sweep-idle.png"
set multiplot layout 1,3 title "idle subscribed WebSockets: 1 node up to 19,000, then 6 nodes + Redis (bench/sweep.sh)"
set grid
set xlabel "idle connections held (all nodes)"
set format x "%.0s%c"
set logscale x
set xrange [800:125000]
set ylabel "KiB per connection"
set yrange [0:*]
set key bottom right
plot "$out/sweep-idle.dat" using 1:4 with linespoints pt 7 title "broker RSS growth", \
     "" using 1:5 with linespoints pt 5 title "kernel socket slab, both ends"
unset logscale
set xrange [0:105000]
set xtics 20000
set key top left
set ylabel "broker RSS, all nodes (MiB)"
plot "$out/sweep-idle.dat" using 1:(\$2 == 1 ? \$3 : 1/0) with linespoints pt 7 title "1 node", \
     "" using 1:(\$2 > 1 ? \$3 : 1/0) with linespoints pt 5 title "6 nodes"
set ylabel "one broadcast: the last delivery after (s)"
plot "$out/sweep-idle.dat" using 1:(\$2 == 1 ? \$7 / 1000 : 1/0) with linespoints pt 7 title "1 node", \
     "" using 1:(\$2 > 1 ? \$7 / 1000 : 1/0) with linespoints pt 5 title "6 nodes"
unset multiplot
EOF
echo "wrote $out/sweep-idle.png"
}
[ "$only" = idle ] || plot_fanout
[ "$only" = fanout ] || plot_idle
