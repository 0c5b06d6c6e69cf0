#!/usr/bin/env bash
# Fan-out throughput of two broker binaries, measured in one run on one machine, alternating
# before, after, before, after... so that both see the same load (docs/PERFORMANCE.md). Not a test.
#
#   bench/before_after.sh BEFORE_BIN AFTER_BIN BENCH_CLIENT [ROUNDS]
#
# ROUNDS (default 3): each round runs, for each --threads N in THREADS, BEFORE then AFTER. Every
# run starts a fresh broker on a free loopback port (--ws 127.0.0.1:0 --tcp off, admission limits
# lifted as in bench/threads.sh), runs the existing generator once
#
#   BENCH_CLIENT --url ws://127.0.0.1:PORT/ws --scenario fanout --publishers 1 --subscribers 1000 \
#       --size 100 --rate 0 --warmup 2 --duration 5 --drain 3 --procs 2 --setup-timeout 30 --json
#
# (8-11 s: setup, warm-up, window, drain), and stops the broker (SIGTERM, SIGKILL after 5 s).
# The three binaries are copied to a temporary directory first, so a rebuild during the run
# cannot change what is measured. Progress goes to stderr; stdout gets a markdown table: each
# run's deliveries/s (the generator's deliveries_per_s: deliveries that arrived in the window /
# its length) and the broker's CPU per delivery (utime + stime from /proc/PID/stat over the
# generator's run, all threads, divided by every delivery the generator counted: received +
# received_outside_window), each binary's medians, and the after/before ratios, per round and
# of the medians. Exit status: 0 every run measured, 1 some run failed (the table shows the
# others), 2 usage.
#
# Environment (defaults in brackets): THREADS ["1 2"], SUBSCRIBERS [1000], SIZE [100],
# WARMUP [2], DURATION [5], DRAIN [3], PROCS [2] (generator processes, as in threads.sh),
# SETTLE [1] (seconds of pause between runs), OUT [none] (a directory to keep each run's files),
# BROKER_ENV [none] (NAME=VALUE words set for both brokers only, e.g.
# BROKER_ENV=GLIBC_TUNABLES=glibc.malloc.trim_threshold=268435456; see "slow regime" below),
# AFTER_ARGS [none] (flag words added to the AFTER broker only, e.g.
# AFTER_ARGS="--history /topic/bench=1": the after binary with a last-value policy on the
# generator's topic against the before binary without one; the table's header names them),
# BEFORE_ARGS [none] (the same for the BEFORE broker only, e.g. BEFORE_ARGS="--set
# compression.enabled=off" with the same binary both sides), BENCH_ARGS [none] (flag words added
# to every generator run, e.g. BENCH_ARGS="--deflate --body json": offer permessage-deflate).
# The table also gives the bytes the generator read from its sockets per delivery
# (wire_bytes_in / deliveries), which is what compression changes.
#
# Both binaries take the same flags (--threads included). With BEFORE_BIN = AFTER_BIN the
# ratios show the noise of this machine for this scenario: a change inside it is not measured.
#
# Slow regime: on the 2-vCPU guest of docs/PERFORMANCE.md a run of this scenario sometimes
# settles at ~0.15-0.35 M deliveries/s with 3-6 us of broker CPU per delivery instead of
# ~0.6-1.7 M/s with ~0.5-0.8 us, the same binary either way (perf: glibc malloc/brk/munmap
# churn). The table marks such runs; with BROKER_ENV raising glibc's trim threshold none
# showed up in 13 runs against 12 of 45 without.
set -uo pipefail

