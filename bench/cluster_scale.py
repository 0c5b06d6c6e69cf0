#!/usr/bin/env python3
"""Six nodes on one Redis against six nodes on a three-shard Redis Cluster (issue #17;
docs/PERFORMANCE.md, "Redis Cluster"). Not a test: prints figures.

    meson setup build-rel --buildtype=release && ninja -C build-rel
    python3 bench/cluster_scale.py --broker build-rel/server/stompws \\
        --bench build-rel/bench/stompws-bench --mode both
    python3 bench/cluster_scale.py --mode redis-publish

For each configuration (--configs, default "single,cluster", run back to back): throw-away
redis-server(s) on free loopback ports in a temporary directory (no persistence) - "single" is
one plain redis-server, "cluster" three cluster-enabled masters joined with
`redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes` - and six stompws nodes
(--threads 1, STOMP/TCP and WebSocket on port 0; --redis for "single", --redis-cluster with the
three masters for "cluster"; publish and admission limits off). Everything started here is
stopped on exit, and every wait is bounded.

--mode scale (default): one `stompws-bench --scenario many-to-many` run per step, --pairs
publisher/subscriber pairs, pair i on its own topic /topic/scale.i (so the topics spread over the
hash slots, hence over the shards: the script prints how many each master serves), publishers on
nodes n1-n3 and subscribers on n4-n6 (`--publisher-urls 3`): every delivery crosses nodes through
Redis. The offered rate (all publishers together) rises through --offered until deliveries/s
stop growing (a step less than 5 % over the best before it).
For each step: deliveries/s (the generator's, over its window), latency p50/p99, loss (with
"drain ran into --drain", what was still in flight 5 s after the window counts as lost too), the
CPU of each redis-server, of each broker, of the generator and of this script, from utime+stime
in /proc/PID/stat sampled every 0.1 s and taken over the middle of the generator's window; each
redis-server's commands/s and CPU seconds per 100 000 deliveries; how busy the machine's CPUs
were (/proc/stat) and how much of that was other processes; and the nodes' drop and Redis
reconnect counters when they moved.

--mode wildcard: the same load at one offered rate (--wildcard-offered), --rounds times three
ways: no wildcard subscription; one subscriber to /topic/scale.# on n6, read by this script (it
matches every topic: in cluster mode every SEND is then published twice, an SPUBLISH and a
classic PUBLISH that Redis Cluster broadcasts to every master); one subscriber to /topic/other.#
(matching none of the topics). --mode both runs scale, then wildcard.

--mode redis-publish: Redis alone, no broker: redis-benchmark (-c 10 -P 16, no subscribers)
sending PUBLISH to one plain Redis, then SPUBLISH and PUBLISH to a master of a 3-master cluster,
and the cluster bus bytes (`ss -ti`) each classic PUBLISH costs.

The machine this was written on has 2 CPUs, shared with other work: six brokers, the Redis
processes and the generator share them, so CPU saturates long before one Redis does, and the
other% column shows how much the rest of the machine took at each step. Standard library only.
"""
import argparse
import atexit
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
CLK_TCK = os.sysconf('SC_CLK_TCK')
NODES = 6
PUB_NODES = 3  # n1-n3 publish, n4-n6 subscribe
SHARDS = 3
SAMPLE_S = 0.1
GO_DELAY_S = 0.1  # stompws-bench starts its window this long after the connections are up
WINDOW_MARGIN_S = 0.5  # CPU is taken over the window less this much at each end


def log(*args):
    print(*args, file=sys.stderr, flush=True)


def free_port(highest=65535):
    """A free loopback port, at most `highest`."""
    for _ in range(1000):
        with socket.socket() as s:
            s.bind(('127.0.0.1', 0))
            port = s.getsockname()[1]
        if port <= highest:
            return port
    raise RuntimeError(f'no free port below {highest}')


def cpu_ticks(pid):
    """utime + stime of pid, in clock ticks."""
    with open(f'/proc/{pid}/stat') as f:
        fields = f.read().rsplit(')', 1)[1].split()
    return int(fields[11]) + int(fields[12])  # fields 14 and 15 of proc(5)


