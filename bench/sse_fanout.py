#!/usr/bin/env python3
"""SSE fan-out: N GET /sse readers of one topic, counted while stompws-bench publishes flat out.

    bench/sse_fanout.py --bench build/bench/stompws-bench --port 15674 [--readers 1000]
                        [--duration 5] [--warmup 1] [--procs 1]

Opens --readers connections to http://127.0.0.1:PORT/sse?destination=/topic/bench (in --procs
reader processes), waits until every one has its 200, then runs
`stompws-bench --scenario fanout --subscribers 1 --publishers 1` against the same broker and
topic: the same saturating publisher as the WebSocket fan-out figure, plus one WebSocket
subscriber the bench needs to measure. Events are counted by their blank line (each event ends
with one; the `retry:` block at the start of each stream is left out) during the bench's window
(--warmup seconds after it starts, for --duration seconds), and the result is printed as
deliveries per second over the SSE readers, next to the bench's own JSON line.

The readers do no parsing beyond the count: the figure is the broker's, as long as the reader
processes stay under a core each (their CPU time is printed; add --procs if one is busy).
"""
import argparse
import json
import multiprocessing as mp
import os
import selectors
import socket
import subprocess
import sys
import time


def ws_client_frame(payload):
    """A masked WebSocket text frame (mask key 0: the payload goes as it is)."""
    n = len(payload)
    head = bytes([0x81, 0x80 | n]) if n < 126 else bytes([0x81, 0x80 | 126, n >> 8, n & 255])
    return head + b"\0\0\0\0" + payload


def opening(transport, dest):
    """What a reader writes first, and the marker that ends each delivery it reads."""
    if transport == "sse":
        return (f"GET /sse?destination={dest} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Accept: text/event-stream\r\n\r\n").encode(), b"\n\n"
    upgrade = ("GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
               "Sec-WebSocket-Protocol: v12.stomp\r\n\r\n").encode()
    connect = ws_client_frame(b"CONNECT\naccept-version:1.2\nhost:bench\nheart-beat:0,0\n\n\0")
    subscribe = ws_client_frame(f"SUBSCRIBE\nid:0\ndestination:{dest}\nreceipt:r\n\n\0".encode())
    return upgrade + connect + subscribe, b"\0"  # each STOMP frame ends with a NUL


def reader_proc(port, count, dest, ready_q, window, result_q, transport="sse"):
    """Opens count readers, reports when all are streaming, counts deliveries in the window."""
    sel = selectors.DefaultSelector()
    request, marker = opening(transport, dest)
    socks = []
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(request)
        s.setblocking(False)
        socks.append(s)
        sel.register(s, selectors.EVENT_READ, {"head": b"", "streaming": False, "last": b""})
    streaming = 0
    counted = 0
    start, end = None, None
    deadline = time.monotonic() + 60
    buf = bytearray(1 << 16)
    while True:
        now = time.monotonic()
        if start is None and streaming == count:
            ready_q.put(count)
            start_wall = window.get()  # (start, end) in time.monotonic() of this machine
            start, end = start_wall
        if end is not None and now >= end:
            break
        if start is None and now > deadline:
            ready_q.put(-streaming)
            return
        for key, _ in sel.select(timeout=0.2):
            s, st = key.fileobj, key.data
            try:
                n = s.recv_into(buf)
            except BlockingIOError:
                continue
            if n == 0:
                sel.unregister(s)
                continue
            data = bytes(buf[:n])
            if not st["streaming"]:
                st["head"] += data
                head, sep, rest = st["head"].partition(b"\r\n\r\n")
                # SSE: past the retry: block; WebSocket: past CONNECTED and the RECEIPT.
                if not sep or rest.count(marker) < (1 if transport == "sse" else 2):
                    continue
                if not (head.startswith(b"HTTP/1.1 200") or head.startswith(b"HTTP/1.1 101")):
                    sys.exit(f"a reader was refused: {head[:200]!r}")
                st["streaming"] = True
                streaming += 1
                data = rest.split(marker, 1 if transport == "sse" else 2)[-1]
            joined = st["last"] + data
            events = joined.count(marker) - st["last"].count(marker)
            st["last"] = data[-1:]
            t = time.monotonic()
            if start is not None and start <= t < end:
                counted += events
    cpu = os.times()
    result_q.put((counted, cpu.user + cpu.system))
    for s in socks:
        s.close()


def messages_out(port):
    """stompws_messages_out_total from /metrics: deliveries the broker wrote, any transport."""
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    for line in data.decode().splitlines():
        if line.startswith("stompws_messages_out_total "):
            return int(float(line.split()[1]))
    sys.exit("no stompws_messages_out_total on /metrics")


