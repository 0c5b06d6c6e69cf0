#!/usr/bin/env bash
# The broker's instructions per fan-out delivery, counted by callgrind: a figure this shared,
# noisy machine cannot move (docs/PERFORMANCE.md). Not a test, and not a speed: it says whether a
# change added work to the delivery path, where deliveries/s on 2 shared vCPUs swing by tens of
# percent from run to run.
#
#   bench/fanout_instructions.sh BROKER_BIN BENCH_CLIENT [BROKER_BIN...]
#
# For each broker binary, twice (DURATION seconds, then twice as long): start it under
# `valgrind --tool=callgrind` on a free loopback port, run BENCH_CLIENT's fanout scenario at a
# paced rate (1 publisher, SUBSCRIBERS subscribers, RATE messages/s: at a low rate each message is
# handled in its own loop turn, so the count does not depend on how the machine batches them),
# and stop the broker. The difference between the two runs' instructions (Ir, whole process),
# divided by the difference in deliveries, is the cost of one delivery with start-up and
# connection set-up taken out. One table row per binary. Environment: SUBSCRIBERS [200],
# RATE [50], WARMUP [1], DURATION [8], SIZE [100], BROKER_ARGS [none] (flag words for every
# broker, e.g. "--set compression.enabled=off"), CLIENT_ARGS [none] (flag words for the
# generator, e.g. "--deflate --body json").
set -euo pipefail

[ $# -ge 2 ] || { sed -n '7p' "$0" | sed 's/^# */usage: /' >&2; exit 2; }
client=$2
bins=("$1" "${@:3}")
subscribers=${SUBSCRIBERS:-200}
rate=${RATE:-50}
warmup=${WARMUP:-1}
duration=${DURATION:-8}
size=${SIZE:-100}
read -r -a broker_args <<<"${BROKER_ARGS:-}"
read -r -a client_args <<<"${CLIENT_ARGS:-}"

work=$(mktemp -d)
broker_pid=
cleanup() {
    [ -n "$broker_pid" ] && kill -KILL "$broker_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# Waits (at most 60 s: valgrind starts slowly) for the "listening ws HOST:PORT" line.
wait_port() {
    local i
    for i in $(seq 600); do
        if grep -q '^listening ws ' "$1"; then
            sed -n 's/^listening ws 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$1" | head -n 1
            return 0
        fi
        kill -0 "$broker_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "broker did not start: $(tail -n 3 "$1")" >&2
    return 1
}

measure() { # measure BIN SECONDS: prints "deliveries Ir"
    local bin=$1 seconds=$2 log=$work/broker.log out=$work/callgrind.out
    valgrind --tool=callgrind --callgrind-out-file="$out" "$bin" --threads "${STOMPWS_THREADS:-1}" --ws 127.0.0.1:0 --tcp off \
        --log-level warn "${broker_args[@]}" >"$log" 2>&1 &
    broker_pid=$!
    local port
    port=$(wait_port "$log")
    local json
    json=$("$client" --url "ws://127.0.0.1:$port/ws" --scenario fanout --publishers 1 \
        --subscribers "$subscribers" --size "$size" --rate "$rate" --warmup "$warmup" \
        --duration "$seconds" --drain 5 --setup-timeout 60 --json "${client_args[@]}")
    kill -TERM "$broker_pid"
    local i
    for i in $(seq 300); do kill -0 "$broker_pid" 2>/dev/null || break; sleep 0.1; done
    wait "$broker_pid" 2>/dev/null || true
    broker_pid=
    local deliveries ir
    deliveries=$(python3 -c 'import json,sys; j=json.loads(sys.argv[1]); print(j["received"]+j["received_outside_window"])' "$json")
    ir=$(sed -n 's/^summary: *\([0-9]*\)$/\1/p' "$out")
    echo "$deliveries $ir"
}

echo "| broker | deliveries (short, long run) | Ir (short, long run) | Ir per delivery |"
echo "|---|---:|---:|---:|"
for bin in "${bins[@]}"; do
    read -r d1 ir1 < <(measure "$bin" "$duration")
    read -r d2 ir2 < <(measure "$bin" "$((duration * 2))")
    awk -v b="$bin" -v d1="$d1" -v d2="$d2" -v i1="$ir1" -v i2="$ir2" \
        'BEGIN { printf "| `%s` | %d, %d | %d, %d | %.1f |\n", b, d1, d2, i1, i2, (i2 - i1) / (d2 - d1) }'
done