def tree_ticks(pid):
    """CPU ticks of pid and of its children (stompws-bench's workers are its children)."""
    total = cpu_ticks(pid)
    for k in children(pid):
        try:
            total += cpu_ticks(k)
        except OSError:
            pass
    return total


def children(pid):
    try:
        with open(f'/proc/{pid}/task/{pid}/children') as f:
            return [int(k) for k in f.read().split()]
    except OSError:
        return []


def all_ticks():
    """{pid: CPU ticks} of every process on the machine."""
    out = {}
    for d in os.listdir('/proc'):
        if d.isdigit():
            try:
                out[int(d)] = cpu_ticks(int(d))
            except (OSError, IndexError, ValueError):
                pass  # gone meanwhile
    return out


def machine_ticks():
    """(busy, total, irq + softirq) jiffies of all CPUs, from /proc/stat. A tick that lands in
    a softirq (the loopback traffic's, much of it) counts there and in the stime of the process
    it interrupted."""
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    idle = v[3] + v[4]  # idle + iowait
    total = sum(v[:8])  # guest time is already inside user
    return total - idle, total, v[5] + v[6]


class Processes:
    """Everything this script starts; all of it stopped (and the temporary directory removed)
    on exit, whatever the exit."""

    def __init__(self):
        self.tmp = tempfile.mkdtemp(prefix='stompws-cluster-scale-')
        self.procs = []
        atexit.register(self.stop_all)

    def start(self, args, name):
        out = open(os.path.join(self.tmp, f'{name}.out'), 'w')
        err = open(os.path.join(self.tmp, f'{name}.err'), 'w')
        p = subprocess.Popen(args, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        p.name = name
        self.procs.append(p)
        return p

    def read(self, name, which='out'):
        with open(os.path.join(self.tmp, f'{name}.{which}')) as f:
            return f.read()

    def stop(self, procs):
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=5)
            if p in self.procs:
                self.procs.remove(p)

    def stop_all(self):
        self.stop(list(reversed(self.procs)))
        shutil.rmtree(self.tmp, ignore_errors=True)


def wait_until(pred, secs, what):
    end = time.monotonic() + secs
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.05)
    if what is None:
        return False
    raise RuntimeError(f'timed out after {secs} s: {what}')


def redis_cli(port, *args, timeout=10):
    r = subprocess.run(['redis-cli', '-h', '127.0.0.1', '-p', str(port), *args],
                       capture_output=True, text=True, timeout=timeout)
    return r.stdout.strip()


class RedisStats:
    """One connection to a redis-server, asking INFO stats for total_commands_processed."""

    def __init__(self, port):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=5)

    def commands(self):
        self.sock.sendall(b'*2\r\n$4\r\nINFO\r\n$5\r\nstats\r\n')
        buf = b''
        while b'\r\n' not in buf:
            buf += self.sock.recv(65536)
        head, _, rest = buf.partition(b'\r\n')
        size = int(head[1:])  # a bulk string: $<length>
        while len(rest) < size + 2:
            rest += self.sock.recv(65536)
        m = re.search(rb'^total_commands_processed:(\d+)', rest, re.M)
        return int(m.group(1))

    def close(self):
        self.sock.close()


# ---- Redis -----------------------------------------------------------------------------------

