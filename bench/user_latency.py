#!/usr/bin/env python3
"""Latency of a /user/ message to a user on another node, at a paced rate (not a test).

Usage: bench/user_latency.py BROKER_BIN [RATE] [SECONDS] [REDIS_SERVER]
  defaults: 1000 messages/s, 10 s, /usr/bin/redis-server
  DEST=topic in the environment: /topic/lat instead (the same path for a plain topic, which a
  broker without user destinations also runs: the baseline to compare with)

Starts a redis-server (free loopback port, no persistence, a temp dir) and two nodes joined
through it (--threads 1, STOMP/TCP, a users file and an ACL granting svc write on /user/*/queue/#),
waits for both nodes' /readyz, connects alice to node A (SUBSCRIBE /user/queue/lat with a
receipt), waits until Redis shows node A subscribed to stompws:/user/alice/queue/lat, then svc on
node B sends RATE messages a second to /user/alice/queue/lat for SECONDS, each body the sender's
monotonic clock in ns. Latency = arrival - body, both clocks of this one process. The first
second is warm-up and not counted. Prints count, lost, p50, p99, p99.9 and max in ms.
Publisher and subscriber share this process's one thread (selectors): a late wake-up of the
script adds to the figures, never subtracts.

AWAKE=1 in the environment: one busy loop per CPU, pinned and at nice 19, runs for the length of
the measurement, so that no CPU halts while it waits. On a virtual machine that is otherwise idle,
waking a halted vCPU costs up to milliseconds at each of the path's hops (the script, node B,
Redis, node A); the nice 19 loops yield to every process of the path at once.
"""
import base64
import hashlib
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time


TOPIC = os.environ.get("DEST") == "topic"
SUBSCRIBE_TO = b"/topic/lat" if TOPIC else b"/user/queue/lat"
SEND_TO = b"/topic/lat" if TOPIC else b"/user/alice/queue/lat"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a.encode() if isinstance(a, str) else a
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def redis_numsub(port, channel):
    with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
        s.sendall(resp("PUBSUB", "NUMSUB", channel))
        data = b""
        while data.count(b"\r\n") < 4:
            data += s.recv(4096)
        return int(data.split(b"\r\n")[3][1:])


def users_entry(user, password):
    salt = os.urandom(16)
    dk = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, 1000)
    b64 = lambda b: base64.b64encode(b).decode().rstrip("=")  # noqa: E731
    return "%s:$pbkdf2-sha256$1000$%s$%s\n" % (user, b64(salt), b64(dk))


def http_status(port, path):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as s:
            s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
            return int(s.recv(64).split(b" ")[1])
    except OSError:
        return 0


def start_node(binary, node_id, redis_port, files):
    proc = subprocess.Popen(
        [binary, "--threads", "1", "--ws", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--log-level", "warn",
         "--redis", "redis://127.0.0.1:%d" % redis_port, "--node-id", node_id,
         "--users", os.path.join(files, "users"), "--acl", os.path.join(files, "acl"),
         "--set", "limits.publish_rate=0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    ports = {}
    while len(ports) < 2:
        line = proc.stdout.readline().decode()
        m = re.match(r"listening (ws|tcp) 127\.0\.0\.1:(\d+)", line)
        if not line:
            sys.exit("node %s exited during startup" % node_id)
        if m:
            ports[m.group(1)] = int(m.group(2))
    deadline = time.monotonic() + 15
    while http_status(ports["ws"], "/readyz") != 200:
        if time.monotonic() > deadline:
            sys.exit("node %s not ready within 15 s" % node_id)
        time.sleep(0.1)
    return proc, ports


def stomp(port, login, password):
    s = socket.create_connection(("127.0.0.1", port))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    s.sendall(b"CONNECT\naccept-version:1.2\nhost:x\nlogin:%s\npasscode:%s\n\n\0" %
              (login.encode(), password.encode()))
    buf = b""
    while b"\0" not in buf:
        buf += s.recv(4096)
    if not buf.startswith(b"CONNECTED"):
        sys.exit("CONNECT refused: %r" % buf)
    return s, buf[buf.index(b"\0") + 1:]


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(p / 100 * len(sorted_values)))]


