#!/usr/bin/env bash
# Broker memory per idle connection (docs/PERFORMANCE.md, "stompws-bench"). Not a test.
#
#   bench/idle_rss.sh [BROKER_BIN [BENCH_BIN [CONNECTIONS [HOLD_S]]]]
#
# Starts a stompws broker on free loopback ports (admission limits off: limits.connection_rate=0,
# limits.max_connections_per_address=100000), reads its VmRSS (/proc/PID/status) and the
# kernel's socket figures (/proc/net/sockstat), then opens CONNECTIONS subscribed WebSocket
# connections with `stompws-bench --scenario idle` (default 10000, held HOLD_S = 5 s). When the
# generator prints "up N of M connections", it reads both again and prints the growth per
# connection, then the generator's own report. The kernel figures count both ends of every
# connection (the broker's socket and the generator's): 2 sockets per connection. sockstat's
# "mem" counts socket buffer pages only (none for idle sockets); the sockets themselves live in
# slab caches, read from /proc/slabinfo (root only): TCP, sock_inode_cache, filp, eventpoll_epi.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
broker=${1:-$here/../build/broker/stompws}
bench=${2:-$here/../build/bench/stompws-bench}
conns=${3:-10000}
hold=${4:-5}

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

: >"$tmp/broker.out" # exists before the broker's shell gets to its redirection
"$broker" --ws 127.0.0.1:0 --tcp off --log-level warn \
    --set limits.connection_rate=0 --set limits.max_connections_per_address=100000 \
    >"$tmp/broker.out" 2>"$tmp/broker.err" &
broker_pid=$!
port=
for _ in $(seq 100); do
    port=$(sed -n 's/^listening ws 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/broker.out")
    [ -n "$port" ] && break
    sleep 0.1
done
[ -n "$port" ] || { echo "idle_rss.sh: the broker did not start:" >&2; cat "$tmp/broker.err" >&2; exit 1; }

rss_kib() { awk '/^VmRSS:/ { print $2 }' "/proc/$broker_pid/status"; }
# TCP sockets in use and their memory (pages) from /proc/net/sockstat.
tcp_inuse() { awk '$1 == "TCP:" { print $3 }' /proc/net/sockstat; }
tcp_mem_pages() { awk '$1 == "TCP:" { for (i = 2; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat; }
# Bytes of the slab objects each socket needs (active objects x object size); 0 if unreadable.
slab_bytes() {
    awk '$1 == "TCP" || $1 == "sock_inode_cache" || $1 == "filp" || $1 == "eventpoll_epi" {
        s += $2 * $4 } END { print s + 0 }' /proc/slabinfo 2>/dev/null || echo 0
}
page=$(getconf PAGESIZE)

rss0=$(rss_kib); inuse0=$(tcp_inuse); mem0=$(tcp_mem_pages); slab0=$(slab_bytes)
echo "broker pid $broker_pid, ws port $port; before: VmRSS $rss0 KiB; TCP sockets in use $inuse0," \
    "TCP buffer memory $mem0 pages, socket slab $((slab0 / 1024)) KiB"

exec 3< <("$bench" --url "ws://127.0.0.1:$port/ws" --scenario idle --connections "$conns" \
    --duration "$hold" --label stompws 2>"$tmp/bench.err")
up=
while IFS= read -r line <&3; do
    echo "$line"
    case "$line" in
    up\ *) up=$(echo "$line" | awk '{ print $2 }'); break ;;
    esac
done
[ -n "$up" ] || { echo "idle_rss.sh: the generator ended before its connections were up:" >&2; cat "$tmp/bench.err" >&2; exit 1; }
sleep 1 # let the broker settle (buffers of the last handshakes)
rss1=$(rss_kib); inuse1=$(tcp_inuse); mem1=$(tcp_mem_pages); slab1=$(slab_bytes)
cat <&3
echo "with $up connections up: VmRSS $rss1 KiB; TCP sockets in use $inuse1," \
    "TCP buffer memory $mem1 pages, socket slab $((slab1 / 1024)) KiB"
awk -v r0="$rss0" -v r1="$rss1" -v m0="$mem0" -v m1="$mem1" -v s0="$slab0" -v s1="$slab1" \
    -v n="$up" -v pg="$page" 'BEGIN {
    if (n == 0) exit
    printf "broker RSS growth: %.0f KiB in all, %.2f KiB (%.0f bytes) per connection\n",
        r1 - r0, (r1 - r0) / n, (r1 - r0) * 1024 / n
    printf "kernel TCP buffer memory growth: %.0f KiB, %.0f bytes per connection (both ends)\n",
        (m1 - m0) * pg / 1024, (m1 - m0) * pg / n
    printf "kernel socket slab growth: %.0f KiB, %.0f bytes per connection (both ends)\n",
        (s1 - s0) / 1024, (s1 - s0) / n
}'