def start_redis(ps, cluster):
    """One plain redis-server, or three cluster masters joined into one cluster; [(port, proc)]."""
    servers = []
    for _ in range(SHARDS if cluster else 1):
        # A cluster node also listens on its port + 10000 (the cluster bus).
        port = free_port(55535 if cluster else 65535)
        d = os.path.join(ps.tmp, f'redis-{port}')
        os.mkdir(d)
        args = ['redis-server', '--port', str(port), '--bind', '127.0.0.1', '--save', '',
                '--appendonly', 'no', '--dir', d, '--loglevel', 'warning']
        if cluster:
            args += ['--cluster-enabled', 'yes', '--cluster-config-file', 'nodes.conf',
                     '--cluster-node-timeout', '5000']
        servers.append((port, ps.start(args, f'redis-{port}')))
    for port, proc in servers:
        if not wait_until(lambda: redis_cli(port, 'PING') == 'PONG', 10, None):
            raise RuntimeError(f'redis-server on {port} did not answer PING within 10 s: '
                               + ps.read(proc.name, 'out')[-1000:] + ps.read(proc.name, 'err'))
    if cluster:
        out = subprocess.run(['redis-cli', '--cluster', 'create',
                              *[f'127.0.0.1:{p}' for p, _ in servers],
                              '--cluster-replicas', '0', '--cluster-yes'],
                             capture_output=True, text=True, timeout=60)
        if out.returncode != 0:
            raise RuntimeError(f'redis-cli --cluster create failed: {out.stdout} {out.stderr}')
        for port, _ in servers:
            wait_until(lambda: 'cluster_state:ok' in redis_cli(port, 'CLUSTER', 'INFO'), 20,
                       f'cluster_state:ok on {port}')
    return servers


def key_slot(key):
    """Redis Cluster's hash slot of a key or shard channel (CRC16/XMODEM of its hash tag, or
    of the whole key when it has none, modulo 16384)."""
    b = key.encode()
    open_at = b.find(b'{')
    if open_at >= 0:
        close_at = b.find(b'}', open_at + 1)
        if close_at > open_at + 1:
            b = b[open_at + 1:close_at]
    crc = 0
    for byte in b:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else crc << 1
            crc &= 0xFFFF
    return crc % 16384


def topics_per_shard(servers, pairs):
    """How many of the channels stompws:/topic/scale.<i> each master serves."""
    ranges = []  # (first slot, last slot, port)
    for line in redis_cli(servers[0][0], 'CLUSTER', 'NODES').splitlines():
        f = line.split()
        port = int(f[1].split('@')[0].rsplit(':', 1)[1])
        for r in f[8:]:
            lo, _, hi = r.partition('-')
            ranges.append((int(lo), int(hi or lo), port))
    count = {p: 0 for p, _ in servers}
    for i in range(pairs):
        slot = key_slot(f'stompws:/topic/scale.{i}')
        count[next(p for lo, hi, p in ranges if lo <= slot <= hi)] += 1
    return [count[p] for p, _ in servers]


# ---- brokers ---------------------------------------------------------------------------------

def start_brokers(ps, binary, servers, cluster, threads):
    redis_args = (['--redis-cluster', ','.join(f'127.0.0.1:{p}' for p, _ in servers)]
                  if cluster else ['--redis', f'redis://127.0.0.1:{servers[0][0]}'])
    nodes = []
    for k in range(1, NODES + 1):
        name = f'n{k}'
        args = [binary, '--threads', str(threads), '--ws', '127.0.0.1:0', '--tcp', '127.0.0.1:0',
                '--log-level', 'warn', '--node-id', name, *redis_args,
                '--set', 'limits.publish_rate=0', '--set', 'limits.connection_rate=0',
                '--set', 'limits.max_connections_per_address=100000']
        nodes.append({'name': name, 'proc': ps.start(args, name)})
    for n in nodes:
        def listening(n=n):
            if n['proc'].poll() is not None:
                raise RuntimeError(f"{n['name']} exited: {ps.read(n['name'], 'err')[-2000:]}")
            out = ps.read(n['name'])
            tcp = re.search(r'^listening tcp 127\.0\.0\.1:(\d+)$', out, re.M)
            ws = re.search(r'^listening ws 127\.0\.0\.1:(\d+)$', out, re.M)
            if tcp and ws:
                n['tcp'], n['ws'] = int(tcp.group(1)), int(ws.group(1))
                return True
            return False
        wait_until(listening, 10, f"{n['name']} listening")
    for n in nodes:
        wait_until(lambda n=n: links_up(n), 15, f"{n['name']}'s Redis links up (its /metrics)")
    return nodes


def metrics(node):
    with urllib.request.urlopen(f"http://127.0.0.1:{node['ws']}/metrics", timeout=5) as r:
        return r.read().decode()


