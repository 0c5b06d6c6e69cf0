#!/usr/bin/env python3
"""What a stalled subscriber costs in broker memory, against limits.outbound_high_water.

Usage: bench/stalled_rss.py BROKER_BIN [SIZES] [STALLED] [HIGH_WATER]
  SIZES       comma-separated body sizes in bytes (default 100,1000,1100,4000,8000,9000,16000)
  STALLED     subscribers that never read (default 1)
  HIGH_WATER  limits.outbound_high_water in bytes (default 1048576, the default)

For each size it starts the broker (loopback, free port, --threads 1, no slow-consumer cut-off),
connects STALLED TCP subscribers with a 4 KiB receive buffer that never read, publishes 8 MiB of
SENDs to their topic, waits for a receipt, and prints the broker's RSS growth per stalled
subscriber: one markdown row per size. The kernel's socket buffers are not in the broker's RSS.
"""
import re
import socket
import subprocess
import sys
import time


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def start(binary, high_water):
    proc = subprocess.Popen(
        [binary, "--threads", "1", "--ws", "127.0.0.1:0", "--tcp", "127.0.0.1:0", "--log-level", "warn",
         "--set", "limits.outbound_high_water=%d" % high_water,
         "--set", "limits.slow_consumer_max_drops=1000000000", "--set", "limits.publish_rate=0"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        m = re.search(r"listening tcp 127\.0\.0\.1:(\d+)", proc.stdout.readline().decode())
        if m:
            return proc, int(m.group(1))
    proc.kill()
    raise RuntimeError("the broker did not start")


def stomp(port, rcvbuf=None):
    s = socket.socket()
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(30)
    s.connect(("127.0.0.1", port))
    s.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n\n\0")
    s.recv(4096)
    return s


def measure(binary, size, stalled, high_water):
    proc, port = start(binary, high_water)
    try:
        readers = []
        for _ in range(stalled):
            s = stomp(port, 4096)
            s.sendall(b"SUBSCRIBE\nid:1\ndestination:/topic/stalled\nreceipt:r\n\n\0")
            s.recv(4096)
            readers.append(s)
        pub = stomp(port)
        frame = b"SEND\ndestination:/topic/stalled\n\n" + b"x" * size + b"\0"
        before = rss_kib(proc.pid)
        for _ in range(0, max(1, 8 * 1024 * 1024 // len(frame)), 50):
            pub.sendall(frame * 50)
        pub.sendall(b"SEND\ndestination:/topic/fence\nreceipt:f\n\n\0")
        pub.recv(4096)
        time.sleep(0.5)
        return (rss_kib(proc.pid) - before) / 1024 / stalled
    finally:
        proc.kill()
        proc.wait()


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    binary = sys.argv[1]
    sizes = [int(x) for x in (sys.argv[2] if len(sys.argv) > 2 else "100,1000,1100,4000,8000,9000,16000").split(",")]
    stalled = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    high_water = int(sys.argv[4]) if len(sys.argv) > 4 else 1048576
    print("| body bytes | RSS per stalled subscriber (MiB) | / outbound_high_water |")
    print("|---:|---:|---:|")
    for size in sizes:
        mib = measure(binary, size, stalled, high_water)
        print("| %d | %.2f | %.2f |" % (size, mib, mib * 1048576 / high_water), flush=True)


if __name__ == "__main__":
    main()
