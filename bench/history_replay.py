#!/usr/bin/env python3
"""Replay on connect, end to end: SUBS subscribers each replaying RETAINED retained messages.

Usage: bench/history_replay.py BROKER_BIN [SUBS] [RETAINED] [SIZE] [THREADS]
  defaults: 1000 subscribers, 1000 retained messages, 100-byte bodies, --threads 1

Starts the broker (loopback, free ports, connection limits lifted) with
--history '/topic/replay=RETAINED', publishes RETAINED SENDs to /topic/replay and waits for a
receipt, then opens SUBS STOMP/TCP connections at once, each writing CONNECT and a SUBSCRIBE with
x-stream-offset:first in one write, and reads until every one holds RETAINED MESSAGE frames.
Prints the time from the first connect to the last message, each subscriber's time to its last
message (p50, p99, max), the broker's CPU over the replay, its RSS before and after, and checks
that every subscriber got exactly RETAINED messages (frames counted by their NUL terminator).
"""
import os
import re
import selectors
import socket
import subprocess
import sys
import time


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_s(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    subs = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    retained = int(sys.argv[3]) if len(sys.argv) > 3 else 1000
    size = int(sys.argv[4]) if len(sys.argv) > 4 else 100
    threads = sys.argv[5] if len(sys.argv) > 5 else "1"
    proc = subprocess.Popen(
        [binary, "--threads", threads, "--ws", "off", "--tcp", "127.0.0.1:0", "--log-level", "warn",
         "--history", "/topic/replay=%d" % retained,
         "--set", "limits.connection_rate=0", "--set", "limits.max_connections_per_address=100000",
         "--set", "limits.publish_rate=0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        port = None
        deadline = time.monotonic() + 10
        while port is None and time.monotonic() < deadline:
            m = re.search(r"listening tcp 127\.0\.0\.1:(\d+)", proc.stdout.readline().decode())
            port = int(m.group(1)) if m else None
        if port is None:
            sys.exit("the broker did not start")
        pub = socket.create_connection(("127.0.0.1", port))
        pub.settimeout(30)
        pub.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0")
        pub.recv(4096)
        frame = b"SEND\ndestination:/topic/replay\n\n" + b"x" * size + b"\0"
        for i in range(0, retained, 100):
            pub.sendall(frame * min(100, retained - i))
        pub.sendall(b"SEND\ndestination:/topic/fence\nreceipt:f\n\n\0")
        while b"RECEIPT" not in pub.recv(4096):
            pass
        rss_before, cpu_before = rss_kib(proc.pid), cpu_s(proc.pid)

        hello = (b"CONNECT\naccept-version:1.2\nhost:x\n\n\0"
                 b"SUBSCRIBE\nid:r\ndestination:/topic/replay\nx-stream-offset:first\n\n\0")
        sel = selectors.DefaultSelector()
        frames = {}
        done_at = {}
        start = time.monotonic()
        for i in range(subs):
            s = socket.create_connection(("127.0.0.1", port))
            s.setblocking(False)
            s.sendall(hello)
            sel.register(s, selectors.EVENT_READ, i)
            frames[i] = 0
        want = retained + 1  # CONNECTED, then the replayed MESSAGEs
        deadline = time.monotonic() + 300
        while len(done_at) < subs and time.monotonic() < deadline:
            for key, _ in sel.select(timeout=1):
                data = key.fileobj.recv(1 << 20)
                frames[key.data] += data.count(b"\0")
                if not data or frames[key.data] >= want:
                    done_at[key.data] = time.monotonic() - start
                    sel.unregister(key.fileobj)
        total = time.monotonic() - start
        cpu = cpu_s(proc.pid) - cpu_before
        short = [i for i in range(subs) if frames[i] != want]
        times = sorted(done_at.values())
        pct = lambda p: times[min(len(times) - 1, int(p * len(times)))] * 1000 if times else float("nan")
        print("%d subscribers x %d retained %d-byte messages, --threads %s: all replayed in %.2f s "
              "(%d deliveries/s); per subscriber p50 %.0f ms, p99 %.0f ms, max %.0f ms; broker CPU "
              "%.2f s; RSS %.1f -> %.1f MiB; %s"
              % (subs, retained, size, threads, total, subs * retained / total, pct(0.5), pct(0.99),
                 times[-1] * 1000 if times else float("nan"), cpu, rss_before / 1024,
                 rss_kib(proc.pid) / 1024,
                 "every subscriber got exactly %d" % retained if not short
                 else "%d subscribers got a wrong count" % len(short)))
        sys.exit(1 if short else 0)
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