def links_up(node):
    """Every stompws_cluster_*link_up series of the node's /metrics at 1 (at least one)."""
    vals = re.findall(r'^stompws_cluster_\w*link_up(?:\{[^}]*\})? (\S+)$', metrics(node), re.M)
    return bool(vals) and all(float(v) == 1 for v in vals)


# Counters that explain a loss: messages dropped (by reason), Redis links lost, MOVED replies.
TROUBLE = re.compile(r'^(stompws_messages_dropped_total\{reason="(\w+)"\}|'
                     r'stompws_cluster_(reconnects|moved|ask|failovers)_total) (\S+)$', re.M)


def trouble(nodes):
    """{what: count} summed over the nodes, for the TROUBLE counters."""
    out = {}
    for n in nodes:
        for m in TROUBLE.finditer(metrics(n)):
            if m.group(2) == 'no_subscriber':
                continue  # a publishing node's own: its subscribers are on other nodes
            what = f'dropped {m.group(2)}' if m.group(2) else m.group(3)
            out[what] = out.get(what, 0) + float(m.group(4))
    return out


# ---- the wildcard subscriber -----------------------------------------------------------------

class WildcardSubscriber:
    """One STOMP/TCP connection subscribed to a wildcard, read as fast as it comes; counts
    MESSAGE frames (every NUL after CONNECTED and the RECEIPT ends one)."""

    def __init__(self, port, dest):
        self.sock = socket.create_connection(('127.0.0.1', port), timeout=10)
        self.sock.sendall(b'CONNECT\naccept-version:1.2\nhost:/\n\n\0'
                          + f'SUBSCRIBE\nid:w\ndestination:{dest}\nreceipt:w\n\n\0'.encode())
        got = b''
        while got.count(b'\0') < 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RuntimeError(f'wildcard subscriber closed: {got!r}')
            got += chunk
        if not got.startswith(b'CONNECTED') or b'RECEIPT' not in got:
            raise RuntimeError(f'wildcard subscriber: {got[:300]!r}')
        self.messages = got.count(b'\0') - 2
        self.sock.settimeout(None)
        self.thread = threading.Thread(target=self.read, daemon=True)
        self.thread.start()

    def read(self):
        try:
            while True:
                chunk = self.sock.recv(1 << 20)
                if not chunk:
                    return
                self.messages += chunk.count(b'\0')
        except OSError:
            return

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(timeout=5)


# ---- one step --------------------------------------------------------------------------------

class Sampler(threading.Thread):
    """CPU ticks of the given pids, the machine's CPU and a counter, every SAMPLE_S."""

    def __init__(self, pids, redis_ports, count=lambda: 0):
        super().__init__(daemon=True)
        self.pids, self.count, self.samples = pids, count, []
        self.tree = None  # a pid counted with its children (the generator)
        self.redis = [RedisStats(p) for p in redis_ports]
        self.errors = []
        self.done = threading.Event()
        self.seen = None  # {pid: ticks} of every process at the last sample
        self.others = 0  # ticks of processes not started here, summed sample to sample

    def take(self):
        ticks = {}
        for pid in self.pids:
            try:
                ticks[pid] = tree_ticks(pid) if pid == self.tree else cpu_ticks(pid)
            except OSError:
                ticks[pid] = None
        commands = []
        for r in self.redis:
            try:
                commands.append(r.commands())
            except (OSError, ValueError, AttributeError) as e:
                self.errors.append(f'INFO stats: {e}')
                commands.append(None)
        self.count_others()
        self.samples.append((time.monotonic(), ticks, machine_ticks(), self.count(), commands,
                             self.others))

    def count_others(self):
        """Adds what other processes used since the last sample (a process that ended in
        between loses its last SAMPLE_S; one that began counts from its start)."""
        now = all_ticks()
        ours = set(self.pids) | set(children(self.tree) if self.tree else [])
        if self.seen is not None:
            self.others += sum(t - self.seen.get(p, 0) for p, t in now.items()
                               if p not in ours and t >= self.seen.get(p, 0))
        self.seen = now

    def run(self):
        try:
            while not self.done.is_set():
                self.take()
                self.done.wait(SAMPLE_S)
        finally:
            for r in self.redis:
                r.close()

    def between(self, t0, t1):
        """(seconds, {pid: CPU seconds}, machine busy share, counter delta, [commands each
        Redis processed]) over the first and last samples inside [t0, t1]."""
        inside = [s for s in self.samples if t0 <= s[0] <= t1]
        if len(inside) < 2:
            raise RuntimeError(f'no CPU samples inside the measured window ({len(self.samples)} '
                               f'samples in all; {self.errors[:3]})')
        (a, ta, ma, ca, ra, oa), (b, tb, mb, cb, rb, ob) = inside[0], inside[-1]
        cpu = {}
        for p in self.pids:
            x, y = ta.get(p), tb.get(p)
            cpu[p] = (y - x) / CLK_TCK if x is not None and y is not None else None
        busy = (mb[0] - ma[0]) / max(1, mb[1] - ma[1])
        irq = (mb[2] - ma[2]) / max(1, mb[1] - ma[1])
        commands = [y - x if x is not None and y is not None else float('nan')
                    for x, y in zip(ra, rb)]
        return b - a, cpu, (busy, irq, (ob - oa) / CLK_TCK), cb - ca, commands


