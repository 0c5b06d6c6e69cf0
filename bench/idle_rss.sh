#!/usr/bin/env bash
# Memory per idle subscribed connection, on one broker or on the nodes of one cluster, and a
# broadcast to every connection (docs/PERFORMANCE.md, "100 000 subscribed connections on six
# nodes"). Not a test.
#
#   bench/idle_rss.sh [--nodes N] [--broadcasts K] [--procs P]
#                     [BROKER_BIN [BENCH_BIN [CONNECTIONS [HOLD_S]]]]
#
# Starts N stompws nodes on free loopback ports (admission limits off: limits.connection_rate=0,
# limits.max_connections_per_address=100000); with N > 1 they join one cluster through a
# throw-away redis-server (loopback, free port, temporary directory, no persistence). Reads each
# node's VmRSS (/proc/PID/status) and the kernel's socket figures, then opens CONNECTIONS
# (default 10000) subscribed WebSocket connections to /topic/bench.idle with one
# `stompws-bench --scenario idle` run: connection i goes to node i mod N, from P generator
# processes (default: as few as the open-files limit allows). When the generator prints "up N of
# M connections", the script reads everything again and prints the growth per connection. Then,
# with K > 0 (default 1), a publisher on the first node sends K broadcasts to the topic, spread
# over HOLD_S seconds (default 5); the generator counts who got each and when, and the script
# prints that, the CPU the brokers and the generator used meanwhile, and each node's peak RSS
# (VmHWM), then stops everything.
#
# Both ends of every connection are on this machine, so the kernel figures count 2 sockets per
# connection (the broker's and the generator's); with the clients on other machines the broker's
# machine carries half. /proc/net/sockstat's TCP "mem" counts socket buffer pages only (idle
# sockets hold none; its peak while the broadcasts are in flight is reported too); the sockets
# themselves are slab objects, read from /proc/slabinfo (root only): TCP, sock_inode_cache, filp,
# dentry, eventpoll_epi, ep_head and the LSM caches. Other work on the machine moves both.
#
# BENCH_ARGS (environment, default none): flag words added to the generator, e.g.
# BENCH_ARGS="--deflate --size 1024 --body json" for connections that negotiated
# permessage-deflate and broadcasts of 1 KiB JSON (docs/COMPRESSION.md).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

fail() { echo "idle_rss.sh: $*" >&2; exit 1; }
usage() { echo usage: >&2; sed -n '6,7p' "$0" | sed 's/^#//' >&2; exit 2; }
whole() { # whole NAME VALUE MIN MAX
    [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ] && [ "$2" -le "$4" ] && return 0
    echo "idle_rss.sh: $1 '$2': expected a whole number in $3..$4" >&2
    exit 2
}

nodes=1 broadcasts=1 procs=
while [ $# -gt 0 ]; do
    case "$1" in
    --nodes) nodes=${2:-}; shift 2 || usage ;;
    --broadcasts) broadcasts=${2:-}; shift 2 || usage ;;
    --procs) procs=${2:-}; shift 2 || usage ;;
    --help | -h) usage ;;
    --*) echo "idle_rss.sh: unknown option $1" >&2; usage ;;
    *) break ;;
    esac
done
broker=${1:-$here/../build/server/stompws}
bench=${2:-$here/../build/bench/stompws-bench}
conns=${3:-10000}
hold=${4:-5}
whole --nodes "$nodes" 1 64
whole --broadcasts "$broadcasts" 0 1000
whole CONNECTIONS "$conns" 1 10000000
if ! [[ "$hold" =~ ^[0-9]+(\.[0-9]+)?$ ]] || ! awk -v h="$hold" 'BEGIN { exit !(h > 0) }'; then
    echo "idle_rss.sh: HOLD_S '$hold': expected seconds, more than 0" >&2
    exit 2
fi
[ -x "$broker" ] || fail "no broker at $broker (build it first)"
[ -x "$bench" ] || fail "no stompws-bench at $bench (build it first)"
[ "$nodes" -eq 1 ] || command -v redis-server >/dev/null || fail "--nodes $nodes needs redis-server"
command -v jq >/dev/null || fail "needs jq (to read the generator's JSON line)"

# Open files: the brokers and the generator inherit the soft limit, raised to the hard one.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
nofile=$(ulimit -n)
[ "$nofile" = unlimited ] && nofile=1000000
margin=64 # listener, log, Redis links, epoll, a metrics scrape; the generator's pipes
pubs=$((broadcasts > 0 ? 1 : 0))
per_node=$(((conns + nodes - 1) / nodes + pubs))
if [ $((per_node + margin)) -gt "$nofile" ]; then
    fail "$conns connections on $nodes node(s) is $per_node per node, but a process may hold" \
        "$nofile open files (ulimit -n): use --nodes" \
        "$(((conns + nofile - margin - pubs - 1) / (nofile - margin - pubs))) or more"
