#!/usr/bin/env bash
# stompws against RabbitMQ's Web STOMP, one scenario after the other, with the same generator
# (docs/PERFORMANCE.md, "stompws-bench"). Not a test: prints a side-by-side table.
#
#   bench/compare.sh [options]
#     --stompws BIN     broker binary (default build/server/stompws)
#     --bench BIN       generator (default build/bench/stompws-bench)
#     --duration S      measured seconds per run (default 10)
#     --only NAMES      comma-separated scenario names from the list below (default: all)
#     --out DIR         keep each run's output there (default: a temporary directory, removed)
#
# Installs rabbitmq-server with apt-get when it is missing (as root; services are kept from
# starting during the install). Both brokers listen on loopback only, on free ports: stompws with
# its admission limits lifted (limits.publish_rate=0, limits.connection_rate=0), RabbitMQ from a
# temporary directory (RABBITMQ_MNESIA_BASE, RABBITMQ_LOG_BASE, RABBITMQ_CONFIG_FILE) with AMQP,
# STOMP, Web STOMP and Erlang distribution on 127.0.0.1 and its own epmd on 127.0.0.1
# (ERL_EPMD_ADDRESS) and on a free port, so nothing else on the machine is touched. RabbitMQ and
# its epmd are stopped on exit, failures and signals included.
#
# For each run: the generator's JSON line, the broker's CPU seconds over the run
# (/proc/PID/stat utime + stime) and its peak RSS (VmRSS sampled every 0.2 s). The table shows
# both brokers and the ratio stompws / RabbitMQ.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
stompws=$here/../build/server/stompws
bench=$here/../build/bench/stompws-bench
duration=10
only=
out=

while [ $# -gt 0 ]; do
    case "$1" in
    --stompws) stompws=$2; shift 2 ;;
    --bench) bench=$2; shift 2 ;;
    --duration) duration=$2; shift 2 ;;
    --only) only=$2; shift 2 ;;
    --out) out=$2; shift 2 ;;
    *) echo "usage: $0 [--stompws BIN] [--bench BIN] [--duration S] [--only a,b] [--out DIR]" >&2; exit 2 ;;
    esac
done
for f in "$stompws" "$bench"; do
    [ -x "$f" ] || { echo "compare.sh: $f is missing: build first (ninja -C build)" >&2; exit 2; }
done

# name|stompws-bench options (the URL, credentials and --duration are added per broker)
scenarios=(
    "fanout-100-sat|--scenario fanout --publishers 1 --subscribers 100 --size 100 --warmup 2"
    "fanout-1000-10hz|--scenario fanout --publishers 1 --subscribers 1000 --size 100 --rate 10 --warmup 2"
    "many-to-many-100|--scenario many-to-many --pairs 100 --rate 100 --warmup 2"
    "many-to-many-100-sat|--scenario many-to-many --pairs 100 --size 100 --warmup 2"
    "queue-2x2|--scenario queue --publishers 2 --consumers 2 --ack client-individual --rate 1000 --warmup 2"
    "queue-2x2-sat|--scenario queue --publishers 2 --consumers 2 --ack client-individual --size 100 --warmup 2"
    "large-1x5|--scenario large --publishers 1 --subscribers 5 --rate 20 --warmup 2"
    "idle-5000|--scenario idle --connections 5000"
    "connect-storm|--scenario connect-storm --concurrency 50 --warmup 1"
)

work=$(mktemp -d)
[ -n "$out" ] || out=$work/runs
mkdir -p "$out"
stompws_pid=
rabbit_wrapper=
rabbit_pid=
epmd_port=

stop_pid() { # stop_pid PID SECONDS: SIGTERM, then SIGKILL after SECONDS
    local pid=$1 i
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null
    for i in $(seq $(($2 * 10))); do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.1
    done
    kill -9 "$pid" 2>/dev/null
}