def run_step(args, redis, nodes, offered, wildcard=None):
    """One stompws-bench run at `offered` SENDs/s over all publishers; its figures."""
    urls = [f"tcp://127.0.0.1:{n['tcp']}" for n in nodes]
    cmd = [args.bench, '--scenario', 'many-to-many', '--pairs', str(args.pairs),
           '--rate', f'{offered / args.pairs:.6g}', '--size', str(args.size),
           '--dest', '/topic/scale', '--warmup', str(args.warmup),
           '--duration', str(args.duration), '--drain', '5', '--procs', str(args.procs),
           '--publisher-urls', str(PUB_NODES), '--json']
    for u in urls:
        cmd += ['--url', u]
    pids = [p.pid for _, p in redis] + [n['proc'].pid for n in nodes] + [os.getpid()]
    sampler = Sampler(pids, [port for port, _ in redis],
                      (lambda: wildcard.messages) if wildcard else (lambda: 0))
    trouble_before = trouble(nodes)
    sampler.start()
    started = time.monotonic()
    bench = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    sampler.tree = bench.pid
    sampler.pids = pids + [bench.pid]
    try:
        out, err = bench.communicate(timeout=args.warmup + args.duration + 120)
    except subprocess.TimeoutExpired:
        bench.kill()
        bench.communicate()
        raise RuntimeError(f'stompws-bench did not finish: {" ".join(cmd)}')
    finally:
        sampler.done.set()
        sampler.join()
    trouble_after = trouble(nodes)
    lines = [ln for ln in out.splitlines() if ln.startswith('{')]
    if bench.returncode != 0 or not lines:
        raise RuntimeError(f'stompws-bench exited {bench.returncode}: {err.strip()[-2000:]}')
    r = json.loads(lines[-1])
    window_start = started + r['connections']['setup_s'] + GO_DELAY_S + args.warmup
    secs, cpu, (busy, irq, others), wild, commands = sampler.between(window_start + WINDOW_MARGIN_S,
                                            window_start + args.duration - WINDOW_MARGIN_S)
    if secs < 0.5 * (args.duration - 2 * WINDOW_MARGIN_S):  # the sampler was starved
        cpu = {p: None for p in cpu}
        log(f'CPU samples covered {secs:.2f} s of the window: no CPU figures for this step')
    share = {p: (c / secs if c is not None else float('nan')) for p, c in cpu.items()}
    lat = r.get('latency_ms', {})
    return {
        'offered': offered, 'deliveries': r['deliveries_per_s'], 'sent': r['publish_rate'],
        'loss': r['loss'], 'p50': lat.get('p50', float('nan')), 'p99': lat.get('p99', float('nan')),
        'redis': [share[p.pid] for _, p in redis],
        'redis_commands': [c / secs for c in commands], 'brokers': [share[n['proc'].pid] for n in nodes],
        'generator': share[bench.pid], 'script': share[os.getpid()], 'busy': busy, 'wildcard_per_s': wild / secs,
        'irq': irq * os.cpu_count(),
        'others': others / secs,
        'errors': r['errors'], 'warnings': r.get('warnings', []),
        'trouble': {k: v - trouble_before.get(k, 0) for k, v in trouble_after.items()
                    if v > trouble_before.get(k, 0)},
    }


