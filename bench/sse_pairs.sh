#!/usr/bin/env bash
# SSE against WebSocket fan-out for two broker binaries, in one run (docs/PERFORMANCE.md,
# "Server-Sent Events fan-out"). Not a test.
#
#   bench/sse_pairs.sh BEFORE_BIN AFTER_BIN BENCH_BIN [ROUNDS]
#
# Each round (default 3) runs, for BEFORE then AFTER, a fresh broker (--threads 1, WebSocket and
# TCP on free loopback ports) and against it bench/sse_fanout.py twice: 1,000 WebSocket readers,
# then 1,000 GET /sse readers, each fed by the TCP flood publisher. Prints one line per run:
# round, binary, transport, then sse_fanout.py's summary line (deliveries/s from the broker's
# stompws_messages_out_total).
set -u
if [ $# -lt 3 ]; then
    sed -n '2,12p' "$0"
    exit 2
fi
before=$1 after=$2 bench=$3 rounds=${4:-3}
here=$(cd "$(dirname "$0")" && pwd)
ulimit -n 8192
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
for r in $(seq 1 "$rounds"); do
    for which in before after; do
        bin=$before
        [ "$which" = after ] && bin=$after
        ws=$(free_port) tcp=$(free_port)
        "$bin" --threads 1 --log-level warn --ws "127.0.0.1:$ws" --tcp "127.0.0.1:$tcp" &
        pid=$!
        trap 'kill $pid 2>/dev/null' EXIT
        sleep 0.5
        for t in ws sse; do
            line=$(timeout 120 python3 "$here/sse_fanout.py" --bench "$bench" --port "$ws" \
                --publisher flood --tcp-port "$tcp" --transport "$t" --readers 1000 --procs 2 2>&1 |
                grep -m1 'deliveries')
            echo "$r $which $t: $line"
        done
        kill "$pid"
        wait "$pid" 2>/dev/null
    done
done