cleanup() {
    stop_pid "$stompws_pid" 5
    stop_pid "$rabbit_pid" 20
    stop_pid "$rabbit_wrapper" 5
    if [ -n "$epmd_port" ]; then # our epmd: asked to stop, then killed by pid if it lingers
        ERL_EPMD_PORT=$epmd_port epmd -kill >/dev/null 2>&1
        local pid i
        for i in $(seq 25); do
            pid=$(ss -ltnpH "sport = :$epmd_port" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1)
            [ -n "$pid" ] || break
            [ "$i" -eq 25 ] && kill "$pid" 2>/dev/null
            sleep 0.2
        done
    fi
    rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE # a signal would skip the EXIT trap and leave RabbitMQ running

free_port() {
    /usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

wait_port() { # wait_port PORT SECONDS
    local i
    for i in $(seq $(($2 * 5))); do
        ss -ltn "sport = :$1" | grep -q LISTEN && return 0
        sleep 0.2
    done
    return 1
}

install_rabbitmq() {
    [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] && return 0
    echo "installing rabbitmq-server (apt-get)..." >&2
    local guard=
    if [ ! -e /usr/sbin/policy-rc.d ]; then # keep the package from starting a system-wide node
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        guard=1
    fi
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends rabbitmq-server >&2
    local rc=$?
    [ -n "$guard" ] && rm -f /usr/sbin/policy-rc.d
    return $rc
}

start_stompws() {
    : >"$work/stompws.out" # exists before the broker's shell gets to its redirection
    "$stompws" --threads "${STOMPWS_THREADS:-1}" --ws 127.0.0.1:0 --tcp off --log-level warn \
        --set limits.publish_rate=0 --set limits.connection_rate=0 \
        >"$work/stompws.out" 2>"$work/stompws.err" &
    stompws_pid=$!
    local i
    for i in $(seq 50); do
        stompws_port=$(sed -n 's/^listening ws 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$work/stompws.out")
        [ -n "$stompws_port" ] && return 0
        sleep 0.2
    done
    echo "compare.sh: stompws did not start:" >&2
    cat "$work/stompws.err" >&2
    return 1
}

start_rabbitmq() {
    local dir=$work/rabbitmq amqp stomp dist
    mkdir -p "$dir"
    amqp=$(free_port); stomp=$(free_port); rabbit_port=$(free_port); dist=$(free_port)
    epmd_port=$(free_port)
    cat >"$dir/rabbitmq.conf" <<EOF
listeners.tcp.1 = 127.0.0.1:$amqp
stomp.listeners.tcp.1 = 127.0.0.1:$stomp
web_stomp.tcp.ip = 127.0.0.1
web_stomp.tcp.port = $rabbit_port
loopback_users.guest = true
log.console = true
log.console.level = warning
log.file = false
EOF
    echo "[rabbitmq_web_stomp]." >"$dir/enabled_plugins"
    (
        export HOME=$dir RABBITMQ_NODENAME=stompwsbench$$@localhost
        export RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log
        export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
        export RABBITMQ_PID_FILE=$dir/pid RABBITMQ_DIST_PORT=$dist
        export ERL_EPMD_ADDRESS=127.0.0.1 ERL_EPMD_PORT=$epmd_port
        export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
        exec /usr/lib/rabbitmq/bin/rabbitmq-server
    ) >"$work/rabbitmq.out" 2>&1 &
    rabbit_wrapper=$!
    if ! wait_port "$rabbit_port" 120; then
        echo "compare.sh: RabbitMQ's Web STOMP did not come up on 127.0.0.1:$rabbit_port:" >&2
        tail -20 "$work/rabbitmq.out" >&2
        return 1
    fi
    rabbit_pid=$(cat "$dir/pid" 2>/dev/null)
    # The pid file names the Erlang VM (beam.smp); fall back to the listener's owner.
    [ -n "$rabbit_pid" ] || rabbit_pid=$(ss -ltnpH "sport = :$rabbit_port" | sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -1)
}

cpu_s() { awk '{ printf "%.2f", ($14 + $15) / 100 }' "/proc/$1/stat" 2>/dev/null || echo 0; }
rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status" 2>/dev/null || echo 0; }

# run_one NAME BROKER PID URL OPTIONS...: one generator run; writes NAME.BROKER.{out,json,broker}
run_one() {
    local name=$1 broker=$2 pid=$3 url=$4
    shift 4
    local base=$out/$name.$broker cpu0 cpu1 peak=0 r gen
    cpu0=$(cpu_s "$pid")
    timeout 600 "$bench" --url "$url" --duration "$duration" --label "$broker" "$@" \
        >"$base.out" 2>"$base.err" &
    gen=$!
    while kill -0 "$gen" 2>/dev/null; do
        r=$(rss_kib "$pid")
        [ "$r" -gt "$peak" ] && peak=$r
        sleep 0.2
    done
    wait "$gen"
    cpu1=$(cpu_s "$pid")
    grep '^{' "$base.out" | tail -1 >"$base.json"
    echo "{\"broker_cpu_s\": $(awk -v a="$cpu0" -v b="$cpu1" 'BEGIN { printf "%.2f", b - a }'), \"broker_rss_peak_kib\": $peak}" >"$base.broker"
    echo "  $name on $broker: $(grep -m1 -E '^  (received|cycles) ' "$base.out" ||
        grep -m1 -E '^  connections ' "$base.out")" >&2
    sleep 3 # let the broker finish closing this run's connections before the next run
}

install_rabbitmq || { echo "compare.sh: cannot install rabbitmq-server" >&2; exit 1; }
start_stompws || exit 1
start_rabbitmq || exit 1
echo "stompws pid $stompws_pid on ws://127.0.0.1:$stompws_port/ws;" \
    "RabbitMQ pid $rabbit_pid on ws://127.0.0.1:$rabbit_port/ws" >&2

names=()
for entry in "${scenarios[@]}"; do
    name=${entry%%|*}
    opts=${entry#*|}
    if [ -n "$only" ] && [[ ",$only," != *",$name,"* ]]; then
        continue
    fi
    names+=("$name")
    # shellcheck disable=SC2086 # opts is a list of words
    run_one "$name" stompws "$stompws_pid" "ws://127.0.0.1:$stompws_port/ws" $opts
    # shellcheck disable=SC2086
    run_one "$name" rabbitmq "$rabbit_pid" "ws://127.0.0.1:$rabbit_port/ws" \
        --login guest --passcode guest $opts
done

/usr/bin/python3 - "$out" "${names[@]}" <<'EOF'
import json
import sys

out, names = sys.argv[1], sys.argv[2:]

def load(name, broker):
    try:
        with open(f"{out}/{name}.{broker}.json") as f:
            run = json.loads(f.read() or "{}")
        with open(f"{out}/{name}.{broker}.broker") as f:
            run.update(json.load(f))
        return run
    except (OSError, ValueError):
        return {}

def rows(run):
    lat = run.get("latency_ms", {})
    rate = "connects_per_s" if run.get("scenario") == "connect-storm" else "deliveries_per_s"
    return [
        (rate.replace("_", " "), run.get(rate)),
        ("latency p50 ms", lat.get("p50")),
        ("latency p99 ms", lat.get("p99")),
        ("latency max ms", lat.get("max")),
        ("loss", run.get("loss")),
        ("errors", run.get("errors")),
        ("connections up", run.get("connections", {}).get("up")),
        ("broker CPU s", run.get("broker_cpu_s")),
        ("broker RSS peak MiB", (run["broker_rss_peak_kib"] / 1024) if "broker_rss_peak_kib" in run else None),
        ("generator CPU share", run.get("cpu_window_share_max")),
    ]

def fmt(v):
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 1000 else f"{v:.3g}"
    return f"{v:,}"

print(f"{'scenario':<18} {'figure':<22} {'stompws':>14} {'rabbitmq':>14} {'stompws/rabbitmq':>17}")
for name in names:
    s, r = load(name, "stompws"), load(name, "rabbitmq")
    for (label, a), (_, b) in zip(rows(s), rows(r)):
        ratio = f"{a / b:.2f}" if isinstance(a, (int, float)) and isinstance(b, (int, float)) and b else "-"
        print(f"{name:<18} {label:<22} {fmt(a):>14} {fmt(b):>14} {ratio:>17}")
    for run, who in ((s, "stompws"), (r, "rabbitmq")):
        for w in run.get("warnings", []):
            print(f"{'':<18} warning ({who}): {w}")
        for e in run.get("error_kinds", [])[:2]:
            print(f"{'':<18} error ({who}, {e['count']}x): {e['message'][:90]}")
EOF