# ---- report ----------------------------------------------------------------------------------

def pct(x):
    return f'{100 * x:.0f}'


def print_header(config, redis):
    names = ' '.join(f'r{i + 1}%'.rjust(5) for i in range(len(redis)))
    names += ' ' + ' '.join(f'r{i + 1}cmd/s'.rjust(8) for i in range(len(redis)))
    per100k = ' '.join(f'r{i + 1}/100k'.rjust(8) for i in range(len(redis)))
    print(f"{'config':8} {'offered/s':>9} {'deliv/s':>9} {'p50ms':>7} {'p99ms':>7} {'loss':>6} "
          f"{names} {per100k}  n1..n6 % (pub pub pub sub sub sub)   gen%  py%  cpus%  irq% other%")


def print_step(config, s):
    redis = ' '.join(pct(c).rjust(5) for c in s['redis'])
    redis += ' ' + ' '.join(f'{c:8.0f}' for c in s['redis_commands'])
    per100k = ' '.join(f'{c / s["deliveries"] * 1e5:8.3f}' if s['deliveries'] > 0 else '       -'
                       for c in s['redis'])
    brokers = ' '.join(pct(c).rjust(3) for c in s['brokers'])
    print(f"{config:8} {s['offered']:9.0f} {s['deliveries']:9.0f} {s['p50']:7.1f} {s['p99']:7.1f} "
          f"{s['loss']:6d} {redis} {per100k}  {brokers:36} {pct(s['generator']):>5} "
          f"{pct(s['script']):>4} {pct(s['busy']):>5} {pct(s['irq']):>5} {pct(s['others']):>6}", flush=True)
    for w in s['warnings']:
        print(f'         (stompws-bench: {w})', flush=True)
    if s['trouble']:
        print('         (the nodes\' /metrics over the run: '
              + ', '.join(f'{k} {v:.0f}' for k, v in sorted(s['trouble'].items())) + ')', flush=True)


def saturated(steps):
    """Deliveries stopped growing: the last step under 5 % above the best before it."""
    if len(steps) < 2:
        return False
    return steps[-1]['deliveries'] < 1.05 * max(s['deliveries'] for s in steps[:-1])


# ---- the configurations ----------------------------------------------------------------------

def print_node_logs(ps, nodes):
    """What the nodes logged (--log-level warn: link losses, slow consumers cut, ...)."""
    for n in nodes:
        lines = ps.read(n['name'], 'err').splitlines()
        if lines:
            print(f"  {n['name']} logged {len(lines)} line(s), the first: "
                  + ' | '.join(ln[:160] for ln in lines[:3]))


def with_config(args, config, body):
    ps = Processes()
    try:
        redis = start_redis(ps, config == 'cluster')
        nodes = start_brokers(ps, args.broker, redis, config == 'cluster', args.threads)
        time.sleep(1)
        result = body(redis, nodes)
        print_node_logs(ps, nodes)
        return result
    except Exception:
        for p in ps.procs:
            if p.name.startswith('n'):
                tail = ps.read(p.name, 'err')[-1500:]
                if tail:
                    log(f'--- {p.name} stderr (last lines):\n{tail}')
        raise
    finally:
        ps.stop_all()
        atexit.unregister(ps.stop_all)


def scale(args, config):
    def body(redis, nodes):
        print(f'\n## {config}: {len(redis)} redis-server(s), {NODES} nodes, {args.pairs} pairs '
              f'(publishers on n1-n3, subscribers on n4-n6), {args.size} B bodies')
        if len(redis) > 1:
            print(f'topics per master r1..r{len(redis)}: '
                  + ' / '.join(map(str, topics_per_shard(redis, args.pairs))))
        print_header(config, redis)
        steps = []
        for offered in args.offered:
            steps.append(run_step(args, redis, nodes, offered))
            print_step(config, steps[-1])
            if saturated(steps):
                break
        return steps
    return with_config(args, config, body)


