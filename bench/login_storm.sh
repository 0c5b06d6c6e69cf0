#!/usr/bin/env bash
# Subscribers' latency during a storm of users-file logins (docs/PERFORMANCE.md "Logins off the
# loop"). Not a test.
#
#   bench/login_storm.sh [BROKER_BIN [BENCH_BIN [STORM [SUBSCRIBERS]]]]
#
# Starts the broker with a users file written by `stompws passwd` at its default 210,000
# PBKDF2 iterations and --anonymous on, then runs
#
#   BENCH_BIN --url ws://127.0.0.1:PORT/ws --scenario fanout --publishers 1 \
#       --subscribers SUBSCRIBERS --rate 10 --size 100 --warmup 2 --duration DURATION --json
#
# (anonymous: their CONNECTs cost no hash). Once every subscriber is connected and the warm-up
# has passed, STORM (default 1000) TCP clients send a users-file CONNECT at once (a Python
# client, all sockets opened first, then one CONNECT each as fast as the loop writes) and wait
# for CONNECTED. Prints one JSON line: the subscribers' latency (the generator's p50, p99, max
# over the window), the storm's logins (how many got CONNECTED, time to the first and the last),
# the broker's CPU seconds and its loop-lag figures from /metrics. The generator, the storm
# client, the broker's loop and its hashing workers share this machine's cores.
#
# Environment: DURATION [45] seconds measured (the storm must fit: 1000 hashes of ~70 ms take
# ~35 s on two workers, ~70 s on the loop), WORKERS [unset: the broker's default] for
# --set auth.workers=N (a broker that does not know the key must leave it unset), THREADS [1].
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
broker=${1:-$here/../build/server/stompws}
bench=${2:-$here/../build/bench/stompws-bench}
storm=${3:-1000}
subscribers=${4:-1000}
duration=${DURATION:-45}
threads=${THREADS:-1}

