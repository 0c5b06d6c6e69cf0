#!/usr/bin/python3
"""Publish a message over STOMP/TCP and wait for the broker's receipt.

    examples/pub.py /topic/prices 'IBM 142.10'
    echo hello | examples/pub.py /queue/jobs -        (body from stdin)

Uses stomp.py (Debian: python3-stomp). Broker address: --host/--port (default 127.0.0.1:61613).
"""
import argparse
import sys

import stomp


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("destination")
    ap.add_argument("body", help="message body, or - to read it from stdin")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=61613)
    ap.add_argument("--content-type", default="text/plain")
    args = ap.parse_args()

    body = sys.stdin.read() if args.body == "-" else args.body
    conn = stomp.Connection12([(args.host, args.port)])
    conn.connect(wait=True)
    conn.send(args.destination, body, content_type=args.content_type)
    conn.disconnect(receipt="sent")  # waits until the broker has routed the message
    print(f"sent to {args.destination}", file=sys.stderr)


if __name__ == "__main__":
    main()