def wildcard(args, config):
    def body(redis, nodes):
        print(f'\n## {config}, wildcard cost: {args.wildcard_offered} SENDs/s offered over '
              f'{args.pairs} pairs; wildcard subscriber on n6')
        print_header(config, redis)
        results = []
        for rnd in range(args.rounds):
            for dest in args.wildcards:
                w = WildcardSubscriber(nodes[-1]['tcp'], dest) if dest else None
                try:
                    if w:
                        time.sleep(1)  # the glob registered before the first SEND
                    s = run_step(args, redis, nodes, args.wildcard_offered, w)
                finally:
                    if w:
                        w.close()
                print(f"round {rnd + 1}, wildcard {dest or 'none'}: the wildcard subscriber got "
                      f"{s['wildcard_per_s']:.0f} MESSAGEs/s")
                print_step(config, s)
                results.append((dest, s))
        return results
    return with_config(args, config, body)


def bus_bytes(bus_ports):
    """Bytes sent so far on the established loopback connections of these cluster bus ports
    (`ss -ti`: bytes_sent of both ends)."""
    out = subprocess.run(['ss', '-tinH', 'state', 'established'], capture_output=True,
                         text=True, timeout=10).stdout
    total = 0
    for m in re.finditer(r'127\.0\.0\.1:(\d+)\s+127\.0\.0\.1:(\d+)[^\n]*\n[^\n]*?'
                         r'bytes_sent:(\d+)', out):
        if int(m.group(1)) in bus_ports or int(m.group(2)) in bus_ports:
            total += int(m.group(3))
    return total


def redis_benchmark(port, command, channel, size, n=200000):
    out = subprocess.run(['redis-benchmark', '-p', str(port), '-n', str(n), '-c', '10', '-P', '16',
                          '-q', command, channel, 'x' * size],
                         capture_output=True, text=True, timeout=300).stdout
    return float(re.search(r'([\d.]+) requests per second', out).group(1))


def redis_publish(args):
    """PUBLISH on one plain Redis, and SPUBLISH and PUBLISH on a master of the 3-master
    cluster, with redis-benchmark (no subscribers, -c 10 -P 16): what Redis alone pays for the
    classic PUBLISH a wildcard adds, and the cluster bus bytes each one costs."""
    if shutil.which('redis-benchmark') is None or shutil.which('ss') is None:
        print('\n## redis-publish: needs redis-benchmark and ss; skipped')
        return
    ps = Processes()
    try:
        single = start_redis(ps, False)[0][0]
        masters = start_redis(ps, True)
        first = masters[0][0]
        # a channel in a slot of the first master, so SPUBLISH is served there
        channel = next(f'stompws:/topic/bench.{i}' for i in range(100000)
                       if key_slot_owned(first, f'stompws:/topic/bench.{i}'))
        bus = {p + 10000 for p, _ in masters}
        print(f'\n## redis-publish: redis-benchmark -c 10 -P 16, {args.size} B messages, no '
              f'subscribers; channel {channel}')
        print(f"{'round':5} {'one Redis PUBLISH/s':>20} {'cluster SPUBLISH/s':>19} "
              f"{'cluster PUBLISH/s':>18} {'bus bytes per PUBLISH':>22}")
        for rnd in range(args.rounds):
            plain = redis_benchmark(single, 'PUBLISH', channel, args.size)
            sharded = redis_benchmark(first, 'SPUBLISH', channel, args.size)
            before = bus_bytes(bus)
            n = 100000
            broadcast = redis_benchmark(first, 'PUBLISH', channel, args.size, n)
            time.sleep(0.5)
            per = (bus_bytes(bus) - before) / n
            print(f'{rnd + 1:5} {plain:20.0f} {sharded:19.0f} {broadcast:18.0f} {per:22.0f}',
                  flush=True)
    finally:
        ps.stop_all()
        atexit.unregister(ps.stop_all)


