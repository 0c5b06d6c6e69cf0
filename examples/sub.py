#!/usr/bin/python3
"""Subscribe to a destination over STOMP/TCP and print each message as it arrives.

    examples/sub.py /topic/prices            (Ctrl-C to stop)
    examples/sub.py /queue/jobs --count 1    (exit after one message)

Uses stomp.py (Debian: python3-stomp). Broker address: --host/--port (default 127.0.0.1:61613).
"""
import argparse
import sys
import threading

import stomp


class Printer(stomp.ConnectionListener):
    def __init__(self, count):
        self.left = count
        self.done = threading.Event()

    def on_message(self, frame):
        print(f"{frame.headers['destination']}: {frame.body}", flush=True)
        self.left -= 1
        if self.left == 0:
            self.done.set()

    def on_error(self, frame):
        print(f"ERROR: {frame.headers.get('message')}", file=sys.stderr, flush=True)
        self.done.set()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("destination")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=61613)
    ap.add_argument("--count", type=int, default=0, help="exit after this many (0: never)")
    args = ap.parse_args()

    conn = stomp.Connection12([(args.host, args.port)])
    printer = Printer(args.count)
    conn.set_listener("printer", printer)
    conn.connect(wait=True)
    conn.subscribe(args.destination, id="1", ack="auto", headers={"receipt": "subscribed"})
    print(f"subscribed to {args.destination}", file=sys.stderr, flush=True)
    try:
        printer.done.wait()
    except KeyboardInterrupt:
        pass
    conn.disconnect()


if __name__ == "__main__":
    main()
