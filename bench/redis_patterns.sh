#!/usr/bin/env bash
# What PSUBSCRIBE costs every PUBLISH on one Redis (docs/CLUSTER.md, "What wildcards cost").
#
# For each count N, on a fresh redis-server (loopback, free port, no persistence): one
# connection (a small Python subscriber) PSUBSCRIBEs N patterns shaped like the globs stompws
# makes for per-user wildcard feeds ("stompws:/topic/user.<i>.*"; none matches the published
# channel), and redis-benchmark measures PUBLISH to "stompws:/topic/prices.ibm" from 50 other
# connections. A second series holds N exact SUBSCRIBEs instead (Redis finds exact subscribers
# with one hash lookup; it tries every pattern, one by one, on every PUBLISH). A last run shows
# what is left once N patterns have come and gone on one server.
#
#   bench/redis_patterns.sh [requests] [pipeline]      defaults: 200000 requests, pipeline 16
#
# Prints one line per run: kind, N, PUBLISH/s (redis-benchmark -q). Fewer requests are sent
# when N >= 10,000 (each PUBLISH then walks every pattern), so each run takes seconds.
set -euo pipefail

requests=${1:-200000}
pipeline=${2:-16}
counts=(0 100 1000 10000 100000)

dir=$(mktemp -d)
server=""
subscriber=""
port=""
cleanup() {
    if [ -n "$subscriber" ]; then kill "$subscriber" 2>/dev/null || true; fi
    if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi
    wait 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT

cli() { redis-cli -p "$port" "$@"; }

start_server() {
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$dir" \
        --loglevel warning >/dev/null &
    server=$!
    for _ in $(seq 100); do cli ping >/dev/null 2>&1 && return 0; sleep 0.05; done
    echo "redis-server did not start" >&2
    exit 1
}

stop_server() {
    kill "$server"
    wait "$server" 2>/dev/null || true
    server=""
}

# A subscriber that holds N subscriptions on one connection and reads (and drops) whatever
# arrives. Prints "ready" once Redis confirmed all N. Python with a raw socket: 100,000 names do
# not fit on a redis-cli command line.
subscriber_py='
import socket, sys
port, kind, n = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
fmt = "stompws:/topic/user.%d.*" if kind == "psubscribe" else "stompws:/topic/user.%d"
s = socket.create_connection(("127.0.0.1", port))
for start in range(1, n + 1, 1000):
    names = [(fmt % i).encode() for i in range(start, min(n, start + 999) + 1)]
    cmd = [kind.upper().encode()] + names
    s.sendall(b"*%d\r\n" % len(cmd) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in cmd))
want = (":%d\r\n" % n).encode()  # the count in the last confirmation
buf = b""
while not buf.endswith(want):
    buf = (buf + s.recv(1 << 20))[-64:]
print("ready", flush=True)
while s.recv(1 << 20):
    pass
'

subscribe() { # subscribe KIND N: starts the subscriber and waits until Redis confirmed all
    local kind=$1 n=$2 ready
    coproc SUB { exec python3 -c "$subscriber_py" "$port" "$kind" "$n"; }
    subscriber=$SUB_PID
    read -r -t 120 ready <&"${SUB[0]}"
    [ "$ready" = ready ] || { echo "subscriber did not get ready" >&2; exit 1; }
}

unsubscribe() { # unsubscribe: drops the subscriber's connection, waits until Redis forgot it
    kill "$subscriber"
    wait "$subscriber" 2>/dev/null || true
    subscriber=""
    until [ "$(cli PUBSUB NUMPAT)" = 0 ] &&
        [ "$(cli PUBSUB NUMSUB stompws:/topic/user.1 | tail -n 1)" = 0 ]; do
        sleep 0.1
    done
}

publish_rate() { # publish_rate REQUESTS: PUBLISH/s as redis-benchmark reports it
    redis-benchmark -p "$port" -q -n "$1" -c 50 -P "$pipeline" \
        PUBLISH stompws:/topic/prices.ibm 'IBM 142.10' | tr '\r' '\n' |
        grep -o '[0-9.]* requests per second' | tail -n 1 | cut -d' ' -f1
}

# Fewer requests where each PUBLISH walks many patterns.
requests_for() { # requests_for KIND N
    local r=$requests
    if [ "$1" = psubscribe ] && [ "$2" -ge 10000 ]; then r=$((requests / 10)); fi
    if [ "$1" = psubscribe ] && [ "$2" -ge 100000 ]; then r=$((requests / 100)); fi
    echo "$r"
}

run() { # run KIND N
    local kind=$1 n=$2
    start_server
    if [ "$n" -gt 0 ]; then subscribe "$kind" "$n"; fi
    printf '%-10s %7d  %12s PUBLISH/s\n' "$kind" "$n" "$(publish_rate "$(requests_for "$kind" "$n")")"
    if [ "$n" -gt 0 ]; then unsubscribe; fi
    stop_server
}

echo "redis $(redis-server --version | grep -o 'v=[^ ]*'), pipeline $pipeline, 50 clients"
for n in "${counts[@]}"; do run psubscribe "$n"; done
for n in "${counts[@]}"; do run subscribe "$n"; done

# Redis 7.0 keeps the pattern table at its largest size after the patterns are gone, and
# PUBLISH walks the (now empty) table: the cost stays until the server restarts.
start_server
subscribe psubscribe 100000
unsubscribe
printf '%-10s %7d  %12s PUBLISH/s  (after 100000 patterns came and went)\n' psubscribe 0 \
    "$(publish_rate "$requests")"
stop_server