def flood(port, dest, size, stop_at):
    """A publisher over STOMP/TCP that writes SEND frames as fast as the broker reads them."""
    s = socket.create_connection(("127.0.0.1", port))
    s.sendall(b"CONNECT\naccept-version:1.2\nhost:bench\n\n\0")
    s.recv(4096)  # CONNECTED
    body = b"x" * size
    frame = b"SEND\ndestination:" + dest.encode() + b"\ncontent-length:%d\n\n" % size + body + b"\0"
    batch = frame * 100
    sent = 0
    while time.monotonic() < stop_at:
        s.sendall(batch)
        sent += 100
    s.close()
    return sent  # (unused by the caller: the broker counts)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bench", required=True, help="path of stompws-bench")
    ap.add_argument("--port", type=int, default=15674, help="the broker's WebSocket port")
    ap.add_argument("--readers", type=int, default=1000)
    ap.add_argument("--transport", choices=["sse", "ws"], default="sse",
                    help="what the readers are: GET /sse streams, or STOMP over WebSocket "
                    "subscribers read the same way (for the comparison)")
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--duration", type=float, default=5)
    ap.add_argument("--warmup", type=float, default=1)
    ap.add_argument("--dest", default="/topic/bench")
    ap.add_argument("--publisher", choices=["bench", "flood"], default="bench",
                    help="bench: stompws-bench's saturating publisher (and one WebSocket subscriber); "
                    "flood: SEND frames over TCP as fast as the broker reads them")
    ap.add_argument("--tcp-port", type=int, default=61613, help="the broker's TCP port (flood)")
    ap.add_argument("--size", type=int, default=100, help="body bytes (flood)")
    args = ap.parse_args()

    ready_q, result_q = mp.Queue(), mp.Queue()
    windows = [mp.Queue() for _ in range(args.procs)]
    per = [args.readers // args.procs + (1 if i < args.readers % args.procs else 0) for i in range(args.procs)]
    procs = [mp.Process(target=reader_proc, args=(args.port, per[i], args.dest, ready_q, windows[i], result_q,
                                                   args.transport))
             for i in range(args.procs)]
    for p in procs:
        p.start()
    for _ in procs:
        got = ready_q.get(timeout=90)
        if got < 0:
            sys.exit(f"only {-got} readers got their stream within 60 s")
    t0 = time.monotonic()
    out = ""
    if args.publisher == "flood":
        start = t0 + args.warmup
        publisher = mp.Process(target=flood, args=(args.tcp_port, args.dest, args.size, start + args.duration))
        publisher.start()
    else:
        bench = subprocess.Popen([args.bench, "--url", f"ws://127.0.0.1:{args.port}/ws", "--scenario", "fanout",
                                  "--subscribers", "1", "--publishers", "1", "--dest", args.dest,
                                  "--warmup", str(args.warmup), "--duration", str(args.duration), "--json"],
                                 stdout=subprocess.PIPE, text=True)
        # The bench connects (well under a second for 2 connections), then warms up: the window
        # is taken from our own clock, starting after the warm-up as the bench's does.
        start = t0 + 0.5 + args.warmup
    for w in windows:
        w.put((start, start + args.duration))
    time.sleep(max(0.0, start - time.monotonic()))
    out_before = messages_out(args.port)
    time.sleep(max(0.0, start + args.duration - time.monotonic()))
    out_after = messages_out(args.port)
    if args.publisher == "flood":
        publisher.join(timeout=30)
    else:
        out, _ = bench.communicate(timeout=120)
    results = [result_q.get(timeout=60) for _ in procs]
    for p in procs:
        p.join()
    counted = sum(r[0] for r in results)
    line = out.strip().splitlines()[-1] if out.strip() else "{}"
    report = {
        "tool": "sse_fanout.py",
        "readers": args.readers,
        "window_s": args.duration,
        "transport": args.transport,
        "deliveries_per_s": round((out_after - out_before) / args.duration, 1),
        "counted_by_readers_per_s": round(counted / args.duration, 1),
        "reader_cpu_s": [round(r[1], 2) for r in results],
        "bench": json.loads(line) if line != "{}" else None,
    }
    print(f"{args.transport} deliveries {report['deliveries_per_s']:.0f}/s over {args.readers} readers "
          f"(stompws_messages_out_total in the {args.duration} s window; the readers counted "
          f"{report['counted_by_readers_per_s']:.0f}/s); reader CPU {report['reader_cpu_s']} s")
    print(json.dumps(report))


if __name__ == "__main__":
    main()
