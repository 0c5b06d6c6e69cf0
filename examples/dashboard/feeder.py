#!/usr/bin/python3
"""Publish simulated stock prices to /topic/stocks.<SYMBOL> over STOMP/TCP, for the dashboard.

    examples/dashboard/feeder.py                        (4 updates a second until Ctrl-C)
    examples/dashboard/feeder.py --count 100 --rate 0   (100 updates at full speed, then exit)

Each message body is JSON, e.g. {"symbol": "ACME", "price": 121.37, "change": 1.37,
"ts": 1700000000000}: the last price, the change since the feeder started (two decimals) and
the time in milliseconds since the epoch. The first round updates every symbol once, so the
dashboard fills at once; after that a random symbol moves each time. Every message sent is
also printed to stdout, one JSON object a line. --seed makes the prices repeatable.

Uses stomp.py (Debian: python3-stomp). Broker address: --host/--port (default 127.0.0.1:61613).
"""
import argparse
import json
import random
import sys
import time

import stomp

# Made-up tickers and their opening prices.
SYMBOLS = {
    "ACME": 120.00,
    "BOLT": 42.50,
    "CRUX": 310.25,
    "DYNA": 87.10,
    "EMBR": 15.75,
    "FLUX": 203.40,
    "GRID": 64.00,
    "HELX": 9.95,
}


class Market:
    """A random walk per symbol, rounded to cents, never below one cent."""

    def __init__(self, symbols, seed):
        self.open = {s: SYMBOLS.get(s, 100.0) for s in symbols}
        self.price = dict(self.open)
        self.rng = random.Random(seed)
        self.first_round = list(symbols)

    def tick(self):
        symbol = self.first_round.pop(0) if self.first_round else self.rng.choice(list(self.price))
        moved = self.price[symbol] * (1 + self.rng.gauss(0, 0.004))
        self.price[symbol] = max(0.01, round(moved, 2))
        return {
            "symbol": symbol,
            "price": self.price[symbol],
            "change": round(self.price[symbol] - self.open[symbol], 2),
            "ts": int(time.time() * 1000),
        }


def symbol_list(text):
    symbols = [s.strip().upper() for s in text.split(",") if s.strip()]
    for s in symbols:
        # A symbol is one segment of the destination: no dots, no wildcard characters.
        if not s.isalnum():
            raise argparse.ArgumentTypeError(f"symbol {s!r}: letters and digits only")
    if not symbols:
        raise argparse.ArgumentTypeError("no symbols")
    return symbols


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=61613)
    ap.add_argument("--rate", type=float, default=4, help="updates per second (0: no pause)")
    ap.add_argument("--count", type=int, default=0, help="stop after this many (0: never)")
    ap.add_argument("--symbols", type=symbol_list, default=list(SYMBOLS),
                    help="comma-separated (default: %(default)s)")
    ap.add_argument("--seed", type=int, default=None, help="repeatable prices")
    args = ap.parse_args()
    if args.rate < 0 or args.count < 0:
        ap.error("--rate and --count must not be negative")

    market = Market(args.symbols, args.seed)
    conn = stomp.Connection12([(args.host, args.port)])
    try:
        conn.connect(wait=True)
    except stomp.exception.ConnectFailedException:
        sys.exit(f"feeder.py: cannot connect to {args.host}:{args.port} (is stompws running?)")
    sent = 0
    try:
        while args.count == 0 or sent < args.count:
            tick = market.tick()
            body = json.dumps(tick)
            conn.send(f"/topic/stocks.{tick['symbol']}", body, content_type="application/json")
            print(body, flush=True)
            sent += 1
            if args.rate > 0:
                time.sleep(1 / args.rate)
    except KeyboardInterrupt:
        pass
    conn.disconnect(receipt="done")  # waits until the broker has routed every message
    print(f"sent {sent} updates", file=sys.stderr)


if __name__ == "__main__":
    main()
