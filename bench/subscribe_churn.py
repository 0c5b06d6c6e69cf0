#!/usr/bin/env python3
"""SUBSCRIBE/UNSUBSCRIBE rate of two broker binaries, alternated in one run (not a test).

Usage: bench/subscribe_churn.py BEFORE_BIN AFTER_BIN [ROUNDS] [PAIRS] [THREADS]
  defaults: 5 rounds, 200000 pairs, --threads 1

Each round runs BEFORE then AFTER. A run starts the broker (STOMP/TCP on a free loopback port,
limits lifted), opens one connection, CONNECTs, and writes PAIRS pairs of
"SUBSCRIBE id:sI destination:/topic/churn.I" + "UNSUBSCRIBE id:sI" (a new topic name each time:
the router creates and frees an entry per pair, and reports an interest transition both ways)
in batches of 1000 pairs, each batch's last UNSUBSCRIBE with a receipt that is awaited before the
next batch. It prints pairs per second over the whole run and the broker's CPU per pair (utime +
stime from /proc/PID/stat), then each binary's median and after/before.
The frames are built before the clock starts, so the client costs little beyond the writes.

Environment: BEFORE_ARGS / AFTER_ARGS (flag words added to that broker only, e.g.
AFTER_ARGS="--presence /topic/churn.*"); LOGIN=NAME (both brokers get a users file with NAME and
the connection logs in as NAME: presence counts logged-in users only, anonymous sessions are not).
"""
import base64
import hashlib
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

BATCH = 1000


def cpu_s(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def users_file(login):
    """A users file (docs/SECURITY.md format) with login, passcode "pw", 1000 PBKDF2 rounds."""
    salt = os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", b"pw", salt, 1000, 32)
    b64 = lambda b: base64.b64encode(b).decode().rstrip("=")
    f = tempfile.NamedTemporaryFile("w", prefix="churn-users-", delete=False)
    f.write("%s:$pbkdf2-sha256$1000$%s$%s\n" % (login, b64(salt), b64(digest)))
    f.close()
    return f.name


def start(binary, threads, extra):
    proc = subprocess.Popen(
        [binary, "--threads", threads, "--ws", "off", "--tcp", "127.0.0.1:0", "--log-level", "warn",
         "--set", "limits.max_subscriptions=100000", "--set", "limits.publish_rate=0"] + extra,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    line = proc.stdout.readline().decode()
    m = re.match(r"listening tcp 127\.0\.0\.1:(\d+)", line)
    if not m:
        proc.kill()
        sys.exit("no listening line from %s: %r" % (binary, line))
    return proc, int(m.group(1))


def read_until(sock, marker, buf):
    deadline = time.monotonic() + 30
    while marker not in buf:
        if time.monotonic() > deadline:
            sys.exit("timed out waiting for %r" % marker)
        chunk = sock.recv(65536)
        if not chunk:
            sys.exit("broker closed the connection: %r" % buf[-300:])
        buf += chunk
    return buf[buf.index(marker) + len(marker):]


def batches(pairs):
    out = []
    for b in range(0, pairs, BATCH):
        frames = []
        for i in range(b, min(pairs, b + BATCH)):
            frames.append(b"SUBSCRIBE\nid:s%d\ndestination:/topic/churn.%d\n\n\0" % (i, i))
            last = i == min(pairs, b + BATCH) - 1
            receipt = b"receipt:r%d\n" % b if last else b""
            frames.append(b"UNSUBSCRIBE\nid:s%d\n%s\n\0" % (i, receipt))
        out.append((b"receipt-id:r%d\n" % b, b"".join(frames)))
    return out


def run(binary, pairs, threads, work, extra, login):
    proc, port = start(binary, threads, extra)
    try:
        sock = socket.create_connection(("127.0.0.1", port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        creds = b"login:%s\npasscode:pw\n" % login.encode() if login else b""
        sock.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n%s\n\0" % creds)
        buf = read_until(sock, b"CONNECTED", b"")
        cpu0, t0 = cpu_s(proc.pid), time.monotonic()
        for marker, data in work:
            sock.sendall(data)
            buf = read_until(sock, marker, buf)
        elapsed, cpu = time.monotonic() - t0, cpu_s(proc.pid) - cpu0
        sock.close()
        return pairs / elapsed, cpu / pairs * 1e6
    finally:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    before, after = sys.argv[1], sys.argv[2]
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 5
    pairs = int(sys.argv[4]) if len(sys.argv) > 4 else 200000
    threads = sys.argv[5] if len(sys.argv) > 5 else "1"
    work = batches(pairs)
    login = os.environ.get("LOGIN", "")
    users = users_file(login) if login else None
    common = ["--users", users] if users else []
    before_args = common + os.environ.get("BEFORE_ARGS", "").split()
    after_args = common + os.environ.get("AFTER_ARGS", "").split()
    results = {"before": [], "after": []}
    print("| round | before pairs/s | after pairs/s | after/before | before CPU us/pair | after |")
    print("|---|---:|---:|---:|---:|---:|")
    for r in range(rounds):
        b = run(before, pairs, threads, work, before_args, login)
        time.sleep(1)
        a = run(after, pairs, threads, work, after_args, login)
        time.sleep(1)
        results["before"].append(b)
        results["after"].append(a)
        print("| %d | %.0f | %.0f | %.3f | %.2f | %.2f |" % (r + 1, b[0], a[0], a[0] / b[0], b[1], a[1]),
              flush=True)
    mb = statistics.median(x[0] for x in results["before"])
    ma = statistics.median(x[0] for x in results["after"])
    cb = statistics.median(x[1] for x in results["before"])
    ca = statistics.median(x[1] for x in results["after"])
    print("| median | %.0f | %.0f | %.3f | %.2f | %.2f |" % (mb, ma, ma / mb, cb, ca))
    if users:
        os.unlink(users)


if __name__ == "__main__":
    main()