def key_slot_owned(port, key):
    """Whether the master on port serves key's slot."""
    slot = key_slot(key)
    for line in redis_cli(port, 'CLUSTER', 'NODES').splitlines():
        f = line.split()
        if 'myself' in f[2]:
            for r in f[8:]:
                lo, _, hi = r.partition('-')
                if int(lo) <= slot <= int(hi or lo):
                    return True
    return False


COLUMNS = (
    'columns (CPU over the middle of each window, % of one core): r<i>% = that redis-server; '
    'r<i>cmd/s = the commands it processed per second (INFO stats); r<i>/100k = its CPU '
    'seconds per 100 000 deliveries; n1..n6 = each broker; gen% = stompws-bench (all its '
    'processes); py% = this script (its sampler and the wildcard subscriber); cpus% = all CPUs '
    'busy, every process on the machine (% of all CPUs); irq% = interrupts and softirqs '
    '(loopback TCP mostly, also counted in the process they interrupted); other% = every '
    'process not started here, kernel threads (ksoftirqd) included, from /proc/*/stat')


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--broker', default=os.path.join(HERE, '../build/server/stompws'))
    ap.add_argument('--bench', default=os.path.join(HERE, '../build/bench/stompws-bench'))
    ap.add_argument('--mode', choices=['scale', 'wildcard', 'both', 'redis-publish'],
                    default='scale')
    ap.add_argument('--configs', default='single,cluster',
                    help='comma-separated: single (one Redis), cluster (3 masters)')
    ap.add_argument('--pairs', type=int, default=300, help='publisher/subscriber pairs = topics')
    ap.add_argument('--offered', default='10000,20000,40000,80000,160000,240000,320000,480000',
                    help='offered SENDs/s (all publishers together), one step each')
    ap.add_argument('--wildcard-offered', type=float, default=20000)
    ap.add_argument('--rounds', type=int, default=2,
                    help='wildcard and redis-publish modes: rounds of the runs')
    ap.add_argument('--wildcards', default='none,/topic/scale.#,/topic/other.#',
                    help='wildcard mode: the wildcard subscription of each run (none: no subscriber)')
    ap.add_argument('--size', type=int, default=100)
    ap.add_argument('--warmup', type=float, default=2)
    ap.add_argument('--duration', type=float, default=6)
    ap.add_argument('--procs', type=int, default=1, help="stompws-bench's worker processes")
    ap.add_argument('--threads', type=int, default=1, help="each broker's --threads")
    args = ap.parse_args()
    args.offered = [float(x) for x in args.offered.split(',')]
    args.wildcards = [None if w == 'none' else w for w in args.wildcards.split(',')]
    args.configs = args.configs.split(',')
    for c in args.configs:
        if c not in ('single', 'cluster'):
            ap.error(f'--configs: unknown configuration {c}')
    for tool in ('redis-server', 'redis-cli'):
        if shutil.which(tool) is None:
            ap.error(f'needs {tool}')
    if args.mode == 'redis-publish':
        return args
    for b in (args.broker, args.bench):
        if not os.access(b, os.X_OK):
            ap.error(f'no executable at {b} (build it first)')
    if 'cluster' in args.configs:
        usage = subprocess.run([args.broker, '--help'], capture_output=True, text=True).stdout
        if '--redis-cluster' not in usage:
            ap.error(f'{args.broker} has no --redis-cluster: give --configs single')
    return args


def main():
    args = parse_args()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, lambda *_: sys.exit(130))
    with open('/proc/loadavg') as f:
        load = ' '.join(f.read().split()[:3])
    version = subprocess.run(['redis-server', '--version'], capture_output=True,
                             text=True).stdout.split()[2]
    print(f'cluster_scale: {os.cpu_count()} CPUs, load average {load} at the start; redis {version}')
    if args.mode == 'redis-publish':
        redis_publish(args)
        return
    print(COLUMNS)
    for config in args.configs:
        if args.mode in ('scale', 'both'):
            scale(args, config)
        if args.mode in ('wildcard', 'both'):
            wildcard(args, config)


if __name__ == '__main__':
    main()