fi
[ -n "$procs" ] || procs=$(((conns + pubs + nofile - margin - 1) / (nofile - margin)))
whole --procs "$procs" 1 64

tmp=$(mktemp -d)
pids=() # everything started here, stopped on exit
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP PIPE # a signal would skip the EXIT trap and leave the brokers running

now() { date +%s.%N; }
# later A B: true when instant B (seconds) is after instant A.
later() { awk -v a="$1" -v b="$2" 'BEGIN { exit !(b > a) }'; }

# ---- redis-server and the nodes ----

redis_url=
start_redis() {
    local port
    port=$(/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp" \
        --loglevel warning >"$tmp/redis.log" 2>&1 &
    pids+=($!)
    for _ in $(seq 50); do
        [ "$(redis-cli -p "$port" ping 2>/dev/null)" = PONG ] && { redis_url=redis://127.0.0.1:$port; return; }
        sleep 0.1
    done
    cat "$tmp/redis.log" >&2
    fail "redis-server did not answer PING on port $port within 5 s"
}

node_pid=() node_port=()
start_node() { # start_node K
    local cluster=() port=
    [ -n "$redis_url" ] && cluster=(--redis "$redis_url" --node-id "n$1")
    : >"$tmp/node$1.out" # exists before the broker's shell gets to its redirection
    "$broker" --threads "${STOMPWS_THREADS:-1}" --ws 127.0.0.1:0 --tcp off --log-level warn \
        --set limits.connection_rate=0 --set limits.max_connections_per_address=100000 \
        "${cluster[@]}" >"$tmp/node$1.out" 2>"$tmp/node$1.err" &
    pids+=($!)
    node_pid+=($!)
    for _ in $(seq 100); do
        port=$(sed -n 's/^listening ws 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/node$1.out")
        [ -n "$port" ] && { node_port+=("$port"); return; }
        sleep 0.1
    done
    cat "$tmp/node$1.err" >&2
    fail "node n$1 did not start within 10 s"
}

# metric PORT NAME: one figure from a node's /metrics (its ws port serves them on their own path).
metric() {
    curl -s --max-time 5 "http://127.0.0.1:$1/metrics" |
        awk -v n="$2" '$1 == n { v = $2 } END { print v + 0 }'
}

wait_links() {
    local k
    for k in $(seq 0 $((nodes - 1))); do
        for _ in $(seq 100); do
            [ "$(metric "${node_port[$k]}" stompws_cluster_link_up)" = 1 ] && continue 2
            sleep 0.1
        done
        fail "node n$((k + 1)) did not report its Redis links up within 10 s"
    done
}

# ---- readings ----

rss_kib() { awk -v k="${2:-VmRSS:}" '$1 == k { print $2 }' "/proc/$1/status"; }
tcp_inuse() { awk '$1 == "TCP:" { print $3 }' /proc/net/sockstat; }
tcp_mem_pages() { awk '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat; }
# Bytes of the slab objects sockets need (active objects x object size); 0 if unreadable.
slab_bytes() {
    awk '$1 ~ /^(TCP|sock_inode_cache|filp|dentry|eventpoll_epi|ep_head|lsm_inode_cache|lsm_file_cache)$/ {
        s += $2 * $4 } END { print s + 0 }' /proc/slabinfo 2>/dev/null || echo 0
}
# CPU ticks (user + system) of the processes named; those gone count 0.
cpu_ticks() {
    local p s=0 t
    for p in "$@"; do
        t=$(awk '{ print $14 + $15 }' "/proc/$p/stat" 2>/dev/null) || t=0
        s=$((s + t))
    done
    echo "$s"
}
# Busy, niced and total ticks of the whole machine (every CPU), from /proc/stat.
machine_ticks() { awk '$1 == "cpu" { print $2 + $3 + $4 + $7 + $8, $3, $2 + $3 + $4 + $5 + $6 + $7 + $8 }' /proc/stat; }

rss=() inuse='' mem='' slab=''
read_state() {
    local k
    rss=()
    for k in $(seq 0 $((nodes - 1))); do rss+=("$(rss_kib "${node_pid[$k]}")"); done
    inuse=$(tcp_inuse) mem=$(tcp_mem_pages) slab=$(slab_bytes)
}

# ---- the run ----

[ "$nodes" -eq 1 ] || start_redis
for k in $(seq "$nodes"); do start_node "$k"; done
[ -z "$redis_url" ] || wait_links
page=$(getconf PAGESIZE)
tck=$(getconf CLK_TCK)

read_state
rss0=("${rss[@]}") inuse0=$inuse mem0=$mem slab0=$slab
echo "$nodes node(s) ${node_pid[*]} on ws ports ${node_port[*]}${redis_url:+, joined through $redis_url};" \
    "before: VmRSS ${rss0[*]} KiB; TCP sockets in use $inuse0, TCP buffer memory $mem0 pages," \
    "socket slab $((slab0 / 1024)) KiB; open files per process $nofile; load average" \
    "$(cut -d' ' -f1-3 /proc/loadavg)"

quiet=3 # s held after "up" before the window (and its broadcasts): the readings below fit in it
gen=("$bench")
for p in "${node_port[@]}"; do gen+=(--url "ws://127.0.0.1:$p/ws"); done
gen+=(--scenario idle --connections "$conns" --procs "$procs" --setup-timeout $((60 + conns / 500))
    --warmup "$quiet" --duration "$hold" --label stompws)
read -r -a bench_args <<<"${BENCH_ARGS:-}"
gen+=("${bench_args[@]}")
if [ "$broadcasts" -gt 0 ]; then
    gen+=(--publishers 1 --rate "$(awk -v k="$broadcasts" -v h="$hold" 'BEGIN { print k / h }')"
        --drain 10)
fi
echo "generator: ${gen[*]}"
: >"$tmp/bench.out"
"${gen[@]}" >"$tmp/bench.out" 2>"$tmp/bench.err" &
gen_pid=$!
pids+=("$gen_pid")
# Bounded: the generator gives up after --setup-timeout and kills its workers when it overruns.
until grep -q '^up ' "$tmp/bench.out"; do
    kill -0 "$gen_pid" 2>/dev/null || {
        cat "$tmp/bench.out" "$tmp/bench.err" >&2
        fail "the generator ended before its connections were up"
    }
    sleep 0.1
done
t_up=$(now)
grep '^up ' "$tmp/bench.out"
up=$(awk '/^up / { print $2; exit }' "$tmp/bench.out")
sleep 1 # let the brokers settle (buffers of the last handshakes)
read_state
rss1=("${rss[@]}") inuse1=$inuse mem1=$mem slab1=$slab
workers=$(pgrep -P "$gen_pid" | tr '\n' ' ')
# shellcheck disable=SC2086 # lists of pids
cpu_nodes0=$(cpu_ticks "${node_pid[@]}") cpu_gen0=$(cpu_ticks $workers)
read -r busy0 nice0 all0 < <(machine_ticks)
if later "$(awk -v t="$t_up" -v q="$quiet" 'BEGIN { printf "%.3f", t + q - 0.2 }')" "$(now)"; then
    echo "WARNING: the readings ended after the first broadcast may have started"
fi
node_conns=() node_subs=()
for k in $(seq 0 $((nodes - 1))); do
    node_conns+=("$(metric "${node_port[$k]}" 'stompws_connections{transport="ws"}')")
    node_subs+=("$(metric "${node_port[$k]}" stompws_subscriptions)")
done

# Until the window ends (the generator then closes every connection): the peak of the sockets'
# buffer memory and the CPU used since the readings, which is the broadcasts' (and nothing else
# of this run's: the connections are idle).
window_end=$(awk -v t="$t_up" -v q="$quiet" -v h="$hold" 'BEGIN { printf "%.3f", t + q + h - 0.3 }')
deadline=$(awk -v t="$t_up" -v q="$quiet" -v h="$hold" 'BEGIN { printf "%.3f", t + q + h + 10 + 60 }')
mem_peak=$mem1 cpu_nodes1=$cpu_nodes0 cpu_gen1=$cpu_gen0 busy1=$busy0 nice1=$nice0 all1=$all0
while kill -0 "$gen_pid" 2>/dev/null; do
    m=$(tcp_mem_pages)
    [ "$m" -gt "$mem_peak" ] && mem_peak=$m
    if later "$(now)" "$window_end"; then
        # shellcheck disable=SC2086
        cpu_nodes1=$(cpu_ticks "${node_pid[@]}") cpu_gen1=$(cpu_ticks $workers)
        read -r busy1 nice1 all1 < <(machine_ticks)
    fi
    later "$deadline" "$(now)" && fail "the generator overran; stopped"
    sleep 0.1
done
wait "$gen_pid" || { cat "$tmp/bench.out" "$tmp/bench.err" >&2; fail "the generator failed"; }
grep -v '^up ' "$tmp/bench.out"
json=$(grep '^{' "$tmp/bench.out" | tail -1)

# ---- the report ----

echo
echo "with $up connections up:"
total0=0 total1=0 hwm_total=0
for k in $(seq 0 $((nodes - 1))); do
    hwm=$(rss_kib "${node_pid[$k]}" VmHWM:)
    total0=$((total0 + rss0[k])) total1=$((total1 + rss1[k])) hwm_total=$((hwm_total + hwm))
    awk -v n="n$((k + 1))" -v c="${node_conns[$k]}" -v s="${node_subs[$k]}" -v r0="${rss0[$k]}" \
        -v r1="${rss1[$k]}" -v h="$hwm" -v d="$(metric "${node_port[$k]}" stompws_messages_out_total)" 'BEGIN {
        printf "  node %s: %d connections, %d subscriptions; VmRSS %.1f -> %.1f MiB, %.2f KiB per connection;",
            n, c, s, r0 / 1024, r1 / 1024, (c > 0 ? (r1 - r0) / c : 0)
        printf " peak (VmHWM) %.1f MiB; %d MESSAGE frames written\n", h / 1024, d }'
done
awk -v r0="$total0" -v r1="$total1" -v h="$hwm_total" -v m0="$mem0" -v m1="$mem1" -v mp="$mem_peak" \
    -v i0="$inuse0" -v i1="$inuse1" -v s0="$slab0" -v s1="$slab1" -v n="$up" -v pg="$page" \
    -v nodes="$nodes" 'BEGIN {
    if (n == 0) exit
    printf "broker RSS growth: %.0f KiB in all, %.2f KiB (%.0f bytes) per connection\n",
        r1 - r0, (r1 - r0) / n, (r1 - r0) * 1024 / n
    printf "brokers RSS: %.1f MiB before, %.1f MiB with the connections up, peak %.1f MiB (%d node%s)\n",
        r0 / 1024, r1 / 1024, h / 1024, nodes, (nodes > 1 ? "s, summed" : "")
    printf "kernel, both ends of each connection (2 sockets; with the clients elsewhere the broker'"'"'s machine carries half):\n"
    printf "  TCP sockets in use: %+d (%.2f per connection)\n", i1 - i0, (i1 - i0) / n
    printf "  TCP buffer memory (sockstat mem): %+d pages = %.0f bytes per connection; peak until the end of the window %+d pages (%.0f KiB)\n",
        m1 - m0, (m1 - m0) * pg / n, mp - m0, (mp - m0) * pg / 1024
    printf "kernel socket slab growth: %.0f KiB, %.0f bytes per connection (both ends), %.0f per socket\n",
        (s1 - s0) / 1024, (s1 - s0) / n, (s1 - s0) / n / 2
}'
if [ "$broadcasts" -gt 0 ]; then
    echo "$json" | jq -r --arg k "$broadcasts" '"broadcasts: \($k) from a publisher on node n1 to \(.connections.subscribers_up) subscribed connections: \(.received) of \(.expected) deliveries arrived (loss \(.loss), duplicates \(.duplicates)); latency ms p50 \(.latency_ms.p50 // "-") p99 \(.latency_ms.p99 // "-") max \(.latency_ms.max // "-") (max: the slowest delivery)"'
    awk -v n0="$cpu_nodes0" -v n1="$cpu_nodes1" -v g0="$cpu_gen0" -v g1="$cpu_gen1" -v b0="$busy0" \
        -v b1="$busy1" -v c0="$nice0" -v c1="$nice1" -v a0="$all0" -v a1="$all1" -v t="$tck" \
        -v d="$(echo "$json" | jq .received)" 'BEGIN {
        all = a1 > a0 ? a1 - a0 : 1
        printf "CPU from the readings to the end of the window: brokers %.2f s (%.1f us per delivery), generator %.2f s;",
            (n1 - n0) / t, (d > 0 ? (n1 - n0) / t / d * 1e6 : 0), (g1 - g0) / t
        printf " the machine'"'"'s CPUs were %.0f %% busy, %.0f %% of it niced work of others\n",
            (b1 - b0) * 100 / all, (b1 > b0 ? (c1 - c0) * 100 / (b1 - b0) : 0) }'
fi
# One line for scripts (bench/sweep.sh).
echo "$json" | jq -r --arg n "$nodes" --arg up "$up" --arg r0 "$total0" --arg r1 "$total1" \
    --arg h "$hwm_total" --arg s "$(((slab1 - slab0) / (up > 0 ? up : 1)))" \
    --arg m "$(((mem1 - mem0) * page / (up > 0 ? up : 1)))" \
    '"summary nodes=\($n) connections=\($up) rss_before_kib=\($r0) rss_kib=\($r1) rss_peak_kib=\($h) slab_bytes_per_connection=\($s) tcp_mem_bytes_per_connection=\($m) expected=\(.expected) received=\(.received) broadcast_latency_max_ms=\(if .params.publishers > 0 then .latency_ms.max // 0 else 0 end)"'