def measure(alice, pending, svc, rate, seconds):
    """Paced sends on svc, arrivals on alice; returns the latencies (ns) after the warm-up."""
    sel = selectors.DefaultSelector()
    sel.register(alice, selectors.EVENT_READ)
    interval = 1e9 / rate
    total = int(rate * (seconds + 1))
    start = time.monotonic_ns()
    warm_until = start + 1_000_000_000
    sent, latencies, received, buf = 0, [], 0, pending
    deadline = start + int((seconds + 3) * 1e9)
    while received < total and time.monotonic_ns() < deadline:
        now = time.monotonic_ns()
        while sent < total and start + sent * interval <= now:
            body = b"%d" % time.monotonic_ns()
            svc.sendall(b"SEND\ndestination:%s\ncontent-length:%d\n\n%s\0" %
                        (SEND_TO, len(body), body))
            sent += 1
        next_due = start + sent * interval if sent < total else deadline
        wait = max(0.0, (next_due - time.monotonic_ns()) / 1e9)
        for _ in sel.select(timeout=wait):
            chunk = alice.recv(65536)
            arrived = time.monotonic_ns()
            if not chunk:
                sys.exit("alice's connection closed")
            buf += chunk
            while b"\0" in buf:
                frame, buf = buf.split(b"\0", 1)
                buf = buf.lstrip(b"\n")
                if not frame.startswith(b"MESSAGE"):
                    continue
                received += 1
                stamp = int(frame.split(b"\n\n", 1)[1])
                if stamp >= warm_until:
                    latencies.append(arrived - stamp)
    return sent, received, latencies


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    rate = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    seconds = int(sys.argv[3]) if len(sys.argv) > 3 else 10
    redis_bin = sys.argv[4] if len(sys.argv) > 4 else "/usr/bin/redis-server"
    files = tempfile.mkdtemp(prefix="stompws-user-lat-")
    procs = []
    try:
        if os.environ.get("AWAKE") == "1":
            for cpu in sorted(os.sched_getaffinity(0)):
                procs.append(subprocess.Popen(
                    ["taskset", "-c", str(cpu), "nice", "-n", "19", sys.executable, "-c",
                     "while True: pass"]))
        with open(os.path.join(files, "users"), "w") as f:
            f.write(users_entry("alice", "alice-pw") + users_entry("svc", "svc-pw"))
        with open(os.path.join(files, "acl"), "w") as f:
            # a broker without user destinations refuses the /user/ line (its '*' is no segment)
            f.write("* read,write /topic/lat\n" if TOPIC else "svc write /user/*/queue/#\n")
        redis_port = free_port()
        procs.append(subprocess.Popen(
            [redis_bin, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", files, "--loglevel", "warning"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(0.3)
        node_a, ports_a = start_node(binary, "nA", redis_port, files)
        procs.append(node_a)
        node_b, ports_b = start_node(binary, "nB", redis_port, files)
        procs.append(node_b)
        alice, pending = stomp(ports_a["tcp"], "alice", "alice-pw")
        alice.sendall(b"SUBSCRIBE\nid:s\ndestination:%s\nreceipt:r\n\n\0" % SUBSCRIBE_TO)
        while b"RECEIPT" not in pending:
            pending += alice.recv(4096)
        pending = pending[pending.index(b"\0", pending.index(b"RECEIPT")) + 1:]
        deadline = time.monotonic() + 10
        while redis_numsub(redis_port, "stompws:" + SEND_TO.decode()) < 1:
            if time.monotonic() > deadline:
                sys.exit("node A never subscribed the channel in Redis")
            time.sleep(0.05)
        svc, _ = stomp(ports_b["tcp"], "svc", "svc-pw")
        sent, received, lat = measure(alice, pending, svc, rate, seconds)
        lat.sort()
        ms = lambda ns: ns / 1e6  # noqa: E731
        print("%s, rate %d/s for %d s (+1 s warm-up), node B -> Redis -> node A: sent %d, "
              "received %d, lost %d" % (SEND_TO.decode(), rate, seconds, sent, received,
                                        sent - received))
        print("latency ms over %d messages: p50 %.3f  p99 %.3f  p99.9 %.3f  max %.3f" % (
            len(lat), ms(percentile(lat, 50)), ms(percentile(lat, 99)), ms(percentile(lat, 99.9)),
            ms(lat[-1])))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(files, ignore_errors=True)


if __name__ == "__main__":
    main()