tmp=$(mktemp -d)
broker_pid=
bench_pid=
cleanup() {
    for pid in $bench_pid $broker_pid; do
        kill "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE

# The users file, at the default iteration count (that is the point).
printf 'storm-pw\n' | "$broker" passwd "$tmp/users" storm >/dev/null

extra=()
[ -n "${WORKERS:-}" ] && extra+=(--set "auth.workers=$WORKERS")
"$broker" --threads "$threads" --ws 127.0.0.1:0 --tcp 127.0.0.1:0 --http 127.0.0.1:0 \
    --log-level warn --users "$tmp/users" --anonymous on \
    --set limits.publish_rate=0 --set limits.connection_rate=0 \
    --set limits.max_connections_per_address=100000 --set limits.connect_timeout_ms=600000 \
    "${extra[@]}" >"$tmp/broker.out" 2>"$tmp/broker.err" &
broker_pid=$!
for _ in $(seq 100); do
    ws=$(sed -n 's/^listening ws 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/broker.out")
    tcp=$(sed -n 's/^listening tcp 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/broker.out")
    http=$(sed -n 's/^listening http 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/broker.out")
    [ -n "$ws" ] && [ -n "$tcp" ] && [ -n "$http" ] && break
    sleep 0.1
done
[ -n "${http:-}" ] || { echo "login_storm.sh: the broker did not start:" >&2; cat "$tmp/broker.err" >&2; exit 1; }

tick=$(getconf CLK_TCK)
cpu_s() { awk -v t="$tick" '{ printf "%.2f", ($14 + $15) / t }' "/proc/$1/stat"; }
metric() { # metric NAME: the sum of the samples of NAME on /metrics
    /usr/bin/python3 - "$http" "$1" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10).read().decode()
total = 0.0
for line in body.splitlines():
    if line.startswith(sys.argv[2] + " ") or line.startswith(sys.argv[2] + "{"):
        total += float(line.rsplit(" ", 1)[1])
print(total)
PY
}

b0=$(cpu_s "$broker_pid")
"$bench" --url "ws://127.0.0.1:$ws/ws" --scenario fanout --publishers 1 \
    --subscribers "$subscribers" --rate 10 --size 100 --warmup 2 --duration "$duration" \
    --json >"$tmp/bench.json" 2>"$tmp/bench.err" &
bench_pid=$!

# Every subscriber (and the publisher) in, then the warm-up, then the storm.
for _ in $(seq 600); do
    up=$(metric stompws_connections 2>/dev/null || echo 0)
    [ "${up%.*}" -ge $((subscribers + 1)) ] && break
    sleep 0.1
done
sleep 3
lag0_sum=$(metric stompws_event_loop_tick_lag_seconds_sum)
lag0_count=$(metric stompws_event_loop_tick_lag_seconds_count)

/usr/bin/python3 - "$tcp" "$storm" >"$tmp/storm.json" <<'PY'
import json, selectors, socket, sys, time
port, n = int(sys.argv[1]), int(sys.argv[2])
frame = b"CONNECT\naccept-version:1.2\nhost:x\nlogin:storm\npasscode:storm-pw\n\n\0"
socks = []
for _ in range(n):
    s = socket.create_connection(("127.0.0.1", port))
    s.setblocking(False)
    socks.append(s)
sel = selectors.DefaultSelector()
start = time.monotonic()
for s in socks:
    s.send(frame)
    sel.register(s, selectors.EVENT_READ, bytearray())
done, failed, times = 0, 0, []
deadline = start + 600
while done + failed < n and time.monotonic() < deadline:
    for key, _ in sel.select(timeout=1):
        data = key.fileobj.recv(4096)
        key.data.extend(data)
        if b"CONNECTED" in key.data or b"ERROR" in key.data or not data:
            ok = b"CONNECTED" in key.data
            done += ok
            failed += not ok
            times.append(time.monotonic() - start)
            sel.unregister(key.fileobj)
print(json.dumps({"logins": n, "connected": done, "refused": failed,
                  "first_s": round(min(times), 3) if times else None,
                  "last_s": round(max(times), 3) if times else None}))
for s in socks:
    s.close()
PY
lag1_sum=$(metric stompws_event_loop_tick_lag_seconds_sum)
lag1_count=$(metric stompws_event_loop_tick_lag_seconds_count)
lag_max=$(/usr/bin/python3 - "$http" <<'PY'
import sys, urllib.request
body = urllib.request.urlopen(f"http://127.0.0.1:{sys.argv[1]}/metrics", timeout=10).read().decode()
# The largest bucket bound with ticks past the previous one: an upper bound of the worst lag.
prev, worst = 0.0, 0.0
for line in body.splitlines():
    if line.startswith("stompws_event_loop_tick_lag_seconds_bucket"):
        le = line.split('le="', 1)[1].split('"', 1)[0]
        count = float(line.rsplit(" ", 1)[1])
        if count > prev:
            worst = le
        prev = count
print(worst)
PY
)
wait "$bench_pid" || { echo "login_storm.sh: the generator failed:" >&2; cat "$tmp/bench.err" >&2; exit 1; }
bench_pid=
b1=$(cpu_s "$broker_pid")

/usr/bin/python3 - "$tmp/bench.json" "$tmp/storm.json" "$b0" "$b1" "$lag0_sum" "$lag0_count" \
    "$lag1_sum" "$lag1_count" "$lag_max" "$subscribers" "$threads" "${WORKERS:-default}" <<'PY'
import json, sys
bench = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
storm = json.loads(open(sys.argv[2]).read().strip())
b0, b1, ls0, lc0, ls1, lc1 = map(float, sys.argv[3:9])
lat = bench["latency_ms"]
ticks = lc1 - lc0
print(json.dumps({
    "subscribers": int(sys.argv[10]), "threads": int(sys.argv[11]), "auth_workers": sys.argv[12],
    "rate_per_s": 10,
    "latency_ms": {k: round(lat[k], 1) for k in ("p50", "p99", "p999", "max") if k in lat},
    "received": bench["received"], "expected": bench["expected"],
    "storm": storm,
    "broker_cpu_s": round(b1 - b0, 2),
    "loop_lag_during_storm_ms": {"mean": round(1000 * (ls1 - ls0) / ticks, 1) if ticks else None,
                                 "ticks": int(ticks), "worst_bucket_le_s": sys.argv[9]},
}))
PY
