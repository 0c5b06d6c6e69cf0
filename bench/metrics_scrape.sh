#!/usr/bin/env bash
# Snapshot of /metrics after a fixed scenario, to check that a refactor keeps the /metrics output
# byte-for-byte identical: run it against the old and the new binary, then `diff -r` the OUTDIRs.
#
#   bench/metrics_scrape.sh BROKER_BIN OUTDIR      (PYTHON=/usr/bin/python3 skips a slow pyenv shim)
#
# Starts BROKER_BIN four times, loopback only, port 0: threads1 and threads2 (--threads 1|2), then
# redis-threads1 and redis-threads2 (the same with --redis on a redis-server of our own, on a free
# port, FLUSHALL before each mode). Each time one STOMP/TCP client (raw socket, lockstep: every
# frame waits for its answer, so message ids and counters do not depend on timing) connects,
# subscribes to a topic and a /queue/ (client-individual), sends 3 messages to each, receives and
# ACKs them, unsubscribes and disconnects; then one GET /healthz. 0.6 s later (other loops publish
# their figures every 250 ms) GET /metrics on the ws port goes to OUTDIR/MODE.prom, with the values
# that depend on timing replaced by <v>: the event-loop lag gauge, the lag histogram (buckets, sum,
# count: ticks accrue with time) and the Redis probe round trip. All else, bytes included, is
# deterministic. Needs python3, redis-server, redis-cli.
set -euo pipefail

