#!/usr/bin/env python3
"""The broker's instructions per SUBSCRIBE + UNSUBSCRIBE pair, counted by callgrind (not a test).

Usage: bench/churn_instructions.py BROKER_BIN [BROKER_BIN...]
  environment: PAIRS [20000], ARGS_<i> (flag words for the i-th binary, from 1, e.g.
  ARGS_2="--presence /topic/churn.*"), LOGIN=NAME (as in subscribe_churn.py: a users file with
  NAME for every broker, and the connection logs in as NAME)

The same binary may be given twice with different ARGS_<i>. For each, twice (PAIRS pairs, then
twice as many): start it under `valgrind --tool=callgrind`, run subscribe_churn.py's pairs on one
connection (a new /topic/churn.I name each pair, batches of 1000 ending with a receipt), stop it
with SIGTERM. The difference between the two runs' instructions (Ir, whole process), divided by
the difference in pairs, is the cost of one pair with start-up, CONNECT and shutdown taken out: a
figure a shared machine's load cannot move, where pairs/s swing by tens of percent.
"""
import os
import re
import socket
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from subscribe_churn import batches, read_until, users_file  # noqa: E402


def measure(binary, extra, pairs, login, work_dir):
    out = os.path.join(work_dir, "callgrind.out")
    proc = subprocess.Popen(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out, binary, "--threads", "1",
         "--ws", "off", "--tcp", "127.0.0.1:0", "--log-level", "warn",
         "--set", "limits.max_subscriptions=100000", "--set", "limits.publish_rate=0"] + extra,
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        line = proc.stdout.readline().decode()
        m = re.match(r"listening tcp 127\.0\.0\.1:(\d+)", line)
        if not m:
            sys.exit("no listening line from %s: %r" % (binary, line))
        sock = socket.create_connection(("127.0.0.1", int(m.group(1))))
        creds = b"login:%s\npasscode:pw\n" % login.encode() if login else b""
        sock.sendall(b"CONNECT\naccept-version:1.2\nhost:x\n%s\n\0" % creds)
        buf = read_until(sock, b"CONNECTED", b"")
        for marker, data in batches(pairs):
            sock.sendall(data)
            buf = read_until(sock, marker, buf)
        sock.close()
        proc.terminate()
        proc.wait(120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    with open(out) as f:
        for text in f:
            if text.startswith("summary:"):
                return int(text.split()[1])
    sys.exit("no summary line in %s" % out)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    pairs = int(os.environ.get("PAIRS", "20000"))
    login = os.environ.get("LOGIN", "")
    users = users_file(login) if login else None
    print("| broker | flags | Ir (%d, %d pairs) | Ir per pair |" % (pairs, 2 * pairs))
    print("|---|---|---:|---:|")
    with tempfile.TemporaryDirectory(prefix="churn-ir-") as work_dir:
        for i, binary in enumerate(sys.argv[1:], start=1):
            extra = os.environ.get("ARGS_%d" % i, "").split()
            if users:
                extra = ["--users", users] + extra
            short = measure(binary, extra, pairs, login, work_dir)
            time.sleep(0.5)
            long = measure(binary, extra, 2 * pairs, login, work_dir)
            shown = " ".join(a for a in extra if a != users and a != "--users")
            print("| `%s` | %s | %d, %d | %.1f |" % (binary, shown or "-", short, long,
                                                      (long - short) / pairs), flush=True)
    if users:
        os.unlink(users)


if __name__ == "__main__":
    main()