usage() { sed -n '5p' "$0" | sed 's/^# */usage: /' >&2; exit 2; }
if [ $# -lt 3 ] || [ $# -gt 4 ]; then usage; fi
rounds=${4:-3}
threads_list=${THREADS:-1 2}
subscribers=${SUBSCRIBERS:-1000}
size=${SIZE:-100}
warmup=${WARMUP:-2}
duration=${DURATION:-5}
drain=${DRAIN:-3}
procs=${PROCS:-2}
settle=${SETTLE:-1}
keep=${OUT:-}
read -r -a broker_env <<<"${BROKER_ENV:-}"
read -r -a after_args <<<"${AFTER_ARGS:-}"
read -r -a before_args <<<"${BEFORE_ARGS:-}"
read -r -a bench_args <<<"${BENCH_ARGS:-}"

whole() { # whole NAME VALUE MIN MAX
    [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge "$3" ] && [ "$2" -le "$4" ] && return 0
    echo "before_after.sh: $1 '$2': expected a whole number in $3..$4" >&2
    exit 2
}
whole ROUNDS "$rounds" 1 100
whole SUBSCRIBERS "$subscribers" 1 100000
whole SIZE "$size" 42 1048576
whole WARMUP "$warmup" 0 600
whole DURATION "$duration" 1 600
whole DRAIN "$drain" 0 600
whole PROCS "$procs" 1 64
whole SETTLE "$settle" 0 600
[ -n "${threads_list// /}" ] || { echo "before_after.sh: THREADS is empty" >&2; exit 2; }
for t in $threads_list; do whole "THREADS entry" "$t" 1 64; done
for e in "${broker_env[@]}"; do
    [[ "$e" =~ ^[A-Za-z_][A-Za-z0-9_]*= ]] ||
        { echo "before_after.sh: BROKER_ENV word '$e': expected NAME=VALUE" >&2; exit 2; }
done
for f in "$1" "$2" "$3"; do
    if ! [ -f "$f" ] || ! [ -x "$f" ]; then
        echo "before_after.sh: $f: not an executable file" >&2
        exit 2
    fi
done
py=/usr/bin/python3
[ -x "$py" ] || py=$(command -v python3) || { echo "before_after.sh: needs python3" >&2; exit 2; }
command -v timeout >/dev/null || { echo "before_after.sh: needs timeout (coreutils)" >&2; exit 2; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/before_after.XXXXXX")
broker_pid=
bench_pid=

stop_pid() { # stop_pid PID SECONDS: SIGTERM, SIGKILL after SECONDS, then reap
    local pid=$1 i
    [ -n "$pid" ] || return 0
    if kill -0 "$pid" 2>/dev/null; then
        kill "$pid" 2>/dev/null
        for ((i = 0; i < $2 * 10; i++)); do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.1
        done
        kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
    return 0
}
# shellcheck disable=SC2317 # called by the trap
cleanup() {
    stop_pid "$bench_pid" 5
    stop_pid "$broker_pid" 5
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP PIPE # a signal would skip the EXIT trap and leave the broker running

# Snapshots of the binaries: what is measured cannot change under a concurrent rebuild.
cp "$1" "$tmp/before" && cp "$2" "$tmp/after" && cp "$3" "$tmp/bench" || exit 1
sum() { sha256sum "$1" | cut -c1-12; }
before_sum=$(sum "$tmp/before")
after_sum=$(sum "$tmp/after")

tick=$(getconf CLK_TCK)
cpu_s() { awk -v t="$tick" '{ printf "%.3f", ($14 + $15) / t }' "/proc/$1/stat" 2>/dev/null; }

broker_flags=(--ws 127.0.0.1:0 --tcp off --log-level warn --set limits.publish_rate=0
    --set limits.connection_rate=0 --set limits.max_connections_per_address=100000)
bench_flags=(--scenario fanout --publishers 1 --subscribers "$subscribers" --size "$size" --rate 0
    --warmup "$warmup" --duration "$duration" --drain "$drain" --procs "$procs"
    --setup-timeout 30 --json "${bench_args[@]}")
bench_limit=$((30 + warmup + duration + drain + 30))

start_broker() { # start_broker WHICH THREADS RUNDIR: sets broker_pid and port
    local i
    : >"$3/broker.out"
    local extra=()
    [ "$1" != after ] || extra=("${after_args[@]}")
    [ "$1" != before ] || extra=("${before_args[@]}")
    env "${broker_env[@]}" "$tmp/$1" --threads "$2" "${broker_flags[@]}" "${extra[@]}" \
        >"$3/broker.out" 2>"$3/broker.err" &
    broker_pid=$!
    port=
    for ((i = 0; i < 100; i++)); do
        port=$(sed -n 's/^listening ws 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$3/broker.out")
        [ -n "$port" ] && return 0
        kill -0 "$broker_pid" 2>/dev/null || break
        sleep 0.1
    done
    echo "before_after.sh: the $1 broker did not start listening within 10 s:" >&2
    tail -5 "$3/broker.err" >&2
    stop_pid "$broker_pid" 5
    broker_pid=
    return 1
}

# run_one WHICH THREADS ROUND: appends one line to $tmp/results
#   threads which round status deliveries_per_s broker_cpu_s deliveries flags wire_bytes_in
run_one() {
    local which=$1 threads=$2 round=$3 dir c0 c1 rc line
    dir=$tmp/runs/t$threads.r$round.$which
    mkdir -p "$dir"
    if ! start_broker "$which" "$threads" "$dir"; then
        echo "$threads $which $round failed - - - broker-did-not-start -" >>"$tmp/results"
        echo "  round $round, --threads $threads, $which: failed, the broker did not start" >&2
        return 1
    fi
    c0=$(cpu_s "$broker_pid")
    timeout -k 5 "$bench_limit" "$tmp/bench" --url "ws://127.0.0.1:$port/ws" --label "$which" \
        "${bench_flags[@]}" >"$dir/bench.json" 2>"$dir/bench.err" &
    bench_pid=$!
    wait "$bench_pid"
    rc=$?
    bench_pid=
    c1=$(cpu_s "$broker_pid")
    kill -0 "$broker_pid" 2>/dev/null || c1=
    stop_pid "$broker_pid" 5
    broker_pid=
    line=$("$py" - "$dir/bench.json" "$rc" "${c0:-}" "${c1:-}" "$subscribers" <<'PY'
import json, sys
path, rc, c0, c1, subs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
try:
    r = json.loads(open(path).read().strip().splitlines()[-1])
except (OSError, ValueError, IndexError):
    print(f"failed - - - generator-exit-{rc}-no-json -")
    sys.exit()
flags = []
if rc != 0:
    flags.append(f"generator-exit-{rc}")
conns = r.get("connections", {})
if conns.get("up") != conns.get("wanted") or conns.get("subscribers_up") != subs:
    flags.append(f"only-{conns.get('subscribers_up')}-subscribers-up")
for k in ("errors", "gaps", "reordered", "duplicates", "bad_bodies"):
    if r.get(k):
        flags.append(f"{k}={r[k]}")
if r.get("generator_saturated"):
    flags.append("generator-saturated")
cpu = f"{float(c1) - float(c0):.3f}" if c0 and c1 else "-"
total = r.get("received", 0) + r.get("received_outside_window", 0)
status = "ok" if rc == 0 and "deliveries_per_s" in r else "failed"
print(status, f"{r.get('deliveries_per_s', 0):.1f}", cpu, total, ",".join(flags) or "-",
      r.get("wire_bytes_in", "-"))
PY
)
    echo "$threads $which $round $line" >>"$tmp/results"
    echo "  round $round, --threads $threads, $which: $line" \
        "($(awk -v l="$line" 'BEGIN { split(l, f, " "); if (f[4] > 0 && f[3] != "-")
            printf "%.2f us/delivery", f[3] / f[4] * 1e6; else printf "-" }'))" >&2
    [ "${line%% *}" = ok ]
}

: >"$tmp/results"
load_start=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u '+%Y-%m-%d %H:%M UTC')
echo "before $1 (sha256 $before_sum), after $2 (sha256 $after_sum), generator $3;" \
    "$rounds round(s) x THREADS '$threads_list' x 2 runs of at most about $((warmup + duration + drain + 3)) s each" >&2
failed=0
for ((round = 1; round <= rounds; round++)); do
    for threads in $threads_list; do
        for which in before after; do
            run_one "$which" "$threads" "$round" || failed=1
            sleep "$settle"
        done
    done
done
load_end=$(cut -d' ' -f1-3 /proc/loadavg)
[ -z "$keep" ] || { mkdir -p "$keep" && cp -r "$tmp/runs" "$tmp/results" "$keep/"; }

same=
[ "$before_sum" = "$after_sum" ] && same=" (the same binary twice: the ratios are this machine's noise)"
env_note=
[ ${#broker_env[@]} -eq 0 ] || env_note=" with \`${broker_env[*]}\` in its environment"
header1="Fan-out before/after, \`bench/before_after.sh\`, $started: before \`$1\` (sha256 $before_sum),"
header1+=" after \`$2\` (sha256 $after_sum)$same; generator \`$3\`. \`nproc\` = $(nproc),"
header1+=" load average $load_start at the start, $load_end at the end."
args_note=
[ ${#after_args[@]} -eq 0 ] || args_note=" (the after broker also \`${after_args[*]}\`)"
[ ${#before_args[@]} -eq 0 ] || args_note+=" (the before broker also \`${before_args[*]}\`)"
header2="Each run: a fresh broker \`--threads N ${broker_flags[*]}\`$env_note$args_note, then"
header2+=" \`stompws-bench --url ws://127.0.0.1:PORT/ws ${bench_flags[*]}\`;"
header2+=" order before, after, before, after, ..."
H1=$header1 H2=$header2 SUBS=$subscribers SIZE_B=$size WINDOW=$duration \
    "$py" - "$tmp/results" "$rounds" "$threads_list" <<'PY'
import os, statistics, sys

path, rounds, threads_list = sys.argv[1], int(sys.argv[2]), sys.argv[3].split()
runs = {}
for line in open(path):
    t, which, rnd, status, dps, cpu, total, flags, wire = line.split()
    run = dict(ok=status == "ok", dps=float(dps) if status == "ok" else None,
               flags=[] if flags == "-" else flags.split(","), us=None, wire=None)
    if run["ok"] and wire != "-" and int(total) > 0:
        run["wire"] = int(wire) / int(total)
    if run["ok"] and cpu != "-" and int(total) > 0:
        run["us"] = float(cpu) / int(total) * 1e6
    runs[(t, which, int(rnd))] = run

def num(v):
    return "-" if v is None else f"{v:,.0f}".replace(",", " ")

def us(v):
    return "-" if v is None else f"{v:.2f}"

def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None

def ratio(a, b):
    return f"{a / b:.3f}" if a is not None and b else "-"

print(os.environ["H1"])
print(os.environ["H2"])
print()
window = os.environ["WINDOW"]
cols = " | ".join(f"run {r}" for r in range(1, rounds + 1))
print(f"| fan-out 1 -> {num(int(os.environ['SUBS']))}, {os.environ['SIZE_B']} B, saturating:"
      f" deliveries/s (broker CPU us per delivery) | {cols} | median deliveries/s"
      " | median broker CPU us/delivery |")
print("|---|" + "---:|" * (rounds + 2))
notes, slow, wire_rows = [], False, []
for t in threads_list:
    rows = {w: [runs.get((t, w, r)) for r in range(1, rounds + 1)] for w in ("before", "after")}
    fastest = min((x["us"] for w in rows for x in rows[w] if x and x["us"] is not None), default=None)
    meds, cpus = {}, {}
    for which in ("before", "after"):
        cells = []
        for r, run in enumerate(rows[which], 1):
            why = []
            if not run:
                why.append("not run")
            else:
                if not run["ok"]:
                    why.append("failed")
                why += run["flags"]
                if run["us"] is not None and fastest and run["us"] > 2 * fastest:
                    why.append(f"slow regime: broker CPU per delivery {run['us'] / fastest:.1f}x"
                               " the lowest of these runs")
                    slow = True
            cell = f"{num(run['dps'])} ({us(run['us'])})" if run and run["ok"] else "failed"
            if why:
                notes.append(f"`--threads {t}`, {which}, run {r}: " + "; ".join(why))
                cell += f" [{len(notes)}]"
            cells.append(cell)
        meds[which] = med([x["dps"] for x in rows[which] if x])
        cpus[which] = med([x["us"] for x in rows[which] if x])
        print(f"| `--threads {t}`, {which} | " + " | ".join(cells)
              + f" | {num(meds[which])} | {us(cpus[which])} |")
    per_round = []
    for b, a in zip(rows["before"], rows["after"]):
        per_round.append(f"{ratio(a and a['dps'], b and b['dps'])}"
                         f" ({ratio(a and a['us'], b and b['us'])})")
    print(f"| `--threads {t}`, after/before | " + " | ".join(per_round)
          + f" | **{ratio(meds['after'], meds['before'])}** | {ratio(cpus['after'], cpus['before'])} |")
    wires = {w: med([x["wire"] for x in rows[w] if x]) for w in ("before", "after")}
    wire_rows.append(f"| `--threads {t}` | {num(wires['before'])} | {num(wires['after'])}"
                     f" | {ratio(wires['after'], wires['before'])} |")
print()
print("| bytes on the wire per delivery (median) | before | after | after/before |")
print("|---|---:|---:|---:|")
print("\n".join(wire_rows))
print()
print(f"deliveries/s: the generator's deliveries_per_s (deliveries that arrived inside the {window} s"
      f" window / {window} s). Broker CPU: utime + stime of the broker (all threads) over the"
      " generator's run, divided by every delivery counted in it (warm-up included). after/before:"
      " per round, and of the medians; for CPU per delivery, above 1 means the after binary spends"
      " more per delivery. Bytes on the wire: what the generator read from all its sockets over"
      " the run (handshakes and the publisher's receipts included) / the deliveries counted.")
for i, n in enumerate(notes, 1):
    print(f"[{i}] {n}")
if any("gaps=" in n for n in notes):
    print("gaps: messages the broker dropped for subscribers more than limits.outbound_high_water"
          " (1 MiB) behind, i.e. the generator's readers fell behind in that run; its figure is"
          " what reached them, not what the broker could send.")
if any("generator-saturated" in n for n in notes):
    print("generator-saturated: a generator process used 90 % of a core or more in the window;"
          " the figure may be the generator's limit, not the broker's.")
if slow:
    print("slow regime: the broker spent over twice the CPU per delivery of the lowest run with the"
          " same --threads; such a run measures which regime it fell into, not the binary"
          " (see the comment at the top of bench/before_after.sh).")
PY
exit "$failed"