[ $# -eq 2 ] || { echo "usage: $0 BROKER_BIN OUTDIR" >&2; exit 2; }
broker=$(readlink -f "$1")
out=$2
[ -x "$broker" ] || { echo "$broker: not executable" >&2; exit 2; }
mkdir -p "$out"
python=${PYTHON:-python3}
tmp=$(mktemp -d)
redis_pid=""
broker_pid=""
stop() { # stop PID: SIGTERM, at most 5 s, then SIGKILL
    kill -TERM "$1" 2>/dev/null || true
    for _ in $(seq 50); do
        kill -0 "$1" 2>/dev/null || { wait "$1" 2>/dev/null || true; return 0; }
        sleep 0.1
    done
    kill -KILL "$1" 2>/dev/null || true
    wait "$1" 2>/dev/null || true
}
cleanup() {
    if [ -n "$broker_pid" ]; then stop "$broker_pid"; fi
    if [ -n "$redis_pid" ]; then stop "$redis_pid"; fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

cat >"$tmp/client.py" <<'EOF'
import socket, sys, time
def frames(sock):
    buf = b""
    while True:
        while b"\0" not in buf:
            data = sock.recv(65536)
            if not data:
                sys.exit("broker closed the connection")
            buf += data
        frame, buf = buf.split(b"\0", 1)
        frame = frame.lstrip(b"\r\n")  # heart-beats
        if frame:
            head = frame.partition(b"\n\n")[0].decode().split("\n")
            yield head[0], dict(line.split(":", 1) for line in head[1:])
def send(sock, cmd, body=b"", **headers):
    lines = "".join("%s:%s\n" % (k.replace("_", "-"), v) for k, v in headers.items())
    sock.sendall(("%s\n%s\n" % (cmd, lines)).encode() + body + b"\0")
def until(*wanted):  # reads frames until each (command, header, value) came, in any order
    wanted, got = list(wanted), []
    while wanted:
        cmd, h = next(rx)
        match = [w for w in wanted if w[0] == cmd and h.get(w[1]) == w[2]]
        if not match:
            sys.exit("unexpected frame %s %r" % (cmd, h))
        wanted.remove(match[0])
        got.append(h)
    return got
def http_get(path):
    s = socket.create_connection(("127.0.0.1", ws), timeout=10)
    s.sendall(b"GET %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n" % path.encode())
    data = b"".join(iter(lambda: s.recv(65536), b""))
    head, _, body = data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 "):
        sys.exit("GET %s: %r" % (path, head[:100]))
    return body
tcp, ws = int(sys.argv[1]), int(sys.argv[2])
s = socket.create_connection(("127.0.0.1", tcp), timeout=10)
rx = frames(s)
send(s, "CONNECT", accept_version="1.2", host="localhost", heart_beat="0,0")
until(("CONNECTED", "version", "1.2"))
topic, queue = "/topic/metrics.prices", "/queue/metrics.jobs"
send(s, "SUBSCRIBE", id="t", destination=topic, receipt="sub-t")
until(("RECEIPT", "receipt-id", "sub-t"))
send(s, "SUBSCRIBE", id="q", destination=queue, ack="client-individual", receipt="sub-q")
until(("RECEIPT", "receipt-id", "sub-q"))
for i in range(3):
    body = b"message %d" % i
    send(s, "SEND", body, destination=topic, content_type="text/plain", receipt="t%d" % i)
    until(("MESSAGE", "subscription", "t"), ("RECEIPT", "receipt-id", "t%d" % i))
    send(s, "SEND", body, destination=queue, content_type="text/plain", receipt="q%d" % i)
    got = until(("MESSAGE", "subscription", "q"), ("RECEIPT", "receipt-id", "q%d" % i))
    send(s, "ACK", id=[h for h in got if "ack" in h][0]["ack"], receipt="a%d" % i)
    until(("RECEIPT", "receipt-id", "a%d" % i))
for sub in ("t", "q"):
    send(s, "UNSUBSCRIBE", id=sub, receipt="unsub-" + sub)
    until(("RECEIPT", "receipt-id", "unsub-" + sub))
send(s, "DISCONNECT", receipt="bye")
until(("RECEIPT", "receipt-id", "bye"))
s.close()
if http_get("/healthz") != b"ok\n":
    sys.exit("/healthz is not ok")
time.sleep(0.6)  # the other loops' figures are up to 250 ms old
sys.stdout.buffer.write(http_get("/metrics"))
EOF

wait_for() { # wait_for SECONDS COMMAND...: until COMMAND succeeds, polling every 50 ms
    local n=$(($1 * 20)); shift
    for _ in $(seq "$n"); do "$@" && return 0; sleep 0.05; done
    echo "timed out waiting for: $*" >&2
    return 1
}
count_is() { # count_is N PATTERN LOG: the broker runs and LOG has N lines matching PATTERN
    kill -0 "$broker_pid" 2>/dev/null || { cat "$3" >&2; echo "the broker exited" >&2; exit 1; }
    [ "$(grep -sc -- "$2" "$3" || true)" -ge "$1" ]
}
timing='stompws_event_loop_lag_seconds|stompws_event_loop_tick_lag_seconds_(bucket\{[^}]*\}|sum|count)'
timing="$timing|stompws_cluster_redis_latency_seconds"

rport=$("$python" -I -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
(cd "$tmp" && exec redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$tmp" --loglevel warning >"$tmp/redis.log" 2>&1) &
redis_pid=$!
wait_for 10 redis-cli -p "$rport" ping >/dev/null 2>&1

run_mode() { # run_mode NAME THREADS REDIS(0|1)
    local name=$1 threads=$2 redis=$3 log="$tmp/$1.log" args ws tcp
    args=(--ws 127.0.0.1:0 --tcp 127.0.0.1:0 --threads "$threads" --log-level debug)
    if [ "$redis" = 1 ]; then
        timeout 5 redis-cli -p "$rport" flushall >/dev/null
        args+=(--redis "redis://127.0.0.1:$rport" --node-id metrics)
    fi
    : >"$log"
    (cd "$tmp" && exec "$broker" "${args[@]}") >>"$log" 2>&1 &
    broker_pid=$!
    wait_for 10 count_is 1 'stompws [^ ]* ready' "$log"
    if [ "$redis" = 1 ]; then # every loop's four Redis links up and its first probe back
        wait_for 10 count_is $((4 * threads)) 'cluster: redis .* link up' "$log"
        wait_for 10 count_is "$threads" 'subscribe link verified by probe' "$log"
    fi
    ws=$(sed -n 's/^listening ws .*:\([0-9]*\)$/\1/p' "$log" | head -n 1)
    tcp=$(sed -n 's/^listening tcp .*:\([0-9]*\)$/\1/p' "$log" | head -n 1)
    timeout 30 "$python" -I "$tmp/client.py" "$tcp" "$ws" >"$tmp/$name.raw" ||
        { tail -n 20 "$log" >&2; echo "$name: the scenario failed" >&2; exit 1; }
    sed -E "s/^($timing) .*\$/\\1 <v>/" "$tmp/$name.raw" >"$out/$name.prom"
    stop "$broker_pid"
    broker_pid=""
    if grep -E ' (warn|error) ' "$log" >&2; then echo "$name: the broker logged the above" >&2; fi
    echo "$name: $(grep -vc '^#' "$out/$name.prom") samples -> $out/$name.prom"
}

run_mode threads1 1 0
run_mode threads2 2 0
run_mode redis-threads1 1 1
run_mode redis-threads2 2 1
